//! The engine's structured log events, raised by the threads that learn of them: the I/O
//! thread's notices ([`io_notice`]) and what the metrics thread reads in each interval's
//! snapshot ([`IntervalEvents`]: slow callbacks, risk denials, trader restarts and halts, books
//! that lost or regained sync). The core itself raises none.
//!
//! Targets: `tickline::io` (connections, decode errors, the venue's errors, the order session),
//! `tickline::core` (what the core reported in a snapshot).

use crate::metrics::SLOW_LOG_PER_INTERVAL;
use engine::metrics::{CoreCounters, MetricsSnapshot};
use engine::symbol::SymbolTable;
use feeds::io::IoNotice;
use tracing::{error, info, warn};

/// Logs one I/O notice as one event with its fields (target `tickline::io`).
pub fn io_notice(n: &IoNotice) {
    const T: &str = "tickline::io";
    match n {
        IoNotice::Connected { conn_id } => info!(target: T, conn_id, "connected"),
        IoNotice::Disconnected { conn_id, reason } if reason == "stopped" => {
            info!(target: T, conn_id, reason = %reason, "disconnected")
        }
        IoNotice::Disconnected { conn_id, reason } => {
            warn!(target: T, conn_id, reason = %reason, "disconnected")
        }
        IoNotice::ConnectFailed { conn_id, error } => {
            warn!(target: T, conn_id, error = %error, "connect failed")
        }
        IoNotice::Reconnecting {
            conn_id,
            attempt,
            delay,
        } => info!(
            target: T,
            conn_id,
            attempt,
            delay_ms = delay.as_millis() as u64,
            "reconnecting"
        ),
        IoNotice::GaveUp { conn_id, reason } => {
            error!(target: T, conn_id, reason = %reason, "connection given up")
        }
        IoNotice::VenueError { conn_id, message } => {
            warn!(target: T, conn_id, reply = %message, "the venue answered with an error")
        }
        IoNotice::DecodeError {
            conn_id,
            error,
            count,
        } => warn!(target: T, conn_id, count, error = %error, "decode error"),
        IoNotice::OrderSession { conn_id, message } => {
            info!(target: "tickline::orders", conn_id, "{message}")
        }
        IoNotice::CommandRejected { conn_id, reason } => {
            warn!(target: T, conn_id, reason = %reason, "command rejected")
        }
        other => info!(target: T, "{other}"),
    }
}

/// What the metrics thread logs from each snapshot: it remembers the counters and each book's
/// sync state of the interval before, and logs what changed.
#[derive(Debug, Default)]
pub struct IntervalEvents {
    prev: CoreCounters,
    synced: Vec<bool>,
}

impl IntervalEvents {
    /// Logs `snap`'s events (target `tickline::core`): every slow callback (at most
    /// [`SLOW_LOG_PER_INTERVAL`], then one event counting the rest), orders denied by risk,
    /// trader restarts and symbol halts since the last interval, and each book that lost or
    /// regained sync.
    pub fn log(&mut self, snap: &MetricsSnapshot, symbols: &SymbolTable) {
        const T: &str = "tickline::core";
        let name = |id| symbols.name(id).unwrap_or("?");
        for s in snap.slow.iter().take(SLOW_LOG_PER_INTERVAL) {
            warn!(
                target: T,
                strategy = s.strategy,
                symbol = name(s.symbol),
                callback_ns = s.duration_ns,
                "slow callback"
            );
        }
        let more =
            snap.slow.len().saturating_sub(SLOW_LOG_PER_INTERVAL) as u64 + snap.slow_unreported;
        if more > 0 {
            warn!(target: T, count = more, "more slow callbacks this interval (not logged one by one)");
        }
        let (c, p) = (&snap.counters, &self.prev);
        if c.orders_denied > p.orders_denied {
            warn!(
                target: T,
                denied = c.orders_denied - p.orders_denied,
                total = c.orders_denied,
                "orders denied by risk"
            );
        }
        if c.trader_restarts > p.trader_restarts {
            warn!(
                target: T,
                restarts = c.trader_restarts - p.trader_restarts,
                total = c.trader_restarts,
                "traders restarted after a panic"
            );
        }
        if c.symbol_halts > p.symbol_halts {
            error!(
                target: T,
                halts = c.symbol_halts - p.symbol_halts,
                total = c.symbol_halts,
                "symbols halted by their supervisor (restart intensity exceeded)"
            );
        }
        if self.synced.len() < snap.symbols.len() {
            self.synced.resize(snap.symbols.len(), false);
        }
        for (g, was) in snap.symbols.iter().zip(&mut self.synced) {
            if g.synced != *was {
                if g.synced {
                    info!(target: T, symbol = name(g.symbol), bid_levels = g.bid_levels, ask_levels = g.ask_levels, "book synced");
                } else {
                    warn!(target: T, symbol = name(g.symbol), "book out of sync; resync requested");
                }
                *was = g.synced;
            }
        }
        if c.resync_requests > p.resync_requests {
            info!(
                target: T,
                resync_requests = c.resync_requests - p.resync_requests,
                book_gaps = c.book_gaps.saturating_sub(p.book_gaps),
                "book snapshots requested (first syncs and resyncs)"
            );
        }
        self.prev = snap.counters;
    }
}
