//! Exponential-moving-average crossover on every bookTicker mid and every trade price.
//!
//! The textbook EMA cross that other engines ship as their first example (NautilusTrader's
//! `EMACross`, `nautilus_trader/examples/strategies/ema_cross.py`: a fast and a slow
//! exponential moving average, a market order of a fixed size when they cross), here fed by
//! every quote mid and every trade, so it trades often enough to put real order load on a
//! replay.
//!
//! # Averages, in fixed point
//!
//! Each average follows NautilusTrader's `ExponentialMovingAverage`: `alpha = 2 / (period + 1)`,
//! the first input sets the value, each later input moves it by `alpha x (input - value)`, and
//! the average counts as initialised once it has seen `period` inputs. Here the value is kept in
//! 1e-8 units times 2^[`FRAC_BITS`] (`i128`), and `alpha` as a 2^32 fraction computed once at
//! construction, so an update is one subtraction, one `i128` multiplication and one arithmetic
//! shift: no division, no `f64`, no allocation.
//!
//! # Crosses and orders
//!
//! Signals start once the slow average is initialised (after `slow` inputs; the fast one is
//! then too). As in [`sma_cross`](crate::sma_cross), the first non-zero difference only sets the
//! regime, a tie keeps it, and a change of sign is a cross. Every cross sends one
//! [`OrderType::Market`] order of `qty` (rounded down to the lot size): a buy when the fast average
//! crosses above the slow one, a sell when it crosses below (so the position swings between
//! flat and `qty`, or flat and `-qty` if the first cross is downwards). Orders are not held back
//! while one is in flight; a submit the context refuses is counted, not retried.
//!
//! # Sessions
//!
//! When the feed goes down the averages start over (both return to no input, the regime to
//! unknown): prices from before a disconnect say nothing about the gap, and a new session
//! (including each pass of `tickline replay --repeat`) trades exactly as the first did.

use engine::event::{BookTicker, OrderRequest, OrderType, Side, Trade};
use engine::fixed::{Price, Qty};
use engine::strategy::{Ctx, ParamError, Params, Strategy};

use crate::{bad_value, floor_qty};

/// The name [`crate::build`] knows this strategy by.
pub const NAME: &str = "ema_cross";

/// Longest period accepted.
pub const MAX_PERIOD: u64 = 1_000_000;

/// Fraction bits kept below 1e-8 in each average.
pub const FRAC_BITS: u32 = 16;

/// Bits of the `alpha` fraction.
const ALPHA_BITS: u32 = 32;

/// The crossover's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmaCrossConfig {
    /// Fast period, inputs (`fast`, default 10).
    pub fast: u64,
    /// Slow period, inputs (`slow`, default 40).
    pub slow: u64,
    /// Order size (`qty`, default 0.001).
    pub qty: Qty,
}

impl Default for EmaCrossConfig {
    fn default() -> Self {
        EmaCrossConfig {
            fast: 10,
            slow: 40,
            qty: Qty(100_000),
        }
    }
}

impl EmaCrossConfig {
    /// Reads `fast`, `slow` and `qty` from `p`, checking ranges and `fast < slow`.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let d = Self::default();
        let fast = p.u64_in("fast", d.fast, 1, MAX_PERIOD - 1)?;
        let slow = p.u64_in("slow", d.slow, 2, MAX_PERIOD)?;
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
        Ok(EmaCrossConfig { fast, slow, qty })
    }
}

/// One exponential moving average in fixed point (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ema {
    period: u64,
    /// `alpha = 2 / (period + 1)` as a 2^32 fraction.
    alpha: i128,
    /// 1e-8 units x 2^FRAC_BITS.
    value: i128,
    inputs: u64,
}

impl Ema {
    /// An average over `period` inputs (at least 1).
    pub fn new(period: u64) -> Self {
        let period = period.max(1);
        Ema {
            period,
            alpha: (2i128 << ALPHA_BITS) / (i128::from(period) + 1),
            value: 0,
            inputs: 0,
        }
    }

    /// Adds one input, in 1e-8 units x 2^[`FRAC_BITS`].
    #[inline]
    pub fn update_scaled(&mut self, x: i128) {
        if self.inputs == 0 {
            self.value = x;
        } else {
            self.value += ((x - self.value) * self.alpha) >> ALPHA_BITS;
        }
        self.inputs = self.inputs.saturating_add(1);
    }

    /// Adds one price.
    #[inline]
    pub fn update(&mut self, price: Price) {
        self.update_scaled(i128::from(price.0) << FRAC_BITS);
    }

    /// True once it has seen `period` inputs.
    pub fn initialized(&self) -> bool {
        self.inputs >= self.period
    }

    /// The value, truncated to 1e-8 (`None` before the first input).
    pub fn value(&self) -> Option<Price> {
        (self.inputs > 0).then_some(Price((self.value >> FRAC_BITS) as i64))
    }

    fn scaled(&self) -> i128 {
        self.value
    }
}

/// Which average is above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// Not known yet (averages initialising, or equal so far).
    Unknown,
    /// Fast above slow.
    FastAbove,
    /// Fast below slow.
    FastBelow,
}

/// A crossing, as [`EmaCross::push_scaled`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cross {
    /// Fast crossed above slow.
    Above,
    /// Fast crossed below slow.
    Below,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmaCrossStats {
    /// Inputs (mids and trade prices).
    pub inputs: u64,
    /// Crosses above.
    pub crosses_above: u64,
    /// Crosses below.
    pub crosses_below: u64,
    /// Orders handed to the core.
    pub orders: u64,
    /// Orders the context refused (outbox full), or with a size under one lot.
    pub submit_failed: u64,
}

/// The EMA crossover strategy (see the [module docs](self)).
#[derive(Debug)]
pub struct EmaCross {
    cfg: EmaCrossConfig,
    fast: Ema,
    slow: Ema,
    regime: Regime,
    stats: EmaCrossStats,
}

impl EmaCross {
    /// A crossover with `cfg`. Periods are clamped to `1 <= fast < slow <= MAX_PERIOD`;
    /// [`EmaCrossConfig::from_params`] refuses anything else.
    pub fn new(cfg: EmaCrossConfig) -> Self {
        let slow = cfg.slow.clamp(2, MAX_PERIOD);
        let fast = cfg.fast.clamp(1, slow - 1);
        let cfg = EmaCrossConfig { fast, slow, ..cfg };
        EmaCross {
            cfg,
            fast: Ema::new(fast),
            slow: Ema::new(slow),
            regime: Regime::Unknown,
            stats: EmaCrossStats::default(),
        }
    }

    /// Its parameters.
    pub fn config(&self) -> &EmaCrossConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &EmaCrossStats {
        &self.stats
    }

    /// Which average is above.
    pub fn regime(&self) -> Regime {
        self.regime
    }

    /// The fast and slow averages (truncated to 1e-8), once there has been an input.
    pub fn averages(&self) -> Option<(Price, Price)> {
        Some((self.fast.value()?, self.slow.value()?))
    }

    /// Forgets every input: both averages and the regime start over (counters are kept).
    pub fn reset(&mut self) {
        self.fast = Ema::new(self.cfg.fast);
        self.slow = Ema::new(self.cfg.slow);
        self.regime = Regime::Unknown;
    }

    /// Adds one price to both averages; returns the cross it caused, if any.
    pub fn push_price(&mut self, price: Price) -> Option<Cross> {
        self.push_scaled(i128::from(price.0) << FRAC_BITS)
    }

    /// Adds one input in 1e-8 units x 2^[`FRAC_BITS`] (a mid keeps its half unit).
    #[inline]
    pub fn push_scaled(&mut self, x: i128) -> Option<Cross> {
        self.stats.inputs += 1;
        self.fast.update_scaled(x);
        self.slow.update_scaled(x);
        if !self.slow.initialized() {
            return None;
        }
        let now = match (self.fast.scaled() - self.slow.scaled()).signum() {
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

    /// Feeds one input and sends the cross's order, if any.
    #[inline]
    fn on_input(&mut self, ctx: &mut Ctx<'_>, x: i128) {
        let side = match self.push_scaled(x) {
            None => return,
            Some(Cross::Above) => {
                self.stats.crosses_above += 1;
                Side::Buy
            }
            Some(Cross::Below) => {
                self.stats.crosses_below += 1;
                Side::Sell
            }
        };
        self.send(ctx, side);
    }

    fn send(&mut self, ctx: &mut Ctx<'_>, side: Side) {
        let qty = floor_qty(self.cfg.qty, ctx.rules().lot_size);
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
            Ok(_) => self.stats.orders += 1,
            Err(_) => self.stats.submit_failed += 1,
        }
    }
}

impl Strategy for EmaCross {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Its own symbol's trades and best bid/ask: the averages take both.
    fn channels(&self) -> Vec<String> {
        vec!["trade".into(), "bookTicker".into()]
    }

    /// `qty`, checked like at start-up; the periods are fixed while trading (the averages would
    /// have to start over), so `fast` or `slow` is refused by name. All or none.
    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        let mut merged = crate::crossover_update(
            params,
            [
                ("fast", self.cfg.fast.to_string()),
                ("slow", self.cfg.slow.to_string()),
                ("qty", self.cfg.qty.to_string()),
            ],
            "the periods are fixed while trading; stop-trading and start-trading with the new period",
        )?;
        let cfg = EmaCrossConfig::from_params(&mut merged)?;
        merged.finish()?;
        let what = format!("qty {} -> {}", self.cfg.qty, cfg.qty);
        self.cfg = cfg;
        Ok(what)
    }

    fn on_trade(&mut self, ctx: &mut Ctx<'_>, trade: &Trade) {
        if trade.price.0 > 0 {
            self.on_input(ctx, i128::from(trade.price.0) << FRAC_BITS);
        }
    }

    fn on_connection(&mut self, _ctx: &mut Ctx<'_>, up: bool) {
        if !up {
            self.reset();
        }
    }

    fn on_book_ticker(&mut self, ctx: &mut Ctx<'_>, bbo: &BookTicker) {
        if bbo.bid_px.0 > 0 && bbo.ask_px.0 > 0 {
            // (bid + ask) / 2, its half unit kept in the fraction bits.
            let mid = (i128::from(bbo.bid_px.0) + i128::from(bbo.ask_px.0)) << (FRAC_BITS - 1);
            self.on_input(ctx, mid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{one_new, px, q, trade, Harness};

    fn cfg(pairs: &[(&str, &str)]) -> Result<EmaCrossConfig, ParamError> {
        let mut p = Params::new(pairs.iter().copied());
        let c = EmaCrossConfig::from_params(&mut p)?;
        p.finish()?;
        Ok(c)
    }

    /// fast period 1 (alpha 1: the last input), slow period 3 (alpha 1/2).
    fn small() -> EmaCross {
        EmaCross::new(EmaCrossConfig {
            fast: 1,
            slow: 3,
            qty: q("0.1"),
        })
    }

    fn bbo(bid: &str, ask: &str) -> BookTicker {
        BookTicker {
            update_id: 1,
            bid_px: px(bid),
            bid_qty: q("1"),
            ask_px: px(ask),
            ask_qty: q("1"),
        }
    }

    #[test]
    fn the_average_follows_the_textbook_recurrence() {
        // alpha = 2 / (3 + 1) = 1/2: 100, then 100 + (104 - 100) / 2 = 102, then 101.
        let mut e = Ema::new(3);
        assert_eq!(e.value(), None);
        e.update(px("100"));
        assert_eq!(e.value(), Some(px("100")));
        assert!(!e.initialized());
        e.update(px("104"));
        assert_eq!(e.value(), Some(px("102")));
        e.update(px("100"));
        assert_eq!(e.value(), Some(px("101")));
        assert!(e.initialized());
        // Period 10: alpha 2/11. Against an f64 reference (test only) within a 1e-8 unit.
        let mut e = Ema::new(10);
        let mut reference = 0f64;
        for i in 0..500i64 {
            let p = 6_000_000_000_000 + (i * 7919 % 1013) * 1_000_000;
            e.update(Price(p));
            reference = if i == 0 {
                p as f64
            } else {
                reference + (p as f64 - reference) * 2.0 / 11.0
            };
        }
        let got = e.value().unwrap().0 as f64;
        assert!((got - reference).abs() <= 2.0, "{got} vs {reference}");
    }

    #[test]
    fn crosses_exactly_when_expected() {
        let mut s = small();
        // Slow not initialised for the first two inputs: no signal whatever the values.
        assert_eq!(s.push_price(px("100")), None);
        assert_eq!(s.push_price(px("90")), None); // fast 90, slow 95
        assert_eq!(s.regime(), Regime::Unknown);
        // Third input: slow 95 + (96 - 95) / 2 = 95.5 < fast 96: the first regime, not a cross.
        assert_eq!(s.push_price(px("96")), None);
        assert_eq!(s.regime(), Regime::FastAbove);
        assert_eq!(s.averages(), Some((px("96"), px("95.5"))));
        // 95: slow 95.25 > fast 95: cross below.
        assert_eq!(s.push_price(px("95")), Some(Cross::Below));
        // 94: still below (slow 94.625).
        assert_eq!(s.push_price(px("94")), None);
        // 94.625 exactly: a tie (slow stays 94.625): no cross, regime kept.
        assert_eq!(s.push_price(px("94.625")), None);
        assert_eq!(s.regime(), Regime::FastBelow);
        // 95: slow 94.8125 < fast 95: cross above.
        assert_eq!(s.push_price(px("95")), Some(Cross::Above));
        assert_eq!(s.averages(), Some((px("95"), px("94.8125"))));
    }

    #[test]
    fn orders_a_market_order_on_each_cross_from_mids_and_trades() {
        let mut h = Harness::new();
        let mut s = small();
        // Mids: 100, 90, 96 (regime set, fast above), from bookTickers.
        for (b, a) in [("99.5", "100.5"), ("89.99", "90.01"), ("95.9", "96.1")] {
            assert!(h.book_ticker(&mut s, &bbo(b, a)).is_empty());
        }
        // A trade at 95: cross below -> sell qty at market.
        let (_, sell) = one_new(&h.trade(&mut s, &trade(1, "95")));
        assert_eq!(
            sell,
            OrderRequest {
                side: Side::Sell,
                price: Price(0),
                qty: q("0.1"),
                order_type: OrderType::Market
            }
        );
        // No cross: no order.
        assert!(h.trade(&mut s, &trade(2, "94")).is_empty());
        // A mid of 95.005 (odd half unit kept): cross above -> buy.
        let (_, buy) = one_new(&h.book_ticker(&mut s, &bbo("95", "95.01")));
        assert_eq!((buy.side, buy.order_type), (Side::Buy, OrderType::Market));
        assert_eq!(buy.qty, q("0.1"));
        // Back below: another sell, without waiting for the buy to come back.
        let (_, sell) = one_new(&h.trade(&mut s, &trade(3, "90")));
        assert_eq!(sell.side, Side::Sell);
        assert_eq!(s.stats().orders, 3);
        assert_eq!((s.stats().crosses_above, s.stats().crosses_below), (1, 2));
        assert_eq!(s.stats().inputs, 7);
    }

    #[test]
    fn a_half_unit_mid_is_not_rounded_away() {
        let mut s = small();
        s.push_scaled((i128::from(px("100").0) * 2 + 1) << (FRAC_BITS - 1));
        assert_eq!(
            s.fast.scaled(),
            (i128::from(px("100").0) << FRAC_BITS) + (1 << 15)
        );
    }

    #[test]
    fn a_new_session_starts_the_averages_over() {
        let mut s = small();
        for p in ["100", "90", "96"] {
            s.push_price(px(p));
        }
        assert_eq!(s.regime(), Regime::FastAbove);
        s.reset();
        assert_eq!((s.regime(), s.averages()), (Regime::Unknown, None));
        // The same inputs give the same signals as the first time.
        for p in ["100", "90", "96"] {
            assert_eq!(s.push_price(px(p)), None);
        }
        assert_eq!(s.push_price(px("95")), Some(Cross::Below));
        assert_eq!(s.stats().inputs, 7);
    }

    #[test]
    fn size_under_a_lot_is_not_sent() {
        let mut h = Harness::new();
        h.rules.lot_size = q("1");
        let mut s = small();
        for p in ["100", "90", "96"] {
            h.trade(&mut s, &trade(0, p));
        }
        assert!(h.trade(&mut s, &trade(1, "95")).is_empty());
        assert_eq!(s.stats().submit_failed, 1);
    }

    #[test]
    fn params() {
        assert_eq!(cfg(&[]).unwrap(), EmaCrossConfig::default());
        assert_eq!(
            cfg(&[("fast", "5"), ("slow", "6"), ("qty", "0.5")]).unwrap(),
            EmaCrossConfig {
                fast: 5,
                slow: 6,
                qty: q("0.5")
            }
        );
        for (pairs, key) in [
            (&[("fast", "40")][..], "fast"), // == default slow
            (&[("fast", "0")][..], "fast"),
            (&[("slow", "1")][..], "slow"),
            (&[("qty", "0")][..], "qty"),
            (&[("qty", "x")][..], "qty"),
        ] {
            match cfg(pairs) {
                Err(ParamError::BadValue { key: k, .. }) => assert_eq!(k, key, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        let mut s = small();
        assert!(s.set_params(&Params::new([("qty", "0.2")])).is_ok());
        assert_eq!(s.config().qty, q("0.2"));
        assert!(s.set_params(&Params::new([("slow", "9")])).is_err());
    }
}
