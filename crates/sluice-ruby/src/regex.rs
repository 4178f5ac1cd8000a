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
        if let Some(rest) = s.strip_prefix('/') {
            let Some(right) = rest.rfind('/') else {
                return Err(format!("invalid regexp: missing right slash: {s}"));
            };
            let opts = &rest[right + 1..];
            if opts.len() > 3 || !opts.chars().all(|c| matches!(c, 'i' | 'm' | 'x' | 'o' | 'n' | 'e' | 's' | 'u')) {
                return Err(format!("invalid regexp: missing right slash: {s}"));
            }
            let flags = RubyFlags {
                ignore_case: opts.contains('i'),
                multiline: opts.contains('m'),
                extended: opts.contains('x'),
            };
            RubyRegex::new(&rest[..right], flags)
        } else {
            RubyRegex::new(s, RubyFlags::default())
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
