//! `@type stdout` output: prints each event, by default as
//! `2026-11-22 10:00:00.123456789 +0000 tag: {"k":"v"}`.
//!
//! Without `<buffer>` events are written as they arrive; with it, formatted
//! lines are buffered (default chunk key `tag`, `chunk_limit_size 10240`,
//! `flush_at_shutdown true`, as in Fluentd) and written per chunk.

use super::formatter;
use super::inject::Inject;
use super::{BuildCx, EmitError, Formatter, Output};
use crate::buffer::output::{BufferDefaults, ChunkOutput, ChunkView, EventFormat, WriteError, WriteFuture};
use crate::log::Logger;
use sluice_config::{Element, Params};
use sluice_event::{EventStream, EventTime, RecordRef};
use std::io::Write;
use std::sync::Arc;

/// Prints events to standard output (or, with `use_logger`, to sluice's log device).
#[derive(Debug, Params)]
pub struct StdoutParams {
    /// Write through the log device: stdout, or the file given with `-o`.
    #[param(default = "true")]
    pub use_logger: bool,
    /// How events are rendered (default `@type stdout`, `output_type json`).
    #[section(name = "format")]
    pub format: Option<Element>,
    /// Fields added before formatting.
    #[section(name = "inject")]
    pub inject: Option<Element>,
    /// Buffering: with this section, lines are buffered and written per chunk.
    #[section(name = "buffer", params = crate::buffer::BufferParams)]
    pub buffer: Option<Element>,
    /// Where chunks go when writing keeps failing.
    #[section(name = "secondary")]
    pub secondary: Option<Element>,
}

/// Fluentd's `<buffer>` defaults for stdout.
const DEFAULTS: BufferDefaults =
    BufferDefaults { chunk_limit_size: Some("10240"), flush_at_shutdown: Some(true), ..BufferDefaults::TAG };

/// The stdout output.
pub struct StdoutOutput {
    formatter: Arc<dyn Formatter>,
    inject: Inject,
    log: Option<Logger>,
}

/// One line per event: the formatter's output without its newline, plus `\n`.
struct Line(Arc<dyn Formatter>);

impl Formatter for Line {
    fn format(&self, tag: &str, time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        self.0.format(tag, time, record, out);
        formatter::chomp(out, start);
        out.push(b'\n');
    }
}

/// Render a stream the way the stdout plugins do: inject, format, one line each.
pub fn render(
    es: &EventStream,
    tag: &str,
    inject: &Inject,
    formatter: &dyn Formatter,
    chomp_line: bool,
    out: &mut Vec<u8>,
) {
    for ev in es {
        let rec = inject.apply(tag, ev.time, ev.record);
        // The injected bytes are a map we just built.
        let rec = RecordRef::new(&rec).unwrap_or(ev.record);
        let start = out.len();
        formatter.format(tag, ev.time, rec, out);
        if chomp_line {
            formatter::chomp(out, start);
            out.push(b'\n');
        }
    }
}

impl StdoutOutput {
    fn write_bytes(&self, out: &[u8]) -> Result<(), String> {
        match &self.log {
            Some(l) => {
                l.write_raw(out);
                Ok(())
            }
            None => {
                let mut so = std::io::stdout().lock();
                so.write_all(out).and_then(|()| so.flush()).map_err(|e| format!("writing to stdout: {e}"))
            }
        }
    }
}

impl Output for StdoutOutput {
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError> {
        let mut out = Vec::with_capacity(es.as_bytes().len() * 2 + 64);
        render(es, tag, &self.inject, self.formatter.as_ref(), true, &mut out);
        self.write_bytes(&out).map_err(EmitError::Failed)
    }
}

/// stdout as a chunk writer: formatted chunks are written as they are;
/// msgpack chunks (from another output, as a `<secondary>`) are rendered.
struct StdoutChunks(Arc<StdoutOutput>);

impl ChunkOutput for StdoutChunks {
    fn write<'a>(&'a self, chunk: &'a ChunkView<'a>) -> WriteFuture<'a> {
        Box::pin(async move {
            let out = match chunk.events() {
                Some(es) => {
                    let mut out = Vec::with_capacity(chunk.data.len() * 2);
                    render(
                        &es,
                        chunk.meta.tag.as_deref().unwrap_or(""),
                        &self.0.inject,
                        self.0.formatter.as_ref(),
                        true,
                        &mut out,
                    );
                    out
                }
                None => chunk.data.to_vec(),
            };
            self.0.write_bytes(&out).map_err(WriteError::Retryable)
        })
    }
}

fn configure(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<(StdoutParams, StdoutOutput)> {
    let p = StdoutParams::from_element(el, cx.cfg)?;
    let formatter: Arc<dyn Formatter> = Arc::from(formatter::build(p.format.as_ref(), "stdout", cx)?);
    let inject = Inject::build(p.inject.as_ref(), cx)?;
    let out = StdoutOutput { formatter, inject, log: p.use_logger.then(|| cx.env.log.clone()) };
    Some((p, out))
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let (p, out) = configure(el, cx)?;
    match &p.buffer {
        None => {
            if let Some(s) = &p.secondary {
                cx.cfg.error(s.span, "Invalid <secondary> section for non-buffered plugin");
                return None;
            }
            Some(Box::new(out))
        }
        Some(b) => {
            let line = Box::new(Line(out.formatter.clone()));
            let inject = Inject::build(p.inject.as_ref(), cx)?;
            let format = EventFormat::Formatted { name: "stdout".into(), formatter: line, inject: Box::new(inject) };
            crate::buffer::output::build(
                Some(b),
                p.secondary.as_ref(),
                DEFAULTS,
                format,
                Arc::new(StdoutChunks(Arc::new(out))),
                cx,
            )
        }
    }
}

/// Factory as a chunk writer.
pub fn build_chunk(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Arc<dyn ChunkOutput>> {
    let (_, out) = configure(el, cx)?;
    Some(Arc::new(StdoutChunks(Arc::new(out))))
}
