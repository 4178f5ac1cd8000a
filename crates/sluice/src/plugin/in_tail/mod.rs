//! `@type tail`: follow files as they grow, parse each line, emit events.
//!
//! One thread per `<source>` owns every followed file. It wakes on inotify
//! events (`enable_stat_watcher`), on a 1-second stat poll that is the
//! source of truth (`enable_watch_timer`), and on the path refresh
//! (`refresh_interval`). Each wake reads files to their end in chunks,
//! splits lines ([`lines`]), parses them with the `<parse>` parser straight
//! into an event stream, and emits one stream per chunk of at least
//! `read_lines_limit` lines. The position in the `pos_file` ([`pos_file`],
//! byte-compatible with Fluentd's) is written only after the router
//! accepted the stream, so a crash re-reads instead of losing; when the
//! output pushes back, the stream is kept and retried and the file is not
//! read further (backpressure, never a drop).
//!
//! Rotation: a file is identified by device and inode. A new inode at the
//! path (rename rotation) moves the old file to a draining set that keeps
//! reading it for `rotate_wait` before it is released; the new file is read
//! from its start. A size below what was read (truncation, copytruncate)
//! restarts at 0 after first draining, from the rotated copy found by its
//! first bytes, whatever had not been read yet. A rotated file still being
//! drained keeps its own pos_file line, so a restart resumes it too, and
//! files rotated while sluice was stopped are found again by inode (and
//! newer rotated siblings read whole) before the current file.

pub mod lines;
pub mod paths;
pub mod pos_file;

use self::lines::{Line, Lines, Newline};
use self::paths::{FileId, GlobPolicy, PathSet};
use self::pos_file::{EntryId, KeyBy, PosFile};
use super::parser::{self, Parser, Scratch};
use super::{BoxFuture, BuildCx, EmitError, Emitter, Input, InputContext};
use crate::log::Logger;
use sluice_config::{Element, Params, Size, TimeSpan};
use sluice_event::{EventStream, EventStreamBuilder, EventTime, RecordRef, Zone, msgpack};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

/// Follows files.
#[derive(Debug, Params)]
pub struct TailParams {
    /// Files to follow: paths or globs, separated by `path_delimiter`; strftime placeholders allowed.
    pub path: String,
    /// Separator of `path`.
    #[param(default = ",")]
    pub path_delimiter: String,
    /// Which paths are globs: `backward_compatible` (`*`), `extended` (`? []` too), `always` (`{a,b}` too).
    #[param(default = "backward_compatible")]
    pub glob_policy: GlobPolicy,
    /// Event tag; `*` is replaced by the file's path with `/` as `.`.
    pub tag: String,
    /// Paths or globs never followed.
    #[param(default = "[]")]
    pub exclude_path: Vec<String>,
    /// How long a rotated or removed file keeps being read before it is released.
    #[param(default = "5")]
    pub rotate_wait: TimeSpan,
    /// Where read positions are kept (Fluentd's format); without it they are lost at restart.
    pub pos_file: Option<String>,
    /// Rewrite the pos_file without finished entries this often.
    pub pos_file_compaction_interval: Option<TimeSpan>,
    /// Read files found at startup without a position from their start instead of their end.
    #[param(default = "false")]
    pub read_from_head: bool,
    /// How often globs and time placeholders in `path` are re-expanded.
    #[param(default = "60")]
    pub refresh_interval: TimeSpan,
    /// Lines per emitted batch (at least; a read chunk is never split).
    #[param(default = "1000")]
    pub read_lines_limit: u64,
    /// Bytes read per file per second (`-1`: no limit; at least 64k).
    #[param(default = "-1")]
    pub read_bytes_limit_per_second: String,
    /// Multiline: emit a pending record after this long without new lines.
    pub multiline_flush_interval: Option<TimeSpan>,
    /// Emit lines the parser rejects as `{"unmatched_line": line}`.
    #[param(default = "false")]
    pub emit_unmatched_lines: bool,
    /// Poll every followed file once a second.
    #[param(default = "true")]
    pub enable_watch_timer: bool,
    /// Use inotify to notice changes at once.
    #[param(default = "true")]
    pub enable_stat_watcher: bool,
    /// Encoding of the emitted strings (with `from_encoding`, lines are converted to it).
    pub encoding: Option<String>,
    /// Encoding of the files.
    pub from_encoding: Option<String>,
    /// Add the file's path to each record under this key.
    pub path_key: Option<String>,
    /// Open, read and close the file on every update instead of holding it open.
    #[param(default = "false")]
    pub open_on_every_update: bool,
    /// Ignore globbed files not modified for this long.
    pub limit_recently_modified: Option<TimeSpan>,
    /// Do not expand paths at startup (wait for the first refresh).
    #[param(default = "false")]
    pub skip_refresh_on_startup: bool,
    /// Warn only once about each unreadable file.
    #[param(default = "false")]
    pub ignore_repeated_permission_error: bool,
    /// Zone for strftime placeholders in `path`.
    pub path_timezone: Option<String>,
    /// Key positions by inode, so a glob may also match rotated files without re-reading them.
    #[param(default = "false")]
    pub follow_inodes: bool,
    /// Skip lines longer than this (newline included).
    pub max_line_size: Option<Size>,
    /// How lines are parsed.
    #[section(name = "parse")]
    pub parse: Vec<Element>,
    /// Rate limits by path groups (not supported: accepted and ignored with a warning).
    #[section(name = "group")]
    pub group: Option<Element>,
}

/// Text conversion of `from_encoding` → `encoding`.
struct Transcode {
    from: &'static encoding_rs::Encoding,
    to: &'static encoding_rs::Encoding,
}

/// Configuration shared with the tail thread.
struct Cfg {
    paths: PathSet,
    static_paths: Vec<String>,
    tag: String,
    rotate_wait: Duration,
    pos_file: Option<String>,
    compaction: Option<Duration>,
    read_from_head: bool,
    refresh: Duration,
    lines_limit: usize,
    bytes_limit: Option<u64>,
    ml_flush: Option<Duration>,
    emit_unmatched: bool,
    watch_timer: bool,
    stat_watcher: bool,
    transcode: Option<Transcode>,
    newline: Newline,
    path_key: Option<String>,
    open_on_every_update: bool,
    skip_refresh_on_startup: bool,
    ignore_repeated_permission_error: bool,
    follow_inodes: bool,
    max_line_size: Option<usize>,
    file_mode: u32,
    dir_mode: u32,
}

/// The tail input.
pub struct TailInput {
    cfg: Arc<Cfg>,
    parser: Arc<dyn Parser>,
}

/// Bytes read per `read` call.
const CHUNK: usize = 128 * 1024;
/// How much of a file's head identifies it.
const FP_LEN: usize = 1024;
/// Final drains stop after this long at shutdown (Fluentd's SHUTDOWN_TIMEOUT).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// Retry period for a batch the router pushed back.
const BACKPRESSURE_RETRY: Duration = Duration::from_millis(2);

enum Msg {
    /// Something changed in a watched directory (`true`: a file appeared).
    Fs(bool),
    Stop,
}

/// One followed file.
struct Watcher {
    path: String,
    tag: String,
    id: FileId,
    file: Option<File>,
    lines: Lines,
    entry: Option<EntryId>,
    /// Size at the previous stat (rotation detection).
    last_size: u64,
    /// A batch the router refused (backpressure), and the position after it.
    pending: Option<(EventStream, u64)>,
    /// Multiline: the record being collected, where it started, when it last grew.
    ml: Option<(Vec<u8>, u64, Instant)>,
    /// Draining since (rotated away or removed).
    rotated: Option<Instant>,
    /// The file's first bytes (up to `FP_LEN`), as read.
    fp: Vec<u8>,
    /// Throttling: bytes read in the current second, and when it began.
    throttle: (u64, Instant),
    /// Lines that did not parse (for rate-limited warnings).
    bad: u64,
}

impl Watcher {
    fn new(path: &str, tag: String, id: FileId, pos: u64, cfg: &Cfg) -> Watcher {
        Watcher {
            path: path.to_string(),
            tag,
            id,
            file: None,
            lines: Lines::new(pos, cfg.max_line_size, cfg.newline),
            entry: None,
            last_size: 0,
            pending: None,
            ml: None,
            rotated: None,
            fp: Vec::new(),
            throttle: (0, Instant::now()),
            bad: 0,
        }
    }
}

/// What a stat of an active watcher's path found.
enum Rotation {
    Same,
    /// The path is gone.
    Gone,
    /// Another file is at the path now.
    Replaced,
    /// Same file, shorter than what was read.
    Truncated(u64),
}

/// Everything parsing needs, borrowed from the tail state.
struct Sink<'a> {
    cfg: &'a Cfg,
    parser: &'a dyn Parser,
    scratch: &'a mut Scratch,
    log: &'a Logger,
    router: &'a crate::router::Router,
    tmp: Vec<u8>,
}

fn inspect(text: &[u8]) -> String {
    let mut shown = Vec::new();
    sluice_event::rubyfmt::write_str_inspect(&mut shown, text);
    String::from_utf8_lossy(&shown).into_owned()
}

impl Sink<'_> {
    /// Append an event, adding `path_key` when the record lacks it.
    fn push(&mut self, path: &str, b: &mut EventStreamBuilder, t: EventTime, rec: &[u8]) {
        match &self.cfg.path_key {
            Some(k) if RecordRef::new(rec).is_ok_and(|r| r.get(k).is_none()) => {
                let n = msgpack::read_map_len(rec, 0).map_or(0, |(n, _)| n);
                let old = msgpack::map_header_size(n);
                self.tmp.clear();
                msgpack::write_map_header(&mut self.tmp, n + 1);
                self.tmp.extend_from_slice(&rec[old..]);
                msgpack::write_str(&mut self.tmp, k.as_bytes());
                msgpack::write_str(&mut self.tmp, path.as_bytes());
                b.push_raw(t, &self.tmp);
            }
            _ => b.push_raw(t, rec),
        }
    }

    fn should_warn(bad: &mut u64) -> bool {
        *bad += 1;
        *bad <= 10 || bad.is_multiple_of(1000)
    }

    /// Parse one text (a line, or a multiline record) into `b`.
    fn parse(&mut self, path: &str, tag: &str, bad: &mut u64, text: &[u8], offset: u64, b: &mut EventStreamBuilder) {
        let converted;
        let text = match &self.cfg.transcode {
            Some(t) => {
                let (s, _) = t.from.decode_without_bom_handling(text);
                converted = if t.to == encoding_rs::UTF_8 {
                    s.into_owned().into_bytes()
                } else {
                    t.to.encode(&s).0.into_owned()
                };
                &converted[..]
            }
            None => text,
        };
        let mut unmatched = false;
        let Sink { cfg, parser, scratch, tmp, .. } = self;
        let mut sub = Sink {
            cfg,
            parser: *parser,
            scratch: &mut Scratch::default(),
            log: self.log,
            router: self.router,
            tmp: std::mem::take(tmp),
        };
        let r = parser.parse(text, scratch, &mut |t, rec| match (t, rec) {
            (Some(t), Some(rec)) => sub.push(path, b, t, rec),
            _ => unmatched = true,
        });
        self.tmp = std::mem::take(&mut sub.tmp);
        if unmatched {
            if Self::should_warn(bad) {
                crate::warn!(self.log, format!("pattern not matched: {}", inspect(text)), "path" => path, "offset" => offset, "count" => *bad);
            }
            if self.cfg.emit_unmatched {
                let mut rec = Vec::with_capacity(text.len() + 32);
                msgpack::write_map_header(&mut rec, 1);
                msgpack::write_str(&mut rec, b"unmatched_line");
                msgpack::write_str(&mut rec, text);
                self.push(path, b, EventTime::now(), &rec);
            } else {
                self.error_event(path, tag, text, "pattern not matched");
            }
        }
        if let Err(e) = r {
            if Self::should_warn(bad) {
                crate::warn!(self.log, "invalid line found", "file" => path, "line" => String::from_utf8_lossy(text).into_owned(), "error" => e.message.as_str(), "offset" => offset);
            }
            self.error_event(path, tag, text, &format!("{}: {}", e.class, e.message));
        }
    }

    /// Send a text that could not be parsed to `@ERROR`, when there is one.
    fn error_event(&self, path: &str, tag: &str, text: &[u8], error: &str) {
        if !self.router.has_error_label() {
            return;
        }
        let mut rec = Vec::with_capacity(text.len() + 32);
        msgpack::write_map_header(&mut rec, if self.cfg.path_key.is_some() { 2 } else { 1 });
        msgpack::write_str(&mut rec, b"unmatched_line");
        msgpack::write_str(&mut rec, text);
        if let Some(k) = &self.cfg.path_key {
            msgpack::write_str(&mut rec, k.as_bytes());
            msgpack::write_str(&mut rec, path.as_bytes());
        }
        if let Ok(r) = RecordRef::new(&rec) {
            self.router.emit_error_event(tag, EventTime::now(), r, error, self.log);
        }
    }

    /// One line (without its newline) ending at file offset `end`.
    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        path: &str,
        tag: &str,
        bad: &mut u64,
        ml: &mut Option<(Vec<u8>, u64, Instant)>,
        text: &[u8],
        end: u64,
        b: &mut EventStreamBuilder,
    ) {
        let line = lines::chomp_cr(text);
        let start = end.saturating_sub(text.len() as u64 + 1);
        let Some(m) = self.parser.as_multiline() else {
            self.parse(path, tag, bad, line, start, b);
            return;
        };
        if m.has_firstline() {
            if m.is_firstline(line) {
                if let Some((rec, at, _)) = ml.take() {
                    self.parse(path, tag, bad, &rec, at, b);
                }
                *ml = Some((line.to_vec(), start, Instant::now()));
            } else if let Some((rec, _, last)) = ml.as_mut() {
                rec.push(b'\n');
                rec.extend_from_slice(line);
                *last = Instant::now();
            } else {
                crate::warn!(self.log, format!("got incomplete line before first line from {path}: {}", inspect(line)));
                if self.cfg.emit_unmatched {
                    self.parse(path, tag, bad, line, start, b);
                }
            }
            return;
        }
        // Without format_firstline: accumulate until the text parses.
        let (mut rec, at) = match ml.take() {
            Some((mut r, at, _)) => {
                r.push(b'\n');
                r.extend_from_slice(line);
                (r, at)
            }
            None => (line.to_vec(), start),
        };
        let mut probe = EventStreamBuilder::new();
        let mut ok = false;
        let Sink { cfg, parser, scratch, tmp, .. } = self;
        let mut sub = Sink {
            cfg,
            parser: *parser,
            scratch: &mut Scratch::default(),
            log: self.log,
            router: self.router,
            tmp: std::mem::take(tmp),
        };
        let _ = parser.parse(&rec, scratch, &mut |t, r| {
            if let (Some(t), Some(r)) = (t, r) {
                ok = true;
                sub.push(path, &mut probe, t, r);
            }
        });
        self.tmp = std::mem::take(&mut sub.tmp);
        if ok {
            for ev in &probe.finish() {
                b.push_entry(&ev);
            }
        } else {
            rec.shrink_to_fit();
            *ml = Some((rec, at, Instant::now()));
        }
    }

    /// Emit a pending multiline record.
    fn flush_multiline(
        &mut self,
        path: &str,
        tag: &str,
        bad: &mut u64,
        ml: &mut Option<(Vec<u8>, u64, Instant)>,
        b: &mut EventStreamBuilder,
    ) {
        if let Some((rec, at, _)) = ml.take() {
            let n = b.len();
            self.parse(path, tag, bad, &rec, at, b);
            if b.len() == n {
                crate::warn!(self.log, format!("got incomplete line at shutdown from {path}: {}", inspect(&rec)));
            }
        }
    }
}

/// The position to commit: before a pending multiline record.
fn commit_pos(lines: &Lines, ml: &Option<(Vec<u8>, u64, Instant)>) -> u64 {
    match ml {
        Some((_, at, _)) => (*at).min(lines.consumed()),
        None => lines.consumed(),
    }
}

/// Emit a batch and commit its position; false if the router pushed back
/// (the batch is kept in `pending`).
#[allow(clippy::too_many_arguments)]
fn emit_batch(
    emitter: &Emitter,
    pf: &mut Option<PosFile>,
    log: &Logger,
    w_tag: &str,
    w_path: &str,
    entry: Option<EntryId>,
    pending: &mut Option<(EventStream, u64)>,
    es: EventStream,
    pos: u64,
) -> bool {
    if !es.is_empty() {
        match emitter.emit(w_tag, es.clone()) {
            Ok(()) => {}
            Err(EmitError::Overflow(_)) => {
                *pending = Some((es, pos));
                return false;
            }
            Err(EmitError::Failed(e)) => {
                crate::warn!(log, "emit failed; the lines are dropped", "error" => e, "tag" => w_tag, "path" => w_path);
            }
        }
    }
    if let (Some(pf), Some(id)) = (pf.as_mut(), entry)
        && let Err(e) = pf.update_pos(id, pos)
    {
        crate::warn!(log, "could not write the pos_file", "path" => pf.path().display().to_string(), "error" => e.to_string());
    }
    true
}

/// The tail thread's state.
struct Tail {
    cfg: Arc<Cfg>,
    parser: Arc<dyn Parser>,
    emitter: Emitter,
    log: Logger,
    pf: Option<PosFile>,
    pf_mtime: Option<SystemTime>,
    active: Vec<Watcher>,
    draining: Vec<Watcher>,
    scratch: Scratch,
    unreadable: Vec<String>,
    deadline: Option<Instant>,
    notify: Option<notify::RecommendedWatcher>,
    watched_dirs: Vec<std::path::PathBuf>,
    refresh_soon: bool,
}

impl Tail {
    fn new(cfg: Arc<Cfg>, parser: Arc<dyn Parser>, emitter: Emitter, log: Logger, tx: Sender<Msg>) -> Tail {
        let notify = if cfg.stat_watcher {
            let r = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res {
                    let _ = tx.send(Msg::Fs(matches!(
                        ev.kind,
                        notify::EventKind::Create(_) | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
                    )));
                }
            });
            match r {
                Ok(w) => Some(w),
                Err(e) => {
                    crate::warn!(log, "inotify is unavailable; polling every second", "error" => e.to_string());
                    None
                }
            }
        } else {
            None
        };
        Tail {
            cfg,
            parser,
            emitter,
            log,
            pf: None,
            pf_mtime: None,
            active: Vec::new(),
            draining: Vec::new(),
            scratch: Scratch::default(),
            unreadable: Vec::new(),
            deadline: None,
            notify,
            watched_dirs: Vec::new(),
            refresh_soon: false,
        }
    }

    fn key_by(&self) -> KeyBy {
        if self.cfg.follow_inodes { KeyBy::Inode } else { KeyBy::Path }
    }

    /// Load the pos_file, keeping entries of files that exist now.
    fn load_pos_file(&mut self, targets: &[String]) {
        let Some(path) = self.cfg.pos_file.clone() else { return };
        self.pf_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let inodes: Vec<u64> = targets.iter().filter_map(|p| paths::stat(p).map(|(id, _, _)| id.ino)).collect();
        let key_by = self.key_by();
        let keep = |e: &pos_file::Entry| match key_by {
            KeyBy::Path => targets.contains(&e.path),
            KeyBy::Inode => inodes.contains(&e.ino),
        };
        match PosFile::load(Path::new(&path), self.cfg.file_mode, self.cfg.dir_mode, key_by, keep) {
            Ok((pf, warnings)) => {
                for w in warnings {
                    crate::warn!(self.log, w);
                }
                self.pf = Some(pf);
            }
            Err(e) => {
                crate::error!(self.log, "cannot open the pos_file; positions are kept in memory only", "path" => path.as_str(), "error" => e.to_string());
            }
        }
    }

    fn watch_dir(&mut self, path: &str) {
        let Some(dir) = Path::new(path).parent().map(Path::to_path_buf) else { return };
        let dir = if dir.as_os_str().is_empty() { std::path::PathBuf::from(".") } else { dir };
        if self.watched_dirs.contains(&dir) {
            return;
        }
        if let Some(n) = self.notify.as_mut() {
            use notify::Watcher as _;
            if n.watch(&dir, notify::RecursiveMode::NonRecursive).is_ok() {
                self.watched_dirs.push(dir);
            }
        }
    }

    /// Start following `path` (first sight). `startup`: found by the first refresh.
    fn open(&mut self, path: &str, startup: bool) -> Option<Watcher> {
        let (id, size, meta) = paths::stat(path)?;
        if meta.is_dir() {
            return None;
        }
        let tag = paths::expand_tag(&self.cfg.tag, path);
        let from_head = !startup || self.cfg.read_from_head;
        let mut pos = if from_head { 0 } else { size };
        let mut entry = None;
        let key_by = self.key_by();
        let in_use: Vec<EntryId> = self.active.iter().chain(&self.draining).filter_map(|w| w.entry).collect();
        if let Some(pf) = self.pf.as_mut() {
            let found = pf
                .entries()
                .filter(|(eid, _, _, _)| !in_use.contains(eid))
                .find(|(_, p, _, ino)| *ino == id.ino && (key_by == KeyBy::Inode || *p == path))
                .map(|(eid, _, epos, _)| (eid, epos));
            let known_path = pf.entries().any(|(_, p, _, _)| p == path);
            match found {
                Some((eid, epos)) => {
                    // Same inode: resume, unless the file is now shorter than
                    // the position, or was created after the pos_file was last
                    // written (an inode reused while sluice was stopped).
                    let born_later = match (meta.created(), self.pf_mtime) {
                        (Ok(b), Some(m)) => startup && b > m,
                        _ => false,
                    };
                    pos = if size < epos || born_later { 0 } else { epos };
                    entry = Some(eid);
                    let _ = pf.update(eid, id.ino, pos);
                }
                None => {
                    if known_path && key_by == KeyBy::Path {
                        // The path held another file before: this one is new since.
                        pos = 0;
                    }
                    let (eid, r) = pf.insert(path, pos, id.ino);
                    if let Err(e) = r {
                        crate::warn!(self.log, "could not write the pos_file", "error" => e.to_string());
                    }
                    entry = Some(eid);
                }
            }
        }
        let mut w = Watcher::new(path, tag, id, pos, &self.cfg);
        w.entry = entry;
        w.last_size = size;
        crate::info!(self.log, format!("following tail of {path}"));
        self.watch_dir(path);
        Some(w)
    }

    /// A draining watcher for a file found by inode or by content (recovery).
    fn drain_file(&mut self, path: &str, for_path: &str, id: FileId, pos: u64, entry: Option<EntryId>) -> Watcher {
        let mut w = Watcher::new(path, paths::expand_tag(&self.cfg.tag, for_path), id, pos, &self.cfg);
        w.entry = entry;
        w.rotated = Some(Instant::now());
        w
    }

    /// Files rotated while sluice was stopped (path mode): drain them first.
    ///
    /// Every pos_file entry not taken by a followed file names a rotated
    /// file by inode: it is found among the path's siblings and read from
    /// its position. Siblings modified after the pos_file was last written,
    /// and unknown to it, were rotated in between: they are read whole.
    fn recover_rotated(&mut self) {
        if self.cfg.follow_inodes {
            return;
        }
        let Some(pf) = self.pf.as_ref() else { return };
        let known: Vec<u64> = pf.entries().map(|(_, _, _, ino)| ino).collect();
        let orphans: Vec<(EntryId, String, u64, u64)> = pf
            .entries()
            .filter(|(id, _, _, _)| !self.active.iter().any(|w| w.entry == Some(*id)))
            .map(|(id, p, pos, ino)| (id, p.to_string(), pos, ino))
            .collect();
        let mut recovered: Vec<(SystemTime, Watcher)> = Vec::new();
        let mut paths_done: Vec<String> = Vec::new();
        for (eid, path, pos, ino) in &orphans {
            let cur = self.active.iter().find(|w| w.path == *path).map(|w| w.id);
            let found = siblings(path).into_iter().find(|(_, sid, _)| sid.ino == *ino && Some(*sid) != cur);
            match found {
                Some((sp, sid, mtime)) => {
                    crate::info!(self.log, format!("{path} was rotated while stopped; reading the rest of {sp}"), "from" => *pos);
                    let w = self.drain_file(&sp, path, sid, *pos, Some(*eid));
                    recovered.push((mtime, w));
                    if !paths_done.contains(path) {
                        paths_done.push(path.clone());
                    }
                }
                None => {
                    crate::warn!(
                        self.log,
                        format!(
                            "{path} was rotated while stopped and its old file (inode {ino}) is gone; lines after offset {pos} were not read"
                        )
                    );
                    if let Some(pf) = self.pf.as_mut() {
                        let _ = pf.unwatch(*eid);
                    }
                }
            }
        }
        for path in paths_done {
            let cur = self.active.iter().find(|w| w.path == path).map(|w| w.id);
            let newer: Vec<(String, FileId, SystemTime)> = siblings(&path)
                .into_iter()
                .filter(|(_, s, m)| {
                    !known.contains(&s.ino)
                        && Some(*s) != cur
                        && !recovered.iter().any(|(_, w)| w.id == *s)
                        && self.pf_mtime.is_some_and(|pm| *m > pm)
                })
                .collect();
            for (np, nid, m) in newer {
                crate::info!(self.log, format!("{path} was rotated while stopped; reading {np}"));
                let e = self.pf.as_mut().map(|pf| pf.insert(&path, 0, nid.ino).0);
                let w = self.drain_file(&np, &path, nid, 0, e);
                recovered.push((m, w));
            }
        }
        // Oldest first.
        recovered.sort_by_key(|(m, _)| *m);
        self.draining.extend(recovered.into_iter().map(|(_, w)| w));
    }

    /// Re-expand paths: start new files, stop files no longer matched.
    fn refresh(&mut self, startup: bool) {
        let mut notes = Vec::new();
        let targets = self.cfg.paths.expand(EventTime::now(), &mut notes);
        for paths::ExpandNote::Unreadable(p) in notes {
            if !self.unreadable.contains(&p) {
                crate::warn!(self.log, format!("{p} unreadable. It is excluded and would be examined next time."));
                if self.cfg.ignore_repeated_permission_error {
                    self.unreadable.push(p);
                }
            }
        }
        if self.cfg.follow_inodes {
            let ids: Vec<(String, FileId)> =
                targets.iter().filter_map(|p| paths::stat(p).map(|(id, _, _)| (p.clone(), id))).collect();
            // Files that left the target set drain and are released.
            let (keep, gone): (Vec<Watcher>, Vec<Watcher>) =
                std::mem::take(&mut self.active).into_iter().partition(|w| ids.iter().any(|(_, id)| *id == w.id));
            self.active = keep;
            for mut w in gone {
                w.rotated.get_or_insert_with(Instant::now);
                self.draining.push(w);
            }
            for (p, id) in ids {
                if let Some(w) = self.active.iter_mut().find(|w| w.id == id) {
                    if w.path != p {
                        w.path = p.clone();
                        w.tag = paths::expand_tag(&self.cfg.tag, &p);
                    }
                    continue;
                }
                if let Some(i) = self.draining.iter().position(|w| w.id == id) {
                    // A rotated file still matched under its new name: keep following it.
                    let mut w = self.draining.remove(i);
                    w.rotated = None;
                    w.path = p.clone();
                    w.tag = paths::expand_tag(&self.cfg.tag, &p);
                    self.active.push(w);
                    continue;
                }
                if let Some(w) = self.open(&p, startup) {
                    self.active.push(w);
                }
            }
            return;
        }
        let (keep, gone): (Vec<Watcher>, Vec<Watcher>) =
            std::mem::take(&mut self.active).into_iter().partition(|w| targets.contains(&w.path));
        self.active = keep;
        for mut w in gone {
            w.rotated.get_or_insert_with(Instant::now);
            self.draining.push(w);
        }
        for p in targets {
            if self.active.iter().any(|w| w.path == p) {
                continue;
            }
            if let Some(w) = self.open(&p, startup) {
                self.active.push(w);
            }
        }
    }

    /// Start watchers for static paths that have appeared.
    fn check_static(&mut self) {
        if self.cfg.follow_inodes {
            return;
        }
        for p in self.cfg.static_paths.clone() {
            if !self.active.iter().any(|w| w.path == p)
                && let Some(w) = self.open(&p, false)
            {
                self.active.push(w);
            }
        }
    }

    fn rotation(&self, w: &Watcher) -> Rotation {
        match paths::stat(&w.path) {
            None => Rotation::Gone,
            Some((id, _, _)) if id != w.id => Rotation::Replaced,
            Some((_, size, _)) if size < w.last_size || size < w.lines.end() => Rotation::Truncated(size),
            Some((_, size, _)) => {
                let _ = size;
                Rotation::Same
            }
        }
    }

    /// Open `w`'s file if needed, making sure it is still the same file.
    fn ensure_open(&self, w: &mut Watcher) -> bool {
        if w.file.is_some() {
            return true;
        }
        let mut f = match File::open(&w.path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    crate::warn!(self.log, format!("{e} @ rb_sysopen - {}", w.path));
                }
                return false;
            }
        };
        let Ok(m) = f.metadata() else { return false };
        if m.ino() != w.id.ino || m.dev() != w.id.dev || m.is_dir() {
            return false;
        }
        if f.seek(SeekFrom::Start(w.lines.end())).is_err() {
            return false;
        }
        w.file = Some(f);
        true
    }

    /// Read `w` to its end, emitting batches. False if the router pushed back.
    fn read(&mut self, w: &mut Watcher) -> bool {
        self.ensure_open(w);
        let Tail { cfg, parser, emitter, log, pf, scratch, deadline, .. } = self;
        let Watcher { path, tag, file, lines, entry, pending, ml, fp, throttle, bad, rotated, .. } = w;
        if let Some((es, pos)) = pending.take()
            && !emit_batch(emitter, pf, log, tag, path, *entry, pending, es, pos)
        {
            return false;
        }
        let mut sink = Sink { cfg, parser: &**parser, scratch, log, router: emitter.router(), tmp: Vec::new() };
        let mut b = EventStreamBuilder::with_capacity(CHUNK + CHUNK / 4);
        let mut nlines = 0usize;
        while let Some(f) = file.as_mut() {
            if deadline.is_some_and(|d| Instant::now() > d) {
                break;
            }
            if let Some(limit) = cfg.bytes_limit {
                if throttle.1.elapsed() >= Duration::from_secs(1) {
                    *throttle = (0, Instant::now());
                }
                if throttle.0 >= limit {
                    break;
                }
            }
            let start_off = lines.end();
            let spare = lines.spare(CHUNK);
            let n = match f.read(spare) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    lines.filled(CHUNK, 0);
                    crate::error!(log, format!("{e} @ io_getpartial - {path}"));
                    *file = None;
                    break;
                }
            };
            lines.filled(CHUNK, n);
            if n == 0 {
                break;
            }
            throttle.0 += n as u64;
            if fp.len() < FP_LEN && start_off == fp.len() as u64 {
                // The file's first bytes identify it (copytruncate copies).
                let take = n.min(FP_LEN - fp.len());
                let mut head = vec![0u8; take];
                use std::os::unix::fs::FileExt;
                if f.read_exact_at(&mut head, start_off).is_ok() {
                    fp.extend_from_slice(&head);
                }
            }
            while let Some(l) = lines.next_line() {
                match l {
                    Line::Text(t, end) => {
                        sink.line(path, tag, bad, ml, t, end, &mut b);
                        nlines += 1;
                    }
                    Line::TooLong(len) => {
                        crate::warn!(log, format!("received line length is longer than {}", cfg.max_line_size.unwrap_or(lines::HARD_LIMIT)), "path" => path.as_str(), "length" => len);
                    }
                }
            }
            if nlines >= cfg.lines_limit {
                let pos = commit_pos(lines, ml);
                let es = std::mem::replace(&mut b, EventStreamBuilder::with_capacity(CHUNK + CHUNK / 4)).finish();
                nlines = 0;
                if !emit_batch(emitter, pf, log, tag, path, *entry, pending, es, pos) {
                    return false;
                }
            }
        }
        // A released file's last, unterminated line: its writer is gone.
        if rotated.is_some_and(|r| r.elapsed() >= cfg.rotate_wait) && deadline.is_none() {
            if let Some((text, end)) = lines.take_partial() {
                sink.line(path, tag, bad, ml, &text, end + 1, &mut b);
            }
            sink.flush_multiline(path, tag, bad, ml, &mut b);
        } else if let Some((_, _, last)) = ml.as_ref()
            && cfg.ml_flush.is_some_and(|d| last.elapsed() >= d)
        {
            sink.flush_multiline(path, tag, bad, ml, &mut b);
        }
        let pos = commit_pos(lines, ml);
        let es = b.finish();
        if !emit_batch(emitter, pf, log, tag, path, *entry, pending, es, pos) {
            return false;
        }
        if cfg.open_on_every_update && rotated.is_none() {
            *file = None;
        }
        true
    }

    /// One pass over every file. Returns true if some file is pushed back.
    fn poll(&mut self) -> bool {
        let mut blocked = false;
        // Rotated files first: their lines are older.
        let mut draining = std::mem::take(&mut self.draining);
        let mut keep = Vec::new();
        for mut w in draining.drain(..) {
            if !self.ensure_open(&mut w) && w.file.is_none() && w.pending.is_none() {
                // Gone for good (and nothing held): release.
                self.release(w);
                continue;
            }
            let ok = self.read(&mut w);
            blocked |= !ok;
            if ok && w.rotated.is_some_and(|r| r.elapsed() >= self.cfg.rotate_wait) {
                self.release(w);
            } else {
                keep.push(w);
            }
        }
        self.draining.extend(keep);
        let active = std::mem::take(&mut self.active);
        for mut w in active {
            match self.rotation(&w) {
                Rotation::Same => {}
                Rotation::Gone => {
                    crate::info!(
                        self.log,
                        format!("detected rotation of {}; waiting {} seconds", w.path, fmt_secs(self.cfg.rotate_wait))
                    );
                    let _ = self.read(&mut w);
                    w.rotated = Some(Instant::now());
                    self.refresh_soon |= self.cfg.follow_inodes;
                    self.draining.push(w);
                    continue;
                }
                Rotation::Replaced => {
                    crate::info!(
                        self.log,
                        format!("detected rotation of {}; waiting {} seconds", w.path, fmt_secs(self.cfg.rotate_wait))
                    );
                    // Drain what the old file has now, then read the new one.
                    let _ = self.read(&mut w);
                    w.rotated = Some(Instant::now());
                    let path = w.path.clone();
                    self.draining.push(w);
                    if self.cfg.follow_inodes {
                        self.refresh_soon = true;
                    } else if let Some(mut nw) = self.open(&path, false) {
                        blocked |= !self.read(&mut nw);
                        self.active.push(nw);
                    }
                    continue;
                }
                Rotation::Truncated(size) => {
                    crate::info!(self.log, format!("detected rotation of {}", w.path));
                    let from = commit_pos(&w.lines, &w.ml);
                    let read_to = w.lines.end();
                    if let Some((copy, cid)) = find_copy(&w.path, &w.fp, read_to.max(from), w.id) {
                        crate::info!(self.log, format!("reading the rest of {} from its copy {copy}", w.path), "from" => from);
                        let mut d = self.drain_file(&copy, &w.path.clone(), cid, from, None);
                        d.fp = w.fp.clone();
                        d.ml = w.ml.take();
                        blocked |= !self.read(&mut d);
                        self.draining.push(d);
                    }
                    w.lines.reset(0);
                    w.file = None;
                    w.fp.clear();
                    w.ml = None;
                    w.pending = None;
                    w.last_size = size;
                    if let (Some(pf), Some(e)) = (self.pf.as_mut(), w.entry) {
                        let _ = pf.update_pos(e, 0);
                    }
                }
            }
            if let Some((_, size, _)) = paths::stat(&w.path) {
                w.last_size = size;
            }
            blocked |= !self.read(&mut w);
            self.active.push(w);
        }
        blocked
    }

    /// Stop following a drained file: close it and mark its entry unwatched.
    fn release(&mut self, w: Watcher) {
        if let (Some(pf), Some(e)) = (self.pf.as_mut(), w.entry)
            && !self.active.iter().any(|a| a.entry == Some(e))
        {
            let _ = pf.unwatch(e);
        }
    }

    fn any_pending(&self) -> bool {
        self.active.iter().chain(&self.draining).any(|w| w.pending.is_some())
    }

    fn run(&mut self, rx: Receiver<Msg>) {
        if !self.cfg.skip_refresh_on_startup {
            let targets = self.cfg.paths.expand(EventTime::now(), &mut Vec::new());
            self.load_pos_file(&targets);
            self.refresh(true);
            self.recover_rotated();
        } else {
            let targets = self.cfg.paths.expand(EventTime::now(), &mut Vec::new());
            self.load_pos_file(&targets);
        }
        if self.pf.is_some() {
            // Entries of files not followed any more are dropped now.
            if let Some(pf) = self.pf.as_mut() {
                let _ = pf.compact();
            }
        }
        let mut next_refresh = Instant::now() + self.cfg.refresh;
        let mut next_compact = self.cfg.compaction.map(|c| Instant::now() + c);
        let tick = Duration::from_secs(1);
        let mut next_tick = Instant::now() + tick;
        let mut blocked = self.poll();
        loop {
            let now = Instant::now();
            let mut wake = next_refresh.min(next_tick);
            if let Some(c) = next_compact {
                wake = wake.min(c);
            }
            if blocked || self.any_pending() {
                wake = wake.min(now + BACKPRESSURE_RETRY);
            }
            for w in &self.draining {
                if let Some(r) = w.rotated {
                    wake = wake.min(r + self.cfg.rotate_wait);
                }
            }
            if let Some(d) = self.cfg.ml_flush {
                for w in self.active.iter().chain(&self.draining) {
                    if let Some((_, _, last)) = &w.ml {
                        wake = wake.min(*last + d);
                    }
                }
            }
            let timeout = wake.saturating_duration_since(now);
            match rx.recv_timeout(timeout) {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Msg::Fs(created)) => {
                    self.refresh_soon |= created;
                    // Coalesce a burst of events.
                    loop {
                        match rx.try_recv() {
                            Ok(Msg::Fs(c)) => self.refresh_soon |= c,
                            Ok(Msg::Stop) => {
                                self.shutdown();
                                return;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= next_refresh || self.refresh_soon {
                self.refresh_soon = false;
                self.refresh(false);
                if now >= next_refresh {
                    next_refresh = now + self.cfg.refresh;
                }
            }
            if now >= next_tick {
                next_tick = now + tick;
                self.check_static();
            }
            if let Some(c) = next_compact
                && now >= c
            {
                if let Some(pf) = self.pf.as_mut() {
                    crate::info!(self.log, "Clean up the pos file");
                    if let Err(e) = pf.compact() {
                        crate::warn!(self.log, "pos_file compaction failed", "error" => e.to_string());
                    }
                }
                next_compact = self.cfg.compaction.map(|d| now + d);
            }
            if !self.cfg.watch_timer && self.notify.is_none() {
                continue;
            }
            blocked = self.poll();
        }
        self.shutdown();
    }

    /// Final drain (bounded), multiline flush, positions committed.
    fn shutdown(&mut self) {
        self.deadline = Some(Instant::now() + SHUTDOWN_DRAIN);
        let mut all: Vec<Watcher> = std::mem::take(&mut self.draining);
        all.append(&mut self.active);
        for mut w in all {
            if !self.read(&mut w) {
                continue;
            }
            if w.ml.is_some() {
                let Tail { cfg, parser, emitter, log, pf, scratch, .. } = self;
                let mut sink = Sink { cfg, parser: &**parser, scratch, log, router: emitter.router(), tmp: Vec::new() };
                let mut b = EventStreamBuilder::new();
                let Watcher { path, tag, bad, ml, lines, entry, pending, .. } = &mut w;
                sink.flush_multiline(path, tag, bad, ml, &mut b);
                let pos = lines.consumed();
                emit_batch(emitter, pf, log, tag, path, *entry, pending, b.finish(), pos);
            }
        }
        self.pf = None;
    }
}

/// Rotated siblings of `path` in its directory: same base name followed by
/// `.`, `-` or `_`, not compressed. Path, identity, modification time.
fn siblings(path: &str) -> Vec<(String, FileId, SystemTime)> {
    let p = Path::new(path);
    let (Some(dir), Some(base)) = (p.parent(), p.file_name()) else { return Vec::new() };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let base = base.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&base) else { continue };
        if !rest.starts_with(['.', '-', '_']) {
            continue;
        }
        if [".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip"].iter().any(|x| name.ends_with(x)) {
            continue;
        }
        let sp = e.path().to_string_lossy().into_owned();
        if let Some((id, _, m)) = paths::stat(&sp) {
            if m.is_dir() {
                continue;
            }
            out.push((sp, id, m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        }
    }
    out.sort_by_key(|x| x.2);
    out
}

/// A sibling of `path` whose first bytes are `fp` and that is at least
/// `min_size` long: the copy a copytruncate rotation made.
fn find_copy(path: &str, fp: &[u8], min_size: u64, not: FileId) -> Option<(String, FileId)> {
    if fp.is_empty() {
        return None;
    }
    for (p, id, _) in siblings(path).into_iter().rev() {
        if id == not {
            continue;
        }
        let Some((_, size, _)) = paths::stat(&p) else { continue };
        if size < min_size {
            continue;
        }
        let mut head = vec![0u8; fp.len()];
        let Ok(mut f) = File::open(&p) else { continue };
        if f.read_exact(&mut head).is_ok() && head == fp {
            return Some((p, id));
        }
    }
    None
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{}", s as u64) } else { format!("{s}") }
}

impl Input for TailInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture {
        Box::pin(async move {
            let (tx, rx) = std::sync::mpsc::channel();
            let stop = tx.clone();
            let TailInput { cfg, parser } = *self;
            let log = cx.log.clone();
            let emitter = cx.emitter.clone();
            let handle = std::thread::Builder::new().name("sluice-in_tail".into()).spawn(move || {
                let mut t = Tail::new(cfg, parser, emitter, log, tx);
                t.run(rx);
            });
            let mut sd = cx.shutdown.clone();
            sd.wait().await;
            let _ = stop.send(Msg::Stop);
            match handle {
                Ok(h) => {
                    let _ = tokio::task::spawn_blocking(move || h.join()).await;
                }
                Err(e) => crate::error!(cx.log, "could not start the tail thread", "error" => e.to_string()),
            }
        })
    }
}

fn encoding(name: &str) -> Option<&'static encoding_rs::Encoding> {
    let n = name.to_ascii_lowercase();
    match n.as_str() {
        "ascii-8bit" | "binary" => None,
        "utf-8" | "utf8" => Some(encoding_rs::UTF_8),
        "us-ascii" | "ascii" => Some(encoding_rs::WINDOWS_1252),
        "shift_jis" | "sjis" | "cp932" | "windows-31j" => Some(encoding_rs::SHIFT_JIS),
        "eucjp-ms" | "euc-jp" => Some(encoding_rs::EUC_JP),
        _ => encoding_rs::Encoding::for_label(n.as_bytes()),
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Input>> {
    let p = TailParams::from_element(el, cx.cfg)?;
    let span = |n: &str| el.param(n).map_or(el.span, |x| x.value_span);
    let Some(parse_el) = p.parse.first().cloned() else {
        cx.cfg.error(el.span, "<parse> section is required.");
        return None;
    };
    let mut parse_el = parse_el;
    // Fluentd copies emit_unmatched_lines into a multiline <parse> as unmatched_lines.
    if parse_el.type_name().is_some_and(|t| t.contains("multiline"))
        && el.has("emit_unmatched_lines")
        && !parse_el.has("unmatched_lines")
    {
        let v = el.get("emit_unmatched_lines").unwrap_or("true").to_string();
        parse_el.params.push(sluice_config::Param {
            key: "unmatched_lines".into(),
            value: Some(v),
            key_span: sluice_config::Span::NONE,
            value_span: sluice_config::Span::NONE,
            quote: sluice_config::Quote::None,
        });
    }
    let parser = parser::build(Some(&parse_el), None, cx);
    let parser: Arc<dyn Parser> = Arc::from(parser?);
    let mut ok = true;
    if !p.enable_watch_timer && !p.enable_stat_watcher {
        cx.cfg.error(el.span, "either of enable_watch_timer or enable_stat_watcher must be true");
        ok = false;
    }
    if p.glob_policy == GlobPolicy::Always && p.path_delimiter == "," {
        cx.cfg.error(span("glob_policy"), "cannot use glob_policy as always with the default path_delimiter: `,\"");
        ok = false;
    }
    if p.glob_policy == GlobPolicy::Extended {
        let brace = p.path.find('{').is_some_and(|i| p.path[i..].contains(',') && p.path[i..].contains('}'));
        if brace && paths::use_glob(&p.path, GlobPolicy::Extended) {
            cx.cfg.error(
                span("path"),
                format!(
                    "cannot include curly braces with glob patterns in `{}\". Use glob_policy always instead.",
                    p.path
                ),
            );
            ok = false;
        }
    }
    if ["/", "*", "%"].contains(&p.path_delimiter.as_str()) {
        cx.cfg.error(span("path_delimiter"), format!("/, *, % are reserved words: {}", p.path_delimiter));
        ok = false;
    }
    let mut patterns: Vec<String> = Vec::new();
    for x in p.path.split(p.path_delimiter.as_str()).map(str::trim).filter(|x| !x.is_empty()) {
        if !patterns.iter().any(|y| y == x) {
            patterns.push(x.to_string());
        }
    }
    if patterns.is_empty() {
        cx.cfg.error(span("path"), "tail: 'path' parameter is required on tail input");
        ok = false;
    }
    let zone = match p.path_timezone.as_deref() {
        Some(tz) => match Zone::parse(tz) {
            Ok(z) => z,
            Err(_) => {
                cx.cfg.error(span("path_timezone"), format!("Unsupported timezone '{tz}'"));
                return None;
            }
        },
        None => Zone::local(),
    };
    if p.pos_file.is_none() {
        if p.follow_inodes {
            cx.cfg.error(span("follow_inodes"), "Can't follow inodes without pos_file configuration parameter");
            ok = false;
        } else {
            crate::warn!(cx.info.log, "'pos_file PATH' parameter is not set to a 'tail' source.");
            crate::warn!(cx.info.log, "this parameter is highly recommended to save the position to resume tailing.");
        }
    }
    let mut newline = Newline::Byte;
    let transcode = match (&p.from_encoding, &p.encoding) {
        (Some(_), None) => {
            cx.cfg.error(
                span("from_encoding"),
                "tail: 'from_encoding' parameter must be specified with 'encoding' parameter.",
            );
            return None;
        }
        (from, Some(to)) => {
            let known =
                |n: &str| encoding(n).is_some() || matches!(n.to_ascii_lowercase().as_str(), "ascii-8bit" | "binary");
            for (name, key) in [(Some(to), "encoding"), (from.as_ref(), "from_encoding")] {
                if let Some(n) = name
                    && !known(n)
                {
                    cx.cfg.error(span(key), format!("unknown encoding name - {n}"));
                    return None;
                }
            }
            match from {
                Some(f) if f.eq_ignore_ascii_case(to) => {
                    cx.cfg.warn(span("from_encoding"), "'encoding' and 'from_encoding' are same encoding. No effect");
                    None
                }
                Some(f) => match (encoding(f), encoding(to)) {
                    (Some(from), to) => {
                        if from == encoding_rs::UTF_16LE {
                            newline = Newline::Utf16Le;
                        } else if from == encoding_rs::UTF_16BE {
                            newline = Newline::Utf16Be;
                        }
                        Some(Transcode { from, to: to.unwrap_or(encoding_rs::UTF_8) })
                    }
                    (None, _) => None,
                },
                None => None,
            }
        }
        (None, None) => None,
    };
    let bytes_limit = match p.read_bytes_limit_per_second.trim() {
        s if s.starts_with('-') => None,
        s => match <Size as sluice_config::ParamValue>::parse(s) {
            Ok(Size(0)) => None,
            Ok(Size(n)) => {
                if !p.enable_watch_timer {
                    cx.cfg.error(
                        span("read_bytes_limit_per_second"),
                        "Need to enable watch timer when using log throttling feature",
                    );
                    ok = false;
                }
                if n < 65536 {
                    cx.cfg.warn(
                        span("read_bytes_limit_per_second"),
                        "Should specify greater equal than 65536. Use 65536 for read_bytes_limit_per_second",
                    );
                }
                Some(n.max(65536))
            }
            Err(e) => {
                cx.cfg.error(span("read_bytes_limit_per_second"), e);
                return None;
            }
        },
    };
    if p.group.is_some() {
        cx.cfg.warn(
            p.group.as_ref().map_or(el.span, |g| g.span),
            "<group> rate limits are not supported by sluice yet; the section is ignored",
        );
    }
    if !ok {
        return None;
    }
    let paths = PathSet {
        patterns: patterns.clone(),
        excludes: p.exclude_path.clone(),
        policy: p.glob_policy,
        zone,
        limit_recently_modified: p.limit_recently_modified.map(TimeSpan::duration),
    };
    let static_paths =
        patterns.iter().filter(|x| !paths::use_glob(x, p.glob_policy) && !x.contains('%')).cloned().collect();
    let cfg = Cfg {
        paths,
        static_paths,
        tag: p.tag,
        rotate_wait: p.rotate_wait.duration(),
        pos_file: p.pos_file,
        compaction: p.pos_file_compaction_interval.map(TimeSpan::duration),
        read_from_head: p.read_from_head,
        refresh: p.refresh_interval.duration().max(Duration::from_millis(100)),
        lines_limit: (p.read_lines_limit as usize).max(1),
        bytes_limit,
        ml_flush: p.multiline_flush_interval.map(TimeSpan::duration),
        emit_unmatched: p.emit_unmatched_lines,
        watch_timer: p.enable_watch_timer,
        stat_watcher: p.enable_stat_watcher,
        transcode,
        newline,
        path_key: p.path_key,
        open_on_every_update: p.open_on_every_update,
        skip_refresh_on_startup: p.skip_refresh_on_startup,
        ignore_repeated_permission_error: p.ignore_repeated_permission_error,
        follow_inodes: p.follow_inodes,
        max_line_size: p.max_line_size.map(|s| s.0 as usize),
        file_mode: crate::buffer::chunk::parse_mode(cx.env.file_permission.as_deref(), 0o644),
        dir_mode: crate::buffer::chunk::parse_mode(cx.env.dir_permission.as_deref(), 0o755),
    };
    Some(Box::new(TailInput { cfg: Arc::new(cfg), parser }))
}
