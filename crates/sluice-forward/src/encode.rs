//! What sluice sends: requests in Fluentd out_forward's shape, acks and
//! heartbeats.

use sluice_event::msgpack;
use std::io::Write;

/// Compression of a PackedForward request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// Entries as they are (`"compressed": "text"`, as Fluentd sends it).
    Text,
    /// One gzip member.
    Gzip,
    /// zstd (Fluentd ≥ 1.19).
    Zstd,
}

impl Compress {
    /// The option value.
    pub fn name(self) -> &'static str {
        match self {
            Compress::Text => "text",
            Compress::Gzip => "gzip",
            Compress::Zstd => "zstd",
        }
    }
}

/// A PackedForward request as Fluentd's out_forward writes it:
/// `[tag, entries as str32, {"size": n, "compressed": c, "chunk": id?}]`.
///
/// `chunk` is the ack id (Fluentd sends `Base64.encode64(unique_id)`, with
/// its trailing newline). With compression the entries are compressed first.
///
/// # Errors
/// Compression failures (only on allocation failure in practice).
pub fn packed_forward(
    tag: &str,
    entries: &[u8],
    size: usize,
    compress: Compress,
    chunk: Option<&str>,
) -> std::io::Result<Vec<u8>> {
    let body: std::borrow::Cow<'_, [u8]> = match compress {
        Compress::Text => entries.into(),
        Compress::Gzip => {
            let mut g =
                flate2::write::GzEncoder::new(Vec::with_capacity(entries.len() / 4), flate2::Compression::default());
            g.write_all(entries)?;
            g.finish()?.into()
        }
        Compress::Zstd => zstd::bulk::compress(entries, 3)?.into(),
    };
    let mut out = Vec::with_capacity(body.len() + tag.len() + 64);
    out.push(0x93);
    msgpack::write_str(&mut out, tag.as_bytes());
    // str32 always, as Fluentd does ("for backward compatibility").
    out.push(0xdb);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    msgpack::write_map_header(&mut out, if chunk.is_some() { 3 } else { 2 });
    msgpack::write_str(&mut out, b"size");
    msgpack::write_uint(&mut out, size as u64);
    msgpack::write_str(&mut out, b"compressed");
    msgpack::write_str(&mut out, compress.name().as_bytes());
    if let Some(c) = chunk {
        msgpack::write_str(&mut out, b"chunk");
        msgpack::write_str(&mut out, c.as_bytes());
    }
    Ok(out)
}

/// A Message-mode request `[tag, time, record]` (what fluent-logger sends).
pub fn message(tag: &str, time: sluice_event::EventTime, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + tag.len() + 16);
    out.push(0x93);
    msgpack::write_str(&mut out, tag.as_bytes());
    time.write_ext(&mut out);
    out.extend_from_slice(record);
    out
}

/// The ack reply `{"ack": <chunk>}`, echoing the chunk value's bytes.
pub fn ack(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 6);
    out.push(0x81);
    msgpack::write_str(&mut out, b"ack");
    out.extend_from_slice(chunk);
    out
}

/// The ack reply for a JSON connection: `{"ack":"<chunk>"}`.
pub fn ack_json(chunk: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 12);
    out.extend_from_slice(b"{\"ack\":");
    out.extend_from_slice(serde_json::Value::from(chunk).to_string().as_bytes());
    out.push(b'}');
    out
}

/// The UDP heartbeat payload (both directions).
pub const HEARTBEAT_UDP: &[u8] = b"\0";

/// Ruby's `Base64.encode64`: standard alphabet, padded, a newline every 60
/// characters and at the end (how Fluentd writes chunk ids).
pub fn base64_encode64(data: &[u8]) -> String {
    use base64::Engine;
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(s.len() + s.len() / 60 + 1);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Limits, Mode, decode};
    use sluice_event::{EventStreamBuilder, EventTime};

    #[test]
    fn packed_forward_round_trips_in_every_compression() {
        let mut b = EventStreamBuilder::new();
        let mut rec = Vec::new();
        sluice_event::json::json_object_to_msgpack(br#"{"message":"hi"}"#, &mut rec).unwrap();
        for _ in 0..5 {
            b.push_raw(EventTime::new(1_700_000_000, 1), &rec);
        }
        let es = b.finish();
        for c in [Compress::Text, Compress::Gzip, Compress::Zstd] {
            let frame = packed_forward("app.x", es.as_bytes(), 5, c, Some("p8n9gmxTQVC8/nh2wlKKeQ==\n")).unwrap();
            let r = decode(&bytes::Bytes::from(frame), &Limits::default(), EventTime::new(1, 0)).unwrap().unwrap();
            assert_eq!(r.tag, "app.x");
            assert_eq!(r.events.as_bytes(), es.as_bytes());
            assert_eq!(r.mode, if c == Compress::Text { Mode::PackedForward } else { Mode::CompressedPackedForward });
            assert_eq!(r.options.size, Some(5));
            let chunk = r.options.chunk.unwrap();
            assert_eq!(ack(&chunk), b"\x81\xa3ack\xb9p8n9gmxTQVC8/nh2wlKKeQ==\n");
        }
    }

    #[test]
    fn fluentd_bytes() {
        // [tag, str32 entries, {size, compressed}] exactly.
        let f = packed_forward("t", b"\x92\x01\x80", 1, Compress::Text, None).unwrap();
        assert_eq!(f, b"\x93\xa1t\xdb\x00\x00\x00\x03\x92\x01\x80\x82\xa4size\x01\xaacompressed\xa4text");
        assert_eq!(
            base64_encode64(&[
                0xa7, 0xc9, 0xfd, 0x82, 0x6c, 0x53, 0x41, 0x50, 0xbc, 0xfe, 0x78, 0x76, 0xc2, 0x52, 0x8a, 0x79
            ]),
            "p8n9gmxTQVC8/nh2wlKKeQ==\n"
        );
        assert_eq!(ack_json("a\n"), b"{\"ack\":\"a\\n\"}");
    }
}
