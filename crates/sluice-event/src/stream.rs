//! Event streams: batches of events that share a tag.
//!
//! An [`EventStream`] is one contiguous buffer of msgpack `[time, record]`
//! entries, exactly the "entries" part of a Forward-protocol PackedForward
//! message and of a buffer chunk. Streams are cheap to clone (reference
//! counted), are validated once when they are built from foreign bytes, and
//! can be iterated without allocating: each [`EventRef`] borrows its record.
//!
//! ```text
//! EventStream.data := Entry*
//! Entry            := fixarray(2) time record
//! time             := EventTime ext 0 | integer seconds
//! record           := map
//! ```

use crate::msgpack::{self, Error};
use crate::record::RecordRef;
use crate::time::EventTime;
use bytes::Bytes;

/// A validated batch of `[time, record]` msgpack entries.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EventStream {
    data: Bytes,
    len: usize,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("len", &self.len).field("bytes", &self.data.len()).finish()
    }
}

/// Why foreign bytes are not a valid event stream.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The msgpack framing is broken.
    #[error("entry {index}: {source}")]
    Msgpack {
        /// Index of the offending entry.
        index: usize,
        /// What went wrong.
        source: Error,
    },
    /// An entry is not a `[time, record]` pair.
    #[error("entry {index}: {what}")]
    Shape {
        /// Index of the offending entry.
        index: usize,
        /// What went wrong.
        what: &'static str,
    },
}

impl StreamError {
    /// Index of the entry that failed.
    pub fn index(&self) -> usize {
        match self {
            StreamError::Msgpack { index, .. } | StreamError::Shape { index, .. } => *index,
        }
    }
}

/// One event, borrowed from a stream.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// The event time.
    pub time: EventTime,
    /// The whole `[time, record]` entry as it is stored.
    pub entry: &'a [u8],
    /// The record map.
    pub record: RecordRef<'a>,
}

/// Parse one entry at `buf[at]`, returning the event and the offset past it.
fn parse_entry(buf: &[u8], at: usize, index: usize) -> Result<(EventRef<'_>, usize), StreamError> {
    let me = |source| StreamError::Msgpack { index, source };
    let (n, p) = msgpack::read_array_len(buf, at).map_err(me)?;
    if n != 2 {
        return Err(StreamError::Shape { index, what: "entry is not a [time, record] pair" });
    }
    let (time, p) = EventTime::read(buf, p).map_err(me)?;
    if msgpack::header(buf, p).map_err(me)?.kind != msgpack::Kind::Map {
        return Err(StreamError::Shape { index, what: "record is not a map" });
    }
    let end = msgpack::skip(buf, p).map_err(me)?;
    Ok((EventRef { time, entry: &buf[at..end], record: RecordRef::new_unchecked(&buf[p..end]) }, end))
}

impl EventStream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate `data` as concatenated `[time, record]` entries and wrap it
    /// without copying.
    ///
    /// # Errors
    /// [`StreamError`] naming the first bad entry.
    pub fn from_bytes(data: Bytes) -> Result<Self, StreamError> {
        let mut at = 0;
        let mut len = 0;
        while at < data.len() {
            let (_, end) = parse_entry(&data, at, len)?;
            at = end;
            len += 1;
        }
        Ok(EventStream { data, len })
    }

    /// Wrap bytes the caller has already walked as `count` well-formed
    /// `[time, record]` entries (a decoder that validated them itself).
    /// Iteration stays bounds-checked: bytes that are not what the caller
    /// claims make iteration stop early, never read out of bounds.
    pub fn from_validated(data: Bytes, count: usize) -> Self {
        EventStream { data, len: count }
    }

    /// A stream of one event.
    pub fn single(time: EventTime, record: &[u8]) -> Self {
        let mut b = EventStreamBuilder::with_capacity(record.len() + 12);
        b.push_raw(time, record);
        b.finish()
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the stream has no events.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries as stored (PackedForward "entries" bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The shared buffer.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Iterate the events.
    pub fn iter(&self) -> Iter<'_> {
        Iter { buf: &self.data, at: 0, index: 0 }
    }
}

impl<'a> IntoIterator for &'a EventStream {
    type Item = EventRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the events of a stream.
pub struct Iter<'a> {
    buf: &'a [u8],
    at: usize,
    index: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = EventRef<'a>;
    fn next(&mut self) -> Option<EventRef<'a>> {
        if self.at >= self.buf.len() {
            return None;
        }
        // Streams are validated on construction, so this cannot fail; if it
        // ever did, stopping is safer than panicking.
        match parse_entry(self.buf, self.at, self.index) {
            Ok((ev, end)) => {
                self.at = end;
                self.index += 1;
                Some(ev)
            }
            Err(_) => {
                debug_assert!(false, "invalid entry in a validated stream");
                None
            }
        }
    }
}

/// Builds a stream entry by entry into one buffer.
#[derive(Default)]
pub struct EventStreamBuilder {
    buf: Vec<u8>,
    len: usize,
}

impl EventStreamBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        EventStreamBuilder { buf: Vec::with_capacity(bytes), len: 0 }
    }

    /// Append an event whose record is already msgpack map bytes. The time is
    /// written as an EventTime ext.
    ///
    /// The caller guarantees `record` is exactly one msgpack map (it comes
    /// from another stream or from one of our encoders); debug builds check it.
    pub fn push_raw(&mut self, time: EventTime, record: &[u8]) {
        debug_assert!(RecordRef::new(record).is_ok());
        self.buf.push(0x92);
        time.write_ext(&mut self.buf);
        self.buf.extend_from_slice(record);
        self.len += 1;
    }

    /// Append entry bytes the caller validated as one `[time, record]`.
    pub fn push_entry_bytes(&mut self, entry: &[u8]) {
        self.buf.extend_from_slice(entry);
        self.len += 1;
    }

    /// Append an entry taken verbatim from another stream.
    pub fn push_entry(&mut self, ev: &EventRef<'_>) {
        self.buf.extend_from_slice(ev.entry);
        self.len += 1;
    }

    /// Append an event whose record is written by `write` (which must write
    /// exactly one msgpack map). If `write` fails, nothing is appended.
    ///
    /// # Errors
    /// Whatever `write` returns.
    pub fn push_with<E>(
        &mut self,
        time: EventTime,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mark = self.buf.len();
        self.buf.push(0x92);
        time.write_ext(&mut self.buf);
        match write(&mut self.buf) {
            Ok(()) => {
                debug_assert!(RecordRef::new(&self.buf[mark + 11..]).is_ok());
                self.len += 1;
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(mark);
                Err(e)
            }
        }
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Finish into an immutable stream.
    pub fn finish(self) -> EventStream {
        EventStream { data: Bytes::from(self.buf), len: self.len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn build_iterate_and_revalidate() {
        let mut b = EventStreamBuilder::new();
        let mut r = Record::new();
        r.insert("message", "hello");
        b.push_raw(EventTime::new(10, 5), &r.to_msgpack());
        r.insert("n", 3);
        b.push_raw(EventTime::new(11, 0), &r.to_msgpack());
        let es = b.finish();
        assert_eq!(es.len(), 2);
        let times: Vec<_> = es.iter().map(|e| e.time).collect();
        assert_eq!(times, [EventTime::new(10, 5), EventTime::new(11, 0)]);
        let again = EventStream::from_bytes(es.bytes().clone()).unwrap();
        assert_eq!(again, es);
        assert_eq!(es.iter().nth(1).unwrap().record.get_str("message"), Some(&b"hello"[..]));
    }

    #[test]
    fn rejects_bad_entries_with_index() {
        let mut b = EventStreamBuilder::new();
        b.push_raw(EventTime::new(1, 0), &[0x80]);
        let mut data = b.finish().as_bytes().to_vec();
        // second entry: [1, "x"] — record is not a map
        data.extend_from_slice(&[0x92, 0x01, 0xa1, b'x']);
        let err = EventStream::from_bytes(Bytes::from(data)).unwrap_err();
        assert_eq!(err.index(), 1);
        assert!(EventStream::from_bytes(Bytes::from_static(&[0x93, 1, 0x80, 0xc0])).is_err());
        assert!(EventStream::from_bytes(Bytes::from_static(&[0x92, 1])).is_err());
    }

    #[test]
    fn push_with_rolls_back_on_error() {
        let mut b = EventStreamBuilder::new();
        let r: Result<(), ()> = b.push_with(EventTime::new(1, 0), |out| {
            out.push(0x81);
            Err(())
        });
        assert!(r.is_err());
        assert!(b.is_empty());
        assert_eq!(b.byte_len(), 0);
    }
}
