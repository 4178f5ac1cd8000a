//! `@type copy`: every event goes to every `<store>`, in order.
//!
//! A `<store>`'s argument may hold `ignore_error` (a failure of this store
//! does not stop the later ones) and `ignore_if_prev_success` (skip this
//! store when the one before it succeeded). Streams are immutable in sluice,
//! so every `copy_mode` shares them without copying.

use super::{BoxFuture, BuildCx, EmitError, Output, OutputInstance, StartCx, build_nested_output};
use sluice_config::{Element, ParamEnum, Params};
use sluice_event::EventStream;

/// How records are shared between stores (all equivalent in sluice: streams are never modified in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum CopyMode {
    NoCopy,
    Shallow,
    Deep,
    Marshal,
}

/// Sends every event to each `<store>`.
#[derive(Debug, Params)]
pub struct CopyParams {
    /// How records are shared between stores.
    #[param(default = "no_copy")]
    pub copy_mode: CopyMode,
    /// Old name of `copy_mode shallow`.
    #[param(default = "false", deprecated = "use copy_mode")]
    pub deep_copy: bool,
    /// The outputs; `<store ignore_error>` and `<store ignore_if_prev_success>` change failure handling.
    #[section(name = "store")]
    pub stores: Vec<Element>,
}

struct Store {
    out: OutputInstance,
    ignore_error: bool,
    ignore_if_prev_success: bool,
}

/// The copy output.
pub struct CopyOutput {
    stores: Vec<Store>,
    log: crate::log::Logger,
}

impl Output for CopyOutput {
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError> {
        let mut prev_ok = false;
        for (i, s) in self.stores.iter().enumerate() {
            if i > 0 && prev_ok && s.ignore_if_prev_success {
                crate::debug!(self.log, format!("ignore copy because prev_success in {}", s.out.info.id), "index" => i);
                prev_ok = false;
                continue;
            }
            match s.out.output.emit(tag, es) {
                Ok(()) => prev_ok = true,
                Err(e) if s.ignore_error => {
                    crate::error!(self.log, format!("ignore emit error in {}", s.out.info.id), "error" => e.to_string());
                    prev_ok = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn preflight(&self) -> super::PreflightFuture<'_> {
        Box::pin(async move {
            for s in &self.stores {
                s.out.output.preflight().await?;
            }
            Ok(())
        })
    }

    fn start(&self, cx: &StartCx) {
        for s in &self.stores {
            s.out.output.start(cx);
        }
    }

    fn shutdown(&self) -> BoxFuture {
        let futs: Vec<BoxFuture> = self.stores.iter().map(|s| s.out.output.shutdown()).collect();
        Box::pin(async move {
            for f in futs {
                f.await;
            }
        })
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let p = CopyParams::from_element(el, cx.cfg)?;
    if p.stores.is_empty() {
        cx.cfg.error(el.span, "'<store>' sections are required");
        return None;
    }
    let mut stores = Vec::new();
    for (i, s) in p.stores.iter().enumerate() {
        let ignore_error = s.arg.contains("ignore_error");
        let ignore_if_prev_success = s.arg.contains("ignore_if_prev_success");
        if i == 0 && ignore_if_prev_success {
            cx.cfg.error(s.arg_span, "ignore_if_prev_success must specify 2nd or later <store> directives");
            return None;
        }
        let out = build_nested_output(s, cx)?;
        stores.push(Store { out, ignore_error, ignore_if_prev_success });
    }
    if stores.iter().all(|s| s.ignore_error) && !stores.iter().any(|s| s.ignore_if_prev_success) {
        cx.cfg.warn(el.span, "ignore_errors are specified in all <store>, but ignore_if_prev_success is not specified. Is this intended?");
    }
    Some(Box::new(CopyOutput { stores, log: cx.info.log.clone() }))
}
