//! Crash recovery end to end: the engine trades live against the venue simulator (real
//! WebSocket order API on loopback), is killed with SIGKILL twenty times at arbitrary moments and
//! restarted on the same journal, then runs once more without a strategy and stops cleanly.
//!
//! Afterwards the venue's ledger (every order it received, every fill it made) must agree with
//! the engine's journal: the same set of fills (client id, trade id, price, quantity), every
//! client order id received at most once, and nothing left open.
//!
//! Client ids must stay unique when the journal cannot vouch for them: restarts on the journal
//! cut at every record boundary and moved aside, venue ids ahead of the engine's clock (the venue
//! check moves numbering past them), and a second engine on a journal in use (refused with the
//! holder's pid). The simulator's ledger keeps every client id it received; none may repeat.
//!
//! The engine runs in a child process (this test binary, re-run as `child_engine`), so the kill is
//! a real SIGKILL of a process with pinned-thread machinery, sockets and a journal open.

use feeds::orders::journal::{recover, JournalReader, JournalRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::orders::{fixed, journal_fills, venue_fills};
use tools::config::Config;
use tools::live::{run_live, LiveOptions};
use venue_sim::{LedgerEntry, SimConfig, SimPace, SimSource, VenueSim};

/// sma_cross that trades on nearly every few trades.
const SMA: &str = "fast = 2\nslow = 4\nqty = \"0.001\"";

/// SIGKILLs in the crash drill.
const ROUNDS: u64 = 20;

const CHILD_CONFIG_ENV: &str = "TICKLINE_CRASH_CHILD_CONFIG";
const CHILD_DURATION_ENV: &str = "TICKLINE_CRASH_CHILD_SECONDS";

/// The engine, when this binary is started as the child. A no-op in a normal test run.
#[test]
fn child_engine() {
    let Ok(path) = std::env::var(CHILD_CONFIG_ENV) else {
        return;
    };
    let secs: f64 = std::env::var(CHILD_DURATION_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20.0);
    // The engine's log lines on stderr, as `tickline run` writes them.
    let _log = tools::logging::init(&tools::logging::LogOptions::default()).unwrap();
    let cfg = Config::load(Path::new(&path)).unwrap();
    let strategy =
        (cfg.strategy.name != "none").then(|| (cfg.strategy.name.clone(), cfg.strategy_params()));
    let r = run_live(LiveOptions {
        cfg,
        strategy,
        custom_strategy: None,
        record: None,
        duration: Some(Duration::from_secs_f64(secs)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: None,
    })
    .unwrap();
    eprint!("{}", r.to_text());
}

fn write_config(dir: &Path, sim: &VenueSim, strategy: &str, params: &str) -> PathBuf {
    write_config_with(dir, sim, strategy, params, "")
}

fn write_config_with(
    dir: &Path,
    sim: &VenueSim,
    strategy: &str,
    params: &str,
    orders_extra: &str,
) -> PathBuf {
    let key = testkit::venue_key_file(dir);
    let text = format!(
        r#"
[engine]
io_cpu = -1
core_cpu = -1
idle = "backoff"

[venue]
ws_url = "{ws}"
rest_url = "{http}"
symbols = ["BTCUSDT"]
streams = ["trade", "bookTicker"]

[strategy]
name = "{strategy}"
[strategy.params]
{params}

[orders]
enabled = true
url = "{ws}/ws-api/v3"
credentials_file = "{key}"
journal = "{journal}"
fsync = "never"
ack_timeout_ms = 2000
{orders_extra}

[risk]
rate_per_sec = 10000
burst = 10000
max_position = "1000"
max_open_orders = 1000
"#,
        ws = sim.ws_url(),
        http = sim.http_url(),
        key = key.display(),
        journal = dir.join("orders.tlj").display(),
    );
    let path = dir.join(format!("{strategy}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_engine(config: &Path, seconds: f64) -> Child {
    testkit::orders::test_child(
        "child_engine",
        &[
            (CHILD_CONFIG_ENV, config.as_os_str()),
            (CHILD_DURATION_ENV, seconds.to_string().as_ref()),
        ],
    )
    .spawn()
    .unwrap()
}

#[test]
fn sigkill_while_trading_loses_no_fill_and_sends_no_order_twice() {
    let started = Instant::now();
    let dir = testkit::TempDir::new("crash");
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 400_000,
            seed: 99,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(4_000),
        ledger: Some(dir.path().join("ledger.jsonl")),
        ..SimConfig::default()
    })
    .unwrap();
    let trading = write_config(dir.path(), &sim, "sma_cross", SMA);
    let settle = write_config(dir.path(), &sim, "none", "");

    // Twenty lives that end in SIGKILL, each after the venue has filled more of our orders, at a
    // moment that varies from round to round. Each restart also proves the journal's lock went
    // with the killed process (a held lock would refuse the next life).
    for round in 0..ROUNDS {
        let before = venue_fills(&sim);
        let mut child = spawn_engine(&trading, 20.0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while venue_fills(&sim) < before + 20 {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "round {round}: no fills from the engine in time\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(37 * (round % 8) + 11));
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                out.status.signal(),
                Some(9),
                "round {round}: {:?}",
                out.status
            );
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(line) = stderr.lines().find(|l| l.contains("tickline::journal:")) {
            eprintln!("round {round}: {line}");
        }
    }

    // One more life without a strategy: it reconciles what the last kill left and stops cleanly.
    let child = spawn_engine(&settle, 2.0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "settling run failed:\n{stderr}");
    for line in stderr
        .lines()
        .filter(|l| l.contains("tickline::journal:") || l.contains("tickline::orders:"))
    {
        eprintln!("settling run: {line}");
    }
    let restarts = stderr.matches("open orders to reconcile").count();
    assert_eq!(
        restarts, 1,
        "the settling run recovered the journal:\n{stderr}"
    );

    // The venue's word.
    let ledger = sim.ledger().unwrap();
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    let mut venue: BTreeMap<(String, u64), (i64, i64)> = BTreeMap::new();
    for e in &ledger {
        match e {
            LedgerEntry::Place {
                client_order_id: Some(c),
                ..
            } => *placed.entry(c.clone()).or_default() += 1,
            LedgerEntry::Place { .. } => panic!("an order without a client id: {e:?}"),
            LedgerEntry::Fill {
                client_order_id,
                trade_id,
                price,
                qty,
                ..
            } => {
                let dup = venue.insert(
                    (client_order_id.clone(), *trade_id),
                    (fixed(price), fixed(qty)),
                );
                assert!(dup.is_none(), "the venue reported a fill twice: {e:?}");
            }
        }
    }
    let twice: Vec<_> = placed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "client order ids sent more than once: {twice:?}"
    );
    assert!(placed.len() >= 100, "only {} orders placed", placed.len());
    assert!(venue.len() >= 100, "only {} fills", venue.len());

    // The engine's word: exactly the venue's fills, nothing more, nothing less.
    let journal = dir.path().join("orders.tlj");
    let engine = journal_fills(&journal);
    let missing: Vec<_> = venue.keys().filter(|k| !engine.contains_key(*k)).collect();
    let extra: Vec<_> = engine.keys().filter(|k| !venue.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "fills missing from the journal: {missing:?}; fills the venue never made: {extra:?}"
    );
    assert_eq!(engine, venue, "prices and quantities agree");
    // Every intent the venue never saw was settled too; nothing is left open.
    let rec = recover(&journal).unwrap();
    assert!(
        rec.open_orders.is_empty(),
        "orders left open after the settling run: {:?}",
        rec.open_orders
    );
    // Every order the venue received was intended first (and so numbered from the journal).
    let intended: BTreeSet<String> = {
        let bytes = std::fs::read(&journal).unwrap();
        JournalReader::new(&bytes)
            .unwrap()
            .filter_map(|e| match e.record {
                JournalRecord::Intent { client_id, .. } => Some(client_id.to_string()),
                _ => None,
            })
            .collect()
    };
    let unintended: Vec<_> = placed.keys().filter(|c| !intended.contains(*c)).collect();
    assert!(
        unintended.is_empty(),
        "orders sent without an intent: {unintended:?}"
    );
    // The engine's position is the venue's: the ledger's fills, each signed by the side its
    // order was intended with, net to the position the journal recovers.
    let sides: BTreeMap<String, engine::event::Side> = {
        let bytes = std::fs::read(&journal).unwrap();
        JournalReader::new(&bytes)
            .unwrap()
            .filter_map(|e| match e.record {
                JournalRecord::Intent { client_id, req, .. } => {
                    Some((client_id.to_string(), req.side))
                }
                _ => None,
            })
            .collect()
    };
    let venue_net: i64 = venue
        .iter()
        .map(|((client, _), (_, qty))| match sides[client] {
            engine::event::Side::Buy => *qty,
            engine::event::Side::Sell => -*qty,
        })
        .sum();
    let engine_net = rec
        .positions
        .iter()
        .find(|(sym, _)| sym == "BTCUSDT")
        .map_or(0, |(_, p)| p.qty);
    assert_eq!(
        engine_net, venue_net,
        "the journal's position equals the venue ledger's fills, signed by side"
    );
    eprintln!(
        "crash test: {} orders, {} fills, {} restarts, {:.1} s",
        placed.len(),
        venue.len(),
        ROUNDS + 1,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn supervised_traders_resume_from_the_journal_after_sigkill() {
    let dir = testkit::TempDir::new("resume");
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 400_000,
            seed: 7,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(4_000),
        ledger: Some(dir.path().join("ledger.jsonl")),
        ..SimConfig::default()
    })
    .unwrap();
    let naive = "chunks = 3\nbudget = \"300\"\nprofit_interval = \"0.0002\"";
    let cfg = write_config(dir.path(), &sim, "naive", naive);
    let journal = dir.path().join("orders.tlj");
    // Trade until the journal holds a state for every trader, then SIGKILL.
    let mut child = spawn_engine(&cfg, 20.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let states = recover(&journal)
            .map(|r| r.trader_states.len())
            .unwrap_or(0);
        if states == 3 {
            break;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no trader states journaled in time\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait().unwrap();
    let before = recover(&journal).unwrap();
    assert_eq!(before.trader_states.len(), 3);
    // The restarted engine hands every trader its journaled state back.
    let out = spawn_engine(&cfg, 1.0).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("tickline::journal: trader states restored")
            && stderr.contains("restored=3 total=3"),
        "{stderr}"
    );
    // And nothing was lost or sent twice on the way.
    let venue: BTreeSet<(String, u64)> = sim
        .ledger()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            LedgerEntry::Fill {
                client_order_id,
                trade_id,
                ..
            } => Some((client_order_id, trade_id)),
            LedgerEntry::Place { .. } => None,
        })
        .collect();
    let engine: BTreeSet<(String, u64)> = journal_fills(&journal).into_keys().collect();
    // The second life stopped with orders resting: fills after its stop are the venue's alone.
    assert!(
        engine.is_subset(&venue),
        "fills the venue never made: {:?}",
        engine.difference(&venue).collect::<Vec<_>>()
    );
}

#[test]
fn a_large_journal_is_compacted_at_start_and_its_history_kept() {
    use engine::event::{ClientOrderId, OrderRequest, OrderType, Side};
    use engine::fixed::{Price, Qty};
    use feeds::orders::journal::{FsyncPolicy, JournalWriter};
    let dir = testkit::TempDir::new("compact-run");
    let journal = dir.path().join("orders.tlj");
    {
        // More than 1 MiB of closed orders (an intent and a fill each).
        let mut w = JournalWriter::open(&journal, FsyncPolicy::Never).unwrap();
        for n in 1..=12_000u64 {
            let side = if n % 2 == 0 { Side::Buy } else { Side::Sell };
            let req = OrderRequest {
                side,
                price: Price(6_000_000_000_000 + n as i64 * 1_000_000),
                qty: Qty(100_000),
                order_type: OrderType::LimitIoc,
            };
            let id = ClientOrderId::new(ClientOrderId::NS_ENGINE, n);
            w.append(&JournalRecord::Intent {
                client_id: id,
                symbol: "BTCUSDT",
                req,
                ts_ns: n,
            })
            .unwrap();
            w.append(&JournalRecord::Fill {
                client_id: id,
                trade_id: n,
                price: req.price,
                qty: req.qty,
                fee: 3,
                ts_ns: n,
            })
            .unwrap();
        }
    }
    let before = recover(&journal).unwrap();
    let size = std::fs::metadata(&journal).unwrap().len();
    assert!(size > 1 << 20, "{size}");
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 50_000,
            seed: 3,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = write_config_with(dir.path(), &sim, "none", "", "journal_compact_mb = 1");
    let out = spawn_engine(&cfg, 0.5).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("tickline::journal: compacted"), "{stderr}");
    let after = recover(&journal).unwrap();
    assert_eq!(after.positions, before.positions);
    // Past every compacted id; the start journaled its own epoch after it.
    assert!(after.next_client_id > 12_001, "{}", after.next_client_id);
    assert!(std::fs::metadata(&journal).unwrap().len() < 4096);
    // The history is kept beside it, whole.
    let archived: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("orders.tlj.") && !name.ends_with(".lock")
        })
        .collect();
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert_eq!(archived[0].metadata().unwrap().len(), size);
}

/// Client ids the venue received (accepted or not), in order.
fn venue_placed(sim: &VenueSim) -> Vec<String> {
    sim.ledger()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            LedgerEntry::Place {
                client_order_id, ..
            } => Some(client_order_id.unwrap_or_default()),
            LedgerEntry::Fill { .. } => None,
        })
        .collect()
}

/// Client ids the venue received more than once.
fn sent_twice(placed: &[String]) -> Vec<(String, usize)> {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for c in placed {
        *n.entry(c.as_str()).or_default() += 1;
    }
    n.into_iter()
        .filter(|(_, k)| *k > 1)
        .map(|(c, k)| (c.to_string(), k))
        .collect()
}

fn trading_sim(dir: &testkit::TempDir, seed: u64) -> VenueSim {
    VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 400_000,
            seed,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(4_000),
        ledger: Some(dir.path().join("ledger.jsonl")),
        ..SimConfig::default()
    })
    .unwrap()
}

/// One life of the engine that ends by itself after `seconds`; its stderr.
fn run_life(config: &Path, seconds: f64, what: &str) -> String {
    let out = spawn_engine(config, seconds).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: the engine failed:\n{stderr}");
    stderr
}

#[test]
fn journal_cut_at_every_record_boundary_or_moved_aside_never_resends_a_client_id() {
    let started = Instant::now();
    let dir = testkit::TempDir::new("cut-every-boundary");
    let sim = trading_sim(&dir, 41);
    let trading = write_config(dir.path(), &sim, "sma_cross", SMA);
    let journal = dir.path().join("orders.tlj");

    // A first life trades until the venue filled a few orders, then dies (SIGKILL).
    let mut child = spawn_engine(&trading, 20.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while venue_fills(&sim) < 4 {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no fills from the first life in time\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait().unwrap();
    let full = std::fs::read(&journal).unwrap();
    let mut ends = vec![feeds::orders::journal::HEADER_LEN];
    let mut r = JournalReader::new(&full).unwrap();
    while r.next().is_some() {
        ends.push(r.offset() as usize);
    }
    assert!(ends.len() > 5, "only {} records", ends.len() - 1);

    // Restart on the journal cut at every record boundary (what a power cut under
    // fsync = "never" can leave), then once with the journal moved aside. Every life numbers
    // orders; the venue must never see one id twice.
    let mut cuts: Vec<Option<usize>> = ends.iter().rev().map(|&e| Some(e)).collect();
    cuts.push(None);
    let (mut raised, mut lives) = (0, 0);
    for cut in cuts {
        match cut {
            Some(end) => std::fs::write(&journal, &full[..end]).unwrap(),
            None => std::fs::rename(&journal, dir.path().join("orders.tlj.aside")).unwrap(),
        }
        let stderr = run_life(&trading, 0.5, &format!("journal cut at {cut:?}"));
        lives += 1;
        raised += usize::from(stderr.contains("numbering moves to"));
        let placed = venue_placed(&sim);
        let twice = sent_twice(&placed);
        assert!(
            twice.is_empty(),
            "journal cut at {cut:?}: client ids sent twice: {twice:?}\n{stderr}"
        );
    }
    let placed = venue_placed(&sim);
    assert!(placed.len() > 20, "only {} orders placed", placed.len());
    eprintln!(
        "cut journal: {} records, {lives} restarts, {} orders, 0 sent twice, venue check moved numbering in {raised} lives, {:.1} s",
        ends.len() - 1,
        placed.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn venue_ids_beyond_the_next_number_move_numbering_past_them() {
    use engine::event::ClientOrderId;
    use feeds::orders::journal::{FsyncPolicy, JournalWriter};
    let dir = testkit::TempDir::new("venue-check");
    let sim = trading_sim(&dir, 5);
    let trading = write_config(dir.path(), &sim, "sma_cross", SMA);
    let journal = dir.path().join("orders.tlj");
    // A journal from a clock far ahead: the first life numbers in an epoch the next start's
    // clock will not reach.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ahead = ClientOrderId::epoch_of_unix(now_s) + 100_000;
    {
        let mut w = JournalWriter::open(&journal, FsyncPolicy::Never).unwrap();
        w.append(&JournalRecord::NextClientId {
            next: ClientOrderId::engine_number(ahead, 1),
        })
        .unwrap();
    }
    let first = run_life(&trading, 1.5, "first life");
    let seen = venue_placed(&sim);
    assert!(!seen.is_empty(), "the first life placed nothing\n{first}");
    let epochs = |ids: &[String]| -> Vec<u64> {
        ids.iter()
            .map(|c| ClientOrderId::parse(c).unwrap().epoch())
            .collect()
    };
    let top = *epochs(&seen).iter().max().unwrap();
    assert!(top > ahead, "{seen:?}");
    // The journal is moved aside: the next start's own epoch (now) is far below the venue's
    // ids. The venue check finds them and moves numbering to the epoch after them.
    std::fs::rename(&journal, dir.path().join("orders.tlj.aside")).unwrap();
    let second = run_life(&trading, 1.5, "second life");
    let floor = ClientOrderId::new(
        ClientOrderId::NS_ENGINE,
        ClientOrderId::engine_number(top + 1, 1),
    );
    assert!(
        second.contains(&format!("numbering moves to {floor}")),
        "{second}"
    );
    assert!(
        second.contains("venue id check moved numbering 1 times"),
        "{second}"
    );
    let all = venue_placed(&sim);
    let later = &all[seen.len()..];
    assert!(
        !later.is_empty(),
        "the second life placed nothing\n{second}"
    );
    assert!(
        epochs(later).iter().all(|&e| e > top),
        "ids at or below the venue's: {later:?}"
    );
    assert!(sent_twice(&all).is_empty(), "{:?}", sent_twice(&all));
    // The floor is journaled: a third start numbers past it without asking.
    let rec = recover(&journal).unwrap();
    assert!(
        rec.next_client_id >= floor.number(),
        "{}",
        rec.next_client_id
    );
}

#[test]
fn second_engine_on_the_same_journal_is_refused_with_the_holders_pid() {
    let dir = testkit::TempDir::new("two-engines");
    let sim = trading_sim(&dir, 8);
    let trading = write_config(dir.path(), &sim, "sma_cross", SMA);
    let journal = dir.path().join("orders.tlj");
    let mut first = spawn_engine(&trading, 20.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while feeds::orders::journal::JournalLock::holder(&journal) != Some(first.id()) {
        if Instant::now() > deadline || first.try_wait().unwrap().is_some() {
            let _ = first.kill();
            let out = first.wait_with_output().unwrap();
            panic!(
                "the first engine never took the journal's lock\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = spawn_engine(&trading, 2.0).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    first.kill().unwrap();
    let _ = first.wait().unwrap();
    assert!(!second.status.success(), "the second engine ran:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "is in use by another engine (pid {} holds the lock",
            first.id()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("order session"),
        "it never traded:\n{stderr}"
    );
    let placed = venue_placed(&sim);
    assert!(sent_twice(&placed).is_empty(), "{:?}", sent_twice(&placed));
}
