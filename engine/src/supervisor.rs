//! Supervision inside the single-threaded core, after an OTP supervision tree: per symbol a
//! [`Leader`] owns N traders of one strategy, keeps each trader's last known state, restarts a
//! trader whose callback panicked from that state, replaces a trader that finished its trade
//! cycle with a fresh one, and halts the symbol when restarts come too often.
//!
//! ```text
//!  core ── symbol BTCUSDT ── Leader<L> ─┬─ trader 0: state + snapshot
//!                                       ├─ trader 1: state + snapshot
//!                                       └─ trader N-1
//! ```
//!
//! What the seed's processes give, here without a process, a mailbox or a heap allocation per
//! event:
//!
//! - **Last known state.** A trader's state is a plain `Clone` value ([`TraderLogic::State`];
//!   `Copy` for the bundled strategies). After every callback that returns, the leader compares it
//!   with the snapshot and copies it on a change: the snapshot is the state as of the last
//!   callback that completed.
//! - **Crash and restart.** Every callback runs under `catch_unwind`. A panic discards what the
//!   callback asked the core for (its intents are dropped, nothing is sent), puts the snapshot
//!   back, counts the restart (the core's `trader_restarts`, the status tree) and keeps its
//!   message. The other traders and symbols never notice: they are called as if nothing happened.
//!   (The release profile must unwind: `panic = "unwind"`, as the workspace sets it.)
//! - **Finished traders.** A trader whose state says its cycle is complete
//!   ([`TraderLogic::is_finished`]) is replaced by a fresh one ([`TraderLogic::fresh`]), as the
//!   seed's leader replaced a trader process that exited normally.
//! - **Restart intensity.** More than [`RestartPolicy::max_restarts`] restarts within
//!   [`RestartPolicy::window_ns`] (OTP's `max_restarts` / `max_seconds`) halt the symbol: every
//!   open order on it is canceled, no trader is called again, and the reason is kept for the
//!   status tree and counted (`symbol_halts`). Other symbols trade on. Starting the symbol again
//!   (`stop-trading`, `start-trading`) gives it a new leader.
//!
//! Orders are routed to the trader that placed them: the leader notes the client ids each
//! trader's callback submitted in a fixed table (no map), and asks [`TraderLogic::owns`] for
//! anything it does not know (after a restart from a snapshot that holds the order).

use crate::event::{AggTrade, BookTicker, ClientOrderId, Trade, TraderBlob};
use crate::status::{LeaderStatus, TraderStatus};
use crate::strategy::{Ctx, Intent, OrderUpdate, ParamError, Params, Strategy};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// How often traders may crash before their symbol is halted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within the window (the next one halts the symbol).
    pub max_restarts: u32,
    /// The window, ns of the core's clock.
    pub window_ns: u64,
}

impl Default for RestartPolicy {
    /// 3 restarts within 5 seconds.
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 3,
            window_ns: 5_000_000_000,
        }
    }
}

impl RestartPolicy {
    /// Reads `max_restarts` (`0..=1000`) and `restart_window_ms` (`1..=3_600_000`) from `p`.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let d = RestartPolicy::default();
        let max_restarts = p.u64_in("max_restarts", d.max_restarts as u64, 0, 1000)? as u32;
        let window_ms = p.u64_in("restart_window_ms", d.window_ns / 1_000_000, 1, 3_600_000)?;
        Ok(RestartPolicy {
            max_restarts,
            window_ns: window_ms * 1_000_000,
        })
    }
}

/// A strategy's trading logic, split into traders the [`Leader`] supervises. The logic holds
/// what all traders share (parameters, counters); each trader is only its [`State`](Self::State).
pub trait TraderLogic: Send + 'static {
    /// One trader's state: a plain value (cloning it must not allocate for the bundled
    /// strategies).
    type State: Clone + PartialEq + Send + core::fmt::Debug;

    /// The strategy's name.
    fn name(&self) -> &'static str;
    /// Traders per symbol.
    fn traders(&self) -> usize;
    /// A new trader's state.
    fn fresh(&self, index: usize) -> Self::State;
    /// True once the trader finished its trade cycle (it is then replaced by a fresh one).
    fn is_finished(&self, state: &Self::State) -> bool;
    /// True if `id` is this trader's live order.
    fn owns(&self, state: &Self::State, id: ClientOrderId) -> bool;
    /// The state in words, for the status tree.
    fn describe(&self, state: &Self::State) -> String;
    /// The current parameters, for the status tree.
    fn params(&self) -> Vec<(String, String)>;
    /// Changes parameters, all or none (see [`Strategy::set_params`]).
    fn set_params(&mut self, params: &Params) -> Result<String, ParamError>;

    /// The channels the traders hear (see [`Strategy::channels`]); the default, none declared,
    /// is every kind of the symbol's own market. Declaring only the kinds the traders read
    /// (`["trade"]`) spares every trader a call per event of the other kinds.
    fn channels(&self) -> Vec<String> {
        Vec::new()
    }

    /// A trade printed.
    fn on_trade(&mut self, _st: &mut Self::State, _ctx: &mut Ctx<'_>, _t: &Trade) {}
    /// An aggregated trade printed.
    fn on_agg_trade(&mut self, _st: &mut Self::State, _ctx: &mut Ctx<'_>, _t: &AggTrade) {}
    /// The best bid/ask changed.
    fn on_book_ticker(&mut self, _st: &mut Self::State, _ctx: &mut Ctx<'_>, _b: &BookTicker) {}
    /// One of this trader's orders changed.
    fn on_order(&mut self, _st: &mut Self::State, _ctx: &mut Ctx<'_>, _u: &OrderUpdate) {}
    /// An update for an order no trader owns (a late word on a finished order).
    fn on_unowned_order(&mut self, _u: &OrderUpdate) {}
    /// A timer fired (every trader hears it).
    fn on_timer(&mut self, _st: &mut Self::State, _ctx: &mut Ctx<'_>, _token: u64) {}

    /// Encodes a state for the journal (at most [`TraderBlob::CAPACITY`] bytes); `None` (the
    /// default): this strategy's traders are not journaled.
    fn encode(&self, _st: &Self::State) -> Option<TraderBlob> {
        None
    }
    /// Decodes what [`encode`](Self::encode) wrote; `None` if it cannot.
    fn decode(&self, _bytes: &[u8]) -> Option<Self::State> {
        None
    }
}

/// Most orders the leader remembers as placed by a trader (older ones fall back to
/// [`TraderLogic::owns`]).
const ROUTES: usize = 256;

/// A leader of traders for one symbol; see the [module docs](self). Implements [`Strategy`], so
/// the core runs it like any strategy.
pub struct Leader<L: TraderLogic> {
    logic: L,
    states: Box<[L::State]>,
    snapshots: Box<[L::State]>,
    restarts: Box<[u64]>,
    last_panic: Box<[Option<String>]>,
    /// `(client id, trader)` of recent orders, a ring.
    routes: Box<[(ClientOrderId, u32)]>,
    next_route: usize,
    policy: RestartPolicy,
    /// Times of the latest restarts (a ring of `max_restarts + 1`).
    recent: Box<[u64]>,
    recent_len: usize,
    recent_next: usize,
    halted: Option<String>,
    cycles: u64,
}

impl<L: TraderLogic> core::fmt::Debug for Leader<L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Leader")
            .field("strategy", &self.logic.name())
            .field("states", &self.states)
            .field("halted", &self.halted)
            .finish_non_exhaustive()
    }
}

/// The message of a panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

impl<L: TraderLogic> Leader<L> {
    /// A leader of `logic.traders()` fresh traders (everything allocated now).
    pub fn new(logic: L, policy: RestartPolicy) -> Self {
        let n = logic.traders().max(1);
        let states: Box<[L::State]> = (0..n).map(|i| logic.fresh(i)).collect();
        Leader {
            snapshots: states.clone(),
            states,
            restarts: vec![0; n].into_boxed_slice(),
            last_panic: vec![None; n].into_boxed_slice(),
            routes: vec![(ClientOrderId(u64::MAX), u32::MAX); ROUTES].into_boxed_slice(),
            next_route: 0,
            recent: vec![0; policy.max_restarts as usize + 1].into_boxed_slice(),
            recent_len: 0,
            recent_next: 0,
            policy,
            halted: None,
            cycles: 0,
            logic,
        }
    }

    /// The shared logic.
    pub fn logic(&self) -> &L {
        &self.logic
    }

    /// Each trader's current state.
    pub fn states(&self) -> &[L::State] {
        &self.states
    }

    /// Each trader's last snapshot (its state after its last completed callback).
    pub fn snapshots(&self) -> &[L::State] {
        &self.snapshots
    }

    /// Restarts per trader.
    pub fn restarts(&self) -> &[u64] {
        &self.restarts
    }

    /// Trade cycles completed (finished traders replaced).
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Why the symbol was halted, if it was.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Puts `state` back as trader `index`'s state and snapshot (after a process restart, from
    /// the journal). False if there is no such trader.
    pub fn restore(&mut self, index: usize, state: L::State) -> bool {
        match (self.states.get_mut(index), self.snapshots.get_mut(index)) {
            (Some(s), Some(snap)) => {
                *s = state.clone();
                *snap = state;
                true
            }
            _ => false,
        }
    }

    /// Runs `f` on trader `i` under supervision.
    #[inline]
    fn call(
        &mut self,
        i: usize,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut L, &mut L::State, &mut Ctx<'_>),
    ) {
        let mark = ctx.intents_len();
        let (logic, states) = (&mut self.logic, &mut self.states);
        let Some(state) = states.get_mut(i) else {
            return;
        };
        let r = catch_unwind(AssertUnwindSafe(|| f(logic, state, ctx)));
        match r {
            Ok(()) => {
                self.note_orders(i, ctx, mark);
                if self.logic.is_finished(&self.states[i]) {
                    self.cycles += 1;
                    self.states[i] = self.logic.fresh(i);
                }
                if self.states[i] != self.snapshots[i] {
                    self.snapshots[i] = self.states[i].clone();
                    if ctx.journals_trader_states() {
                        self.journal(i, ctx);
                    }
                }
            }
            Err(payload) => self.crashed(i, ctx, mark, panic_message(payload.as_ref())),
        }
    }

    /// Hands trader `i`'s new snapshot to the journal.
    #[cold]
    fn journal(&mut self, i: usize, ctx: &mut Ctx<'_>) {
        if let Some(blob) = self.logic.encode(&self.snapshots[i]) {
            // A full outbox loses this snapshot's journal record, not the state: the next
            // change is journaled again.
            let _ = ctx.journal_trader_state(i as u16, blob);
        }
    }

    /// Remembers which trader placed the orders submitted since `mark`.
    #[inline]
    fn note_orders(&mut self, i: usize, ctx: &Ctx<'_>, mark: usize) {
        for intent in ctx.intents_since(mark) {
            if let Intent::New(id, _) = intent {
                self.routes[self.next_route] = (*id, i as u32);
                self.next_route = (self.next_route + 1) % ROUTES;
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn crashed(&mut self, i: usize, ctx: &mut Ctx<'_>, mark: usize, msg: String) {
        // Nothing the crashed callback asked for is sent.
        ctx.discard_intents_since(mark);
        self.states[i] = self.snapshots[i].clone();
        self.restarts[i] += 1;
        self.last_panic[i] = Some(msg.clone());
        ctx.report_trader_restart();
        let now = ctx.now_ns();
        let cap = self.recent.len();
        self.recent[self.recent_next] = now;
        self.recent_next = (self.recent_next + 1) % cap;
        self.recent_len = (self.recent_len + 1).min(cap);
        let in_window = self.recent_restarts(now);
        if in_window > self.policy.max_restarts {
            let reason = format!(
                "{} restarts within {} ms (at most {} allowed); last: trader {i} panicked: {msg}",
                in_window,
                self.policy.window_ns / 1_000_000,
                self.policy.max_restarts
            );
            self.halted = Some(reason);
            ctx.report_symbol_halt();
            // Best effort: a full outbox leaves the orders to the operator's `kill`.
            let _ = ctx.cancel_all();
        }
    }

    /// The recent restarts within the window, as of `now`.
    fn recent_restarts(&self, now: u64) -> u32 {
        self.recent
            .iter()
            .take(self.recent_len)
            .filter(|&&t| now.saturating_sub(t) <= self.policy.window_ns)
            .count() as u32
    }

    /// Calls every trader in turn.
    #[inline]
    fn each(&mut self, ctx: &mut Ctx<'_>, mut f: impl FnMut(&mut L, &mut L::State, &mut Ctx<'_>)) {
        for i in 0..self.states.len() {
            if self.halted.is_some() {
                return;
            }
            self.call(i, ctx, &mut f);
        }
    }

    /// The trader that owns order `id`.
    fn owner(&self, id: ClientOrderId) -> Option<usize> {
        let routed = self
            .routes
            .iter()
            .find(|r| r.0 == id)
            .map(|r| r.1 as usize)
            .filter(|&i| i < self.states.len() && self.logic.owns(&self.states[i], id));
        routed.or_else(|| self.states.iter().position(|s| self.logic.owns(s, id)))
    }
}

impl<L: TraderLogic> Strategy for Leader<L> {
    fn name(&self) -> &'static str {
        self.logic.name()
    }

    fn channels(&self) -> Vec<String> {
        self.logic.channels()
    }

    #[inline]
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        self.each(ctx, |l, s, c| l.on_trade(s, c, t));
    }

    fn on_agg_trade(&mut self, ctx: &mut Ctx<'_>, t: &AggTrade) {
        self.each(ctx, |l, s, c| l.on_agg_trade(s, c, t));
    }

    fn on_book_ticker(&mut self, ctx: &mut Ctx<'_>, b: &BookTicker) {
        self.each(ctx, |l, s, c| l.on_book_ticker(s, c, b));
    }

    fn on_order(&mut self, ctx: &mut Ctx<'_>, u: &OrderUpdate) {
        if self.halted.is_some() {
            return;
        }
        match self.owner(u.client_id) {
            Some(i) => self.call(i, ctx, |l, s, c| l.on_order(s, c, u)),
            None => self.logic.on_unowned_order(u),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        self.each(ctx, |l, s, c| l.on_timer(s, c, token));
    }

    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        self.logic.set_params(params)
    }

    fn restore_trader(&mut self, trader: u16, state: &[u8]) -> bool {
        match self.logic.decode(state) {
            Some(s) => self.restore(trader as usize, s),
            None => false,
        }
    }

    fn leader_status(&self) -> Option<LeaderStatus> {
        let now = self
            .recent
            .iter()
            .take(self.recent_len)
            .copied()
            .max()
            .unwrap_or(0);
        Some(LeaderStatus {
            strategy: self.logic.name().to_string(),
            params: self.logic.params(),
            recent_restarts: self.recent_restarts(now),
            max_restarts: self.policy.max_restarts,
            window_ms: self.policy.window_ns / 1_000_000,
            halted: self.halted.clone(),
            cycles: self.cycles,
            traders: self
                .states
                .iter()
                .enumerate()
                .map(|(index, s)| TraderStatus {
                    index,
                    state: self.logic.describe(s),
                    restarts: self.restarts[index],
                    last_panic: self.last_panic[index].clone(),
                })
                .collect(),
        })
    }
}
