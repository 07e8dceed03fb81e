//! The detection maps the agent writes and reads: blocklist and allowlist
//! tries, the expiring blocks of detected sources, allowed ports, and the
//! per-CPU detection counters (ring-buffer loss, drops).

use std::collections::HashMap as StdHashMap;
use std::net::IpAddr;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::Ebpf;
use serde::Serialize;

use super::engine::Action;
use super::DetectConfig;
use crate::abi::detect::{Block, DetectStats, LpmKey, Rule};
use crate::lists::Cidr;
use crate::probes;

/// Per-rule hit counters, as /status shows them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RuleHits {
    /// `blocklist` or `allowlist`.
    pub list: &'static str,
    pub rule: String,
    /// Packets matched: dropped (blocklist, mitigate=on), would be dropped
    /// (dry-run), or seen (off); allowlist: passed although matched.
    pub hits: u64,
}

/// What the maps say, read once per collection.
#[derive(Clone, Debug, Default)]
pub struct KernelReading {
    pub stats: DetectStats,
    pub block_hits: StdHashMap<IpAddr, u64>,
    pub rules: Vec<RuleHits>,
    pub blocked_entries: u64,
}

/// Rules whose counters /status lists (the rest still count in the kernel).
pub const MAX_RULES_SHOWN: usize = 1000;

pub struct DetectMaps {
    stats: PerCpuArray<MapData, DetectStats>,
    blocklist: LpmTrie<MapData, [u32; 4], Rule>,
    allowlist: LpmTrie<MapData, [u32; 4], Rule>,
    blocked: HashMap<MapData, LpmKey, Block>,
    allowed_ports: Array<MapData, u64>,
    rules: Vec<(&'static str, Cidr)>,
}

/// The map error, naming the map.
fn err(map: &'static str) -> impl Fn(aya::maps::MapError) -> String {
    move |e| format!("map {map}: {e}")
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    bpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, String> {
    let m = bpf
        .take_map(name)
        .ok_or_else(|| format!("probe object has no map {name}"))?;
    T::try_from(m).map_err(err(name))
}

fn lpm(c: &Cidr) -> Key<[u32; 4]> {
    let k = LpmKey::new(c.addr, c.prefix);
    Key::new(k.prefixlen, k.addr)
}

impl DetectMaps {
    /// Takes the detection maps out of the loaded object.
    ///
    /// # Errors
    /// A map is missing or has another layout than `abi::detect`.
    pub fn take(bpf: &mut Ebpf) -> Result<DetectMaps, String> {
        Ok(DetectMaps {
            stats: take(bpf, probes::MAP_DETECT_STATS)?,
            blocklist: take(bpf, probes::MAP_BLOCKLIST)?,
            allowlist: take(bpf, probes::MAP_ALLOWLIST)?,
            blocked: take(bpf, probes::MAP_BLOCKED_SOURCES)?,
            allowed_ports: take(bpf, probes::MAP_ALLOWED_PORTS)?,
            rules: Vec::new(),
        })
    }

    /// Writes the lists and allowed ports of `cfg` into the kernel.
    ///
    /// # Errors
    /// The kernel refused an entry (the trie is full).
    pub fn load_config(&mut self, cfg: &DetectConfig) -> Result<(), String> {
        for (name, list, trie) in [
            ("blocklist", &cfg.blocklist, &mut self.blocklist),
            ("allowlist", &cfg.allowlist, &mut self.allowlist),
        ] {
            for c in list {
                trie.insert(&lpm(c), Rule::default(), 0)
                    .map_err(|e| format!("{name} rule {c}: {e}"))?;
                self.rules.push((name, *c));
            }
        }
        if let Some(ports) = &cfg.allowed_ports {
            let mut words = vec![0u64; 1024];
            for p in ports {
                words[usize::from(*p) / 64] |= 1 << (p % 64);
            }
            for (i, w) in words.iter().enumerate() {
                self.allowed_ports
                    .set(i as u32, w, 0)
                    .map_err(err(probes::MAP_ALLOWED_PORTS))?;
            }
        }
        Ok(())
    }

    /// Applies the engine's decisions. Failures are logged, not fatal.
    pub fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            let r = match a {
                Action::Block {
                    source,
                    kind,
                    expires_boot_ns,
                } => {
                    let key = LpmKey::new(*source, if source.is_ipv4() { 32 } else { 128 });
                    let hits = self.blocked.get(&key, 0).map(|b| b.hits).unwrap_or(0);
                    self.blocked.insert(
                        key,
                        Block {
                            expires_ns: *expires_boot_ns,
                            hits,
                            kind: *kind,
                            pad: 0,
                        },
                        0,
                    )
                }
                Action::Unblock { source } => {
                    let key = LpmKey::new(*source, if source.is_ipv4() { 32 } else { 128 });
                    match self.blocked.remove(&key) {
                        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
                        r => r,
                    }
                }
            };
            if let Err(e) = r {
                log::warn!(
                    "mitigation: {a:?}: map {}: {e}",
                    probes::MAP_BLOCKED_SOURCES
                );
            }
        }
    }

    /// Reads the counters.
    ///
    /// # Errors
    /// A map read failed.
    pub fn read(&self) -> Result<KernelReading, String> {
        let mut out = KernelReading::default();
        for v in self
            .stats
            .get(&0, 0)
            .map_err(err(probes::MAP_DETECT_STATS))?
            .iter()
        {
            out.stats.add(v);
        }
        for item in self.blocked.iter() {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(_) => continue,
            };
            out.blocked_entries += 1;
            let mut b = [0u8; 16];
            for (i, w) in k.addr.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            let ip = std::net::Ipv6Addr::from(b);
            let ip = ip
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(ip));
            out.block_hits.insert(ip, v.hits);
        }
        // Bounded: /status lists the first MAX_RULES_SHOWN rules.
        for (list, c) in self.rules.iter().take(MAX_RULES_SHOWN) {
            let trie = if *list == "blocklist" {
                &self.blocklist
            } else {
                &self.allowlist
            };
            // get() is a longest-prefix match: ask with the rule's own key.
            let hits = trie.get(&lpm(c), 0).map(|r| r.hits).unwrap_or(0);
            out.rules.push(RuleHits {
                list,
                rule: c.to_string(),
                hits,
            });
        }
        Ok(out)
    }
}
