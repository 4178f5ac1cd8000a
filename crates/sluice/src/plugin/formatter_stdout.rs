//! `<format> @type stdout`: `time tag: <output_type>`, the stdout plugins' line.

use super::formatter::TimeParams;
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::strftime::{TimeFormatter, Zone};
use sluice_event::{EventTime, RecordRef};

/// `2026-11-22 10:00:00.123456789 +0000 tag: {"k":"v"}`: local time, tag,
/// then the record in the `output_type` format.
#[derive(Debug, Params)]
pub struct StdoutFormatParams {
    /// Formatter for the record part (json, hash, ltsv, …); it reads its parameters from this section too.
    #[param(default = "json")]
    pub output_type: String,
    /// Time parameters: `time_format` (default `%Y-%m-%d %H:%M:%S.%N %z`); the time is always local.
    #[flatten]
    pub time: TimeParams,
}

/// The stdout formatter.
pub struct StdoutFormatter {
    time: TimeFormatter,
    inner: Box<dyn Formatter>,
}

impl Formatter for StdoutFormatter {
    fn format(&self, tag: &str, time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        self.time.format(out, time);
        out.push(b' ');
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(b": ");
        let start = out.len();
        self.inner.format(tag, time, record, out);
        super::formatter::chomp(out, start);
        out.push(b'\n');
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    let saved = std::mem::replace(&mut cx.cfg.skip_unused, true);
    let p = StdoutFormatParams::from_element(el, cx.cfg);
    cx.cfg.skip_unused = saved;
    let p = p?;
    if p.output_type == "stdout" {
        cx.cfg.error(
            el.param("output_type").map_or(el.span, |x| x.value_span),
            "output_type stdout would format forever; use json, hash, ltsv, …",
        );
        return None;
    }
    // The inner formatter reads the same section; our own keys are known to it.
    let mut inner_el = el.clone();
    inner_el.remove("@type");
    inner_el.remove("type");
    inner_el.set("@type", p.output_type.clone(), el.span);
    let saved_known = std::mem::take(&mut cx.cfg.extra_known);
    cx.cfg.extra_known = vec!["output_type"];
    let inner = super::registry::formatter(&p.output_type).map(|d| (d.build)(&inner_el, cx));
    cx.cfg.extra_known = saved_known;
    let inner = match inner {
        Some(Some(f)) => f,
        Some(None) => return None,
        None => {
            cx.cfg.error(
                el.param("output_type").map_or(el.span, |x| x.value_span),
                format!("Unknown formatter plugin '{}'", p.output_type),
            );
            return None;
        }
    };
    let fmt = p.time.time_format.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S.%N %z");
    Some(Box::new(StdoutFormatter { time: TimeFormatter::new(fmt, Zone::local()), inner }))
}
