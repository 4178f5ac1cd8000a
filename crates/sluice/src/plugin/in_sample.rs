//! `@type sample` (alias `dummy`): generates events from sample records.
//!
//! Each second is cut into ten 100 ms slots, as Fluentd does: `rate / 10`
//! emits per slot and the remainder at the end, then it waits for the next
//! wall-clock second. Each emit is one stream of `size` events. Sample
//! records are encoded once; the `auto_increment_key` counter (starting at 0)
//! is spliced into the bytes per event, so generating costs no decoding.

use super::{BoxFuture, BuildCx, Emitter, Input, InputContext};
use sluice_config::{Element, Params};
use sluice_event::{EventStreamBuilder, EventTime, RecordRef, json, msgpack};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Generates sample events.
#[derive(Debug, Params)]
pub struct SampleParams {
    /// Tag of the generated events.
    pub tag: String,
    /// Events per emit.
    #[param(default = "1")]
    pub size: u32,
    /// Emits per second.
    #[param(default = "1")]
    pub rate: u32,
    /// Field set to an increasing counter, starting at 0.
    pub auto_increment_key: Option<String>,
    /// Ignored.
    #[param(default = "false", deprecated = "it has no effect")]
    pub suspend: bool,
    /// Reuse one record object between events (no effect in sluice: records are never shared).
    #[param(default = "false")]
    pub reuse_record: bool,
    /// The sample: one JSON object, or an array of objects used in turn.
    #[param(alias = "dummy", default = r#"[{"message":"sample"}]"#)]
    pub sample: serde_json::Value,
    /// Where the counter would be persisted (kept in memory by sluice).
    #[section(name = "storage")]
    pub storage: Option<Element>,
}

/// One sample record, split around the counter field.
struct Template {
    /// Pair count without the counter.
    pairs: usize,
    /// Pairs before the counter (all pairs if the sample lacks the key).
    before: Vec<u8>,
    /// Pairs after the counter.
    after: Vec<u8>,
}

/// The sample input.
pub struct SampleInput {
    tag: String,
    size: u32,
    rate: u32,
    key: Option<String>,
    templates: Vec<Template>,
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Input>> {
    let p = SampleParams::from_element(el, cx.cfg)?;
    let span = el.param("sample").or_else(|| el.param("dummy")).map_or(el.span, |x| x.value_span);
    let items = match p.sample {
        serde_json::Value::Array(a) => a,
        v => vec![v],
    };
    if items.is_empty() {
        cx.cfg.error(span, "sample must contain at least one record");
        return None;
    }
    let mut templates = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            cx.cfg.error(span, format!("{i}th element of sample, {item}, is not a hash"));
            return None;
        }
        let mut raw = Vec::new();
        if let Err(e) = json::json_object_to_msgpack(item.to_string().as_bytes(), &mut raw) {
            cx.cfg.error(span, format!("sample: {e}"));
            return None;
        }
        templates.push(split_template(&raw, p.auto_increment_key.as_deref()));
    }
    if p.storage.is_some() {
        crate::info!(cx.info.log, "in_sample keeps its auto_increment counter in memory; it restarts at 0");
    }
    Some(Box::new(SampleInput { tag: p.tag, size: p.size, rate: p.rate, key: p.auto_increment_key, templates }))
}

fn split_template(raw: &[u8], key: Option<&str>) -> Template {
    let rec = RecordRef::new(raw).expect("encoded from a JSON object");
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut found = false;
    let mut pairs = 0;
    for pair in rec.iter() {
        if key.is_some_and(|k| pair.key_str() == Some(k.as_bytes())) && !found {
            found = true;
            continue;
        }
        pairs += 1;
        let dst = if found { &mut after } else { &mut before };
        dst.extend_from_slice(pair.key);
        dst.extend_from_slice(pair.value);
    }
    Template { pairs, before, after }
}

impl SampleInput {
    fn emit_batch(&self, emitter: &Emitter, index: &mut usize, counter: &mut u64) -> Result<(), super::EmitError> {
        let mut b = EventStreamBuilder::with_capacity(self.size as usize * 64);
        for _ in 0..self.size {
            let t = &self.templates[*index % self.templates.len()];
            *index = (*index + 1) % self.templates.len();
            let now = EventTime::now();
            let _ = b.push_with(now, |out| -> Result<(), ()> {
                match &self.key {
                    Some(k) => {
                        msgpack::write_map_header(out, t.pairs + 1);
                        out.extend_from_slice(&t.before);
                        msgpack::write_str(out, k.as_bytes());
                        msgpack::write_uint(out, *counter);
                        out.extend_from_slice(&t.after);
                        *counter += 1;
                    }
                    None => {
                        msgpack::write_map_header(out, t.pairs);
                        out.extend_from_slice(&t.before);
                    }
                }
                Ok(())
            });
        }
        emitter.emit(&self.tag, b.finish())
    }
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Generator state across emits.
struct State {
    index: usize,
    counter: u64,
    warned: bool,
}

impl SampleInput {
    /// Emit `n` streams; false if shutdown began while waiting on backpressure.
    async fn emit_n(&self, n: u32, cx: &InputContext, st: &mut State) -> bool {
        for i in 0..n {
            // Stay responsive at high rates: notice shutdown, let other tasks run.
            if cx.shutdown.is_set() {
                return false;
            }
            if i % 16 == 15 {
                tokio::task::yield_now().await;
            }
            loop {
                match self.emit_batch(&cx.emitter, &mut st.index, &mut st.counter) {
                    Ok(()) => break,
                    Err(e) if e.is_backpressure() => {
                        // The destination is full: generating later is the backpressure.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if cx.shutdown.is_set() {
                            return false;
                        }
                    }
                    Err(e) => {
                        if !st.warned {
                            crate::warn!(cx.log, "emit failed; further failures are not logged", "error" => e.to_string());
                            st.warned = true;
                        }
                        break;
                    }
                }
            }
        }
        true
    }
}

impl Input for SampleInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture {
        Box::pin(async move {
            let mut st = State { index: 0, counter: 0, warned: false };
            let batch = self.rate / 10;
            let residual = self.rate % 10;
            let mut shutdown = cx.shutdown.clone();
            loop {
                let cur = unix_secs();
                for _ in 0..10 {
                    if unix_secs() > cur {
                        break;
                    }
                    let start = tokio::time::Instant::now();
                    if !self.emit_n(batch, &cx, &mut st).await {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(start + Duration::from_millis(100)) => {}
                        _ = shutdown.wait() => return,
                    }
                }
                if !self.emit_n(residual, &cx, &mut st).await {
                    return;
                }
                // Wait for the next wall-clock second.
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                if now.as_secs() <= cur {
                    let left = Duration::from_secs(cur + 1).saturating_sub(now);
                    tokio::select! {
                        _ = tokio::time::sleep(left) => {}
                        _ = shutdown.wait() => return,
                    }
                }
                if cx.shutdown.is_set() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_is_spliced_in_place_or_appended() {
        let mut raw = Vec::new();
        json::json_object_to_msgpack(br#"{"x":1,"id":"old","y":"2"}"#, &mut raw).unwrap();
        let t = split_template(&raw, Some("id"));
        assert_eq!(t.pairs, 2);
        let mut out = Vec::new();
        msgpack::write_map_header(&mut out, t.pairs + 1);
        out.extend_from_slice(&t.before);
        msgpack::write_str(&mut out, b"id");
        msgpack::write_uint(&mut out, 7);
        out.extend_from_slice(&t.after);
        let mut j = Vec::new();
        json::write_json(&out, &mut j).unwrap();
        assert_eq!(String::from_utf8(j).unwrap(), r#"{"x":1,"id":7,"y":"2"}"#);
        let t2 = split_template(&raw, Some("counter"));
        assert_eq!(t2.pairs, 3);
        assert!(t2.after.is_empty());
    }
}
