//! Configuration diagnostics: collected, never thrown.
//!
//! Every problem found while parsing and configuring is pushed into
//! [`Diagnostics`] with its span and section path, so `--dry-run` reports
//! all of them at once:
//!
//! ```text
//! fluent.conf:12:5: warning: parameter 'flush_intrval' in <match app.**> > <buffer> is not used
//!   help: did you mean `flush_interval`?
//!    |
//! 12 |     flush_intrval 2s
//!    |     ^^^^^^^^^^^^^
//! ```

use crate::source::{SourceMap, Span};
use std::fmt::Write as _;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Startup continues (Fluentd's "warn").
    Warning,
    /// Startup fails.
    Error,
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the parameter or section involved.
    pub message: String,
    /// Where (may point nowhere for problems not tied to a line).
    pub span: Span,
    /// A suggestion, e.g. "did you mean `flush_interval`?".
    pub help: Option<String>,
}

/// The problems collected so far.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
    /// `--strict`: unknown parameters and lenient coercions become errors.
    pub strict: bool,
}

impl Diagnostics {
    /// An empty collection.
    pub fn new(strict: bool) -> Self {
        Diagnostics { list: Vec::new(), strict }
    }

    /// Record an error.
    pub fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Error, span, message.into())
    }

    /// Record a warning.
    pub fn warn(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Warning, span, message.into())
    }

    /// Record a warning that `--strict` turns into an error.
    pub fn lenient(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        let sev = if self.strict { Severity::Error } else { Severity::Warning };
        self.push(sev, span, message.into())
    }

    fn push(&mut self, severity: Severity, span: Span, message: String) -> &mut Diagnostic {
        self.list.push(Diagnostic { severity, message, span, help: None });
        self.list.last_mut().expect("just pushed")
    }

    /// Add everything from `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.list.extend(other.list);
    }

    /// True if any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// All diagnostics in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number recorded.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Render all, each as `FILE:LINE:COL: severity: message` plus help and a
    /// source excerpt.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        for d in &self.list {
            out.push_str(&d.render(sources));
        }
        out
    }
}

impl Diagnostic {
    /// Attach a suggestion.
    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }

    /// The first line: `FILE:LINE:COL: error: message`.
    pub fn headline(&self, sources: &SourceMap) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match sources.location(self.span) {
            Some(l) => format!("{}:{}:{}: {sev}: {}", l.file, l.line, l.col, self.message),
            None => format!("{sev}: {}", self.message),
        }
    }

    /// Headline, help and an excerpt with a caret under the span.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = self.headline(sources);
        out.push('\n');
        if let Some(h) = &self.help {
            let _ = writeln!(out, "  help: {h}");
        }
        if let Some(loc) = sources.location(self.span)
            && let Some(text) = sources.line_text(self.span.file, loc.line)
        {
            let num = loc.line.to_string();
            let pad = " ".repeat(num.len());
            let width = sources.snippet(self.span).map_or(1, |s| s.lines().next().unwrap_or("").chars().count().max(1));
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{num} | {text}");
            let _ = writeln!(out, "{pad} | {}{}", " ".repeat(loc.col - 1), "^".repeat(width));
        }
        out
    }
}

/// The closest candidate to `word` by edit distance, if close enough to be a
/// plausible typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(word, c);
        let limit = (c.len().max(word.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance between two strings (in characters).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn suggestions() {
        let names = ["flush_interval", "flush_mode", "timekey", "chunk_limit_size"];
        assert_eq!(did_you_mean("flush_intrval", names), Some("flush_interval"));
        assert_eq!(did_you_mean("timekye", names), Some("timekey"));
        assert_eq!(did_you_mean("completely_else", names), None);
    }

    #[test]
    fn renders_location_help_and_caret() {
        let mut sm = SourceMap::new();
        let f = sm.add(Path::new("f.conf"), "f.conf".into(), "<match **>\n  flush_intrval 2s\n</match>\n".into());
        let mut d = Diagnostics::new(false);
        d.warn(Span::new(f, 13, 26), "parameter 'flush_intrval' in <match **> is not used")
            .help("did you mean `flush_interval`?");
        let text = d.render(&sm);
        assert_eq!(
            text,
            "f.conf:2:3: warning: parameter 'flush_intrval' in <match **> is not used\n  help: did you mean `flush_interval`?\n  |\n2 |   flush_intrval 2s\n  |   ^^^^^^^^^^^^^\n"
        );
        assert!(!d.has_errors());
        let mut strict = Diagnostics::new(true);
        strict.lenient(Span::NONE, "x");
        assert!(strict.has_errors());
    }
}
