//! `<parse> @type tsv`: tab-separated values named by `keys`; the last key
//! takes the rest of the line (Ruby's `split(delimiter, keys.size)`).

use super::BuildCx;
use super::parser::{Common, Emit, ParseError, Parser, ParserCommonParams, Scratch};
use sluice_config::{Element, Params};

/// Parses TSV.
#[derive(Debug, Clone, Params)]
pub struct TsvParserParams {
    /// Field names, in column order.
    pub keys: Vec<String>,
    /// Column separator (a single space splits on runs of whitespace).
    #[param(default = "\t")]
    pub delimiter: String,
    /// Shared parser parameters.
    #[flatten]
    pub common: ParserCommonParams,
}

/// The tsv parser.
pub struct TsvParser {
    keys: Vec<String>,
    sep: Vec<u8>,
    common: Common,
}

/// Ruby's `String#split(delim, limit)` with a positive limit: at most
/// `limit` fields, the last one holding the rest, trailing empty fields kept.
pub fn split_limit<'s>(s: &'s [u8], delim: &[u8], limit: usize) -> Vec<&'s [u8]> {
    let mut out = Vec::new();
    if s.is_empty() || limit == 0 {
        return out;
    }
    if delim == b" " {
        let mut i = 0;
        loop {
            while i < s.len() && s[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= s.len() {
                break;
            }
            if out.len() + 1 == limit {
                out.push(&s[i..]);
                break;
            }
            let st = i;
            while i < s.len() && !s[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push(&s[st..i]);
        }
        return out;
    }
    let mut at = 0;
    while out.len() + 1 < limit {
        match memchr::memmem::find(&s[at..], delim).filter(|_| !delim.is_empty()) {
            Some(p) => {
                out.push(&s[at..at + p]);
                at += p + delim.len();
            }
            None => break,
        }
    }
    out.push(&s[at..]);
    out
}

impl Parser for TsvParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let values = split_limit(text, &self.sep, self.keys.len());
        let mut w = self.common.fields(&mut s.buf);
        for (i, key) in self.keys.iter().enumerate() {
            match values.get(i) {
                Some(v) => w.field(key.as_bytes(), v),
                None => w.raw_field(key.as_bytes(), &[0xc0]),
            }
        }
        let t = w.finish()?;
        emit(t, Some(&s.buf));
        Ok(())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    let p = TsvParserParams::from_element(el, cx.cfg)?;
    let common = Common::new(&p.common, el, cx)?;
    Some(Box::new(TsvParser { keys: p.keys, sep: p.delimiter.into_bytes(), common }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_with_limit_like_ruby() {
        let f = |s: &str, d: &str, n| {
            split_limit(s.as_bytes(), d.as_bytes(), n)
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(f("1\t2\t3\t4", "\t", 3), vec!["1", "2", "3\t4"]);
        assert_eq!(f("\t\t", "\t", 3), vec!["", "", ""]);
        assert_eq!(f("1\t2", "\t", 3), vec!["1", "2"]);
        assert!(f("", "\t", 3).is_empty());
        assert_eq!(f("  x   y z", " ", 2), vec!["x", "y z"]);
    }
}
