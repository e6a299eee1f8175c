//! The thread-per-core runtime: one pinned glommio executor per shard, the channel mesh
//! between them, readiness and graceful shutdown.
//!
//! Which question it answers: "which core does what, and how do cores talk?" Each executor
//! has three task queues (ingest with high shares, query lower, background lowest), owns one
//! [`Shard`], runs its own listeners (SO_REUSEPORT) and reaches the other shards only through
//! [`Core::send_batch`] and [`Core::fan_out`], which carry whole batches and whole requests
//! over one bounded mesh. Shared across threads are only the configuration and a few atomics
//! for readiness and shutdown ([`Lifecycle`]).

pub mod allocator;
pub mod courtesy;
pub mod failstop;
pub mod health;
pub mod mesh;
pub mod pacer;
pub mod shutdown;
pub mod signals;
pub mod wake;

pub use mesh::MeshMsg;
pub use shutdown::Shutdown;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::{CpuSet, Latency, LocalExecutorPoolBuilder, PoolPlacement, Shares, TaskQueueHandle};
use mesh::MeshSeats;

use crate::config::{Config, MESH_CHANNEL_CAPACITY};
use crate::model::Batch;
use crate::shard::{AppendError, Protocol, Refusal, Shard, ShardAnswer, ShardRequest};
use mesh::{Replies, Reply};

/// How long a stopping shard waits for the batches it sent, and for the other shards to
/// drain, before it closes its WAL anyway.
const STOP_BATCHES_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a task may run before `yield_if_needed` gives the reactor a turn, when only
/// latency-indifferent work (sealing, compaction) is runnable. Glommio takes the smallest
/// latency of the task queues that have runnable tasks, and 100 ms when none asks for one:
/// a push whose bytes arrive while a merge runs has no runnable task yet (its socket is
/// polled by the reactor), so with the default it waited for up to 100 ms of merging. The
/// ingest queue's own latency bounds it instead.
const PREEMPT_TIMER: Duration = Duration::from_millis(1);

/// Each core's pool of I/O buffers registered with io_uring (pinned, so resident from the
/// start). Direct writes and reads take their buffer from it when it has room and fall back
/// to an aligned allocation when it has not. The largest are a WAL commit and a chunk of a
/// part write, 1 MiB each: glommio's default of 10 MiB held 6 MiB more than a core's writes
/// and reads in flight at full ingest use.
const IO_MEMORY_BYTES: usize = 4 << 20;

/// Process-wide state shared by all executors: only atomics, no locks.
pub struct Lifecycle {
    shards: usize,
    /// Shards that finished WAL recovery.
    recovered: AtomicUsize,
    /// Set once by a signal (or a fatal error): stop accepting and drain.
    stopping: AtomicBool,
    /// Shards whose listeners and in-flight batches have drained; WALs close after all have.
    drained: AtomicUsize,
    /// Set when a shard failed to start: the others stop too and the process exits non-zero.
    failed: AtomicBool,
    /// Cores whose listeners are all bound; the one that completes the count says so.
    listening: AtomicUsize,
    /// Every shard's health as its core last published it (see [`health`]).
    pub health: health::HealthBoard,
    /// When each core last turned, for the watchdog (see [`failstop`]).
    pub heartbeats: failstop::Heartbeats,
    /// Every tenant's ingestion rate budget, charged by every core.
    pub ingestion_rates: crate::tenants::rate::RateTable,
    /// When the server started, for uptimes (the demo API's `/stats`).
    pub started: Instant,
}

impl Lifecycle {
    fn new(shards: usize) -> Lifecycle {
        Lifecycle {
            shards,
            recovered: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            drained: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            listening: AtomicUsize::new(0),
            health: health::HealthBoard::new(shards),
            heartbeats: failstop::Heartbeats::new(shards),
            ingestion_rates: Default::default(),
            started: Instant::now(),
        }
    }

    /// `/ready`: every shard recovered and takes every write (none is recovering, read-only,
    /// out of disk or behind on sealing, or has its WAL stopped), and no shutdown is under way.
    pub fn is_ready(&self) -> bool {
        self.all_recovered() && !self.is_stopping() && self.health.all_clear()
    }

    /// Every shard finished replaying its WAL.
    pub fn all_recovered(&self) -> bool {
        self.recovered.load(Ordering::Acquire) == self.shards
    }

    /// Why the server is not ready, one line per reason (empty when it is).
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.is_stopping() {
            out.push("shutting down".to_string());
        }
        out.extend(
            self.health
                .conditions()
                .into_iter()
                .map(|(shard, c)| format!("shard {shard}: {c}")),
        );
        out
    }

    /// How a write would be refused now, before any of it reaches a shard: stopping, or the
    /// worst condition any shard has published (see [`health::HealthBoard::write_refusal`]).
    pub fn write_refusal(&self) -> Option<AppendError> {
        if self.is_stopping() {
            return Some(AppendError::new(Refusal::NotOpen, "shutting down"));
        }
        self.health.write_refusal()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}

/// Per-executor context handed to every listener and handler of that core.
pub struct Core {
    pub id: usize,
    pub shards: usize,
    pub config: Arc<Config>,
    pub lifecycle: Arc<Lifecycle>,
    pub shard: Rc<Shard>,
    senders: Senders<MeshMsg>,
    /// This core's requests to other cores that wait for a reply.
    replies: Replies,
    pub ingest_tq: TaskQueueHandle,
    pub query_tq: TaskQueueHandle,
    pub background_tq: TaskQueueHandle,
    /// Queries this core received and has not answered yet.
    pub queries: crate::query::engine::Admission,
    /// Batches this core has sent and not yet had answered; drained before WALs close.
    in_flight: Cell<usize>,
    /// Triggered on this core when it must stop accepting (mirrors the lifecycle flag, but
    /// awaitable by the listeners and connections of this core).
    pub shutdown: Shutdown,
    /// The inboxes of the tails this core received (see [`crate::tail`]).
    pub tails: Rc<crate::tail::inbox::Inboxes>,
    /// Every tenant's limits, as this core last read them.
    pub limits: crate::tenants::limits::Limits,
    /// The streams each tenant has active on this shard, for the stream limit.
    /// Each owned stream's own rate budget (`per_stream_rate_limit`).
    pub stream_rates: crate::tenants::stream_rate::StreamRates,
    /// The rules of every tenant and their alerts, shared by the cores.
    pub ruler: Arc<crate::ruler::Ruler>,
    /// Which `[[alert]]` lines each stream of this shard counts for.
    pub streaming_matches: crate::ruler::demo::StreamMatches,
}

/// One batch send in flight on a core, counted while it lives (graceful shutdown waits
/// for the count to reach zero); the core's compaction pauses meanwhile ([`courtesy`]).
struct InFlight<'a> {
    count: &'a Cell<usize>,
    _busy: courtesy::Busy,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a Cell<usize>) -> InFlight<'a> {
        count.set(count.get() + 1);
        InFlight {
            count,
            _busy: courtesy::Busy::enter(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.set(self.count.get() - 1);
    }
}

impl Core {
    /// Sends a batch to the shard that owns its streams and resolves when it is durable
    /// there. The local shard is called directly; others are reached over the mesh.
    pub async fn send_batch(
        &self,
        owner: usize,
        batch: Batch,
        protocol: Protocol,
    ) -> Result<(), AppendError> {
        debug_assert!(owner < self.shards);
        if batch.entries == 0 {
            return Ok(());
        }
        // Counted down even if the caller drops this future: a push appends its own core's
        // batch in its connection's task.
        let _in_flight = InFlight::enter(&self.in_flight);
        if owner == self.id {
            self.append_here(batch, protocol).await
        } else {
            let pending = self.replies.register();
            let msg = MeshMsg::Append {
                id: pending.id,
                batch,
                protocol,
            };
            match self.senders.send_to(owner, msg).await {
                Ok(()) => match pending.wait().await {
                    Reply::Appended(result) => result,
                    Reply::Answered(_) => unreachable!("an append is answered with Appended"),
                },
                // The peer's receiver is gone only when the process is stopping.
                Err(_) => Err(AppendError::new(
                    Refusal::NotOpen,
                    format!("shard {owner} is stopping"),
                )),
            }
        }
    }

    /// The query limits of `tenant`: the server's, with the limits file's overrides.
    pub fn query_limits(&self, tenant: &str) -> crate::config::QueryLimits {
        self.limits.query_limits(tenant, &self.config.query)
    }

    /// The query limits of a read over `scope`: for several tenants the strictest of theirs
    /// ([`crate::tenants::federation::strictest`]), as Loki's frontend takes them.
    pub fn query_limits_in(
        &self,
        scope: &crate::tenants::federation::TenantScope,
    ) -> crate::config::QueryLimits {
        let mut ids = scope.ids().iter();
        let first = self.query_limits(ids.next().expect("a scope is never empty"));
        ids.fold(first, |acc, t| {
            crate::tenants::federation::strictest(acc, self.query_limits(t))
        })
    }

    /// Appends a batch this core owns: first takes out the entries of the tenant's new
    /// streams over its active stream limit and of streams over their own rate (see
    /// [`crate::tenants::admit`]), then stores the rest. Some taken out: the refusal with
    /// Loki's text, once the rest is durable.
    async fn append_here(&self, batch: Batch, protocol: Protocol) -> Result<(), AppendError> {
        let Some(tenant) = batch.reader().ok().map(|r| r.tenant().to_string()) else {
            // A batch that does not read back is the WAL's to refuse, with its own error.
            if batch.entries > 0 {
                self.shard.append(batch, protocol).await?;
            }
            return Ok(());
        };
        // The `[[alert]]` counters read the lines in the stream limits' pass over the batch,
        // and count those stored.
        let mut counts = self
            .ruler
            .streaming
            .counting(&tenant, &self.streaming_matches);
        let checked = self.limit_streams(
            &tenant,
            batch,
            protocol,
            counts
                .as_mut()
                .map(|c| c as &mut dyn crate::tenants::admit::BatchObserver),
        );
        if checked.batch.entries > 0 {
            // An alert whose count this batch made reach its threshold is evaluated once the
            // lines are durable.
            let crossed = match counts {
                Some(counts) => {
                    counts.finish(&checked.taken_out, crate::ingest::listeners::now_ns())
                }
                None => Vec::new(),
            };
            self.shard.append(checked.batch, protocol).await?;
            for rule in crossed {
                crate::ruler::eval::evaluate_streaming(&self.ruler, rule);
            }
        }
        match checked.refusal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Checks a batch of `tenant` against its stream limits and counts what they take out;
    /// `observer` sees the batch in the same pass.
    fn limit_streams(
        &self,
        tenant: &str,
        batch: Batch,
        protocol: Protocol,
        observer: Option<&mut dyn crate::tenants::admit::BatchObserver>,
    ) -> crate::tenants::admit::Checked {
        let checked = crate::tenants::admit::check_batch(
            batch,
            &self.limits.for_tenant(tenant),
            &self.shard.active_streams,
            &self.stream_rates,
            self.shards,
            // Syslog cannot be refused per stream; its tenant's rate slows it down instead.
            !protocol.is_syslog(),
            observer,
        );
        for &(reason, entries) in &checked.discarded {
            self.shard.counters.discard_for(tenant, reason, entries);
        }
        checked
    }

    /// Asks every shard the same question, concurrently, and returns their answers. Dropping
    /// the future leaves the shards' parts running until their next check of the query's
    /// control, which the caller cancels.
    pub async fn fan_out(&self, req: ShardRequest) -> Result<Vec<ShardAnswer>, String> {
        let mut pending = Vec::with_capacity(self.shards);
        for peer in 0..self.shards {
            if peer == self.id {
                continue;
            }
            let reply = self.replies.register();
            let msg = MeshMsg::Query {
                id: reply.id,
                req: req.clone(),
            };
            if self.senders.send_to(peer, msg).await.is_err() {
                return Err(format!("shard {peer} is not reachable"));
            }
            pending.push((peer, reply));
        }
        let mut answers = Vec::with_capacity(self.shards);
        // This core's own part runs in the query queue too, never at the priority of the
        // connection that asked. It is detached: if the asker gives up (timeout, client gone)
        // the part still starts, sees its cancelled control and stops at its first check, as
        // the other cores' parts do, instead of vanishing between two checks.
        let shard = self.shard.clone();
        let local =
            glommio::spawn_local_into(async move { shard.answer(req).await }, self.query_tq)
                .map_err(|e| format!("the query queue is gone: {e}"))?
                .detach();
        match local.await {
            Some(answer) => answers.push(answer),
            None => return Err("this core's part of the query was cancelled".to_string()),
        }
        for (peer, reply) in pending {
            match reply.wait().await {
                Reply::Answered(answer) => answers.push(answer),
                Reply::Appended(_) => {
                    unreachable!("shard {peer}: a query is answered with Answered")
                }
            }
        }
        Ok(answers)
    }
}

/// Runs the server until a signal stops it. Returns the process exit code.
pub fn run(config: Config) -> i32 {
    let config = Arc::new(config);
    let lifecycle = Arc::new(Lifecycle::new(config.cores));
    failstop::install_panic_hook();
    // Signals first: they are blocked in this thread, and every thread started after it
    // inherits the mask (a thread started before would take SIGTERM's default action).
    if let Err(e) = signals::install(lifecycle.clone()) {
        eprintln!("shardlog: cannot install signal handlers: {e}");
        return 1;
    }
    failstop::start_watchdog(lifecycle.clone(), config.core_stall_max);
    let fault = failstop::Fault::from_env();
    let ruler = match crate::ruler::start(&config) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("shardlog: {e}");
            return 1;
        }
    };
    let mesh = Arc::new(MeshSeats::new(config.cores, MESH_CHANNEL_CAPACITY));
    // Only the CPUs this process may run on (taskset, systemd CPUAffinity=, a cgroup cpuset):
    // pinning a shard elsewhere would fail or ignore the operator's isolation.
    let allowed = allowed_cpus();
    let cpus = CpuSet::online()
        .ok()
        .map(|set| set.filter(|loc| allowed.as_ref().is_none_or(|a| a.contains(&loc.cpu))));
    let placement = PoolPlacement::MaxSpread(config.cores, cpus);
    let cfg = config.clone();
    let lc = lifecycle.clone();
    let pool = LocalExecutorPoolBuilder::new(placement)
        .name("shard")
        .preempt_timer(PREEMPT_TIMER)
        .io_memory(IO_MEMORY_BYTES)
        .on_all_shards(move || {
            let (cfg, lc, mesh, ruler) = (cfg.clone(), lc.clone(), mesh.take(), ruler.clone());
            async move { run_core(cfg, lc, mesh, ruler, fault).await }
        });
    let handles = match pool {
        Ok(h) => h,
        Err(e) => {
            eprintln!("shardlog: cannot start the executors: {e}");
            return 1;
        }
    };
    let mut code = 0;
    for r in handles.join_all() {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("shardlog: {e}");
                code = 1;
            }
            Err(e) => {
                eprintln!("shardlog: an executor panicked: {e:?}");
                code = 1;
            }
        }
    }
    if lifecycle.failed.load(Ordering::Acquire) {
        code = 1;
    }
    code
}

/// The CPUs in this process's affinity mask, or `None` if it cannot be read.
fn allowed_cpus() -> Option<Vec<usize>> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    Some(
        (0..nix::sched::CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect(),
    )
}

/// How long an executor sleeps at the most (see [`keep_awake`]).
const KEEP_AWAKE_PERIOD: Duration = Duration::from_millis(50);

/// A timer always pending on the executor, for its whole life. glommio 0.9 can park an
/// executor whose task queues are still runnable: when a completion is waiting on the latency
/// ring as its scheduler loop starts (the preemption timer fired while the thread was off
/// the CPU), it runs nothing, reports nothing run, and parks (upstream glommio/glommio#53).
/// With no timer and no I/O pending nothing wakes it: seen as a core stuck in its start-up
/// (the mesh join or recovery) until killed, when the machine's CPUs were busy. A pending
/// timer ends any such sleep within [`KEEP_AWAKE_PERIOD`], and the queues run then.
fn keep_awake() {
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(KEEP_AWAKE_PERIOD).await;
        }
    })
    .detach();
}

async fn run_core(
    config: Arc<Config>,
    lifecycle: Arc<Lifecycle>,
    mesh: MeshBuilder<MeshMsg, Full>,
    ruler: Arc<crate::ruler::Ruler>,
    fault: Option<failstop::Fault>,
) -> Result<(), String> {
    keep_awake();
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|_| "cannot join the channel mesh".to_string())?;
    let id = senders.peer_id();
    let result = serve_core(
        id,
        config,
        lifecycle.clone(),
        senders,
        receivers,
        ruler,
        fault,
    )
    .await;
    // An executor that returns while the server is not stopping is a dead core: the watchdog
    // ends the process (see `failstop`).
    lifecycle.heartbeats.exited(id);
    result
}

async fn serve_core(
    id: usize,
    config: Arc<Config>,
    lifecycle: Arc<Lifecycle>,
    senders: Senders<MeshMsg>,
    receivers: Receivers<MeshMsg>,
    ruler: Arc<crate::ruler::Ruler>,
    fault: Option<failstop::Fault>,
) -> Result<(), String> {
    let ingest_tq = glommio::executor().create_task_queue(
        Shares::Static(1000),
        Latency::Matters(Duration::from_millis(1)),
        "ingest",
    );
    let query_tq = glommio::executor().create_task_queue(
        Shares::Static(250),
        Latency::Matters(Duration::from_millis(10)),
        "query",
    );
    let background_tq = glommio::executor().create_task_queue(
        Shares::Static(50),
        Latency::NotImportant,
        "background",
    );
    let shard = Rc::new(Shard::new(id));
    shard.set_query_concurrency(config.query.max_concurrent);
    shard.set_memory_budget(config.memory);
    shard.query_pacer.configure(
        ingest_tq,
        query_tq,
        pacer::QueryShare {
            reserve: config.query.cpu_headroom,
            floor: config.query.cpu_share_min,
        },
    );
    let limits = match &config.limits_file {
        Some(path) => crate::tenants::limits::Limits::from_file(config.tenant_limits.clone(), path)
            .map_err(|e| format!("shard {id}: {e}"))?,
        None => crate::tenants::limits::Limits::fixed(config.tenant_limits.clone()),
    };
    if id == 0 && !limits.ignored().is_empty() {
        eprintln!(
            "shardlog: limits not enforced by this server, ignored: {}",
            limits.ignored().join(", ")
        );
    }
    let core = Rc::new(Core {
        ruler,
        streaming_matches: Default::default(),
        limits,
        stream_rates: Default::default(),
        queries: crate::query::engine::Admission::default(),
        id,
        shards: config.cores,
        config: config.clone(),
        lifecycle: lifecycle.clone(),
        shard: shard.clone(),
        senders,
        replies: Replies::default(),
        ingest_tq,
        query_tq,
        background_tq,
        in_flight: Cell::new(0),
        shutdown: Shutdown::new(),
        tails: Rc::new(crate::tail::inbox::Inboxes::new(id)),
    });

    // Mesh receivers first: other shards may send as soon as they are ready.
    let receiver_tasks = spawn_receivers(&core, receivers);
    spawn_heartbeat_and_health(&core);
    spawn_tail_forwarder(&core);
    spawn_tail_cleanup(&core);
    spawn_limits_reload(&core);
    spawn_idle_streams_sweep(&core);
    crate::deletion::worker::start(&core).map_err(|e| format!("shard {id}: {e}"))?;
    crate::ruler::eval::spawn(&core);

    // HTTP first, so that `/ready` answers 503 (and pushes are refused) during recovery.
    let http = crate::ingest::listeners::start_http(&core).map_err(|e| format!("shard {id}: {e}"));
    let http = match http {
        Ok(h) => h,
        Err(e) => {
            lifecycle.failed.store(true, Ordering::Release);
            lifecycle.stop();
            return Err(e);
        }
    };

    // Recovery opens the WAL, whose committer and spare-segment tasks are spawned where it
    // runs: in the ingest queue, whose latency and shares acknowledgements need. In the
    // executor's default queue they were scheduled as `Latency::NotImportant` work, their
    // writes and fsyncs on the main ring, competing with queries and sealing on equal terms.
    let recovered = {
        let (shard, config) = (shard.clone(), config.clone());
        glommio::spawn_local_into(async move { shard.recover(&config).await }, ingest_tq)
            .map_err(|e| format!("shard {id}: cannot start recovery: {e}"))?
            .await
    };
    if let Err(e) = recovered {
        lifecycle.failed.store(true, Ordering::Release);
        lifecycle.stop();
        return Err(format!("shard {id}: WAL recovery failed: {e}"));
    }
    shard
        .activate_recovered_streams(config.stream_idle_period)
        .await;
    lifecycle.recovered.fetch_add(1, Ordering::AcqRel);
    // Sealing, checkpoints, compaction and retention run in the background queue.
    glommio::spawn_local_into(shard.clone().run_sealer(), background_tq)
        .map_err(|e| format!("shard {id}: cannot start the sealer: {e}"))?
        .detach();
    glommio::spawn_local_into(shard.clone().run_maintenance(), background_tq)
        .map_err(|e| format!("shard {id}: cannot start compaction and retention: {e}"))?
        .detach();
    // Listeners start once every shard can take writes, so that no batch is routed to a
    // shard still replaying its WAL.
    while lifecycle.recovered.load(Ordering::Acquire) < lifecycle.shards {
        if lifecycle.is_stopping() {
            return Ok(());
        }
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }

    let listeners =
        crate::ingest::listeners::start_syslog(&core).map_err(|e| format!("shard {id}: {e}"));
    let listeners = match listeners {
        Ok(l) => l,
        Err(e) => {
            lifecycle.failed.store(true, Ordering::Release);
            lifecycle.stop();
            return Err(e);
        }
    };

    // "Serving" only once every core's sockets are bound, so that the line is a promise.
    if lifecycle.listening.fetch_add(1, Ordering::AcqRel) + 1 == lifecycle.shards {
        eprintln!("shardlog: serving on {}", config.listen_summary());
    }
    if let Some(fault) = fault {
        glommio::spawn_local_into(fault.inject_on(id), ingest_tq)
            .map_err(|e| format!("shard {id}: {e}"))?
            .detach();
    }

    // Wait for the stop signal.
    while !lifecycle.is_stopping() {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    core.shutdown.trigger();
    // Listeners stop accepting, and finish the requests and batches they have.
    listeners.stop().await;
    http.stop().await;
    // Bounded waits: a stop must end even if a peer or the disk does not answer. Batches
    // still waiting then fail (their senders were never acknowledged), nothing else is lost.
    let deadline = Instant::now() + STOP_BATCHES_TIMEOUT;
    while core.in_flight.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if core.in_flight.get() > 0 {
        eprintln!(
            "shard {id}: {} batches still unanswered after {STOP_BATCHES_TIMEOUT:?}; stopping anyway",
            core.in_flight.get()
        );
    }
    lifecycle.drained.fetch_add(1, Ordering::AcqRel);
    // Other shards may still be sending us batches from their draining connections.
    // (A shard that failed to start never drains: the process is exiting with an error.)
    let deadline = Instant::now() + STOP_BATCHES_TIMEOUT;
    while lifecycle.drained.load(Ordering::Acquire) < lifecycle.shards
        && !lifecycle.failed.load(Ordering::Acquire)
        && Instant::now() < deadline
    {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    crate::ruler::eval::save_on_stop(&core).await;
    let closed = shard.close().await;
    drop(receiver_tasks);
    closed.map_err(|e| format!("shard {id}: closing the WAL: {e}"))
}

/// How often a core publishes its shard's health even when nothing signalled a change (the
/// heads budget and the WAL's space change without one).
const HEALTH_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// The core's heartbeat for the watchdog, and its shard's health for the board, in the ingest
/// queue (whose latency matters: a starved heartbeat is a stalled core).
fn spawn_heartbeat_and_health(core: &Rc<Core>) {
    let core = core.clone();
    let tq = core.ingest_tq;
    glommio::spawn_local_into(
        async move {
            loop {
                core.lifecycle.health.publish(core.id, core.shard.health());
                core.lifecycle.heartbeats.beat(core.id);
                glommio::timer::sleep(HEALTH_PUBLISH_INTERVAL).await;
            }
        },
        tq,
    )
    .expect("the ingest queue exists")
    .detach();
}

/// Takes what this shard queued for tails, runs each tail's pipeline, and sends the result
/// to the tail's receiving core, in the query queue: the pipeline's cost is a query's, not
/// ingest's. A full mesh channel makes this task wait, never an append: meanwhile the
/// shard's queues fill and drop (see [`crate::tail`]).
fn spawn_tail_forwarder(core: &Rc<Core>) {
    let core = core.clone();
    let tq = core.query_tq;
    glommio::spawn_local_into(
        async move {
            loop {
                core.shard.tails.ready().await;
                let book = core.shard.delete_book();
                for work in core.shard.tails.take_work() {
                    let batch = crate::tail::registry::process(work, &book);
                    let owner = batch.key.core;
                    if owner == core.id {
                        core.shard.tails.count_dropped(core.tails.deliver(batch));
                    } else if owner < core.shards {
                        // The peer is gone only when the process is stopping.
                        let _ = core.senders.send_to(owner, MeshMsg::Tail(batch)).await;
                    }
                    glommio::yield_if_needed().await;
                }
            }
        },
        tq,
    )
    .expect("the query queue exists")
    .detach();
}

/// Unregisters the tails whose session was dropped before it could (see
/// [`crate::tail::inbox::Inboxes::orphan`]).
/// Re-reads the limits file when it changes; core 0 says what happened (every core reads the
/// same file).
fn spawn_limits_reload(core: &Rc<Core>) {
    if core.config.limits_file.is_none() {
        return;
    }
    let core = core.clone();
    let tq = core.background_tq;
    glommio::spawn_local_into(
        async move {
            while !core.lifecycle.is_stopping() {
                glommio::timer::sleep(crate::tenants::limits::RELOAD_INTERVAL).await;
                let outcome = core.limits.reload_if_changed();
                if core.id != 0 {
                    continue;
                }
                match outcome {
                    Ok(true) => {
                        eprintln!("shardlog: limits file reloaded");
                        let ignored = core.limits.ignored();
                        if !ignored.is_empty() {
                            eprintln!(
                                "shardlog: limits not enforced by this server, ignored: {}",
                                ignored.join(", ")
                            );
                        }
                    }
                    Ok(false) => {}
                    Err(e) => eprintln!("shardlog: {e}; the previous limits stay"),
                }
            }
        },
        tq,
    )
    .expect("the background queue exists")
    .detach();
}

/// Forgets, now and then, the streams gone idle: for the stream limit, and from memory once
/// their entries are sealed (see `shard::select`).
fn spawn_idle_streams_sweep(core: &Rc<Core>) {
    let core = core.clone();
    let tq = core.background_tq;
    let idle = core.config.stream_idle_period;
    glommio::spawn_local_into(
        async move {
            while !core.lifecycle.is_stopping() {
                glommio::timer::sleep(crate::tenants::streams::sweep_interval(idle)).await;
                core.shard.active_streams.sweep(idle);
                core.shard.evict_idle_streams(idle);
                core.stream_rates.sweep();
                // The heaps are the process's, not the core's: one core looks after them.
                if core.id == 0 {
                    allocator::give_back_if_much_is_free();
                }
            }
        },
        tq,
    )
    .expect("the background queue exists")
    .detach();
}

fn spawn_tail_cleanup(core: &Rc<Core>) {
    let core = core.clone();
    let tq = core.query_tq;
    glommio::spawn_local_into(
        async move {
            loop {
                for key in core.tails.orphans().await {
                    crate::tail::session::unregister(&core, key).await;
                }
            }
        },
        tq,
    )
    .expect("the query queue exists")
    .detach();
}

/// One task per peer that serves what the peer sends: appends in the ingest queue, questions
/// in the query queue, each in a task of its own so that a slow fsync or a long scan never
/// holds up the channel; and replies to this core's own requests, delivered to their slots.
fn spawn_receivers(
    core: &Rc<Core>,
    mut receivers: Receivers<MeshMsg>,
) -> Vec<glommio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (peer, rx) in receivers.streams() {
        let core = core.clone();
        let tq = core.ingest_tq;
        let task = glommio::spawn_local_into(
            async move {
                while let Some(msg) = rx.recv().await {
                    serve_mesh_msg(&core, peer, msg);
                }
            },
            tq,
        )
        .expect("the ingest queue exists")
        .detach();
        tasks.push(task);
    }
    tasks
}

/// Handles one message from `peer` (see [`spawn_receivers`]).
fn serve_mesh_msg(core: &Rc<Core>, peer: usize, msg: MeshMsg) {
    match msg {
        MeshMsg::Append {
            id,
            batch,
            protocol,
        } => {
            let core = core.clone();
            let tq = core.ingest_tq;
            glommio::spawn_local_into(
                async move {
                    let result = core.append_here(batch, protocol).await;
                    // The peer is gone only when the process is stopping.
                    let _ = core
                        .senders
                        .send_to(peer, MeshMsg::Appended { id, result })
                        .await;
                },
                tq,
            )
            .expect("the ingest queue exists")
            .detach();
        }
        MeshMsg::Query { id, req } => {
            let core = core.clone();
            let tq = core.query_tq;
            glommio::spawn_local_into(
                async move {
                    let answer = core.shard.answer(req).await;
                    let _ = core
                        .senders
                        .send_to(peer, MeshMsg::Answered { id, answer })
                        .await;
                },
                tq,
            )
            .expect("the query queue exists")
            .detach();
        }
        MeshMsg::Appended { id, result } => core.replies.deliver(id, Reply::Appended(result)),
        MeshMsg::Answered { id, answer } => core.replies.deliver(id, Reply::Answered(answer)),
        MeshMsg::Tail(batch) => core.shard.tails.count_dropped(core.tails.deliver(batch)),
    }
}
