//! sluice's own log, in Fluentd's shape.
//!
//! ```text
//! 2026-11-22 10:00:00 +0000 [info]: #0 [out_es] message key="value" n=1
//! └─ time (local, <system><log> time_format)  └─ worker └─ @id  └─ Ruby-inspected pairs
//! ```
//!
//! Each plugin gets a [`Logger`] carrying its `@id` header and its own
//! `@log_level`. Lines go to one device (stdout, or the `-o` file), which
//! the `stdout` output also writes through, as in Fluentd.
//!
//! While the engine runs, lines also become events tagged `fluent.<level>`
//! (record: the pairs plus `message`), delivered by one dedicated thread to
//! `<label @FLUENT_LOG>` or a top-level `<match fluent.**>`. Lines written on
//! that thread never become events, so a log pipeline that logs cannot feed
//! itself; the queue is bounded and drops (counting) rather than blocking.

use sluice_event::strftime::{Strftime, Zone};
use sluice_event::{EventTime, msgpack, rubyfmt};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// Severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sluice_config::ParamEnum)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// Parse a level name.
    pub fn from_name(s: &str) -> Option<Level> {
        <Level as sluice_config::ParamValue>::parse(s).ok()
    }

    /// Move `steps` levels (negative = more verbose), clamped to trace..=error
    /// as Fluentd's `-v`/`-q` do.
    pub fn shift(self, steps: i32) -> Level {
        let i = (self as i32 + steps).clamp(0, Level::Error as i32);
        [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error][i as usize]
    }

    /// All levels.
    pub const ALL: [Level; 6] = [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error, Level::Fatal];
}

/// A value in a `key=value` pair, rendered as Ruby's `inspect`.
#[derive(Debug, Clone, PartialEq)]
pub enum Kv {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// Printed as is, stored as a string (times, symbols, inspected records).
    Raw(String),
}

impl From<&str> for Kv {
    fn from(s: &str) -> Self {
        Kv::Str(s.to_string())
    }
}
impl From<String> for Kv {
    fn from(s: String) -> Self {
        Kv::Str(s)
    }
}
impl From<&String> for Kv {
    fn from(s: &String) -> Self {
        Kv::Str(s.clone())
    }
}
macro_rules! kv_int {
    ($($t:ty),*) => {$(impl From<$t> for Kv { fn from(v: $t) -> Self { Kv::Int(v as i64) } })*};
}
kv_int!(i32, i64, u32, u64, usize, u16);
impl From<f64> for Kv {
    fn from(v: f64) -> Self {
        Kv::Float(v)
    }
}
impl From<bool> for Kv {
    fn from(v: bool) -> Self {
        Kv::Bool(v)
    }
}
impl<T: Into<Kv>> From<Option<T>> for Kv {
    fn from(v: Option<T>) -> Self {
        v.map_or(Kv::Nil, Into::into)
    }
}

impl Kv {
    fn write_inspect(&self, out: &mut Vec<u8>) {
        match self {
            Kv::Str(s) => rubyfmt::write_str_inspect(out, s.as_bytes()),
            Kv::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Kv::Float(f) => rubyfmt::write_float(out, *f),
            Kv::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Kv::Nil => out.extend_from_slice(b"nil"),
            Kv::Raw(s) => out.extend_from_slice(s.as_bytes()),
        }
    }

    fn write_msgpack(&self, out: &mut Vec<u8>) {
        match self {
            Kv::Str(s) | Kv::Raw(s) => msgpack::write_str(out, s.as_bytes()),
            Kv::Int(i) => msgpack::write_int(out, *i),
            Kv::Float(f) => msgpack::write_f64(out, *f),
            Kv::Bool(b) => msgpack::write_bool(out, *b),
            Kv::Nil => msgpack::write_nil(out),
        }
    }
}

/// Format of log lines (`<system><log> format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One own-log event waiting for delivery.
#[derive(Debug, Clone)]
pub struct LogEvent {
    /// `fluent.<level>`.
    pub tag: &'static str,
    /// When it was logged.
    pub time: EventTime,
    /// msgpack map: the pairs plus `message`.
    pub record: Vec<u8>,
}

const EVENT_TAGS: [&str; 6] =
    ["fluent.trace", "fluent.debug", "fluent.info", "fluent.warn", "fluent.error", "fluent.fatal"];

/// Tag of log events at `level`.
pub fn event_tag(level: Level) -> &'static str {
    EVENT_TAGS[level as usize]
}

/// Capacity of the own-log event queue.
pub const EVENT_QUEUE: usize = 8192;

thread_local! {
    static NO_EVENTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Mark the current thread as the log-event delivery thread: lines logged
/// here never become events.
pub fn suppress_events_on_this_thread() {
    NO_EVENTS.with(|c| c.set(true));
}

/// The shared log device and event queue.
pub struct LogSink {
    out: Mutex<Box<dyn Write + Send>>,
    time_fmt: Strftime,
    zone: Zone,
    format: LogFormat,
    events: Mutex<Option<mpsc::SyncSender<LogEvent>>>,
    events_on: AtomicBool,
    /// Log events dropped because the queue was full.
    pub dropped_events: AtomicU64,
}

impl LogSink {
    /// A sink writing to `out`.
    pub fn new(out: Box<dyn Write + Send>, format: LogFormat, time_format: &str) -> Arc<LogSink> {
        Arc::new(LogSink {
            out: Mutex::new(out),
            time_fmt: Strftime::new(time_format),
            zone: Zone::local(),
            format,
            events: Mutex::new(None),
            events_on: AtomicBool::new(false),
            dropped_events: AtomicU64::new(0),
        })
    }

    /// A sink writing to stdout.
    pub fn stdout() -> Arc<LogSink> {
        Self::new(Box::new(std::io::stdout()), LogFormat::Text, "%Y-%m-%d %H:%M:%S %z")
    }

    /// Write bytes to the device as they are (the `stdout` output's path).
    pub fn write_raw(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// Connect the event queue; returns its receiving end.
    pub fn attach_events(&self) -> mpsc::Receiver<LogEvent> {
        let (tx, rx) = mpsc::sync_channel(EVENT_QUEUE);
        *self.events.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Start or stop turning lines into events.
    pub fn set_events(&self, on: bool) {
        self.events_on.store(on, Ordering::SeqCst);
    }

    /// Disconnect the queue (ends the delivery thread once it is drained).
    pub fn detach_events(&self) {
        self.set_events(false);
        *self.events.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A handle for writing log lines, with a level and an optional plugin header.
#[derive(Clone)]
pub struct Logger {
    sink: Arc<LogSink>,
    level: Level,
    header: Arc<str>,
    worker: Option<u32>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger").field("level", &self.level).field("header", &self.header).finish()
    }
}

impl Logger {
    /// A root logger.
    pub fn new(sink: Arc<LogSink>, level: Level) -> Logger {
        Logger { sink, level, header: Arc::from(""), worker: None }
    }

    /// The device.
    pub fn sink(&self) -> &Arc<LogSink> {
        &self.sink
    }

    /// The current level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Same device, another level.
    pub fn with_level(&self, level: Level) -> Logger {
        Logger { level, ..self.clone() }
    }

    /// Lines prefixed `#N ` (worker-scoped).
    pub fn for_worker(&self, id: u32) -> Logger {
        Logger { worker: Some(id), ..self.clone() }
    }

    /// A plugin's logger: `[id] ` header when the plugin has an `@id`, and
    /// its own `@log_level` if set.
    pub fn for_plugin(&self, id: Option<&str>, level: Option<Level>) -> Logger {
        Logger {
            header: Arc::from(id.map(|i| format!("[{i}] ")).unwrap_or_default()),
            level: level.unwrap_or(self.level),
            ..self.clone()
        }
    }

    /// True if lines at `level` are written.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.level
    }

    /// Write one line (if `level` is enabled) and queue it as an event.
    pub fn log(&self, level: Level, msg: &str, kv: &[(&str, Kv)]) {
        if !self.enabled(level) {
            return;
        }
        let mut message = Vec::with_capacity(msg.len() + 32);
        message.extend_from_slice(self.header.as_bytes());
        message.extend_from_slice(msg.as_bytes());
        for (k, v) in kv {
            message.push(b' ');
            message.extend_from_slice(k.as_bytes());
            message.push(b'=');
            v.write_inspect(&mut message);
        }
        let now = EventTime::now();
        let mut line = Vec::with_capacity(message.len() + 48);
        match self.sink.format {
            LogFormat::Text => {
                self.sink.time_fmt.format(&mut line, &self.sink.zone.tm(now), &self.sink.zone);
                line.extend_from_slice(b" [");
                line.extend_from_slice(level.as_str().as_bytes());
                line.extend_from_slice(b"]: ");
                if let Some(w) = self.worker {
                    line.push(b'#');
                    line.extend_from_slice(itoa::Buffer::new().format(w).as_bytes());
                    line.push(b' ');
                }
                line.extend_from_slice(&message);
                line.push(b'\n');
            }
            LogFormat::Json => {
                let mut t = Vec::new();
                self.sink.time_fmt.format(&mut t, &self.sink.zone.tm(now), &self.sink.zone);
                line.extend_from_slice(b"{\"time\":");
                sluice_event::json::write_json_str(&mut line, &t);
                line.extend_from_slice(b",\"level\":");
                sluice_event::json::write_json_str(&mut line, level.as_str().as_bytes());
                line.extend_from_slice(b",\"message\":");
                sluice_event::json::write_json_str(&mut line, &message);
                if let Some(w) = self.worker {
                    line.extend_from_slice(b",\"worker_id\":");
                    line.extend_from_slice(itoa::Buffer::new().format(w).as_bytes());
                }
                line.extend_from_slice(b"}\n");
            }
        }
        self.sink.write_raw(&line);
        if self.sink.events_on.load(Ordering::Relaxed) && !NO_EVENTS.with(|c| c.get()) {
            self.queue_event(level, now, kv, &message);
        }
    }

    fn queue_event(&self, level: Level, time: EventTime, kv: &[(&str, Kv)], message: &[u8]) {
        let guard = self.sink.events.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = guard.as_ref() else { return };
        let mut record = Vec::with_capacity(message.len() + 32);
        let has_worker = self.worker.is_some() && !kv.iter().any(|(k, _)| *k == "worker");
        msgpack::write_map_header(&mut record, kv.len() + 1 + usize::from(has_worker));
        if let (true, Some(w)) = (has_worker, self.worker) {
            msgpack::write_str(&mut record, b"worker");
            msgpack::write_uint(&mut record, u64::from(w));
        }
        for (k, v) in kv {
            msgpack::write_str(&mut record, k.as_bytes());
            v.write_msgpack(&mut record);
        }
        msgpack::write_str(&mut record, b"message");
        msgpack::write_str(&mut record, message);
        if tx.try_send(LogEvent { tag: event_tag(level), time, record }).is_err() {
            self.sink.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Write bytes to the device as they are.
    pub fn write_raw(&self, bytes: &[u8]) {
        self.sink.write_raw(bytes);
    }
}

/// `log_at!(logger, Level::Info, "msg", "key" => value, ...)`.
#[macro_export]
macro_rules! log_at {
    ($log:expr, $lvl:expr, $msg:expr $(, $k:expr => $v:expr)* $(,)?) => {{
        let l = &$log;
        if l.enabled($lvl) {
            l.log($lvl, &$msg, &[$(($k, $crate::log::Kv::from($v))),*]);
        }
    }};
}
/// Log at info.
#[macro_export]
macro_rules! info { ($log:expr, $($t:tt)*) => { $crate::log_at!($log, $crate::log::Level::Info, $($t)*) }; }
/// Log at warn.
#[macro_export]
macro_rules! warn { ($log:expr, $($t:tt)*) => { $crate::log_at!($log, $crate::log::Level::Warn, $($t)*) }; }
/// Log at error.
#[macro_export]
macro_rules! error { ($log:expr, $($t:tt)*) => { $crate::log_at!($log, $crate::log::Level::Error, $($t)*) }; }
/// Log at debug.
#[macro_export]
macro_rules! debug { ($log:expr, $($t:tt)*) => { $crate::log_at!($log, $crate::log::Level::Debug, $($t)*) }; }
/// Log at trace.
#[macro_export]
macro_rules! trace { ($log:expr, $($t:tt)*) => { $crate::log_at!($log, $crate::log::Level::Trace, $($t)*) }; }

/// A writer into a shared buffer (tests).
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shape_matches_fluentd() {
        let cap = Capture::default();
        let sink = LogSink::new(Box::new(cap.clone()), LogFormat::Text, "%Y-%m-%d %H:%M:%S %z");
        let log = Logger::new(sink, Level::Info).for_worker(0).for_plugin(Some("out_es"), None);
        info!(log, "listening port", "port" => 24224u16, "bind" => "0.0.0.0", "x" => Option::<&str>::None);
        debug!(log, "hidden");
        let text = cap.text();
        let (time, rest) = text.split_at(25);
        assert!(time.chars().nth(4) == Some('-') && time.ends_with(|c: char| c.is_ascii_digit()), "{time}");
        assert_eq!(rest, " [info]: #0 [out_es] listening port port=24224 bind=\"0.0.0.0\" x=nil\n");
    }

    #[test]
    fn events_carry_pairs_and_message_and_respect_suppression() {
        let sink = LogSink::new(Box::new(std::io::sink()), LogFormat::Text, "%Y");
        let rx = sink.attach_events();
        sink.set_events(true);
        let log = Logger::new(sink.clone(), Level::Info).for_worker(0);
        warn!(log, "slow", "n" => 3);
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.tag, "fluent.warn");
        let rec = sluice_event::RecordRef::new(&ev.record).unwrap();
        assert_eq!(rec.get_str("message"), Some(&b"slow n=3"[..]));
        assert!(rec.get("worker").is_some());
        std::thread::spawn(move || {
            suppress_events_on_this_thread();
            warn!(log, "from the delivery thread");
        })
        .join()
        .unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn levels_shift_like_v_and_q() {
        assert_eq!(Level::Info.shift(-1), Level::Debug);
        assert_eq!(Level::Info.shift(-5), Level::Trace);
        assert_eq!(Level::Info.shift(3), Level::Error);
    }
}
