//! Pre-trade risk: every new order passes [`Risk::check`] before it leaves the core.
//!
//! **Real-time contract.** [`Risk::new`] sizes one slot per symbol (limits and a token bucket, one
//! cache line) and nothing grows after that: a check allocates nothing, reads no clock (time is the
//! `now_ns` argument, the core's monotonic clock) and is O(1): a handful of integer comparisons in
//! `i128`, so no product of prices and quantities can overflow or round. The denial path is
//! `#[cold]`; so are the control operations (limits, state, kill switch).
//!
//! **Checks, in order.** The first that fails is the [`DenyReason`] returned and counted:
//!
//! 1. state: [`TradingState::Halted`] denies everything ([`DenyReason::KillSwitch`] when the kill
//!    switch halted it, else [`DenyReason::Halted`]); [`TradingState::Reducing`] denies an order that
//!    does not reduce |position| or could flip it ([`DenyReason::ReducingOnly`]);
//! 2. [`DenyReason::MaxOrderQty`]: quantity not in `1..=max_order_qty` units (a quantity of zero
//!    or less is denied here too);
//! 3. [`DenyReason::NoReferencePrice`]: no (positive) last trade price. Market orders need it for
//!    their notional; limit orders need it for the price band, so they are denied too (fail closed);
//! 4. [`DenyReason::MaxNotional`]: `price x qty > max_order_notional`, compared exactly (no truncation
//!    at 1e-8); a market order is valued at the last trade;
//! 5. [`DenyReason::PriceBand`] (limit orders only): `|limit - last| <= last x bps / 10_000` must
//!    hold, as `|limit - last| x 10_000 <= last x bps` in integers; a limit price of zero or less is
//!    always outside the band;
//! 6. [`DenyReason::MaxPosition`]: the worst case if every open order on the order's side fills,
//!    then this one: `position + open_buy + qty <= max_position` for a buy,
//!    `position - open_sell - qty >= -max_position` for a sell (so an order that reduces a position
//!    already over a lowered limit still passes);
//! 7. [`DenyReason::MaxOpenOrders`]: `open_orders < max_open_orders` (the new order is the next one);
//! 8. [`DenyReason::RateLimited`]: a token bucket per symbol; only an order that passed every other
//!    check takes a token, so denied orders never use up the budget.
//!
//! **Token bucket.** Kept in nano-tokens (one token = 10^9), so a refill is exactly
//! `elapsed_ns x rate_per_sec` nano-tokens, capped at `burst` tokens, and nothing is lost to
//! rounding between frequent checks (the brief's `elapsed x rate / 1e9` tokens, remainder kept).
//! The bucket starts full. A clock that steps backwards refills nothing.
//!
//! **Kill switch.** [`Risk::kill`] halts trading and sets a flag the core reads
//! ([`Risk::is_killed`]) to cancel every open order; only [`Risk::resume`] clears it
//! ([`Risk::set_state`] is ignored while killed, so a state change cannot undo a kill by accident).
//!
//! ```
//! use engine::event::{OrderRequest, OrderType, Side};
//! use engine::fixed::{Price, Qty};
//! use engine::event::DenyReason;
//! use engine::risk::{Risk, RiskInputs, RiskLimits};
//! use engine::symbol::SymbolId;
//!
//! let mut risk = Risk::new(1, RiskLimits::default());
//! let btc = SymbolId(0);
//! let inputs = RiskInputs {
//!     last_trade: Some(Price::from_int(60_000)),
//!     ..RiskInputs::default()
//! };
//! let mut req = OrderRequest {
//!     side: Side::Buy,
//!     price: Price::from_int(59_990),
//!     qty: Qty(100_000), // 0.001
//!     order_type: OrderType::LimitGtc,
//! };
//! assert_eq!(risk.check(btc, &req, &inputs, 1_000), Ok(()));
//! req.price = Price::from_int(6_000); // a misplaced digit
//! assert_eq!(risk.check(btc, &req, &inputs, 2_000), Err(DenyReason::PriceBand));
//! assert_eq!(risk.denials().get(DenyReason::PriceBand), 1);
//! ```

use crate::event::{DenyReason, OrderRequest, OrderType, Side};
use crate::fixed::{Notional, Price, Qty, SCALE};
use crate::symbol::SymbolId;

/// Nanoseconds per second, and nano-tokens per token.
const NS_PER_SEC: u64 = 1_000_000_000;
/// Basis points per whole.
const BPS_PER_UNIT: i128 = 10_000;

/// Limits of one symbol. Quantities and prices are in 1e-8 units, like everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskLimits {
    /// Largest quantity of one order.
    pub max_order_qty: Qty,
    /// Largest `price x qty` of one order (market orders at the last trade price).
    pub max_order_notional: Notional,
    /// Largest |position| in the worst case (every open order on the same side filled, and this one).
    pub max_position: Qty,
    /// Most open orders at once on this symbol.
    pub max_open_orders: u32,
    /// Orders per second, sustained (token bucket refill rate). `u32::MAX` makes the limit moot.
    pub rate_per_sec: u32,
    /// Orders at once after a quiet period (token bucket size). Zero denies every order.
    pub burst: u32,
    /// Limit prices must lie within this many basis points of the last trade, either way.
    pub price_band_bps: u32,
}

impl Default for RiskLimits {
    /// Conservative limits sized for BTCUSDT-like symbols and the bundled strategies:
    ///
    /// | limit | default | why |
    /// |---|---|---|
    /// | `max_order_qty` | 1 (base units) | 0.001-0.002 BTC is what the bundled strategies send |
    /// | `max_order_notional` | 100,000 (quote) | one fat-finger order stays bounded |
    /// | `max_position` | 5 (base units) | |
    /// | `max_open_orders` | 32 | room for `naive` with many chunks |
    /// | `rate_per_sec` / `burst` | 10 / 20 | well under a venue's per-account order limits |
    /// | `price_band_bps` | 2,000 (20 %) | passes `probe`'s default 10 %-away order, catches a misplaced digit (x10, x0.1) |
    ///
    /// Set real ones per symbol with [`Risk::set_limits`]: a quantity of 1 means very different
    /// money on different symbols.
    fn default() -> Self {
        RiskLimits {
            max_order_qty: Qty::from_int(1),
            max_order_notional: Notional(100_000 * SCALE as i128),
            max_position: Qty::from_int(5),
            max_open_orders: 32,
            rate_per_sec: 10,
            burst: 20,
            price_band_bps: 2_000,
        }
    }
}

/// What the risk gate lets through, for every symbol of the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TradingState {
    /// Normal trading.
    #[default]
    Active,
    /// Only orders that reduce |position| (and cannot flip it) pass.
    Reducing,
    /// Nothing passes.
    Halted,
}

/// Denials counted per reason since the [`Risk`] was built (cumulative; never reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DenialCounters {
    counts: [u64; DenyReason::COUNT],
}

impl DenialCounters {
    /// Denials for `reason`.
    #[inline]
    pub fn get(&self, reason: DenyReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Denials for every reason together.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every reason with its count, in [`DenyReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DenyReason, u64)> + '_ {
        DenyReason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    #[inline]
    fn record(&mut self, reason: DenyReason) {
        let c = &mut self.counts[reason.index()];
        *c = c.wrapping_add(1);
    }
}

/// What the core knows about a symbol when an order is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskInputs {
    /// Signed position, 1e-8 base units (long > 0).
    pub position: i64,
    /// Open (unfilled) quantity of our buy orders, 1e-8 units, not negative.
    pub open_buy_qty: i64,
    /// Open (unfilled) quantity of our sell orders, 1e-8 units, not negative.
    pub open_sell_qty: i64,
    /// Our open orders on the symbol.
    pub open_orders: u32,
    /// Last trade price on the symbol, if any.
    pub last_trade: Option<Price>,
}

/// An order-rate token bucket, in nano-tokens (one token = [`NS_PER_SEC`]).
#[derive(Clone, Copy, Debug)]
struct TokenBucket {
    credit: u64,
    last_ns: u64,
}

impl TokenBucket {
    fn full(burst: u32) -> Self {
        TokenBucket {
            credit: capacity(burst),
            last_ns: 0,
        }
    }

    /// Refills for the time since the last refill, then takes one token if there is one.
    #[inline]
    fn try_take(&mut self, now_ns: u64, rate_per_sec: u32, burst: u32) -> bool {
        let cap = capacity(burst);
        if now_ns > self.last_ns {
            let earned = (now_ns - self.last_ns).saturating_mul(rate_per_sec as u64);
            self.credit = self.credit.saturating_add(earned).min(cap);
            self.last_ns = now_ns;
        }
        if self.credit >= NS_PER_SEC {
            self.credit -= NS_PER_SEC;
            true
        } else {
            false
        }
    }
}

/// `burst` tokens in nano-tokens (at most `u32::MAX x 10^9`, well inside `u64`).
#[inline]
const fn capacity(burst: u32) -> u64 {
    burst as u64 * NS_PER_SEC
}

/// One symbol's limits and bucket: one cache line, read together on every check.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Slot {
    limits: RiskLimits,
    bucket: TokenBucket,
}

const _: () = assert!(core::mem::size_of::<Slot>() == 64);

/// Pre-trade risk of one engine: limits and token buckets per symbol, one trading state, the kill
/// switch, and denial counters. Owned by the core thread.
#[derive(Clone, Debug)]
pub struct Risk {
    slots: Vec<Slot>,
    state: TradingState,
    killed: bool,
    denials: DenialCounters,
}

impl Risk {
    /// Risk for symbols `0..symbols`, each with `limits` and a full token bucket. The only
    /// allocation this type ever makes.
    #[cold]
    pub fn new(symbols: usize, limits: RiskLimits) -> Self {
        Risk {
            slots: vec![
                Slot {
                    limits,
                    bucket: TokenBucket::full(limits.burst),
                };
                symbols
            ],
            state: TradingState::Active,
            killed: false,
            denials: DenialCounters::default(),
        }
    }

    /// Number of symbols this was built for.
    pub fn symbols(&self) -> usize {
        self.slots.len()
    }

    /// The limits of `symbol`, or `None` for a symbol this was not built for.
    pub fn limits(&self, symbol: SymbolId) -> Option<&RiskLimits> {
        self.slots.get(symbol.index()).map(|s| &s.limits)
    }

    /// Replaces the limits of `symbol`. The bucket keeps its tokens, capped at the new `burst`.
    /// Returns false (and changes nothing) for a symbol this was not built for.
    #[cold]
    pub fn set_limits(&mut self, symbol: SymbolId, limits: RiskLimits) -> bool {
        let Some(slot) = self.slots.get_mut(symbol.index()) else {
            return false;
        };
        slot.limits = limits;
        slot.bucket.credit = slot.bucket.credit.min(capacity(limits.burst));
        true
    }

    /// Checks one new order of `symbol` against its limits and the trading state, at `now_ns` (the
    /// core's monotonic clock). On success the order has taken a rate token; a denial takes none
    /// and is counted under its reason. A symbol this was not built for is denied
    /// [`DenyReason::Halted`] (nothing is configured for it, so it does not trade).
    #[inline]
    pub fn check(
        &mut self,
        symbol: SymbolId,
        req: &OrderRequest,
        inputs: &RiskInputs,
        now_ns: u64,
    ) -> Result<(), DenyReason> {
        let verdict = match self.slots.get_mut(symbol.index()) {
            Some(slot) => evaluate(slot, self.state, self.killed, req, inputs, now_ns),
            None => Err(DenyReason::Halted),
        };
        match verdict {
            Ok(()) => Ok(()),
            Err(reason) => Err(self.deny(reason)),
        }
    }

    #[cold]
    #[inline(never)]
    fn deny(&mut self, reason: DenyReason) -> DenyReason {
        self.denials.record(reason);
        reason
    }

    /// The trading state.
    #[inline]
    pub fn state(&self) -> TradingState {
        self.state
    }

    /// Sets the trading state. Ignored while the kill switch is on: only [`Risk::resume`] ends a
    /// kill.
    #[cold]
    pub fn set_state(&mut self, s: TradingState) {
        if !self.killed {
            self.state = s;
        }
    }

    /// The kill switch: halts trading and raises the flag on which the core cancels every open
    /// order ([`Risk::is_killed`]). Orders are denied [`DenyReason::KillSwitch`] until
    /// [`Risk::resume`].
    #[cold]
    pub fn kill(&mut self) {
        self.killed = true;
        self.state = TradingState::Halted;
    }

    /// True while the kill switch is on.
    #[inline]
    pub fn is_killed(&self) -> bool {
        self.killed
    }

    /// Clears the kill switch (if on) and goes back to [`TradingState::Active`].
    #[cold]
    pub fn resume(&mut self) {
        self.killed = false;
        self.state = TradingState::Active;
    }

    /// Denials so far, per reason.
    #[inline]
    pub fn denials(&self) -> &DenialCounters {
        &self.denials
    }
}

/// The checks, in the documented order; takes a rate token only when everything else passed.
#[inline(always)]
fn evaluate(
    slot: &mut Slot,
    state: TradingState,
    killed: bool,
    req: &OrderRequest,
    inputs: &RiskInputs,
    now_ns: u64,
) -> Result<(), DenyReason> {
    let lim = &slot.limits;
    match state {
        TradingState::Active => {}
        TradingState::Halted if killed => return Err(DenyReason::KillSwitch),
        TradingState::Halted => return Err(DenyReason::Halted),
        TradingState::Reducing if reduces(req, inputs) => {}
        TradingState::Reducing => return Err(DenyReason::ReducingOnly),
    }

    let qty = req.qty.0;
    if qty <= 0 || qty > lim.max_order_qty.0 {
        return Err(DenyReason::MaxOrderQty);
    }

    let last = match inputs.last_trade {
        Some(p) if p.0 > 0 => p.0,
        _ => return Err(DenyReason::NoReferencePrice),
    };
    let is_market = req.order_type == OrderType::Market;
    let price = if is_market { last } else { req.price.0 };

    // price x qty is in 1e-16 quote units; the limit in 1e-8 units, scaled up to compare exactly.
    let notional = price as i128 * qty as i128;
    if notional > lim.max_order_notional.0.saturating_mul(SCALE as i128) {
        return Err(DenyReason::MaxNotional);
    }

    if !is_market {
        let (limit, last) = (price as i128, last as i128);
        if limit <= 0 || (limit - last).abs() * BPS_PER_UNIT > last * lim.price_band_bps as i128 {
            return Err(DenyReason::PriceBand);
        }
    }

    let pos = inputs.position as i128;
    let qty = qty as i128;
    let max_pos = lim.max_position.0 as i128;
    let over = match req.side {
        Side::Buy => pos + (inputs.open_buy_qty.max(0) as i128) + qty > max_pos,
        Side::Sell => pos - (inputs.open_sell_qty.max(0) as i128) - qty < -max_pos,
    };
    if over {
        return Err(DenyReason::MaxPosition);
    }

    if inputs.open_orders >= lim.max_open_orders {
        return Err(DenyReason::MaxOpenOrders);
    }

    if !slot.bucket.try_take(now_ns, lim.rate_per_sec, lim.burst) {
        return Err(DenyReason::RateLimited);
    }
    Ok(())
}

/// True if `req` moves the position towards zero and cannot take it through zero, even if every
/// open order on the same side fills first.
#[inline]
fn reduces(req: &OrderRequest, inputs: &RiskInputs) -> bool {
    let pos = inputs.position as i128;
    let qty = req.qty.0 as i128;
    if qty <= 0 {
        return false;
    }
    match req.side {
        Side::Sell => pos > 0 && qty + inputs.open_sell_qty.max(0) as i128 <= pos,
        Side::Buy => pos < 0 && qty + inputs.open_buy_qty.max(0) as i128 <= -pos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYM: SymbolId = SymbolId(0);
    const SEC: u64 = NS_PER_SEC;

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap()
    }
    fn q(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap()
    }

    /// Limits that never bind, so each test tightens exactly the one it is about.
    fn loose() -> RiskLimits {
        RiskLimits {
            max_order_qty: Qty(i64::MAX),
            max_order_notional: Notional(i128::MAX),
            max_position: Qty(i64::MAX),
            max_open_orders: u32::MAX,
            rate_per_sec: u32::MAX,
            burst: u32::MAX,
            price_band_bps: 1_000_000,
        }
    }

    fn limit(side: Side, price: &str, qty: &str) -> OrderRequest {
        OrderRequest {
            side,
            price: px(price),
            qty: q(qty),
            order_type: OrderType::LimitGtc,
        }
    }

    fn market(side: Side, qty: &str) -> OrderRequest {
        OrderRequest {
            side,
            price: Price::ZERO,
            qty: q(qty),
            order_type: OrderType::Market,
        }
    }

    fn at(last: &str) -> RiskInputs {
        RiskInputs {
            last_trade: Some(px(last)),
            ..RiskInputs::default()
        }
    }

    fn risk(limits: RiskLimits) -> Risk {
        Risk::new(2, limits)
    }

    #[test]
    fn max_order_qty_boundary() {
        let mut r = risk(RiskLimits {
            max_order_qty: q("1.5"),
            ..loose()
        });
        let inp = at("100");
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "1.5"), &inp, 0),
            Ok(())
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "1.50000001"), &inp, 0),
            Err(DenyReason::MaxOrderQty)
        );
        assert_eq!(r.check(SYM, &market(Side::Sell, "1.5"), &inp, 0), Ok(()));
        assert_eq!(
            r.check(SYM, &market(Side::Sell, "1.50000001"), &inp, 0),
            Err(DenyReason::MaxOrderQty)
        );
        // Not positive: never a valid order.
        for bad in ["0", "-0.00000001", "-1"] {
            assert_eq!(
                r.check(SYM, &limit(Side::Buy, "100", bad), &inp, 0),
                Err(DenyReason::MaxOrderQty),
                "{bad}"
            );
        }
        assert_eq!(r.denials().get(DenyReason::MaxOrderQty), 5);
    }

    #[test]
    fn max_notional_boundary_limit_and_market() {
        let mut r = risk(RiskLimits {
            max_order_notional: Notional(1_000 * SCALE as i128),
            ..loose()
        });
        // Limit: valued at its own price.
        let inp = at("90");
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "10"), &inp, 0),
            Ok(())
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "10.00000001"), &inp, 0),
            Err(DenyReason::MaxNotional)
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100.00000001", "10"), &inp, 0),
            Err(DenyReason::MaxNotional)
        );
        // Market: valued at the last trade.
        let inp = at("100");
        assert_eq!(r.check(SYM, &market(Side::Buy, "10"), &inp, 0), Ok(()));
        assert_eq!(
            r.check(SYM, &market(Side::Buy, "10.00000001"), &inp, 0),
            Err(DenyReason::MaxNotional)
        );
        let inp = at("100.00000001");
        assert_eq!(
            r.check(SYM, &market(Side::Sell, "10"), &inp, 0),
            Err(DenyReason::MaxNotional)
        );
        assert_eq!(r.denials().get(DenyReason::MaxNotional), 4);
    }

    #[test]
    fn notional_is_exact_below_one_unit() {
        // 0.00000001 x 1.00000001 = 0.0000000100000001: over a limit of 0.00000001 by less than a
        // unit, which `Notional::of` would truncate away.
        let mut r = risk(RiskLimits {
            max_order_notional: Notional(1),
            ..loose()
        });
        let inp = RiskInputs {
            last_trade: Some(Price(1)),
            ..RiskInputs::default()
        };
        let mut req = OrderRequest {
            side: Side::Buy,
            price: Price(1),
            qty: Qty(SCALE),
            order_type: OrderType::LimitIoc,
        };
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        req.qty = Qty(SCALE + 1);
        assert_eq!(Notional::of(req.price, req.qty), Notional(1));
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::MaxNotional));
    }

    #[test]
    fn max_position_worst_case_per_side() {
        let mut r = risk(RiskLimits {
            max_position: q("10"),
            ..loose()
        });
        // Long 4, 3 more bought in open orders, 5 sold in open orders (other side: ignored).
        let mut inp = at("100");
        inp.position = q("4").0;
        inp.open_buy_qty = q("3").0;
        inp.open_sell_qty = q("5").0;
        inp.open_orders = 2;
        assert_eq!(r.check(SYM, &limit(Side::Buy, "100", "3"), &inp, 0), Ok(()));
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "3.00000001"), &inp, 0),
            Err(DenyReason::MaxPosition)
        );
        // Sell: 4 - 5 - qty >= -10, so qty <= 9.
        assert_eq!(r.check(SYM, &market(Side::Sell, "9"), &inp, 0), Ok(()));
        assert_eq!(
            r.check(SYM, &market(Side::Sell, "9.00000001"), &inp, 0),
            Err(DenyReason::MaxPosition)
        );
        // Short side symmetric: short 10 exactly at the limit, nothing open.
        let mut inp = at("100");
        inp.position = -q("10").0;
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100", "0.00000001"), &inp, 0),
            Err(DenyReason::MaxPosition)
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "20"), &inp, 0),
            Ok(())
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "20.00000001"), &inp, 0),
            Err(DenyReason::MaxPosition)
        );
        assert_eq!(r.denials().get(DenyReason::MaxPosition), 4);
    }

    #[test]
    fn reducing_a_position_over_a_lowered_limit_passes() {
        let mut r = risk(RiskLimits {
            max_position: q("1"),
            ..loose()
        });
        let mut inp = at("100");
        inp.position = q("5").0;
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100", "2"), &inp, 0),
            Ok(())
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "0.00000001"), &inp, 0),
            Err(DenyReason::MaxPosition)
        );
    }

    #[test]
    fn max_open_orders_boundary() {
        let mut r = risk(RiskLimits {
            max_open_orders: 3,
            ..loose()
        });
        let mut inp = at("100");
        inp.open_orders = 2;
        assert_eq!(r.check(SYM, &limit(Side::Buy, "100", "1"), &inp, 0), Ok(()));
        inp.open_orders = 3;
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "1"), &inp, 0),
            Err(DenyReason::MaxOpenOrders)
        );
        let mut r = risk(RiskLimits {
            max_open_orders: 0,
            ..loose()
        });
        inp.open_orders = 0;
        assert_eq!(
            r.check(SYM, &market(Side::Buy, "1"), &inp, 0),
            Err(DenyReason::MaxOpenOrders)
        );
    }

    #[test]
    fn price_band_boundary_both_ways() {
        let mut r = risk(RiskLimits {
            price_band_bps: 100, // 1 %
            ..loose()
        });
        let inp = at("100");
        for ok in ["101", "99", "100", "100.5"] {
            assert_eq!(
                r.check(SYM, &limit(Side::Buy, ok, "1"), &inp, 0),
                Ok(()),
                "{ok}"
            );
        }
        for bad in ["101.00000001", "98.99999999", "1000", "10"] {
            assert_eq!(
                r.check(SYM, &limit(Side::Sell, bad, "1"), &inp, 0),
                Err(DenyReason::PriceBand),
                "{bad}"
            );
        }
        // Band not a whole number of units: 0.5 % of 33.33333333 = 0.166666666650 -> 0.16666666.
        let mut r = risk(RiskLimits {
            price_band_bps: 50,
            ..loose()
        });
        let inp = at("33.33333333");
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "33.49999999", "1"), &inp, 0),
            Ok(())
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "33.50000000", "1"), &inp, 0),
            Err(DenyReason::PriceBand)
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "33.16666667", "1"), &inp, 0),
            Ok(())
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "33.16666666", "1"), &inp, 0),
            Err(DenyReason::PriceBand)
        );
    }

    #[test]
    fn market_orders_skip_the_band_and_bad_limit_prices_never_pass() {
        let mut r = risk(RiskLimits {
            price_band_bps: 0,
            ..loose()
        });
        let inp = at("100");
        assert_eq!(r.check(SYM, &market(Side::Buy, "1"), &inp, 0), Ok(()));
        assert_eq!(r.check(SYM, &limit(Side::Buy, "100", "1"), &inp, 0), Ok(()));
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100.00000001", "1"), &inp, 0),
            Err(DenyReason::PriceBand)
        );
        // A band of 100 % or more would admit a price of zero arithmetically: denied anyway.
        let mut r = risk(RiskLimits {
            price_band_bps: 20_000,
            ..loose()
        });
        for bad in ["0", "-1"] {
            assert_eq!(
                r.check(SYM, &limit(Side::Sell, bad, "1"), &inp, 0),
                Err(DenyReason::PriceBand),
                "{bad}"
            );
        }
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "300", "1"), &inp, 0),
            Ok(())
        );
    }

    #[test]
    fn no_reference_price() {
        let mut r = risk(loose());
        let none = RiskInputs::default();
        assert_eq!(
            r.check(SYM, &market(Side::Buy, "1"), &none, 0),
            Err(DenyReason::NoReferencePrice)
        );
        // Limit orders cannot be banded without a last trade: fail closed.
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "1"), &none, 0),
            Err(DenyReason::NoReferencePrice)
        );
        let zero = RiskInputs {
            last_trade: Some(Price::ZERO),
            ..RiskInputs::default()
        };
        assert_eq!(
            r.check(SYM, &market(Side::Sell, "1"), &zero, 0),
            Err(DenyReason::NoReferencePrice)
        );
        assert_eq!(r.check(SYM, &market(Side::Sell, "1"), &at("1"), 0), Ok(()));
        assert_eq!(r.denials().get(DenyReason::NoReferencePrice), 3);
    }

    #[test]
    fn reducing_only_reduces_and_never_flips() {
        let mut r = risk(loose());
        r.set_state(TradingState::Reducing);
        assert_eq!(r.state(), TradingState::Reducing);
        let mut inp = at("100");

        // Flat: nothing reduces.
        for req in [limit(Side::Buy, "100", "1"), market(Side::Sell, "1")] {
            assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::ReducingOnly));
        }

        // Long 5: sells up to 5 pass, buys never.
        inp.position = q("5").0;
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100", "5"), &inp, 0),
            Ok(())
        );
        assert_eq!(r.check(SYM, &market(Side::Sell, "0.1"), &inp, 0), Ok(()));
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100", "5.00000001"), &inp, 0),
            Err(DenyReason::ReducingOnly)
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "0.00000001"), &inp, 0),
            Err(DenyReason::ReducingOnly)
        );
        // Open sells count: with 2 already offered, at most 3 more.
        inp.open_sell_qty = q("2").0;
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100", "3"), &inp, 0),
            Ok(())
        );
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100", "3.00000001"), &inp, 0),
            Err(DenyReason::ReducingOnly)
        );

        // Short 3: buys up to 3 pass.
        let mut inp = at("100");
        inp.position = -q("3").0;
        assert_eq!(r.check(SYM, &market(Side::Buy, "3"), &inp, 0), Ok(()));
        assert_eq!(
            r.check(SYM, &market(Side::Buy, "3.00000001"), &inp, 0),
            Err(DenyReason::ReducingOnly)
        );
        assert_eq!(
            r.check(SYM, &market(Side::Sell, "1"), &inp, 0),
            Err(DenyReason::ReducingOnly)
        );

        // Every other limit still applies to a reducing order.
        r.set_limits(
            SYM,
            RiskLimits {
                max_order_qty: q("1"),
                ..loose()
            },
        );
        assert_eq!(
            r.check(SYM, &market(Side::Buy, "2"), &inp, 0),
            Err(DenyReason::MaxOrderQty)
        );
        assert_eq!(r.denials().get(DenyReason::ReducingOnly), 7);

        r.set_state(TradingState::Active);
        assert_eq!(r.check(SYM, &market(Side::Sell, "1"), &inp, 0), Ok(()));
    }

    #[test]
    fn halted_denies_everything_until_active() {
        let mut r = risk(loose());
        r.set_state(TradingState::Halted);
        assert_eq!(r.state(), TradingState::Halted);
        let mut inp = at("100");
        inp.position = q("5").0;
        // Even an order that would reduce.
        for req in [limit(Side::Sell, "100", "1"), market(Side::Buy, "1")] {
            assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::Halted));
        }
        assert!(!r.is_killed());
        r.set_state(TradingState::Active);
        assert_eq!(
            r.check(SYM, &limit(Side::Sell, "100", "1"), &inp, 0),
            Ok(())
        );
        assert_eq!(r.denials().get(DenyReason::Halted), 2);
    }

    #[test]
    fn kill_switch_only_resume_clears_it() {
        let mut r = risk(loose());
        let inp = at("100");
        let req = limit(Side::Buy, "100", "1");
        assert!(!r.is_killed());
        r.kill();
        assert!(r.is_killed());
        assert_eq!(r.state(), TradingState::Halted);
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::KillSwitch));
        // A state change does not undo a kill.
        r.set_state(TradingState::Active);
        assert_eq!(r.state(), TradingState::Halted);
        assert!(r.is_killed());
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::KillSwitch));
        // Killing twice is harmless.
        r.kill();
        r.resume();
        assert!(!r.is_killed());
        assert_eq!(r.state(), TradingState::Active);
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        assert_eq!(r.denials().get(DenyReason::KillSwitch), 2);
        assert_eq!(r.denials().get(DenyReason::Halted), 0);
        // Resume from a plain halt or from reducing also goes back to active.
        r.set_state(TradingState::Reducing);
        r.resume();
        assert_eq!(r.state(), TradingState::Active);
    }

    #[test]
    fn token_bucket_refills_with_a_hand_driven_clock() {
        let mut r = risk(RiskLimits {
            rate_per_sec: 2,
            burst: 3,
            ..loose()
        });
        let inp = at("100");
        let req = limit(Side::Buy, "100", "1");
        let t0 = 1_000 * SEC;
        // Starts full: a burst of 3, then empty.
        for _ in 0..3 {
            assert_eq!(r.check(SYM, &req, &inp, t0), Ok(()));
        }
        assert_eq!(r.check(SYM, &req, &inp, t0), Err(DenyReason::RateLimited));
        // One token per 500 ms, to the nanosecond.
        assert_eq!(
            r.check(SYM, &req, &inp, t0 + SEC / 2 - 1),
            Err(DenyReason::RateLimited)
        );
        assert_eq!(r.check(SYM, &req, &inp, t0 + SEC / 2), Ok(()));
        assert_eq!(
            r.check(SYM, &req, &inp, t0 + SEC / 2),
            Err(DenyReason::RateLimited)
        );
        // A long pause refills to the burst, not beyond.
        let t1 = t0 + 3_600 * SEC;
        for _ in 0..3 {
            assert_eq!(r.check(SYM, &req, &inp, t1), Ok(()));
        }
        assert_eq!(r.check(SYM, &req, &inp, t1), Err(DenyReason::RateLimited));
        // A clock stepping backwards refills nothing (and does not panic).
        assert_eq!(r.check(SYM, &req, &inp, t0), Err(DenyReason::RateLimited));
        assert_eq!(r.denials().get(DenyReason::RateLimited), 5);
    }

    #[test]
    fn token_bucket_keeps_fractions_between_frequent_checks() {
        // 3 orders a second checked every 1 ms: `elapsed x rate / 1e9` alone would be 0 each
        // time and the bucket would never refill; the remainder must carry over.
        let mut r = risk(RiskLimits {
            rate_per_sec: 3,
            burst: 2,
            ..loose()
        });
        let inp = at("100");
        let req = market(Side::Sell, "1");
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        let mut passed_at = Vec::new();
        for ms in 1..=1_000u64 {
            if r.check(SYM, &req, &inp, ms * 1_000_000).is_ok() {
                passed_at.push(ms);
            }
        }
        // 333.33 ms per token, fractions kept: 1.002 at 334 ms, then 1.001 at 667, 1.000 at 1000.
        assert_eq!(passed_at, [334, 667, 1_000]);

        // The cap applies to the fraction too: with a burst of 1 the 0.002 over the top at 334 ms
        // is lost, as in any token bucket, so the next tokens come at 668 and 1002 ms.
        let mut r = risk(RiskLimits {
            rate_per_sec: 3,
            burst: 1,
            ..loose()
        });
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        let passed_at: Vec<u64> = (1..=1_100u64)
            .filter(|ms| r.check(SYM, &req, &inp, ms * 1_000_000).is_ok())
            .collect();
        assert_eq!(passed_at, [334, 668, 1_002]);
    }

    #[test]
    fn only_passing_orders_take_tokens() {
        let mut r = risk(RiskLimits {
            rate_per_sec: 0,
            burst: 1,
            max_order_qty: q("1"),
            ..loose()
        });
        let inp = at("100");
        for _ in 0..10 {
            assert_eq!(
                r.check(SYM, &limit(Side::Buy, "100", "2"), &inp, 0),
                Err(DenyReason::MaxOrderQty)
            );
        }
        assert_eq!(r.check(SYM, &limit(Side::Buy, "100", "1"), &inp, 0), Ok(()));
        // rate 0: the burst is all there ever is.
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "1"), &inp, u64::MAX),
            Err(DenyReason::RateLimited)
        );
        // burst 0: nothing passes.
        let mut r = risk(RiskLimits {
            burst: 0,
            ..loose()
        });
        assert_eq!(
            r.check(SYM, &limit(Side::Buy, "100", "1"), &inp, 10 * SEC),
            Err(DenyReason::RateLimited)
        );
    }

    #[test]
    fn buckets_and_limits_are_per_symbol() {
        let mut r = risk(RiskLimits {
            rate_per_sec: 1,
            burst: 1,
            ..loose()
        });
        let other = SymbolId(1);
        let inp = at("100");
        let req = limit(Side::Buy, "100", "1");
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::RateLimited));
        assert_eq!(r.check(other, &req, &inp, 0), Ok(()));

        assert!(r.set_limits(
            other,
            RiskLimits {
                max_order_qty: q("0.5"),
                ..loose()
            }
        ));
        assert_eq!(r.limits(other).unwrap().max_order_qty, q("0.5"));
        assert_eq!(r.limits(SYM).unwrap().max_order_qty, Qty(i64::MAX));
        assert_eq!(r.check(other, &req, &inp, 0), Err(DenyReason::MaxOrderQty));

        // Lowering the burst caps the tokens already there.
        let mut r = risk(RiskLimits {
            burst: 5,
            ..loose()
        });
        r.set_limits(
            SYM,
            RiskLimits {
                rate_per_sec: 0,
                burst: 2,
                ..loose()
            },
        );
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::RateLimited));
    }

    #[test]
    fn unknown_symbols_do_not_trade() {
        let mut r = risk(loose());
        assert_eq!(r.symbols(), 2);
        let inp = at("100");
        let req = limit(Side::Buy, "100", "1");
        for s in [SymbolId(2), SymbolId::ALL] {
            assert_eq!(r.check(s, &req, &inp, 0), Err(DenyReason::Halted));
            assert!(!r.set_limits(s, loose()));
            assert!(r.limits(s).is_none());
        }
        assert_eq!(r.denials().get(DenyReason::Halted), 2);
    }

    #[test]
    fn first_failing_check_wins_in_the_documented_order() {
        let tight = RiskLimits {
            max_order_qty: q("1"),
            max_order_notional: Notional(SCALE as i128),
            max_position: q("1"),
            max_open_orders: 1,
            rate_per_sec: 0,
            burst: 0,
            price_band_bps: 0,
        };
        // Breaks every limit at once; relax them one by one and watch the reason move on.
        let mut inp = RiskInputs {
            position: q("5").0,
            open_buy_qty: q("5").0,
            open_sell_qty: 0,
            open_orders: 1,
            last_trade: None,
        };
        let mut req = limit(Side::Buy, "200", "2");
        let mut r = risk(tight);
        r.kill();
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::KillSwitch));
        r.resume();
        r.set_state(TradingState::Halted);
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::Halted));
        r.set_state(TradingState::Reducing);
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::ReducingOnly));
        r.set_state(TradingState::Active);
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::MaxOrderQty));
        req.qty = q("1");
        assert_eq!(
            r.check(SYM, &req, &inp, 0),
            Err(DenyReason::NoReferencePrice)
        );
        inp.last_trade = Some(px("100"));
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::MaxNotional));
        r.set_limits(
            SYM,
            RiskLimits {
                max_order_notional: Notional(i128::MAX),
                ..tight
            },
        );
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::PriceBand));
        req.price = px("100");
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::MaxPosition));
        inp.position = 0;
        inp.open_buy_qty = 0;
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::MaxOpenOrders));
        inp.open_orders = 0;
        assert_eq!(r.check(SYM, &req, &inp, 0), Err(DenyReason::RateLimited));
    }

    #[test]
    fn counters_per_reason() {
        let mut r = risk(RiskLimits {
            max_order_qty: q("10"),
            max_order_notional: Notional(10_000 * SCALE as i128),
            max_position: q("20"),
            max_open_orders: 5,
            rate_per_sec: 0,
            burst: 4,
            price_band_bps: 100,
        });
        let inp = at("100");
        let ok = limit(Side::Buy, "100", "1");
        let mut expect = [0u64; DenyReason::COUNT];
        let mut deny = |r: &mut Risk, req: &OrderRequest, inp: &RiskInputs, why: DenyReason| {
            assert_eq!(r.check(SYM, req, inp, 0), Err(why));
            expect[why.index()] += 1;
        };
        deny(
            &mut r,
            &limit(Side::Buy, "100", "11"),
            &inp,
            DenyReason::MaxOrderQty,
        );
        deny(
            &mut r,
            &limit(Side::Buy, "100", "11"),
            &inp,
            DenyReason::MaxOrderQty,
        );
        let rich = at("1001");
        deny(
            &mut r,
            &market(Side::Buy, "10"),
            &rich,
            DenyReason::MaxNotional,
        );
        deny(
            &mut r,
            &limit(Side::Buy, "102", "1"),
            &inp,
            DenyReason::PriceBand,
        );
        deny(
            &mut r,
            &market(Side::Buy, "1"),
            &RiskInputs::default(),
            DenyReason::NoReferencePrice,
        );
        let long = RiskInputs {
            position: q("19.5").0,
            ..inp
        };
        deny(&mut r, &ok, &long, DenyReason::MaxPosition);
        let busy = RiskInputs {
            open_orders: 5,
            ..inp
        };
        deny(&mut r, &ok, &busy, DenyReason::MaxOpenOrders);
        for _ in 0..4 {
            assert_eq!(r.check(SYM, &ok, &inp, 0), Ok(()));
        }
        deny(&mut r, &ok, &inp, DenyReason::RateLimited);
        r.set_state(TradingState::Reducing);
        deny(&mut r, &ok, &inp, DenyReason::ReducingOnly);
        r.set_state(TradingState::Halted);
        deny(&mut r, &ok, &inp, DenyReason::Halted);
        r.kill();
        deny(&mut r, &ok, &inp, DenyReason::KillSwitch);
        deny(&mut r, &ok, &inp, DenyReason::KillSwitch);

        for (reason, n) in r.denials().iter() {
            assert_eq!(n, expect[reason.index()], "{reason}");
            assert!(n > 0, "{reason} never exercised");
        }
        assert_eq!(r.denials().total(), expect.iter().sum::<u64>());
        assert_eq!(r.denials().total(), 12);
    }

    #[test]
    fn codes_are_stable_unique_and_indexed() {
        let codes: Vec<&str> = DenyReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(
            codes,
            [
                "halted",
                "reducing_only",
                "max_order_qty",
                "max_notional",
                "max_position",
                "max_open_orders",
                "rate_limited",
                "price_band",
                "no_reference_price",
                "kill_switch",
            ]
        );
        for (i, r) in DenyReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(r.to_string().ends_with(&format!("({})", r.code())));
        }
        assert_eq!(
            DenyReason::PriceBand.to_string(),
            "limit price outside the band around the last trade (price_band)"
        );
    }

    #[test]
    fn check_never_allocates_or_grows() {
        let mut r = Risk::new(
            4,
            RiskLimits {
                rate_per_sec: 1_000,
                burst: 10,
                ..RiskLimits::default()
            },
        );
        let slots_ptr = r.slots.as_ptr();
        let slots_cap = r.slots.capacity();
        let inp = at("60000");
        let reqs = [
            limit(Side::Buy, "60000", "0.001"),
            limit(Side::Sell, "70000", "0.001"),
            market(Side::Sell, "2"),
            market(Side::Buy, "0.01"),
        ];
        let mut passed = 0u64;
        for i in 0..10_000u64 {
            let sym = SymbolId((i % 5) as u32); // symbol 4 is unknown
            if r.check(sym, &reqs[(i % 4) as usize], &inp, i * 100_000)
                .is_ok()
            {
                passed += 1;
            }
        }
        assert_eq!(r.slots.as_ptr(), slots_ptr);
        assert_eq!(r.slots.capacity(), slots_cap);
        assert_eq!(r.slots.len(), 4);
        assert_eq!(passed + r.denials().total(), 10_000);
        assert!(passed > 0 && r.denials().total() > 0);
    }

    #[test]
    fn defaults_are_sane() {
        let d = RiskLimits::default();
        assert!(d.max_order_qty.0 > 0 && d.max_order_qty <= d.max_position);
        assert!(d.max_order_notional.0 > 0);
        assert!(d.max_open_orders > 0 && d.rate_per_sec > 0 && d.burst > 0);
        assert!(d.price_band_bps > 0 && d.price_band_bps < 10_000);
        assert_eq!(TradingState::default(), TradingState::Active);
        // probe's default order (10 % under the last trade, rounded down to the tick) passes.
        let mut r = Risk::new(1, d);
        let last = px("61837.63");
        let req = OrderRequest {
            side: Side::Buy,
            price: last.offset_bps(-1_000, px("0.01")),
            qty: Qty(10_000),
            order_type: OrderType::LimitIoc,
        };
        let inp = RiskInputs {
            last_trade: Some(last),
            ..RiskInputs::default()
        };
        assert_eq!(r.check(SYM, &req, &inp, 0), Ok(()));
    }
}
