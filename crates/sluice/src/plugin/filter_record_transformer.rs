//! `@type record_transformer`: add, change and remove record fields with
//! placeholders.
//!
//! Without `enable_ruby`, values in `<record>` may use `${tag}`,
//! `${tag_parts[N]}` (negative N counts from the end), `${tag_prefix[N]}`,
//! `${tag_suffix[N]}`, `${hostname}`, `${time}` and `${record["key"]}`
//! (sluice also follows nested `["a"]["b"]`). With `enable_ruby`, `${…}`
//! holds a Ruby expression from the subset in [`sluice_ruby::expr`] over
//! `record`, `tag`, `time`, `tag_parts`, `tag_prefix`, `tag_suffix`,
//! `hostname` and `ENV`; anything outside that subset is a configuration
//! error naming the expression, so nothing is silently evaluated differently.
//!
//! Templates are compiled once. `auto_typecast` (default true, as in
//! Fluentd's source) keeps the value's type when a value is exactly one
//! placeholder.

use super::record_accessor::{Accessor, decode_value};
use super::{BuildCx, Filter, FilterCx};
use sluice_config::{Element, Params, Span};
use sluice_event::strftime::Zone;
use sluice_event::{EventStream, EventStreamBuilder, EventTime, PathSeg, Record, RecordRef, Value, rubyfmt};
use sluice_ruby::Expr;
use sluice_ruby::expr::{RValue, Scope, ZoneRef, time_to_s};
use std::collections::HashSet;
use std::sync::Mutex;

/// Adds, changes or removes record fields using placeholders.
#[derive(Debug, Params)]
pub struct RecordTransformerParams {
    /// Fields to remove after the new fields are set (`$.a.b` reaches into nested records).
    pub remove_keys: Option<Vec<String>>,
    /// With `renew_record`, fields of the original record to keep.
    pub keep_keys: Option<Vec<String>>,
    /// Start from an empty record instead of the original.
    #[param(default = "false")]
    pub renew_record: bool,
    /// Use this (new) field's value, in seconds, as the event time.
    pub renew_time_key: Option<String>,
    /// Evaluate `${…}` as Ruby expressions (the supported subset).
    #[param(default = "false")]
    pub enable_ruby: bool,
    /// Keep the type of a value that is exactly one placeholder.
    #[param(default = "true")]
    pub auto_typecast: bool,
    /// The fields to set: `key value-with-placeholders`.
    #[section(name = "record")]
    pub record: Vec<Element>,
}

/// A placeholder.
#[derive(Debug, Clone)]
enum Ph {
    Tag,
    Hostname,
    Time,
    TagParts(i64),
    TagPrefix(i64),
    TagSuffix(i64),
    Record(Vec<PathSeg>),
    /// Unknown to the non-Ruby expander: expands to nil / "".
    Unknown,
    Ruby(Box<Expr>, String),
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Ph(Ph),
}

/// A compiled string value.
#[derive(Debug, Clone)]
enum StrTmpl {
    Lit(String),
    /// Exactly one placeholder, typed.
    Single(Ph),
    Concat(Vec<Piece>),
}

/// A compiled `<record>` value.
#[derive(Debug, Clone)]
enum Tmpl {
    Const(Value),
    Str(StrTmpl),
    Array(Vec<Tmpl>),
    Map(Vec<(StrTmpl, Tmpl)>),
}

/// The record_transformer filter.
pub struct RecordTransformer {
    map: Vec<(StrTmpl, Tmpl)>,
    remove: Vec<Accessor>,
    keep: Vec<String>,
    renew_record: bool,
    renew_time_key: Option<String>,
    hostname: String,
    worker_id: u32,
    needs_record_rvalue: bool,
    warned: Mutex<HashSet<String>>,
    log: crate::log::Logger,
}

struct Compiler<'a> {
    ruby: bool,
    auto_typecast: bool,
    span: Span,
    errors: Vec<(Span, String)>,
    unknown: Vec<String>,
    uses_record: &'a mut bool,
}

impl Compiler<'_> {
    fn string(&mut self, s: &str, force_stringify: bool) -> StrTmpl {
        let pieces = self.pieces(s);
        let single = matches!(pieces.as_slice(), [Piece::Ph(_)]) && self.auto_typecast && !force_stringify;
        if single && let Some(Piece::Ph(p)) = pieces.into_iter().next() {
            return StrTmpl::Single(p);
        }
        let pieces = self.pieces(s);
        if pieces.iter().all(|p| matches!(p, Piece::Lit(_))) {
            return StrTmpl::Lit(
                pieces.into_iter().map(|p| if let Piece::Lit(l) = p { l } else { String::new() }).collect(),
            );
        }
        StrTmpl::Concat(pieces)
    }

    fn pieces(&mut self, s: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("${")
                && let Some(end) = self.close_of(after)
            {
                let inner = &after[..end];
                if !inner.is_empty() {
                    if !lit.is_empty() {
                        out.push(Piece::Lit(self.literal(&std::mem::take(&mut lit))));
                    }
                    out.push(Piece::Ph(self.placeholder(inner)));
                    rest = &after[end + 1..];
                    continue;
                }
            }
            if !self.ruby
                && let Some(tok) = legacy_token(rest)
            {
                if !lit.is_empty() {
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                self.unknown.push(tok.to_string());
                out.push(Piece::Ph(Ph::Unknown));
                rest = &rest[tok.len()..];
                continue;
            }
            let c = rest.chars().next().unwrap_or(' ');
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            out.push(Piece::Lit(self.literal(&lit)));
        }
        out
    }

    /// Where the placeholder body starting `after` ends: the first `}` without
    /// Ruby, the matching one (skipping nested braces and strings) with it.
    fn close_of(&self, after: &str) -> Option<usize> {
        if self.ruby { sluice_config::parser::find_code_end(after.as_bytes(), 0) } else { after.find('}') }
    }

    /// Literal text; with Ruby, backslash escapes apply (the value is a Ruby string).
    fn literal(&self, s: &str) -> String {
        if !self.ruby {
            return s.to_string();
        }
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('e') => out.push('\u{1b}'),
                Some('0') => out.push('\0'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        }
        out
    }

    fn placeholder(&mut self, inner: &str) -> Ph {
        if self.ruby {
            return match Expr::parse(inner) {
                Ok(e) => {
                    let mut vars = Vec::new();
                    e.variables(&mut vars);
                    if vars.iter().any(|v| v == "record") {
                        *self.uses_record = true;
                    }
                    for v in vars {
                        if !matches!(
                            v.as_str(),
                            "record"
                                | "tag"
                                | "time"
                                | "tag_parts"
                                | "tag_prefix"
                                | "tag_suffix"
                                | "hostname"
                                | "worker_id"
                        ) {
                            self.errors.push((self.span, format!("unsupported variable '{v}' in `${{{inner}}}` (available: record, tag, time, tag_parts, tag_prefix, tag_suffix, hostname)")));
                        }
                    }
                    Ph::Ruby(Box::new(e), inner.to_string())
                }
                Err(e) => {
                    self.errors.push((self.span, format!("cannot evaluate `${{{inner}}}`: {e}")));
                    Ph::Unknown
                }
            };
        }
        let idx = |name: &str| -> Option<i64> {
            inner.strip_prefix(name)?.strip_prefix('[')?.strip_suffix(']')?.trim().parse().ok()
        };
        match inner {
            "tag" => Ph::Tag,
            "hostname" => Ph::Hostname,
            "time" => Ph::Time,
            _ => {
                if let Some(i) = idx("tag_parts") {
                    Ph::TagParts(i)
                } else if let Some(i) = idx("tag_prefix") {
                    Ph::TagPrefix(i)
                } else if let Some(i) = idx("tag_suffix") {
                    Ph::TagSuffix(i)
                } else if let Some(path) = record_path(inner) {
                    Ph::Record(path)
                } else {
                    self.unknown.push(format!("${{{inner}}}"));
                    Ph::Unknown
                }
            }
        }
    }

    fn value(&mut self, v: &Value) -> Tmpl {
        match v {
            Value::String(s) => Tmpl::Str(self.string(&String::from_utf8_lossy(s.as_bytes()), false)),
            Value::Array(a) => Tmpl::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Map(m) => {
                Tmpl::Map(m.iter().map(|(k, x)| (self.string(&rubyfmt::to_s(k), true), self.value(x))).collect())
            }
            other => Tmpl::Const(other.clone()),
        }
    }
}

/// `__UPPER_CASE__` at the start of `s` (Fluentd's legacy placeholder syntax).
fn legacy_token(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("__")?;
    let n = rest.bytes().take_while(|b| b.is_ascii_uppercase() || *b == b'_').count();
    if n < 3 {
        return None;
    }
    // The token ends at the last "__" of the run.
    let run = &rest[..n];
    let end = run.rfind("__")?;
    if end == 0 {
        return None;
    }
    Some(&s[..2 + end + 2])
}

/// `record["a"]["b"]` / `record['a']` → path.
fn record_path(inner: &str) -> Option<Vec<PathSeg>> {
    let mut rest = inner.strip_prefix("record")?;
    let mut path = Vec::new();
    while !rest.is_empty() {
        let r = rest.strip_prefix('[')?;
        let q = r.chars().next()?;
        if q != '"' && q != '\'' {
            let close = r.find(']')?;
            path.push(PathSeg::Index(r[..close].trim().parse().ok()?));
            rest = &r[close + 1..];
            continue;
        }
        let body = &r[1..];
        let end = body.find(q)?;
        path.push(PathSeg::Key(body[..end].to_string()));
        rest = body[end + 1..].strip_prefix(']')?;
    }
    (!path.is_empty()).then_some(path)
}

/// Per-stream values derived from the tag.
struct TagCx<'a> {
    tag: &'a str,
    parts: Vec<&'a str>,
    prefix: Vec<String>,
    suffix: Vec<String>,
}

impl<'a> TagCx<'a> {
    fn new(tag: &'a str) -> Self {
        let mut parts: Vec<&str> = tag.split('.').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        let prefix = (1..=parts.len()).map(|i| parts[..i].join(".")).collect();
        let suffix = (0..parts.len()).map(|i| parts[i..].join(".")).collect();
        TagCx { tag, parts, prefix, suffix }
    }

    fn pick<T: Clone>(list: &[T], i: i64) -> Option<T> {
        let n = list.len() as i64;
        let idx = if i < 0 { n + i } else { i };
        (0..n).contains(&idx).then(|| list[idx as usize].clone())
    }
}

/// Per-event evaluation state.
struct EventCx<'a> {
    tagcx: &'a TagCx<'a>,
    time: EventTime,
    record: RecordRef<'a>,
    record_rv: Option<RValue>,
    hostname: &'a str,
    worker_id: u32,
}

impl Scope for EventCx<'_> {
    fn var(&self, name: &str) -> Option<RValue> {
        let strs = |v: &[String]| RValue::Array(v.iter().map(|s| RValue::Str(s.clone())).collect());
        Some(match name {
            "record" => self.record_rv.clone().unwrap_or(RValue::Nil),
            "tag" => RValue::Str(self.tagcx.tag.to_string()),
            "time" => RValue::Time(self.time, ZoneRef(Zone::local())),
            "tag_parts" => RValue::Array(self.tagcx.parts.iter().map(|s| RValue::Str((*s).to_string())).collect()),
            "tag_prefix" => strs(&self.tagcx.prefix),
            "tag_suffix" => strs(&self.tagcx.suffix),
            "hostname" => RValue::Str(self.hostname.to_string()),
            "worker_id" => RValue::Str(self.worker_id.to_string()),
            _ => return None,
        })
    }

    fn env(&self, key: &str) -> Option<String> {
        if key == "SERVERENGINE_WORKER_ID" {
            return Some(self.worker_id.to_string());
        }
        std::env::var(key).ok()
    }
}

impl RecordTransformer {
    fn ph_value(&self, ph: &Ph, cx: &EventCx<'_>) -> Result<Value, String> {
        Ok(match ph {
            Ph::Tag => Value::from(cx.tagcx.tag),
            Ph::Hostname => Value::from(self.hostname.as_str()),
            Ph::Time => Value::from(time_to_s(cx.time, &Zone::local())),
            Ph::TagParts(i) => TagCx::pick(&cx.tagcx.parts, *i).map_or(Value::Nil, Value::from),
            Ph::TagPrefix(i) => TagCx::pick(&cx.tagcx.prefix, *i).map_or(Value::Nil, |s| Value::from(s.as_str())),
            Ph::TagSuffix(i) => TagCx::pick(&cx.tagcx.suffix, *i).map_or(Value::Nil, |s| Value::from(s.as_str())),
            Ph::Record(path) => match cx.record.dig(path) {
                Some(raw) => decode_value(raw),
                None => {
                    self.warn_unknown_once(&format!("${{record{}}}", path_text(path)));
                    Value::Nil
                }
            },
            Ph::Unknown => Value::Nil,
            Ph::Ruby(e, src) => {
                e.eval(cx).map_err(|err| format!("failed to expand `{src}` : error = {err}"))?.to_value()
            }
        })
    }

    fn expand_str(&self, t: &StrTmpl, cx: &EventCx<'_>) -> Result<Value, String> {
        Ok(match t {
            StrTmpl::Lit(s) => Value::from(s.as_str()),
            StrTmpl::Single(ph) => self.ph_value(ph, cx)?,
            StrTmpl::Concat(pieces) => {
                let mut out = Vec::new();
                for p in pieces {
                    match p {
                        Piece::Lit(l) => out.extend_from_slice(l.as_bytes()),
                        Piece::Ph(ph) => rubyfmt::write_to_s(&mut out, &self.ph_value(ph, cx)?),
                    }
                }
                Value::from(String::from_utf8_lossy(&out).as_ref())
            }
        })
    }

    fn expand(&self, t: &Tmpl, cx: &EventCx<'_>) -> Result<Value, String> {
        Ok(match t {
            Tmpl::Const(v) => v.clone(),
            Tmpl::Str(s) => self.expand_str(s, cx)?,
            Tmpl::Array(a) => Value::Array(a.iter().map(|x| self.expand(x, cx)).collect::<Result<_, _>>()?),
            Tmpl::Map(m) => {
                Value::Map(m.iter().map(|(k, v)| Ok((self.expand_str(k, cx)?, self.expand(v, cx)?))).collect::<Result<
                    _,
                    String,
                >>(
                )?)
            }
        })
    }

    fn transform(
        &self,
        tagcx: &TagCx<'_>,
        time: EventTime,
        record: RecordRef<'_>,
    ) -> Result<(EventTime, Record), String> {
        let record_rv = if self.needs_record_rvalue {
            Some(RValue::from_value(&record.to_record().map_err(|e| e.to_string())?.into_value()))
        } else {
            None
        };
        let cx = EventCx { tagcx, time, record, record_rv, hostname: &self.hostname, worker_id: self.worker_id };
        let original = record.to_record().map_err(|e| e.to_string())?;
        let mut new = if self.renew_record {
            let mut r = Record::new();
            for k in &self.keep {
                if let Some(v) = original.get(k) {
                    r.insert(k, v.clone());
                }
            }
            r
        } else {
            original
        };
        for (k, v) in &self.map {
            let key = rubyfmt::to_s(&self.expand_str(k, &cx)?);
            let value = self.expand(v, &cx)?;
            new.insert(&key, value);
        }
        let mut time = time;
        if let Some(k) = &self.renew_time_key
            && let Some(v) = new.get(k)
        {
            let f = match v {
                Value::Integer(i) => i.as_f64().unwrap_or(0.0),
                Value::F32(f) => f64::from(*f),
                Value::F64(f) => *f,
                Value::String(s) => sluice_ruby::expr::str_to_f(s.as_str().unwrap_or("")),
                Value::Nil => 0.0,
                other => {
                    return Err(format!("undefined method 'to_f' for {}", sluice_event::record::value_kind(other)));
                }
            };
            let sec = f.floor();
            time = EventTime::new(sec as i64, ((f - sec) * 1e9).floor() as u32);
        }
        for acc in &self.remove {
            acc.delete(&mut new);
        }
        Ok((time, new))
    }

    /// Fluentd warns for every event; once per placeholder is enough to be noticed.
    fn warn_unknown_once(&self, what: &str) {
        let mut w = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() < 1000 && w.insert(what.to_string()) {
            crate::warn!(
                self.log,
                format!(
                    "unknown placeholder `{what}` found (the record has no such field; further occurrences are not logged)"
                )
            );
        }
    }
}

impl Filter for RecordTransformer {
    fn filter(&self, tag: &str, es: EventStream, cx: &FilterCx<'_>) -> EventStream {
        let tagcx = TagCx::new(tag);
        let mut b = EventStreamBuilder::with_capacity(es.as_bytes().len() + es.len() * 32);
        for ev in &es {
            match self.transform(&tagcx, ev.time, ev.record) {
                Ok((t, rec)) => {
                    let _ = b.push_with(t, |out| -> Result<(), ()> {
                        rec.write_msgpack(out);
                        Ok(())
                    });
                }
                Err(e) => cx.error_event(tag, ev.time, ev.record, &e),
            }
        }
        b.finish()
    }
}

fn path_text(path: &[PathSeg]) -> String {
    path.iter()
        .map(|s| match s {
            PathSeg::Key(k) => format!("[\"{k}\"]"),
            PathSeg::Index(i) => format!("[{i}]"),
        })
        .collect()
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Filter>> {
    let p = RecordTransformerParams::from_element(el, cx.cfg)?;
    if p.keep_keys.is_some() && !p.renew_record {
        cx.cfg.error(
            el.param("keep_keys").map_or(el.span, |x| x.key_span),
            "`renew_record` must be true to use `keep_keys`",
        );
        return None;
    }
    let mut uses_record = false;
    let mut map: Vec<(StrTmpl, Tmpl)> = Vec::new();
    let mut failed = false;
    for rec in &p.record {
        for param in &rec.params {
            let raw = param.value.clone().unwrap_or_default();
            let mut c = Compiler {
                ruby: p.enable_ruby,
                auto_typecast: p.auto_typecast,
                span: param.value_span,
                errors: Vec::new(),
                unknown: Vec::new(),
                uses_record: &mut uses_record,
            };
            let key = c.string(&param.key, true);
            let value = if raw.starts_with('{') || raw.starts_with('[') {
                match sluice_event::json::json_to_value(raw.as_bytes()) {
                    Ok(v) => c.value(&v),
                    Err(e) => {
                        cx.cfg.warn(
                            param.value_span,
                            format!("failed to parse {raw} as json. Assuming {raw} is a string (error: {e})"),
                        );
                        Tmpl::Str(c.string(&raw, false))
                    }
                }
            } else {
                Tmpl::Str(c.string(&raw, false))
            };
            for (span, e) in c.errors {
                cx.cfg.error(span, e);
                failed = true;
            }
            for u in c.unknown {
                cx.cfg.warn(param.value_span, format!("unknown placeholder `{u}` found; it expands to an empty value")).help(if p.enable_ruby {
                    "placeholders are ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, ${time}, ${record[\"key\"]}"
                } else {
                    "placeholders are ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, ${time}, ${record[\"key\"]}; Ruby expressions need `enable_ruby`"
                });
            }
            // A later key replaces an earlier one, keeping its position (Ruby Hash).
            match map.iter_mut().find(|(k, _)| matches!((k, &key), (StrTmpl::Lit(a), StrTmpl::Lit(b)) if a == b)) {
                Some(slot) => slot.1 = value,
                None => map.push((key, value)),
            }
        }
    }
    if failed {
        return None;
    }
    let mut remove = Vec::new();
    for k in p.remove_keys.unwrap_or_default() {
        match Accessor::parse(k.trim()) {
            Ok(a) => remove.push(a),
            Err(e) => {
                cx.cfg.error(el.param("remove_keys").map_or(el.span, |x| x.value_span), e);
                return None;
            }
        }
    }
    Some(Box::new(RecordTransformer {
        map,
        remove,
        keep: p.keep_keys.unwrap_or_default(),
        renew_record: p.renew_record,
        renew_time_key: p.renew_time_key,
        hostname: cx.env.hostname.clone(),
        worker_id: cx.env.worker_id,
        needs_record_rvalue: uses_record,
        warned: Mutex::new(HashSet::new()),
        log: cx.info.log.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_derivatives() {
        let t = TagCx::new("prefix.test.tag.suffix");
        assert_eq!(TagCx::pick(&t.prefix, 1).unwrap(), "prefix.test");
        assert_eq!(TagCx::pick(&t.prefix, -2).unwrap(), "prefix.test.tag");
        assert_eq!(TagCx::pick(&t.suffix, 2).unwrap(), "tag.suffix");
        assert_eq!(TagCx::pick(&t.suffix, -3).unwrap(), "test.tag.suffix");
        assert_eq!(TagCx::pick(&t.parts, -1).unwrap(), "suffix");
        assert!(TagCx::pick(&t.parts, 4).is_none());
    }

    #[test]
    fn record_paths_and_legacy_tokens() {
        assert_eq!(record_path(r#"record["a"]["b"]"#), Some(vec![PathSeg::Key("a".into()), PathSeg::Key("b".into())]));
        assert_eq!(record_path("record['a'][0]"), Some(vec![PathSeg::Key("a".into()), PathSeg::Index(0)]));
        assert_eq!(record_path("recordx"), None);
        assert_eq!(legacy_token("__HOSTNAME__ x"), Some("__HOSTNAME__"));
        assert_eq!(legacy_token("__init__"), None);
    }
}
