//! Wire benchmarks over real loopback sockets (not criterion: each run is one long measurement
//! whose percentiles are the result).
//!
//! 1. **I/O thread throughput**: one WebSocket connection whose server writes pre-encoded frames
//!    (the real capture's frames, or generated ones) in large writes, so the server is not the
//!    bottleneck; the I/O thread stamps, decodes and pushes every frame into the ring, drained by
//!    a consumer on the other CPU. Reported: frames per second between the first and the last
//!    receive stamp.
//! 2. **Wire-to-core latency**: the venue simulator sends a generated feed over `ws://`, at a
//!    fixed rate and at full speed; it stamps each trade frame on `CLOCK_MONOTONIC` just before
//!    the write, and a measuring strategy on the core stamps the same trade on the same clock
//!    when the core hands it over. Reported: percentiles of the difference over every trade.
//!
//! 3. **Wire-to-wire with orders**: the same simulator also serves the order API; the engine
//!    runs the `probe` strategy with live orders (`[orders] enabled`), so every trade is answered
//!    by one `order.place` named `probe-<trade id>`. The simulator measures trade frame written ->
//!    that order read (both `CLOCK_MONOTONIC`); the engine measures `tick_to_wire` (frame
//!    received -> order frame written to the socket) and `tick_to_order` (-> order emitted by the
//!    core). The simulator paces all its frames; trades are about 47 % of them, so the measured
//!    trade rate is printed.
//!
//! `cargo bench --bench wire` runs the full sizes (`-- io`: only the I/O thread throughput;
//! `-- orders`: only wire-to-wire); `cargo test --benches` runs a small smoke version of each.

use engine::latency::LatencyHist;
use engine::ring::{event_ring, OnFull};
use engine::strategy::{Ctx, Strategy};
use engine::symbol::SymbolTable;
use feeds::binance::market::BinanceDecoder;
use feeds::io::{FeedSpec, IoConfig, IoLoop, IoShared};
use feeds::net::tungstenite;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::clock::MonoClock;
use tools::config::Config;
use tools::live::{run_live, LiveOptions};
use venue_sim::gen::GenConfig;
use venue_sim::{SimConfig, SimPace, SimSource, VenueSim};

fn frames_for_throughput() -> (Vec<Vec<u8>>, &'static str) {
    if let Some(path) = testkit::shared_data(testkit::BINANCE_SPOT) {
        let frames: Vec<Vec<u8>> = testkit::read_line_capture(&path)
            .into_iter()
            .map(|(_, f)| f)
            .filter(|f| f.starts_with(b"{\"stream\""))
            .collect();
        return (frames, "real capture frames");
    }
    let mut g = venue_sim::gen::FeedGenerator::new(GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events: 40_000,
        seed: 3,
        start_ns: 1,
    })
    .unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(f) = g.next_frame(&mut buf) {
        if f.kind != venue_sim::gen::GenKind::Snapshot {
            out.push(buf.clone());
        }
    }
    (out, "generated frames")
}

/// A server WebSocket frame (FIN, text, unmasked).
fn encode_text_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x81);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

fn io_throughput(total: usize) {
    let (frames, what) = frames_for_throughput();
    let mut wire = Vec::new();
    let mut n = 0;
    while n < total {
        for f in &frames {
            if n == total {
                break;
            }
            encode_text_frame(f, &mut wire);
            n += 1;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        let tcp = ws.get_mut();
        for chunk in wire.chunks(256 * 1024) {
            tcp.write_all(chunk).unwrap();
        }
        // Keep the connection open until the client has read everything and stops.
        std::thread::sleep(Duration::from_secs(600));
    });
    let mut symbols = SymbolTable::new();
    symbols.intern("BTCUSDT").unwrap();
    // Block, not drop: this measures the I/O thread, and a consumer descheduled by the sending
    // server (three busy threads, two CPUs) must not turn into lost frames.
    let (tx, mut rx) = event_ring(1 << 16, OnFull::Block);
    let shared = Arc::new(IoShared::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let io = {
        let (shared, stop, symbols) = (shared.clone(), stop.clone(), symbols.clone());
        std::thread::spawn(move || {
            tools::pin::pin_current_thread("I/O", Some(0));
            let cfg = IoConfig {
                feeds: vec![FeedSpec {
                    conn_id: 1,
                    url: format!("ws://127.0.0.1:{port}/stream"),
                    subscribe: Vec::new(),
                    ..FeedSpec::default()
                }],
                spin: true,
                heartbeat: Duration::ZERO,
                ..IoConfig::default()
            };
            let mut notice = |_n: feeds::io::IoNotice| {};
            IoLoop::new(cfg, BinanceDecoder::new(symbols), tx, MonoClock::now).run(
                &shared,
                &stop,
                &mut notice,
            )
        })
    };
    // The consumer (the core's place, on its own thread so the main thread's affinity stays
    // whole): drain, keep the first and last receive stamps.
    let consumer = {
        let shared = shared.clone();
        std::thread::spawn(move || drain(&mut rx, &shared, total as u64))
    };
    let (first, last, events) = consumer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let report = io.join().unwrap();
    drop(server);
    let secs = (last - first) as f64 / 1e9;
    println!(
        "I/O thread throughput, one ws:// connection, {what}: {} frames ({events} events, {} decode errors, {} ring drops) in {:.1} ms = {:.2} M frames/s",
        report.totals.frames,
        report.totals.decode_errors,
        report.ring.dropped,
        secs * 1e3,
        report.totals.frames as f64 / secs / 1e6
    );
}

fn drain(
    rx: &mut rtrb::Consumer<engine::event::Event>,
    shared: &IoShared,
    total: u64,
) -> (u64, u64, u64) {
    tools::pin::pin_current_thread("consumer", Some(1));
    let (mut first, mut last, mut events) = (u64::MAX, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let avail = rx.slots();
        if avail == 0 {
            if shared.totals().frames >= total && rx.is_empty() {
                break;
            }
            std::hint::spin_loop();
            continue;
        }
        let Ok(chunk) = rx.read_chunk(avail) else {
            continue;
        };
        let (a, b) = chunk.as_slices();
        for e in a.iter().chain(b) {
            first = first.min(e.recv_ns);
            last = last.max(e.recv_ns);
        }
        events += avail as u64;
        chunk.commit_all();
    }
    (first, last, events)
}

/// Stamps every trade when the core hands it to the strategy.
struct Tap {
    times: Arc<Vec<AtomicU64>>,
}

impl Strategy for Tap {
    fn name(&self) -> &'static str {
        "tap"
    }
    fn on_trade(&mut self, _ctx: &mut Ctx<'_>, t: &engine::event::Trade) {
        let i = (t.trade_id as usize) % self.times.len();
        self.times[i].store(MonoClock::now(), Ordering::Relaxed);
    }
}

/// Restricts the calling thread (and the threads it starts afterwards) to `cpus`.
fn set_affinity(cpus: &[usize]) {
    let mut set = rustix::thread::CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("warning: could not set the affinity to {cpus:?}: {e}");
    }
}

fn wire_to_core(label: &str, pace: SimPace, events: u64, io_spin: bool) {
    // The simulator's threads share CPU 0 with the engine's I/O thread; the core has CPU 1.
    set_affinity(&[0]);
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events,
            seed: 17,
            start_ns: 1_000_000_000,
        }),
        pace,
        send_times_capacity: events as usize,
        ..SimConfig::default()
    })
    .unwrap();
    set_affinity(&[0, 1]);
    let mut cfg = Config::default();
    cfg.venue.ws_url = sim.ws_url();
    cfg.venue.rest_url = sim.http_url();
    cfg.net.spin = io_spin;
    cfg.engine.idle = "spin".into();
    cfg.validate().unwrap();
    let cap = events as usize * 2;
    let times: Arc<Vec<AtomicU64>> = Arc::new((0..cap).map(|_| AtomicU64::new(0)).collect());
    let t2 = times.clone();
    let r = run_live(LiveOptions {
        cfg,
        strategy: None,
        custom_strategy: Some(tools::live::StrategyFactory(Box::new(move || {
            Box::new(Tap { times: t2.clone() })
        }))),
        record: None,
        duration: Some(Duration::from_secs(600)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: Some(Box::new(move |t| t.frames >= events)),
    })
    .unwrap();
    let mut h = LatencyHist::new();
    let mut missing = 0;
    for (trade_id, sent) in sim.send_times() {
        let got = times[(trade_id as usize) % cap].load(Ordering::Relaxed);
        if got == 0 || got < sent {
            missing += 1;
            continue;
        }
        h.record(got - sent);
    }
    let p = h.percentiles();
    println!(
        "wire-to-core, ws:// loopback, {label}, I/O {}: {} trades of {} frames ({missing} unmatched, {} decode errors): p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        if io_spin { "busy-poll" } else { "epoll wait" },
        p.count,
        r.frames,
        r.decode.decode_errors,
        p.p50 as f64 / 1e3,
        p.p90 as f64 / 1e3,
        p.p99 as f64 / 1e3,
        p.p999 as f64 / 1e3,
        p.max as f64 / 1e3
    );
    println!("  {}", hiccups_line(&r));
}

fn wire_to_wire(label: &str, frames_per_sec: u64, events: u64) {
    use engine::latency::Stage;
    let gen = GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events,
        seed: 23,
        start_ns: 1_000_000_000,
    };
    // The trades the feed holds: the run ends when they have all arrived.
    let trades = {
        let mut g = venue_sim::gen::FeedGenerator::new(gen.clone()).unwrap();
        let mut buf = Vec::new();
        let mut n = 0u64;
        while let Some(f) = g.next_frame(&mut buf) {
            n += u64::from(f.kind == venue_sim::gen::GenKind::Trade);
        }
        n
    };
    set_affinity(&[0]);
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen),
        pace: SimPace::Rate(frames_per_sec),
        send_times_capacity: events as usize,
        ..SimConfig::default()
    })
    .unwrap();
    set_affinity(&[0, 1]);
    let dir = testkit::TempDir::new("w2w");
    let journal = dir.path().join("orders.tlj");
    let mut cfg = Config::default();
    cfg.venue.ws_url = sim.ws_url();
    cfg.venue.rest_url = sim.http_url();
    cfg.venue.streams = vec!["trade".into()];
    cfg.engine.idle = "spin".into();
    cfg.orders.enabled = true;
    cfg.orders.url = format!("{}/ws-api/v3", sim.ws_url());
    // TICKLINE_W2W_KEY=ed25519: an Ed25519 key with session.logon (requests unsigned once the
    // venue accepts it); else an HMAC key, every request signed.
    if std::env::var("TICKLINE_W2W_KEY").as_deref() == Ok("ed25519") {
        cfg.orders.credentials_file =
            Some(testkit::ed25519_key_file(dir.path()).display().to_string());
        cfg.orders.session_logon = true;
    } else {
        cfg.orders.credentials_file =
            Some(testkit::venue_key_file(dir.path()).display().to_string());
    }
    cfg.orders.journal = journal.display().to_string();
    if let Some(us) = std::env::var("TICKLINE_SPIN_AFTER_FRAME_US")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.orders.spin_after_frame_us = us;
    }
    cfg.risk.rate_per_sec = 1_000_000;
    cfg.risk.burst = 1_000_000;
    cfg.risk.max_open_orders = 1_000;
    cfg.risk.max_position = "1000".into();
    cfg.validate().unwrap();
    let started = Instant::now();
    let r = run_live(LiveOptions {
        cfg,
        strategy: Some(("probe".into(), engine::strategy::Params::default())),
        custom_strategy: None,
        record: None,
        duration: Some(Duration::from_secs(600)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: Some(Box::new(move |t| t.frames >= trades)),
    })
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let w2w = sim.probe_summary();
    let us = |ns: u64| ns as f64 / 1e3;
    let t2w = r.latency.get(Stage::TickToWire).percentiles();
    let t2o = r.latency.get(Stage::TickToOrder).percentiles();
    let session = r.session.unwrap_or_default();
    println!(
        "wire-to-wire, ws:// loopback, probe strategy, {label}: {} trades in {secs:.1} s (~{:.0} trades/s), {} orders placed, {} risk denials, {} refused\n  \
         simulator, trade frame written -> probe order read: {} samples, p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us\n  \
         engine tick_to_wire (frame received -> order written): p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us\n  \
         engine tick_to_order (frame received -> order emitted by the core): p50 {:.1} us, p99 {:.1} us",
        r.core.trades,
        r.core.trades as f64 / secs,
        session.placed,
        r.core.orders_denied,
        session.refused_disconnected + session.refused_journal,
        w2w.count,
        us(w2w.p50),
        us(w2w.p90),
        us(w2w.p99),
        us(w2w.p999),
        us(w2w.max),
        us(t2w.p50),
        us(t2w.p90),
        us(t2w.p99),
        us(t2w.p999),
        us(t2w.max),
        us(t2o.p50),
        us(t2o.p99),
    );
    println!("  {}", hiccups_line(&r));
}

/// The machine's hiccups on the core's CPU in the same run (its idle polls; `tools::hiccups`).
fn hiccups_line(r: &tools::runtime::RunReport) -> String {
    let h = &r.machine_hiccups;
    format!(
        "machine hiccups on the core's CPU, same run: p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.1} us, {} gaps over 100 us; time-weighted delay p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us",
        h.p50 as f64 / 1e3,
        h.p99 as f64 / 1e3,
        h.p999 as f64 / 1e3,
        h.max as f64 / 1e3,
        h.over_100us,
        h.delay.p50 as f64 / 1e3,
        h.delay.p99 as f64 / 1e3,
        h.delay.p999 as f64 / 1e3,
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let only_orders = std::env::args().any(|a| a == "orders");
    let only_io = std::env::args().any(|a| a == "io");
    if full && only_io {
        io_throughput(2_000_000);
    } else if full && only_orders {
        let scale: u64 = std::env::var("TICKLINE_W2W_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        wire_to_wire("1,000 trades/s", 2_130, 2_130 * scale);
        wire_to_wire("10,000 trades/s", 21_300, 21_300 * scale);
    } else if full {
        io_throughput(2_000_000);
        for spin in [false, true] {
            wire_to_core(
                "fixed 20,000 frames/s",
                SimPace::Rate(20_000),
                220_000,
                spin,
            );
            wire_to_core("full speed", SimPace::Asap, 220_000, spin);
        }
    } else {
        io_throughput(20_000);
        wire_to_core("smoke, 5,000 frames/s", SimPace::Rate(5_000), 2_000, false);
        wire_to_wire("smoke, ~1,000 trades/s", 2_130, 2_000);
    }
}
