//! Fluentd's `EventTime`: seconds and nanoseconds since the Unix epoch.
//!
//! On the wire it is msgpack ext type 0 with an 8-byte payload: seconds and
//! nanoseconds as big-endian `u32`s (`d7 00 SSSSSSSS NNNNNNNN`, or the ext8
//! form `c7 08 00 …`). Older peers send a plain integer of seconds instead;
//! both are accepted and the form that arrived is kept when bytes are passed on.

use crate::msgpack::{self, Error, Scalar};
use std::time::{SystemTime, UNIX_EPOCH};

/// msgpack ext type of `EventTime`.
pub const EVENT_TIME_EXT: i8 = 0;

/// A point in time with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub sec: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nsec: u32,
}

impl EventTime {
    /// Build from seconds and nanoseconds (nanoseconds beyond a second carry over).
    pub fn new(sec: i64, nsec: u32) -> Self {
        EventTime { sec: sec + i64::from(nsec / 1_000_000_000), nsec: nsec % 1_000_000_000 }
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        EventTime { sec: d.as_secs() as i64, nsec: d.subsec_nanos() }
    }

    /// From a float number of seconds (as Fluentd's `Fluent::EventTime.from_time(Time.at(f))`).
    pub fn from_f64(f: f64) -> Self {
        let sec = f.floor();
        let mut nsec = ((f - sec) * 1e9).round() as u32;
        let mut sec = sec as i64;
        if nsec >= 1_000_000_000 {
            sec += 1;
            nsec -= 1_000_000_000;
        }
        EventTime { sec, nsec }
    }

    /// Seconds as a float (`EventTime#to_f`).
    pub fn as_f64(self) -> f64 {
        self.sec as f64 + f64::from(self.nsec) / 1e9
    }

    /// True for a zero time, which Fluentd's inputs replace with "now".
    pub fn is_zero(self) -> bool {
        self.sec == 0 && self.nsec == 0
    }

    /// Append the msgpack ext 0 encoding (`d7 00` + 8 bytes).
    pub fn write_ext(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&(self.sec as u32).to_be_bytes());
        out.extend_from_slice(&self.nsec.to_be_bytes());
    }

    /// Append the plain integer encoding (seconds only).
    pub fn write_int(self, out: &mut Vec<u8>) {
        msgpack::write_int(out, self.sec);
    }

    /// Decode a time value at `buf[at]`: an integer, a float, or ext type 0.
    /// Returns the time and the offset past it.
    ///
    /// # Errors
    /// [`Error::Type`] for any other value.
    pub fn read(buf: &[u8], at: usize) -> Result<(EventTime, usize), Error> {
        let (s, end) = read_scalar_or_type(buf, at)?;
        let t = match s {
            Scalar::UInt(u) => EventTime { sec: u.min(i64::MAX as u64) as i64, nsec: 0 },
            Scalar::Int(i) => EventTime { sec: i, nsec: 0 },
            Scalar::F64(f) => EventTime::from_f64(f),
            Scalar::F32(f) => EventTime::from_f64(f64::from(f)),
            Scalar::Ext(EVENT_TIME_EXT, p) if p.len() == 8 => {
                let sec = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                let nsec = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                EventTime::new(i64::from(sec), nsec)
            }
            _ => {
                return Err(Error::Type { expected: "event time", found: msgpack::kind(buf[at]).name() });
            }
        };
        Ok((t, end))
    }
}

fn read_scalar_or_type(buf: &[u8], at: usize) -> Result<(Scalar<'_>, usize), Error> {
    msgpack::read_scalar(buf, at).map_err(|e| match e {
        Error::Type { found, .. } => Error::Type { expected: "event time", found },
        other => other,
    })
}

impl From<i64> for EventTime {
    fn from(sec: i64) -> Self {
        EventTime { sec, nsec: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_round_trip_is_fluentd_layout() {
        let t = EventTime::new(1_700_000_000, 123_456_789);
        let mut out = Vec::new();
        t.write_ext(&mut out);
        // d7 00 | 65 53 f1 00 | 07 5b cd 15
        assert_eq!(out, [0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15]);
        assert_eq!(EventTime::read(&out, 0), Ok((t, 10)));
        // ext8 form with explicit length
        let ext8 = [0xc7, 0x08, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15];
        assert_eq!(EventTime::read(&ext8, 0), Ok((t, 11)));
    }

    #[test]
    fn integer_and_float_times() {
        let mut out = Vec::new();
        EventTime::from(1_700_000_000).write_int(&mut out);
        assert_eq!(EventTime::read(&out, 0).unwrap().0, EventTime::new(1_700_000_000, 0));
        assert_eq!(EventTime::from_f64(1.5), EventTime::new(1, 500_000_000));
        assert!(EventTime::read(&[0xa1, b'x'], 0).is_err());
        // wrong ext type
        assert!(EventTime::read(&[0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0], 0).is_err());
    }
}
