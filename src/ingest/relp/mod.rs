//! RELP, the Reliable Event Logging Protocol of rsyslog's `omrelp`: syslog messages whose
//! answer says they are durable.
//!
//! Which question it answers: "when may a syslog sender forget a line?" Plain syslog over
//! TCP has no answer, so a crash loses what the kernel had taken. Over RELP every message is
//! a command with a transaction number, and the server answers each one. This server answers
//! `200 OK` only once the message's line is in a WAL group commit that was fsynced on its owner
//! shard, so an acknowledged line is a durable one, end to end. What was sent without an
//! answer when a connection breaks is resent by the sender: duplicates, never a loss. RELP
//! batches ask their owner to drop exact duplicates (same stream, timestamp and line), as a
//! Loki push does, so a resent message that carries its own timestamp (rsyslog's forwarding
//! templates carry microseconds) is stored once.
//!
//! A session, on one connection (plain or inside TLS):
//! - `open` first, with the client's offers (`relp_version`, `commands=syslog`), answered
//!   with ours; a session that does not offer `syslog` is refused (`500`) and closed.
//! - `syslog` commands, many in flight within the sender's window (128 in librelp). What one
//!   read brings is parsed as syslog TCP frames are (same labels, tenant, limits), sent to
//!   the owner shards in batches, and answered, in the order received, once all of them are
//!   durable: one group commit covers the whole window. A batch the owner refuses (its WAL
//!   stopped) is answered `500` for each of its commands, and the session is closed.
//! - `close`, answered with an empty `rsp`, after which the server closes the connection.
//! - At shutdown, the answers owed are sent, then the `serverclose` hint, then the close.
//!
//! Backpressure is syslog TCP's: the connection is not read while its lines wait for disk
//! space or memory, or while its tenant is over its ingestion rate, and the sender's window
//! then holds it back. A message longer than `syslog_frame_bytes_max` is cut and counted,
//! as over syslog TCP, not refused: a refused message would be resent forever.

pub mod frame;

use std::rc::Rc;

use futures_lite::future;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use self::frame::{Decoded, RelpDecoder};
use super::frame_buffer::FrameBuffer;
use super::listeners::{SyslogBatcher, now_ns, room_to_read, slow_to_rate, writes_taken};
use crate::http::admission::{Admission, EdgeStats};
use crate::runtime::Core;
use crate::shard::Protocol;

/// What a command read in this round is answered with, in the order the commands came.
enum Answer {
    /// `200 OK` once the round's lines are durable, or `500` if they were refused.
    Durable(u32),
    /// An answer known at once (`open`, `close`, a refusal).
    Now(u32, Vec<u8>),
}

/// Why a session ends after the current round's answers are written.
#[derive(PartialEq, Eq)]
enum End {
    /// The client sent `close`.
    Closed,
    /// The client's bytes stopped being RELP, or a command came out of place.
    Broken,
    /// The connection ended, the core is stopping, or the server cannot take writes: the
    /// `serverclose` hint goes first.
    ByServer,
}

/// Serves one RELP session until it ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    core: Rc<Core>,
    mut stream: S,
    peer: Option<String>,
    admission: Admission,
    tenant: Rc<str>,
) {
    let mut decoder = RelpDecoder::new(core.config.syslog_frame_bytes_max);
    let mut batcher = SyslogBatcher::new(core.clone(), tenant.clone(), Protocol::Relp, peer);
    let mut buf = FrameBuffer::new(decoder.buffer_bytes_min(), admission.empty_charge());
    let edge = &core.shard.edge;
    let mut open = false;
    let mut answers: Vec<Answer> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        let mut end = None;
        if !room_to_read(&core, &mut buf).await || !writes_taken(&core).await {
            end = Some(End::ByServer);
        }
        let mut eof = false;
        if end.is_none() {
            let read = future::or(async { Some(stream.read(buf.spare()).await) }, async {
                core.shutdown.wait().await;
                None
            })
            .await;
            match read {
                None => end = Some(End::ByServer),
                Some(Ok(0)) | Some(Err(_)) => eof = true,
                Some(Ok(n)) => buf.filled(n),
            }
        }
        let now = now_ns();
        batcher.refresh();
        let mut message_bytes = 0u64;
        while end.is_none() {
            match decoder.decode(buf.unread()) {
                Decoded::Frame(f) => {
                    let consumed = f.consumed;
                    match f.command {
                        b"syslog" if open => {
                            message_bytes += f.data.len() as u64;
                            batcher.add(trim_lf(f.data), now, f.truncated);
                            answers.push(Answer::Durable(f.txnr));
                        }
                        b"open" if !open => match frame::parse_offers(f.data) {
                            Ok(offers) if offers.syslog_command => {
                                open = true;
                                answers.push(Answer::Now(f.txnr, frame::open_answer()));
                            }
                            Ok(_) => {
                                refuse(
                                    &mut answers,
                                    edge,
                                    f.txnr,
                                    "required command syslog not offered",
                                );
                                end = Some(End::Broken);
                            }
                            Err(why) => {
                                refuse(&mut answers, edge, f.txnr, why);
                                end = Some(End::Broken);
                            }
                        },
                        b"open" => {
                            refuse(
                                &mut answers,
                                edge,
                                f.txnr,
                                "protocol error: connection already open",
                            );
                            end = Some(End::Broken);
                        }
                        b"syslog" => {
                            refuse(
                                &mut answers,
                                edge,
                                f.txnr,
                                "protocol error: no open session",
                            );
                            end = Some(End::Broken);
                        }
                        b"close" => {
                            answers.push(Answer::Now(f.txnr, Vec::new()));
                            end = Some(End::Closed);
                        }
                        // Hints (transaction 0) are not answered; none from a client matters.
                        _ if f.txnr == 0 => {}
                        _ => refuse(&mut answers, edge, f.txnr, "command not supported"),
                    }
                    buf.consume(consumed);
                }
                Decoded::Skipped { consumed } => buf.consume(consumed),
                Decoded::NeedMore => break,
                Decoded::Invalid(why) => {
                    edge.relp_broken_frames.inc();
                    eprintln!("shard {}: closing a RELP session: {why}", core.id);
                    end = Some(End::Broken);
                }
            }
            if batcher.pending_bytes() >= crate::config::BATCH_BYTES_TARGET {
                batcher.flush();
            }
        }
        if eof && end.is_none() {
            end = Some(End::ByServer);
        }
        // The round's lines, durable (or refused) together; then their answers, in order.
        batcher.flush();
        let settled = batcher.settle(0).await;
        out.clear();
        for answer in answers.drain(..) {
            match (answer, &settled) {
                (Answer::Durable(txnr), Ok(())) => {
                    edge.relp_acknowledged.inc();
                    frame::write_ok(&mut out, txnr);
                }
                (Answer::Durable(txnr), Err(e)) => {
                    edge.relp_refused.inc();
                    frame::write_error(&mut out, txnr, &e.to_string());
                }
                (Answer::Now(txnr, data), _) => frame::write_rsp(&mut out, txnr, &data),
            }
        }
        if let Err(e) = &settled {
            eprintln!("shard {}: closing a RELP session: {e}", core.id);
            end = Some(End::ByServer);
        }
        if end == Some(End::ByServer) && !eof {
            frame::write_serverclose(&mut out);
        }
        if !out.is_empty()
            && (stream.write_all(&out).await.is_err() || stream.flush().await.is_err())
        {
            return;
        }
        if end.is_some() {
            let _ = stream.close().await;
            return;
        }
        slow_to_rate(&core, &tenant, message_bytes).await;
    }
}

/// Answers `txnr` with `500 <why>`, counted.
fn refuse(answers: &mut Vec<Answer>, edge: &EdgeStats, txnr: u32, why: &str) {
    edge.relp_refused.inc();
    answers.push(Answer::Now(txnr, frame::error_data(why)));
}

/// A message's trailing LF (some senders' templates end with one) is not part of the line.
fn trim_lf(data: &[u8]) -> &[u8] {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.strip_suffix(b"\r").unwrap_or(data)
}
