//! Event routing with Fluentd's semantics.
//!
//! The root and every `<label>` own an ordered list of rules: the
//! `<filter>` and `<match>` directives in file order. For a tag, the
//! pipeline is every matching filter that comes before the first matching
//! `<match>`, then that match's output; later directives never see the
//! event. Pipelines are cached per tag (bounded), so matching runs once per
//! new tag, not per event.
//!
//! Events that match no `<match>` are dropped with one warning per tag
//! (silently inside `@FLUENT_LOG`). Records a filter rejects go to `@ERROR`
//! if that label exists, else they are logged with the record.

use crate::log::Logger;
use crate::pattern::MatchPattern;
use crate::plugin::{EmitError, FilterCx, FilterInstance, OutputInstance};
use sluice_event::{EventStream, EventTime, RecordRef};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Index of a label in the router (0 is the root).
pub type LabelId = usize;

/// The root route.
pub const ROOT: LabelId = 0;

/// Most tags whose pipelines are cached per label.
pub const CACHE_LIMIT: usize = 1024;

/// A `<filter>` or `<match>` in a label.
pub enum Rule {
    /// A filter directive.
    Filter(MatchPattern, Arc<FilterInstance>),
    /// A match directive.
    Match(MatchPattern, Arc<OutputInstance>),
}

/// The resolved route of one tag.
pub struct Pipeline {
    filters: Vec<Arc<FilterInstance>>,
    output: Option<Arc<OutputInstance>>,
}

/// A label (or the root) and its rules.
pub struct Label {
    /// `@NAME`, or empty for the root.
    pub name: String,
    rules: Vec<Rule>,
    cache: RwLock<HashMap<Box<str>, Arc<Pipeline>>>,
    quiet_nomatch: bool,
}

impl Label {
    /// A label with its rules in file order.
    pub fn new(name: impl Into<String>, rules: Vec<Rule>) -> Label {
        let name = name.into();
        let quiet_nomatch = name == "@FLUENT_LOG";
        Label { name, rules, cache: RwLock::new(HashMap::new()), quiet_nomatch }
    }

    /// True if some `<match>` (or a filter, as Fluentd counts it) matches `tag`.
    pub fn matches(&self, tag: &str) -> bool {
        self.rules.iter().any(|r| match r {
            Rule::Filter(p, _) | Rule::Match(p, _) => p.matches(tag),
        })
    }

    /// True if a `<match>` matches `tag`.
    pub fn has_output_for(&self, tag: &str) -> bool {
        self.rules.iter().any(|r| matches!(r, Rule::Match(p, _) if p.matches(tag)))
    }

    fn resolve(&self, tag: &str) -> Pipeline {
        let mut filters = Vec::new();
        for r in &self.rules {
            match r {
                Rule::Filter(p, f) if p.matches(tag) => filters.push(f.clone()),
                Rule::Match(p, o) if p.matches(tag) => {
                    return Pipeline { filters, output: Some(o.clone()) };
                }
                _ => {}
            }
        }
        Pipeline { filters, output: None }
    }

    /// Every filter in this label, in order.
    pub fn filters(&self) -> impl Iterator<Item = &Arc<FilterInstance>> {
        self.rules.iter().filter_map(|r| match r {
            Rule::Filter(_, f) => Some(f),
            Rule::Match(..) => None,
        })
    }

    /// Every output in this label.
    pub fn outputs(&self) -> impl Iterator<Item = &Arc<OutputInstance>> {
        self.rules.iter().filter_map(|r| match r {
            Rule::Match(_, o) => Some(o),
            Rule::Filter(..) => None,
        })
    }
}

/// All labels of one worker.
pub struct Router {
    labels: Vec<Label>,
    error_label: Option<LabelId>,
    log: Logger,
}

impl Router {
    /// A router over `labels` (index 0 must be the root).
    pub fn new(labels: Vec<Label>, log: Logger) -> Router {
        let error_label = labels.iter().position(|l| l.name == "@ERROR");
        Router { labels, error_label, log }
    }

    /// A label by name (`@NAME`); `@ROOT` is the root.
    pub fn label_id(&self, name: &str) -> Option<LabelId> {
        if name == "@ROOT" {
            return Some(ROOT);
        }
        self.labels.iter().position(|l| l.name == name)
    }

    /// The label with this id.
    pub fn label(&self, id: LabelId) -> Option<&Label> {
        self.labels.get(id)
    }

    /// All labels, root first.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    fn pipeline(&self, label: LabelId, tag: &str) -> Option<Arc<Pipeline>> {
        let l = self.labels.get(label)?;
        if let Some(p) = l.cache.read().unwrap_or_else(|e| e.into_inner()).get(tag) {
            return Some(p.clone());
        }
        let p = Arc::new(l.resolve(tag));
        if p.output.is_none() && !l.quiet_nomatch {
            crate::warn!(self.log, "no patterns matched", "tag" => tag);
        }
        let mut cache = l.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(tag.into(), p.clone());
        Some(p)
    }

    /// Route `es` with `tag` through `label`.
    ///
    /// # Errors
    /// Backpressure from the output, or a failure no `@ERROR` label absorbed.
    pub fn emit(&self, label: LabelId, tag: &str, es: EventStream) -> Result<(), EmitError> {
        if es.is_empty() {
            return Ok(());
        }
        let Some(p) = self.pipeline(label, tag) else {
            return Err(EmitError::Failed(format!("label {label} does not exist")));
        };
        let mut es = es;
        for f in &p.filters {
            es = f.filter.filter(tag, es, &FilterCx { router: self, log: &f.info.log });
            if es.is_empty() {
                return Ok(());
            }
        }
        let Some(out) = &p.output else { return Ok(()) };
        match out.output.emit(tag, &es) {
            Ok(()) => Ok(()),
            Err(e) if e.is_backpressure() => Err(e),
            Err(e) => self.handle_emit_error(label, tag, es, e, &out.info.log),
        }
    }

    fn handle_emit_error(
        &self,
        label: LabelId,
        tag: &str,
        es: EventStream,
        e: EmitError,
        log: &Logger,
    ) -> Result<(), EmitError> {
        match self.error_label {
            Some(err) if err != label => {
                crate::warn!(log, "send an error event stream to @ERROR:", "error" => e.to_string(), "tag" => tag);
                self.emit(err, tag, es)
            }
            _ => {
                crate::warn!(log, "emit transaction failed:", "error" => e.to_string(), "tag" => tag);
                Err(e)
            }
        }
    }

    /// True if an `@ERROR` label exists.
    pub fn has_error_label(&self) -> bool {
        self.error_label.is_some()
    }

    /// A record a plugin rejected: to `@ERROR`, or logged with its content.
    pub fn emit_error_event(&self, tag: &str, time: EventTime, record: RecordRef<'_>, error: &str, log: &Logger) {
        let when = crate::log::Kv::Raw(
            sluice_event::TimeFormatter::new("%Y-%m-%d %H:%M:%S.%N %z", sluice_event::Zone::local())
                .format_string(time),
        );
        match self.error_label {
            Some(err) => {
                crate::warn!(log, "send an error event to @ERROR:", "error" => error, "tag" => tag, "time" => when);
                let es = EventStream::single(time, record.as_bytes());
                if let Err(e) = self.emit(err, tag, es) {
                    crate::warn!(log, "@ERROR label did not accept the error event", "error" => e.to_string(), "tag" => tag);
                }
            }
            None => {
                let mut inspected = Vec::new();
                sluice_event::rubyfmt::write_inspect_raw(&mut inspected, record.as_bytes());
                crate::warn!(log, "dump an error event:", "error" => error, "tag" => tag, "time" => when, "record" => crate::log::Kv::Raw(String::from_utf8_lossy(&inspected).into_owned()));
            }
        }
    }
}
