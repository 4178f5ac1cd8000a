//! The buffer: staged chunks per metadata, a queue of chunks to flush,
//! exact size accounting, limits and overflow.
//!
//! ```text
//! write ─▶ staged[metadata] ──(full / due / immediate / shutdown)──▶ queue ──dequeue──▶ flush task
//!                                                                      ▲                 │
//!                                                                      └──── takeback ◀──┤ (failure)
//!                                                                           purge ◀──────┘ (success)
//! ```
//!
//! A write is checked against `total_limit_size` (and, for memory buffers,
//! the process-wide memory budget) before anything is appended, so a stream
//! is either accepted whole or refused whole: a refused stream is the
//! input's cue to push back, and retrying it cannot duplicate events.

use super::chunk::{Chunk, FileDir, Recovered, unix_now};
use super::metadata::{ChunkKeys, Metadata};
use super::params::{ChunkCompress, OverflowAction};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// When staged chunks are queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// At the end of their timekey plus `timekey_wait`, or when full.
    Lazy,
    /// `flush_interval` after they were created, or when full.
    Interval,
    /// Right away.
    Immediate,
}

/// Resolved `<buffer>` settings.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    pub chunk_limit: u64,
    pub records_limit: u64,
    pub total_limit: u64,
    pub full_threshold: f64,
    pub compress: ChunkCompress,
    pub overflow: OverflowAction,
    pub mode: Mode,
    pub flush_interval: f64,
    pub timekey: Option<i64>,
    pub timekey_wait: f64,
    pub queued_chunks_limit: usize,
    /// Name of the event format in chunks (`msgpack` for entries as they are).
    pub format: String,
}

/// The process-wide budget of memory-buffer bytes.
pub struct MemoryBudget {
    used: AtomicU64,
    limit: AtomicU64,
}

/// The budget shared by every memory buffer.
pub static MEMORY: MemoryBudget = MemoryBudget { used: AtomicU64::new(0), limit: AtomicU64::new(1 << 30) };

impl MemoryBudget {
    /// Set the limit (`<system> buffer_memory_limit`).
    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// Take `n` bytes if they fit.
    pub fn try_reserve(&self, n: u64) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| (u + n <= limit).then_some(u + n)).is_ok()
    }

    /// Take `n` bytes even over the limit, but only when nothing is in use
    /// (one write larger than the whole budget must not stall forever).
    pub fn reserve_if_idle(&self, n: u64) -> bool {
        self.used.compare_exchange(0, n, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Give `n` bytes back.
    pub fn release(&self, n: u64) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Counters of one buffered output (Fluentd's names).
#[derive(Debug, Default)]
pub struct Metrics {
    pub emit_records: AtomicU64,
    pub emit_count: AtomicU64,
    pub write_count: AtomicU64,
    pub write_secondary_count: AtomicU64,
    pub rollback_count: AtomicU64,
    pub retry_count: AtomicU64,
    pub slow_flush_count: AtomicU64,
    /// Milliseconds spent writing chunks.
    pub flush_time_count: AtomicU64,
    pub drop_oldest_chunk_count: AtomicU64,
    /// Streams refused because the buffer was full (sluice).
    pub overflow_count: AtomicU64,
    /// Chunks moved to the backup directory (sluice).
    pub backup_count: AtomicU64,
    /// Events refused because one alone is larger than a chunk (sluice).
    pub rejected_records: AtomicU64,
}

impl Metrics {
    /// Add one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Events for one chunk: their formatted bytes and where each ends.
pub struct Payload {
    /// Chunk key values.
    pub meta: Metadata,
    /// Formatted events (shared, so memory chunks keep them without copying).
    pub data: bytes::Bytes,
    /// Number of events.
    pub records: u32,
    /// End offset of each event; `None` for msgpack entries (found on demand).
    pub bounds: Option<Vec<usize>>,
}

impl Payload {
    fn bounds(&self) -> Vec<usize> {
        if let Some(b) = &self.bounds {
            return b.clone();
        }
        let mut out = Vec::with_capacity(self.records as usize);
        let mut at = 0;
        while at < self.data.len() {
            match sluice_event::msgpack::skip(&self.data, at) {
                Ok(end) => {
                    out.push(end);
                    at = end;
                }
                Err(_) => {
                    out.push(self.data.len());
                    break;
                }
            }
        }
        out
    }
}

/// A write the buffer refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not enough room (`total_limit_size` or the memory budget).
    Full(String),
    /// Storage failed.
    Io(String),
}

/// What a write did besides storing events.
#[derive(Debug, Default)]
pub struct Written {
    /// Events larger than `chunk_limit_size` on their own: their formatted bytes.
    pub rejected: Vec<Vec<u8>>,
    /// A chunk was queued.
    pub queued: bool,
    /// Queued chunks dropped by `drop_oldest_chunk` (already counted).
    pub dropped: Vec<Chunk>,
}

#[derive(Default)]
struct State {
    staged: HashMap<Metadata, Chunk>,
    queue: VecDeque<Chunk>,
    /// Dequeued chunks being written: (count, bytes).
    inflight: (usize, u64),
    /// Bytes in staged, queued and in-flight chunks.
    total: u64,
}

/// A snapshot for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub stage_length: usize,
    pub stage_byte_size: u64,
    pub queue_length: usize,
    pub queue_byte_size: u64,
    pub inflight: usize,
    pub total_queued_size: u64,
    pub queued_records: u64,
}

/// A buffer of chunks.
pub struct Buffer {
    /// Settings.
    pub cfg: BufferConfig,
    /// Chunk keys.
    pub keys: ChunkKeys,
    /// File layout, for file buffers.
    pub dir: Option<FileDir>,
    state: Mutex<State>,
    /// Counters.
    pub metrics: Metrics,
    /// Called with each new file chunk (out_file's `symlink_path`).
    pub on_new_chunk: std::sync::OnceLock<ChunkHook>,
}

/// A callback on new file chunks: their metadata and path.
pub type ChunkHook = Box<dyn Fn(&Metadata, &std::path::Path) + Send + Sync>;

impl Buffer {
    /// A new, empty buffer.
    pub fn new(cfg: BufferConfig, keys: ChunkKeys, dir: Option<FileDir>) -> Buffer {
        Buffer {
            cfg,
            keys,
            dir,
            state: Mutex::new(State::default()),
            metrics: Metrics::default(),
            on_new_chunk: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_memory(&self) -> bool {
        self.dir.is_none()
    }

    /// Take back chunks found on disk at start.
    pub fn restore(&self, r: Recovered) {
        let mut st = self.lock();
        for c in r.queued {
            st.total += c.bytes;
            st.queue.push_back(c);
        }
        for c in r.staged {
            st.total += c.bytes;
            if let Some(older) = st.staged.remove(&c.meta) {
                // Two staged chunks with the same keys: queue the older one.
                let mut older = older;
                let _ = older.mark_queued(self.dir.as_ref());
                st.queue.push_back(older);
            }
            st.staged.insert(c.meta.clone(), c);
        }
    }

    fn full(&self, c: &Chunk) -> bool {
        c.bytes as f64 >= self.cfg.chunk_limit as f64 * self.cfg.full_threshold
            || (self.cfg.records_limit < u64::MAX
                && c.records as f64 >= self.cfg.records_limit as f64 * self.cfg.full_threshold)
    }

    fn enqueue_locked(&self, st: &mut State, meta: &Metadata) {
        if let Some(mut c) = st.staged.remove(meta) {
            if c.records == 0 {
                st.total -= c.bytes;
                c.remove();
                return;
            }
            if let Err(e) = c.mark_queued(self.dir.as_ref()) {
                // The chunk stays valid under its staged name; recovery queues it.
                eprintln!("sluice: cannot mark chunk queued: {e}");
            }
            st.queue.push_back(c);
        }
    }

    /// Store events. All or nothing with respect to limits.
    ///
    /// # Errors
    /// [`Refused::Full`] when there is no room (the caller pushes back), or
    /// [`Refused::Io`] when storage fails.
    pub fn write(&self, payloads: Vec<Payload>) -> Result<Written, Refused> {
        let incoming: u64 = payloads.iter().map(|p| p.data.len() as u64).sum();
        let mut out = Written::default();
        let mut st = self.lock();
        // An empty buffer takes any one write, even one larger than the
        // limit: a batch that could never fit would otherwise stall its
        // input forever (the overshoot is bounded by that one write).
        if st.total + incoming > self.cfg.total_limit && st.total > 0 {
            if self.cfg.overflow == OverflowAction::DropOldestChunk {
                while st.total + incoming > self.cfg.total_limit {
                    let Some(c) = st.queue.pop_front() else { break };
                    st.total -= c.bytes;
                    if self.is_memory() {
                        super::engine::MEMORY.release(c.bytes);
                    }
                    Metrics::inc(&self.metrics.drop_oldest_chunk_count);
                    out.dropped.push(c);
                }
            }
            if st.total + incoming > self.cfg.total_limit && st.total > 0 {
                Metrics::inc(&self.metrics.overflow_count);
                return Err(Refused::Full(format!(
                    "buffer space has too many data: {} bytes buffered, {incoming} more would pass total_limit_size {}",
                    st.total, self.cfg.total_limit
                )));
            }
        }
        if self.is_memory() && !MEMORY.try_reserve(incoming) && !MEMORY.reserve_if_idle(incoming) {
            Metrics::inc(&self.metrics.overflow_count);
            return Err(Refused::Full(format!(
                "the memory budget is used up ({} bytes in memory buffers)",
                MEMORY.used()
            )));
        }
        let mut queued_any = false;
        for p in payloads {
            match self.append_payload(&mut st, p, &mut out) {
                Ok(q) => queued_any |= q,
                Err(e) => {
                    if self.is_memory() {
                        MEMORY.release(incoming);
                    }
                    return Err(Refused::Io(e.to_string()));
                }
            }
        }
        if self.is_memory() {
            // Reserved by size of what came in; rejected events were not stored.
            let rejected: u64 = out.rejected.iter().map(|r| r.len() as u64).sum();
            MEMORY.release(rejected);
        }
        out.queued = queued_any;
        Ok(out)
    }

    fn new_chunk(&self, meta: &Metadata) -> std::io::Result<Chunk> {
        // Chunks store msgpack entries whatever the output formats them as.
        let c = Chunk::create(meta.clone(), self.dir.as_ref(), "msgpack")?;
        if let (Some(hook), Some(path)) = (self.on_new_chunk.get(), c.path()) {
            hook(meta, path);
        }
        Ok(c)
    }

    /// Append one payload, splitting across chunks at `chunk_limit_size`.
    fn append_payload(&self, st: &mut State, p: Payload, out: &mut Written) -> std::io::Result<bool> {
        let mut queued = false;
        if !st.staged.contains_key(&p.meta) {
            let c = self.new_chunk(&p.meta)?;
            st.staged.insert(p.meta.clone(), c);
        }
        let fits_whole = {
            let c = &st.staged[&p.meta];
            c.bytes + p.data.len() as u64 <= self.cfg.chunk_limit
                && c.records + u64::from(p.records) <= self.cfg.records_limit
        };
        let fits_empty = p.data.len() as u64 <= self.cfg.chunk_limit && u64::from(p.records) <= self.cfg.records_limit;
        if !fits_whole && fits_empty {
            // Keep the stream whole: queue the current chunk and start a new one.
            self.enqueue_locked(st, &p.meta);
            queued = true;
            let c = self.new_chunk(&p.meta)?;
            st.staged.insert(p.meta.clone(), c);
        }
        if fits_whole || fits_empty {
            let c = st.staged.get_mut(&p.meta).expect("just ensured");
            c.append(p.data.clone(), p.records, self.cfg.compress, self.dir.as_ref())?;
            st.total += p.data.len() as u64;
            if self.full(c) || self.cfg.mode == Mode::Immediate {
                self.enqueue_locked(st, &p.meta);
                queued = true;
            }
            return Ok(queued);
        }
        // Split at event boundaries.
        let bounds = p.bounds();
        let mut start = 0usize;
        let mut i = 0usize;
        while i < bounds.len() {
            if !st.staged.contains_key(&p.meta) {
                let c = self.new_chunk(&p.meta)?;
                st.staged.insert(p.meta.clone(), c);
            }
            let c = st.staged.get_mut(&p.meta).expect("just ensured");
            let room = self.cfg.chunk_limit.saturating_sub(c.bytes) as usize;
            let room_records = self.cfg.records_limit.saturating_sub(c.records);
            let mut j = i;
            while j < bounds.len() && bounds[j] - start <= room && ((j - i) as u64) < room_records {
                j += 1;
            }
            if j == i {
                if c.records == 0 {
                    // One event larger than a whole chunk: refuse it alone.
                    out.rejected.push(p.data[start..bounds[i]].to_vec());
                    Metrics::inc(&self.metrics.rejected_records);
                    start = bounds[i];
                    i += 1;
                } else {
                    self.enqueue_locked(st, &p.meta);
                    queued = true;
                }
                continue;
            }
            let end = bounds[j - 1];
            c.append(p.data.slice(start..end), (j - i) as u32, self.cfg.compress, self.dir.as_ref())?;
            st.total += (end - start) as u64;
            let now_full = self.full(c) || j < bounds.len();
            start = end;
            i = j;
            if now_full || self.cfg.mode == Mode::Immediate {
                self.enqueue_locked(st, &p.meta);
                queued = true;
            }
        }
        if st.staged.get(&p.meta).is_some_and(|c| c.records == 0) {
            self.enqueue_locked(st, &p.meta);
        }
        Ok(queued)
    }

    /// Queue staged chunks that are due at `now`; returns how many.
    pub fn enqueue_due(&self, now: f64) -> usize {
        let mut st = self.lock();
        let due: Vec<Metadata> = st
            .staged
            .iter()
            .filter(|(_, c)| c.records > 0)
            .filter(|(m, c)| {
                let timekey_due = match (m.timekey, self.cfg.timekey) {
                    (Some(tk), Some(size)) => (tk + size) as f64 + self.cfg.timekey_wait <= now,
                    _ => false,
                };
                match self.cfg.mode {
                    Mode::Immediate => true,
                    Mode::Interval => timekey_due || c.created + self.cfg.flush_interval <= now,
                    Mode::Lazy => timekey_due,
                }
            })
            .map(|(m, _)| m.clone())
            .collect();
        let mut n = 0;
        for m in due {
            if self.cfg.mode == Mode::Interval
                && st.queue.len() + st.inflight.0 >= self.cfg.queued_chunks_limit
                && self.cfg.timekey.is_none()
            {
                break;
            }
            self.enqueue_locked(&mut st, &m);
            n += 1;
        }
        n
    }

    /// Queue every staged chunk (shutdown, `SIGUSR1`).
    pub fn enqueue_all(&self) -> usize {
        let mut st = self.lock();
        let all: Vec<Metadata> = st.staged.keys().cloned().collect();
        let n = all.len();
        for m in all {
            self.enqueue_locked(&mut st, &m);
        }
        n
    }

    /// Take the oldest queued chunk to write it.
    pub fn dequeue(&self) -> Option<Chunk> {
        let mut st = self.lock();
        let c = st.queue.pop_front()?;
        st.inflight.0 += 1;
        st.inflight.1 += c.bytes;
        Some(c)
    }

    /// A written chunk: forget it.
    pub fn purge(&self, c: Chunk) {
        let mut st = self.lock();
        st.inflight.0 -= 1;
        st.inflight.1 -= c.bytes;
        st.total -= c.bytes;
        if self.is_memory() {
            MEMORY.release(c.bytes);
        }
        drop(st);
        c.remove();
    }

    /// A chunk that failed to write: back to the front of the queue.
    pub fn takeback(&self, c: Chunk) {
        let mut st = self.lock();
        st.inflight.0 -= 1;
        st.inflight.1 -= c.bytes;
        Metrics::inc(&self.metrics.rollback_count);
        st.queue.push_front(c);
    }

    /// Remove every queued chunk (retries exhausted); the caller backs them up.
    pub fn take_queue(&self) -> Vec<Chunk> {
        let mut st = self.lock();
        let chunks: Vec<Chunk> = st.queue.drain(..).collect();
        let bytes: u64 = chunks.iter().map(|c| c.bytes).sum();
        st.total -= bytes;
        if self.is_memory() {
            MEMORY.release(bytes);
        }
        chunks
    }

    /// Counts for metrics.
    pub fn stats(&self) -> Stats {
        let st = self.lock();
        Stats {
            stage_length: st.staged.len(),
            stage_byte_size: st.staged.values().map(|c| c.bytes).sum(),
            queue_length: st.queue.len(),
            queue_byte_size: st.queue.iter().map(|c| c.bytes).sum(),
            inflight: st.inflight.0,
            total_queued_size: st.total,
            queued_records: st.queue.iter().map(|c| c.records).sum(),
        }
    }

    /// True if nothing is queued or being written.
    pub fn queue_empty(&self) -> bool {
        let st = self.lock();
        st.queue.is_empty() && st.inflight.0 == 0
    }

    /// Time when the oldest staged chunk becomes due (for the enqueue timer).
    pub fn now() -> f64 {
        unix_now()
    }
}
