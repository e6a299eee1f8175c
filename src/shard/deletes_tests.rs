//! The scan filter of delete requests on a real shard (simulated disk): lines a request
//! covers are skipped in heads and parts alike, in both directions, and nothing else is; a
//! head holding covered lines keeps the request from being applied until it is sealed.

use super::scan_tests::{Found, logs, new_shard, now_ms, request};
use super::seal::SealMode;
use crate::deletion::book::DeleteBook;
use crate::deletion::request::{CompiledRequest, DeleteRequest, Status};
use crate::query::params::Direction;
use crate::testing::run_local as run;

const MS: i64 = 1_000_000;

fn delete(query: &str, start_ns: i64, end_ns: i64) -> DeleteRequest {
    DeleteRequest {
        request_id: "00000001".into(),
        tenant: "t".into(),
        query: query.into(),
        start_ms: start_ns / MS,
        end_ms: end_ns / MS,
        created_at_ms: 0,
        status: Status::Received,
    }
}

fn lines(found: &Found) -> Vec<&str> {
    found.iter().map(|(_, l)| l.as_str()).collect()
}

#[test]
fn scans_skip_covered_lines_in_heads_and_parts_and_nothing_else() {
    run(|| async {
        let t0 = now_ms() - 3_600_000 * MS;
        let shard = new_shard(t0).await;
        let all_hot = logs(&shard, &request(r#"{app="hot"}"#, Direction::Forward, 1000)).await;
        assert_eq!(all_hot.len(), 200);
        // Lines 0..150 (the part holds 0..100, the head the rest), those that say "match".
        let req = delete(r#"{app="hot"} |= "match""#, t0 - 1000 * MS, t0 + 149 * MS);
        let compiled = CompiledRequest::new(req.clone()).unwrap();
        let hot_labels = crate::model::Labels::from_pairs([("app", "hot")]);
        let covered: Vec<&str> = all_hot
            .iter()
            .filter(|(ts, l)| compiled.deletes(*ts, l, &hot_labels, &[]))
            .map(|(_, l)| l.as_str())
            .collect();
        assert!(
            covered.len() > 40,
            "the fixture covers lines in part and head"
        );
        shard.init_deletes(DeleteBook::new(vec![req]).unwrap(), None);
        for direction in [Direction::Forward, Direction::Backward] {
            let hot = logs(&shard, &request(r#"{app="hot"}"#, direction, 1000)).await;
            assert_eq!(hot.len(), 200 - covered.len(), "{direction:?}");
            assert!(lines(&hot).iter().all(|l| !covered.contains(l)));
        }
        let cold = logs(
            &shard,
            &request(r#"{app="cold"}"#, Direction::Forward, 1000),
        )
        .await;
        assert_eq!(cold.len(), 5, "another stream keeps its lines");
        // A head with covered lines holds the request back until it is sealed.
        assert!(shard.heads_hold(&compiled));
        shard.seal_round(SealMode::All).await.expect("seal");
        assert!(!shard.heads_hold(&compiled));
        let hot = logs(&shard, &request(r#"{app="hot"}"#, Direction::Forward, 1000)).await;
        assert_eq!(hot.len(), 200 - covered.len(), "still hidden once sealed");
        // Processed: the scan no longer tests lines against it.
        let processed = crate::deletion::book::BookChange::Processed(vec!["00000001".into()]);
        shard.change_deletes(&processed).unwrap();
        let hot = logs(&shard, &request(r#"{app="hot"}"#, Direction::Forward, 1000)).await;
        assert_eq!(hot.len(), 200);
    });
}
