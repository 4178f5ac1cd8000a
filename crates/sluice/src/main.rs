//! The `sluice` command: `sluice -c fluent.conf`.

use clap::{ArgAction, Parser, Subcommand};
use sluice::engine::{self, BuildOptions};
use sluice::log::{Level, LogFormat, LogSink, Logger};
use sluice::plugin::{Shutdown, registry};
use sluice::system::LogFormatParam;
use sluice_config::{Diagnostics, Severity};
use std::path::PathBuf;
use std::process::ExitCode;

/// A Fluentd-compatible log collector: runs Fluentd configuration files.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The configuration file (Fluentd syntax).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Parse and configure every plugin without opening sockets or files;
    /// print every problem and exit non-zero if any is an error.
    #[arg(long)]
    dry_run: bool,

    /// More log output (-v debug, -vv trace).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,

    /// Less log output (-q warn, -qq error).
    #[arg(short = 'q', long = "quiet", action = ArgAction::Count)]
    quiet: u8,

    /// Write sluice's own log (and the stdout output) to this file.
    #[arg(short = 'o', long = "log", value_name = "PATH")]
    log: Option<PathBuf>,

    /// Unknown parameters and lenient values become errors.
    #[arg(long)]
    strict: bool,

    /// Do not log the configuration at start.
    #[arg(long)]
    suppress_config_dump: bool,

    /// Accepted for Fluentd compatibility (sluice always runs as one process).
    #[arg(long, hide = true)]
    no_supervisor: bool,

    /// Accepted for Fluentd compatibility; Ruby plugin directories are not loaded.
    #[arg(short = 'p', long = "plugin", hide = true)]
    plugin_dirs: Vec<PathBuf>,

    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
enum Cmd {
    /// Send records to a Forward input (like fluent-cat): JSON lines from files or stdin.
    Cat {
        /// Tag of the records.
        tag: String,
        /// Files to send (stdin if none).
        files: Vec<String>,
        /// Server host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Server port.
        #[arg(short = 'p', long, default_value_t = 24224)]
        port: u16,
        /// Input format: json (one object per line), msgpack (a stream of maps) or none (lines as {"message": …}).
        #[arg(long, default_value = "json")]
        format: String,
        /// Records per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Do not wait for the server's ack of each request.
        #[arg(long)]
        no_ack: bool,
        /// Shared key for the <security> handshake.
        #[arg(long)]
        shared_key: Option<String>,
        /// This client's name in the handshake (default: the host name).
        #[arg(long)]
        self_hostname: Option<String>,
        /// User name for user authentication.
        #[arg(long, default_value = "")]
        username: String,
        /// Password for user authentication.
        #[arg(long, default_value = "")]
        password: String,
        /// Connect with TLS.
        #[arg(long)]
        tls: bool,
        /// CA certificate file to trust (TLS).
        #[arg(long)]
        tls_ca: Vec<String>,
        /// Accept any server certificate (TLS).
        #[arg(long)]
        tls_insecure: bool,
        /// Client certificate (TLS).
        #[arg(long)]
        tls_cert: Option<String>,
        /// Client private key (TLS).
        #[arg(long)]
        tls_key: Option<String>,
        /// Do not show a progress bar for files.
        #[arg(long)]
        no_progress: bool,
    },
    /// Print the reference of a built-in plugin, generated from its declared parameters.
    PluginDoc {
        /// The plugin's @type (e.g. stdout, sample, record_transformer).
        name: Option<String>,
        /// Kind: input, output, filter or formatter (needed when a name is several kinds).
        #[arg(long)]
        kind: Option<String>,
        /// List the built-in plugins.
        #[arg(long)]
        list: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.cmd {
        Some(Cmd::PluginDoc { name, kind, list }) => plugin_doc(name.as_deref(), kind.as_deref(), *list),
        Some(Cmd::Cat {
            tag,
            files,
            host,
            port,
            format,
            batch,
            no_ack,
            shared_key,
            self_hostname,
            username,
            password,
            tls,
            tls_ca,
            tls_insecure,
            tls_cert,
            tls_key,
            no_progress,
        }) => {
            if !["json", "msgpack", "none"].contains(&format.as_str()) {
                eprintln!("sluice cat: --format must be json, msgpack or none");
                return ExitCode::from(2);
            }
            let o = sluice::cat::CatOptions {
                tag: tag.clone(),
                files: files.clone(),
                host: host.clone(),
                port: *port,
                format: format.clone(),
                batch: (*batch).max(1),
                ack: !no_ack,
                security: shared_key.as_ref().map(|k| sluice_forward::handshake::ClientSecurity {
                    self_hostname: self_hostname.clone().unwrap_or_else(sluice::plugin::hostname),
                    shared_key: k.clone(),
                    username: username.clone(),
                    password: password.clone(),
                }),
                tls: tls.then(|| sluice::plugin::tls::ClientTls {
                    verify_hostname: !tls_insecure,
                    ca_paths: tls_ca.clone(),
                    client_cert: tls_cert.clone(),
                    client_key: tls_key.clone(),
                    client_key_passphrase: None,
                    allow_self_signed: false,
                    insecure: *tls_insecure,
                    version: None,
                }),
                progress: !no_progress && !files.is_empty(),
            };
            match sluice::cat::run(&o) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluice cat: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => run(cli),
    }
}

/// A plugin name and its declaration.
type Doc = (&'static str, fn() -> &'static sluice_config::SectionSpec);

fn plugin_doc(name: Option<&str>, kind: Option<&str>, list: bool) -> ExitCode {
    let r = registry::registry();
    let kinds: [(&str, Vec<Doc>); 5] = [
        ("input", r.inputs.iter().map(|d| (d.name, d.spec)).collect()),
        ("output", r.outputs.iter().map(|d| (d.name, d.spec)).collect()),
        ("filter", r.filters.iter().map(|d| (d.name, d.spec)).collect()),
        ("formatter", r.formatters.iter().map(|d| (d.name, d.spec)).collect()),
        ("parser", r.parsers.iter().map(|d| (d.name, d.spec)).collect()),
    ];
    if list || name.is_none() {
        for (k, defs) in &kinds {
            println!("{k}: {}", defs.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "));
        }
        return ExitCode::SUCCESS;
    }
    let name = name.unwrap_or_default();
    let mut found = false;
    for (k, defs) in &kinds {
        if kind.is_some_and(|want| want != *k) {
            continue;
        }
        for (n, spec) in defs {
            if *n == name || registry::spec(k, name).is_some_and(|s| std::ptr::eq(s, spec())) {
                let mut out = String::new();
                sluice_config::params::render_markdown(&format!("{k} `{n}`"), spec(), &mut out, 1);
                print!("{out}");
                found = true;
                break;
            }
        }
    }
    if !found {
        eprintln!("sluice: no built-in plugin named '{name}'; run `sluice plugin-doc --list`");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

fn open_sink(path: Option<&PathBuf>, format: LogFormat, time_format: &str) -> Result<std::sync::Arc<LogSink>, String> {
    match path {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("cannot open log file {}: {e}", p.display()))?;
            Ok(LogSink::new(Box::new(f), format, time_format))
        }
        None => Ok(LogSink::new(Box::new(std::io::stdout()), format, time_format)),
    }
}

fn print_diags(diags: &Diagnostics, sources: &sluice_config::SourceMap) {
    eprint!("{}", diags.render(sources));
}

fn run(cli: Cli) -> ExitCode {
    let Some(config) = cli.config.clone() else {
        eprintln!("sluice: no configuration file given; run `sluice -c fluent.conf` (see --help)");
        return ExitCode::from(2);
    };
    let hostname = sluice::plugin::hostname();
    let mut diags = Diagnostics::new(cli.strict);
    let loaded = engine::load(&config, None, &hostname, &mut diags);
    let (Some(root), Some(system)) = (loaded.root.as_ref(), loaded.system.clone()) else {
        print_diags(&diags, &loaded.sources);
        eprintln!("sluice: {} error(s) in {}", diags.error_count().max(1), config.display());
        return ExitCode::from(1);
    };
    let strict = cli.strict || system.strict_config_value.unwrap_or(false);
    let log_cfg = system.log.clone();
    let format = match log_cfg.as_ref().map(|l| l.format) {
        Some(LogFormatParam::Json) => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let time_format = log_cfg.as_ref().map_or("%Y-%m-%d %H:%M:%S %z".to_string(), |l| l.time_format.clone());
    let log_path = cli.log.clone().or_else(|| log_cfg.as_ref().and_then(|l| l.path.clone()).map(PathBuf::from));
    let sink = match open_sink(log_path.as_ref(), format, &time_format) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(1);
        }
    };
    let level = system.log_level.shift(i32::from(cli.quiet) - i32::from(cli.verbose));
    let log = Logger::new(sink, level);
    if !cli.plugin_dirs.is_empty() {
        sluice::warn!(log, "-p/--plugin is ignored: sluice has its plugins built in");
    }
    sluice::buffer::engine::MEMORY.set_limit(system.buffer_memory_limit.bytes());
    if system.workers == 0 {
        eprintln!("sluice: invalid number of workers (must be > 0):0");
        return ExitCode::from(1);
    }
    if !cli.dry_run {
        sluice::info!(log, "parsing config file is succeeded", "path" => config.display().to_string());
    }

    // Configure every worker: each parses the file with its own worker_id.
    let mut all = Diagnostics::new(strict);
    all.extend(diags);
    let mut engines = Vec::new();
    let mut sources = loaded.sources.clone();
    for w in 0..system.workers {
        let mut wd = Diagnostics::new(strict);
        let l = engine::load(&config, Some(w), &hostname, &mut wd);
        let Some(wroot) = l.root else {
            all.extend(wd);
            continue;
        };
        let selected = engine::select_worker(&wroot, w, system.workers, &mut wd);
        let opts = BuildOptions {
            worker_id: w,
            workers: system.workers,
            hostname: hostname.clone(),
            log: log.clone(),
            dry_run: cli.dry_run,
            announce: w == 0 && !cli.dry_run,
            paths: engine::SystemPaths::from_system(&system),
        };
        if let Some(e) = engine::build(&selected, opts, &mut wd) {
            engines.push(e);
        }
        all.extend(wd);
        if w == 0 {
            sources = l.sources;
        }
    }
    let diags = engine::dedup(all);

    if cli.dry_run {
        print_diags(&diags, &sources);
        let (e, w) = (diags.error_count(), diags.len() - diags.error_count());
        if e > 0 {
            eprintln!("sluice: {} has {e} error(s) and {w} warning(s)", config.display());
            return ExitCode::from(1);
        }
        eprintln!("sluice: {} is valid ({w} warning(s))", config.display());
        return ExitCode::SUCCESS;
    }
    if diags.has_errors() {
        print_diags(&diags, &sources);
        eprintln!("sluice: {} error(s) in {}; not starting", diags.error_count(), config.display());
        return ExitCode::from(1);
    }
    for d in diags.iter() {
        let lvl = if d.severity == Severity::Error { Level::Error } else { Level::Warn };
        let mut msg = d.headline(&sources);
        // The headline carries "warning: "; the log line has its own level.
        msg = msg.replacen(": warning: ", ": ", 1);
        if let Some(h) = &d.help {
            msg.push_str(&format!(" ({h})"));
        }
        log.log(lvl, &msg, &[]);
    }
    if !(cli.suppress_config_dump || system.suppress_config_dump.unwrap_or(false)) {
        sluice::info!(log, format!("using configuration file: {}", sluice::dump::dump(root)));
    }
    sluice::info!(log, format!("starting sluice-{}", sluice::VERSION), "pid" => std::process::id());

    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("sluice").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let ok = rt.block_on(async move {
        let (tx, shutdown) = Shutdown::new();
        let slog = log.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
                sluice::error!(slog, "cannot install signal handlers");
                return;
            };
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            sluice::info!(slog, format!("Received graceful stop ({name})"));
            let _ = tx.send(true);
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            sluice::warn!(slog, "Received a second signal: exiting immediately");
            std::process::exit(130);
        });
        let r = engine::run_workers(engines, shutdown, log.clone()).await;
        sluice::info!(log, "sluice exits");
        r.is_ok()
    });
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
