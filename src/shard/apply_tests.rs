//! A batch is acknowledged once durable and applied to the heads just after: the applier
//! task does it once the commit's waiters have run, and any reader of the heads does it
//! first if the applier has not yet ([`Shard::on_durable`], [`Shard::heads`]).

use std::rc::Rc;

use super::seal_tests::{batch, config, expected, lines};
use super::{Protocol, Shard};
use crate::storage::{Disk, SimDisk};
use crate::testing::run_local as run;

/// A fresh shard on the simulated disk, after one acknowledged batch of `lines` lines.
async fn acknowledged(lines: usize, pad: usize) -> Rc<Shard> {
    let shard = Rc::new(Shard::with_disk(0, Disk::simulated(SimDisk::new())));
    shard.recover(&config(None)).await.expect("recovery");
    shard
        .append(batch(0, lines, pad), Protocol::LokiPush)
        .await
        .expect("append");
    shard
}

#[test]
fn an_acknowledged_batch_is_answered_before_it_is_applied_and_read_all_the_same() {
    run(|| async {
        let shard = acknowledged(200, 100).await;
        // The append resumed before the applier ran: the batch is durable, not applied.
        assert_eq!(shard.pending.borrow().len(), 1);
        assert_eq!(shard.streams.borrow().heads().count(), 0);
        // A query applies what is durable before it reads.
        assert_eq!(lines(&shard).await, expected(200));
        assert!(shard.pending.borrow().is_empty());
    });
}

#[test]
fn the_applier_applies_durable_batches_without_a_reader() {
    run(|| async {
        let shard = acknowledged(100, 100).await;
        for _ in 0..100 {
            if shard.pending.borrow().is_empty() {
                break;
            }
            futures_lite::future::yield_now().await;
        }
        assert!(shard.pending.borrow().is_empty(), "the applier never ran");
        let streams = shard.streams.borrow();
        let heads: Vec<_> = streams.heads().collect();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].len(), 100);
    });
}

#[test]
fn metrics_count_an_acknowledged_batch_at_once() {
    run(|| async {
        let shard = acknowledged(50, 10).await;
        let m = shard.metrics();
        assert_eq!(m.ingested_lines[Protocol::LokiPush as usize], 50);
    });
}
