//! `<parse> @type csv`: comma-separated values named by `keys`.
//!
//! The `normal` engine reads a line as Ruby's `CSV.parse_line` does
//! (quoted fields, `""` escapes, quoted newlines, the first row only) and
//! fails with Ruby's messages on malformed quoting; the `fast` engine is
//! Fluentd's simple splitter.

use super::BuildCx;
use super::parser::{Common, Emit, ParseError, Parser, ParserCommonParams, Scratch};
use sluice_config::{Element, ParamEnum, Params};

/// Which CSV reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum CsvEngine {
    /// RFC 4180-style, like Ruby's CSV.
    Normal,
    /// Fluentd's fast splitter.
    Fast,
}

/// Parses CSV.
#[derive(Debug, Clone, Params)]
pub struct CsvParserParams {
    /// Field names, in column order.
    pub keys: Vec<String>,
    /// Column separator.
    #[param(default = ",")]
    pub delimiter: String,
    /// `normal` or `fast`.
    #[param(default = "normal", alias = "parser_type")]
    pub parser_engine: CsvEngine,
    /// Shared parser parameters.
    #[flatten]
    pub common: ParserCommonParams,
}

/// The csv parser.
pub struct CsvParser {
    keys: Vec<String>,
    sep: Vec<u8>,
    engine: CsvEngine,
    common: Common,
}

fn malformed(msg: &str) -> ParseError {
    ParseError { class: "CSV::MalformedCSVError", message: format!("{msg} in line 1.") }
}

/// Ruby's `CSV.parse_line(text, col_sep: sep)`: `None` for an empty text;
/// unquoted empty fields are `None`.
pub fn parse_line(text: &[u8], sep: &[u8]) -> Result<Option<Vec<Option<Vec<u8>>>>, ParseError> {
    if text.is_empty() {
        return Ok(None);
    }
    let mut fields = Vec::new();
    let mut i = 0;
    let at_row_end = |i: usize| {
        i >= text.len() || text[i] == b'\n' || (text[i] == b'\r' && matches!(text.get(i + 1), None | Some(b'\n')))
    };
    if at_row_end(0) {
        return Ok(Some(fields));
    }
    loop {
        if text.get(i) == Some(&b'"') {
            let mut v = Vec::new();
            i += 1;
            loop {
                match text.get(i) {
                    None => return Err(malformed("Unclosed quoted field")),
                    Some(b'"') if text.get(i + 1) == Some(&b'"') => {
                        v.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            fields.push(Some(v));
            if at_row_end(i) {
                break;
            }
            if !text[i..].starts_with(sep) {
                return Err(malformed("Any value after quoted field isn't allowed"));
            }
            i += sep.len();
        } else {
            let start = i;
            while !at_row_end(i) && !text[i..].starts_with(sep) {
                if text[i] == b'"' {
                    return Err(malformed("Illegal quoting"));
                }
                if text[i] == b'\r' {
                    return Err(malformed("Unquoted fields do not allow new line <\"\\r\">"));
                }
                i += 1;
            }
            fields.push((i > start).then(|| text[start..i].to_vec()));
            if at_row_end(i) {
                break;
            }
            i += sep.len();
            if at_row_end(i) {
                fields.push(None);
                break;
            }
        }
    }
    Ok(Some(fields))
}

/// Fluentd's fast CSV splitter.
fn parse_fast(text: &[u8], sep: &[u8]) -> Vec<Option<Vec<u8>>> {
    let text = text
        .strip_suffix(b"\r\n")
        .or_else(|| text.strip_suffix(b"\n"))
        .or_else(|| text.strip_suffix(b"\r"))
        .unwrap_or(text);
    if text.is_empty() {
        return Vec::new();
    }
    let cols: Vec<&[u8]> = if sep.is_empty() {
        vec![text]
    } else {
        let mut v = Vec::new();
        let mut at = 0;
        while let Some(p) = memchr::memmem::find(&text[at..], sep) {
            v.push(&text[at..at + p]);
            at += p + sep.len();
        }
        v.push(&text[at..]);
        v
    };
    let mut out = Vec::new();
    let mut j = 0;
    while j < cols.len() {
        let col = cols[j];
        let quotes = col.iter().filter(|c| **c == b'"').count();
        let v: Option<Vec<u8>> = match quotes {
            0 => (!col.is_empty()).then(|| col.to_vec()),
            1 if col.first() == Some(&b'"') => {
                let mut joined = col.to_vec();
                while !joined.ends_with(b"\"") || joined.len() == 1 {
                    j += 1;
                    let Some(next) = cols.get(j) else { break };
                    joined.extend_from_slice(sep);
                    joined.extend_from_slice(next);
                }
                let inner = if joined.len() >= 2 { joined[1..joined.len() - 1].to_vec() } else { Vec::new() };
                Some(inner)
            }
            2 if col.first() == Some(&b'"') && col.last() == Some(&b'"') && col.len() >= 2 => {
                Some(col[1..col.len() - 1].to_vec())
            }
            n if n >= 3 => {
                let inner = if col.len() >= 2 && col.first() == Some(&b'"') && col.last() == Some(&b'"') {
                    &col[1..col.len() - 1]
                } else {
                    col
                };
                let mut v = Vec::with_capacity(inner.len());
                let mut k = 0;
                while k < inner.len() {
                    if inner[k] == b'"' && inner.get(k + 1) == Some(&b'"') {
                        v.push(b'"');
                        k += 2;
                    } else {
                        v.push(inner[k]);
                        k += 1;
                    }
                }
                Some(v)
            }
            _ => Some(col.to_vec()),
        };
        out.push(v);
        j += 1;
    }
    out
}

impl Parser for CsvParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let values = match self.engine {
            CsvEngine::Normal => match parse_line(text, &self.sep)? {
                Some(v) => v,
                None => {
                    emit(None, None);
                    return Ok(());
                }
            },
            CsvEngine::Fast => parse_fast(text, &self.sep),
        };
        let mut w = self.common.fields(&mut s.buf);
        for (i, key) in self.keys.iter().enumerate() {
            match values.get(i) {
                Some(Some(v)) => w.field(key.as_bytes(), v),
                Some(None) => w.raw_field(key.as_bytes(), &[0xc0]),
                // Missing columns are null (normal) or absent (fast).
                None if self.engine == CsvEngine::Normal => w.raw_field(key.as_bytes(), &[0xc0]),
                None => {}
            }
        }
        let t = w.finish()?;
        emit(t, Some(&s.buf));
        Ok(())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    let p = CsvParserParams::from_element(el, cx.cfg)?;
    let common = Common::new(&p.common, el, cx)?;
    Some(Box::new(CsvParser { keys: p.keys, sep: p.delimiter.into_bytes(), engine: p.parser_engine, common }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pl(s: &str) -> Result<Option<Vec<Option<String>>>, String> {
        parse_line(s.as_bytes(), b",")
            .map(|o| o.map(|v| v.into_iter().map(|f| f.map(|b| String::from_utf8(b).unwrap())).collect()))
            .map_err(|e| e.message)
    }

    fn some(v: &[Option<&str>]) -> Result<Option<Vec<Option<String>>>, String> {
        Ok(Some(v.iter().map(|f| f.map(String::from)).collect()))
    }

    #[test]
    fn ruby_csv_rules() {
        assert_eq!(pl("a,b,c"), some(&[Some("a"), Some("b"), Some("c")]));
        assert_eq!(pl("a,,c"), some(&[Some("a"), None, Some("c")]));
        assert_eq!(pl("a,\"\",c"), some(&[Some("a"), Some(""), Some("c")]));
        assert_eq!(pl("\"a,1\",\"b\"\"q\",c"), some(&[Some("a,1"), Some("b\"q"), Some("c")]));
        assert_eq!(pl(","), some(&[None, None]));
        assert_eq!(pl("a,b\n"), some(&[Some("a"), Some("b")]));
        assert_eq!(pl("a,b\r\n"), some(&[Some("a"), Some("b")]));
        assert_eq!(pl("\"x\ny\",z"), some(&[Some("x\ny"), Some("z")]));
        assert_eq!(pl("a,b\nc,d"), some(&[Some("a"), Some("b")]));
        assert_eq!(pl(""), Ok(None));
        assert_eq!(pl("\"abc"), Err("Unclosed quoted field in line 1.".into()));
        assert_eq!(pl("a\"b,c"), Err("Illegal quoting in line 1.".into()));
        assert_eq!(pl("\"a\"b,c"), Err("Any value after quoted field isn't allowed in line 1.".into()));
    }

    #[test]
    fn fast_engine() {
        let f = |s: &str| {
            parse_fast(s.as_bytes(), b",")
                .into_iter()
                .map(|v| v.map(|b| String::from_utf8(b).unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(f("a,b"), vec![Some("a".to_string()), Some("b".into())]);
        assert_eq!(f(","), vec![None, None]);
        assert_eq!(f("\"multi"), vec![Some("mult".to_string())]);
        assert_eq!(f("\"a,b\",c"), vec![Some("a,b".to_string()), Some("c".into())]);
        assert_eq!(f("a\"b,c"), vec![Some("a\"b".to_string()), Some("c".into())]);
    }
}
