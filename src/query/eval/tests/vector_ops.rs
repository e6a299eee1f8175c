//! Vector aggregations.

use crate::logql::{BinOp, RangeOp, SampleExpr, VectorOp};
use crate::query::eval::MetricResult;
use crate::query::testkit::*;

/// Four series with 2, 4, 6 and 8 lines in (0s, 60s]; in (0s, 30s] they have 1, 3, 3, 4
/// and in (30s, 60s] 1, 1, 3, 4.
fn fleet() -> Vec<Line> {
    let mut lines = Vec::new();
    let mut add = |pairs: &[(&str, &str)], times: &[i64]| {
        for &t in times {
            lines.push(line(pairs, t, "hello"));
        }
    };
    add(&[("app", "foo"), ("pod", "a"), ("zone", "eu")], &[10, 40]);
    add(
        &[("app", "foo"), ("pod", "b"), ("zone", "eu")],
        &[10, 20, 30, 40],
    );
    add(
        &[("app", "bar"), ("pod", "a"), ("zone", "us")],
        &[5, 15, 25, 35, 45, 55],
    );
    add(
        &[("app", "bar"), ("pod", "b"), ("zone", "us")],
        &[5, 12, 19, 26, 33, 40, 47, 54],
    );
    lines
}

const FOO_A: &str = r#"{app="foo", pod="a", zone="eu"}"#;
const FOO_B: &str = r#"{app="foo", pod="b", zone="eu"}"#;
const BAR_A: &str = r#"{app="bar", pod="a", zone="us"}"#;
const BAR_B: &str = r#"{app="bar", pod="b", zone="us"}"#;

fn counts(range_s: i64) -> Range {
    range(
        RangeOp::CountOverTime,
        selector(&[("app", "=~", "foo|bar")]),
        range_s,
    )
}

fn at60(e: SampleExpr) -> MetricResult {
    run(&e, instant(60), &fleet()).unwrap()
}

#[test]
fn sums() {
    assert_vector(&at60(agg(VectorOp::Sum, counts(60))), &[("{}", 20.0)]);
    assert_vector(
        &at60(agg_grouped(VectorOp::Sum, Some(by(&["app"])), counts(60))),
        &[(r#"{app="bar"}"#, 14.0), (r#"{app="foo"}"#, 6.0)],
    );
    assert_vector(
        &at60(agg_grouped(
            VectorOp::Sum,
            Some(without(&["pod"])),
            counts(60),
        )),
        &[
            (r#"{app="bar", zone="us"}"#, 14.0),
            (r#"{app="foo", zone="eu"}"#, 6.0),
        ],
    );
    assert_vector(
        &at60(agg_grouped(VectorOp::Sum, Some(without(&[])), counts(60))),
        &[(BAR_A, 6.0), (BAR_B, 8.0), (FOO_A, 2.0), (FOO_B, 4.0)],
    );
    let s = steps(30, 60, 30);
    let e = agg(VectorOp::Sum, counts(30));
    assert_matrix(
        &run(&e, s, &fleet()).unwrap(),
        s,
        &[("{}", &all(&[11.0, 9.0]))],
    );
}

#[test]
fn averages_extremes_and_counts() {
    assert_vector(&at60(agg(VectorOp::Avg, counts(60))), &[("{}", 5.0)]);
    assert_vector(
        &at60(agg_grouped(VectorOp::Avg, Some(by(&["zone"])), counts(60))),
        &[(r#"{zone="eu"}"#, 3.0), (r#"{zone="us"}"#, 7.0)],
    );
    assert_vector(&at60(agg(VectorOp::Min, counts(60))), &[("{}", 2.0)]);
    assert_vector(&at60(agg(VectorOp::Max, counts(60))), &[("{}", 8.0)]);
    assert_vector(
        &at60(agg_grouped(VectorOp::Min, Some(by(&["app"])), counts(60))),
        &[(r#"{app="bar"}"#, 6.0), (r#"{app="foo"}"#, 2.0)],
    );
    assert_vector(
        &at60(agg_grouped(VectorOp::Max, Some(by(&["zone"])), counts(60))),
        &[(r#"{zone="eu"}"#, 4.0), (r#"{zone="us"}"#, 8.0)],
    );
    assert_vector(&at60(agg(VectorOp::Count, counts(60))), &[("{}", 4.0)]);
    assert_vector(
        &at60(agg_grouped(
            VectorOp::Count,
            Some(by(&["zone"])),
            counts(60),
        )),
        &[(r#"{zone="eu"}"#, 2.0), (r#"{zone="us"}"#, 2.0)],
    );
}

#[test]
fn population_deviation_and_variance() {
    // 2, 4, 6, 8 around 5: squared deviations 9, 1, 1, 9 sum to 20; / 4 = 5.
    assert_vector(&at60(agg(VectorOp::Stdvar, counts(60))), &[("{}", 5.0)]);
    assert_vector(
        &at60(agg(VectorOp::Stddev, counts(60))),
        &[("{}", 5f64.sqrt())],
    );
    assert_vector(
        &at60(agg_grouped(
            VectorOp::Stdvar,
            Some(by(&["app"])),
            counts(60),
        )),
        &[(r#"{app="bar"}"#, 1.0), (r#"{app="foo"}"#, 1.0)],
    );
    assert_vector(
        &at60(agg_grouped(
            VectorOp::Stddev,
            Some(without(&[])),
            counts(60),
        )),
        &[(BAR_A, 0.0), (BAR_B, 0.0), (FOO_A, 0.0), (FOO_B, 0.0)],
    );
}

#[test]
fn topk_and_bottomk_select_and_instant_results_are_sorted_by_labels() {
    assert_vector(
        &at60(select(VectorOp::Topk, 2, None, counts(60))),
        &[(BAR_A, 6.0), (BAR_B, 8.0)],
    );
    assert_vector(
        &at60(select(VectorOp::Topk, 1, Some(by(&["app"])), counts(60))),
        &[(BAR_B, 8.0), (FOO_B, 4.0)],
    );
    assert_vector(
        &at60(select(VectorOp::Bottomk, 1, None, counts(60))),
        &[(FOO_A, 2.0)],
    );
    assert_vector(
        &at60(select(
            VectorOp::Bottomk,
            1,
            Some(without(&["pod"])),
            counts(60),
        )),
        &[(BAR_A, 6.0), (FOO_A, 2.0)],
    );
    assert_vector(
        &at60(select(VectorOp::Topk, 10, None, counts(60))),
        &[(BAR_A, 6.0), (BAR_B, 8.0), (FOO_A, 2.0), (FOO_B, 4.0)],
    );
    // approx_topk is topk, exactly.
    assert_vector(
        &at60(select(VectorOp::ApproxTopk, 2, None, counts(60))),
        &[(BAR_A, 6.0), (BAR_B, 8.0)],
    );
    // Over steps: at 60s foo/a and foo/b tie at 1; the first in label order stays.
    let s = steps(30, 60, 30);
    let e = select(VectorOp::Bottomk, 1, None, counts(30));
    assert_matrix(
        &run(&e, s, &fleet()).unwrap(),
        s,
        &[(FOO_A, &all(&[1.0, 1.0]))],
    );
    let e = select(VectorOp::Topk, 1, None, counts(30));
    assert_matrix(
        &run(&e, s, &fleet()).unwrap(),
        s,
        &[(BAR_B, &all(&[4.0, 4.0]))],
    );
}

/// Series `k` with as many lines in (0s, 60s] as its count.
fn tied(counts: &[(&str, i64)]) -> Vec<Line> {
    let mut lines = Vec::new();
    for &(k, n) in counts {
        for i in 0..n {
            lines.push(line(&[("app", "t"), ("k", k)], 1 + i, "x"));
        }
    }
    lines
}

#[test]
fn ties_are_resolved_as_gos_heap_resolves_them() {
    let e = |op, k| select(op, k, None, range(RangeOp::CountOverTime, app("t"), 60));
    let at = |e: SampleExpr, data: &[(&str, i64)]| {
        vector_of(&run(&e, instant(60), &tied(data)).unwrap())
            .into_iter()
            .map(|(l, v)| format!("{l} {v}"))
            .collect::<Vec<_>>()
    };
    // Three equal values, k = 2: the third never beats the heap's top, so a and b stay.
    assert_eq!(
        at(e(VectorOp::Topk, 2), &[("a", 5), ("b", 5), ("c", 5)]),
        vec![r#"{app="t", k="a"} 5"#, r#"{app="t", k="b"} 5"#]
    );
    // a and b tie, c is larger: popping the top (a, first in the heap array) keeps b.
    assert_eq!(
        at(e(VectorOp::Topk, 2), &[("a", 5), ("b", 5), ("c", 6)]),
        vec![r#"{app="t", k="b"} 5"#, r#"{app="t", k="c"} 6"#]
    );
    assert_eq!(
        at(e(VectorOp::Bottomk, 2), &[("a", 5), ("b", 5), ("c", 4)]),
        vec![r#"{app="t", k="b"} 5"#, r#"{app="t", k="c"} 4"#]
    );
}

#[test]
fn sort_keeps_its_order_in_instant_results() {
    let e = agg(VectorOp::Sort, counts(60));
    assert_vector(
        &at60(e),
        &[(FOO_A, 2.0), (FOO_B, 4.0), (BAR_A, 6.0), (BAR_B, 8.0)],
    );
    let e = agg(VectorOp::SortDesc, counts(60));
    assert_vector(
        &at60(e),
        &[(BAR_B, 8.0), (BAR_A, 6.0), (FOO_B, 4.0), (FOO_A, 2.0)],
    );
    // Anywhere in the query, as Loki's `Sortable` walks the whole tree.
    let e = bin(BinOp::Add, agg(VectorOp::Sort, counts(60)), lit(1.0));
    assert_vector(
        &at60(e),
        &[(FOO_A, 3.0), (FOO_B, 5.0), (BAR_A, 7.0), (BAR_B, 9.0)],
    );
}

/// One sample each for `k` = "fin" (2), "inf" (+Inf), "nan" (NaN) at 30s, as `| logfmt`
/// would extract `v`.
fn specials() -> Vec<Line> {
    [("fin", "2"), ("inf", "+Inf"), ("nan", "NaN")]
        .iter()
        .map(|&(k, v)| line(&[("app", "s"), ("k", k), ("v", v)], 30, "x"))
        .collect()
}

#[test]
fn special_values() {
    let inner = |ks: &str| {
        range(
            RangeOp::MaxOverTime,
            selector(&[("app", "=", "s"), ("k", "=~", ks)]),
            60,
        )
        .unwrap("v")
    };
    let at = |e: SampleExpr| run(&e, instant(60), &specials()).unwrap();
    assert_vector(
        &at(agg(VectorOp::Sum, inner("fin|nan"))),
        &[("{}", f64::NAN)],
    );
    assert_vector(
        &at(agg(VectorOp::Sum, inner("fin|inf"))),
        &[("{}", f64::INFINITY)],
    );
    assert_vector(
        &at(agg(VectorOp::Avg, inner("fin|inf"))),
        &[("{}", f64::INFINITY)],
    );
    assert_vector(
        &at(agg(VectorOp::Avg, inner("fin|nan"))),
        &[("{}", f64::NAN)],
    );
    // min and max skip a NaN unless it is all there is.
    assert_vector(&at(agg(VectorOp::Min, inner("fin|nan"))), &[("{}", 2.0)]);
    assert_vector(&at(agg(VectorOp::Max, inner("fin|nan"))), &[("{}", 2.0)]);
    assert_vector(&at(agg(VectorOp::Max, inner("nan"))), &[("{}", f64::NAN)]);
    assert_vector(&at(agg(VectorOp::Count, inner(".+"))), &[("{}", 3.0)]);
    assert_vector(
        &at(agg(VectorOp::Stddev, inner("fin|inf"))),
        &[("{}", f64::NAN)],
    );
    // topk and bottomk drop a NaN first.
    let fin = r#"{app="s", k="fin"}"#;
    let inf = r#"{app="s", k="inf"}"#;
    let nan = r#"{app="s", k="nan"}"#;
    assert_vector(
        &at(select(VectorOp::Topk, 1, None, inner("fin|nan"))),
        &[(fin, 2.0)],
    );
    assert_vector(
        &at(select(VectorOp::Bottomk, 1, None, inner("fin|nan"))),
        &[(fin, 2.0)],
    );
    assert_vector(
        &at(select(VectorOp::Topk, 1, None, inner(".+"))),
        &[(inf, f64::INFINITY)],
    );
    // sort and sort_desc put NaN last.
    assert_vector(
        &at(agg(VectorOp::Sort, inner(".+"))),
        &[(fin, 2.0), (inf, f64::INFINITY), (nan, f64::NAN)],
    );
    assert_vector(
        &at(agg(VectorOp::SortDesc, inner(".+"))),
        &[(inf, f64::INFINITY), (fin, 2.0), (nan, f64::NAN)],
    );
}

#[test]
fn steps_without_input_have_no_group() {
    // count by (app) over [30s] at 30s, 60s, 90s: no line falls in (60s, 90s].
    let s = steps(30, 90, 30);
    let e = agg_grouped(VectorOp::Count, Some(by(&["app"])), counts(30));
    assert_matrix(
        &run(&e, s, &fleet()).unwrap(),
        s,
        &[
            (r#"{app="bar"}"#, &[Some(2.0), Some(2.0), NONE]),
            (r#"{app="foo"}"#, &[Some(2.0), Some(2.0), NONE]),
        ],
    );
}
