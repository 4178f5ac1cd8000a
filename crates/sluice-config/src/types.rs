//! Parameter value types and their coercion from config text.
//!
//! The rules follow Fluentd's `config/types.rb`, with one deliberate
//! difference: where Ruby would silently turn nonsense into `0` or `nil`
//! (`port "#{ENV['UNSET']}"` becoming port 0, `flush_interval fast` becoming
//! 0.0), sluice reports an error naming the parameter and the value.
//!
//! | type     | accepted                                                           |
//! |----------|--------------------------------------------------------------------|
//! | string   | anything                                                           |
//! | integer  | `42`, `-7`, `1_000`, `0x1f`, `0o17`, `0b101`                       |
//! | float    | `0.5`, `1e3`, `-2`                                                 |
//! | size     | `1024`, `10k`, `256m`, `10M`, `1g`, `2t` (base 1024; `kb` etc. too) |
//! | time     | `0.5`, `60s`, `5m`, `1h`, `2d` (seconds)                           |
//! | bool     | `true`/`yes`/`false`/`no`; an empty value is `true`                |
//! | enum     | one of a listed set                                                |
//! | array    | JSON `["a","b"]` or `a, b`                                         |
//! | hash     | JSON `{"k":"v"}` or `k1:v1,k2:v2`                                  |
//! | regexp   | `/pattern/flags` or a bare pattern (Ruby syntax)                   |

use sluice_ruby::RubyRegex;
use std::fmt;

/// A value type a parameter can be declared with.
pub trait ParamValue: Sized {
    /// The type's name in docs and messages (`integer`, `size`, …).
    fn type_name() -> &'static str;
    /// An example value, shown in type errors.
    fn example() -> &'static str;
    /// The allowed values, for enums.
    fn enum_values() -> Option<&'static [&'static str]> {
        None
    }
    /// Parse config text.
    ///
    /// # Errors
    /// A short reason, without the parameter name (the caller adds it).
    fn parse(s: &str) -> Result<Self, String>;
    /// What Fluentd's lenient coercion makes of text [`ParamValue::parse`]
    /// rejects (e.g. `10abc` → 10): the value and how it was read. Used with
    /// a warning, or refused under `--strict`.
    fn parse_lenient(_s: &str) -> Option<(Self, String)> {
        None
    }
}

/// The numeric prefix of `s` as Ruby's `to_i`/`to_f` read it (optional
/// sign, digits, `_`, and for floats a fraction), if there is one.
pub fn numeric_prefix(s: &str, float: bool) -> Option<&str> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits_start = i;
    while i < b.len() && (b[i].is_ascii_digit() || (b[i] == b'_' && i > digits_start)) {
        i += 1;
    }
    if i == digits_start {
        return None;
    }
    if float && i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    Some(&t[..i])
}

impl ParamValue for String {
    fn type_name() -> &'static str {
        "string"
    }
    fn example() -> &'static str {
        "text"
    }
    fn parse(s: &str) -> Result<Self, String> {
        Ok(s.to_string())
    }
}

/// Parse an integer as Ruby's `Integer()` does (underscores, radix prefixes).
pub fn parse_integer(s: &str) -> Result<i128, String> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = match body.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0b") => (2, &body[2..]),
        Some("0o") => (8, &body[2..]),
        _ => (10, body),
    };
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return Err(format!("invalid integer {s:?}"));
    }
    let v = i128::from_str_radix(&clean, radix).map_err(|_| format!("invalid integer {s:?}"))?;
    Ok(if neg { -v } else { v })
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ParamValue for $t {
            fn type_name() -> &'static str { "integer" }
            fn example() -> &'static str { "10" }
            fn parse(s: &str) -> Result<Self, String> {
                let v = parse_integer(s)?;
                <$t>::try_from(v).map_err(|_| format!("integer {v} is out of range ({}..={})", <$t>::MIN, <$t>::MAX))
            }
            fn parse_lenient(s: &str) -> Option<(Self, String)> {
                let p = numeric_prefix(s, false)?;
                let v = Self::parse(p).ok()?;
                Some((v, format!("{s:?} is not an integer; read as {p} as Fluentd does")))
            }
        }
    )*};
}
int_param!(i32, i64, u8, u16, u32, u64, usize);

impl ParamValue for f64 {
    fn type_name() -> &'static str {
        "float"
    }
    fn example() -> &'static str {
        "0.5"
    }
    fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let clean: String = t.chars().filter(|c| *c != '_').collect();
        match clean.parse::<f64>() {
            Ok(v) if v.is_finite() || clean.eq_ignore_ascii_case("infinity") => Ok(v),
            _ => Err(format!("invalid float {s:?}")),
        }
    }
    fn parse_lenient(s: &str) -> Option<(Self, String)> {
        let p = numeric_prefix(s, true)?;
        let v = Self::parse(p).ok()?;
        Some((v, format!("{s:?} is not a number; read as {p} as Fluentd does")))
    }
}

impl ParamValue for bool {
    fn type_name() -> &'static str {
        "bool"
    }
    fn example() -> &'static str {
        "true"
    }
    fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "true" | "yes" | "" => Ok(true),
            "false" | "no" => Ok(false),
            other => Err(format!("invalid bool value {other:?} (use true, false, yes or no)")),
        }
    }
}

/// A byte size (`size` type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl Size {
    /// Bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(1u64 << 40, "t"), (1 << 30, "g"), (1 << 20, "m"), (1 << 10, "k")];
        for (n, u) in units {
            if self.0 >= n && self.0.is_multiple_of(n) {
                return write!(f, "{}{u}", self.0 / n);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl ParamValue for Size {
    fn type_name() -> &'static str {
        "size"
    }
    fn example() -> &'static str {
        "8m"
    }
    fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').filter(|r| r.ends_with(['k', 'm', 'g', 't'])).unwrap_or(&t);
        let (num, mult) = match t.as_bytes().last() {
            Some(b'k') => (&t[..t.len() - 1], 1u64 << 10),
            Some(b'm') => (&t[..t.len() - 1], 1 << 20),
            Some(b'g') => (&t[..t.len() - 1], 1 << 30),
            Some(b't') => (&t[..t.len() - 1], 1 << 40),
            _ => (t, 1),
        };
        let num = num.trim();
        let bytes = if let Ok(i) = parse_integer(num) {
            if i < 0 {
                return Err(format!("size {s:?} is negative"));
            }
            u64::try_from(i).ok().and_then(|i| i.checked_mul(mult))
        } else {
            match num.parse::<f64>() {
                Ok(f) if f >= 0.0 && f.is_finite() => Some((f * mult as f64) as u64),
                _ => return Err(format!("invalid size {s:?}")),
            }
        };
        bytes.map(Size).ok_or_else(|| format!("size {s:?} is too large"))
    }
    fn parse_lenient(s: &str) -> Option<(Self, String)> {
        let p = numeric_prefix(s, true)?;
        let rest = &s.trim_start()[p.len()..];
        let unit = rest.chars().next().filter(|c| "kmgtKMGT".contains(*c));
        let text = format!("{p}{}", unit.map(String::from).unwrap_or_default());
        let v = Self::parse(&text).ok()?;
        Some((v, format!("{s:?} is not a size; read as {text}")))
    }
}

/// A duration in seconds (`time` type).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct TimeSpan(pub f64);

impl TimeSpan {
    /// Seconds.
    pub fn secs(self) -> f64 {
        self.0
    }

    /// As a `Duration` (negative values clamp to zero).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0.clamp(0.0, 1e12))
    }
}

impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s != 0.0 && s.fract() == 0.0 {
            let i = s as i64;
            for (n, u) in [(86_400, "d"), (3600, "h"), (60, "m")] {
                if i % n == 0 {
                    return write!(f, "{}{u}", i / n);
                }
            }
            return write!(f, "{i}s");
        }
        write!(f, "{s}")
    }
}

impl ParamValue for TimeSpan {
    fn type_name() -> &'static str {
        "time"
    }
    fn example() -> &'static str {
        "60s"
    }
    fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, mult) = match t.as_bytes().last() {
            Some(b's') => (&t[..t.len() - 1], 1.0),
            Some(b'm') => (&t[..t.len() - 1], 60.0),
            Some(b'h') => (&t[..t.len() - 1], 3600.0),
            Some(b'd') => (&t[..t.len() - 1], 86_400.0),
            _ => (t, 1.0),
        };
        match num.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(TimeSpan(f * mult)),
            _ => Err(format!("invalid time {s:?}")),
        }
    }
    fn parse_lenient(s: &str) -> Option<(Self, String)> {
        let p = numeric_prefix(s, true)?;
        let rest = &s.trim_start()[p.len()..];
        let unit = rest.chars().next().filter(|c| "smhd".contains(*c));
        let text = format!("{p}{}", unit.map(String::from).unwrap_or_default());
        let v = Self::parse(&text).ok()?;
        Some((v, format!("{s:?} is not a time; read as {text}")))
    }
}

/// An array of strings (`array` type): JSON or comma-separated.
impl ParamValue for Vec<String> {
    fn type_name() -> &'static str {
        "array"
    }
    fn example() -> &'static str {
        "a,b"
    }
    fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.starts_with('[') {
            let v: serde_json::Value = serde_json::from_str(t).map_err(|e| format!("invalid JSON array: {e}"))?;
            match v {
                serde_json::Value::Array(items) => Ok(items.into_iter().map(json_scalar_to_string).collect()),
                _ => Err("array required".into()),
            }
        } else if t.is_empty() {
            Ok(Vec::new())
        } else {
            Ok(t.split(',').map(|p| p.trim().to_string()).collect())
        }
    }
}

fn json_scalar_to_string(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An ordered map of strings (`hash` type): JSON or `k1:v1,k2:v2`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrMap(pub Vec<(String, String)>);

impl StrMap {
    /// The value for `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

impl ParamValue for StrMap {
    fn type_name() -> &'static str {
        "hash"
    }
    fn example() -> &'static str {
        "k1:v1,k2:v2"
    }
    fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(t).map_err(|e| format!("invalid JSON object: {e}"))?;
            match v {
                serde_json::Value::Object(m) => {
                    Ok(StrMap(m.into_iter().map(|(k, v)| (k, json_scalar_to_string(v))).collect()))
                }
                _ => Err("hash required".into()),
            }
        } else if t.is_empty() {
            Ok(StrMap::default())
        } else {
            Ok(StrMap(
                t.split(',')
                    .map(|p| {
                        let p = p.trim();
                        match p.split_once(':') {
                            Some((k, v)) => (k.to_string(), v.to_string()),
                            None => (p.to_string(), String::new()),
                        }
                    })
                    .collect(),
            ))
        }
    }
}

impl ParamValue for RubyRegex {
    fn type_name() -> &'static str {
        "regexp"
    }
    fn example() -> &'static str {
        "/^error/i"
    }
    fn parse(s: &str) -> Result<Self, String> {
        RubyRegex::parse_literal(s)
    }
}

/// A JSON value (used by parameters such as `sample`).
impl ParamValue for serde_json::Value {
    fn type_name() -> &'static str {
        "json"
    }
    fn example() -> &'static str {
        r#"{"message":"sample"}"#
    }
    fn parse(s: &str) -> Result<Self, String> {
        serde_json::from_str(s.trim()).map_err(|e| format!("invalid JSON: {e}"))
    }
}

/// Implemented by `#[derive(ParamEnum)]` enums.
pub trait ParamEnumValues {
    /// The accepted spellings, in declaration order.
    const VALUES: &'static [&'static str];
}

/// Parse an enum value, with Fluentd's message for a bad one.
///
/// # Errors
/// `valid options are a,b,c but got X`.
pub fn parse_enum(s: &str, values: &[&str]) -> Result<usize, String> {
    let t = s.trim();
    let t = t.strip_prefix(':').unwrap_or(t);
    values.iter().position(|v| *v == t).ok_or_else(|| format!("valid options are {} but got {t}", values.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let p = |s| Size::parse(s).map(|x| x.0);
        assert_eq!(p("1024"), Ok(1024));
        assert_eq!(p("10k"), Ok(10240));
        assert_eq!(p("256m"), Ok(256 << 20));
        assert_eq!(p("10M"), Ok(10 << 20));
        assert_eq!(p("1g"), Ok(1 << 30));
        assert_eq!(p("2t"), Ok(2 << 40));
        assert_eq!(p("8MB"), Ok(8 << 20));
        assert_eq!(p("1.5k"), Ok(1536));
        assert!(p("lots").is_err());
        assert!(p("-1").is_err());
        assert_eq!(Size(256 << 20).to_string(), "256m");
    }

    #[test]
    fn times() {
        let p = |s| TimeSpan::parse(s).map(|x| x.0);
        assert_eq!(p("60s"), Ok(60.0));
        assert_eq!(p("2s"), Ok(2.0));
        assert_eq!(p("1h"), Ok(3600.0));
        assert_eq!(p("5m"), Ok(300.0));
        assert_eq!(p("1d"), Ok(86400.0));
        assert_eq!(p("0.5"), Ok(0.5));
        assert_eq!(p("10"), Ok(10.0));
        assert!(p("fast").is_err());
        assert!(p("").is_err());
        assert_eq!(TimeSpan(7200.0).to_string(), "2h");
        assert_eq!(TimeSpan(0.5).to_string(), "0.5");
    }

    #[test]
    fn bools_ints_floats() {
        assert_eq!(bool::parse("yes"), Ok(true));
        assert_eq!(bool::parse(""), Ok(true));
        assert_eq!(bool::parse("no"), Ok(false));
        assert!(bool::parse("maybe").is_err());
        assert_eq!(u16::parse("24224"), Ok(24224));
        assert_eq!(i64::parse("-1_000"), Ok(-1000));
        assert_eq!(u32::parse("0x1f"), Ok(31));
        assert!(u16::parse("70000").unwrap_err().contains("out of range"));
        assert!(u16::parse("").is_err());
        assert!(u16::parse("10abc").is_err());
        assert_eq!(u16::parse_lenient("10abc").map(|x| x.0), Some(10));
        assert_eq!(u16::parse_lenient("abc").map(|x| x.0), None);
        assert_eq!(TimeSpan::parse_lenient("60 s").map(|x| x.0), Some(TimeSpan(60.0)));
        assert_eq!(TimeSpan::parse_lenient("5min").map(|x| x.0), Some(TimeSpan(300.0)));
        assert_eq!(Size::parse_lenient("8 MB").map(|x| x.0), Some(Size(8)));
        assert_eq!(f64::parse("1e3"), Ok(1000.0));
        assert!(f64::parse("x").is_err());
    }

    #[test]
    fn arrays_and_hashes() {
        assert_eq!(Vec::<String>::parse("a, b ,c"), Ok(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(Vec::<String>::parse(r#"["a", 1, null]"#), Ok(vec!["a".into(), "1".into(), "".into()]));
        assert_eq!(Vec::<String>::parse(""), Ok(vec![]));
        assert!(Vec::<String>::parse("[1,").is_err());
        let h = StrMap::parse("k1:v1, k2:v:2").unwrap();
        assert_eq!(h.get("k2"), Some("v:2"));
        assert_eq!(StrMap::parse(r#"{"a":"b","n":1}"#).unwrap().get("n"), Some("1"));
        assert_eq!(StrMap::parse("a").unwrap().get("a"), Some(""));
        assert_eq!(parse_enum("json", &["json", "hash"]), Ok(0));
        assert_eq!(parse_enum("xml", &["json", "hash"]), Err("valid options are json,hash but got xml".into()));
    }
}
