//! Paper execution: orders fill against the market data that follows them, after a latency.
//!
//! Time here is the venue's clock (the latest exchange timestamp seen), so a replay produces the
//! same fills whatever its pace. An order sent at market time `T` reaches the paper venue at
//! `T + latency`; from then on:
//! - on arrival it is acknowledged, and if it crosses the best opposite quote it takes liquidity
//!   at that quote's price, up to the quote's quantity (taker fee). IOC cancels the rest, FOK
//!   fills completely or not at all, a market order with nothing opposite is rejected;
//! - what rests fills at its limit price when a later trade prints at or through it, up to the
//!   trade's quantity, or when the best opposite quote moves through it (maker fee);
//! - a cancel takes effect after the same latency.
//!
//! Fixed capacity: the order table is sized at construction and a full table rejects.

use crate::event::{
    ClientOrderId, Event, EventKind, Fill, OrderAck, OrderCanceled, OrderReject, OrderRequest,
    OrderType, RejectReason, Side,
};
use crate::fixed::{Notional, Price, Qty, SCALE};
use crate::symbol::SymbolId;

/// Paper venue settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaperConfig {
    /// Order entry and cancel latency, venue clock, ns.
    pub latency_ns: u64,
    /// Maker fee rate, 1e-8 units (0.001 = 100_000).
    pub maker_fee_rate: i64,
    /// Taker fee rate, 1e-8 units.
    pub taker_fee_rate: i64,
    /// Orders open at once.
    pub max_orders: usize,
}

impl Default for PaperConfig {
    /// 1 ms latency and Binance spot's base fee of 0.1 % for both sides.
    fn default() -> Self {
        PaperConfig {
            latency_ns: 1_000_000,
            maker_fee_rate: 100_000,
            taker_fee_rate: 100_000,
            max_orders: 1024,
        }
    }
}

/// The best quotes the paper venue matches against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quotes {
    /// Best bid (price, quantity), if known.
    pub bid: Option<(Price, Qty)>,
    /// Best ask (price, quantity), if known.
    pub ask: Option<(Price, Qty)>,
}

#[derive(Clone, Copy, Debug)]
struct PaperOrder {
    id: ClientOrderId,
    symbol: SymbolId,
    req: OrderRequest,
    leaves: Qty,
    arrive_ns: u64,
    cancel_at: Option<u64>,
    live: bool,
}

/// The paper venue.
#[derive(Debug)]
pub struct PaperExchange {
    cfg: PaperConfig,
    orders: Vec<PaperOrder>,
    next_trade_id: u64,
    next_venue_id: u64,
}

impl PaperExchange {
    /// Maps every page of the order table (see [`crate::prefault`]).
    #[cold]
    pub fn prefault(&mut self) {
        crate::prefault::vec_spare(&mut self.orders);
    }

    /// A venue with room for `cfg.max_orders` open orders.
    pub fn new(cfg: PaperConfig) -> Self {
        PaperExchange {
            cfg,
            orders: Vec::with_capacity(cfg.max_orders),
            next_trade_id: 1,
            next_venue_id: 1,
        }
    }

    /// Orders not yet finished.
    #[inline]
    pub fn open_orders(&self) -> usize {
        self.orders.len()
    }

    /// Accepts an order sent at venue time `now`; a full table rejects at once.
    pub fn submit(
        &mut self,
        id: ClientOrderId,
        symbol: SymbolId,
        req: OrderRequest,
        now: u64,
        out: &mut Vec<Event>,
    ) {
        if self.orders.len() >= self.cfg.max_orders {
            push(
                out,
                symbol,
                EventKind::OrderReject(OrderReject {
                    client_id: id,
                    reason: RejectReason::TooManyOrders,
                }),
            );
            return;
        }
        self.orders.push(PaperOrder {
            id,
            symbol,
            req,
            leaves: req.qty,
            arrive_ns: now.saturating_add(self.cfg.latency_ns),
            cancel_at: None,
            live: false,
        });
    }

    /// Asks to cancel `id`, effective after the latency. Unknown ids are ignored (already done).
    pub fn cancel(&mut self, id: ClientOrderId, now: u64) {
        let at = now.saturating_add(self.cfg.latency_ns);
        if let Some(o) = self.orders.iter_mut().find(|o| o.id == id) {
            o.cancel_at.get_or_insert(at);
        }
    }

    /// Advances `symbol` to venue time `now` with its current quotes and, if one printed, a
    /// trade; appends the resulting order events to `out`, stamped with `recv_ns` (the receive
    /// time of the market event that caused them, so tick-to-order covers orders sent in answer
    /// to fills).
    pub fn on_market(
        &mut self,
        symbol: SymbolId,
        now: u64,
        recv_ns: u64,
        quotes: Quotes,
        trade: Option<(Price, Qty)>,
        out: &mut Vec<Event>,
    ) {
        let first_new = out.len();
        let mut i = 0;
        while i < self.orders.len() {
            let o = &mut self.orders[i];
            if o.symbol != symbol {
                i += 1;
                continue;
            }
            let done = Self::step(
                &self.cfg,
                &mut self.next_trade_id,
                &mut self.next_venue_id,
                o,
                now,
                quotes,
                trade,
                out,
            );
            if done {
                self.orders.swap_remove(i);
            } else {
                i += 1;
            }
        }
        for ev in &mut out[first_new..] {
            ev.recv_ns = recv_ns;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        cfg: &PaperConfig,
        next_trade_id: &mut u64,
        next_venue_id: &mut u64,
        o: &mut PaperOrder,
        now: u64,
        quotes: Quotes,
        trade: Option<(Price, Qty)>,
        out: &mut Vec<Event>,
    ) -> bool {
        if now < o.arrive_ns {
            return false;
        }
        if !o.live {
            o.live = true;
            let venue_order_id = *next_venue_id;
            *next_venue_id += 1;
            push(
                out,
                o.symbol,
                EventKind::OrderAck(OrderAck {
                    client_id: o.id,
                    venue_order_id,
                }),
            );
            // Cancel that arrived no later than the order itself: nothing can fill first.
            if o.cancel_at.is_some_and(|c| c <= o.arrive_ns) {
                return cancel(o, out);
            }
            return Self::arrive(cfg, next_trade_id, o, quotes, out);
        }
        if o.cancel_at.is_some_and(|c| c <= now) {
            return cancel(o, out);
        }
        // Resting order: a trade at or through the limit, or the opposite quote through it.
        let through = |px: Price| match o.req.side {
            Side::Buy => px <= o.req.price,
            Side::Sell => px >= o.req.price,
        };
        let mut avail = Qty::ZERO;
        if let Some((px, qty)) = trade {
            if through(px) {
                avail = qty;
            }
        }
        let opposite = match o.req.side {
            Side::Buy => quotes.ask,
            Side::Sell => quotes.bid,
        };
        if let Some((px, qty)) = opposite {
            if through(px) && qty > avail {
                avail = qty;
            }
        }
        if avail > Qty::ZERO {
            let q = Qty(avail.0.min(o.leaves.0));
            fill(o, o.req.price, q, cfg.maker_fee_rate, next_trade_id, out);
        }
        o.leaves == Qty::ZERO
    }

    fn arrive(
        cfg: &PaperConfig,
        next_trade_id: &mut u64,
        o: &mut PaperOrder,
        quotes: Quotes,
        out: &mut Vec<Event>,
    ) -> bool {
        let opposite = match o.req.side {
            Side::Buy => quotes.ask,
            Side::Sell => quotes.bid,
        };
        let crosses = |px: Price| {
            o.req.order_type == OrderType::Market
                || match o.req.side {
                    Side::Buy => px <= o.req.price,
                    Side::Sell => px >= o.req.price,
                }
        };
        match opposite {
            Some((px, qty)) if crosses(px) && qty > Qty::ZERO => {
                if o.req.order_type == OrderType::LimitFok && qty < o.leaves {
                    return cancel(o, out);
                }
                let q = Qty(qty.0.min(o.leaves.0));
                fill(o, px, q, cfg.taker_fee_rate, next_trade_id, out);
            }
            None if o.req.order_type == OrderType::Market => {
                push(
                    out,
                    o.symbol,
                    EventKind::OrderReject(OrderReject {
                        client_id: o.id,
                        reason: RejectReason::NoLiquidity,
                    }),
                );
                return true;
            }
            _ => {}
        }
        if o.leaves == Qty::ZERO {
            return true;
        }
        match o.req.order_type {
            OrderType::LimitGtc => false,
            OrderType::LimitIoc | OrderType::LimitFok | OrderType::Market => cancel(o, out),
        }
    }
}

fn fill(
    o: &mut PaperOrder,
    price: Price,
    qty: Qty,
    fee_rate: i64,
    next_trade_id: &mut u64,
    out: &mut Vec<Event>,
) {
    o.leaves = Qty(o.leaves.0 - qty.0);
    let fee = (Notional::of(price, qty).0 * fee_rate as i128 / SCALE as i128) as i64;
    let trade_id = *next_trade_id;
    *next_trade_id += 1;
    push(
        out,
        o.symbol,
        EventKind::Fill(Fill {
            client_id: o.id,
            trade_id,
            price,
            qty,
            fee,
        }),
    );
}

fn cancel(o: &mut PaperOrder, out: &mut Vec<Event>) -> bool {
    push(
        out,
        o.symbol,
        EventKind::OrderCanceled(OrderCanceled {
            client_id: o.id,
            leaves_qty: o.leaves,
        }),
    );
    o.leaves = Qty::ZERO;
    true
}

#[inline]
fn push(out: &mut Vec<Event>, symbol: SymbolId, kind: EventKind) {
    out.push(Event::new(0, symbol, kind));
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: SymbolId = SymbolId(0);
    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap()
    }
    fn q(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap()
    }
    fn req(side: Side, p: &str, qty: &str, t: OrderType) -> OrderRequest {
        OrderRequest {
            side,
            price: px(p),
            qty: q(qty),
            order_type: t,
        }
    }
    fn quotes(b: &str, bq: &str, a: &str, aq: &str) -> Quotes {
        Quotes {
            bid: Some((px(b), q(bq))),
            ask: Some((px(a), q(aq))),
        }
    }
    fn id(n: u64) -> ClientOrderId {
        ClientOrderId::new(0, n)
    }
    fn kinds(out: &[Event]) -> Vec<EventKind> {
        out.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn nothing_happens_before_the_latency() {
        let mut x = PaperExchange::new(PaperConfig {
            latency_ns: 100,
            ..Default::default()
        });
        let mut out = Vec::new();
        x.submit(
            id(1),
            S,
            req(Side::Buy, "101", "1", OrderType::LimitIoc),
            1000,
            &mut out,
        );
        x.on_market(S, 1099, 0, quotes("99", "1", "100", "5"), None, &mut out);
        assert!(out.is_empty());
        x.on_market(S, 1100, 0, quotes("99", "1", "100", "5"), None, &mut out);
        let k = kinds(&out);
        assert!(matches!(k[0], EventKind::OrderAck(_)));
        match k[1] {
            EventKind::Fill(f) => {
                assert_eq!((f.price, f.qty), (px("100"), q("1")));
                assert_eq!(f.fee, 10_000_000); // 0.1 % of 100
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(x.open_orders(), 0);
    }

    #[test]
    fn ioc_partial_then_cancel_and_fok_all_or_nothing() {
        let mut x = PaperExchange::new(PaperConfig {
            latency_ns: 0,
            ..Default::default()
        });
        let mut out = Vec::new();
        x.submit(
            id(1),
            S,
            req(Side::Sell, "99", "3", OrderType::LimitIoc),
            0,
            &mut out,
        );
        x.submit(
            id(2),
            S,
            req(Side::Sell, "99", "3", OrderType::LimitFok),
            0,
            &mut out,
        );
        x.on_market(S, 0, 0, quotes("99.5", "2", "100", "5"), None, &mut out);
        let k = kinds(&out);
        assert!(k.contains(&EventKind::Fill(Fill {
            client_id: id(1),
            trade_id: 1,
            price: px("99.5"),
            qty: q("2"),
            fee: 19_900_000
        })));
        assert!(k.contains(&EventKind::OrderCanceled(OrderCanceled {
            client_id: id(1),
            leaves_qty: q("1")
        })));
        assert!(k.contains(&EventKind::OrderCanceled(OrderCanceled {
            client_id: id(2),
            leaves_qty: q("3")
        })));
        assert_eq!(x.open_orders(), 0);
    }

    #[test]
    fn resting_order_fills_on_trades_through_its_price() {
        let mut x = PaperExchange::new(PaperConfig {
            latency_ns: 0,
            ..Default::default()
        });
        let mut out = Vec::new();
        x.submit(
            id(7),
            S,
            req(Side::Buy, "98", "2", OrderType::LimitGtc),
            0,
            &mut out,
        );
        x.on_market(S, 0, 0, quotes("99", "1", "100", "1"), None, &mut out);
        assert!(matches!(kinds(&out)[..], [EventKind::OrderAck(_)]));
        out.clear();
        x.on_market(
            S,
            5,
            0,
            quotes("99", "1", "100", "1"),
            Some((px("98.5"), q("1"))),
            &mut out,
        );
        assert!(out.is_empty(), "trade above a buy limit must not fill it");
        x.on_market(
            S,
            6,
            0,
            quotes("97", "1", "98", "1"),
            Some((px("98"), q("1.5"))),
            &mut out,
        );
        match kinds(&out)[..] {
            [EventKind::Fill(f)] => assert_eq!((f.price, f.qty), (px("98"), q("1.5"))),
            ref k => panic!("{k:?}"),
        }
        out.clear();
        x.on_market(S, 7, 0, quotes("96", "1", "97", "9"), None, &mut out);
        match kinds(&out)[..] {
            [EventKind::Fill(f)] => assert_eq!(f.qty, q("0.5")),
            ref k => panic!("{k:?}"),
        }
        assert_eq!(x.open_orders(), 0);
    }

    #[test]
    fn market_without_liquidity_is_rejected_and_cancel_works() {
        let mut x = PaperExchange::new(PaperConfig {
            latency_ns: 10,
            max_orders: 1,
            ..Default::default()
        });
        let mut out = Vec::new();
        x.submit(
            id(1),
            S,
            req(Side::Buy, "0", "1", OrderType::Market),
            0,
            &mut out,
        );
        x.submit(
            id(2),
            S,
            req(Side::Buy, "1", "1", OrderType::LimitGtc),
            0,
            &mut out,
        );
        assert_eq!(
            kinds(&out),
            vec![EventKind::OrderReject(OrderReject {
                client_id: id(2),
                reason: RejectReason::TooManyOrders
            })]
        );
        out.clear();
        x.on_market(S, 10, 0, Quotes::default(), None, &mut out);
        assert_eq!(
            kinds(&out)[1],
            EventKind::OrderReject(OrderReject {
                client_id: id(1),
                reason: RejectReason::NoLiquidity
            })
        );
        out.clear();
        x.submit(
            id(3),
            S,
            req(Side::Buy, "1", "1", OrderType::LimitGtc),
            20,
            &mut out,
        );
        x.on_market(S, 30, 0, Quotes::default(), None, &mut out);
        x.cancel(id(3), 31);
        x.on_market(S, 40, 0, Quotes::default(), None, &mut out);
        assert_eq!(x.open_orders(), 1);
        x.on_market(S, 41, 0, Quotes::default(), None, &mut out);
        assert_eq!(x.open_orders(), 0);
        assert!(matches!(
            out.last().unwrap().kind,
            EventKind::OrderCanceled(_)
        ));
    }
}
