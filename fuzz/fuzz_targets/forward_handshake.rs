//! Any bytes as a PING, HELO or PONG: no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_forward::handshake::{self, ServerSecurity, ServerSession};

fuzz_target!(|data: &[u8]| {
    let s = ServerSession { nonce: [1; 16], auth: [2; 16] };
    let sec = ServerSecurity { self_hostname: "s".into(), shared_key: "k".into(), ..ServerSecurity::default() };
    let _ = s.pong(&sec, data, "127.0.0.1".parse().unwrap(), None);
    let _ = handshake::parse_helo(data);
    let helo = handshake::Helo { nonce: vec![1], auth: vec![], keepalive: true };
    let _ = handshake::check_pong(data, &helo, &handshake::ClientSecurity::default(), "salt");
});
