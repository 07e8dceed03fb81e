// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * NetProbe socket layer: TCP connection lifecycle, failures, resets,
 * retransmits and RTT, from the kernel's tracepoints, counted so that the
 * totals equal the kernel's own SNMP counters (/proc/net/snmp, Tcp:).
 *
 * BTF raw tracepoints (tp_btf, 5.5+): each program attaches to a tracepoint
 * by name (BPF_RAW_TRACEPOINT_OPEN, no tracefs needed) and receives the
 * tracepoint's arguments (TP_PROTO) as u64 slots, typed by the kernel's
 * BTF. Those arguments are stable across kernels and architectures (later
 * kernels only append some), unlike the formatted records of classic
 * tracepoints (tcp_send_reset's changed in 6.10). Kernel structs are read
 * through the typed pointers with plain loads the verifier guards, and
 * every field offset is a CO-RE relocation (vmlinux.h) resolved against
 * the running kernel's BTF at load: one object for every kernel with BTF,
 * on either architecture. Only the first arguments every supported kernel
 * has are read: the kernel refuses a program that reads past the
 * tracepoint's argument count. Needs 5.9+ (bpf_skc_to_tcp_sock, iter/tcp).
 *
 *   sock/inet_sock_set_state (sk, oldstate, newstate)  every state change
 *   tcp/tcp_retransmit_skb   (sk, skb[, err])          segment retransmitted
 *   tcp/tcp_retransmit_synack (sk, req)                SYN-ACK retransmitted
 *   tcp/tcp_send_reset       (sk, skb[, reason])       RST sent
 *   tcp/tcp_receive_reset    (sk)                      RST received
 *   iter/tcp                                           walks the sockets of
 *       the agent's namespace on each collection: refreshes bytes and RTT of
 *       tracked connections, and tracks those open before the agent started
 *
 * How the kernel counts (net/ipv4/tcp.c, tcp_output.c, tcp_minisocks.c;
 * checked on 6.1 and 6.18), and how the probes match it:
 * - ActiveOpens: tcp_connect(), after the SYN is handed to the IP layer.
 *   Counted when the socket leaves SYN-SENT, unless it leaves for CLOSE
 *   without having sent a segment (tcp_sock.segs_out == 0: connect() failed
 *   before the SYN, e.g. no local port free): those are CONNECT_ABORTED.
 *   So an attempt still in SYN-SENT is counted when it ends.
 * - PassiveOpens: tcp_create_openreq_child(), right after
 *   inet_csk_clone_lock() moved the new child from LISTEN to SYN-RECV.
 * - AttemptFails: tcp_done() on a SYN-SENT or SYN-RECV socket. tcp_done()
 *   follows an error (the caller sets sk_err first: reset, timeout, ICMP)
 *   or destroys an orphan (SOCK_DEAD set first); the other ways to CLOSE
 *   from those states (close() or shutdown() before the handshake ended,
 *   a failed connect(), a child dropped by the listener) set neither.
 *   Not seen: a request socket (before the child exists) reset by its
 *   peer (tcp_check_req), and an MPTCP subflow reset during its handshake.
 * - EstabResets: any move from ESTABLISHED or CLOSE-WAIT straight to CLOSE.
 * - CurrEstab (6.10+: ESTABLISHED or CLOSE-WAIT): kept for the tracked
 *   connections as entries minus exits; see NP_CONN_F_ESTAB.
 * - RetransSegs: __tcp_retransmit_skb() adds the segment count to it and to
 *   tcp_sock.total_retrans together, then transmits; the tracepoint fires
 *   after the transmit (on 6.1 only if it succeeded; from 6.13 also on
 *   errors, some before anything was counted). So the probes count the
 *   growth of total_retrans of each tracked socket, at each retransmit
 *   event and at close; untracked sockets count the skb's segments. Plus
 *   tcp_rtx_synack(), which counts one and fires tcp_retransmit_synack.
 *
 * Namespaces: tracepoints are global. Every event is attributed to the
 * socket's network namespace (its inode, as in /proc/PID/ns/net) and, when
 * cfg_netns is set, only that namespace is counted (the agent sets its own).
 *
 * Cost: nothing runs per packet except the retransmit tracepoint; a TCP
 * connection costs about ten state changes and one ring-buffer record per
 * end. Plain loads instead of bpf_probe_read_kernel() calls halve that
 * cost (netprobe-sockbench). Tracing programs cannot change what the
 * kernel does: they fail safe.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "abi/sock.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * Programs take their context as __u64 *ctx (the tracepoint's arguments),
 * not as struct bpf_raw_tracepoint_args: vmlinux.h marks that struct for
 * CO-RE, and a relocated index into its zero-length args[] is refused by
 * loaders that bound array indices (aya).
 */
#define NP_AF_INET 2
#define NP_AF_INET6 10
#define NP_IPPROTO_TCP 6

/* Network namespace counted (inode of /proc/PID/ns/net); 0: all of them. Set by the agent before load. */
const volatile __u32 cfg_netns = 0;

/* Per-CPU counters (enum np_sock_counter), one entry; the agent sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_sock_stats);
} sock_stats SEC(".maps");

/* Tracked connections by socket address; the agent reads them for /status (--max-connections). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct np_conn);
} sock_conns SEC(".maps");

/* Probe-private: listening socket of a (namespace, port), for the process of passive connections. */
struct np_listener_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
};

struct np_listener {
	__u64 sk;
	__u32 pid;
	__u32 pad;
	char comm[16];
};

/* Listening sockets by (netns, port): who called listen(); probe-private. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct np_listener_key);
	__type(value, struct np_listener);
} sock_listeners SEC(".maps");

/* struct np_sock_event records, probe to the agent's socket collector. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} sock_events SEC(".maps");

static __always_inline struct np_sock_stats *np_stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sock_stats, &zero);
}

static __always_inline void np_count(struct np_sock_stats *st, __u32 idx, __u64 v)
{
	/* Verifier: idx is a constant below NP_SOCK_COUNTER_MAX at every call site. */
	if (st && idx < NP_SOCK_COUNTER_MAX)
		st->c[idx] += v;
}

/* Works on any sock_common: full, time-wait or request sockets. */
static __always_inline __u32 np_sk_netns(const struct sock *sk)
{
	/* Kernels without CONFIG_NET_NS have one namespace and no pointer. */
	if (!bpf_core_field_exists(sk->__sk_common.skc_net.net))
		return 0;
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline __u32 np_skb_netns(const struct sk_buff *skb)
{
	if (!bpf_core_field_exists(skb->dev->nd_net.net))
		return 0;
	return skb->dev->nd_net.net->ns.inum;
}

static __always_inline int np_netns_wanted(__u32 netns)
{
	return cfg_netns == 0 || netns == cfg_netns;
}

static __always_inline int np_estab_state(int s)
{
	return s == NP_TCP_ESTABLISHED || s == NP_TCP_CLOSE_WAIT;
}

/* Family, addresses and ports of a socket (any sock_common); tp is the
 * same socket as a tcp_sock when it is a full one, else NULL. */
static __always_inline void np_sk_addrs(const struct sock *sk, const struct tcp_sock *tp, __u8 *family,
					__u32 *laddr, __u32 *raddr, __u16 *lport, __u16 *rport)
{
	__u16 fam = sk->__sk_common.skc_family;

	*lport = sk->__sk_common.skc_num;
	/* tcp_set_state(CLOSE) releases the port (inet_num = 0) before the
	 * tracepoint; a full socket still has it in inet_sport. */
	if (!*lport && tp)
		*lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	*rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (fam == NP_AF_INET6) {
		*family = NP_FAMILY_IPV6;
		laddr[0] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		laddr[1] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1];
		laddr[2] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		laddr[3] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		raddr[0] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
		raddr[1] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
		raddr[2] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
		raddr[3] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
	} else {
		*family = NP_FAMILY_IPV4;
		laddr[0] = sk->__sk_common.skc_rcv_saddr;
		raddr[0] = sk->__sk_common.skc_daddr;
	}
}

/* Local and remote ends of the segment skb answers: its destination is local. */
static __always_inline int np_skb_addrs(const struct sk_buff *skb, struct np_sock_event *e)
{
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__u16 th = skb->transport_header;
	__u16 ports[2];
	__u8 ver;

	/* Packet bytes: not a typed pointer, read with the helper. */
	if (bpf_probe_read_kernel(&ver, 1, head + nh))
		return -1;
	if (ver >> 4 == 4) {
		e->family = NP_FAMILY_IPV4;
		bpf_probe_read_kernel(&e->raddr[0], 4, head + nh + 12);
		bpf_probe_read_kernel(&e->laddr[0], 4, head + nh + 16);
	} else if (ver >> 4 == 6) {
		e->family = NP_FAMILY_IPV6;
		bpf_probe_read_kernel(e->raddr, 16, head + nh + 8);
		bpf_probe_read_kernel(e->laddr, 16, head + nh + 24);
	} else {
		return -1;
	}
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + th))
		return -1;
	e->rport = bpf_ntohs(ports[0]);
	e->lport = bpf_ntohs(ports[1]);
	return 0;
}

static __always_inline void np_conn_addrs(const struct sock *sk, const struct tcp_sock *tp, struct np_conn *c)
{
	np_sk_addrs(sk, tp, &c->family, c->laddr, c->raddr, &c->lport, &c->rport);
}

/* Counts the growth of total_retrans since the last count (baseline set). */
static __always_inline void np_retrans_catch_up(struct np_sock_stats *st, const struct tcp_sock *tp, struct np_conn *c)
{
	__u32 total, delta;

	if (!tp || !(c->flags & NP_CONN_F_RETRANS_BASE))
		return;
	total = tp->total_retrans;
	delta = total - c->retrans_seen; /* u32 arithmetic: wraps like the kernel's */
	if (!delta)
		return;
	c->retrans_seen = total;
	c->retrans += delta;
	np_count(st, NP_SOCK_RETRANS_SEGS, delta);
}

/*
 * Wake the agent only when the ring is a quarter full: otherwise each
 * record would queue an irq_work (an interrupt) when the agent is caught
 * up. The agent also drains the ring on each collection, which is when its
 * snapshots are published anyway.
 */
static __always_inline __u64 np_wakeup_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&sock_events, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&sock_events, BPF_RB_RING_SIZE);

	return avail >= size / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void np_listener_key(struct np_listener_key *k, __u32 netns, __u16 port)
{
	k->netns = netns;
	k->port = port;
	k->pad = 0;
}

/* A socket started listening (process context: listen()) or stopped. */
static __always_inline void np_listen(const struct sock *sk, __u32 netns, int on)
{
	struct np_listener_key k;
	struct np_listener *cur;

	np_listener_key(&k, netns, sk->__sk_common.skc_num);
	if (on) {
		struct np_listener v = { .sk = (__u64)sk, .pid = bpf_get_current_pid_tgid() >> 32 };

		bpf_get_current_comm(v.comm, sizeof(v.comm));
		bpf_map_update_elem(&sock_listeners, &k, &v, BPF_ANY);
		return;
	}
	/* SO_REUSEPORT: another socket may have taken the port over since. */
	cur = bpf_map_lookup_elem(&sock_listeners, &k);
	if (cur && cur->sk == (__u64)sk)
		bpf_map_delete_elem(&sock_listeners, &k);
}

/* Starts tracking a new connection. */
static __always_inline void np_track(struct np_sock_stats *st, const struct sock *sk, const struct tcp_sock *tp,
				     __u32 netns, __u8 direction)
{
	struct np_conn c;
	__u64 key = (__u64)sk;

	__builtin_memset(&c, 0, sizeof(c));
	c.start_ns = bpf_ktime_get_boot_ns();
	c.netns = netns;
	c.direction = direction;
	np_conn_addrs(sk, tp, &c);
	if (direction == NP_CONN_ACTIVE) {
		/* connect() runs in the caller's context. */
		c.pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(c.comm, sizeof(c.comm));
		c.state = NP_TCP_SYN_SENT;
		/* 0 on a new socket; tcp_disconnect() zeroes it on a reused one. */
		c.retrans_seen = tp->total_retrans;
		c.flags = NP_CONN_F_RETRANS_BASE;
	} else {
		/* The child is created in softirq: the process is its listener's.
		 * total_retrans gets the SYN-ACK retransmits (counted by
		 * tcp_retransmit_synack) after this: baseline when SYN-RECV ends. */
		struct np_listener_key k;
		struct np_listener *l;

		np_listener_key(&k, netns, c.lport);
		l = bpf_map_lookup_elem(&sock_listeners, &k);
		if (l) {
			c.pid = l->pid;
			__builtin_memcpy(c.comm, l->comm, sizeof(c.comm));
		}
		c.state = NP_TCP_SYN_RECV;
	}
	/* BPF_ANY: a stale entry of a freed socket at the same address is replaced. */
	if (bpf_map_update_elem(&sock_conns, &key, &c, BPF_ANY))
		np_count(st, NP_SOCK_UNTRACKED, 1);
}

/* What an event takes from the connection's entry: who opened it and when. */
static __always_inline void np_event_owner(struct np_sock_event *e, const struct np_conn *c)
{
	e->direction = c->direction;
	e->flags = c->flags;
	e->pid = c->pid;
	e->start_ns = c->start_ns;
	e->established_ns = c->established_ns;
	__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
}

static __always_inline void np_emit_closed(struct np_sock_stats *st, const struct sock *sk, const struct tcp_sock *tp,
					   const struct np_conn *c, __u32 netns, __u8 outcome, __u8 oldstate)
{
	struct np_sock_event *e;

	e = bpf_ringbuf_reserve(&sock_events, sizeof(*e), 0);
	if (!e) {
		np_count(st, NP_SOCK_EVENTS_LOST, 1);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = NP_SOCK_EV_CLOSED;
	e->outcome = outcome;
	e->state = oldstate;
	e->netns = netns;
	e->timestamp_ns = bpf_ktime_get_boot_ns();
	e->error = sk->sk_err;
	e->srtt_us = tp->srtt_us >> 3;
	e->bytes_acked = tp->bytes_acked;
	e->bytes_received = tp->bytes_received;
	if (c && (c->flags & NP_CONN_F_WAS_ESTAB)) {
		/* Final since the handshake ended; the socket may have let its
		 * port go by now. */
		e->family = c->family;
		e->lport = c->lport;
		e->rport = c->rport;
		__builtin_memcpy(e->laddr, c->laddr, sizeof(e->laddr));
		__builtin_memcpy(e->raddr, c->raddr, sizeof(e->raddr));
	} else {
		np_sk_addrs(sk, tp, &e->family, e->laddr, e->raddr, &e->lport, &e->rport);
	}
	if (c) {
		np_event_owner(e, c);
		e->retrans = c->retrans;
	}
	bpf_ringbuf_submit(e, np_wakeup_flags());
}

SEC("tp_btf/inet_sock_set_state")
int netprobe_sock_state(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	int oldstate = (int)ctx[1];
	int newstate = (int)ctx[2];
	const struct tcp_sock *tp;
	struct np_sock_stats *st;
	struct np_conn *c;
	__u64 key = (__u64)sk;
	__u32 netns;

	/* Sockets starting or stopping to listen, and new connections. */
	if (newstate == NP_TCP_LISTEN || oldstate == NP_TCP_LISTEN ||
	    (oldstate == NP_TCP_CLOSE && newstate == NP_TCP_SYN_SENT)) {
		/* MPTCP and SCTP sockets fire this tracepoint too. */
		if (sk->sk_protocol != NP_IPPROTO_TCP)
			return 0;
		netns = np_sk_netns(sk);
		if (!np_netns_wanted(netns))
			return 0;
		if (newstate == NP_TCP_LISTEN || newstate == NP_TCP_CLOSE) {
			np_listen(sk, netns, newstate == NP_TCP_LISTEN);
			return 0;
		}
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (!tp)
			return 0;
		st = np_stats();
		if (newstate == NP_TCP_SYN_RECV) {
			np_count(st, NP_SOCK_PASSIVE_OPENS, 1);
			np_track(st, sk, tp, netns, NP_CONN_PASSIVE);
		} else if (newstate == NP_TCP_SYN_SENT) {
			np_track(st, sk, tp, netns, NP_CONN_ACTIVE);
		}
		return 0;
	}

	/* A tracked connection is TCP in a namespace counted: no need to
	 * read the socket to know. */
	c = bpf_map_lookup_elem(&sock_conns, &key);
	if (c) {
		netns = c->netns;
	} else {
		if (sk->sk_protocol != NP_IPPROTO_TCP)
			return 0;
		netns = np_sk_netns(sk);
		if (!np_netns_wanted(netns))
			return 0;
	}
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	st = np_stats();

	if (oldstate == NP_TCP_SYN_SENT) {
		if (newstate == NP_TCP_CLOSE && tp->segs_out == 0) {
			/* connect() failed before its SYN: no ActiveOpens, no AttemptFails. */
			np_count(st, NP_SOCK_CONNECT_ABORTED, 1);
			if (c)
				bpf_map_delete_elem(&sock_conns, &key);
			return 0;
		}
		np_count(st, NP_SOCK_ACTIVE_OPENS, 1);
	}
	if (c && (oldstate == NP_TCP_SYN_SENT || oldstate == NP_TCP_SYN_RECV)) {
		/* The handshake is over: connect() has bound the local port, and
		 * a child has its peer's address (set after the clone). */
		np_conn_addrs(sk, tp, c);
		if (!(c->flags & NP_CONN_F_RETRANS_BASE)) {
			c->retrans_seen = tp->total_retrans;
			c->flags |= NP_CONN_F_RETRANS_BASE;
		}
	}

	/* The established gauge follows the entry's flag, so a connection it
	 * never counted (untracked, or open before the agent) is never
	 * subtracted either. */
	if (c) {
		if (np_estab_state(newstate)) {
			if (!(c->flags & NP_CONN_F_ESTAB)) {
				c->flags |= NP_CONN_F_ESTAB | NP_CONN_F_WAS_ESTAB;
				np_count(st, NP_SOCK_ESTAB_ENTERED, 1);
			}
			if (!c->established_ns)
				c->established_ns = bpf_ktime_get_boot_ns();
		} else if (c->flags & NP_CONN_F_ESTAB) {
			c->flags &= ~NP_CONN_F_ESTAB;
			np_count(st, NP_SOCK_ESTAB_LEFT, 1);
		}
	}

	if (newstate != NP_TCP_CLOSE) {
		if (c)
			c->state = newstate;
		return 0;
	}

	{
		__u8 outcome;

		if (oldstate == NP_TCP_SYN_SENT || oldstate == NP_TCP_SYN_RECV) {
			int dead = sk->__sk_common.skc_flags &
				   (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DEAD));

			if (sk->sk_err || dead) {
				outcome = NP_CLOSE_FAILED;
				np_count(st, NP_SOCK_ATTEMPT_FAILS, 1);
			} else {
				outcome = NP_CLOSE_ABANDONED;
				np_count(st, NP_SOCK_CLOSED_ABANDONED, 1);
			}
		} else if (np_estab_state(oldstate)) {
			outcome = NP_CLOSE_ABORTED;
			np_count(st, NP_SOCK_CLOSED_ABORTED, 1);
		} else {
			outcome = NP_CLOSE_NORMAL;
			np_count(st, NP_SOCK_CLOSED_NORMAL, 1);
		}
		if (c)
			np_retrans_catch_up(st, tp, c);
		np_emit_closed(st, sk, tp, c, netns, outcome, oldstate);
		if (c)
			bpf_map_delete_elem(&sock_conns, &key);
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int netprobe_sock_retrans(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct sk_buff *skb = (const struct sk_buff *)ctx[1];
	const struct tcp_sock *tp;
	struct np_sock_stats *st;
	struct np_conn *c;
	__u64 key = (__u64)sk;

	c = bpf_map_lookup_elem(&sock_conns, &key);
	if (!c && !np_netns_wanted(np_sk_netns(sk)))
		return 0;
	st = np_stats();
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (c && tp && (c->flags & NP_CONN_F_RETRANS_BASE)) {
		np_retrans_catch_up(st, tp, c);
	} else {
		/* Untracked: the skb's segment count (tcp_skb_pcount), from the
		 * control block in skb->cb (not a typed field: the helper). */
		const struct tcp_skb_cb *cb =
			(const void *)((const char *)skb + bpf_core_field_offset(struct sk_buff, cb));
		__u16 segs = BPF_CORE_READ(cb, tcp_gso_segs);

		np_count(st, NP_SOCK_RETRANS_SEGS, segs ? segs : 1);
		if (c)
			c->retrans += segs ? segs : 1;
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int netprobe_sock_synack(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];

	/* tcp_rtx_synack() counts one RetransSegs and fires this, both only on success. */
	if (np_netns_wanted(np_sk_netns(sk)))
		np_count(np_stats(), NP_SOCK_RETRANS_SEGS, 1);
	return 0;
}

static __always_inline void np_emit_reset(struct np_sock_stats *st, const struct sock *sk, const struct sk_buff *skb,
					  __u32 netns, __u8 type)
{
	struct np_sock_event *e;
	struct np_conn *c = 0;
	__u64 key = (__u64)sk;

	e = bpf_ringbuf_reserve(&sock_events, sizeof(*e), 0);
	if (!e) {
		np_count(st, NP_SOCK_EVENTS_LOST, 1);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->netns = netns;
	e->timestamp_ns = bpf_ktime_get_boot_ns();
	if (sk) {
		e->state = sk->__sk_common.skc_state;
		c = bpf_map_lookup_elem(&sock_conns, &key);
	}
	/* The segment a RST answers names the peer even when sk is a listener. */
	if (!skb || np_skb_addrs(skb, e)) {
		if (sk)
			np_sk_addrs(sk, bpf_skc_to_tcp_sock((void *)sk), &e->family, e->laddr, e->raddr, &e->lport,
				    &e->rport);
	}
	if (c)
		np_event_owner(e, c);
	bpf_ringbuf_submit(e, np_wakeup_flags());
}

SEC("tp_btf/tcp_send_reset")
int netprobe_sock_rst_out(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct sk_buff *skb = (const struct sk_buff *)ctx[1];
	struct np_sock_stats *st;
	__u32 netns;

	/* sk is NULL for a segment no socket wants (6.10+; older kernels
	 * fire only for full sockets), or a time-wait or listening socket;
	 * skb is NULL for tcp_send_active_reset. */
	if (sk)
		netns = np_sk_netns(sk);
	else if (skb)
		netns = np_skb_netns(skb);
	else
		return 0;
	if (!np_netns_wanted(netns))
		return 0;
	st = np_stats();
	np_count(st, NP_SOCK_RST_SENT, 1);
	np_emit_reset(st, sk, skb, netns, NP_SOCK_EV_RESET_SENT);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int netprobe_sock_rst_in(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	struct np_sock_stats *st;
	__u32 netns = np_sk_netns(sk);

	if (!np_netns_wanted(netns))
		return 0;
	st = np_stats();
	np_count(st, NP_SOCK_RST_RECEIVED, 1);
	np_emit_reset(st, sk, 0, netns, NP_SOCK_EV_RESET_RECEIVED);
	return 0;
}

/*
 * Walks the TCP sockets of the namespace the agent runs in (bpf_iter__tcp,
 * 5.9+); the agent runs it on each collection. The kernel holds each
 * socket's lock around this program, so no state change races it.
 */
SEC("iter/tcp")
int netprobe_sock_iter(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct np_sock_stats *st;
	struct tcp_sock *tp;
	struct np_conn *c;
	__u64 key;
	int state;

	if (!skc)
		return 0;
	state = skc->skc_state;
	if (state == NP_TCP_LISTEN || state == NP_TCP_CLOSE || state == NP_TCP_TIME_WAIT ||
	    state == NP_TCP_NEW_SYN_RECV)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	key = (__u64)tp;
	st = np_stats();
	c = bpf_map_lookup_elem(&sock_conns, &key);
	if (!c) {
		/* Open before the agent started, or untracked while the table
		 * was full: track it from now on. */
		struct np_conn n;
		__u32 netns = np_sk_netns((const struct sock *)tp);

		if (!np_netns_wanted(netns))
			return 0;
		__builtin_memset(&n, 0, sizeof(n));
		n.start_ns = bpf_ktime_get_boot_ns();
		n.netns = netns;
		n.direction = NP_CONN_UNKNOWN;
		n.state = state;
		n.flags = NP_CONN_F_SEEDED | NP_CONN_F_RETRANS_BASE;
		n.retrans_seen = tp->total_retrans;
		np_conn_addrs((const struct sock *)tp, tp, &n);
		if (np_estab_state(state)) {
			n.flags |= NP_CONN_F_ESTAB | NP_CONN_F_WAS_ESTAB;
			n.established_ns = n.start_ns;
		}
		if (bpf_map_update_elem(&sock_conns, &key, &n, BPF_NOEXIST))
			return 0;
		if (np_estab_state(state))
			np_count(st, NP_SOCK_ESTAB_ENTERED, 1);
		c = bpf_map_lookup_elem(&sock_conns, &key);
		if (!c)
			return 0;
	}
	c->bytes_acked = tp->bytes_acked;
	c->bytes_received = tp->bytes_received;
	c->srtt_us = tp->srtt_us >> 3;
	c->updated_ns = bpf_ktime_get_boot_ns();
	np_retrans_catch_up(st, tp, c);
	return 0;
}
