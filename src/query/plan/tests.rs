use crate::logql::{BinOp, ParseError, RangeOp, VectorOp};
use crate::query::sample::OutputGrouping;
use crate::query::testkit::*;

use super::*;

fn plan(expr: &SampleExpr, steps: Steps) -> MetricPlan {
    plan_metric(expr, steps).expect("a valid plan")
}

fn err(expr: &SampleExpr, steps: Steps) -> String {
    plan_metric(expr, steps).unwrap_err().to_string()
}

#[test]
fn range_steps_start_at_start_and_stop_at_end() {
    // 100s does not divide by 30s: the last step is 90s, never past the end.
    assert_eq!(
        steps(0, 100, 30).times().unwrap(),
        vec![0, 30 * S, 60 * S, 90 * S]
    );
    assert_eq!(steps(0, 90, 30).times().unwrap().len(), 4);
    assert_eq!(instant(42).times().unwrap(), vec![42 * S]);
    assert!(instant(42).is_instant());
    // A range query with start == end is still a range query of one step.
    let one = Steps::range(5 * S, 5 * S, S);
    assert!(!one.is_instant());
    assert_eq!(one.times().unwrap(), vec![5 * S]);
}

#[test]
fn bad_steps_are_refused() {
    assert!(Steps::range(0, 10 * S, 0).times().is_err());
    assert!(Steps::range(0, 10 * S, -S).times().is_err());
    assert!(Steps::range(10 * S, 0, S).times().is_err());
    // Loki's limit: (end - start) / step <= 11,000.
    assert!(Steps::range(0, 11_000 * S, S).times().is_ok());
    let too_many = Steps::range(0, 11_001 * S, S).times().unwrap_err();
    assert!(too_many.to_string().contains("11,000 points"), "{too_many}");
    assert_eq!(too_many.status(), 400);
}

#[test]
fn default_step_is_a_250th_of_the_range_in_whole_seconds() {
    assert_eq!(default_step(0, 3600 * S), 14 * S);
    assert_eq!(default_step(0, 250 * S), S);
    assert_eq!(default_step(0, 100 * S), S);
    assert_eq!(default_step(0, 500 * S - 1), S);
    assert_eq!(default_step(0, 7 * 86_400 * S), 2419 * S);
    assert_eq!(default_step(10 * S, 0), S);
}

#[test]
fn leaves_in_query_order_with_their_scan_ranges() {
    let e = bin(
        BinOp::Div,
        range(RangeOp::CountOverTime, app("a"), 60).offset(30),
        range(RangeOp::Rate, app("b"), 300),
    );
    let p = plan(&e, steps(1000, 1600, 60));
    assert_eq!(p.leaves().len(), 2);
    let a = &p.leaves()[0];
    let b = &p.leaves()[1];
    assert_eq!((a.index(), a.op()), (0, RangeOp::CountOverTime));
    assert_eq!((b.index(), b.op()), (1, RangeOp::Rate));
    // First window (1000 - 60 - 30, 1000 - 30], last (1600 - 90, 1600 - 30]: read
    // [910s + 1ns, 1570s + 1ns).
    assert_eq!(a.scan_range(), (910 * S + 1, 1570 * S + 1));
    assert_eq!(b.scan_range(), (700 * S + 1, 1600 * S + 1));
    assert_eq!(a.windows().step_count(), 11);
    assert!(matches!(p.root(), PlanNode::Binary { .. }));
}

#[test]
fn short_windows_leave_gaps_the_scan_may_skip() {
    let p = plan(
        &range(RangeOp::CountOverTime, app("a"), 10).expr(),
        steps(100, 200, 50),
    );
    let leaf = &p.leaves()[0];
    assert!(leaf.covers(95 * S));
    assert!(!leaf.covers(90 * S), "the window's left end is open");
    assert!(!leaf.covers(120 * S));
    assert!(leaf.covers(200 * S));
}

#[test]
fn a_sum_pushes_its_grouping_into_sum_like_leaves() {
    let pushed = |op: RangeOp, unwrapped: bool| {
        let mut r = range(op, app("a"), 60);
        if unwrapped {
            r = r.unwrap("v");
        }
        let e = agg_grouped(VectorOp::Sum, Some(by(&["host"])), r);
        let p = plan(&e, instant(100));
        let leaf = &p.leaves()[0];
        (leaf.pushdown().cloned(), leaf.output_grouping().clone())
    };
    for op in [
        RangeOp::CountOverTime,
        RangeOp::Rate,
        RangeOp::BytesOverTime,
        RangeOp::BytesRate,
    ] {
        assert_eq!(
            pushed(op, false),
            (Some(by(&["host"])), OutputGrouping::By(names(&["host"]))),
            "{op:?}"
        );
    }
    for op in [RangeOp::SumOverTime, RangeOp::Rate] {
        assert_eq!(
            pushed(op, true),
            (Some(by(&["host"])), OutputGrouping::By(names(&["host"]))),
            "{op:?} with unwrap"
        );
    }
    for op in [
        RangeOp::MaxOverTime,
        RangeOp::AvgOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::RateCounter,
        RangeOp::FirstOverTime,
    ] {
        let mut r = range(op, app("a"), 60).unwrap("v");
        if op == RangeOp::QuantileOverTime {
            r = r.param(0.5);
        }
        let e = agg_grouped(VectorOp::Sum, Some(by(&["host"])), r);
        let p = plan(&e, instant(100));
        assert!(p.leaves()[0].pushdown().is_none(), "{op:?}");
        assert_eq!(
            p.leaves()[0].output_grouping(),
            &OutputGrouping::Without(names(&["v"])),
            "{op:?}"
        );
    }
    // Only `sum`, and only directly: not `max`, not through a binary operator.
    let e = agg_grouped(
        VectorOp::Max,
        Some(by(&["host"])),
        range(RangeOp::CountOverTime, app("a"), 60),
    );
    assert!(plan(&e, instant(100)).leaves()[0].pushdown().is_none());
    let e = agg(
        VectorOp::Sum,
        bin(
            BinOp::Mul,
            range(RangeOp::CountOverTime, app("a"), 60),
            lit(2.0),
        ),
    );
    assert!(plan(&e, instant(100)).leaves()[0].pushdown().is_none());
    // `sum` without grouping keeps no label at all.
    let e = agg(VectorOp::Sum, range(RangeOp::CountOverTime, app("a"), 60));
    assert_eq!(
        plan(&e, instant(100)).leaves()[0].output_grouping(),
        &OutputGrouping::Nothing
    );
    let e = agg_grouped(
        VectorOp::Sum,
        Some(without(&["pod"])),
        range(RangeOp::Rate, app("a"), 60),
    );
    assert_eq!(
        plan(&e, instant(100)).leaves()[0].output_grouping(),
        &OutputGrouping::Without(names(&["pod"]))
    );
}

#[test]
fn sample_sources_follow_the_operation() {
    let source = |r: Range| {
        let p = plan(&r.expr(), instant(100));
        match p.leaves()[0].sample_source() {
            SampleSource::LineCount => "count".to_string(),
            SampleSource::LineBytes => "bytes".to_string(),
            SampleSource::Unwrap(u) => format!("unwrap {}", u.label),
        }
    };
    assert_eq!(source(range(RangeOp::CountOverTime, app("a"), 60)), "count");
    assert_eq!(source(range(RangeOp::Rate, app("a"), 60)), "count");
    assert_eq!(
        source(range(RangeOp::AbsentOverTime, app("a"), 60)),
        "count"
    );
    assert_eq!(source(range(RangeOp::BytesRate, app("a"), 60)), "bytes");
    assert_eq!(source(range(RangeOp::BytesOverTime, app("a"), 60)), "bytes");
    assert_eq!(
        source(range(RangeOp::Rate, app("a"), 60).unwrap("latency")),
        "unwrap latency"
    );
}

#[test]
fn range_aggregations_are_validated_as_loki_does() {
    let i = instant(100);
    assert_eq!(
        err(
            &range(RangeOp::CountOverTime, app("a"), 60)
                .by(&["app"])
                .expr(),
            i
        ),
        "parse error : grouping not allowed for count_over_time aggregation"
    );
    assert_eq!(
        err(
            &range(RangeOp::BytesRate, app("a"), 60).unwrap("v").expr(),
            i
        ),
        "parse error : invalid aggregation bytes_rate with unwrap"
    );
    assert_eq!(
        err(&range(RangeOp::SumOverTime, app("a"), 60).expr(), i),
        "parse error : invalid aggregation sum_over_time without unwrap"
    );
    assert_eq!(
        err(&range(RangeOp::RateCounter, app("a"), 60).expr(), i),
        "parse error : invalid aggregation rate_counter without unwrap"
    );
    assert!(
        err(
            &range(RangeOp::QuantileOverTime, app("a"), 60)
                .unwrap("v")
                .expr(),
            i
        )
        .contains("parameter required")
    );
    assert!(plan_metric(&range(RangeOp::Rate, app("a"), 60).unwrap("v").expr(), i).is_ok());
    assert!(
        plan_metric(
            &range(RangeOp::AbsentOverTime, app("a"), 60)
                .unwrap("v")
                .expr(),
            i
        )
        .is_ok()
    );
    assert!(
        plan_metric(
            &range(RangeOp::StddevOverTime, app("a"), 60)
                .unwrap("v")
                .without(&["x"])
                .expr(),
            i
        )
        .is_ok()
    );
    assert!(
        plan_metric(
            &range(RangeOp::CountOverTime, app("a"), 60)
                .range_ns(0)
                .expr(),
            i
        )
        .is_err()
    );
}

#[test]
fn vector_aggregations_are_validated_as_loki_does() {
    let inner = || range(RangeOp::CountOverTime, app("a"), 60);
    let i = instant(100);
    let mut no_k = select(VectorOp::Topk, 1, None, inner());
    if let SampleExpr::Vector(v) = &mut no_k {
        v.param = None;
    }
    assert_eq!(
        err(&no_k, i),
        "parse error : parameter required for operation topk"
    );
    assert!(err(&select(VectorOp::Bottomk, 0, None, inner()), i).contains("greater than 0"));
    assert!(
        err(
            &select(VectorOp::ApproxTopk, 2, Some(by(&["a"])), inner()),
            i
        )
        .contains("grouping not allowed for approx_topk")
    );
    let approx = select(VectorOp::ApproxTopk, 2, None, inner());
    assert!(plan_metric(&approx, i).is_ok());
    let e = plan_metric(&approx, steps(0, 100, 10)).unwrap_err();
    assert!(
        e.to_string().contains("only supported on instant queries"),
        "{e}"
    );
    let mut sum_with_k = agg(VectorOp::Sum, inner());
    if let SampleExpr::Vector(v) = &mut sum_with_k {
        v.param = Some(3);
    }
    assert!(err(&sum_with_k, i).contains("unsupported parameter"));
}

#[test]
fn literals_fold_and_set_operators_refuse_them() {
    let p = plan(&bin(BinOp::Add, lit(1.0), lit(2.0)), instant(10));
    assert!(matches!(p.root(), PlanNode::Literal(v) if *v == 3.0));
    let p = plan(&bin(BinOp::Gt, lit(7.0), lit(2.0)), instant(10));
    assert!(matches!(p.root(), PlanNode::Literal(v) if *v == 1.0));
    let p = plan(&bin(BinOp::Div, lit(10.0), lit(0.0)), instant(10));
    assert!(matches!(p.root(), PlanNode::Literal(v) if v.is_nan()));
    assert!(p.leaves().is_empty());
    let e = err(&bin(BinOp::And, lit(1.0), vector(2.0)), instant(10));
    assert!(
        e.contains("unexpected literal for left leg of logical/set binary operation (and)"),
        "{e}"
    );
    let e = err(&bin(BinOp::Or, vector(1.0), lit(2.0)), instant(10));
    assert!(e.contains("right leg"), "{e}");
    assert!(plan_metric(&agg(VectorOp::Sum, lit(1.0)), instant(10)).is_err());
}

#[test]
fn absent_labels_are_the_equality_matchers() {
    let leaf_labels = |m: &[(&str, &str, &str)]| {
        let p = plan(
            &range(RangeOp::AbsentOverTime, selector(m), 60).expr(),
            instant(100),
        );
        p.leaves()[0].absent_labels().to_string()
    };
    assert_eq!(
        leaf_labels(&[("job", "=", "x"), ("env", "=~", ".+")]),
        r#"{job="x"}"#
    );
    assert_eq!(
        leaf_labels(&[("a", "=", "1"), ("b", "=", "2"), ("a", "=", "3")]),
        r#"{b="2"}"#,
        "a name matched twice is dropped"
    );
    assert_eq!(
        leaf_labels(&[("a", "!=", "1"), ("b", "=", "2")]),
        r#"{b="2"}"#
    );
}

#[test]
fn deep_trees_are_refused() {
    let mut e = range(RangeOp::CountOverTime, app("a"), 60).expr();
    for _ in 0..PLAN_DEPTH_MAX + 1 {
        e = bin(BinOp::Add, e, vector(1.0));
    }
    let e = plan_metric(&e, instant(100)).unwrap_err();
    assert_eq!(e.status(), 400);
}

#[test]
fn label_replace_regexes_are_anchored_and_checked() {
    let inner = || range(RangeOp::CountOverTime, app("a"), 60);
    let p = plan(
        &label_replace(inner(), "x", "$1", "app", "(fo)o"),
        instant(100),
    );
    match p.root() {
        PlanNode::LabelReplace { regex, .. } => {
            assert!(regex.is_match("foo"));
            assert!(!regex.is_match("foobar"));
        }
        other => panic!("{other:?}"),
    }
    let e = plan_metric(&label_replace(inner(), "x", "$1", "app", "("), instant(100));
    assert!(matches!(e, Err(QueryError::Parse(ParseError::Invalid(_)))));
}

#[test]
fn plans_are_shared_and_partials_cross_threads() {
    fn shared<T: Send + Sync>() {}
    fn sent<T: Send>() {}
    shared::<MetricPlan>();
    shared::<LeafPlan>();
    sent::<crate::query::sample::LeafAccumulator>();
    sent::<crate::query::sample::LeafPartial>();
    sent::<crate::query::eval::MetricResult>();
}

#[test]
fn only_leaves_whose_shard_series_are_counted_series_bound_them() {
    let count = || range(RangeOp::CountOverTime, app("a"), 60);
    let bounds = |e: SampleExpr| plan(&e, steps(0, 600, 60)).leaves()[0].bounds_series();
    // Alone, or under a binary operator: the leaf's own series are counted.
    assert!(bounds(count().expr()));
    assert!(bounds(bin(BinOp::Gt, count(), lit(1.0))));
    // A sum pushed down: the shard outputs the sum's groups, which are counted.
    assert!(bounds(agg(VectorOp::Sum, count())));
    // Under another aggregation, a shard's series are not the counted ones.
    assert!(!bounds(agg(VectorOp::Avg, count())));
    // A range aggregation grouped itself is not pushed into.
    assert!(!bounds(agg(
        VectorOp::Sum,
        range(RangeOp::MaxOverTime, app("a"), 60)
            .unwrap("v")
            .by(&["pod"])
    )));
    // absent_over_time makes a series where there is none.
    assert!(!bounds(range(RangeOp::AbsentOverTime, app("a"), 60).expr()));
}
