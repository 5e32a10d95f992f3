//! Control commands on a running core (start and stop trading a symbol, change parameters, halt,
//! resume, the kill switch, the status tree), taken from the control channel about once a
//! millisecond by [`State::housekeeping`], never per event. Each is applied whole or not at
//! all, and answered. Everything here is cold and may allocate (the answers are text).

use super::{Clock, State};
use crate::control::Reply;
use crate::fixed::Qty;
use crate::risk::{Risk, RiskLimits, TradingState};
use crate::symbol::SymbolId;

impl State {
    /// About once a millisecond: supervision counters from the strategies' outbox, and control
    /// commands.
    #[cold]
    #[inline(never)]
    pub(super) fn housekeeping<C: Clock>(&mut self, clock: &C) {
        self.sync_supervision_counters();
        // At most a few per millisecond: a flood of commands cannot starve the market.
        let mut handled = 0;
        while handled < 16 {
            let Some(Ok(req)) = self.control.as_ref().map(|rx| rx.try_recv()) else {
                break;
            };
            handled += 1;
            self.counters.control_commands += 1;
            let reply = self.apply_command(req.command, clock);
            // The requester may have given up waiting; nothing to do then.
            let _ = req.reply.try_send(reply);
        }
    }

    pub(super) fn symbol_name(&self, sym: SymbolId) -> &str {
        self.names.get(sym.index()).map_or("?", |n| n.1.as_str())
    }

    /// The kill switch: halts (creating permissive risk if the run had none) and cancels every
    /// open order; returns the cancels sent.
    #[cold]
    pub(super) fn kill(&mut self) -> usize {
        self.risk_or_permissive().kill();
        let mut sent = 0;
        for i in 0..self.orders.len() {
            let (sym, id) = (self.orders[i].symbol, self.orders[i].id);
            self.send_cancel(sym, id);
            sent += 1;
        }
        sent
    }

    /// Pre-trade risk, created permissive (every limit at its maximum) if the run had none, so
    /// halt and kill always work.
    pub(super) fn risk_or_permissive(&mut self) -> &mut Risk {
        let n = self.symbols.len();
        self.risk.get_or_insert_with(|| {
            Risk::new(
                n,
                RiskLimits {
                    max_order_qty: Qty(i64::MAX),
                    max_order_notional: crate::fixed::Notional(i128::MAX),
                    max_position: Qty(i64::MAX),
                    max_open_orders: u32::MAX,
                    rate_per_sec: u32::MAX,
                    burst: u32::MAX,
                    price_band_bps: u32::MAX,
                },
            )
        })
    }

    #[cold]
    pub(super) fn apply_command<C: Clock>(
        &mut self,
        cmd: crate::control::Command,
        clock: &C,
    ) -> Reply {
        use crate::control::Command;
        let now = clock.now_ns();
        match cmd {
            Command::StartTrading {
                symbol,
                strategy,
                rules,
            } => {
                let name = self.symbol_name(symbol).to_string();
                let Some(slot) = self.symbols.get_mut(symbol.index()) else {
                    return Reply::Refused(format!("no symbol #{}", symbol.index()));
                };
                if let Some(s) = &slot.strategy {
                    return Reply::Refused(format!(
                        "{name} already trades `{}`: stop-trading it first",
                        s.name()
                    ));
                }
                let what = strategy.name();
                if let Err(e) = self.install(symbol, strategy) {
                    return Reply::Refused(format!("{name}: {e}; nothing changed"));
                }
                if let Some(slot) = self.symbols.get_mut(symbol.index()) {
                    if let Some(r) = rules {
                        slot.rules = r;
                    }
                    // An idle symbol's book may be old: start from a fresh snapshot.
                    slot.book.mark_stale();
                }
                // Its streams are subscribed now: depth diffs come if the feed carries them.
                if let Some(f) = self.depth_fed.get_mut(symbol.index()) {
                    *f = self.depth_snapshots;
                }
                self.request_resync(symbol, true);
                Reply::Done(format!("{name}: trading `{what}`"))
            }
            Command::StopTrading { symbol } => {
                let name = self.symbol_name(symbol).to_string();
                if self
                    .symbols
                    .get(symbol.index())
                    .is_none_or(|s| s.strategy.is_none())
                {
                    return Reply::Refused(format!("{name} is not trading"));
                }
                let cancels = self.cancel_symbol(symbol);
                if let Some(slot) = self.symbols.get_mut(symbol.index()) {
                    slot.strategy = None;
                    slot.channels.clear();
                }
                self.rebuild_routes();
                Reply::Done(format!(
                    "{name}: stopped; {cancels} cancel(s) sent for its open orders"
                ))
            }
            Command::Set { symbol, params } => {
                let name = self.symbol_name(symbol).to_string();
                let Some(strategy) = self
                    .symbols
                    .get_mut(symbol.index())
                    .and_then(|s| s.strategy.as_mut())
                else {
                    return Reply::Refused(format!("{name} is not trading"));
                };
                match strategy.set_params(&params) {
                    Ok(what) => Reply::Done(format!("{name}: {what}")),
                    Err(e) => Reply::Refused(format!("{name}: {e}; nothing changed")),
                }
            }
            Command::Halt => {
                self.risk_or_permissive().set_state(TradingState::Halted);
                Reply::Done("trading HALTED: no new orders (cancels still go out)".into())
            }
            Command::Resume => {
                let r = self.risk_or_permissive();
                r.resume();
                r.set_state(TradingState::Active);
                Reply::Done("trading ACTIVE".into())
            }
            Command::Kill => {
                let cancels = self.kill();
                Reply::Done(format!(
                    "KILLED: trading halted, {cancels} cancel(s) sent; `resume` lifts it"
                ))
            }
            Command::Status => Reply::Status(self.status(now)),
        }
    }

    #[cold]
    pub(super) fn status(&self, _now: u64) -> crate::status::CoreStatus {
        use crate::status::{CoreStatus, SymbolStatus};
        let money = |units: i128| units as f64 / crate::fixed::SCALE as f64;
        let trading_state = match &self.risk {
            None => "ACTIVE (no pre-trade risk)".to_string(),
            Some(r) if r.is_killed() => "KILLED".to_string(),
            Some(r) => match r.state() {
                TradingState::Active => "ACTIVE",
                TradingState::Reducing => "REDUCING",
                TradingState::Halted => "HALTED",
            }
            .to_string(),
        };
        let symbols = self
            .symbols
            .iter()
            .enumerate()
            .map(|(i, slot)| SymbolStatus {
                symbol: self.names.get(i).map(|n| n.1.clone()).unwrap_or_default(),
                trading: slot.strategy.is_some(),
                strategy: slot.strategy.as_ref().map(|s| s.name().to_string()),
                book_synced: slot.book.is_synced(),
                position: Qty(slot.position.qty).to_string(),
                avg_price: slot.position.avg_price.to_string(),
                realized: money(slot.position.realized),
                unrealized: money(slot.position.unrealized()),
                fees: money(slot.position.fees),
                open_orders: self.orders.iter().filter(|o| o.symbol.index() == i).count(),
                leader: slot.strategy.as_ref().and_then(|s| s.leader_status()),
            })
            .collect();
        CoreStatus {
            trading_state,
            events: self.counters.events,
            orders: self.counters.orders_sent,
            fills: self.counters.fills,
            trader_restarts: self.outbox.trader_restarts,
            symbol_halts: self.outbox.symbol_halts,
            symbols,
        }
    }
}
