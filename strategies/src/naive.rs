//! The naive trading cycle, after the Elixir/OTP "naive" bot: buy a little under the market, sell
//! a little over what was paid, repeat.
//!
//! A symbol runs `chunks` traders side by side, each with `budget / chunks` to spend, under a
//! supervising [`Leader`] (see `engine::supervisor`): a trader is a small `Copy` value,
//! [`TraderState`], snapshotted after every change (what the seed's leader process kept), put
//! back when a callback panics, journaled with live orders, and replaced by a fresh one when its
//! cycle is done. One trader's cycle:
//!
//! 1. [`TraderState::Idle`]: on the next trade, place a GTC limit buy at
//!    `trade price x (1 - buy_down_interval)` rounded down to the tick, for
//!    `(budget / chunks) / price` rounded down to the lot, and become
//!    [`Buying`](TraderState::Buying). An order the venue would refuse is not placed (counted in
//!    [`NaiveStats::skipped`]): a quantity under one lot, or a buy or its planned sell whose
//!    notional is under the symbol's minimum.
//! 2. `Buying`: fills accumulate. Once the buy is fully filled, place a GTC limit sell for the
//!    filled quantity at `buy price x (1 + profit_interval)` rounded down to the tick (never below
//!    one tick) and become [`Selling`](TraderState::Selling). A rejected or canceled buy returns
//!    the trader to `Idle`; if part of it had filled, that part is sold as in a full fill.
//! 3. `Selling`: fills accumulate. Once the sell is fully filled the cycle is complete
//!    ([`Naive::cycles`]): the trader is [`Done`](TraderState::Done) and its leader replaces it
//!    with a fresh, idle one. A canceled sell is
//!    placed again at once for what is left; a rejected sell becomes
//!    [`SellPending`](TraderState::SellPending) and is placed again on the next trade, so a venue
//!    that keeps refusing it cannot drive an order/reject loop at round-trip speed.
//!
//! A sell that cannot be placed because the context refused it (outbox full) also waits in
//! `SellPending`; a buy that cannot be placed leaves the trader idle. A remainder too small to
//! sell (under one lot or the minimum notional, after a partial fill) is abandoned, counted in
//! [`NaiveStats::dust`], and the trader starts afresh.
//!
//! The leader routes each order update to the trader that placed it (a fixed table, then the
//! traders' live order ids): no map, no allocation after [`Naive::new`]. `budget`,
//! `buy_down_interval` and `profit_interval` can be changed while trading
//! ([`Strategy::set_params`]); `chunks` cannot.

use engine::event::{ClientOrderId, OrderRequest, OrderType, Side, Trade, TraderBlob};
use engine::fixed::{Notional, Price, Qty, SCALE};
use engine::strategy::{
    Ctx, OrderUpdate, OrderUpdateKind, ParamError, Params, Strategy, SymbolRules,
};
use engine::supervisor::{Leader, RestartPolicy, TraderLogic};

use crate::{bad_value, decimal, floor_qty, scale_price};

/// The name [`crate::build`] knows this strategy by.
pub const NAME: &str = "naive";

/// Most traders per symbol.
pub const MAX_CHUNKS: u64 = 64;

/// The naive strategy's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NaiveConfig {
    /// Traders per symbol (`chunks`, default 1, `1..=64`).
    pub chunks: usize,
    /// Quote amount spent per round of buys across all traders, 1e-8 units (`budget`, default 100).
    pub budget: i64,
    /// Buy this fraction under the trade price, 1e-8 units (`buy_down_interval`, default 0).
    pub buy_down_interval: i64,
    /// Sell this fraction over the buy price, 1e-8 units (`profit_interval`, default 0.001).
    pub profit_interval: i64,
}

impl Default for NaiveConfig {
    fn default() -> Self {
        NaiveConfig {
            chunks: 1,
            budget: 100 * SCALE,
            buy_down_interval: 0,
            profit_interval: 100_000,
        }
    }
}

impl NaiveConfig {
    /// Reads `chunks`, `budget`, `buy_down_interval` and `profit_interval` from `p`, checking
    /// their ranges.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let d = Self::default();
        let chunks = p.u64_in("chunks", d.chunks as u64, 1, MAX_CHUNKS)? as i64;
        let budget = p.fixed("budget", d.budget)?;
        if budget <= 0 {
            return Err(bad_value(
                "budget",
                format!("must be positive (got {})", decimal(budget)),
            ));
        }
        if budget / chunks == 0 {
            return Err(bad_value(
                "budget",
                format!(
                    "too small to split into {chunks} chunks (got {})",
                    decimal(budget)
                ),
            ));
        }
        let buy_down_interval = p.fixed("buy_down_interval", d.buy_down_interval)?;
        if !(0..SCALE).contains(&buy_down_interval) {
            return Err(bad_value(
                "buy_down_interval",
                format!(
                    "must be a ratio in [0, 1), e.g. 0.0005 (got {})",
                    decimal(buy_down_interval)
                ),
            ));
        }
        let profit_interval = p.fixed("profit_interval", d.profit_interval)?;
        if !(-SCALE + 1..=SCALE).contains(&profit_interval) {
            return Err(bad_value(
                "profit_interval",
                format!(
                    "must be a ratio in (-1, 1], e.g. 0.001 (got {})",
                    decimal(profit_interval)
                ),
            ));
        }
        Ok(NaiveConfig {
            chunks: chunks as usize,
            budget,
            buy_down_interval,
            profit_interval,
        })
    }
}

/// Where one trader is in its cycle. `Copy`, so a set of traders can be snapshotted for restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraderState {
    /// Waiting for the next trade to place a buy.
    #[default]
    Idle,
    /// A buy is live.
    Buying {
        /// The buy's client id.
        order_id: ClientOrderId,
        /// Its limit price.
        price: Price,
        /// Its quantity.
        qty: Qty,
        /// Filled so far.
        filled: Qty,
    },
    /// Holding `qty` bought at `buy_price`; a sell at `price` goes out on the next trade.
    SellPending {
        /// What was paid (the buy's limit price).
        buy_price: Price,
        /// The sell's limit price.
        price: Price,
        /// Quantity to sell.
        qty: Qty,
    },
    /// The cycle is complete (the sell filled): the leader replaces the trader with a fresh one.
    Done,
    /// A sell is live.
    Selling {
        /// The sell's client id.
        order_id: ClientOrderId,
        /// What was paid (the buy's limit price).
        buy_price: Price,
        /// Its limit price.
        price: Price,
        /// Its quantity.
        qty: Qty,
        /// Filled so far.
        filled: Qty,
    },
}

impl TraderState {
    /// The live order, if the trader has one.
    pub fn order_id(&self) -> Option<ClientOrderId> {
        match *self {
            TraderState::Buying { order_id, .. } | TraderState::Selling { order_id, .. } => {
                Some(order_id)
            }
            TraderState::Idle | TraderState::SellPending { .. } | TraderState::Done => None,
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NaiveStats {
    /// Trade cycles completed (sell fully filled).
    pub cycles: u64,
    /// Buys handed to the core.
    pub buys: u64,
    /// Sells handed to the core (re-placements included).
    pub sells: u64,
    /// Buys not placed: quantity under one lot, or notional (of the buy or its planned sell)
    /// under the minimum.
    pub skipped: u64,
    /// Orders the context refused (outbox full, invalid); buys wait for the next trade, sells in
    /// [`TraderState::SellPending`].
    pub submit_failed: u64,
    /// Our orders rejected.
    pub rejected: u64,
    /// Our orders canceled or expired.
    pub canceled: u64,
    /// Bought quantities left unsold because they were too small to sell (after partial fills).
    pub dust: u64,
    /// Updates for orders no trader owns (late updates of finished orders).
    pub unknown_updates: u64,
}

/// The naive trading logic shared by a symbol's traders: parameters and counters. Each trader is
/// a [`TraderState`]; the [`Leader`] around it supervises them (see [`Naive`]).
#[derive(Debug)]
pub struct NaiveLogic {
    cfg: NaiveConfig,
    /// `budget / chunks`, quote units of 1e-8.
    budget_per_trader: i64,
    stats: NaiveStats,
}

impl NaiveLogic {
    fn new(cfg: NaiveConfig) -> Self {
        let chunks = cfg.chunks.clamp(1, MAX_CHUNKS as usize);
        let cfg = NaiveConfig { chunks, ..cfg };
        NaiveLogic {
            budget_per_trader: cfg.budget / chunks as i64,
            cfg,
            stats: NaiveStats::default(),
        }
    }

    /// The sell price for a buy at `buy_price`: `buy_price x (1 + profit_interval)`, rounded
    /// down to `tick`, never below one tick.
    pub fn sell_price(&self, buy_price: Price, tick: Price) -> Price {
        let floor = Price(tick.0.max(1));
        scale_price(buy_price, self.cfg.profit_interval, tick).map_or(floor, |p| p.max(floor))
    }

    /// The buy a trader would place on a trade at `last`: `(price, qty)`, or `None` if the
    /// venue would refuse it (or its sell).
    fn plan_buy(&self, last: Price, rules: &SymbolRules) -> Option<(Price, Qty)> {
        let price = scale_price(last, -self.cfg.buy_down_interval, rules.tick_size)?;
        let raw = self.budget_per_trader as i128 * SCALE as i128 / price.0 as i128;
        let qty = floor_qty(Qty(i64::try_from(raw).ok()?), rules.lot_size);
        let sell = self.sell_price(price, rules.tick_size);
        let placeable = qty.0 > 0
            && qty >= rules.lot_size
            && Notional::of(price, qty).0 >= rules.min_notional as i128
            && Notional::of(sell, qty).0 >= rules.min_notional as i128;
        placeable.then_some((price, qty))
    }

    fn place_buy(&mut self, ctx: &mut Ctx<'_>, st: &mut TraderState, price: Price, qty: Qty) {
        let req = OrderRequest {
            side: Side::Buy,
            price,
            qty,
            order_type: OrderType::LimitGtc,
        };
        match ctx.submit(req) {
            Ok(order_id) => {
                self.stats.buys += 1;
                *st = TraderState::Buying {
                    order_id,
                    price,
                    qty,
                    filled: Qty::ZERO,
                };
            }
            Err(_) => {
                self.stats.submit_failed += 1;
                *st = TraderState::Idle;
            }
        }
    }

    /// Places the trader's sell of `qty` at `price`, or parks it in `SellPending`, or abandons a
    /// quantity too small to sell.
    fn place_sell(
        &mut self,
        ctx: &mut Ctx<'_>,
        st: &mut TraderState,
        buy_price: Price,
        price: Price,
        qty: Qty,
    ) {
        let rules = ctx.rules();
        let qty = floor_qty(qty, rules.lot_size);
        if qty.0 <= 0
            || qty < rules.lot_size
            || Notional::of(price, qty).0 < rules.min_notional as i128
        {
            self.stats.dust += 1;
            *st = TraderState::Idle;
            return;
        }
        let req = OrderRequest {
            side: Side::Sell,
            price,
            qty,
            order_type: OrderType::LimitGtc,
        };
        *st = match ctx.submit(req) {
            Ok(order_id) => {
                self.stats.sells += 1;
                TraderState::Selling {
                    order_id,
                    buy_price,
                    price,
                    qty,
                    filled: Qty::ZERO,
                }
            }
            Err(_) => {
                self.stats.submit_failed += 1;
                TraderState::SellPending {
                    buy_price,
                    price,
                    qty,
                }
            }
        };
    }

    /// The parameters as `Params` (what `set` merges into).
    fn as_params(&self) -> Params {
        Params::new(self.params())
    }
}

impl TraderLogic for NaiveLogic {
    type State = TraderState;

    fn name(&self) -> &'static str {
        NAME
    }

    /// Its own symbol's trades: the traders read nothing else.
    fn channels(&self) -> Vec<String> {
        vec!["trade".into()]
    }

    fn traders(&self) -> usize {
        self.cfg.chunks
    }

    fn fresh(&self, _index: usize) -> TraderState {
        TraderState::Idle
    }

    fn is_finished(&self, st: &TraderState) -> bool {
        *st == TraderState::Done
    }

    fn owns(&self, st: &TraderState, id: ClientOrderId) -> bool {
        st.order_id() == Some(id)
    }

    fn describe(&self, st: &TraderState) -> String {
        match *st {
            TraderState::Idle => "idle".into(),
            TraderState::Done => "done".into(),
            TraderState::Buying {
                order_id,
                price,
                qty,
                filled,
            } => format!("buying {order_id}: {filled}/{qty} @ {price}"),
            TraderState::SellPending { price, qty, .. } => {
                format!("sell pending: {qty} @ {price}")
            }
            TraderState::Selling {
                order_id,
                buy_price,
                price,
                qty,
                filled,
            } => format!("selling {order_id}: {filled}/{qty} @ {price} (bought @ {buy_price})"),
        }
    }

    fn params(&self) -> Vec<(String, String)> {
        vec![
            ("chunks".into(), self.cfg.chunks.to_string()),
            ("budget".into(), decimal(self.cfg.budget)),
            (
                "buy_down_interval".into(),
                decimal(self.cfg.buy_down_interval),
            ),
            ("profit_interval".into(), decimal(self.cfg.profit_interval)),
        ]
    }

    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        let mut merged = self.as_params().merged(params);
        let cfg = NaiveConfig::from_params(&mut merged)?;
        merged.finish()?;
        if cfg.chunks != self.cfg.chunks {
            return Err(bad_value(
                "chunks",
                format!(
                    "the number of traders is fixed while trading ({}); stop-trading and start-trading with --chunks",
                    self.cfg.chunks
                ),
            ));
        }
        let before = self.params();
        self.cfg = cfg;
        self.budget_per_trader = cfg.budget / cfg.chunks as i64;
        let changed: Vec<String> = before
            .iter()
            .zip(self.params())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, b)| format!("{} {} -> {}", a.0, a.1, b.1))
            .collect();
        Ok(if changed.is_empty() {
            "no change".to_string()
        } else {
            changed.join(", ")
        })
    }

    fn on_trade(&mut self, st: &mut TraderState, ctx: &mut Ctx<'_>, trade: &Trade) {
        match *st {
            TraderState::Idle => {
                let rules = *ctx.rules();
                match self.plan_buy(trade.price, &rules) {
                    Some((price, qty)) => self.place_buy(ctx, st, price, qty),
                    None => self.stats.skipped += 1,
                }
            }
            TraderState::SellPending {
                buy_price,
                price,
                qty,
            } => self.place_sell(ctx, st, buy_price, price, qty),
            TraderState::Buying { .. } | TraderState::Selling { .. } | TraderState::Done => {}
        }
    }

    fn encode(&self, st: &TraderState) -> Option<TraderBlob> {
        let mut b = [0u8; 41];
        let mut put = |at: usize, v: i64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let len = match *st {
            TraderState::Idle => 1,
            TraderState::Done => {
                b[0] = 4;
                1
            }
            TraderState::Buying {
                order_id,
                price,
                qty,
                filled,
            } => {
                put(1, order_id.0 as i64);
                put(9, price.0);
                put(17, qty.0);
                put(25, filled.0);
                b[0] = 1;
                33
            }
            TraderState::SellPending {
                buy_price,
                price,
                qty,
            } => {
                put(1, buy_price.0);
                put(9, price.0);
                put(17, qty.0);
                b[0] = 2;
                25
            }
            TraderState::Selling {
                order_id,
                buy_price,
                price,
                qty,
                filled,
            } => {
                put(1, order_id.0 as i64);
                put(9, buy_price.0);
                put(17, price.0);
                put(25, qty.0);
                put(33, filled.0);
                b[0] = 3;
                41
            }
        };
        TraderBlob::new(&b[..len])
    }

    fn decode(&self, bytes: &[u8]) -> Option<TraderState> {
        let get = |at: usize| -> Option<i64> {
            Some(i64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let (tag, len) = (*bytes.first()?, bytes.len());
        Some(match (tag, len) {
            (0, 1) => TraderState::Idle,
            (4, 1) => TraderState::Done,
            (1, 33) => TraderState::Buying {
                order_id: ClientOrderId(get(1)? as u64),
                price: Price(get(9)?),
                qty: Qty(get(17)?),
                filled: Qty(get(25)?),
            },
            (2, 25) => TraderState::SellPending {
                buy_price: Price(get(1)?),
                price: Price(get(9)?),
                qty: Qty(get(17)?),
            },
            (3, 41) => TraderState::Selling {
                order_id: ClientOrderId(get(1)? as u64),
                buy_price: Price(get(9)?),
                price: Price(get(17)?),
                qty: Qty(get(25)?),
                filled: Qty(get(33)?),
            },
            _ => return None,
        })
    }

    fn on_unowned_order(&mut self, _u: &OrderUpdate) {
        self.stats.unknown_updates += 1;
    }

    fn on_order(&mut self, st: &mut TraderState, ctx: &mut Ctx<'_>, u: &OrderUpdate) {
        match (*st, u.kind) {
            // Still in flight either way: wait for the venue's answer.
            (_, OrderUpdateKind::Accepted | OrderUpdateKind::TimedOut) => {}
            (
                TraderState::Buying {
                    order_id,
                    price,
                    qty,
                    filled,
                },
                OrderUpdateKind::Filled { qty: fill, .. },
            ) => {
                let filled = Qty(filled.0.saturating_add(fill.0));
                if filled >= qty || u.is_final() {
                    let sell = self.sell_price(price, ctx.rules().tick_size);
                    self.place_sell(ctx, st, price, sell, filled);
                } else {
                    *st = TraderState::Buying {
                        order_id,
                        price,
                        qty,
                        filled,
                    };
                }
            }
            (
                TraderState::Buying { price, filled, .. },
                OrderUpdateKind::Rejected(_) | OrderUpdateKind::Canceled,
            ) => {
                if matches!(u.kind, OrderUpdateKind::Canceled) {
                    self.stats.canceled += 1;
                } else {
                    self.stats.rejected += 1;
                }
                if filled.0 > 0 {
                    let sell = self.sell_price(price, ctx.rules().tick_size);
                    self.place_sell(ctx, st, price, sell, filled);
                } else {
                    *st = TraderState::Idle;
                }
            }
            (
                TraderState::Selling {
                    order_id,
                    buy_price,
                    price,
                    qty,
                    filled,
                },
                OrderUpdateKind::Filled { qty: fill, .. },
            ) => {
                let filled = Qty(filled.0.saturating_add(fill.0));
                if filled >= qty || u.is_final() {
                    self.stats.cycles += 1;
                    *st = TraderState::Done;
                } else {
                    *st = TraderState::Selling {
                        order_id,
                        buy_price,
                        price,
                        qty,
                        filled,
                    };
                }
            }
            (
                TraderState::Selling {
                    buy_price,
                    price,
                    qty,
                    filled,
                    ..
                },
                OrderUpdateKind::Rejected(_),
            ) => {
                self.stats.rejected += 1;
                *st = TraderState::SellPending {
                    buy_price,
                    price,
                    qty: Qty(qty.0 - filled.0),
                };
            }
            (
                TraderState::Selling {
                    buy_price,
                    price,
                    qty,
                    filled,
                    ..
                },
                OrderUpdateKind::Canceled,
            ) => {
                self.stats.canceled += 1;
                self.place_sell(ctx, st, buy_price, price, Qty(qty.0 - filled.0));
            }
            // Only traders with a live order matched.
            (TraderState::Idle | TraderState::SellPending { .. } | TraderState::Done, _) => {}
        }
    }
}

/// The naive strategy (see the [module docs](self)): a [`Leader`] of `chunks` supervised
/// [`NaiveLogic`] traders.
#[derive(Debug)]
pub struct Naive {
    leader: Leader<NaiveLogic>,
}

impl Naive {
    /// A strategy with `cfg` and `cfg.chunks` idle traders (clamped to `1..=64`; the only
    /// allocation), supervised with the default [`RestartPolicy`]. [`NaiveConfig::from_params`]
    /// checks every range.
    pub fn new(cfg: NaiveConfig) -> Self {
        Self::with_policy(cfg, RestartPolicy::default())
    }

    /// [`Naive::new`] with a restart policy.
    pub fn with_policy(cfg: NaiveConfig, policy: RestartPolicy) -> Self {
        Naive {
            leader: Leader::new(NaiveLogic::new(cfg), policy),
        }
    }

    /// Its parameters.
    pub fn config(&self) -> &NaiveConfig {
        &self.leader.logic().cfg
    }

    /// Each trader's state, in a fixed order.
    pub fn traders(&self) -> &[TraderState] {
        self.leader.states()
    }

    /// The supervisor (snapshots, restarts, halt).
    pub fn leader(&self) -> &Leader<NaiveLogic> {
        &self.leader
    }

    /// Trade cycles completed.
    pub fn cycles(&self) -> u64 {
        self.leader.logic().stats.cycles
    }

    /// Counters.
    pub fn stats(&self) -> &NaiveStats {
        &self.leader.logic().stats
    }

    /// Quote amount each trader spends per buy, 1e-8 units.
    pub fn budget_per_trader(&self) -> i64 {
        self.leader.logic().budget_per_trader
    }

    /// The sell price for a buy at `buy_price` (see [`NaiveLogic::sell_price`]).
    pub fn sell_price(&self, buy_price: Price, tick: Price) -> Price {
        self.leader.logic().sell_price(buy_price, tick)
    }
}

impl Strategy for Naive {
    fn name(&self) -> &'static str {
        NAME
    }

    fn channels(&self) -> Vec<String> {
        self.leader.channels()
    }

    #[inline]
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, trade: &Trade) {
        self.leader.on_trade(ctx, trade);
    }

    fn on_order(&mut self, ctx: &mut Ctx<'_>, u: &OrderUpdate) {
        self.leader.on_order(ctx, u);
    }

    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        self.leader.set_params(params)
    }

    fn leader_status(&self) -> Option<engine::status::LeaderStatus> {
        self.leader.leader_status()
    }

    fn restore_trader(&mut self, trader: u16, state: &[u8]) -> bool {
        self.leader.restore_trader(trader, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{accepted, canceled, fill, one_new, px, q, rejected, trade, Harness};
    use engine::strategy::{Intent, Outbox};

    fn cfg(pairs: &[(&str, &str)]) -> Result<NaiveConfig, ParamError> {
        let mut p = Params::new(pairs.iter().copied());
        let c = NaiveConfig::from_params(&mut p)?;
        p.finish()?;
        Ok(c)
    }

    fn naive(pairs: &[(&str, &str)]) -> Naive {
        Naive::new(cfg(pairs).unwrap())
    }

    #[test]
    fn idle_trader_buys_at_the_trade_price() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        assert_eq!(s.traders(), &[TraderState::Idle]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "61837.63")));
        // 100 / 61837.63 = 0.00161714... -> 0.00161 (lot 0.00001)
        assert_eq!(
            buy,
            OrderRequest {
                side: Side::Buy,
                price: px("61837.63"),
                qty: q("0.00161"),
                order_type: OrderType::LimitGtc
            }
        );
        assert_eq!(
            s.traders(),
            &[TraderState::Buying {
                order_id: id,
                price: px("61837.63"),
                qty: q("0.00161"),
                filled: Qty::ZERO
            }]
        );
        // A live trader ignores further trades.
        assert!(h.trade(&mut s, &trade(2, "61000")).is_empty());
        assert!(h.order(&mut s, &accepted(id, &buy)).is_empty());
    }

    #[test]
    fn buy_down_interval_rounds_down_to_the_tick() {
        let mut h = Harness::new();
        let mut s = naive(&[("buy_down_interval", "0.0005")]);
        let (_, buy) = one_new(&h.trade(&mut s, &trade(1, "61837.63")));
        // 61837.63 x 0.9995 = 61806.711185 -> 61806.71
        assert_eq!(buy.price, px("61806.71"));
        assert_eq!(buy.qty, q("0.00161")); // 100 / 61806.71 = 0.0016179...
    }

    #[test]
    fn full_fill_places_the_sell_at_the_profit_price() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "61837.63")));
        let (sid, sell) = one_new(&h.order(&mut s, &fill(id, &buy, buy.qty, Qty::ZERO)));
        // 61837.63 x 1.001 = 61899.46763 -> 61899.46
        assert_eq!(
            sell,
            OrderRequest {
                side: Side::Sell,
                price: Price(6_189_946_000_000),
                qty: q("0.00161"),
                order_type: OrderType::LimitGtc
            }
        );
        assert_eq!(
            s.traders(),
            &[TraderState::Selling {
                order_id: sid,
                buy_price: px("61837.63"),
                price: px("61899.46"),
                qty: q("0.00161"),
                filled: Qty::ZERO
            }]
        );
    }

    #[test]
    fn the_seeds_negative_profit_interval() {
        let mut h = Harness::new();
        let mut s = naive(&[("profit_interval", "-0.0012")]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "61837.63")));
        let (_, sell) = one_new(&h.order(&mut s, &fill(id, &buy, buy.qty, Qty::ZERO)));
        // 61837.63 x 0.9988 = 61763.424844 -> 61763.42
        assert_eq!(sell.price, Price(6_176_342_000_000));
    }

    #[test]
    fn sell_price_is_never_below_one_tick() {
        let s = naive(&[("profit_interval", "-0.99999999")]);
        let tick = px("0.01");
        assert_eq!(s.sell_price(px("0.5"), tick), tick);
        assert_eq!(s.sell_price(px("1000"), tick), tick); // 0.00001 -> 0.00 -> one tick
        assert_eq!(s.sell_price(px("1000"), Price::ZERO), Price(1000));
    }

    #[test]
    fn trader_states_survive_the_journal_encoding() {
        let logic = NaiveLogic::new(NaiveConfig::default());
        let id = ClientOrderId::new(ClientOrderId::NS_ENGINE, 77);
        for st in [
            TraderState::Idle,
            TraderState::Done,
            TraderState::Buying {
                order_id: id,
                price: px("100.5"),
                qty: q("0.25"),
                filled: q("0.1"),
            },
            TraderState::SellPending {
                buy_price: px("100"),
                price: px("100.1"),
                qty: q("1"),
            },
            TraderState::Selling {
                order_id: id,
                buy_price: px("100"),
                price: px("100.1"),
                qty: q("1"),
                filled: q("0.5"),
            },
        ] {
            let blob = logic.encode(&st).unwrap();
            assert_eq!(logic.decode(blob.as_bytes()), Some(st));
            // A damaged record is refused, never misread.
            assert_eq!(
                logic.decode(&blob.as_bytes()[..blob.as_bytes().len() - 1]),
                None
            );
        }
        assert_eq!(logic.decode(&[9]), None);
        assert_eq!(logic.decode(&[]), None);
        // Restored through the strategy, as a restarted engine does.
        let mut s = naive(&[("chunks", "2")]);
        let st = TraderState::SellPending {
            buy_price: px("100"),
            price: px("100.1"),
            qty: q("1"),
        };
        assert!(s.restore_trader(1, logic.encode(&st).unwrap().as_bytes()));
        assert_eq!(s.traders(), &[TraderState::Idle, st]);
        assert!(!s.restore_trader(2, logic.encode(&st).unwrap().as_bytes()));
    }

    #[test]
    fn a_finished_cycle_gives_a_fresh_trader() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "100")));
        assert_eq!(buy.qty, q("1"));
        let (sid, sell) = one_new(&h.order(&mut s, &fill(id, &buy, buy.qty, Qty::ZERO)));
        assert_eq!(sell.price, px("100.1"));
        assert!(h.order(&mut s, &accepted(sid, &sell)).is_empty());
        assert!(h
            .order(&mut s, &fill(sid, &sell, sell.qty, Qty::ZERO))
            .is_empty());
        assert_eq!(s.cycles(), 1);
        assert_eq!(s.traders(), &[TraderState::Idle]);
        assert_eq!(h.position.qty, 0);
        assert_eq!(h.position.realized, 10_000_000); // 0.1 per unit
                                                     // The fresh trader starts a new cycle on the next trade.
        let (id2, buy2) = one_new(&h.trade(&mut s, &trade(2, "200")));
        assert_ne!(id2, id);
        assert_eq!((buy2.price, buy2.qty), (px("200"), q("0.5")));
        // A late update for the finished order is ignored.
        assert!(h.order(&mut s, &canceled(sid, &sell, sell.qty)).is_empty());
        assert_eq!(s.stats().unknown_updates, 1);
        assert!(matches!(s.traders()[0], TraderState::Buying { .. }));
    }

    #[test]
    fn chunks_split_the_budget() {
        let mut h = Harness::new();
        let mut s = naive(&[("chunks", "3"), ("budget", "300")]);
        assert_eq!(s.traders().len(), 3);
        assert_eq!(s.budget_per_trader(), 100 * SCALE);
        let intents = h.trade(&mut s, &trade(1, "50"));
        assert_eq!(intents.len(), 3);
        let mut ids = Vec::new();
        for intent in &intents {
            let Intent::New(id, req) = intent else {
                panic!("{intent:?}")
            };
            assert_eq!(
                (req.side, req.price, req.qty),
                (Side::Buy, px("50"), q("2"))
            );
            ids.push(*id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 3);
        // Each trader follows its own order: fill the second only.
        let Intent::New(id1, req1) = intents[1] else {
            unreachable!()
        };
        let (_, sell) = one_new(&h.order(&mut s, &fill(id1, &req1, req1.qty, Qty::ZERO)));
        assert_eq!(sell.qty, q("2"));
        assert!(matches!(s.traders()[0], TraderState::Buying { .. }));
        assert!(matches!(s.traders()[1], TraderState::Selling { .. }));
        assert!(matches!(s.traders()[2], TraderState::Buying { .. }));
    }

    #[test]
    fn partial_fills_accumulate() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "100")));
        assert!(h
            .order(&mut s, &fill(id, &buy, q("0.3"), Qty::ZERO))
            .is_empty());
        assert!(h
            .order(&mut s, &fill(id, &buy, q("0.5"), q("0.3")))
            .is_empty());
        assert_eq!(
            s.traders(),
            &[TraderState::Buying {
                order_id: id,
                price: px("100"),
                qty: q("1"),
                filled: q("0.8")
            }]
        );
        let (sid, sell) = one_new(&h.order(&mut s, &fill(id, &buy, q("0.2"), q("0.8"))));
        assert_eq!((sell.qty, sell.price), (q("1"), px("100.1")));
        assert!(h
            .order(&mut s, &fill(sid, &sell, q("0.25"), Qty::ZERO))
            .is_empty());
        assert_eq!(s.cycles(), 0);
        assert!(h
            .order(&mut s, &fill(sid, &sell, q("0.75"), q("0.25")))
            .is_empty());
        assert_eq!(s.cycles(), 1);
        assert_eq!(s.traders(), &[TraderState::Idle]);
    }

    #[test]
    fn rejected_or_canceled_buy_goes_back_to_idle() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "100")));
        assert!(h.order(&mut s, &rejected(id, &buy)).is_empty());
        assert_eq!(s.traders(), &[TraderState::Idle]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(2, "100")));
        assert!(h.order(&mut s, &canceled(id, &buy, Qty::ZERO)).is_empty());
        assert_eq!(s.traders(), &[TraderState::Idle]);
        assert_eq!((s.stats().rejected, s.stats().canceled), (1, 1));
        assert_eq!(
            one_new(&h.trade(&mut s, &trade(3, "100"))).1.side,
            Side::Buy
        );
    }

    #[test]
    fn canceled_buy_after_a_partial_fill_sells_what_filled() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "100")));
        h.order(&mut s, &fill(id, &buy, q("0.4"), Qty::ZERO));
        let (_, sell) = one_new(&h.order(&mut s, &canceled(id, &buy, q("0.4"))));
        assert_eq!(
            (sell.side, sell.price, sell.qty),
            (Side::Sell, px("100.1"), q("0.4"))
        );
        // Too little to sell (0.01 x 100 = 1 < 5): abandoned as dust, trader idle.
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(2, "100")));
        h.order(&mut s, &fill(id, &buy, q("0.01"), Qty::ZERO));
        assert!(h.order(&mut s, &canceled(id, &buy, q("0.01"))).is_empty());
        assert_eq!(s.traders(), &[TraderState::Idle]);
        assert_eq!(s.stats().dust, 1);
    }

    #[test]
    fn canceled_sell_is_placed_again_for_the_rest() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "100")));
        let (sid, sell) = one_new(&h.order(&mut s, &fill(id, &buy, buy.qty, Qty::ZERO)));
        h.order(&mut s, &fill(sid, &sell, q("0.3"), Qty::ZERO));
        let (sid2, again) = one_new(&h.order(&mut s, &canceled(sid, &sell, q("0.3"))));
        assert_ne!(sid2, sid);
        assert_eq!(
            (again.side, again.price, again.qty),
            (Side::Sell, px("100.1"), q("0.7"))
        );
        h.order(&mut s, &fill(sid2, &again, again.qty, Qty::ZERO));
        assert_eq!(s.cycles(), 1);
    }

    #[test]
    fn rejected_sell_is_placed_again_on_the_next_trade() {
        let mut h = Harness::new();
        let mut s = naive(&[]);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "100")));
        let (sid, sell) = one_new(&h.order(&mut s, &fill(id, &buy, buy.qty, Qty::ZERO)));
        assert!(h.order(&mut s, &rejected(sid, &sell)).is_empty());
        assert_eq!(
            s.traders(),
            &[TraderState::SellPending {
                buy_price: px("100"),
                price: px("100.1"),
                qty: q("1")
            }]
        );
        // Placed at the original price whatever the market does.
        let (_, again) = one_new(&h.trade(&mut s, &trade(2, "90")));
        assert_eq!(
            (again.side, again.price, again.qty),
            (Side::Sell, px("100.1"), q("1"))
        );
        assert_eq!(s.stats().rejected, 1);
    }

    #[test]
    fn too_small_orders_are_not_placed() {
        let mut h = Harness::new();
        // 4 / 100 = 0.04 -> notional 4 < 5.
        let mut s = naive(&[("budget", "4")]);
        assert!(h.trade(&mut s, &trade(1, "100")).is_empty());
        // Under one lot: 100 / 20_000_000 = 0.000005 < 0.00001.
        let mut s2 = naive(&[]);
        assert!(h.trade(&mut s2, &trade(2, "20000000")).is_empty());
        // The buy clears the minimum but its sell would not: 1 x 99.88 < 100.
        h.rules.min_notional = 100 * SCALE;
        let mut s3 = naive(&[("profit_interval", "-0.0012")]);
        assert!(h.trade(&mut s3, &trade(3, "100")).is_empty());
        assert_eq!(
            (s.stats().skipped, s2.stats().skipped, s3.stats().skipped),
            (1, 1, 1)
        );
        assert_eq!(s.traders(), &[TraderState::Idle]);
    }

    #[test]
    fn a_full_outbox_defers_orders() {
        let mut h = Harness::new();
        let mut s = naive(&[("chunks", "2"), ("budget", "200")]);
        h.outbox = Outbox::with_capacity(1);
        let (id, buy) = one_new(&h.trade(&mut s, &trade(1, "100")));
        assert_eq!(s.traders()[1], TraderState::Idle);
        assert_eq!(s.stats().submit_failed, 1);
        h.outbox = Outbox::with_capacity(0);
        assert!(h
            .order(&mut s, &fill(id, &buy, buy.qty, Qty::ZERO))
            .is_empty());
        assert_eq!(
            s.traders()[0],
            TraderState::SellPending {
                buy_price: px("100"),
                price: px("100.1"),
                qty: q("1")
            }
        );
        h.outbox = Outbox::with_capacity(8);
        let intents = h.trade(&mut s, &trade(2, "100"));
        assert_eq!(intents.len(), 2); // the pending sell and the second trader's buy
        assert!(matches!(
            s.traders(),
            [TraderState::Selling { .. }, TraderState::Buying { .. }]
        ));
    }

    #[test]
    fn params() {
        assert_eq!(cfg(&[]).unwrap(), NaiveConfig::default());
        assert_eq!(
            cfg(&[
                ("chunks", "64"),
                ("budget", "1000.5"),
                ("buy_down_interval", "0.0001"),
                ("profit_interval", "-0.0012"),
            ])
            .unwrap(),
            NaiveConfig {
                chunks: 64,
                budget: 100_050_000_000,
                buy_down_interval: 10_000,
                profit_interval: -120_000
            }
        );
        for (k, v) in [
            ("chunks", "0"),
            ("chunks", "65"),
            ("chunks", "two"),
            ("budget", "0"),
            ("budget", "-10"),
            ("budget", "1e3"),
            ("buy_down_interval", "-0.001"),
            ("buy_down_interval", "1"),
            ("profit_interval", "-1"),
            ("profit_interval", "1.5"),
        ] {
            match cfg(&[(k, v)]) {
                Err(ParamError::BadValue { key, .. }) => assert_eq!(key, k, "{k}={v}"),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        // The budget must split into non-zero chunks.
        assert!(matches!(
            cfg(&[("chunks", "3"), ("budget", "0.00000002")]),
            Err(ParamError::BadValue { key, .. }) if key == "budget"
        ));
        assert_eq!(
            cfg(&[("profit", "0.01")]),
            Err(ParamError::Unknown("profit".into()))
        );
    }
}
