//! One tail's WebSocket session on its receiving core: registration with every shard, the
//! history since `start`, then live entries, pings, and a clean close.
//!
//! Which question it answers: "what does a tail client see, in which order, and how does it
//! end?" As Loki's querier does, the tail is first registered with every shard ([`register`],
//! before the connection is upgraded: a client that has its `101` misses no line pushed
//! after it), then the session runs the log query over
//! `[start, now)` (the newest `limit` entries, sent oldest first), then sends live entries as
//! they come due. An entry of the history that a shard also sent live (it was applied between
//! the registration and the history scan) is sent once. Messages carry at most
//! [`ENTRIES_PER_MESSAGE_MAX`](super::ENTRIES_PER_MESSAGE_MAX) entries.
//!
//! The session ends when the client closes (its close frame is answered by the WebSocket
//! layer), when a write fails (including the connection's write timeout: a client that
//! stops reading altogether), after [`TAIL_DURATION_MAX`] (close code 1011, as Loki), on an
//! error (1011 with the error's text, as Loki), or when the server stops (1001, going away).
//! Every end unregisters the tail from every shard.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashSet;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_lite::StreamExt;
use futures_lite::future::or;
use glommio::net::TcpStream;
use glommio::timer::sleep;

use super::inbox::OpenInbox;
use super::render::message;
use super::{
    ENTRIES_PER_MESSAGE_MAX, PING_INTERVAL, TAIL_DURATION_MAX, TailKey, TailSpec, TailedEntry,
};
use crate::http::response::Upgraded;
use crate::ingest::listeners::now_ns;
use crate::logql::LogSelector;
use crate::model::TimestampNs;
use crate::query::QueryError;
use crate::query::engine::{Running, ask_all, expect_answers};
use crate::query::merge::merge_partials;
use crate::query::params::Direction;
use crate::query::pipeline::Pipeline;
use crate::runtime::{Core, Shutdown};
use crate::shard::{LogsRequest, ShardAnswer, ShardRequest};

/// The largest message a tail client may send: clients send nothing but control frames, so
/// anything big is refused by the WebSocket layer before it is buffered.
const CLIENT_MESSAGE_BYTES_MAX: usize = 64 * 1024;

/// How long a closing handshake may take (our close frame out, the client's back) before the
/// socket is simply closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long registering or unregistering a tail with every shard may take.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Loki's close reason after `tail_max_duration`.
const TAIL_EXPIRED: &str = "reached tail max duration limit";

/// A validated tail request, as the HTTP route parsed it.
#[derive(Debug)]
pub struct TailRequest {
    pub tenant: String,
    pub selector: LogSelector,
    pub pipeline: Arc<Pipeline>,
    /// Where the history starts (Loki's `start`, default one hour ago).
    pub start_ns: TimestampNs,
    /// Most entries of history (Loki's `limit`).
    pub limit: u32,
    /// How long after its timestamp a live entry is sent (Loki's `delay_for`).
    pub delay: Duration,
    /// Loki's categorize-labels encoding.
    pub categorize: bool,
}

/// Why a session ended, and so what it says to its client.
#[derive(Debug, PartialEq)]
enum End {
    /// The client sent a close frame, or the socket ended: nothing more to say.
    ClientClosed,
    /// A write or read failed: nothing can be said.
    Broken,
    /// The server is stopping: 1001 (going away).
    Shutdown,
    /// An error the client is told about: 1011 with its text.
    Failed(String),
}

/// A tail registered with every shard, before its connection is upgraded: lines applied from
/// now on reach its inbox. Dropping it (the upgrade never happened) unregisters it.
pub struct Registered {
    inbox: OpenInbox,
    registration: Registration,
}

/// Opens the tail's inbox and registers it with every shard. A shard's refusal (too many
/// tails) is the error, as is a shard that does not answer in time.
pub async fn register(core: &Rc<Core>, request: &TailRequest) -> Result<Registered, QueryError> {
    let inbox = core.tails.open();
    let registration = Registration {
        core: core.clone(),
        key: inbox.key,
        active: true,
    };
    let spec = Arc::new(TailSpec {
        key: inbox.key,
        tenant: request.tenant.clone(),
        selector: request.selector.clone(),
        pipeline: request.pipeline.clone(),
    });
    let asked = or(
        async { Some(core.fan_out(ShardRequest::TailStart(spec)).await) },
        async {
            sleep(REGISTRATION_TIMEOUT).await;
            None
        },
    )
    .await;
    let answers = match asked {
        Some(Ok(answers)) => answers,
        Some(Err(e)) => return Err(QueryError::NotReady(e)),
        None => {
            return Err(QueryError::NotReady(
                "the shards did not take the tail in time".into(),
            ));
        }
    };
    for a in answers {
        if let ShardAnswer::Failed(e) = a {
            return Err(e);
        }
    }
    Ok(Registered {
        inbox,
        registration,
    })
}

/// Runs one registered tail on its upgraded connection until it ends; see the module doc.
pub async fn run(core: Rc<Core>, request: TailRequest, registered: Registered, upgraded: Upgraded) {
    let Registered {
        inbox,
        mut registration,
    } = registered;
    let Upgraded {
        stream,
        read_ahead,
        shutdown,
    } = upgraded;
    let config = WebSocketConfig::default()
        .max_message_size(Some(CLIENT_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(CLIENT_MESSAGE_BYTES_MAX));
    let ws =
        WebSocketStream::from_partially_read(stream, read_ahead, Role::Server, Some(config)).await;
    let mut session = Session {
        ws,
        shutdown,
        inbox,
        delay_ns: i64::try_from(request.delay.as_nanos()).unwrap_or(i64::MAX),
        categorize: request.categorize,
        history_end: i64::MIN,
        history_seen: AHashSet::default(),
        fingerprints: ahash::RandomState::new(),
    };
    let end = session.serve(&core, request).await;
    session.close(end).await;
    registration.stop().await;
}

/// The tail's place on every shard; taken back by [`Registration::stop`], or, if it is
/// dropped before (the upgrade or the session never ran to its end), by the core's clean-up
/// task (see [`crate::tail::inbox::Inboxes::orphan`]).
struct Registration {
    core: Rc<Core>,
    key: TailKey,
    active: bool,
}

impl Registration {
    async fn stop(&mut self) {
        unregister(&self.core, self.key).await;
        self.active = false;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.active {
            self.core.tails.orphan(self.key);
        }
    }
}

/// Takes a tail back from every shard, within [`REGISTRATION_TIMEOUT`].
pub async fn unregister(core: &Rc<Core>, key: TailKey) {
    // A peer that does not answer is stopping; its tails end with it.
    let _ = or(
        async { Some(core.fan_out(ShardRequest::TailStop(key)).await) },
        async {
            sleep(REGISTRATION_TIMEOUT).await;
            None
        },
    )
    .await;
}

struct Session {
    ws: WebSocketStream<TcpStream>,
    shutdown: Shutdown,
    inbox: OpenInbox,
    delay_ns: i64,
    categorize: bool,
    /// Entries of the history, by fingerprint, and where the history ended: a live entry
    /// before that end may be one of them.
    history_end: TimestampNs,
    history_seen: AHashSet<u64>,
    fingerprints: ahash::RandomState,
}

impl Session {
    async fn serve(&mut self, core: &Rc<Core>, request: TailRequest) -> End {
        let history = self.until_stop(history(core, &request)).await;
        let (entries, end) = match history {
            Some(Ok(h)) => h,
            Some(Err(e)) => return End::Failed(e.to_string()),
            None => return End::Shutdown,
        };
        self.history_end = end;
        let seen: Vec<u64> = entries.iter().map(|e| self.fingerprint(e)).collect();
        self.history_seen.extend(seen);
        for chunk in entries.chunks(ENTRIES_PER_MESSAGE_MAX) {
            if let Err(end) = self.send(message(chunk, &[], self.categorize)).await {
                return end;
            }
        }
        self.live().await
    }

    /// Sends live entries as they come due, pings, and answers the client, until the end.
    async fn live(&mut self) -> End {
        enum Event {
            Incoming(Option<Result<Message, WsError>>),
            Due,
            Ping,
            Stop,
            Expired,
        }
        let expires = Instant::now() + TAIL_DURATION_MAX;
        let mut next_ping = Instant::now() + PING_INTERVAL;
        loop {
            // Checked here too: a stream that never lets the session wait still ends.
            if Instant::now() >= expires {
                return End::Failed(TAIL_EXPIRED.into());
            }
            let now = now_ns();
            let taken = self.inbox.inbox.take_due(now, self.delay_ns);
            if !taken.entries.is_empty() {
                let entries: Vec<TailedEntry> = taken
                    .entries
                    .into_iter()
                    .filter(|e| !self.seen_in_history(e))
                    .collect();
                let text = message(&entries, &taken.dropped, self.categorize);
                if let Err(end) = self.send(text).await {
                    return end;
                }
                continue;
            }
            let due_in = self
                .inbox
                .inbox
                .next_due(self.delay_ns)
                .map(|due| Duration::from_nanos(due.saturating_sub(now).max(0) as u64 + 1));
            let ping_in = next_ping.saturating_duration_since(Instant::now());
            let expires_in = expires.saturating_duration_since(Instant::now());
            let (ws, inbox, shutdown) = (&mut self.ws, &self.inbox.inbox, &self.shutdown);
            let event = or(
                async { Event::Incoming(ws.next().await) },
                or(
                    async {
                        match due_in {
                            Some(d) => or(sleep(d), inbox.arrived()).await,
                            None => inbox.arrived().await,
                        }
                        Event::Due
                    },
                    or(
                        async {
                            sleep(ping_in).await;
                            Event::Ping
                        },
                        or(
                            async {
                                shutdown.wait().await;
                                Event::Stop
                            },
                            async {
                                sleep(expires_in).await;
                                Event::Expired
                            },
                        ),
                    ),
                ),
            )
            .await;
            match event {
                // The WebSocket layer answers pings and a close frame by itself; data
                // frames from a tail client mean nothing (Loki ignores them too).
                Event::Incoming(Some(Ok(Message::Close(_)))) | Event::Incoming(None) => {
                    return End::ClientClosed;
                }
                Event::Incoming(Some(Ok(_))) => {}
                Event::Incoming(Some(Err(_))) => return End::Broken,
                Event::Due => {}
                Event::Ping => {
                    next_ping = Instant::now() + PING_INTERVAL;
                    if let Err(end) = self.send_message(Message::Ping(Default::default())).await {
                        return end;
                    }
                }
                Event::Stop => return End::Shutdown,
                Event::Expired => return End::Failed(TAIL_EXPIRED.into()),
            }
        }
    }

    fn fingerprint(&self, e: &TailedEntry) -> u64 {
        self.fingerprints.hash_one((e.ts, &*e.labels, &e.line))
    }

    /// Whether a live entry was already sent with the history.
    fn seen_in_history(&self, e: &TailedEntry) -> bool {
        e.ts < self.history_end
            && !self.history_seen.is_empty()
            && self.history_seen.contains(&self.fingerprint(e))
    }

    async fn send(&mut self, text: String) -> Result<(), End> {
        self.send_message(Message::text(text)).await
    }

    /// Sends one message; a stop while the client is not reading abandons it.
    async fn send_message(&mut self, msg: Message) -> Result<(), End> {
        let (ws, shutdown) = (&mut self.ws, &self.shutdown);
        let sent = or(async { Some(ws.send(msg).await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        match sent {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(End::Broken),
            None => Err(End::Shutdown),
        }
    }

    /// Runs `work` unless the server stops first (`None`).
    async fn until_stop<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        or(async { Some(work.await) }, async {
            self.shutdown.wait().await;
            None
        })
        .await
    }

    /// Ends the WebSocket conversation as `end` requires, within [`CLOSE_TIMEOUT`].
    async fn close(&mut self, end: End) {
        let frame = match end {
            End::Broken => return,
            End::ClientClosed => None,
            End::Shutdown => Some(CloseFrame {
                code: CloseCode::Away,
                reason: "server shutting down".into(),
            }),
            End::Failed(why) => Some(CloseFrame {
                code: CloseCode::Error,
                reason: close_reason(&why).into(),
            }),
        };
        let ws = &mut self.ws;
        let closing = async {
            if let Some(frame) = frame
                && ws.close(Some(frame)).await.is_err()
            {
                return;
            }
            // Reads until the client's close frame (or its reply to ours) has been answered
            // and the connection is done.
            while let Some(Ok(_)) = ws.next().await {}
        };
        or(closing, sleep(CLOSE_TIMEOUT)).await;
    }
}

/// A close frame's reason is at most 123 bytes (RFC 6455): longer error texts are cut at a
/// character boundary.
fn close_reason(why: &str) -> &str {
    const REASON_BYTES_MAX: usize = 123;
    if why.len() <= REASON_BYTES_MAX {
        return why;
    }
    let mut end = REASON_BYTES_MAX;
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    &why[..end]
}

/// The newest `limit` entries in `[start, now)`, oldest first, and the `now` it ended at.
async fn history(
    core: &Rc<Core>,
    request: &TailRequest,
) -> Result<(Vec<TailedEntry>, TimestampNs), QueryError> {
    let end = now_ns();
    if request.start_ns >= end {
        return Ok((Vec::new(), end));
    }
    let limits = &core.query_limits(&request.tenant);
    let _admitted = core.queries.admit(limits)?;
    let running = Running::new(limits);
    let req = Arc::new(LogsRequest {
        tenants: request.tenant.as_str().into(),
        selector: request.selector.clone(),
        pipeline: request.pipeline.clone(),
        start: request.start_ns,
        end,
        limit: request.limit as usize,
        direction: Direction::Backward,
        control: running.control.clone(),
    });
    let answers = ask_all(
        core,
        ShardRequest::Logs(req),
        &running.control,
        limits.query_timeout,
    )
    .await?;
    running.finish();
    let partials = expect_answers(answers, "logs", |a| match a {
        ShardAnswer::Logs(p) => Ok(p),
        other => Err(other),
    })?;
    let streams = merge_partials(partials, Direction::Backward, request.limit as usize);
    let mut entries = Vec::new();
    for s in streams {
        let labels = Arc::new(s.labels);
        for (ts, line, metadata, parsed) in s.entries {
            entries.push(TailedEntry {
                ts,
                labels: labels.clone(),
                line,
                metadata,
                parsed,
            });
        }
    }
    // Stable: entries of one timestamp stay in label order.
    entries.sort_by_key(|e| e.ts);
    Ok((entries, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(cut));
    }
}
