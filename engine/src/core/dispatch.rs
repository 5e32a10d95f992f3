//! Dispatch: one event from a ring to the book, the paper venue, the portfolio and the strategies
//! routed to it, and the timers due. Every strategy callback goes through
//! [`State::dispatch_to`], the one place a strategy's [`Ctx`] is built (for the symbol's own
//! events and for another symbol's events it subscribed to). Book trouble (gap, crossed book, checksum mismatch,
//! rejected snapshot, lost data, disconnect) becomes a resync request here.
//!
//! Hot path: nothing here allocates; the cold paths (installing a strategy, a gap, a
//! connection change, a slow callback) are marked `#[cold]`.

use super::{Clock, State, SymbolSlot};
use crate::book::BookUpdate;
use crate::event::{Event, EventKind, GapReason};
use crate::fixed::{Price, Qty};
use crate::latency::Stage;
use crate::metrics::{SlowCallback, SLOW_REPORTS_PER_INTERVAL};
use crate::paper::Quotes;
use crate::route::Kind;
use crate::strategy::{Ctx, Strategy};
use crate::symbol::SymbolId;

impl State {
    /// Installs `strategy` on `symbol` and rebuilds the routes.
    #[cold]
    pub(super) fn install(
        &mut self,
        symbol: SymbolId,
        strategy: Box<dyn Strategy>,
    ) -> Result<(), crate::route::RouteError> {
        let channels = crate::route::parse_all(&strategy.channels())?;
        if let Some(s) = self.symbols.get_mut(symbol.index()) {
            s.strategy = Some(strategy);
            s.channels = channels;
        }
        self.rebuild_routes();
        Ok(())
    }

    #[cold]
    pub(super) fn rebuild_routes(&mut self) {
        let subs: Vec<Option<&[crate::route::Pattern]>> = self
            .symbols
            .iter()
            .map(|s| s.strategy.as_ref().map(|_| s.channels.as_slice()))
            .collect();
        self.routes.rebuild(&subs, &self.names);
    }

    /// Records the queue wait of `run.1` events received at `run.0` and dequeued at `dequeued`.
    #[inline(always)]
    pub(super) fn record_queue_wait(&mut self, dequeued: u64, run: (u64, u64)) {
        if run.1 > 0 {
            self.latency
                .record_n(Stage::QueueWait, dequeued.saturating_sub(run.0), run.1);
        }
    }

    /// One event from a ring (its queue wait is recorded by the caller, see
    /// [`State::record_queue_wait`]).
    #[inline]
    pub(super) fn handle<C: Clock>(&mut self, ev: &Event, clock: &C) {
        self.counters.events += 1;
        let exch = ev.exch_ns();
        if exch > self.market_ns {
            self.market_ns = exch;
        }
        if let (Some(off), true) = (self.wall_offset_ns, exch > 0) {
            const PLAUSIBLE_NS: i64 = 60_000_000_000;
            let lag = (ev.recv_ns as i64 + off).saturating_sub(exch as i64);
            if (0..=PLAUSIBLE_NS).contains(&lag) {
                self.latency.record(Stage::FeedLatency, lag as u64);
            } else {
                self.counters.feed_latency_unusable += 1;
            }
        }
        let sym = ev.symbol;
        match &ev.kind {
            EventKind::Gap(g) => return self.on_gap(sym, g.reason, g.lost),
            EventKind::ConnectionUp(c) => {
                return self.on_connection(true, c.venue, ev.recv_ns, clock)
            }
            EventKind::ConnectionDown(c) => {
                return self.on_connection(false, c.venue, ev.recv_ns, clock)
            }
            EventKind::OrderIdFloor(f) => {
                self.next_order_no = self.next_order_no.max(f.next);
                return;
            }
            _ => {}
        }
        let Some(slot) = self.symbols.get_mut(sym.index()) else {
            self.counters.unknown_symbol += 1;
            return;
        };
        match &ev.kind {
            EventKind::Trade(t) => {
                self.counters.trades += 1;
                slot.last_trade = Some(*t);
                slot.position.mark_to(t.price);
                self.match_paper(sym, ev.recv_ns, Some((t.price, t.qty)), clock);
                self.dispatch_routed(Kind::Trade, sym, ev.recv_ns, clock, |s, ctx| {
                    s.on_trade(ctx, t)
                });
            }
            EventKind::AggTrade(t) => {
                self.counters.agg_trades += 1;
                slot.position.mark_to(t.price);
                self.match_paper(sym, ev.recv_ns, Some((t.price, t.qty)), clock);
                self.dispatch_routed(Kind::AggTrade, sym, ev.recv_ns, clock, |s, ctx| {
                    s.on_agg_trade(ctx, t)
                });
            }
            EventKind::BookTicker(b) => {
                self.counters.book_tickers += 1;
                slot.bbo = Some(*b);
                self.match_paper(sym, ev.recv_ns, None, clock);
                self.dispatch_routed(Kind::BookTicker, sym, ev.recv_ns, clock, |s, ctx| {
                    s.on_book_ticker(ctx, b)
                });
            }
            EventKind::Depth(d) => {
                self.counters.depth_levels += 1;
                let r = slot.book.apply_depth(d);
                let synced = slot.book.is_synced();
                self.on_book_update(sym, r, ev.recv_ns, clock);
                if !synced {
                    // Diffs are being buffered: a snapshot fetched now bridges them (asked once
                    // until the book syncs).
                    self.request_resync(sym, false);
                }
            }
            EventKind::Snapshot(s) => {
                self.counters.snapshot_levels += 1;
                if self.feed_down[venue_index(&self.names, sym)] {
                    slot.book.discard_snapshot(s);
                } else {
                    let r = slot.book.apply_snapshot(s);
                    self.on_book_update(sym, r, ev.recv_ns, clock);
                }
            }
            EventKind::BookChecksum(c) => {
                let venue = self.names.get(sym.index()).map(|n| n.0);
                self.check_book(sym, venue, c.update_id, c.checksum);
            }
            EventKind::OrderAck(_)
            | EventKind::OrderReject(_)
            | EventKind::Fill(_)
            | EventKind::OrderCanceled(_) => self.on_order_event(ev, clock),
            EventKind::Gap(_)
            | EventKind::ConnectionUp(_)
            | EventKind::ConnectionDown(_)
            | EventKind::OrderIdFloor(_) => {}
        }
        if !self.order_updates_out.is_empty() {
            self.drain_order_updates(clock);
        }
    }

    /// What a book's update asks for (nothing, mostly: every level but a message's last).
    #[inline(always)]
    pub(super) fn on_book_update<C: Clock>(
        &mut self,
        sym: SymbolId,
        r: BookUpdate,
        recv_ns: u64,
        clock: &C,
    ) {
        if r != BookUpdate::None {
            self.book_updated(sym, r, recv_ns, clock);
        }
    }

    #[inline(never)]
    fn book_updated<C: Clock>(&mut self, sym: SymbolId, r: BookUpdate, recv_ns: u64, clock: &C) {
        match r {
            BookUpdate::None => {}
            BookUpdate::Changed => {
                self.dispatch_routed(Kind::Book, sym, recv_ns, clock, |s, ctx| {
                    let book = ctx.book();
                    s.on_book(ctx, book)
                });
            }
            BookUpdate::Synced => {
                self.counters.book_syncs += 1;
                if let Some(p) = self.resync_pending.get_mut(sym.index()) {
                    *p = false;
                }
                self.dispatch_routed(Kind::Book, sym, recv_ns, clock, |s, ctx| {
                    let book = ctx.book();
                    s.on_book(ctx, book)
                });
            }
            BookUpdate::Gap { .. } => {
                self.counters.book_gaps += 1;
                self.request_resync(sym, true);
            }
            BookUpdate::Crossed => {
                self.counters.book_crossed += 1;
                self.request_resync(sym, true);
            }
            BookUpdate::SnapshotRejected => {
                self.counters.snapshots_rejected += 1;
                // The snapshot was too old for the buffered diffs: ask again even if a request
                // is still marked pending (it was this one).
                self.request_resync(sym, true);
            }
        }
    }

    /// Compares a venue's checksum of `sym`'s book (after the message `update_id`) with the
    /// book's own: only a synced book that has applied exactly that message can be checked (a
    /// buffering or stale book has nothing to compare; a later id cannot happen since the
    /// checksum follows its message's last level). A mismatch makes the book stale and asks
    /// for a resync. Venues without a checksum algorithm here are not checked.
    #[inline]
    fn check_book(
        &mut self,
        sym: SymbolId,
        venue: Option<crate::venue::Venue>,
        update_id: u64,
        checksum: u32,
    ) {
        let Some(slot) = self.symbols.get_mut(sym.index()) else {
            return;
        };
        if !slot.book.is_synced() || slot.book.last_update_id() != update_id {
            return;
        }
        let ours = match venue {
            Some(crate::venue::Venue::Okx) => crate::checksum::okx_book_checksum(&slot.book),
            _ => return,
        };
        if ours == checksum {
            self.counters.checksums_verified += 1;
        } else {
            self.on_checksum_mismatch(sym);
        }
    }

    #[cold]
    fn on_checksum_mismatch(&mut self, sym: SymbolId) {
        if let Some(slot) = self.symbols.get_mut(sym.index()) {
            slot.book.checksum_mismatch();
        }
        self.counters.checksum_failures += 1;
        self.request_resync(sym, true);
    }

    /// Asks the snapshot side for a fresh REST snapshot of `sym` (once until it syncs, unless
    /// `again`). Without a sink (replay) the request is only counted.
    #[cold]
    pub(super) fn request_resync(&mut self, sym: SymbolId, again: bool) {
        if !self.depth_fed.get(sym.index()).copied().unwrap_or(false) {
            return; // no depth stream: nothing a snapshot could be bridged with
        }
        if self.feed_down[venue_index(&self.names, sym)] {
            return; // asked for when the feed is back (a snapshot now would be dropped)
        }
        let Some(pending) = self.resync_pending.get_mut(sym.index()) else {
            return;
        };
        if *pending && !again {
            return;
        }
        self.counters.resync_requests += 1;
        match self.resync_sink.as_mut() {
            Some(tx) => {
                if tx.push(sym).is_ok() {
                    *pending = true;
                    if let Some(notify) = self.resync_notify.as_mut() {
                        (notify.0)();
                    }
                } else {
                    self.counters.resync_requests_dropped += 1;
                }
            }
            None => *pending = true,
        }
    }

    #[cold]
    pub(super) fn on_gap(&mut self, sym: SymbolId, _reason: GapReason, lost: u64) {
        self.counters.feed_gaps += 1;
        self.counters.feed_events_lost += lost;
        for i in 0..self.symbols.len() {
            if sym == SymbolId::ALL || sym.index() == i {
                self.symbols[i].book.mark_stale();
                self.request_resync(SymbolId(i as u32), false);
            }
        }
    }

    #[cold]
    pub(super) fn on_connection<C: Clock>(
        &mut self,
        up: bool,
        venue: Option<crate::venue::Venue>,
        recv_ns: u64,
        clock: &C,
    ) {
        self.counters.connection_changes += 1;
        match venue {
            Some(v) => self.feed_down[v.index()] = !up,
            None => self.feed_down = [!up; crate::venue::Venue::COUNT],
        }
        for i in 0..self.symbols.len() {
            // Another venue's connection says nothing about this symbol's market.
            if venue.is_some_and(|v| self.names.get(i).map(|n| n.0) != Some(v)) {
                continue;
            }
            if !up {
                // Whatever happens until the feed is back is unknown: hide the book now and
                // ask for a snapshot once the feed is up again (one taken now would predate the
                // diffs the new connection will send). A snapshot still on its way is dropped
                // while the feed is down, so the one asked for after the reconnect is new.
                self.symbols[i].book.mark_disconnected();
                if let Some(p) = self.resync_pending.get_mut(i) {
                    *p = false;
                }
            }
            // Up: the snapshot is asked for at the new connection's first diff (Binance's
            // procedure: buffer, then fetch), so it cannot predate the diffs it must bridge.
            self.dispatch(SymbolId(i as u32), recv_ns, clock, |s, ctx| {
                s.on_connection(ctx, up)
            });
        }
    }

    /// Lets the paper venue see the market move, then handles the order events it produced.
    #[inline(always)]
    pub(super) fn match_paper<C: Clock>(
        &mut self,
        sym: SymbolId,
        recv_ns: u64,
        trade: Option<(Price, Qty)>,
        clock: &C,
    ) {
        if self.paper.open_orders() != 0 {
            self.match_open_orders(sym, recv_ns, trade, clock);
        }
    }

    #[inline(never)]
    fn match_open_orders<C: Clock>(
        &mut self,
        sym: SymbolId,
        recv_ns: u64,
        trade: Option<(Price, Qty)>,
        clock: &C,
    ) {
        let Some(slot) = self.symbols.get(sym.index()) else {
            return;
        };
        let quotes = match slot.bbo {
            Some(b) => Quotes {
                bid: Some((b.bid_px, b.bid_qty)),
                ask: Some((b.ask_px, b.ask_qty)),
            },
            None => Quotes {
                bid: slot.book.best_bid().map(|l| (l.price, l.qty)),
                ask: slot.book.best_ask().map(|l| (l.price, l.qty)),
            },
        };
        self.paper.on_market(
            sym,
            self.market_ns,
            recv_ns,
            quotes,
            trade,
            &mut self.order_updates_out,
        );
        self.drain_order_updates(clock);
    }

    /// Runs the callback on every strategy routed to `kind` events of `sym`.
    #[inline]
    pub(super) fn dispatch_routed<C: Clock>(
        &mut self,
        kind: Kind,
        sym: SymbolId,
        recv_ns: u64,
        clock: &C,
        f: impl Fn(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        let n = self.routes.targets(kind, sym.index()).len();
        for j in 0..n {
            let Some(&home) = self.routes.targets(kind, sym.index()).get(j) else {
                return;
            };
            if home as usize == sym.index() {
                self.dispatch(sym, recv_ns, clock, &f);
            } else {
                self.dispatch_cross(SymbolId(home), sym, recv_ns, clock, &f);
            }
        }
    }

    /// Times the callback that started at `t0` (a [`Clock::ticks`] reading) and routes what it
    /// asked for. The clock itself is read only when there is something to stamp.
    #[inline]
    pub(super) fn after_callback<C: Clock>(
        &mut self,
        sym: SymbolId,
        recv_ns: u64,
        t0: u64,
        clock: &C,
    ) {
        let took = clock.span_ns(t0, clock.ticks());
        self.latency.record(Stage::Strategy, took);
        if took > self.slow_callback_ns {
            self.slow_callback(sym, took, clock.now_ns());
        }
        if !self.outbox.is_empty() {
            self.route(sym, recv_ns, clock.now_ns());
        }
    }

    /// Runs `sym`'s strategy on an event of its own symbol.
    #[inline]
    pub(super) fn dispatch<C: Clock>(
        &mut self,
        sym: SymbolId,
        recv_ns: u64,
        clock: &C,
        f: impl FnOnce(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        self.dispatch_to(sym, sym, recv_ns, clock, f);
    }

    /// Runs `home`'s strategy on an event of `view` (another symbol it subscribed to): the
    /// context shows `view`'s market, `home`'s rules, position and orders.
    #[inline(never)]
    pub(super) fn dispatch_cross<C: Clock>(
        &mut self,
        home: SymbolId,
        view: SymbolId,
        recv_ns: u64,
        clock: &C,
        f: impl FnOnce(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        self.dispatch_to(home, view, recv_ns, clock, f);
    }

    /// The one place a strategy's [`Ctx`] is built: `home`'s strategy, rules and position;
    /// `view`'s book, best bid/ask and last trade (`view == home` for the symbol's own events).
    /// Runs one callback with it, timing it, then routes what it asked for. No allocation, no
    /// clock read before the strategy is found.
    #[inline(always)]
    fn dispatch_to<C: Clock>(
        &mut self,
        home: SymbolId,
        view: SymbolId,
        recv_ns: u64,
        clock: &C,
        f: impl FnOnce(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        // Split the slots around `home` so its strategy can be borrowed mutably while every
        // market (its own included) stays readable through `Ctx::market`.
        let Some((before, rest)) = split_at_checked_mut(&mut self.symbols, home.index()) else {
            return;
        };
        let Some((h, after)) = rest.split_first_mut() else {
            return;
        };
        let SymbolSlot {
            strategy: Some(strategy),
            rules,
            position,
            book,
            bbo,
            last_trade,
            ..
        } = h
        else {
            return;
        };
        let markets = MarketsView {
            before,
            home: (&*book, bbo.as_ref(), last_trade.as_ref()),
            after,
            names: &self.names,
        };
        let Some(market) = crate::strategy::Markets::market(&markets, view) else {
            return;
        };
        let t0 = clock.ticks();
        {
            let mut ctx = Ctx::new(
                self.now_ns,
                self.market_ns,
                home,
                rules,
                market.book,
                market.bbo,
                market.last_trade,
                position,
                &mut self.outbox,
                &mut self.timers,
                &mut self.next_order_no,
            );
            ctx.event_symbol = view;
            ctx.markets = Some(&markets);
            f(strategy.as_mut(), &mut ctx);
        }
        self.after_callback(home, recv_ns, t0, clock);
    }

    #[cold]
    #[inline(never)]
    pub(super) fn slow_callback(&mut self, sym: SymbolId, took: u64, at_ns: u64) {
        self.counters.slow_callbacks += 1;
        let strategy = self
            .symbols
            .get(sym.index())
            .and_then(|s| s.strategy.as_ref())
            .map(|s| s.name())
            .unwrap_or("?");
        if self.slow_recent.len() < SLOW_REPORTS_PER_INTERVAL {
            self.slow_recent.push(SlowCallback {
                strategy,
                symbol: sym,
                duration_ns: took,
                at_ns,
            });
        } else {
            self.slow_unreported += 1;
        }
    }

    /// An asap replay reached a frame whose time is `at`: the clock moves there (never back)
    /// and the timers due by then run, before the frame's events.
    #[inline]
    pub(super) fn frame_reached<C: Clock>(&mut self, at: u64, clock: &C) {
        if at > self.now_ns {
            self.now_ns = at;
            self.run_timers(at, clock);
        }
    }

    pub(super) fn run_timers<C: Clock>(&mut self, now: u64, clock: &C) {
        while let Some(t) = self.timers.pop_due(now) {
            self.counters.timers_fired += 1;
            self.latency
                .record(Stage::TimerLag, now.saturating_sub(t.at_ns));
            self.dispatch(t.symbol, now, clock, |s, ctx| s.on_timer(ctx, t.token));
            if !self.order_updates_out.is_empty() {
                self.drain_order_updates(clock);
            }
        }
    }
}

/// `slice.split_at_mut(mid)` when `mid <= len`.
#[inline(always)]
fn split_at_checked_mut<T>(slice: &mut [T], mid: usize) -> Option<(&mut [T], &mut [T])> {
    (mid <= slice.len()).then(|| slice.split_at_mut(mid))
}

/// Every symbol's market during one callback, while the home symbol's strategy is borrowed:
/// the slots before it, its own market, the slots after it.
#[derive(Debug)]
struct MarketsView<'a> {
    before: &'a [SymbolSlot],
    home: (
        &'a crate::book::OrderBook,
        Option<&'a crate::event::BookTicker>,
        Option<&'a crate::event::Trade>,
    ),
    after: &'a [SymbolSlot],
    names: &'a [(crate::venue::Venue, String)],
}

impl crate::strategy::Markets for MarketsView<'_> {
    #[inline]
    fn market(&self, id: SymbolId) -> Option<crate::strategy::Market<'_>> {
        let i = id.index();
        let (venue, name) = self.names.get(i).map(|(v, n)| (*v, n.as_str()))?;
        let (book, bbo, last_trade) = match i.checked_sub(self.before.len()) {
            None => {
                let s = self.before.get(i)?;
                (&s.book, s.bbo.as_ref(), s.last_trade.as_ref())
            }
            Some(0) => self.home,
            Some(k) => {
                let s = self.after.get(k - 1)?;
                (&s.book, s.bbo.as_ref(), s.last_trade.as_ref())
            }
        };
        Some(crate::strategy::Market {
            symbol: id,
            venue,
            name,
            book,
            bbo,
            last_trade,
        })
    }

    fn find(&self, venue: crate::venue::Venue, name: &str) -> Option<SymbolId> {
        self.names
            .iter()
            .position(|(v, n)| *v == venue && n.eq_ignore_ascii_case(name))
            .map(|i| SymbolId(i as u32))
    }
}

/// The index of `sym`'s venue (Binance spot for an id the table does not know).
#[inline]
fn venue_index(names: &[(crate::venue::Venue, String)], sym: SymbolId) -> usize {
    names.get(sym.index()).map_or(0, |n| n.0.index())
}
