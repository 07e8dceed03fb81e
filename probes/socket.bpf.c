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
 *   fexit/inet_csk_accept    (sk, ...) -> child        a connection accepted,
 *       in the accepting thread (needs a BPF trampoline), or else
 *   raw_syscalls/sys_exit    (regs, ret)               accept() and accept4()
 *       returning, in the accepting thread (every system call runs it)
 *   iter/tcp (netprobe_sock_iter)                      walks the sockets of
 *       the agent's namespace on each collection: refreshes bytes and RTT of
 *       tracked connections, and tracks those open before the agent started
 *   iter/tcp (netprobe_sock_learn)                     at start: the sockets
 *       whose owner is not known, by inode, and the owners the agent found
 *       for them in /proc (sock_seed)
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
 * - CurrEstab (ESTABLISHED or CLOSE-WAIT; 6.1 stable and 6.10+): entries
 *   minus exits, each socket counted by a flag kept on the socket itself
 *   (np_sock_local), so every socket counts however full sock_conns is; the
 *   iterator counts those established before the agent started. Kernels
 *   without socket storage in tracing programs keep the flag in the
 *   connection's sock_conns entry: only tracked connections count there.
 * - RetransSegs: __tcp_retransmit_skb() adds the segment count to it and to
 *   tcp_sock.total_retrans together, then transmits; the tracepoint fires
 *   after the transmit (on 6.1 only if it succeeded; from 6.13 also on
 *   errors, some before anything was counted). So the probes count the
 *   growth of total_retrans of each tracked socket, at each retransmit
 *   event and at close; untracked sockets count the skb's segments. Plus
 *   tcp_rtx_synack(), which counts one and fires tcp_retransmit_synack.
 *
 * Owners (enum np_owner_source): each TCP socket of the namespace(s)
 * counted carries an np_sock_local in sock_owners (BPF_MAP_TYPE_SK_STORAGE,
 * 5.11+ in tracing programs), written where a process acts on it:
 * connect() and listen() run in the caller's context; a listener's storage
 * is copied to each child the kernel clones from it (BPF_F_CLONE, before
 * the child's SYN-RECV), so a connection not yet accepted carries its own
 * listener's owner, whatever other sockets share its port; and the accept
 * probe runs in the thread that accepts it, which becomes the owner
 * (pre-fork servers, SO_REUSEPORT groups, a server that exec'd after
 * listen()). fexit/inet_csk_accept has the child socket typed; the system
 * call exit finds it through the new descriptor, untyped, so it hands the
 * owner over in sock_accepted, keyed by the socket's address, which events
 * and the iterator read (np_owner_best). Sockets open before the agent
 * started are learned once through /proc (netprobe_sock_learn). A
 * connection's sock_conns entry and its events carry a copy. Without
 * socket storage (cfg_storage = 0, before 5.11) owners live in sock_conns
 * entries only: accepted connections get one only from the accept probe.
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

/* The ring-buffer records, in BTF for the agent's layout test
 * (agent/tests/abi_layout.rs), as in netprobe.bpf.c. */
const volatile struct np_learn_record np_abi_learn_record = {};
const volatile struct np_sock_event np_abi_sock_event = {};

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

/* accept() and accept4() on the agent's architecture: the system call
 * exit probe takes only those. Set by the agent before load. */
const volatile __u32 cfg_nr_accept = 0;
const volatile __u32 cfg_nr_accept4 = 0;

/* 1: the kernel lets tracing programs use socket storage (bpf_sk_storage_get,
 * 5.11+); the agent loads with 0 where it does not, and the verifier then
 * skips every branch that would call it. */
const volatile __u32 cfg_storage = 1;

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

/* Probe-private: what the probes keep on each socket. */
struct np_sock_local {
	struct np_owner owner;
	__u32 flags; /* enum np_sock_local_flag */
	__u32 pad;
};

enum np_sock_local_flag {
	NP_SK_F_ESTAB = 1 << 0, /* counted in ESTAB_ENTERED, not yet in ESTAB_LEFT */
};

/* Owner and gauge flag of each TCP socket, freed with the socket (no
 * capacity: the kernel charges it to the socket); a listener's is copied to
 * its children. Probe-private. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct np_sock_local);
} sock_owners SEC(".maps");

/* Owners of accepted connections from the system call exit probe, by
 * socket address, until the iterator moves them onto the socket (or the
 * socket closes); allocated per entry (--max-connections). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct np_owner);
} sock_accepted SEC(".maps");

/* Owners the agent learned from /proc at start, by socket inode; read by
 * netprobe_sock_learn, emptied by the agent after. Allocated per entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct np_owner);
} sock_seed SEC(".maps");

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

/* The socket's storage (full TCP sockets only: tp), created when create is
 * set; NULL without socket storage (cfg_storage), or when the kernel could
 * not allocate it (counted). */
static __always_inline struct np_sock_local *np_local(struct np_sock_stats *st, const struct tcp_sock *tp, int create)
{
	struct np_sock_local *s;

	if (!cfg_storage)
		return 0;
	s = bpf_sk_storage_get(&sock_owners, (void *)tp, 0, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!s && create)
		np_count(st, NP_SOCK_STORAGE_FAILED, 1);
	return s;
}

/* The calling process as an owner (process context only). */
static __always_inline void np_owner_current(struct np_owner *o, __u8 source)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	__builtin_memset(o, 0, sizeof(*o));
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->source = source;
	o->cgroup_id = bpf_get_current_cgroup_id();
	/* The process's name, as ss -p and /proc/PID/stat show it: its thread
	 * group leader's, not the calling thread's. */
	if (!leader || bpf_probe_read_kernel_str(o->comm, sizeof(o->comm), &leader->comm) < 0)
		bpf_get_current_comm(o->comm, sizeof(o->comm));
}

/* How sure an owner is: a process seen acting on the socket beats one
 * learned from /proc, which beats the listener's. */
static __always_inline int np_owner_rank(__u8 source)
{
	switch (source) {
	case NP_OWNER_CONNECT:
	case NP_OWNER_ACCEPT:
		return 3;
	case NP_OWNER_LEARNED:
		return 2;
	case NP_OWNER_LISTENER:
		return 1;
	default:
		return 0;
	}
}

/* The surer of the entry's, the socket's and a handed-over owner (each may
 * be NULL); NULL when none is known. */
static __always_inline const struct np_owner *np_owner_best(const struct np_conn *c, const struct np_sock_local *s,
							     const struct np_owner *h)
{
	const struct np_owner *best = 0;
	int rank = 0;

	if (c && np_owner_rank(c->owner.source) > rank) {
		best = &c->owner;
		rank = np_owner_rank(c->owner.source);
	}
	if (s && np_owner_rank(s->owner.source) >= rank && s->owner.source != NP_OWNER_UNKNOWN) {
		best = &s->owner;
		rank = np_owner_rank(s->owner.source);
	}
	if (h && np_owner_rank(h->source) >= rank && h->source != NP_OWNER_UNKNOWN)
		best = h;
	return best;
}

/*
 * The established gauge: a socket is counted on its first move into
 * ESTABLISHED or CLOSE-WAIT the probes see and uncounted when it leaves,
 * by a flag on the socket (s) or, without socket storage, on its table
 * entry (c: tracked connections only). A socket never counted is never
 * subtracted.
 */
static __always_inline void np_gauge(struct np_sock_stats *st, struct np_sock_local *s, struct np_conn *c, int estab)
{
	if (cfg_storage) {
		if (!s)
			return;
		if (estab && !(s->flags & NP_SK_F_ESTAB)) {
			s->flags |= NP_SK_F_ESTAB;
			np_count(st, NP_SOCK_ESTAB_ENTERED, 1);
		} else if (!estab && (s->flags & NP_SK_F_ESTAB)) {
			s->flags &= ~NP_SK_F_ESTAB;
			np_count(st, NP_SOCK_ESTAB_LEFT, 1);
		}
		return;
	}
	if (!c)
		return;
	if (estab && !(c->flags & NP_CONN_F_ESTAB)) {
		c->flags |= NP_CONN_F_ESTAB;
		np_count(st, NP_SOCK_ESTAB_ENTERED, 1);
	} else if (!estab && (c->flags & NP_CONN_F_ESTAB)) {
		c->flags &= ~NP_CONN_F_ESTAB;
		np_count(st, NP_SOCK_ESTAB_LEFT, 1);
	}
}

/* A socket started listening (process context: listen()). Its owner is
 * copied to every child cloned from it. */
static __always_inline void np_listen(struct np_sock_stats *st, const struct tcp_sock *tp)
{
	struct np_sock_local *s = np_local(st, tp, 1);

	if (s) {
		np_owner_current(&s->owner, NP_OWNER_LISTENER);
		s->flags = 0;
	}
}

/* Starts tracking a new connection. */
static __always_inline void np_track(struct np_sock_stats *st, const struct sock *sk, const struct tcp_sock *tp,
				     __u32 netns, __u8 direction)
{
	struct np_sock_local *s = np_local(st, tp, 1);
	struct np_conn c;
	__u64 key = (__u64)sk;

	__builtin_memset(&c, 0, sizeof(c));
	c.start_ns = bpf_ktime_get_boot_ns();
	c.netns = netns;
	c.direction = direction;
	np_conn_addrs(sk, tp, &c);
	if (direction == NP_CONN_ACTIVE) {
		/* connect() runs in the caller's context. */
		np_owner_current(&c.owner, NP_OWNER_CONNECT);
		if (s) {
			s->owner = c.owner;
			s->flags = 0;
		}
		c.state = NP_TCP_SYN_SENT;
		/* 0 on a new socket; tcp_disconnect() zeroes it on a reused one. */
		c.retrans_seen = tp->total_retrans;
		c.flags = NP_CONN_F_RETRANS_BASE;
	} else {
		/* The child is created in softirq, where no process is known: its
		 * storage is its listener's, copied by the clone (BPF_F_CLONE);
		 * the accept probe replaces it with the accepting process.
		 * total_retrans gets the SYN-ACK retransmits (counted by
		 * tcp_retransmit_synack) after this: baseline when SYN-RECV ends. */
		if (s) {
			if (s->owner.source != NP_OWNER_UNKNOWN)
				s->owner.source = NP_OWNER_LISTENER;
			s->flags = 0;
			c.owner = s->owner;
		}
		c.state = NP_TCP_SYN_RECV;
	}
	/* BPF_ANY: a stale entry of a freed socket at the same address is replaced. */
	if (bpf_map_update_elem(&sock_conns, &key, &c, BPF_ANY))
		np_count(st, NP_SOCK_UNTRACKED, 1);
}

/* What an event takes from the connection's entry, the socket and a
 * handed-over accept: who owns it (the socket's is there even when the
 * table had no room), and when it opened. */
static __always_inline void np_event_owner(struct np_sock_event *e, __u64 key, const struct np_conn *c,
					   const struct np_sock_local *s)
{
	const struct np_owner *h = bpf_map_lookup_elem(&sock_accepted, &key);
	const struct np_owner *o = np_owner_best(c, s, h);

	if (c) {
		e->direction = c->direction;
		e->flags = c->flags;
		e->start_ns = c->start_ns;
		e->established_ns = c->established_ns;
	}
	if (o)
		e->owner = *o;
}

static __always_inline void np_emit_closed(struct np_sock_stats *st, const struct sock *sk, const struct tcp_sock *tp,
					   const struct np_conn *c, const struct np_sock_local *s, __u32 netns,
					   __u8 outcome, __u8 oldstate)
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
	np_event_owner(e, (__u64)sk, c, s);
	if (c)
		e->retrans = c->retrans;
	bpf_ringbuf_submit(e, np_wakeup_flags());
}

SEC("tp_btf/inet_sock_set_state")
int netprobe_sock_state(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	int oldstate = (int)ctx[1];
	int newstate = (int)ctx[2];
	const struct tcp_sock *tp;
	struct np_sock_local *s = 0;
	struct np_sock_stats *st;
	struct np_conn *c;
	__u64 key = (__u64)sk;
	__u32 netns;
	int estab;

	/* Sockets starting or stopping to listen, and new connections (a
	 * child is cloned from its listener: it leaves LISTEN). */
	if (newstate == NP_TCP_LISTEN || oldstate == NP_TCP_LISTEN ||
	    (oldstate == NP_TCP_CLOSE && newstate == NP_TCP_SYN_SENT)) {
		/* MPTCP and SCTP sockets fire this tracepoint too. */
		if (sk->sk_protocol != NP_IPPROTO_TCP)
			return 0;
		netns = np_sk_netns(sk);
		if (!np_netns_wanted(netns))
			return 0;
		/* A listener closing: its storage goes with the socket. */
		if (newstate == NP_TCP_CLOSE)
			return 0;
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (!tp)
			return 0;
		st = np_stats();
		if (newstate == NP_TCP_LISTEN) {
			np_listen(st, tp);
		} else if (newstate == NP_TCP_SYN_RECV) {
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

	estab = np_estab_state(newstate);
	if (estab || np_estab_state(oldstate)) {
		/* Storage is created for a socket entering: one established
		 * before the agent started is counted from its first change. */
		s = np_local(st, tp, estab);
		np_gauge(st, s, c, estab);
	}
	if (c && estab) {
		c->flags |= NP_CONN_F_WAS_ESTAB;
		if (!c->established_ns)
			c->established_ns = bpf_ktime_get_boot_ns();
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
		if (!s)
			s = np_local(st, tp, 0);
		np_emit_closed(st, sk, tp, c, s, netns, outcome, oldstate);
		if (c)
			bpf_map_delete_elem(&sock_conns, &key);
		/* An owner handed over for this address is this socket's only. */
		bpf_map_delete_elem(&sock_accepted, &key);
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
	const struct tcp_sock *tp = 0;
	struct np_sock_local *s = 0;
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
		/* NULL for a time-wait or request socket: no storage there. */
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (tp)
			s = np_local(st, tp, 0);
	}
	/* The segment a RST answers names the peer even when sk is a listener. */
	if (!skb || np_skb_addrs(skb, e)) {
		if (sk)
			np_sk_addrs(sk, tp, &e->family, e->laddr, e->raddr, &e->lport, &e->rport);
	}
	np_event_owner(e, key, c, s);
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
 * 6.10 folded inet_csk_accept()'s flags, err and kern into one struct
 * proto_accept_arg: its return value follows two arguments there, four
 * before. Declared here because the 6.1 types (vmlinux.h) lack it; CO-RE
 * asks the running kernel whether it has it.
 */
struct proto_accept_arg___np {
	int flags;
} __attribute__((preserve_access_index));

/* Verifier: a context slot must be read at a constant offset from the
 * unmodified context pointer; left to itself, clang would pick the offset
 * first and add it to the pointer. */
#define NP_CTX_SLOT(ctx, off)                                                   \
	({                                                                      \
		__u64 __v;                                                      \
		asm volatile("%0 = *(u64 *)(%1 + " #off ")" : "=r"(__v) : "r"(ctx)); \
		__v;                                                            \
	})

/* The current process accepted the connection at key: its owner from now
 * on, on the socket itself where the caller has it typed (tp), else handed
 * over through sock_accepted; and on its table entry at once. */
static __always_inline void np_accepted(struct np_sock_stats *st, __u64 key, const struct tcp_sock *tp)
{
	struct np_sock_local *s;
	struct np_owner o;
	struct np_conn *c;

	np_owner_current(&o, NP_OWNER_ACCEPT);
	c = bpf_map_lookup_elem(&sock_conns, &key);
	if (c)
		c->owner = o;
	if (tp) {
		s = np_local(st, tp, 1);
		if (s)
			s->owner = o;
		return;
	}
	if (bpf_map_update_elem(&sock_accepted, &key, &o, BPF_ANY))
		np_count(st, NP_SOCK_ACCEPT_UNSEEN, 1);
}

/*
 * A connection accepted, in the accepting thread (accept(), accept4(),
 * io_uring): that process owns it from now on. Runs on a BPF trampoline
 * (x86_64 5.5+, arm64 with ftrace direct calls); the agent runs without it
 * where the kernel has none, and accepted connections then keep their
 * listener's owner.
 */
SEC("fexit/inet_csk_accept")
int netprobe_sock_accept(__u64 *ctx)
{
	const struct tcp_sock *tp;
	struct sock *sk;

	if (bpf_core_type_exists(struct proto_accept_arg___np))
		sk = (struct sock *)NP_CTX_SLOT(ctx, 16); /* (sk, arg) -> ret */
	else
		sk = (struct sock *)NP_CTX_SLOT(ctx, 32); /* (sk, flags, err, kern) -> ret */
	if (!sk) /* nothing accepted (an error, or a signal) */
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp || !np_netns_wanted(np_sk_netns(sk)))
		return 0;
	np_accepted(np_stats(), (__u64)sk, tp);
	return 0;
}

/* The system call number in the registers a system call left: each
 * architecture names it differently; CO-RE picks the running one's. */
struct pt_regs___x86 {
	long unsigned int orig_ax;
} __attribute__((preserve_access_index));

struct pt_regs___arm64 {
	int syscallno;
} __attribute__((preserve_access_index));

/* The socket a descriptor of the current process names, 0 if none. Read
 * with the helper: a descriptor table is an array of pointers, which typed
 * loads cannot index. */
static __always_inline const struct sock *np_fd_sock(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct socket *so;
	struct file *f = 0;

	if (!fds || fd < 0 || fd >= max)
		return 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	so = BPF_CORE_READ(f, private_data);
	/* A socket's file and the socket point at each other. */
	if (!so || BPF_CORE_READ(so, file) != f)
		return 0;
	return BPF_CORE_READ(so, sk);
}

/*
 * accept() and accept4() returning a descriptor, in the accepting thread:
 * the accept probe of kernels without BPF trampolines (raw tracepoint
 * sys_exit, which every system call then passes: a few tens of ns each,
 * measured by netprobe-sockbench). io_uring accepts do not pass it: those
 * connections keep their listener's owner.
 */
SEC("tp_btf/sys_exit")
int netprobe_sock_accept_sys(__u64 *ctx)
{
	const struct pt_regs *regs = (const struct pt_regs *)ctx[0];
	long ret = (long)ctx[1];
	const struct sock *sk;
	long nr = -1;

	if (bpf_core_field_exists(((struct pt_regs___x86 *)0)->orig_ax))
		nr = ((const struct pt_regs___x86 *)regs)->orig_ax;
	else if (bpf_core_field_exists(((struct pt_regs___arm64 *)0)->syscallno))
		nr = ((const struct pt_regs___arm64 *)regs)->syscallno;
	if ((nr != cfg_nr_accept && nr != cfg_nr_accept4) || ret < 0)
		return 0;
	sk = np_fd_sock(ret);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != NP_IPPROTO_TCP)
		return 0;
	if (!np_netns_wanted(BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum)))
		return 0;
	np_accepted(np_stats(), (__u64)sk, 0);
	return 0;
}

/* Inode of the socket's file, as /proc/PID/fd ("socket:[INODE]") and ss -e
 * (ino:) show it; 0 while no process holds it (a connection still in its
 * listener's accept queue). */
static __always_inline __u64 np_sock_inode(const struct tcp_sock *tp)
{
	struct socket *so = tp->inet_conn.icsk_inet.sk.sk_socket;
	struct file *f;

	if (!so)
		return 0;
	f = so->file;
	if (!f)
		return 0;
	return f->f_inode->i_ino;
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
	const struct np_owner *o, *h;
	struct np_sock_local *s;
	struct np_sock_stats *st;
	struct tcp_sock *tp;
	struct np_conn *c;
	__u64 key;
	int state, estab;

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
	estab = np_estab_state(state);
	s = np_local(st, tp, 0);
	h = bpf_map_lookup_elem(&sock_accepted, &key);
	if (h) {
		/* An accept the syscall probe saw: onto the socket now. */
		if (!s)
			s = np_local(st, tp, 1);
		if (s)
			s->owner = *h;
		c = bpf_map_lookup_elem(&sock_conns, &key);
		if (c)
			c->owner = *h;
		bpf_map_delete_elem(&sock_accepted, &key);
	}
	if (cfg_storage && estab && !(s && (s->flags & NP_SK_F_ESTAB))) {
		/* Established before the agent started (or before the kernel
		 * could give it storage): counted from now on. */
		if (!np_netns_wanted(np_sk_netns((const struct sock *)tp)))
			return 0;
		s = np_local(st, tp, 1);
		np_gauge(st, s, 0, 1);
	}
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
		if (estab) {
			n.flags |= NP_CONN_F_WAS_ESTAB;
			n.established_ns = n.start_ns;
			if (!cfg_storage)
				n.flags |= NP_CONN_F_ESTAB;
		}
		if (bpf_map_update_elem(&sock_conns, &key, &n, BPF_NOEXIST))
			return 0;
		if (estab && !cfg_storage)
			np_count(st, NP_SOCK_ESTAB_ENTERED, 1);
		c = bpf_map_lookup_elem(&sock_conns, &key);
		if (!c)
			return 0;
	}
	/* The socket's owner, where surer (accepted since, learned). */
	o = np_owner_best(c, s, 0);
	if (o)
		c->owner = *o;
	c->bytes_acked = tp->bytes_acked;
	c->bytes_received = tp->bytes_received;
	c->srtt_us = tp->srtt_us >> 3;
	c->updated_ns = bpf_ktime_get_boot_ns();
	np_retrans_catch_up(st, tp, c);
	return 0;
}

/*
 * Learns the owners of sockets open before the agent started (run twice at
 * start, after netprobe_sock_iter has tracked them): each listener or
 * connection of the agent's namespace whose owner is not known is written
 * to the output as an np_learn_record, unless sock_seed holds an owner for
 * its inode (found by the agent in /proc/PID/fd), which it then gets.
 */
SEC("iter/tcp")
int netprobe_sock_learn(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct np_sock_local *s = 0;
	struct np_learn_record r;
	struct np_sock_stats *st;
	struct np_owner *seed;
	struct tcp_sock *tp;
	struct np_conn *c;
	__u64 key, inode;
	int state;

	if (!skc)
		return 0;
	state = skc->skc_state;
	if (state == NP_TCP_CLOSE || state == NP_TCP_TIME_WAIT || state == NP_TCP_NEW_SYN_RECV)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp || !np_netns_wanted(np_sk_netns((const struct sock *)tp)))
		return 0;
	st = np_stats();
	key = (__u64)tp;
	c = bpf_map_lookup_elem(&sock_conns, &key);
	if (cfg_storage) {
		s = np_local(st, tp, 0);
		if (s && s->owner.source != NP_OWNER_UNKNOWN)
			return 0;
	} else if (!c || c->owner.source != NP_OWNER_UNKNOWN) {
		/* Nowhere to keep a listener's owner without storage. */
		return 0;
	}
	inode = np_sock_inode(tp);
	if (!inode)
		return 0;
	seed = bpf_map_lookup_elem(&sock_seed, &inode);
	if (seed) {
		s = np_local(st, tp, 1);
		if (s)
			s->owner = *seed;
		if (c)
			c->owner = *seed;
		return 0;
	}
	r.inode = inode;
	r.state = state;
	r.pad = 0;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
