//! Logging: `tracing` events, formatted on the thread that raises them, written by one writer
//! thread, so no thread of the engine ever writes to a file descriptor to log.
//!
//! Every line carries a timestamp (UTC, RFC 3339), a level and a target (`tickline::io`,
//! `tickline::journal`, ...). [`init`] installs the subscriber for the `tickline` binary:
//! `--log-level` (or `RUST_LOG`, default `info`) is an `EnvFilter` directive list such as
//! `info,tickline::io=debug`; `--log-format text|json` picks the line format. A JSON line is one
//! object: `{"timestamp":..,"level":..,"target":..,"fields":{"message":..,..}}`.
//!
//! **The path of one line.** tracing-subscriber's fmt layer formats an event into a
//! thread-local `String` it reuses, then hands the whole line to [`RingWriter`] in one
//! `write_all`. The writer copies it into the calling thread's own SPSC byte ring (`rtrb`,
//! created and registered with the writer thread on that thread's first log line), all of it or
//! none of it: a full ring drops the line and counts it ([`dropped`]). The writer thread
//! (`tickline-log`) drains every ring to stderr, in whole lines, and parks when they are all
//! empty; the next line unparks it (and it looks again every 100 ms regardless). It used to
//! poll every 2 ms: 500 wake-ups a second on the I/O thread's CPU, each one preempting the
//! I/O thread (a paced replay's feed thread counted about 500 involuntary switches a second,
//! one per wake-up). So a thread that logs never blocks and, after its first line, never
//! allocates to log (`tools/tests/logs.rs` counts both); a stalled stderr costs lines, counted,
//! never the engine's time. Lines of different threads may reach stderr slightly out of time
//! order (each thread's own lines keep their order).
//!
//! The core thread raises no events: what it has to say (slow callbacks, risk denials, trader
//! restarts, resyncs) reaches the metrics, REST and control threads over the channels it
//! already has, and those log it.

pub mod events;

use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Bytes of each thread's ring (lines that do not fit while the writer is behind are dropped).
pub const RING_BYTES: usize = 256 * 1024;
/// The longest the writer thread stays parked with every ring empty (a line, a stop or a
/// placement request unparks it sooner).
const IDLE_PARK: Duration = Duration::from_millis(100);

/// The line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-07T07:20:00.123456Z  INFO tickline::io: conn 0: connected`
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields` (with `message`).
    Json,
}

/// What [`init`] installs.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// The line format.
    pub format: LogFormat,
    /// An `EnvFilter` directive list (`info`, `warn,tickline::io=debug`); `None`: `RUST_LOG`,
    /// else `info`.
    pub level: Option<String>,
}

impl LogOptions {
    /// The filter these options name: `level`, else `RUST_LOG`, else `info`. A bad directive is
    /// an error, not a silently different filter.
    pub fn filter(&self) -> Result<EnvFilter> {
        let (spec, from) = match &self.level {
            Some(l) => (l.clone(), "--log-level"),
            None => match std::env::var("RUST_LOG") {
                Ok(v) if !v.trim().is_empty() => (v, "RUST_LOG"),
                _ => ("info".to_string(), "the default"),
            },
        };
        EnvFilter::builder()
            .parse(&spec)
            .map_err(|e| anyhow!("{from} {spec:?} is not a log filter: {e}"))
    }
}

/// Counters of one [`Logger`], on their own cache lines (every logging thread bumps them).
#[derive(Debug, Default)]
struct Stats {
    /// Lines copied into a ring.
    accepted: CachePadded<AtomicU64>,
    /// Lines dropped: the thread's ring was full (the writer behind), the line longer than a
    /// ring, or the logger already stopped.
    dropped: CachePadded<AtomicU64>,
}

/// What the [`RingWriter`]s and the writer thread share.
#[derive(Debug)]
struct Shared {
    /// Tells this logger's rings from another's in a thread's slot (tests build several).
    id: u64,
    stats: Stats,
    ring_bytes: usize,
    register: Sender<rtrb::Consumer<u8>>,
    stopped: AtomicBool,
    /// The writer thread is parked, or about to park: a new line must unpark it.
    idle: AtomicBool,
    /// The longest park with every ring empty ([`IDLE_PARK`]).
    park: Duration,
    /// The writer thread, to unpark.
    writer: OnceLock<std::thread::Thread>,
}

impl Shared {
    /// Unparks the writer thread if it is parked or about to park (the fence pairs with the
    /// writer's between setting `idle` and its last look at the rings, so that either the
    /// writer sees what was just written or this sees `idle`).
    fn wake(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.idle.load(Ordering::Relaxed) {
            if let Some(t) = self.writer.get() {
                t.unpark();
            }
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// CPUs the writer thread is asked to move to ([`place_writer`]), taken by the writer itself on
/// its next round (it is started before a run's placement is known).
static PLACE_WRITER: std::sync::Mutex<Option<Vec<usize>>> = std::sync::Mutex::new(None);
/// Set when [`PLACE_WRITER`] holds a request not yet taken.
static PLACE_PENDING: AtomicBool = AtomicBool::new(false);

/// Asks the writer thread (`tickline-log`) to restrict itself to `cpus` (the run's
/// housekeeping set, off the core's CPU); it does so within one round of its loop (a few ms).
pub fn place_writer(cpus: &[usize]) {
    *PLACE_WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(cpus.to_vec());
    PLACE_PENDING.store(true, Ordering::Release);
    if let Some(s) = INSTALLED.get() {
        s.wake();
    }
}
/// The counters of the logger [`init`] installed, for [`dropped`].
static INSTALLED: OnceLock<Arc<Shared>> = OnceLock::new();

thread_local! {
    // This thread's ring: (logger id, producer). Const-initialised; filled on the first line.
    static RING: RefCell<Option<(u64, rtrb::Producer<u8>)>> = const { RefCell::new(None) };
}

/// The `MakeWriter` of the fmt layer: each line into the calling thread's ring.
#[derive(Clone, Debug)]
pub struct RingWriter {
    shared: Arc<Shared>,
}

impl RingWriter {
    /// Copies `line` into this thread's ring whole, or drops and counts it.
    fn push(&self, line: &[u8]) {
        let s = &self.shared;
        if s.stopped.load(Ordering::Relaxed) || line.len() > s.ring_bytes {
            s.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let pushed = RING.try_with(|slot| {
            let Ok(mut slot) = slot.try_borrow_mut() else {
                return false;
            };
            if slot.as_ref().is_none_or(|(id, _)| *id != s.id) {
                // First line of this thread (for this logger): one ring, registered once.
                let (tx, rx) = rtrb::RingBuffer::new(s.ring_bytes);
                if s.register.send(rx).is_err() {
                    return false;
                }
                *slot = Some((s.id, tx));
            }
            let Some((_, ring)) = slot.as_mut() else {
                return false;
            };
            match ring.write_chunk_uninit(line.len()) {
                Ok(chunk) => {
                    chunk.fill_from_iter(line.iter().copied());
                    true
                }
                Err(_) => false,
            }
        });
        let counter = if pushed == Ok(true) {
            s.wake();
            &s.stats.accepted
        } else {
            &s.stats.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One line's writer (the fmt layer writes a whole line with one `write_all`).
#[derive(Debug)]
pub struct LineWriter<'a>(&'a RingWriter);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RingWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

/// A logger: the writer the fmt layer writes to, and its writer thread.
#[derive(Debug)]
pub struct Logger {
    writer: RingWriter,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Logger {
    /// Starts the writer thread (`tickline-log`), draining every thread's ring into `sink`.
    pub fn start(sink: Box<dyn Write + Send>, ring_bytes: usize) -> io::Result<Logger> {
        Self::start_parking(sink, ring_bytes, IDLE_PARK)
    }

    fn start_parking(
        sink: Box<dyn Write + Send>,
        ring_bytes: usize,
        park: Duration,
    ) -> io::Result<Logger> {
        let (register, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            stats: Stats::default(),
            ring_bytes: ring_bytes.max(1),
            register,
            stopped: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            park,
            writer: OnceLock::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tickline-log".into())
            .spawn(move || drain(&s, &rx, sink))?;
        let _ = shared.writer.set(thread.thread().clone());
        Ok(Logger {
            writer: RingWriter { shared },
            thread: Some(thread),
        })
    }

    /// The `MakeWriter` for a fmt layer.
    pub fn writer(&self) -> RingWriter {
        self.writer.clone()
    }

    /// Lines dropped so far (a ring full, a line too long, or logged after the stop).
    pub fn dropped(&self) -> u64 {
        self.writer.shared.stats.dropped.load(Ordering::Relaxed)
    }

    /// Lines taken into a ring so far (each reaches the sink unless the sink fails).
    pub fn accepted(&self) -> u64 {
        self.writer.shared.stats.accepted.load(Ordering::Relaxed)
    }

    /// Stops the writer thread once it has written every line taken so far; later lines are
    /// dropped and counted. Call it once the threads that log are done (`tickline` drops its
    /// [`LogGuard`] when the command returns, its run threads joined): a line another thread is
    /// copying in at that very moment can be missed. Idempotent (dropping the logger does it
    /// too).
    pub fn stop(&mut self) -> io::Result<()> {
        self.writer.shared.stopped.store(true, Ordering::Relaxed);
        self.writer.shared.wake();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the log writer thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The writer thread: every registered ring into `sink`, until stopped and empty.
fn drain(
    s: &Shared,
    rx: &Receiver<rtrb::Consumer<u8>>,
    sink: Box<dyn Write + Send>,
) -> io::Result<()> {
    let mut sink = io::BufWriter::with_capacity(64 * 1024, sink);
    // Sized for every thread of a run, so a thread's first line does not grow it mid-run.
    let mut rings: Vec<rtrb::Consumer<u8>> = Vec::with_capacity(64);
    let mut failed: Option<io::Error> = None;
    loop {
        if PLACE_PENDING.swap(false, Ordering::AcqRel) {
            let want = PLACE_WRITER
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(cpus) = want {
                crate::pin::pin_current_thread_to_set("log writer", &cpus);
            }
        }
        // Read before draining: a stop seen here means every line taken before it is in a ring.
        let stopping = s.stopped.load(Ordering::Relaxed);
        rings.extend(rx.try_iter());
        let mut wrote = false;
        for ring in &mut rings {
            let n = ring.slots();
            if n == 0 {
                continue;
            }
            let Ok(chunk) = ring.read_chunk(n) else {
                continue;
            };
            let (a, b) = chunk.as_slices();
            if failed.is_none() {
                if let Err(e) = sink.write_all(a).and_then(|()| sink.write_all(b)) {
                    failed = Some(e);
                }
            }
            if failed.is_some() {
                // The sink is gone (stderr closed): these lines are lost, so they are counted.
                let lines = a.iter().chain(b).filter(|&&c| c == b'\n').count();
                s.stats.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            }
            chunk.commit_all();
            wrote = true;
        }
        rings.retain(|r| !(r.is_abandoned() && r.is_empty()));
        if wrote {
            if let Err(e) = sink.flush() {
                failed.get_or_insert(e);
            }
        } else if stopping {
            break;
        } else {
            s.idle.store(true, Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::SeqCst);
            let quiet = rings.iter().all(|r| r.is_empty())
                && rx.is_empty()
                && !s.stopped.load(Ordering::Relaxed)
                && !PLACE_PENDING.load(Ordering::Relaxed);
            if quiet {
                std::thread::park_timeout(s.park);
            }
            s.idle.store(false, Ordering::Relaxed);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => sink.flush(),
    }
}

/// Lines the installed logger dropped so far (0 before [`init`]): shown in the run summary and
/// sent to StatsD as `log.dropped`.
pub fn dropped() -> u64 {
    INSTALLED
        .get()
        .map_or(0, |s| s.stats.dropped.load(Ordering::Relaxed))
}

/// Keeps the installed logger's writer thread; dropping it writes out every line logged so far.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(Logger);

impl LogGuard {
    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.0.dropped()
    }
}

/// A subscriber formatting `opts.format` lines into `logger`'s rings, filtered by `filter`.
/// [`init`] installs one globally; tests use it with `tracing::subscriber::with_default`.
pub fn subscriber(
    format: LogFormat,
    filter: EnvFilter,
    logger: &Logger,
) -> Box<dyn Subscriber + Send + Sync> {
    let builder = tracing_subscriber::fmt()
        .with_writer(logger.writer())
        .with_ansi(false)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.event_format(JsonLines).finish()),
    }
}

/// Installs the global subscriber (once per process) with its writer thread on stderr.
pub fn init(opts: &LogOptions) -> Result<LogGuard> {
    let filter = opts.filter()?;
    let logger = Logger::start(Box::new(io::stderr()), RING_BYTES)?;
    // `try_init` also takes the `log` crate's records (rustls, ureq) as events.
    subscriber(opts.format, filter, &logger)
        .try_init()
        .map_err(|e| anyhow!("installing the logger: {e}"))?;
    let _ = INSTALLED.set(logger.writer.shared.clone());
    Ok(LogGuard(logger))
}

/// The JSON line format: `{"timestamp","level","target","fields":{...}}`, written straight into
/// the fmt layer's reused buffer (tracing-subscriber's own JSON format allocates per event).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\",\"target\":", meta.level())?;
        json_str(&mut w, meta.target())?;
        w.write_str(",\"fields\":{")?;
        let mut v = JsonFields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut v);
        v.result?;
        w.write_str("}}\n")
    }
}

/// Writes each field as `"name":value` (numbers and booleans bare, everything else a string).
struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.w.write_char(',')?;
        }
        json_str(self.w, field.name())?;
        self.w.write_char(':')
    }

    fn put(&mut self, field: &Field, value: fmt::Arguments<'_>, quoted: bool) {
        if self.result.is_err() {
            return;
        }
        self.result = self.key(field).and_then(|()| {
            if quoted {
                self.w.write_char('"')?;
                JsonEscape(&mut *self.w).write_fmt(value)?;
                self.w.write_char('"')
            } else {
                self.w.write_fmt(value)
            }
        });
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, format_args!("{value}"), !value.is_finite());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, format_args!("{value}"), false);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, format_args!("{value}"), false);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, format_args!("{value}"), false);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, format_args!("{value}"), true);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, format_args!("{value}"), true);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format_args!("{value:?}"), true);
    }
}

fn json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscape(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// A `fmt::Write` that escapes what passes through for the inside of a JSON string.
struct JsonEscape<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for JsonEscape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let esc = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if (c as u32) < 0x20 => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if esc.is_empty() {
                write!(self.0, "\\u{:04x}", c as u32)?;
            } else {
                self.0.write_str(esc)?;
            }
            start = i + c.len_utf8();
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_for_json() {
        let mut s = String::new();
        JsonEscape(&mut s).write_str("a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001é");
        let back: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    /// A sink that hands every write to a channel.
    struct ToChannel(crossbeam_channel::Sender<Vec<u8>>);

    impl Write for ToChannel {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The writer parks while every ring is empty (here for up to an hour), and a line or a
    /// stop wakes it: both are seen long before the park would time out on its own.
    #[test]
    fn the_parked_writer_wakes_for_a_line_and_for_a_stop() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut logger =
            Logger::start_parking(Box::new(ToChannel(tx)), 4096, Duration::from_secs(3600))
                .unwrap();
        let w = logger.writer();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for i in 0..3 {
            // Let the writer find nothing and park.
            while !logger.writer.shared.idle.load(Ordering::Relaxed) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the writer never parked"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let line = format!("line {i}\n");
            w.make_writer().write_all(line.as_bytes()).unwrap();
            let got = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the line, promptly");
            assert_eq!(got, line.as_bytes());
        }
        while !logger.writer.shared.idle.load(Ordering::Relaxed) {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never parked"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let stopper = std::thread::spawn(move || {
            let r = logger.stop();
            let _ = done_tx.send(());
            r
        });
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the stop wakes the writer");
        stopper.join().unwrap().unwrap();
        assert_eq!(w.shared.stats.accepted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_bad_filter_is_an_error() {
        let opts = LogOptions {
            format: LogFormat::Text,
            level: Some("info,[[[".into()),
        };
        let e = opts.filter().unwrap_err().to_string();
        assert!(e.contains("--log-level"), "{e}");
    }
}
