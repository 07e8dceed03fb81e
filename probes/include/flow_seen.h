/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * flow_seen: which flows were in flow_stats lately, so a random-source flood
 * does not pay a flow-table lookup per packet.
 *
 * Under a flood of new flows the admission bucket is empty, and a lookup
 * for a flow that is not in the table is a cache miss into a table of
 * megabytes, most of the probe's cost. flow_seen is a much smaller array of
 * one-byte generation stamps (L2-sized at the default flow table size): a
 * flow found or inserted in flow_stats stamps the byte its key hashes to
 * with the current generation (about one second). A flow whose byte holds
 * the current or the previous generation may be in the table and is looked
 * up; otherwise it is either new or idle for over a second. Then, and only
 * while admission is refusing, the probe skips the lookup, except for one
 * packet in NP_FLOOD_VERIFY_EVERY that is looked up anyway, so an idle flow
 * that comes back during a flood is found again within a few packets.
 * While admission has tokens, every flow is looked up as before: the
 * filter changes nothing outside a flood.
 *
 * Stamps are single bytes, written with plain stores (no lost updates
 * between CPUs, no atomics), never cleared: an old generation simply stops
 * counting. Collisions only make the filter say "maybe", which costs the
 * lookup it saves otherwise.
 */
#ifndef NP_FLOW_SEEN_H
#define NP_FLOW_SEEN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/packet.h"

/* flow_seen entries - 1 (a power of two); 0 turns the filter off. Each
 * entry holds 8 stamps. The loader sizes it from --max-flows. */
const volatile __u32 cfg_seen_mask = 4096 * 8 - 1;

#define NP_SEEN_GEN_SHIFT 30 /* generation: 2^30 ns, about 1.07 s */

/* Eight stamps per entry: an array of __u64 keeps lookups inlined. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096 * 8);
	__type(key, __u32);
	__type(value, __u64);
} flow_seen SEC(".maps");

/* A cheap hash of the 44-byte key (the table's own jhash is not reachable):
 * independent 64-bit multiplies of word pairs, so they overlap in the CPU
 * instead of forming one long chain. */
static __always_inline __u32 np_seen_hash(const struct np_flow_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u64 h;

	h = ((__u64)w[0] << 32 | w[1]) * 0x9e3779b97f4a7c15ULL;
	h ^= ((__u64)w[2] << 32 | w[3]) * 0xc2b2ae3d27d4eb4fULL;
	h ^= ((__u64)w[4] << 32 | w[5]) * 0x165667b19e3779f9ULL;
	h ^= ((__u64)w[6] << 32 | w[7]) * 0xd6e8feb86659fd93ULL;
	h ^= ((__u64)w[8] << 32 | w[9]) * 0xff51afd7ed558ccdULL;
	h ^= ((__u64)w[10] << 32 | w[0]) * 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return (__u32)(h >> 32);
}

/* The stamp byte of k, or NULL with the filter off. */
static __always_inline __u8 *np_seen_slot(const struct np_flow_key *k)
{
	__u32 h, idx;
	__u64 *e;

	if (!cfg_seen_mask)
		return 0;
	h = np_seen_hash(k);
	idx = (h >> 3) & cfg_seen_mask;
	e = bpf_map_lookup_elem(&flow_seen, &idx);
	if (!e)
		return 0;
	return (__u8 *)e + (h & 7);
}

static __always_inline __u8 np_seen_gen(__u64 now)
{
	return (__u8)(now >> NP_SEEN_GEN_SHIFT);
}

/* 1: the flow may be in flow_stats (or the filter is off). */
static __always_inline int np_seen_maybe(const __u8 *slot, __u64 now)
{
	if (!slot)
		return 1;
	return (__u8)(np_seen_gen(now) - *slot) <= 1;
}

/* The flow is in flow_stats now. Writes only when the stamp changes, so a
 * busy flow does not dirty the line on every packet. */
static __always_inline void np_seen_mark(__u8 *slot, __u64 now)
{
	__u8 g = np_seen_gen(now);

	if (slot && *slot != g)
		*slot = g;
}

#endif /* NP_FLOW_SEEN_H */
