//! Recovery: reads every segment in seq order, hands each intact record to the caller, cuts
//! off a torn tail and refuses any other damage unless asked to repair.
//!
//! Classification, per segment (the last one is the one with the highest first seq):
//! - A header block that is short or all zeros in the last segment is an interrupted creation
//!   (no record was ever acknowledged in it): the file is deleted. Anywhere else, and any
//!   other bad header, is corruption.
//! - Records are read from block 1 on until the written log ends (a zero byte at a block start)
//!   or a record is bad. A bad record is cut short, fails a CRC or reads as zeros mid-commit.
//! - After that point every later block start is checked for a valid record header of a seq
//!   not yet replayed. If there is one, acknowledged data follows the damage: corruption.
//! - Otherwise a bad record in the last segment is a torn tail: the commit holding it never
//!   finished its `fdatasync`, so it was never acknowledged. The segment is cut right before
//!   it (the block holding the cut is rewritten with zeros after it, then the file is
//!   truncated after that block and `fdatasync`ed), so a second replay is clean.
//! - A bad record in an earlier segment, a seq out of order, or a header checksummed but not
//!   of this format, is corruption: [`WalError::Corruption`] naming file and offset. With
//!   `repair`, the rest of that segment is skipped and noted in [`ReplayReport::repairs`]; a
//!   damaged last segment is also cut at the damage, so that new records never share seqs
//!   with skipped ones. Earlier damaged segments stay as they are (for inspection) until a
//!   checkpoint removes them; until then every start needs `repair`.

use std::path::{Path, PathBuf};

use super::record::{DecodeError, RECORD_HEADER_BYTES, decode_header, decode_record};
use super::segment::{
    HeaderError, SegmentHeader, damaged_segment_file_name, is_temp_segment_file_name, segment_files,
};
use super::storage::{SegmentFile, WalDir, prime_dma_probe};
use super::{BLOCK_BYTES, SEGMENT_HEADER_BYTES, WalError, round_up_block};
use crate::storage::{Disk, IoBuf};

/// Bytes read from a segment per I/O during replay: large sequential reads keep the device
/// busy, and two of these plus one record body bound replay's memory per shard.
const READ_CHUNK_BYTES: usize = 4 << 20;

/// Receives each intact record: `(seq, body)`. An `Err` refuses the record (corruption).
pub(crate) type RecordSink<'a> = dyn FnMut(u64, &[u8]) -> Result<(), String> + 'a;

/// What replay found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segment files read (including ones skipped by repair).
    pub segments: u64,
    /// Records handed to `on_record`.
    pub records: u64,
    /// Sum of the bodies handed to `on_record`.
    pub body_bytes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The seq the next record appended to this log gets.
    pub next_seq: u64,
    /// Torn tails cut off (0 or 1: only the last segment can have one).
    pub torn_tails_truncated: u64,
    /// Bytes of written blocks cut off with a torn tail.
    pub torn_bytes_discarded: u64,
    /// Trailing segment files deleted because their header never reached the disk.
    pub torn_segments_deleted: u64,
    /// Every shard id found in segment headers, in order of first appearance.
    pub shard_ids: Vec<u32>,
    /// Segments whose header names another shard than the one replaying (a core-count change
    /// moved this directory; the caller decides where the records go).
    pub foreign_segments: Vec<PathBuf>,
    /// Damage skipped because `repair` was set.
    pub repairs: Vec<RepairNote>,
}

/// One damaged region skipped by a repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairNote {
    pub path: PathBuf,
    pub offset: u64,
    pub what: String,
    /// Bytes of the segment from `offset` to its end that were not replayed.
    pub bytes_skipped: u64,
}

/// One line for the start-up log: `2 segments, 1200 records (4.1 MiB), seq 5-1204; torn tail
/// cut (8.0 KiB)`. Only what happened is named; an empty log reads `no records`.
impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(f, "{}, ", plural(self.segments, "segment", "segments"))?;
        match (self.records, self.first_seq, self.last_seq) {
            (0, _, _) => write!(f, "no records")?,
            (n, Some(first), Some(last)) => write!(
                f,
                "{} ({}), seq {first}-{last}",
                plural(n, "record", "records"),
                approx_bytes(self.body_bytes)
            )?,
            (n, _, _) => write!(f, "{}", plural(n, "record", "records"))?,
        }
        if self.torn_tails_truncated > 0 {
            write!(
                f,
                "; torn tail cut ({} never acknowledged)",
                approx_bytes(self.torn_bytes_discarded)
            )?;
        }
        if self.torn_segments_deleted > 0 {
            write!(
                f,
                "; {} deleted",
                plural(
                    self.torn_segments_deleted,
                    "unfinished segment",
                    "unfinished segments"
                )
            )?;
        }
        if !self.foreign_segments.is_empty() {
            write!(
                f,
                "; {} of another shard",
                plural(self.foreign_segments.len() as u64, "segment", "segments")
            )?;
        }
        for r in &self.repairs {
            write!(
                f,
                "; repair skipped {} of {} from offset {} ({})",
                approx_bytes(r.bytes_skipped),
                r.path.display(),
                r.offset,
                r.what
            )?;
        }
        Ok(())
    }
}

/// `4321` -> `4.2 KiB`, for log lines.
fn approx_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Replays the WAL directory `dir` of `disk` without opening a writer, e.g. the orphan
/// directory of a shard that no longer exists after a core-count change. Torn tails are
/// truncated as in [`super::Wal::open`].
pub async fn replay_dir(
    disk: &Disk,
    dir: &Path,
    repair: bool,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<ReplayReport, WalError> {
    replay(&WalDir::open(disk, dir)?, repair, None, &mut on_record).await
}

pub(crate) async fn replay(
    dir: &WalDir,
    repair: bool,
    own_shard: Option<u32>,
    on_record: &mut RecordSink<'_>,
) -> Result<ReplayReport, WalError> {
    prime_dma_probe(dir.disk(), dir.path()).await?;
    let mut report = ReplayReport::default();
    remove_temp_files(dir).await?;
    let mut segments = segment_files(dir.disk(), dir.path())?;
    drop_unwritten_trailing_segments(dir, &mut segments, &mut report).await?;

    let mut ctx = Ctx {
        repair,
        report,
        expected: None,
        gap_allowed: false,
    };
    for (i, (name_seq, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        ctx.report.segments += 1;
        replay_segment(
            &mut ctx, dir, *name_seq, path, is_last, own_shard, on_record,
        )
        .await?;
    }
    let mut report = ctx.report;
    report.next_seq = ctx.expected.unwrap_or(1);
    Ok(report)
}

struct Ctx {
    repair: bool,
    report: ReplayReport,
    /// The seq the next record must have; `None` before the first segment header.
    expected: Option<u64>,
    /// Set after a repair skipped records, so that the next segment may start later.
    gap_allowed: bool,
}

impl Ctx {
    /// Corruption: an error, or with `repair` a note and `Ok`.
    fn corrupt(
        &mut self,
        path: &Path,
        offset: u64,
        what: String,
        end: u64,
    ) -> Result<(), WalError> {
        if !self.repair {
            return Err(WalError::Corruption {
                path: path.to_path_buf(),
                offset,
                what,
            });
        }
        self.report.repairs.push(RepairNote {
            path: path.to_path_buf(),
            offset,
            what,
            bytes_skipped: end.saturating_sub(offset),
        });
        self.gap_allowed = true;
        Ok(())
    }
}

async fn remove_temp_files(dir: &WalDir) -> Result<(), WalError> {
    let mut removed = false;
    for name in dir.list()? {
        if name.to_str().is_some_and(is_temp_segment_file_name) {
            dir.remove(&dir.path().join(name)).await?;
            removed = true;
        }
    }
    if removed {
        dir.sync().await?;
    }
    Ok(())
}

async fn drop_unwritten_trailing_segments(
    dir: &WalDir,
    segments: &mut Vec<(u64, PathBuf)>,
    report: &mut ReplayReport,
) -> Result<(), WalError> {
    while let Some((_, path)) = segments.last() {
        let file = SegmentFile::open_read(dir.disk(), path).await?;
        let mut head = Vec::new();
        file.read_into(0, SEGMENT_HEADER_BYTES, &mut head).await?;
        file.close().await?;
        match SegmentHeader::decode(&head) {
            Err(e) if e.is_unwritten() => {
                dir.remove(path).await?;
                dir.sync().await?;
                report.torn_segments_deleted += 1;
                segments.pop();
            }
            _ => break,
        }
    }
    Ok(())
}

async fn replay_segment(
    ctx: &mut Ctx,
    dir: &WalDir,
    name_seq: u64,
    path: &Path,
    is_last: bool,
    own_shard: Option<u32>,
    on_record: &mut RecordSink<'_>,
) -> Result<(), WalError> {
    let file = SegmentFile::open_read(dir.disk(), path).await?;
    let size = file.size().await?;
    let mut reader = Reader::new(&file, size);
    reader.fill(0, SEGMENT_HEADER_BYTES).await?;
    let header = match SegmentHeader::decode(reader.at(0)) {
        Ok(h) => h,
        Err(e) => {
            let offset = header_error_offset(&e);
            drop(reader);
            file.close().await?;
            ctx.corrupt(path, offset, e.to_string(), size)?;
            if is_last {
                // Repairing: move the unreadable last segment aside, so that the new segment
                // (which starts at the next seq replayed) never sorts before it.
                let aside = path.with_file_name(damaged_segment_file_name(name_seq));
                dir.rename(path, &aside).await?;
                dir.sync().await?;
            }
            return Ok(());
        }
    };
    if header.first_seq != name_seq {
        let what = format!(
            "segment header says first seq {} but the file name says {name_seq}",
            header.first_seq
        );
        return ctx.corrupt(path, 16, what, size);
    }
    if !ctx.report.shard_ids.contains(&header.shard_id) {
        ctx.report.shard_ids.push(header.shard_id);
    }
    if own_shard.is_some_and(|s| s != header.shard_id) {
        ctx.report.foreign_segments.push(path.to_path_buf());
    }
    match ctx.expected {
        Some(e) if e != header.first_seq && !ctx.gap_allowed => {
            let what = format!(
                "segment starts at seq {} but the previous segment ends before seq {e}",
                header.first_seq
            );
            return ctx.corrupt(path, 16, what, size);
        }
        _ => {}
    }
    ctx.expected = Some(header.first_seq);
    ctx.gap_allowed = false;

    let end = scan_records(ctx, &mut reader, path, on_record).await?;
    let block_bytes = BLOCK_BYTES as u64;
    let (offset, what, tearable, written_end) = match end {
        // A clean end of an earlier segment needs no scan of its (preallocated, zero) rest:
        // records lost after it would show as a seq gap at the next segment's header.
        ScanEnd::Clean { .. } if !is_last => return Ok(()),
        ScanEnd::Clean { end } => {
            // A zero block start: the rest of the segment must hold nothing we wrote.
            let rest = scan_rest(&mut reader, end, end, ctx.expected_seq()).await?;
            match rest.later {
                None => return Ok(()),
                Some((at, seq)) => {
                    let what = format!(
                        "the log reads as zeros from here, but a record with seq {seq} follows \
                         at byte {at}: acknowledged records were lost"
                    );
                    (end, what, false, rest.written_end)
                }
            }
        }
        ScanEnd::Bad {
            offset,
            what,
            tearable,
        } => {
            let from = (offset / block_bytes + 1) * block_bytes;
            let rest = scan_rest(&mut reader, offset, from, ctx.expected_seq()).await?;
            match rest.later {
                Some((at, seq)) => {
                    let what =
                        format!("{what}; a valid record with seq {seq} follows at byte {at}");
                    (offset, what, false, rest.written_end)
                }
                None => (offset, what, tearable, rest.written_end),
            }
        }
    };
    drop(reader);
    file.close().await?;
    if is_last && tearable {
        truncate_at(dir.disk(), path, offset).await?;
        ctx.report.torn_tails_truncated += 1;
        ctx.report.torn_bytes_discarded += written_end.saturating_sub(offset);
        return Ok(());
    }
    ctx.corrupt(path, offset, what, size)?;
    if is_last {
        // Repairing the last segment: cut it so that new seqs never meet skipped ones.
        truncate_at(dir.disk(), path, offset).await?;
    }
    Ok(())
}

impl Ctx {
    fn expected_seq(&self) -> u64 {
        self.expected
            .expect("set from the segment header before records are read")
    }
}

fn header_error_offset(e: &HeaderError) -> u64 {
    match e {
        HeaderError::Version { .. } => 8,
        HeaderError::Crc { .. } => 32,
        _ => 0,
    }
}

enum ScanEnd {
    /// The written log ends at this block start.
    Clean { end: u64 },
    /// The bytes at `offset` are not the next record. `tearable`: a crash mid-commit can
    /// leave bytes like these.
    Bad {
        offset: u64,
        what: String,
        tearable: bool,
    },
}

async fn scan_records(
    ctx: &mut Ctx,
    reader: &mut Reader<'_>,
    path: &Path,
    on_record: &mut RecordSink<'_>,
) -> Result<ScanEnd, WalError> {
    let mut pos = SEGMENT_HEADER_BYTES as u64;
    let mut want = RECORD_HEADER_BYTES;
    loop {
        if pos >= reader.size {
            return Ok(ScanEnd::Clean { end: pos });
        }
        reader.fill(pos, want).await?;
        let off = (pos - reader.base) as usize;
        match decode_record(&reader.buf, off) {
            Ok(None) if pos.is_multiple_of(BLOCK_BYTES as u64) => {
                return Ok(ScanEnd::Clean { end: pos });
            }
            Ok(None) => pos = (pos / BLOCK_BYTES as u64 + 1) * BLOCK_BYTES as u64,
            Ok(Some((h, body))) => {
                let expected = ctx.expected_seq();
                if h.seq != expected {
                    return Ok(ScanEnd::Bad {
                        offset: pos,
                        what: format!("record has seq {} where seq {expected} was expected", h.seq),
                        tearable: false,
                    });
                }
                if let Err(msg) = on_record(h.seq, body) {
                    let what = format!("record seq {} was refused by the shard: {msg}", h.seq);
                    // Only this one record is skipped under repair: its neighbours are intact.
                    ctx.corrupt(path, pos, what, pos + h.record_bytes() as u64)?;
                } else {
                    let r = &mut ctx.report;
                    r.records += 1;
                    r.body_bytes += body.len() as u64;
                    r.first_seq.get_or_insert(h.seq);
                    r.last_seq = Some(h.seq);
                }
                ctx.expected = Some(expected + 1);
                ctx.gap_allowed = false;
                pos += h.record_bytes() as u64;
                want = RECORD_HEADER_BYTES;
            }
            Err(DecodeError::Truncated { needed, .. })
                if reader.end() < reader.size && needed > want =>
            {
                want = needed;
            }
            Err(e) => {
                // Dirty padding is what a crash leaves when it tears the rewrite of the block
                // holding a torn tail's cut (sectors of zeros, then sectors of the torn
                // commit): a torn tail too, unless a later record follows (see the caller).
                let tearable = matches!(
                    e,
                    DecodeError::Truncated { .. }
                        | DecodeError::HeaderCrc { .. }
                        | DecodeError::BodyCrc { .. }
                        | DecodeError::DirtyPadding { .. }
                );
                return Ok(ScanEnd::Bad {
                    offset: pos,
                    what: e.to_string(),
                    tearable,
                });
            }
        }
    }
}

/// What lies after the point where a segment's log stopped.
struct Rest {
    /// The first block start at or after `from` holding a valid record header with a seq
    /// not yet replayed, as `(offset, seq)`.
    later: Option<(u64, u64)>,
    /// The end of the last block holding a non-zero byte at or after the stop point (or the
    /// stop point itself): how much written data a cut there discards.
    written_end: u64,
}

async fn scan_rest(
    reader: &mut Reader<'_>,
    stop: u64,
    from: u64,
    min_seq: u64,
) -> Result<Rest, WalError> {
    let block_bytes = BLOCK_BYTES as u64;
    let mut rest = Rest {
        later: None,
        written_end: stop,
    };
    let mut block = stop / block_bytes * block_bytes;
    while block < reader.size {
        reader.fill(block, BLOCK_BYTES).await?;
        let bytes = reader.at(block);
        let bytes = &bytes[..bytes.len().min(BLOCK_BYTES)];
        let skip = stop.saturating_sub(block) as usize;
        if bytes.iter().skip(skip).any(|&x| x != 0) {
            rest.written_end = block + bytes.len() as u64;
        }
        if block >= from
            && rest.later.is_none()
            && let Ok(h) = decode_header(bytes)
            && h.seq >= min_seq
        {
            rest.later = Some((block, h.seq));
        }
        block += block_bytes;
    }
    Ok(rest)
}

/// Cuts a segment right before `offset`: the block holding `offset` keeps its bytes before it
/// and is zero after it, later blocks are gone. Durable when this returns.
async fn truncate_at(disk: &Disk, path: &Path, offset: u64) -> Result<(), WalError> {
    let block_bytes = BLOCK_BYTES as u64;
    let block = offset / block_bytes * block_bytes;
    let file = SegmentFile::open_write(disk, path).await?;
    let sync_err = |source| WalError::Io {
        path: path.to_path_buf(),
        op: "cutting a torn WAL tail",
        source,
    };
    let new_len = if offset > block {
        let mut old = Vec::new();
        file.read_into(block, BLOCK_BYTES, &mut old).await?;
        let keep = (offset - block) as usize;
        assert!(
            old.len() >= keep,
            "the bytes before a torn record were just read"
        );
        let mut buf = IoBuf::new(BLOCK_BYTES);
        buf[..keep].copy_from_slice(&old[..keep]);
        file.write_all(&buf, block).await.map_err(sync_err)?;
        block + block_bytes
    } else {
        block
    };
    file.truncate(new_len).await?;
    file.sync().await.map_err(sync_err)?;
    file.close().await
}

/// A sliding, block-aligned window over one segment file.
struct Reader<'a> {
    file: &'a SegmentFile,
    size: u64,
    /// File offset of `buf[0]`, always block-aligned.
    base: u64,
    buf: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn new(file: &'a SegmentFile, size: u64) -> Reader<'a> {
        Reader {
            file,
            size,
            base: 0,
            buf: Vec::new(),
        }
    }

    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn at(&self, pos: u64) -> &[u8] {
        &self.buf[(pos - self.base) as usize..]
    }

    /// Makes the window hold `[pos, pos + want)`, or up to the end of the file.
    async fn fill(&mut self, pos: u64, want: usize) -> Result<(), WalError> {
        assert!(pos >= self.base, "the reader only moves forward");
        let keep_from = pos / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
        if keep_from - self.base >= READ_CHUNK_BYTES as u64 || pos >= self.end() {
            // Drop the bytes before `pos`'s block; restart the window there if it is past.
            let drop = ((keep_from - self.base) as usize).min(self.buf.len());
            self.buf.drain(..drop);
            self.base += drop as u64;
            if self.base < keep_from {
                self.buf.clear();
                self.base = keep_from;
            }
        }
        let target = pos + want as u64;
        while self.end() < target && self.end() < self.size {
            let at = self.end();
            debug_assert_eq!(
                at % BLOCK_BYTES as u64,
                0,
                "reads stay block-aligned until EOF"
            );
            // Never ask for more than the file holds: the read buffer is allocated at the
            // requested size.
            let len = round_up_block(((self.size - at) as usize).min(READ_CHUNK_BYTES));
            let n = self.file.read_into(at, len, &mut self.buf).await?;
            if n == 0 {
                break;
            }
            if n % BLOCK_BYTES != 0 {
                // The file ends inside a block (it was cut): nothing more to read.
                self.size = self.end();
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod display_tests {
    use super::*;

    #[test]
    fn report_reads_as_a_sentence() {
        let empty = ReplayReport {
            segments: 1,
            next_seq: 1,
            ..Default::default()
        };
        assert_eq!(empty.to_string(), "1 segment, no records");
        let busy = ReplayReport {
            segments: 2,
            records: 1200,
            body_bytes: 4_300_000,
            first_seq: Some(5),
            last_seq: Some(1204),
            next_seq: 1205,
            torn_tails_truncated: 1,
            torn_bytes_discarded: 8192,
            repairs: vec![RepairNote {
                path: "/d/wal/shard-0000/1.wal".into(),
                offset: 4096,
                what: "body checksum".into(),
                bytes_skipped: 100,
            }],
            ..Default::default()
        };
        assert_eq!(
            busy.to_string(),
            "2 segments, 1200 records (4.1 MiB), seq 5-1204; torn tail cut (8.0 KiB never \
             acknowledged); repair skipped 100 B of /d/wal/shard-0000/1.wal from offset 4096 \
             (body checksum)"
        );
    }
}
