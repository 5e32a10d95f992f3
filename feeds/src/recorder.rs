//! The capture recorder: raw frames from the I/O thread to a writer thread, without blocking
//! either.
//!
//! **Real-time contract.** [`recorder`] allocates one fixed-capacity byte ring. After that the
//! producer ([`RecorderTx`], owned by the I/O thread) never allocates, never locks, never makes a
//! syscall and never waits: a record that does not fit is dropped, counted, and reported as
//! `false`. The consumer ([`RecorderRx`], owned by the writer thread) copies each record out and
//! [`run_writer`] appends it to a [`CaptureWriter`] (the `.tlc` format of [`crate::capture`]),
//! flushing at least every [`FLUSH_INTERVAL`]. A slow disk can only cost records (counted in
//! [`RecorderStats::dropped`]), never I/O-thread latency.
//!
//! ```
//! use feeds::capture::{CaptureWriter, RecordKind};
//! use feeds::recorder::{recorder, run_writer};
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! let (mut tx, rx) = recorder(64 << 10);
//! assert!(tx.record(1_000, 1, RecordKind::TextFrame, br#"{"e":"trade"}"#));
//! let stop = AtomicBool::new(true); // the ring is drained first, then the writer ends
//! let stats = run_writer(rx, CaptureWriter::new(Vec::new()).unwrap(), &stop).unwrap();
//! assert_eq!(stats.records, 1);
//! ```
//!
//! # The ring
//!
//! An [`rtrb::RingBuffer<u8>`] of exactly the capacity asked for (at least [`MIN_CAPACITY`]).
//! A record in it is a 17-byte header (payload length `u32`, connection id `u32`, receive time
//! `u64`, kind code `u8`, all little-endian) and then the payload. The producer first checks that
//! the whole record fits, then copies header and payload in with `push_entire_slice` (a memcpy
//! each); the consumer takes a record only once all of its bytes are there, so it never sees a
//! torn one. The largest record is the capacity (and [`MAX_PAYLOAD`]); a larger one is refused
//! ([`RecorderStats::rejected`]).

use crate::capture::{CaptureError, CaptureWriter, RecordKind, MAX_PAYLOAD};
use core::fmt;
use rtrb::{Consumer, Producer, RingBuffer};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Smallest ring, in bytes.
pub const MIN_CAPACITY: usize = 64;
/// [`run_writer`] flushes the capture at least this often while records arrive.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How long a capture writer ([`run_writer`], the live runner's) sleeps when its rings are
/// empty. It shares the I/O thread's CPU, so it batches: waking every millisecond it preempted
/// that thread about a thousand times a second. Ten milliseconds of any feed is a small part of
/// a recorder ring (tens of MiB).
pub const IDLE_SLEEP: Duration = Duration::from_millis(10);
/// Bytes of a record header in the ring.
const RING_HEADER: usize = 17;

/// Producer counters, published for the writer and for status lines (written only by the
/// producer, so plain stores suffice), on a cache line of their own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct SharedCounters {
    records: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    dropped_bytes: AtomicU64,
    rejected: AtomicU64,
}

/// Producer-side counters of a recorder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Records committed to the ring.
    pub records: u64,
    /// Payload bytes of those records.
    pub bytes: u64,
    /// Records dropped because the ring was full or the writer was gone.
    pub dropped: u64,
    /// Payload bytes of the dropped records.
    pub dropped_bytes: u64,
    /// Records refused because they can never fit (larger than the ring or [`MAX_PAYLOAD`]) or
    /// are malformed (a snapshot symbol that is empty or holds whitespace).
    pub rejected: u64,
}

/// Makes a recorder ring of `capacity_bytes` (at least [`MIN_CAPACITY`]): the producer end for
/// the I/O thread and the consumer end for [`run_writer`]. The only allocations the recorder
/// ever makes (the ring, and the writer's record buffer of the same size).
pub fn recorder(capacity_bytes: usize) -> (RecorderTx, RecorderRx) {
    let cap = capacity_bytes.clamp(MIN_CAPACITY, RING_HEADER + MAX_PAYLOAD);
    let (prod, cons) = RingBuffer::new(cap);
    let counters = Arc::new(SharedCounters::default());
    (
        RecorderTx {
            prod,
            counters: Arc::clone(&counters),
            stats: RecorderStats::default(),
        },
        RecorderRx {
            cons,
            counters,
            scratch: Vec::with_capacity(cap),
        },
    )
}

/// The producer end: owned by one I/O thread. Never blocks and never allocates.
pub struct RecorderTx {
    prod: Producer<u8>,
    counters: Arc<SharedCounters>,
    stats: RecorderStats,
}

impl fmt::Debug for RecorderTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecorderTx")
            .field("capacity", &self.capacity())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RecorderTx {
    /// Records one frame (or connection event) received at `recv_ns` on connection `conn_id`.
    ///
    /// Returns `false`, and counts it, when the record does not fit right now (ring full), the
    /// writer is gone, or the record can never fit (see [`RecorderStats::rejected`]).
    #[inline]
    pub fn record(&mut self, recv_ns: u64, conn_id: u32, kind: RecordKind, payload: &[u8]) -> bool {
        self.write(recv_ns, conn_id, kind, &[payload])
    }

    /// Records a REST depth snapshot for `symbol` as one [`RecordKind::Snapshot`] record
    /// (`<SYMBOL> <body>`). A symbol that is empty or holds whitespace is refused.
    pub fn snapshot(&mut self, recv_ns: u64, conn_id: u32, symbol: &str, body: &[u8]) -> bool {
        if symbol.is_empty() || symbol.bytes().any(|b| b.is_ascii_whitespace()) {
            return self.rejected();
        }
        self.write(
            recv_ns,
            conn_id,
            RecordKind::Snapshot,
            &[symbol.as_bytes(), b" ", body],
        )
    }

    /// Counters so far.
    pub fn stats(&self) -> RecorderStats {
        self.stats
    }

    /// Capacity of the ring in bytes (record headers of 17 bytes included).
    pub fn capacity(&self) -> usize {
        self.prod.buffer().capacity()
    }

    /// True once the writer's end was dropped (every further record is dropped).
    pub fn is_abandoned(&self) -> bool {
        self.prod.is_abandoned()
    }

    #[inline]
    fn write(&mut self, recv_ns: u64, conn_id: u32, kind: RecordKind, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let total = RING_HEADER + len;
        if len > MAX_PAYLOAD || total > self.capacity() {
            return self.rejected();
        }
        if self.prod.slots() < total || self.prod.is_abandoned() {
            return self.dropped(len);
        }
        let mut h = [0u8; RING_HEADER];
        h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        h[4..8].copy_from_slice(&conn_id.to_le_bytes());
        h[8..16].copy_from_slice(&recv_ns.to_le_bytes());
        h[16] = kind.as_u8();
        // Room for all of it was checked above (and only grows meanwhile), so none of these
        // fails; the consumer waits until the whole record is there.
        let mut ok = self.prod.push_entire_slice(&h).is_ok();
        for p in parts {
            ok &= self.prod.push_entire_slice(p).is_ok();
        }
        debug_assert!(ok, "room was checked");
        self.stats.records += 1;
        self.stats.bytes += len as u64;
        let c = &*self.counters;
        c.records.store(self.stats.records, Ordering::Relaxed);
        c.bytes.store(self.stats.bytes, Ordering::Relaxed);
        true
    }

    #[cold]
    #[inline(never)]
    fn dropped(&mut self, len: usize) -> bool {
        self.stats.dropped += 1;
        self.stats.dropped_bytes += len as u64;
        let c = &*self.counters;
        c.dropped.store(self.stats.dropped, Ordering::Relaxed);
        c.dropped_bytes
            .store(self.stats.dropped_bytes, Ordering::Relaxed);
        false
    }

    #[cold]
    #[inline(never)]
    fn rejected(&mut self) -> bool {
        self.stats.rejected += 1;
        self.counters
            .rejected
            .store(self.stats.rejected, Ordering::Relaxed);
        false
    }
}

/// One record taken from the ring; the payload borrows the consumer's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecorderRecord<'a> {
    /// Receive time, ns.
    pub recv_ns: u64,
    /// Connection id.
    pub conn_id: u32,
    /// What the payload is.
    pub kind: RecordKind,
    /// The payload (for a snapshot: `<SYMBOL> <body>`).
    pub payload: &'a [u8],
}

/// The consumer end: owned by the writer thread ([`run_writer`]).
pub struct RecorderRx {
    cons: Consumer<u8>,
    counters: Arc<SharedCounters>,
    /// Sized to the ring's capacity once: a record never needs more.
    scratch: Vec<u8>,
}

impl fmt::Debug for RecorderRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecorderRx")
            .field("buffered", &self.cons.slots())
            .field("abandoned", &self.is_abandoned())
            .finish_non_exhaustive()
    }
}

impl RecorderRx {
    /// Takes the next record, if all of it is in the ring.
    pub fn pop(&mut self) -> Option<RecorderRecord<'_>> {
        let mut h = [0u8; RING_HEADER];
        {
            // Peek at the header: a chunk dropped without a commit consumes nothing.
            let chunk = self.cons.read_chunk(RING_HEADER).ok()?;
            let (a, b) = chunk.as_slices();
            h[..a.len()].copy_from_slice(a);
            h[a.len()..].copy_from_slice(b);
        }
        let mut w4 = [0u8; 4];
        let mut w8 = [0u8; 8];
        w4.copy_from_slice(&h[0..4]);
        let len = u32::from_le_bytes(w4) as usize;
        w4.copy_from_slice(&h[4..8]);
        let conn_id = u32::from_le_bytes(w4);
        w8.copy_from_slice(&h[8..16]);
        let recv_ns = u64::from_le_bytes(w8);
        let kind = RecordKind::from_u8(h[16]);
        let chunk = self.cons.read_chunk(RING_HEADER + len).ok()?;
        let (a, b) = chunk.as_slices();
        self.scratch.clear();
        if a.len() >= RING_HEADER {
            self.scratch.extend_from_slice(&a[RING_HEADER..]);
            self.scratch.extend_from_slice(b);
        } else {
            self.scratch.extend_from_slice(&b[RING_HEADER - a.len()..]);
        }
        // The bytes are copied out: hand the space back at once.
        chunk.commit_all();
        Some(RecorderRecord {
            recv_ns,
            conn_id,
            kind,
            payload: &self.scratch,
        })
    }

    /// True when no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.cons.is_empty()
    }

    /// True once the producer end was dropped (what is in the ring can still be read).
    pub fn is_abandoned(&self) -> bool {
        self.cons.is_abandoned()
    }

    /// The producer's counters as last published (drops included).
    pub fn producer_stats(&self) -> RecorderStats {
        let c = &*self.counters;
        RecorderStats {
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            dropped_bytes: c.dropped_bytes.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
        }
    }
}

/// What [`run_writer`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records appended to the capture.
    pub records: u64,
    /// Payload bytes appended.
    pub bytes: u64,
    /// Flushes of the capture writer.
    pub flushes: u64,
    /// The producer's counters when the writer ended (its drops are data missing from the file).
    pub producer: RecorderStats,
}

/// Drains `rx` into `out` until `stop` is set and the ring is empty, or the producer is dropped
/// and the ring is empty. Flushes at least every [`FLUSH_INTERVAL`] while records arrive, and at
/// the end. Sleeps 1 ms when the ring is empty (this thread is off the hot path).
///
/// An error of the capture writer ends the writer; the producer then counts every further
/// record as dropped.
pub fn run_writer<W: Write>(
    mut rx: RecorderRx,
    mut out: CaptureWriter<W>,
    stop: &AtomicBool,
) -> io::Result<WriterStats> {
    let mut stats = WriterStats::default();
    let mut last_flush = Instant::now();
    let mut dirty = false;
    loop {
        let mut n = 0u32;
        while let Some(rec) = rx.pop() {
            out.append(rec.recv_ns, rec.conn_id, rec.kind, rec.payload)
                .map_err(into_io)?;
            stats.records += 1;
            stats.bytes += rec.payload.len() as u64;
            dirty = true;
            n += 1;
            if n.is_multiple_of(256) && last_flush.elapsed() >= FLUSH_INTERVAL {
                break;
            }
        }
        if dirty && last_flush.elapsed() >= FLUSH_INTERVAL {
            out.flush().map_err(into_io)?;
            stats.flushes += 1;
            dirty = false;
            last_flush = Instant::now();
        }
        if n == 0 {
            // Read the flags before the final emptiness check, so a record committed before
            // the flag was set is never left behind.
            let ending = stop.load(Ordering::Acquire) || rx.is_abandoned();
            if ending && rx.is_empty() {
                break;
            }
            if !ending {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }
    out.flush().map_err(into_io)?;
    stats.flushes += 1;
    stats.producer = rx.producer_stats();
    Ok(stats)
}

fn into_io(e: CaptureError) -> io::Error {
    match e {
        CaptureError::Io { source, .. } => source,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureReader, ReadOutcome, TicklineCapture};
    use std::path::PathBuf;

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "tickline-recorder-test-{}-{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&p);
            TempFile(p)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn payload(i: usize) -> Vec<u8> {
        // Lengths 0..=40 cover every padding and word-straddling case.
        (0..i % 41).map(|j| (i * 7 + j) as u8).collect()
    }

    #[test]
    fn round_trip_through_a_real_file() {
        let tmp = TempFile::new("round-trip.tlc");
        let file = std::io::BufWriter::new(std::fs::File::create(&tmp.0).unwrap());
        let writer = CaptureWriter::with_header(file, 42, 0).unwrap();
        let (mut tx, rx) = recorder(4096);
        let stop = AtomicBool::new(false);
        let n = 5_000usize;
        let stats = std::thread::scope(|s| {
            let w = s.spawn(|| run_writer(rx, writer, &stop));
            let mut sent = 0;
            while sent < n {
                let p = payload(sent);
                let ok = if sent % 100 == 99 {
                    tx.snapshot(sent as u64, 7, "BTCUSDT", &p)
                } else {
                    tx.record(sent as u64, sent as u32 % 3, RecordKind::TextFrame, &p)
                };
                if ok {
                    sent += 1;
                } else {
                    std::thread::yield_now(); // the test wants every record: retry
                }
            }
            stop.store(true, Ordering::Release);
            w.join().unwrap().unwrap()
        });
        assert_eq!(stats.records, n as u64);
        assert_eq!(stats.producer.records, n as u64);
        assert!(stats.flushes >= 1);
        let cap = TicklineCapture::open(&tmp.0).unwrap();
        assert_eq!(cap.header().created_ns, 42);
        let recs: Vec<_> = cap.iter().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), n);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.recv_ns, i as u64);
            if i % 100 == 99 {
                assert_eq!(r.kind, RecordKind::Snapshot);
                assert_eq!(r.conn_id, 7);
                let (sym, body) = r.snapshot().unwrap();
                assert_eq!(sym, b"BTCUSDT");
                assert_eq!(body, &payload(i)[..]);
            } else {
                assert_eq!((r.kind, r.conn_id), (RecordKind::TextFrame, i as u32 % 3));
                assert_eq!(r.payload, &payload(i)[..], "record {i}");
            }
        }
    }

    #[test]
    fn full_ring_counts_drops_and_rejects_what_never_fits() {
        let (mut tx, mut rx) = recorder(200);
        assert_eq!(tx.capacity(), 200);
        // 17 header bytes + 32 payload bytes = 49: four fit in 200, the fifth does not.
        let p = [0xabu8; 32];
        for i in 0..4 {
            assert!(tx.record(i, 1, RecordKind::TextFrame, &p));
        }
        assert!(!tx.record(4, 1, RecordKind::TextFrame, &p));
        assert!(!tx.record(5, 1, RecordKind::TextFrame, &p));
        let st = tx.stats();
        assert_eq!((st.records, st.dropped, st.dropped_bytes), (4, 2, 64));
        assert_eq!(rx.producer_stats(), st);
        // Larger than the ring, and a bad snapshot symbol: refused, not dropped.
        assert!(!tx.record(6, 1, RecordKind::BinaryFrame, &[0u8; 190]));
        assert!(!tx.snapshot(7, 1, "BTC USDT", b"{}"));
        assert!(!tx.snapshot(7, 1, "", b"{}"));
        assert_eq!(tx.stats().rejected, 3);
        assert_eq!(tx.stats().dropped, 2);
        // Draining makes room again; what was committed is intact and in order.
        let first = rx.pop().unwrap();
        assert_eq!((first.recv_ns, first.payload), (0, &p[..]));
        assert!(tx.record(8, 1, RecordKind::TextFrame, &p[..5]));
        let got: Vec<u64> = std::iter::from_fn(|| rx.pop().map(|r| r.recv_ns)).collect();
        assert_eq!(got, [1, 2, 3, 8]);
        assert!(rx.is_empty());
    }

    #[test]
    fn records_wrap_around_the_ring_intact() {
        // An odd capacity, so headers and payloads straddle the end of the buffer at every
        // possible offset.
        let (mut tx, mut rx) = recorder(131);
        for i in 0..2_000usize {
            let p = payload(i);
            assert!(tx.record(i as u64, 2, RecordKind::BinaryFrame, &p));
            if i % 3 == 0 {
                assert!(tx.snapshot(i as u64, 3, "ETHUSDT", &p[..p.len().min(20)]));
            }
            let r = rx.pop().unwrap();
            assert_eq!(
                (r.recv_ns, r.conn_id, r.kind),
                (i as u64, 2, RecordKind::BinaryFrame)
            );
            assert_eq!(r.payload, &p[..]);
            if i % 3 == 0 {
                let r = rx.pop().unwrap();
                assert_eq!((r.conn_id, r.kind), (3, RecordKind::Snapshot));
                assert!(r.payload.starts_with(b"ETHUSDT "));
            }
        }
        assert!(rx.pop().is_none());
        assert_eq!(tx.stats().dropped, 0);
    }

    #[test]
    fn writer_ends_on_stop_and_on_abandonment_and_the_producer_sees_it_gone() {
        // Stop set while idle: the writer drains what is there and ends.
        let (mut tx, rx) = recorder(1024);
        assert!(tx.record(1, 1, RecordKind::Connect, b"ws://x"));
        let stop = AtomicBool::new(true);
        let st = run_writer(
            rx,
            CaptureWriter::with_header(Vec::new(), 0, 0).unwrap(),
            &stop,
        )
        .unwrap();
        assert_eq!(st.records, 1);
        assert!(tx.is_abandoned());
        assert!(!tx.record(2, 1, RecordKind::TextFrame, b"{}"));
        assert_eq!(tx.stats().dropped, 1);

        // The producer dropped: the writer ends by itself, after draining.
        let (mut tx, rx) = recorder(1024);
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        let h = std::thread::spawn(move || {
            let w = CaptureWriter::with_header(Vec::new(), 0, 0).unwrap();
            run_writer(rx, w, &stop)
        });
        assert!(tx.record(3, 1, RecordKind::Disconnect, b"bye"));
        drop(tx);
        let st = h.join().unwrap().unwrap();
        assert_eq!(st.records, 1);
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn writer_flushes_while_running() {
        let tmp = TempFile::new("flush.tlc");
        let file = std::io::BufWriter::new(std::fs::File::create(&tmp.0).unwrap());
        let (mut tx, rx) = recorder(4096);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let w = s.spawn(|| run_writer(rx, CaptureWriter::new(file).unwrap(), &stop));
            assert!(tx.record(1, 1, RecordKind::TextFrame, b"{\"a\":1}"));
            // Visible on disk well before the writer ends, without a stop.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mut r = CaptureReader::open(&tmp.0).unwrap();
                if let Ok(ReadOutcome::Record(rec)) = r.next() {
                    assert_eq!(rec.payload, b"{\"a\":1}");
                    break;
                }
                assert!(Instant::now() < deadline, "not flushed");
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Release);
            w.join().unwrap().unwrap();
        });
    }
}
