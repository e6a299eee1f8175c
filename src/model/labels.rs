//! Label sets and the stable stream hash.

use std::fmt;

use xxhash_rust::xxh3::Xxh3;

/// The seed of the stream hash. Data on disk is placed by this hash: never change it.
const STREAM_HASH_SEED: u64 = 0x5348_4152_444c_4f47; // "SHARDLOG"

/// A stream's labels, sorted by name, names unique. Small and cloned rarely (once per new
/// stream per batch), so plain strings are fine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels {
    pairs: Vec<(String, String)>,
}

impl Labels {
    /// Builds a label set from pairs in any order. A later duplicate name wins, as in
    /// Prometheus' label builder. Pairs with an empty value are dropped (Loki treats an empty
    /// value as an absent label).
    pub fn from_pairs<I, K, V>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut labels = Labels::from_pairs_keeping_empty(pairs);
        labels.pairs.retain(|(_, v)| !v.is_empty());
        labels
    }

    /// [`Labels::from_pairs`] without dropping empty values: the labels a log pipeline
    /// answers with. Loki's labels builder keeps a label a stage set to the empty string
    /// (`| json` of `"user": ""`, a `json` path not found, `logfmt --keep-empty`,
    /// `label_format x=""`), so `{user=""}` and `{}` are different series there.
    pub fn from_pairs_keeping_empty<I, K, V>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            if let Some(slot) = out.iter_mut().find(|(n, _)| *n == k) {
                slot.1 = v;
            } else {
                out.push((k, v));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Labels { pairs: out }
    }

    /// Pairs sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Display for Labels {
    /// Prometheus/Loki form: `{app="x", host="y"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}=\"")?;
            for c in v.chars() {
                match c {
                    '"' => f.write_str("\\\"")?,
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// The stable id of a stream: xxh3-64 with a fixed seed over the tenant and the sorted
/// labels, each field length-prefixed so that no two different label sets can serialise to
/// the same bytes. Stable across versions and machines (little-endian lengths).
pub fn stream_hash(tenant: &str, labels: &Labels) -> u64 {
    stream_hash_sorted(
        tenant,
        labels.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// [`stream_hash`] of borrowed pairs that are already sorted by name, unique and non-empty
/// (what [`Labels::from_pairs`] would make of them): the same value without building
/// [`Labels`], for ingest hot paths.
pub fn stream_hash_sorted<'a>(
    tenant: &str,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let mut h = Xxh3::with_seed(STREAM_HASH_SEED);
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u32).to_le_bytes());
        h.update(bytes);
    };
    field(tenant.as_bytes());
    for (k, v) in pairs {
        debug_assert!(
            !v.is_empty(),
            "empty label values are not part of a label set"
        );
        field(k.as_bytes());
        field(v.as_bytes());
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_and_deduplicated() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn keeping_empty_values_on_request() {
        let l = Labels::from_pairs_keeping_empty([("b", ""), ("a", "1"), ("b", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b=""}"#);
        assert_eq!(l.get("b"), Some(""));
        assert_ne!(l, Labels::from_pairs([("a", "1")]));
    }

    /// The hash of `fake` + `{app="sshd", host="db1"}`, computed once and pinned.
    const PINNED: u64 = 10291929644534978290;

    #[test]
    fn stream_hash_is_stable() {
        // This value is placed on disk: if this test fails, the hash changed and old data
        // would be looked up on the wrong shard.
        let l = Labels::from_pairs([("app", "sshd"), ("host", "db1")]);
        assert_eq!(stream_hash("fake", &l), stream_hash("fake", &l.clone()));
        assert_eq!(stream_hash("fake", &l), PINNED);
        assert_ne!(stream_hash("fake", &l), stream_hash("other", &l));
        assert_eq!(
            stream_hash_sorted("fake", [("app", "sshd"), ("host", "db1")].into_iter()),
            PINNED
        );
        let ab = Labels::from_pairs([("a", "bc")]);
        let abc = Labels::from_pairs([("ab", "c")]);
        assert_ne!(stream_hash("t", &ab), stream_hash("t", &abc));
    }
}
