//! The scale-out cluster, simulated on one machine: three shard engines, separate processes
//! each owning one symbol with its own journal and `[health]` port (as three StatefulSet pods
//! would), trade one account at the venue simulator. One is SIGKILLed mid-trading and restarted
//! on its journal, as the StatefulSet would restart its pod.
//!
//! Checked: its readiness is gone while it is down (connection refused or 503) and back after the
//! restart; the other two keep trading through the outage (their venue fill counts rise) in the
//! same processes; every client order id reached the venue once, over all shards (the
//! `[orders] shard` numbering keeps shards starting in the same second apart); and each shard's
//! journal holds exactly the fills the venue's ledger made for its orders.
//!
//! The shards are this test binary re-run as `child_shard`, which runs the engine through
//! `tools::live::run_live_with_signals` with SIGTERM wired as `tickline run` wires it; at the end
//! each is stopped with a real SIGTERM (graceful, exit 0). Loopback only; every wait is bounded.

use engine::event::ClientOrderId;
use feeds::orders::journal::{recover, JournalReader, JournalRecord, TailState};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::orders::{fixed, journal_fills, test_child};
use tools::config::Config;
use tools::live::{run_live_with_signals, LiveOptions};
use venue_sim::{LedgerEntry, SimConfig, SimPace, SimSource, VenueSim};

const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "BNBUSDT"];
/// The shard that is killed.
const VICTIM: usize = 1;
/// Upper bound of any single wait.
const T: Duration = Duration::from_secs(20);
const CHILD_CONFIG_ENV: &str = "TICKLINE_SHARD_CHILD_CONFIG";

/// A shard engine, when this binary is started as the child: runs until SIGTERM (graceful, as
/// `tickline run`) or 60 s. A no-op in a normal test run.
#[test]
fn child_shard() {
    let Ok(path) = std::env::var(CHILD_CONFIG_ENV) else {
        return;
    };
    // The engine's log lines on stderr, as `tickline run` writes them.
    let _log = tools::logging::init(&tools::logging::LogOptions::default()).unwrap();
    let cfg = Config::load(Path::new(&path)).unwrap();
    let strategy = Some((cfg.strategy.name.clone(), cfg.strategy_params()));
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone()).unwrap();
    }
    let r = run_live_with_signals(
        LiveOptions {
            cfg,
            strategy,
            custom_strategy: None,
            record: None,
            duration: Some(Duration::from_secs(60)),
            status_every: None,
            stop: Arc::new(AtomicBool::new(false)),
            done: None,
        },
        Arc::new(AtomicBool::new(false)),
        term,
    )
    .unwrap();
    eprint!("{}", r.to_text());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Shard `k`'s directory, config (its symbol, journal, health port, shard number) and port.
fn write_config(root: &Path, sim: &VenueSim, k: usize) -> (PathBuf, u16) {
    let dir = root.join(format!("shard-{k}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = testkit::venue_key_file(&dir);
    let port = free_port();
    let text = format!(
        r#"[engine]
io_cpu = -1
core_cpu = -1
idle = "backoff"

[venue]
ws_url = "{ws}"
rest_url = "{http}"
symbols = ["{symbol}"]
streams = ["trade", "depth@100ms"]

[strategy]
name = "sma_cross"
[strategy.params]
fast = 2
slow = 4
qty = "0.1"

[orders]
enabled = true
url = "{ws}/ws-api/v3"
credentials_file = "{key}"
journal = "{journal}"
fsync = "never"
ack_timeout_ms = 2000
shard = {k}
shards = {n}
shutdown_timeout_ms = 8000

[risk]
rate_per_sec = 10000
burst = 10000
max_order_qty = "1000"
max_order_notional = "100000000"
max_position = "1000"
max_open_orders = 1000

[health]
listen = "127.0.0.1:{port}"
"#,
        ws = sim.ws_url(),
        http = sim.http_url(),
        symbol = SYMBOLS[k],
        key = key.display(),
        journal = dir.join("orders.tlj").display(),
        n = SYMBOLS.len(),
    );
    let path = dir.join("shard.toml");
    std::fs::write(&path, text).unwrap();
    (path, port)
}

/// `GET /readyz`: Some(true/false) by status, None when nothing answers.
fn ready(port: u16) -> Option<bool> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: shard\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let v: Value = serde_json::from_str(body).ok()?;
    let ok = head.starts_with("HTTP/1.1 200");
    assert_eq!(v["ready"], ok, "{out}");
    Some(ok)
}

/// The shard (by its epoch's residue: see `[orders] shard`) of a client id the venue got.
fn shard_of(client_id: &str) -> usize {
    let id = ClientOrderId::parse(client_id)
        .unwrap_or_else(|| panic!("a client id the engine did not make: {client_id}"));
    (id.epoch() % SYMBOLS.len() as u64) as usize
}

/// Venue fills so far, by shard.
fn fills_by_shard(sim: &VenueSim) -> [usize; 3] {
    let mut n = [0; 3];
    for e in sim.ledger().unwrap() {
        if let LedgerEntry::Fill {
            client_order_id, ..
        } = e
        {
            n[shard_of(&client_order_id)] += 1;
        }
    }
    n
}

/// A shard process with its log; killed if the test fails first.
struct Shard {
    child: Option<Child>,
    config: PathBuf,
    port: u16,
    /// Its stderr, appended by each life.
    log: PathBuf,
}

impl Shard {
    fn start(config: PathBuf, port: u16) -> Shard {
        let log = config.with_extension("log");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = test_child("child_shard", &[(CHILD_CONFIG_ENV, config.as_os_str())])
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting a shard");
        Shard {
            child: Some(child),
            config,
            port,
            log,
        }
    }

    /// Its stderr so far (every life of this shard).
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Ends the child (already signalled or killed; killed after [`T`]) and returns its exit
    /// status and log.
    fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + T;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > end {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.log())
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for `cond`, bounded by [`T`]; every shard must stay up meanwhile.
fn wait_until(what: &str, shards: &mut [&mut Shard], mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + T;
    while !cond() {
        for s in shards.iter_mut() {
            if !s.running() {
                let (st, err) = s.wait();
                panic!("a shard exited ({st}) before {what}:\n{err}");
            }
        }
        assert!(Instant::now() < end, "no {what} within {T:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn three_shards_one_killed_and_restarted_lose_no_fill_and_repeat_no_client_id() {
    let started = Instant::now();
    let dir = testkit::TempDir::new("shards");
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
            events: 2_000_000,
            seed: 5,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(4_500),
        ledger: Some(dir.path().join("ledger.jsonl")),
        ..SimConfig::default()
    })
    .unwrap();
    let mut shards: Vec<Shard> = (0..SYMBOLS.len())
        .map(|k| {
            let (cfg, port) = write_config(dir.path(), &sim, k);
            Shard::start(cfg, port)
        })
        .collect();
    let pids: Vec<u32> = shards.iter().map(Shard::pid).collect();

    // Every shard ready (feed open, its book synced, the order API up) and trading.
    let ports: Vec<u16> = shards.iter().map(|s| s.port).collect();
    {
        let mut all: Vec<&mut Shard> = shards.iter_mut().collect();
        wait_until("every shard ready", &mut all, || {
            ports.iter().all(|&p| ready(p) == Some(true))
        });
        wait_until("fills on every shard", &mut all, || {
            fills_by_shard(&sim).iter().all(|&n| n >= 5)
        });
    }

    // SIGKILL one shard mid-trading.
    let victim_port = shards[VICTIM].port;
    shards[VICTIM].child.as_mut().unwrap().kill().unwrap();
    let (status, _) = shards[VICTIM].wait();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    let at_kill = fills_by_shard(&sim);
    // Down: nothing answers its readiness probe.
    assert_ne!(
        ready(victim_port),
        Some(true),
        "a killed shard is not ready"
    );
    // The others keep trading through the outage, in the same processes.
    {
        let mut others: Vec<&mut Shard> = shards
            .iter_mut()
            .enumerate()
            .filter(|(k, _)| *k != VICTIM)
            .map(|(_, s)| s)
            .collect();
        wait_until(
            "the other shards trading during the outage",
            &mut others,
            || {
                let now = fills_by_shard(&sim);
                (0..SYMBOLS.len()).all(|k| k == VICTIM || now[k] >= at_kill[k] + 5)
            },
        );
    }
    assert_ne!(
        ready(victim_port),
        Some(true),
        "still down: not ready while the others traded"
    );

    // The restart on its journal, as the StatefulSet's: ready again, trading again.
    let config = shards[VICTIM].config.clone();
    shards[VICTIM] = Shard::start(config, victim_port);
    {
        let mut all: Vec<&mut Shard> = shards.iter_mut().collect();
        wait_until("the restarted shard ready", &mut all, || {
            ready(victim_port) == Some(true)
        });
        let before = fills_by_shard(&sim)[VICTIM];
        wait_until("the restarted shard trading", &mut all, || {
            fills_by_shard(&sim)[VICTIM] >= before + 5
        });
    }
    // The other shards never restarted.
    for (k, s) in shards.iter_mut().enumerate() {
        assert!(s.running(), "shard {k} is still up");
        if k != VICTIM {
            assert_eq!(s.pid(), pids[k], "shard {k} is the process it started as");
        }
    }

    // Stop the cluster as Kubernetes would: SIGTERM, graceful, exit 0.
    for s in &shards {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let logs: Vec<String> = shards
        .iter_mut()
        .enumerate()
        .map(|(k, s)| {
            let (status, err) = s.wait();
            assert!(status.success(), "shard {k} exit {status}:\n{err}");
            err
        })
        .collect();
    for line in logs[VICTIM]
        .lines()
        .filter(|l| l.contains("tickline::journal") || l.contains("shutdown:"))
    {
        eprintln!("shard {VICTIM}: {line}");
    }
    assert!(
        logs[VICTIM].contains("open orders to reconcile"),
        "the restarted shard recovered its journal:\n{}",
        logs[VICTIM]
    );

    // The venue's word: each client id placed once over every shard; fills by (client, trade).
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    let mut venue: Vec<BTreeMap<(String, u64), (i64, i64)>> = vec![BTreeMap::new(); 3];
    for e in sim.ledger().unwrap() {
        match e {
            LedgerEntry::Place {
                client_order_id: Some(c),
                ..
            } => *placed.entry(c).or_default() += 1,
            LedgerEntry::Place { .. } => panic!("an order without a client id"),
            LedgerEntry::Fill {
                client_order_id,
                trade_id,
                price,
                qty,
                ..
            } => {
                let k = shard_of(&client_order_id);
                let dup =
                    venue[k].insert((client_order_id, trade_id), (fixed(&price), fixed(&qty)));
                assert!(dup.is_none(), "the venue reported a fill twice");
            }
        }
    }
    let twice: Vec<_> = placed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "client ids sent more than once: {twice:?}"
    );

    // Each shard's word: its journal's intents are its own (by residue, and no other shard's),
    // and its journal's fills are exactly the venue's fills of its orders.
    let mut intended: Vec<BTreeSet<String>> = Vec::new();
    for (k, venue) in venue.iter().enumerate() {
        let journal = dir.path().join(format!("shard-{k}/orders.tlj"));
        let rec = recover(&journal).unwrap();
        assert_eq!(rec.tail, TailState::Clean, "shard {k}");
        let bytes = std::fs::read(&journal).unwrap();
        let ids: BTreeSet<String> = JournalReader::new(&bytes)
            .unwrap()
            .filter_map(|e| match e.record {
                JournalRecord::Intent { client_id, .. } => Some(client_id.to_string()),
                _ => None,
            })
            .collect();
        assert!(ids.iter().all(|c| shard_of(c) == k), "shard {k}'s ids");
        let engine = journal_fills(&journal);
        let missing: Vec<_> = venue.keys().filter(|f| !engine.contains_key(*f)).collect();
        let extra: Vec<_> = engine.keys().filter(|f| !venue.contains_key(*f)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "shard {k}: fills missing from its journal: {missing:?}; fills the venue never made: {extra:?}"
        );
        assert_eq!(&engine, venue, "shard {k}: prices and quantities agree");
        intended.push(ids);
    }
    for a in 0..intended.len() {
        for b in a + 1..intended.len() {
            assert!(intended[a].is_disjoint(&intended[b]), "shards {a} and {b}");
        }
    }
    let unintended: Vec<_> = placed
        .keys()
        .filter(|c| !intended.iter().any(|i| i.contains(*c)))
        .collect();
    assert!(
        unintended.is_empty(),
        "orders no journal intended: {unintended:?}"
    );
    eprintln!(
        "shards: {} orders, fills by shard {:?}, {:.1} s",
        placed.len(),
        venue.iter().map(BTreeMap::len).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}
