//! A fast, bounded JSON → msgpack transcoder with Oj's (Fluentd's default
//! JSON parser's) leniencies.
//!
//! Sans-IO: text in, msgpack bytes out, no value tree. Accepted beyond strict
//! JSON, as Oj compat mode accepts it: `NaN`, `Infinity`, `-Infinity`,
//! `/* … */` and `// …` comments between tokens inside containers, raw
//! control characters and invalid UTF-8 bytes inside strings (passed
//! through). Rejected as Oj rejects it: trailing text after the document,
//! lone UTF-16 surrogates in `\u` escapes, leading zeros, `1.`, `.5`,
//! single quotes, trailing commas.
//!
//! Numbers: integers that fit `i64`/`u64` become msgpack integers, others
//! (and every number with a fraction or exponent) float64. Duplicate keys
//! keep the first key's position and the last value, like a Ruby Hash.
//! Nesting is limited to [`MAX_DEPTH`].

use crate::msgpack;

/// Deepest accepted nesting of arrays and objects.
pub const MAX_DEPTH: usize = 512;

/// Why a text is not a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Syntax error at a byte offset.
    #[error("unexpected {found} at offset {at} (expected {expected})")]
    Syntax {
        /// Byte offset.
        at: usize,
        /// What was found.
        found: String,
        /// What would have been valid.
        expected: &'static str,
    },
    /// Too deeply nested.
    #[error("nesting deeper than {MAX_DEPTH} at offset {0}")]
    Depth(usize),
}

/// Where [`JsonDecoder::transcode_locate`] found the key: offsets from the
/// start of the document in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// The object has no such top-level key.
    Absent,
    /// Key start, value start, value end.
    At(usize, usize, usize),
    /// Not known (not an object, or duplicate keys were merged): search.
    Unknown,
}

/// A reusable transcoder (keeps scratch buffers between documents).
#[derive(Debug, Default)]
pub struct JsonDecoder {
    scratch: Vec<u8>,
    keys: Vec<(usize, usize)>,
    dups: bool,
    /// Top-level key to locate (when `watching`), and where it was found.
    watch: Vec<u8>,
    watching: bool,
    found: Option<(usize, usize, usize)>,
}

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn err(&self, expected: &'static str) -> JsonError {
        let found = match self.b.get(self.i) {
            None => "end of input".to_string(),
            Some(c) if c.is_ascii_graphic() => format!("'{}'", *c as char),
            Some(c) => format!("byte 0x{c:02x}"),
        };
        JsonError::Syntax { at: self.i, found, expected }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                return;
            }
        }
    }

    /// Whitespace and comments (inside containers).
    #[inline(always)]
    fn ws_c(&mut self) -> Result<(), JsonError> {
        match self.b.get(self.i) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'/') => self.ws_c_slow(),
            _ => Ok(()),
        }
    }

    #[inline(never)]
    fn ws_c_slow(&mut self) -> Result<(), JsonError> {
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'/') {
                return Ok(());
            }
            match self.b.get(self.i + 1) {
                Some(b'*') => {
                    let rest = &self.b[self.i + 2..];
                    match memchr::memmem::find(rest, b"*/") {
                        Some(p) => self.i += 2 + p + 2,
                        None => {
                            self.i = self.b.len();
                            return Err(self.err("end of comment"));
                        }
                    }
                }
                Some(b'/') => match memchr::memchr(b'\n', &self.b[self.i..]) {
                    Some(p) => self.i += p + 1,
                    None => {
                        self.i = self.b.len();
                        return Err(self.err("end of comment line"));
                    }
                },
                _ => return Err(self.err("a value")),
            }
        }
    }
}

impl JsonDecoder {
    /// A decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Transcode one JSON document (surrounding whitespace allowed) to
    /// msgpack appended to `out`. On error `out` is left as it was.
    ///
    /// # Errors
    /// The first syntax error.
    pub fn transcode(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
        self.watching = false;
        self.transcode_inner(text, out)
    }

    /// [`JsonDecoder::transcode`], also locating the top-level `key` of an
    /// object document.
    ///
    /// # Errors
    /// As [`JsonDecoder::transcode`].
    pub fn transcode_locate(&mut self, text: &[u8], out: &mut Vec<u8>, key: &str) -> Result<Located, JsonError> {
        self.watch.clear();
        self.watch.extend_from_slice(key.as_bytes());
        self.watching = true;
        let mark = out.len();
        self.transcode_inner(text, out)?;
        if self.dups || msgpack::header(out, mark).map(|h| h.kind) != Ok(msgpack::Kind::Map) {
            // Merged duplicates moved things; arrays hold several records.
            return Ok(Located::Unknown);
        }
        let Some((k, vs, ve)) = self.found else { return Ok(Located::Absent) };
        // The top-level header grew from one byte if the object is large.
        let h = msgpack::header(out, mark).map_or(1, |h| h.header_len);
        Ok(Located::At(k - mark + h - 1, vs - mark + h - 1, ve - mark + h - 1))
    }

    fn transcode_inner(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
        let mark = out.len();
        self.dups = false;
        self.found = None;
        self.keys.clear();
        let mut c = Cur { b: text, i: 0 };
        c.ws();
        let r = self.value(&mut c, out, 0).and_then(|()| {
            c.ws();
            if c.i == text.len() { Ok(()) } else { Err(c.err("end of input")) }
        });
        if let Err(e) = r {
            out.truncate(mark);
            return Err(e);
        }
        if self.dups {
            dedup_in_place(out, mark);
        }
        Ok(())
    }

    fn value(&mut self, c: &mut Cur<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        match c.b.get(c.i) {
            Some(b'"') => self.string(c, out).map(drop),
            Some(b'{') => self.object(c, out, depth + 1),
            Some(b'[') => self.array(c, out, depth + 1),
            Some(b't') => lit(c, b"true", || msgpack::write_bool(out, true)),
            Some(b'f') => lit(c, b"false", || msgpack::write_bool(out, false)),
            Some(b'n') => lit(c, b"null", || msgpack::write_nil(out)),
            Some(b'N') => lit(c, b"NaN", || msgpack::write_f64(out, f64::NAN)),
            Some(b'I') => lit(c, b"Infinity", || msgpack::write_f64(out, f64::INFINITY)),
            Some(b'-') if c.b.get(c.i + 1) == Some(&b'I') => {
                c.i += 1;
                lit(c, b"Infinity", || msgpack::write_f64(out, f64::NEG_INFINITY))
            }
            Some(b'-' | b'0'..=b'9') => number(c, out),
            _ => Err(c.err("a value")),
        }
    }

    fn object(&mut self, c: &mut Cur<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::Depth(c.i));
        }
        c.i += 1;
        let hdr = out.len();
        out.push(0x80);
        let keys_base = self.keys.len();
        // A bit per key shape: only keys whose bit is already set are compared.
        let mut seen: u64 = 0;
        let mut n = 0usize;
        c.ws_c()?;
        if c.b.get(c.i) == Some(&b'}') {
            c.i += 1;
            return Ok(());
        }
        loop {
            if c.b.get(c.i) != Some(&b'"') {
                return Err(c.err("a string key"));
            }
            let kstart = out.len();
            // The key's decoded bytes: the source text unless it had escapes.
            // (Reading them back from `out`, just written, would stall.)
            let plain = match plain_string(c, out) {
                Some(r) => Some(r),
                None => self.string(c, out)?,
            };
            let key: &[u8] = match plain {
                Some((s, e)) => &c.b[s..e],
                None => &self.scratch,
            };
            // Duplicate check against this object's earlier keys.
            let bit = match key {
                [] => 1,
                [.., last] => {
                    1u64 << ((key.len().wrapping_mul(31)
                        ^ usize::from(*last).wrapping_mul(7)
                        ^ usize::from(key[key.len() / 2]))
                        & 63)
                }
            };
            let watched = depth == 1
                && self.watching
                && self.found.is_none()
                && key.len() == self.watch.len()
                && key.iter().zip(&self.watch).all(|(a, b)| a == b);
            if !self.dups && seen & bit != 0 {
                let written = &out[kstart..];
                for &(s, l) in &self.keys[keys_base..] {
                    if l == written.len() && out[s..s + l] == *written {
                        self.dups = true;
                        break;
                    }
                }
            }
            seen |= bit;
            // Absolute offsets stay valid: nested containers, whose headers
            // may grow, are written after every key of this object.
            self.keys.push((kstart, out.len() - kstart));
            c.ws_c()?;
            if c.b.get(c.i) != Some(&b':') {
                return Err(c.err("':'"));
            }
            c.i += 1;
            c.ws_c()?;
            let vstart = out.len();
            // Plain string values (most of a log record) without a call.
            if c.b.get(c.i) != Some(&b'"') || plain_string(c, out).is_none() {
                self.value(c, out, depth)?;
            }
            if watched {
                self.found = Some((kstart, vstart, out.len()));
            }
            n += 1;
            c.ws_c()?;
            match c.b.get(c.i) {
                Some(b',') => {
                    c.i += 1;
                    c.ws_c()?;
                }
                Some(b'}') => {
                    c.i += 1;
                    break;
                }
                _ => return Err(c.err("',' or '}'")),
            }
        }
        self.keys.truncate(keys_base);
        msgpack::patch_container_header(out, hdr, n, true);
        Ok(())
    }

    fn array(&mut self, c: &mut Cur<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::Depth(c.i));
        }
        c.i += 1;
        let hdr = out.len();
        out.push(0x90);
        let mut n = 0usize;
        c.ws_c()?;
        if c.b.get(c.i) == Some(&b']') {
            c.i += 1;
            return Ok(());
        }
        loop {
            self.value(c, out, depth)?;
            n += 1;
            c.ws_c()?;
            match c.b.get(c.i) {
                Some(b',') => {
                    c.i += 1;
                    c.ws_c()?;
                }
                Some(b']') => {
                    c.i += 1;
                    break;
                }
                _ => return Err(c.err("',' or ']'")),
            }
        }
        msgpack::patch_container_header(out, hdr, n, false);
        Ok(())
    }

    /// A string at `c` into `out`. The decoded bytes are the source's
    /// `Some(range)` when the string has no escapes, else `self.scratch`.
    fn string(&mut self, c: &mut Cur<'_>, out: &mut Vec<u8>) -> Result<Option<(usize, usize)>, JsonError> {
        let start = c.i + 1;
        let rest = &c.b[start..];
        let Some(p) = find_quote_or_backslash(rest) else {
            c.i = c.b.len();
            return Err(c.err("'\"'"));
        };
        if rest[p] == b'"' {
            put_str(out, rest, p);
            c.i = start + p + 1;
            return Ok(Some((start, start + p)));
        }
        // Escapes: decode into scratch, then write.
        self.scratch.clear();
        self.scratch.extend_from_slice(&rest[..p]);
        let mut i = start + p;
        loop {
            match c.b.get(i) {
                None => {
                    c.i = i;
                    return Err(c.err("'\"'"));
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    let e = c.b.get(i + 1).copied();
                    i += 2;
                    match e {
                        Some(b'"') => self.scratch.push(b'"'),
                        Some(b'\\') => self.scratch.push(b'\\'),
                        Some(b'/') => self.scratch.push(b'/'),
                        Some(b'b') => self.scratch.push(8),
                        Some(b'f') => self.scratch.push(12),
                        Some(b'n') => self.scratch.push(b'\n'),
                        Some(b'r') => self.scratch.push(b'\r'),
                        Some(b't') => self.scratch.push(b'\t'),
                        Some(b'u') => {
                            let hi = hex4(c.b, i).ok_or_else(|| {
                                c.i = i;
                                c.err("4 hex digits")
                            })?;
                            i += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                let lo = if c.b.get(i) == Some(&b'\\') && c.b.get(i + 1) == Some(&b'u') {
                                    hex4(c.b, i + 2)
                                } else {
                                    None
                                };
                                match lo {
                                    Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                        i += 6;
                                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                    }
                                    _ => {
                                        c.i = i;
                                        return Err(c.err("a low surrogate"));
                                    }
                                }
                            } else if (0xDC00..0xE000).contains(&hi) {
                                c.i = i;
                                return Err(c.err("a high surrogate first"));
                            } else {
                                hi
                            };
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            self.scratch.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            c.i = i - 1;
                            return Err(c.err("an escape character"));
                        }
                    }
                }
                Some(_) => {
                    let rest = &c.b[i..];
                    let q = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                    self.scratch.extend_from_slice(&rest[..q]);
                    i += q;
                }
            }
        }
        c.i = i + 1;
        msgpack::write_str(out, &self.scratch);
        Ok(None)
    }
}

/// A string without escapes at `c` (on its opening quote) into `out`,
/// returning its source range; `None` (nothing consumed) when it has
/// escapes or no end, for [`JsonDecoder::string`] to handle.
#[inline(always)]
fn plain_string(c: &mut Cur<'_>, out: &mut Vec<u8>) -> Option<(usize, usize)> {
    let start = c.i + 1;
    let rest = c.b.get(start..)?;
    let p = find_quote_or_backslash(rest)?;
    if rest[p] != b'"' {
        return None;
    }
    put_str(out, rest, p);
    c.i = start + p + 1;
    Some((start, start + p))
}

/// Write `rest[..len]` as a msgpack string. Short strings (the usual keys
/// and values) are copied as a fixed 32-byte block and cut back, which
/// compiles to two vector moves instead of a `memcpy` call.
#[inline(always)]
fn put_str(out: &mut Vec<u8>, rest: &[u8], len: usize) {
    if len < 32 && rest.len() >= 32 {
        out.reserve(33);
        out.push(0xa0 | len as u8);
        let at = out.len();
        let block: &[u8; 32] = rest[..32].try_into().expect("32 bytes");
        out.extend_from_slice(block);
        out.truncate(at + len);
    } else {
        msgpack::write_str(out, &rest[..len]);
    }
}

/// First `"` or `\\` in `s`: word at a time for short strings, memchr for long ones.
#[inline(always)]
fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has = |x: u64, b: u8| {
        let y = x ^ (LO * u64::from(b));
        y.wrapping_sub(LO) & !y & HI
    };
    let mut i = 0;
    while i + 8 <= s.len() && i < 64 {
        let x = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        let m = has(x, b'"') | has(x, b'\\');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < 64 {
        return s[i..].iter().position(|&c| c == b'"' || c == b'\\').map(|p| p + i);
    }
    memchr::memchr2(b'"', b'\\', &s[i..]).map(|p| p + i)
}

fn lit(c: &mut Cur<'_>, word: &'static [u8], write: impl FnOnce()) -> Result<(), JsonError> {
    if c.b[c.i..].starts_with(word) {
        c.i += word.len();
        write();
        Ok(())
    } else {
        Err(c.err("a value"))
    }
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    let mut v = 0u32;
    for &d in s {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

fn number(c: &mut Cur<'_>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    let b = c.b;
    let start = c.i;
    let mut i = start;
    let neg = b[i] == b'-';
    if neg {
        i += 1;
    }
    let int_start = i;
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => {
            c.i = i;
            return Err(c.err("a digit"));
        }
    }
    let int_end = i;
    let mut float = false;
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            c.i = i;
            return Err(c.err("a digit after '.'"));
        }
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        float = true;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            c.i = i;
            return Err(c.err("an exponent digit"));
        }
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        float = true;
    }
    // A digit right after a leading zero ("01") is not JSON.
    if b.get(int_start) == Some(&b'0') && int_end - int_start == 1 && b.get(int_end).is_some_and(u8::is_ascii_digit) {
        c.i = int_end;
        return Err(c.err("',' or the end of the number"));
    }
    c.i = i;
    if !float && int_end - int_start <= 18 {
        let mut v: i64 = 0;
        for &d in &b[int_start..int_end] {
            v = v * 10 + i64::from(d - b'0');
        }
        msgpack::write_int(out, if neg { -v } else { v });
        return Ok(());
    }
    // The text is ASCII digits, sign, '.', 'e': valid UTF-8.
    let text = std::str::from_utf8(&b[start..i]).unwrap_or("0");
    if !float {
        if let Ok(v) = text.parse::<i64>() {
            msgpack::write_int(out, v);
            return Ok(());
        }
        if let Ok(v) = text.parse::<u64>() {
            msgpack::write_uint(out, v);
            return Ok(());
        }
        // Beyond 64 bits (a Ruby Bignum): msgpack cannot carry it; keep it as a float.
    }
    msgpack::write_f64(out, text.parse::<f64>().unwrap_or(f64::NAN));
    Ok(())
}

/// Rewrite the value at `out[at..]` with duplicate map keys merged (first
/// position, last value) at every level.
fn dedup_in_place(out: &mut Vec<u8>, at: usize) {
    let Ok(v) = rmpv::decode::read_value(&mut &out[at..]) else { return };
    let v = dedup(v);
    out.truncate(at);
    let _ = rmpv::encode::write_value(out, &v);
}

fn dedup(v: rmpv::Value) -> rmpv::Value {
    match v {
        rmpv::Value::Map(pairs) => {
            let mut outp: Vec<(rmpv::Value, rmpv::Value)> = Vec::with_capacity(pairs.len());
            for (k, val) in pairs {
                let val = dedup(val);
                match outp.iter_mut().find(|(ok, _)| *ok == k) {
                    Some(slot) => slot.1 = val,
                    None => outp.push((k, val)),
                }
            }
            rmpv::Value::Map(outp)
        }
        rmpv::Value::Array(a) => rmpv::Value::Array(a.into_iter().map(dedup).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::write_json;

    fn tr(s: &str) -> Result<String, JsonError> {
        let mut out = Vec::new();
        JsonDecoder::new().transcode(s.as_bytes(), &mut out)?;
        let mut j = Vec::new();
        write_json(&out, &mut j).unwrap();
        Ok(String::from_utf8(j).unwrap())
    }

    #[test]
    fn values() {
        assert_eq!(
            tr(r#" {"a":1,"b":[true,false,null],"c":{"d":-2.5e1},"e":"x\"\u00e9\ud83d\ude00"} "#).unwrap(),
            r#"{"a":1,"b":[true,false,null],"c":{"d":-25.0},"e":"x\"é😀"}"#
        );
        assert_eq!(tr("[]").unwrap(), "[]");
        assert_eq!(tr("{}").unwrap(), "{}");
        assert_eq!(tr("18446744073709551615").unwrap(), "18446744073709551615");
        assert_eq!(tr("-9223372036854775808").unwrap(), "-9223372036854775808");
        assert_eq!(tr("999999999999999999999999999999.99999").unwrap(), "1.0e+30");
        assert_eq!(tr("1e3").unwrap(), "1000.0");
        assert_eq!(tr("-0").unwrap(), "0");
        let mut out = Vec::new();
        JsonDecoder::new().transcode(b"-0.0", &mut out).unwrap();
        assert_eq!(out, [&[0xcb][..], &(-0.0f64).to_bits().to_be_bytes()].concat());
        assert_eq!(
            tr(r#"{"a":/* c */1, // x
"b":2}"#)
            .unwrap(),
            r#"{"a":1,"b":2}"#
        );
        let mut out = Vec::new();
        JsonDecoder::new().transcode(br#"{"a":NaN,"b":-Infinity}"#, &mut out).unwrap();
        let v = rmpv::decode::read_value(&mut &out[..]).unwrap();
        assert!(v["a"].as_f64().unwrap().is_nan());
        assert_eq!(v["b"].as_f64(), Some(f64::NEG_INFINITY));
        assert_eq!(tr("\"\\u0000\"").unwrap(), "\"\\u0000\"");
        assert_eq!(tr("\"a\tb\"").unwrap(), "\"a\\tb\"");
    }

    #[test]
    fn locates_a_top_level_key() {
        let mut d = JsonDecoder::new();
        let mut out = vec![9, 9];
        let r = d.transcode_locate(br#"{"a":{"time":1},"time":"x","b":2}"#, &mut out, "time").unwrap();
        let Located::At(k, vs, ve) = r else { panic!("{r:?}") };
        assert_eq!(&out[2 + k..2 + vs], b"\xa4time");
        assert_eq!(&out[2 + vs..2 + ve], b"\xa1x");
        assert_eq!(d.transcode_locate(br#"{"a":1}"#, &mut Vec::new(), "time").unwrap(), Located::Absent);
        // An escaped spelling of the key is the key.
        let mut out = Vec::new();
        let r = d.transcode_locate(br#"{"ti\u006de":5}"#, &mut out, "time").unwrap();
        assert!(matches!(r, Located::At(_, vs, ve) if out[vs..ve] == [5]), "{r:?}");
        // Same length, different key.
        assert_eq!(d.transcode_locate(br#"{"tame":5}"#, &mut Vec::new(), "time").unwrap(), Located::Absent);
        assert_eq!(d.transcode_locate(br#"[{"time":1}]"#, &mut Vec::new(), "time").unwrap(), Located::Unknown);
        // A large object's header grows after the key was seen.
        let big = format!("{{\"time\":7,{}}}", (0..20).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(","));
        let mut out = Vec::new();
        let Located::At(_, vs, ve) = d.transcode_locate(big.as_bytes(), &mut out, "time").unwrap() else { panic!() };
        assert_eq!(&out[vs..ve], &[7]);
    }

    #[test]
    fn duplicates_keep_first_position_last_value() {
        assert_eq!(tr(r#"{"k":"a","x":1,"k":"b"}"#).unwrap(), r#"{"k":"b","x":1}"#);
        assert_eq!(
            tr(r#"{"o":{"k":1,"k":2},"p":[{"z":0,"z":{"q":1,"q":3}}]}"#).unwrap(),
            r#"{"o":{"k":2},"p":[{"z":{"q":3}}]}"#
        );
        // Same key text at different levels is not a duplicate.
        assert_eq!(tr(r#"{"k":{"k":1}}"#).unwrap(), r#"{"k":{"k":1}}"#);
        // Escaped and plain spellings of one key are the same key.
        assert_eq!(tr(r#"{"ab":1,"x":0,"a\u0062":2}"#).unwrap(), r#"{"ab":2,"x":0}"#);
        assert_eq!(tr(r#"{"a\u0062":1,"ab":2}"#).unwrap(), r#"{"ab":2}"#);
        // Long keys (past the short-copy path) and long values.
        let long = "k".repeat(40);
        let text = format!(r#"{{"{long}":"{}","{long}":1}}"#, "v".repeat(50));
        assert_eq!(tr(&text).unwrap(), format!(r#"{{"{long}":1}}"#));
    }

    #[test]
    fn large_containers_grow_headers() {
        let obj: String = format!(
            "{{{}}}",
            (0..20)
                .map(|i| format!("\"k{i}\":[{}]", (0..17).map(|j| j.to_string()).collect::<Vec<_>>().join(",")))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut out = Vec::new();
        JsonDecoder::new().transcode(obj.as_bytes(), &mut out).unwrap();
        let mut ser = Vec::new();
        crate::json::json_to_msgpack(obj.as_bytes(), &mut ser).unwrap();
        assert_eq!(out, ser);
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "  ",
            "{",
            "{\"a\":1,}",
            "{'a':1}",
            "01",
            "1.",
            ".5",
            "{\"a\":1}xyz",
            "{\"a\":1} {\"b\":2}",
            "\"\\ud800\"",
            "[1 2]",
            "tru",
            "{\"a\" 1}",
            "\"abc",
            "{\"a\":1} // c",
            "-",
            "1e",
            "\"\\x\"",
        ] {
            assert!(tr(bad).is_err(), "{bad:?} accepted");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(matches!(tr(&deep), Err(JsonError::Depth(_))));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(JsonDecoder::new().transcode(ok.as_bytes(), &mut Vec::new()).is_ok());
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let mut out = Vec::new();
        JsonDecoder::new().transcode(b"{\"a\":\"x\xffy\"}", &mut out).unwrap();
        assert_eq!(out, b"\x81\xa1a\xa3x\xffy");
    }

    proptest::proptest! {
        /// Agrees with serde_json on every document serde_json accepts.
        #[test]
        fn agrees_with_serde(v in arb_json()) {
            let text = serde_json::to_string(&v).unwrap();
            let mut a = Vec::new();
            JsonDecoder::new().transcode(text.as_bytes(), &mut a).unwrap();
            let mut b = Vec::new();
            crate::json::json_to_msgpack(text.as_bytes(), &mut b).unwrap();
            proptest::prop_assert_eq!(a, b);
        }

        #[test]
        fn never_panics(s in proptest::collection::vec(proptest::sample::select(b"{}[]\":,0123456789.eE+-tfnulrsaNIy\\/* \n".to_vec()), 0..48)) {
            let mut out = Vec::new();
            let _ = JsonDecoder::new().transcode(&s, &mut out);
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|i| serde_json::json!(i)),
            any::<u64>().prop_map(|i| serde_json::json!(i)),
            // Short decimals: serde_json's default float parsing is exact for them.
            (-1e9f64..1e9).prop_map(|f| serde_json::json!((f * 1000.0).round() / 1000.0)),
            "\\PC{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
                proptest::collection::vec(("[a-z]{0,3}", inner), 0..20)
                    .prop_map(|kv| { serde_json::Value::Object(kv.into_iter().collect()) }),
            ]
        })
    }
}
