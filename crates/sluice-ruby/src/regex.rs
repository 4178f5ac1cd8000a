//! Ruby (Onigmo) regular expressions on Rust engines.
//!
//! Fluentd users write Ruby regexps: `/…/i` literals in `<regexp>`, parser
//! `expression`s with `(?<name>…)`, `\A`, `\z`, `\h`. Ruby's `^` and `$`
//! always match at line boundaries, and its `m` flag is what other engines
//! call "dot matches newline". [`RubyRegex::new`] translates those rules and
//! compiles with the linear-time `regex` crate, falling back to
//! `fancy-regex` for look-around, back-references and atomic groups.

use std::borrow::Cow;

/// A compiled Ruby-syntax regular expression.
#[derive(Clone, Debug)]
pub struct RubyRegex {
    source: String,
    engine: Engine,
}

#[derive(Clone, Debug)]
enum Engine {
    Fast(regex::Regex),
    Fancy(fancy_regex::Regex),
}

/// Flags of a Ruby regexp literal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RubyFlags {
    /// `i`
    pub ignore_case: bool,
    /// `m`: `.` matches newlines.
    pub multiline: bool,
    /// `x`: extended syntax.
    pub extended: bool,
}

impl RubyRegex {
    /// Compile a pattern written in Ruby syntax (without slashes).
    ///
    /// # Errors
    /// The engine's message if the pattern is invalid in both engines.
    pub fn new(pattern: &str, flags: RubyFlags) -> Result<RubyRegex, String> {
        let translated = translate(pattern);
        let mut prefix = String::from("(?m");
        if flags.ignore_case {
            prefix.push('i');
        }
        if flags.multiline {
            prefix.push('s');
        }
        if flags.extended {
            prefix.push('x');
        }
        prefix.push(')');
        let full = format!("{prefix}{translated}");
        let engine = match regex::Regex::new(&full) {
            Ok(r) => Engine::Fast(r),
            Err(fast_err) => match fancy_regex::Regex::new(&full) {
                Ok(r) => Engine::Fancy(r),
                Err(_) => return Err(clean_error(&fast_err.to_string())),
            },
        };
        Ok(RubyRegex { source: pattern.to_string(), engine })
    }

    /// Parse Fluentd's regexp value: `/pattern/flags` or a bare pattern.
    ///
    /// # Errors
    /// For a missing right slash or an invalid pattern.
    pub fn parse_literal(s: &str) -> Result<RubyRegex, String> {
        match split_literal(s)? {
            (p, Some(flags)) => RubyRegex::new(p, flags),
            (p, None) => RubyRegex::new(p, RubyFlags::default()),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        match &self.engine {
            Engine::Fast(r) => r.is_match(text),
            Engine::Fancy(r) => r.is_match(text).unwrap_or(false),
        }
    }

    /// Byte range of the first match at or after `start`.
    pub fn find_at(&self, text: &str, start: usize) -> Option<(usize, usize)> {
        match &self.engine {
            Engine::Fast(r) => r.find_at(text, start).map(|m| (m.start(), m.end())),
            Engine::Fancy(r) => r.find_from_pos(text, start).ok().flatten().map(|m| (m.start(), m.end())),
        }
    }

    /// Named groups in order of appearance.
    pub fn capture_names(&self) -> Vec<String> {
        match &self.engine {
            Engine::Fast(r) => r.capture_names().flatten().map(String::from).collect(),
            Engine::Fancy(r) => r.capture_names().flatten().map(String::from).collect(),
        }
    }

    /// Match and return `(name, value)` for every named group (unmatched
    /// optional groups give `None`), or `None` if there is no match.
    pub fn named_captures<'t>(&self, text: &'t str) -> Option<Vec<(String, Option<&'t str>)>> {
        match &self.engine {
            Engine::Fast(r) => {
                let c = r.captures(text)?;
                Some(
                    r.capture_names()
                        .enumerate()
                        .filter_map(|(i, n)| n.map(|n| (n.to_string(), c.get(i).map(|m| m.as_str()))))
                        .collect(),
                )
            }
            Engine::Fancy(r) => {
                let c = r.captures(text).ok()??;
                Some(
                    r.capture_names()
                        .enumerate()
                        .filter_map(|(i, n)| n.map(|n| (n.to_string(), c.get(i).map(|m| m.as_str()))))
                        .collect(),
                )
            }
        }
    }

    /// Replace every match with `rep` (no group references).
    pub fn replace_all<'t>(&self, text: &'t str, rep: &str) -> Cow<'t, str> {
        match &self.engine {
            Engine::Fast(r) => r.replace_all(text, regex::NoExpand(rep)),
            Engine::Fancy(r) => r.replace_all(text, fancy_regex::NoExpand(rep)),
        }
    }

    /// True if the linear-time engine is used.
    pub fn is_linear(&self) -> bool {
        matches!(self.engine, Engine::Fast(_))
    }
}

impl PartialEq for RubyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A Ruby-syntax regular expression matched against bytes, as Fluentd
/// matches lines read as binary (in_tail): `.` is one byte, `\w` `\d` `\s`
/// are ASCII, invalid UTF-8 never prevents a match. Patterns that need
/// Unicode classes use Unicode mode on bytes; patterns that need look-around
/// or back-references run on `fancy-regex` over the text made valid UTF-8.
#[derive(Clone, Debug)]
pub struct ByteRegex {
    source: String,
    engine: ByteEngine,
    names: Vec<Option<String>>,
}

#[derive(Clone, Debug)]
enum ByteEngine {
    Bytes(regex::bytes::Regex),
    Fancy(fancy_regex::Regex),
}

/// Byte ranges of a match's groups (index 0 is the whole match).
pub type Groups = Vec<Option<(usize, usize)>>;

impl ByteRegex {
    /// Compile a pattern written in Ruby syntax (without slashes).
    ///
    /// # Errors
    /// The engine's message if no engine accepts the pattern.
    pub fn new(pattern: &str, flags: RubyFlags) -> Result<ByteRegex, String> {
        let translated = translate(pattern);
        let mut f = String::from("m");
        if flags.ignore_case {
            f.push('i');
        }
        if flags.multiline {
            f.push('s');
        }
        if flags.extended {
            f.push('x');
        }
        let ascii = format!("(?{f}-u){translated}");
        let engine = match regex::bytes::Regex::new(&ascii) {
            Ok(r) => ByteEngine::Bytes(r),
            Err(first) => match regex::bytes::Regex::new(&format!("(?{f}){translated}")) {
                Ok(r) => ByteEngine::Bytes(r),
                Err(_) => match fancy_regex::Regex::new(&format!("(?{f}){translated}")) {
                    Ok(r) => ByteEngine::Fancy(r),
                    Err(_) => return Err(clean_error(&first.to_string())),
                },
            },
        };
        let names = match &engine {
            ByteEngine::Bytes(r) => r.capture_names().map(|n| n.map(String::from)).collect(),
            ByteEngine::Fancy(r) => r.capture_names().map(|n| n.map(String::from)).collect(),
        };
        Ok(ByteRegex { source: pattern.to_string(), engine, names })
    }

    /// Parse Fluentd's regexp value: `/pattern/flags` or a bare pattern.
    ///
    /// # Errors
    /// For a missing right slash or an invalid pattern.
    pub fn parse_literal(s: &str) -> Result<ByteRegex, String> {
        match split_literal(s)? {
            (p, Some(flags)) => ByteRegex::new(p, flags),
            (p, None) => ByteRegex::new(p, RubyFlags::default()),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Group names by index (`None` for the whole match and unnamed groups).
    pub fn group_names(&self) -> &[Option<String>] {
        &self.names
    }

    /// True if any group is named.
    pub fn has_named_groups(&self) -> bool {
        self.names.iter().any(Option::is_some)
    }

    /// True if the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &[u8]) -> bool {
        match &self.engine {
            ByteEngine::Bytes(r) => r.is_match(text),
            ByteEngine::Fancy(r) => r.is_match(&String::from_utf8_lossy(text)[..]).unwrap_or(false),
        }
    }

    /// The first match at or after `start`: every group's byte range.
    pub fn captures_at(&self, text: &[u8], start: usize) -> Option<Groups> {
        match &self.engine {
            ByteEngine::Bytes(r) => {
                let mut locs = r.capture_locations();
                r.captures_read_at(&mut locs, text, start)?;
                Some((0..locs.len()).map(|i| locs.get(i)).collect())
            }
            ByteEngine::Fancy(r) => {
                // fancy-regex needs &str: map invalid bytes to U+FFFD only when present.
                match std::str::from_utf8(text) {
                    Ok(t) => {
                        let c = r.captures_from_pos(t, start).ok()??;
                        Some((0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect())
                    }
                    Err(_) => None,
                }
            }
        }
    }
}

/// Split `/pattern/flags` into the pattern and its flags; a value without
/// a leading slash is a bare pattern.
fn split_literal(s: &str) -> Result<(&str, Option<RubyFlags>), String> {
    let Some(rest) = s.strip_prefix('/') else { return Ok((s, None)) };
    let Some(right) = rest.rfind('/') else {
        return Err(format!("invalid regexp: missing right slash: {s}"));
    };
    let opts = &rest[right + 1..];
    if opts.len() > 3 || !opts.chars().all(|c| matches!(c, 'i' | 'm' | 'x' | 'o' | 'n' | 'e' | 's' | 'u')) {
        return Err(format!("invalid regexp: missing right slash: {s}"));
    }
    let flags =
        RubyFlags { ignore_case: opts.contains('i'), multiline: opts.contains('m'), extended: opts.contains('x') };
    Ok((&rest[..right], Some(flags)))
}

fn clean_error(e: &str) -> String {
    // regex-syntax errors are multi-line with a caret diagram; keep the last line.
    e.lines().rev().find(|l| l.trim_start().starts_with("error:")).map_or_else(
        || e.lines().next().unwrap_or(e).to_string(),
        |l| l.trim().trim_start_matches("error: ").to_string(),
    )
}

/// Rewrite Ruby-only syntax into what the Rust engines understand.
fn translate(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('h') => out.push_str(if in_class > 0 { "0-9a-fA-F" } else { "[0-9a-fA-F]" }),
                Some('H') if in_class == 0 => out.push_str("[^0-9a-fA-F]"),
                Some('Z') if in_class == 0 => out.push_str(r"(?:\n?\z)"),
                Some('/') => out.push('/'),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' => {
                in_class += 1;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    // A leading ']' is literal in Ruby.
                    chars.next();
                    out.push_str(r"\]");
                }
            }
            ']' if in_class > 0 => {
                in_class -= 1;
                out.push(']');
            }
            '(' if in_class == 0 && chars.peek() == Some(&'?') => {
                // Ruby's inline (?m) is dot-all.
                out.push('(');
                let mut look = chars.clone();
                look.next();
                let mut flags = String::new();
                while let Some(&f) = look.peek() {
                    if f.is_ascii_alphabetic() || f == '-' {
                        flags.push(f);
                        look.next();
                    } else {
                        break;
                    }
                }
                if !flags.is_empty()
                    && matches!(look.peek(), Some(':') | Some(')'))
                    && flags.chars().all(|f| "mix-".contains(f))
                {
                    chars = look;
                    out.push('?');
                    out.push_str(&flags.replace('m', "s"));
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_syntax_is_translated() {
        let r = RubyRegex::parse_literal(r"/^(?<host>\h+) \/x$/i").unwrap();
        assert!(r.is_match("DEADbeef /x"));
        assert!(r.is_linear());
        assert_eq!(r.capture_names(), ["host"]);
        // ^ and $ are line anchors in Ruby
        assert!(RubyRegex::parse_literal("/^b$/").unwrap().is_match("a\nb\nc"));
        // /m makes . match newline
        assert!(RubyRegex::parse_literal("/a.b/m").unwrap().is_match("a\nb"));
        assert!(!RubyRegex::parse_literal("/a.b/").unwrap().is_match("a\nb"));
        assert!(RubyRegex::new("(?m:a.b)", RubyFlags::default()).unwrap().is_match("a\nb"));
        assert!(RubyRegex::new(r"\Aabc\Z", RubyFlags::default()).unwrap().is_match("abc\n"));
    }

    #[test]
    fn byte_regex_matches_bytes_like_ruby_binary() {
        let r = ByteRegex::new(r"^(?<a>.)(?<b>.*)$", RubyFlags::default()).unwrap();
        let g = r.captures_at("éz".as_bytes(), 0).unwrap();
        assert_eq!(g[1], Some((0, 1)));
        assert_eq!(g[2], Some((1, 3)));
        assert_eq!(r.group_names()[1].as_deref(), Some("a"));
        // Invalid UTF-8 does not prevent a match.
        let r = ByteRegex::parse_literal(r"/^(?<k>[^ ]*) (?<v>\S+)$/").unwrap();
        let g = r.captures_at(b"a\xff b\xfe", 0).unwrap();
        assert_eq!((g[1], g[2]), (Some((0, 2)), Some((3, 5))));
        // \w is ASCII.
        assert!(!ByteRegex::new(r"^\w$", RubyFlags::default()).unwrap().is_match("é".as_bytes()));
        // Unicode classes still compile; look-behind goes to fancy-regex.
        assert!(ByteRegex::new(r"\p{Han}", RubyFlags::default()).unwrap().is_match("漢".as_bytes()));
        let r = ByteRegex::new(r"\[.*?(?<!\\)\]", RubyFlags::default()).unwrap();
        assert_eq!(r.captures_at(br"x [a\]b] y", 0).unwrap()[0], Some((2, 8)));
        assert!(ByteRegex::parse_literal("/abc").is_err());
    }

    #[test]
    fn fancy_fallback_and_errors() {
        let r = RubyRegex::new(r"^(?<w>\w+) \k<w>$", RubyFlags::default()).unwrap();
        assert!(!r.is_linear());
        assert!(r.is_match("hey hey"));
        assert!(!r.is_match("hey you"));
        assert!(RubyRegex::new("foo(?=bar)", RubyFlags::default()).unwrap().is_match("foobar"));
        assert!(RubyRegex::parse_literal("/abc").is_err());
        assert!(RubyRegex::new("(unclosed", RubyFlags::default()).is_err());
        let caps = RubyRegex::new(r"(?<a>x)(?<b>y)?", RubyFlags::default()).unwrap().named_captures("x").unwrap();
        assert_eq!(caps, vec![("a".to_string(), Some("x")), ("b".to_string(), None)]);
    }
}
