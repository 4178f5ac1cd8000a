//! `<parse> @type regexp`: named captures of a Ruby regexp become fields.
//!
//! The match is an unanchored search with Ruby's rules (`^`/`$` match at
//! line boundaries, `/m` lets `.` match newlines), over bytes: `.` is one
//! byte, `\w` `\d` `\s` are ASCII, invalid UTF-8 never prevents a match.
//! Groups that did not take part in the match are left out of the record.

use super::BuildCx;
use super::parser::{Common, Emit, ParseError, Parser, ParserCommonParams, Scratch, read_params};
use sluice_config::{Element, Params};
use sluice_ruby::{ByteRegex, RubyFlags};

/// Parses text with a regular expression.
#[derive(Debug, Clone, Params)]
pub struct RegexpParserParams {
    /// The regexp (`/…/flags`); its named groups (`(?<name>…)`) become fields.
    pub expression: String,
    /// Match case-insensitively.
    #[param(default = "false", deprecated = "use /pattern/i in expression")]
    pub ignorecase: bool,
    /// Let `.` match newlines.
    #[param(default = "false", deprecated = "use /pattern/m in expression")]
    pub multiline: bool,
    /// Shared parser parameters.
    #[flatten]
    pub common: ParserCommonParams,
}

/// The regexp parser (also apache, nginx and apache_error).
pub struct RegexpParser {
    re: ByteRegex,
    common: Common,
}

impl RegexpParser {
    /// Compile `p` (errors located at `el`).
    pub fn new(p: &RegexpParserParams, el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<RegexpParser> {
        let span = el.param("expression").map_or(el.span, |x| x.value_span);
        let re = if p.ignorecase || p.multiline {
            let (pat, mut flags) = match p.expression.strip_prefix('/').and_then(|r| r.rsplit_once('/')) {
                Some((pat, opts)) => (
                    pat,
                    RubyFlags {
                        ignore_case: opts.contains('i'),
                        multiline: opts.contains('m'),
                        extended: opts.contains('x'),
                    },
                ),
                None => (p.expression.as_str(), RubyFlags::default()),
            };
            flags.ignore_case |= p.ignorecase;
            flags.multiline |= p.multiline;
            ByteRegex::new(pat, flags)
        } else {
            ByteRegex::parse_literal(&p.expression)
        };
        let re = match re {
            Ok(r) => r,
            Err(e) => {
                cx.cfg.error(span, format!("invalid regexp: {e}"));
                return None;
            }
        };
        if !re.has_named_groups() {
            cx.cfg.error(
                span,
                "No named captures in 'expression' parameter. The regexp must have at least one named capture",
            );
            return None;
        }
        let common = Common::new(&p.common, el, cx)?;
        Some(RegexpParser { re, common })
    }

    /// A parser for an already compiled regexp.
    pub fn from_regex(
        re: ByteRegex,
        common: &ParserCommonParams,
        el: &Element,
        cx: &mut BuildCx<'_, '_>,
    ) -> Option<RegexpParser> {
        Some(RegexpParser { re, common: Common::new(common, el, cx)? })
    }

    /// The compiled expression.
    pub fn regex(&self) -> &ByteRegex {
        &self.re
    }

    /// The shared behaviour.
    pub fn common(&self) -> &Common {
        &self.common
    }

    /// Match at `start`: the end of the match, or `None`.
    pub fn parse_at(
        &self,
        text: &[u8],
        start: usize,
        s: &mut Scratch,
        emit: &mut Emit<'_>,
    ) -> Result<Option<usize>, ParseError> {
        let Some(groups) = self.re.captures_at(text, start) else {
            emit(None, None);
            return Ok(None);
        };
        let mut w = self.common.fields(&mut s.buf);
        for (i, name) in self.re.group_names().iter().enumerate() {
            if let (Some(name), Some(Some((a, b)))) = (name, groups.get(i)) {
                w.field(name.as_bytes(), &text[*a..*b]);
            }
        }
        let t = w.finish()?;
        emit(t, Some(&s.buf));
        Ok(groups[0].map(|(_, e)| e))
    }
}

impl Parser for RegexpParser {
    fn parse(&self, text: &[u8], s: &mut Scratch, emit: &mut Emit<'_>) -> Result<(), ParseError> {
        self.parse_at(text, 0, s, emit).map(|_| ())
    }
}

/// Build with per-type defaults (`expression`, `time_format`).
pub fn build_with(
    el: &Element,
    defaults: &[(&'static str, &'static str)],
    cx: &mut BuildCx<'_, '_>,
) -> Option<Box<dyn Parser>> {
    let p: RegexpParserParams = read_params(el, defaults, cx)?;
    Some(Box::new(RegexpParser::new(&p, el, cx)?))
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    build_with(el, &[("time_key", "time")], cx)
}
