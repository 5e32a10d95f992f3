//! Logging: the line formats (text and JSON, read back), the `tickline` flags on real runs, and
//! a flood of events from one thread against a stalled writer (it neither blocks nor allocates
//! per event on that thread; every event is either written or counted as dropped), and a
//! replay in which the core thread raises no event while the metrics thread logs its reports.

use engine::metrics::{MetricsSnapshot, SlowCallback, SymbolGauges};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::io::IoNotice;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tools::alloc::{thread_allocations, CountingAlloc};
use tools::logging::events::{io_notice, IntervalEvents};
use tools::logging::{subscriber, LogFormat, Logger, RING_BYTES};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// An in-memory sink the writer thread writes to; `gate` (if any) stalls every write until it
/// is opened.
#[derive(Clone, Default)]
struct Sink {
    bytes: Arc<Mutex<Vec<u8>>>,
    gate: Option<Arc<AtomicBool>>,
}

/// Opens the sink's gate when dropped: declared after the logger, so a failing test unwinds
/// without waiting on a stalled writer forever.
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(open) = &self.gate {
            while !open.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
    }
}

/// Runs `f` on a fresh thread under a `format` subscriber writing to a new logger; returns the
/// lines written (after the logger stopped, so all of them) and (accepted, dropped).
fn capture(format: LogFormat, filter: &str, f: impl FnOnce() + Send) -> (String, u64, u64) {
    let sink = Sink::default();
    let mut logger = Logger::start(Box::new(sink.clone()), RING_BYTES).unwrap();
    let sub = subscriber(format, EnvFilter::new(filter), &logger);
    std::thread::scope(|s| {
        s.spawn(|| tracing::subscriber::with_default(sub, f))
            .join()
            .unwrap()
    });
    logger.stop().unwrap();
    (sink.text(), logger.accepted(), logger.dropped())
}

fn some_events() {
    tracing::info!(target: "tickline::io", conn_id = 3u32, "connected");
    tracing::warn!(
        target: "tickline::core",
        strategy = "naive",
        symbol = %"BTCUSDT",
        callback_ns = 75_000u64,
        ratio = 0.5f64,
        synced = true,
        "slow callback"
    );
    tracing::error!(target: "tickline::journal", file = "a \"quoted\"\npath", "torn record");
    tracing::debug!(target: "tickline::io", "filtered out at info");
}

/// `2026-12-07T07:20:00.123456Z`: RFC 3339, UTC.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() >= 20
        && s.ends_with('Z')
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b.iter().enumerate().all(|(i, c)| {
            matches!(i, 4 | 7 | 10 | 13 | 16 | 19) || i == b.len() - 1 || c.is_ascii_digit()
        })
}

/// (timestamp, level, target, rest) of a text line.
fn text_parts(line: &str) -> (&str, &str, &str, &str) {
    let (ts, rest) = line.split_once(' ').unwrap();
    let rest = rest.trim_start();
    let (level, rest) = rest.split_once(' ').unwrap();
    let (target, rest) = rest.split_once(": ").unwrap();
    (ts, level, target, rest)
}

#[test]
fn text_lines_carry_timestamp_level_and_target() {
    let (out, accepted, dropped) = capture(LogFormat::Text, "info", some_events);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!((accepted, dropped), (3, 0));
    let want = [
        ("INFO", "tickline::io", "connected conn_id=3"),
        (
            "WARN",
            "tickline::core",
            "slow callback strategy=\"naive\" symbol=BTCUSDT callback_ns=75000 ratio=0.5 synced=true",
        ),
        ("ERROR", "tickline::journal", "torn record file="),
    ];
    for (line, (level, target, start)) in lines.iter().zip(want) {
        let (ts, l, t, rest) = text_parts(line);
        assert!(is_timestamp(ts), "{line}");
        assert_eq!((l, t), (level, target), "{line}");
        assert!(rest.starts_with(start), "{line}");
    }
}

#[test]
fn json_lines_parse_back_with_timestamp_level_target_and_fields() {
    let (out, _, dropped) = capture(LogFormat::Json, "info", some_events);
    assert_eq!(dropped, 0);
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(v.len(), 3, "{out}");
    for o in &v {
        assert!(is_timestamp(o["timestamp"].as_str().unwrap()), "{o}");
        assert_eq!(o.as_object().unwrap().len(), 4, "{o}");
    }
    assert_eq!(v[0]["level"], "INFO");
    assert_eq!(v[0]["target"], "tickline::io");
    assert_eq!(
        v[0]["fields"],
        serde_json::json!({"message": "connected", "conn_id": 3})
    );
    assert_eq!(
        v[1]["fields"],
        serde_json::json!({
            "message": "slow callback",
            "strategy": "naive",
            "symbol": "BTCUSDT",
            "callback_ns": 75_000,
            "ratio": 0.5,
            "synced": true,
        })
    );
    assert_eq!(v[2]["level"], "ERROR");
    assert_eq!(v[2]["fields"]["file"], "a \"quoted\"\npath");
}

#[test]
fn the_filter_takes_rust_log_directives() {
    let (out, _, _) = capture(LogFormat::Text, "warn,tickline::io=debug", some_events);
    let targets: Vec<(&str, &str)> = out
        .lines()
        .map(|l| {
            let (_, level, target, _) = text_parts(l);
            (level, target)
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("INFO", "tickline::io"),
            ("WARN", "tickline::core"),
            ("ERROR", "tickline::journal"),
            ("DEBUG", "tickline::io"),
        ]
    );
}

#[test]
fn io_notices_and_snapshots_become_structured_events() {
    let (out, _, _) = capture(LogFormat::Json, "info", || {
        io_notice(&IoNotice::Reconnecting {
            conn_id: 2,
            attempt: 3,
            delay: std::time::Duration::from_millis(400),
        });
        let mut symbols = SymbolTable::new();
        let btc = symbols.intern("BTCUSDT").unwrap();
        let mut snap = MetricsSnapshot::new(1, 1);
        for i in 0..12 {
            snap.slow.push(SlowCallback {
                strategy: "naive",
                symbol: btc,
                duration_ns: 75_000 + i,
                at_ns: 0,
            });
        }
        snap.slow_unreported = 30;
        snap.counters.orders_denied = 4;
        snap.counters.trader_restarts = 1;
        snap.symbols[0] = SymbolGauges {
            symbol: SymbolId(0),
            synced: true,
            bid_levels: 5,
            ask_levels: 6,
            ..SymbolGauges::default()
        };
        let mut events = IntervalEvents::default();
        events.log(&snap, &symbols);
        // The next interval: nothing new, so nothing is logged but its slow callbacks.
        snap.slow.clear();
        snap.slow_unreported = 0;
        events.log(&snap, &symbols);
    });
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<&str> = v
        .iter()
        .map(|o| o["fields"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages[0], "reconnecting");
    assert_eq!(
        v[0]["fields"],
        serde_json::json!({"message": "reconnecting", "conn_id": 2, "attempt": 3, "delay_ms": 400})
    );
    let slow = &v[1..11];
    assert!(slow
        .iter()
        .all(|o| o["fields"]["message"] == "slow callback"
            && o["fields"]["symbol"] == "BTCUSDT"
            && o["target"] == "tickline::core"));
    assert_eq!(slow[9]["fields"]["callback_ns"], 75_009);
    assert_eq!(
        v[11]["fields"]["count"], 32,
        "2 kept but not logged + 30 counted"
    );
    assert_eq!(
        &messages[12..],
        [
            "orders denied by risk",
            "traders restarted after a panic",
            "book synced"
        ],
        "{out}"
    );
    assert_eq!(v[12]["fields"]["denied"], 4);
}

#[test]
fn a_flood_against_a_stalled_writer_neither_blocks_nor_allocates_and_counts_every_drop() {
    const EVENTS: u64 = 1_000_000;
    let open = Arc::new(AtomicBool::new(false));
    let sink = Sink {
        gate: Some(open.clone()),
        ..Sink::default()
    };
    let mut logger = Logger::start(Box::new(sink.clone()), 64 * 1024).unwrap();
    let release = Release(open);
    let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), &logger);
    let allocations = std::thread::scope(|s| {
        s.spawn(|| {
            tracing::subscriber::with_default(sub, || {
                // The thread's first line registers its ring (allocates once).
                tracing::info!(target: "tickline::test", "warm-up");
                let probe = thread_allocations();
                drop(std::hint::black_box(vec![0u8; 8]));
                assert!(
                    thread_allocations() > probe,
                    "the counting allocator counts"
                );
                let before = thread_allocations();
                for i in 0..EVENTS {
                    tracing::warn!(
                        target: "tickline::core",
                        symbol = "BTCUSDT",
                        callback_ns = i,
                        "slow callback"
                    );
                }
                thread_allocations() - before
            })
        })
        .join()
        .unwrap()
    });
    // The flood is over while the writer is still stalled: it never waited for it.
    let (accepted, dropped) = (logger.accepted(), logger.dropped());
    assert_eq!(allocations, 0, "allocations on the logging thread");
    assert_eq!(accepted + dropped, EVENTS + 1);
    assert!(
        dropped > EVENTS / 2,
        "the stalled writer dropped lines: {dropped}"
    );
    drop(release);
    logger.stop().unwrap();
    assert_eq!(logger.dropped(), dropped, "nothing dropped after the flood");
    let out = sink.text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len() as u64,
        accepted,
        "every line taken is written, whole"
    );
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"] == "WARN" || v["fields"]["message"] == "warm-up");
    }
}

// ---------------------------------------------------------------------------------------------
// The binary's flags on real runs
// ---------------------------------------------------------------------------------------------

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tickline")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickline-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `tickline ARGS` with `RUST_LOG` as given (unset if `None`): its stderr.
fn stderr_of(args: &[&str], rust_log: Option<&str>) -> String {
    let mut c = Command::new(bin());
    c.args(args).args(["--io-cpu", "-1", "--core-cpu", "-1"]);
    match rust_log {
        Some(v) => c.env("RUST_LOG", v),
        None => c.env_remove("RUST_LOG"),
    };
    let out = c.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "tickline {args:?}: {stderr}");
    stderr
}

/// Every line of `stderr` is a JSON object with the four keys; returns them.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            for k in ["timestamp", "level", "target", "fields"] {
                assert!(v.get(k).is_some(), "{k} missing: {l}");
            }
            v
        })
        .collect()
}

/// A generated capture with its last record cut short (the replay warns about it).
fn torn_capture(name: &str) -> PathBuf {
    let tlc = tmp(name);
    let st = Command::new(bin())
        .args(["gen-feed", "--events", "2000", "--out"])
        .arg(&tlc)
        .args(["--log-format", "json"])
        .output()
        .unwrap();
    assert!(st.status.success());
    cut(&tlc, 7);
    tlc
}

fn cut(p: &Path, bytes: u64) {
    let len = std::fs::metadata(p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_len(len - bytes).unwrap();
}

#[test]
fn json_format_on_a_real_replay_and_demo_gives_only_json_lines() {
    let tlc = torn_capture("replay-json.tlc");
    let replay = stderr_of(
        &[
            "--log-format",
            "json",
            "replay",
            tlc.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    let v = json_lines(&replay);
    assert!(
        v.iter().any(|o| o["level"] == "WARN"
            && o["target"] == "tickline::replay"
            && o["fields"]["message"]
                .as_str()
                .unwrap()
                .starts_with("unreadable record")),
        "{replay}"
    );
    // The live engine against the loopback simulator: connections, books, shutdown.
    let demo = stderr_of(
        &["demo", "--events", "5000", "--json", "--log-format", "json"],
        None,
    );
    let v = json_lines(&demo);
    assert!(
        v.iter().any(|o| o["target"] == "tickline::io"
            && o["fields"]["message"] == "connected"
            && o["fields"]["conn_id"].is_u64()),
        "{demo}"
    );
}

#[test]
fn rust_log_and_log_level_filter_what_a_run_logs() {
    let demo = ["demo", "--events", "3000", "--json"];
    let all = stderr_of(&demo, None);
    assert!(all.contains(" INFO tickline::io: connected"), "{all}");
    let quiet = stderr_of(&demo, Some("error"));
    assert!(!quiet.contains(" INFO "), "{quiet}");
    // --log-level wins over RUST_LOG.
    let mut args = demo.to_vec();
    args.extend(["--log-level", "off,tickline::io=info"]);
    let io_only = stderr_of(&args, Some("error"));
    assert!(!io_only.is_empty());
    assert!(
        io_only.lines().all(|l| text_parts(l).2 == "tickline::io"),
        "{io_only}"
    );
    // A bad filter is refused before anything runs.
    let out = Command::new(bin())
        .args(["--log-level", "info,[[[", "demo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.starts_with("error: --log-level"), "{e}");
}

#[test]
fn the_summary_counts_dropped_log_lines() {
    let tlc = torn_capture("summary.tlc");
    let out = Command::new(bin())
        .args(["replay", tlc.to_str().unwrap(), "--json"])
        .args(["--io-cpu", "-1", "--core-cpu", "-1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["log_dropped"], 0, "{v}");
}

// ---------------------------------------------------------------------------------------------
// The core raises no events
// ---------------------------------------------------------------------------------------------

/// Records, for every event, the name of the thread that raised it and its message.
#[derive(Default)]
struct ByThread(Mutex<Vec<(String, String)>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for ByThread {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.0.lock().unwrap().push((name, m.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A replay whose every strategy callback is "slow": the core reports them, the metrics thread
/// logs them, and no event comes from the core thread.
#[test]
fn the_core_thread_raises_no_events_the_metrics_thread_logs_its_reports() {
    use engine::core::CoreConfig;
    use engine::idle::IdleMode;
    use tools::config::Pace;
    use tools::pipeline::{replay, FrameArena, ReplayOptions};
    use venue_sim::gen::GenConfig;

    let seen = Arc::new(ByThread::default());
    // The replay's threads are new threads: they log to the global default (this test's).
    tracing::subscriber::set_global_default(seen.clone()).unwrap();
    let mut symbols = SymbolTable::new();
    let gen = GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events: 5_000,
        seed: 7,
        start_ns: 1,
    };
    let arena = FrameArena::generated(gen, &mut symbols).unwrap();
    let default_symbol = symbols.lookup(b"BTCUSDT").unwrap();
    let report = replay(
        &arena,
        ReplayOptions {
            symbols,
            default_symbol,
            strategy: Some(("naive".into(), engine::strategy::Params::default())),
            custom_strategy: None,
            pace: Pace::Asap,
            io_cpu: None,
            core_cpu: None,
            idle: IdleMode::SpinYield { spins: 100 },
            ring_capacity: 4096,
            core: CoreConfig {
                slow_callback_ns: 1,
                ..CoreConfig::default()
            },
            metrics: Some(tools::metrics::MetricsConfig::default()),
        },
    )
    .unwrap();
    assert!(report.core.slow_callbacks > 0);
    let seen = seen.0.lock().unwrap();
    assert!(
        seen.iter()
            .any(|(t, m)| t == "tickline-metrics" && m == "slow callback"),
        "{seen:?}"
    );
    assert!(seen.iter().all(|(t, _)| t != "tickline-core"), "{seen:?}");
}
