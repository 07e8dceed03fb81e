/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Flood-proof admission of new flows: a per-CPU token bucket consulted only
 * on a flow_stats miss. Under a random-source flood it bounds the expensive
 * LRU inserts, so the per-packet cost stays near that of a lookup.
 */
#ifndef NP_ADMISSION_H
#define NP_ADMISSION_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/packet.h"
#include "maps.h"

/* Tunables the loader sets (aya: EbpfLoader::override_global). */
const volatile __u64 cfg_flow_admit_rate = 20000; /* new flows/s per CPU; 0: unlimited */
const volatile __u64 cfg_flow_admit_burst = 5000; /* bucket depth, flows per CPU (0 acts as 1) */

#define NP_NSEC_PER_SEC 1000000000ULL
#define NP_TOKEN NP_NSEC_PER_SEC        /* np_admission.tokens per token */
#define NP_BURST_MAX (1ULL << 32)       /* keeps burst * NP_TOKEN inside 64 bits */

/* At most one event per CPU per second; a full ring keeps the count for the next. */
static __always_inline void np_admission_event(struct np_admission *a, __u32 ifindex, __u64 now)
{
	struct np_event ev = {
		.type = NP_EVENT_FLOW_ADMISSION_LIMITED,
		.ifindex = ifindex,
		.timestamp_ns = now,
		.value = a->refused,
	};

	a->last_event_ns = now;
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0) == 0)
		a->refused = 0;
}

/* This CPU's bucket, refilled to now; NULL when admission is off (rate 0). */
static __always_inline struct np_admission *np_admission_refill(__u64 now)
{
	__u64 rate = cfg_flow_admit_rate;
	__u64 burst = cfg_flow_admit_burst;
	struct np_admission *a;
	__u32 zero = 0;
	__u64 full;

	if (rate == 0)
		return 0;
	a = bpf_map_lookup_elem(&admission_state, &zero);
	if (!a)
		return 0; /* cannot happen (one-entry array); fail open */

	if (burst == 0)
		burst = 1;
	if (burst > NP_BURST_MAX)
		burst = NP_BURST_MAX;
	full = burst * NP_TOKEN;

	/* Refill: elapsed * rate tokens-in-1e-9, capped at full; no overflow
	 * since the product is formed only when it is <= full - tokens. The
	 * first call (last_refill_ns 0) fills the bucket. */
	if (now > a->last_refill_ns) {
		__u64 elapsed = now - a->last_refill_ns;
		__u64 room = full > a->tokens ? full - a->tokens : 0;

		if (elapsed > room / rate)
			a->tokens = full;
		else
			a->tokens += elapsed * rate;
		a->last_refill_ns = now;
	}
	return a;
}

/* 1: a new flow may be inserted now (a refilled bucket, or admission off). */
static __always_inline int np_admission_open(const struct np_admission *a)
{
	return !a || a->tokens >= NP_TOKEN;
}

/* Counts a refusal; the first one in a second also sends an event. */
static __always_inline void np_admission_refuse(struct np_admission *a, __u32 ifindex, __u64 now)
{
	a->refused++;
	if (now - a->last_event_ns >= NP_NSEC_PER_SEC)
		np_admission_event(a, ifindex, now);
}

/* 1: the caller may insert a new flow (takes a token). */
static __always_inline int np_admit(struct np_admission *a, __u32 ifindex, __u64 now)
{
	if (np_admission_open(a)) {
		if (a)
			a->tokens -= NP_TOKEN;
		return 1;
	}
	np_admission_refuse(a, ifindex, now);
	return 0;
}

#endif /* NP_ADMISSION_H */
