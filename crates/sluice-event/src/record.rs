//! Records: a borrowed view over msgpack map bytes ([`RecordRef`]) for
//! reading without decoding, and an owned, ordered map ([`Record`]) for
//! plugins that change records.
//!
//! Key order is kept, as Ruby hashes keep it, so a record that is decoded,
//! changed and encoded again lists its keys in the order Fluentd would.

use crate::msgpack::{self, Error, Kind};
pub use rmpv::Value;

/// One step of a path into nested records: a map key or an array index
/// (negative indexes count from the end, as in Ruby).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    /// A map key.
    Key(String),
    /// An array index.
    Index(i64),
}

/// A record map, borrowed from msgpack bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    raw: &'a [u8],
}

impl std::fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = Vec::new();
        crate::json::write_json(self.raw, &mut s).map_err(|_| std::fmt::Error)?;
        write!(f, "RecordRef({})", String::from_utf8_lossy(&s))
    }
}

/// Map key and value, both as raw msgpack bytes.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// The key value (usually a str).
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

impl<'a> Pair<'a> {
    /// The key's string bytes, if the key is a str or bin.
    pub fn key_str(&self) -> Option<&'a [u8]> {
        msgpack::read_str(self.key, 0).ok().map(|(s, _)| s)
    }
}

impl<'a> RecordRef<'a> {
    /// View `raw` as a record: it must be exactly one msgpack map.
    ///
    /// # Errors
    /// If `raw` is not one complete map.
    pub fn new(raw: &'a [u8]) -> Result<Self, Error> {
        let h = msgpack::header(raw, 0)?;
        if h.kind != Kind::Map {
            return Err(Error::Type { expected: "map", found: h.kind.name() });
        }
        if msgpack::skip(raw, 0)? != raw.len() {
            return Err(Error::Type { expected: "one map", found: "trailing bytes" });
        }
        Ok(RecordRef { raw })
    }

    /// View bytes the caller already walked (with [`msgpack::skip`]) as one
    /// complete value; only checks that it is a map.
    ///
    /// # Errors
    /// If the value is not a map.
    pub fn walked(raw: &'a [u8]) -> Result<Self, Error> {
        match msgpack::header(raw, 0)?.kind {
            Kind::Map => Ok(RecordRef { raw }),
            k => Err(Error::Type { expected: "map", found: k.name() }),
        }
    }

    /// View bytes already known to be one map (from a validated stream).
    pub(crate) fn new_unchecked(raw: &'a [u8]) -> Self {
        RecordRef { raw }
    }

    /// The map bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        msgpack::read_map_len(self.raw, 0).map(|(n, _)| n).unwrap_or(0)
    }

    /// True if the map has no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterate pairs in stored order.
    pub fn iter(&self) -> PairIter<'a> {
        let (left, at) = msgpack::read_map_len(self.raw, 0).unwrap_or((0, self.raw.len()));
        PairIter { raw: self.raw, at, left }
    }

    /// Raw value for a string key (the first match, as a Ruby hash has one).
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.iter().find(|p| p.key_str() == Some(key.as_bytes())).map(|p| p.value)
    }

    /// String bytes of the value for `key`, if it is a str or bin.
    pub fn get_str(&self, key: &str) -> Option<&'a [u8]> {
        self.get(key).and_then(|v| msgpack::read_str(v, 0).ok()).map(|(s, _)| s)
    }

    /// Raw value at a nested path.
    pub fn dig(&self, path: &[PathSeg]) -> Option<&'a [u8]> {
        dig_raw(self.raw, path)
    }

    /// Decode into an owned record.
    ///
    /// # Errors
    /// Never for records from validated streams; kept for foreign bytes.
    pub fn to_record(&self) -> Result<Record, Error> {
        Record::from_msgpack(self.raw)
    }
}

/// Walk `path` through raw msgpack maps and arrays.
pub fn dig_raw<'a>(mut raw: &'a [u8], path: &[PathSeg]) -> Option<&'a [u8]> {
    for seg in path {
        let h = msgpack::header(raw, 0).ok()?;
        match (seg, h.kind) {
            (PathSeg::Key(k), Kind::Map) => {
                raw = RecordRef::new_unchecked(raw).get(k)?;
            }
            (PathSeg::Index(i), Kind::Array) => {
                let n = h.len as i64;
                let idx = if *i < 0 { n + i } else { *i };
                if idx < 0 || idx >= n {
                    return None;
                }
                let mut at = h.header_len;
                for _ in 0..idx {
                    at = msgpack::skip(raw, at).ok()?;
                }
                let end = msgpack::skip(raw, at).ok()?;
                raw = &raw[at..end];
            }
            _ => return None,
        }
    }
    Some(raw)
}

/// Iterator over the pairs of a [`RecordRef`].
pub struct PairIter<'a> {
    raw: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for PairIter<'a> {
    type Item = Pair<'a>;
    fn next(&mut self) -> Option<Pair<'a>> {
        if self.left == 0 {
            return None;
        }
        let kend = msgpack::skip(self.raw, self.at).ok()?;
        let vend = msgpack::skip(self.raw, kend).ok()?;
        let pair = Pair { key: &self.raw[self.at..kend], value: &self.raw[kend..vend] };
        self.at = vend;
        self.left -= 1;
        Some(pair)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// An owned record: an ordered map from keys to msgpack values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record(pub Vec<(Value, Value)>);

/// True if `v` is a str or bin whose bytes are `key`.
pub fn value_is_key(v: &Value, key: &str) -> bool {
    match v {
        Value::String(s) => s.as_bytes() == key.as_bytes(),
        Value::Binary(b) => b == key.as_bytes(),
        _ => false,
    }
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Record(Vec::new())
    }

    /// Decode from msgpack map bytes.
    ///
    /// # Errors
    /// If the bytes are not a map.
    pub fn from_msgpack(raw: &[u8]) -> Result<Self, Error> {
        // Bound the work before handing the bytes to the tree decoder.
        let end = msgpack::skip(raw, 0)?;
        let v = rmpv::decode::read_value(&mut &raw[..end]).map_err(|_| Error::Truncated)?;
        match v {
            Value::Map(m) => Ok(Record(m)),
            other => Err(Error::Type { expected: "map", found: value_kind(&other) }),
        }
    }

    /// Wrap a decoded value if it is a map.
    pub fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Map(m) => Some(Record(m)),
            _ => None,
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value for a string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| value_is_key(k, key)).map(|(_, v)| v)
    }

    /// Mutable value for a string key.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| value_is_key(k, key)).map(|(_, v)| v)
    }

    /// True if `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Set `key`, replacing an existing value in place (keeping its position,
    /// as Ruby's `Hash#[]=` does) or appending.
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        if let Some(slot) = self.get_mut(key) {
            *slot = value;
        } else {
            self.0.push((Value::from(key), value));
        }
    }

    /// Remove `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| value_is_key(k, key))?;
        Some(self.0.remove(i).1)
    }

    /// Value at a nested path.
    pub fn dig(&self, path: &[PathSeg]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut cur = match first {
            PathSeg::Key(k) => self.get(k)?,
            PathSeg::Index(_) => return None,
        };
        for seg in rest {
            cur = dig_value(cur, seg)?;
        }
        Some(cur)
    }

    /// Iterate pairs.
    pub fn iter(&self) -> impl Iterator<Item = &(Value, Value)> {
        self.0.iter()
    }

    /// Append the msgpack encoding of this record to `out`.
    pub fn write_msgpack(&self, out: &mut Vec<u8>) {
        msgpack::write_map_header(out, self.0.len());
        for (k, v) in &self.0 {
            write_value(out, k);
            write_value(out, v);
        }
    }

    /// The msgpack encoding of this record.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_msgpack(&mut out);
        out
    }

    /// Into a map value.
    pub fn into_value(self) -> Value {
        Value::Map(self.0)
    }
}

/// One step into a nested value.
pub fn dig_value<'v>(v: &'v Value, seg: &PathSeg) -> Option<&'v Value> {
    match (seg, v) {
        (PathSeg::Key(k), Value::Map(m)) => m.iter().find(|(mk, _)| value_is_key(mk, k)).map(|(_, v)| v),
        (PathSeg::Index(i), Value::Array(a)) => {
            let n = a.len() as i64;
            let idx = if *i < 0 { n + i } else { *i };
            if idx < 0 || idx >= n { None } else { a.get(idx as usize) }
        }
        _ => None,
    }
}

/// Decode one msgpack value (bounded: the bytes are walked first).
///
/// # Errors
/// If `raw` does not start with a complete value.
pub fn decode_value(raw: &[u8]) -> Result<Value, Error> {
    let end = msgpack::skip(raw, 0)?;
    rmpv::decode::read_value(&mut &raw[..end]).map_err(|_| Error::Truncated)
}

/// Append the msgpack encoding of a value, with compact integers.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    // rmpv writes integers and strings in their compact forms and only fails
    // on I/O errors, which a Vec never returns.
    let _ = rmpv::encode::write_value(out, v);
}

/// Human name of a value's type.
pub fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) => "integer",
        Value::F32(_) | Value::F64(_) => "float",
        Value::String(_) => "string",
        Value::Binary(_) => "binary",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Ext(..) => "extension",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let mut r = Record::new();
        r.insert("a", 1);
        r.insert(
            "nested",
            Value::Map(vec![(Value::from("b"), Value::Array(vec![Value::from("x"), Value::from("y")]))]),
        );
        r
    }

    #[test]
    fn ref_and_owned_agree() {
        let r = sample();
        let raw = r.to_msgpack();
        let rr = RecordRef::new(&raw).unwrap();
        assert_eq!(rr.len(), 2);
        assert_eq!(rr.to_record().unwrap(), r);
        let path = [PathSeg::Key("nested".into()), PathSeg::Key("b".into()), PathSeg::Index(-1)];
        assert_eq!(rr.dig(&path), Some(&[0xa1, b'y'][..]));
        assert_eq!(r.dig(&path), Some(&Value::from("y")));
        assert_eq!(rr.dig(&[PathSeg::Key("a".into()), PathSeg::Key("x".into())]), None);
    }

    #[test]
    fn insert_keeps_position_remove_works() {
        let mut r = sample();
        r.insert("a", "changed");
        assert!(value_is_key(&r.0[0].0, "a"));
        assert_eq!(r.remove("a"), Some(Value::from("changed")));
        assert_eq!(r.len(), 1);
        assert!(RecordRef::new(&[0x81, 0xa1]).is_err());
        assert!(RecordRef::new(&[0x80, 0x80]).is_err());
    }
}
