//! sluice: a Fluentd-compatible log collector.
//!
//! The data path (see `ARCHITECTURE.md`): inputs emit [`EventStream`]s
//! (msgpack `[time, record]` batches) through an [`plugin::Emitter`] into the
//! [`router::Router`], which runs the matching `<filter>`s synchronously and
//! hands the stream to the first matching `<match>`'s [`plugin::Output`].
//!
//! * [`engine`]: configuration → workers → running pipeline.
//! * [`router`] + [`pattern`]: Fluentd's routing (labels, `@ERROR`, `@FLUENT_LOG`).
//! * [`plugin`]: plugin interfaces and the built-ins, one module per `@type`.
//! * [`log`]: sluice's own log in Fluentd's shape, and `fluent.*` log events.
//!
//! [`EventStream`]: sluice_event::EventStream

pub mod buffer;
pub mod cat;
pub mod compat;
pub mod dump;
pub mod engine;
pub mod eval;
pub mod log;
pub mod pattern;
pub mod plugin;
pub mod router;
pub mod system;

/// sluice's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
