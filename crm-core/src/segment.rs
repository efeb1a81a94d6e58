//! The segment filter language: a small text syntax for [`Filter`]s, e.g.
//!
//! ```text
//! country in ("IT", "DE") and lifetime_value > 1000 and days_since_last_order < 90
//!     and custom.industry = "retail"
//! ```
//!
//! [`parse`] turns text into an [`Expr`] (serialisable, with the 1-based column of each condition);
//! [`Expr::to_filter`] turns that into a [`Filter`] using the field types of a [`FieldEnv`]. The
//! filter then goes through the facade's resolver and the backend compiler like any other filter:
//! values are bound parameters, never pasted into SQL. Grammar and semantics: `docs/segments.md`.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::money::{Currency, Money};
use crate::query::{Filter, Op};
use crate::value::{FieldType, Value};

/// A literal value as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Literal {
    /// `"text"` or `'text'`.
    Text(String),
    /// `12`, `-3.5`.
    Number(Decimal),
    /// `1000 EUR`.
    Money {
        /// The amount.
        amount: Decimal,
        /// The ISO 4217 code.
        currency: String,
    },
    /// `true` / `false`.
    Bool(bool),
    /// `2026-01-31`.
    Date(NaiveDate),
    /// `2026-01-31T10:00:00Z`.
    Timestamp(DateTime<Utc>),
    /// `null`.
    Null,
}

/// A parsed filter expression. `at` is the 1-based column where a condition starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Expr {
    /// All hold.
    And {
        /// The operands.
        all: Vec<Expr>,
    },
    /// Any holds.
    Or {
        /// The operands.
        any: Vec<Expr>,
    },
    /// Does not hold.
    Not {
        /// The operand.
        not: Box<Expr>,
    },
    /// `field <op> literal`.
    Compare {
        /// The field.
        field: String,
        /// The operator.
        cmp: Op,
        /// The value.
        value: Literal,
        /// Column of the condition.
        at: usize,
    },
    /// `field in (a, b)`.
    In {
        /// The field.
        field: String,
        /// The candidates.
        values: Vec<Literal>,
        /// Column of the condition.
        at: usize,
    },
    /// `field contains literal`.
    Contains {
        /// The field.
        field: String,
        /// The value.
        value: Literal,
        /// Column of the condition.
        at: usize,
    },
    /// `field starts with "prefix"`.
    StartsWith {
        /// The field.
        field: String,
        /// The prefix.
        value: String,
        /// Column of the condition.
        at: usize,
    },
    /// `field is null`.
    IsNull {
        /// The field.
        field: String,
        /// Column of the condition.
        at: usize,
    },
}

// ----------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Decimal),
    Date(NaiveDate),
    Ts(DateTime<Utc>),
    Op(Op),
    LParen,
    RParen,
    Comma,
    End,
}

fn syntax(col: usize, msg: impl fmt::Display) -> CrmError {
    CrmError::invalid_query(None, "syntax", format!("{msg} at column {col}"))
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        match c {
            '(' => {
                out.push((Tok::LParen, col));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, col));
                i += 1;
            }
            ',' => {
                out.push((Tok::Comma, col));
                i += 1;
            }
            '=' => {
                out.push((Tok::Op(Op::Eq), col));
                i += if next == Some('=') { 2 } else { 1 };
            }
            '!' if next == Some('=') => {
                out.push((Tok::Op(Op::Ne), col));
                i += 2;
            }
            '<' if next == Some('>') => {
                out.push((Tok::Op(Op::Ne), col));
                i += 2;
            }
            '<' | '>' => {
                let eq = next == Some('=');
                let op = match (c, eq) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    (_, true) => Op::Ge,
                    _ => Op::Gt,
                };
                out.push((Tok::Op(op), col));
                i += if eq { 2 } else { 1 };
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(syntax(col, "unterminated text")),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(e) => s.push(*e),
                                None => return Err(syntax(col, "unterminated text")),
                            }
                            i += 2;
                        }
                        Some(ch) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), col));
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|ch| {
                    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | ':' | '+')
                }) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let tok = if let Ok(dt) = DateTime::parse_from_rfc3339(&text) {
                    Tok::Ts(dt.with_timezone(&Utc))
                } else if let Ok(d) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                    Tok::Date(d)
                } else if let Ok(n) = text.parse::<Decimal>() {
                    Tok::Num(n)
                } else {
                    return Err(syntax(col, format!("`{text}` is not a number or date")));
                };
                out.push((tok, col));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '.'))
                {
                    i += 1;
                }
                out.push((Tok::Ident(chars[start..i].iter().collect()), col));
            }
            other => return Err(syntax(col, format!("unexpected `{other}`"))),
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

// ----------------------------------------------------------------- parser

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    /// How deep `not` and parentheses nest at the current token.
    depth: usize,
}

fn is_kw(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "contains", "starts", "with", "is", "null", "true", "false",
];

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map(|t| &t.0).unwrap_or(&Tok::End)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.1).unwrap_or(0)
    }
    fn bump(&mut self) -> (Tok, usize) {
        let t = self.toks.get(self.pos).cloned().unwrap_or((Tok::End, 0));
        self.pos += 1;
        t
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if is_kw(self.peek(), kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(syntax(self.col(), format!("expected `{kw}`")))
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut v = vec![self.and()?];
        while self.eat_kw("or") {
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or { any: v }
        })
    }

    fn and(&mut self) -> Result<Expr> {
        let mut v = vec![self.unary()?];
        while self.eat_kw("and") {
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And { all: v }
        })
    }

    fn unary(&mut self) -> Result<Expr> {
        let nested = is_kw(self.peek(), "not") || *self.peek() == Tok::LParen;
        if !nested {
            return self.cond();
        }
        // Nesting is bounded before it recurses: no input can exhaust the stack.
        self.depth += 1;
        if self.depth > crate::query::MAX_FILTER_DEPTH {
            return Err(CrmError::invalid_query(
                None,
                "too_deep",
                format!(
                    "filters nest at most {} levels (at column {})",
                    crate::query::MAX_FILTER_DEPTH,
                    self.col()
                ),
            ));
        }
        let e = self.nested();
        self.depth -= 1;
        e
    }

    fn nested(&mut self) -> Result<Expr> {
        if self.eat_kw("not") {
            return Ok(Expr::Not {
                not: Box::new(self.unary()?),
            });
        }
        {
            self.bump();
            let e = self.or()?;
            if *self.peek() != Tok::RParen {
                return Err(syntax(self.col(), "expected `)`"));
            }
            self.bump();
            Ok(e)
        }
    }

    fn cond(&mut self) -> Result<Expr> {
        let (tok, at) = self.bump();
        let field = match tok {
            Tok::Ident(s) if !KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k)) => s,
            Tok::End => return Err(syntax(at, "expected a condition, found the end")),
            _ => return Err(syntax(at, "expected a field name")),
        };
        let with_field = |e: CrmError| CrmError {
            field: Some(field.clone()),
            ..e
        };
        if let Tok::Op(op) = *self.peek() {
            self.bump();
            let value = self.literal().map_err(with_field)?;
            return Ok(Expr::Compare {
                field,
                cmp: op,
                value,
                at,
            });
        }
        if self.eat_kw("in") {
            let values = self.list().map_err(with_field)?;
            return Ok(Expr::In { field, values, at });
        }
        if self.eat_kw("not") {
            self.expect_kw("in").map_err(with_field)?;
            let values = self.list().map_err(with_field)?;
            return Ok(Expr::Not {
                not: Box::new(Expr::In { field, values, at }),
            });
        }
        if self.eat_kw("contains") {
            let value = self.literal().map_err(with_field)?;
            return Ok(Expr::Contains { field, value, at });
        }
        if self.eat_kw("starts") {
            self.expect_kw("with").map_err(with_field)?;
            let col = self.col();
            return match self.bump().0 {
                Tok::Str(value) => Ok(Expr::StartsWith { field, value, at }),
                _ => Err(with_field(syntax(col, "`starts with` takes a text"))),
            };
        }
        if self.eat_kw("is") {
            let neg = self.eat_kw("not");
            self.expect_kw("null").map_err(with_field)?;
            let e = Expr::IsNull { field, at };
            return Ok(if neg {
                Expr::Not { not: Box::new(e) }
            } else {
                e
            });
        }
        Err(with_field(syntax(
            self.col(),
            "expected an operator (= != < <= > >= in contains starts with is)",
        )))
    }

    fn list(&mut self) -> Result<Vec<Literal>> {
        if *self.peek() != Tok::LParen {
            return Err(syntax(self.col(), "expected `(`"));
        }
        self.bump();
        let mut v = vec![self.literal()?];
        loop {
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                    v.push(self.literal()?);
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(v);
                }
                _ => return Err(syntax(self.col(), "expected `,` or `)`")),
            }
        }
    }

    fn literal(&mut self) -> Result<Literal> {
        let (tok, col) = self.bump();
        Ok(match tok {
            Tok::Str(s) => Literal::Text(s),
            Tok::Num(n) => match self.peek() {
                Tok::Ident(c)
                    if c.len() == 3
                        && c.chars().all(|ch| ch.is_ascii_uppercase())
                        && !KEYWORDS.iter().any(|k| c.eq_ignore_ascii_case(k)) =>
                {
                    let currency = c.clone();
                    let ccol = self.col();
                    currency
                        .parse::<Currency>()
                        .map_err(|_| syntax(ccol, format!("`{currency}` is not a currency")))?;
                    self.bump();
                    Literal::Money {
                        amount: n,
                        currency,
                    }
                }
                _ => Literal::Number(n),
            },
            Tok::Date(d) => Literal::Date(d),
            Tok::Ts(t) => Literal::Timestamp(t),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::End => return Err(syntax(col, "expected a value, found the end")),
            _ => return Err(syntax(col, "expected a value")),
        })
    }
}

/// Parses filter text. Errors are `InvalidQuery` with rule `syntax` and the 1-based column in the
/// message (`… at column 27`), naming the field when one was read.
pub fn parse(src: &str) -> Result<Expr> {
    if src.len() > crate::query::MAX_FILTER_TEXT {
        return Err(CrmError::invalid_query(
            None,
            "too_long",
            format!(
                "filter text is limited to {} bytes",
                crate::query::MAX_FILTER_TEXT
            ),
        ));
    }
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    if *p.peek() != Tok::End {
        return Err(syntax(p.col(), "expected `and`, `or` or the end"));
    }
    Ok(e)
}

// ----------------------------------------------------------------- display (round trip)

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(s) => {
                f.write_str("\"")?;
                for ch in s.chars() {
                    if ch == '"' || ch == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{ch}")?;
                }
                f.write_str("\"")
            }
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Money { amount, currency } => write!(f, "{amount} {currency}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Literal::Timestamp(t) => write!(f, "{}", t.to_rfc3339()),
            Literal::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Expr], sep: &str| -> fmt::Result {
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, " {sep} ")?;
                }
                match e {
                    Expr::And { .. } | Expr::Or { .. } => write!(f, "({e})")?,
                    _ => write!(f, "{e}")?,
                }
            }
            Ok(())
        };
        match self {
            Expr::And { all } => join(f, all, "and"),
            Expr::Or { any } => join(f, any, "or"),
            Expr::Not { not } => match &**not {
                Expr::And { .. } | Expr::Or { .. } => write!(f, "not ({not})"),
                _ => write!(f, "not {not}"),
            },
            Expr::Compare {
                field, cmp, value, ..
            } => write!(f, "{field} {} {value}", cmp.symbol()),
            Expr::In { field, values, .. } => {
                write!(f, "{field} in (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Expr::Contains { field, value, .. } => write!(f, "{field} contains {value}"),
            Expr::StartsWith { field, value, .. } => {
                write!(f, "{field} starts with {}", Literal::Text(value.clone()))
            }
            Expr::IsNull { field, .. } => write!(f, "{field} is null"),
        }
    }
}

// ----------------------------------------------------------------- to Filter

/// What converting an expression needs to know: field types, the clock, the default currency, and a
/// check of each resolved condition (the facade resolves it against the schema and access rules).
pub trait FieldEnv {
    /// The type of a field; unknown and hidden fields are errors naming the field.
    fn field_type(&self, field: &str) -> Result<FieldType>;
    /// The instant `days_since_*` counts from.
    fn now(&self) -> DateTime<Utc>;
    /// The currency of amounts written without one (`lifetime_value > 1000`).
    fn currency(&self) -> Option<Currency>;
    /// Checks one resolved condition (type mismatches, bad values); by default nothing.
    fn check(&self, _leaf: &Filter) -> Result<()> {
        Ok(())
    }
}

fn at_col(mut e: CrmError, field: &str, at: usize) -> CrmError {
    if e.field.is_none() {
        e.field = Some(field.to_owned());
    }
    if !e.message.contains(" at column ") {
        e.message = format!("{} at column {at}", e.message);
    }
    e
}

fn literal_value(lit: &Literal, ty: &FieldType, field: &str, env: &dyn FieldEnv) -> Result<Value> {
    let elem = match ty {
        FieldType::MultiChoice { .. } => &FieldType::Text,
        t => t,
    };
    Ok(match (lit, elem) {
        (Literal::Null, _) => Value::Null,
        (Literal::Number(n), FieldType::Money) => {
            let c = env.currency().ok_or_else(|| {
                CrmError::invalid_query(
                    Some(field),
                    "currency_needed",
                    format!("`{field}` is money: write the amount with its currency (`{n} EUR`)"),
                )
            })?;
            Value::Money(Money::new(*n, c))
        }
        (Literal::Number(n), FieldType::Int) => {
            if n.fract().is_zero() {
                Value::Int(i64::try_from(*n).map_err(|_| {
                    CrmError::invalid_query(Some(field), "type", "number out of range")
                })?)
            } else {
                return Err(CrmError::invalid_query(
                    Some(field),
                    "type",
                    format!("`{field}` takes a whole number"),
                ));
            }
        }
        (Literal::Number(n), _) => Value::Decimal(*n),
        (Literal::Money { amount, currency }, _) => {
            Value::Money(Money::new(*amount, Currency::parse_field(currency, field)?))
        }
        (Literal::Text(s), _) => Value::Text(s.clone()),
        (Literal::Bool(b), _) => Value::Bool(*b),
        (Literal::Date(d), FieldType::Timestamp) => {
            Value::Timestamp(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        }
        (Literal::Date(d), _) => Value::Date(*d),
        (Literal::Timestamp(t), _) => Value::Timestamp(*t),
    })
}

/// `days_since_<x> <op> n` as a comparison of the timestamp field `x` (or `x_at`) with the clock:
/// days are whole days, rounded down.
fn days_since(field: &str, op: Op, lit: &Literal, env: &dyn FieldEnv) -> Option<Result<Filter>> {
    let rest = field.strip_prefix("days_since_")?;
    let base = [rest.to_owned(), format!("{rest}_at")]
        .into_iter()
        .find(|b| matches!(env.field_type(b), Ok(FieldType::Timestamp)))?;
    let n = match lit {
        Literal::Number(n) if n.fract().is_zero() => i64::try_from(*n).ok(),
        _ => None,
    };
    let Some(n) = n else {
        return Some(Err(CrmError::invalid_query(
            Some(field),
            "type",
            format!("`{field}` takes a whole number of days"),
        )));
    };
    let now = env.now();
    // The instant `d` days before now: a count of days no calendar holds is refused, not a panic.
    let ts = |d: i64| -> Result<Value> {
        Duration::try_days(d)
            .and_then(|d| now.checked_sub_signed(d))
            .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
            .map(Value::Timestamp)
            .ok_or_else(|| {
                CrmError::invalid_query(
                    Some(field),
                    "out_of_range",
                    format!("`{field}` takes a number of days within years 1 to 9999"),
                )
            })
    };
    let next = n.saturating_add(1);
    let (t_n, t_next) = match (ts(n), ts(next)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
    };
    let b = base.as_str();
    // days = floor((now - t) / 1 day): days < n ⇔ t > now - n days, and so on.
    let eq = Filter::cmp(b, Op::Gt, t_next.clone()).and(Filter::cmp(b, Op::Le, t_n.clone()));
    Some(Ok(match op {
        Op::Lt => Filter::cmp(b, Op::Gt, t_n),
        Op::Le => Filter::cmp(b, Op::Gt, t_next),
        Op::Gt => Filter::cmp(b, Op::Le, t_next),
        Op::Ge => Filter::cmp(b, Op::Le, t_n),
        Op::Eq => eq,
        Op::Ne => Filter::Not { not: Box::new(eq) }.and(Filter::Not {
            not: Box::new(Filter::is_null(b)),
        }),
    }))
}

impl Expr {
    /// Converts to a [`Filter`], typing literals by their field (numbers against money fields are in
    /// `env.currency()`; dates against timestamps are midnight UTC). Errors carry the field and the
    /// condition's column.
    pub fn to_filter(&self, env: &dyn FieldEnv) -> Result<Filter> {
        let leaf = |field: &str, at: usize, f: Result<Filter>| -> Result<Filter> {
            let f = f.map_err(|e| at_col(e, field, at))?;
            env.check(&f).map_err(|e| at_col(e, field, at))?;
            Ok(f)
        };
        match self {
            Expr::And { all } => Ok(Filter::And {
                all: all
                    .iter()
                    .map(|e| e.to_filter(env))
                    .collect::<Result<_>>()?,
            }),
            Expr::Or { any } => Ok(Filter::Or {
                any: any
                    .iter()
                    .map(|e| e.to_filter(env))
                    .collect::<Result<_>>()?,
            }),
            Expr::Not { not } => Ok(Filter::Not {
                not: Box::new(not.to_filter(env)?),
            }),
            Expr::Compare {
                field,
                cmp,
                value,
                at,
            } => {
                if let Some(f) = days_since(field, *cmp, value, env) {
                    return leaf(field, *at, f);
                }
                let f = env.field_type(field).and_then(|ty| {
                    Ok(Filter::Compare {
                        field: field.clone(),
                        cmp: *cmp,
                        value: literal_value(value, &ty, field, env)?,
                    })
                });
                leaf(field, *at, f)
            }
            Expr::In { field, values, at } => {
                let f = env.field_type(field).and_then(|ty| {
                    Ok(Filter::In {
                        field: field.clone(),
                        values: values
                            .iter()
                            .map(|v| literal_value(v, &ty, field, env))
                            .collect::<Result<_>>()?,
                    })
                });
                leaf(field, *at, f)
            }
            Expr::Contains { field, value, at } => {
                let f = env.field_type(field).and_then(|ty| {
                    Ok(Filter::Contains {
                        field: field.clone(),
                        value: literal_value(value, &ty, field, env)?,
                    })
                });
                leaf(field, *at, f)
            }
            Expr::StartsWith { field, value, at } => leaf(
                field,
                *at,
                env.field_type(field).map(|_| Filter::StartsWith {
                    field: field.clone(),
                    value: value.clone(),
                }),
            ),
            Expr::IsNull { field, at } => {
                let base = field
                    .strip_prefix("days_since_")
                    .and_then(|rest| {
                        [rest.to_owned(), format!("{rest}_at")]
                            .into_iter()
                            .find(|b| matches!(env.field_type(b), Ok(FieldType::Timestamp)))
                    })
                    .unwrap_or_else(|| field.clone());
                leaf(
                    field,
                    *at,
                    env.field_type(&base).map(|_| Filter::is_null(&base)),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let e = parse("a = 1 or b = 2 and not c = 3").unwrap();
        let Expr::Or { any } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(any.len(), 2);
        assert!(matches!(&any[1], Expr::And { all } if all.len() == 2));
        assert_eq!(e.to_string(), "a = 1 or (b = 2 and not c = 3)");
    }

    #[test]
    fn errors_carry_columns() {
        let e = parse("country = ").unwrap_err();
        assert!(e.message.ends_with("at column 11"), "{e}");
        let e = parse("country ~ 1").unwrap_err();
        assert!(e.message.ends_with("at column 9"), "{e}");
    }
}
