//! The `<inject>` section: add the tag, time, host name or worker id to
//! records before they are formatted.

use super::BuildCx;
use super::formatter::{TimeRender, resolve_zone};
use sluice_config::{Element, ParamEnum, Params};
use sluice_event::strftime::TimeFormatter;
use sluice_event::{EventTime, RecordRef, msgpack};
use std::borrow::Cow;

/// How `<inject>` writes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum InjectTimeType {
    /// Seconds as a float, truncated to microseconds.
    Float,
    /// Integer seconds.
    Unixtime,
    /// Integer milliseconds.
    UnixtimeMillis,
    /// Integer microseconds.
    UnixtimeMicros,
    /// Integer nanoseconds.
    UnixtimeNanos,
    /// A string in `time_format` (ISO 8601 without one).
    String,
}

/// Adds fields to each record.
#[derive(Debug, Clone, Params)]
pub struct InjectParams {
    /// Field for the host name.
    pub hostname_key: Option<String>,
    /// Host name to write (default: this machine's).
    pub hostname: Option<String>,
    /// Field for the worker id.
    pub worker_id_key: Option<String>,
    /// Field for the tag.
    pub tag_key: Option<String>,
    /// Field for the event time.
    pub time_key: Option<String>,
    /// How the time is written.
    #[param(default = "float")]
    pub time_type: InjectTimeType,
    /// Ruby strftime format for `time_type string`.
    pub time_format: Option<String>,
    /// Format the time in local time.
    #[param(default = "true")]
    pub localtime: bool,
    /// Format the time in UTC.
    #[param(default = "false")]
    pub utc: bool,
    /// Time zone for the time string (`+09:00`, `Asia/Tokyo`).
    pub timezone: Option<String>,
    /// Accepted for compatibility; not used when injecting.
    pub time_format_fallbacks: Option<Vec<String>>,
}

enum TimeValue {
    Float,
    Int(u32),
    Str(TimeRender),
}

/// A configured `<inject>`.
pub struct Inject {
    hostname: Option<(String, String)>,
    worker: Option<(String, u32)>,
    tag_key: Option<String>,
    time: Option<(String, TimeValue)>,
}

impl Inject {
    /// Nothing to inject.
    pub fn none() -> Inject {
        Inject { hostname: None, worker: None, tag_key: None, time: None }
    }

    /// Build from the plugin's `<inject>` section.
    pub fn build(section: Option<&Element>, cx: &mut BuildCx<'_, '_>) -> Option<Inject> {
        let Some(el) = section else {
            return Some(Inject::none());
        };
        cx.cfg.path.push(el.display_name());
        let r = Self::build_one(el, cx);
        cx.cfg.path.pop();
        r
    }

    fn build_one(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Inject> {
        let p = InjectParams::from_element(el, cx.cfg)?;
        if p.time_format.is_some() && p.time_key.is_none() {
            cx.cfg.warn(
                el.param("time_format").map_or(el.span, |x| x.key_span),
                "'time_format' specified without 'time_key', will be ignored",
            );
        }
        let time = match p.time_key {
            None => None,
            Some(k) => {
                let v = match p.time_type {
                    InjectTimeType::Float => TimeValue::Float,
                    InjectTimeType::Unixtime => TimeValue::Int(0),
                    InjectTimeType::UnixtimeMillis => TimeValue::Int(3),
                    InjectTimeType::UnixtimeMicros => TimeValue::Int(6),
                    InjectTimeType::UnixtimeNanos => TimeValue::Int(9),
                    InjectTimeType::String => {
                        let (zone, utc) = resolve_zone(el, p.localtime, p.utc, p.timezone.as_deref(), cx)?;
                        TimeValue::Str(match p.time_format {
                            Some(f) => TimeRender::Strftime(TimeFormatter::new(&f, zone)),
                            None => super::formatter::iso8601(zone, utc),
                        })
                    }
                };
                Some((k, v))
            }
        };
        let host = p.hostname.unwrap_or_else(|| cx.env.hostname.clone());
        Some(Inject {
            hostname: p.hostname_key.map(|k| (k, host)),
            worker: p.worker_id_key.map(|k| (k, cx.env.worker_id)),
            tag_key: p.tag_key,
            time,
        })
    }

    /// True if anything is injected.
    pub fn enabled(&self) -> bool {
        self.hostname.is_some() || self.worker.is_some() || self.tag_key.is_some() || self.time.is_some()
    }

    /// The record with the fields added (borrowed unchanged when disabled).
    /// Existing keys are replaced in place; new keys are appended in the
    /// order hostname, worker id, tag, time.
    pub fn apply<'r>(&self, tag: &str, time: EventTime, record: RecordRef<'r>) -> Cow<'r, [u8]> {
        if !self.enabled() {
            return Cow::Borrowed(record.as_bytes());
        }
        let mut pairs: Vec<(&str, Vec<u8>)> = Vec::with_capacity(4);
        if let Some((k, h)) = &self.hostname {
            let mut v = Vec::new();
            msgpack::write_str(&mut v, h.as_bytes());
            pairs.push((k, v));
        }
        if let Some((k, w)) = &self.worker {
            let mut v = Vec::new();
            msgpack::write_uint(&mut v, u64::from(*w));
            pairs.push((k, v));
        }
        if let Some(k) = &self.tag_key {
            let mut v = Vec::new();
            msgpack::write_str(&mut v, tag.as_bytes());
            pairs.push((k, v));
        }
        if let Some((k, tv)) = &self.time {
            let mut v = Vec::new();
            match tv {
                TimeValue::Float => {
                    let micros = time.sec as f64 * 1e6 + f64::from(time.nsec / 1000);
                    msgpack::write_f64(&mut v, micros / 1e6);
                }
                TimeValue::Int(digits) => {
                    let scale = 10i64.pow(*digits);
                    let sub = i64::from(time.nsec) / 10i64.pow(9 - digits);
                    msgpack::write_int(&mut v, time.sec * scale + sub);
                }
                TimeValue::Str(r) => {
                    let mut s = Vec::new();
                    r.write(&mut s, time);
                    msgpack::write_str(&mut v, &s);
                }
            }
            pairs.push((k, v));
        }
        Cow::Owned(set_fields(record, &pairs))
    }
}

/// Return `record` with each `(key, msgpack value)` set: replaced in place
/// if the key exists, appended otherwise. Works on the bytes, without
/// decoding values.
pub fn set_fields(record: RecordRef<'_>, fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut used = vec![false; fields.len()];
    let mut body = Vec::with_capacity(record.as_bytes().len() + 64);
    let mut count = 0usize;
    for pair in record.iter() {
        let key = pair.key_str();
        let hit = key.and_then(|k| fields.iter().position(|(fk, _)| fk.as_bytes() == k));
        body.extend_from_slice(pair.key);
        match hit {
            Some(i) => {
                // A later duplicate in `fields` wins, as repeated assignment would.
                let last = fields.iter().rposition(|(fk, _)| *fk == fields[i].0).unwrap_or(i);
                body.extend_from_slice(&fields[last].1);
                for (j, (fk, _)) in fields.iter().enumerate() {
                    if *fk == fields[i].0 {
                        used[j] = true;
                    }
                }
            }
            None => body.extend_from_slice(pair.value),
        }
        count += 1;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if used[i] || seen.contains(k) {
            continue;
        }
        let last = fields.iter().rposition(|(fk, _)| fk == k).unwrap_or(i);
        seen.push(k);
        msgpack::write_str(&mut body, k.as_bytes());
        body.extend_from_slice(&fields[last].1);
        let _ = v;
        count += 1;
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    msgpack::write_map_header(&mut out, count);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::Record;

    #[test]
    fn set_fields_replaces_in_place_and_appends() {
        let mut r = Record::new();
        r.insert("a", 1);
        r.insert("tag", "old");
        let raw = r.to_msgpack();
        let mut tagv = Vec::new();
        msgpack::write_str(&mut tagv, b"new");
        let mut hv = Vec::new();
        msgpack::write_str(&mut hv, b"h");
        let out = set_fields(RecordRef::new(&raw).unwrap(), &[("host", hv), ("tag", tagv)]);
        let back = Record::from_msgpack(&out).unwrap();
        let keys: Vec<String> = back.iter().map(|(k, _)| sluice_event::rubyfmt::to_s(k)).collect();
        assert_eq!(keys, ["a", "tag", "host"]);
        assert_eq!(back.get("tag"), Some(&sluice_event::Value::from("new")));
    }
}
