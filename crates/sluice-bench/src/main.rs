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
//! * `forward --mode forward|packed [--ack] [--relay] [--conns N]`: load
//!   generator threads send messages of 1000 events of ~200 bytes (Forward
//!   mode, or PackedForward) to a `forward` input → null, as fast as they
//!   can, each connection waiting for the ack of every message with `--ack`
//!   (without it, one ack at the end proves everything was taken). With
//!   `--relay` sluice forwards to a counting server in the harness instead,
//!   and events/s counts what arrives there.
//! * `tail-null`, `tail-file`: in_tail reading a file of `--lines` JSON
//!   lines of ~208 bytes (6 strings, 4 integers) from tmpfs from its head
//!   → null, or → out_file. The clock runs from sluice's start until the
//!   pos_file reaches the end of the file (null) or every line is in the
//!   output files (file).

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
    lines: u64,
    mode: String,
    ack: bool,
    relay: bool,
    conns: usize,
    sluice: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let scenario =
        it.next().ok_or("usage: sluice-bench SCENARIO [--buffer memory|file] [--seconds N] [--sluice PATH]")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut a = Args {
        scenario,
        buffer: "memory".into(),
        seconds: 10.0,
        lines: 1_000_000,
        mode: "packed".into(),
        ack: false,
        relay: false,
        conns: 2,
        sluice: exe.with_file_name("sluice"),
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--ack" => {
                a.ack = true;
                continue;
            }
            "--relay" => {
                a.relay = true;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--buffer" => a.buffer = v,
            "--seconds" => a.seconds = v.parse().map_err(|_| "bad --seconds")?,
            "--lines" => a.lines = v.parse().map_err(|_| "bad --lines")?,
            "--mode" => a.mode = v,
            "--conns" => a.conns = v.parse().map_err(|_| "bad --conns")?,
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

/// CPU seconds (user, system) the process has used so far.
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return (f64::NAN, f64::NAN) };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).map_or(f64::NAN, |t| t / hz);
    (tick(11), tick(12))
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

/// Counts lines in `*.log` files of a directory, reading only what was added since the last call.
#[derive(Default)]
struct LineCounter {
    seen: std::collections::HashMap<PathBuf, (u64, u64)>,
}

impl LineCounter {
    fn count(&mut self, dir: &Path) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if !(p.is_file() && p.extension().is_some_and(|x| x == "log")) {
                continue;
            }
            let (off, n) = self.seen.entry(p.clone()).or_default();
            let Ok(mut f) = std::fs::File::open(&p) else { continue };
            if f.seek(SeekFrom::Start(*off)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_ok() {
                // Count only complete lines.
                let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                *n += buf[..complete].iter().filter(|b| **b == b'\n').count() as u64;
                *off += complete as u64;
            }
        }
        self.seen.values().map(|(_, n)| n).sum()
    }
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

/// Write `n` JSON lines of ~208 bytes (6 strings, 4 integers).
fn write_lines(path: &Path, n: u64) -> Result<u64, String> {
    use std::io::Write;
    let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut bytes = 0;
    for i in 0..n {
        let line = format!(
            r#"{{"host":"192.168.{}.{}","user":"frank","method":"GET","path":"/apache_pb.gif","agent":"Mozilla/5.0 (X11; Linux x86_64)","referer":"http://example.com/start","status":200,"size":{},"latency_ms":{},"seq":{}}}"#,
            i % 250,
            i % 199,
            2000 + i % 5000,
            i % 97,
            1_000_000 + i
        );
        writeln!(w, "{line}").map_err(|e| e.to_string())?;
        bytes += line.len() as u64 + 1;
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// The position the pos_file holds for `log` (0 if none yet).
fn pos_of(pos_file: &Path, log: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(pos_file) else { return 0 };
    let want = log.to_string_lossy();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let p = f.next()?;
            let pos = u64::from_str_radix(f.next()?, 16).ok()?;
            (p == want && pos != u64::MAX).then_some(pos)
        })
        .max()
        .unwrap_or(0)
}

fn tail(a: &Args, dir: &Path, to_file: bool) -> Result<(), String> {
    let shm = Path::new("/dev/shm");
    let data = if shm.is_dir() { shm.join(format!("sluice-bench-{}", std::process::id())) } else { dir.join("data") };
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let log = data.join("bench.log");
    let size = write_lines(&log, a.lines)?;
    let pos = dir.join("bench.pos");
    let out = dir.join("out");
    let matcher = if to_file {
        format!(
            r#"<match bench.**>
  @type file
  path {out}/bench
  append true
  <buffer []>
    @type {buffer}
    {path}
    chunk_limit_size 4m
    total_limit_size 24m
    flush_mode interval
    flush_interval 0.05
    flush_thread_count 1
    flush_thread_interval 0.05
    flush_thread_burst_interval 0
    flush_at_shutdown true
  </buffer>
</match>"#,
            out = out.display(),
            buffer = a.buffer,
            path = if a.buffer == "file" { format!("path {}", dir.join("buffer").display()) } else { String::new() }
        )
    } else {
        "<match bench.**>\n  @type null\n</match>".to_string()
    };
    let conf = format!(
        r#"<system>
  log_level warn
</system>
<source>
  @type tail
  path {log}
  pos_file {pos}
  tag bench.*
  read_from_head true
  <parse>
    @type json
  </parse>
</source>
{matcher}
"#,
        log = log.display(),
        pos = pos.display()
    );
    let conf_path = dir.join("bench.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut child = Command::new(&a.sluice)
        .arg("-c")
        .arg(&conf_path)
        .arg("--suppress-config-dump")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", a.sluice.display()))?;
    let pid = child.id();
    let limit = Duration::from_secs_f64(a.seconds.max(60.0));
    let mut rss = 0;
    let mut counter = LineCounter::default();
    // Output lines are the input lines behind a fixed-width "time\ttag\t"
    // prefix, so the expected output size is known from the first line and
    // polling is one stat (reading the output would steal sluice's CPU).
    let first_in = std::fs::read(&log).ok().and_then(|d| d.iter().position(|b| *b == b'\n')).unwrap_or(0) as u64;
    let out_file = out.join("bench.log");
    let mut expected: Option<u64> = None;
    let mut read_done: Option<f64> = None;
    let done = loop {
        if read_done.is_none() && pos_of(&pos, &log) >= size {
            read_done = Some(t0.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(5));
        rss = rss.max(peak_rss_kib(pid).unwrap_or(0));
        let finished = if to_file {
            if expected.is_none()
                && let Ok(d) = std::fs::read(&out_file)
                && let Some(nl) = d.iter().position(|b| *b == b'\n')
            {
                let prefix = nl as u64 - first_in;
                expected = Some(size + prefix * a.lines);
            }
            expected.is_some_and(|e| std::fs::metadata(&out_file).map(|m| m.len()).unwrap_or(0) >= e)
        } else {
            pos_of(&pos, &log) >= size
        };
        if finished {
            break true;
        }
        if t0.elapsed() > limit {
            break false;
        }
    };
    let elapsed = t0.elapsed().as_secs_f64();
    rss = rss.max(peak_rss_kib(pid).unwrap_or(0));
    let (user, sys) = cpu_seconds(pid);
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let st = child.wait().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&data);
    let events = if to_file { counter.count(&out) } else { a.lines };
    println!(
        "scenario=tail-{} lines={} bytes={size} complete={done} read_seconds={:.3} seconds={elapsed:.3} events_per_sec={:.0} peak_rss_mb={:.1} cpu_user_s={user:.2} cpu_sys_s={sys:.2} exit={}",
        if to_file { format!("file buffer={}", a.buffer) } else { "null".into() },
        a.lines,
        read_done.unwrap_or(f64::NAN),
        events as f64 / elapsed,
        rss as f64 / 1024.0,
        st.code().unwrap_or(-1)
    );
    Ok(())
}

/// One message of `n` events of ~200 bytes, in `mode`, with an ack id if asked.
fn forward_message(mode: &str, n: usize, chunk: Option<&str>) -> Vec<u8> {
    use sluice_event::msgpack;
    let mut rec = Vec::new();
    sluice_event::json::json_object_to_msgpack(RECORD.as_bytes(), &mut rec).expect("valid record");
    let t = sluice_event::EventTime::new(1_700_000_000, 123);
    let mut entries = Vec::new();
    for _ in 0..n {
        entries.push(0x92);
        t.write_ext(&mut entries);
        entries.extend_from_slice(&rec);
    }
    match mode {
        "forward" => {
            let mut out = vec![if chunk.is_some() { 0x93 } else { 0x92 }];
            msgpack::write_str(&mut out, b"bench.fwd");
            msgpack::write_array_header(&mut out, n);
            out.extend_from_slice(&entries);
            if let Some(c) = chunk {
                out.push(0x81);
                msgpack::write_str(&mut out, b"chunk");
                msgpack::write_str(&mut out, c.as_bytes());
            }
            out
        }
        _ => sluice_forward::encode::packed_forward(
            "bench.fwd",
            &entries,
            n,
            sluice_forward::encode::Compress::Text,
            chunk,
        )
        .expect("encoding"),
    }
}

fn read_ack(s: &mut std::net::TcpStream, f: &mut sluice_forward::Framer) -> Result<(), String> {
    use std::io::Read;
    loop {
        if f.next_frame().map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        f.extend(&buf[..n]);
    }
}

/// A Forward server that counts events (PackedForward `size`) and acks.
fn counting_server(listener: std::net::TcpListener, count: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    for s in listener.incoming().flatten() {
        let count = count.clone();
        std::thread::spawn(move || {
            let mut s = s;
            let mut f = sluice_forward::Framer::new(1 << 30);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                f.extend(&buf[..n]);
                while let Ok(Some(frame)) = f.next_frame() {
                    let limits = sluice_forward::Limits::default();
                    if let Ok(Some(r)) = sluice_forward::decode(&frame, &limits, sluice_event::EventTime::new(1, 0)) {
                        count.fetch_add(r.events.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        if let Some(c) = r.options.chunk {
                            let _ = s.write_all(&sluice_forward::encode::ack(&c));
                        }
                    }
                }
            }
        });
    }
}

fn forward(a: &Args, dir: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let received = Arc::new(AtomicU64::new(0));
    let matcher = if a.relay {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let rport = l.local_addr().map_err(|e| e.to_string())?.port();
        let c = received.clone();
        std::thread::spawn(move || counting_server(l, c));
        format!(
            "<match bench.**>\n  @type forward\n  heartbeat_type none\n  <server>\n    host 127.0.0.1\n    port {rport}\n  </server>\n  <buffer>\n    chunk_limit_size 4m\n    total_limit_size 32m\n    flush_mode interval\n    flush_interval 0.05\n    flush_thread_count 2\n    flush_thread_interval 0.01\n    flush_thread_burst_interval 0\n  </buffer>\n</match>"
        )
    } else {
        "<match bench.**>\n  @type null\n</match>".to_string()
    };
    let conf = format!(
        "<system>\n  log_level warn\n</system>\n<source>\n  @type forward\n  port {port}\n  bind 127.0.0.1\n</source>\n{matcher}\n"
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
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("sluice did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    const N: usize = 1000;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..a.conns.max(1) {
        let (stop, sent) = (stop.clone(), sent.clone());
        let (mode, ack) = (a.mode.clone(), a.ack);
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let _ = s.set_nodelay(true);
            let mut f = sluice_forward::Framer::new(1 << 20);
            let plain = forward_message(&mode, N, None);
            let acked = forward_message(&mode, N, Some("YmVuY2g=\n"));
            while !stop.load(Ordering::Relaxed) {
                if ack {
                    s.write_all(&acked).map_err(|e| e.to_string())?;
                    read_ack(&mut s, &mut f)?;
                } else {
                    s.write_all(&plain).map_err(|e| e.to_string())?;
                }
                sent.fetch_add(N as u64, Ordering::Relaxed);
            }
            // One acked message: when it is acked, everything before it was taken.
            s.write_all(&acked).map_err(|e| e.to_string())?;
            read_ack(&mut s, &mut f)?;
            sent.fetch_add(N as u64, Ordering::Relaxed);
            Ok(())
        }));
    }
    let mut rss = 0;
    while t0.elapsed().as_secs_f64() < a.seconds {
        std::thread::sleep(Duration::from_millis(50));
        rss = rss.max(peak_rss_kib(pid).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "sender panicked")??;
    }
    let accepted_at = t0.elapsed().as_secs_f64();
    let total = sent.load(Ordering::Relaxed);
    let (events, secs) = if a.relay {
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            rss = rss.max(peak_rss_kib(pid).unwrap_or(0));
        }
        (received.load(Ordering::Relaxed), t0.elapsed().as_secs_f64())
    } else {
        (total, accepted_at)
    };
    rss = rss.max(peak_rss_kib(pid).unwrap_or(0));
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    println!(
        "scenario=forward mode={} ack={} relay={} conns={} events={events} seconds={secs:.2} events_per_sec={:.0} peak_rss_mb={:.1}",
        a.mode,
        a.ack,
        a.relay,
        a.conns,
        events as f64 / secs,
        rss as f64 / 1024.0
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
        "tail-null" => tail(&a, &dir, false),
        "forward" => forward(&a, &dir),
        "tail-file" => tail(&a, &dir, true),
        s => Err(format!("unknown scenario {s}")),
    };
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        eprintln!("sluice-bench: {e}");
        std::process::exit(1);
    }
}
