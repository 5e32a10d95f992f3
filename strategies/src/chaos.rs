//! Fault injection for supervision drills: traders that count trades and panic on purpose.
//!
//! `chaos` places no orders. It runs `chunks` traders under a [`Leader`]; every `panic_every`-th
//! trade the symbol sees (counted by the leader's shared logic, so a restarted trader does not
//! replay it), trader `panic_trader` panics in its callback. Its restart, its state put back from
//! the snapshot, the other traders carrying on, and, with restarts more frequent than the policy
//! allows, the halt of the symbol, can all be watched in `tickline ctl status`:
//!
//! ```text
//! tickline ctl start-trading ETHUSDT --strategy chaos --param panic_every=100 --param max_restarts=3
//! ```
//!
//! A trader's state is the number of trades it has seen; a trader restarted from its snapshot
//! has missed exactly the trade it crashed on.

use engine::event::{ClientOrderId, Trade, TraderBlob};
use engine::strategy::{Ctx, ParamError, Params, Strategy};
use engine::supervisor::{Leader, RestartPolicy, TraderLogic};

use crate::bad_value;

/// The name [`crate::build`] knows this strategy by.
pub const NAME: &str = "chaos";

/// Most traders.
pub const MAX_CHUNKS: u64 = 64;

/// The parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChaosConfig {
    /// Traders (`chunks`, default 2, `1..=64`).
    pub chunks: usize,
    /// A panic every this many trades (`panic_every`, default 0: never).
    pub panic_every: u64,
    /// The trader that panics (`panic_trader`, default 0, below `chunks`).
    pub panic_trader: usize,
}

impl ChaosConfig {
    /// Reads and checks the parameters.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let chunks = p.u64_in("chunks", 2, 1, MAX_CHUNKS)? as usize;
        let panic_every = p.u64_in("panic_every", 0, 0, u64::MAX)?;
        let panic_trader = p.u64_in("panic_trader", 0, 0, MAX_CHUNKS - 1)? as usize;
        if panic_trader >= chunks {
            return Err(bad_value(
                "panic_trader",
                format!("must be below chunks ({chunks})"),
            ));
        }
        Ok(ChaosConfig {
            chunks,
            panic_every,
            panic_trader,
        })
    }
}

/// The shared logic: the parameters and the symbol's trade count.
#[derive(Debug)]
pub struct ChaosLogic {
    cfg: ChaosConfig,
    seen: u64,
}

impl TraderLogic for ChaosLogic {
    /// `(trader index, trades seen)`.
    type State = (u16, u64);

    fn name(&self) -> &'static str {
        NAME
    }

    /// Its own symbol's trades: the traders count and panic on nothing else.
    fn channels(&self) -> Vec<String> {
        vec!["trade".into()]
    }

    fn traders(&self) -> usize {
        self.cfg.chunks
    }
    fn fresh(&self, index: usize) -> (u16, u64) {
        (index as u16, 0)
    }
    fn is_finished(&self, _st: &(u16, u64)) -> bool {
        false
    }
    fn owns(&self, _st: &(u16, u64), _id: ClientOrderId) -> bool {
        false
    }
    fn describe(&self, st: &(u16, u64)) -> String {
        format!("{} trades seen", st.1)
    }
    fn params(&self) -> Vec<(String, String)> {
        vec![
            ("chunks".into(), self.cfg.chunks.to_string()),
            ("panic_every".into(), self.cfg.panic_every.to_string()),
            ("panic_trader".into(), self.cfg.panic_trader.to_string()),
        ]
    }
    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        let mut merged = Params::new(self.params()).merged(params);
        let cfg = ChaosConfig::from_params(&mut merged)?;
        merged.finish()?;
        if cfg.chunks != self.cfg.chunks {
            return Err(bad_value(
                "chunks",
                "the number of traders is fixed while trading".into(),
            ));
        }
        self.cfg = cfg;
        Ok(format!(
            "panic_every {}, panic_trader {}",
            cfg.panic_every, cfg.panic_trader
        ))
    }
    fn on_trade(&mut self, st: &mut (u16, u64), _ctx: &mut Ctx<'_>, t: &Trade) {
        if st.0 == 0 {
            self.seen += 1;
        }
        st.1 += 1;
        let due = self.cfg.panic_every > 0 && self.seen.is_multiple_of(self.cfg.panic_every);
        if due && st.0 as usize == self.cfg.panic_trader {
            panic!(
                "chaos: injected panic in trader {} on trade {} (trade {} of the symbol)",
                st.0, t.trade_id, self.seen
            );
        }
    }
    fn encode(&self, st: &(u16, u64)) -> Option<TraderBlob> {
        let mut b = [0u8; 10];
        b[..2].copy_from_slice(&st.0.to_le_bytes());
        b[2..].copy_from_slice(&st.1.to_le_bytes());
        TraderBlob::new(&b)
    }
    fn decode(&self, bytes: &[u8]) -> Option<(u16, u64)> {
        let i = u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?);
        let n = u64::from_le_bytes(bytes.get(2..10)?.try_into().ok()?);
        (bytes.len() == 10).then_some((i, n))
    }
}

/// The chaos strategy: a [`Leader`] of [`ChaosLogic`] traders.
pub fn build(cfg: ChaosConfig, policy: RestartPolicy) -> Box<dyn Strategy> {
    Box::new(Leader::new(ChaosLogic { cfg, seen: 0 }, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{trade, Harness};

    #[test]
    fn panics_restart_the_trader_then_halt_the_symbol() {
        let mut h = Harness::new();
        let mut s = crate::build(
            NAME,
            Params::new([
                ("chunks", "3"),
                ("panic_every", "4"),
                ("panic_trader", "1"),
                ("max_restarts", "1"),
            ]),
        )
        .unwrap();
        for id in 1..=6 {
            assert!(h.trade(s.as_mut(), &trade(id, "100")).is_empty());
        }
        let l = s.leader_status().unwrap();
        // Trader 1 crashed on trade 4: it missed that one trade; the others saw all six.
        let states: Vec<&str> = l.traders.iter().map(|t| t.state.as_str()).collect();
        assert_eq!(states, ["6 trades seen", "5 trades seen", "6 trades seen"]);
        assert_eq!(l.traders[1].restarts, 1);
        assert!(l.halted.is_none());
        // The second crash within the window is one too many.
        for id in 7..=8 {
            h.trade(s.as_mut(), &trade(id, "100"));
        }
        let l = s.leader_status().unwrap();
        assert!(l.halted.as_deref().unwrap().contains("2 restarts"), "{l:?}");
        assert!(l.traders[1]
            .last_panic
            .as_deref()
            .unwrap()
            .contains("chaos: injected panic in trader 1 on trade 8"));
    }

    #[test]
    fn parameters_are_checked() {
        assert!(crate::build(NAME, Params::new([("panic_trader", "2")])).is_err());
        assert!(crate::build(NAME, Params::new([("chunks", "0")])).is_err());
        let e = crate::build(NAME, Params::new([("panic", "1")])).err();
        assert_eq!(e, Some(ParamError::Unknown("panic".into())));
    }
}
