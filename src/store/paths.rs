//! Every file and directory name of the storage engine, in one place. Nothing else builds a
//! path by hand.
//!
//! ```text
//! <data>/shardlog.lock                           the data dir's owner: flock + PID (crate::preflight::lock)
//! <data>/wal/shard-NNNN/                         write-ahead log segments (crate::wal)
//! <data>/shards/shard-NNNN/manifest              the durable list of parts and watermarks
//! <data>/shards/shard-NNNN/manifest.tmp          a manifest being written (garbage at start)
//! <data>/shards/shard-NNNN/parts/<partition>/<id:016x>.part       an immutable part file
//! <data>/shards/shard-NNNN/parts/<partition>/<id:016x>.part.tmp   a part being written
//! <data>/shards/shard-NNNN/quarantine/<partition>-<id:016x>.part  a part that failed checks
//! <data>/delete_requests                         the delete requests (crate::deletion::file)
//! <data>/delete_requests.tmp                     the list being replaced
//! ```
//!
//! A partition is named by its start time in UTC: `2026-11-25` for whole days, `2026-11-25T06`
//! when partitions are shorter than a day. Names sort in time order. A bundle (old sparse
//! partitions that compaction put in one part) is named by its first and last partition,
//! `2026-11-25--2027-03-02`, and sorts with its first.

use std::path::{Path, PathBuf};

use crate::model::TimestampNs;

/// The lock file of the data directory: one server holds an exclusive `flock` on it.
pub const LOCK_FILE: &str = "shardlog.lock";
/// Directory of shard WALs, under the data directory.
pub const WAL_DIR: &str = "wal";
/// Directory of shard part stores, under the data directory.
pub const SHARDS_DIR: &str = "shards";
/// The delete requests of every tenant, under the data directory.
pub const DELETE_REQUESTS_FILE: &str = "delete_requests";
pub const DELETE_REQUESTS_TMP_FILE: &str = "delete_requests.tmp";
pub const MANIFEST_FILE: &str = "manifest";
pub const MANIFEST_TMP_FILE: &str = "manifest.tmp";
pub const PARTS_DIR: &str = "parts";
pub const QUARANTINE_DIR: &str = "quarantine";
pub const PART_SUFFIX: &str = ".part";
pub const TMP_SUFFIX: &str = ".tmp";
const SHARD_PREFIX: &str = "shard-";

/// The name of shard `id`'s directories (`shard-0003`).
pub fn shard_dir_name(id: usize) -> String {
    format!("{SHARD_PREFIX}{id:04}")
}

/// The shard number of a `shard-NNNN` directory name.
pub fn parse_shard_dir_name(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(SHARD_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Shard numbers that have a directory under `parent` (`<data>/wal` or `<data>/shards`).
pub fn shard_numbers_in(disk: &crate::storage::Disk, parent: &Path) -> Vec<usize> {
    let mut out: Vec<usize> = disk
        .list_dir(parent)
        .unwrap_or_default()
        .iter()
        .filter_map(|name| name.to_str().and_then(parse_shard_dir_name))
        .collect();
    out.sort_unstable();
    out
}

/// The WAL directory of shard `id`.
pub fn wal_dir(data_dir: &Path, id: usize) -> PathBuf {
    data_dir.join(WAL_DIR).join(shard_dir_name(id))
}

/// The part store of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePaths {
    root: PathBuf,
}

impl StorePaths {
    pub fn new(data_dir: &Path, shard: usize) -> StorePaths {
        StorePaths {
            root: data_dir.join(SHARDS_DIR).join(shard_dir_name(shard)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    pub fn manifest_tmp(&self) -> PathBuf {
        self.root.join(MANIFEST_TMP_FILE)
    }

    pub fn parts(&self) -> PathBuf {
        self.root.join(PARTS_DIR)
    }

    pub fn partition_dir(&self, partition: &str) -> PathBuf {
        self.parts().join(partition)
    }

    /// Where part `id` of `partition` lives once durable.
    pub fn part(&self, partition: &str, id: u64) -> PathBuf {
        self.partition_dir(partition).join(part_file_name(id))
    }

    /// Where part `id` is written before it is renamed into place.
    pub fn part_tmp(&self, partition: &str, id: u64) -> PathBuf {
        self.partition_dir(partition)
            .join(format!("{}{TMP_SUFFIX}", part_file_name(id)))
    }

    pub fn quarantine(&self) -> PathBuf {
        self.root.join(QUARANTINE_DIR)
    }

    /// Where a part that failed verification is moved.
    pub fn quarantined_part(&self, partition: &str, id: u64) -> PathBuf {
        self.quarantine()
            .join(format!("{partition}-{}", part_file_name(id)))
    }
}

pub fn part_file_name(id: u64) -> String {
    format!("{id:016x}{PART_SUFFIX}")
}

/// The id of a `<id>.part` file name (not of a `.tmp` one).
pub fn parse_part_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(PART_SUFFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The start of the partition holding `ts`, for partitions of `span_ns`.
pub fn partition_start(ts: TimestampNs, span_ns: i64) -> TimestampNs {
    ts.div_euclid(span_ns) * span_ns
}

/// The name of the partition starting at `start` (see the module doc).
pub fn partition_name(start: TimestampNs, span_ns: i64) -> String {
    let secs = start.div_euclid(1_000_000_000);
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    if span_ns % 86_400_000_000_000 == 0 {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{:02}", t.hour())
    }
}

/// Separates the first and last partition of a bundle's name. Partition names never hold
/// it, and the manifest accepts it (names are ASCII letters, digits and '-').
const BUNDLE_SEPARATOR: &str = "--";

/// The name of a bundle: old sparse partitions from `first` to `last` (names of partitions
/// or of bundles) compacted into one directory, `<first>--<last>`, for example
/// `2023-11-14--2025-07-06`. It sorts with its first partition; at most 28 bytes.
pub fn bundle_name(first: &str, last: &str) -> String {
    let head = first.split(BUNDLE_SEPARATOR).next().unwrap_or(first);
    let tail = last.rsplit(BUNDLE_SEPARATOR).next().unwrap_or(last);
    format!("{head}{BUNDLE_SEPARATOR}{tail}")
}

/// Whether a partition directory is a bundle of several partitions.
pub fn is_bundle(partition: &str) -> bool {
    partition.contains(BUNDLE_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names_span_their_first_and_last_partition() {
        assert_eq!(
            bundle_name("2023-11-14", "2023-11-20"),
            "2023-11-14--2023-11-20"
        );
        let b = bundle_name("2023-11-14--2023-11-20", "2023-12-01T06");
        assert_eq!(b, "2023-11-14--2023-12-01T06");
        assert!(is_bundle(&b) && !is_bundle("2023-11-14"));
        assert!(b.len() <= crate::store::manifest::PARTITION_NAME_BYTES_MAX);
    }

    #[test]
    fn names_round_trip_and_sort_in_time_order() {
        assert_eq!(shard_dir_name(3), "shard-0003");
        assert_eq!(parse_shard_dir_name("shard-0003"), Some(3));
        assert_eq!(parse_shard_dir_name("shard-"), None);
        assert_eq!(parse_shard_dir_name("shard-x1"), None);
        assert_eq!(parse_part_file_name(&part_file_name(0xabc)), Some(0xabc));
        assert_eq!(parse_part_file_name("0000000000000abc.part.tmp"), None);
        let day = 86_400_000_000_000;
        let ts = 1_764_028_800_000_000_000 + 3 * 3_600_000_000_000; // 2025-11-25T03:00Z
        assert_eq!(partition_name(partition_start(ts, day), day), "2025-11-25");
        let six_h = 6 * 3_600_000_000_000;
        assert_eq!(
            partition_name(partition_start(ts, six_h), six_h),
            "2025-11-25T00"
        );
        assert_eq!(partition_name(partition_start(-1, day), day), "1969-12-31");
        let p = StorePaths::new(Path::new("/d"), 1);
        assert_eq!(
            p.part("2025-11-25", 1),
            Path::new("/d/shards/shard-0001/parts/2025-11-25/0000000000000001.part")
        );
    }
}
