//! Buffered outputs: the engine that owns buffering, flushing, retries, the
//! `<secondary>` and backups, so an output plugin only says how to write a
//! chunk and whether a failure is worth retrying ([`ChunkOutput`]).
//!
//! * `emit` formats events into chunks (msgpack entries are stored as they
//!   arrived) and returns at once; a full buffer refuses the stream
//!   ([`EmitError::Overflow`]) so the input pushes back.
//! * `flush_thread_count` tasks take queued chunks and write them. A failure
//!   puts the chunk back and steps the retry state ([`super::retry`]); after
//!   `retry_secondary_threshold` chunks go to `<secondary>`; when retries are
//!   exhausted, or a failure is unrecoverable, chunks are written to the
//!   backup directory — logged and counted, never silently dropped.
//! * Shutdown: with `flush_at_shutdown` every chunk is flushed; a memory
//!   chunk that still cannot be written is backed up, a file chunk stays on
//!   disk and is resumed on the next start.

use super::chunk::{self, Chunk, FileDir, unix_now};
use super::engine::{Buffer, BufferConfig, Metrics, Mode, Payload, Refused};
use super::metadata::{ChunkKeys, Metadata, Timekey, hex};
use super::params::{BufferParams, BufferType, FlushMode};
use super::retry::{RetryConfig, RetryState};
use crate::log::{Kv, Logger};
use crate::plugin::inject::Inject;
use crate::plugin::{BoxFuture, BuildCx, EmitError, Formatter, Output, StartCx};
use crate::router::Router;
use sluice_config::{Element, Params};
use sluice_event::{EventStream, RecordRef};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Why a chunk write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Worth retrying (network down, 5xx, timeout).
    Retryable(String),
    /// Will never succeed (bad data, 4xx): secondary or backup right away.
    Unrecoverable(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Retryable(m) | WriteError::Unrecoverable(m) => f.write_str(m),
        }
    }
}

/// A boxed chunk write.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send + 'a>>;

/// A chunk handed to an output.
pub struct ChunkView<'a> {
    /// Chunk id.
    pub id: [u8; 16],
    /// Chunk key values (for placeholders).
    pub meta: &'a Metadata,
    /// The events as stored (decompressed).
    pub data: &'a [u8],
    /// Number of events.
    pub records: u64,
    /// `msgpack` if `data` is `[time, record]` entries, else the formatter's name.
    pub format: &'a str,
    /// The zone timekeys are cut in (for strftime placeholders).
    pub timekey_zone: Option<&'a sluice_event::Zone>,
}

impl ChunkView<'_> {
    /// The events, when the chunk holds msgpack entries.
    pub fn events(&self) -> Option<EventStream> {
        (self.format == "msgpack")
            .then(|| EventStream::from_bytes(bytes::Bytes::copy_from_slice(self.data)).ok())
            .flatten()
    }

    /// The chunk id in hex.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
}

/// An output that writes whole chunks.
pub trait ChunkOutput: Send + Sync + 'static {
    /// Write one chunk.
    fn write<'a>(&'a self, chunk: &'a ChunkView<'a>) -> WriteFuture<'a>;
}

/// How events are stored in an output's chunks.
pub enum EventFormat {
    /// msgpack `[time, record]` entries, as they arrive.
    Msgpack,
    /// The output's `<format>` (after `<inject>`).
    Formatted {
        /// Formatter name (stored in chunk metadata).
        name: String,
        /// The formatter.
        formatter: Box<dyn Formatter>,
        /// Fields injected first.
        inject: Box<Inject>,
    },
}

impl EventFormat {
    fn name(&self) -> &str {
        match self {
            EventFormat::Msgpack => "msgpack",
            EventFormat::Formatted { name, .. } => name,
        }
    }
}

/// Defaults an output sets for its `<buffer>` (Fluentd's `config_set_default`).
#[derive(Debug, Clone, Copy)]
pub struct BufferDefaults {
    /// Default chunk keys.
    pub chunk_keys: &'static str,
    /// Default buffer type.
    pub buffer_type: &'static str,
    /// Default timekey.
    pub timekey: Option<&'static str>,
    /// Default of flush_at_shutdown (else by buffer type).
    pub flush_at_shutdown: Option<bool>,
    /// Default chunk_limit_size (else by buffer type).
    pub chunk_limit_size: Option<&'static str>,
}

impl BufferDefaults {
    /// Memory buffer, `tag` chunk key (stdout, null, forward).
    pub const TAG: BufferDefaults = BufferDefaults {
        chunk_keys: "tag",
        buffer_type: "memory",
        timekey: None,
        flush_at_shutdown: None,
        chunk_limit_size: None,
    };

    /// The `(param, default)` overrides for [`sluice_config::ConfigureCx`].
    pub fn overrides(&self) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![("chunk_keys", self.chunk_keys), ("@type", self.buffer_type)];
        if let Some(t) = self.timekey {
            v.push(("timekey", t));
        }
        if let Some(c) = self.chunk_limit_size {
            v.push(("chunk_limit_size", c));
        }
        v
    }
}

struct Shared {
    buffer: Buffer,
    format: EventFormat,
    /// Formatted output without `tag` among the chunk keys: each stored entry
    /// carries its tag (`[time, record, tag]`) for the flush-time formatter.
    tag_in_entries: bool,
    primary: Arc<dyn ChunkOutput>,
    secondary: Option<Arc<dyn ChunkOutput>>,
    retry_cfg: RetryConfig,
    retry: Mutex<Option<RetryState>>,
    flush_threads: u32,
    thread_interval: f64,
    burst_interval: f64,
    flush_at_shutdown: bool,
    slow_flush_threshold: f64,
    backup_dir: PathBuf,
    disable_backup: bool,
    log: Logger,
    router: Weak<Router>,
    notify: tokio::sync::Notify,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stopping: AtomicBool,
    last_overflow_warn: AtomicU64,
    suppressed_overflow: AtomicU64,
    /// Flush buffers kept between flushes (one per flush thread), so each
    /// flush does not allocate and fault in a fresh multi-megabyte buffer.
    bufs: Mutex<Vec<Vec<u8>>>,
}

/// A flush buffer that goes back to its pool when dropped.
struct Pooled<'a> {
    buf: Vec<u8>,
    pool: &'a Shared,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        // Only rendered text is built in pooled buffers; raw chunk reads
        // (msgpack outputs) are not, so keeping them would only hold memory.
        if !matches!(self.pool.format, EventFormat::Formatted { .. }) {
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        // Very large buffers (a chunk far over its limit) are not kept.
        if buf.capacity() <= (self.pool.buffer.cfg.chunk_limit as usize).saturating_mul(4).max(1 << 20) {
            buf.clear();
            let mut pool = self.pool.bufs.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() <= self.pool.flush_threads as usize {
                pool.push(buf);
            }
        }
    }
}

/// A buffered output: the engine around a [`ChunkOutput`].
pub struct BufferedOutput {
    s: Arc<Shared>,
}

impl BufferedOutput {
    /// The buffer (tests, metrics).
    pub fn buffer(&self) -> &Buffer {
        &self.s.buffer
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.s.buffer.metrics
    }

    /// Where chunks that cannot be written are kept.
    pub fn backup_dir(&self) -> &std::path::Path {
        &self.s.backup_dir
    }
}

/// Read the `<buffer>` section with an output's defaults, check it, and
/// build the buffered engine around `primary` (with its `<secondary>`).
pub fn build(
    buffer_el: Option<&Element>,
    secondary_el: Option<&Element>,
    defaults: BufferDefaults,
    format: EventFormat,
    primary: Arc<dyn ChunkOutput>,
    cx: &mut BuildCx<'_, '_>,
) -> Option<Box<dyn Output>> {
    let secondary = match secondary_el {
        Some(s) => Some(build_secondary(s, &format, cx)?),
        None => None,
    };
    build_parts(buffer_el, defaults, format, primary, secondary, cx).map(|b| Box::new(b) as Box<dyn Output>)
}

/// [`build`] with the secondary already built.
pub fn build_parts(
    buffer_el: Option<&Element>,
    defaults: BufferDefaults,
    format: EventFormat,
    primary: Arc<dyn ChunkOutput>,
    secondary: Option<Arc<dyn ChunkOutput>>,
    cx: &mut BuildCx<'_, '_>,
) -> Option<BufferedOutput> {
    let empty = Element::new("buffer", "");
    let el = buffer_el.unwrap_or(&empty);
    cx.cfg.path.push(el.display_name());
    let saved = std::mem::replace(&mut cx.cfg.defaults, defaults.overrides());
    let p = BufferParams::from_element(el, cx.cfg);
    cx.cfg.defaults = saved;
    cx.cfg.path.pop();
    let p = p?;
    if !super::validate(&p, el, cx) {
        return None;
    }
    let (cfg, keys, dir, flush_at_shutdown) = resolve(&p, el, defaults, &format, cx)?;
    let worker_dir = format!("worker{}", cx.env.worker_id);
    // Fluentd's layout: {root_dir | $FLUENT_BACKUP_DIR | /tmp/fluent}/backup/worker{N}/{plugin_id}/
    let base = cx
        .env
        .root_dir
        .clone()
        .or_else(|| std::env::var("FLUENT_BACKUP_DIR").ok())
        .unwrap_or_else(|| "/tmp/fluent".into());
    let safe_id: String = cx.info.id.chars().map(|c| if " \"/\\:;|*<>?".contains(c) { '_' } else { c }).collect();
    let backup_dir = PathBuf::from(base).join("backup").join(&worker_dir).join(safe_id);
    let tag_in_entries = matches!(format, EventFormat::Formatted { .. }) && !keys.tag;
    let s = Shared {
        buffer: Buffer::new(cfg, keys, dir),
        format,
        tag_in_entries,
        primary,
        retry_cfg: RetryConfig::from_params(&p, secondary.is_some()),
        secondary,
        retry: Mutex::new(None),
        flush_threads: p.flush_thread_count.max(1),
        thread_interval: p.flush_thread_interval.max(0.001),
        burst_interval: p.flush_thread_burst_interval.max(0.0),
        flush_at_shutdown,
        slow_flush_threshold: 20.0,
        backup_dir,
        disable_backup: p.disable_chunk_backup,
        log: cx.info.log.clone(),
        router: cx.env.router.clone(),
        notify: tokio::sync::Notify::new(),
        tasks: Mutex::new(Vec::new()),
        stopping: AtomicBool::new(false),
        last_overflow_warn: AtomicU64::new(0),
        suppressed_overflow: AtomicU64::new(0),
        bufs: Mutex::new(Vec::new()),
    };
    Some(BufferedOutput { s: Arc::new(s) })
}

type Resolved = (BufferConfig, ChunkKeys, Option<FileDir>, bool);

fn resolve(
    p: &BufferParams,
    el: &Element,
    defaults: BufferDefaults,
    format: &EventFormat,
    cx: &mut BuildCx<'_, '_>,
) -> Option<Resolved> {
    cx.cfg.path.push(el.display_name());
    let r = resolve_in(p, el, defaults, format, cx);
    cx.cfg.path.pop();
    r
}

fn resolve_in(
    p: &BufferParams,
    el: &Element,
    defaults: BufferDefaults,
    format: &EventFormat,
    cx: &mut BuildCx<'_, '_>,
) -> Option<Resolved> {
    let file = p.r#type != BufferType::Memory;
    let zone = if p.timekey_use_utc {
        sluice_event::Zone::Utc
    } else {
        match p.timekey_zone.as_deref().map(sluice_event::Zone::parse) {
            Some(Ok(z)) => z,
            Some(Err(e)) => {
                cx.cfg.error(el.param("timekey_zone").map_or(el.span, |x| x.value_span), e);
                return None;
            }
            None => sluice_event::Zone::local(),
        }
    };
    let timekey = p.timekey.map(|t| Timekey { size: (t.secs() as i64).max(1), zone });
    let keys = match ChunkKeys::parse(&p.chunk_keys, timekey) {
        Ok(k) => k,
        Err(e) => {
            cx.cfg.error(if el.arg.is_empty() { el.span } else { el.arg_span }, e);
            return None;
        }
    };
    let chunk_limit = p.chunk_limit_size.map(|s| s.bytes()).unwrap_or(if file { 256 << 20 } else { 8 << 20 });
    let mut total_limit = p.total_limit_size.map(|s| s.bytes()).unwrap_or(if file { 64 << 30 } else { 512 << 20 });
    if let Some(q) = p.queue_limit_length {
        total_limit = q.saturating_mul(chunk_limit);
    }
    if chunk_limit > total_limit {
        cx.cfg.error(
            el.span,
            format!("chunk_limit_size ({chunk_limit}) is larger than total_limit_size ({total_limit})"),
        );
        return None;
    }
    let mode = match p.flush_mode {
        FlushMode::Default if keys.time.is_some() => Mode::Lazy,
        FlushMode::Default => Mode::Interval,
        FlushMode::Lazy => Mode::Lazy,
        FlushMode::Interval => Mode::Interval,
        FlushMode::Immediate => Mode::Immediate,
    };
    if p.flush_mode != FlushMode::Interval && p.flush_mode != FlushMode::Default && el.has("flush_interval") {
        cx.cfg.error(
            el.param("flush_interval").map_or(el.span, |x| x.key_span),
            format!(
                "'flush_interval' can't be specified when 'flush_mode' is not 'interval' explicitly: '{}'",
                p.flush_mode
            ),
        );
        return None;
    }
    if p.flush_mode == FlushMode::Default && mode == Mode::Lazy && el.has("flush_interval") {
        cx.cfg.warn(
            el.param("flush_interval").map_or(el.span, |x| x.key_span),
            "'flush_interval' is ignored because default 'flush_mode' is not 'interval': 'lazy'",
        );
    }
    let dir = if file {
        let worker = (cx.env.workers > 1).then(|| format!("worker{}", cx.env.worker_id));
        let (dir, prefix, suffix) = match &p.path {
            Some(path) => {
                let (d, pre, suf) = match path.rsplit_once('/') {
                    Some((d, name)) if name.contains('*') => {
                        let (a, b) = name.split_once('*').unwrap_or((name, ""));
                        (PathBuf::from(d), a.trim_end_matches('.').to_string(), b.to_string())
                    }
                    _ => (PathBuf::from(path), "buffer".to_string(), p.path_suffix.clone()),
                };
                let d = match &worker {
                    Some(w) => d.join(w),
                    None => d,
                };
                (d, pre, if suf.is_empty() { p.path_suffix.clone() } else { suf })
            }
            None => match (&cx.env.root_dir, cx.info.has_id) {
                (Some(root), true) => (
                    PathBuf::from(root).join(format!("worker{}", cx.env.worker_id)).join(&cx.info.id).join("buffer"),
                    "buffer".to_string(),
                    p.path_suffix.clone(),
                ),
                _ => {
                    cx.cfg.error(el.span, "'path' parameter is required for a file buffer (or set <system> root_dir and the plugin's @id)");
                    return None;
                }
            },
        };
        let file_mode = chunk::parse_mode(cx.env.file_permission.as_deref(), 0o600);
        let dir_mode = chunk::parse_mode(cx.env.dir_permission.as_deref(), 0o700);
        Some(FileDir { dir, prefix, suffix, fsync: p.fsync, file_mode, dir_mode })
    } else {
        None
    };
    let flush_at_shutdown = p.flush_at_shutdown.or(defaults.flush_at_shutdown).unwrap_or(!file);
    let cfg = BufferConfig {
        chunk_limit,
        records_limit: p.chunk_limit_records.unwrap_or(u64::MAX),
        total_limit,
        full_threshold: p.chunk_full_threshold,
        compress: p.compress,
        overflow: p.overflow_action,
        mode,
        flush_interval: p.flush_interval.secs(),
        timekey: keys.time.as_ref().map(|t| t.size),
        timekey_wait: p.timekey_wait.secs(),
        queued_chunks_limit: p.queued_chunks_limit_size.map_or(p.flush_thread_count.max(1) as usize, |q| q as usize),
        format: format.name().to_string(),
    };
    Some((cfg, keys, dir, flush_at_shutdown))
}

/// Build a `<secondary>`: an output that can take the primary's chunks.
pub fn build_secondary(el: &Element, format: &EventFormat, cx: &mut BuildCx<'_, '_>) -> Option<Arc<dyn ChunkOutput>> {
    if el.elements.iter().any(|e| e.name == "buffer") {
        cx.cfg.error(el.span, "<secondary> section cannot have <buffer> section");
        return None;
    }
    let Some(ty) = el.type_name() else {
        cx.cfg.error(el.span, "Missing '@type' parameter on <secondary> directive");
        return None;
    };
    let Some(def) = crate::plugin::registry::output(ty) else {
        cx.cfg.error(
            el.param("@type").map_or(el.span, |p| p.value_span),
            format!("Unknown output plugin '{ty}' in <secondary>"),
        );
        return None;
    };
    cx.cfg.path.push(el.display_name());
    let r = match def.chunk {
        Some(chunk_build) => chunk_build(el, cx),
        None => {
            if !matches!(format, EventFormat::Msgpack) {
                cx.cfg.warn(el.span, format!("the primary formats its chunks ({}); secondary '{ty}' gets the events only from msgpack chunks. Use secondary_file", format.name()));
            }
            (def.build)(el, cx).map(|o| Arc::new(EmitAdapter(o)) as Arc<dyn ChunkOutput>)
        }
    };
    cx.cfg.path.pop();
    r
}

/// Lets any output be a `<secondary>`: msgpack chunks are emitted to it as events.
struct EmitAdapter(Box<dyn Output>);

impl ChunkOutput for EmitAdapter {
    fn write<'a>(&'a self, chunk: &'a ChunkView<'a>) -> WriteFuture<'a> {
        Box::pin(async move {
            let Some(es) = chunk.events() else {
                return Err(WriteError::Unrecoverable(format!(
                    "this secondary cannot take chunks formatted as {}",
                    chunk.format
                )));
            };
            let tag = chunk.meta.tag.as_deref().unwrap_or("");
            self.0.emit(tag, &es).map_err(|e| WriteError::Retryable(e.to_string()))
        })
    }
}

impl Shared {
    /// Split a stream into payloads per chunk metadata, formatting events.
    fn payloads(&self, tag: &str, es: &EventStream) -> Vec<Payload> {
        let keys = &self.buffer.keys;
        // Chunks hold the msgpack entries as they arrived; formatting (for
        // outputs with a <format>) happens on the flush thread, so emitting
        // costs the input's thread no per-event work.
        if keys.per_stream() && !self.tag_in_entries {
            return vec![Payload {
                meta: keys.stream_metadata(tag),
                data: es.bytes().clone(),
                records: es.len() as u32,
                bounds: None,
            }];
        }
        if keys.per_stream()
            && (es.as_bytes().len() + tag.len() + 8) as u64 <= self.buffer.cfg.chunk_limit
            && es.len() as u64 <= self.buffer.cfg.records_limit
        {
            // The stream stays whole in one chunk: one `[tag]` marker entry
            // in front names the tag of the entries after it.
            let mut data = Vec::with_capacity(es.as_bytes().len() + tag.len() + 8);
            data.push(0x91);
            sluice_event::msgpack::write_str(&mut data, tag.as_bytes());
            data.extend_from_slice(es.as_bytes());
            return vec![Payload {
                meta: keys.stream_metadata(tag),
                data: bytes::Bytes::from(data),
                records: es.len() as u32,
                bounds: None,
            }];
        }
        let mut parts: Vec<(Metadata, Vec<u8>, Vec<usize>)> = Vec::new();
        for ev in es {
            let meta = if keys.per_stream() { keys.stream_metadata(tag) } else { keys.metadata(tag, &ev) };
            let idx = match parts.iter().position(|(m, ..)| *m == meta) {
                Some(i) => i,
                None => {
                    parts.push((meta, Vec::with_capacity(es.as_bytes().len()), Vec::new()));
                    parts.len() - 1
                }
            };
            let (_, data, bounds) = &mut parts[idx];
            if self.tag_in_entries {
                data.push(0x93);
                if ev.entry.first() == Some(&0x92) {
                    data.extend_from_slice(&ev.entry[1..]);
                } else {
                    ev.time.write_ext(data);
                    data.extend_from_slice(ev.record.as_bytes());
                }
                sluice_event::msgpack::write_str(data, tag.as_bytes());
            } else {
                data.extend_from_slice(ev.entry);
            }
            bounds.push(data.len());
        }
        parts
            .into_iter()
            .map(|(meta, data, bounds)| Payload {
                meta,
                records: bounds.len() as u32,
                data: bytes::Bytes::from(data),
                bounds: Some(bounds),
            })
            .collect()
    }

    fn warn_overflow(&self, msg: &str) {
        let now = unix_now() as u64;
        let last = self.last_overflow_warn.load(Ordering::Relaxed);
        if now >= last + 5
            && self.last_overflow_warn.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let suppressed = self.suppressed_overflow.swap(0, Ordering::Relaxed);
            crate::warn!(self.log, msg, "overflow_action" => self.buffer.cfg.overflow.as_str(), "suppressed" => suppressed);
        } else {
            self.suppressed_overflow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Write a chunk's events to the backup directory (unless disabled); log either way.
    fn backup(&self, c: &Chunk, why: &str) {
        Metrics::inc(&self.buffer.metrics.backup_count);
        let id = hex(&c.id);
        if self.disable_backup {
            crate::error!(self.log, "disable_chunk_backup is true: the chunk is dropped", "chunk_id" => id, "records" => c.records, "reason" => why);
            return;
        }
        let data = match c.read(self.buffer.cfg.chunk_limit.max(1) * 4) {
            Ok(d) => d,
            Err(e) => {
                // Unreadable: keep the file itself.
                if let Some(p) = c.path() {
                    let _ = chunk::create_dir_all_mode(&self.backup_dir, 0o700);
                    let to = self.backup_dir.join(p.file_name().unwrap_or_default());
                    if std::fs::rename(p, &to).is_ok() {
                        crate::warn!(self.log, "bad chunk is moved to", "path" => to.display().to_string(), "reason" => why);
                        return;
                    }
                }
                crate::error!(self.log, "cannot back up a chunk; it is lost", "chunk_id" => id, "records" => c.records, "error" => e.to_string());
                return;
            }
        };
        let to = self.backup_dir.join(format!("{id}.log"));
        let r = chunk::create_dir_all_mode(&self.backup_dir, 0o700).and_then(|()| std::fs::write(&to, &data));
        match r {
            Ok(()) => {
                chunk::set_mode(&to, 0o600);
                crate::warn!(self.log, "bad chunk is moved to", "path" => to.display().to_string(), "records" => c.records, "reason" => why);
            }
            Err(e) => {
                crate::error!(self.log, "cannot back up a chunk; it is lost", "chunk_id" => id, "records" => c.records, "error" => e.to_string());
            }
        }
    }

    /// Back up a chunk that will not be written, then forget it.
    fn give_up(&self, c: Chunk, why: &str) {
        self.backup(&c, why);
        self.buffer.purge(c);
    }

    /// The bytes an output is given for a chunk: the stored msgpack entries,
    /// or their rendering by the output's `<inject>` and `<format>`.
    ///
    /// # Errors
    /// If the stored entries are not a valid event stream.
    fn render(&self, c: &Chunk, data: Vec<u8>) -> Result<Vec<u8>, String> {
        if !matches!(self.format, EventFormat::Formatted { .. }) {
            return Ok(data);
        }
        self.render_segments(c, &[&data])
    }

    /// The formatted chunk straight from a memory chunk's blocks, without
    /// first copying them into one buffer. `None` when that does not apply
    /// (not formatted, a file chunk, compressed blocks) or a block does not
    /// parse on its own (the caller then reads and renders the usual way).
    fn render_from_blocks(&self, c: &Chunk) -> Option<Vec<u8>> {
        if !matches!(self.format, EventFormat::Formatted { .. }) {
            return None;
        }
        let blocks = c.plain_blocks()?;
        let segs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        self.render_segments(c, &segs).ok()
    }

    /// Format the entries in `segs` (each holding whole entries; a `[tag]`
    /// marker's tag carries on into later segments).
    fn render_segments(&self, c: &Chunk, segs: &[&[u8]]) -> Result<Vec<u8>, String> {
        use sluice_event::msgpack;
        let EventFormat::Formatted { formatter, inject, .. } = &self.format else {
            return Ok(segs.concat());
        };
        let mut chunk_tag = c.meta.tag.as_deref().unwrap_or("");
        let total: usize = segs.iter().map(|s| s.len()).sum();
        // Text is usually up to 1.5 times the msgpack size: one allocation,
        // reused from the pool when there is one.
        let mut out = self.bufs.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        out.reserve(total + total / 2 + 64);
        let mut index = 0;
        let bad = |index: usize, e: &dyn std::fmt::Display| format!("event {index}: {e}");
        for &data in segs {
            let mut at = 0;
            while at < data.len() {
                // `[time, record]`, `[time, record, tag]` when entries carry their
                // tag, or a `[tag]` marker for the entries that follow it.
                let (n, p) = msgpack::read_array_len(data, at).map_err(|e| bad(index, &e))?;
                if n == 1 {
                    let (t, e) = msgpack::read_str(data, p).map_err(|e| bad(index, &e))?;
                    chunk_tag = std::str::from_utf8(t).unwrap_or("");
                    at = e;
                    continue;
                }
                if !(n == 2 || n == 3) {
                    return Err(bad(index, &"entry is not [time, record(, tag)]"));
                }
                let (time, p) = sluice_event::EventTime::read(data, p).map_err(|e| bad(index, &e))?;
                // The entry's tag sits after the record: find it first when present.
                let walked = if n == 2 && !inject.enabled() {
                    formatter.format_walk(chunk_tag, time, &data[p..], &mut out)
                } else {
                    None
                };
                let end = match walked {
                    Some(Ok(len)) => p + len,
                    Some(Err(())) => return Err(bad(index, &"the record is not a msgpack map")),
                    None => {
                        let rend = msgpack::skip(data, p).map_err(|e| bad(index, &e))?;
                        let record = RecordRef::walked(&data[p..rend]).map_err(|e| bad(index, &e))?;
                        let (tag, end) = if n == 3 {
                            let (t, e) = msgpack::read_str(data, rend).map_err(|e| bad(index, &e))?;
                            (std::str::from_utf8(t).unwrap_or(""), e)
                        } else {
                            (chunk_tag, rend)
                        };
                        if inject.enabled() {
                            let rec = inject.apply(tag, time, record);
                            formatter.format(tag, time, RecordRef::new(&rec).unwrap_or(record), &mut out);
                        } else {
                            formatter.format(tag, time, record, &mut out);
                        }
                        end
                    }
                };
                at = end;
                index += 1;
            }
        }
        Ok(out)
    }

    async fn write_to(&self, out: &Arc<dyn ChunkOutput>, c: &Chunk, data: &[u8]) -> Result<(), WriteError> {
        let zone = self.buffer.keys.time.as_ref().map(|t| &t.zone);
        let view = ChunkView {
            id: c.id,
            meta: &c.meta,
            data,
            records: c.records,
            format: &self.buffer.cfg.format,
            timekey_zone: zone,
        };
        out.write(&view).await
    }

    /// Write one dequeued chunk; returns true if it left the buffer.
    async fn try_flush(&self, c: Chunk) -> bool {
        let now = unix_now();
        let to_secondary = self.secondary.is_some()
            && self.retry.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|r| r.secondary(now));
        let data = match self.render_from_blocks(&c) {
            Some(d) => Ok(d),
            None => match c.read(self.buffer.cfg.chunk_limit.saturating_mul(4).max(1 << 20)) {
                Ok(d) => self.render(&c, d),
                Err(e) => {
                    crate::error!(self.log, "a chunk cannot be read; moving it to the backup directory", "chunk_id" => hex(&c.id), "error" => e.to_string());
                    self.give_up(c, "unreadable chunk");
                    return true;
                }
            },
        };
        let data = match data.map(|buf| Pooled { buf, pool: self }) {
            Ok(d) => d,
            Err(e) => {
                crate::error!(self.log, "a chunk holds damaged events; moving it to the backup directory", "chunk_id" => hex(&c.id), "error" => e);
                self.give_up(c, "damaged events");
                return true;
            }
        };
        let target = if to_secondary { self.secondary.as_ref() } else { Some(&self.primary) };
        Metrics::inc(&self.buffer.metrics.write_count);
        if to_secondary {
            Metrics::inc(&self.buffer.metrics.write_secondary_count);
        }
        let t0 = std::time::Instant::now();
        let result = match target {
            Some(t) => self.write_to(t, &c, &data).await,
            None => Err(WriteError::Unrecoverable("no output".into())),
        };
        let elapsed = t0.elapsed().as_secs_f64();
        self.buffer.metrics.flush_time_count.fetch_add((elapsed * 1000.0) as u64, Ordering::Relaxed);
        if elapsed > self.slow_flush_threshold {
            Metrics::inc(&self.buffer.metrics.slow_flush_count);
            crate::warn!(self.log, "buffer flush took longer time than slow_flush_log_threshold:", "elapsed_time" => elapsed, "slow_flush_log_threshold" => self.slow_flush_threshold);
        }
        match result {
            Ok(()) => {
                if self.retry.lock().unwrap_or_else(|e| e.into_inner()).take().is_some() {
                    let msg = if to_secondary { "retry succeeded by secondary." } else { "retry succeeded." };
                    crate::warn!(self.log, msg, "chunk_id" => hex(&c.id));
                }
                self.buffer.purge(c);
                true
            }
            Err(WriteError::Unrecoverable(e)) => {
                let id = hex(&c.id);
                match (&self.secondary, to_secondary) {
                    (Some(sec), false) => {
                        crate::warn!(self.log, "got unrecoverable error in primary. Skip retry and flush chunk to secondary", "error" => e.clone(), "chunk_id" => id.as_str());
                        Metrics::inc(&self.buffer.metrics.write_secondary_count);
                        match self.write_to(sec, &c, &data).await {
                            Ok(()) => {
                                self.buffer.purge(c);
                                return true;
                            }
                            Err(e2) => {
                                crate::warn!(self.log, "got an error in secondary for unrecoverable error", "error" => e2.to_string())
                            }
                        }
                    }
                    (_, true) => {
                        crate::warn!(self.log, "got unrecoverable error in secondary.", "error" => e.clone(), "chunk_id" => id.as_str())
                    }
                    (None, _) => {
                        crate::warn!(self.log, "got unrecoverable error in primary and no secondary", "error" => e.clone(), "chunk_id" => id.as_str())
                    }
                }
                self.give_up(c, &format!("unrecoverable error: {e}"));
                true
            }
            Err(WriteError::Retryable(e)) => {
                let id = hex(&c.id);
                self.buffer.takeback(c);
                self.step_retry(&e, &id, to_secondary);
                false
            }
        }
    }

    fn step_retry(&self, error: &str, chunk_id: &str, secondary: bool) {
        Metrics::inc(&self.buffer.metrics.retry_count);
        let now = unix_now();
        let mut guard = self.retry.lock().unwrap_or_else(|e| e.into_inner());
        let r = match guard.as_mut() {
            None => guard.insert(RetryState::new(self.retry_cfg.clone(), now)),
            Some(r) => {
                let mut rnd = [0u8; 8];
                let _ = getrandom::fill(&mut rnd);
                let rand = (u64::from_le_bytes(rnd) >> 11) as f64 / (1u64 << 53) as f64;
                // A failure before the due time (another flush thread) does not count as a step.
                if now >= r.next_time() {
                    r.step(now, rand)
                } else {
                    r.recalc(now, rand)
                }
                r
            }
        };
        if r.limit() {
            let steps = r.steps;
            *guard = None;
            drop(guard);
            let chunks = self.buffer.take_queue();
            let records: u64 = chunks.iter().map(|c| c.records).sum();
            crate::error!(
                self.log,
                "Hit limit for retries. moving all chunks in the buffer queue to the backup directory.",
                "retry_times" => steps,
                "records" => records,
                "error" => error
            );
            for c in chunks {
                self.backup(&c, "retries exhausted");
                c.remove();
            }
            return;
        }
        let next = Kv::Raw(
            sluice_event::TimeFormatter::new("%Y-%m-%d %H:%M:%S %z", sluice_event::Zone::local())
                .format_string(sluice_event::EventTime::from_f64(r.next_time().round())),
        );
        let msg =
            if secondary { "failed to flush the buffer with secondary output." } else { "failed to flush the buffer." };
        crate::warn!(self.log, msg, "retry_times" => r.steps, "next_retry_time" => next, "chunk" => chunk_id, "error" => error);
    }

    /// Seconds until a flush task should look again.
    fn wait_after(&self, flushed: bool) -> f64 {
        let now = unix_now();
        if let Some(r) = self.retry.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return (r.next_time() - now).max(0.0);
        }
        if flushed && !self.buffer.queue_empty() { self.burst_interval } else { self.thread_interval }
    }

    async fn flush_loop(self: Arc<Self>, first: bool) {
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            if first && self.buffer.enqueue_due(unix_now()) > 0 {
                self.notify.notify_waiters();
            }
            let retry_wait = self
                .retry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|r| r.next_time() - unix_now())
                .filter(|w| *w > 0.0);
            let flushed = match retry_wait {
                Some(_) => false,
                None => match self.buffer.dequeue() {
                    Some(c) => {
                        self.try_flush(c).await;
                        true
                    }
                    None => false,
                },
            };
            let wait = if flushed && retry_wait.is_none() {
                self.wait_after(true)
            } else {
                retry_wait.unwrap_or(self.thread_interval).min(self.thread_interval)
            };
            if wait > 0.0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
                    _ = self.notify.notified(), if self.retry.lock().unwrap_or_else(|e| e.into_inner()).is_none() => {}
                }
            }
        }
    }

    /// Flush what is queued at shutdown, trying each chunk a few times.
    async fn drain(&self) {
        let mut attempts = 0;
        while let Some(c) = self.buffer.dequeue() {
            let now = unix_now();
            let to_secondary = self.secondary.is_some()
                && self.retry.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|r| r.secondary(now));
            let data = match self.render_from_blocks(&c) {
                Some(d) => Ok(d),
                None => match c.read(self.buffer.cfg.chunk_limit.saturating_mul(4).max(1 << 20)) {
                    Ok(d) => self.render(&c, d),
                    Err(_) => {
                        self.give_up(c, "unreadable chunk at shutdown");
                        continue;
                    }
                },
            };
            let data = match data.map(|buf| Pooled { buf, pool: self }) {
                Ok(d) => d,
                Err(_) => {
                    self.give_up(c, "damaged events at shutdown");
                    continue;
                }
            };
            let mut result = self
                .write_to(
                    if to_secondary { self.secondary.as_ref().unwrap_or(&self.primary) } else { &self.primary },
                    &c,
                    &data,
                )
                .await;
            if result.is_err()
                && let Some(sec) = &self.secondary
            {
                result = self.write_to(sec, &c, &data).await;
            }
            match result {
                Ok(()) => {
                    Metrics::inc(&self.buffer.metrics.write_count);
                    self.buffer.purge(c);
                    attempts = 0;
                }
                Err(e) => {
                    attempts += 1;
                    if attempts < 3 && matches!(e, WriteError::Retryable(_)) {
                        self.buffer.takeback(c);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    attempts = 0;
                    if self.buffer.dir.is_some() {
                        // A file chunk stays on disk and is resumed at the next start.
                        crate::warn!(self.log, "cannot flush a chunk at shutdown; it stays in the file buffer for the next start", "chunk_id" => hex(&c.id), "error" => e.to_string());
                        self.buffer.takeback(c);
                        return;
                    }
                    self.give_up(c, &format!("flush failed at shutdown: {e}"));
                }
            }
        }
    }
}

impl Output for BufferedOutput {
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError> {
        let s = &self.s;
        Metrics::inc(&s.buffer.metrics.emit_count);
        s.buffer.metrics.emit_records.fetch_add(es.len() as u64, Ordering::Relaxed);
        let payloads = s.payloads(tag, es);
        match s.buffer.write(payloads) {
            Ok(w) => {
                for c in w.dropped {
                    crate::warn!(s.log, "dropping oldest chunk to make space after buffer overflow", "chunk_id" => hex(&c.id), "records" => c.records);
                    c.remove();
                }
                if !w.rejected.is_empty() {
                    self.rejected(tag, &w.rejected);
                }
                if w.queued {
                    s.notify.notify_one();
                }
                Ok(())
            }
            Err(Refused::Full(m)) => {
                s.warn_overflow(&m);
                Err(EmitError::Overflow(m))
            }
            Err(Refused::Io(m)) => {
                crate::error!(s.log, "cannot write to the buffer", "error" => m.clone());
                Err(EmitError::Failed(m))
            }
        }
    }

    fn start(&self, _cx: &StartCx) {
        let s = &self.s;
        if let Some(dir) = &s.buffer.dir {
            let backup = s.backup_dir.clone();
            match chunk::recover(dir, &backup) {
                Ok(r) => {
                    for (p, cut, why) in &r.truncated {
                        crate::warn!(s.log, "cut a torn tail off a buffer chunk", "path" => p.display().to_string(), "bytes" => *cut, "reason" => why.as_str());
                    }
                    for (from, to, why) in &r.quarantined {
                        crate::warn!(s.log, "a corrupt buffer chunk was moved to the backup directory", "path" => from.display().to_string(), "moved_to" => to.display().to_string(), "reason" => why.as_str());
                    }
                    if !r.staged.is_empty() || !r.queued.is_empty() {
                        crate::info!(s.log, "resuming buffer chunks", "staged" => r.staged.len(), "queued" => r.queued.len());
                    }
                    s.buffer.restore(r);
                }
                Err(e) => {
                    crate::error!(s.log, "cannot read the buffer directory", "path" => dir.dir.display().to_string(), "error" => e.to_string())
                }
            }
        }
        let mut tasks = s.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..s.flush_threads {
            tasks.push(tokio::spawn(s.clone().flush_loop(i == 0)));
        }
    }

    fn shutdown(&self) -> BoxFuture {
        let s = self.s.clone();
        Box::pin(async move {
            s.stopping.store(true, Ordering::Release);
            s.notify.notify_waiters();
            let tasks: Vec<_> = std::mem::take(&mut *s.tasks.lock().unwrap_or_else(|e| e.into_inner()));
            for t in tasks {
                let _ = t.await;
            }
            if s.flush_at_shutdown {
                s.buffer.enqueue_all();
                s.drain().await;
            } else if s.buffer.dir.is_none() {
                // Memory chunks that will not be flushed would be lost: keep them.
                s.buffer.enqueue_all();
                for c in s.buffer.take_queue() {
                    s.backup(&c, "flush_at_shutdown is false");
                }
            }
        })
    }
}

impl BufferedOutput {
    /// Events too large for any chunk: to @ERROR (msgpack chunks) or logged.
    fn rejected(&self, tag: &str, rejected: &[Vec<u8>]) {
        let s = &self.s;
        for r in rejected {
            crate::error!(
                s.log,
                "an event is larger than chunk_limit_size; it is not buffered",
                "tag" => tag,
                "bytes" => r.len(),
                "chunk_limit_size" => s.buffer.cfg.chunk_limit
            );
            if let (EventFormat::Msgpack, Some(router)) = (&s.format, s.router.upgrade())
                && let Ok(es) = EventStream::from_bytes(bytes::Bytes::copy_from_slice(r))
                && let Some(ev) = es.iter().next()
            {
                router.emit_error_event(
                    tag,
                    ev.time,
                    ev.record,
                    "BufferChunkOverflowError: a 1 event is larger than chunk_limit_size",
                    &s.log,
                );
            }
        }
    }
}
