//! The SPSC ring from an I/O (or replay) thread to the core, with a visible overflow policy.
//!
//! The ring is an [`rtrb::RingBuffer`] of [`Event`]s, allocated once. The producer side is
//! wrapped in [`EventTx`], which never loses data silently:
//! - [`OnFull::Block`] waits (spin, then yield) until the core makes room. Replay uses it: a file
//!   can always wait, and dropping would only corrupt the book.
//! - [`OnFull::Drop`] drops the event, counts it, and as soon as there is room again pushes a
//!   [`Gap`] event with the number lost, so the core marks the books stale and resyncs. Live feeds
//!   use it: the socket must be drained.

use crate::event::{Event, EventKind, Gap, GapReason};
use crate::symbol::SymbolId;
use rtrb::{Consumer, Producer, RingBuffer};

/// What to do when the ring is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFull {
    /// Wait for room.
    Block,
    /// Drop, count, and report a gap.
    Drop,
}

/// The core is gone (its end of the ring was dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

impl core::fmt::Display for Closed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the core's end of the ring is closed")
    }
}

impl std::error::Error for Closed {}

/// Producer-side counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Events pushed (gap markers included).
    pub pushed: u64,
    /// Events dropped because the ring was full ([`OnFull::Drop`]).
    pub dropped: u64,
    /// Gap markers pushed after drops.
    pub gaps_reported: u64,
    /// Times a push found the ring full ([`OnFull::Block`] waits, or drops).
    pub full: u64,
}

/// The producer end: owned by exactly one I/O thread.
#[derive(Debug)]
pub struct EventTx {
    prod: Producer<Event>,
    policy: OnFull,
    pending_lost: u64,
    stats: TxStats,
}

/// Makes a ring of `capacity` events. The consumer end goes to `Core::add_input`.
///
/// The ring's memory is touched once here (filled and drained), so the first lap of a run does
/// not take a page fault per 64 events on the hot path.
pub fn event_ring(capacity: usize, policy: OnFull) -> (EventTx, Consumer<Event>) {
    let (mut prod, mut cons) = RingBuffer::new(capacity.max(2));
    let filler = Event::new(
        0,
        SymbolId::ALL,
        EventKind::ConnectionUp(crate::event::Connection {
            conn_id: 0,
            venue: None,
        }),
    );
    if let Ok(chunk) = prod.write_chunk_uninit(prod.slots()) {
        chunk.fill_from_iter(core::iter::repeat(filler));
    }
    if let Ok(chunk) = cons.read_chunk(cons.slots()) {
        chunk.commit_all();
    }
    (
        EventTx {
            prod,
            policy,
            pending_lost: 0,
            stats: TxStats::default(),
        },
        cons,
    )
}

impl EventTx {
    /// Pushes one event according to the policy.
    #[inline]
    pub fn push(&mut self, ev: Event) -> Result<(), Closed> {
        if self.pending_lost > 0 && !self.flush_gap(ev.recv_ns) {
            return self.full(ev);
        }
        match self.prod.push(ev) {
            Ok(()) => {
                self.stats.pushed += 1;
                Ok(())
            }
            Err(rtrb::PushError::Full(ev)) => self.full(ev),
        }
    }

    /// Pushes every event of `evs`, in order.
    #[inline]
    pub fn push_all(&mut self, evs: &[Event]) -> Result<(), Closed> {
        // Fast path: one chunk when there is room and nothing is pending.
        if self.pending_lost == 0 {
            if let Ok(chunk) = self.prod.write_chunk_uninit(evs.len()) {
                let n = chunk.fill_from_iter(evs.iter().copied());
                self.stats.pushed += n as u64;
                if n == evs.len() {
                    return Ok(());
                }
                return evs[n..].iter().try_for_each(|e| self.push(*e));
            }
        }
        evs.iter().try_for_each(|e| self.push(*e))
    }

    #[cold]
    #[inline(never)]
    fn full(&mut self, ev: Event) -> Result<(), Closed> {
        self.stats.full += 1;
        match self.policy {
            OnFull::Drop => {
                if self.prod.is_abandoned() {
                    return Err(Closed);
                }
                self.stats.dropped += 1;
                self.pending_lost += 1;
                Ok(())
            }
            OnFull::Block => {
                let mut idle =
                    crate::idle::Idler::new(crate::idle::IdleMode::SpinYield { spins: 1_000 });
                let mut ev = ev;
                loop {
                    if self.pending_lost > 0 && !self.flush_gap(ev.recv_ns) {
                        // fall through to waiting
                    } else {
                        match self.prod.push(ev) {
                            Ok(()) => {
                                self.stats.pushed += 1;
                                return Ok(());
                            }
                            Err(rtrb::PushError::Full(back)) => ev = back,
                        }
                    }
                    if self.prod.is_abandoned() {
                        return Err(Closed);
                    }
                    idle.after_poll(false);
                }
            }
        }
    }

    /// Tries to push the pending gap marker; true if nothing is pending any more.
    #[cold]
    fn flush_gap(&mut self, recv_ns: u64) -> bool {
        let gap = Event::new(
            recv_ns,
            SymbolId::ALL,
            EventKind::Gap(Gap {
                lost: self.pending_lost,
                reason: GapReason::RingFull,
            }),
        );
        if self.prod.push(gap).is_ok() {
            self.pending_lost = 0;
            self.stats.pushed += 1;
            self.stats.gaps_reported += 1;
            true
        } else {
            false
        }
    }

    /// Events dropped and not yet reported by a gap marker (the marker goes out with the next push).
    pub fn pending_lost(&self) -> u64 {
        self.pending_lost
    }

    /// Counters.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Free slots right now.
    pub fn free_slots(&self) -> usize {
        self.prod.slots()
    }

    /// True once the core dropped its end.
    pub fn is_closed(&self) -> bool {
        self.prod.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Connection, EventKind};

    fn ev(n: u32) -> Event {
        Event::new(
            n as u64,
            SymbolId(0),
            EventKind::ConnectionUp(Connection {
                conn_id: n,
                venue: None,
            }),
        )
    }

    #[test]
    fn drop_policy_counts_and_reports_a_gap() {
        let (mut tx, mut rx) = event_ring(4, OnFull::Drop);
        for i in 0..6 {
            tx.push(ev(i)).unwrap();
        }
        assert_eq!(tx.stats().dropped, 2);
        assert_eq!(tx.pending_lost(), 2);
        // Drain, then the next push first delivers the gap marker.
        let got: Vec<_> = std::iter::from_fn(|| rx.pop().ok()).collect();
        assert_eq!(got.len(), 4);
        tx.push(ev(9)).unwrap();
        let gap = rx.pop().unwrap();
        assert_eq!(
            gap.kind,
            EventKind::Gap(Gap {
                lost: 2,
                reason: GapReason::RingFull
            })
        );
        assert_eq!(gap.symbol, SymbolId::ALL);
        assert_eq!(rx.pop().unwrap(), ev(9));
        assert_eq!(tx.stats().gaps_reported, 1);
    }

    #[test]
    fn block_policy_waits_for_the_consumer() {
        let (mut tx, mut rx) = event_ring(2, OnFull::Block);
        let consumer = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while seen.len() < 1000 {
                if let Ok(e) = rx.pop() {
                    seen.push(e);
                }
            }
            seen
        });
        let evs: Vec<_> = (0..1000).map(ev).collect();
        tx.push_all(&evs).unwrap();
        let seen = consumer.join().unwrap();
        assert_eq!(seen, evs);
        assert_eq!(tx.stats().dropped, 0);
    }

    #[test]
    fn closed_consumer_is_an_error_not_a_hang() {
        let (mut tx, rx) = event_ring(2, OnFull::Block);
        drop(rx);
        tx.push(ev(0)).unwrap();
        tx.push(ev(1)).unwrap();
        assert_eq!(tx.push(ev(2)), Err(Closed));
    }
}
