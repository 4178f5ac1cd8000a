//! `@type stdout` output: prints each event, by default as
//! `2026-11-22 10:00:00.123456789 +0000 tag: {"k":"v"}`.

use super::formatter;
use super::inject::Inject;
use super::{BuildCx, EmitError, Formatter, Output};
use crate::log::Logger;
use sluice_config::{Element, Params};
use sluice_event::{EventStream, RecordRef};
use std::io::Write;

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
    /// Buffering (events are currently written as they arrive).
    #[section(name = "buffer")]
    pub buffer: Option<crate::buffer::BufferParams>,
}

/// The stdout output.
pub struct StdoutOutput {
    formatter: Box<dyn Formatter>,
    inject: Inject,
    log: Option<Logger>,
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

impl Output for StdoutOutput {
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError> {
        let mut out = Vec::with_capacity(es.as_bytes().len() * 2 + 64);
        render(es, tag, &self.inject, self.formatter.as_ref(), true, &mut out);
        match &self.log {
            Some(l) => l.write_raw(&out),
            None => {
                let mut so = std::io::stdout().lock();
                so.write_all(&out)
                    .and_then(|()| so.flush())
                    .map_err(|e| EmitError::Failed(format!("writing to stdout: {e}")))?;
            }
        }
        Ok(())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let p = StdoutParams::from_element(el, cx.cfg)?;
    if let (Some(b), Some(bel)) = (&p.buffer, el.elements.iter().find(|e| e.name == "buffer")) {
        if !crate::buffer::validate(b, bel, cx) {
            return None;
        }
        cx.cfg
            .warn(bel.span, "<buffer> on the stdout output is not implemented yet; events are written as they arrive");
    }
    let formatter = formatter::build(p.format.as_ref(), "stdout", cx)?;
    let inject = Inject::build(p.inject.as_ref(), cx)?;
    Some(Box::new(StdoutOutput { formatter, inject, log: p.use_logger.then(|| cx.env.log.clone()) }))
}
