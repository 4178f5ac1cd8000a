//! Source files and spans.
//!
//! Every node of the parsed configuration carries a [`Span`] into the file
//! it came from (an `@include`d file has its own [`FileId`]), so any
//! diagnostic can say `FILE:LINE:COL`.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
pub type FileId = u32;

/// A byte range in one source file. The default span points nowhere (used
/// for values that do not come from a file, such as defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file, or `u32::MAX` for "no location".
    pub file: FileId,
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset past the last byte.
    pub end: u32,
}

impl Default for Span {
    fn default() -> Self {
        Span::NONE
    }
}

impl Span {
    /// No location.
    pub const NONE: Span = Span { file: u32::MAX, start: 0, end: 0 };

    /// A span in `file` from `start` to `end`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end.max(start) as u32 }
    }

    /// True if this span points into a file.
    pub fn is_some(&self) -> bool {
        self.file != u32::MAX
    }
}

/// One loaded file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as it was opened.
    pub path: PathBuf,
    /// Path as shown in diagnostics.
    pub display: String,
    /// Contents.
    pub text: String,
    line_starts: Vec<usize>,
}

/// A resolved position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location<'a> {
    /// The file as displayed.
    pub file: &'a str,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

/// All files read while loading a configuration.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a file's contents and return its id.
    pub fn add(&mut self, path: &Path, display: String, text: String) -> FileId {
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        self.files.push(SourceFile { path: path.to_path_buf(), display, text, line_starts });
        (self.files.len() - 1) as FileId
    }

    /// The file with this id.
    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id as usize)
    }

    /// All files.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// Where a span starts.
    pub fn location(&self, span: Span) -> Option<Location<'_>> {
        let f = self.file(span.file)?;
        let off = (span.start as usize).min(f.text.len());
        let line = f.line_starts.partition_point(|&s| s <= off);
        let line_start = f.line_starts[line - 1];
        let col = f.text.get(line_start..off).map_or(off - line_start, |s| s.chars().count()) + 1;
        Some(Location { file: &f.display, line, col })
    }

    /// The text of a 1-based line, without its newline.
    pub fn line_text(&self, file: FileId, line: usize) -> Option<&str> {
        let f = self.file(file)?;
        let start = *f.line_starts.get(line.checked_sub(1)?)?;
        let end = f.line_starts.get(line).map_or(f.text.len(), |e| e - 1);
        f.text.get(start..end).map(|s| s.trim_end_matches('\r'))
    }

    /// The source text a span covers.
    pub fn snippet(&self, span: Span) -> Option<&str> {
        self.file(span.file)?.text.get(span.start as usize..span.end as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_chars() {
        let mut sm = SourceMap::new();
        let id = sm.add(Path::new("a.conf"), "a.conf".into(), "ab\nçd x\n\nlast".into());
        let loc = |o| sm.location(Span::new(id, o, o)).map(|l| (l.line, l.col));
        assert_eq!(loc(0), Some((1, 1)));
        assert_eq!(loc(3), Some((2, 1)));
        assert_eq!(loc(7), Some((2, 4))); // 'x' after a two-byte char
        assert_eq!(loc(10), Some((4, 1)));
        assert_eq!(sm.line_text(id, 2), Some("çd x"));
        assert_eq!(sm.line_text(id, 4), Some("last"));
        assert_eq!(sm.line_text(id, 5), None);
        assert!(sm.location(Span::NONE).is_none());
    }
}
