//! The accumulator and the exactness of merging partial states.

use std::cell::Cell as Counter;

use proptest::prelude::*;

use crate::logql::{RangeOp, VectorOp};
use crate::query::QueryError;
use crate::query::plan::{LeafPlan, MetricPlan, plan_metric};
use crate::query::testkit::*;

use super::LeafPartial;
use super::table::{SeriesCells, Table};

fn leaf_plan(op: RangeOp, steps: crate::query::plan::Steps) -> MetricPlan {
    let mut r = range(op, app("a"), 60);
    if !matches!(
        op,
        RangeOp::CountOverTime | RangeOp::Rate | RangeOp::BytesRate | RangeOp::BytesOverTime
    ) && op != RangeOp::AbsentOverTime
    {
        r = r.unwrap("v");
    }
    if op == RangeOp::QuantileOverTime {
        r = r.param(0.9);
    }
    plan_metric(&r.expr(), steps).expect("a valid plan")
}

fn leaf(plan: &MetricPlan) -> &LeafPlan {
    &plan.leaves()[0]
}

#[test]
fn samples_go_to_their_series_and_interval() {
    // Steps 60s and 120s with [60s]: intervals (0,60] and (60,120].
    let p = leaf_plan(RangeOp::CountOverTime, steps(60, 120, 60));
    let mut acc = leaf(&p).accumulator(1 << 20);
    let a = labels(&[("app", "a"), ("pod", "1")]);
    let b = labels(&[("app", "a"), ("pod", "2")]);
    for (l, t) in [(&a, 10), (&a, 60), (&b, 61), (&a, 120), (&a, 121), (&b, 0)] {
        acc.push(l, t * S, 1.0).unwrap();
    }
    let partial = acc.finish();
    assert_eq!(partial.series_count(), 2);
    match &partial.table {
        Table::Count(series) => {
            assert_eq!(series[0].labels, a);
            assert_eq!(series[0].intervals, vec![0, 1]);
            assert_eq!(
                series[0].cells.iter().map(|c| c.0).collect::<Vec<_>>(),
                vec![2.0, 1.0]
            );
            assert_eq!(series[1].labels, b);
            assert_eq!(series[1].intervals, vec![1]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn labels_are_made_once_per_hash() {
    let p = leaf_plan(RangeOp::CountOverTime, instant(100));
    let mut acc = leaf(&p).accumulator(1 << 20);
    let made = Counter::new(0);
    for t in 50..100 {
        acc.push_hashed(
            7,
            || {
                made.set(made.get() + 1);
                labels(&[("app", "a")])
            },
            t * S,
            1.0,
        )
        .unwrap();
    }
    assert_eq!(made.get(), 1);
    assert_eq!(acc.finish().series_count(), 1);
}

#[test]
fn grouping_is_applied_on_the_shard() {
    let e = agg_grouped(
        VectorOp::Sum,
        Some(by(&["host"])),
        range(RangeOp::CountOverTime, app("a"), 60),
    );
    let p = plan_metric(&e, instant(100)).unwrap();
    let mut acc = leaf(&p).accumulator(1 << 20);
    for (pod, host) in [("1", "x"), ("2", "x"), ("3", "y")] {
        acc.push(
            &labels(&[("app", "a"), ("host", host), ("pod", pod)]),
            90 * S,
            1.0,
        )
        .unwrap();
    }
    acc.push(
        &labels(&[("app", "a"), ("host", "x"), ("__error__", "JSONParserErr")]),
        90 * S,
        1.0,
    )
    .unwrap();
    let partial = acc.finish();
    let got: Vec<String> = match &partial.table {
        Table::Count(s) => s
            .iter()
            .map(|s| format!("{} {}", s.labels, s.cells[0].0))
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        got,
        vec![
            r#"{__error__="JSONParserErr", app="a", host="x"} 1"#,
            r#"{host="x"} 2"#,
            r#"{host="y"} 1"#,
        ]
    );
}

#[test]
fn memory_is_bounded() {
    let p = leaf_plan(RangeOp::QuantileOverTime, instant(100));
    let mut acc = leaf(&p).accumulator(4096);
    let l = labels(&[("app", "a")]);
    let mut pushed = 0;
    let err = loop {
        match acc.push(&l, 90 * S, 1.0) {
            Ok(()) => pushed += 1,
            Err(e) => break e,
        }
        assert!(pushed < 1000, "the budget never ran out");
    };
    assert!(
        pushed > 100,
        "a 4 KiB budget holds more than {pushed} samples of 16 bytes"
    );
    assert!(acc.memory_bytes() > 4096);
    match err {
        QueryError::Limit { limit, .. } => assert_eq!(limit, "query_memory_bytes_max"),
        other => panic!("{other:?}"),
    }
    // New series count too, even for counters.
    let p = leaf_plan(RangeOp::CountOverTime, instant(100));
    let mut acc = leaf(&p).accumulator(4096);
    let err = (0..1000)
        .map(|i| acc.push(&labels(&[("app", "a"), ("n", &i.to_string())]), 90 * S, 1.0))
        .find(Result::is_err);
    assert!(err.is_some());
}

#[test]
fn more_output_series_than_the_limit_fail_on_the_shard() {
    let p = leaf_plan(RangeOp::CountOverTime, instant(100));
    let mut acc = leaf(&p).accumulator(1 << 20).with_series_max(2);
    let pod = |n: &str| labels(&[("app", "a"), ("pod", n)]);
    acc.push(&pod("1"), 90 * S, 1.0).unwrap();
    acc.push(&pod("2"), 90 * S, 1.0).unwrap();
    // More lines of known series are fine; a third series is not.
    acc.push(&pod("1"), 91 * S, 1.0).unwrap();
    match acc.push(&pod("3"), 90 * S, 1.0) {
        Err(QueryError::Limit { limit, .. }) => assert_eq!(limit, "max_query_series"),
        other => panic!("{other:?}"),
    }
    // Series of failed lines are left to the receiving core, which fails the query with
    // the pipeline's error rather than the series limit.
    let mut acc = leaf(&p).accumulator(1 << 20).with_series_max(1);
    acc.push(&pod("1"), 90 * S, 1.0).unwrap();
    for n in 0..5 {
        let failed = labels(&[("app", "a"), ("pod", &n.to_string()), ("__error__", "E")]);
        acc.push(&failed, 90 * S, 1.0).unwrap();
    }
    // 0 is no limit.
    let mut acc = leaf(&p).accumulator(1 << 20).with_series_max(0);
    for n in 0..10 {
        acc.push(&pod(&n.to_string()), 90 * S, 1.0).unwrap();
    }
}

#[test]
fn partials_of_other_plans_do_not_merge() {
    let p1 = leaf_plan(RangeOp::CountOverTime, instant(100));
    let p2 = leaf_plan(RangeOp::CountOverTime, instant(200));
    let mut a = leaf(&p1).empty_partial();
    assert!(matches!(
        a.merge(leaf(&p2).empty_partial()),
        Err(QueryError::Internal(_))
    ));
    assert!(a.merge(leaf(&p1).empty_partial()).is_ok());
}

/// The samples of a few series over a few intervals, for the property tests: timestamps on
/// a coarse grid so that equal timestamps (ties for first/last) occur.
fn samples() -> impl Strategy<Value = Vec<(u8, i64, f64, bool)>> {
    // Quarters and integers below 2^53 / 200: sums of them are exact in any order, so the
    // tolerance only absorbs the divisions of the moments.
    let value = prop_oneof![
        8 => (-1000i32..1000).prop_map(|v| v as f64 / 4.0),
        2 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ];
    prop::collection::vec((0u8..4, 0i64..40, value, any::<bool>()), 0..200)
}

/// A canonical text of a partial's cells, with values compared exactly or to 1e-9.
fn assert_same(a: &LeafPartial, b: &LeafPartial) {
    fn cmp<C: std::fmt::Debug>(
        x: &[SeriesCells<C>],
        y: &[SeriesCells<C>],
        eq: impl Fn(&C, &C) -> bool,
    ) {
        assert_eq!(x.len(), y.len());
        for (s, t) in x.iter().zip(y) {
            assert_eq!(s.labels, t.labels);
            assert_eq!(s.intervals, t.intervals);
            for (c, d) in s.cells.iter().zip(&t.cells) {
                assert!(eq(c, d), "{c:?} != {d:?}");
            }
        }
    }
    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }
    fn near(a: f64, b: f64) -> bool {
        same(a, b) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }
    match (&a.table, &b.table) {
        (Table::Count(x), Table::Count(y)) => cmp(x, y, |c, d| same(c.0, d.0)),
        (Table::Sum(x), Table::Sum(y)) => cmp(x, y, |c, d| near(c.0, d.0)),
        (Table::Min(x), Table::Min(y)) => cmp(x, y, |c, d| same(c.0, d.0)),
        (Table::Max(x), Table::Max(y)) => cmp(x, y, |c, d| same(c.0, d.0)),
        (Table::Avg(x), Table::Avg(y)) => {
            cmp(x, y, |c, d| near(c.sum, d.sum) && same(c.count, d.count))
        }
        // With an infinity or NaN in a cell the variance is NaN whatever the order, while
        // the mean may be infinite or NaN depending on it.
        (Table::Moments(x), Table::Moments(y)) => cmp(x, y, |c, d| {
            same(c.count, d.count)
                && if c.m2.is_nan() || d.m2.is_nan() {
                    c.m2.is_nan() && d.m2.is_nan()
                } else {
                    near(c.mean, d.mean) && near(c.m2, d.m2)
                }
        }),
        (Table::First(x), Table::First(y)) => cmp(x, y, |c, d| c.0 == d.0 && same(c.1, d.1)),
        (Table::Last(x), Table::Last(y)) => cmp(x, y, |c, d| c.0 == d.0 && same(c.1, d.1)),
        (Table::Samples(x), Table::Samples(y)) => cmp(x, y, |c, d| {
            c.0.len() == d.0.len()
                && c.0
                    .iter()
                    .zip(&d.0)
                    .all(|(p, q)| p.0 == q.0 && same(p.1, q.1))
        }),
        (x, y) => panic!("different kinds: {:?} {:?}", x.kind(), y.kind()),
    }
}

const OPS: [RangeOp; 15] = [
    RangeOp::CountOverTime,
    RangeOp::Rate,
    RangeOp::RateCounter,
    RangeOp::BytesOverTime,
    RangeOp::BytesRate,
    RangeOp::AvgOverTime,
    RangeOp::SumOverTime,
    RangeOp::MinOverTime,
    RangeOp::MaxOverTime,
    RangeOp::StddevOverTime,
    RangeOp::StdvarOverTime,
    RangeOp::QuantileOverTime,
    RangeOp::FirstOverTime,
    RangeOp::LastOverTime,
    RangeOp::AbsentOverTime,
];

proptest! {
    /// Splitting samples between two accumulators and merging equals one accumulator:
    /// exactly for counts, min, max, first, last and sample lists; to 1e-9 relative for
    /// sums and moments, whose floating-point additions happen in another order.
    #[test]
    fn merging_a_split_equals_one_accumulator(data in samples(), op_index in 0usize..15) {
        let op = OPS[op_index];
        // Overlapping windows: steps every 7s from 10s to 45s with [60s].
        let p = leaf_plan(op, steps(10, 45, 7));
        let leaf = leaf(&p);
        let mut whole = leaf.accumulator(1 << 24);
        let mut left = leaf.accumulator(1 << 24);
        let mut right = leaf.accumulator(1 << 24);
        for &(series, ts, value, to_left) in &data {
            let l = labels(&[("app", "a"), ("s", &series.to_string())]);
            whole.push(&l, ts * S, value).unwrap();
            let side = if to_left { &mut left } else { &mut right };
            side.push(&l, ts * S, value).unwrap();
        }
        let whole = whole.finish();
        let mut merged = left.finish();
        merged.merge(right.finish()).unwrap();
        assert_same(&whole, &merged);
        // And in the other order.
        let mut again = leaf.empty_partial();
        again.merge(merged).unwrap();
        assert_same(&whole, &again);
    }
}
