//! `<parse> @type syslog`: RFC 3164 and RFC 5424 lines, with Fluentd's two
//! engines (`parser_engine regexp`, the default, and `string`), whose field
//! splitting and key order differ exactly as Fluentd's do.
//!
//! Records carry `host`, `ident`, `pid`, `message` (RFC 3164) or `host`,
//! `ident`, `pid`, `msgid`, `extradata`, `message` (RFC 5424), plus `pri`
//! with `with_priority` and the raw `time` with `keep_time_key`. A time
//! that does not parse is an error (Fluentd's unwrapped `TimeParseError`).

use super::BuildCx;
use super::formatter::TimeType;
use super::parser::{
    Emit, ParseError, Parser, ParserCommonParams, Scratch, TimeParser, TimeSrc, read_params, time_parser,
};
use sluice_config::{Element, ParamEnum, Params};
use sluice_event::{EventTime, msgpack};
use sluice_ruby::{ByteRegex, RubyFlags};

const RFC3164_BODY: &str = r"(?<host>[^ ]*) (?<ident>[^ :\[]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$";
const RFC5424_BODY: &str = r"(?<host>[!-~]{1,255}) (?<ident>[!-~]{1,48}) (?<pid>[!-~]{1,128}) (?<msgid>[!-~]{1,32}) (?<extradata>(?:\-|(?:\[.*?(?<!\\)\])))(?: (?<message>.+))?\z";

/// Which syslog format lines use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum MessageFormat {
    /// BSD syslog.
    Rfc3164,
    /// IETF syslog.
    Rfc5424,
    /// Decide per line.
    Auto,
}

/// How lines are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum Engine {
    /// Fluentd's regexps.
    Regexp,
    /// Fluentd's hand-written splitter.
    String,
}

/// Parses syslog lines.
#[derive(Debug, Clone, Params)]
pub struct SyslogParserParams {
    /// Lines start with `<PRI>`.
    #[param(default = "false")]
    pub with_priority: bool,
    /// `rfc3164`, `rfc5424` or `auto`.
    #[param(default = "rfc3164")]
    pub message_format: MessageFormat,
    /// strptime format of RFC 5424 timestamps (unless `time_format` is given).
    #[param(default = "%Y-%m-%dT%H:%M:%S.%L%z")]
    pub rfc5424_time_format: String,
    /// `regexp` or `string`.
    #[param(default = "regexp", alias = "parser_type")]
    pub parser_engine: Engine,
    /// string engine: `host ident message` lines without a colon still have an ident.
    #[param(default = "true")]
    pub support_colonless_ident: bool,
    /// Shared parser parameters (`time_format` defaults to `%b %d %H:%M:%S`).
    #[flatten]
    pub common: ParserCommonParams,
}

/// The syslog parser.
pub struct SyslogParser {
    with_priority: bool,
    format: MessageFormat,
    engine: Engine,
    colonless: bool,
    keep_time_key: bool,
    t3164: TimeParser,
    t3164_fmt: String,
    t5424: TimeParser,
    t5424_fmt: String,
    t5424_fallback: TimeParser,
    re3164: ByteRegex,
    re5424: ByteRegex,
}

fn space_count(fmt: &str) -> usize {
    let mut n = 0;
    let mut prev = false;
    for c in fmt.chars() {
        if c == ' ' {
            if !prev {
                n += 1;
            }
            prev = true;
        } else {
            prev = false;
        }
    }
    n + 1
}

fn find(text: &[u8], c: u8, from: usize) -> Option<usize> {
    text.get(from..).and_then(|r| memchr::memchr(c, r)).map(|p| p + from)
}

fn chomp(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r\n").or_else(|| s.strip_suffix(b"\n")).or_else(|| s.strip_suffix(b"\r")).unwrap_or(s)
}

fn nil_error() -> ParseError {
    ParseError { class: "NoMethodError", message: "undefined method '+' for nil".into() }
}

fn squeeze_spaces(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if !(c == b' ' && out.last() == Some(&b' ')) {
            out.push(c);
        }
    }
    out
}

/// Pairs written in order, with the count patched at the end.
struct Rec<'o> {
    out: &'o mut Vec<u8>,
    n: usize,
}

impl<'o> Rec<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.clear();
        out.push(0x80);
        Rec { out, n: 0 }
    }
    fn str(&mut self, k: &str, v: &[u8]) {
        msgpack::write_str(self.out, k.as_bytes());
        msgpack::write_str(self.out, v);
        self.n += 1;
    }
    fn int(&mut self, k: &str, v: i64) {
        msgpack::write_str(self.out, k.as_bytes());
        msgpack::write_int(self.out, v);
        self.n += 1;
    }
    fn done(self) {
        msgpack::patch_container_header(self.out, 0, self.n, true);
    }
}

impl SyslogParser {
    /// The end of the time field: Fluentd's walk over `count` space-separated parts.
    fn time_end(text: &[u8], idx: usize, count: usize) -> Result<(usize, bool), ParseError> {
        let mut i: isize = idx as isize - 1;
        let mut sq = false;
        for _ in 0..count {
            while text.get((i + 1) as usize) == Some(&b' ') {
                sq = true;
                i += 1;
            }
            i = find(text, b' ', (i + 1) as usize).ok_or_else(nil_error)? as isize;
        }
        Ok((i as usize, sq))
    }

    fn parse_time(&self, tp: &TimeParser, s: &[u8]) -> Result<EventTime, ParseError> {
        tp.parse(TimeSrc::Str(s)).map_err(ParseError::time)
    }

    fn regex_3164(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let mut rec = Rec::new(&mut s.buf);
        let mut idx = 0;
        if self.with_priority {
            let Some(gt) = pri_end(text, 3) else {
                emit(None, None);
                return Ok(());
            };
            rec.int("pri", atoi(&text[1..gt]));
            idx = gt + 1;
        }
        let (i, sq) = Self::time_end(text, idx, space_count(&self.t3164_fmt))?;
        let raw = &text[idx..i];
        let squeezed;
        let time_str: &[u8] = if sq {
            squeezed = squeeze_spaces(raw);
            &squeezed
        } else {
            raw
        };
        let t = self.parse_time(&self.t3164, time_str)?;
        if self.keep_time_key {
            rec.str("time", time_str);
        }
        let Some(g) = self.re3164.captures_at(text, i + 1) else {
            emit(None, None);
            return Ok(());
        };
        for (gi, name) in self.re3164.group_names().iter().enumerate() {
            if let (Some(name), Some(Some((a, b)))) = (name, g.get(gi)) {
                let v = &text[*a..*b];
                rec.str(name, if name == "message" { chomp(v) } else { v });
            }
        }
        rec.done();
        emit(Some(t), Some(&s.buf));
        Ok(())
    }

    fn regex_5424(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let mut rec = Rec::new(&mut s.buf);
        let mut idx = 0;
        if self.with_priority {
            // ^<(\d{1,3})>\d\d{0,2}\s
            let Some(gt) = pri_end(text, 3) else {
                emit(None, None);
                return Ok(());
            };
            let mut j = gt + 1;
            let ds = j;
            while j < text.len() && text[j].is_ascii_digit() && j - ds < 3 {
                j += 1;
            }
            if j == ds || !text.get(j).is_some_and(u8::is_ascii_whitespace) {
                emit(None, None);
                return Ok(());
            }
            rec.int("pri", atoi(&text[1..gt]));
            idx = j + 1;
        }
        let (i, _) = Self::time_end(text, idx, space_count(&self.t5424_fmt))?;
        let time_str = &text[idx..i];
        let t = match self.parse_time(&self.t5424, time_str) {
            Ok(t) => t,
            Err(_) => self.parse_time(&self.t5424_fallback, time_str)?,
        };
        if self.keep_time_key {
            rec.str("time", time_str);
        }
        let Some(g) = self.re5424.captures_at(text, i + 1) else {
            emit(None, None);
            return Ok(());
        };
        for (gi, name) in self.re5424.group_names().iter().enumerate() {
            if let (Some(name), Some(Some((a, b)))) = (name, g.get(gi)) {
                let v = &text[*a..*b];
                rec.str(name, if name == "message" { chomp(v) } else { v });
            }
        }
        rec.done();
        emit(Some(t), Some(&s.buf));
        Ok(())
    }

    fn string_3164(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let mut cursor = 0;
        let mut pri = None;
        if self.with_priority {
            if text.first() != Some(&b'<') {
                emit(None, None);
                return Ok(());
            }
            match find(text, b'>', 1) {
                Some(i) if i >= 2 => {
                    pri = Some(atoi(&text[1..i]));
                    cursor = i + 1;
                }
                _ => {
                    emit(None, None);
                    return Ok(());
                }
            }
        }
        let time_str: Vec<u8>;
        if self.t3164_fmt == "%b %d %H:%M:%S" || self.t3164_fmt == "%b %d %H:%M:%S.%N" {
            match text.get(cursor + 15) {
                Some(b' ') => {
                    time_str = text[cursor..cursor + 15].to_vec();
                    cursor += 16;
                }
                Some(b'.') => {
                    let Some(sp) = find(text, b' ', cursor + 15) else {
                        emit(None, None);
                        return Ok(());
                    };
                    time_str = text[cursor..sp].to_vec();
                    cursor = sp + 1;
                }
                _ => {
                    emit(None, None);
                    return Ok(());
                }
            }
        } else {
            let (i, sq) = Self::time_end(text, cursor, space_count(&self.t3164_fmt))?;
            if sq {
                // Fluentd's string engine fails here (an undefined variable).
                return Err(ParseError {
                    class: "NameError",
                    message: "undefined local variable or method 'idx'".into(),
                });
            }
            time_str = text[cursor..i].to_vec();
            cursor = i + 1;
        }
        let Some(i) = find(text, b' ', cursor) else {
            emit(None, None);
            return Ok(());
        };
        let mut rec = Rec::new(&mut s.buf);
        rec.str("host", &text[cursor..i]);
        if let Some(p) = pri {
            rec.int("pri", p);
        }
        cursor = i + 1;
        let msg: &[u8] = match find(text, b' ', cursor) {
            None => &text[cursor.min(text.len())..],
            Some(i) if text[i - 1] == b':' => {
                if i >= 2 && text[i - 2] == b']' {
                    match find(text, b'[', cursor).filter(|lb| *lb < i) {
                        Some(lb) => {
                            rec.str("ident", &text[cursor..lb]);
                            rec.str("pid", &text[lb + 1..i - 2]);
                        }
                        None => rec.str("ident", &text[cursor..i - 1]),
                    }
                } else {
                    rec.str("ident", &text[cursor..i - 1]);
                }
                &text[i + 1..]
            }
            Some(i) if self.colonless => {
                if text[i - 1] == b']' {
                    match find(text, b'[', cursor).filter(|lb| *lb < i) {
                        Some(lb) => {
                            rec.str("ident", &text[cursor..lb]);
                            rec.str("pid", &text[lb + 1..i - 1]);
                        }
                        None => rec.str("ident", &text[cursor..i]),
                    }
                } else {
                    rec.str("ident", &text[cursor..i]);
                }
                &text[i + 1..]
            }
            Some(_) => &text[cursor..],
        };
        rec.str("message", chomp(msg));
        let t = self.parse_time(&self.t3164, &time_str)?;
        if self.keep_time_key {
            rec.str("time", &time_str);
        }
        rec.done();
        emit(Some(t), Some(&s.buf));
        Ok(())
    }

    fn string_5424(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let mut cursor = 0;
        let mut pri = None;
        if self.with_priority {
            if text.first() != Some(&b'<') {
                emit(None, None);
                return Ok(());
            }
            match find(text, b'>', 1) {
                Some(i) if i >= 2 => {
                    pri = Some(atoi(&text[1..i]));
                    let Some(sp) = find(text, b' ', i) else {
                        emit(None, None);
                        return Ok(());
                    };
                    cursor = sp + 1;
                }
                _ => {
                    emit(None, None);
                    return Ok(());
                }
            }
        }
        let mut tok = || -> Option<&[u8]> {
            let i = find(text, b' ', cursor)?;
            let t = &text[cursor..i];
            cursor = i + 1;
            Some(t)
        };
        let (Some(time_str), Some(host), Some(ident), Some(pid), Some(msgid)) = (tok(), tok(), tok(), tok(), tok())
        else {
            emit(None, None);
            return Ok(());
        };
        let mut rec = Rec::new(&mut s.buf);
        rec.str("host", host);
        rec.str("ident", ident);
        rec.str("pid", pid);
        rec.str("msgid", msgid);
        if let Some(p) = pri {
            rec.int("pri", p);
        }
        if text.get(cursor) == Some(&b'-') {
            rec.str("extradata", b"-");
            cursor += 1;
        } else {
            let end = memchr::memmem::find(&text[cursor.min(text.len())..], b"] ").map(|p| p + cursor);
            let raw = match end {
                Some(j) => {
                    let r = &text[cursor..=j];
                    cursor = j + 1;
                    r
                }
                None => {
                    let r = &text[cursor.min(text.len())..];
                    cursor = text.len();
                    r
                }
            };
            let cleaned: Vec<u8> = raw.iter().copied().filter(|c| *c != b'\\').collect();
            rec.str("extradata", &cleaned);
        }
        if cursor < text.len() {
            rec.str("message", chomp(text.get(cursor + 1..).unwrap_or(b"")));
        }
        let t = match self.parse_time(&self.t5424, time_str) {
            Ok(t) => t,
            Err(_) => self.parse_time(&self.t5424_fallback, time_str)?,
        };
        if self.keep_time_key {
            rec.str("time", time_str);
        }
        rec.done();
        emit(Some(t), Some(&s.buf));
        Ok(())
    }
}

/// `^<(\d{1,max})>`: the index of `>`.
fn pri_end(text: &[u8], max: usize) -> Option<usize> {
    if text.first() != Some(&b'<') {
        return None;
    }
    let mut j = 1;
    while j < text.len() && text[j].is_ascii_digit() && j - 1 < max {
        j += 1;
    }
    (j > 1 && text.get(j) == Some(&b'>')).then_some(j)
}

fn atoi(s: &[u8]) -> i64 {
    sluice_ruby::str_to_i(&String::from_utf8_lossy(s))
}

/// `^\<[0-9]{1,3}\>[1-9]\d{0,2}`
fn looks_rfc5424(text: &[u8]) -> bool {
    pri_end(text, 3).is_some_and(|gt| text.get(gt + 1).is_some_and(|c| (b'1'..=b'9').contains(c)))
}

impl Parser for SyslogParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let rfc5424 = match self.format {
            MessageFormat::Rfc3164 => false,
            MessageFormat::Rfc5424 => true,
            MessageFormat::Auto => looks_rfc5424(text),
        };
        match (self.engine, rfc5424) {
            (Engine::Regexp, false) => self.regex_3164(text, s, emit),
            (Engine::Regexp, true) => self.regex_5424(text, s, emit),
            (Engine::String, false) => self.string_3164(text, s, emit),
            (Engine::String, true) => self.string_5424(text, s, emit),
        }
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    let p: SyslogParserParams = read_params(el, &[("time_format", "%b %d %H:%M:%S")], cx)?;
    let (zone, _) =
        super::formatter::resolve_zone(el, p.common.localtime, p.common.utc, p.common.timezone.as_deref(), cx)?;
    let span = el.param("time_format").map_or(el.span, |x| x.value_span);
    let f3164 = p.common.time_format.clone().unwrap_or_else(|| "%b %d %H:%M:%S".into());
    let f5424 = if el.has("time_format") { f3164.clone() } else { p.rfc5424_time_format.clone() };
    let mk = |f: &str| time_parser(TimeType::String, Some(f), &[], &zone);
    let (t3164, t5424, fallback) = match (mk(&f3164), mk(&f5424), mk("%Y-%m-%dT%H:%M:%S%z")) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            cx.cfg.error(span, e);
            return None;
        }
    };
    let re3164 = ByteRegex::new(RFC3164_BODY, RubyFlags::default()).expect("a valid built-in expression");
    let re5424 = ByteRegex::new(RFC5424_BODY, RubyFlags { multiline: true, ..RubyFlags::default() })
        .expect("a valid built-in expression");
    Some(Box::new(SyslogParser {
        with_priority: p.with_priority,
        format: p.message_format,
        engine: p.parser_engine,
        colonless: p.support_colonless_ident,
        keep_time_key: p.common.keep_time_key,
        t3164,
        t3164_fmt: f3164,
        t5424,
        t5424_fmt: f5424,
        t5424_fallback: fallback,
        re3164,
        re5424,
    }))
}
