//! [`IoLoop`]: the builder of an I/O loop, and the loop itself (poll, timers, the order
//! session's pump, publishing, the polite close at stop, the report).

use super::command::{apply_command, IoCommandRx};
use super::config::{ns, FeedSpec, IoConfig};
use super::counters::IoCounters;
use super::frame::{Ctx, Decoders, EVENTS_CAPACITY};
use super::link::{on_ready, on_timers, AdapterOf, Link, LinkState, Phase, Timing, Tokens};
use super::notice::IoNotice;
use super::report::{ConnReport, IoEnd, IoReport, SessionReport};
use super::shared::IoShared;
use crate::capture::RecordKind;
use crate::net::{client_tls_config, TlsOptions};
use crate::orders::session::{OrderSession, UserStream};
use crate::recorder::RecorderTx;
use crate::venue::AnyDecoder;
use engine::latency::LatencyHist;
use engine::ring::EventTx;
use mio::{Events, Poll};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest wait in `poll` (so `stop` is noticed within about this long).
pub const MAX_POLL_WAIT: Duration = Duration::from_millis(1);
/// How often counters are published to [`IoShared`].
const PUBLISH_EVERY_NS: u64 = 1_000_000;

/// An I/O loop, built then [run](IoLoop::run) on the thread that is to own its sockets.
///
/// ```no_run
/// # use feeds::io::{IoConfig, IoLoop, IoShared, command_channel};
/// # use std::sync::atomic::AtomicBool;
/// # fn go(cfg: IoConfig, decoder: feeds::binance::market::BinanceDecoder, tx: engine::ring::EventTx,
/// #       recorder: Option<feeds::recorder::RecorderTx>, session: Option<feeds::orders::session::OrderSession>,
/// #       now: fn() -> u64, shared: &IoShared, stop: &AtomicBool, okx: feeds::venue::AnyDecoder) {
/// let (commands, command_rx) = command_channel(feeds::io::COMMAND_QUEUE); // `commands` to the control side
/// let report = IoLoop::new(cfg, decoder, tx, now)
///     .decoder(okx) // another venue's decoder, for the feeds of that venue
///     .recorder(recorder) // optional, like the next three
///     .commands(command_rx)
///     .session(session)
///     .run(shared, stop, &mut |n| eprintln!("{n}"));
/// # }
/// ```
#[derive(Debug)]
#[must_use = "an IoLoop does nothing until it is run"]
pub struct IoLoop {
    cfg: IoConfig,
    decoders: Decoders,
    adapter_of: AdapterOf,
    tx: EventTx,
    now: fn() -> u64,
    recorder: Option<RecorderTx>,
    commands: Option<IoCommandRx>,
    session: Option<OrderSession>,
}

impl IoLoop {
    /// A loop over `cfg.feeds`, decoding with `decoder` (a
    /// [`BinanceDecoder`](crate::binance::market::BinanceDecoder) or any venue's
    /// [`AnyDecoder`]) into the core's ring `tx`; feeds of other venues need their decoders too
    /// ([`IoLoop::decoder`]). `now` is the engine's monotonic clock in ns
    /// (`tools::clock::MonoClock::now`); every receive stamp and every deadline comes from it.
    pub fn new(
        cfg: IoConfig,
        decoder: impl Into<AnyDecoder>,
        tx: EventTx,
        now: fn() -> u64,
    ) -> Self {
        let mut decoders = Decoders::new();
        decoders.set(decoder.into());
        IoLoop {
            cfg,
            decoders,
            adapter_of: crate::venue::adapter,
            tx,
            now,
            recorder: None,
            commands: None,
            session: None,
        }
    }

    /// Decodes the frames of `decoder`'s venue with it (replacing the decoder that venue had):
    /// one decoder per venue, shared by that venue's feeds.
    pub fn decoder(mut self, decoder: impl Into<AnyDecoder>) -> Self {
        self.decoders.set(decoder.into());
        self
    }

    /// Finds each feed's venue adapter (URLs aside: subscription frames, heartbeat) with
    /// `adapter_of` instead of [`crate::venue::adapter`]: for tests and simulators that speak a
    /// variant of a venue's protocol.
    pub fn adapters(mut self, adapter_of: AdapterOf) -> Self {
        self.adapter_of = adapter_of;
        self
    }

    /// Copies every frame (and connect, subscribe, disconnect records) into the recorder's ring.
    pub fn recorder(mut self, recorder: impl Into<Option<RecorderTx>>) -> Self {
        self.recorder = recorder.into();
        self
    }

    /// Applies the [`IoCommand`](crate::io::IoCommand)s of this queue (subscribe and
    /// unsubscribe at run time), checked once per loop iteration without blocking.
    pub fn commands(mut self, commands: impl Into<Option<IoCommandRx>>) -> Self {
        self.commands = commands.into();
        self
    }

    /// Owns the venue's order session ([`crate::orders::session`]): one more connection, to the order
    /// API at the session's URL, whose frames go to the session; the session's commands are sent
    /// every iteration, and the loop is woken for them ([`crate::orders::session::OrderWake`]). The
    /// session's counters and `tick_to_wire` histogram are in [`IoReport::session`].
    pub fn session(mut self, session: impl Into<Option<OrderSession>>) -> Self {
        self.session = session.into();
        self
    }

    /// Runs the loop until `stop` is set (or the core drops its ring), then closes every
    /// connection politely and reports. See the [module docs](crate::io).
    ///
    /// `shared` should have a slot per feed ([`IoShared::new`]`(cfg.feeds.len())`); `notices`
    /// is called on this thread, off the frame path.
    pub fn run(
        self,
        shared: &IoShared,
        stop: &AtomicBool,
        notices: &mut dyn FnMut(IoNotice),
    ) -> IoReport {
        run(self, shared, stop, notices)
    }
}

fn run(
    io: IoLoop,
    shared: &IoShared,
    stop: &AtomicBool,
    notices: &mut dyn FnMut(IoNotice),
) -> IoReport {
    let IoLoop {
        cfg,
        decoders,
        adapter_of,
        tx,
        now,
        recorder,
        commands,
        session,
    } = io;
    let spin_after_ns = session
        .as_ref()
        .map_or(0, |s| ns(s.config().spin_after_frame));
    let order_spec = session.as_ref().map(|s| FeedSpec {
        conn_id: s.config().conn_id,
        url: s.config().url.clone(),
        ..FeedSpec::default()
    });
    let mut ctx = Ctx {
        decoders,
        tx,
        recorder,
        out: Vec::with_capacity(EVENTS_CAPACITY),
        notices,
        now,
        core_gone: false,
        next_request_id: 1,
        stable_ns: ns(cfg.stable_after),
        decode_latency: LatencyHist::new(),
        orders_gate: session.is_some(),
        gate_until_ns: 0,
        session,
        frame_delivered: false,
    };
    let mut conn_opts = cfg.conn.clone();
    let t0 = now();
    let order_link = order_spec.as_ref().map(|_| cfg.feeds.len());
    let mut links: Vec<Link> = cfg
        .feeds
        .iter()
        .chain(order_spec.iter())
        .enumerate()
        .map(|(i, spec)| Link::new(spec, i, cfg.reconnect, t0, ctx.notices))
        .collect();
    if let Some(i) = order_link {
        links[i].rx.orders = true;
    }
    for link in links.iter_mut().filter(|l| !l.rx.orders) {
        let decoded = ctx.decoders.serves(link.spec.venue);
        link.bind_venue(adapter_of, decoded, ctx.notices);
    }
    if order_link.is_some_and(|i| links[i].phase == Phase::Dead) {
        ctx.orders_gate = false;
    }
    if conn_opts.tls.is_none() && links.iter().any(Link::is_tls) {
        // Failing here is not fatal: each TLS connection then reports its own error.
        if let Ok(tls) = client_tls_config(&TlsOptions::default()) {
            conn_opts.tls = Some(tls);
        }
    }

    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            return report(
                IoEnd::PollError(format!("creating the poll: {e}")),
                links,
                ctx,
                shared,
                0,
            )
        }
    };
    let mut events = Events::with_capacity(256);
    let tokens = Tokens::new(links.len());
    if let Some(s) = ctx.session.as_ref() {
        match mio::Waker::new(poll.registry(), Tokens::WAKE) {
            Ok(w) => s.wake().set_waker(w),
            Err(e) => (ctx.notices)(IoNotice::OrderSession {
                conn_id: s.config().conn_id,
                message: format!(
                    "no waker ({e}): an order waits up to {} ms while the loop sleeps",
                    MAX_POLL_WAIT.as_millis()
                ),
            }),
        }
    }
    let mut spin_until = 0u64;
    let t = Timing::new(&cfg);
    shared.set_running(true);
    let mut iterations = 0u64;
    let mut next_publish = 0u64;
    let mut end = IoEnd::Stopped;

    while !stop.load(Ordering::Relaxed) {
        iterations += 1;
        if let Some(commands) = &commands {
            while let Some(cmd) = commands.try_recv() {
                apply_command(&mut links, cmd, &mut ctx);
            }
        }
        let now_ns = now();
        let mut next_deadline = u64::MAX;
        if ctx.gate_until_ns > 0 {
            release_gate(&mut ctx, now_ns);
            if ctx.gate_until_ns > 0 {
                next_deadline = ctx.gate_until_ns;
            }
        }
        // Market links also wait for the first venue check of client ids (crate::orders::idcheck).
        let gated = ctx.orders_gate
            || ctx
                .session
                .as_ref()
                .is_some_and(OrderSession::holds_market_data);
        for link in links.iter_mut() {
            if gated && !link.rx.orders {
                continue;
            }
            let d = on_timers(link, tokens, now_ns, &t, &mut ctx, &poll, &conn_opts);
            next_deadline = next_deadline.min(d);
        }
        if now_ns >= next_publish {
            publish(&links, &ctx, shared);
            next_publish = now_ns + PUBLISH_EVERY_NS;
            // A push into an abandoned ring with room succeeds, so look as well.
            ctx.core_gone |= ctx.tx.is_closed();
        }
        if ctx.core_gone {
            end = IoEnd::CoreGone;
            break;
        }
        if pump_session(&mut ctx, &mut links, order_link) > 0 {
            // The answer to the frame is out: stop spinning, so a venue (or anything else)
            // sharing this CPU gets it at once.
            spin_until = 0;
        }
        let mut wait = if cfg.spin || now_ns < spin_until {
            Duration::ZERO
        } else {
            Duration::from_nanos(next_deadline.saturating_sub(now_ns)).min(MAX_POLL_WAIT)
        };
        let parked = match ctx.session.as_ref() {
            Some(s) if !wait.is_zero() => {
                let sleeping = s.wake().park(|| s.commands_waiting());
                if !sleeping {
                    wait = Duration::ZERO;
                }
                sleeping
            }
            _ => false,
        };
        let polled = poll.poll(&mut events, Some(wait));
        if parked {
            if let Some(s) = ctx.session.as_ref() {
                s.wake().unpark();
            }
        }
        if let Err(e) = polled {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            end = IoEnd::PollError(format!("polling: {e}"));
            break;
        }
        ctx.frame_delivered = false;
        for ev in events.iter() {
            if let Some(link) = tokens.link(&mut links, ev.token()) {
                on_ready(link, now_ns, &t, &mut ctx, &poll, false);
            }
        }
        if ctx.frame_delivered && spin_after_ns > 0 {
            spin_until = now().saturating_add(spin_after_ns);
        }
        if pump_session(&mut ctx, &mut links, order_link) > 0 {
            spin_until = 0;
        }
        if ctx.core_gone || ctx.session.as_ref().is_some_and(OrderSession::core_gone) {
            end = IoEnd::CoreGone;
            break;
        }
    }
    let states: Vec<LinkState> = links.iter().map(Link::state).collect();
    shutdown(&mut links, &mut ctx, &mut poll, &mut events, &cfg, tokens);
    if let Some(s) = ctx.session.as_mut() {
        s.finish();
    }
    ctx.session_notices();
    let mut r = report(end, links, ctx, shared, iterations);
    for (c, s) in r.connections.iter_mut().zip(states) {
        c.state = s;
    }
    shared.set_running(false);
    r
}

/// Sends the order session's commands on its connection (if open), then its notices. Returns
/// the number of commands taken.
#[inline]
fn pump_session(ctx: &mut Ctx<'_>, links: &mut [Link], order_link: Option<usize>) -> usize {
    let (Some(s), Some(i)) = (ctx.session.as_mut(), order_link) else {
        return 0;
    };
    let conn = links.get_mut(i).and_then(|l| match l.phase {
        Phase::Open { .. } => l.conn.as_mut(),
        _ => None,
    });
    let n = s.pump(conn);
    if s.has_notices() {
        ctx.session_notices();
    }
    n
}

/// Opens the gate once the user data stream subscription has an answer, or its wait is over.
#[cold]
fn release_gate(ctx: &mut Ctx<'_>, now_ns: u64) {
    let pending = ctx
        .session
        .as_ref()
        .is_some_and(|s| s.user_stream() == UserStream::Pending);
    if pending && now_ns < ctx.gate_until_ns {
        return;
    }
    ctx.orders_gate = false;
    ctx.gate_until_ns = 0;
    if pending {
        let conn_id = ctx.session.as_ref().map_or(0, |s| s.config().conn_id);
        (ctx.notices)(IoNotice::OrderSession {
            conn_id,
            message: "no answer to the user data stream subscription yet; market data starts anyway (GTC orders are refused until it is confirmed)".to_string(),
        });
    }
}

/// Closes every connection: close handshakes, bounded by `close_timeout`; then `ConnectionDown`
/// for each that was open.
fn shutdown(
    links: &mut [Link],
    ctx: &mut Ctx<'_>,
    poll: &mut Poll,
    events: &mut Events,
    cfg: &IoConfig,
    tokens: Tokens,
) {
    // Open connections get a close handshake; attempts still handshaking are just dropped.
    let mut any = false;
    for link in links.iter_mut() {
        let Some(c) = link.conn.as_mut() else {
            continue;
        };
        if matches!(link.phase, Phase::Open { .. }) && c.close().is_ok() {
            any = true;
        } else {
            c.deregister(poll.registry());
            link.conn = None;
        }
    }
    let deadline = (ctx.now)().saturating_add(ns(cfg.close_timeout));
    while any && (ctx.now)() < deadline {
        if poll.poll(events, Some(MAX_POLL_WAIT)).is_err() {
            break;
        }
        for ev in events.iter() {
            if let Some(link) = tokens.link(links, ev.token()) {
                on_ready(link, (ctx.now)(), &Timing::NONE, ctx, poll, true);
            }
        }
        any = links.iter().any(|l| l.conn.is_some());
    }
    let reason = "stopped";
    for link in links.iter_mut() {
        if let Some(mut c) = link.conn.take() {
            c.deregister(poll.registry());
        }
        if matches!(link.phase, Phase::Open { .. }) {
            let at = (ctx.now)();
            if link.rx.orders {
                if let Some(s) = ctx.session.as_mut() {
                    s.on_down();
                }
            } else {
                if !ctx.core_gone {
                    ctx.push_conn(at, link.rx.conn_id, link.spec.venue, false);
                }
                ctx.record(at, &mut link.rx, RecordKind::Disconnect, reason.as_bytes());
                ctx.decoders.link_down(link.spec.venue);
            }
            (ctx.notices)(IoNotice::Disconnected {
                conn_id: link.rx.conn_id,
                reason: reason.to_string(),
            });
        }
        link.phase = Phase::Dead;
    }
}

/// Stores the links' counters and states and the loop's figures in `shared`.
fn publish(links: &[Link], ctx: &Ctx<'_>, shared: &IoShared) {
    for (i, link) in links.iter().enumerate() {
        shared.store_conn(i, &link.rx.c, link.state());
    }
    let user_stream = ctx
        .session
        .as_ref()
        .map(|s| (s.user_stream(), s.counters().user_stream_refused));
    let recorder_dropped = ctx.recorder.as_ref().map(|rec| {
        let st = rec.stats();
        st.dropped + st.rejected
    });
    shared.store_loop(&ctx.tx.stats(), user_stream, recorder_dropped);
}

fn report(
    end: IoEnd,
    links: Vec<Link>,
    ctx: Ctx<'_>,
    shared: &IoShared,
    iterations: u64,
) -> IoReport {
    publish(&links, &ctx, shared);
    let mut totals = IoCounters::default();
    let connections = links
        .into_iter()
        .map(|l| {
            if !l.rx.orders {
                totals.add(&l.rx.c);
            }
            ConnReport {
                conn_id: l.spec.conn_id,
                url: l.spec.url,
                counters: l.rx.c,
                state: LinkState::Dead,
            }
        })
        .collect();
    IoReport {
        end,
        connections,
        totals,
        ring: ctx.tx.stats(),
        decode: ctx.decoders.total(),
        decode_venues: ctx.decoders.per_venue(),
        recorder: ctx.recorder.as_ref().map(RecorderTx::stats),
        iterations,
        decode_latency: ctx.decode_latency,
        session: ctx.session.map(|s| SessionReport {
            counters: *s.counters(),
            tick_to_wire: s.tick_to_wire().clone(),
            in_flight: s.in_flight(),
            wakes: s.wake().wakes(),
        }),
    }
}
