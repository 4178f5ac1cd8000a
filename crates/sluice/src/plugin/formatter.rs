//! The `<format>` section: choosing and configuring a formatter, and the
//! time parameters every formatter shares (Fluentd's `TimeMixin::Formatter`).

use super::{BuildCx, Formatter};
use sluice_config::{Element, ParamEnum, Params, Span};
use sluice_event::EventTime;
use sluice_event::strftime::{TimeFormatter, Zone};

/// How a formatter renders the event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum TimeType {
    /// With `time_format` (ISO 8601 without one).
    String,
    /// Integer seconds.
    Unixtime,
    /// Seconds with nanoseconds.
    Float,
    /// Like float.
    Mixed,
}

/// Time rendering parameters shared by every formatter.
#[derive(Debug, Clone, Params)]
pub struct TimeParams {
    /// How the time is rendered: `string` (with `time_format`), `unixtime`, `float` or `mixed`.
    #[param(default = "string")]
    pub time_type: TimeType,
    /// Ruby strftime format for `time_type string`; without it, ISO 8601 (`2026-11-22T10:00:00+09:00`).
    pub time_format: Option<String>,
    /// Render in the local time zone.
    #[param(default = "true")]
    pub localtime: bool,
    /// Render in UTC (the opposite of `localtime`).
    #[param(default = "false")]
    pub utc: bool,
    /// Render in this zone (`+09:00`, `-0800`, `Asia/Tokyo`); wins over `localtime`/`utc`.
    pub timezone: Option<String>,
}

/// A configured way to render event times.
#[derive(Debug, Clone)]
pub enum TimeRender {
    /// strftime in a zone.
    Strftime(TimeFormatter),
    /// ISO 8601 without fraction; `Z` in UTC mode.
    Iso8601(TimeFormatter),
    /// Integer seconds.
    Unix,
    /// `sec.nnnnnnnnn`.
    Float,
}

impl TimeRender {
    /// Append the rendering of `t`.
    pub fn write(&self, out: &mut Vec<u8>, t: EventTime) {
        match self {
            TimeRender::Strftime(f) => f.format(out, t),
            TimeRender::Iso8601(f) => f.format(out, t),
            TimeRender::Unix => out.extend_from_slice(itoa::Buffer::new().format(t.sec).as_bytes()),
            TimeRender::Float => {
                out.extend_from_slice(itoa::Buffer::new().format(t.sec).as_bytes());
                out.push(b'.');
                let ns = itoa::Buffer::new().format(t.nsec).to_string();
                out.extend(std::iter::repeat_n(b'0', 9 - ns.len().min(9)));
                out.extend_from_slice(ns.as_bytes());
            }
        }
    }

    /// The rendering as a string.
    pub fn to_string(&self, t: EventTime) -> String {
        let mut out = Vec::new();
        self.write(&mut out, t);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// ISO 8601 without fraction (`Z` in real UTC mode, else `+00:00`-style offsets).
pub fn iso8601(zone: Zone, utc: bool) -> TimeRender {
    TimeRender::Iso8601(TimeFormatter::new(if utc { "%Y-%m-%dT%H:%M:%SZ" } else { "%Y-%m-%dT%H:%M:%S%:z" }, zone))
}

/// Resolve `localtime`/`utc`/`timezone` into a zone, with Fluentd's checks.
/// Returns the zone and whether it is "real UTC" (ISO 8601 then ends in `Z`).
pub fn resolve_zone(
    el: &Element,
    localtime: bool,
    utc: bool,
    timezone: Option<&str>,
    cx: &mut BuildCx<'_, '_>,
) -> Option<(Zone, bool)> {
    let has_local = el.has("localtime");
    let has_utc = el.has("utc");
    let local = match (has_local, has_utc) {
        (true, true) if localtime == utc => {
            cx.cfg.error(
                el.param("utc").map_or(el.span, |p| p.key_span),
                "both of utc and localtime are specified, use only one of them",
            );
            return None;
        }
        (false, true) => !utc,
        _ => localtime && !utc,
    };
    if let Some(tz) = timezone {
        return match Zone::parse(tz) {
            Ok(z) => Some((z, false)),
            Err(e) => {
                cx.cfg.error(el.param("timezone").map_or(el.span, |p| p.value_span), e);
                None
            }
        };
    }
    Some(if local { (Zone::local(), false) } else { (Zone::Utc, true) })
}

impl TimeParams {
    /// Build the time renderer described by these parameters.
    pub fn render(&self, el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<TimeRender> {
        let (zone, utc) = resolve_zone(el, self.localtime, self.utc, self.timezone.as_deref(), cx)?;
        Some(match self.time_type {
            TimeType::Unixtime => TimeRender::Unix,
            TimeType::Float | TimeType::Mixed => TimeRender::Float,
            TimeType::String => match &self.time_format {
                Some(f) => TimeRender::Strftime(TimeFormatter::new(f, zone)),
                None => iso8601(zone, utc),
            },
        })
    }
}

/// Line terminator (`newline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum Newline {
    /// `\n`
    Lf,
    /// `\r\n`
    Crlf,
}

impl Newline {
    /// The bytes.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Newline::Lf => b"\n",
            Newline::Crlf => b"\r\n",
        }
    }
}

/// Line ending parameters shared by the line formatters.
#[derive(Debug, Clone, Params)]
pub struct NewlineParams {
    /// End each record with a newline.
    #[param(default = "true")]
    pub add_newline: bool,
    /// Newline style: lf or crlf.
    #[param(default = "lf")]
    pub newline: Newline,
}

impl NewlineParams {
    /// The terminator to write, if any.
    pub fn terminator(&self) -> Option<Newline> {
        self.add_newline.then_some(self.newline)
    }

    /// Append the terminator.
    pub fn write(&self, out: &mut Vec<u8>) {
        if let Some(n) = self.terminator() {
            out.extend_from_slice(n.bytes());
        }
    }
}

/// Build the formatter for a plugin's `<format>` section, defaulting to
/// `default_type`.
pub fn build(section: Option<&Element>, default_type: &str, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    let el = match section {
        Some(e) => e.clone(),
        None => {
            let mut e = Element::new("format", "");
            e.span = Span::NONE;
            e
        }
    };
    build_from(&el, default_type, cx)
}

/// Build a formatter from one `<format>` element.
pub fn build_from(el: &Element, default_type: &str, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    let ty = el.type_name().unwrap_or(default_type).to_string();
    let Some(def) = super::registry::formatter(&ty) else {
        let names: Vec<&str> = super::registry::registry().formatters.iter().map(|d| d.name).collect();
        let span = el.param("@type").or_else(|| el.param("type")).map_or(el.span, |p| p.value_span);
        let hint = sluice_config::diag::did_you_mean(&ty, names.iter().copied());
        let d = cx.cfg.error(span, format!("Unknown formatter plugin '{ty}'"));
        if let Some(h) = hint {
            d.help(format!("did you mean `{h}`?"));
        }
        return None;
    };
    cx.cfg.path.push(el.display_name());
    let r = (def.build)(el, cx);
    cx.cfg.path.pop();
    r
}

/// Strip one trailing `\n`, `\r\n` or `\r` (Ruby's `chomp`).
pub fn chomp(out: &mut Vec<u8>, from: usize) {
    if out.len() > from && out.ends_with(b"\n") {
        out.pop();
        if out.len() > from && out.ends_with(b"\r") {
            out.pop();
        }
    } else if out.len() > from && out.ends_with(b"\r") {
        out.pop();
    }
}
