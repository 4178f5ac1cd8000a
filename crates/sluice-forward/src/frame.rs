//! Splitting a connection's bytes into top-level msgpack values.
//!
//! The scan is resumable: when a value is incomplete, the framer remembers
//! how far it got (offset and count of values still to read), so a large
//! message arriving in many reads is walked once, not once per read. The
//! buffer never grows past the frame limit: a peer announcing or sending a
//! larger value gets [`FrameError::TooLarge`] before more is buffered.

use bytes::{Buf, Bytes, BytesMut};
use sluice_event::msgpack::{self, Kind};

/// Why a connection's stream cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A value is larger than the limit.
    #[error("a message of at least {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes known to belong to the message.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// Bytes that are not msgpack.
    #[error("malformed msgpack at offset {0}")]
    Malformed(usize),
}

/// Frames top-level msgpack values.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    limit: usize,
    /// Resume point of the scan of the value at the buffer's start.
    at: usize,
    left: u64,
}

impl Framer {
    /// A framer refusing values larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Framer { buf: BytesMut::with_capacity(64 * 1024), limit, at: 0, left: 1 }
    }

    /// Bytes buffered and not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The buffer to read into (append at its end).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Append bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The first bytes buffered (to sniff JSON vs msgpack).
    pub fn peek(&self) -> &[u8] {
        &self.buf
    }

    /// The next complete value, `None` if more bytes are needed.
    ///
    /// # Errors
    /// [`FrameError`]: the connection cannot go on.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if self.left == 0 {
                let end = self.at;
                self.at = 0;
                self.left = 1;
                return Ok(Some(self.buf.split_to(end).freeze()));
            }
            let b = &self.buf[..];
            let h = match msgpack::header(b, self.at) {
                Ok(h) => h,
                Err(msgpack::Error::Truncated) => return self.need_more(self.at + 9),
                Err(_) => return Err(FrameError::Malformed(self.at)),
            };
            match h.kind {
                Kind::Array | Kind::Map => {
                    let n = if h.kind == Kind::Map { (h.len as u64) * 2 } else { h.len as u64 };
                    // Each value takes at least one byte.
                    let min = self.at as u64 + h.header_len as u64 + n;
                    if min > self.limit as u64 {
                        return Err(FrameError::TooLarge { size: min, limit: self.limit });
                    }
                    self.at += h.header_len;
                    self.left = self.left - 1 + n;
                }
                _ => {
                    let end = self.at as u64 + h.header_len as u64 + h.len as u64;
                    if end > self.limit as u64 {
                        return Err(FrameError::TooLarge { size: end, limit: self.limit });
                    }
                    if end > b.len() as u64 {
                        return self.need_more(end as usize);
                    }
                    self.at = end as usize;
                    self.left -= 1;
                }
            }
        }
    }

    fn need_more(&mut self, min: usize) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() > self.limit || min > self.limit {
            return Err(FrameError::TooLarge { size: self.buf.len().max(min) as u64, limit: self.limit });
        }
        Ok(None)
    }

    /// Drop `n` bytes from the front (after a JSON value was taken).
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n.min(self.buf.len()));
        self.at = 0;
        self.left = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<Vec<u8>> {
        let mut a = Vec::new();
        msgpack::write_array_header(&mut a, 3);
        msgpack::write_str(&mut a, b"tag");
        msgpack::write_array_header(&mut a, 2);
        msgpack::write_uint(&mut a, 1);
        msgpack::write_map_header(&mut a, 1);
        msgpack::write_str(&mut a, b"k");
        msgpack::write_str(&mut a, &[b'v'; 300]);
        msgpack::write_map_header(&mut a, 0);
        vec![a, vec![0xc0], vec![0x92, 0x01, 0x02]]
    }

    #[test]
    fn frames_in_any_chunking() {
        let all: Vec<u8> = values().concat();
        for step in [1, 2, 3, 7, 64, 1000] {
            let mut f = Framer::new(1 << 20);
            let mut got = Vec::new();
            for c in all.chunks(step) {
                f.extend(c);
                while let Some(v) = f.next_frame().unwrap() {
                    got.push(v.to_vec());
                }
            }
            assert_eq!(got, values(), "step {step}");
            assert_eq!(f.pending(), 0);
        }
    }

    #[test]
    fn limits_and_garbage() {
        let mut f = Framer::new(100);
        f.extend(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(f.next_frame(), Err(FrameError::TooLarge { .. })));
        let mut f = Framer::new(100);
        f.extend(&[0xdd, 0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(f.next_frame(), Err(FrameError::TooLarge { .. })));
        let mut f = Framer::new(100);
        f.extend(&[0xc1]);
        assert_eq!(f.next_frame(), Err(FrameError::Malformed(0)));
        let mut f = Framer::new(10);
        f.extend(&[0x9f; 11]);
        assert!(f.next_frame().is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256), step in 1usize..40) {
            let mut f = Framer::new(128);
            for c in data.chunks(step) {
                f.extend(c);
                while let Ok(Some(_)) = f.next_frame() {}
            }
        }
    }
}
