//! Venues: which exchange (and which of its markets) an instrument trades on.
//!
//! A [`Venue`] is one market of one exchange with its own instrument namespace: `BTCUSDT` on
//! Binance spot and `BTCUSDT` on Binance USD-M futures are different instruments, and so are
//! Bybit's spot and linear `BTCUSDT`. Symbols are interned per venue
//! ([`SymbolTable::intern_on`](crate::symbol::SymbolTable::intern_on)), so a
//! [`SymbolId`](crate::symbol::SymbolId) names one venue's instrument and every event carries its
//! venue through its symbol ([`SymbolTable::venue`](crate::symbol::SymbolTable::venue)).
//!
//! The names are the ones routing channels use (`book.okx.BTC-USDT`, `trade.binance.BTCUSDT`)
//! and the ones `--venue` and the config take. They never change.

use core::fmt;

/// One exchange market with its own instrument namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Venue {
    /// Binance spot (`binance`), the engine's first venue and the default.
    #[default]
    Binance = 0,
    /// Binance USD-M futures (`binance-usdm`).
    BinanceUsdm = 1,
    /// Coinbase Exchange (`coinbase`).
    Coinbase = 2,
    /// OKX v5, every instrument type on the public channel (`okx`).
    Okx = 3,
    /// Bybit v5 spot (`bybit-spot`).
    BybitSpot = 4,
    /// Bybit v5 USDT/USDC linear contracts (`bybit-linear`).
    BybitLinear = 5,
}

impl Venue {
    /// Number of venues.
    pub const COUNT: usize = 6;

    /// Every venue, in [`Venue::index`] order.
    pub const ALL: [Venue; Venue::COUNT] = [
        Venue::Binance,
        Venue::BinanceUsdm,
        Venue::Coinbase,
        Venue::Okx,
        Venue::BybitSpot,
        Venue::BybitLinear,
    ];

    /// Dense index, `0..COUNT`.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True if the venue sends its book's snapshots on the socket, in the stream with the
    /// deltas (OKX `books`, Bybit `orderbook.N`, Coinbase `level2`), so a snapshot supersedes
    /// every delta that arrived before it, whatever their ids; false for a venue whose snapshot
    /// is fetched over REST and bridged to buffered diffs by id (Binance spot and USD-M). The
    /// venue adapters' book sync agrees (a test in `feeds` checks it).
    pub const fn snapshots_in_stream(self) -> bool {
        match self {
            Venue::Binance | Venue::BinanceUsdm => false,
            Venue::Coinbase | Venue::Okx | Venue::BybitSpot | Venue::BybitLinear => true,
        }
    }

    /// The stable name (channels, config, `--venue`, JSON keys).
    pub const fn name(self) -> &'static str {
        match self {
            Venue::Binance => "binance",
            Venue::BinanceUsdm => "binance-usdm",
            Venue::Coinbase => "coinbase",
            Venue::Okx => "okx",
            Venue::BybitSpot => "bybit-spot",
            Venue::BybitLinear => "bybit-linear",
        }
    }

    /// The venue named `s` (exactly one of [`Venue::name`]'s names, ASCII case ignored).
    pub fn parse(s: &str) -> Option<Venue> {
        Venue::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
    }

    /// Whether `b` may appear in this venue's instrument names (upper-cased). Binance and Bybit
    /// use `[A-Z0-9]` (`BTCUSDT`); Coinbase and OKX also `-` (`BTC-USD`, `BTC-USD-SWAP`).
    pub const fn symbol_byte_ok(self, b: u8) -> bool {
        b.is_ascii_uppercase()
            || b.is_ascii_digit()
            || (b == b'-' && matches!(self, Venue::Coinbase | Venue::Okx))
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every venue name, comma-separated (for error messages).
pub fn names() -> String {
    Venue::ALL.map(Venue::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for v in Venue::ALL {
            assert_eq!(Venue::parse(v.name()), Some(v));
            assert_eq!(Venue::parse(&v.name().to_ascii_uppercase()), Some(v));
            assert_eq!(Venue::ALL[v.index()], v);
        }
        assert_eq!(Venue::parse("bybit"), None);
        assert_eq!(Venue::parse(""), None);
        assert_eq!(names().matches(',').count(), Venue::COUNT - 1);
    }

    #[test]
    fn dashes_only_where_the_venue_uses_them() {
        assert!(Venue::Okx.symbol_byte_ok(b'-'));
        assert!(Venue::Coinbase.symbol_byte_ok(b'-'));
        assert!(!Venue::Binance.symbol_byte_ok(b'-'));
        assert!(!Venue::BybitLinear.symbol_byte_ok(b'-'));
        assert!(!Venue::Okx.symbol_byte_ok(b'a'));
    }
}
