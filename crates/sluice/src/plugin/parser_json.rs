//! `<parse> @type json`: one JSON object per text (an array gives one record
//! per object element).
//!
//! JSON is transcoded straight into the record's msgpack by
//! [`JsonDecoder`](sluice_event::json_decode::JsonDecoder), with Oj's
//! leniencies (Fluentd's default `json_parser`). The `time` field is read
//! as a float by default (`time_type float`): `1362020400.5` and
//! `"1362020400.5"` both work; with `time_format` it is read as a string.

use super::BuildCx;
use super::parser::{Common, Emit, ParseError, Parser, ParserCommonParams, Scratch, read_params};
use sluice_config::{Element, ParamEnum, Params, Size};
use sluice_event::json_decode::Located;
use sluice_event::msgpack::{self, Kind};

/// Which JSON library Fluentd would use (sluice has one parser for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum JsonLib {
    /// Oj (Fluentd's default).
    Oj,
    /// yajl.
    Yajl,
    /// Ruby's json.
    Json,
}

/// Parses JSON objects.
#[derive(Debug, Clone, Params)]
pub struct JsonParserParams {
    /// The JSON library (accepted for compatibility; sluice's parser is Oj-compatible).
    #[param(default = "oj")]
    pub json_parser: JsonLib,
    /// Read size for streamed input (accepted for compatibility).
    #[param(default = "8192")]
    pub stream_buffer_size: Size,
    /// Shared parser parameters.
    #[flatten]
    pub common: ParserCommonParams,
}

/// The JSON parser.
pub struct JsonParser {
    common: Common,
}

impl JsonParser {
    fn one(&self, s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let t = self.common.finish_typed(&mut s.buf, &mut s.tmp)?;
        emit(t, Some(&s.buf));
        Ok(())
    }
}

impl Parser for JsonParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        s.buf.clear();
        let located = match &self.common.time_key {
            Some(k) => s.json.transcode_locate(text, &mut s.buf, k),
            None => s.json.transcode(text, &mut s.buf).map(|()| Located::Absent),
        };
        let Ok(located) = located else {
            emit(None, None);
            return Ok(());
        };
        match msgpack::header(&s.buf, 0).map(|h| h.kind) {
            Ok(Kind::Map) => {
                let t = self.common.finish_typed_at(&mut s.buf, &mut s.tmp, located)?;
                emit(t, Some(&s.buf));
                Ok(())
            }
            Ok(Kind::Array) => {
                let whole = std::mem::take(&mut s.buf);
                let r = (|| {
                    let (n, mut at) =
                        msgpack::read_array_len(&whole, 0).map_err(|e| ParseError::parser(e.to_string()))?;
                    for _ in 0..n {
                        let end = msgpack::skip(&whole, at).map_err(|e| ParseError::parser(e.to_string()))?;
                        if msgpack::header(&whole, at).map(|h| h.kind) == Ok(Kind::Map) {
                            s.buf.clear();
                            s.buf.extend_from_slice(&whole[at..end]);
                            self.one(s, emit)?;
                        } else {
                            emit(None, None);
                        }
                        at = end;
                    }
                    Ok(())
                })();
                if s.buf.capacity() < whole.capacity() {
                    s.buf = whole;
                }
                r
            }
            _ => {
                emit(None, None);
                Ok(())
            }
        }
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    // A time_format without a time_type means the time is a string.
    let ty = if el.has("time_format") && !el.has("time_type") { "string" } else { "float" };
    let defaults: &[(&'static str, &'static str)] = if ty == "string" {
        &[("time_key", "time"), ("time_type", "string")]
    } else {
        &[("time_key", "time"), ("time_type", "float")]
    };
    let p: JsonParserParams = read_params(el, defaults, cx)?;
    Some(Box::new(JsonParser { common: Common::new(&p.common, el, cx)? }))
}
