/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Scan, flood and abnormal-connection detection, and opt-in mitigation.
 *
 * Fixed memory, whatever the traffic: every detector state is a slot of a
 * plain array indexed by a hash (no inserts, no LRU churn), so a flood of
 * random sources costs the same two array lookups per packet as one
 * source, and cannot grow anything.
 *
 *  - scan_state[hash(src)]: per source and window, two 256-bit
 *    linear-counting sketches, of destination ports and of destination
 *    hosts, fed by probe-like packets only (TCP without ACK or RST: SYN,
 *    FIN, NULL, Xmas; UDP from a port >= 1024). Bits set estimate distinct
 *    ports/hosts; the loader turns a distinct-count threshold into bits.
 *    Colliding sources share a slot (counts can only rise, so a collision
 *    cannot hide a scan); the alert names the source of the packet that
 *    crossed the threshold.
 *  - flood_state[hash(dst)]: per destination and window, packets, bytes,
 *    SYNs, completed handshakes, UDP, ICMP, RST/unreachable replies, and a
 *    64-bit sketch of sources (many bits: random or spoofed sources).
 *  - iface_rate[ifindex & 255]: packets and bytes per interface and window.
 *
 * Counters are plain (not atomic) increments shared by the CPUs: a race
 * loses an increment now and then, which a threshold detector tolerates,
 * and the packet path takes no locked instruction. A threshold crossing
 * writes one alert record per key, kind and window to the events ring
 * buffer; a full ring counts NP_DET_EVENTS_LOST, never silently.
 *
 * Mitigation (cfg_mitigate): 0 off (nothing is ever dropped), 1 dry-run
 * (matches counted, packets pass), 2 on (XDP_DROP / TC_ACT_SHOT). Checked
 * first: allowlist (never dropped), blocked_sources (the agent's expiring
 * blocks of detected sources), blocklist (operator's CIDRs).
 */
#ifndef NP_DETECT_H
#define NP_DETECT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/packet.h"
#include "abi/detect.h"
#include "maps.h"
#include "parse.h"

/* Tunables the loader sets from the flags (0 disables a detector). */
const volatile __u32 cfg_detect = 1;                      /* 0: no detection work at all */
const volatile __u64 cfg_scan_window_ns = 2000000000ULL;  /* --scan-window */
const volatile __u32 cfg_scan_port_bits = 23;             /* sketch bits for --scan-ports (25) */
const volatile __u32 cfg_scan_host_bits = 15;             /* sketch bits for --scan-hosts (16) */
const volatile __u64 cfg_flood_window_ns = 100000000ULL;  /* --flood-window */
const volatile __u32 cfg_syn_flood = 300;                 /* SYNs per flood window */
const volatile __u32 cfg_udp_flood = 2000;                /* UDP packets per flood window */
const volatile __u32 cfg_icmp_flood = 200;                /* ICMP packets per flood window */
const volatile __u32 cfg_dst_pps = 0;                     /* packets per flood window toward a destination */
const volatile __u64 cfg_dst_bytes = 0;                   /* bytes per flood window toward a destination */
const volatile __u32 cfg_iface_pps = 0;                   /* packets per flood window on an interface */
const volatile __u64 cfg_iface_bytes = 0;                 /* bytes per flood window on an interface */
const volatile __u32 cfg_closed_ports = 100;              /* RSTs + unreachables toward one address per flood window */
const volatile __u32 cfg_port_policy = 0;                 /* 1: alert on connections to ports not in allowed_ports */
const volatile __u32 cfg_lists = 0;                       /* bit 0: blocklist has rules, bit 1: allowlist has rules */
const volatile __u32 cfg_mitigate = 0;                    /* 0 off, 1 dry-run, 2 on */
const volatile __u32 cfg_syn_fast = 1;                    /* skip flow lookups of SYNs while admission is refusing */
const volatile __u32 cfg_scan_mask = 8192 - 1;            /* scan_state entries - 1 (a power of two) */
const volatile __u32 cfg_flood_mask = 4096 - 1;           /* flood_state entries - 1 (a power of two) */

#define NP_MITIGATE_DRY 1
#define NP_MITIGATE_ON 2
#define NP_LISTS_BLOCK 1
#define NP_LISTS_ALLOW 2

#define NP_SCAN_TCP 1
#define NP_SCAN_UDP 2

/* Probe-private: per-source scan sketch (not part of the agent ABI). */
struct np_scan_slot {
	__u64 window;   /* window number (now / cfg_scan_window_ns) */
	__u64 ports[4]; /* 256-bit sketch of destination ports */
	__u64 hosts[4]; /* 256-bit sketch of destination hosts */
	__u32 nports;   /* bits set in ports */
	__u32 nhosts;
	__u32 alerted;  /* 1 << kind, per window */
	__u32 pad;
};

/* Probe-private: per-destination (or per-interface) window counters. */
struct np_flood_slot {
	__u64 window;
	__u64 bytes;
	__u64 srcs; /* 64-bit sketch of sources */
	__u32 pkts;
	__u32 syn;
	__u32 handshakes; /* completed: the first ACK of a flow that showed a SYN */
	__u32 udp;
	__u32 icmp;
	__u32 closed; /* RSTs and ICMP unreachables toward this address */
	__u32 alerted;
	__u32 pad[5]; /* 64 bytes: one cache line (the array is page-aligned) */
};

/* Per-source scan sketches; probe-private, sized by --scan-slots. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8192);
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

static __always_inline __u32 np_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	h *= 0x846ca68b;
	h ^= h >> 16;
	return h;
}

/*
 * A 64-bit hash of an address, computed once per packet for each of source
 * and destination; each detector takes its own bits of it (slot indices
 * from the low bits, sketch bits from the high ones). Independent
 * multiplies of the words overlap in the CPU, then a splitmix64 finish;
 * an IPv4 address (one word) maps one-to-one.
 */
static __always_inline __u64 np_addr_hash(const __u32 *a)
{
	__u64 h;

	h = (__u64)a[0] * 0x9e3779b97f4a7c15ULL;
	h ^= ((__u64)a[1] << 32 | a[2]) * 0xc2b2ae3d27d4eb4fULL;
	h ^= (__u64)a[3] * 0x165667b19e3779f9ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

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

/* What the detectors share about one packet. */
struct np_det {
	const struct np_parse *p;
	const struct np_flow_key *k;
	__u64 now;
	__u64 flood_win;
	__u64 scan_win;
	__u64 hsrc; /* np_addr_hash(k->saddr); ingress only */
	__u64 hdst; /* np_addr_hash(k->daddr); ingress only */
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

static __always_inline void np_det_count(__u32 idx)
{
	__u32 zero = 0;
	struct np_detect_stats *s = bpf_map_lookup_elem(&detect_stats, &zero);

	if (s)
		s->c[idx & (NP_DET_COUNTER_MAX - 1)]++;
}

/* One alert record; swap: the packet's destination is the alert's source. */
static __always_inline void np_alert(__u32 kind, __u32 ifindex, __u64 now, __u64 value,
				     __u64 window_ns, const struct np_flow_key *k, __u16 port,
				     __u32 sources, int swap)
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
	e->family = k->family;
	e->proto = k->proto;
	e->port = port;
	if (swap) {
		__builtin_memcpy(e->src, k->daddr, sizeof(e->src));
		__builtin_memcpy(e->dst, k->saddr, sizeof(e->dst));
	} else {
		__builtin_memcpy(e->src, k->saddr, sizeof(e->src));
		__builtin_memcpy(e->dst, k->daddr, sizeof(e->dst));
	}
	e->window_ns = window_ns;
	e->sources = sources;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	np_det_count(NP_DET_EVENTS_SENT);
}

/* Sets bit h & 255 of a 256-bit sketch; 1 if it was clear. */
static __always_inline int np_sketch_add(__u64 *words, __u32 h)
{
	__u32 w = (h >> 6) & 3; /* verifier: bounded index */
	__u64 bit = 1ULL << (h & 63);

	if (words[w] & bit)
		return 0;
	words[w] |= bit;
	return 1;
}

/* A fresh window for a slot: zero its counts. */
static __always_inline void np_flood_reset(struct np_flood_slot *s, __u64 win)
{
	s->window = win;
	s->bytes = 0;
	s->srcs = 0;
	s->pkts = 0;
	s->syn = 0;
	s->handshakes = 0;
	s->udp = 0;
	s->icmp = 0;
	s->closed = 0;
	s->alerted = 0;
}

/* Alerts once per slot, kind and window when count reaches a threshold. */
static __always_inline int np_crossed(struct np_flood_slot *s, __u32 kind, __u64 count, __u64 thr)
{
	__u32 bit = 1U << kind;

	if (thr == 0 || count < thr || (s->alerted & bit))
		return 0;
	s->alerted |= bit;
	return 1;
}

/* weight: packets this one stands for (sampling under a flood);
 * handshake: it completed a TCP handshake (np_flow_account). */
static __always_inline void np_flood_account(const struct np_det *d, __u64 len, __u32 weight,
					     int handshake)
{
	const struct np_parse *p = d->p;
	const struct np_flow_key *k = d->k;
	__u64 wns = cfg_flood_window_ns;
	__u32 idx = (__u32)d->hdst & cfg_flood_mask;
	__u32 ifindex = d->ifindex;
	__u64 now = d->now;
	__u32 sources;
	struct np_flood_slot *s;
	__u8 f = p->tcp_flags;

	s = bpf_map_lookup_elem(&flood_state, &idx);
	if (!s)
		return;
	if (s->window != d->flood_win)
		np_flood_reset(s, d->flood_win);
	s->pkts += weight;
	s->bytes += len * weight;
	s->srcs |= 1ULL << (d->hsrc >> 58);
	sources = __builtin_popcountll(s->srcs);

	if (p->l4 == NP_L4_TCP) {
		if ((f & (NP_TCPF_SYN | NP_TCPF_ACK)) == NP_TCPF_SYN) {
			s->syn += weight;
			/* SYNs beyond the completed handshakes: half-open ones. */
			if (s->syn > s->handshakes &&
			    np_crossed(s, NP_ALERT_SYN_FLOOD, s->syn - s->handshakes, cfg_syn_flood))
				np_alert(NP_ALERT_SYN_FLOOD, ifindex, now, s->syn - s->handshakes, wns, k,
					 k->dport, sources, 0);
		} else if (handshake) {
			s->handshakes += weight;
		}
	} else if (p->l4 == NP_L4_UDP) {
		s->udp += weight;
		if (np_crossed(s, NP_ALERT_UDP_FLOOD, s->udp, cfg_udp_flood))
			np_alert(NP_ALERT_UDP_FLOOD, ifindex, now, s->udp, wns, k, k->dport, sources, 0);
	} else if (p->l4 == NP_L4_ICMP || p->l4 == NP_L4_ICMPV6) {
		s->icmp += weight;
		if (np_crossed(s, NP_ALERT_ICMP_FLOOD, s->icmp, cfg_icmp_flood))
			np_alert(NP_ALERT_ICMP_FLOOD, ifindex, now, s->icmp, wns, k, 0, sources, 0);
	}
	if (np_crossed(s, NP_ALERT_DST_PPS, s->pkts, cfg_dst_pps))
		np_alert(NP_ALERT_DST_PPS, ifindex, now, s->pkts, wns, k, k->dport, sources, 0);
	if (np_crossed(s, NP_ALERT_DST_BPS, s->bytes, cfg_dst_bytes))
		np_alert(NP_ALERT_DST_BPS, ifindex, now, s->bytes, wns, k, k->dport, sources, 0);
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
	if (np_crossed(s, NP_ALERT_IFACE_PPS, s->pkts, cfg_iface_pps))
		np_alert(NP_ALERT_IFACE_PPS, d->ifindex, d->now, s->pkts, wns, d->k, 0, 0, 0);
	if (np_crossed(s, NP_ALERT_IFACE_BPS, s->bytes, cfg_iface_bytes))
		np_alert(NP_ALERT_IFACE_BPS, d->ifindex, d->now, s->bytes, wns, d->k, 0, 0, 0);
}

/* RSTs and ICMP/ICMPv6 destination unreachables, counted toward the
 * address they go to (the prober); any hook. */
static __always_inline void np_closed_account(const struct np_det *d, __u32 weight)
{
	const struct np_parse *p = d->p;
	const struct np_flow_key *k = d->k;
	struct np_flood_slot *s;
	__u32 idx;
	int reply;

	if (!cfg_closed_ports)
		return;
	if (p->l4 == NP_L4_TCP)
		reply = p->tcp_flags & NP_TCPF_RST;
	else if (p->l4 == NP_L4_ICMP)
		reply = (k->sport >> 8) == 3;  /* ICMP_DEST_UNREACH */
	else if (p->l4 == NP_L4_ICMPV6)
		reply = (k->sport >> 8) == 1;  /* ICMPV6_DEST_UNREACH */
	else
		reply = 0;
	if (!reply)
		return;
	idx = (__u32)np_addr_hash(k->daddr) & cfg_flood_mask; /* as np_flood_account's */
	s = bpf_map_lookup_elem(&flood_state, &idx);
	if (!s)
		return;
	if (s->window != d->flood_win)
		np_flood_reset(s, d->flood_win);
	s->closed += weight;
	if (np_crossed(s, NP_ALERT_CLOSED_PORTS, s->closed, cfg_closed_ports))
		np_alert(NP_ALERT_CLOSED_PORTS, d->ifindex, d->now, s->closed, cfg_flood_window_ns, k,
			 k->sport, 0, 1);
}

/* Probe-like packets feed the per-source scan sketches. */
static __always_inline void np_scan_account(const struct np_det *d)
{
	const struct np_parse *p = d->p;
	const struct np_flow_key *k = d->k;
	__u64 wns = cfg_scan_window_ns;
	__u32 ifindex = d->ifindex;
	__u64 now = d->now;
	struct np_scan_slot *s;
	__u8 f = p->tcp_flags;
	__u32 idx, bit;

	if (p->l4 == NP_L4_TCP) {
		/* SYN, FIN, NULL, Xmas: no ACK, no RST */
		if (f & (NP_TCPF_ACK | NP_TCPF_RST))
			return;
	} else if (p->l4 == NP_L4_UDP) {
		/* Replies from services (source port < 1024) are not probes. */
		if (k->sport < 1024)
			return;
	} else {
		return;
	}

	if (cfg_port_policy) {
		__u32 w = k->dport >> 6;
		__u64 *allowed = bpf_map_lookup_elem(&allowed_ports, &w);

		if (allowed && !(*allowed & (1ULL << (k->dport & 63))) &&
		    (p->l4 == NP_L4_UDP || (f & NP_TCPF_SYN)))
			bit = 1; /* checked below, once per source and window */
		else
			bit = 0;
	} else {
		bit = 0;
	}

	idx = (__u32)d->hsrc & cfg_scan_mask;
	s = bpf_map_lookup_elem(&scan_state, &idx);
	if (!s)
		return;
	if (s->window != d->scan_win) {
		__builtin_memset(s, 0, sizeof(*s));
		s->window = d->scan_win;
	}
	if (bit && !(s->alerted & (1U << NP_ALERT_PORT_POLICY))) {
		s->alerted |= 1U << NP_ALERT_PORT_POLICY;
		np_alert(NP_ALERT_PORT_POLICY, ifindex, now, 1, wns, k, k->dport, 0, 0);
	}
	if (np_sketch_add(s->ports, np_mix(k->dport ^ 0x85ebca6b)))
		s->nports++;
	if (np_sketch_add(s->hosts, (__u32)(d->hdst >> 40)))
		s->nhosts++;
	if (cfg_scan_port_bits && s->nports >= cfg_scan_port_bits &&
	    !(s->alerted & (1U << NP_ALERT_SCAN_VERTICAL))) {
		s->alerted |= 1U << NP_ALERT_SCAN_VERTICAL;
		np_alert(NP_ALERT_SCAN_VERTICAL, ifindex, now, s->nports, wns, k, k->dport, 0, 0);
	}
	if (cfg_scan_host_bits && s->nhosts >= cfg_scan_host_bits &&
	    !(s->alerted & (1U << NP_ALERT_SCAN_HORIZONTAL))) {
		s->alerted |= 1U << NP_ALERT_SCAN_HORIZONTAL;
		np_alert(NP_ALERT_SCAN_HORIZONTAL, ifindex, now, s->nhosts, wns, k, k->dport, 0, 0);
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
				np_alert(NP_ALERT_BLOCKLIST, ifindex, now, r->hits, 1000000000ULL, k,
					 k->dport, 0, 0);
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
 * first, and accounts the flow before (handshake). weight: how many
 * packets this one stands for in the per-address detectors. Under a flood
 * of new flows netprobe.bpf.c samples them: one packet in N feeds the
 * flood counters with weight N and the scan sketches, the others (weight
 * 0) skip both. Each would touch a slot picked by a random address, a
 * cache miss per packet; sampled, the counts stay unbiased, and a scan
 * inside such a flood needs N times the probes to show.
 */
static __always_inline void np_detect_ingress(const struct np_parse *p, const struct np_flow_key *k,
					      __u64 len, __u64 now, __u32 ifindex, __u32 weight,
					      int handshake)
{
	struct np_det d;

	if (!cfg_detect)
		return;
	np_det_init(&d, p, k, now, ifindex);
	np_iface_account(&d, len);
	if (!weight)
		return;
	d.hsrc = np_addr_hash(k->saddr);
	d.hdst = np_addr_hash(k->daddr);
	np_flood_account(&d, len, weight, handshake);
	np_closed_account(&d, weight);
	np_scan_account(&d);
}

/* Egress: RST/unreachable replies and the blocklist (traffic to listed
 * addresses), never a drop. */
static __always_inline void np_detect_egress(const struct np_parse *p, const struct np_flow_key *k,
					     __u64 now, __u32 ifindex)
{
	struct np_det d;

	if (cfg_lists & NP_LISTS_BLOCK)
		np_lists(k, now, ifindex, 0);
	if (!cfg_detect)
		return;
	if (p->l4 != NP_L4_TCP && p->l4 != NP_L4_ICMP && p->l4 != NP_L4_ICMPV6)
		return; /* only these carry replies from closed ports */
	np_det_init(&d, p, k, now, ifindex);
	np_closed_account(&d, 1);
}

#endif /* NP_DETECT_H */
