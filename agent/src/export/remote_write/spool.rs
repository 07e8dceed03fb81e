//! The bounded in-memory spool: chunks waiting to be sent, oldest first.
//! When a push would take it past its byte bound, the oldest chunks go
//! first, and the caller counts them.

use std::collections::VecDeque;

use super::chunk::{Chunk, Limits};

#[derive(Debug)]
pub struct Spool {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    max_bytes: usize,
}

impl Spool {
    pub fn new(max_bytes: usize) -> Spool {
        Spool {
            chunks: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Appends a chunk, then drops the oldest chunks until the spool fits its
    /// bound again (a chunk larger than the whole bound drops itself).
    /// Returns what was dropped, oldest first.
    pub fn push(&mut self, c: Chunk) -> Vec<Chunk> {
        self.bytes += c.bytes();
        self.chunks.push_back(c);
        let mut dropped = Vec::new();
        while self.bytes > self.max_bytes {
            match self.pop_front() {
                Some(c) => dropped.push(c),
                None => break,
            }
        }
        dropped
    }

    fn pop_front(&mut self) -> Option<Chunk> {
        let c = self.chunks.pop_front()?;
        self.bytes -= c.bytes();
        Some(c)
    }

    /// The oldest chunks that fit one request (at least one chunk).
    pub fn front_batch(&self, limits: Limits) -> Vec<&Chunk> {
        let (mut samples, mut bytes) = (0usize, 0usize);
        let mut out = Vec::new();
        for c in &self.chunks {
            let (s, b) = (samples + c.samples as usize, bytes + c.raw_len as usize);
            if !out.is_empty() && (s > limits.max_samples || b > limits.max_bytes) {
                break;
            }
            (samples, bytes) = (s, b);
            out.push(c);
        }
        out
    }

    /// Removes the front chunks up to and including id `last`.
    pub fn pop_through(&mut self, last: u64) -> Vec<Chunk> {
        let mut out = Vec::new();
        while self.chunks.front().is_some_and(|c| c.id <= last) {
            out.extend(self.pop_front());
        }
        out
    }

    /// Chunks not yet in a spool file: always the newest ones.
    pub fn unsaved(&mut self) -> impl Iterator<Item = &mut Chunk> {
        self.chunks.iter_mut().filter(|c| c.segment.is_none())
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub fn samples(&self) -> u64 {
        self.chunks.iter().map(|c| c.samples as u64).sum()
    }

    pub fn oldest_ms(&self) -> Option<i64> {
        self.chunks.iter().map(|c| c.oldest_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: u64, len: usize, samples: u32) -> Chunk {
        Chunk {
            id,
            body: vec![0; len],
            samples,
            raw_len: len as u32 * 4,
            oldest_ms: id as i64 * 1000,
            newest_ms: id as i64 * 1000,
            segment: None,
        }
    }

    #[test]
    fn full_spool_drops_the_oldest_and_keeps_the_newest() {
        let one = chunk(0, 100, 10).bytes();
        let mut s = Spool::new(3 * one);
        for id in 0..3 {
            assert!(s.push(chunk(id, 100, 10)).is_empty());
        }
        let dropped = s.push(chunk(3, 100, 10));
        assert_eq!(dropped.iter().map(|c| c.id).collect::<Vec<_>>(), [0]);
        assert_eq!(s.bytes(), 3 * one);
        assert_eq!(s.samples(), 30);
        assert_eq!(s.oldest_ms(), Some(1000));
        // A chunk bigger than the bound empties the spool, itself included.
        let dropped = s.push(chunk(4, 4 * 100 + 200, 1));
        assert_eq!(
            dropped.iter().map(|c| c.id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(s.is_empty() && s.bytes() == 0);
    }

    #[test]
    fn front_batch_takes_what_one_request_holds() {
        let mut s = Spool::new(1 << 20);
        for id in 0..5 {
            s.push(chunk(id, 100, 10));
        }
        let ids = |b: Vec<&Chunk>| b.iter().map(|c| c.id).collect::<Vec<_>>();
        let limits = Limits {
            max_samples: 25,
            max_bytes: 1 << 20,
        };
        assert_eq!(ids(s.front_batch(limits)), [0, 1]);
        let limits = Limits {
            max_samples: 1,
            max_bytes: 1,
        };
        assert_eq!(ids(s.front_batch(limits)), [0], "always at least one");
        assert_eq!(s.pop_through(2).len(), 3);
        assert_eq!(ids(s.front_batch(Limits::default())), [3, 4]);
    }
}
