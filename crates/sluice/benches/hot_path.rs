//! Micro-benchmark of the per-event work on the tail → file path, without IO:
//! JSON lines parsed into an event stream (what in_tail does per line) and
//! an event stream formatted by out_file's default formatter (what a flush
//! does per event).
//!
//! `cargo bench -p sluice --bench hot_path` prints the time per 1000 events.
//! Minimum times are the stable figure on a noisy machine.

use sluice::log::{LogSink, Logger};
use sluice::plugin::parser::{self, Scratch};
use sluice::plugin::{BuildCx, EngineEnv, Formatter, PluginInfo};
use sluice_config::{ConfigureCx, Diagnostics};
use sluice_event::{EventStream, EventStreamBuilder, EventTime, msgpack};
use std::sync::Weak;

const EVENTS: usize = 1000;

fn main() {
    divan::main();
}

/// The benchmark harness's line shape (~208 bytes: 6 strings, 4 integers).
fn lines() -> Vec<Vec<u8>> {
    (0..EVENTS)
        .map(|i| {
            format!(
                r#"{{"host":"192.168.{}.{}","user":"frank","method":"GET","path":"/apache_pb.gif","agent":"Mozilla/5.0 (X11; Linux x86_64)","referer":"http://example.com/start","status":200,"size":{},"latency_ms":{},"seq":{}}}"#,
                i % 250,
                i % 199,
                2000 + i % 5000,
                i % 97,
                1_000_000 + i
            )
            .into_bytes()
        })
        .collect()
}

fn env() -> EngineEnv {
    EngineEnv {
        worker_id: 0,
        workers: 1,
        hostname: "bench".into(),
        log: Logger::new(
            LogSink::new(Box::new(std::io::sink()), sluice::log::LogFormat::Text, "%Y"),
            sluice::log::Level::Warn,
        ),
        router: Weak::new(),
        dry_run: true,
        root_dir: None,
        file_permission: None,
        dir_permission: None,
    }
}

fn with_cx<T>(f: impl FnOnce(&mut BuildCx<'_, '_>) -> T) -> T {
    let env = env();
    let mut diags = Diagnostics::new(false);
    let mut cfg = ConfigureCx::new(&mut diags);
    let info = PluginInfo { id: "bench".into(), has_id: false, type_name: "bench".into(), log: env.log.clone() };
    let mut cx = BuildCx { cfg: &mut cfg, env: &env, info, label: None };
    f(&mut cx)
}

fn stream() -> EventStream {
    let p = with_cx(|cx| parser::build(None, Some("json"), cx)).expect("json parser");
    let mut s = Scratch::default();
    let mut b = EventStreamBuilder::new();
    for l in lines() {
        p.parse(&l, &mut s, &mut |t, rec| b.push_raw(t.unwrap_or_default(), rec.unwrap_or_default())).expect("parses");
    }
    b.finish()
}

/// in_tail's per-line work: `<parse> @type json` into a stream builder.
#[divan::bench]
fn parse_json_lines(bencher: divan::Bencher) {
    let p = with_cx(|cx| parser::build(None, Some("json"), cx)).expect("json parser");
    let lines = lines();
    let mut s = Scratch::default();
    bencher.counter(divan::counter::ItemsCount::new(EVENTS)).bench_local(|| {
        let mut b = EventStreamBuilder::with_capacity(256 * EVENTS);
        for l in &lines {
            let _ = p.parse(l, &mut s, &mut |t, rec| {
                if let (Some(t), Some(rec)) = (t, rec) {
                    b.push_raw(t, rec);
                }
            });
        }
        b.finish()
    });
}

/// A flush's per-event work: out_file's default format (time, tag, JSON).
#[divan::bench]
fn format_out_file(bencher: divan::Bencher) {
    let f: Box<dyn Formatter> =
        with_cx(|cx| sluice::plugin::formatter::build(None, "out_file", cx)).expect("out_file formatter");
    let es = stream();
    let mut out = Vec::with_capacity(300 * EVENTS);
    bencher.counter(divan::counter::ItemsCount::new(EVENTS)).bench_local(|| {
        // As a flush renders a chunk: one walk over the entries.
        out.clear();
        let data = es.as_bytes();
        let mut at = 0;
        while at < data.len() {
            let (_, p) = msgpack::read_array_len(data, at).expect("entry");
            let (time, p) = EventTime::read(data, p).expect("time");
            match f.format_walk("bench.log", time, &data[p..], &mut out) {
                Some(Ok(len)) => at = p + len,
                _ => panic!("out_file formats by walking"),
            }
        }
        out.len()
    });
}
