//! The status tree a running core reports (`tickline ctl status`): the core, each symbol, and
//! the supervision tree of a symbol whose strategy is a leader of traders.
//!
//! Plain data, built on demand by the core (a cold path that allocates) and by
//! [`crate::supervisor::Leader`]; [`crate::control::Reply::Status`] carries it to the control
//! thread.

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
