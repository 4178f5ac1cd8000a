//! Chunk keys, the metadata they give each event, and placeholders that
//! output parameters fill from a chunk's metadata.
//!
//! `<buffer tag,time,host,$.kubernetes.pod>` puts events with equal tag,
//! timekey, `host` and pod name into the same chunk. An output parameter may
//! then use `${tag}`, `${tag[1]}`, `${host}`, `${$.kubernetes.pod}`,
//! `${chunk_id}` and strftime `%Y%m%d…` (the timekey) — and only those whose
//! key is a chunk key, which is checked at configure time.

use crate::plugin::record_accessor::{Accessor, decode_value};
use sluice_event::strftime::{Strftime, Zone};
use sluice_event::{EventRef, EventTime, rubyfmt};

/// The chunk key values of a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Metadata {
    /// Start of the timekey, with a `time` chunk key.
    pub timekey: Option<i64>,
    /// The tag, with a `tag` chunk key.
    pub tag: Option<String>,
    /// Record chunk keys (as written) and their values.
    pub vars: Vec<(String, String)>,
}

/// How timekeys are cut.
#[derive(Debug, Clone)]
pub struct Timekey {
    /// Width in seconds.
    pub size: i64,
    /// Zone the boundaries are aligned to (midnight of that zone for daily keys).
    pub zone: Zone,
}

impl Timekey {
    /// Start of the timekey containing `t`.
    pub fn of(&self, t: EventTime) -> i64 {
        let s = t.sec;
        let offset = i64::from(self.zone.offset_at(s));
        s - (s + offset).rem_euclid(self.size)
    }
}

/// Parsed chunk keys.
#[derive(Debug, Clone, Default)]
pub struct ChunkKeys {
    /// `tag` is a key.
    pub tag: bool,
    /// `time` is a key.
    pub time: Option<Timekey>,
    /// Record keys: as written, and how to read them.
    pub vars: Vec<(String, Accessor)>,
}

impl ChunkKeys {
    /// Parse the `<buffer>` argument.
    ///
    /// # Errors
    /// A message for an invalid record accessor or a `time` key without timekey.
    pub fn parse(keys: &[String], timekey: Option<Timekey>) -> Result<ChunkKeys, String> {
        let mut out = ChunkKeys::default();
        for k in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
            match k {
                "tag" => out.tag = true,
                "time" => {
                    out.time = Some(timekey.clone().ok_or("'time' chunk key needs timekey")?);
                }
                _ => {
                    if out.vars.iter().any(|(n, _)| n == k) {
                        continue;
                    }
                    out.vars.push((k.to_string(), Accessor::parse(k)?));
                }
            }
        }
        Ok(out)
    }

    /// True if every event of a stream has the same metadata (no time or record keys).
    pub fn per_stream(&self) -> bool {
        self.time.is_none() && self.vars.is_empty()
    }

    /// The metadata of one event.
    pub fn metadata(&self, tag: &str, ev: &EventRef<'_>) -> Metadata {
        Metadata {
            timekey: self.time.as_ref().map(|t| t.of(ev.time)),
            tag: self.tag.then(|| tag.to_string()),
            vars: self
                .vars
                .iter()
                .map(|(name, acc)| {
                    let v = acc.get_raw(ev.record).map(|raw| match sluice_event::msgpack::read_str(raw, 0) {
                        Ok((s, _)) => String::from_utf8_lossy(s).into_owned(),
                        Err(_) => rubyfmt::to_s(&decode_value(raw)),
                    });
                    (name.clone(), v.unwrap_or_default())
                })
                .collect(),
        }
    }

    /// The metadata shared by a whole stream when [`ChunkKeys::per_stream`].
    pub fn stream_metadata(&self, tag: &str) -> Metadata {
        Metadata { timekey: None, tag: self.tag.then(|| tag.to_string()), vars: Vec::new() }
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Tag,
    TagPart(i64),
    Var(String),
    ChunkId,
}

/// A parameter value with `${…}` placeholders and (with a time key) strftime.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Has the `time` chunk key (strftime directives are filled from the timekey).
    time: bool,
    source: String,
}

impl Template {
    /// Compile `s` for the given chunk keys, checking that each placeholder
    /// has its chunk key. `name` is the parameter, for messages.
    ///
    /// # Errors
    /// Fluentd's message naming the parameter and the missing chunk key.
    pub fn new(name: &str, s: &str, keys: &ChunkKeys) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        let mut lit = String::new();
        while let Some(i) = rest.find("${") {
            let Some(end) = rest[i + 2..].find('}') else { break };
            lit.push_str(&rest[..i]);
            let inner = rest[i + 2..i + 2 + end].trim();
            rest = &rest[i + 2 + end + 1..];
            let piece = if inner == "tag" {
                Piece::Tag
            } else if let Some(n) = inner.strip_prefix("tag[").and_then(|r| r.strip_suffix(']')) {
                Piece::TagPart(
                    n.trim()
                        .parse()
                        .map_err(|_| format!("Parameter '{name}: {s}' has an invalid tag placeholder ${{{inner}}}"))?,
                )
            } else if inner == "chunk_id" {
                Piece::ChunkId
            } else {
                Piece::Var(inner.to_string())
            };
            match &piece {
                Piece::Tag | Piece::TagPart(_) if !keys.tag => {
                    return Err(format!(
                        "Parameter '{name}: {s}' has tag placeholders, but chunk key 'tag' is not configured"
                    ));
                }
                Piece::Var(v) if !keys.vars.iter().any(|(k, _)| k == v) => {
                    return Err(format!(
                        "Parameter '{name}: {s}' doesn't have enough placeholders for keys; chunk key '{v}' is not configured"
                    ));
                }
                _ => {}
            }
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        if keys.time.is_none() && has_strftime(s) {
            return Err(format!(
                "Parameter '{name}: {s}' has timestamp placeholders, but chunk key 'time' is not configured"
            ));
        }
        let time = keys.time.is_some();
        Ok(Template { pieces, time, source: s.to_string() })
    }

    /// The value as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if there is nothing to fill in.
    pub fn is_constant(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Lit(_))) && !has_strftime(&self.source)
    }

    /// Fill in for a chunk; `zone` is the buffer's timekey zone.
    pub fn render(&self, meta: &Metadata, chunk_id: &[u8; 16], zone: Option<&Zone>) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => out.push_str(l),
                Piece::Tag => out.push_str(meta.tag.as_deref().unwrap_or("")),
                Piece::TagPart(i) => {
                    let parts: Vec<&str> = meta.tag.as_deref().unwrap_or("").split('.').collect();
                    let n = parts.len() as i64;
                    let idx = if *i < 0 { n + i } else { *i };
                    if (0..n).contains(&idx) {
                        out.push_str(parts[idx as usize]);
                    }
                }
                Piece::Var(v) => out.push_str(meta.vars.iter().find(|(k, _)| k == v).map_or("", |(_, x)| x.as_str())),
                Piece::ChunkId => out.push_str(&hex(chunk_id)),
            }
        }
        match (self.time, meta.timekey) {
            (true, Some(tk)) if has_strftime(&out) => {
                let zone = zone.cloned().unwrap_or(Zone::Utc);
                Strftime::new(&out).format_string(&zone.tm(EventTime::new(tk, 0)), &zone)
            }
            _ => out,
        }
    }
}

/// True if `s` contains a strftime directive (`%` followed by a letter).
pub fn has_strftime(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(2).any(|w| w[0] == b'%' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'-' | b'_' | b':' | b'^')))
}

/// Lower-case hex of an id.
pub fn hex(id: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(id.len() * 2);
    for b in id {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::{EventStreamBuilder, json};

    #[test]
    fn timekeys_align_to_the_zone() {
        let utc = Timekey { size: 86_400, zone: Zone::Utc };
        let jst = Timekey { size: 86_400, zone: Zone::Fixed(9 * 3600) };
        let t = EventTime::new(1_795_341_600, 0); // 2026-11-22 10:00 UTC = 19:00 JST
        assert_eq!(utc.of(t), 1_795_305_600); // 2026-11-22 00:00 UTC
        assert_eq!(jst.of(t), 1_795_305_600 - 9 * 3600); // 2026-11-22 00:00 JST
        assert_eq!(Timekey { size: 60, zone: Zone::Utc }.of(EventTime::new(125, 9)), 120);
    }

    #[test]
    fn metadata_and_templates() {
        let keys = ChunkKeys::parse(
            &["tag".into(), "time".into(), "host".into(), "$.k8s.pod".into()],
            Some(Timekey { size: 3600, zone: Zone::Utc }),
        )
        .unwrap();
        let mut raw = Vec::new();
        json::json_object_to_msgpack(br#"{"host":"web1","k8s":{"pod":"p-1"}}"#, &mut raw).unwrap();
        let mut b = EventStreamBuilder::new();
        b.push_raw(EventTime::new(1_795_341_600 + 1800, 0), &raw);
        let es = b.finish();
        let ev = es.iter().next().unwrap();
        let m = keys.metadata("app.web.access", &ev);
        assert_eq!(m.timekey, Some(1_795_341_600));
        assert_eq!(m.vars, vec![("host".into(), "web1".into()), ("$.k8s.pod".into(), "p-1".into())]);
        let t =
            Template::new("path", "/logs/${tag[-1]}/${host}/${$.k8s.pod}/%Y%m%d%H/${tag}.${chunk_id}", &keys).unwrap();
        assert_eq!(
            t.render(&m, &[0xab; 16], Some(&Zone::Utc)),
            format!("/logs/access/web1/p-1/2026112210/app.web.access.{}", "ab".repeat(16))
        );
        let tag_only = ChunkKeys::parse(&["tag".into()], None).unwrap();
        assert!(Template::new("path", "/x/%Y", &tag_only).unwrap_err().contains("chunk key 'time' is not configured"));
        assert!(
            Template::new("path", "/x/${host}", &tag_only).unwrap_err().contains("chunk key 'host' is not configured")
        );
        assert!(
            Template::new("path", "/x/${tag}", &ChunkKeys::default())
                .unwrap_err()
                .contains("chunk key 'tag' is not configured")
        );
        assert!(Template::new("path", "/x/y", &ChunkKeys::default()).unwrap().is_constant());
    }
}
