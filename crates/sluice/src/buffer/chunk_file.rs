//! The on-disk format of file buffer chunks (sans-IO: bytes in, bytes out).
//!
//! A chunk file is a sequence of blocks. The first block describes the chunk;
//! every later block is one append (the events of one emit), so an append is
//! atomic: after a crash, a block is either whole and checksummed or it is the
//! torn tail, which recovery cuts off.
//!
//! ```text
//! ChunkFile := Block(kind = META) Block(kind = RECORDS)*
//!
//! Block {
//!     magic:   [u8; 2] = [0xF1, 0xB0],
//!     kind:    u8,        // 1 = META, 2 = RECORDS
//!     flags:   u8,        // RECORDS: 0 = plain, 1 = gzip member, 2 = zstd frame
//!     records: u32 LE,    // events in the payload (0 for META)
//!     len:     u32 LE,    // payload bytes, at most MAX_BLOCK
//!     crc:     u32 LE,    // CRC-32 (IEEE) of kind, flags, records, len and payload
//!     payload: [u8; len],
//! }
//!
//! META payload := msgpack map {
//!     "v": 1, "id": bin(16), "tag": str | nil, "timekey": int | nil,
//!     "vars": {str: str}, "created": float (unix seconds), "format": str,
//! }
//! ```
//!
//! File names follow Fluentd's: `buffer.b<id>.log` while staged,
//! `buffer.q<id>.log` once queued for flushing (a rename).

use sluice_event::msgpack;

/// Block marker.
pub const MAGIC: [u8; 2] = [0xF1, 0xB0];
/// Bytes before a block's payload.
pub const HEADER_LEN: usize = 16;
/// Largest payload accepted when reading (a corrupt length cannot make us allocate more).
pub const MAX_BLOCK: usize = 1 << 30;

/// Block kinds.
pub const KIND_META: u8 = 1;
/// Block kinds.
pub const KIND_RECORDS: u8 = 2;

/// Payload compression flags.
pub const FLAG_GZIP: u8 = 1;
/// Payload compression flags.
pub const FLAG_ZSTD: u8 = 2;

/// Append one block to `out`.
pub fn encode_block(kind: u8, flags: u8, records: u32, payload: &[u8], out: &mut Vec<u8>) {
    encode_header(kind, flags, records, payload, out);
    out.extend_from_slice(payload);
}

/// Append the header of the block that carries `payload`.
pub fn encode_header(kind: u8, flags: u8, records: u32, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind, flags]);
    h.update(&records.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&MAGIC);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&records.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
}

/// A chunk's description (the META block).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// 128-bit chunk id.
    pub id: [u8; 16],
    /// The `tag` chunk key's value.
    pub tag: Option<String>,
    /// The `time` chunk key's value (start of the timekey).
    pub timekey: Option<i64>,
    /// Record chunk keys and their values.
    pub vars: Vec<(String, String)>,
    /// When the chunk was created (unix seconds).
    pub created: f64,
    /// How events are stored: `msgpack` entries, or the output's format name.
    pub format: String,
}

impl Meta {
    /// The META payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(96);
        msgpack::write_map_header(&mut o, 7);
        msgpack::write_str(&mut o, b"v");
        msgpack::write_uint(&mut o, 1);
        msgpack::write_str(&mut o, b"id");
        msgpack::write_bin_header(&mut o, 16);
        o.extend_from_slice(&self.id);
        msgpack::write_str(&mut o, b"tag");
        match &self.tag {
            Some(t) => msgpack::write_str(&mut o, t.as_bytes()),
            None => msgpack::write_nil(&mut o),
        }
        msgpack::write_str(&mut o, b"timekey");
        match self.timekey {
            Some(t) => msgpack::write_int(&mut o, t),
            None => msgpack::write_nil(&mut o),
        }
        msgpack::write_str(&mut o, b"vars");
        msgpack::write_map_header(&mut o, self.vars.len());
        for (k, v) in &self.vars {
            msgpack::write_str(&mut o, k.as_bytes());
            msgpack::write_str(&mut o, v.as_bytes());
        }
        msgpack::write_str(&mut o, b"created");
        msgpack::write_f64(&mut o, self.created);
        msgpack::write_str(&mut o, b"format");
        msgpack::write_str(&mut o, self.format.as_bytes());
        o
    }

    /// Parse a META payload.
    ///
    /// # Errors
    /// A message if a field is missing or mistyped.
    pub fn decode(p: &[u8]) -> Result<Meta, String> {
        let rec = sluice_event::RecordRef::new(p).map_err(|e| format!("meta: {e}"))?;
        let s = |k: &str| {
            rec.get(k).and_then(|v| msgpack::read_str(v, 0).ok()).map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        };
        let id_raw = rec.get("id").ok_or("meta: no id")?;
        let (id_bytes, _) = msgpack::read_str(id_raw, 0).map_err(|e| format!("meta id: {e}"))?;
        let id: [u8; 16] = id_bytes.try_into().map_err(|_| "meta: id is not 16 bytes".to_string())?;
        let timekey = match rec.get("timekey").map(|v| msgpack::read_scalar(v, 0)) {
            Some(Ok((msgpack::Scalar::Int(i), _))) => Some(i),
            Some(Ok((msgpack::Scalar::UInt(u), _))) => Some(u as i64),
            _ => None,
        };
        let created = match rec.get("created").map(|v| msgpack::read_scalar(v, 0)) {
            Some(Ok((msgpack::Scalar::F64(f), _))) => f,
            _ => return Err("meta: no created time".into()),
        };
        let mut vars = Vec::new();
        if let Some(v) = rec.get("vars") {
            let m = sluice_event::RecordRef::new(v).map_err(|e| format!("meta vars: {e}"))?;
            for pair in m.iter() {
                let k = pair.key_str().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                let v = msgpack::read_str(pair.value, 0)
                    .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                vars.push((k, v));
            }
        }
        Ok(Meta { id, tag: s("tag"), timekey, vars, created, format: s("format").unwrap_or_else(|| "msgpack".into()) })
    }
}

/// One RECORDS block found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    /// Events in it.
    pub records: u32,
    /// Compression flags.
    pub flags: u8,
    /// Where the payload is in the file.
    pub payload: std::ops::Range<usize>,
}

/// What reading a chunk file found.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The META block, if it is intact.
    pub meta: Option<Meta>,
    /// Intact RECORDS blocks, in order.
    pub blocks: Vec<BlockRef>,
    /// Bytes up to the end of the last intact block.
    pub valid_len: usize,
    /// Why reading stopped before the end of the file, if it did.
    pub damage: Option<String>,
}

impl Parsed {
    /// Total events in intact blocks.
    pub fn records(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.records)).sum()
    }
}

/// Read the block at `buf[at]`: `(kind, flags, records, payload range)`.
fn read_block(buf: &[u8], at: usize) -> Result<(u8, u8, u32, std::ops::Range<usize>), String> {
    let h = buf.get(at..at + HEADER_LEN).ok_or("truncated block header")?;
    if h[0..2] != MAGIC {
        return Err("bad block marker".into());
    }
    let (kind, flags) = (h[2], h[3]);
    let records = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if len > MAX_BLOCK {
        return Err(format!("block length {len} is over the limit"));
    }
    let start = at + HEADER_LEN;
    let payload = buf.get(start..start + len).ok_or("truncated block payload")?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h[2..12]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err("checksum mismatch".into());
    }
    Ok((kind, flags, records, start..start + len))
}

/// Parse a whole chunk file. Never fails: damage is reported in [`Parsed`].
pub fn parse(buf: &[u8]) -> Parsed {
    let mut out = Parsed { meta: None, blocks: Vec::new(), valid_len: 0, damage: None };
    let mut at = match read_block(buf, 0) {
        Ok((KIND_META, _, _, r)) => match Meta::decode(&buf[r.clone()]) {
            Ok(m) => {
                out.meta = Some(m);
                out.valid_len = r.end;
                r.end
            }
            Err(e) => {
                out.damage = Some(e);
                return out;
            }
        },
        Ok(_) => {
            out.damage = Some("the first block is not a META block".into());
            return out;
        }
        Err(e) => {
            out.damage = Some(format!("META block: {e}"));
            return out;
        }
    };
    while at < buf.len() {
        match read_block(buf, at) {
            Ok((KIND_RECORDS, flags, records, r)) => {
                at = r.end;
                out.blocks.push(BlockRef { records, flags, payload: r });
                out.valid_len = at;
            }
            Ok((kind, ..)) => {
                out.damage = Some(format!("unexpected block kind {kind} at offset {at}"));
                break;
            }
            Err(e) => {
                out.damage = Some(format!("{e} at offset {at}"));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            id: [7; 16],
            tag: Some("app.log".into()),
            timekey: Some(1_700_000_000),
            vars: vec![("host".into(), "a".into())],
            created: 1.5,
            format: "msgpack".into(),
        }
    }

    fn file(blocks: &[&[u8]]) -> Vec<u8> {
        let mut f = Vec::new();
        encode_block(KIND_META, 0, 0, &meta().encode(), &mut f);
        for (i, b) in blocks.iter().enumerate() {
            encode_block(KIND_RECORDS, 0, i as u32 + 1, b, &mut f);
        }
        f
    }

    #[test]
    fn round_trip() {
        let f = file(&[b"one", b"two!"]);
        let p = parse(&f);
        assert_eq!(p.meta, Some(meta()));
        assert_eq!(p.damage, None);
        assert_eq!(p.valid_len, f.len());
        assert_eq!(p.records(), 3);
        assert_eq!(&f[p.blocks[1].payload.clone()], b"two!");
    }

    #[test]
    fn torn_tail_is_cut_at_the_last_whole_block() {
        let f = file(&[b"one", b"two!"]);
        let whole_first = parse(&file(&[b"one"])).valid_len;
        for cut in whole_first..f.len() {
            let p = parse(&f[..cut]);
            assert_eq!(p.blocks.len(), 1, "cut at {cut}");
            assert_eq!(p.valid_len, whole_first);
            assert_eq!(p.damage.is_some(), cut > whole_first);
        }
    }

    #[test]
    fn corruption_is_detected() {
        let f = file(&[b"one", b"two!"]);
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            let p = parse(&g);
            // A flipped byte never yields a record block with wrong content.
            for b in &p.blocks {
                let content = &g[b.payload.clone()];
                assert!(content == b"one" || content == b"two!", "byte {i}");
            }
            // Every byte is covered by the marker or a checksum.
            assert!(p.damage.is_some(), "byte {i} undetected");
        }
        let empty = parse(&[]);
        assert!(empty.meta.is_none() && empty.damage.is_some());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse(&data);
        }
    }
}
