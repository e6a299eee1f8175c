//! Syslog senders: one thread per TCP connection or UDP socket, each writing batches of
//! RFC 5424 or RFC 3164 messages (octet-counted or newline-framed on TCP, one per datagram
//! on UDP) of the run's streams.
//!
//! Every message carries the run id as its HOSTNAME, so the verification can count exactly
//! this run's lines with `{host="<run id>"}`; stream `k` is APP-NAME `<kind>-<k>` with the
//! kind's facility and severity, so a run writes exactly `--streams` label sets.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use super::lines::{LineCorpus, LineSource};
use super::options::{Framing, SyslogFormat};
use super::rate::{Budget, TokenBucket};
use super::stats::SourceCounters;
use super::{ErrorLog, sender_backoff};

/// How long a TCP write may block (the server's backpressure) before the connection is
/// given up: a server that reads nothing for this long is stuck, not slow.
pub const TCP_WRITE_TIMEOUT_MS: u64 = 30_000;
/// How long a TCP connect may take on loopback before the target is taken to be down.
pub const TCP_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Datagrams sent between two looks at the budget and the rate limiter: UDP sends one line
/// per syscall, and asking the shared bucket for every line would measure its lock.
pub const UDP_LINES_PER_GRANT: usize = 64;
/// The process id written into messages (`app[pid]` and PROCID): any plausible value.
const PROCID_BASE: u32 = 2000;

/// What every syslog sender of a run shares.
#[derive(Clone)]
pub struct SyslogLoad {
    pub run_id: String,
    pub corpus: LineCorpus,
    pub streams: usize,
    pub batch: usize,
    pub format: SyslogFormat,
    pub framing: Framing,
    pub budget: Arc<Budget>,
    pub bucket: Option<Arc<TokenBucket>>,
    pub counters: Arc<SourceCounters>,
    pub errors: Arc<ErrorLog>,
}

/// Builds syslog messages of a run, reusing its buffers.
pub struct MessageWriter {
    run_id: String,
    format: SyslogFormat,
    framing: Framing,
    apps: Vec<(String, u8)>,
    /// The timestamp text of the current batch (one per batch: lines of a batch share it).
    stamp: String,
    line: String,
    message: Vec<u8>,
}

impl MessageWriter {
    pub fn new(load: &SyslogLoad) -> MessageWriter {
        let apps = (0..load.streams)
            .map(|k| {
                let (facility, severity) = load.corpus.kind_priority(k);
                (
                    format!("{}-{k}", load.corpus.kind_name(k)),
                    facility * 8 + severity,
                )
            })
            .collect();
        MessageWriter {
            run_id: load.run_id.clone(),
            format: load.format,
            framing: load.framing,
            apps,
            stamp: String::new(),
            line: String::new(),
            message: Vec::new(),
        }
    }

    /// Sets the timestamp of the following messages to the current time, in UTC.
    pub fn stamp_now(&mut self) {
        let now = time::OffsetDateTime::now_utc();
        self.stamp.clear();
        use std::fmt::Write as _;
        let _ = match self.format {
            SyslogFormat::Rfc5424 => write!(
                self.stamp,
                "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                now.year(),
                now.month() as u8,
                now.day(),
                now.hour(),
                now.minute(),
                now.second(),
                now.microsecond()
            ),
            SyslogFormat::Rfc3164 => {
                const MONTHS: [&str; 12] = [
                    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec",
                ];
                write!(
                    self.stamp,
                    "{} {:>2} {:02}:{:02}:{:02}",
                    MONTHS[now.month() as usize - 1],
                    now.day(),
                    now.hour(),
                    now.minute(),
                    now.second()
                )
            }
        };
    }

    /// Appends stream `k`'s next message to `out`, framed for TCP when `framed`; returns the
    /// bytes of the log line itself (the payload).
    pub fn write(
        &mut self,
        src: &mut LineSource,
        k: usize,
        framed: bool,
        out: &mut Vec<u8>,
    ) -> usize {
        let k = k % self.apps.len();
        self.line.clear();
        src.next_line(k, &mut self.line);
        let (app, pri) = (&self.apps[k].0, self.apps[k].1);
        let pid = PROCID_BASE + k as u32;
        self.message.clear();
        let m = &mut self.message;
        let _ = match self.format {
            SyslogFormat::Rfc5424 => write!(
                m,
                "<{pri}>1 {} {} {app} {pid} - - {}",
                self.stamp, self.run_id, self.line
            ),
            SyslogFormat::Rfc3164 => write!(
                m,
                "<{pri}>{} {} {app}[{pid}]: {}",
                self.stamp, self.run_id, self.line
            ),
        };
        match (framed, self.framing) {
            (true, Framing::Octet) => {
                let _ = write!(out, "{} ", m.len());
                out.extend_from_slice(m);
            }
            (true, Framing::Newline) => {
                out.extend_from_slice(m);
                out.push(b'\n');
            }
            (false, _) => out.extend_from_slice(m),
        }
        self.line.len()
    }
}

/// One TCP connection's sender loop.
pub fn tcp_sender(index: usize, addr: SocketAddr, load: SyslogLoad) {
    let mut src = LineSource::new(&load.corpus, 0x5157_0000 + index as u64);
    let mut writer = MessageWriter::new(&load);
    let mut buf = Vec::with_capacity(load.batch * 256);
    let mut frame_ends = Vec::with_capacity(load.batch);
    let mut next_stream = index;
    let mut conn: Option<TcpStream> = None;
    let mut failures = 0u32;
    let c = &load.counters;
    loop {
        let n = load
            .budget
            .take_paced(load.batch as u64, load.bucket.as_deref());
        if n == 0 {
            break;
        }
        buf.clear();
        frame_ends.clear();
        writer.stamp_now();
        src.set_time(super::lines::unix_now_secs());
        let mut line_bytes = 0;
        for _ in 0..n {
            line_bytes += writer.write(&mut src, next_stream, true, &mut buf);
            next_stream = (next_stream + 1) % load.streams;
            frame_ends.push(buf.len());
        }
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => match connect(addr) {
                Ok(s) => conn.insert(s),
                Err(e) => {
                    load.budget.give_back(n);
                    SourceCounters::add(&c.errors, 1);
                    load.errors
                        .note(format!("syslog TCP connect to {addr}: {e}"));
                    failures += 1;
                    if !sender_backoff(&load.budget, failures) {
                        break;
                    }
                    continue;
                }
            },
        };
        let written = write_counting(stream, &buf);
        // Frames wholly written count as sent; a frame cut by an error may or may not be
        // stored (the server keeps a cut frame at EOF); the rest was never sent.
        let whole = frame_ends.iter().take_while(|end| **end <= written).count() as u64;
        SourceCounters::add(&c.lines_sent, whole);
        SourceCounters::add(&c.wire_bytes, written as u64);
        SourceCounters::add(&c.requests, 1);
        match written == buf.len() {
            true => {
                SourceCounters::add(&c.line_bytes, line_bytes as u64);
                failures = 0;
            }
            false => {
                let previous_end = match whole {
                    0 => 0,
                    w => frame_ends[w as usize - 1],
                };
                let cut = (whole < n && written > previous_end) as u64;
                SourceCounters::add(&c.lines_unknown, cut);
                SourceCounters::add(&c.errors, 1);
                load.budget.give_back(n - whole - cut);
                load.errors.note(format!(
                    "syslog TCP write to {addr} failed after {written} of {} bytes",
                    buf.len()
                ));
                conn = None;
                failures += 1;
                if !sender_backoff(&load.budget, failures) {
                    break;
                }
            }
        }
    }
    if let Some(s) = conn {
        // A clean close (FIN after the last byte) so the server reads everything sent.
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_millis(TCP_CONNECT_TIMEOUT_MS))?;
    s.set_write_timeout(Some(Duration::from_millis(TCP_WRITE_TIMEOUT_MS)))?;
    Ok(s)
}

/// Writes all of `buf` unless an error comes first; returns how many bytes were written.
fn write_counting(s: &mut TcpStream, buf: &[u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match s.write(&buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    done
}

/// One UDP socket's sender loop: one message per datagram.
pub fn udp_sender(index: usize, addr: SocketAddr, load: SyslogLoad) {
    let c = &load.counters;
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let socket = match UdpSocket::bind(bind).and_then(|s| s.connect(addr).map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            SourceCounters::add(&c.errors, 1);
            load.errors
                .note(format!("syslog UDP socket to {addr}: {e}"));
            return;
        }
    };
    let mut src = LineSource::new(&load.corpus, 0x0D90_0000 + index as u64);
    let mut writer = MessageWriter::new(&load);
    let mut datagram = Vec::with_capacity(1024);
    let mut next_stream = index;
    let mut failures = 0u32;
    let grant = UDP_LINES_PER_GRANT.min(load.batch) as u64;
    loop {
        let n = load.budget.take_paced(grant, load.bucket.as_deref());
        if n == 0 {
            break;
        }
        writer.stamp_now();
        src.set_time(super::lines::unix_now_secs());
        let mut not_sent = 0;
        for _ in 0..n {
            datagram.clear();
            let line_bytes = writer.write(&mut src, next_stream, false, &mut datagram);
            next_stream = (next_stream + 1) % load.streams;
            match socket.send(&datagram) {
                Ok(_) => {
                    SourceCounters::add(&c.lines_sent, 1);
                    SourceCounters::add(&c.line_bytes, line_bytes as u64);
                    SourceCounters::add(&c.wire_bytes, datagram.len() as u64);
                    SourceCounters::add(&c.requests, 1);
                    failures = 0;
                }
                Err(e) => {
                    // ENOBUFS or a refused port (ICMP): the datagram never left.
                    not_sent += 1;
                    SourceCounters::add(&c.errors, 1);
                    load.errors.note(format!("syslog UDP send to {addr}: {e}"));
                    failures += 1;
                }
            }
        }
        load.budget.give_back(not_sent);
        if failures > 0 && !sender_backoff(&load.budget, failures) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::syslog::{self, ParseContext};
    use std::time::Instant;

    fn load(format: SyslogFormat, framing: Framing) -> SyslogLoad {
        SyslogLoad {
            run_id: "bench-run-1".into(),
            corpus: LineCorpus::default(),
            streams: 3,
            batch: 10,
            format,
            framing,
            budget: Arc::new(Budget::new(
                Some(10),
                Instant::now() + Duration::from_secs(5),
            )),
            bucket: None,
            counters: Arc::default(),
            errors: Arc::default(),
        }
    }

    /// What the writer produces is what the server's parser reads back with the run id as
    /// host and the stream's app name.
    #[test]
    fn messages_parse_with_the_run_id_as_host() {
        for format in [SyslogFormat::Rfc5424, SyslogFormat::Rfc3164] {
            let l = load(format, Framing::Newline);
            let mut w = MessageWriter::new(&l);
            let mut src = LineSource::new(&l.corpus, 1);
            w.stamp_now();
            let mut out = Vec::new();
            let payload = w.write(&mut src, 4, false, &mut out);
            assert!(payload > 10 && out.len() > payload);
            let ctx = ParseContext {
                now_ns: crate::ingest::listeners::now_ns(),
            };
            let msg = syslog::parse(&out, &ctx);
            let text = String::from_utf8_lossy(&out);
            assert_eq!(
                msg.format,
                if format == SyslogFormat::Rfc5424 {
                    syslog::Format::Rfc5424
                } else {
                    syslog::Format::Rfc3164
                },
                "{text}"
            );
            assert_eq!(msg.hostname, Some("bench-run-1"), "{text}");
            assert_eq!(msg.app_name, Some("nginx-1"), "{text}");
        }
    }

    #[test]
    fn framing_is_octet_counted_or_newline() {
        let l = load(SyslogFormat::Rfc5424, Framing::Octet);
        let mut w = MessageWriter::new(&l);
        let mut src = LineSource::new(&l.corpus, 1);
        w.stamp_now();
        let mut out = Vec::new();
        w.write(&mut src, 0, true, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        assert!(rest.starts_with("<38>1 "), "{rest}");

        let l = load(SyslogFormat::Rfc3164, Framing::Newline);
        let mut w = MessageWriter::new(&l);
        w.stamp_now();
        let mut out = Vec::new();
        w.write(&mut src, 2, true, &mut out);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(out.ends_with(b"\n") && out.starts_with(b"<4>"));
    }
}
