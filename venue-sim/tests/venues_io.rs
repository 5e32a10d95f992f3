//! Every venue through the engine's own I/O loop (`feeds::io::IoLoop`, each feed's
//! `FeedSpec { venue, .. }` picking the venue's adapter and decoder) against that venue's
//! simulator on loopback: events arrive, an engine `OrderBook` syncs (from the WebSocket
//! snapshot, or for Binance USD-M from `GET /fapi/v1/depth`) and applies every update without
//! a gap (OKX: every checksum the venue sends matches the engine's book), and after the
//! simulator drops the connection the link reconnects, resubscribes and the book resyncs.
//! Every wait is bounded.

use engine::book::{BookConfig, BookUpdate, OrderBook};
use engine::checksum::okx_book_checksum;
use engine::event::{Event, EventKind};
use engine::ring::{event_ring, OnFull};
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::io::{FeedSpec, IoConfig, IoLoop, IoReport, IoShared, ReconnectPolicy};
use feeds::net::{client_tls_config, TlsOptions};
use feeds::venue::{adapter, MarketDecoder, StreamKind};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use venue_sim::gen::GenConfig;
use venue_sim::venues::{MdSim, VenueOptions};
use venue_sim::{SimConfig, SimPace, SimSource};

const PATIENCE: Duration = Duration::from_secs(60);

fn now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn sim_cfg(symbol: &str) -> SimConfig {
    SimConfig {
        source: SimSource::Generated(GenConfig {
            symbols: vec![symbol.into()],
            events: 200_000,
            seed: 3,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(3_000),
        order_api: false,
        ..SimConfig::default()
    }
}

/// What the test's consumer saw.
#[derive(Debug, Default)]
struct Seen {
    events: u64,
    trades: u64,
    tickers: u64,
    ups: u64,
    downs: u64,
    syncs: u64,
    gaps: u64,
    crossed: u64,
    /// Depth messages applied while synced after the last sync.
    applied_since_sync: u64,
    /// Depth levels received on the current connection.
    depth_since_up: u64,
    checksums_matched: u64,
    checksum_mismatches: u64,
}

impl Seen {
    fn on(&mut self, book: &mut OrderBook, ev: &Event) {
        self.events += 1;
        let update = match &ev.kind {
            EventKind::Depth(l) => {
                self.depth_since_up += 1;
                book.apply_depth(l)
            }
            EventKind::Snapshot(l) => book.apply_snapshot(l),
            _ => BookUpdate::None,
        };
        match update {
            BookUpdate::Gap { .. } => self.gaps += 1,
            BookUpdate::Crossed => self.crossed += 1,
            BookUpdate::Synced => {
                self.syncs += 1;
                self.applied_since_sync = 0;
            }
            BookUpdate::Changed => self.applied_since_sync += 1,
            _ => {}
        }
        match &ev.kind {
            EventKind::BookChecksum(c)
                if book.is_synced() && book.last_update_id() == c.update_id =>
            {
                if okx_book_checksum(book) == c.checksum {
                    self.checksums_matched += 1;
                } else {
                    self.checksum_mismatches += 1;
                }
            }
            EventKind::Trade(_) => self.trades += 1,
            EventKind::BookTicker(_) => self.tickers += 1,
            EventKind::ConnectionUp(_) => {
                self.ups += 1;
                self.depth_since_up = 0;
            }
            EventKind::ConnectionDown(_) => {
                self.downs += 1;
                book.mark_disconnected();
            }
            _ => {}
        }
    }
}

/// Minimal HTTP GET on loopback: the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Runs the I/O loop on `url` for `venue`'s `symbol` (its depth, trades and top of book) and
/// feeds an engine book until `done(seen)` or the patience runs out; for a REST-snapshot venue
/// `rest` fetches the snapshot (once the book waits for one).
fn run_io(
    venue: Venue,
    url: String,
    symbol: &str,
    rest: Option<&dyn Fn() -> Option<String>>,
    done: &dyn Fn(&Seen) -> bool,
) -> (Seen, IoReport) {
    run_io_tls(venue, url, None, symbol, rest, done)
}

/// [`run_io`], trusting the certificate `ca` (a `wss://` URL).
fn run_io_tls(
    venue: Venue,
    url: String,
    ca: Option<&std::path::Path>,
    symbol: &str,
    rest: Option<&dyn Fn() -> Option<String>>,
    done: &dyn Fn(&Seen) -> bool,
) -> (Seen, IoReport) {
    let a = adapter(venue).expect("the venue's adapter");
    let mut symbols = SymbolTable::new();
    let sym = symbols.intern_on(venue, symbol).unwrap();
    let subscribe: Vec<String> = [StreamKind::Depth, StreamKind::Trade, StreamKind::BookTicker]
        .into_iter()
        .filter_map(|k| a.stream(k, symbol))
        .collect();
    let mut cfg = IoConfig {
        feeds: vec![FeedSpec {
            conn_id: 1,
            url,
            subscribe,
            venue,
        }],
        reconnect: ReconnectPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            ..ReconnectPolicy::default()
        },
        heartbeat: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(5),
        ..IoConfig::default()
    };
    if let Some(ca) = ca {
        let opts = TlsOptions {
            ca_file: Some(ca.to_path_buf()),
            webpki_roots: false,
        };
        cfg.conn.tls = Some(client_tls_config(&opts).unwrap());
    }
    let (tx, mut rx) = event_ring(1 << 16, OnFull::Block);
    let stop = Arc::new(AtomicBool::new(false));
    let io = {
        let (stop, symbols) = (stop.clone(), symbols.clone());
        thread::spawn(move || {
            let shared = IoShared::new(1);
            IoLoop::new(cfg, a.decoder(symbols), tx, now).run(&shared, &stop, &mut |_| {})
        })
    };
    let mut book = OrderBook::new(BookConfig::default());
    let mut seen = Seen::default();
    let mut snap_decoder = a.decoder(symbols);
    let mut snap_events = Vec::new();
    let mut fetched_at_down = u64::MAX;
    let start = Instant::now();
    while !done(&seen) && start.elapsed() < PATIENCE {
        match rx.pop() {
            Ok(ev) => seen.on(&mut book, &ev),
            Err(_) => thread::sleep(Duration::from_micros(200)),
        }
        // A REST-snapshot venue, as Binance documents: once diffs arrive (the book buffers
        // them), fetch a snapshot; again after each reconnect.
        if let Some(get) = rest {
            if !book.is_synced()
                && seen.ups > seen.downs
                && seen.depth_since_up > 0
                && fetched_at_down != seen.downs
            {
                if let Some(body) = get() {
                    snap_events.clear();
                    snap_decoder
                        .decode_snapshot(body.as_bytes(), sym, now(), &mut snap_events)
                        .expect("the simulator's REST snapshot decodes");
                    for ev in snap_events.drain(..) {
                        seen.on(&mut book, &ev);
                    }
                    fetched_at_down = seen.downs;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let report = io.join().unwrap();
    (seen, report)
}

/// Two syncs with a reconnect between them, and updates applied after the second.
fn resynced(s: &Seen) -> bool {
    s.downs >= 1 && s.syncs >= 2 && s.applied_since_sync >= 20 && s.trades >= 5
}

fn check(venue: Venue, seen: &Seen, report: &IoReport) {
    assert!(resynced(seen), "{venue}: {seen:?}");
    assert_eq!((seen.gaps, seen.crossed), (0, 0), "{venue}: {seen:?}");
    let c = &report.connections[0].counters;
    assert!(c.connects >= 2, "{venue}: reconnected: {c:?}");
    assert_eq!(c.decode_errors, 0, "{venue}: {c:?}");
}

fn md_sim(venue: Venue, symbol: &str, drop_every_frames: u64) -> MdSim {
    let mut cfg = sim_cfg(symbol);
    cfg.faults.drop_every_frames = Some(drop_every_frames);
    MdSim::start(cfg, VenueOptions::new(venue)).unwrap()
}

#[test]
fn okx_through_the_io_loop_syncs_checksums_match_and_resyncs_after_a_drop() {
    let sim = md_sim(Venue::Okx, "BTC-USDT", 700);
    let url = format!("{}/ws/v5/public", sim.ws_url());
    let (seen, report) = run_io(Venue::Okx, url, "BTC-USDT", None, &|s| {
        resynced(s) && s.checksums_matched >= 50
    });
    check(Venue::Okx, &seen, &report);
    assert_eq!(seen.checksum_mismatches, 0, "{seen:?}");
    assert!(seen.checksums_matched >= 50, "{seen:?}");
    let st = sim.stats();
    assert!(
        st.client_pings >= 1,
        "the loop's text pings were answered: {st:?}"
    );
}

#[test]
fn coinbase_through_the_io_loop_syncs_and_resyncs_after_a_drop() {
    let sim = md_sim(Venue::Coinbase, "BTC-USD", 700);
    let url = format!("{}/", sim.ws_url());
    let (seen, report) = run_io(Venue::Coinbase, url, "BTC-USD", None, &resynced);
    check(Venue::Coinbase, &seen, &report);
    assert!(seen.tickers > 0, "{seen:?}");
}

#[test]
fn bybit_spot_and_linear_through_the_io_loop_sync_and_resync_after_a_drop() {
    for (venue, path) in [
        (Venue::BybitSpot, "/v5/public/spot"),
        (Venue::BybitLinear, "/v5/public/linear"),
    ] {
        let sim = md_sim(venue, "BTCUSDT", 700);
        let url = format!("{}{path}", sim.ws_url());
        let (seen, report) = run_io(venue, url, "BTCUSDT", None, &resynced);
        check(venue, &seen, &report);
        assert!(sim.stats().client_pings >= 1, "{venue}: op ping answered");
    }
}

#[test]
fn binance_usdm_through_the_io_loop_syncs_from_rest_and_resyncs_after_a_drop() {
    let mut cfg = sim_cfg("BTCUSDT");
    cfg.faults.drop_every = Some(Duration::from_millis(1500));
    let sim = venue_sim::venues::binance_usdm::start(cfg).unwrap();
    let url = format!("{}/ws", sim.ws_url());
    let http = sim.http_addr();
    let get = move || http_get(http, "/fapi/v1/depth?symbol=BTCUSDT&limit=1000");
    let (seen, report) = run_io(Venue::BinanceUsdm, url, "BTCUSDT", Some(&get), &resynced);
    check(Venue::BinanceUsdm, &seen, &report);
}

#[test]
fn okx_over_tls_through_the_io_loop_syncs_and_resyncs_after_a_drop() {
    let mut cfg = sim_cfg("BTC-USDT");
    cfg.tls = true;
    cfg.faults.drop_every_frames = Some(700);
    let sim = MdSim::start(cfg, VenueOptions::new(Venue::Okx)).unwrap();
    let url = format!("{}/ws/v5/public", sim.ws_url());
    assert!(url.starts_with("wss://localhost:"), "{url}");
    let ca = sim.cert_path().unwrap().to_path_buf();
    let (seen, report) = run_io_tls(Venue::Okx, url, Some(&ca), "BTC-USDT", None, &resynced);
    check(Venue::Okx, &seen, &report);
    assert_eq!(seen.checksum_mismatches, 0, "{seen:?}");
}
