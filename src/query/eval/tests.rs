//! Metric queries end to end over small hand-made data, expectations computed by hand in
//! the comments. Every query runs on one accumulator and on three (lines dealt round-robin,
//! so each series is split between partials) and both must agree (`testkit::run`).

use crate::logql::{BinOp, RangeOp, SampleExpr, UnwrapConversion, VectorOp};
use crate::query::QueryError;
use crate::query::plan::plan_metric;
use crate::query::testkit::*;

use super::*;

mod binary_ops;
mod loghub;
mod vector_ops;

/// Web traffic: pod 1 logs "GET /index 200" (14 bytes) at 5s, 15s, ..., 115s; pod 2 logs
/// "POST /login 500" (15 bytes) at 10s, 30s, ..., 110s; the db logs "slow" once at 60s.
fn web() -> Vec<Line> {
    let mut lines = Vec::new();
    for t in (5..=115).step_by(10) {
        lines.push(line(&[("app", "web"), ("pod", "1")], t, "GET /index 200"));
    }
    for t in (10..=110).step_by(20) {
        lines.push(line(&[("app", "web"), ("pod", "2")], t, "POST /login 500"));
    }
    lines.push(line(&[("app", "db")], 60, "slow"));
    lines
}

const POD1: &str = r#"{app="web", pod="1"}"#;
const POD2: &str = r#"{app="web", pod="2"}"#;

#[test]
fn count_over_time_instant_and_range() {
    let e = range(RangeOp::CountOverTime, app("web"), 30).expr();
    // (30s, 60s]: pod 1 at 35, 45, 55; pod 2 at 50 (30 is on the open left end).
    assert_vector(
        &run(&e, instant(60), &web()).unwrap(),
        &[(POD1, 3.0), (POD2, 1.0)],
    );
    // Steps 30s, 70s, 110s: 120s is not reached by a 40s step from 30s.
    let s = steps(30, 120, 40);
    assert_matrix(
        &run(&e, s, &web()).unwrap(),
        s,
        &[
            (POD1, &all(&[3.0, 3.0, 3.0])),
            (POD2, &all(&[2.0, 2.0, 2.0])),
        ],
    );
}

#[test]
fn instant_vectors_carry_the_query_time() {
    let e = range(RangeOp::CountOverTime, app("db"), 30).expr();
    match run(&e, instant(60), &web()).unwrap() {
        MetricResult::Vector(v) => assert_eq!(v, vec![(labels(&[("app", "db")]), 60 * S, 1.0)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rates_divide_by_the_range() {
    let e = range(RangeOp::Rate, app("web"), 30).expr();
    assert_vector(
        &run(&e, instant(60), &web()).unwrap(),
        &[(POD1, 0.1), (POD2, 1.0 / 30.0)],
    );
    // (0s, 60s]: pod 1 has 6 lines of 14 bytes, pod 2 3 lines of 15 bytes.
    let e = range(RangeOp::BytesOverTime, app("web"), 60).expr();
    assert_vector(
        &run(&e, instant(60), &web()).unwrap(),
        &[(POD1, 84.0), (POD2, 45.0)],
    );
    let e = range(RangeOp::BytesRate, app("web"), 60).expr();
    assert_vector(
        &run(&e, instant(60), &web()).unwrap(),
        &[(POD1, 1.4), (POD2, 0.75)],
    );
    // A sub-second range: (59.5s, 60s] holds the db line, 1 / 0.5s.
    let e = range(RangeOp::Rate, app("db"), 0)
        .range_ns(500_000_000)
        .expr();
    assert_vector(
        &run(&e, instant(60), &web()).unwrap(),
        &[(r#"{app="db"}"#, 2.0)],
    );
}

#[test]
fn line_filters_select_lines() {
    let e = range(
        RangeOp::CountOverTime,
        contains(selector(&[("app", "=~", "web|db")]), "500"),
        120,
    )
    .expr();
    assert_vector(&run(&e, instant(120), &web()).unwrap(), &[(POD2, 6.0)]);
}

#[test]
fn offset_shifts_the_windows_back() {
    let e = range(RangeOp::CountOverTime, app("web"), 30)
        .offset(30)
        .expr();
    // At 90s the window is (30s, 60s], as the instant query at 60s without offset.
    assert_vector(
        &run(&e, instant(90), &web()).unwrap(),
        &[(POD1, 3.0), (POD2, 1.0)],
    );
    // Steps 30s, 60s, 90s read (-30s, 0s], (0s, 30s], (30s, 60s]; points keep the step time.
    let s = steps(30, 90, 30);
    assert_matrix(
        &run(&e, s, &web()).unwrap(),
        s,
        &[
            (POD1, &[NONE, Some(3.0), Some(3.0)]),
            (POD2, &[NONE, Some(2.0), Some(1.0)]),
        ],
    );
}

#[test]
fn empty_windows_give_no_point() {
    let e = range(RangeOp::CountOverTime, app("db"), 10).expr();
    let s = steps(40, 100, 20);
    // Only (50s, 60s] holds the db line.
    assert_matrix(
        &run(&e, s, &web()).unwrap(),
        s,
        &[(r#"{app="db"}"#, &[NONE, Some(1.0), NONE, NONE])],
    );
    assert_empty(&run(&e, instant(500), &web()).unwrap());
    let e = range(RangeOp::CountOverTime, app("nothing"), 10).expr();
    assert_empty(&run(&e, s, &web()).unwrap());
}

#[test]
fn short_windows_do_not_overlap() {
    // [10s] every 40s: (10s, 20s], (50s, 60s], (90s, 100s] each hold one line of pod 1.
    let e = range(
        RangeOp::CountOverTime,
        selector(&[("app", "=", "web"), ("pod", "=", "1")]),
        10,
    )
    .expr();
    let s = steps(20, 100, 40);
    assert_matrix(
        &run(&e, s, &web()).unwrap(),
        s,
        &[(POD1, &all(&[1.0, 1.0, 1.0]))],
    );
}

#[test]
fn absent_over_time_has_a_sample_only_without_data() {
    let e = range(RangeOp::AbsentOverTime, app("db"), 10).expr();
    let s = steps(40, 100, 20);
    assert_matrix(
        &run(&e, s, &web()).unwrap(),
        s,
        &[(r#"{app="db"}"#, &[Some(1.0), NONE, Some(1.0), Some(1.0)])],
    );
    // The labels are the selector's equality matchers.
    let e = range(
        RangeOp::AbsentOverTime,
        selector(&[("app", "=", "nope"), ("env", "=~", ".+")]),
        60,
    )
    .expr();
    assert_vector(
        &run(&e, instant(60), &web()).unwrap(),
        &[(r#"{app="nope"}"#, 1.0)],
    );
    let e = range(RangeOp::AbsentOverTime, app("web"), 60).expr();
    assert_empty(&run(&e, instant(60), &web()).unwrap());
}

/// API latencies, as `| logfmt` would have extracted them into `latency`: route /a at 10s,
/// 20s, 30s, 40s (0.5, 1.5, 2, 4) and 50s (NaN); route /b at 15s and 45s (10, 30).
fn api() -> Vec<Line> {
    let a = |t, v| line(&[("app", "api"), ("route", "/a"), ("latency", v)], t, "x");
    let b = |t, v| line(&[("app", "api"), ("route", "/b"), ("latency", v)], t, "x");
    vec![
        a(10, "0.5"),
        b(15, "10"),
        a(20, "1.5"),
        a(30, "2"),
        a(40, "4"),
        b(45, "30"),
        a(50, "NaN"),
        line(&[("app", "api"), ("route", "/c")], 20, "no latency here"),
    ]
}

const RA: &str = r#"{app="api", route="/a"}"#;
const RB: &str = r#"{app="api", route="/b"}"#;

#[test]
fn unwrapped_aggregations_at_one_instant() {
    // (0s, 40s]: /a has 0.5, 1.5, 2, 4; /b has 10. The unwrapped label leaves the series,
    // and /c, without the label, has no sample.
    let at = |op: RangeOp, q: Option<f64>| {
        let mut r = range(op, app("api"), 40).unwrap("latency");
        if let Some(q) = q {
            r = r.param(q);
        }
        run(&r.expr(), instant(40), &api()).unwrap()
    };
    assert_vector(&at(RangeOp::SumOverTime, None), &[(RA, 8.0), (RB, 10.0)]);
    assert_vector(&at(RangeOp::AvgOverTime, None), &[(RA, 2.0), (RB, 10.0)]);
    assert_vector(&at(RangeOp::MinOverTime, None), &[(RA, 0.5), (RB, 10.0)]);
    assert_vector(&at(RangeOp::MaxOverTime, None), &[(RA, 4.0), (RB, 10.0)]);
    assert_vector(&at(RangeOp::FirstOverTime, None), &[(RA, 0.5), (RB, 10.0)]);
    assert_vector(&at(RangeOp::LastOverTime, None), &[(RA, 4.0), (RB, 10.0)]);
    // Deviations from the mean 2: -1.5, -0.5, 0, 2; squares sum to 6.5; / 4 = 1.625.
    assert_vector(
        &at(RangeOp::StdvarOverTime, None),
        &[(RA, 1.625), (RB, 0.0)],
    );
    assert_vector(
        &at(RangeOp::StddevOverTime, None),
        &[(RA, 1.625f64.sqrt()), (RB, 0.0)],
    );
    // Ranks 0..3 of 0.5, 1.5, 2, 4: q=0.5 is rank 1.5, halfway between 1.5 and 2; q=0.9 is
    // rank 2.7: 2 * 0.3 + 4 * 0.7 = 3.4.
    assert_vector(
        &at(RangeOp::QuantileOverTime, Some(0.5)),
        &[(RA, 1.75), (RB, 10.0)],
    );
    assert_vector(
        &at(RangeOp::QuantileOverTime, Some(0.9)),
        &[(RA, 3.4), (RB, 10.0)],
    );
    assert_vector(
        &at(RangeOp::QuantileOverTime, Some(1.5)),
        &[(RA, f64::INFINITY), (RB, f64::INFINITY)],
    );
    // rate of an unwrap: sum / range.
    assert_vector(&at(RangeOp::Rate, None), &[(RA, 0.2), (RB, 0.25)]);
    // absent_over_time of an unwrap: lines without the label do not count.
    let e = range(
        RangeOp::AbsentOverTime,
        selector(&[("route", "=", "/c")]),
        40,
    )
    .unwrap("latency")
    .expr();
    assert_vector(
        &run(&e, instant(40), &api()).unwrap(),
        &[(r#"{route="/c"}"#, 1.0)],
    );
}

#[test]
fn unwrapped_aggregations_over_steps() {
    // Steps 20s, 45s, 70s with [25s]: (-5s, 20s], (20s, 45s], (45s, 70s].
    let s = steps(20, 70, 25);
    let e = range(RangeOp::MaxOverTime, app("api"), 25)
        .unwrap("latency")
        .expr();
    assert_matrix(
        &run(&e, s, &api()).unwrap(),
        s,
        // (45s, 70s] holds only the NaN of /a, so its max is NaN.
        &[
            (RA, &all(&[1.5, 4.0, f64::NAN])),
            (RB, &[Some(10.0), Some(30.0), NONE]),
        ],
    );
    let e = range(RangeOp::FirstOverTime, app("api"), 25)
        .unwrap("latency")
        .expr();
    assert_matrix(
        &run(&e, s, &api()).unwrap(),
        s,
        &[
            (RA, &all(&[0.5, 2.0, f64::NAN])),
            (RB, &[Some(10.0), Some(30.0), NONE]),
        ],
    );
    // avg over (20s, 45s]: /a has 2 and 4.
    let e = range(RangeOp::AvgOverTime, app("api"), 25)
        .unwrap("latency")
        .expr();
    assert_matrix(
        &run(&e, s, &api()).unwrap(),
        s,
        &[
            (RA, &all(&[1.0, 3.0, f64::NAN])),
            (RB, &[Some(10.0), Some(30.0), NONE]),
        ],
    );
}

#[test]
fn range_grouping_merges_series_at_the_source() {
    // by (app): one series of 0.5, 1.5, 2, 4, 10 in (0s, 40s].
    let e = range(RangeOp::AvgOverTime, app("api"), 40)
        .unwrap("latency")
        .by(&["app"])
        .expr();
    assert_vector(
        &run(&e, instant(40), &api()).unwrap(),
        &[(r#"{app="api"}"#, 3.6)],
    );
    let e = range(RangeOp::QuantileOverTime, app("api"), 40)
        .unwrap("latency")
        .param(0.5)
        .without(&["route"])
        .expr();
    assert_vector(
        &run(&e, instant(40), &api()).unwrap(),
        &[(r#"{app="api"}"#, 2.0)],
    );
    let e = range(RangeOp::MaxOverTime, app("api"), 40)
        .unwrap("latency")
        .by(&[])
        .expr();
    assert_vector(&run(&e, instant(40), &api()).unwrap(), &[("{}", 10.0)]);
}

#[test]
fn rate_counter_adds_back_resets() {
    // A counter 100, 130, 30 (reset), 60 at 10s..40s. (0s, 40s]: increase 60 - 100 + 130
    // = 90 over 30s; the first sample is 10s from the left end (below 1.1 average gaps) and
    // the zero point lies further back, so it extrapolates over 40s: 90 * 40 / 30 / 40s = 3.
    let lines: Vec<Line> = [(10, "100"), (20, "130"), (30, "30"), (40, "60")]
        .iter()
        .map(|&(t, c)| line(&[("app", "ctr"), ("c", c)], t, "tick"))
        .collect();
    let e = range(RangeOp::RateCounter, app("ctr"), 40)
        .unwrap("c")
        .expr();
    assert_vector(
        &run(&e, instant(40), &lines).unwrap(),
        &[(r#"{app="ctr"}"#, 3.0)],
    );
    // One sample has no rate: 0.
    assert_vector(
        &run(&e, instant(10), &lines).unwrap(),
        &[(r#"{app="ctr"}"#, 0.0)],
    );
}

#[test]
fn unwrap_conversions() {
    let lines = vec![
        line(
            &[("app", "job"), ("took", "1m30s"), ("size", "2KiB")],
            10,
            "done",
        ),
        line(
            &[("app", "job"), ("took", "500ms"), ("size", "1.5KB")],
            20,
            "done",
        ),
    ];
    let e = range(RangeOp::SumOverTime, app("job"), 60)
        .unwrap_as("took", UnwrapConversion::Duration)
        .expr();
    // `took` leaves the series; `size` stays and tells the two lines apart.
    assert_vector(
        &run(&e, instant(60), &lines).unwrap(),
        &[
            (r#"{app="job", size="1.5KB"}"#, 0.5),
            (r#"{app="job", size="2KiB"}"#, 90.0),
        ],
    );
    let e = range(RangeOp::MaxOverTime, app("job"), 60)
        .unwrap_as("took", UnwrapConversion::DurationSeconds)
        .by(&["app"])
        .expr();
    assert_vector(
        &run(&e, instant(60), &lines).unwrap(),
        &[(r#"{app="job"}"#, 90.0)],
    );
    let e = range(RangeOp::MinOverTime, app("job"), 60)
        .unwrap_as("size", UnwrapConversion::Bytes)
        .by(&["app"])
        .expr();
    assert_vector(
        &run(&e, instant(60), &lines).unwrap(),
        &[(r#"{app="job"}"#, 1500.0)],
    );
}

#[test]
fn errors_fail_the_query_unless_filtered_or_outside_windows() {
    let mut lines = api();
    lines.push(line(
        &[("app", "api"), ("route", "/d"), ("latency", "fast")],
        35,
        "x",
    ));
    let e = range(RangeOp::SumOverTime, app("api"), 40)
        .unwrap("latency")
        .expr();
    let err = run(&e, instant(40), &lines).unwrap_err();
    assert_eq!(err.status(), 400);
    let text = err.to_string();
    assert!(
        text.starts_with("pipeline error: 'SampleExtractionErr' for series: '{__error__=\"SampleExtractionErr\", __error_details__="),
        "{text}"
    );
    assert!(
        text.contains("(e.g | __error__!=\"SampleExtractionErr\")"),
        "{text}"
    );
    // The bad line is outside (0s, 30s]: no error.
    assert!(run(&e, instant(30), &lines).is_ok());
    // Pushed-down grouping keeps the error labels, so the error still surfaces.
    let e = agg_grouped(
        VectorOp::Sum,
        Some(by(&["app"])),
        range(RangeOp::Rate, app("api"), 40).unwrap("latency"),
    );
    assert!(matches!(
        run(&e, instant(40), &lines),
        Err(QueryError::Pipeline(_))
    ));
    // A parser's error label fails a count too; `__preserve_error__="true"` keeps it.
    let mut lines = web();
    lines.push(line(
        &[("app", "web"), ("pod", "3"), ("__error__", "JSONParserErr")],
        59,
        "{",
    ));
    let e = range(RangeOp::CountOverTime, app("web"), 30).expr();
    assert!(run(&e, instant(60), &lines).is_err());
    lines.pop();
    lines.push(line(
        &[
            ("app", "web"),
            ("pod", "3"),
            ("__error__", "JSONParserErr"),
            ("__preserve_error__", "true"),
        ],
        59,
        "{",
    ));
    let v = vector_of(&run(&e, instant(60), &lines).unwrap());
    assert_eq!(v.len(), 3);
}

#[test]
fn literals_and_vector_literals_need_no_data() {
    let e = bin(BinOp::Add, lit(1.0), lit(1.0));
    assert_eq!(
        run(&e, instant(60), &[]).unwrap(),
        MetricResult::Scalar(60 * S, 2.0)
    );
    let s = steps(0, 20, 10);
    assert_matrix(
        &run(&e, s, &[]).unwrap(),
        s,
        &[("{}", &all(&[2.0, 2.0, 2.0]))],
    );
    let e = vector(2.5);
    assert_vector(&run(&e, instant(60), &[]).unwrap(), &[("{}", 2.5)]);
    assert_matrix(
        &run(&e, s, &[]).unwrap(),
        s,
        &[("{}", &all(&[2.5, 2.5, 2.5]))],
    );
    let e = bin(BinOp::Add, vector(1.0), vector(1.0));
    assert_vector(&run(&e, instant(60), &[]).unwrap(), &[("{}", 2.0)]);
    let e = bin(
        BinOp::Add,
        bin(BinOp::Div, vector(1.0), vector(0.0)),
        lit(1.0),
    );
    assert_vector(&run(&e, instant(60), &[]).unwrap(), &[("{}", f64::NAN)]);
    let e = bin(BinOp::Mul, lit(-1.0), vector(3.0));
    assert_vector(&run(&e, instant(60), &[]).unwrap(), &[("{}", -3.0)]);
}

#[test]
fn label_replace_follows_prometheus() {
    let inner = || range(RangeOp::CountOverTime, app("web"), 120);
    let at = |e: SampleExpr| vector_of(&run(&e, instant(120), &web()).unwrap());
    assert_eq!(
        at(label_replace(inner(), "name", "pod-$1", "pod", "(.*)")),
        vec![
            (r#"{app="web", name="pod-1", pod="1"}"#.to_string(), 12.0),
            (r#"{app="web", name="pod-2", pod="2"}"#.to_string(), 6.0),
        ]
    );
    // Anchored: "(1)" matches "1" but "()" does not match "2"; no match changes nothing.
    assert_eq!(
        at(label_replace(inner(), "pod", "one", "pod", "1")),
        vec![
            (r#"{app="web", pod="2"}"#.to_string(), 6.0),
            (r#"{app="web", pod="one"}"#.to_string(), 12.0),
        ]
    );
    // An empty result deletes the label; a missing source reads as "".
    assert_eq!(
        at(label_replace(inner(), "pod", "$1", "pod", "1()")),
        vec![
            (r#"{app="web"}"#.to_string(), 12.0),
            (r#"{app="web", pod="2"}"#.to_string(), 6.0),
        ]
    );
    assert_eq!(
        at(label_replace(inner(), "region", "eu", "missing", ".*")),
        vec![
            (r#"{app="web", pod="1", region="eu"}"#.to_string(), 12.0),
            (r#"{app="web", pod="2", region="eu"}"#.to_string(), 6.0),
        ]
    );
    // `$1x` is the group named "1x", which does not exist: empty, so the label goes.
    assert_eq!(
        at(label_replace(inner(), "app", "$1x", "app", "(.*)")),
        vec![
            (r#"{pod="1"}"#.to_string(), 12.0),
            (r#"{pod="2"}"#.to_string(), 6.0),
        ]
    );
}

#[test]
fn series_limit_on_the_result_and_on_leaves() {
    let run_max = |e: &SampleExpr, s, max| run_sharded(e, s, &web(), 2, max);
    let leaf = range(RangeOp::CountOverTime, selector(&[("app", "=~", ".+")]), 60).expr();
    // Three series at 60s: web pods 1 and 2, db.
    let err = run_max(&leaf, instant(60), 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "maximum number of series (2) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    );
    assert!(matches!(
        err,
        QueryError::Limit {
            limit: "max_query_series",
            ..
        }
    ));
    assert!(run_max(&leaf, instant(60), 3).is_ok());
    // Over steps: 2 series at 30s (pods), the db joins at 60s.
    let s = steps(30, 60, 30);
    let e = range(RangeOp::CountOverTime, selector(&[("app", "=~", ".+")]), 30).expr();
    assert!(run_max(&e, s, 2).is_err());
    assert!(run_max(&e, s, 3).is_ok());
    // Under an aggregation only the aggregation's output counts (Loki sends it between
    // querier and frontend): `max by (app)` gives 2 series.
    let e = agg_grouped(
        VectorOp::Max,
        Some(by(&["app"])),
        range(RangeOp::CountOverTime, selector(&[("app", "=~", ".+")]), 60),
    );
    assert!(run_max(&e, instant(60), 2).is_ok());
    assert!(run_max(&e, instant(60), 1).is_err());
    // A leaf under a binary operator counts itself.
    let e = bin(
        BinOp::Mul,
        range(RangeOp::CountOverTime, selector(&[("app", "=~", ".+")]), 60),
        lit(2.0),
    );
    assert!(run_max(&e, instant(60), 2).is_err());
    let e = select(
        VectorOp::Topk,
        1,
        None,
        range(RangeOp::CountOverTime, selector(&[("app", "=~", ".+")]), 60),
    );
    assert!(run_max(&e, instant(60), 1).is_ok());
    // 0 disables the check.
    assert!(run_max(&leaf, instant(60), 0).is_ok());
}

#[test]
fn partials_must_come_from_the_plan() {
    let e = range(RangeOp::CountOverTime, app("web"), 60).expr();
    let plan = plan_metric(&e, instant(60)).unwrap();
    let limits = EvalLimits { max_series: 0 };
    assert!(matches!(
        evaluate(&plan, Vec::new(), &limits),
        Err(QueryError::Internal(_))
    ));
    let other = plan_metric(&e, instant(61)).unwrap();
    let foreign = other.leaves()[0].empty_partial();
    assert!(matches!(
        evaluate(&plan, vec![foreign], &limits),
        Err(QueryError::Internal(_))
    ));
    let own = plan.leaves()[0].empty_partial();
    assert_empty(&evaluate(&plan, vec![own], &limits).unwrap());
}

#[test]
fn a_series_split_between_shards_merges_exactly() {
    // Pod 1's twelve lines dealt between two accumulators, by hand.
    let e = range(RangeOp::QuantileOverTime, app("web"), 120)
        .unwrap("n")
        .param(0.25)
        .expr();
    let plan = plan_metric(&e, steps(60, 120, 60)).unwrap();
    let leaf = &plan.leaves()[0];
    let mut a = leaf.accumulator(1 << 20);
    let mut b = leaf.accumulator(1 << 20);
    let l = labels(&[("app", "web"), ("pod", "1")]);
    for (i, t) in (5..=115).step_by(10).enumerate() {
        let acc = if i % 2 == 0 { &mut a } else { &mut b };
        acc.push(&l, t * S, i as f64).unwrap();
    }
    let mut merged = b.finish();
    merged.merge(a.finish()).unwrap();
    let got = evaluate(&plan, vec![merged], &EvalLimits { max_series: 0 }).unwrap();
    // At 60s: values 0..5, rank 1.25 → 1.25; at 120s: 0..11, rank 2.75 → 2.75.
    assert_eq!(
        matrix_of(&got),
        vec![(
            r#"{app="web", pod="1"}"#.to_string(),
            vec![(60, 1.25), (120, 2.75)]
        )]
    );
}

#[test]
fn matrices_are_sorted_by_labels() {
    let e = range(
        RangeOp::CountOverTime,
        selector(&[("app", "=~", ".+")]),
        120,
    )
    .expr();
    let got = matrix_of(&run(&e, steps(60, 120, 60), &web()).unwrap());
    let order: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(order, vec![r#"{app="db"}"#, POD1, POD2]);
}
