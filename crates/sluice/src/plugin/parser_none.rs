//! `<parse> @type none`: the whole text as one field.

use super::BuildCx;
use super::parser::{Emit, ParseError, Parser, ParserCommonParams, Scratch};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, msgpack};

/// Keeps the text as is.
#[derive(Debug, Clone, Params)]
pub struct NoneParserParams {
    /// Field that receives the text.
    #[param(default = "message")]
    pub message_key: String,
    /// Shared parser parameters (only `estimate_current_event` has an effect).
    #[flatten]
    pub common: ParserCommonParams,
}

/// The none parser.
pub struct NoneParser {
    key: String,
    estimate: bool,
}

impl Parser for NoneParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        s.buf.clear();
        msgpack::write_map_header(&mut s.buf, 1);
        msgpack::write_str(&mut s.buf, self.key.as_bytes());
        msgpack::write_str(&mut s.buf, text);
        emit(self.estimate.then(EventTime::now), Some(&s.buf));
        Ok(())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    let p = NoneParserParams::from_element(el, cx.cfg)?;
    Some(Box::new(NoneParser { key: p.message_key, estimate: p.common.estimate_current_event }))
}
