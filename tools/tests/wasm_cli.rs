//! WebAssembly strategies as a user drives them: `tickline replay --strategy-wasm` against the
//! native strategy with the same logic (same orders, fills and PnL), and `tickline ctl deploy` /
//! `undeploy` on a running engine (`tickline run` as a child process against the in-process
//! venue simulator). Loopback only; every wait is bounded.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use venue_sim::{SimConfig, SimPace, SimSource, VenueSim};

const BIN: &str = env!("CARGO_BIN_EXE_tickline");
const T: Duration = Duration::from_secs(20);
const PROBE: &str = include_str!("../../strategies/wasm-host/testdata/probe.wat");

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_wasm(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, wat::parse_str(text).unwrap()).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run tickline")
}

fn replay_json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The real capture if present, else a generated one.
fn capture(dir: &Path) -> PathBuf {
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/binance-spot/btcusdt_20240808.gz");
    if real.exists() {
        return real;
    }
    eprintln!(
        "NOTICE: {} absent; replaying a generated capture",
        real.display()
    );
    let p = dir.join("gen.tlc");
    let out = run(&[
        "gen-feed",
        "--out",
        p.to_str().unwrap(),
        "--events",
        "50000",
    ]);
    assert!(out.status.success());
    p
}

#[test]
fn replay_runs_a_wasm_probe_exactly_like_the_native_one() {
    let dir = tmp_dir("wasm-replay");
    let cap = capture(&dir);
    let wasm = write_wasm(&dir, "probe.wasm", PROBE);
    let common = [
        "replay",
        cap.to_str().unwrap(),
        "--json",
        "--io-cpu",
        "-1",
        "--core-cpu",
        "-1",
        "--idle",
        "backoff",
    ];
    let native = replay_json(&[&common[..], &["--strategy", "probe"]].concat());
    let guest = replay_json(&[&common[..], &["--strategy-wasm", wasm.to_str().unwrap()]].concat());
    assert!(native["orders_sent"].as_u64().unwrap() > 1000, "{native}");
    for k in [
        "events",
        "trades",
        "orders_sent",
        "fills",
        "canceled",
        "rejects",
        "pnl",
        "positions",
    ] {
        assert_eq!(native[k], guest[k], "{k}");
    }
    assert_eq!(guest["trader_restarts"], 0);
    // A bad module, or a bad host parameter, fails before anything runs, naming it.
    let bad = write_wasm(
        &dir,
        "wasi.wasm",
        &PROBE.replace(
            "(memory (export",
            "(import \"wasi_snapshot_preview1\" \"proc_exit\" (func (param i32)))\n  (memory (export",
        ),
    );
    for (args, needle) in [
        (
            vec!["--strategy-wasm", bad.to_str().unwrap()],
            "wasi_snapshot_preview1::proc_exit",
        ),
        (
            vec![
                "--strategy-wasm",
                wasm.to_str().unwrap(),
                "--param",
                "fuel=1",
            ],
            "fuel",
        ),
        (
            vec!["--strategy-wasm", "/nonexistent.wasm"],
            "/nonexistent.wasm",
        ),
    ] {
        let out = run(&[&common[..], &args[..]].concat());
        assert!(!out.status.success(), "{args:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

struct Engine {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Engine {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
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

fn ctl(sock: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["ctl", "--socket", sock.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(sock: &Path, args: &[&str]) -> String {
    let (good, out, err) = ctl(sock, args);
    assert!(good, "ctl {args:?}: {err}");
    out
}

fn refused(sock: &Path, args: &[&str]) -> String {
    let (good, out, err) = ctl(sock, args);
    assert!(!good, "ctl {args:?} should fail: {out}");
    err
}

fn symbol(sock: &Path, name: &str) -> Value {
    let v: Value = serde_json::from_str(ok(sock, &["status", "--json"]).trim()).unwrap();
    v["status"]["connections"][0]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == name)
        .cloned()
        .unwrap()
}

/// The wasm instance's counter `name` from its status line (`callbacks 12, …`).
fn counter(sym: &Value, name: &str) -> u64 {
    let state = sym["leader"]["traders"][0]["state"].as_str().unwrap_or("");
    state
        .split(", ")
        .find_map(|part| part.strip_prefix(&format!("{name} ")))
        .and_then(|n| n.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn wait(what: &str, engine: &Engine, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + T;
    while !f() {
        assert!(
            Instant::now() < end,
            "no {what} within {T:?}:\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctl_deploys_replaces_and_undeploys_wasm_strategies_on_a_running_engine() {
    let venue = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            events: 1_000_000,
            seed: 11,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2000),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = tmp_dir("wasm-ctl");
    let sock = dir.join("ctl.sock");
    let config = dir.join("live.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nio_cpu = -1\ncore_cpu = -1\nidle = \"backoff\"\n\n[venue]\nws_url = \"{}\"\nrest_url = \"{}\"\nsymbols = [\"BTCUSDT\", \"ETHUSDT\"]\ntrade = [\"BTCUSDT\"]\n\n[strategy]\nname = \"naive\"\n\n[control]\nsocket = \"{}\"\n",
            venue.ws_url(),
            venue.http_url(),
            sock.display()
        ),
    )
    .unwrap();
    let stderr = dir.join("engine.err");
    let child = Command::new(BIN)
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--status-every",
            "0",
        ])
        .current_dir(&dir)
        .stdout(std::fs::File::create(dir.join("engine.out")).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let engine = Engine {
        child: Some(child),
        stderr,
    };
    wait("control socket", &engine, || {
        engine.log().contains("control: listening")
    });
    let probe = write_wasm(&dir, "probe.wasm", PROBE);
    let wasi = write_wasm(
        &dir,
        "wasi.wasm",
        &PROBE.replace(
            "(memory (export",
            "(import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32 i32 i32 i32) (result i32)))\n  (memory (export",
        ),
    );
    let v2 = write_wasm(
        &dir,
        "v2.wasm",
        &PROBE.replace("(result i32) (i32.const 1))", "(result i32) (i32.const 2))"),
    );

    // Bad modules are refused with the reason; nothing changes.
    let e = refused(&sock, &["deploy", "ETHUSDT", wasi.to_str().unwrap()]);
    assert!(
        e.contains("wasi_snapshot_preview1::fd_write") && e.contains("nothing changed"),
        "{e}"
    );
    let e = refused(&sock, &["deploy", "ETHUSDT", v2.to_str().unwrap()]);
    assert!(e.contains("version 2") && e.contains("version 1"), "{e}");
    let e = refused(
        &sock,
        &[
            "deploy",
            "ETHUSDT",
            probe.to_str().unwrap(),
            "--memory-mb",
            "0",
        ],
    );
    assert!(e.contains("memory_mb"), "{e}");
    assert_eq!(symbol(&sock, "ETHUSDT")["state"], "idle");

    // Deploy on the idle symbol: it subscribes and trades.
    let m = ok(
        &sock,
        &[
            "deploy",
            "ETHUSDT",
            probe.to_str().unwrap(),
            "--fuel",
            "50000",
            "--memory-mb",
            "4",
        ],
    );
    assert!(
        m.contains("trading `wasm`") && m.contains("probe.wasm") && m.contains("fuel 50000"),
        "{m}"
    );
    wait("wasm orders on ETHUSDT", &engine, || {
        counter(&symbol(&sock, "ETHUSDT"), "orders") > 3
    });
    let eth = symbol(&sock, "ETHUSDT");
    assert_eq!(eth["strategy"], "wasm");
    assert_eq!(eth["leader"]["strategy"], "wasm probe.wasm");
    let text = ok(&sock, &["status"]);
    assert!(
        text.contains("fuel last") && text.contains("memory 64 KiB of 4096 KiB"),
        "{text}"
    );

    // A trading symbol: refused without --replace, swapped with it (the native orders canceled).
    let e = refused(&sock, &["deploy", "BTCUSDT", probe.to_str().unwrap()]);
    assert!(
        e.contains("already trades `naive`") && e.contains("--replace"),
        "{e}"
    );
    assert_eq!(symbol(&sock, "BTCUSDT")["strategy"], "naive");
    let m = ok(
        &sock,
        &["deploy", "BTCUSDT", probe.to_str().unwrap(), "--replace"],
    );
    assert!(m.contains("replaced") && m.contains("cancel"), "{m}");
    wait("wasm orders on BTCUSDT", &engine, || {
        counter(&symbol(&sock, "BTCUSDT"), "orders") > 3
    });

    // Undeploy: only a wasm strategy, and only once.
    ok(&sock, &["undeploy", "ETHUSDT"]);
    assert_eq!(symbol(&sock, "ETHUSDT")["state"], "idle");
    let e = refused(&sock, &["undeploy", "ETHUSDT"]);
    assert!(e.contains("not trading"), "{e}");
    // BTCUSDT traded on throughout.
    let before = counter(&symbol(&sock, "BTCUSDT"), "orders");
    wait("more BTCUSDT orders", &engine, || {
        counter(&symbol(&sock, "BTCUSDT"), "orders") > before
    });
    ok(&sock, &["start-trading", "ETHUSDT", "--strategy", "probe"]);
    let e = refused(&sock, &["undeploy", "ETHUSDT"]);
    assert!(
        e.contains("native `probe`") && e.contains("stop-trading"),
        "{e}"
    );
}
