//! Streaming replay: a reader thread reads a capture ahead into a bounded set of chunks, so a
//! capture of any size replays in bounded memory.
//!
//! ```text
//!  file ─▶ capture-reader thread: read, gunzip, parse ─▶ full chunks ─▶ consumer (the feed thread)
//!                 ▲                                                         │
//!                 └───────────────────── empty chunks (recycled) ◀──────────┘
//! ```
//!
//! [`CaptureStream::open`] allocates [`StreamConfig::chunks`] chunks of
//! [`StreamConfig::chunk_bytes`] each (payload bytes plus a fixed-capacity record index) and
//! spawns the reader thread (`capture-reader`). The reader fills an empty chunk with whole
//! records, hands it over, and takes the next empty one; the consumer reads records out of a
//! full chunk in place ([`CaptureStream::next`], lending like [`ReplayReader`]) and returns
//! the chunk when it moves on. Memory is therefore the chunks, the reader's own buffers (a
//! 64 KiB read buffer, the gzip decoder's window, one line or record buffer) and nothing that
//! grows with the file. When every chunk is full the reader waits; when none is, the consumer
//! waits.
//!
//! # Allocation
//!
//! None per record or per chunk in steady state: chunks are recycled, the two queues are
//! fixed-capacity [`rtrb`] rings, and waiting is `std::thread::park`/`unpark`. Two exceptions,
//! both bounded: a record larger than a chunk grows the chunk that takes it to the record's size
//! (at most [`MAX_PAYLOAD`](super::MAX_PAYLOAD) plus the symbol) and it keeps that capacity; and
//! an I/O error carries the operating system's error value.
//!
//! # Passes
//!
//! With [`StreamConfig::passes`] > 1 the reader reads the file again from the start for each
//! pass; every record says which pass it belongs to ([`StreamRecord::pass`]), and a chunk never
//! holds records of two passes.
//!
//! # Errors
//!
//! Errors arrive in order with the records, as [`ReplayReader`] reports them: a malformed line
//! is an error and the stream goes on; an error that is not
//! [recoverable](CaptureError::is_recoverable) ends that pass (a torn last `.tlc` record, a
//! corrupt gzip member), and the next pass, if any, starts again from the top. A file that can
//! no longer be opened for a later pass is reported once and ends the stream.
//!
//! # Progress
//!
//! [`StreamConfig::progress`] is called by the reader thread at most every
//! [`PROGRESS_INTERVAL`] and once at the end, with the bytes of the file read so far, the file's
//! size and the records read.

use super::replay::{CaptureFormat, ReplayReader, ReplayRecord};
use super::tlc::RecordKind;
use super::CaptureError;
use rtrb::{Consumer, Producer, RingBuffer};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Default chunk size: 1 MiB of record bytes.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;
/// Default number of chunks: 16, so at most 16 MiB of records are read ahead.
pub const DEFAULT_CHUNKS: usize = 16;
/// Bytes of chunk per entry of its record index: a chunk of `n` bytes indexes at most `n / 32`
/// records (32 768 for 1 MiB), and is handed over when either runs out.
pub const BYTES_PER_INDEX_ENTRY: usize = 32;
/// The most often the progress callback is called.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// How long a waiting side parks before looking again even without a wake-up.
const PARK: Duration = Duration::from_millis(1);

/// How far the reader thread has got, for a progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamProgress {
    /// Bytes of the file read so far, over every pass (compressed bytes for a gzip capture).
    pub bytes_read: u64,
    /// The file's size times the passes, if the file's size is known.
    pub bytes_total: Option<u64>,
    /// Records read so far, over every pass (every kind, errors not included).
    pub records: u64,
    /// The pass being read (0-based).
    pub pass: u32,
    /// True on the last call, after the reader has finished.
    pub done: bool,
}

impl StreamProgress {
    /// Percent of the file read, where its size is known.
    pub fn percent(&self) -> Option<f64> {
        let total = self.bytes_total.filter(|&t| t > 0)?;
        Some(self.bytes_read as f64 * 100.0 / total as f64)
    }
}

/// Called by the reader thread with the progress so far.
pub type ProgressFn = Box<dyn FnMut(&StreamProgress) + Send>;

/// How to stream a capture.
pub struct StreamConfig {
    /// Record bytes per chunk (default [`DEFAULT_CHUNK_BYTES`]; 4 KiB to 1 GiB).
    pub chunk_bytes: usize,
    /// Chunks (default [`DEFAULT_CHUNKS`]; at least 2).
    pub chunks: usize,
    /// Times to read the file (at least 1).
    pub passes: u32,
    /// Progress callback, called on the reader thread.
    pub progress: Option<ProgressFn>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            chunks: DEFAULT_CHUNKS,
            passes: 1,
            progress: None,
        }
    }
}

impl core::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("chunk_bytes", &self.chunk_bytes)
            .field("chunks", &self.chunks)
            .field("passes", &self.passes)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A record read from a stream: which pass, and the record as [`ReplayReader`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRecord<'a> {
    /// The pass (0-based) the record was read in.
    pub pass: u32,
    /// The record.
    pub record: ReplayRecord<'a>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    recv_ns: u64,
    conn_id: u32,
    kind: RecordKind,
    /// Symbol length; the symbol, when there is one, precedes the payload in the chunk.
    sym_len: u32,
    has_sym: bool,
    start: u32,
    len: u32,
}

/// A fixed-size batch of records: their bytes and an index.
#[derive(Debug)]
struct Chunk {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    pass: u32,
}

impl Chunk {
    fn new(bytes: usize) -> Box<Self> {
        Box::new(Self {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(bytes / BYTES_PER_INDEX_ENTRY),
            pass: 0,
        })
    }

    /// True if `rec` fits without growing anything.
    fn fits(&self, rec: &ReplayRecord<'_>) -> bool {
        let need = rec.symbol.map_or(0, <[u8]>::len) + rec.payload.len();
        self.entries.len() < self.entries.capacity()
            && self.bytes.capacity() - self.bytes.len() >= need
    }

    /// Appends `rec`; grows the byte buffer only for a record larger than it (see the module
    /// docs) and only when the chunk is empty.
    fn push(&mut self, rec: &ReplayRecord<'_>) {
        let start = self.bytes.len();
        let sym = rec.symbol.unwrap_or(&[]);
        self.bytes.extend_from_slice(sym);
        self.bytes.extend_from_slice(rec.payload);
        self.entries.push(Entry {
            recv_ns: rec.recv_ns,
            conn_id: rec.conn_id,
            kind: rec.kind,
            sym_len: sym.len() as u32,
            has_sym: rec.symbol.is_some(),
            start: start as u32,
            len: rec.payload.len() as u32,
        });
    }

    fn get(&self, i: usize) -> Option<ReplayRecord<'_>> {
        let e = self.entries.get(i)?;
        let start = e.start as usize;
        let sym_end = start + e.sym_len as usize;
        Some(ReplayRecord {
            recv_ns: e.recv_ns,
            conn_id: e.conn_id,
            kind: e.kind,
            symbol: if e.has_sym {
                self.bytes.get(start..sym_end)
            } else {
                None
            },
            payload: self.bytes.get(sym_end..sym_end + e.len as usize)?,
        })
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }
}

/// What the reader hands the consumer, in order.
enum Msg {
    Chunk(Box<Chunk>),
    Error(CaptureError),
    End,
}

/// State both threads see.
#[derive(Debug, Default)]
struct Shared {
    /// The consumer has gone: the reader stops.
    closed: AtomicBool,
    reader: OnceLock<Thread>,
    /// The thread that last waited for a message (the stream may be opened on one thread and
    /// read on another).
    consumer: Mutex<Option<Thread>>,
}

impl Shared {
    fn wake_reader(&self) {
        if let Some(t) = self.reader.get() {
            t.unpark();
        }
    }

    fn wake_consumer(&self) {
        if let Ok(g) = self.consumer.lock() {
            if let Some(t) = g.as_ref() {
                t.unpark();
            }
        }
    }

    /// Registers the calling thread as the one to wake (a cold path: only before waiting).
    #[cold]
    fn register_consumer(&self) {
        let me = std::thread::current();
        if let Ok(mut g) = self.consumer.lock() {
            if g.as_ref().map(Thread::id) != Some(me.id()) {
                *g = Some(me);
            }
        }
    }
}

/// What the reader thread read, when it has finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes of the file read over every pass.
    pub bytes_read: u64,
    /// Records read over every pass.
    pub records: u64,
    /// Errors reported (malformed lines, torn records, I/O errors), over every pass.
    pub errors: u64,
    /// Passes read to the end.
    pub passes: u32,
}

/// A capture streamed by a reader thread (`capture-reader`) through a bounded set of recycled
/// chunks: [`StreamConfig::chunks`] of [`StreamConfig::chunk_bytes`] each, allocated at
/// [`open`](Self::open); after that neither side allocates per record or per chunk (a record
/// larger than a chunk grows the chunk that takes it, once). With [`StreamConfig::passes`] > 1
/// the file is read again for each pass, and every record says its pass.
///
/// Dropping it stops the reader thread and waits for it.
pub struct CaptureStream {
    full: Consumer<Msg>,
    empty: Producer<Box<Chunk>>,
    current: Option<Box<Chunk>>,
    pos: usize,
    ended: bool,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<StreamStats>>,
    format: CaptureFormat,
    file_len: Option<u64>,
}

impl core::fmt::Debug for CaptureStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CaptureStream")
            .field("format", &self.format)
            .field("file_len", &self.file_len)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// A file whose reads are counted (the progress line's bytes).
struct Counted {
    file: File,
    total: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl CaptureStream {
    /// Opens `path` (either format, detected by magic) and starts the reader thread. Errors
    /// opening the file or reading its header are returned here.
    pub fn open(path: impl AsRef<Path>, cfg: StreamConfig) -> Result<Self, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let format = CaptureFormat::detect(&path)?;
        let file = File::open(&path)?;
        let file_len = file.metadata().ok().map(|m| m.len());
        let bytes_read = Arc::new(AtomicU64::new(0));
        let first = ReplayReader::with_source(
            format,
            Counted {
                file,
                total: bytes_read.clone(),
            },
        )?;
        let chunks = cfg.chunks.max(2);
        // Offsets in a chunk are `u32`: at most 1 GiB a chunk.
        let chunk_bytes = cfg.chunk_bytes.clamp(4096, 1 << 30);
        let (mut empty_tx, empty_rx) = RingBuffer::new(chunks);
        for _ in 0..chunks {
            // The ring holds exactly `chunks`: never full here.
            let _ = empty_tx.push(Chunk::new(chunk_bytes));
        }
        // Room for every chunk, the end, and a few errors in between.
        let (full_tx, full_rx) = RingBuffer::new(chunks + 64);
        let shared = Arc::new(Shared::default());
        let reader = Reader {
            path,
            format,
            first: Some(first),
            bytes_read,
            passes: cfg.passes.max(1),
            file_len,
            progress: cfg.progress,
            full: full_tx,
            empty: empty_rx,
            shared: shared.clone(),
            stats: StreamStats::default(),
            spare: None,
        };
        let handle = spawn_reader(reader)?;
        Ok(Self {
            full: full_rx,
            empty: empty_tx,
            current: None,
            pos: 0,
            ended: false,
            shared,
            handle: Some(handle),
            format,
            file_len,
        })
    }

    /// The capture's format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The file's size in bytes, if known.
    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }

    /// Waits for the first chunk and returns its records (without consuming them: `next` still
    /// returns them), so a caller can learn the capture's symbols and first timestamp before the
    /// replay starts. Errors that came before the first chunk are returned in `errors` and not
    /// again by `next`. Empty if the capture has no records.
    pub fn head(
        &mut self,
        errors: &mut Vec<CaptureError>,
    ) -> impl Iterator<Item = ReplayRecord<'_>> {
        while self.current.is_none() && !self.ended {
            match self.recv() {
                Msg::Chunk(c) => {
                    self.current = Some(c);
                    self.pos = 0;
                }
                Msg::Error(e) => errors.push(e),
                Msg::End => self.ended = true,
            }
        }
        let chunk = self.current.as_deref();
        (0..chunk.map_or(0, |c| c.entries.len())).filter_map(move |i| chunk?.get(i))
    }

    /// The next record; `Ok(None)` once every pass has been read. Errors come in order with the
    /// records, as [`ReplayReader`] reports them: after a malformed line the stream goes on;
    /// an error that is not [recoverable](CaptureError::is_recoverable) ends that pass (the next
    /// pass, if any, starts from the top); a file that cannot be reopened ends the stream.
    #[allow(clippy::should_implement_trait)] // lending: the record borrows the current chunk
    pub fn next(&mut self) -> Result<Option<StreamRecord<'_>>, CaptureError> {
        if !self.fill()? {
            return Ok(None);
        }
        let i = self.pos;
        self.pos += 1;
        let Some(c) = self.current.as_deref() else {
            return Ok(None);
        };
        Ok(c.get(i).map(|record| StreamRecord {
            pass: c.pass,
            record,
        }))
    }

    /// The receive time of the record [`next`](Self::next) will return, without consuming it;
    /// `Ok(None)` at the end. An error that comes first is returned (and consumed) instead, as
    /// `next` would have returned it. For merging several streams by receive time.
    pub fn peek_ns(&mut self) -> Result<Option<u64>, CaptureError> {
        if !self.fill()? {
            return Ok(None);
        }
        Ok(self
            .current
            .as_deref()
            .and_then(|c| c.entries.get(self.pos))
            .map(|e| e.recv_ns))
    }

    /// Makes the current chunk hold the next record: false at the end; an error that came
    /// first is returned.
    fn fill(&mut self) -> Result<bool, CaptureError> {
        loop {
            if let Some(c) = &self.current {
                if self.pos < c.entries.len() {
                    return Ok(true);
                }
            }
            if let Some(mut c) = self.current.take() {
                c.clear();
                // There are exactly as many chunks as the ring holds: never full.
                let _ = self.empty.push(c);
                self.shared.wake_reader();
            }
            if self.ended {
                return Ok(false);
            }
            match self.recv() {
                Msg::Chunk(c) => {
                    self.current = Some(c);
                    self.pos = 0;
                }
                Msg::Error(e) => return Err(e),
                Msg::End => self.ended = true,
            }
        }
    }

    /// Waits for the reader's next message.
    fn recv(&mut self) -> Msg {
        loop {
            if let Ok(m) = self.full.pop() {
                self.shared.wake_reader();
                return m;
            }
            if self.full.is_abandoned() {
                // The reader has gone without saying `End` (it panicked): end here.
                return match self.full.pop() {
                    Ok(m) => m,
                    Err(_) => Msg::End,
                };
            }
            self.shared.register_consumer();
            // Look again after registering: a chunk pushed just before is not missed for long
            // (and `park_timeout` bounds the wait regardless).
            if let Ok(m) = self.full.pop() {
                self.shared.wake_reader();
                return m;
            }
            std::thread::park_timeout(PARK);
        }
    }

    /// Stops the reader (if it has not finished) and returns what it read.
    pub fn finish(mut self) -> StreamStats {
        self.stop()
    }

    fn stop(&mut self) -> StreamStats {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake_reader();
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_default(),
            None => StreamStats::default(),
        }
    }
}

impl Drop for CaptureStream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reader thread's state.
struct Reader {
    path: PathBuf,
    format: CaptureFormat,
    first: Option<ReplayReader<Counted>>,
    bytes_read: Arc<AtomicU64>,
    passes: u32,
    file_len: Option<u64>,
    progress: Option<ProgressFn>,
    full: Producer<Msg>,
    empty: Consumer<Box<Chunk>>,
    shared: Arc<Shared>,
    stats: StreamStats,
    /// An empty chunk kept at the end of a pass for the next.
    spare: Option<Box<Chunk>>,
}

/// The one place the reader thread is spawned: a plain named thread (`capture-reader`).
fn spawn_reader(reader: Reader) -> Result<JoinHandle<StreamStats>, CaptureError> {
    Ok(std::thread::Builder::new()
        .name("capture-reader".into())
        .spawn(move || reader.run())?)
}

impl Reader {
    fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    fn run(mut self) -> StreamStats {
        let _ = self.shared.reader.set(std::thread::current());
        let mut last_progress = Instant::now();
        'passes: for pass in 0..self.passes {
            let mut reader = match self.first.take() {
                Some(r) => r,
                None => match File::open(&self.path)
                    .map_err(CaptureError::from)
                    .and_then(|file| {
                        ReplayReader::with_source(
                            self.format,
                            Counted {
                                file,
                                total: self.bytes_read.clone(),
                            },
                        )
                    }) {
                    Ok(r) => r,
                    Err(e) => {
                        self.stats.errors += 1;
                        let _ = self.send(Msg::Error(e));
                        break 'passes;
                    }
                },
            };
            let Some(mut chunk) = self.take_empty() else {
                break 'passes;
            };
            chunk.pass = pass;
            loop {
                match reader.next() {
                    Ok(Some(rec)) => {
                        self.stats.records += 1;
                        if !chunk.fits(&rec) && !chunk.entries.is_empty() {
                            if !self.send(Msg::Chunk(chunk)) {
                                break 'passes;
                            }
                            let Some(c) = self.take_empty() else {
                                break 'passes;
                            };
                            chunk = c;
                            chunk.pass = pass;
                            if last_progress.elapsed() >= PROGRESS_INTERVAL {
                                last_progress = Instant::now();
                                self.report(pass, false);
                            }
                        }
                        chunk.push(&rec);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.stats.errors += 1;
                        if !chunk.entries.is_empty() {
                            if !self.send(Msg::Chunk(chunk)) {
                                break 'passes;
                            }
                            let Some(c) = self.take_empty() else {
                                break 'passes;
                            };
                            chunk = c;
                            chunk.pass = pass;
                        }
                        if !self.send(Msg::Error(e)) {
                            break 'passes;
                        }
                    }
                }
            }
            if chunk.entries.is_empty() {
                self.spare = Some(chunk);
            } else if !self.send(Msg::Chunk(chunk)) {
                break 'passes;
            }
            self.stats.passes += 1;
        }
        let _ = self.send(Msg::End);
        self.stats.bytes_read = self.bytes_read.load(Ordering::Relaxed);
        self.report(self.passes.saturating_sub(1), true);
        self.stats
    }

    fn report(&mut self, pass: u32, done: bool) {
        let p = StreamProgress {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_total: self
                .file_len
                .map(|l| l.saturating_mul(u64::from(self.passes))),
            records: self.stats.records,
            pass,
            done,
        };
        if let Some(f) = self.progress.as_mut() {
            f(&p);
        }
    }

    /// Hands a message to the consumer, waiting for room; false if the consumer has gone.
    fn send(&mut self, mut msg: Msg) -> bool {
        loop {
            match self.full.push(msg) {
                Ok(()) => {
                    self.shared.wake_consumer();
                    return true;
                }
                Err(rtrb::PushError::Full(m)) => msg = m,
            }
            if self.closed() || self.full.is_abandoned() {
                return false;
            }
            std::thread::park_timeout(PARK);
        }
    }

    /// Waits for an empty chunk; `None` if the consumer has gone.
    fn take_empty(&mut self) -> Option<Box<Chunk>> {
        if let Some(c) = self.spare.take() {
            return Some(c);
        }
        loop {
            if let Ok(c) = self.empty.pop() {
                return Some(c);
            }
            if self.closed() || self.empty.is_abandoned() {
                return None;
            }
            std::thread::park_timeout(PARK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureWriter, LineFault};
    use std::io::Write;
    use std::sync::Mutex;

    /// A file in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> Self {
            let path =
                std::env::temp_dir().join(format!("tickline-stream-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn small(passes: u32) -> StreamConfig {
        StreamConfig {
            chunk_bytes: 4096,
            chunks: 2,
            passes,
            progress: None,
        }
    }

    type Seen = (u32, u64, u32, RecordKind, Option<Vec<u8>>, Vec<u8>);

    /// Every record and error of a stream, owned.
    fn drain(s: &mut CaptureStream) -> (Vec<Seen>, Vec<String>) {
        let (mut recs, mut errs) = (Vec::new(), Vec::new());
        loop {
            match s.next() {
                Ok(Some(r)) => recs.push((
                    r.pass,
                    r.record.recv_ns,
                    r.record.conn_id,
                    r.record.kind,
                    r.record.symbol.map(<[u8]>::to_vec),
                    r.record.payload.to_vec(),
                )),
                Ok(None) => break,
                Err(e) => errs.push(e.to_string()),
            }
        }
        (recs, errs)
    }

    /// What `ReplayReader` gives for the same file, one pass.
    fn reference(path: &Path) -> (Vec<Seen>, Vec<String>) {
        let mut r = ReplayReader::open(path).unwrap();
        let (mut recs, mut errs) = (Vec::new(), Vec::new());
        loop {
            match r.next() {
                Ok(Some(rec)) => recs.push((
                    0,
                    rec.recv_ns,
                    rec.conn_id,
                    rec.kind,
                    rec.symbol.map(<[u8]>::to_vec),
                    rec.payload.to_vec(),
                )),
                Ok(None) => break,
                Err(e) => errs.push(e.to_string()),
            }
        }
        (recs, errs)
    }

    fn tlc_file(records: u64) -> TempFile {
        let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
        w.append(1, 7, RecordKind::Connect, b"wss://x").unwrap();
        w.append_snapshot(2, 7, b"ETHUSDT", b"{\"lastUpdateId\":9}")
            .unwrap();
        for i in 0..records {
            let payload = format!(
                "{{\"n\":{i},\"pad\":\"{}\"}}",
                "x".repeat((i % 300) as usize)
            );
            w.append(10 + i, 7, RecordKind::TextFrame, payload.as_bytes())
                .unwrap();
        }
        TempFile::new(&format!("{records}.tlc"), &w.into_inner())
    }

    #[test]
    fn tlc_streams_every_record_through_recycled_chunks() {
        // ~2 000 records of up to 320 bytes through 2 chunks of 4 KiB: hundreds of hand-overs.
        let f = tlc_file(2_000);
        let want = reference(&f.0);
        let mut s = CaptureStream::open(&f.0, small(1)).unwrap();
        assert_eq!(s.format(), CaptureFormat::Tickline);
        let got = drain(&mut s);
        assert_eq!(got.0.len(), 2_002);
        assert_eq!(got, want);
        assert_eq!(got.0[1].4.as_deref(), Some(&b"ETHUSDT"[..]));
        let stats = s.finish();
        assert_eq!((stats.records, stats.errors, stats.passes), (2_002, 0, 1));
        assert_eq!(stats.bytes_read, std::fs::metadata(&f.0).unwrap().len());
    }

    #[test]
    fn passes_read_the_file_again_and_say_which_pass() {
        let f = tlc_file(500);
        let one = reference(&f.0).0;
        let mut s = CaptureStream::open(&f.0, small(3)).unwrap();
        let (got, errs) = drain(&mut s);
        assert!(errs.is_empty());
        assert_eq!(got.len(), 3 * one.len());
        for (pass, part) in got.chunks(one.len()).enumerate() {
            for (g, w) in part.iter().zip(&one) {
                assert_eq!(g.0, pass as u32);
                assert_eq!((g.1, g.2, g.3), (w.1, w.2, w.3));
                assert_eq!((&g.4, &g.5), (&w.4, &w.5));
            }
        }
        assert_eq!(s.finish().passes, 3);
    }

    #[test]
    fn gzip_lines_with_bad_lines_report_errors_in_order() {
        let mut text = Vec::new();
        for i in 0..3_000u64 {
            if i % 1_000 == 500 {
                text.extend_from_slice(b"garbage\n");
            }
            writeln!(text, "{} {{\"i\":{i}}}", 1_000 + i).unwrap();
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&text).unwrap();
        let f = TempFile::new("lines.gz", &e.finish().unwrap());
        let want = reference(&f.0);
        assert_eq!(want.1.len(), 3);
        let mut s = CaptureStream::open(&f.0, small(2)).unwrap();
        // Errors come back between the records they were found between.
        let mut seen = Vec::new();
        loop {
            match s.next() {
                Ok(Some(r)) => seen.push(Ok(r.record.recv_ns)),
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(
                        e,
                        CaptureError::BadLine {
                            fault: LineFault::NoSpace,
                            ..
                        }
                    ));
                    seen.push(Err(()));
                }
            }
        }
        assert_eq!(seen.len(), 2 * 3_003);
        let bad: Vec<_> = seen
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(bad, [500, 1_501, 2_502, 3_503, 4_504, 5_505]);
        assert_eq!(s.finish().errors, 6);
    }

    #[test]
    fn a_record_larger_than_a_chunk_is_carried_whole() {
        let big = vec![b'z'; 20_000];
        let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
        w.append(1, 0, RecordKind::TextFrame, b"a").unwrap();
        w.append(2, 0, RecordKind::BinaryFrame, &big).unwrap();
        w.append(3, 0, RecordKind::TextFrame, b"c").unwrap();
        let f = TempFile::new("big.tlc", &w.into_inner());
        let mut s = CaptureStream::open(&f.0, small(1)).unwrap();
        let (got, errs) = drain(&mut s);
        assert!(errs.is_empty());
        let lens: Vec<_> = got.iter().map(|r| r.5.len()).collect();
        assert_eq!(lens, [1, 20_000, 1]);
        assert_eq!(got[1].5, big);
    }

    #[test]
    fn head_shows_the_first_chunk_without_consuming_it() {
        let f = tlc_file(100);
        let mut s = CaptureStream::open(&f.0, small(1)).unwrap();
        let mut errors = Vec::new();
        let head: Vec<_> = s.head(&mut errors).map(|r| (r.kind, r.recv_ns)).collect();
        assert!(errors.is_empty());
        assert_eq!(
            head[..2],
            [(RecordKind::Connect, 1), (RecordKind::Snapshot, 2)]
        );
        assert!(head.len() < 100, "one chunk of 4 KiB: {}", head.len());
        assert_eq!(drain(&mut s).0.len(), 102);
    }

    #[test]
    fn dropping_the_stream_early_stops_the_reader() {
        let f = tlc_file(5_000);
        let mut s = CaptureStream::open(&f.0, small(1_000)).unwrap();
        for _ in 0..10 {
            assert!(s.next().unwrap().is_some());
        }
        // The reader is blocked on a full buffer; finishing must not wait for 1 000 passes.
        let stats = s.finish();
        assert!(stats.passes < 1_000, "{stats:?}");
    }

    #[test]
    fn progress_is_reported_and_ends_done() {
        let f = tlc_file(3_000);
        let len = std::fs::metadata(&f.0).unwrap().len();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = calls.clone();
        let cfg = StreamConfig {
            progress: Some(Box::new(move |p: &StreamProgress| {
                sink.lock().unwrap().push(*p)
            })),
            ..small(2)
        };
        let mut s = CaptureStream::open(&f.0, cfg).unwrap();
        drain(&mut s);
        drop(s);
        let calls = calls.lock().unwrap();
        let last = calls.last().copied().unwrap();
        assert!(last.done);
        assert_eq!(last.bytes_total, Some(2 * len));
        assert_eq!(last.bytes_read, 2 * len);
        assert_eq!(last.percent(), Some(100.0));
        assert_eq!(last.records, 2 * 3_002);
        assert_eq!(calls.iter().filter(|p| p.done).count(), 1);
    }

    #[test]
    fn a_missing_file_is_an_error_at_open() {
        let err = CaptureStream::open("/nonexistent/tickline.tlc", small(1)).unwrap_err();
        assert!(matches!(err, CaptureError::Io { .. }), "{err}");
    }
}
