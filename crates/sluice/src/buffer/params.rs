//! The `<buffer>` section: every parameter of Fluentd's buffered outputs,
//! with Fluentd's defaults (`output.rb`, `buffer.rb`, `buf_file.rb`).

use sluice_config::{ParamEnum, Params, Size, TimeSpan};

/// Buffer storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum BufferType {
    /// Chunks in memory; lost on a crash, flushed at shutdown by default.
    Memory,
    /// Chunks in files with checksummed records; recovered on the next start.
    File,
    /// Fluentd's single-file buffer; handled as `file`.
    FileSingle,
}

/// When chunks are flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum FlushMode {
    /// `lazy` with a `time` chunk key, `interval` otherwise.
    Default,
    /// When a timekey ends (plus `timekey_wait`) or a chunk is full.
    Lazy,
    /// Every `flush_interval`.
    Interval,
    /// As soon as events arrive.
    Immediate,
}

/// What happens when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum OverflowAction {
    /// Refuse the events: the input is told and pushes back (waits, withholds acks).
    ThrowException,
    /// Make the emitting input wait until there is room.
    Block,
    /// Drop the oldest queued chunk (counted and logged) to make room.
    DropOldestChunk,
}

/// How the wait between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum RetryType {
    /// `retry_wait * base^n`, capped by `retry_max_interval`.
    ExponentialBackoff,
    /// Always `retry_wait`.
    Periodic,
}

/// Compression of chunk contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum ChunkCompress {
    Text,
    Gzip,
    Zstd,
}

/// How often the file buffer forces data to disk (sluice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum FsyncPolicy {
    /// Before every emit is acknowledged (safest, slowest).
    Always,
    /// When a chunk is queued for flushing, and at shutdown.
    Chunk,
    /// Never; the kernel writes back (survives a process crash, not a power loss).
    Never,
}

/// Buffering of an output: chunking, flushing, retries and limits.
#[derive(Debug, Clone, Params)]
pub struct BufferParams {
    /// Chunk keys, the section argument: `tag`, `time`, record keys, `$.nested.key`.
    #[param(arg, default = "")]
    pub chunk_keys: Vec<String>,
    /// Storage: memory or file.
    #[param(name = "@type", alias = "type", default = "memory")]
    pub r#type: BufferType,
    /// Directory (or `dir/prefix.*`) of a file buffer.
    pub path: Option<String>,
    /// Suffix of file buffer chunk files.
    #[param(default = ".log")]
    pub path_suffix: String,
    /// Width of a time chunk (required with the `time` chunk key).
    pub timekey: Option<TimeSpan>,
    /// How long after a timekey ends its chunk is flushed (late events still fit).
    #[param(default = "600")]
    pub timekey_wait: TimeSpan,
    /// Cut timekeys in UTC instead of local time.
    #[param(default = "false")]
    pub timekey_use_utc: bool,
    /// Zone to cut timekeys in (`+0900`, `Asia/Tokyo`).
    pub timekey_zone: Option<String>,
    /// Largest chunk (default 8m for memory, 256m for file).
    pub chunk_limit_size: Option<Size>,
    /// Most records in a chunk.
    pub chunk_limit_records: Option<u64>,
    /// Largest total of all chunks (default 512m for memory, 64g for file).
    pub total_limit_size: Option<Size>,
    /// Most queued chunks (v0.12 compatibility; sets total_limit_size).
    pub queue_limit_length: Option<u64>,
    /// Most chunks queued at once before new ones wait.
    pub queued_chunks_limit_size: Option<u64>,
    /// A chunk this full (ratio of chunk_limit_size) is flushed.
    #[param(default = "0.95")]
    pub chunk_full_threshold: f64,
    /// Compression of chunk contents: text, gzip or zstd.
    #[param(default = "text")]
    pub compress: ChunkCompress,
    /// Flush everything at shutdown (default true for memory, false for file: file chunks are resumed).
    pub flush_at_shutdown: Option<bool>,
    /// When to flush: default, lazy, interval or immediate.
    #[param(default = "default")]
    pub flush_mode: FlushMode,
    /// Flush period in interval mode.
    #[param(default = "60")]
    pub flush_interval: TimeSpan,
    /// Parallel flushes.
    #[param(default = "1")]
    pub flush_thread_count: u32,
    /// Wait between checks for chunks to flush.
    #[param(default = "1.0")]
    pub flush_thread_interval: f64,
    /// Wait between flushes while chunks are queued.
    #[param(default = "1.0")]
    pub flush_thread_burst_interval: f64,
    /// How long a delayed-commit write may stay unacknowledged.
    #[param(default = "60")]
    pub delayed_commit_timeout: TimeSpan,
    /// What to do when the buffer is full.
    #[param(default = "throw_exception")]
    pub overflow_action: OverflowAction,
    /// Retry failed chunks forever.
    #[param(default = "false")]
    pub retry_forever: bool,
    /// Give up on a chunk after retrying this long.
    #[param(default = "72h")]
    pub retry_timeout: TimeSpan,
    /// Give up on a chunk after this many retries.
    pub retry_max_times: Option<u32>,
    /// Switch to `<secondary>` after this share of retry_timeout.
    #[param(default = "0.8")]
    pub retry_secondary_threshold: f64,
    /// exponential_backoff or periodic.
    #[param(default = "exponential_backoff")]
    pub retry_type: RetryType,
    /// First wait between retries.
    #[param(default = "1")]
    pub retry_wait: TimeSpan,
    /// Growth factor of exponential backoff.
    #[param(default = "2")]
    pub retry_exponential_backoff_base: f64,
    /// Longest wait between retries.
    pub retry_max_interval: Option<TimeSpan>,
    /// Spread retries by ±12.5%.
    #[param(default = "true")]
    pub retry_randomize: bool,
    /// Do not keep chunks that cannot be written in the backup directory.
    #[param(default = "false")]
    pub disable_chunk_backup: bool,
    /// When the file buffer forces data to disk: always, chunk or never.
    #[param(default = "chunk")]
    pub fsync: FsyncPolicy,
}
