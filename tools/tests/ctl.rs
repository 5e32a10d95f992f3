//! Runtime control as a user drives it: `tickline run` as a child process against the
//! in-process venue simulator, and `tickline ctl` (the same binary) on its control socket.
//! Loopback only; every wait is bounded.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use venue_sim::{SimConfig, SimPace, SimSource, SimStats, VenueSim};

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
        source: SimSource::Generated(venue_sim::gen::GenConfig {
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
    let r = ask(r#"{"cmd":"status","id":"s"}"#);
    assert_eq!(r["ok"], true);
    assert_eq!(r["id"], "s");
    assert!(r["status"]["connections"].is_array());
    assert_eq!(
        r["status"]["control"]["auth"], "unix socket mode 0600",
        "{r}"
    );
    let r = ask(r#"{"cmd":"status","id":2}"#);
    assert_eq!(r["id"], 2);
    // The first line that is not a valid request is answered, then the connection closes.
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
    assert_closed(&mut lines);
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(T)).unwrap();
    let mut lines = BufReader::new(conn.try_clone().unwrap());
    conn.write_all(b"not json\n").unwrap();
    let r = read_reply(&mut lines).expect("a reply");
    assert_eq!(r["ok"], false, "{r}");
    assert_closed(&mut lines);

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

fn state_word(status: &Value) -> String {
    let s = status["engine"]["trading_state"].as_str().unwrap_or("?");
    s.split(' ').next().unwrap_or("").to_string()
}

/// The TCP control token of these tests (never to appear in any output).
const TOKEN: &str = "tl-test-token-5f0c2a9e71d84b36";

/// Reads one reply line; `None` when the connection is closed (EOF or reset).
fn read_reply(r: &mut impl BufRead) -> Option<Value> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("no reply and no close within {T:?}")
        }
        Err(_) => None,
    }
}

/// The server closed the connection (bounded by the stream's read timeout, `T`).
fn assert_closed(r: &mut impl BufRead) {
    if let Some(v) = read_reply(r) {
        panic!("the connection stayed open and answered {v}");
    }
}

fn free_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

fn write_token_file(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join("control.token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `tickline run` with TCP control and a 0600 token file, ready.
struct TcpEngine {
    _venue: VenueSim,
    dir: PathBuf,
    engine: Engine,
    addr: String,
    token_file: PathBuf,
    config: PathBuf,
}

impl TcpEngine {
    fn start(name: &str) -> TcpEngine {
        let venue = sim();
        let dir = tmp_dir(name);
        let addr = free_port();
        let token_file = write_token_file(&dir, 0o600);
        let config = write_config(
            &dir,
            &venue,
            &format!(
                "tcp = \"{addr}\"\ntoken_file = \"{}\"",
                token_file.display()
            ),
        );
        let mut engine = Engine::start(&dir, &config);
        engine.wait_for("its control port", |e| {
            e.log().contains("control: listening")
        });
        TcpEngine {
            _venue: venue,
            dir,
            engine,
            addr,
            token_file,
            config,
        }
    }

    /// `--tcp ADDR --token-file FILE`.
    fn ep(&self) -> [&str; 4] {
        [
            "--tcp",
            &self.addr,
            "--token-file",
            self.token_file.to_str().unwrap(),
        ]
    }

    fn connect(&self) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
        let s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.set_write_timeout(Some(T)).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    }

    /// One request line on a fresh connection; its reply (`None`: closed without one).
    fn ask(&self, line: &str) -> Option<Value> {
        let (mut s, mut r) = self.connect();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        read_reply(&mut r)
    }

    fn status(&self) -> Value {
        let r = self
            .ask(&format!(r#"{{"cmd":"status","token":"{TOKEN}"}}"#))
            .expect("a status reply");
        assert_eq!(r["ok"], true, "{r}");
        r["status"].clone()
    }

    /// Its first word: ACTIVE, HALTED, KILLED (a note may follow, such as "(no pre-trade risk)").
    fn trading_state(&self) -> String {
        state_word(&self.status())
    }

    fn finish(mut self) {
        let st = self.engine.terminate();
        assert!(st.success(), "exit {st}:\n{}", self.engine.log());
        assert!(
            !self.engine.log().contains(TOKEN),
            "the token is in the engine's log"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ctl_over_loopback_tcp() {
    let e = TcpEngine::start("ctltcp");
    // No Unix socket is made (not even the default one).
    assert!(!e.dir.join("tickline.sock").exists());
    let ep = e.ep();
    assert_eq!(symbol(&status(&ep), "BTCUSDT")["state"], "trading");
    ok(&ep, &["kill"]);
    assert_eq!(status(&ep)["engine"]["trading_state"], "KILLED");
    // --config finds the port and the token file as the engine does.
    ok(&["--config", e.config.to_str().unwrap()], &["resume"]);
    assert_eq!(status(&ep)["engine"]["trading_state"], "ACTIVE");
    // Or the token from the environment.
    let out = Command::new(BIN)
        .args(["ctl", "--tcp", &e.addr, "status"])
        .env("TICKLINE_CONTROL_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a token, ctl says how to give one.
    let out = Command::new(BIN)
        .args(["ctl", "--tcp", &e.addr, "status"])
        .env_remove("TICKLINE_CONTROL_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a token") && err.contains("--token-file"),
        "{err}"
    );
    let s = e.status();
    assert_eq!(s["control"]["auth"], "token", "{s}");
    let addr = e.addr.clone();
    e.finish();
    let out = Command::new(BIN)
        .args(["ctl", "--tcp", &addr, "status"])
        .env("TICKLINE_CONTROL_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "{err}");
}

#[test]
fn tcp_control_without_token_is_refused() {
    let dir = tmp_dir("ctlnotok");
    let addr = free_port();
    // A venue that is not there: should the refusal fail, the run still ends by itself.
    let path = dir.join("notoken.toml");
    std::fs::write(
        &path,
        format!("[venue]\nws_url = \"ws://127.0.0.1:9/ws\"\nrest_url = \"http://127.0.0.1:9\"\n[control]\ntcp = \"{addr}\"\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config", path.to_str().unwrap(), "--duration", "3"])
        .env_remove("TICKLINE_CONTROL_TOKEN")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("needs a token")
            && e.contains("token_file")
            && e.contains("TICKLINE_CONTROL_TOKEN"),
        "{e}"
    );
    // Nothing listens on the port.
    assert!(std::net::TcpStream::connect(&addr).is_err());
    // A token that is too short is refused too, and not printed.
    let out = Command::new(BIN)
        .args(["run", "--config", path.to_str().unwrap(), "--duration", "3"])
        .env("TICKLINE_CONTROL_TOKEN", "short-secret")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("at least 16"), "{e}");
    assert!(!e.contains("short-secret"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_file_with_loose_mode_is_refused() {
    let dir = tmp_dir("ctlmode");
    let token_file = write_token_file(&dir, 0o644);
    let path = dir.join("loose.toml");
    std::fs::write(
        &path,
        format!(
            "[venue]\nws_url = \"ws://127.0.0.1:9/ws\"\nrest_url = \"http://127.0.0.1:9\"\n[control]\ntcp = \"{}\"\ntoken_file = \"{}\"\n",
            free_port(),
            token_file.display()
        ),
    )
    .unwrap();
    let out = run(&["run", "--config", path.to_str().unwrap(), "--duration", "3"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("control.token_file") && e.contains("0644") && e.contains("chmod 600"),
        "{e}"
    );
    assert!(!e.contains(TOKEN), "{e}");
    // ctl refuses to read it as well.
    let out = run(&["ctl", "--config", path.to_str().unwrap(), "status"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("0644"), "{e}");
    assert!(!e.contains(TOKEN), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_token_is_refused_and_closed() {
    let e = TcpEngine::start("ctlwrong");
    for line in [
        r#"{"cmd":"kill"}"#.to_string(),
        r#"{"cmd":"kill","token":"tl-test-token-5f0c2a9e71d84b3"}"#.to_string(),
        format!(r#"{{"cmd":"kill","token":"{TOKEN}x"}}"#),
        r#"{"cmd":"halt","token":7}"#.to_string(),
    ] {
        let (mut s, mut r) = e.connect();
        // A second, valid request on the same connection is never served.
        s.write_all(format!("{line}\n{{\"cmd\":\"kill\",\"token\":\"{TOKEN}\"}}\n").as_bytes())
            .unwrap();
        let v = read_reply(&mut r).expect("a refusal");
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
        assert_closed(&mut r);
    }
    let s = e.status();
    assert_eq!(state_word(&s), "ACTIVE", "{s}");
    assert!(s["control"]["refused_auth"].as_u64().unwrap() >= 4, "{s}");
    e.finish();
}

#[test]
fn http_post_with_kill_body_does_not_kill() {
    let e = TcpEngine::start("ctlhttp");
    let body = format!(r#"{{"cmd":"kill","token":"{TOKEN}"}}"#);
    let requests = [
        format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\n",
            body.len() + 1
        ),
        // Without a newline after the body, as a browser sends it.
        format!(
            "POST /kill HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        format!("GET /?{body} HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("PUT / HTTP/1.1\n{body}\n"),
        format!("OPTIONS * HTTP/1.1\r\n\r\n{body}\n"),
        format!("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n{body}\n"),
        // A header line first (a request line split off, say): still HTTP.
        format!("X-Forwarded: y HTTP/1.1\n{body}\n"),
    ];
    for req in &requests {
        let (mut s, mut r) = e.connect();
        let _ = s.write_all(req.as_bytes());
        if let Some(v) = read_reply(&mut r) {
            assert_eq!(v["ok"], false, "{req:?}: {v}");
            assert!(
                v["error"].as_str().unwrap().contains("not HTTP"),
                "{req:?}: {v}"
            );
            assert_closed(&mut r);
        }
        assert_eq!(e.trading_state(), "ACTIVE", "{req:?} killed the engine");
    }
    let s = e.status();
    assert!(
        s["control"]["refused_protocol"].as_u64().unwrap() >= requests.len() as u64,
        "{s}"
    );
    // The body on its own is a valid request (the control protocol still works).
    let v = e.ask(&body).expect("a reply");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(e.trading_state(), "KILLED");
    e.finish();
}

#[test]
fn non_request_line_closes_the_connection() {
    let e = TcpEngine::start("ctlbadline");
    let good = format!(r#"{{"cmd":"status","token":"{TOKEN}"}}"#);
    for bad in [
        "not json".to_string(),
        "[1,2]".to_string(),
        format!(r#"{{"cmd":"launch","token":"{TOKEN}"}}"#),
        format!(r#"{{"cmd":"halt","symbol":"X","token":"{TOKEN}"}}"#),
    ] {
        let (mut s, mut r) = e.connect();
        // A good request first: served, the connection stays.
        s.write_all(format!("{good}\n").as_bytes()).unwrap();
        assert_eq!(read_reply(&mut r).expect("status")["ok"], true);
        s.write_all(format!("{bad}\n{good}\n").as_bytes()).unwrap();
        let v = read_reply(&mut r).expect("a refusal");
        assert_eq!(v["ok"], false, "{bad}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("connection closed"),
            "{v}"
        );
        assert_closed(&mut r);
    }
    // A line longer than MAX_LINE is refused before more is buffered, and closes.
    let (mut s, mut r) = e.connect();
    let huge = vec![b'x'; tools::control::MAX_LINE + 4096];
    let _ = s.write_all(&huge);
    let v = read_reply(&mut r).expect("a refusal");
    assert!(v["error"].as_str().unwrap().contains("longer than"), "{v}");
    assert_closed(&mut r);
    // So is a long line whose newline comes in the same read.
    let (mut s, mut r) = e.connect();
    let mut long = vec![b' '; tools::control::MAX_LINE + 10];
    long.extend_from_slice(format!("{good}\n").as_bytes());
    let _ = s.write_all(&long);
    let v = read_reply(&mut r).expect("a refusal");
    assert_eq!(v["ok"], false, "{v}");
    assert_closed(&mut r);
    assert_eq!(e.trading_state(), "ACTIVE");
    e.finish();
}

#[test]
fn token_is_never_echoed() {
    let e = TcpEngine::start("ctlecho");
    let mut seen = String::new();
    for line in [
        format!(r#"{{"cmd":"nosuch","token":"{TOKEN}"}}"#),
        format!(r#"{{"cmd":"status","token":"{TOKEN}","id":"{TOKEN}"}}"#),
        format!(r#"{{"cmd":"set","symbol":"BTCUSDT","params":{{"x":"1"}},"token":"{TOKEN}"}}"#),
        format!(r#"{{"cmd":"kill","token":"{TOKEN}-"}}"#),
        format!(r#"{{"cmd":"kill","tokn":"{TOKEN}"}}"#),
        format!(r#"{{"cmd":"start-trading","symbol":"ETHUSDT","chunks":0,"token":"{TOKEN}"}}"#),
        format!("{{\"cmd\":\"status\",\"token\":\"{TOKEN}\""),
    ] {
        if let Some(v) = e.ask(&line) {
            let text = v.to_string();
            // The request's own `id` is echoed by design; nothing else may carry the token.
            let without_id = {
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("id");
                }
                v.to_string()
            };
            assert!(!without_id.contains(TOKEN), "{line}: {text}");
            seen.push_str(&text);
        }
    }
    assert!(!seen.is_empty());
    let ep = e.ep();
    let out = ok(&ep, &["status", "--json"]);
    assert!(!out.contains(TOKEN), "{out}");
    let out = ok(&ep, &["status"]);
    assert!(!out.contains(TOKEN), "{out}");
    e.finish(); // and checks the engine's log
}

#[test]
fn slow_loris_connections_cannot_lock_out_kill() {
    use tools::control::MAX_CONNECTIONS;
    let e = TcpEngine::start("ctlloris");
    // Only the status connection itself is open.
    let end = Instant::now() + T;
    while e.status()["control"]["open"] != 1 {
        assert!(Instant::now() < end, "{}", e.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every regular slot held (for the idle time, 30 s: a wide window for what follows) by an
    // authenticated connection that asked once and then sits there.
    let status_line = format!("{{\"cmd\":\"status\",\"token\":\"{TOKEN}\"}}\n");
    let mut loris: Vec<_> = (0..MAX_CONNECTIONS).map(|_| e.connect()).collect();
    for (s, r) in &mut loris {
        s.write_all(status_line.as_bytes()).unwrap();
        assert_eq!(read_reply(r).expect("status")["ok"], true);
    }
    // One more: a kill is served on the reserved slot at once.
    let v = e
        .ask(&format!(r#"{{"cmd":"kill","token":"{TOKEN}"}}"#))
        .expect("a reply to kill");
    assert_eq!(v["ok"], true, "{v}");
    // A status on the reserved slot is refused (slots are for kill and halt).
    let (mut s, mut r) = e.connect();
    s.write_all(format!("{{\"cmd\":\"status\",\"token\":\"{TOKEN}\"}}\n").as_bytes())
        .unwrap();
    let v = read_reply(&mut r).expect("a refusal");
    assert!(
        v["error"].as_str().unwrap().contains("only kill and halt"),
        "{v}"
    );
    // With the reserved slots taken too, a connection is refused at once, pointing at SIGUSR1.
    let reserved: Vec<_> = (0..tools::control::PRIORITY_SLOTS)
        .map(|_| e.connect())
        .collect();
    let (_s, mut r) = e.connect();
    let v = read_reply(&mut r).expect("a refusal");
    let why = v["error"].as_str().unwrap();
    assert!(why.contains("too many") && why.contains("SIGUSR1"), "{v}");
    assert_closed(&mut r);
    // The idle reserved connections are closed within their deadline.
    for (_, mut r) in reserved {
        if let Some(v) = read_reply(&mut r) {
            assert!(v["error"].as_str().unwrap().contains("no request"), "{v}");
        }
    }
    // Now they trickle a line, a byte every 200 ms: it misses its deadline and they are closed.
    for (s, _) in &mut loris {
        s.write_all(b"{").unwrap();
    }
    let stop = Instant::now() + T;
    let mut closed = vec![false; loris.len()];
    while closed.contains(&false) {
        assert!(
            Instant::now() < stop,
            "slow connections still open: {closed:?}"
        );
        for (i, (s, _)) in loris.iter_mut().enumerate() {
            if !closed[i] && s.write_all(b" ").is_err() {
                closed[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for (_, r) in &mut loris {
        if let Some(v) = read_reply(r) {
            assert!(
                v["error"].as_str().unwrap().contains("must be complete"),
                "{v}"
            );
        }
    }
    let s = e.status();
    assert_eq!(s["engine"]["trading_state"], "KILLED", "{s}");
    assert!(
        s["control"]["priority_served"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert!(s["control"]["refused_busy"].as_u64().unwrap() >= 2, "{s}");
    assert!(
        s["control"]["timed_out"].as_u64().unwrap() >= MAX_CONNECTIONS as u64,
        "{s}"
    );
    // With an attacker that keeps every slot busy, `tickline ctl kill` still gets through.
    let ep = e.ep();
    ok(&ep, &["resume"]);
    let attack_end = Arc::new(AtomicBool::new(false));
    let attacker = {
        let addr = e.addr.clone();
        let attack_end = attack_end.clone();
        std::thread::spawn(move || {
            let mut conns: Vec<std::net::TcpStream> = Vec::new();
            while !attack_end.load(Ordering::Relaxed) {
                conns.retain_mut(|c| c.write_all(b"x").is_ok());
                while conns.len() < MAX_CONNECTIONS {
                    match std::net::TcpStream::connect(&addr) {
                        Ok(c) => conns.push(c),
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    ok(&ep, &["kill"]);
    attack_end.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert_eq!(e.trading_state(), "KILLED");
    e.finish();
}

#[test]
fn sigusr1_is_the_kill_switch() {
    let venue = sim();
    let dir = tmp_dir("ctlusr1");
    let sock = dir.join("ctl.sock");
    let config = write_config(&dir, &venue, &format!("socket = \"{}\"", sock.display()));
    let mut engine = Engine::start(&dir, &config);
    engine.wait_for("its control socket", |e| {
        e.log().contains("control: listening")
    });
    let ep_owned = sock.display().to_string();
    let ep: &[&str] = &["--socket", &ep_owned];
    assert_eq!(state_word(&status(ep)), "ACTIVE");
    let pid = engine.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .unwrap()
        .success());
    engine.wait_for("the kill switch", |e| {
        e.log().contains("kill switch (SIGUSR1): KILLED")
    });
    assert_eq!(status(ep)["engine"]["trading_state"], "KILLED");
    // Still running; resume lifts it as it lifts `ctl kill`.
    ok(ep, &["resume"]);
    assert_eq!(state_word(&status(ep)), "ACTIVE");
    let st = engine.terminate();
    assert!(st.success(), "exit {st}:\n{}", engine.log());
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
