//! From bytes to records: the line splitter cuts what was read from a file into whole lines,
//! and the multiline assembler joins lines into records by a start-of-record regex.
//!
//! Only whole lines are shipped: bytes after the last `\n` wait for the rest of their line,
//! however long the writer takes, because a line cut in two by a slow writer would reach the
//! server as two entries. The one exception is a line longer than `line_bytes_max`, which is
//! cut into pieces of that size (the agent's memory per file is bounded by it). A trailing
//! `\r` is removed with the `\n`, so CRLF files ship the same lines as LF ones.
//!
//! Every line and record carries the file offset just after it: a record's end offset is what
//! the file's position may advance to once the record is safe. A record being assembled has
//! not advanced anything, so after a crash it is read and assembled again whole.
//!
//! Multiline: a line that matches `start` begins a record; other lines join the record before
//! them, with `\n`. A record is complete when the next one starts, when it has `lines_max`
//! lines or the next line would take it over `line_bytes_max` bytes (the line after starts a
//! new one: the server refuses entries over its line limit, which is the same by default, and
//! a refusal would drop the whole batch), or when `timeout` has passed since its last line
//! (the writer may have stopped, and its last record must not wait for ever). Lines before the
//! first start line form records of their own the same way.

use std::time::{Duration, Instant};

use super::config::MultilineConfig;

/// One line as read: its text and the offset just after its `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub end_offset: u64,
}

/// Cuts `bytes`, read from a file at `offset`, into whole lines; returns them and how many
/// bytes they used. Bytes after the last newline are not used, unless they are at least
/// `line_bytes_max` long, in which case pieces of that size are cut off.
pub fn split_lines(bytes: &[u8], offset: u64, line_bytes_max: usize) -> (Vec<Line>, usize) {
    assert!(line_bytes_max > 0, "a line limit of 0 would never advance");
    let mut lines = Vec::new();
    let mut used = 0;
    while used < bytes.len() {
        let rest = &bytes[used..];
        // A line of exactly `line_bytes_max` bytes is whole if its newline follows.
        let window = &rest[..rest.len().min(line_bytes_max + 1)];
        let (text, taken) = match memchr::memchr(b'\n', window) {
            Some(i) => (&rest[..i], i + 1),
            None if window.len() > line_bytes_max => (&rest[..line_bytes_max], line_bytes_max),
            None => break,
        };
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        used += taken;
        lines.push(Line {
            text: String::from_utf8_lossy(text).into_owned(),
            end_offset: offset + used as u64,
        });
    }
    debug_assert!(used <= bytes.len());
    (lines, used)
}

/// A complete record, ready for a batch.
pub type Record = Line;

/// Joins lines into records for one file (see the module doc).
#[derive(Debug)]
pub struct Assembler {
    multiline: Option<MultilineConfig>,
    record_bytes_max: usize,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    text: String,
    lines: usize,
    end_offset: u64,
    last_line_at: Instant,
}

impl Assembler {
    /// `record_bytes_max` bounds a joined record (one line alone is bounded by the splitter).
    pub fn new(multiline: Option<MultilineConfig>, record_bytes_max: usize) -> Assembler {
        Assembler {
            multiline,
            record_bytes_max,
            pending: None,
        }
    }

    /// Takes the next line of the file; complete records go to `out`.
    pub fn push(&mut self, line: Line, now: Instant, out: &mut Vec<Record>) {
        let Some(m) = &self.multiline else {
            out.push(line);
            return;
        };
        if let Some(p) = &mut self.pending
            && !m.start.is_match(&line.text)
            && p.lines < m.lines_max
            && p.text.len() + 1 + line.text.len() <= self.record_bytes_max
        {
            debug_assert!(line.end_offset > p.end_offset, "lines come in file order");
            p.text.push('\n');
            p.text.push_str(&line.text);
            p.lines += 1;
            p.end_offset = line.end_offset;
            p.last_line_at = now;
            return;
        }
        self.flush(out);
        self.pending = Some(Pending {
            text: line.text,
            lines: 1,
            end_offset: line.end_offset,
            last_line_at: now,
        });
    }

    /// Sends the record being assembled if no line has joined it for the timeout.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Record>) {
        let timeout = self
            .multiline
            .as_ref()
            .map_or(Duration::ZERO, |m| m.timeout);
        if self
            .pending
            .as_ref()
            .is_some_and(|p| now.saturating_duration_since(p.last_line_at) >= timeout)
        {
            self.flush(out);
        }
    }

    /// Sends the record being assembled, complete or not (the file is finished).
    pub fn flush(&mut self, out: &mut Vec<Record>) {
        if let Some(p) = self.pending.take() {
            out.push(Record {
                text: p.text,
                end_offset: p.end_offset,
            });
        }
    }

    /// Forgets the record being assembled: the file was truncated under it.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    /// Records of Hadoop's log (testdata/loghub/Hadoop_2k.log) start with a date; the lines of
    /// Spark's (Spark_2k.log) do not, and stand for continuation lines here. Both are
    /// Loghub's; the README beside them has the licence.
    const HADOOP: [&str; 2] = [
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application appattempt_1445144423722_0020_000001",
        "2015-10-18 18:01:48,963 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Executing with tokens:",
    ];
    const SPARK: [&str; 2] = [
        "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers for [TERM, HUP, INT]",
        "17/06/09 20:10:40 INFO spark.SecurityManager: Changing view acls to: yarn,curi",
    ];

    fn multiline(timeout_ms: u64, lines_max: usize) -> Assembler {
        multiline_bounded(timeout_ms, lines_max, 1 << 20)
    }

    fn multiline_bounded(timeout_ms: u64, lines_max: usize, bytes_max: usize) -> Assembler {
        Assembler::new(
            Some(MultilineConfig {
                start: Regex::new(r"^\d{4}-\d{2}-\d{2}").unwrap(),
                timeout: Duration::from_millis(timeout_ms),
                lines_max,
            }),
            bytes_max,
        )
    }

    fn feed(a: &mut Assembler, text: &str, now: Instant) -> Vec<Record> {
        let (lines, used) = split_lines(text.as_bytes(), 0, 1 << 20);
        assert_eq!(used, text.len());
        let mut out = Vec::new();
        for l in lines {
            a.push(l, now, &mut out);
        }
        out
    }

    #[test]
    fn splitter_keeps_partial_lines_and_strips_crlf() {
        let text = format!("{}\r\n{}\npartial", HADOOP[0], HADOOP[1]);
        let (lines, used) = split_lines(text.as_bytes(), 100, 1 << 20);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, HADOOP[0]);
        assert_eq!(lines[0].end_offset, 100 + HADOOP[0].len() as u64 + 2);
        assert_eq!(lines[1].text, HADOOP[1]);
        assert_eq!(used, text.len() - "partial".len());
    }

    #[test]
    fn splitter_cuts_overlong_lines() {
        let (lines, used) = split_lines(b"abcdefgh", 0, 3);
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!((texts, used), (vec!["abc", "def"], 6));
        let (lines, used) = split_lines(b"abc\n", 0, 3);
        assert_eq!((lines.len(), lines[0].text.as_str(), used), (1, "abc", 4));
        let (lines, used) = split_lines(b"abc", 0, 3);
        assert_eq!((lines.len(), used), (0, 0), "it may still get its newline");
    }

    #[test]
    fn continuation_lines_join_the_record_before_them() {
        let mut a = multiline(1000, 100);
        let now = Instant::now();
        let text = format!("{}\n{}\n{}\n{}\n", HADOOP[0], SPARK[0], SPARK[1], HADOOP[1]);
        let out = feed(&mut a, &text, now);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].text,
            format!("{}\n{}\n{}", HADOOP[0], SPARK[0], SPARK[1])
        );
        assert_eq!(out[0].end_offset, (text.len() - HADOOP[1].len() - 1) as u64);
        assert!(!a.is_empty(), "the last record waits for its continuation");
        let mut rest = Vec::new();
        a.flush(&mut rest);
        assert_eq!(rest[0].text, HADOOP[1]);
        assert_eq!(rest[0].end_offset, text.len() as u64);
    }

    #[test]
    fn a_record_is_sent_after_the_timeout_and_not_before() {
        let mut a = multiline(3000, 100);
        let t0 = Instant::now();
        assert!(feed(&mut a, &format!("{}\n{}\n", HADOOP[0], SPARK[0]), t0).is_empty());
        let mut out = Vec::new();
        a.flush_expired(t0 + Duration::from_millis(2999), &mut out);
        assert!(out.is_empty());
        a.flush_expired(t0 + Duration::from_millis(3000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, format!("{}\n{}", HADOOP[0], SPARK[0]));
        // A line arriving later starts counting again from that line.
        let t1 = t0 + Duration::from_secs(10);
        assert!(feed(&mut a, &format!("{}\n", HADOOP[1]), t1).is_empty());
        a.flush_expired(t1 + Duration::from_millis(10), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn lines_max_cuts_a_record() {
        let mut a = multiline(1000, 2);
        let out = feed(
            &mut a,
            &format!("{}\n{}\n{}\n", HADOOP[0], SPARK[0], SPARK[1]),
            Instant::now(),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, format!("{}\n{}", HADOOP[0], SPARK[0]));
        let mut rest = Vec::new();
        a.flush(&mut rest);
        assert_eq!(rest[0].text, SPARK[1]);
    }

    #[test]
    fn a_record_stops_before_the_byte_limit() {
        let limit = HADOOP[0].len() + 1 + SPARK[0].len();
        let mut a = multiline_bounded(1000, 100, limit);
        let out = feed(
            &mut a,
            &format!("{}\n{}\n{}\n", HADOOP[0], SPARK[0], SPARK[1]),
            Instant::now(),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text.len(), limit);
        let mut rest = Vec::new();
        a.flush(&mut rest);
        assert_eq!(rest[0].text, SPARK[1]);
    }

    #[test]
    fn without_multiline_every_line_is_a_record() {
        let mut a = Assembler::new(None, 1 << 20);
        let out = feed(
            &mut a,
            &format!("{}\n{}\n", HADOOP[0], SPARK[0]),
            Instant::now(),
        );
        assert_eq!(out.len(), 2);
        assert!(a.is_empty());
    }

    proptest! {
        /// Joining the lines with `\n` gives back exactly the bytes used, and what is left
        /// has no newline; offsets grow and end where the used bytes end.
        #[test]
        fn splitter_loses_and_invents_nothing(
            text in "[a-z \n]{0,200}",
            offset in 0u64..1_000_000,
        ) {
            let (lines, used) = split_lines(text.as_bytes(), offset, 1 << 20);
            let mut joined = String::new();
            for l in &lines {
                joined.push_str(&l.text);
                joined.push('\n');
                prop_assert_eq!(l.end_offset, offset + joined.len() as u64);
            }
            prop_assert_eq!(&joined, &text[..used]);
            prop_assert!(!text[used..].contains('\n'));
        }

        /// However the lines are grouped, the records hold every line once, in order, each
        /// record starts with a start line (or is the file's head) and has at most
        /// `lines_max` lines; offsets advance.
        #[test]
        fn assembler_keeps_every_line_once_in_order(
            starts in proptest::collection::vec(any::<bool>(), 0..60),
            lines_max in 1usize..6,
            bytes_max in 200usize..1000,
        ) {
            let lines: Vec<String> = starts
                .iter()
                .enumerate()
                .map(|(i, s)| if *s { format!("{} #{i}", HADOOP[i % 2]) } else { format!("{} #{i}", SPARK[i % 2]) })
                .collect();
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let mut a = multiline_bounded(1000, lines_max, bytes_max);
            let mut out = feed(&mut a, &text, Instant::now());
            a.flush(&mut out);
            let mut back = Vec::new();
            let mut last_end = 0;
            for r in &out {
                let parts: Vec<&str> = r.text.split('\n').collect();
                prop_assert!(parts.len() <= lines_max);
                prop_assert!(parts.len() == 1 || r.text.len() <= bytes_max);
                prop_assert!(r.end_offset > last_end);
                last_end = r.end_offset;
                back.extend(parts.iter().map(|p| p.to_string()));
            }
            prop_assert_eq!(&back, &lines);
            prop_assert_eq!(last_end, text.len() as u64);
            for w in out.windows(2) {
                let first_of_next = w[1].text.split('\n').next().unwrap();
                let prev_lines = w[0].text.split('\n').count();
                let full = prev_lines == lines_max
                    || w[0].text.len() + 1 + first_of_next.len() > bytes_max;
                prop_assert!(first_of_next.starts_with("2015") || full);
            }
        }
    }
}
