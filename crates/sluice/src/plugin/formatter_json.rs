//! `<format> @type json`: the record as one line of JSON.

use super::formatter::{Newline, NewlineParams, TimeParams};
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, RecordRef, json};

/// Formats the record as JSON (keys in record order, Oj-compatible floats).
#[derive(Debug, Params)]
pub struct JsonFormatParams {
    /// JSON library Fluentd should use (oj, yajl, json); all produce the same output here.
    #[param(default = "oj")]
    pub json_parser: String,
    /// Line ending.
    #[flatten]
    pub line: NewlineParams,
    /// Time parameters (unused by this formatter).
    #[flatten]
    pub time: TimeParams,
}

/// The json formatter.
pub struct JsonFormatter {
    newline: Option<Newline>,
}

impl JsonFormatter {
    /// A formatter with the given terminator.
    pub fn new(newline: Option<Newline>) -> Self {
        JsonFormatter { newline }
    }
}

impl Formatter for JsonFormatter {
    fn format_walk(&self, _tag: &str, _time: EventTime, raw: &[u8], out: &mut Vec<u8>) -> Option<Result<usize, ()>> {
        if raw.first().is_none_or(|m| !(0x80..=0x8f).contains(m) && *m != 0xde && *m != 0xdf) {
            return Some(Err(()));
        }
        let mark = out.len();
        match json::write_json(raw, out) {
            Ok(n) => {
                if let Some(nl) = self.newline {
                    out.extend_from_slice(nl.bytes());
                }
                Some(Ok(n))
            }
            Err(_) => {
                out.truncate(mark);
                Some(Err(()))
            }
        }
    }

    fn format(&self, _tag: &str, _time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        // Records in streams are validated maps; a failure cannot happen.
        let _ = json::write_json(record.as_bytes(), out);
        if let Some(n) = self.newline {
            out.extend_from_slice(n.bytes());
        }
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    let p = JsonFormatParams::from_element(el, cx.cfg)?;
    Some(Box::new(JsonFormatter::new(p.line.terminator())))
}
