//! The graceful stop of `tickline run` after SIGTERM or Ctrl-C ([`crate::live::run_live_with_signals`]):
//! with `[orders] on_shutdown = "cancel"` the core gets the kill switch (halt, cancel every open
//! order) and the stop waits, asking the core's status every 20 ms, until it tracks no open
//! order, a second signal, or the deadline for cancels (`orders.shutdown_timeout_ms` less a
//! reserve of up to 3 s for closing the connections and syncing the journal). A watchdog thread
//! ends the process with status 1 if the whole stop overruns `shutdown_timeout_ms`.
//!
//! It runs on the caller's (main) thread; the core answers on its control channel, a cold path
//! it checks about once a millisecond.

use engine::control::Request;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The graceful stop of [`crate::live::run_live_with_signals`].
pub(crate) struct GracefulStop {
    /// Set by SIGTERM and SIGINT.
    pub(crate) term: Arc<AtomicBool>,
    /// Cancel open orders first (`orders.on_shutdown = "cancel"` with live orders).
    pub(crate) cancel: bool,
    /// `orders.shutdown_timeout_ms`.
    pub(crate) timeout: Duration,
    /// The core's control channel.
    pub(crate) core: crossbeam_channel::Sender<Request>,
}

impl GracefulStop {
    /// Asks the core one thing and waits (until `deadline`) for its answer.
    fn ask(
        &self,
        command: engine::control::Command,
        deadline: Instant,
    ) -> Option<engine::control::Reply> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let req = Request { command, reply: tx };
        self.core.send_deadline(req, deadline).ok()?;
        rx.recv_deadline(deadline).ok()
    }

    /// After the first signal: arms the watchdog, then (with `cancel`) kills and waits until the
    /// core tracks no open order, a second signal, or the deadline for cancels.
    pub(crate) fn run(&self) {
        use engine::control::{Command, Reply};
        let started = Instant::now();
        let end = started + self.timeout;
        let timeout = self.timeout;
        let armed = crate::threads::spawn_housekeeping("shutdown-watchdog", move || {
            std::thread::sleep(timeout);
            // Straight to stderr: the process exits next, before the log writer could drain.
            eprintln!(
                    "shutdown: not done within orders.shutdown_timeout_ms ({} ms); exiting (the journal recovers as after a kill)",
                    timeout.as_millis()
                );
            std::process::exit(1);
        });
        if let Err(e) = armed {
            tracing::warn!(target: "tickline::shutdown", "shutdown: no watchdog ({e}); the stop is not bounded");
        }
        if !self.cancel {
            tracing::warn!(
                    target: "tickline::shutdown",
                "shutdown: stopping; open orders stay at the venue (orders.on_shutdown = \"keep\")"
            );
            return;
        }
        // Leave time to close the connections and flush after the cancels.
        let reserve = (self.timeout / 2).min(Duration::from_secs(3));
        let cancel_end = end - reserve;
        tracing::info!(target: "tickline::shutdown", "shutdown: canceling every open order (orders.on_shutdown = \"cancel\")");
        match self.ask(Command::Kill, cancel_end) {
            Some(Reply::Done(m)) => tracing::info!(target: "tickline::shutdown", "shutdown: {m}"),
            Some(Reply::Refused(m)) => {
                tracing::warn!(target: "tickline::shutdown", "shutdown: kill refused: {m}")
            }
            _ => {
                tracing::warn!(target: "tickline::shutdown", "shutdown: the core did not answer the kill; stopping");
                return;
            }
        }
        loop {
            if self.term.swap(false, Ordering::AcqRel) {
                tracing::warn!(target: "tickline::shutdown", "shutdown: second signal: stopping now");
                return;
            }
            let open = match self.ask(Command::Status, cancel_end) {
                Some(Reply::Status(s)) => s.symbols.iter().map(|s| s.open_orders).sum::<usize>(),
                _ => usize::MAX,
            };
            if open == 0 {
                tracing::warn!(
                    target: "tickline::shutdown",
                    "shutdown: no open orders left ({:.0} ms)",
                    started.elapsed().as_secs_f64() * 1e3
                );
                return;
            }
            if Instant::now() + Duration::from_millis(20) >= cancel_end {
                if open == usize::MAX {
                    tracing::warn!(target: "tickline::shutdown", "shutdown: the core did not answer in time; stopping");
                } else {
                    tracing::warn!(
                    target: "tickline::shutdown",
                        "shutdown: {open} order(s) still open at the deadline; the journal has them, the next start settles them with the venue"
                    );
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
