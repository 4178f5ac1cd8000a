//! Model-based property test of the file buffer with simulated crashes.
//!
//! Random sequences of writes, enqueues, successful and failed flushes and
//! crashes run against a real file buffer and a model (the set of
//! acknowledged, not yet flushed events). A crash drops the buffer where it
//! stands; "crash during a write" also tears the block that write appended
//! (cutting the file anywhere inside it). After each crash the directory is
//! recovered and checked: every acknowledged event that was not flushed is
//! there exactly once, and nothing appears that was never written.

use proptest::prelude::*;
use sluice::buffer::chunk::{FileDir, recover};
use sluice::buffer::engine::{Buffer, BufferConfig, Mode, Payload};
use sluice::buffer::metadata::{ChunkKeys, Metadata};
use sluice::buffer::params::{ChunkCompress, FsyncPolicy, OverflowAction};
use sluice_event::{EventStream, EventStreamBuilder, EventTime, Record};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

#[derive(Debug, Clone)]
enum Op {
    /// Write `n` events with padding `pad` under tag index `tag`.
    Write {
        tag: u8,
        n: u8,
        pad: u8,
    },
    /// Write, then crash with the appended block torn at `cut` (per-mille of its length).
    WriteTorn {
        tag: u8,
        n: u8,
        pad: u8,
        cut: u16,
    },
    EnqueueAll,
    FlushOk,
    FlushFail,
    /// Dequeue a chunk and crash before it is purged (redelivery allowed).
    CrashInFlight,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 1u8..20, 0u8..200).prop_map(|(tag, n, pad)| Op::Write { tag, n, pad }),
        2 => (0u8..3, 1u8..20, 0u8..200, 0u16..1000).prop_map(|(tag, n, pad, cut)| Op::WriteTorn { tag, n, pad, cut }),
        2 => Just(Op::EnqueueAll),
        3 => Just(Op::FlushOk),
        1 => Just(Op::FlushFail),
        1 => Just(Op::CrashInFlight),
        2 => Just(Op::Crash),
    ]
}

fn cfg(compress: ChunkCompress) -> BufferConfig {
    BufferConfig {
        chunk_limit: 2048,
        records_limit: u64::MAX,
        total_limit: 1 << 30,
        full_threshold: 0.95,
        compress,
        overflow: OverflowAction::ThrowException,
        mode: Mode::Interval,
        flush_interval: 1e9,
        timekey: None,
        timekey_wait: 0.0,
        queued_chunks_limit: 1,
        format: "msgpack".into(),
    }
}

fn dir(p: &Path) -> FileDir {
    FileDir {
        dir: p.join("buf"),
        prefix: "buffer".into(),
        suffix: ".log".into(),
        fsync: FsyncPolicy::Never,
        file_mode: 0o600,
        dir_mode: 0o700,
    }
}

fn open(p: &Path, compress: ChunkCompress) -> Buffer {
    let keys = ChunkKeys::parse(&["tag".to_string()], None).unwrap();
    let b = Buffer::new(cfg(compress), keys, Some(dir(p)));
    let r = recover(&dir(p), &p.join("backup")).unwrap();
    b.restore(r);
    b
}

fn events(next_id: &mut u64, n: u8, pad: u8) -> (EventStream, Vec<u64>) {
    let mut b = EventStreamBuilder::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut r = Record::new();
        r.insert("id", *next_id);
        r.insert("pad", "x".repeat(usize::from(pad)));
        b.push_raw(EventTime::new(1_700_000_000, 0), &r.to_msgpack());
        ids.push(*next_id);
        *next_id += 1;
    }
    (b.finish(), ids)
}

fn ids_of(data: &[u8]) -> Vec<u64> {
    let es =
        EventStream::from_bytes(bytes::Bytes::copy_from_slice(data)).expect("a recovered chunk holds valid entries");
    es.iter()
        .map(|e| {
            sluice_event::rubyfmt::to_s(&sluice::plugin::record_accessor::decode_value(e.record.get("id").unwrap()))
                .parse()
                .unwrap()
        })
        .collect()
}

fn sizes(p: &Path) -> HashMap<std::path::PathBuf, u64> {
    std::fs::read_dir(p.join("buf"))
        .map(|d| d.filter_map(Result::ok).map(|e| (e.path(), e.metadata().unwrap().len())).collect())
        .unwrap_or_default()
}

/// Every event in the buffer directory, as recovery sees it.
fn on_disk(p: &Path) -> Vec<u64> {
    let r = recover(&dir(p), &p.join("backup")).unwrap();
    let mut ids = Vec::new();
    for c in r.staged.iter().chain(r.queued.iter()) {
        ids.extend(ids_of(&c.read(u64::MAX).unwrap()));
    }
    ids
}

fn run(ops: Vec<Op>, compress: ChunkCompress) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let mut buf = open(p, compress);
    let mut next_id = 0u64;
    // Acknowledged and not flushed; ever written (acked or torn).
    let mut live: BTreeSet<u64> = BTreeSet::new();
    let mut written: BTreeSet<u64> = BTreeSet::new();
    // Events of a chunk dequeued when a crash happened: may come back.
    let mut maybe_again: BTreeSet<u64> = BTreeSet::new();
    let tags = ["a", "b", "c"];
    for op in ops {
        match op {
            Op::Write { tag, n, pad } => {
                let (es, ids) = events(&mut next_id, n, pad);
                let meta = Metadata { tag: Some(tags[usize::from(tag)].into()), ..Default::default() };
                let w = buf
                    .write(vec![Payload { meta, data: es.bytes().clone(), records: es.len() as u32, bounds: None }])
                    .unwrap();
                prop_assert!(w.rejected.is_empty());
                live.extend(&ids);
                written.extend(&ids);
            }
            Op::WriteTorn { tag, n, pad, cut } => {
                let before = sizes(p);
                let (es, ids) = events(&mut next_id, n, pad);
                let meta = Metadata { tag: Some(tags[usize::from(tag)].into()), ..Default::default() };
                buf.write(vec![Payload { meta, data: es.bytes().clone(), records: es.len() as u32, bounds: None }])
                    .unwrap();
                written.extend(&ids);
                drop(buf);
                // Tear the last grown file inside what this write added.
                let after = sizes(p);
                let mut grown: Vec<(std::path::PathBuf, u64, u64)> = after
                    .iter()
                    .map(|(f, &a)| {
                        let old = before
                            .get(f)
                            .copied()
                            .or_else(|| {
                                before
                                    .get(&f.with_file_name(
                                        f.file_name().unwrap().to_str().unwrap().replacen(".q", ".b", 1),
                                    ))
                                    .copied()
                            })
                            .unwrap_or(0);
                        (f.clone(), old, a)
                    })
                    .filter(|(_, o, a)| a > o)
                    .collect();
                grown.sort();
                if let Some((f, old, new)) = grown.pop() {
                    let len = old + (new - old) * u64::from(cut) / 1000;
                    std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(len.min(new - 1)).unwrap();
                }
                buf = open(p, compress);
                check(p, &live, &written, &mut maybe_again)?;
            }
            Op::EnqueueAll => {
                buf.enqueue_all();
            }
            Op::FlushOk => {
                if let Some(c) = buf.dequeue() {
                    for id in ids_of(&c.read(u64::MAX).unwrap()) {
                        live.remove(&id);
                        maybe_again.remove(&id);
                    }
                    buf.purge(c);
                }
            }
            Op::FlushFail => {
                if let Some(c) = buf.dequeue() {
                    buf.takeback(c);
                }
            }
            Op::CrashInFlight => {
                if let Some(c) = buf.dequeue() {
                    // Written downstream but not purged: may be delivered again.
                    for id in ids_of(&c.read(u64::MAX).unwrap()) {
                        live.remove(&id);
                        maybe_again.insert(id);
                    }
                    std::mem::forget(c);
                }
                drop(buf);
                buf = open(p, compress);
                check(p, &live, &written, &mut maybe_again)?;
            }
            Op::Crash => {
                drop(buf);
                buf = open(p, compress);
                check(p, &live, &written, &mut maybe_again)?;
            }
        }
    }
    drop(buf);
    check(p, &live, &written, &mut maybe_again)
}

fn check(
    p: &Path,
    live: &BTreeSet<u64>,
    written: &BTreeSet<u64>,
    maybe_again: &mut BTreeSet<u64>,
) -> Result<(), TestCaseError> {
    let found = on_disk(p);
    let set: BTreeSet<u64> = found.iter().copied().collect();
    prop_assert_eq!(set.len(), found.len(), "an event is stored twice");
    let lost: Vec<&u64> = live.difference(&set).collect();
    prop_assert!(lost.is_empty(), "acknowledged events lost: {:?}", lost);
    let phantom: Vec<&u64> = set.difference(written).collect();
    prop_assert!(phantom.is_empty(), "events never written: {:?}", phantom);
    // Torn or in-flight events that survived are live again.
    maybe_again.retain(|id| set.contains(id));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn file_buffer_loses_no_acknowledged_event(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, ChunkCompress::Text)?;
    }

    #[test]
    fn compressed_file_buffer_loses_no_acknowledged_event(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops, ChunkCompress::Gzip)?;
    }
}
