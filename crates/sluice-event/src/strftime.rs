//! Ruby-compatible `strftime`, compiled once and applied per event.
//!
//! Fluentd formats times with Ruby's `Time#strftime`, whose directives differ
//! from C's and from chrono/jiff's in the details that show up in output:
//! `%N`/`%3N`/`%L` sub-second digits, `%:z`/`%::z`, flags `-_0^#` and field
//! widths, `%s`/`%Q`. [`Strftime`] parses a format once; [`Zone`] turns an
//! [`EventTime`] into broken-down local time (jiff supplies the zone rules).

use crate::time::EventTime;
use std::io::Write as _;

/// A time zone as Fluentd accepts it: UTC, the system's local zone, a fixed
/// offset (`+09:00`, `-0800`, `+09`) or an IANA name (`Asia/Tokyo`).
#[derive(Debug, Clone)]
pub enum Zone {
    /// UTC ("UTC" for `%Z`).
    Utc,
    /// A fixed offset in seconds east of UTC.
    Fixed(i32),
    /// Zone rules (the system zone or a named one).
    Rules(std::sync::Arc<Rules>),
}

/// IANA zone rules with a one-entry cache of the last offset looked up.
#[derive(Debug)]
pub struct Rules {
    tz: jiff::tz::TimeZone,
    /// `(sec << 24) | (offset + 2^23)`: one atomic so readers never mix two lookups.
    cache: std::sync::atomic::AtomicU64,
}

impl Rules {
    fn zone(tz: jiff::tz::TimeZone) -> Zone {
        Zone::Rules(std::sync::Arc::new(Rules { tz, cache: std::sync::atomic::AtomicU64::new(u64::MAX) }))
    }

    fn offset(&self, sec: i64) -> i32 {
        use std::sync::atomic::Ordering::Relaxed;
        let packed = self.cache.load(Relaxed);
        if packed != u64::MAX && (0..1 << 40).contains(&sec) && (packed >> 24) as i64 == sec {
            return (packed & 0xff_ffff) as i32 - (1 << 23);
        }
        let off = match jiff::Timestamp::from_second(sec) {
            Ok(ts) => self.tz.to_offset(ts).seconds(),
            Err(_) => 0,
        };
        if (0..1 << 40).contains(&sec) {
            self.cache.store(((sec as u64) << 24) | (off + (1 << 23)) as u64, Relaxed);
        }
        off
    }
}

impl Zone {
    /// The system's local time zone (`localtime`, Fluentd's default).
    pub fn local() -> Zone {
        Rules::zone(jiff::tz::TimeZone::system())
    }

    /// Parse Fluentd's `timezone` parameter.
    ///
    /// # Errors
    /// A message naming the value if it is neither an offset nor a known zone.
    pub fn parse(s: &str) -> Result<Zone, String> {
        let t = s.trim();
        if let Some(off) = parse_offset(t) {
            return Ok(Zone::Fixed(off));
        }
        if t.eq_ignore_ascii_case("UTC") || t == "Z" {
            return Ok(Zone::Utc);
        }
        jiff::tz::TimeZone::get(t).map(Rules::zone).map_err(|_| format!("Unsupported timezone '{t}'"))
    }

    /// Offset from UTC in seconds at `sec`.
    pub fn offset_at(&self, sec: i64) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Fixed(o) => *o,
            Zone::Rules(r) => r.offset(sec),
        }
    }

    fn abbreviation(&self, sec: i64) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Fixed(_) => String::new(),
            Zone::Rules(r) => match jiff::Timestamp::from_second(sec) {
                Ok(ts) => r.tz.to_offset_info(ts).abbreviation().to_string(),
                Err(_) => String::new(),
            },
        }
    }

    /// Broken-down time of `t` in this zone.
    pub fn tm(&self, t: EventTime) -> Tm {
        Tm::new(t, self.offset_at(t.sec))
    }
}

/// `+HH:MM`, `+HHMM`, `+HH` (and `-`), as Fluentd's timezone validation accepts.
pub fn parse_offset(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: Vec<u8> = b[1..].iter().copied().filter(|c| *c != b':').collect();
    if !digits.iter().all(u8::is_ascii_digit) || b[1..].iter().filter(|c| **c == b':').count() > 1 {
        return None;
    }
    if b.len() == 6 && b[3] != b':' {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (num(&digits[0..2]), 0),
        4 => (num(&digits[0..2]), num(&digits[2..4])),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn num(d: &[u8]) -> i32 {
    d.iter().fold(0, |a, c| a * 10 + i32::from(c - b'0'))
}

/// Broken-down civil time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tm {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub nsec: u32,
    /// Offset from UTC in seconds.
    pub offset: i32,
    /// Seconds since the epoch (UTC).
    pub epoch: i64,
    /// 0 = Sunday
    pub wday: u32,
    /// 1..=366
    pub yday: u32,
}

impl Tm {
    /// Break down `t` at the given UTC offset.
    pub fn new(t: EventTime, offset: i32) -> Tm {
        let local = t.sec + i64::from(offset);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let wday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        let yday = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        Tm {
            year,
            month,
            day,
            hour: secs / 3600,
            min: secs / 60 % 60,
            sec: secs % 60,
            nsec: t.nsec,
            offset,
            epoch: t.sec,
            wday,
            yday,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Lit(Vec<u8>),
    Conv { flags: Flags, width: Option<usize>, colons: u8, c: u8 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    no_pad: bool,
    space: bool,
    zero: bool,
    upper: bool,
    swap: bool,
}

/// A compiled Ruby strftime format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strftime {
    items: Vec<Item>,
    /// The format as written.
    source: String,
}

impl Strftime {
    /// Compile `fmt`. Every format is accepted; unknown directives are kept
    /// literally, as Ruby does.
    pub fn new(fmt: &str) -> Strftime {
        let b = fmt.as_bytes();
        let mut items = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            let mut flags = Flags::default();
            while i < b.len() {
                match b[i] {
                    b'-' => flags.no_pad = true,
                    b'_' => flags.space = true,
                    b'0' => flags.zero = true,
                    b'^' => flags.upper = true,
                    b'#' => flags.swap = true,
                    _ => break,
                }
                i += 1;
            }
            let mut width = None;
            while i < b.len() && b[i].is_ascii_digit() {
                width = Some(width.unwrap_or(0) * 10 + usize::from(b[i] - b'0'));
                i += 1;
            }
            let mut colons = 0u8;
            while i < b.len() && b[i] == b':' && colons < 3 {
                colons += 1;
                i += 1;
            }
            match b.get(i) {
                Some(&c)
                    if b"YCymBbhdejHkIlPpMSLNzZAauwGgVUWsQntcDFTxXRrv+%".contains(&c) && (colons == 0 || c == b'z') =>
                {
                    if !lit.is_empty() {
                        items.push(Item::Lit(std::mem::take(&mut lit)));
                    }
                    items.push(Item::Conv { flags, width, colons, c });
                    i += 1;
                }
                _ => {
                    // Unknown directive: literal text, as Ruby leaves it.
                    let end = (i + 1).min(b.len());
                    lit.extend_from_slice(&b[start..end]);
                    i = end;
                }
            }
        }
        if !lit.is_empty() {
            items.push(Item::Lit(lit));
        }
        Strftime { items, source: fmt.to_string() }
    }

    /// The format as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True if the output depends on sub-second digits.
    pub fn has_subsec(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Conv { c: b'L' | b'N' | b'Q', .. }))
    }

    /// Append the formatted time.
    pub fn format(&self, out: &mut Vec<u8>, tm: &Tm, zone: &Zone) {
        for it in &self.items {
            match it {
                Item::Lit(l) => out.extend_from_slice(l),
                Item::Conv { flags, width, colons, c } => conv(out, *flags, *width, *colons, *c, tm, zone),
            }
        }
    }

    /// Format into a new string.
    pub fn format_string(&self, tm: &Tm, zone: &Zone) -> String {
        let mut out = Vec::with_capacity(32);
        self.format(&mut out, tm, zone);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn pad_num(out: &mut Vec<u8>, v: i64, default_width: usize, default_pad: u8, flags: Flags, width: Option<usize>) {
    let pad = if flags.no_pad {
        None
    } else if flags.space {
        Some(b' ')
    } else if flags.zero {
        Some(b'0')
    } else {
        Some(default_pad)
    };
    let w = width.unwrap_or(default_width);
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v.unsigned_abs());
    let neg = v < 0;
    let len = digits.len() + usize::from(neg);
    if let Some(p) = pad {
        if p == b'0' && neg {
            out.push(b'-');
        }
        out.extend(std::iter::repeat_n(p, w.saturating_sub(len)));
        if p != b'0' && neg {
            out.push(b'-');
        }
    } else if neg {
        out.push(b'-');
    }
    out.extend_from_slice(digits.as_bytes());
}

fn pad_text(out: &mut Vec<u8>, s: &str, flags: Flags, width: Option<usize>) {
    let text: String = if flags.upper {
        s.to_uppercase()
    } else if flags.swap {
        if s.chars().any(|c| c.is_lowercase()) { s.to_uppercase() } else { s.to_lowercase() }
    } else {
        s.to_string()
    };
    if let Some(w) = width {
        let p = if flags.zero { b'0' } else { b' ' };
        out.extend(std::iter::repeat_n(p, w.saturating_sub(text.chars().count())));
    }
    out.extend_from_slice(text.as_bytes());
}

fn iso_week(tm: &Tm) -> (i64, u32) {
    // ISO 8601: weeks start Monday; week 1 holds the year's first Thursday.
    let wday_mon = (tm.wday + 6) % 7; // Monday = 0
    let yday0 = i64::from(tm.yday) - 1;
    let thursday = yday0 - i64::from(wday_mon) + 3;
    let year_len = |y: i64| {
        if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 366 } else { 365 }
    };
    if thursday < 0 {
        let py = tm.year - 1;
        let t = thursday + year_len(py);
        (py, (t / 7 + 1) as u32)
    } else if thursday >= year_len(tm.year) {
        (tm.year + 1, 1)
    } else {
        (tm.year, (thursday / 7 + 1) as u32)
    }
}

fn conv(out: &mut Vec<u8>, flags: Flags, width: Option<usize>, colons: u8, c: u8, tm: &Tm, zone: &Zone) {
    let sub = |out: &mut Vec<u8>, f: &str| Strftime::new(f).format(out, tm, zone);
    match c {
        b'Y' => {
            if tm.year >= 0 {
                pad_num(out, tm.year, 4, b'0', flags, width)
            } else {
                pad_num(out, tm.year, 5, b'0', flags, width)
            }
        }
        b'C' => pad_num(out, tm.year.div_euclid(100), 2, b'0', flags, width),
        b'y' => pad_num(out, tm.year.rem_euclid(100), 2, b'0', flags, width),
        b'm' => pad_num(out, i64::from(tm.month), 2, b'0', flags, width),
        b'B' => pad_text(out, MONTHS[(tm.month - 1) as usize], flags, width),
        b'b' | b'h' => pad_text(out, &MONTHS[(tm.month - 1) as usize][..3], flags, width),
        b'd' => pad_num(out, i64::from(tm.day), 2, b'0', flags, width),
        b'e' => pad_num(out, i64::from(tm.day), 2, b' ', flags, width),
        b'j' => pad_num(out, i64::from(tm.yday), 3, b'0', flags, width),
        b'H' => pad_num(out, i64::from(tm.hour), 2, b'0', flags, width),
        b'k' => pad_num(out, i64::from(tm.hour), 2, b' ', flags, width),
        b'I' | b'l' => {
            let h = if tm.hour.is_multiple_of(12) { 12 } else { tm.hour % 12 };
            pad_num(out, i64::from(h), 2, if c == b'I' { b'0' } else { b' ' }, flags, width)
        }
        b'P' => pad_text(out, if tm.hour < 12 { "am" } else { "pm" }, flags, width),
        b'p' => {
            let s = if tm.hour < 12 { "AM" } else { "PM" };
            if flags.swap {
                pad_text(out, &s.to_lowercase(), Flags { swap: false, ..flags }, width)
            } else {
                pad_text(out, s, flags, width)
            }
        }
        b'M' => pad_num(out, i64::from(tm.min), 2, b'0', flags, width),
        b'S' => pad_num(out, i64::from(tm.sec), 2, b'0', flags, width),
        b'L' | b'N' => {
            // Width is the number of digits (default 3 for %L, 9 for %N);
            // digits past nanoseconds are zeros; fewer digits truncate.
            let digits = width.unwrap_or(if c == b'L' { 3 } else { 9 });
            let mut ns = [b'0'; 9];
            let mut v = tm.nsec.min(999_999_999);
            for d in ns.iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
            out.extend_from_slice(&ns[..digits.min(9)]);
            out.extend(std::iter::repeat_n(b'0', digits.saturating_sub(9)));
        }
        b'z' => {
            let off = tm.offset;
            let sign = if off < 0 { b'-' } else { b'+' };
            let a = off.unsigned_abs();
            let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
            let two = |v: u32| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
            let mut body = [0u8; 8];
            let mut n = 0;
            for (i, part) in [h, m, s].into_iter().enumerate().take(if colons >= 2 { 3 } else { 2 }) {
                if i > 0 && colons > 0 {
                    body[n] = b':';
                    n += 1;
                }
                body[n..n + 2].copy_from_slice(&two(part));
                n += 2;
            }
            let body = &body[..n];
            let len = body.len() + 1;
            let w = width.unwrap_or(len);
            if flags.space {
                out.extend(std::iter::repeat_n(b' ', w.saturating_sub(len)));
                out.push(sign);
            } else {
                out.push(sign);
                out.extend(std::iter::repeat_n(b'0', w.saturating_sub(len)));
            }
            out.extend_from_slice(body);
        }
        b'Z' => pad_text(out, &zone.abbreviation(tm.epoch), flags, width),
        b'A' => pad_text(out, DAYS[tm.wday as usize], flags, width),
        b'a' => pad_text(out, &DAYS[tm.wday as usize][..3], flags, width),
        b'u' => pad_num(out, i64::from(if tm.wday == 0 { 7 } else { tm.wday }), 1, b'0', flags, width),
        b'w' => pad_num(out, i64::from(tm.wday), 1, b'0', flags, width),
        b'G' => pad_num(out, iso_week(tm).0, 4, b'0', flags, width),
        b'g' => pad_num(out, iso_week(tm).0.rem_euclid(100), 2, b'0', flags, width),
        b'V' => pad_num(out, i64::from(iso_week(tm).1), 2, b'0', flags, width),
        b'U' => pad_num(out, (i64::from(tm.yday) - 1 + 7 - i64::from(tm.wday)) / 7, 2, b'0', flags, width),
        b'W' => pad_num(out, (i64::from(tm.yday) - 1 + 7 - (i64::from(tm.wday) + 6) % 7) / 7, 2, b'0', flags, width),
        b's' => pad_num(out, tm.epoch, 1, b'0', flags, width),
        b'Q' => pad_num(out, tm.epoch * 1000 + i64::from(tm.nsec / 1_000_000), 1, b'0', flags, width),
        b'n' => out.push(b'\n'),
        b't' => out.push(b'\t'),
        b'%' => out.push(b'%'),
        b'c' => sub(out, "%a %b %e %H:%M:%S %Y"),
        b'D' | b'x' => sub(out, "%m/%d/%y"),
        b'F' => sub(out, "%Y-%m-%d"),
        b'T' | b'X' => sub(out, "%H:%M:%S"),
        b'R' => sub(out, "%H:%M"),
        b'r' => sub(out, "%I:%M:%S %p"),
        b'v' => sub(out, "%e-%^b-%4Y"),
        b'+' => sub(out, "%a %b %e %H:%M:%S %Z %Y"),
        _ => {
            let _ = write!(out, "%{}", c as char);
        }
    }
}

/// Formats event times with one format in one zone (Fluentd's `TimeFormatter`).
///
/// Formats without sub-second directives are cached for the last second
/// (events of a batch usually share it), as Fluentd's formatter does.
#[derive(Debug)]
pub struct TimeFormatter {
    fmt: Strftime,
    zone: Zone,
    cache: Option<std::sync::Mutex<(i64, Vec<u8>)>>,
}

impl Clone for TimeFormatter {
    fn clone(&self) -> Self {
        TimeFormatter::with_zone(self.fmt.clone(), self.zone.clone())
    }
}

impl TimeFormatter {
    /// A formatter for `fmt` in `zone`.
    pub fn new(fmt: &str, zone: Zone) -> Self {
        Self::with_zone(Strftime::new(fmt), zone)
    }

    fn with_zone(fmt: Strftime, zone: Zone) -> Self {
        let cache = (!fmt.has_subsec()).then(|| std::sync::Mutex::new((i64::MIN, Vec::new())));
        TimeFormatter { fmt, zone, cache }
    }

    /// Append the formatted time.
    pub fn format(&self, out: &mut Vec<u8>, t: EventTime) {
        if let Some(c) = &self.cache
            && let Ok(mut g) = c.try_lock()
        {
            if g.0 != t.sec {
                g.1.clear();
                let tm = self.zone.tm(t);
                self.fmt.format(&mut g.1, &tm, &self.zone);
                g.0 = t.sec;
            }
            out.extend_from_slice(&g.1);
            return;
        }
        let tm = self.zone.tm(t);
        self.fmt.format(out, &tm, &self.zone);
    }

    /// Format into a string.
    pub fn format_string(&self, t: EventTime) -> String {
        let mut out = Vec::with_capacity(32);
        self.format(&mut out, t);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The zone.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str, t: EventTime, zone: Zone) -> String {
        TimeFormatter::new(f, zone).format_string(t)
    }

    // 2026-11-22 10:00:00.123456789 UTC
    const T: EventTime = EventTime { sec: 1_795_341_600, nsec: 123_456_789 };

    #[test]
    fn common_formats() {
        assert_eq!(fmt("%Y-%m-%d %H:%M:%S.%N %z", T, Zone::Utc), "2026-11-22 10:00:00.123456789 +0000");
        assert_eq!(fmt("%Y-%m-%dT%H:%M:%S.%L%:z", T, Zone::Fixed(9 * 3600)), "2026-11-22T19:00:00.123+09:00");
        assert_eq!(fmt("%3N|%6N|%12N|%s|%Q", T, Zone::Utc), "123|123456|123456789000|1795341600|1795341600123");
        assert_eq!(fmt("%d/%b/%Y:%H:%M:%S %z", T, Zone::Fixed(-8 * 3600 - 1800)), "22/Nov/2026:01:30:00 -0830");
        assert_eq!(
            fmt("%a %A %^b %e %-d %_m %j %u %w %p %I %l %Z", T, Zone::Utc),
            "Sun Sunday NOV 22 22 11 326 7 0 AM 10 10 UTC"
        );
        assert_eq!(fmt("%F %T %D %R %r %%", T, Zone::Utc), "2026-11-22 10:00:00 11/22/26 10:00 10:00:00 AM %");
        assert_eq!(fmt("%::z %10z %_10z", T, Zone::Fixed(3600)), "+01:00:00 +000000100      +0100");
        assert_eq!(fmt("%q %Ey", T, Zone::Utc), "%q %Ey");
        assert_eq!(fmt("%G-W%V %U %W", T, Zone::Utc), "2026-W47 47 46");
    }

    #[test]
    fn named_zone_and_offsets() {
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        assert_eq!(fmt("%H:%M %z", T, tokyo), "19:00 +0900");
        assert_eq!(parse_offset("+09:00"), Some(32400));
        assert_eq!(parse_offset("-0800"), Some(-28800));
        assert_eq!(parse_offset("+09"), Some(32400));
        assert_eq!(parse_offset("+9"), None);
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 59, 365, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let tm = Tm::new(EventTime::new(951_782_400, 0), 0); // 2000-02-29
        assert_eq!((tm.year, tm.month, tm.day, tm.yday, tm.wday), (2000, 2, 29, 60, 2));
    }
}
