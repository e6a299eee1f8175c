//! What one core lets in: open connections (HTTP and syslog TCP together, up to
//! `connections_max`) and bytes of unfinished requests held in memory (up to
//! `request_bodies_bytes_max`), and the accept loop that keeps to both.
//!
//! Which question it answers: "may this connection, this body, this longer frame come in
//! now?" Every admission is a guard: a [`ConnectionSlot`] for a connection, a [`BodyCharge`]
//! for body bytes. Dropping the guard gives the capacity back, so a connection or request that
//! ends in any way (answered, refused, timed out, reset, its task dropped at shutdown) releases
//! exactly what it took. The counts live in the core's [`EdgeStats`], which `/metrics` shows.
//!
//! # Connections
//!
//! One cap per core covers both listeners because both spend the same file descriptors. Its
//! default is derived from RLIMIT_NOFILE (soft): the limit, less [`PROCESS_FDS_RESERVED`] and
//! [`DATA_FDS_RESERVED_PER_CORE`] per core for WAL segments, part files and manifests, divided
//! by the cores, and at most [`CONNECTIONS_MAX_DEFAULT_CEILING`] (see
//! [`derive_connections_max`]). At the cap the accept loop *pauses*: it stops calling `accept`
//! for [`ACCEPT_PAUSE_AT_CAP`] and looks again, so newcomers wait in the kernel's listen backlog
//! instead of being accepted and closed. That is the better of the two answers here: closing
//! at once needs a file descriptor first (the very thing that is short), tells a client nothing
//! it can act on, and turns a burst that would have been served a moment later into errors;
//! waiting in the backlog costs the server nothing, the client's own connect timeout bounds the
//! wait, and when the backlog is full the kernel drops SYNs, which clients retry with backoff.
//! Each pause is counted (`shardlog_accept_paused_total`). The loop looks for room before it
//! waits in `accept` and takes the slot once a connection arrives, so that an idle accept loop
//! holds no slot; the price is that when both listeners see the last free slot at the same
//! moment, the cap is passed by one connection (at most one per listener beyond the first).
//!
//! Accept errors are counted. Errors about one connection that died in the queue
//! (ECONNABORTED, EPROTO, ...) are skipped at once; everything else, EMFILE and ENFILE above
//! all, pauses the loop with a backoff from [`ACCEPT_BACKOFF_MIN`] doubling to
//! [`ACCEPT_BACKOFF_MAX`], so that the core does not spin while descriptors are short, and says
//! so once per episode rather than once per failed call.
//!
//! # Request bytes
//!
//! A body with a declared length is charged its whole length when its head arrives, before any
//! of it is read: that is the only moment a refusal (503 with `Retry-After`) costs the client
//! nothing, and charging only what has arrived would admit every one of 300 bodies that each
//! start small. The memory itself is still taken only as the bytes arrive (the connection grows
//! the body in steps), so a client that declares much and sends little holds budget, not
//! memory, and only until `read_timeout`. A chunked body, whose length is unknown, is charged
//! as its buffer grows and refused mid-way if the budget runs out. Syslog TCP charges the part
//! of a connection's buffer beyond its first size, that is, frames longer than usual.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future::or;
use glommio::GlommioError;
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::sleep;
use nix::errno::Errno;
use nix::sys::resource::Resource;

pub use crate::config::{
    CONNECTIONS_MAX_DEFAULT_CEILING, CONNECTIONS_MAX_DEFAULT_FLOOR, DATA_FDS_RESERVED_PER_CORE,
    PROCESS_FDS_RESERVED,
};
pub use crate::metrics::edge::{EdgeStats, ListenerKind};
use crate::runtime::Shutdown;

/// How long the accept loop stops accepting when the core's connections are all taken: short
/// enough that a freed slot is used at once by human standards, long enough that a core at
/// its cap spends nothing noticeable looking.
pub const ACCEPT_PAUSE_AT_CAP: Duration = Duration::from_millis(10);

/// First pause after an accept error that is not about one connection (EMFILE, ENFILE,
/// ENOBUFS): a descriptor may be free again as soon as one connection closes.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

/// Longest pause between accept attempts while the error lasts: a second keeps a core that
/// is out of descriptors quiet, yet notices within a second when they are back.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The two caps of one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Open connections, every listener together.
    pub connections_max: usize,
    /// Bytes of unfinished request bodies held at once.
    pub body_bytes_max: usize,
}

/// A core's admission control: its limits, and its [`EdgeStats`] that hold the counts.
/// Cheap to clone (the stats are shared): every listener of the core uses one.
#[derive(Debug, Clone)]
pub struct Admission {
    limits: AdmissionLimits,
    stats: Rc<EdgeStats>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits, stats: Rc<EdgeStats>) -> Admission {
        assert!(
            limits.connections_max > 0,
            "connections_max must be positive"
        );
        Admission { limits, stats }
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    pub fn stats(&self) -> &Rc<EdgeStats> {
        &self.stats
    }

    /// Whether the core has room for one more connection.
    pub fn has_room(&self) -> bool {
        self.stats.connections_open() < self.limits.connections_max as u64
    }

    /// A slot for one more connection of `kind`, unless the core's cap is reached.
    pub fn try_connection(&self, kind: ListenerKind) -> Option<ConnectionSlot> {
        self.has_room().then(|| self.admit(kind))
    }

    /// A slot for a connection already accepted after [`Admission::has_room`] said yes: taken
    /// even if another listener took the last room meanwhile (see the module doc).
    fn admit(&self, kind: ListenerKind) -> ConnectionSlot {
        self.stats.connection_opened(kind);
        ConnectionSlot {
            stats: self.stats.clone(),
            kind,
        }
    }

    /// A charge of nothing, to grow later ([`BodyCharge::grow_to`]).
    pub fn empty_charge(&self) -> BodyCharge {
        BodyCharge {
            stats: self.stats.clone(),
            budget: self.limits.body_bytes_max,
            bytes: Cell::new(0),
        }
    }

    /// Charges `bytes` to the core's budget, or says why not.
    pub fn charge_body(&self, bytes: usize) -> Result<BodyCharge, OverBudget> {
        let charge = self.empty_charge();
        charge.grow_to(bytes)?;
        Ok(charge)
    }
}

/// One open connection of a core. Dropping it closes the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    stats: Rc<EdgeStats>,
    kind: ListenerKind,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.stats.connection_closed(self.kind);
    }
}

/// Bytes of one unfinished request charged to its core's budget. Dropping it gives them back.
#[derive(Debug)]
pub struct BodyCharge {
    stats: Rc<EdgeStats>,
    budget: usize,
    bytes: Cell<usize>,
}

impl BodyCharge {
    /// Bytes charged now.
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Raises this charge to `total` bytes if the core's budget has room for the difference;
    /// a smaller `total` changes nothing (see [`BodyCharge::shrink_to`]). On refusal the charge
    /// stays as it was.
    pub fn grow_to(&self, total: usize) -> Result<(), OverBudget> {
        let now = self.bytes.get();
        if total <= now {
            return Ok(());
        }
        let more = total - now;
        let held = self.stats.body_bytes_held() as usize;
        if held.saturating_add(more) > self.budget {
            return Err(OverBudget {
                wanted: more,
                own: now,
                held,
                budget: self.budget,
            });
        }
        self.stats.hold_body_bytes(more as u64);
        self.bytes.set(total);
        Ok(())
    }

    /// Lowers this charge to `total` bytes, giving the difference back (a buffer that shrank);
    /// a larger `total` changes nothing.
    pub fn shrink_to(&self, total: usize) {
        let now = self.bytes.get();
        if total < now {
            self.stats.release_body_bytes((now - total) as u64);
            self.bytes.set(total);
        }
    }
}

impl Drop for BodyCharge {
    fn drop(&mut self) {
        self.stats.release_body_bytes(self.bytes.get() as u64);
    }
}

/// A request or frame that the core's budget for unfinished requests cannot take now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// Bytes this request asked for, beyond what it holds.
    pub wanted: usize,
    /// Bytes this request held already.
    pub own: usize,
    /// Bytes the core's unfinished requests (this one included) held at that moment.
    pub held: usize,
    /// The core's budget (`request_bodies_bytes_max`).
    pub budget: usize,
}

impl OverBudget {
    /// Whether the request would fit once the others are done: if not, retrying is useless
    /// (413, not 503).
    pub fn can_ever_fit(&self) -> bool {
        self.own.saturating_add(self.wanted) <= self.budget
    }
}

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.can_ever_fit() {
            return write!(
                f,
                "this request needs {} bytes in memory, more than this core's whole budget of \
                 {} bytes for unfinished requests (request_bodies_bytes_max); send it in \
                 smaller batches",
                self.own + self.wanted,
                self.budget
            );
        }
        write!(
            f,
            "server busy: unfinished requests on this core hold {} of its {} byte budget \
             (request_bodies_bytes_max) and this request needs {} more; retry shortly",
            self.held, self.budget, self.wanted
        )
    }
}

impl std::error::Error for OverBudget {}

/// The per-core connection cap derived from the process's file limit, and whether that
/// limit is too low to leave the reserve for data files and the smallest useful cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedCap {
    pub connections_max: usize,
    /// The file descriptors reserved for data files, all cores together.
    pub reserved_fds: u64,
    /// `true` when the limit does not cover `reserved_fds` plus the floor for every core:
    /// data files and connections may then run out of descriptors together.
    pub short: bool,
}

/// The default per-core connection cap: `(nofile_soft - reserve) / cores`, where the reserve
/// is [`PROCESS_FDS_RESERVED`] plus [`DATA_FDS_RESERVED_PER_CORE`] per core, clamped to
/// [`CONNECTIONS_MAX_DEFAULT_FLOOR`]..=[`CONNECTIONS_MAX_DEFAULT_CEILING`]. `None` (unlimited
/// or unknown) gives the ceiling.
pub fn derive_connections_max(nofile_soft: Option<u64>, cores: usize) -> DerivedCap {
    let cores = cores.max(1) as u64;
    let reserved_fds = PROCESS_FDS_RESERVED + DATA_FDS_RESERVED_PER_CORE * cores;
    let Some(soft) = nofile_soft else {
        return DerivedCap {
            connections_max: CONNECTIONS_MAX_DEFAULT_CEILING,
            reserved_fds,
            short: false,
        };
    };
    let per_core = soft.saturating_sub(reserved_fds) / cores;
    let floor = CONNECTIONS_MAX_DEFAULT_FLOOR as u64;
    DerivedCap {
        connections_max: per_core.clamp(floor, CONNECTIONS_MAX_DEFAULT_CEILING as u64) as usize,
        reserved_fds,
        short: per_core < floor,
    }
}

/// The soft RLIMIT_NOFILE of this process (`None`: unlimited or unreadable).
pub fn nofile_soft_limit() -> Option<u64> {
    crate::doctor::limits::rlimit(Resource::RLIMIT_NOFILE).and_then(|limit| limit.soft)
}

/// How an accept error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptFailure {
    /// One queued connection died before it was accepted: take the next one at once.
    ThatConnection,
    /// The process or the system is short of something (descriptors, buffers): pause.
    Resources,
}

fn classify(e: &GlommioError<()>) -> AcceptFailure {
    let GlommioError::IoError(e) = e else {
        return AcceptFailure::Resources;
    };
    // accept(2): "Linux accept() passes already-pending network errors on the new socket as
    // an error code from accept()"; those concern the one connection only.
    let per_connection = [
        Errno::ECONNABORTED,
        Errno::ECONNRESET,
        Errno::EINTR,
        Errno::EPROTO,
        Errno::EPERM,
        Errno::ENETDOWN,
        Errno::ENOPROTOOPT,
        Errno::EHOSTDOWN,
        Errno::ENONET,
        Errno::EHOSTUNREACH,
        Errno::EOPNOTSUPP,
        Errno::ENETUNREACH,
    ];
    match e.raw_os_error() {
        Some(code) if per_connection.contains(&Errno::from_i32(code)) => {
            AcceptFailure::ThatConnection
        }
        None if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        ) =>
        {
            AcceptFailure::ThatConnection
        }
        _ => AcceptFailure::Resources,
    }
}

/// One listener's accept loop state on one core: the connection cap and the error backoff.
pub struct Acceptor {
    listener: TcpListener,
    admission: Admission,
    kind: ListenerKind,
    shard: usize,
    backoff: Duration,
    paused_at_cap: bool,
}

impl Acceptor {
    pub fn new(
        listener: TcpListener,
        admission: Admission,
        kind: ListenerKind,
        shard: usize,
    ) -> Acceptor {
        Acceptor {
            listener,
            admission,
            kind,
            shard,
            backoff: Duration::ZERO,
            paused_at_cap: false,
        }
    }

    /// The next connection, with its slot, once one arrives and the core has room for it;
    /// `None` once `shutdown` is triggered. Accept errors are counted and waited out here.
    pub async fn next(&mut self, shutdown: &Shutdown) -> Option<(TcpStream, ConnectionSlot)> {
        let stats = self.admission.stats().clone();
        let stats = stats.listener(self.kind);
        loop {
            if shutdown.is_triggered() {
                return None;
            }
            if !self.admission.has_room() {
                if !self.paused_at_cap {
                    self.paused_at_cap = true;
                    stats.accept_paused_at_cap.inc();
                }
                or(sleep(ACCEPT_PAUSE_AT_CAP), shutdown.wait()).await;
                continue;
            }
            self.paused_at_cap = false;
            // Dropping a pending accept cancels its io_uring operation, so racing it with the
            // stop signal is safe.
            let accepted = or(async { Some(self.listener.accept().await) }, async {
                shutdown.wait().await;
                None
            })
            .await?;
            match accepted {
                Ok(stream) => {
                    let slot = self.admission.admit(self.kind);
                    stats.connections_accepted.inc();
                    if !self.backoff.is_zero() {
                        eprintln!(
                            "shard {}: {} accepts work again",
                            self.shard,
                            self.kind.name()
                        );
                        self.backoff = Duration::ZERO;
                    }
                    return Some((stream, slot));
                }
                Err(e) => {
                    stats.accept_errors.inc();
                    if classify(&e) == AcceptFailure::ThatConnection {
                        continue;
                    }
                    if self.backoff.is_zero() {
                        eprintln!(
                            "shard {}: {} accept failed: {e}; pausing accepts (backoff up to \
                             {ACCEPT_BACKOFF_MAX:?}) until it works again",
                            self.shard,
                            self.kind.name()
                        );
                        self.backoff = ACCEPT_BACKOFF_MIN;
                    } else {
                        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                    or(sleep(self.backoff), shutdown.wait()).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(connections_max: usize, body_bytes_max: usize) -> Admission {
        Admission::new(
            AdmissionLimits {
                connections_max,
                body_bytes_max,
            },
            Rc::default(),
        )
    }

    #[test]
    fn charges_are_released_on_every_end() {
        let a = admission(10, 100);
        // Refused: nothing charged.
        assert_eq!(
            a.charge_body(101).unwrap_err(),
            OverBudget {
                wanted: 101,
                own: 0,
                held: 0,
                budget: 100
            }
        );
        assert_eq!(a.stats().body_bytes_held(), 0);
        // Handled: the charge is dropped after the handler.
        let handled = a.charge_body(60).unwrap();
        assert_eq!(a.stats().body_bytes_held(), 60);
        // A second one that would go over is refused and leaves the first alone.
        let over = a.charge_body(41).unwrap_err();
        assert_eq!((over.held, over.wanted), (60, 41));
        assert!(over.can_ever_fit(), "a retry fits once the first is done");
        assert!(!a.charge_body(101).unwrap_err().can_ever_fit());
        assert_eq!(a.stats().body_bytes_held(), 60);
        drop(handled);
        assert_eq!(a.stats().body_bytes_held(), 0);
        // Grown in steps (chunked), then the connection ends mid-body.
        let growing = a.empty_charge();
        growing.grow_to(30).unwrap();
        growing.grow_to(20).unwrap();
        assert_eq!(growing.bytes(), 30);
        growing.grow_to(95).unwrap();
        growing.shrink_to(90);
        growing.shrink_to(99);
        assert_eq!(growing.bytes(), 90);
        let other = a.charge_body(10).unwrap();
        assert!(growing.grow_to(91).is_err());
        assert_eq!(growing.bytes(), 90, "a refused growth keeps the old charge");
        assert_eq!(a.stats().body_bytes_held(), 100);
        drop(growing);
        assert_eq!(a.stats().body_bytes_held(), 10);
        // A task dropped with its charge (a connection cancelled at shutdown).
        let task = async move {
            let _held = other;
            std::future::pending::<()>().await;
        };
        drop(task);
        assert_eq!(a.stats().body_bytes_held(), 0);
    }

    #[test]
    fn connection_slots_are_shared_by_the_listeners() {
        let a = admission(2, 100);
        let http = a.try_connection(ListenerKind::Http).unwrap();
        let syslog = a.try_connection(ListenerKind::SyslogTcp).unwrap();
        assert!(a.try_connection(ListenerKind::Http).is_none());
        assert!(a.try_connection(ListenerKind::SyslogTcp).is_none());
        assert_eq!(a.stats().connections_open(), 2);
        drop(syslog);
        let again = a.try_connection(ListenerKind::Http).unwrap();
        assert_eq!(a.stats().http.open(), 2);
        drop((http, again));
        assert_eq!(a.stats().connections_open(), 0);
    }

    #[test]
    fn cap_is_derived_from_the_file_limit() {
        // 20,000 descriptors on 2 cores: 64 + 2 * 1024 reserved, the rest split.
        let d = derive_connections_max(Some(20_000), 2);
        assert_eq!(d.reserved_fds, 64 + 2048);
        assert_eq!(d.connections_max, (20_000 - 2112) / 2);
        assert!(!d.short);
        // A generous limit is held to the ceiling; an unlimited one too.
        assert_eq!(
            derive_connections_max(Some(1 << 20), 2).connections_max,
            CONNECTIONS_MAX_DEFAULT_CEILING
        );
        assert_eq!(
            derive_connections_max(None, 8).connections_max,
            CONNECTIONS_MAX_DEFAULT_CEILING
        );
        // The common 1024 default cannot hold the reserve: the floor, and a warning.
        let d = derive_connections_max(Some(1024), 2);
        assert_eq!(d.connections_max, CONNECTIONS_MAX_DEFAULT_FLOOR);
        assert!(d.short);
    }

    #[test]
    fn accept_errors_are_classified() {
        let os = |code| GlommioError::IoError(io::Error::from_raw_os_error(code));
        assert_eq!(
            classify(&os(Errno::EMFILE as i32)),
            AcceptFailure::Resources
        );
        assert_eq!(
            classify(&os(Errno::ENFILE as i32)),
            AcceptFailure::Resources
        );
        assert_eq!(
            classify(&os(Errno::ENOBUFS as i32)),
            AcceptFailure::Resources
        );
        assert_eq!(
            classify(&os(Errno::ECONNABORTED as i32)),
            AcceptFailure::ThatConnection
        );
        assert_eq!(
            classify(&os(Errno::EPROTO as i32)),
            AcceptFailure::ThatConnection
        );
    }
}
