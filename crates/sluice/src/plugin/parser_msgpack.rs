//! `<parse> @type msgpack`: msgpack maps (one, several concatenated, or an
//! array of maps). Unlike Fluentd, a truncated object never leaks into the
//! next text: each text is parsed on its own.

use super::BuildCx;
use super::parser::{Common, Emit, ParseError, Parser, ParserCommonParams, Scratch};
use sluice_config::{Element, Params};
use sluice_event::msgpack::{self, Kind};

/// Parses msgpack.
#[derive(Debug, Clone, Params)]
pub struct MsgpackParserParams {
    /// Shared parser parameters.
    #[flatten]
    pub common: ParserCommonParams,
}

/// The msgpack parser.
pub struct MsgpackParser {
    common: Common,
}

impl MsgpackParser {
    fn value(&self, raw: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        s.buf.clear();
        s.buf.extend_from_slice(raw);
        let t = self.common.finish_typed(&mut s.buf, &mut s.tmp)?;
        emit(t, Some(&s.buf));
        Ok(())
    }
}

impl Parser for MsgpackParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let malformed = || ParseError { class: "MessagePack::MalformedFormatError", message: "invalid byte".into() };
        let mut at = 0;
        while at < text.len() {
            let end = match msgpack::skip(text, at) {
                Ok(e) => e,
                Err(msgpack::Error::Truncated) => return Ok(()),
                Err(_) => return Err(malformed()),
            };
            match msgpack::header(text, at).map(|h| h.kind) {
                Ok(Kind::Map) => self.value(&text[at..end], s, emit)?,
                Ok(Kind::Array) => {
                    let (n, mut a) = msgpack::read_array_len(text, at).map_err(|_| malformed())?;
                    for _ in 0..n {
                        let e = msgpack::skip(text, a).map_err(|_| malformed())?;
                        if msgpack::header(text, a).map(|h| h.kind) == Ok(Kind::Map) {
                            self.value(&text[a..e], s, emit)?;
                        } else {
                            emit(None, None);
                        }
                        a = e;
                    }
                }
                _ => emit(None, None),
            }
            at = end;
        }
        Ok(())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    let p = MsgpackParserParams::from_element(el, cx.cfg)?;
    Some(Box::new(MsgpackParser { common: Common::new(&p.common, el, cx)? }))
}
