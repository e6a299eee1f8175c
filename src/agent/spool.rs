//! The spool: the agent's durable queue of batches, between reading files and the server's
//! `204`. Every batch is written here, fsynced, before its file positions advance and before
//! it is sent; it is removed once the server has acknowledged it (or refused it for good).
//!
//! Why every batch and not only while the server is down: a batch resent after a crash must
//! be the same bytes, with the same timestamps, for the server's duplicate drop (tenant,
//! stream, timestamp, line) to remove the copy it already has. Read again from the file, the
//! lines would get new timestamps and be stored twice. With the spool, the only duplicates are
//! batches the server acknowledged in the moment before the agent died, and those it drops.
//!
//! The spool is bounded by `buffer_bytes_max`: when it is full, the agent stops reading files
//! (backpressure), and the files keep the rest; the bound is exceeded by one batch at most.
//!
//! A batch file, `batch-<seq, 20 digits>.spool` (little-endian):
//!
//! ```text
//! magic     8 bytes  "SLAGSPL1"
//! entries   u32      log entries in the body (for the sent-lines counter)
//! advances  u32 length, then text: one line per file position this batch moves,
//!           "<dev> <inode> <offset> <path>" or "<dev> <inode> - <path>" (position dropped)
//! body      u32 length, then the push request as sent (protobuf, raw snappy); empty for a
//!           batch that only moves positions
//! crc       u32      CRC32C of every byte before it
//! ```
//!
//! A batch file is written as `<name>.tmp`, fsynced, renamed, and the directory fsynced, so a
//! file with the final name is whole. On start, leftover `.tmp` files are removed, and the
//! advances of the remaining batches are applied over the positions file in order (the
//! positions file is saved after each batch, but a crash can fall between the two). A batch
//! whose checksum fails is renamed to `.corrupt`, reported, and skipped: it cannot be sent.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::positions::{FileId, Position, Positions, sync_dir, write_atomically};

const MAGIC: &[u8; 8] = b"SLAGSPL1";
const SUFFIX: &str = ".spool";

/// What one batch does to one file's position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advance {
    To { offset: u64, path: PathBuf },
    Forget { path: PathBuf },
}

/// One batch as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolBatch {
    pub entries: u32,
    pub advances: Vec<(FileId, Advance)>,
    pub body: Vec<u8>,
}

impl SpoolBatch {
    pub fn encode(&self) -> Vec<u8> {
        let mut advances = String::new();
        for (id, a) in &self.advances {
            match a {
                Advance::To { offset, path } => advances.push_str(&format!(
                    "{} {} {} {}\n",
                    id.dev,
                    id.inode,
                    offset,
                    path.display()
                )),
                Advance::Forget { path } => {
                    advances.push_str(&format!("{} {} - {}\n", id.dev, id.inode, path.display()))
                }
            }
        }
        let mut out = Vec::with_capacity(28 + advances.len() + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&len32(advances.len()).to_le_bytes());
        out.extend_from_slice(advances.as_bytes());
        out.extend_from_slice(&len32(self.body.len()).to_le_bytes());
        out.extend_from_slice(&self.body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The inverse of [`SpoolBatch::encode`]; `Err` says what is wrong and where.
    pub fn decode(bytes: &[u8]) -> Result<SpoolBatch, String> {
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err("no spool magic".into());
        }
        let (data, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
        if crc32c::crc32c(data) != crc {
            return Err(format!("checksum mismatch over {} bytes", data.len()));
        }
        let mut at = 8;
        let u32_at = |at: &mut usize| -> Result<u32, String> {
            let b = data.get(*at..*at + 4).ok_or("cut short")?;
            *at += 4;
            Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        let entries = u32_at(&mut at)?;
        let n = u32_at(&mut at)? as usize;
        let text = data.get(at..at + n).ok_or("advances cut short")?;
        at += n;
        let text = std::str::from_utf8(text).map_err(|_| "advances are not UTF-8")?;
        let n = u32_at(&mut at)? as usize;
        let body = data.get(at..at + n).ok_or("body cut short")?.to_vec();
        if at + n != data.len() {
            return Err(format!("{} bytes after the body", data.len() - at - n));
        }
        let mut advances = Vec::new();
        for line in text.lines() {
            let bad = || format!("advance `{line}` does not parse");
            let mut parts = line.splitn(4, ' ');
            let mut number = || {
                parts
                    .next()
                    .and_then(|p| p.parse::<u64>().ok())
                    .ok_or_else(bad)
            };
            let id = FileId {
                dev: number()?,
                inode: number()?,
            };
            let offset = parts.next().ok_or_else(bad)?;
            let path = PathBuf::from(parts.next().ok_or_else(bad)?);
            let a = if offset == "-" {
                Advance::Forget { path }
            } else {
                Advance::To {
                    offset: offset.parse().map_err(|_| bad())?,
                    path,
                }
            };
            advances.push((id, a));
        }
        Ok(SpoolBatch {
            entries,
            advances,
            body,
        })
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a batch is far below 4 GiB: batch_bytes bounds it")
}

impl Positions {
    /// Applies a batch's advances, in order.
    pub fn apply(&mut self, advances: &[(FileId, Advance)]) {
        for (id, a) in advances {
            match a {
                Advance::To { offset, path } => {
                    self.files.insert(
                        *id,
                        Position {
                            offset: *offset,
                            path: path.clone(),
                        },
                    );
                }
                Advance::Forget { .. } => {
                    self.files.remove(id);
                }
            }
        }
    }
}

/// The spool directory and its queue, shared by the reader (which appends) and the sender
/// (which takes the oldest and removes it).
pub struct Spool {
    dir: PathBuf,
    bytes_max: u64,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    /// Sequence number and size of each batch, oldest first.
    queue: VecDeque<(u64, u64)>,
    bytes: u64,
    next_seq: u64,
}

impl Spool {
    /// Opens (creates) the directory, removes torn temporaries, and applies the advances of
    /// the batches found over `positions`.
    pub fn open(dir: &Path, bytes_max: u64, positions: &mut Positions) -> Result<Spool, String> {
        let failed = |e: std::io::Error| format!("spool directory {}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(failed)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                std::fs::remove_file(entry.path()).map_err(failed)?;
            } else if let Some(seq) = name
                .strip_prefix("batch-")
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            {
                found.push((seq, entry.metadata().map_err(failed)?.len()));
            }
        }
        found.sort_unstable();
        let spool = Spool {
            dir: dir.to_path_buf(),
            bytes_max,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                next_seq: found.last().map_or(0, |(seq, _)| seq + 1),
            }),
            wake: Condvar::new(),
        };
        for (seq, bytes) in found {
            match spool.read(seq) {
                Ok(batch) => {
                    positions.apply(&batch.advances);
                    let mut s = spool.state.lock().expect("spool lock");
                    s.queue.push_back((seq, bytes));
                    s.bytes += bytes;
                }
                Err(e) => spool.quarantine(seq, &e),
            }
        }
        Ok(spool)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("batch-{seq:020}{SUFFIX}"))
    }

    /// Stores a batch durably and queues it for the sender.
    pub fn write(&self, batch: &SpoolBatch) -> std::io::Result<()> {
        let bytes = batch.encode();
        let seq = self.state.lock().expect("spool lock").next_seq;
        write_atomically(&self.path(seq), &bytes)?;
        let mut s = self.state.lock().expect("spool lock");
        assert_eq!(s.next_seq, seq, "only the reader thread writes batches");
        s.next_seq += 1;
        s.queue.push_back((seq, bytes.len() as u64));
        s.bytes += bytes.len() as u64;
        drop(s);
        self.wake.notify_all();
        Ok(())
    }

    /// Whether reading must pause until the sender has caught up.
    pub fn is_full(&self) -> bool {
        self.bytes() >= self.bytes_max
    }

    pub fn bytes(&self) -> u64 {
        self.state.lock().expect("spool lock").bytes
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("spool lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest batch, waiting up to `wait` for one. A batch that cannot be read is set
    /// aside (see the module doc) and the next one is tried.
    pub fn oldest(&self, wait: Duration) -> Option<(u64, SpoolBatch)> {
        loop {
            let seq = {
                let s = self.state.lock().expect("spool lock");
                let (s, _) = self
                    .wake
                    .wait_timeout_while(s, wait, |s| s.queue.is_empty())
                    .expect("spool lock");
                s.queue.front()?.0
            };
            match self.read(seq) {
                Ok(batch) => return Some((seq, batch)),
                Err(e) => {
                    self.quarantine(seq, &e);
                    self.forget(seq);
                }
            }
        }
    }

    fn read(&self, seq: u64) -> Result<SpoolBatch, String> {
        let bytes = std::fs::read(self.path(seq)).map_err(|e| e.to_string())?;
        SpoolBatch::decode(&bytes)
    }

    fn quarantine(&self, seq: u64, why: &str) {
        let path = self.path(seq);
        eprintln!(
            "shardlog agent: spool batch {} is damaged ({why}); renamed to .corrupt and skipped",
            path.display()
        );
        let mut aside = path.clone().into_os_string();
        aside.push(".corrupt");
        let _ = std::fs::rename(&path, aside);
    }

    /// Removes the oldest batch once the server has it (or refused it for good).
    pub fn remove(&self, seq: u64) -> std::io::Result<()> {
        std::fs::remove_file(self.path(seq))?;
        sync_dir(&self.dir)?;
        self.forget(seq);
        Ok(())
    }

    fn forget(&self, seq: u64) {
        let mut s = self.state.lock().expect("spool lock");
        let (front, bytes) = s.queue.pop_front().expect("a batch was taken");
        assert_eq!(front, seq, "batches leave the spool oldest first");
        s.bytes -= bytes;
    }

    /// Wakes a sender waiting in [`Spool::oldest`] (to stop).
    pub fn wake(&self) {
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u32) -> SpoolBatch {
        SpoolBatch {
            entries: n,
            advances: vec![
                (
                    FileId { dev: 1, inode: 2 },
                    Advance::To {
                        offset: 100 * u64::from(n),
                        path: "/var/log/a b.log".into(),
                    },
                ),
                (
                    FileId { dev: 1, inode: 3 },
                    Advance::Forget {
                        path: "/var/log/old.log".into(),
                    },
                ),
            ],
            body: vec![n as u8; 40],
        }
    }

    #[test]
    fn batches_round_trip_and_damage_is_caught() {
        let b = batch(7);
        let bytes = b.encode();
        assert_eq!(SpoolBatch::decode(&bytes).unwrap(), b);
        for cut in [0, 10, bytes.len() - 1] {
            assert!(SpoolBatch::decode(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(
            SpoolBatch::decode(&flipped)
                .unwrap_err()
                .contains("checksum")
        );
    }

    #[test]
    fn reopen_keeps_order_replays_advances_and_bounds_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut positions = Positions::default();
        let spool = Spool::open(dir.path(), 200, &mut positions).unwrap();
        for n in 1..=3 {
            spool.write(&batch(n)).unwrap();
        }
        assert!(spool.is_full(), "{} bytes", spool.bytes());
        let (seq, first) = spool.oldest(Duration::ZERO).unwrap();
        assert_eq!(first, batch(1));
        spool.remove(seq).unwrap();
        drop(spool);
        std::fs::write(
            dir.path().join("batch-00000000000000000009.spool.tmp"),
            b"torn",
        )
        .unwrap();
        let mut positions = Positions::default();
        let spool = Spool::open(dir.path(), 1 << 20, &mut positions).unwrap();
        assert_eq!(spool.len(), 2);
        assert_eq!(positions.files[&FileId { dev: 1, inode: 2 }].offset, 300);
        assert!(!positions.files.contains_key(&FileId { dev: 1, inode: 3 }));
        assert_eq!(spool.oldest(Duration::ZERO).unwrap().1, batch(2));
        spool.write(&batch(4)).unwrap();
        assert!(dir.path().join("batch-00000000000000000003.spool").exists());
        assert!(
            !dir.path()
                .join("batch-00000000000000000009.spool.tmp")
                .exists()
        );
    }

    #[test]
    fn a_damaged_batch_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut positions = Positions::default();
        let spool = Spool::open(dir.path(), 1 << 20, &mut positions).unwrap();
        spool.write(&batch(1)).unwrap();
        spool.write(&batch(2)).unwrap();
        let first = dir.path().join("batch-00000000000000000000.spool");
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        assert_eq!(spool.oldest(Duration::ZERO).unwrap().1, batch(2));
        assert!(
            dir.path()
                .join("batch-00000000000000000000.spool.corrupt")
                .exists()
        );
    }
}
