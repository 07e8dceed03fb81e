/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
#ifndef NP_ABI_DETECT_H
#define NP_ABI_DETECT_H

#include "abi/types.h"

/*
 * Detection and mitigation (probes/include/detect.h). Rust mirror:
 * agent/src/abi/detect.rs. Alert records share np_event's first 24 bytes
 * (type, ifindex, timestamp_ns, value) and its ring buffer.
 */
enum np_alert_kind {
	NP_ALERT_SCAN_VERTICAL = 1,   /* one source, many ports */
	NP_ALERT_SCAN_HORIZONTAL = 2, /* one source, many hosts */
	NP_ALERT_SYN_FLOOD = 3,       /* half-open SYNs toward a destination */
	NP_ALERT_UDP_FLOOD = 4,       /* unsolicited UDP toward a destination */
	NP_ALERT_ICMP_FLOOD = 5,      /* unsolicited ICMP or ICMPv6 */
	NP_ALERT_DST_PPS = 6,         /* unsolicited packets per second toward a destination */
	NP_ALERT_DST_BPS = 7,         /* unsolicited bytes per second toward a destination */
	NP_ALERT_IFACE_PPS = 8,       /* packets per second on an interface */
	NP_ALERT_IFACE_BPS = 9,
	NP_ALERT_CLOSED_PORTS = 10,   /* burst of refusals (RST to a probe, ICMP unreachable) toward a prober */
	NP_ALERT_PORT_POLICY = 11,    /* connection to a port outside the allowed ports */
	NP_ALERT_BLOCKLIST = 12,      /* traffic from or to a blocklisted address */
	NP_ALERT_KIND_MAX = 16,
};

/* Ring-buffer record of type NP_EVENT_ALERT: one per key per window. */
struct np_alert_event {
	__u32 type;         /* NP_EVENT_ALERT */
	__u32 ifindex;
	__u64 timestamp_ns; /* boot-time ns */
	__u64 value;        /* count in the window when the threshold was crossed */
	__u32 kind;         /* enum np_alert_kind */
	__u8 family;        /* enum np_family */
	__u8 proto;         /* IPPROTO_* of the packet that crossed */
	__u16 port;         /* destination port of that packet (scans: the port swept) */
	__u32 src[4];       /* source: the scanner, the prober, the flood's named source;
			     * zero when no single source is named; network order */
	__u32 dst[4];
	__u64 window_ns;    /* window the count is over */
	__u32 sources;      /* floods: bits set in a 64-bit sketch of sources (many: spoofed) */
	__u32 own;          /* src's own share of value in the window (scans, closed ports:
			     * all of it; floods: its unsolicited packets); 0 when src is zero */
};

#define NP_EVENT_ALERT 2

/* Floods whose source sketch has more bits set than this come from many
 * (random or spoofed) sources: the alert names none (src zero). */
#define NP_SPOOFED_SOURCES 4

/* Index of np_detect_stats.c (per CPU). */
enum np_detect_counter {
	NP_DET_EVENTS_SENT = 0,   /* alert records written */
	NP_DET_EVENTS_LOST = 1,   /* ring buffer full: alert record not written */
	NP_DET_DROP_LIST = 2,     /* dropped: blocklist rule (--mitigate=on) */
	NP_DET_DROP_BLOCKED = 3,  /* dropped: detected source (--mitigate=on) */
	NP_DET_DRY_LIST = 4,      /* would have been dropped (--mitigate=dry-run) */
	NP_DET_DRY_BLOCKED = 5,
	NP_DET_ALLOWED = 6,       /* matched a rule but allowlisted: passed */
	NP_DET_SYN_FAST = 7,      /* SYN not looked up in flow_stats: CPU in flood mode */
	NP_DET_SCAN_UNTRACKED = 8,/* an attempt or failure not counted: its source's scan slot
				   * belongs to another source with failures this window */
	NP_DET_PASS_ANSWER = 9,   /* a blocked source's packet passed: it answers a conversation
				   * the other side started */
	NP_DET_COUNTER_MAX = 16,
};

struct np_detect_stats {
	__u64 c[NP_DET_COUNTER_MAX];
};

/* An address in blocklist/allowlist tries (LPM) and blocked_sources
 * (prefixlen 128). IPv4 as ::ffff:a.b.c.d, prefix + 96. Network order. */
struct np_lpm_key {
	__u32 prefixlen;
	__u32 addr[4];
};

/* blocklist value: one per rule; counters added atomically by the probes. */
struct np_rule {
	__u64 hits;          /* packets matched (dropped when --mitigate=on) */
	__u64 last_event_ns; /* last alert record for this rule (one per second) */
};

/* blocked_sources value: a source the agent blocked after an alert. */
struct np_block {
	__u64 expires_ns; /* boot-time ns; passes again after */
	__u64 hits;       /* packets matched while active */
	__u32 kind;       /* enum np_alert_kind that caused it */
	__u32 pad;
};

_Static_assert(sizeof(struct np_alert_event) == 80, "np_alert_event");
_Static_assert(sizeof(struct np_detect_stats) == 128, "np_detect_stats");
_Static_assert(sizeof(struct np_lpm_key) == 20, "np_lpm_key");
_Static_assert(sizeof(struct np_rule) == 16, "np_rule");
_Static_assert(sizeof(struct np_block) == 24, "np_block");

#endif /* NP_ABI_DETECT_H */
