//! A small Ruby expression language: what Fluentd configurations put in
//! `"#{…}"` and in record_transformer's `${…}` with `enable_ruby`.
//!
//! Supported: literals (nil, true, false, integers, floats, 'single' and
//! "double" strings with `#{}` interpolation, :symbols, `[arrays]`,
//! `/regexps/`), variables provided by the caller (`record`, `tag`, `time`,
//! `hostname`, `worker_id`, …), `ENV[...]`, `ENV.fetch(k, d)`,
//! `Socket.gethostname`, indexing, method calls on strings, numbers, arrays,
//! hashes and times (see [`call_method`]), `+ - * / %`, comparisons,
//! `! && || and or not`, `a ? b : c`, `x.nil?`. Anything else is rejected at
//! parse time with a message naming it, so a configuration never silently
//! evaluates something different from what Ruby would.
//!
//! Expressions are parsed once ([`Expr::parse`]) and evaluated many times
//! against a [`Scope`].

use crate::regex::RubyRegex;
use sluice_event::rubyfmt;
use sluice_event::strftime::{Strftime, Zone};
use sluice_event::{EventTime, Value};
use std::fmt;

/// A Ruby value.
#[derive(Debug, Clone, PartialEq)]
pub enum RValue {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Sym(String),
    Array(Vec<RValue>),
    Hash(Vec<(RValue, RValue)>),
    /// A `Time` in a zone.
    Time(EventTime, ZoneRef),
    Regex(RegexRef),
    /// The `ENV` object.
    Env,
    /// The `Socket` constant.
    Socket,
}

/// A zone carried by a time value (compared by identity only).
#[derive(Debug, Clone)]
pub struct ZoneRef(pub Zone);
impl PartialEq for ZoneRef {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A compiled regexp value.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexRef(pub RubyRegex);

impl RValue {
    /// Ruby truthiness: everything but nil and false.
    pub fn truthy(&self) -> bool {
        !matches!(self, RValue::Nil | RValue::Bool(false))
    }

    fn class(&self) -> &'static str {
        match self {
            RValue::Nil => "NilClass",
            RValue::Bool(true) => "TrueClass",
            RValue::Bool(false) => "FalseClass",
            RValue::Int(_) => "Integer",
            RValue::Float(_) => "Float",
            RValue::Str(_) => "String",
            RValue::Sym(_) => "Symbol",
            RValue::Array(_) => "Array",
            RValue::Hash(_) => "Hash",
            RValue::Time(..) => "Time",
            RValue::Regex(_) => "Regexp",
            RValue::Env => "Object",
            RValue::Socket => "Class",
        }
    }

    /// `to_s`.
    pub fn to_s(&self) -> String {
        match self {
            RValue::Str(s) | RValue::Sym(s) => s.clone(),
            RValue::Time(t, z) => time_to_s(*t, &z.0),
            RValue::Regex(r) => format!("(?-mix:{})", r.0.as_str()),
            RValue::Env => "ENV".into(),
            RValue::Socket => "Socket".into(),
            other => rubyfmt::to_s(&other.to_value()),
        }
    }

    /// `inspect`.
    pub fn inspect(&self) -> String {
        match self {
            RValue::Sym(s) => format!(":{s}"),
            RValue::Time(t, z) => time_to_s(*t, &z.0),
            _ => {
                let mut out = Vec::new();
                rubyfmt::write_inspect(&mut out, &self.to_value());
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }

    /// Convert to a msgpack value for a record.
    pub fn to_value(&self) -> Value {
        match self {
            RValue::Nil => Value::Nil,
            RValue::Bool(b) => Value::Boolean(*b),
            RValue::Int(i) => Value::from(*i),
            RValue::Float(f) => Value::F64(*f),
            RValue::Str(s) | RValue::Sym(s) => Value::from(s.as_str()),
            RValue::Array(a) => Value::Array(a.iter().map(RValue::to_value).collect()),
            RValue::Hash(h) => Value::Map(h.iter().map(|(k, v)| (k.to_value(), v.to_value())).collect()),
            // A Time in a record serialises as its to_s (Fluentd's Time#to_json).
            RValue::Time(..) | RValue::Regex(_) | RValue::Env | RValue::Socket => Value::from(self.to_s()),
        }
    }

    /// Convert a msgpack value.
    pub fn from_value(v: &Value) -> RValue {
        match v {
            Value::Nil => RValue::Nil,
            Value::Boolean(b) => RValue::Bool(*b),
            Value::Integer(i) => {
                i.as_i64().map(RValue::Int).unwrap_or_else(|| RValue::Float(i.as_f64().unwrap_or(0.0)))
            }
            Value::F32(f) => RValue::Float(f64::from(*f)),
            Value::F64(f) => RValue::Float(*f),
            Value::String(s) => RValue::Str(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            Value::Binary(b) => RValue::Str(String::from_utf8_lossy(b).into_owned()),
            Value::Array(a) => RValue::Array(a.iter().map(RValue::from_value).collect()),
            Value::Map(m) => {
                RValue::Hash(m.iter().map(|(k, v)| (RValue::from_value(k), RValue::from_value(v))).collect())
            }
            Value::Ext(..) => RValue::Nil,
        }
    }
}

/// Ruby's `Time#to_s`: `2026-11-22 10:00:00 +0000`.
pub fn time_to_s(t: EventTime, zone: &Zone) -> String {
    Strftime::new("%Y-%m-%d %H:%M:%S %z").format_string(&zone.tm(t), zone)
}

/// Where names come from during evaluation.
pub trait Scope {
    /// A local variable or argument-less method (`record`, `tag`, `hostname`, …).
    fn var(&self, name: &str) -> Option<RValue>;
    /// An environment variable.
    fn env(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
    /// The host name for `Socket.gethostname`.
    fn hostname(&self) -> String {
        self.var("hostname").map(|v| v.to_s()).unwrap_or_default()
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(RValue),
    /// A double-quoted string with interpolations.
    Interp(Vec<Expr>),
    Array(Vec<Expr>),
    Var(String),
    Const(String),
    Call {
        recv: Box<Expr>,
        method: String,
        args: Vec<Expr>,
    },
    Index {
        recv: Box<Expr>,
        args: Vec<Expr>,
    },
    Unary {
        op: &'static str,
        expr: Box<Expr>,
    },
    Binary {
        op: &'static str,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError(pub String);

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExprError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError(msg.into()))
}

// === tokenizer ===

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Const(String),
    Int(i64),
    Float(f64),
    /// Double-quoted: literal pieces and code pieces.
    DStr(Vec<(bool, String)>),
    SStr(String),
    Sym(String),
    Regex(String, String),
    Op(&'static str),
}

const OPS: [&str; 29] = [
    "::", "||", "&&", "==", "!=", "<=", ">=", "=~", "!~", "**", ".", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*",
    "/", "%", "<", ">", "!", "?", "|", "&",
];

fn lex(src: &str) -> Result<Vec<Tok>, ExprError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut toks: Vec<Tok> = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            // A comment to end of line.
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                i += 1;
            }
            let mut is_float = false;
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                is_float = true;
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                    i += 1;
                }
            }
            let text: String = src[start..i].chars().filter(|c| *c != '_').collect();
            toks.push(if is_float {
                Tok::Float(text.parse().map_err(|_| ExprError(format!("bad number {text}")))?)
            } else {
                Tok::Int(text.parse().map_err(|_| ExprError(format!("bad number {text}")))?)
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c == b'$' {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'?' || b[i] == b'!') && b.get(i + 1) != Some(&b'=') {
                // method names like nil? / empty? / include? (but not `a != b`)
                let prev_dot = matches!(toks.last(), Some(Tok::Op(".")));
                if prev_dot {
                    i += 1;
                }
            }
            let word = &src[start..i];
            if c == b'@' || c == b'$' {
                return err(format!("instance and global variables are not supported: {word}"));
            }
            toks.push(if word.as_bytes()[0].is_ascii_uppercase() {
                Tok::Const(word.into())
            } else {
                Tok::Ident(word.into())
            });
            continue;
        }
        if c == b'\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return err("unterminated string literal"),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if matches!(b.get(i + 1), Some(b'\'' | b'\\')) => {
                        s.push(b[i + 1] as char);
                        i += 2;
                    }
                    Some(_) => {
                        let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                        s.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            toks.push(Tok::SStr(s));
            continue;
        }
        if c == b'"' {
            let mut parts: Vec<(bool, String)> = Vec::new();
            let mut cur = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return err("unterminated string literal"),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let n = *b.get(i + 1).ok_or_else(|| ExprError("unterminated string literal".into()))?;
                        cur.push(match n {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            b'e' => '\u{1b}',
                            b'0' => '\0',
                            b's' => ' ',
                            other => other as char,
                        });
                        i += 2;
                    }
                    Some(b'#') if b.get(i + 1) == Some(&b'{') => {
                        let end = find_close(b, i + 2)?;
                        if !cur.is_empty() {
                            parts.push((false, std::mem::take(&mut cur)));
                        }
                        parts.push((true, src[i + 2..end].to_string()));
                        i = end + 1;
                    }
                    Some(_) => {
                        let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                        cur.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            if !cur.is_empty() || parts.is_empty() {
                parts.push((false, cur));
            }
            toks.push(Tok::DStr(parts));
            continue;
        }
        if c == b':' && b.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_') {
            let start = i + 1;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            toks.push(Tok::Sym(src[start..i].into()));
            continue;
        }
        if c == b'/' && operand_expected(toks.last()) {
            let mut pat = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return err("unterminated regexp literal"),
                    Some(b'/') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if b.get(i + 1) == Some(&b'/') => {
                        pat.push('/');
                        i += 2;
                    }
                    Some(b'\\') => {
                        pat.push('\\');
                        if let Some(ch) = src[i + 1..].chars().next() {
                            pat.push(ch);
                            i += 1 + ch.len_utf8();
                        } else {
                            i += 1;
                        }
                    }
                    Some(_) => {
                        let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                        pat.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            let fstart = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            toks.push(Tok::Regex(pat, src[fstart..i].into()));
            continue;
        }
        if let Some(op) = OPS.iter().find(|op| src[i..].starts_with(**op)) {
            toks.push(Tok::Op(op));
            i += op.len();
            continue;
        }
        if c == b':' {
            toks.push(Tok::Op(":"));
            i += 1;
            continue;
        }
        if c == b'=' {
            return err("assignment is not supported");
        }
        return err(format!("unexpected character {:?}", src[i..].chars().next().unwrap_or(' ')));
    }
    Ok(toks)
}

fn operand_expected(last: Option<&Tok>) -> bool {
    match last {
        None => true,
        Some(Tok::Op(op)) => !matches!(*op, ")" | "]" | "}"),
        Some(Tok::Ident(_)) => false,
        _ => false,
    }
}

/// Index of the `}` closing an interpolation that starts at `b[at]`.
fn find_close(b: &[u8], mut at: usize) -> Result<usize, ExprError> {
    let mut depth = 0;
    while at < b.len() {
        match b[at] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Ok(at),
            b'}' => depth -= 1,
            q @ (b'"' | b'\'') => {
                at += 1;
                while at < b.len() && b[at] != q {
                    if b[at] == b'\\' {
                        at += 1;
                    }
                    at += 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    err("unterminated #{ in string")
}

// === parser ===

struct P {
    toks: Vec<Tok>,
    pos: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(i)) if i == w)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &str) -> Result<(), ExprError> {
        if self.eat_op(op) { Ok(()) } else { err(format!("expected '{op}'{}", self.found())) }
    }
    fn found(&self) -> String {
        match self.peek() {
            None => " but the expression ended".into(),
            Some(t) => format!(" but found {}", tok_text(t)),
        }
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.not_expr()?;
        loop {
            if self.is_word("or") {
                self.pos += 1;
                lhs = Expr::Or(Box::new(lhs), Box::new(self.not_expr()?));
            } else if self.is_word("and") {
                self.pos += 1;
                lhs = Expr::And(Box::new(lhs), Box::new(self.not_expr()?));
            } else {
                return Ok(lhs);
            }
        }
    }

    fn not_expr(&mut self) -> Result<Expr, ExprError> {
        if self.is_word("not") {
            self.pos += 1;
            return Ok(Expr::Unary { op: "!", expr: Box::new(self.not_expr()?) });
        }
        self.ternary()
    }

    fn ternary(&mut self) -> Result<Expr, ExprError> {
        let c = self.or()?;
        if self.eat_op("?") {
            let a = self.ternary()?;
            self.expect_op(":")?;
            let b = self.ternary()?;
            return Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        Ok(c)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.and()?;
        while self.eat_op("||") {
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.eq()?;
        while self.eat_op("&&") {
            l = Expr::And(Box::new(l), Box::new(self.eq()?));
        }
        Ok(l)
    }

    fn eq(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.cmp()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o @ ("==" | "!=" | "=~" | "!~"))) => *o,
                _ => return Ok(l),
            };
            self.pos += 1;
            l = Expr::Binary { op, lhs: Box::new(l), rhs: Box::new(self.cmp()?) };
        }
    }

    fn cmp(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.add()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o @ ("<" | ">" | "<=" | ">="))) => *o,
                _ => return Ok(l),
            };
            self.pos += 1;
            l = Expr::Binary { op, lhs: Box::new(l), rhs: Box::new(self.add()?) };
        }
    }

    fn add(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.mul()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o @ ("+" | "-"))) => *o,
                _ => return Ok(l),
            };
            self.pos += 1;
            l = Expr::Binary { op, lhs: Box::new(l), rhs: Box::new(self.mul()?) };
        }
    }

    fn mul(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o @ ("*" | "/" | "%"))) => *o,
                _ => return Ok(l),
            };
            self.pos += 1;
            l = Expr::Binary { op, lhs: Box::new(l), rhs: Box::new(self.unary()?) };
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat_op("!") {
            return Ok(Expr::Unary { op: "!", expr: Box::new(self.unary()?) });
        }
        if self.eat_op("-") {
            return Ok(Expr::Unary { op: "-", expr: Box::new(self.unary()?) });
        }
        self.postfix()
    }

    fn args(&mut self, close: &str) -> Result<Vec<Expr>, ExprError> {
        let mut args = Vec::new();
        if self.eat_op(close) {
            return Ok(args);
        }
        loop {
            args.push(self.ternary()?);
            if self.eat_op(close) {
                return Ok(args);
            }
            self.expect_op(",")?;
        }
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.primary()?;
        loop {
            if self.eat_op(".") || self.eat_op("::") {
                let method = match self.peek() {
                    Some(Tok::Ident(m)) | Some(Tok::Const(m)) => m.clone(),
                    _ => return err(format!("expected a method name after '.'{}", self.found())),
                };
                self.pos += 1;
                let args = if self.eat_op("(") { self.args(")")? } else { Vec::new() };
                if self.is_op("{") {
                    return err(format!("blocks are not supported (in call to {method})"));
                }
                e = Expr::Call { recv: Box::new(e), method, args };
            } else if self.eat_op("[") {
                let args = self.args("]")?;
                e = Expr::Index { recv: Box::new(e), args };
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let Some(t) = self.peek().cloned() else {
            return err("expected a value but the expression ended");
        };
        self.pos += 1;
        Ok(match t {
            Tok::Int(i) => Expr::Lit(RValue::Int(i)),
            Tok::Float(f) => Expr::Lit(RValue::Float(f)),
            Tok::SStr(s) => Expr::Lit(RValue::Str(s)),
            Tok::Sym(s) => Expr::Lit(RValue::Sym(s)),
            Tok::Regex(p, f) => {
                let flags = crate::regex::RubyFlags {
                    ignore_case: f.contains('i'),
                    multiline: f.contains('m'),
                    extended: f.contains('x'),
                };
                Expr::Lit(RValue::Regex(RegexRef(RubyRegex::new(&p, flags).map_err(ExprError)?)))
            }
            Tok::DStr(parts) => {
                let mut out = Vec::new();
                for (code, text) in parts {
                    if code {
                        out.push(Expr::parse(&text)?);
                    } else {
                        out.push(Expr::Lit(RValue::Str(text)));
                    }
                }
                if out.len() == 1 && matches!(out[0], Expr::Lit(RValue::Str(_))) {
                    out.remove(0)
                } else {
                    Expr::Interp(out)
                }
            }
            Tok::Ident(w) => match w.as_str() {
                "nil" => Expr::Lit(RValue::Nil),
                "true" => Expr::Lit(RValue::Bool(true)),
                "false" => Expr::Lit(RValue::Bool(false)),
                _ => {
                    if self.is_op("(") {
                        return err(format!("calling functions is not supported: {w}(...)"));
                    }
                    Expr::Var(w)
                }
            },
            Tok::Const(c) => Expr::Const(c),
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect_op(")")?;
                e
            }
            Tok::Op("[") => Expr::Array(self.args("]")?),
            Tok::Op("{") => return err("hash literals are not supported"),
            other => return err(format!("unexpected {}", tok_text(&other))),
        })
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Const(s) => format!("'{s}'"),
        Tok::Int(i) => i.to_string(),
        Tok::Float(f) => f.to_string(),
        Tok::DStr(_) | Tok::SStr(_) => "a string".into(),
        Tok::Sym(s) => format!(":{s}"),
        Tok::Regex(p, _) => format!("/{p}/"),
        Tok::Op(o) => format!("'{o}'"),
    }
}

impl Expr {
    /// Parse Ruby source text.
    ///
    /// # Errors
    /// [`ExprError`] naming the unsupported construct.
    pub fn parse(src: &str) -> Result<Expr, ExprError> {
        let toks = lex(src)?;
        if toks.is_empty() {
            return Ok(Expr::Lit(RValue::Nil));
        }
        let mut p = P { toks, pos: 0 };
        let e = p.expr()?;
        if p.pos < p.toks.len() {
            return err(format!("unexpected {} after the expression", tok_text(&p.toks[p.pos])));
        }
        Ok(e)
    }

    /// Names of variables the expression reads.
    pub fn variables(&self, out: &mut Vec<String>) {
        match self {
            Expr::Var(v) => out.push(v.clone()),
            Expr::Lit(_) | Expr::Const(_) => {}
            Expr::Interp(v) | Expr::Array(v) => v.iter().for_each(|e| e.variables(out)),
            Expr::Call { recv, args, .. } | Expr::Index { recv, args } => {
                recv.variables(out);
                args.iter().for_each(|e| e.variables(out));
            }
            Expr::Unary { expr, .. } => expr.variables(out),
            Expr::Binary { lhs, rhs, .. } | Expr::And(lhs, rhs) | Expr::Or(lhs, rhs) => {
                lhs.variables(out);
                rhs.variables(out);
            }
            Expr::Cond(a, b, c) => {
                a.variables(out);
                b.variables(out);
                c.variables(out);
            }
        }
    }

    /// Evaluate against `scope`.
    ///
    /// # Errors
    /// Ruby's error for the operation (`undefined method 'x' for nil`, …).
    pub fn eval(&self, scope: &dyn Scope) -> Result<RValue, ExprError> {
        match self {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::Interp(parts) => {
                let mut s = String::new();
                for p in parts {
                    s.push_str(&p.eval(scope)?.to_s());
                }
                Ok(RValue::Str(s))
            }
            Expr::Array(items) => Ok(RValue::Array(items.iter().map(|e| e.eval(scope)).collect::<Result<_, _>>()?)),
            Expr::Var(name) => {
                scope.var(name).ok_or_else(|| ExprError(format!("undefined local variable or method '{name}'")))
            }
            Expr::Const(c) => match c.as_str() {
                "ENV" => Ok(RValue::Env),
                "Socket" => Ok(RValue::Socket),
                other => err(format!("uninitialized constant {other}")),
            },
            Expr::Call { recv, method, args } => {
                let r = recv.eval(scope)?;
                let a = args.iter().map(|e| e.eval(scope)).collect::<Result<Vec<_>, _>>()?;
                call_method(scope, r, method, &a)
            }
            Expr::Index { recv, args } => {
                let r = recv.eval(scope)?;
                let a = args.iter().map(|e| e.eval(scope)).collect::<Result<Vec<_>, _>>()?;
                call_method(scope, r, "[]", &a)
            }
            Expr::Unary { op, expr } => {
                let v = expr.eval(scope)?;
                match *op {
                    "!" => Ok(RValue::Bool(!v.truthy())),
                    _ => match v {
                        RValue::Int(i) => Ok(RValue::Int(-i)),
                        RValue::Float(f) => Ok(RValue::Float(-f)),
                        other => err(format!("undefined method '-@' for {}", other.inspect_short())),
                    },
                }
            }
            Expr::And(a, b) => {
                let l = a.eval(scope)?;
                if l.truthy() { b.eval(scope) } else { Ok(l) }
            }
            Expr::Or(a, b) => {
                let l = a.eval(scope)?;
                if l.truthy() { Ok(l) } else { b.eval(scope) }
            }
            Expr::Cond(c, a, b) => {
                if c.eval(scope)?.truthy() {
                    a.eval(scope)
                } else {
                    b.eval(scope)
                }
            }
            Expr::Binary { op, lhs, rhs } => {
                let l = lhs.eval(scope)?;
                let r = rhs.eval(scope)?;
                binary(op, l, r)
            }
        }
    }
}

impl RValue {
    fn inspect_short(&self) -> String {
        match self {
            RValue::Nil => "nil".into(),
            other => format!("an instance of {}", other.class()),
        }
    }
}

fn binary(op: &str, l: RValue, r: RValue) -> Result<RValue, ExprError> {
    use RValue::*;
    Ok(match (op, l, r) {
        ("==", a, b) => Bool(values_eq(&a, &b)),
        ("!=", a, b) => Bool(!values_eq(&a, &b)),
        ("=~", Str(s), Regex(re)) | ("=~", Regex(re), Str(s)) => {
            if re.0.is_match(&s) {
                Int(0)
            } else {
                Nil
            }
        }
        ("!~", Str(s), Regex(re)) => Bool(!re.0.is_match(&s)),
        ("+", Int(a), Int(b)) => Int(a.checked_add(b).ok_or_else(|| ExprError("integer overflow".into()))?),
        ("-", Int(a), Int(b)) => Int(a.checked_sub(b).ok_or_else(|| ExprError("integer overflow".into()))?),
        ("*", Int(a), Int(b)) => Int(a.checked_mul(b).ok_or_else(|| ExprError("integer overflow".into()))?),
        ("/", Int(_), Int(0)) | ("%", Int(_), Int(0)) => return err("divided by 0"),
        ("/", Int(a), Int(b)) => Int(a.div_euclid(b) - i64::from(a.rem_euclid(b) != 0 && b < 0)),
        ("%", Int(a), Int(b)) => Int(((a % b) + b) % b),
        (op @ ("+" | "-" | "*" | "/" | "%"), a @ (Int(_) | Float(_)), b @ (Int(_) | Float(_))) => {
            let (x, y) = (num(&a), num(&b));
            Float(match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                _ => x % y,
            })
        }
        ("+", Str(a), Str(b)) => Str(a + &b),
        ("+", Str(_), other) => {
            return err(format!("no implicit conversion of {} into String", other.class()));
        }
        ("*", Str(a), Int(n)) if n >= 0 => Str(a.repeat(n as usize)),
        ("+", Array(mut a), Array(b)) => {
            a.extend(b);
            Array(a)
        }
        (op @ ("<" | ">" | "<=" | ">="), a, b) => {
            let ord = match (&a, &b) {
                (Str(x), Str(y)) => x.partial_cmp(y),
                (Int(_) | Float(_), Int(_) | Float(_)) => num(&a).partial_cmp(&num(&b)),
                _ => None,
            };
            let Some(o) = ord else {
                return err(format!("comparison of {} with {} failed", a.class(), b.inspect()));
            };
            Bool(match op {
                "<" => o.is_lt(),
                ">" => o.is_gt(),
                "<=" => o.is_le(),
                _ => o.is_ge(),
            })
        }
        (op, a, _) => return err(format!("undefined method '{op}' for {}", a.inspect_short())),
    })
}

fn num(v: &RValue) -> f64 {
    match v {
        RValue::Int(i) => *i as f64,
        RValue::Float(f) => *f,
        _ => 0.0,
    }
}

fn values_eq(a: &RValue, b: &RValue) -> bool {
    match (a, b) {
        (RValue::Int(_) | RValue::Float(_), RValue::Int(_) | RValue::Float(_)) => num(a) == num(b),
        _ => a == b,
    }
}

fn arg_str<'a>(args: &'a [RValue], i: usize, method: &str) -> Result<&'a str, ExprError> {
    match args.get(i) {
        Some(RValue::Str(s)) | Some(RValue::Sym(s)) => Ok(s),
        Some(other) => err(format!("no implicit conversion of {} into String (in {method})", other.class())),
        None => err(format!("wrong number of arguments (given {}, expected {}) in {method}", args.len(), i + 1)),
    }
}

fn index_of(len: usize, i: i64) -> Option<usize> {
    let n = len as i64;
    let idx = if i < 0 { n + i } else { i };
    (0..n).contains(&idx).then_some(idx as usize)
}

fn hash_get<'a>(h: &'a [(RValue, RValue)], k: &RValue) -> Option<&'a RValue> {
    h.iter().find(|(hk, _)| values_eq(hk, k)).map(|(_, v)| v)
}

/// Ruby's `to_i` of a string: optional sign and leading digits, else 0.
pub fn str_to_i(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = body.chars().take_while(|c| c.is_ascii_digit() || *c == '_').filter(|c| *c != '_').collect();
    let v: i64 = digits.parse().unwrap_or(0);
    if neg { -v } else { v }
}

/// Ruby's `to_f` of a string: the longest numeric prefix, else 0.0.
pub fn str_to_f(s: &str) -> f64 {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut end = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        end = 1;
    }
    while end < b.len() && (b[end].is_ascii_digit() || b[end] == b'_') {
        end += 1;
    }
    if end < b.len() && b[end] == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if matches!(b.get(e), Some(b'-' | b'+')) {
            e += 1;
        }
        if b.get(e).is_some_and(u8::is_ascii_digit) {
            while e < b.len() && b[e].is_ascii_digit() {
                e += 1;
            }
            end = e;
        }
    }
    t[..end].replace('_', "").parse().unwrap_or(0.0)
}

/// Call `method` on `recv`. The supported methods per class:
///
/// * any: `to_s`, `inspect`, `nil?`, `to_json`, `==`, `class`, `frozen?`
/// * String: `[]`, `upcase`, `downcase`, `capitalize`, `swapcase`, `strip`/`lstrip`/`rstrip`, `chomp`,
///   `length`/`size`, `to_i`, `to_f`, `to_sym`, `to_str`, `split`, `sub`, `gsub`, `start_with?`, `end_with?`,
///   `include?`, `empty?`, `reverse`, `tr`, `delete`, `squeeze`, `match?`, `*`, `+`
/// * Integer/Float: `to_i`, `to_f`, `round`, `floor`, `ceil`, `abs`, `zero?`
/// * Array: `[]`, `first`, `last`, `join`, `length`/`size`, `include?`, `empty?`, `reverse`, `compact`,
///   `uniq`, `sort`, `flatten`, `count`
/// * Hash: `[]`, `dig`, `fetch`, `key?`/`has_key?`/`include?`, `keys`, `values`, `length`/`size`, `empty?`,
///   `to_a`
/// * Time: `strftime`, `to_i`, `to_f`, `to_s`, `year`, `month`, `day`, `hour`, `min`, `sec`, `nsec`,
///   `usec`, `utc`, `localtime`, `iso8601`
/// * ENV: `[]`, `fetch`, `key?`; Socket: `gethostname`
///
/// # Errors
/// Ruby's `undefined method` message for anything else.
pub fn call_method(scope: &dyn Scope, recv: RValue, method: &str, args: &[RValue]) -> Result<RValue, ExprError> {
    use RValue::*;
    // Methods every object has.
    match method {
        "to_s" if args.is_empty() => return Ok(Str(recv.to_s())),
        "inspect" => return Ok(Str(recv.inspect())),
        "nil?" => return Ok(Bool(matches!(recv, Nil))),
        "to_json" => {
            let v = recv.to_value();
            return Ok(Str(sluice_event::json::value_to_json(&v)));
        }
        "class" => return Ok(Str(recv.class().into())),
        "frozen?" => return Ok(Bool(false)),
        "==" => return Ok(Bool(args.first().is_some_and(|a| values_eq(&recv, a)))),
        _ => {}
    }
    let undefined = |r: &RValue| err(format!("undefined method '{method}' for {}", r.inspect_short()));
    match recv {
        Env => match method {
            "[]" => Ok(scope.env(arg_str(args, 0, "ENV[]")?).map_or(Nil, Str)),
            "fetch" => {
                let k = arg_str(args, 0, "ENV.fetch")?;
                match scope.env(k) {
                    Some(v) => Ok(Str(v)),
                    None => match args.get(1) {
                        Some(d) => Ok(d.clone()),
                        None => err(format!("key not found: {k:?}")),
                    },
                }
            }
            "key?" | "has_key?" | "include?" => Ok(Bool(scope.env(arg_str(args, 0, method)?).is_some())),
            _ => undefined(&Env),
        },
        Socket => match method {
            "gethostname" => Ok(Str(scope.hostname())),
            _ => undefined(&Socket),
        },
        Nil => match method {
            "to_i" => Ok(Int(0)),
            "to_f" => Ok(Float(0.0)),
            "to_a" => Ok(Array(vec![])),
            "empty?" => undefined(&Nil),
            _ => undefined(&Nil),
        },
        Str(s) => string_method(scope, s, method, args),
        Sym(s) => match method {
            "to_sym" => Ok(Sym(s)),
            "length" | "size" => Ok(Int(s.chars().count() as i64)),
            _ => undefined(&Sym(s)),
        },
        Int(i) => match method {
            "to_i" | "floor" | "ceil" | "round" => Ok(Int(i)),
            "to_f" => Ok(Float(i as f64)),
            "abs" => Ok(Int(i.abs())),
            "zero?" => Ok(Bool(i == 0)),
            "+" | "-" | "*" | "/" | "%" | "<" | ">" | "<=" | ">=" => {
                binary(static_op(method), Int(i), args.first().cloned().unwrap_or(Nil))
            }
            _ => undefined(&Int(i)),
        },
        Float(f) => match method {
            "to_i" | "floor" if method == "to_i" => Ok(Int(f.trunc() as i64)),
            "floor" => Ok(Int(f.floor() as i64)),
            "ceil" => Ok(Int(f.ceil() as i64)),
            "round" => match args.first() {
                Some(RValue::Int(d)) => {
                    let m = 10f64.powi(*d as i32);
                    Ok(Float((f * m).round() / m))
                }
                _ => Ok(Int(f.round() as i64)),
            },
            "to_f" => Ok(Float(f)),
            "abs" => Ok(Float(f.abs())),
            "zero?" => Ok(Bool(f == 0.0)),
            _ => undefined(&Float(f)),
        },
        Bool(b) => match method {
            "&" => Ok(Bool(b && args.first().is_some_and(RValue::truthy))),
            "|" => Ok(Bool(b || args.first().is_some_and(RValue::truthy))),
            _ => undefined(&Bool(b)),
        },
        Array(a) => match method {
            "[]" => match args {
                [RValue::Int(i)] => Ok(index_of(a.len(), *i).map_or(Nil, |i| a[i].clone())),
                [RValue::Int(start), RValue::Int(len)] => {
                    let Some(s) = index_of(a.len() + 1, *start) else {
                        return Ok(Nil);
                    };
                    let e = (s + (*len).max(0) as usize).min(a.len());
                    Ok(Array(a[s.min(a.len())..e].to_vec()))
                }
                _ => err("no implicit conversion into Integer (Array#[])"),
            },
            "dig" => dig(Array(a), args),
            "first" => Ok(a.first().cloned().unwrap_or(Nil)),
            "last" => Ok(a.last().cloned().unwrap_or(Nil)),
            "join" => {
                let sep = if args.is_empty() { "" } else { arg_str(args, 0, "join")? };
                Ok(Str(a.iter().map(RValue::to_s).collect::<Vec<_>>().join(sep)))
            }
            "length" | "size" | "count" => Ok(Int(a.len() as i64)),
            "include?" => Ok(Bool(args.first().is_some_and(|x| a.iter().any(|e| values_eq(e, x))))),
            "empty?" => Ok(Bool(a.is_empty())),
            "any?" => Ok(Bool(a.iter().any(RValue::truthy))),
            "reverse" => Ok(Array(a.into_iter().rev().collect())),
            "compact" => Ok(Array(a.into_iter().filter(|v| !matches!(v, Nil)).collect())),
            "uniq" => {
                let mut out: Vec<RValue> = Vec::new();
                for v in a {
                    if !out.iter().any(|o| values_eq(o, &v)) {
                        out.push(v);
                    }
                }
                Ok(Array(out))
            }
            "sort" => {
                let mut v = a;
                v.sort_by(|x, y| match (x, y) {
                    (Str(p), Str(q)) => p.cmp(q),
                    _ => num(x).partial_cmp(&num(y)).unwrap_or(std::cmp::Ordering::Equal),
                });
                Ok(Array(v))
            }
            "flatten" => {
                fn flat(v: Vec<RValue>, out: &mut Vec<RValue>) {
                    for x in v {
                        match x {
                            RValue::Array(inner) => flat(inner, out),
                            other => out.push(other),
                        }
                    }
                }
                let mut out = Vec::new();
                flat(a, &mut out);
                Ok(Array(out))
            }
            "to_a" => Ok(Array(a)),
            _ => undefined(&Array(a)),
        },
        Hash(h) => match method {
            "[]" => Ok(args.first().and_then(|k| hash_get(&h, k)).cloned().unwrap_or(Nil)),
            "dig" => dig(Hash(h), args),
            "fetch" => {
                let Some(k) = args.first() else {
                    return err("wrong number of arguments (given 0, expected 1..2) in fetch");
                };
                match hash_get(&h, k) {
                    Some(v) => Ok(v.clone()),
                    None => match args.get(1) {
                        Some(d) => Ok(d.clone()),
                        None => err(format!("key not found: {}", k.inspect())),
                    },
                }
            }
            "key?" | "has_key?" | "include?" | "member?" => {
                Ok(Bool(args.first().is_some_and(|k| hash_get(&h, k).is_some())))
            }
            "keys" => Ok(Array(h.into_iter().map(|(k, _)| k).collect())),
            "values" => Ok(Array(h.into_iter().map(|(_, v)| v).collect())),
            "length" | "size" | "count" => Ok(Int(h.len() as i64)),
            "empty?" => Ok(Bool(h.is_empty())),
            "to_a" => Ok(Array(h.into_iter().map(|(k, v)| Array(vec![k, v])).collect())),
            _ => undefined(&Hash(h)),
        },
        Time(t, z) => time_method(t, z, method, args),
        Regex(r) => match method {
            "match?" => Ok(Bool(r.0.is_match(arg_str(args, 0, "match?")?))),
            "source" => Ok(Str(r.0.as_str().to_string())),
            _ => undefined(&Regex(r)),
        },
    }
}

fn static_op(m: &str) -> &'static str {
    match m {
        "+" => "+",
        "-" => "-",
        "*" => "*",
        "/" => "/",
        "%" => "%",
        "<" => "<",
        ">" => ">",
        "<=" => "<=",
        _ => ">=",
    }
}

fn dig(mut cur: RValue, keys: &[RValue]) -> Result<RValue, ExprError> {
    for k in keys {
        cur = match cur {
            RValue::Hash(h) => hash_get(&h, k).cloned().unwrap_or(RValue::Nil),
            RValue::Array(a) => match k {
                RValue::Int(i) => index_of(a.len(), *i).map_or(RValue::Nil, |i| a[i].clone()),
                _ => return err("no implicit conversion into Integer (dig)"),
            },
            RValue::Nil => return Ok(RValue::Nil),
            other => return err(format!("{} does not have #dig method", other.class())),
        };
    }
    Ok(cur)
}

fn string_method(scope: &dyn Scope, s: String, method: &str, args: &[RValue]) -> Result<RValue, ExprError> {
    use RValue::*;
    let _ = scope;
    Ok(match method {
        "[]" => match args {
            [RValue::Int(i)] => {
                let chars: Vec<char> = s.chars().collect();
                index_of(chars.len(), *i).map_or(Nil, |i| Str(chars[i].to_string()))
            }
            [RValue::Int(start), RValue::Int(len)] => {
                let chars: Vec<char> = s.chars().collect();
                let Some(st) = index_of(chars.len() + 1, *start) else {
                    return Ok(Nil);
                };
                let e = (st + (*len).max(0) as usize).min(chars.len());
                Str(chars[st.min(chars.len())..e].iter().collect())
            }
            [RValue::Str(sub)] => {
                if s.contains(sub.as_str()) {
                    Str(sub.clone())
                } else {
                    Nil
                }
            }
            _ => return err("no implicit conversion into Integer (String#[])"),
        },
        "upcase" => Str(s.to_uppercase()),
        "downcase" => Str(s.to_lowercase()),
        "capitalize" => {
            let mut c = s.chars();
            Str(match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
                None => String::new(),
            })
        }
        "swapcase" => Str(s
            .chars()
            .map(|c| if c.is_uppercase() { c.to_lowercase().collect::<String>() } else { c.to_uppercase().collect() })
            .collect()),
        "strip" => Str(s.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_string()),
        "lstrip" => Str(s.trim_start().to_string()),
        "rstrip" => Str(s.trim_end().to_string()),
        "chomp" => Str(s
            .strip_suffix("\r\n")
            .or_else(|| s.strip_suffix('\n'))
            .or_else(|| s.strip_suffix('\r'))
            .unwrap_or(&s)
            .to_string()),
        "length" | "size" => Int(s.chars().count() as i64),
        "bytesize" => Int(s.len() as i64),
        "to_i" => Int(str_to_i(&s)),
        "to_f" => Float(str_to_f(&s)),
        "to_sym" => Sym(s),
        "to_str" => Str(s),
        "empty?" => Bool(s.is_empty()),
        "reverse" => Str(s.chars().rev().collect()),
        "include?" => Bool(s.contains(arg_str(args, 0, method)?)),
        "start_with?" => Bool(args.iter().any(|a| matches!(a, RValue::Str(p) if s.starts_with(p.as_str())))),
        "end_with?" => Bool(args.iter().any(|a| matches!(a, RValue::Str(p) if s.ends_with(p.as_str())))),
        "match?" => match args.first() {
            Some(RValue::Regex(r)) => Bool(r.0.is_match(&s)),
            Some(RValue::Str(p)) => Bool(s.contains(p.as_str())),
            _ => return err("wrong argument type (expected Regexp)"),
        },
        "split" => {
            let limit = match args.get(1) {
                Some(RValue::Int(n)) => *n,
                _ => 0,
            };
            let mut parts: Vec<String> = match args.first() {
                None | Some(RValue::Nil) => s.split_whitespace().map(String::from).collect(),
                Some(RValue::Str(sep)) if sep == " " => s.split_whitespace().map(String::from).collect(),
                Some(RValue::Str(sep)) if sep.is_empty() => s.chars().map(String::from).collect(),
                Some(RValue::Str(sep)) => {
                    if limit > 0 {
                        s.splitn(limit as usize, sep.as_str()).map(String::from).collect()
                    } else {
                        s.split(sep.as_str()).map(String::from).collect()
                    }
                }
                Some(RValue::Regex(r)) => split_regex(&r.0, &s),
                Some(other) => {
                    return err(format!("wrong argument type {} (expected Regexp)", other.class()));
                }
            };
            if limit == 0 {
                while parts.last().is_some_and(String::is_empty) {
                    parts.pop();
                }
            }
            Array(parts.into_iter().map(Str).collect())
        }
        "sub" | "gsub" => {
            let rep = arg_str(args, 1, method)?;
            match args.first() {
                Some(RValue::Str(pat)) => {
                    Str(if method == "sub" { s.replacen(pat.as_str(), rep, 1) } else { s.replace(pat.as_str(), rep) })
                }
                Some(RValue::Regex(r)) => {
                    if method == "gsub" {
                        Str(r.0.replace_all(&s, rep).into_owned())
                    } else {
                        Str(replace_first(&r.0, &s, rep))
                    }
                }
                _ => return err(format!("wrong argument type (expected Regexp) in {method}")),
            }
        }
        "tr" => {
            let from: Vec<char> = expand_tr(arg_str(args, 0, "tr")?);
            let to: Vec<char> = expand_tr(arg_str(args, 1, "tr")?);
            Str(s
                .chars()
                .map(|c| match from.iter().position(|f| *f == c) {
                    Some(i) => *to.get(i).or(to.last()).unwrap_or(&c),
                    None => c,
                })
                .collect())
        }
        "delete" => {
            let del: Vec<char> = expand_tr(arg_str(args, 0, "delete")?);
            Str(s.chars().filter(|c| !del.contains(c)).collect())
        }
        "squeeze" => {
            let mut out = String::new();
            for c in s.chars() {
                if !out.ends_with(c) {
                    out.push(c);
                }
            }
            Str(out)
        }
        "+" => binary("+", Str(s), args.first().cloned().unwrap_or(Nil))?,
        "*" => binary("*", Str(s), args.first().cloned().unwrap_or(Nil))?,
        _ => {
            return err(format!("undefined method '{method}' for an instance of String"));
        }
    })
}

fn replace_first(r: &RubyRegex, s: &str, rep: &str) -> String {
    match r.find_at(s, 0) {
        Some((a, b)) => format!("{}{rep}{}", &s[..a], &s[b..]),
        None => s.to_string(),
    }
}

/// Ruby's `String#split(regexp)`: pieces between matches (empty matches
/// split between characters).
fn split_regex(r: &RubyRegex, s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last = 0;
    let mut at = 0;
    while at <= s.len() {
        let Some((a, b)) = r.find_at(s, at) else {
            break;
        };
        if b == a {
            // Empty match: split after the next character.
            let next = s[a..].chars().next().map_or(s.len() + 1, |c| a + c.len_utf8());
            if a > last || (a == last && a > 0 && a < s.len()) {
                out.push(s[last..a].to_string());
                last = a;
            }
            at = next;
            continue;
        }
        out.push(s[last..a].to_string());
        last = b;
        at = b;
    }
    out.push(s[last.min(s.len())..].to_string());
    out
}

fn expand_tr(spec: &str) -> Vec<char> {
    let c: Vec<char> = spec.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if i + 2 < c.len() && c[i + 1] == '-' {
            let (a, b) = (c[i] as u32, c[i + 2] as u32);
            out.extend((a..=b).filter_map(char::from_u32));
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn time_method(t: EventTime, z: ZoneRef, method: &str, args: &[RValue]) -> Result<RValue, ExprError> {
    use RValue::*;
    let tm = z.0.tm(t);
    Ok(match method {
        "strftime" => Str(Strftime::new(arg_str(args, 0, "strftime")?).format_string(&tm, &z.0)),
        "to_i" => Int(t.sec),
        "to_f" => Float(t.as_f64()),
        "year" => Int(tm.year),
        "month" | "mon" => Int(i64::from(tm.month)),
        "day" | "mday" => Int(i64::from(tm.day)),
        "hour" => Int(i64::from(tm.hour)),
        "min" => Int(i64::from(tm.min)),
        "sec" => Int(i64::from(tm.sec)),
        "nsec" => Int(i64::from(t.nsec)),
        "usec" => Int(i64::from(t.nsec / 1000)),
        "wday" => Int(i64::from(tm.wday)),
        "yday" => Int(i64::from(tm.yday)),
        "utc" | "getutc" | "gmtime" => Time(t, ZoneRef(Zone::Utc)),
        "localtime" | "getlocal" => Time(t, ZoneRef(Zone::local())),
        "iso8601" | "xmlschema" => {
            let digits = match args.first() {
                Some(RValue::Int(n)) => *n as usize,
                _ => 0,
            };
            let frac = if digits > 0 { format!(".%{digits}N") } else { String::new() };
            let zone = if matches!(z.0, Zone::Utc) { "Z".to_string() } else { "%:z".into() };
            Str(Strftime::new(&format!("%Y-%m-%dT%H:%M:%S{frac}{zone}")).format_string(&tm, &z.0))
        }
        _ => {
            return err(format!("undefined method '{method}' for an instance of Time"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct S(HashMap<&'static str, RValue>);
    impl Scope for S {
        fn var(&self, name: &str) -> Option<RValue> {
            self.0.get(name).cloned()
        }
        fn env(&self, key: &str) -> Option<String> {
            (key == "HOME_X").then(|| "/home/x".to_string())
        }
    }

    fn scope() -> S {
        let record = RValue::Hash(vec![
            (RValue::Str("a".into()), RValue::Hash(vec![(RValue::Str("b".into()), RValue::Str("deep".into()))])),
            (RValue::Str("message".into()), RValue::Str("Hello".into())),
            (RValue::Str("n".into()), RValue::Int(3)),
        ]);
        let mut m = HashMap::new();
        m.insert("record", record);
        m.insert("tag", RValue::Str("app.web.access".into()));
        m.insert("time", RValue::Time(EventTime::new(1_795_341_600, 5), ZoneRef(Zone::Utc)));
        m.insert("hostname", RValue::Str("myhost".into()));
        S(m)
    }

    fn ev(src: &str) -> Result<RValue, ExprError> {
        Expr::parse(src)?.eval(&scope())
    }

    fn s(v: &str) -> RValue {
        RValue::Str(v.into())
    }

    #[test]
    fn real_config_idioms() {
        assert_eq!(ev(r#"ENV["HOME_X"]"#), Ok(s("/home/x")));
        assert_eq!(ev("ENV['MISSING'] || 'default'"), Ok(s("default")));
        assert_eq!(ev("ENV.fetch('MISSING', 'd')"), Ok(s("d")));
        assert_eq!(ev("Socket.gethostname"), Ok(s("myhost")));
        assert_eq!(ev(r#"record["a"]["b"]"#), Ok(s("deep")));
        assert_eq!(ev(r#"record.dig("a", "b")"#), Ok(s("deep")));
        assert_eq!(ev(r#"record.dig("x", "b")"#), Ok(RValue::Nil));
        assert_eq!(ev(r#""'" + record["message"] + "'""#), Ok(s("'Hello'")));
        assert_eq!(ev(r#"record["message"].upcase"#), Ok(s("HELLO")));
        assert_eq!(ev(r#"record["message"].downcase.to_s"#), Ok(s("hello")));
        assert_eq!(ev("tag.split('.')"), Ok(RValue::Array(vec![s("app"), s("web"), s("access")])));
        assert_eq!(ev("tag.split('.')[-1]"), Ok(s("access")));
        assert_eq!(ev("tag.split('.').last"), Ok(s("access")));
        assert_eq!(ev("time.strftime('%Y-%m-%dT%H:%M:%S.%3N')"), Ok(s("2026-11-22T10:00:00.000")));
        assert_eq!(ev("time.to_i"), Ok(RValue::Int(1_795_341_600)));
        assert_eq!(ev(r##""#{tag}-#{record['n'] + 1}""##), Ok(s("app.web.access-4")));
        assert_eq!(ev(r#"record["n"] > 2 ? "big" : "small""#), Ok(s("big")));
        assert_eq!(ev(r#"record["missing"].nil?"#), Ok(RValue::Bool(true)));
        assert_eq!(ev("tag.gsub(/\\./, '_')"), Ok(s("app_web_access")));
        assert_eq!(ev("tag.sub('.', '-')"), Ok(s("app-web.access")));
        assert_eq!(ev(r#"record["message"] =~ /ell/ ? 1 : 0"#), Ok(RValue::Int(1)));
        assert_eq!(ev("[1, 2].join(',')"), Ok(s("1,2")));
        assert_eq!(ev("7 / 2"), Ok(RValue::Int(3)));
        assert_eq!(ev("-7 / 2"), Ok(RValue::Int(-4)));
        assert_eq!(ev("'a,b,,'.split(',')"), Ok(RValue::Array(vec![s("a"), s("b")])));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(ev(r#"record["missing"]["x"]"#).unwrap_err().0, "undefined method '[]' for nil");
        assert!(Expr::parse("record.map { |k, v| v }").unwrap_err().0.contains("blocks are not supported"));
        assert!(Expr::parse("x = 1").unwrap_err().0.contains("assignment"));
        assert!(Expr::parse("system('ls')").unwrap_err().0.contains("calling functions is not supported: system"));
        assert!(ev("File.read('x')").unwrap_err().0.contains("uninitialized constant File"));
        assert!(
            ev("record.frobnicate").unwrap_err().0.contains("undefined method 'frobnicate' for an instance of Hash")
        );
        assert!(ev("nosuchvar").unwrap_err().0.contains("undefined local variable or method 'nosuchvar'"));
        assert!(Expr::parse("1 +").is_err());
        assert!(Expr::parse("(1").is_err());
    }

    #[test]
    fn to_f_and_to_i_follow_ruby() {
        assert_eq!(str_to_f("12abc"), 12.0);
        assert_eq!(str_to_f("1273111321.5"), 1_273_111_321.5);
        assert_eq!(str_to_f("abc"), 0.0);
        assert_eq!(str_to_f("1e3x"), 1000.0);
        assert_eq!(str_to_i(" -42x"), -42);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(src in "[a-z\\[\\]()'\".,|&!?:+\\-*/ 0-9{}#=<>]{0,40}") {
            if let Ok(e) = Expr::parse(&src) {
                let _ = e.eval(&scope());
            }
        }
    }
}
