//! The hub: the one value every thread of a simulator shares ([`Hub`]), and the accept loops
//! that hand each connection its thread.
//!
//! Connection handlers (`conn.rs`, `rest.rs`, `orders.rs`), the publisher and the matcher hold
//! an `Arc<Hub>` and go through its methods: count ([`Hub::count`]), check for the stop
//! ([`Hub::stopping`]), lock the feed's books ([`Hub::lock_books`]), reach the order side
//! ([`Hub::venue`]), register with the publisher ([`Hub::register`]), take a fault asked for
//! on demand ([`Hub::take_injection`]). Its fields are its own.

use super::conn::{self, ConnShared, Registration};
use super::{orders, rest, FaultKind, FaultStats, OrderStats, SimConfig, SimStats};
use crossbeam_channel::Sender;
use engine::book::OrderBook;
use engine::symbol::SymbolTable;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tungstenite::Bytes;

/// Shared counters, by index.
#[derive(Clone, Copy, Debug)]
pub(crate) enum C {
    ConnectionsAccepted,
    ConnectionsRefused,
    HandshakesFailed,
    FramesPublished,
    Subscriptions,
    Unsubscriptions,
    ControlRequests,
    ControlErrors,
    PingsSent,
    PongsReceived,
    ClientPings,
    PongTimeouts,
    SlowDisconnects,
    RestRequests,
    RestErrors,
    SourceErrors,
    DecodeErrors,
    Drops,
    Stalls,
    Garbage,
    Oversized,
    Fragmented,
    InvalidUtf8,
    OrderRequests,
    OrderErrors,
    OrdersPlaced,
    OrdersCanceled,
    OrderFills,
    OrderEventsDropped,
    ProbeOrders,
    Closes,
    Resets,
    Torn,
    TlsRefused,
}

const COUNTERS: usize = C::TlsRefused as usize + 1;

/// Trade send times of the first connection: preallocated, one writer, lock-free readers.
#[derive(Debug)]
struct SendTimes {
    slots: Box<[(AtomicU64, AtomicU64)]>,
    len: AtomicUsize,
}

impl SendTimes {
    fn new(capacity: usize) -> Self {
        SendTimes {
            slots: (0..capacity)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            len: AtomicUsize::new(0),
        }
    }

    /// Records one send; silently full once the capacity is used.
    #[inline]
    fn push(&self, trade_id: u64, ns: u64) {
        let n = self.len.load(Ordering::Relaxed);
        if let Some(slot) = self.slots.get(n) {
            slot.0.store(trade_id, Ordering::Relaxed);
            slot.1.store(ns, Ordering::Relaxed);
            self.len.store(n + 1, Ordering::Release);
        }
    }

    fn snapshot(&self) -> Vec<(u64, u64)> {
        let n = self.len.load(Ordering::Acquire);
        self.slots[..n]
            .iter()
            .map(|(a, b)| (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
            .collect()
    }
}

#[derive(Debug, Default)]
struct ConnRegistry {
    open: Vec<Arc<ConnShared>>,
    closed_frames: u64,
    closed_bytes: u64,
}

/// The state every thread of one simulator shares, behind one API: the configuration, the
/// symbols, the counters, the feed's books, the order venue, the connection registry (for the
/// publisher and the statistics), the faults asked for on demand, and the sockets and threads
/// being served (to stop them).
pub(crate) struct Hub {
    cfg: SimConfig,
    stop: AtomicBool,
    counters: [AtomicU64; COUNTERS],
    conns: Mutex<ConnRegistry>,
    reg_tx: Mutex<Option<Sender<Registration>>>,
    books: Mutex<Vec<OrderBook>>,
    symbols: SymbolTable,
    send_times: SendTimes,
    first_conn: AtomicBool,
    /// Connections that have subscribed to something, ever (the feed waits for enough).
    subscribed_conns: AtomicUsize,
    publisher_done: AtomicBool,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The order side.
    venue: orders::Venue,
    oversized: OnceLock<Bytes>,
    /// Faults asked for by [`VenueSim::inject`], oldest first, and how many wait (checked
    /// without the lock).
    injections: Mutex<std::collections::VecDeque<FaultKind>>,
    injections_waiting: AtomicUsize,
    /// Every accepted socket still being served, to cut them off when stopping.
    sockets: Mutex<Vec<(u64, TcpStream)>>,
    ws_threads: AtomicUsize,
    http_threads: AtomicUsize,
    threads: AtomicUsize,
}

impl Hub {
    /// A hub for `cfg`, serving `symbols` with the feed's `books`, announcing connections to
    /// the publisher on `reg_tx`.
    pub(crate) fn new(
        cfg: SimConfig,
        symbols: SymbolTable,
        books: Vec<OrderBook>,
        reg_tx: Sender<Registration>,
        tls: Option<Arc<rustls::ServerConfig>>,
        venue: orders::Venue,
    ) -> Hub {
        Hub {
            send_times: SendTimes::new(cfg.send_times_capacity),
            cfg,
            stop: AtomicBool::new(false),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            conns: Mutex::new(ConnRegistry::default()),
            reg_tx: Mutex::new(Some(reg_tx)),
            books: Mutex::new(books),
            symbols,
            first_conn: AtomicBool::new(false),
            subscribed_conns: AtomicUsize::new(0),
            publisher_done: AtomicBool::new(false),
            tls,
            venue,
            oversized: OnceLock::new(),
            injections: Mutex::new(std::collections::VecDeque::new()),
            injections_waiting: AtomicUsize::new(0),
            sockets: Mutex::new(Vec::new()),
            ws_threads: AtomicUsize::new(0),
            http_threads: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
        }
    }

    /// The configuration.
    #[inline]
    pub(crate) fn cfg(&self) -> &SimConfig {
        &self.cfg
    }

    /// The symbols served.
    #[inline]
    pub(crate) fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// The order side.
    #[inline]
    pub(crate) fn venue(&self) -> &orders::Venue {
        &self.venue
    }

    /// The TLS server config, in TLS mode.
    #[inline]
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ServerConfig>> {
        self.tls.as_ref()
    }

    /// Records the send time of trade `trade_id` to the first connection.
    #[inline]
    pub(crate) fn record_send(&self, trade_id: u64, ns: u64) {
        self.send_times.push(trade_id, ns);
    }

    /// Every send time recorded so far, in send order.
    pub(crate) fn send_times(&self) -> Vec<(u64, u64)> {
        self.send_times.snapshot()
    }

    /// A connection subscribed to something for the first time.
    pub(crate) fn note_subscribed(&self) {
        self.subscribed_conns.fetch_add(1, Ordering::SeqCst);
    }

    /// Connections that have subscribed to something, ever.
    pub(crate) fn subscribed_conns(&self) -> usize {
        self.subscribed_conns.load(Ordering::SeqCst)
    }

    /// The publisher has sent its source's last frame.
    pub(crate) fn publisher_finished(&self) {
        self.publisher_done.store(true, Ordering::SeqCst);
    }

    /// Queues one fault for the next market-data connection that looks ([`crate::VenueSim::inject`]).
    pub(crate) fn inject(&self, kind: FaultKind) {
        let mut q = self.injections.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back(kind);
        self.injections_waiting.store(q.len(), Ordering::Release);
    }

    /// Every thread sees [`Hub::stopping`] from now on.
    pub(crate) fn begin_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Connection threads are still running.
    pub(crate) fn threads_running(&self) -> bool {
        self.threads.load(Ordering::Acquire) > 0
    }

    /// Shuts down every socket still being served.
    pub(crate) fn cut_sockets(&self) {
        for (_, s) in self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// No further connection reaches the publisher.
    pub(crate) fn close_registrations(&self) {
        *self.reg_tx.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    #[inline]
    pub(crate) fn count(&self, c: C, n: u64) {
        if n > 0 {
            self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self, c: C) -> u64 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn lock_books(&self) -> MutexGuard<'_, Vec<OrderBook>> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_conns(&self) -> MutexGuard<'_, ConnRegistry> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Announces a connection to the publisher (and the statistics).
    pub(crate) fn register(&self, r: Registration) {
        self.lock_conns().open.push(r.shared.clone());
        let tx = self.reg_tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = tx.as_ref() {
            let _ = tx.send(r);
        }
    }

    pub(crate) fn unregister(&self, shared: &ConnShared) {
        let mut reg = self.lock_conns();
        reg.open.retain(|c| c.id != shared.id);
        reg.closed_frames += shared.frames_sent.load(Ordering::Relaxed);
        reg.closed_bytes += shared.bytes_sent.load(Ordering::Relaxed);
    }

    /// True for the first connection to ask: it records send times.
    pub(crate) fn claim_first_connection(&self) -> bool {
        !self.first_conn.swap(true, Ordering::AcqRel)
    }

    /// The oldest fault asked for by [`VenueSim::inject`], if any (taken: performed once).
    #[inline]
    pub(crate) fn take_injection(&self) -> Option<FaultKind> {
        if self.injections_waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.injections.lock().unwrap_or_else(|p| p.into_inner());
        let k = q.pop_front();
        self.injections_waiting.store(q.len(), Ordering::Release);
        k
    }

    /// The oversized fault frame, built once.
    pub(crate) fn oversized_frame(&self) -> Bytes {
        self.oversized
            .get_or_init(|| {
                let len = match self.cfg.faults.oversized_bytes {
                    0 => (16 << 20) + 1,
                    n => n.max(40),
                };
                let head = b"{\"stream\":\"oversized\",\"data\":\"";
                let mut v = Vec::with_capacity(len);
                v.extend_from_slice(head);
                v.resize(len - 2, b'x');
                v.extend_from_slice(b"\"}");
                Bytes::from(v)
            })
            .clone()
    }

    fn track_socket(&self, id: u64, sock: &TcpStream) {
        if let Ok(s) = sock.try_clone() {
            self.sockets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id, s));
        }
    }

    fn untrack_socket(&self, id: u64) {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| *i != id);
    }

    pub(crate) fn is_done(&self) -> bool {
        self.publisher_done.load(Ordering::SeqCst)
            && self.lock_conns().open.iter().all(|c| {
                c.closed.load(Ordering::Acquire)
                    || c.handled.load(Ordering::Acquire) >= c.enqueued.load(Ordering::Acquire)
            })
    }
}

impl Hub {
    /// Counters since start.
    pub(crate) fn stats(&self) -> SimStats {
        let i = self;
        let (open, frames, bytes) = {
            let reg = i.lock_conns();
            let (mut f, mut b) = (reg.closed_frames, reg.closed_bytes);
            for c in &reg.open {
                f += c.frames_sent.load(Ordering::Relaxed);
                b += c.bytes_sent.load(Ordering::Relaxed);
            }
            (reg.open.len() as u64, f, b)
        };
        SimStats {
            connections_accepted: i.get(C::ConnectionsAccepted),
            connections_open: open,
            connections_refused: i.get(C::ConnectionsRefused),
            handshakes_failed: i.get(C::HandshakesFailed),
            frames_published: i.get(C::FramesPublished),
            frames_sent: frames,
            bytes_sent: bytes,
            subscriptions: i.get(C::Subscriptions),
            unsubscriptions: i.get(C::Unsubscriptions),
            control_requests: i.get(C::ControlRequests),
            control_errors: i.get(C::ControlErrors),
            pings_sent: i.get(C::PingsSent),
            pongs_received: i.get(C::PongsReceived),
            client_pings: i.get(C::ClientPings),
            pong_timeouts: i.get(C::PongTimeouts),
            slow_disconnects: i.get(C::SlowDisconnects),
            rest_requests: i.get(C::RestRequests),
            rest_errors: i.get(C::RestErrors),
            source_errors: i.get(C::SourceErrors),
            decode_errors: i.get(C::DecodeErrors),
            feed_done: i.publisher_done.load(Ordering::SeqCst),
            faults: FaultStats {
                drops: i.get(C::Drops),
                stalls: i.get(C::Stalls),
                closes: i.get(C::Closes),
                resets: i.get(C::Resets),
                torn_frames: i.get(C::Torn),
                garbage_frames: i.get(C::Garbage),
                oversized_frames: i.get(C::Oversized),
                fragmented_messages: i.get(C::Fragmented),
                invalid_utf8_frames: i.get(C::InvalidUtf8),
                tls_refused: i.get(C::TlsRefused),
            },
            orders: OrderStats {
                requests: i.get(C::OrderRequests),
                errors: i.get(C::OrderErrors),
                placed: i.get(C::OrdersPlaced),
                canceled: i.get(C::OrdersCanceled),
                fills: i.get(C::OrderFills),
                events_dropped: i.get(C::OrderEventsDropped),
                probes: i.get(C::ProbeOrders),
            },
        }
    }
}

/// Decrements a thread count when a served connection's thread ends.
struct ThreadGuard<'a>(&'a AtomicUsize);

impl Drop for ThreadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts connections on `listener` until the stop: one thread per connection (market data:
/// [`conn::serve`]; REST: [`rest::serve`]), at most [`SimConfig::max_connections`] of each kind.
pub(crate) fn accept_loop(hub: Arc<Hub>, listener: TcpListener, market_data: bool) {
    let mut next_id: u64 = if market_data { 0 } else { 1 << 62 };
    for sock in listener.incoming() {
        if hub.stopping() {
            break;
        }
        let sock = match sock {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        let kind_threads = if market_data {
            hub.count(C::ConnectionsAccepted, 1);
            &hub.ws_threads
        } else {
            &hub.http_threads
        };
        if kind_threads.load(Ordering::Acquire) >= hub.cfg.max_connections {
            hub.count(C::ConnectionsRefused, 1);
            continue;
        }
        kind_threads.fetch_add(1, Ordering::AcqRel);
        hub.threads.fetch_add(1, Ordering::AcqRel);
        hub.track_socket(id, &sock);
        let i = hub.clone();
        let spawned = std::thread::Builder::new()
            .name(if market_data { "sim-conn" } else { "sim-http" }.into())
            .spawn(move || {
                let _t = ThreadGuard(&i.threads);
                let _k = ThreadGuard(if market_data {
                    &i.ws_threads
                } else {
                    &i.http_threads
                });
                if market_data {
                    conn::serve(i.clone(), sock, id);
                } else {
                    rest::serve(i.clone(), sock);
                }
                i.untrack_socket(id);
            });
        if spawned.is_err() {
            hub.threads.fetch_sub(1, Ordering::AcqRel);
            kind_threads.fetch_sub(1, Ordering::AcqRel);
            hub.untrack_socket(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_are_bounded() {
        let t = SendTimes::new(2);
        t.push(1, 10);
        t.push(2, 20);
        t.push(3, 30);
        assert_eq!(t.snapshot(), vec![(1, 10), (2, 20)]);
    }
}
