//! The probes' seeded slot hashes (`probes/include/hash.h`), mirrored so
//! tests can pick addresses that share a slot under one seed and check
//! that they do not under another; the kernel test checks the mirror
//! against the probes.

use std::net::IpAddr;

/// `np_mix`
pub fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// `np_fmix64`
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h
}

/// An address as the probes hold it: four words of network-order bytes in
/// memory (IPv4 in the first, the rest zero).
pub fn words(ip: IpAddr) -> [u32; 4] {
    let mut w = [0u32; 4];
    match ip {
        IpAddr::V4(a) => w[0] = u32::from_ne_bytes(a.octets()),
        IpAddr::V6(a) => {
            for (i, c) in a.octets().chunks(4).enumerate() {
                w[i] = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
    w
}

/// `np_addr_hash` (the BPF target is little-endian, as the hosts we run on).
pub fn addr_hash(seed: u64, ip: IpAddr) -> u64 {
    let a = words(ip);
    let mut h = (u64::from(a[0]) ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= ((u64::from(a[1]) << 32 | u64::from(a[2])) ^ (seed >> 7))
        .wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h ^= (u64::from(a[3]) ^ (seed >> 13)).wrapping_mul(0x1656_67b1_9e37_79f9);
    fmix64(h ^ seed)
}

/// The scan slot (`scan_state` index) of a source, with `slots` slots.
pub fn scan_slot(seed: u64, ip: IpAddr, slots: u32) -> u32 {
    (addr_hash(seed, ip) as u32) & (slots - 1)
}

/// `np_port_bit`
pub fn port_bit(seed: u64, port: u16) -> u32 {
    mix(u32::from(port) ^ (seed >> 32) as u32) & 255
}

/// `np_host_bit`
pub fn host_bit(seed: u64, ip: IpAddr) -> u32 {
    ((addr_hash(seed, ip) >> 40) as u32) & 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_moves_addresses_between_slots() {
        let a: IpAddr = "198.18.0.2".parse().unwrap();
        let b: IpAddr = "198.18.0.3".parse().unwrap();
        assert_ne!(addr_hash(1, a), addr_hash(2, a));
        assert_ne!(addr_hash(1, a), addr_hash(1, b));
        // Over many seeds a fixed pair shares a 4096-slot table about 1 in
        // 4096 times: it is the seed, not the addresses, that decides.
        let shared = (1..20_000u64)
            .filter(|s| scan_slot(*s, a, 4096) == scan_slot(*s, b, 4096))
            .count();
        assert!(shared < 20, "{shared} of 20000 seeds");
    }

    #[test]
    fn the_mirrors_agree() {
        // build/detect-traffic.py's addr_hash gives these too; the kernel
        // test checks this mirror against the probes.
        assert_eq!(
            addr_hash(0x5eed_0000_1234_5678, "198.18.0.2".parse().unwrap()),
            0x0ba6_34b9_d7bc_46f5
        );
        assert_eq!(
            addr_hash(7, "2001:db8::1".parse().unwrap()),
            0x2918_bff2_f5dd_554d
        );
    }
}
