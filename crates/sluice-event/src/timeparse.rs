//! Ruby's `Time.parse` (for parsers without `time_format`) and
//! `Time.iso8601` (`time_format %iso8601`).
//!
//! `Time.parse` is Ruby's lenient `Date._parse`. This covers the shapes logs
//! use: ISO 8601 (`2013-02-28 12:00:00 +0900`, `2013-02-28T12:00:00.5Z`),
//! slashed dates (`2013/02/28 12:00:00`, `28/02/2013`, `02/28` month first), month names
//! (`Feb 28 2013 12:00`, RFC 2822 `Thu, 28 Feb 2013 12:00:00 +0900`, ctime
//! `Wed Oct 11 14:32:52 2000`), a time alone (`12:00`, today) and a date
//! alone. Zones: `Z`, `UTC`, `GMT`, `UT`, `±hh:mm`, `±hhmm`, `±hh`, US
//! abbreviations; without one the time is read in `zone`. Missing date parts
//! come from today in `zone`.

use crate::strftime::{Zone, days_from_civil};
use crate::time::EventTime;

const MONTHS: [&[u8]; 12] =
    [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];
const ZONES: [(&[u8], i32); 12] = [
    (b"utc", 0),
    (b"gmt", 0),
    (b"ut", 0),
    (b"z", 0),
    (b"est", -5),
    (b"edt", -4),
    (b"cst", -6),
    (b"cdt", -5),
    (b"mst", -7),
    (b"mdt", -6),
    (b"pst", -8),
    (b"pdt", -7),
];

#[derive(Default, Debug)]
struct Found {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
    min: u32,
    sec: u32,
    nsec: u32,
    offset: Option<i32>,
}

fn num(b: &[u8], i: usize) -> (u64, usize) {
    let mut v: u64 = 0;
    let mut j = i;
    while j < b.len() && b[j].is_ascii_digit() && j - i < 18 {
        v = v * 10 + u64::from(b[j] - b'0');
        j += 1;
    }
    (v, j)
}

/// Ruby's `Time.parse(s)`, read in `zone` when `s` has no offset.
///
/// # Errors
/// Ruby's messages: `no time information in "<s>"`, `argument out of range`.
pub fn parse_time(s: &str, zone: &Zone) -> Result<EventTime, String> {
    let lower = s.to_ascii_lowercase();
    let b = lower.as_bytes();
    let mut used = vec![false; b.len()];
    let mut f = Found::default();

    // 1. The time of day: h:mm[:ss[.frac]] [am|pm] [zone].
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()) {
            let (h, j) = num(b, i);
            if j - i <= 2 && b.get(j) == Some(&b':') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                let (m, mut k) = num(b, j + 1);
                if k - (j + 1) != 2 {
                    i = k;
                    continue;
                }
                let mut sec = 0;
                let mut nsec = 0;
                if b.get(k) == Some(&b':') && b.get(k + 1).is_some_and(u8::is_ascii_digit) {
                    let (sv, k2) = num(b, k + 1);
                    sec = sv as u32;
                    k = k2;
                    if matches!(b.get(k), Some(b'.' | b',')) && b.get(k + 1).is_some_and(u8::is_ascii_digit) {
                        let fs = k + 1;
                        let mut fe = fs;
                        while fe < b.len() && b[fe].is_ascii_digit() {
                            fe += 1;
                        }
                        let mut ns: u32 = 0;
                        for n in 0..9 {
                            ns = ns * 10 + b.get(fs + n).filter(|_| fs + n < fe).map_or(0, |d| u32::from(d - b'0'));
                        }
                        nsec = ns;
                        k = fe;
                    }
                }
                let mut hour = h as u32;
                let mut e = k;
                while e < b.len() && b[e] == b' ' {
                    e += 1;
                }
                if b[e..].starts_with(b"pm")
                    || b[e..].starts_with(b"am")
                    || b[e..].starts_with(b"p.m.")
                    || b[e..].starts_with(b"a.m.")
                {
                    let pm = b[e] == b'p';
                    hour = hour % 12 + if pm { 12 } else { 0 };
                    k = e + if b[e + 1] == b'.' { 4 } else { 2 };
                }
                // Zone after the time.
                let mut z = k;
                while z < b.len() && b[z] == b' ' {
                    z += 1;
                }
                if let Some((off, end)) = zone_at(b, z) {
                    f.offset = Some(off);
                    k = end;
                }
                f.hour = Some(hour);
                f.min = m as u32;
                f.sec = sec;
                f.nsec = nsec;
                used[i..k].iter_mut().for_each(|u| *u = true);
                break;
            }
            i = j;
        } else {
            i += 1;
        }
    }

    // 2. The date, from what the time did not use.
    let words: Vec<(usize, usize)> = tokens(b, &used);
    date(b, &words, &mut f);

    if f.hour.is_none() && f.day.is_none() && f.month.is_none() && f.year.is_none() {
        return Err(format!("no time information in {s:?}"));
    }
    if f.offset.is_none() {
        // A zone given apart from a time ("2013-02-28 UTC").
        for &(s0, _) in &words {
            if let Some((off, _)) = zone_at(b, s0).filter(|(_, e)| b.get(*e).is_none_or(|c| !c.is_ascii_alphanumeric()))
                && !b[s0].is_ascii_digit()
            {
                f.offset = Some(off);
            }
        }
    }
    build(&f, zone).ok_or_else(|| "argument out of range".to_string())
}

/// Maximal runs of letters or of digits not used by the time.
fn tokens(b: &[u8], used: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if used[i] || !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let alpha = b[i].is_ascii_alphabetic();
        let s = i;
        while i < b.len() && !used[i] && (if alpha { b[i].is_ascii_alphabetic() } else { b[i].is_ascii_digit() }) {
            i += 1;
        }
        out.push((s, i));
    }
    out
}

fn zone_at(b: &[u8], z: usize) -> Option<(i32, usize)> {
    match b.get(z) {
        Some(&c @ (b'+' | b'-')) => {
            let sign = if c == b'-' { -1 } else { 1 };
            let (h, e) = num(b, z + 1);
            let n = e - (z + 1);
            if n == 4 {
                return Some((sign * ((h / 100) as i32 * 3600 + (h % 100) as i32 * 60), e));
            }
            if n == 1 || n == 2 {
                if b.get(e) == Some(&b':') {
                    let (m, e2) = num(b, e + 1);
                    if e2 - (e + 1) == 2 {
                        return Some((sign * (h as i32 * 3600 + m as i32 * 60), e2));
                    }
                }
                return Some((sign * h as i32 * 3600, e));
            }
            None
        }
        Some(c) if c.is_ascii_alphabetic() => {
            let mut e = z;
            while e < b.len() && b[e].is_ascii_alphabetic() {
                e += 1;
            }
            let word = &b[z..e];
            let (_, off) = ZONES.iter().find(|(n, _)| *n == word)?;
            // "UTC+9" / "GMT-05:00"
            if matches!(b.get(e), Some(b'+' | b'-'))
                && let Some((o, e2)) = zone_at(b, e)
            {
                return Some((off * 3600 + o, e2));
            }
            Some((off * 3600, e))
        }
        _ => None,
    }
}

fn month_of(w: &[u8]) -> Option<u32> {
    if w.len() < 3 {
        return None;
    }
    MONTHS.iter().position(|m| w.starts_with(m)).map(|p| p as u32 + 1)
}

fn date(b: &[u8], words: &[(usize, usize)], f: &mut Found) {
    // ISO / slashed numeric dates: 2013-02-28, 2013/2/28, 02/28/2013, 28.02.2013.
    for (wi, &(s, e)) in words.iter().enumerate() {
        if !b[s].is_ascii_digit() {
            continue;
        }
        let sep = b.get(e).copied();
        if !matches!(sep, Some(b'-' | b'/' | b'.')) {
            continue;
        }
        let Some(&(s2, e2)) = words.get(wi + 1) else { continue };
        if s2 != e + 1 || !b[s2].is_ascii_digit() {
            continue;
        }
        let third =
            words.get(wi + 2).filter(|&&(s3, _)| s3 == e2 + 1 && b.get(e2) == sep.as_ref() && b[s3].is_ascii_digit());
        let v1 = num(b, s).0 as i64;
        let v2 = num(b, s2).0 as u32;
        match third {
            Some(&(s3, e3)) => {
                let v3 = num(b, s3).0;
                if e - s == 4 {
                    (f.year, f.month, f.day) = (Some(v1), Some(v2), Some(v3 as u32));
                } else {
                    // dd/mm/yyyy and dd.mm.yyyy, as Ruby reads them.
                    (f.day, f.month, f.year) = (Some(v1 as u32), Some(v2), Some(year2(v3 as i64, e3 - s3)));
                }
            }
            None if e - s == 4 => (f.year, f.month) = (Some(v1), Some(v2)),
            None if sep == Some(b'/') => (f.month, f.day) = (Some(v1 as u32), Some(v2)),
            None => continue,
        }
        return;
    }
    // Month names: "Feb 28 2013", "28 Feb 2013", "Feb 28, 2013", "Wed Oct 11 … 2000".
    if let Some(mi) = words.iter().position(|&(s, e)| month_of(&b[s..e]).is_some()) {
        let (s, e) = words[mi];
        f.month = month_of(&b[s..e]);
        let nums: Vec<(usize, i64, usize)> = words
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| b[*s].is_ascii_digit())
            .map(|(i, &(s, e))| (i, num(b, s).0 as i64, e - s))
            .collect();
        // The day: the number right after the month, else right before it.
        let day = nums
            .iter()
            .find(|(i, _, l)| *i == mi + 1 && *l <= 2)
            .or_else(|| nums.iter().find(|(i, _, l)| *i + 1 == mi && *l <= 2));
        if let Some(&(di, d, _)) = day {
            f.day = Some(d as u32);
            if let Some(&(_, y, l)) = nums.iter().find(|(i, _, l)| *i != di && (*l == 4 || (*l == 2 && *i > mi))) {
                f.year = Some(year2(y, l));
            }
        } else if let Some(&(_, y, _)) = nums.iter().find(|(_, _, l)| *l == 4) {
            f.year = Some(y);
        }
        return;
    }
    // A lone 4-digit year.
    if let Some(&(s, _)) = words.iter().find(|&&(s, e)| e - s == 4 && b[s].is_ascii_digit()) {
        f.year = Some(num(b, s).0 as i64);
    }
}

fn year2(y: i64, digits: usize) -> i64 {
    if digits <= 2 { y + if y < 69 { 2000 } else { 1900 } } else { y }
}

fn build(f: &Found, zone: &Zone) -> Option<EventTime> {
    let today = zone.tm(EventTime::now());
    let year = f.year.unwrap_or(today.year);
    let (month, day) = match (f.month, f.day) {
        (Some(m), Some(d)) => (m, d),
        (Some(m), None) => (m, 1),
        (None, Some(d)) => (today.month, d),
        (None, None) if f.year.is_some() => (1, 1),
        (None, None) => (today.month, today.day),
    };
    let hour = f.hour.unwrap_or(0);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 24 || f.min > 59 || f.sec > 60 {
        return None;
    }
    let local =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour) * 3600 + i64::from(f.min) * 60 + i64::from(f.sec);
    let off = match f.offset {
        Some(o) => i64::from(o),
        None => {
            let guess = i64::from(zone.offset_at(local));
            i64::from(zone.offset_at(local - guess))
        }
    };
    Some(EventTime::new(local - off, f.nsec))
}

/// Ruby's `Time.iso8601` (`xmlschema`): `YYYY-MM-DDThh:mm:ss[.frac][Z|±hh:mm|±hhmm]`;
/// without an offset the time is read in `zone`.
///
/// # Errors
/// `invalid xmlschema format: "<s>"`.
pub fn parse_iso8601(s: &str, zone: &Zone) -> Result<EventTime, String> {
    let err = || format!("invalid xmlschema format: {s:?}");
    let b = s.as_bytes();
    let fixed = |at: usize, n: usize| -> Option<u64> {
        let d = b.get(at..at + n)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0u64, |v, c| v * 10 + u64::from(c - b'0')))
    };
    let (neg, y0) = if b.first() == Some(&b'-') { (true, 1) } else { (false, 0) };
    let mut ye = y0;
    while ye < b.len() && b[ye].is_ascii_digit() {
        ye += 1;
    }
    if ye - y0 < 4 || b.get(ye) != Some(&b'-') || b.get(ye + 3) != Some(&b'-') || b.get(ye + 6) != Some(&b'T') {
        return Err(err());
    }
    let year = num(b, y0).0 as i64 * if neg { -1 } else { 1 };
    let month = fixed(ye + 1, 2).ok_or_else(err)? as u32;
    let day = fixed(ye + 4, 2).ok_or_else(err)? as u32;
    let t = ye + 7;
    let hour = fixed(t, 2).ok_or_else(err)? as u32;
    if b.get(t + 2) != Some(&b':') || b.get(t + 5) != Some(&b':') {
        return Err(err());
    }
    let min = fixed(t + 3, 2).ok_or_else(err)? as u32;
    let sec = fixed(t + 6, 2).ok_or_else(err)? as u32;
    let mut i = t + 8;
    let mut nsec = 0;
    if b.get(i) == Some(&b'.') {
        let fs = i + 1;
        let mut fe = fs;
        while fe < b.len() && b[fe].is_ascii_digit() {
            fe += 1;
        }
        if fe == fs {
            return Err(err());
        }
        for n in 0..9 {
            nsec = nsec * 10 + if fs + n < fe { u32::from(b[fs + n] - b'0') } else { 0 };
        }
        i = fe;
    }
    let offset = match b.get(i) {
        None => None,
        Some(b'Z') if i + 1 == b.len() => Some(0),
        Some(&c @ (b'+' | b'-')) => {
            let h = fixed(i + 1, 2).ok_or_else(err)? as i32;
            let (m, end) =
                if b.get(i + 3) == Some(&b':') { (fixed(i + 4, 2), i + 6) } else { (fixed(i + 3, 2), i + 5) };
            let m = m.ok_or_else(err)? as i32;
            if end != b.len() {
                return Err(err());
            }
            Some(if c == b'-' { -1 } else { 1 } * (h * 3600 + m * 60))
        }
        _ => return Err(err()),
    };
    let f = Found { year: Some(year), month: Some(month), day: Some(day), hour: Some(hour), min, sec, nsec, offset };
    build(&f, zone).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<EventTime, String> {
        parse_time(s, &Zone::Utc)
    }

    #[test]
    fn shapes_ruby_parses() {
        let t = EventTime::new(1_362_020_400, 0); // 2013-02-28 03:00:00 UTC
        assert_eq!(p("2013-02-28 12:00:00 +0900"), Ok(t));
        assert_eq!(p("2013-02-28T12:00:00+09:00"), Ok(t));
        assert_eq!(p("2013-02-28T03:00:00Z"), Ok(t));
        assert_eq!(p("2013-02-28 03:00:00 UTC"), Ok(t));
        assert_eq!(p("2013/02/28 03:00:00"), Ok(t));
        assert_eq!(p("28/02/2013 03:00:00"), Ok(t));
        assert_eq!(p("02/28/2013"), Err("argument out of range".into()));
        assert_eq!(p("Thu, 28 Feb 2013 12:00:00 +0900"), Ok(t));
        assert_eq!(p("Feb 28 2013 03:00"), Ok(t));
        assert_eq!(p("February 28, 2013 3:00 AM"), Ok(t));
        assert_eq!(p("2013-02-27 10:00:00 pm -0500"), Ok(t));
        assert_eq!(p("Wed Oct 11 14:32:52 2000"), Ok(EventTime::new(971_274_772, 0)));
        assert_eq!(p("Wed Oct 11 14:32:52.123456 2000"), Ok(EventTime::new(971_274_772, 123_456_000)));
        assert_eq!(p("2013-02-28"), Ok(EventTime::new(1_362_009_600, 0)));
        assert_eq!(p("2013-02-28 03:00:00.5 EST"), Ok(EventTime::new(1_362_020_400 + 5 * 3600, 500_000_000)));
        let today = Zone::Utc.tm(EventTime::now());
        let noon = p("12:00").unwrap();
        let tm = Zone::Utc.tm(noon);
        assert_eq!((tm.year, tm.month, tm.day, tm.hour, tm.min), (today.year, today.month, today.day, 12, 0));
        // Local zone when none is given.
        assert_eq!(parse_time("2013-02-28 12:00:00", &Zone::Fixed(9 * 3600)), Ok(t));
    }

    #[test]
    fn errors() {
        assert_eq!(p("garbage"), Err("no time information in \"garbage\"".into()));
        assert_eq!(p(""), Err("no time information in \"\"".into()));
        assert_eq!(p("2013-13-01"), Err("argument out of range".into()));
    }

    #[test]
    fn iso8601() {
        let z = Zone::Utc;
        assert_eq!(parse_iso8601("2013-02-28T12:00:00+09:00", &z), Ok(EventTime::new(1_362_020_400, 0)));
        assert_eq!(parse_iso8601("2013-02-28T03:00:00.25Z", &z), Ok(EventTime::new(1_362_020_400, 250_000_000)));
        assert_eq!(parse_iso8601("2013-02-28T12:00:00+0900", &z), Ok(EventTime::new(1_362_020_400, 0)));
        assert_eq!(parse_iso8601("2013-02-28T12:00:00", &Zone::Fixed(9 * 3600)), Ok(EventTime::new(1_362_020_400, 0)));
        for bad in ["2013-02-28 12:00:00Z", "2013-02-28", "2013-02-28T12:00Z", "2013-02-28T12:00:00X", "x"] {
            assert!(parse_iso8601(bad, &z).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[0-9a-zA-Z :+./,-]{0,40}") {
            let _ = parse_time(&s, &Zone::Utc);
            let _ = parse_iso8601(&s, &Zone::Utc);
        }
    }
}
