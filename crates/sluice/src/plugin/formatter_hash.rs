//! `<format> @type hash`: the record as Ruby's `Hash#inspect`.

use super::formatter::{Newline, NewlineParams, TimeParams};
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, RecordRef, rubyfmt};

/// Formats the record the way Ruby prints a Hash (Ruby 3.4 style: `{"k" => "v"}`).
#[derive(Debug, Params)]
pub struct HashFormatParams {
    /// Line ending.
    #[flatten]
    pub line: NewlineParams,
    /// Time parameters (unused by this formatter).
    #[flatten]
    pub time: TimeParams,
}

/// The hash formatter.
pub struct HashFormatter {
    newline: Option<Newline>,
}

impl HashFormatter {
    /// A formatter with the given terminator.
    pub fn new(newline: Option<Newline>) -> Self {
        HashFormatter { newline }
    }
}

impl Formatter for HashFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        rubyfmt::write_inspect_raw(out, record.as_bytes());
        if let Some(n) = self.newline {
            out.extend_from_slice(n.bytes());
        }
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    let p = HashFormatParams::from_element(el, cx.cfg)?;
    Some(Box::new(HashFormatter::new(p.line.terminator())))
}
