//! The live engine against the loopback venue simulator over real sockets: ws://, wss://,
//! reconnects, idle timeouts and hostile servers. Every test is bounded in time.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tools::config::Config;
use tools::live::{run_live, DoneFn, LiveOptions};
use tools::runtime::RunReport;
use venue_sim::gen::GenConfig;
use venue_sim::{Faults, SimConfig, SimPace, SimSource, VenueSim};

fn generated(events: u64) -> SimSource {
    SimSource::Generated(GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events,
        seed: 21,
        start_ns: 1_000_000_000,
    })
}

fn sim(source: SimSource, pace: SimPace, tls: bool, faults: Faults) -> VenueSim {
    VenueSim::start(SimConfig {
        source,
        pace,
        tls,
        faults,
        ..SimConfig::default()
    })
    .expect("start the simulator")
}

fn engine_cfg(sim: &VenueSim) -> Config {
    let mut cfg = Config::default();
    cfg.venue.ws_url = sim.ws_url();
    cfg.venue.rest_url = sim.http_url();
    cfg.venue.ca_file = sim.cert_path().map(|p| p.display().to_string());
    cfg.engine.io_cpu = Some(-1);
    cfg.engine.core_cpu = Some(-1);
    cfg.engine.idle = "backoff".into();
    cfg.net.reconnect_initial_ms = 50;
    cfg.net.reconnect_max_ms = 400;
    cfg
}

fn run(cfg: Config, max: Duration, done: Option<DoneFn>) -> RunReport {
    cfg.validate().unwrap();
    run_live(LiveOptions {
        cfg,
        strategy: Some(("naive".into(), Default::default())),
        custom_strategy: None,
        record: None,
        duration: Some(max),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done,
    })
    .expect("live run")
}

fn every_frame_arrives(tls: bool) {
    let events = 20_000;
    let venue = sim(generated(events), SimPace::Asap, tls, Faults::default());
    let cfg = engine_cfg(&venue);
    let r = run(
        cfg,
        Duration::from_secs(60),
        Some(Box::new(move |t| t.frames >= events)),
    );
    let io = r.io.unwrap();
    let s = venue.stats();
    assert_eq!(r.frames, events, "every frame the venue sent arrived");
    assert_eq!(s.frames_sent, events);
    assert_eq!(r.decode.decode_errors, 0);
    assert_eq!(
        r.core.book_syncs, 1,
        "the book synced from the venue's REST snapshot"
    );
    assert_eq!(r.core.book_gaps, 0, "diffs arrived complete and in order");
    assert_eq!(r.core.book_crossed, 0);
    assert_eq!(r.ring.dropped, 0);
    assert_eq!((io.connects, io.disconnects), (1, 0));
    assert!(r.latency.get(engine::latency::Stage::Decode).len() == events);
}

#[test]
fn ws_every_frame_arrives_decoded_in_order() {
    every_frame_arrives(false);
}

#[test]
fn wss_every_frame_arrives_decoded_in_order() {
    every_frame_arrives(true);
}

#[test]
fn dropped_connections_are_reconnected_resubscribed_and_resynced() {
    let venue = sim(
        generated(1_000_000),
        SimPace::Rate(5_000),
        false,
        Faults {
            drop_every: Some(Duration::from_millis(700)),
            ..Faults::default()
        },
    );
    let mut cfg = engine_cfg(&venue);
    cfg.venue.subscribe = "messages".into(); // /ws + SUBSCRIBE, re-sent after each reconnect
    let r = run(
        cfg,
        Duration::from_secs(30),
        Some(Box::new(|t| t.connects >= 3)),
    );
    let io = r.io.unwrap();
    assert!(io.connects >= 3, "{io:?}");
    assert!(io.disconnects >= 2, "{io:?}");
    assert!(io.reconnect_attempts >= 2, "{io:?}");
    // Down and up again reach the core (and every strategy) each time...
    assert!(r.core.connection_changes >= 5, "{:?}", r.core);
    // ...and the book is rebuilt from a fresh snapshot after each reconnect.
    assert!(r.core.book_syncs >= 2, "{:?}", r.core);
    assert!(
        venue.stats().subscriptions >= 3 * 3,
        "SUBSCRIBE re-sent on every reconnect"
    );
    assert_eq!(r.decode.decode_errors, 0);
}

#[test]
fn a_stalled_server_is_detected_by_the_idle_timeout() {
    let venue = sim(
        generated(1_000_000),
        SimPace::Rate(2_000),
        false,
        Faults {
            stall_after: Some(Duration::from_millis(300)),
            ..Faults::default()
        },
    );
    let mut cfg = engine_cfg(&venue);
    cfg.net.idle_timeout_ms = 300;
    cfg.net.heartbeat_ms = 100;
    let r = run(
        cfg,
        Duration::from_secs(20),
        Some(Box::new(|t| t.idle_timeouts >= 1 && t.connects >= 2)),
    );
    let io = r.io.unwrap();
    assert!(io.idle_timeouts >= 1, "{io:?}");
    assert!(
        io.connects >= 2,
        "reconnected after the idle timeout: {io:?}"
    );
}

#[test]
fn hostile_frames_are_counted_and_the_engine_keeps_running() {
    let venue = sim(
        generated(1_000_000),
        SimPace::Rate(20_000),
        false,
        Faults {
            garbage_every: Some(500),
            invalid_utf8_every: Some(1_500),
            ..Faults::default()
        },
    );
    let cfg = engine_cfg(&venue);
    let r = run(
        cfg,
        Duration::from_secs(20),
        Some(Box::new(|t| t.frames >= 6_000 && t.protocol_errors >= 2)),
    );
    let io = r.io.unwrap();
    assert!(
        r.decode.decode_errors >= 5,
        "garbage text frames are decode errors: {:?}",
        r.decode
    );
    assert!(
        io.protocol_errors >= 2,
        "invalid UTF-8 is a protocol error: {io:?}"
    );
    assert!(
        io.connects >= 3,
        "the engine reconnects after each protocol error: {io:?}"
    );
    assert!(r.frames >= 6_000);
}

#[test]
fn oversized_frames_are_refused_without_allocating_them() {
    let venue = sim(
        generated(1_000_000),
        SimPace::Rate(10_000),
        false,
        Faults {
            oversized_every: Some(1_000),
            oversized_bytes: 2 << 20,
            ..Faults::default()
        },
    );
    let cfg = engine_cfg(&venue); // max_frame_size 1 MiB
    let r = run(
        cfg,
        Duration::from_secs(20),
        Some(Box::new(|t| t.protocol_errors >= 2)),
    );
    let io = r.io.unwrap();
    assert!(io.protocol_errors >= 2, "{io:?}");
    assert!(io.connects >= 2, "{io:?}");
}

#[test]
fn an_untrusted_certificate_is_a_clear_error_and_retried() {
    let venue = sim(
        generated(1_000),
        SimPace::Rate(1_000),
        true,
        Faults::default(),
    );
    let mut cfg = engine_cfg(&venue);
    cfg.venue.ca_file = None; // only the web PKI roots: the self-signed cert is not trusted
    cfg.venue.exchange_info = false;
    let r = run(
        cfg,
        Duration::from_secs(20),
        Some(Box::new(|t| t.tls_errors >= 2)),
    );
    let io = r.io.unwrap();
    assert!(io.tls_errors >= 2, "{io:?}");
    assert_eq!(io.connects, 0);
    assert_eq!(r.frames, 0);
    assert!(venue.stats().handshakes_failed >= 2);
}

/// A trade-only config subscribes no depth stream: no REST depth snapshot is ever asked for,
/// not at the first connect and not after the reconnects (before: one per connect, for a book
/// that could never sync).
#[test]
fn trade_only_config_requests_no_snapshot() {
    let venue = sim(
        generated(1_000_000),
        SimPace::Rate(5_000),
        false,
        Faults {
            drop_every: Some(Duration::from_millis(400)),
            ..Faults::default()
        },
    );
    let mut cfg = engine_cfg(&venue);
    cfg.venue.streams = vec!["trade".into()];
    cfg.venue.exchange_info = false; // so every REST request the venue sees would be a snapshot
    let r = run(
        cfg,
        Duration::from_secs(30),
        Some(Box::new(|t| t.connects >= 2 && t.frames >= 200)),
    );
    let io = r.io.unwrap();
    assert!(io.connects >= 2, "{io:?}");
    assert!(r.frames >= 200 && r.core.trades > 0, "{:?}", r.core);
    assert_eq!(r.core.depth_levels, 0, "only trades were subscribed");
    assert_eq!(r.core.resync_requests, 0, "{:?}", r.core);
    assert_eq!(r.core.book_syncs, 0);
    assert_eq!(venue.stats().rest_requests, 0, "no snapshot was fetched");
}

/// A symbol idle until `start-trading` is not subscribed: no snapshot for it either.
#[test]
fn idle_symbols_request_no_snapshot() {
    let venue = sim(generated(20_000), SimPace::Asap, false, Faults::default());
    let mut cfg = engine_cfg(&venue);
    cfg.venue.symbols = vec!["BTCUSDT".into(), "ETHUSDT".into()];
    cfg.venue.trade = Some(vec!["BTCUSDT".into()]);
    cfg.venue.exchange_info = false;
    let r = run(
        cfg,
        Duration::from_secs(60),
        Some(Box::new(|t| t.frames >= 20_000)),
    );
    assert_eq!(r.frames, 20_000);
    assert_eq!(r.core.book_syncs, 1, "{:?}", r.core);
    // BTCUSDT's first sync (and another try for each snapshot too old to bridge), none for
    // ETHUSDT.
    assert_eq!(
        r.core.resync_requests,
        1 + r.core.snapshots_rejected,
        "{:?}",
        r.core
    );
    assert!(venue.stats().rest_requests <= r.core.resync_requests);
}

/// The engine refuses to start (before any socket is opened) with an order API URL that
/// would carry the API key and signed orders unencrypted to a remote host, even for a caller
/// that skipped `Config::validate`.
#[test]
fn plaintext_orders_url_to_remote_host_is_refused_before_any_socket() {
    let venue = sim(generated(1_000), SimPace::Asap, false, Faults::default());
    let mut cfg = engine_cfg(&venue);
    cfg.orders.enabled = true;
    cfg.orders.url = "ws://192.0.2.1:9443/ws-api/v3".into(); // TEST-NET-1: not loopback
    let e = run_live(LiveOptions {
        cfg,
        strategy: None,
        custom_strategy: None,
        record: None,
        duration: Some(Duration::from_secs(5)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: None,
    })
    .expect_err("plaintext to a remote host must be refused");
    let e = format!("{e:#}");
    assert!(
        e.contains("orders.url") && e.contains("orders.allow_plaintext"),
        "{e}"
    );
    let s = venue.stats();
    assert_eq!(
        (s.rest_requests, s.subscriptions),
        (0, 0),
        "nothing was started"
    );
}

#[test]
fn a_second_feed_table_runs_its_own_connection_and_its_symbols_sync() {
    // [venue] streams BTCUSDT (combined-stream URL), a [[feeds]] table ETHUSDT on a second
    // connection (/ws + the adapter's SUBSCRIBE) to the same simulator: two connections in
    // one I/O loop, each symbol's book synced from a REST snapshot.
    let venue = sim(
        SimSource::Generated(GenConfig {
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            events: 1_000_000,
            seed: 5,
            start_ns: 1_000_000_000,
        }),
        SimPace::Rate(5_000),
        false,
        Faults::default(),
    );
    let mut cfg = engine_cfg(&venue);
    let toml = format!(
        "[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ETHUSDT\"]\nws_url = \"{}/ws\"\nconn_id = 5\n",
        venue.ws_url()
    );
    cfg.feeds = Config::parse(&toml).unwrap().feeds;
    let r = run(
        cfg,
        Duration::from_secs(30),
        Some(Box::new(|t| t.frames >= 3_000)),
    );
    let io = r.io.unwrap();
    assert_eq!((io.connects, io.disconnects), (2, 0), "{io:?}");
    assert_eq!(r.decode.decode_errors, 0);
    assert_eq!(r.core.book_syncs, 2, "both books synced: {:?}", r.core);
    assert_eq!(r.core.book_gaps, 0);
    let s = venue.stats();
    assert!(
        s.subscriptions >= 1,
        "the second connection subscribed: {s:?}"
    );
}
