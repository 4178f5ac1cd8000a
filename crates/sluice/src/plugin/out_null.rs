//! `@type null`: discards events (buffered when it has a `<buffer>`).

use super::{BuildCx, EmitError, Output};
use crate::buffer::output::{BufferDefaults, ChunkOutput, ChunkView, EventFormat, WriteError, WriteFuture};
use sluice_config::{Element, Params};
use sluice_event::EventStream;
use std::sync::Arc;

/// Discards every event.
#[derive(Debug, Params)]
pub struct NullParams {
    /// Fail every write instead (for testing retries and secondaries).
    #[param(default = "false")]
    pub never_flush: bool,
    /// Buffering: with this section, events are buffered, then discarded per chunk.
    #[section(name = "buffer", params = crate::buffer::BufferParams)]
    pub buffer: Option<Element>,
    /// Where chunks go when writing keeps failing.
    #[section(name = "secondary")]
    pub secondary: Option<Element>,
}

/// Fluentd's `<buffer>` defaults for null.
const DEFAULTS: BufferDefaults =
    BufferDefaults { chunk_limit_size: Some("10240"), flush_at_shutdown: Some(true), ..BufferDefaults::TAG };

/// The null output.
pub struct NullOutput {
    never_flush: bool,
}

impl Output for NullOutput {
    fn emit(&self, _tag: &str, _es: &EventStream) -> Result<(), EmitError> {
        if self.never_flush { Err(EmitError::Failed("failed to flush".into())) } else { Ok(()) }
    }
}

impl ChunkOutput for NullOutput {
    fn write<'a>(&'a self, _chunk: &'a ChunkView<'a>) -> WriteFuture<'a> {
        Box::pin(
            async move { if self.never_flush { Err(WriteError::Retryable("failed to flush".into())) } else { Ok(()) } },
        )
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let p = NullParams::from_element(el, cx.cfg)?;
    match &p.buffer {
        None => {
            if let Some(s) = &p.secondary {
                cx.cfg.error(s.span, "Invalid <secondary> section for non-buffered plugin");
                return None;
            }
            Some(Box::new(NullOutput { never_flush: p.never_flush }))
        }
        Some(b) => crate::buffer::output::build(
            Some(b),
            p.secondary.as_ref(),
            DEFAULTS,
            EventFormat::Msgpack,
            Arc::new(NullOutput { never_flush: p.never_flush }),
            cx,
        ),
    }
}

/// Factory as a chunk writer.
pub fn build_chunk(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Arc<dyn ChunkOutput>> {
    let p = NullParams::from_element(el, cx.cfg)?;
    Some(Arc::new(NullOutput { never_flush: p.never_flush }))
}
