//! The event model of sluice.
//!
//! An event is a tag, an [`EventTime`] and a record. Events travel in
//! batches, [`EventStream`]s: one buffer of msgpack `[time, record]` entries,
//! the same bytes that Forward-protocol PackedForward messages and buffer
//! chunks carry. A record that arrives as msgpack and is not changed is never
//! decoded into a tree: readers borrow it as a [`RecordRef`], formatters
//! transcode it ([`json::write_json`]), outputs copy its bytes. Plugins that
//! change records decode into a [`Record`] and encode once.

pub mod json;
pub mod json_decode;
pub mod msgpack;
pub mod record;
pub mod rubyfmt;
pub mod stream;
pub mod strftime;
pub mod strptime;
pub mod time;
pub mod timeparse;

pub use record::{PathSeg, Record, RecordRef, Value};
pub use stream::{EventRef, EventStream, EventStreamBuilder, StreamError};
pub use strftime::{Strftime, TimeFormatter, Tm, Zone};
pub use strptime::Strptime;
pub use time::EventTime;
