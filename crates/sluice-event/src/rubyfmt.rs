//! Ruby's textual forms of values, so formatted output matches Fluentd's
//! byte for byte: `Float#to_s`, `to_s` of record values, and `inspect`.

use crate::msgpack::{self, Kind, Scalar};
use crate::record::Value;
use std::io::Write as _;

/// Append Ruby's `Float#to_s` of `f`: shortest round-trip digits, fixed
/// notation when `0.0001 <= |f| < 1e15` (always with a `.0` if integral),
/// otherwise `d.ddde+XX`.
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
        return;
    }
    if f == 0.0 {
        out.extend_from_slice(if f.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e3".
    let mut tmp = [0u8; 40];
    let mut cur = std::io::Cursor::new(&mut tmp[..]);
    let _ = write!(cur, "{:e}", f);
    let n = cur.position() as usize;
    let s = &tmp[..n];
    let (neg, s) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    let epos = s.iter().position(|&b| b == b'e').unwrap_or(s.len());
    let mant = &s[..epos];
    let exp: i32 = std::str::from_utf8(&s[epos + 1..]).ok().and_then(|e| e.parse().ok()).unwrap_or(0);
    let mut digits = [0u8; 20];
    let mut nd = 0;
    for &b in mant {
        if b.is_ascii_digit() && nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    let digits = &digits[..nd];
    // decpt: position of the decimal point relative to the digits (Ruby's dtoa convention).
    let decpt = exp + 1;
    if neg {
        out.push(b'-');
    }
    if decpt > 0 && decpt <= 15 {
        let dp = decpt as usize;
        if nd <= dp {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', dp - nd));
            out.extend_from_slice(b".0");
        } else {
            out.extend_from_slice(&digits[..dp]);
            out.push(b'.');
            out.extend_from_slice(&digits[dp..]);
        }
    } else if decpt <= 0 && decpt > -4 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-decpt) as usize));
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        out.push(b'.');
        if nd > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

/// A float as Fluentd's default JSON formatter (Oj in compat mode) writes
/// it: zero as `0.0`, integral values below 2^63 as all their digits plus
/// `.0`, everything else as `Float#to_s`. NaN and infinities, which Oj writes
/// as bare words that are not JSON, become `null` so the output stays valid.
pub fn write_json_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
    } else if f == 0.0 {
        out.extend_from_slice(b"0.0");
    } else if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 {
        out.extend_from_slice(itoa::Buffer::new().format(f as i64).as_bytes());
        out.extend_from_slice(b".0");
    } else {
        write_float(out, f);
    }
}

/// Ruby's `to_s` of a value, as string interpolation produces it: strings
/// as themselves, nil as empty, numbers and booleans as literals, arrays and
/// hashes as their `inspect`.
pub fn write_to_s(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => {}
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        Value::Binary(b) => out.extend_from_slice(b),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F32(f) => write_float(out, f64::from(*f)),
        Value::F64(f) => write_float(out, *f),
        Value::Array(_) | Value::Map(_) | Value::Ext(..) => write_inspect(out, v),
    }
}

/// `to_s` as a `String`.
pub fn to_s(v: &Value) -> String {
    let mut out = Vec::new();
    write_to_s(&mut out, v);
    String::from_utf8_lossy(&out).into_owned()
}

/// Append Ruby's `String#inspect` of `s` (a UTF-8 locale assumed): short
/// escapes for common controls, `\uXXXX` for other controls, `\xNN` for
/// invalid bytes, `\#` before `{`, `$` and `@`.
pub fn write_str_inspect(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut rest = s;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(v) => (v, &[][..]),
            Err(e) => {
                let (v, b) = rest.split_at(e.valid_up_to());
                (std::str::from_utf8(v).unwrap_or(""), b)
            }
        };
        let mut chars = valid.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{0c}' => out.extend_from_slice(b"\\f"),
                '\u{0b}' => out.extend_from_slice(b"\\v"),
                '\u{08}' => out.extend_from_slice(b"\\b"),
                '\u{07}' => out.extend_from_slice(b"\\a"),
                '\u{1b}' => out.extend_from_slice(b"\\e"),
                '#' if matches!(chars.peek(), Some('{' | '$' | '@')) => out.extend_from_slice(b"\\#"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\u{:04X}", c as u32);
                }
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        if bad.is_empty() {
            break;
        }
        let _ = write!(out, "\\x{:02X}", bad[0]);
        rest = &bad[1..];
    }
    out.push(b'"');
}

/// Append Ruby's `inspect` of a value, in the form of Ruby 3.4 (which
/// current Fluentd packages ship): `{"k" => "v", "n" => 1}`, `[1, nil]`.
pub fn write_inspect(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => out.extend_from_slice(b"nil"),
        Value::String(s) => write_str_inspect(out, s.as_bytes()),
        Value::Binary(b) => write_str_inspect(out, b),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_inspect(out, x);
            }
            out.push(b']');
        }
        Value::Map(m) => {
            out.push(b'{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_inspect(out, k);
                out.extend_from_slice(b" => ");
                write_inspect(out, x);
            }
            out.push(b'}');
        }
        Value::Ext(t, p) if *t == crate::time::EVENT_TIME_EXT && p.len() == 8 => {
            let sec = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let _ = write!(out, "{sec}");
        }
        Value::Ext(..) => out.extend_from_slice(b"nil"),
        other => write_to_s(out, other),
    }
}

/// Ruby `inspect` of raw msgpack bytes (used by the `hash` formatter).
pub fn write_inspect_raw(out: &mut Vec<u8>, raw: &[u8]) {
    match msgpack::header(raw, 0).map(|h| h.kind) {
        Ok(Kind::Map | Kind::Array) => {
            if let Ok(v) = rmpv::decode::read_value(&mut &raw[..]) {
                write_inspect(out, &v);
            }
        }
        _ => {
            if let Ok((s, _)) = msgpack::read_scalar(raw, 0) {
                let v = match s {
                    Scalar::Nil => Value::Nil,
                    Scalar::Bool(b) => Value::Boolean(b),
                    Scalar::UInt(u) => Value::from(u),
                    Scalar::Int(i) => Value::from(i),
                    Scalar::F32(f) => Value::F32(f),
                    Scalar::F64(f) => Value::F64(f),
                    Scalar::Str(s) | Scalar::Bin(s) => Value::Binary(s.to_vec()),
                    Scalar::Ext(t, p) => Value::Ext(t, p.to_vec()),
                };
                write_inspect(out, &v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, x);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn float_to_s_matches_ruby() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (999999999999999.0, "999999999999999.0"),
            (1e15, "1.0e+15"),
            (1e16, "1.0e+16"),
            (1.5e15, "1.5e+15"),
            (1.5e16, "1.5e+16"),
            (123456789.123, "123456789.123"),
            (0.0001, "0.0001"),
            (0.00001, "1.0e-05"),
            (1.2345e-7, "1.2345e-07"),
            (1e100, "1.0e+100"),
            (0.0, "0.0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "Infinity"),
        ];
        for (x, want) in cases {
            assert_eq!(f(x), want, "{x}");
        }
    }

    #[test]
    fn json_floats_follow_oj_compat() {
        let j = |x: f64| {
            let mut out = Vec::new();
            write_json_float(&mut out, x);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(j(1e15), "1000000000000000.0");
        assert_eq!(j(1e18), "1000000000000000000.0");
        assert_eq!(j(1e20), "1.0e+20");
        assert_eq!(j(-0.0), "0.0");
        assert_eq!(j(1e-5), "1.0e-05");
        assert_eq!(j(2.5), "2.5");
        assert_eq!(j(f64::NAN), "null");
    }

    #[test]
    fn inspect_is_ruby_34_style() {
        let v = Value::Map(vec![
            (Value::from("k"), Value::from("v\"\n")),
            (Value::from("n"), Value::Array(vec![Value::from(1), Value::Nil, Value::from(1.5), Value::from(true)])),
        ]);
        let mut out = Vec::new();
        write_inspect(&mut out, &v);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"k" => "v\"\n", "n" => [1, nil, 1.5, true]}"#);
        assert_eq!(to_s(&Value::Nil), "");
        let mut out = Vec::new();
        write_str_inspect(&mut out, b"a#{b}#c\x00\x1b\xff");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\#{b}#c\u0000\e\xFF""#);
        assert_eq!(to_s(&Value::from(3)), "3");
    }
}
