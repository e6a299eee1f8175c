//! Which byte needles a log query's line filters require of a matching line, for skipping
//! part blocks by their bloom filters (the filters themselves and their probes are
//! `crate::chunk`'s, which takes bytes and knows nothing of LogQL).
//!
//! [`required_literals`] turns the line filters that every line must pass into a
//! [`BloomQuery`]: a conjunction of clauses, each a disjunction of needles.
//! - `|= "a" or "b"`: one clause {a, b}, if every operand is a literal of 4 bytes or more
//!   (one short operand or an `ip()` operand makes the whole filter unusable).
//! - `|~ "re"`: the literals every match must contain, found by walking the regex's syntax
//!   tree (concatenations join adjacent exact pieces; an alternation requires one of its
//!   branches' literals; a repetition of at least one requires its body's). Case-insensitive
//!   parts are classes, not literals, so they require nothing. With several operands, each
//!   contributes its most selective clause as alternatives.
//! - `|> "<_> error <_>"`: every literal piece of the pattern is required.
//! - `!=`, `!~`, `!>`: negative, they can never skip.

use regex_syntax::hir::{Hir, HirKind};

use crate::chunk::BloomQuery;
use crate::chunk::tokens::{CLAUSE_NEEDLES_MAX, GRAM_BYTES, QUERY_CLAUSES_MAX};
use crate::logql::{FilterOperand, LineFilter, LineFilterOp};

/// Regex nesting accepted by the literal extraction (the walk is recursive).
const REGEX_NEST_MAX: u32 = 64;

/// Strings of a finite set built from a regex (`(a|b)(c|d)` is 4): the product of a few
/// alternations grows fast, and each string becomes a needle of a clause.
const REGEX_EXACT_SET_MAX: usize = 16;

/// Bytes of an exact literal built from a regex (`a{1000}`): longer pieces are not built.
const REGEX_EXACT_BYTES_MAX: usize = 4096;

/// The needles that a chain of line filters requires of a matching line (see the module doc).
pub fn required_literals(filters: &[LineFilter]) -> BloomQuery {
    let mut query = BloomQuery::default();
    for f in filters {
        let literals = || {
            f.operands().iter().map(|o| match o {
                FilterOperand::Literal(s) => Some(s.as_str()),
                FilterOperand::Ip(_) => None,
            })
        };
        match f.op() {
            LineFilterOp::Contains => {
                let needles: Option<Vec<Vec<u8>>> = literals()
                    .map(|s| s.map(|s| s.as_bytes().to_vec()))
                    .collect();
                if let Some(needles) = needles {
                    query.push_clause(&needles);
                }
            }
            LineFilterOp::Regex => {
                let cnfs: Option<Vec<Cnf>> =
                    literals().map(|s| s.and_then(regex_requirements)).collect();
                match cnfs.as_deref() {
                    Some([single]) => {
                        for clause in single {
                            query.push_clause(clause);
                        }
                    }
                    Some(many) => {
                        let best: Option<Vec<Vec<u8>>> = many
                            .iter()
                            .map(|cnf| best_clause(cnf).cloned())
                            .collect::<Option<Vec<_>>>()
                            .map(|clauses| clauses.concat());
                        if let Some(needles) = best {
                            query.push_clause(&dedup(needles));
                        }
                    }
                    None => {}
                }
            }
            LineFilterOp::Pattern => {
                let pieces: Option<Vec<Vec<Vec<u8>>>> =
                    literals().map(|s| s.map(pattern_literals)).collect();
                match pieces.as_deref() {
                    // One pattern: each of its literal pieces is required.
                    Some([single]) => {
                        for piece in single {
                            query.push_clause(std::slice::from_ref(piece));
                        }
                    }
                    // Alternatives: each contributes its longest piece.
                    Some(many) => {
                        let best: Option<Vec<Vec<u8>>> = many
                            .iter()
                            .map(|p| p.iter().max_by_key(|n| n.len()).cloned())
                            .collect();
                        if let Some(needles) = best {
                            query.push_clause(&dedup(needles));
                        }
                    }
                    None => {}
                }
            }
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern => {}
        }
    }
    query.finish(QUERY_CLAUSES_MAX);
    query
}

/// The literal pieces of a line-filter pattern (`<_> error <_>` gives `" error "`).
fn pattern_literals(pattern: &str) -> Vec<Vec<u8>> {
    crate::logql::pattern::pattern_nodes(pattern)
        .into_iter()
        .filter_map(|n| match n {
            crate::logql::pattern::PatternNode::Literal(bytes) => Some(bytes),
            crate::logql::pattern::PatternNode::Capture(_) => None,
        })
        .collect()
}

/// Conjunction of clauses, each a disjunction of literals. Every literal is at least as long
/// as the caller asked ([`GRAM_BYTES`] for bloom probes): clauses with a shorter one are
/// dropped as they are built (dropping a clause of a conjunction keeps it a necessary
/// condition).
pub(crate) type Cnf = Vec<Vec<Vec<u8>>>;

fn regex_requirements(pattern: &str) -> Option<Cnf> {
    regex_requirements_of_len(pattern, GRAM_BYTES)
}

/// The literals, each at least `min_len` bytes long, that every match of `pattern` contains
/// (a conjunction of disjunctions); `None` when the regex requires none or does not parse.
pub(crate) fn regex_requirements_of_len(pattern: &str, min_len: usize) -> Option<Cnf> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .nest_limit(REGEX_NEST_MAX)
        .build()
        .parse(pattern)
        .ok()?;
    let cnf = required(&hir, min_len);
    (!cnf.is_empty()).then_some(cnf)
}

/// The clause whose shortest needle is longest, as the most selective.
fn best_clause(cnf: &Cnf) -> Option<&Vec<Vec<u8>>> {
    cnf.iter()
        .max_by_key(|c| c.iter().map(Vec::len).min().unwrap_or(0))
}

fn dedup(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v.dedup();
    v
}

fn usable(clause: &[Vec<u8>], min_len: usize) -> bool {
    !clause.is_empty()
        && clause.len() <= CLAUSE_NEEDLES_MAX
        && clause.iter().all(|n| n.len() >= min_len.max(1))
}

/// The finite set of strings `hir` matches, if it is small (at most [`REGEX_EXACT_SET_MAX`]
/// strings of at most [`REGEX_EXACT_BYTES_MAX`] bytes): `(error|fail)ed` is {errored, failed}.
fn exact_set(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let set = match hir.kind() {
        HirKind::Empty => vec![Vec::new()],
        HirKind::Literal(l) => vec![l.0.to_vec()],
        HirKind::Capture(c) => exact_set(&c.sub)?,
        HirKind::Concat(subs) => {
            let mut acc = vec![Vec::new()];
            for s in subs {
                acc = cross(&acc, &exact_set(s)?)?;
            }
            acc
        }
        HirKind::Alternation(branches) => {
            let mut acc = Vec::new();
            for b in branches {
                acc.extend(exact_set(b)?);
                if acc.len() > REGEX_EXACT_SET_MAX {
                    return None;
                }
            }
            dedup(acc)
        }
        HirKind::Repetition(r) if r.max == Some(r.min) => {
            let one = exact_set(&r.sub)?;
            if one.iter().all(Vec::is_empty) {
                return Some(one);
            }
            // Every round adds at least a byte to some string, so the byte bound ends this
            // loop long before a huge count would.
            let mut acc = vec![Vec::new()];
            for _ in 0..r.min {
                acc = cross(&acc, &one)?;
            }
            acc
        }
        _ => return None,
    };
    Some(set)
}

/// Every string of `a` followed by every string of `b`, within the exact-set bounds.
fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len() * b.len() > REGEX_EXACT_SET_MAX {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            if x.len() + y.len() > REGEX_EXACT_BYTES_MAX {
                return None;
            }
            out.push([x.as_slice(), y.as_slice()].concat());
        }
    }
    Some(dedup(out))
}

/// A clause of these needles if all can be probed, else nothing.
fn clause_of(needles: Vec<Vec<u8>>, min_len: usize) -> Cnf {
    if usable(&needles, min_len) {
        vec![needles]
    } else {
        Cnf::new()
    }
}

/// The literals every match of `hir` contains.
fn required(hir: &Hir, min_len: usize) -> Cnf {
    if let Some(set) = exact_set(hir) {
        return clause_of(set, min_len);
    }
    match hir.kind() {
        HirKind::Capture(c) => required(&c.sub, min_len),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub, min_len),
        HirKind::Concat(subs) => {
            // `run` is the set of strings that the current stretch of exact pieces spells.
            let mut cnf = Cnf::new();
            let mut run = vec![Vec::new()];
            for s in subs {
                match exact_set(s) {
                    Some(set) => match cross(&run, &set) {
                        Some(longer) => run = longer,
                        None => cnf.extend(clause_of(std::mem::replace(&mut run, set), min_len)),
                    },
                    None => {
                        let exact = std::mem::replace(&mut run, vec![Vec::new()]);
                        cnf.extend(clause_of(exact, min_len));
                        cnf.extend(required(s, min_len));
                    }
                }
            }
            cnf.extend(clause_of(run, min_len));
            cnf
        }
        HirKind::Alternation(branches) => {
            let mut needles = Vec::new();
            for b in branches {
                match best_clause(&required(b, min_len)) {
                    Some(c) => needles.extend(c.iter().cloned()),
                    None => return Cnf::new(),
                }
            }
            clause_of(dedup(needles), min_len)
        }
        _ => Cnf::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> FilterOperand {
        FilterOperand::Literal(s.into())
    }

    fn clauses(filters: &[LineFilter]) -> Vec<Vec<String>> {
        required_literals(filters)
            .clauses()
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect()
            })
            .collect()
    }

    fn re(s: &str) -> Vec<Vec<String>> {
        clauses(&[LineFilter::new(LineFilterOp::Regex, vec![lit(s)]).unwrap()])
    }

    #[test]
    fn contains_filters() {
        let f = |op, ops: Vec<FilterOperand>| LineFilter::new(op, ops).unwrap();
        let q = clauses(&[
            f(LineFilterOp::Contains, vec![lit("error")]),
            f(LineFilterOp::Contains, vec![lit("timeout"), lit("refused")]),
            f(LineFilterOp::NotContains, vec![lit("debug")]),
        ]);
        assert_eq!(q, vec![vec!["timeout", "refused"], vec!["error"]]);
        // One short alternative makes the whole filter unusable.
        assert!(clauses(&[f(LineFilterOp::Contains, vec![lit("error"), lit("ok")])]).is_empty());
        assert!(clauses(&[f(LineFilterOp::Contains, vec![lit("")])]).is_empty());
        assert!(
            clauses(&[f(
                LineFilterOp::Contains,
                vec![lit("error"), FilterOperand::Ip("10.0.0.0/8".into())]
            )])
            .is_empty()
        );
        assert_eq!(
            clauses(&[f(
                LineFilterOp::Pattern,
                vec![lit("<_> error <_> took <_>")]
            )]),
            vec![vec![" error ".to_string()], vec![" took ".to_string()]]
        );
        assert_eq!(
            clauses(&[f(
                LineFilterOp::Pattern,
                vec![lit("<_> error <_>"), lit("<_> failure <_>")]
            )]),
            vec![vec![" error ".to_string(), " failure ".to_string()]]
        );
    }

    #[test]
    fn regex_literals() {
        assert_eq!(re("plain text"), vec![vec!["plain text"]]);
        assert_eq!(re("error.*timeout"), vec![vec!["timeout"], vec!["error"]]);
        assert_eq!(re("(error|fail)ed"), vec![vec!["errored", "failed"]]);
        assert_eq!(re("user=\\w+ failed"), vec![vec![" failed"], vec!["user="]]);
        assert_eq!(re("(?:abcd)+x"), vec![vec!["abcd"]]);
        assert_eq!(
            re("(error|fail)ed (okay|bad)"),
            vec![vec![
                "errored bad",
                "errored okay",
                "failed bad",
                "failed okay"
            ]]
        );
        assert_eq!(re("x{0}(?:){9999999}abcd"), vec![vec!["abcd"]]);
        assert_eq!(re("a{5}"), vec![vec!["aaaaa"]]);
        // Nothing is required of these.
        assert!(re("(?i)error").is_empty());
        assert!(re("error|ok").is_empty());
        assert!(re("(error)?x").is_empty());
        assert!(re("\\d+").is_empty());
        // Two regex operands: each contributes its best clause as an alternative.
        let two = clauses(&[LineFilter::new(
            LineFilterOp::Regex,
            vec![lit("foo.*barbaz"), lit("quux\\d")],
        )
        .unwrap()]);
        assert_eq!(two, vec![vec!["barbaz", "quux"]]);
        let two =
            clauses(&[
                LineFilter::new(LineFilterOp::Regex, vec![lit("foo.*barbaz"), lit("\\d")]).unwrap(),
            ]);
        assert!(two.is_empty());
    }

    /// A regex's required literals occur in every line it matches.
    #[test]
    fn regex_literals_are_required_of_matches() {
        let cases = [
            ("(error|fail)ed at \\d+", "job failed at 42"),
            ("conn(ection)? (refused|reset)", "conn reset by peer"),
            ("a(bcd)+e", "xabcdbcde"),
            ("(?s)start.*end", "start\nend"),
        ];
        for (pattern, line) in cases {
            let regex = regex::Regex::new(pattern).unwrap();
            assert!(regex.is_match(line), "{pattern} on {line}");
            for clause in re(pattern) {
                assert!(
                    clause.iter().any(|n| line.contains(n.as_str())),
                    "{pattern}: none of {clause:?} in {line:?}"
                );
            }
        }
    }
}
