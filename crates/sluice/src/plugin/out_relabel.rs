//! `@type relabel`: sends events on to another `<label>` (its `@label`),
//! unchanged and with the same tag.

use super::{BuildCx, EmitError, Output};
use crate::router::{LabelId, Router};
use sluice_config::{Element, Params};
use sluice_event::EventStream;
use std::sync::Weak;

/// Re-emits events into the label named by `@label`.
#[derive(Debug, Params)]
pub struct RelabelParams {}

/// The relabel output.
pub struct RelabelOutput {
    router: Weak<Router>,
    label: LabelId,
}

impl Output for RelabelOutput {
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError> {
        let router = self.router.upgrade().ok_or_else(|| EmitError::Failed("the router is shutting down".into()))?;
        router.emit(self.label, tag, es.clone())
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    RelabelParams::from_element(el, cx.cfg)?;
    let Some(label) = cx.label else {
        // Without @label, Fluentd re-emits into the same route, which loops forever.
        cx.cfg.error(el.span, "relabel needs '@label @NAME' (without it, events would loop back into the same route)");
        return None;
    };
    Some(Box::new(RelabelOutput { router: cx.env.router.clone(), label }))
}
