/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Scan, flood and closed-port detection, and opt-in mitigation.
 *
 * What is counted (docs/detection.md has the rules and the tests' figures):
 *
 *  - Scans count failures, not attempts (as Zeek's scan policy and Snort's
 *    portscan preprocessor do). An attempt is the packet that opens a flow
 *    (a TCP SYN, a UDP datagram) toward one host; it fails when it is
 *    refused (a RST, an ICMP destination unreachable) or not answered
 *    within cfg_reply_ticks. A SYN answered by a SYN-ACK, a datagram that
 *    gets a reply, is not a probe. TCP FIN, NULL and Xmas packets (no SYN,
 *    ACK or RST) are failures as they are: no stack sends them in a
 *    conversation. Failures feed the source's scan slot: two 256-bit
 *    linear-counting sketches of failed ports and failed hosts.
 *  - scan_state[hash(src)] belongs to one source at a time (its 64-bit
 *    seeded hash): counts are that source's own, and an alert names it.
 *    A source whose slot is held by another with failures this window is
 *    not tracked (NP_DET_SCAN_UNTRACKED). Each slot also holds the
 *    source's NP_PENDING latest unanswered attempts (tag, time, sketch
 *    bits): the source's next attempt judges the ones older than the reply
 *    timeout, and when more are unanswered at once than the ring holds,
 *    the oldest is judged failed. Answers clear them (on every hook, so a
 *    NAT'd answer clears on the inner side). O(1) per packet; attempts and
 *    answers are looked at only when a flow is created.
 *  - flood_state[hash(dst)]: per destination and window, unsolicited
 *    packets only: a packet of a two-way flow (NP_FLOW_TWOWAY: an answered
 *    conversation, or a UDP tunnel whose other side sends back to the same
 *    port) is not counted. SYNs beyond completed handshakes, UDP, ICMP,
 *    packets, bytes, a 64-bit sketch of sources, and a majority-vote
 *    candidate: the source with most of the slot's packets and its own
 *    count. An alert names a source only when that source's own count is
 *    reported with it (own); many sources (spoofed) name none.
 *  - Closed ports: refusals (a RST answering a probe, an ICMP unreachable)
 *    toward their prober, per flood window, in the prober's scan slot. A
 *    RST that ends an established connection is not a refusal.
 *  - iface_rate[ifindex & 255]: packets and bytes per interface and window.
 *  - Once per device: a packet forwarded between two watched interfaces
 *    feeds the detectors at its ingress only; egress feeds them with what
 *    this host sends itself (or forwards from an unwatched interface).
 *  - Multicast and broadcast destinations never feed the scan sketches or
 *    the port policy.
 *
 * Fixed memory, whatever the traffic: every detector state is a slot of a
 * plain array indexed by a seeded hash (hash.h); no inserts, no LRU churn.
 * Counters are plain increments shared by the CPUs: a race loses one now
 * and then, which a threshold detector tolerates. A threshold crossing
 * writes one alert record per slot, kind and window to the events ring
 * buffer; a full ring counts NP_DET_EVENTS_LOST.
 *
 * Mitigation (cfg_mitigate): 0 off (nothing is ever dropped), 1 dry-run
 * (matches counted, packets pass), 2 on (XDP_DROP / TC_ACT_SHOT). Checked
 * first: allowlist (never dropped), blocked_sources (the agent's expiring
 * blocks), blocklist (operator's CIDRs). A blocked source's packet that
 * answers a conversation the other side started always passes: a block
 * stops what the blocked source starts.
 */
#ifndef NP_DETECT_H
#define NP_DETECT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi/packet.h"
#include "abi/detect.h"
#include "maps.h"
#include "parse.h"
#include "hash.h"
#include "conversation.h"

/* Tunables the loader sets from the flags (0 disables a detector). */
const volatile __u32 cfg_detect = 1;                      /* 0: no detection work at all */
const volatile __u64 cfg_scan_window_ns = 2000000000ULL;  /* --scan-window */
const volatile __u32 cfg_scan_ports = 25;                 /* --scan-ports: sketch bits = failed ports */
const volatile __u32 cfg_scan_hosts = 16;                 /* --scan-hosts: sketch bits = failed hosts */
const volatile __u32 cfg_reply_ticks = 476;               /* --scan-reply-timeout in 2^20 ns (500ms) */
const volatile __u64 cfg_flood_window_ns = 100000000ULL;  /* --flood-window */
const volatile __u32 cfg_syn_flood = 300;                 /* half-open SYNs per flood window */
const volatile __u32 cfg_udp_flood = 5000;                /* unsolicited UDP packets per flood window */
const volatile __u32 cfg_icmp_flood = 200;                /* unsolicited ICMP packets per flood window */
const volatile __u32 cfg_dst_pps = 0;                     /* unsolicited packets per flood window toward a destination */
const volatile __u64 cfg_dst_bytes = 0;                   /* unsolicited bytes per flood window toward a destination */
const volatile __u32 cfg_iface_pps = 0;                   /* packets per flood window on an interface */
const volatile __u64 cfg_iface_bytes = 0;                 /* bytes per flood window on an interface */
const volatile __u32 cfg_closed_ports = 100;              /* refusals toward one prober per flood window */
const volatile __u32 cfg_port_policy = 0;                 /* 1: alert on attempts to ports not in allowed_ports */
const volatile __u32 cfg_lists = 0;                       /* bit 0: blocklist has rules, bit 1: allowlist has rules */
const volatile __u32 cfg_mitigate = 0;                    /* 0 off, 1 dry-run, 2 on */
const volatile __u32 cfg_syn_fast = 1;                    /* skip flow lookups of SYNs while admission is refusing */
const volatile __u32 cfg_scan_mask = 4096 - 1;            /* scan_state entries - 1 (a power of two) */
const volatile __u32 cfg_flood_mask = 4096 - 1;           /* flood_state entries - 1 (a power of two) */

#define NP_MITIGATE_DRY 1
#define NP_MITIGATE_ON 2
#define NP_LISTS_BLOCK 1
#define NP_LISTS_ALLOW 2

#define NP_TICK_SHIFT 20 /* pending attempts' clock: 2^20 ns, about 1 ms */
#define NP_PENDING 12    /* unanswered attempts kept per source */

/* Probe-private: an attempt waiting for its answer; tag 0 is a free entry. */
struct np_attempt {
	__u32 tag;  /* hash of (host, port) tried, never 0 */
	__u16 tick; /* when, in 2^20 ns ticks (wraps after 68 s) */
	__u8 hbit;  /* its sketch bits, fed if it fails */
	__u8 pbit;
};

/* Probe-private: one source's failures (scan_state). */
struct np_scan_slot {
	__u64 window;     /* scan window number of the sketches */
	__u64 owner;      /* np_addr_hash of the source this slot counts for */
	__u64 ports[4];   /* 256-bit sketch of failed destination ports */
	__u64 hosts[4];   /* 256-bit sketch of failed destination hosts */
	__u32 closed_win; /* flood window number (low bits) of closed */
	__u32 closed;     /* refusals toward the owner in that window */
	__u16 nports;     /* bits set in ports */
	__u16 nhosts;
	__u16 alerted;    /* 1 << kind, per scan window */
	__u8 closed_alerted;
	__u8 cursor;      /* next pending entry to give up when all wait */
	struct np_attempt pending[NP_PENDING];
};

/* Probe-private: per-destination (or per-interface) window counters. */
struct np_flood_slot {
	__u64 window;
	__u64 bytes;
	__u64 srcs;       /* 64-bit sketch of sources */
	__u64 cand;       /* np_addr_hash of the source with the most packets (majority vote) */
	__u32 pkts;
	__u32 syn;
	__u32 handshakes; /* completed: the first ACK of a flow that showed a SYN */
	__u32 udp;
	__u32 icmp;
	__u32 cand_pkts;  /* the candidate's packets since it became the candidate */
	__u32 others;     /* other sources' packets since then */
	__u32 alerted;
};

_Static_assert(sizeof(struct np_attempt) == 8, "np_attempt");
_Static_assert(sizeof(struct np_scan_slot) == 192, "np_scan_slot: three cache lines");
_Static_assert(sizeof(struct np_flood_slot) == 64, "np_flood_slot: one cache line");

/* Per-source scan and closed-port state; probe-private, sized by --scan-slots. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct np_scan_slot);
} scan_state SEC(".maps");

/* Per-destination flood counters; probe-private, sized by --flood-slots. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct np_flood_slot);
} flood_state SEC(".maps");

/* Per-interface volume counters (ifindex & 255); probe-private. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct np_flood_slot);
} iface_rate SEC(".maps");

/* Per-CPU detection counters (events sent/lost, drops); read by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_detect_stats);
} detect_stats SEC(".maps");

/* Operator's blocklist CIDRs (--blocklist), written by the agent; per-rule hit counters. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct np_lpm_key);
	__type(value, struct np_rule);
} blocklist SEC(".maps");

/* Operator's allowlist CIDRs (--allowlist): never dropped; per-rule hit counters. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct np_lpm_key);
	__type(value, struct np_rule);
} allowlist SEC(".maps");

/* Sources the agent blocked after an alert, with expiry; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct np_lpm_key);
	__type(value, struct np_block);
} blocked_sources SEC(".maps");

/* Ports connections may go to (--allowed-ports): bit p of word p / 64. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} allowed_ports SEC(".maps");

/* Probe-private: the window numbers of a clock reading, per CPU. */
struct np_det_clock {
	__u64 now;
	__u64 flood_win; /* now / cfg_flood_window_ns */
	__u64 scan_win;  /* now / cfg_scan_window_ns */
};

/* The clock (clock.h) moves once per jiffy, so the two 64-bit divisions
 * run once per jiffy per CPU instead of once per packet and detector. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_det_clock);
} det_clock SEC(".maps");

/* What flow accounting (netprobe.bpf.c) learnt about a packet. */
#define NP_FA_NONE 0     /* an existing flow, or one not admitted */
#define NP_FA_OPENED 1   /* it created a flow whose reverse is not in the table: it starts one */
#define NP_FA_ANSWERED 2 /* it created the reverse of a flow in the table: it answers */

struct np_flow_res {
	__u32 flags;     /* NP_FLOW_* of the entry after this packet (0 without one) */
	__u8 event;      /* NP_FA_* */
	__u8 rev_tcp;    /* NP_FA_ANSWERED: TCP flags the answered direction showed */
	__u8 handshake;  /* it completed a TCP handshake (the first ACK after a SYN) */
	__u8 pad;
};

/* What the detectors share about one packet. */
struct np_det {
	const struct np_parse *p;
	const struct np_flow_key *k;
	__u64 now;
	__u64 flood_win;
	__u64 scan_win;
	__u64 hsrc;     /* np_addr_hash(k->saddr) */
	__u64 hdst;     /* np_addr_hash(k->daddr) */
	__u32 ifindex;
};

static __always_inline void np_det_init(struct np_det *d, const struct np_parse *p,
					const struct np_flow_key *k, __u64 now, __u32 ifindex)
{
	struct np_det_clock *c;
	__u32 zero = 0;

	d->p = p;
	d->k = k;
	d->now = now;
	d->ifindex = ifindex;
	d->hsrc = 0;
	d->hdst = 0;
	c = bpf_map_lookup_elem(&det_clock, &zero);
	if (c && c->now == now) {
		d->flood_win = c->flood_win;
		d->scan_win = c->scan_win;
		return;
	}
	d->flood_win = now / cfg_flood_window_ns;
	d->scan_win = now / cfg_scan_window_ns;
	if (c) {
		c->now = now;
		c->flood_win = d->flood_win;
		c->scan_win = d->scan_win;
	}
}

static __always_inline void np_det_hash(struct np_det *d)
{
	d->hsrc = np_addr_hash(d->k->saddr);
	d->hdst = np_addr_hash(d->k->daddr);
}

static __always_inline void np_det_count(__u32 idx)
{
	__u32 zero = 0;
	struct np_detect_stats *s = bpf_map_lookup_elem(&detect_stats, &zero);

	if (s)
		s->c[idx & (NP_DET_COUNTER_MAX - 1)]++;
}

/* One alert record. src NULL: no single source is named (zeros). */
static __always_inline void np_alert_at(__u32 ifindex, __u64 now, __u8 family, __u32 kind,
					__u64 value, __u64 window_ns, const __u32 *src,
					const __u32 *dst, __u16 port, __u8 proto, __u32 sources,
					__u32 own)
{
	struct np_alert_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		np_det_count(NP_DET_EVENTS_LOST);
		return;
	}
	e->type = NP_EVENT_ALERT;
	e->ifindex = ifindex;
	e->timestamp_ns = now;
	e->value = value;
	e->kind = kind;
	e->family = family;
	e->proto = proto;
	e->port = port;
	if (src) {
		__builtin_memcpy(e->src, src, sizeof(e->src));
	} else {
		__builtin_memset(e->src, 0, sizeof(e->src));
		own = 0;
	}
	__builtin_memcpy(e->dst, dst, sizeof(e->dst));
	e->window_ns = window_ns;
	e->sources = sources;
	e->own = own;
	bpf_ringbuf_submit(e, 0);
	np_det_count(NP_DET_EVENTS_SENT);
}

static __always_inline void np_alert(const struct np_det *d, __u32 kind, __u64 value,
				     __u64 window_ns, const __u32 *src, const __u32 *dst,
				     __u16 port, __u8 proto, __u32 sources, __u32 own)
{
	np_alert_at(d->ifindex, d->now, d->k->family, kind, value, window_ns, src, dst, port, proto,
		    sources, own);
}

/* Sets bit h & 255 of a 256-bit sketch, counting it in *n if it was
 * clear. Branch-free: it runs inside unrolled loops, where every branch
 * would double the paths the verifier walks. */
static __always_inline void np_sketch_add(__u64 *words, __u16 *n, __u32 h)
{
	__u32 w = (h >> 6) & 3; /* verifier: bounded index */
	__u64 old = words[w];

	words[w] = old | (1ULL << (h & 63));
	*n += (__u16)(((old >> (h & 63)) & 1) ^ 1);
}

/* ---- scans: failures per source ----------------------------------------- */

/* The pending-attempt tag of (host, port): never 0. */
static __always_inline __u32 np_attempt_tag(__u64 hhost, __u16 port)
{
	return ((__u32)(hhost >> 32) ^ np_mix((__u32)port << 8 ^ (__u32)hhost)) | 1;
}

/* A new scan window for the owner's slot; pending attempts survive into
 * the next window, not past it (their clock wraps after 68 s). */
static __always_inline void np_scan_roll(struct np_scan_slot *s, __u64 win)
{
	if (win != s->window + 1)
		__builtin_memset(s->pending, 0, sizeof(s->pending));
	s->window = win;
	__builtin_memset(s->ports, 0, sizeof(s->ports));
	__builtin_memset(s->hosts, 0, sizeof(s->hosts));
	s->nports = 0;
	s->nhosts = 0;
	s->alerted = 0;
}

/*
 * The scan slot of the source whose np_addr_hash is owner. claim: take it
 * over when it is free, stale, or held by a source with failures to at
 * most one port and one host this window (a client with pending attempts,
 * or one spoofed address of a flood); else the source is not tracked.
 */
static __always_inline struct np_scan_slot *np_scan_slot(const struct np_det *d, __u64 owner,
							 int claim)
{
	__u32 idx = (__u32)owner & cfg_scan_mask;
	struct np_scan_slot *s = bpf_map_lookup_elem(&scan_state, &idx);

	if (!s)
		return 0;
	if (s->owner == owner) {
		if (s->window != d->scan_win)
			np_scan_roll(s, d->scan_win);
		return s;
	}
	if (!claim)
		return 0;
	if (s->window == d->scan_win && (s->nports > 1 || s->nhosts > 1)) {
		np_det_count(NP_DET_SCAN_UNTRACKED);
		return 0;
	}
	__builtin_memset(s, 0, sizeof(*s));
	s->owner = owner;
	s->window = d->scan_win;
	return s;
}

/* One failure of the slot's owner into its sketches (see np_scan_check). */
static __always_inline void np_scan_bits(struct np_scan_slot *s, __u32 hbit, __u32 pbit)
{
	np_sketch_add(s->ports, &s->nports, pbit);
	np_sketch_add(s->hosts, &s->nhosts, hbit);
}

/* Alerts once per window when the owner's (src) failures reach a
 * threshold; dst, port: what it was probing when they did. */
static __always_inline void np_scan_check(const struct np_det *d, struct np_scan_slot *s,
					  const __u32 *src, const __u32 *dst, __u16 port,
					  __u8 proto)
{
	__u64 wns = cfg_scan_window_ns;

	if (cfg_scan_ports && s->nports >= cfg_scan_ports &&
	    !(s->alerted & (1U << NP_ALERT_SCAN_VERTICAL))) {
		s->alerted |= 1U << NP_ALERT_SCAN_VERTICAL;
		np_alert(d, NP_ALERT_SCAN_VERTICAL, s->nports, wns, src, dst, port, proto, 0,
			 s->nports);
	}
	if (cfg_scan_hosts && s->nhosts >= cfg_scan_hosts &&
	    !(s->alerted & (1U << NP_ALERT_SCAN_HORIZONTAL))) {
		s->alerted |= 1U << NP_ALERT_SCAN_HORIZONTAL;
		np_alert(d, NP_ALERT_SCAN_HORIZONTAL, s->nhosts, wns, src, dst, port, proto, 0,
			 s->nhosts);
	}
}

/* Clears the owner's pending attempt with this tag, if any. */
static __always_inline void np_pending_clear(struct np_scan_slot *s, __u32 tag)
{
#pragma unroll
	for (int i = 0; i < NP_PENDING; i++) {
		if (s->pending[i].tag == tag)
			s->pending[i].tag = 0;
	}
}

/* The packet opens a flow toward one host (a SYN, a UDP datagram): judge
 * the source's older attempts, then wait for this one's answer. The loops
 * keep no index in registers (an index differing per path would defeat
 * the verifier's pruning): each entry is handled where it stands. */
static __always_inline void np_scan_attempt(const struct np_det *d)
{
	const struct np_flow_key *k = d->k;
	__u16 tick = (__u16)(d->now >> NP_TICK_SHIFT);
	__u32 tag = np_attempt_tag(d->hdst, k->dport);
	struct np_attempt e = {
		.tag = tag,
		.tick = tick,
		.hbit = np_host_bit(d->hdst),
		.pbit = np_port_bit(k->dport),
	};
	struct np_scan_slot *s;
	int done = 0;
	__u32 c;

	s = np_scan_slot(d, d->hsrc, 1);
	if (!s)
		return;
	if (cfg_port_policy && !(s->alerted & (1U << NP_ALERT_PORT_POLICY))) {
		__u32 w = k->dport >> 6;
		__u64 *allowed = bpf_map_lookup_elem(&allowed_ports, &w);

		if (allowed && !(*allowed & (1ULL << (k->dport & 63)))) {
			s->alerted |= 1U << NP_ALERT_PORT_POLICY;
			np_alert(d, NP_ALERT_PORT_POLICY, 1, cfg_scan_window_ns, k->saddr, k->daddr,
				 k->dport, k->proto, 0, 1);
		}
	}
	/* A retransmission: judged with the first. */
#pragma unroll
	for (int i = 0; i < NP_PENDING; i++) {
		if (s->pending[i].tag == tag)
			return;
	}
	/* Older than the reply timeout and still unanswered: failed. */
#pragma unroll
	for (int i = 0; i < NP_PENDING; i++) {
		struct np_attempt *a = &s->pending[i];

		if (a->tag && (__u16)(tick - a->tick) >= cfg_reply_ticks) {
			np_scan_bits(s, a->hbit, a->pbit);
			a->tag = 0;
		}
	}
	/* Wait for this one's answer in a free entry (done: a flag, not an
	 * index, so the paths join again after each entry). */
#pragma unroll
	for (int i = 0; i < NP_PENDING; i++) {
		if (!done && !s->pending[i].tag) {
			s->pending[i] = e;
			done = 1;
		}
	}
	if (!done) {
		/* More attempts unanswered at once than the ring holds: the one
		 * waiting longest (entries are taken in turn) counts as failed,
		 * and this one takes its place. */
		c = s->cursor;
		if (c >= NP_PENDING) /* verifier: bounded index (and the wrap) */
			c = 0;
		s->cursor = (__u8)(c + 1);
		np_scan_bits(s, s->pending[c].hbit, s->pending[c].pbit);
		s->pending[c] = e;
	}
	np_scan_check(d, s, k->saddr, k->daddr, k->dport, k->proto);
}

/* An answer from target (hash) on port to initiator (hash): not a failure. */
static __always_inline void np_scan_answer(const struct np_det *d, __u64 initiator, __u64 target,
					   __u16 port)
{
	struct np_scan_slot *s = np_scan_slot(d, initiator, 0);

	if (s)
		np_pending_clear(s, np_attempt_tag(target, port));
}

/* A probe of prober toward target:port was refused (RST, ICMP unreachable):
 * a failure, and one more refusal toward the prober this flood window. */
static __always_inline void np_scan_refused(const struct np_det *d, const __u32 *prober,
					    const __u32 *target, __u16 port, __u8 proto)
{
	__u64 hprober = np_addr_hash(prober);
	__u64 htarget = np_addr_hash(target);
	__u32 win = (__u32)d->flood_win;
	struct np_scan_slot *s;

	s = np_scan_slot(d, hprober, 1);
	if (!s)
		return;
	np_pending_clear(s, np_attempt_tag(htarget, port));
	np_scan_bits(s, np_host_bit(htarget), np_port_bit(port));
	np_scan_check(d, s, prober, target, port, proto);
	if (!cfg_closed_ports)
		return;
	if (s->closed_win != win) {
		s->closed_win = win;
		s->closed = 0;
		s->closed_alerted = 0;
	}
	s->closed++;
	if (s->closed >= cfg_closed_ports && !s->closed_alerted) {
		s->closed_alerted = 1;
		np_alert(d, NP_ALERT_CLOSED_PORTS, s->closed, cfg_flood_window_ns, prober, target,
			 port, proto, 0, s->closed);
	}
}

/*
 * What a packet's place in the flow table says about scans. first: this
 * is the packet's first watched hook on this device (answers clear their
 * attempts on every hook: behind NAT only the inner side names the host
 * that asked).
 */
static __always_inline void np_scan_events(struct np_det *d, __u8 event, __u8 rev_tcp, int first)
{
	const struct np_parse *p = d->p;
	const struct np_flow_key *k = d->k;
	__u32 prober[4] = {}, target[4] = {};
	__u8 f = p->tcp_flags;
	int rst = p->l4 == NP_L4_TCP && (f & NP_TCPF_RST);
	__u16 port = 0;
	__u8 proto = 0;

	if (event == NP_FA_ANSWERED && !rst) {
		np_scan_answer(d, d->hdst, d->hsrc, k->sport);
		return;
	}
	if (!first)
		return;
	/* Refusals: one call site for the RST and the ICMP cases (every
	 * inlined copy is verified once per parse outcome). */
	if (event == NP_FA_ANSWERED) {
		/* A RST is the first answer: a refusal if what it answers was a
		 * probe (no ACK: SYN, FIN, NULL, Xmas), not a connection. */
		if (rev_tcp & NP_TCPF_ACK)
			return;
		__builtin_memcpy(prober, k->daddr, sizeof(prober));
		__builtin_memcpy(target, k->saddr, sizeof(target));
		port = k->sport;
		proto = k->proto;
	} else if (p->l4 == NP_L4_ICMP || p->l4 == NP_L4_ICMPV6) {
		/* An unreachable refuses the packet it quotes (parse.h), sent
		 * by the one it goes to. */
		if (!p->quoted)
			return;
		__builtin_memcpy(prober, k->daddr, sizeof(prober));
		__builtin_memcpy(target, p->qdst, sizeof(target));
		port = p->qport;
		proto = p->qproto;
	} else {
		if (p->group)
			return; /* multicast and broadcast are never probes */
		if (p->l4 == NP_L4_TCP && (f & (NP_TCPF_SYN | NP_TCPF_ACK | NP_TCPF_RST)) == 0) {
			/* FIN, NULL, Xmas: a probe on its own */
			struct np_scan_slot *s = np_scan_slot(d, d->hsrc, 1);

			if (s) {
				np_scan_bits(s, np_host_bit(d->hdst), np_port_bit(k->dport));
				np_scan_check(d, s, k->saddr, k->daddr, k->dport, k->proto);
			}
			return;
		}
		if (event != NP_FA_OPENED)
			return;
		if (p->l4 == NP_L4_UDP ||
		    (p->l4 == NP_L4_TCP && (f & (NP_TCPF_SYN | NP_TCPF_ACK)) == NP_TCPF_SYN))
			np_scan_attempt(d);
		return;
	}
	np_scan_refused(d, prober, target, port, proto);
}

/* 1: the packet carries a scan event (np_scan_events). */
static __always_inline int np_scan_wanted(const struct np_parse *p, const struct np_flow_res *fr)
{
	if (fr->event != NP_FA_NONE)
		return 1;
	if (p->l4 == NP_L4_ICMP || p->l4 == NP_L4_ICMPV6)
		return p->quoted;
	return p->l4 == NP_L4_TCP &&
	       !(p->tcp_flags & (NP_TCPF_SYN | NP_TCPF_ACK | NP_TCPF_RST));
}

/* ---- floods: unsolicited packets per destination ----------------------- */

/* A fresh window for a slot: zero its counts. */
static __always_inline void np_flood_reset(struct np_flood_slot *s, __u64 win)
{
	__builtin_memset(s, 0, sizeof(*s));
	s->window = win;
}

/* Bit 1 << kind if count has reached thr and the kind is not yet alerted. */
static __always_inline __u32 np_flood_due(const struct np_flood_slot *s, __u32 kind, __u64 count,
					  __u64 thr)
{
	if (thr == 0 || count < thr || (s->alerted & (1U << kind)))
		return 0;
	return 1U << kind;
}

/*
 * One alert of a flood kind whose count crossed thr: names the source only
 * with its own count. Many sources: none named. A few, and this packet's
 * source is not the candidate: wait for the candidate's next packet,
 * unless the count is already twice the threshold (then none is named).
 */
static __always_inline void np_flood_alert(const struct np_det *d, struct np_flood_slot *s,
					   __u32 kind, __u64 count, __u64 thr, __u32 sources)
{
	const struct np_flow_key *k = d->k;
	__u16 port = kind == NP_ALERT_ICMP_FLOOD ? 0 : k->dport;
	const __u32 *src;

	if (!np_flood_due(s, kind, count, thr))
		return;
	if (sources > NP_SPOOFED_SOURCES)
		src = 0;
	else if (d->hsrc == s->cand)
		src = k->saddr;
	else if (count >= 2 * thr)
		src = 0;
	else
		return;
	s->alerted |= 1U << kind;
	np_alert(d, kind, count, cfg_flood_window_ns, src, k->daddr, port, k->proto, sources,
		 s->cand_pkts);
}

/* An unsolicited packet (not of a two-way flow) toward its destination.
 * weight: packets it stands for (sampling under a flood); handshake: it
 * completed a TCP handshake. */
static __always_inline void np_flood_account(const struct np_det *d, __u64 len, __u32 weight,
					     int handshake)
{
	struct np_flow_stats *v;
	const struct np_parse *p = d->p;
	__u32 idx = (__u32)d->hdst & cfg_flood_mask;
	__u32 sources, due = 0, half = 0, undo;
	struct np_flood_slot *s;
	__u8 f = p->tcp_flags;

	s = bpf_map_lookup_elem(&flood_state, &idx);
	if (!s)
		return;
	if (s->window != d->flood_win)
		np_flood_reset(s, d->flood_win);
	/* Majority vote: the candidate is the source with most packets. */
	if (s->cand == d->hsrc) {
		s->cand_pkts += weight;
	} else {
		s->others += weight;
		if (s->others > s->cand_pkts) {
			s->cand = d->hsrc;
			s->cand_pkts = weight;
			s->others = 0;
		}
	}
	s->pkts += weight;
	s->bytes += len * weight;
	s->srcs |= 1ULL << (d->hsrc >> 58);

	if (p->l4 == NP_L4_TCP) {
		if ((f & (NP_TCPF_SYN | NP_TCPF_ACK)) == NP_TCPF_SYN) {
			s->syn += weight;
			/* SYNs beyond the completed handshakes: half-open ones. */
			half = s->syn > s->handshakes ? s->syn - s->handshakes : 0;
			due |= np_flood_due(s, NP_ALERT_SYN_FLOOD, half, cfg_syn_flood);
		} else if (handshake) {
			s->handshakes += weight;
		}
	} else if (p->l4 == NP_L4_UDP) {
		s->udp += weight;
		due |= np_flood_due(s, NP_ALERT_UDP_FLOOD, s->udp, cfg_udp_flood);
	} else if (p->l4 == NP_L4_ICMP || p->l4 == NP_L4_ICMPV6) {
		s->icmp += weight;
		due |= np_flood_due(s, NP_ALERT_ICMP_FLOOD, s->icmp, cfg_icmp_flood);
	}
	due |= np_flood_due(s, NP_ALERT_DST_PPS, s->pkts, cfg_dst_pps);
	due |= np_flood_due(s, NP_ALERT_DST_BPS, s->bytes, cfg_dst_bytes);
	if (!due)
		return;
	/*
	 * About to alert on UDP: a tunnel whose other side sends back to the
	 * same port (VXLAN, Geneve) is a conversation, found only now, once
	 * per flow, from the stamps (conversation.h). Its packets leave the
	 * counts (the candidate's, when it is the candidate) and the flow is
	 * two-way from now on.
	 */
	if (p->l4 == NP_L4_UDP && np_conv_answered(d->k, d->now)) {
		undo = s->cand == d->hsrc ? s->cand_pkts : weight;
		s->pkts -= undo < s->pkts ? undo : s->pkts;
		s->udp -= undo < s->udp ? undo : s->udp;
		s->bytes -= len * undo < s->bytes ? len * undo : s->bytes;
		if (s->cand == d->hsrc)
			s->cand_pkts = 0;
		v = bpf_map_lookup_elem(&flow_stats, d->k);
		if (v)
			v->flags |= NP_FLOW_TWOWAY;
		return;
	}
	/* Each kind checks again from the slot: a mask of due kinds carried
	 * in a register would split the verifier's paths per combination. */
	sources = __builtin_popcountll(s->srcs);
	if (p->l4 == NP_L4_TCP)
		np_flood_alert(d, s, NP_ALERT_SYN_FLOOD, half, cfg_syn_flood, sources);
	else if (p->l4 == NP_L4_UDP)
		np_flood_alert(d, s, NP_ALERT_UDP_FLOOD, s->udp, cfg_udp_flood, sources);
	else if (p->l4 == NP_L4_ICMP || p->l4 == NP_L4_ICMPV6)
		np_flood_alert(d, s, NP_ALERT_ICMP_FLOOD, s->icmp, cfg_icmp_flood, sources);
	np_flood_alert(d, s, NP_ALERT_DST_PPS, s->pkts, cfg_dst_pps, sources);
	np_flood_alert(d, s, NP_ALERT_DST_BPS, s->bytes, cfg_dst_bytes, sources);
}

/* A completed handshake (its ACK is in a two-way flow by then: the SYN-ACK
 * answered it) toward the destination: SYNs up to it are not half-open. */
static __always_inline void np_flood_handshake(const struct np_det *d, __u32 weight)
{
	__u32 idx = (__u32)d->hdst & cfg_flood_mask;
	struct np_flood_slot *s = bpf_map_lookup_elem(&flood_state, &idx);

	if (!s)
		return;
	if (s->window != d->flood_win)
		np_flood_reset(s, d->flood_win);
	s->handshakes += weight;
}

/*
 * 1: the packet counts toward the flood detectors. A packet of a two-way
 * flow (a conversation: an answered connection, a tunnel) does not. ICMP
 * is keyed without the echo id, so all pings between two hosts are one
 * flow: there only the replies to this side's own pings are exempt, and
 * an echo request flood counts even when the victim answers it.
 */
static __always_inline int np_unsolicited(const struct np_parse *p, const struct np_flow_res *fr)
{
	if (p->l4 == NP_L4_ICMP || p->l4 == NP_L4_ICMPV6)
		return !(fr->flags & NP_FLOW_REPLY);
	return !(fr->flags & NP_FLOW_TWOWAY);
}

static __always_inline void np_iface_account(const struct np_det *d, __u64 len)
{
	__u64 wns = cfg_flood_window_ns;
	__u32 idx = d->ifindex & 255;
	struct np_flood_slot *s;

	if (!cfg_iface_pps && !cfg_iface_bytes)
		return;
	s = bpf_map_lookup_elem(&iface_rate, &idx);
	if (!s)
		return;
	if (s->window != d->flood_win)
		np_flood_reset(s, d->flood_win);
	s->pkts++;
	s->bytes += len;
	if (np_flood_due(s, NP_ALERT_IFACE_PPS, s->pkts, cfg_iface_pps)) {
		s->alerted |= 1U << NP_ALERT_IFACE_PPS;
		np_alert(d, NP_ALERT_IFACE_PPS, s->pkts, wns, 0, d->k->daddr, 0, d->k->proto, 0, 0);
	}
	if (np_flood_due(s, NP_ALERT_IFACE_BPS, s->bytes, cfg_iface_bytes)) {
		s->alerted |= 1U << NP_ALERT_IFACE_BPS;
		np_alert(d, NP_ALERT_IFACE_BPS, s->bytes, wns, 0, d->k->daddr, 0, d->k->proto, 0, 0);
	}
}

/* The key of one address, IPv4 mapped into IPv6. */
static __always_inline void np_lpm_of(struct np_lpm_key *lk, const __u32 *a, __u8 family)
{
	lk->prefixlen = 128;
	if (family == NP_FAMILY_IPV4) {
		lk->addr[0] = 0;
		lk->addr[1] = 0;
		lk->addr[2] = bpf_htonl(0x0000ffff);
		lk->addr[3] = a[0];
	} else {
		lk->addr[0] = a[0];
		lk->addr[1] = a[1];
		lk->addr[2] = a[2];
		lk->addr[3] = a[3];
	}
}

/* Blocklist rule for src, else dst; NULL if neither is listed. */
static __always_inline struct np_rule *np_list_match(void *map, const struct np_flow_key *k,
						     struct np_lpm_key *src, struct np_lpm_key *dst)
{
	struct np_rule *r = bpf_map_lookup_elem(map, src);

	if (!r)
		r = bpf_map_lookup_elem(map, dst);
	return r;
}

#define NP_VERDICT_PASS 0
#define NP_VERDICT_DROP 1

/*
 * Lists and blocks; only when configured (cfg_lists, cfg_mitigate).
 * Returns NP_VERDICT_DROP only with --mitigate=on.
 */
static __always_inline int np_lists(const struct np_flow_key *k, __u64 now, __u32 ifindex,
				    int ingress)
{
	struct np_lpm_key src, dst;
	struct np_rule *r = 0;
	struct np_block *b = 0;

	if (!cfg_mitigate && !(cfg_lists & NP_LISTS_BLOCK))
		return NP_VERDICT_PASS;
	np_lpm_of(&src, k->saddr, k->family);
	np_lpm_of(&dst, k->daddr, k->family);

	if (cfg_mitigate && ingress)
		b = bpf_map_lookup_elem(&blocked_sources, &src);
	if (b && b->expires_ns <= now)
		b = 0; /* expired: the agent removes it */
	if (!b && (cfg_lists & NP_LISTS_BLOCK)) {
		r = np_list_match(&blocklist, k, &src, &dst);
		if (r) {
			__sync_fetch_and_add(&r->hits, 1);
			/* One record per rule per second (racy check: the agent dedups). */
			if (now - r->last_event_ns >= 1000000000ULL) {
				r->last_event_ns = now;
				np_alert_at(ifindex, now, k->family, NP_ALERT_BLOCKLIST, r->hits,
					    1000000000ULL, k->saddr, k->daddr, k->dport, k->proto, 0,
					    0);
			}
		}
	}
	if (!b && !r)
		return NP_VERDICT_PASS;
	if (!cfg_mitigate || !ingress)
		return NP_VERDICT_PASS;
	if (cfg_lists & NP_LISTS_ALLOW) {
		struct np_rule *a = np_list_match(&allowlist, k, &src, &dst);

		if (a) {
			__sync_fetch_and_add(&a->hits, 1);
			np_det_count(NP_DET_ALLOWED);
			return NP_VERDICT_PASS;
		}
	}
	/* A block stops what the blocked source starts, never a conversation
	 * the other side started (only blocked sources pay these lookups). */
	if (b && !r && np_answers_other_side(k)) {
		np_det_count(NP_DET_PASS_ANSWER);
		return NP_VERDICT_PASS;
	}
	if (b)
		__sync_fetch_and_add(&b->hits, 1);
	if (cfg_mitigate == NP_MITIGATE_ON) {
		np_det_count(b ? NP_DET_DROP_BLOCKED : NP_DET_DROP_LIST);
		return NP_VERDICT_DROP;
	}
	np_det_count(b ? NP_DET_DRY_BLOCKED : NP_DET_DRY_LIST);
	return NP_VERDICT_PASS;
}

/*
 * Ingress detectors; netprobe.bpf.c checks np_lists (which may drop)
 * first, and accounts the flow before (fr). weight: how many packets this
 * one stands for in the per-address detectors. Under a flood of new flows
 * netprobe.bpf.c samples them: one packet in N feeds the flood counters
 * with weight N, the others (weight 0) skip the detectors. Each would
 * touch a slot picked by a random address, a cache miss per packet;
 * sampled, the counts stay unbiased. Ingress is always a packet's first
 * watched hook on this device.
 */
static __always_inline void np_detect_ingress(const struct np_parse *p, const struct np_flow_key *k,
					      __u64 len, __u64 now, __u32 ifindex, __u32 weight,
					      const struct np_flow_res *fr)
{
	struct np_det d;

	if (!cfg_detect)
		return;
	np_det_init(&d, p, k, now, ifindex);
	np_iface_account(&d, len);
	if (!weight)
		return;
	np_det_hash(&d);
	if (np_unsolicited(p, fr))
		np_flood_account(&d, len, weight, fr->handshake);
	else if (fr->handshake)
		np_flood_handshake(&d, weight);
	if (np_scan_wanted(p, fr))
		np_scan_events(&d, fr->event, fr->rev_tcp, 1);
}

/* 1: a packet leaving through egress entered this device on a watched
 * interface, whose ingress probe has already fed the detectors with it. */
static __always_inline int np_forwarded_from_watched(__u32 ingress_ifindex)
{
	struct np_stats_key key = { .ifindex = ingress_ifindex, .hook = NP_HOOK_TC_INGRESS };

	return ingress_ifindex && bpf_map_lookup_elem(&packet_stats, &key) != 0;
}

/*
 * Egress: the blocklist (traffic to listed addresses, never a drop), and
 * the scan events of what this host sends itself (its attempts, its
 * answers, its refusals: RSTs and unreachables from closed ports); of a
 * forwarded packet only the answers (see np_scan_events). weight: as at
 * ingress (0: skipped, under a flood of new flows).
 */
static __always_inline void np_detect_egress(const struct np_parse *p, const struct np_flow_key *k,
					     __u64 now, __u32 ifindex, __u32 ingress_ifindex,
					     __u32 weight, const struct np_flow_res *fr)
{
	struct np_det d;

	if (cfg_lists & NP_LISTS_BLOCK)
		np_lists(k, now, ifindex, 0);
	/* weight 0: a flood of new flows, sampled as at ingress. */
	if (!cfg_detect || !weight)
		return;
	if (!np_scan_wanted(p, fr))
		return;
	np_det_init(&d, p, k, now, ifindex);
	np_det_hash(&d);
	np_scan_events(&d, fr->event, fr->rev_tcp, !np_forwarded_from_watched(ingress_ifindex));
}

#endif /* NP_DETECT_H */
