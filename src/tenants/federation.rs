//! Multi-tenant reads: which tenants a query covers, and how their streams are told apart.
//!
//! Which question it answers: "whose data may this read see, and under which labels?" The
//! `X-Scope-OrgID` header may list several tenants separated by `|` (dskit's
//! `tenant.TenantIDs`: each id validated, then sorted and deduplicated). A read over more
//! than one tenant is allowed only with `--multi-tenant-queries` (Loki's
//! `multi_tenant_queries_enabled`); it then answers from every listed tenant, each stream
//! carrying `__tenant_id__` as Loki's `MultiTenantQuerier` adds it: after the pipeline, a
//! stream label of that name kept as `original___tenant_id__`. A selector matcher on
//! `__tenant_id__` picks tenants instead of streams, and one on `original___tenant_id__` is
//! the stream label's (Loki's `filterValuesByMatchers`). A read naming one tenant, even
//! `a|a`, is an ordinary single-tenant read with no extra label, as in Loki.

use crate::config::QueryLimits;
use crate::logql::LabelMatcher;
use crate::model::{Labels, validate_tenant};

/// The label a multi-tenant read adds to every stream (Loki's `defaultTenantLabel`).
pub const TENANT_LABEL: &str = "__tenant_id__";

/// The name a stream's own `__tenant_id__` label takes in a multi-tenant read (Loki's
/// `retainExistingPrefix` + the tenant label).
pub const ORIGINAL_TENANT_LABEL: &str = "original___tenant_id__";

/// The separator of tenant ids in `X-Scope-OrgID` (dskit's `tenantIDsSeparator`).
pub const TENANT_SEPARATOR: char = '|';

/// dskit's `user.ErrTooManyOrgIDs`: the text Loki answers where one tenant is required and
/// the header names several.
pub const TOO_MANY_ORG_IDS: &str = "multiple org IDs present";

/// The tenants of `X-Scope-OrgID`, as dskit's `tenant.TenantIDs` reads them: split at `|`,
/// each validated, sorted and deduplicated. Never empty.
pub fn parse_org_ids(header: &str) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for id in header.trim().split(TENANT_SEPARATOR) {
        validate_tenant(id)?;
        ids.push(id.to_string());
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The one tenant of `X-Scope-OrgID` (dskit's `tenant.TenantID`): `a|a` is `a`, and two
/// different ids are [`TOO_MANY_ORG_IDS`].
pub fn single_org_id(header: &str) -> Result<String, String> {
    let mut ids = parse_org_ids(header)?;
    if ids.len() > 1 {
        return Err(TOO_MANY_ORG_IDS.to_string());
    }
    Ok(ids.remove(0))
}

/// The tenants one read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    /// Sorted, distinct, never empty.
    ids: Vec<String>,
}

impl TenantScope {
    /// A read of one tenant: its streams keep their own labels.
    pub fn single(tenant: &str) -> TenantScope {
        TenantScope {
            ids: vec![tenant.to_string()],
        }
    }

    /// A read of `ids` (sorted and distinct, as [`parse_org_ids`] returns them).
    pub fn of(ids: Vec<String>) -> TenantScope {
        assert!(!ids.is_empty(), "a read covers at least one tenant");
        debug_assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids sorted and distinct"
        );
        TenantScope { ids }
    }

    /// Whether the read spans several tenants: its streams then carry [`TENANT_LABEL`].
    pub fn is_multi(&self) -> bool {
        self.ids.len() > 1
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The one tenant of a single-tenant read.
    pub fn single_id(&self) -> Option<&str> {
        match self.ids.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The tenants a selector reads, and the matchers left for their streams. A single-tenant
    /// read keeps every matcher (a stream without `__tenant_id__` fails `{__tenant_id__="x"}`,
    /// as in Loki). A multi-tenant read keeps the tenants every `__tenant_id__` matcher
    /// accepts, drops those matchers, and renames `original___tenant_id__` matchers to the
    /// stream label they mean (Loki's `filterValuesByMatchers`).
    pub fn select<'a>(&'a self, matchers: &[LabelMatcher]) -> (Vec<&'a str>, Vec<LabelMatcher>) {
        if !self.is_multi() {
            return (vec![self.ids[0].as_str()], matchers.to_vec());
        }
        let mut tenants: Vec<&str> = self.ids.iter().map(String::as_str).collect();
        let mut rest = Vec::with_capacity(matchers.len());
        for m in matchers {
            if m.name == TENANT_LABEL {
                tenants.retain(|t| m.matches(Some(t)));
            } else if m.name == ORIGINAL_TENANT_LABEL {
                let renamed = LabelMatcher::new(TENANT_LABEL, m.op, &m.value)
                    .expect("the matcher compiled under another name");
                rest.push(renamed);
            } else {
                rest.push(m.clone());
            }
        }
        (tenants, rest)
    }

    /// Whether a stream's labels need [`tenant_labels`] in this read.
    pub fn labels_streams(&self) -> bool {
        self.is_multi()
    }
}

impl From<&str> for TenantScope {
    fn from(tenant: &str) -> TenantScope {
        TenantScope::single(tenant)
    }
}

/// The limits of a read over two tenants' data: the smaller of each positive limit (Loki's
/// `SmallestPositiveNonZeroIntPerTenant` and `...DurationPerTenant`), so that no tenant's
/// limit is exceeded by reading it together with another.
pub fn strictest(a: QueryLimits, b: QueryLimits) -> QueryLimits {
    fn smallest_positive<T: PartialOrd + Default + Copy>(x: T, y: T) -> T {
        let zero = T::default();
        match (x > zero, y > zero) {
            (true, true) if y < x => y,
            (true, _) => x,
            (false, _) => y,
        }
    }
    QueryLimits {
        max_entries_limit_per_query: smallest_positive(
            a.max_entries_limit_per_query,
            b.max_entries_limit_per_query,
        ),
        max_query_series: smallest_positive(a.max_query_series, b.max_query_series),
        max_query_length: match (a.max_query_length, b.max_query_length) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        query_timeout: smallest_positive(a.query_timeout, b.query_timeout),
        max_query_bytes_read: smallest_positive(a.max_query_bytes_read, b.max_query_bytes_read),
        ..a
    }
}

/// A stream's labels in a multi-tenant read: `__tenant_id__` set to its tenant, a label of
/// that name it had kept as `original___tenant_id__` (Loki's `relabel`).
pub fn tenant_labels(labels: &Labels, tenant: &str) -> Labels {
    let original = labels.get(TENANT_LABEL);
    Labels::from_pairs_keeping_empty(
        labels
            .pairs()
            .iter()
            .filter(|(k, _)| k != TENANT_LABEL)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(original.map(|v| (ORIGINAL_TENANT_LABEL, v)))
            .chain(std::iter::once((TENANT_LABEL, tenant))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::MatchOp;

    fn m(name: &str, op: MatchOp, value: &str) -> LabelMatcher {
        LabelMatcher::new(name, op, value).unwrap()
    }

    #[test]
    fn org_ids_are_validated_sorted_and_distinct() {
        assert_eq!(parse_org_ids("b|a|b").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_org_ids("a").unwrap(), vec!["a"]);
        assert!(parse_org_ids("a||b").unwrap_err().contains("empty"));
        assert!(parse_org_ids("a|b/c").unwrap_err().contains("'/'"));
        assert_eq!(single_org_id("a|a").unwrap(), "a");
        assert_eq!(single_org_id("a|b").unwrap_err(), TOO_MANY_ORG_IDS);
    }

    #[test]
    fn tenant_matchers_pick_tenants_and_leave_the_rest() {
        let scope = TenantScope::of(vec!["a".into(), "b".into(), "c".into()]);
        let (tenants, rest) = scope.select(&[
            m("app", MatchOp::Eq, "x"),
            m(TENANT_LABEL, MatchOp::Neq, "b"),
        ]);
        assert_eq!(tenants, vec!["a", "c"]);
        assert_eq!(rest, vec![m("app", MatchOp::Eq, "x")]);
        let (tenants, rest) = scope.select(&[
            m(TENANT_LABEL, MatchOp::Re, "a|b"),
            m(TENANT_LABEL, MatchOp::Eq, "b"),
            m(ORIGINAL_TENANT_LABEL, MatchOp::Eq, "own"),
        ]);
        assert_eq!(tenants, vec!["b"]);
        assert_eq!(rest, vec![m(TENANT_LABEL, MatchOp::Eq, "own")]);
        let (tenants, _) = scope.select(&[m(TENANT_LABEL, MatchOp::Eq, "z")]);
        assert!(tenants.is_empty());
    }

    #[test]
    fn a_single_tenant_read_keeps_every_matcher() {
        let scope = TenantScope::single("a");
        let given = [m(TENANT_LABEL, MatchOp::Eq, "a")];
        let (tenants, rest) = scope.select(&given);
        assert_eq!((tenants, rest), (vec!["a"], given.to_vec()));
        assert!(!scope.labels_streams());
    }

    #[test]
    fn the_strictest_limits_of_two_tenants_are_the_smaller_positive_ones() {
        use std::time::Duration;
        let a = QueryLimits {
            max_entries_limit_per_query: 100,
            max_query_series: 0,
            max_query_length: None,
            query_timeout: Duration::from_secs(60),
            max_query_bytes_read: 0,
            ..QueryLimits::default()
        };
        let b = QueryLimits {
            max_entries_limit_per_query: 5000,
            max_query_series: 10,
            max_query_length: Some(Duration::from_secs(3600)),
            query_timeout: Duration::from_secs(30),
            max_query_bytes_read: 1 << 20,
            ..QueryLimits::default()
        };
        let s = strictest(a.clone(), b);
        assert_eq!(s.max_entries_limit_per_query, 100);
        assert_eq!(s.max_query_series, 10);
        assert_eq!(s.max_query_length, Some(Duration::from_secs(3600)));
        assert_eq!(s.query_timeout, Duration::from_secs(30));
        assert_eq!(s.max_query_bytes_read, 1 << 20);
    }

    #[test]
    fn the_tenant_label_is_added_and_a_stream_label_of_its_name_kept_aside() {
        let plain = Labels::from_pairs([("app", "x")]);
        assert_eq!(
            tenant_labels(&plain, "a"),
            Labels::from_pairs([("app", "x"), (TENANT_LABEL, "a")])
        );
        let own = Labels::from_pairs([("app", "x"), (TENANT_LABEL, "mine")]);
        assert_eq!(
            tenant_labels(&own, "a"),
            Labels::from_pairs([
                ("app", "x"),
                (ORIGINAL_TENANT_LABEL, "mine"),
                (TENANT_LABEL, "a")
            ])
        );
    }
}
