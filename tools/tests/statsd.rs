//! The metrics thread end to end against the reference StatsD daemon (etsy/statsd, the npm
//! package `statsd`, on Node.js), over real UDP on 127.0.0.1.
//!
//! Set-up is the test's own: it installs a pinned `statsd` into `target/statsd-daemon` with
//! `npm install --prefix` (never globally; its one dependency, `generic-pool`, is pinned exactly
//! by `statsd` itself; the optional syslog and proxy dependencies are left out), writes a config
//! with free loopback ports, no backends and an hour-long flush interval (so nothing is flushed
//! away during the test), starts `node .../statsd/stats.js config.js`, and kills it at the end,
//! on panic too. Without `node` or `npm` it says so plainly and skips.
//!
//! The engine side is real: a generated two-symbol Binance feed is decoded into the core's ring
//! and run through `engine::core::Core` with the naive strategy on the paper venue, with a
//! `Handoff` ticking at interval boundaries and a real metrics thread shipping every interval.
//! The daemon's admin interface (`counters`, `gauges`, `timers` over TCP) must then show the
//! run's figures: every counter's deltas summed back to the core's total, the last interval's
//! gauges, and every line parsed without error. `Handoff::tick` is also shown to allocate
//! nothing on the core's thread, boundaries included.

use engine::core::{Core, CoreConfig};
use engine::latency::{Percentiles, Stage};
use engine::ring::{event_ring, OnFull};
use engine::strategy::Params;
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::BinanceDecoder;
use feeds::io::IoShared;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::alloc::{thread_allocations, CountingAlloc};
use tools::clock::MonoClock;
use tools::metrics::{decimal, spawn_metrics_thread, Handoff, MetricsConfig};
use venue_sim::gen::{FeedGenerator, GenConfig, GenKind};

mod common;
use common::statsd_daemon::{start_daemon, statsd_daemon, PATIENCE, STATSD_VERSION};

// Counts allocations per thread, to show that the core's side of the hand-off allocates nothing.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn get(map: &HashMap<String, f64>, key: &str) -> f64 {
    *map.get(key)
        .unwrap_or_else(|| panic!("{key} missing from the daemon's {map:#?}"))
}

struct Run {
    counters: engine::metrics::CoreCounters,
    last_queue_wait: Percentiles,
    last_strategy: Percentiles,
    books: Vec<(String, usize, usize, bool)>,
    positions: Vec<(String, engine::portfolio::Position)>,
    skipped: u64,
    totals: tools::metrics::MetricsTotals,
}

/// A real engine run shipped to `statsd` (host:port) interval by interval.
fn engine_run(statsd: String) -> Run {
    let names = ["BTCUSDT", "ETHUSDT"];
    let mut symbols = SymbolTable::new();
    for n in names {
        symbols.intern(n).unwrap();
    }
    let mut gen = FeedGenerator::new(GenConfig {
        symbols: names.iter().map(|s| s.to_string()).collect(),
        events: 4_000,
        seed: 11,
        start_ns: 1_000_000_000,
    })
    .unwrap();
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    while let Some(f) = gen.next_frame(&mut buf) {
        frames.push((f, buf.clone()));
    }

    let (mut tx, rx) = event_ring(1 << 16, OnFull::Block);
    let mut core = Core::new(&symbols, CoreConfig::default(), MonoClock);
    core.add_input(rx);
    for (id, _) in symbols.iter() {
        core.set_strategy(id, strategies::build("naive", Params::default()).unwrap())
            .unwrap();
    }
    // Boundaries on the feed's receive times: 4,000 frames about 1 ms apart, so about ten
    // intervals of 400 ms; whether the metrics thread keeps up or some are extended (both happen
    // below), every counter's deltas must add up to the total.
    let (mut handoff, link) = Handoff::new(
        core.new_metrics_snapshot(),
        core.new_metrics_snapshot(),
        Duration::from_millis(400),
    );
    let cfg = MetricsConfig {
        statsd: Some(statsd),
        ..MetricsConfig::default()
    };
    let io = Arc::new(IoShared::new(1)); // no I/O thread here: its counters stay zero
    let thread = spawn_metrics_thread(cfg, link, symbols.clone(), Some(io)).unwrap();

    let mut decoder = BinanceDecoder::new(symbols.clone());
    let mut out = Vec::new();
    let last_tick = frames.len() - 500; // the last interval (the flush) holds 500 frames
    let mut tick_allocations = 0;
    assert!(
        thread_allocations() > 0,
        "the counting allocator is installed"
    );
    for (i, (f, payload)) in frames.iter().enumerate() {
        out.clear();
        let recv = MonoClock::now();
        match f.kind {
            GenKind::Snapshot => {
                decoder.decode_snapshot(payload, SymbolId(f.symbol as u32), recv, &mut out)
            }
            _ => decoder.decode(payload, recv, &mut out),
        }
        .unwrap();
        tx.push_all(&out).unwrap();
        while core.poll(f.recv_ns) > 0 {}
        if i < last_tick {
            let before = thread_allocations();
            handoff.tick(f.recv_ns, &mut core);
            tick_allocations += thread_allocations() - before;
        }
        // The feed's clock runs far ahead of the wall clock here: in the first half, give the
        // metrics thread time to return each snapshot; in the second, it may fall behind.
        if i < frames.len() / 2 && i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // What the flush is about to hand over: the last interval's histograms.
    let last_queue_wait = core.latency().get(Stage::QueueWait).percentiles();
    let last_strategy = core.latency().get(Stage::Strategy).percentiles();
    let counters = *core.counters();
    let books = symbols
        .iter()
        .map(|(id, n)| {
            let b = core.book(id).unwrap();
            let (bids, asks) = b.depth();
            (n.to_string(), bids, asks, b.is_synced())
        })
        .collect();
    let positions = symbols
        .iter()
        .map(|(id, n)| (n.to_string(), *core.position(id).unwrap()))
        .collect();
    handoff.flush(&mut core);
    let totals = thread.join().expect("the metrics thread panicked");
    assert_eq!(tick_allocations, 0, "Handoff::tick allocated on the core");
    Run {
        counters,
        last_queue_wait,
        last_strategy,
        books,
        positions,
        skipped: handoff.skipped(),
        totals,
    }
}

/// The tests here take turns: two daemons and two engines at once on two CPUs make the UDP
/// checks race each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn engine_metrics_arrive_in_the_reference_statsd_daemon() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stats_js) = statsd_daemon() else {
        return;
    };
    let started = Instant::now();
    let daemon = start_daemon(&stats_js);

    // The UDP server may bind a moment after the admin port: probe until a line shows up.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut probes = 0u64;
    let deadline = Instant::now() + PATIENCE;
    loop {
        probe
            .send_to(b"probe:1|c", ("127.0.0.1", daemon.udp_port))
            .unwrap();
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
        if daemon.numbers("counters").contains_key("probe") {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon never saw a probe");
    }

    let run = engine_run(format!("127.0.0.1:{}", daemon.udp_port));
    let t = &run.totals;
    assert_eq!(t.send_errors, 0, "{t:?}");
    assert_eq!(t.oversized, 0, "{t:?}");
    assert!(t.datagrams_sent >= 3, "{t:?}");
    assert!(
        t.intervals >= 3,
        "two snapshots out at once, then the flush: {t:?}"
    );
    assert_eq!(t.skipped, run.skipped);
    assert!(
        run.counters.orders_sent > 0,
        "the naive strategy traded: {:?}",
        run.counters
    );
    // The thread's totals are the whole run's distribution: every event waited in the ring once.
    assert_eq!(
        t.latency.get(Stage::QueueWait).len(),
        run.counters.events,
        "merged latency"
    );

    // Every datagram and line arrived and parsed (loopback UDP; wait for the daemon to read).
    let deadline = Instant::now() + PATIENCE;
    let counters = loop {
        let c = daemon.numbers("counters");
        if c.get("statsd.metrics_received") == Some(&((t.lines + probes) as f64)) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon received {:?} lines, {} sent",
            c.get("statsd.metrics_received"),
            t.lines + probes
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        get(&counters, "statsd.packets_received"),
        (t.datagrams_sent + probes) as f64
    );
    assert_eq!(get(&counters, "statsd.bad_lines_seen"), 0.0);

    // Counters: the deltas of every interval add up to the run's totals.
    let c = &run.counters;
    for (name, want) in [
        ("events", c.events),
        ("orders_sent", c.orders_sent),
        ("orders_denied", c.orders_denied),
        ("fills", c.fills),
        ("rejects", c.rejects),
        ("canceled", c.canceled),
        ("book_gaps", c.book_gaps),
        ("feed_gaps", c.feed_gaps),
        ("resync_requests", c.resync_requests),
        ("slow_callbacks", c.slow_callbacks),
        ("metrics_skipped", run.skipped),
        ("messages", 0),
        ("decode_errors", 0),
        ("ignored", 0),
        ("ring_drops", 0),
    ] {
        assert_eq!(
            get(&counters, &format!("tickline.{name}")),
            want as f64,
            "tickline.{name}"
        );
    }

    // Gauges: the last interval's values.
    let g = daemon.numbers("gauges");
    for (sym, bids, asks, synced) in &run.books {
        assert!(*synced, "{sym} synced");
        assert_eq!(
            get(&g, &format!("tickline.book.{sym}.bid_levels")),
            *bids as f64
        );
        assert_eq!(
            get(&g, &format!("tickline.book.{sym}.ask_levels")),
            *asks as f64
        );
        assert_eq!(get(&g, &format!("tickline.book.{sym}.synced")), 1.0);
    }
    let as_sent = |units: i128| decimal(units).parse::<f64>().unwrap();
    for (sym, p) in &run.positions {
        assert_eq!(
            get(&g, &format!("tickline.position.{sym}")),
            as_sent(p.qty.into()),
            "position.{sym}"
        );
        assert_eq!(
            get(&g, &format!("tickline.pnl.{sym}.realized")),
            as_sent(p.realized)
        );
        assert_eq!(
            get(&g, &format!("tickline.pnl.{sym}.unrealized")),
            as_sent(p.unrealized())
        );
        assert_eq!(
            get(&g, &format!("tickline.pnl.{sym}.fees")),
            as_sent(p.fees)
        );
        assert_eq!(
            get(&g, &format!("tickline.pnl.{sym}.net")),
            as_sent(p.net_pnl())
        );
    }
    // A negative gauge goes as `name:0|g` then `name:-x|g` (a bare `-x` would be a decrement);
    // this feed leaves a negative PnL, so the daemon's reading above checked that path too.
    let negative = run
        .positions
        .iter()
        .filter(|(_, p)| p.qty < 0 || p.unrealized() < 0 || p.net_pnl() < 0)
        .count();
    let q = &run.last_queue_wait;
    assert!(q.count >= 500, "{q:?}");
    for (what, want) in [
        ("p50", q.p50),
        ("p99", q.p99),
        ("p999", q.p999),
        ("max", q.max),
        ("count", q.count),
    ] {
        assert_eq!(
            get(&g, &format!("tickline.latency.queue_wait.{what}")),
            want as f64,
            "queue_wait.{what}"
        );
    }
    if run.last_strategy.count > 0 {
        assert_eq!(
            get(&g, "tickline.latency.strategy.p99"),
            run.last_strategy.p99 as f64
        );
    }
    assert!(get(&g, "tickline.loop.polls") > 0.0);
    assert!(get(&g, "tickline.loop.busy_polls") > 0.0);
    assert!(g.contains_key("tickline.loop.max_gap_ns"));
    assert!(g.contains_key("tickline.loop.max_iteration_ns"));
    // Decode runs on the feed thread, which this drive does not have: no empty stage is sent.
    assert!(!g.keys().any(|k| k.starts_with("tickline.latency.decode.")));

    // Percentiles go out as gauges, never as timers.
    let timers = daemon.admin("timers");
    assert!(!timers.contains("tickline."), "{timers}");

    eprintln!(
        "statsd {STATSD_VERSION}: {} intervals ({} extended), {} datagrams, {} lines, {} orders, \
         {} fills, {negative} symbols with negative gauges; the daemon agrees",
        t.intervals, t.skipped, t.datagrams_sent, t.lines, c.orders_sent, c.fills
    );
    drop(daemon);
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// As a user checks it: `tickline replay --statsd` on a capture, then the daemon's admin port.
#[test]
fn a_replay_with_statsd_ships_its_metrics_to_the_daemon() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stats_js) = statsd_daemon() else {
        return;
    };
    let daemon = start_daemon(&stats_js);
    // Wait for the daemon's UDP side, as above.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        probe
            .send_to(b"probe:1|c", ("127.0.0.1", daemon.udp_port))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        if daemon.numbers("counters").contains_key("probe") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never counted a probe"
        );
    }
    let dir = std::env::temp_dir().join(format!("tickline-statsd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("feed.tlc");
    let bin = env!("CARGO_BIN_EXE_tickline");
    let gen = Command::new(bin)
        .args([
            "gen-feed",
            "--out",
            capture.to_str().unwrap(),
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--events",
            "30000",
        ])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let statsd = format!("127.0.0.1:{}", daemon.udp_port);
    let out = Command::new(bin)
        .args([
            "replay",
            capture.to_str().unwrap(),
            "--json",
            "--statsd",
            &statsd,
            "--io-cpu",
            "-1",
            "--core-cpu",
            "-1",
            "--idle",
            "backoff",
            "--param",
            "chunks=4",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counters = daemon.numbers("counters");
    // Counters are deltas per interval; the daemon sums them: they must equal the run's totals.
    for (metric, key) in [
        ("events", "events"),
        ("orders_sent", "orders_sent"),
        ("fills", "fills"),
        ("book_gaps", "book_gaps"),
    ] {
        assert_eq!(
            get(&counters, &format!("tickline.{metric}")),
            summary[key].as_f64().unwrap(),
            "tickline.{metric}"
        );
    }
    let gauges = daemon.numbers("gauges");
    assert_eq!(get(&gauges, "tickline.book.BTCUSDT.synced"), 1.0);
    assert_eq!(get(&gauges, "tickline.book.ETHUSDT.synced"), 1.0);
    assert!(get(&gauges, "tickline.latency.queue_wait.count") > 0.0);
    assert!(gauges.contains_key("tickline.ring.0.occupancy"));
    assert!(summary["orders_sent"].as_u64().unwrap() > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
