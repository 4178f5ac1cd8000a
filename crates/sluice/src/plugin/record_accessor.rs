//! Record accessors: `$.a.b[0]`, `$['a']['b']`, or a plain top-level key
//! (Fluentd's `record_accessor` helper).

use sluice_event::record::{dig_value, value_is_key};
use sluice_event::{PathSeg, Record, RecordRef, Value};

/// A compiled path into a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessor {
    path: Vec<PathSeg>,
    source: String,
}

/// Decode a raw msgpack value (from a validated record); nil if malformed.
pub fn decode_value(raw: &[u8]) -> Value {
    sluice_event::record::decode_value(raw).unwrap_or(Value::Nil)
}

impl Accessor {
    /// A plain top-level key.
    pub fn key(k: &str) -> Accessor {
        Accessor { path: vec![PathSeg::Key(k.to_string())], source: k.to_string() }
    }

    /// Parse `$.a.b[0]`, `$['a'][0]`, or a plain key.
    ///
    /// # Errors
    /// A message naming what is malformed.
    pub fn parse(s: &str) -> Result<Accessor, String> {
        let path = if let Some(rest) = s.strip_prefix("$.") {
            parse_dot(rest, s)?
        } else if s.starts_with("$[") {
            parse_bracket(&s[1..], s)?
        } else {
            vec![PathSeg::Key(s.to_string())]
        };
        if path.is_empty() {
            return Err(format!("empty keys in dot notation: {s}"));
        }
        Ok(Accessor { path, source: s.to_string() })
    }

    /// The accessor as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The path.
    pub fn path(&self) -> &[PathSeg] {
        &self.path
    }

    /// The top-level key, if the path has only one step.
    pub fn top_key(&self) -> Option<&str> {
        match self.path.as_slice() {
            [PathSeg::Key(k)] => Some(k),
            _ => None,
        }
    }

    /// Raw value at the path.
    pub fn get_raw<'a>(&self, record: RecordRef<'a>) -> Option<&'a [u8]> {
        record.dig(&self.path)
    }

    /// Raw value at the path with Ruby's `dig` errors: `Ok(None)` when a
    /// key is missing or a level is nil, `Err` when a level cannot be dug
    /// into (`String does not have #dig method`).
    ///
    /// # Errors
    /// Ruby's `TypeError` message.
    pub fn dig_checked<'a>(&self, record: RecordRef<'a>) -> Result<Option<&'a [u8]>, String> {
        use sluice_event::msgpack::{self, Kind};
        let mut raw = record.as_bytes();
        for (depth, seg) in self.path.iter().enumerate() {
            let Ok(h) = msgpack::header(raw, 0) else { return Ok(None) };
            match (seg, h.kind) {
                (_, Kind::Nil) => return Ok(None),
                (PathSeg::Key(k), Kind::Map) => match RecordRef::new(raw).ok().and_then(|r| r.get(k)) {
                    Some(v) => raw = v,
                    None => return Ok(None),
                },
                (PathSeg::Index(_), Kind::Map) => return Ok(None),
                (PathSeg::Index(_), Kind::Array) => match sluice_event::record::dig_raw(raw, std::slice::from_ref(seg))
                {
                    Some(v) => raw = v,
                    None => return Ok(None),
                },
                (PathSeg::Key(_), Kind::Array) => return Err("no implicit conversion of String into Integer".into()),
                (_, kind) if depth > 0 => {
                    let class = match kind {
                        Kind::Str | Kind::Bin => "String",
                        Kind::Int => "Integer",
                        Kind::Float => "Float",
                        Kind::Bool => "TrueClass",
                        _ => "Object",
                    };
                    return Err(format!("{class} does not have #dig method"));
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(raw))
    }

    /// Value at the path.
    pub fn get<'r>(&self, record: &'r Record) -> Option<&'r Value> {
        record.dig(&self.path)
    }

    /// Remove the value at the path (no-op if absent).
    pub fn delete(&self, record: &mut Record) {
        match self.path.split_last() {
            Some((PathSeg::Key(k), [])) => {
                record.remove(k);
            }
            Some((last, parent)) => {
                let Some(target) = dig_mut(record, parent) else {
                    return;
                };
                match (target, last) {
                    (Value::Map(m), PathSeg::Key(k)) => {
                        if let Some(i) = m.iter().position(|(mk, _)| value_is_key(mk, k)) {
                            m.remove(i);
                        }
                    }
                    (Value::Array(a), PathSeg::Index(i)) => {
                        let n = a.len() as i64;
                        let idx = if *i < 0 { n + i } else { *i };
                        if (0..n).contains(&idx) {
                            a.remove(idx as usize);
                        }
                    }
                    _ => {}
                }
            }
            None => {}
        }
    }

    /// Set the value at the path; intermediate containers must exist (as in Fluentd).
    pub fn set(&self, record: &mut Record, v: Value) {
        match self.path.split_last() {
            Some((PathSeg::Key(k), [])) => record.insert(k, v),
            Some((last, parent)) => {
                let Some(target) = dig_mut(record, parent) else {
                    return;
                };
                match (target, last) {
                    (Value::Map(m), PathSeg::Key(k)) => match m.iter_mut().find(|(mk, _)| value_is_key(mk, k)) {
                        Some(slot) => slot.1 = v,
                        None => m.push((Value::from(k.as_str()), v)),
                    },
                    (Value::Array(a), PathSeg::Index(i)) => {
                        let n = a.len() as i64;
                        let idx = if *i < 0 { n + i } else { *i };
                        if idx >= 0 {
                            let idx = idx as usize;
                            if idx >= a.len() {
                                a.resize(idx + 1, Value::Nil);
                            }
                            a[idx] = v;
                        }
                    }
                    _ => {}
                }
            }
            None => {}
        }
    }
}

fn dig_mut<'r>(record: &'r mut Record, path: &[PathSeg]) -> Option<&'r mut Value> {
    let (first, rest) = path.split_first()?;
    let mut cur = match first {
        PathSeg::Key(k) => record.get_mut(k)?,
        PathSeg::Index(_) => return None,
    };
    for seg in rest {
        // Check first with a shared borrow, then take the mutable one.
        dig_value(cur, seg)?;
        cur = match (cur, seg) {
            (Value::Map(m), PathSeg::Key(k)) => &mut m.iter_mut().find(|(mk, _)| value_is_key(mk, k))?.1,
            (Value::Array(a), PathSeg::Index(i)) => {
                let n = a.len() as i64;
                let idx = if *i < 0 { n + i } else { *i };
                a.get_mut(idx as usize)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn parse_index(s: &str, whole: &str) -> Result<PathSeg, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("missing array index in '[]': {whole}"));
    }
    sluice_config::types::parse_integer(t)
        .map(|i| PathSeg::Index(i as i64))
        .map_err(|_| format!("invalid array index '{t}': {whole}"))
}

fn parse_dot(rest: &str, whole: &str) -> Result<Vec<PathSeg>, String> {
    let mut out = Vec::new();
    let mut parts: Vec<&str> = rest.split('.').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    for part in parts {
        if part.chars().any(char::is_whitespace) {
            return Err(format!("whitespace character is not allowed in dot notation: {whole}"));
        }
        let (name, mut idx) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() || idx.is_empty() {
            out.push(PathSeg::Key(name.to_string()));
        }
        while let Some(r) = idx.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                return Err(format!("']' is missing: {whole}"));
            };
            out.push(parse_index(&r[..close], whole)?);
            idx = &r[close + 1..];
        }
        if !idx.is_empty() {
            return Err(format!("found more characters after ']': {whole}"));
        }
    }
    Ok(out)
}

fn parse_bracket(mut s: &str, whole: &str) -> Result<Vec<PathSeg>, String> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let Some(r) = s.strip_prefix('[') else {
            return Err(format!("found more characters after ']': {whole}"));
        };
        if let Some(q @ ('\'' | '"')) = r.chars().next() {
            let body = &r[1..];
            let end = body.find(&format!("{q}]")).ok_or_else(|| format!("unclosed quoted key: {whole}"))?;
            out.push(PathSeg::Key(body[..end].to_string()));
            s = &body[end + 2..];
        } else {
            let close = r.find(']').ok_or_else(|| format!("']' is missing: {whole}"))?;
            out.push(parse_index(&r[..close], whole)?);
            s = &r[close + 1..];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<PathSeg> {
        Accessor::parse(s).unwrap().path
    }

    #[test]
    fn notations() {
        let want = vec![PathSeg::Key("key1".into()), PathSeg::Key("key2".into()), PathSeg::Index(0)];
        assert_eq!(keys("$.key1.key2[0]"), want);
        assert_eq!(keys("$['key1']['key2'][0]"), want);
        assert_eq!(keys(r#"$["key1"]["key2"][0]"#), want);
        assert_eq!(
            keys("$['key1']['this.is.key3']"),
            vec![PathSeg::Key("key1".into()), PathSeg::Key("this.is.key3".into())]
        );
        assert_eq!(keys("this.is.key"), vec![PathSeg::Key("this.is.key".into())]);
        assert!(Accessor::parse("$.hello[]").is_err());
        assert!(Accessor::parse("$.key1[0]foo").is_err());
        assert!(Accessor::parse("$.key[0].ke y").is_err());
        assert!(Accessor::parse("$['key1'").is_err());
        assert!(Accessor::parse("$.").is_err());
    }

    #[test]
    fn get_delete_set() {
        let mut r = Record::new();
        r.insert(
            "nest",
            Value::Map(vec![(Value::from("k1"), Value::from("v1")), (Value::from("k2"), Value::from("v2"))]),
        );
        let a = Accessor::parse("$.nest.k1").unwrap();
        assert_eq!(a.get(&r), Some(&Value::from("v1")));
        let raw = r.to_msgpack();
        assert_eq!(decode_value(a.get_raw(RecordRef::new(&raw).unwrap()).unwrap()), Value::from("v1"));
        a.delete(&mut r);
        assert_eq!(a.get(&r), None);
        a.set(&mut r, Value::from(5));
        assert_eq!(a.get(&r), Some(&Value::from(5)));
        Accessor::parse("$.missing.x").unwrap().set(&mut r, Value::Nil);
        assert!(!r.contains_key("missing"));
    }
}
