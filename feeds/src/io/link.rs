//! One connection of the I/O loop ([`Link`]): its state machine, driven by readiness and by
//! the loop's clock, and the token codec that routes readiness to it.
//!
//! ```text
//!  Waiting(at) ──at──▶ Connecting ──Opened──▶ Open ──close / error / idle timeout──▶ Waiting(backoff)
//!      ▲                   │ error / connect timeout                                      │
//!      └───────────────────┴────────────────── backoff (or Dead after max_attempts) ◀─────┘
//! ```
//!
//! - On open: a `ConnectionUp` event goes into the ring before any of the connection's data, the
//!   venue adapter's subscription frames for the feed's streams are sent (again after every
//!   reconnect: Binance `SUBSCRIBE`, OKX and Bybit `{"op":"subscribe",..}`, ...), and
//!   `IoNotice::Connected` is raised (the place to request REST snapshots).
//! - On loss (close by the peer, an error, no frame for `idle_timeout`): `ConnectionDown` (the
//!   core marks the books stale), `IoNotice::Disconnected`, and a reconnect after an
//!   exponential, jittered backoff (`Backoff`: deterministic, seeded by the connection id).
//!   The backoff starts again from `initial` once a lost connection had delivered a frame and
//!   lasted `IoConfig::stable_after`. Failures to connect (refused, TLS such as an untrusted
//!   certificate, handshake, `IoConfig::connect_timeout`) are `IoNotice::ConnectFailed` and
//!   retried the same way; the loop never panics and never ends because of a venue.
//! - The venue's heartbeat goes out every `heartbeat`: a WebSocket ping, or the adapter's text
//!   ping (OKX `ping`, Bybit `{"op":"ping"}`); any frame, a pong or a text pong included, proves
//!   liveness. On loss the venue's decoder forgets its per-connection sequence state
//!   ([`MarketDecoder::reset`](crate::venue::MarketDecoder::reset)) once no other link of the
//!   venue is open.
//! - A link whose venue has no adapter in this build, or no decoder in the loop, or whose
//!   streams its adapter refuses, never connects: it is `Dead` at start, said as
//!   `IoNotice::GaveUp`.
//! - A host name is resolved once and its addresses reused by every reconnect; only after a TCP
//!   connect failure is it resolved again (a blocking lookup on this thread: hosts given as IP
//!   literals never block).
//!
//! Everything here but [`on_ready`] (which hands data frames to the frame path) is cold.

use super::backoff::Backoff;
use super::config::{ns, FeedSpec, IoConfig, ReconnectPolicy};
use super::counters::{IoCounter, IoCounters};
use super::frame::{Ctx, LinkRx};
use super::notice::IoNotice;
use crate::capture::RecordKind;
use crate::net::{CloseReason, ConnEvent, ConnOptions, ConnState, Connection, Endpoint, NetError};
use crate::orders::session::UserStream;
use crate::venue::{Adapter, Heartbeat};
use engine::venue::Venue;
use mio::{Poll, Token};
use std::net::SocketAddr;

/// Payload of our heartbeat pings.
const PING_PAYLOAD: &[u8] = b"tickline";

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Waiting to (re)connect.
    Waiting,
    /// TCP, TLS or WebSocket handshake in progress.
    Connecting,
    /// Open: frames flow.
    Open,
    /// Given up (bad URL, or `max_attempts` reached); or the loop has ended.
    Dead,
}

impl LinkState {
    pub(super) fn code(self) -> u8 {
        match self {
            LinkState::Waiting => 0,
            LinkState::Connecting => 1,
            LinkState::Open => 2,
            LinkState::Dead => 3,
        }
    }

    pub(super) fn from_code(c: u8) -> Self {
        match c {
            0 => LinkState::Waiting,
            1 => LinkState::Connecting,
            2 => LinkState::Open,
            _ => LinkState::Dead,
        }
    }
}

/// Where a link is, with the time its next step is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Connect at this time.
    Waiting { at_ns: u64 },
    /// Handshaking since this time.
    Connecting { since_ns: u64 },
    /// Open; the next heartbeat is due then.
    Open { next_ping_ns: u64 },
    /// Nothing more to do.
    Dead,
}

/// Where a loop finds each venue's adapter ([`crate::venue::adapter`] unless a test or a
/// simulator passes its own: [`IoLoop::adapters`](crate::io::IoLoop::adapters)).
pub type AdapterOf = fn(Venue) -> Option<&'static dyn Adapter>;

/// A link's venue adapter (`Debug` shows its venue).
#[derive(Clone, Copy)]
pub(super) struct VenueAdapter(pub(super) &'static dyn Adapter);

impl std::fmt::Debug for VenueAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Adapter({})", self.0.venue())
    }
}

/// One connection of the loop, in its slot: the feed, the socket if there is one, and where
/// it is in its life.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) spec: FeedSpec,
    /// The venue's adapter (subscriptions, heartbeat); `None` for the order API connection.
    pub(super) adapter: Option<VenueAdapter>,
    heartbeat: Heartbeat,
    endpoint: Option<Endpoint>,
    pub(super) conn: Option<Connection>,
    pub(super) phase: Phase,
    /// The slot: `links[index]` is this link.
    index: usize,
    /// Bumped by every attempt, so readiness of a dropped socket never reaches its successor.
    generation: usize,
    attempts_total: u64,
    /// Resolved addresses, reused by every reconnect; cleared after a TCP connect failure, so
    /// the next attempt resolves again.
    addrs: Vec<SocketAddr>,
    pub(super) rx: LinkRx,
}

impl Link {
    /// The link in slot `index` for `spec`, waiting to connect at `t0`; a bad URL makes it
    /// `Dead` at once (counted, and said as [`IoNotice::GaveUp`]).
    pub(super) fn new(
        spec: &FeedSpec,
        index: usize,
        policy: ReconnectPolicy,
        t0: u64,
        notices: &mut dyn FnMut(IoNotice),
    ) -> Link {
        let mut link = Link {
            spec: spec.clone(),
            adapter: None,
            heartbeat: Heartbeat::WsPing,
            endpoint: None,
            conn: None,
            phase: Phase::Waiting { at_ns: t0 },
            index,
            generation: 0,
            attempts_total: 0,
            addrs: Vec::new(),
            rx: LinkRx {
                conn_id: spec.conn_id,
                venue: spec.venue,
                c: IoCounters::default(),
                last_rx_ns: t0,
                got_frame: false,
                opened_ns: t0,
                backoff: Backoff::new(policy, spec.conn_id),
                orders: false,
            },
        };
        match Endpoint::parse(&link.spec.url) {
            Ok(ep) => link.endpoint = Some(ep),
            Err(e) => {
                link.phase = Phase::Dead;
                count_error(&mut link.rx.c, &e);
                notices(IoNotice::GaveUp {
                    conn_id: link.spec.conn_id,
                    reason: format!("bad URL {:?}: {e}", link.spec.url),
                });
            }
        }
        link
    }

    /// Makes this a market link of its venue: the venue's adapter subscribes and heartbeats,
    /// `decoded` says whether the loop has the venue's decoder. A venue without either, or
    /// streams the adapter refuses, leave the link `Dead` (said as [`IoNotice::GaveUp`]).
    #[cold]
    pub(super) fn bind_venue(
        &mut self,
        adapter_of: AdapterOf,
        decoded: bool,
        notices: &mut dyn FnMut(IoNotice),
    ) {
        let venue = self.spec.venue;
        let problem = match adapter_of(venue) {
            None => Some(format!("venue {venue} has no adapter in this build")),
            Some(_) if !decoded => Some(format!(
                "venue {venue} has no decoder in this I/O loop (IoLoop::decoder)"
            )),
            Some(a) => {
                self.adapter = Some(VenueAdapter(a));
                self.heartbeat = a.heartbeat();
                a.subscribe(&self.spec.subscribe, 0)
                    .err()
                    .map(|e| format!("{venue} refuses the subscription: {e}"))
            }
        };
        if let Some(reason) = problem {
            if self.phase != Phase::Dead {
                self.phase = Phase::Dead;
                notices(IoNotice::GaveUp {
                    conn_id: self.spec.conn_id,
                    reason,
                });
            }
        }
    }

    /// Its endpoint needs TLS.
    pub(super) fn is_tls(&self) -> bool {
        self.endpoint.as_ref().is_some_and(Endpoint::is_tls)
    }

    /// Its state, as [`IoShared`](crate::io::IoShared) and the report show it.
    pub(super) fn state(&self) -> LinkState {
        match self.phase {
            Phase::Waiting { .. } => LinkState::Waiting,
            Phase::Connecting { .. } => LinkState::Connecting,
            Phase::Open { .. } => LinkState::Open,
            Phase::Dead => LinkState::Dead,
        }
    }
}

/// The mio token of a link's connection: its slot and its generation in one `usize`
/// (`generation * n_links + index`), so readiness left over from a dropped socket never reaches
/// the socket that took its slot. [`Tokens::WAKE`] is the order session's waker.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tokens {
    n_links: usize,
}

impl Tokens {
    /// The token of the order session's waker (never a connection's: those are small).
    pub(super) const WAKE: Token = Token(usize::MAX);

    /// The codec for a loop of `n_links` links.
    pub(super) fn new(n_links: usize) -> Tokens {
        Tokens {
            n_links: n_links.max(1),
        }
    }

    /// The token of `link`'s current connection.
    fn encode(self, link: &Link) -> Token {
        Token(link.generation * self.n_links + link.index)
    }

    /// The link whose current connection `token` names, if it still has it.
    #[inline]
    pub(super) fn link(self, links: &mut [Link], token: Token) -> Option<&mut Link> {
        if token == Self::WAKE {
            return None;
        }
        let Token(tok) = token;
        let (i, generation) = (tok % self.n_links, tok / self.n_links);
        links
            .get_mut(i)
            .filter(|l| l.generation == generation && l.conn.is_some())
    }
}

/// A link's deadlines in ns (zero: off).
#[derive(Clone, Copy, Debug)]
pub(super) struct Timing {
    idle_ns: u64,
    heartbeat_ns: u64,
    connect_ns: u64,
}

impl Timing {
    /// The deadlines of `cfg`.
    pub(super) fn new(cfg: &IoConfig) -> Timing {
        Timing {
            idle_ns: ns(cfg.idle_timeout),
            heartbeat_ns: ns(cfg.heartbeat),
            connect_ns: ns(cfg.connect_timeout),
        }
    }

    /// No deadlines (the close handshakes at stop).
    pub(super) const NONE: Timing = Timing {
        idle_ns: 0,
        heartbeat_ns: 0,
        connect_ns: 0,
    };
}

/// Runs `link`'s timers; returns its next deadline.
pub(super) fn on_timers(
    link: &mut Link,
    tokens: Tokens,
    now_ns: u64,
    t: &Timing,
    ctx: &mut Ctx<'_>,
    poll: &Poll,
    opts: &ConnOptions,
) -> u64 {
    match link.phase {
        Phase::Waiting { at_ns } => {
            if now_ns < at_ns {
                return at_ns;
            }
            start_connect(link, tokens, now_ns, ctx, poll, opts);
            match link.phase {
                Phase::Connecting { since_ns } if t.connect_ns > 0 => {
                    since_ns.saturating_add(t.connect_ns)
                }
                Phase::Waiting { at_ns } => at_ns,
                _ => u64::MAX,
            }
        }
        Phase::Connecting { since_ns } => {
            if t.connect_ns == 0 {
                return u64::MAX;
            }
            let due = since_ns.saturating_add(t.connect_ns);
            if now_ns >= due {
                link.rx.c.connect_timeouts += 1;
                let msg = format!(
                    "connect timeout: not open after {} ms",
                    t.connect_ns / 1_000_000
                );
                lose(link, now_ns, ctx, poll, msg);
                return now_ns;
            }
            due
        }
        Phase::Open { next_ping_ns } => {
            let mut next = u64::MAX;
            if t.idle_ns > 0 {
                let due = link.rx.last_rx_ns.saturating_add(t.idle_ns);
                if now_ns >= due {
                    link.rx.c.idle_timeouts += 1;
                    let msg = format!("idle timeout: no frame for {} ms", t.idle_ns / 1_000_000);
                    lose(link, now_ns, ctx, poll, msg);
                    return now_ns;
                }
                next = due;
            }
            if t.heartbeat_ns > 0 {
                if now_ns >= next_ping_ns {
                    let hb = link.heartbeat;
                    let sent = link.conn.as_mut().map(|c| match hb {
                        Heartbeat::WsPing => c.send_ping(PING_PAYLOAD),
                        Heartbeat::Text(text) => c.send_text(text),
                    });
                    match sent {
                        Some(Ok(())) => link.rx.c.heartbeats_sent += 1,
                        Some(Err(e)) => {
                            link.rx.c.send_errors += 1;
                            count_error(&mut link.rx.c, &e);
                            lose(link, now_ns, ctx, poll, format!("sending a ping: {e}"));
                            return now_ns;
                        }
                        None => {}
                    }
                    let np = now_ns.saturating_add(t.heartbeat_ns);
                    link.phase = Phase::Open { next_ping_ns: np };
                    next = next.min(np);
                } else {
                    next = next.min(next_ping_ns);
                }
            }
            next
        }
        Phase::Dead => u64::MAX,
    }
}

#[cold]
fn start_connect(
    link: &mut Link,
    tokens: Tokens,
    now_ns: u64,
    ctx: &mut Ctx<'_>,
    poll: &Poll,
    opts: &ConnOptions,
) {
    let Some(ep) = &link.endpoint else {
        link.phase = Phase::Dead;
        return;
    };
    if link.attempts_total > 0 {
        link.rx.c.reconnect_attempts += 1;
    }
    link.attempts_total += 1;
    link.generation += 1;
    link.rx.got_frame = false;
    link.phase = Phase::Connecting { since_ns: now_ns };
    if link.addrs.is_empty() {
        // Blocks for a DNS lookup unless the host is an IP literal: at start-up, and after
        // a connect failure only.
        match ep.resolve() {
            Ok(a) => link.addrs = a,
            Err(e) => return fail(link, now_ns, ctx, poll, e),
        }
    }
    let token = tokens.encode(link);
    match Connection::connect_to(ep, &link.addrs, opts, poll.registry(), token) {
        Ok(c) => link.conn = Some(c),
        Err(e) => fail(link, now_ns, ctx, poll, e),
    }
}

/// The connection (or the attempt) failed with `e`.
#[cold]
fn fail(link: &mut Link, now_ns: u64, ctx: &mut Ctx<'_>, poll: &Poll, e: NetError) {
    count_error(&mut link.rx.c, &e);
    if matches!(e, NetError::Connect(_)) {
        link.addrs.clear();
    }
    lose(link, now_ns, ctx, poll, e.to_string());
}

/// Readiness on `link`'s connection. `closing`: the loop is stopping (no reconnects, no
/// subscriptions; a connection that ends is just dropped).
pub(super) fn on_ready(
    link: &mut Link,
    now_ns: u64,
    t: &Timing,
    ctx: &mut Ctx<'_>,
    poll: &Poll,
    closing: bool,
) {
    let Link { conn, rx, spec, .. } = link;
    let Some(c) = conn.as_mut() else {
        return;
    };
    let mut opened = false;
    let mut closed: Option<CloseReason> = None;
    let res = c.handle_ready(poll.registry(), &mut |ev| match ev {
        ConnEvent::Message { payload, .. } if rx.orders => ctx.on_order_frame(rx, payload),
        ConnEvent::Message { payload, binary } => ctx.on_frame(rx, payload, binary),
        ConnEvent::Pong => {
            rx.last_rx_ns = (ctx.now)();
            rx.c.pongs += 1;
        }
        ConnEvent::Opened => {
            // Up before any of the session's data, in the ring and in the capture.
            opened = true;
            let at = (ctx.now)();
            rx.last_rx_ns = at;
            rx.opened_ns = at;
            rx.c.connects += 1;
            if !rx.orders {
                ctx.push_conn(at, rx.conn_id, rx.venue, true);
                ctx.record(at, rx, RecordKind::Connect, spec.url.as_bytes());
            }
        }
        ConnEvent::Closed(r) => closed = Some(r),
    });
    if opened {
        on_opened(link, now_ns, t, ctx, closing);
    }
    let ended = res.is_err() || closed.is_some();
    if closing {
        if ended {
            if let Some(mut c) = link.conn.take() {
                c.deregister(poll.registry());
            }
        }
        return;
    }
    if let Err(e) = res {
        fail(link, now_ns, ctx, poll, e);
    } else if let Some(r) = closed {
        match r {
            CloseReason::ByPeer { .. } => link.rx.c.peer_closes += 1,
            CloseReason::Eof => link.rx.c.peer_hangups += 1,
            CloseReason::ByUs => {}
        }
        lose(link, now_ns, ctx, poll, close_reason_text(r));
    } else if link.conn.as_ref().map(Connection::state) == Some(ConnState::Closed) {
        lose(link, now_ns, ctx, poll, "connection closed".to_string());
    }
}

/// Longest wait for the user data stream's answer before market data starts (without a connect
/// timeout).
const GATE_WAIT_NS: u64 = 5_000_000_000;

#[cold]
fn on_opened(link: &mut Link, now_ns: u64, t: &Timing, ctx: &mut Ctx<'_>, closing: bool) {
    link.phase = Phase::Open {
        next_ping_ns: now_ns.saturating_add(t.heartbeat_ns),
    };
    if link.rx.orders && !closing {
        let first = ctx.orders_gate;
        ctx.orders_gate = false;
        if let Some(s) = ctx.session.as_mut() {
            s.on_open();
            if first && s.user_stream() == UserStream::Pending {
                // Market data waits for the subscription's answer too (at most a connect
                // timeout), so the first orders do not meet a stream still pending.
                ctx.orders_gate = true;
                let wait = if t.connect_ns > 0 {
                    t.connect_ns
                } else {
                    GATE_WAIT_NS
                };
                ctx.gate_until_ns = now_ns.saturating_add(wait);
            }
        }
    }
    if !link.rx.orders {
        ctx.decoders.link_up(link.spec.venue);
    }
    if !link.spec.subscribe.is_empty() && !closing {
        if let Err(reason) = send_streams(link, ctx, StreamOp::Subscribe, None) {
            (ctx.notices)(IoNotice::CommandRejected {
                conn_id: link.rx.conn_id,
                reason: format!("subscribing after the connect: {reason}"),
            });
        }
    }
    (ctx.notices)(IoNotice::Connected {
        conn_id: link.rx.conn_id,
    });
}

/// The connection (or the attempt) is lost: report it and schedule the next attempt.
#[cold]
#[inline(never)]
fn lose(link: &mut Link, now_ns: u64, ctx: &mut Ctx<'_>, poll: &Poll, reason: String) {
    if let Some(mut c) = link.conn.take() {
        let _ = c.close();
        c.deregister(poll.registry());
    }
    let conn_id = link.rx.conn_id;
    match link.phase {
        Phase::Open { .. } => {
            if link.rx.got_frame && now_ns.saturating_sub(link.rx.opened_ns) >= ctx.stable_ns {
                link.rx.backoff.reset();
            }
            link.rx.c.disconnects += 1;
            let at = (ctx.now)();
            if link.rx.orders {
                if let Some(s) = ctx.session.as_mut() {
                    s.on_down();
                }
            } else {
                ctx.push_conn(at, conn_id, link.spec.venue, false);
                ctx.record(at, &mut link.rx, RecordKind::Disconnect, reason.as_bytes());
                ctx.decoders.link_down(link.spec.venue);
            }
            (ctx.notices)(IoNotice::Disconnected { conn_id, reason });
        }
        Phase::Connecting { .. } | Phase::Waiting { .. } => {
            if link.rx.orders && ctx.orders_gate {
                ctx.orders_gate = false;
                (ctx.notices)(IoNotice::OrderSession {
                    conn_id,
                    message: "the order API is not reachable; market data starts anyway, and orders are refused until it is".to_string(),
                });
            }
            link.rx.c.connect_failures += 1;
            (ctx.notices)(IoNotice::ConnectFailed {
                conn_id,
                error: reason,
            });
        }
        Phase::Dead => return,
    }
    match link.rx.backoff.next_delay() {
        Some(delay) => {
            link.phase = Phase::Waiting {
                at_ns: now_ns.saturating_add(ns(delay)),
            };
            (ctx.notices)(IoNotice::Reconnecting {
                conn_id,
                attempt: link.rx.backoff.attempts(),
                delay,
            });
        }
        None => {
            link.phase = Phase::Dead;
            (ctx.notices)(IoNotice::GaveUp {
                conn_id,
                reason: format!("{} consecutive attempts failed", link.rx.backoff.attempts()),
            });
        }
    }
}

/// Sends a request (`SUBSCRIBE`, `UNSUBSCRIBE`) on `link`'s connection and records it as sent;
/// a failure is only counted here (it surfaces again on the next readiness).
#[cold]
pub(super) fn send_request(link: &mut Link, ctx: &mut Ctx<'_>, text: &str) {
    match link.conn.as_mut().map(|c| c.send_text(text)) {
        Some(Ok(())) => {
            let at = (ctx.now)();
            ctx.record(at, &mut link.rx, RecordKind::Subscribe, text.as_bytes());
        }
        Some(Err(e)) => {
            link.rx.c.send_errors += 1;
            count_error(&mut link.rx.c, &e);
        }
        None => {}
    }
}

/// Subscribe or unsubscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StreamOp {
    /// [`Adapter::subscribe`].
    Subscribe,
    /// [`Adapter::unsubscribe`].
    Unsubscribe,
}

/// The frames of the venue's adapter that (un)subscribe `streams` (the link's own list when
/// `None`), with the next request id, or the adapter's refusal.
#[cold]
pub(super) fn stream_frames(
    link: &Link,
    ctx: &mut Ctx<'_>,
    op: StreamOp,
    streams: Option<&[String]>,
) -> Result<Vec<String>, String> {
    let Some(VenueAdapter(a)) = link.adapter else {
        return Err(format!("venue {} has no adapter", link.spec.venue));
    };
    let streams = streams.unwrap_or(&link.spec.subscribe);
    let id = ctx.take_request_id();
    match op {
        StreamOp::Subscribe => a.subscribe(streams, id),
        StreamOp::Unsubscribe => a.unsubscribe(streams, id),
    }
}

/// Sends the venue's (un)subscription frames for `streams` (the link's own list when `None`);
/// returns the adapter's refusal, if it refused (nothing is sent then).
#[cold]
pub(super) fn send_streams(
    link: &mut Link,
    ctx: &mut Ctx<'_>,
    op: StreamOp,
    streams: Option<&[String]>,
) -> Result<(), String> {
    let frames = stream_frames(link, ctx, op, streams)?;
    for text in &frames {
        send_request(link, ctx, text);
    }
    Ok(())
}

fn close_reason_text(r: CloseReason) -> String {
    match r {
        CloseReason::ByPeer { code } => format!("closed by the peer (close code {code})"),
        CloseReason::ByUs => "closed by us".to_string(),
        CloseReason::Eof => "connection closed by the peer without a close frame".to_string(),
    }
}

/// Counts `e` by its kind.
fn count_error(c: &mut IoCounters, e: &NetError) {
    let k = match e {
        NetError::Tls(_) => IoCounter::TlsErrors,
        NetError::WsHandshake(_) | NetError::Protocol(_) | NetError::LineTooLong { .. } => {
            IoCounter::ProtocolErrors
        }
        NetError::Url(_) | NetError::Resolve { .. } | NetError::Connect(_) => {
            IoCounter::ConnectErrors
        }
        NetError::Io(_) => IoCounter::IoErrors,
        NetError::Closed => return,
    };
    c[k] += 1;
}
