//! `<format> @type tsv`: chosen values separated by tabs.

use super::formatter::{NewlineParams, TimeParams};
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, RecordRef, rubyfmt};

/// Formats selected values of the record, separated by a delimiter, without escaping.
#[derive(Debug, Params)]
pub struct TsvFormatParams {
    /// Record keys to output, in order.
    pub keys: Vec<String>,
    /// Separator between values.
    #[param(default = "\t")]
    pub delimiter: String,
    /// Line ending.
    #[flatten]
    pub line: NewlineParams,
    /// Time parameters (unused by this formatter).
    #[flatten]
    pub time: TimeParams,
}

/// The tsv formatter.
pub struct TsvFormatter {
    p: TsvFormatParams,
}

impl Formatter for TsvFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        for (i, k) in self.p.keys.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.p.delimiter.as_bytes());
            }
            if let Some(raw) = record.get(k) {
                rubyfmt::write_to_s(out, &super::record_accessor::decode_value(raw));
            }
        }
        self.p.line.write(out);
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    Some(Box::new(TsvFormatter { p: TsvFormatParams::from_element(el, cx.cfg)? }))
}
