//! `<parse> @type ltsv`: `label:value` pairs separated by tabs. Pairs
//! without the label delimiter are dropped; a repeated label keeps its
//! first position and its last value.

use super::BuildCx;
use super::parser::{Common, Emit, ParseError, Parser, ParserCommonParams, Scratch, read_params, ruby_split};
use sluice_config::{Element, Params};
use sluice_ruby::ByteRegex;

/// Parses LTSV.
#[derive(Debug, Clone, Params)]
pub struct LtsvParserParams {
    /// Separator between pairs (a single space splits on runs of whitespace).
    #[param(default = "\t")]
    pub delimiter: String,
    /// Regexp separating pairs (wins over `delimiter`).
    pub delimiter_pattern: Option<String>,
    /// Separator between label and value.
    #[param(default = ":")]
    pub label_delimiter: String,
    /// Shared parser parameters.
    #[flatten]
    pub common: ParserCommonParams,
}

/// The ltsv parser.
pub struct LtsvParser {
    sep: Vec<u8>,
    pattern: Option<ByteRegex>,
    label: Vec<u8>,
    common: Common,
}

fn regex_split<'s>(re: &ByteRegex, s: &'s [u8]) -> Vec<&'s [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut search = 0;
    while search <= s.len() {
        let Some(g) = re.captures_at(s, search) else { break };
        let Some((a, b)) = g[0] else { break };
        if b == a {
            // An empty match splits nothing here; move on.
            search = a + 1;
            continue;
        }
        out.push(&s[at..a]);
        at = b;
        search = b;
    }
    out.push(&s[at..]);
    while out.last().is_some_and(|p| p.is_empty()) {
        out.pop();
    }
    out
}

impl Parser for LtsvParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let parts = match &self.pattern {
            Some(re) => regex_split(re, text),
            None => ruby_split(text, &self.sep),
        };
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(parts.len());
        for part in parts {
            let kv = super::parser_tsv::split_limit(part, &self.label, 2);
            if let [k, v] = kv[..] {
                match pairs.iter_mut().find(|(pk, _)| *pk == k) {
                    Some(slot) => slot.1 = v,
                    None => pairs.push((k, v)),
                }
            }
        }
        let mut w = self.common.fields(&mut s.buf);
        for (k, v) in pairs {
            w.field(k, v);
        }
        let t = w.finish()?;
        emit(t, Some(&s.buf));
        Ok(())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    let p: LtsvParserParams = read_params(el, &[("time_key", "time")], cx)?;
    let pattern = match &p.delimiter_pattern {
        Some(s) => match ByteRegex::parse_literal(s) {
            Ok(r) => Some(r),
            Err(e) => {
                cx.cfg.error(el.param("delimiter_pattern").map_or(el.span, |x| x.value_span), e);
                return None;
            }
        },
        None => None,
    };
    let common = Common::new(&p.common, el, cx)?;
    Some(Box::new(LtsvParser { sep: p.delimiter.into_bytes(), pattern, label: p.label_delimiter.into_bytes(), common }))
}
