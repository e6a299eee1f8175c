//! The sockets of one core: syslog TCP, syslog UDP, syslog over TLS, RELP (plain and over
//! TLS) and HTTP, each bound with SO_REUSEPORT on every core so that the kernel spreads
//! connections and datagrams over the cores. RELP's sessions live in [`super::relp`]; they
//! share this module's batching and backpressure.
//!
//! Syslog has no acknowledgement, so durability is expressed as backpressure: a TCP
//! connection stops being read while more than `syslog_tcp_unacked_bytes_max` of what it
//! sent is not yet durable. UDP cannot be slowed down; what the kernel drops because the
//! socket buffer overflowed is read from `/proc/net/udp` and reported exactly.
//!
//! HTTP and syslog TCP share one [`Admission`] per core: one cap on open connections (at the
//! cap both accept loops pause) and one budget for bytes of unfinished requests (HTTP bodies,
//! and syslog frames longer than a connection's first buffer, see [`FrameBuffer`]).
//!
//! UDP's receive loop and its kernel drop counts are in `udp`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use futures_lite::{AsyncRead, AsyncReadExt};
use glommio::net::{TcpListener, TcpStream, UdpSocket};
use glommio::task::JoinHandle;

use super::frame_buffer::FrameBuffer;
use super::framing::{Decoded, Framer};
use super::syslog::{self, ParseContext};
use super::tls::{self, Reload, TlsAcceptor};
use crate::config::PUSH_RAW_BODY_SLACK_BYTES;
use crate::http::admission::{
    Acceptor, Admission, AdmissionLimits, ListenerKind, derive_connections_max, nofile_soft_limit,
};
use crate::http::server::{ServerLimits, serve};
use crate::ingest::discovery::{
    Discovery, LevelDiscovery, add_detected_level, level_from_labels, service_name,
};
use crate::model::{BatchBuilder, Duplicates, owner_shard, stream_hash_sorted};
use crate::runtime::Core;
use crate::shard::{AppendError, DiscardReason, Protocol, Refusal};

mod udp;
pub use udp::udp_kernel_drops;
use udp::{set_recv_buffer, socket_inode, syslog_udp};

/// Connections of one kind on one core, and the tasks that accept them.
pub struct Listeners {
    live: Rc<Cell<usize>>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long shutdown waits for open connections to finish what they were doing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a syslog connection whose long frame needs more buffer than the core's request
/// budget has waits (unread: the sender is slowed down) before it is closed and counted. The
/// budget frees as other requests finish; a minute without room means the core is flooded
/// with unfinished frames, and closing one is what lets the others finish.
const SYSLOG_BUDGET_WAIT_MAX: Duration = Duration::from_secs(60);

/// How often a syslog connection waiting for budget looks again.
const SYSLOG_BUDGET_POLL: Duration = Duration::from_millis(10);

/// The admission control of `core`: its connection cap (explicit, or derived from the file
/// limit) and its request budget, over the counts in the shard's edge stats.
fn admission(core: &Core) -> Admission {
    let connections_max = core.config.connections_max.unwrap_or_else(|| {
        derive_connections_max(nofile_soft_limit(), core.shards).connections_max
    });
    Admission::new(
        AdmissionLimits {
            connections_max,
            body_bytes_max: core.config.request_bodies_bytes_max,
        },
        core.shard.edge.clone(),
    )
}

/// Says once (from core 0) what the connection cap is and where it comes from, and warns when
/// the file limit is too low to keep descriptors for the data files.
fn describe_admission(core: &Core, admission: &Admission) {
    if core.id != 0 {
        return;
    }
    let limits = admission.limits();
    let budget_mib = limits.body_bytes_max >> 20;
    if core.config.connections_max.is_some() {
        eprintln!(
            "connections: at most {} per core (HTTP and syslog TCP together, set by \
             connections_max); unfinished requests: at most {budget_mib} MiB per core",
            limits.connections_max
        );
        return;
    }
    let soft = nofile_soft_limit();
    let derived = derive_connections_max(soft, core.shards);
    let soft_text = soft.map_or("unlimited".to_string(), |s| s.to_string());
    eprintln!(
        "connections: at most {} per core (HTTP and syslog TCP together), from the open-file \
         limit {soft_text} less {} kept for data files; unfinished requests: at most \
         {budget_mib} MiB per core",
        derived.connections_max, derived.reserved_fds
    );
    if derived.short {
        eprintln!(
            "warning: the open-file limit (RLIMIT_NOFILE) {soft_text} does not leave {} \
             descriptors for data files plus {} connections per core; raise it (systemd: \
             LimitNOFILE=65536, shell: ulimit -n) or data files and connections will run out \
             together",
            derived.reserved_fds, derived.connections_max
        );
    }
}

impl Listeners {
    /// Waits (bounded) for the connections to finish after the core's shutdown was
    /// triggered; the accept loops end on the same trigger.
    pub async fn stop(self) {
        let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
        for task in self.tasks {
            let _ = future::or(async { task.await.map(|_| ()) }, async {
                glommio::timer::sleep(
                    deadline.saturating_duration_since(std::time::Instant::now()),
                )
                .await;
                None
            })
            .await;
        }
        while self.live.get() > 0 && std::time::Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Starts the HTTP listener of this core. Its task ends once the accept loop has stopped and
/// every open connection has finished its request.
pub fn start_http(core: &Rc<Core>) -> std::io::Result<Listeners> {
    let listener = bind_tcp("http_addr", core.config.http_addr)?;
    let limits = ServerLimits {
        // The raw body may be compressed; the decompressed size is checked by the decoders.
        body_bytes_max: core.config.push_body_bytes_max + PUSH_RAW_BODY_SLACK_BYTES,
        ..ServerLimits::default()
    };
    let admission = admission(core);
    describe_admission(core, &admission);
    let handler_core = core.clone();
    let handler = move |req| crate::http::loki::route(handler_core.clone(), req);
    let task = glommio::spawn_local_into(
        {
            let core = core.clone();
            async move {
                let shutdown = core.shutdown.clone();
                let (tq, id) = (core.ingest_tq, core.id);
                if let Err(e) = serve(listener, limits, tq, shutdown, admission, id, handler).await
                {
                    eprintln!("shard {}: HTTP server stopped: {e}", core.id);
                }
            }
        },
        core.ingest_tq,
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?
    .detach();
    Ok(Listeners {
        live: Rc::new(Cell::new(0)),
        tasks: vec![task],
    })
}

/// Starts the syslog listeners of this core (those configured): the default one and the
/// `[[syslog]]` sections, each storing its lines under its own tenant.
pub fn start_syslog(core: &Rc<Core>) -> std::io::Result<Listeners> {
    let live = Rc::new(Cell::new(0));
    let mut tasks = Vec::new();
    // One acceptor per core for every TLS listener: the files are the same, and are re-read
    // once when they change.
    let mut tls: Option<Rc<TlsAcceptor>> = None;
    let mut tls_acceptor = || -> std::io::Result<Rc<TlsAcceptor>> {
        if let Some(t) = &tls {
            return Ok(t.clone());
        }
        let files = core.config.tls.clone().ok_or_else(|| {
            std::io::Error::other("a TLS listener is configured without tls_cert_file")
        })?;
        let t = Rc::new(TlsAcceptor::load(files).map_err(std::io::Error::other)?);
        tls = Some(t.clone());
        Ok(t)
    };
    for (i, listener) in core.config.all_syslog_listeners().into_iter().enumerate() {
        let tenant: Rc<str> = listener.tenant.as_str().into();
        let key = |default: &str, protocol: &str| match i {
            0 => default.to_string(),
            n => format!("syslog[{}].listen {protocol}", n - 1),
        };
        let streams = [
            (listener.tcp_addr, StreamKind::Syslog),
            (listener.tls_addr, StreamKind::SyslogTls),
            (listener.relp_addr, StreamKind::Relp),
            (listener.relp_tls_addr, StreamKind::RelpTls),
        ];
        for (addr, kind) in streams {
            let Some(addr) = addr else { continue };
            let (default_key, protocol) = kind.keys();
            let socket = bind_tcp(&key(default_key, protocol), addr)?;
            let tls = if kind.is_tls() {
                Some(tls_acceptor()?)
            } else {
                None
            };
            let tenant = tenant.clone();
            tasks.push(accept_loop(
                core,
                socket,
                live.clone(),
                kind.listener(),
                move |core, stream, admission| {
                    serve_stream(core, stream, admission, tenant.clone(), kind, tls.clone())
                },
            ));
        }
        if let Some(addr) = listener.udp_addr {
            let udp_key = key("syslog_udp_addr", "udp");
            let socket = UdpSocket::bind(addr)
                .map_err(|e| std::io::Error::other(format!("cannot bind {udp_key} {addr}: {e}")))?;
            set_recv_buffer(&socket, core.config.syslog_udp_recv_buffer_bytes);
            core.shard
                .udp_socket_inodes
                .borrow_mut()
                .push(socket_inode(socket.as_raw_fd()));
            let core2 = core.clone();
            let live2 = live.clone();
            tasks.push(
                glommio::spawn_local_into(
                    async move {
                        live2.set(live2.get() + 1);
                        syslog_udp(core2, socket, tenant).await;
                        live2.set(live2.get() - 1);
                    },
                    core.ingest_tq,
                )
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .detach(),
            );
        }
    }
    Ok(Listeners { live, tasks })
}

/// What a syslog listener's TCP port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamKind {
    /// Syslog over TCP (RFC 6587).
    Syslog,
    /// Syslog over TLS (RFC 5425).
    SyslogTls,
    /// RELP, answered once durable.
    Relp,
    /// RELP over TLS.
    RelpTls,
}

impl StreamKind {
    /// The configuration key of the default listener's address, and the protocol's name in
    /// a `[[syslog]]` section: what a bind error names.
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            StreamKind::Syslog => ("syslog_tcp_addr", "tcp"),
            StreamKind::SyslogTls => ("syslog_tls_addr", "tls"),
            StreamKind::Relp => ("relp_addr", "relp"),
            StreamKind::RelpTls => ("relp_tls_addr", "relp-tls"),
        }
    }

    fn is_tls(self) -> bool {
        matches!(self, StreamKind::SyslogTls | StreamKind::RelpTls)
    }

    fn listener(self) -> ListenerKind {
        match self {
            StreamKind::Syslog => ListenerKind::SyslogTcp,
            StreamKind::SyslogTls => ListenerKind::SyslogTls,
            StreamKind::Relp | StreamKind::RelpTls => ListenerKind::Relp,
        }
    }
}

/// Serves one accepted connection of a syslog listener's TCP port: the TLS handshake first
/// where the port speaks TLS (`tls`, the core's acceptor, is given for those ports only),
/// then syslog framing or a RELP session.
async fn serve_stream(
    core: Rc<Core>,
    stream: TcpStream,
    admission: Admission,
    tenant: Rc<str>,
    kind: StreamKind,
    tls: Option<Rc<TlsAcceptor>>,
) {
    let peer = peer_ip(&stream);
    let relp = matches!(kind, StreamKind::Relp | StreamKind::RelpTls);
    if relp {
        prepare_for_answers(&stream);
    }
    let accepted = match tls {
        Some(tls) => match handshake(&core, &tls, stream, &peer).await {
            Some(stream) => Accepted::Tls(Box::new(stream)),
            None => return,
        },
        None => Accepted::Plain(stream),
    };
    match (accepted, relp) {
        (Accepted::Plain(s), true) => super::relp::serve(core, s, peer, admission, tenant).await,
        (Accepted::Tls(s), true) => super::relp::serve(core, s, peer, admission, tenant).await,
        (Accepted::Plain(s), false) => {
            read_syslog(core, s, peer, admission, tenant, Protocol::SyslogTcp).await
        }
        (Accepted::Tls(s), false) => {
            read_syslog(core, s, peer, admission, tenant, Protocol::SyslogTls).await
        }
    }
}

/// A connection ready for its protocol: as accepted, or after its TLS handshake.
enum Accepted {
    Plain(TcpStream),
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
}

/// The sender's address as a `host` label falls back to it.
fn peer_ip(stream: &TcpStream) -> Option<String> {
    stream.peer_addr().ok().map(|a| a.ip().to_string())
}

/// How long an answer (a RELP `rsp`) may wait for a sender that does not read: one that
/// stops reading its answers must not hold the connection and its unanswered lines forever.
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bounds the writes of a connection that answers its sender.
fn prepare_for_answers(stream: &TcpStream) {
    let _ = stream.set_write_timeout(Some(ANSWER_WRITE_TIMEOUT));
}

/// Runs the TLS handshake of a new connection (bounded by [`tls::HANDSHAKE_TIMEOUT`] and the
/// core's shutdown), taking changed certificate files into use first. `None` if it failed:
/// counted, and said with the sender's address, since a client whose certificate is refused
/// needs its operator to see why.
pub(super) async fn handshake(
    core: &Core,
    tls: &TlsAcceptor,
    stream: TcpStream,
    peer: &Option<String>,
) -> Option<futures_rustls::server::TlsStream<TcpStream>> {
    let edge = &core.shard.edge;
    let (acceptor, reload) = tls.acceptor();
    match reload {
        Reload::Same => {}
        Reload::Reloaded => {
            edge.tls_reloads.inc();
            eprintln!("shard {}: TLS certificate files changed: reloaded", core.id);
        }
        Reload::Failed(e) => {
            edge.tls_reload_failures.inc();
            eprintln!(
                "shard {}: TLS certificate files changed but cannot be used, the previous \
                 certificate stays: {e}",
                core.id
            );
        }
    }
    let accept = acceptor.accept(stream);
    let outcome = future::or(async { Some(accept.await) }, async {
        future::or(
            glommio::timer::sleep(tls::HANDSHAKE_TIMEOUT),
            core.shutdown.wait(),
        )
        .await;
        None
    })
    .await;
    let peer = peer.as_deref().unwrap_or("unknown");
    match outcome {
        Some(Ok(stream)) => Some(stream),
        Some(Err(e)) => {
            edge.tls_handshake_failures.inc();
            eprintln!("shard {}: TLS handshake with {peer} failed: {e}", core.id);
            None
        }
        None => {
            edge.tls_handshake_failures.inc();
            if !core.shutdown.is_triggered() {
                eprintln!(
                    "shard {}: TLS handshake with {peer} did not finish within {:?}",
                    core.id,
                    tls::HANDSHAKE_TIMEOUT
                );
            }
            None
        }
    }
}

fn bind_tcp(key: &str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    listen_tcp(addr).map_err(|e| std::io::Error::other(format!("cannot bind {key} {addr}: {e}")))
}

/// A TCP listener on `addr` with SO_REUSEPORT (every core binds the same address) and
/// SO_REUSEADDR. glommio's own `bind` sets only the first; without the second, the
/// connections this listener accepts and the server closes first stay in TIME_WAIT for a
/// minute without SO_REUSEADDR, and the next run's start-up check of the address (a plain
/// bind, see `preflight::addr`) fails with "address in use" although nothing listens.
fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, socket,
        sockopt,
    };
    use std::os::fd::{FromRawFd, IntoRawFd};
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    listen(&fd, 1024)?;
    // SAFETY: `fd` is a listening TCP socket that this function owns and hands over whole.
    Ok(unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) })
}

/// Accepts within the core's connection cap until the core's shutdown (pausing at the cap and
/// backing off on EMFILE, see [`Acceptor`]), spawning `serve` for each connection in the
/// ingest queue; `live` counts the connections still open.
fn accept_loop<F, Fut>(
    core: &Rc<Core>,
    listener: TcpListener,
    live: Rc<Cell<usize>>,
    kind: ListenerKind,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(Rc<Core>, TcpStream, Admission) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let core = core.clone();
    let tq = core.ingest_tq;
    let admission = admission(&core);
    let mut acceptor = Acceptor::new(listener, admission.clone(), kind, core.id);
    glommio::spawn_local_into(
        async move {
            while let Some((stream, slot)) = acceptor.next(&core.shutdown).await {
                let _ = stream.set_nodelay(true);
                live.set(live.get() + 1);
                let live = live.clone();
                let fut = serve(core.clone(), stream, admission.clone());
                glommio::spawn_local_into(
                    async move {
                        fut.await;
                        live.set(live.get() - 1);
                        drop(slot);
                    },
                    tq,
                )
                .expect("the ingest queue exists")
                .detach();
            }
        },
        tq,
    )
    .expect("the ingest queue exists")
    .detach()
}

/// Wall-clock now in nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Per-owner batch builders of one syslog socket, and the sends in flight from it.
pub(super) struct SyslogBatcher {
    core: Rc<Core>,
    /// The listener's tenant: every line of the socket is stored under it.
    tenant: Rc<str>,
    protocol: Protocol,
    peer: Option<String>,
    builders: Vec<BatchBuilder>,
    /// Sends not yet awaited, oldest first (TCP awaits them in order for backpressure).
    in_flight: VecDeque<(JoinHandle<Result<(), AppendError>>, usize)>,
    /// Encoded bytes of sends not yet completed, kept up to date by the send tasks.
    outstanding_bytes: Rc<Cell<usize>>,
    /// UDP does not await its sends (nothing to acknowledge to), so it keeps no handles.
    keep_handles: bool,
    /// The tenant's discovery settings, taken again at every read (the limits file may
    /// change them), not per line.
    discovery: Discovery,
}

impl SyslogBatcher {
    pub(super) fn new(
        core: Rc<Core>,
        tenant: Rc<str>,
        protocol: Protocol,
        peer: Option<String>,
    ) -> SyslogBatcher {
        // RELP resends what a broken session left unanswered, as a Loki client retries a
        // push: its exact duplicates are dropped as a push's are. Plain syslog keeps them
        // (coarse timestamps: two equal lines in a second are two events).
        let duplicates = match protocol {
            Protocol::Relp => Duplicates::Drop,
            _ => Duplicates::Keep,
        };
        let builders = (0..core.shards)
            .map(|_| BatchBuilder::with_duplicates(&tenant, duplicates))
            .collect();
        SyslogBatcher {
            core,
            tenant,
            protocol,
            peer,
            builders,
            in_flight: VecDeque::new(),
            outstanding_bytes: Rc::new(Cell::new(0)),
            keep_handles: protocol != Protocol::SyslogUdp,
            discovery: Discovery::off(),
        }
        .with_tenant_settings()
    }

    /// Takes the tenant's current discovery settings.
    fn with_tenant_settings(mut self) -> SyslogBatcher {
        self.refresh();
        self
    }

    /// Takes the tenant's current discovery settings (once per read, not per line).
    pub(super) fn refresh(&mut self) {
        self.discovery = self.core.limits.for_tenant(&self.tenant).discovery;
    }

    /// Parses one syslog message and adds it to its owner's batch.
    pub(super) fn add(&mut self, message: &[u8], now_ns: i64, truncated: bool) {
        let counters = &self.core.shard.counters;
        if truncated {
            counters.frames_truncated.inc();
        }
        let ctx = ParseContext { now_ns };
        let parsed = syslog::parse(message, &ctx);
        if parsed.had_invalid_utf8() {
            counters.invalid_utf8_lines.inc();
        }
        // A time outside the shared range was dropped by the parser: the receive time
        // stands in, counted like a time too far ahead.
        if parsed.had_time_out_of_range() {
            counters.timestamps_clamped.inc();
        }
        // Borrowed, sorted labels: no allocation per line for the stream's identity. Syslog
        // reaches Loki as a push (Promtail, Alloy), whose distributor derives
        // `service_name` and `detected_level`: so does this listener.
        let mut labels = syslog::label_pairs(&parsed, self.peer.as_deref());
        service_name::add_sorted(&self.discovery.service_name_from, &mut labels);
        let metadata = syslog::metadata(&parsed);
        let skew_max = self.core.config.future_skew_max.as_nanos() as i64;
        let mut ts = parsed.timestamp_ns.unwrap_or(now_ns);
        if ts > now_ns.saturating_add(skew_max) {
            counters.timestamps_clamped.inc();
            ts = now_ns;
        }
        let id = stream_hash_sorted(&self.tenant, labels.iter().copied());
        let owner = owner_shard(id, self.core.shards);
        let mut metadata: smallvec::SmallVec<[(&str, &str); 8]> = metadata
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        if self.discovery.log_levels == LevelDiscovery::On {
            // A syslog stream always has `level`, the first field looked for.
            let label = |name: &str| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
            add_detected_level(&mut metadata, level_from_labels(label), &parsed.message);
        }
        self.builders[owner].push_with_pairs(
            id,
            labels.iter().copied(),
            ts,
            &parsed.message,
            &metadata,
        );
    }

    /// Encoded bytes gathered and not yet sent (empty builders count nothing).
    pub(super) fn pending_bytes(&self) -> usize {
        self.builders
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| b.encoded_len())
            .sum()
    }

    /// Sends every non-empty batch to its owner; the sends run as their own tasks.
    pub(super) fn flush(&mut self) {
        for owner in 0..self.builders.len() {
            if self.builders[owner].is_empty() {
                continue;
            }
            let batch = self.builders[owner].finish();
            let bytes = batch.bytes.len();
            let core = self.core.clone();
            let protocol = self.protocol;
            let outstanding = self.outstanding_bytes.clone();
            outstanding.set(outstanding.get() + bytes);
            let task = glommio::spawn_local_into(
                async move {
                    let r = match core.send_batch(owner, batch, protocol).await {
                        // Syslog cannot refuse a line: the owner stored the other streams
                        // and counted these as discarded (`stream_limit`).
                        Err(e) if e.refusal == Refusal::StreamLimit => Ok(()),
                        r => r,
                    };
                    outstanding.set(outstanding.get() - bytes);
                    if let Err(e) = &r {
                        eprintln!("shard {}: syslog batch refused: {e}", core.id);
                    }
                    r
                },
                self.core.ingest_tq,
            )
            .expect("the ingest queue exists")
            .detach();
            if self.keep_handles {
                self.in_flight.push_back((task, bytes));
            }
        }
    }

    /// Waits for the oldest sends until at most `bytes_max` are in flight. An error means
    /// the owner refused the batch (its WAL stopped): the caller closes the connection, so
    /// that the sender sees the failure instead of a silent loss.
    pub(super) async fn settle(&mut self, bytes_max: usize) -> Result<(), AppendError> {
        debug_assert!(self.keep_handles, "only TCP settles by awaiting its sends");
        let mut unsettled: usize = self.in_flight.iter().map(|(_, b)| b).sum();
        while unsettled > bytes_max {
            let Some((task, bytes)) = self.in_flight.pop_front() else {
                break;
            };
            unsettled -= bytes;
            match task.await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(AppendError::new(
                        Refusal::NotOpen,
                        "a batch send was cancelled",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How often a paused syslog connection looks whether writes are taken again.
const SYSLOG_PAUSE_POLL: Duration = Duration::from_millis(100);

/// Waits, without reading, while some shard refuses writes for a reason that ends by itself
/// (a full disk, unsealed lines over budget): syslog cannot refuse a line, so the connection
/// is paused and the sender's kernel buffers fill, instead of lines being read and then
/// waiting in memory. `false` if the core is stopping or a shard's WAL stopped for good (the
/// connection is closed, so that the sender sees it).
pub(super) async fn writes_taken(core: &Core) -> bool {
    let mut paused = false;
    loop {
        match core.lifecycle.write_refusal() {
            None => return true,
            Some(e) if !e.refusal.is_transient() => {
                eprintln!("shard {}: closing a syslog connection: {e}", core.id);
                return false;
            }
            Some(_) if core.shutdown.is_triggered() => return false,
            Some(_) => {}
        }
        if !paused {
            paused = true;
            core.shard.edge.syslog_tcp.paused_for_writes.inc();
        }
        future::or(
            glommio::timer::sleep(SYSLOG_PAUSE_POLL),
            core.shutdown.wait(),
        )
        .await;
    }
}

/// Waits until `buf` has room for the next read, as long as the core's request budget lets a
/// long frame grow it; `false` if it did not within [`SYSLOG_BUDGET_WAIT_MAX`] (or the core
/// is stopping), and the connection should close.
pub(super) async fn room_to_read(core: &Core, buf: &mut FrameBuffer) -> bool {
    let deadline = std::time::Instant::now() + SYSLOG_BUDGET_WAIT_MAX;
    loop {
        let refused = match buf.make_room() {
            Ok(()) => return true,
            Err(e) => e,
        };
        if core.shutdown.is_triggered() {
            return false;
        }
        if std::time::Instant::now() >= deadline {
            core.shard.edge.syslog_tcp.closed_over_budget.inc();
            eprintln!(
                "shard {}: closing a syslog connection whose frame found no room for \
                 {SYSLOG_BUDGET_WAIT_MAX:?}: {refused}",
                core.id
            );
            return false;
        }
        future::or(
            glommio::timer::sleep(SYSLOG_BUDGET_POLL),
            core.shutdown.wait(),
        )
        .await;
    }
}

/// Reads one syslog connection, plain TCP or inside TLS: framing, parsing, batching,
/// backpressure.
async fn read_syslog<S: AsyncRead + Unpin>(
    core: Rc<Core>,
    mut stream: S,
    peer: Option<String>,
    admission: Admission,
    tenant: Rc<str>,
    protocol: Protocol,
) {
    let frame_max = core.config.syslog_frame_bytes_max;
    let unacked_max = core.config.syslog_tcp_unacked_bytes_max;
    let mut framer = Framer::new(frame_max);
    let mut batcher = SyslogBatcher::new(core.clone(), tenant.clone(), protocol, peer);
    let mut buf = FrameBuffer::new(framer.buffer_bytes_min(), admission.empty_charge());
    let mut eof = false;
    while !eof {
        if !room_to_read(&core, &mut buf).await {
            break;
        }
        if !writes_taken(&core).await {
            break;
        }
        let read = future::or(async { Some(stream.read(buf.spare()).await) }, async {
            core.shutdown.wait().await;
            None
        })
        .await;
        match read {
            None => eof = true,
            Some(Ok(0)) => eof = true,
            Some(Ok(n)) => buf.filled(n),
            Some(Err(_)) => eof = true,
        }
        let now = now_ns();
        batcher.refresh();
        let mut message_bytes = 0u64;
        loop {
            match framer.decode(buf.unread(), eof) {
                Decoded::Frame {
                    message,
                    consumed,
                    truncated,
                } => {
                    message_bytes += message.len() as u64;
                    batcher.add(message, now, truncated);
                    buf.consume(consumed);
                }
                Decoded::Skipped { consumed, .. } => {
                    core.shard
                        .counters
                        .discard_for(&tenant, DiscardReason::FramingError, 1);
                    buf.consume(consumed);
                }
                Decoded::NeedMore => break,
            }
            if batcher.pending_bytes() >= crate::config::BATCH_BYTES_TARGET {
                batcher.flush();
            }
        }
        batcher.flush();
        if let Err(e) = batcher.settle(unacked_max).await {
            eprintln!("shard {}: closing syslog connection: {e}", core.id);
            return;
        }
        slow_to_rate(&core, &tenant, message_bytes).await;
    }
    let _ = batcher.settle(0).await;
}

/// Charges lines a syslog connection read to its tenant's ingestion rate and, when that puts
/// the tenant over, waits before the next read: syslog over TCP cannot refuse a line, so the
/// sender is slowed down (its kernel buffers fill) rather than refused.
pub(super) async fn slow_to_rate(core: &Core, tenant: &str, bytes: u64) {
    let limit = core.limits.for_tenant(tenant).ingestion_rate;
    let wait = core.lifecycle.ingestion_rates.debit(tenant, bytes, &limit);
    if wait.is_zero() {
        return;
    }
    core.shard.edge.syslog_tcp.paused_for_rate.inc();
    future::or(glommio::timer::sleep(wait), core.shutdown.wait()).await;
}
