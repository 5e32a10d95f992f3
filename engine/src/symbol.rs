//! Interned symbols: `"BTCUSDT"` on a venue becomes a dense [`SymbolId`] once, at start-up.
//!
//! Symbols are interned per [`Venue`]: `BTCUSDT` on Binance spot and `BTCUSDT` on Binance USD-M
//! futures get different ids, and an id's venue is [`SymbolTable::venue`]. [`SymbolTable::intern`]
//! and [`SymbolTable::lookup`] are shorthands for Binance spot, the engine's first venue.
//!
//! The table is built before any thread starts and is read-only afterwards, so the I/O threads and
//! the core can each hold a clone. Lookup is a linear scan over short fixed-size names: with the
//! handful of symbols one engine trades, that beats hashing and never allocates.

use crate::venue::Venue;
use core::fmt;

/// Longest symbol name the table stores (Binance's longest spot symbols are well under this).
pub const MAX_SYMBOL_LEN: usize = 20;

/// Dense index of an interned symbol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SymbolId(pub u32);

impl SymbolId {
    /// "Every symbol on this ring": used by events about a whole connection or ring.
    pub const ALL: SymbolId = SymbolId(u32::MAX);

    /// The index as `usize`, for per-symbol arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why a symbol could not be interned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymbolError {
    /// Empty, too long, or a character the venue does not use (`[A-Z0-9]`, plus `-` on
    /// Coinbase and OKX).
    BadName(String),
}

impl fmt::Display for SymbolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymbolError::BadName(n) => write!(
                f,
                "bad symbol {n:?}: expected 1..={MAX_SYMBOL_LEN} characters of A-Z and 0-9 \
                 (and `-` on coinbase and okx)"
            ),
        }
    }
}

impl std::error::Error for SymbolError {}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Name {
    venue: Venue,
    len: u8,
    bytes: [u8; MAX_SYMBOL_LEN],
}

impl Name {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Whether this is `venue`'s `name`, ignoring ASCII case. Names are kept upper-case and
    /// most venues send them so, so an exact comparison comes before the case fold.
    #[inline]
    fn is(&self, venue: Venue, name: &[u8]) -> bool {
        if self.venue != venue || self.len as usize != name.len() {
            return false;
        }
        let mine = self.as_bytes();
        mine == name || mine.eq_ignore_ascii_case(name)
    }
}

/// The interned symbols of one engine.
#[derive(Clone, Default)]
pub struct SymbolTable {
    names: Vec<Name>,
}

impl fmt::Debug for SymbolTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|(_, n)| n)).finish()
    }
}

impl SymbolTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interns Binance spot's `name`: [`intern_on`](Self::intern_on)`(Venue::Binance, name)`.
    pub fn intern(&mut self, name: &str) -> Result<SymbolId, SymbolError> {
        self.intern_on(Venue::Binance, name)
    }

    /// Interns `name` on `venue` (upper-cased; `btcusdt` and `BTCUSDT` are one symbol) and
    /// returns its id. The same name on two venues is two symbols.
    pub fn intern_on(&mut self, venue: Venue, name: &str) -> Result<SymbolId, SymbolError> {
        let upper = name.to_ascii_uppercase();
        if upper.is_empty()
            || upper.len() > MAX_SYMBOL_LEN
            || !upper.bytes().all(|b| venue.symbol_byte_ok(b))
        {
            return Err(SymbolError::BadName(name.to_string()));
        }
        if let Some(id) = self.lookup_on(venue, upper.as_bytes()) {
            return Ok(id);
        }
        let mut bytes = [0u8; MAX_SYMBOL_LEN];
        bytes[..upper.len()].copy_from_slice(upper.as_bytes());
        self.names.push(Name {
            venue,
            len: upper.len() as u8,
            bytes,
        });
        Ok(SymbolId((self.names.len() - 1) as u32))
    }

    /// Finds a Binance spot symbol by its name as sent on the wire:
    /// [`lookup_on`](Self::lookup_on)`(Venue::Binance, name)`.
    #[inline]
    pub fn lookup(&self, name: &[u8]) -> Option<SymbolId> {
        self.lookup_on(Venue::Binance, name)
    }

    /// Finds `venue`'s symbol by its name as sent on the wire, ignoring ASCII case. Never
    /// allocates.
    #[inline]
    pub fn lookup_on(&self, venue: Venue, name: &[u8]) -> Option<SymbolId> {
        self.names
            .iter()
            .position(|n| n.is(venue, name))
            .map(|i| SymbolId(i as u32))
    }

    /// The venue of `id`, if interned.
    #[inline]
    pub fn venue(&self, id: SymbolId) -> Option<Venue> {
        self.names.get(id.index()).map(|n| n.venue)
    }

    /// Whether any symbol is interned on `venue`.
    pub fn has_venue(&self, venue: Venue) -> bool {
        self.names.iter().any(|n| n.venue == venue)
    }

    /// The upper-case name of `id`, if interned.
    pub fn name(&self, id: SymbolId) -> Option<&str> {
        self.names
            .get(id.index())
            .and_then(|n| core::str::from_utf8(n.as_bytes()).ok())
    }

    /// Number of interned symbols.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every `(id, venue, name)` in id order.
    pub fn iter_venues(&self) -> impl Iterator<Item = (SymbolId, Venue, &str)> {
        self.names.iter().enumerate().map(|(i, n)| {
            (
                SymbolId(i as u32),
                n.venue,
                core::str::from_utf8(n.as_bytes()).unwrap_or("?"),
            )
        })
    }

    /// Every `(id, name)` in id order.
    pub fn iter(&self) -> impl Iterator<Item = (SymbolId, &str)> {
        self.names.iter().enumerate().map(|(i, n)| {
            (
                SymbolId(i as u32),
                core::str::from_utf8(n.as_bytes()).unwrap_or("?"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once_case_insensitively() {
        let mut t = SymbolTable::new();
        let a = t.intern("BTCUSDT").unwrap();
        let b = t.intern("ethusdt").unwrap();
        assert_eq!(t.intern("btcusdt").unwrap(), a);
        assert_ne!(a, b);
        assert_eq!(t.lookup(b"ETHUSDT"), Some(b));
        assert_eq!(t.lookup(b"ethusdt"), Some(b));
        assert_eq!(t.lookup(b"XRPUSDT"), None);
        assert_eq!(t.name(b), Some("ETHUSDT"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn rejects_bad_names() {
        let mut t = SymbolTable::new();
        assert!(t.intern("").is_err());
        assert!(t.intern("BTC-USDT").is_err());
        assert!(t.intern_on(Venue::BybitSpot, "BTC-USDT").is_err());
        assert!(t.intern_on(Venue::Okx, "BTC_USDT").is_err());
        assert!(t.intern(&"A".repeat(MAX_SYMBOL_LEN + 1)).is_err());
        assert!(t.is_empty());
    }

    #[test]
    fn the_same_name_on_two_venues_is_two_symbols() {
        let mut t = SymbolTable::new();
        let spot = t.intern("BTCUSDT").unwrap();
        let fut = t.intern_on(Venue::BinanceUsdm, "btcusdt").unwrap();
        let okx = t.intern_on(Venue::Okx, "btc-usdt").unwrap();
        assert_ne!(spot, fut);
        assert_eq!(t.lookup(b"BTCUSDT"), Some(spot));
        assert_eq!(t.lookup_on(Venue::BinanceUsdm, b"BTCUSDT"), Some(fut));
        assert_eq!(t.lookup_on(Venue::Okx, b"BTC-USDT"), Some(okx));
        assert_eq!(t.lookup_on(Venue::Coinbase, b"BTC-USDT"), None);
        assert_eq!(t.venue(fut), Some(Venue::BinanceUsdm));
        assert_eq!(t.venue(okx), Some(Venue::Okx));
        assert_eq!(t.name(okx), Some("BTC-USDT"));
        assert!(t.has_venue(Venue::Okx) && !t.has_venue(Venue::Coinbase));
        assert_eq!(t.iter_venues().count(), 3);
    }
}
