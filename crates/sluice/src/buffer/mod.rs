//! Buffered outputs: the `<buffer>` section and (with the buffer engine) its
//! chunks, flushing and retries.

pub mod chunk;
pub mod chunk_file;
pub mod engine;
pub mod metadata;
pub mod output;
pub mod params;
pub mod retry;

pub use params::BufferParams;

use crate::plugin::BuildCx;
use sluice_config::Element;

/// Fluentd's checks of a `<buffer>` section that span several parameters.
pub fn validate(p: &BufferParams, el: &Element, cx: &mut BuildCx<'_, '_>) -> bool {
    cx.cfg.path.push(el.display_name());
    let ok = validate_in(p, el, cx);
    cx.cfg.path.pop();
    ok
}

fn validate_in(p: &BufferParams, el: &Element, cx: &mut BuildCx<'_, '_>) -> bool {
    let mut ok = true;
    let arg_span = if el.arg.is_empty() { el.span } else { el.arg_span };
    for k in &p.chunk_keys {
        let k = k.trim();
        if k.is_empty() {
            continue;
        }
        if k.starts_with("$[") {
            cx.cfg.error(arg_span, "in chunk_keys: bracket notation is not allowed");
            ok = false;
        } else if !k.starts_with("$.")
            && !k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
        {
            cx.cfg.error(arg_span, format!("chunk_keys specification includes invalid char: {k}"));
            ok = false;
        }
    }
    if p.chunk_keys.iter().any(|k| k.trim() == "time") {
        match p.timekey {
            None => {
                cx.cfg.error(
                    arg_span,
                    format!("<buffer {}> argument includes 'time', but timekey is not configured", el.arg),
                );
                ok = false;
            }
            Some(t) if t.secs() <= 0.0 => {
                cx.cfg.error(
                    el.param("timekey").map_or(el.span, |x| x.value_span),
                    format!("timekey should be greater than 0. current timekey: {t}"),
                );
                ok = false;
            }
            _ => {}
        }
    }
    if p.chunk_keys.len() >= 4 {
        cx.cfg.warn(arg_span, "many chunk keys specified, and it may cause too many chunks on your system.");
    }
    if !(0.0..=1.0).contains(&p.chunk_full_threshold) || p.chunk_full_threshold == 0.0 {
        cx.cfg.error(
            el.param("chunk_full_threshold").map_or(el.span, |x| x.value_span),
            "chunk_full_threshold must be greater than 0 and at most 1",
        );
        ok = false;
    }
    ok
}
