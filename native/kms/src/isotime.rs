//! Python 3.11's `datetime.fromisoformat`, ported from its C implementation
//! (`Modules/_datetimemodule.c`: `_find_isoformat_datetime_separator`,
//! `parse_isoformat_date`, `parse_isoformat_time`, `parse_hh_mm_ss_ff`), quirks
//! included, so that this crate accepts exactly the creation times Python accepts
//! (keyring `created` fields, PKCS#11 key labels) and orders them as Python does.
//!
//! The C code reads a NUL-terminated UTF-8 buffer; here [`Buf::at`] returns 0 past
//! the end, which is that terminator.

use std::cmp::Ordering;

/// A parsed `datetime`: wall-clock microseconds since 0001-01-01T00:00, and the UTC
/// offset in microseconds for an aware one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PyDateTime {
    local_us: i64,
    offset_us: Option<i64>,
}

impl PyDateTime {
    /// Whether it carries a UTC offset (Python: `tzinfo is not None`).
    pub(crate) fn is_aware(&self) -> bool {
        self.offset_us.is_some()
    }

    /// The value Python compares: the UTC instant for an aware datetime, the wall
    /// clock for a naive one (in microseconds since 0001-01-01T00:00).
    pub(crate) fn comparable_us(&self) -> i64 {
        self.local_us - self.offset_us.unwrap_or(0)
    }

    /// Python's `<` between two datetimes; `None` where Python raises `TypeError`
    /// (a naive one compared with an aware one).
    pub(crate) fn py_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.is_aware() != other.is_aware() {
            return None;
        }
        Some(self.comparable_us().cmp(&other.comparable_us()))
    }
}

const US_PER_SECOND: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SECOND;

struct Buf<'a>(&'a [u8]);

impl Buf<'_> {
    fn at(&self, i: usize) -> u8 {
        self.0.get(i).copied().unwrap_or(0)
    }

    /// `parse_digits`: `n` ASCII digits at `p` added to `*var`; the position after them.
    fn digits(&self, mut p: usize, var: &mut i64, n: usize) -> Option<usize> {
        for _ in 0..n {
            let c = self.at(p);
            p += 1;
            if !c.is_ascii_digit() {
                return None;
            }
            *var = *var * 10 + i64::from(c - b'0');
        }
        Some(p)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    const DAYS: [i64; 13] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if month == 2 && is_leap(year) {
        29
    } else {
        DAYS[month as usize]
    }
}

fn days_before_month(year: i64, month: i64) -> i64 {
    const BEFORE: [i64; 13] = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    BEFORE[month as usize] + i64::from(month > 2 && is_leap(year))
}

fn days_before_year(year: i64) -> i64 {
    let y = year - 1;
    y * 365 + y / 4 - y / 100 + y / 400
}

/// Day 1 is 0001-01-01.
fn ymd_to_ord(year: i64, month: i64, day: i64) -> i64 {
    days_before_year(year) + days_before_month(year, month) + day
}

/// The inverse of [`ymd_to_ord`] for ordinals >= 1.
fn ord_to_ymd(ordinal: i64) -> (i64, i64, i64) {
    const DI400Y: i64 = 146_097;
    const DI100Y: i64 = 36_524;
    const DI4Y: i64 = 1_461;
    let n = ordinal - 1;
    let (n400, n) = (n / DI400Y, n % DI400Y);
    let mut year = n400 * 400 + 1;
    let (n100, n) = (n / DI100Y, n % DI100Y);
    let (n4, n) = (n / DI4Y, n % DI4Y);
    let (n1, n) = (n / 365, n % 365);
    year += n100 * 100 + n4 * 4 + n1;
    if n1 == 4 || n100 == 4 {
        return (year - 1, 12, 31);
    }
    let mut month = (n + 50) >> 5;
    let mut preceding = days_before_month(year, month);
    if preceding > n {
        month -= 1;
        preceding -= days_in_month(year, month);
    }
    (year, month, n - preceding + 1)
}

fn iso_week1_monday(year: i64) -> i64 {
    let first_day = ymd_to_ord(year, 1, 1);
    let first_weekday = (first_day + 6) % 7;
    let mut week1_monday = first_day - first_weekday;
    if first_weekday > 3 {
        week1_monday += 7;
    }
    week1_monday
}

/// `iso_to_ymd`; `Err` where C returns non-zero. Year 0 never makes a valid date
/// (the C code computes garbage that `check_date_args` refuses), so it is refused here.
fn iso_to_ymd(year: i64, week: i64, day: i64) -> Result<(i64, i64, i64), ()> {
    if year < 1 {
        return Err(());
    }
    if week <= 0 || week >= 53 {
        let first_weekday = (ymd_to_ord(year, 1, 1) + 6) % 7;
        let ok = week == 53 && (first_weekday == 3 || (first_weekday == 2 && is_leap(year)));
        if !ok {
            return Err(());
        }
    }
    if day <= 0 || day >= 8 {
        return Err(());
    }
    Ok(ord_to_ymd(iso_week1_monday(year) + (week - 1) * 7 + day - 1))
}

/// `_find_isoformat_datetime_separator` (`len` >= 7); -1 for an invalid string.
fn find_separator(b: &Buf<'_>, len: usize) -> isize {
    if len == 7 {
        return 7;
    }
    if b.at(4) == b'-' {
        if b.at(5) == b'W' {
            if len < 8 {
                return -1;
            }
            if len > 8 && b.at(8) == b'-' {
                if len == 9 {
                    return -1;
                }
                if len > 10 && b.at(10).is_ascii_digit() {
                    return 8;
                }
                return 10;
            }
            return 8;
        }
        return 10;
    }
    if b.at(4) == b'W' {
        let mut idx = 7;
        while idx < len && b.at(idx).is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return idx as isize;
        }
        return if idx % 2 == 0 { 7 } else { 8 };
    }
    8
}

/// `parse_isoformat_date` over `b[..len]` (`len` may exceed the string: C passes -1
/// as a `size_t`).
fn parse_date(b: &Buf<'_>, len: usize) -> Result<(i64, i64, i64), ()> {
    let mut year = 0;
    let mut p = b.digits(0, &mut year, 4).ok_or(())?;
    let uses_separator = b.at(p) == b'-';
    if uses_separator {
        p += 1;
    }
    if b.at(p) == b'W' {
        p += 1;
        let mut week = 0;
        p = b.digits(p, &mut week, 2).ok_or(())?;
        let mut day = 0;
        if p < len {
            if uses_separator {
                let c = b.at(p);
                p += 1;
                if c != b'-' {
                    return Err(());
                }
            }
            b.digits(p, &mut day, 1).ok_or(())?;
        } else {
            day = 1;
        }
        return iso_to_ymd(year, week, day);
    }
    let mut month = 0;
    p = b.digits(p, &mut month, 2).ok_or(())?;
    if uses_separator {
        let c = b.at(p);
        p += 1;
        if c != b'-' {
            return Err(());
        }
    }
    let mut day = 0;
    b.digits(p, &mut day, 2).ok_or(())?;
    Ok((year, month, day))
}

/// `parse_hh_mm_ss_ff` from `start` to `end`: (rc, [hour, minute, second, microsecond])
/// with rc < 0 an error, 1 "not at the end of the string", 0 at its end.
fn parse_hh_mm_ss_ff(b: &Buf<'_>, start: usize, end: usize) -> (i32, [i64; 4]) {
    let mut vals = [0i64; 4];
    let mut p = start;
    let mut has_separator = true;
    for i in 0..3 {
        match b.digits(p, &mut vals[i], 2) {
            Some(next) => p = next,
            None => return (-3, vals),
        }
        let c = b.at(p);
        p += 1;
        if i == 0 {
            has_separator = c == b':';
        }
        if p >= end {
            return (i32::from(c != 0), vals);
        } else if has_separator && c == b':' {
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !has_separator {
            p -= 1;
        } else {
            return (-4, vals);
        }
    }
    let to_parse = end.saturating_sub(p).min(6);
    let mut us = 0;
    match b.digits(p, &mut us, to_parse) {
        Some(next) => p = next,
        None => return (-3, vals),
    }
    const CORRECTION: [i64; 5] = [100_000, 10_000, 1_000, 100, 10];
    if to_parse < 6 {
        // to_parse >= 1 here: every path above leaves p < end.
        us *= CORRECTION[to_parse.max(1) - 1];
    }
    vals[3] = us;
    while b.at(p).is_ascii_digit() {
        p += 1;
    }
    (i32::from(b.at(p) != 0), vals)
}

/// `parse_isoformat_time`: (rc, time, tz offset seconds, tz offset microseconds),
/// rc 0 naive, 1 aware, < 0 an error.
fn parse_time(b: &Buf<'_>, start: usize, len: usize) -> (i32, [i64; 4], i64, i64) {
    let p_end = start + len;
    let mut tz = start;
    loop {
        let c = b.at(tz);
        if c == b'Z' || c == b'+' || c == b'-' {
            break;
        }
        tz += 1;
        if tz >= p_end {
            break;
        }
    }
    let (rv, time) = parse_hh_mm_ss_ff(b, start, tz);
    if rv < 0 {
        return (rv, time, 0, 0);
    } else if tz == p_end {
        return (if rv == 1 { -5 } else { 0 }, time, 0, 0);
    }
    if b.at(tz) == b'Z' {
        return (if b.at(tz + 1) != 0 { -5 } else { 1 }, time, 0, 0);
    }
    let sign = if b.at(tz) == b'-' { -1 } else { 1 };
    let (rv, tzv) = parse_hh_mm_ss_ff(b, tz + 1, p_end);
    let offset = sign * (tzv[0] * 3600 + tzv[1] * 60 + tzv[2]);
    (if rv != 0 { -5 } else { 1 }, time, offset, sign * tzv[3])
}

/// `datetime.fromisoformat(s)`; `None` where Python raises `ValueError`.
pub(crate) fn fromisoformat(s: &str) -> Option<PyDateTime> {
    if s.chars().count() < 7 {
        return None;
    }
    let b = Buf(s.as_bytes());
    let len = s.len();
    let sep = find_separator(&b, len);
    if sep < 0 {
        return None;
    }
    let sep = sep as usize;
    let (year, month, day) = parse_date(&b, sep).ok()?;
    let (mut time, mut aware, mut tz_s, mut tz_us) = ([0i64; 4], false, 0, 0);
    if len > sep {
        // Skip the separator, one UTF-8 character of any kind.
        let lead = b.at(sep);
        let p = sep
            + if lead & 0x80 == 0 {
                1
            } else {
                match lead & 0xf0 {
                    0xe0 => 3,
                    0xf0 => 4,
                    _ => 2,
                }
            };
        let (rv, t, s_off, us_off) = parse_time(&b, p, len.checked_sub(p)?);
        if rv < 0 {
            return None;
        }
        (time, aware, tz_s, tz_us) = (t, rv == 1, s_off, us_off);
    }
    // check_date_args, check_time_args
    if !(1..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    let [hour, minute, second, us] = time;
    if !(0..=23).contains(&hour) || !(0..=59).contains(&minute) || !(0..=59).contains(&second) {
        return None;
    }
    if !(0..=999_999).contains(&us) {
        return None;
    }
    // tzinfo_from_isoformat_results: an offset of 0 seconds is UTC (its microseconds
    // ignored); otherwise strictly between -24 h and +24 h.
    let offset_us = if !aware {
        None
    } else if tz_s == 0 {
        Some(0)
    } else {
        let total = tz_s * US_PER_SECOND + tz_us;
        if total <= -US_PER_DAY || total >= US_PER_DAY {
            return None;
        }
        Some(total)
    };
    let days = ymd_to_ord(year, month, day) - 1;
    let local_us = days * US_PER_DAY + ((hour * 60 + minute) * 60 + second) * US_PER_SECOND + us;
    Some(PyDateTime { local_us, offset_us })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (input, Python's result): `None` for ValueError, else (aware, comparable µs).
    pub(crate) fn python_says(s: &str) -> Option<(bool, i64)> {
        fromisoformat(s).map(|d| (d.is_aware(), d.comparable_us()))
    }

    fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> i64 {
        (ymd_to_ord(y, mo, d) - 1) * US_PER_DAY + ((h * 60 + mi) * 60 + s) * US_PER_SECOND + us
    }

    #[test]
    fn the_format_python_writes() {
        let t = utc(2025, 1, 31, 12, 0, 0, 123456);
        assert_eq!(python_says("2025-01-31T12:00:00.123456Z"), Some((true, t)));
        assert_eq!(python_says("2025-01-31T12:00:00.123456+00:00"), Some((true, t)));
        assert_eq!(python_says("2025-01-31T13:30:00.123456+01:30"), Some((true, t)));
        assert_eq!(python_says("2025-01-31 12:00:00.123456"), Some((false, t)));
        assert_eq!(python_says("2025-01-31"), Some((false, utc(2025, 1, 31, 0, 0, 0, 0))));
        assert_eq!(python_says("20250131T120000,5Z"), Some((true, utc(2025, 1, 31, 12, 0, 0, 500000))));
        // ISO week dates: 2025-W05-5 is Friday 2025-01-31.
        assert_eq!(python_says("2025-W05-5"), Some((false, utc(2025, 1, 31, 0, 0, 0, 0))));
        assert_eq!(python_says("2025W055T12"), Some((false, utc(2025, 1, 31, 12, 0, 0, 0))));
        assert_eq!(python_says("0001-01-01"), Some((false, 0)));
    }

    #[test]
    fn what_python_refuses() {
        for s in [
            "",
            "2025-1-31",
            "2025-02-30",
            "2025-13-01",
            "0000-01-01",
            "2025-01-31T24:00",
            "2025-01-31T12:60",
            "2025-01-31T12:00:00Zx",
            "2025-01-31T12:00:00+24:00",
            "2025-01-31T12:00:00+",
            "2025-01-31T",
            "2025-W54",
            "not a time",
            "10000-01-01",
        ] {
            assert_eq!(python_says(s), None, "{s:?}");
        }
    }

    #[test]
    fn naive_and_aware_do_not_compare() {
        let a = fromisoformat("2025-01-31T12:00:00Z").unwrap();
        let n = fromisoformat("2025-01-31T12:00:00").unwrap();
        assert_eq!(a.py_cmp(&n), None);
        let later = fromisoformat("2025-01-31T12:00:00-00:01").unwrap();
        assert_eq!(a.py_cmp(&later), Some(Ordering::Less));
    }
}
