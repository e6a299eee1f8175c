//! Metric queries over real sshd logs: the first 60 lines of Loghub's OpenSSH sample
//! (`testdata/loghub/OpenSSH_2k.log`, Dec 10 06:55:46 to 07:28:10). Expected values were
//! counted from the lines themselves (see the comments).

use crate::logql::{RangeOp, UnwrapConversion, VectorOp};
use crate::query::plan::Steps;
use crate::query::testkit::*;

/// Seconds since Dec 10 06:00:00 of `hh:mm:ss`.
fn at(h: i64, m: i64, s: i64) -> i64 {
    (h - 6) * 3600 + m * 60 + s
}

/// The lines as a shard would see them: stream labels `{app="sshd", host="LabSZ"}`, and
/// with `parsed`, what `| regexp` stages would extract: `pid` from `sshd[...]`, and `user`,
/// `ip`, `port` from "Failed password for [invalid user ]<user> from <ip> port <port>".
fn openssh(parsed: bool) -> Vec<Line> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/loghub/OpenSSH_2k.log"
    );
    let text = std::fs::read_to_string(path).expect("the Loghub OpenSSH sample");
    let head =
        regex::Regex::new(r"^Dec (\d+) (\d\d):(\d\d):(\d\d) (\S+) sshd\[(\d+)\]: (.*)$").unwrap();
    let failed =
        regex::Regex::new(r"Failed password for (?:invalid user )?(\S+) from (\S+) port (\d+)")
            .unwrap();
    let mut lines = Vec::new();
    for raw in text.lines().take(60) {
        let raw = raw.trim_end_matches('\r');
        let c = head.captures(raw).expect("a syslog line");
        let num = |i: usize| c[i].parse::<i64>().unwrap();
        let ts = (num(1) - 10) * 86_400 + at(num(2), num(3), num(4));
        let mut pairs: Vec<(String, String)> = vec![
            ("app".into(), "sshd".into()),
            ("host".into(), c[5].to_string()),
        ];
        if parsed {
            pairs.push(("pid".into(), c[6].to_string()));
            if let Some(f) = failed.captures(&c[7]) {
                pairs.push(("user".into(), f[1].to_string()));
                pairs.push(("ip".into(), f[2].to_string()));
                pairs.push(("port".into(), f[3].to_string()));
            }
        }
        lines.push(Line {
            labels: crate::model::Labels::from_pairs(pairs),
            ts: ts * S,
            text: raw.to_string(),
        });
    }
    lines
}

const SSHD: &str = r#"{app="sshd", host="LabSZ"}"#;

#[test]
fn failed_passwords_per_ten_minutes() {
    // Steps every 7 minutes from 07:00 to 07:30 (07:30 itself is not a step). Lines with
    // "Failed password": 06:55:48; 07:07:45, 07:08:30, 07:11:44, 07:13:43, 07:13:56 (the
    // "message repeated" line); 07:27:52, :55, :58, 07:28:00, :03, :05, :08, :10.
    //   (06:50, 07:00] 1; (06:57, 07:07] none; (07:04, 07:14] 5; (07:11, 07:21] 3;
    //   (07:18, 07:28] 4.
    let s = Steps::range(at(7, 0, 0) * S, at(7, 30, 0) * S, 7 * 60 * S);
    let e = range(
        RangeOp::CountOverTime,
        contains(app("sshd"), "Failed password"),
        600,
    )
    .expr();
    assert_matrix(
        &run(&e, s, &openssh(false)).unwrap(),
        s,
        &[(SSHD, &[Some(1.0), NONE, Some(5.0), Some(3.0), Some(4.0)])],
    );
}

#[test]
fn failures_by_user_in_the_last_hour() {
    // webmaster at 06:55:48 and 07:08:30, test9 at 07:07:45, chen at 07:11:44, pgadmin at
    // 07:28:05, root nine times (07:13:43, the repeat at 07:13:56 and seven from 07:27:52).
    let e = agg_grouped(
        VectorOp::Sum,
        Some(by(&["user"])),
        range(
            RangeOp::CountOverTime,
            contains(app("sshd"), "Failed password"),
            3600,
        ),
    );
    assert_vector(
        &run(&e, instant(at(7, 30, 0)), &openssh(true)).unwrap(),
        &[
            (r#"{user="chen"}"#, 1.0),
            (r#"{user="pgadmin"}"#, 1.0),
            (r#"{user="root"}"#, 9.0),
            (r#"{user="test9"}"#, 1.0),
            (r#"{user="webmaster"}"#, 2.0),
        ],
    );
}

#[test]
fn bytes_and_rates() {
    // (07:25, 07:30] holds lines 34 to 60: 27 lines of 2,920 bytes in all.
    let e = range(RangeOp::BytesOverTime, app("sshd"), 300).expr();
    assert_vector(
        &run(&e, instant(at(7, 30, 0)), &openssh(false)).unwrap(),
        &[(SSHD, 2920.0)],
    );
    // Lines per minute around the burst at 07:27:50-07:28:10: (07:27, 07:28] 12 lines,
    // (07:27:30, 07:28:30] 27, (07:28, 07:29] 15; nothing in the minute before 07:27:30.
    let s = Steps::range(at(7, 27, 0) * S, at(7, 29, 0) * S, 30 * S);
    let e = range(RangeOp::Rate, app("sshd"), 60).expr();
    assert_matrix(
        &run(&e, s, &openssh(false)).unwrap(),
        s,
        &[(SSHD, &[NONE, NONE, Some(0.2), Some(0.45), Some(0.25)])],
    );
}

#[test]
fn busiest_sessions_with_ties() {
    // Lines per sshd pid in the hour: 24200 and 24208 have 7; 24206, 24224, 24227 and
    // 24245 have 6; the rest fewer. Of the four tied at 6, the first in label order stays
    // (Go's heap never lets an equal value replace its top).
    let e = select(
        VectorOp::Topk,
        3,
        None,
        agg_grouped(
            VectorOp::Sum,
            Some(by(&["pid"])),
            range(RangeOp::CountOverTime, app("sshd"), 3600),
        ),
    );
    assert_vector(
        &run(&e, instant(at(7, 30, 0)), &openssh(true)).unwrap(),
        &[
            (r#"{pid="24200"}"#, 7.0),
            (r#"{pid="24206"}"#, 6.0),
            (r#"{pid="24208"}"#, 7.0),
        ],
    );
}

#[test]
fn unwrapped_ports() {
    // The 14 ports of the failed logins, sorted: 32484 36060 38926 39257 42393 42393 45378
    // 47068 49188 50999 52660 54087 55618 57138 (sum 643649).
    let ports = || {
        range(RangeOp::MaxOverTime, app("sshd"), 3600).unwrap_as("port", UnwrapConversion::Float)
    };
    let t = instant(at(7, 30, 0));
    assert_vector(
        &run(&ports().by(&["user"]).expr(), t, &openssh(true)).unwrap(),
        &[
            (r#"{user="chen"}"#, 32484.0),
            (r#"{user="pgadmin"}"#, 54087.0),
            (r#"{user="root"}"#, 57138.0),
            (r#"{user="test9"}"#, 36060.0),
            (r#"{user="webmaster"}"#, 39257.0),
        ],
    );
    let q = |p: f64| {
        range(RangeOp::QuantileOverTime, app("sshd"), 3600)
            .unwrap("port")
            .param(p)
            .by(&["app"])
            .expr()
    };
    // Median: ranks 6 and 7 (45378, 47068) averaged; 0.9: rank 11.7, 54087 + 0.7 * 1531.
    assert_vector(
        &run(&q(0.5), t, &openssh(true)).unwrap(),
        &[(r#"{app="sshd"}"#, 46223.0)],
    );
    assert_vector(
        &run(&q(0.9), t, &openssh(true)).unwrap(),
        &[(r#"{app="sshd"}"#, 55158.7)],
    );
    let e = range(RangeOp::AvgOverTime, app("sshd"), 3600)
        .unwrap("port")
        .by(&["host"])
        .expr();
    assert_vector(
        &run(&e, t, &openssh(true)).unwrap(),
        &[(r#"{host="LabSZ"}"#, 643649.0 / 14.0)],
    );
}

#[test]
fn no_accepted_logins() {
    let e = range(
        RangeOp::AbsentOverTime,
        contains(app("sshd"), "Accepted password"),
        1800,
    )
    .expr();
    assert_vector(
        &run(&e, instant(at(7, 30, 0)), &openssh(false)).unwrap(),
        &[(r#"{app="sshd"}"#, 1.0)],
    );
}
