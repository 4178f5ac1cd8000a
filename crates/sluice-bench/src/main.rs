//! `sluice-bench`: run sluice on a scenario and report events/s and peak RSS.
//!
//! ```text
//! cargo build --release && target/release/sluice-bench sample-file --buffer memory --seconds 10
//! ```
//!
//! Scenarios (more arrive with each input and output):
//! * `sample-file`: in_sample generating ~200-byte records as fast as it can
//!   → out_file (memory or file buffer). Events/s counts events written to
//!   the output files; RSS is the sluice process's peak (`VmHWM`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A ~200-byte record: 6 strings and 4 integers, like the tail benchmark's lines.
const RECORD: &str = r#"{"host":"192.168.10.21","user":"frank","method":"GET","path":"/apache_pb.gif?q=example","agent":"Mozilla/5.0 (X11; Linux x86_64)","referer":"http://www.example.com/start.html","status":200,"size":2326,"latency_ms":17,"port":443}"#;

struct Args {
    scenario: String,
    buffer: String,
    seconds: f64,
    sluice: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let scenario =
        it.next().ok_or("usage: sluice-bench SCENARIO [--buffer memory|file] [--seconds N] [--sluice PATH]")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut a = Args { scenario, buffer: "memory".into(), seconds: 10.0, sluice: exe.with_file_name("sluice") };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--buffer" => a.buffer = v,
            "--seconds" => a.seconds = v.parse().map_err(|_| "bad --seconds")?,
            "--sluice" => a.sluice = PathBuf::from(v),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// Peak resident set of `pid` in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let f = std::fs::File::open(format!("/proc/{pid}/status")).ok()?;
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn count_lines(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_file()
            && p.extension().is_some_and(|x| x == "log")
            && let Ok(data) = std::fs::read(&p)
        {
            n += data.iter().filter(|b| **b == b'\n').count() as u64;
        }
    }
    n
}

fn sample_file(a: &Args, dir: &Path) -> Result<(), String> {
    let out = dir.join("out");
    let buffer = match a.buffer.as_str() {
        "memory" => "@type memory\n    total_limit_size 1g".to_string(),
        "file" => format!("@type file\n    path {}", dir.join("buffer").display()),
        b => return Err(format!("unknown buffer {b}")),
    };
    let conf = format!(
        r#"<system>
  log_level warn
  buffer_memory_limit 2g
</system>
<source>
  @type sample
  tag bench
  rate 5000
  size 1000
  sample {RECORD}
</source>
<match bench>
  @type file
  path {out}/bench
  append true
  <buffer []>
    {buffer}
    chunk_limit_size 8m
    flush_mode interval
    flush_interval 0.5
    flush_thread_count 2
    flush_thread_interval 0.05
    flush_thread_burst_interval 0
    flush_at_shutdown true
  </buffer>
</match>
"#,
        out = out.display()
    );
    let conf_path = dir.join("bench.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let mut child = Command::new(&a.sluice)
        .arg("-c")
        .arg(&conf_path)
        .arg("--suppress-config-dump")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", a.sluice.display()))?;
    let pid = child.id();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    let rss = peak_rss_kib(pid);
    // SIGTERM: inputs stop, buffers flush, sluice exits.
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let st = child.wait().map_err(|e| e.to_string())?;
    let elapsed = t0.elapsed().as_secs_f64();
    let events = count_lines(&out);
    let rss_mb = rss.map_or(f64::NAN, |k| k as f64 / 1024.0);
    println!(
        "scenario=sample-file buffer={} events={events} seconds={elapsed:.2} events_per_sec={:.0} peak_rss_mb={rss_mb:.1} exit={}",
        a.buffer,
        events as f64 / elapsed,
        st.code().unwrap_or(-1)
    );
    Ok(())
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            std::process::exit(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let r = match a.scenario.as_str() {
        "sample-file" => sample_file(&a, &dir),
        s => Err(format!("unknown scenario {s}")),
    };
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        eprintln!("sluice-bench: {e}");
        std::process::exit(1);
    }
}
