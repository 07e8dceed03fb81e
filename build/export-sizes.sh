#!/usr/bin/env bash
# What the sinks (agent/src/export) and their crates add to the static,
# stripped appliance binary, per architecture. Until the agent calls the
# sinks, LTO drops them from netprobe-agent, so each variant builds a copy
# of HEAD whose main() also calls one piece (when NETPROBE_SIZE_PROBE is
# set, which keeps the code in the binary) and compares with the copy as is:
#   base       HEAD as it is
#   snap       snappy compression alone
#   (ureq 3, http only, measured 268 KiB on x86_64 and 256 KiB on aarch64
#   with this script at commit 13fdf5c; the module's own client replaced it)
#   prost      a prost-derived WriteRequest encoded (the alternative to the
#              hand-written encoder)
#   ipfix      export::ipfix::IpfixSink
#   rw-http    export::remote_write::RemoteWriter (hand-written protobuf and
#              HTTP client, snap, spool), http only
#   rw-https   the same with --features remote-write-https (rustls, ring,
#              webpki roots; ring's C and assembly need a C compiler for the
#              musl targets: gcc and aarch64-linux-gnu-gcc, set below)
#   both-http  ipfix + rw-http: the appliance build (https off)
#   both-https ipfix + rw-https: everything issue 14 adds
# Usage: build/export-sizes.sh [x86_64|aarch64]... (default: both)
#        EXPORT_SIZES_VARIANTS="base ipfix" build/export-sizes.sh   (a subset)
# Copies and builds under ${EXPORT_SIZES_DIR:-/var/tmp/netprobe-export-sizes}
# (kept: a second run rebuilds only the agent). Prints a markdown table.
# Resolution: the linker pads segments, so sizes move in steps of 4 KiB on
# x86_64 and 64 KiB on aarch64; smaller additions can show as +0.
set -euo pipefail
cd "$(dirname "$0")/.."

work=${EXPORT_SIZES_DIR:-/var/tmp/netprobe-export-sizes}
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(x86_64 aarch64)
read -r -a variants <<<"${EXPORT_SIZES_VARIANTS:-base snap prost ipfix rw-http rw-https both-http both-https}"

probe_body() {
	case $1 in
	snap) echo 'let v = std::hint::black_box(vec![7u8; 4096]); std::hint::black_box(snap::raw::Encoder::new().compress_vec(&v).ok());' ;;
	prost) echo 'let req = SizeWriteRequest { timeseries: vec![SizeTimeSeries { labels: vec![SizeLabel { name: "__name__".into(), value: std::hint::black_box("x").into() }], samples: vec![SizeSample { value: 1.0, timestamp: 2 }] }] }; std::hint::black_box(prost::Message::encode_to_vec(&req));' ;;
	ipfix) echo 'ipfix_probe();' ;;
	rw-http | rw-https) echo 'rw_probe();' ;;
	both-http | both-https) echo 'ipfix_probe(); rw_probe();' ;;
	esac
}

helpers() {
	cat <<'RS'
#[allow(dead_code)]
fn ipfix_probe() {
    use netprobe::export::ipfix::*;
    let cfg = IpfixConfig { collector: Collector::parse(std::hint::black_box("127.0.0.1:4739")).unwrap(), ..IpfixConfig::default() };
    let mut s = IpfixSink::new(&cfg).unwrap();
    let t = FlowTable { flows: vec![FlowEntry { key: FlowKey { ifindex: 1, src: [198, 18, 0, 1].into(), dst: [198, 18, 0, 2].into(), src_port: 1, dst_port: 2, proto: 17 }, counters: FlowCounters { rx_packets: 1, ..Default::default() } }], ..Default::default() };
    s.export(std::hint::black_box(&t), std::time::SystemTime::now());
    std::hint::black_box(s.metrics());
}
#[allow(dead_code)]
fn rw_probe() {
    use netprobe::export::remote_write::*;
    let w = std::sync::Arc::new(RemoteWriter::new(RemoteWriteConfig { url: std::hint::black_box("http://127.0.0.1:9/api/v1/write").into(), spool_dir: std::env::var_os("NETPROBE_SIZE_SPOOL").map(Into::into), ..RemoteWriteConfig::default() }).unwrap());
    w.push(&[Sample { name: "x".into(), labels: vec![], value: 1.0, timestamp_ms: 1 }]);
    let w2 = w.clone();
    let t = std::thread::spawn(move || w2.run());
    w.shutdown();
    let _ = t.join();
    std::hint::black_box(w.metrics());
}
#[allow(dead_code)]
#[derive(Clone, PartialEq, prost::Message)]
struct SizeWriteRequest { #[prost(message, repeated, tag = "1")] timeseries: Vec<SizeTimeSeries> }
#[allow(dead_code)]
#[derive(Clone, PartialEq, prost::Message)]
struct SizeTimeSeries { #[prost(message, repeated, tag = "1")] labels: Vec<SizeLabel>, #[prost(message, repeated, tag = "2")] samples: Vec<SizeSample> }
#[allow(dead_code)]
#[derive(Clone, PartialEq, prost::Message)]
struct SizeLabel { #[prost(string, tag = "1")] name: String, #[prost(string, tag = "2")] value: String }
#[allow(dead_code)]
#[derive(Clone, PartialEq, prost::Message)]
struct SizeSample { #[prost(double, tag = "1")] value: f64, #[prost(int64, tag = "2")] timestamp: i64 }
RS
}

triple_of() {
	case $1 in
	x86_64) echo x86_64-unknown-linux-musl ;;
	aarch64) echo aarch64-unknown-linux-musl ;;
	*) echo "export-sizes: unknown architecture $1" >&2; exit 2 ;;
	esac
}

mkdir -p "$work"
src="$work/src"
rm -rf "$src"
mkdir -p "$src"
git archive HEAD | tar -x -C "$src"
cp "$src/agent/src/main.rs" "$work/main.rs.orig"
# prost as a normal dependency in the copy, for the prost variant.
sed -i 's/^\[dependencies\]$/[dependencies]\nprost = { version = "0.14", default-features = false, features = ["derive", "std"] }/' "$src/agent/Cargo.toml"
sed -i '/^\[dev-dependencies\]$/,$ { /^prost = /d }' "$src/agent/Cargo.toml"

declare -A size
for v in "${variants[@]}"; do
	cp "$work/main.rs.orig" "$src/agent/src/main.rs"
	if [ "$v" != base ]; then
		body=$(probe_body "$v")
		sed -i "0,/^fn main() -> ExitCode {\$/s//fn main() -> ExitCode {\n    if std::env::var_os(\"NETPROBE_SIZE_PROBE\").is_some() {\n        $(printf '%s' "$body" | sed 's/[&/\]/\\&/g')\n    }/" "$src/agent/src/main.rs"
		helpers >>"$src/agent/src/main.rs"
	fi
	features=()
	case $v in *-https) features=(--features remote-write-https) ;; esac
	for a in "${archs[@]}"; do
		t=$(triple_of "$a")
		(cd "$src" && CARGO_TARGET_DIR="$work/target" CC_x86_64_unknown_linux_musl=gcc \
			CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc cargo build --quiet --release --bin netprobe-agent --target "$t" "${features[@]}")
		size[$v/$a]=$(stat -c %s "$work/target/$t/release/netprobe-agent")
		echo "export-sizes: $v $a ${size[$v/$a]} bytes" >&2
	done
done

printf '\n| variant |'
for a in "${archs[@]}"; do printf ' %s bytes | %s added KiB |' "$a" "$a"; done
printf '\n|---|'
for _ in "${archs[@]}"; do printf -- '---:|---:|'; done
printf '\n'
for v in "${variants[@]}"; do
	printf '| %s |' "$v"
	for a in "${archs[@]}"; do
		s=${size[$v/$a]}
		b=${size[base/$a]}
		printf ' %d | %+.1f |' "$s" "$(awk -v s="$s" -v b="$b" 'BEGIN { print (s - b) / 1024 }')"
	done
	printf '\n'
done
