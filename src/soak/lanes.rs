//! What each sender of a soak sends, and how every line it sends can be told apart and
//! rebuilt: the lanes, the line markers, and the deterministic choice of stream, text and
//! syslog priority for a line.
//!
//! A line is identified by its sender (the worker number) and its sequence number within
//! that sender, written at the start of the line as `soak=<worker>.<seq> `. Everything else
//! about the line (tenant, stream labels, text) is a function of the seed, the worker and
//! the sequence number, so that the verification can rebuild what each stored line must be
//! without keeping a copy of it; only the timestamp comes from the sender's record of the
//! batch (see [`super::ledger`]).

use crate::ingest::syslog::{facility_name, severity_name};
use crate::model::Labels;

/// Tenant of the checked pushes (every acknowledged line exactly once).
pub const TENANT_PUSH: &str = "soak";
/// Tenant of the old-timestamp pushes that retention drops during the run (at most once).
pub const TENANT_OLD: &str = "soak-old";
/// Tenant the server stores syslog lines under (`--syslog-tenant`).
pub const TENANT_SYSLOG: &str = "soak-syslog";
/// HOSTNAME of every syslog message, and so the `host` label of every syslog stream.
pub const SYSLOG_HOST: &str = "soak-host";
/// The `job` label of the checked pushes and of the old-timestamp pushes.
pub const JOB_PUSH: &str = "soak";
pub const JOB_OLD: &str = "soak-old";

/// Streams the large batches go to: two, so that their heads grow past
/// `config::SCAN_ENTRIES_PER_YIELD` entries between seals (at the default rate, 5,000
/// lines a second each) and a scan of one yields in the middle of it, which is where a
/// query meets a seal round taking that head.
pub const HOT_STREAMS: u64 = 2;
/// Streams of the old-timestamp lane: a handful, each in several old partitions.
pub const OLD_STREAMS: u64 = 16;
/// Distinct syslog APP-NAMEs, each with its own facility and severity: 32 syslog streams.
pub const SYSLOG_APPS: u64 = 32;
/// PROCID of syslog app `k` is this plus `k`, which the server keeps as structured metadata.
pub const SYSLOG_PROCID_BASE: u64 = 1000;
/// Corpus lines are cut to this many bytes: a 5,000-line batch then stays far below the
/// server's 8 MiB push body limit and every syslog frame below its 64 KiB frame limit, so
/// that no refusal or truncation can be mistaken for a loss.
pub const LINE_BYTES_MAX: usize = 1024;

/// What one sender sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Loki push, JSON, 1-10 lines per request over many streams.
    JsonSmall,
    /// Loki push, protobuf in raw snappy, 1-10 lines per request over many streams.
    ProtoSmall,
    /// Loki push, JSON, 1,000-5,000 lines per request over the hot streams.
    JsonLarge,
    /// Loki push, protobuf, 1,000-5,000 lines per request over the hot streams.
    ProtoLarge,
    /// Loki push of lines older than the retention window, JSON and protobuf in turn.
    Old,
    /// Syslog TCP, RFC 5424 with octet-counting framing.
    SyslogOctet,
    /// Syslog TCP, RFC 5424 with newline framing.
    SyslogNewline,
}

/// The senders of a soak, one thread each, with their share of `--rate` in thousandths.
/// Large batches carry most lines (they grow the heads); small batches carry most requests
/// (eight senders, so that a high `--rate` makes thousands of small pushes a second, each
/// waiting for its fsync on both shards); syslog a quarter; the old lane a trickle.
pub const WORKERS: &[(Lane, u64)] = &[
    (Lane::JsonSmall, 25),
    (Lane::JsonSmall, 25),
    (Lane::JsonSmall, 25),
    (Lane::JsonSmall, 25),
    (Lane::ProtoSmall, 25),
    (Lane::ProtoSmall, 25),
    (Lane::ProtoSmall, 25),
    (Lane::ProtoSmall, 25),
    (Lane::JsonLarge, 250),
    (Lane::ProtoLarge, 250),
    (Lane::Old, 50),
    (Lane::SyslogOctet, 125),
    (Lane::SyslogNewline, 125),
];

impl Lane {
    pub fn name(self) -> &'static str {
        match self {
            Lane::JsonSmall => "json-small",
            Lane::ProtoSmall => "proto-small",
            Lane::JsonLarge => "json-large",
            Lane::ProtoLarge => "proto-large",
            Lane::Old => "old",
            Lane::SyslogOctet => "syslog-octet",
            Lane::SyslogNewline => "syslog-newline",
        }
    }

    pub fn tenant(self) -> &'static str {
        match self {
            Lane::Old => TENANT_OLD,
            Lane::SyslogOctet | Lane::SyslogNewline => TENANT_SYSLOG,
            _ => TENANT_PUSH,
        }
    }

    pub fn is_syslog(self) -> bool {
        matches!(self, Lane::SyslogOctet | Lane::SyslogNewline)
    }

    /// Lines per request (push) or per write (syslog), inclusive bounds.
    pub fn batch_lines(self) -> (u64, u64) {
        match self {
            Lane::JsonSmall | Lane::ProtoSmall => (1, 10),
            Lane::JsonLarge | Lane::ProtoLarge => (1000, 5000),
            Lane::Old => (50, 500),
            // A syslog write shares one timestamp; well below a query page, so that the
            // read-back can page through equal timestamps.
            Lane::SyslogOctet | Lane::SyslogNewline => (1, 500),
        }
    }
}

/// The lane of worker `w`.
pub fn lane_of(w: u16) -> Option<Lane> {
    WORKERS.get(usize::from(w)).map(|(lane, _)| *lane)
}

/// splitmix64 of the seed, the worker, the sequence number and a salt: the deterministic
/// choices about a line.
pub fn mix(seed: u64, w: u16, seq: u32, salt: u64) -> u64 {
    let mut z =
        seed ^ (u64::from(w) << 48) ^ u64::from(seq) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const SALT_STREAM: u64 = 1;
const SALT_TEXT: u64 = 2;
/// Salt of the random sequence of a thread (batch sizes, pauses, query choices).
pub const SALT_THREAD: u64 = 3;

/// xorshift64*: the soak's random choices that need not be reproducible line by line
/// (batch sizes, pauses, which query next), seeded from the run's seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next_u64().is_multiple_of(n.max(1))
    }
}

/// The marker that starts line `seq` of worker `w`; the space ends it, so that a line filter
/// on one marker cannot match a longer one.
pub fn marker(w: u16, seq: u32) -> String {
    format!("soak={w}.{seq} ")
}

/// `(worker, seq)` of a stored line, if it starts with a marker.
pub fn parse_marker(line: &str) -> Option<(u16, u32)> {
    let rest = line.strip_prefix("soak=")?;
    let (id, _) = rest.split_once(' ')?;
    let (w, seq) = id.split_once('.')?;
    Some((w.parse().ok()?, seq.parse().ok()?))
}

/// The whole text of line `seq` of worker `w`: its marker, then a corpus line.
pub fn line_text(corpus: &[String], seed: u64, w: u16, seq: u32) -> String {
    let i = mix(seed, w, seq, SALT_TEXT) % corpus.len().max(1) as u64;
    let mut text = marker(w, seq);
    text.push_str(corpus.get(i as usize).map_or("", String::as_str));
    text
}

/// Which stream of its lane line `seq` of worker `w` goes to.
pub fn stream_index(seed: u64, lane: Lane, streams: usize, w: u16, seq: u32) -> u64 {
    let n = match lane {
        Lane::JsonSmall | Lane::ProtoSmall => streams as u64,
        Lane::JsonLarge | Lane::ProtoLarge => HOT_STREAMS,
        Lane::Old => OLD_STREAMS,
        Lane::SyslogOctet | Lane::SyslogNewline => SYSLOG_APPS,
    };
    mix(seed, w, seq, SALT_STREAM) % n.max(1)
}

/// The syslog PRI of APP-NAME `app<k>`: facility and severity vary with the app, so that
/// the soak writes several `facility` and `level` label values.
pub fn syslog_priority(k: u64) -> u8 {
    let facility = (k % 24) as u8;
    let severity = (k % 8) as u8;
    facility * 8 + severity
}

/// The labels the server stores stream `k` of `lane` under. Both small lanes share their
/// streams, and both large lanes theirs, so that two senders write each stream at once.
pub fn stream_labels(lane: Lane, k: u64) -> Labels {
    match lane {
        Lane::JsonSmall | Lane::ProtoSmall => Labels::from_pairs([
            ("job", JOB_PUSH.to_string()),
            ("lane", "small".to_string()),
            ("s", k.to_string()),
        ]),
        Lane::JsonLarge | Lane::ProtoLarge => Labels::from_pairs([
            ("job", JOB_PUSH.to_string()),
            ("lane", "large".to_string()),
            ("s", format!("hot{k}")),
        ]),
        Lane::Old => Labels::from_pairs([("job", JOB_OLD.to_string()), ("s", k.to_string())]),
        Lane::SyslogOctet | Lane::SyslogNewline => {
            let pri = syslog_priority(k);
            Labels::from_pairs([
                ("app", format!("app{k}")),
                ("facility", facility_name(pri / 8).to_string()),
                ("host", SYSLOG_HOST.to_string()),
                ("level", severity_name(pri % 8).to_string()),
            ])
        }
    }
}

/// The labels line `seq` of worker `w` must be stored under.
pub fn expected_labels(seed: u64, streams: usize, w: u16, seq: u32) -> Option<Labels> {
    let lane = lane_of(w)?;
    Some(stream_labels(
        lane,
        stream_index(seed, lane, streams, w, seq),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_do_not_prefix_each_other() {
        let line = line_text(&["a corpus line".to_string()], 9, 3, 12345);
        assert_eq!(line, "soak=3.12345 a corpus line");
        assert_eq!(parse_marker(&line), Some((3, 12345)));
        assert!(!line.contains(&marker(3, 1234)));
        assert_eq!(parse_marker("soak=3.x rest"), None);
        assert_eq!(parse_marker("no marker"), None);
        assert_eq!(parse_marker("soak=70000.1 x"), None);
    }

    #[test]
    fn choices_are_deterministic_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for seq in 0..2000 {
            let k = stream_index(5, Lane::JsonSmall, 200, 0, seq);
            assert_eq!(k, stream_index(5, Lane::JsonSmall, 200, 0, seq));
            assert!(k < 200);
            seen.insert(k);
        }
        assert!(seen.len() > 150, "{}", seen.len());
        assert!(stream_index(5, Lane::ProtoLarge, 200, 5, 7) < HOT_STREAMS);
        assert_ne!(mix(1, 0, 0, 0), mix(2, 0, 0, 0));
    }

    #[test]
    fn every_worker_has_a_lane_and_the_shares_add_up() {
        assert_eq!(WORKERS.iter().map(|(_, s)| s).sum::<u64>(), 1000);
        assert_eq!(lane_of(0), Some(Lane::JsonSmall));
        assert_eq!(lane_of(WORKERS.len() as u16), None);
        let labels = expected_labels(1, 10, 11, 3).unwrap();
        assert_eq!(labels.get("host"), Some(SYSLOG_HOST));
        assert!(labels.get("app").unwrap().starts_with("app"));
        let labels = expected_labels(1, 10, 8, 3).unwrap();
        assert_eq!(labels.get("lane"), Some("large"));
    }
}
