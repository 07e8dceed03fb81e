// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * NetProbe probes: XDP, TC ingress and TC egress. Each counts every packet
 * in packet_stats, attributes parsed IP packets to flow_stats, feeds the
 * detectors (detect.h) and lets the packet go on (XDP_PASS, TC_ACT_UNSPEC):
 * a monitor fails open. The one exception is opt-in: with --mitigate=on,
 * XDP (TC ingress where XDP is not attached) drops packets from
 * blocklisted or blocked sources; the allowlist is never dropped.
 *
 * Kernel floor: 5.8 (ring buffer, bpf_ktime_get_boot_ns; bpf_jiffies64 is
 * 5.5). Flow timestamps come from a per-CPU clock read once per jiffy
 * (clock.h), so they may trail the exact boot clock by one jiffy. Built with
 * -mcpu=v3 (ALU32/JMP32, 5.1+); the only atomics are plain fetch-and-add
 * whose result is unused (BPF_XADD, every kernel).
 *
 * TC and non-linear skbs: the TC probes parse what is in the linear area
 * (skb->data..data_end) and do not call bpf_skb_pull_data. A pull may
 * reallocate or unclone the head (egress TCP skbs are clones kept for
 * retransmit), costs far more than the parse and invalidates every packet
 * pointer. The stack and drivers keep headers linear (GRO and
 * eth_get_headlen pull them), so a packet whose headers are not linear is
 * rare; it is still counted in total with its full skb->len and under the
 * SHORT_* reason where the linear part ends.
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "abi/packet.h"
#include "abi/detect.h"
#include "maps.h"
#include "parse.h"
#include "admission.h"
#include "flow_seen.h"
#include "clock.h"
#include "hash.h"
#include "conversation.h"
#include "detect.h"

/* The ring-buffer records have no map whose type carries them into BTF;
 * these read-only globals do, so the agent's layout test checks them
 * against its mirror like every other ABI struct (agent/tests/abi_layout.rs). */
const volatile struct np_event np_abi_event = {};
const volatile struct np_alert_event np_abi_alert_event = {};

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Initial packet_stats value: too big (376 bytes) for the 512-byte stack
 * beside the flow key and value, so it lives in .rodata. */
static const struct np_packet_stats np_zero_stats;

/* This CPU's packet_stats entry for (ifindex, hook), created on first use. */
static __always_inline struct np_packet_stats *np_stats_get(__u32 ifindex, __u32 hook)
{
	struct np_stats_key key = { .ifindex = ifindex, .hook = hook };
	struct np_packet_stats *st;

	st = bpf_map_lookup_elem(&packet_stats, &key);
	if (st)
		return st;
	/* -EEXIST when another CPU won the race: the lookup finds its entry */
	bpf_map_update_elem(&packet_stats, &key, &np_zero_stats, BPF_NOEXIST);
	return bpf_map_lookup_elem(&packet_stats, &key);
}

static __always_inline void np_tc_device_add(__u32 ifindex, __u32 dir, __u32 type, __u64 v)
{
	struct np_tc_device_key key = { .ifindex = ifindex, .direction = dir, .stat_type = type };
	__u64 *c;

	c = bpf_map_lookup_elem(&tc_device_stats, &key);
	if (!c) {
		/* A per-CPU insert sets this CPU's slot to v and the others to 0. */
		if (bpf_map_update_elem(&tc_device_stats, &key, &v, BPF_NOEXIST) != -EEXIST)
			return;
		c = bpf_map_lookup_elem(&tc_device_stats, &key);
		if (!c)
			return;
	}
	*c += v;
}

/*
 * A packet's standing before detection and flow accounting: its flow_seen
 * stamp and, for a flow not seen lately, this CPU's admission bucket. Such a
 * flow with the bucket empty is most likely one packet of a flood of new
 * flows (flow_seen.h), which both of them may treat more cheaply.
 */
struct np_flow_ctx {
	__u8 *seen;              /* the flow's stamp; NULL with the filter off */
	struct np_admission *a;  /* this CPU's bucket, refilled; NULL if not yet (or admission off) */
	int flood;               /* not seen lately, and admission refusing */
};

/* Unseen packets per sampled one while admission refuses: flow lookups
 * (idle flows found again) and the per-address detectors. Powers of two. */
#define NP_FLOOD_VERIFY_EVERY 16
#define NP_FLOOD_DETECT_EVERY 4

static __always_inline void np_flow_prepare(struct np_flow_ctx *fc, const struct np_flow_key *k,
					    __u64 now)
{
	fc->seen = np_seen_slot(k);
	fc->a = 0;
	fc->flood = 0;
	if (!np_seen_maybe(fc->seen, now)) {
		fc->a = np_admission_refill(now);
		fc->flood = fc->a && !np_admission_open(fc->a);
	}
}

/* 1: not a flood packet, or one that sampling lets through (one in every). */
static __always_inline int np_flood_sampled(const struct np_flow_ctx *fc, __u64 every)
{
	struct np_admission *a = fc->a;

	return !fc->flood || !a || (a->refused & (every - 1)) == 0;
}

/* The weight of a packet in the per-address detectors (detect.h). */
static __always_inline __u32 np_detect_weight(const struct np_flow_ctx *fc)
{
	if (!fc->flood)
		return 1;
	return np_flood_sampled(fc, NP_FLOOD_DETECT_EVERY) ? NP_FLOOD_DETECT_EVERY : 0;
}

/*
 * Adds one packet of len bytes to the flow k (rx or tx), admitting new
 * flows, and tells the detectors (*fr) what the flow table says about it:
 * the entry and its conversation flags (conversation.h), whether the
 * packet opened a flow or answered one, and whether it completed a TCP
 * handshake: the first ACK (without SYN) of a flow that so far has shown
 * only a SYN. The SYN flood detector weighs SYNs against these, not
 * against every ACK, which a busy destination receives plenty of and
 * which would mask a flood.
 */
static __always_inline void np_flow_account(struct np_flow_key *k, struct np_packet_stats *st,
					    __u64 len, __u32 pkts, __u8 flags, int tx, __u64 now,
					    struct np_flow_ctx *fc, struct np_flow_res *fr)
{
	struct np_admission *a = fc->a;
	struct np_flow_stats *v = 0;
	struct np_counter *c;
	int lookup = 1;
	__u8 seen;

	/*
	 * A SYN without ACK opens a flow: skip the lookup and go straight to
	 * admission and a BPF_NOEXIST insert (which finds an existing entry on
	 * -EEXIST). Under a SYN flood with the admission bucket empty this
	 * saves the flow-table miss; the only difference is that a
	 * retransmitted SYN of a known flow is counted not_admitted while the
	 * bucket is empty.
	 */
	if (cfg_syn_fast && (flags & (NP_TCPF_SYN | NP_TCPF_ACK)) == NP_TCPF_SYN)
		lookup = 0;
	/* A flood packet: the lookup would only miss. Sampled packets are
	 * looked up anyway, so an idle flow that comes back is found again. */
	else if (!np_flood_sampled(fc, NP_FLOOD_VERIFY_EVERY))
		lookup = 0;
	if (lookup)
		v = bpf_map_lookup_elem(&flow_stats, k);
	if (!v) {
		struct np_flow_stats nv = {
			.first_seen_ns = now,
			.last_seen_ns = now,
			.tcp_flags = flags,
		};
		struct np_flow_stats *r = 0;
		struct np_flow_key rk;
		long err;

		if (!a) /* not refilled yet; with admission off this stays NULL */
			a = np_admission_refill(now);
		if (!np_admit(a, k->ifindex, now)) {
			if (st)
				st->flow_miss[NP_FLOW_NOT_ADMITTED]++;
			return;
		}
		/* Its other direction, once per new flow (conversation.h). */
		if (np_reverse_key(&rk, k))
			r = bpf_map_lookup_elem(&flow_stats, &rk);
		if (r) {
			nv.flags = NP_FLOW_REPLY;
			/* A RST answer is a refusal, not a conversation. */
			if (!(flags & NP_TCPF_RST)) {
				nv.flags |= NP_FLOW_TWOWAY;
				if (!(r->flags & NP_FLOW_TWOWAY))
					r->flags |= NP_FLOW_TWOWAY;
			}
		}
		c = tx ? &nv.tx : &nv.rx;
		c->packets = pkts;
		c->bytes = len;
		err = bpf_map_update_elem(&flow_stats, k, &nv, BPF_NOEXIST);
		if (err == 0) {
			np_seen_mark(fc->seen, now);
			if (k->proto == IPPROTO_UDP)
				np_conv_stamp(k, now);
			if (st)
				st->flows_created++;
			fr->flags = nv.flags;
			fr->event = r ? NP_FA_ANSWERED : NP_FA_OPENED;
			fr->rev_tcp = r ? (__u8)r->tcp_flags : 0;
			return;
		}
		/* -EEXIST: another CPU inserted it meanwhile; add to that entry */
		if (err == -EEXIST)
			v = bpf_map_lookup_elem(&flow_stats, k);
		if (!v) {
			if (st)
				st->flow_miss[NP_FLOW_UPDATE_FAILED]++;
			return;
		}
	}
	np_seen_mark(fc->seen, now);
	/* A UDP flow's conversation stamp, once per generation (conversation.h). */
	if (k->proto == IPPROTO_UDP && ((v->last_seen_ns ^ now) >> NP_CONV_GEN_SHIFT))
		np_conv_stamp(k, now);
	c = tx ? &v->tx : &v->rx;
	__sync_fetch_and_add(&c->packets, pkts);
	__sync_fetch_and_add(&c->bytes, len);
	v->last_seen_ns = now;
	/* Not atomic: BPF atomic OR needs 5.12 (floor is 5.8). Written only when
	 * a new bit shows up, so at worst a bit set at the same instant on
	 * another CPU is lost until the flow shows it again. */
	seen = v->tcp_flags;
	if (flags & ~seen)
		v->tcp_flags |= flags;
	fr->flags = v->flags;
	fr->handshake = (seen & (NP_TCPF_SYN | NP_TCPF_ACK)) == NP_TCPF_SYN &&
			(flags & (NP_TCPF_SYN | NP_TCPF_ACK)) == NP_TCPF_ACK;
}

/* One packet's parse and flow-table results (probe-private). */
struct np_pkt {
	struct np_flow_key k;
	struct np_parse p;
	struct np_flow_res fr;
};

/*
 * Where np_handle keeps them, one per CPU (XDP and TC run with bottom
 * halves off: nothing else on the CPU uses it meanwhile). Verifier: the
 * parser takes about a hundred paths (VLAN depth, IPv6 extension chains,
 * protocols), each with its own known values on the stack; read back from
 * a map, those values are unknown to the verifier, so the paths join after
 * the parse and the code after it (flow accounting, the detectors) is
 * verified a few times, not once per path.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_pkt);
} pkt_scratch SEC(".maps");

/* The per-packet work shared by the programs; hook and l3_device are
 * constants (see np_parse; an L3 device gets the netprobe_l3_* TC programs and no
 * XDP). segs: the packets this one stands for (a GSO packet the device
 * will cut into segs, each repeating the headers; else 1); *wire gets its
 * bytes as the device will count them. ingress_ifindex: where a packet leaving through TC egress came in (0:
 * this host sent it). Returns NP_VERDICT_DROP only when --mitigate=on
 * matched the packet. */
static __always_inline int np_handle(void *data, void *data_end, __u32 ifindex, __u64 len,
				     __u32 hook, __u32 ingress_ifindex, int l3_device, __u32 segs,
				     __u64 *wire)
{
	struct np_flow_ctx fc;
	struct np_packet_stats *st;
	struct np_pkt *x;
	__u32 skip, weight, zero = 0;
	__u64 now;

	x = bpf_map_lookup_elem(&pkt_scratch, &zero);
	if (!x)
		return NP_VERDICT_PASS; /* cannot happen (one-entry array); fail open */
	/* Zero what the parser and the flow accounting may leave unwritten:
	 * the key, the parse's flags and port (8 bytes; the quoted address is
	 * written whenever p.quoted is set), the flow results. */
	__builtin_memset(&x->k, 0, sizeof(x->k));
	__builtin_memset(&x->p, 0, 8);
	_Static_assert(__builtin_offsetof(struct np_parse, qdst) == 8, "np_parse: flags, then qdst");
	x->p.qproto = 0;
	x->p.hdr_len = 0;
	__builtin_memset(&x->fr, 0, sizeof(x->fr));
	x->k.ifindex = ifindex;
	skip = np_parse(data, data_end, &x->p, &x->k, l3_device);
	if (segs > 1)
		len += (__u64)(segs - 1) * x->p.hdr_len;
	*wire = len;

	st = np_stats_get(ifindex, hook);
	if (st) {
		st->total.packets += segs;
		st->total.bytes += len;
		if (x->p.l3) {
			/* Verifier: bound the variable indices into l3[][]. */
			if (x->p.family < NP_FAMILY_MAX && x->p.l4 < NP_L4_MAX) {
				struct np_counter *c = &st->l3[x->p.family][x->p.l4];

				c->packets += segs;
				c->bytes += len;
			}
			if (x->p.tcp_flags) {
				__u8 f = x->p.tcp_flags;

				if (f & NP_TCPF_SYN)
					st->tcp_flags[f & NP_TCPF_ACK ? NP_TCP_SYNACK : NP_TCP_SYN]++;
				if (f & NP_TCPF_FIN)
					st->tcp_flags[NP_TCP_FIN]++;
				if (f & NP_TCPF_RST)
					st->tcp_flags[NP_TCP_RST]++;
			}
		} else if (skip == NP_SKIP_NON_IP) {
			st->non_ip.packets++;
			st->non_ip.bytes += len;
		}
		/* Verifier: mask the index into skip[] (NP_SKIP_MAX is 16). */
		if (skip != NP_SKIP_NONE)
			st->skip[skip & (NP_SKIP_MAX - 1)]++;
	}

	/* Compiler: read the results back from the map from here on (see
	 * pkt_scratch), rather than carry their per-path values in registers. */
	asm volatile("" ::: "memory");
	if (!x->p.l3)
		return NP_VERDICT_PASS;
	now = np_now();
	np_flow_prepare(&fc, &x->k, now);
	if (hook == NP_HOOK_TC_EGRESS) {
		weight = np_detect_weight(&fc);
		np_flow_account(&x->k, st, len, segs, x->p.tcp_flags, 1, now, &fc, &x->fr);
		asm volatile("" ::: "memory"); /* as above, for the flow results */
		np_detect_egress(&x->p, &x->k, now, ifindex, ingress_ifindex, weight, &x->fr);
		return NP_VERDICT_PASS;
	}
	/* --mitigate=on: counted in packet_stats and detect_stats, no flow entry */
	if (np_lists(&x->k, now, ifindex, 1) == NP_VERDICT_DROP)
		return NP_VERDICT_DROP;
	weight = np_detect_weight(&fc); /* before the flow's refusal moves the sample */
	np_flow_account(&x->k, st, len, segs, x->p.tcp_flags, 0, now, &fc, &x->fr);
	asm volatile("" ::: "memory"); /* as above, for the flow results */
	np_detect_ingress(&x->p, &x->k, len, now, ifindex, weight, &x->fr);
	return NP_VERDICT_PASS;
}

SEC("xdp")
int netprobe_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	__u64 wire = 0;

	if (np_handle(data, data_end, ctx->ingress_ifindex, data_end - data, NP_HOOK_XDP, 0, 0, 1,
		      &wire) ==
	    NP_VERDICT_DROP)
		return XDP_DROP; /* only with --mitigate=on */
	return XDP_PASS;
}

static __always_inline int np_tc(struct __sk_buff *skb, __u32 hook, __u32 dir, int l3_device)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 ifindex = skb->ifindex;
	__u64 len = skb->len, wire = len;
	__u32 segs = 1;

	/* A GSO packet on a device that cuts it in software after this hook
	 * (no TSO): the device counts each segment; so does this. The lookup
	 * is paid by GSO packets alone, 64 KB at a time. */
	if (hook == NP_HOOK_TC_EGRESS && skb->gso_segs > 1) {
		struct np_iface_config *cfg = bpf_map_lookup_elem(&iface_config, &ifindex);

		if (cfg && (cfg->flags & NP_IFACE_TX_SEGMENTS))
			segs = skb->gso_segs;
	}
	int verdict = np_handle(data, data_end, ifindex, len, hook, skb->ingress_ifindex, l3_device,
				segs, &wire);

	np_tc_device_add(ifindex, dir, NP_STAT_PACKETS, segs);
	np_tc_device_add(ifindex, dir, NP_STAT_BYTES, wire);
	if (verdict == NP_VERDICT_DROP)
		return TC_ACT_SHOT; /* only with --mitigate=on, where XDP is not attached */
	return TC_ACT_UNSPEC; /* = TCX_NEXT: the next program or the stack decides */
}

SEC("classifier")
int netprobe_tc_ingress(struct __sk_buff *skb)
{
	return np_tc(skb, NP_HOOK_TC_INGRESS, NP_DIR_INGRESS, 0);
}

SEC("classifier")
int netprobe_tc_egress(struct __sk_buff *skb)
{
	return np_tc(skb, NP_HOOK_TC_EGRESS, NP_DIR_EGRESS, 0);
}

/* TC ingress on a device where XDP is attached: XDP has counted, parsed,
 * accounted and checked every packet already, so this counts only what TC
 * sees (packets after GRO, their bytes) in its own hook's totals. A program
 * of its own: the full one pays no per-packet test of where XDP is. */
SEC("classifier")
int netprobe_tc_after_xdp(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct np_packet_stats *st = np_stats_get(ifindex, NP_HOOK_TC_INGRESS);

	if (st) {
		st->total.packets++;
		st->total.bytes += skb->len;
	}
	np_tc_device_add(ifindex, NP_DIR_INGRESS, NP_STAT_PACKETS, 1);
	np_tc_device_add(ifindex, NP_DIR_INGRESS, NP_STAT_BYTES, skb->len);
	return TC_ACT_UNSPEC;
}

/* L3 devices (tun, wg, ppp, raw-IP wwan, ipip, gre): the packet starts at
 * the IP header. A program of their own keeps the Ethernet path free of a
 * per-packet test of the device type. */
SEC("classifier")
int netprobe_l3_ingress(struct __sk_buff *skb)
{
	return np_tc(skb, NP_HOOK_TC_INGRESS, NP_DIR_INGRESS, 1);
}

SEC("classifier")
int netprobe_l3_egress(struct __sk_buff *skb)
{
	return np_tc(skb, NP_HOOK_TC_EGRESS, NP_DIR_EGRESS, 1);
}
