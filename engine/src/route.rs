//! Topic routing: which strategies hear which market events, resolved to indexes once.
//!
//! A strategy declares the channels it wants ([`Strategy::channels`](crate::strategy::Strategy::channels))
//! as `<kind>.<venue>.<symbol>` patterns, where any part may be `*` (the seeds' pub/sub hub with
//! namespaced keys: `trade.binance.BTCUSDT`, `book.binance.*`, `*.binance.ETHUSDT`). The venue is
//! one of [`Venue`]'s names (`binance`, `binance-usdm`, `coinbase`, `okx`, `bybit-spot`,
//! `bybit-linear`) or `*`; the symbol is a name, `*`, or a prefix ending in `*` (`BTC*` matches
//! `BTCUSDT` on Binance and `BTC-USDT` on OKX: `book.*.BTC*` hears every venue's BTC books).
//! Kinds:
//!
//! | kind | callback |
//! |---|---|
//! | `trade` | `on_trade` |
//! | `aggTrade` | `on_agg_trade` |
//! | `bookTicker` | `on_book_ticker` |
//! | `book` | `on_book` (the L2 book changed or synced) |
//!
//! A channel that is only a kind (`trade`, `bookTicker`, or `*`) means that kind of the
//! strategy's own symbol, whatever its venue and name: a strategy that reads only trades declares
//! `["trade"]`, and the core then skips the callbacks it would ignore (a timed call per book
//! message and per best bid/ask otherwise). A strategy that declares nothing hears every kind of
//! its own symbol (the default). Its own orders, its timers and connection changes always reach
//! it, whatever it declares. Symbols are matched case-insensitively.
//!
//! When a strategy hears another symbol's event, its [`Ctx`](crate::strategy::Ctx) shows that
//! symbol's market (book, best bid/ask, last trade; [`Ctx::event_symbol`](crate::strategy::Ctx::event_symbol))
//! while its orders, rules and position stay its own symbol's.
//!
//! [`Routes`] is rebuilt whenever a strategy is installed or removed (allocation then, cold). On
//! the hot path a lookup is one index into a table of `kind x symbol` lists; no string is
//! compared.

use crate::venue::{self, Venue};
use core::fmt;

/// A kind of market event a strategy can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Trades.
    Trade = 0,
    /// Aggregated trades.
    AggTrade = 1,
    /// Best bid/ask.
    BookTicker = 2,
    /// The L2 book changed.
    Book = 3,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Trade, Kind::AggTrade, Kind::BookTicker, Kind::Book];

    /// Its name in channels.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Trade => "trade",
            Kind::AggTrade => "aggTrade",
            Kind::BookTicker => "bookTicker",
            Kind::Book => "book",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A channel pattern that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad channel `{}`: {}", self.pattern, self.why)
    }
}

impl std::error::Error for RouteError {}

/// The symbol part of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SymbolPat {
    /// `*`.
    Any,
    /// A name (upper case).
    Exact(String),
    /// `BTC*`: names starting with this (upper case).
    Prefix(String),
    /// A channel of a kind alone: the strategy's own symbol.
    Own,
}

/// One parsed pattern (`None`: `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    kind: Option<Kind>,
    venue: Option<Venue>,
    symbol: SymbolPat,
}

impl Pattern {
    /// Parses `<kind>.<venue>.<symbol>`, or `<kind>` alone for the strategy's own symbol.
    pub fn parse(s: &str) -> Result<Pattern, RouteError> {
        let err = |why: &str| RouteError {
            pattern: s.to_string(),
            why: why.to_string(),
        };
        let parts: Vec<&str> = s.split('.').collect();
        let (kind, venue, symbol) = match parts[..] {
            [kind] => (kind, "*", None),
            [kind, venue, symbol] => (kind, venue, Some(symbol)),
            _ => {
                return Err(err(
                    "expected <kind>.<venue>.<symbol> (e.g. trade.binance.BTCUSDT), or a kind \
                     alone for the strategy's own symbol",
                ))
            }
        };
        if [kind, venue, symbol.unwrap_or("*")]
            .iter()
            .any(|p| p.is_empty())
        {
            return Err(err("an empty part"));
        }
        let kind = match kind {
            "*" => None,
            k => Some(Kind::parse(k).ok_or_else(|| {
                err("unknown kind (expected trade, aggTrade, bookTicker, book or *)")
            })?),
        };
        let Some(symbol) = symbol else {
            return Ok(Pattern {
                kind,
                venue: None,
                symbol: SymbolPat::Own,
            });
        };
        let venue = match venue {
            "*" => None,
            v => Some(Venue::parse(v).ok_or_else(|| {
                err(&format!(
                    "unknown venue (expected one of {}, or *)",
                    venue::names()
                ))
            })?),
        };
        let name_ok = |x: &str| x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let symbol = match symbol.strip_suffix('*') {
            Some("") => SymbolPat::Any,
            Some(prefix) if name_ok(prefix) => SymbolPat::Prefix(prefix.to_ascii_uppercase()),
            None if name_ok(symbol) => SymbolPat::Exact(symbol.to_ascii_uppercase()),
            _ => {
                return Err(err(
                    "a symbol is ASCII letters, digits and `-`, a prefix ending in *, or *",
                ))
            }
        };
        Ok(Pattern {
            kind,
            venue,
            symbol,
        })
    }

    /// True if `kind` events of `symbol` (upper case) on `venue` match; `own` says whether
    /// that symbol is the strategy's own.
    pub fn matches(&self, kind: Kind, venue: Venue, symbol: &str, own: bool) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.venue.is_none_or(|v| v == venue)
            && match &self.symbol {
                SymbolPat::Any => true,
                SymbolPat::Exact(s) => s == symbol,
                SymbolPat::Prefix(p) => symbol.starts_with(p.as_str()),
                SymbolPat::Own => own,
            }
    }
}

/// Parses every pattern, failing on the first bad one.
pub fn parse_all(patterns: &[String]) -> Result<Vec<Pattern>, RouteError> {
    patterns.iter().map(|p| Pattern::parse(p)).collect()
}

/// The routing table: for each `(kind, symbol)`, the symbols whose strategies hear it.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    n: usize,
    table: Vec<Vec<u32>>,
}

impl Routes {
    /// An empty table for `n` symbols.
    pub fn new(n: usize) -> Routes {
        Routes {
            n,
            table: vec![Vec::new(); n * Kind::ALL.len()],
        }
    }

    /// Rebuilds the table: `subs[i]` is `None` where symbol `i` has no strategy, else its
    /// patterns (empty: the default, everything of its own symbol). `names[i]` is symbol `i`'s
    /// venue and name (upper case).
    pub fn rebuild(&mut self, subs: &[Option<&[Pattern]>], names: &[(Venue, String)]) {
        self.n = names.len();
        self.table = vec![Vec::new(); self.n * Kind::ALL.len()];
        for (home, sub) in subs.iter().enumerate() {
            let Some(patterns) = sub else {
                continue;
            };
            for kind in Kind::ALL {
                for (sym, (venue, name)) in names.iter().enumerate() {
                    let hears = if patterns.is_empty() {
                        sym == home
                    } else {
                        patterns
                            .iter()
                            .any(|p| p.matches(kind, *venue, name, sym == home))
                    };
                    if hears {
                        self.table[kind as usize * self.n + sym].push(home as u32);
                    }
                }
            }
        }
    }

    /// The symbols whose strategies hear `kind` events of `symbol`.
    #[inline]
    pub fn targets(&self, kind: Kind, symbol: usize) -> &[u32] {
        self.table
            .get(kind as usize * self.n + symbol)
            .map_or(&[], |v| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<(Venue, String)> {
        ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
            .iter()
            .map(|s| (Venue::Binance, s.to_string()))
            .collect()
    }

    #[test]
    fn patterns_parse_and_refuse_with_a_reason() {
        assert!(Pattern::parse("trade.binance.BTCUSDT").is_ok());
        assert!(Pattern::parse("*.*.*").is_ok());
        assert!(Pattern::parse("book.binance.btcusdt").is_ok());
        for (bad, why) in [
            ("trade.binance", "expected"),
            ("trades.binance.BTCUSDT", "unknown kind"),
            ("trade.kraken.BTCUSDT", "unknown venue"),
            ("trade.binance.BTC_USDT", "letters, digits"),
            ("trade.binance.B*C", "letters, digits"),
            ("trade..BTCUSDT", "empty"),
        ] {
            let e = Pattern::parse(bad).unwrap_err();
            assert!(e.why.contains(why), "{bad}: {e}");
            assert!(e.to_string().contains(bad));
        }
    }

    #[test]
    fn wildcards_route_exactly_the_matching_events() {
        let names = names();
        let own: Vec<Pattern> = Vec::new();
        let eth = parse_all(&["book.binance.*".into(), "trade.binance.BTCUSDT".into()]).unwrap();
        let bnb = parse_all(&["*.binance.ETHUSDT".into()]).unwrap();
        let mut r = Routes::new(3);
        r.rebuild(&[Some(&own), Some(&eth), Some(&bnb)], &names);
        // BTCUSDT's strategy hears only its own symbol, every kind.
        assert_eq!(r.targets(Kind::Trade, 0), &[0, 1]);
        assert_eq!(r.targets(Kind::AggTrade, 0), &[0]);
        assert_eq!(r.targets(Kind::Book, 0), &[0, 1]);
        assert_eq!(r.targets(Kind::BookTicker, 0), &[0]);
        // ETHUSDT's: every book, BTCUSDT's trades, nothing else (not even its own trades).
        assert_eq!(r.targets(Kind::Trade, 1), &[2]);
        assert_eq!(r.targets(Kind::Book, 1), &[1, 2]);
        assert_eq!(r.targets(Kind::Book, 2), &[1]);
        assert_eq!(r.targets(Kind::BookTicker, 1), &[2]);
        // BNBUSDT's: everything of ETHUSDT, nothing of its own.
        assert_eq!(r.targets(Kind::Trade, 2), &[] as &[u32]);
        assert_eq!(r.targets(Kind::AggTrade, 1), &[2]);
        // A symbol without a strategy is in no list.
        r.rebuild(&[Some(&own), None, None], &names);
        assert_eq!(r.targets(Kind::Book, 2), &[] as &[u32]);
        assert_eq!(r.targets(Kind::Trade, 0), &[0]);
    }

    #[test]
    fn a_kind_alone_is_that_kind_of_the_strategy_s_own_symbol() {
        let names = names();
        let trades = parse_all(&["trade".into()]).unwrap();
        let own_and_eth_books = parse_all(&["*".into(), "book.binance.ETHUSDT".into()]).unwrap();
        let mut r = Routes::new(3);
        r.rebuild(
            &[Some(&trades), Some(&trades), Some(&own_and_eth_books)],
            &names,
        );
        // BTCUSDT's and ETHUSDT's strategies hear their own trades and nothing else.
        assert_eq!(r.targets(Kind::Trade, 0), &[0]);
        assert_eq!(r.targets(Kind::Trade, 1), &[1]);
        for kind in [Kind::AggTrade, Kind::BookTicker] {
            assert_eq!(r.targets(kind, 0), &[] as &[u32], "{kind:?}");
        }
        assert_eq!(r.targets(Kind::Book, 0), &[] as &[u32]);
        // BNBUSDT's: every kind of its own, and ETHUSDT's books.
        for kind in Kind::ALL {
            assert_eq!(r.targets(kind, 2), &[2], "{kind:?}");
        }
        assert_eq!(r.targets(Kind::Book, 1), &[2]);
        for bad in ["", "trades", "trade.binance", "."] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn venues_and_prefixes_select_across_venues() {
        let names: Vec<(Venue, String)> = [
            (Venue::Binance, "BTCUSDT"),
            (Venue::Okx, "BTC-USDT"),
            (Venue::Coinbase, "ETH-USD"),
            (Venue::BinanceUsdm, "BTCUSDT"),
        ]
        .iter()
        .map(|(v, s)| (*v, s.to_string()))
        .collect();
        let cross = parse_all(&["book.*.BTC*".into()]).unwrap();
        let okx_only =
            parse_all(&["trade.okx.*".into(), "book.binance-usdm.btcusdt".into()]).unwrap();
        let mut r = Routes::new(4);
        r.rebuild(&[Some(&cross), Some(&okx_only), None, None], &names);
        assert_eq!(r.targets(Kind::Book, 0), &[0]);
        assert_eq!(r.targets(Kind::Book, 1), &[0]);
        assert_eq!(r.targets(Kind::Book, 2), &[] as &[u32]);
        assert_eq!(r.targets(Kind::Book, 3), &[0, 1]);
        assert_eq!(r.targets(Kind::Trade, 1), &[1]);
        assert_eq!(r.targets(Kind::Trade, 0), &[] as &[u32]);
        assert!(Pattern::parse("book.okx.BTC-USDT-SWAP").is_ok());
        assert!(Pattern::parse("book.bybit-linear.*").is_ok());
    }
}
