//! `@type parser` filter: parse one field of each record with a `<parse>`
//! parser and replace the record with the result (or merge it in with
//! `reserve_data`).
//!
//! The event time becomes the parsed time; without a time field the parser
//! estimates the current time (Fluentd's behaviour), unless `reserve_time`
//! keeps the original. Records whose field is missing, does not match or
//! fails to parse go to `@ERROR` (`emit_invalid_record_to_error`), and with
//! `reserve_data` the original record is passed on as well.

use super::parser::{self, Parser, Scratch};
use super::record_accessor::Accessor;
use super::{BuildCx, Filter, FilterCx};
use sluice_config::{Element, Params};
use sluice_event::{EventStream, EventStreamBuilder, EventTime, Record, RecordRef, Value, msgpack};
use std::sync::Mutex;

/// Parses a field of each record.
#[derive(Debug, Params)]
pub struct ParserFilterParams {
    /// The field to parse (`name` or `$.a.b`).
    pub key_name: String,
    /// Keep the original fields (parsed fields win on conflicts).
    #[param(default = "false")]
    pub reserve_data: bool,
    /// Keep the original event time.
    #[param(default = "false")]
    pub reserve_time: bool,
    /// Remove `key_name` from the record after a successful parse.
    #[param(default = "false")]
    pub remove_key_name_field: bool,
    /// Prefix added to the parsed field names.
    pub inject_key_prefix: Option<String>,
    /// Replace invalid byte sequences before parsing (sluice's parsers read bytes and never
    /// fail on them, so this changes nothing).
    #[param(default = "false")]
    pub replace_invalid_sequence: bool,
    /// Put the parsed fields under this key instead of at the top level.
    pub hash_value_field: Option<String>,
    /// Send records that cannot be parsed to `@ERROR`.
    #[param(default = "true")]
    pub emit_invalid_record_to_error: bool,
    /// The parser.
    #[section(name = "parse")]
    pub parse: Option<Element>,
}

/// The parser filter.
pub struct ParserFilter {
    key: Accessor,
    p: ParserFilterParams,
    parser: Box<dyn Parser>,
    scratch: Mutex<Vec<Scratch>>,
}

impl ParserFilter {
    /// `handle_parsed`: prefix, nest, merge.
    fn output(&self, original: &Record, parsed: Option<&[u8]>, out: &mut Vec<u8>) {
        let simple = self.p.inject_key_prefix.is_none() && self.p.hash_value_field.is_none() && !self.p.reserve_data;
        if simple {
            out.clear();
            match parsed {
                Some(r) => out.extend_from_slice(r),
                None => msgpack::write_map_header(out, 0),
            }
            return;
        }
        let mut values = parsed.and_then(|r| Record::from_msgpack(r).ok()).unwrap_or_default();
        if let Some(prefix) = &self.p.inject_key_prefix {
            values = Record(
                values
                    .0
                    .into_iter()
                    .map(|(k, v)| (Value::from(format!("{prefix}{}", sluice_event::rubyfmt::to_s(&k))), v))
                    .collect(),
            );
        }
        let mut r = match &self.p.hash_value_field {
            Some(f) => {
                let mut r = Record::new();
                r.insert(f, values.into_value());
                r
            }
            None => values,
        };
        if self.p.reserve_data {
            let mut merged = original.clone();
            for (k, v) in r.0 {
                match merged.0.iter_mut().find(|(mk, _)| *mk == k) {
                    Some(slot) => slot.1 = v,
                    None => merged.0.push((k, v)),
                }
            }
            r = merged;
        }
        out.clear();
        r.write_msgpack(out);
    }

    fn one(
        &self,
        tag: &str,
        time: EventTime,
        rec: RecordRef<'_>,
        s: &mut Scratch,
        b: &mut EventStreamBuilder,
        cx: &FilterCx<'_>,
    ) {
        let error = |cls: &str, msg: String| {
            if self.p.emit_invalid_record_to_error {
                cx.error_event(tag, time, rec, &format!("{cls}: {msg}"));
            }
        };
        let mut original = || Record::from_msgpack(rec.as_bytes()).unwrap_or_default();
        let mut out = Vec::new();
        let raw = match self.key.dig_checked(rec) {
            Ok(r) => r,
            Err(e) => return error("Fluent::Plugin::Parser::ParserError", format!("parse failed {e}")),
        };
        let text: &[u8] = match raw.map(|r| msgpack::read_scalar(r, 0)) {
            None | Some(Ok((msgpack::Scalar::Nil, _))) => {
                if self.p.reserve_data {
                    self.output(&original(), None, &mut out);
                    b.push_raw(time, &out);
                }
                return error("ArgumentError", format!("{} does not exist", self.p.key_name));
            }
            Some(Ok((msgpack::Scalar::Str(t) | msgpack::Scalar::Bin(t), _))) => t,
            Some(_) => {
                let v = super::record_accessor::decode_value(raw.unwrap_or(&[0xc0]));
                return error(
                    "Fluent::Plugin::Parser::ParserError",
                    format!("parse failed no implicit conversion of {} into String", parser::ruby_class(&v)),
                );
            }
        };
        let mut base: Option<Record> = None;
        let mut removed = false;
        let mut pending_errors = Vec::new();
        let r = self.parser.parse(text, s, &mut |t, values| match values {
            Some(values) => {
                let t = if self.p.reserve_time { time } else { t.unwrap_or(time) };
                let orig = base.get_or_insert_with(&mut original);
                if self.p.remove_key_name_field && !removed {
                    self.key.delete(orig);
                    removed = true;
                }
                self.output(orig, Some(values), &mut out);
                b.push_raw(t, &out);
            }
            None => {
                pending_errors.push(format!("pattern not matched with data '{}'", String::from_utf8_lossy(text)));
                if self.p.reserve_data {
                    let orig = base.get_or_insert_with(&mut original);
                    self.output(orig, None, &mut out);
                    b.push_raw(time, &out);
                }
            }
        });
        for e in pending_errors {
            error("Fluent::Plugin::Parser::ParserError", e);
        }
        if let Err(e) = r {
            let msg = if e.is_parser_error() { e.message } else { format!("parse failed {}", e.message) };
            error("Fluent::Plugin::Parser::ParserError", msg);
        }
    }
}

impl Filter for ParserFilter {
    fn filter(&self, tag: &str, es: EventStream, cx: &FilterCx<'_>) -> EventStream {
        let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        let mut b = EventStreamBuilder::with_capacity(es.as_bytes().len() + 64);
        for ev in &es {
            self.one(tag, ev.time, ev.record, &mut s, &mut b, cx);
        }
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        b.finish()
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Filter>> {
    let p = ParserFilterParams::from_element(el, cx.cfg)?;
    let key = match Accessor::parse(&p.key_name) {
        Ok(k) => k,
        Err(e) => {
            cx.cfg.error(el.param("key_name").map_or(el.span, |x| x.value_span), e);
            return None;
        }
    };
    let Some(section) = p.parse.as_ref() else {
        cx.cfg.error(el.span, "<parse> section is required.");
        return None;
    };
    let parser = parser::build(Some(section), None, cx)?;
    Some(Box::new(ParserFilter { key, p, parser, scratch: Mutex::new(Vec::new()) }))
}
