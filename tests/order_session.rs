//! The order session against the venue simulator over real loopback WebSockets, as the strategy
//! sees it: each order gets one acknowledgement and one final state even though the venue says
//! both twice (the request's reply and the execution report), a venue refusal reaches the order
//! it belongs to, and an order sent while the order API is unreachable is refused at once
//! (never silently dropped).
//!
//! The simulator runs in its strict default (issue #15): it verifies keys, signatures and
//! timestamps, refuses `userDataStream.subscribe` without `session.logon`, and sends
//! `executionReport`s only to a connection that subscribed the account's user data stream. So
//! "2 duplicates dropped" below means the reports did arrive (HMAC keys: through the signed
//! `userDataStream.subscribe.signature`; Ed25519 with logon: through the plain one).

use engine::event::{ClientOrderId, OrderRequest, OrderType, RejectReason, Side, Trade};
use engine::fixed::{Price, Qty};
use engine::strategy::{Ctx, OrderUpdate, OrderUpdateKind, Strategy};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tools::config::Config;
use tools::live::{run_live, LiveOptions, StrategyFactory};
use venue_sim::{SimAuth, SimConfig, SimKey, SimPace, SimSource, VenueSim};

type Log = Arc<Mutex<Vec<(ClientOrderId, OrderUpdateKind)>>>;

/// On the first trade: a resting buy 10 % under the market (canceled once accepted) and a buy
/// whose price is off the tick (the venue refuses it).
struct Script {
    log: Log,
    sent: bool,
}

const TICK: i64 = 1_000_000; // 0.01, the simulator's BTCUSDT tick

impl Strategy for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        if self.sent {
            return;
        }
        self.sent = true;
        let below = Price((t.price.0 * 9 / 10) / TICK * TICK);
        let req = |price| OrderRequest {
            side: Side::Buy,
            price,
            qty: Qty(100_000), // 0.001
            order_type: OrderType::LimitGtc,
        };
        ctx.submit(req(below)).unwrap();
        ctx.submit(req(Price(below.0 + TICK / 3))).unwrap();
    }

    fn on_order(&mut self, ctx: &mut Ctx<'_>, u: &OrderUpdate) {
        self.log.lock().unwrap().push((u.client_id, u.kind));
        if u.kind == OrderUpdateKind::Accepted {
            ctx.cancel(u.client_id).unwrap();
        }
    }
}

fn run(
    orders_url: Option<String>,
    name: &str,
    updates: usize,
) -> (Vec<(ClientOrderId, OrderUpdateKind)>, String) {
    run_with(orders_url, name, updates, |_, _| {})
}

/// A live config trading BTCUSDT's trade stream on `sim` with live orders (its order API, the
/// testkit's HMAC key, a journal in `dir`), unpinned and with the backoff idle mode.
fn live_orders_config(sim: &VenueSim, dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.engine.io_cpu = Some(-1);
    cfg.engine.core_cpu = Some(-1);
    cfg.engine.idle = "backoff".into();
    cfg.venue.ws_url = sim.ws_url();
    cfg.venue.rest_url = sim.http_url();
    cfg.venue.streams = vec!["trade".into()];
    cfg.orders.enabled = true;
    cfg.orders.url = format!("{}/ws-api/v3", sim.ws_url());
    cfg.orders.credentials_file = Some(testkit::venue_key_file(dir).display().to_string());
    cfg.orders.journal = dir.join("orders.tlj").display().to_string();
    cfg
}

fn run_with(
    orders_url: Option<String>,
    name: &str,
    updates: usize,
    tweak: impl FnOnce(&mut Config, &std::path::Path),
) -> (Vec<(ClientOrderId, OrderUpdateKind)>, String) {
    let dir = testkit::TempDir::new(name);
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 20_000,
            seed: 5,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        ..SimConfig::default()
    })
    .unwrap();
    let mut cfg = live_orders_config(&sim, dir.path());
    if let Some(url) = orders_url {
        cfg.orders.url = url;
    }
    tweak(&mut cfg, dir.path());
    cfg.validate().unwrap();
    let log: Log = Arc::default();
    let (l, done_log) = (log.clone(), log.clone());
    let r = run_live(LiveOptions {
        cfg,
        strategy: None,
        custom_strategy: Some(StrategyFactory(Box::new(move || {
            Box::new(Script {
                log: l.clone(),
                sent: false,
            })
        }))),
        record: None,
        duration: Some(Duration::from_secs(8)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: Some(Box::new(move |_| done_log.lock().unwrap().len() >= updates)),
    })
    .unwrap();
    let out = log.lock().unwrap().clone();
    (out, r.to_text())
}

/// The first two engine ids of a run: sequence 1 and 2 of its start epoch.
fn first_two(log: &[(ClientOrderId, OrderUpdateKind)]) -> [ClientOrderId; 2] {
    let mut ids: Vec<ClientOrderId> = log.iter().map(|(c, _)| *c).collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 2, "{log:?}");
    assert!(ids[0].epoch() > 0, "{log:?}");
    assert_eq!((ids[0].seq(), ids[1].seq()), (1, 2), "{log:?}");
    [ids[0], ids[1]]
}

#[test]
fn each_order_hears_one_ack_and_one_end_and_refusals_reach_their_order() {
    let (log, summary) = run(None, "session", 3);
    let [a, b] = first_two(&log);
    let of = |id| {
        log.iter()
            .filter(|(c, _)| *c == id)
            .map(|(_, k)| *k)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(a),
        vec![OrderUpdateKind::Accepted, OrderUpdateKind::Canceled],
        "{log:?}\n{summary}"
    );
    assert_eq!(
        of(b),
        vec![OrderUpdateKind::Rejected(RejectReason::Venue)],
        "{log:?}\n{summary}"
    );
    // The venue did say both things twice: the duplicates were dropped, and counted.
    let line = summary
        .lines()
        .find(|l| l.starts_with("order session"))
        .unwrap();
    assert!(line.contains("2 duplicates dropped"), "{line}");
    assert!(
        line.contains("user stream: 1 subscribed, 0 refused"),
        "{line}"
    );
}

#[test]
fn session_logon_takes_signing_off_the_order_path_and_orders_still_flow() {
    let (log, summary) = run_with(None, "logon", 3, |cfg, dir| {
        cfg.orders.credentials_file = Some(testkit::ed25519_key_file(dir).display().to_string());
        cfg.orders.session_logon = true;
    });
    let [a, _] = first_two(&log);
    let of = |id| {
        log.iter()
            .filter(|(c, _)| *c == id)
            .map(|(_, k)| *k)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(a),
        vec![OrderUpdateKind::Accepted, OrderUpdateKind::Canceled],
        "{log:?}\n{summary}"
    );
    let line = summary
        .lines()
        .find(|l| l.starts_with("order session"))
        .unwrap();
    assert!(line.contains("1 logons"), "{line}");
    // The reports came through the plain subscription, sent once the logon was accepted.
    assert!(line.contains("2 duplicates dropped"), "{line}");
    assert!(
        line.contains("user stream: 1 subscribed, 0 refused"),
        "{line}"
    );
    // An HMAC key cannot log on: refused at start-up, with the reason.
    let dir = testkit::TempDir::new("logon-hmac");
    let mut cfg = Config::default();
    cfg.orders.enabled = true;
    cfg.orders.session_logon = true;
    cfg.orders.credentials_file = Some(testkit::venue_key_file(dir.path()).display().to_string());
    cfg.orders.journal = dir.path().join("orders.tlj").display().to_string();
    cfg.engine.io_cpu = Some(-1);
    cfg.engine.core_cpu = Some(-1);
    cfg.venue.exchange_info = false;
    let e = run_live(LiveOptions {
        cfg,
        strategy: None,
        custom_strategy: None,
        record: None,
        duration: Some(Duration::from_millis(100)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: None,
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains("Ed25519"), "{e:#}");
}

#[test]
fn orders_while_the_order_api_is_unreachable_are_refused_not_lost() {
    // A port with nothing listening: the feed runs, the order API never opens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (log, summary) = run(Some(format!("ws://127.0.0.1:{port}/ws-api/v3")), "noapi", 2);
    let refused: Vec<_> = log.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        refused,
        vec![
            OrderUpdateKind::Rejected(RejectReason::Disconnected),
            OrderUpdateKind::Rejected(RejectReason::Disconnected)
        ],
        "{summary}"
    );
    assert!(summary.contains("refused: 2 disconnected"), "{summary}");
}

/// On the first trade: one order of each of `types`, 10 % under the market (a GTC rests, an IOC
/// expires unfilled).
struct Orders {
    log: Log,
    sent: bool,
    types: Vec<OrderType>,
}

impl Strategy for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        if self.sent {
            return;
        }
        self.sent = true;
        let below = Price((t.price.0 * 9 / 10) / TICK * TICK);
        for &order_type in &self.types {
            ctx.submit(OrderRequest {
                side: Side::Buy,
                price: below,
                qty: Qty(100_000),
                order_type,
            })
            .unwrap();
        }
    }

    fn on_order(&mut self, _ctx: &mut Ctx<'_>, u: &OrderUpdate) {
        self.log.lock().unwrap().push((u.client_id, u.kind));
    }
}

#[test]
fn a_refused_user_stream_is_reported_and_leaves_no_order_in_flight() {
    // The simulator knows the key but refuses it the user data stream (-2015, as Binance answers
    // a key without the permission): no executionReport will ever come.
    let mut keys = SimKey::test_keys();
    for k in &mut keys {
        k.user_data_stream = false;
    }
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 20_000,
            seed: 5,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        auth: SimAuth::Strict(keys),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = testkit::TempDir::new("refused-stream");
    let journal = dir.path().join("orders.tlj");
    let cfg = live_orders_config(&sim, dir.path());
    cfg.validate().unwrap();
    let log: Log = Arc::default();
    let (l, done_log) = (log.clone(), log.clone());
    let r = run_live(LiveOptions {
        cfg,
        strategy: None,
        custom_strategy: Some(StrategyFactory(Box::new(move || {
            Box::new(Orders {
                log: l.clone(),
                sent: false,
                types: vec![OrderType::LimitGtc, OrderType::LimitIoc],
            })
        }))),
        record: None,
        duration: Some(Duration::from_secs(8)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: Some(Box::new(move |_| done_log.lock().unwrap().len() >= 3)),
    })
    .unwrap();
    let log = log.lock().unwrap().clone();
    let summary = r.to_text();
    let [first, second] = first_two(&log);
    let of = |n| {
        let id = if n == 1 { first } else { second };
        log.iter()
            .filter(|(c, _)| *c == id)
            .map(|(_, k)| *k)
            .collect::<Vec<_>>()
    };
    // The GTC order could never learn its end: not sent.
    assert_eq!(
        of(1),
        vec![OrderUpdateKind::Rejected(RejectReason::NoUserStream)],
        "{log:?}\n{summary}"
    );
    // The IOC went, and its FULL reply settled it (expired, unfilled) without any report.
    assert_eq!(
        of(2),
        vec![OrderUpdateKind::Accepted, OrderUpdateKind::Canceled],
        "{log:?}\n{summary}"
    );
    let s = r.session.unwrap();
    assert_eq!(s.user_stream_refused, 1, "{summary}");
    assert_eq!(s.user_streams, 0, "{summary}");
    assert_eq!(s.refused_no_user_stream, 1, "{summary}");
    assert_eq!(s.settled_by_reply, 1, "{summary}");
    assert!(
        summary.contains("ERROR: the venue refused the user data stream"),
        "{summary}"
    );
    // Nothing is left in flight: the journal holds no open order.
    let rec = feeds::orders::journal::recover(&journal).unwrap();
    assert!(rec.open_orders.is_empty(), "{:?}", rec.open_orders);
}

#[test]
fn a_probe_run_matches_every_trade_with_one_order_and_settles_every_order() {
    // Issue #15's probe: 5,000 trades at about 1,000 a second, one IOC per trade, at most
    // 1,000 orders open (the risk limit): every trade gets its order and every order
    // ends, so none holds an in-flight slot.
    const TRADES: u64 = 5_000;
    let gen = |events| venue_sim::gen::GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events,
        seed: 15,
        start_ns: 1_000_000_000,
    };
    // The number of frames that holds exactly TRADES trades.
    let events = {
        let mut g = venue_sim::gen::FeedGenerator::new(gen(4 * TRADES)).unwrap();
        let mut buf = Vec::new();
        let (mut frames, mut trades) = (0u64, 0u64);
        while let Some(f) = g.next_frame(&mut buf) {
            if f.kind == venue_sim::gen::GenKind::Snapshot {
                continue;
            }
            frames += 1;
            trades += u64::from(f.kind == venue_sim::gen::GenKind::Trade);
            if trades == TRADES {
                break;
            }
        }
        frames
    };
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen(events)),
        pace: SimPace::Rate(events * 1_000 / TRADES),
        send_times_capacity: events as usize,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = testkit::TempDir::new("probe-run");
    let journal = dir.path().join("orders.tlj");
    let mut cfg = live_orders_config(&sim, dir.path());
    cfg.risk.rate_per_sec = 1_000_000;
    cfg.risk.burst = 1_000_000;
    cfg.risk.max_open_orders = 1_000;
    cfg.risk.max_position = "1000".into();
    cfg.validate().unwrap();
    // Ends once every trade has arrived and, a little later, every order has had its answer
    // (bounded: at most the run's duration).
    let all_in: Mutex<Option<std::time::Instant>> = Mutex::new(None);
    let r = run_live(LiveOptions {
        cfg,
        strategy: Some(("probe".into(), engine::strategy::Params::default())),
        custom_strategy: None,
        record: None,
        duration: Some(Duration::from_secs(60)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: Some(Box::new(move |t| {
            if t.frames < TRADES {
                return false;
            }
            let at = *all_in
                .lock()
                .unwrap()
                .get_or_insert_with(std::time::Instant::now);
            at.elapsed() >= Duration::from_secs(1)
        })),
    })
    .unwrap();
    let summary = r.to_text();
    let s = r.session.unwrap();
    assert_eq!(r.core.trades, TRADES, "{summary}");
    assert_eq!(r.core.orders_denied, 0, "{summary}");
    assert_eq!(s.placed, TRADES, "{summary}");
    assert_eq!(s.refused_disconnected + s.refused_journal, 0, "{summary}");
    assert_eq!(s.user_streams, 1, "{summary}");
    assert_eq!(s.user_stream_refused, 0, "{summary}");
    // The venue saw one probe order per trade, each named after its trade.
    assert_eq!(sim.probe_summary().count, TRADES, "{summary}");
    // Every order ended (the probes rest 10 % under the market, so each expired), once.
    assert_eq!(s.canceled + s.rejects, TRADES, "{summary}");
    let rec = feeds::orders::journal::recover(&journal).unwrap();
    assert!(rec.open_orders.is_empty(), "{} open", rec.open_orders.len());
}
