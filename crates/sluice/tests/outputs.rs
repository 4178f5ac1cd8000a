//! out_file, copy, roundrobin and secondary_file through the whole engine.

use sluice::engine::{build_from_str, run_workers};
use sluice::log::{LogSink, Logger};
use sluice::plugin::Shutdown;
use sluice::router::ROOT;
use sluice_event::{EventStream, EventStreamBuilder, EventTime, Record};
use std::io::Read;
use std::path::Path;

fn stream(ids: std::ops::Range<u64>) -> EventStream {
    let mut b = EventStreamBuilder::new();
    for id in ids {
        let mut r = Record::new();
        r.insert("id", id);
        b.push_raw(EventTime::new(1_293_974_055, 0), &r.to_msgpack()); // 2011-01-02 13:14:15 UTC
    }
    b.finish()
}

/// Run `conf`, emit `streams` (tag, events) into the root, then shut down.
async fn run(conf: &str, streams: Vec<(&str, EventStream)>) {
    let e = build_from_str(conf).unwrap_or_else(|e| panic!("{e}"));
    let router = e.router.clone();
    let (tx, shutdown) = Shutdown::new();
    let log = Logger::new(
        LogSink::new(Box::new(std::io::sink()), sluice::log::LogFormat::Text, "%Y"),
        sluice::log::Level::Warn,
    );
    let task = tokio::spawn(run_workers(vec![e], shutdown, log));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for (tag, es) in streams {
        router.emit(ROOT, tag, es).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn out_file_writes_fluentd_lines_and_compresses() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().display();
    let conf = format!(
        "<match plain.**>\n  @type file\n  path {p}/out_file_test\n  <format>\n    @type out_file\n    utc\n  </format>\n  <buffer time>\n    @type memory\n    timekey_use_utc true\n  </buffer>\n</match>\n\
         <match gz.**>\n  @type file\n  path {p}/gz/app\n  compress gz\n  <buffer time>\n    @type memory\n    timekey 3600\n    timekey_use_utc true\n  </buffer>\n</match>\n\
         <match tagged.**>\n  @type file\n  path {p}/${{tag}}/app\n  append true\n  <buffer tag,time>\n    @type memory\n    timekey_use_utc true\n  </buffer>\n</match>\n"
    );
    run(
        &conf,
        vec![("plain.x", stream(0..2)), ("gz.x", stream(0..3)), ("tagged.a", stream(0..1)), ("tagged.a", stream(1..2))],
    )
    .await;
    assert_eq!(files(d.path()), ["out_file_test.20110102_0.log"]);
    assert_eq!(
        std::fs::read_to_string(d.path().join("out_file_test.20110102_0.log")).unwrap(),
        "2011-01-02T13:14:15Z\tplain.x\t{\"id\":0}\n2011-01-02T13:14:15Z\tplain.x\t{\"id\":1}\n"
    );
    assert_eq!(files(&d.path().join("gz")), ["app.2011010213_0.log.gz"]);
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(d.path().join("gz/app.2011010213_0.log.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.starts_with("2011-01-02T13:14:15"));
    assert_eq!(files(&d.path().join("tagged.a")), ["app.20110102.log"]);
    assert_eq!(std::fs::read_to_string(d.path().join("tagged.a/app.20110102.log")).unwrap().lines().count(), 2);
}

#[tokio::test]
async fn copy_and_roundrobin_distribute() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().display();
    let store = |name: &str| {
        format!(
            "  <store>\n    @type file\n    path {p}/{name}/out\n    <buffer []>\n      @type memory\n    </buffer>\n  </store>\n"
        )
    };
    let conf = format!(
        "<match copy.**>\n  @type copy\n{}{}</match>\n<match rr.**>\n  @type roundrobin\n{}{}</match>\n",
        store("c1"),
        store("c2"),
        store("r1"),
        store("r2")
    );
    let streams: Vec<(&str, EventStream)> =
        (0..6u64).map(|i| ("rr.x", stream(i..i + 1))).chain(std::iter::once(("copy.x", stream(0..4)))).collect();
    run(&conf, streams).await;
    let lines = |name: &str| -> usize {
        files(&d.path().join(name))
            .iter()
            .map(|f| std::fs::read_to_string(d.path().join(name).join(f)).unwrap().lines().count())
            .sum()
    };
    assert_eq!((lines("c1"), lines("c2")), (4, 4), "copy: every store gets every event");
    assert_eq!((lines("r1"), lines("r2")), (3, 3), "roundrobin with equal weights alternates");
}

#[tokio::test]
async fn secondary_file_receives_undeliverable_chunks() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().display();
    let conf = format!(
        "<match **>\n  @type null\n  never_flush true\n  <buffer tag>\n    flush_mode immediate\n    retry_wait 0.01\n    retry_timeout 0.1\n    retry_randomize false\n    flush_thread_interval 0.01\n  </buffer>\n  <secondary>\n    @type secondary_file\n    directory {p}/dump\n    basename ${{tag}}_${{chunk_id}}\n  </secondary>\n</match>\n"
    );
    run(&conf, vec![("app.x", stream(0..5))]).await;
    let dumped = files(&d.path().join("dump"));
    assert_eq!(dumped.len(), 1, "{dumped:?}");
    assert!(dumped[0].starts_with("app.x_") && dumped[0].ends_with(".0"), "{dumped:?}");
    let es =
        EventStream::from_bytes(bytes::Bytes::from(std::fs::read(d.path().join("dump").join(&dumped[0])).unwrap()))
            .unwrap();
    assert_eq!(es.len(), 5, "the dump is the chunk's msgpack events");
}

#[tokio::test]
async fn symlink_path_points_at_the_newest_buffer_chunk() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().display();
    let conf = format!(
        "<match **>\n  @type file\n  path {p}/out/app\n  symlink_path {p}/current.log\n  <buffer time>\n    @type file\n    path {p}/buf\n    timekey 3600\n  </buffer>\n</match>\n"
    );
    run(&conf, vec![("app.x", stream(0..3))]).await;
    let target = std::fs::read_link(d.path().join("current.log")).unwrap();
    let name = target.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        target.starts_with(d.path().join("buf")) && name.starts_with("buffer.b") && name.ends_with(".log"),
        "{target:?}"
    );
    assert!(target.exists(), "file chunks stay at shutdown, so the link is live");
}

/// One memory chunk holding several emits with different tags (no tag chunk
/// key): each emit is its own block with a `[tag]` marker, and the flush
/// renders the blocks in place, each line with its own tag.
#[tokio::test]
async fn mixed_tags_in_one_memory_chunk_keep_their_tags() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().display();
    let conf = format!(
        "<match mix.**>\n  @type file\n  path {p}/mix/out\n  append true\n  <buffer []>\n    @type memory\n  </buffer>\n</match>\n"
    );
    let streams =
        vec![("mix.a", stream(0..3)), ("mix.b", stream(3..5)), ("mix.a", stream(5..6)), ("mix.c", stream(6..9))];
    run(&conf, streams).await;
    let dir = d.path().join("mix");
    let text: String = files(&dir).iter().map(|f| std::fs::read_to_string(dir.join(f)).unwrap()).collect();
    let got: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect();
    let want: Vec<(String, String)> =
        [(0, "a"), (1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "a"), (6, "c"), (7, "c"), (8, "c")]
            .iter()
            .map(|(id, t)| (format!("mix.{t}"), format!("{{\"id\":{id}}}")))
            .collect();
    assert_eq!(got, want);
}
