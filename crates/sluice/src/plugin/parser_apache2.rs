//! `<parse> @type apache2`: Apache combined logs with typed fields: `code`
//! and `size` integers, `-` as null for host, user, size, referer and agent.
//! The time format is fixed; `types`, `null_*` and `time_key` do not apply.

use super::BuildCx;
use super::formatter::TimeType;
use super::parser::{Emit, ParseError, Parser, ParserCommonParams, Scratch, TimeParser, TimeSrc, time_parser};
use sluice_config::{Element, Params};
use sluice_event::msgpack;
use sluice_ruby::ByteRegex;

/// Fluentd's apache2 expression, verbatim.
pub const EXPRESSION: &str = r#"^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>(?:[^\"]|\\")*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>(?:[^\"]|\\")*)" "(?<agent>(?:[^\"]|\\")*)")?$"#;

/// Parses Apache combined logs.
#[derive(Debug, Clone, Params)]
pub struct Apache2ParserParams {
    /// Shared parser parameters (only `keep_time_key` has an effect).
    #[flatten]
    pub common: ParserCommonParams,
}

/// The apache2 parser.
pub struct Apache2Parser {
    re: ByteRegex,
    time: TimeParser,
    keep_time_key: bool,
}

impl Parser for Apache2Parser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let Some(g) = self.re.captures_at(text, 0) else {
            emit(None, None);
            return Ok(());
        };
        let get = |i: usize| g.get(i).copied().flatten().map(|(a, b)| &text[a..b]);
        let (host, user, time, method, path, code, size, referer, agent) =
            (get(1), get(2), get(3), get(4), get(5), get(6), get(7), get(8), get(9));
        let t = self.time.parse(TimeSrc::Str(time.unwrap_or(b""))).map_err(ParseError::time)?;
        let out = &mut s.buf;
        out.clear();
        msgpack::write_map_header(out, if self.keep_time_key { 9 } else { 8 });
        let dash_nil = |out: &mut Vec<u8>, v: Option<&[u8]>| match v {
            Some(v) if v != b"-" => msgpack::write_str(out, v),
            _ => msgpack::write_nil(out),
        };
        msgpack::write_str(out, b"host");
        dash_nil(out, host);
        msgpack::write_str(out, b"user");
        dash_nil(out, user);
        msgpack::write_str(out, b"method");
        match method {
            Some(m) => msgpack::write_str(out, m),
            None => msgpack::write_nil(out),
        }
        msgpack::write_str(out, b"path");
        match path {
            Some(p) => msgpack::write_str(out, p),
            None => msgpack::write_nil(out),
        }
        msgpack::write_str(out, b"code");
        let c = sluice_ruby::str_to_i(&String::from_utf8_lossy(code.unwrap_or(b"")));
        if c == 0 {
            msgpack::write_nil(out)
        } else {
            msgpack::write_int(out, c)
        }
        msgpack::write_str(out, b"size");
        match size {
            Some(b"-") | None => msgpack::write_nil(out),
            Some(v) => msgpack::write_int(out, sluice_ruby::str_to_i(&String::from_utf8_lossy(v))),
        }
        msgpack::write_str(out, b"referer");
        dash_nil(out, referer);
        msgpack::write_str(out, b"agent");
        dash_nil(out, agent);
        if self.keep_time_key {
            msgpack::write_str(out, b"time");
            msgpack::write_str(out, time.unwrap_or(b""));
        }
        emit(Some(t), Some(&s.buf));
        Ok(())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    let p = Apache2ParserParams::from_element(el, cx.cfg)?;
    let (zone, _) =
        super::formatter::resolve_zone(el, p.common.localtime, p.common.utc, p.common.timezone.as_deref(), cx)?;
    let re = ByteRegex::new(EXPRESSION, sluice_ruby::RubyFlags::default()).expect("a valid built-in expression");
    let time =
        time_parser(TimeType::String, Some("%d/%b/%Y:%H:%M:%S %z"), &[], &zone).expect("a valid built-in format");
    Some(Box::new(Apache2Parser { re, time, keep_time_key: p.common.keep_time_key }))
}
