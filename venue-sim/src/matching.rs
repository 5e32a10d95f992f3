//! Price-time priority matching for one symbol: the simulator's venue side.
//!
//! A [`MatchBook`] holds the engine's resting orders (client orders) of one symbol and trades
//! incoming orders against two kinds of liquidity:
//!
//! - **the feed's**: the L2 levels of the book the simulator publishes, read through
//!   [`FeedDepth`] at the moment an order arrives, as anonymous liquidity at each price. What an
//!   order takes from a level is remembered in a small overlay, so a second order does not take
//!   it again; the overlay entry lapses as soon as the feed changes that level's quantity (the
//!   published book is the venue's truth again).
//! - **the client orders**: resting `LIMIT GTC` (and `LIMIT_MAKER`) orders, in price-time
//!   priority. At one price the feed's liquidity comes first: a client order joins a level at its
//!   back.
//!
//! An incoming order takes the best price first, whichever kind offers it, until it is filled or
//! the next price is beyond its limit; the rest rests (`GTC`), expires (`IOC`, `MARKET`), or the
//! whole order expires untouched when it could not fill completely (`FOK`). A trade in the
//! published feed at or through a resting client order's price fills it for up to the trade's
//! quantity, shared among the client orders in price-time priority ([`MatchBook::on_trade`]).
//!
//! Everything here is deterministic and sans-IO: time comes in as an argument, results go out as
//! [`Exec`]s appended to a caller's vector (one per execution report), and nothing is allocated
//! per order beyond the growth of the resting-order and overlay vectors (both sized at start).

use engine::book::{Level, OrderBook};
use engine::event::{BookSide, Side};
use engine::fixed::{Notional, Price, Qty, SCALE};

/// Commission rate for makers and takers, 1e-8 units: 0.1 %, Binance spot's base rate. Charged
/// in the asset received: base for a buy, quote for a sell.
pub(crate) const FEE_RATE: i64 = 100_000;
/// First trade id of the simulator's own fills: clear of any real feed's trade ids.
pub(crate) const FIRST_TRADE_ID: u64 = 1 << 40;
/// Longest client order id (Binance: `^[.A-Z:/a-z0-9_-]{1,36}$`).
pub(crate) const MAX_CLIENT_ID: usize = 36;
/// Entries of the consumed-liquidity overlay kept per book; the oldest goes first beyond it.
const MAX_TAKEN: usize = 4096;

/// A client order id, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientId {
    len: u8,
    buf: [u8; MAX_CLIENT_ID],
}

impl ClientId {
    /// `s` if it is 1 to 36 characters of `A-Z a-z 0-9 . : / _ -`.
    pub(crate) fn new(s: &str) -> Option<ClientId> {
        let b = s.as_bytes();
        if b.is_empty()
            || b.len() > MAX_CLIENT_ID
            || !b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b':' | b'/' | b'_' | b'-'))
        {
            return None;
        }
        let mut buf = [0u8; MAX_CLIENT_ID];
        buf[..b.len()].copy_from_slice(b);
        Some(ClientId {
            len: b.len() as u8,
            buf,
        })
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Order type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OrdType {
    /// Limit, with a time in force.
    Limit,
    /// Limit that must not take liquidity (post-only); rests like `GTC`.
    LimitMaker,
    /// Market: any price.
    Market,
}

/// Time in force of a limit order (`GTC` for the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tif {
    /// Good till canceled.
    Gtc,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
}

/// Order status (`X` of an execution report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Accepted, nothing filled.
    New,
    /// Part filled, the rest working.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Canceled by the client.
    Canceled,
    /// Ended by its type's rules (IOC, FOK, MARKET remainder).
    Expired,
    /// Refused by the matching engine.
    Rejected,
}

/// What happened (`x` of an execution report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExecType {
    /// The order was accepted.
    New,
    /// (Part of) the order traded.
    Trade,
    /// The order was canceled.
    Canceled,
    /// The order expired.
    Expired,
    /// The order was refused.
    Rejected,
}

/// Why the matching engine refused an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// A `MARKET` order met no liquidity at all on the other side.
    NoLiquidity,
    /// The client order id is in use by an open order of the same account.
    DuplicateId,
    /// The book holds its maximum of resting orders.
    TooManyOrders,
    /// A `LIMIT_MAKER` order would have taken liquidity.
    WouldTake,
}

/// One order and its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    /// The venue's order id (assigned by the caller, unique across symbols).
    pub(crate) order_id: u64,
    /// The connection that placed it (execution reports go there).
    pub(crate) owner: u64,
    /// The account (interned API key).
    pub(crate) account: u32,
    /// The client's id.
    pub(crate) client_id: ClientId,
    /// Buy or sell.
    pub(crate) side: Side,
    /// Type.
    pub(crate) ord_type: OrdType,
    /// Time in force.
    pub(crate) tif: Tif,
    /// Limit price; zero for market orders.
    pub(crate) price: Price,
    /// Quantity asked for.
    pub(crate) qty: Qty,
    /// Quantity filled so far.
    pub(crate) filled: Qty,
    /// Quote quantity transacted so far, 1e-8 units.
    pub(crate) quote: i64,
    /// Status.
    pub(crate) status: Status,
    /// When the venue accepted it, ms.
    pub(crate) created_ms: u64,
    /// When anything last happened to it (accepted, traded, canceled, expired), ms.
    pub(crate) updated_ms: u64,
    /// Time priority among resting orders (set when it rests).
    seq: u64,
}

impl Order {
    /// A new order, nothing filled.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        order_id: u64,
        owner: u64,
        account: u32,
        client_id: ClientId,
        side: Side,
        ord_type: OrdType,
        tif: Tif,
        price: Price,
        qty: Qty,
    ) -> Order {
        Order {
            order_id,
            owner,
            account,
            client_id,
            side,
            ord_type,
            tif,
            price: if ord_type == OrdType::Market {
                Price::ZERO
            } else {
                price
            },
            qty,
            filled: Qty::ZERO,
            quote: 0,
            status: Status::New,
            created_ms: 0,
            updated_ms: 0,
            seq: 0,
        }
    }

    /// Quantity still open.
    #[inline]
    pub(crate) fn leaves(&self) -> Qty {
        Qty(self.qty.0 - self.filled.0)
    }

    /// True while it may rest on the book (a working limit order).
    #[inline]
    pub(crate) fn is_working(&self) -> bool {
        matches!(self.status, Status::New | Status::PartiallyFilled)
            && (self.ord_type == OrdType::LimitMaker
                || (self.ord_type == OrdType::Limit && self.tif == Tif::Gtc))
    }

    /// Books a fill of `qty` at `price` at `now_ms`.
    fn fill(&mut self, price: Price, qty: Qty, now_ms: u64) -> i64 {
        self.updated_ms = now_ms;
        let quote = Notional::of(price, qty).0.clamp(0, i64::MAX as i128) as i64;
        self.filled = Qty(self.filled.0 + qty.0);
        self.quote = self.quote.saturating_add(quote);
        self.status = if self.leaves() == Qty::ZERO {
            Status::Filled
        } else {
            Status::PartiallyFilled
        };
        quote
    }
}

/// One execution: what an execution report says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exec {
    /// The order's state after this execution.
    pub(crate) order: Order,
    /// What happened.
    pub(crate) exec: ExecType,
    /// Quantity of this trade (zero otherwise).
    pub(crate) last_qty: Qty,
    /// Price of this trade (zero otherwise).
    pub(crate) last_price: Price,
    /// Quote quantity of this trade, 1e-8 units.
    pub(crate) last_quote: i64,
    /// Commission of this trade, 1e-8 units of the asset received (base for a buy, quote for a
    /// sell).
    pub(crate) commission: i64,
    /// The venue's trade id of a trade.
    pub(crate) trade_id: Option<u64>,
    /// This side was the maker.
    pub(crate) maker: bool,
    /// Why it was refused.
    pub(crate) reject: Option<Reject>,
    /// For a cancel: the cancel request's own client id (the order's stays in `order`).
    pub(crate) cancel_id: Option<ClientId>,
    /// When, ms.
    pub(crate) time_ms: u64,
}

impl Exec {
    fn of(order: &Order, exec: ExecType, time_ms: u64) -> Exec {
        Exec {
            order: *order,
            exec,
            last_qty: Qty::ZERO,
            last_price: Price::ZERO,
            last_quote: 0,
            commission: 0,
            trade_id: None,
            maker: false,
            reject: None,
            cancel_id: None,
            time_ms,
        }
    }

    fn trade(
        order: &Order,
        price: Price,
        qty: Qty,
        quote: i64,
        id: u64,
        maker: bool,
        t: u64,
    ) -> Exec {
        let commission = match order.side {
            Side::Buy => (qty.0 as i128 * FEE_RATE as i128 / SCALE as i128) as i64,
            Side::Sell => (quote as i128 * FEE_RATE as i128 / SCALE as i128) as i64,
        };
        Exec {
            last_qty: qty,
            last_price: price,
            last_quote: quote,
            commission,
            trade_id: Some(id),
            maker,
            ..Exec::of(order, ExecType::Trade, t)
        }
    }
}

/// The feed's L2 levels, best first.
pub(crate) trait FeedDepth {
    /// Levels of `side` (`Bid`: buyers, highest first; `Ask`: sellers, lowest first).
    fn levels(&self, side: BookSide) -> impl Iterator<Item = Level> + '_;
}

/// One of two iterators.
enum Either<A, B> {
    A(A),
    B(B),
}

impl<A: Iterator<Item = Level>, B: Iterator<Item = Level>> Iterator for Either<A, B> {
    type Item = Level;

    #[inline]
    fn next(&mut self) -> Option<Level> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

impl FeedDepth for OrderBook {
    fn levels(&self, side: BookSide) -> impl Iterator<Item = Level> + '_ {
        match side {
            BookSide::Bid => Either::A(self.bids()),
            BookSide::Ask => Either::B(self.asks()),
        }
    }
}

/// No feed liquidity at all.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoFeed;

impl FeedDepth for NoFeed {
    fn levels(&self, _side: BookSide) -> impl Iterator<Item = Level> + '_ {
        std::iter::empty()
    }
}

/// Liquidity taken from one feed level while the feed showed `seen` there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Taken {
    side: BookSide,
    price: Price,
    seen: Qty,
    taken: Qty,
}

/// Where an incoming order's next fill comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Feed(Level),
    Client,
}

/// The matching book of one symbol.
#[derive(Debug)]
pub(crate) struct MatchBook {
    /// Resting buys, best first: price descending, then time.
    bids: Vec<Order>,
    /// Resting sells, best first: price ascending, then time.
    asks: Vec<Order>,
    /// Feed liquidity already taken.
    taken: Vec<Taken>,
    next_seq: u64,
    next_trade_id: u64,
    max_orders: usize,
}

impl MatchBook {
    /// An empty book that holds at most `max_orders` resting orders (space for some of them is
    /// allocated now).
    pub(crate) fn new(max_orders: usize) -> MatchBook {
        let pre = max_orders.min(1024);
        MatchBook {
            bids: Vec::with_capacity(pre),
            asks: Vec::with_capacity(pre),
            taken: Vec::with_capacity(256),
            next_seq: 0,
            next_trade_id: FIRST_TRADE_ID,
            max_orders,
        }
    }

    /// Resting orders.
    pub(crate) fn resting(&self) -> usize {
        self.bids.len() + self.asks.len()
    }

    /// Resting orders, buys (best first) then sells (best first).
    pub(crate) fn open_orders(&self) -> impl Iterator<Item = &Order> {
        self.bids.iter().chain(self.asks.iter())
    }

    /// Handles a new order arriving at `now_ms`: the `NEW` report, its trades (and those of the
    /// resting orders it meets), and an `EXPIRED` report for what an IOC, FOK or market order
    /// could not fill. A refused order yields one `REJECTED` report and the reason.
    pub(crate) fn place<F: FeedDepth>(
        &mut self,
        feed: &F,
        mut o: Order,
        now_ms: u64,
        out: &mut Vec<Exec>,
    ) -> Result<(), Reject> {
        o.created_ms = now_ms;
        o.updated_ms = now_ms;
        o.filled = Qty::ZERO;
        o.quote = 0;
        o.status = Status::New;
        let refuse = |o: &mut Order, why: Reject, out: &mut Vec<Exec>| {
            o.status = Status::Rejected;
            out.push(Exec {
                reject: Some(why),
                ..Exec::of(o, ExecType::Rejected, now_ms)
            });
            Err(why)
        };
        if self
            .open_orders()
            .any(|r| r.account == o.account && r.client_id == o.client_id)
        {
            return refuse(&mut o, Reject::DuplicateId, out);
        }
        let rests = o.is_working();
        if rests && self.resting() >= self.max_orders {
            return refuse(&mut o, Reject::TooManyOrders, out);
        }
        match o.ord_type {
            OrdType::Market if self.available(feed, &o, Qty(i64::MAX)) == Qty::ZERO => {
                return refuse(&mut o, Reject::NoLiquidity, out);
            }
            OrdType::LimitMaker if self.available(feed, &o, Qty(1)) > Qty::ZERO => {
                return refuse(&mut o, Reject::WouldTake, out);
            }
            _ => {}
        }
        out.push(Exec::of(&o, ExecType::New, now_ms));
        if o.ord_type == OrdType::Limit
            && o.tif == Tif::Fok
            && self.available(feed, &o, o.qty) < o.qty
        {
            o.status = Status::Expired;
            out.push(Exec::of(&o, ExecType::Expired, now_ms));
            return Ok(());
        }
        self.sweep(feed, &mut o, now_ms, out);
        if o.leaves() > Qty::ZERO {
            if rests {
                self.rest(o);
            } else {
                o.status = Status::Expired;
                out.push(Exec::of(&o, ExecType::Expired, now_ms));
            }
        }
        Ok(())
    }

    /// Cancels the open order of `account` with `order_id` and/or `client_id` (both must match
    /// when both are given). `None` when there is no such order.
    pub(crate) fn cancel(
        &mut self,
        account: u32,
        order_id: Option<u64>,
        client_id: Option<ClientId>,
        cancel_id: ClientId,
        now_ms: u64,
        out: &mut Vec<Exec>,
    ) -> Option<Order> {
        let hit = |o: &Order| is_order(o, account, order_id, client_id);
        if order_id.is_none() && client_id.is_none() {
            return None;
        }
        let mut o = if let Some(i) = self.bids.iter().position(hit) {
            self.bids.remove(i)
        } else if let Some(i) = self.asks.iter().position(hit) {
            self.asks.remove(i)
        } else {
            return None;
        };
        o.status = Status::Canceled;
        o.updated_ms = now_ms;
        out.push(Exec {
            cancel_id: Some(cancel_id),
            ..Exec::of(&o, ExecType::Canceled, now_ms)
        });
        Some(o)
    }

    /// The open order of `account` with `order_id` and/or `client_id` (both must match when
    /// both are given). `None` when there is no such order.
    pub(crate) fn find_open(
        &self,
        account: u32,
        order_id: Option<u64>,
        client_id: Option<ClientId>,
    ) -> Option<&Order> {
        if order_id.is_none() && client_id.is_none() {
            return None;
        }
        self.open_orders()
            .find(|o| is_order(o, account, order_id, client_id))
    }

    /// A trade printed in the feed at `price` for `qty`: resting buys at or above the price and
    /// resting sells at or below it fill at their own prices, best first, until the trade's
    /// quantity is used up.
    pub(crate) fn on_trade(&mut self, price: Price, qty: Qty, now_ms: u64, out: &mut Vec<Exec>) {
        let mut left = qty;
        for side in [Side::Buy, Side::Sell] {
            loop {
                if left <= Qty::ZERO {
                    return;
                }
                let book = match side {
                    Side::Buy => &mut self.bids,
                    Side::Sell => &mut self.asks,
                };
                let Some(o) = book.first_mut() else { break };
                let through = match side {
                    Side::Buy => price <= o.price,
                    Side::Sell => price >= o.price,
                };
                if !through {
                    break;
                }
                let q = Qty(left.0.min(o.leaves().0));
                left = Qty(left.0 - q.0);
                let px = o.price;
                let quote = o.fill(px, q, now_ms);
                let id = self.next_trade_id;
                self.next_trade_id += 1;
                out.push(Exec::trade(o, px, q, quote, id, true, now_ms));
                if o.leaves() == Qty::ZERO {
                    book.remove(0);
                }
            }
        }
    }

    /// Trades `o` against the best prices until it is filled or the next price is beyond its
    /// limit.
    fn sweep<F: FeedDepth>(&mut self, feed: &F, o: &mut Order, now_ms: u64, out: &mut Vec<Exec>) {
        let feed_side = match o.side {
            Side::Buy => BookSide::Ask,
            Side::Sell => BookSide::Bid,
        };
        let mut levels = feed.levels(feed_side).peekable();
        while o.leaves() > Qty::ZERO {
            // The next feed level with something left, if its price is acceptable.
            let feed_next = loop {
                match levels.peek() {
                    Some(&l) if acceptable(o, l.price) => {
                        if self.feed_left(feed_side, l) > Qty::ZERO {
                            break Some(l);
                        }
                        levels.next();
                    }
                    _ => break None,
                }
            };
            let client_next = self
                .opposite(o.side)
                .first()
                .map(|m| m.price)
                .filter(|&p| acceptable(o, p));
            let source = match (feed_next, client_next) {
                (None, None) => break,
                (Some(l), None) => Source::Feed(l),
                (None, Some(_)) => Source::Client,
                // At one price the feed's liquidity was there first.
                (Some(l), Some(p)) if better_or_equal(o.side, l.price, p) => Source::Feed(l),
                (Some(_), Some(_)) => Source::Client,
            };
            let id = self.next_trade_id;
            self.next_trade_id += 1;
            match source {
                Source::Feed(l) => {
                    let q = Qty(o.leaves().0.min(self.feed_left(feed_side, l).0));
                    self.take(feed_side, l, q);
                    let quote = o.fill(l.price, q, now_ms);
                    out.push(Exec::trade(o, l.price, q, quote, id, false, now_ms));
                }
                Source::Client => {
                    let book = self.opposite_mut(o.side);
                    let m = &mut book[0];
                    let q = Qty(o.leaves().0.min(m.leaves().0));
                    let px = m.price;
                    let quote = m.fill(px, q, now_ms);
                    out.push(Exec::trade(m, px, q, quote, id, true, now_ms));
                    if m.leaves() == Qty::ZERO {
                        book.remove(0);
                    }
                    let quote = o.fill(px, q, now_ms);
                    out.push(Exec::trade(o, px, q, quote, id, false, now_ms));
                }
            }
        }
    }

    /// Quantity `o` could take at acceptable prices, counted up to `enough`.
    fn available<F: FeedDepth>(&self, feed: &F, o: &Order, enough: Qty) -> Qty {
        let feed_side = match o.side {
            Side::Buy => BookSide::Ask,
            Side::Sell => BookSide::Bid,
        };
        let mut sum: i64 = 0;
        for l in feed.levels(feed_side) {
            if !acceptable(o, l.price) || sum >= enough.0 {
                break;
            }
            sum = sum.saturating_add(self.feed_left(feed_side, l).0);
        }
        for m in self.opposite(o.side) {
            if !acceptable(o, m.price) || sum >= enough.0 {
                break;
            }
            sum = sum.saturating_add(m.leaves().0);
        }
        Qty(sum)
    }

    /// What is left of a feed level after earlier orders took from it.
    fn feed_left(&self, side: BookSide, l: Level) -> Qty {
        match self
            .taken
            .iter()
            .find(|t| t.side == side && t.price == l.price)
        {
            Some(t) if t.seen == l.qty => Qty((l.qty.0 - t.taken.0).max(0)),
            _ => l.qty, // never taken, or the feed has changed the level since
        }
    }

    fn take(&mut self, side: BookSide, l: Level, q: Qty) {
        if let Some(t) = self
            .taken
            .iter_mut()
            .find(|t| t.side == side && t.price == l.price)
        {
            if t.seen != l.qty {
                t.seen = l.qty;
                t.taken = Qty::ZERO;
            }
            t.taken = Qty(t.taken.0 + q.0);
            return;
        }
        if self.taken.len() >= MAX_TAKEN {
            self.taken.remove(0);
        }
        self.taken.push(Taken {
            side,
            price: l.price,
            seen: l.qty,
            taken: q,
        });
    }

    /// Puts a working order on its side, behind every order at its price.
    fn rest(&mut self, mut o: Order) {
        o.seq = self.next_seq;
        self.next_seq += 1;
        let (book, after) = match o.side {
            Side::Buy => (&mut self.bids, o.price),
            Side::Sell => (&mut self.asks, o.price),
        };
        let at = match o.side {
            Side::Buy => book.partition_point(|r| r.price >= after),
            Side::Sell => book.partition_point(|r| r.price <= after),
        };
        book.insert(at, o);
    }

    fn opposite(&self, side: Side) -> &[Order] {
        match side {
            Side::Buy => &self.asks,
            Side::Sell => &self.bids,
        }
    }

    fn opposite_mut(&mut self, side: Side) -> &mut Vec<Order> {
        match side {
            Side::Buy => &mut self.asks,
            Side::Sell => &mut self.bids,
        }
    }
}

/// True if `o` is the order of `account` named by `order_id` and/or `client_id` (whichever are
/// given must match).
#[inline]
fn is_order(o: &Order, account: u32, order_id: Option<u64>, client_id: Option<ClientId>) -> bool {
    o.account == account
        && order_id.is_none_or(|id| o.order_id == id)
        && client_id.is_none_or(|c| o.client_id == c)
}

/// True if an order may trade at `px`.
#[inline]
fn acceptable(o: &Order, px: Price) -> bool {
    match (o.ord_type, o.side) {
        (OrdType::Market, _) => true,
        (_, Side::Buy) => px <= o.price,
        (_, Side::Sell) => px >= o.price,
    }
}

/// True if `a` is at least as good as `b` for a taker on `side`.
#[inline]
fn better_or_equal(side: Side, a: Price, b: Price) -> bool {
    match side {
        Side::Buy => a <= b,
        Side::Sell => a >= b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed feed book.
    #[derive(Default)]
    struct Feed {
        bids: Vec<Level>,
        asks: Vec<Level>,
    }

    impl FeedDepth for Feed {
        fn levels(&self, side: BookSide) -> impl Iterator<Item = Level> + '_ {
            match side {
                BookSide::Bid => self.bids.iter().copied(),
                BookSide::Ask => self.asks.iter().copied(),
            }
        }
    }

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap()
    }

    fn q(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap()
    }

    fn lv(p: &str, qty: &str) -> Level {
        Level {
            price: px(p),
            qty: q(qty),
        }
    }

    /// Bids 99 x 1, 98 x 2; asks 101 x 1, 102 x 2, 103 x 5.
    fn feed() -> Feed {
        Feed {
            bids: vec![lv("99", "1"), lv("98", "2")],
            asks: vec![lv("101", "1"), lv("102", "2"), lv("103", "5")],
        }
    }

    fn order(id: u64, side: Side, t: OrdType, tif: Tif, p: &str, qty: &str) -> Order {
        Order::new(
            id,
            id * 10,
            0,
            ClientId::new(&format!("tl-{id}")).unwrap(),
            side,
            t,
            tif,
            if p.is_empty() { Price::ZERO } else { px(p) },
            q(qty),
        )
    }

    fn limit(id: u64, side: Side, tif: Tif, p: &str, qty: &str) -> Order {
        order(id, side, OrdType::Limit, tif, p, qty)
    }

    /// `(order id, exec type, last qty, last price, status)` of each execution.
    fn brief(out: &[Exec]) -> Vec<(u64, ExecType, Qty, Price, Status)> {
        out.iter()
            .map(|e| {
                (
                    e.order.order_id,
                    e.exec,
                    e.last_qty,
                    e.last_price,
                    e.order.status,
                )
            })
            .collect()
    }

    use ExecType as X;
    use Status as S;

    #[test]
    fn limit_gtc_takes_what_crosses_and_rests_the_rest() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        b.place(&f, limit(1, Side::Buy, Tif::Gtc, "102", "4"), 7, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out),
            vec![
                (1, X::New, Qty::ZERO, Price::ZERO, S::New),
                (1, X::Trade, q("1"), px("101"), S::PartiallyFilled),
                (1, X::Trade, q("2"), px("102"), S::PartiallyFilled),
            ]
        );
        assert!(out[1..].iter().all(|e| !e.maker && e.time_ms == 7));
        assert_ne!(out[1].trade_id, out[2].trade_id);
        // 0.1 % of the base received.
        assert_eq!(out[2].commission, q("0.002").0);
        assert_eq!(out[2].order.quote, 101 * SCALE + 204 * SCALE);
        let rest: Vec<_> = b.open_orders().collect();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].leaves(), rest[0].price), (q("1"), px("102")));
        assert_eq!(rest[0].status, S::PartiallyFilled);
    }

    #[test]
    fn limit_that_does_not_cross_rests_and_fills_on_trades_through_it() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        b.place(&f, limit(1, Side::Buy, Tif::Gtc, "100", "3"), 1, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out),
            vec![(1, X::New, Qty::ZERO, Price::ZERO, S::New)]
        );
        out.clear();
        // Above the order's price: nothing.
        b.on_trade(px("100.01"), q("5"), 2, &mut out);
        assert!(out.is_empty());
        // At its price: filled for the trade's quantity, at the order's price, as maker.
        b.on_trade(px("100"), q("1"), 3, &mut out);
        // Through it: filled at the order's price, not the trade's.
        b.on_trade(px("99.5"), q("9"), 4, &mut out);
        assert_eq!(
            brief(&out),
            vec![
                (1, X::Trade, q("1"), px("100"), S::PartiallyFilled),
                (1, X::Trade, q("2"), px("100"), S::Filled),
            ]
        );
        assert!(out.iter().all(|e| e.maker));
        assert_eq!(b.resting(), 0);
        // A sell fills on trades at or above its price.
        out.clear();
        b.place(
            &f,
            limit(2, Side::Sell, Tif::Gtc, "100.5", "1"),
            5,
            &mut out,
        )
        .unwrap();
        b.on_trade(px("100.4"), q("1"), 6, &mut out);
        b.on_trade(px("100.6"), q("0.25"), 6, &mut out);
        assert_eq!(
            brief(&out)[1..],
            [(2, X::Trade, q("0.25"), px("100.5"), S::PartiallyFilled)]
        );
        // Sell commission: 0.1 % of the quote received.
        assert_eq!(
            out[1].commission,
            Notional::of(px("100.5"), q("0.25")).0 as i64 / 1000
        );
    }

    #[test]
    fn market_sweeps_levels_and_expires_what_is_left() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        b.place(
            &f,
            order(1, Side::Sell, OrdType::Market, Tif::Gtc, "", "2.5"),
            1,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            brief(&out),
            vec![
                (1, X::New, Qty::ZERO, Price::ZERO, S::New),
                (1, X::Trade, q("1"), px("99"), S::PartiallyFilled),
                (1, X::Trade, q("1.5"), px("98"), S::Filled),
            ]
        );
        out.clear();
        // More than the book holds: what is left expires.
        b.place(
            &f,
            order(2, Side::Buy, OrdType::Market, Tif::Gtc, "", "10"),
            1,
            &mut out,
        )
        .unwrap();
        let last = out.last().unwrap();
        assert_eq!((last.exec, last.order.status), (X::Expired, S::Expired));
        assert_eq!(last.order.filled, q("8"));
        assert_eq!(b.resting(), 0);
        // Nothing at all on the other side: refused.
        out.clear();
        let r = b.place(
            &NoFeed,
            order(3, Side::Buy, OrdType::Market, Tif::Gtc, "", "1"),
            1,
            &mut out,
        );
        assert_eq!(r, Err(Reject::NoLiquidity));
        assert_eq!(
            brief(&out),
            vec![(3, X::Rejected, Qty::ZERO, Price::ZERO, S::Rejected)]
        );
        assert_eq!(out[0].reject, Some(Reject::NoLiquidity));
    }

    #[test]
    fn ioc_takes_what_it_can_and_expires_the_rest() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        b.place(&f, limit(1, Side::Buy, Tif::Ioc, "101", "3"), 1, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out),
            vec![
                (1, X::New, Qty::ZERO, Price::ZERO, S::New),
                (1, X::Trade, q("1"), px("101"), S::PartiallyFilled),
                (1, X::Expired, Qty::ZERO, Price::ZERO, S::Expired),
            ]
        );
        assert_eq!(out[2].order.filled, q("1"));
        assert_eq!(b.resting(), 0);
        // Nothing crossing: expires untouched.
        out.clear();
        b.place(&f, limit(2, Side::Sell, Tif::Ioc, "99.5", "1"), 1, &mut out)
            .unwrap();
        assert_eq!(brief(&out)[1].1, X::Expired);
        assert_eq!(out[1].order.filled, Qty::ZERO);
    }

    #[test]
    fn fok_is_all_or_nothing() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        // 3.5 available up to 102: not enough for 4, nothing trades.
        b.place(&f, limit(1, Side::Buy, Tif::Fok, "102", "4"), 1, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out),
            vec![
                (1, X::New, Qty::ZERO, Price::ZERO, S::New),
                (1, X::Expired, Qty::ZERO, Price::ZERO, S::Expired),
            ]
        );
        // Enough: fills completely across two levels.
        out.clear();
        b.place(&f, limit(2, Side::Buy, Tif::Fok, "102", "3"), 1, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out)[1..],
            [
                (2, X::Trade, q("1"), px("101"), S::PartiallyFilled),
                (2, X::Trade, q("2"), px("102"), S::Filled),
            ]
        );
        // The first FOK took nothing, so the second found the whole 3; now it is gone.
        out.clear();
        b.place(&f, limit(3, Side::Buy, Tif::Fok, "102", "0.1"), 1, &mut out)
            .unwrap();
        assert_eq!(out[1].exec, X::Expired);
    }

    #[test]
    fn partial_fills_accumulate_and_cancel_reports_what_was_left() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        b.place(&f, limit(1, Side::Sell, Tif::Gtc, "100", "5"), 1, &mut out)
            .unwrap();
        b.on_trade(px("100"), q("1"), 2, &mut out);
        b.on_trade(px("101"), q("1.5"), 3, &mut out);
        let o = *b.open_orders().next().unwrap();
        assert_eq!(
            (o.filled, o.leaves(), o.status),
            (q("2.5"), q("2.5"), S::PartiallyFilled)
        );
        assert_eq!(o.quote, 250 * SCALE);
        out.clear();
        let cid = ClientId::new("cancel-1").unwrap();
        // Wrong account, wrong id: nothing.
        assert!(b.cancel(1, Some(1), None, cid, 4, &mut out).is_none());
        assert!(b.cancel(0, Some(2), None, cid, 4, &mut out).is_none());
        assert!(b
            .cancel(0, Some(1), ClientId::new("tl-9"), cid, 4, &mut out)
            .is_none());
        assert!(b.cancel(0, None, None, cid, 4, &mut out).is_none());
        assert!(out.is_empty());
        let c = b
            .cancel(0, None, ClientId::new("tl-1"), cid, 4, &mut out)
            .unwrap();
        assert_eq!(c.status, S::Canceled);
        assert_eq!(
            brief(&out),
            vec![(1, X::Canceled, Qty::ZERO, Price::ZERO, S::Canceled)]
        );
        assert_eq!(out[0].cancel_id, Some(cid));
        assert_eq!(out[0].order.leaves(), q("2.5"));
        assert_eq!(b.resting(), 0);
        // Gone: a second cancel finds nothing, trades fill nothing.
        assert!(b.cancel(0, Some(1), None, cid, 5, &mut out).is_none());
        out.clear();
        b.on_trade(px("100"), q("1"), 6, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn price_time_priority_between_client_orders() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        // Two sells at 100.5 (inside the feed's spread), A first; a better one at 100.4 last.
        b.place(
            &f,
            limit(1, Side::Sell, Tif::Gtc, "100.5", "1"),
            1,
            &mut out,
        )
        .unwrap();
        b.place(
            &f,
            limit(2, Side::Sell, Tif::Gtc, "100.5", "1"),
            2,
            &mut out,
        )
        .unwrap();
        b.place(
            &f,
            limit(3, Side::Sell, Tif::Gtc, "100.4", "1"),
            3,
            &mut out,
        )
        .unwrap();
        out.clear();
        // A trade through both prices fills the best price first, then the earlier order.
        b.on_trade(px("100.6"), q("1.5"), 4, &mut out);
        assert_eq!(
            brief(&out),
            vec![
                (3, X::Trade, q("1"), px("100.4"), S::Filled),
                (1, X::Trade, q("0.5"), px("100.5"), S::PartiallyFilled),
            ]
        );
        // An aggressive buy meets order 1's rest, then order 2, at their price.
        out.clear();
        b.place(&f, limit(4, Side::Buy, Tif::Ioc, "100.5", "1"), 5, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out),
            vec![
                (4, X::New, Qty::ZERO, Price::ZERO, S::New),
                (1, X::Trade, q("0.5"), px("100.5"), S::Filled),
                (4, X::Trade, q("0.5"), px("100.5"), S::PartiallyFilled),
                (2, X::Trade, q("0.5"), px("100.5"), S::PartiallyFilled),
                (4, X::Trade, q("0.5"), px("100.5"), S::Filled),
            ]
        );
        // Maker and taker of one match share the trade id; makers are flagged.
        assert_eq!(out[1].trade_id, out[2].trade_id);
        assert_ne!(out[2].trade_id, out[3].trade_id);
        assert!(out[1].maker && !out[2].maker);
        // Owners: reports go to each order's own connection.
        assert_eq!((out[1].order.owner, out[2].order.owner), (10, 40));
        let left: Vec<_> = b.open_orders().map(|o| (o.order_id, o.leaves())).collect();
        assert_eq!(left, vec![(2, q("0.5"))]);
    }

    #[test]
    fn feed_liquidity_comes_first_at_a_price_and_is_consumed() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        // A client sell at 101 joins the feed's level at its back.
        b.place(&f, limit(1, Side::Sell, Tif::Gtc, "101", "1"), 1, &mut out)
            .unwrap();
        out.clear();
        b.place(&f, limit(2, Side::Buy, Tif::Ioc, "101", "1.5"), 2, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out)[1..],
            [
                (2, X::Trade, q("1"), px("101"), S::PartiallyFilled),
                (1, X::Trade, q("0.5"), px("101"), S::PartiallyFilled),
                (2, X::Trade, q("0.5"), px("101"), S::Filled),
            ]
        );
        // The feed's 101 is used up: the next buy at 101 meets only order 1's rest.
        out.clear();
        b.place(&f, limit(3, Side::Buy, Tif::Ioc, "101", "5"), 3, &mut out)
            .unwrap();
        assert_eq!(
            brief(&out)[1..],
            [
                (1, X::Trade, q("0.5"), px("101"), S::Filled),
                (3, X::Trade, q("0.5"), px("101"), S::PartiallyFilled),
                (3, X::Expired, Qty::ZERO, Price::ZERO, S::Expired),
            ]
        );
        // A market buy now starts at 102; taking part of it leaves the rest for the next.
        out.clear();
        b.place(
            &f,
            order(4, Side::Buy, OrdType::Market, Tif::Gtc, "", "0.5"),
            4,
            &mut out,
        )
        .unwrap();
        b.place(
            &f,
            order(5, Side::Buy, OrdType::Market, Tif::Gtc, "", "2"),
            4,
            &mut out,
        )
        .unwrap();
        let trades: Vec<_> = brief(&out)
            .into_iter()
            .filter(|t| t.1 == X::Trade)
            .map(|t| (t.0, t.2, t.3))
            .collect();
        assert_eq!(
            trades,
            vec![
                (4, q("0.5"), px("102")),
                (5, q("1.5"), px("102")),
                (5, q("0.5"), px("103")),
            ]
        );
        // The feed changes the 102 level: what it shows is there again, in full.
        let mut f2 = feed();
        f2.asks = vec![lv("102", "0.7"), lv("103", "5")];
        out.clear();
        b.place(&f2, limit(6, Side::Buy, Tif::Ioc, "102", "1"), 5, &mut out)
            .unwrap();
        assert_eq!(brief(&out)[1].2, q("0.7"));
        // 103 was not changed: 4.5 left of its 5.
        out.clear();
        b.place(
            &f2,
            limit(7, Side::Buy, Tif::Fok, "103", "4.5"),
            5,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.last().unwrap().order.status, S::Filled);
        out.clear();
        b.place(
            &f2,
            limit(8, Side::Buy, Tif::Fok, "103", "0.00000001"),
            5,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.last().unwrap().exec, X::Expired);
    }

    #[test]
    fn a_client_order_better_than_the_feed_goes_first() {
        let f = feed();
        let mut b = MatchBook::new(16);
        let mut out = Vec::new();
        b.place(&f, limit(1, Side::Buy, Tif::Gtc, "99.5", "1"), 1, &mut out)
            .unwrap();
        out.clear();
        b.place(
            &f,
            order(2, Side::Sell, OrdType::Market, Tif::Gtc, "", "1.5"),
            2,
            &mut out,
        )
        .unwrap();
        let trades: Vec<_> = brief(&out)
            .into_iter()
            .filter(|t| t.1 == X::Trade)
            .map(|t| (t.0, t.2, t.3))
            .collect();
        assert_eq!(
            trades,
            vec![
                (1, q("1"), px("99.5")),
                (2, q("1"), px("99.5")),
                (2, q("0.5"), px("99"))
            ]
        );
    }

    #[test]
    fn refusals() {
        let f = feed();
        let mut b = MatchBook::new(2);
        let mut out = Vec::new();
        // LIMIT_MAKER that would take: refused; one that would not: rests.
        let r = b.place(
            &f,
            order(1, Side::Buy, OrdType::LimitMaker, Tif::Gtc, "101", "1"),
            1,
            &mut out,
        );
        assert_eq!(r, Err(Reject::WouldTake));
        b.place(
            &f,
            order(2, Side::Buy, OrdType::LimitMaker, Tif::Gtc, "100", "1"),
            1,
            &mut out,
        )
        .unwrap();
        // The same client id while the first is open: refused.
        let mut dup = limit(3, Side::Buy, Tif::Gtc, "90", "1");
        dup.client_id = ClientId::new("tl-2").unwrap();
        assert_eq!(b.place(&f, dup, 1, &mut out), Err(Reject::DuplicateId));
        // ... unless another account uses it.
        dup.account = 1;
        b.place(&f, dup, 1, &mut out).unwrap();
        // Full book.
        assert_eq!(
            b.place(&f, limit(4, Side::Sell, Tif::Gtc, "110", "1"), 1, &mut out),
            Err(Reject::TooManyOrders)
        );
        // An IOC needs no room (it meets nothing at 101 or better and expires).
        out.clear();
        b.place(&f, limit(5, Side::Sell, Tif::Ioc, "101", "1"), 1, &mut out)
            .unwrap();
        assert_eq!(out.last().unwrap().exec, X::Expired);
        assert_eq!(b.resting(), 2);
    }

    #[test]
    fn client_ids() {
        assert_eq!(ClientId::new("probe-123").unwrap().as_str(), "probe-123");
        assert!(ClientId::new("a.b:c/d_e-F9").is_some());
        assert!(ClientId::new("").is_none());
        assert!(ClientId::new("bad id").is_none());
        assert!(ClientId::new(&"x".repeat(37)).is_none());
        assert!(ClientId::new(&"x".repeat(36)).is_some());
    }

    #[test]
    fn order_book_is_a_feed() {
        use engine::event::{LevelFlags, SnapshotLevel};
        let mut book = OrderBook::new(engine::book::BookConfig::default());
        for (i, (side, p, qty)) in [
            (BookSide::Bid, "99", "1"),
            (BookSide::Ask, "101", "2"),
            (BookSide::Ask, "102", "3"),
        ]
        .into_iter()
        .enumerate()
        {
            book.apply_snapshot(&SnapshotLevel {
                last_update_id: 5,
                price: px(p),
                qty: q(qty),
                side,
                flags: if i == 2 {
                    LevelFlags::LAST
                } else {
                    LevelFlags::default()
                },
            });
        }
        assert!(book.is_synced());
        let asks: Vec<_> = book.levels(BookSide::Ask).collect();
        assert_eq!(asks, vec![lv("101", "2"), lv("102", "3")]);
        let mut b = MatchBook::new(4);
        let mut out = Vec::new();
        b.place(
            &book,
            limit(1, Side::Buy, Tif::Ioc, "101.5", "5"),
            1,
            &mut out,
        )
        .unwrap();
        assert_eq!(brief(&out)[1].2, q("2"));
    }
}
