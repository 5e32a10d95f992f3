//! `dip`: buy the dip, sell the bounce, a strategy written outside Tickline's repository.
//!
//! It keeps the highest trade price of the last `window` trades (a monotonic queue allocated at
//! construction, so a trade costs O(1) amortised and never allocates). Flat, with no order in
//! flight: when a trade prints `drop` (a fraction) or more below that high, it buys `qty` with an
//! immediate-or-cancel limit at the best ask. Long: when a trade prints `take_profit` above the
//! position's average price, or `stop_loss` below it, it sells the whole position with an IOC at
//! the best bid. One order at a time; an IOC that expires is simply tried again on a later trade.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `window` | `200` | trades the high is taken over, `2..=100000` |
//! | `drop` | `0.0005` | how far below the high a trade must print to buy (0.0005 = 5 bp) |
//! | `take_profit` | `0.0005` | sell this far above the average price |
//! | `stop_loss` | `0.001` | sell this far below the average price |
//! | `qty` | `0.001` | base quantity bought |

use engine::event::{ClientOrderId, OrderRequest, OrderType, Side, Trade};
use engine::fixed::{Price, Qty, SCALE};
use engine::strategy::{Ctx, OrderUpdate, ParamError, Params, Strategy};
use std::collections::VecDeque;

/// The name `--strategy` knows it by.
pub const NAME: &str = "dip";

/// The strategy factory `tools::cli::main_with` takes: `dip` is ours, every other name is not.
pub fn factory(name: &str, mut params: Params) -> Option<Result<Box<dyn Strategy>, ParamError>> {
    (name == NAME).then(|| {
        let cfg = DipConfig::from_params(&mut params)?;
        params.finish()?;
        Ok(Box::new(Dip::new(cfg)) as Box<dyn Strategy>)
    })
}

/// `dip`'s parameters (fractions and quantities in 1e-8 fixed point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DipConfig {
    /// Trades the high is taken over.
    pub window: usize,
    /// Buy this fraction below the high.
    pub drop: i64,
    /// Sell this fraction above the average price.
    pub take_profit: i64,
    /// Sell this fraction below the average price.
    pub stop_loss: i64,
    /// Quantity bought.
    pub qty: Qty,
}

impl DipConfig {
    /// Reads the parameters from `p` (see the crate docs), checking their ranges.
    pub fn from_params(p: &mut Params) -> Result<DipConfig, ParamError> {
        let window = p.u64_in("window", 200, 2, 100_000)? as usize;
        let fraction = |p: &mut Params, key: &str, default: i64| {
            let v = p.fixed(key, default)?;
            if v <= 0 || v >= SCALE {
                return Err(ParamError::BadValue {
                    key: key.into(),
                    why: "must be a fraction between 0 and 1".into(),
                });
            }
            Ok(v)
        };
        let drop = fraction(p, "drop", 50_000)?;
        let take_profit = fraction(p, "take_profit", 50_000)?;
        let stop_loss = fraction(p, "stop_loss", 100_000)?;
        let qty = Qty(p.fixed("qty", 100_000)?);
        if qty.0 <= 0 {
            return Err(ParamError::BadValue {
                key: "qty".into(),
                why: "must be positive".into(),
            });
        }
        Ok(DipConfig {
            window,
            drop,
            take_profit,
            stop_loss,
            qty,
        })
    }
}

/// The strategy (one instance per symbol).
#[derive(Debug)]
pub struct Dip {
    cfg: DipConfig,
    /// (trade number, price), prices decreasing from the front: the front is the window's high.
    highs: VecDeque<(u64, i64)>,
    trades: u64,
    in_flight: Option<ClientOrderId>,
}

impl Dip {
    /// A strategy with `cfg`, its queue allocated now.
    pub fn new(cfg: DipConfig) -> Dip {
        Dip {
            cfg,
            highs: VecDeque::with_capacity(cfg.window + 1),
            trades: 0,
            in_flight: None,
        }
    }

    /// The highest price of the last `window` trades, once `window` trades were seen.
    pub fn high(&self) -> Option<i64> {
        (self.trades >= self.cfg.window as u64).then(|| self.highs.front().map(|h| h.1))?
    }

    fn see(&mut self, price: i64) {
        while self.highs.back().is_some_and(|&(_, p)| p <= price) {
            self.highs.pop_back();
        }
        self.highs.push_back((self.trades, price));
        self.trades += 1;
        while self
            .highs
            .front()
            .is_some_and(|&(n, _)| n + (self.cfg.window as u64) < self.trades)
        {
            self.highs.pop_front();
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_>, side: Side, price: Price, qty: Qty) {
        let req = OrderRequest {
            side,
            price,
            qty,
            order_type: OrderType::LimitIoc,
        };
        // A refusal (a full order buffer) is tried again on a later trade.
        self.in_flight = ctx.submit(req).ok();
    }
}

/// `a x (1 + f)` compared with `b`, exactly: the sign of `a x (SCALE + f) - b x SCALE`.
fn beyond(a: i64, f: i64, b: i64) -> core::cmp::Ordering {
    (i128::from(a) * i128::from(SCALE + f)).cmp(&(i128::from(b) * i128::from(SCALE)))
}

impl Strategy for Dip {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_trade(&mut self, ctx: &mut Ctx<'_>, trade: &Trade) {
        let px = trade.price.0;
        self.see(px);
        let Some(high) = self.high() else {
            return;
        };
        if self.in_flight.is_some() {
            return;
        }
        let pos = *ctx.position();
        let (ask, bid) = match ctx.bbo() {
            Some(b) => (b.ask_px, b.bid_px),
            None => (trade.price, trade.price),
        };
        if pos.qty == 0 {
            // px <= high x (1 - drop)
            if beyond(high, -self.cfg.drop, px).is_ge() {
                self.send(ctx, Side::Buy, ask, self.cfg.qty);
            }
        } else if pos.qty > 0 {
            let avg = pos.avg_price.0;
            let profit = beyond(avg, self.cfg.take_profit, px).is_le();
            let loss = beyond(avg, -self.cfg.stop_loss, px).is_ge();
            if profit || loss {
                self.send(ctx, Side::Sell, bid, Qty(pos.qty));
            }
        }
    }

    fn on_order(&mut self, _ctx: &mut Ctx<'_>, update: &OrderUpdate) {
        if self.in_flight == Some(update.client_id) && update.is_final() {
            self.in_flight = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_is_the_window_max() {
        let mut d = Dip::new(DipConfig::from_params(&mut Params::new([("window", "3")])).unwrap());
        for (p, high) in [
            (5, None),
            (7, None),
            (6, Some(7)),
            (4, Some(7)),
            (3, Some(6)),
            (2, Some(4)),
        ] {
            d.see(p);
            assert_eq!(d.high(), high, "after {p}");
        }
        assert!(d.highs.capacity() >= 4);
    }

    #[test]
    fn the_factory_knows_dip_only_and_checks_parameters() {
        assert!(factory("naive", Params::default()).is_none());
        assert_eq!(
            factory(NAME, Params::default()).unwrap().unwrap().name(),
            NAME
        );
        assert!(matches!(
            factory(NAME, Params::new([("drop", "2")])).unwrap().err(),
            Some(ParamError::BadValue { .. })
        ));
        assert!(matches!(
            factory(NAME, Params::new([("dorp", "0.1")])).unwrap().err(),
            Some(ParamError::Unknown(_))
        ));
    }
}
