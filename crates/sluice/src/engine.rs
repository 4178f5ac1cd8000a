//! From a configuration file to running workers (Fluentd's Supervisor,
//! RootAgent and Engine in one process).
//!
//! 1. [`load`] parses the file (for the "supervisor", where `#{worker_id}` is
//!    empty) and reads `<system>`.
//! 2. For each worker, the file is parsed again with its `worker_id`,
//!    `<worker N>` / `<worker N-M>` blocks are selected, and [`build`] makes
//!    the labels, filters, outputs and inputs: pure configuration, no
//!    sockets or files, so `--dry-run` runs exactly this.
//! 3. [`run_workers`] starts outputs, then inputs, delivers own-log events,
//!    and on shutdown stops inputs first, then flushes outputs.

use crate::compat;
use crate::eval::ConfigEval;
use crate::log::{Kv, Level, Logger};
use crate::pattern::MatchPattern;
use crate::plugin::registry::{self, PluginDef};
use crate::plugin::{
    BuildCx, Emitter, EngineEnv, FilterInstance, InputContext, InputInstance, OutputInstance, PluginInfo, Shutdown,
    StartCx,
};
use crate::router::{Label, LabelId, ROOT, Router, Rule};
use crate::system::SystemParams;
use sluice_config::{ConfigureCx, Diagnostics, Element, Params, SourceMap, Span};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// The top-level directives.
const DIRECTIVES: [&str; 6] = ["source", "match", "filter", "label", "system", "worker"];

/// A parsed configuration.
pub struct Loaded {
    /// Files read (for locations).
    pub sources: SourceMap,
    /// The tree (`None` after a syntax error).
    pub root: Option<Element>,
    /// `<system>` (defaults when absent).
    pub system: Option<SystemParams>,
}

/// Parse `path` for worker `worker_id` (`None`: the supervisor's view) and read `<system>`.
pub fn load(path: &Path, worker_id: Option<u32>, hostname: &str, diags: &mut Diagnostics) -> Loaded {
    let mut sources = SourceMap::new();
    let eval = ConfigEval { worker_id, hostname: hostname.to_string() };
    let root = sluice_config::parse_file(path, &eval, &mut sources, diags);
    let system = root.as_ref().and_then(|r| read_system(r, diags));
    Loaded { sources, root, system }
}

/// Read the (single) `<system>` directive.
pub fn read_system(root: &Element, diags: &mut Diagnostics) -> Option<SystemParams> {
    let systems: Vec<&Element> = root.elements_named("system").collect();
    if systems.len() > 1 {
        diags.error(systems[1].span, "<system> is duplicated. <system> should be only one");
    }
    let empty = Element::new("system", "");
    let el = systems.first().copied().unwrap_or(&empty);
    let mut cx = ConfigureCx::new(diags);
    cx.path.push("<system>".into());
    SystemParams::from_element(el, &mut cx)
}

/// Parse `<worker N>` / `<worker N-M>`.
fn worker_range(arg: &str) -> Result<(u32, u32), String> {
    let a = arg.trim();
    if a.is_empty() {
        return Err("Missing worker id on <worker> directive".into());
    }
    let parse = |s: &str| s.trim().parse::<u32>().map_err(|_| format!("worker id should be integer: {a}"));
    match a.split_once('-') {
        Some((x, y)) => {
            let (x, y) = (parse(x)?, parse(y)?);
            if x > y {
                return Err(format!(
                    "greater first_worker_id<{x}> than last_worker_id<{y}> specified by <worker> directive is not allowed. Available multi worker assign syntax is <smaller_worker_id>-<greater_worker_id>"
                ));
            }
            Ok((x, y))
        }
        None => parse(a).map(|x| (x, x)),
    }
}

/// The directives that apply to `worker` (top-level ones plus its `<worker>` blocks, in file order).
pub fn select_worker(root: &Element, worker: u32, workers: u32, diags: &mut Diagnostics) -> Element {
    let mut out = root.clone();
    out.elements.clear();
    let mut taken: HashSet<u32> = HashSet::new();
    for e in &root.elements {
        if e.name != "worker" {
            out.elements.push(e.clone());
            continue;
        }
        let (lo, hi) = match worker_range(&e.arg) {
            Ok(r) => r,
            Err(m) => {
                diags.error(if e.arg.is_empty() { e.span } else { e.arg_span }, m);
                continue;
            }
        };
        let mut bad = false;
        for id in lo..=hi {
            if id >= workers {
                diags.error(e.arg_span, format!("worker id {id} specified by <worker> directive is not allowed. Available worker id is between 0 and {}", workers.saturating_sub(1)));
                bad = true;
                break;
            }
            if !taken.insert(id) {
                let mut avail: Vec<u32> = (0..workers).filter(|w| !taken.contains(w)).collect();
                avail.sort_unstable();
                diags.error(e.arg_span, format!("specified worker_id<{id}> collisions is detected on <worker> directive. Available worker id(s): {avail:?}"));
                bad = true;
                break;
            }
        }
        for c in &e.elements {
            if !matches!(c.name.as_str(), "source" | "match" | "filter" | "label") {
                diags.error(c.span, format!("<worker> section cannot have <{}> directive", c.name));
                bad = true;
            }
        }
        for p in &e.params {
            diags.warn(p.key_span, format!("parameter '{}' in <worker {}> is not used", p.key, e.arg));
        }
        if !bad && (lo..=hi).contains(&worker) {
            out.elements.extend(e.elements.iter().cloned());
        }
    }
    out
}

/// One worker, configured and ready to run.
pub struct Engine {
    /// Its id.
    pub worker_id: u32,
    /// Its routes.
    pub router: Arc<Router>,
    inputs: Vec<InputInstance>,
    outputs: Vec<Arc<OutputInstance>>,
    log: Logger,
}

impl Engine {
    /// Where own-log events should go: `<label @FLUENT_LOG>` or, if a
    /// top-level `<match>` catches `fluent.*` tags (deprecated in Fluentd),
    /// the root.
    pub fn log_route(&self) -> Option<LabelId> {
        if let Some(id) = self.router.label_id("@FLUENT_LOG")
            && id != ROOT
        {
            return Some(id);
        }
        let root = self.router.label(ROOT)?;
        let tags: Vec<&str> = Level::ALL.iter().map(|l| crate::log::event_tag(*l)).collect();
        let matched: Vec<&str> = tags.iter().copied().filter(|t| root.matches(t)).collect();
        if matched.is_empty() {
            return None;
        }
        if matched.len() == tags.len() {
            crate::warn!(
                self.log,
                "define <match fluent.**> to capture fluentd logs in top level is deprecated. Use <label @FLUENT_LOG> instead"
            );
        } else {
            let list: Vec<String> = matched.iter().map(|t| format!("<match {t}>")).collect();
            crate::warn!(
                self.log,
                format!(
                    "define {} to capture fluentd logs in top level is deprecated. Use <label @FLUENT_LOG> instead",
                    list.join(", ")
                )
            );
        }
        Some(ROOT)
    }

    /// Number of inputs.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }
}

/// Settings shared by every worker's build.
pub struct BuildOptions {
    /// Worker id.
    pub worker_id: u32,
    /// Worker count.
    pub workers: u32,
    /// Host name.
    pub hostname: String,
    /// The worker's logger.
    pub log: Logger,
    /// `--dry-run`.
    pub dry_run: bool,
    /// Log "adding match…" lines (worker 0 only, as Fluentd).
    pub announce: bool,
    /// `<system> root_dir`, `file_permission`, `dir_permission`.
    pub paths: SystemPaths,
}

/// The `<system>` settings plugins need for files.
#[derive(Debug, Clone, Default)]
pub struct SystemPaths {
    /// `root_dir`.
    pub root_dir: Option<String>,
    /// `file_permission`.
    pub file_permission: Option<String>,
    /// `dir_permission`.
    pub dir_permission: Option<String>,
}

impl SystemPaths {
    /// From `<system>`.
    pub fn from_system(s: &SystemParams) -> Self {
        SystemPaths {
            root_dir: s.root_dir.clone(),
            file_permission: s.file_permission.clone(),
            dir_permission: s.dir_permission.clone(),
        }
    }
}

struct Builder<'a, 'd> {
    env: &'a EngineEnv,
    cfg: ConfigureCx<'d>,
    ids: HashSet<String>,
    next_object: u64,
    labels: &'a [String],
    announce: bool,
}

impl Builder<'_, '_> {
    fn label_id(&self, name: &str) -> Option<LabelId> {
        if name == "@ROOT" {
            return Some(ROOT);
        }
        self.labels.iter().position(|l| l == name)
    }

    /// `@type`, `@id`, `@log_level`, `@label` of a plugin element.
    fn common(&mut self, el: &Element, directive: &str) -> Option<(String, PluginInfo, Option<LabelId>)> {
        let legacy = |cfg: &mut ConfigureCx<'_>, key: &str, new: &str| -> Option<String> {
            el.get(new).map(String::from).or_else(|| {
                let p = el.param(key)?;
                cfg.diags.warn(p.key_span, format!("'{key}' is deprecated parameter name. use '{new}' instead."));
                p.value.clone()
            })
        };
        let Some(ty) = legacy(&mut self.cfg, "type", "@type") else {
            self.cfg.diags.error(el.span, format!("Missing '@type' parameter on <{directive}> directive"));
            return None;
        };
        let id = legacy(&mut self.cfg, "id", "@id");
        let has_id = id.is_some();
        let id = match id {
            Some(i) => {
                if !self.ids.insert(i.clone()) {
                    let span = el.param("@id").or_else(|| el.param("id")).map_or(el.span, |p| p.value_span);
                    self.cfg
                        .diags
                        .error(span, format!("Duplicated plugin id `{i}`. Check whole configuration and fix it."));
                    return None;
                }
                i
            }
            None => {
                self.next_object += 1;
                format!("object:{:x}", 0x7d0 + self.next_object * 0x14)
            }
        };
        let level = match legacy(&mut self.cfg, "log_level", "@log_level") {
            Some(l) => match Level::from_name(&l) {
                Some(l) => Some(l),
                None => {
                    let span =
                        el.param("@log_level").or_else(|| el.param("log_level")).map_or(el.span, |p| p.value_span);
                    self.cfg.diags.error(
                        span,
                        format!("Unknown log level: level = {l} (use trace, debug, info, warn, error or fatal)"),
                    );
                    return None;
                }
            },
            None => None,
        };
        let label = match el.get("@label") {
            Some(name) => match self.label_id(name) {
                Some(id) => Some(id),
                None => {
                    let span = el.param("@label").map_or(el.span, |p| p.value_span);
                    let d = self.cfg.diags.error(span, format!("{name} label not found"));
                    if let Some(h) = sluice_config::diag::did_you_mean(
                        name,
                        self.labels.iter().map(String::as_str).filter(|l| !l.is_empty()),
                    ) {
                        d.help(format!("did you mean `{h}`?"));
                    }
                    return None;
                }
            },
            None => None,
        };
        let log = self.env.log.for_plugin(has_id.then_some(id.as_str()), level);
        Some((ty.clone(), PluginInfo { id, has_id, type_name: ty, log }, label))
    }

    fn unknown_type<B>(&mut self, el: &Element, kind: &str, ty: &str, defs: &[PluginDef<B>]) {
        let span = el.param("@type").or_else(|| el.param("type")).map_or(el.span, |p| p.value_span);
        let names = defs.iter().flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()));
        let hint = sluice_config::diag::did_you_mean(ty, names);
        let d = self.cfg.diags.error(
            span,
            format!("Unknown {kind} plugin '{ty}'. Run 'sluice plugin-doc --list' for the built-in plugins"),
        );
        if let Some(h) = hint {
            d.help(format!("did you mean `{h}`?"));
        }
    }

    fn with_plugin<T>(
        &mut self,
        el: &Element,
        info: PluginInfo,
        label: Option<LabelId>,
        spec: &sluice_config::SectionSpec,
        f: impl FnOnce(&Element, &mut BuildCx<'_, '_>) -> Option<T>,
    ) -> Option<T> {
        let mut el = el.clone();
        let what = format!("{} plugin '{}'", el.name, info.type_name);
        compat::convert(&mut el, spec, &what, self.cfg.diags);
        self.cfg.path = vec![el.display_name()];
        let mut cx = BuildCx { cfg: &mut self.cfg, env: self.env, info, label };
        let r = f(&el, &mut cx);
        self.cfg.path.clear();
        r
    }

    fn output(&mut self, el: &Element) -> Option<Arc<OutputInstance>> {
        let (ty, info, label) = self.common(el, &el.name)?;
        let Some(def) = registry::output(&ty) else {
            self.unknown_type(el, "output", &ty, &registry::registry().outputs);
            return None;
        };
        let spec = (def.spec)();
        let build = def.build;
        let out = self.with_plugin(el, info.clone(), label, spec, build)?;
        Some(Arc::new(OutputInstance { info, output: out }))
    }

    fn filter(&mut self, el: &Element) -> Option<Arc<FilterInstance>> {
        let (ty, info, label) = self.common(el, "filter")?;
        let Some(def) = registry::filter(&ty) else {
            self.unknown_type(el, "filter", &ty, &registry::registry().filters);
            return None;
        };
        let spec = (def.spec)();
        let build = def.build;
        let f = self.with_plugin(el, info.clone(), label, spec, build)?;
        Some(Arc::new(FilterInstance { info, filter: f }))
    }

    fn input(&mut self, el: &Element) -> Option<InputInstance> {
        let (ty, info, label) = self.common(el, "source")?;
        let Some(def) = registry::input(&ty) else {
            self.unknown_type(el, "input", &ty, &registry::registry().inputs);
            return None;
        };
        let spec = (def.spec)();
        let build = def.build;
        let input = self.with_plugin(el, info.clone(), label, spec, build)?;
        if self.announce {
            crate::info!(self.env.log.for_plugin(None, None), "adding source", "type" => ty.as_str());
        }
        Some(InputInstance { info, input, label: label.unwrap_or(ROOT) })
    }

    /// The `<filter>`/`<match>` rules of a label body, in file order.
    fn rules(&mut self, elements: &[Element], label: &str, outputs: &mut Vec<Arc<OutputInstance>>) -> Vec<Rule> {
        let mut rules = Vec::new();
        for e in elements {
            if e.name != "filter" && e.name != "match" {
                continue;
            }
            let pattern = match MatchPattern::new(&e.arg) {
                Ok(p) => p,
                Err(m) => {
                    self.cfg.diags.error(e.arg_span, m);
                    continue;
                }
            };
            let ty = e.type_name().unwrap_or("").to_string();
            if self.announce {
                let what = if label.is_empty() {
                    format!("adding {}", e.name)
                } else {
                    format!("adding {} in {label}", e.name)
                };
                crate::info!(self.env.log.for_plugin(None, None), what, "pattern" => pattern.as_str(), "type" => ty.as_str());
            }
            if e.name == "filter" {
                if let Some(f) = self.filter(e) {
                    rules.push(Rule::Filter(pattern, f));
                }
            } else if let Some(o) = self.output(e) {
                outputs.push(o.clone());
                rules.push(Rule::Match(pattern, o));
            }
        }
        rules
    }
}

/// Build one worker from its (worker-selected) configuration tree.
pub fn build(root: &Element, opts: BuildOptions, diags: &mut Diagnostics) -> Option<Engine> {
    // Labels first: their names are needed to resolve @label anywhere.
    let mut names = vec![String::new()];
    let mut label_els: Vec<&Element> = Vec::new();
    for e in root.elements_named("label") {
        let name = e.arg.trim();
        if name.is_empty() {
            diags.error(e.span, "Missing symbol argument on <label> directive");
            continue;
        }
        if name == "@ROOT" {
            diags.error(e.arg_span, "@ROOT for <label> is not permitted, reserved for getting root router");
            continue;
        }
        if names.iter().any(|n| n == name) {
            diags.error(e.arg_span, format!("Section <label {name}> appears twice"));
            continue;
        }
        if !e.elements.iter().any(|c| c.name == "match") {
            diags.error(e.span, format!("Missing <match> sections in <label {name}> section"));
        }
        for c in &e.elements {
            if !matches!(c.name.as_str(), "match" | "filter") {
                diags.error(c.span, format!("<label> section cannot have <{}> directive", c.name));
            }
        }
        names.push(name.to_string());
        label_els.push(e);
    }
    for p in &root.params {
        let d = diags.lenient(p.key_span, format!("parameter '{}' in <ROOT> is not used", p.key));
        d.help(
            "top-level lines must be directives (<source>, <match>, <filter>, <label>, <system>, <worker>) or @include",
        );
    }
    for e in &root.elements {
        if !DIRECTIVES.contains(&e.name.as_str()) {
            let d = diags.lenient(e.span, format!("unknown directive <{}> is not used", e.name));
            if let Some(h) = sluice_config::diag::did_you_mean(&e.name, DIRECTIVES) {
                d.help(format!("did you mean `<{h}>`?"));
            }
        }
    }

    let errors_before = diags.error_count();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let log = opts.log.clone();
    let router = Arc::new_cyclic(|weak| {
        let env = EngineEnv {
            worker_id: opts.worker_id,
            workers: opts.workers,
            hostname: opts.hostname.clone(),
            log: opts.log.clone(),
            router: weak.clone(),
            dry_run: opts.dry_run,
            root_dir: opts.paths.root_dir.clone(),
            file_permission: opts.paths.file_permission.clone(),
            dir_permission: opts.paths.dir_permission.clone(),
        };
        let mut b = Builder {
            env: &env,
            cfg: ConfigureCx::new(diags),
            ids: HashSet::new(),
            next_object: 0,
            labels: &names,
            announce: opts.announce,
        };
        let mut labels = Vec::new();
        // Labels are configured before the root, as Fluentd does (so @ERROR is known).
        let mut label_rules: HashMap<usize, Vec<Rule>> = HashMap::new();
        for (i, l) in label_els.iter().enumerate() {
            label_rules.insert(i, b.rules(&l.elements, &l.arg, &mut outputs));
        }
        labels.push(Label::new("", b.rules(&root.elements, "", &mut outputs)));
        for (i, l) in label_els.iter().enumerate() {
            labels.push(Label::new(l.arg.trim(), label_rules.remove(&i).unwrap_or_default()));
        }
        for s in root.elements_named("source") {
            if let Some(i) = b.input(s) {
                inputs.push(i);
            }
        }
        Router::new(labels, log.for_worker(opts.worker_id))
    });
    if diags.error_count() > errors_before {
        return None;
    }
    Some(Engine { worker_id: opts.worker_id, router, inputs, outputs, log: opts.log.for_worker(opts.worker_id) })
}

/// Configure worker 0 from configuration text (for benchmarks and tests):
/// logs are discarded, diagnostics with errors become `Err`.
pub fn build_from_str(text: &str) -> Result<Engine, String> {
    let mut sources = SourceMap::new();
    let mut diags = Diagnostics::new(false);
    let eval = ConfigEval { worker_id: Some(0), hostname: crate::plugin::hostname() };
    let root = sluice_config::parse_str(
        Path::new("inline.conf"),
        "inline.conf",
        text.to_string(),
        &eval,
        &mut sources,
        &mut diags,
    );
    let log = Logger::new(
        crate::log::LogSink::new(Box::new(std::io::sink()), crate::log::LogFormat::Text, "%Y"),
        Level::Warn,
    );
    let engine = root.and_then(|r| {
        let r = select_worker(&r, 0, 1, &mut diags);
        let paths = read_system(&r, &mut diags).map(|s| SystemPaths::from_system(&s)).unwrap_or_default();
        let opts = BuildOptions {
            worker_id: 0,
            workers: 1,
            hostname: crate::plugin::hostname(),
            log,
            dry_run: false,
            announce: false,
            paths,
        };
        build(&r, opts, &mut diags)
    });
    match engine {
        Some(e) if !diags.has_errors() => Ok(e),
        _ => Err(diags.render(&sources)),
    }
}

/// Deliver own-log events on a dedicated thread until the queue closes.
fn spawn_log_delivery(
    sink: &Arc<crate::log::LogSink>,
    router: Arc<Router>,
    label: LabelId,
) -> std::thread::JoinHandle<()> {
    let rx = sink.attach_events();
    std::thread::Builder::new()
        .name("sluice-log-events".into())
        .spawn(move || {
            crate::log::suppress_events_on_this_thread();
            for ev in rx {
                let es = sluice_event::EventStream::single(ev.time, &ev.record);
                let _ = router.emit(label, ev.tag, es);
            }
        })
        .expect("spawning the log event thread")
}

/// Run every worker until `shutdown` fires, then stop them in order.
///
/// # Errors
/// An output's startup check failed; nothing was started.
pub async fn run_workers(engines: Vec<Engine>, mut shutdown: Shutdown, log: Logger) -> Result<(), String> {
    // The checks borrow only the outputs (`Sync`), not the engines.
    let checks: Vec<_> =
        engines.iter().flat_map(|e| e.outputs.iter().map(|o| (o.info.id.clone(), o.output.preflight()))).collect();
    for (id, check) in checks {
        if let Err(err) = check.await {
            crate::error!(log, "unexpected error on starting output plugin", "plugin_id" => id.as_str(), "error" => err.as_str());
            return Err(err);
        }
    }
    let (stop_tx, stop) = Shutdown::new();
    // Consumers first: outputs start before any input produces.
    for e in &engines {
        for o in &e.outputs {
            o.output.start(&StartCx { shutdown: stop.clone() });
        }
    }
    let sink = log.sink().clone();
    let delivery = engines.first().and_then(|e| e.log_route().map(|l| spawn_log_delivery(&sink, e.router.clone(), l)));
    let mut running = Vec::new();
    for mut e in engines {
        let pid = std::process::id();
        crate::info!(e.log, "starting fluentd worker", "pid" => pid, "ppid" => parent_pid(), "worker" => e.worker_id);
        let mut handles = Vec::new();
        for i in std::mem::take(&mut e.inputs) {
            let cx = InputContext {
                emitter: Emitter::new(e.router.clone(), i.label),
                shutdown: stop.clone(),
                log: i.info.log.clone(),
            };
            handles.push((i.info, tokio::spawn(i.input.run(cx))));
        }
        sink.set_events(true);
        crate::info!(e.log, "fluentd worker is now running", "worker" => e.worker_id);
        running.push((e, handles));
    }
    shutdown.wait().await;
    for (e, _) in &running {
        crate::info!(e.log, "fluentd worker is now stopping", "worker" => e.worker_id);
    }
    // Own-log events stop before plugins shut down; queued ones are delivered.
    sink.detach_events();
    if let Some(d) = delivery {
        let _ = tokio::task::spawn_blocking(move || d.join()).await;
    }
    for (e, _) in &running {
        crate::info!(e.log, "shutting down fluentd worker", "worker" => e.worker_id);
    }
    let _ = stop_tx.send(true);
    for (e, handles) in running {
        for (info, h) in handles {
            if let Err(err) = h.await {
                crate::error!(e.log, "input plugin stopped abnormally", "plugin_id" => info.id.as_str(), "error" => err.to_string());
            }
            crate::info!(e.log, "shutting down input plugin", "type" => Kv::Raw(format!(":{}", info.type_name)), "plugin_id" => info.id.as_str());
        }
        for o in &e.outputs {
            o.output.shutdown().await;
            crate::info!(e.log, "shutting down output plugin", "type" => Kv::Raw(format!(":{}", o.info.type_name)), "plugin_id" => o.info.id.as_str());
        }
    }
    Ok(())
}

fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

/// Drop diagnostics repeated by several workers, and order them by position.
pub fn dedup(diags: Diagnostics) -> Diagnostics {
    let mut seen: HashSet<(Span, String)> = HashSet::new();
    let mut out = Diagnostics::new(diags.strict);
    let mut list: Vec<&sluice_config::Diagnostic> = diags.iter().collect();
    list.sort_by_key(|d| (d.span.is_some(), d.span.file, d.span.start));
    for d in list {
        if seen.insert((d.span, d.message.clone())) {
            let nd = match d.severity {
                sluice_config::Severity::Error => out.error(d.span, d.message.clone()),
                sluice_config::Severity::Warning => out.warn(d.span, d.message.clone()),
            };
            nd.help = d.help.clone();
        }
    }
    out
}
