//! `@type forward` input: the Forward protocol server.
//!
//! One task per connection frames the byte stream ([`sluice_forward::Framer`],
//! bounded by `chunk_size_limit`), decodes each request (every mode, v1.5
//! metadata times, gzip/zstd), emits it, and only then acks it
//! (`{"ack": chunk}`, the chunk value's bytes echoed). When the output pushes
//! back, the connection stops reading and the ack is withheld until the
//! events are accepted: nothing is dropped. A connection whose first byte is
//! `{` or `[` is JSON (and acked in JSON). With `<security>` the connection
//! starts with the HELO/PING/PONG handshake. UDP on the same port answers
//! heartbeats.

use super::{BoxFuture, BuildCx, EmitError, Emitter, Input, InputContext, Shutdown};
use crate::log::Logger;
use bytes::Bytes;
use sluice_config::{Element, Params, Size};
use sluice_event::{EventStream, EventStreamBuilder, EventTime, RecordRef, msgpack};
use sluice_forward::handshake::{ClientRule, ServerSecurity, ServerSession};
use sluice_forward::{Framer, Limits, Request, Signal};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Receives events over the Forward protocol.
#[derive(Debug, Params)]
pub struct ForwardInputParams {
    /// Port (TCP, and UDP for heartbeats).
    #[param(default = "24224")]
    pub port: u16,
    /// Address to listen on.
    #[param(default = "0.0.0.0")]
    pub bind: String,
    /// Listen backlog.
    pub backlog: Option<u32>,
    /// SO_LINGER on close (deprecated: use `<transport>`).
    #[param(deprecated = "use linger_timeout in <transport>")]
    pub linger_timeout: Option<u32>,
    /// Resolve peers' host names (for `source_hostname_key` and `<client host>`).
    pub resolve_hostname: Option<bool>,
    /// Close each connection after its first request.
    #[param(default = "false")]
    pub deny_keepalive: bool,
    /// Set SO_KEEPALIVE on connections.
    #[param(default = "false")]
    pub send_keepalive_packet: bool,
    /// Warn about requests larger than this.
    pub chunk_size_warn_limit: Option<Size>,
    /// Refuse requests larger than this (the connection is closed).
    pub chunk_size_limit: Option<Size>,
    /// Largest decompressed size of one request.
    #[param(default = "256m")]
    pub decompression_size_limit: Size,
    /// Drop entries that are not `[time, record]` instead of refusing the request.
    #[param(default = "true")]
    pub skip_invalid_event: bool,
    /// Add the sender's address to each record under this key.
    pub source_address_key: Option<String>,
    /// Add the sender's host name to each record under this key.
    pub source_hostname_key: Option<String>,
    /// Replace the tag of every event.
    pub tag: Option<String>,
    /// Prefix every tag with this and a dot.
    pub add_tag_prefix: Option<String>,
    /// Shared-key and user authentication.
    #[section(name = "security", params = SecurityParams)]
    pub security: Option<Element>,
    /// `<transport tls>`.
    #[section(name = "transport", params = super::tls::ServerTlsParams)]
    pub transport: Option<Element>,
}

/// `<security>` of in_forward.
#[derive(Debug, Clone, Params)]
pub struct SecurityParams {
    /// This server's name, sent in PONG.
    pub self_hostname: String,
    /// Key clients prove they know.
    #[param(secret)]
    pub shared_key: String,
    /// Require `<user>` credentials.
    #[param(default = "false")]
    pub user_auth: bool,
    /// Accept clients that match no `<client>`.
    #[param(default = "true")]
    pub allow_anonymous_source: bool,
    /// Allowed users.
    #[section(name = "user", params = UserParams)]
    pub user: Vec<Element>,
    /// Per-client rules.
    #[section(name = "client", params = ClientParams)]
    pub client: Vec<Element>,
}

/// `<user>`.
#[derive(Debug, Clone, Params)]
pub struct UserParams {
    /// User name.
    pub username: String,
    /// Password.
    #[param(secret)]
    pub password: String,
}

/// `<client>`.
#[derive(Debug, Clone, Params)]
pub struct ClientParams {
    /// Host name or address.
    pub host: Option<String>,
    /// Network (`10.0.0.0/8`).
    pub network: Option<String>,
    /// Key for this client.
    #[param(secret)]
    pub shared_key: Option<String>,
    /// Users allowed from this client.
    #[param(default = "[]")]
    pub users: Vec<String>,
}

struct Cfg {
    addr: SocketAddr,
    backlog: u32,
    limits: Limits,
    frame_limit: usize,
    warn_limit: Option<usize>,
    deny_keepalive: bool,
    keepalive_packet: bool,
    source_address_key: Option<String>,
    source_hostname_key: Option<String>,
    resolve_hostname: bool,
    tag: Option<String>,
    add_tag_prefix: Option<String>,
    security: Option<ServerSecurity>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The forward input.
pub struct ForwardInput {
    cfg: Arc<Cfg>,
}

/// Requests larger than this are refused when `chunk_size_limit` is not set.
const DEFAULT_FRAME_LIMIT: usize = 512 << 20;
/// How long a pushed-back request waits before it is offered again.
const BACKPRESSURE_RETRY: Duration = Duration::from_millis(5);

impl Input for ForwardInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture {
        Box::pin(async move {
            let cfg = self.cfg;
            let log = cx.log.clone();
            let listener = match listen(&cfg) {
                Ok(l) => l,
                Err(e) => {
                    crate::error!(log, format!("cannot listen on {}: {e}", cfg.addr));
                    return;
                }
            };
            let udp = match tokio::net::UdpSocket::bind(cfg.addr).await {
                Ok(u) => Some(u),
                Err(e) => {
                    crate::warn!(log, format!("cannot listen for heartbeats on udp {}: {e}", cfg.addr));
                    None
                }
            };
            crate::info!(log, "listening port", "port" => cfg.addr.port(), "bind" => cfg.addr.ip().to_string());
            let mut shutdown = cx.shutdown.clone();
            let mut conns = tokio::task::JoinSet::new();
            let mut hb = [0u8; 128];
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((sock, peer)) => {
                            let _ = sock.set_nodelay(true);
                            if cfg.keepalive_packet {
                                let s = socket2::SockRef::from(&sock);
                                let _ = s.set_keepalive(true);
                            }
                            let cfg = cfg.clone();
                            let emitter = cx.emitter.clone();
                            let log = log.clone();
                            let shutdown = cx.shutdown.clone();
                            conns.spawn(async move { connection(cfg, sock, peer, emitter, log, shutdown).await });
                        }
                        Err(e) => {
                            crate::warn!(log, "accept failed", "error" => e.to_string());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    r = async { match &udp { Some(u) => u.recv_from(&mut hb).await, None => std::future::pending().await } } => {
                        if let (Ok((_, from)), Some(u)) = (r, &udp) {
                            let _ = u.send_to(sluice_forward::encode::HEARTBEAT_UDP, from).await;
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    _ = shutdown.wait() => break,
                }
            }
            drop(listener);
            // Connections finish the requests they hold (unacked ones are resent by clients).
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    r = conns.join_next() => if r.is_none() { break },
                    _ = &mut deadline => { conns.abort_all(); break }
                }
            }
        })
    }
}

fn listen(cfg: &Cfg) -> std::io::Result<tokio::net::TcpListener> {
    let sock = if cfg.addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    sock.set_reuseaddr(true)?;
    // Workers are threads of one process: each binds the same port.
    sock.set_reuseport(true)?;
    sock.bind(cfg.addr)?;
    sock.listen(cfg.backlog)
}

/// A connection stream, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connection(
    cfg: Arc<Cfg>,
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    emitter: Emitter,
    log: Logger,
    shutdown: Shutdown,
) {
    let mut stream: Box<dyn Stream> = match &cfg.tls {
        Some(acc) => match acc.accept(sock).await {
            Ok(s) => Box::new(s),
            Err(e) => {
                crate::warn!(log, "unexpected error before accepting TLS connection", "host" => peer.ip().to_string(), "port" => peer.port(), "error" => e.to_string());
                return;
            }
        },
        None => Box::new(sock),
    };
    let hostname = if cfg.resolve_hostname { resolve(peer.ip()).await } else { None };
    let mut conn = Conn { cfg: &cfg, peer, hostname, framer: Framer::new(cfg.frame_limit), emitter, log, shutdown };
    if let Err(e) = conn.serve(&mut stream).await {
        crate::warn!(conn.log, e, "host" => peer.ip().to_string(), "port" => peer.port());
    }
    let _ = stream.shutdown().await;
}

struct Conn<'a> {
    cfg: &'a Cfg,
    peer: SocketAddr,
    hostname: Option<String>,
    framer: Framer,
    emitter: Emitter,
    log: Logger,
    shutdown: Shutdown,
}

/// Why a connection ended early (logged as a warning).
type ConnResult = Result<(), String>;

impl Conn<'_> {
    /// Read more bytes; false at EOF or on shutdown.
    async fn fill(&mut self, s: &mut Box<dyn Stream>) -> Result<bool, String> {
        let buf = self.framer.buffer_mut();
        buf.reserve(64 * 1024);
        let mut sd = self.shutdown.clone();
        tokio::select! {
            r = s.read_buf(buf) => match r {
                Ok(0) => Ok(false),
                Ok(_) => Ok(true),
                Err(e) => Err(format!("connection error: {e}")),
            },
            _ = sd.wait() => Ok(false),
        }
    }

    async fn next_frame(&mut self, s: &mut Box<dyn Stream>) -> Result<Option<Bytes>, String> {
        loop {
            match self.framer.next_frame() {
                Ok(Some(f)) => return Ok(Some(f)),
                Ok(None) => {}
                Err(e) => {
                    return Err(format!("closing the connection, the request is not acked: {e} (chunk_size_limit)"));
                }
            }
            if !self.fill(s).await? {
                return Ok(None);
            }
        }
    }

    async fn serve(&mut self, s: &mut Box<dyn Stream>) -> ConnResult {
        if let Some(sec) = &self.cfg.security {
            let mut nonce = [0u8; 16];
            let mut auth = [0u8; 16];
            let _ = getrandom::fill(&mut nonce);
            let _ = getrandom::fill(&mut auth);
            let session = ServerSession { nonce, auth };
            s.write_all(&session.helo(!self.cfg.deny_keepalive)).await.map_err(|e| e.to_string())?;
            let Some(ping) = self.next_frame(s).await? else { return Ok(()) };
            let (pong, r) = session.pong(sec, &ping, self.peer.ip(), self.hostname.as_deref());
            s.write_all(&pong).await.map_err(|e| e.to_string())?;
            if let Err(reason) = r {
                return Err(format!("authentication failed: {reason}"));
            }
        } else {
            // JSON connections start with `{` or `[`.
            while self.framer.pending() == 0 {
                if !self.fill(s).await? {
                    return Ok(());
                }
            }
            if matches!(self.framer.peek().first(), Some(b'{' | b'[')) {
                return self.serve_json(s).await;
            }
        }
        while let Some(frame) = self.next_frame(s).await? {
            let ack = self.handle(&frame).await?;
            if let Some(chunk) = ack {
                s.write_all(&sluice_forward::encode::ack(&chunk)).await.map_err(|e| e.to_string())?;
            }
            if self.cfg.deny_keepalive {
                break;
            }
        }
        Ok(())
    }

    async fn serve_json(&mut self, s: &mut Box<dyn Stream>) -> ConnResult {
        loop {
            // Take every complete JSON value in the buffer.
            loop {
                let (value_end, value) = {
                    let buf = self.framer.peek();
                    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
                    match it.next() {
                        Some(Ok(v)) => (it.byte_offset(), v),
                        Some(Err(e)) if e.is_eof() => break,
                        Some(Err(e)) => return Err(format!("invalid JSON request: {e}")),
                        None => break,
                    }
                };
                self.framer.consume(value_end);
                let mut mp = Vec::new();
                sluice_event::record::write_value(&mut mp, &json_to_msgpack_value(&value));
                let chunk = json_chunk(&value);
                let acked = self.handle(&Bytes::from(mp)).await?;
                if let (Some(_), Some(c)) = (acked, chunk) {
                    s.write_all(&sluice_forward::encode::ack_json(&c)).await.map_err(|e| e.to_string())?;
                }
                if self.cfg.deny_keepalive {
                    return Ok(());
                }
            }
            if self.framer.pending() > self.cfg.frame_limit {
                return Err("closing the connection: a JSON request exceeds chunk_size_limit".into());
            }
            if !self.fill(s).await? {
                return Ok(());
            }
        }
    }

    /// Decode, emit (waiting out backpressure), and return the chunk id to ack.
    async fn handle(&mut self, frame: &Bytes) -> Result<Option<Bytes>, String> {
        if let Some(w) = self.cfg.warn_limit
            && frame.len() > w
        {
            crate::warn!(self.log, "Input chunk size is larger than 'chunk_size_warn_limit':", "tag" => "", "host" => self.peer.ip().to_string(), "limit" => w, "size" => frame.len());
        }
        let req = match sluice_forward::decode(frame, &self.cfg.limits, EventTime::now()) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("{e} (closing the connection)")),
        };
        let Request { tag, events, options, skipped, passthrough, .. } = req;
        // Passed-through entries share the read buffer's allocation, which
        // also holds later bytes; an exact copy lets that buffer go while the
        // events wait in an output buffer (memory stays what is accounted).
        let events = if passthrough {
            EventStream::from_validated(Bytes::copy_from_slice(events.as_bytes()), events.len())
        } else {
            events
        };
        if skipped > 0 {
            crate::warn!(self.log, "skip invalid event:", "tag" => tag.as_str(), "host" => self.peer.ip().to_string(), "count" => skipped);
        }
        if options.signal() != Signal::Logs {
            crate::warn!(self.log, "metrics and traces (fluent_signal) are not supported; the request is dropped", "tag" => tag.as_str());
            return Ok(options.chunk);
        }
        let tag = match (&self.cfg.tag, &self.cfg.add_tag_prefix) {
            (Some(t), Some(p)) => format!("{p}.{t}"),
            (Some(t), None) => t.clone(),
            (None, Some(p)) => format!("{p}.{tag}"),
            (None, None) => tag,
        };
        let events = self.add_source_keys(events);
        loop {
            match self.emitter.emit(&tag, events.clone()) {
                Ok(()) => return Ok(options.chunk),
                Err(EmitError::Overflow(_)) => {
                    if self.shutdown.is_set() {
                        return Err("shutting down with events not accepted; they are not acked".into());
                    }
                    tokio::time::sleep(BACKPRESSURE_RETRY).await;
                }
                Err(EmitError::Failed(e)) => return Err(format!("emit failed, not acked: {e}")),
            }
        }
    }

    fn add_source_keys(&self, es: EventStream) -> EventStream {
        if self.cfg.source_address_key.is_none() && self.cfg.source_hostname_key.is_none() {
            return es;
        }
        let addr = self.peer.ip().to_string();
        let host = self.hostname.clone().unwrap_or_else(|| addr.clone());
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(k) = &self.cfg.source_address_key {
            pairs.push((k, &addr));
        }
        if let Some(k) = &self.cfg.source_hostname_key {
            pairs.push((k, &host));
        }
        let mut b = EventStreamBuilder::with_capacity(es.as_bytes().len() + es.len() * 48);
        let mut rec = Vec::new();
        for ev in &es {
            append_pairs(ev.record, &pairs, &mut rec);
            b.push_raw(ev.time, &rec);
        }
        b.finish()
    }
}

/// Copy `record` with string pairs added (replacing keys it already has).
pub fn append_pairs(record: RecordRef<'_>, pairs: &[(&str, &str)], out: &mut Vec<u8>) {
    out.clear();
    let keep: Vec<_> =
        record.iter().filter(|p| !pairs.iter().any(|(k, _)| p.key_str() == Some(k.as_bytes()))).collect();
    msgpack::write_map_header(out, keep.len() + pairs.len());
    for p in keep {
        out.extend_from_slice(p.key);
        out.extend_from_slice(p.value);
    }
    for (k, v) in pairs {
        msgpack::write_str(out, k.as_bytes());
        msgpack::write_str(out, v.as_bytes());
    }
}

fn json_to_msgpack_value(v: &serde_json::Value) -> sluice_event::Value {
    use sluice_event::Value;
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(i)) => Value::from(i),
            _ => Value::F64(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json_to_msgpack_value).collect()),
        serde_json::Value::Object(m) => {
            Value::Map(m.iter().map(|(k, v)| (Value::from(k.as_str()), json_to_msgpack_value(v))).collect())
        }
    }
}

/// The `chunk` option of a JSON request.
fn json_chunk(v: &serde_json::Value) -> Option<String> {
    v.as_array()?.last()?.as_object()?.get("chunk")?.as_str().map(String::from)
}

/// Reverse DNS of a peer (falls back to the address).
async fn resolve(ip: IpAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || super::tls::reverse_lookup(ip)).await.ok().flatten()
}

fn parse_network(s: &str) -> Option<(IpAddr, u8)> {
    match s.split_once('/') {
        Some((a, p)) => Some((a.trim().parse().ok()?, p.trim().parse().ok()?)),
        None => {
            let ip: IpAddr = s.trim().parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Input>> {
    let p = ForwardInputParams::from_element(el, cx.cfg)?;
    let span = |n: &str| el.param(n).map_or(el.span, |x| x.value_span);
    let ip: IpAddr = match p.bind.parse() {
        Ok(ip) => ip,
        Err(_) if p.bind == "localhost" => IpAddr::from([127, 0, 0, 1]),
        Err(_) => {
            cx.cfg.error(span("bind"), format!("bind must be an IP address: {}", p.bind));
            return None;
        }
    };
    let security = match &p.security {
        Some(sel) => {
            cx.cfg.path.push(sel.display_name());
            let sp = SecurityParams::from_element(sel, cx.cfg);
            let mut users = Vec::new();
            let mut clients = Vec::new();
            if let Some(sp) = &sp {
                for u in &sp.user {
                    cx.cfg.path.push(u.display_name());
                    if let Some(up) = UserParams::from_element(u, cx.cfg) {
                        users.push((up.username, up.password));
                    }
                    cx.cfg.path.pop();
                }
                for c in &sp.client {
                    cx.cfg.path.push(c.display_name());
                    if let Some(cp) = ClientParams::from_element(c, cx.cfg) {
                        if cp.host.is_none() && cp.network.is_none() {
                            cx.cfg.error(c.span, "network or host must be specified");
                        }
                        if cp.host.is_some() && cp.network.is_some() {
                            cx.cfg.error(c.span, "both of 'host' and 'network' are specified");
                        }
                        let network = match &cp.network {
                            Some(n) => match parse_network(n) {
                                Some(x) => Some(x),
                                None => {
                                    cx.cfg.error(
                                        c.param("network").map_or(c.span, |x| x.value_span),
                                        format!("invalid network: {n}"),
                                    );
                                    None
                                }
                            },
                            None => None,
                        };
                        clients.push(ClientRule { host: cp.host, network, shared_key: cp.shared_key, users: cp.users });
                    }
                    cx.cfg.path.pop();
                }
            }
            cx.cfg.path.pop();
            let sp = sp?;
            if sp.user_auth && users.is_empty() {
                cx.cfg.warn(sel.span, "user_auth is true but no <user> is defined: every client is refused");
            }
            Some(ServerSecurity {
                self_hostname: sp.self_hostname,
                shared_key: sp.shared_key,
                user_auth: sp.user_auth,
                allow_anonymous_source: sp.allow_anonymous_source,
                users,
                clients,
            })
        }
        None => None,
    };
    let tls = match &p.transport {
        Some(t) if t.arg == "tls" => {
            if cx.env.dry_run {
                super::tls::check_server(t, cx);
                None
            } else {
                Some(tokio_rustls::TlsAcceptor::from(super::tls::server_config(t, cx)?))
            }
        }
        Some(t) if t.arg.is_empty() || t.arg == "tcp" => None,
        Some(t) => {
            cx.cfg.error(t.span, format!("unknown transport '{}': use tcp or tls", t.arg));
            return None;
        }
        None => None,
    };
    let resolve_hostname = p.resolve_hostname.unwrap_or(p.source_hostname_key.is_some());
    let cfg = Cfg {
        addr: SocketAddr::new(ip, p.port),
        backlog: p.backlog.unwrap_or(1024),
        limits: Limits {
            decompression: p.decompression_size_limit.0 as usize,
            skip_invalid_event: p.skip_invalid_event,
        },
        frame_limit: p.chunk_size_limit.map_or(DEFAULT_FRAME_LIMIT, |s| s.0 as usize),
        warn_limit: p.chunk_size_warn_limit.map(|s| s.0 as usize),
        deny_keepalive: p.deny_keepalive,
        keepalive_packet: p.send_keepalive_packet,
        source_address_key: p.source_address_key,
        source_hostname_key: p.source_hostname_key,
        resolve_hostname,
        tag: p.tag,
        add_tag_prefix: p.add_tag_prefix,
        security,
        tls,
    };
    Some(Box::new(ForwardInput { cfg: Arc::new(cfg) }))
}
