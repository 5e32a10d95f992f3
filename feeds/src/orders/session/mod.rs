//! The order session: the I/O thread's side of the order path.
//!
//! ```text
//!  core ──ring: OrderCommand──▶ OrderSession (on the I/O thread) ──journal intent──▶ sign, frame, write
//!   ▲                                   │ replies, executionReports (WebSocket API connection)
//!   └──────ring: order events───────────┘
//! ```
//!
//! [`IoLoop::session`](crate::io::IoLoop::session) owns one [`OrderSession`] and one extra link: a
//! WebSocket connection to the venue's order API (Binance's `/ws-api/v3`). Every loop iteration
//! it calls [`OrderSession::pump`], which takes the core's [`OrderCommand`]s and, per command:
//!
//! 1. refuses it at once ([`RejectReason::Disconnected`]) when the API connection is not open:
//!    nothing is written anywhere, the order was never sent;
//! 2. appends the order's intent to the [`JournalWriter`] (if there is one) and refuses it
//!    ([`RejectReason::Journal`]) if that fails: an intent that is not journaled is never sent;
//! 3. encodes and signs the request ([`OrderEncoder`]), writes it to the socket and records
//!    `tick_to_wire` (the receive stamp of the event that caused the order to the moment the
//!    frame was handed to the kernel).
//!
//! Replies and `executionReport`s come back on the same connection and reach the core on the
//! session's own ring (policy [`OnFull::Block`](engine::ring::OnFull::Block): an order event is
//! never dropped). The venue tells most things twice (the `order.place` reply and the `NEW`
//! report; the `order.cancel` reply and the `CANCELED` report), so the session forwards the first
//! acknowledgement and the first final state of each order only; fills are always forwarded (the
//! core drops a fill it has seen by `(client id, trade id)`), and a cancel reply that arrives
//! before fills it implies (`filled + leaves < qty`) waits for them. A refused `order.place`
//! becomes an `OrderReject` for the client id its request id maps to; a refused cancel is counted
//! and reported, the order stays as it is. A `5xx` status means the outcome is unknown: the order
//! stays in flight.
//!
//! **Replies settle what they can.** `order.place` asks for `newOrderRespType=FULL`: the reply
//! carries the order's status, `executedQty` and its fills. When that status is final (`FILLED`,
//! `CANCELED`, `EXPIRED`, `EXPIRED_IN_MATCH`, `REJECTED`; always so for IOC, FOK and market
//! orders) the reply's fills are forwarded and the order is settled at once
//! ([`SessionCounters::settled_by_reply`]); the `executionReport`s saying the same later are
//! dropped as duplicates (fills by `(client id, trade id)`, the first final state wins). A
//! `RESULT` reply (no fills listed) that reports more executed than seen asks `myTrades` first.
//! So a missing or late user data stream never leaves a finished order in flight.
//!
//! **User data stream.** On every (re)connect the session subscribes the account's user data
//! stream the way Binance documents for the key in use ("User Data Stream requests" of the
//! WebSocket API):
//!
//! - with `session.logon` ([`SessionConfig::session_logon`], Ed25519 keys): the plain
//!   `{"id":..,"method":"userDataStream.subscribe"}`, sent only when the logon's reply says it
//!   was accepted ("This method requires an authenticated WebSocket connection using Ed25519
//!   keys. Please refer to `session.logon`.");
//! - otherwise (HMAC or RSA keys, or a refused logon): the signed
//!   `userDataStream.subscribe.signature` with `apiKey`, `recvWindow`, `timestamp` and
//!   `signature` ("In any session, authenticated or not, you can subscribe to events for one or
//!   more accounts for which you can provide an API Key signature").
//!
//! The venue answers `{"id":..,"status":200,"result":{"subscriptionId":0}}` (or `"result":{}`).
//! Any error reply is loud and safe: an `error:` notice naming the venue's code and message,
//! [`SessionCounters::user_stream_refused`], and [`UserStream::Refused`] (the I/O loop publishes
//! it; `tickline ctl status` shows the order session `degraded`). Until the subscription is
//! confirmed ([`UserStream::Pending`]) and while it is refused, an order that may rest (GTC) is
//! refused with [`RejectReason::NoUserStream`] when [`SessionConfig::require_user_stream`] is on
//! (the default): its later fills and end would never be learned, and it would hold an in-flight
//! slot for ever. IOC, FOK and market orders always go: their reply settles them.
//!
//! **Reconnects and restarts.** Whenever the API connection opens, the session subscribes the
//! user data stream (above) and asks `order.status` for every order it has in flight (after a restart:
//! the journal's open orders, given to [`OrderSession::restore`]). The answer settles each one: an
//! acknowledgement if none was seen, the trades the engine missed (`myTrades` for the order,
//! paged by `fromId`, less the trade ids already journaled), then its final state. An order the
//! venue does not know (`-2013`) never reached it and is rejected. So nothing is sent twice (ids
//! continue from the journal) and no fill is lost. A venue that refuses `order.status` cannot
//! settle anything: an IOC, FOK or market order is then closed here (it cannot still rest) with a
//! loud notice that its fills are unknown, and a GTC order stays in flight.
//!
//! **Client ids on every connect.** After those requests the session asks the venue for its open
//! and recent orders ([`crate::orders::idcheck`]) and refuses new orders ([`RejectReason::IdCheck`])
//! until the answers are in; an engine id there at or beyond the next one moves numbering past
//! it (an [`OrderIdFloor`](engine::event::OrderIdFloor) event to the core, a `NextClientId` record in the journal), and
//! orders numbered before the move are refused too. So an id the venue knows is never sent
//! again, even when the journal lost its tail, was moved aside, or the clock went back.
//!
//! **Waking.** The I/O thread sleeps in `epoll_wait` when idle; [`OrderWake::notify`] (called by
//! the core after each command it pushes) wakes it through a `mio::Waker` only while it is parked,
//! so a busy-polling I/O thread costs the core one fence and one load per order. After
//! delivering a market frame the I/O thread also spins for [`SessionConfig::spin_after_frame`],
//! since that is when a strategy's answer is due.
//!
//! **Files.** This module holds the session, its order path and its replies; `user_stream`
//! the user data stream's subscription, `reconcile` reconciliation on (re)connect, `ids` its side
//! of the venue check of client ids, and `wake` the I/O thread's waker.

use crate::binance::api::{
    execution_report_of, place_result_of, read_envelope, reply_of, ApiReply, Envelope,
    OrderEncoder, OrderStatus, VenueError,
};
use crate::net::Connection;
use crate::orders::clock::WallClock;
use crate::orders::idcheck::IdCheck;
use crate::orders::journal::{JournalRecord, JournalWriter, RecoveredOrder};
use engine::event::{
    ClientOrderId, Event, EventKind, Fill, OrderAck, OrderCanceled, OrderCommand, OrderReject,
    OrderRequest, OrderType, RejectReason,
};
use engine::fixed::Qty;
use engine::latency::LatencyHist;
use engine::ring::EventTx;
use engine::symbol::{SymbolId, SymbolTable};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

mod ids;
mod reconcile;
mod user_stream;
mod wake;

pub use user_stream::UserStream;
pub use wake::OrderWake;

/// Settled orders kept (to drop the venue's second word on them) before they are swept.
const SETTLED_KEPT: usize = 4096;

/// How the order session behaves.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Connection id of the API link (in notices and counters).
    pub conn_id: u32,
    /// The order API's URL (`wss://ws-api.binance.com:443/ws-api/v3`, the simulator's
    /// `ws://127.0.0.1:P/ws-api/v3`).
    pub url: String,
    /// After a market frame was handed to the core, busy-poll this long before sleeping in
    /// `epoll_wait` again (the strategy's answer is due then). Zero: never.
    pub spin_after_frame: Duration,
    /// Subscribe the user data stream on every (re)connect: `userDataStream.subscribe` once
    /// `session.logon` was accepted, else `userDataStream.subscribe.signature` (see the
    /// [module docs](self), "User data stream").
    pub user_stream: bool,
    /// Refuse orders that may rest (GTC) with [`RejectReason::NoUserStream`] while the user data
    /// stream is not confirmed on the connection (their fills and end would never be learned);
    /// IOC, FOK and market orders are settled by their `order.place` reply and always go.
    pub require_user_stream: bool,
    /// Send `session.logon` when the connection opens (Ed25519 keys only, as on Binance); once
    /// the venue accepts it, requests go without `apiKey` and `signature` (no signing on the
    /// order path). Until then, and after a reconnect until the next logon, they are signed.
    pub session_logon: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            conn_id: 100,
            url: String::new(),
            spin_after_frame: Duration::from_micros(50),
            user_stream: true,
            require_user_stream: true,
            session_logon: false,
        }
    }
}

/// The order session's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// `order.place` requests written.
    pub placed: u64,
    /// `order.cancel` requests written.
    pub cancels: u64,
    /// Orders refused because the API connection was not open.
    pub refused_disconnected: u64,
    /// Orders refused because their intent could not be journaled.
    pub refused_journal: u64,
    /// Cancels not sent because the API connection was not open.
    pub cancels_not_sent: u64,
    /// Requests whose write failed (the connection fails; the order's outcome is settled when it
    /// comes back).
    pub send_errors: u64,
    /// Acknowledgements forwarded.
    pub acks: u64,
    /// Venue rejections of orders forwarded.
    pub rejects: u64,
    /// Cancel requests the venue refused (order unknown or already final).
    pub cancel_rejects: u64,
    /// Fills forwarded.
    pub fills: u64,
    /// Final cancels or expiries forwarded.
    pub canceled: u64,
    /// Second words on an order (an ack or a final state already forwarded): dropped.
    pub duplicates: u64,
    /// Replies with a `5xx` status (outcome unknown; settled on the next reconnect).
    pub unknown_outcomes: u64,
    /// Frames on the API connection that could not be read.
    pub bad_frames: u64,
    /// Reports and replies about client ids the session does not track.
    pub unknown_orders: u64,
    /// Fills recovered through reconciliation (`myTrades`) at start-up or after a reconnect.
    pub reconciled_fills: u64,
    /// Orders settled by reconciliation (`order.status`).
    pub reconciled_orders: u64,
    /// Journal appends that failed after the send (acks, fills, cancels).
    pub journal_errors: u64,
    /// `session.logon`s the venue accepted.
    pub logons: u64,
    /// User data stream subscriptions the venue confirmed.
    pub user_streams: u64,
    /// User data stream subscriptions the venue refused (any error reply): no `executionReport`
    /// comes on that connection.
    pub user_stream_refused: u64,
    /// Orders that may rest refused ([`RejectReason::NoUserStream`]) because the user data
    /// stream was not confirmed.
    pub refused_no_user_stream: u64,
    /// Orders settled by their own `order.place` reply (`RESULT`/`FULL`, final status).
    pub settled_by_reply: u64,
    /// Orders refused while the venue check of client ids was waiting, or numbered below the
    /// floor it set ([`RejectReason::IdCheck`]; see [`crate::orders::idcheck`]).
    pub refused_id_check: u64,
    /// Venue checks that found engine ids at or beyond the next one and moved numbering.
    pub id_floor_raises: u64,
    /// Venue checks that failed (queries refused, or no answer in time).
    pub id_check_failures: u64,
}

/// What a request id was for.
#[derive(Clone, Copy, Debug)]
enum Req {
    Place(ClientOrderId),
    Cancel(ClientOrderId),
    Logon,
    UserStream,
    Status(ClientOrderId),
    Trades {
        client_id: ClientOrderId,
        /// Settle the order with this status once the trades are in.
        then: OrderStatus,
    },
}

/// An order the session has sent (or recovered) and not yet seen settled.
#[derive(Clone, Debug)]
struct Tracked {
    symbol: SymbolId,
    qty: Qty,
    filled: Qty,
    venue_order_id: Option<u64>,
    acked: bool,
    settled: bool,
    /// Leaves of a cancel reply that came before the fills it implies.
    cancel_pending: Option<Qty>,
    /// A GTC limit order (can rest on the book); IOC, FOK and market orders cannot.
    resting: bool,
    trade_ids: Vec<u64>,
}

/// Something the session wants logged.
pub type SessionNotice = String;

/// The order session; see the [module docs](self).
pub struct OrderSession {
    cfg: SessionConfig,
    encoder: OrderEncoder,
    symbols: SymbolTable,
    commands: rtrb::Consumer<OrderCommand>,
    tx: EventTx,
    journal: Option<JournalWriter>,
    wake: Arc<OrderWake>,
    requests: HashMap<u64, Req>,
    orders: HashMap<ClientOrderId, Tracked>,
    next_request_id: u64,
    /// Requests built off the order path (reconciliation), written by the next pump.
    queued: Vec<String>,
    out: Vec<Event>,
    /// Fills read from an `order.place` reply (reused).
    reply_fills: Vec<Fill>,
    open: bool,
    user_stream: UserStream,
    core_gone: bool,
    counters: SessionCounters,
    tick_to_wire: LatencyHist,
    now: fn() -> u64,
    /// The wall clock (request timestamps, journal time stamps).
    wall: WallClock,
    notices: Vec<SessionNotice>,
    /// The venue check of client ids on every connect ([`crate::orders::idcheck`]).
    ids: IdCheck,
}

impl std::fmt::Debug for OrderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderSession")
            .field("cfg", &self.cfg)
            .field("encoder", &self.encoder)
            .field("open", &self.open)
            .field("tracked", &self.orders.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Numbers a request and remembers what it is for.
fn new_request(next: &mut u64, requests: &mut HashMap<u64, Req>, req: Req) -> u64 {
    let id = *next;
    *next += 1;
    requests.insert(id, req);
    id
}

/// Appends a record written after the send (acks, fills, cancels, trader states): a failure is
/// counted and reported (the first ten), never fatal.
fn append_counted(
    journal: &mut Option<JournalWriter>,
    counters: &mut SessionCounters,
    notices: &mut Vec<SessionNotice>,
    rec: &JournalRecord<'_>,
) {
    if let Some(j) = journal.as_mut() {
        if let Err(e) = j.append(rec) {
            counters.journal_errors += 1;
            if counters.journal_errors <= 10 {
                notices.push(format!("journal: append failed: {e}"));
            }
        }
    }
}

/// `wall`'s reading in ms since the Unix epoch (request timestamps).
fn wall_ms(wall: WallClock) -> u64 {
    wall() / 1_000_000
}

impl OrderSession {
    /// A session sending the core's `commands` (signed by `encoder`) and answering on `tx`,
    /// journaling to `journal`. `now` is the engine's monotonic clock, `wall` the wall clock
    /// (ns since the Unix epoch; [`system_wall_ns`](crate::orders::clock::system_wall_ns) live).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: SessionConfig,
        encoder: OrderEncoder,
        symbols: SymbolTable,
        commands: rtrb::Consumer<OrderCommand>,
        tx: EventTx,
        journal: Option<JournalWriter>,
        wake: Arc<OrderWake>,
        now: fn() -> u64,
        wall: WallClock,
    ) -> OrderSession {
        OrderSession {
            cfg,
            encoder,
            symbols,
            commands,
            tx,
            journal,
            wake,
            requests: HashMap::with_capacity(4096),
            orders: HashMap::with_capacity(4096),
            next_request_id: 1,
            queued: Vec::new(),
            out: Vec::with_capacity(16),
            reply_fills: Vec::with_capacity(16),
            open: false,
            user_stream: UserStream::Off,
            core_gone: false,
            counters: SessionCounters::default(),
            tick_to_wire: LatencyHist::new(),
            now,
            wall,
            notices: Vec::new(),
            ids: IdCheck::new(),
        }
    }

    /// Tracks the orders a previous run left open (from [`crate::orders::journal::recover`]): they are
    /// settled with the venue as soon as the API connection opens. Orders of symbols not in the
    /// table are reported and left out.
    pub fn restore(&mut self, open_orders: &[RecoveredOrder]) {
        for o in open_orders {
            let Some(symbol) = self.symbols.lookup(o.symbol.as_bytes()) else {
                self.notices.push(format!(
                    "journal: open order {} is on {}, which this run does not trade; not reconciled",
                    o.client_id, o.symbol
                ));
                continue;
            };
            self.orders.insert(
                o.client_id,
                Tracked {
                    symbol,
                    qty: o.req.qty,
                    filled: o.filled,
                    venue_order_id: o.venue_order_id,
                    acked: o.acked,
                    settled: false,
                    cancel_pending: None,
                    resting: o.req.order_type == OrderType::LimitGtc,
                    trade_ids: o.trade_ids.clone(),
                },
            );
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// Where the user data stream stands on the current connection.
    pub fn user_stream(&self) -> UserStream {
        self.user_stream
    }

    /// Receive stamp to order frame written, ns.
    pub fn tick_to_wire(&self) -> &LatencyHist {
        &self.tick_to_wire
    }

    /// Orders in flight (sent or recovered, not settled).
    pub fn in_flight(&self) -> usize {
        self.orders.values().filter(|t| !t.settled).count()
    }

    /// The core dropped its end of the ring.
    pub fn core_gone(&self) -> bool {
        self.core_gone
    }

    /// True when something waits to be logged.
    pub fn has_notices(&self) -> bool {
        !self.notices.is_empty()
    }

    /// Takes what the session wants logged.
    pub fn take_notices(&mut self) -> Vec<SessionNotice> {
        std::mem::take(&mut self.notices)
    }

    pub(crate) fn wake(&self) -> &Arc<OrderWake> {
        &self.wake
    }

    /// True while commands wait in the ring.
    pub(crate) fn commands_waiting(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Ends the session: commands still in the ring are refused (never sent), and the journal
    /// is synced (whatever its policy).
    pub fn finish(&mut self) {
        self.on_down();
        self.pump(None);
        if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.sync() {
                self.notices
                    .push(format!("journal: final sync failed: {e}"));
            }
        }
    }

    fn request_id(&mut self, req: Req) -> u64 {
        new_request(&mut self.next_request_id, &mut self.requests, req)
    }

    fn push(&mut self, symbol: SymbolId, kind: EventKind) {
        let ev = Event::new((self.now)(), symbol, kind);
        if self.tx.push(ev).is_err() {
            self.core_gone = true;
        }
    }

    fn journal(&mut self, rec: &JournalRecord<'_>) {
        append_counted(
            &mut self.journal,
            &mut self.counters,
            &mut self.notices,
            rec,
        );
    }

    /// The API connection opened: subscribe the user data stream and settle every order in
    /// flight.
    pub(crate) fn on_open(&mut self) {
        self.open = true;
        self.encoder.set_session_authenticated(false);
        self.requests.clear();
        self.logon_and_subscribe();
        let pending: Vec<(ClientOrderId, SymbolId)> = self
            .orders
            .iter()
            .filter(|(_, t)| !t.settled)
            .map(|(id, t)| (*id, t.symbol))
            .collect();
        for (client_id, symbol) in pending {
            self.query_status(client_id, symbol);
        }
        self.begin_id_check();
    }

    /// The API connection was lost: requests without an answer stay unanswered (their orders are
    /// settled on the next open).
    pub(crate) fn on_down(&mut self) {
        self.open = false;
        self.user_stream = UserStream::Off;
        self.ids.abort();
        self.queued.clear();
        self.encoder.set_session_authenticated(false);
    }

    /// Sends what is queued and every command in the ring. `conn` is the API connection when it
    /// is open. Returns the number of commands taken from the ring.
    pub fn pump(&mut self, mut conn: Option<&mut Connection>) -> usize {
        let mut taken = 0;
        if self.ids.is_waiting() {
            if let Some(o) = self.ids.timed_out((self.now)()) {
                self.id_check_done(o);
            }
        }
        if !self.queued.is_empty() {
            if let Some(c) = conn.as_deref_mut() {
                for text in std::mem::take(&mut self.queued) {
                    if let Err(e) = c.send_text(&text) {
                        self.counters.send_errors += 1;
                        self.notices.push(format!("order API: sending failed: {e}"));
                        break;
                    }
                }
            }
        }
        while let Ok(cmd) = self.commands.pop() {
            taken += 1;
            match cmd {
                OrderCommand::New {
                    client_id,
                    symbol,
                    req,
                    cause_ns,
                } => self.place(conn.as_deref_mut(), client_id, symbol, req, cause_ns),
                OrderCommand::Cancel { client_id, symbol } => {
                    self.cancel(conn.as_deref_mut(), client_id, symbol)
                }
                OrderCommand::TraderState {
                    symbol,
                    trader,
                    state,
                } => self.trader_state(symbol, trader, state.as_bytes()),
            }
        }
        taken
    }

    /// Journals a supervised trader's new state (whether or not the API is connected).
    #[cold]
    fn trader_state(&mut self, symbol: SymbolId, trader: u16, state: &[u8]) {
        let Some(name) = self.symbols.name(symbol) else {
            return;
        };
        let rec = JournalRecord::TraderState {
            symbol: name,
            trader: trader as u32,
            state,
            ts_ns: (self.wall)(),
        };
        append_counted(
            &mut self.journal,
            &mut self.counters,
            &mut self.notices,
            &rec,
        );
    }

    fn refuse(&mut self, client_id: ClientOrderId, symbol: SymbolId, reason: RejectReason) {
        self.push(
            symbol,
            EventKind::OrderReject(OrderReject { client_id, reason }),
        );
    }

    fn place(
        &mut self,
        conn: Option<&mut Connection>,
        client_id: ClientOrderId,
        symbol: SymbolId,
        req: OrderRequest,
        cause_ns: u64,
    ) {
        let resting = req.order_type == OrderType::LimitGtc;
        if resting
            && self.open
            && self.cfg.require_user_stream
            && self.user_stream != UserStream::Active
        {
            return self.refuse_no_user_stream(client_id, symbol);
        }
        let (Some(conn), true) = (conn, self.open) else {
            self.counters.refused_disconnected += 1;
            return self.refuse(client_id, symbol, RejectReason::Disconnected);
        };
        if !self.ids.admits(client_id) {
            self.counters.refused_id_check += 1;
            return self.refuse(client_id, symbol, RejectReason::IdCheck);
        }
        let Some(name) = self.symbols.name(symbol) else {
            return self.refuse(client_id, symbol, RejectReason::InvalidOrder);
        };
        if let Some(j) = self.journal.as_mut() {
            let rec = JournalRecord::Intent {
                client_id,
                symbol: name,
                req,
                ts_ns: (self.wall)(),
            };
            if let Err(e) = j.append(&rec) {
                self.counters.refused_journal += 1;
                self.notices.push(format!(
                    "journal: intent of {client_id} not written ({e}); not sent"
                ));
                return self.refuse(client_id, symbol, RejectReason::Journal);
            }
        }
        // Field by field: `name` borrows the symbol table.
        let id = new_request(
            &mut self.next_request_id,
            &mut self.requests,
            Req::Place(client_id),
        );
        self.orders.insert(
            client_id,
            Tracked {
                symbol,
                qty: req.qty,
                filled: Qty::ZERO,
                venue_order_id: None,
                acked: false,
                settled: false,
                cancel_pending: None,
                resting,
                trade_ids: Vec::new(),
            },
        );
        self.ids.sent(client_id);
        let text = self
            .encoder
            .place(id, name, client_id, &req, wall_ms(self.wall));
        match conn.send_text(text) {
            Ok(()) => {
                self.counters.placed += 1;
                let at = (self.now)();
                if cause_ns > 0 {
                    self.tick_to_wire.record(at.saturating_sub(cause_ns));
                }
            }
            Err(e) => {
                // The bytes may or may not have left: the order stays in flight and is settled
                // by `order.status` when the connection is back.
                self.counters.send_errors += 1;
                self.notices
                    .push(format!("order API: sending {client_id} failed: {e}"));
            }
        }
        if self.orders.len() > SETTLED_KEPT {
            self.sweep();
        }
    }

    fn cancel(
        &mut self,
        conn: Option<&mut Connection>,
        client_id: ClientOrderId,
        symbol: SymbolId,
    ) {
        let (Some(conn), true) = (conn, self.open) else {
            self.counters.cancels_not_sent += 1;
            return;
        };
        let Some(name) = self.symbols.name(symbol) else {
            return;
        };
        let id = new_request(
            &mut self.next_request_id,
            &mut self.requests,
            Req::Cancel(client_id),
        );
        let text = self.encoder.cancel(id, name, client_id, wall_ms(self.wall));
        match conn.send_text(text) {
            Ok(()) => self.counters.cancels += 1,
            Err(e) => {
                self.counters.send_errors += 1;
                self.notices.push(format!(
                    "order API: sending the cancel of {client_id} failed: {e}"
                ));
            }
        }
    }

    /// Forgets settled orders (cold; keeps the table from growing).
    #[cold]
    fn sweep(&mut self) {
        self.orders.retain(|_, t| !t.settled);
    }

    /// One frame from the API connection.
    pub fn on_frame(&mut self, payload: &[u8]) {
        if self.ids.is_waiting() && self.id_check_frame(payload) {
            return;
        }
        // The envelope is read once; what the session asked under its id picks the one parser
        // that reads the rest.
        let env = match read_envelope(payload) {
            Ok(env) => env,
            Err(e) => return self.bad_frame(&e.to_string(), payload),
        };
        if env.status.is_some() {
            match env.request_id.and_then(|r| self.requests.get(&r)) {
                Some(Req::Status(_)) => return self.status_reply(payload, &env),
                Some(Req::Trades { .. }) => return self.trades_reply(payload, &env),
                _ => {}
            }
        }
        let reply = match reply_of(payload, &env) {
            Ok(r) => r,
            Err(e) => return self.bad_frame(&e.to_string(), payload),
        };
        let request_id = match &reply {
            ApiReply::Placed { request_id, .. }
            | ApiReply::Canceled { request_id, .. }
            | ApiReply::OpenOrders { request_id, .. } => Some(*request_id),
            ApiReply::Other { request_id, .. } => *request_id,
            ApiReply::Rejected { .. } | ApiReply::Event => None,
        };
        let req = request_id.and_then(|r| self.requests.remove(&r));
        // (A refusal has no request id here: `rejected` looks it up.)
        if matches!(req, Some(Req::Logon | Req::UserStream)) {
            return self.session_reply(req);
        }
        match reply {
            ApiReply::Event => self.on_report(payload, &env),
            ApiReply::Placed {
                client_id,
                venue_order_id,
                status,
                ..
            } => {
                self.ack(client_id, venue_order_id);
                if status.is_some_and(OrderStatus::is_final) {
                    self.settle_from_reply(client_id, payload, &env);
                }
            }
            ApiReply::Canceled {
                client_id,
                leaves_qty,
                ..
            } => self.cancel_reply(client_id, leaves_qty),
            ApiReply::Rejected { request_id, error } => self.rejected(request_id, &error),
            ApiReply::OpenOrders { .. } | ApiReply::Other { .. } => {}
        }
    }

    /// An `order.place` reply with a final status (`RESULT` or `FULL`): its fills (FULL) and its
    /// end settle the order now, whatever the user data stream does; the same words arriving
    /// later as `executionReport`s are counted duplicates. A `RESULT` reply (no fills listed)
    /// that says more was executed than the session has seen asks `myTrades` first.
    fn settle_from_reply(&mut self, client_id: ClientOrderId, payload: &[u8], env: &Envelope) {
        let Some(t) = self.orders.get(&client_id) else {
            return;
        };
        if t.settled {
            return;
        }
        let (symbol, venue_order_id) = (t.symbol, t.venue_order_id);
        let Some(name) = self.symbols.name(symbol) else {
            return;
        };
        let mut fills = std::mem::take(&mut self.reply_fills);
        fills.clear();
        let parsed = place_result_of(payload, env, name, client_id, &mut fills);
        for f in &fills {
            self.fill(symbol, *f);
        }
        self.reply_fills = fills;
        let r = match parsed {
            Ok(r) => r,
            Err(e) => return self.bad_frame(&e.to_string(), payload),
        };
        let filled = self.orders.get(&client_id).map_or(Qty::ZERO, |t| t.filled);
        if r.executed_qty.0 > filled.0 {
            if let Some(v) = venue_order_id {
                return self.query_trades(client_id, symbol, v, None, r.status);
            }
        }
        if self.orders.get(&client_id).is_some_and(|t| !t.settled) {
            self.counters.settled_by_reply += 1;
        }
        self.settle_by_status(client_id, r.status, r.executed_qty);
    }

    #[cold]
    fn bad_frame(&mut self, err: &str, payload: &[u8]) {
        self.counters.bad_frames += 1;
        if self.counters.bad_frames <= 10 {
            let head = &payload[..payload.len().min(200)];
            self.notices.push(format!(
                "order API: unreadable frame ({err}): {}",
                String::from_utf8_lossy(head)
            ));
        }
    }

    fn on_report(&mut self, payload: &[u8], env: &Envelope) {
        self.out.clear();
        let recv_ns = (self.now)();
        let mut out = std::mem::take(&mut self.out);
        match execution_report_of(payload, env, &self.symbols, recv_ns, &mut out) {
            Ok(_) => {
                for ev in &out {
                    match ev.kind {
                        EventKind::OrderAck(a) => self.ack(a.client_id, a.venue_order_id),
                        EventKind::Fill(f) => self.fill(ev.symbol, f),
                        EventKind::OrderCanceled(c) => {
                            self.settle_canceled(c.client_id, c.leaves_qty)
                        }
                        EventKind::OrderReject(r) => {
                            self.settle_rejected(r.client_id, RejectReason::Venue, 0)
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => self.bad_frame(&e.to_string(), payload),
        }
        self.out = out;
    }

    fn ack(&mut self, client_id: ClientOrderId, venue_order_id: u64) {
        let Some(t) = self.orders.get_mut(&client_id) else {
            self.counters.unknown_orders += 1;
            return;
        };
        t.venue_order_id = Some(venue_order_id);
        if t.acked || t.settled {
            self.counters.duplicates += 1;
            return;
        }
        t.acked = true;
        let symbol = t.symbol;
        self.counters.acks += 1;
        let ack = OrderAck {
            client_id,
            venue_order_id,
        };
        self.journal(&JournalRecord::ack(&ack, (self.wall)()));
        self.push(symbol, EventKind::OrderAck(ack));
    }

    fn fill(&mut self, symbol: SymbolId, f: Fill) {
        if let Some(t) = self.orders.get_mut(&f.client_id) {
            if t.trade_ids.contains(&f.trade_id) {
                self.counters.duplicates += 1;
                return;
            }
            t.trade_ids.push(f.trade_id);
            t.filled = Qty(t.filled.0.saturating_add(f.qty.0));
        } else {
            self.counters.unknown_orders += 1;
        }
        self.counters.fills += 1;
        self.journal(&JournalRecord::fill(&f, (self.wall)()));
        self.push(symbol, EventKind::Fill(f));
        // A fully filled order is settled (the venue sends no further word that matters); a
        // cancel that waited for this fill goes out now.
        let Some(t) = self.orders.get_mut(&f.client_id) else {
            return;
        };
        if t.filled.0 >= t.qty.0 {
            t.settled = true;
        } else if let Some(leaves) = t.cancel_pending {
            if t.filled.0 + leaves.0 >= t.qty.0 {
                self.settle_canceled(f.client_id, leaves);
            }
        }
    }

    fn cancel_reply(&mut self, client_id: ClientOrderId, leaves: Option<Qty>) {
        let Some(t) = self.orders.get_mut(&client_id) else {
            self.counters.unknown_orders += 1;
            return;
        };
        let leaves = leaves.unwrap_or(Qty((t.qty.0 - t.filled.0).max(0)));
        if !t.settled && t.filled.0 + leaves.0 < t.qty.0 {
            // Fills the reply implies have not arrived yet: wait for them (or for the report).
            t.cancel_pending = Some(leaves);
            return;
        }
        self.settle_canceled(client_id, leaves);
    }

    /// Marks `client_id` settled and returns its symbol; `None` (counted) for an order not
    /// tracked or already settled.
    fn settle(&mut self, client_id: ClientOrderId) -> Option<SymbolId> {
        let Some(t) = self.orders.get_mut(&client_id) else {
            self.counters.unknown_orders += 1;
            return None;
        };
        if t.settled {
            self.counters.duplicates += 1;
            return None;
        }
        t.settled = true;
        Some(t.symbol)
    }

    fn settle_canceled(&mut self, client_id: ClientOrderId, leaves: Qty) {
        let Some(symbol) = self.settle(client_id) else {
            return;
        };
        self.counters.canceled += 1;
        let c = OrderCanceled {
            client_id,
            leaves_qty: leaves,
        };
        self.journal(&JournalRecord::canceled(&c, (self.wall)()));
        self.push(symbol, EventKind::OrderCanceled(c));
    }

    fn settle_rejected(&mut self, client_id: ClientOrderId, reason: RejectReason, code: i64) {
        let Some(symbol) = self.settle(client_id) else {
            return;
        };
        self.counters.rejects += 1;
        self.journal(&JournalRecord::Rejected {
            client_id,
            code,
            ts_ns: (self.wall)(),
        });
        self.push(
            symbol,
            EventKind::OrderReject(OrderReject { client_id, reason }),
        );
    }

    #[cold]
    fn rejected(&mut self, request_id: Option<u64>, error: &VenueError) {
        let (status, code, msg) = (error.status, error.code, error.msg.as_str());
        let req = request_id.and_then(|r| self.requests.remove(&r));
        if matches!(req, Some(Req::UserStream)) {
            return self.user_stream_refused(status, code, msg);
        }
        if status >= 500 {
            self.counters.unknown_outcomes += 1;
            self.notices.push(format!(
                "order API: outcome unknown (status {status}, code {code}: {msg}); settled on the next reconnect"
            ));
            return;
        }
        match req {
            Some(Req::Place(client_id)) => {
                self.settle_rejected(client_id, RejectReason::Venue, code)
            }
            Some(Req::Cancel(client_id)) => {
                self.counters.cancel_rejects += 1;
                if self.counters.cancel_rejects <= 10 {
                    self.notices.push(format!(
                        "order API: cancel of {client_id} refused (code {code}: {msg})"
                    ));
                }
            }
            Some(Req::Status(client_id)) => {
                if code == -2013 {
                    // The venue never saw it: the request was lost with the connection (or the
                    // process died between the journal and the write).
                    self.counters.reconciled_orders += 1;
                    self.settle_rejected(client_id, RejectReason::Venue, code);
                } else if self.orders.get(&client_id).is_some_and(|t| !t.resting) {
                    // An IOC, FOK or market order cannot still be working: close it, and say
                    // that its fills (if any) are unknown.
                    self.counters.reconciled_orders += 1;
                    self.notices.push(format!(
                        "order API: order.status for {client_id} refused (code {code}: {msg}); it cannot rest (IOC/FOK/market), so it is closed here, but fills it may have had are UNKNOWN: check the venue"
                    ));
                    let leaves = self
                        .orders
                        .get(&client_id)
                        .map_or(Qty::ZERO, |t| Qty((t.qty.0 - t.filled.0).max(0)));
                    self.settle_canceled(client_id, leaves);
                } else {
                    self.notices.push(format!(
                        "order API: order.status for {client_id} refused (code {code}: {msg}); it stays in flight"
                    ));
                }
            }
            Some(Req::Trades { client_id, .. }) => self.notices.push(format!(
                "order API: myTrades for {client_id} refused (code {code}: {msg}); it stays in flight"
            )),
            Some(Req::Logon) => {
                self.notices.push(format!(
                    "order API: session.logon refused (code {code}: {msg}); every request is signed"
                ));
                if self.cfg.user_stream {
                    // Any key can subscribe with a signature.
                    self.subscribe_user_stream(false);
                }
            }
            Some(Req::UserStream) | None => self.notices.push(format!(
                "order API: request refused (status {status}, code {code}: {msg})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The session's bookkeeping, fed hand-written venue frames (the socket side is covered by
    //! the loopback tests in `tests/order_session.rs` and `tests/orders_crash.rs`).

    use super::*;
    use crate::binance::api::{Credentials, Secret};
    use engine::event::OrderIdFloor;
    use engine::event::Side;
    use engine::fixed::Price;
    use engine::ring::{event_ring, OnFull};

    const Q: i64 = 100_000_000;

    struct Rig {
        s: OrderSession,
        rx: rtrb::Consumer<Event>,
        cmd: rtrb::Producer<OrderCommand>,
    }

    fn id(n: u64) -> ClientOrderId {
        ClientOrderId::new(ClientOrderId::NS_ENGINE, n)
    }

    /// A session tracking `tl-1`, a GTC buy of 1 BTCUSDT (as if recovered from a journal).
    fn rig() -> Rig {
        let creds = Credentials::hmac("unitTestKey0123456789", Secret::new(b"s".to_vec())).unwrap();
        rig_with(creds, SessionConfig::default(), OrderType::LimitGtc)
    }

    /// [`rig`] with other credentials, configuration and type of `tl-1`.
    fn rig_with(creds: Credentials, cfg: SessionConfig, order_type: OrderType) -> Rig {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(16);
        let (tx, rx) = event_ring(64, OnFull::Block);
        let mut s = OrderSession::new(
            cfg,
            OrderEncoder::new(creds, 5000),
            symbols,
            cmd_rx,
            tx,
            None,
            OrderWake::new(),
            || 1,
            crate::orders::clock::system_wall_ns,
        );
        s.restore(&[RecoveredOrder {
            client_id: id(1),
            symbol: "BTCUSDT".into(),
            req: OrderRequest {
                side: Side::Buy,
                price: Price(100 * Q),
                qty: Qty(Q),
                order_type,
            },
            filled: Qty::ZERO,
            venue_order_id: None,
            acked: false,
            trade_ids: Vec::new(),
            ts_ns: 0,
        }]);
        Rig { s, rx, cmd: cmd_tx }
    }

    impl Rig {
        fn events(&mut self) -> Vec<EventKind> {
            let mut out = Vec::new();
            while let Ok(e) = self.rx.pop() {
                out.push(e.kind);
            }
            out
        }
    }

    fn report(x: &str, status: &str, last: &str, cum: &str, trade: u64) -> String {
        format!(
            r#"{{"event":{{"e":"executionReport","E":1,"s":"BTCUSDT","c":"{c}","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"100.00000000","C":"{orig}","x":"{x}","X":"{status}","r":"NONE","i":9,"l":"{last}","z":"{cum}","L":"100.00000000","n":"0","N":"USDT","T":1,"t":{trade}}}}}"#,
            c = if x == "CANCELED" { "cxl-7" } else { "tl-1" },
            orig = if x == "CANCELED" { "tl-1" } else { "" },
        )
    }

    fn cancel_reply(executed: &str) -> String {
        format!(
            r#"{{"id":77,"status":200,"result":{{"symbol":"BTCUSDT","origClientOrderId":"tl-1","orderId":9,"clientOrderId":"cxl-7","origQty":"1.00000000","executedQty":"{executed}","status":"CANCELED"}}}}"#
        )
    }

    #[test]
    fn the_venues_second_word_is_dropped() {
        let mut r = rig();
        r.s.on_frame(report("NEW", "NEW", "0", "0", 0).as_bytes());
        r.s.on_frame(
            br#"{"id":3,"status":200,"result":{"symbol":"BTCUSDT","orderId":9,"clientOrderId":"tl-1","status":"NEW"}}"#,
        );
        let ack = OrderAck {
            client_id: id(1),
            venue_order_id: 9,
        };
        assert_eq!(r.events(), vec![EventKind::OrderAck(ack)]);
        r.s.on_frame(cancel_reply("0.00000000").as_bytes());
        r.s.on_frame(report("CANCELED", "CANCELED", "0", "0", 0).as_bytes());
        let canceled = OrderCanceled {
            client_id: id(1),
            leaves_qty: Qty(Q),
        };
        assert_eq!(r.events(), vec![EventKind::OrderCanceled(canceled)]);
        assert_eq!(r.s.counters().duplicates, 2);
        assert_eq!(r.s.in_flight(), 0);
    }

    #[test]
    fn a_cancel_reply_ahead_of_its_fill_waits_for_it() {
        let mut r = rig();
        // The reply says 0.4 filled before the cancel, but that fill's report is still on its way.
        r.s.on_frame(cancel_reply("0.40000000").as_bytes());
        assert_eq!(r.events(), vec![]);
        r.s.on_frame(
            report("TRADE", "PARTIALLY_FILLED", "0.40000000", "0.40000000", 55).as_bytes(),
        );
        let ev = r.events();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(
            matches!(ev[0], EventKind::Fill(f) if f.trade_id == 55 && f.qty == Qty(40_000_000))
        );
        assert_eq!(
            ev[1],
            EventKind::OrderCanceled(OrderCanceled {
                client_id: id(1),
                leaves_qty: Qty(60_000_000)
            })
        );
        // The report of the cancel, and the fill sent again, change nothing.
        r.s.on_frame(report("CANCELED", "CANCELED", "0", "0.40000000", 0).as_bytes());
        r.s.on_frame(
            report("TRADE", "PARTIALLY_FILLED", "0.40000000", "0.40000000", 55).as_bytes(),
        );
        assert_eq!(r.events(), vec![]);
        assert_eq!(r.s.counters().duplicates, 2);
    }

    #[test]
    fn reconciliation_settles_orders_the_venue_never_saw() {
        let mut r = rig();
        r.s.on_open(); // asks userDataStream.subscribe (id 1), then order.status for tl-1 (id 2)
        r.s.on_frame(
            br#"{"id":2,"status":400,"error":{"code":-2013,"msg":"Order does not exist."}}"#,
        );
        assert_eq!(
            r.events(),
            vec![EventKind::OrderReject(OrderReject {
                client_id: id(1),
                reason: RejectReason::Venue
            })]
        );
        assert_eq!(r.s.counters().reconciled_orders, 1);
        assert_eq!(r.s.in_flight(), 0);
    }

    #[test]
    fn an_unknown_outcome_keeps_the_order_in_flight() {
        let mut r = rig();
        r.s.on_open();
        r.s.on_frame(br#"{"id":2,"status":503,"error":{"code":-1007,"msg":"Timeout waiting for response from backend server."}}"#);
        assert_eq!(r.events(), vec![]);
        assert_eq!(r.s.counters().unknown_outcomes, 1);
        assert_eq!(r.s.in_flight(), 1);
        assert!(r
            .s
            .take_notices()
            .iter()
            .any(|n| n.contains("outcome unknown")));
    }

    #[test]
    fn a_venue_without_order_status_still_closes_orders_that_cannot_rest() {
        // tl-1 is a GTC buy: it may rest, so it stays in flight; an IOC is closed, loudly.
        let mut r = rig();
        r.s.on_open();
        r.s.on_frame(br#"{"id":2,"status":400,"error":{"code":-1100,"msg":"Unknown method."}}"#);
        assert_eq!(r.events(), vec![]);
        assert_eq!(r.s.in_flight(), 1);
        let mut ioc = rig();
        ioc.s.orders.get_mut(&id(1)).unwrap().resting = false;
        ioc.s.on_open();
        ioc.s
            .on_frame(br#"{"id":2,"status":400,"error":{"code":-1100,"msg":"Unknown method."}}"#);
        assert_eq!(
            ioc.events(),
            vec![EventKind::OrderCanceled(OrderCanceled {
                client_id: id(1),
                leaves_qty: Qty(Q)
            })]
        );
        assert!(ioc.s.take_notices().iter().any(|n| n.contains("UNKNOWN")));
    }

    #[test]
    fn commands_while_disconnected_are_refused_at_once() {
        let mut r = rig();
        let req = OrderRequest {
            side: Side::Sell,
            price: Price(101 * Q),
            qty: Qty(Q),
            order_type: OrderType::LimitIoc,
        };
        r.cmd
            .push(OrderCommand::New {
                client_id: id(2),
                symbol: SymbolId(0),
                req,
                cause_ns: 1,
            })
            .unwrap();
        assert_eq!(r.s.pump(None), 1);
        assert_eq!(
            r.events(),
            vec![EventKind::OrderReject(OrderReject {
                client_id: id(2),
                reason: RejectReason::Disconnected
            })]
        );
        assert_eq!(r.s.counters().refused_disconnected, 1);
    }

    /// The queued request whose method is `method`, parsed.
    fn queued(r: &Rig, method: &str) -> Option<serde_json::Value> {
        r.s.queued
            .iter()
            .map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap())
            .find(|v| v["method"] == method)
    }

    #[test]
    fn hmac_keys_subscribe_with_the_signed_request_at_once() {
        let mut r = rig();
        r.s.on_open();
        assert_eq!(r.s.user_stream(), UserStream::Pending);
        assert!(queued(&r, "userDataStream.subscribe").is_none());
        let v = queued(&r, "userDataStream.subscribe.signature").expect("signed subscribe");
        let p = &v["params"];
        assert_eq!(p["apiKey"], "unitTestKey0123456789");
        assert_eq!(p["recvWindow"], 5000);
        assert!(p["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        // The signature is HMAC-SHA256 (secret "s") of the sorted params, in hex.
        let payload = format!(
            "apiKey=unitTestKey0123456789&recvWindow=5000&timestamp={}",
            p["timestamp"]
        );
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"s").unwrap();
        hmac::Mac::update(&mut mac, payload.as_bytes());
        let want: String = hmac::Mac::finalize(mac)
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(p["signature"], want);
        let id = v["id"].as_u64().unwrap();
        r.s.on_frame(
            format!(r#"{{"id":{id},"status":200,"result":{{"subscriptionId":0}}}}"#).as_bytes(),
        );
        assert_eq!(r.s.user_stream(), UserStream::Active);
        assert_eq!(r.s.counters().user_streams, 1);
        assert!(r
            .s
            .take_notices()
            .iter()
            .any(|n| n.contains("subscribe.signature")));
    }

    #[test]
    fn an_accepted_logon_is_followed_by_the_plain_subscribe() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let creds = Credentials::ed25519("edUnitKey0123456789", key).unwrap();
        let cfg = SessionConfig {
            session_logon: true,
            ..SessionConfig::default()
        };
        let mut r = rig_with(creds, cfg, OrderType::LimitGtc);
        r.s.on_open();
        // Nothing is subscribed before the logon is answered.
        assert!(queued(&r, "session.logon").is_some());
        assert!(queued(&r, "userDataStream.subscribe").is_none());
        assert!(queued(&r, "userDataStream.subscribe.signature").is_none());
        assert_eq!(r.s.user_stream(), UserStream::Pending);
        let logon = queued(&r, "session.logon").unwrap()["id"].as_u64().unwrap();
        r.s.on_frame(format!(r#"{{"id":{logon},"status":200,"result":{{"apiKey":"edUnitKey0123456789","authorizedSince":1,"connectedSince":1,"returnRateLimits":false,"serverTime":1,"userDataStream":false}}}}"#).as_bytes());
        let v = queued(&r, "userDataStream.subscribe").expect("plain subscribe");
        assert!(v.get("params").is_none(), "{v}");
        assert!(queued(&r, "userDataStream.subscribe.signature").is_none());
        let id = v["id"].as_u64().unwrap();
        r.s.on_frame(format!(r#"{{"id":{id},"status":200,"result":{{}}}}"#).as_bytes());
        assert_eq!(r.s.user_stream(), UserStream::Active);
        assert_eq!((r.s.counters().logons, r.s.counters().user_streams), (1, 1));
        // A refused logon falls back to the signed subscription (any key may use it).
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let creds = Credentials::ed25519("edUnitKey0123456789", key).unwrap();
        let cfg = SessionConfig {
            session_logon: true,
            ..SessionConfig::default()
        };
        let mut r = rig_with(creds, cfg, OrderType::LimitGtc);
        r.s.on_open();
        let logon = queued(&r, "session.logon").unwrap()["id"].as_u64().unwrap();
        r.s.on_frame(format!(r#"{{"id":{logon},"status":401,"error":{{"code":-1022,"msg":"Signature for this request is not valid."}}}}"#).as_bytes());
        assert!(queued(&r, "userDataStream.subscribe.signature").is_some());
    }

    #[test]
    fn a_refused_subscription_is_counted_reported_and_gtc_orders_are_refused() {
        let mut r = rig();
        r.s.on_open();
        let rid = queued(&r, "userDataStream.subscribe.signature").unwrap()["id"]
            .as_u64()
            .unwrap();
        r.s.on_frame(format!(r#"{{"id":{rid},"status":401,"error":{{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}}}}"#).as_bytes());
        assert_eq!(r.s.user_stream(), UserStream::Refused);
        assert_eq!(r.s.counters().user_stream_refused, 1);
        let notices = r.s.take_notices();
        assert!(
            notices.iter().any(|n| n.starts_with("error:")
                && n.contains("-2015")
                && n.contains("Invalid API-key")),
            "{notices:?}"
        );
        let gtc = OrderRequest {
            side: Side::Buy,
            price: Price(99 * Q),
            qty: Qty(Q),
            order_type: OrderType::LimitGtc,
        };
        r.cmd
            .push(OrderCommand::New {
                client_id: id(2),
                symbol: SymbolId(0),
                req: gtc,
                cause_ns: 1,
            })
            .unwrap();
        assert_eq!(r.s.pump(None), 1);
        assert_eq!(
            r.events(),
            vec![EventKind::OrderReject(OrderReject {
                client_id: id(2),
                reason: RejectReason::NoUserStream
            })]
        );
        assert_eq!(r.s.counters().refused_no_user_stream, 1);
        assert_eq!(r.s.counters().placed, 0);
        // Off, GTC orders go (here: no socket, so they are refused as disconnected instead).
        let cfg = SessionConfig {
            require_user_stream: false,
            ..SessionConfig::default()
        };
        let creds = Credentials::hmac("unitTestKey0123456789", Secret::new(b"s".to_vec())).unwrap();
        let mut off = rig_with(creds, cfg, OrderType::LimitGtc);
        off.s.on_open();
        off.cmd
            .push(OrderCommand::New {
                client_id: id(2),
                symbol: SymbolId(0),
                req: gtc,
                cause_ns: 1,
            })
            .unwrap();
        off.s.pump(None);
        assert_eq!(off.s.counters().refused_no_user_stream, 0);
    }

    #[test]
    fn a_full_reply_settles_an_ioc_and_the_later_reports_are_duplicates() {
        let creds = Credentials::hmac("unitTestKey0123456789", Secret::new(b"s".to_vec())).unwrap();
        let mut r = rig_with(creds, SessionConfig::default(), OrderType::LimitIoc);
        r.s.requests.insert(9, Req::Place(id(1)));
        r.s.on_frame(br#"{"id":9,"status":200,"result":{"symbol":"BTCUSDT","orderId":9,"orderListId":-1,"clientOrderId":"tl-1","transactTime":1,"price":"100.00000000","origQty":"1.00000000","executedQty":"0.40000000","origQuoteOrderQty":"0.00000000","cummulativeQuoteQty":"40.00000000","status":"EXPIRED","timeInForce":"IOC","type":"LIMIT","side":"BUY","workingTime":1,"fills":[{"price":"100.00000000","qty":"0.40000000","commission":"0.04000000","commissionAsset":"USDT","tradeId":55}],"selfTradePreventionMode":"NONE"}}"#);
        let ev = r.events();
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert_eq!(
            ev[0],
            EventKind::OrderAck(OrderAck {
                client_id: id(1),
                venue_order_id: 9
            })
        );
        assert_eq!(
            ev[1],
            EventKind::Fill(Fill {
                client_id: id(1),
                trade_id: 55,
                price: Price(100 * Q),
                qty: Qty(40_000_000),
                fee: 4_000_000,
            })
        );
        assert_eq!(
            ev[2],
            EventKind::OrderCanceled(OrderCanceled {
                client_id: id(1),
                leaves_qty: Qty(60_000_000)
            })
        );
        assert_eq!(r.s.in_flight(), 0);
        assert_eq!(r.s.counters().settled_by_reply, 1);
        // The user data stream says it all again: the NEW, the trade and the expiry.
        r.s.on_frame(report("NEW", "NEW", "0", "0", 0).as_bytes());
        r.s.on_frame(
            report("TRADE", "PARTIALLY_FILLED", "0.40000000", "0.40000000", 55).as_bytes(),
        );
        r.s.on_frame(report("EXPIRED", "EXPIRED", "0", "0.40000000", 0).as_bytes());
        assert_eq!(r.events(), vec![]);
        assert_eq!(r.s.counters().duplicates, 3);
        assert_eq!((r.s.counters().fills, r.s.counters().canceled), (1, 1));
    }

    #[test]
    fn a_result_reply_with_unseen_fills_asks_my_trades() {
        let creds = Credentials::hmac("unitTestKey0123456789", Secret::new(b"s".to_vec())).unwrap();
        let mut r = rig_with(creds, SessionConfig::default(), OrderType::Market);
        r.s.requests.insert(9, Req::Place(id(1)));
        r.s.on_frame(br#"{"id":9,"status":200,"result":{"symbol":"BTCUSDT","orderId":9,"orderListId":-1,"clientOrderId":"tl-1","transactTime":1,"price":"0.00000000","origQty":"1.00000000","executedQty":"1.00000000","origQuoteOrderQty":"0.00000000","cummulativeQuoteQty":"100.00000000","status":"FILLED","timeInForce":"GTC","type":"MARKET","side":"BUY","workingTime":1,"selfTradePreventionMode":"NONE"}}"#);
        assert!(queued(&r, "myTrades").is_some());
        assert_eq!(r.s.in_flight(), 1);
    }

    #[test]
    fn venue_ids_beyond_the_next_one_raise_the_cores_numbering_once_the_check_is_in() {
        let first = ClientOrderId::engine_number(10, 1);
        let mut r = rig();
        r.s.set_next_client_number(first);
        // userDataStream.subscribe (id 1), order.status for tl-1 (id 2), then the check:
        // openOrders.status (id 3) and allOrders (id 4).
        r.s.on_open();
        assert!(r.s.ids.is_waiting());
        r.s.on_frame(br#"{"id":3,"status":200,"result":[]}"#);
        assert_eq!(r.events(), vec![]);
        let ahead = ClientOrderId::new(
            ClientOrderId::NS_ENGINE,
            ClientOrderId::engine_number(10, 7),
        );
        let all = format!(
            r#"{{"id":4,"status":200,"result":[{{"symbol":"BTCUSDT","orderId":9,"clientOrderId":"{ahead}","status":"FILLED"}}]}}"#
        );
        r.s.on_frame(all.as_bytes());
        let floor = ClientOrderId::engine_number(11, 1);
        assert_eq!(
            r.events(),
            vec![EventKind::OrderIdFloor(OrderIdFloor { next: floor })]
        );
        assert_eq!(r.s.counters().id_floor_raises, 1);
        assert_eq!(r.s.client_number_floor(), floor);
        assert!(!r.s.ids.is_waiting());
        assert!(r
            .s
            .take_notices()
            .iter()
            .any(|n| n.contains("numbering moves to tl-11-1")));
        // A reconnect checks again; our own ids at the venue change nothing.
        r.s.on_down();
        r.s.on_open();
        let mine = format!(
            r#"{{"id":7,"status":200,"result":[{{"symbol":"BTCUSDT","orderId":9,"clientOrderId":"{ahead}","status":"FILLED"}}]}}"#
        );
        r.s.on_frame(mine.as_bytes());
        r.s.on_frame(br#"{"id":8,"status":200,"result":[]}"#);
        assert_eq!(r.events(), vec![]);
        assert_eq!(r.s.id_check().checks, 2);
    }

    #[test]
    fn garbage_is_counted_and_reported() {
        let mut r = rig();
        r.s.on_frame(b"{\"id\":");
        r.s.on_frame(b"\xff\xfe");
        assert_eq!(r.s.counters().bad_frames, 2);
        assert_eq!(r.s.take_notices().len(), 2);
        assert_eq!(r.events(), vec![]);
    }
}
