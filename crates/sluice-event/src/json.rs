//! JSON ⇄ msgpack transcoding without building value trees.
//!
//! [`write_json`] renders msgpack bytes as the JSON Fluentd's formatters
//! produce (Ruby's `JSON.generate` / Oj compat mode): keys in stored order,
//! no spaces, `"` `\` and control characters escaped, everything else
//! (including `/` and non-ASCII) written as is, floats as Ruby's `Float#to_s`.
//! [`json_to_msgpack`] streams JSON text straight into compact msgpack, with
//! serde_json's nesting limit.

use crate::msgpack::{self, Error, Kind, Scalar};
use crate::record::Value;
use crate::rubyfmt;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Append `s` as a JSON string literal (with quotes). Invalid UTF-8 becomes U+FFFD.
pub fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    if is_plain(s) {
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    // ASCII needs no UTF-8 validation; only strings with high bytes are checked.
    if !has_high_byte(s) || std::str::from_utf8(s).is_ok() {
        escape_into(out, s);
    } else {
        escape_into(out, String::from_utf8_lossy(s).as_bytes());
    }
    out.push(b'"');
}

/// [`write_json_str`] for the string `buf[start..start + len]`: a short
/// plain string is copied as a fixed 32-byte block from `buf` and cut back
/// (two vector moves instead of a `memcpy` call).
#[inline(always)]
fn write_json_str_at(out: &mut Vec<u8>, buf: &[u8], start: usize, len: usize) {
    let s = &buf[start..start + len];
    if len < 32 && buf.len() >= start + 32 && is_plain(s) {
        out.reserve(34);
        out.push(b'"');
        let at = out.len();
        let block: &[u8; 32] = buf[start..start + 32].try_into().expect("32 bytes");
        out.extend_from_slice(block);
        out.truncate(at + len);
        out.push(b'"');
    } else {
        write_json_str(out, s);
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
fn has_high_byte(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        if u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) & HI != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|b| *b >= 0x80)
}

/// True if `s` is ASCII with nothing to escape (the common case), checked a word at a time.
#[inline]
fn is_plain(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if x & HI != 0 || word_needs_escape(x) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
}

/// True if any byte of the word is `"`, `\` or a control character.
#[inline]
fn word_needs_escape(x: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI != 0;
    let below_space = x.wrapping_sub(LO * 0x20) & !x & HI != 0;
    below_space || has_zero(x ^ (LO * u64::from(b'"'))) || has_zero(x ^ (LO * u64::from(b'\\')))
}

/// Index of the first byte at or after `from` that needs escaping.
#[inline]
fn next_escape(s: &[u8], mut from: usize) -> Option<usize> {
    while from + 8 <= s.len() {
        let w = &s[from..from + 8];
        if word_needs_escape(u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])) {
            break;
        }
        from += 8;
    }
    s[from..].iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\').map(|i| from + i)
}

#[inline]
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    while let Some(i) = next_escape(s, start) {
        out.extend_from_slice(&s[start..i]);
        let b = s[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

fn write_json_scalar(out: &mut Vec<u8>, s: Scalar<'_>) {
    match s {
        Scalar::Nil => out.extend_from_slice(b"null"),
        Scalar::Bool(true) => out.extend_from_slice(b"true"),
        Scalar::Bool(false) => out.extend_from_slice(b"false"),
        Scalar::UInt(u) => out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes()),
        Scalar::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Scalar::F32(f) => rubyfmt::write_json_float(out, f64::from(f)),
        Scalar::F64(f) => rubyfmt::write_json_float(out, f),
        Scalar::Str(s) | Scalar::Bin(s) => write_json_str(out, s),
        Scalar::Ext(t, p) => write_ext_json(out, t, p),
    }
}

/// An EventTime inside a record renders as its integer seconds (Fluentd's
/// `EventTime#to_json`); other extension values have no JSON form and render
/// as null.
fn write_ext_json(out: &mut Vec<u8>, t: i8, p: &[u8]) {
    if t == crate::time::EVENT_TIME_EXT && p.len() == 8 {
        let sec = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        out.extend_from_slice(itoa::Buffer::new().format(sec).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Render a map key: strings as themselves, other scalars through Ruby's `to_s`.
fn write_json_key(buf: &[u8], at: usize, out: &mut Vec<u8>) -> Result<usize, Error> {
    if let Some(end) = write_fixstr(buf, at, out) {
        return Ok(end);
    }
    let h = msgpack::header(buf, at)?;
    match h.kind {
        Kind::Str | Kind::Bin => {
            let (s, end) = msgpack::read_str(buf, at)?;
            write_json_str(out, s);
            Ok(end)
        }
        Kind::Array | Kind::Map => {
            let mut tmp = Vec::new();
            let end = write_json(&buf[at..], &mut tmp)?;
            write_json_str(out, &tmp);
            Ok(at + end)
        }
        _ => {
            let (s, end) = msgpack::read_scalar(buf, at)?;
            let mut tmp = Vec::new();
            match s {
                Scalar::Nil => {}
                Scalar::F32(f) => rubyfmt::write_float(&mut tmp, f64::from(f)),
                Scalar::F64(f) => rubyfmt::write_float(&mut tmp, f),
                other => write_json_scalar(&mut tmp, other),
            }
            write_json_str(out, &tmp);
            Ok(end)
        }
    }
}

/// Render the msgpack value at the start of `buf` as JSON; returns the
/// number of bytes consumed.
///
/// # Errors
/// Any framing error in `buf`.
pub fn write_json(buf: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
    write_json_at(buf, 0, out, 0)
}

/// A fixstr at `buf[at]` as a JSON string; its end, or `None` (nothing
/// written) if `buf[at]` is not a complete fixstr.
#[inline(always)]
fn write_fixstr(buf: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let m = *buf.get(at)?;
    if !(0xa0..=0xbf).contains(&m) {
        return None;
    }
    let len = usize::from(m & 0x1f);
    if at + 1 + len > buf.len() {
        return None;
    }
    write_json_str_at(out, buf, at + 1, len);
    Some(at + 1 + len)
}

/// The `n` pairs of a map starting at `buf[at]` as a JSON object; short
/// string keys and values (most of a log record) are written inline.
#[inline(always)]
fn write_map(buf: &[u8], mut at: usize, n: usize, out: &mut Vec<u8>, depth: usize) -> Result<usize, Error> {
    out.push(b'{');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        at = match write_fixstr(buf, at, out) {
            Some(end) => end,
            None => write_json_key(buf, at, out)?,
        };
        out.push(b':');
        at = match write_fixstr(buf, at, out) {
            Some(end) => end,
            None => write_json_at(buf, at, out, depth + 1)?,
        };
    }
    out.push(b'}');
    Ok(at)
}

fn write_json_at(buf: &[u8], at: usize, out: &mut Vec<u8>, depth: usize) -> Result<usize, Error> {
    if depth > msgpack::MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    // Fast paths: short strings and small integers, the bulk of log records.
    match buf.get(at) {
        Some(0xa0..=0xbf) => return write_fixstr(buf, at, out).ok_or(Error::Truncated),
        // A small map (the usual record) without the generic header read.
        Some(&m @ 0x80..=0x8f) => return write_map(buf, at + 1, usize::from(m & 0x0f), out, depth),
        Some(&m @ 0x00..=0x7f) => {
            out.extend_from_slice(itoa::Buffer::new().format(m).as_bytes());
            return Ok(at + 1);
        }
        Some(&m @ 0xcc..=0xcf) => {
            let n = 1usize << (m - 0xcc);
            let b = buf.get(at + 1..at + 1 + n).ok_or(Error::Truncated)?;
            let v = b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            return Ok(at + 1 + n);
        }
        _ => {}
    }
    let h = msgpack::header(buf, at)?;
    match h.kind {
        Kind::Map => write_map(buf, at + h.header_len, h.len, out, depth),
        Kind::Array => {
            let mut p = at + h.header_len;
            out.push(b'[');
            for i in 0..h.len {
                if i > 0 {
                    out.push(b',');
                }
                p = write_json_at(buf, p, out, depth + 1)?;
            }
            out.push(b']');
            Ok(p)
        }
        _ => {
            let (s, end) = msgpack::read_scalar(buf, at)?;
            write_json_scalar(out, s);
            Ok(end)
        }
    }
}

/// Render a decoded value as JSON (same rules as [`write_json`]).
pub fn write_json_value(v: &Value, out: &mut Vec<u8>) {
    let mut tmp = Vec::new();
    crate::record::write_value(&mut tmp, v);
    // A value we just encoded is always well-formed.
    let _ = write_json(&tmp, out);
}

/// A value as a JSON string.
pub fn value_to_json(v: &Value) -> String {
    let mut out = Vec::new();
    write_json_value(v, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

// === JSON → msgpack ===

/// Transcode one JSON value from `text` into msgpack appended to `out`.
/// Integers become the most compact msgpack integer, other numbers float64.
///
/// # Errors
/// The serde_json error (with line and column) for invalid JSON or trailing
/// characters. `out` is left as it was on error.
pub fn json_to_msgpack(text: &[u8], out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mark = out.len();
    let mut de = serde_json::Deserializer::from_slice(text);
    let r = MsgpackSeed(out).deserialize(&mut de).and_then(|()| de.end());
    if r.is_err() {
        out.truncate(mark);
    }
    r
}

/// Transcode a JSON object into a msgpack map.
///
/// # Errors
/// A message if the text is not JSON or not an object.
pub fn json_object_to_msgpack(text: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mark = out.len();
    json_to_msgpack(text, out).map_err(|e| e.to_string())?;
    if msgpack::header(out, mark).map(|h| h.kind) != Ok(Kind::Map) {
        out.truncate(mark);
        return Err("JSON value is not an object".into());
    }
    Ok(())
}

/// Parse JSON text into a decoded value.
///
/// # Errors
/// The serde_json error.
pub fn json_to_value(text: &[u8]) -> Result<Value, serde_json::Error> {
    let mut buf = Vec::new();
    json_to_msgpack(text, &mut buf)?;
    Ok(rmpv::decode::read_value(&mut &buf[..]).unwrap_or(Value::Nil))
}

/// Writes the visited JSON value as msgpack.
struct MsgpackSeed<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for MsgpackSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MsgpackSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        msgpack::write_bool(self.0, v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        msgpack::write_int(self.0, v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        msgpack::write_uint(self.0, v);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        msgpack::write_f64(self.0, v);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        msgpack::write_str(self.0, v.as_bytes());
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        msgpack::write_nil(self.0);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        msgpack::write_nil(self.0);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(0x90);
        let mut n = 0;
        while seq.next_element_seed(MsgpackSeed(self.0))?.is_some() {
            n += 1;
        }
        msgpack::patch_container_header(self.0, at, n, false);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(0x80);
        let mut n = 0;
        while map.next_key_seed(MsgpackSeed(self.0))?.is_some() {
            map.next_value_seed(MsgpackSeed(self.0))?;
            n += 1;
        }
        msgpack::patch_container_header(self.0, at, n, true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(json: &str) -> String {
        let mut mp = Vec::new();
        json_to_msgpack(json.as_bytes(), &mut mp).unwrap();
        let mut out = Vec::new();
        assert_eq!(write_json(&mp, &mut out).unwrap(), mp.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn round_trips_preserve_order_and_escape_like_ruby() {
        assert_eq!(
            rt(r#"{"z":1,"a":[true,false,null],"s":"q\"\\/\n\u0001é"}"#),
            r#"{"z":1,"a":[true,false,null],"s":"q\"\\/\n\u0001é"}"#
        );
        assert_eq!(
            rt(r#"{"f":1.0,"g":0.1,"big":1e20,"neg":-5,"u":18446744073709551615}"#),
            r#"{"f":1.0,"g":0.1,"big":1.0e+20,"neg":-5,"u":18446744073709551615}"#
        );
        assert_eq!(rt("[]"), "[]");
        assert_eq!(rt(r#"{"k":"\u0000\u001f\u007f"}"#), "{\"k\":\"\\u0000\\u001f\u{7f}\"}");
    }

    #[test]
    fn escaping_fast_path_agrees_with_a_byte_loop() {
        let naive = |s: &[u8]| {
            let mut out = Vec::new();
            for &b in s {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0x08 => out.extend_from_slice(b"\\b"),
                    0x0c => out.extend_from_slice(b"\\f"),
                    b if b < 0x20 => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
                    b => out.push(b),
                }
            }
            out
        };
        for len in 0..40 {
            for pos in 0..len {
                for special in [b'"', b'\\', 0x01, 0x1f, b'\n', 0x20, 0x7f, b'a'] {
                    let mut s = vec![b'x'; len];
                    s[pos] = special;
                    let mut out = Vec::new();
                    escape_into(&mut out, &s);
                    assert_eq!(out, naive(&s), "len {len} pos {pos} byte {special}");
                }
            }
        }
    }

    #[test]
    fn large_containers_get_long_headers() {
        let items: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let json = format!("{{{}}}", items.join(","));
        let mut mp = Vec::new();
        json_to_msgpack(json.as_bytes(), &mut mp).unwrap();
        assert_eq!(mp[0], 0xde);
        assert_eq!(rt(&json), json);
    }

    #[test]
    fn errors_leave_output_untouched() {
        let mut mp = vec![1, 2, 3];
        assert!(json_to_msgpack(b"{\"a\": [1, 2", &mut mp).is_err());
        assert!(json_to_msgpack(b"{} trailing", &mut mp).is_err());
        assert_eq!(mp, [1, 2, 3]);
        assert!(json_object_to_msgpack(b"[1]", &mut mp).is_err());
        assert_eq!(mp, [1, 2, 3]);
    }

    #[test]
    fn non_string_keys_and_binary() {
        // {1 => "a", nil => bin "b"}
        let mp = [0x82, 0x01, 0xa1, b'a', 0xc0, 0xc4, 0x01, b'b'];
        let mut out = Vec::new();
        write_json(&mp, &mut out).unwrap();
        assert_eq!(out, br#"{"1":"a","":"b"}"#);
        let bad_utf8 = [0x81, 0xa1, b'k', 0xa2, 0xff, b'x'];
        out.clear();
        write_json(&bad_utf8, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"k\":\"\u{fffd}x\"}");
    }
}
