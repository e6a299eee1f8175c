//! The agent's own counters and its `/metrics` listener (Prometheus text format), on a plain
//! thread: one request at a time is plenty for a scrape every few seconds.
//!
//! - `shardlog_agent_lines_read_total{path}`: lines read from each file.
//! - `shardlog_agent_bytes_behind{path}`: the file's size minus its safe position (what a
//!   crash now would read again).
//! - `shardlog_agent_lines_sent_total`: entries the server acknowledged.
//! - `shardlog_agent_send_retries_total`: failed pushes that will be tried again.
//! - `shardlog_agent_batches_dropped_total`: batches the server refused for good (4xx).
//! - `shardlog_agent_buffer_bytes`, `shardlog_agent_buffer_batches`: the spool's size.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a scraper may take to send its request.
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-file figures, replaced whole by the reader after each poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileFigures {
    pub lines_read: u64,
    pub bytes_behind: u64,
}

#[derive(Default)]
pub struct Metrics {
    pub files: Mutex<BTreeMap<String, FileFigures>>,
    pub lines_sent: AtomicU64,
    pub send_retries: AtomicU64,
    pub batches_dropped: AtomicU64,
    pub buffer_bytes: AtomicU64,
    pub buffer_batches: AtomicU64,
    /// Whether the last push failed (not rendered): a stopping agent does not wait for a
    /// server that is down.
    pub failing: std::sync::atomic::AtomicBool,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let files = self.files.lock().expect("metrics lock").clone();
        out.push_str("# HELP shardlog_agent_lines_read_total Lines read from each file.\n");
        out.push_str("# TYPE shardlog_agent_lines_read_total counter\n");
        for (path, f) in &files {
            let _ = writeln!(
                out,
                "shardlog_agent_lines_read_total{{path=\"{}\"}} {}",
                escape(path),
                f.lines_read
            );
        }
        out.push_str(
            "# HELP shardlog_agent_bytes_behind Bytes of each file not yet sent or spooled.\n",
        );
        out.push_str("# TYPE shardlog_agent_bytes_behind gauge\n");
        for (path, f) in &files {
            let _ = writeln!(
                out,
                "shardlog_agent_bytes_behind{{path=\"{}\"}} {}",
                escape(path),
                f.bytes_behind
            );
        }
        let scalars = [
            (
                "shardlog_agent_lines_sent_total",
                "counter",
                "Entries the server acknowledged.",
                &self.lines_sent,
            ),
            (
                "shardlog_agent_send_retries_total",
                "counter",
                "Failed pushes that are tried again.",
                &self.send_retries,
            ),
            (
                "shardlog_agent_batches_dropped_total",
                "counter",
                "Batches the server refused for good (4xx other than 429).",
                &self.batches_dropped,
            ),
            (
                "shardlog_agent_buffer_bytes",
                "gauge",
                "Bytes in the on-disk spool.",
                &self.buffer_bytes,
            ),
            (
                "shardlog_agent_buffer_batches",
                "gauge",
                "Batches in the on-disk spool.",
                &self.buffer_batches,
            ),
        ];
        for (name, kind, help, value) in scalars {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Binds `addr` and answers every request with the metrics, on a thread of its own.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("agent-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &metrics);
            }
        })?;
    Ok(bound)
}

fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(SCRAPE_READ_TIMEOUT))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let path = match parsed.parse(&request) {
        Ok(_) => parsed.path.unwrap_or("/"),
        Err(_) => "",
    };
    let (status, body) = match path.split('?').next() {
        Some("/metrics") => ("200 OK", metrics.render()),
        Some("/ready") => ("200 OK", "ready\n".to_string()),
        _ => ("404 Not Found", "the agent serves /metrics\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_escaped_paths() {
        let m = Metrics::default();
        m.files.lock().unwrap().insert(
            "/var/log/a\"b.log".into(),
            FileFigures {
                lines_read: 3,
                bytes_behind: 10,
            },
        );
        m.lines_sent.store(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("shardlog_agent_lines_read_total{path=\"/var/log/a\\\"b.log\"} 3\n"));
        assert!(text.contains("shardlog_agent_bytes_behind{path=\"/var/log/a\\\"b.log\"} 10\n"));
        assert!(text.contains("shardlog_agent_lines_sent_total 3\n"));
        assert!(text.contains("# TYPE shardlog_agent_buffer_bytes gauge\n"));
    }
}
