//! Golden fixtures: requests as real senders wrote them (`fluentd-1.19_*`:
//! captured from Fluentd 1.19's out_forward and fluent-cat;
//! `fluent-logger-python_*`: from the Python client), plus hand-built shapes
//! (Fluent Bit's metadata times, Forward mode, edge cases). Each
//! `NAME.bin` decodes to what `NAME.expected` says; `BLESS=1` rewrites the
//! expectations (review the diff). Fluentd's own PackedForward requests are
//! also re-encoded and must come out byte for byte.

use bytes::Bytes;
use sluice_event::{EventTime, json};
use sluice_forward::encode::{self, Compress};
use sluice_forward::{Limits, decode};
use std::path::Path;

const NOW: EventTime = EventTime { sec: 1_800_000_000, nsec: 0 };

fn render(name: &str, frame: &Bytes) -> String {
    match decode(frame, &Limits::default(), NOW) {
        Ok(None) => "heartbeat\n".into(),
        Err(e) => format!("error: {e}\n"),
        Ok(Some(r)) => {
            let mut out = format!(
                "tag: {}\nmode: {:?}\npassthrough: {}\nskipped: {}\nsize: {:?}\ncompressed: {:?}\nchunk: {:?}\n",
                r.tag,
                r.mode,
                r.passthrough,
                r.skipped,
                r.options.size,
                r.options.compressed,
                r.options.chunk.as_ref().map(|c| String::from_utf8_lossy(&c[1..]).into_owned())
            );
            for ev in &r.events {
                let mut j = Vec::new();
                json::write_json(ev.record.as_bytes(), &mut j).unwrap();
                out.push_str(&format!("event: {}.{:09} {}\n", ev.time.sec, ev.time.nsec, String::from_utf8_lossy(&j)));
            }
            let _ = name;
            out
        }
    }
}

#[test]
fn fixtures_decode_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    names.sort();
    assert!(names.len() >= 10);
    let bless = std::env::var_os("BLESS").is_some();
    let mut bad = Vec::new();
    for p in names {
        let frame = Bytes::from(std::fs::read(&p).unwrap());
        let got = render(&p.display().to_string(), &frame);
        let exp_path = p.with_extension("expected");
        if bless {
            std::fs::write(&exp_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&exp_path).unwrap_or_default();
        if got != want {
            bad.push(format!("{}:\n--- want\n{want}--- got\n{got}", p.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn fluentds_packed_forward_is_reproduced_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let frame = Bytes::from(std::fs::read(dir.join("fluentd-1.19_out_forward_packed_ack.bin")).unwrap());
    let r = decode(&frame, &Limits::default(), NOW).unwrap().unwrap();
    let chunk = r.options.chunk.clone().unwrap();
    let chunk_id = std::str::from_utf8(&chunk[1..]).unwrap();
    let again =
        encode::packed_forward(&r.tag, r.events.as_bytes(), r.events.len(), Compress::Text, Some(chunk_id)).unwrap();
    assert_eq!(again, &frame[..]);
    // The gzip request decodes to the same shape of events.
    let gz = Bytes::from(std::fs::read(dir.join("fluentd-1.19_out_forward_gzip_ack.bin")).unwrap());
    let r = decode(&gz, &Limits::default(), NOW).unwrap().unwrap();
    assert!(r.events.len() >= 2);
    // Acks echo the chunk value's bytes.
    assert_eq!(encode::ack(&chunk)[..5], *b"\x81\xa3ack");
}
