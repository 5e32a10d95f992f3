//! [`WasmStrategy`]: a deployed module behind the engine's [`Strategy`] trait, with the
//! supervision of a native leader (restart from the last good state, halt past the restart
//! intensity).

use crate::abi::{self, ev, ord, rec, rej};
use crate::guest::{Guest, HostState, Stop};
use crate::module::{DeployConfig, WasmModule};
use crate::stats::{StopKind, WasmStats};
use engine::book::OrderBook;
use engine::event::{AggTrade, BookTicker, RejectReason, Side, Trade};
use engine::status::{LeaderStatus, TraderStatus};
use engine::strategy::{Ctx, OrderUpdate, OrderUpdateKind, Strategy};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A WebAssembly strategy for one symbol; see the [crate docs](crate).
pub struct WasmStrategy {
    module: WasmModule,
    cfg: DeployConfig,
    params: Vec<u8>,
    /// `None` only while a replacement is being started (or after it failed for good).
    guest: Option<Guest>,
    /// The last state a completed callback saved.
    good_state: Box<[u8]>,
    good_len: Option<usize>,
    /// Times of the latest restarts (a ring of `max_restarts + 1`).
    recent: Box<[u64]>,
    recent_len: usize,
    recent_next: usize,
    halted: Option<String>,
    last_stop: Option<String>,
    stats: Arc<WasmStats>,
}

impl std::fmt::Debug for WasmStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmStrategy")
            .field("module", &self.module.name())
            .field("halted", &self.halted)
            .finish_non_exhaustive()
    }
}

#[inline]
fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(d) = b.get_mut(off..off + 4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

#[inline]
fn put64(b: &mut [u8], off: usize, v: i64) {
    if let Some(d) = b.get_mut(off..off + 8) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// Best bid (`Side::Sell` takes it) or ask, by native `sma_cross`'s rule: the bookTicker's if
/// positive, else the synced L2 book's, else 0; with its quantity.
#[inline]
fn best(ctx: &Ctx<'_>, bid: bool) -> (i64, i64) {
    if let Some(b) = ctx.bbo() {
        let (p, q) = if bid {
            (b.bid_px.0, b.bid_qty.0)
        } else {
            (b.ask_px.0, b.ask_qty.0)
        };
        if p > 0 {
            return (p, q);
        }
    }
    let book = ctx.book();
    if book.is_synced() {
        let l = if bid {
            book.best_bid()
        } else {
            book.best_ask()
        };
        if let Some(l) = l {
            return (l.price.0, l.qty.0);
        }
    }
    (0, 0)
}

/// Writes the context block for an event of `kind` and zeroes the record area.
#[inline]
fn write_context(b: &mut [u8], ctx: &Ctx<'_>, kind: u32) {
    if let Some(z) = b.get_mut(abi::OFF_FLAGS..abi::EVENT_BYTES) {
        z.fill(0);
    }
    put32(b, abi::OFF_KIND, kind);
    put32(b, abi::OFF_SYMBOL, ctx.symbol().index() as u32);
    put64(b, abi::OFF_NOW_NS, ctx.now_ns() as i64);
    put64(b, abi::OFF_MARKET_NS, ctx.market_ns() as i64);
    put64(b, abi::OFF_POSITION, ctx.position().qty);
    let (bp, bq) = best(ctx, true);
    let (ap, aq) = best(ctx, false);
    put64(b, abi::OFF_BID_PX, bp);
    put64(b, abi::OFF_BID_QTY, bq);
    put64(b, abi::OFF_ASK_PX, ap);
    put64(b, abi::OFF_ASK_QTY, aq);
    let r = ctx.rules();
    put64(b, abi::OFF_TICK_SIZE, r.tick_size.0);
    put64(b, abi::OFF_LOT_SIZE, r.lot_size.0);
    put64(b, abi::OFF_MIN_NOTIONAL, r.min_notional);
    put64(
        b,
        abi::OFF_LAST_PX,
        ctx.last_trade().map_or(0, |t| t.price.0),
    );
    let mut flags = 0;
    if ctx.bbo().is_some() {
        flags |= abi::FLAG_BBO;
    }
    if ctx.book().is_synced() {
        flags |= abi::FLAG_BOOK_SYNCED;
    }
    put32(b, abi::OFF_FLAGS, flags);
}

fn reject_code(r: RejectReason) -> u32 {
    match r {
        RejectReason::NoLiquidity => rej::NO_LIQUIDITY,
        RejectReason::InvalidOrder => rej::INVALID,
        RejectReason::TooManyOrders => rej::TOO_MANY_ORDERS,
        RejectReason::Venue => rej::VENUE,
        RejectReason::QueueFull => rej::QUEUE_FULL,
        RejectReason::Risk(_) => rej::RISK,
        RejectReason::Disconnected => rej::DISCONNECTED,
        _ => rej::OTHER,
    }
}

impl WasmStrategy {
    /// Starts a first instance of `module` with `cfg` (instantiate, ABI version and buffer
    /// checks, `tl_init`): slow, off the core thread. A failure is refused with the reason.
    pub fn deploy(module: WasmModule, cfg: DeployConfig) -> Result<WasmStrategy, String> {
        let mut s = Self::idle(module, cfg);
        let state = HostState::new(&s.cfg, s.stats.clone());
        match Guest::start(&s.module, state, &s.params, None, s.cfg.init_fuel) {
            Ok(g) => s.guest = Some(g),
            Err(e) => {
                let (_, (kind, why)) = *e;
                let what = match kind {
                    StopKind::BadReturn => String::new(),
                    k => format!(" ({})", k.name()),
                };
                return Err(format!(
                    "{}: refused at start{what}: {why}",
                    s.module.name()
                ));
            }
        }
        s.keep_saved_state();
        Ok(s)
    }

    /// [`deploy`](Self::deploy), or on failure a strategy that never trades and reports the
    /// reason as its halt (for a factory that must return a strategy, such as replay's, after
    /// the module was already deployed once with the same configuration).
    pub fn deploy_or_halted(module: WasmModule, cfg: DeployConfig) -> WasmStrategy {
        match Self::deploy(module.clone(), cfg.clone()) {
            Ok(s) => s,
            Err(why) => {
                let mut s = Self::idle(module, cfg);
                s.stats.halted.store(1, Relaxed);
                s.halted = Some(why);
                s
            }
        }
    }

    fn idle(module: WasmModule, cfg: DeployConfig) -> WasmStrategy {
        let stats = Arc::new(WasmStats::default());
        stats.fuel_budget.store(cfg.fuel, Relaxed);
        stats.memory_cap.store(cfg.memory_bytes as u64, Relaxed);
        WasmStrategy {
            good_state: vec![0; abi::STATE_MAX].into_boxed_slice(),
            good_len: None,
            recent: vec![0; cfg.policy.max_restarts as usize + 1].into_boxed_slice(),
            recent_len: 0,
            recent_next: 0,
            halted: None,
            last_stop: None,
            stats,
            params: cfg.params_text(),
            module,
            cfg,
            guest: None,
        }
    }

    /// The instance's counters (shared: the status tree and the metrics thread read them).
    pub fn stats(&self) -> Arc<WasmStats> {
        self.stats.clone()
    }

    /// The module.
    pub fn module(&self) -> &WasmModule {
        &self.module
    }

    /// The deployment's limits and parameters.
    pub fn config(&self) -> &DeployConfig {
        &self.cfg
    }

    /// Why the supervisor halted the symbol, if it did.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// The last refusal the host answered a call with, in words.
    pub fn last_refusal(&self) -> Option<&'static str> {
        self.guest
            .as_ref()
            .and_then(|g| g.store.data().last_refusal)
    }

    /// The last `tl_log` line.
    pub fn last_log(&self) -> Option<String> {
        self.guest.as_ref().and_then(|g| g.store.data().last_log())
    }

    /// Linear memory of the live instance, bytes.
    pub fn memory_bytes(&self) -> usize {
        self.guest.as_ref().map_or(0, |g| g.memory_bytes())
    }

    fn keep_saved_state(&mut self) {
        let Some(g) = self.guest.as_mut() else {
            return;
        };
        if let Some(s) = g.store.data_mut().take_pending_state() {
            self.good_state[..s.len()].copy_from_slice(s);
            self.good_len = Some(s.len());
        }
    }

    /// One event: context and record written by `fill`, then `tl_on_event` under the budget.
    #[inline]
    fn dispatch(&mut self, ctx: &mut Ctx<'_>, kind: u32, fill: impl FnOnce(&mut [u8])) {
        if self.halted.is_some() {
            return;
        }
        let Some(g) = self.guest.as_mut() else {
            return;
        };
        let area = g.event_area();
        write_context(area, ctx, kind);
        fill(area);
        let mark = ctx.intents_len();
        let (used, r) = g.call(ctx, self.cfg.fuel);
        let s = &self.stats;
        WasmStats::bump(&s.callbacks);
        s.fuel_last.store(used, Relaxed);
        s.fuel_total
            .store(s.fuel_total.load(Relaxed) + used, Relaxed);
        if used > s.fuel_max.load(Relaxed) {
            s.fuel_max.store(used, Relaxed);
        }
        match r {
            Ok(()) => {
                if let Some(st) = g.store.data_mut().take_pending_state() {
                    self.good_state[..st.len()].copy_from_slice(st);
                    self.good_len = Some(st.len());
                }
            }
            Err(stop) => self.stopped(ctx, mark, stop),
        }
    }

    /// A callback was stopped: its orders are dropped, the instance replaced by a fresh one
    /// restored from the last good state, the restart counted; too many within the window halt
    /// the symbol and cancel its orders.
    #[cold]
    #[inline(never)]
    fn stopped(&mut self, ctx: &mut Ctx<'_>, mark: usize, (kind, why): Stop) {
        if let Some(g) = self.guest.as_mut() {
            g.forget_since(ctx, mark);
        }
        ctx.discard_intents_since(mark);
        WasmStats::bump(&self.stats.stops[kind.index()]);
        let mut reason = format!("{}: {why}", kind.name());
        let Some(old) = self.guest.take() else {
            return;
        };
        // The host state (open orders, counters) carries over to the replacement.
        let mut state = old.store.into_data();
        loop {
            self.last_stop = Some(reason.clone());
            if self.count_restart(ctx, &reason) {
                return;
            }
            let saved = self.good_len.map(|n| &self.good_state[..n]);
            match Guest::start(&self.module, state, &self.params, saved, self.cfg.init_fuel) {
                Ok(g) => {
                    self.guest = Some(g);
                    // A state tl_init/tl_restore saved is good: they completed.
                    self.keep_saved_state();
                    return;
                }
                Err(e) => {
                    let (st, (kind, why)) = *e;
                    // The replacement failed too: another failure, counted the same way.
                    WasmStats::bump(&self.stats.stops[kind.index()]);
                    reason = format!("restart failed: {}: {why}", kind.name());
                    state = st;
                }
            }
        }
    }

    /// Counts a restart; true if it halts the symbol (orders canceled).
    #[cold]
    fn count_restart(&mut self, ctx: &mut Ctx<'_>, reason: &str) -> bool {
        WasmStats::bump(&self.stats.restarts);
        ctx.report_trader_restart();
        let now = ctx.now_ns();
        let cap = self.recent.len();
        self.recent[self.recent_next] = now;
        self.recent_next = (self.recent_next + 1) % cap;
        self.recent_len = (self.recent_len + 1).min(cap);
        let in_window = self.recent_restarts(now);
        if in_window > self.cfg.policy.max_restarts {
            self.halted = Some(format!(
                "{in_window} restarts within {} ms (at most {} allowed); last: {reason}",
                self.cfg.policy.window_ns / 1_000_000,
                self.cfg.policy.max_restarts
            ));
            self.stats.halted.store(1, Relaxed);
            ctx.report_symbol_halt();
            // Best effort: a full outbox leaves the orders to the operator's `kill`.
            let _ = ctx.cancel_all();
            return true;
        }
        false
    }

    fn recent_restarts(&self, now: u64) -> u32 {
        self.recent
            .iter()
            .take(self.recent_len)
            .filter(|&&t| now.saturating_sub(t) <= self.cfg.policy.window_ns)
            .count() as u32
    }
}

impl Strategy for WasmStrategy {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn channels(&self) -> Vec<String> {
        self.cfg.channels.clone()
    }

    #[inline]
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        self.dispatch(ctx, ev::TRADE, |b| {
            put64(b, abi::OFF_MARKET_NS, t.exch_ns as i64);
            put64(b, rec::TRADE_PRICE, t.price.0);
            put64(b, rec::TRADE_QTY, t.qty.0);
            put64(b, rec::TRADE_ID, t.trade_id as i64);
            put32(b, rec::TRADE_BUYER_MAKER, t.buyer_maker as u32);
        });
    }

    fn on_agg_trade(&mut self, ctx: &mut Ctx<'_>, t: &AggTrade) {
        self.dispatch(ctx, ev::AGG_TRADE, |b| {
            put64(b, abi::OFF_MARKET_NS, t.exch_ns as i64);
            put64(b, rec::AGG_PRICE, t.price.0);
            put64(b, rec::AGG_QTY, t.qty.0);
            put64(b, rec::AGG_ID, t.agg_id as i64);
            put32(b, rec::AGG_BUYER_MAKER, t.buyer_maker as u32);
            put32(b, rec::AGG_TRADE_COUNT, t.trade_count);
        });
    }

    fn on_book_ticker(&mut self, ctx: &mut Ctx<'_>, t: &BookTicker) {
        self.dispatch(ctx, ev::BOOK_TICKER, |b| {
            put64(b, rec::TOP_BID_PX, t.bid_px.0);
            put64(b, rec::TOP_BID_QTY, t.bid_qty.0);
            put64(b, rec::TOP_ASK_PX, t.ask_px.0);
            put64(b, rec::TOP_ASK_QTY, t.ask_qty.0);
            put64(b, rec::TOP_UPDATE_ID, t.update_id as i64);
        });
    }

    fn on_book(&mut self, ctx: &mut Ctx<'_>, book: &OrderBook) {
        let (bid, ask) = (book.best_bid(), book.best_ask());
        self.dispatch(ctx, ev::BOOK, |b| {
            if let Some(l) = bid {
                put64(b, rec::TOP_BID_PX, l.price.0);
                put64(b, rec::TOP_BID_QTY, l.qty.0);
            }
            if let Some(l) = ask {
                put64(b, rec::TOP_ASK_PX, l.price.0);
                put64(b, rec::TOP_ASK_QTY, l.qty.0);
            }
            put64(b, rec::TOP_UPDATE_ID, book.last_update_id() as i64);
        });
    }

    fn on_order(&mut self, ctx: &mut Ctx<'_>, u: &OrderUpdate) {
        let id = u.client_id.0;
        let owned = self.guest.as_ref().is_some_and(|g| g.store.data().owns(id));
        if !owned {
            return; // not one of this instance's (a cancel_all of someone else's, or forgotten)
        }
        let fin = u.is_final();
        self.dispatch(ctx, ev::ORDER, |b| {
            put64(b, rec::ORD_CLIENT_ID, id as i64);
            let kind = match u.kind {
                OrderUpdateKind::Accepted => ord::ACCEPTED,
                OrderUpdateKind::Rejected(r) => {
                    put32(b, rec::ORD_REJECT, reject_code(r));
                    ord::REJECTED
                }
                OrderUpdateKind::Filled { price, qty, fee } => {
                    put64(b, rec::ORD_FILL_PX, price.0);
                    put64(b, rec::ORD_FILL_QTY, qty.0);
                    put64(b, rec::ORD_FEE, fee);
                    ord::FILLED
                }
                OrderUpdateKind::Canceled => ord::CANCELED,
                OrderUpdateKind::TimedOut => ord::TIMED_OUT,
            };
            put32(b, rec::ORD_KIND, kind);
            put32(b, rec::ORD_SIDE, (u.side == Side::Sell) as u32);
            put64(b, rec::ORD_PRICE, u.price.0);
            put64(b, rec::ORD_LEAVES, u.leaves_qty.0);
            put64(b, rec::ORD_CUM_QTY, u.filled_qty.0);
            put32(b, rec::ORD_FINAL, fin as u32);
        });
        if fin {
            if let Some(g) = self.guest.as_mut() {
                g.store.data_mut().forget(id);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        self.dispatch(ctx, ev::TIMER, |b| put64(b, rec::TIMER_TOKEN, token as i64));
    }

    fn on_connection(&mut self, ctx: &mut Ctx<'_>, up: bool) {
        self.dispatch(ctx, ev::CONNECTION, |b| put32(b, rec::CONN_UP, up as u32));
    }

    fn leader_status(&self) -> Option<LeaderStatus> {
        let now = self
            .recent
            .iter()
            .take(self.recent_len)
            .copied()
            .max()
            .unwrap_or(0);
        let mut params = vec![
            ("module".to_string(), self.module.name().to_string()),
            ("fuel".to_string(), self.cfg.fuel.to_string()),
            (
                "memory_mb".to_string(),
                (self.cfg.memory_bytes / (1024 * 1024)).to_string(),
            ),
            (
                "orders_per_callback".to_string(),
                self.cfg.orders_per_callback.to_string(),
            ),
        ];
        if !self.cfg.channels.is_empty() {
            params.push(("channels".to_string(), self.cfg.channels.join(",")));
        }
        params.extend(self.cfg.params.iter().cloned());
        let mut state = self.stats.summary();
        if let Some(r) = self.last_refusal() {
            state.push_str(&format!("; last refusal: {r}"));
        }
        if let Some(l) = self.last_log() {
            state.push_str(&format!("; last log: {l}"));
        }
        Some(LeaderStatus {
            strategy: format!("wasm {}", self.module.name()),
            params,
            recent_restarts: self.recent_restarts(now),
            max_restarts: self.cfg.policy.max_restarts,
            window_ms: self.cfg.policy.window_ns / 1_000_000,
            halted: self.halted.clone(),
            cycles: 0,
            traders: vec![TraderStatus {
                index: 0,
                state,
                restarts: self.stats.restarts.load(Relaxed),
                last_panic: self.last_stop.clone(),
            }],
        })
    }
}
