//! The buffered output engine: flushing, retries, secondary hand-off,
//! backups, overflow, chunk splitting, timekeys and shutdown behaviour.

use sluice::buffer::output::{
    BufferDefaults, BufferedOutput, ChunkOutput, ChunkView, EventFormat, WriteError, WriteFuture, build_parts,
};
use sluice::log::{LogSink, Logger};
use sluice::plugin::{BuildCx, EmitError, EngineEnv, Output, PluginInfo, Shutdown, StartCx};
use sluice_config::{ConfigureCx, Diagnostics, SourceMap};
use sluice_event::{EventStream, EventStreamBuilder, EventTime, Record};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A written chunk: its tag, timekey and event ids.
type Written = (Option<String>, Option<i64>, Vec<u64>);

/// Records every chunk it is given; fails the first `fail` writes.
#[derive(Default)]
struct Mock {
    fail: AtomicUsize,
    unrecoverable: bool,
    chunks: Mutex<Vec<Written>>,
}

impl Mock {
    fn failing(n: usize) -> Arc<Mock> {
        Arc::new(Mock { fail: AtomicUsize::new(n), ..Default::default() })
    }
    fn ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.chunks.lock().unwrap().iter().flat_map(|c| c.2.clone()).collect();
        v.sort_unstable();
        v
    }
    fn chunk_count(&self) -> usize {
        self.chunks.lock().unwrap().len()
    }
}

fn ids_of(es: &EventStream) -> Vec<u64> {
    es.iter()
        .map(|e| {
            sluice_event::rubyfmt::to_s(&sluice::plugin::record_accessor::decode_value(e.record.get("id").unwrap()))
                .parse()
                .unwrap()
        })
        .collect()
}

impl ChunkOutput for Mock {
    fn write<'a>(&'a self, chunk: &'a ChunkView<'a>) -> WriteFuture<'a> {
        Box::pin(async move {
            let left = self.fail.load(Ordering::SeqCst);
            if left > 0 {
                self.fail.store(left - 1, Ordering::SeqCst);
                return Err(if self.unrecoverable {
                    WriteError::Unrecoverable("bad data".into())
                } else {
                    WriteError::Retryable("destination down".into())
                });
            }
            let es = chunk.events().expect("msgpack chunk");
            self.chunks.lock().unwrap().push((chunk.meta.tag.clone(), chunk.meta.timekey, ids_of(&es)));
            Ok(())
        })
    }
}

struct Env {
    env: EngineEnv,
    _root: tempfile::TempDir,
}

fn env() -> Env {
    let root = tempfile::tempdir().unwrap();
    let log = Logger::new(
        LogSink::new(Box::new(std::io::sink()), sluice::log::LogFormat::Text, "%Y"),
        sluice::log::Level::Info,
    );
    let env = EngineEnv {
        worker_id: 0,
        workers: 1,
        hostname: "h".into(),
        log,
        router: Weak::new(),
        dry_run: false,
        root_dir: Some(root.path().to_string_lossy().into_owned()),
        file_permission: None,
        dir_permission: None,
    };
    Env { env, _root: root }
}

/// A buffered output over `primary` with the `<buffer>` body `conf`.
fn buffered(e: &Env, conf: &str, primary: Arc<Mock>, secondary: Option<Arc<Mock>>) -> BufferedOutput {
    let text = format!("<buffer tag>\n{conf}\n</buffer>\n");
    let mut sm = SourceMap::new();
    let mut diags = Diagnostics::new(false);
    let root = sluice_config::parse_str(
        Path::new("b.conf"),
        "b.conf",
        text,
        &sluice_config::parser::NoEval,
        &mut sm,
        &mut diags,
    )
    .unwrap();
    let mut cfg = ConfigureCx::new(&mut diags);
    let info = PluginInfo { id: "out_test".into(), has_id: true, type_name: "test".into(), log: e.env.log.clone() };
    let mut cx = BuildCx { cfg: &mut cfg, env: &e.env, info, label: None };
    let b = build_parts(
        Some(&root.elements[0]),
        BufferDefaults::TAG,
        EventFormat::Msgpack,
        primary,
        secondary.map(|s| s as Arc<dyn ChunkOutput>),
        &mut cx,
    );
    assert!(!diags.has_errors(), "{}", diags.render(&sm));
    b.unwrap()
}

fn stream(ids: std::ops::Range<u64>, pad: usize, time: EventTime) -> EventStream {
    let mut b = EventStreamBuilder::new();
    for id in ids {
        let mut r = Record::new();
        r.insert("id", id);
        r.insert("pad", "x".repeat(pad));
        b.push_raw(time, &r.to_msgpack());
    }
    b.finish()
}

fn now() -> EventTime {
    EventTime::now()
}

async fn wait_until(what: &str, secs: f64, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start(o: &BufferedOutput) -> tokio::sync::watch::Sender<bool> {
    let (tx, rx) = Shutdown::new();
    o.start(&StartCx { shutdown: rx });
    tx
}

#[tokio::test]
async fn retries_then_succeeds_without_loss() {
    let e = env();
    let m = Mock::failing(2);
    let o = buffered(
        &e,
        "flush_mode immediate\nretry_wait 0.05\nretry_randomize false\nflush_thread_interval 0.01",
        m.clone(),
        None,
    );
    let _tx = start(&o);
    o.emit("app", &stream(0..100, 10, now())).unwrap();
    wait_until("the chunk written", 10.0, || m.chunk_count() == 1).await;
    assert_eq!(m.ids(), (0..100).collect::<Vec<_>>());
    assert_eq!(o.metrics().retry_count.load(Ordering::Relaxed), 2);
    assert_eq!(o.metrics().rollback_count.load(Ordering::Relaxed), 2);
    assert_eq!(o.metrics().write_count.load(Ordering::Relaxed), 3, "attempts, as Fluentd counts them");
    o.shutdown().await;
}

#[tokio::test]
async fn secondary_takes_over_after_the_threshold() {
    let e = env();
    let primary = Mock::failing(usize::MAX);
    let secondary = Mock::failing(0);
    let o = buffered(
        &e,
        "flush_mode immediate\nretry_wait 0.05\nretry_timeout 1s\nretry_secondary_threshold 0.3\nretry_randomize false\nflush_thread_interval 0.01",
        primary.clone(),
        Some(secondary.clone()),
    );
    let _tx = start(&o);
    let t0 = Instant::now();
    o.emit("app", &stream(0..10, 1, now())).unwrap();
    wait_until("the secondary", 10.0, || secondary.chunk_count() == 1).await;
    // The switch happens at start + retry_timeout * threshold (0.3 s), not before.
    assert!(t0.elapsed() >= Duration::from_millis(250), "{:?}", t0.elapsed());
    assert_eq!(secondary.ids(), (0..10).collect::<Vec<_>>());
    assert_eq!(primary.chunk_count(), 0);
    assert_eq!(o.metrics().write_secondary_count.load(Ordering::Relaxed), 1);
    o.shutdown().await;
}

#[tokio::test]
async fn exhausted_retries_back_up_every_queued_chunk() {
    let e = env();
    let m = Mock::failing(usize::MAX);
    let o = buffered(
        &e,
        "flush_mode immediate\nretry_wait 0.02\nretry_max_times 2\nretry_randomize false\nflush_thread_interval 0.01",
        m.clone(),
        None,
    );
    let _tx = start(&o);
    o.emit("app", &stream(0..5, 1, now())).unwrap();
    let backup = o.backup_dir().to_path_buf();
    wait_until("a backup file", 10.0, || std::fs::read_dir(&backup).map(|d| d.count() > 0).unwrap_or(false)).await;
    let files: Vec<_> = std::fs::read_dir(&backup).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let es = EventStream::from_bytes(bytes::Bytes::from(std::fs::read(&files[0]).unwrap())).unwrap();
    assert_eq!(ids_of(&es), (0..5).collect::<Vec<_>>(), "the backup holds the events");
    assert!(backup.starts_with(e.env.root_dir.as_deref().unwrap()) && backup.ends_with("backup/worker0/out_test"));
    assert_eq!(o.metrics().backup_count.load(Ordering::Relaxed), 1);
    assert_eq!(o.buffer().stats().total_queued_size, 0);
    o.shutdown().await;
}

#[tokio::test]
async fn unrecoverable_errors_skip_retries() {
    let e = env();
    let m = Arc::new(Mock { fail: AtomicUsize::new(1), unrecoverable: true, ..Default::default() });
    let o = buffered(&e, "flush_mode immediate\nflush_thread_interval 0.01", m.clone(), None);
    let _tx = start(&o);
    o.emit("app", &stream(0..3, 1, now())).unwrap();
    wait_until("the backup", 5.0, || o.metrics().backup_count.load(Ordering::Relaxed) == 1).await;
    assert_eq!(o.metrics().retry_count.load(Ordering::Relaxed), 0);
    o.emit("app", &stream(3..4, 1, now())).unwrap();
    wait_until("the next chunk", 5.0, || m.chunk_count() == 1).await;
    o.shutdown().await;
}

#[tokio::test]
async fn overflow_pushes_back_or_drops_the_oldest_chunk() {
    let e = env();
    let m = Mock::failing(usize::MAX);
    // Not started: nothing is flushed, so the buffer fills.
    let o = buffered(&e, "chunk_limit_size 1k\ntotal_limit_size 4k\nflush_mode immediate", m.clone(), None);
    let mut accepted = 0;
    let err = loop {
        match o.emit("app", &stream(accepted..accepted + 1, 500, now())) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100);
    };
    assert!(matches!(&err, EmitError::Overflow(m) if m.contains("buffer space has too many data")), "{err:?}");
    assert!(o.buffer().stats().total_queued_size <= 4096);
    assert_eq!(o.metrics().overflow_count.load(Ordering::Relaxed), 1);
    // Refused means nothing was stored: the size is unchanged.
    let before = o.buffer().stats();
    let _ = o.emit("app", &stream(1000..1001, 500, now()));
    assert_eq!(o.buffer().stats(), before);

    let o = buffered(
        &e,
        "chunk_limit_size 1k\ntotal_limit_size 4k\nflush_mode immediate\noverflow_action drop_oldest_chunk",
        m,
        None,
    );
    for i in 0..20 {
        o.emit("app", &stream(i..i + 1, 500, now())).unwrap();
    }
    assert!(o.metrics().drop_oldest_chunk_count.load(Ordering::Relaxed) > 0);
    assert!(o.buffer().stats().total_queued_size <= 4096);
}

#[tokio::test]
async fn chunks_split_at_chunk_limit_size() {
    let e = env();
    let m = Mock::failing(0);
    let o = buffered(
        &e,
        "chunk_limit_size 2k\nflush_mode immediate\nflush_thread_interval 0.01\nflush_thread_burst_interval 0",
        m.clone(),
        None,
    );
    let _tx = start(&o);
    // 100 events of ~120 bytes in one stream: several chunks, none over 2 KiB.
    o.emit("app", &stream(0..100, 100, now())).unwrap();
    wait_until("all events", 10.0, || m.ids().len() == 100).await;
    assert_eq!(m.ids(), (0..100).collect::<Vec<_>>());
    assert!(m.chunk_count() >= 6, "{} chunks", m.chunk_count());
    // One event larger than a chunk is refused alone.
    o.emit("app", &stream(100..101, 5000, now())).unwrap();
    assert_eq!(o.metrics().rejected_records.load(Ordering::Relaxed), 1);
    o.shutdown().await;
}

#[tokio::test]
async fn timekey_chunks_flush_after_timekey_wait() {
    let e = env();
    let m = Mock::failing(0);
    let text = "flush_thread_interval 0.05";
    let mut sm = SourceMap::new();
    let mut diags = Diagnostics::new(false);
    let root = sluice_config::parse_str(
        Path::new("b.conf"),
        "b.conf",
        format!("<buffer tag,time>\ntimekey 1\ntimekey_wait 0.5\n{text}\n</buffer>\n"),
        &sluice_config::parser::NoEval,
        &mut sm,
        &mut diags,
    )
    .unwrap();
    let mut cfg = ConfigureCx::new(&mut diags);
    let info = PluginInfo { id: "tk".into(), has_id: true, type_name: "test".into(), log: e.env.log.clone() };
    let mut cx = BuildCx { cfg: &mut cfg, env: &e.env, info, label: None };
    let o = build_parts(Some(&root.elements[0]), BufferDefaults::TAG, EventFormat::Msgpack, m.clone(), None, &mut cx)
        .unwrap();
    let _tx = start(&o);
    let t = now();
    o.emit("app", &stream(0..3, 1, t)).unwrap();
    // Not before the timekey (1 s) plus timekey_wait (0.5 s) has passed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.chunk_count(), 0);
    wait_until("the timekey chunk", 5.0, || m.chunk_count() == 1).await;
    let chunks = m.chunks.lock().unwrap().clone();
    assert_eq!(chunks[0].1, Some(t.sec));
    assert!(EventTime::now().as_f64() >= (t.sec + 1) as f64 + 0.5);
    drop(chunks);
    o.shutdown().await;
}

#[tokio::test]
async fn memory_buffer_flushes_at_shutdown() {
    let e = env();
    let m = Mock::failing(0);
    let o = buffered(&e, "flush_interval 1h", m.clone(), None);
    let _tx = start(&o);
    o.emit("app", &stream(0..7, 1, now())).unwrap();
    assert_eq!(m.chunk_count(), 0);
    o.shutdown().await;
    assert_eq!(m.ids(), (0..7).collect::<Vec<_>>());
}

#[tokio::test]
async fn file_buffer_keeps_chunks_at_shutdown_and_resumes() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let conf = format!("@type file\npath {}\nflush_interval 1h\nflush_thread_interval 0.01", dir.path().display());
    let m = Mock::failing(0);
    let o = buffered(&e, &conf, m.clone(), None);
    let _tx = start(&o);
    o.emit("app", &stream(0..5, 1, now())).unwrap();
    o.emit("other", &stream(5..9, 1, now())).unwrap();
    o.shutdown().await;
    assert_eq!(m.chunk_count(), 0, "file chunks are not flushed at shutdown by default");
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2);
    // Next start: the chunks are resumed, and flushed at shutdown when asked.
    let m2 = Mock::failing(0);
    let o2 = buffered(&e, &format!("{conf}\nflush_at_shutdown true"), m2.clone(), None);
    let _tx2 = start(&o2);
    assert_eq!(o2.buffer().stats().stage_length, 2);
    o2.shutdown().await;
    assert_eq!(m2.ids(), (0..9).collect::<Vec<_>>());
    let mut tags: Vec<_> = m2.chunks.lock().unwrap().iter().map(|c| c.0.clone().unwrap()).collect();
    tags.sort();
    assert_eq!(tags, ["app", "other"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn memory_chunks_that_cannot_be_flushed_at_shutdown_are_backed_up() {
    let e = env();
    let m = Mock::failing(usize::MAX);
    let o = buffered(&e, "flush_interval 1h", m.clone(), None);
    let _tx = start(&o);
    o.emit("app", &stream(0..4, 1, now())).unwrap();
    o.shutdown().await;
    let files: Vec<_> = std::fs::read_dir(o.backup_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let es = EventStream::from_bytes(bytes::Bytes::from(std::fs::read(&files[0]).unwrap())).unwrap();
    assert_eq!(ids_of(&es), (0..4).collect::<Vec<_>>());
}
