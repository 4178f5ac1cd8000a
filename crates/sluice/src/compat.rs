//! v0.12-era parameters that real configurations still carry, mapped to
//! their v1 sections (Fluentd's `compat_parameters` helper) with a
//! deprecation warning naming the replacement.
//!
//! Mapping happens only when the plugin has no section of that kind; if it
//! has one, the old keys are left alone and reported as unused.

use sluice_config::{Diagnostics, Element, Quote, SectionSpec, Span};

/// Old top-level key → key inside `<buffer>`.
const BUFFER_KEYS: [(&str, &str); 14] = [
    ("buffer_type", "@type"),
    ("buffer_path", "path"),
    ("num_threads", "flush_thread_count"),
    ("flush_interval", "flush_interval"),
    ("try_flush_interval", "flush_thread_interval"),
    ("queued_chunk_flush_interval", "flush_thread_burst_interval"),
    ("disable_retry_limit", "retry_forever"),
    ("retry_limit", "retry_max_times"),
    ("max_retry_wait", "retry_max_interval"),
    ("buffer_chunk_limit", "chunk_limit_size"),
    ("buffer_queue_limit", "queue_limit_length"),
    ("buffer_queue_full_action", "overflow_action"),
    ("flush_at_shutdown", "flush_at_shutdown"),
    ("time_slice_wait", "timekey_wait"),
];

/// Old top-level key → key inside `<format>`.
const FORMAT_KEYS: [(&str, &str); 12] = [
    ("format", "@type"),
    ("delimiter", "delimiter"),
    ("force_quotes", "force_quotes"),
    ("keys", "keys"),
    ("fields", "fields"),
    ("json_parser", "json_parser"),
    ("label_delimiter", "label_delimiter"),
    ("output_time", "output_time"),
    ("output_tag", "output_tag"),
    ("message_key", "message_key"),
    ("add_newline", "add_newline"),
    ("output_type", "output_type"),
];

/// Old top-level keys moved into `<parse>` (besides `format` itself).
const PARSE_KEYS: [&str; 22] = [
    "types",
    "keys",
    "time_key",
    "time_format",
    "time_type",
    "localtime",
    "utc",
    "timezone",
    "delimiter",
    "keep_time_key",
    "null_empty_string",
    "null_value_pattern",
    "json_parser",
    "label_delimiter",
    "format_firstline",
    "message_key",
    "with_priority",
    "message_format",
    "rfc5424_time_format",
    "estimate_current_event",
    "expression",
    "time_format_fallbacks",
];

/// Keys that make `<inject>` conversion happen.
const INJECT_TRIGGERS: [&str; 5] = ["include_time_key", "include_tag_key", "time_key", "tag_key", "time_as_epoch"];

fn take(el: &mut Element, key: &str) -> Option<sluice_config::Param> {
    let p = el.param(key).cloned()?;
    el.params.retain(|x| x.key != key);
    Some(p)
}

fn put(section: &mut Element, key: &str, value: &str, span: Span) {
    section.params.push(sluice_config::Param {
        key: key.into(),
        value: Some(value.into()),
        key_span: span,
        value_span: span,
        quote: Quote::None,
    });
}

/// Rewrite legacy parameters of a plugin element in place, for the
/// sections its declaration has. `what` names the plugin in messages.
pub fn convert(el: &mut Element, spec: &SectionSpec, what: &str, diags: &mut Diagnostics) {
    let declared = |k: &str| spec.param(k).is_some();
    if spec.section("buffer").is_some() && !el.elements.iter().any(|e| e.name == "buffer") {
        convert_buffer(el, &declared, what, diags);
    }
    if spec.section("format").is_some() && !el.elements.iter().any(|e| e.name == "format") {
        let mut fmt = Element::new("format", "");
        for (old, new) in FORMAT_KEYS {
            if declared(old) {
                continue;
            }
            if let Some(p) = take(el, old) {
                diags.warn(p.key_span, format!("'{old}' is a v0.12 parameter of {what}; it is read as `{new}` in <format> (move it into a <format> section)"));
                fmt.span = p.key_span;
                put(&mut fmt, new, p.str(), p.value_span);
            }
        }
        if !fmt.params.is_empty() {
            el.elements.push(fmt);
        }
    }
    if spec.section("parse").is_some()
        && !el.elements.iter().any(|e| e.name == "parse")
        && el.has("format")
        && !declared("format")
    {
        convert_parse(el, &declared, what, diags);
    }
    if spec.section("inject").is_some()
        && !el.elements.iter().any(|e| e.name == "inject")
        && INJECT_TRIGGERS.iter().any(|k| el.has(k) && !declared(k))
    {
        let mut inj = Element::new("inject", "");
        let note = |p: &sluice_config::Param, new: &str, diags: &mut Diagnostics| {
            diags.warn(p.key_span, format!("'{}' is a v0.12 parameter of {what}; it is read as {new} in <inject> (move it into an <inject> section)", p.key));
        };
        if let Some(p) = take(el, "include_time_key") {
            note(&p, "time_key", diags);
            inj.span = p.key_span;
            if p.str() != "false" && p.str() != "no" {
                let key = el.get("time_key").unwrap_or("time").to_string();
                put(&mut inj, "time_key", &key, p.key_span);
                put(&mut inj, "time_type", "string", p.key_span);
            }
        }
        if let Some(p) = take(el, "include_tag_key") {
            note(&p, "tag_key", diags);
            if p.str() != "false" && p.str() != "no" {
                let key = el.get("tag_key").unwrap_or("tag").to_string();
                put(&mut inj, "tag_key", &key, p.key_span);
            }
        }
        if let Some(p) = take(el, "time_as_epoch") {
            note(&p, "time_type unixtime", diags);
            if p.str() != "false" && p.str() != "no" {
                inj.params.retain(|x| x.key != "time_type");
                put(&mut inj, "time_type", "unixtime", p.key_span);
            }
        }
        for k in ["time_key", "tag_key", "time_format", "timezone", "localtime", "utc"] {
            if declared(k) {
                continue;
            }
            if let Some(p) = take(el, k) {
                note(&p, k, diags);
                inj.params.retain(|x| x.key != k);
                put(&mut inj, k, p.str(), p.value_span);
            }
        }
        if !inj.params.is_empty() {
            el.elements.push(inj);
        }
    }
}

fn convert_parse(el: &mut Element, declared: &dyn Fn(&str) -> bool, what: &str, diags: &mut Diagnostics) {
    let Some(f) = take(el, "format") else { return };
    let mut parse = Element::new("parse", "");
    parse.span = f.key_span;
    let value = f.str().trim();
    if value.starts_with('/') {
        diags.warn(f.key_span, format!("'format' is a v0.12 parameter of {what}; a regexp there is read as `@type regexp` with `expression` in <parse> (move it into a <parse> section)"));
        put(&mut parse, "@type", "regexp", f.value_span);
        put(&mut parse, "expression", value, f.value_span);
    } else {
        diags.warn(f.key_span, format!("'format' is a v0.12 parameter of {what}; it is read as `@type` in <parse> (move it into a <parse> section)"));
        put(&mut parse, "@type", value, f.value_span);
    }
    let mut keys: Vec<String> = PARSE_KEYS.iter().map(|k| k.to_string()).collect();
    keys.extend((1..=20).map(|i| format!("format{i}")));
    for k in &keys {
        if declared(k) {
            continue;
        }
        if let Some(p) = take(el, k) {
            put(&mut parse, k, p.str(), p.value_span);
        }
    }
    // `types` with custom delimiters becomes a JSON object.
    let td = take(el, "types_delimiter").filter(|_| !declared("types_delimiter"));
    let tl = take(el, "types_label_delimiter").filter(|_| !declared("types_label_delimiter"));
    if td.is_some() || tl.is_some() {
        let d = td.as_ref().map_or(",", |p| p.str());
        let l = tl.as_ref().map_or(":", |p| p.str());
        if let Some(tp) = parse.params.iter_mut().find(|p| p.key == "types") {
            let obj: serde_json::Map<String, serde_json::Value> = tp
                .str()
                .split(d)
                .filter_map(|pair| {
                    pair.split_once(l).map(|(k, v)| (k.trim().to_string(), serde_json::Value::from(v.trim())))
                })
                .collect();
            tp.value = Some(serde_json::Value::Object(obj).to_string());
        }
    }
    el.elements.push(parse);
}

fn convert_buffer(el: &mut Element, declared: &dyn Fn(&str) -> bool, what: &str, diags: &mut Diagnostics) {
    let mut buf = Element::new("buffer", "");
    for (old, new) in BUFFER_KEYS {
        if declared(old) {
            continue;
        }
        if let Some(p) = take(el, old) {
            diags.warn(p.key_span, format!("'{old}' is a v0.12 parameter of {what}; it is read as `{new}` in <buffer> (move it into a <buffer> section)"));
            buf.span = p.key_span;
            let value =
                if old == "buffer_queue_full_action" && p.str() == "exception" { "throw_exception" } else { p.str() };
            put(&mut buf, new, value, p.value_span);
            if old == "flush_interval" {
                put(&mut buf, "flush_mode", "interval", p.key_span);
            }
        }
    }
    if let Some(p) = take(el, "time_slice_format") {
        diags.warn(p.key_span, format!("'time_slice_format' is a v0.12 parameter of {what}; it becomes the `time` chunk key with a matching timekey"));
        let f = p.str();
        let timekey = if f.contains("%S") {
            Some("1")
        } else if f.contains("%M") {
            Some("60")
        } else if f.contains("%H") {
            Some("3600")
        } else if f.contains("%d") {
            Some("86400")
        } else {
            None
        };
        match timekey {
            Some(t) => {
                buf.arg = "time".into();
                buf.span = p.key_span;
                put(&mut buf, "timekey", t, p.value_span);
            }
            None => {
                diags.error(p.value_span, "time_slice_format only with %Y or %m is too long");
            }
        }
        for k in ["localtime", "utc"] {
            if let Some(lp) = el.param(k).cloned().filter(|_| !declared(k)) {
                let utc = if k == "utc" { lp.str() != "false" } else { lp.str() == "false" };
                el.params.retain(|x| x.key != k);
                put(&mut buf, "timekey_use_utc", if utc { "true" } else { "false" }, lp.value_span);
            }
        }
        if let Some(tz) = take(el, "timezone").filter(|_| !declared("timezone")) {
            put(&mut buf, "timekey_zone", tz.str(), tz.value_span);
        }
    }
    if !buf.params.is_empty() {
        el.elements.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{SourceMap, params::Params};
    use std::path::Path;

    fn convert_text(text: &str) -> (Element, Diagnostics) {
        let mut sm = SourceMap::new();
        let mut d = Diagnostics::new(false);
        let root =
            sluice_config::parse_str(Path::new("t"), "t", text.into(), &sluice_config::parser::NoEval, &mut sm, &mut d)
                .unwrap();
        let mut el = root.elements[0].clone();
        convert(&mut el, crate::plugin::out_stdout::StdoutParams::spec(), "match plugin 'stdout'", &mut d);
        (el, d)
    }

    #[test]
    fn v012_buffer_parameters_become_a_buffer_section() {
        let (el, d) = convert_text(
            "<match **>\n  @type stdout\n  buffer_type file\n  buffer_path /var/log/buf\n  num_threads 4\n  buffer_queue_full_action exception\n  time_slice_format %Y%m%d%H\n  utc\n</match>\n",
        );
        let b = el.elements.iter().find(|e| e.name == "buffer").unwrap();
        assert_eq!(b.arg, "time");
        assert_eq!(b.get("@type"), Some("file"));
        assert_eq!(b.get("path"), Some("/var/log/buf"));
        assert_eq!(b.get("flush_thread_count"), Some("4"));
        assert_eq!(b.get("overflow_action"), Some("throw_exception"));
        assert_eq!(b.get("timekey"), Some("3600"));
        assert_eq!(b.get("timekey_use_utc"), Some("true"));
        assert!(!el.has("buffer_type") && !el.has("utc"));
        assert_eq!(d.len(), 5, "one deprecation warning per mapped key");
    }

    #[test]
    fn existing_sections_are_left_alone() {
        let (el, d) =
            convert_text("<match **>\n  @type stdout\n  flush_interval 2s\n  <buffer>\n  </buffer>\n</match>\n");
        assert!(el.has("flush_interval"), "reported later as not used");
        assert_eq!(el.elements.len(), 1);
        assert!(d.is_empty());
        let (_, d) = convert_text("<match **>\n  @type stdout\n  time_slice_format %Y\n</match>\n");
        assert!(d.has_errors());
    }
}
