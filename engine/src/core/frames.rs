//! Replay time per frame: an asap replay's core runs its clock (`Ctx::now_ns`, the timers) at
//! the capture time of the frame whose events it is handling.
//!
//! An asap replay's feed decodes as fast as the ring lets it, so it runs ahead of the core by up
//! to a full ring: 65,536 events, two minutes of the spot capture. A clock the feed advances
//! frame by frame is therefore that far ahead of the event a strategy is handling, and timers
//! fire before the market events that precede them. Instead the feed sends, beside the events,
//! one [`FrameTime`] per frame that carries events: where the frame's first event is in the
//! ring's sequence, and the frame's time. The core reads them in step with the events
//! ([`FrameClock::reach`]), sets its clock to each frame's time as it reaches the frame's first
//! event, and runs the timers due by then before the frame's events. A paced replay and a live
//! run have no frame times: their clock is the caller's `now`.

use rtrb::Consumer;

/// One frame's place and time in an input ring's event sequence (input 0 of the core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTime {
    /// Sequence number, from 0 in push order, of the frame's first event in the ring.
    pub seq: u64,
    /// The frame's time, ns (a replay's capture time).
    pub at_ns: u64,
}

/// The core's end of the frame times, and the next one not yet reached.
#[derive(Debug)]
pub(super) struct FrameClock {
    rx: Consumer<FrameTime>,
    next: Option<FrameTime>,
    /// Events of input 0 handled so far: the sequence number of the next one.
    pub(super) seq: u64,
}

impl FrameClock {
    pub(super) fn new(rx: Consumer<FrameTime>) -> Self {
        FrameClock {
            rx,
            next: None,
            seq: 0,
        }
    }

    /// The time of the latest frame that starts at or before the event `seq`, if any frame
    /// time was reached since the last call (frame times are consumed as they are reached).
    #[inline]
    pub(super) fn reach(&mut self, seq: u64) -> Option<u64> {
        let mut at = None;
        loop {
            let t = match self.next {
                Some(t) => t,
                None => match self.rx.pop() {
                    Ok(t) => t,
                    Err(_) => return at,
                },
            };
            if t.seq > seq {
                self.next = Some(t);
                return at;
            }
            self.next = None;
            at = Some(t.at_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_times_are_reached_in_step_with_the_events() {
        let (mut tx, rx) = rtrb::RingBuffer::new(8);
        let mut c = FrameClock::new(rx);
        assert_eq!(c.reach(0), None, "nothing sent yet");
        for (seq, at_ns) in [(0, 100), (3, 200), (3, 250), (7, 300)] {
            tx.push(FrameTime { seq, at_ns }).unwrap();
        }
        assert_eq!(c.reach(0), Some(100));
        assert_eq!(c.reach(1), None);
        assert_eq!(c.reach(2), None);
        // Two frame times at one event (a frame without events between): the later wins.
        assert_eq!(c.reach(3), Some(250));
        assert_eq!(c.reach(6), None);
        // A jump past a frame's start still reaches it.
        assert_eq!(c.reach(9), Some(300));
        assert_eq!(c.reach(10), None);
    }
}
