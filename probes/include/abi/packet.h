/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The packet probes' ABI (netprobe.bpf.c): every map key, map value, enum
 * and ring-buffer event of the XDP and TC probes that the agent reads.
 *
 * Rust mirror: agent/src/abi/mod.rs (#[repr(C)], size assertions on both
 * sides). Rules: fixed-width types only, no bool, explicit padding, every
 * size asserted. Change a layout and the agent's kernel test fails on map
 * open; the pin tree's ABI hash (agent/src/pins.rs) changes with it.
 */
#ifndef NP_ABI_PACKET_H
#define NP_ABI_PACKET_H

#include "abi/types.h"

/* Where a probe runs. Part of the packet_stats key. */
enum np_hook {
	NP_HOOK_XDP = 0,
	NP_HOOK_TC_INGRESS = 1,
	NP_HOOK_TC_EGRESS = 2,
	NP_HOOK_MAX = 3,
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
 * Keep in step with abi/mod.rs SKIP_NAMES and abi::skip (metric label values).
 */
enum np_skip {
	NP_SKIP_NONE = 0,
	NP_SKIP_SHORT_ETH = 1,      /* frame shorter than an Ethernet header */
	NP_SKIP_SHORT_VLAN = 2,     /* truncated 802.1Q/802.1ad tag */
	NP_SKIP_VLAN_DEPTH = 3,     /* more than two VLAN tags */
	NP_SKIP_NON_IP = 4,         /* ethertype (L3 devices: version nibble) is neither IPv4 nor IPv6 */
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
	__u32 flags;     /* enum np_flow_flag */
};

/*
 * What the flow table knows of a flow's other direction (the same key with
 * addresses and ports swapped, on the same interface), set when an entry
 * is created and read by the detectors (detect.h): a conversation is not a
 * scan, a flood or a reason to block.
 */
enum np_flow_flag {
	/* Created after its reverse: the other side started the conversation. */
	NP_FLOW_REPLY = 1 << 0,
	/* Both directions carry traffic and the answer was not a refusal (RST);
	 * or, for UDP, the other side sends to this side's destination port
	 * (a tunnel whose source ports differ per direction, e.g. VXLAN). */
	NP_FLOW_TWOWAY = 1 << 1,
};

/* iface_config value: what the probes must know of an interface. */
enum np_iface_flag {
	/* The device has no TSO: the kernel cuts a GSO packet into segments
	 * after TC egress, and the device counts each. TC egress counts them
	 * too (gso_segs, each with the headers repeated). */
	NP_IFACE_TX_SEGMENTS = 1 << 0,
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

#endif /* NP_ABI_PACKET_H */
