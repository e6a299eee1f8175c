//! What one check found, and how the findings are printed: one aligned line per check, the
//! fix on an indented line under it, a summary, and the exit code.

use std::fmt::Write as _;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// The check could not be made here (the host does not expose what it reads).
    Skip,
    /// `serve` works, but slower or less safely than it could; the fix is worth making.
    Warn,
    /// `serve` would not start, or would not keep what it acknowledges.
    Fail,
}

impl Status {
    /// The word printed in the first column.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Short name of what was checked, e.g. `memlock`.
    pub check: &'static str,
    pub status: Status,
    /// What was found, with the numbers.
    pub detail: String,
    /// What to do about it, with the exact command where there is one.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn skip(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Skip,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Width of the status column: the longest status word.
const STATUS_WIDTH: usize = 4;

/// Renders the findings as aligned columns, each fix indented under its line, then a
/// summary line.
pub fn render(findings: &[Finding]) -> String {
    let name_width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let indent = " ".repeat(STATUS_WIDTH + 2 + name_width + 2);
    let mut out = String::new();
    for f in findings {
        let _ = writeln!(
            out,
            "{:<STATUS_WIDTH$}  {:<name_width$}  {}",
            f.status.word(),
            f.check,
            f.detail
        );
        if let Some(fix) = &f.fix {
            for (i, line) in fix.lines().enumerate() {
                let lead = if i == 0 { "fix: " } else { "     " };
                let _ = writeln!(out, "{indent}{lead}{line}");
            }
        }
    }
    out.push_str(&summary(findings));
    out.push('\n');
    out
}

/// One line that says whether `serve` can run here.
pub fn summary(findings: &[Finding]) -> String {
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    match (fails, warns) {
        (0, 0) => format!("all {} checks passed", findings.len()),
        (0, w) => format!(
            "{w} warning(s): `shardlog serve` will run, the fixes above make it faster or safer"
        ),
        (f, w) => format!(
            "{f} failure(s), {w} warning(s): `shardlog serve` would not work here until the FAIL lines are fixed"
        ),
    }
}

/// 1 when any check failed, 0 otherwise (warnings do not stop `serve`).
pub fn exit_code(findings: &[Finding]) -> i32 {
    if findings.iter().any(|f| f.status == Status::Fail) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_fixes_indent() {
        let findings = vec![
            Finding::ok("io_uring", "works"),
            Finding::fail(
                "memlock",
                "64 KiB",
                "ulimit -l unlimited\nor LimitMEMLOCK=infinity",
            ),
            Finding::warn(
                "cpu governor",
                "powersave",
                "cpupower frequency-set -g performance",
            ),
        ];
        let text = render(&findings);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ok    io_uring      works");
        assert_eq!(lines[1], "FAIL  memlock       64 KiB");
        assert_eq!(lines[2], "                    fix: ulimit -l unlimited");
        assert_eq!(
            lines[3],
            "                         or LimitMEMLOCK=infinity"
        );
        assert_eq!(lines[4], "warn  cpu governor  powersave");
        // The detail column starts at the same offset on every check line.
        let col = |l: &str| l.find("works").or(l.find("64 KiB")).or(l.find("powersave"));
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[4]));
        assert!(lines[5].ends_with("fix: cpupower frequency-set -g performance"));
        assert!(lines[6].contains("1 failure(s), 1 warning(s)"), "{text}");
    }

    #[test]
    fn exit_code_follows_failures_only() {
        let mut findings = vec![Finding::ok("a", "x"), Finding::warn("b", "y", "z")];
        assert_eq!(exit_code(&findings), 0);
        assert!(summary(&findings).contains("will run"));
        findings.push(Finding::skip("c", "not exposed"));
        assert_eq!(exit_code(&findings), 0);
        findings.push(Finding::fail("d", "broken", "fix it"));
        assert_eq!(exit_code(&findings), 1);
        assert_eq!(summary(&[Finding::ok("a", "x")]), "all 1 checks passed");
    }
}
