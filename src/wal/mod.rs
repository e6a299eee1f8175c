//! The per-shard write-ahead log: direct-I/O segment files, group commit, replay.
//!
//! Which question it answers: "which batches has this shard acknowledged, and how do we get
//! them back after a crash?" Each shard owns one [`Wal`] in its own directory. Record bodies
//! are opaque bytes here (they are [`crate::model::Batch`] bytes). [`Wal::append`] resolves
//! only once its record is written and `fdatasync`ed; [`Wal::open`] first replays what is on
//! disk, truncating a torn tail, and refuses to start on any other damage unless asked to
//! repair.
//!
//! Files: [`record`] (record codec, pure), [`segment`] (segment header codec and file
//! names), [`space`] (the next segment prepared ahead, and what fits), [`storage`] (segment
//! files and the directory on a [`crate::storage::Disk`]: the real disk, or the simulated one
//! of the crash tests), [`writer`] (append and group commit), [`replay`] (recovery),
//! `crash_tests` (crashes and failing disks, simulated).
//!
//! # What the disk is assumed to do
//!
//! - A write of one 4 KiB-aligned block is not torn below sector (512 B) granularity: after a
//!   crash each sector of it holds either the old or the new bytes.
//! - A multi-block write may be persisted partially, in any order of its blocks.
//! - `fdatasync` returning success makes every write that completed before it durable,
//!   including the file size and the allocation of preallocated extents.
//! - A failed write or `fdatasync` loses an unknown amount of earlier unsynced data (the page
//!   state after a failed fsync is unspecified: "fsyncgate"). The log therefore never retries:
//!   it poisons itself and every waiter gets the OS error.
//! - A directory `fsync` makes created, renamed and removed names durable.
//! - Preallocated (`fallocate`) and never written ranges read back as zeros.
//!
//! # Byte layout (all integers little-endian, version 1)
//!
//! A directory holds segment files named `{first_seq:020}.wal` (zero-padded decimal, so that
//! name order is seq order). A segment starts as a spare, `next-{n}.wal.tmp`, created and
//! preallocated to `segment_bytes_max` ahead of need (see [`space`]: a full disk shows up as
//! refused appends, never in a commit); when the log rolls over, its header block is written
//! and `fdatasync`ed, then it is renamed to its final name and the directory fsynced: a final
//! name therefore always has a durable header. Leftover `.tmp` files are deleted on open.
//!
//! Segment header, block 0 (4096 bytes):
//!
//! ```text
//! 0   8  magic          b"SHLGWAL\0"
//! 8   4  version        u32 = 1
//! 12  4  shard_id       u32, the shard that wrote it
//! 16  8  first_seq      u64, seq of the first record in this segment (also the file name)
//! 24  8  epoch          u64, random per segment, tells incarnations apart in forensics
//! 32  4  header_crc     u32, CRC32C of bytes 0..32
//! 36  4060 zero
//! ```
//!
//! Records follow from byte 4096. Record header (32 bytes), then `body_len` bytes of body:
//!
//! ```text
//! 0   4  magic          u32 = 0x4345_5257 (bytes "WREC"; every byte non-zero)
//! 4   1  kind           u8, 1 = batch
//! 5   3  zero
//! 8   8  seq            u64, gapless, 1 for the first record ever, continuing across segments
//! 16  4  body_len       u32, <= RECORD_BODY_BYTES_MAX
//! 20  4  body_crc       u32, CRC32C of the body
//! 24  4  reserved       u32 = 0
//! 28  4  header_crc     u32, CRC32C of bytes 0..28
//! ```
//!
//! A group commit starts on a fresh 4 KiB block, holds its records back to back (a record may
//! straddle block boundaries) and is zero-padded to a whole number of blocks; it is written
//! with one O_DIRECT write and one `fdatasync`. Blocks holding acknowledged records are never
//! written again. Reading a segment: at a record position, a zero byte means "padding": the
//! rest of the block must be zero and the next record starts at the next block. A zero byte at
//! a block start means the written log of this segment ends there. Because the record magic has
//! no zero byte, padding and records cannot be confused.
//!
//! # Recovery
//!
//! See [`replay`]: a record that is cut short, fails a CRC or reads as zeros in the last
//! segment, with no valid record header of a later seq at any later block start of that
//! segment, is a torn tail: it was never acknowledged (its commit's `fdatasync` did not
//! return), so it is cut off and counted. Everything else is [`WalError::Corruption`].
//!
//! A limitation worth knowing: the disk may persist a later block of a torn multi-block commit
//! and lose an earlier one. If a record of that commit happens to start exactly at the
//! persisted block's start, the tail is reported as corruption rather than torn (safe, but it
//! needs `repair` to start; no acknowledged record is lost either way).

pub mod record;
pub mod replay;
pub mod segment;
mod space;
pub mod storage;
pub mod writer;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use record::{DecodeError, RecordHeader, decode_record, encode_record};
pub use replay::{RepairNote, ReplayReport, replay_dir};
pub use segment::{segment_file_name, segment_files};
pub use space::is_no_space;
pub use storage::prime_dma_probe;
pub use writer::{Wal, WalStats};

/// The unit of every write and of commit padding. 4 KiB is the logical block size of
/// practically every SSD and the page size, so O_DIRECT writes of whole blocks never need a
/// read-modify-write below us.
pub const BLOCK_BYTES: usize = 4096;

/// The segment header occupies block 0 whole, so records start block-aligned.
pub const SEGMENT_HEADER_BYTES: usize = BLOCK_BYTES;

/// Largest record body. A batch is bounded well below this (about 9 MiB), and a bound is what
/// lets replay refuse a corrupt length before allocating for it.
pub const RECORD_BODY_BYTES_MAX: usize = 16 << 20;

/// Default segment size. Large enough that rollover (create, preallocate, fsync the
/// directory) is rare, small enough that a checkpoint frees space in reasonable steps.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;

/// Smallest accepted segment size: the header plus one block of records. Tests use tiny
/// segments to exercise rollover; a commit that does not fit an empty segment still goes
/// into it (the file grows past its preallocation).
pub const SEGMENT_BYTES_MIN: u64 = 2 * BLOCK_BYTES as u64;

/// Default group commit tick: short enough that a lone append waits about one fsync more, long
/// enough to gather the appends of a busy shard into one write.
pub const COMMIT_INTERVAL_DEFAULT: Duration = Duration::from_millis(1);

/// Default buffered bytes that trigger a commit at once. At 1 MiB a commit is a single
/// large sequential write, and the glommio I/O arena (10 MiB by default) holds a few of them.
pub const COMMIT_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// Upper bound on the configured commit buffer: more only delays acknowledgements.
pub const COMMIT_BYTES_MAX_LIMIT: usize = 64 << 20;

/// Upper bound on the configured commit interval: beyond this, appenders wait noticeably.
pub const COMMIT_INTERVAL_MAX: Duration = Duration::from_secs(1);

/// How the writer behaves. `Default` gives the production values.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is rolled over when the next commit would not fit in this many bytes.
    pub segment_bytes_max: u64,
    /// A commit happens at most this long after the first append it holds.
    pub commit_interval: Duration,
    /// A commit happens as soon as this many record bytes are buffered.
    pub commit_bytes_max: usize,
    /// Written into every segment header; replay reports segments of other shards.
    pub shard_id: u32,
    /// The least seq the next record may get. A log whose segments were all deleted (a
    /// shard number that was away while the core count was lower) must not reuse seqs that
    /// the store's manifest already counts as sealed.
    pub first_seq_min: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            commit_interval: COMMIT_INTERVAL_DEFAULT,
            commit_bytes_max: COMMIT_BYTES_MAX_DEFAULT,
            shard_id: 0,
            first_seq_min: 1,
        }
    }
}

impl WalOptions {
    /// Checks the options against their limits, naming the field and the allowed range.
    pub fn validate(&self) -> Result<(), WalError> {
        let bad = |what: String| Err(WalError::InvalidOptions { what });
        if self.segment_bytes_max < SEGMENT_BYTES_MIN {
            return bad(format!(
                "segment_bytes_max is {} bytes; the minimum is {SEGMENT_BYTES_MIN}",
                self.segment_bytes_max
            ));
        }
        if self.commit_bytes_max == 0 || self.commit_bytes_max > COMMIT_BYTES_MAX_LIMIT {
            return bad(format!(
                "commit_bytes_max is {} bytes; it must be between 1 and {COMMIT_BYTES_MAX_LIMIT}",
                self.commit_bytes_max
            ));
        }
        if self.commit_interval > COMMIT_INTERVAL_MAX {
            return bad(format!(
                "commit_interval is {:?}; the maximum is {COMMIT_INTERVAL_MAX:?}",
                self.commit_interval
            ));
        }
        Ok(())
    }
}

/// Everything that can go wrong in the log, each with what an operator needs to act.
#[derive(Debug)]
pub enum WalError {
    /// A system call failed outside a commit (open, read, create, rename, truncate...).
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Bytes on disk that this log cannot have written intact, and that are not a torn tail.
    Corruption {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// A commit's write or fdatasync failed earlier; nothing is accepted any more.
    Poisoned { reason: String },
    /// An append larger than the format allows.
    RecordTooLarge { len: usize, max: usize },
    /// An append after [`Wal::close`] began.
    Closed,
    /// No room for the record: the next segment could not be prepared (the file system is
    /// full, or refused a new file). Nothing of the record was written; appends are taken
    /// again once the next segment can be prepared.
    NoSpace { reason: String },
    /// [`WalOptions`] outside their limits.
    InvalidOptions { what: String },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { path, op, source } => {
                write!(f, "WAL I/O error: {op} {}: {source}", path.display())
            }
            WalError::Corruption { path, offset, what } => write!(
                f,
                "WAL corruption in {} at byte {offset}: {what}; the shard will not start. \
                 Inspect or back up the file, then start with --wal-repair to skip \
                 the damaged part (its records are lost)",
                path.display()
            ),
            WalError::Poisoned { reason } => write!(
                f,
                "WAL is stopped after a failed write or fsync and accepts no more records \
                 (the data it had buffered may be lost; restart the shard to recover from \
                 what is durable): {reason}"
            ),
            WalError::RecordTooLarge { len, max } => write!(
                f,
                "WAL record body of {len} bytes exceeds the maximum of {max} bytes; send \
                 smaller batches"
            ),
            WalError::Closed => write!(
                f,
                "WAL is closed (shutting down); the record was not written"
            ),
            WalError::NoSpace { reason } => write!(
                f,
                "no space for the WAL ({reason}); the record was not written, and writes \
                 resume by themselves once space is freed"
            ),
            WalError::InvalidOptions { what } => write!(f, "invalid WAL options: {what}"),
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Rounds up to a whole number of blocks.
pub(crate) fn round_up_block(n: usize) -> usize {
    n.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}
