//! The `<security>` handshake: HELO (server) → PING (client) → PONG (server).
//!
//! * HELO `["HELO", {"nonce": 16 bytes, "auth": 16 bytes or "", "keepalive": bool}]`
//! * PING `["PING", hostname, salt, hex(SHA512(salt‖hostname‖nonce‖shared_key)),
//!   username, hex(SHA512(auth‖username‖password)) or ""]`
//! * PONG `["PONG", ok, reason, server_hostname,
//!   hex(SHA512(salt‖server_hostname‖nonce‖shared_key))]`
//!
//! Pure functions over bytes; the caller supplies random nonces and salts.

use sha2::{Digest, Sha512};
use sluice_event::msgpack::{self, Scalar};
use std::net::IpAddr;

/// Lowercase hex of SHA-512 over the concatenated parts.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let out = h.finalize();
    let mut s = String::with_capacity(128);
    for b in out {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A `<client>` rule of in_forward's `<security>`.
#[derive(Debug, Clone, Default)]
pub struct ClientRule {
    /// Exact host name (matched against the resolved peer name).
    pub host: Option<String>,
    /// Network address and prefix length.
    pub network: Option<(IpAddr, u8)>,
    /// Key for this client (else the section's).
    pub shared_key: Option<String>,
    /// Users allowed from this client (empty: all).
    pub users: Vec<String>,
}

impl ClientRule {
    /// True if `peer` (with its resolved name) matches.
    pub fn matches(&self, peer: IpAddr, name: Option<&str>) -> bool {
        if let Some(h) = &self.host {
            return name == Some(h.as_str()) || h.parse::<IpAddr>().ok() == Some(peer);
        }
        if let Some((net, prefix)) = self.network {
            return in_network(peer, net, prefix);
        }
        false
    }
}

/// True if `ip` is inside `net/prefix`.
pub fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(b)) => {
            a.to_ipv4_mapped().is_some_and(|a| in_network(IpAddr::V4(a), IpAddr::V4(b), prefix))
        }
        _ => false,
    }
}

/// Server-side `<security>`.
#[derive(Debug, Clone, Default)]
pub struct ServerSecurity {
    /// `self_hostname`.
    pub self_hostname: String,
    /// `shared_key`.
    pub shared_key: String,
    /// `user_auth`.
    pub user_auth: bool,
    /// `allow_anonymous_source`.
    pub allow_anonymous_source: bool,
    /// `<user>`s: name, password.
    pub users: Vec<(String, String)>,
    /// `<client>`s.
    pub clients: Vec<ClientRule>,
}

/// One connection's server side of the handshake.
#[derive(Debug, Clone)]
pub struct ServerSession {
    /// HELO nonce.
    pub nonce: [u8; 16],
    /// HELO auth salt.
    pub auth: [u8; 16],
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    msgpack::write_bin_header(out, b.len());
    out.extend_from_slice(b);
}

fn str_at(b: &[u8], at: usize) -> Result<(&[u8], usize), String> {
    msgpack::read_str(b, at).map_err(|_| "expected a string".to_string())
}

impl ServerSession {
    /// The HELO message.
    pub fn helo(&self, keepalive: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(0x92);
        msgpack::write_str(&mut out, b"HELO");
        out.push(0x83);
        msgpack::write_str(&mut out, b"nonce");
        write_bytes(&mut out, &self.nonce);
        msgpack::write_str(&mut out, b"auth");
        write_bytes(&mut out, &self.auth);
        msgpack::write_str(&mut out, b"keepalive");
        msgpack::write_bool(&mut out, keepalive);
        out
    }

    /// Check a PING. Returns the PONG to send and, on success, the client's
    /// hostname (on failure, the reason that is also in the PONG).
    pub fn pong(
        &self,
        sec: &ServerSecurity,
        ping: &[u8],
        peer: IpAddr,
        peer_name: Option<&str>,
    ) -> (Vec<u8>, Result<String, String>) {
        let fail = |reason: String| (pong_bytes(false, &reason, "", ""), Err(reason));
        let Ok((6, mut at)) = msgpack::read_array_len(ping, 0) else {
            return fail("invalid ping message".into());
        };
        let mut fields: Vec<&[u8]> = Vec::with_capacity(6);
        for _ in 0..6 {
            match str_at(ping, at) {
                Ok((s, e)) => {
                    fields.push(s);
                    at = e;
                }
                Err(_) => return fail("invalid ping message".into()),
            }
        }
        if fields[0] != b"PING" {
            return fail("invalid ping message".into());
        }
        let (hostname, salt, hexdigest, username, password_digest) =
            (fields[1], fields[2], fields[3], fields[4], fields[5]);
        let client = sec.clients.iter().find(|c| c.matches(peer, peer_name));
        if client.is_none() && !sec.clients.is_empty() && !sec.allow_anonymous_source {
            return fail(format!("anonymous source host '{peer}' denied"));
        }
        let key = client.and_then(|c| c.shared_key.as_deref()).unwrap_or(&sec.shared_key);
        if digest(&[salt, hostname, &self.nonce, key.as_bytes()]).as_bytes() != hexdigest {
            return fail("shared_key mismatch".into());
        }
        if sec.user_auth {
            let allowed = sec.users.iter().any(|(u, p)| {
                u.as_bytes() == username
                    && digest(&[&self.auth, u.as_bytes(), p.as_bytes()]).as_bytes() == password_digest
                    && client.is_none_or(|c| c.users.is_empty() || c.users.iter().any(|cu| cu == u))
            });
            if !allowed {
                return fail("username/password mismatch".into());
            }
        }
        let server_digest = digest(&[salt, sec.self_hostname.as_bytes(), &self.nonce, key.as_bytes()]);
        (pong_bytes(true, "", &sec.self_hostname, &server_digest), Ok(String::from_utf8_lossy(hostname).into_owned()))
    }
}

fn pong_bytes(ok: bool, reason: &str, hostname: &str, digest: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(0x95);
    msgpack::write_str(&mut out, b"PONG");
    msgpack::write_bool(&mut out, ok);
    msgpack::write_str(&mut out, reason.as_bytes());
    msgpack::write_str(&mut out, hostname.as_bytes());
    msgpack::write_str(&mut out, digest.as_bytes());
    out
}

/// What a HELO said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helo {
    /// Nonce.
    pub nonce: Vec<u8>,
    /// Auth salt (empty: no user auth).
    pub auth: Vec<u8>,
    /// The server keeps connections open.
    pub keepalive: bool,
}

/// Parse a HELO.
///
/// # Errors
/// A message for anything that is not a HELO.
pub fn parse_helo(b: &[u8]) -> Result<Helo, String> {
    let (n, at) = msgpack::read_array_len(b, 0).map_err(|e| e.to_string())?;
    let (kind, at) = str_at(b, at)?;
    if n != 2 || kind != b"HELO" {
        return Err("not a HELO message".into());
    }
    let (m, mut p) = msgpack::read_map_len(b, at).map_err(|e| e.to_string())?;
    let mut h = Helo { nonce: Vec::new(), auth: Vec::new(), keepalive: true };
    for _ in 0..m {
        let (k, kend) = str_at(b, p)?;
        let vend = msgpack::skip(b, kend).map_err(|e| e.to_string())?;
        match k {
            b"nonce" => h.nonce = str_at(b, kend)?.0.to_vec(),
            b"auth" => h.auth = str_at(b, kend)?.0.to_vec(),
            b"keepalive" => h.keepalive = !matches!(msgpack::read_scalar(b, kend), Ok((Scalar::Bool(false), _))),
            _ => {}
        }
        p = vend;
    }
    if h.nonce.is_empty() {
        return Err("HELO without a nonce".into());
    }
    Ok(h)
}

/// Client-side `<security>` plus the `<server>` credentials.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// `self_hostname`.
    pub self_hostname: String,
    /// `shared_key` (the server's, or `<security>`'s).
    pub shared_key: String,
    /// `username` (`""` by default).
    pub username: String,
    /// `password` (`""` by default).
    pub password: String,
}

/// The PING answering `helo`, with the client's `salt`.
pub fn ping(helo: &Helo, sec: &ClientSecurity, salt: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    out.push(0x96);
    msgpack::write_str(&mut out, b"PING");
    msgpack::write_str(&mut out, sec.self_hostname.as_bytes());
    msgpack::write_str(&mut out, salt.as_bytes());
    let d = digest(&[salt.as_bytes(), sec.self_hostname.as_bytes(), &helo.nonce, sec.shared_key.as_bytes()]);
    msgpack::write_str(&mut out, d.as_bytes());
    if helo.auth.is_empty() {
        msgpack::write_str(&mut out, b"");
        msgpack::write_str(&mut out, b"");
    } else {
        msgpack::write_str(&mut out, sec.username.as_bytes());
        let p = digest(&[&helo.auth, sec.username.as_bytes(), sec.password.as_bytes()]);
        msgpack::write_str(&mut out, p.as_bytes());
    }
    out
}

/// Check the server's PONG.
///
/// # Errors
/// The reason the server gave, or why its answer is not trusted.
pub fn check_pong(b: &[u8], helo: &Helo, sec: &ClientSecurity, salt: &str) -> Result<String, String> {
    let (n, at) = msgpack::read_array_len(b, 0).map_err(|e| e.to_string())?;
    if n != 5 {
        return Err("invalid format for PONG message".into());
    }
    let (kind, at) = str_at(b, at)?;
    if kind != b"PONG" {
        return Err("invalid format for PONG message".into());
    }
    let (ok, at) = match msgpack::read_scalar(b, at) {
        Ok((Scalar::Bool(v), e)) => (v, e),
        _ => return Err("invalid format for PONG message".into()),
    };
    let (reason, at) = str_at(b, at)?;
    let (hostname, at) = str_at(b, at)?;
    let (d, _) = str_at(b, at)?;
    if !ok {
        return Err(format!("authentication failed: {}", String::from_utf8_lossy(reason)));
    }
    if hostname == sec.self_hostname.as_bytes() {
        return Err("same hostname between input and output: invalid configuration".into());
    }
    let want = digest(&[salt.as_bytes(), hostname, &helo.nonce, sec.shared_key.as_bytes()]);
    if want.as_bytes() != d {
        return Err("shared key mismatch".into());
    }
    Ok(String::from_utf8_lossy(hostname).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerSecurity {
        ServerSecurity {
            self_hostname: "aggregator".into(),
            shared_key: "secret".into(),
            user_auth: true,
            allow_anonymous_source: true,
            users: vec![("alice".into(), "pw".into())],
            clients: Vec::new(),
        }
    }

    #[test]
    fn full_handshake_and_failures() {
        let s = ServerSession { nonce: [1; 16], auth: [2; 16] };
        let helo = parse_helo(&s.helo(true)).unwrap();
        assert_eq!((helo.nonce.as_slice(), helo.keepalive), (&[1u8; 16][..], true));
        let client = ClientSecurity {
            self_hostname: "edge".into(),
            shared_key: "secret".into(),
            username: "alice".into(),
            password: "pw".into(),
        };
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let (pong, r) = s.pong(&server(), &ping(&helo, &client, "saltsalt"), peer, None);
        assert_eq!(r, Ok("edge".to_string()));
        assert_eq!(check_pong(&pong, &helo, &client, "saltsalt"), Ok("aggregator".into()));
        let bad_key = ClientSecurity { shared_key: "nope".into(), ..client.clone() };
        let (pong, r) = s.pong(&server(), &ping(&helo, &bad_key, "x"), peer, None);
        assert_eq!(r, Err("shared_key mismatch".into()));
        assert_eq!(check_pong(&pong, &helo, &bad_key, "x"), Err("authentication failed: shared_key mismatch".into()));
        let bad_pw = ClientSecurity { password: "wrong".into(), ..client.clone() };
        assert_eq!(
            s.pong(&server(), &ping(&helo, &bad_pw, "x"), peer, None).1,
            Err("username/password mismatch".into())
        );
        let same = ClientSecurity { self_hostname: "aggregator".into(), ..client.clone() };
        let (pong, _) = s.pong(&server(), &ping(&helo, &same, "x"), peer, None);
        assert!(check_pong(&pong, &helo, &same, "x").unwrap_err().contains("same hostname"));
        // <client> rules: a per-network key, anonymous sources denied.
        let mut sec = server();
        sec.allow_anonymous_source = false;
        sec.clients = vec![ClientRule {
            network: Some(("10.0.0.0".parse().unwrap(), 8)),
            shared_key: Some("k10".into()),
            ..ClientRule::default()
        }];
        assert!(
            s.pong(&sec, &ping(&helo, &client, "x"), peer, None)
                .1
                .unwrap_err()
                .contains("anonymous source host '127.0.0.1' denied")
        );
        let c10 = ClientSecurity { shared_key: "k10".into(), ..client };
        assert!(s.pong(&sec, &ping(&helo, &c10, "x"), "10.1.2.3".parse().unwrap(), None).1.is_ok());
        assert_eq!(s.pong(&sec, b"\x91\xa4PING", peer, None).1, Err("invalid ping message".into()));
    }

    #[test]
    fn digest_is_sha512_hex() {
        assert_eq!(
            digest(&[b"abc"]),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let s = ServerSession { nonce: [1; 16], auth: [2; 16] };
            let _ = s.pong(&server(), &data, "127.0.0.1".parse().unwrap(), None);
            let _ = parse_helo(&data);
            let helo = Helo { nonce: vec![1], auth: vec![], keepalive: true };
            let _ = check_pong(&data, &helo, &ClientSecurity::default(), "s");
        }
    }
}
