//! Ruby-compatible `strptime`: read times as Fluentd's parsers do.
//!
//! Supported directives: `%Y %C %y %m %d %e %j %H %k %I %l %M %S %L %N`
//! (`%3N` etc.), `%p %P`, `%z` (`+0900`, `+09:00`, `+09`, `Z`, `UTC`,
//! `GMT`), `%Z` (zone names: `UTC`/`GMT`/`Z` or an offset; others are
//! skipped), `%b %h %B` (month names, any case), `%a %A` (day names,
//! skipped), `%s` (epoch seconds), `%Q` (epoch milliseconds), `%T %D %F %R %r
//! %c %x %X`, `%n %t %%`. A blank in the format matches any run of blanks
//! (including none) in the input, as Ruby's does; text after the time is
//! ignored, as Ruby's `Time.strptime` ignores it.
//!
//! Fields missing from the input take their values from the current date in
//! the time's zone (no year: this year — syslog's `%b %d %H:%M:%S`).

use crate::strftime::{Zone, days_from_civil};
use crate::time::EventTime;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Lit(u8),
    Space,
    Conv { c: u8, width: Option<usize>, colons: u8 },
}

/// A compiled strptime format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strptime {
    items: Vec<Item>,
    source: String,
    /// Only directives the `strptime` gem knows: Fluentd then uses the gem,
    /// whose `%N` reads at most 9 digits.
    gem: bool,
}

/// Fields read from the input.
#[derive(Debug, Default, Clone, Copy)]
struct Fields {
    year: Option<i64>,
    century: Option<i64>,
    year2: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    yday: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    min: Option<u32>,
    sec: Option<u32>,
    nsec: Option<u32>,
    offset: Option<i32>,
    epoch: Option<i64>,
    epoch_ms: Option<i64>,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

fn expand(fmt: &str) -> String {
    // Composite directives spelled out.
    let mut out = String::with_capacity(fmt.len() + 16);
    let b: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '%' && i + 1 < b.len() {
            let rep = match b[i + 1] {
                'T' | 'X' => Some("%H:%M:%S"),
                'D' | 'x' => Some("%m/%d/%y"),
                'F' => Some("%Y-%m-%d"),
                'R' => Some("%H:%M"),
                'r' => Some("%I:%M:%S %p"),
                'c' => Some("%a %b %e %H:%M:%S %Y"),
                '+' => Some("%a %b %e %H:%M:%S %Z %Y"),
                _ => None,
            };
            if let Some(r) = rep {
                out.push_str(r);
                i += 2;
                continue;
            }
            out.push('%');
            out.push(b[i + 1]);
            i += 2;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

impl Strptime {
    /// Compile `fmt`.
    ///
    /// # Errors
    /// A message naming an unsupported directive.
    pub fn new(fmt: &str) -> Result<Strptime, String> {
        let expanded = expand(fmt);
        let b = expanded.as_bytes();
        let mut items = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_whitespace() {
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                items.push(Item::Space);
                continue;
            }
            if c != b'%' {
                items.push(Item::Lit(c));
                i += 1;
                continue;
            }
            i += 1;
            // Flags are accepted and ignored when parsing.
            while i < b.len() && matches!(b[i], b'-' | b'_' | b'0' | b'^' | b'#') {
                i += 1;
            }
            let mut width = None;
            while i < b.len() && b[i].is_ascii_digit() {
                width = Some(width.unwrap_or(0) * 10 + usize::from(b[i] - b'0'));
                i += 1;
            }
            let mut colons = 0u8;
            while i < b.len() && b[i] == b':' {
                colons += 1;
                i += 1;
            }
            let Some(&d) = b.get(i) else {
                return Err(format!("incomplete directive at the end of time format {fmt:?}"));
            };
            i += 1;
            match d {
                b'n' | b't' => items.push(Item::Space),
                b'%' => items.push(Item::Lit(b'%')),
                b'Y' | b'C' | b'y' | b'm' | b'd' | b'e' | b'j' | b'H' | b'k' | b'I' | b'l' | b'M' | b'S' | b'L'
                | b'N' | b'p' | b'P' | b'z' | b'Z' | b'b' | b'h' | b'B' | b'a' | b'A' | b's' | b'Q' | b'u' | b'w'
                | b'U' | b'W' | b'V' | b'G' | b'g' => items.push(Item::Conv { c: d, width, colons }),
                other => return Err(format!("unsupported directive %{} in time format {fmt:?}", other as char)),
            }
        }
        let gem = gem_compatible(fmt);
        Ok(Strptime { items, source: fmt.to_string(), gem })
    }

    /// True if Fluentd would parse this format with the `strptime` gem
    /// (directives `%Y %m %d %e %H %M %S %N %b %B %h %y %z %n` only).
    pub fn is_gem_format(&self) -> bool {
        self.gem
    }

    /// The format as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parse `s`; times without an offset are read in `zone`.
    ///
    /// # Errors
    /// A message saying where the input stopped matching.
    pub fn parse(&self, s: &str, zone: &Zone) -> Result<EventTime, String> {
        let b = s.as_bytes();
        let mut at = 0;
        let mut f = Fields::default();
        let fail =
            |what: &str| Err(format!("invalid time format: value = {s}, error_class = ArgumentError, error = {what}"));
        for it in &self.items {
            match it {
                Item::Space => {
                    while at < b.len() && b[at].is_ascii_whitespace() {
                        at += 1;
                    }
                }
                Item::Lit(c) => {
                    if b.get(at) != Some(c) {
                        return fail(&format!("expected {:?} at position {at}", *c as char));
                    }
                    at += 1;
                }
                Item::Conv { c, width, colons } => {
                    if let Err(e) = conv(b, &mut at, *c, *width, *colons, self.gem, &mut f) {
                        return fail(&e);
                    }
                }
            }
        }
        // Like Ruby's Time.strptime and the strptime gem, text after the
        // time is ignored.
        resolve(&f, zone).ok_or_else(|| {
            format!("invalid time format: value = {s}, error_class = ArgumentError, error = invalid date")
        })
    }
}

fn digits(b: &[u8], at: &mut usize, max: usize, signed: bool) -> Result<i64, String> {
    let start = *at;
    let mut neg = false;
    if signed && matches!(b.get(*at), Some(b'-' | b'+')) {
        neg = b[*at] == b'-';
        *at += 1;
    }
    let ds = *at;
    while *at < b.len() && b[*at].is_ascii_digit() && *at - ds < max {
        *at += 1;
    }
    if *at == ds {
        *at = start;
        return Err(format!("expected digits at position {start}"));
    }
    let v: i64 = std::str::from_utf8(&b[ds..*at]).ok().and_then(|t| t.parse().ok()).ok_or("number too large")?;
    Ok(if neg { -v } else { v })
}

fn name(b: &[u8], at: &mut usize, names: &[&str]) -> Option<usize> {
    let rest = &b[*at..];
    for (i, n) in names.iter().enumerate() {
        let full = n.as_bytes();
        if rest.len() >= full.len() && rest[..full.len()].eq_ignore_ascii_case(full) {
            *at += full.len();
            return Some(i);
        }
    }
    for (i, n) in names.iter().enumerate() {
        let abbr = &n.as_bytes()[..3];
        if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(abbr) {
            *at += 3;
            return Some(i);
        }
    }
    None
}

fn offset(b: &[u8], at: &mut usize, gem: bool) -> Result<i32, String> {
    let rest = &b[*at..];
    for (name, off) in [("UTC", 0), ("GMT", 0), ("Z", 0)] {
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            *at += name.len();
            // "UTC+9" style is not Ruby-compatible; stop here.
            return Ok(off);
        }
    }
    let sign = match rest.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        // The gem also takes an unsigned offset.
        Some(d) if gem && d.is_ascii_digit() => 0,
        _ => return Err(format!("expected a zone offset at position {at}")),
    };
    let sign = if sign == 0 {
        1
    } else {
        *at += 1;
        sign
    };
    let h = digits(b, at, 2, false)? as i32;
    let mut m = 0;
    if b.get(*at) == Some(&b':') {
        *at += 1;
        m = digits(b, at, 2, false)? as i32;
        if b.get(*at) == Some(&b':') {
            *at += 1;
            let s = digits(b, at, 2, false)? as i32;
            return Ok(sign * (h * 3600 + m * 60 + s));
        }
    } else if b.get(*at).is_some_and(u8::is_ascii_digit) {
        m = digits(b, at, 2, false)? as i32;
    }
    Ok(sign * (h * 3600 + m * 60))
}

fn gem_compatible(fmt: &str) -> bool {
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1) {
                Some(
                    b'Y' | b'm' | b'd' | b'e' | b'H' | b'M' | b'S' | b'N' | b'b' | b'B' | b'h' | b'y' | b'z' | b'n',
                ) => i += 2,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// US zone abbreviations Ruby's `Time.strptime` knows (others read as local time).
const US_ZONES: [(&str, i32); 8] =
    [("EST", -5), ("EDT", -4), ("CST", -6), ("CDT", -5), ("MST", -7), ("MDT", -6), ("PST", -8), ("PDT", -7)];

#[allow(clippy::too_many_arguments)]
fn conv(
    b: &[u8],
    at: &mut usize,
    c: u8,
    width: Option<usize>,
    _colons: u8,
    gem: bool,
    f: &mut Fields,
) -> Result<(), String> {
    match c {
        b'Y' => f.year = Some(digits(b, at, width.unwrap_or(5), true)?),
        b'C' => f.century = Some(digits(b, at, width.unwrap_or(2), true)?),
        b'y' => f.year2 = Some(digits(b, at, width.unwrap_or(2), false)?),
        b'G' => {
            digits(b, at, width.unwrap_or(5), true)?;
        }
        b'g' | b'U' | b'W' | b'V' | b'u' | b'w' => {
            digits(b, at, width.unwrap_or(2), false)?;
        }
        b'm' => f.month = Some(digits(b, at, width.unwrap_or(2), false)? as u32),
        b'd' | b'e' => {
            if c == b'e' && b.get(*at) == Some(&b' ') {
                *at += 1;
            }
            f.day = Some(digits(b, at, width.unwrap_or(2), false)? as u32);
        }
        b'j' => f.yday = Some(digits(b, at, width.unwrap_or(3), false)? as u32),
        b'H' | b'k' => {
            if c == b'k' && b.get(*at) == Some(&b' ') {
                *at += 1;
            }
            f.hour = Some(digits(b, at, width.unwrap_or(2), false)? as u32);
        }
        b'I' | b'l' => {
            if c == b'l' && b.get(*at) == Some(&b' ') {
                *at += 1;
            }
            f.hour12 = Some(digits(b, at, width.unwrap_or(2), false)? as u32);
        }
        b'M' => f.min = Some(digits(b, at, width.unwrap_or(2), false)? as u32),
        b'S' => f.sec = Some(digits(b, at, width.unwrap_or(2), false)? as u32),
        b'L' | b'N' => {
            // Fraction digits: the value scaled to nanoseconds (extra digits truncated).
            let start = *at;
            let max = width.unwrap_or(if c == b'L' { 3 } else { 9 }).max(1);
            while *at < b.len() && b[*at].is_ascii_digit() && *at - start < max.max(9) {
                *at += 1;
            }
            if *at == start {
                return Err(format!("expected fraction digits at position {start}"));
            }
            let ds = &b[start..*at];
            let mut ns: u32 = 0;
            for i in 0..9 {
                ns = ns * 10 + ds.get(i).map_or(0, |d| u32::from(d - b'0'));
            }
            // Ruby reads further digits of %N as part of the fraction; the
            // strptime gem stops after nine.
            if !gem || c == b'L' {
                while *at < b.len() && b[*at].is_ascii_digit() {
                    *at += 1;
                }
            } else {
                *at = start + (*at - start).min(9);
            }
            f.nsec = Some(ns);
        }
        b'p' | b'P' => {
            let rest = &b[*at..];
            let pm = if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"pm") {
                true
            } else if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"am") {
                false
            } else if rest.len() >= 4
                && (rest[..4].eq_ignore_ascii_case(b"p.m.") || rest[..4].eq_ignore_ascii_case(b"a.m."))
            {
                *at += 2;
                rest[0].eq_ignore_ascii_case(&b'p')
            } else {
                return Err(format!("expected AM or PM at position {at}"));
            };
            *at += 2;
            f.pm = Some(pm);
        }
        b'z' => f.offset = Some(offset(b, at, gem)?),
        b'Z' => {
            let start = *at;
            let rest = &b[start..];
            if let Some((name, h)) =
                US_ZONES.iter().find(|(n, _)| rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(n.as_bytes()))
            {
                *at += name.len();
                f.offset = Some(h * 3600);
            } else if let Ok(o) = offset(b, at, false) {
                f.offset = Some(o);
            } else {
                *at = start;
                while *at < b.len() && (b[*at].is_ascii_alphabetic() || b[*at] == b'/' || b[*at] == b'_') {
                    *at += 1;
                }
                if *at == start {
                    return Err(format!("expected a zone name at position {start}"));
                }
            }
        }
        b'b' | b'h' | b'B' => {
            f.month = Some(name(b, at, &MONTHS).ok_or(format!("expected a month name at position {at}"))? as u32 + 1)
        }
        b'a' | b'A' => {
            name(b, at, &DAYS).ok_or(format!("expected a day name at position {at}"))?;
        }
        b's' => f.epoch = Some(digits(b, at, 20, true)?),
        b'Q' => f.epoch_ms = Some(digits(b, at, 20, true)?),
        _ => return Err(format!("unsupported directive %{}", c as char)),
    }
    Ok(())
}

fn resolve(f: &Fields, zone: &Zone) -> Option<EventTime> {
    if let Some(ms) = f.epoch_ms {
        return Some(EventTime::new(ms.div_euclid(1000), (ms.rem_euclid(1000) * 1_000_000) as u32));
    }
    if let Some(s) = f.epoch {
        return Some(EventTime::new(s, f.nsec.unwrap_or(0)));
    }
    let now = EventTime::now();
    let today = zone.tm(now);
    let year = match (f.year, f.year2, f.century) {
        (Some(y), _, _) => y,
        (None, Some(y2), Some(c)) => c * 100 + y2,
        (None, Some(y2), None) => y2 + if y2 < 69 { 2000 } else { 1900 },
        (None, None, Some(c)) => c * 100,
        (None, None, None) => today.year,
    };
    let (month, day) = match (f.yday, f.month, f.day) {
        (Some(yd), None, None) => {
            let d = days_from_civil(year, 1, 1) + i64::from(yd) - 1;
            let (_, m, dd) = crate::strftime::civil_from_days(d);
            (m, dd)
        }
        (_, m, d) => {
            // Missing date parts: today's if nothing coarser was given, else the start.
            let coarse = f.year.is_some() || f.year2.is_some() || f.century.is_some();
            (
                m.unwrap_or(if coarse { 1 } else { today.month }),
                d.unwrap_or(if coarse || m.is_some() { 1 } else { today.day }),
            )
        }
    };
    // Days past the month's end roll over (Feb 30 is Mar 2), as in Ruby.
    if !(1..=12).contains(&month) || day == 0 || day > 31 {
        return None;
    }
    let hour = match (f.hour, f.hour12, f.pm) {
        (Some(h), _, _) => h,
        (None, Some(h), Some(pm)) => (h % 12) + if pm { 12 } else { 0 },
        (None, Some(h), None) => h,
        (None, None, _) => 0,
    };
    let (min, sec) = (f.min.unwrap_or(0), f.sec.unwrap_or(0));
    if hour > 24 || (hour == 24 && (min > 0 || sec > 0)) || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    let offset = match f.offset {
        Some(o) => i64::from(o),
        None => {
            // The zone's offset at that local time (try the offset at the naive UTC reading).
            let guess = i64::from(zone.offset_at(local));
            i64::from(zone.offset_at(local - guess))
        }
    };
    Some(EventTime::new(local - offset, f.nsec.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(fmt: &str, s: &str) -> Result<EventTime, String> {
        Strptime::new(fmt).unwrap().parse(s, &Zone::Utc)
    }

    #[test]
    fn common_formats() {
        // 2016-10-07 21:09:31 UTC = 1475874571
        assert_eq!(p("%Y-%m-%d %H:%M:%S %z", "2016-10-07 21:09:31 +0000"), Ok(EventTime::new(1_475_874_571, 0)));
        assert_eq!(
            p("%Y-%m-%dT%H:%M:%S.%L%z", "2016-10-07T21:09:31.012+0000"),
            Ok(EventTime::new(1_475_874_571, 12_000_000))
        );
        assert_eq!(
            p("%Y-%m-%d %H:%M:%S.%N %z", "2016-10-08 06:09:31.123456789 +09:00"),
            Ok(EventTime::new(1_475_874_571, 123_456_789))
        );
        assert_eq!(p("%d/%b/%Y:%H:%M:%S %z", "07/Oct/2016:14:09:31 -0700"), Ok(EventTime::new(1_475_874_571, 0)));
        assert_eq!(p("%s", "1475874571"), Ok(EventTime::new(1_475_874_571, 0)));
        assert_eq!(p("%s.%N", "1475874571.5"), Ok(EventTime::new(1_475_874_571, 500_000_000)));
        assert_eq!(p("%Q", "1475874571123"), Ok(EventTime::new(1_475_874_571, 123_000_000)));
        assert_eq!(p("%FT%T%:z", "2016-10-07T21:09:31Z"), Ok(EventTime::new(1_475_874_571, 0)));
        assert_eq!(p("%a %b %e %H:%M:%S %Y", "Fri Oct  7 21:09:31 2016"), Ok(EventTime::new(1_475_874_571, 0)));
        assert_eq!(p("%Y-%m-%d %I:%M:%S %p", "2016-10-07 09:09:31 PM"), Ok(EventTime::new(1_475_874_571, 0)));
        assert_eq!(p("%y%m%d", "161007"), Ok(EventTime::new(1_475_798_400, 0)));
        // Blanks match any run of blanks.
        assert_eq!(p("%b %d %H:%M:%S %Y", "Oct  7 21:09:31 2016"), Ok(EventTime::new(1_475_874_571, 0)));
    }

    #[test]
    fn gem_and_ruby_flavours() {
        // The gem reads at most 9 digits of %N; the rest is then the offset.
        assert_eq!(
            p("%Y-%m-%dT%H:%M:%S.%N%z", "2013-02-28T12:00:00.123456789123+09:00"),
            Ok(EventTime::new(1_362_052_800 - 12 * 3600 - 3 * 60, 123_456_789))
        );
        // %L is Ruby's: every digit belongs to the fraction.
        assert_eq!(
            p("%Y-%m-%dT%H:%M:%S.%L%z", "2013-02-28T12:00:00.123456Z"),
            Ok(EventTime::new(1_362_052_800, 123_456_000))
        );
        assert_eq!(p("%d/%b/%Y:%H:%M:%S %Z", "28/Feb/2013:12:00:00 EST"), Ok(EventTime::new(1_362_070_800, 0)));
        // Unknown zone names read as local time (UTC here).
        assert_eq!(p("%d/%b/%Y:%H:%M:%S %Z", "28/Feb/2013:12:00:00 JST"), Ok(EventTime::new(1_362_052_800, 0)));
        assert!(Strptime::new("%Y-%m-%d %H:%M:%S").unwrap().is_gem_format());
        assert!(!Strptime::new("%Y-%m-%dT%H:%M:%S.%L").unwrap().is_gem_format());
    }

    #[test]
    fn zones_and_missing_year() {
        let jst = Zone::Fixed(9 * 3600);
        assert_eq!(
            Strptime::new("%Y-%m-%d %H:%M:%S").unwrap().parse("2016-10-08 06:09:31", &jst),
            Ok(EventTime::new(1_475_874_571, 0))
        );
        let t = Strptime::new("%b %d %H:%M:%S").unwrap().parse("Oct  7 21:09:31", &Zone::Utc).unwrap();
        let now_year = Zone::Utc.tm(EventTime::now()).year;
        assert_eq!(Zone::Utc.tm(t).year, now_year);
        assert_eq!((Zone::Utc.tm(t).month, Zone::Utc.tm(t).day), (10, 7));
    }

    #[test]
    fn errors() {
        assert!(p("%Y-%m-%d", "2016-13-01").is_err());
        assert_eq!(p("%Y-%m-%d", "2013-02-30"), p("%Y-%m-%d", "2013-03-02"));
        assert_eq!(p("%Y-%m-%d %H:%M:%S", "2013-02-28 12:00:60"), p("%Y-%m-%d %H:%M:%S", "2013-02-28 12:01:00"));
        assert!(p("%Y-%m-%d", "2016-02-32").is_err());
        assert!(p("%Y-%m-%d %H:%M", "2013-02-28 25:00").is_err());
        assert!(p("%Y-%m-%d", "2016/10/07").is_err());
        assert_eq!(p("%Y-%m-%d", "2016-10-07 extra"), Ok(EventTime::new(1_475_798_400, 0)));
        assert!(Strptime::new("%Y %q").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[0-9a-zA-Z :+./-]{0,30}") {
            for fmt in ["%Y-%m-%d %H:%M:%S %z", "%d/%b/%Y:%H:%M:%S %z", "%s.%N", "%b %e %H:%M:%S"] {
                let _ = Strptime::new(fmt).unwrap().parse(&s, &Zone::Utc);
            }
        }
    }
}
