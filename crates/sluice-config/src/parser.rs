//! The Fluentd v1 configuration syntax, parsed into an [`Element`] tree.
//!
//! The rules follow Fluentd's `v1_parser.rb` / `literal_parser.rb`:
//!
//! ```text
//! file      := (spacing statement)* spacing EOF
//! statement := '<' NAME arg? '>' LINE_END file_body '</' NAME '>' LINE_END
//!            | '@include' path LINE_END            (also bare `include` at the root)
//!            | key (value)? LINE_END
//! value     := '"' double-quoted '"' | "'" single-quoted "'" | JSON array/object | unquoted
//! LINE_END  := [ \t]* ('#' comment)? (newline | EOF)
//! ```
//!
//! * An unquoted value runs to the end of the line; a `#` starts a comment
//!   only after a blank (`a #c` is `a`, `a#b` is `a#b`, and a value that
//!   *starts* with `#` is text, as in Fluentd).
//! * Double-quoted values take escapes (`\n \t \r \f \b \0 \" \'`, a
//!   backslash before any symbol is the symbol, before a letter or digit it is
//!   an error), may span lines (a backslash-newline joins lines), and
//!   evaluate embedded `#{…}` expressions through an [`Evaluator`].
//! * A value starting with `[` or `{` is JSON, may span lines and may
//!   contain `#`, `//` and `/* */` comments; it is stored re-serialised
//!   compactly, as Fluentd does.
//! * `@include PATH` works at any level: relative paths resolve against the
//!   including file's directory, globs expand in byte order, and the included
//!   statements land where the directive was.
//!
//! Where Fluentd is needlessly strict or silent, sluice differs and says so:
//! blank lines and CRLF inside double-quoted strings are accepted, an
//! `@include` of a missing file is a warning (Fluentd ignores it silently),
//! and invalid JSON is reported where it is, not at the end of the file.

use crate::ast::{Element, Param, Quote};
use crate::diag::Diagnostics;
use crate::source::{FileId, SourceMap, Span};
use std::path::{Path, PathBuf};

/// The result of an embedded `#{…}` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Embedded {
    /// Text to splice in.
    Str(String),
    /// `use_nil`: the whole value becomes nil.
    Nil,
    /// `use_default`: the parameter takes its default.
    Default,
}

/// Evaluates embedded `#{…}` code. sluice has no Ruby; the evaluator
/// supports the subset real configurations use and rejects the rest with a
/// message naming the expression.
pub trait Evaluator {
    /// Evaluate `code` (the text between `#{` and `}`).
    ///
    /// # Errors
    /// A message naming what is not supported or what failed.
    fn eval(&self, code: &str) -> Result<Embedded, String>;
}

/// An evaluator that refuses every expression (for contexts where code is not allowed).
pub struct NoEval;

impl Evaluator for NoEval {
    fn eval(&self, code: &str) -> Result<Embedded, String> {
        Err(format!("embedded code is not allowed here: #{{{code}}}"))
    }
}

/// Deepest nesting of `@include`s (a file including itself stops here).
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// Parse `path` and everything it includes. Problems go into `diags`;
/// returns `None` if the file cannot be read or has a syntax error.
pub fn parse_file(
    path: &Path,
    eval: &dyn Evaluator,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<Element> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            diags.error(crate::source::Span::NONE, format!("cannot read config file {}: {e}", path.display()));
            return None;
        }
    };
    parse_str(path, &path.display().to_string(), text, eval, sources, diags)
}

/// Parse configuration text that came from `path` (used for includes and tests).
pub fn parse_str(
    path: &Path,
    display: &str,
    text: String,
    eval: &dyn Evaluator,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<Element> {
    let mut root = Element::new("ROOT", "");
    let mut cx = Cx { eval, sources, diags, depth: 0 };
    cx.parse_into(path, display, text, &mut root).ok()?;
    Some(root)
}

struct Cx<'a> {
    eval: &'a dyn Evaluator,
    sources: &'a mut SourceMap,
    diags: &'a mut Diagnostics,
    depth: usize,
}

/// A syntax error: message and where.
struct SyntaxError {
    message: String,
    at: usize,
    end: usize,
}

type PResult<T> = Result<T, SyntaxError>;

impl Cx<'_> {
    /// Parse one file's statements into `target` (the root or an including section).
    fn parse_into(&mut self, path: &Path, display: &str, text: String, target: &mut Element) -> Result<(), ()> {
        let file = self.sources.add(path, display.to_string(), text.clone());
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut p = Parser { s: text.as_bytes(), text: &text, pos: 0, file, base };
        let r = p.parse_body(self, true, None, target);
        if let Err(e) = r {
            let span = Span::new(file, e.at, e.end.max(e.at));
            self.diags.error(span, e.message);
            return Err(());
        }
        Ok(())
    }
}

struct Parser<'t> {
    s: &'t [u8],
    text: &'t str,
    pos: usize,
    file: FileId,
    base: PathBuf,
}

const RESERVED: [&str; 4] = ["@type", "@id", "@label", "@log_level"];

impl<'t> Parser<'t> {
    fn err<T>(&self, at: usize, message: impl Into<String>) -> PResult<T> {
        Err(SyntaxError { message: message.into(), at, end: at + 1 })
    }

    fn span(&self, a: usize, b: usize) -> Span {
        Span::new(self.file, a, b)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn starts_with(&self, pat: &[u8]) -> bool {
        self.s[self.pos..].starts_with(pat)
    }

    /// Skip blanks, newlines and whole `#` comments.
    fn skip_spacing(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'#' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Skip blanks only.
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// True if LINE_END starts at `at`: blanks, an optional comment, then newline or EOF.
    fn line_end_at(&self, mut at: usize) -> bool {
        while matches!(self.s.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        matches!(self.s.get(at), None | Some(b'\n' | b'#'))
            || (self.s.get(at) == Some(&b'\r') && matches!(self.s.get(at + 1), None | Some(b'\n')))
    }

    /// Consume LINE_END or fail with `msg`.
    fn expect_line_end(&mut self, msg: &str) -> PResult<()> {
        let start = self.pos;
        self.skip_blanks();
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'\r') if matches!(self.s.get(self.pos + 1), None | Some(b'\n')) => {
                self.pos += 2.min(self.s.len() - self.pos);
                Ok(())
            }
            Some(b'#') => {
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == b'\n' {
                        break;
                    }
                }
                Ok(())
            }
            _ => {
                let _ = start;
                self.err(self.pos, msg)
            }
        }
    }

    fn parse_body(
        &mut self,
        cx: &mut Cx<'_>,
        is_root: bool,
        name: Option<(&str, usize)>,
        target: &mut Element,
    ) -> PResult<()> {
        loop {
            self.skip_spacing();
            if self.eof() {
                if let Some((n, at)) = name {
                    return Err(SyntaxError {
                        message: format!("expected end tag '</{n}>' but got end of file"),
                        at,
                        end: at + n.len() + 1,
                    });
                }
                return Ok(());
            }
            let stmt = self.pos;
            if self.starts_with(b"</") {
                self.pos += 2;
                let n = self.scan_name();
                self.skip_blanks();
                if self.peek() != Some(b'>') {
                    return self.err(self.pos, "expected character in tag name");
                }
                self.pos += 1;
                self.expect_line_end("expected end of line after end tag")?;
                match name {
                    Some((open, _)) if open == n => return Ok(()),
                    Some((open, _)) => {
                        return Err(SyntaxError {
                            message: format!("unmatched end tag: expected '</{open}>' but got '</{n}>'"),
                            at: stmt,
                            end: stmt + n.len() + 3,
                        });
                    }
                    None => {
                        return Err(SyntaxError {
                            message: format!("unmatched end tag '</{n}>'"),
                            at: stmt,
                            end: stmt + n.len() + 3,
                        });
                    }
                }
            } else if self.peek() == Some(b'<') {
                self.pos += 1;
                let n = self.scan_name().to_string();
                if n.is_empty() {
                    return self.err(self.pos, "expected a section name after '<'");
                }
                self.skip_blanks();
                let arg_start = self.pos;
                let arg = self.scan_arg(cx)?;
                let arg_end = self.pos;
                self.skip_blanks();
                if self.peek() != Some(b'>') {
                    return self.err(self.pos, "expected '>'");
                }
                self.pos += 1;
                let tag_end = self.pos;
                self.expect_line_end("expected end of line after tag")?;
                let mut child = Element::new(n.clone(), arg.trim().to_string());
                child.span = self.span(stmt, tag_end);
                child.arg_span = self.span(arg_start, arg_end);
                self.parse_body(cx, false, Some((&n, stmt)), &mut child)?;
                target.elements.push(child);
            } else {
                let key_start = self.pos;
                let key = self.scan_key(cx)?;
                let key_end = self.pos;
                // A key followed by a newline (or EOF) has an empty value.
                let mut q = self.pos;
                let mut newline = false;
                while let Some(c) = self.s.get(q) {
                    match c {
                        b' ' | b'\t' | b'\r' => q += 1,
                        b'\n' => {
                            newline = true;
                            break;
                        }
                        _ => break,
                    }
                }
                let key_span = self.span(key_start, key_end);
                if newline || q >= self.s.len() {
                    self.pos = q;
                    if key == "@include" || (is_root && key == "include") {
                        return self.err(key_start, "@include needs a path");
                    }
                    target.params.push(Param {
                        key,
                        value: Some(String::new()),
                        key_span,
                        value_span: key_span,
                        quote: Quote::Empty,
                    });
                    continue;
                }
                self.pos = q;
                if key == "@include" || (is_root && key == "include") {
                    if key == "include" {
                        cx.diags.warn(key_span, "'include' is deprecated. Use '@include' instead");
                    }
                    self.parse_include(cx, target, key_start)?;
                    continue;
                }
                if key.starts_with('@') && !RESERVED.contains(&key.as_str()) {
                    let strict_here =
                        is_root || matches!(target.name.as_str(), "match" | "source" | "filter" | "system");
                    let msg = format!(
                        "'@' is the system reserved prefix. Don't use '@' prefix parameter in the configuration: {key}"
                    );
                    if strict_here {
                        return Err(SyntaxError { message: msg, at: key_start, end: key_end });
                    }
                    cx.diags.warn(key_span, format!("'@' is the system reserved prefix. It works in the nested configuration for now but it will be rejected: {key}"));
                }
                let value_start = self.pos;
                let (value, quote) = self.parse_literal(cx)?;
                let value_end = self.pos;
                self.expect_line_end("expected end of line")?;
                match value {
                    Some(Embedded::Default) => {}
                    Some(Embedded::Str(v)) => target.params.push(Param {
                        key,
                        value: Some(v),
                        key_span,
                        value_span: self.span(value_start, value_end),
                        quote,
                    }),
                    Some(Embedded::Nil) | None => target.params.push(Param {
                        key,
                        value: None,
                        key_span,
                        value_span: self.span(value_start, value_end),
                        quote,
                    }),
                }
            }
        }
    }

    fn scan_name(&mut self) -> &'t str {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// The argument of an opening tag: quoted, or text up to the `>`.
    fn scan_arg(&mut self, cx: &mut Cx<'_>) -> PResult<String> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                match self.double_quoted(cx)? {
                    Embedded::Str(s) => Ok(s),
                    _ => Ok(String::new()),
                }
            }
            Some(b'\'') => {
                self.pos += 1;
                self.single_quoted()
            }
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == b'>' || c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
                Ok(self.text[start..self.pos].trim_end().to_string())
            }
        }
    }

    fn scan_key(&mut self, cx: &mut Cx<'_>) -> PResult<String> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                match self.double_quoted(cx)? {
                    Embedded::Str(s) => Ok(s),
                    _ => self.err(self.pos, "a key cannot be nil"),
                }
            }
            Some(b'\'') => {
                self.pos += 1;
                self.single_quoted()
            }
            _ => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if !c.is_ascii_whitespace()) {
                    self.pos += 1;
                }
                Ok(self.text[start..self.pos].to_string())
            }
        }
    }

    /// A value: `(value, how it was written)`; `None` value means nil.
    fn parse_literal(&mut self, cx: &mut Cx<'_>) -> PResult<(Option<Embedded>, Quote)> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                Ok((Some(self.double_quoted(cx)?), Quote::Double))
            }
            Some(b'\'') => {
                self.pos += 1;
                Ok((Some(Embedded::Str(self.single_quoted()?)), Quote::Single))
            }
            Some(b'[' | b'{') => Ok((Some(Embedded::Str(self.json_value(cx)?)), Quote::Json)),
            _ => Ok((Some(Embedded::Str(self.unquoted())), Quote::None)),
        }
    }

    /// Text up to LINE_END; a `#` is part of the value unless a blank precedes it.
    fn unquoted(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b'#' {
                self.pos += 1;
                continue;
            }
            if self.line_end_at(self.pos) {
                break;
            }
            self.pos += 1;
        }
        self.text[start..self.pos].to_string()
    }

    fn single_quoted(&mut self) -> PResult<String> {
        let open = self.pos - 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(SyntaxError {
                    message: "unexpected end of file in a single quoted string".into(),
                    at: open,
                    end: open + 1,
                });
            };
            match c {
                b'\'' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\n' => {
                    return Err(SyntaxError {
                        message:
                            "unexpected end of line in a single quoted string (single-quoted values cannot span lines)"
                                .into(),
                        at: open,
                        end: self.pos,
                    });
                }
                b'\\' if matches!(self.s.get(self.pos + 1), Some(b'\'' | b'\\')) => {
                    out.push(self.s[self.pos + 1] as char);
                    self.pos += 2;
                }
                _ => {
                    let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
    }

    fn double_quoted(&mut self, cx: &mut Cx<'_>) -> PResult<Embedded> {
        let open = self.pos - 1;
        let mut out = String::new();
        let mut nil = false;
        let mut default = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(SyntaxError {
                    message: "unexpected end of file in a double quoted string".into(),
                    at: open,
                    end: open + 1,
                });
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    let Some(&n) = self.s.get(self.pos + 1) else {
                        return Err(SyntaxError {
                            message: "unexpected end of file in a double quoted string".into(),
                            at: open,
                            end: open + 1,
                        });
                    };
                    match n {
                        // Backslash-newline joins lines.
                        b'\n' => self.pos += 2,
                        b'\r' if self.s.get(self.pos + 2) == Some(&b'\n') => self.pos += 3,
                        b'n' | b't' | b'r' | b'f' | b'b' | b'0' => {
                            out.push(match n {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'f' => '\u{0c}',
                                b'b' => '\u{08}',
                                _ => '\0',
                            });
                            self.pos += 2;
                        }
                        c if c.is_ascii_alphanumeric() => {
                            return Err(SyntaxError {
                                message: format!("unexpected back-slash escape character '{}'", c as char),
                                at: self.pos,
                                end: self.pos + 2,
                            });
                        }
                        _ => {
                            let ch = self.text[self.pos + 1..].chars().next().unwrap_or('\u{fffd}');
                            out.push(ch);
                            self.pos += 1 + ch.len_utf8();
                        }
                    }
                }
                b'#' if self.s.get(self.pos + 1) == Some(&b'{') => {
                    let code_start = self.pos + 2;
                    let Some(code_end) = find_code_end(self.s, code_start) else {
                        return Err(SyntaxError {
                            message: "expected end of embedded code '}' but got end of file".into(),
                            at: self.pos,
                            end: self.pos + 2,
                        });
                    };
                    let code = &self.text[code_start..code_end];
                    match cx.eval.eval(code) {
                        Ok(Embedded::Str(s)) => out.push_str(&s),
                        Ok(Embedded::Nil) => nil = true,
                        Ok(Embedded::Default) => default = true,
                        Err(msg) => {
                            return Err(SyntaxError { message: msg, at: self.pos, end: code_end + 1 });
                        }
                    }
                    self.pos = code_end + 1;
                }
                _ => {
                    let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
        Ok(if nil {
            Embedded::Nil
        } else if default {
            Embedded::Default
        } else {
            Embedded::Str(out)
        })
    }

    /// A JSON array or object, possibly over several lines, with comments.
    fn json_value(&mut self, cx: &mut Cx<'_>) -> PResult<String> {
        let start = self.pos;
        let array = self.peek() == Some(b'[');
        let mut buf = String::new();
        let mut depth = 0usize;
        let mut in_str = false;
        while let Some(c) = self.peek() {
            if in_str {
                match c {
                    b'\\' => {
                        buf.push('\\');
                        self.pos += 1;
                        if let Some(ch) = self.text[self.pos..].chars().next() {
                            buf.push(ch);
                            self.pos += ch.len_utf8();
                        }
                        continue;
                    }
                    b'"' => in_str = false,
                    b'#' if self.s.get(self.pos + 1) == Some(&b'{') => {
                        let code_start = self.pos + 2;
                        let Some(code_end) = find_code_end(self.s, code_start) else {
                            return self.err(self.pos, "expected end of embedded code '}' but got end of file");
                        };
                        match cx.eval.eval(&self.text[code_start..code_end]) {
                            Ok(Embedded::Str(s)) => {
                                // Splice as JSON string content.
                                let enc = serde_json::to_string(&s).unwrap_or_default();
                                buf.push_str(&enc[1..enc.len() - 1]);
                            }
                            Ok(_) => {
                                return self
                                    .err(self.pos, "use_nil and use_default cannot be used inside a JSON value");
                            }
                            Err(msg) => {
                                return Err(SyntaxError { message: msg, at: self.pos, end: code_end + 1 });
                            }
                        }
                        self.pos = code_end + 1;
                        continue;
                    }
                    _ => {}
                }
                let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
                buf.push(ch);
                self.pos += ch.len_utf8();
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'#' => {
                    self.skip_to_eol();
                    continue;
                }
                b'/' if self.s.get(self.pos + 1) == Some(&b'/') => {
                    self.skip_to_eol();
                    continue;
                }
                b'/' if self.s.get(self.pos + 1) == Some(&b'*') => {
                    match self.text[self.pos + 2..].find("*/") {
                        Some(e) => self.pos += e + 4,
                        None => self.pos = self.s.len(),
                    }
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        buf.push(c as char);
                        self.pos += 1;
                        return match serde_json::from_str::<serde_json::Value>(&buf) {
                            Ok(v) => Ok(v.to_string()),
                            Err(e) => Err(SyntaxError {
                                message: format!(
                                    "invalid JSON {} value: {e} (quote the value if it is not meant to be JSON)",
                                    if array { "array" } else { "hash" }
                                ),
                                at: start,
                                end: self.pos,
                            }),
                        };
                    }
                }
                _ => {}
            }
            let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
            buf.push(ch);
            self.pos += ch.len_utf8();
        }
        Err(SyntaxError {
            message: format!("got incomplete JSON {} configuration", if array { "array" } else { "hash" }),
            at: start,
            end: start + 1,
        })
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn parse_include(&mut self, cx: &mut Cx<'_>, target: &mut Element, key_start: usize) -> PResult<()> {
        let path_start = self.pos;
        let (value, _) = self.parse_literal(cx)?;
        let path_end = self.pos;
        self.expect_line_end("expected end of line")?;
        let Some(Embedded::Str(raw)) = value else {
            return self.err(path_start, "@include path is nil");
        };
        let span = self.span(key_start, path_end);
        if raw.starts_with("http://") || raw.starts_with("https://") {
            cx.diags.error(span, format!("@include of a URL is not supported: {raw}"));
            return Ok(());
        }
        let p = Path::new(&raw);
        let full = if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) };
        let full_str = full.to_string_lossy().into_owned();
        let is_glob = raw.contains(['*', '?', '[']);
        let mut files: Vec<PathBuf> = if is_glob {
            match glob::glob(&full_str) {
                Ok(paths) => paths.filter_map(Result::ok).filter(|p| p.is_file()).collect(),
                Err(e) => {
                    cx.diags.error(span, format!("invalid @include pattern {raw:?}: {e}"));
                    return Ok(());
                }
            }
        } else if full.is_file() {
            vec![full.clone()]
        } else if full.exists() {
            cx.diags.error(span, format!("include error {raw} - Is a directory"));
            return Ok(());
        } else {
            cx.diags.warn(span, format!("@include: {} does not exist; nothing included", full.display()));
            Vec::new()
        };
        files.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
        if cx.depth >= MAX_INCLUDE_DEPTH {
            cx.diags.error(
                span,
                format!("@include nested deeper than {MAX_INCLUDE_DEPTH} levels (does a file include itself?)"),
            );
            return Ok(());
        }
        for f in files {
            let text = match std::fs::read(&f) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => {
                    cx.diags.error(span, format!("include error {} - {e}", f.display()));
                    continue;
                }
            };
            cx.depth += 1;
            let display = f.display().to_string();
            let r = cx.parse_into(&f, &display, text, target);
            cx.depth -= 1;
            if r.is_err() {
                // The included file's syntax error is already reported; stop here too.
                return Err(SyntaxError {
                    message: format!("error in file included from here: {}", f.display()),
                    at: key_start,
                    end: path_end,
                });
            }
        }
        Ok(())
    }
}

/// Find the `}` that closes embedded code starting at `s[at]` (just after
/// `#{`), skipping nested braces and Ruby string literals.
pub fn find_code_end(s: &[u8], mut at: usize) -> Option<usize> {
    let mut depth = 0usize;
    while at < s.len() {
        match s[at] {
            b'{' => depth += 1,
            b'}' => {
                if depth == 0 {
                    return Some(at);
                }
                depth -= 1;
            }
            q @ (b'"' | b'\'') => {
                at += 1;
                while at < s.len() && s[at] != q {
                    if s[at] == b'\\' {
                        at += 1;
                    } else if q == b'"' && s[at] == b'#' && s.get(at + 1) == Some(&b'{') {
                        at = find_code_end(s, at + 2)?;
                    }
                    at += 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestEval;
    impl Evaluator for TestEval {
        fn eval(&self, code: &str) -> Result<Embedded, String> {
            match code.trim() {
                "1+1" => Ok(Embedded::Str("2".into())),
                "use_nil" => Ok(Embedded::Nil),
                "use_default" => Ok(Embedded::Default),
                "\"}\"" => Ok(Embedded::Str("}".into())),
                other => Err(format!("unsupported: {other}")),
            }
        }
    }

    fn parse(text: &str) -> Result<Element, String> {
        let mut sm = SourceMap::new();
        let mut d = Diagnostics::new(false);
        match parse_str(Path::new("t.conf"), "t.conf", text.to_string(), &TestEval, &mut sm, &mut d) {
            Some(e) if !d.has_errors() => Ok(e),
            _ => Err(d.iter().map(|x| x.headline(&sm)).collect::<Vec<_>>().join("\n")),
        }
    }

    fn val(text: &str, key: &str) -> Option<String> {
        parse(text).unwrap().param(key).and_then(|p| p.value.clone())
    }

    #[test]
    fn unquoted_values_and_comments() {
        assert_eq!(val("k1 a #comment\n", "k1").as_deref(), Some("a"));
        assert_eq!(val("k1 a#b\n", "k1").as_deref(), Some("a#b"));
        assert_eq!(val("k1 #not_comment\n", "k1").as_deref(), Some("#not_comment"));
        assert_eq!(val("k1 foo\t#bar\n", "k1").as_deref(), Some("foo"));
        assert_eq!(val("k1 a  b  c   \n", "k1").as_deref(), Some("a  b  c"));
        assert_eq!(val("k1", "k1").as_deref(), Some(""));
        assert_eq!(val("k1   \nk2 v", "k1").as_deref(), Some(""));
        assert_eq!(val("k1 x#{1+1}", "k1").as_deref(), Some("x#{1+1}"));
        assert_eq!(val("k1 v\\", "k1").as_deref(), Some("v\\"));
        assert_eq!(val("k v1\r\nk v2\r\n", "k").as_deref(), Some("v2"));
    }

    #[test]
    fn quoted_values() {
        assert_eq!(val(r#"k "a\tb\"c\%""#, "k").as_deref(), Some("a\tb\"c%"));
        assert_eq!(val("k \"#{1+1}x\"", "k").as_deref(), Some("2x"));
        assert_eq!(val("k \"\\#{1+1}\"", "k").as_deref(), Some("#{1+1}"));
        assert_eq!(val("k \"#{\"}\"}\"", "k").as_deref(), Some("}"));
        assert_eq!(val("k \"ab\nc\"", "k").as_deref(), Some("ab\nc"));
        assert_eq!(val("k \"ab\\\n   c\"", "k").as_deref(), Some("ab   c"));
        assert_eq!(val(r"k '\n\''", "k").as_deref(), Some("\\n'"));
        assert_eq!(val("k \"a#{use_nil}b\"", "k"), None);
        assert!(!parse("k \"#{use_default}\"").unwrap().has("k"));
        assert!(
            parse(r#"k "\z""#).unwrap_err().contains("t.conf:1:4: error: unexpected back-slash escape character 'z'")
        );
        assert!(parse("k1 \"a\" 1").unwrap_err().contains("t.conf:1:8: error: expected end of line"));
        assert!(
            parse("k 'x\ny'")
                .unwrap_err()
                .contains("t.conf:1:3: error: unexpected end of line in a single quoted string")
        );
        assert!(
            parse("k \"abc")
                .unwrap_err()
                .contains("t.conf:1:3: error: unexpected end of file in a double quoted string")
        );
        assert!(parse("k \"#{nope}\"").unwrap_err().contains("t.conf:1:4: error: unsupported: nope"));
    }

    #[test]
    fn json_values() {
        assert_eq!(val("k [1, 2]", "k").as_deref(), Some("[1,2]"));
        assert_eq!(val("k [\"a\",\n  \"b\"]\nz 1", "k").as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(val("k [1, # one\n 2]", "k").as_deref(), Some("[1,2]"));
        assert_eq!(val("k [1, /* c */ 2] # c", "k").as_deref(), Some("[1,2]"));
        assert_eq!(
            val("k {\"a\":\"#{1+1}\", \"b\": {\"c\": [1]}}", "k").as_deref(),
            Some(r#"{"a":"2","b":{"c":[1]}}"#)
        );
        assert_eq!(val("k {\"a\":\"x#y\"}", "k").as_deref(), Some(r#"{"a":"x#y"}"#));
        assert!(parse("k [1,2,]").unwrap_err().contains("t.conf:1:3: error: invalid JSON array value"));
        assert!(parse("k [a-z]+\nx y").unwrap_err().contains("t.conf:1:3: error: invalid JSON array value"));
        assert!(parse("k [1, 2").unwrap_err().contains("t.conf:1:3: error: got incomplete JSON array configuration"));
        assert!(parse("k []extra").unwrap_err().contains("expected end of line"));
        assert_eq!(val("k t[", "k").as_deref(), Some("t["));
    }

    #[test]
    fn sections_and_args() {
        let root = parse("<match   a.**  b.*   >\n  @type stdout\n  <buffer tag, time>\n  </buffer>\n</match>\n<source> # c\n</source>").unwrap();
        assert_eq!(root.elements.len(), 2);
        assert_eq!(root.elements[0].arg, "a.**  b.*");
        assert_eq!(root.elements[0].elements[0].arg, "tag, time");
        assert_eq!(root.elements[1].name, "source");
        assert!(parse("<match a></match>").unwrap_err().contains("t.conf:1:10: error: expected end of line after tag"));
        assert!(parse("<a>\n<b>\n</a>\n</b>").unwrap_err().contains("t.conf:3:1: error: unmatched end tag"));
        assert!(
            parse("<match a>\nk v")
                .unwrap_err()
                .contains("t.conf:1:1: error: expected end tag '</match>' but got end of file")
        );
        assert!(parse("@k v").unwrap_err().contains("t.conf:1:1: error: '@' is the system reserved prefix"));
        let nested = parse("<match x>\n <y>\n  @k v\n </y>\n</match>").unwrap();
        assert_eq!(nested.elements[0].elements[0].get("@k"), Some("v"));
        assert_eq!(parse("@type foo bar").unwrap().get("@type"), Some("foo bar"));
        let quoted = parse("<match \"#{1+1}.x\">\n</match>").unwrap();
        assert_eq!(quoted.elements[0].arg, "2.x");
    }

    #[test]
    fn includes_resolve_relative_sorted_and_in_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("conf.d/b.conf"), "<match b>\n</match>\n").unwrap();
        std::fs::write(dir.path().join("conf.d/a.conf"), "<match a>\n</match>\n").unwrap();
        std::fs::write(dir.path().join("inner.conf"), "flush_interval 5s\n").unwrap();
        let main = dir.path().join("main.conf");
        std::fs::write(&main, "<match first>\n</match>\n@include conf.d/*.conf\n<match last>\n  @include inner.conf\n</match>\n@include missing.conf\n").unwrap();
        let mut sm = SourceMap::new();
        let mut d = Diagnostics::new(false);
        let root = parse_file(&main, &TestEval, &mut sm, &mut d).unwrap();
        let args: Vec<_> = root.elements.iter().map(|e| e.arg.as_str()).collect();
        assert_eq!(args, ["first", "a", "b", "last"]);
        assert_eq!(root.elements[3].get("flush_interval"), Some("5s"));
        let p = root.elements[3].param("flush_interval").unwrap();
        assert!(sm.location(p.key_span).unwrap().file.ends_with("inner.conf"));
        assert_eq!(d.len(), 1);
        assert!(d.iter().next().unwrap().message.contains("missing.conf does not exist"));
    }

    #[test]
    fn self_include_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("self.conf");
        std::fs::write(&main, "@include self.conf\n").unwrap();
        let mut sm = SourceMap::new();
        let mut d = Diagnostics::new(false);
        assert!(parse_file(&main, &TestEval, &mut sm, &mut d).is_none() || d.has_errors());
        assert!(d.iter().any(|x| x.message.contains("nested deeper")));
    }

    #[test]
    fn code_end_skips_strings_and_braces() {
        let s = br#"ENV["a}"] || {'b' => '}'}["b"]} tail"#;
        assert_eq!(find_code_end(s, 0), Some(30));
        assert_eq!(find_code_end(b"\"#{x}\"} t", 0), Some(6));
        assert_eq!(find_code_end(b"open", 0), None);
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(text in "[<>/@a-z \"'#{}\\[\\]\\\\\n\t:,.0-9]{0,80}") {
            let _ = parse(&text);
        }
    }
}
