//! Fixed-point decimals: prices and quantities as integer ticks of 1e-8.
//!
//! Binance sends every price and quantity as a decimal string with at most eight fractional digits
//! (`"61837.63000000"`). They are parsed straight into `i64` units of 1e-8, never through `f64`, so
//! `0.1 + 0.2` is exactly `0.3` here. A string with more precision than the scale can hold is an
//! error unless the extra digits are zeros: nothing is ever rounded silently.

use core::fmt;

/// Fractional digits kept by every [`Price`] and [`Qty`].
pub const DECIMALS: u32 = 8;
/// Units per whole: 10^[`DECIMALS`].
pub const SCALE: i64 = 100_000_000;

/// Why a decimal string could not become a fixed-point value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedError {
    /// The string was empty (or only a sign).
    Empty,
    /// A byte that is not a digit, or a misplaced sign or point, at this offset.
    InvalidByte(usize),
    /// A non-zero digit beyond the 8th fractional place.
    TooPrecise,
    /// The value does not fit in an `i64` of 1e-8 units (|x| > ~92 billion).
    Overflow,
}

impl fmt::Display for FixedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FixedError::Empty => f.write_str("empty decimal"),
            FixedError::InvalidByte(at) => write!(f, "invalid byte at offset {at} in decimal"),
            FixedError::TooPrecise => {
                write!(f, "more than {DECIMALS} significant fractional digits")
            }
            FixedError::Overflow => f.write_str("decimal out of range"),
        }
    }
}

impl std::error::Error for FixedError {}

/// Parses an ASCII decimal (`-?digits(.digits)?`) into units of 1e-8.
///
/// Accepts what Binance sends and nothing looser: no exponent, no leading `+`, no bare `.5` or `5.`.
#[inline]
pub fn parse_fixed(s: &[u8]) -> Result<i64, FixedError> {
    // Fast path: at most 18 significant digits (every Binance price and quantity) cannot
    // overflow a u64 accumulator, so the digits need no checked arithmetic.
    if s.len() <= 19 {
        if let Some(v) = parse_short(s) {
            return Ok(v);
        }
    }
    parse_checked(s)
}

/// Unsigned `digits(.digits)?` of at most 18 digits with at most 8 decimals; `None` for anything
/// else (the checked parser then gives the precise error or handles the longer form).
#[inline(always)]
fn parse_short(s: &[u8]) -> Option<i64> {
    if let Some(v) = parse_eight_decimals(s) {
        return Some(v);
    }
    let mut acc: u64 = 0;
    let mut i = 0;
    while i < s.len() {
        let d = s[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        acc = acc * 10 + d as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac = 0usize;
    if i < s.len() {
        if s[i] != b'.' {
            return None;
        }
        i += 1;
        let start = i;
        while i < s.len() {
            let d = s[i].wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            acc = acc * 10 + d as u64;
            i += 1;
        }
        frac = i - start;
        if frac == 0 || frac > DECIMALS as usize {
            return None;
        }
    }
    // acc < 10^18 here, and acc * 10^(8 - frac) must fit an i64.
    let v = acc.checked_mul(POW10[DECIMALS as usize - frac] as u64)?;
    i64::try_from(v).ok()
}

/// `digits.dddddddd`: 1 to 10 integer digits and exactly 8 decimals, the way Binance writes
/// every price and quantity. The 8 decimals are converted in one word (SWAR, as in Lemire's
/// "Quickly parsing eight digits") instead of one multiply-add per byte; `None` for any other
/// form. At most 10 integer digits keep the result below 10^18, so nothing can overflow.
#[inline(always)]
fn parse_eight_decimals(s: &[u8]) -> Option<i64> {
    match parse_eight_decimals_prefix(s)? {
        (v, n) if n == s.len() => Some(v),
        _ => None,
    }
}

/// The form [`parse_fixed`]'s fast path takes, `digits.dddddddd` (1 to 10 integer digits,
/// exactly 8 decimals), at the start of `s`, whatever follows it: the value in units of 1e-8
/// and the bytes it took. For a decoder that reads a quoted decimal in the same pass that finds
/// its end: the value is [`parse_fixed`]'s for those bytes; `None` for any other form (the
/// decoder then finds the string's end and parses it the general way).
#[inline(always)]
pub fn parse_eight_decimals_prefix(s: &[u8]) -> Option<(i64, usize)> {
    let mut acc: u64 = 0;
    let mut i = 0;
    // At most 10 integer digits keep the result below 10^18 (an 11th ends the loop and fails).
    while i <= 10 {
        let d = match s.get(i) {
            Some(b) => b.wrapping_sub(b'0'),
            None => break,
        };
        if d > 9 {
            break;
        }
        acc = acc * 10 + d as u64;
        i += 1;
    }
    if i == 0 || i > 10 || s.get(i) != Some(&b'.') {
        return None;
    }
    let frac = s.get(i + 1..i + 9)?;
    let frac = eight_digits(u64::from_le_bytes(frac.try_into().ok()?))?;
    Some(((acc * SCALE as u64 + frac) as i64, i + 9))
}

/// The value of 8 ASCII digits loaded little-endian (the first digit in the lowest byte), or
/// `None` if any byte is not a digit.
#[inline(always)]
fn eight_digits(v: u64) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // Every byte 0x30..=0x3F, and still so after adding 6 (so 0x30..=0x39): no byte can carry.
    if v & HIGH != ZEROS || v.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    let v = v - ZEROS;
    // Pairs: byte 2k becomes 10 * digit 2k + digit 2k+1 (at most 99, so no carry).
    let v = v * 10 + (v >> 8);
    // Then pairs of pairs and the two halves, in two multiplications whose wanted sum lands in
    // the upper 32 bits (the products wrap by design; what wraps is discarded).
    let v = (v & 0x0000_00FF_0000_00FF)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some(v)
}

#[cold]
fn parse_checked(s: &[u8]) -> Result<i64, FixedError> {
    let (neg, digits) = match s.first() {
        None => return Err(FixedError::Empty),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    if digits.is_empty() {
        return Err(FixedError::Empty);
    }
    let base = s.len() - digits.len();
    // Accumulate as a negative number so i64::MIN units stay representable.
    let mut acc: i64 = 0;
    let mut i = 0;
    while i < digits.len() {
        let b = digits[i];
        if b == b'.' {
            break;
        }
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(FixedError::InvalidByte(base + i));
        }
        acc = acc
            .checked_mul(10)
            .and_then(|v| v.checked_sub(d as i64))
            .ok_or(FixedError::Overflow)?;
        i += 1;
    }
    if i == 0 {
        return Err(FixedError::InvalidByte(base));
    }
    let mut frac_digits = 0u32;
    if i < digits.len() {
        // digits[i] == b'.'
        let point = i;
        i += 1;
        if i == digits.len() {
            return Err(FixedError::InvalidByte(base + point));
        }
        while i < digits.len() {
            let d = digits[i].wrapping_sub(b'0');
            if d > 9 {
                return Err(FixedError::InvalidByte(base + i));
            }
            if frac_digits < DECIMALS {
                acc = acc
                    .checked_mul(10)
                    .and_then(|v| v.checked_sub(d as i64))
                    .ok_or(FixedError::Overflow)?;
                frac_digits += 1;
            } else if d != 0 {
                return Err(FixedError::TooPrecise);
            }
            i += 1;
        }
    }
    acc = acc
        .checked_mul(POW10[(DECIMALS - frac_digits) as usize])
        .ok_or(FixedError::Overflow)?;
    if neg {
        Ok(acc)
    } else {
        acc.checked_neg().ok_or(FixedError::Overflow)
    }
}

const POW10: [i64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Writes `units` (1e-8) as a decimal with all eight fractional digits, as Binance does.
pub fn fmt_fixed(units: i64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let scale = SCALE as u64;
    write!(f, "{sign}{}.{:08}", abs / scale, abs % scale)
}

macro_rules! fixed_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl $name {
            /// Zero.
            pub const ZERO: Self = Self(0);

            /// Parses a decimal string; see [`parse_fixed`].
            #[inline]
            pub fn parse(s: &[u8]) -> Result<Self, FixedError> {
                parse_fixed(s).map(Self)
            }

            /// Whole units (for example `1` for 1.0).
            pub const fn from_int(n: i64) -> Self {
                Self(n * SCALE)
            }

            /// Lossy conversion for display and reports only; never used on a decision path.
            pub fn to_f64(self) -> f64 {
                self.0 as f64 / SCALE as f64
            }

            /// Raw 1e-8 units.
            pub const fn units(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_fixed(self.0, f)
            }
        }
    };
}

fixed_type!(
    /// A price in 1e-8 units of the quote asset.
    Price
);
fixed_type!(
    /// A quantity in 1e-8 units of the base asset.
    Qty
);

/// Quote-asset amount (price x quantity), in 1e-8 units, kept in `i128` so products never overflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Notional(pub i128);

impl Notional {
    /// `price * qty`, exact to 1e-8 (truncated toward zero below that).
    #[inline]
    pub fn of(price: Price, qty: Qty) -> Self {
        Notional(price.0 as i128 * qty.0 as i128 / SCALE as i128)
    }

    /// Lossy conversion for display and reports.
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }
}

impl Price {
    /// Rounds down to a multiple of `tick` (a positive price increment, e.g. 0.01).
    pub fn floor_to(self, tick: Price) -> Price {
        if tick.0 <= 0 {
            return self;
        }
        Price(self.0.div_euclid(tick.0) * tick.0)
    }

    /// This price scaled by `(1 + bps / 10_000)`, rounded down to `tick`.
    pub fn offset_bps(self, bps: i64, tick: Price) -> Price {
        let scaled = self.0 as i128 * (10_000 + bps as i128) / 10_000;
        Price(scaled.clamp(i64::MIN as i128, i64::MAX as i128) as i64).floor_to(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binance_strings() {
        assert_eq!(parse_fixed(b"61837.63000000"), Ok(6_183_763_000_000));
        assert_eq!(parse_fixed(b"0.00000001"), Ok(1));
        assert_eq!(parse_fixed(b"0.00000000"), Ok(0));
        assert_eq!(parse_fixed(b"12"), Ok(1_200_000_000));
        assert_eq!(parse_fixed(b"-1.5"), Ok(-150_000_000));
        assert_eq!(parse_fixed(b"0.1"), Ok(10_000_000));
        // Exact: 0.1 + 0.2 == 0.3.
        assert_eq!(
            parse_fixed(b"0.1").unwrap() + parse_fixed(b"0.2").unwrap(),
            parse_fixed(b"0.3").unwrap()
        );
    }

    #[test]
    fn extra_zero_digits_are_fine_but_precision_is_never_dropped() {
        assert_eq!(parse_fixed(b"1.0000000000000"), Ok(SCALE));
        assert_eq!(parse_fixed(b"0.000000001"), Err(FixedError::TooPrecise));
        assert_eq!(parse_fixed(b"0.123456789"), Err(FixedError::TooPrecise));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_fixed(b""), Err(FixedError::Empty));
        assert_eq!(parse_fixed(b"-"), Err(FixedError::Empty));
        assert_eq!(parse_fixed(b".5"), Err(FixedError::InvalidByte(0)));
        assert_eq!(parse_fixed(b"5."), Err(FixedError::InvalidByte(1)));
        assert_eq!(parse_fixed(b"1e5"), Err(FixedError::InvalidByte(1)));
        assert_eq!(parse_fixed(b"+1"), Err(FixedError::InvalidByte(0)));
        assert_eq!(parse_fixed(b"1.2.3"), Err(FixedError::InvalidByte(3)));
        assert_eq!(parse_fixed(b"--1"), Err(FixedError::InvalidByte(1)));
        assert_eq!(parse_fixed(b" 1"), Err(FixedError::InvalidByte(0)));
    }

    #[test]
    fn range_edges() {
        // i64::MAX units = 92233720368.54775807
        assert_eq!(parse_fixed(b"92233720368.54775807"), Ok(i64::MAX));
        assert_eq!(
            parse_fixed(b"92233720368.54775808"),
            Err(FixedError::Overflow)
        );
        assert_eq!(parse_fixed(b"-92233720368.54775808"), Ok(i64::MIN));
        assert_eq!(
            parse_fixed(b"-92233720368.54775809"),
            Err(FixedError::Overflow)
        );
        assert_eq!(
            parse_fixed(b"99999999999999999999999999999999"),
            Err(FixedError::Overflow)
        );
        assert_eq!(parse_fixed(b"100000000000"), Err(FixedError::Overflow));
    }

    #[test]
    fn eight_decimals_agree_with_the_checked_parser() {
        let mut rng = crate::test_rng::Rng(0x1234_5678_9ABC_DEF0);
        let mut next = || rng.next();
        // `int.frac` with exactly 8 decimals, now and then a byte just outside the digits
        // (`/` and `:` border them), a sign or a point in the wrong place.
        let alphabet = b"01234567890123456789012345678901234567890123456789/:.-";
        for _ in 0..300_000 {
            let int_len = 1 + (next() % 12) as usize;
            let mut s: Vec<u8> = (0..int_len)
                .map(|_| alphabet[(next() % 40) as usize])
                .collect();
            s.push(b'.');
            s.extend((0..8).map(|_| alphabet[(next() % 40) as usize]));
            if next().is_multiple_of(4) {
                let at = (next() % s.len() as u64) as usize;
                s[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            assert_eq!(
                parse_fixed(&s),
                parse_checked(&s),
                "{:?}",
                String::from_utf8_lossy(&s)
            );
            // The prefix form, as a decoder meets it (the string, its closing quote, more) and
            // takes it (only when the closing quote follows).
            let mut quoted = s.clone();
            quoted.extend_from_slice(b"\",\"");
            match parse_eight_decimals_prefix(&quoted).filter(|&(_, n)| quoted[n] == b'"') {
                Some((v, n)) => {
                    assert_eq!(n, s.len(), "{:?}", String::from_utf8_lossy(&s));
                    assert_eq!(
                        parse_checked(&s),
                        Ok(v),
                        "{:?}",
                        String::from_utf8_lossy(&s)
                    );
                }
                None => assert_eq!(parse_eight_decimals(&s), None),
            }
        }
        assert_eq!(parse_eight_decimals_prefix(b"12345678901.00000000\""), None);
        assert_eq!(parse_eight_decimals_prefix(b"1.0000000\""), None);
        assert_eq!(
            parse_eight_decimals_prefix(b"1.000000001\""),
            Some((100_000_000, 10)),
            "the prefix stops after 8 decimals: the decoder's quote check refuses the 9th"
        );
        for (s, v) in [
            ("61837.63000000", 6_183_763_000_000),
            ("0.00000001", 1),
            ("9999999999.99999999", 999_999_999_999_999_999),
            ("0000000000.00000000", 0),
        ] {
            assert_eq!(parse_eight_decimals(s.as_bytes()), Some(v), "{s}");
            assert_eq!(parse_checked(s.as_bytes()), Ok(v), "{s}");
        }
        assert_eq!(
            eight_digits(u64::from_le_bytes(*b"12345678")),
            Some(12_345_678)
        );
        assert_eq!(eight_digits(u64::from_le_bytes(*b"1234567:")), None);
        assert_eq!(eight_digits(u64::from_le_bytes(*b"/2345678")), None);
    }

    #[test]
    fn fast_path_agrees_with_the_checked_parser() {
        // splitmix64-driven strings over the alphabet that matters, of every length to 22.
        let mut rng = crate::test_rng::Rng(0x9E37_79B9_7F4A_7C15);
        let mut next = || rng.next();
        let alphabet = b"0123456789012345678901234567890123456789.-x";
        for _ in 0..200_000 {
            let len = (next() % 23) as usize;
            let s: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(
                parse_fixed(&s),
                parse_checked(&s),
                "{:?}",
                String::from_utf8_lossy(&s)
            );
        }
        for s in [
            "999999999999999999",
            "92233720368.54775807",
            "9223372036854775807",
            "0.12345678",
        ] {
            assert_eq!(
                parse_fixed(s.as_bytes()),
                parse_checked(s.as_bytes()),
                "{s}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["61837.63000000", "0.00000001", "-1.50000000", "0.00000000"] {
            let p = Price::parse(s.as_bytes()).unwrap();
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn notional_and_ticks() {
        let p = Price::parse(b"61837.63").unwrap();
        let q = Qty::parse(b"0.02").unwrap();
        assert_eq!(Notional::of(p, q).0, 123_675_260_000); // 1236.7526
        let tick = Price::parse(b"0.01").unwrap();
        assert_eq!(
            Price::parse(b"1.239").unwrap().floor_to(tick),
            Price::parse(b"1.23").unwrap()
        );
        assert_eq!(
            Price::parse(b"100").unwrap().offset_bps(12, tick),
            Price::parse(b"100.12").unwrap()
        );
    }
}
