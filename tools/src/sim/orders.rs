//! The simulator's order side: Binance's WebSocket API order requests on the market-data
//! connections, matched by [`super::matching`] against the feed the simulator publishes, with
//! `executionReport` events pushed to the connection that placed each order; and the probe
//! measurement.
//!
//! # Where the feed comes in
//!
//! - **Depth**: an order arriving reads the simulator's own L2 book of its symbol (the one REST
//!   snapshots come from), which the publisher updates before it hands a diff to any connection.
//! - **Trades**: a *tap* is registered with the publisher before it starts, ahead of every
//!   connection, for the `<symbol>@trade` streams. It is drained (under the venue's lock) by a
//!   matcher thread, and by every order request before it is handled, so an order always sees
//!   every trade published before it arrived and none after; trades at or through resting
//!   client orders fill them ([`MatchBook::on_trade`]). While no client order rests, the tap's
//!   frames are dropped without decoding.
//!
//! # Accounts and sessions
//!
//! Orders belong to the account of their `apiKey`: `order.cancel`, `openOrders.status`,
//! `order.status` and `myTrades` see that account's orders and fills only (another account's
//! order is `-2013 Order does not exist.`), and a client order id must be unique among the
//! account's open orders of a symbol. Execution reports go to the connection that placed the
//! order once it subscribed that account's user data stream, as Binance documents it: with
//! `userDataStream.subscribe` on a connection whose `session.logon` was accepted, or with the
//! signed `userDataStream.subscribe.signature` on any connection (answered
//! `{"subscriptionId":N}`); a connection that did not subscribe gets no reports
//! ([`super::auth`]; [`super::SimAuth::Lenient`] sends them anyway, as the simulator did before
//! issue #15). Orders outlive their connection, as on Binance; reports for a closed connection's
//! orders are dropped and counted ([`super::OrderStats::events_dropped`]).
//!
//! # Reconciliation
//!
//! Every execution is also booked, under the same lock, in the venue's bounded history
//! ([`super::history`]: the last 100 000 finished orders and the last 100 000 fills) and, with
//! [`super::SimConfig::ledger`], in the ledger ([`super::ledger`]). So a client that lost its
//! connection (and the reports on it) finds its orders with `order.status`, open or finished,
//! and its fills with `myTrades`, under the trade ids and commissions the reports carried.
//!
//! # Threads and ordering
//!
//! Requests are handled on their connection's thread, under one venue-wide lock (then the book
//! lock, never the other way round). Reports for the requesting connection are written by it
//! directly after its reply; reports for orders of other connections (a resting order met by
//! someone's aggressive order, or filled by a feed trade) go to their connection's event queue,
//! which that thread writes as soon as it wakes. A connection's queued events are always written
//! before the replies to its later requests. With [`super::SimConfig::order_latency`] a
//! connection's requests wait that long, in order, before they are handled.
//!
//! # Probes
//!
//! An `order.place` whose `newClientOrderId` is `probe-<trade id>` is stamped on arrival, on
//! `CLOCK_MONOTONIC` (the time its connection's reader thread read the bytes that completed it),
//! before anything else happens to it; [`super::VenueSim::probe_latencies`] joins these stamps
//! with the trade frames' send stamps ([`super::VenueSim::send_times`]).

use super::auth::SimAuth;
use super::conn::{ConnShared, Registration};
use super::history::{History, MAX_FINISHED_ORDERS, MAX_TRADES};
use super::ledger::Ledger;
use super::matching::{Exec, ExecType, MatchBook, Order};
use super::publisher::Frame;
use super::wsapi::{self, ApiError, Classified, Envelope, Method, Names};
use super::{Inner, SimConfig, C};
use crossbeam_channel::{bounded, Receiver, Select, Sender, TryRecvError, TrySendError};
use engine::event::{ClientOrderId, EventKind, MarketEvent};
use engine::symbol::SymbolTable;
use feeds::binance::market::BinanceDecoder;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Frames the trade tap buffers (it is drained at least every [`IDLE_DRAIN`]).
pub(crate) const TAP_QUEUE: usize = 1 << 16;
/// How often the matcher thread drops the tap's frames while no client order rests.
const IDLE_DRAIN: Duration = Duration::from_millis(1);
/// The matcher thread looks for a stop at least this often.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Distinct API keys (accounts) served.
const MAX_ACCOUNTS: usize = 1024;
/// Events queued per connection for its thread to write.
const SESSION_QUEUE: usize = 1 << 16;
/// Resting orders per symbol.
const MAX_RESTING: usize = 100_000;
/// Id of the tap in the publisher's list (never a real connection's).
const TAP_ID: u64 = u64::MAX;

/// Wall-clock milliseconds, Binance's `E`, `T` and `transactTime`.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Percentiles of latency samples, ns (nearest rank).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl LatencySummary {
    /// The summary of `samples` (any order); all zero for none.
    pub fn from_samples(samples: &[u64]) -> LatencySummary {
        if samples.is_empty() {
            return LatencySummary::default();
        }
        let mut s = samples.to_vec();
        s.sort_unstable();
        let at = |p: f64| {
            let rank = (p * s.len() as f64).ceil() as usize;
            s[rank.clamp(1, s.len()) - 1]
        };
        LatencySummary {
            count: s.len() as u64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: s[s.len() - 1],
        }
    }

    /// One JSON object: `{"count":..,"p50":..,"p90":..,"p99":..,"p999":..,"max":..}` (ns).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"count\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
            self.count, self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = |v: u64| {
            if v < 1_000 {
                format!("{v} ns")
            } else if v < 1_000_000 {
                format!("{:.2} µs", v as f64 / 1e3)
            } else {
                format!("{:.2} ms", v as f64 / 1e6)
            }
        };
        write!(
            f,
            "{} samples, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
            self.count,
            ns(self.p50),
            ns(self.p90),
            ns(self.p99),
            ns(self.p999),
            ns(self.max)
        )
    }
}

/// The tap's registration with the publisher: the trade streams of every symbol, a queue of
/// `capacity` frames.
pub(crate) fn tap(symbols: &SymbolTable, capacity: usize) -> (Registration, Receiver<Arc<Frame>>) {
    let subs = symbols
        .iter()
        .map(|(_, n)| format!("{}@trade", n.to_ascii_lowercase()))
        .collect();
    let shared = Arc::new(ConnShared {
        id: TAP_ID,
        all_streams: false,
        subs_version: AtomicU64::new(1),
        subs: Mutex::new(subs),
        enqueued: AtomicU64::new(0),
        handled: AtomicU64::new(0),
        frames_sent: AtomicU64::new(0),
        bytes_sent: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        sock: None,
    });
    let (tx, rx) = bounded(capacity.max(1));
    (Registration { shared, tx }, rx)
}

/// Each connection's event queue, by connection id.
type Sessions = Vec<(u64, Sender<String>)>;

/// Everything behind the venue's lock.
struct State {
    books: Vec<MatchBook>,
    names: Vec<Names>,
    tap: Option<Receiver<Arc<Frame>>>,
    decoder: BinanceDecoder,
    events: Vec<MarketEvent>,
    execs: Vec<Exec>,
    accounts: Vec<String>,
    next_order_id: u64,
    /// Finished orders and fills, for `order.status` and `myTrades`.
    history: History,
    /// The ledger, if one was asked for.
    ledger: Option<Ledger>,
    /// Every user data stream subscription (strict only).
    user_streams: Vec<StreamSub>,
    /// The next subscription's id (per venue; Binance numbers them per connection).
    next_subscription: u64,
}

/// One user data stream subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StreamSub {
    /// The connection the reports go to.
    conn: u64,
    /// The account whose orders are reported.
    account: u32,
    /// `subscriptionId`.
    id: u64,
    /// Made with `userDataStream.subscribe` (ended by `session.logout`, as Binance documents:
    /// "session.logout will only close the subscription created with userDataStream.subscribe
    /// but not subscriptions opened with userDataStream.subscribe.signature").
    by_session: bool,
}

/// Books the executions of symbol `sym` in the history and the ledger.
fn book_keep(history: &mut History, ledger: &mut Option<Ledger>, sym: usize, execs: &[Exec]) {
    history.record(sym, execs);
    if let Some(l) = ledger.as_mut() {
        l.fills(execs);
    }
}

/// The reply to a query for an order the account does not have (or no longer has).
fn no_such_order() -> ApiError {
    ApiError::new(-2013, "Order does not exist.")
}

impl State {
    /// The account of an API key, interned.
    fn account(&mut self, key: &str) -> Result<u32, ApiError> {
        if let Some(i) = self.accounts.iter().position(|a| a == key) {
            return Ok(i as u32);
        }
        if self.accounts.len() >= MAX_ACCOUNTS {
            return Err(ApiError::new(
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            ));
        }
        self.accounts.push(key.to_string());
        Ok(self.accounts.len() as u32 - 1)
    }

    /// The account of an API key, if it has ever placed, canceled or listed orders.
    fn find_account(&self, key: &str) -> Option<u32> {
        self.accounts
            .iter()
            .position(|a| a == key)
            .map(|i| i as u32)
    }
}

/// The order side of one simulator.
pub(crate) struct Venue {
    /// Order requests are answered (else refused with an error).
    pub(crate) enabled: bool,
    /// How requests are authenticated.
    pub(crate) auth: SimAuth,
    /// How long a request waits before it is handled.
    pub(crate) latency: Duration,
    state: Mutex<State>,
    /// Each connection's event queue.
    sessions: Mutex<Sessions>,
    /// `(trade id, arrival ns)` of probe orders.
    probes: Mutex<Vec<(u64, u64)>>,
    probe_capacity: usize,
    /// Client orders resting, over every symbol.
    resting: AtomicUsize,
}

impl std::fmt::Debug for Venue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Venue")
            .field("enabled", &self.enabled)
            .field("latency", &self.latency)
            .field("resting", &self.resting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Venue {
    /// The venue of `symbols` (no tap yet), writing `ledger` if given.
    pub(crate) fn new(cfg: &SimConfig, symbols: &SymbolTable, ledger: Option<Ledger>) -> Venue {
        let mut names = vec![Names::of(""); symbols.len()];
        for (id, n) in symbols.iter() {
            if let Some(slot) = names.get_mut(id.index()) {
                *slot = Names::of(n);
            }
        }
        Venue {
            enabled: cfg.order_api,
            auth: cfg.auth.clone(),
            latency: cfg.order_latency,
            state: Mutex::new(State {
                books: (0..symbols.len())
                    .map(|_| MatchBook::new(MAX_RESTING))
                    .collect(),
                names,
                tap: None,
                decoder: BinanceDecoder::new(symbols.clone()),
                events: Vec::with_capacity(64),
                execs: Vec::with_capacity(256),
                accounts: Vec::new(),
                next_order_id: 1,
                history: History::new(MAX_FINISHED_ORDERS, MAX_TRADES),
                ledger,
                user_streams: Vec::new(),
                next_subscription: 0,
            }),
            sessions: Mutex::new(Vec::new()),
            probes: Mutex::new(Vec::with_capacity(cfg.send_times_capacity.min(1 << 20))),
            probe_capacity: cfg.send_times_capacity,
            resting: AtomicUsize::new(0),
        }
    }

    /// Connects the trade tap (before the publisher starts).
    pub(crate) fn attach_tap(&self, rx: Receiver<Arc<Frame>>) {
        self.lock().tap = Some(rx);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_session(&self, id: u64) -> Receiver<String> {
        let (tx, rx) = bounded(SESSION_QUEUE);
        self.lock_sessions().push((id, tx));
        rx
    }

    fn close_session(&self, id: u64) {
        self.lock_sessions().retain(|(i, _)| *i != id);
        self.lock().user_streams.retain(|s| s.conn != id);
    }

    /// Subscribes connection `me` to the user data stream of `key`'s account; returns the
    /// subscription id (one per account and connection, as on Binance).
    fn subscribe(&self, me: u64, key: &str, by_session: bool) -> Result<u64, ApiError> {
        self.auth.may_stream(key)?;
        let mut st = self.lock();
        let account = st.account(key)?;
        let found = st
            .user_streams
            .iter()
            .find(|s| s.conn == me && s.account == account);
        if let Some(s) = found {
            return Ok(s.id);
        }
        let id = st.next_subscription;
        st.next_subscription += 1;
        st.user_streams.push(StreamSub {
            conn: me,
            account,
            id,
            by_session,
        });
        Ok(id)
    }

    /// Ends connection `me`'s subscriptions (`session_only`: those of `userDataStream.subscribe`).
    fn unsubscribe(&self, me: u64, session_only: bool) {
        self.lock()
            .user_streams
            .retain(|s| s.conn != me || (session_only && !s.by_session));
    }

    fn record_probe(&self, trade_id: u64, arrival_ns: u64) {
        let mut p = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() < self.probe_capacity {
            p.push((trade_id, arrival_ns));
        }
    }

    /// Probe latencies: for every probe order whose trade's send time is known, arrival minus
    /// send, ns, in arrival order.
    pub(crate) fn probe_latencies(&self, send_times: &[(u64, u64)]) -> Vec<u64> {
        let sent: HashMap<u64, u64> = send_times.iter().copied().collect();
        let probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        probes
            .iter()
            .filter_map(|(tid, at)| sent.get(tid).map(|s| at.saturating_sub(*s)))
            .collect()
    }

    /// Applies every trade the tap holds. Reports for connection `me` go to `mine`, the others
    /// to their connections' queues. False once the publisher has gone.
    fn drain_tap(
        &self,
        inner: &Inner,
        st: &mut State,
        me: Option<u64>,
        mine: &mut Vec<String>,
    ) -> bool {
        loop {
            let f = match st.tap.as_ref().map(Receiver::try_recv) {
                Some(Ok(f)) => f,
                Some(Err(TryRecvError::Empty)) | None => return true,
                Some(Err(TryRecvError::Disconnected)) => return false,
            };
            if self.resting.load(Ordering::Acquire) == 0 {
                continue; // nothing a trade could fill
            }
            let t_ms = now_ms();
            let State {
                books,
                names,
                decoder,
                events,
                execs,
                history,
                ledger,
                user_streams,
                ..
            } = &mut *st;
            events.clear();
            if decoder.decode(&f.combined, 0, events).is_err() {
                continue;
            }
            for e in events.iter() {
                if let EventKind::Trade(t) = e.kind {
                    let sym = e.symbol.index();
                    if let Some(book) = books.get_mut(sym) {
                        execs.clear();
                        book.on_trade(t.price, t.qty, t_ms, execs);
                        if !execs.is_empty() {
                            book_keep(history, ledger, sym, execs);
                            let names = &names[sym];
                            self.dispatch(inner, names, execs, user_streams, me, mine);
                        }
                    }
                }
            }
            self.update_resting(st);
        }
    }

    /// Writes the reports of `execs`: `me`'s into `mine`, the others' into their queues;
    /// strict, only to connections that subscribed the order's account (`user_streams`).
    fn dispatch(
        &self,
        inner: &Inner,
        names: &Names,
        execs: &[Exec],
        user_streams: &[StreamSub],
        me: Option<u64>,
        mine: &mut Vec<String>,
    ) {
        let fills = execs.iter().filter(|e| e.exec == ExecType::Trade).count();
        inner.count(C::OrderFills, fills as u64);
        let strict = self.auth.is_strict();
        let mut sessions: Option<MutexGuard<'_, Sessions>> = None;
        for e in execs {
            let subscribed = user_streams
                .iter()
                .any(|s| s.conn == e.order.owner && s.account == e.order.account);
            if strict && !subscribed {
                continue; // no user data stream: Binance sends nothing
            }
            let report = wsapi::execution_report(names, e);
            if Some(e.order.owner) == me {
                mine.push(report);
                continue;
            }
            let s = sessions.get_or_insert_with(|| self.lock_sessions());
            let sent = match s.iter().find(|(id, _)| *id == e.order.owner) {
                Some((_, tx)) => match tx.try_send(report) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
                },
                None => false,
            };
            if !sent {
                inner.count(C::OrderEventsDropped, 1);
            }
        }
    }

    fn update_resting(&self, st: &State) {
        let n = st.books.iter().map(MatchBook::resting).sum();
        self.resting.store(n, Ordering::Release);
    }

    /// Takes the venue's lock for a request of connection `me`: first the events other threads
    /// queued for it, then the trades published so far.
    fn begin<'a>(
        &'a self,
        inner: &Inner,
        me: u64,
        events: &Receiver<String>,
        out: &mut Vec<String>,
    ) -> MutexGuard<'a, State> {
        let mut st = self.lock();
        out.extend(events.try_iter());
        self.drain_tap(inner, &mut st, Some(me), out);
        st
    }

    fn place(
        &self,
        inner: &Inner,
        me: u64,
        events: &Receiver<String>,
        id: &str,
        req: wsapi::PlaceReq,
        out: &mut Vec<String>,
    ) {
        let mut st = self.begin(inner, me, events, out);
        let t_ms = now_ms();
        let account = match st.account(&req.api_key) {
            Ok(a) => a,
            Err(e) => {
                if let Some(l) = st.ledger.as_mut() {
                    l.place(req.client_id.as_ref().map(|c| c.as_str()), None, false);
                }
                return error(inner, id, &e, out);
            }
        };
        let order_id = st.next_order_id;
        st.next_order_id += 1;
        let client_id = req
            .client_id
            .unwrap_or_else(|| wsapi::generated_id("sim-", order_id));
        let order = Order::new(
            order_id,
            me,
            account,
            client_id,
            req.side,
            req.ord_type,
            req.tif,
            req.price,
            req.qty,
        );
        let sym = req.symbol.index();
        let State {
            books,
            names,
            execs,
            history,
            ledger,
            user_streams,
            ..
        } = &mut *st;
        execs.clear();
        let Some(book) = books.get_mut(sym) else {
            if let Some(l) = ledger.as_mut() {
                l.place(Some(client_id.as_str()), None, false);
            }
            return error(inner, id, &ApiError::new(-1121, "Invalid symbol."), out);
        };
        let placed = {
            let feeds = inner.lock_books();
            match feeds.get(sym) {
                Some(feed) => book.place(feed, order, t_ms, execs),
                None => book.place(&super::matching::NoFeed, order, t_ms, execs),
            }
        };
        let names = &names[sym];
        if let Some(l) = ledger.as_mut() {
            l.place(Some(client_id.as_str()), Some(order_id), placed.is_ok());
        }
        match placed {
            Ok(()) => {
                inner.count(C::OrdersPlaced, 1);
                let last = execs
                    .iter()
                    .rev()
                    .find(|e| e.order.order_id == order_id)
                    .map_or(order, |e| e.order);
                let fills = execs
                    .iter()
                    .filter(|e| e.order.order_id == order_id && e.exec == ExecType::Trade);
                let result = wsapi::place_result(names, &last, req.resp, fills, t_ms);
                out.push(wsapi::ok_reply(id, &result));
            }
            Err(r) => error(inner, id, &wsapi::reject_error(r), out),
        }
        book_keep(history, ledger, sym, execs);
        self.dispatch(inner, names, execs, user_streams, Some(me), out);
        self.update_resting(&st);
    }

    /// Logs an `order.place` refused before it reached the matching engine (bad parameters,
    /// order API off) in the ledger, under the client id it sent, if any.
    fn refused_place(&self, params: &serde_json::Map<String, serde_json::Value>) {
        let mut st = self.lock();
        let Some(l) = st.ledger.as_mut() else { return };
        let client_id = match params.get("newClientOrderId") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        l.place(client_id.as_deref(), None, false);
    }

    fn cancel(
        &self,
        inner: &Inner,
        me: u64,
        events: &Receiver<String>,
        id: &str,
        req: wsapi::CancelReq,
        out: &mut Vec<String>,
    ) {
        let mut st = self.begin(inner, me, events, out);
        let t_ms = now_ms();
        let account = match st.account(&req.api_key) {
            Ok(a) => a,
            Err(e) => return error(inner, id, &e, out),
        };
        let sym = req.symbol.index();
        let State {
            books,
            names,
            execs,
            history,
            ledger,
            user_streams,
            ..
        } = &mut *st;
        execs.clear();
        // The cancel's own id; without one it is named after the order (patched in below).
        let placeholder = req
            .new_client_id
            .unwrap_or_else(|| wsapi::generated_id("sim-cancel-", 0));
        let canceled = books.get_mut(sym).and_then(|b| {
            b.cancel(
                account,
                req.order_id,
                req.orig_client_id,
                placeholder,
                t_ms,
                execs,
            )
        });
        let names = &names[sym];
        match canceled {
            Some(o) => {
                let cancel_id = match req.new_client_id {
                    Some(c) => c,
                    None => wsapi::generated_id("sim-cancel-", o.order_id),
                };
                for e in execs.iter_mut() {
                    e.cancel_id = Some(cancel_id);
                }
                inner.count(C::OrdersCanceled, 1);
                let result = wsapi::cancel_result(names, &o, &cancel_id, t_ms);
                out.push(wsapi::ok_reply(id, &result));
            }
            None => error(inner, id, &ApiError::new(-2011, "Unknown order sent."), out),
        }
        book_keep(history, ledger, sym, execs);
        self.dispatch(inner, names, execs, user_streams, Some(me), out);
        self.update_resting(&st);
    }

    fn open_orders(
        &self,
        inner: &Inner,
        me: u64,
        events: &Receiver<String>,
        id: &str,
        (symbol, key): (Option<engine::symbol::SymbolId>, String),
        out: &mut Vec<String>,
    ) {
        let mut st = self.begin(inner, me, events, out);
        let account = match st.account(&key) {
            Ok(a) => a,
            Err(e) => return error(inner, id, &e, out),
        };
        let mut list: Vec<(usize, Order)> = Vec::new();
        for (i, b) in st.books.iter().enumerate() {
            if symbol.is_some_and(|s| s.index() != i) {
                continue;
            }
            list.extend(
                b.open_orders()
                    .filter(|o| o.account == account)
                    .map(|o| (i, *o)),
            );
        }
        list.sort_by_key(|(_, o)| o.order_id);
        let mut result = String::with_capacity(64 + list.len() * 400);
        result.push('[');
        for (n, (i, o)) in list.iter().enumerate() {
            if n > 0 {
                result.push(',');
            }
            wsapi::push_order_status(&mut result, &st.names[*i], o);
        }
        result.push(']');
        out.push(wsapi::ok_reply(id, &result));
    }

    /// `order.status`: the account's order, open (in its book) or finished (in the history).
    fn order_status(
        &self,
        inner: &Inner,
        me: u64,
        events: &Receiver<String>,
        id: &str,
        req: wsapi::StatusReq,
        out: &mut Vec<String>,
    ) {
        let st = self.begin(inner, me, events, out);
        let sym = req.symbol.index();
        let found = st.find_account(&req.api_key).and_then(|account| {
            st.books
                .get(sym)
                .and_then(|b| b.find_open(account, req.order_id, req.orig_client_id))
                .or_else(|| {
                    st.history
                        .find(account, sym, req.order_id, req.orig_client_id)
                })
        });
        match (found, st.names.get(sym)) {
            (Some(o), Some(names)) => {
                let mut result = String::with_capacity(512);
                wsapi::push_order_status(&mut result, names, o);
                out.push(wsapi::ok_reply(id, &result));
            }
            _ => error(inner, id, &no_such_order(), out),
        }
    }

    /// `allOrders`: the account's orders on one symbol, open (in its book) and finished (in the
    /// history), by order id: from `orderId` on, or the most recent `limit`.
    fn all_orders(
        &self,
        inner: &Inner,
        me: u64,
        events: &Receiver<String>,
        id: &str,
        req: wsapi::AllOrdersReq,
        out: &mut Vec<String>,
    ) {
        let st = self.begin(inner, me, events, out);
        let sym = req.symbol.index();
        let mut list: Vec<&Order> = Vec::new();
        if let Some(account) = st.find_account(&req.api_key) {
            if let Some(b) = st.books.get(sym) {
                list.extend(b.open_orders().filter(|o| o.account == account));
            }
            list.extend(st.history.orders_of(account, sym));
        }
        list.retain(|o| {
            req.from_order_id.is_none_or(|f| o.order_id >= f)
                && req.start_ms.is_none_or(|s| o.created_ms >= s)
                && req.end_ms.is_none_or(|e| o.created_ms <= e)
        });
        list.sort_by_key(|o| o.order_id);
        let keep = if req.from_order_id.is_some() {
            0..list.len().min(req.limit)
        } else {
            list.len().saturating_sub(req.limit)..list.len()
        };
        let mut result = String::with_capacity(16 + keep.len() * 400);
        result.push('[');
        if let Some(names) = st.names.get(sym) {
            for (n, o) in list[keep].iter().enumerate() {
                if n > 0 {
                    result.push(',');
                }
                wsapi::push_order_status(&mut result, names, o);
            }
        }
        result.push(']');
        out.push(wsapi::ok_reply(id, &result));
    }

    /// `myTrades`: the account's fills on one symbol, oldest first.
    fn my_trades(
        &self,
        inner: &Inner,
        me: u64,
        events: &Receiver<String>,
        id: &str,
        req: wsapi::TradesReq,
        out: &mut Vec<String>,
    ) {
        let st = self.begin(inner, me, events, out);
        let sym = req.symbol.index();
        let trades = match st.find_account(&req.api_key) {
            Some(account) => st.history.trades(account, sym, &req.filter),
            None => Vec::new(),
        };
        let mut result = String::with_capacity(16 + trades.len() * 320);
        result.push('[');
        if let Some(names) = st.names.get(sym) {
            for (n, t) in trades.iter().enumerate() {
                if n > 0 {
                    result.push(',');
                }
                wsapi::push_my_trade(&mut result, names, t);
            }
        }
        result.push(']');
        out.push(wsapi::ok_reply(id, &result));
    }
}

/// Answers an error (counted).
fn error(inner: &Inner, id: &str, e: &ApiError, out: &mut Vec<String>) {
    inner.count(C::OrderErrors, 1);
    out.push(wsapi::err_reply(id, e));
}

/// Runs the matcher thread: applies published trades to resting client orders as they come
/// (and drops them cheaply while nothing rests), until the simulator stops.
pub(crate) fn run_matcher(inner: Arc<Inner>, rx: Receiver<Arc<Frame>>) {
    let venue = &inner.venue;
    let mut none = Vec::new();
    let mut sel = Select::new();
    sel.recv(&rx);
    loop {
        if inner.stopping() {
            return;
        }
        if venue.resting.load(Ordering::Acquire) == 0 {
            std::thread::sleep(IDLE_DRAIN);
        } else if sel.ready_timeout(STOP_POLL).is_err() {
            continue;
        }
        let alive = {
            let mut st = venue.lock();
            venue.drain_tap(&inner, &mut st, None, &mut none)
        };
        if !alive {
            return;
        }
    }
}

/// A request waiting for the configured latency.
#[derive(Debug)]
struct Pending {
    due: Instant,
    req: Envelope,
}

/// The order side of one connection.
pub(crate) struct Desk {
    inner: Arc<Inner>,
    id: u64,
    api_path: bool,
    events: Receiver<String>,
    pending: VecDeque<Pending>,
    /// The API key of `session.logon`: requests without `apiKey` and `signature` use it.
    session_key: Option<String>,
    connected_ms: u64,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("id", &self.id)
            .field("api_path", &self.api_path)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Desk {
    /// The desk of connection `id` (`api_path`: it connected to `/ws-api/v3`), and the queue of
    /// events other threads send it (to wait on; they are taken with [`Desk::take_events`]).
    pub(crate) fn open(inner: &Arc<Inner>, id: u64, api_path: bool) -> (Desk, Receiver<String>) {
        let events = inner.venue.open_session(id);
        let desk = Desk {
            inner: inner.clone(),
            id,
            api_path,
            events: events.clone(),
            pending: VecDeque::new(),
            session_key: None,
            connected_ms: now_ms(),
        };
        (desk, events)
    }

    /// Handles a client message if it is an order-API request, appending what to send to `out`;
    /// false if it is not one (the market-data protocol answers it). `arrival_ns`: when its last
    /// byte was read (`CLOCK_MONOTONIC`).
    pub(crate) fn on_message(
        &mut self,
        text: &[u8],
        arrival_ns: u64,
        out: &mut Vec<String>,
    ) -> bool {
        let req = match wsapi::classify(text, self.api_path) {
            Classified::NotApi => return false,
            Classified::Bad { id, err } => {
                self.inner.count(C::OrderRequests, 1);
                error(&self.inner, &id, &err, out);
                return true;
            }
            Classified::Request(r) => r,
        };
        self.inner.count(C::OrderRequests, 1);
        if req.method == Method::Place {
            let probe = req
                .params
                .get("newClientOrderId")
                .and_then(|v| v.as_str())
                .and_then(ClientOrderId::parse)
                .filter(|c| c.namespace() == ClientOrderId::NS_PROBE);
            if let Some(c) = probe {
                self.inner.count(C::ProbeOrders, 1);
                self.inner.venue.record_probe(c.number(), arrival_ns);
            }
        }
        let latency = self.inner.venue.latency;
        if latency.is_zero() && self.pending.is_empty() {
            self.execute(req, out);
        } else {
            self.pending.push_back(Pending {
                due: Instant::now() + latency,
                req,
            });
        }
        true
    }

    /// When the next delayed request is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.due)
    }

    /// Handles the delayed requests due by `now`.
    pub(crate) fn run_due(&mut self, now: Instant, out: &mut Vec<String>) {
        while self.pending.front().is_some_and(|p| p.due <= now) {
            if let Some(p) = self.pending.pop_front() {
                self.execute(p.req, out);
            }
        }
    }

    /// Appends the events other threads queued for this connection.
    pub(crate) fn take_events(&self, out: &mut Vec<String>) {
        out.extend(self.events.try_iter());
    }

    fn execute(&mut self, mut req: Envelope, out: &mut Vec<String>) {
        let inner = &*self.inner;
        let venue = &inner.venue;
        // An authenticated session: a request without a key and a signature is the session's.
        let by_session = self.session_key.is_some()
            && !req.params.contains_key("apiKey")
            && !req.params.contains_key("signature");
        if let (true, Some(key)) = (by_session, &self.session_key) {
            req.params.insert("apiKey".into(), key.clone().into());
            req.params.insert("signature".into(), "session".into());
        } else if req.method.signed() && venue.enabled {
            if let Err(e) = venue.auth.verify(&req.params, now_ms()) {
                if req.method == Method::Place {
                    venue.refused_place(&req.params);
                }
                return error(inner, req.id.as_str(), &e, out);
            }
        }
        let id = req.id.as_str();
        if !venue.enabled {
            let e = ApiError::new(
                -1020,
                "This operation is not supported: the order API is off.",
            );
            if req.method == Method::Place {
                venue.refused_place(&req.params);
            }
            return error(inner, id, &e, out);
        }
        let (me, events) = (self.id, &self.events);
        match req.method {
            Method::Ping => out.push(wsapi::ok_reply(id, "{}")),
            Method::Time => out.push(wsapi::ok_reply(
                id,
                &format!("{{\"serverTime\":{}}}", now_ms()),
            )),
            Method::UserStreamSubscribe => match (&self.session_key, venue.auth.is_strict()) {
                (Some(key), _) => match venue.subscribe(me, key, true) {
                    Ok(n) => out.push(wsapi::ok_reply(id, &format!("{{\"subscriptionId\":{n}}}"))),
                    Err(e) => error(inner, id, &e, out),
                },
                (None, false) => out.push(wsapi::ok_reply(id, "{\"subscriptionId\":0}")),
                // Binance: "This method requires an authenticated WebSocket connection using
                // Ed25519 keys. Please refer to session.logon."
                (None, true) => error(
                    inner,
                    id,
                    &ApiError {
                        status: 401,
                        code: -1002,
                        msg: "You are not authorized to execute this request.".into(),
                    },
                    out,
                ),
            },
            Method::UserStreamSubscribeSignature => {
                match wsapi::parse_subscribe_signature(&req.params)
                    .and_then(|key| venue.subscribe(me, &key, false))
                {
                    Ok(n) => out.push(wsapi::ok_reply(id, &format!("{{\"subscriptionId\":{n}}}"))),
                    Err(e) => error(inner, id, &e, out),
                }
            }
            Method::UserStreamUnsubscribe => {
                venue.unsubscribe(me, false);
                out.push(wsapi::ok_reply(id, "{}"))
            }
            Method::Logon => match wsapi::parse_logon(&req.params) {
                Ok(key) => {
                    let r = wsapi::session_result(Some(&key), self.connected_ms, now_ms());
                    self.session_key = Some(key);
                    out.push(wsapi::ok_reply(id, &r));
                }
                Err(e) => error(inner, id, &e, out),
            },
            Method::Logout => {
                self.session_key = None;
                venue.unsubscribe(me, true);
                let r = wsapi::session_result(None, self.connected_ms, now_ms());
                out.push(wsapi::ok_reply(id, &r));
            }
            Method::Place => match wsapi::parse_place(&req.params, &inner.symbols) {
                Ok(p) => venue.place(inner, me, events, id, p, out),
                Err(e) => {
                    venue.refused_place(&req.params);
                    error(inner, id, &e, out)
                }
            },
            Method::Cancel => match wsapi::parse_cancel(&req.params, &inner.symbols) {
                Ok(c) => venue.cancel(inner, me, events, id, c, out),
                Err(e) => error(inner, id, &e, out),
            },
            Method::OpenOrders => match wsapi::parse_open_orders(&req.params, &inner.symbols) {
                Ok(q) => venue.open_orders(inner, me, events, id, q, out),
                Err(e) => error(inner, id, &e, out),
            },
            Method::OrderStatus => match wsapi::parse_order_status(&req.params, &inner.symbols) {
                Ok(q) => venue.order_status(inner, me, events, id, q, out),
                Err(e) => error(inner, id, &e, out),
            },
            Method::MyTrades => match wsapi::parse_my_trades(&req.params, &inner.symbols) {
                Ok(q) => venue.my_trades(inner, me, events, id, q, out),
                Err(e) => error(inner, id, &e, out),
            },
            Method::AllOrders => match wsapi::parse_all_orders(&req.params, &inner.symbols) {
                Ok(q) => venue.all_orders(inner, me, events, id, q, out),
                Err(e) => error(inner, id, &e, out),
            },
        }
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.inner.venue.close_session(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_use_nearest_rank() {
        assert_eq!(LatencySummary::from_samples(&[]), LatencySummary::default());
        let s: Vec<u64> = (1..=1000).rev().collect();
        let l = LatencySummary::from_samples(&s);
        assert_eq!(
            (l.count, l.p50, l.p90, l.p99, l.p999, l.max),
            (1000, 500, 900, 990, 999, 1000)
        );
        let one = LatencySummary::from_samples(&[7]);
        assert_eq!((one.p50, one.p999, one.max), (7, 7, 7));
        let v: serde_json::Value = serde_json::from_str(&l.to_json()).unwrap();
        assert_eq!(v["p999"], 999);
        assert!(l.to_string().contains("p99.9 999 ns"));
    }
}
