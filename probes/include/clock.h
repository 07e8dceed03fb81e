/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * A per-CPU coarse clock: bpf_ktime_get_boot_ns() read at most once per
 * jiffy per CPU, reused for the rest of that jiffy. Flow timestamps and the
 * admission bucket use it, so they trail the exact clock by at most one
 * jiffy (1-10 ms).
 *
 * Why: reading the clock on every packet was the largest single cost of a
 * flow hit (about 50 of 150 ns per XDP packet on the benchmark VM, where
 * rdtsc is slow); bpf_jiffies64 and a per-CPU array lookup cost a fraction.
 */
#ifndef NP_CLOCK_H
#define NP_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Probe-private: not part of the agent ABI. */
struct np_clock {
	__u64 jiffies; /* bpf_jiffies64() when ns was read */
	__u64 ns;      /* bpf_ktime_get_boot_ns() then */
};

/* Per-CPU cached boot-time clock; read and written only by the probes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_clock);
} clock_cache SEC(".maps");

/* Boot-time ns, at most one jiffy old. */
static __always_inline __u64 np_now(void)
{
	__u64 j = bpf_jiffies64();
	struct np_clock *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&clock_cache, &zero);
	if (!c)
		return bpf_ktime_get_boot_ns(); /* cannot happen (one-entry array) */
	if (c->jiffies != j || c->ns == 0) {
		c->jiffies = j;
		c->ns = bpf_ktime_get_boot_ns();
	}
	return c->ns;
}

#endif /* NP_CLOCK_H */
