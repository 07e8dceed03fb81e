/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The seeded hashes behind every detector slot and sketch bit.
 *
 * cfg_hash_seed is random, drawn by the agent at each load (getrandom),
 * so an attacker cannot pick an address that shares a victim's slot or
 * sketch bit: the slot of an address depends on a secret. These are fast
 * mixing functions keyed by the seed, not a cryptographic PRF; the
 * detectors do not rely on them for blame either (scan slots belong to
 * one source, flood alerts name a source by its own count, detect.h).
 *
 * Rust mirror (for tests that pick colliding addresses): agent/src/detect/hash.rs.
 */
#ifndef NP_HASH_H
#define NP_HASH_H

#include <linux/bpf.h>

/* Set by the loader (agent: random per start, or --hash-seed). */
const volatile __u64 cfg_hash_seed = 0;

static __always_inline __u32 np_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	h *= 0x846ca68b;
	h ^= h >> 16;
	return h;
}

/* splitmix64's finaliser. */
static __always_inline __u64 np_fmix64(__u64 h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

/*
 * A 64-bit hash of an address (4 words; IPv4 in a[0], the rest zero),
 * computed at most once per packet for each of source and destination;
 * each detector takes its own bits of it (slot indices from the low bits,
 * sketch bits and tags from the high ones). The seed enters every word
 * before its multiply, so which addresses collide depends on it.
 */
static __always_inline __u64 np_addr_hash(const __u32 *a)
{
	__u64 s = cfg_hash_seed;
	__u64 h;

	h = ((__u64)a[0] ^ s) * 0x9e3779b97f4a7c15ULL;
	h ^= (((__u64)a[1] << 32 | a[2]) ^ (s >> 7)) * 0xc2b2ae3d27d4eb4fULL;
	h ^= ((__u64)a[3] ^ (s >> 13)) * 0x165667b19e3779f9ULL;
	return np_fmix64(h ^ s);
}

/* Sketch bit (0..255) of a destination port for the scan sketches. */
static __always_inline __u32 np_port_bit(__u16 port)
{
	return np_mix((__u32)port ^ (__u32)(cfg_hash_seed >> 32)) & 255;
}

/* Sketch bit (0..255) of a host, from its np_addr_hash. */
static __always_inline __u32 np_host_bit(__u64 haddr)
{
	return (__u32)(haddr >> 40) & 255;
}

#endif /* NP_HASH_H */
