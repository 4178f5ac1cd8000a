//! `<format> @type single_value`: one field's value, raw.

use super::formatter::{NewlineParams, TimeParams};
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, RecordRef, rubyfmt};

/// Outputs the value of one record field, without any escaping.
#[derive(Debug, Params)]
pub struct SingleValueFormatParams {
    /// The field to output.
    #[param(default = "message")]
    pub message_key: String,
    /// Line ending.
    #[flatten]
    pub line: NewlineParams,
    /// Time parameters (unused by this formatter).
    #[flatten]
    pub time: TimeParams,
}

/// The single_value formatter.
pub struct SingleValueFormatter {
    p: SingleValueFormatParams,
}

impl Formatter for SingleValueFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        if let Some(raw) = record.get(&self.p.message_key) {
            match sluice_event::msgpack::read_str(raw, 0) {
                Ok((s, _)) => out.extend_from_slice(s),
                Err(_) => rubyfmt::write_to_s(out, &super::record_accessor::decode_value(raw)),
            }
        }
        self.p.line.write(out);
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    Some(Box::new(SingleValueFormatter { p: SingleValueFormatParams::from_element(el, cx.cfg)? }))
}
