//! Binary operators: their precedence, the `bool` and vector-matching modifiers, Loki's
//! checks on their operands (`mustNewBinOpExpr`) and the folding of two literals into one.

use super::*;

/// The precedence of a binary operator (higher binds tighter).
pub(super) fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And | BinOp::Unless => 2,
        BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le => 3,
        BinOp::Add | BinOp::Sub => 4,
        BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
        BinOp::Pow => 6,
    }
}

/// The binary operator a token stands for, if any.
pub(super) fn binary_op(tok: &Tok) -> Option<BinOp> {
    Some(match tok {
        Tok::Kw(Kw::Or) => BinOp::Or,
        Tok::Kw(Kw::And) => BinOp::And,
        Tok::Kw(Kw::Unless) => BinOp::Unless,
        Tok::Add => BinOp::Add,
        Tok::Sub => BinOp::Sub,
        Tok::Mul => BinOp::Mul,
        Tok::Div => BinOp::Div,
        Tok::Mod => BinOp::Mod,
        Tok::Pow => BinOp::Pow,
        Tok::CmpEq => BinOp::Eq,
        Tok::Neq => BinOp::Ne,
        Tok::Gt => BinOp::Gt,
        Tok::Gte => BinOp::Ge,
        Tok::Lt => BinOp::Lt,
        Tok::Lte => BinOp::Le,
        _ => return None,
    })
}

/// Loki's folding of an operation between two literals (`MergeBinOp` on two scalars): `bool`
/// does not matter, a comparison gives 0 or 1, division and modulo by zero give NaN.
fn fold_literals(op: BinOp, l: f64, r: f64) -> f64 {
    let truth = |b: bool| if b { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => l + r,
        BinOp::Sub => l - r,
        BinOp::Mul => l * r,
        BinOp::Div if r == 0.0 => f64::NAN,
        BinOp::Div => l / r,
        BinOp::Mod if r == 0.0 => f64::NAN,
        BinOp::Mod => l % r,
        BinOp::Pow => l.powf(r),
        BinOp::Eq => truth(l == r),
        BinOp::Ne => truth(l != r),
        BinOp::Gt => truth(l > r),
        BinOp::Ge => truth(l >= r),
        BinOp::Lt => truth(l < r),
        BinOp::Le => truth(l <= r),
        // Refused before folding: set operators take no literal.
        BinOp::Or | BinOp::And | BinOp::Unless => f64::NAN,
    }
}

impl Parser<'_> {
    /// `bool`, then `on (...)`/`ignoring (...)` with `group_left`/`group_right`.
    pub(super) fn binary_modifiers(
        &mut self,
    ) -> Result<(bool, Option<VectorMatching>), ParseError> {
        let return_bool = *self.peek() == Tok::Kw(Kw::Bool);
        if return_bool {
            self.bump();
        }
        let on = match self.peek() {
            Tok::Kw(Kw::On) => true,
            Tok::Kw(Kw::Ignoring) => false,
            _ => return Ok((return_bool, None)),
        };
        self.bump();
        self.expect(&Tok::LParen, "(")?;
        let labels = self.labels_until_close()?;
        let group = match self.peek() {
            Tok::Kw(Kw::GroupLeft) => Some(true),
            Tok::Kw(Kw::GroupRight) => Some(false),
            _ => None,
        };
        let cardinality = match group {
            None => Cardinality::OneToOne,
            Some(left) => {
                self.bump();
                // A `(` after group_x is its label list, as in Loki's grammar (so the right
                // operand cannot start with a parenthesis here).
                let include = if *self.peek() == Tok::LParen {
                    self.bump();
                    self.labels_until_close()?
                } else {
                    Vec::new()
                };
                if left {
                    Cardinality::ManyToOne(include)
                } else {
                    Cardinality::OneToMany(include)
                }
            }
        };
        // `ignoring ()` one-to-one is the default matching.
        if !on && labels.is_empty() && cardinality == Cardinality::OneToOne {
            return Ok((return_bool, None));
        }
        Ok((
            return_bool,
            Some(VectorMatching {
                on,
                labels,
                cardinality,
            }),
        ))
    }
}

/// Loki's `mustNewBinOpExpr`: both sides must be metric expressions, set operators take no
/// literal, and two literals fold into one.
pub(super) fn binary(
    op: BinOp,
    return_bool: bool,
    matching: Option<VectorMatching>,
    lhs: Node,
    rhs: Node,
) -> Result<Node, ParseError> {
    let leg = |side: &str| {
        ParseError::Invalid(format!(
            "unexpected type for {side} leg of binary operation ({}): a log query returns \
             lines, not numbers; wrap it in a range aggregation such as count_over_time",
            op.as_str()
        ))
    };
    let Node::Sample(lhs, lhs_depth) = lhs else {
        return Err(leg("left"));
    };
    let Node::Sample(rhs, rhs_depth) = rhs else {
        return Err(leg("right"));
    };
    if op.is_set() {
        for (side, e) in [("left", &lhs), ("right", &rhs)] {
            if let SampleExpr::Literal(v) = e {
                return Err(ParseError::Invalid(format!(
                    "unexpected literal for {side} leg of logical/set binary operation ({}): {v:.6}",
                    op.as_str()
                )));
            }
        }
    }
    if let (SampleExpr::Literal(l), SampleExpr::Literal(r)) = (&lhs, &rhs) {
        return Ok(Node::Sample(
            SampleExpr::Literal(fold_literals(op, *l, *r)),
            1,
        ));
    }
    let depth = check_depth(lhs_depth.max(rhs_depth) + 1)?;
    Ok(Node::Sample(
        SampleExpr::Binary(BinaryExpr {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            return_bool,
            matching,
        }),
        depth,
    ))
}
