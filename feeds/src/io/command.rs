//! [`IoCommand`]: subscription changes sent to a running loop, over a bounded channel.
//!
//! The control side holds an [`IoCommandTx`]; the loop drains its [`IoCommandRx`] once per
//! iteration with a non-blocking `try_recv` (a few atomic loads when it is empty). The queue is
//! bounded ([`command_channel`]): a full queue hands the command back
//! ([`IoCommandError::Full`]) instead of growing.

use super::frame::Ctx;
use super::link::{send_streams, Link, Phase, StreamOp};
use super::notice::IoNotice;
use core::fmt;
use engine::venue::Venue;

/// Room in the command queue the engine makes: subscription changes come from an operator, a
/// handful at a time.
pub const COMMAND_QUEUE: usize = 64;

/// A change of subscriptions while the loop runs (from the control side, off the hot path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoCommand {
    /// Subscribe to `streams` on connection `conn_id` (its venue adapter's frames: Binance
    /// `SUBSCRIBE`, OKX `{"op":"subscribe",..}`, ...) now, if it is open, and after every
    /// reconnect.
    Subscribe {
        /// The connection.
        conn_id: u32,
        /// Stream names (`btcusdt@trade`).
        streams: Vec<String>,
    },
    /// Unsubscribe from `streams` now (if open) and stop re-subscribing them.
    Unsubscribe {
        /// The connection.
        conn_id: u32,
        /// Stream names.
        streams: Vec<String>,
    },
    /// Unsubscribe and subscribe again `streams` of `venue`, on each open connection of the
    /// venue that holds them: a venue whose book starts from a WebSocket snapshot
    /// ([`BookSync::WsSnapshot`](crate::venue::BookSync::WsSnapshot)) then sends a fresh one,
    /// which is how such a book resyncs. A connection not open re-subscribes (and gets its
    /// snapshot) when it reconnects anyway.
    Resubscribe {
        /// The venue.
        venue: Venue,
        /// Stream names (the symbol's depth stream).
        streams: Vec<String>,
    },
}

/// A bounded queue of [`IoCommand`]s for one loop, holding `capacity` (at least 1) commands:
/// give the receiver to [`IoLoop::commands`](crate::io::IoLoop::commands).
pub fn command_channel(capacity: usize) -> (IoCommandTx, IoCommandRx) {
    let capacity = capacity.max(1);
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (IoCommandTx { tx, capacity }, IoCommandRx { rx })
}

/// The sending end of a [`command_channel`]; clone it for every thread that sends.
#[derive(Clone, Debug)]
pub struct IoCommandTx {
    tx: crossbeam_channel::Sender<IoCommand>,
    capacity: usize,
}

impl IoCommandTx {
    /// Queues `cmd` for the loop without blocking; a full queue or a stopped loop hands it back.
    pub fn send(&self, cmd: IoCommand) -> Result<(), IoCommandError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(cmd) => IoCommandError::Full {
                cmd,
                capacity: self.capacity,
            },
            crossbeam_channel::TrySendError::Disconnected(cmd) => IoCommandError::Stopped(cmd),
        })
    }
}

/// The loop's end of a [`command_channel`].
#[derive(Debug)]
pub struct IoCommandRx {
    rx: crossbeam_channel::Receiver<IoCommand>,
}

impl IoCommandRx {
    /// The next queued command, if any (never blocks).
    #[inline]
    pub(crate) fn try_recv(&self) -> Option<IoCommand> {
        self.rx.try_recv().ok()
    }
}

/// Why [`IoCommandTx::send`] handed a command back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoCommandError {
    /// The queue holds `capacity` commands the loop has not taken yet.
    Full {
        /// The command.
        cmd: IoCommand,
        /// The queue's room.
        capacity: usize,
    },
    /// The loop has ended (its receiver is gone).
    Stopped(IoCommand),
}

impl fmt::Display for IoCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoCommandError::Full { capacity, .. } => write!(
                f,
                "the I/O thread's command queue is full ({capacity} commands not yet taken); try again"
            ),
            IoCommandError::Stopped(_) => f.write_str("the I/O thread has stopped"),
        }
    }
}

impl std::error::Error for IoCommandError {}

/// Applies a subscription change: the stream list a reconnect re-sends, and, if the connection is
/// open, the venue adapter's (un)subscription frames now (recorded like the opening
/// subscription). Streams the adapter refuses change nothing (said as
/// [`IoNotice::CommandRejected`]).
#[cold]
pub(super) fn apply_command(links: &mut [Link], cmd: IoCommand, ctx: &mut Ctx<'_>) {
    let (conn_id, streams, op) = match cmd {
        IoCommand::Subscribe { conn_id, streams } => (conn_id, streams, StreamOp::Subscribe),
        IoCommand::Unsubscribe { conn_id, streams } => (conn_id, streams, StreamOp::Unsubscribe),
        IoCommand::Resubscribe { venue, streams } => {
            return resubscribe(links, venue, &streams, ctx)
        }
    };
    let reject = |ctx: &mut Ctx<'_>, reason: String| {
        (ctx.notices)(IoNotice::CommandRejected { conn_id, reason });
    };
    let Some(link) = links
        .iter_mut()
        .find(|l| l.spec.conn_id == conn_id && !l.rx.orders)
    else {
        return reject(ctx, format!("no connection {conn_id}"));
    };
    let what = match op {
        StreamOp::Subscribe => "subscribe",
        StreamOp::Unsubscribe => "unsubscribe",
    };
    if streams.is_empty() {
        return reject(ctx, format!("{what} without streams"));
    }
    let Some(adapter) = link.adapter else {
        return reject(ctx, format!("venue {} has no adapter", link.spec.venue));
    };
    // Refused names (a stream the venue cannot take) change nothing.
    let check = match op {
        StreamOp::Subscribe => adapter.0.subscribe(&streams, 0),
        StreamOp::Unsubscribe => adapter.0.unsubscribe(&streams, 0),
    };
    if let Err(e) = check {
        return reject(ctx, format!("{what}: {e}"));
    }
    match op {
        StreamOp::Subscribe => {
            for s in &streams {
                if !link.spec.subscribe.contains(s) {
                    link.spec.subscribe.push(s.clone());
                }
            }
        }
        StreamOp::Unsubscribe => link.spec.subscribe.retain(|s| !streams.contains(s)),
    }
    if !matches!(link.phase, Phase::Open { .. }) {
        return; // applied at the next (re)connect
    }
    if let Err(e) = send_streams(link, ctx, op, Some(&streams)) {
        reject(ctx, format!("{what}: {e}"));
    }
}

/// [`IoCommand::Resubscribe`]: on every open link of `venue`, unsubscribe and subscribe again
/// those of `streams` it holds.
#[cold]
fn resubscribe(links: &mut [Link], venue: Venue, streams: &[String], ctx: &mut Ctx<'_>) {
    for link in links.iter_mut() {
        if link.rx.orders || link.spec.venue != venue || !matches!(link.phase, Phase::Open { .. }) {
            continue;
        }
        let held: Vec<String> = streams
            .iter()
            .filter(|s| link.spec.subscribe.contains(s))
            .cloned()
            .collect();
        if held.is_empty() {
            continue;
        }
        for op in [StreamOp::Unsubscribe, StreamOp::Subscribe] {
            if let Err(e) = send_streams(link, ctx, op, Some(&held)) {
                (ctx.notices)(IoNotice::CommandRejected {
                    conn_id: link.spec.conn_id,
                    reason: format!("resubscribing {}: {e}", held.join(", ")),
                });
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_hands_the_command_back_and_says_so() {
        let (tx, rx) = command_channel(1);
        let cmd = |conn_id| IoCommand::Subscribe {
            conn_id,
            streams: vec!["btcusdt@trade".into()],
        };
        tx.send(cmd(1)).unwrap();
        let err = tx.send(cmd(2)).unwrap_err();
        assert_eq!(
            err,
            IoCommandError::Full {
                cmd: cmd(2),
                capacity: 1
            }
        );
        assert!(err.to_string().contains("full"), "{err}");
        assert_eq!(rx.try_recv(), Some(cmd(1)));
        assert_eq!(rx.try_recv(), None);
        drop(rx);
        assert_eq!(tx.send(cmd(3)), Err(IoCommandError::Stopped(cmd(3))));
    }
}
