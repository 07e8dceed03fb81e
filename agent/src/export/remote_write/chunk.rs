//! Chunks: a pushed batch of samples cut into pieces bounded in samples and
//! bytes, each a snappy-compressed WriteRequest. They are the unit the
//! spool holds (in memory and on disk), drops when full, and sends.

use super::proto;
use super::sample::{ExternalLabels, Sample};

/// Most samples and uncompressed bytes in one chunk and in one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_samples: usize,
    pub max_bytes: usize,
}

impl Default for Limits {
    /// Prometheus' own remote_write queue sends up to 2,000 samples per
    /// request; 1 MiB uncompressed holds that with long label sets.
    fn default() -> Self {
        Limits {
            max_samples: 2000,
            max_bytes: 1 << 20,
        }
    }
}

/// A snappy-compressed WriteRequest of consecutive samples of one push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Increasing in push order; the spool's bookkeeping key.
    pub id: u64,
    /// Snappy (block format) compressed WriteRequest.
    pub body: Vec<u8>,
    pub samples: u32,
    /// Length of the WriteRequest before compression.
    pub raw_len: u32,
    /// Oldest and newest sample timestamp, Unix ms.
    pub oldest_ms: i64,
    pub newest_ms: i64,
    /// The spool file holding it, once written there.
    pub segment: Option<u64>,
}

impl Chunk {
    /// Memory and disk it takes, as the spool bound counts it.
    pub fn bytes(&self) -> usize {
        self.body.len() + CHUNK_OVERHEAD
    }
}

/// What a chunk costs beside its body (its fields, the queue slot).
pub const CHUNK_OVERHEAD: usize = 64;

/// Encodes `samples` with the external labels into chunks within `limits`
/// (a single series larger than `max_bytes` gets a chunk of its own).
/// Samples that are not finite numbers are sent as they are: Prometheus
/// stores NaN and infinities.
pub fn encode(
    samples: &[Sample],
    external: &ExternalLabels,
    limits: Limits,
    next_id: &mut u64,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut raw = Vec::new();
    let (mut n, mut oldest, mut newest) = (0usize, i64::MAX, i64::MIN);
    let mut seal = |raw: &mut Vec<u8>, n: &mut usize, oldest: &mut i64, newest: &mut i64| {
        if *n == 0 {
            return;
        }
        out.push(Chunk {
            id: *next_id,
            body: compress(raw),
            samples: *n as u32,
            raw_len: raw.len() as u32,
            oldest_ms: *oldest,
            newest_ms: *newest,
            segment: None,
        });
        *next_id += 1;
        raw.clear();
        (*n, *oldest, *newest) = (0, i64::MAX, i64::MIN);
    };
    for s in samples {
        let labels = external.label_set(s);
        let len = proto::series_len(&labels, s.timestamp_ms);
        if n > 0 && (n >= limits.max_samples || raw.len() + len > limits.max_bytes) {
            seal(&mut raw, &mut n, &mut oldest, &mut newest);
        }
        proto::put_series(&mut raw, &labels, s.value, s.timestamp_ms);
        n += 1;
        oldest = oldest.min(s.timestamp_ms);
        newest = newest.max(s.timestamp_ms);
    }
    seal(&mut raw, &mut n, &mut oldest, &mut newest);
    out
}

pub fn compress(raw: &[u8]) -> Vec<u8> {
    // Only fails for inputs over ~4 GiB; chunks are bounded far below.
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compresses a bounded chunk")
}

/// One request body for several chunks: their WriteRequests concatenated
/// (still one valid WriteRequest), compressed again. One chunk is sent as
/// it is.
///
/// # Errors
/// A chunk body that is not valid snappy (a damaged spool file that passed
/// its checksum): the message says which chunk.
pub fn merge(chunks: &[&Chunk]) -> Result<Vec<u8>, String> {
    if let [one] = chunks {
        return Ok(one.body.clone());
    }
    let total: usize = chunks.iter().map(|c| c.raw_len as usize).sum();
    let mut raw = Vec::with_capacity(total);
    let mut dec = snap::raw::Decoder::new();
    for c in chunks {
        let part = dec
            .decompress_vec(&c.body)
            .map_err(|e| format!("chunk {}: bad snappy body: {e}", c.id))?;
        raw.extend_from_slice(&part);
    }
    Ok(compress(&raw))
}

#[cfg(test)]
mod tests {
    use super::super::proto::oracle;
    use super::*;

    fn samples(n: usize, ts: i64) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                name: "netprobe_test_total".into(),
                labels: vec![("interface".into(), format!("eth{i}"))],
                value: i as f64,
                timestamp_ms: ts,
            })
            .collect()
    }

    #[test]
    fn chunks_respect_both_limits_and_keep_every_sample_in_order() {
        let ext = ExternalLabels::parse(&["site=lab"]).unwrap();
        let mut id = 7;
        let limits = Limits {
            max_samples: 40,
            max_bytes: 2000,
        };
        let chunks = encode(&samples(500, 1000), &ext, limits, &mut id);
        assert!(chunks.len() > 500 / 40, "{} chunks", chunks.len());
        let mut values = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.id, 7 + i as u64);
            assert!(c.samples as usize <= limits.max_samples);
            assert!(c.raw_len as usize <= limits.max_bytes);
            let req = oracle::decode(&c.body);
            assert_eq!(req.timeseries.len(), c.samples as usize);
            for ts in req.timeseries {
                let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
                assert_eq!(names, ["__name__", "interface", "site"]);
                values.push(ts.samples[0].value);
            }
        }
        assert_eq!(id, 7 + chunks.len() as u64);
        assert_eq!(values, (0..500).map(|i| i as f64).collect::<Vec<_>>());
    }

    #[test]
    fn merge_gives_one_request_with_every_series() {
        let ext = ExternalLabels::default();
        let mut id = 0;
        let a = encode(&samples(3, 1000), &ext, Limits::default(), &mut id);
        let b = encode(&samples(2, 2000), &ext, Limits::default(), &mut id);
        let body = merge(&[&a[0], &b[0]]).unwrap();
        let req = oracle::decode(&body);
        let ts: Vec<i64> = req
            .timeseries
            .iter()
            .map(|t| t.samples[0].timestamp)
            .collect();
        assert_eq!(ts, [1000, 1000, 1000, 2000, 2000]);
        let mut bad = b[0].clone();
        bad.body = vec![0xff; 8];
        assert!(merge(&[&a[0], &bad]).unwrap_err().contains("chunk 1"));
    }
}
