//! Decoding one Forward request into a tag and an event stream.
//!
//! Modes (told apart by the second element, as Fluentd does):
//! * Message `[tag, time, record, option?]`
//! * Forward `[tag, [[time, record], …], option?]`
//! * PackedForward `[tag, entries as bin or str, option?]`
//! * CompressedPackedForward: the same with `{"compressed": "gzip"|"zstd"}`
//!   (gzip may be several members).
//!
//! Time is EventTime (ext 0), an integer, a float, or v1.5's
//! `[time, {metadata}]`. A zero time becomes "now". PackedForward entries
//! that need no change are passed on as the bytes that arrived (no copy);
//! otherwise the stream is rebuilt. Entries that are not `[time, record]`
//! are skipped and counted (`skip_invalid_event`), or fail the request.
//! Decompression is bounded by `decompression_size_limit`.

use bytes::Bytes;
use sluice_event::msgpack::{self, Kind, Scalar};
use sluice_event::{EventStream, EventStreamBuilder, EventTime};
use std::io::Read;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest decompressed size of one request.
    pub decompression: usize,
    /// Drop invalid entries instead of failing the request.
    pub skip_invalid_event: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { decompression: 256 << 20, skip_invalid_event: true }
    }
}

/// Telemetry signal (`fluent_signal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// 0 or absent.
    Logs,
    /// 1: cmetrics.
    Metrics,
    /// 2: ctraces.
    Traces,
    /// Anything else.
    Other(i64),
}

/// The option map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `size`: event count the sender claims.
    pub size: Option<u64>,
    /// `chunk`: the raw msgpack value, to echo byte for byte in the ack.
    pub chunk: Option<Bytes>,
    /// `compressed`.
    pub compressed: Option<String>,
    /// `fluent_signal`.
    pub signal: Option<i64>,
}

impl Options {
    /// The telemetry signal.
    pub fn signal(&self) -> Signal {
        match self.signal {
            None | Some(0) => Signal::Logs,
            Some(1) => Signal::Metrics,
            Some(2) => Signal::Traces,
            Some(n) => Signal::Other(n),
        }
    }
}

/// Which mode a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `[tag, time, record]`.
    Message,
    /// `[tag, [[time, record]…]]`.
    Forward,
    /// `[tag, bin]`.
    PackedForward,
    /// `[tag, gzip(bin), {compressed}]`.
    CompressedPackedForward,
}

/// One decoded request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The tag as sent.
    pub tag: String,
    /// The events that were valid.
    pub events: EventStream,
    /// The options.
    pub options: Options,
    /// The mode.
    pub mode: Mode,
    /// Entries dropped as invalid.
    pub skipped: usize,
    /// True if the events are the bytes that arrived (no rebuild).
    pub passthrough: bool,
}

/// Why a request cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not an array of 2 to 4 elements with a string tag.
    #[error("invalid request: {0}")]
    Shape(String),
    /// An entry is invalid and `skip_invalid_event` is off.
    #[error("invalid event at index {index}: {what}")]
    Event {
        /// Entry index.
        index: usize,
        /// What is wrong.
        what: String,
    },
    /// The entries do not decompress.
    #[error("cannot decompress ({method}): {error}")]
    Decompress {
        /// gzip or zstd.
        method: String,
        /// Why.
        error: String,
    },
    /// Decompressed data would exceed the limit.
    #[error("decompressed data exceeds decompression_size_limit ({0} bytes)")]
    TooLarge(usize),
    /// An unknown compression.
    #[error("unknown compression {0:?}")]
    UnknownCompression(String),
}

fn shape(what: &str) -> DecodeError {
    DecodeError::Shape(what.to_string())
}

/// Decode one request. `Ok(None)` for a heartbeat (`nil`).
///
/// # Errors
/// [`DecodeError`] for requests that are not Forward protocol.
pub fn decode(frame: &Bytes, limits: &Limits, now: EventTime) -> Result<Option<Request>, DecodeError> {
    let b = &frame[..];
    if b.first() == Some(&0xc0) {
        return Ok(None);
    }
    let (n, mut at) = msgpack::read_array_len(b, 0).map_err(|_| shape("not an array"))?;
    if !(2..=4).contains(&n) {
        return Err(shape(&format!("an array of {n} elements")));
    }
    let (tag, p) = msgpack::read_str(b, at).map_err(|_| shape("the tag is not a string"))?;
    let tag = String::from_utf8_lossy(tag).into_owned();
    at = p;
    let second = msgpack::header(b, at).map_err(|_| shape("truncated"))?;
    match second.kind {
        Kind::Array if is_forward_entries(b, at) => {
            let end = msgpack::skip(b, at).map_err(|_| shape("truncated"))?;
            let options = if n >= 3 { read_options(b, end)? } else { Options::default() };
            let (len, mut p) = msgpack::read_array_len(b, at).map_err(|_| shape("truncated"))?;
            let mut out = EventStreamBuilder::with_capacity(end - at + 16);
            let mut skipped = 0;
            for index in 0..len {
                let e = msgpack::skip(b, p).map_err(|_| shape("truncated"))?;
                match entry(b, p, e, now) {
                    Ok(ent) => ent.push(&mut out, b),
                    Err(what) if limits.skip_invalid_event => {
                        let _ = what;
                        skipped += 1;
                    }
                    Err(what) => return Err(DecodeError::Event { index, what }),
                }
                p = e;
            }
            Ok(Some(Request { tag, events: out.finish(), options, mode: Mode::Forward, skipped, passthrough: false }))
        }
        Kind::Str | Kind::Bin => {
            let (data, end) = msgpack::read_str(b, at).map_err(|_| shape("truncated"))?;
            let start = end - data.len();
            let options = if n >= 3 { read_options(b, end)? } else { Options::default() };
            let (raw, mode) = match options.compressed.as_deref() {
                None | Some("text") => (frame.slice(start..end), Mode::PackedForward),
                Some(m @ ("gzip" | "zstd")) => {
                    (Bytes::from(decompress(m, data, limits.decompression)?), Mode::CompressedPackedForward)
                }
                Some(other) => return Err(DecodeError::UnknownCompression(other.to_string())),
            };
            let (events, skipped, passthrough) = packed(raw, limits, now)?;
            Ok(Some(Request { tag, events, options, mode, skipped, passthrough }))
        }
        _ => {
            // Message mode: [tag, time, record, option?]
            if n < 3 {
                return Err(shape("a message without a record"));
            }
            let tend = msgpack::skip(b, at).map_err(|_| shape("truncated"))?;
            let rend = msgpack::skip(b, tend).map_err(|_| shape("truncated"))?;
            let options = if n == 4 { read_options(b, rend)? } else { Options::default() };
            let mut out = EventStreamBuilder::with_capacity(rend - at + 12);
            let mut skipped = 0;
            match message_entry(b, at, tend, rend, now) {
                Ok(ent) => ent.push(&mut out, b),
                Err(_) if limits.skip_invalid_event => skipped = 1,
                Err(what) => return Err(DecodeError::Event { index: 0, what }),
            }
            Ok(Some(Request { tag, events: out.finish(), options, mode: Mode::Message, skipped, passthrough: false }))
        }
    }
}

/// True if the array at `at` is Forward mode's entries, not v1.5's
/// `[time, {metadata}]` time of a Message.
fn is_forward_entries(b: &[u8], at: usize) -> bool {
    let Ok((n, p)) = msgpack::read_array_len(b, at) else { return true };
    if n != 2 {
        return true;
    }
    // [time, map] is a metadata time; [[t, r], [t, r]] is two entries.
    let Ok((_, tend)) = EventTime::read(b, p) else { return true };
    msgpack::header(b, tend).map(|h| h.kind) != Ok(Kind::Map)
}

fn read_options(b: &[u8], at: usize) -> Result<Options, DecodeError> {
    let mut o = Options::default();
    let h = msgpack::header(b, at).map_err(|_| shape("truncated option"))?;
    if h.kind == Kind::Nil {
        return Ok(o);
    }
    if h.kind != Kind::Map {
        return Err(shape("the option is not a map"));
    }
    let (n, mut p) = msgpack::read_map_len(b, at).map_err(|_| shape("truncated option"))?;
    for _ in 0..n {
        let kend = msgpack::skip(b, p).map_err(|_| shape("truncated option"))?;
        let vend = msgpack::skip(b, kend).map_err(|_| shape("truncated option"))?;
        let key = msgpack::read_str(b, p).map(|(k, _)| k).unwrap_or(b"");
        match key {
            b"size" => {
                o.size = match msgpack::read_scalar(b, kend) {
                    Ok((Scalar::UInt(u), _)) => Some(u),
                    Ok((Scalar::Int(i), _)) => u64::try_from(i).ok(),
                    _ => None,
                }
            }
            b"chunk" => o.chunk = Some(Bytes::copy_from_slice(&b[kend..vend])),
            b"compressed" => {
                o.compressed = msgpack::read_str(b, kend).ok().map(|(s, _)| String::from_utf8_lossy(s).into_owned());
            }
            b"fluent_signal" => {
                o.signal = match msgpack::read_scalar(b, kend) {
                    Ok((Scalar::UInt(u), _)) => i64::try_from(u).ok(),
                    Ok((Scalar::Int(i), _)) => Some(i),
                    _ => None,
                }
            }
            _ => {}
        }
        p = vend;
    }
    Ok(o)
}

fn decompress(method: &str, data: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let err = |e: std::io::Error| DecodeError::Decompress { method: method.to_string(), error: e.to_string() };
    let cap = limit as u64 + 1;
    match method {
        "gzip" => {
            flate2::read::MultiGzDecoder::new(data).take(cap).read_to_end(&mut out).map_err(err)?;
        }
        _ => {
            let dec = zstd::stream::read::Decoder::new(data).map_err(err)?;
            dec.take(cap).read_to_end(&mut out).map_err(err)?;
        }
    }
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out)
}

/// A checked entry: where its time and record are, and whether it can be
/// kept as it arrived.
struct Entry {
    /// Byte range of the whole entry.
    range: (usize, usize),
    time: EventTime,
    /// Range of the record map.
    record: (usize, usize),
    /// The entry is `[EventTime ext | positive int, map]` exactly as stored.
    canonical: bool,
}

impl Entry {
    fn push(&self, out: &mut EventStreamBuilder, b: &[u8]) {
        if self.canonical {
            out.push_entry_bytes(&b[self.range.0..self.range.1]);
        } else {
            out.push_raw(self.time, &b[self.record.0..self.record.1]);
        }
    }
}

/// Read a time value (ext, int, float or `[time, {meta}]`).
fn time_at(b: &[u8], at: usize, now: EventTime) -> Result<(EventTime, usize, bool), String> {
    let h = msgpack::header(b, at).map_err(|e| e.to_string())?;
    if h.kind == Kind::Array {
        // v1.5: [time, {metadata}]
        let (n, p) = msgpack::read_array_len(b, at).map_err(|e| e.to_string())?;
        if n != 2 {
            return Err("time is an array but not [time, metadata]".into());
        }
        let (t, _) = EventTime::read(b, p).map_err(|e| e.to_string())?;
        let end = msgpack::skip(b, at).map_err(|e| e.to_string())?;
        return Ok((if t.is_zero() { now } else { t }, end, false));
    }
    let canonical_kind = matches!(b[at], 0xd7 | 0x00..=0x7f | 0xcc..=0xcf);
    let (t, end) = EventTime::read(b, at).map_err(|e| e.to_string())?;
    if t.is_zero() {
        return Ok((now, end, false));
    }
    Ok((t, end, canonical_kind))
}

fn entry(b: &[u8], at: usize, end: usize, now: EventTime) -> Result<Entry, String> {
    let (n, p) = msgpack::read_array_len(b, at).map_err(|e| e.to_string())?;
    if n != 2 {
        return Err(format!("an entry of {n} elements"));
    }
    let (time, tend, canonical) = time_at(b, p, now)?;
    if msgpack::header(b, tend).map(|h| h.kind) != Ok(Kind::Map) {
        return Err("the record is not a map".into());
    }
    Ok(Entry { range: (at, end), time, record: (tend, end), canonical: canonical && b[at] == 0x92 })
}

fn message_entry(b: &[u8], at: usize, tend: usize, rend: usize, now: EventTime) -> Result<Entry, String> {
    let (time, _, _) = time_at(b, at, now)?;
    if msgpack::header(b, tend).map(|h| h.kind) != Ok(Kind::Map) {
        return Err("the record is not a map".into());
    }
    Ok(Entry { range: (at, rend), time, record: (tend, rend), canonical: false })
}

/// Entries of a (decompressed) PackedForward: passed through when every
/// entry is canonical, rebuilt otherwise.
fn packed(raw: Bytes, limits: &Limits, now: EventTime) -> Result<(EventStream, usize, bool), DecodeError> {
    let b = &raw[..];
    let mut at = 0;
    let mut entries = Vec::new();
    let mut all_canonical = true;
    let mut skipped = 0;
    let mut index = 0;
    while at < b.len() {
        let end = match msgpack::skip(b, at) {
            Ok(e) => e,
            Err(e) => {
                // The rest is not msgpack: nothing after it can be framed.
                if limits.skip_invalid_event {
                    skipped += 1;
                    all_canonical = false;
                    break;
                }
                return Err(DecodeError::Event { index, what: e.to_string() });
            }
        };
        match entry(b, at, end, now) {
            Ok(e) => {
                all_canonical &= e.canonical;
                entries.push(e);
            }
            Err(what) if limits.skip_invalid_event => {
                let _ = what;
                skipped += 1;
                all_canonical = false;
            }
            Err(what) => return Err(DecodeError::Event { index, what }),
        }
        at = end;
        index += 1;
    }
    if all_canonical {
        let n = entries.len();
        return Ok((EventStream::from_validated(raw, n), 0, true));
    }
    let mut out = EventStreamBuilder::with_capacity(b.len() + entries.len() * 8);
    for e in &entries {
        e.push(&mut out, b);
    }
    Ok((out.finish(), skipped, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::json;

    const NOW: EventTime = EventTime { sec: 1_700_000_000, nsec: 0 };

    fn rec(j: &str) -> Vec<u8> {
        let mut v = Vec::new();
        json::json_object_to_msgpack(j.as_bytes(), &mut v).unwrap();
        v
    }

    fn ext(t: EventTime) -> Vec<u8> {
        let mut v = Vec::new();
        t.write_ext(&mut v);
        v
    }

    fn events(r: &Request) -> Vec<(EventTime, String)> {
        r.events
            .iter()
            .map(|e| {
                let mut j = Vec::new();
                json::write_json(e.record.as_bytes(), &mut j).unwrap();
                (e.time, String::from_utf8(j).unwrap())
            })
            .collect()
    }

    fn dec(frame: Vec<u8>) -> Result<Option<Request>, DecodeError> {
        decode(&Bytes::from(frame), &Limits::default(), NOW)
    }

    #[test]
    fn message_mode_with_int_ext_and_metadata_time() {
        let t = EventTime::new(1_600_000_000, 5);
        let mut f = vec![0x93];
        msgpack::write_str(&mut f, b"app");
        f.extend(ext(t));
        f.extend(rec(r#"{"a":1}"#));
        let r = dec(f).unwrap().unwrap();
        assert_eq!((r.tag.as_str(), r.mode), ("app", Mode::Message));
        assert_eq!(events(&r), vec![(t, r#"{"a":1}"#.to_string())]);
        // Integer time and an option with chunk.
        let mut f = vec![0x94];
        msgpack::write_str(&mut f, b"app");
        msgpack::write_uint(&mut f, 1_600_000_000);
        f.extend(rec(r#"{"a":1}"#));
        f.extend([0x81, 0xa5]);
        f.extend(b"chunk");
        msgpack::write_str(&mut f, b"abc==\n");
        let r = dec(f).unwrap().unwrap();
        assert_eq!(r.events.iter().next().unwrap().time, EventTime::new(1_600_000_000, 0));
        assert_eq!(r.options.chunk.as_deref(), Some(&b"\xa6abc==\n"[..]));
        // v1.5: [time, {metadata}]
        let mut f = vec![0x93];
        msgpack::write_str(&mut f, b"app");
        f.push(0x92);
        f.extend(ext(t));
        f.extend(rec(r#"{"m":1}"#));
        f.extend(rec(r#"{"a":2}"#));
        let r = dec(f).unwrap().unwrap();
        assert_eq!(events(&r), vec![(t, r#"{"a":2}"#.to_string())]);
    }

    #[test]
    fn forward_and_packed_modes() {
        let t = EventTime::new(1_600_000_000, 7);
        let mut entries = Vec::new();
        for i in 0..3 {
            entries.push(0x92);
            entries.extend(ext(t));
            entries.extend(rec(&format!(r#"{{"i":{i}}}"#)));
        }
        // Forward
        let mut f = vec![0x92];
        msgpack::write_str(&mut f, b"fw");
        f.push(0x93);
        f.extend(&entries);
        let r = dec(f).unwrap().unwrap();
        assert_eq!((r.mode, r.events.len()), (Mode::Forward, 3));
        // PackedForward as bin and as str32, passed through untouched.
        for as_str in [false, true] {
            let mut f = vec![0x93];
            msgpack::write_str(&mut f, b"pf");
            if as_str {
                f.push(0xdb);
                f.extend((entries.len() as u32).to_be_bytes());
                f.extend(&entries);
            } else {
                msgpack::write_bin_header(&mut f, entries.len());
                f.extend(&entries);
            }
            f.extend([0x81, 0xa4]);
            f.extend(b"size");
            f.push(3);
            let r = dec(f).unwrap().unwrap();
            assert_eq!((r.mode, r.events.len(), r.passthrough), (Mode::PackedForward, 3, true));
            assert_eq!(r.events.as_bytes(), &entries[..]);
            assert_eq!(r.options.size, Some(3));
        }
        // Compressed, two gzip members.
        use std::io::Write;
        let mut z = Vec::new();
        for part in [&entries[..entries.len() / 2], &entries[entries.len() / 2..]] {
            let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            g.write_all(part).unwrap();
            z.extend(g.finish().unwrap());
        }
        let mut f = vec![0x93];
        msgpack::write_str(&mut f, b"cpf");
        msgpack::write_bin_header(&mut f, z.len());
        f.extend(&z);
        f.push(0x81);
        msgpack::write_str(&mut f, b"compressed");
        msgpack::write_str(&mut f, b"gzip");
        let r = dec(f).unwrap().unwrap();
        assert_eq!((r.mode, r.events.as_bytes()), (Mode::CompressedPackedForward, &entries[..]));
    }

    #[test]
    fn normalisation_and_invalid_entries() {
        let mut entries = Vec::new();
        // zero time → now
        entries.push(0x92);
        entries.push(0x00);
        entries.extend(rec(r#"{"i":0}"#));
        // record not a map → skipped
        entries.push(0x92);
        entries.push(0x01);
        msgpack::write_str(&mut entries, b"x");
        // metadata time
        entries.push(0x92);
        entries.push(0x92);
        entries.extend(ext(EventTime::new(5, 6)));
        entries.extend(rec("{}"));
        entries.extend(rec(r#"{"i":2}"#));
        let mut f = vec![0x92];
        msgpack::write_str(&mut f, b"t");
        msgpack::write_bin_header(&mut f, entries.len());
        f.extend(&entries);
        let r = dec(f.clone()).unwrap().unwrap();
        assert_eq!(r.skipped, 1);
        assert!(!r.passthrough);
        assert_eq!(events(&r), vec![(NOW, r#"{"i":0}"#.into()), (EventTime::new(5, 6), r#"{"i":2}"#.into())]);
        let strict = Limits { skip_invalid_event: false, ..Limits::default() };
        assert!(matches!(decode(&Bytes::from(f), &strict, NOW), Err(DecodeError::Event { index: 1, .. })));
        assert_eq!(dec(vec![0xc0]).unwrap().map(|r| r.tag), None);
        assert!(dec(vec![0x91, 0xa1, b'x']).is_err());
        assert!(dec(vec![0xa1, b'x']).is_err());
    }

    #[test]
    fn decompression_is_bounded() {
        use std::io::Write;
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        g.write_all(&vec![0xc0; 10_000]).unwrap();
        let z = g.finish().unwrap();
        let mut f = vec![0x93];
        msgpack::write_str(&mut f, b"t");
        msgpack::write_bin_header(&mut f, z.len());
        f.extend(&z);
        f.push(0x81);
        msgpack::write_str(&mut f, b"compressed");
        msgpack::write_str(&mut f, b"gzip");
        let small = Limits { decompression: 1000, ..Limits::default() };
        assert_eq!(decode(&Bytes::from(f), &small, NOW).unwrap_err(), DecodeError::TooLarge(1000));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode(&Bytes::from(data), &Limits::default(), NOW);
        }

        #[test]
        fn never_panics_on_shaped_input(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..120), n in 2u8..5, kind in 0u8..4) {
            let mut f = vec![0x90 | n, 0xa1, b't'];
            match kind {
                0 => f.push(0x93),
                1 => { f.push(0xc4); f.push(tail.len() as u8); }
                2 => f.extend([0xd7, 0]),
                _ => f.push(0x92),
            }
            f.extend(&tail);
            let _ = decode(&Bytes::from(f), &Limits::default(), NOW);
        }
    }
}
