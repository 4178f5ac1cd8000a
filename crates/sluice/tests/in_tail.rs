//! in_tail end to end: the `sluice` binary following files through
//! rotations, truncations, restarts and crashes. Every test writes lines
//! `{"seq":N}` and checks which sequence numbers reached stdout: exactly once
//! across clean restarts, at least once across a SIGKILL.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Sluice {
    child: Child,
    out: PathBuf,
}

fn start(dir: &Path, conf: &str, n: u32) -> Sluice {
    let conf_path = dir.join("fluent.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out = dir.join(format!("stdout.{n}.txt"));
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(&conf_path)
        .arg("--suppress-config-dump")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("stderr.{n}.txt"))).unwrap())
        .spawn()
        .unwrap();
    Sluice { child, out }
}

impl Sluice {
    fn signal(&self, sig: i32) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }

    fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert_eq!(st.code(), Some(0), "sluice exited with {st:?}");
                break;
            }
            assert!(Instant::now() < deadline, "sluice did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.out).unwrap()
    }

    fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `seq` values in event lines of every stdout file in `dir`, with counts.
fn seen(dir: &Path) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("stdout.") {
            continue;
        }
        for line in std::fs::read_to_string(e.path()).unwrap_or_default().lines() {
            if let Some(i) = line.find("{\"seq\":") {
                let rest = &line[i + 7..];
                let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = n.parse() {
                    *m.entry(n).or_insert(0) += 1;
                }
            }
        }
    }
    m
}

fn wait_seen(dir: &Path, want: impl Fn(&BTreeMap<u64, u32>) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if want(&seen(dir)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = seen(dir);
    let err: String = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("stderr."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    panic!("timed out waiting for {what}: {} seqs seen (max {:?})\nstderr:\n{err}", s.len(), s.keys().last());
}

/// Wait until every seq in `0..n` arrived; assert none arrived twice (or
/// just at least once with `dups_ok`).
fn expect_all(dir: &Path, n: u64, dups_ok: bool) {
    wait_seen(dir, |m| (0..n).all(|i| m.contains_key(&i)), &format!("all of 0..{n}"));
    // Give stragglers a moment to show up as duplicates.
    std::thread::sleep(Duration::from_millis(300));
    let m = seen(dir);
    for i in 0..n {
        let c = m.get(&i).copied().unwrap_or(0);
        assert!(c >= 1, "seq {i} lost");
        if !dups_ok {
            assert_eq!(c, 1, "seq {i} arrived {c} times");
        }
    }
    assert!(m.keys().all(|k| *k < n), "unexpected seqs: {:?}", m.keys().filter(|k| **k >= n).collect::<Vec<_>>());
}

fn append(path: &Path, seqs: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut buf = String::new();
    for i in seqs {
        buf.push_str(&format!("{{\"seq\":{i},\"pad\":\"{}\"}}\n", "x".repeat((i % 40) as usize)));
    }
    f.write_all(buf.as_bytes()).unwrap();
}

fn conf(dir: &Path, extra: &str) -> String {
    format!(
        r#"<source>
  @type tail
  path {d}/app.log
  pos_file {d}/app.pos
  tag t
  read_from_head true
  rotate_wait 2
  refresh_interval 1
  {extra}
  <parse>
    @type json
  </parse>
</source>
<match t>
  @type stdout
</match>
"#,
        d = dir.display()
    )
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn create_rotation_reads_old_and_new_exactly_once() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..500);
    let s = start(d.path(), &conf(d.path(), ""), 0);
    wait_seen(d.path(), |m| m.len() >= 500, "first 500");
    append(&log, 500..600);
    // logrotate `create`: rename, then a new file.
    std::fs::rename(&log, d.path().join("app.log.1")).unwrap();
    append(&d.path().join("app.log.1"), 600..700); // still written during rotate_wait
    append(&log, 700..1000);
    expect_all(d.path(), 1000, false);
    let out = s.stop();
    assert!(out.contains("detected rotation of"), "{out}");
}

#[test]
fn copytruncate_rescues_unread_lines_from_the_copy() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..200);
    // Poll only (no inotify): lines written just before the copy are unread when the truncation is seen.
    let s = start(d.path(), &conf(d.path(), "enable_stat_watcher false"), 0);
    wait_seen(d.path(), |m| m.len() >= 200, "first 200");
    append(&log, 200..300);
    std::fs::copy(&log, d.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    append(&log, 300..350);
    expect_all(d.path(), 350, false);
    s.stop();
}

#[test]
fn truncation_restarts_from_the_top() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..300);
    let s = start(d.path(), &conf(d.path(), ""), 0);
    wait_seen(d.path(), |m| m.len() >= 300, "first 300");
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    append(&log, 300..400);
    expect_all(d.path(), 400, false);
    s.stop();
}

#[test]
fn rotation_during_a_restart_and_two_rotations_while_stopped() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..100);
    let s = start(d.path(), &conf(d.path(), ""), 0);
    wait_seen(d.path(), |m| m.len() >= 100, "first 100");
    s.stop();
    // While stopped: A gets more lines and is rotated; B is written and rotated; C is current.
    append(&log, 100..200);
    std::fs::rename(&log, d.path().join("app.log.1")).unwrap();
    append(&log, 200..300);
    std::fs::rename(d.path().join("app.log.1"), d.path().join("app.log.2")).unwrap();
    std::fs::rename(&log, d.path().join("app.log.1")).unwrap();
    append(&log, 300..400);
    let s = start(d.path(), &conf(d.path(), ""), 1);
    expect_all(d.path(), 400, false);
    // One more rotation while stopped, between two runs.
    s.stop();
    append(&log, 400..450);
    std::fs::rename(&log, d.path().join("app.log.0")).unwrap();
    append(&log, 450..500);
    let s = start(d.path(), &conf(d.path(), ""), 2);
    expect_all(d.path(), 500, false);
    s.stop();
}

#[test]
fn inode_reuse_while_stopped_reads_the_new_file_from_its_start() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..50);
    let s = start(d.path(), &conf(d.path(), ""), 0);
    wait_seen(d.path(), |m| m.len() >= 50, "first 50");
    s.stop();
    use std::os::unix::fs::MetadataExt;
    let old_ino = std::fs::metadata(&log).unwrap().ino();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::remove_file(&log).unwrap();
    // Try to get the same inode back (filesystems usually hand it out again).
    let mut reused = false;
    for i in 0..50 {
        append(&log, 50..150);
        if std::fs::metadata(&log).unwrap().ino() == old_ino {
            reused = true;
            break;
        }
        std::fs::rename(&log, d.path().join(format!("keep{i}"))).unwrap();
    }
    let s = start(d.path(), &conf(d.path(), ""), 1);
    expect_all(d.path(), 150, false);
    s.stop();
    eprintln!("inode reused: {reused}");
}

#[test]
fn a_glob_picks_up_new_files() {
    let d = tmp();
    let c = conf(d.path(), "").replace("app.log\n", "*.log\n");
    append(&d.path().join("a.log"), 0..100);
    let s = start(d.path(), &c, 0);
    wait_seen(d.path(), |m| m.len() >= 100, "a.log");
    append(&d.path().join("b.log"), 100..200);
    append(&d.path().join("a.log"), 200..250);
    expect_all(d.path(), 250, false);
    s.stop();
}

#[test]
fn a_deleted_file_held_open_is_drained_then_released() {
    let d = tmp();
    let log = d.path().join("app.log");
    let mut writer = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    writeln!(writer, "{{\"seq\":0}}").unwrap();
    let s = start(d.path(), &conf(d.path(), ""), 0);
    wait_seen(d.path(), |m| m.contains_key(&0), "seq 0");
    std::fs::remove_file(&log).unwrap();
    for i in 1..50 {
        writeln!(writer, "{{\"seq\":{i}}}").unwrap();
    }
    append(&log, 50..100);
    expect_all(d.path(), 100, false);
    // After rotate_wait (2 s) the deleted file is closed.
    let pid = s.pid();
    let held = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .any(|t| t.to_string_lossy().ends_with("app.log (deleted)"))
            })
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while held() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!held(), "the deleted file is still open");
    s.stop();
}

#[test]
fn sigkill_during_rotations_loses_nothing() {
    let d = tmp();
    let log = d.path().join("app.log");
    let mut next = 0u64;
    let mut run = 0;
    for round in 0..6 {
        let s = start(d.path(), &conf(d.path(), ""), run);
        run += 1;
        for _ in 0..5 {
            append(&log, next..next + 200);
            next += 200;
            if round % 2 == 1 {
                let n = d.path().join(format!("app.log.r{next}"));
                std::fs::rename(&log, n).unwrap();
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        s.kill();
    }
    let s = start(d.path(), &conf(d.path(), ""), run);
    expect_all(d.path(), next, true);
    s.stop();
}

#[test]
fn partial_lines_wait_and_positions_survive_restart() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..10);
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"{\"seq\":10,").unwrap();
    let s = start(d.path(), &conf(d.path(), ""), 0);
    wait_seen(d.path(), |m| m.len() >= 10, "first 10");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!seen(d.path()).contains_key(&10), "a partial line was emitted");
    s.stop();
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"\"x\":1}\n").unwrap();
    let s = start(d.path(), &conf(d.path(), ""), 1);
    expect_all(d.path(), 11, false);
    s.stop();
}

/// Fluentd's reader regex for pos_file lines.
const FLUENTD_POS_RE: &str = r"^([^\t]+)\t([0-9a-fA-F]+)\t([0-9a-fA-F]+)";

#[test]
fn pos_file_is_fluentds_both_ways() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..20);
    let s = start(d.path(), &conf(d.path(), ""), 0);
    wait_seen(d.path(), |m| m.len() >= 20, "first 20");
    s.stop();
    // What sluice wrote, read the way Fluentd reads it.
    let text = std::fs::read_to_string(d.path().join("app.pos")).unwrap();
    let re = sluice_ruby::RubyRegex::new(FLUENTD_POS_RE, sluice_ruby::RubyFlags::default()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text:?}");
    assert!(re.is_match(lines[0]), "{text:?}");
    let fields: Vec<&str> = lines[0].split('\t').collect();
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&log).unwrap();
    assert_eq!(fields, [log.to_str().unwrap(), &format!("{:016x}", m.len()), &format!("{:016x}", m.ino())]);
    // A pos_file as td-agent leaves it (resume in the middle of the file).
    let data = std::fs::read(&log).unwrap();
    let mid = data.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(9).unwrap().0 + 1;
    std::fs::write(d.path().join("app.pos"), format!("{}\t{:016x}\t{:016x}\n", log.display(), mid, m.ino())).unwrap();
    for f in std::fs::read_dir(d.path()).unwrap().flatten() {
        if f.file_name().to_string_lossy().starts_with("stdout.") {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    let s = start(d.path(), &conf(d.path(), ""), 1);
    wait_seen(d.path(), |m| m.len() >= 10, "the last 10");
    std::thread::sleep(Duration::from_millis(300));
    let m = seen(d.path());
    assert_eq!(m.keys().copied().collect::<Vec<_>>(), (10..20).collect::<Vec<_>>());
    s.stop();
}

#[test]
fn seed_001_source_block_unmodified() {
    // The seed's <source> as written, with its paths moved under the test directory.
    let d = tmp();
    let root = d.path();
    std::fs::create_dir_all(root.join("var/log/go-audit")).unwrap();
    append(&root.join("var/log/go-audit/go-audit.log"), 0..5);
    let seed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seeds/001_b93e12f8d6b929e1.txt"),
    )
    .ok()
    .and_then(|t| {
        let a = t.find("<source>")?;
        let b = t[a..].find("</source>")? + a + "</source>".len();
        Some(t[a..b].to_string())
    })
    .unwrap_or_else(|| SEED_001_SOURCE.to_string());
    // Paths under the test directory: `/var/log/...` becomes `var/log/...`, run from there.
    let source = seed.replace("/var/log/go-audit/", "var/log/go-audit/");
    let conf = format!("{source}\n<match s3.var.log.go-audit.go-audit.log>\n  @type stdout\n</match>\n");
    let s = start(root, &conf, 0);
    std::thread::sleep(Duration::from_millis(500));
    append(&root.join("var/log/go-audit/go-audit.log"), 5..10);
    wait_seen(root, |m| m.len() >= 5, "appended lines");
    let out = s.stop();
    assert!(out.contains(" s3.var.log.go-audit.go-audit.log: {\"seq\":5"), "{out}");
    // Without read_from_head the lines present at start are not read.
    assert!(!seen(root).contains_key(&0));
    assert!(root.join("var/log/go-audit/go-audit.log.pos").exists());
}

/// The seed's block, in case the seed file is not next to the checkout.
const SEED_001_SOURCE: &str = r#"<source>
  @type tail
  @id input_tail
  <parse>
    @type json
  </parse>
  path /var/log/go-audit/go-audit.log   # The td-agent user needs to be read the log file
  pos_file /var/log/go-audit/go-audit.log.pos # This allows td-agent to pick up where it left off in case the the service is interrupted
  tag s3.*
</source>"#;

fn source(dir: &Path, file: &str, extra: &str, parse: &str) -> String {
    format!(
        r#"<source>
  @type tail
  path {d}/{file}
  pos_file {d}/{file}.pos
  tag t
  read_from_head true
  rotate_wait 1
  refresh_interval 1
  {extra}
  <parse>
{parse}
  </parse>
</source>
"#,
        d = dir.display()
    )
}

fn stdout_lines(out: &str) -> Vec<String> {
    out.lines().filter(|l| l.contains(" t: {")).map(|l| l[l.find(" t: ").unwrap() + 4..].to_string()).collect()
}

#[test]
fn multiline_records_group_by_first_line() {
    let d = tmp();
    let log = d.path().join("java.log");
    std::fs::write(
        &log,
        "junk before\n2013-3-03 14:27:33 [main] ERROR Main - Exception\njavax.management.RuntimeErrorException: null\n\tat Main.main(Main.java:16)\n2013-3-03 14:27:34 [main] INFO next\n",
    )
    .unwrap();
    let parse = "    @type multiline\n    format_firstline /^\\d{4}-/\n    format1 /^(?<time>\\d{4}-\\d{1,2}-\\d{1,2} \\d{1,2}:\\d{1,2}:\\d{1,2}) \\[(?<thread>.*)\\] (?<level>[^\\s]+)(?<message>.*)/";
    let conf = format!(
        "{}<match t>\n  @type stdout\n</match>\n",
        source(d.path(), "java.log", "multiline_flush_interval 1", parse)
    );
    let s = start(d.path(), &conf, 0);
    // The last record is pending until the flush interval passes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stdout_lines(&std::fs::read_to_string(&s.out).unwrap_or_default()).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = s.stop();
    let lines = stdout_lines(&out);
    assert_eq!(
        lines,
        vec![
            r#"{"thread":"main","level":"ERROR","message":" Main - Exception\njavax.management.RuntimeErrorException: null\n\tat Main.main(Main.java:16)"}"#,
            r#"{"thread":"main","level":"INFO","message":" next"}"#,
        ],
        "{out}"
    );
    assert!(out.contains("got incomplete line before first line"), "{out}");
}

#[test]
fn unmatched_lines_go_to_error_label_or_are_emitted() {
    let d = tmp();
    std::fs::write(d.path().join("a.log"), "{\"seq\":0}\nnot json\n{\"seq\":1}\n").unwrap();
    let conf = format!(
        "{}<match t>\n  @type stdout\n</match>\n<label @ERROR>\n  <match t>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n",
        source(d.path(), "a.log", "path_key file", "    @type json")
    );
    let s = start(d.path(), &conf, 0);
    wait_seen(d.path(), |m| m.len() >= 2, "two good lines");
    std::thread::sleep(Duration::from_millis(300));
    let out = s.stop();
    assert!(
        out.contains(&format!(r#"{{"unmatched_line":"not json","file":"{}/a.log"}}"#, d.path().display())),
        "{out}"
    );
    assert!(out.contains("pattern not matched: \"not json\""), "{out}");
    assert!(out.contains(&format!(r#"t: {{"seq":0,"file":"{}/a.log"}}"#, d.path().display())), "{out}");
    // emit_unmatched_lines: the line is an event instead.
    let d = tmp();
    std::fs::write(d.path().join("a.log"), "not json\n").unwrap();
    let conf = format!(
        "{}<match t>\n  @type stdout\n</match>\n",
        source(d.path(), "a.log", "emit_unmatched_lines true", "    @type json")
    );
    let s = start(d.path(), &conf, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&s.out).unwrap_or_default().contains("unmatched_line") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = s.stop();
    assert!(out.contains(r#"t: {"unmatched_line":"not json"}"#), "{out}");
}

#[test]
fn long_lines_are_skipped_and_encodings_converted() {
    let d = tmp();
    let long = format!("{{\"seq\":1,\"x\":\"{}\"}}\n", "y".repeat(200));
    std::fs::write(d.path().join("a.log"), format!("{{\"seq\":0}}\n{long}{{\"seq\":2}}\n")).unwrap();
    let conf = format!(
        "{}<match t>\n  @type stdout\n</match>\n",
        source(d.path(), "a.log", "max_line_size 100", "    @type json")
    );
    let s = start(d.path(), &conf, 0);
    wait_seen(d.path(), |m| m.len() >= 2, "short lines");
    let out = s.stop();
    assert!(out.contains("received line length is longer than 100"), "{out}");
    assert_eq!(seen(d.path()).keys().copied().collect::<Vec<_>>(), vec![0, 2]);
    // UTF-16LE and Shift_JIS files become UTF-8 records.
    let d = tmp();
    let text = "{\"seq\":0,\"m\":\"héllo\"}\n{\"seq\":1,\"m\":\"wörld\"}\n";
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    std::fs::write(d.path().join("u.log"), utf16).unwrap();
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("{\"seq\":2,\"m\":\"ログ\"}\n");
    std::fs::write(d.path().join("s.log"), &*sjis).unwrap();
    let conf = format!(
        "{}{}<match t>\n  @type stdout\n</match>\n",
        source(d.path(), "u.log", "encoding utf-8\n  from_encoding UTF-16LE", "    @type json"),
        source(d.path(), "s.log", "encoding utf-8\n  from_encoding Shift_JIS", "    @type json")
    );
    let s = start(d.path(), &conf, 0);
    wait_seen(d.path(), |m| m.len() >= 3, "three lines");
    let out = s.stop();
    assert!(out.contains(r#""m":"héllo""#) && out.contains(r#""m":"wörld""#) && out.contains(r#""m":"ログ""#), "{out}");
}

#[test]
fn follow_inodes_with_a_glob_over_rotated_files_has_no_duplicates() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..200);
    let c = conf(d.path(), "follow_inodes true").replace("app.log\n", "app.log*\n");
    let s = start(d.path(), &c, 0);
    wait_seen(d.path(), |m| m.len() >= 200, "first 200");
    for r in 0..3u64 {
        std::fs::rename(&log, d.path().join(format!("app.log.{r}"))).unwrap();
        append(&d.path().join(format!("app.log.{r}")), 200 + r * 200..300 + r * 200);
        append(&log, 300 + r * 200..400 + r * 200);
        std::thread::sleep(Duration::from_millis(700));
    }
    expect_all(d.path(), 800, false);
    s.stop();
    // A restart resumes every inode where it was.
    append(&log, 800..850);
    let s = start(d.path(), &c, 1);
    expect_all(d.path(), 850, false);
    s.stop();
}

#[test]
fn a_full_buffer_pauses_tailing_instead_of_dropping() {
    let d = tmp();
    let log = d.path().join("app.log");
    append(&log, 0..1);
    let conf = format!(
        "{}<match t>\n  @type file\n  path {}/stdout.file\n  append true\n  <format>\n    @type json\n  </format>\n  <buffer>\n    @type memory\n    chunk_limit_size 8k\n    total_limit_size 16k\n    flush_mode interval\n    flush_interval 0.1\n    flush_thread_interval 0.05\n  </buffer>\n</match>\n",
        source(d.path(), "app.log", "", "    @type json"),
        d.path().display()
    );
    let s = start(d.path(), &conf, 0);
    // Bursts larger than the buffer holds: tailing pauses until chunks are written.
    for i in 0..10u64 {
        append(&log, 1 + i * 200..1 + (i + 1) * 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    expect_all(d.path(), 2001, false);
    let out = s.stop();
    assert!(out.contains("buffer space has too many data"), "backpressure never engaged:\n{out}");
    assert!(!out.contains("dropped"), "{out}");
}

#[test]
fn tail_config_errors_are_located() {
    let d = tmp();
    let check = |conf: &str, want: &str| {
        let p = d.path().join("bad.conf");
        std::fs::write(&p, conf).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice")).arg("--dry-run").arg("-c").arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert_ne!(out.status.code(), Some(0), "{conf}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    };
    check("<source>\n  @type tail\n  path /x.log\n  tag t\n</source>\n", "<parse> section is required.");
    check(
        "<source>\n  @type tail\n  path /x.log\n  tag t\n  enable_watch_timer false\n  enable_stat_watcher false\n  <parse>\n    @type none\n  </parse>\n</source>\n",
        "either of enable_watch_timer or enable_stat_watcher must be true",
    );
    check(
        "<source>\n  @type tail\n  path /x.log\n  tag t\n  follow_inodes true\n  <parse>\n    @type none\n  </parse>\n</source>\n",
        "bad.conf:5:17: error: Can't follow inodes without pos_file configuration parameter",
    );
    check(
        "<source>\n  @type tail\n  path /x.log\n  tag t\n  from_encoding UTF-16LE\n  <parse>\n    @type none\n  </parse>\n</source>\n",
        "'from_encoding' parameter must be specified with 'encoding' parameter.",
    );
    check(
        "<source>\n  @type tail\n  path /x.log\n  tag t\n  <parse>\n    @type jsn\n  </parse>\n</source>\n",
        "bad.conf:6:11: error: Unknown parser plugin 'jsn'",
    );
}

#[test]
fn filter_parser_and_grep_on_tailed_lines_with_error_label() {
    let d = tmp();
    std::fs::write(
        d.path().join("a.log"),
        "{\"log\":\"1 GET /a\",\"k\":\"v\"}\n{\"log\":\"zz\"}\n{\"nolog\":1}\n{\"log\":\"2 POST /b\"}\n{\"log\":\"3 GET /health\"}\n",
    )
    .unwrap();
    let conf = format!(
        r#"{}<filter t>
  @type parser
  key_name log
  reserve_data true
  <parse>
    @type regexp
    expression /^(?<n>\d+) (?<method>\w+) (?<path>\S+)$/
    types n:integer
  </parse>
</filter>
<filter t>
  @type grep
  <exclude>
    key path
    pattern /health/
  </exclude>
</filter>
<match t>
  @type stdout
</match>
<label @ERROR>
  <match t>
    @type stdout
    <format>
      @type json
    </format>
  </match>
</label>
"#,
        source(d.path(), "a.log", "", "    @type json")
    );
    let s = start(d.path(), &conf, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&s.out).unwrap_or_default().contains("POST") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let out = s.stop();
    let events = stdout_lines(&out);
    assert!(events.contains(&r#"{"log":"1 GET /a","k":"v","n":1,"method":"GET","path":"/a"}"#.to_string()), "{out}");
    assert!(events.contains(&r#"{"log":"2 POST /b","n":2,"method":"POST","path":"/b"}"#.to_string()), "{out}");
    // Not parsed, but kept by reserve_data; the failures also went to @ERROR.
    assert!(events.contains(&r#"{"log":"zz"}"#.to_string()), "{out}");
    assert!(out.contains("{\"log\":\"zz\"}\n") || out.contains("{\"log\":\"zz\"}"), "{out}");
    assert!(!out.contains("/health"), "{out}");
    let error_lines = out.lines().filter(|l| l.starts_with('{')).count();
    assert_eq!(error_lines, 2, "two error events (no match, missing key):\n{out}");
}
