// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Baseline for the benchmarks only (netprobe-bench, build/bench.sh): the
 * flow accounting a first attempt would write, so NetProbe is compared with
 * it in the same run. Never used by the agent.
 *
 * What makes it naive, on purpose:
 * - one LRU hash of 5-tuples, inserted into on every miss (no admission: a
 *   random-source flood is one LRU insert, and an eviction, per packet);
 * - the clock read on every packet (bpf_ktime_get_ns);
 * - XDP and TC ingress both account received packets (full hooks, no
 *   hand-over between them), TC egress accounts sent ones;
 * - a minimal parser: Ethernet, IPv4 (options skipped) or IPv6 (no
 *   extension headers), TCP/UDP ports; anything else passes uncounted.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct naive_key {
	__u8 src[16]; /* IPv4 in the first 4 bytes */
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct naive_value {
	__u64 packets;
	__u64 bytes;
	__u64 first_seen_ns;
	__u64 last_seen_ns;
};

/* 5-tuple packet and byte counters; nobody reads them (bench only). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct naive_key);
	__type(value, struct naive_value);
} naive_flows SEC(".maps");

/* 1: key filled from an IPv4/IPv6 TCP or UDP packet. */
static __always_inline int naive_parse(void *data, void *data_end, struct naive_key *k)
{
	struct ethhdr *eth = data;
	void *l4;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return 0;
		__builtin_memcpy(k->src, &ip->saddr, 4);
		__builtin_memcpy(k->dst, &ip->daddr, 4);
		k->proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(k->src, &ip6->saddr, 16);
		__builtin_memcpy(k->dst, &ip6->daddr, 16);
		k->proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return 0;
	}
	if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP) {
		struct udphdr *ports = l4; /* TCP starts with the same two ports */

		if ((void *)(ports + 1) > data_end)
			return 0;
		k->sport = ports->source;
		k->dport = ports->dest;
	}
	return 1;
}

static __always_inline void naive_account(void *data, void *data_end, __u64 len)
{
	struct naive_key k;
	struct naive_value *v;
	__u64 now = bpf_ktime_get_ns();

	__builtin_memset(&k, 0, sizeof(k));
	if (!naive_parse(data, data_end, &k))
		return;
	v = bpf_map_lookup_elem(&naive_flows, &k);
	if (v) {
		__sync_fetch_and_add(&v->packets, 1);
		__sync_fetch_and_add(&v->bytes, len);
		v->last_seen_ns = now;
		return;
	}
	struct naive_value nv = {
		.packets = 1,
		.bytes = len,
		.first_seen_ns = now,
		.last_seen_ns = now,
	};
	bpf_map_update_elem(&naive_flows, &k, &nv, BPF_NOEXIST);
}

SEC("xdp")
int bench_naive_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	naive_account(data, data_end, data_end - data);
	return XDP_PASS;
}

SEC("classifier")
int bench_naive_tc(struct __sk_buff *skb)
{
	naive_account((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len);
	return TC_ACT_UNSPEC;
}
