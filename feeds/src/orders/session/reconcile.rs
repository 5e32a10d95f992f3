//! Reconciliation on every (re)connect: `order.status` for every order in flight, `myTrades`
//! for the fills the engine missed, then the order's final state (see the session's module
//! docs, "Reconnects and restarts").

use super::wall_ms;
use super::OrderSession;
use super::Req;
use crate::binance::api::my_trades_of;
use crate::binance::api::order_status_of;
use crate::binance::api::trade_fill;
use crate::binance::api::Envelope;
use crate::binance::api::OpenOrder;
use crate::binance::api::OrderStatus;
use crate::binance::api::OrderStatusReply;
use crate::binance::api::TradesReply;
use crate::binance::api::VenueTrade;
use engine::event::ClientOrderId;
use engine::event::RejectReason;
use engine::fixed::Qty;
use engine::symbol::SymbolId;
/// Trades asked for per `myTrades` request (Binance's maximum).
const TRADES_PAGE: u32 = 1000;

impl OrderSession {
    pub(super) fn query_status(&mut self, client_id: ClientOrderId, symbol: SymbolId) {
        let Some(name) = self.symbols.name(symbol) else {
            return;
        };
        let name = name.to_string();
        let id = self.request_id(Req::Status(client_id));
        let text = self
            .encoder
            .order_status(id, &name, client_id, wall_ms(self.wall))
            .to_string();
        self.queued.push(text);
    }

    /// The reply to an `order.status` this session asked (cold: reconciliation only).
    #[cold]
    pub(super) fn status_reply(&mut self, payload: &[u8], env: &Envelope) {
        match order_status_of(payload, env) {
            Ok(OrderStatusReply::Found { request_id, order }) => self.on_status(request_id, order),
            Ok(OrderStatusReply::Error { request_id, error }) => self.rejected(request_id, &error),
            Err(e) => self.bad_frame(&e.to_string(), payload),
        }
    }

    /// The reply to a `myTrades` this session asked (cold: reconciliation only).
    #[cold]
    pub(super) fn trades_reply(&mut self, payload: &[u8], env: &Envelope) {
        match my_trades_of(payload, env) {
            Ok(TradesReply::Trades { request_id, trades }) => self.on_trades(request_id, &trades),
            Ok(TradesReply::Error { request_id, error }) => self.rejected(request_id, &error),
            Err(e) => self.bad_frame(&e.to_string(), payload),
        }
    }

    pub(super) fn on_status(&mut self, request_id: u64, order: OpenOrder) {
        let (venue_order_id, executed_qty, status) =
            (order.venue_order_id, order.executed_qty, order.status);
        let Some(Req::Status(client_id)) = self.requests.get(&request_id).copied() else {
            return;
        };
        self.requests.remove(&request_id);
        self.counters.reconciled_orders += 1;
        if status != OrderStatus::Rejected {
            self.ack(client_id, venue_order_id);
        }
        let (filled, symbol) = match self.orders.get(&client_id) {
            Some(t) => (t.filled, t.symbol),
            None => return,
        };
        if executed_qty.0 > filled.0 {
            self.query_trades(client_id, symbol, venue_order_id, None, status);
        } else {
            self.settle_by_status(client_id, status, executed_qty);
        }
    }

    pub(super) fn query_trades(
        &mut self,
        client_id: ClientOrderId,
        symbol: SymbolId,
        venue_order_id: u64,
        from_id: Option<u64>,
        then: OrderStatus,
    ) {
        let Some(name) = self.symbols.name(symbol) else {
            return;
        };
        let name = name.to_string();
        let id = self.request_id(Req::Trades { client_id, then });
        let text = self
            .encoder
            .my_trades(
                id,
                &name,
                Some(venue_order_id),
                from_id,
                TRADES_PAGE,
                wall_ms(self.wall),
            )
            .to_string();
        self.queued.push(text);
    }

    pub(super) fn settle_by_status(
        &mut self,
        client_id: ClientOrderId,
        status: OrderStatus,
        executed: Qty,
    ) {
        let Some(t) = self.orders.get(&client_id) else {
            return;
        };
        let leaves = Qty((t.qty.0 - executed.0).max(0));
        match status {
            OrderStatus::Canceled | OrderStatus::Expired | OrderStatus::ExpiredInMatch => {
                self.settle_canceled(client_id, leaves)
            }
            OrderStatus::Rejected => self.settle_rejected(client_id, RejectReason::Venue, 0),
            OrderStatus::Filled => {
                if let Some(t) = self.orders.get_mut(&client_id) {
                    t.settled = true;
                }
            }
            _ => {} // still working: its reports come on this connection from now on
        }
    }

    pub(super) fn on_trades(&mut self, request_id: u64, trades: &[VenueTrade]) {
        let Some(Req::Trades { client_id, then }) = self.requests.get(&request_id).copied() else {
            return;
        };
        self.requests.remove(&request_id);
        let Some(t) = self.orders.get(&client_id) else {
            return;
        };
        let (symbol, venue_order_id) = (t.symbol, t.venue_order_id);
        let name = self.symbols.name(symbol).unwrap_or_default().to_string();
        let mut last = None;
        for tr in trades {
            last = Some(tr.trade_id);
            if venue_order_id.is_some_and(|v| v != tr.venue_order_id) {
                continue;
            }
            let known = self
                .orders
                .get(&client_id)
                .is_some_and(|t| t.trade_ids.contains(&tr.trade_id));
            if !known {
                self.counters.reconciled_fills += 1;
                self.fill(symbol, trade_fill(tr, client_id, &name));
            }
        }
        match (trades.len() >= TRADES_PAGE as usize, last, venue_order_id) {
            (true, Some(last), Some(v)) => {
                self.query_trades(client_id, symbol, v, Some(last + 1), then)
            }
            _ => {
                let executed = self.orders.get(&client_id).map_or(Qty::ZERO, |t| t.filled);
                self.settle_by_status(client_id, then, executed);
            }
        }
    }
}
