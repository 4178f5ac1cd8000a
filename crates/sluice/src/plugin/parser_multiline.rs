//! `<parse> @type multiline`: records spanning several lines.
//!
//! `format1`…`format20` are concatenated into one regexp in which `.`
//! matches newlines; `format_firstline` tells in_tail where a record
//! starts. One text can give several records: after a match, parsing goes
//! on after it (one leading newline dropped).

use super::BuildCx;
use super::parser::{Emit, ParseError, Parser, ParserCommonParams, Scratch, read_params};
use super::parser_regexp::RegexpParser;
use sluice_config::{Element, Params};
use sluice_event::{EventTime, msgpack};
use sluice_ruby::{ByteRegex, RubyFlags};

/// Parses multi-line records.
#[derive(Debug, Clone, Params)]
pub struct MultilineParserParams {
    /// Regexp matching the first line of a record (`/…/`).
    pub format_firstline: Option<String>,
    /// Part 1 of the record regexp.
    pub format1: Option<String>,
    /// Part 2 of the record regexp.
    pub format2: Option<String>,
    /// Part 3 of the record regexp.
    pub format3: Option<String>,
    /// Part 4 of the record regexp.
    pub format4: Option<String>,
    /// Part 5 of the record regexp.
    pub format5: Option<String>,
    /// Part 6 of the record regexp.
    pub format6: Option<String>,
    /// Part 7 of the record regexp.
    pub format7: Option<String>,
    /// Part 8 of the record regexp.
    pub format8: Option<String>,
    /// Part 9 of the record regexp.
    pub format9: Option<String>,
    /// Part 10 of the record regexp.
    pub format10: Option<String>,
    /// Part 11 of the record regexp.
    pub format11: Option<String>,
    /// Part 12 of the record regexp.
    pub format12: Option<String>,
    /// Part 13 of the record regexp.
    pub format13: Option<String>,
    /// Part 14 of the record regexp.
    pub format14: Option<String>,
    /// Part 15 of the record regexp.
    pub format15: Option<String>,
    /// Part 16 of the record regexp.
    pub format16: Option<String>,
    /// Part 17 of the record regexp.
    pub format17: Option<String>,
    /// Part 18 of the record regexp.
    pub format18: Option<String>,
    /// Part 19 of the record regexp.
    pub format19: Option<String>,
    /// Part 20 of the record regexp.
    pub format20: Option<String>,
    /// Emit text that matches no record as `{"unmatched_line": text}` (any value enables it).
    pub unmatched_lines: Option<String>,
    /// Shared parser parameters.
    #[flatten]
    pub common: ParserCommonParams,
}

/// The multiline parser.
pub struct MultilineParser {
    inner: RegexpParser,
    firstline: Option<ByteRegex>,
    unmatched_lines: bool,
}

impl MultilineParser {
    /// True if `line` starts a record (always false without `format_firstline`).
    pub fn is_firstline(&self, line: &[u8]) -> bool {
        self.firstline.as_ref().is_some_and(|r| r.is_match(line))
    }

    /// True if `format_firstline` is set.
    pub fn has_firstline(&self) -> bool {
        self.firstline.is_some()
    }
}

fn unmatched_record(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    msgpack::write_map_header(out, 1);
    msgpack::write_str(out, b"unmatched_line");
    msgpack::write_str(out, text);
}

impl Parser for MultilineParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        let mut rest = text;
        loop {
            let mut got = false;
            let mut bad = false;
            let end = {
                let mut inner_emit = |t: Option<EventTime>, r: Option<&[u8]>| {
                    if self.unmatched_lines && (t.is_none() || r.is_none()) {
                        bad = true;
                    } else {
                        got = true;
                        emit(t, r);
                    }
                };
                self.inner.parse_at(rest, 0, s, &mut inner_emit)?
            };
            if bad {
                unmatched_record(rest, &mut s.buf);
                emit(Some(EventTime::now()), Some(&s.buf));
            }
            let _ = got;
            let Some(end) = end else { return Ok(()) };
            rest = &rest[end..];
            if let Some(r) = rest.strip_prefix(b"\n") {
                rest = r;
            }
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    fn as_multiline(&self) -> Option<&MultilineParser> {
        Some(self)
    }
}

fn strip_slashes<'a>(name: &str, v: &'a str, cx: &mut BuildCx<'_, '_>, el: &Element) -> Option<&'a str> {
    if v.len() >= 2 && v.starts_with('/') && v.ends_with('/') {
        Some(&v[1..v.len() - 1])
    } else {
        cx.cfg.error(
            el.param(name).map_or(el.span, |x| x.value_span),
            format!("format should be Regexp, need //, in {name}: '{v}'"),
        );
        None
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    for p in &el.params {
        if let Some(n) = p.key.strip_prefix("format").and_then(|n| n.parse::<u32>().ok())
            && !(1..=20).contains(&n)
        {
            cx.cfg.error(p.key_span, format!("Invalid formatN found. N should be 1 - 20: {}", p.key));
            return None;
        }
    }
    let p: MultilineParserParams = read_params(el, &[("time_key", "time")], cx)?;
    let formats = [
        &p.format1,
        &p.format2,
        &p.format3,
        &p.format4,
        &p.format5,
        &p.format6,
        &p.format7,
        &p.format8,
        &p.format9,
        &p.format10,
        &p.format11,
        &p.format12,
        &p.format13,
        &p.format14,
        &p.format15,
        &p.format16,
        &p.format17,
        &p.format18,
        &p.format19,
        &p.format20,
    ];
    let mut combined = String::new();
    let mut last = 0;
    for (i, f) in formats.iter().enumerate() {
        if let Some(f) = f {
            if last != i {
                cx.cfg.error(
                    el.param(&format!("format{}", i + 1)).map_or(el.span, |x| x.key_span),
                    format!("Jump of format index found. format{} is missing.", last + 1),
                );
                return None;
            }
            last = i + 1;
            combined.push_str(strip_slashes(&format!("format{}", i + 1), f, cx, el)?);
        }
    }
    if last == 0 {
        cx.cfg.error(el.span, "'format1' parameter is required");
        return None;
    }
    let re = match ByteRegex::new(&combined, RubyFlags { multiline: true, ..RubyFlags::default() }) {
        Ok(r) => r,
        Err(e) => {
            cx.cfg.error(
                el.param("format1").map_or(el.span, |x| x.value_span),
                format!("Invalid regexp in format1: {e}"),
            );
            return None;
        }
    };
    if !re.has_named_groups() {
        cx.cfg.error(
            el.param("format1").map_or(el.span, |x| x.value_span),
            format!("Invalid regexp '{combined}': No named captures"),
        );
        return None;
    }
    let firstline = match &p.format_firstline {
        Some(f) => {
            let inner = strip_slashes("format_firstline", f, cx, el)?;
            match ByteRegex::new(inner, RubyFlags::default()) {
                Ok(r) => Some(r),
                Err(e) => {
                    cx.cfg.error(
                        el.param("format_firstline").map_or(el.span, |x| x.value_span),
                        format!("invalid regexp: {e}"),
                    );
                    return None;
                }
            }
        }
        None => None,
    };
    let inner = RegexpParser::from_regex(re, &p.common, el, cx)?;
    Some(Box::new(MultilineParser { inner, firstline, unmatched_lines: p.unmatched_lines.is_some() }))
}
