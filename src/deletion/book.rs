//! The delete requests one shard knows: every request (for `GET`), and the ones still to
//! apply compiled by tenant (for the scan filter and the rewrite).
//!
//! Every shard holds the same book: a change is sent to all of them before the HTTP answer.
//! A book is immutable; a change builds a new one, so a scan that took the old one reads a
//! consistent set to its end.

use std::collections::HashMap;
use std::sync::Arc;

use super::request::{CompiledRequest, DeleteRequest, Status};
use crate::model::Labels;

/// A change to every shard's book, sent over the mesh.
#[derive(Debug, Clone)]
pub enum BookChange {
    /// A new request (received, not processed).
    Add(DeleteRequest),
    /// A request cancelled (`DELETE /loki/api/v1/delete`).
    Cancel { tenant: String, request_id: String },
    /// Requests applied on every shard: no line they cover is left on disk.
    Processed(Vec<String>),
}

#[derive(Debug, Default)]
pub struct DeleteBook {
    /// Every request, in the order received.
    all: Vec<DeleteRequest>,
    /// Requests with status `received`, compiled, by tenant.
    active: HashMap<String, Vec<Arc<CompiledRequest>>>,
}

impl DeleteBook {
    /// A book of `requests` (as read from the file). A request whose query does not compile
    /// is an error: the file holds only what this server checked.
    pub fn new(requests: Vec<DeleteRequest>) -> Result<DeleteBook, String> {
        let mut active: HashMap<String, Vec<Arc<CompiledRequest>>> = HashMap::new();
        for r in &requests {
            if r.status == Status::Received {
                let c = CompiledRequest::new(r.clone())
                    .map_err(|e| format!("delete request {}: {e}", r.request_id))?;
                active.entry(r.tenant.clone()).or_default().push(c);
            }
        }
        Ok(DeleteBook {
            all: requests,
            active,
        })
    }

    /// The book with `change` applied; `None` if it changes nothing (an unknown id).
    pub fn with(&self, change: &BookChange) -> Result<Option<DeleteBook>, String> {
        let mut all = self.all.clone();
        match change {
            BookChange::Add(r) => {
                if all.iter().any(|o| o.request_id == r.request_id) {
                    return Ok(None);
                }
                all.push(r.clone());
            }
            BookChange::Cancel { tenant, request_id } => {
                let before = all.len();
                all.retain(|r| !(r.tenant == *tenant && r.request_id == *request_id));
                if all.len() == before {
                    return Ok(None);
                }
            }
            BookChange::Processed(ids) => {
                let mut changed = false;
                for r in all.iter_mut() {
                    if r.status == Status::Received && ids.contains(&r.request_id) {
                        r.status = Status::Processed;
                        changed = true;
                    }
                }
                if !changed {
                    return Ok(None);
                }
            }
        }
        DeleteBook::new(all).map(Some)
    }

    pub fn all(&self) -> &[DeleteRequest] {
        &self.all
    }

    /// The requests of `tenant`.
    pub fn of_tenant(&self, tenant: &str) -> Vec<&DeleteRequest> {
        self.all.iter().filter(|r| r.tenant == tenant).collect()
    }

    pub fn find(&self, tenant: &str, request_id: &str) -> Option<&DeleteRequest> {
        self.all
            .iter()
            .find(|r| r.tenant == tenant && r.request_id == request_id)
    }

    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// Every request still to apply.
    pub fn active(&self) -> impl Iterator<Item = &Arc<CompiledRequest>> {
        self.active.values().flatten()
    }

    /// The requests still to apply that select a stream of `tenant` with `labels`: what a
    /// scan of that stream filters with. Empty (and no allocation) when the tenant has none,
    /// which is the cost of the filter when nothing is being deleted.
    pub fn for_stream(&self, tenant: &str, labels: &Arc<Labels>) -> StreamDeletes {
        let requests: Vec<Arc<CompiledRequest>> = match self.active.get(tenant) {
            None => Vec::new(),
            Some(list) => list.iter().filter(|r| r.selects(labels)).cloned().collect(),
        };
        StreamDeletes {
            reads_metadata: requests.iter().any(|r| r.reads_metadata()),
            labels: labels.clone(),
            requests,
        }
    }
}

/// The requests that select one stream, with its labels: what a scan of it filters with.
#[derive(Debug, Default)]
pub struct StreamDeletes {
    labels: Arc<Labels>,
    requests: Vec<Arc<CompiledRequest>>,
    reads_metadata: bool,
}

impl StreamDeletes {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Whether a request's range overlaps `[min, max]`.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.requests.iter().any(|r| r.overlaps(min, max))
    }

    /// Whether [`StreamDeletes::hides`] reads the entry's structured metadata (otherwise
    /// the caller may pass none).
    pub fn reads_metadata(&self) -> bool {
        self.reads_metadata
    }

    /// Whether a request deletes the entry.
    pub fn hides(&self, ts: i64, line: &str, metadata: &[(&str, &str)]) -> bool {
        self.requests
            .iter()
            .any(|r| r.deletes(ts, line, &self.labels, metadata))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, tenant: &str, query: &str) -> DeleteRequest {
        DeleteRequest {
            request_id: id.into(),
            tenant: tenant.into(),
            query: query.into(),
            start_ms: 1000,
            end_ms: 2000,
            created_at_ms: 3000,
            status: Status::Received,
        }
    }

    #[test]
    fn a_stream_is_filtered_by_its_tenants_matching_requests_only() {
        let book = DeleteBook::new(vec![
            req("a", "t1", r#"{app="x"} |= "secret""#),
            req("b", "t2", r#"{app="x"}"#),
        ])
        .unwrap();
        let x = Arc::new(Labels::from_pairs([("app", "x")]));
        let y = Arc::new(Labels::from_pairs([("app", "y")]));
        let t1 = book.for_stream("t1", &x);
        assert!(!t1.is_empty() && !t1.reads_metadata());
        assert!(t1.hides(1_500_000_000, "a secret line", &[]));
        assert!(!t1.hides(1_500_000_000, "a plain line", &[]));
        assert!(!t1.hides(2_000_000_001, "a secret line", &[]));
        assert!(t1.overlaps(2_000_000_000, 3_000_000_000));
        assert!(!t1.overlaps(2_000_000_001, 3_000_000_000));
        assert!(book.for_stream("t1", &y).is_empty());
        assert!(book.for_stream("t3", &x).is_empty());
        let t2 = book.for_stream("t2", &x);
        assert!(t2.hides(1_000_000_000, "anything", &[]));
    }

    #[test]
    fn changes_add_cancel_and_process() {
        let book = DeleteBook::new(vec![req("a", "t1", r#"{app="x"}"#)]).unwrap();
        assert!(
            book.with(&BookChange::Add(req("a", "t1", r#"{app="x"}"#)))
                .unwrap()
                .is_none(),
            "an id already known"
        );
        let book = book
            .with(&BookChange::Add(req("b", "t1", r#"{app="y"}"#)))
            .unwrap()
            .unwrap();
        assert_eq!(book.all().len(), 2);
        let cancel_other_tenant = BookChange::Cancel {
            tenant: "t2".into(),
            request_id: "a".into(),
        };
        assert!(book.with(&cancel_other_tenant).unwrap().is_none());
        let book = book
            .with(&BookChange::Processed(vec!["a".into()]))
            .unwrap()
            .unwrap();
        assert_eq!(book.find("t1", "a").unwrap().status, Status::Processed);
        assert_eq!(book.active().count(), 1);
        let book = book
            .with(&BookChange::Cancel {
                tenant: "t1".into(),
                request_id: "b".into(),
            })
            .unwrap()
            .unwrap();
        assert!(!book.has_active());
        assert_eq!(book.of_tenant("t1").len(), 1);
    }
}
