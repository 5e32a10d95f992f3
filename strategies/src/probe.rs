//! The latency probe: one far-from-market IOC buy per trade, named after the trade.
//!
//! Every trade is answered with exactly one [`OrderType::LimitIoc`] buy whose client id is
//! [`ClientOrderId::probe`]`(trade id)` (`probe-<trade id>` on the wire), so the venue (or the
//! simulator) can pair the order with the trade frame that caused it and measure the round trip.
//! The price is the trade price scaled by `offset_bps` and rounded down to the tick; with the
//! default `-1000` bps the order rests 10 % under the market and expires without filling.
//!
//! The callback is a few integer operations and one push into the outbox: nothing else.

use engine::event::{ClientOrderId, OrderRequest, OrderType, Side, Trade};
use engine::fixed::{Qty, SCALE};
use engine::strategy::{Ctx, ParamError, Params, Strategy};

use crate::{bad_value, decimal};

/// The name [`crate::build`] knows this strategy by.
pub const NAME: &str = "probe";

/// The probe's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Price offset from the trade price, basis points (`offset_bps`, default -1000).
    pub offset_bps: i64,
    /// Order quantity (`qty`, default 0.0001).
    pub qty: Qty,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            offset_bps: -1000,
            qty: Qty(10_000),
        }
    }
}

impl ProbeConfig {
    /// Smallest `offset_bps`: anything lower prices the order at zero or less.
    pub const MIN_OFFSET_BPS: i64 = -9_999;
    /// Largest `offset_bps` (double the trade price).
    pub const MAX_OFFSET_BPS: i64 = 10_000;

    /// Reads `offset_bps` and `qty` from `p`, checking their ranges.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let d = Self::default();
        let offset = p.fixed("offset_bps", d.offset_bps * SCALE)?;
        if offset % SCALE != 0 {
            return Err(bad_value(
                "offset_bps",
                format!(
                    "must be a whole number of basis points (got {})",
                    decimal(offset)
                ),
            ));
        }
        let offset_bps = offset / SCALE;
        if !(Self::MIN_OFFSET_BPS..=Self::MAX_OFFSET_BPS).contains(&offset_bps) {
            return Err(bad_value(
                "offset_bps",
                format!(
                    "must be in {}..={} (got {offset_bps})",
                    Self::MIN_OFFSET_BPS,
                    Self::MAX_OFFSET_BPS
                ),
            ));
        }
        let qty = Qty(p.fixed("qty", d.qty.0)?);
        if qty.0 <= 0 {
            return Err(bad_value("qty", format!("must be positive (got {qty})")));
        }
        Ok(ProbeConfig { offset_bps, qty })
    }
}

/// The probe strategy (see the [module docs](self)).
#[derive(Debug)]
pub struct Probe {
    cfg: ProbeConfig,
    sent: u64,
    refused: u64,
}

impl Probe {
    /// A probe with `cfg`.
    pub fn new(cfg: ProbeConfig) -> Self {
        Probe {
            cfg,
            sent: 0,
            refused: 0,
        }
    }

    /// Its parameters.
    pub fn config(&self) -> &ProbeConfig {
        &self.cfg
    }

    /// Probe orders handed to the core.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Probe orders the context refused (outbox full, or a price that rounded to zero).
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

impl Strategy for Probe {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Its own symbol's trades: it answers nothing else.
    fn channels(&self) -> Vec<String> {
        vec!["trade".into()]
    }

    /// `offset_bps` and `qty`, checked like at start-up, all or none.
    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        let current = Params::new([
            ("offset_bps", self.cfg.offset_bps.to_string()),
            ("qty", self.cfg.qty.to_string()),
        ]);
        let mut merged = current.merged(params);
        let cfg = ProbeConfig::from_params(&mut merged)?;
        merged.finish()?;
        let what = format!(
            "offset_bps {} -> {}, qty {} -> {}",
            self.cfg.offset_bps, cfg.offset_bps, self.cfg.qty, cfg.qty
        );
        self.cfg = cfg;
        Ok(what)
    }

    #[inline]
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, trade: &Trade) {
        let req = OrderRequest {
            side: Side::Buy,
            price: trade
                .price
                .offset_bps(self.cfg.offset_bps, ctx.rules().tick_size),
            qty: self.cfg.qty,
            order_type: OrderType::LimitIoc,
        };
        match ctx.submit_with_id(ClientOrderId::probe(trade.trade_id), req) {
            Ok(_) => self.sent += 1,
            Err(_) => self.refused += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{one_new, px, q, trade, Harness};
    use engine::strategy::Outbox;

    fn probe(pairs: &[(&str, &str)]) -> Result<ProbeConfig, ParamError> {
        let mut p = Params::new(pairs.iter().copied());
        let cfg = ProbeConfig::from_params(&mut p)?;
        p.finish()?;
        Ok(cfg)
    }

    #[test]
    fn one_ioc_buy_per_trade_named_after_the_trade() {
        let mut h = Harness::new();
        let mut s = Probe::new(ProbeConfig::default());
        for id in [3_735_683_259u64, 3_735_683_260, 7] {
            let t = trade(id, "61837.63");
            let (cid, req) = one_new(&h.trade(&mut s, &t));
            assert_eq!(cid, ClientOrderId::probe(id));
            assert_eq!(cid.to_string(), format!("probe-{id}"));
            assert_eq!(req.side, Side::Buy);
            assert_eq!(req.order_type, OrderType::LimitIoc);
            // 61837.63 x 0.9 = 55653.867 -> 55653.86
            assert_eq!(req.price, px("55653.86"));
            assert_eq!(req.qty, q("0.0001"));
        }
        assert_eq!(s.sent(), 3);
        assert_eq!(s.refused(), 0);
    }

    #[test]
    fn offset_and_qty_are_configurable() {
        let cfg = probe(&[("offset_bps", "25"), ("qty", "0.002")]).unwrap();
        assert_eq!(
            cfg,
            ProbeConfig {
                offset_bps: 25,
                qty: q("0.002")
            }
        );
        let mut h = Harness::new();
        let mut s = Probe::new(cfg);
        let (_, req) = one_new(&h.trade(&mut s, &trade(1, "100")));
        assert_eq!(req.price, px("100.25"));
        assert_eq!(req.qty, q("0.002"));
    }

    #[test]
    fn a_full_outbox_is_counted_not_fatal() {
        let mut h = Harness::new();
        let mut s = Probe::new(ProbeConfig::default());
        assert_eq!(h.trade(&mut s, &trade(1, "100")).len(), 1);
        h.outbox = Outbox::with_capacity(0);
        assert!(h.trade(&mut s, &trade(2, "100")).is_empty());
        assert_eq!((s.sent(), s.refused()), (1, 1));
    }

    #[test]
    fn params() {
        assert_eq!(probe(&[]).unwrap(), ProbeConfig::default());
        assert_eq!(probe(&[("offset_bps", "-1000")]).unwrap().offset_bps, -1000);
        assert_eq!(probe(&[("offset_bps", "-9999")]).unwrap().offset_bps, -9999);
        for (k, v) in [
            ("offset_bps", "-10000"),
            ("offset_bps", "10001"),
            ("offset_bps", "1.5"),
            ("offset_bps", "x"),
            ("qty", "0"),
            ("qty", "-1"),
            ("qty", "0.000000001"),
        ] {
            match probe(&[(k, v)]) {
                Err(ParamError::BadValue { key, .. }) => assert_eq!(key, k, "{k}={v}"),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        assert_eq!(
            probe(&[("offset", "5")]),
            Err(ParamError::Unknown("offset".into()))
        );
    }
}
