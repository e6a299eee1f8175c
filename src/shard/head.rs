//! In-memory head chunks: the entries of one stream that are durable in the WAL and not yet
//! sealed into a part file.
//!
//! Entries are appended in arrival order and never moved, so a scan that yields half-way can
//! resume at the same index. `in_order` remembers whether every append had a timestamp at or
//! after the previous one; while it holds, a time range is found by binary search, otherwise
//! the scan filters every entry by time (out-of-order arrival is accepted, as the design asks,
//! and only costs scan time until the head is sealed sorted).

use std::ops::Range;

use crate::model::{Labels, StreamId, TimestampNs};

/// One stream's head.
pub struct StreamHead {
    pub id: StreamId,
    pub tenant: String,
    pub labels: Labels,
    timestamps: Vec<TimestampNs>,
    /// `line_ends[i]` is the end of line i in `line_bytes`; line i starts at `line_ends[i-1]`.
    line_ends: Vec<u64>,
    line_bytes: Vec<u8>,
    /// `metadata_ends[i]` is the end of entry i's pairs in `metadata`, as for lines.
    metadata_ends: Vec<u32>,
    metadata: Vec<(Box<str>, Box<str>)>,
    in_order: bool,
    min_ts: TimestampNs,
    max_ts: TimestampNs,
}

/// A borrowed view of one entry.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    pub ts: TimestampNs,
    pub line: &'a str,
    pub metadata: &'a [(Box<str>, Box<str>)],
}

impl StreamHead {
    pub fn new(id: StreamId, tenant: &str, labels: Labels) -> StreamHead {
        StreamHead {
            id,
            tenant: tenant.to_string(),
            labels,
            timestamps: Vec::new(),
            line_ends: Vec::new(),
            line_bytes: Vec::new(),
            metadata_ends: Vec::new(),
            metadata: Vec::new(),
            in_order: true,
            min_ts: TimestampNs::MAX,
            max_ts: TimestampNs::MIN,
        }
    }

    pub fn push(&mut self, ts: TimestampNs, line: &str, metadata: &[(&str, &str)]) {
        if let Some(&last) = self.timestamps.last() {
            self.in_order &= ts >= last;
        }
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.timestamps.push(ts);
        self.line_bytes.extend_from_slice(line.as_bytes());
        self.line_ends.push(self.line_bytes.len() as u64);
        self.metadata
            .extend(metadata.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))));
        self.metadata_ends.push(self.metadata.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn line_bytes_total(&self) -> u64 {
        self.line_bytes.len() as u64
    }

    /// Whether any entry may fall in `[start, end)`.
    pub fn overlaps(&self, start: TimestampNs, end: TimestampNs) -> bool {
        !self.is_empty() && self.min_ts < end && self.max_ts >= start
    }

    /// Indexes to visit for `[start, end)`: exact when the head is in order, the whole head
    /// otherwise (the caller then checks each timestamp).
    pub fn candidate_range(&self, start: TimestampNs, end: TimestampNs) -> Range<usize> {
        if !self.overlaps(start, end) {
            return 0..0;
        }
        if !self.in_order {
            return 0..self.len();
        }
        let lo = self.timestamps.partition_point(|&t| t < start);
        let hi = self.timestamps.partition_point(|&t| t < end);
        lo..hi
    }

    pub fn in_order(&self) -> bool {
        self.in_order
    }

    pub fn ts(&self, i: usize) -> TimestampNs {
        self.timestamps[i]
    }

    pub fn entry(&self, i: usize) -> EntryView<'_> {
        let line_start = if i == 0 { 0 } else { self.line_ends[i - 1] } as usize;
        let line_end = self.line_ends[i] as usize;
        let md_start = if i == 0 { 0 } else { self.metadata_ends[i - 1] } as usize;
        let md_end = self.metadata_ends[i] as usize;
        // Lines are only ever appended from `&str`, so every line's bytes are UTF-8.
        let line = std::str::from_utf8(&self.line_bytes[line_start..line_end])
            .expect("head lines are appended from &str");
        EntryView {
            ts: self.timestamps[i],
            line,
            metadata: &self.metadata[md_start..md_end],
        }
    }

    /// Entries and line bytes in `[start, end)`, exactly.
    pub fn count_in(&self, start: TimestampNs, end: TimestampNs) -> (u64, u64) {
        let mut entries = 0;
        let mut bytes = 0;
        for i in self.candidate_range(start, end) {
            let t = self.timestamps[i];
            if t >= start && t < end {
                entries += 1;
                let s = if i == 0 { 0 } else { self.line_ends[i - 1] };
                bytes += self.line_ends[i] - s;
            }
        }
        (entries, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_head_uses_exact_range() {
        let mut h = StreamHead::new(1, "t", Labels::from_pairs([("a", "b")]));
        for (ts, line) in [(10, "a"), (20, "bb"), (20, "c"), (30, "dddd")] {
            h.push(ts, line, &[]);
        }
        assert!(h.in_order());
        assert_eq!(h.candidate_range(20, 30), 1..3);
        assert_eq!(h.count_in(0, 100), (4, 8));
        assert_eq!(h.entry(3).line, "dddd");
        assert_eq!(h.candidate_range(31, 40), 0..0);
    }

    #[test]
    fn out_of_order_head_scans_everything() {
        let mut h = StreamHead::new(1, "t", Labels::default());
        h.push(30, "x", &[("k", "v")]);
        h.push(10, "y", &[]);
        assert!(!h.in_order());
        assert_eq!(h.candidate_range(0, 20), 0..2);
        assert_eq!(h.count_in(0, 20), (1, 1));
        assert_eq!(&*h.entry(0).metadata[0].1, "v");
        assert!(h.entry(1).metadata.is_empty());
    }
}
