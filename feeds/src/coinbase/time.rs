//! Coinbase's ISO-8601 UTC times (`2021-04-17T16:43:30.244075Z`) to Unix nanoseconds, without
//! allocating and without floating point.
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS` (year 1970 or later), an optional fraction of 1 to 9 digits
//! after a `.`, then `Z`. Coinbase sends microseconds; fewer or more digits (up to
//! nanoseconds) are scaled exactly. Anything else (another offset than `Z`, a day that the
//! month does not have, a leap second, a time past what `u64` nanoseconds hold, in 2554) is
//! refused with `None`. The date becomes a day count with Howard Hinnant's days-from-civil
//! arithmetic (proleptic Gregorian calendar).

/// Nanoseconds since the Unix epoch of `s`, or `None` if it is not a time of the accepted form.
#[inline]
pub fn parse_iso8601_ns(s: &[u8]) -> Option<u64> {
    let head: &[u8; 20] = s.first_chunk::<20>()?;
    // Fixed positions: YYYY-MM-DDTHH:MM:SS then `.` or `Z`.
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let year = digits(&head[0..4])?;
    let month = digits(&head[5..7])?;
    let day = digits(&head[8..10])?;
    let hour = digits(&head[11..13])?;
    let minute = digits(&head[14..16])?;
    let second = digits(&head[17..19])?;
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let nanos = match (head[19], s.get(20..)?) {
        (b'Z', []) => 0,
        (b'.', rest) => fraction_ns(rest)?,
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// The fraction digits `rest` (1 to 9 of them, followed by exactly `Z`) as nanoseconds.
#[inline]
fn fraction_ns(rest: &[u8]) -> Option<u64> {
    let (&z, frac) = rest.split_last()?;
    if z != b'Z' || frac.is_empty() || frac.len() > 9 {
        return None;
    }
    let mut ns = digits(frac)?;
    for _ in frac.len()..9 {
        ns *= 10;
    }
    Some(ns)
}

/// ASCII digits (at most 9) as a number; `None` if any byte is not a digit.
#[inline(always)]
fn digits(b: &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

#[inline]
fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

#[inline]
fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `y-m-d` (`y >= 1970`, `m` in 1..=12, `d` valid for the month).
#[inline]
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    // Years start in March, so the leap day is the last day of the year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400; // 0..=399
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(parse_iso8601_ns(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601_ns(b"1970-01-01T00:00:01.5Z"), Some(S + S / 2));
        // The capture's first ticker time; `date -u -d 2021-04-17T16:43:30Z +%s` = 1618677810.
        assert_eq!(
            parse_iso8601_ns(b"2021-04-17T16:43:30.244075Z"),
            Some(1_618_677_810 * S + 244_075_000)
        );
        // Coinbase's documented heartbeat time.
        assert_eq!(
            parse_iso8601_ns(b"2014-11-07T08:19:28.464459Z"),
            Some(1_415_348_368 * S + 464_459_000)
        );
        assert_eq!(
            parse_iso8601_ns(b"2000-02-29T23:59:59.123456789Z"),
            Some(951_868_799 * S + 123_456_789)
        );
        assert_eq!(
            parse_iso8601_ns(b"2024-03-01T00:00:00Z"),
            Some(1_709_251_200 * S)
        );
    }

    /// Every day from 1970 to 2400 against a plain day-by-day count.
    #[test]
    fn day_count_matches_a_walk() {
        let mut days = 0u64;
        for y in 1970..2400 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_utc_time() {
        for bad in [
            &b""[..],
            b"2021-04-17T16:43:30",
            b"2021-04-17T16:43:30.Z",
            b"2021-04-17T16:43:30.1234567890Z",
            b"2021-04-17T16:43:30+00:00",
            b"2021-04-17T16:43:30.24Zx",
            b"2021-04-17 16:43:30Z",
            b"2021-02-29T00:00:00Z",
            b"1900-02-29T00:00:00Z",
            b"1969-12-31T23:59:59Z",
            b"2021-13-01T00:00:00Z",
            b"2021-00-01T00:00:00Z",
            b"2021-04-00T00:00:00Z",
            b"2021-04-31T00:00:00Z",
            b"2021-04-17T24:00:00Z",
            b"2021-04-17T16:60:00Z",
            b"2021-04-17T16:43:60Z",
            b"2021-04-17T16:43:3aZ",
            b"+021-04-17T16:43:30Z",
            b"9999-12-31T23:59:59Z",
            "2021-04-17T16:43:30.２Z".as_bytes(),
        ] {
            assert_eq!(
                parse_iso8601_ns(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The last instant u64 nanoseconds hold is in 2554.
        assert!(parse_iso8601_ns(b"2554-07-21T23:34:33Z").is_some());
        assert_eq!(parse_iso8601_ns(b"2554-07-21T23:34:34Z"), None);
    }
}
