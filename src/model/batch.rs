//! The encoded batch: entries of one tenant bound for one shard.
//!
//! A batch is built on the core that parsed the lines, crosses the channel mesh as one
//! `Vec<u8>`, is copied verbatim into the owner's WAL as a record body, and is decoded by the
//! owner into its head chunks (and again on WAL replay). Using one encoding for all three
//! means the owner never re-serialises anything on the hot path.
//!
//! # Byte layout (little-endian, version 2)
//!
//! ```text
//! u8   version = 2
//! u8   flags: bit 0 set = drop exact duplicates ([`Duplicates::Drop`]); other bits zero
//! u16  tenant_len, tenant bytes (UTF-8)
//! then items until the end of the body, each starting with a tag byte:
//!   tag 1, STREAM: u64 stream_id, u16 label_count,
//!                  label_count x { u16 name_len, name, u16 value_len, value }
//!                  (streams are numbered 0, 1, 2... in the order they appear)
//!   tag 2, ENTRY:  u32 stream_index, i64 timestamp_ns, u32 line_len, line,
//!                  u16 metadata_count, metadata_count x { u16 key_len, key, u32 value_len, value }
//! ```
//!
//! A stream is defined before its first entry. All strings are UTF-8; the reader checks
//! every length against the remaining bytes and against the limits below, so a corrupt body
//! is an error with an offset, never a panic.
//!
//! Version 1 is version 2 without the flags byte; it is still read (WAL records written
//! before version 2), as flags 0: its entries were stored duplicates and all, so replay
//! keeps them the same way. A flag bit this version does not know is an error, not ignored.

use std::fmt;

use ahash::AHashMap;

use super::{Labels, StreamId, TimestampNs};

const VERSION: u8 = 2;
/// The version without a flags byte, still read.
const VERSION_1: u8 = 1;
/// Flags bit: the owner drops exact duplicates of this batch's entries.
const FLAG_DROP_DUPLICATES: u8 = 1;
const TAG_STREAM: u8 = 1;
const TAG_ENTRY: u8 = 2;
/// Bytes an entry takes besides its line and metadata strings, as reserved ahead: its tag,
/// stream index, timestamp and lengths (19), and a `detected_level` pair added by ingest
/// (`detected_level` and a level: about 30).
const ENTRY_RESERVE_BYTES: usize = 19 + 32;

/// Labels per stream a batch can carry (Loki's default `max_label_names_per_series` is 15;
/// this is the hard format bound, far above any configured limit).
pub const BATCH_LABELS_PER_STREAM_MAX: usize = 256;
/// Metadata pairs per entry the format can carry.
pub const BATCH_METADATA_PER_ENTRY_MAX: usize = 1024;

/// What the owner shard does with an entry whose stream already holds one with the same
/// timestamp and line (see `crate::shard::dedupe`). It travels in the batch, and so in the
/// WAL record, so that replay decides as the live path did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duplicates {
    /// Store it again. For sources that never resend a line and whose timestamps are coarse
    /// (syslog: RFC 3164 has whole seconds, and lines without a time share their read's
    /// receive time), where equal lines at equal times are distinct events.
    Keep,
    /// Drop it and count it, as Loki's ingester does: a client that retries a push it got no
    /// answer to must not double its lines.
    Drop,
}

/// An encoded batch plus the counts its receiver needs without decoding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub entries: u32,
    /// Sum of line lengths, for byte counters.
    pub line_bytes: u64,
}

impl Batch {
    /// A reader over this batch's items.
    pub fn reader(&self) -> Result<BatchReader<'_>, BatchError> {
        BatchReader::new(&self.bytes)
    }

    /// The streams this batch writes, in order, with their labels as Loki prints them.
    pub fn streams(&self) -> Result<Vec<(StreamId, String)>, BatchError> {
        let mut out = Vec::new();
        for item in self.reader()? {
            if let BatchItem::Stream { id, labels, .. } = item? {
                out.push((id, Labels::from_pairs(labels).to_string()));
            }
        }
        Ok(out)
    }

    /// This batch without the entries of the `dropped` streams, and how many entries were
    /// taken out. The tenant and the duplicates rule stay.
    pub fn without_streams(
        &self,
        dropped: &ahash::AHashSet<StreamId>,
    ) -> Result<(Batch, u64), BatchError> {
        let reader = self.reader()?;
        let mut kept = BatchBuilder::with_duplicates(reader.tenant(), reader.duplicates());
        let mut streams: Vec<(StreamId, Vec<(&str, &str)>)> = Vec::new();
        let mut taken_out = 0;
        for item in reader {
            match item? {
                BatchItem::Stream { index, id, labels } => {
                    debug_assert_eq!(index as usize, streams.len());
                    streams.push((id, labels));
                }
                BatchItem::Entry {
                    stream_index,
                    ts,
                    line,
                    metadata,
                } => {
                    let (id, labels) = &streams[stream_index as usize];
                    if dropped.contains(id) {
                        taken_out += 1;
                    } else {
                        kept.push_with_pairs(*id, labels.iter().copied(), ts, line, &metadata);
                    }
                }
            }
        }
        Ok((kept.finish(), taken_out))
    }
}

/// Builds a [`Batch`] for one tenant. Reused: [`BatchBuilder::finish`] hands out the bytes
/// and leaves the builder empty, ready for the next batch of the same tenant.
pub struct BatchBuilder {
    tenant: String,
    duplicates: Duplicates,
    bytes: Vec<u8>,
    streams: AHashMap<StreamId, u32>,
    entries: u32,
    line_bytes: u64,
}

impl BatchBuilder {
    /// A builder of batches whose duplicates are kept ([`Duplicates::Keep`]).
    pub fn new(tenant: &str) -> BatchBuilder {
        BatchBuilder::with_duplicates(tenant, Duplicates::Keep)
    }

    /// A builder of batches that tell the owner what to do with exact duplicates.
    pub fn with_duplicates(tenant: &str, duplicates: Duplicates) -> BatchBuilder {
        let mut b = BatchBuilder {
            tenant: tenant.to_string(),
            duplicates,
            bytes: Vec::new(),
            streams: AHashMap::new(),
            entries: 0,
            line_bytes: 0,
        };
        b.start();
        b
    }

    fn start(&mut self) {
        self.bytes.clear();
        self.bytes.push(VERSION);
        self.bytes.push(match self.duplicates {
            Duplicates::Keep => 0,
            Duplicates::Drop => FLAG_DROP_DUPLICATES,
        });
        assert!(self.tenant.len() <= u16::MAX as usize);
        self.bytes
            .extend_from_slice(&(self.tenant.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(self.tenant.as_bytes());
        self.streams.clear();
        self.entries = 0;
        self.line_bytes = 0;
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Makes room for `entries` more entries carrying `payload_bytes` of lines and metadata
    /// in all, so that a request's batch is one allocation. Grown by doubling instead, a
    /// 1,000-line push reallocated and copied its batch a dozen times, and the last copies,
    /// past the allocator's mmap threshold, faulted in fresh pages each time: a sixth of the
    /// push path's time.
    pub fn reserve_entries(&mut self, entries: usize, payload_bytes: usize) {
        self.bytes
            .reserve(payload_bytes + entries * ENTRY_RESERVE_BYTES);
    }

    /// Encoded size so far.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one entry. `labels` is encoded only the first time `stream` appears in this
    /// batch. Callers have validated sizes against the configured limits; the asserts here
    /// guard the format's own bounds.
    pub fn push(
        &mut self,
        stream: StreamId,
        labels: &Labels,
        ts: TimestampNs,
        line: &str,
        metadata: &[(&str, &str)],
    ) {
        let pairs = labels.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str()));
        self.push_with_pairs(stream, pairs, ts, line, metadata)
    }

    /// [`BatchBuilder::push`] with the labels as borrowed pairs sorted by name (see
    /// [`crate::model::stream_hash_sorted`]), so that a listener need not build [`Labels`].
    pub fn push_with_pairs<'p>(
        &mut self,
        stream: StreamId,
        labels: impl ExactSizeIterator<Item = (&'p str, &'p str)>,
        ts: TimestampNs,
        line: &str,
        metadata: &[(&str, &str)],
    ) {
        let next_index = self.streams.len() as u32;
        let index = *self.streams.entry(stream).or_insert(next_index);
        if index == next_index {
            assert!(labels.len() <= BATCH_LABELS_PER_STREAM_MAX);
            self.bytes.push(TAG_STREAM);
            self.bytes.extend_from_slice(&stream.to_le_bytes());
            self.bytes
                .extend_from_slice(&(labels.len() as u16).to_le_bytes());
            for (k, v) in labels {
                put_str16(&mut self.bytes, k);
                put_str16(&mut self.bytes, v);
            }
        }
        assert!(line.len() <= u32::MAX as usize);
        assert!(metadata.len() <= BATCH_METADATA_PER_ENTRY_MAX);
        self.bytes.push(TAG_ENTRY);
        self.bytes.extend_from_slice(&index.to_le_bytes());
        self.bytes.extend_from_slice(&ts.to_le_bytes());
        self.bytes
            .extend_from_slice(&(line.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(line.as_bytes());
        self.bytes
            .extend_from_slice(&(metadata.len() as u16).to_le_bytes());
        for (k, v) in metadata {
            put_str16(&mut self.bytes, k);
            self.bytes
                .extend_from_slice(&(v.len() as u32).to_le_bytes());
            self.bytes.extend_from_slice(v.as_bytes());
        }
        self.entries += 1;
        self.line_bytes += line.len() as u64;
    }

    /// Takes the batch built so far and resets the builder.
    pub fn finish(&mut self) -> Batch {
        let batch = Batch {
            bytes: std::mem::take(&mut self.bytes),
            entries: self.entries,
            line_bytes: self.line_bytes,
        };
        self.start();
        batch
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    assert!(
        s.len() <= u16::MAX as usize,
        "label/metadata key over 64 KiB"
    );
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A decoding failure: what was wrong and at which byte offset of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError {
    pub offset: usize,
    pub what: String,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad batch at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for BatchError {}

/// Metadata pairs an entry's [`BatchItem`] holds without allocating.
pub const ENTRY_METADATA_INLINE: usize = 4;

/// An entry's metadata pairs, borrowed from the body.
pub type EntryMetadata<'a> = smallvec::SmallVec<[(&'a str, &'a str); ENTRY_METADATA_INLINE]>;

/// One decoded item, borrowing from the body.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchItem<'a> {
    Stream {
        index: u32,
        id: StreamId,
        labels: Vec<(&'a str, &'a str)>,
    },
    Entry {
        stream_index: u32,
        ts: TimestampNs,
        line: &'a str,
        /// Inline up to [`ENTRY_METADATA_INLINE`] pairs: reading a batch allocates nothing
        /// per entry (most carry only `detected_level`).
        metadata: EntryMetadata<'a>,
    },
}

/// Iterates a batch body's items, validating as it goes.
pub struct BatchReader<'a> {
    buf: &'a [u8],
    pos: usize,
    tenant: &'a str,
    duplicates: Duplicates,
    streams_seen: u32,
    failed: bool,
}

impl<'a> BatchReader<'a> {
    pub fn new(buf: &'a [u8]) -> Result<BatchReader<'a>, BatchError> {
        let mut r = BatchReader {
            buf,
            pos: 0,
            tenant: "",
            duplicates: Duplicates::Keep,
            streams_seen: 0,
            failed: false,
        };
        let version = r.u8()?;
        let flags = match version {
            VERSION => r.u8()?,
            VERSION_1 => 0,
            _ => {
                return Err(r.err(
                    0,
                    format!("unknown batch version {version}, expected {VERSION} or {VERSION_1}"),
                ));
            }
        };
        if flags & !FLAG_DROP_DUPLICATES != 0 {
            return Err(r.err(1, format!("unknown batch flags {flags:#04x}")));
        }
        if flags & FLAG_DROP_DUPLICATES != 0 {
            r.duplicates = Duplicates::Drop;
        }
        r.tenant = r.str16()?;
        Ok(r)
    }

    pub fn tenant(&self) -> &'a str {
        self.tenant
    }

    /// What the owner does with exact duplicates of this batch's entries.
    pub fn duplicates(&self) -> Duplicates {
        self.duplicates
    }

    fn err(&self, offset: usize, what: String) -> BatchError {
        BatchError { offset, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(
                self.pos,
                format!("needs {n} bytes, {} left", self.buf.len() - self.pos),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, BatchError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BatchError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, BatchError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, BatchError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn utf8(&mut self, n: usize) -> Result<&'a str, BatchError> {
        let at = self.pos;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|e| self.err(at, format!("invalid UTF-8: {e}")))
    }
    fn str16(&mut self) -> Result<&'a str, BatchError> {
        let n = self.u16()? as usize;
        self.utf8(n)
    }

    /// A stream item's id and label count, after its tag at `tag_at`.
    fn stream_header(&mut self, tag_at: usize) -> Result<(StreamId, usize), BatchError> {
        let id = self.u64()?;
        let count = self.u16()? as usize;
        if count > BATCH_LABELS_PER_STREAM_MAX {
            return Err(self.err(
                tag_at,
                format!("{count} labels, at most {BATCH_LABELS_PER_STREAM_MAX}"),
            ));
        }
        Ok((id, count))
    }

    /// An entry item's stream index, timestamp and line length, after its tag at `tag_at`.
    fn entry_header(&mut self, tag_at: usize) -> Result<(u32, TimestampNs, usize), BatchError> {
        let stream_index = self.u32()?;
        if stream_index >= self.streams_seen {
            return Err(self.err(tag_at, format!("entry of undefined stream {stream_index}")));
        }
        let ts = self.u64()? as i64;
        let line_len = self.u32()? as usize;
        Ok((stream_index, ts, line_len))
    }

    /// An entry's metadata pair count, after its line.
    fn metadata_count(&mut self, tag_at: usize) -> Result<usize, BatchError> {
        let count = self.u16()? as usize;
        if count > BATCH_METADATA_PER_ENTRY_MAX {
            return Err(self.err(
                tag_at,
                format!("{count} metadata pairs, at most {BATCH_METADATA_PER_ENTRY_MAX}"),
            ));
        }
        Ok(count)
    }

    fn item(&mut self) -> Result<BatchItem<'a>, BatchError> {
        let tag_at = self.pos;
        match self.u8()? {
            TAG_STREAM => {
                let (id, count) = self.stream_header(tag_at)?;
                let mut labels = Vec::with_capacity(count);
                for _ in 0..count {
                    labels.push((self.str16()?, self.str16()?));
                }
                let index = self.streams_seen;
                self.streams_seen += 1;
                Ok(BatchItem::Stream { index, id, labels })
            }
            TAG_ENTRY => {
                let (stream_index, ts, line_len) = self.entry_header(tag_at)?;
                let line = self.utf8(line_len)?;
                let count = self.metadata_count(tag_at)?;
                let mut metadata = EntryMetadata::with_capacity(count);
                for _ in 0..count {
                    let k = self.str16()?;
                    let n = self.u32()? as usize;
                    metadata.push((k, self.utf8(n)?));
                }
                Ok(BatchItem::Entry {
                    stream_index,
                    ts,
                    line,
                    metadata,
                })
            }
            tag => Err(self.err(tag_at, format!("unknown item tag {tag}"))),
        }
    }
}

/// An item as [`BatchReader::skim`] reads it: the sizes, not the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkimmedItem {
    Stream {
        id: StreamId,
    },
    Entry {
        stream_index: u32,
        ts: TimestampNs,
        /// The line's and its metadata's bytes, as Loki's `EntryTotalSize` counts them.
        bytes: u64,
    },
}

impl<'a> BatchReader<'a> {
    /// The next item's stream id or entry sizes, with every length and count checked as
    /// [`Iterator::next`] checks them but no string decoded: the admission check needs only
    /// these, before the WAL, and checking each line's UTF-8 there as well as when it is
    /// applied took a tenth of the push path. Text that is not UTF-8 is still an error for
    /// the full read ([`Iterator::next`]), which the apply and WAL replay use.
    pub fn skim(&mut self) -> Option<Result<SkimmedItem, BatchError>> {
        if self.failed || self.pos == self.buf.len() {
            return None;
        }
        let item = self.skim_item();
        self.failed = item.is_err();
        Some(item)
    }

    fn skip16(&mut self) -> Result<usize, BatchError> {
        let n = self.u16()? as usize;
        self.take(n)?;
        Ok(n)
    }

    fn skim_item(&mut self) -> Result<SkimmedItem, BatchError> {
        let tag_at = self.pos;
        match self.u8()? {
            TAG_STREAM => {
                let (id, count) = self.stream_header(tag_at)?;
                for _ in 0..count {
                    self.skip16()?;
                    self.skip16()?;
                }
                self.streams_seen += 1;
                Ok(SkimmedItem::Stream { id })
            }
            TAG_ENTRY => {
                let (stream_index, ts, line_len) = self.entry_header(tag_at)?;
                self.take(line_len)?;
                let count = self.metadata_count(tag_at)?;
                let mut bytes = line_len;
                for _ in 0..count {
                    bytes += self.skip16()?;
                    let n = self.u32()? as usize;
                    self.take(n)?;
                    bytes += n;
                }
                Ok(SkimmedItem::Entry {
                    stream_index,
                    ts,
                    bytes: bytes as u64,
                })
            }
            tag => Err(self.err(tag_at, format!("unknown item tag {tag}"))),
        }
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<BatchItem<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos == self.buf.len() {
            return None;
        }
        let item = self.item();
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stream_hash;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut b = BatchBuilder::new("fake");
        let l1 = Labels::from_pairs([("app", "a")]);
        let l2 = Labels::from_pairs([("app", "b"), ("host", "h")]);
        let (s1, s2) = (stream_hash("fake", &l1), stream_hash("fake", &l2));
        b.push(s1, &l1, 10, "one", &[]);
        b.push(s2, &l2, 5, "two", &[("trace_id", "abc")]);
        b.push(s1, &l1, 11, "three", &[]);
        let batch = b.finish();
        assert_eq!(batch.entries, 3);
        assert_eq!(batch.line_bytes, 11);
        let r = batch.reader().unwrap();
        assert_eq!(r.tenant(), "fake");
        let items: Vec<_> = r.map(|i| i.unwrap()).collect();
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[0],
            BatchItem::Stream {
                index: 0,
                id: s1,
                labels: vec![("app", "a")]
            }
        );
        assert_eq!(
            items[3],
            BatchItem::Entry {
                stream_index: 1,
                ts: 5,
                line: "two",
                metadata: smallvec::smallvec![("trace_id", "abc")]
            }
        );
        assert!(b.is_empty());
        assert_eq!(b.tenant(), "fake");
    }

    #[test]
    fn streams_can_be_listed_and_taken_out() {
        let mut b = BatchBuilder::with_duplicates("t", Duplicates::Drop);
        let l1 = Labels::from_pairs([("app", "a")]);
        let l2 = Labels::from_pairs([("app", "b"), ("host", "h")]);
        let (s1, s2) = (stream_hash("t", &l1), stream_hash("t", &l2));
        b.push(s1, &l1, 10, "one", &[]);
        b.push(s2, &l2, 5, "two", &[("trace_id", "abc")]);
        b.push(s1, &l1, 11, "three", &[]);
        b.push(s2, &l2, 6, "four", &[]);
        let batch = b.finish();
        assert_eq!(
            batch.streams().unwrap(),
            [
                (s1, r#"{app="a"}"#.to_string()),
                (s2, r#"{app="b", host="h"}"#.to_string())
            ]
        );
        let (kept, taken_out) = batch
            .without_streams(&ahash::AHashSet::from_iter([s1]))
            .unwrap();
        assert_eq!(taken_out, 2);
        assert_eq!((kept.entries, kept.line_bytes), (2, 7));
        let r = kept.reader().unwrap();
        assert_eq!((r.tenant(), r.duplicates()), ("t", Duplicates::Drop));
        let items: Vec<_> = r.map(|i| i.unwrap()).collect();
        assert_eq!(
            items,
            [
                BatchItem::Stream {
                    index: 0,
                    id: s2,
                    labels: vec![("app", "b"), ("host", "h")]
                },
                BatchItem::Entry {
                    stream_index: 0,
                    ts: 5,
                    line: "two",
                    metadata: smallvec::smallvec![("trace_id", "abc")]
                },
                BatchItem::Entry {
                    stream_index: 0,
                    ts: 6,
                    line: "four",
                    metadata: EntryMetadata::new()
                },
            ]
        );
        // Nothing to take out: the same entries.
        let (same, none) = batch.without_streams(&Default::default()).unwrap();
        assert_eq!((same.bytes, none), (batch.bytes.clone(), 0));
    }

    #[test]
    fn duplicates_flag_round_trips_and_version_1_still_reads() {
        let l = Labels::from_pairs([("app", "a")]);
        let id = stream_hash("fake", &l);
        for d in [Duplicates::Keep, Duplicates::Drop] {
            let mut b = BatchBuilder::with_duplicates("fake", d);
            b.push(id, &l, 10, "one", &[]);
            let batch = b.finish();
            assert_eq!(batch.reader().unwrap().duplicates(), d);
            // The builder keeps its policy for the next batch.
            b.push(id, &l, 11, "two", &[]);
            assert_eq!(b.finish().reader().unwrap().duplicates(), d);
        }
        assert_eq!(
            BatchBuilder::new("fake")
                .finish()
                .reader()
                .unwrap()
                .duplicates(),
            Duplicates::Keep
        );
        // A version 1 body: the same bytes without the flags byte.
        let mut b = BatchBuilder::with_duplicates("fake", Duplicates::Drop);
        b.push(id, &l, 10, "one", &[("k", "v")]);
        let mut v1 = b.finish().bytes;
        v1.remove(1);
        v1[0] = VERSION_1;
        let r = BatchReader::new(&v1).unwrap();
        assert_eq!(r.duplicates(), Duplicates::Keep);
        assert_eq!(r.tenant(), "fake");
        let items: Vec<BatchItem> = r.map(|i| i.unwrap()).collect();
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn unknown_version_or_flags_are_errors() {
        let mut bytes = BatchBuilder::new("t").finish().bytes;
        bytes[1] = 0b10;
        let e = BatchReader::new(&bytes)
            .err()
            .expect("unknown flag refused");
        assert_eq!(e.offset, 1);
        assert!(e.what.contains("flags"), "{e}");
        bytes[0] = 9;
        assert!(BatchReader::new(&bytes).is_err());
    }

    proptest! {
        /// Any truncation or byte flip of a valid batch decodes to an error or to items, and
        /// never panics.
        #[test]
        fn corrupt_batches_never_panic(cut in 0usize..200, flip in 0usize..200, bit in 0u8..8) {
            let mut b = BatchBuilder::new("t");
            let l = Labels::from_pairs([("app", "x"), ("level", "info")]);
            for i in 0..5 {
                b.push(stream_hash("t", &l), &l, i, "some line here", &[("k", "v")]);
            }
            let mut bytes = b.finish().bytes;
            if flip < bytes.len() {
                bytes[flip] ^= 1 << bit;
            }
            bytes.truncate(cut.min(bytes.len()));
            if let Ok(r) = BatchReader::new(&bytes) {
                for item in r {
                    let _ = item;
                }
            }
            if let Ok(mut r) = BatchReader::new(&bytes) {
                while let Some(item) = r.skim() {
                    let _ = item;
                }
            }
        }

        /// Skimming a batch finds the streams, timestamps and sizes the full read finds, and
        /// stops at the same item on a cut body, whatever the entries and metadata.
        #[test]
        fn skimming_finds_what_reading_finds(
            entries in proptest::collection::vec(
                (0usize..3, any::<i64>(), ".{0,40}", proptest::collection::vec(("[a-z]{1,8}", ".{0,12}"), 0..6)),
                0..40,
            ),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut b = BatchBuilder::with_duplicates("t", Duplicates::Drop);
            let streams: Vec<Labels> = (0..3)
                .map(|i| Labels::from_pairs([("app", format!("a{i}").as_str()), ("host", "h")]))
                .collect();
            for (s, ts, line, md) in &entries {
                let md: Vec<(&str, &str)> = md.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                b.push(stream_hash("t", &streams[*s]), &streams[*s], *ts, line, &md);
            }
            let mut bytes = b.finish().bytes;
            let whole = bytes.len();
            bytes.truncate(cut.index(whole + 1));
            let Ok(full) = BatchReader::new(&bytes) else { return Ok(()) };
            let read: Vec<Result<SkimmedItem, BatchError>> = full
                .map(|item| item.map(|item| match item {
                    BatchItem::Stream { id, .. } => SkimmedItem::Stream { id },
                    BatchItem::Entry { stream_index, ts, line, metadata } => SkimmedItem::Entry {
                        stream_index,
                        ts,
                        bytes: (line.len() + metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()) as u64,
                    },
                }))
                .collect();
            let mut skim = BatchReader::new(&bytes).unwrap();
            let skimmed: Vec<Result<SkimmedItem, BatchError>> = std::iter::from_fn(|| skim.skim()).collect();
            // A cut inside a string fails the full read at the string and the skim at the same
            // bounds check; the error texts may differ, the items before it may not.
            prop_assert_eq!(read.len(), skimmed.len());
            for (r, s) in read.iter().zip(&skimmed) {
                match (r, s) {
                    (Ok(r), Ok(s)) => prop_assert_eq!(r, s),
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "full read {:?}, skim {:?}", r, s),
                }
            }
            if bytes.len() == whole {
                prop_assert!(skimmed.iter().all(|i| i.is_ok()));
            }
        }
    }
}
