//! End-to-end crash test: sluice with a file buffer, a steady input and a
//! destination that comes and goes is killed with SIGKILL again and again.
//! Every event it accepted must reach the destination at least once.
//!
//! Accepted events are witnessed without trusting sluice's buffer: a `copy`
//! output first stores each stream in the file buffer under test, then prints
//! it to stdout. A line on stdout therefore proves that the buffer accepted
//! the event (copy stops at the first store that fails). The destination is
//! an out_file whose directory is swapped for a plain file while "down", so
//! its writes fail and are retried.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: u32 = 20;

fn config(dir: &Path, with_source: bool) -> String {
    let source = if with_source {
        r##"<source>
  @type sample
  tag test
  rate 100
  size 20
  auto_increment_key seq
  sample {"run":"#{ENV['CRASH_RUN']}","pad":"0123456789012345678901234567890123456789"}
</source>
"##
    } else {
        ""
    };
    format!(
        r#"<system>
  log_level error
</system>
{source}<match test>
  @type copy
  <store>
    @type file
    path {d}/dest/out
    <format>
      @type json
    </format>
    <buffer>
      @type file
      path {d}/buffer
      chunk_limit_size 16k
      flush_mode interval
      flush_interval 0.2
      flush_thread_interval 0.05
      flush_thread_burst_interval 0.01
      retry_forever true
      retry_wait 0.1
      retry_max_interval 0.4
    </buffer>
  </store>
  <store>
    @type stdout
    <format>
      @type json
    </format>
  </store>
</match>
"#,
        d = dir.display()
    )
}

/// Take the destination down (a plain file where its directory was) or bring it back.
fn set_destination(dir: &Path, up: bool) {
    let dest = dir.join("dest");
    let parked = dir.join("dest.parked");
    if up {
        if dest.is_file() {
            std::fs::remove_file(&dest).unwrap();
        }
        if parked.exists() {
            std::fs::rename(&parked, &dest).unwrap();
        }
        std::fs::create_dir_all(&dest).unwrap();
    } else if dest.is_dir() {
        std::fs::rename(&dest, &parked).unwrap();
        std::fs::write(&dest, b"down").unwrap();
    }
}

fn ids(line: &str) -> Option<(String, u64)> {
    let start = line.find('{')?;
    let v: serde_json::Value = serde_json::from_str(&line[start..]).ok()?;
    Some((v["run"].as_str()?.to_string(), v["seq"].as_u64()?))
}

#[test]
fn sigkill_loses_no_accepted_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let conf = dir.join("crash.conf");
    std::fs::write(&conf, config(dir, true)).unwrap();
    let mut accepted: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let buffered = || {
        std::fs::read_dir(dir.join("buffer"))
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".log")).count())
            .unwrap_or(0)
    };
    let mut starts_with_backlog = 0;
    for run in 0..KILLS {
        if buffered() > 0 {
            starts_with_backlog += 1;
        }
        // The destination is down during about a third of the runs, and flips mid-run in others.
        set_destination(dir, next() % 3 != 0);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["-c", conf.to_str().unwrap(), "--suppress-config-dump"])
            .env("CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(out).lines().map_while(Result::ok).filter_map(|l| ids(&l)).collect::<Vec<_>>()
        });
        let life = Duration::from_millis(300 + next() % 700);
        let flip_at = Duration::from_millis(next() % 600);
        let t0 = Instant::now();
        let mut flipped = false;
        while t0.elapsed() < life {
            if !flipped && t0.elapsed() >= flip_at && next() % 2 == 0 {
                set_destination(dir, !dir.join("dest").is_dir());
                flipped = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        #[allow(unsafe_code)]
        // SAFETY: SIGKILL to our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        child.wait().unwrap();
        accepted.extend(reader.join().unwrap());
    }
    assert!(accepted.len() > 1000, "the input did not run: {} events", accepted.len());
    assert!(starts_with_backlog >= 3, "crashes should leave chunks to resume ({starts_with_backlog} runs did)");

    // Last start: destination up, no input; wait for the buffer to drain.
    set_destination(dir, true);
    std::fs::write(&conf, config(dir, false)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while buffered() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    #[allow(unsafe_code)]
    // SAFETY: SIGTERM to our own child, not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(buffered(), 0, "the buffer did not drain");

    // Everything that reached the destination.
    let mut delivered: BTreeMap<(String, u64), u32> = BTreeMap::new();
    for f in std::fs::read_dir(dir.join("dest")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "log") {
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                if let Some(k) = ids(line) {
                    *delivered.entry(k).or_default() += 1;
                }
            }
        }
    }
    let lost: Vec<_> = accepted.iter().filter(|k| !delivered.contains_key(*k)).take(10).collect();
    let duplicates: u32 = delivered.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {KILLS} SIGKILLs ({starts_with_backlog} restarts resumed a backlog), {} events accepted, {} delivered ({} distinct), {duplicates} duplicates",
        accepted.len(),
        delivered.values().sum::<u32>(),
        delivered.len()
    );
    assert!(lost.is_empty(), "accepted events lost: {lost:?} (and maybe more)");
}
