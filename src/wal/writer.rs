//! The writer: appends copied into an aligned commit buffer, a committer task that writes
//! and `fdatasync`s each buffer in order, and the poisoning that follows any failure.
//!
//! An append copies its record into the filling buffer at once (so seqs follow call order)
//! and waits on that buffer's completion. The committer task takes the filling buffer when it
//! holds `commit_bytes_max` bytes or `commit_interval` after its first record, whichever is
//! first, pads it to whole blocks and writes it with one O_DIRECT write plus one `fdatasync`.
//! While that is in flight new appends fill the next buffer. Commits complete strictly in
//! order, and the waiters of one commit are woken in seq order.
//!
//! Commit buffers are aligned [`IoBuf`]s of the commit size, recycled: a written buffer goes
//! back to a small spare list and the next commit fills it again, so there is no allocation
//! per commit. (On the real disk the write copies the commit into glommio's I/O arena, memory
//! registered once with io_uring; a copy of at most `commit_bytes_max` per commit is small
//! next to the `fdatasync` it waits for.) A record larger than the usual buffer gets a buffer
//! of its own size, which is dropped after its write.
//!
//! fsyncgate: if a write, an `fdatasync` or a segment rollover fails, the log is poisoned:
//! that commit's waiters, everything buffered behind it and every later append get
//! [`WalError::Poisoned`] naming the file and the OS error. Nothing is retried.
//!
//! Dropping a pending `append` future does not withdraw its record: it is committed anyway.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use super::record::{RECORD_HEADER_BYTES, encode_record_into};
use super::replay::{ReplayReport, replay};
use super::segment::segment_files;
use super::space::{self, Room, SPARE_RETRY_MAX, SPARE_RETRY_MIN, Space};
use super::storage::{SegmentFile, WalDir};
use super::{RECORD_BODY_BYTES_MAX, SEGMENT_HEADER_BYTES, WalError, WalOptions, round_up_block};
use crate::metrics::{Counter, DISK_LATENCY_BUCKETS, Histogram, HistogramSnapshot};
use crate::runtime::wake::{Event, Signal};
use crate::storage::{Disk, FaultPlan, IoBuf};

/// Record bytes buffered but not yet written before appends wait. Bounds a shard's memory
/// when the disk falls behind: 64 default-sized commits, or four maximal records.
pub const COMMIT_QUEUE_BYTES_MAX: usize = 64 << 20;

/// Told the last seq of each commit that became durable (see [`Wal::set_durable_hook`]).
pub type DurableHook = Box<dyn Fn(u64)>;

/// Written commit buffers kept for reuse: one being filled while one is written needs two;
/// more would only hold memory after a burst.
const SPARE_COMMIT_BUFFERS_MAX: usize = 2;

/// A shard's write-ahead log. Not `Send`: it lives on its shard's executor.
pub struct Wal {
    inner: Rc<Inner>,
}

struct Inner {
    dir: WalDir,
    opts: WalOptions,
    st: RefCell<State>,
    /// Wakes the committer: a buffer was started or sealed, or the log is closing.
    wake: Signal,
    /// Wakes appends waiting for room in the commit queue or on the disk.
    room: Event,
    /// Wakes the preparer of the next segment (see [`super::space`]).
    prepare: Signal,
    /// Completed when the committer task has exited and closed its segment.
    exited: Completion,
    /// Completed when the preparer task has exited and removed its spare.
    preparer_exited: Completion,
    /// Called with the last seq of every commit that became durable, in seq order, as its
    /// appends are resolved (see [`Wal::set_durable_hook`]).
    durable_hook: RefCell<Option<DurableHook>>,
    stats: Stats,
}

struct State {
    next_seq: u64,
    durable_seq: u64,
    filling: Option<Pending>,
    sealed: VecDeque<Pending>,
    /// Record bytes in `filling` and `sealed`.
    queued_bytes: usize,
    poisoned: Option<String>,
    closing: bool,
    /// Written buffers of the usual capacity, ready to be filled again.
    spare_buffers: Vec<IoBuf>,
    /// Whether a segment is active, and the bytes left in it (see [`super::space`]).
    active: bool,
    active_left: u64,
    /// The next segment, prepared ahead of need.
    spare_segment: Option<SegmentFile>,
    /// Whether the next segment could be prepared.
    space: Space,
    /// First seqs of the segment files on disk, oldest first.
    segments: VecDeque<u64>,
}

impl State {
    fn room(&self) -> Room {
        Room {
            active: self.active,
            active_left: self.active_left,
            spare: self.spare_segment.is_some(),
        }
    }
}

/// One commit being filled or waiting to be written.
struct Pending {
    /// Its length is its capacity while it fills.
    buf: IoBuf,
    len: usize,
    first_seq: u64,
    last_seq: u64,
    opened: Instant,
    done: Rc<Completion>,
}

struct Stats {
    bytes_written: Counter,
    records: Counter,
    commits: Counter,
    segments_created: Counter,
    /// Spare segments prepared, and tries that failed (no space, or the file system refused).
    spares_prepared: Counter,
    spare_failures: Counter,
    fsync: Histogram,
    /// Each commit's write and fdatasync together, from the write's submission to the
    /// sync's completion as this core sees it.
    commit: Histogram,
    torn_tails_truncated: u64,
}

/// A snapshot of a log's counters.
#[derive(Clone, Debug, PartialEq)]
pub struct WalStats {
    /// Bytes written by commits, padding included (segment headers excluded).
    pub bytes_written: u64,
    pub records: u64,
    pub commits: u64,
    /// Segments created since open, the first one included.
    pub segments_created: u64,
    pub fsync_latency: HistogramSnapshot,
    /// Write plus fdatasync of each commit. The direct write is issued by an io_uring
    /// worker thread on the core's CPU, so it also waits for that CPU: at 80% push load
    /// 0.2 ms fsyncs sat in 3-6 ms commits, which the fsync histogram alone did not show.
    pub commit_latency: HistogramSnapshot,
    /// Torn tails cut off by the replay that preceded open.
    pub torn_tails_truncated: u64,
    /// Highest seq whose commit is durable (0 if none since open).
    pub durable_seq: u64,
    /// The seq the next append gets.
    pub next_seq: u64,
    /// Why the log stopped accepting records, if it did.
    pub poisoned: Option<String>,
    /// Why the next segment cannot be prepared, while that lasts: appends that do not fit
    /// the active segment are refused meanwhile.
    pub no_space: Option<String>,
    /// Whether a segment is active (a log opened without space for one takes no records).
    pub writable: bool,
    pub spares_prepared: u64,
    pub spare_failures: u64,
    /// Segment files on disk, and the bytes they (and the spare) reserve.
    pub segment_files: u64,
    pub disk_bytes: u64,
}

struct ActiveSegment {
    file: SegmentFile,
    /// Where the next commit goes.
    write_pos: u64,
}

impl Wal {
    /// Replays `dir` on `disk` (creating it if missing), calling `on_record` for every intact
    /// record in seq order, then starts a new segment whose first seq follows the last
    /// replayed one. Must run inside a glommio executor; the committer task is spawned on the
    /// current task queue.
    pub async fn open(
        disk: &Disk,
        dir: &Path,
        opts: WalOptions,
        repair: bool,
        mut on_record: impl FnMut(u64, &[u8]) -> Result<(), String>,
    ) -> Result<(Wal, ReplayReport), WalError> {
        opts.validate()?;
        disk.create_dir_all_durable(dir)
            .await
            .map_err(|source| WalError::Io {
                path: dir.to_path_buf(),
                op: "creating the WAL directory",
                source,
            })?;
        let wal_dir = WalDir::open(disk, dir)?;
        let mut report = replay(&wal_dir, repair, Some(opts.shard_id), &mut on_record).await?;
        report.next_seq = report.next_seq.max(opts.first_seq_min);
        let mut segments: VecDeque<u64> = segment_files(disk, dir)?
            .into_iter()
            .map(|(first, _)| first)
            .collect();
        // The first segment, from a spare like every later one. Too little space for it is
        // not fatal: the log opens taking no records (the shard serves queries read-only)
        // and the preparer keeps trying.
        let first = match space::create_spare(&wal_dir, &opts, 0).await {
            Ok(spare) => space::activate(&wal_dir, &opts, spare, report.next_seq).await,
            Err(e) => Err(e),
        };
        let (active, space) = match first {
            Ok(file) => {
                if segments.back() != Some(&report.next_seq) {
                    segments.push_back(report.next_seq);
                }
                (Some(file), Space::Unknown)
            }
            Err(e) if e.no_space => (None, Space::Failed(e.reason)),
            Err(e) => {
                return Err(WalError::Io {
                    path: dir.to_path_buf(),
                    op: "creating the first WAL segment",
                    source: std::io::Error::other(e.reason),
                });
            }
        };
        let inner = Rc::new(Inner {
            dir: wal_dir,
            st: RefCell::new(State {
                next_seq: report.next_seq,
                durable_seq: 0,
                filling: None,
                sealed: VecDeque::new(),
                queued_bytes: 0,
                poisoned: None,
                closing: false,
                spare_buffers: Vec::new(),
                active: active.is_some(),
                active_left: opts.segment_bytes_max - SEGMENT_HEADER_BYTES as u64,
                spare_segment: None,
                space,
                segments,
            }),
            opts,
            wake: Signal::default(),
            room: Event::default(),
            prepare: Signal::default(),
            exited: Completion::default(),
            preparer_exited: Completion::default(),
            durable_hook: RefCell::new(None),
            stats: Stats {
                bytes_written: Counter::default(),
                records: Counter::default(),
                commits: Counter::default(),
                segments_created: Counter::default(),
                spares_prepared: Counter::default(),
                spare_failures: Counter::default(),
                fsync: Histogram::new(DISK_LATENCY_BUCKETS),
                commit: Histogram::new(DISK_LATENCY_BUCKETS),
                torn_tails_truncated: report.torn_tails_truncated,
            },
        });
        if active.is_some() {
            inner.stats.segments_created.inc();
        }
        let segment = active.map(|file| ActiveSegment {
            file,
            write_pos: SEGMENT_HEADER_BYTES as u64,
        });
        glommio::spawn_local(preparer(inner.clone())).detach();
        glommio::spawn_local(committer(inner.clone(), segment)).detach();
        Ok((Wal { inner }, report))
    }

    /// Appends one record and resolves with its seq once it is durable (written and
    /// `fdatasync`ed). Seqs follow the order of the calls.
    pub async fn append(&self, body: &[u8]) -> Result<u64, WalError> {
        self.append_with(body, |_| {}).await
    }

    /// Sets the function told, in seq order, the last seq of each commit that became durable:
    /// just after that commit's waiters are woken, before any of them resumes (tasks it
    /// wakes run after them). It runs on the committer task, so it runs even
    /// if an appending task is dropped while it waits: whatever it does for a durable record
    /// is never skipped and never reordered.
    pub fn set_durable_hook(&self, hook: DurableHook) {
        *self.inner.durable_hook.borrow_mut() = Some(hook);
    }

    /// [`Wal::append`], calling `assigned` with the record's seq as soon as it has one, before
    /// waiting for durability (so the caller can queue work for the durable hook).
    pub async fn append_with(
        &self,
        body: &[u8],
        assigned: impl FnOnce(u64),
    ) -> Result<u64, WalError> {
        if body.len() > RECORD_BODY_BYTES_MAX {
            return Err(WalError::RecordTooLarge {
                len: body.len(),
                max: RECORD_BODY_BYTES_MAX,
            });
        }
        let record_bytes = RECORD_HEADER_BYTES + body.len();
        self.wait_for_room(record_bytes).await?;
        let inner = &self.inner;
        let (seq, done, wake) = {
            let mut st = inner.st.borrow_mut();
            let mut wake = false;
            if st
                .filling
                .as_ref()
                .is_some_and(|f| f.len + record_bytes > f.buf.len())
            {
                let full = st.filling.take().expect("checked just above");
                st.sealed.push_back(full);
                wake = true;
            }
            if st.filling.is_none() {
                let usual = inner.usual_buffer_bytes();
                let capacity = usual.max(round_up_block(record_bytes));
                let spare = if capacity == usual {
                    st.spare_buffers.pop()
                } else {
                    None
                };
                let buf = spare.unwrap_or_else(|| inner.dir.disk().alloc(capacity));
                let first_seq = st.next_seq;
                st.filling = Some(Pending {
                    buf,
                    len: 0,
                    first_seq,
                    last_seq: 0,
                    opened: Instant::now(),
                    done: Rc::new(Completion::default()),
                });
                wake = true;
            }
            let seq = st.next_seq;
            st.next_seq += 1;
            st.queued_bytes += record_bytes;
            let f = st.filling.as_mut().expect("made above");
            let n = encode_record_into(seq, body, &mut f.buf[f.len..]);
            debug_assert_eq!(n, record_bytes);
            f.len += n;
            f.last_seq = seq;
            let done = f.done.clone();
            if f.len >= inner.opts.commit_bytes_max {
                let full = st.filling.take().expect("just filled");
                st.sealed.push_back(full);
                wake = true;
            }
            (seq, done, wake)
        };
        assigned(seq);
        if wake {
            inner.wake.notify();
        }
        match done.wait().await {
            Ok(()) => Ok(seq),
            Err(reason) => Err(WalError::Poisoned { reason }),
        }
    }

    /// Waits while the commit queue is full, or while the record may not fit the space the
    /// log has prepared; fails if the log is poisoned or closing, or if it has no space
    /// (the preparer failed: see [`super::space`]).
    async fn wait_for_room(&self, record_bytes: usize) -> Result<(), WalError> {
        loop {
            {
                let st = self.inner.st.borrow();
                if let Some(reason) = &st.poisoned {
                    return Err(WalError::Poisoned {
                        reason: reason.clone(),
                    });
                }
                if st.closing {
                    return Err(WalError::Closed);
                }
                let queue_ok = st.queued_bytes == 0
                    || st.queued_bytes + record_bytes <= COMMIT_QUEUE_BYTES_MAX;
                let commits = st.sealed.len() + usize::from(st.filling.is_some());
                let space_ok = space::fits(
                    st.room(),
                    &self.inner.opts,
                    st.queued_bytes,
                    commits,
                    record_bytes,
                );
                if queue_ok && space_ok {
                    return Ok(());
                }
                if !space_ok && let Space::Failed(reason) = &st.space {
                    return Err(WalError::NoSpace {
                        reason: reason.clone(),
                    });
                }
            }
            self.inner.room.wait().await;
        }
    }

    pub fn stats(&self) -> WalStats {
        let s = &self.inner.stats;
        let st = self.inner.st.borrow();
        WalStats {
            bytes_written: s.bytes_written.get(),
            records: s.records.get(),
            commits: s.commits.get(),
            segments_created: s.segments_created.get(),
            fsync_latency: s.fsync.snapshot(),
            commit_latency: s.commit.snapshot(),
            torn_tails_truncated: s.torn_tails_truncated,
            durable_seq: st.durable_seq,
            next_seq: st.next_seq,
            poisoned: st.poisoned.clone(),
            no_space: match &st.space {
                Space::Failed(reason) => Some(reason.clone()),
                _ => None,
            },
            writable: st.active || st.spare_segment.is_some(),
            spares_prepared: s.spares_prepared.get(),
            spare_failures: s.spare_failures.get(),
            segment_files: st.segments.len() as u64,
            disk_bytes: (st.segments.len() as u64 + u64::from(st.spare_segment.is_some()))
                * self.inner.opts.segment_bytes_max,
        }
    }

    /// Fault injection for tests and crash drills: makes later writes or syncs fail. It is
    /// the disk's plan, shared with everything else on that [`Disk`] handle.
    pub fn faults(&self) -> &FaultPlan {
        self.inner.dir.disk().faults()
    }

    /// Graceful shutdown: commits what is buffered, waits for it to be durable and closes the
    /// segment. Later appends get [`WalError::Closed`]. Fails if the log is poisoned.
    pub async fn close(&self) -> Result<(), WalError> {
        self.inner.st.borrow_mut().closing = true;
        self.inner.wake.notify();
        self.inner.prepare.notify();
        self.inner.room.notify_all();
        let _ = self.inner.exited.wait().await;
        let _ = self.inner.preparer_exited.wait().await;
        match &self.inner.st.borrow().poisoned {
            Some(reason) => Err(WalError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checkpoint: deletes the segments all of whose records have a seq of at most `seq`
    /// (their data is durable elsewhere now). The segment being written is never deleted.
    /// Returns how many files were removed.
    pub async fn remove_segments_through(&self, seq: u64) -> Result<u64, WalError> {
        let segments = segment_files(self.inner.dir.disk(), self.inner.dir.path())?;
        let mut removed = 0;
        for pair in segments.windows(2) {
            let (next_first, _) = pair[1];
            if next_first > seq.saturating_add(1) {
                break;
            }
            self.inner.dir.remove(&pair[0].1).await?;
            removed += 1;
        }
        if removed > 0 {
            self.inner.dir.sync().await?;
            let mut st = self.inner.st.borrow_mut();
            for _ in 0..removed {
                st.segments.pop_front();
            }
        }
        Ok(removed)
    }

    /// First seqs of the segment files on disk, oldest first.
    pub fn segment_first_seqs(&self) -> Vec<u64> {
        self.inner.st.borrow().segments.iter().copied().collect()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Lets the committer write what is buffered and exit instead of idling forever.
        self.inner.st.borrow_mut().closing = true;
        self.inner.wake.notify();
        self.inner.prepare.notify();
        self.inner.room.notify_all();
    }
}

impl Inner {
    /// The capacity of a commit buffer, unless one record needs more.
    fn usual_buffer_bytes(&self) -> usize {
        round_up_block(self.opts.commit_bytes_max)
    }

    fn poison(&self, reason: String) {
        let pending: Vec<Pending> = {
            let mut st = self.st.borrow_mut();
            if st.poisoned.is_none() {
                // The operator must hear of this at once: the shard now refuses every write.
                eprintln!(
                    "shardlog: WAL of shard {} stopped accepting writes: {reason}",
                    self.opts.shard_id
                );
            }
            st.poisoned.get_or_insert_with(|| reason.clone());
            st.queued_bytes = 0;
            let filling = st.filling.take();
            st.sealed.drain(..).chain(filling).collect()
        };
        for p in pending {
            p.done.complete(Err(reason.clone()));
        }
        self.room.notify_all();
        self.prepare.notify();
    }

    /// The next buffer to commit, waiting for one to fill or age; `None` once closing (with
    /// nothing left) or poisoned.
    async fn next_commit(&self) -> Option<Pending> {
        loop {
            let due = {
                let mut st = self.st.borrow_mut();
                if st.poisoned.is_some() {
                    return None;
                }
                if let Some(p) = st.sealed.pop_front() {
                    return Some(p);
                }
                match &st.filling {
                    Some(f) => {
                        let due = f.opened + self.opts.commit_interval;
                        if st.closing || Instant::now() >= due {
                            return st.filling.take();
                        }
                        Some(due)
                    }
                    None if st.closing => return None,
                    None => None,
                }
            };
            match due {
                Some(due) => {
                    let nap = glommio::timer::sleep(due.saturating_duration_since(Instant::now()));
                    futures_lite::future::or(self.wake.wait(), nap).await;
                }
                None => self.wake.wait().await,
            }
        }
    }
}

async fn committer(inner: Rc<Inner>, mut segment: Option<ActiveSegment>) {
    while let Some(p) = inner.next_commit().await {
        let Pending {
            mut buf,
            len,
            first_seq,
            last_seq,
            done,
            ..
        } = p;
        match write_commit(&inner, &mut segment, &mut buf, len, first_seq).await {
            Ok(()) => {
                {
                    let mut st = inner.st.borrow_mut();
                    st.durable_seq = last_seq;
                    st.queued_bytes -= len;
                    if buf.len() == inner.usual_buffer_bytes()
                        && st.spare_buffers.len() < SPARE_COMMIT_BUFFERS_MAX
                    {
                        st.spare_buffers.push(buf);
                    }
                }
                inner.stats.records.add(last_seq - first_seq + 1);
                inner.stats.commits.inc();
                // Waiters first: the hook may wake a task that should run after them (the
                // shard's applier, see `Shard::on_durable`). Both happen before this task
                // yields, so a waiter never runs before the hook has been told.
                done.complete(Ok(()));
                if let Some(hook) = inner.durable_hook.borrow().as_ref() {
                    hook(last_seq);
                }
                inner.room.notify_all();
            }
            Err(reason) => {
                done.complete(Err(reason.clone()));
                inner.poison(reason);
                break;
            }
        }
    }
    // Every commit was fdatasynced; an error closing the descriptor cannot lose data.
    if let Some(segment) = segment {
        let _ = segment.file.close().await;
    }
    inner.exited.complete(Ok(()));
    inner.prepare.notify();
}

/// Keeps a spare segment ready (see [`super::space`]) until the log closes or is poisoned,
/// then removes the spare it holds.
async fn preparer(inner: Rc<Inner>) {
    let mut backoff = SPARE_RETRY_MIN;
    // Spare 0 was the first segment.
    let mut n = 1;
    loop {
        // While closing, the committer may still need a spare for what is buffered: stop
        // only once it has exited.
        let (stop, needed) = {
            let st = inner.st.borrow();
            (
                st.poisoned.is_some() || (st.closing && inner.exited.is_done()),
                st.spare_segment.is_none(),
            )
        };
        if stop {
            break;
        }
        if !needed {
            inner.prepare.wait().await;
            continue;
        }
        n += 1;
        match space::create_spare(&inner.dir, &inner.opts, n).await {
            Ok(file) => {
                let mut st = inner.st.borrow_mut();
                if let Space::Failed(why) = &st.space {
                    eprintln!(
                        "shardlog: WAL of shard {} has space again (it had not: {why})",
                        inner.opts.shard_id
                    );
                }
                st.spare_segment = Some(file);
                st.space = Space::Ready;
                backoff = SPARE_RETRY_MIN;
                inner.stats.spares_prepared.inc();
            }
            Err(e) => {
                {
                    let mut st = inner.st.borrow_mut();
                    if st.space != Space::Failed(e.reason.clone()) {
                        eprintln!(
                            "shardlog: WAL of shard {} cannot prepare its next segment, so it \
                             takes no records beyond the current one until it can: {}",
                            inner.opts.shard_id, e.reason
                        );
                    }
                    st.space = Space::Failed(e.reason);
                }
                inner.stats.spare_failures.inc();
                // Appends waiting for space are refused now, not left waiting.
                inner.room.notify_all();
                futures_lite::future::or(glommio::timer::sleep(backoff), inner.prepare.wait())
                    .await;
                backoff = (backoff * 2).min(SPARE_RETRY_MAX);
                continue;
            }
        }
        // A commit may be waiting for this spare, appends for the room it makes.
        inner.wake.notify();
        inner.room.notify_all();
    }
    let spare = inner.st.borrow_mut().spare_segment.take();
    if let Some(file) = spare {
        let path = file.path().to_path_buf();
        let _ = file.close().await;
        let _ = inner.dir.remove(&path).await;
    }
    inner.preparer_exited.complete(Ok(()));
}

/// Pads, writes and syncs one commit (the first `len` bytes of `buf`), rolling the segment
/// over first if it does not fit. `buf` keeps its capacity as its length, for reuse.
async fn write_commit(
    inner: &Inner,
    segment: &mut Option<ActiveSegment>,
    buf: &mut IoBuf,
    len: usize,
    first_seq: u64,
) -> Result<(), String> {
    let capacity = buf.len();
    let padded = round_up_block(len);
    buf[len..padded].fill(0);
    buf.set_len(padded);
    let result = write_padded_commit(inner, segment, buf, first_seq).await;
    buf.set_len(capacity);
    result
}

async fn write_padded_commit(
    inner: &Inner,
    segment: &mut Option<ActiveSegment>,
    buf: &IoBuf,
    first_seq: u64,
) -> Result<(), String> {
    let padded = buf.len();
    let full = segment.as_ref().is_none_or(|s| {
        s.write_pos > SEGMENT_HEADER_BYTES as u64
            && s.write_pos + padded as u64 > inner.opts.segment_bytes_max
    });
    if full {
        let file = next_segment(inner, first_seq).await?;
        if let Some(old) = segment.replace(ActiveSegment {
            file,
            write_pos: SEGMENT_HEADER_BYTES as u64,
        }) {
            // The old segment's commits are all synced; closing it cannot lose data.
            let _ = old.file.close().await;
        }
        inner.stats.segments_created.inc();
    }
    let segment = segment.as_mut().expect("made above");
    let path = segment.file.path().to_path_buf();
    let started = Instant::now();
    segment
        .file
        .write_all(buf, segment.write_pos)
        .await
        .map_err(|e| failure("write", &path, segment.write_pos, &e))?;
    let took = segment
        .file
        .sync()
        .await
        .map_err(|e| failure("fdatasync", &path, segment.write_pos, &e))?;
    inner.stats.fsync.observe(took.as_secs_f64());
    inner.stats.commit.observe(started.elapsed().as_secs_f64());
    inner.stats.bytes_written.add(padded as u64);
    segment.write_pos += padded as u64;
    inner.st.borrow_mut().active_left = inner
        .opts
        .segment_bytes_max
        .saturating_sub(segment.write_pos);
    Ok(())
}

/// Starts the segment of `first_seq` from the spare, waiting for the preparer if it is still
/// making one. Appends were taken only while their commits fit the room prepared ahead, so
/// the spare is there when a commit needs it. Failing to start it (a write or a sync of its
/// header, a rename) is a failure of the log's device and stops the log, as a failed commit
/// does; so does finding no spare after the preparer failed, which the admission of appends
/// should make impossible.
async fn next_segment(inner: &Inner, first_seq: u64) -> Result<SegmentFile, String> {
    loop {
        let spare = inner.st.borrow_mut().spare_segment.take();
        if let Some(spare) = spare {
            let file = space::activate(&inner.dir, &inner.opts, spare, first_seq)
                .await
                .map_err(|e| format!("starting a new WAL segment: {}", e.reason))?;
            inner.prepare.notify();
            let mut st = inner.st.borrow_mut();
            st.active = true;
            st.active_left = inner.opts.segment_bytes_max - SEGMENT_HEADER_BYTES as u64;
            if st.segments.back() != Some(&first_seq) {
                st.segments.push_back(first_seq);
            }
            return Ok(file);
        }
        if let Space::Failed(why) = &inner.st.borrow().space {
            return Err(format!("no next WAL segment could be prepared: {why}"));
        }
        futures_lite::future::or(inner.wake.wait(), glommio::timer::sleep(SPARE_RETRY_MAX)).await;
    }
}

fn failure(op: &str, path: &Path, offset: u64, e: &io::Error) -> String {
    format!(
        "{op} of {} at byte {offset} failed: {e}; the data of this commit and of every \
         unsynced one may be lost, so nothing more is accepted",
        path.display()
    )
}

/// The outcome of one commit, awaited by all of its appends.
#[derive(Default)]
struct Completion {
    result: RefCell<Option<Result<(), String>>>,
    wakers: RefCell<Vec<Waker>>,
}

impl Completion {
    fn is_done(&self) -> bool {
        self.result.borrow().is_some()
    }

    fn complete(&self, result: Result<(), String>) {
        assert!(self.result.borrow().is_none(), "a commit completes once");
        *self.result.borrow_mut() = Some(result);
        // Wakers were registered in append order, which is seq order.
        for w in std::mem::take(&mut *self.wakers.borrow_mut()) {
            w.wake();
        }
    }

    async fn wait(&self) -> Result<(), String> {
        poll_fn(|cx| match &*self.result.borrow() {
            Some(r) => Poll::Ready(r.clone()),
            None => {
                self.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}
