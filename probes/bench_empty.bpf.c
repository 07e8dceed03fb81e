// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Baseline for netprobe-bench only: programs that do nothing, so the bench
 * can subtract what BPF_PROG_TEST_RUN itself costs per run. Never attached.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("xdp")
int bench_empty_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("classifier")
int bench_empty_tc(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}
