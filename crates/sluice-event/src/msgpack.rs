//! Allocation-free msgpack walking and compact writing.
//!
//! Records travel through sluice as the msgpack bytes they arrived as. This
//! module reads those bytes in place: [`skip`] finds where a value ends,
//! [`read_str`] borrows a string, [`Reader`] walks a value step by step. Every
//! length read from the input is checked against the remaining bytes before it
//! is used, and nesting is bounded by [`MAX_DEPTH`], so malformed or hostile
//! input yields an [`Error`], never a panic or a large allocation.
//!
//! The writers encode integers and strings in their most compact form, the
//! same choices Ruby's msgpack gem makes (so bytes we create match the bytes
//! Fluentd creates for the same record).

use thiserror::Error;

/// Deepest nesting of arrays and maps accepted in one value.
pub const MAX_DEPTH: usize = 256;

/// Why a msgpack value could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes end before the value does.
    #[error("truncated msgpack value")]
    Truncated,
    /// Byte 0xc1 is never used by msgpack.
    #[error("reserved msgpack marker 0xc1")]
    Reserved,
    /// Arrays and maps nest deeper than [`MAX_DEPTH`].
    #[error("msgpack value nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A value of another type was found where this one was expected.
    #[error("expected {expected}, found {found}")]
    Type {
        /// What the caller wanted.
        expected: &'static str,
        /// What the marker says is there.
        found: &'static str,
    },
}

/// The broad kind of a msgpack value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nil,
    Bool,
    Int,
    Float,
    Str,
    Bin,
    Array,
    Map,
    Ext,
    Reserved,
}

impl Kind {
    /// Human name, used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nil => "nil",
            Kind::Bool => "boolean",
            Kind::Int => "integer",
            Kind::Float => "float",
            Kind::Str => "string",
            Kind::Bin => "binary",
            Kind::Array => "array",
            Kind::Map => "map",
            Kind::Ext => "extension",
            Kind::Reserved => "reserved byte",
        }
    }
}

/// Classify a value by its marker byte.
pub fn kind(marker: u8) -> Kind {
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => Kind::Int,
        0x80..=0x8f | 0xde | 0xdf => Kind::Map,
        0x90..=0x9f | 0xdc | 0xdd => Kind::Array,
        0xa0..=0xbf | 0xd9..=0xdb => Kind::Str,
        0xc0 => Kind::Nil,
        0xc1 => Kind::Reserved,
        0xc2 | 0xc3 => Kind::Bool,
        0xc4..=0xc6 => Kind::Bin,
        0xc7..=0xc9 | 0xd4..=0xd8 => Kind::Ext,
        0xca | 0xcb => Kind::Float,
    }
}

#[inline]
fn be(buf: &[u8], at: usize, n: usize) -> Result<u64, Error> {
    let bytes = buf.get(at..at + n).ok_or(Error::Truncated)?;
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// The header of one value: what it is, how long its header is, and its
/// length (bytes for str/bin/ext payloads, elements for arrays, pairs for maps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    /// Bytes taken by the marker and length fields (and the ext type byte).
    pub header_len: usize,
    /// Payload bytes (str/bin/ext/int/float) or element count (array) or pair count (map).
    pub len: usize,
    /// Ext type, for [`Kind::Ext`].
    pub ext_type: i8,
}

/// Read the header of the value starting at `buf[at]`.
///
/// # Errors
/// [`Error::Truncated`] if `buf` ends inside the header, [`Error::Reserved`] for 0xc1.
#[inline]
pub fn header(buf: &[u8], at: usize) -> Result<Header, Error> {
    let m = *buf.get(at).ok_or(Error::Truncated)?;
    let h = |kind, header_len, len| Header { kind, header_len, len, ext_type: 0 };
    Ok(match m {
        0x00..=0x7f | 0xe0..=0xff => h(Kind::Int, 1, 0),
        0x80..=0x8f => h(Kind::Map, 1, usize::from(m & 0x0f)),
        0x90..=0x9f => h(Kind::Array, 1, usize::from(m & 0x0f)),
        0xa0..=0xbf => h(Kind::Str, 1, usize::from(m & 0x1f)),
        0xc0 => h(Kind::Nil, 1, 0),
        0xc1 => return Err(Error::Reserved),
        0xc2 | 0xc3 => h(Kind::Bool, 1, 0),
        0xc4 => h(Kind::Bin, 2, be(buf, at + 1, 1)? as usize),
        0xc5 => h(Kind::Bin, 3, be(buf, at + 1, 2)? as usize),
        0xc6 => h(Kind::Bin, 5, be(buf, at + 1, 4)? as usize),
        0xc7..=0xc9 => {
            let n = 1usize << (m - 0xc7);
            let len = be(buf, at + 1, n)? as usize;
            let t = *buf.get(at + 1 + n).ok_or(Error::Truncated)? as i8;
            Header { kind: Kind::Ext, header_len: 2 + n, len, ext_type: t }
        }
        0xca => h(Kind::Float, 1, 4),
        0xcb => h(Kind::Float, 1, 8),
        0xcc..=0xcf => h(Kind::Int, 1, 1 << (m - 0xcc)),
        0xd0..=0xd3 => h(Kind::Int, 1, 1 << (m - 0xd0)),
        0xd4..=0xd8 => {
            let t = *buf.get(at + 1).ok_or(Error::Truncated)? as i8;
            Header { kind: Kind::Ext, header_len: 2, len: 1 << (m - 0xd4), ext_type: t }
        }
        0xd9 => h(Kind::Str, 2, be(buf, at + 1, 1)? as usize),
        0xda => h(Kind::Str, 3, be(buf, at + 1, 2)? as usize),
        0xdb => h(Kind::Str, 5, be(buf, at + 1, 4)? as usize),
        0xdc => h(Kind::Array, 3, be(buf, at + 1, 2)? as usize),
        0xdd => h(Kind::Array, 5, be(buf, at + 1, 4)? as usize),
        0xde => h(Kind::Map, 3, be(buf, at + 1, 2)? as usize),
        0xdf => h(Kind::Map, 5, be(buf, at + 1, 4)? as usize),
    })
}

/// Return the offset just past the value that starts at `buf[at]`.
///
/// Iterative with a count of values still to skip, so nesting depth costs
/// nothing and cannot overflow the stack; every length is checked against
/// the remaining bytes.
///
/// # Errors
/// Any [`Error`] for malformed or truncated input.
#[inline]
pub fn skip(buf: &[u8], mut at: usize) -> Result<usize, Error> {
    // Each value adds its children to `left`; each header consumes at least
    // one byte, so `left` stays far below u64::MAX on any real buffer.
    let mut left: u64 = 1;
    while left > 0 {
        let h = header(buf, at)?;
        at += h.header_len;
        left -= 1;
        match h.kind {
            Kind::Array => left += h.len as u64,
            Kind::Map => left += (h.len as u64) * 2,
            _ => {
                at = at.checked_add(h.len).ok_or(Error::Truncated)?;
                if at > buf.len() {
                    return Err(Error::Truncated);
                }
            }
        }
        if left > (buf.len() - at.min(buf.len())) as u64 {
            // More values announced than bytes left: truncated.
            return Err(Error::Truncated);
        }
    }
    Ok(at)
}

/// Borrow the bytes of a str (or bin) value starting at `buf[at]`; returns the
/// bytes and the offset past the value.
///
/// # Errors
/// [`Error::Type`] if the value is not a string or binary.
#[inline]
pub fn read_str(buf: &[u8], at: usize) -> Result<(&[u8], usize), Error> {
    let h = header(buf, at)?;
    match h.kind {
        Kind::Str | Kind::Bin => {
            let start = at + h.header_len;
            let end = start.checked_add(h.len).ok_or(Error::Truncated)?;
            let s = buf.get(start..end).ok_or(Error::Truncated)?;
            Ok((s, end))
        }
        k => Err(Error::Type { expected: "string", found: k.name() }),
    }
}

/// A decoded scalar, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
}

/// Read a scalar value (anything but an array or map) at `buf[at]`.
///
/// # Errors
/// [`Error::Type`] for arrays and maps, or any framing error.
pub fn read_scalar(buf: &[u8], at: usize) -> Result<(Scalar<'_>, usize), Error> {
    let h = header(buf, at)?;
    let m = buf[at];
    let body = at + h.header_len;
    let end = body.checked_add(h.len).ok_or(Error::Truncated)?;
    if end > buf.len() {
        return Err(Error::Truncated);
    }
    let s = match h.kind {
        Kind::Nil => Scalar::Nil,
        Kind::Bool => Scalar::Bool(m == 0xc3),
        Kind::Int => match m {
            0x00..=0x7f => Scalar::UInt(u64::from(m)),
            0xe0..=0xff => Scalar::Int(i64::from(m as i8)),
            0xcc..=0xcf => Scalar::UInt(be(buf, body, h.len)?),
            _ => {
                let raw = be(buf, body, h.len)?;
                let bits = (h.len * 8) as u32;
                // Sign-extend the big-endian two's complement value.
                let v = ((raw << (64 - bits)) as i64) >> (64 - bits);
                Scalar::Int(v)
            }
        },
        Kind::Float => {
            if h.len == 4 {
                Scalar::F32(f32::from_bits(be(buf, body, 4)? as u32))
            } else {
                Scalar::F64(f64::from_bits(be(buf, body, 8)?))
            }
        }
        Kind::Str => Scalar::Str(&buf[body..end]),
        Kind::Bin => Scalar::Bin(&buf[body..end]),
        Kind::Ext => Scalar::Ext(h.ext_type, &buf[body..end]),
        Kind::Array | Kind::Map => {
            return Err(Error::Type { expected: "scalar", found: h.kind.name() });
        }
        Kind::Reserved => return Err(Error::Reserved),
    };
    Ok((s, end))
}

/// Read a map header at `buf[at]`: pair count and offset of the first key.
///
/// # Errors
/// [`Error::Type`] if the value is not a map.
#[inline]
pub fn read_map_len(buf: &[u8], at: usize) -> Result<(usize, usize), Error> {
    let h = header(buf, at)?;
    if h.kind != Kind::Map {
        return Err(Error::Type { expected: "map", found: h.kind.name() });
    }
    Ok((h.len, at + h.header_len))
}

/// Read an array header at `buf[at]`: element count and offset of the first element.
///
/// # Errors
/// [`Error::Type`] if the value is not an array.
#[inline]
pub fn read_array_len(buf: &[u8], at: usize) -> Result<(usize, usize), Error> {
    let h = header(buf, at)?;
    if h.kind != Kind::Array {
        return Err(Error::Type { expected: "array", found: h.kind.name() });
    }
    Ok((h.len, at + h.header_len))
}

// === writers ===

/// Write `nil`.
#[inline]
pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// Write a boolean.
#[inline]
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

/// Write a non-negative integer in its most compact form.
#[inline]
pub fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Write a signed integer in its most compact form (non-negative values use
/// the unsigned family, as Ruby's msgpack does).
#[inline]
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Write a float64.
#[inline]
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

/// Write a str header for `len` bytes.
#[inline]
pub fn write_str_header(out: &mut Vec<u8>, len: usize) {
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Write a string.
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    write_str_header(out, s.len());
    out.extend_from_slice(s);
}

/// Write a bin header for `len` bytes.
#[inline]
pub fn write_bin_header(out: &mut Vec<u8>, len: usize) {
    if len <= 0xff {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len <= 0xffff {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Write an array header.
#[inline]
pub fn write_array_header(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len <= 0xffff {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Write a map header.
#[inline]
pub fn write_map_header(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Size in bytes of the map header [`write_map_header`] writes for `len` pairs.
#[inline]
pub fn map_header_size(len: usize) -> usize {
    if len < 16 {
        1
    } else if len <= 0xffff {
        3
    } else {
        5
    }
}

/// Size in bytes of the array header [`write_array_header`] writes for `len` elements.
#[inline]
pub fn array_header_size(len: usize) -> usize {
    map_header_size(len)
}

/// Rewrite a placeholder 1-byte map or array header at `out[at]` to hold
/// `len`, shifting the bytes after it if a longer header is needed. Used by
/// streaming encoders that learn a container's size only at its end.
pub fn patch_container_header(out: &mut Vec<u8>, at: usize, len: usize, map: bool) {
    if len < 16 {
        out[at] = (if map { 0x80 } else { 0x90 }) | len as u8;
        return;
    }
    let (hdr, n): ([u8; 5], usize) = if len <= 0xffff {
        let b = (len as u16).to_be_bytes();
        ([if map { 0xde } else { 0xdc }, b[0], b[1], 0, 0], 3)
    } else {
        let b = (len as u32).to_be_bytes();
        ([if map { 0xdf } else { 0xdd }, b[0], b[1], b[2], b[3]], 5)
    };
    let old_len = out.len();
    out.resize(old_len + n - 1, 0);
    out.copy_within(at + 1..old_len, at + n);
    out[at..at + n].copy_from_slice(&hdr[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn skip_nested_values() {
        let v = rmpv::Value::Map(vec![
            (rmpv::Value::from("a"), rmpv::Value::Array(vec![1.into(), "x".into(), rmpv::Value::Nil])),
            (rmpv::Value::from("b"), rmpv::Value::Map(vec![(1.into(), 2.5.into())])),
        ]);
        let mut buf = enc(&v);
        let end = buf.len();
        buf.extend_from_slice(&[0xc0]);
        assert_eq!(skip(&buf, 0), Ok(end));
        assert_eq!(skip(&buf[..end - 1], 0), Err(Error::Truncated));
    }

    #[test]
    fn skip_rejects_hostile_lengths_and_depth() {
        // array32 claiming 4 billion elements in 5 bytes
        assert_eq!(skip(&[0xdd, 0xff, 0xff, 0xff, 0xff], 0), Err(Error::Truncated));
        // str32 claiming 4 GiB
        assert_eq!(skip(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'], 0), Err(Error::Truncated));
        // Deep nesting is fine for skipping (no recursion), and bounded by the bytes.
        let mut deep = vec![0x91u8; 10_000];
        deep.push(0xc0);
        assert_eq!(skip(&deep, 0), Ok(10_001));
        assert_eq!(skip(&deep[..10_000], 0), Err(Error::Truncated));
        assert_eq!(skip(&[0xc1], 0), Err(Error::Reserved));
    }

    #[test]
    fn integers_match_rmp_compact_encoding() {
        for v in
            [0i64, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128, -129, -32768, -32769, i64::MIN, i64::MAX]
        {
            let mut ours = Vec::new();
            write_int(&mut ours, v);
            let theirs = enc(&rmpv::Value::from(v));
            assert_eq!(ours, theirs, "value {v}");
            let (s, end) = read_scalar(&ours, 0).unwrap();
            assert_eq!(end, ours.len());
            match s {
                Scalar::UInt(u) => assert_eq!(u as i64, v),
                Scalar::Int(i) => assert_eq!(i, v),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn patch_header_grows_in_place() {
        let mut out = vec![0x80];
        for i in 0..20u64 {
            write_uint(&mut out, i);
            write_uint(&mut out, i);
        }
        patch_container_header(&mut out, 0, 20, true);
        let v = rmpv::decode::read_value(&mut &out[..]).unwrap();
        assert_eq!(v.as_map().unwrap().len(), 20);
    }

    proptest::proptest! {
        #[test]
        fn skip_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = skip(&data, 0);
            let _ = read_scalar(&data, 0);
        }
    }
}
