//! The configuration corpus: every `tests/configs/*.conf` is checked with
//! `sluice --dry-run`, and its diagnostics (`FILE:LINE:COL: severity: message`
//! lines and help lines) plus the exit code must equal `NAME.expected`.
//!
//! A config may start with `# args …` (extra CLI arguments) and
//! `# env K=V` lines. `BLESS=1 cargo test --test config_corpus` rewrites the
//! expectations; review the diff before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

fn directives(text: &str, key: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.strip_prefix(&format!("# {key} "))).map(|s| s.trim().to_string()).collect()
}

/// The part of `--dry-run` output a test pins: headlines, help lines, exit code.
fn observed(conf: &Path) -> String {
    let text = std::fs::read_to_string(conf).unwrap();
    let name = conf.file_name().unwrap().to_str().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(conf.parent().unwrap()).args(["--dry-run", "-c", name]);
    for a in directives(&text, "args") {
        cmd.args(a.split_whitespace());
    }
    for e in directives(&text, "env") {
        let (k, v) = e.split_once('=').expect("env K=V");
        cmd.env(k, v);
    }
    cmd.env_remove("SLUICE_TEST_UNSET");
    let out = cmd.output().expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines: Vec<String> = stderr
        .lines()
        .filter(|l| {
            l.contains(": error: ")
                || l.contains(": warning: ")
                || l.starts_with("error: ")
                || l.starts_with("warning: ")
                || l.starts_with("  help: ")
        })
        .map(String::from)
        .collect();
    lines.push(format!("exit {}", out.status.code().unwrap_or(-1)));
    lines.join("\n") + "\n"
}

#[test]
fn corpus() {
    let dir = corpus_dir();
    let mut confs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    confs.sort();
    assert!(confs.len() >= 40, "the corpus must hold at least 40 configurations, found {}", confs.len());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for conf in &confs {
        let got = observed(conf);
        let expected_path = conf.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| format!("<missing {}>", expected_path.display()));
        if got != want {
            failures.push(format!("== {}\n-- expected\n{want}-- got\n{got}", conf.display()));
        }
        // Names say what a file is for; keep them honest.
        let name = conf.file_name().unwrap().to_str().unwrap();
        let exit0 = got.ends_with("exit 0\n");
        if name.starts_with("err_") && exit0 {
            failures.push(format!("{name}: an err_ config must fail"));
        }
        if (name.starts_with("ok_") || name.starts_with("warn_")) && !exit0 {
            failures.push(format!("{name}: an ok_/warn_ config must pass"));
        }
        if name.starts_with("ok_") && got.lines().count() > 1 {
            failures.push(format!("{name}: an ok_ config must have no diagnostics"));
        }
        if name.starts_with("warn_") && !got.contains(": warning: ") {
            failures.push(format!("{name}: a warn_ config must warn"));
        }
    }
    assert!(failures.is_empty(), "{} corpus mismatches:\n{}", failures.len(), failures.join("\n"));
}
