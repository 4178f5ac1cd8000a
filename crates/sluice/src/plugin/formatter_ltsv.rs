//! `<format> @type ltsv`: `label:value` pairs separated by tabs.

use super::formatter::{NewlineParams, TimeParams};
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, Record, RecordRef, rubyfmt};

/// Formats the record as Labeled Tab-Separated Values.
#[derive(Debug, Params)]
pub struct LtsvFormatParams {
    /// Separator between fields.
    #[param(default = "\t")]
    pub delimiter: String,
    /// Separator between label and value.
    #[param(default = ":")]
    pub label_delimiter: String,
    /// Replaces occurrences of the delimiter inside values.
    #[param(default = " ")]
    pub replacement: String,
    /// Line ending.
    #[flatten]
    pub line: NewlineParams,
    /// Time parameters (unused by this formatter).
    #[flatten]
    pub time: TimeParams,
}

/// The ltsv formatter.
pub struct LtsvFormatter {
    p: LtsvFormatParams,
}

impl Formatter for LtsvFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        let Ok(rec) = Record::from_msgpack(record.as_bytes()) else {
            return;
        };
        for (i, (k, v)) in rec.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.p.delimiter.as_bytes());
            }
            rubyfmt::write_to_s(out, k);
            out.extend_from_slice(self.p.label_delimiter.as_bytes());
            let value = rubyfmt::to_s(v);
            if self.p.delimiter.is_empty() {
                out.extend_from_slice(value.as_bytes());
            } else {
                out.extend_from_slice(value.replace(&self.p.delimiter, &self.p.replacement).as_bytes());
            }
        }
        self.p.line.write(out);
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    Some(Box::new(LtsvFormatter { p: LtsvFormatParams::from_element(el, cx.cfg)? }))
}
