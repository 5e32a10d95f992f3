//! The frame path: a data frame is stamped, recorded, decoded by its venue's decoder and pushed
//! into the core's ring ([`Ctx::on_frame`]), with no allocation; plus the loop-wide state it
//! needs ([`Ctx`], [`Decoders`]) and what a link's frames update ([`LinkRx`]).

use super::backoff::Backoff;
use super::counters::IoCounters;
use super::notice::{IoNotice, DECODE_ERROR_NOTICES, ERROR_RESPONSE_NOTICES};
use crate::capture::RecordKind;
use crate::orders::session::OrderSession;
use crate::recorder::RecorderTx;
use crate::venue::{AnyDecoder, DecodeError, DecodeStats, Decoded, IgnoreReason, MarketDecoder};
use engine::event::{Connection as ConnRef, Event, EventKind};
use engine::latency::LatencyHist;
use engine::ring::EventTx;
use engine::symbol::SymbolId;
use engine::venue::Venue;

/// Events one frame may decode to before the reused buffer has to grow (a 1000-level snapshot
/// is 2000 events; depth diffs are far smaller).
pub(super) const EVENTS_CAPACITY: usize = 4096;

/// One decoder per venue the loop serves, indexed by [`Venue::index`]: a frame goes to its
/// link's venue's decoder (an array index, then [`AnyDecoder`]'s one `match`).
#[derive(Debug)]
pub(super) struct Decoders {
    by_venue: [Option<AnyDecoder>; Venue::COUNT],
    /// Open market links per venue: a venue's decoder forgets its per-connection state when
    /// the last of them goes down.
    open: [u32; Venue::COUNT],
}

impl Decoders {
    /// No decoder.
    pub(super) fn new() -> Self {
        Decoders {
            by_venue: std::array::from_fn(|_| None),
            open: [0; Venue::COUNT],
        }
    }

    /// Serves `d`'s venue with `d` (replacing an earlier decoder of that venue).
    pub(super) fn set(&mut self, d: AnyDecoder) {
        let i = d.venue().index();
        self.by_venue[i] = Some(d);
    }

    /// Whether `venue` has a decoder.
    pub(super) fn serves(&self, venue: Venue) -> bool {
        self.by_venue[venue.index()].is_some()
    }

    /// `venue`'s decoder.
    #[inline]
    pub(super) fn get_mut(&mut self, venue: Venue) -> Option<&mut AnyDecoder> {
        self.by_venue[venue.index()].as_mut()
    }

    /// A market link of `venue` opened.
    pub(super) fn link_up(&mut self, venue: Venue) {
        self.open[venue.index()] += 1;
    }

    /// A market link of `venue` went down: with no other link of the venue open, its decoder
    /// forgets the per-connection state ([`MarketDecoder::reset`]), so the next connection's
    /// frames start fresh chains instead of reporting false gaps.
    pub(super) fn link_down(&mut self, venue: Venue) {
        let n = &mut self.open[venue.index()];
        *n = n.saturating_sub(1);
        if *n == 0 {
            if let Some(d) = self.get_mut(venue) {
                d.reset();
            }
        }
    }

    /// Each venue's counters, in [`Venue::index`] order.
    pub(super) fn per_venue(&self) -> Vec<(Venue, DecodeStats)> {
        self.by_venue
            .iter()
            .flatten()
            .map(|d| (d.venue(), *d.stats()))
            .collect()
    }

    /// The counters summed over the venues.
    pub(super) fn total(&self) -> DecodeStats {
        let mut t = DecodeStats::default();
        for d in self.by_venue.iter().flatten() {
            let s = d.stats();
            t.messages += s.messages;
            t.events += s.events;
            t.decode_errors += s.decode_errors;
            t.ignored += s.ignored;
            t.unknown_symbol += s.unknown_symbol;
        }
        t
    }
}

/// Counts a frame its decoder ignored; true for a reply to a request (to be checked for an
/// error). A venue's text pong (OKX `pong`, Bybit `{"op":"pong",..}`) is a heartbeat reply like
/// a WebSocket pong (the frame has already proved the link alive).
#[inline]
fn count_ignored(c: &mut IoCounters, why: IgnoreReason) -> bool {
    c.ignored += 1;
    match why {
        IgnoreReason::Response => true,
        IgnoreReason::Heartbeat => {
            c.pongs += 1;
            false
        }
        IgnoreReason::UnknownStream | IgnoreReason::UnknownSymbol | IgnoreReason::Duplicate => {
            false
        }
    }
}

/// What the frame path touches of a link (split from the `Connection`, which `handle_ready`
/// borrows while it calls back).
#[derive(Debug)]
pub(super) struct LinkRx {
    pub(super) conn_id: u32,
    /// Whose decoder its frames go to.
    pub(super) venue: Venue,
    pub(super) c: IoCounters,
    pub(super) last_rx_ns: u64,
    /// A data frame arrived since the connection opened.
    pub(super) got_frame: bool,
    /// When the connection opened (the loop's clock).
    pub(super) opened_ns: u64,
    pub(super) backoff: Backoff,
    /// The order session's API connection (its frames go to the session, not the decoder; no
    /// `ConnectionUp`/`Down` in the market ring, nothing recorded).
    pub(super) orders: bool,
}

/// The loop-wide things the frame path needs.
pub(super) struct Ctx<'a> {
    pub(super) decoders: Decoders,
    pub(super) tx: EventTx,
    pub(super) recorder: Option<RecorderTx>,
    pub(super) out: Vec<Event>,
    pub(super) notices: &'a mut dyn FnMut(IoNotice),
    pub(super) now: fn() -> u64,
    pub(super) core_gone: bool,
    pub(super) next_request_id: u64,
    pub(super) stable_ns: u64,
    pub(super) decode_latency: LatencyHist,
    pub(super) session: Option<OrderSession>,
    /// A market frame's events were handed to the core in this iteration.
    pub(super) frame_delivered: bool,
    /// Market links wait until the order API's first attempt has an outcome (open or failed),
    /// so strategies do not see a market they cannot yet trade on.
    pub(super) orders_gate: bool,
    /// Once the order API is open, the gate also waits for the answer to the user data stream
    /// subscription, until this time at most (0: not waiting).
    pub(super) gate_until_ns: u64,
}

impl Ctx<'_> {
    /// One data frame: stamp, record, decode, push.
    #[inline]
    pub(super) fn on_frame(&mut self, rx: &mut LinkRx, payload: &[u8], binary: bool) {
        let recv_ns = (self.now)();
        rx.last_rx_ns = recv_ns;
        rx.c.frames += 1;
        rx.c.bytes += payload.len() as u64;
        rx.got_frame = true;
        if let Some(rec) = &mut self.recorder {
            let kind = if binary {
                RecordKind::BinaryFrame
            } else {
                RecordKind::TextFrame
            };
            if !rec.record(recv_ns, rx.conn_id, kind, payload) {
                rx.c.recorder_dropped += 1;
            }
        }
        self.out.clear();
        let Some(decoder) = self.decoders.get_mut(rx.venue) else {
            return; // never: a link whose venue has no decoder does not connect
        };
        let decoded = decoder.decode(payload, recv_ns, &mut self.out);
        self.decode_latency
            .record((self.now)().saturating_sub(recv_ns));
        match decoded {
            Ok(Decoded::Events(n)) => {
                rx.c.events += n as u64;
                if self.tx.push_all(&self.out).is_err() {
                    self.core_gone = true;
                }
                self.frame_delivered = true;
            }
            Ok(Decoded::Ignored(why)) => {
                if count_ignored(&mut rx.c, why) {
                    self.response(rx, payload);
                }
            }
            Err(e) => self.decode_error(rx, e, payload),
        }
    }

    /// A reply to a request: `{"result":..,"id":..}` is fine; anything else (Binance's
    /// `{"error":{"code":..,"msg":..},"id":..}`, `{"code":..,"msg":..}`) is the venue refusing.
    #[cold]
    #[inline(never)]
    fn response(&mut self, rx: &mut LinkRx, payload: &[u8]) {
        if payload.windows(8).any(|w| w == b"\"result\"") {
            return;
        }
        rx.c.error_responses += 1;
        if rx.c.error_responses <= ERROR_RESPONSE_NOTICES {
            let head = &payload[..payload.len().min(512)];
            (self.notices)(IoNotice::VenueError {
                conn_id: rx.conn_id,
                message: String::from_utf8_lossy(head).into_owned(),
            });
        }
    }

    #[cold]
    #[inline(never)]
    fn decode_error(&mut self, rx: &mut LinkRx, e: DecodeError, payload: &[u8]) {
        rx.c.decode_errors += 1;
        if rx.c.decode_errors <= DECODE_ERROR_NOTICES {
            let head = &payload[..payload.len().min(64)];
            (self.notices)(IoNotice::DecodeError {
                conn_id: rx.conn_id,
                error: format!(
                    "{e} (frame of {} bytes: {:?})",
                    payload.len(),
                    String::from_utf8_lossy(head)
                ),
                count: rx.c.decode_errors,
            });
        }
    }

    /// One frame of the order API connection.
    pub(super) fn on_order_frame(&mut self, rx: &mut LinkRx, payload: &[u8]) {
        rx.last_rx_ns = (self.now)();
        rx.c.frames += 1;
        rx.c.bytes += payload.len() as u64;
        rx.got_frame = true;
        if let Some(s) = self.session.as_mut() {
            s.on_frame(payload);
        }
    }

    /// Passes on what the order session wants logged.
    #[cold]
    pub(super) fn session_notices(&mut self) {
        if let Some(s) = self.session.as_mut() {
            let conn_id = s.config().conn_id;
            for message in s.take_notices() {
                (self.notices)(IoNotice::OrderSession { conn_id, message });
            }
        }
    }

    /// A connection-level event into the ring.
    pub(super) fn push_conn(&mut self, recv_ns: u64, conn_id: u32, venue: Venue, up: bool) {
        let c = ConnRef {
            conn_id,
            venue: Some(venue),
        };
        let kind = if up {
            EventKind::ConnectionUp(c)
        } else {
            EventKind::ConnectionDown(c)
        };
        if self
            .tx
            .push(Event::new(recv_ns, SymbolId::ALL, kind))
            .is_err()
        {
            self.core_gone = true;
        }
    }

    /// The id of the next request to the venue.
    pub(super) fn take_request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    /// Records `payload` in the capture if there is a recorder (counting a record it had no
    /// room for).
    pub(super) fn record(
        &mut self,
        recv_ns: u64,
        rx: &mut LinkRx,
        kind: RecordKind,
        payload: &[u8],
    ) {
        if let Some(rec) = &mut self.recorder {
            if !rec.record(recv_ns, rx.conn_id, kind, payload) {
                rx.c.recorder_dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::market::BinanceDecoder;
    use engine::symbol::SymbolTable;

    #[test]
    fn a_text_pong_counts_as_a_heartbeat_reply_and_a_response_is_checked() {
        let mut c = IoCounters::default();
        assert!(!count_ignored(&mut c, IgnoreReason::Heartbeat));
        assert_eq!((c.ignored, c.pongs), (1, 1));
        assert!(count_ignored(&mut c, IgnoreReason::Response));
        assert!(!count_ignored(&mut c, IgnoreReason::UnknownSymbol));
        assert!(!count_ignored(&mut c, IgnoreReason::UnknownStream));
        assert_eq!((c.ignored, c.pongs), (4, 1));
    }

    #[test]
    fn decoders_are_found_by_venue_and_their_counters_summed() {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let mut d = Decoders::new();
        assert!(!d.serves(Venue::Binance));
        d.set(BinanceDecoder::new(symbols).into());
        assert!(d.serves(Venue::Binance) && !d.serves(Venue::Okx));
        assert!(d.get_mut(Venue::Okx).is_none());
        let mut out = Vec::new();
        let trade = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"1.00","q":"2.0","T":1,"m":true,"M":true}}"#;
        let dec = d.get_mut(Venue::Binance).unwrap();
        assert_eq!(dec.decode(trade, 5, &mut out), Ok(Decoded::Events(1)));
        assert!(dec.decode(b"pong", 6, &mut out).is_err());
        d.link_up(Venue::Binance);
        d.link_down(Venue::Binance);
        d.link_down(Venue::Binance); // never below zero
        let per = d.per_venue();
        assert_eq!(per.len(), 1);
        assert_eq!(per[0].0, Venue::Binance);
        assert_eq!((per[0].1.messages, per[0].1.events), (2, 1));
        assert_eq!(d.total(), per[0].1);
    }
}
