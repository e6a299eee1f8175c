//! Where the harness's log lines come from: real files replayed line by line
//! (`--lines FILE...`), or a generator of realistic lines.
//!
//! The generator writes the lines a small fleet really produces: sshd logins and failures,
//! nginx access lines, kernel messages, an application's JSON logs and PostgreSQL slow
//! statements, each with varying numbers, request ids, IP addresses, user names, durations
//! and status codes, so that the server's tokenizer, filters and compression see what they
//! see in production. No line is padding. One "kind" (template or file) is a stream family:
//! stream `k` of a run takes its lines from kind `k % kinds`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::BenchError;

/// A replayed file larger than this is refused: the whole file is held in memory, once,
/// shared by all sender threads.
pub const LINE_FILE_BYTES_MAX: u64 = 1 << 30;
/// Replayed lines longer than this are cut: the server's default line limit (256 KiB) would
/// refuse them, and a benchmark of refusals measures nothing.
pub const REPLAYED_LINE_BYTES_MAX: usize = 64 * 1024;
/// One in this many kernel lines is an OOM kill: the rare token the `rare-token` query looks
/// for, about 1 in 25,000 lines of the whole mix.
pub const RARE_LINE_EVERY: u64 = 5000;

/// The token of generated lines that one in [`RARE_LINE_EVERY`] kernel lines carries.
const GENERATED_RARE_TOKEN: &str = "oom-kill";
/// A phrase a quarter of the sshd lines carry.
const GENERATED_COMMON_PHRASE: &str = "Failed password";

/// A generated kind: the app/service name and its syslog facility and severity.
struct Template {
    name: &'static str,
    facility: u8,
    severity: u8,
}

const TEMPLATES: &[Template] = &[
    Template {
        name: "sshd",
        facility: 4,
        severity: 6,
    },
    Template {
        name: "nginx",
        facility: 23,
        severity: 6,
    },
    Template {
        name: "kernel",
        facility: 0,
        severity: 4,
    },
    Template {
        name: "checkout",
        facility: 16,
        severity: 6,
    },
    Template {
        name: "postgres",
        facility: 17,
        severity: 5,
    },
];

const USERS: &[&str] = &[
    "root", "admin", "deploy", "alice", "bob", "carol", "dave", "postgres", "ubuntu", "git",
    "jenkins", "oracle", "test", "backup", "www-data", "mallory",
];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/cart",
    "/api/v2/checkout",
    "/static/app.js",
    "/login",
    "/api/v1/users",
    "/healthz",
    "/api/v1/search",
    "/images/logo.png",
    "/metrics",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const STATUS: &[u16] = &[
    200, 200, 200, 200, 201, 204, 301, 304, 400, 404, 404, 500, 502, 503,
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "kube-probe/1.30",
];
const TABLES: &[&str] = &["orders", "customers", "invoices", "line_items", "sessions"];
const KERNEL: &[&str] = &[
    "TCP: request_sock_TCP: Possible SYN flooding on port",
    "EXT4-fs (nvme0n1p2): re-mounted. Opts: errors=remount-ro. Quota mode: none. port",
    "e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx, port",
    "audit: type=1400 apparmor=\"DENIED\" operation=\"open\" profile=\"snap.lxd\" port",
];

/// What a run replays: nothing (generate) or the lines of some files.
#[derive(Clone, Debug, Default)]
pub struct LineCorpus {
    files: Arc<Vec<CorpusFile>>,
}

#[derive(Debug)]
struct CorpusFile {
    /// A label-safe name derived from the file name (`OpenSSH_2k.log` -> `openssh`).
    name: String,
    lines: Vec<String>,
}

/// The needles of the query scenario's substring and rare-token queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTokens {
    pub common: String,
    pub rare: String,
}

impl LineCorpus {
    /// Reads every file whole; an empty or unreadable file is an error.
    pub fn load(paths: &[PathBuf]) -> Result<LineCorpus, BenchError> {
        let mut files = Vec::new();
        for path in paths {
            let len = std::fs::metadata(path)
                .map_err(|e| BenchError::new(format!("--lines {}: {e}", path.display())))?
                .len();
            if len > LINE_FILE_BYTES_MAX {
                return Err(BenchError::new(format!(
                    "--lines {}: {len} bytes is more than the {LINE_FILE_BYTES_MAX} a replayed file may have",
                    path.display()
                )));
            }
            let bytes = std::fs::read(path)
                .map_err(|e| BenchError::new(format!("--lines {}: {e}", path.display())))?;
            let lines: Vec<String> = String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| cut(l.trim_end_matches('\r')).to_string())
                .filter(|l| !l.trim().is_empty())
                .collect();
            if lines.is_empty() {
                return Err(BenchError::new(format!(
                    "--lines {}: the file has no non-empty lines to replay",
                    path.display()
                )));
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default();
            files.push(CorpusFile {
                name: file_kind_name(&stem),
                lines,
            });
        }
        Ok(LineCorpus {
            files: Arc::new(files),
        })
    }

    /// Every line of every replayed file, in file order (none for generated lines).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .flat_map(|f| f.lines.iter().map(String::as_str))
    }

    pub fn is_generated(&self) -> bool {
        self.files.is_empty()
    }

    /// How many kinds (templates or files) there are.
    pub fn kinds(&self) -> usize {
        if self.is_generated() {
            TEMPLATES.len()
        } else {
            self.files.len()
        }
    }

    /// The app/service name of kind `k`.
    pub fn kind_name(&self, k: usize) -> &str {
        if self.is_generated() {
            TEMPLATES[k % TEMPLATES.len()].name
        } else {
            &self.files[k % self.files.len()].name
        }
    }

    /// Syslog facility and severity of kind `k` (replayed files are `user.info`).
    pub fn kind_priority(&self, k: usize) -> (u8, u8) {
        if self.is_generated() {
            let t = &TEMPLATES[k % TEMPLATES.len()];
            (t.facility, t.severity)
        } else {
            (1, 6)
        }
    }

    /// A human description for the report.
    pub fn describe(&self) -> String {
        if self.is_generated() {
            let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
            format!("generated ({})", names.join(", "))
        } else {
            let parts: Vec<String> = self
                .files
                .iter()
                .map(|f| format!("{} ({} lines)", f.name, f.lines.len()))
                .collect();
            format!("replayed files: {}", parts.join(", "))
        }
    }

    /// The needles for substring and rare-token queries: for generated lines, a phrase of a
    /// quarter of the sshd lines and the OOM token; for files, a word in about 5% of the
    /// lines and a word in very few of them.
    pub fn query_tokens(&self) -> QueryTokens {
        if self.is_generated() {
            return QueryTokens {
                common: GENERATED_COMMON_PHRASE.to_string(),
                rare: GENERATED_RARE_TOKEN.to_string(),
            };
        }
        let mut counts: std::collections::HashMap<&str, usize> = Default::default();
        let mut total = 0usize;
        for f in self.files.iter() {
            for line in &f.lines {
                total += 1;
                let mut seen: Vec<&str> = line
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .filter(|w| w.len() >= 5 && !w.chars().all(|c| c.is_ascii_digit()))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                for w in seen {
                    *counts.entry(w).or_default() += 1;
                }
            }
        }
        let target = (total / 20).max(1);
        let common = counts
            .iter()
            .min_by_key(|(w, c)| (c.abs_diff(target), **w))
            .map(|(w, _)| w.to_string());
        let rare = counts
            .iter()
            .filter(|(_, c)| **c <= (total / 5000).max(1))
            .max_by_key(|(w, _)| (w.len(), std::cmp::Reverse(**w)))
            .map(|(w, _)| w.to_string());
        QueryTokens {
            common: common.unwrap_or_else(|| GENERATED_COMMON_PHRASE.to_string()),
            rare: rare.unwrap_or_else(|| GENERATED_RARE_TOKEN.to_string()),
        }
    }
}

fn cut(line: &str) -> &str {
    if line.len() <= REPLAYED_LINE_BYTES_MAX {
        return line;
    }
    let mut end = REPLAYED_LINE_BYTES_MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// `OpenSSH_2k` -> `openssh`: lower case, up to the first `_`, only label/app-name safe
/// characters, never empty.
fn file_kind_name(stem: &str) -> String {
    let head = stem.split('_').next().unwrap_or(stem);
    let name: String = head
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .take(32)
        .collect();
    if name.is_empty() {
        "file".to_string()
    } else {
        name
    }
}

/// A per-thread source of lines over a [`LineCorpus`]: replays files from a per-thread
/// offset, or generates lines from a seeded random sequence.
pub struct LineSource {
    corpus: LineCorpus,
    rng: u64,
    cursors: Vec<usize>,
    kernel_lines: u64,
    /// Unix seconds of the lines being generated, set once per batch by the caller.
    now_secs: i64,
    nginx_time: String,
    iso_time: String,
}

impl LineSource {
    /// `seed` differs per thread so that threads do not send the same sequence.
    pub fn new(corpus: &LineCorpus, seed: u64) -> LineSource {
        let files = corpus.files.len();
        let cursors = (0..files)
            .map(|i| {
                let n = corpus.files[i].lines.len() as u64;
                (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n.max(1)) as usize
            })
            .collect();
        let mut s = LineSource {
            corpus: corpus.clone(),
            rng: seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1,
            cursors,
            kernel_lines: seed % RARE_LINE_EVERY,
            now_secs: -1,
            nginx_time: String::new(),
            iso_time: String::new(),
        };
        s.set_time(unix_now_secs());
        s
    }

    /// Sets the time written into generated lines (nginx and JSON timestamps); cheap when
    /// the second has not changed.
    pub fn set_time(&mut self, unix_secs: i64) {
        if unix_secs == self.now_secs {
            return;
        }
        self.now_secs = unix_secs;
        let t = time::OffsetDateTime::from_unix_timestamp(unix_secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        self.nginx_time = format!(
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            t.day(),
            MONTHS[t.month() as usize - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        );
        self.iso_time = format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: fast, and good enough to vary ids and numbers.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn ip(&mut self, out: &mut String) {
        let r = self.next();
        let first = [10u64, 172, 192, 203, 198, 81, 45][(r % 7) as usize];
        let _ = write!(
            out,
            "{}.{}.{}.{}",
            first,
            (r >> 8) & 255,
            (r >> 16) & 255,
            1 + ((r >> 24) % 254)
        );
    }

    /// Appends one line of kind `k` to `out` (no newline).
    pub fn next_line(&mut self, k: usize, out: &mut String) {
        if !self.corpus.is_generated() {
            let i = k % self.corpus.files.len();
            let lines = &self.corpus.files[i].lines;
            let c = &mut self.cursors[i];
            out.push_str(&lines[*c % lines.len()]);
            *c = (*c + 1) % lines.len();
            return;
        }
        match k % TEMPLATES.len() {
            0 => self.sshd(out),
            1 => self.nginx(out),
            2 => self.kernel(out),
            3 => self.app_json(out),
            _ => self.postgres(out),
        }
    }

    fn sshd(&mut self, out: &mut String) {
        let user = *self.pick(USERS);
        let port = 1024 + self.below(64_000);
        match self.below(4) {
            0 => {
                let _ = write!(out, "Failed password for invalid user {user} from ");
                self.ip(out);
                let _ = write!(out, " port {port} ssh2");
            }
            1 => {
                let _ = write!(out, "Accepted publickey for {user} from ");
                self.ip(out);
                let key = self.next();
                let _ = write!(
                    out,
                    " port {port} ssh2: ED25519 SHA256:{key:016x}{:08x}",
                    key >> 17
                );
            }
            2 => {
                let _ = write!(
                    out,
                    "pam_unix(sshd:session): session closed for user {user}"
                );
            }
            _ => {
                let _ = write!(out, "Connection closed by authenticating user {user} ");
                self.ip(out);
                let _ = write!(out, " port {port} [preauth]");
            }
        }
    }

    fn nginx(&mut self, out: &mut String) {
        self.ip(out);
        let method = *self.pick(METHODS);
        let path = *self.pick(PATHS);
        let id = self.below(10_000_000);
        let status = *self.pick(STATUS);
        let bytes = if status == 204 || status == 304 {
            0
        } else {
            120 + self.below(60_000)
        };
        let agent = *self.pick(AGENTS);
        let rt_ms = self.below(2500);
        let _ = write!(
            out,
            " - - [{}] \"{method} {path}/{id} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\" rt={}.{:03}",
            self.nginx_time,
            rt_ms / 1000,
            rt_ms % 1000
        );
    }

    fn kernel(&mut self, out: &mut String) {
        self.kernel_lines += 1;
        let uptime = self.now_secs.rem_euclid(10_000_000);
        let micros = self.below(1_000_000);
        if self.kernel_lines.is_multiple_of(RARE_LINE_EVERY) {
            let pid = 1000 + self.below(4_000_000);
            let rss = 100_000 + self.below(30_000_000);
            let _ = write!(
                out,
                "[{uptime}.{micros:06}] oom-kill:constraint=CONSTRAINT_NONE,task=java,pid={pid},uid=1001 Out of memory: Killed process {pid} (java) anon-rss:{rss}kB"
            );
            return;
        }
        let text = *self.pick(KERNEL);
        let port = self.below(65_536);
        let _ = write!(out, "[{uptime}.{micros:06}] {text} {port}");
    }

    fn app_json(&mut self, out: &mut String) {
        let a = self.next();
        let b = self.next();
        let user = *self.pick(USERS);
        let path = *self.pick(PATHS);
        let status = *self.pick(STATUS);
        let level = if status >= 500 {
            "error"
        } else if status >= 400 {
            "warn"
        } else {
            "info"
        };
        let dur = self.below(900_000);
        let _ = write!(
            out,
            r#"{{"ts":"{}.{:03}Z","level":"{level}","msg":"request completed","request_id":"{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}","user":"{user}","method":"POST","path":"{path}","status":{status},"duration_ms":{}.{:03},"cart_items":{}}}"#,
            self.iso_time,
            a % 1000,
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 48,
            b & 0xffff_ffff_ffff,
            dur / 1000,
            dur % 1000,
            b % 17
        );
    }

    fn postgres(&mut self, out: &mut String) {
        let table = *self.pick(TABLES);
        let ms = self.below(5_000_000);
        let id = self.below(50_000_000);
        let pid = 1000 + self.below(60_000);
        let _ = write!(
            out,
            "[{pid}] LOG:  duration: {}.{:03} ms  statement: SELECT * FROM {table} WHERE customer_id = {id} ORDER BY created_at DESC LIMIT 50",
            ms / 1000,
            ms % 1000
        );
    }
}

pub fn unix_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_lines_vary_and_carry_the_tokens() {
        let corpus = LineCorpus::default();
        let mut src = LineSource::new(&corpus, 7);
        let mut lines = std::collections::HashSet::new();
        let mut rare = 0;
        let mut common = 0;
        let n = RARE_LINE_EVERY as usize * corpus.kinds() * 2;
        for i in 0..n {
            let mut s = String::new();
            src.next_line(i, &mut s);
            assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
            rare += s.contains(GENERATED_RARE_TOKEN) as usize;
            common += s.contains(GENERATED_COMMON_PHRASE) as usize;
            lines.insert(s);
        }
        assert!(
            lines.len() > n * 9 / 10,
            "lines repeat: {} distinct of {n}",
            lines.len()
        );
        assert_eq!(rare, 2, "one OOM line per {RARE_LINE_EVERY} kernel lines");
        assert!(common > n / 40, "{common}");
        // Every line of the JSON template is valid JSON.
        let mut s = String::new();
        src.next_line(3, &mut s);
        assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok(), "{s}");
    }

    #[test]
    fn replayed_files_cycle_and_name_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("OpenSSH_2k.log");
        std::fs::write(&path, "first line\r\n\nsecond line here\n").unwrap();
        let corpus = LineCorpus::load(&[path]).unwrap();
        assert_eq!(corpus.kinds(), 1);
        assert_eq!(corpus.kind_name(5), "openssh");
        let mut src = LineSource::new(&corpus, 0);
        let got: Vec<String> = (0..3)
            .map(|_| {
                let mut s = String::new();
                src.next_line(0, &mut s);
                s
            })
            .collect();
        assert_eq!(got, ["first line", "second line here", "first line"]);
        let tokens = corpus.query_tokens();
        assert!(
            ["first", "second"].contains(&tokens.common.as_str()),
            "{tokens:?}"
        );

        let empty = dir.path().join("empty.log");
        std::fs::write(&empty, "\n\n").unwrap();
        let err = LineCorpus::load(&[empty]).unwrap_err();
        assert!(err.to_string().contains("no non-empty lines"), "{err}");
    }
}
