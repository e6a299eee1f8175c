//! The trace-lookup workload: lines in the problem statement's shape
//! (`{"timestamp","service_name","log_level","message","trace_id"}`), loaded into shardlog,
//! Loki or VictoriaLogs, then looked up by trace id. `benches/trace-lookup.py` runs it
//! against each server side by side.
//!
//! ```text
//! trace_load load   TARGET ADDR --lines N [--conns 4] [--batch 2000] [--seed S] [--start-ns T]
//! trace_load lookup TARGET ADDR --lines N [--lookups 100] [--seed S] [--start-ns T] [--org ORG]
//! ```
//!
//! TARGET is `shardlog` (`/insert/jsonline`, `trace_id` kept as structured metadata), `loki`
//! (`/loki/api/v1/push` with `trace_id` as structured metadata) or `victorialogs`
//! (`/insert/jsonline`, `trace_id` a field). The data is a function of the seed alone: trace
//! `k` has id `splitmix(seed ^ k)` in hex, 10 lines, one service of 1,000 (streams are
//! service and level), and its lines are lines `10k..10k+10` of the whole, timestamps spread
//! evenly over one day from `--start-ns`; messages are the loghub corpus lines
//! (`--corpus DIR`, default `../shared/corpus/loghub`). `load` prints one JSON object (lines
//! acknowledged, seconds, lines/s, the time range); `lookup` asks for 100 random traces of
//! the same data and prints the median, p99 and maximum latency, the lines returned, and
//! shardlog's query stats summed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LINES_PER_TRACE: u64 = 10;
const SERVICES: u64 = 1000;
const LEVELS: [&str; 3] = ["INFO", "WARN", "ERROR"];
const DAY_NS: u64 = 86_400_000_000_000;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Opts {
    target: String,
    addr: String,
    lines: u64,
    conns: usize,
    batch: u64,
    seed: u64,
    start_ns: u64,
    lookups: usize,
    org: String,
    corpus: String,
}

/// One line of the workload.
struct Line {
    ts: u64,
    service: u64,
    level: &'static str,
    message: usize,
    trace: u64,
}

impl Opts {
    fn step_ns(&self) -> u64 {
        (DAY_NS / self.lines.max(1)).max(1)
    }

    fn trace_id(&self, k: u64) -> String {
        format!("{:016x}", splitmix(self.seed ^ k))
    }

    /// Line `i`; its message is a line of the corpus file of its service (a service logs
    /// the lines of one system, as real services do).
    fn line(&self, i: u64, files: &[std::ops::Range<usize>]) -> Line {
        let k = i / LINES_PER_TRACE;
        let h = splitmix(self.seed ^ k ^ 0x5E5E_5E5E);
        let service = h % SERVICES;
        let file = &files[(service % files.len() as u64) as usize];
        Line {
            ts: self.start_ns + i * self.step_ns(),
            service,
            level: LEVELS[((i % LINES_PER_TRACE) % 3) as usize],
            message: file.start + (splitmix(i ^ self.seed) % file.len() as u64) as usize,
            trace: k,
        }
    }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// The corpus lines, and the range of each file's lines among them.
struct Corpus {
    lines: Vec<String>,
    files: Vec<std::ops::Range<usize>>,
}

fn corpus(dir: &str) -> Corpus {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {dir}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    let mut ranges = Vec::new();
    for f in files {
        let text = std::fs::read(&f).expect("corpus file");
        let start = lines.len();
        lines.extend(
            String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
        ranges.push(start..lines.len());
    }
    Corpus {
        lines,
        files: ranges,
    }
}

/// The body of one batch, lines `range`, in the target's format.
fn body(o: &Opts, corpus: &Corpus, range: std::ops::Range<u64>, out: &mut String) {
    let messages = &corpus.lines;
    out.clear();
    if o.target == "loki" {
        // Grouped by stream, lines in time order within each.
        let mut streams: std::collections::BTreeMap<(u64, &str), Vec<Line>> = Default::default();
        for i in range {
            let l = o.line(i, &corpus.files);
            streams.entry((l.service, l.level)).or_default().push(l);
        }
        out.push_str("{\"streams\":[");
        for (n, ((service, level), lines)) in streams.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"stream\":{{\"service_name\":\"svc-{service:04}\",\"log_level\":\"{level}\"}},\"values\":["
            ));
            for (j, l) in lines.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push_str(&format!("[\"{}\",\"", l.ts));
                escape(&messages[l.message], out);
                out.push_str(&format!("\",{{\"trace_id\":\"{}\"}}]", o.trace_id(l.trace)));
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        return;
    }
    for i in range {
        let l = o.line(i, &corpus.files);
        out.push_str(&format!(
            "{{\"timestamp\":{},\"service_name\":\"svc-{:04}\",\"log_level\":\"{}\",\"message\":\"",
            l.ts, l.service, l.level
        ));
        escape(&messages[l.message], out);
        out.push_str(&format!("\",\"trace_id\":\"{}\"}}\n", o.trace_id(l.trace)));
    }
}

fn path(o: &Opts) -> &'static str {
    match o.target.as_str() {
        "loki" => "/loki/api/v1/push",
        "victorialogs" => {
            "/insert/jsonline?_stream_fields=service_name,log_level&_msg_field=message&_time_field=timestamp"
        }
        _ => "/insert/jsonline",
    }
}

/// Sends one request on a keep-alive connection; returns the status and the body.
fn exchange(s: &mut TcpStream, head: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return Ok((status, buf[end + 4..].to_vec()));
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn load(o: Arc<Opts>) {
    let messages = Arc::new(corpus(&o.corpus));
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..o.conns)
        .map(|_| {
            let (o, messages, next, acked) =
                (o.clone(), messages.clone(), next.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&o.addr).expect("connect");
                s.set_nodelay(true).ok();
                let mut text = String::new();
                loop {
                    let from = next.fetch_add(o.batch, Ordering::Relaxed);
                    if from >= o.lines {
                        break;
                    }
                    let to = (from + o.batch).min(o.lines);
                    body(&o, &messages, from..to, &mut text);
                    let head = format!(
                        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/{}\r\nX-Scope-OrgID: fake\r\nContent-Length: {}\r\n\r\n",
                        path(&o),
                        o.addr,
                        if o.target == "loki" { "json" } else { "stream+json" },
                        text.len()
                    );
                    loop {
                        match exchange(&mut s, &head, text.as_bytes()) {
                            Ok((st, _)) if (200..300).contains(&st) => break,
                            Ok((st, b)) => {
                                eprintln!("status {st}: {}", String::from_utf8_lossy(&b[..b.len().min(300)]));
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            Err(e) => {
                                eprintln!("send: {e}; reconnecting");
                                std::thread::sleep(Duration::from_millis(200));
                                s = TcpStream::connect(&o.addr).expect("connect");
                            }
                        }
                    }
                    acked.fetch_add(to - from, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a sender");
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = acked.load(Ordering::Relaxed);
    println!(
        "{{\"acked\":{n},\"seconds\":{secs:.1},\"lines_per_sec\":{:.0},\"start_ns\":{},\"end_ns\":{}}}",
        n as f64 / secs,
        o.start_ns,
        o.start_ns + o.lines * o.step_ns()
    );
}

/// Sends `head` on a new connection and reads the answer until the server closes it.
fn get_to_end(addr: &str, head: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true).ok();
    s.write_all(head.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = String::from_utf8_lossy(&buf[..end])
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    Ok((status, buf[end + 4..].to_vec()))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn lookup(o: Arc<Opts>) {
    let traces = o.lines / LINES_PER_TRACE;
    let (start, end) = (o.start_ns, o.start_ns + o.lines * o.step_ns() + 1);
    let mut times = Vec::new();
    let mut returned = Vec::new();
    let mut failed: Vec<u16> = Vec::new();
    let mut stats: std::collections::BTreeMap<String, u64> = Default::default();
    for q in 0..o.lookups {
        let k = splitmix(o.seed ^ 0xABCD ^ q as u64) % traces;
        let id = o.trace_id(k);
        let target = if o.target == "victorialogs" {
            format!(
                "/select/logsql/query?query={}&start={start}&end={end}",
                urlencode(&format!("trace_id:=\"{id}\""))
            )
        } else {
            format!(
                "/loki/api/v1/query_range?query={}&start={start}&end={end}&limit=100&direction=backward",
                urlencode(&format!("{{service_name=~\".+\"}} | trace_id=\"{id}\""))
            )
        };
        // HTTP/1.0, one connection per query: every server answers it whole (no chunked
        // encoding) and closes; the connection costs the same for all of them.
        let head = format!(
            "GET {target} HTTP/1.0\r\nHost: {}\r\nX-Scope-OrgID: {}\r\n\r\n",
            o.addr, o.org
        );
        let t = Instant::now();
        let (status, body) = get_to_end(&o.addr, &head).expect("query");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if status != 200 {
            // A server that gives up (Loki's query timeout answers 504) is reported, with
            // the time it took, not taken as a crash of the run.
            eprintln!(
                "lookup {q}: status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            failed.push(status);
            returned.push(0);
            continue;
        }
        let text = String::from_utf8_lossy(&body);
        let n = if o.target == "victorialogs" {
            text.lines().filter(|l| !l.trim().is_empty()).count()
        } else {
            let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON answer");
            v["data"]["result"].as_array().map_or(0, |r| {
                r.iter()
                    .map(|s| s["values"].as_array().map_or(0, Vec::len))
                    .sum()
            })
        };
        returned.push(n);
        if o.target == "shardlog" {
            for key in [
                "decompressedLines",
                "headChunkLines",
                "totalChunks",
                "postFilterChunks",
                "blocksSkippedByMetadataIndex",
                "partsSkippedByMetadataIndex",
                "metadataIndexBytesRead",
                "compressedBytes",
            ] {
                let pat = format!("\"{key}\":");
                if let Some(at) = text.find(&pat) {
                    let digits: String = text[at + pat.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    *stats.entry(key.to_string()).or_default() +=
                        digits.parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("a time"));
    let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    let exact = returned
        .iter()
        .filter(|&&n| n == LINES_PER_TRACE as usize)
        .count();
    let per_query: Vec<String> = stats
        .iter()
        .map(|(k, v)| format!("\"{k}\":{:.1}", *v as f64 / o.lookups as f64))
        .collect();
    println!(
        "{{\"lookups\":{},\"failed\":{failed:?},\"median_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"first_ms\":{:.2},\"exactly_10_lines\":{exact},\"stats_per_lookup\":{{{}}}}}",
        o.lookups,
        pct(0.5),
        pct(0.99),
        sorted[sorted.len() - 1],
        times[0],
        per_query.join(",")
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: trace_load load|lookup TARGET ADDR --lines N [options] (see the source)");
        std::process::exit(2);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let mut o = Opts {
        target: a[2].clone(),
        addr: a[3].clone(),
        lines: 1_000_000,
        conns: 4,
        batch: 2000,
        seed: 1,
        start_ns: now - DAY_NS - 3_600_000_000_000,
        lookups: 100,
        org: "fake".into(),
        corpus: "../shared/corpus/loghub".into(),
    };
    let mut i = 4;
    while i + 1 < a.len() {
        let v = &a[i + 1];
        match a[i].as_str() {
            "--lines" => o.lines = v.parse().expect("--lines"),
            "--conns" => o.conns = v.parse().expect("--conns"),
            "--batch" => o.batch = v.parse().expect("--batch"),
            "--seed" => o.seed = v.parse().expect("--seed"),
            "--start-ns" => o.start_ns = v.parse().expect("--start-ns"),
            "--lookups" => o.lookups = v.parse().expect("--lookups"),
            "--org" => o.org = v.clone(),
            "--corpus" => o.corpus = v.clone(),
            x => {
                eprintln!("unknown option {x}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    if !["shardlog", "loki", "victorialogs"].contains(&o.target.as_str()) {
        eprintln!("TARGET is shardlog, loki or victorialogs");
        std::process::exit(2);
    }
    let o = Arc::new(o);
    match a[1].as_str() {
        "load" => load(o),
        "lookup" => lookup(o),
        x => {
            eprintln!("unknown command {x}");
            std::process::exit(2);
        }
    }
}
