//! A deterministic synthetic feed in Binance spot's wire formats.
//!
//! The same [`GenConfig`] (seed included) always produces byte-identical frames; the PRNG is an
//! inline splitmix64, so no dependency or platform changes the output.
//!
//! Per symbol the generator keeps a consistent L2 book (tick 0.01; about 50 levels a side
//! around a starting mid that differs per symbol) that moves as a random walk, and emits:
//!
//! 1. first, one REST depth snapshot per symbol, in symbol order, exactly as `GET /api/v3/depth`
//!    returns it: `{"lastUpdateId":N,"bids":[["p","q"],..],"asks":[..]}` (best first, prices and
//!    quantities with 8 decimals);
//! 2. then [`GenConfig::events`] combined-stream frames, each for a random symbol (about 32%
//!    diffs, 20% bookTickers, 48% trades):
//!    - `{"stream":"<sym>@depth@100ms","data":{"e":"depthUpdate","E":..,"s":"SYM","U":..,"u":..,"b":[..],"a":[..]}}`:
//!      absolute quantities of the changed levels (`"0.00000000"` removes a level), bids
//!      descending and asks ascending. `U` is the previous `u` + 1; the first diff after the
//!      snapshot bridges it per Binance's rule (`U <= lastUpdateId + 1 <= u`), sometimes
//!      starting a little before it, as real diffs do.
//!    - `{"stream":"<sym>@bookTicker","data":{"u":..,"s":"SYM","b":..,"B":..,"a":..,"A":..}}`:
//!      the book's best levels, sent only when they differ from the symbol's previous
//!      bookTicker (the first one after the snapshot always goes out); `u` is the book's last
//!      update id.
//!    - `{"stream":"<sym>@trade","data":{"e":"trade","E":..,"s":"SYM","t":..,"p":..,"q":..,"T":..,"m":..,"M":true}}`:
//!      at the best bid (`m: true`, the seller was the taker) or the best ask, for at most the
//!      level's quantity; trade ids rise by one per symbol.
//!
//! The book changes only in depth diffs, so a consumer that applies the snapshot and the diffs
//! holds exactly the generator's book: bookTickers equal its top, trades lie in
//! `[best bid, best ask]`, and it is never crossed. Receive times start at
//! [`GenConfig::start_ns`] and strictly increase (1 µs to 2 ms apart); exchange times (`E`, `T`,
//! milliseconds) trail them by 1.5 ms.
//!
//! Frames are written into a caller's buffer ([`FeedGenerator::next_frame`]); after warm-up
//! nothing is allocated per frame.

use core::fmt;
use engine::symbol::MAX_SYMBOL_LEN;
use feeds::capture::{CaptureError, CaptureWriter, RecordKind};
use std::io::{self, Write};

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Symbols, e.g. `"BTCUSDT"` (any case; `s` fields are upper case, stream names lower).
    pub symbols: Vec<String>,
    /// Frames after the snapshots.
    pub events: u64,
    /// PRNG seed.
    pub seed: u64,
    /// Receive time of the first frame, nanoseconds.
    pub start_ns: u64,
}

/// The kind of a generated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GenKind {
    /// A REST depth snapshot body (no symbol inside; see [`GenFrame::symbol`]).
    Snapshot,
    /// A `depthUpdate` diff.
    Depth,
    /// A `bookTicker`.
    BookTicker,
    /// A `trade`.
    Trade,
}

/// Metadata of a generated frame (the bytes are in the caller's buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenFrame {
    /// Receive time, nanoseconds; strictly increasing.
    pub recv_ns: u64,
    /// Index into [`GenConfig::symbols`].
    pub symbol: usize,
    /// What the frame is.
    pub kind: GenKind,
}

/// Why generation could not start or finish.
#[derive(Debug)]
pub enum GenError {
    /// No symbols configured.
    NoSymbols,
    /// A symbol that is empty, too long, or not ASCII letters and digits.
    BadSymbol(String),
    /// A line capture can carry one symbol only (its REST snapshot names none); this many asked.
    LineFormatNeedsOneSymbol(usize),
    /// Writing failed.
    Io(io::Error),
    /// Writing a `.tlc` capture failed.
    Capture(CaptureError),
}

impl fmt::Display for GenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenError::NoSymbols => f.write_str("no symbols to generate"),
            GenError::BadSymbol(s) => write!(
                f,
                "bad symbol {s:?}: expected 1..={MAX_SYMBOL_LEN} ASCII letters and digits"
            ),
            GenError::LineFormatNeedsOneSymbol(n) => write!(
                f,
                "a line capture holds exactly one symbol (its REST snapshot names none), not {n}"
            ),
            GenError::Io(e) => write!(f, "writing the generated feed: {e}"),
            GenError::Capture(e) => write!(f, "writing the generated capture: {e}"),
        }
    }
}

impl std::error::Error for GenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GenError::Io(e) => Some(e),
            GenError::Capture(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for GenError {
    fn from(e: io::Error) -> Self {
        GenError::Io(e)
    }
}

impl From<CaptureError> for GenError {
    fn from(e: CaptureError) -> Self {
        GenError::Capture(e)
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for synthetic data.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (multiply-shift; the bias is below 2^-40 for our ranges). `n > 0`.
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// 0.01 in 1e-8 units.
const TICK_UNITS: i64 = 1_000_000;
/// Quantity step 0.00001 in 1e-8 units.
const QTY_STEP: i64 = 1_000;
const TARGET_LEVELS: usize = 50;
const MIN_LEVELS: usize = 40;
const MAX_LEVELS: usize = 60;
/// Receive-to-exchange-time offset: `E = (recv_ns - LATENCY_NS) / 1e6`.
const LATENCY_NS: u64 = 1_500_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Level {
    /// Price in ticks of 0.01.
    px: i64,
    /// Quantity in 1e-8 units (> 0).
    qty: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Bid,
    Ask,
}

#[derive(Debug)]
struct SymState {
    upper: Vec<u8>,
    lower: Vec<u8>,
    /// Best first (descending prices).
    bids: Vec<Level>,
    /// Best first (ascending prices).
    asks: Vec<Level>,
    /// The book's last update id (the snapshot's, then each diff's `u`).
    last_u: u64,
    /// No diff emitted yet: the next one bridges the snapshot.
    first_diff: bool,
    next_trade_id: u64,
    last_trade_ms: u64,
    /// Top of book in the last bookTicker sent (a bookTicker goes out only when it changed).
    last_ticker: Option<(Level, Level)>,
}

impl SymState {
    fn side(&mut self, s: Side) -> &mut Vec<Level> {
        match s {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }
}

/// Generates the feed; see the module docs.
#[derive(Debug)]
pub struct FeedGenerator {
    syms: Vec<SymState>,
    rng: SplitMix64,
    now_ns: u64,
    started: bool,
    snapshots_done: usize,
    events_left: u64,
    /// Changes of the diff being built: (price ticks, qty units).
    chg_bids: Vec<(i64, i64)>,
    chg_asks: Vec<(i64, i64)>,
}

fn random_qty(rng: &mut SplitMix64) -> i64 {
    let steps = if rng.pct(20) { 500_000 } else { 20_000 };
    QTY_STEP * (1 + rng.below(steps) as i64)
}

/// Where a new level may go on `side`: strictly worse than the opposite side's best.
fn is_valid(side: Side, px: i64, other_best: Option<i64>) -> bool {
    px >= 1
        && match (side, other_best) {
            (_, None) => true,
            (Side::Bid, Some(a)) => px < a,
            (Side::Ask, Some(b)) => px > b,
        }
}

impl FeedGenerator {
    /// Builds the initial books. Fails on an empty or bad symbol list.
    pub fn new(cfg: GenConfig) -> Result<Self, GenError> {
        if cfg.symbols.is_empty() {
            return Err(GenError::NoSymbols);
        }
        let mut rng = SplitMix64(cfg.seed ^ 0x5449_434B_4C49_4E45); // "TICKLINE"
        let mut syms: Vec<SymState> = Vec::with_capacity(cfg.symbols.len());
        for name in &cfg.symbols {
            if name.is_empty()
                || name.len() > MAX_SYMBOL_LEN
                || !name.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(GenError::BadSymbol(name.clone()));
            }
            // A starting mid between 100.00 and 70,000.00, different from every other symbol's.
            let mut mid = 10_000 + rng.below(6_990_000) as i64;
            while syms
                .iter()
                .any(|s| s.bids.first().map(|l| l.px) == Some(mid))
            {
                mid += 97;
            }
            let spread = 1 + rng.below(3) as i64;
            let mut bids = Vec::with_capacity(MAX_LEVELS + 8);
            let mut asks = Vec::with_capacity(MAX_LEVELS + 8);
            let (mut b, mut a) = (mid, mid + spread);
            for _ in 0..TARGET_LEVELS {
                bids.push(Level {
                    px: b,
                    qty: random_qty(&mut rng),
                });
                asks.push(Level {
                    px: a,
                    qty: random_qty(&mut rng),
                });
                b -= 1 + rng.below(3) as i64;
                a += 1 + rng.below(3) as i64;
            }
            syms.push(SymState {
                upper: name.to_ascii_uppercase().into_bytes(),
                lower: name.to_ascii_lowercase().into_bytes(),
                bids,
                asks,
                last_u: 1_000_000_000 + rng.below(90_000_000_000),
                first_diff: true,
                next_trade_id: 100_000_000 + rng.below(4_000_000_000),
                last_trade_ms: 0,
                last_ticker: None,
            });
        }
        Ok(Self {
            syms,
            rng,
            now_ns: cfg.start_ns,
            started: false,
            snapshots_done: 0,
            events_left: cfg.events,
            chg_bids: Vec::with_capacity(64),
            chg_asks: Vec::with_capacity(64),
        })
    }

    /// Number of symbols.
    pub fn symbol_count(&self) -> usize {
        self.syms.len()
    }

    /// Upper-case name of symbol `i` (as in the `s` fields).
    pub fn symbol_name(&self, i: usize) -> Option<&str> {
        self.syms
            .get(i)
            .and_then(|s| core::str::from_utf8(&s.upper).ok())
    }

    /// The generator's current best bid and ask of symbol `i` as `((price, qty), (price, qty))`
    /// in 1e-8 units.
    pub fn top_of_book(&self, i: usize) -> Option<((i64, i64), (i64, i64))> {
        let s = self.syms.get(i)?;
        let b = s.bids.first()?;
        let a = s.asks.first()?;
        Some(((b.px * TICK_UNITS, b.qty), (a.px * TICK_UNITS, a.qty)))
    }

    /// Writes the next frame's JSON into `buf` (cleared first) and describes it; `None` when done.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<GenFrame> {
        buf.clear();
        if self.started {
            self.now_ns = self
                .now_ns
                .saturating_add(1_000 + self.rng.below(2_000_000));
        }
        if self.snapshots_done < self.syms.len() {
            let i = self.snapshots_done;
            self.snapshots_done += 1;
            self.started = true;
            self.write_snapshot(i, buf);
            return Some(self.frame(i, GenKind::Snapshot));
        }
        if self.events_left == 0 {
            return None;
        }
        self.events_left -= 1;
        let i = self.rng.below(self.syms.len() as u64) as usize;
        let s = &self.syms[i];
        let top_moved = s.last_ticker != Some((s.bids[0], s.asks[0]));
        let kind = if top_moved && self.rng.pct(80) {
            self.write_book_ticker(i, buf);
            GenKind::BookTicker
        } else if self.rng.pct(40) {
            self.write_depth(i, buf);
            GenKind::Depth
        } else {
            self.write_trade(i, buf);
            GenKind::Trade
        };
        Some(self.frame(i, kind))
    }

    fn frame(&self, symbol: usize, kind: GenKind) -> GenFrame {
        GenFrame {
            recv_ns: self.now_ns,
            symbol,
            kind,
        }
    }

    fn exchange_ms(&self) -> u64 {
        self.now_ns.saturating_sub(LATENCY_NS) / 1_000_000
    }

    fn write_snapshot(&mut self, i: usize, buf: &mut Vec<u8>) {
        let s = &self.syms[i];
        buf.extend_from_slice(b"{\"lastUpdateId\":");
        push_u64(buf, s.last_u);
        buf.extend_from_slice(b",\"bids\":");
        push_levels(buf, s.bids.iter().map(|l| (l.px, l.qty)));
        buf.extend_from_slice(b",\"asks\":");
        push_levels(buf, s.asks.iter().map(|l| (l.px, l.qty)));
        buf.push(b'}');
    }

    fn write_book_ticker(&mut self, i: usize, buf: &mut Vec<u8>) {
        let s = &mut self.syms[i];
        let (b, a) = (s.bids[0], s.asks[0]);
        s.last_ticker = Some((b, a));
        push_stream_head(buf, &s.lower, b"@bookTicker");
        buf.extend_from_slice(b"{\"u\":");
        push_u64(buf, s.last_u);
        buf.extend_from_slice(b",\"s\":\"");
        buf.extend_from_slice(&s.upper);
        buf.extend_from_slice(b"\",\"b\":\"");
        push_fixed(buf, b.px * TICK_UNITS);
        buf.extend_from_slice(b"\",\"B\":\"");
        push_fixed(buf, b.qty);
        buf.extend_from_slice(b"\",\"a\":\"");
        push_fixed(buf, a.px * TICK_UNITS);
        buf.extend_from_slice(b"\",\"A\":\"");
        push_fixed(buf, a.qty);
        buf.extend_from_slice(b"\"}}");
    }

    fn write_trade(&mut self, i: usize, buf: &mut Vec<u8>) {
        let e_ms = self.exchange_ms();
        let lag = self.rng.below(2);
        let buyer_maker = self.rng.pct(50);
        let want = random_qty(&mut self.rng).min(QTY_STEP * 200_000);
        let s = &mut self.syms[i];
        let lvl = if buyer_maker { s.bids[0] } else { s.asks[0] };
        let qty = want.min(lvl.qty);
        let t_ms = e_ms.saturating_sub(lag).max(s.last_trade_ms);
        s.last_trade_ms = t_ms;
        let id = s.next_trade_id;
        s.next_trade_id += 1;
        push_stream_head(buf, &s.lower, b"@trade");
        buf.extend_from_slice(b"{\"e\":\"trade\",\"E\":");
        push_u64(buf, e_ms);
        buf.extend_from_slice(b",\"s\":\"");
        buf.extend_from_slice(&s.upper);
        buf.extend_from_slice(b"\",\"t\":");
        push_u64(buf, id);
        buf.extend_from_slice(b",\"p\":\"");
        push_fixed(buf, lvl.px * TICK_UNITS);
        buf.extend_from_slice(b"\",\"q\":\"");
        push_fixed(buf, qty);
        buf.extend_from_slice(b"\",\"T\":");
        push_u64(buf, t_ms);
        buf.extend_from_slice(if buyer_maker {
            b",\"m\":true,\"M\":true}}"
        } else {
            b",\"m\":false,\"M\":true}}"
        });
    }

    /// Notes the new absolute quantity of a level in the diff being built.
    fn note(&mut self, side: Side, px: i64, qty: i64) {
        let chg = match side {
            Side::Bid => &mut self.chg_bids,
            Side::Ask => &mut self.chg_asks,
        };
        match chg.iter_mut().find(|c| c.0 == px) {
            Some(c) => c.1 = qty,
            None => chg.push((px, qty)),
        }
    }

    fn set_qty(&mut self, i: usize, side: Side, idx: usize, qty: i64) {
        let px = {
            let lv = &mut self.syms[i].side(side)[idx];
            lv.qty = qty;
            lv.px
        };
        self.note(side, px, qty);
    }

    fn remove(&mut self, i: usize, side: Side, idx: usize) {
        let px = self.syms[i].side(side).remove(idx).px;
        self.note(side, px, 0);
    }

    fn insert(&mut self, i: usize, side: Side, idx: usize, px: i64) {
        let qty = random_qty(&mut self.rng);
        self.syms[i].side(side).insert(idx, Level { px, qty });
        self.note(side, px, qty);
    }

    /// One random change to symbol `i`'s book, keeping it uncrossed.
    fn mutate(&mut self, i: usize) {
        let side = if self.rng.pct(50) {
            Side::Bid
        } else {
            Side::Ask
        };
        let (best_bid, best_ask) = {
            let s = &self.syms[i];
            (s.bids[0].px, s.asks[0].px)
        };
        let len = self.syms[i].side(side).len();
        let op = self.rng.below(100);
        if op < 40 {
            // New quantity at a level, biased towards the top.
            let idx = self.rng.below(len as u64).min(self.rng.below(len as u64)) as usize;
            let q = random_qty(&mut self.rng);
            self.set_qty(i, side, idx, q);
        } else if op < 55 {
            // Improve this side inside the spread; if the spread is one tick, back off instead.
            let spread = best_ask - best_bid;
            if spread > 1 {
                let step = 1 + self.rng.below((spread - 1) as u64) as i64;
                let px = match side {
                    Side::Bid => best_bid + step,
                    Side::Ask => best_ask - step,
                };
                self.insert(i, side, 0, px);
            } else if len > 1 {
                self.remove(i, side, 0);
            }
        } else if op < 70 {
            // The top level goes away (the price walks away from this side).
            if len > 1 {
                self.remove(i, side, 0);
            }
        } else if op < 85 {
            // A new level in a gap inside the book.
            let idx = self.rng.below(len.saturating_sub(1).max(1) as u64) as usize;
            let lv = self.syms[i].side(side);
            if idx + 1 < lv.len() {
                let (a, b) = (lv[idx].px, lv[idx + 1].px);
                if (a - b).abs() > 1 {
                    let px = match side {
                        Side::Bid => a - 1,
                        Side::Ask => a + 1,
                    };
                    self.insert(i, side, idx + 1, px);
                }
            }
        } else if len > 1 {
            // A level below the top goes away.
            let idx = 1 + self.rng.below((len - 1) as u64) as usize;
            self.remove(i, side, idx);
        }
        self.rebalance(i, Side::Bid);
        self.rebalance(i, Side::Ask);
    }

    /// Keeps a side between `MIN_LEVELS` and `MAX_LEVELS` by adding or dropping far levels.
    fn rebalance(&mut self, i: usize, side: Side) {
        while self.syms[i].side(side).len() > MAX_LEVELS {
            let last = self.syms[i].side(side).len() - 1;
            self.remove(i, side, last);
        }
        while self.syms[i].side(side).len() < MIN_LEVELS {
            let gap = 1 + self.rng.below(3) as i64;
            let s = &mut self.syms[i];
            let other_best = match side {
                Side::Bid => s.asks.first().map(|l| l.px),
                Side::Ask => s.bids.first().map(|l| l.px),
            };
            let lv = s.side(side);
            let px = match (side, lv.last()) {
                (Side::Bid, Some(l)) => l.px - gap,
                (Side::Ask, Some(l)) => l.px + gap,
                (Side::Bid, None) => other_best.map_or(1, |a| a - gap),
                (Side::Ask, None) => other_best.map_or(1, |b| b + gap),
            };
            if !is_valid(side, px, other_best) {
                break; // near zero: fewer levels rather than a bad price
            }
            let at = lv.len();
            self.insert(i, side, at, px);
        }
    }

    fn write_depth(&mut self, i: usize, buf: &mut Vec<u8>) {
        self.chg_bids.clear();
        self.chg_asks.clear();
        let ops = 1 + self.rng.below(6);
        for _ in 0..ops {
            self.mutate(i);
        }
        if self.chg_bids.is_empty() && self.chg_asks.is_empty() {
            // Every change was a no-op (no gap to fill, say): a diff always carries a level.
            let q = random_qty(&mut self.rng);
            self.set_qty(i, Side::Bid, 0, q);
        }
        debug_assert!(self.syms[i].bids[0].px < self.syms[i].asks[0].px);
        self.chg_bids
            .sort_unstable_by_key(|c| core::cmp::Reverse(c.0));
        self.chg_asks.sort_unstable_by_key(|c| c.0);
        let updates = (self.chg_bids.len() + self.chg_asks.len()) as u64 + self.rng.below(4);
        let updates = updates.max(1);
        let back = self.rng.below(3);
        let e_ms = self.exchange_ms();
        let s = &mut self.syms[i];
        let first = if s.first_diff {
            // Bridge the snapshot: U <= lastUpdateId + 1 <= u.
            s.first_diff = false;
            (s.last_u + 1).saturating_sub(back).max(1)
        } else {
            s.last_u + 1
        };
        let last = s.last_u + updates;
        s.last_u = last;
        push_stream_head(buf, &s.lower, b"@depth@100ms");
        buf.extend_from_slice(b"{\"e\":\"depthUpdate\",\"E\":");
        push_u64(buf, e_ms);
        buf.extend_from_slice(b",\"s\":\"");
        buf.extend_from_slice(&s.upper);
        buf.extend_from_slice(b"\",\"U\":");
        push_u64(buf, first);
        buf.extend_from_slice(b",\"u\":");
        push_u64(buf, last);
        buf.extend_from_slice(b",\"b\":");
        push_levels(buf, self.chg_bids.iter().copied());
        buf.extend_from_slice(b",\"a\":");
        push_levels(buf, self.chg_asks.iter().copied());
        buf.extend_from_slice(b"}}");
    }
}

fn push_stream_head(buf: &mut Vec<u8>, lower: &[u8], suffix: &[u8]) {
    buf.extend_from_slice(b"{\"stream\":\"");
    buf.extend_from_slice(lower);
    buf.extend_from_slice(suffix);
    buf.extend_from_slice(b"\",\"data\":");
}

fn push_levels(buf: &mut Vec<u8>, levels: impl Iterator<Item = (i64, i64)>) {
    buf.push(b'[');
    for (n, (px, qty)) in levels.enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"[\"");
        push_fixed(buf, px * TICK_UNITS);
        buf.extend_from_slice(b"\",\"");
        push_fixed(buf, qty);
        buf.extend_from_slice(b"\"]");
    }
    buf.push(b']');
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Writes non-negative 1e-8 units with eight decimals, as Binance does.
fn push_fixed(buf: &mut Vec<u8>, units: i64) {
    let u = units.max(0) as u64;
    push_u64(buf, u / 100_000_000);
    buf.push(b'.');
    let mut frac = u % 100_000_000;
    let mut tmp = [b'0'; 8];
    for d in tmp.iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    buf.extend_from_slice(&tmp);
}

/// Writes the feed as a line capture (`<recv_ns> <json>\n`), which needs exactly one symbol.
/// Returns the number of frames written (the snapshot included).
pub fn write_line_capture(cfg: &GenConfig, out: &mut impl Write) -> Result<u64, GenError> {
    if cfg.symbols.len() != 1 {
        return Err(GenError::LineFormatNeedsOneSymbol(cfg.symbols.len()));
    }
    let mut g = FeedGenerator::new(cfg.clone())?;
    let mut buf = Vec::with_capacity(8192);
    let mut line = Vec::with_capacity(8192);
    let mut n = 0;
    while let Some(f) = g.next_frame(&mut buf) {
        line.clear();
        push_u64(&mut line, f.recv_ns);
        line.push(b' ');
        line.extend_from_slice(&buf);
        line.push(b'\n');
        out.write_all(&line)?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Connection id the `.tlc` writer gives REST snapshots.
pub const REST_CONN_ID: u32 = 0;
/// Connection id the `.tlc` writer gives the combined WebSocket stream.
pub const WS_CONN_ID: u32 = 1;

/// Writes the feed as a `.tlc` capture: snapshots as [`RecordKind::Snapshot`] records
/// (`<SYMBOL> <body>`, connection [`REST_CONN_ID`]), frames as [`RecordKind::TextFrame`]
/// records (connection [`WS_CONN_ID`]). The header's creation time is `start_ns`, so the file is
/// reproducible. Returns the number of records written.
pub fn write_tickline_capture(cfg: &GenConfig, out: &mut impl Write) -> Result<u64, GenError> {
    let created = cfg.start_ns;
    let mut g = FeedGenerator::new(cfg.clone())?;
    let mut w = CaptureWriter::with_header(out, created, 0)?;
    let mut buf = Vec::with_capacity(8192);
    while let Some(f) = g.next_frame(&mut buf) {
        match f.kind {
            GenKind::Snapshot => {
                let sym = &g.syms[f.symbol].upper;
                w.append_snapshot(f.recv_ns, REST_CONN_ID, sym, &buf)?;
            }
            _ => w.append(f.recv_ns, WS_CONN_ID, RecordKind::TextFrame, &buf)?,
        }
    }
    w.flush()?;
    Ok(w.records())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(symbols: &[&str], events: u64, seed: u64) -> GenConfig {
        GenConfig {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            events,
            seed,
            start_ns: 1_723_161_253_937_085_768,
        }
    }

    fn all_frames(c: GenConfig) -> Vec<(GenFrame, Vec<u8>)> {
        let mut g = FeedGenerator::new(c).unwrap();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(f) = g.next_frame(&mut buf) {
            out.push((f, buf.clone()));
        }
        out
    }

    #[test]
    fn fixed_and_integer_formatting() {
        let mut b = Vec::new();
        push_fixed(&mut b, 6_183_763_000_000);
        b.push(b' ');
        push_fixed(&mut b, 1);
        b.push(b' ');
        push_fixed(&mut b, 0);
        b.push(b' ');
        push_u64(&mut b, 0);
        b.push(b' ');
        push_u64(&mut b, u64::MAX);
        assert_eq!(
            b,
            b"61837.63000000 0.00000001 0.00000000 0 18446744073709551615"
        );
    }

    #[test]
    fn snapshots_come_first_then_exactly_events_frames() {
        let frames = all_frames(cfg(&["BTCUSDT", "ethusdt", "SOLUSDT"], 500, 7));
        assert_eq!(frames.len(), 503);
        for (i, (f, body)) in frames.iter().take(3).enumerate() {
            assert_eq!((f.kind, f.symbol), (GenKind::Snapshot, i));
            assert!(body.starts_with(b"{\"lastUpdateId\":"));
        }
        assert!(frames[3..].iter().all(|(f, _)| f.kind != GenKind::Snapshot));
        assert_eq!(frames[0].0.recv_ns, 1_723_161_253_937_085_768);
        assert!(frames.windows(2).all(|w| w[0].0.recv_ns < w[1].0.recv_ns));
        for kind in [GenKind::Depth, GenKind::BookTicker, GenKind::Trade] {
            assert!(frames.iter().any(|(f, _)| f.kind == kind), "{kind:?}");
        }
        let eth = frames
            .iter()
            .find(|(f, _)| f.symbol == 1 && f.kind == GenKind::Trade);
        let body = String::from_utf8(eth.unwrap().1.clone()).unwrap();
        assert!(body.starts_with("{\"stream\":\"ethusdt@trade\",\"data\":{\"e\":\"trade\""));
        assert!(body.contains("\"s\":\"ETHUSDT\""));
    }

    #[test]
    fn deterministic_per_seed() {
        let a = all_frames(cfg(&["BTCUSDT", "ETHUSDT"], 2_000, 1));
        let b = all_frames(cfg(&["BTCUSDT", "ETHUSDT"], 2_000, 1));
        let c = all_frames(cfg(&["BTCUSDT", "ETHUSDT"], 2_000, 2));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn book_stays_sane_and_mids_differ() {
        let mut g = FeedGenerator::new(cfg(&["A1", "B2", "C3", "D4"], 50_000, 3)).unwrap();
        let mids: Vec<i64> = (0..4).map(|i| g.top_of_book(i).unwrap().0 .0).collect();
        for i in 0..4 {
            for j in 0..i {
                assert_ne!(mids[i], mids[j]);
            }
        }
        let mut buf = Vec::new();
        while g.next_frame(&mut buf).is_some() {
            for s in &g.syms {
                assert!(s.bids[0].px < s.asks[0].px);
                for side in [&s.bids, &s.asks] {
                    assert!((MIN_LEVELS..=MAX_LEVELS).contains(&side.len()));
                    assert!(side.iter().all(|l| l.qty > 0 && l.px > 0));
                }
                assert!(s.bids.windows(2).all(|w| w[0].px > w[1].px));
                assert!(s.asks.windows(2).all(|w| w[0].px < w[1].px));
            }
        }
    }

    #[test]
    fn frames_are_valid_json() {
        for (_, body) in all_frames(cfg(&["BTCUSDT"], 300, 9)) {
            serde_json::from_slice::<serde_json::Value>(&body).unwrap();
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(matches!(
            FeedGenerator::new(cfg(&[], 1, 1)),
            Err(GenError::NoSymbols)
        ));
        assert!(matches!(
            FeedGenerator::new(cfg(&["BTC-USDT"], 1, 1)),
            Err(GenError::BadSymbol(_))
        ));
        let mut out = Vec::new();
        assert!(matches!(
            write_line_capture(&cfg(&["BTCUSDT", "ETHUSDT"], 1, 1), &mut out),
            Err(GenError::LineFormatNeedsOneSymbol(2))
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn capture_writers_produce_readable_files() {
        let mut lines = Vec::new();
        assert_eq!(
            write_line_capture(&cfg(&["BTCUSDT"], 100, 4), &mut lines).unwrap(),
            101
        );
        let cap = feeds::capture::LineCapture::from_bytes(lines).unwrap();
        assert_eq!(cap.iter().filter(|r| r.is_ok()).count(), 101);

        let mut tlc = Vec::new();
        assert_eq!(
            write_tickline_capture(&cfg(&["BTCUSDT", "ETHUSDT"], 100, 4), &mut tlc).unwrap(),
            102
        );
        let cap = feeds::capture::TicklineCapture::from_bytes(tlc).unwrap();
        let recs: Vec<_> = cap.iter().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 102);
        assert_eq!(recs[1].snapshot().unwrap().0, b"ETHUSDT");
        assert!(recs[2..].iter().all(|r| r.kind == RecordKind::TextFrame));
    }
}
