//! Plugin interfaces and the built-in plugins, one module per Fluentd
//! `@type` (`in_sample`, `out_stdout`, `filter_record_transformer`,
//! `formatter_json`, …).
//!
//! The lifecycle is Fluentd's with a hard line between *configure* and
//! *start*: a factory reads its section into a typed params struct and
//! builds the plugin without touching sockets, files or threads, so
//! `--dry-run` runs the real configure code; work begins in
//! [`Input::run`] / [`Output::start`].
//!
//! * [`Input`]: an async task that emits event streams through an [`Emitter`]
//!   until shutdown.
//! * [`Filter`]: a synchronous stream → stream function, run on the emitting task.
//! * [`Output`]: takes streams synchronously (`emit`), owning any buffering
//!   and background flushing it needs.
//! * [`Formatter`]: renders one event into bytes (`<format>`).

pub mod filter_grep;
pub mod filter_parser;
pub mod filter_record_transformer;
pub mod filter_stdout;
pub mod formatter;
pub mod formatter_csv;
pub mod formatter_hash;
pub mod formatter_json;
pub mod formatter_ltsv;
pub mod formatter_msgpack;
pub mod formatter_out_file;
pub mod formatter_single_value;
pub mod formatter_stdout;
pub mod formatter_tsv;
pub mod in_forward;
pub mod in_sample;
pub mod in_tail;
pub mod inject;
pub mod out_copy;
pub mod out_file;
pub mod out_forward;
pub mod out_null;
pub mod out_relabel;
pub mod out_roundrobin;
pub mod out_secondary_file;
pub mod out_stdout;
pub mod parser;
pub mod parser_apache;
pub mod parser_apache2;
pub mod parser_apache_error;
pub mod parser_csv;
pub mod parser_json;
pub mod parser_ltsv;
pub mod parser_msgpack;
pub mod parser_multiline;
pub mod parser_nginx;
pub mod parser_none;
pub mod parser_regexp;
pub mod parser_syslog;
pub mod parser_tsv;
pub mod record_accessor;
pub mod registry;
pub mod tls;

use crate::log::Logger;
use crate::router::{LabelId, Router};
use sluice_config::{ConfigureCx, Element};
use sluice_event::{EventStream, EventTime, RecordRef};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

/// A boxed future, for object-safe async plugin methods.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A startup check: `Err` stops sluice before any input runs.
pub type PreflightFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Why an emit was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The destination is full; the input should wait and retry (backpressure).
    #[error("buffer overflow: {0}")]
    Overflow(String),
    /// The destination failed.
    #[error("{0}")]
    Failed(String),
}

impl EmitError {
    /// True if waiting and retrying can succeed.
    pub fn is_backpressure(&self) -> bool {
        matches!(self, EmitError::Overflow(_))
    }
}

/// Identity of a configured plugin.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// `@id`, or a generated `object:N`.
    pub id: String,
    /// True if the user gave an `@id`.
    pub has_id: bool,
    /// The `@type`.
    pub type_name: String,
    /// The plugin's logger (its `@id` header and `@log_level`).
    pub log: Logger,
}

/// Everything a running engine offers plugins while they are configured.
pub struct EngineEnv {
    /// This worker's id (`#{worker_id}`).
    pub worker_id: u32,
    /// `<system> workers`.
    pub workers: u32,
    /// The host name (`Socket.gethostname`).
    pub hostname: String,
    /// The worker's logger.
    pub log: Logger,
    /// The router being built (upgradable once the engine is running).
    pub router: Weak<Router>,
    /// True under `--dry-run`.
    pub dry_run: bool,
    /// `<system> root_dir`.
    pub root_dir: Option<String>,
    /// `<system> file_permission` (octal).
    pub file_permission: Option<String>,
    /// `<system> dir_permission` (octal).
    pub dir_permission: Option<String>,
}

/// The configure-time context of one plugin.
pub struct BuildCx<'a, 'd> {
    /// Diagnostics and section path.
    pub cfg: &'a mut ConfigureCx<'d>,
    /// The engine.
    pub env: &'a EngineEnv,
    /// The plugin being built.
    pub info: PluginInfo,
    /// The label named by the plugin's `@label`, resolved.
    pub label: Option<LabelId>,
}

/// Sends event streams into the router.
#[derive(Clone)]
pub struct Emitter {
    router: Arc<Router>,
    label: LabelId,
}

impl Emitter {
    /// An emitter into `label`.
    pub fn new(router: Arc<Router>, label: LabelId) -> Self {
        Emitter { router, label }
    }

    /// Route a stream (filters, then the first matching output).
    ///
    /// # Errors
    /// [`EmitError::Overflow`] when the destination pushes back; other
    /// failures when no `@ERROR` label took the events.
    pub fn emit(&self, tag: &str, es: EventStream) -> Result<(), EmitError> {
        self.router.emit(self.label, tag, es)
    }

    /// The router.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }
}

/// A shutdown signal: resolves once shutdown begins.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the sender that fires it.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Shutdown) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// True once shutdown has begun.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Wait for shutdown.
    pub async fn wait(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// What a running input gets.
pub struct InputContext {
    /// Where to send events.
    pub emitter: Emitter,
    /// Fires when the input must stop.
    pub shutdown: Shutdown,
    /// The input's logger.
    pub log: Logger,
}

/// A source of events.
pub trait Input: Send + 'static {
    /// Run until `cx.shutdown` fires; every event emitted before returning
    /// has reached its output.
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture;
}

/// What a filter can do besides returning events.
pub struct FilterCx<'a> {
    /// The router (for error events).
    pub router: &'a Router,
    /// The filter's logger.
    pub log: &'a Logger,
}

impl FilterCx<'_> {
    /// Send a record the filter rejected to `@ERROR` (or log it).
    pub fn error_event(&self, tag: &str, time: EventTime, record: RecordRef<'_>, error: &str) {
        self.router.emit_error_event(tag, time, record, error, self.log);
    }
}

/// A synchronous stream transformation.
pub trait Filter: Send + Sync + 'static {
    /// Transform `es`; events may be changed, dropped or passed through.
    fn filter(&self, tag: &str, es: EventStream, cx: &FilterCx<'_>) -> EventStream;
}

/// What a starting output gets.
pub struct StartCx {
    /// Fires when the output must stop.
    pub shutdown: Shutdown,
}

/// A destination for events.
pub trait Output: Send + Sync + 'static {
    /// Accept a stream (write it, or buffer it).
    ///
    /// # Errors
    /// Overflow (backpressure) or failure.
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError>;

    /// Checks that must pass before sluice runs (e.g. out_forward's
    /// `verify_connection_at_startup`). Called before `start`.
    fn preflight(&self) -> PreflightFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    /// Begin background work (flush tasks). Called before any input runs.
    fn start(&self, _cx: &StartCx) {}

    /// Flush and stop; called after every input has stopped.
    fn shutdown(&self) -> BoxFuture {
        Box::pin(async {})
    }
}

/// Renders one event (`<format>`).
pub trait Formatter: Send + Sync + 'static {
    /// Append the rendering of one event.
    fn format(&self, tag: &str, time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>);

    /// Render the record starting at `raw[0]` (its end not yet known) and
    /// return its length, for formatters that walk the whole record anyway;
    /// `None` if the formatter cannot (the caller then finds the end and
    /// calls [`Formatter::format`]). Malformed bytes give `Some(Err)`.
    fn format_walk(&self, _tag: &str, _time: EventTime, _raw: &[u8], _out: &mut Vec<u8>) -> Option<Result<usize, ()>> {
        None
    }
}

/// A configured output with its identity.
pub struct OutputInstance {
    /// Identity.
    pub info: PluginInfo,
    /// The plugin.
    pub output: Box<dyn Output>,
}

/// A configured filter with its identity.
pub struct FilterInstance {
    /// Identity.
    pub info: PluginInfo,
    /// The plugin.
    pub filter: Box<dyn Filter>,
}

/// A configured input with its identity and target label.
pub struct InputInstance {
    /// Identity.
    pub info: PluginInfo,
    /// The plugin.
    pub input: Box<dyn Input>,
    /// Where its events go.
    pub label: LabelId,
}

/// Host name as `Socket.gethostname` returns it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY-free: libc::gethostname writes at most buf.len() bytes.
    let n = {
        #[allow(unsafe_code)]
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and
        // gethostname writes at most that many, NUL-terminated when room allows.
        unsafe {
            libc::gethostname(buf.as_mut_ptr().cast(), buf.len())
        }
    };
    if n != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Build an output nested in another (`<store>` of copy and roundrobin):
/// its own `@type`, `@id`, `@log_level`, legacy parameters and section path.
pub fn build_nested_output(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<OutputInstance> {
    let Some(ty) = el.get("@type").or_else(|| el.get("type")).map(String::from) else {
        cx.cfg.error(el.span, format!("Missing '@type' parameter in <{}> section", el.name));
        return None;
    };
    let Some(def) = registry::output(&ty) else {
        let span = el.param("@type").or_else(|| el.param("type")).map_or(el.span, |p| p.value_span);
        let names = registry::registry().outputs.iter().map(|d| d.name);
        let d = cx.cfg.error(span, format!("Unknown output plugin '{ty}'"));
        if let Some(h) = sluice_config::diag::did_you_mean(&ty, names) {
            d.help(format!("did you mean `{h}`?"));
        }
        return None;
    };
    let id = el.get("@id").map(String::from);
    let level = el.get("@log_level").and_then(crate::log::Level::from_name);
    let log = cx.env.log.for_plugin(id.as_deref(), level);
    let info = PluginInfo {
        id: id.clone().unwrap_or_else(|| format!("{}/{}", cx.info.id, el.name)),
        has_id: id.is_some(),
        type_name: ty.clone(),
        log,
    };
    let mut el = el.clone();
    let what = format!("<{}> plugin '{ty}'", el.name);
    crate::compat::convert(&mut el, (def.spec)(), &what, cx.cfg.diags);
    cx.cfg.path.push(el.display_name());
    let saved = std::mem::replace(&mut cx.info, info.clone());
    let out = (def.build)(&el, cx);
    cx.info = saved;
    cx.cfg.path.pop();
    Some(OutputInstance { info, output: out? })
}

/// Read `el` as `P`, with the plugin's section path already on `cx`.
pub fn read_params<P: sluice_config::Params>(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<P> {
    P::from_element(el, cx.cfg)
}
