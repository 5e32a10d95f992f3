//! Venue book checksums, recomputed over the engine's own book and compared with the one the
//! venue sent ([`crate::event::BookChecksum`]).
//!
//! **OKX** (`books` channel, v5): CRC32 (IEEE, as `zlib.crc32`) of the string
//! `bid1px:bid1sz:ask1px:ask1sz:bid2px:bid2sz:...` over the best 25 levels of each side,
//! interleaved best first; when one side has fewer levels, the other side's remaining levels
//! follow alone. The CRC is compared as a signed 32-bit integer (the `checksum` field), i.e. bit
//! for bit as a `u32`. Prices and sizes must read exactly as OKX sends them: the engine keeps
//! them as 1e-8 fixed-point integers, and [`write_fixed`] writes them back in the shortest form
//! (`30261`, `0.06523858`, `1.2112`: no trailing zeros, no trailing dot), which is how OKX writes
//! them (the real capture's test, `feeds/tests/okx_capture.rs`, checks every checksum it carries
//! this way).
//!
//! **Cost.** No allocation: the text is formatted into a small stack buffer that is fed to
//! [`crc32fast::Hasher`] whenever it fills, never built as a string.

use crate::book::{Level, OrderBook};
use crate::fixed::SCALE;

/// Levels per side that OKX's checksum covers.
pub const OKX_DEPTH: usize = 25;

/// Longest text [`write_fixed`] produces: a sign, 19 integer digits, a dot, 8 decimals.
pub const FIXED_TEXT_MAX: usize = 29;

/// Writes `units` (1e-8 fixed point) in the shortest decimal form (no trailing zeros in the
/// fraction, no dot for a whole number) into `buf`, returning the used part.
#[inline]
pub fn write_fixed(units: i64, buf: &mut [u8; 32]) -> &[u8] {
    let scale = SCALE as u64;
    let abs = units.unsigned_abs();
    let (mut int, mut frac) = (abs / scale, abs % scale);
    // Integer part, right to left into the front of a scratch area.
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        if let Some(d) = digits.get_mut(n) {
            *d = b'0' + (int % 10) as u8;
        }
        n += 1;
        int /= 10;
        if int == 0 || n == digits.len() {
            break;
        }
    }
    let mut len = 0;
    let mut put = |b: u8, len: &mut usize| {
        if let Some(slot) = buf.get_mut(*len) {
            *slot = b;
        }
        *len += 1;
    };
    if units < 0 {
        put(b'-', &mut len);
    }
    for i in (0..n).rev() {
        put(digits.get(i).copied().unwrap_or(b'0'), &mut len);
    }
    if frac != 0 {
        put(b'.', &mut len);
        let mut width = 8;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        let mut div = 10u64.pow(width - 1);
        for _ in 0..width {
            put(b'0' + ((frac / div) % 10) as u8, &mut len);
            div /= 10;
        }
    }
    buf.get(..len).unwrap_or_default()
}

/// Feeds text to a CRC32 through a stack buffer.
struct CrcText {
    hasher: crc32fast::Hasher,
    buf: [u8; 512],
    len: usize,
    first: bool,
}

impl CrcText {
    fn new() -> Self {
        CrcText {
            hasher: crc32fast::Hasher::new(),
            buf: [0; 512],
            len: 0,
            first: true,
        }
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.flush();
        }
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            // Longer than the whole buffer (never: a field is at most FIXED_TEXT_MAX bytes).
            None => self.hasher.update(bytes),
        }
    }

    /// One `px:sz` pair, with a `:` before it unless it is the first.
    #[inline]
    fn level(&mut self, l: Level) {
        let mut tmp = [0u8; 32];
        if !self.first {
            self.push(b":");
        }
        self.first = false;
        self.push(write_fixed(l.price.0, &mut tmp));
        self.push(b":");
        self.push(write_fixed(l.qty.0, &mut tmp));
    }

    fn flush(&mut self) {
        self.hasher
            .update(self.buf.get(..self.len).unwrap_or_default());
        self.len = 0;
    }

    fn finish(mut self) -> u32 {
        self.flush();
        self.hasher.finalize()
    }
}

/// OKX's checksum of a book given as its bids and asks, each best first (only the first
/// [`OKX_DEPTH`] of each are read). Compare with the `checksum` field as `field as u32`.
pub fn okx_checksum(bids: impl Iterator<Item = Level>, asks: impl Iterator<Item = Level>) -> u32 {
    let mut text = CrcText::new();
    let mut bids = bids.take(OKX_DEPTH);
    let mut asks = asks.take(OKX_DEPTH);
    loop {
        let (b, a) = (bids.next(), asks.next());
        if b.is_none() && a.is_none() {
            break;
        }
        if let Some(b) = b {
            text.level(b);
        }
        if let Some(a) = a {
            text.level(a);
        }
    }
    text.finish()
}

/// OKX's checksum of `book` (empty unless the book is synced: the read API shows nothing else).
#[inline]
pub fn okx_book_checksum(book: &OrderBook) -> u32 {
    okx_checksum(book.bids(), book.asks())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::{Price, Qty};

    fn text(units: i64) -> String {
        let mut b = [0u8; 32];
        String::from_utf8(write_fixed(units, &mut b).to_vec()).unwrap()
    }

    fn lv(px: &str, sz: &str) -> Level {
        Level {
            price: Price::parse(px.as_bytes()).unwrap(),
            qty: Qty::parse(sz.as_bytes()).unwrap(),
        }
    }

    #[test]
    fn fixed_text_is_shortest() {
        assert_eq!(text(0), "0");
        assert_eq!(text(3_026_100_000_000), "30261");
        assert_eq!(text(3_024_350_000_000), "30243.5");
        assert_eq!(text(6_523_858), "0.06523858");
        assert_eq!(text(121_120_000), "1.2112");
        assert_eq!(text(1), "0.00000001");
        assert_eq!(text(10), "0.0000001");
        assert_eq!(text(-150_000_000), "-1.5");
        assert_eq!(text(i64::MAX), "92233720368.54775807");
        assert_eq!(text(i64::MIN), "-92233720368.54775808");
        for s in ["0.1", "100", "7", "3366.8", "0.0002", "12345678.12345678"] {
            assert_eq!(text(crate::fixed::parse_fixed(s.as_bytes()).unwrap()), s);
        }
    }

    /// The two examples of OKX's (OKEx v3) checksum documentation: even and odd level counts.
    #[test]
    fn okx_documented_examples() {
        let bids = [lv("3366.1", "7"), lv("3366", "6")];
        let asks = [lv("3366.8", "9"), lv("3368", "8")];
        let c = okx_checksum(bids.into_iter(), asks.into_iter());
        assert_eq!(c as i32, -1_881_014_294);
        let bids = [lv("3366.1", "7")];
        let asks = [lv("3366.8", "9"), lv("3368", "8"), lv("3372", "8")];
        let c = okx_checksum(bids.into_iter(), asks.into_iter());
        assert_eq!(c as i32, 831_078_360);
    }

    #[test]
    fn only_the_top_25_count_and_the_text_matches_a_string_crc() {
        let bids: Vec<Level> = (0..40)
            .map(|i| lv(&format!("{}", 1000 - i), &format!("{}.25", i + 1)))
            .collect();
        let asks: Vec<Level> = (0..30)
            .map(|i| lv(&format!("{}.5", 1000 + i), &format!("{}", i + 2)))
            .collect();
        let mut parts = Vec::new();
        for i in 0..25 {
            parts.push(format!("{}:{}.25", 1000 - i, i + 1));
            parts.push(format!("{}.5:{}", 1000 + i, i + 2));
        }
        let want = crc32fast::hash(parts.join(":").as_bytes());
        assert_eq!(okx_checksum(bids.into_iter(), asks.into_iter()), want);
        assert_eq!(okx_checksum([].into_iter(), [].into_iter()), 0);
    }
}
