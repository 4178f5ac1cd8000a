//! The `<system>` directive.

use sluice_config::{Element, ParamEnum, Params, Size, TimeSpan};

/// Format of sluice's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum LogFormatParam {
    Text,
    Json,
}

/// Own-log settings (`<system><log>`).
#[derive(Debug, Clone, Params)]
pub struct SystemLogParams {
    /// Write the log to this file instead of stdout (like `-o`).
    pub path: Option<String>,
    /// Line format: text or json.
    #[param(default = "text")]
    pub format: LogFormatParam,
    /// Ruby strftime format of the line time.
    #[param(default = "%Y-%m-%d %H:%M:%S %z")]
    pub time_format: String,
    /// Log rotation by age (daily, weekly, monthly or a count); accepted, not yet applied.
    pub rotate_age: Option<String>,
    /// Log rotation by size; accepted, not yet applied.
    pub rotate_size: Option<Size>,
    /// Level at which stack traces are printed; accepted.
    pub forced_stacktrace_level: Option<String>,
}

/// Process-wide settings.
#[derive(Debug, Clone, Params)]
pub struct SystemParams {
    /// Number of workers (run as threads of one process in sluice).
    #[param(default = "1")]
    pub workers: u32,
    /// Delay before a failed worker restarts.
    #[param(default = "0")]
    pub restart_worker_interval: TimeSpan,
    /// Directory for plugin state and buffers (`{root_dir}/worker{N}/{@id}/`).
    pub root_dir: Option<String>,
    /// Minimum level of sluice's own log.
    #[param(default = "info")]
    pub log_level: crate::log::Level,
    /// Print a repeated stack trace only once.
    pub suppress_repeated_stacktrace: Option<bool>,
    /// Drop a log line identical to the previous one within this interval.
    pub ignore_repeated_log_interval: Option<TimeSpan>,
    /// Drop a log line seen within this interval.
    pub ignore_same_log_interval: Option<TimeSpan>,
    /// Rate limit of "emit transaction failed" lines.
    pub emit_error_log_interval: Option<TimeSpan>,
    /// Do not log the configuration at start.
    pub suppress_config_dump: Option<bool>,
    /// Keep turning own log lines into events during shutdown.
    pub log_event_verbose: Option<bool>,
    /// Start without `<source>`s.
    pub without_source: Option<bool>,
    /// Start only `<source>`s, buffering their events.
    pub with_source_only: Option<bool>,
    /// Address of the RPC endpoint; accepted, not served.
    pub rpc_endpoint: Option<String>,
    /// Enable the RPC config dump; accepted.
    pub enable_get_dump: Option<bool>,
    /// Process title.
    pub process_name: Option<String>,
    /// Make lenient value coercions errors (like `--strict`).
    pub strict_config_value: Option<bool>,
    /// Decode msgpack's timestamp extension (-1) as time.
    pub enable_msgpack_time_support: Option<bool>,
    /// Do not share listening sockets between workers.
    pub disable_shared_socket: Option<bool>,
    /// Count records per input.
    #[param(default = "true")]
    pub enable_input_metrics: bool,
    /// Count bytes per plugin.
    pub enable_size_metrics: Option<bool>,
    /// Ruby's JIT; ignored.
    #[param(default = "false")]
    pub enable_jit: bool,
    /// Mode of created files, octal (`0644`).
    pub file_permission: Option<String>,
    /// Mode of created directories, octal (`0755`).
    pub dir_permission: Option<String>,
    /// Directory whose `*.conf` files are also loaded.
    pub config_include_dir: Option<String>,
    /// Process umask, octal.
    pub umask: Option<String>,
    /// Most bytes all memory buffers may hold together (sluice); past it, inputs are pushed back.
    #[param(default = "1g")]
    pub buffer_memory_limit: Size,
    /// Own-log settings.
    #[section(name = "log")]
    pub log: Option<SystemLogParams>,
    /// Counter server; accepted, not implemented.
    #[section(name = "counter_server")]
    pub counter_server: Option<Element>,
    /// Counter client; accepted, not implemented.
    #[section(name = "counter_client")]
    pub counter_client: Option<Element>,
    /// Metrics backend; accepted.
    #[section(name = "metrics")]
    pub metrics: Option<Element>,
    /// Buffer for `with_source_only`; accepted.
    #[section(name = "source_only_buffer")]
    pub source_only_buffer: Option<Element>,
}
