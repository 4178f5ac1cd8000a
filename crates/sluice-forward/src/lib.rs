//! The Fluentd Forward protocol (v1 and v1.5), sans-IO.
//!
//! * [`frame`]: split a connection's bytes into top-level msgpack values,
//!   bounded by the frame limit, resumable across reads.
//! * [`decode`]: one request (Message, Forward, PackedForward,
//!   CompressedPackedForward; EventTime, integer, float or `[time, meta]`
//!   times) into a tag, an event stream and the option map.
//! * [`encode`]: what out_forward sends, acks, heartbeats.
//! * [`handshake`]: HELO / PING / PONG with shared keys and user auth.
//!
//! Nothing here does I/O: the plugins feed bytes in and write bytes out.

pub mod decode;
pub mod encode;
pub mod frame;
pub mod handshake;

pub use decode::{DecodeError, Limits, Mode, Options, Request, Signal, decode};
pub use frame::{FrameError, Framer};
