//! `--remote-write-spool-dir`: the spool kept on disk across restarts and
//! reboots, for gateways with writable storage.
//!
//! Flash wear: chunks are written only when they are still unsent at a
//! flush (every `spool_flush_interval`, and at shutdown), many chunks per
//! file, each chunk once. With the receiver up nothing is written at all.
//!
//! Layout: `seg-<id>.rws` files, oldest id first, each `MAGIC` then records
//! `[len u32][crc32 u32][samples u32][raw_len u32][oldest_ms i64][newest_ms i64][body]`
//! (little endian; the CRC covers everything after it). A file is written
//! as `.tmp`, synced, renamed and the directory synced, so a crash leaves
//! either the whole file or none. Should a file still be damaged (a disk
//! that lies about syncs), loading keeps every record before the damage,
//! counts the rest, and never fails the agent. Chunks leave the spool in
//! order; a file is deleted once all its chunks have left, and `cursor`
//! records how many of the oldest file's chunks have (written at flushes and
//! at shutdown, so a crash may resend at most one flush interval of them).

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::chunk::Chunk;

const MAGIC: &[u8; 8] = b"NPRWSPL1";
const RECORD_HEADER: usize = 8;
const RECORD_META: usize = 24;
/// Largest spool file: chunks of one flush beyond this go to the next file,
/// so a partly sent file re-read after a crash costs at most this much.
pub const SEGMENT_MAX_BYTES: usize = 1 << 20;
const CURSOR: &str = "cursor";

#[derive(Debug)]
struct Segment {
    id: u64,
    chunks: u32,
    /// Chunks of this file that have left the spool (sent or dropped).
    consumed: u32,
}

#[derive(Debug)]
pub struct SpoolDir {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    next_segment: u64,
    /// The (segment, consumed) last written to `cursor`.
    cursor_written: Option<(u64, u32)>,
}

/// What [`SpoolDir::open`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Unsent chunks, oldest first, with fresh ids.
    pub chunks: Vec<Chunk>,
    /// Damaged records (and files without the magic) skipped.
    pub corrupt_records: u64,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016x}.rws"))
}

fn segment_id(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".rws")?;
    u64::from_str_radix(hex, 16).ok()
}

impl SpoolDir {
    /// Opens (creating it) the directory and reads what an earlier run left:
    /// `.tmp` leftovers are removed, damaged records counted and skipped.
    ///
    /// # Errors
    /// The directory cannot be created or listed; the message names it.
    pub fn open(dir: &Path, next_chunk_id: &mut u64) -> Result<(SpoolDir, Loaded), String> {
        let ctx = |e: io::Error| format!("--remote-write-spool-dir {}: {e}", dir.display());
        fs::create_dir_all(dir).map_err(ctx)?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(ctx)? {
            let name = entry.map_err(ctx)?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(dir.join(&*name));
            } else if let Some(id) = segment_id(&name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let cursor = read_cursor(dir);
        let mut sd = SpoolDir {
            dir: dir.to_path_buf(),
            segments: VecDeque::new(),
            next_segment: ids.last().map_or(0, |i| i + 1),
            cursor_written: cursor,
        };
        let mut loaded = Loaded::default();
        for id in ids {
            let path = segment_path(dir, id);
            let (mut chunks, corrupt) = match fs::read(&path) {
                Ok(data) => parse_segment(&data),
                Err(e) => {
                    log::warn!("remote_write spool: cannot read {}: {e}", path.display());
                    (Vec::new(), 1)
                }
            };
            if corrupt > 0 {
                log::warn!(
                    "remote_write spool: {}: {corrupt} damaged record(s) skipped, {} kept",
                    path.display(),
                    chunks.len()
                );
            }
            loaded.corrupt_records += corrupt;
            let total = chunks.len() as u32;
            let consumed = match cursor {
                Some((seg, n)) if seg == id => n.min(total),
                _ => 0,
            };
            chunks.drain(..consumed as usize);
            if chunks.is_empty() {
                let _ = fs::remove_file(&path);
                continue;
            }
            for c in &mut chunks {
                c.id = *next_chunk_id;
                *next_chunk_id += 1;
                c.segment = Some(id);
            }
            sd.segments.push_back(Segment {
                id,
                chunks: total,
                consumed,
            });
            loaded.chunks.extend(chunks);
        }
        Ok((sd, loaded))
    }

    /// Writes chunks not yet on disk (the spool's newest, in order) into new
    /// files and marks them saved.
    ///
    /// # Errors
    /// A write, sync or rename failed (disk full, read-only): the chunks stay
    /// in memory, unsaved, and the next flush tries again.
    pub fn save(&mut self, chunks: Vec<&mut Chunk>) -> io::Result<()> {
        let mut rest = chunks;
        while !rest.is_empty() {
            let mut size = MAGIC.len();
            let mut n = 0;
            while n < rest.len() && (n == 0 || size + record_len(rest[n]) <= SEGMENT_MAX_BYTES) {
                size += record_len(rest[n]);
                n += 1;
            }
            let mut data = Vec::with_capacity(size);
            data.extend_from_slice(MAGIC);
            for c in &rest[..n] {
                put_record(&mut data, c);
            }
            let id = self.next_segment;
            write_durably(&self.dir, &segment_path(&self.dir, id), &data)?;
            self.next_segment += 1;
            for c in rest.drain(..n) {
                c.segment = Some(id);
            }
            self.segments.push_back(Segment {
                id,
                chunks: n as u32,
                consumed: 0,
            });
        }
        Ok(())
    }

    /// A chunk of file `segment` left the spool. Chunks leave in order, so
    /// this is always the oldest file; it is deleted once all have left.
    pub fn release(&mut self, segment: u64) {
        let Some(head) = self.segments.front_mut() else {
            return;
        };
        if head.id != segment {
            log::warn!("remote_write spool: chunk of file {segment} left out of order");
            return;
        }
        head.consumed += 1;
        if head.consumed >= head.chunks {
            let path = segment_path(&self.dir, head.id);
            if let Err(e) = fs::remove_file(&path) {
                log::warn!("remote_write spool: cannot remove {}: {e}", path.display());
            }
            self.segments.pop_front();
        }
    }

    /// Records how far the oldest file has been sent, if that changed since
    /// the last call (at flushes and at shutdown: one small write at most).
    ///
    /// # Errors
    /// Writing the cursor failed; a restart may then resend that file's
    /// already-sent chunks.
    pub fn sync_cursor(&mut self) -> io::Result<()> {
        // No cursor at all while the oldest file is unsent from its start.
        let now = self
            .segments
            .front()
            .filter(|s| s.consumed > 0)
            .map(|s| (s.id, s.consumed));
        if now == self.cursor_written {
            return Ok(());
        }
        match now {
            Some((id, n)) => write_durably(
                &self.dir,
                &self.dir.join(CURSOR),
                format!("{id} {n}\n").as_bytes(),
            )?,
            None => match fs::remove_file(self.dir.join(CURSOR)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        self.cursor_written = now;
        Ok(())
    }

    /// Bytes of spool files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| fs::metadata(segment_path(&self.dir, s.id)).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn read_cursor(dir: &Path) -> Option<(u64, u32)> {
    let s = fs::read_to_string(dir.join(CURSOR)).ok()?;
    let (a, b) = s.trim().split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn record_len(c: &Chunk) -> usize {
    RECORD_HEADER + RECORD_META + c.body.len()
}

fn put_record(out: &mut Vec<u8>, c: &Chunk) {
    let mut rec = Vec::with_capacity(RECORD_META + c.body.len());
    rec.extend_from_slice(&c.samples.to_le_bytes());
    rec.extend_from_slice(&c.raw_len.to_le_bytes());
    rec.extend_from_slice(&c.oldest_ms.to_le_bytes());
    rec.extend_from_slice(&c.newest_ms.to_le_bytes());
    rec.extend_from_slice(&c.body);
    out.extend_from_slice(&(rec.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&rec).to_le_bytes());
    out.extend_from_slice(&rec);
}

/// The valid records of a file, and how many damaged ones were skipped
/// (everything after the first damaged record counts as one).
fn parse_segment(data: &[u8]) -> (Vec<Chunk>, u64) {
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return (Vec::new(), 1);
    }
    let mut chunks = Vec::new();
    let mut at = MAGIC.len();
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let i64_at = |b: &[u8], i: usize| i64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    while at < data.len() {
        if data.len() - at < RECORD_HEADER {
            return (chunks, 1);
        }
        let len = u32_at(data, at) as usize;
        let crc = u32_at(data, at + 4);
        let start = at + RECORD_HEADER;
        if len < RECORD_META || data.len() - start < len {
            return (chunks, 1);
        }
        let rec = &data[start..start + len];
        if crc32fast::hash(rec) != crc {
            return (chunks, 1);
        }
        chunks.push(Chunk {
            id: 0,
            samples: u32_at(rec, 0),
            raw_len: u32_at(rec, 4),
            oldest_ms: i64_at(rec, 8),
            newest_ms: i64_at(rec, 16),
            body: rec[RECORD_META..].to_vec(),
            segment: None,
        });
        at = start + len;
    }
    (chunks, 0)
}

/// Writes `path` whole or not at all: a `.tmp` beside it, synced, renamed,
/// and the directory synced so the rename survives a power cut.
fn write_durably(dir: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: u64, body_len: usize) -> Chunk {
        Chunk {
            id,
            body: (0..body_len).map(|i| (i as u64 ^ id) as u8).collect(),
            samples: 10 + id as u32,
            raw_len: body_len as u32 * 3,
            oldest_ms: id as i64 * 5000,
            newest_ms: id as i64 * 5000 + 1,
            segment: None,
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("np-spool-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn same(a: &Chunk, b: &Chunk) -> bool {
        (a.body == b.body)
            && (a.samples, a.raw_len, a.oldest_ms, a.newest_ms)
                == (b.samples, b.raw_len, b.oldest_ms, b.newest_ms)
    }

    #[test]
    fn saved_chunks_come_back_after_a_restart_minus_the_sent_ones() {
        let dir = tmpdir("restart");
        let mut next = 0;
        let (mut sd, loaded) = SpoolDir::open(&dir, &mut next).unwrap();
        assert!(loaded.chunks.is_empty());
        let mut chunks: Vec<Chunk> = (0..5).map(|i| chunk(i, 300)).collect();
        sd.save(chunks.iter_mut().collect()).unwrap();
        assert!(chunks.iter().all(|c| c.segment == Some(0)));
        // Two sent, then the agent stops (cursor written at shutdown).
        sd.release(0);
        sd.release(0);
        sd.sync_cursor().unwrap();
        drop(sd);
        let mut next = 100;
        let (mut sd, loaded) = SpoolDir::open(&dir, &mut next).unwrap();
        assert_eq!(loaded.corrupt_records, 0);
        assert_eq!(loaded.chunks.len(), 3);
        for (got, want) in loaded.chunks.iter().zip(&chunks[2..]) {
            assert!(same(got, want));
        }
        assert_eq!(loaded.chunks[0].id, 100);
        // The rest sent: the file and the cursor go.
        for _ in 0..3 {
            sd.release(0);
        }
        sd.sync_cursor().unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_file_keeps_its_valid_records_and_leftover_tmp_files_go() {
        let dir = tmpdir("torn");
        let mut next = 0;
        let (mut sd, _) = SpoolDir::open(&dir, &mut next).unwrap();
        let mut a: Vec<Chunk> = (0..3).map(|i| chunk(i, 200)).collect();
        sd.save(a.iter_mut().collect()).unwrap();
        let mut b: Vec<Chunk> = (3..5).map(|i| chunk(i, 200)).collect();
        sd.save(b.iter_mut().collect()).unwrap();
        drop(sd);
        // Cut the first file in the middle of its last record, flip a byte
        // in the second file's second record, leave a half-written .tmp.
        let p0 = segment_path(&dir, 0);
        let len = fs::metadata(&p0).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&p0)
            .unwrap()
            .set_len(len - 50)
            .unwrap();
        let p1 = segment_path(&dir, 1);
        let mut d = fs::read(&p1).unwrap();
        let n = d.len();
        d[n - 10] ^= 0xff;
        fs::write(&p1, d).unwrap();
        fs::write(dir.join("seg-0000000000000002.tmp"), b"NPRW").unwrap();
        let mut next = 0;
        let (_, loaded) = SpoolDir::open(&dir, &mut next).unwrap();
        assert_eq!(loaded.corrupt_records, 2);
        let kept: Vec<u32> = loaded.chunks.iter().map(|c| c.samples).collect();
        assert_eq!(kept, [10, 11, 13]);
        assert!(!dir.join("seg-0000000000000002.tmp").exists());
        // Garbage without the magic is skipped, not fatal.
        fs::write(segment_path(&dir, 9), b"garbage").unwrap();
        let (_, loaded) = SpoolDir::open(&dir, &mut next).unwrap();
        assert_eq!(loaded.corrupt_records, 3);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn big_flushes_are_split_into_bounded_files() {
        let dir = tmpdir("split");
        let mut next = 0;
        let (mut sd, _) = SpoolDir::open(&dir, &mut next).unwrap();
        let mut chunks: Vec<Chunk> = (0..5).map(|i| chunk(i, SEGMENT_MAX_BYTES / 3)).collect();
        sd.save(chunks.iter_mut().collect()).unwrap();
        let segs: Vec<u64> = chunks.iter().map(|c| c.segment.unwrap()).collect();
        assert_eq!(segs, [0, 0, 1, 1, 2]);
        for e in fs::read_dir(&dir).unwrap() {
            assert!(e.unwrap().metadata().unwrap().len() as usize <= SEGMENT_MAX_BYTES);
        }
        assert!(sd.disk_bytes() > 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
