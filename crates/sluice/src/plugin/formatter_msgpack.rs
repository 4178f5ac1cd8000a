//! `<format> @type msgpack`: the record's msgpack bytes, unchanged.

use super::formatter::TimeParams;
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, RecordRef};

/// Writes the record as msgpack (no terminator).
#[derive(Debug, Params)]
pub struct MsgpackFormatParams {
    /// Time parameters (unused by this formatter).
    #[flatten]
    pub time: TimeParams,
}

/// The msgpack formatter.
pub struct MsgpackFormatter;

impl Formatter for MsgpackFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(record.as_bytes());
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    MsgpackFormatParams::from_element(el, cx.cfg)?;
    Some(Box::new(MsgpackFormatter))
}
