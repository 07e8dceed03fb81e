//! The remote_write 1.0 body: a protobuf `prometheus.WriteRequest`,
//! encoded by hand. The subset written is tiny:
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! Hand-written rather than prost-derived: it is 40 lines, and it adds no
//! crate to the binary (docs/fleets.md has the measured difference). The
//! tests decode it with prost as the oracle. A WriteRequest's only field
//! is repeated, so two encoded requests concatenated are one valid request
//! holding both: the spool merges queued chunks that way.

/// Wire types of the protobuf encoding.
const LEN: u8 = 2;
const I64: u8 = 1;
const VARINT: u8 = 0;

const fn tag(field: u8, wire: u8) -> u8 {
    field << 3 | wire
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn string_field_len(s: &str) -> usize {
    1 + varint_len(s.len() as u64) + s.len()
}

fn put_string_field(out: &mut Vec<u8>, field: u8, s: &str) {
    out.push(tag(field, LEN));
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Bytes [`put_series`] appends for this series.
pub fn series_len(labels: &[(&str, &str)], timestamp_ms: i64) -> usize {
    let body = series_body_len(labels, timestamp_ms);
    1 + varint_len(body as u64) + body
}

fn sample_len(timestamp_ms: i64) -> usize {
    // value: tag + 8 bytes; timestamp: tag + varint (int64: two's complement).
    9 + 1 + varint_len(timestamp_ms as u64)
}

fn series_body_len(labels: &[(&str, &str)], timestamp_ms: i64) -> usize {
    let labels: usize = labels
        .iter()
        .map(|(k, v)| {
            let l = string_field_len(k) + string_field_len(v);
            1 + varint_len(l as u64) + l
        })
        .sum();
    let s = sample_len(timestamp_ms);
    labels + 1 + varint_len(s as u64) + s
}

/// Appends `timeseries { labels..., samples { value, timestamp } }` to a
/// WriteRequest body. `labels` must be sorted by name, `__name__` included
/// (remote_write 1.0 requires it; [`super::ExternalLabels::label_set`]
/// builds such a set).
pub fn put_series(out: &mut Vec<u8>, labels: &[(&str, &str)], value: f64, timestamp_ms: i64) {
    out.push(tag(1, LEN));
    put_varint(out, series_body_len(labels, timestamp_ms) as u64);
    for (k, v) in labels {
        out.push(tag(1, LEN));
        put_varint(out, (string_field_len(k) + string_field_len(v)) as u64);
        put_string_field(out, 1, k);
        put_string_field(out, 2, v);
    }
    out.push(tag(2, LEN));
    put_varint(out, sample_len(timestamp_ms) as u64);
    out.push(tag(1, I64));
    out.extend_from_slice(&value.to_le_bytes());
    out.push(tag(2, VARINT));
    put_varint(out, timestamp_ms as u64);
}

/// Prost mirrors of the messages, for the tests' oracle only.
#[cfg(test)]
pub mod oracle {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// Decodes a snappy-compressed WriteRequest body.
    pub fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .expect("snappy body");
        <WriteRequest as prost::Message>::decode(raw.as_slice()).expect("WriteRequest")
    }
}

#[cfg(test)]
mod tests {
    use super::oracle::WriteRequest;
    use super::*;
    use prost::Message;

    #[test]
    fn prost_decodes_what_put_series_writes() {
        type Case<'a> = (&'a [(&'a str, &'a str)], f64, i64);
        let cases: [Case; 4] = [
            (&[("__name__", "up")], 1.0, 1_700_000_000_123),
            (
                &[
                    ("__name__", "a_total"),
                    ("interface", "eth0"),
                    ("site", "lab"),
                ],
                12345.5,
                0,
            ),
            (&[("__name__", "neg"), ("x", &"v".repeat(300))], -0.25, -5),
            (&[("__name__", "nan")], f64::NAN, i64::MAX),
        ];
        let mut body = Vec::new();
        for (labels, v, ts) in cases {
            let before = body.len();
            put_series(&mut body, labels, v, ts);
            assert_eq!(body.len() - before, series_len(labels, ts));
        }
        let req = WriteRequest::decode(body.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), cases.len());
        for (ts, (labels, v, t)) in req.timeseries.iter().zip(cases) {
            let got: Vec<(&str, &str)> = ts
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect();
            assert_eq!(got, labels);
            assert_eq!(ts.samples.len(), 1);
            assert_eq!(ts.samples[0].timestamp, t);
            assert_eq!(ts.samples[0].value.to_bits(), v.to_bits());
        }
    }

    #[test]
    fn concatenated_requests_are_one_request() {
        let mut a = Vec::new();
        put_series(&mut a, &[("__name__", "a")], 1.0, 10);
        let mut b = Vec::new();
        put_series(&mut b, &[("__name__", "b")], 2.0, 20);
        a.extend_from_slice(&b);
        let req = WriteRequest::decode(a.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        assert_eq!(req.timeseries[1].samples[0].timestamp, 20);
    }
}
