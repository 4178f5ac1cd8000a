//! `@type null`: discards events.

use super::{BuildCx, EmitError, Output};
use sluice_config::{Element, Params};
use sluice_event::EventStream;

/// Discards every event.
#[derive(Debug, Params)]
pub struct NullParams {
    /// Fail every write instead (for testing retries and secondaries).
    #[param(default = "false")]
    pub never_flush: bool,
    /// Buffering (accepted; nothing is kept).
    #[section(name = "buffer")]
    pub buffer: Option<crate::buffer::BufferParams>,
}

/// The null output.
pub struct NullOutput {
    never_flush: bool,
}

impl Output for NullOutput {
    fn emit(&self, _tag: &str, _es: &EventStream) -> Result<(), EmitError> {
        if self.never_flush { Err(EmitError::Failed("failed to flush".into())) } else { Ok(()) }
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let p = NullParams::from_element(el, cx.cfg)?;
    if let (Some(b), Some(bel)) = (&p.buffer, el.elements.iter().find(|e| e.name == "buffer"))
        && !crate::buffer::validate(b, bel, cx)
    {
        return None;
    }
    Some(Box::new(NullOutput { never_flush: p.never_flush }))
}
