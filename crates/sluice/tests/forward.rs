//! Forward protocol end to end: several `sluice` processes on 127.0.0.1 (the
//! seed 002 listings), Python's fluent-logger as a client, and — when
//! `SLUICE_FLUENTD_CMD` names a runnable Fluentd — real Fluentd both ways.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc {
    child: Child,
    out: PathBuf,
}

impl Proc {
    fn start(dir: &Path, name: &str, conf: &str) -> Proc {
        let conf_path = dir.join(format!("{name}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let out = dir.join(format!("{name}.out"));
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("-c")
            .arg(&conf_path)
            .arg("--suppress-config-dump")
            .stdin(Stdio::null())
            .stdout(std::fs::OpenOptions::new().create(true).append(true).open(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Proc { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "sluice did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.output()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    p
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Event lines for `tag` in a stdout dump: values of `n` with counts.
fn counts(out: &str, tag: &str) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    let needle = format!(" {tag}: ");
    for l in out.lines().filter(|l| l.contains(&needle)) {
        if let Some(i) = l.find("\"n\":") {
            let n: String = l[i + 4..].chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = n.parse() {
                *m.entry(n).or_insert(0) += 1;
            }
        }
    }
    m
}

fn receiver(port: u16, extra: &str) -> String {
    format!(
        "<source>\n  @type forward\n  port {port}\n  bind 127.0.0.1\n{extra}\n</source>\n<match **>\n  @type stdout\n</match>\n"
    )
}

fn sender(tag: &str, rate: u32, servers: &str, extra: &str) -> String {
    format!(
        "<source>\n  @type sample\n  tag {tag}\n  rate {rate}\n  auto_increment_key n\n</source>\n<match {tag}>\n  @type forward\n  heartbeat_interval 0.2\n{extra}\n{servers}\n  <buffer>\n    flush_interval 0.1\n    flush_thread_interval 0.05\n    retry_wait 0.2\n    retry_max_interval 1\n  </buffer>\n</match>\n"
    )
}

fn server(port: u16, extra: &str) -> String {
    format!("  <server>\n    host 127.0.0.1\n    port {port}\n{extra}\n  </server>\n")
}

#[test]
fn fan_in_with_acks_and_gzip() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let recv = Proc::start(d.path(), "recv", &receiver(port, ""));
    wait_listening(port);
    let s1 = Proc::start(
        d.path(),
        "node1",
        &sender("node1", 50, &server(port, ""), "require_ack_response true\n  compress gzip"),
    );
    let s2 = Proc::start(d.path(), "node2", &sender("node2", 50, &server(port, ""), ""));
    wait_until("events from both nodes", 20, || {
        counts(&recv.output(), "node1").len() >= 50 && counts(&recv.output(), "node2").len() >= 50
    });
    s1.stop();
    s2.stop();
    std::thread::sleep(Duration::from_millis(300));
    let out = recv.stop();
    // Every event sent arrived exactly once, in order per node.
    for tag in ["node1", "node2"] {
        let c = counts(&out, tag);
        let max = *c.keys().last().unwrap();
        assert_eq!(c.len() as u64, max + 1, "{tag}: gaps");
        assert!(c.values().all(|v| *v == 1), "{tag}: duplicates");
    }
}

#[test]
fn weighted_fan_out_and_round_robin() {
    let d = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = Proc::start(d.path(), "a", &receiver(pa, ""));
    let b = Proc::start(d.path(), "b", &receiver(pb, ""));
    wait_listening(pa);
    wait_listening(pb);
    // weight 10 and weight 1: chunks go 10:1.
    let servers = server(pa, "    weight 10") + &server(pb, "    weight 1");
    let s = Proc::start(d.path(), "s", &sender("w", 400, &servers, ""));
    wait_until("2200 events", 40, || counts(&a.output(), "w").len() + counts(&b.output(), "w").len() >= 2200);
    s.stop();
    std::thread::sleep(Duration::from_millis(300));
    let (na, nb) = (counts(&a.output(), "w").len() as f64, counts(&b.output(), "w").len() as f64);
    let ratio = na / nb.max(1.0);
    assert!((5.0..20.0).contains(&ratio), "weighted 10:1 gave {na}:{nb}");
    // roundrobin over two forward stores alternates.
    let rr = format!(
        "<source>\n  @type sample\n  tag rr\n  rate 20\n  auto_increment_key n\n</source>\n<match rr>\n  @type roundrobin\n  <store>\n    @type forward\n    <server>\n      host 127.0.0.1\n      port {pa}\n    </server>\n    <buffer>\n      flush_mode immediate\n    </buffer>\n  </store>\n  <store>\n    @type forward\n    <server>\n      host 127.0.0.1\n      port {pb}\n    </server>\n    <buffer>\n      flush_mode immediate\n    </buffer>\n  </store>\n</match>\n"
    );
    let s = Proc::start(d.path(), "rr", &rr);
    wait_until("round robin", 20, || counts(&a.output(), "rr").len() + counts(&b.output(), "rr").len() >= 40);
    s.stop();
    let (ca, cb) = (counts(&a.stop(), "rr"), counts(&b.stop(), "rr"));
    assert!(!ca.is_empty() && !cb.is_empty());
    let diff = (ca.len() as i64 - cb.len() as i64).abs();
    assert!(diff <= 2, "round robin: {} vs {}", ca.len(), cb.len());
    // Alternation: consecutive events land on different receivers.
    let alternating = (0..30u64).filter(|n| ca.contains_key(n) != ca.contains_key(&(n + 1))).count();
    assert!(alternating >= 25, "not alternating");
}

#[test]
fn standby_takes_over_and_gives_back() {
    let d = tempfile::tempdir().unwrap();
    let (pp, ps) = (free_port(), free_port());
    let primary = Proc::start(d.path(), "primary", &receiver(pp, ""));
    let standby = Proc::start(d.path(), "standby", &receiver(ps, ""));
    wait_listening(pp);
    wait_listening(ps);
    let servers =
        server(pp, "    name myserver1\n    standby false") + &server(ps, "    name myserver2\n    standby true");
    let extra = "require_ack_response true\n  hard_timeout 1\n  phi_threshold 4\n  recover_wait 1";
    let s = Proc::start(d.path(), "sender", &sender("ha", 50, &servers, extra));
    wait_until("primary receives", 20, || counts(&primary.output(), "ha").len() >= 20);
    assert!(counts(&standby.output(), "ha").is_empty(), "the standby got events while the primary was up");
    primary.kill();
    wait_until("standby takes over", 30, || counts(&standby.output(), "ha").len() >= 20);
    let primary = Proc::start(d.path(), "primary", &receiver(pp, ""));
    let before = counts(&primary.output(), "ha").len();
    wait_until("primary gets traffic back", 40, || counts(&primary.output(), "ha").len() >= before + 20);
    let out = s.stop();
    assert!(out.contains("detached forwarding server 'myserver1'"), "{out}");
    assert!(out.contains("using standby node 127.0.0.1:"), "{out}");
    assert!(out.contains("recovered forwarding server 'myserver1'"), "{out}");
    let all: BTreeMap<u64, u32> =
        counts(&primary.stop(), "ha").into_iter().chain(counts(&standby.stop(), "ha")).collect();
    let max = *all.keys().last().unwrap();
    assert!((0..=max).all(|n| all.contains_key(&n)), "events lost across the takeover");
}

#[test]
fn secondary_when_every_server_is_down() {
    let d = tempfile::tempdir().unwrap();
    let dead = free_port();
    let conf = format!(
        "<source>\n  @type sample\n  tag sec\n  rate 20\n  auto_increment_key n\n</source>\n<match sec>\n  @type forward\n  heartbeat_type none\n  connect_timeout 1\n{}\n  <buffer>\n    flush_interval 0.1\n    retry_wait 0.1\n    retry_max_times 1\n  </buffer>\n  <secondary>\n    @type stdout\n  </secondary>\n</match>\n",
        server(dead, "")
    );
    let s = Proc::start(d.path(), "s", &conf);
    wait_until("events via the secondary", 20, || counts(&s.output(), "sec").len() >= 10);
    let out = s.stop();
    assert!(out.contains("failed to connect") || out.contains("failed to flush"), "{out}");
}

#[test]
fn shared_key_and_user_auth_accept_and_refuse() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let sec = "  <security>\n    user_auth true\n    self_hostname destination_host\n    shared_key hello\n    <user>\n      username hello-this-is-a-long-username\n      password world-of-security-likes-long-passwords\n    </user>\n  </security>";
    let recv = Proc::start(d.path(), "recv", &receiver(port, sec));
    wait_listening(port);
    let client_sec =
        "  compress gzip\n  <security>\n    shared_key hello\n    self_hostname source_host\n  </security>";
    let good =
        server(port, "    username hello-this-is-a-long-username\n    password world-of-security-likes-long-passwords");
    let s = Proc::start(d.path(), "good", &sender("auth", 20, &good, client_sec));
    wait_until("authenticated events", 20, || counts(&recv.output(), "auth").len() >= 10);
    s.stop();
    let bad = server(port, "    username hello-this-is-a-long-username\n    password wrong");
    let s = Proc::start(d.path(), "bad", &sender("denied", 20, &bad, &format!("{client_sec}\n  heartbeat_type none")));
    wait_until("the refusal logged", 20, || s.output().contains("username/password mismatch"));
    let out = s.stop();
    assert!(out.contains("authentication failed: username/password mismatch"), "{out}");
    let rout = recv.stop();
    assert!(rout.contains("authentication failed: username/password mismatch"), "{rout}");
    assert!(counts(&rout, "denied").is_empty());
}

#[test]
fn tls_with_self_signed_certificates_and_a_dummy_one() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    // The receiver generates a self-signed certificate (with 127.0.0.1 in it).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(d.path().join("server.pem"), cert.pem()).unwrap();
    std::fs::write(d.path().join("server.key"), key.serialize_pem()).unwrap();
    let dp = d.path().display();
    let tls = format!(
        "  <transport tls>\n    cert_path {dp}/server.pem\n    private_key_path {dp}/server.key\n  </transport>"
    );
    let recv = Proc::start(d.path(), "recv", &receiver(port, &tls));
    wait_listening(port);
    let client = format!("  transport tls\n  tls_cert_path {dp}/server.pem\n  tls_allow_self_signed_cert true");
    let s = Proc::start(d.path(), "s", &sender("tls", 20, &server(port, ""), &client));
    wait_until("events over TLS", 20, || counts(&recv.output(), "tls").len() >= 10);
    s.stop();
    recv.stop();
    // A dummy certificate file: the receiver refuses to start, saying why.
    std::fs::write(d.path().join("dummy.pem"), "this is not a certificate\n").unwrap();
    let bad = receiver(
        port,
        &format!(
            "  <transport tls>\n    cert_path {dp}/dummy.pem\n    private_key_path {dp}/dummy.pem\n  </transport>"
        ),
    );
    std::fs::write(d.path().join("bad.conf"), bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).arg("-c").arg(d.path().join("bad.conf")).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dummy.pem"), "{text}");
}

#[test]
fn require_ack_survives_a_receiver_crash() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let recv = Proc::start(d.path(), "recv1", &receiver(port, ""));
    wait_listening(port);
    let s = Proc::start(
        d.path(),
        "s",
        &sender("ack", 100, &server(port, ""), "require_ack_response true\n  ack_response_timeout 2"),
    );
    wait_until("first events", 20, || counts(&recv.output(), "ack").len() >= 50);
    recv.kill();
    std::thread::sleep(Duration::from_millis(700));
    let recv = Proc::start(d.path(), "recv2", &receiver(port, ""));
    wait_listening(port);
    std::thread::sleep(Duration::from_millis(1500));
    s.stop();
    std::thread::sleep(Duration::from_millis(500));
    recv.stop();
    let out = std::fs::read_to_string(d.path().join("recv1.out")).unwrap()
        + &std::fs::read_to_string(d.path().join("recv2.out")).unwrap();
    let c = counts(&out, "ack");
    let max = *c.keys().last().unwrap();
    assert!(max >= 100);
    let missing: Vec<u64> = (0..=max).filter(|n| !c.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
}

fn python_ok() -> bool {
    Command::new("python3").args(["-c", "import fluent, msgpack"]).status().is_ok_and(|s| s.success())
}

#[test]
fn python_fluent_logger_and_a_handshake_by_hand() {
    assert!(python_ok(), "python3 with fluent-logger and msgpack is needed (pip install fluent-logger msgpack)");
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let recv = Proc::start(d.path(), "recv", &receiver(port, ""));
    wait_listening(port);
    let script = format!(
        r#"
from fluent import sender
s = sender.FluentSender('py', host='127.0.0.1', port={port})
assert s.emit('int', {{'n': 1}}), s.last_error
s2 = sender.FluentSender('py', host='127.0.0.1', port={port}, nanosecond_precision=True)
assert s2.emit_with_time('ns', 1700000000.123456789, {{'n': 2}}), s2.last_error
s.close(); s2.close()
"#
    );
    let st = Command::new("python3").arg("-c").arg(&script).status().unwrap();
    assert!(st.success());
    wait_until("python events", 10, || recv.output().contains("py.ns"));
    let out = recv.stop();
    assert!(out.contains(" py.int: {\"n\":1}"), "{out}");
    assert!(
        out.contains("2023-11-14 22:13:20.123456716 +0000 py.ns: {\"n\":2}") || out.contains(" py.ns: {\"n\":2}"),
        "{out}"
    );
    // <security> from Python: HELO, PING with SHA-512 digests, PONG, then a message with an ack.
    let port = free_port();
    let sec = "  <security>\n    self_hostname server\n    shared_key k\n  </security>";
    let recv = Proc::start(d.path(), "recv2", &receiver(port, sec));
    wait_listening(port);
    let script = format!(
        r#"
import socket, msgpack, hashlib
c = socket.create_connection(('127.0.0.1', {port}))
u = msgpack.Unpacker(raw=False)
def read():
    while True:
        for o in u: return o
        u.feed(c.recv(4096))
helo = read()
assert helo[0] == 'HELO', helo
nonce = helo[1]['nonce']
salt = 'abcd'
d = hashlib.sha512(salt.encode() + b'client' + nonce + b'k').hexdigest()
c.sendall(msgpack.packb(['PING', 'client', salt, d, '', '']))
pong = read()
assert pong[1] is True, pong
assert pong[4] == hashlib.sha512(salt.encode() + b'server' + nonce + b'k').hexdigest()
c.sendall(msgpack.packb(['py.sec', 1700000000, {{'n': 3}}, {{'chunk': 'xyz'}}]))
assert read() == {{'ack': 'xyz'}}
"#
    );
    let st = Command::new("python3").arg("-c").arg(&script).status().unwrap();
    assert!(st.success());
    wait_until("secured python event", 10, || recv.output().contains("py.sec"));
    recv.stop();
}

/// Real Fluentd both ways, when `SLUICE_FLUENTD_CMD` gives a command that
/// runs Fluentd (for example `ruby -I… bin/fluentd`); skipped otherwise.
#[test]
fn interop_with_real_fluentd_when_available() {
    let Ok(cmd) = std::env::var("SLUICE_FLUENTD_CMD") else {
        eprintln!("SLUICE_FLUENTD_CMD is not set: skipping the Fluentd interop test");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let run_fluentd = |name: &str, conf: &str| -> Child {
        let p = d.path().join(format!("{name}.conf"));
        std::fs::write(&p, conf).unwrap();
        let mut parts = cmd.split_whitespace();
        let mut c = Command::new(parts.next().unwrap());
        c.args(parts).arg("-c").arg(&p).arg("--no-supervisor");
        c.stdout(std::fs::File::create(d.path().join(format!("{name}.out"))).unwrap()).stderr(Stdio::null());
        c.spawn().unwrap()
    };
    let sec_recv = |name: &str| {
        format!(
            "  <security>\n    self_hostname {name}\n    shared_key hello\n    user_auth true\n    <user>\n      username u1\n      password p1\n    </user>\n  </security>"
        )
    };
    let client = "  require_ack_response true\n  compress gzip\n  <security>\n    self_hostname CLIENT\n    shared_key hello\n  </security>";
    // sluice → Fluentd
    let fport = free_port();
    let mut f = run_fluentd("fluentd_recv", &receiver(fport, &sec_recv("fluentd")));
    wait_listening(fport);
    let s = Proc::start(
        d.path(),
        "s",
        &sender(
            "to.fluentd",
            20,
            &server(fport, "    username u1\n    password p1"),
            &client.replace("CLIENT", "sluice"),
        ),
    );
    let fout = d.path().join("fluentd_recv.out");
    wait_until("Fluentd receives sluice's events", 30, || {
        counts(&std::fs::read_to_string(&fout).unwrap_or_default(), "to.fluentd").len() >= 20
    });
    s.stop();
    let _ = f.kill();
    let _ = f.wait();
    // Fluentd → sluice
    let sport = free_port();
    let recv = Proc::start(d.path(), "recv", &receiver(sport, &sec_recv("sluice")));
    wait_listening(sport);
    let mut f = run_fluentd(
        "fluentd_send",
        &sender(
            "from.fluentd",
            20,
            &server(sport, "    username u1\n    password p1"),
            &client.replace("CLIENT", "fluentd"),
        ),
    );
    wait_until("sluice receives Fluentd's events", 40, || counts(&recv.output(), "from.fluentd").len() >= 20);
    let _ = f.kill();
    let _ = f.wait();
    recv.stop();
}

/// A bare Forward receiver on a thread: counts connections and collects the
/// `n` of every event; the first connection is closed by the server after
/// `close_first_after` requests.
struct CountingReceiver {
    port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

fn counting_receiver(close_first_after: usize) -> CountingReceiver {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (connections.clone(), seen.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let index = c.fetch_add(1, Ordering::SeqCst);
            let seen = s.clone();
            std::thread::spawn(move || {
                let mut f = sluice_forward::Framer::new(64 << 20);
                let mut requests = 0;
                let mut buf = [0u8; 65536];
                loop {
                    while let Ok(Some(frame)) = f.next_frame() {
                        let now = sluice_event::EventTime::new(0, 0);
                        let req = sluice_forward::decode::decode(&frame, &Default::default(), now).unwrap().unwrap();
                        for ev in req.events.iter() {
                            let mut json = Vec::new();
                            sluice_event::json::write_json(ev.record.as_bytes(), &mut json).unwrap();
                            let json = String::from_utf8(json).unwrap();
                            let i = json.find("\"n\":").unwrap();
                            let n: String = json[i + 4..].chars().take_while(char::is_ascii_digit).collect();
                            seen.lock().unwrap().push(n.parse().unwrap());
                        }
                        requests += 1;
                        if index == 0 && requests == close_first_after {
                            return; // drops (closes) the connection
                        }
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => f.extend(&buf[..k]),
                    }
                }
            });
        }
    });
    CountingReceiver { port, connections, seen }
}

#[test]
fn keepalive_reuses_a_connection_and_reconnects_when_the_server_closes_it() {
    use std::sync::atomic::Ordering;
    let d = tempfile::tempdir().unwrap();
    let r = counting_receiver(3);
    let s = Proc::start(
        d.path(),
        "ka",
        &sender("ka", 50, &server(r.port, ""), "heartbeat_type none\n  keepalive true\n  keepalive_timeout 30"),
    );
    // About ten chunks a second: wait for well over 3 + 10 requests.
    wait_until("events over kept connections", 30, || r.seen.lock().unwrap().len() >= 150);
    s.stop();
    let seen = r.seen.lock().unwrap().clone();
    let conns = r.connections.load(Ordering::SeqCst);
    // One connection until the server closed it, then one more.
    assert_eq!(conns, 2, "connections: {conns}");
    // Nothing lost when the kept connection turned out to be closed.
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "duplicates");
    assert_eq!(*sorted.last().unwrap() + 1, sorted.len() as u64, "gaps");
}

#[test]
fn without_keepalive_every_chunk_uses_a_new_connection() {
    use std::sync::atomic::Ordering;
    let d = tempfile::tempdir().unwrap();
    let r = counting_receiver(usize::MAX);
    let s = Proc::start(d.path(), "noka", &sender("noka", 50, &server(r.port, ""), "heartbeat_type none"));
    wait_until("events", 30, || r.seen.lock().unwrap().len() >= 50);
    s.stop();
    assert!(r.connections.load(Ordering::SeqCst) >= 3);
}

#[test]
fn verify_connection_at_startup_fails_the_start() {
    let d = tempfile::tempdir().unwrap();
    let dead = free_port();
    let conf = sender("v", 10, &server(dead, ""), "verify_connection_at_startup true\n  connect_timeout 2");
    let path = d.path().join("v.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).arg("-c").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("verify_connection_at_startup: failed to connect"), "{text}");
}

/// JSON text as msgpack.
fn mp(json: &str) -> Vec<u8> {
    let mut v = Vec::new();
    sluice_event::json::json_to_msgpack(json.as_bytes(), &mut v).unwrap();
    v
}

fn client(port: u16) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// The next msgpack value from the server; None at EOF or after the read timeout.
fn reply(s: &mut std::net::TcpStream, f: &mut sluice_forward::Framer) -> Option<Vec<u8>> {
    use std::io::Read;
    loop {
        if let Ok(Some(b)) = f.next_frame() {
            return Some(b.to_vec());
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => f.extend(&buf[..n]),
        }
    }
}

fn send(s: &mut std::net::TcpStream, b: &[u8]) {
    use std::io::Write;
    s.write_all(b).unwrap();
}

/// Handshake as a client; the PONG's verdict.
fn handshake(s: &mut std::net::TcpStream, key: &str, user: &str, pass: &str) -> Result<String, String> {
    let mut f = sluice_forward::Framer::new(1 << 20);
    let helo = sluice_forward::handshake::parse_helo(&reply(s, &mut f).unwrap()).unwrap();
    let sec = sluice_forward::handshake::ClientSecurity {
        self_hostname: "client".into(),
        shared_key: key.into(),
        username: user.into(),
        password: pass.into(),
    };
    send(s, &sluice_forward::handshake::ping(&helo, &sec, "salt"));
    let pong = reply(s, &mut f).ok_or("no PONG")?;
    sluice_forward::handshake::check_pong(&pong, &helo, &sec, "salt")
}

#[test]
fn in_forward_options_keys_limits_json_udp_and_client_rules() {
    let d = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let [pa, pb, pc, pd, pe] = ports[..] else { unreachable!() };
    let conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {pa}\n  tag fixed\n  add_tag_prefix pre\n  source_address_key addr\n  source_hostname_key host\n</source>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {pb}\n  deny_keepalive true\n  chunk_size_limit 1k\n</source>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {pc}\n  skip_invalid_event false\n</source>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {pd}\n  <security>\n    self_hostname server\n    shared_key k1\n    allow_anonymous_source false\n    user_auth true\n    <user>\n      username alice\n      password pw\n    </user>\n    <user>\n      username bob\n      password pw2\n    </user>\n    <client>\n      network 127.0.0.0/8\n      shared_key k2\n      users alice\n    </client>\n  </security>\n</source>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {pe}\n  <security>\n    self_hostname server\n    shared_key k1\n    allow_anonymous_source false\n    <client>\n      network 10.0.0.0/8\n    </client>\n  </security>\n</source>\n\
         <match **>\n  @type stdout\n</match>\n"
    );
    let recv = Proc::start(d.path(), "recv", &conf);
    for p in &ports {
        wait_listening(*p);
    }
    let mut f = sluice_forward::Framer::new(1 << 20);

    // tag, add_tag_prefix, source_address_key, source_hostname_key; keepalive by default.
    let mut s = client(pa);
    send(&mut s, &mp(r#"["orig", 1700000000, {"n": 1}, {"chunk": "c1"}]"#));
    assert_eq!(reply(&mut s, &mut f).unwrap(), mp(r#"{"ack": "c1"}"#));
    send(&mut s, &mp(r#"["orig", 1700000000, {"n": 2, "addr": "spoofed"}, {"chunk": "c2"}]"#));
    assert_eq!(reply(&mut s, &mut f).unwrap(), mp(r#"{"ack": "c2"}"#), "the connection stays open");
    drop(s);

    // UDP heartbeat on the same port.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.send_to(b"\0", ("127.0.0.1", pa)).unwrap();
    let mut hb = [0u8; 8];
    let (n, from) = u.recv_from(&mut hb).unwrap();
    assert_eq!((&hb[..n], from.port()), (&b"\0"[..], pa));

    // deny_keepalive: the server closes after one request.
    let mut s = client(pb);
    send(&mut s, &mp(r#"["dk", 1700000000, {"n": 3}, {"chunk": "c3"}]"#));
    assert_eq!(reply(&mut s, &mut f).unwrap(), mp(r#"{"ack": "c3"}"#));
    assert_eq!(reply(&mut s, &mut f), None, "closed after the request");
    // chunk_size_limit: a request over it is refused (not acked, connection closed).
    let mut s = client(pb);
    let big = format!(r#"["dk.big", 1700000000, {{"pad": "{}"}}, {{"chunk": "c4"}}]"#, "x".repeat(2000));
    send(&mut s, &mp(&big));
    assert_eq!(reply(&mut s, &mut f), None, "an oversized request is not acked");
    f = sluice_forward::Framer::new(1 << 20);

    // skip_invalid_event: true (default) drops the bad entry, false refuses the request.
    let mut s = client(pb);
    send(
        &mut s,
        &mp(
            r#"["skip", [[1700000000, {"n": 5}], [1700000000, "not a map"], [1700000000, {"n": 6}]], {"chunk": "c5"}]"#,
        ),
    );
    assert_eq!(reply(&mut s, &mut f).unwrap(), mp(r#"{"ack": "c5"}"#));
    let mut s = client(pc);
    send(&mut s, &mp(r#"["strict", [[1700000000, {"n": 7}], [1700000000, "not a map"]], {"chunk": "c6"}]"#));
    assert_eq!(reply(&mut s, &mut f), None, "an invalid request is not acked");
    f = sluice_forward::Framer::new(1 << 20);

    // JSON requests, acked in JSON.
    let mut s = client(pc);
    send(&mut s, br#"["json.t", 1700000000, {"n": 8}, {"chunk": "j1"}]"#);
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap();
    assert_eq!(&buf[..n], br#"{"ack":"j1"}"#);

    // <client network> with its own shared_key and users.
    let mut s = client(pd);
    assert_eq!(handshake(&mut s, "k2", "alice", "pw").as_deref(), Ok("server"));
    send(&mut s, &mp(r#"["sec.ok", 1700000000, {"n": 9}, {"chunk": "s1"}]"#));
    assert_eq!(reply(&mut s, &mut f).unwrap(), mp(r#"{"ack": "s1"}"#));
    let mut s = client(pd);
    let e = handshake(&mut s, "k1", "alice", "pw").unwrap_err();
    assert!(e.contains("shared_key mismatch"), "{e}");
    let mut s = client(pd);
    let e = handshake(&mut s, "k2", "alice", "wrong").unwrap_err();
    assert!(e.contains("username/password mismatch"), "{e}");
    let mut s = client(pd);
    let e = handshake(&mut s, "k2", "bob", "pw2").unwrap_err();
    assert!(e.contains("username/password mismatch"), "{e}");
    // allow_anonymous_source false and no rule for 127.0.0.1.
    let mut s = client(pe);
    let e = handshake(&mut s, "k1", "", "").unwrap_err();
    assert!(e.contains("anonymous source host"), "{e}");

    std::thread::sleep(Duration::from_millis(300));
    let out = recv.stop();
    let line = |needle: &str| out.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {out}"));
    let l1 = line(r#""n":1"#);
    assert!(l1.contains(" pre.fixed: "), "{l1}");
    assert!(l1.contains(r#""addr":"127.0.0.1","host":""#), "{l1}");
    assert!(line(r#""n":2"#).contains(r#""addr":"127.0.0.1""#) && !out.contains("spoofed"));
    assert!(line(r#""n":3"#).contains(" dk: "));
    assert!(!out.contains("dk.big: "));
    assert!(out.contains("the request is not acked") && out.contains("(chunk_size_limit)"), "{out}");
    assert!(line(r#""n":5"#).contains(" skip: ") && line(r#""n":6"#).contains(" skip: "));
    assert!(out.contains("skip invalid event"), "{out}");
    assert!(!out.contains(r#""n":7"#));
    assert!(line(r#""n":8"#).contains(" json.t: "));
    assert!(line(r#""n":9"#).contains(" sec.ok: "));
    assert!(out.contains("authentication failed"), "{out}");
}

#[test]
fn in_forward_withholds_the_ack_while_the_buffer_is_full() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let out_dir = d.path().join("out");
    let conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match bp>\n  @type file\n  path {}/bp\n  <format>\n    @type json\n  </format>\n  <buffer>\n    @type memory\n    chunk_limit_size 2k\n    total_limit_size 2k\n    flush_mode interval\n    flush_interval 2s\n  </buffer>\n</match>\n",
        out_dir.display()
    );
    let recv = Proc::start(d.path(), "bp", &conf);
    wait_listening(port);
    let mut f = sluice_forward::Framer::new(1 << 20);
    let mut s = client(port);
    let mut acked_at = Vec::new();
    let t0 = Instant::now();
    for i in 0..3 {
        let req = format!(r#"["bp", 1700000000, {{"i": {i}, "pad": "{}"}}, {{"chunk": "b{i}"}}]"#, "x".repeat(1500));
        send(&mut s, &mp(&req));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(reply(&mut s, &mut f).unwrap(), mp(&format!(r#"{{"ack": "b{i}"}}"#)));
        acked_at.push(t0.elapsed());
    }
    // The first request fits; the next ones wait for a flush (2 s) before their ack.
    assert!(acked_at[0] < Duration::from_millis(1500), "{acked_at:?}");
    assert!(acked_at[2] >= Duration::from_millis(1500), "{acked_at:?}");
    drop(s);
    let out = recv.stop();
    let mut written = String::new();
    for e in std::fs::read_dir(&out_dir).unwrap() {
        written += &std::fs::read_to_string(e.unwrap().path()).unwrap();
    }
    for i in 0..3 {
        assert_eq!(written.matches(&format!(r#""i":{i},"#)).count(), 1, "{written}\n{out}");
    }
}

#[test]
fn udp_heartbeats_detach_a_dead_server_and_recover_it() {
    let d = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = Proc::start(d.path(), "a", &receiver(pa, ""));
    wait_listening(pa);
    let servers = server(pa, "    name alive") + &server(pb, "    name later");
    let extra =
        "heartbeat_type udp\n  hard_timeout 1\n  phi_threshold 4\n  recover_wait 1\n  require_ack_response true";
    let s = Proc::start(d.path(), "s", &sender("udp", 50, &servers, extra));
    wait_until("the dead server detached", 20, || s.output().contains("detached forwarding server 'later'"));
    let b = Proc::start(d.path(), "b", &receiver(pb, ""));
    wait_listening(pb);
    wait_until("the server recovered by UDP heartbeats", 30, || {
        s.output().contains("recovered forwarding server 'later'")
    });
    wait_until("traffic to the recovered server", 20, || counts(&b.output(), "udp").len() >= 10);
    s.stop();
    std::thread::sleep(Duration::from_millis(300));
    let all: BTreeMap<u64, u32> = counts(&a.stop(), "udp").into_iter().chain(counts(&b.stop(), "udp")).collect();
    let max = *all.keys().last().unwrap();
    assert!((0..=max).all(|n| all.contains_key(&n)), "events lost");
}
