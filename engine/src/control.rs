//! Runtime control of a running core: the commands a control socket hands over (through a
//! crossbeam channel, checked by [`crate::core::Core::poll`] about once a millisecond, never per
//! event), and what the core answers.
//!
//! Everything that allocates or blocks happens before a command reaches the core: the control
//! thread parses and validates the request, builds the strategy, fetches the symbol's filters and
//! subscribes the feed. The core applies a command whole or not at all, and always answers.

use crate::status::CoreStatus;
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
