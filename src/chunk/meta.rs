//! The metadata of a part: streams, block headers and label postings, written as one rkyv
//! archive and read in place (`ArchivedPartMeta`) from the file buffer.
//!
//! Orders the writer guarantees and the reader checks: streams sorted by id, ids unique;
//! blocks grouped by stream in stream order, each stream's blocks contiguous
//! (`first_block..first_block + blocks`) and in time order; postings sorted by name, values
//! sorted within a name, stream indexes ascending within a value; every (name, value) of every
//! stream's labels appears in the postings exactly once and nothing else does.

use rkyv::{Archive, Deserialize, Serialize};

/// The root of the archive.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PartMeta {
    pub streams: Vec<StreamMeta>,
    pub blocks: Vec<BlockMeta>,
    pub postings: Vec<LabelPostings>,
    /// Hash functions per gram in the blooms ([`super::bloom`]); 0 when blocks have no bloom.
    pub bloom_hashes: u8,
}

/// One stream of the part.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    /// [`crate::model::stream_hash`] of tenant and labels (checked on open).
    pub id: u64,
    pub tenant: String,
    /// Sorted by name, names unique, values non-empty (as [`crate::model::Labels`] keeps them).
    pub labels: Vec<LabelPair>,
    /// Index of the stream's first block in `PartMeta::blocks`.
    pub first_block: u32,
    /// Number of blocks of the stream (at least one).
    pub blocks: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LabelPair {
    pub name: String,
    pub value: String,
}

/// The header of one data block.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BlockMeta {
    /// Index in `PartMeta::streams`.
    pub stream_idx: u32,
    pub min_ts: i64,
    pub max_ts: i64,
    pub entries: u32,
    /// Bytes of the decompressed body.
    pub uncompressed_bytes: u32,
    /// Sum of the line lengths (Loki's `bytes` in index stats).
    pub lines_bytes: u64,
    /// File offset of the compressed block.
    pub offset: u64,
    pub compressed_len: u32,
    /// crc32c of the compressed bytes.
    pub crc32c: u32,
    /// File offset of the block's bloom filter (in the bloom region).
    pub bloom_offset: u64,
    /// Bytes of the bloom filter; 0 when the block has none (every probe says "maybe").
    pub bloom_len: u32,
}

/// The streams that carry one label name, by value.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LabelPostings {
    pub name: String,
    pub values: Vec<ValuePostings>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ValuePostings {
    pub value: String,
    /// Indexes in `PartMeta::streams`, ascending.
    pub streams: Vec<u32>,
}

impl ArchivedPartMeta {
    /// The index of the stream with this id, by binary search.
    pub fn stream_index(&self, id: u64) -> Option<usize> {
        self.streams
            .binary_search_by(|s| s.id.to_native().cmp(&id))
            .ok()
    }

    /// Whether some stream of the part has a label `name`.
    pub fn has_label_name(&self, name: &str) -> bool {
        self.postings
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .is_ok()
    }

    /// The stream indexes whose label `name` has exactly `value`.
    pub fn postings(&self, name: &str, value: &str) -> &[rkyv::rend::u32_le] {
        let Ok(n) = self
            .postings
            .binary_search_by(|p| p.name.as_str().cmp(name))
        else {
            return &[];
        };
        let values = &self.postings[n].values;
        match values.binary_search_by(|v| v.value.as_str().cmp(value)) {
            Ok(v) => values[v].streams.as_slice(),
            Err(_) => &[],
        }
    }
}

impl ArchivedStreamMeta {
    /// The range of this stream's blocks in `PartMeta::blocks`.
    pub fn block_range(&self) -> std::ops::Range<usize> {
        let first = self.first_block.to_native() as usize;
        first..first + self.blocks.to_native() as usize
    }

    /// The value of a label, by binary search over the sorted names.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }
}
