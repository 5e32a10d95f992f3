//! The order manager: the in-flight order table (one [`OrderEntry`] per order the core knows
//! is open), routing a strategy's intents to the order ring (live) or the paper venue,
//! pre-trade risk on every new order, the venue's answers joined back to their orders (acks,
//! rejects, fills applied once, cancels), and the ack timeout.
//!
//! Order ids are numbered by the strategy context ([`crate::strategy::Ctx::submit`]) from the
//! core's `next_order_no`; the table and the recent-fills memory are sized in
//! [`super::CoreBuilder::build`] and never grow. A refusal by the core itself (risk, a full
//! table or ring) becomes an order event on `order_updates_out` and reaches the strategy like
//! any other.

use super::{Clock, State};
use crate::event::{
    ClientOrderId, Event, EventKind, OrderCommand, OrderRequest, OrderType, RejectReason, Side,
};
use crate::fixed::{Price, Qty};
use crate::latency::Stage;
use crate::risk::RiskInputs;
use crate::strategy::{Intent, OrderUpdate, OrderUpdateKind};
use crate::symbol::SymbolId;

#[derive(Clone, Copy, Debug)]
pub(super) struct OrderEntry {
    pub(super) id: ClientOrderId,
    pub(super) symbol: SymbolId,
    pub(super) side: Side,
    pub(super) price: Price,
    pub(super) qty: Qty,
    pub(super) filled: Qty,
    pub(super) sent_ns: u64,
    pub(super) state: OrderState,
}

impl OrderEntry {
    pub(super) fn new(
        id: ClientOrderId,
        symbol: SymbolId,
        req: &OrderRequest,
        filled: Qty,
        sent_ns: u64,
        state: OrderState,
    ) -> Self {
        OrderEntry {
            id,
            symbol,
            side: req.side,
            // A market order has no limit price.
            price: if req.order_type == OrderType::Market {
                Price::ZERO
            } else {
                req.price
            },
            qty: req.qty,
            filled,
            sent_ns,
            state,
        }
    }
}

/// Where an order is in its life, as the core knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OrderState {
    /// Sent, no answer yet.
    Sent,
    /// Acknowledged; working (possibly partly filled).
    Working,
    /// No answer within the ack timeout: outcome unknown, still in flight.
    Unknown,
}

/// Fills recently applied, by (client order id, venue trade id), to drop fills the venue (or a
/// reconnect's replay) sends twice. Keyed by both, since two of our own orders can be the two
/// sides of one venue trade. Two fixed-size open-addressing generations: when the current one
/// is half full it becomes the previous one, so the last few thousand fills are remembered
/// without growing.
#[derive(Debug)]
pub(super) struct RecentFills {
    current: Vec<(u64, u64)>,
    previous: Vec<(u64, u64)>,
    len: usize,
}

impl RecentFills {
    const SLOTS: usize = 8192;
    const EMPTY: (u64, u64) = (0, 0);

    /// Maps both tables' pages (see [`crate::prefault`]).
    pub(super) fn prefault(&mut self) {
        crate::prefault::slice_touch(&mut self.current);
        crate::prefault::slice_touch(&mut self.previous);
    }

    pub(super) fn new() -> Self {
        RecentFills {
            current: vec![Self::EMPTY; Self::SLOTS],
            previous: vec![Self::EMPTY; Self::SLOTS],
            len: 0,
        }
    }

    fn find(table: &[(u64, u64)], key: (u64, u64)) -> Result<usize, usize> {
        let mask = table.len() - 1;
        let h =
            key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key.1.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let mut i = (h >> 32) as usize & mask;
        loop {
            match table[i] {
                Self::EMPTY => return Err(i),
                k if k == key => return Ok(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// True if this fill was seen already; otherwise remembers it.
    pub(super) fn seen_or_insert(&mut self, client_id: ClientOrderId, trade_id: u64) -> bool {
        // The +1 keeps every real key away from the empty marker.
        let key = (client_id.0.wrapping_add(1), trade_id.wrapping_add(1));
        if key == Self::EMPTY || Self::find(&self.previous, key).is_ok() {
            return key != Self::EMPTY;
        }
        match Self::find(&self.current, key) {
            Ok(_) => true,
            Err(slot) => {
                self.current[slot] = key;
                self.len += 1;
                if self.len * 2 >= Self::SLOTS {
                    core::mem::swap(&mut self.current, &mut self.previous);
                    self.current.iter_mut().for_each(|k| *k = Self::EMPTY);
                    self.len = 0;
                }
                false
            }
        }
    }
}

impl State {
    /// Handles the order events the paper venue or the core itself (risk, a full order table or
    /// ring) produced. Handling one can make a strategy send more orders, whose immediate
    /// answers (rejects) append to the same buffer; a bound keeps a strategy that answers every
    /// reject with a new order from holding the core, and what is left waits for the next event.
    #[inline]
    pub(super) fn drain_order_updates<C: Clock>(&mut self, clock: &C) {
        const MAX_PER_EVENT: usize = 4096;
        let mut i = 0;
        while i < self.order_updates_out.len() && i < MAX_PER_EVENT {
            let ev = self.order_updates_out[i];
            self.on_order_event(&ev, clock);
            i += 1;
        }
        self.order_updates_out.drain(..i);
    }

    pub(super) fn on_order_event<C: Clock>(&mut self, ev: &Event, clock: &C) {
        let (id, kind) = match ev.kind {
            EventKind::OrderAck(a) => {
                self.counters.acks += 1;
                (a.client_id, OrderUpdateKind::Accepted)
            }
            EventKind::OrderReject(r) => {
                self.counters.rejects += 1;
                (r.client_id, OrderUpdateKind::Rejected(r.reason))
            }
            EventKind::Fill(f) => {
                if self.recent_fills.seen_or_insert(f.client_id, f.trade_id) {
                    self.counters.duplicate_fills += 1;
                    return;
                }
                self.counters.fills += 1;
                (
                    f.client_id,
                    OrderUpdateKind::Filled {
                        price: f.price,
                        qty: f.qty,
                        fee: f.fee,
                    },
                )
            }
            EventKind::OrderCanceled(c) => {
                self.counters.canceled += 1;
                (c.client_id, OrderUpdateKind::Canceled)
            }
            _ => return,
        };
        let Some(idx) = self.orders.iter().position(|o| o.id == id) else {
            self.counters.unknown_order_events += 1;
            return;
        };
        let o = &mut self.orders[idx];
        if matches!(kind, OrderUpdateKind::Accepted) {
            self.latency
                .record(Stage::OrderAck, clock.now_ns().saturating_sub(o.sent_ns));
        }
        if !matches!(kind, OrderUpdateKind::Rejected(_)) {
            o.state = OrderState::Working;
        }
        if let OrderUpdateKind::Filled { price, qty, fee } = kind {
            o.filled = Qty(o.filled.0 + qty.0);
            if let Some(slot) = self.symbols.get_mut(o.symbol.index()) {
                slot.position.apply_fill(o.side, price, qty, fee);
            }
        }
        let leaves = match kind {
            OrderUpdateKind::Rejected(_) | OrderUpdateKind::Canceled => Qty::ZERO,
            _ => Qty((o.qty.0 - o.filled.0).max(0)),
        };
        let update = OrderUpdate {
            client_id: id,
            side: o.side,
            price: o.price,
            kind,
            leaves_qty: leaves,
            filled_qty: o.filled,
        };
        let sym = o.symbol;
        if update.is_final() {
            self.orders.swap_remove(idx);
        }
        self.dispatch(sym, ev.recv_ns, clock, |s, ctx| s.on_order(ctx, &update));
    }

    pub(super) fn route(&mut self, sym: SymbolId, recv_ns: u64, emitted_ns: u64) {
        for i in 0..self.outbox.len() {
            let Some(intent) = self.outbox.get(i) else {
                break;
            };
            match intent {
                Intent::New(id, req) => self.send_new(sym, id, req, recv_ns, emitted_ns),
                Intent::Cancel(id) => self.send_cancel(sym, id),
                Intent::CancelAll => {
                    self.cancel_symbol(sym);
                }
                Intent::TraderState(trader, state) => {
                    let cmd = OrderCommand::TraderState {
                        symbol: sym,
                        trader,
                        state,
                    };
                    if let Some(tx) = self.order_sink.as_mut() {
                        if tx.push(cmd).is_err() {
                            self.counters.order_ring_full += 1;
                        }
                    }
                }
            }
        }
        self.outbox.clear();
    }

    pub(super) fn send_new(
        &mut self,
        sym: SymbolId,
        id: ClientOrderId,
        req: OrderRequest,
        recv_ns: u64,
        emitted_ns: u64,
    ) {
        self.latency
            .record(Stage::TickToOrder, emitted_ns.saturating_sub(recv_ns));
        let denied = match self.risk.as_mut() {
            Some(risk) => {
                let mut inputs = RiskInputs {
                    last_trade: self
                        .symbols
                        .get(sym.index())
                        .and_then(|s| s.last_trade.map(|t| t.price)),
                    position: self.symbols.get(sym.index()).map_or(0, |s| s.position.qty),
                    ..RiskInputs::default()
                };
                for o in self.orders.iter().filter(|o| o.symbol == sym) {
                    let open = (o.qty.0 - o.filled.0).max(0);
                    match o.side {
                        Side::Buy => inputs.open_buy_qty += open,
                        Side::Sell => inputs.open_sell_qty += open,
                    }
                    inputs.open_orders += 1;
                }
                risk.check(sym, &req, &inputs, emitted_ns).err()
            }
            None => None,
        };
        let table_full = self.orders.len() >= self.max_open_orders;
        // The entry is kept even for a refused order (within the table's headroom) so that the
        // refusal is joined with it and reaches the strategy like any other order event.
        if self.orders.len() < self.orders.capacity() {
            let entry = OrderEntry::new(id, sym, &req, Qty::ZERO, emitted_ns, OrderState::Sent);
            self.orders.push(entry);
        }
        let refuse = |reason| {
            Event::new(
                recv_ns,
                sym,
                EventKind::OrderReject(crate::event::OrderReject {
                    client_id: id,
                    reason,
                }),
            )
        };
        if let Some(reason) = denied {
            self.counters.orders_denied += 1;
            self.order_updates_out
                .push(refuse(RejectReason::Risk(reason)));
            return;
        }
        if table_full {
            self.order_updates_out
                .push(refuse(RejectReason::TooManyOrders));
            return;
        }
        if let Some(tx) = self.order_sink.as_mut() {
            let cmd = OrderCommand::New {
                client_id: id,
                symbol: sym,
                req,
                cause_ns: recv_ns,
            };
            if tx.push(cmd).is_err() {
                self.counters.order_ring_full += 1;
                self.order_updates_out.push(refuse(RejectReason::QueueFull));
            } else {
                self.counters.orders_sent += 1;
                if let Some(notify) = self.order_notify.as_mut() {
                    (notify.0)();
                }
            }
            return;
        }
        self.counters.orders_sent += 1;
        let first_new = self.order_updates_out.len();
        self.paper
            .submit(id, sym, req, self.market_ns, &mut self.order_updates_out);
        // An immediate answer (a full paper table) carries the receive time of the event that
        // caused the order, like every other order event.
        for ev in &mut self.order_updates_out[first_new..] {
            ev.recv_ns = recv_ns;
        }
    }

    /// Sends a cancel for every open order of `sym`; returns how many.
    #[cold]
    pub(super) fn cancel_symbol(&mut self, sym: SymbolId) -> usize {
        let mut n = 0;
        for i in 0..self.orders.len() {
            if self.orders[i].symbol == sym {
                let id = self.orders[i].id;
                self.send_cancel(sym, id);
                n += 1;
            }
        }
        n
    }

    pub(super) fn send_cancel(&mut self, sym: SymbolId, id: ClientOrderId) {
        self.counters.cancels += 1;
        match self.order_sink.as_mut() {
            Some(tx) => {
                let cmd = OrderCommand::Cancel {
                    client_id: id,
                    symbol: sym,
                };
                if tx.push(cmd).is_err() {
                    // The order stays open; the strategy may ask again.
                    self.counters.order_ring_full += 1;
                } else if let Some(notify) = self.order_notify.as_mut() {
                    (notify.0)();
                }
            }
            None => self.paper.cancel(id, self.market_ns),
        }
    }

    /// Orders with no answer within the ack timeout: reported once as `TimedOut`, kept in flight.
    #[cold]
    pub(super) fn check_ack_timeouts<C: Clock>(&mut self, now: u64, clock: &C) {
        if self.orders.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.orders.len() {
            let o = &mut self.orders[i];
            i += 1;
            if o.state != OrderState::Sent || now.saturating_sub(o.sent_ns) < self.ack_timeout_ns {
                continue;
            }
            o.state = OrderState::Unknown;
            self.counters.order_timeouts += 1;
            let update = OrderUpdate {
                client_id: o.id,
                side: o.side,
                price: o.price,
                kind: OrderUpdateKind::TimedOut,
                leaves_qty: Qty((o.qty.0 - o.filled.0).max(0)),
                filled_qty: o.filled,
            };
            let sym = o.symbol;
            self.dispatch(sym, now, clock, |s, ctx| s.on_order(ctx, &update));
        }
        if !self.order_updates_out.is_empty() {
            self.drain_order_updates(clock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_fills_remember_across_generations() {
        let mut r = RecentFills::new();
        let (a, b) = (ClientOrderId(1), ClientOrderId(2));
        assert!(!r.seen_or_insert(a, 1));
        assert!(r.seen_or_insert(a, 1));
        assert!(
            !r.seen_or_insert(b, 1),
            "the other side of the same venue trade is a fill too"
        );
        for id in 2..(RecentFills::SLOTS as u64 / 2 + 10) {
            r.seen_or_insert(a, id);
        }
        // (a, 1) moved to the previous generation and is still known...
        assert!(r.seen_or_insert(a, 1));
        // ...until a whole further generation has gone by: memory is bounded.
        for id in 10_000..(10_000 + RecentFills::SLOTS as u64) {
            r.seen_or_insert(a, id);
        }
        assert!(!r.seen_or_insert(a, 1));
    }
}
