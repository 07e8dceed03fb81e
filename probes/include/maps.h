/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The maps of netprobe.bpf.o, by the names agent/src/probes.rs expects.
 * Sizes are defaults; the agent overrides max_entries at load.
 */
#ifndef NP_MAPS_H
#define NP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/packet.h"

/* Per (ifindex, hook) packet, byte, L3/L4, TCP-flag and skip counters; the agent's collector sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct np_stats_key);
	__type(value, struct np_packet_stats);
} packet_stats SEC(".maps");

/* TC-only per (ifindex, direction, packets|bytes) device counters; read by the agent's collector. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct np_tc_device_key);
	__type(value, __u64);
} tc_device_stats SEC(".maps");

/* Per-interface 5-tuple rx/tx counters shared by all CPUs (atomic adds); read by the agent's flow collector. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct np_flow_key);
	__type(value, struct np_flow_stats);
} flow_stats SEC(".maps");

/* Per-ifindex attach flags written by the agent; read by TC ingress (XDP attached: leave flows to XDP). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct np_iface_config);
} iface_config SEC(".maps");

/* Per-CPU new-flow token bucket and event limiter; probe-private, the agent may read it for debugging. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_admission);
} admission_state SEC(".maps");

/* struct np_event records, probe to the agent's event reader. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

#endif /* NP_MAPS_H */
