//! Runtime control as a user drives it: `tickline run` as a child process against the
//! in-process venue simulator, and `tickline ctl` (the same binary) on its control socket.
//! Loopback only; every wait is bounded.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use tools::sim::{SimConfig, SimPace, SimSource, SimStats, VenueSim};

const BIN: &str = env!("CARGO_BIN_EXE_tickline");

/// Upper bound of any single wait.
const T: Duration = Duration::from_secs(15);

fn tmp_dir(name: &str) -> PathBuf {
    // Short: a Unix socket path must stay under ~100 bytes.
    let d = std::env::temp_dir().join(format!("tl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sim() -> VenueSim {
    VenueSim::start(SimConfig {
        source: SimSource::Generated(feeds::gen::GenConfig {
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            events: 1_000_000,
            seed: 11,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2000),
        ..SimConfig::default()
    })
    .expect("start the venue simulator")
}

fn write_config(dir: &Path, sim: &VenueSim, control: &str) -> PathBuf {
    let text = format!(
        r#"[engine]
io_cpu = -1
core_cpu = -1
idle = "backoff"

[venue]
ws_url = "{}"
rest_url = "{}"
symbols = ["BTCUSDT", "ETHUSDT"]
trade = ["BTCUSDT"]

[strategy]
name = "naive"

[control]
{control}
"#,
        sim.ws_url(),
        sim.http_url()
    );
    let path = dir.join("live.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The engine child process; killed if a check fails before it is stopped.
struct Engine {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Engine {
    fn start(dir: &Path, config: &Path) -> Engine {
        let stderr = dir.join("engine.err");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(["--status-every", "0"])
            .current_dir(dir)
            .stdout(std::fs::File::create(dir.join("engine.out")).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn tickline run");
        Engine {
            child: Some(child),
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `ready` holds, failing if the engine exits first.
    fn wait_for(&mut self, what: &str, mut ready: impl FnMut(&Engine) -> bool) {
        let end = Instant::now() + T;
        while !ready(self) {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the engine exited ({st}) before {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < end,
                "no {what} within {T:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status (bounded).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let end = Instant::now() + T;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!(
                    "the engine did not stop within {T:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run tickline")
}

/// `tickline ctl --socket S ARGS`: (success, stdout, stderr).
fn ctl(endpoint: &[&str], args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["ctl"];
    all.extend_from_slice(endpoint);
    all.extend_from_slice(args);
    let out = run(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(endpoint: &[&str], args: &[&str]) -> String {
    let (success, out, err) = ctl(endpoint, args);
    assert!(success, "ctl {args:?} failed: {err}");
    out
}

/// Fails, and its error (stderr) is returned.
fn refused(endpoint: &[&str], args: &[&str]) -> String {
    let (success, out, err) = ctl(endpoint, args);
    assert!(!success, "ctl {args:?} should fail; it printed {out}");
    assert!(!err.trim().is_empty(), "ctl {args:?}: no error message");
    err
}

fn status(endpoint: &[&str]) -> Value {
    let out = ok(endpoint, &["status", "--json"]);
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["ok"], true, "{v}");
    v["status"].clone()
}

fn symbol<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["connections"][0]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == name)
        .unwrap_or_else(|| panic!("{name} not in {status}"))
}

/// Waits (bounded) until the simulator's counters satisfy `f`.
fn wait_sim(sim: &VenueSim, what: &str, f: impl Fn(&SimStats) -> bool) {
    let end = Instant::now() + T;
    while !f(&sim.stats()) {
        assert!(Instant::now() < end, "{what}: {:?}", sim.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctl_starts_stops_sets_and_halts_a_running_engine() {
    let started = Instant::now();
    let venue = sim();
    let dir = tmp_dir("ctl");
    let sock = dir.join("ctl.sock");
    // A stale socket from an engine that died: removed at start-up.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let config = write_config(&dir, &venue, &format!("socket = \"{}\"", sock.display()));
    let mut engine = Engine::start(&dir, &config);
    engine.wait_for("its control socket", |e| {
        e.log().contains("control: listening")
    });
    assert!(
        engine.log().contains("removed the stale socket"),
        "{}",
        engine.log()
    );
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let ep_owned = sock.display().to_string();
    let ep: &[&str] = &["--socket", &ep_owned];
    // The start-up subscription: BTCUSDT's three streams, ETHUSDT's none.
    wait_sim(&venue, "BTCUSDT subscribed", |s| s.subscriptions == 3);

    // A second engine on the same socket is refused before it connects anywhere.
    let second = run(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--status-every",
        "0",
    ]);
    assert!(!second.status.success());
    let e = String::from_utf8_lossy(&second.stderr);
    assert!(e.contains("answers on it"), "{e}");

    // status: BTCUSDT trades from the start (venue.trade), ETHUSDT is known but idle.
    let s = status(ep);
    assert_eq!(
        s["engine"]["trading_state"]
            .as_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("ACTIVE")
    );
    assert_eq!(s["connections"][0]["conn_id"], 1);
    assert_eq!(symbol(&s, "BTCUSDT")["state"], "trading");
    assert_eq!(symbol(&s, "BTCUSDT")["strategy"], "naive");
    assert_eq!(symbol(&s, "ETHUSDT")["state"], "idle");
    assert_eq!(symbol(&s, "ETHUSDT")["subscribed"], false);
    let text = ok(ep, &["status"]);
    assert!(text.contains("BTCUSDT  trading  naive"), "{text}");
    assert!(text.contains("ETHUSDT  idle"), "{text}");
    // --config finds the socket as the engine does.
    assert!(ok(&["--config", config.to_str().unwrap()], &["status"]).contains("ETHUSDT  idle"));

    // A bad strategy or parameter is refused by name, and nothing is subscribed.
    let e = refused(ep, &["start-trading", "ETHUSDT", "--strategy", "nosuch"]);
    assert!(e.contains("nosuch"), "{e}");
    let e = refused(ep, &["start-trading", "ETHUSDT", "--param", "chunkz=2"]);
    assert!(e.contains("chunkz"), "{e}");
    let e = refused(ep, &["start-trading", "ETHUSDT", "--param", "chunks"]);
    assert!(e.contains("KEY=VALUE"), "{e}");
    assert_eq!(symbol(&status(ep), "ETHUSDT")["state"], "idle");

    // start-trading: subscribed, filters fetched, a leader of 3 traders.
    let out = ok(ep, &["start-trading", "ethusdt", "--chunks", "3"]);
    assert!(
        out.contains("ETHUSDT") && out.contains("subscribed"),
        "{out}"
    );
    wait_sim(&venue, "ETHUSDT subscribed", |s| s.subscriptions == 6);
    assert_eq!(venue.stats().unsubscriptions, 0);
    let s = status(ep);
    let eth = symbol(&s, "ETHUSDT");
    assert_eq!(eth["state"], "trading", "{eth}");
    assert_eq!(eth["subscribed"], true);
    assert_eq!(eth["strategy"], "naive");
    assert_eq!(
        eth["leader"]["traders"].as_array().unwrap().len(),
        3,
        "{eth}"
    );
    assert_eq!(eth["leader"]["params"]["chunks"], "3", "{eth}");

    // set: an unknown key is refused by name and nothing changes; a good one applies.
    let e = refused(ep, &["set", "ETHUSDT", "nosuch=1"]);
    assert!(e.contains("nosuch"), "{e}");
    let e = refused(ep, &["set", "ETHUSDT", "profit_interval=0.002", "nosuch=1"]);
    assert!(e.contains("nosuch"), "{e}");
    let after = status(ep);
    assert_eq!(
        symbol(&after, "ETHUSDT")["leader"]["params"],
        eth["leader"]["params"]
    );
    assert_eq!(symbol(&after, "ETHUSDT")["state"], "trading");
    assert_eq!(
        symbol(&after, "ETHUSDT")["leader"]["traders"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let e = refused(ep, &["set", "ETHUSDT", "nosuch"]);
    assert!(e.contains("KEY=VALUE"), "{e}");
    ok(ep, &["set", "ETHUSDT", "profit_interval=0.002"]);
    let p = status(ep);
    let pi = symbol(&p, "ETHUSDT")["leader"]["params"]["profit_interval"].clone();
    assert!(pi.as_str().unwrap().starts_with("0.002"), "{pi}");

    // Symbols outside venue.symbols, and a symbol that already trades, are refused.
    let e = refused(ep, &["start-trading", "DOGEUSDT"]);
    assert!(e.contains("DOGEUSDT") && e.contains("venue.symbols"), "{e}");
    let e = refused(ep, &["start-trading", "ETHUSDT"]);
    assert!(e.contains("already"), "{e}");
    let e = refused(ep, &["stop-trading", "DOGEUSDT"]);
    assert!(e.contains("venue.symbols"), "{e}");
    // The refused second start did not touch ETHUSDT's subscription.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(venue.stats().unsubscriptions, 0);
    assert_eq!(symbol(&status(ep), "ETHUSDT")["state"], "trading");

    // stop-trading: idle again, unsubscribed.
    let out = ok(ep, &["stop-trading", "ETHUSDT"]);
    assert!(out.contains("unsubscribed"), "{out}");
    wait_sim(&venue, "ETHUSDT unsubscribed", |s| s.unsubscriptions == 3);
    let s = status(ep);
    assert_eq!(symbol(&s, "ETHUSDT")["state"], "idle");
    assert_eq!(symbol(&s, "ETHUSDT")["subscribed"], false);
    // Its open orders were canceled before its streams went (the paper venue answers a cancel
    // on the symbol's next market event).
    assert_eq!(symbol(&s, "ETHUSDT")["open_orders"], 0, "{s}");
    assert_eq!(symbol(&s, "BTCUSDT")["state"], "trading");
    let e = refused(ep, &["stop-trading", "ETHUSDT"]);
    assert!(e.contains("not trading"), "{e}");

    // halt / resume.
    ok(ep, &["halt"]);
    assert_eq!(status(ep)["engine"]["trading_state"], "HALTED");
    ok(ep, &["resume"]);
    assert_eq!(status(ep)["engine"]["trading_state"], "ACTIVE");

    // Bad commands: a clear error, a non-zero exit, nothing changed.
    refused(ep, &["nosuch"]);
    refused(ep, &["stop-trading"]);
    refused(ep, &["set", "ETHUSDT"]);
    let s = status(ep);
    assert_eq!(s["engine"]["trading_state"], "ACTIVE");
    assert_eq!(symbol(&s, "BTCUSDT")["state"], "trading");
    assert_eq!(symbol(&s, "ETHUSDT")["state"], "idle");

    // The wire protocol itself: one JSON object per line each way, `id` echoed, several
    // requests on one connection.
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(T)).unwrap();
    let mut lines = BufReader::new(conn.try_clone().unwrap());
    let mut ask = |req: &str| -> Value {
        conn.write_all(format!("{req}\n").as_bytes()).unwrap();
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let r = ask(r#"{"cmd":"launch","id":7}"#);
    assert_eq!(r["ok"], false);
    assert_eq!(r["id"], 7);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("unknown command `launch`"),
        "{r}"
    );
    let r = ask("not json");
    assert_eq!(r["ok"], false, "{r}");
    let r = ask(r#"{"cmd":"status","id":"s"}"#);
    assert_eq!(r["ok"], true);
    assert_eq!(r["id"], "s");
    assert!(r["status"]["connections"].is_array());

    // SIGTERM: a clean exit, the socket removed.
    let st = engine.terminate();
    assert!(st.success(), "exit {st}:\n{}", engine.log());
    assert!(!sock.exists(), "the socket outlived the engine");
    let e = refused(ep, &["status"]);
    assert!(
        e.contains("no control socket") && e.contains(&ep_owned),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctl_over_loopback_tcp() {
    let venue = sim();
    let dir = tmp_dir("ctltcp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = write_config(&dir, &venue, &format!("tcp = \"{addr}\""));
    let mut engine = Engine::start(&dir, &config);
    engine.wait_for("its control port", |e| {
        e.log().contains("control: listening")
    });
    // No Unix socket is made (not even the default one).
    assert!(!dir.join("tickline.sock").exists());
    let ep: &[&str] = &["--tcp", &addr];
    assert_eq!(symbol(&status(ep), "BTCUSDT")["state"], "trading");
    ok(ep, &["kill"]);
    assert_eq!(status(ep)["engine"]["trading_state"], "KILLED");
    ok(&["--config", config.to_str().unwrap()], &["resume"]);
    assert_eq!(status(ep)["engine"]["trading_state"], "ACTIVE");
    let st = engine.terminate();
    assert!(st.success(), "exit {st}:\n{}", engine.log());
    let e = refused(ep, &["status"]);
    assert!(e.contains(&addr), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_loopback_control_port_and_a_bad_trade_list_are_refused_at_start() {
    let dir = tmp_dir("ctlbad");
    for (text, key) in [
        ("[control]\ntcp = \"0.0.0.0:7070\"\n", "control.tcp"),
        (
            "[venue]\nsymbols = [\"BTCUSDT\"]\ntrade = [\"ETHUSDT\"]\n",
            "venue.trade",
        ),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = run(&["run", "--config", path.to_str().unwrap()]);
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(key), "{text}: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_shows_the_order_session_degraded_when_the_user_stream_is_refused() {
    // The status tree's `order_session` (live orders only), as the control server builds it
    // from the I/O thread's published user-stream state (issue #15).
    let status: Value = serde_json::json!({
        "engine": {"pid": 1, "uptime_s": 1.0, "trading_state": "active", "orders_to": "venue"},
        "order_session": {"state": "degraded", "user_stream": "refused", "user_stream_refused": 1},
        "connections": [],
    });
    let text = tools::control::render_status(&status);
    assert!(
        text.contains("order session  degraded  user stream refused  refused 1"),
        "{text}"
    );
    // Paper trading: no order session line.
    let paper: Value = serde_json::json!({"engine": {}, "order_session": null, "connections": []});
    assert!(!tools::control::render_status(&paper).contains("order session"));
}
