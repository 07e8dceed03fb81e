//! The objects the bench loads: NetProbe's probes (with globals set as the
//! agent's flags would), the empty programs and the naive baseline; and
//! the random numbers of the packets they are fed.

use aya::programs::{SchedClassifier, Xdp};
use aya::{Ebpf, EbpfLoader};
use netprobe::detect::Global;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Xdp,
    Tc,
}

/// Aligns included bytes: the ELF parser reads headers in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

/// The naive flow-accounting baseline (`probes/bench_naive.bpf.c`). Only
/// the bench uses it, so it is embedded here rather than in the library.
pub fn bench_naive_object() -> &'static [u8] {
    static OBJ: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../probes/bench_naive.bpf.o"
    )));
    &OBJ.0
}

/// Loads `object` with `globals` overridden and its programs `progs` verified.
/// A global the object does not have is skipped: `--object` measures older
/// builds too, which lack newer tunables (the agent's own load insists on
/// every name, so a misspelt one still fails there).
pub fn load(
    object: &[u8],
    progs: &[(&str, Kind)],
    globals: &[(&str, Global)],
) -> Result<Ebpf, String> {
    let mut loader = EbpfLoader::new();
    for (name, g) in globals {
        match g {
            Global::U32(v) => loader.override_global(name, v, false),
            Global::U64(v) => loader.override_global(name, v, false),
        };
    }
    let mut ebpf = loader
        .load(object)
        .map_err(|e| format!("loading object: {e}"))?;
    for (name, kind) in progs {
        let p = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("no program {name}"))?;
        let r = match kind {
            Kind::Xdp => <&mut Xdp>::try_from(p).map_err(|e| e.to_string())?.load(),
            Kind::Tc => <&mut SchedClassifier>::try_from(p)
                .map_err(|e| e.to_string())?
                .load(),
        };
        r.map_err(|e| format!("loading {name}: {e:?}"))?;
    }
    Ok(ebpf)
}

/// xorshift64*: repeatable pseudo-random packets without a crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
