/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
#ifndef NP_ABI_SOCK_H
#define NP_ABI_SOCK_H

#include "abi/types.h"

/*
 * Socket layer (probes/socket.bpf.c): TCP connection lifecycle from the
 * kernel's tracepoints. Rust mirror: agent/src/abi/sock.rs.
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
	NP_SOCK_STORAGE_FAILED = 14,  /* sockets the kernel gave no owner storage (out of memory) */
	NP_SOCK_ACCEPT_UNSEEN = 15,   /* accepts the syscall probe had no room to hand over (sock_accepted full) */
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

/*
 * How a socket's owner was found (np_owner.source). The owner of an
 * accepted connection is the process that accepts it; until then, and on
 * kernels without the accept probe, its listener's.
 */
enum np_owner_source {
	NP_OWNER_UNKNOWN = 0,  /* not known: open before the agent started and not learned */
	NP_OWNER_CONNECT = 1,  /* the process that called connect() */
	NP_OWNER_ACCEPT = 2,   /* the process that accepted it (fexit/inet_csk_accept, in its thread) */
	NP_OWNER_LISTENER = 3, /* the process that called listen() on its listener (or was learned holding it) */
	NP_OWNER_LEARNED = 4,  /* learned at start from /proc/PID/fd: a process that held the socket then */
};

/*
 * Who holds a socket: a process (thread group) and its cgroup. Kept on
 * each socket (sock_owners), copied into np_conn and np_sock_event; the
 * agent writes learned ones into sock_seed.
 */
struct np_owner {
	__u64 cgroup_id; /* cgroup v2 id of the process (bpf_get_current_cgroup_id); 0 when unknown */
	__u32 pid;       /* thread group id, as the host's PID namespace numbers it; 0 when unknown */
	__u8 source;     /* enum np_owner_source */
	__u8 pad[3];
	char comm[16];   /* the process's command name (its thread group leader's, as ss -p shows) */
};

/*
 * sock_learn output (the iterator writes these to its seq file): a socket
 * open before the agent started whose owner is not known, by the inode of
 * its file ("socket:[INODE]" in /proc/PID/fd, ino: in ss -e).
 */
struct np_learn_record {
	__u64 inode;
	__u32 state; /* enum np_tcp_state */
	__u32 pad;
};

enum np_conn_flag {
	NP_CONN_F_ESTAB = 1 << 0,        /* counted in ESTAB_ENTERED (kernels without socket storage only) */
	NP_CONN_F_SEEDED = 1 << 1,       /* found by the iterator: start_ns is when it was first seen */
	NP_CONN_F_RETRANS_BASE = 1 << 2, /* retrans_seen holds a baseline of tcp_sock.total_retrans */
	NP_CONN_F_WAS_ESTAB = 1 << 3,    /* reached ESTABLISHED at some point */
};

/*
 * sock_conns value, keyed by the socket's kernel address (__u64). Created at
 * connect() and when a listener's child is created (SYN-RECV), removed when
 * the socket reaches CLOSE.
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
	struct np_owner owner;
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
	__u32 error;           /* sk_err at close (ECONNREFUSED, ETIMEDOUT, ...), 0 if none */
	__u32 srtt_us;
	__u32 retrans;
	__u32 pad2;
	__u32 laddr[4];
	__u32 raddr[4];
	__u64 timestamp_ns;    /* boot-time ns of the event */
	__u64 start_ns;        /* as np_conn; 0 when untracked */
	__u64 established_ns;
	__u64 bytes_acked;
	__u64 bytes_received;
	struct np_owner owner; /* the socket's owner (untracked ones too); zero when unknown */
};

_Static_assert(sizeof(struct np_sock_stats) == 128, "np_sock_stats");
_Static_assert(sizeof(struct np_owner) == 32, "np_owner");
_Static_assert(sizeof(struct np_learn_record) == 16, "np_learn_record");
_Static_assert(sizeof(struct np_conn) == 128, "np_conn");
_Static_assert(__builtin_offsetof(struct np_conn, owner) == 96, "np_conn.owner");
_Static_assert(sizeof(struct np_sock_event) == 136, "np_sock_event");
_Static_assert(__builtin_offsetof(struct np_sock_event, owner) == 104, "np_sock_event.owner");

#endif /* NP_ABI_SOCK_H */
