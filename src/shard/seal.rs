//! Sealing: heads become parts, and the WAL they pinned is released.
//!
//! A seal round (one at a time per shard, under the store's lock):
//! 1. takes the heads that are due (lines over `seal_bytes`, oldest entry older than
//!    `seal_age`, or every head when memory for heads runs out, at shutdown, or when a
//!    foreign WAL was replayed) and keeps them readable as a [`SealingSet`];
//! 2. sorts each head's entries by time and groups them by (tenant, partition); encodes one
//!    part per group off the core ([`crate::store::encode_off_core`]), and there too hashes
//!    the entries the duplicate check will remember (no step on the core touches every
//!    entry: that would hold every acknowledgement for its duration);
//! 3. writes each part durably ([`crate::store::Store::write_part`]);
//! 4. replaces the manifest with the new parts, the streams' `sealed_through` watermarks
//!    (the last WAL seq in each taken head) and the new checkpoint (the first seq still held
//!    by any head, minus one); in the same step, without a yield, the sealing set stops
//!    being read, so a query sees each entry exactly once;
//! 5. deletes the WAL segments at or below the checkpoint.
//!
//! If any step fails the taken heads stay readable in memory and in the WAL (nothing was
//! checkpointed), and the failure is counted and said once. Failures of sealing are states
//! that end by themselves (a burst of EMFILE, a full disk, an EIO on a new file: the data is
//! still in memory and in the WAL, so nothing depends on the failed files): the next round,
//! after a backoff, first writes the failed round's heads again, in order, before it takes any
//! new head (a later round would raise their streams' watermarks past them). Meanwhile the
//! heads budget is enforced (see `Shard::append`), so memory stays bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;

use super::Shard;
use super::head::StreamHead;
use crate::chunk::{EntryInput, PartEncoder, PartWriterOptions, StreamBlockInput};
use crate::config::Config;
use crate::model::{StreamId, TimestampNs};
use crate::store::{
    Change, Encoder, NewPart, StoreError, StoreOptions, drop_off_core, encode_off_core, paths,
};

/// How often the sealer looks for due heads.
pub const SEAL_TICK_MAX: Duration = Duration::from_millis(250);

/// First wait before sealing again after a failed round, doubled after each failure...
pub const SEAL_RETRY_MIN: Duration = Duration::from_millis(100);
/// ...up to this: how late, at most, sealing resumes after the cause is gone.
pub const SEAL_RETRY_MAX: Duration = Duration::from_secs(5);

/// How often retention and compaction run at most: every `seal_age`, within these bounds
/// (a short seal age, as in tests, makes them run often; the default runs them every 10 s).
pub const MAINTENANCE_INTERVAL_MIN: Duration = Duration::from_millis(500);
pub const MAINTENANCE_INTERVAL_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct SealSettings {
    pub cores: usize,
    pub retention: Option<Duration>,
    /// 0: no cap.
    pub retention_max_bytes: u64,
    pub seal_bytes: u64,
    pub seal_age: Duration,
    pub heads_bytes_max: u64,
    /// WAL segment bytes past which the heads pinning the oldest segments are sealed early.
    pub wal_bytes_max: u64,
    pub wal_segment_bytes: u64,
    pub store: StoreOptions,
}

impl SealSettings {
    pub fn from_config(c: &Config) -> SealSettings {
        let mut store = StoreOptions {
            partition_ns: c.partition.as_nanos() as i64,
            compaction_bytes_per_second: c.compaction_bytes_per_second,
            ..StoreOptions::default()
        };
        store.compact.zstd_level = c.zstd_level;
        store.compaction.memory_bytes_max = c.memory.compaction_input_bytes_max;
        store.compaction.recompress_cold_after = c.compaction_cold_after;
        store.seal.zstd_level = c.seal_zstd_level;
        store.seal.block_bytes_target = c.seal_bytes.clamp(
            crate::chunk::part::BLOCK_BYTES_TARGET_MIN,
            store.seal.block_bytes_target,
        );
        SealSettings {
            cores: c.cores,
            retention: c.retention,
            retention_max_bytes: c.retention_max_bytes,
            seal_bytes: c.seal_bytes as u64,
            seal_age: c.seal_age,
            heads_bytes_max: c.heads_bytes_max,
            wal_bytes_max: c.wal_bytes_max,
            wal_segment_bytes: c.wal_segment_bytes_max,
            store,
        }
    }

    /// How long the maintenance task sleeps between rounds.
    pub fn maintenance_interval(&self) -> Duration {
        self.seal_age
            .clamp(MAINTENANCE_INTERVAL_MIN, MAINTENANCE_INTERVAL_MAX)
    }

    /// How long the sealer sleeps between looks.
    pub fn tick(&self) -> Duration {
        (self.seal_age / 4).min(SEAL_TICK_MAX)
    }
}

/// Which heads a round takes, and how it records what it sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealMode {
    /// Heads due by size or age (all of them if head memory is full).
    Due,
    /// Every head (shutdown).
    All,
    /// Every head, which holds only the replayed WAL of shard number `shard` (beyond the core
    /// count), sealed through `through` of that WAL's seqs.
    Foreign { shard: u32, through: u64 },
}

/// Heads taken by a seal round, readable until the round's parts are in the manifest.
pub struct SealingSet {
    pub heads: Vec<StreamHead>,
    by_id: AHashMap<StreamId, usize>,
    /// Bytes the heads hold (counted in the shard's unsealed bytes until committed).
    held_bytes: u64,
    /// The foreign WAL these heads came from and through which seq (see [`SealMode`]).
    foreign: Option<(u32, u64)>,
}

impl SealingSet {
    pub(super) fn new(heads: Vec<StreamHead>, foreign: Option<(u32, u64)>) -> SealingSet {
        let by_id = heads.iter().enumerate().map(|(i, h)| (h.id, i)).collect();
        let held_bytes = heads.iter().map(|h| h.held_bytes()).sum();
        SealingSet {
            heads,
            by_id,
            held_bytes,
            foreign,
        }
    }

    pub fn index_of(&self, id: StreamId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The head of stream `id` of exactly this generation, if this round took it.
    pub fn find(&self, id: StreamId, generation: u64) -> Option<usize> {
        self.index_of(id)
            .filter(|&i| self.heads[i].generation() == generation)
    }
}

impl Shard {
    /// Runs one seal round (see the module doc). Returns the entries sealed.
    pub(super) async fn seal_round(&self, mode: SealMode) -> Result<u64, StoreError> {
        let Some(store) = self.store.borrow().clone() else {
            return Ok(0);
        };
        let Some(settings) = self.seal_settings.get() else {
            return Ok(0);
        };
        let _guard = store.lock().await;
        // Under the lock no round is in progress: every set still sealing is one whose round
        // failed. Its heads go first, in order: a later round would raise their streams'
        // watermarks past them, and replay would skip them.
        let failed: Vec<Arc<SealingSet>> = self.sealing.borrow().clone();
        for set in &failed {
            self.finish_round(&store, set, settings).await?;
        }
        let now = Instant::now();
        let all = mode != SealMode::Due || self.head_bytes.get() > settings.heads_bytes_max;
        let pinning = self.wal_pin_limit(settings);
        let mut early = 0;
        let taken: Vec<StreamHead> = self.heads_mut().take_heads(|h| {
            let due = all
                || h.line_bytes_total() >= settings.seal_bytes
                || h.first_arrival
                    .is_some_and(|t| now.duration_since(t) >= settings.seal_age);
            let pins = pinning.is_some_and(|seq| h.first_seq > 0 && h.first_seq < seq);
            early += usize::from(pins && !due);
            due || pins
        });
        self.counters.wal_early_seals.add(early as u64);
        let foreign = match mode {
            SealMode::Foreign { shard, through } => Some((shard, through)),
            _ => None,
        };
        if taken.is_empty() {
            if let Some(f) = foreign {
                store
                    .commit_locked(
                        Change {
                            foreign: vec![f],
                            ..Change::default()
                        },
                        || {},
                    )
                    .await?;
            }
            return Ok(0);
        }
        let set = Arc::new(SealingSet::new(taken, foreign));
        self.head_bytes
            .set(self.head_bytes.get().saturating_sub(set.held_bytes));
        self.sealing_bytes
            .set(self.sealing_bytes.get() + set.held_bytes);
        self.sealing.borrow_mut().push(set.clone());
        let sealed = self.finish_round(&store, &set, settings).await;
        // Once committed, this is usually the last reference to the heads: their memory is
        // freed off the core.
        drop_off_core(store.disk(), Encoder::Seal, set);
        sealed
    }

    /// Writes a taken set's parts and commits them (see [`Self::write_sealed`]); on failure
    /// the set stays sealing, readable, for the next round to write again. Says the first
    /// failure of a run of them, and the recovery after it.
    async fn finish_round(
        &self,
        store: &crate::store::Store,
        set: &Arc<SealingSet>,
        settings: SealSettings,
    ) -> Result<u64, StoreError> {
        let result = self.write_sealed(store, set, settings, set.foreign).await;
        match &result {
            Ok(_) => {
                self.sealing_bytes
                    .set(self.sealing_bytes.get().saturating_sub(set.held_bytes));
                if let Some(why) = self.seal_failed.borrow_mut().take() {
                    eprintln!("shard {}: sealing works again (it failed: {why})", self.id);
                }
            }
            Err(e) => {
                self.counters.seal_failures.inc();
                let first = self.seal_failed.borrow().is_none();
                if first {
                    eprintln!(
                        "shard {}: sealing failed and is retried with backoff; the heads stay \
                         in memory and in the WAL meanwhile: {e}",
                        self.id
                    );
                }
                *self.seal_failed.borrow_mut() = Some(e.to_string());
            }
        }
        // Appends waiting for memory re-check.
        self.sealed.notify_all();
        result
    }

    async fn write_sealed(
        &self,
        store: &crate::store::Store,
        set: &Arc<SealingSet>,
        settings: SealSettings,
        foreign: Option<(u32, u64)>,
    ) -> Result<u64, StoreError> {
        let opts = settings.store.seal;
        let partition_ns = settings.store.partition_ns;
        // The duplicate check's fingerprints of the set are made with the parts, off the
        // core: they touch every entry (see `dedupe::sealed_runs`).
        let (parts, fingerprints) =
            encode_off_core(store.disk(), Encoder::Seal, set.clone(), move |set| {
                let parts = encode_sealing_set(set, &opts, partition_ns)?;
                Ok((parts, super::dedupe::sealed_runs(&set.heads)))
            })
            .await?;
        let mut added = Vec::with_capacity(parts.len());
        let mut entries = 0;
        for p in parts {
            entries += p.entries;
            match store.write_part(p).await {
                Ok(part) => added.push(part),
                Err(e) => {
                    // Not named by any manifest: the files would only hold space until the
                    // next start.
                    for part in added {
                        store.discard_unnamed(part).await;
                    }
                    return Err(e);
                }
            }
        }
        let mut change = Change {
            add: added,
            ..Change::default()
        };
        match foreign {
            Some(f) => change.foreign.push(f),
            None => {
                change.watermarks = set.heads.iter().map(|h| (h.id, h.last_seq)).collect();
                change.wal_checkpoint = Some(self.checkpoint_without(set));
            }
        }
        let checkpoint = change.wal_checkpoint;
        store
            .commit_locked(change, || {
                // The parts are now read by queries: stop reading the sealing set, in the
                // same step. Scans already running took their parts before these existed, so
                // they keep reading the set instead.
                self.sealing.borrow_mut().retain(|s| !Arc::ptr_eq(s, set));
                self.scan_pins.retire(set);
                // The duplicate check stops finding these heads in `sealing`: it finds
                // their fingerprints from now on.
                self.remember_sealed_runs(fingerprints);
            })
            .await?;
        store.counters.sealed_entries.add(entries);
        let wal = self.wal.borrow().clone();
        if let (Some(c), Some(wal)) = (checkpoint, wal)
            && let Err(e) = wal.remove_segments_through(c).await
        {
            // The segments stay; replay skips what the manifest says is sealed.
            eprintln!("shard {}: WAL checkpoint at {c}: {e}", self.id);
        }
        Ok(entries)
    }

    /// While the WAL's segments take more than `wal_bytes_max`, the first seq of the oldest
    /// segment that must stay: heads holding records before it pin the older segments, and
    /// are sealed early (a quiet stream must not keep gigabytes of log for a few lines).
    fn wal_pin_limit(&self, settings: SealSettings) -> Option<u64> {
        let wal = self.wal.borrow().clone()?;
        let segments = wal.segment_first_seqs();
        let bytes = segments.len() as u64 * settings.wal_segment_bytes;
        if bytes <= settings.wal_bytes_max {
            return None;
        }
        let excess = (bytes - settings.wal_bytes_max).div_ceil(settings.wal_segment_bytes);
        // The active segment always stays.
        let keep_from = (excess as usize).min(segments.len().saturating_sub(1));
        segments.get(keep_from).copied()
    }

    /// The highest seq such that every record at or below it is in parts once `sealed` is:
    /// one below the first seq any other head still holds, or everything applied.
    fn checkpoint_without(&self, sealed: &Arc<SealingSet>) -> u64 {
        let mut first = u64::MAX;
        for h in self.heads().heads() {
            if !h.is_empty() && h.first_seq > 0 {
                first = first.min(h.first_seq);
            }
        }
        for set in self.sealing.borrow().iter() {
            if Arc::ptr_eq(set, sealed) {
                continue;
            }
            for h in &set.heads {
                if h.first_seq > 0 {
                    first = first.min(h.first_seq);
                }
            }
        }
        if first == u64::MAX {
            self.applied_seq.get()
        } else {
            first - 1
        }
    }

    /// The sealer, until the shard closes: every tick, or as soon as the live heads pass
    /// `heads_bytes_max`, seal due heads; after a failed round, try again after a backoff
    /// that doubles up to [`SEAL_RETRY_MAX`].
    pub async fn run_sealer(self: std::rc::Rc<Self>) {
        let Some(settings) = self.seal_settings.get() else {
            return;
        };
        let mut wait = settings.tick();
        loop {
            if wait <= settings.tick() {
                // Heads over their budget wake the sealer at once (see `Shard::apply`): at
                // full ingest a tick is tens of MiB of lines.
                futures_lite::future::or(glommio::timer::sleep(wait), self.seal_wanted.wait())
                    .await;
            } else {
                // Backing off after a failure: pressure does not cut the backoff short.
                glommio::timer::sleep(wait).await;
            }
            if self.wal.borrow().is_none() {
                return;
            }
            wait = match self.seal_round(SealMode::Due).await {
                Ok(_) => settings.tick(),
                Err(_) if wait < SEAL_RETRY_MIN => SEAL_RETRY_MIN,
                Err(_) => (wait * 2).min(SEAL_RETRY_MAX),
            };
        }
    }

    /// Retention and compaction, until the shard closes: every [`SealSettings::maintenance_interval`]
    /// (a separate task from the sealer, so a long compaction never delays sealing), and at
    /// once again while compaction has work left: a pause of an interval after every interval
    /// of merging would halve what compaction gets through under ingest.
    pub async fn run_maintenance(self: std::rc::Rc<Self>) {
        let Some(settings) = self.seal_settings.get() else {
            return;
        };
        let mut more = false;
        loop {
            if more {
                glommio::yield_if_needed().await;
            } else {
                glommio::timer::sleep(settings.maintenance_interval()).await;
            }
            if self.wal.borrow().is_none() {
                return;
            }
            more = self.maintain(settings).await;
        }
    }

    /// Retention over every store this shard serves (the global size cap is split evenly
    /// over the cores; a shard's share covers its own store and those it stands in for,
    /// oldest data first), then compactions of its own store for at most an interval.
    /// Returns whether compaction had work left when the interval ended.
    pub(super) async fn maintain(&self, settings: SealSettings) -> bool {
        // What the part cache keeps of parts the last round merged or dropped is let go.
        let live = self
            .all_stores()
            .iter()
            .flat_map(|s| s.parts())
            .map(|p| p.cache_key())
            .collect();
        self.part_cache().retain_parts(&live);
        let now = crate::ingest::listeners::now_ns();
        let stores = self.all_stores();
        if settings.retention.is_some() || settings.retention_max_bytes > 0 {
            let share = (settings.retention_max_bytes > 0)
                .then(|| settings.retention_max_bytes / settings.cores.max(1) as u64);
            // Stores other than the own one keep what they have within the share first; the
            // own store (the newest data) gets what remains.
            let mut left = share;
            let mut dropped = false;
            for store in stores.iter().rev() {
                let keep = left;
                match store.apply_retention(now, settings.retention, keep).await {
                    Ok(r) => dropped |= r.parts > 0,
                    Err(e) => eprintln!("shard {}: retention: {e}", self.id),
                }
                left = left.map(|l| l.saturating_sub(store.total_bytes()));
            }
            if dropped {
                self.reindex_sealed();
            }
        }
        // Compactions one after another while there is work, each paced by the I/O budget,
        // for at most one interval (retention waits for the next call meanwhile; sealing never
        // waits for a compaction's lock: compaction merges without it).
        let Some(store) = self.store.borrow().clone() else {
            return false;
        };
        let started = Instant::now();
        while started.elapsed() < settings.maintenance_interval() && self.wal.borrow().is_some() {
            match store.compact_once().await {
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(e) => {
                    eprintln!("shard {}: compaction: {e}", self.id);
                    return false;
                }
            }
        }
        self.wal.borrow().is_some()
    }
}

/// Entries of one stream that a seal round hands the part encoder at a time. The encoder
/// takes entries as (timestamp, line, metadata pairs) slices, 40 bytes an entry and 32 a
/// pair: materialized for a whole round they were 18 MiB at the default heads size, on top
/// of the heads themselves. By pieces, a round holds at most this many at once.
const SEAL_PIECE_ENTRIES: usize = 16 << 10;

/// Sorts and groups the taken heads and encodes one part per (tenant, partition). Runs off
/// the core.
fn encode_sealing_set(
    set: &SealingSet,
    opts: &PartWriterOptions,
    partition_ns: i64,
) -> Result<Vec<NewPart>, crate::chunk::ChunkError> {
    // Each head's entries in time order: 4 bytes an entry.
    let orders: Vec<Vec<u32>> = set.heads.iter().map(|h| h.time_order()).collect();
    // (tenant, partition start) -> the heads with entries in that partition, and which.
    type Members = Vec<(usize, std::ops::Range<usize>)>;
    let mut groups: std::collections::BTreeMap<(&str, TimestampNs), Members> =
        std::collections::BTreeMap::new();
    for (k, (h, order)) in set.heads.iter().zip(&orders).enumerate() {
        let partition_of = |i: u32| paths::partition_start(h.ts(i as usize), partition_ns);
        let mut start = 0;
        while start < order.len() {
            let p = partition_of(order[start]);
            let len = order[start..]
                .iter()
                .take_while(|&&i| partition_of(i) == p)
                .count();
            groups
                .entry((h.tenant.as_str(), p))
                .or_default()
                .push((k, start..start + len));
            start += len;
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((_, partition_start), mut members) in groups {
        // A part lists its streams by ascending id.
        members.sort_by_key(|(k, _)| set.heads[*k].id);
        let mut encoder = PartEncoder::new(opts)?;
        let (mut entries, mut min_ts, mut max_ts) = (0u64, TimestampNs::MAX, TimestampNs::MIN);
        for (k, range) in members {
            let head = &set.heads[k];
            let order = &orders[k][range];
            entries += order.len() as u64;
            min_ts = min_ts.min(head.ts(order[0] as usize));
            max_ts = max_ts.max(head.ts(order[order.len() - 1] as usize));
            add_in_pieces(&mut encoder, head, order)?;
        }
        let mut bytes = encoder.take_ready();
        bytes.extend_from_slice(&encoder.finish()?);
        out.push(NewPart {
            partition_start,
            bytes,
            level: 0,
            entries,
            min_ts,
            max_ts,
        });
    }
    Ok(out)
}

/// Gives `encoder` the entries `order` of `head` (a run in time order), a piece at a time.
/// A piece that is not the stream's last leaves its last block to the next one (see
/// [`PartEncoder::add`]), so the blocks are those of the run given whole.
fn add_in_pieces(
    encoder: &mut PartEncoder,
    head: &StreamHead,
    order: &[u32],
) -> Result<(), crate::chunk::ChunkError> {
    let mut from = 0;
    let mut want = SEAL_PIECE_ENTRIES;
    loop {
        let to = (from + want).min(order.len());
        let last = to == order.len();
        let piece = &order[from..to];
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for &i in piece {
            pairs.extend(head.entry(i as usize).metadata.iter());
        }
        let mut at = 0;
        let entries: Vec<EntryInput<'_>> = piece
            .iter()
            .map(|&i| {
                let e = head.entry(i as usize);
                let md = &pairs[at..at + e.metadata.len()];
                at += md.len();
                (e.ts, e.line, md)
            })
            .collect();
        let written = encoder.add(
            &StreamBlockInput {
                stream_id: head.id,
                tenant: &head.tenant,
                labels: &head.labels,
                entries: &entries,
            },
            last,
        )?;
        if last {
            return Ok(());
        }
        if written == 0 {
            // The piece is shorter than one block: take longer ones from now on, so that a
            // stream of short lines is not given its blocks' entries again and again.
            want *= 2;
        } else {
            from += written;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{PartReader, encode_part};
    use crate::model::Labels;

    const DAY_NS: i64 = 86_400 * 1_000_000_000;

    /// Heads of corpus lines: a large stream out of time order, with metadata on some
    /// entries, spanning two days (two partitions), and a few small streams.
    fn heads() -> Vec<StreamHead> {
        let text = std::fs::read_to_string(crate::testing::corpus_dir().join("HDFS_2k.log"))
            .expect("corpus file");
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (s, n) in [(0u64, 3 * SEAL_PIECE_ENTRIES + 123), (1, 5), (2, 700)] {
            let labels = Labels::from_pairs([("job", format!("seal-{s}"))]);
            let id = crate::model::stream_hash("fake", &labels);
            let mut h = StreamHead::new(id, "fake", labels);
            for i in 0..n {
                // Two days, and every seventh entry a little late.
                let ts = DAY_NS - 40_000_000_000 + (i as i64) * 3_000_000
                    - (i % 7 == 0) as i64 * 5_000_000;
                let line = lines[i % lines.len()];
                if i % 3 == 0 {
                    h.push(ts, line, &[("trace_id", &format!("{i:x}")), ("pid", "7")]);
                } else {
                    h.push(ts, line, &[]);
                }
            }
            out.push(h);
        }
        out
    }

    /// The parts of a round given by pieces are, byte for byte, the parts of the same entries
    /// given whole: the same blocks, blooms and metadata.
    #[test]
    fn a_round_encoded_by_pieces_writes_the_parts_of_the_round_given_whole() {
        let set = SealingSet::new(heads(), None);
        // Blocks far shorter than a piece, and blocks longer than one (a piece then writes
        // nothing and the next is longer).
        for (block_bytes_target, blocks_more_than) in [(64 << 10, 3 * 2), (4 << 20, 1)] {
            pieces_match_the_whole_round(&set, block_bytes_target, blocks_more_than);
        }
    }

    fn pieces_match_the_whole_round(
        set: &SealingSet,
        block_bytes_target: usize,
        blocks_more_than: usize,
    ) {
        let opts = PartWriterOptions {
            zstd_level: 1,
            block_bytes_target,
            ..PartWriterOptions::default()
        };
        let parts = encode_sealing_set(set, &opts, DAY_NS).expect("encoded");
        assert_eq!(parts.len(), 2, "one part per day");

        for part in &parts {
            // The same partition's entries, materialized whole, and encoded at once.
            let orders: Vec<Vec<u32>> = set.heads.iter().map(|h| h.time_order()).collect();
            let mut pairs: Vec<Vec<(&str, &str)>> = Vec::new();
            for (h, o) in set.heads.iter().zip(&orders) {
                let mut mine = Vec::new();
                for &i in o {
                    mine.extend(h.entry(i as usize).metadata.iter());
                }
                pairs.push(mine);
            }
            let mut entries: Vec<Vec<EntryInput<'_>>> = Vec::new();
            for ((h, o), p) in set.heads.iter().zip(&orders).zip(&pairs) {
                let mut at = 0;
                let mut mine = Vec::new();
                for &i in o {
                    let e = h.entry(i as usize);
                    let md = &p[at..at + e.metadata.len()];
                    at += md.len();
                    if paths::partition_start(e.ts, DAY_NS) == part.partition_start {
                        mine.push((e.ts, e.line, md));
                    }
                }
                entries.push(mine);
            }
            let inputs: Vec<StreamBlockInput<'_>> = set
                .heads
                .iter()
                .zip(&entries)
                .map(|(h, e)| StreamBlockInput {
                    stream_id: h.id,
                    tenant: &h.tenant,
                    labels: &h.labels,
                    entries: e,
                })
                .collect();
            let whole = encode_part(&inputs, &opts).expect("encoded whole");
            assert!(
                part.bytes == whole,
                "part of {} differs",
                part.partition_start
            );
            let n: usize = entries.iter().map(Vec::len).sum();
            assert_eq!(part.entries, n as u64);
            let reader =
                PartReader::open(&part.bytes, std::path::Path::new("sealed")).expect("readable");
            assert!(
                reader.blocks().len() > blocks_more_than,
                "the large stream spans several blocks in each part"
            );
        }
        let total: u64 = parts.iter().map(|p| p.entries).sum();
        let held: usize = set.heads.iter().map(|h| h.len()).sum();
        assert_eq!(total, held as u64, "every entry once");
    }
}
