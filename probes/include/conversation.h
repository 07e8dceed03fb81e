/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Conversations: what the flow table knows of a flow's other direction.
 *
 * flow_stats keys are not canonical: the two directions of a connection
 * are two entries (on one interface). When an entry is created, the probe
 * looks up its reverse once (np_reverse_key): found, the new direction is
 * the answer (NP_FLOW_REPLY) and, unless the answer is a refusal (a RST),
 * both entries become NP_FLOW_TWOWAY. The cost is one lookup per new
 * flow, none per packet: later packets read the flags from the entry the
 * flow accounting looks up anyway.
 *
 * Tunnels such as VXLAN and Geneve send each direction from its own source
 * port to the same destination port, so neither direction is the other's
 * reverse. conv_seen keeps, per (source, destination, destination port)
 * of each UDP flow, the generation (about one second, as flow_seen) it
 * last carried traffic, tagged with 24 more hash bits: a UDP flow whose
 * destination sends back to the same port within the last two generations
 * is one side of a conversation too (np_conv_answered). The stamps are
 * written when a flow is created and once per generation after; the
 * flood detector reads them only when a threshold is about to be crossed.
 */
#ifndef NP_CONVERSATION_H
#define NP_CONVERSATION_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "abi/packet.h"
#include "maps.h"
#include "hash.h"
#include "flow_seen.h"

#define NP_ICMP_ECHO_REQUEST 8
#define NP_ICMP_ECHO_REPLY 0
#define NP_ICMPV6_ECHO_REQUEST 128
#define NP_ICMPV6_ECHO_REPLY 129

/* conv_seen entries - 1 (a power of two): 65536 stamps, 256 KiB. */
#define NP_CONV_MASK (65536 - 1)
#define NP_CONV_GEN_SHIFT NP_SEEN_GEN_SHIFT

/* Per (source, destination, destination port) of UDP flows: generation << 24 | tag.
 * Probe-private; written and read by the probes only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NP_CONV_MASK + 1);
	__type(key, __u32);
	__type(value, __u32);
} conv_seen SEC(".maps");

/*
 * The key of k's other direction into *r. Returns 0 for a packet that has
 * none to look for (ICMP other than echo: errors refer to another flow).
 */
static __always_inline int np_reverse_key(struct np_flow_key *r, const struct np_flow_key *k)
{
	__u8 type = k->sport >> 8;

	r->ifindex = k->ifindex;
	__builtin_memcpy(r->saddr, k->daddr, sizeof(r->saddr));
	__builtin_memcpy(r->daddr, k->saddr, sizeof(r->daddr));
	r->family = k->family;
	r->proto = k->proto;
	r->pad[0] = 0;
	r->pad[1] = 0;
	if (k->proto == IPPROTO_ICMP || k->proto == IPPROTO_ICMPV6) {
		/* sport is type << 8 | code: an echo pairs with its reply */
		if (type == NP_ICMP_ECHO_REQUEST && k->proto == IPPROTO_ICMP)
			r->sport = NP_ICMP_ECHO_REPLY << 8;
		else if (type == NP_ICMP_ECHO_REPLY && k->proto == IPPROTO_ICMP)
			r->sport = NP_ICMP_ECHO_REQUEST << 8;
		else if (type == NP_ICMPV6_ECHO_REQUEST)
			r->sport = NP_ICMPV6_ECHO_REPLY << 8;
		else if (type == NP_ICMPV6_ECHO_REPLY)
			r->sport = NP_ICMPV6_ECHO_REQUEST << 8;
		else
			return 0;
		r->dport = 0;
		return 1;
	}
	r->sport = k->dport;
	r->dport = k->sport;
	return 1;
}

/* Seeded hash of (src, dst, dport) of a UDP flow. */
static __always_inline __u64 np_conv_hash(const __u32 *src, const __u32 *dst, __u16 dport)
{
	__u64 s = cfg_hash_seed;
	__u64 h;

	h = ((__u64)src[0] << 32 | dst[0]) * 0x9e3779b97f4a7c15ULL;
	h ^= ((__u64)src[1] << 32 | dst[1]) * 0xc2b2ae3d27d4eb4fULL;
	h ^= ((__u64)src[2] << 32 | dst[2]) * 0x165667b19e3779f9ULL;
	h ^= ((__u64)src[3] << 32 | dst[3]) * 0xd6e8feb86659fd93ULL;
	h ^= ((__u64)dport ^ s) * 0xff51afd7ed558ccdULL;
	return np_fmix64(h ^ (s << 1));
}

static __always_inline __u32 np_conv_tag(__u64 h)
{
	return (__u32)(h >> 40) & 0xffffff;
}

/* k (a UDP flow) carries traffic in this generation. */
static __always_inline void np_conv_stamp(const struct np_flow_key *k, __u64 now)
{
	__u64 h = np_conv_hash(k->saddr, k->daddr, k->dport);
	__u32 idx = (__u32)h & NP_CONV_MASK;
	__u32 v = (__u32)(now >> NP_CONV_GEN_SHIFT) << 24 | np_conv_tag(h);
	__u32 *e = bpf_map_lookup_elem(&conv_seen, &idx);

	if (e && *e != v)
		*e = v;
}

/* 1: k's destination sent UDP to k's source on k's destination port in
 * this generation or the last: k is one side of a conversation. */
static __always_inline int np_conv_answered(const struct np_flow_key *k, __u64 now)
{
	__u64 h = np_conv_hash(k->daddr, k->saddr, k->dport);
	__u32 idx = (__u32)h & NP_CONV_MASK;
	__u32 *e = bpf_map_lookup_elem(&conv_seen, &idx);
	__u8 gen = (__u8)(now >> NP_CONV_GEN_SHIFT);

	if (!e || (*e & 0xffffff) != np_conv_tag(h))
		return 0;
	return (__u8)(gen - (__u8)(*e >> 24)) <= 1;
}

/*
 * 1 if a packet of k answers a conversation the other side started: its
 * entry says NP_FLOW_REPLY, or (its first packet) it has no entry yet and
 * the reverse has one. Lets such packets through a block (detect.h): a
 * block stops what the blocked source starts, never a conversation someone
 * on this side started with it. Only blocked sources' packets pay these
 * lookups; no flow_seen shortcut, since an idle conversation that resumes
 * is not "seen lately" and must still pass.
 */
static __always_inline int np_answers_other_side(const struct np_flow_key *k)
{
	struct np_flow_stats *v;
	struct np_flow_key r;

	v = bpf_map_lookup_elem(&flow_stats, k);
	if (v)
		return (v->flags & NP_FLOW_REPLY) != 0;
	if (!np_reverse_key(&r, k))
		return 0;
	return bpf_map_lookup_elem(&flow_stats, &r) != 0;
}

#endif /* NP_CONVERSATION_H */
