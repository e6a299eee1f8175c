//! A part's label names and values by tenant, small enough to keep in the part cache when
//! the part's tail is not.
//!
//! Which question it answers: "which label names, and which values of one name, do this
//! part's streams of a tenant carry?" A label query (`labels`, `label/NAME/values` without a
//! selector) over a range that holds a part whole needs nothing else of it: every stream of
//! the part has entries in the range. Reading the tail for that costs the stream list and
//! every block header (tens of MB over a day of a busy shard), where the answer is a few KB:
//! the summary is built from the tail once and kept in the [`super::part_cache::PartCache`]
//! (kind `labels`), so that the next label query reads no tail at all.

use std::collections::{BTreeMap, BTreeSet};

use crate::chunk::PartReader;

/// A slice of [`LabelSummary::text`].
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug)]
struct NameValues {
    name: Span,
    /// Sorted, unique.
    values: Box<[Span]>,
}

#[derive(Debug)]
struct TenantLabels {
    tenant: Span,
    /// Sorted by name, unique.
    names: Box<[NameValues]>,
}

/// The label names and values of a part's streams, by tenant.
#[derive(Debug)]
pub struct LabelSummary {
    /// Every tenant, name and value, back to back.
    text: Box<str>,
    /// Sorted by tenant, unique.
    tenants: Box<[TenantLabels]>,
}

impl LabelSummary {
    /// The summary of the streams `reader` lists.
    pub fn of(reader: &PartReader<'_>) -> LabelSummary {
        let mut by_tenant: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        for s in reader.streams() {
            let names = by_tenant.entry(s.tenant.as_str()).or_default();
            for p in s.labels.iter() {
                names
                    .entry(p.name.as_str())
                    .or_default()
                    .insert(p.value.as_str());
            }
        }
        let mut text = String::new();
        let mut span = |s: &str| {
            let start = text.len() as u32;
            text.push_str(s);
            Span {
                start,
                len: s.len() as u32,
            }
        };
        let tenants = by_tenant
            .into_iter()
            .map(|(tenant, names)| TenantLabels {
                tenant: span(tenant),
                names: names
                    .into_iter()
                    .map(|(name, values)| NameValues {
                        name: span(name),
                        values: values.into_iter().map(&mut span).collect(),
                    })
                    .collect(),
            })
            .collect();
        LabelSummary {
            text: text.into_boxed_str(),
            tenants,
        }
    }

    /// A summary of no tenant holding `text_bytes` of text, for tests of what keeps it.
    #[cfg(test)]
    pub fn empty_for_tests(text_bytes: usize) -> LabelSummary {
        LabelSummary {
            text: "x".repeat(text_bytes).into_boxed_str(),
            tenants: Box::new([]),
        }
    }

    fn str(&self, s: Span) -> &str {
        &self.text[s.start as usize..(s.start + s.len) as usize]
    }

    fn tenant(&self, tenant: &str) -> Option<&TenantLabels> {
        self.tenants
            .binary_search_by(|t| self.str(t.tenant).cmp(tenant))
            .ok()
            .map(|i| &self.tenants[i])
    }

    /// The label names of the tenant's streams, sorted.
    pub fn names<'a>(&'a self, tenant: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.tenant(tenant)
            .into_iter()
            .flat_map(|t| t.names.iter().map(|n| self.str(n.name)))
    }

    /// The values of label `name` over the tenant's streams, sorted.
    pub fn values<'a>(&'a self, tenant: &str, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let names = self.tenant(tenant).map_or(&[][..], |t| &t.names[..]);
        let found = names
            .binary_search_by(|n| self.str(n.name).cmp(name))
            .ok()
            .map(|i| &names[i]);
        found
            .into_iter()
            .flat_map(|n| n.values.iter().map(|&v| self.str(v)))
    }

    /// Memory it holds.
    pub fn held_bytes(&self) -> u64 {
        let spans: usize = self
            .tenants
            .iter()
            .map(|t| {
                std::mem::size_of::<TenantLabels>()
                    + t.names
                        .iter()
                        .map(|n| {
                            std::mem::size_of::<NameValues>()
                                + n.values.len() * std::mem::size_of::<Span>()
                        })
                        .sum::<usize>()
            })
            .sum();
        (std::mem::size_of::<LabelSummary>() + self.text.len() + spans) as u64
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rkyv::util::AlignedVec;

    use super::*;
    use crate::chunk::{EntryInput, PartWriterOptions, StreamBlockInput, encode_part};
    use crate::model::{Labels, stream_hash};

    /// A summary answers as a walk over the part's streams does, for every tenant and name.
    #[test]
    fn names_and_values_are_those_of_the_streams_by_tenant() {
        let streams: Vec<(&str, Labels)> = [
            ("a", &[("app", "web"), ("env", "prod")][..]),
            ("a", &[("app", "db"), ("env", "prod")][..]),
            ("a", &[("app", "web"), ("zone", "z1")][..]),
            ("b", &[("app", "mail")][..]),
        ]
        .into_iter()
        .map(|(tenant, pairs)| (tenant, Labels::from_pairs(pairs.iter().copied())))
        .collect();
        let entries: [EntryInput<'_>; 1] = [(1, "a line", &[])];
        let inputs: Vec<StreamBlockInput<'_>> = streams
            .iter()
            .map(|(tenant, labels)| StreamBlockInput {
                stream_id: stream_hash(tenant, labels),
                tenant,
                labels,
                entries: &entries,
            })
            .collect();
        let bytes = encode_part(&inputs, &PartWriterOptions::default()).unwrap();
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(&bytes);
        let reader = PartReader::open(&aligned, Path::new("test.part")).unwrap();
        let s = LabelSummary::of(&reader);
        assert_eq!(s.names("a").collect::<Vec<_>>(), ["app", "env", "zone"]);
        assert_eq!(s.values("a", "app").collect::<Vec<_>>(), ["db", "web"]);
        assert_eq!(s.values("a", "env").collect::<Vec<_>>(), ["prod"]);
        assert_eq!(s.values("a", "zone").collect::<Vec<_>>(), ["z1"]);
        assert_eq!(s.names("b").collect::<Vec<_>>(), ["app"]);
        assert_eq!(s.values("b", "app").collect::<Vec<_>>(), ["mail"]);
        assert_eq!(s.values("b", "env").count(), 0);
        assert_eq!(s.names("c").count(), 0);
        assert_eq!(s.values("c", "app").count(), 0);
        assert!(s.held_bytes() >= s.text.len() as u64);
    }
}
