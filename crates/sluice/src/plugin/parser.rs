//! The `<parse>` section: parser plugins and what they share.
//!
//! A [`Parser`] turns one text (a line, a multi-line block, a field value)
//! into zero or more events, writing each record straight as msgpack into a
//! reusable [`Scratch`] buffer, so parsing a line allocates nothing in the
//! common case. What every Fluentd parser shares lives here: the time key
//! and time parsers ([`TimeParser`]: strptime, `%iso8601`, Ruby's
//! `Time.parse`, `unixtime`, `float`, `mixed`), `types` conversions,
//! `null_value_pattern`, `null_empty_string`, `keep_time_key` and
//! `estimate_current_event`.

use super::BuildCx;
use super::formatter::TimeType;
use sluice_config::{Element, Params, Span, StrMap};
use sluice_event::json_decode::{JsonDecoder, Located};
use sluice_event::msgpack::{self, Scalar};
use sluice_event::record::Value;
use sluice_event::{EventTime, Strptime, Zone, rubyfmt, timeparse};
use sluice_ruby::ByteRegex;

/// What went wrong parsing a text, with Fluentd's error class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Ruby class of the error (`Fluent::Plugin::Parser::ParserError`,
    /// `Fluent::TimeParser::TimeParseError`, `CSV::MalformedCSVError`, …).
    pub class: &'static str,
    /// The message.
    pub message: String,
}

/// Fluentd's `ParserError` class name.
pub const PARSER_ERROR: &str = "Fluent::Plugin::Parser::ParserError";
/// Fluentd's `TimeParseError` class name.
pub const TIME_PARSE_ERROR: &str = "Fluent::TimeParser::TimeParseError";

impl ParseError {
    /// A `ParserError`.
    pub fn parser(message: impl Into<String>) -> Self {
        ParseError { class: PARSER_ERROR, message: message.into() }
    }

    /// A `TimeParseError` (apache2 and syslog raise it unwrapped).
    pub fn time(message: impl Into<String>) -> Self {
        ParseError { class: TIME_PARSE_ERROR, message: message.into() }
    }

    /// True for `ParserError`.
    pub fn is_parser_error(&self) -> bool {
        self.class == PARSER_ERROR
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Buffers a caller keeps between parses.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The record being written.
    pub buf: Vec<u8>,
    /// Secondary buffer (conversions).
    pub tmp: Vec<u8>,
    /// JSON decoder state.
    pub json: JsonDecoder,
}

/// Receives each parse result: `(time, Some(record))` for a record (time is
/// `None` when the text had none and `estimate_current_event` is off),
/// `(_, None)` for "pattern not matched".
pub type Emit<'e> = dyn FnMut(Option<EventTime>, Option<&[u8]>) + 'e;

/// A configured parser.
pub trait Parser: Send + Sync + 'static {
    /// Parse `text`, calling `emit` once per result.
    ///
    /// # Errors
    /// What Fluentd's parser would raise; results emitted before the error stand.
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError>;

    /// The multiline parser, for in_tail's first-line grouping.
    fn as_multiline(&self) -> Option<&super::parser_multiline::MultilineParser> {
        None
    }
}

// === parameters ===

/// Parameters every parser has.
#[derive(Debug, Clone, Params)]
pub struct ParserCommonParams {
    /// Convert fields: `name:type` with type `string`, `integer`, `float`, `bool`,
    /// `array[:delimiter]` or `time[:timezone][:format]` (or a JSON object).
    pub types: Option<StrMap>,
    /// Field holding the event time.
    pub time_key: Option<String>,
    /// Values matching this regexp become null.
    pub null_value_pattern: Option<String>,
    /// Empty strings become null.
    #[param(default = "false")]
    pub null_empty_string: bool,
    /// Use the current time when the text has no time field.
    #[param(default = "true")]
    pub estimate_current_event: bool,
    /// Keep the time field in the record.
    #[param(default = "false")]
    pub keep_time_key: bool,
    /// Give up parsing one text after this long (not enforced: sluice's parsers are linear-time
    /// except for regexps that need backtracking).
    pub timeout: Option<sluice_config::TimeSpan>,
    /// How the time field is read: `string` (with `time_format`), `unixtime`, `float` or `mixed`.
    #[param(default = "string")]
    pub time_type: TimeType,
    /// strptime format of the time field (`%iso8601` for ISO 8601); without it Ruby's `Time.parse` rules.
    pub time_format: Option<String>,
    /// Read times without an offset in the local zone.
    #[param(default = "true")]
    pub localtime: bool,
    /// Read times without an offset as UTC.
    #[param(default = "false")]
    pub utc: bool,
    /// Read times without an offset in this zone (`+09:00`, `Asia/Tokyo`).
    pub timezone: Option<String>,
    /// Formats tried after `time_format` with `time_type mixed` (`unixtime` and `float` allowed).
    #[param(default = "[]")]
    pub time_format_fallbacks: Vec<String>,
}

// === time parsing ===

/// A value to read a time from.
#[derive(Debug, Clone, Copy)]
pub enum TimeSrc<'a> {
    /// A string.
    Str(&'a [u8]),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Anything else (nil, booleans, containers): its Ruby `to_s` and class.
    Other(&'a str, &'static str),
}

impl TimeSrc<'_> {
    fn to_s(self) -> String {
        match self {
            TimeSrc::Str(s) => String::from_utf8_lossy(s).into_owned(),
            TimeSrc::Int(i) => i.to_string(),
            TimeSrc::Float(f) => {
                let mut o = Vec::new();
                rubyfmt::write_float(&mut o, f);
                String::from_utf8_lossy(&o).into_owned()
            }
            TimeSrc::Other(s, _) => s.to_string(),
        }
    }

    fn class(self) -> &'static str {
        match self {
            TimeSrc::Str(_) => "String",
            TimeSrc::Int(_) => "Integer",
            TimeSrc::Float(_) => "Float",
            TimeSrc::Other(_, c) => c,
        }
    }
}

/// Reads event times (Fluentd's `TimeParser`, `NumericTimeParser`, `MixedTimeParser`).
#[derive(Debug, Clone)]
pub enum TimeParser {
    /// strptime; times without an offset in `zone`.
    Strptime(Strptime, Zone),
    /// `%iso8601`.
    Iso8601(Zone),
    /// No format: Ruby's `Time.parse`.
    Fuzzy(Zone),
    /// Integer seconds (`value.to_i`).
    Unixtime,
    /// `sec.frac` split on the dot.
    Float,
    /// The first of several that succeeds.
    Mixed(Vec<TimeParser>),
}

impl TimeParser {
    /// Parse `v`; the error message is Fluentd's `TimeParseError` text.
    ///
    /// # Errors
    /// Fluentd's messages (`invalid time format: value = …`, `value must be string: …`).
    pub fn parse(&self, v: TimeSrc<'_>) -> Result<EventTime, String> {
        match self {
            TimeParser::Strptime(..) | TimeParser::Iso8601(_) | TimeParser::Fuzzy(_) => {
                let TimeSrc::Str(s) = v else {
                    return Err(format!("value must be string: {}", v.to_s()));
                };
                let s = String::from_utf8_lossy(s);
                let r = match self {
                    TimeParser::Strptime(f, z) => f.parse(&s, z).map_err(|_| {
                        if f.is_gem_format() {
                            "string doesn't match".to_string()
                        } else {
                            format!("invalid date or strptime format - `{s}' `{}'", f.source())
                        }
                    }),
                    TimeParser::Iso8601(z) => timeparse::parse_iso8601(&s, z),
                    TimeParser::Fuzzy(z) => timeparse::parse_time(&s, z),
                    _ => unreachable!("matched above"),
                };
                r.map_err(|e| format!("invalid time format: value = {s}, error_class = ArgumentError, error = {e}"))
            }
            TimeParser::Unixtime => match v {
                TimeSrc::Str(s) => Ok(EventTime::new(sluice_ruby::str_to_i(&String::from_utf8_lossy(s)), 0)),
                TimeSrc::Int(i) => Ok(EventTime::new(i, 0)),
                TimeSrc::Float(f) => Ok(EventTime::new(f.trunc() as i64, 0)),
                TimeSrc::Other(..) => Err(numeric_error(v)),
            },
            TimeParser::Float => match v {
                TimeSrc::Other(..) => Err(numeric_error(v)),
                _ => Ok(float_time(&v.to_s())),
            },
            TimeParser::Mixed(ps) => {
                for p in ps {
                    if matches!(p, TimeParser::Unixtime | TimeParser::Float) && !ruby_float_ok(v) {
                        continue;
                    }
                    if let Ok(t) = p.parse(v) {
                        return Ok(t);
                    }
                }
                let classes: Vec<&str> = ps
                    .iter()
                    .map(|p| match p {
                        TimeParser::Unixtime | TimeParser::Float => "Fluent::NumericTimeParser",
                        _ => "Fluent::TimeParser",
                    })
                    .collect();
                Err(format!("invalid time format: value = {}, even though fallbacks: {}", v.to_s(), classes.join(",")))
            }
        }
    }
}

fn numeric_error(v: TimeSrc<'_>) -> String {
    format!("value must be a string or a number: {}({})", v.to_s(), v.class())
}

/// Ruby's `Float(value)` succeeds.
fn ruby_float_ok(v: TimeSrc<'_>) -> bool {
    match v {
        TimeSrc::Int(_) | TimeSrc::Float(_) => true,
        TimeSrc::Str(s) => {
            let t = String::from_utf8_lossy(s);
            let t = t.trim().replace('_', "");
            !t.is_empty()
                && (t.parse::<f64>().is_ok_and(f64::is_finite)
                    || t.strip_prefix("0x")
                        .or_else(|| t.strip_prefix("0X"))
                        .is_some_and(|h| i64::from_str_radix(h, 16).is_ok()))
        }
        TimeSrc::Other(..) => false,
    }
}

/// NumericTimeParser's float reading: `to_s.split('.')`, the fraction's
/// first ten characters padded to nine digits.
fn float_time(s: &str) -> EventTime {
    let mut parts = s.splitn(3, '.');
    let sec = sluice_ruby::str_to_i(parts.next().unwrap_or(""));
    let frac: String = parts.next().unwrap_or("0").chars().take(10).collect();
    let frac = if frac.chars().count() < 9 { format!("{frac:0<9}") } else { frac };
    let nsec = sluice_ruby::str_to_i(&frac).clamp(0, i64::from(u32::MAX)) as u32;
    if sec < 0 && nsec > 0 {
        // "-1.5" is (-1 s, 500000000 ns) in Fluentd.
        return EventTime { sec, nsec: nsec.min(999_999_999) };
    }
    EventTime::new(sec, nsec)
}

/// Build a time parser (Fluentd's `time_parser_create`).
pub fn time_parser(
    ty: TimeType,
    format: Option<&str>,
    fallbacks: &[String],
    zone: &Zone,
) -> Result<TimeParser, String> {
    let one = |f: &str| -> Result<TimeParser, String> {
        Ok(match f {
            "%iso8601" => TimeParser::Iso8601(zone.clone()),
            "unixtime" => TimeParser::Unixtime,
            "float" => TimeParser::Float,
            f => TimeParser::Strptime(Strptime::new(f)?, zone.clone()),
        })
    };
    Ok(match ty {
        TimeType::Unixtime => TimeParser::Unixtime,
        TimeType::Float => TimeParser::Float,
        TimeType::Mixed => {
            let mut v = Vec::new();
            if let Some(f) = format {
                v.push(one(f)?);
            }
            for f in fallbacks {
                v.push(one(f)?);
            }
            TimeParser::Mixed(v)
        }
        TimeType::String => match format {
            Some(f) => one(f)?,
            None => TimeParser::Fuzzy(zone.clone()),
        },
    })
}

// === conversions ===

/// One `types` conversion.
#[derive(Debug, Clone)]
pub enum Converter {
    /// `to_s`
    String,
    /// `to_i`
    Integer,
    /// `to_f`
    Float,
    /// true for `true`, `yes`, `1` (any case)
    Bool,
    /// `to_s.split(delimiter)`
    Array(String),
    /// A time (ext 0), or nil if it does not parse.
    Time(TimeParser),
}

impl Converter {
    fn parse(def: &str, zone: &Zone) -> Result<Converter, String> {
        let (ty, opt) = match def.split_once(':') {
            Some((t, o)) => (t, Some(o)),
            None => (def, None),
        };
        Ok(match ty {
            "string" => Converter::String,
            "integer" => Converter::Integer,
            "float" => Converter::Float,
            "bool" => Converter::Bool,
            "array" => Converter::Array(opt.unwrap_or(",").to_string()),
            "time" => {
                let Some(opt) = opt else { return Ok(Converter::Time(TimeParser::Fuzzy(zone.clone()))) };
                // `time:TZ:FORMAT`, `time:FORMAT`, `time:unixtime|float|string|mixed`.
                let (tz, fmt) = match opt.split_once(':') {
                    Some((tz, f)) if Zone::parse(tz).is_ok() && (tz.starts_with(['+', '-']) || tz.contains('/')) => {
                        (Some(Zone::parse(tz).map_err(|e| e.to_string())?), f)
                    }
                    _ => (None, opt),
                };
                let z = tz.unwrap_or_else(|| zone.clone());
                Converter::Time(match fmt {
                    "unixtime" => TimeParser::Unixtime,
                    "float" | "mixed" => TimeParser::Float,
                    "string" => TimeParser::Fuzzy(z),
                    f => time_parser(TimeType::String, Some(f), &[], &z)?,
                })
            }
            _ => return Err(String::new()),
        })
    }

    /// Write the converted `v` (a decoded value).
    fn write(&self, v: &Value, out: &mut Vec<u8>) {
        match self {
            Converter::String => match v {
                Value::String(_) => sluice_event::record::write_value(out, v),
                _ => msgpack::write_str(out, rubyfmt::to_s(v).as_bytes()),
            },
            Converter::Integer => msgpack::write_int(
                out,
                match v {
                    Value::Integer(i) => i.as_i64().unwrap_or(i64::MAX),
                    Value::F64(f) => f.trunc() as i64,
                    Value::F32(f) => f.trunc() as i64,
                    other => sluice_ruby::str_to_i(&rubyfmt::to_s(other)),
                },
            ),
            Converter::Float => msgpack::write_f64(
                out,
                match v {
                    Value::Integer(i) => i.as_f64().unwrap_or(0.0),
                    Value::F64(f) => *f,
                    Value::F32(f) => f64::from(*f),
                    other => sluice_ruby::str_to_f(&rubyfmt::to_s(other)),
                },
            ),
            Converter::Bool => {
                let s = rubyfmt::to_s(v).to_lowercase();
                msgpack::write_bool(out, matches!(s.as_str(), "true" | "yes" | "1"));
            }
            Converter::Array(d) => {
                let s = rubyfmt::to_s(v);
                let parts = ruby_split(s.as_bytes(), d.as_bytes());
                msgpack::write_array_header(out, parts.len());
                for p in parts {
                    msgpack::write_str(out, p);
                }
            }
            Converter::Time(tp) => {
                let src = match v {
                    Value::String(s) => TimeSrc::Str(s.as_bytes()),
                    Value::Integer(i) => TimeSrc::Int(i.as_i64().unwrap_or(0)),
                    Value::F64(f) => TimeSrc::Float(*f),
                    _ => TimeSrc::Other("", "NilClass"),
                };
                match tp.parse(src) {
                    Ok(t) => t.write_ext(out),
                    Err(_) => msgpack::write_nil(out),
                }
            }
        }
    }

    /// Write the converted string `s`.
    fn write_str(&self, s: &[u8], out: &mut Vec<u8>) {
        match self {
            Converter::String => msgpack::write_str(out, s),
            Converter::Array(d) => {
                let parts = ruby_split(s, d.as_bytes());
                msgpack::write_array_header(out, parts.len());
                for p in parts {
                    msgpack::write_str(out, p);
                }
            }
            Converter::Time(tp) => match tp.parse(TimeSrc::Str(s)) {
                Ok(t) => t.write_ext(out),
                Err(_) => msgpack::write_nil(out),
            },
            _ => self.write(&Value::from(String::from_utf8_lossy(s).into_owned()), out),
        }
    }
}

/// Ruby's `String#split(delim)`: trailing empty fields removed; a single
/// space splits on runs of whitespace ignoring leading whitespace; an empty
/// delimiter splits into characters.
pub fn ruby_split<'s>(s: &'s [u8], delim: &[u8]) -> Vec<&'s [u8]> {
    let mut parts: Vec<&[u8]> = if delim == b" " {
        s.split(|c| c.is_ascii_whitespace()).filter(|p| !p.is_empty()).collect()
    } else if delim.is_empty() {
        let text = String::from_utf8_lossy(s);
        if matches!(text, std::borrow::Cow::Owned(_)) {
            s.chunks(1).collect()
        } else {
            let mut v = Vec::new();
            let mut at = 0;
            for c in text.chars() {
                v.push(&s[at..at + c.len_utf8()]);
                at += c.len_utf8();
            }
            v
        }
    } else {
        let mut v = Vec::new();
        let mut at = 0;
        while let Some(p) = memchr::memmem::find(&s[at..], delim) {
            v.push(&s[at..at + p]);
            at += p + delim.len();
        }
        v.push(&s[at..]);
        v
    };
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

// === the shared runtime ===

/// The configured behaviour every parser shares.
#[derive(Debug, Clone)]
pub struct Common {
    /// `time_key`.
    pub time_key: Option<String>,
    /// `keep_time_key`.
    pub keep_time_key: bool,
    /// `estimate_current_event`.
    pub estimate_current_event: bool,
    /// How the time field is read.
    pub time: TimeParser,
    /// The zone for times without an offset.
    pub zone: Zone,
    types: Vec<(String, Converter)>,
    null_value_pattern: Option<ByteRegex>,
    null_empty_string: bool,
}

impl Common {
    /// Configure from the shared parameters.
    pub fn new(p: &ParserCommonParams, el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Common> {
        let (zone, _) = super::formatter::resolve_zone(el, p.localtime, p.utc, p.timezone.as_deref(), cx)?;
        let span = |n: &str| el.param(n).map_or(el.span, |x| x.value_span);
        if p.time_type == TimeType::Mixed && p.time_format.is_none() && p.time_format_fallbacks.is_empty() {
            cx.cfg.error(span("time_type"), "time_type is :mixed but time_format and time_format_fallbacks is empty.");
            return None;
        }
        let explicit_zone = p.timezone.is_some() || (el.has("utc") && p.utc) || (el.has("localtime") && !p.localtime);
        if p.time_type == TimeType::String && p.time_format.is_none() && explicit_zone {
            cx.cfg.error(el.span, "specifying timezone requires time format");
            return None;
        }
        let time = match time_parser(p.time_type, p.time_format.as_deref(), &p.time_format_fallbacks, &zone) {
            Ok(t) => t,
            Err(e) => {
                cx.cfg.error(span("time_format"), e);
                return None;
            }
        };
        let mut types = Vec::new();
        for (k, def) in p.types.as_ref().map(|m| m.0.as_slice()).unwrap_or(&[]) {
            match Converter::parse(def, &zone) {
                Ok(c) => match types.iter_mut().find(|(n, _)| n == k) {
                    Some(slot) => *slot = (k.clone(), c),
                    None => types.push((k.clone(), c)),
                },
                Err(e) => {
                    let ty = def.split(':').next().unwrap_or("");
                    let msg =
                        if e.is_empty() { format!("unknown value conversion for key:'{k}', type:'{ty}'") } else { e };
                    cx.cfg.error(span("types"), msg);
                    return None;
                }
            }
        }
        let null_value_pattern = match &p.null_value_pattern {
            Some(s) => match ByteRegex::parse_literal(s) {
                Ok(r) => Some(r),
                Err(e) => {
                    cx.cfg.error(span("null_value_pattern"), e);
                    return None;
                }
            },
            None => None,
        };
        Some(Common {
            time_key: p.time_key.clone(),
            keep_time_key: p.keep_time_key,
            estimate_current_event: p.estimate_current_event,
            time,
            zone,
            types,
            null_value_pattern,
            null_empty_string: p.null_empty_string,
        })
    }

    /// True if records need `convert_values`.
    pub fn converts(&self) -> bool {
        !self.types.is_empty() || self.null_value_pattern.is_some() || self.null_empty_string
    }

    fn is_null(&self, s: &[u8]) -> bool {
        (self.null_empty_string && s.is_empty()) || self.null_value_pattern.as_ref().is_some_and(|r| r.is_match(s))
    }

    fn converter(&self, key: &[u8]) -> Option<&Converter> {
        self.types.iter().find(|(k, _)| k.as_bytes() == key).map(|(_, c)| c)
    }

    /// Start a record of string fields (regexp-like parsers).
    pub fn fields<'c, 'o>(&'c self, out: &'o mut Vec<u8>) -> FieldWriter<'c, 'o> {
        out.clear();
        out.push(0x80);
        FieldWriter { common: self, out, n: 0, time: None }
    }

    /// The time when the text had no time field.
    pub fn default_time(&self) -> Option<EventTime> {
        self.estimate_current_event.then(EventTime::now)
    }

    /// Finish a typed record (json, msgpack) in `buf`: take the time field
    /// out (unless `keep_time_key`) and apply `types`/null rules. `tmp` is scratch.
    ///
    /// # Errors
    /// A `ParserError` when the time field does not parse.
    pub fn finish_typed(&self, buf: &mut Vec<u8>, tmp: &mut Vec<u8>) -> Result<Option<EventTime>, ParseError> {
        self.finish_typed_at(buf, tmp, Located::Unknown)
    }

    /// [`Common::finish_typed`] when the time field's place is already known.
    ///
    /// # Errors
    /// A `ParserError` when the time field does not parse.
    pub fn finish_typed_at(
        &self,
        buf: &mut Vec<u8>,
        tmp: &mut Vec<u8>,
        located: Located,
    ) -> Result<Option<EventTime>, ParseError> {
        let mut time = None;
        if let Some(key) = &self.time_key {
            let found = match located {
                Located::At(k, vs, ve) => Some((k, vs, ve)),
                Located::Absent => None,
                Located::Unknown => find_key(buf, key.as_bytes()),
            };
            if let Some((kstart, vstart, vend)) = found {
                let t = {
                    let raw = &buf[vstart..vend];
                    let other;
                    let src = match msgpack::read_scalar(raw, 0) {
                        Ok((Scalar::Str(s), _)) => TimeSrc::Str(s),
                        Ok((Scalar::Int(i), _)) => TimeSrc::Int(i),
                        Ok((Scalar::UInt(u), _)) => TimeSrc::Int(u as i64),
                        Ok((Scalar::F64(f), _)) => TimeSrc::Float(f),
                        Ok((Scalar::F32(f), _)) => TimeSrc::Float(f64::from(f)),
                        _ => {
                            let v = sluice_event::record::decode_value(raw).unwrap_or(Value::Nil);
                            other = rubyfmt::to_s(&v);
                            TimeSrc::Other(&other, ruby_class(&v))
                        }
                    };
                    self.time.parse(src).map_err(ParseError::parser)?
                };
                time = Some(t);
                if !self.keep_time_key {
                    let n = msgpack::read_map_len(buf, 0).map_or(1, |(n, _)| n);
                    buf.drain(kstart..vend);
                    let old = msgpack::map_header_size(n);
                    let mut hdr = [0u8; 5];
                    let mut v = Vec::new();
                    msgpack::write_map_header(&mut v, n - 1);
                    hdr[..v.len()].copy_from_slice(&v);
                    buf.splice(0..old, hdr[..v.len()].iter().copied());
                }
            }
        }
        if self.converts() {
            self.convert_typed(buf, tmp);
        }
        Ok(time.or_else(|| self.default_time()))
    }

    fn convert_typed(&self, buf: &mut Vec<u8>, tmp: &mut Vec<u8>) {
        let Ok((n, mut at)) = msgpack::read_map_len(buf, 0) else { return };
        tmp.clear();
        msgpack::write_map_header(tmp, n);
        for _ in 0..n {
            let Ok(kend) = msgpack::skip(buf, at) else { return };
            let Ok(vend) = msgpack::skip(buf, kend) else { return };
            tmp.extend_from_slice(&buf[at..kend]);
            let key = msgpack::read_str(buf, at).map(|(k, _)| k).unwrap_or(b"");
            let raw = &buf[kend..vend];
            match msgpack::read_scalar(raw, 0) {
                Ok((Scalar::Nil | Scalar::Bool(false), _)) => tmp.extend_from_slice(raw),
                Ok((Scalar::Str(s), _)) if self.is_null(s) => msgpack::write_nil(tmp),
                _ => match self.converter(key) {
                    Some(c) => match sluice_event::record::decode_value(raw) {
                        Ok(v) => c.write(&v, tmp),
                        Err(_) => tmp.extend_from_slice(raw),
                    },
                    None => tmp.extend_from_slice(raw),
                },
            }
            at = vend;
        }
        std::mem::swap(buf, tmp);
    }
}

/// The first top-level pair whose key is `key`: key start, value start, value end.
fn find_key(buf: &[u8], key: &[u8]) -> Option<(usize, usize, usize)> {
    let (n, mut at) = msgpack::read_map_len(buf, 0).ok()?;
    for _ in 0..n {
        let kstart = at;
        let kend = msgpack::skip(buf, at).ok()?;
        let vend = msgpack::skip(buf, kend).ok()?;
        if msgpack::read_str(buf, kstart).is_ok_and(|(k, _)| k == key) {
            return Some((kstart, kend, vend));
        }
        at = vend;
    }
    None
}

/// Ruby class name of a decoded value (for error messages).
pub fn ruby_class(v: &Value) -> &'static str {
    match v {
        Value::Nil => "NilClass",
        Value::Boolean(true) => "TrueClass",
        Value::Boolean(false) => "FalseClass",
        Value::Integer(_) => "Integer",
        Value::F32(_) | Value::F64(_) => "Float",
        Value::String(_) | Value::Binary(_) => "String",
        Value::Array(_) => "Array",
        Value::Map(_) => "Hash",
        Value::Ext(..) => "Fluent::EventTime",
    }
}

/// Writes a record of string fields, applying the time key and conversions.
pub struct FieldWriter<'c, 'o> {
    common: &'c Common,
    out: &'o mut Vec<u8>,
    n: usize,
    time: Option<Result<EventTime, String>>,
}

impl FieldWriter<'_, '_> {
    /// Add a field.
    pub fn field(&mut self, key: &[u8], value: &[u8]) {
        let c = self.common;
        if c.time_key.as_deref().is_some_and(|k| k.as_bytes() == key) && self.time.is_none() {
            self.time = Some(c.time.parse(TimeSrc::Str(value)));
            if !c.keep_time_key {
                return;
            }
        }
        msgpack::write_str(self.out, key);
        if c.is_null(value) {
            msgpack::write_nil(self.out);
        } else if let Some(conv) = c.converter(key) {
            conv.write_str(value, self.out);
        } else {
            msgpack::write_str(self.out, value);
        }
        self.n += 1;
    }

    /// Add a field whose value is already msgpack (typed by the parser).
    pub fn raw_field(&mut self, key: &[u8], value: &[u8]) {
        msgpack::write_str(self.out, key);
        self.out.extend_from_slice(value);
        self.n += 1;
    }

    /// Finish: the event time (`None` if absent and not estimated).
    ///
    /// # Errors
    /// A `ParserError` when the time field does not parse.
    pub fn finish(self) -> Result<Option<EventTime>, ParseError> {
        msgpack::patch_container_header(self.out, 0, self.n, true);
        match self.time {
            Some(Ok(t)) => Ok(Some(t)),
            Some(Err(e)) => Err(ParseError::parser(e)),
            None => Ok(self.common.default_time()),
        }
    }
}

// === building ===

/// Build the parser for a `<parse>` section (`default_type` when it has no `@type`).
pub fn build(
    section: Option<&Element>,
    default_type: Option<&str>,
    cx: &mut BuildCx<'_, '_>,
) -> Option<Box<dyn Parser>> {
    let empty;
    let el = match section {
        Some(e) => e,
        None => {
            let mut e = Element::new("parse", "");
            e.span = Span::NONE;
            empty = e;
            &empty
        }
    };
    let Some(ty) = el.type_name().or(default_type).map(String::from) else {
        cx.cfg.error(el.span, "'@type' parameter is required, in section parse");
        return None;
    };
    let Some(def) = super::registry::parser(&ty) else {
        let names: Vec<&str> = super::registry::registry().parsers.iter().map(|d| d.name).collect();
        let span = el.param("@type").or_else(|| el.param("type")).map_or(el.span, |p| p.value_span);
        let hint = sluice_config::diag::did_you_mean(&ty, names.iter().copied());
        let d = cx.cfg.error(span, format!("Unknown parser plugin '{ty}'"));
        if let Some(h) = hint {
            d.help(format!("did you mean `{h}`?"));
        }
        return None;
    };
    cx.cfg.path.push(el.display_name());
    let r = (def.build)(el, cx);
    cx.cfg.path.pop();
    r
}

/// Read a parser's params with Fluentd's per-parser defaults (`config_set_default`).
pub fn read_params<P: Params>(
    el: &Element,
    defaults: &[(&'static str, &'static str)],
    cx: &mut BuildCx<'_, '_>,
) -> Option<P> {
    let saved = std::mem::replace(&mut cx.cfg.defaults, defaults.to_vec());
    let p = P::from_element(el, cx.cfg);
    cx.cfg.defaults = saved;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_time_is_fluentds_split() {
        assert_eq!(float_time("1362052800.5"), EventTime::new(1_362_052_800, 500_000_000));
        assert_eq!(float_time("-1.5"), EventTime { sec: -1, nsec: 500_000_000 });
        assert_eq!(float_time("1.5e3"), EventTime::new(1, 5));
        assert_eq!(float_time("2013-02-28"), EventTime::new(2013, 0));
        assert_eq!(float_time(""), EventTime::new(0, 0));
        assert_eq!(float_time("100.1"), EventTime::new(100, 100_000_000));
    }

    #[test]
    fn ruby_split_semantics() {
        assert_eq!(ruby_split(b"a|b||", b"|"), vec![&b"a"[..], b"b"]);
        assert_eq!(ruby_split(b"|a", b"|"), vec![&b""[..], b"a"]);
        assert!(ruby_split(b"", b",").is_empty());
        assert_eq!(ruby_split(b"  x   y z", b" "), vec![&b"x"[..], b"y", b"z"]);
        assert_eq!(ruby_split("aé".as_bytes(), b""), vec![&b"a"[..], "é".as_bytes()]);
    }

    #[test]
    fn numeric_and_mixed_time_parsers() {
        assert_eq!(TimeParser::Unixtime.parse(TimeSrc::Str(b"1362052800.999")), Ok(EventTime::new(1_362_052_800, 0)));
        assert_eq!(TimeParser::Unixtime.parse(TimeSrc::Str(b"x")), Ok(EventTime::new(0, 0)));
        assert_eq!(
            TimeParser::Float.parse(TimeSrc::Float(1_362_052_800.25)),
            Ok(EventTime::new(1_362_052_800, 250_000_000))
        );
        assert_eq!(
            TimeParser::Float.parse(TimeSrc::Other("", "NilClass")),
            Err("value must be a string or a number: (NilClass)".into())
        );
        let s = time_parser(TimeType::String, Some("%Y"), &[], &Zone::Utc).unwrap();
        assert_eq!(s.parse(TimeSrc::Int(5)), Err("value must be string: 5".into()));
        assert_eq!(
            s.parse(TimeSrc::Str(b"x")),
            Err("invalid time format: value = x, error_class = ArgumentError, error = string doesn't match".into())
        );
        let m = time_parser(TimeType::Mixed, Some("%Y-%m-%d"), &["unixtime".into()], &Zone::Utc).unwrap();
        assert_eq!(m.parse(TimeSrc::Str(b"2013-02-28")), Ok(EventTime::new(1_362_009_600, 0)));
        assert_eq!(m.parse(TimeSrc::Str(b"1362052800")), Ok(EventTime::new(1_362_052_800, 0)));
        assert_eq!(
            m.parse(TimeSrc::Str(b"zz")),
            Err("invalid time format: value = zz, even though fallbacks: Fluent::TimeParser,Fluent::NumericTimeParser"
                .into())
        );
    }
}
