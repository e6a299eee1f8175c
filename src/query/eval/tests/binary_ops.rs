//! Binary operators: scalar sides, vector matching, cardinalities, set operators, `bool`.

use crate::logql::{BinOp, Cardinality, LogExpr, RangeOp, SampleExpr, VectorOp};
use crate::query::QueryError;
use crate::query::eval::MetricResult;
use crate::query::testkit::*;

/// In (0s, 60s]: requests 6 on pod a and 4 on pod b; errors 3 on pod a and 2 on pod c.
fn traffic() -> Vec<Line> {
    let mut lines = Vec::new();
    let mut add = |pairs: &[(&str, &str)], times: &[i64]| {
        for &t in times {
            lines.push(line(pairs, t, "x"));
        }
    };
    add(&[("app", "req"), ("pod", "a")], &[10, 20, 30, 40, 50, 60]);
    add(&[("app", "req"), ("pod", "b")], &[15, 30, 45, 60]);
    add(&[("app", "err"), ("pod", "a")], &[20, 40, 60]);
    add(&[("app", "err"), ("pod", "c")], &[30, 60]);
    lines
}

const REQ_A: &str = r#"{app="req", pod="a"}"#;
const REQ_B: &str = r#"{app="req", pod="b"}"#;
const ERR_A: &str = r#"{app="err", pod="a"}"#;
const ERR_C: &str = r#"{app="err", pod="c"}"#;

fn count(log: LogExpr) -> SampleExpr {
    range(RangeOp::CountOverTime, log, 60).expr()
}

fn req() -> SampleExpr {
    count(app("req"))
}

fn err() -> SampleExpr {
    count(app("err"))
}

fn both() -> SampleExpr {
    count(selector(&[("app", "=~", "req|err")]))
}

fn by_pod(e: SampleExpr) -> SampleExpr {
    agg_grouped(VectorOp::Sum, Some(by(&["pod"])), e)
}

fn at60(e: &SampleExpr) -> MetricResult {
    run(e, instant(60), &traffic()).unwrap()
}

fn fails(e: &SampleExpr) -> String {
    match run(e, instant(60), &traffic()) {
        Err(e @ QueryError::BadRequest(_)) => e.to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn vector_and_scalar_arithmetic() {
    use BinOp::*;
    assert_vector(
        &at60(&bin(Mul, req(), lit(2.0))),
        &[(REQ_A, 12.0), (REQ_B, 8.0)],
    );
    assert_vector(
        &at60(&bin(Sub, lit(2.0), req())),
        &[(REQ_A, -4.0), (REQ_B, -2.0)],
    );
    assert_vector(
        &at60(&bin(Sub, req(), lit(2.0))),
        &[(REQ_A, 4.0), (REQ_B, 2.0)],
    );
    assert_vector(
        &at60(&bin(Div, lit(12.0), req())),
        &[(REQ_A, 2.0), (REQ_B, 3.0)],
    );
    // Division and modulo by zero are NaN, not infinite.
    assert_vector(
        &at60(&bin(Div, req(), lit(0.0))),
        &[(REQ_A, f64::NAN), (REQ_B, f64::NAN)],
    );
    assert_vector(
        &at60(&bin(Mod, req(), lit(0.0))),
        &[(REQ_A, f64::NAN), (REQ_B, f64::NAN)],
    );
    assert_vector(
        &at60(&bin(Mod, lit(10.0), req())),
        &[(REQ_A, 4.0), (REQ_B, 2.0)],
    );
    assert_vector(
        &at60(&bin(Pow, req(), lit(2.0))),
        &[(REQ_A, 36.0), (REQ_B, 16.0)],
    );
    assert_vector(
        &at60(&bin(Pow, lit(2.0), err())),
        &[(ERR_A, 8.0), (ERR_C, 4.0)],
    );
    assert_vector(
        &at60(&bin(Pow, req(), lit(0.0))),
        &[(REQ_A, 1.0), (REQ_B, 1.0)],
    );
}

#[test]
fn comparisons_with_a_scalar_filter_or_give_bool() {
    use BinOp::*;
    // Without bool the vector's own value is kept, on whichever side it is.
    assert_vector(&at60(&bin(Gt, req(), lit(5.0))), &[(REQ_A, 6.0)]);
    assert_vector(&at60(&bin(Lt, lit(5.0), req())), &[(REQ_A, 6.0)]);
    assert_vector(
        &at60(&bin(Ge, req(), lit(4.0))),
        &[(REQ_A, 6.0), (REQ_B, 4.0)],
    );
    assert_vector(&at60(&bin(Eq, req(), lit(4.0))), &[(REQ_B, 4.0)]);
    assert_vector(&at60(&bin(Ne, req(), lit(4.0))), &[(REQ_A, 6.0)]);
    assert_vector(
        &at60(&bin(Le, lit(4.0), req())),
        &[(REQ_A, 6.0), (REQ_B, 4.0)],
    );
    assert_empty(&at60(&bin(Gt, req(), lit(100.0))));
    assert_vector(
        &at60(&bin_bool(Gt, req(), lit(5.0))),
        &[(REQ_A, 1.0), (REQ_B, 0.0)],
    );
    assert_vector(
        &at60(&bin_bool(Lt, lit(5.0), req())),
        &[(REQ_A, 1.0), (REQ_B, 0.0)],
    );
    assert_vector(
        &at60(&bin_bool(Eq, req(), lit(4.0))),
        &[(REQ_A, 0.0), (REQ_B, 1.0)],
    );
}

#[test]
fn comparisons_with_nan() {
    let nan = vec![line(&[("app", "n"), ("v", "NaN")], 30, "x")];
    let e = || range(RangeOp::MaxOverTime, app("n"), 60).unwrap("v");
    let at = |e: SampleExpr| run(&e, instant(60), &nan).unwrap();
    assert_empty(&at(bin(BinOp::Gt, e(), lit(1.0))));
    assert_empty(&at(bin(BinOp::Lt, lit(1.0), e())));
    // NaN is unequal to everything, so `!=` keeps it.
    assert_vector(
        &at(bin(BinOp::Ne, e(), lit(1.0))),
        &[(r#"{app="n"}"#, f64::NAN)],
    );
    assert_vector(
        &at(bin_bool(BinOp::Gt, e(), lit(1.0))),
        &[(r#"{app="n"}"#, 0.0)],
    );
    assert_vector(
        &at(bin_bool(BinOp::Ne, e(), lit(1.0))),
        &[(r#"{app="n"}"#, 1.0)],
    );
}

#[test]
fn one_to_one_on_all_labels() {
    use BinOp::*;
    // Only identical label sets pair: the req series with themselves.
    assert_vector(
        &at60(&bin(Add, req(), both())),
        &[(REQ_A, 12.0), (REQ_B, 8.0)],
    );
    assert_vector(
        &at60(&bin(Div, both(), req())),
        &[(REQ_A, 1.0), (REQ_B, 1.0)],
    );
    assert_empty(&at60(&bin(Gt, req(), err())));
    assert_empty(&at60(&bin_bool(Gt, req(), err())));
    // Comparisons between vectors keep the left value.
    assert_vector(
        &at60(&bin(Ge, req(), both())),
        &[(REQ_A, 6.0), (REQ_B, 4.0)],
    );
    assert_vector(&at60(&bin(Gt, req(), both())), &[]);
}

#[test]
fn on_and_ignoring() {
    use BinOp::*;
    let one = Cardinality::OneToOne;
    // on (pod): pod a pairs 6 with 3; the result keeps only the `on` labels.
    assert_vector(
        &at60(&bin_matching(
            Div,
            false,
            true,
            &["pod"],
            one.clone(),
            req(),
            err(),
        )),
        &[(r#"{pod="a"}"#, 2.0)],
    );
    // ignoring (app): the result drops the ignored labels.
    assert_vector(
        &at60(&bin_matching(
            Sub,
            false,
            false,
            &["app"],
            one.clone(),
            req(),
            err(),
        )),
        &[(r#"{pod="a"}"#, 3.0)],
    );
    assert_vector(
        &at60(&bin_matching(
            Gt,
            true,
            false,
            &["app"],
            one.clone(),
            req(),
            err(),
        )),
        &[(r#"{pod="a"}"#, 1.0)],
    );
    // on (): the one sample of the left pairs with the one sample of vector(10).
    assert_vector(
        &at60(&bin_matching(
            Mul,
            false,
            true,
            &[],
            one,
            agg(VectorOp::Sum, req()),
            vector(10.0),
        )),
        &[("{}", 100.0)],
    );
}

#[test]
fn group_left_and_group_right() {
    use BinOp::*;
    // Each series' share of its pod: pod a totals 9, b 4, c 2.
    assert_vector(
        &at60(&bin_matching(
            Div,
            false,
            true,
            &["pod"],
            cardinality_left(&[]),
            both(),
            by_pod(both()),
        )),
        &[
            (ERR_A, 1.0 / 3.0),
            (ERR_C, 1.0),
            (REQ_A, 2.0 / 3.0),
            (REQ_B, 1.0),
        ],
    );
    // group_left (app) copies `app` from the one side.
    let errs_by_pod_app = agg_grouped(VectorOp::Sum, Some(by(&["pod", "app"])), err());
    assert_vector(
        &at60(&bin_matching(
            Mul,
            false,
            true,
            &["pod"],
            cardinality_left(&["app"]),
            by_pod(req()),
            errs_by_pod_app.clone(),
        )),
        &[(ERR_A, 18.0)],
    );
    // ... and deletes it when the one side lacks it.
    assert_vector(
        &at60(&bin_matching(
            Mul,
            false,
            true,
            &["pod"],
            cardinality_left(&["app"]),
            agg_grouped(VectorOp::Sum, Some(by(&["pod", "app"])), req()),
            by_pod(err()),
        )),
        &[(r#"{pod="a"}"#, 18.0)],
    );
    // group_right: the many side is on the right and gives the labels; without bool a
    // comparison keeps the left (one side's) value. Pod a: 6 > 3 holds, 6 > 6 does not.
    assert_vector(
        &at60(&bin_matching(
            Gt,
            false,
            true,
            &["pod"],
            cardinality_right(&[]),
            by_pod(req()),
            both(),
        )),
        &[(ERR_A, 6.0)],
    );
    assert_vector(
        &at60(&bin_matching(
            Gt,
            true,
            true,
            &["pod"],
            cardinality_right(&[]),
            by_pod(req()),
            both(),
        )),
        &[(ERR_A, 1.0), (REQ_A, 0.0), (REQ_B, 0.0)],
    );
    // group_right (app): left minus right, labels from the right with `app` from the left.
    assert_vector(
        &at60(&bin_matching(
            Sub,
            false,
            true,
            &["pod"],
            cardinality_right(&["app"]),
            errs_by_pod_app,
            req(),
        )),
        &[(ERR_A, -3.0)],
    );
}

#[test]
fn matching_errors_are_lokis() {
    use BinOp::*;
    let e = bin_matching(
        Add,
        false,
        true,
        &["pod"],
        Cardinality::OneToOne,
        both(),
        by_pod(both()),
    );
    assert_eq!(
        fails(&e),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    let e = bin_matching(
        Add,
        false,
        true,
        &[],
        Cardinality::OneToOne,
        by_pod(req()),
        both(),
    );
    assert_eq!(
        fails(&e),
        "found duplicate series on the right hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
    );
    let e = bin_matching(
        Gt,
        false,
        true,
        &["pod"],
        cardinality_right(&[]),
        both(),
        by_pod(req()),
    );
    assert!(fails(&e).starts_with("found duplicate series on the left hand-side"));
    // group_left (pod) from a side without `pod` makes both req series `{app="req"}`.
    let e = bin_matching(
        Mul,
        false,
        true,
        &[],
        cardinality_left(&["pod"]),
        req(),
        agg_grouped(VectorOp::Sum, Some(by(&["app"])), err()),
    );
    assert_eq!(
        fails(&e),
        "multiple matches for labels: grouping labels must ensure unique matches"
    );
}

#[test]
fn set_operators() {
    use BinOp::*;
    let one = || Cardinality::OneToOne;
    assert_vector(
        &at60(&bin_matching(
            And,
            false,
            true,
            &["pod"],
            one(),
            req(),
            err(),
        )),
        &[(REQ_A, 6.0)],
    );
    assert_vector(
        &at60(&bin_matching(
            Unless,
            false,
            true,
            &["pod"],
            one(),
            req(),
            err(),
        )),
        &[(REQ_B, 4.0)],
    );
    // `or` keeps the left and adds unmatched right series with their own labels.
    assert_vector(
        &at60(&bin_matching(
            Or,
            false,
            true,
            &["pod"],
            one(),
            req(),
            err(),
        )),
        &[(ERR_C, 2.0), (REQ_A, 6.0), (REQ_B, 4.0)],
    );
    // Many to many is fine for set operators.
    assert_vector(
        &at60(&bin_matching(
            And,
            false,
            false,
            &["app"],
            one(),
            both(),
            both(),
        )),
        &[(ERR_A, 3.0), (ERR_C, 2.0), (REQ_A, 6.0), (REQ_B, 4.0)],
    );
    let none = || count(app("none"));
    assert_empty(&at60(&bin(And, req(), none())));
    assert_vector(
        &at60(&bin(Or, none(), err())),
        &[(ERR_A, 3.0), (ERR_C, 2.0)],
    );
    assert_vector(
        &at60(&bin(Unless, req(), none())),
        &[(REQ_A, 6.0), (REQ_B, 4.0)],
    );
    assert_vector(
        &at60(&bin_matching(
            And,
            false,
            true,
            &[],
            one(),
            req(),
            vector(1.0),
        )),
        &[(REQ_A, 6.0), (REQ_B, 4.0)],
    );
    assert_empty(&at60(&bin_matching(
        Unless,
        false,
        true,
        &[],
        one(),
        req(),
        vector(1.0),
    )));
}

#[test]
fn or_vector_fills_missing_steps() {
    // [10s] every 20s from 0s: pod b's lines at 15s and 60s fall in (10s, 20s] and
    // (50s, 60s].
    let s = steps(0, 60, 20);
    let b = || {
        range(
            RangeOp::CountOverTime,
            selector(&[("app", "=", "req"), ("pod", "=", "b")]),
            10,
        )
    };
    let e = bin(BinOp::Or, b(), vector(0.0));
    assert_matrix(
        &run(&e, s, &traffic()).unwrap(),
        s,
        &[
            ("{}", &all(&[0.0, 0.0, 0.0, 0.0])),
            (REQ_B, &[NONE, Some(1.0), NONE, Some(1.0)]),
        ],
    );
    let e = bin(BinOp::Or, agg(VectorOp::Sum, b()), vector(0.0));
    assert_matrix(
        &run(&e, s, &traffic()).unwrap(),
        s,
        &[("{}", &all(&[0.0, 1.0, 0.0, 1.0]))],
    );
}

#[test]
fn nested_expressions() {
    use BinOp::*;
    // sum by (pod) (req) + sum by (pod) (req) / sum by (pod) (req) = x + 1.
    let e = bin(Add, by_pod(req()), bin(Div, by_pod(req()), by_pod(req())));
    assert_vector(&at60(&e), &[(r#"{pod="a"}"#, 7.0), (r#"{pod="b"}"#, 5.0)]);
    let e = bin(Mul, agg(VectorOp::Avg, e), lit(2.0));
    assert_vector(&at60(&e), &[("{}", 12.0)]);
}
