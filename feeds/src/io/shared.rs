//! [`IoShared`]: the loop's progress as relaxed atomics, for status lines on other threads.

use super::counters::{IoCounter, IoCounters};
use super::link::LinkState;
use crate::orders::session::UserStream;
use engine::ring::TxStats;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// One connection's counters as atomics (indexed by [`IoCounter`]), on cache lines of their own.
#[derive(Debug)]
#[repr(align(64))]
struct ConnCells {
    state: AtomicU8,
    counters: [AtomicU64; IoCounter::COUNT],
}

impl Default for ConnCells {
    fn default() -> Self {
        ConnCells {
            state: AtomicU8::new(LinkState::Waiting.code()),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ConnCells {
    fn store(&self, c: &IoCounters, state: LinkState) {
        let r = Ordering::Relaxed;
        self.state.store(state.code(), r);
        for (cell, k) in self.counters.iter().zip(IoCounter::ALL) {
            cell.store(c[k], r);
        }
    }

    fn load(&self) -> IoCounters {
        let mut c = IoCounters::default();
        for (cell, k) in self.counters.iter().zip(IoCounter::ALL) {
            c[k] = cell.load(Ordering::Relaxed);
        }
        c
    }
}

/// Loop-wide figures as atomics.
#[derive(Debug, Default)]
#[repr(align(64))]
struct LoopCells {
    running: AtomicBool,
    ring_pushed: AtomicU64,
    ring_dropped: AtomicU64,
    ring_gaps: AtomicU64,
    recorder_dropped: AtomicU64,
    /// The order session's [`UserStream`] code.
    user_stream: AtomicU8,
    /// The order session's [`SessionCounters::user_stream_refused`](crate::orders::session::SessionCounters::user_stream_refused).
    user_stream_refused: AtomicU64,
}

/// Progress of an I/O loop, readable from any thread for a status line.
///
/// Written only by the I/O thread, with relaxed stores at most every millisecond (and at the
/// end), so reading it costs the I/O thread nothing. Slot `i` is `IoConfig::feeds[i]`;
/// connections beyond the slots made by [`IoShared::new`] appear only in the
/// [`IoReport`](crate::io::IoReport).
#[derive(Debug)]
pub struct IoShared {
    conns: Box<[ConnCells]>,
    lp: LoopCells,
}

impl IoShared {
    /// Room for `connections` connections.
    pub fn new(connections: usize) -> Self {
        IoShared {
            conns: (0..connections).map(|_| ConnCells::default()).collect(),
            lp: LoopCells::default(),
        }
    }

    /// Number of connection slots.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True if there are no connection slots.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Counters of connection slot `i`.
    pub fn counters(&self, i: usize) -> Option<IoCounters> {
        self.conns.get(i).map(ConnCells::load)
    }

    /// State of connection slot `i`.
    pub fn state(&self, i: usize) -> Option<LinkState> {
        self.conns
            .get(i)
            .map(|c| LinkState::from_code(c.state.load(Ordering::Relaxed)))
    }

    /// Counters summed over every slot.
    pub fn totals(&self) -> IoCounters {
        let mut t = IoCounters::default();
        for c in self.conns.iter() {
            t.add(&c.load());
        }
        t
    }

    /// True while the loop runs.
    pub fn is_running(&self) -> bool {
        self.lp.running.load(Ordering::Relaxed)
    }

    /// Events pushed into the core's ring (gap markers included).
    pub fn ring_pushed(&self) -> u64 {
        self.lp.ring_pushed.load(Ordering::Relaxed)
    }

    /// Events dropped because the core's ring was full.
    pub fn ring_dropped(&self) -> u64 {
        self.lp.ring_dropped.load(Ordering::Relaxed)
    }

    /// Gap markers pushed after drops.
    pub fn ring_gaps(&self) -> u64 {
        self.lp.ring_gaps.load(Ordering::Relaxed)
    }

    /// Records the recorder had no room for (or refused).
    pub fn recorder_dropped(&self) -> u64 {
        self.lp.recorder_dropped.load(Ordering::Relaxed)
    }

    /// Where the order session's user data stream stands (`Off` without an order session).
    pub fn user_stream(&self) -> UserStream {
        UserStream::from_code(self.lp.user_stream.load(Ordering::Relaxed))
    }

    /// User data stream subscriptions the venue refused so far.
    pub fn user_stream_refused(&self) -> u64 {
        self.lp.user_stream_refused.load(Ordering::Relaxed)
    }

    // The I/O thread's side.

    /// Marks the loop running (or ended).
    pub(super) fn set_running(&self, running: bool) {
        self.lp.running.store(running, Ordering::Relaxed);
    }

    /// Publishes connection `i` (nothing if there is no slot `i`).
    pub(super) fn store_conn(&self, i: usize, c: &IoCounters, state: LinkState) {
        if let Some(cells) = self.conns.get(i) {
            cells.store(c, state);
        }
    }

    /// Publishes the ring's counters, the order session's user stream (state, refusals) if
    /// there is a session, and the recorder's losses if there is a recorder.
    pub(super) fn store_loop(
        &self,
        ring: &TxStats,
        user_stream: Option<(UserStream, u64)>,
        recorder_dropped: Option<u64>,
    ) {
        let r = Ordering::Relaxed;
        self.lp.ring_pushed.store(ring.pushed, r);
        self.lp.ring_dropped.store(ring.dropped, r);
        self.lp.ring_gaps.store(ring.gaps_reported, r);
        if let Some((state, refused)) = user_stream {
            self.lp.user_stream.store(state.code(), r);
            self.lp.user_stream_refused.store(refused, r);
        }
        if let Some(dropped) = recorder_dropped {
            self.lp.recorder_dropped.store(dropped, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_counters_sum_and_default_to_waiting() {
        let s = IoShared::new(2);
        assert_eq!(s.len(), 2);
        let c = IoCounters {
            frames: 3,
            bytes: 10,
            ..Default::default()
        };
        s.conns[0].store(&c, LinkState::Open);
        s.conns[1].store(&c, LinkState::Dead);
        assert_eq!(s.counters(0), Some(c));
        assert_eq!(s.state(0), Some(LinkState::Open));
        assert_eq!(s.state(1), Some(LinkState::Dead));
        assert_eq!(s.totals().frames, 6);
        assert_eq!(s.counters(2), None);
        assert_eq!(IoShared::new(1).state(0), Some(LinkState::Waiting));
    }
}
