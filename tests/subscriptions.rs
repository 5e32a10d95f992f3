//! Live SUBSCRIBE / UNSUBSCRIBE at run time against the venue simulator (real sockets).

use engine::event::EventKind;
use engine::ring::{event_ring, OnFull};
use engine::symbol::SymbolTable;
use feeds::binance::market::BinanceDecoder;
use feeds::io::{command_channel, FeedSpec, IoCommand, IoConfig, IoLoop, IoNotice, IoShared};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::clock::MonoClock;
use venue_sim::gen::GenConfig;
use venue_sim::{SimConfig, SimPace, SimSource, VenueSim};

#[derive(Default, Debug)]
struct Seen {
    trades: u64,
    tickers: u64,
}

fn drain(rx: &mut rtrb::Consumer<engine::event::Event>, seen: &mut Seen) {
    while let Ok(ev) = rx.pop() {
        match ev.kind {
            EventKind::Trade(_) => seen.trades += 1,
            EventKind::BookTicker(_) => seen.tickers += 1,
            _ => {}
        }
    }
}

/// Drains for `d`, returning what arrived in that window.
fn window(rx: &mut rtrb::Consumer<engine::event::Event>, d: Duration) -> Seen {
    let mut seen = Seen::default();
    let end = Instant::now() + d;
    while Instant::now() < end {
        drain(rx, &mut seen);
        std::thread::sleep(Duration::from_millis(5));
    }
    seen
}

#[test]
fn streams_are_subscribed_and_unsubscribed_at_run_time() {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 1_000_000,
            seed: 8,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(5_000),
        ..SimConfig::default()
    })
    .unwrap();
    let mut symbols = SymbolTable::new();
    symbols.intern("BTCUSDT").unwrap();
    let (tx, mut rx) = event_ring(1 << 16, OnFull::Drop);
    let (cmd_tx, cmd_rx) = command_channel(16);
    let shared = Arc::new(IoShared::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let io = {
        let (shared, stop) = (shared.clone(), stop.clone());
        let cfg = IoConfig {
            feeds: vec![FeedSpec {
                conn_id: 1,
                url: format!("{}/ws", sim.ws_url()),
                subscribe: vec!["btcusdt@trade".into(), "btcusdt@bookTicker".into()],
                ..FeedSpec::default()
            }],
            ..IoConfig::default()
        };
        std::thread::spawn(move || {
            let mut rejected = Vec::new();
            let mut notice = |n: IoNotice| {
                if let IoNotice::CommandRejected { .. } = n {
                    rejected.push(n.to_string());
                }
            };
            let report = IoLoop::new(cfg, BinanceDecoder::new(symbols), tx, MonoClock::now)
                .commands(cmd_rx)
                .run(&shared, &stop, &mut notice);
            (report, rejected)
        })
    };
    // Both streams flow.
    let before = window(&mut rx, Duration::from_millis(600));
    assert!(before.trades > 50 && before.tickers > 10, "{before:?}");

    // UNSUBSCRIBE trades: after the request has had time to land, no trade arrives, tickers go on.
    cmd_tx
        .send(IoCommand::Unsubscribe {
            conn_id: 1,
            streams: vec!["btcusdt@trade".into()],
        })
        .unwrap();
    let _settle = window(&mut rx, Duration::from_millis(300));
    let without = window(&mut rx, Duration::from_millis(600));
    assert_eq!(without.trades, 0, "{without:?}");
    assert!(without.tickers > 10, "{without:?}");

    // SUBSCRIBE again: trades are back.
    cmd_tx
        .send(IoCommand::Subscribe {
            conn_id: 1,
            streams: vec!["btcusdt@trade".into()],
        })
        .unwrap();
    let _settle = window(&mut rx, Duration::from_millis(300));
    let again = window(&mut rx, Duration::from_millis(600));
    assert!(again.trades > 50, "{again:?}");

    // A command for a connection that does not exist is rejected, not ignored.
    cmd_tx
        .send(IoCommand::Subscribe {
            conn_id: 9,
            streams: vec!["btcusdt@trade".into()],
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let (report, rejected) = io.join().unwrap();
    assert_eq!(report.totals.decode_errors, 0);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let s = sim.stats();
    assert!(s.unsubscriptions >= 1, "{s:?}");
    assert!(s.subscriptions >= 3, "two at the start, one again: {s:?}");
    assert_eq!(s.control_errors, 0);
}
