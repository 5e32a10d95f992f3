//! Graceful termination as Kubernetes does it: `tickline run` (the real binary, a child process)
//! trades against the in-process venue simulator with GTC orders resting at the venue, gets a
//! real SIGTERM, and stops by `[orders] on_shutdown`: with `cancel` its orders are gone from the
//! venue's book, with `keep` they still rest there; either way it exits 0 with the journal
//! flushed, and the next start recovers that journal cleanly. A stop that cannot finish (a
//! REST thread stuck on a venue that never answers) is cut at `shutdown_timeout_ms` with exit
//! status 1. Loopback only; every wait is bounded.

use feeds::orders::journal::{recover, TailState};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};
use venue_sim::{SimConfig, SimPace, SimSource, VenueSim};

const BIN: &str = env!("CARGO_BIN_EXE_tickline");

/// Upper bound of any single wait.
const T: Duration = Duration::from_secs(20);

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tl-shutdown-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sim(seed: u64) -> VenueSim {
    VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 2_000_000,
            seed,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        ..SimConfig::default()
    })
    .expect("start the venue simulator")
}

/// The engine's config: `naive` with three traders whose buys rest 5 % under the market.
fn write_config(dir: &Path, sim: &VenueSim, strategy: &str, on_shutdown: &str) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = dir.join("venue.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key)
        .unwrap();
    writeln!(
        f,
        "api_key = {}\napi_secret = {}",
        venue_sim::TEST_HMAC_API_KEY,
        venue_sim::TEST_HMAC_SECRET
    )
    .unwrap();
    let text = format!(
        r#"[engine]
io_cpu = -1
core_cpu = -1
idle = "backoff"

[venue]
ws_url = "{ws}"
rest_url = "{http}"
symbols = ["BTCUSDT"]
streams = ["trade"]

[strategy]
name = "{strategy}"
[strategy.params]
{params}

[orders]
enabled = true
url = "{ws}/ws-api/v3"
credentials_file = "{key}"
journal = "{journal}"
on_shutdown = "{on_shutdown}"
shutdown_timeout_ms = 8000

[control]
enabled = false
"#,
        ws = sim.ws_url(),
        http = sim.http_url(),
        params = if strategy == "naive" {
            "chunks = 3\nbudget = \"300\"\nbuy_down_interval = \"0.05\""
        } else {
            ""
        },
        key = key.display(),
        journal = dir.join("orders.tlj").display(),
    );
    let path = dir.join(format!("{strategy}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(dir: &Path, config: &Path, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .args(["--status-every", "0"])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tickline run")
}

/// Waits (bounded) for the child to exit; its status and stderr.
fn wait_exit(mut child: Child, what: &str) -> (std::process::ExitStatus, String) {
    let end = Instant::now() + T;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: no exit within {T:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The client ids of our account's open orders at the venue (`openOrders.status`, signed).
fn open_at_venue(sim: &VenueSim) -> BTreeSet<String> {
    let sock = TcpStream::connect_timeout(&sim.ws_addr(), T).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let url = format!("{}/ws-api/v3", sim.ws_url());
    let (mut ws, _): (WebSocket<TcpStream>, _) = tungstenite::client(url, sock).unwrap();
    let params = signed(json!({"symbol": "BTCUSDT"}));
    ws.send(Message::Text(
        json!({"id": 1, "method": "openOrders.status", "params": params})
            .to_string()
            .into(),
    ))
    .unwrap();
    loop {
        let Message::Text(t) = ws.read().unwrap() else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["id"] != 1 {
            continue;
        }
        assert_eq!(v["status"], 200, "{v}");
        let _ = ws.close(None);
        return v["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["clientOrderId"].as_str().unwrap().to_string())
            .collect();
    }
}

/// `p` with the simulator's built-in HMAC key, the current time and its signature.
fn signed(mut p: Value) -> Value {
    use hmac::Mac;
    p["apiKey"] = json!(venue_sim::TEST_HMAC_API_KEY);
    p["timestamp"] = json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64);
    let mut keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    keys.sort();
    let payload = keys
        .iter()
        .map(|k| match &p[k.as_str()] {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(venue_sim::TEST_HMAC_SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    p["signature"] = json!(hex);
    p
}

/// Runs the engine until three GTC buys rest at the venue, then sends SIGTERM; returns the
/// resting orders' client ids, the exit status and stderr.
fn trade_then_sigterm(
    dir: &Path,
    sim: &VenueSim,
    on_shutdown: &str,
) -> (BTreeSet<String>, std::process::ExitStatus, String) {
    let cfg = write_config(dir, sim, "naive", on_shutdown);
    let mut child = spawn(dir, &cfg, &[]);
    let end = Instant::now() + T;
    let resting = loop {
        let open = open_at_venue(sim);
        if open.len() == 3 {
            break open;
        }
        if Instant::now() > end || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no three resting orders in time ({open:?})\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (status, stderr) = wait_exit(child, "SIGTERM");
    (resting, status, stderr)
}

/// The next start on the same journal, without a strategy, for one second: exits 0 and says
/// how many open orders it recovered to reconcile.
fn restart_reconciles(dir: &Path, sim: &VenueSim, open: usize) {
    let cfg = write_config(dir, sim, "none", "keep");
    let (status, stderr) = wait_exit(spawn(dir, &cfg, &["--duration", "1"]), "restart");
    assert!(status.success(), "restart failed:\n{stderr}");
    assert!(
        stderr.contains("open orders to reconcile")
            && stderr.contains(&format!("open_orders={open}")),
        "the restart recovered the journal:\n{stderr}"
    );
}

#[test]
fn sigterm_with_cancel_cancels_resting_orders_flushes_the_journal_and_exits_0() {
    let dir = tmp_dir("cancel");
    let sim = sim(31);
    let (resting, status, stderr) = trade_then_sigterm(&dir, &sim, "cancel");
    assert!(status.success(), "exit status {status}:\n{stderr}");
    assert!(
        stderr.contains("shutdown: canceling every open order")
            && stderr.contains("shutdown: no open orders left"),
        "{stderr}"
    );
    // The venue's word: none of them rests any more (nor anything else of ours).
    let open = open_at_venue(&sim);
    assert!(
        open.is_empty(),
        "still open at the venue: {open:?} (were {resting:?})"
    );
    // The journal: complete (no torn tail) and nothing open in it.
    let rec = recover(dir.join("orders.tlj")).unwrap();
    assert_eq!(rec.tail, TailState::Clean);
    assert!(rec.open_orders.is_empty(), "{:?}", rec.open_orders);
    restart_reconciles(&dir, &sim, 0);
}

#[test]
fn sigterm_with_keep_leaves_resting_orders_at_the_venue_for_the_next_start() {
    let dir = tmp_dir("keep");
    let sim = sim(32);
    let (resting, status, stderr) = trade_then_sigterm(&dir, &sim, "keep");
    assert!(status.success(), "exit status {status}:\n{stderr}");
    assert!(stderr.contains("orders.on_shutdown = \"keep\""), "{stderr}");
    // The same three still rest at the venue, and the journal holds exactly them.
    assert_eq!(open_at_venue(&sim), resting);
    let rec = recover(dir.join("orders.tlj")).unwrap();
    assert_eq!(rec.tail, TailState::Clean);
    let journaled: BTreeSet<String> = rec
        .open_orders
        .iter()
        .map(|o| o.client_id.to_string())
        .collect();
    assert_eq!(journaled, resting);
    restart_reconciles(&dir, &sim, 3);
    // Reconciled as open, not canceled: they rest at the venue still.
    assert_eq!(open_at_venue(&sim), resting);
}

#[test]
fn a_stop_that_overruns_shutdown_timeout_ms_ends_the_process_with_status_1() {
    let dir = tmp_dir("watchdog");
    let sim = sim(33);
    // A REST endpoint that takes the depth-snapshot request and never answers: the REST thread
    // sits in its read (10 s timeout), so joining it at stop would outlast the 1 s bound.
    let rest = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rest_url = format!("http://{}", rest.local_addr().unwrap());
    let (took, taken) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = rest.accept() {
            held.push(s);
            let _ = took.send(());
        }
    });
    let cfg = dir.join("watchdog.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[engine]
io_cpu = -1
core_cpu = -1
idle = "backoff"

[venue]
ws_url = "{ws}"
rest_url = "{rest_url}"
symbols = ["BTCUSDT"]
streams = ["trade", "depth@100ms"]
exchange_info = false

[strategy]
name = "none"

[orders]
shutdown_timeout_ms = 1000

[control]
enabled = false
"#,
            ws = sim.ws_url(),
        ),
    )
    .unwrap();
    let mut child = spawn(&dir, &cfg, &[]);
    if taken.recv_timeout(T).is_err() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "no snapshot request\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (status, stderr) = wait_exit(child, "SIGTERM with a stuck REST thread");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("shutdown: not done within orders.shutdown_timeout_ms (1000 ms)"),
        "{stderr}"
    );
}
