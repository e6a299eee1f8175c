//! The streaming merge that compaction and part rewrites write their parts with.
//!
//! Which question it answers: "how are parts merged into one far larger than memory?" The
//! inputs' streams are visited in ascending id (the order parts keep them in, so each input
//! is read front to back). For one stream, each input that holds it is a cursor over its
//! blocks, one decoded block at a time, and the cursors are merged by timestamp (a tie keeps
//! the entry of the earlier input first, then the order within its part: exactly the order a
//! query of the inputs sees). Merged entries gather in a chunk of at most
//! [`MERGE_CHUNK_BYTES`] of lines; a full chunk, or the streams gathered so far, goes to the
//! background encoder thread with the [`PartEncoder`], which hands back the file's pages, and
//! those are written while the next chunk is merged. Input blocks of
//! [`DECODE_ON_CORE_BYTES_MAX`] or more are decoded on that thread too: only the reads, the
//! merge of entries and the writes run on the core, between yields.
//!
//! What a merge holds is therefore bounded by its inputs, not by their size: one decoded
//! block and one read-ahead window per input ([`MERGE_INPUT_BYTES`]), two chunks, and the new
//! part's tail (block headers, blooms, metadata index entries), which is about as large as
//! the inputs' tails together, and the inputs' metadata, read once for the whole merge
//! ([`merge_memory_bytes`]). Compaction picks its inputs within `compaction_input_bytes_max`
//! by that measure.

use std::rc::Rc;
use std::sync::Mutex;

use super::part_file::{LoadedPart, PartTail, ReadAhead};
use super::part_writer::{PartDescription, PartFileWriter};
use super::rewrite::{DropReason, StreamRule};
use super::{Encoder, Store, StoreError, compaction::IoPacer, encode_off_core};
use crate::chunk::{
    ChunkError, DecodedBlock, EntryInput, PartEncoder, PartReader, PartWriterOptions,
    StreamBlockInput,
};
use crate::model::{Labels, TimestampNs};
use crate::runtime::courtesy::pause_point;

/// Bytes of merged lines gathered before they go to the encoder: a few blocks' worth, so that
/// a trip to the encoder thread is worth its wait, and blocks are cut at their target size.
pub const MERGE_CHUNK_BYTES: usize = 2 << 20;

/// What a merge holds per input: one decoded block (blocks are cut at about 1 MiB of body)
/// and one read-ahead window ([`super::part_file::READ_AHEAD_BYTES`]), with slack.
pub const MERGE_INPUT_BYTES: u64 = 3 << 19;

/// What a merge holds apart from its inputs: the chunk being merged and the chunk being
/// encoded (each with a vector's slack), and the encoder's page buffer.
pub const MERGE_FIXED_BYTES: u64 = 3 * MERGE_CHUNK_BYTES as u64;

/// The memory a merge of parts with these tails (`tails_bytes`: everything after their
/// blocks) and metadata (`meta_bytes`: what [`LoadedPart::tail`] reads) holds at most: the
/// fixed chunks, a block and a read-ahead window per input, the inputs' metadata (read for
/// the merge), and the new part's tail twice (as it is gathered, and as it is laid out at
/// the end), which holds about as much as the inputs' tails together.
pub fn merge_memory_bytes(inputs: usize, tails_bytes: u64, meta_bytes: u64) -> u64 {
    MERGE_FIXED_BYTES + inputs as u64 * MERGE_INPUT_BYTES + 2 * tails_bytes + meta_bytes
}

/// One stream's merged entries, owned, so they can be encoded on another thread. Lines and
/// metadata live in one string; entries and pairs are byte ranges of it.
pub(super) struct MergedStream {
    pub(super) id: u64,
    pub(super) tenant: String,
    pub(super) labels: Labels,
    text: String,
    /// Key start, key end, value start, value end in `text`.
    pairs: Vec<[usize; 4]>,
    entries: Vec<MergedEntry>,
}

struct MergedEntry {
    ts: TimestampNs,
    /// Line start and end in `text`.
    line: [usize; 2],
    /// The entry's range in `pairs`.
    pairs: [usize; 2],
}

impl MergedStream {
    fn new(id: u64, tenant: String, labels: Labels) -> MergedStream {
        MergedStream {
            id,
            tenant,
            labels,
            text: String::new(),
            pairs: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn push<'a>(
        &mut self,
        ts: TimestampNs,
        line: &str,
        metadata: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        let start = self.text.len();
        self.text.push_str(line);
        let line = [start, self.text.len()];
        let first_pair = self.pairs.len();
        for (k, v) in metadata {
            let ks = self.text.len();
            self.text.push_str(k);
            let vs = self.text.len();
            self.text.push_str(v);
            self.pairs.push([ks, vs, vs, self.text.len()]);
        }
        self.entries.push(MergedEntry {
            ts,
            line,
            pairs: [first_pair, self.pairs.len()],
        });
    }

    /// Bytes of lines and metadata held.
    fn bytes(&self) -> usize {
        self.text.len()
    }

    /// The entries from `from` on, as a stream of their own (what the encoder left for the
    /// next piece).
    fn tail_from(&self, from: usize) -> MergedStream {
        let mut out = MergedStream::new(self.id, self.tenant.clone(), self.labels.clone());
        for e in &self.entries[from..] {
            out.push(
                e.ts,
                &self.text[e.line[0]..e.line[1]],
                self.pairs[e.pairs[0]..e.pairs[1]]
                    .iter()
                    .map(|&[ks, ke, vs, ve]| (&self.text[ks..ke], &self.text[vs..ve])),
            );
        }
        out
    }

    /// Gives the encoder this stream's entries, with `last` as [`PartEncoder::add`] takes it.
    fn add_to(&self, encoder: &mut PartEncoder, last: bool) -> Result<usize, ChunkError> {
        let pairs: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .map(|&[ks, ke, vs, ve]| (&self.text[ks..ke], &self.text[vs..ve]))
            .collect();
        let entries: Vec<EntryInput<'_>> = self
            .entries
            .iter()
            .map(|e| {
                (
                    e.ts,
                    &self.text[e.line[0]..e.line[1]],
                    &pairs[e.pairs[0]..e.pairs[1]],
                )
            })
            .collect();
        encoder.add(
            &StreamBlockInput {
                stream_id: self.id,
                tenant: &self.tenant,
                labels: &self.labels,
                entries: &entries,
            },
            last,
        )
    }
}

/// Which lines a merge leaves out: a rule per stream, from its tenant, labels and the time
/// range of its blocks in the inputs (`None`: the stream keeps every line).
pub(super) type RuleFor<'r> =
    dyn Fn(&str, &Labels, TimestampNs, TimestampNs) -> Option<StreamRule<'r>> + 'r;

/// What a merge wrote.
pub(super) struct Merged {
    /// The new part, durable, not yet named by the manifest; `None` when no line was kept,
    /// or when nothing was dropped and the caller wanted a part only if something was.
    pub(super) part: Option<LoadedPart>,
    /// Entries read from the inputs.
    pub(super) read: u64,
    /// Entries written.
    pub(super) written: u64,
    /// Lines left out, by tenant and reason.
    pub(super) dropped: Vec<(String, DropReason, u64)>,
}

/// Where the merge of one stream stands in one input.
struct Cursor {
    input: usize,
    /// The input's blocks of the stream, in order, and how many were read.
    blocks: std::ops::Range<usize>,
    block: DecodedBlock,
    pos: usize,
}

impl Cursor {
    fn ts(&self) -> TimestampNs {
        self.block.timestamps()[self.pos]
    }
}

/// Input blocks with bodies this large or larger are decoded on the compaction encoder
/// thread, which steps aside for ingest (see `runtime::courtesy`), instead of on the core: a
/// block of 1 MiB took 3 to 4 ms of the core to decompress and rebuild from its templates,
/// with no await inside, while pushes waited. Smaller blocks are decoded where they are
/// read, since a trip to the thread costs more than their decode (a part of a million
/// one-line streams is a million tiny blocks).
pub(super) const DECODE_ON_CORE_BYTES_MAX: usize = 64 << 10;

/// Decodes block `i` of `reader` from `compressed` into `block`, on the background encoder
/// thread.
async fn decode_off_core(
    store: &Store,
    reader: &PartReader<'_>,
    i: usize,
    compressed: Vec<u8>,
    block: &mut DecodedBlock,
) -> Result<(), StoreError> {
    let job = reader.block_decode_job(i)?;
    let taken = Mutex::new(Some(std::mem::take(block)));
    *block = encode_off_core(
        &store.disk,
        Encoder::Background,
        (job, compressed, taken),
        |(job, compressed, taken)| {
            let mut block = taken
                .lock()
                .expect("only this job takes it")
                .take()
                .expect("taken once");
            pause_point();
            job.decode(compressed, &mut block)?;
            Ok(block)
        },
    )
    .await?;
    Ok(())
}

/// The encoder and the pieces handed to it, moved to the encoder thread and back.
type EncodeJob = Mutex<Option<(PartEncoder, Vec<MergedStream>, bool)>>;

impl Store {
    /// Merges `inputs` (ascending by id: their order breaks timestamp ties) into one part of
    /// `level` in `partition`, encoded with `opts`, leaving out the lines `rule_for`'s rules
    /// drop. With `only_if_dropped`, a merge that dropped nothing writes no part. Reads and
    /// writes are paid for with `pacer`; the task yields between blocks.
    ///
    /// A corrupt input is quarantined and its error returned; nothing is left on disk by a
    /// merge that fails.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn merge_parts(
        &self,
        inputs: &[Rc<LoadedPart>],
        partition: &str,
        partition_start: TimestampNs,
        level: u32,
        opts: PartWriterOptions,
        rule_for: &RuleFor<'_>,
        only_if_dropped: bool,
        pacer: &mut IoPacer,
    ) -> Result<Merged, StoreError> {
        let mut tails = Vec::with_capacity(inputs.len());
        for part in inputs {
            match part.tail(None).await {
                Ok(tail) => tails.push(tail),
                Err(e) => {
                    if e.is_corruption() {
                        eprintln!("shardlog: merging parts: {e}; moving the part to quarantine");
                        self.quarantine(part.entry.id).await;
                    }
                    return Err(e);
                }
            }
        }
        let mut writer = self.create_part_file(partition).await?;
        let mut run = MergeRun {
            store: self,
            inputs,
            tails,
            encoder: Some(PartEncoder::new(&opts).map_err(StoreError::from)),
            ahead: inputs.iter().map(|_| ReadAhead::default()).collect(),
            read: 0,
            written: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            dropped: Vec::new(),
        };
        let result = run.merge(&mut writer, rule_for, pacer).await;
        let keep =
            result.is_ok() && run.written > 0 && !(only_if_dropped && run.dropped.is_empty());
        let tail = match (result, keep) {
            (Ok(()), true) => run.finish(&mut writer, pacer).await.map(Some),
            (Ok(()), false) => Ok(None),
            (Err(e), _) => Err(e),
        };
        let part = match tail {
            Ok(Some(())) => Some(
                writer
                    .finish(PartDescription {
                        partition_start,
                        level,
                        entries: run.written,
                        min_ts: run.min_ts,
                        max_ts: run.max_ts,
                    })
                    .await?,
            ),
            Ok(None) => {
                writer.abandon().await;
                None
            }
            Err(e) => {
                writer.abandon().await;
                return Err(e);
            }
        };
        Ok(Merged {
            part,
            read: run.read,
            written: run.written,
            dropped: run.dropped,
        })
    }
}

/// One merge in progress.
struct MergeRun<'m> {
    store: &'m Store,
    inputs: &'m [Rc<LoadedPart>],
    /// Each input's tail, read once for the whole merge.
    tails: Vec<Rc<PartTail>>,
    /// With the encoder thread while a piece is encoded; an error to report if it could not
    /// be made.
    encoder: Option<Result<PartEncoder, StoreError>>,
    /// One read-ahead window per input: each is read front to back.
    ahead: Vec<ReadAhead>,
    read: u64,
    written: u64,
    min_ts: TimestampNs,
    max_ts: TimestampNs,
    dropped: Vec<(String, DropReason, u64)>,
}

impl MergeRun<'_> {
    async fn merge(
        &mut self,
        writer: &mut PartFileWriter<'_>,
        rule_for: &RuleFor<'_>,
        pacer: &mut IoPacer,
    ) -> Result<(), StoreError> {
        // Every (stream id, input, stream index), ascending by id then input: parts keep
        // their streams sorted by id.
        let mut order: Vec<(u64, usize, usize)> = Vec::new();
        for (input, tail) in self.tails.iter().enumerate() {
            let reader = tail.reader();
            order.extend(
                reader
                    .streams()
                    .iter()
                    .enumerate()
                    .map(|(si, s)| (s.id.to_native(), input, si)),
            );
        }
        order.sort_unstable();
        // Whole streams gathered for the encoder, and their bytes.
        let mut gathered: Vec<MergedStream> = Vec::new();
        let mut gathered_bytes = 0usize;
        let mut at = 0;
        while at < order.len() {
            let id = order[at].0;
            let end = at + order[at..].iter().take_while(|o| o.0 == id).count();
            let holders = &order[at..end];
            at = end;

            let (tenant, labels, min, max, mut cursors) = {
                let first = self.tails[holders[0].1].reader();
                let s = &first.streams()[holders[0].2];
                let tenant = s.tenant.as_str().to_string();
                let labels = Labels::from_pairs(
                    s.labels.iter().map(|p| (p.name.as_str(), p.value.as_str())),
                );
                let (mut min, mut max) = (i64::MAX, i64::MIN);
                let mut cursors = Vec::with_capacity(holders.len());
                for &(_, input, si) in holders {
                    let reader = self.tails[input].reader();
                    let blocks = reader.streams()[si].block_range();
                    for i in blocks.clone() {
                        let b = &reader.blocks()[i];
                        min = min.min(b.min_ts.to_native());
                        max = max.max(b.max_ts.to_native());
                    }
                    cursors.push(Cursor {
                        input,
                        blocks,
                        block: DecodedBlock::new(),
                        pos: 0,
                    });
                }
                (tenant, labels, min, max, cursors)
            };
            let rule = rule_for(&tenant, &labels, min, max);
            let mut chunk = MergedStream::new(id, tenant, labels);
            // Load each cursor's first block; a cursor without blocks goes.
            let mut live = Vec::with_capacity(cursors.len());
            for mut c in cursors.drain(..) {
                if self.advance(&mut c, pacer).await? {
                    live.push(c);
                }
            }
            while !live.is_empty() {
                // The cursor with the earliest entry (ties: the earliest input) takes all its
                // entries up to the next cursor's earliest.
                let (k, _) = live
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| (c.ts(), c.input))
                    .expect("not empty");
                let bound = live
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, c)| (c.ts(), c.input))
                    .min();
                let c = &mut live[k];
                let mut metadata: Vec<(&str, &str)> = Vec::new();
                while c.pos < c.block.len() && bound.is_none_or(|b| (c.ts(), c.input) < b) {
                    let e = c.block.entry(c.pos);
                    c.pos += 1;
                    self.read += 1;
                    if let Some(rule) = &rule {
                        metadata.clear();
                        metadata.extend(e.metadata.iter());
                        if let Some(reason) = rule(e.ts, e.line, &metadata) {
                            match self
                                .dropped
                                .iter_mut()
                                .find(|d| d.0 == chunk.tenant && d.1 == reason)
                            {
                                Some(d) => d.2 += 1,
                                None => self.dropped.push((chunk.tenant.clone(), reason, 1)),
                            }
                            continue;
                        }
                    }
                    self.min_ts = self.min_ts.min(e.ts);
                    self.max_ts = self.max_ts.max(e.ts);
                    self.written += 1;
                    chunk.push(e.ts, e.line, e.metadata.iter());
                }
                if c.pos == c.block.len() {
                    let mut c = live.swap_remove(k);
                    if self.advance(&mut c, pacer).await? {
                        live.push(c);
                    }
                }
                if chunk.bytes() >= MERGE_CHUNK_BYTES {
                    // A long stream: encode what is gathered, this stream's piece last and
                    // open; what the encoder leaves of it comes back.
                    let piece = std::mem::replace(
                        &mut chunk,
                        MergedStream::new(id, String::new(), Labels::default()),
                    );
                    gathered.push(piece);
                    gathered_bytes = 0;
                    let back = self
                        .encode(std::mem::take(&mut gathered), true, writer, pacer)
                        .await?;
                    chunk = back.expect("an open piece comes back");
                }
                glommio::yield_if_needed().await;
            }
            gathered_bytes += chunk.bytes();
            gathered.push(chunk);
            if gathered_bytes >= MERGE_CHUNK_BYTES {
                gathered_bytes = 0;
                self.encode(std::mem::take(&mut gathered), false, writer, pacer)
                    .await?;
            }
        }
        if !gathered.is_empty() {
            self.encode(gathered, false, writer, pacer).await?;
        }
        Ok(())
    }

    /// Moves `c` on to its next entry, reading its next block when it has used one up.
    /// `false` when it has no entry left.
    async fn advance(&mut self, c: &mut Cursor, pacer: &mut IoPacer) -> Result<bool, StoreError> {
        while c.pos >= c.block.len() {
            let Some(i) = c.blocks.next() else {
                return Ok(false);
            };
            let part = &self.inputs[c.input];
            let reader = self.tails[c.input].reader();
            let bytes = reader.block_range(i).map_or(0, |r| r.end - r.start);
            pacer.charge(bytes).await;
            let body_bytes = reader.blocks()[i].uncompressed_bytes.to_native() as usize;
            let read = if body_bytes < DECODE_ON_CORE_BYTES_MAX {
                part.read_block_ahead(&reader, i, &mut c.block, &mut self.ahead[c.input])
                    .await
            } else {
                async {
                    let compressed = part
                        .read_block_bytes_ahead(&reader, i, &mut self.ahead[c.input])
                        .await?;
                    decode_off_core(self.store, &reader, i, compressed, &mut c.block).await
                }
                .await
            };
            if let Err(e) = read {
                if e.is_corruption() {
                    eprintln!("shardlog: merging parts: {e}; moving the part to quarantine");
                    self.store.quarantine(part.entry.id).await;
                }
                return Err(e);
            }
            c.pos = 0;
        }
        Ok(true)
    }

    /// Encodes `streams` on the background encoder thread (the last one left open when
    /// `open_last`) and writes the pages it hands back. Returns what the encoder left of the
    /// open stream.
    async fn encode(
        &mut self,
        streams: Vec<MergedStream>,
        open_last: bool,
        writer: &mut PartFileWriter<'_>,
        pacer: &mut IoPacer,
    ) -> Result<Option<MergedStream>, StoreError> {
        let encoder = self.encoder.take().expect("the encoder is back")?;
        let job: EncodeJob = Mutex::new(Some((encoder, streams, open_last)));
        let (encoder, left, pages) =
            encode_off_core(&self.store.disk, Encoder::Background, job, |job| {
                let (mut encoder, streams, open_last) = job
                    .lock()
                    .expect("only this job takes it")
                    .take()
                    .expect("taken once");
                let mut left = None;
                let n = streams.len();
                for (i, s) in streams.iter().enumerate() {
                    let last = !(open_last && i + 1 == n);
                    let used = s.add_to(&mut encoder, last)?;
                    if !last {
                        left = Some(s.tail_from(used));
                    }
                }
                let pages = encoder.take_ready();
                Ok((encoder, left, pages))
            })
            .await?;
        self.encoder = Some(Ok(encoder));
        pacer.charge(pages.len() as u64).await;
        writer.write(&pages).await?;
        Ok(left)
    }

    /// Ends the part: its tail, laid out on the encoder thread, is written.
    async fn finish(
        &mut self,
        writer: &mut PartFileWriter<'_>,
        pacer: &mut IoPacer,
    ) -> Result<(), StoreError> {
        let encoder = self.encoder.take().expect("the encoder is back")?;
        let job = Mutex::new(Some(encoder));
        let tail = encode_off_core(&self.store.disk, Encoder::Background, job, |job| {
            job.lock()
                .expect("only this job takes it")
                .take()
                .expect("taken once")
                .finish()
        })
        .await?;
        pacer.charge(tail.len() as u64).await;
        writer.write(&tail).await
    }
}
