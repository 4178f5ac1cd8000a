//! Splitting a followed file into lines (sans-IO).
//!
//! Bytes read from the file are appended with [`Lines::fill`]; complete
//! lines come out of [`Lines::next_line`] together with the file offset just
//! past them, so the caller always knows the position of the first byte not
//! yet consumed ([`Lines::consumed`]) — the value the pos_file stores. A
//! partial last line stays buffered and is never returned until its newline
//! arrives.
//!
//! Lines longer than `max_line_size` (counting the newline, as Fluentd
//! counts it) are skipped whole, even when they arrive in pieces; while a
//! long line is being skipped the consumed position stays at its start, so
//! a restart skips it again instead of emitting its tail. Without
//! `max_line_size` a hard limit ([`HARD_LIMIT`]) bounds memory.
//!
//! The newline is `\n` in the file's encoding: one byte for ASCII-compatible
//! encodings, an aligned 2- or 4-byte unit for UTF-16/32.

/// Longest line kept when `max_line_size` is not set.
pub const HARD_LIMIT: usize = 16 << 20;

/// How a newline is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newline {
    /// `0a`
    Byte,
    /// `0a 00`
    Utf16Le,
    /// `00 0a`
    Utf16Be,
}

impl Newline {
    fn unit(self) -> usize {
        match self {
            Newline::Byte => 1,
            Newline::Utf16Le | Newline::Utf16Be => 2,
        }
    }

    /// Index of the first newline unit at or after `from` (an aligned offset).
    fn find(self, buf: &[u8], from: usize) -> Option<usize> {
        match self {
            Newline::Byte => memchr::memchr(b'\n', &buf[from..]).map(|p| p + from),
            Newline::Utf16Le | Newline::Utf16Be => {
                let want: [u8; 2] = if self == Newline::Utf16Le { [0x0a, 0] } else { [0, 0x0a] };
                let mut i = from;
                while i + 2 <= buf.len() {
                    if buf[i..i + 2] == want {
                        return Some(i);
                    }
                    i += 2;
                }
                None
            }
        }
    }
}

/// What [`Lines::next_line`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its newline, and the offset after the newline.
    Text(&'a [u8], u64),
    /// A line over the limit was dropped; its length including the newline.
    TooLong(u64),
}

/// A line splitter over one file's bytes.
#[derive(Debug)]
pub struct Lines {
    buf: Vec<u8>,
    /// Bytes of `buf` already returned as lines.
    head: usize,
    /// File offset of `buf[0]`.
    base: u64,
    max: usize,
    nl: Newline,
    /// Skipping a long line that started at this offset.
    skipping: Option<u64>,
    /// Where to resume the newline search in `buf` (bytes before it have none).
    scanned: usize,
}

impl Lines {
    /// A splitter whose first byte is at file offset `offset`.
    pub fn new(offset: u64, max_line_size: Option<usize>, nl: Newline) -> Lines {
        Lines {
            buf: Vec::new(),
            head: 0,
            base: offset,
            max: max_line_size.unwrap_or(HARD_LIMIT),
            nl,
            skipping: None,
            scanned: 0,
        }
    }

    /// Offset of the first byte not consumed: the start of the partial
    /// line (or of the long line being skipped).
    pub fn consumed(&self) -> u64 {
        self.skipping.unwrap_or(self.base + self.head as u64)
    }

    /// Offset just past the bytes given so far (where the next read starts).
    pub fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Bytes held for a line not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Space to read up to `n` more bytes into; call [`Lines::filled`] with
    /// how many were written.
    pub fn spare(&mut self, n: usize) -> &mut [u8] {
        self.compact();
        let len = self.buf.len();
        self.buf.resize(len + n, 0);
        &mut self.buf[len..]
    }

    /// After [`Lines::spare`]: keep `n` of the spare bytes.
    pub fn filled(&mut self, spare: usize, n: usize) {
        let len = self.buf.len() - spare;
        self.buf.truncate(len + n);
    }

    /// Append bytes.
    pub fn fill(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    fn compact(&mut self) {
        if self.head > 0 && (self.head == self.buf.len() || self.head >= 64 * 1024) {
            self.buf.drain(..self.head);
            self.base += self.head as u64;
            self.scanned = self.scanned.saturating_sub(self.head);
            self.head = 0;
        }
    }

    /// The next complete line, if any.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        {
            let rel = self.scanned.saturating_sub(self.head);
            let from = self.head + rel - rel % self.nl.unit();
            match self.nl.find(&self.buf, from) {
                Some(i) => {
                    let start = self.head;
                    let end = i + self.nl.unit();
                    self.head = end;
                    self.scanned = end;
                    let off = self.base + end as u64;
                    if let Some(s) = self.skipping.take() {
                        return Some(Line::TooLong(off - s));
                    }
                    if end - start > self.max {
                        return Some(Line::TooLong((end - start) as u64));
                    }
                    Some(Line::Text(&self.buf[start..i], off))
                }
                None => {
                    self.scanned = self.buf.len();
                    // A partial line already over the limit is dropped as it arrives.
                    if self.buf.len() - self.head > self.max {
                        if self.skipping.is_none() {
                            self.skipping = Some(self.base + self.head as u64);
                        }
                        // Keep any unaligned tail byte of a multi-byte newline unit.
                        let keep = (self.buf.len() - self.head) % self.nl.unit();
                        self.head = self.buf.len() - keep;
                        self.scanned = self.head;
                    }
                    None
                }
            }
        }
    }

    /// Forget everything and restart at `offset` (after truncation or a reopen).
    pub fn reset(&mut self, offset: u64) {
        self.buf.clear();
        self.head = 0;
        self.base = offset;
        self.skipping = None;
        self.scanned = 0;
    }

    /// The partial last line (for a rotated file whose writer is gone).
    pub fn take_partial(&mut self) -> Option<(Vec<u8>, u64)> {
        if self.skipping.is_some() || self.head == self.buf.len() {
            return None;
        }
        let v = self.buf[self.head..].to_vec();
        self.head = self.buf.len();
        Some((v, self.end()))
    }
}

/// Ruby's `chomp`: one trailing `\r` (the `\n` is already gone).
pub fn chomp_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(l: &mut Lines) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Some(x) = l.next_line() {
            out.push(match x {
                Line::Text(t, o) => (String::from_utf8_lossy(t).into_owned(), o),
                Line::TooLong(n) => (format!("<skipped {n}>"), 0),
            });
        }
        out
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let mut l = Lines::new(100, None, Newline::Byte);
        l.fill(b"ab\ncd");
        assert_eq!(collect(&mut l), vec![("ab".into(), 103)]);
        assert_eq!(l.consumed(), 103);
        l.fill(b"e\n\nf");
        assert_eq!(collect(&mut l), vec![("cde".into(), 107), ("".into(), 108)]);
        assert_eq!(l.consumed(), 108);
        assert_eq!(l.pending(), 1);
        assert_eq!(l.end(), 109);
    }

    #[test]
    fn max_line_size_counts_the_newline() {
        let mut l = Lines::new(0, Some(5), Newline::Byte);
        l.fill(b"1234\n12345\nok\n");
        assert_eq!(collect(&mut l), vec![("1234".into(), 5), ("<skipped 6>".into(), 0), ("ok".into(), 14)]);
        // A long line arriving in pieces is dropped whole; consumed stays at its start.
        let mut l = Lines::new(0, Some(5), Newline::Byte);
        l.fill(b"a\n0123456");
        assert_eq!(collect(&mut l), vec![("a".into(), 2)]);
        assert_eq!(l.consumed(), 2);
        l.fill(b"789");
        assert_eq!(collect(&mut l), vec![]);
        assert_eq!(l.consumed(), 2);
        l.fill(b"\nb\n");
        assert_eq!(collect(&mut l), vec![("<skipped 11>".into(), 0), ("b".into(), 15)]);
        assert_eq!(l.consumed(), 15);
    }

    #[test]
    fn utf16_newlines_are_aligned() {
        let text: Vec<u8> = "a\u{0a00}b\nc\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut l = Lines::new(0, None, Newline::Utf16Le);
        l.fill(&text[..5]);
        l.fill(&text[5..]);
        let lines: Vec<Vec<u8>> = std::iter::from_fn(|| match l.next_line() {
            Some(Line::Text(t, _)) => Some(t.to_vec()),
            _ => None,
        })
        .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            String::from_utf16_lossy(&lines[0].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>()),
            "a\u{0a00}b"
        );
    }

    proptest::proptest! {
        /// Any chunking gives the same lines and offsets as one whole read.
        #[test]
        fn chunking_does_not_matter(text in proptest::collection::vec(proptest::sample::select(b"ab\n\r".to_vec()), 0..200), cuts in proptest::collection::vec(0usize..200, 0..10), max in proptest::option::of(1usize..12)) {
            let mut whole = Lines::new(7, max, Newline::Byte);
            whole.fill(&text);
            let want = collect(&mut whole);
            let mut cuts = cuts.into_iter().map(|c| c.min(text.len())).collect::<Vec<_>>();
            cuts.push(0);
            cuts.push(text.len());
            cuts.sort_unstable();
            let mut l = Lines::new(7, max, Newline::Byte);
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                let chunk = &text[w[0]..w[1]];
                let spare = l.spare(chunk.len());
                spare.copy_from_slice(chunk);
                let n = chunk.len();
                l.filled(n, n);
                got.extend(collect(&mut l));
            }
            // Skipped lines report their full length only when seen whole; compare texts and ends.
            let norm = |v: Vec<(String, u64)>| v.into_iter().map(|(s, o)| if s.starts_with("<skipped") { ("<skipped>".to_string(), 0) } else { (s, o) }).collect::<Vec<_>>();
            proptest::prop_assert_eq!(norm(got), norm(want));
            proptest::prop_assert_eq!(l.consumed(), whole.consumed());
        }
    }
}
