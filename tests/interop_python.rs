//! Interop: the live engine against an independent WebSocket server (Python's `websockets`)
//! serving Binance-format frames over real loopback sockets.
//!
//! Set-up is the test's own: it makes a virtual environment under `target/test-venv` and
//! installs a pinned `websockets` there (never a global install). Without `python3` it says so
//! plainly and skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tools::config::Config;
use tools::live::{run_live, LiveOptions};

const WEBSOCKETS: &str = "websockets==15.0.1";

fn venv_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/test-venv");
    let py = venv.join("bin/python");
    let ready = venv.join(".websockets-installed");
    if ready.exists() {
        return Some(py);
    }
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("NOTICE: python3 is not installed; the interop test was skipped");
        return None;
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "python3 -m venv {} failed", venv.display());
    let ok = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            WEBSOCKETS,
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "pip install {WEBSOCKETS} into {} failed (the package registry must be reachable)",
        venv.display()
    );
    std::fs::write(&ready, WEBSOCKETS).unwrap();
    Some(py)
}

struct Server {
    child: Child,
    ws_port: u16,
    http_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(py: &Path, capture: &Path) -> Server {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/binance_ws_server.py");
    let mut child = Command::new(py)
        .arg(script)
        .arg(capture)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the Python server did not start within 30 s");
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"READY"), "server said {line:?}");
    Server {
        child,
        ws_port: parts[1].parse().unwrap(),
        http_port: parts[2].parse().unwrap(),
    }
}

#[test]
fn engine_reads_binance_frames_from_python_websockets() {
    let Some(py) = venv_python() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tickline-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("feed.txt");
    let events = 20_000u64;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&capture).unwrap());
    let gen = venue_sim::gen::GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events,
        seed: 9,
        start_ns: 1,
    };
    venue_sim::gen::write_line_capture(&gen, &mut file).unwrap();
    drop(file);
    let text = std::fs::read_to_string(&capture).unwrap();
    let trades = text.lines().filter(|l| l.contains("@trade\"")).count() as u64;

    let server = start_server(&py, &capture);
    let mut cfg = Config::default();
    cfg.venue.ws_url = format!("ws://127.0.0.1:{}", server.ws_port);
    cfg.venue.rest_url = format!("http://127.0.0.1:{}", server.http_port);
    cfg.venue.exchange_info = false;
    cfg.engine.io_cpu = Some(-1);
    cfg.engine.core_cpu = Some(-1);
    cfg.engine.idle = "backoff".into();
    cfg.validate().unwrap();

    let report = run_live(LiveOptions {
        cfg,
        strategy: None,
        custom_strategy: None,
        record: None,
        duration: Some(Duration::from_secs(60)),
        status_every: None,
        stop: Arc::new(AtomicBool::new(false)),
        done: Some(Box::new(move |t| t.frames >= events)),
    })
    .unwrap();
    assert_eq!(report.frames, events, "every frame sent arrived");
    assert_eq!(report.decode.decode_errors, 0);
    assert_eq!(report.core.trades, trades, "every trade decoded");
    assert_eq!(report.core.book_syncs, 1, "{:?}", report.core);
    assert_eq!(
        report.core.book_gaps, 0,
        "diffs arrived in order with no gap"
    );
    assert_eq!(report.ring.dropped, 0);
}
