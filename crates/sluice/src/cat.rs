//! `sluice cat TAG [FILE…]`: send records to a Forward input, like
//! `fluent-cat`.
//!
//! Reads JSON lines (or a msgpack stream with `--format msgpack`, or raw
//! lines as `{"message": line}` with `--format none`) from the files or from
//! stdin, and sends them in PackedForward requests of up to `--batch` events,
//! each acknowledged by the server before the next (so a successful exit
//! means every record was accepted). `<security>` and TLS are supported.

use sluice_event::{EventStreamBuilder, EventTime, msgpack};
use sluice_forward::Framer;
use sluice_forward::encode::{self, Compress};
use sluice_forward::handshake::{self, ClientSecurity};
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What to send and where.
#[derive(Debug, Clone)]
pub struct CatOptions {
    /// Tag of every record.
    pub tag: String,
    /// Input files (stdin if empty).
    pub files: Vec<String>,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// `json`, `msgpack` or `none`.
    pub format: String,
    /// Events per request.
    pub batch: usize,
    /// Wait for an ack of each request.
    pub ack: bool,
    /// Handshake credentials (with a shared key).
    pub security: Option<ClientSecurity>,
    /// TLS.
    pub tls: Option<crate::plugin::tls::ClientTls>,
    /// Show progress for files on stderr.
    pub progress: bool,
}

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn read_frame(s: &mut dyn Conn, f: &mut Framer) -> Result<bytes::Bytes, String> {
    loop {
        if let Some(b) = f.next_frame().map_err(|e| e.to_string())? {
            return Ok(b);
        }
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).map_err(|e| format!("reading the server's answer: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        f.extend(&buf[..n]);
    }
}

fn connect(o: &CatOptions) -> Result<Box<dyn Conn>, String> {
    let tcp = TcpStream::connect((o.host.as_str(), o.port))
        .map_err(|e| format!("cannot connect to {}:{}: {e}", o.host, o.port))?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(60)));
    let mut s: Box<dyn Conn> = match &o.tls {
        Some(t) => {
            let cfg = crate::plugin::tls::client_config(t)?;
            let name = rustls::pki_types::ServerName::try_from(if t.verify_hostname {
                o.host.clone()
            } else {
                "localhost".into()
            })
            .map_err(|e| e.to_string())?;
            let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
        None => Box::new(tcp),
    };
    if let Some(sec) = &o.security {
        let mut f = Framer::new(1 << 20);
        let helo = handshake::parse_helo(&read_frame(s.as_mut(), &mut f)?)?;
        let mut salt = [0u8; 16];
        let _ = getrandom::fill(&mut salt);
        let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
        s.write_all(&handshake::ping(&helo, sec, &salt)).map_err(|e| e.to_string())?;
        let pong = read_frame(s.as_mut(), &mut f)?;
        handshake::check_pong(&pong, &helo, sec, &salt)?;
    }
    Ok(s)
}

struct Sender<'o> {
    o: &'o CatOptions,
    conn: Box<dyn Conn>,
    framer: Framer,
    sent: u64,
}

impl Sender<'_> {
    fn send(&mut self, b: EventStreamBuilder) -> Result<(), String> {
        if b.is_empty() {
            return Ok(());
        }
        let n = b.len();
        let es = b.finish();
        let mut id = [0u8; 16];
        let _ = getrandom::fill(&mut id);
        let chunk = self.o.ack.then(|| encode::base64_encode64(&id));
        let frame = encode::packed_forward(&self.o.tag, es.as_bytes(), n, Compress::Text, chunk.as_deref())
            .map_err(|e| e.to_string())?;
        self.conn.write_all(&frame).map_err(|e| format!("sending: {e}"))?;
        if let Some(c) = chunk {
            let resp = read_frame(self.conn.as_mut(), &mut self.framer)?;
            let mut want = Vec::new();
            msgpack::write_str(&mut want, c.as_bytes());
            if resp[..] != encode::ack(&want)[..] {
                return Err("the server's ack does not match".into());
            }
        }
        self.sent += n as u64;
        Ok(())
    }
}

fn records(
    o: &CatOptions,
    input: &mut dyn BufRead,
    sender: &mut Sender<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), String> {
    let mut b = EventStreamBuilder::with_capacity(256 * 1024);
    let mut dec = sluice_event::json_decode::JsonDecoder::new();
    let mut rec = Vec::new();
    let mut bytes = 0u64;
    if o.format == "msgpack" {
        let mut data = Vec::new();
        input.read_to_end(&mut data).map_err(|e| e.to_string())?;
        let mut at = 0;
        while at < data.len() {
            let end = msgpack::skip(&data, at).map_err(|e| format!("invalid msgpack at byte {at}: {e}"))?;
            if msgpack::header(&data, at).map(|h| h.kind) == Ok(msgpack::Kind::Map) {
                b.push_raw(EventTime::now(), &data[at..end]);
            } else {
                return Err(format!("the msgpack value at byte {at} is not a map"));
            }
            at = end;
            if b.len() >= o.batch {
                sender.send(std::mem::take(&mut b))?;
                progress(at as u64, sender.sent);
            }
        }
        return sender.send(b);
    }
    let mut line = Vec::new();
    let mut lineno = 0u64;
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lineno += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rec.clear();
        if o.format == "none" {
            msgpack::write_map_header(&mut rec, 1);
            msgpack::write_str(&mut rec, b"message");
            msgpack::write_str(&mut rec, text);
        } else {
            dec.transcode(text, &mut rec).map_err(|e| format!("line {lineno}: not JSON: {e}"))?;
            if msgpack::header(&rec, 0).map(|h| h.kind) != Ok(msgpack::Kind::Map) {
                return Err(format!("line {lineno}: not a JSON object"));
            }
        }
        b.push_raw(EventTime::now(), &rec);
        if b.len() >= o.batch {
            sender.send(std::mem::take(&mut b))?;
            progress(bytes, sender.sent);
        }
    }
    sender.send(b)?;
    progress(bytes, sender.sent);
    Ok(())
}

/// Send everything; returns the number of records sent.
///
/// # Errors
/// Connection, handshake, input or ack failures, with a message.
pub fn run(o: &CatOptions) -> Result<u64, String> {
    let conn = connect(o)?;
    let mut sender = Sender { o, conn, framer: Framer::new(1 << 20), sent: 0 };
    if o.files.is_empty() {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        records(o, &mut lock, &mut sender, &mut |_, _| {})?;
    } else {
        for f in &o.files {
            let file = std::fs::File::open(f).map_err(|e| format!("{f}: {e}"))?;
            let total = file.metadata().map(|m| m.len()).unwrap_or(0).max(1);
            let mut r = std::io::BufReader::with_capacity(1 << 20, file);
            let mut last = Instant::now();
            let show = o.progress;
            let mut bar = |done: u64, sent: u64| {
                if show && (last.elapsed() >= Duration::from_millis(100) || done >= total) {
                    last = Instant::now();
                    let pct = (done * 100 / total).min(100);
                    let filled = (pct / 5) as usize;
                    eprint!("\r{f}: [{}{}] {pct:3}% {sent} records", "#".repeat(filled), " ".repeat(20 - filled));
                }
            };
            records(o, &mut r, &mut sender, &mut bar)?;
            if o.progress {
                eprintln!();
            }
        }
    }
    Ok(sender.sent)
}
