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
use sluice_event::{EventStream, EventStreamBuilder, EventTime, PathSeg, RecordRef, Value, msgpack, rubyfmt};
use sluice_ruby::Expr;
use sluice_ruby::expr::{RValue, Scope, ZoneRef, time_to_s};
use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;
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
    /// `remove_keys` that are top-level keys (removed while assembling).
    remove_top: Vec<String>,
    /// `remove_keys` reaching into nested records (need decoding).
    remove_nested: Vec<Accessor>,
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

/// A new field: its key and where its msgpack value sits in the scratch buffer.
type Field<'a> = (Cow<'a, str>, Range<usize>);

impl RecordTransformer {
    /// Append the msgpack value of a placeholder.
    fn ph_into(&self, ph: &Ph, cx: &EventCx<'_>, out: &mut Vec<u8>) -> Result<(), String> {
        let s = |out: &mut Vec<u8>, v: Option<&str>| match v {
            Some(v) => msgpack::write_str(out, v.as_bytes()),
            None => msgpack::write_nil(out),
        };
        match ph {
            Ph::Tag => s(out, Some(cx.tagcx.tag)),
            Ph::Hostname => s(out, Some(&self.hostname)),
            Ph::Time => s(out, Some(&time_to_s(cx.time, &Zone::local()))),
            Ph::TagParts(i) => s(out, TagCx::pick(&cx.tagcx.parts, *i)),
            Ph::TagPrefix(i) => s(out, TagCx::pick(&cx.tagcx.prefix, *i).as_deref()),
            Ph::TagSuffix(i) => s(out, TagCx::pick(&cx.tagcx.suffix, *i).as_deref()),
            Ph::Record(path) => match cx.record.dig(path) {
                // The value's bytes are copied as they are: no decoding.
                Some(raw) => out.extend_from_slice(raw),
                None => {
                    self.warn_unknown_once(&format!("${{record{}}}", path_text(path)));
                    msgpack::write_nil(out);
                }
            },
            Ph::Unknown => msgpack::write_nil(out),
            Ph::Ruby(e, src) => {
                let v = e.eval(cx).map_err(|err| format!("failed to expand `{src}` : error = {err}"))?;
                sluice_event::record::write_value(out, &v.to_value());
            }
        }
        Ok(())
    }

    /// Append Ruby's `to_s` of a placeholder's value (string interpolation).
    fn ph_text(&self, ph: &Ph, cx: &EventCx<'_>, out: &mut Vec<u8>) -> Result<(), String> {
        let mut v = Vec::new();
        self.ph_into(ph, cx, &mut v)?;
        match msgpack::read_str(&v, 0) {
            Ok((bytes, _)) => out.extend_from_slice(bytes),
            Err(_) => rubyfmt::write_to_s(out, &decode_value(&v)),
        }
        Ok(())
    }

    fn str_into(&self, t: &StrTmpl, cx: &EventCx<'_>, out: &mut Vec<u8>) -> Result<(), String> {
        match t {
            StrTmpl::Lit(s) => msgpack::write_str(out, s.as_bytes()),
            StrTmpl::Single(ph) => self.ph_into(ph, cx, out)?,
            StrTmpl::Concat(_) => {
                let text = self.str_text(t, cx)?;
                msgpack::write_str(out, text.as_bytes());
            }
        }
        Ok(())
    }

    /// A template as text (keys are always strings).
    fn str_text<'t>(&self, t: &'t StrTmpl, cx: &EventCx<'_>) -> Result<Cow<'t, str>, String> {
        Ok(match t {
            StrTmpl::Lit(s) => Cow::Borrowed(s),
            StrTmpl::Single(ph) => {
                let mut out = Vec::new();
                self.ph_text(ph, cx, &mut out)?;
                Cow::Owned(String::from_utf8_lossy(&out).into_owned())
            }
            StrTmpl::Concat(pieces) => {
                let mut out = Vec::new();
                for p in pieces {
                    match p {
                        Piece::Lit(l) => out.extend_from_slice(l.as_bytes()),
                        Piece::Ph(ph) => self.ph_text(ph, cx, &mut out)?,
                    }
                }
                Cow::Owned(String::from_utf8_lossy(&out).into_owned())
            }
        })
    }

    fn tmpl_into(&self, t: &Tmpl, cx: &EventCx<'_>, out: &mut Vec<u8>) -> Result<(), String> {
        match t {
            Tmpl::Const(v) => sluice_event::record::write_value(out, v),
            Tmpl::Str(s) => self.str_into(s, cx, out)?,
            Tmpl::Array(a) => {
                msgpack::write_array_header(out, a.len());
                for x in a {
                    self.tmpl_into(x, cx, out)?;
                }
            }
            Tmpl::Map(m) => {
                msgpack::write_map_header(out, m.len());
                for (k, v) in m {
                    msgpack::write_str(out, self.str_text(k, cx)?.as_bytes());
                    self.tmpl_into(v, cx, out)?;
                }
            }
        }
        Ok(())
    }

    /// Expand every `<record>` field into `scratch`.
    fn fields<'s>(
        &'s self,
        cx: &EventCx<'_>,
        scratch: &mut Vec<u8>,
        fields: &mut Vec<Field<'s>>,
    ) -> Result<(), String> {
        for (k, v) in &self.map {
            let key = self.str_text(k, cx)?;
            let start = scratch.len();
            self.tmpl_into(v, cx, scratch)?;
            fields.push((key, start..scratch.len()));
        }
        Ok(())
    }

    /// Write the new record: the original's pairs (or only `keep_keys` with
    /// `renew_record`), each replaced by a new field of the same key in place,
    /// then the remaining new fields in order; top-level `remove_keys` skipped.
    fn assemble(&self, record: RecordRef<'_>, fields: &[Field<'_>], scratch: &[u8], out: &mut Vec<u8>) {
        let at = out.len();
        out.push(0x80);
        let mut count = 0;
        let mut used_inline = [false; 32];
        let mut used_heap = Vec::new();
        let used: &mut [bool] = if fields.len() <= 32 {
            &mut used_inline[..fields.len()]
        } else {
            used_heap.resize(fields.len(), false);
            &mut used_heap
        };
        let removed = |k: &[u8]| self.remove_top.iter().any(|r| r.as_bytes() == k);
        let last_field = |k: &[u8]| fields.iter().rposition(|(fk, _)| fk.as_bytes() == k);
        let mark = |used: &mut [bool], k: &[u8]| {
            for (j, f) in fields.iter().enumerate() {
                if f.0.as_bytes() == k {
                    used[j] = true;
                }
            }
        };
        let mut base_pair = |pair: sluice_event::record::Pair<'_>, used: &mut [bool], out: &mut Vec<u8>| {
            let key = pair.key_str();
            let hit = key.and_then(last_field);
            if let Some(k) = key {
                if hit.is_some() {
                    mark(used, k);
                }
                if removed(k) {
                    return;
                }
            }
            out.extend_from_slice(pair.key);
            match hit {
                Some(i) => out.extend_from_slice(&scratch[fields[i].1.clone()]),
                None => out.extend_from_slice(pair.value),
            }
            count += 1;
        };
        // The base: the original pairs, or with renew_record only keep_keys (in their order).
        if self.renew_record {
            for k in &self.keep {
                if let Some(p) = record.iter().find(|p| p.key_str() == Some(k.as_bytes())) {
                    base_pair(p, used, out);
                }
            }
        } else {
            for p in record.iter() {
                base_pair(p, used, out);
            }
        }
        for (i, (k, _)) in fields.iter().enumerate() {
            if used[i] {
                continue;
            }
            let last = last_field(k.as_bytes()).unwrap_or(i);
            mark(used, k.as_bytes());
            if removed(k.as_bytes()) {
                continue;
            }
            msgpack::write_str(out, k.as_bytes());
            out.extend_from_slice(&scratch[fields[last].1.clone()]);
            count += 1;
        }
        msgpack::patch_container_header(out, at, count, true);
    }

    /// The event time from `renew_time_key` (Ruby's `Time.at(value.to_f)`).
    fn renewed_time(&self, record: RecordRef<'_>) -> Result<Option<EventTime>, String> {
        let Some(k) = &self.renew_time_key else { return Ok(None) };
        let Some(raw) = record.get(k) else { return Ok(None) };
        let f = match decode_value(raw) {
            Value::Integer(i) => i.as_f64().unwrap_or(0.0),
            Value::F32(f) => f64::from(f),
            Value::F64(f) => f,
            Value::String(s) => sluice_ruby::expr::str_to_f(s.as_str().unwrap_or("")),
            Value::Nil => 0.0,
            other => return Err(format!("undefined method 'to_f' for {}", sluice_event::record::value_kind(&other))),
        };
        let sec = f.floor();
        Ok(Some(EventTime::new(sec as i64, ((f - sec) * 1e9).floor() as u32)))
    }

    /// Transform one event into `out` (a record map); returns its time.
    fn transform<'s>(
        &'s self,
        tagcx: &TagCx<'_>,
        time: EventTime,
        record: RecordRef<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        fields: &mut Vec<Field<'s>>,
    ) -> Result<EventTime, String> {
        let record_rv = if self.needs_record_rvalue {
            Some(RValue::from_value(&record.to_record().map_err(|e| e.to_string())?.into_value()))
        } else {
            None
        };
        let cx = EventCx { tagcx, time, record, record_rv, hostname: &self.hostname, worker_id: self.worker_id };
        scratch.clear();
        fields.clear();
        self.fields(&cx, scratch, fields)?;
        let start = out.len();
        self.assemble(record, fields, scratch, out);
        if self.renew_time_key.is_none() && self.remove_nested.is_empty() {
            return Ok(time);
        }
        let new = RecordRef::new(&out[start..]).map_err(|e| e.to_string())?;
        let time = self.renewed_time(new)?.unwrap_or(time);
        if !self.remove_nested.is_empty() {
            let mut rec = new.to_record().map_err(|e| e.to_string())?;
            for acc in &self.remove_nested {
                acc.delete(&mut rec);
            }
            out.truncate(start);
            rec.write_msgpack(out);
        }
        Ok(time)
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
        let mut b = EventStreamBuilder::with_capacity(es.as_bytes().len() + es.len() * 64);
        let mut rec = Vec::with_capacity(256);
        let mut scratch = Vec::with_capacity(128);
        let mut fields = Vec::with_capacity(self.map.len());
        for ev in &es {
            rec.clear();
            match self.transform(&tagcx, ev.time, ev.record, &mut rec, &mut scratch, &mut fields) {
                Ok(t) => b.push_raw(t, &rec),
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
    let (top, nested): (Vec<Accessor>, Vec<Accessor>) = remove.into_iter().partition(|a| a.top_key().is_some());
    Some(Box::new(RecordTransformer {
        map,
        remove_top: top.iter().filter_map(|a| a.top_key().map(String::from)).collect(),
        remove_nested: nested,
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
