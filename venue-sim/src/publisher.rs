//! The feed: one timeline of frames from a capture or the generator, paced, applied to the
//! simulator's own books, and handed to every connection's queue.
//!
//! REST snapshots in the source are not streamed: they seed the per-symbol books (only while a
//! book is not synced; once synced, the book the simulator keeps from what it publishes is the
//! venue's truth). Every published frame is read with the simulator's own [`MarketDecoder`] and its
//! depth levels applied, so `GET /api/v3/depth` answers with `lastUpdateId` = the last published `u`.

use super::conn::{ConnShared, Registration};
use super::hub::{Hub, C};
use super::market::{Market, MarketDecoder};
use super::streams::{build_combined, split_combined, Match, MatchCache};
use super::SimPace;
use crate::gen::{FeedGenerator, GenKind};
use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use engine::symbol::SymbolId;
use feeds::capture::{LoadedCapture, RecordKind};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Bytes;

/// One published frame, shared by every connection's queue.
#[derive(Debug)]
pub(crate) struct Frame {
    /// Index of `stream` in the publisher's table of stream names.
    pub(crate) stream_id: u32,
    /// The stream name, e.g. `btcusdt@depth@100ms`.
    pub(crate) stream: Arc<str>,
    /// `{"stream":..,"data":..}`.
    pub(crate) combined: Bytes,
    /// The payload alone (a slice of `combined`).
    pub(crate) data: Bytes,
    /// The trade id of a trade frame.
    pub(crate) trade_id: Option<u64>,
}

/// Where frames come from.
pub(crate) enum Feed {
    Generated(Box<FeedGenerator>),
    Capture(Box<LoadedCapture>),
}

/// Runs the feed to its end (or a stop), then keeps the connections' queues open until the stop.
pub(crate) fn run(
    hub: Arc<Hub>,
    reg_rx: Receiver<Registration>,
    feed: Feed,
    decoder: MarketDecoder,
    default_symbol: Option<SymbolId>,
    futures: Option<crate::venues::binance_usdm::Futurize>,
) {
    let pacer = Pacer::new(hub.cfg().pace);
    let mut futures = futures;
    let mut p = Publisher {
        asap: matches!(hub.cfg().pace, SimPace::Asap),
        hub,
        reg_rx,
        outs: Vec::new(),
        decoder,
        default_symbol,
        trade_id: None,
        depth: None,
        stream_ids: HashMap::new(),
        stream_names: Vec::new(),
        pacer,
        started: false,
    };
    match feed {
        Feed::Generated(mut g) => {
            let mut buf = Vec::with_capacity(1 << 16);
            while let Some(f) = g.next_frame(&mut buf) {
                let flow = if f.kind == GenKind::Snapshot {
                    let name = g.symbol_name(f.symbol).map(str::as_bytes);
                    p.on_record(f.recv_ns, RecordKind::Snapshot, name, &buf)
                } else if let Some(fut) = &mut futures {
                    // Binance USD-M: the generator's spot frames in futures' layout.
                    let frame = fut.frame(&buf);
                    p.on_record(f.recv_ns, RecordKind::TextFrame, None, frame)
                } else {
                    p.on_record(f.recv_ns, RecordKind::TextFrame, None, &buf)
                };
                if flow.is_break() {
                    break;
                }
            }
        }
        Feed::Capture(cap) => {
            for rec in cap.records() {
                match rec {
                    Ok(r) => {
                        if p.on_record(r.recv_ns, r.kind, r.symbol, r.payload)
                            .is_break()
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        p.hub.count(C::SourceErrors, 1);
                        if !e.is_recoverable() {
                            break;
                        }
                    }
                }
            }
        }
    }
    p.finish();
}

struct Out {
    shared: Arc<ConnShared>,
    tx: Sender<Arc<Frame>>,
    cache: MatchCache,
    enqueued: u64,
}

impl Out {
    /// The publisher's pre-filter (the connection filters again, exactly, when it writes).
    #[inline]
    fn wants(&mut self, f: &Frame) -> bool {
        if self.shared.all_streams {
            return true;
        }
        self.cache
            .sync(self.shared.subs_version.load(Ordering::Acquire));
        let shared = &self.shared;
        let m = self.cache.get(f.stream_id, || {
            let subs = match shared.subs.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            super::streams::match_stream(&subs, &f.stream)
        });
        m != Match::No
    }
}

/// When each frame is due, per [`SimPace`] (shared with the other venues' publisher).
pub(crate) enum Pacer {
    Asap,
    Recorded {
        speed: f64,
        base_recv: u64,
        base: Instant,
    },
    Rate {
        rate: u64,
        n: u64,
        base: Instant,
    },
}

impl Pacer {
    pub(crate) fn new(pace: SimPace) -> Pacer {
        match pace {
            SimPace::Asap => Pacer::Asap,
            SimPace::Recorded(speed) => Pacer::Recorded {
                speed,
                base_recv: 0,
                base: Instant::now(),
            },
            SimPace::Rate(rate) => Pacer::Rate {
                rate,
                n: 0,
                base: Instant::now(),
            },
        }
    }

    /// The timeline starts now, at the source's `first_recv_ns`.
    pub(crate) fn start(&mut self, first_recv_ns: u64) {
        match self {
            Pacer::Asap => {}
            Pacer::Recorded {
                base_recv, base, ..
            } => {
                *base_recv = first_recv_ns;
                *base = Instant::now();
            }
            Pacer::Rate { n, base, .. } => {
                *n = 0;
                *base = Instant::now();
            }
        }
    }

    /// When the record received at `recv_ns` is due (`None`: at once).
    pub(crate) fn target(&mut self, recv_ns: u64, is_frame: bool) -> Option<Instant> {
        match self {
            Pacer::Asap => None,
            Pacer::Recorded {
                speed,
                base_recv,
                base,
            } => {
                let gap = recv_ns.saturating_sub(*base_recv) as f64 / *speed;
                Some(*base + Duration::from_nanos(gap.min(u64::MAX as f64) as u64))
            }
            Pacer::Rate { rate, n, base } if is_frame => {
                let at = (*n as u128 * 1_000_000_000 / (*rate).max(1) as u128) as u64;
                *n += 1;
                Some(*base + Duration::from_nanos(at))
            }
            Pacer::Rate { .. } => None,
        }
    }
}

struct Publisher {
    hub: Arc<Hub>,
    reg_rx: Receiver<Registration>,
    outs: Vec<Out>,
    decoder: MarketDecoder,
    default_symbol: Option<SymbolId>,
    /// The trade id of the frame being built, if it is a trade.
    trade_id: Option<u64>,
    /// The frame being built is a depth diff (its levels are the decoder's).
    depth: Option<SymbolId>,
    stream_ids: HashMap<Vec<u8>, u32>,
    stream_names: Vec<Arc<str>>,
    pacer: Pacer,
    started: bool,
    asap: bool,
}

impl Publisher {
    fn on_record(
        &mut self,
        recv_ns: u64,
        kind: RecordKind,
        symbol: Option<&[u8]>,
        payload: &[u8],
    ) -> ControlFlow<()> {
        if self.hub.stopping() {
            return ControlFlow::Break(());
        }
        match kind {
            RecordKind::Snapshot => {
                if self.started {
                    if let Some(t) = self.pacer.target(recv_ns, false) {
                        sleep_until(t, &self.hub)?;
                    }
                }
                self.apply_snapshot(symbol, payload);
                ControlFlow::Continue(())
            }
            RecordKind::TextFrame => self.on_frame(recv_ns, payload),
            _ => ControlFlow::Continue(()),
        }
    }

    fn on_frame(&mut self, recv_ns: u64, payload: &[u8]) -> ControlFlow<()> {
        let Some(frame) = self.build(payload) else {
            return ControlFlow::Continue(());
        };
        if !self.started {
            self.wait_for_subscribers()?;
            self.pacer.start(recv_ns);
            self.started = true;
        }
        if let Some(t) = self.pacer.target(recv_ns, true) {
            sleep_until(t, &self.hub)?;
        }
        self.apply_depth();
        self.fan_out(frame);
        ControlFlow::Continue(())
    }

    /// Decodes a source frame (for the books and the trade id) and wraps it for sending.
    fn build(&mut self, payload: &[u8]) -> Option<Frame> {
        (self.trade_id, self.depth) = (None, None);
        match self.decoder.decode(payload) {
            Ok(Market::Response) => return None, // a recorded answer
            Ok(Market::Trade { trade_id, .. }) => self.trade_id = Some(trade_id),
            Ok(Market::Depth { symbol }) => self.depth = Some(symbol),
            Ok(Market::Other) => {}
            Err(_) => self.hub.count(C::DecodeErrors, 1), // still sent as recorded
        }
        let (combined, name, data) = match split_combined(payload) {
            Some((name, data)) => (Bytes::copy_from_slice(payload), name, data),
            None => {
                let Some((name, data)) = normalise(payload) else {
                    self.hub.count(C::SourceErrors, 1);
                    return None;
                };
                let v = build_combined(&name, &data);
                let name_at = 11..11 + name.len();
                let data_at = name_at.end + 9..v.len() - 1;
                (Bytes::from(v), name_at, data_at)
            }
        };
        let stream_id = self.intern(&combined[name])?;
        let trade_id = self.trade_id;
        Some(Frame {
            stream: self.stream_names[stream_id as usize].clone(),
            stream_id,
            data: combined.slice(data),
            combined,
            trade_id,
        })
    }

    fn intern(&mut self, name: &[u8]) -> Option<u32> {
        if let Some(&id) = self.stream_ids.get(name) {
            return Some(id);
        }
        let s: Arc<str> = Arc::from(std::str::from_utf8(name).ok()?);
        let id = self.stream_names.len() as u32;
        self.stream_names.push(s);
        self.stream_ids.insert(name.to_vec(), id);
        Some(id)
    }

    fn apply_snapshot(&mut self, symbol: Option<&[u8]>, body: &[u8]) {
        let sym = match symbol {
            Some(s) => self.decoder.symbols().lookup(s),
            None => self.default_symbol,
        };
        let Some(sym) = sym else {
            self.hub.count(C::SourceErrors, 1);
            return;
        };
        let Ok(levels) = self.decoder.decode_snapshot(body) else {
            self.hub.count(C::DecodeErrors, 1);
            return;
        };
        let mut books = self.hub.lock_books();
        let Some(book) = books.get_mut(sym.index()) else {
            return;
        };
        if book.is_synced() {
            return; // the book kept from the published diffs is the venue's truth
        }
        for l in levels {
            book.apply_snapshot(l);
        }
    }

    fn apply_depth(&mut self) {
        let Some(symbol) = self.depth else {
            return;
        };
        let mut books = self.hub.lock_books();
        if let Some(b) = books.get_mut(symbol.index()) {
            for l in self.decoder.levels() {
                b.apply_depth(l);
            }
        }
    }

    fn wait_for_subscribers(&self) -> ControlFlow<()> {
        let n = self.hub.cfg().wait_for_subscribers;
        while self.hub.subscribed_conns() < n {
            if self.hub.stopping() {
                return ControlFlow::Break(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        ControlFlow::Continue(())
    }

    fn take_registrations(&mut self) {
        while let Ok(r) = self.reg_rx.try_recv() {
            self.outs.push(Out {
                shared: r.shared,
                tx: r.tx,
                cache: MatchCache::default(),
                enqueued: 0,
            });
        }
    }

    fn fan_out(&mut self, frame: Frame) {
        self.take_registrations();
        let frame = Arc::new(frame);
        let mut i = 0;
        while i < self.outs.len() {
            if self.offer(i, &frame) {
                i += 1;
            } else {
                self.outs.swap_remove(i);
            }
        }
        self.hub.count(C::FramesPublished, 1);
    }

    /// Queues `frame` for connection `i`; false when the connection is gone or was cut off.
    fn offer(&mut self, i: usize, frame: &Arc<Frame>) -> bool {
        let slow_timeout = self.hub.cfg().slow_client_timeout;
        let out = &mut self.outs[i];
        if out.shared.closed.load(Ordering::Acquire) {
            return false;
        }
        if !out.wants(frame) {
            return true;
        }
        out.enqueued += 1;
        out.shared.enqueued.store(out.enqueued, Ordering::Release);
        let mut item = match out.tx.try_send(frame.clone()) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(item)) => item,
        };
        if self.asap {
            // As fast as the clients take it, but a client that stops reading is cut off.
            let deadline = Instant::now() + slow_timeout;
            loop {
                if self.hub.stopping() {
                    return false;
                }
                match out.tx.send_timeout(item, Duration::from_millis(10)) {
                    Ok(()) => return true,
                    Err(SendTimeoutError::Disconnected(_)) => return false,
                    Err(SendTimeoutError::Timeout(back)) => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        item = back;
                    }
                }
            }
        }
        out.enqueued -= 1;
        out.shared.enqueued.store(out.enqueued, Ordering::Release);
        self.hub.count(C::SlowDisconnects, 1);
        out.shared.cut();
        false
    }

    /// The feed is over: say so, then keep the queues open (connections stay up, new ones are
    /// accepted and get nothing) until the simulator stops.
    fn finish(mut self) {
        self.hub.publisher_finished();
        while !self.hub.stopping() {
            self.take_registrations();
            self.outs
                .retain(|o| !o.shared.closed.load(Ordering::Acquire));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sleeps until `t` (or the stop). Gaps under 50 µs are not slept: the frame goes out a little
/// early rather than a sleep's overshoot late, and the timeline never drifts because every
/// target is measured from the start.
fn sleep_until(t: Instant, hub: &Hub) -> ControlFlow<()> {
    loop {
        if hub.stopping() {
            return ControlFlow::Break(());
        }
        let now = Instant::now();
        if now >= t {
            return ControlFlow::Continue(());
        }
        let d = t - now;
        if d < Duration::from_micros(50) {
            return ControlFlow::Continue(());
        }
        std::thread::sleep(d.min(Duration::from_millis(50)));
    }
}

/// A source frame that is not in Binance's combined layout: a combined frame written
/// differently (key order, whitespace) or a bare payload whose stream is derived from its `e`
/// and `s` fields. Returns the stream name and the payload bytes.
fn normalise(payload: &[u8]) -> Option<(String, Vec<u8>)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let obj = v.as_object()?;
    if let (Some(stream), Some(data)) =
        (obj.get("stream").and_then(|s| s.as_str()), obj.get("data"))
    {
        return Some((stream.to_string(), serde_json::to_vec(data).ok()?));
    }
    let sym = obj.get("s")?.as_str()?.to_ascii_lowercase();
    let kind = match obj.get("e").and_then(|e| e.as_str()) {
        Some("depthUpdate") => "depth",
        Some(e) => e,
        None if obj.contains_key("u") && obj.contains_key("b") && obj.contains_key("a") => {
            "bookTicker"
        }
        None => return None,
    };
    Some((format!("{sym}@{kind}"), payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_payloads_get_stream_names() {
        let (n, d) = normalise(br#"{"e":"trade","s":"BTCUSDT","t":1}"#).unwrap();
        assert_eq!(n, "btcusdt@trade");
        assert_eq!(d, br#"{"e":"trade","s":"BTCUSDT","t":1}"#);
        let (n, _) = normalise(br#"{"e":"depthUpdate","s":"ETHUSDT"}"#).unwrap();
        assert_eq!(n, "ethusdt@depth");
        let (n, _) =
            normalise(br#"{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}"#).unwrap();
        assert_eq!(n, "btcusdt@bookTicker");
        let (n, d) = normalise(br#"{ "data": {"x":1}, "stream": "a@trade" }"#).unwrap();
        assert_eq!((n.as_str(), d.as_slice()), ("a@trade", &br#"{"x":1}"#[..]));
        assert!(normalise(b"[1,2]").is_none());
        assert!(normalise(br#"{"result":null,"id":1}"#).is_none());
    }

    #[test]
    fn rate_pacer_spaces_frames_evenly() {
        let mut p = Pacer::Rate {
            rate: 1000,
            n: 0,
            base: Instant::now(),
        };
        p.start(0);
        let t0 = p.target(0, true).unwrap();
        let t1 = p.target(0, true).unwrap();
        assert!(p.target(0, false).is_none());
        let t2 = p.target(0, true).unwrap();
        assert_eq!(t1 - t0, Duration::from_millis(1));
        assert_eq!(t2 - t0, Duration::from_millis(2));
    }
}
