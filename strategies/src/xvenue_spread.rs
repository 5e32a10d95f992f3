//! `xvenue_spread`: trades one instrument on the spread between its book and another venue's
//! book of the same asset (spot against the perpetual, one exchange against another).
//!
//! The strategy runs on its home symbol and listens to the books of both legs (by default the
//! channel `book.*.BTC*`, which routes every venue's BTC books to it; any channel list can be
//! given). Whatever book changed, it reads **both** legs' books through
//! [`Ctx::market`](engine::strategy::Ctx::market), and when both are synced it computes the spread
//! of the home mid over the other leg's mid in basis points (1e-8 fixed point, `i128`, no `f64`):
//!
//! `spread = (home_mid - other_mid) x 10 000 / other_mid`
//!
//! An exponential moving average of the spread (`window` updates) is its fair level (a basis
//! moves slowly; a spread that jumps away from it is one leg lagging the other). When the spread
//! drops `threshold_bps` or more below its average, the home leg is cheap against the other: the
//! strategy wants to be long `qty` and buys at market; when it rises `threshold_bps` or more above
//! its average, it wants to be flat and sells what it holds at market. One order at a time.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `other` | `binance-usdm:BTCUSDT` | the reference leg, `<venue>:<symbol>` (see `engine::venue::Venue` for the names) |
//! | `listen` | `book.*.BTC*` | channels the strategy hears, comma-separated; must include both legs' books |
//! | `window` | `1000` | EMA period of the spread, book updates, `2..=1_000_000` |
//! | `threshold_bps` | `2` | distance from the average that signals, basis points (positive) |
//! | `qty` | `0.001` | long position size, base units (positive; rounded down to the lot size) |
//!
//! Counters ([`XvenueSpread::stats`]) say how often each leg moved, how many updates found both
//! books synced, and how many signals and orders there were.

use crate::ema_cross::Ema;
use crate::{bad_value, floor_qty};
use engine::book::OrderBook;
use engine::event::{OrderRequest, OrderType, Side};
use engine::fixed::{Price, Qty, SCALE};
use engine::strategy::{Ctx, OrderUpdate, ParamError, Params, Strategy};
use engine::symbol::{SymbolId, MAX_SYMBOL_LEN};
use engine::venue::Venue;

/// The name [`crate::build`] knows it by.
pub const NAME: &str = "xvenue_spread";

/// Longest `window`.
pub const MAX_WINDOW: u64 = 1_000_000;

/// Parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XvenueSpreadConfig {
    /// The reference leg's venue.
    pub other_venue: Venue,
    /// The reference leg's symbol (upper case).
    pub other_symbol: String,
    /// Channels heard.
    pub listen: Vec<String>,
    /// EMA period of the spread.
    pub window: u64,
    /// Signal distance, basis points in 1e-8 units.
    pub threshold_bps: i64,
    /// Long position size.
    pub qty: Qty,
}

impl Default for XvenueSpreadConfig {
    fn default() -> Self {
        XvenueSpreadConfig {
            other_venue: Venue::BinanceUsdm,
            other_symbol: "BTCUSDT".into(),
            listen: vec!["book.*.BTC*".into()],
            window: 1000,
            threshold_bps: 2 * SCALE,
            qty: Qty(100_000),
        }
    }
}

impl XvenueSpreadConfig {
    /// Reads and checks the parameters.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let d = Self::default();
        let (other_venue, other_symbol) =
            p.text("other", (d.other_venue, d.other_symbol.clone()), |s| {
                let (v, sym) = s
                    .split_once(':')
                    .ok_or_else(|| "expected <venue>:<symbol>, e.g. okx:BTC-USDT".to_string())?;
                let venue = Venue::parse(v).ok_or_else(|| {
                    format!("unknown venue {v:?} (one of {})", engine::venue::names())
                })?;
                let sym = sym.to_ascii_uppercase();
                if sym.is_empty()
                    || sym.len() > MAX_SYMBOL_LEN
                    || !sym.bytes().all(|b| venue.symbol_byte_ok(b))
                {
                    return Err(format!("bad symbol {sym:?} for {venue}"));
                }
                Ok((venue, sym))
            })?;
        let listen = p.text("listen", d.listen.clone(), |s| {
            let list: Vec<String> = s
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            if list.is_empty() {
                return Err("no channel".into());
            }
            engine::route::parse_all(&list).map_err(|e| e.to_string())?;
            Ok(list)
        })?;
        let window = p.u64_in("window", d.window, 2, MAX_WINDOW)?;
        let threshold_bps = p.fixed("threshold_bps", d.threshold_bps)?;
        if threshold_bps <= 0 {
            return Err(bad_value(
                "threshold_bps",
                format!("must be positive (got {})", Price(threshold_bps)),
            ));
        }
        let qty = Qty(p.fixed("qty", d.qty.0)?);
        if qty.0 <= 0 {
            return Err(bad_value("qty", format!("must be positive (got {qty})")));
        }
        Ok(XvenueSpreadConfig {
            other_venue,
            other_symbol,
            listen,
            window,
            threshold_bps,
            qty,
        })
    }
}

/// What the strategy has seen and done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XvenueSpreadStats {
    /// Book changes of the home leg heard.
    pub home_updates: u64,
    /// Book changes of the other leg heard.
    pub other_updates: u64,
    /// Updates where both books were synced and the spread was computed.
    pub spreads: u64,
    /// Spread this far below its average or more (buy signals).
    pub cheap_signals: u64,
    /// Spread this far above its average or more (sell signals).
    pub rich_signals: u64,
    /// Orders sent.
    pub orders: u64,
    /// Orders the context refused (buffer full, size rounded to zero).
    pub submit_failed: u64,
    /// The other leg is not one of the engine's symbols (counted once per callback).
    pub other_missing: u64,
}

/// The strategy; see the module docs.
#[derive(Debug)]
pub struct XvenueSpread {
    cfg: XvenueSpreadConfig,
    other: Option<SymbolId>,
    mean: Ema,
    last_spread: Option<i64>,
    in_flight: bool,
    stats: XvenueSpreadStats,
}

impl XvenueSpread {
    /// A strategy with `cfg`.
    pub fn new(cfg: XvenueSpreadConfig) -> Self {
        let mean = Ema::new(cfg.window);
        XvenueSpread {
            cfg,
            other: None,
            mean,
            last_spread: None,
            in_flight: false,
            stats: XvenueSpreadStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &XvenueSpreadStats {
        &self.stats
    }

    /// The last spread computed, basis points in 1e-8 units.
    pub fn last_spread_bps(&self) -> Option<Price> {
        self.last_spread.map(Price)
    }

    /// The spread's average, basis points in 1e-8 units.
    pub fn mean_spread_bps(&self) -> Option<Price> {
        self.mean.value()
    }

    fn mid(book: &OrderBook) -> Option<i128> {
        if !book.is_synced() {
            return None;
        }
        book.mid_price().map(|p| i128::from(p.0)).filter(|&m| m > 0)
    }

    fn other_id(&mut self, ctx: &Ctx<'_>) -> Option<SymbolId> {
        if self.other.is_none() {
            self.other = ctx.find_symbol(self.cfg.other_venue, &self.cfg.other_symbol);
        }
        self.other
    }

    fn on_change(&mut self, ctx: &mut Ctx<'_>) {
        let Some(other) = self.other_id(ctx) else {
            self.stats.other_missing += 1;
            return;
        };
        let changed = ctx.event_symbol();
        if changed == other {
            self.stats.other_updates += 1;
        } else if changed == ctx.symbol() {
            self.stats.home_updates += 1;
        } else {
            return;
        }
        let (Some(home), Some(away)) = (ctx.market(ctx.symbol()), ctx.market(other)) else {
            return;
        };
        let (Some(h), Some(o)) = (Self::mid(home.book), Self::mid(away.book)) else {
            return;
        };
        // Basis points in 1e-8 units: (h - o) * 10_000 * SCALE / o.
        let spread = (h - o) * 10_000 * i128::from(SCALE) / o;
        let Ok(spread) = i64::try_from(spread) else {
            return;
        };
        self.stats.spreads += 1;
        self.last_spread = Some(spread);
        // The deviation is measured against the average before this update.
        let before = self.mean.initialized().then(|| self.mean.value()).flatten();
        self.mean.update(Price(spread));
        let Some(mean) = before else {
            return;
        };
        let dev = spread.saturating_sub(mean.0);
        let long = ctx.position().qty > 0;
        if dev <= -self.cfg.threshold_bps {
            self.stats.cheap_signals += 1;
            if !long && !self.in_flight {
                let qty = floor_qty(self.cfg.qty, ctx.rules().lot_size);
                self.send(ctx, Side::Buy, qty);
            }
        } else if dev >= self.cfg.threshold_bps {
            self.stats.rich_signals += 1;
            if long && !self.in_flight {
                let qty = floor_qty(Qty(ctx.position().qty), ctx.rules().lot_size);
                self.send(ctx, Side::Sell, qty);
            }
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_>, side: Side, qty: Qty) {
        if qty.0 <= 0 {
            self.stats.submit_failed += 1;
            return;
        }
        let req = OrderRequest {
            side,
            price: Price(0),
            qty,
            order_type: OrderType::Market,
        };
        match ctx.submit(req) {
            Ok(_) => {
                self.stats.orders += 1;
                self.in_flight = true;
            }
            Err(_) => self.stats.submit_failed += 1,
        }
    }
}

impl Strategy for XvenueSpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn channels(&self) -> Vec<String> {
        self.cfg.listen.clone()
    }

    fn on_book(&mut self, ctx: &mut Ctx<'_>, _book: &OrderBook) {
        self.on_change(ctx);
    }

    fn on_order(&mut self, _ctx: &mut Ctx<'_>, update: &OrderUpdate) {
        if update.is_final() {
            self.in_flight = false;
        }
    }

    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        let mut p = params.clone();
        let qty = Qty(p.fixed("qty", self.cfg.qty.0)?);
        let threshold = p.fixed("threshold_bps", self.cfg.threshold_bps)?;
        p.finish()?;
        if qty.0 <= 0 {
            return Err(bad_value("qty", format!("must be positive (got {qty})")));
        }
        if threshold <= 0 {
            return Err(bad_value(
                "threshold_bps",
                format!("must be positive (got {})", Price(threshold)),
            ));
        }
        let what = format!(
            "qty {} -> {qty}, threshold_bps {} -> {}",
            self.cfg.qty,
            Price(self.cfg.threshold_bps),
            Price(threshold)
        );
        self.cfg.qty = qty;
        self.cfg.threshold_bps = threshold;
        Ok(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::core::{Clock, Core, CoreConfig};
    use engine::event::{BookSide, Event, EventKind, LevelFlags, SnapshotLevel};
    use engine::ring::{event_ring, OnFull};
    use engine::symbol::SymbolTable;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[derive(Clone)]
    struct TestClock(Arc<AtomicU64>);
    impl Clock for TestClock {
        fn now_ns(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// A one-level-a-side snapshot (id `id`) putting `sym`'s book at `bid`/`ask`.
    fn book(sym: SymbolId, id: u64, bid: &str, ask: &str) -> [Event; 2] {
        let lvl = |side, px: &str, flags| {
            Event::new(
                id,
                sym,
                EventKind::Snapshot(SnapshotLevel {
                    last_update_id: id,
                    price: Price::parse(px.as_bytes()).unwrap(),
                    qty: Qty::parse(b"1").unwrap(),
                    side,
                    flags,
                }),
            )
        };
        [
            lvl(BookSide::Bid, bid, LevelFlags::default()),
            lvl(BookSide::Ask, ask, LevelFlags::LAST),
        ]
    }

    #[test]
    fn parameters_are_checked() {
        let cfg = XvenueSpreadConfig::from_params(&mut Params::new([
            ("other", "okx:btc-usdt"),
            ("listen", "book.okx.BTC-USDT, book.binance.BTCUSDT"),
        ]))
        .unwrap();
        assert_eq!(
            (cfg.other_venue, cfg.other_symbol.as_str()),
            (Venue::Okx, "BTC-USDT")
        );
        assert_eq!(cfg.listen.len(), 2);
        for (k, v, why) in [
            ("other", "BTCUSDT", "expected <venue>:<symbol>"),
            ("other", "kraken:XBTUSD", "unknown venue"),
            ("other", "binance:BTC-USDT", "bad symbol"),
            ("listen", "book.nowhere.X", "unknown venue"),
            ("window", "1", "must be in"),
            ("threshold_bps", "0", "must be positive"),
        ] {
            let e = XvenueSpreadConfig::from_params(&mut Params::new([(k, v)])).unwrap_err();
            assert!(
                matches!(&e, ParamError::BadValue { key, why: w } if key == k && w.contains(why)),
                "{k}={v}: {e}"
            );
        }
    }

    /// Two venues' books through a real core: the strategy hears both, reads both, and trades
    /// its home leg when the spread leaves its average.
    #[test]
    fn trades_the_home_leg_on_the_spread_between_two_venues() {
        let mut symbols = SymbolTable::new();
        let spot = symbols.intern("BTCUSDT").unwrap();
        let perp = symbols.intern_on(Venue::BinanceUsdm, "BTCUSDT").unwrap();
        let eth = symbols.intern("ETHUSDT").unwrap();
        let clock = TestClock(Arc::new(AtomicU64::new(1)));
        let mut core = Core::new(&symbols, CoreConfig::default(), clock.clone());
        let (mut tx, rx) = event_ring(1 << 12, OnFull::Drop);
        core.add_input(rx);
        let cfg = XvenueSpreadConfig {
            window: 4,
            ..XvenueSpreadConfig::default()
        };
        core.set_strategy(spot, Box::new(XvenueSpread::new(cfg)))
            .unwrap();
        let mut id = 10;
        let mut feed = |core: &mut Core<TestClock>, sym, bid: &str, ask: &str| {
            id += 1;
            for ev in book(sym, id, bid, ask) {
                tx.push(ev).unwrap();
            }
            clock.0.fetch_add(1_000, Ordering::Relaxed);
            core.poll(clock.now_ns());
        };
        // A steady 10 bps basis (spot 60 000, perp 60 060): no signal.
        for _ in 0..4 {
            feed(&mut core, perp, "60059", "60061");
            feed(&mut core, spot, "59999", "60001");
        }
        // Another venue's symbol that does not match `book.*.BTC*` reaches nobody.
        feed(&mut core, eth, "2999", "3001");
        assert_eq!(core.counters().orders_sent, 0);
        // The perp jumps 20 bps: spot is cheap against it, buy.
        feed(&mut core, perp, "60179", "60181");
        assert_eq!(core.counters().orders_sent, 1, "{:?}", core.counters());
    }
}
