//! Tag patterns of `<match>` and `<filter>`, with Fluentd's semantics.
//!
//! * `*` matches one tag part (possibly empty): `a.*` matches `a.b`, not `a` or `a.b.c`.
//! * `**` matches zero or more parts: `a.**` matches `a`, `a.b`, `a.b.c`, not `ab`.
//! * `{x,y}` is alternation and nests: `a.{b.**,c}`.
//! * `/regex/` is a Ruby regular expression anchored at both ends.
//! * `\c` is a literal `c`; other punctuation is literal; a trailing `.` is dropped.
//! * Several patterns separated by blanks match if any does.
//!
//! A pattern compiles to the same regular expression Fluentd builds
//! (`match.rb`), with fast paths for `**` and for plain tags.

use sluice_ruby::{RubyFlags, RubyRegex};

/// One compiled pattern.
#[derive(Debug, Clone)]
enum One {
    All,
    Exact(String),
    Regex(RubyRegex),
}

/// A compiled `<match>`/`<filter>` argument: one or more patterns.
#[derive(Debug, Clone)]
pub struct MatchPattern {
    source: String,
    any: Vec<One>,
}

impl MatchPattern {
    /// Compile a directive argument. An empty argument means `**`.
    ///
    /// # Errors
    /// A message for an unterminated `/regex` or an invalid regular expression.
    pub fn new(arg: &str) -> Result<MatchPattern, String> {
        let arg = arg.trim();
        let parts: Vec<&str> = if arg.is_empty() { vec!["**"] } else { arg.split_whitespace().collect() };
        let any = parts.iter().map(|p| compile(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(MatchPattern { source: if arg.is_empty() { "**".into() } else { arg.to_string() }, any })
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if `tag` matches.
    pub fn matches(&self, tag: &str) -> bool {
        self.any.iter().any(|p| match p {
            One::All => true,
            One::Exact(s) => s == tag,
            One::Regex(r) => r.is_match(tag),
        })
    }
}

fn compile(pat: &str) -> Result<One, String> {
    if pat == "**" {
        return Ok(One::All);
    }
    if let Some(body) = pat.strip_prefix('/') {
        let Some(inner) = body.strip_suffix('/') else {
            return Err(format!(
                "invalid match - regex: {pat} (a /regex/ pattern must end with '/' and cannot contain spaces)"
            ));
        };
        let r = RubyRegex::new(&format!(r"\A(?:{inner})\z"), RubyFlags::default())
            .map_err(|e| format!("invalid match - regex: {pat}: {e}"))?;
        return Ok(One::Regex(r));
    }
    if pat.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@' | b':')) {
        return Ok(One::Exact(pat.trim_end_matches('.').to_string()).normalize(pat));
    }
    let re = glob_to_regex(pat);
    RubyRegex::new(&re, RubyFlags::default()).map(One::Regex).map_err(|e| format!("invalid match pattern {pat}: {e}"))
}

impl One {
    /// `a.` drops only one trailing dot; keep the exact fast path honest.
    fn normalize(self, pat: &str) -> One {
        match self {
            One::Exact(_) => One::Exact(pat.strip_suffix('.').unwrap_or(pat).to_string()),
            other => other,
        }
    }
}

fn regex_escape(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() || c == '_' {
        out.push(c);
    } else {
        out.push('\\');
        out.push(c);
    }
}

/// Fluentd's glob compiler (`GlobMatchPattern#initialize`), producing Onigmo syntax.
fn glob_to_regex(pat: &str) -> String {
    let chars: Vec<char> = pat.chars().collect();
    let mut regex: Vec<String> = vec![String::new()];
    let mut alts: Vec<Vec<String>> = Vec::new();
    let mut escape = false;
    let mut dot = false;
    let mut i = 0;
    macro_rules! emit {
        ($s:expr) => {
            regex.last_mut().expect("regex stack is never empty").push_str($s)
        };
    }
    while i < chars.len() {
        let c = chars[i];
        if escape {
            let mut s = String::new();
            regex_escape(c, &mut s);
            emit!(&s);
            escape = false;
            i += 1;
            continue;
        }
        if c == '*' && chars.get(i + 1) == Some(&'*') {
            if dot {
                emit!(r"(?![^\.])");
                dot = false;
            }
            if chars.get(i + 2) == Some(&'.') {
                emit!(r"(?:.*\.|\A)");
                i += 3;
            } else {
                emit!(".*");
                i += 2;
            }
            continue;
        }
        if dot {
            emit!(r"\.");
            dot = false;
        }
        match c {
            '\\' => escape = true,
            '.' => dot = true,
            '*' => emit!(r"[^\.]*"),
            '{' => {
                alts.push(Vec::new());
                regex.push(String::new());
            }
            '}' if !alts.is_empty() => {
                let mut alt = alts.pop().unwrap_or_default();
                alt.push(regex.pop().unwrap_or_default());
                let group = format!("(?:{})", alt.iter().map(|a| format!("(?:{a})")).collect::<Vec<_>>().join("|"));
                emit!(&group);
            }
            ',' if !alts.is_empty() => {
                let cur = regex.pop().unwrap_or_default();
                if let Some(a) = alts.last_mut() {
                    a.push(cur);
                }
                regex.push(String::new());
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut s = String::new();
                s.push(c);
                emit!(&s);
            }
            c => {
                let mut s = String::new();
                regex_escape(c, &mut s);
                emit!(&s);
            }
        }
        i += 1;
    }
    // Unclosed braces: the alternatives match their own source text literally.
    while let Some(mut alt) = alts.pop() {
        alt.push(regex.pop().unwrap_or_default());
        let lits: Vec<String> = alt
            .iter()
            .map(|a| {
                let mut s = String::new();
                for c in a.chars() {
                    regex_escape(c, &mut s);
                }
                s
            })
            .collect();
        emit!(&format!("(?:{})", lits.join("|")));
    }
    format!(r"\A{}\z", regex.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        MatchPattern::new(p).unwrap().matches(t)
    }

    #[test]
    fn fluentd_match_table() {
        // (pattern, tag, expected) from Fluentd's test_match.rb behaviour.
        let cases = [
            ("a", "a", true),
            ("a.b", "aab", false),
            ("a*", "ab", true),
            ("a*", "a.b", false),
            ("*a", "a", true),
            ("*a*", "bac", true),
            ("a.*", "a.b", true),
            ("a.*", "ab", false),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.c", false),
            ("a.**", "a", true),
            ("a.**", "ab", false),
            ("a.**", "ab.c", false),
            ("a**", "ab.d.e", true),
            ("**.a", "a", true),
            ("**.a", "c.ba", false),
            ("**.a", "d.e.a", true),
            ("**a", "c.ba", true),
            ("a.{b,c}.**", "a.cd", false),
            ("a.{b,c}.**", "a.b", true),
            ("a.{b.**,c}", "a.b.c", true),
            ("a.{b.**,c}", "a.c.d", false),
            ("a.b.** a.c", "a.b.c", true),
            ("a.b.** a.c", "a.c.d", false),
            ("/a/", "abc", false),
            (r"/a\..*/", "a.b.c", true),
            (r"/(?!a\.).*/", "a.b.c", false),
            (r"/(?!a\.).*/", "b.b.c", true),
            ("a.**.b", "a.b", true),
            ("a.**.b", "a.x.y.b", true),
            ("a.**.b", "axx.b", false),
            ("a.", "a", true),
            ("a.", "a.", false),
            ("a.*", "a.", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("{a,b", "b", true),
            ("{a,b", "{a,b", false),
            ("s3.*", "s3.var.log.go-audit.go-audit.log", false),
            ("s3.**", "s3.var.log.go-audit.go-audit.log", true),
            ("s3.var.log.go-audit.go-audit.log", "s3.var.log.go-audit.go-audit.log", true),
            ("fluent.**", "fluent.info", true),
            ("", "anything.at.all", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(m(p, t), want, "pattern {p:?} tag {t:?}");
        }
        assert!(MatchPattern::new("/a").is_err());
    }

    /// Reference model: dot-separated parts; `*` is exactly one part, `**` zero or more.
    fn model(pat: &[&str], tag: &[&str]) -> bool {
        match pat.split_first() {
            None => tag.is_empty(),
            Some((&"**", rest)) => (0..=tag.len()).any(|k| model(rest, &tag[k..])),
            Some((&"*", rest)) => !tag.is_empty() && model(rest, &tag[1..]),
            Some((lit, rest)) => tag.first() == Some(lit) && model(rest, &tag[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_agrees_with_reference_model(
            pat in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "ab", "*", "**"]), 1..5),
            tag in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "ab", "c"]), 1..6),
        ) {
            // Adjacent `**` parts are redundant and outside the documented forms.
            proptest::prop_assume!(!pat.windows(2).any(|w| w[0] == "**" && w[1] == "**"));
            let p = pat.join(".");
            let t = tag.join(".");
            proptest::prop_assert_eq!(m(&p, &t), model(&pat, &tag), "pattern {} tag {}", p, t);
        }
    }
}
