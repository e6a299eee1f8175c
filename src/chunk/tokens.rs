//! What goes into a block's bloom filter, and which needles a query's line filters require.
//!
//! # Grams
//!
//! The filter of a block holds the distinct 4-grams of its lines: every run of 4 consecutive
//! bytes inside one line (grams never span two lines), case-sensitive, all bytes included
//! (spaces, punctuation, bytes of multi-byte characters), as a little-endian u32. A line
//! shorter than 4 bytes adds nothing. Why grams and not words: Loki's `|=` is a pure
//! substring test, so `|= "rror"` must find "error"; a whole-word filter would skip blocks
//! that match. Every substring of 4 bytes or more of a line is made of that line's grams, so
//! the filter has no false negatives for any needle.
//!
//! # Needles
//!
//! A needle of `L >= 4` bytes is tested by its grams at offsets `0..=L-4`, deduplicated; when
//! there are more than [`NEEDLE_GRAMS_MAX`], a spread subset of that many, first and last
//! included (the false-positive rate of 16 absent grams is already far below anything
//! measurable; more only costs probe time per block). A block is skipped when any tested gram
//! is absent. A needle shorter than 4 bytes cannot skip anything.
//!
//! # Filter chains
//!
//! [`required_literals`] turns a query's line filters (all of which a line must pass) into a
//! [`BloomQuery`]: a conjunction of clauses, each a disjunction of needles. A block may match
//! only if every clause has a needle that the filter may contain.
//! - `|= "a" or "b"`: one clause {a, b}, if every operand is a literal of 4 bytes or more
//!   (one short operand or an `ip()` operand makes the whole filter unusable).
//! - `|~ "re"`: the literals every match must contain, found by walking the regex's syntax
//!   tree (concatenations join adjacent exact pieces; an alternation requires one of its
//!   branches' literals; a repetition of at least one requires its body's). Case-insensitive
//!   parts are classes, not literals, so they require nothing. With several operands, each
//!   contributes its most selective clause as alternatives.
//! - `!=`, `!~`, `!>`: negative, they can never skip. `|>` patterns are not used yet.

use regex_syntax::hir::{Hir, HirKind};

use super::bloom::{BloomRef, gram_hash};
use crate::logql::{FilterOperand, LineFilter, LineFilterOp};

/// Bytes of a gram.
pub const GRAM_BYTES: usize = 4;

/// Grams probed per needle (see the module doc).
pub const NEEDLE_GRAMS_MAX: usize = 16;

/// Clauses a query keeps: each costs a probe per block, and a few selective ones already
/// decide.
pub const QUERY_CLAUSES_MAX: usize = 16;

/// Needles of one clause: a clause with more (a regex with a huge alternation) is dropped, as
/// it would cost more probe time than the scan it saves.
pub const CLAUSE_NEEDLES_MAX: usize = 64;

/// Bytes of an exact literal built from a regex (`a{1000}`): longer pieces are not built.
const REGEX_EXACT_BYTES_MAX: usize = 4096;

/// Strings of a finite set built from a regex (`(a|b)(c|d)` is 4): the product of a few
/// alternations grows fast, and each string becomes a needle of a clause.
const REGEX_EXACT_SET_MAX: usize = 16;

/// Regex nesting accepted by the literal extraction (the walk is recursive).
const REGEX_NEST_MAX: u32 = 64;

/// The gram of the first 4 bytes of `b`.
#[inline]
pub fn gram_of(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Appends every gram of `line` (with repeats) to `out`.
pub fn line_grams(line: &[u8], out: &mut Vec<u32>) {
    out.extend(line.windows(GRAM_BYTES).map(gram_of));
}

/// The grams a needle is tested by: distinct, at most [`NEEDLE_GRAMS_MAX`], spread over the
/// needle. Empty for needles shorter than 4 bytes.
pub fn needle_grams(needle: &[u8]) -> Vec<u32> {
    let mut all: Vec<u32> = Vec::new();
    for g in needle.windows(GRAM_BYTES).map(gram_of) {
        if !all.contains(&g) {
            all.push(g);
        }
    }
    if all.len() <= NEEDLE_GRAMS_MAX {
        return all;
    }
    let last = all.len() - 1;
    (0..NEEDLE_GRAMS_MAX)
        .map(|i| all[i * last / (NEEDLE_GRAMS_MAX - 1)])
        .collect()
}

/// One needle with its gram hashes computed once per query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeedleProbe {
    pub needle: Vec<u8>,
    hashes: Vec<u64>,
}

impl NeedleProbe {
    /// `None` for needles too short to test.
    pub fn new(needle: &[u8]) -> Option<NeedleProbe> {
        if needle.len() < GRAM_BYTES {
            return None;
        }
        let hashes = needle_grams(needle).into_iter().map(gram_hash).collect();
        Some(NeedleProbe {
            needle: needle.to_vec(),
            hashes,
        })
    }

    /// Whether the needle may occur in a line of the filter's block.
    #[inline]
    pub fn may_occur(&self, bloom: &BloomRef<'_>) -> bool {
        self.hashes.iter().all(|&h| bloom.may_contain_hash(h))
    }
}

/// The needles a query requires: all clauses, each any of its needles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BloomQuery {
    clauses: Vec<Vec<NeedleProbe>>,
}

impl BloomQuery {
    /// A query with no usable needle: every block may match.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The clauses, as needles, for plans and tests.
    pub fn clauses(&self) -> Vec<Vec<&[u8]>> {
        self.clauses
            .iter()
            .map(|c| c.iter().map(|p| p.needle.as_slice()).collect())
            .collect()
    }

    /// Whether a block with this filter may hold a matching line. A block without a filter
    /// (`None`) always may; `false` is certain.
    pub fn may_match(&self, bloom: Option<&BloomRef<'_>>) -> bool {
        let Some(bloom) = bloom else {
            return true;
        };
        self.clauses
            .iter()
            .all(|clause| clause.iter().any(|n| n.may_occur(bloom)))
    }

    fn push_clause(&mut self, needles: &[Vec<u8>]) {
        if needles.is_empty() || needles.len() > CLAUSE_NEEDLES_MAX {
            return;
        }
        let probes: Option<Vec<NeedleProbe>> =
            needles.iter().map(|n| NeedleProbe::new(n)).collect();
        if let Some(probes) = probes {
            self.clauses.push(probes);
        }
    }
}

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
            LineFilterOp::NotContains
            | LineFilterOp::NotRegex
            | LineFilterOp::Pattern
            | LineFilterOp::NotPattern => {}
        }
    }
    // Most selective first: a block is dropped at the first clause that fails.
    query
        .clauses
        .sort_by_key(|c| std::cmp::Reverse(c.iter().map(|n| n.needle.len()).min().unwrap_or(0)));
    query.clauses.truncate(QUERY_CLAUSES_MAX);
    query
}

/// Conjunction of clauses, each a disjunction of literals. Every literal is at least
/// [`GRAM_BYTES`] long: clauses with a shorter one are dropped as they are built (dropping a
/// clause of a conjunction keeps it a necessary condition).
type Cnf = Vec<Vec<Vec<u8>>>;

fn regex_requirements(pattern: &str) -> Option<Cnf> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .nest_limit(REGEX_NEST_MAX)
        .build()
        .parse(pattern)
        .ok()?;
    let cnf = required(&hir);
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

fn usable(clause: &[Vec<u8>]) -> bool {
    !clause.is_empty()
        && clause.len() <= CLAUSE_NEEDLES_MAX
        && clause.iter().all(|n| n.len() >= GRAM_BYTES)
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
fn clause_of(needles: Vec<Vec<u8>>) -> Cnf {
    if usable(&needles) {
        vec![needles]
    } else {
        Cnf::new()
    }
}

/// The literals every match of `hir` contains.
fn required(hir: &Hir) -> Cnf {
    if let Some(set) = exact_set(hir) {
        return clause_of(set);
    }
    match hir.kind() {
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub),
        HirKind::Concat(subs) => {
            // `run` is the set of strings that the current stretch of exact pieces spells.
            let mut cnf = Cnf::new();
            let mut run = vec![Vec::new()];
            for s in subs {
                match exact_set(s) {
                    Some(set) => match cross(&run, &set) {
                        Some(longer) => run = longer,
                        None => cnf.extend(clause_of(std::mem::replace(&mut run, set))),
                    },
                    None => {
                        cnf.extend(clause_of(std::mem::replace(&mut run, vec![Vec::new()])));
                        cnf.extend(required(s));
                    }
                }
            }
            cnf.extend(clause_of(run));
            cnf
        }
        HirKind::Alternation(branches) => {
            let mut needles = Vec::new();
            for b in branches {
                match best_clause(&required(b)) {
                    Some(c) => needles.extend(c.iter().cloned()),
                    None => return Cnf::new(),
                }
            }
            clause_of(dedup(needles))
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
    fn grams_of_lines_and_needles() {
        let mut g = Vec::new();
        line_grams(b"abcdef", &mut g);
        assert_eq!(
            g,
            vec![gram_of(b"abcd"), gram_of(b"bcde"), gram_of(b"cdef")]
        );
        g.clear();
        line_grams(b"abc", &mut g);
        assert!(g.is_empty());
        assert_eq!(needle_grams(b"aaaaaa"), vec![gram_of(b"aaaa")]);
        let long: Vec<u8> = (0u8..100).collect();
        let grams = needle_grams(&long);
        assert_eq!(grams.len(), NEEDLE_GRAMS_MAX);
        assert_eq!(grams[0], gram_of(&long[0..]));
        assert_eq!(grams[15], gram_of(&long[96..]));
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
        assert!(clauses(&[f(LineFilterOp::Pattern, vec![lit("<_> error <_>")])]).is_empty());
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
