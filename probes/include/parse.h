/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Packet parser shared by the XDP and TC probes (Katran style): it takes
 * data/data_end, checks `hdr + 1 > data_end` before each access, fills the
 * flow key and returns an enum np_skip reason (NP_SKIP_NONE: parsed fully).
 * It never decides a verdict: the probes always pass the packet.
 *
 * Layers: Ethernet, up to NP_VLAN_MAX 802.1Q/802.1ad tags, IPv4 (options,
 * fragments) or IPv6 (up to NP_EXTHDR_MAX extension headers: hop-by-hop,
 * routing, fragment, destination options, AH), then TCP, UDP, ICMP, ICMPv6.
 */
#ifndef NP_PARSE_H
#define NP_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi/packet.h"

#define NP_VLAN_MAX 2   /* tags followed; one more is NP_SKIP_VLAN_DEPTH */
#define NP_EXTHDR_MAX 6 /* IPv6 extension headers followed; one more is NP_SKIP_EXTHDR_CHAIN */

#define NP_IP_MF 0x2000     /* IPv4 more fragments (uapi has no name for it) */
#define NP_IP_OFFSET 0x1fff /* IPv4 fragment offset mask, 8-byte units */
#define NP_IP6_OFFSET 0xfff8 /* IPv6 fragment offset mask (low bits: res, M) */

#define NP_TCPF_FIN 0x01
#define NP_TCPF_SYN 0x02
#define NP_TCPF_RST 0x04
#define NP_TCPF_ACK 0x10

/* 802.1Q / 802.1ad tag after the outer ethertype (uapi has no struct). */
struct np_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* IPv6 fragment extension header (struct frag_hdr is kernel-internal). */
struct np_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

/* First 8 bytes of an ICMP or ICMPv6 header: the same layout in both.
 * Written out because <linux/icmp.h> includes <linux/if.h>, which pulls in
 * the C library's <sys/socket.h>; the probes build without a libc. */
struct np_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;
};

/* What the parser learnt besides the flow key. */
struct np_parse {
	__u8 l3;        /* 1: the IP header parsed; family/l4 and the key are valid */
	__u8 family;    /* enum np_family */
	__u8 l4;        /* enum np_l4 */
	__u8 tcp_flags; /* TCP flag byte; 0 unless a whole TCP header parsed */
	__u8 group;     /* 1: to a group, not one host: Ethernet multicast or broadcast, IP
			 * multicast, 255.255.255.255 (detect.h: never a scan probe) */
	__u8 quoted;    /* 1: an ICMP destination unreachable whose quoted packet parsed */
	__u16 qport;    /* the quoted packet's destination port (TCP, UDP; else 0) */
	/* The fields above are the 8 bytes the caller zeroes; qdst is
	 * written in full whenever quoted is set. */
	__u32 qdst[4];  /* its destination address */
	__u8 qproto;    /* its IP protocol */
	__u8 pad;
	__u16 hdr_len;  /* frame start to the end of the TCP or UDP header; else 0
			 * (np_handle: the headers each GSO segment repeats) */
};

#define NP_ICMP_DEST_UNREACH 3
#define NP_ICMP_FRAG_NEEDED 4 /* path MTU discovery, not a refusal */
#define NP_ICMPV6_DEST_UNREACH 1

/*
 * The packet an ICMP or ICMPv6 destination unreachable quotes (not
 * "fragmentation needed"): its destination and port are what was refused
 * (detect.h counts the refusal toward the error's destination, the one
 * that sent it). Fixed offsets only: an IPv4 header with options or an
 * IPv6 extension header leaves the port 0.
 */
static __always_inline void np_parse_quoted(const struct np_icmphdr *ih, void *data_end,
					    struct np_parse *p)
{
	void *q = (void *)(ih + 1);
	__be16 *ports;

	if (p->l4 == NP_L4_ICMP) {
		struct iphdr *ip = q;

		if (ih->type != NP_ICMP_DEST_UNREACH || ih->code == NP_ICMP_FRAG_NEEDED)
			return;
		if ((void *)(ip + 1) > data_end)
			return;
		p->quoted = 1;
		p->qdst[0] = ip->daddr;
		p->qdst[1] = 0;
		p->qdst[2] = 0;
		p->qdst[3] = 0;
		p->qproto = ip->protocol;
		ports = (__be16 *)(ip + 1);
		if (ip->ihl == 5 && (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) &&
		    (void *)(ports + 2) <= data_end)
			p->qport = bpf_ntohs(ports[1]);
	} else {
		struct ipv6hdr *ip6 = q;

		if (ih->type != NP_ICMPV6_DEST_UNREACH)
			return;
		if ((void *)(ip6 + 1) > data_end)
			return;
		p->quoted = 1;
		__builtin_memcpy(p->qdst, &ip6->daddr, sizeof(p->qdst));
		p->qproto = ip6->nexthdr;
		ports = (__be16 *)(ip6 + 1);
		if ((ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP) &&
		    (void *)(ports + 2) <= data_end)
			p->qport = bpf_ntohs(ports[1]);
	}
}

static __always_inline int np_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

static __always_inline int np_is_exthdr(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_FRAGMENT || nexthdr == IPPROTO_DSTOPTS ||
	       nexthdr == IPPROTO_AH;
}

/* enum np_l4 for an IP protocol number; ICMP in the wrong family is OTHER. */
static __always_inline __u8 np_l4_of(__u8 proto, __u8 family)
{
	switch (proto) {
	case IPPROTO_TCP:
		return NP_L4_TCP;
	case IPPROTO_UDP:
		return NP_L4_UDP;
	case IPPROTO_ICMP:
		return family == NP_FAMILY_IPV4 ? NP_L4_ICMP : NP_L4_OTHER;
	case IPPROTO_ICMPV6:
		return family == NP_FAMILY_IPV6 ? NP_L4_ICMPV6 : NP_L4_OTHER;
	default:
		return NP_L4_OTHER;
	}
}

/* L4 header at l4 for p->l4 (already set). Ports stay 0 unless it parses. */
static __always_inline __u32 np_parse_l4(void *data, void *l4, void *data_end,
					 struct np_parse *p, struct np_flow_key *k)
{
	switch (p->l4) {
	case NP_L4_TCP: {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end)
			return NP_SKIP_SHORT_L4;
		if (th->doff < 5)
			return NP_SKIP_BAD_TCP_DOFF;
		k->sport = bpf_ntohs(th->source);
		k->dport = bpf_ntohs(th->dest);
		p->tcp_flags = ((__u8 *)th)[13];
		p->hdr_len = (__u16)(l4 - data) + th->doff * 4;
		return NP_SKIP_NONE;
	}
	case NP_L4_UDP: {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return NP_SKIP_SHORT_L4;
		k->sport = bpf_ntohs(uh->source);
		k->dport = bpf_ntohs(uh->dest);
		p->hdr_len = (__u16)(l4 - data) + sizeof(*uh);
		return NP_SKIP_NONE;
	}
	case NP_L4_ICMP:
	case NP_L4_ICMPV6: {
		/* ICMP and ICMPv6 share the first 8 bytes' layout */
		struct np_icmphdr *ih = l4;

		if ((void *)(ih + 1) > data_end)
			return NP_SKIP_SHORT_L4;
		k->sport = (__u16)ih->type << 8 | ih->code;
		np_parse_quoted(ih, data_end, p);
		return NP_SKIP_NONE;
	}
	default:
		return NP_SKIP_NONE;
	}
}

static __always_inline __u32 np_parse_ipv4(void *data, void *cur, void *data_end,
					   struct np_parse *p, struct np_flow_key *k)
{
	struct iphdr *ip = cur;
	void *l4;

	if ((void *)(ip + 1) > data_end)
		return NP_SKIP_SHORT_IPV4;
	if (ip->version != 4)
		return NP_SKIP_BAD_VERSION;
	if (ip->ihl < 5)
		return NP_SKIP_BAD_IHL;
	l4 = cur + ip->ihl * 4;
	if (l4 > data_end)
		return NP_SKIP_SHORT_IPV4;

	p->l3 = 1;
	p->family = NP_FAMILY_IPV4;
	p->l4 = np_l4_of(ip->protocol, NP_FAMILY_IPV4);
	k->family = NP_FAMILY_IPV4;
	k->proto = ip->protocol;
	k->saddr[0] = ip->saddr;
	k->daddr[0] = ip->daddr;
	/* 224.0.0.0/4 multicast, or the limited broadcast */
	if ((((__u8 *)&ip->daddr)[0] & 0xf0) == 0xe0 || ip->daddr == 0xffffffff)
		p->group = 1;

	/* Only the first fragment (offset 0) carries the L4 header. */
	if (ip->frag_off & bpf_htons(NP_IP_OFFSET))
		return NP_SKIP_FRAGMENT;
	return np_parse_l4(data, l4, data_end, p, k);
}

static __always_inline __u32 np_parse_ipv6(void *data, void *cur, void *data_end,
					   struct np_parse *p, struct np_flow_key *k)
{
	struct ipv6hdr *ip6 = cur;
	__u8 nexthdr;

	if ((void *)(ip6 + 1) > data_end)
		return NP_SKIP_SHORT_IPV6;
	if (ip6->version != 6)
		return NP_SKIP_BAD_VERSION;

	p->l3 = 1;
	p->family = NP_FAMILY_IPV6;
	p->l4 = NP_L4_OTHER; /* until the chain ends at a known L4 */
	k->family = NP_FAMILY_IPV6;
	__builtin_memcpy(k->saddr, &ip6->saddr, sizeof(k->saddr));
	__builtin_memcpy(k->daddr, &ip6->daddr, sizeof(k->daddr));
	if (((__u8 *)&ip6->daddr)[0] == 0xff) /* ff00::/8 multicast */
		p->group = 1;
	nexthdr = ip6->nexthdr;
	cur = ip6 + 1;

	/* Unrolled: a bounded chain the verifier walks once per header. */
#pragma unroll
	for (int i = 0; i < NP_EXTHDR_MAX; i++) {
		struct ipv6_opt_hdr *oh = cur;
		__u32 len;

		if (!np_is_exthdr(nexthdr))
			break;
		/* A chain that stops here is accounted under this header. */
		k->proto = nexthdr;
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct np_frag_hdr *fh = cur;

			if ((void *)(fh + 1) > data_end)
				return NP_SKIP_SHORT_EXTHDR;
			nexthdr = fh->nexthdr;
			cur = fh + 1;
			if (fh->frag_off & bpf_htons(NP_IP6_OFFSET)) {
				/* non-first fragment: count the protocol, no L4 */
				k->proto = nexthdr;
				p->l4 = np_l4_of(nexthdr, NP_FAMILY_IPV6);
				return NP_SKIP_FRAGMENT;
			}
			continue;
		}
		if ((void *)(oh + 1) > data_end)
			return NP_SKIP_SHORT_EXTHDR;
		if (nexthdr == IPPROTO_AH)
			len = ((__u32)oh->hdrlen + 2) << 2; /* RFC 4302: 4-byte units */
		else
			len = ((__u32)oh->hdrlen + 1) << 3; /* RFC 8200: 8-byte units */
		if (cur + len > data_end)
			return NP_SKIP_SHORT_EXTHDR;
		nexthdr = oh->nexthdr;
		cur += len;
	}
	k->proto = nexthdr;
	if (np_is_exthdr(nexthdr))
		return NP_SKIP_EXTHDR_CHAIN;
	p->l4 = np_l4_of(nexthdr, NP_FAMILY_IPV6);
	return np_parse_l4(data, cur, data_end, p, k);
}

/*
 * Parses the frame in [data, data_end). Fills *p and the address, port,
 * family and proto fields of *k (both zeroed by the caller) and returns an
 * enum np_skip. p->l3 tells whether the packet counts as an IP packet.
 * l3_device (a constant): the device has no link-layer header (tun, wg,
 * ppp, raw-IP wwan, ipip, gre): the packet starts at the IP header, whose
 * version nibble gives the family.
 */
static __always_inline __u32 np_parse(void *data, void *data_end,
				      struct np_parse *p, struct np_flow_key *k, int l3_device)
{
	struct ethhdr *eth = data;
	void *cur;
	__be16 proto;

	if (l3_device) {
		__u8 *first = data;

		if ((void *)(first + 1) > data_end)
			return NP_SKIP_NON_IP;
		if ((*first >> 4) == 4)
			return np_parse_ipv4(data, data, data_end, p, k);
		if ((*first >> 4) == 6)
			return np_parse_ipv6(data, data, data_end, p, k);
		return NP_SKIP_NON_IP;
	}
	if ((void *)(eth + 1) > data_end)
		return NP_SKIP_SHORT_ETH;
	proto = eth->h_proto;
	cur = eth + 1;
	/* The group bit: multicast, or broadcast (ff:ff:ff:ff:ff:ff). */
	if (eth->h_dest[0] & 1)
		p->group = 1;

#pragma unroll
	for (int i = 0; i < NP_VLAN_MAX; i++) {
		struct np_vlan_hdr *vh = cur;

		if (!np_is_vlan(proto))
			break;
		if ((void *)(vh + 1) > data_end)
			return NP_SKIP_SHORT_VLAN;
		proto = vh->proto;
		cur = vh + 1;
	}
	if (np_is_vlan(proto))
		return NP_SKIP_VLAN_DEPTH;

	if (proto == bpf_htons(ETH_P_IP))
		return np_parse_ipv4(data, cur, data_end, p, k);
	if (proto == bpf_htons(ETH_P_IPV6))
		return np_parse_ipv6(data, cur, data_end, p, k);
	return NP_SKIP_NON_IP;
}

#endif /* NP_PARSE_H */
