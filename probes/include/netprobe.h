/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The ABI between the probes and the agent: every map key, map value and
 * enum the agent reads is defined here and nowhere else.
 *
 * Rust mirror: agent/src/abi.rs (#[repr(C)], size assertions on both sides).
 * Rules: fixed-width types only, no bool, explicit padding, every size
 * asserted. Change a layout and the agent's kernel test fails on map open.
 */
#ifndef NETPROBE_H
#define NETPROBE_H

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

/* Where a probe runs. Part of the packet_stats key. */
enum np_hook {
	NP_HOOK_XDP = 0,
	NP_HOOK_TC_INGRESS = 1,
	NP_HOOK_TC_EGRESS = 2,
	NP_HOOK_MAX = 3,
};

/* Address family of a parsed packet: index of np_packet_stats.l3. */
enum np_family {
	NP_FAMILY_IPV4 = 0,
	NP_FAMILY_IPV6 = 1,
	NP_FAMILY_MAX = 2,
};

/* L4 protocol of a parsed packet: index of np_packet_stats.l3[].l4. */
enum np_l4 {
	NP_L4_TCP = 0,
	NP_L4_UDP = 1,
	NP_L4_ICMP = 2,   /* ICMP over IPv4 */
	NP_L4_ICMPV6 = 3, /* ICMPv6 over IPv6 */
	NP_L4_OTHER = 4,  /* any other next header, incl. ICMP in the wrong family */
	NP_L4_MAX = 5,
};

/* TCP flag combinations counted per hook. */
enum np_tcp_flag {
	NP_TCP_SYN = 0,    /* SYN without ACK: connection attempts */
	NP_TCP_SYNACK = 1, /* SYN with ACK */
	NP_TCP_FIN = 2,
	NP_TCP_RST = 3,
	NP_TCP_FLAG_MAX = 4,
};

/*
 * Why the parser stopped early. The packet always passes; the reason is
 * counted. NP_SKIP_NONE is never counted (the full parse succeeded).
 * Keep in step with abi.rs SKIP_NAMES and abi::skip (metric label values).
 */
enum np_skip {
	NP_SKIP_NONE = 0,
	NP_SKIP_SHORT_ETH = 1,      /* frame shorter than an Ethernet header */
	NP_SKIP_SHORT_VLAN = 2,     /* truncated 802.1Q/802.1ad tag */
	NP_SKIP_VLAN_DEPTH = 3,     /* more than two VLAN tags */
	NP_SKIP_NON_IP = 4,         /* ethertype is neither IPv4 nor IPv6 (ARP, LLDP, ...) */
	NP_SKIP_SHORT_IPV4 = 5,     /* truncated IPv4 header (fixed part or options) */
	NP_SKIP_BAD_IHL = 6,        /* IHL < 5 */
	NP_SKIP_BAD_VERSION = 7,    /* IP version nibble disagrees with the ethertype */
	NP_SKIP_SHORT_IPV6 = 8,     /* truncated IPv6 fixed header */
	NP_SKIP_SHORT_EXTHDR = 9,   /* truncated IPv6 extension header */
	NP_SKIP_EXTHDR_CHAIN = 10,  /* more IPv6 extension headers than the parser follows */
	NP_SKIP_FRAGMENT = 11,      /* non-first fragment: no L4 header to read */
	NP_SKIP_SHORT_L4 = 12,      /* truncated TCP/UDP/ICMP header */
	NP_SKIP_BAD_TCP_DOFF = 13,  /* TCP data offset < 5 */
	NP_SKIP_MAX = 16,
};

/* Why a packet was not attributed to a flow-table entry. */
enum np_flow_miss {
	NP_FLOW_NOT_ADMITTED = 0, /* new-flow admission budget spent (flood guard) */
	NP_FLOW_UPDATE_FAILED = 1,/* bpf_map_update_elem failed */
	NP_FLOW_MISS_MAX = 2,
};

struct np_counter {
	__u64 packets;
	__u64 bytes;
};

/* packet_stats key: one entry per interface and hook. */
struct np_stats_key {
	__u32 ifindex;
	__u32 hook; /* enum np_hook */
};

/*
 * packet_stats value (per CPU; the agent sums the CPUs).
 * Each packet lands in exactly one of: l3[][] (the IP header parsed), non_ip,
 * or skip[] under a reason met before the IP header parsed (SHORT_ETH,
 * SHORT_VLAN, VLAN_DEPTH, SHORT_IPV4, BAD_IHL, BAD_VERSION, SHORT_IPV6).
 * The later reasons (SHORT_EXTHDR, EXTHDR_CHAIN, FRAGMENT, SHORT_L4,
 * BAD_TCP_DOFF) count packets that are also in l3[][]: those have a flow
 * entry with ports 0, and an IPv6 chain cut short is l4 OTHER.
 */
struct np_packet_stats {
	struct np_counter total;                            /* every packet the hook saw */
	struct np_counter l3[NP_FAMILY_MAX][NP_L4_MAX];     /* parsed IP packets */
	struct np_counter non_ip;                           /* NP_SKIP_NON_IP, for bytes */
	__u64 tcp_flags[NP_TCP_FLAG_MAX];                   /* enum np_tcp_flag */
	__u64 skip[NP_SKIP_MAX];                            /* enum np_skip */
	__u64 flow_miss[NP_FLOW_MISS_MAX];                  /* enum np_flow_miss */
	__u64 flows_created;                                /* new flow_stats entries */
};

/* tc_device_stats key, as the design names it. */
enum np_direction {
	NP_DIR_INGRESS = 0,
	NP_DIR_EGRESS = 1,
};

enum np_stat_type {
	NP_STAT_PACKETS = 0,
	NP_STAT_BYTES = 1,
};

struct np_tc_device_key {
	__u32 ifindex;
	__u32 direction; /* enum np_direction */
	__u32 stat_type; /* enum np_stat_type */
};

/*
 * flow_stats key: a 5-tuple as seen on one interface, not canonicalised,
 * so the two directions of a connection are two entries. IPv4 addresses
 * sit in addr[0] (network byte order), the rest zero. Ports host order.
 */
struct np_flow_key {
	__u32 ifindex;
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport; /* ICMP: type << 8 | code in sport, 0 in dport */
	__u16 dport;
	__u8 family; /* enum np_family */
	__u8 proto;  /* IPPROTO_* */
	__u8 pad[2];
};

/*
 * flow_stats value. Timestamps: boot-time ns (bpf_ktime_get_boot_ns()), read
 * at most once per jiffy per CPU (probes/include/clock.h): they may trail the
 * exact clock by one jiffy.
 */
struct np_flow_stats {
	struct np_counter rx; /* XDP, or TC ingress where XDP is not attached */
	struct np_counter tx; /* TC egress */
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	__u32 tcp_flags; /* OR of the TCP flag bytes seen (FIN=0x01 SYN=0x02 RST=0x04 ...) */
	__u32 pad;
};

/* iface_config value: what the agent attached on an interface. */
enum np_iface_flag {
	/* XDP is attached here, so TC ingress leaves flow accounting to it. */
	NP_IFACE_XDP_ATTACHED = 1 << 0,
};

struct np_iface_config {
	__u32 flags; /* enum np_iface_flag */
	__u32 pad;
};

/*
 * Per-CPU token bucket that admits new flows (admission_state map), plus
 * the rate limiter of NP_EVENT_FLOW_ADMISSION_LIMITED. Probe-private state;
 * the agent may read it for debugging.
 */
struct np_admission {
	__u64 tokens;         /* in 1e-9 tokens: one token = 1000000000 */
	__u64 last_refill_ns; /* boot-time ns of the last refill (as flow timestamps) */
	__u64 refused;        /* refusals not yet reported in an event */
	__u64 last_event_ns;  /* when this CPU last tried to emit an event */
};

/* Ring-buffer events, probe to agent. Every event starts with this. */
enum np_event_type {
	/* A CPU ran out of new-flow budget; at most one per CPU per second. */
	NP_EVENT_FLOW_ADMISSION_LIMITED = 1,
};

struct np_event {
	__u32 type;    /* enum np_event_type */
	__u32 ifindex;
	__u64 timestamp_ns; /* boot-time ns, as flow timestamps */
	__u64 value;        /* type-specific: packets refused since the last event */
};

_Static_assert(sizeof(struct np_counter) == 16, "np_counter");
_Static_assert(sizeof(struct np_stats_key) == 8, "np_stats_key");
_Static_assert(sizeof(struct np_packet_stats) == 16 + 160 + 16 + 32 + 128 + 16 + 8, "np_packet_stats");
_Static_assert(sizeof(struct np_tc_device_key) == 12, "np_tc_device_key");
_Static_assert(sizeof(struct np_flow_key) == 44, "np_flow_key");
_Static_assert(sizeof(struct np_flow_stats) == 56, "np_flow_stats");
_Static_assert(sizeof(struct np_iface_config) == 8, "np_iface_config");
_Static_assert(sizeof(struct np_admission) == 32, "np_admission");
_Static_assert(sizeof(struct np_event) == 24, "np_event");

/*
 * Detection and mitigation (probes/include/detect.h). Rust mirror:
 * agent/src/abi.rs (detect module). Alert records share np_event's first
 * 24 bytes (type, ifindex, timestamp_ns, value).
 */
enum np_alert_kind {
	NP_ALERT_SCAN_VERTICAL = 1,   /* one source, many ports */
	NP_ALERT_SCAN_HORIZONTAL = 2, /* one source, many hosts */
	NP_ALERT_SYN_FLOOD = 3,       /* SYNs toward a destination, more than its ACKs */
	NP_ALERT_UDP_FLOOD = 4,
	NP_ALERT_ICMP_FLOOD = 5,      /* ICMP or ICMPv6 */
	NP_ALERT_DST_PPS = 6,         /* packets per second toward a destination */
	NP_ALERT_DST_BPS = 7,         /* bytes per second toward a destination */
	NP_ALERT_IFACE_PPS = 8,       /* packets per second on an interface */
	NP_ALERT_IFACE_BPS = 9,
	NP_ALERT_CLOSED_PORTS = 10,   /* burst of RSTs / ICMP unreachables toward a prober */
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
	__u32 src[4];       /* source (closed-port probing: the prober); network order */
	__u32 dst[4];
	__u64 window_ns;    /* window the count is over */
	__u32 sources;      /* floods: bits set in a 64-bit sketch of sources (many: spoofed) */
	__u32 pad;
};

#define NP_EVENT_ALERT 2

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

/*
 * Socket layer (probes/socket.bpf.c): TCP connection lifecycle from the
 * kernel's tracepoints. Rust mirror: agent/src/abi.rs (sock module).
 */

/* TCP states as the kernel numbers them (include/net/tcp_states.h). */
enum np_tcp_state {
	NP_TCP_ESTABLISHED = 1,
	NP_TCP_SYN_SENT = 2,
	NP_TCP_SYN_RECV = 3,
	NP_TCP_FIN_WAIT1 = 4,
	NP_TCP_FIN_WAIT2 = 5,
	NP_TCP_TIME_WAIT = 6,
	NP_TCP_CLOSE = 7,
	NP_TCP_CLOSE_WAIT = 8,
	NP_TCP_LAST_ACK = 9,
	NP_TCP_LISTEN = 10,
	NP_TCP_CLOSING = 11,
	NP_TCP_NEW_SYN_RECV = 12,
};

/*
 * Index of np_sock_stats.c: per-CPU counters of the namespace(s) watched.
 * Each matches a /proc/net/snmp Tcp counter where one is named.
 */
enum np_sock_counter {
	NP_SOCK_ACTIVE_OPENS = 0,     /* ActiveOpens: left SYN-SENT having sent its SYN */
	NP_SOCK_PASSIVE_OPENS = 1,    /* PassiveOpens: child socket created from a listener */
	NP_SOCK_ATTEMPT_FAILS = 2,    /* AttemptFails: SYN-SENT/SYN-RECV to CLOSE on an error */
	NP_SOCK_CLOSED_NORMAL = 3,    /* closed after the close handshake began */
	NP_SOCK_CLOSED_ABORTED = 4,   /* EstabResets: ESTABLISHED/CLOSE-WAIT straight to CLOSE */
	NP_SOCK_CLOSED_ABANDONED = 5, /* closed in SYN-SENT/SYN-RECV without an error (by the owner) */
	NP_SOCK_ESTAB_ENTERED = 6,    /* tracked connections entering ESTABLISHED/CLOSE-WAIT */
	NP_SOCK_ESTAB_LEFT = 7,       /* ... and leaving: the difference is CurrEstab */
	NP_SOCK_RST_SENT = 8,         /* tcp_send_reset tracepoint */
	NP_SOCK_RST_RECEIVED = 9,     /* tcp_receive_reset tracepoint */
	NP_SOCK_RETRANS_SEGS = 10,    /* RetransSegs */
	NP_SOCK_CONNECT_ABORTED = 11, /* connect() gave up before its SYN left: not an open */
	NP_SOCK_UNTRACKED = 12,       /* connections without a sock_conns entry (table full) */
	NP_SOCK_EVENTS_LOST = 13,     /* sock_events records not written (ring buffer full) */
	NP_SOCK_COUNTER_MAX = 16,
};

/* sock_stats value (per CPU; the agent sums the CPUs). */
struct np_sock_stats {
	__u64 c[NP_SOCK_COUNTER_MAX]; /* enum np_sock_counter */
};

/* Who opened a connection. */
enum np_conn_direction {
	NP_CONN_UNKNOWN = 0, /* open before the agent started (found by the iterator) */
	NP_CONN_ACTIVE = 1,  /* connect() */
	NP_CONN_PASSIVE = 2, /* accepted from a listener */
};

enum np_conn_flag {
	NP_CONN_F_ESTAB = 1 << 0,        /* counted in ESTAB_ENTERED, not yet in ESTAB_LEFT */
	NP_CONN_F_SEEDED = 1 << 1,       /* found by the iterator: start_ns is when it was first seen */
	NP_CONN_F_RETRANS_BASE = 1 << 2, /* retrans_seen holds a baseline of tcp_sock.total_retrans */
	NP_CONN_F_WAS_ESTAB = 1 << 3,    /* reached ESTABLISHED at some point */
};

/*
 * sock_conns value, keyed by the socket's kernel address (__u64). Created at
 * connect() and at accept time, removed when the socket reaches CLOSE.
 * Addresses in network byte order (IPv4 in [0]), ports host order;
 * timestamps boot-time ns (bpf_ktime_get_boot_ns). bytes_*, srtt_us and
 * updated_ns are refreshed by the iterator on each collection.
 */
struct np_conn {
	__u64 start_ns;        /* SYN sent or child created (seeded: first seen) */
	__u64 established_ns;  /* 0 until ESTABLISHED */
	__u64 bytes_acked;     /* tcp_sock.bytes_acked: sent and acknowledged */
	__u64 bytes_received;  /* tcp_sock.bytes_received */
	__u64 updated_ns;      /* when bytes and srtt were read */
	__u32 netns;           /* network namespace inode */
	__u32 pid;             /* thread group id; 0 when unknown */
	__u32 laddr[4];
	__u32 raddr[4];
	__u16 lport;
	__u16 rport;
	__u8 family;           /* enum np_family */
	__u8 direction;        /* enum np_conn_direction */
	__u8 state;            /* enum np_tcp_state */
	__u8 flags;            /* enum np_conn_flag */
	__u32 srtt_us;         /* smoothed RTT, microseconds (0: no sample yet) */
	__u32 retrans;         /* segments retransmitted, as counted */
	__u32 retrans_seen;    /* tcp_sock.total_retrans at the last count */
	__u32 pad;
	char comm[16];         /* task command name; empty when unknown */
};

/* sock_events record types. */
enum np_sock_event_type {
	NP_SOCK_EV_CLOSED = 1,         /* a connection reached CLOSE (np_sock_event.outcome says how) */
	NP_SOCK_EV_RESET_SENT = 2,     /* a RST went out; addresses from the segment it answers if any */
	NP_SOCK_EV_RESET_RECEIVED = 3, /* a connection was reset by its peer */
};

/* How a connection ended (NP_SOCK_EV_CLOSED). */
enum np_close_outcome {
	NP_CLOSE_NORMAL = 1,    /* NP_SOCK_CLOSED_NORMAL */
	NP_CLOSE_ABORTED = 2,   /* NP_SOCK_CLOSED_ABORTED */
	NP_CLOSE_ABANDONED = 3, /* NP_SOCK_CLOSED_ABANDONED */
	NP_CLOSE_FAILED = 4,    /* NP_SOCK_ATTEMPT_FAILS */
};

/* sock_events record: one per closed connection and per reset. */
struct np_sock_event {
	__u8 type;             /* enum np_sock_event_type */
	__u8 family;           /* enum np_family */
	__u8 direction;        /* enum np_conn_direction */
	__u8 outcome;          /* enum np_close_outcome (CLOSED), else 0 */
	__u8 state;            /* TCP state it closed from, or the socket's state at a reset (0: no socket) */
	__u8 flags;            /* enum np_conn_flag of the tracked connection, 0 if untracked */
	__u16 lport;
	__u16 rport;
	__u16 pad;
	__u32 netns;
	__u32 pid;
	__u32 error;           /* sk_err at close (ECONNREFUSED, ETIMEDOUT, ...), 0 if none */
	__u32 srtt_us;
	__u32 retrans;
	__u32 laddr[4];
	__u32 raddr[4];
	__u64 timestamp_ns;    /* boot-time ns of the event */
	__u64 start_ns;        /* as np_conn; 0 when untracked */
	__u64 established_ns;
	__u64 bytes_acked;
	__u64 bytes_received;
	char comm[16];
};

_Static_assert(sizeof(struct np_sock_stats) == 128, "np_sock_stats");
_Static_assert(sizeof(struct np_conn) == 120, "np_conn");
_Static_assert(sizeof(struct np_sock_event) == 120, "np_sock_event");

#endif /* NETPROBE_H */
