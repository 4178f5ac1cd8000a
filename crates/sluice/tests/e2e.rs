//! End-to-end tests: the `sluice` binary on real configurations.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sluice whose stdout goes to a file.
struct Run {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    fn start(conf: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let conf_path = dir.path().join("fluent.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let out = dir.path().join("stdout.txt");
        let err = dir.path().join("stderr.txt");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("-c")
            .arg(&conf_path)
            .args(args)
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run { child: cmd.spawn().unwrap(), out, _dir: dir }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stderr.txt")).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Wait until `pred(stdout)` holds.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if pred(&self.stdout()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; stdout so far:\n{}", self.stdout());
    }

    fn signal(&self, sig: i32) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }

    /// SIGTERM and wait for the exit status.
    fn stop(mut self) -> (i32, String) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), self.stdout());
            }
            assert!(Instant::now() < deadline, "sluice did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event_lines<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    let needle = format!(" {tag}: ");
    out.lines().filter(|l| l.contains(&needle) && !l.contains(" [")).collect()
}

/// The JSON part of a stdout line.
fn record(line: &str) -> serde_json::Value {
    let json = &line[line.find(": {").expect("a record") + 2..];
    serde_json::from_str(json).unwrap()
}

#[test]
fn sample_record_transformer_stdout() {
    let conf = r#"
<source>
  @type sample
  tag app.web.access
  rate 20
  auto_increment_key seq
  sample {"message":"hello"}
</source>
<filter app.**>
  @type record_transformer
  enable_ruby
  <record>
    from_env ${ENV['SLUICE_E2E_X']}
    last ${tag_parts[-1]}
  </record>
</filter>
<match app.**>
  @type stdout
</match>
"#;
    let run = Run::start(conf, &[("SLUICE_E2E_X", "xyz")], &[]);
    run.wait_for("five events", |o| event_lines(o, "app.web.access").len() >= 5);
    let (code, out) = run.stop();
    assert_eq!(code, 0, "{out}");
    let lines = event_lines(&out, "app.web.access");
    for (i, l) in lines.iter().enumerate() {
        // 2026-11-22 10:00:00.123456789 +0000 app.web.access: {...}
        let b = l.as_bytes();
        assert!(b.len() > 36 && b[4] == b'-' && b[10] == b' ' && b[19] == b'.' && &l[29..36] == " +0000 ", "{l}");
        assert_eq!(
            &l[36..],
            format!("app.web.access: {{\"message\":\"hello\",\"seq\":{i},\"from_env\":\"xyz\",\"last\":\"access\"}}")
        );
    }
}

#[test]
fn sigterm_drains_every_event_in_flight() {
    let conf = r#"
<source>
  @type sample
  tag drain
  rate 200
  size 50
  auto_increment_key n
</source>
<filter drain>
  @type record_transformer
  <record>
    copy ${record["n"]}
  </record>
</filter>
<match drain>
  @type stdout
</match>
"#;
    let run = Run::start(conf, &[], &["-q"]);
    run.wait_for("events flowing", |o| event_lines(o, "drain").len() >= 2000);
    let (code, out) = run.stop();
    assert_eq!(code, 0);
    let lines = event_lines(&out, "drain");
    assert!(lines.len() >= 2000);
    // Every event that left the source arrived, in order, with no gap or torn line.
    for (i, l) in lines.iter().enumerate() {
        let r = record(l);
        assert_eq!(r["n"], serde_json::json!(i), "event {i}: {l}");
        assert_eq!(r["copy"], serde_json::json!(i));
    }
    assert!(out.ends_with('\n'));
}

#[test]
fn own_log_events_reach_fluent_log_label() {
    let conf = r#"
<source>
  @type sample
  tag app
</source>
<match app>
  @type null
</match>
<label @FLUENT_LOG>
  <match fluent.*>
    @type stdout
  </match>
</label>
"#;
    let run = Run::start(conf, &[], &[]);
    run.wait_for("a fluent.info event", |o| {
        o.contains(" fluent.info: {\"worker\":0,\"message\":\"fluentd worker is now running worker=0\"}")
    });
    let (code, out) = run.stop();
    assert_eq!(code, 0);
    // Shutdown lines are not turned into events.
    assert!(!out.contains("fluent.info: {\"worker\":0,\"message\":\"shutting down"), "{out}");
}

#[test]
fn rejected_records_go_to_error_label_or_are_logged() {
    let conf = |error_label: bool| {
        format!(
            r#"
<source>
  @type sample
  tag bad
  sample {{"message":"x"}}
</source>
<filter bad>
  @type record_transformer
  enable_ruby
  <record>
    deep ${{record["missing"]["key"]}}
  </record>
</filter>
<match bad>
  @type stdout
</match>
{}
"#,
            if error_label {
                "<label @ERROR>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>"
            } else {
                ""
            }
        )
    };
    let run = Run::start(&conf(true), &[], &[]);
    run.wait_for("the record in @ERROR", |o| o.lines().any(|l| l == "{\"message\":\"x\"}"));
    let (code, out) = run.stop();
    assert_eq!(code, 0);
    assert!(out.contains("send an error event to @ERROR: error=\"failed to expand `record[\\\"missing\\\"][\\\"key\\\"]` : error = undefined method '[]' for nil\""), "{out}");
    assert!(event_lines(&out, "bad").is_empty(), "the failed record must not reach the normal output");

    let run = Run::start(&conf(false), &[], &[]);
    run.wait_for("the dump line", |o| o.contains("dump an error event:"));
    let (_, out) = run.stop();
    assert!(out.contains("record={\"message\" => \"x\"}"), "{out}");
}

#[test]
fn unmatched_tags_warn_once_per_tag() {
    let conf = r#"
<source>
  @type sample
  tag nowhere
  rate 50
</source>
<match elsewhere>
  @type null
</match>
"#;
    let run = Run::start(conf, &[], &[]);
    std::thread::sleep(Duration::from_millis(2500));
    let (code, out) = run.stop();
    assert_eq!(code, 0);
    assert_eq!(out.matches("no patterns matched tag=\"nowhere\"").count(), 1, "{out}");
}

#[test]
fn log_file_takes_logs_and_stdout_output() {
    let conf = "<source>\n  @type sample\n  tag t\n</source>\n<match t>\n  @type stdout\n</match>\n";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sluice.log");
    let run = Run::start(conf, &[], &["-o", log.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains(" t: {\"message\":\"sample\"}") {
        assert!(Instant::now() < deadline, "no event in the log file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out) = run.stop();
    assert_eq!(code, 0);
    assert_eq!(out, "", "stdout must stay empty with -o");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("[info]: using configuration file: <ROOT>"));
}

#[test]
fn workers_run_their_worker_blocks() {
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/ok_seed002_listing_7_1.conf"),
    )
    .unwrap();
    let run = Run::start(&conf, &[], &["-q"]);
    run.wait_for("events of every worker", |o| {
        ["w0", "w1", "w2", "w-any"].iter().all(|t| event_lines(o, t).len() >= 3)
    });
    let (code, out) = run.stop();
    assert_eq!(code, 0);
    let ids = |tag: &str| {
        let mut v: Vec<String> =
            event_lines(&out, tag).iter().map(|l| record(l)["worker_id"].as_str().unwrap().to_string()).collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(ids("w0"), ["0"]);
    assert!(ids("w1").iter().all(|w| w == "1" || w == "2"), "{:?}", ids("w1"));
    assert_eq!(ids("w2"), ["3"]);
    assert_eq!(ids("w-any").len(), 4);
}

#[test]
fn config_error_exits_non_zero_with_location() {
    let mut run = Run::start("<source>\n  @type sample\n</source>\n", &[], &[]);
    let st = run.child.wait().unwrap();
    assert_eq!(st.code(), Some(1));
    let err = run.stderr();
    assert!(err.contains("fluent.conf:1:1: error: 'tag' parameter is required in <source>"), "{err}");
}

#[test]
fn version_and_plugin_doc() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("sluice {}", env!("CARGO_PKG_VERSION")));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(["plugin-doc", "sample"]).output().unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    assert!(doc.contains("| `tag` | string | required | Tag of the generated events. |"), "{doc}");
    assert!(doc.contains("| `sample` (alias `dummy`) | json | `[{\"message\":\"sample\"}]` |"), "{doc}");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(["plugin-doc", "--list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("filter: stdout, grep, parser, record_transformer"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(["plugin-doc", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
