//! `@type forward` output: buffered chunks to Forward servers.
//!
//! Each chunk (its entries exactly as buffered) goes out as one
//! PackedForward request in the shape Fluentd's out_forward writes
//! (`[tag, str32 entries, {"size", "compressed", "chunk"?}]`), over TCP or
//! TLS, after the `<security>` handshake when configured. With
//! `require_ack_response` the chunk is done only when the server echoes its
//! id; otherwise the buffer retries it. Servers are chosen by Fluentd's load
//! balancer (weights reduced by their GCD, a shuffled round-robin array,
//! standby servers replacing lost weight) and watched by heartbeats
//! (`transport`: a connection; `udp`: a datagram) with Fluentd's phi accrual
//! failure detector.

use super::{BoxFuture, BuildCx, EmitError, Output, StartCx};
use crate::buffer::output::{BufferDefaults, ChunkOutput, ChunkView, EventFormat, WriteError, WriteFuture};
use crate::log::Logger;
use sluice_config::{Element, ParamEnum, Params, TimeSpan};
use sluice_event::EventStream;
use sluice_forward::Framer;
use sluice_forward::encode::{self, Compress};
use sluice_forward::handshake::{self, ClientSecurity};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How servers are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum HeartbeatType {
    /// A TCP (or TLS) connection, with the handshake.
    Transport,
    /// Deprecated name of transport.
    Tcp,
    /// A `"\0"` datagram answered by the server.
    Udp,
    /// Not watched: always available.
    None,
}

/// Compression of sent chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum CompressParam {
    /// None.
    Text,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// tcp or tls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum TransportParam {
    /// Plain TCP.
    Tcp,
    /// TLS.
    Tls,
}

/// Sends chunks to Forward servers.
#[derive(Debug, Params)]
pub struct ForwardOutputParams {
    /// `tcp` or `tls`.
    #[param(default = "tcp")]
    pub transport: TransportParam,
    /// Give up writing a chunk after this long.
    #[param(default = "60")]
    pub send_timeout: TimeSpan,
    /// Give up connecting after this long (default: send_timeout).
    pub connect_timeout: Option<TimeSpan>,
    /// `transport`, `udp` or `none`.
    #[param(default = "transport")]
    pub heartbeat_type: HeartbeatType,
    /// Seconds between heartbeats.
    #[param(default = "1")]
    pub heartbeat_interval: TimeSpan,
    /// Heartbeats needed (as seconds of them) before a detached server is used again.
    #[param(default = "10")]
    pub recover_wait: TimeSpan,
    /// A server without a heartbeat for this long is detached.
    #[param(default = "60")]
    pub hard_timeout: TimeSpan,
    /// Use the phi accrual failure detector.
    #[param(default = "true")]
    pub phi_failure_detector: bool,
    /// Phi above which a server is detached.
    #[param(default = "16")]
    pub phi_threshold: u32,
    /// Wait for the server's ack of each chunk.
    #[param(default = "false")]
    pub require_ack_response: bool,
    /// How long to wait for an ack.
    #[param(default = "190")]
    pub ack_response_timeout: TimeSpan,
    /// Poll interval while reading responses (accepted; sluice reads asynchronously).
    #[param(default = "50")]
    pub read_interval_msec: u32,
    /// Read size for responses (accepted).
    #[param(default = "512")]
    pub read_length: u32,
    /// Resolve host names again after this long (0: every time; unset: once).
    pub expire_dns_cache: Option<TimeSpan>,
    /// Pick a random address of a name with several.
    #[param(default = "false")]
    pub dns_round_robin: bool,
    /// Start even if servers cannot be resolved.
    #[param(default = "false")]
    pub ignore_network_errors_at_startup: bool,
    /// Connect to every server at start and fail if one is unreachable.
    #[param(default = "false")]
    pub verify_connection_at_startup: bool,
    /// `text`, `gzip` or `zstd`.
    #[param(default = "text")]
    pub compress: CompressParam,
    /// TLS version.
    #[param(default = "TLSv1_2")]
    pub tls_version: super::tls::TlsVersion,
    /// OpenSSL cipher list (accepted with a warning).
    pub tls_ciphers: Option<String>,
    /// Accept any server certificate.
    #[param(default = "false")]
    pub tls_insecure_mode: bool,
    /// Accept a self-signed server certificate.
    #[param(default = "false")]
    pub tls_allow_self_signed_cert: bool,
    /// Check the server's name against its certificate.
    #[param(default = "true")]
    pub tls_verify_hostname: bool,
    /// CA certificate files to trust.
    #[param(default = "[]")]
    pub tls_cert_path: Vec<String>,
    /// CA certificate file to trust.
    pub tls_ca_cert_path: Option<String>,
    /// Client certificate.
    pub tls_client_cert_path: Option<String>,
    /// Client key.
    pub tls_client_private_key_path: Option<String>,
    /// Client key passphrase.
    #[param(secret)]
    pub tls_client_private_key_passphrase: Option<String>,
    /// Keep connections open between chunks.
    #[param(default = "false")]
    pub keepalive: bool,
    /// Close kept connections idle for this long.
    pub keepalive_timeout: Option<TimeSpan>,
    /// SO_KEEPALIVE (needs keepalive).
    #[param(default = "false")]
    pub send_keepalive_packet: bool,
    /// Servers.
    #[section(name = "server", params = ServerParams)]
    pub server: Vec<Element>,
    /// `self_hostname` and `shared_key` for the handshake.
    #[section(name = "security", params = SecurityParams)]
    pub security: Option<Element>,
    /// Buffering (default `tag` chunk key, memory).
    #[section(name = "buffer", params = crate::buffer::BufferParams)]
    pub buffer: Option<Element>,
    /// Where chunks go when no server takes them.
    #[section(name = "secondary")]
    pub secondary: Option<Element>,
}

/// `<server>`.
#[derive(Debug, Clone, Params)]
pub struct ServerParams {
    /// Host name or address.
    pub host: String,
    /// Name used in logs (default `host:port`).
    pub name: Option<String>,
    /// Port.
    #[param(default = "24224")]
    pub port: u16,
    /// Key for this server (else `<security>`'s).
    #[param(secret)]
    pub shared_key: Option<String>,
    /// User for user authentication.
    #[param(default = "")]
    pub username: String,
    /// Password for user authentication.
    #[param(default = "", secret)]
    pub password: String,
    /// Used only while regular servers are down.
    #[param(default = "false")]
    pub standby: bool,
    /// Share of chunks.
    #[param(default = "60")]
    pub weight: u32,
}

/// `<security>` of out_forward.
#[derive(Debug, Clone, Params)]
pub struct SecurityParams {
    /// This client's name.
    pub self_hostname: String,
    /// Key shared with the servers.
    #[param(secret)]
    pub shared_key: String,
}

/// Fluentd's phi accrual failure detector.
#[derive(Debug, Clone)]
pub struct FailureDetector {
    hb: f64,
    hard: f64,
    last: f64,
    init_gap: u64,
    window: std::collections::VecDeque<u64>,
}

impl FailureDetector {
    /// A detector started at `now`.
    pub fn new(hb: f64, hard: f64, now: f64) -> Self {
        let init_gap = (hb * 1e6) as u64;
        FailureDetector { hb, hard, last: now, init_gap, window: std::iter::once(init_gap).collect() }
    }

    /// No heartbeat for `hard_timeout`.
    pub fn hard_timeout(&self, now: f64) -> bool {
        now - self.last > self.hard
    }

    /// A heartbeat arrived.
    pub fn add(&mut self, now: f64) {
        if self.window.is_empty() {
            self.window.push_back(self.init_gap);
        } else {
            self.window.push_back(((now - self.last) * 1e6) as u64);
            if self.window.len() > 1000 {
                self.window.pop_front();
            }
        }
        self.last = now;
    }

    /// Phi at `now`.
    pub fn phi(&self, now: f64) -> f64 {
        if self.window.is_empty() {
            return 0.0;
        }
        let (mut sum, mut fact) = (0u128, 0u128);
        for (i, g) in self.window.iter().enumerate() {
            sum += u128::from(*g) * (i as u128 + 1);
            fact += i as u128 + 1;
        }
        let mean_usec = (sum / fact) as f64;
        let mean = mean_usec / 1e6 - self.hb + 1.0;
        let t = now - self.last - self.hb + 1.0;
        (1.0 / std::f64::consts::LN_10) * t / mean
    }

    /// Samples in the window.
    pub fn samples(&self) -> usize {
        self.window.len()
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.window.clear();
        self.last = 0.0;
    }
}

struct NodeState {
    available: bool,
    failure: FailureDetector,
    addr: Option<(SocketAddr, Instant)>,
}

/// A connection kept open between chunks (`keepalive true`).
struct Idle {
    stream: Box<dyn Stream>,
    since: Instant,
}

struct Node {
    /// Kept connections, newest last.
    idle: Mutex<Vec<Idle>>,
    name: String,
    host: String,
    port: u16,
    weight: u32,
    standby: bool,
    creds: Option<ClientSecurity>,
    state: Mutex<NodeState>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

struct Cfg {
    tls: Option<(tokio_rustls::TlsConnector, bool)>,
    send_timeout: Duration,
    connect_timeout: Duration,
    heartbeat: HeartbeatType,
    hb_interval: Duration,
    recover_samples: usize,
    phi: Option<f64>,
    ack: bool,
    ack_timeout: Duration,
    expire_dns: Option<Duration>,
    dns_round_robin: bool,
    compress: Compress,
    verify_at_startup: bool,
    /// `keepalive`: reuse connections; with the idle limit of `keepalive_timeout`.
    keepalive: Option<Option<Duration>>,
    /// SO_KEEPALIVE on connections.
    tcp_keepalive: bool,
}

/// The server side shared by the writer and the heartbeat task.
pub struct Forwarder {
    cfg: Cfg,
    nodes: Vec<Node>,
    weights: Mutex<Vec<usize>>,
    rr: AtomicUsize,
    seed: u64,
    log: Logger,
    stopping: AtomicBool,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why a send failed.
type SendResult = Result<(), String>;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Forwarder {
    /// Fluentd's `rebuild_weight_array`.
    fn rebuild(&self) {
        let usable: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].weight > 0).collect();
        let avail = |i: usize| self.nodes[i].state.lock().unwrap_or_else(|e| e.into_inner()).available;
        let (standby, mut regular): (Vec<usize>, Vec<usize>) = usable.into_iter().partition(|i| self.nodes[*i].standby);
        let mut lost: i64 = regular.iter().filter(|i| !avail(**i)).map(|i| i64::from(self.nodes[*i].weight)).sum();
        if lost > 0 {
            for s in standby {
                if avail(s) {
                    regular.push(s);
                    let n = &self.nodes[s];
                    crate::warn!(self.log, format!("using standby node {}:{}", n.host, n.port), "weight" => n.weight);
                    lost -= i64::from(n.weight);
                    if lost <= 0 {
                        break;
                    }
                }
            }
        }
        let mut array = Vec::new();
        if regular.is_empty() {
            crate::warn!(self.log, "No nodes are available");
        } else {
            let g = regular.iter().fold(0, |g, i| gcd(g, self.nodes[*i].weight)).max(1);
            for &i in &regular {
                for _ in 0..self.nodes[i].weight / g {
                    array.push(i);
                }
            }
            let coe = (regular.len() * 6) / array.len();
            if coe > 1 {
                let base = array.clone();
                for _ in 1..coe {
                    array.extend_from_slice(&base);
                }
            }
            // Shuffle with a seed fixed for this output (Fluentd's `Random.new(@rand_seed)`).
            let mut s = self.seed | 1;
            let mut keyed: Vec<(u64, usize)> = array.into_iter().map(|i| (xorshift(&mut s), i)).collect();
            keyed.sort_by_key(|(k, _)| *k);
            array = keyed.into_iter().map(|(_, i)| i).collect();
        }
        *self.weights.lock().unwrap_or_else(|e| e.into_inner()) = array;
    }

    async fn resolve(&self, n: &Node) -> Result<SocketAddr, String> {
        {
            let st = n.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((a, at)) = st.addr {
                match self.cfg.expire_dns {
                    None => return Ok(a),
                    Some(d) if !d.is_zero() && at.elapsed() < d => return Ok(a),
                    _ => {}
                }
            }
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((n.host.as_str(), n.port))
            .await
            .map_err(|e| format!("failed to resolve {}: {e}", n.host))?
            .collect();
        let a = if self.cfg.dns_round_robin && addrs.len() > 1 {
            addrs[(unix_now() * 1e6) as usize % addrs.len()]
        } else {
            *addrs.first().ok_or_else(|| format!("{} has no address", n.host))?
        };
        n.state.lock().unwrap_or_else(|e| e.into_inner()).addr = Some((a, Instant::now()));
        Ok(a)
    }

    /// Connect, TLS, handshake.
    async fn connect(&self, n: &Node) -> Result<Box<dyn Stream>, String> {
        let addr = self.resolve(n).await?;
        let sock = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .map_err(|e| format!("failed to connect to {}: {e}", n.name))?;
        if self.cfg.tcp_keepalive {
            let _ = sock.set_keepalive(true);
        }
        let tcp = tokio::time::timeout(self.cfg.connect_timeout, sock.connect(addr))
            .await
            .map_err(|_| format!("connect timeout to {}", n.name))?
            .map_err(|e| format!("failed to connect to {}: {e}", n.name))?;
        let _ = tcp.set_nodelay(true);
        let mut s: Box<dyn Stream> = match &self.cfg.tls {
            Some((conn, verify_name)) => {
                let name = if *verify_name { n.host.clone() } else { "localhost".to_string() };
                let sn = rustls::pki_types::ServerName::try_from(name).map_err(|e| e.to_string())?;
                let t = tokio::time::timeout(self.cfg.connect_timeout, conn.connect(sn, tcp))
                    .await
                    .map_err(|_| format!("TLS handshake timeout with {}", n.name))?
                    .map_err(|e| format!("TLS handshake with {} failed: {e}", n.name))?;
                Box::new(t)
            }
            None => Box::new(tcp),
        };
        if let Some(creds) = &n.creds {
            let mut f = Framer::new(1 << 20);
            let helo = read_frame(&mut s, &mut f, self.cfg.connect_timeout).await?;
            let helo =
                handshake::parse_helo(&helo).map_err(|_| format!("received invalid helo message from {}", n.name))?;
            let mut salt = [0u8; 16];
            let _ = getrandom::fill(&mut salt);
            let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
            s.write_all(&handshake::ping(&helo, creds, &salt)).await.map_err(|e| e.to_string())?;
            let pong = read_frame(&mut s, &mut f, self.cfg.connect_timeout).await?;
            handshake::check_pong(&pong, &helo, creds, &salt)
                .map_err(|e| format!("connection refused to {}: {e}", n.name))?;
        }
        Ok(s)
    }

    /// A kept connection that is still open and idle, if there is one.
    async fn reuse(&self, n: &Node) -> Option<Box<dyn Stream>> {
        let limit = self.cfg.keepalive?;
        loop {
            let idle = n.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if limit.is_some_and(|l| idle.since.elapsed() >= l) {
                continue;
            }
            let mut s = idle.stream;
            // A server that closed the connection (or sent something unasked)
            // makes it readable: such a connection is not reused.
            let mut probe = [0u8; 1];
            if tokio::time::timeout(Duration::ZERO, s.read(&mut probe)).await.is_err() {
                return Some(s);
            }
        }
    }

    async fn send(&self, n: &Node, frame: &[u8], ack: Option<&str>) -> SendResult {
        if let Some(s) = self.reuse(n).await {
            // A kept connection can fail where a new one would not (the
            // server restarted): then the chunk goes over a new connection.
            if self.send_on(n, s, frame, ack).await.is_ok() {
                return Ok(());
            }
        }
        let s = self.connect(n).await?;
        self.send_on(n, s, frame, ack).await
    }

    async fn send_on(&self, n: &Node, mut s: Box<dyn Stream>, frame: &[u8], ack: Option<&str>) -> SendResult {
        tokio::time::timeout(self.cfg.send_timeout, s.write_all(frame))
            .await
            .map_err(|_| format!("send timeout to {}", n.name))?
            .map_err(|e| format!("failed to send to {}: {e}", n.name))?;
        let _ = s.flush().await;
        if let Some(id) = ack {
            let mut f = Framer::new(1 << 20);
            let resp = read_frame(&mut s, &mut f, self.cfg.ack_timeout)
                .await
                .map_err(|e| format!("no ack from {} ({e}); the chunk will be sent again", n.name))?;
            let want = encode::ack(&{
                let mut v = Vec::new();
                sluice_event::msgpack::write_str(&mut v, id.as_bytes());
                v
            });
            if resp[..] != want[..] {
                return Err(format!("ack from {} does not match the chunk id; the chunk will be sent again", n.name));
            }
        }
        if self.cfg.keepalive.is_some() && !self.stopping.load(Ordering::Acquire) {
            n.idle.lock().unwrap_or_else(|e| e.into_inner()).push(Idle { stream: s, since: Instant::now() });
        } else {
            let _ = s.shutdown().await;
        }
        Ok(())
    }

    fn heartbeat(&self, i: usize, detect: bool) -> bool {
        let n = &self.nodes[i];
        let mut st = n.state.lock().unwrap_or_else(|e| e.into_inner());
        st.failure.add(unix_now());
        if detect && !st.available && st.failure.samples() > self.cfg.recover_samples {
            st.available = true;
            drop(st);
            crate::warn!(self.log, format!("recovered forwarding server '{}'", n.name), "host" => n.host.as_str(), "port" => n.port);
            return true;
        }
        false
    }

    /// Fluentd's `tick`: true if the server was just detached.
    fn tick(&self, i: usize) -> bool {
        if self.cfg.heartbeat == HeartbeatType::None {
            return false;
        }
        let n = &self.nodes[i];
        let now = unix_now();
        let mut st = n.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.available {
            if st.failure.hard_timeout(now) {
                st.failure.clear();
            }
            return false;
        }
        if st.failure.hard_timeout(now) {
            st.available = false;
            st.addr = None;
            st.failure.clear();
            drop(st);
            crate::warn!(self.log, format!("detached forwarding server '{}'", n.name), "host" => n.host.as_str(), "port" => n.port, "hard_timeout" => true);
            return true;
        }
        if let Some(threshold) = self.cfg.phi {
            let phi = st.failure.phi(now);
            if phi > threshold {
                st.available = false;
                st.addr = None;
                st.failure.clear();
                drop(st);
                crate::warn!(self.log, format!("detached forwarding server '{}'", n.name), "host" => n.host.as_str(), "port" => n.port, "phi" => phi, "phi_threshold" => threshold);
                return true;
            }
        }
        false
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let udp = if self.cfg.heartbeat == HeartbeatType::Udp {
            tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok()
        } else {
            None
        };
        let mut tick = tokio::time::interval(self.cfg.hb_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = [0u8; 64];
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            tokio::select! {
                _ = tick.tick() => {
                    let mut rebuild = false;
                    for i in 0..self.nodes.len() {
                        match self.cfg.heartbeat {
                            HeartbeatType::Transport | HeartbeatType::Tcp => {
                                let me = self.clone();
                                // Heartbeats run concurrently so a slow server does not delay the others.
                                tokio::spawn(async move {
                                    let n = &me.nodes[i];
                                    let ok = tokio::time::timeout(me.cfg.hb_interval.max(Duration::from_millis(200)) * 2, me.connect(n)).await;
                                    if let Ok(Ok(mut s)) = ok {
                                        let _ = s.shutdown().await;
                                        if me.heartbeat(i, true) {
                                            me.rebuild();
                                        }
                                    }
                                });
                            }
                            HeartbeatType::Udp => {
                                if let (Some(u), Ok(a)) = (&udp, self.resolve(&self.nodes[i]).await) {
                                    let _ = u.send_to(encode::HEARTBEAT_UDP, a).await;
                                }
                            }
                            HeartbeatType::None => {}
                        }
                        rebuild |= self.tick(i);
                    }
                    if rebuild {
                        self.rebuild();
                    }
                }
                r = async { match &udp { Some(u) => u.recv_from(&mut buf).await, None => std::future::pending().await } } => {
                    if let Ok((_, from)) = r {
                        let idx = self.nodes.iter().position(|n| n.state.lock().unwrap_or_else(|e| e.into_inner()).addr.is_some_and(|(a, _)| a == from));
                        match idx {
                            Some(i) => if self.heartbeat(i, true) { self.rebuild() },
                            None => crate::warn!(self.log, format!("Unknown heartbeat response received from {from}. It may service out")),
                        }
                    }
                }
            }
        }
    }
}

async fn read_frame(s: &mut Box<dyn Stream>, f: &mut Framer, timeout: Duration) -> Result<bytes::Bytes, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match f.next_frame() {
            Ok(Some(b)) => return Ok(b),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let buf = f.buffer_mut();
        buf.reserve(4096);
        match tokio::time::timeout_at(deadline, s.read_buf(buf)).await {
            Err(_) => return Err("timeout".into()),
            Ok(Ok(0)) => return Err("disconnected".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

impl ChunkOutput for Forwarder {
    fn write<'a>(&'a self, chunk: &'a ChunkView<'a>) -> WriteFuture<'a> {
        Box::pin(async move {
            let Some(tag) = chunk.meta.tag.as_deref() else {
                return Err(WriteError::Unrecoverable("the chunk has no tag".into()));
            };
            let ack_id = self.cfg.ack.then(|| encode::base64_encode64(&chunk.id));
            let frame =
                encode::packed_forward(tag, chunk.data, chunk.records as usize, self.cfg.compress, ack_id.as_deref())
                    .map_err(|e| WriteError::Retryable(e.to_string()))?;
            let order: Vec<usize> = self.weights.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut last = None;
            for _ in 0..order.len() {
                let r = self.rr.fetch_add(1, Ordering::Relaxed) % order.len().max(1);
                let i = order[r];
                let n = &self.nodes[i];
                if !n.state.lock().unwrap_or_else(|e| e.into_inner()).available {
                    continue;
                }
                match self.send(n, &frame, ack_id.as_deref()).await {
                    Ok(()) => {
                        self.heartbeat(i, false);
                        return Ok(());
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(WriteError::Retryable(last.unwrap_or_else(|| "no nodes are available".into())))
        })
    }
}

/// The output: a buffer in front of the forwarder, plus the heartbeat task.
pub struct ForwardOutput {
    buffered: Box<dyn Output>,
    fwd: Arc<Forwarder>,
}

impl Output for ForwardOutput {
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError> {
        self.buffered.emit(tag, es)
    }

    fn preflight(&self) -> super::PreflightFuture<'_> {
        Box::pin(async move {
            if !self.fwd.cfg.verify_at_startup {
                return Ok(());
            }
            // Fluentd's verify_connection_at_startup: every server must
            // accept a connection (and the handshake) or the start fails.
            for n in &self.fwd.nodes {
                let mut s = self.fwd.connect(n).await.map_err(|e| format!("verify_connection_at_startup: {e}"))?;
                let _ = s.shutdown().await;
            }
            Ok(())
        })
    }

    fn start(&self, cx: &StartCx) {
        self.buffered.start(cx);
        if self.fwd.cfg.heartbeat != HeartbeatType::None {
            tokio::spawn(self.fwd.clone().heartbeat_loop());
        }
    }

    fn shutdown(&self) -> BoxFuture {
        self.fwd.stopping.store(true, Ordering::Release);
        let flushed = self.buffered.shutdown();
        let fwd = self.fwd.clone();
        Box::pin(async move {
            flushed.await;
            for n in &fwd.nodes {
                let idle = std::mem::take(&mut *n.idle.lock().unwrap_or_else(|e| e.into_inner()));
                for mut c in idle {
                    let _ = c.stream.shutdown().await;
                }
            }
        })
    }
}

fn forwarder(p: &ForwardOutputParams, el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Arc<Forwarder>> {
    let span = |n: &str| el.param(n).map_or(el.span, |x| x.value_span);
    let sec = match &p.security {
        Some(s) => {
            cx.cfg.path.push(s.display_name());
            let r = SecurityParams::from_element(s, cx.cfg);
            cx.cfg.path.pop();
            Some(r?)
        }
        None => None,
    };
    let mut nodes = Vec::new();
    for s in &p.server {
        cx.cfg.path.push(s.display_name());
        let sp = ServerParams::from_element(s, cx.cfg);
        cx.cfg.path.pop();
        let sp = sp?;
        let name = sp.name.clone().unwrap_or_else(|| format!("{}:{}", sp.host, sp.port));
        crate::info!(cx.info.log, format!("adding forwarding server '{name}'"), "host" => sp.host.as_str(), "port" => sp.port, "weight" => sp.weight, "plugin_id" => cx.info.id.as_str());
        let creds = sec.as_ref().map(|sec| ClientSecurity {
            self_hostname: sec.self_hostname.clone(),
            shared_key: sp.shared_key.clone().unwrap_or_else(|| sec.shared_key.clone()),
            username: sp.username.clone(),
            password: sp.password.clone(),
        });
        nodes.push(Node {
            idle: Mutex::new(Vec::new()),
            name,
            host: sp.host,
            port: sp.port,
            weight: sp.weight,
            standby: sp.standby,
            creds,
            state: Mutex::new(NodeState {
                available: true,
                failure: FailureDetector::new(p.heartbeat_interval.secs(), p.hard_timeout.secs(), unix_now().trunc()),
                addr: None,
            }),
        });
    }
    if nodes.is_empty() {
        cx.cfg.error(
            el.span,
            "forward output plugin requires at least one node is required. Add <server> or <service_discovery>",
        );
        return None;
    }
    if p.dns_round_robin && p.heartbeat_type == HeartbeatType::Udp {
        cx.cfg.error(
            span("dns_round_robin"),
            "forward output heartbeat type must be 'transport' or 'none' to use dns_round_robin option",
        );
        return None;
    }
    if p.heartbeat_type == HeartbeatType::Tcp {
        cx.cfg.warn(span("heartbeat_type"), "'heartbeat_type tcp' is deprecated. use 'transport' instead.");
    }
    if p.ack_response_timeout.secs() < 1.0 {
        cx.cfg.error(span("ack_response_timeout"), "ack_response_timeout must be a positive integer");
        return None;
    }
    if p.send_keepalive_packet && !p.keepalive {
        cx.cfg.error(
            span("send_keepalive_packet"),
            "'send_keepalive_packet' is enabled but 'keepalive' is not. Enable 'keepalive' to use TCP keepalive.",
        );
        return None;
    }
    if p.keepalive_timeout.is_some() && !p.keepalive {
        cx.cfg.warn(span("keepalive_timeout"), "The value of keepalive_timeout is ignored. if you want to use keepalive, please add `keepalive true` to your conf.");
    }
    let tls = if p.transport == TransportParam::Tls {
        if p.tls_ciphers.is_some() {
            cx.cfg.warn(
                span("tls_ciphers"),
                "tls_ciphers is an OpenSSL cipher list; sluice uses rustls' secure defaults and ignores it",
            );
        }
        if p.tls_insecure_mode {
            cx.cfg.warn(span("tls_insecure_mode"), "TLS transport is configured in insecure way");
        }
        let mut ca = p.tls_cert_path.clone();
        ca.extend(p.tls_ca_cert_path.clone());
        for c in &ca {
            if !std::path::Path::new(c).exists() {
                cx.cfg.error(span("tls_cert_path"), format!("specified cert path does not exist:{c}"));
                return None;
            }
        }
        let t = super::tls::ClientTls {
            verify_hostname: p.tls_verify_hostname,
            ca_paths: ca,
            client_cert: p.tls_client_cert_path.clone(),
            client_key: p.tls_client_private_key_path.clone(),
            client_key_passphrase: p.tls_client_private_key_passphrase.clone(),
            allow_self_signed: p.tls_allow_self_signed_cert,
            insecure: p.tls_insecure_mode,
            version: Some(p.tls_version),
        };
        if cx.env.dry_run {
            None
        } else {
            match super::tls::client_config(&t) {
                Ok(c) => Some((tokio_rustls::TlsConnector::from(c), p.tls_verify_hostname)),
                Err(e) => {
                    cx.cfg.error(el.span, e);
                    return None;
                }
            }
        }
    } else {
        None
    };
    let send_timeout = p.send_timeout.duration();
    let fwd = Forwarder {
        cfg: Cfg {
            tls,
            send_timeout,
            connect_timeout: p.connect_timeout.map_or(send_timeout, TimeSpan::duration),
            heartbeat: p.heartbeat_type,
            hb_interval: p.heartbeat_interval.duration().max(Duration::from_millis(10)),
            recover_samples: (p.recover_wait.secs() / p.heartbeat_interval.secs().max(0.001)) as usize,
            phi: p.phi_failure_detector.then_some(f64::from(p.phi_threshold)),
            ack: p.require_ack_response,
            ack_timeout: p.ack_response_timeout.duration(),
            expire_dns: p.expire_dns_cache.map(TimeSpan::duration),
            dns_round_robin: p.dns_round_robin,
            compress: match p.compress {
                CompressParam::Text => Compress::Text,
                CompressParam::Gzip => Compress::Gzip,
                CompressParam::Zstd => Compress::Zstd,
            },
            verify_at_startup: p.verify_connection_at_startup,
            keepalive: p.keepalive.then(|| p.keepalive_timeout.map(TimeSpan::duration)),
            tcp_keepalive: p.send_keepalive_packet,
        },
        nodes,
        weights: Mutex::new(Vec::new()),
        rr: AtomicUsize::new(0),
        seed: {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            u64::from_le_bytes(b)
        },
        log: cx.info.log.clone(),
        stopping: AtomicBool::new(false),
    };
    fwd.rebuild();
    Some(Arc::new(fwd))
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let p = ForwardOutputParams::from_element(el, cx.cfg)?;
    let fwd = forwarder(&p, el, cx)?;
    let primary: Arc<dyn ChunkOutput> = fwd.clone() as Arc<dyn ChunkOutput>;
    let buffered = crate::buffer::output::build(
        p.buffer.as_ref(),
        p.secondary.as_ref(),
        BufferDefaults::TAG,
        EventFormat::Msgpack,
        primary,
        cx,
    )?;
    if let Some(b) = &p.buffer
        && !b.arg.split(',').map(str::trim).any(|k| k == "tag")
        && !b.arg.trim().is_empty()
    {
        cx.cfg.error(b.span, "buffer chunk key must include 'tag' for forward output");
        return None;
    }
    if let Some(b) = &p.buffer
        && b.arg.trim() == "[]"
    {
        cx.cfg.error(b.span, "buffer chunk key must include 'tag' for forward output");
        return None;
    }
    Some(Box::new(ForwardOutput { buffered, fwd }))
}

/// Factory as a chunk writer (`<store>` or `<secondary>`).
pub fn build_chunk(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Arc<dyn ChunkOutput>> {
    let p = ForwardOutputParams::from_element(el, cx.cfg)?;
    let fwd = forwarder(&p, el, cx)?;
    Some(fwd as Arc<dyn ChunkOutput>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_without_heartbeats() {
        let mut f = FailureDetector::new(1.0, 60.0, 0.0);
        for i in 1..=10 {
            f.add(f64::from(i));
        }
        assert!(f.phi(10.5) < 1.0);
        // phi 16 is reached about 37 s after the last heartbeat (1/ln 10 * t).
        assert!(f.phi(10.0 + 36.0) < 16.0);
        assert!(f.phi(10.0 + 38.0) > 16.0);
        assert!(f.hard_timeout(71.0));
        f.clear();
        assert_eq!(f.samples(), 0);
        f.add(100.0);
        assert_eq!(f.samples(), 1);
    }
}
