/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * What every ABI header uses: fixed-width types (from the kernel's UAPI,
 * or from vmlinux.h in the CO-RE probes) and the address family.
 */
#ifndef NP_ABI_TYPES_H
#define NP_ABI_TYPES_H

#ifdef __BPF__
#ifndef __VMLINUX_H__ /* CO-RE probes take the fixed-width types from vmlinux.h */
#include <linux/types.h>
#endif
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

/* Address family: index of np_packet_stats.l3; family of flows, alerts
 * and connections. */
enum np_family {
	NP_FAMILY_IPV4 = 0,
	NP_FAMILY_IPV6 = 1,
	NP_FAMILY_MAX = 2,
};

#endif /* NP_ABI_TYPES_H */
