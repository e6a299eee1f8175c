//! placeholder: the per-shard write-ahead log.
