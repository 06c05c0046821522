//! The SOQL subset clients of the simulator use: field lists (with parent relationship
//! fields such as `Account.Name`), `COUNT()`, WHERE with comparisons, IN, LIKE, AND / OR / NOT
//! and parentheses, ORDER BY, LIMIT and OFFSET, and date / datetime literals.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// A parse or validation failure, with Salesforce's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

fn malformed(message: impl Into<String>) -> SoqlError {
    SoqlError {
        code: "MALFORMED_QUERY",
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// A relative date literal (`TODAY`, `LAST_N_DAYS:7`…): the UTC days from `.0` up to,
    /// not including, `.1`.
    Range(DateTime<Utc>, DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A field reference: one name, or a relationship name and a field of the parent.
pub(crate) type Path = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        path: Path,
        op: CmpOp,
        value: Literal,
    },
    In {
        path: Path,
        values: Vec<Literal>,
        negated: bool,
    },
    /// An `IN` list of text literals as [`prepare`] leaves it: the literals in lower case.
    InText {
        path: Path,
        lowered: HashSet<String>,
        negated: bool,
    },
    Like {
        path: Path,
        pattern: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderItem {
    pub path: Path,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub fields: Vec<Path>,
    pub count_only: bool,
    pub object: String,
    pub filter: Option<Expr>,
    pub order: Vec<OrderItem>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    /// Numbers, dates and datetimes, classified when used.
    Lit(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, SoqlError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push(Token::LParen);
            i += 1;
        } else if c == ')' {
            tokens.push(Token::RParen);
            i += 1;
        } else if c == ',' {
            tokens.push(Token::Comma);
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(malformed("unterminated string literal")),
                    Some('\\') => {
                        let escaped = chars
                            .get(i + 1)
                            .ok_or_else(|| malformed("dangling escape"))?;
                        s.push(match escaped {
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            other => *other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        s.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(s));
        } else if c == '!' || c == '<' || c == '>' || c == '=' {
            let next = chars.get(i + 1).copied();
            let (op, len) = match (c, next) {
                ('!', Some('=')) => ("!=", 2),
                ('<', Some('>')) => ("!=", 2),
                ('<', Some('=')) => ("<=", 2),
                ('>', Some('=')) => (">=", 2),
                ('<', _) => ("<", 1),
                ('>', _) => (">", 1),
                ('=', _) => ("=", 1),
                _ => return Err(malformed(format!("unexpected token: '{c}'"))),
            };
            tokens.push(Token::Op(op));
            i += len;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | ':' | '.' | '+'))
            {
                i += 1;
            }
            tokens.push(Token::Lit(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | ':'))
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            return Err(malformed(format!("unexpected token: '{c}'")));
        }
    }
    Ok(tokens)
}

/// Parses Salesforce datetime text: `2024-05-01T10:00:00Z`, `…00.000+0000`, `…+02:00`.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = stored_datetime(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// The form this org stores and returns, `2024-05-01T10:00:00.000+0000`, read without chrono's
/// general parser: a change query compares it for every record it scans, which made the parse
/// the larger part of the simulator's CPU. Anything else is `None`, for the general parser.
pub(crate) fn stored_datetime(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 28 || &b[23..] != b"+0000" {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let marks = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if marks.iter().any(|&(at, mark)| b[at] != mark) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_milli_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 23)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// Formats an instant as Salesforce returns it: `2024-05-01T10:00:00.000+0000`.
pub(crate) fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn literal_of(token: &str) -> Result<Literal, SoqlError> {
    if token.len() == 10 {
        if let Ok(d) = NaiveDate::parse_from_str(token, "%Y-%m-%d") {
            return Ok(Literal::Date(d));
        }
    }
    if token.contains('T') {
        return parse_datetime(token)
            .map(Literal::DateTime)
            .ok_or_else(|| malformed(format!("invalid date/time literal: {token}")));
    }
    token
        .parse::<f64>()
        .map(Literal::Num)
        .map_err(|_| malformed(format!("unexpected token: '{token}'")))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    now: DateTime<Utc>,
}

/// The day range a relative date literal names, in UTC (the org's time zone here).
fn date_literal(word: &str, now: DateTime<Utc>) -> Option<Literal> {
    let today = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let day = chrono::Duration::days(1);
    let (name, n) = match word.split_once(':') {
        Some((name, n)) => (
            name,
            Some(
                n.parse::<i64>()
                    .ok()
                    .filter(|n| (0..=100_000).contains(n))?,
            ),
        ),
        None => (word, None),
    };
    let (start, end) = match (name.to_ascii_uppercase().as_str(), n) {
        ("YESTERDAY", None) => (today - day, today),
        ("TODAY", None) => (today, today + day),
        ("TOMORROW", None) => (today + day, today + day * 2),
        ("LAST_N_DAYS", Some(n)) => (today - day * n as i32, today + day),
        ("NEXT_N_DAYS", Some(n)) => (today, today + day * (n as i32 + 1)),
        _ => return None,
    };
    Some(Literal::Range(start, end))
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.peek_keyword(keyword) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SoqlError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(malformed(format!(
                "expecting '{keyword}', found {}",
                self.describe_next()
            )))
        }
    }

    fn describe_next(&self) -> String {
        match self.peek() {
            None => "end of query".into(),
            Some(Token::Word(w) | Token::Lit(w)) => format!("'{w}'"),
            Some(Token::Str(s)) => format!("'{s}'"),
            Some(Token::Op(o)) => format!("'{o}'"),
            Some(Token::LParen) => "'('".into(),
            Some(Token::RParen) => "')'".into(),
            Some(Token::Comma) => "','".into(),
        }
    }

    fn path(&mut self) -> Result<Path, SoqlError> {
        match self.next() {
            Some(Token::Word(w)) => {
                let parts: Vec<String> = w.split('.').map(str::to_owned).collect();
                if parts.iter().any(String::is_empty) || parts.len() > 2 {
                    return Err(malformed(format!("unsupported field reference: {w}")));
                }
                Ok(parts)
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(malformed(format!(
                    "expecting a field name, found {}",
                    self.describe_next()
                )))
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Lit(l)) => literal_of(&l),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Some(Token::Word(w)) => date_literal(&w, self.now)
                .ok_or_else(|| malformed(format!("unexpected token: '{w}'"))),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(malformed(format!(
                    "expecting a literal value, found {}",
                    self.describe_next()
                )))
            }
        }
    }

    fn or_expr(&mut self) -> Result<Expr, SoqlError> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("OR") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, SoqlError> {
        let mut left = self.unary()?;
        while self.eat_keyword("AND") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, SoqlError> {
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            let inner = self.or_expr()?;
            if self.next() != Some(Token::RParen) {
                return Err(malformed("expecting ')'"));
            }
            return Ok(inner);
        }
        let path = self.path()?;
        if self.eat_keyword("LIKE") {
            return match self.literal()? {
                Literal::Str(pattern) => Ok(Expr::Like { path, pattern }),
                _ => Err(malformed("LIKE needs a string pattern")),
            };
        }
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("IN") {
            if self.next() != Some(Token::LParen) {
                return Err(malformed("expecting '(' after IN"));
            }
            let mut values = Vec::new();
            loop {
                if self.peek_keyword("SELECT") {
                    return Err(malformed(
                        "semi-join subqueries are not supported by this simulator",
                    ));
                }
                values.push(self.literal()?);
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::RParen) => break,
                    _ => return Err(malformed("expecting ',' or ')' in IN list")),
                }
            }
            return Ok(Expr::In {
                path,
                values,
                negated,
            });
        }
        if negated {
            return Err(malformed("expecting IN after NOT"));
        }
        let op = match self.next() {
            Some(Token::Op("=")) => CmpOp::Eq,
            Some(Token::Op("!=")) => CmpOp::Ne,
            Some(Token::Op("<")) => CmpOp::Lt,
            Some(Token::Op(">")) => CmpOp::Gt,
            Some(Token::Op("<=")) => CmpOp::Le,
            Some(Token::Op(">=")) => CmpOp::Ge,
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(malformed(format!(
                    "unexpected token: {}",
                    self.describe_next()
                )));
            }
        };
        let value = self.literal()?;
        Ok(Expr::Cmp { path, op, value })
    }

    fn count(&mut self) -> Result<usize, SoqlError> {
        match self.next() {
            Some(Token::Lit(l)) => l
                .parse()
                .map_err(|_| malformed(format!("invalid number: {l}"))),
            _ => Err(malformed("expecting a number")),
        }
    }
}

/// Parses one SOQL statement, relative dates taken against the current time.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Result<Query, SoqlError> {
    parse_at(text, Utc::now())
}

/// Parses with relative date literals taken against `now`.
pub(crate) fn parse_at(text: &str, now: DateTime<Utc>) -> Result<Query, SoqlError> {
    let mut p = Parser {
        now,
        tokens: tokenize(text)?,
        pos: 0,
    };
    p.expect_keyword("SELECT")?;
    let mut fields = Vec::new();
    let mut count_only = false;
    if p.peek_keyword("COUNT") && p.tokens.get(p.pos + 1) == Some(&Token::LParen) {
        p.pos += 2;
        if p.next() != Some(Token::RParen) {
            return Err(malformed("only COUNT() is supported"));
        }
        count_only = true;
    } else {
        loop {
            if p.peek() == Some(&Token::LParen) {
                return Err(malformed(
                    "child relationship subqueries are not supported by this simulator",
                ));
            }
            fields.push(p.path()?);
            if p.peek() == Some(&Token::Comma) {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    p.expect_keyword("FROM")?;
    let object = match p.next() {
        Some(Token::Word(w)) if !w.contains('.') => w,
        _ => return Err(malformed("expecting an object name after FROM")),
    };
    let filter = if p.eat_keyword("WHERE") {
        Some(p.or_expr()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if p.eat_keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let path = p.path()?;
            let descending = if p.eat_keyword("DESC") {
                true
            } else {
                p.eat_keyword("ASC");
                false
            };
            let mut nulls_last = descending;
            if p.eat_keyword("NULLS") {
                nulls_last = if p.eat_keyword("LAST") {
                    true
                } else {
                    p.expect_keyword("FIRST")?;
                    false
                };
            }
            order.push(OrderItem {
                path,
                descending,
                nulls_last,
            });
            if p.peek() == Some(&Token::Comma) {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    let limit = if p.eat_keyword("LIMIT") {
        Some(p.count()?)
    } else {
        None
    };
    let offset = if p.eat_keyword("OFFSET") {
        Some(p.count()?)
    } else {
        None
    };
    if p.peek().is_some() {
        return Err(malformed(format!(
            "unexpected token: {}",
            p.describe_next()
        )));
    }
    Ok(Query {
        fields,
        count_only,
        object,
        filter,
        order,
        limit,
        offset,
    })
}

/// Looks field values up for the evaluator: the record's own fields, and a parent's fields
/// through a relationship.
pub(crate) trait Lookup {
    /// Borrowed where the record holds the value: a query evaluates this for every record
    /// it scans, so a copy each time would cost more than the comparison.
    fn value(&self, path: &[String]) -> Cow<'_, Value>;
}

/// Orders two strings ignoring case, as SOQL compares text, without allocating lower-case
/// copies (this runs for every record a query scans).
pub(crate) fn cmp_ignoring_case(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()));
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

fn compare_to_literal(value: &Value, lit: &Literal) -> Option<Ordering> {
    match (value, lit) {
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), Literal::Num(b)) => a.as_f64()?.partial_cmp(b),
        (Value::String(a), Literal::Str(b)) => Some(cmp_ignoring_case(a, b)),
        (Value::String(a), Literal::DateTime(b)) => Some(parse_datetime(a)?.cmp(b)),
        (Value::String(a), Literal::Date(b)) => {
            let d = NaiveDate::parse_from_str(a, "%Y-%m-%d")
                .ok()
                .or_else(|| parse_datetime(a).map(|t| t.date_naive()))?;
            Some(d.cmp(b))
        }
        (Value::String(a), Literal::Num(b)) => a.parse::<f64>().ok()?.partial_cmp(b),
        _ => None,
    }
}

/// A date or datetime field value as an instant (dates at midnight UTC).
fn value_instant(value: &Value) -> Option<DateTime<Utc>> {
    let s = value.as_str()?;
    parse_datetime(s).or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
    })
}

fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    // Classic wildcard matching by dynamic programming over (text, pattern) prefixes.
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for pc in &p {
        let mut next = vec![false; t.len() + 1];
        if *pc == '%' {
            let mut seen = false;
            for j in 0..=t.len() {
                seen |= row[j];
                next[j] = seen;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = row[j - 1] && (*pc == '_' || *pc == t[j - 1]);
            }
        }
        row = next;
    }
    row[t.len()]
}

/// Whether a record matches a WHERE expression.
/// Readies a filter for testing many records: each `IN` list of text literals becomes a set,
/// so a record costs one look-up instead of a comparison per literal (a connector's IN lists
/// hold up to 200 ids or addresses, tested against every record of the object).
///
/// Of two conditions joined by AND, a cheap one (a set or a text or boolean equality, such as
/// the owner a connector asks for) is tested first: AND has no order to keep, and most records
/// fail it before the date comparisons, which parse the record's value, run.
pub(crate) fn prepare(expr: Expr) -> Expr {
    match expr {
        Expr::And(a, b) => {
            let (a, b) = (prepare(*a), prepare(*b));
            if is_cheap(&b) && !is_cheap(&a) {
                Expr::And(Box::new(b), Box::new(a))
            } else {
                Expr::And(Box::new(a), Box::new(b))
            }
        }
        Expr::Or(a, b) => Expr::Or(Box::new(prepare(*a)), Box::new(prepare(*b))),
        Expr::Not(a) => Expr::Not(Box::new(prepare(*a))),
        Expr::In {
            path,
            values,
            negated,
        } if values.iter().all(|v| matches!(v, Literal::Str(_))) => {
            let lowered = values
                .iter()
                .filter_map(|v| match v {
                    Literal::Str(s) => Some(s.to_lowercase()),
                    _ => None,
                })
                .collect();
            Expr::InText {
                path,
                lowered,
                negated,
            }
        }
        other => other,
    }
}

/// Whether testing `expr` on a record costs a look-up or two, nothing parsed.
fn is_cheap(expr: &Expr) -> bool {
    match expr {
        Expr::InText { .. } => true,
        Expr::Cmp { op, value, .. } => {
            matches!(op, CmpOp::Eq | CmpOp::Ne)
                && matches!(value, Literal::Str(_) | Literal::Bool(_) | Literal::Null)
        }
        _ => false,
    }
}

pub(crate) fn matches(expr: &Expr, record: &dyn Lookup) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, record) && matches(b, record),
        Expr::Or(a, b) => matches(a, record) || matches(b, record),
        Expr::Not(a) => !matches(a, record),
        Expr::Cmp { path, op, value } => {
            let v = record.value(path);
            if *value == Literal::Null {
                return match op {
                    CmpOp::Eq => v.is_null(),
                    CmpOp::Ne => !v.is_null(),
                    _ => false,
                };
            }
            if v.is_null() {
                return *op == CmpOp::Ne;
            }
            if let Literal::Range(start, end) = value {
                let Some(t) = value_instant(&v) else {
                    return *op == CmpOp::Ne;
                };
                return match op {
                    CmpOp::Eq => t >= *start && t < *end,
                    CmpOp::Ne => !(t >= *start && t < *end),
                    CmpOp::Lt => t < *start,
                    CmpOp::Le => t < *end,
                    CmpOp::Gt => t >= *end,
                    CmpOp::Ge => t >= *start,
                };
            }
            match compare_to_literal(&v, value) {
                Some(ord) => match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Le => ord != Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                },
                None => *op == CmpOp::Ne,
            }
        }
        Expr::In {
            path,
            values,
            negated,
        } => {
            let v = record.value(path);
            let found = values.iter().any(|lit| match lit {
                Literal::Null => v.is_null(),
                Literal::Range(start, end) => {
                    value_instant(&v).is_some_and(|t| t >= *start && t < *end)
                }
                lit => compare_to_literal(&v, lit) == Some(Ordering::Equal),
            });
            found != *negated
        }
        Expr::InText {
            path,
            lowered,
            negated,
        } => {
            let found = match record.value(path).as_ref() {
                Value::String(s) if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) => {
                    lowered.contains(s.as_str())
                }
                Value::String(s) => lowered.contains(&s.to_lowercase()),
                _ => false,
            };
            found != *negated
        }
        Expr::Like { path, pattern } => match record.value(path).as_ref() {
            Value::String(s) => like(s, pattern),
            _ => false,
        },
    }
}

/// Orders two values as ORDER BY does (nulls handled by the caller).
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => cmp_ignoring_case(x, y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    struct Rec(Value);
    impl Lookup for Rec {
        fn value(&self, path: &[String]) -> Cow<'_, Value> {
            let mut v = &self.0;
            for p in path {
                v = v.get(p).unwrap_or(&Value::Null);
            }
            Cow::Borrowed(v)
        }
    }

    /// The stored form's own reader agrees with chrono's on every field, and leaves anything
    /// else (other offsets, no fraction, out-of-range fields) to it.
    #[test]
    fn the_stored_datetime_form_reads_as_chrono_reads_it() {
        for text in [
            "2024-05-01T10:00:00.000+0000",
            "1999-12-31T23:59:59.999+0000",
            "2024-02-29T00:00:00.001+0000",
        ] {
            let chrono = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(stored_datetime(text), Some(chrono), "{text}");
        }
        for other in [
            "2024-05-01T10:00:00.000+0200",
            "2024-05-01T10:00:00Z",
            "2023-02-29T00:00:00.000+0000",
            "2024-05-01T24:00:00.000+0000",
            "2024-05-01 10:00:00.000+0000",
            "2024-05-01T10:00:0x.000+0000",
        ] {
            assert_eq!(stored_datetime(other), None, "{other}");
        }
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00.000+0200"),
            parse_datetime("2024-05-01T10:00:00.000+0000")
        );
    }

    #[test]
    fn parses_the_connector_cursor_query() {
        let q = parse(
            "SELECT Id, LastName, Account.Name FROM Contact WHERE (SystemModstamp > 2024-05-01T10:00:00.000+0000 \
             OR (SystemModstamp = 2024-05-01T10:00:00Z AND Id > '003A')) AND OwnerId IN ('005A','005B') \
             ORDER BY SystemModstamp ASC, Id LIMIT 200",
        )
        .unwrap();
        assert_eq!(q.fields[2], vec!["Account".to_string(), "Name".to_string()]);
        assert_eq!(q.limit, Some(200));
        assert_eq!(q.order.len(), 2);
        let rec = Rec(
            json!({"SystemModstamp": "2024-05-01T10:00:00.000+0000", "Id": "003B", "OwnerId": "005b"}),
        );
        assert!(matches(q.filter.as_ref().unwrap(), &rec));
        let rec = Rec(
            json!({"SystemModstamp": "2024-05-01T10:00:00.000+0000", "Id": "003A", "OwnerId": "005A"}),
        );
        assert!(!matches(q.filter.as_ref().unwrap(), &rec));
    }

    #[test]
    fn like_not_and_null() {
        let q = parse("SELECT Id FROM Contact WHERE NOT Email LIKE '%@b.test' AND Phone = null")
            .unwrap();
        let rec = Rec(json!({"Email": "x@A.test"}));
        assert!(matches(q.filter.as_ref().unwrap(), &rec));
        let rec = Rec(json!({"Email": "x@B.TEST"}));
        assert!(!matches(q.filter.as_ref().unwrap(), &rec));
        assert!(like("abc", "a_c") && !like("abcd", "a_c") && like("", "%"));
    }

    #[test]
    fn a_prepared_in_list_answers_as_the_list_does() {
        let q = parse(
            "SELECT Id FROM Contact WHERE Email IN ('a@B.test', 'Ä@b.test') AND NOT Phone IN ('1', '2')",
        )
        .unwrap();
        let plain = q.filter.unwrap();
        let prepared = prepare(plain.clone());
        assert_ne!(prepared, plain);
        // The cheap test goes first.
        let q = parse("SELECT Id FROM Contact WHERE SystemModstamp > 2024-05-01T10:00:00Z AND OwnerId IN ('005A')")
            .unwrap();
        let Expr::And(first, _) = prepare(q.filter.unwrap()) else {
            panic!("not an AND")
        };
        assert!(matches!(*first, Expr::InText { .. }));
        for (email, phone) in [
            (json!("A@b.TEST"), json!("3")),
            (json!("ä@B.test"), json!("3")),
            (json!("a@b.test"), json!("1")),
            (json!("c@b.test"), json!("3")),
            (json!(7), json!(null)),
            (json!(null), json!("3")),
        ] {
            let rec = Rec(json!({"Email": email, "Phone": phone}));
            assert_eq!(matches(&prepared, &rec), matches(&plain, &rec), "{}", rec.0);
        }
    }

    #[test]
    fn relative_date_literals_are_day_ranges() {
        let now = parse_datetime("2024-05-10T15:00:00Z").unwrap();
        let q = parse_at(
            "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:2 AND Birthdate < TODAY",
            now,
        )
        .unwrap();
        let f = q.filter.as_ref().unwrap();
        let rec = |created: &str| Rec(json!({"CreatedDate": created, "Birthdate": "2024-05-09"}));
        assert!(matches(f, &rec("2024-05-08T00:00:00.000+0000")));
        assert!(matches(f, &rec("2024-05-10T23:59:59.000+0000")));
        assert!(!matches(f, &rec("2024-05-07T23:59:59.000+0000")));
        let q = parse_at("SELECT Id FROM Contact WHERE CreatedDate > TODAY", now).unwrap();
        assert!(matches(
            q.filter.as_ref().unwrap(),
            &rec("2024-05-11T00:00:00.000+0000")
        ));
        assert!(!matches(
            q.filter.as_ref().unwrap(),
            &rec("2024-05-10T20:00:00.000+0000")
        ));
        assert_eq!(
            parse_at("SELECT Id FROM Contact WHERE CreatedDate = SOMEDAY", now)
                .unwrap_err()
                .code,
            "MALFORMED_QUERY"
        );
    }

    #[test]
    fn malformed_queries_are_refused() {
        for bad in [
            "SELECT FROM Contact",
            "SELECT Id Contact",
            "SELECT Id FROM Contact WHERE",
            "SELECT Id FROM Contact LIMIT x",
            "SELECT Id FROM Contact WHERE Name = 'x",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, "MALFORMED_QUERY", "{bad}");
        }
    }
}
