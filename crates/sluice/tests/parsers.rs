//! Golden fixtures for every parser: `tests/parsers/*.txt`.
//!
//! A fixture file holds cases:
//!
//! ```text
//! ## case name
//! @type apache2          <- the <parse> section body
//! >> input text          <- one text per line; \t \n \r \\ \xNN are decoded
//! << 2013-02-28T03:00:00.000000000Z {"host":"…"}   <- one line per result
//! << UNMATCHED
//! << ERROR Fluent::TimeParser::TimeParseError: invalid time format: …
//! ```
//!
//! Times print as UTC ISO 8601 with nanoseconds, or `NOW` when the parser
//! used the current time; `{YEAR}` in an expectation is the current year.
//! Records print as Fluentd's JSON formatter prints them. The expectations
//! come from running Fluentd 1.19's parsers on the same inputs
//! (`BLESS=1` rewrites them from sluice's output: review the diff).

use sluice::log::{LogSink, Logger};
use sluice::plugin::parser::{self, Scratch};
use sluice::plugin::{BuildCx, EngineEnv, PluginInfo};
use sluice_config::{ConfigureCx, Diagnostics, SourceMap};
use sluice_event::{EventTime, Zone, json};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Weak;

fn env() -> EngineEnv {
    let log = Logger::new(
        LogSink::new(Box::new(std::io::sink()), sluice::log::LogFormat::Text, "%Y"),
        sluice::log::Level::Info,
    );
    EngineEnv {
        worker_id: 0,
        workers: 1,
        hostname: "myhost".into(),
        log,
        router: Weak::new(),
        dry_run: true,
        root_dir: None,
        file_permission: None,
        dir_permission: None,
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'\\' => out.push(b'\\'),
                b'x' if i + 3 < b.len() + 1 => {
                    let h = u8::from_str_radix(&s[i + 2..i + 4], 16).expect("\\xNN");
                    out.push(h);
                    i += 4;
                    continue;
                }
                _ => {
                    out.push(b'\\');
                    i += 1;
                    continue;
                }
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn render_time(t: EventTime, before: EventTime, after: EventTime) -> String {
    if t >= before && t <= after {
        return "NOW".into();
    }
    let tm = Zone::Utc.tm(t);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec, t.nsec)
}

struct Case {
    name: String,
    config: String,
    steps: Vec<(String, Vec<String>)>,
}

fn read_cases(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            cases.push(Case { name: name.to_string(), config: String::new(), steps: Vec::new() });
            continue;
        }
        let Some(c) = cases.last_mut() else { continue };
        if let Some(input) = line.strip_prefix(">> ").or_else(|| (line == ">>").then_some("")) {
            c.steps.push((input.to_string(), Vec::new()));
        } else if let Some(exp) = line.strip_prefix("<< ") {
            c.steps.last_mut().expect("<< after >>").1.push(exp.to_string());
        } else if c.steps.is_empty() {
            c.config.push_str(line);
            c.config.push('\n');
        }
    }
    cases
}

/// Run a case: the rendered results per input, or the configuration error.
fn run(case: &Case) -> Result<Vec<Vec<String>>, String> {
    let text = format!("<parse>\n{}</parse>\n", case.config);
    let mut sm = SourceMap::new();
    let mut diags = Diagnostics::new(false);
    let root = sluice_config::parse_str(
        Path::new("p.conf"),
        "p.conf",
        text,
        &sluice_config::parser::NoEval,
        &mut sm,
        &mut diags,
    )
    .ok_or("config syntax")?;
    let env = env();
    let mut cfg = ConfigureCx::new(&mut diags);
    let info = PluginInfo { id: "t".into(), has_id: false, type_name: "test".into(), log: env.log.clone() };
    let mut cx = BuildCx { cfg: &mut cfg, env: &env, info, label: None };
    let p = parser::build(Some(&root.elements[0]), None, &mut cx);
    if diags.has_errors() || p.is_none() {
        return Err(diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "));
    }
    let p = p.expect("checked");
    let mut scratch = Scratch::default();
    let mut all = Vec::new();
    for (input, _) in &case.steps {
        let bytes = unescape(input);
        let mut results = Vec::new();
        let before = EventTime::now();
        let mut got: Vec<(Option<EventTime>, Option<Vec<u8>>)> = Vec::new();
        let r = p.parse(&bytes, &mut scratch, &mut |t, rec| got.push((t, rec.map(<[u8]>::to_vec))));
        let after = EventTime::new(EventTime::now().sec + 1, 0);
        for (t, rec) in got {
            match rec {
                None => results.push("UNMATCHED".to_string()),
                Some(rec) => {
                    let mut j = Vec::new();
                    json::write_json(&rec, &mut j).expect("a record");
                    let ts = t.map_or("NOTIME".to_string(), |t| render_time(t, before, after));
                    results.push(format!("{ts} {}", String::from_utf8_lossy(&j)));
                }
            }
        }
        if let Err(e) = r {
            results.push(format!("ERROR {}: {}", e.class, e.message));
        }
        all.push(results);
    }
    Ok(all)
}

#[test]
fn parser_fixtures() {
    let now = Zone::local().offset_at(EventTime::now().sec);
    assert_eq!(now, 0, "the parser fixtures read local times as UTC: run the tests with TZ=UTC");
    let year = Zone::Utc.tm(EventTime::now()).year.to_string();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parsers");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("tests/parsers").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let mut count = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).expect("fixture");
        let cases = read_cases(&text);
        let mut blessed = String::new();
        for case in &cases {
            count += case.steps.len();
            let results = match run(case) {
                Ok(r) => r,
                Err(e) => vec![vec![format!("CONFIG ERROR {e}")]; case.steps.len().max(1)],
            };
            let _ = writeln!(blessed, "## {}", case.name);
            blessed.push_str(&case.config);
            for (i, (input, expected)) in case.steps.iter().enumerate() {
                let got = results.get(i).cloned().unwrap_or_default();
                let want: Vec<String> = expected.iter().map(|e| e.replace("{YEAR}", &year)).collect();
                if got != want {
                    failures.push(format!(
                        "{}: {} >> {input}\n  want: {want:#?}\n  got:  {got:#?}",
                        f.file_name().unwrap_or_default().to_string_lossy(),
                        case.name
                    ));
                }
                let _ = writeln!(blessed, ">> {input}");
                for g in &got {
                    let _ = writeln!(blessed, "<< {}", g.replace(&format!("{year}-"), "{YEAR}-"));
                }
            }
            blessed.push('\n');
        }
        if bless {
            std::fs::write(&f, blessed).expect("bless");
        }
    }
    assert!(count >= 150, "only {count} parser inputs");
    assert!(failures.is_empty(), "{} of {count} cases differ:\n{}", failures.len(), failures.join("\n"));
}
