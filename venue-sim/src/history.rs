//! What the venue remembers of orders that are no longer open and of every fill, so a client
//! that lost track (a trading engine killed and restarted) can ask `order.status` and
//! `myTrades` what happened.
//!
//! # Bounds
//!
//! Both records are bounded, over all accounts and symbols together, and allocated as they
//! grow (nothing up front):
//!
//! - the last [`MAX_FINISHED_ORDERS`] finished orders (`FILLED`, `CANCELED`, `EXPIRED`; refused
//!   orders were never accepted, so they are not kept, as on Binance). Open orders live in the
//!   matching books and are always found. An older finished order is forgotten:
//!   `order.status` then answers `-2013 Order does not exist.`;
//! - the last [`MAX_TRADES`] fills of client orders (a match of two client orders is two
//!   fills, one per order, sharing the trade id). Older fills are left out of `myTrades`.
//!
//! At the bounds they take roughly 40 MB. Lookups by order id and client order id are hash-map
//! lookups; `myTrades` scans the fill record (at most [`MAX_TRADES`] entries).

use super::matching::{ClientId, Exec, ExecType, Order, Status};
use engine::event::Side;
use engine::fixed::{Price, Qty};
use std::collections::{HashMap, VecDeque};

/// Finished orders kept for `order.status`, over all accounts and symbols.
pub(crate) const MAX_FINISHED_ORDERS: usize = 100_000;
/// Fills kept for `myTrades`, over all accounts and symbols.
pub(crate) const MAX_TRADES: usize = 100_000;

/// One fill of one client order, as `myTrades` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TradeRecord {
    /// Symbol index.
    pub(crate) sym: usize,
    /// The order's account.
    pub(crate) account: u32,
    /// The trade id (the `t` of the execution report).
    pub(crate) trade_id: u64,
    /// The order.
    pub(crate) order_id: u64,
    /// The order's side.
    pub(crate) side: Side,
    /// Price of the fill.
    pub(crate) price: Price,
    /// Quantity of the fill.
    pub(crate) qty: Qty,
    /// Quote quantity, 1e-8 units.
    pub(crate) quote: i64,
    /// Commission, 1e-8 units of the asset received (the `n` of the execution report).
    pub(crate) commission: i64,
    /// The order was the maker.
    pub(crate) maker: bool,
    /// When, ms.
    pub(crate) time_ms: u64,
}

/// Which fills `myTrades` wants (symbol and account are given separately).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TradeFilter {
    /// Only this order's fills.
    pub(crate) order_id: Option<u64>,
    /// Fills at or after this time, ms.
    pub(crate) start_ms: Option<u64>,
    /// Fills at or before this time, ms.
    pub(crate) end_ms: Option<u64>,
    /// Fills with a trade id at least this.
    pub(crate) from_id: Option<u64>,
    /// At most this many.
    pub(crate) limit: usize,
}

impl TradeFilter {
    /// Whether the oldest matching fills are wanted (`fromId`, `startTime` or `orderId` given)
    /// rather than the most recent ones.
    fn oldest_first(&self) -> bool {
        self.from_id.is_some() || self.start_ms.is_some() || self.order_id.is_some()
    }

    fn accepts(&self, t: &TradeRecord) -> bool {
        self.order_id.is_none_or(|id| t.order_id == id)
            && self.start_ms.is_none_or(|s| t.time_ms >= s)
            && self.end_ms.is_none_or(|e| t.time_ms <= e)
            && self.from_id.is_none_or(|f| t.trade_id >= f)
    }
}

/// Finished orders and fills, bounded.
#[derive(Debug)]
pub(crate) struct History {
    /// Finished orders by order id (unique across symbols), with their symbol index.
    orders: HashMap<u64, (usize, Order)>,
    /// Their order ids, oldest finished first (the eviction order).
    finished: VecDeque<u64>,
    /// The latest finished order of each `(account, symbol, client order id)`.
    by_client: HashMap<(u32, usize, ClientId), u64>,
    /// Fills, oldest first.
    trades: VecDeque<TradeRecord>,
    max_orders: usize,
    max_trades: usize,
}

impl History {
    /// An empty history keeping at most `max_orders` finished orders and `max_trades` fills.
    pub(crate) fn new(max_orders: usize, max_trades: usize) -> History {
        History {
            orders: HashMap::new(),
            finished: VecDeque::new(),
            by_client: HashMap::new(),
            trades: VecDeque::new(),
            max_orders,
            max_trades,
        }
    }

    /// Records the executions of symbol `sym`: their fills, and the orders they finish.
    pub(crate) fn record(&mut self, sym: usize, execs: &[Exec]) {
        for e in execs {
            let o = &e.order;
            if e.exec == ExecType::Trade {
                self.push_trade(TradeRecord {
                    sym,
                    account: o.account,
                    trade_id: e.trade_id.unwrap_or(0),
                    order_id: o.order_id,
                    side: o.side,
                    price: e.last_price,
                    qty: e.last_qty,
                    quote: e.last_quote,
                    commission: e.commission,
                    maker: e.maker,
                    time_ms: e.time_ms,
                });
            }
            if matches!(
                o.status,
                Status::Filled | Status::Canceled | Status::Expired
            ) {
                self.finish(sym, o);
            }
        }
    }

    fn push_trade(&mut self, t: TradeRecord) {
        if self.max_trades == 0 {
            return;
        }
        if self.trades.len() >= self.max_trades {
            self.trades.pop_front();
        }
        self.trades.push_back(t);
    }

    fn finish(&mut self, sym: usize, o: &Order) {
        if self.max_orders == 0 {
            return;
        }
        while self.finished.len() >= self.max_orders {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if let Some((s, gone)) = self.orders.remove(&old) {
                let key = (gone.account, s, gone.client_id);
                if self.by_client.get(&key) == Some(&old) {
                    self.by_client.remove(&key);
                }
            }
        }
        if self.orders.insert(o.order_id, (sym, *o)).is_none() {
            self.finished.push_back(o.order_id);
        }
        self.by_client
            .insert((o.account, sym, o.client_id), o.order_id);
    }

    /// The finished orders of `account` on symbol `sym`, in no particular order (`allOrders`).
    pub(crate) fn orders_of(&self, account: u32, sym: usize) -> impl Iterator<Item = &Order> {
        self.orders
            .values()
            .filter(move |(s, o)| *s == sym && o.account == account)
            .map(|(_, o)| o)
    }

    /// The finished order of `account` on symbol `sym` named by `order_id` and/or `client_id`.
    /// With both, the order is found by id and its client id must match.
    pub(crate) fn find(
        &self,
        account: u32,
        sym: usize,
        order_id: Option<u64>,
        client_id: Option<ClientId>,
    ) -> Option<&Order> {
        let id = match (order_id, client_id) {
            (Some(id), _) => id,
            (None, Some(c)) => *self.by_client.get(&(account, sym, c))?,
            (None, None) => return None,
        };
        let (s, o) = self.orders.get(&id)?;
        (*s == sym && o.account == account && client_id.is_none_or(|c| c == o.client_id))
            .then_some(o)
    }

    /// The fills of `account` on symbol `sym` that `f` selects, oldest first: the oldest
    /// `f.limit` of them when `f` names an order, a first trade id or a start time, else the
    /// most recent `f.limit`.
    pub(crate) fn trades(&self, account: u32, sym: usize, f: &TradeFilter) -> Vec<&TradeRecord> {
        let mine = |t: &&TradeRecord| t.account == account && t.sym == sym && f.accepts(t);
        if f.oldest_first() {
            self.trades.iter().filter(mine).take(f.limit).collect()
        } else {
            let mut v: Vec<&TradeRecord> = self
                .trades
                .iter()
                .rev()
                .filter(mine)
                .take(f.limit)
                .collect();
            v.reverse();
            v
        }
    }

    /// Finished orders held.
    #[cfg(test)]
    pub(crate) fn finished_orders(&self) -> usize {
        self.finished.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{MatchBook, NoFeed, OrdType, Tif};

    fn order(id: u64, account: u32, cid: &str, side: Side, price: i64, qty: i64) -> Order {
        Order::new(
            id,
            1,
            account,
            ClientId::new(cid).unwrap(),
            side,
            OrdType::Limit,
            Tif::Gtc,
            Price(price),
            Qty(qty),
        )
    }

    /// Rests `o` on `b`, then fills it with feed trades of `lots` at its price.
    fn rest_and_fill(b: &mut MatchBook, h: &mut History, o: Order, lots: &[i64], t: u64) {
        let mut out = Vec::new();
        b.place(&NoFeed, o, t, &mut out).unwrap();
        for (i, &q) in lots.iter().enumerate() {
            b.on_trade(o.price, Qty(q), t + 1 + i as u64, &mut out);
        }
        h.record(0, &out);
    }

    #[test]
    fn finished_orders_are_found_by_id_or_client_id_within_their_account() {
        let mut b = MatchBook::new(16);
        let mut h = History::new(100, 100);
        rest_and_fill(
            &mut b,
            &mut h,
            order(1, 0, "a", Side::Buy, 100, 10),
            &[4, 6],
            10,
        );
        let cid = ClientId::new("a");
        let o = *h.find(0, 0, Some(1), None).unwrap();
        assert_eq!(
            (o.status, o.filled, o.created_ms, o.updated_ms),
            (Status::Filled, Qty(10), 10, 12)
        );
        assert_eq!(h.find(0, 0, None, cid).unwrap().order_id, 1);
        assert_eq!(h.find(0, 0, Some(1), cid).unwrap().order_id, 1);
        // Another account, another symbol, a client id that does not match: nothing.
        assert!(h.find(1, 0, Some(1), None).is_none());
        assert!(h.find(1, 0, None, cid).is_none());
        assert!(h.find(0, 1, Some(1), None).is_none());
        assert!(h.find(0, 0, Some(1), ClientId::new("b")).is_none());
        assert!(h.find(0, 0, Some(2), None).is_none());
        assert!(h.find(0, 0, None, None).is_none());
        // A client id used again: the latest order answers to it.
        rest_and_fill(
            &mut b,
            &mut h,
            order(2, 0, "a", Side::Sell, 100, 1),
            &[1],
            20,
        );
        assert_eq!(h.find(0, 0, None, cid).unwrap().order_id, 2);
        assert_eq!(h.find(0, 0, Some(1), None).unwrap().order_id, 1);
        // Open orders are not finished ones.
        let mut out = Vec::new();
        b.place(&NoFeed, order(3, 0, "c", Side::Buy, 50, 1), 30, &mut out)
            .unwrap();
        h.record(0, &out);
        assert!(h.find(0, 0, Some(3), None).is_none());
        let c = b
            .cancel(0, Some(3), None, ClientId::new("x").unwrap(), 31, &mut out)
            .unwrap();
        h.record(0, &out[out.len() - 1..]);
        let o = h.find(0, 0, None, ClientId::new("c")).unwrap();
        assert_eq!((o.status, o.updated_ms), (Status::Canceled, 31));
        assert_eq!(c.order_id, 3);
    }

    #[test]
    fn both_records_are_bounded() {
        let mut b = MatchBook::new(16);
        let mut h = History::new(3, 4);
        for id in 1..=5u64 {
            let cid = format!("o-{id}");
            rest_and_fill(
                &mut b,
                &mut h,
                order(id, 0, &cid, Side::Buy, 100, 2),
                &[1, 1],
                id * 10,
            );
        }
        assert_eq!(h.finished_orders(), 3);
        assert!(h.find(0, 0, Some(2), None).is_none());
        assert!(h.find(0, 0, None, ClientId::new("o-2")).is_none());
        assert_eq!(
            h.find(0, 0, None, ClientId::new("o-3")).unwrap().order_id,
            3
        );
        let all = TradeFilter {
            limit: 1000,
            ..TradeFilter::default()
        };
        let ids: Vec<u64> = h.trades(0, 0, &all).iter().map(|t| t.order_id).collect();
        assert_eq!(ids, [4, 4, 5, 5]);
    }

    #[test]
    fn trade_filters() {
        let mut b = MatchBook::new(16);
        let mut h = History::new(100, 100);
        rest_and_fill(
            &mut b,
            &mut h,
            order(1, 0, "a", Side::Buy, 100, 3),
            &[1, 1, 1],
            10,
        );
        rest_and_fill(
            &mut b,
            &mut h,
            order(2, 1, "a", Side::Buy, 100, 1),
            &[1],
            20,
        );
        rest_and_fill(
            &mut b,
            &mut h,
            order(3, 0, "b", Side::Sell, 100, 2),
            &[1, 1],
            30,
        );
        let q = |f: TradeFilter| -> Vec<(u64, u64)> {
            h.trades(
                0,
                0,
                &TradeFilter {
                    limit: f.limit.max(1),
                    ..f
                },
            )
            .iter()
            .map(|t| (t.order_id, t.time_ms))
            .collect()
        };
        let lim = |limit| TradeFilter {
            limit,
            ..TradeFilter::default()
        };
        assert_eq!(q(lim(100)), [(1, 11), (1, 12), (1, 13), (3, 31), (3, 32)]);
        // No condition: the most recent, oldest first.
        assert_eq!(q(lim(2)), [(3, 31), (3, 32)]);
        assert_eq!(
            q(TradeFilter {
                order_id: Some(1),
                ..lim(2)
            }),
            [(1, 11), (1, 12)]
        );
        let first = h.trades(0, 0, &lim(100))[1].trade_id;
        assert_eq!(
            q(TradeFilter {
                from_id: Some(first),
                ..lim(2)
            }),
            [(1, 12), (1, 13)]
        );
        assert_eq!(
            q(TradeFilter {
                start_ms: Some(12),
                end_ms: Some(31),
                ..lim(100)
            }),
            [(1, 12), (1, 13), (3, 31)]
        );
        assert_eq!(
            q(TradeFilter {
                end_ms: Some(12),
                ..lim(1)
            }),
            [(1, 12)]
        );
        // Account 1 sees only its own.
        assert_eq!(h.trades(1, 0, &lim(100)).len(), 1);
        assert!(h.trades(2, 0, &lim(100)).is_empty());
        assert!(h.trades(0, 1, &lim(100)).is_empty());
    }
}
