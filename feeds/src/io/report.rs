//! What an I/O loop did: [`IoReport`], returned when it ends.

use super::counters::IoCounters;
use super::link::LinkState;
use crate::orders::session::SessionCounters;
use crate::recorder::RecorderStats;
use crate::venue::DecodeStats;
use engine::latency::LatencyHist;
use engine::ring::TxStats;
use engine::venue::Venue;

/// Why [`IoLoop::run`](crate::io::IoLoop::run) returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoEnd {
    /// `stop` was set.
    Stopped,
    /// The core dropped its end of the ring.
    CoreGone,
    /// `mio` failed (creating the poll, or polling); the message says how.
    PollError(String),
}

/// One connection in the [`IoReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnReport {
    /// Its id.
    pub conn_id: u32,
    /// Its URL.
    pub url: String,
    /// Its counters.
    pub counters: IoCounters,
    /// Its state when the loop ended (before the connections were closed).
    pub state: LinkState,
}

/// What [`IoLoop::run`](crate::io::IoLoop::run) did.
#[derive(Clone, Debug)]
pub struct IoReport {
    /// Why it returned.
    pub end: IoEnd,
    /// Per connection, in [`IoConfig::feeds`](crate::io::IoConfig::feeds) order.
    pub connections: Vec<ConnReport>,
    /// Summed over the connections.
    pub totals: IoCounters,
    /// The core ring's producer counters (drops and gap markers).
    pub ring: TxStats,
    /// The decoders' counters, summed over the venues.
    pub decode: DecodeStats,
    /// Each venue's decoder's counters (the venues the loop had a decoder for).
    pub decode_venues: Vec<(Venue, DecodeStats)>,
    /// The recorder's producer counters, if there was one.
    pub recorder: Option<RecorderStats>,
    /// Frame receive stamp to decoded (the `decode` stage), ns.
    pub decode_latency: LatencyHist,
    /// Iterations of the loop.
    pub iterations: u64,
    /// The order session, if the loop had one.
    pub session: Option<SessionReport>,
}

/// What the order session did ([`IoLoop::session`](crate::io::IoLoop::session)).
#[derive(Clone, Debug)]
pub struct SessionReport {
    /// Its counters.
    pub counters: SessionCounters,
    /// Receive stamp of the causing event to the order frame written, ns.
    pub tick_to_wire: LatencyHist,
    /// Orders still in flight at the end (settled on the next start from the journal).
    pub in_flight: usize,
    /// Times the core woke the parked loop for an order.
    pub wakes: u64,
}
