//! A hand-built strategy context for unit tests.

use engine::book::{BookConfig, OrderBook};
use engine::event::{BookTicker, ClientOrderId, OrderRequest, RejectReason, Trade};
use engine::fixed::{Price, Qty};
use engine::portfolio::Position;
use engine::strategy::{
    Ctx, Intent, OrderUpdate, OrderUpdateKind, Outbox, Strategy, SymbolRules, TimerQueue,
};
use engine::symbol::SymbolId;

/// Decimal string to fixed point.
pub fn px(s: &str) -> Price {
    Price::parse(s.as_bytes()).unwrap()
}

/// Decimal string to fixed point.
pub fn q(s: &str) -> Qty {
    Qty::parse(s.as_bytes()).unwrap()
}

/// A trade at `price`.
pub fn trade(id: u64, price: &str) -> Trade {
    Trade {
        exch_ns: id * 1_000_000,
        trade_id: id,
        price: px(price),
        qty: q("0.01"),
        buyer_maker: false,
    }
}

/// Everything a [`Ctx`] borrows, owned.
pub struct Harness {
    pub rules: SymbolRules,
    pub book: OrderBook,
    pub bbo: Option<BookTicker>,
    pub position: Position,
    pub outbox: Outbox,
    pub timers: TimerQueue,
    pub next_order_no: u64,
    pub now_ns: u64,
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            rules: SymbolRules::default(),
            book: OrderBook::new(BookConfig::default()),
            bbo: None,
            position: Position::default(),
            outbox: Outbox::with_capacity(128),
            timers: TimerQueue::with_capacity(16),
            next_order_no: 1,
            now_ns: 0,
        }
    }

    /// Delivers a trade and returns the intents it produced.
    pub fn trade(&mut self, s: &mut dyn Strategy, t: &Trade) -> Vec<Intent> {
        self.now_ns += 1_000;
        self.position.mark_to(t.price);
        let mut ctx = Ctx::new(
            self.now_ns,
            t.exch_ns,
            SymbolId(0),
            &self.rules,
            &self.book,
            self.bbo.as_ref(),
            Some(t),
            &self.position,
            &mut self.outbox,
            &mut self.timers,
            &mut self.next_order_no,
        );
        s.on_trade(&mut ctx, t);
        self.take()
    }

    /// Delivers a bookTicker (and keeps it as the best bid and offer) and returns the intents it
    /// produced.
    pub fn book_ticker(&mut self, s: &mut dyn Strategy, b: &BookTicker) -> Vec<Intent> {
        self.now_ns += 1_000;
        self.bbo = Some(*b);
        let mut ctx = Ctx::new(
            self.now_ns,
            0,
            SymbolId(0),
            &self.rules,
            &self.book,
            self.bbo.as_ref(),
            None,
            &self.position,
            &mut self.outbox,
            &mut self.timers,
            &mut self.next_order_no,
        );
        s.on_book_ticker(&mut ctx, b);
        self.take()
    }

    /// Delivers an order update and returns the intents it produced.
    pub fn order(&mut self, s: &mut dyn Strategy, u: &OrderUpdate) -> Vec<Intent> {
        self.now_ns += 1_000;
        if let OrderUpdateKind::Filled { price, qty, fee } = u.kind {
            self.position.apply_fill(u.side, price, qty, fee);
        }
        let mut ctx = Ctx::new(
            self.now_ns,
            0,
            SymbolId(0),
            &self.rules,
            &self.book,
            self.bbo.as_ref(),
            None,
            &self.position,
            &mut self.outbox,
            &mut self.timers,
            &mut self.next_order_no,
        );
        s.on_order(&mut ctx, u);
        self.take()
    }

    fn take(&mut self) -> Vec<Intent> {
        let v = self.outbox.as_slice().to_vec();
        self.outbox.clear();
        v
    }
}

/// The single new order in `intents`.
pub fn one_new(intents: &[Intent]) -> (ClientOrderId, OrderRequest) {
    match intents {
        [Intent::New(id, req)] => (*id, *req),
        other => panic!("expected exactly one new order, got {other:?}"),
    }
}

fn update(
    id: ClientOrderId,
    req: &OrderRequest,
    kind: OrderUpdateKind,
    leaves: Qty,
    filled: Qty,
) -> OrderUpdate {
    OrderUpdate {
        client_id: id,
        side: req.side,
        price: req.price,
        kind,
        leaves_qty: leaves,
        filled_qty: filled,
    }
}

/// A fill of `qty` at the order's price; `filled_before` is what had filled already.
pub fn fill(id: ClientOrderId, req: &OrderRequest, qty: Qty, filled_before: Qty) -> OrderUpdate {
    let filled = Qty(filled_before.0 + qty.0);
    let kind = OrderUpdateKind::Filled {
        price: req.price,
        qty,
        fee: 0,
    };
    update(id, req, kind, Qty(req.qty.0 - filled.0), filled)
}

/// The venue refused the order.
pub fn rejected(id: ClientOrderId, req: &OrderRequest) -> OrderUpdate {
    let kind = OrderUpdateKind::Rejected(RejectReason::Venue);
    update(id, req, kind, Qty::ZERO, Qty::ZERO)
}

/// The order was canceled with `filled` done.
pub fn canceled(id: ClientOrderId, req: &OrderRequest, filled: Qty) -> OrderUpdate {
    update(id, req, OrderUpdateKind::Canceled, Qty::ZERO, filled)
}

/// The venue accepted the order.
pub fn accepted(id: ClientOrderId, req: &OrderRequest) -> OrderUpdate {
    update(id, req, OrderUpdateKind::Accepted, req.qty, Qty::ZERO)
}
