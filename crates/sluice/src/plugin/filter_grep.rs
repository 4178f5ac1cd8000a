//! `@type grep` filter: keep or drop records by regexps on fields.
//!
//! A record is kept only if every `<regexp>` matches (and at least one
//! `<regexp>` in an `<or>`), and dropped if any `<exclude>` matches (or all
//! of an `<and>`'s excludes). Values are compared as Ruby's `to_s` prints
//! them: a missing key is `""`, numbers as literals, arrays and hashes as
//! their `inspect`. Keys may be record accessors (`$.a.b`). A lookup that
//! fails (digging into a string) keeps the record and logs a warning.

use super::record_accessor::Accessor;
use super::{BuildCx, Filter, FilterCx};
use crate::log::Logger;
use sluice_config::{Element, Params, Span};
use sluice_event::{EventStream, EventStreamBuilder, RecordRef, rubyfmt};
use sluice_ruby::{ByteRegex, RubyFlags};
use std::sync::atomic::{AtomicU64, Ordering};

/// One `<regexp>` or `<exclude>`.
#[derive(Debug, Clone, Params)]
pub struct ConditionParams {
    /// The field (`name` or a record accessor like `$.a.b`).
    pub key: String,
    /// The regexp (`/…/i`).
    pub pattern: String,
}

/// An `<and>` or `<or>` group.
#[derive(Debug, Clone, Params)]
pub struct GroupParams {
    /// Conditions that must match.
    #[section(name = "regexp", params = ConditionParams)]
    pub regexp: Vec<Element>,
    /// Conditions that exclude.
    #[section(name = "exclude", params = ConditionParams)]
    pub exclude: Vec<Element>,
}

/// Keeps or drops records by regexps.
#[derive(Debug, Params)]
pub struct GrepParams {
    /// Legacy `KEY REGEX` condition 1 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp1: Option<String>,
    /// Legacy `KEY REGEX` condition 2 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp2: Option<String>,
    /// Legacy `KEY REGEX` condition 3 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp3: Option<String>,
    /// Legacy `KEY REGEX` condition 4 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp4: Option<String>,
    /// Legacy `KEY REGEX` condition 5 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp5: Option<String>,
    /// Legacy `KEY REGEX` condition 6 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp6: Option<String>,
    /// Legacy `KEY REGEX` condition 7 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp7: Option<String>,
    /// Legacy `KEY REGEX` condition 8 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp8: Option<String>,
    /// Legacy `KEY REGEX` condition 9 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp9: Option<String>,
    /// Legacy `KEY REGEX` condition 10 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp10: Option<String>,
    /// Legacy `KEY REGEX` condition 11 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp11: Option<String>,
    /// Legacy `KEY REGEX` condition 12 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp12: Option<String>,
    /// Legacy `KEY REGEX` condition 13 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp13: Option<String>,
    /// Legacy `KEY REGEX` condition 14 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp14: Option<String>,
    /// Legacy `KEY REGEX` condition 15 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp15: Option<String>,
    /// Legacy `KEY REGEX` condition 16 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp16: Option<String>,
    /// Legacy `KEY REGEX` condition 17 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp17: Option<String>,
    /// Legacy `KEY REGEX` condition 18 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp18: Option<String>,
    /// Legacy `KEY REGEX` condition 19 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp19: Option<String>,
    /// Legacy `KEY REGEX` condition 20 (all must match).
    #[param(deprecated = "use <regexp> sections")]
    pub regexp20: Option<String>,
    /// Legacy `KEY REGEX` exclusion 1 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude1: Option<String>,
    /// Legacy `KEY REGEX` exclusion 2 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude2: Option<String>,
    /// Legacy `KEY REGEX` exclusion 3 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude3: Option<String>,
    /// Legacy `KEY REGEX` exclusion 4 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude4: Option<String>,
    /// Legacy `KEY REGEX` exclusion 5 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude5: Option<String>,
    /// Legacy `KEY REGEX` exclusion 6 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude6: Option<String>,
    /// Legacy `KEY REGEX` exclusion 7 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude7: Option<String>,
    /// Legacy `KEY REGEX` exclusion 8 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude8: Option<String>,
    /// Legacy `KEY REGEX` exclusion 9 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude9: Option<String>,
    /// Legacy `KEY REGEX` exclusion 10 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude10: Option<String>,
    /// Legacy `KEY REGEX` exclusion 11 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude11: Option<String>,
    /// Legacy `KEY REGEX` exclusion 12 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude12: Option<String>,
    /// Legacy `KEY REGEX` exclusion 13 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude13: Option<String>,
    /// Legacy `KEY REGEX` exclusion 14 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude14: Option<String>,
    /// Legacy `KEY REGEX` exclusion 15 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude15: Option<String>,
    /// Legacy `KEY REGEX` exclusion 16 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude16: Option<String>,
    /// Legacy `KEY REGEX` exclusion 17 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude17: Option<String>,
    /// Legacy `KEY REGEX` exclusion 18 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude18: Option<String>,
    /// Legacy `KEY REGEX` exclusion 19 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude19: Option<String>,
    /// Legacy `KEY REGEX` exclusion 20 (any drops).
    #[param(deprecated = "use <exclude> sections")]
    pub exclude20: Option<String>,
    /// Keep records whose field matches (every `<regexp>` must match).
    #[section(name = "regexp", params = ConditionParams)]
    pub regexp: Vec<Element>,
    /// Drop records whose field matches (any `<exclude>` drops).
    #[section(name = "exclude", params = ConditionParams)]
    pub exclude: Vec<Element>,
    /// All conditions inside must hold.
    #[section(name = "and", params = GroupParams)]
    pub and: Vec<Element>,
    /// One condition inside must hold.
    #[section(name = "or", params = GroupParams)]
    pub or: Vec<Element>,
}

struct Cond {
    key: Accessor,
    re: ByteRegex,
}

/// The grep filter.
pub struct GrepFilter {
    regexp_and: Vec<Cond>,
    regexp_or: Vec<Cond>,
    exclude_and: Vec<Cond>,
    exclude_or: Vec<Cond>,
    log: Logger,
    failures: AtomicU64,
}

enum Verdict {
    Keep,
    Drop,
}

impl GrepFilter {
    fn matches(c: &Cond, rec: RecordRef<'_>, buf: &mut Vec<u8>) -> Result<bool, String> {
        let raw = c.key.dig_checked(rec)?;
        buf.clear();
        if let Some(raw) = raw {
            match sluice_event::msgpack::read_scalar(raw, 0) {
                Ok((sluice_event::msgpack::Scalar::Str(s), _)) => return Ok(c.re.is_match(s)),
                Ok((sluice_event::msgpack::Scalar::Bin(s), _)) => return Ok(c.re.is_match(s)),
                _ => rubyfmt::write_to_s(buf, &super::record_accessor::decode_value(raw)),
            }
        }
        Ok(c.re.is_match(buf))
    }

    fn verdict(&self, rec: RecordRef<'_>, buf: &mut Vec<u8>) -> Result<Verdict, String> {
        for c in &self.regexp_and {
            if !Self::matches(c, rec, buf)? {
                return Ok(Verdict::Drop);
            }
        }
        if !self.regexp_or.is_empty() {
            let mut any = false;
            for c in &self.regexp_or {
                if Self::matches(c, rec, buf)? {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(Verdict::Drop);
            }
        }
        if !self.exclude_and.is_empty() {
            let mut all = true;
            for c in &self.exclude_and {
                if !Self::matches(c, rec, buf)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(Verdict::Drop);
            }
        }
        for c in &self.exclude_or {
            if Self::matches(c, rec, buf)? {
                return Ok(Verdict::Drop);
            }
        }
        Ok(Verdict::Keep)
    }
}

impl Filter for GrepFilter {
    fn filter(&self, _tag: &str, es: EventStream, _cx: &FilterCx<'_>) -> EventStream {
        let mut buf = Vec::new();
        let mut b: Option<EventStreamBuilder> = None;
        for (i, ev) in es.iter().enumerate() {
            let keep = match self.verdict(ev.record, &mut buf) {
                Ok(Verdict::Keep) => true,
                Ok(Verdict::Drop) => false,
                Err(e) => {
                    // Fluentd keeps the record and logs every failure; sluice logs the first
                    // and then every 1000th.
                    let n = self.failures.fetch_add(1, Ordering::Relaxed);
                    if n.is_multiple_of(1000) {
                        crate::warn!(self.log, "failed to grep events", "error" => e.as_str(), "count" => n + 1);
                    }
                    true
                }
            };
            match (&mut b, keep) {
                (Some(b), true) => b.push_entry(&ev),
                (Some(_), false) => {}
                (None, true) => {}
                (None, false) => {
                    // First dropped event: copy what was kept so far.
                    let mut nb = EventStreamBuilder::with_capacity(es.as_bytes().len());
                    for prev in es.iter().take(i) {
                        nb.push_entry(&prev);
                    }
                    b = Some(nb);
                }
            }
        }
        match b {
            Some(b) => b.finish(),
            None => es,
        }
    }
}

fn compile(key: &str, pattern: &str, legacy: bool, span: Span, cx: &mut BuildCx<'_, '_>) -> Option<Cond> {
    let key = match Accessor::parse(key) {
        Ok(k) => k,
        Err(e) => {
            cx.cfg.error(span, e);
            return None;
        }
    };
    let re = if legacy { ByteRegex::new(pattern, RubyFlags::default()) } else { ByteRegex::parse_literal(pattern) };
    match re {
        Ok(re) => Some(Cond { key, re }),
        Err(e) => {
            cx.cfg.error(span, format!("invalid regexp: {e}"));
            None
        }
    }
}

fn conditions(els: &[Element], cx: &mut BuildCx<'_, '_>) -> Option<Vec<(String, Cond, Span)>> {
    let mut out = Vec::new();
    for el in els {
        cx.cfg.path.push(el.display_name());
        let p = ConditionParams::from_element(el, cx.cfg);
        cx.cfg.path.pop();
        let p = p?;
        let span = el.param("pattern").map_or(el.span, |x| x.value_span);
        out.push((
            p.key.clone(),
            compile(&p.key, &p.pattern, false, span, cx)?,
            el.param("key").map_or(el.span, |x| x.value_span),
        ));
    }
    Some(out)
}

fn add(
    map: &mut Vec<Cond>,
    keys: &mut Vec<String>,
    key: String,
    c: Cond,
    span: Span,
    dup: &str,
    cx: &mut BuildCx<'_, '_>,
) -> bool {
    if keys.contains(&key) {
        cx.cfg.error(span, format!("{dup}{key}"));
        return false;
    }
    keys.push(key);
    map.push(c);
    true
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Filter>> {
    let p = GrepParams::from_element(el, cx.cfg)?;
    let mut f = GrepFilter {
        regexp_and: Vec::new(),
        regexp_or: Vec::new(),
        exclude_and: Vec::new(),
        exclude_or: Vec::new(),
        log: cx.info.log.clone(),
        failures: AtomicU64::new(0),
    };
    let (mut k_ra, mut k_ro, mut k_ea, mut k_eo) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let legacy_r = [
        &p.regexp1,
        &p.regexp2,
        &p.regexp3,
        &p.regexp4,
        &p.regexp5,
        &p.regexp6,
        &p.regexp7,
        &p.regexp8,
        &p.regexp9,
        &p.regexp10,
        &p.regexp11,
        &p.regexp12,
        &p.regexp13,
        &p.regexp14,
        &p.regexp15,
        &p.regexp16,
        &p.regexp17,
        &p.regexp18,
        &p.regexp19,
        &p.regexp20,
    ];
    let legacy_e = [
        &p.exclude1,
        &p.exclude2,
        &p.exclude3,
        &p.exclude4,
        &p.exclude5,
        &p.exclude6,
        &p.exclude7,
        &p.exclude8,
        &p.exclude9,
        &p.exclude10,
        &p.exclude11,
        &p.exclude12,
        &p.exclude13,
        &p.exclude14,
        &p.exclude15,
        &p.exclude16,
        &p.exclude17,
        &p.exclude18,
        &p.exclude19,
        &p.exclude20,
    ];
    let mut ok = true;
    for (kind, list) in [("regexp", legacy_r), ("exclude", legacy_e)] {
        for (i, v) in list.iter().enumerate() {
            let Some(v) = v else { continue };
            let name = format!("{kind}{}", i + 1);
            let span = el.param(&name).map_or(el.span, |x| x.value_span);
            let Some((key, pat)) = v.split_once(' ') else {
                cx.cfg.error(span, format!("{name} does not contain 2 parameters"));
                ok = false;
                continue;
            };
            let Some(c) = compile(key, pat, true, span, cx) else {
                ok = false;
                continue;
            };
            let (map, keys) =
                if kind == "regexp" { (&mut f.regexp_and, &mut k_ra) } else { (&mut f.exclude_or, &mut k_eo) };
            ok &= add(map, keys, key.to_string(), c, span, &format!("{name} contains a duplicated key, "), cx);
        }
    }
    for (key, c, span) in conditions(&p.regexp, cx)? {
        ok &= add(&mut f.regexp_and, &mut k_ra, key, c, span, "Duplicate key: ", cx);
    }
    for (key, c, span) in conditions(&p.exclude, cx)? {
        ok &= add(&mut f.exclude_or, &mut k_eo, key, c, span, "Duplicate key: ", cx);
    }
    for (name, groups) in [("and", &p.and), ("or", &p.or)] {
        for g in groups {
            cx.cfg.path.push(g.display_name());
            let gp = GroupParams::from_element(g, cx.cfg);
            let parts = gp.as_ref().map(|gp| (conditions(&gp.regexp, cx), conditions(&gp.exclude, cx)));
            cx.cfg.path.pop();
            let Some((Some(rs), Some(es))) = parts else { return None };
            if !rs.is_empty() && !es.is_empty() {
                cx.cfg.error(g.span, format!("Do not specify both <regexp> and <exclude> in <{name}>"));
                return None;
            }
            let dup = format!("Duplicate key in <{name}>: ");
            for (key, c, span) in rs {
                let (map, keys) =
                    if name == "and" { (&mut f.regexp_and, &mut k_ra) } else { (&mut f.regexp_or, &mut k_ro) };
                ok &= add(map, keys, key, c, span, &dup, cx);
            }
            for (key, c, span) in es {
                let (map, keys) =
                    if name == "and" { (&mut f.exclude_and, &mut k_ea) } else { (&mut f.exclude_or, &mut k_eo) };
                ok &= add(map, keys, key, c, span, &dup, cx);
            }
        }
    }
    if p.regexp.len() > 1 {
        crate::info!(cx.info.log, "Top level multiple <regexp> is interpreted as 'and' condition");
    }
    if p.exclude.len() > 1 {
        crate::info!(cx.info.log, "Top level multiple <exclude> is interpreted as 'or' condition");
    }
    ok.then(|| Box::new(f) as Box<dyn Filter>)
}
