//! The I/O counters, listed once.
//!
//! [`IoCounter`] names each counter and indexes the values: [`IoCounters`] (one connection's, or
//! the loop's sum) and the shared atomics of [`IoShared`](super::IoShared) are walked with
//! [`IoCounter::ALL`], so adding a counter is one line in the list below. The frame path bumps
//! the named fields directly (`c.frames += 1`): no index, no branch.

use core::ops::{Index, IndexMut};

/// Declares [`IoCounter`] and [`IoCounters`] from one list: `Variant => field`, with the doc
/// comment both get.
macro_rules! io_counters {
    ($( $(#[doc = $doc:literal])+ $variant:ident => $field:ident, )+) => {
        /// One I/O counter: an index into [`IoCounters`] (`c[IoCounter::Frames]`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum IoCounter {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl IoCounter {
            /// Every counter, in the order of [`IoCounters`]' fields.
            pub const ALL: [IoCounter; IoCounter::COUNT] = [$(IoCounter::$variant),+];
            /// How many counters there are.
            pub const COUNT: usize = [$(stringify!($field)),+].len();

            /// The counter's field name in [`IoCounters`] (`"frames"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(IoCounter::$variant => stringify!($field),)+
                }
            }
        }

        /// Counters of one connection (or, summed, of the loop); indexed by [`IoCounter`] too.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct IoCounters {
            $( $(#[doc = $doc])+ pub $field: u64, )+
        }

        impl Index<IoCounter> for IoCounters {
            type Output = u64;
            fn index(&self, k: IoCounter) -> &u64 {
                match k {
                    $(IoCounter::$variant => &self.$field,)+
                }
            }
        }

        impl IndexMut<IoCounter> for IoCounters {
            fn index_mut(&mut self, k: IoCounter) -> &mut u64 {
                match k {
                    $(IoCounter::$variant => &mut self.$field,)+
                }
            }
        }
    };
}

io_counters! {
    /// Data frames received (text and binary).
    Frames => frames,
    /// Payload bytes of those frames.
    Bytes => bytes,
    /// Events decoded from them.
    Events => events,
    /// Frames that failed to decode (the connection stays up).
    DecodeErrors => decode_errors,
    /// Frames decoded to nothing (subscription responses, unknown streams or symbols).
    Ignored => ignored,
    /// Of `ignored`, replies of the venue that are not a `result` (a refused subscription).
    ErrorResponses => error_responses,
    /// Connections opened (WebSocket handshake done).
    Connects => connects,
    /// Open connections lost (closed by the peer, failed, timed out); not counting our stop.
    Disconnects => disconnects,
    /// Connection attempts after the first.
    ReconnectAttempts => reconnect_attempts,
    /// Attempts that failed before the connection opened.
    ConnectFailures => connect_failures,
    /// Open connections dropped because no frame came for `idle_timeout`.
    IdleTimeouts => idle_timeouts,
    /// Open connections the peer closed with a close frame (a clean close).
    PeerCloses => peer_closes,
    /// Open connections the peer hung up on without a close frame (EOF). A frame torn by the
    /// hang-up is one of these: the WebSocket layer discards the part that came.
    PeerHangups => peer_hangups,
    /// Attempts abandoned after `connect_timeout`.
    ConnectTimeouts => connect_timeouts,
    /// Heartbeats sent (WebSocket pings, or the venue's text pings).
    HeartbeatsSent => heartbeats_sent,
    /// Heartbeat replies received: WebSocket pongs, and the venue's text pongs (frames its
    /// decoder ignores as [`IgnoreReason::Heartbeat`](crate::venue::IgnoreReason::Heartbeat),
    /// also counted in `ignored`).
    Pongs => pongs,
    /// Sends (subscribe, ping) that failed.
    SendErrors => send_errors,
    /// WebSocket handshake and protocol errors.
    ProtocolErrors => protocol_errors,
    /// TLS errors (handshake, certificate, record).
    TlsErrors => tls_errors,
    /// Resolve and TCP connect errors.
    ConnectErrors => connect_errors,
    /// Other socket errors.
    IoErrors => io_errors,
    /// Frames the recorder had no room for.
    RecorderDropped => recorder_dropped,
}

impl IoCounters {
    /// Adds every counter of `o`.
    pub fn add(&mut self, o: &IoCounters) {
        for k in IoCounter::ALL {
            self[k] += o[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_reaches_each_field_once_and_add_sums_all() {
        let mut c = IoCounters::default();
        for (i, k) in IoCounter::ALL.into_iter().enumerate() {
            c[k] = i as u64 + 1;
        }
        assert_eq!((c.frames, c.bytes, c.recorder_dropped), (1, 2, 22));
        assert_eq!(IoCounter::COUNT, 22);
        assert_eq!(IoCounter::PeerHangups.name(), "peer_hangups");
        let mut sum = c;
        sum.add(&c);
        for k in IoCounter::ALL {
            assert_eq!(sum[k], 2 * c[k], "{}", k.name());
        }
    }
}
