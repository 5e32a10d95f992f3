//! Runtime control of a running core: the commands a control socket hands over (through a
//! crossbeam channel, checked by [`crate::core::Core::poll`] about once a millisecond, never per
//! event), and what the core answers.
//!
//! Everything that allocates or blocks happens before a command reaches the core: the control
//! thread parses and validates the request, builds the strategy, fetches the symbol's filters and
//! subscribes the feed. The core applies a command whole or not at all, and always answers.

use crate::strategy::{Params, Strategy, SymbolRules};
use crate::symbol::SymbolId;

/// A command for the core.
pub enum Command {
    /// Start trading `symbol` with `strategy` (already built and validated), after setting its
    /// filters when given. Refused if the symbol already trades.
    StartTrading {
        /// The symbol.
        symbol: SymbolId,
        /// Its strategy (a leader of traders, or any strategy).
        strategy: Box<dyn Strategy>,
        /// Tick, lot and minimum notional from the venue, if fetched.
        rules: Option<SymbolRules>,
    },
    /// Cancel the symbol's open orders, then stop its strategy (the position stays).
    StopTrading {
        /// The symbol.
        symbol: SymbolId,
    },
    /// Change strategy parameters on `symbol` (all or none: [`Strategy::set_params`]).
    Set {
        /// The symbol.
        symbol: SymbolId,
        /// `key = value` pairs.
        params: Params,
    },
    /// Trading state HALTED: no new orders (cancels still go out).
    Halt,
    /// Trading state ACTIVE again (lifts a kill too).
    Resume,
    /// The kill switch: halt and cancel every open order.
    Kill,
    /// Report the status tree.
    Status,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::StartTrading {
                symbol, strategy, ..
            } => f
                .debug_struct("StartTrading")
                .field("symbol", symbol)
                .field("strategy", &strategy.name())
                .finish_non_exhaustive(),
            Command::StopTrading { symbol } => f
                .debug_struct("StopTrading")
                .field("symbol", symbol)
                .finish(),
            Command::Set { symbol, params } => f
                .debug_struct("Set")
                .field("symbol", symbol)
                .field("params", params)
                .finish(),
            Command::Halt => f.write_str("Halt"),
            Command::Resume => f.write_str("Resume"),
            Command::Kill => f.write_str("Kill"),
            Command::Status => f.write_str("Status"),
        }
    }
}

/// A command and where to send the answer.
#[derive(Debug)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// The answer goes here (a bounded channel of one; the core never blocks on it).
    pub reply: crossbeam_channel::Sender<Reply>,
}

/// The core's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Done; what happened, in words.
    Done(String),
    /// Refused, nothing changed; why.
    Refused(String),
    /// The status tree's engine part.
    Status(CoreStatus),
}

/// The core's part of the status tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoreStatus {
    /// ACTIVE, REDUCING, HALTED, KILLED, or "unchecked" without pre-trade risk.
    pub trading_state: String,
    /// Events handled.
    pub events: u64,
    /// Orders sent.
    pub orders: u64,
    /// Fills.
    pub fills: u64,
    /// Traders restarted after a panic, over every symbol.
    pub trader_restarts: u64,
    /// Symbols halted by their supervisor.
    pub symbol_halts: u64,
    /// Every symbol of the table, trading or not.
    pub symbols: Vec<SymbolStatus>,
}

/// One symbol.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SymbolStatus {
    /// Its name.
    pub symbol: String,
    /// A strategy runs on it.
    pub trading: bool,
    /// The strategy's name.
    pub strategy: Option<String>,
    /// The book is synced.
    pub book_synced: bool,
    /// Position, base units (decimal text).
    pub position: String,
    /// Average entry price (decimal text).
    pub avg_price: String,
    /// Realized PnL, quote units.
    pub realized: f64,
    /// Unrealized PnL at the mark, quote units.
    pub unrealized: f64,
    /// Fees paid, quote units.
    pub fees: f64,
    /// Orders open on it.
    pub open_orders: usize,
    /// The supervision tree under it, if the strategy is a leader.
    pub leader: Option<LeaderStatus>,
}

/// A leader and its traders.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaderStatus {
    /// The strategy its traders run.
    pub strategy: String,
    /// Current parameters, `key = value`.
    pub params: Vec<(String, String)>,
    /// Restarts within the intensity window / allowed.
    pub recent_restarts: u32,
    /// Most restarts allowed in the window before the symbol is halted.
    pub max_restarts: u32,
    /// The window, ms.
    pub window_ms: u64,
    /// Why the symbol was halted by its supervisor, if it was.
    pub halted: Option<String>,
    /// Trade cycles completed (finished traders replaced by fresh ones).
    pub cycles: u64,
    /// The traders.
    pub traders: Vec<TraderStatus>,
}

/// One trader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraderStatus {
    /// Its slot.
    pub index: usize,
    /// Its state, in words.
    pub state: String,
    /// Times it was restarted after a panic.
    pub restarts: u64,
    /// Its last panic message, if any.
    pub last_panic: Option<String>,
}
