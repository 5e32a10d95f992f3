//! Moving-average crossover on trade prices.
//!
//! The last `slow` trade prices sit in one ring buffer allocated at construction; the sums of the
//! last `fast` and the last `slow` prices are kept as running `i128` totals, so each trade costs
//! two subtractions and two additions. The averages are compared without dividing:
//! `fast_sum x slow` against `slow_sum x fast`.
//!
//! Signals start once the slow window is full. The first non-zero difference only sets the regime;
//! after that, a change of sign is a cross (a tie keeps the previous regime, so `+ 0 +` is no cross
//! and `- 0 +` is one). Crossing above sets the target position to `qty` long; crossing below sets
//! it to flat.
//!
//! Orders: one at a time. On each trade, when no order is in flight and the position (this
//! strategy's own fills) differs from the target, one [`OrderType::LimitIoc`] goes out: a buy at
//! the best ask or a sell at the best bid. The best price is the bookTicker's if one arrived, else
//! the synced L2 book's, else the trade's price. An IOC that expires unfilled is retried on the
//! next trade while the target still stands (never from the order callback, so a venue that keeps
//! expiring it cannot spin a loop at round-trip speed). A difference that rounds below the lot size
//! is treated as reached; one whose notional is under the minimum is dropped until the next cross
//! and counted.

use engine::event::{ClientOrderId, OrderRequest, OrderType, Side, Trade};
use engine::fixed::{Notional, Price, Qty};
use engine::strategy::{Ctx, OrderUpdate, OrderUpdateKind, ParamError, Params, Strategy};

use crate::{bad_value, floor_qty};

/// The name [`crate::build`] knows this strategy by.
pub const NAME: &str = "sma_cross";

/// Longest window accepted (the ring buffer holds `slow` prices).
pub const MAX_WINDOW: u64 = 100_000;

/// The crossover's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmaCrossConfig {
    /// Fast window, trades (`fast`, default 20).
    pub fast: usize,
    /// Slow window, trades (`slow`, default 100).
    pub slow: usize,
    /// Long position size (`qty`, default 0.001).
    pub qty: Qty,
}

impl Default for SmaCrossConfig {
    fn default() -> Self {
        SmaCrossConfig {
            fast: 20,
            slow: 100,
            qty: Qty(100_000),
        }
    }
}

impl SmaCrossConfig {
    /// Reads `fast`, `slow` and `qty` from `p`, checking ranges and `fast < slow`.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let d = Self::default();
        let fast = p.u64_in("fast", d.fast as u64, 1, MAX_WINDOW - 1)?;
        let slow = p.u64_in("slow", d.slow as u64, 2, MAX_WINDOW)?;
        if fast >= slow {
            return Err(bad_value(
                "fast",
                format!("must be less than slow ({slow}) (got {fast})"),
            ));
        }
        let qty = Qty(p.fixed("qty", d.qty.0)?);
        if qty.0 <= 0 {
            return Err(bad_value("qty", format!("must be positive (got {qty})")));
        }
        Ok(SmaCrossConfig {
            fast: fast as usize,
            slow: slow as usize,
            qty,
        })
    }
}

/// Which average is above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// Not known yet (window filling, or averages equal so far).
    Unknown,
    /// Fast above slow.
    FastAbove,
    /// Fast below slow.
    FastBelow,
}

/// A crossing, as [`SmaCross::push_price`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cross {
    /// Fast crossed above slow.
    Above,
    /// Fast crossed below slow.
    Below,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmaCrossStats {
    /// Crosses above.
    pub crosses_above: u64,
    /// Crosses below.
    pub crosses_below: u64,
    /// Orders handed to the core.
    pub orders: u64,
    /// Orders not placed because their notional was under the minimum (target dropped).
    pub skipped: u64,
    /// Orders the context refused (outbox full); retried on the next trade.
    pub submit_failed: u64,
}

/// The crossover strategy (see the [module docs](self)).
#[derive(Debug)]
pub struct SmaCross {
    cfg: SmaCrossConfig,
    /// The last `slow` prices (1e-8 units); `head` is where the next one goes.
    ring: Box<[i64]>,
    head: usize,
    count: usize,
    fast_sum: i128,
    slow_sum: i128,
    regime: Regime,
    /// Wanted position, base units (0 or `qty`).
    target: i64,
    /// Position from this strategy's own fills, base units.
    held: i64,
    in_flight: Option<ClientOrderId>,
    stats: SmaCrossStats,
}

impl SmaCross {
    /// A crossover with `cfg` (its ring buffer is allocated here). Windows are clamped to
    /// `1 <= fast < slow <= MAX_WINDOW`; [`SmaCrossConfig::from_params`] refuses anything else.
    pub fn new(cfg: SmaCrossConfig) -> Self {
        let slow = cfg.slow.clamp(2, MAX_WINDOW as usize);
        let fast = cfg.fast.clamp(1, slow - 1);
        let cfg = SmaCrossConfig { fast, slow, ..cfg };
        SmaCross {
            cfg,
            ring: vec![0; slow].into_boxed_slice(),
            head: 0,
            count: 0,
            fast_sum: 0,
            slow_sum: 0,
            regime: Regime::Unknown,
            target: 0,
            held: 0,
            in_flight: None,
            stats: SmaCrossStats::default(),
        }
    }

    /// Its parameters.
    pub fn config(&self) -> &SmaCrossConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &SmaCrossStats {
        &self.stats
    }

    /// Which average is above.
    pub fn regime(&self) -> Regime {
        self.regime
    }

    /// Position from this strategy's own fills.
    pub fn held(&self) -> Qty {
        Qty(self.held)
    }

    /// The position the signal wants.
    pub fn target(&self) -> Qty {
        Qty(self.target)
    }

    /// The order in flight, if any.
    pub fn in_flight(&self) -> Option<ClientOrderId> {
        self.in_flight
    }

    /// The fast and slow averages (truncated to 1e-8), once the slow window is full.
    pub fn averages(&self) -> Option<(Price, Price)> {
        (self.count >= self.cfg.slow).then(|| {
            (
                Price((self.fast_sum / self.cfg.fast as i128) as i64),
                Price((self.slow_sum / self.cfg.slow as i128) as i64),
            )
        })
    }

    /// Adds one price to the windows; returns the cross it caused, if any.
    pub fn push_price(&mut self, price: Price) -> Option<Cross> {
        let (fast, slow) = (self.cfg.fast, self.cfg.slow);
        if self.count >= fast {
            // The price `fast` trades back leaves the fast window.
            self.fast_sum -= self.ring[(self.head + slow - fast) % slow] as i128;
        }
        if self.count >= slow {
            // The price `slow` trades back (about to be overwritten) leaves the slow window.
            self.slow_sum -= self.ring[self.head] as i128;
        } else {
            self.count += 1;
        }
        self.ring[self.head] = price.0;
        self.head = if self.head + 1 == slow {
            0
        } else {
            self.head + 1
        };
        self.fast_sum += price.0 as i128;
        self.slow_sum += price.0 as i128;
        if self.count < slow {
            return None;
        }
        let diff = self.fast_sum * slow as i128 - self.slow_sum * fast as i128;
        let now = match diff.signum() {
            1 => Regime::FastAbove,
            -1 => Regime::FastBelow,
            _ => return None,
        };
        let before = core::mem::replace(&mut self.regime, now);
        match (before, now) {
            (Regime::FastBelow, Regime::FastAbove) => Some(Cross::Above),
            (Regime::FastAbove, Regime::FastBelow) => Some(Cross::Below),
            _ => None,
        }
    }

    /// Sends the next order towards the target, if none is in flight.
    fn reconcile(&mut self, ctx: &mut Ctx<'_>, trade: &Trade) {
        if self.in_flight.is_some() || self.held == self.target {
            return;
        }
        let rules = *ctx.rules();
        let (side, want) = if self.target > self.held {
            (Side::Buy, self.target - self.held)
        } else {
            (Side::Sell, self.held - self.target)
        };
        let qty = floor_qty(Qty(want), rules.lot_size);
        if qty.0 <= 0 {
            // Less than a lot apart: as close as the venue allows.
            return;
        }
        let price = best_price(ctx, side, trade.price).floor_to(rules.tick_size);
        if price.0 <= 0 || Notional::of(price, qty).0 < rules.min_notional as i128 {
            self.stats.skipped += 1;
            self.target = self.held;
            return;
        }
        let req = OrderRequest {
            side,
            price,
            qty,
            order_type: OrderType::LimitIoc,
        };
        match ctx.submit(req) {
            Ok(id) => {
                self.in_flight = Some(id);
                self.stats.orders += 1;
            }
            Err(_) => self.stats.submit_failed += 1,
        }
    }
}

/// The price to cross the spread at: the best ask for a buy, the best bid for a sell.
fn best_price(ctx: &Ctx<'_>, side: Side, last: Price) -> Price {
    if let Some(b) = ctx.bbo() {
        let p = match side {
            Side::Buy => b.ask_px,
            Side::Sell => b.bid_px,
        };
        if p.0 > 0 {
            return p;
        }
    }
    let book = ctx.book();
    if book.is_synced() {
        let level = match side {
            Side::Buy => book.best_ask(),
            Side::Sell => book.best_bid(),
        };
        if let Some(l) = level {
            return l.price;
        }
    }
    last
}

impl Strategy for SmaCross {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Its own symbol's trades: the averages are of trade prices.
    fn channels(&self) -> Vec<String> {
        vec!["trade".into()]
    }

    /// `qty`, checked like at start-up; the windows are fixed while trading (the price ring is
    /// sized by `slow`), so `fast` or `slow` is refused by name. All or none.
    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        let mut merged = crate::crossover_update(
            params,
            [
                ("fast", self.cfg.fast.to_string()),
                ("slow", self.cfg.slow.to_string()),
                ("qty", self.cfg.qty.to_string()),
            ],
            "the averaging windows are fixed while trading; stop-trading and start-trading with the new window",
        )?;
        let cfg = SmaCrossConfig::from_params(&mut merged)?;
        merged.finish()?;
        let what = format!("qty {} -> {}", self.cfg.qty, cfg.qty);
        self.cfg = cfg;
        Ok(what)
    }

    fn on_trade(&mut self, ctx: &mut Ctx<'_>, trade: &Trade) {
        match self.push_price(trade.price) {
            Some(Cross::Above) => {
                self.stats.crosses_above += 1;
                self.target = self.cfg.qty.0;
            }
            Some(Cross::Below) => {
                self.stats.crosses_below += 1;
                self.target = 0;
            }
            None => {}
        }
        self.reconcile(ctx, trade);
    }

    fn on_order(&mut self, _ctx: &mut Ctx<'_>, u: &OrderUpdate) {
        if self.in_flight != Some(u.client_id) {
            return;
        }
        if let OrderUpdateKind::Filled { qty, .. } = u.kind {
            self.held = self
                .held
                .saturating_add(qty.0.saturating_mul(u.side.sign()));
        }
        if u.is_final() {
            self.in_flight = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{accepted, canceled, fill, one_new, px, q, trade, Harness};
    use engine::event::BookTicker;

    fn cfg(pairs: &[(&str, &str)]) -> Result<SmaCrossConfig, ParamError> {
        let mut p = Params::new(pairs.iter().copied());
        let c = SmaCrossConfig::from_params(&mut p)?;
        p.finish()?;
        Ok(c)
    }

    fn small() -> SmaCross {
        SmaCross::new(SmaCrossConfig {
            fast: 2,
            slow: 4,
            qty: q("0.1"),
        })
    }

    #[test]
    fn crosses_exactly_when_expected() {
        let mut s = small();
        // Fill the slow window with a flat series: no regime, no signal.
        for p in ["100", "100", "100"] {
            assert_eq!(s.push_price(px(p)), None);
            assert_eq!(s.averages(), None);
        }
        assert_eq!(s.push_price(px("100")), None);
        assert_eq!(s.regime(), Regime::Unknown);
        // fast (100+99)/2 = 99.5 < slow 99.75: first regime, not a cross.
        assert_eq!(s.push_price(px("99")), None);
        assert_eq!(s.regime(), Regime::FastBelow);
        assert_eq!(s.averages(), Some((px("99.5"), px("99.75"))));
        // fast (99+102)/2 = 100.5 > slow (100+100+99+102)/4 = 100.25: cross above.
        assert_eq!(s.push_price(px("102")), Some(Cross::Above));
        // fast 101, slow 100.25: still above.
        assert_eq!(s.push_price(px("100")), None);
        // fast (100+100.5)/2 = 100.25 < slow (99+102+100+100.5)/4 = 100.375: cross below.
        assert_eq!(s.push_price(px("100.5")), Some(Cross::Below));
        assert_eq!(s.averages(), Some((px("100.25"), px("100.375"))));
    }

    #[test]
    fn a_tie_keeps_the_regime() {
        let mut s = small();
        for p in ["10", "10", "10", "12"] {
            s.push_price(px(p));
        }
        assert_eq!(s.regime(), Regime::FastAbove); // fast 11 > slow 10.5
                                                   // 9: fast 10.5, slow (10+10+12+9)/4 = 10.25 -> above, no cross.
        assert_eq!(s.push_price(px("9")), None);
        // 10: fast 9.5, slow (10+12+9+10)/4 = 10.25 -> below: cross.
        assert_eq!(s.push_price(px("10")), Some(Cross::Below));
        // A tie between two regimes.
        let mut s = small();
        for p in ["10", "10", "10", "8"] {
            s.push_price(px(p));
        }
        assert_eq!(s.regime(), Regime::FastBelow); // fast 9 < slow 9.5
                                                   // 12: fast 10, slow (10+10+8+12)/4 = 10: a tie, regime stays.
        assert_eq!(s.push_price(px("12")), None);
        assert_eq!(s.regime(), Regime::FastBelow);
        // 10: fast 11, slow (10+8+12+10)/4 = 10: above after a tie: a cross.
        assert_eq!(s.push_price(px("10")), Some(Cross::Above));
    }

    #[test]
    fn running_sums_match_a_naive_average() {
        let mut s = SmaCross::new(SmaCrossConfig {
            fast: 3,
            slow: 7,
            qty: q("1"),
        });
        let prices: Vec<i64> = (0..200)
            .map(|i| 1_000_000 + (i * 7919 % 1013) * 37)
            .collect();
        for (i, &p) in prices.iter().enumerate() {
            s.push_price(Price(p));
            if i + 1 >= 7 {
                let f: i128 = prices[i + 1 - 3..=i].iter().map(|&x| x as i128).sum();
                let w: i128 = prices[i + 1 - 7..=i].iter().map(|&x| x as i128).sum();
                assert_eq!((s.fast_sum, s.slow_sum), (f, w), "at {i}");
            }
        }
    }

    /// Trades that drive `small()` to a cross above on the last one.
    const UP: [&str; 6] = ["100", "100", "100", "100", "99", "102"];

    #[test]
    fn goes_long_at_the_ask_then_flat_at_the_bid() {
        let mut h = Harness::new();
        h.bbo = Some(BookTicker {
            update_id: 1,
            bid_px: px("101.5"),
            bid_qty: q("1"),
            ask_px: px("101.6"),
            ask_qty: q("1"),
        });
        let mut s = small();
        for (i, p) in UP[..5].iter().enumerate() {
            assert!(h.trade(&mut s, &trade(i as u64, p)).is_empty());
        }
        let (id, buy) = one_new(&h.trade(&mut s, &trade(5, UP[5])));
        assert_eq!(
            buy,
            OrderRequest {
                side: Side::Buy,
                price: px("101.6"),
                qty: q("0.1"),
                order_type: OrderType::LimitIoc
            }
        );
        assert!(h.order(&mut s, &accepted(id, &buy)).is_empty());
        assert!(h
            .order(&mut s, &fill(id, &buy, q("0.1"), Qty::ZERO))
            .is_empty());
        assert_eq!(s.held(), q("0.1"));
        assert_eq!(s.in_flight(), None);
        // Still above: nothing to do.
        assert!(h.trade(&mut s, &trade(6, "100")).is_empty());
        // Cross below: sell what is held at the bid.
        let (id, sell) = one_new(&h.trade(&mut s, &trade(7, "100.5")));
        assert_eq!(
            (sell.side, sell.price, sell.qty),
            (Side::Sell, px("101.5"), q("0.1"))
        );
        assert_eq!(sell.order_type, OrderType::LimitIoc);
        h.order(&mut s, &fill(id, &sell, q("0.1"), Qty::ZERO));
        assert_eq!(s.held(), Qty::ZERO);
        assert_eq!(s.stats().orders, 2);
        assert_eq!((s.stats().crosses_above, s.stats().crosses_below), (1, 1));
    }

    #[test]
    fn without_a_bbo_the_last_trade_price_is_used() {
        let mut h = Harness::new();
        let mut s = small();
        for (i, p) in UP[..5].iter().enumerate() {
            h.trade(&mut s, &trade(i as u64, p));
        }
        let (_, buy) = one_new(&h.trade(&mut s, &trade(5, UP[5])));
        assert_eq!(buy.price, px("102"));
    }

    #[test]
    fn one_order_in_flight_and_the_target_is_chased_on_trades() {
        let mut h = Harness::new();
        let mut s = small();
        for (i, p) in UP[..5].iter().enumerate() {
            h.trade(&mut s, &trade(i as u64, p));
        }
        let (id, buy) = one_new(&h.trade(&mut s, &trade(5, UP[5])));
        // Cross below while the buy is in flight: no second order.
        assert!(h.trade(&mut s, &trade(6, "100")).is_empty());
        assert!(h.trade(&mut s, &trade(7, "100.5")).is_empty());
        assert_eq!(s.target(), Qty::ZERO);
        // The buy partly fills, the rest expires: the order callback sends nothing ...
        assert!(h
            .order(&mut s, &fill(id, &buy, q("0.06"), Qty::ZERO))
            .is_empty());
        assert!(h.order(&mut s, &canceled(id, &buy, q("0.06"))).is_empty());
        assert_eq!(s.held(), q("0.06"));
        assert_eq!(s.in_flight(), None);
        // ... the next trade sells it back at the trade price: 0.06 x 100 = 6 >= 5.
        let (id, sell) = one_new(&h.trade(&mut s, &trade(8, "100")));
        assert_eq!(
            (sell.side, sell.price, sell.qty),
            (Side::Sell, px("100"), q("0.06"))
        );
        // Only 0.01 goes; what is left (0.05 x 99 = 4.95 < 5) cannot be sold: dropped, counted.
        h.order(&mut s, &fill(id, &sell, q("0.01"), Qty::ZERO));
        h.order(&mut s, &canceled(id, &sell, q("0.01")));
        assert!(h.trade(&mut s, &trade(9, "99")).is_empty());
        assert_eq!(s.stats().skipped, 1);
        assert_eq!(s.target(), q("0.05"));
        assert!(h.trade(&mut s, &trade(10, "99")).is_empty());
        assert_eq!(s.stats().skipped, 1);
    }

    #[test]
    fn an_expired_ioc_is_retried_on_the_next_trade() {
        let mut h = Harness::new();
        let mut s = small();
        for (i, p) in UP[..5].iter().enumerate() {
            h.trade(&mut s, &trade(i as u64, p));
        }
        let (id, buy) = one_new(&h.trade(&mut s, &trade(5, UP[5])));
        assert!(h.order(&mut s, &canceled(id, &buy, Qty::ZERO)).is_empty());
        let (id2, again) = one_new(&h.trade(&mut s, &trade(6, "103")));
        assert_ne!(id2, id);
        assert_eq!(
            (again.side, again.price, again.qty),
            (Side::Buy, px("103"), q("0.1"))
        );
    }

    #[test]
    fn below_min_notional_is_not_placed() {
        let mut h = Harness::new();
        let mut s = SmaCross::new(SmaCrossConfig {
            fast: 2,
            slow: 4,
            qty: q("0.01"), // 0.01 x 102 = 1.02 < 5
        });
        for (i, p) in UP.iter().enumerate() {
            assert!(h.trade(&mut s, &trade(i as u64, p)).is_empty());
        }
        assert_eq!(s.stats().skipped, 1);
        // Dropped until the next cross: later trades do not count it again.
        assert!(h.trade(&mut s, &trade(9, "100")).is_empty());
        assert_eq!(s.stats().skipped, 1);
    }

    #[test]
    fn params() {
        assert_eq!(cfg(&[]).unwrap(), SmaCrossConfig::default());
        let c = cfg(&[("fast", "5"), ("slow", "6"), ("qty", "0.5")]).unwrap();
        assert_eq!(
            c,
            SmaCrossConfig {
                fast: 5,
                slow: 6,
                qty: q("0.5")
            }
        );
        for (pairs, key) in [
            (&[("fast", "100")][..], "fast"), // == default slow
            (&[("fast", "10"), ("slow", "5")][..], "fast"),
            (&[("fast", "0")][..], "fast"),
            (&[("slow", "1")][..], "slow"),
            (&[("slow", "100001")][..], "slow"),
            (&[("slow", "-5")][..], "slow"),
            (&[("qty", "0")][..], "qty"),
            (&[("qty", "abc")][..], "qty"),
        ] {
            match cfg(pairs) {
                Err(ParamError::BadValue { key: k, .. }) => assert_eq!(k, key, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        assert_eq!(
            cfg(&[("fsat", "5")]),
            Err(ParamError::Unknown("fsat".into()))
        );
    }
}
