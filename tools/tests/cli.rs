//! The `tickline` binary as a user runs it.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn tickline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args(args)
        .output()
        .expect("run tickline")
}

fn ok_json(args: &[&str]) -> (Value, String) {
    let out = tickline(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "tickline {args:?} failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    (v, stderr)
}

fn err_text(args: &[&str]) -> String {
    let out = tickline(args);
    assert!(!out.status.success(), "tickline {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const UNPINNED: [&str; 4] = ["--io-cpu", "-1", "--core-cpu", "-1"];

#[test]
fn demo_runs_live_over_websocket_with_no_files_and_trades() {
    let mut args = vec!["demo", "--events", "20000", "--json", "--idle", "backoff"];
    args.extend(UNPINNED);
    let (v, _) = ok_json(&args);
    // Every frame the in-process simulator published arrived over the socket; the two books
    // synced from its REST snapshots.
    assert_eq!(v["messages"], 20_000);
    assert_eq!(v["book_syncs"], 2);
    assert_eq!(v["io"]["connects"], 1);
    assert_eq!(v["decode_errors"], 0);
    assert_eq!(v["book_gaps"], 0);
    assert!(v["orders_sent"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["orders_denied"], 0, "no risk limits on the paper venue");
    for stage in ["decode", "queue_wait", "strategy", "tick_to_order"] {
        for p in ["p50", "p99", "p999", "max"] {
            assert!(v["latency_ns"][stage][p].is_u64(), "{stage}.{p} in {v}");
        }
    }
    for key in ["ignored", "fills", "elapsed_ns", "msgs_per_sec"] {
        assert!(!v[key].is_null(), "{key} missing");
    }
    // The same feed replayed from memory: the two REST snapshots are frames there.
    let mut args = vec![
        "demo", "--replay", "--events", "20000", "--json", "--idle", "backoff",
    ];
    args.extend(UNPINNED);
    let (r, _) = ok_json(&args);
    assert_eq!(r["messages"], 20_002);
    assert_eq!(
        r["fills"], v["fills"],
        "paper fills run on venue time: live and replay agree"
    );
    // The human summary too, over wss://.
    let mut args = vec!["demo", "--tls", "--events", "2000", "--idle", "backoff"];
    args.extend(UNPINNED);
    let out = tickline(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("decode errors") && text.contains("p99.9"),
        "{text}"
    );
}

/// Orders refused by pre-trade risk are not orders sent: the summary (JSON and text) says
/// `orders_sent` and `orders_denied` apart, and no longer has one `orders` count for both.
#[test]
fn summary_reports_orders_sent_and_denied_apart() {
    let cfg = tmp("risk-tight.toml");
    // Three traders a symbol, one open order at a time (the rate limit out of the way, so
    // nothing depends on the wall clock): while one rests, the others' orders are denied.
    std::fs::write(
        &cfg,
        "[strategy]\nname = \"naive\"\n[strategy.params]\nchunks = 3\n\
         [risk]\nenabled = true\nmax_open_orders = 1\nrate_per_sec = 1000000\nburst = 1000000\n",
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let mut args = vec![
        "demo", "--replay", "--events", "20000", "--json", "--idle", "backoff", "--config", &cfg,
    ];
    args.extend(UNPINNED);
    let (v, _) = ok_json(&args);
    let sent = v["orders_sent"].as_u64().unwrap();
    let denied = v["orders_denied"].as_u64().unwrap();
    assert!(sent >= 1 && denied >= 1, "{v}");
    assert!(
        v.get("orders").is_none() && v.get("risk_denials").is_none(),
        "{v}"
    );
    assert!(
        v["rejects"].as_u64().unwrap() >= denied,
        "a denial reaches the strategy as a reject"
    );
    let args: Vec<&str> = args.into_iter().filter(|a| *a != "--json").collect();
    let out = tickline(&args);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("orders sent"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&format!("denied by risk {denied}")), "{line}");
}

#[test]
fn generated_captures_replay_cleanly_in_both_formats() {
    let tlc = tmp("two.tlc");
    let out = tickline(&[
        "gen-feed",
        "--out",
        tlc.to_str().unwrap(),
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--events",
        "5000",
        "--seed",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = vec![
        "replay",
        tlc.to_str().unwrap(),
        "--json",
        "--idle",
        "backoff",
    ];
    args.extend(UNPINNED);
    let (v, _) = ok_json(&args);
    assert_eq!(v["messages"], 5_002);
    assert_eq!(v["decode_errors"], 0);
    assert_eq!(v["book_syncs"], 2, "{v}");
    assert_eq!(v["book_gaps"], 0);

    let gz = tmp("one.gz");
    let out = tickline(&[
        "gen-feed",
        "--out",
        gz.to_str().unwrap(),
        "--symbols",
        "ETHUSDT",
        "--events",
        "3000",
    ]);
    assert!(out.status.success());
    let mut args = vec![
        "replay",
        gz.to_str().unwrap(),
        "--symbol",
        "ETHUSDT",
        "--json",
        "--strategy",
        "none",
        "--pace",
        "x1000",
    ];
    args.extend(UNPINNED);
    let (v, _) = ok_json(&args);
    assert_eq!(v["messages"], 3_001);
    assert_eq!(v["book_syncs"], 1);
    assert_eq!(v["orders_sent"], 0);

    // The same file replayed for the wrong symbol: its frames are ignored, and said so.
    let mut args = vec![
        "replay",
        gz.to_str().unwrap(),
        "--symbol",
        "BTCUSDT",
        "--json",
        "--strategy",
        "none",
    ];
    args.extend(UNPINNED);
    let (v, _) = ok_json(&args);
    assert!(v["ignored"].as_u64().unwrap() > 2_000, "{v}");

    let e = err_text(&[
        "gen-feed",
        "--out",
        tmp("x.gz").to_str().unwrap(),
        "--symbols",
        "BTCUSDT,ETHUSDT",
    ]);
    assert!(e.contains("symbol"), "{e}");
}

/// `--repeat N` replays the one capture N times, each pass a fresh session (as after a
/// reconnect) that syncs every book from its own snapshots: N times the work, no gap.
#[test]
fn repeat_replays_each_pass_as_a_fresh_session() {
    let tlc = tmp("repeat.tlc");
    let out = tickline(&[
        "gen-feed",
        "--out",
        tlc.to_str().unwrap(),
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--events",
        "4000",
        "--seed",
        "5",
    ]);
    assert!(out.status.success());
    let run = |repeat: &str| {
        let mut args = vec![
            "replay",
            tlc.to_str().unwrap(),
            "--json",
            "--idle",
            "backoff",
            "--strategy",
            "probe",
            "--repeat",
            repeat,
        ];
        args.extend(UNPINNED);
        ok_json(&args).0
    };
    let one = run("1");
    let three = run("3");
    assert_eq!(one["book_syncs"], 2, "{one}");
    assert_eq!(three["messages"], 3 * one["messages"].as_u64().unwrap());
    assert_eq!(three["book_syncs"], 6, "two books, three passes: {three}");
    assert_eq!(three["book_gaps"], 0, "{three}");
    // The generated capture starts each session with its snapshot, ahead of every diff: no
    // pass has to ask for one.
    assert_eq!(
        three["resync_requests"], 0,
        "each pass syncs from its own snapshot: {three}"
    );
    assert_eq!(three["decode_errors"], 0);
    assert_eq!(three["allocations_during_run"], 0);
    let orders = one["orders_sent"].as_u64().unwrap();
    assert!(orders > 0, "{one}");
    assert_eq!(
        three["orders_sent"],
        3 * orders,
        "probe orders alike in every pass"
    );
}

/// #17.6: a 27-byte gzip capture whose trailer claims 4,080,547,489 bytes made the simulator
/// (which loads a capture whole) allocate them and abort under a memory limit. Under a 1 GB
/// address-space limit it now fails at once with a message naming the lie.
#[test]
fn venue_sim_refuses_a_gzip_capture_whose_trailer_lies_without_allocating_it() {
    use std::io::Write;
    let path = tmp("claims4g.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b"1 {}\n2 {}\n").unwrap();
    let mut gz = e.finish().unwrap();
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&4_080_547_489u32.to_le_bytes());
    std::fs::write(&path, &gz).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 1000000 && exec "$0" venue-sim --capture "$1""#)
        .arg(env!("CARGO_BIN_EXE_tickline"))
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("venue-sim served a capture that lies about its size");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "killed by a signal? {status:?}: {stderr}"
    );
    assert!(
        stderr.contains("corrupt gzip capture")
            && stderr.contains("claims 4080547489 bytes uncompressed"),
        "{stderr}"
    );
}

#[test]
fn a_torn_capture_is_reported_and_the_rest_replayed() {
    let tlc = tmp("torn.tlc");
    assert!(tickline(&[
        "gen-feed",
        "--out",
        tlc.to_str().unwrap(),
        "--events",
        "1000"
    ])
    .status
    .success());
    let len = std::fs::metadata(&tlc).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&tlc).unwrap();
    f.set_len(len - 7).unwrap();
    let mut args = vec![
        "replay",
        tlc.to_str().unwrap(),
        "--json",
        "--strategy",
        "none",
    ];
    args.extend(UNPINNED);
    let (v, stderr) = ok_json(&args);
    assert_eq!(v["messages"], 1_000, "all complete records replayed");
    assert!(
        stderr.contains(" WARN tickline::replay: unreadable record"),
        "{stderr}"
    );
}

#[test]
fn bad_input_fails_with_a_message_naming_it() {
    let cfg = tmp("bad.toml");
    std::fs::write(&cfg, "[engine]\ncore_cpux = 1\n").unwrap();
    let e = err_text(&["demo", "--config", cfg.to_str().unwrap()]);
    assert!(e.contains("core_cpux"), "{e}");
    std::fs::write(&cfg, "[engine]\nidle = \"sleepy\"\n").unwrap();
    let e = err_text(&["demo", "--config", cfg.to_str().unwrap()]);
    assert!(e.contains("engine.idle") && e.contains("sleepy"), "{e}");
    let e = err_text(&["demo", "--param", "chunkz=2"]);
    assert!(e.contains("chunkz"), "{e}");
    let e = err_text(&["demo", "--strategy", "martingale"]);
    assert!(e.contains("martingale"), "{e}");
    let e = err_text(&["demo", "--pace", "fast"]);
    assert!(e.contains("fast"), "{e}");
    let e = err_text(&["replay", "/nonexistent/capture.gz"]);
    assert!(e.contains("/nonexistent/capture.gz"), "{e}");
}

#[test]
fn a_missing_cpu_warns_once_per_thread_and_the_run_goes_on() {
    for (mode, io_role) in [("--replay", "feed"), ("--tls", "I/O")] {
        let (v, stderr) = ok_json(&[
            "demo",
            mode,
            "--events",
            "2000",
            "--json",
            "--io-cpu",
            "4000",
            "--core-cpu",
            "4001",
            "--idle",
            "backoff",
        ]);
        assert_eq!(v["decode_errors"], 0);
        assert_eq!(v["pinned"]["feed"], false);
        assert_eq!(v["pinned"]["core"], false);
        let io_warning =
            format!("WARN tickline::pin: {io_role} thread not pinned: CPU 4000 is not available");
        assert_eq!(stderr.matches(&io_warning).count(), 1, "{stderr}");
        assert_eq!(
            stderr
                .matches("WARN tickline::pin: core thread not pinned: CPU 4001")
                .count(),
            1,
            "{stderr}"
        );
    }
}

/// A `tickline venue-sim` process; killed on drop.
struct SimProcess {
    child: std::process::Child,
    ws: String,
    http: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venue_sim(args: &[&str]) -> SimProcess {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .arg("venue-sim")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start venue-sim");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut ws, mut http) = (String::new(), String::new());
    while ws.is_empty() || http.is_empty() {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("venue-sim prints its addresses");
        if let Some(u) = line.strip_prefix("ws ") {
            ws = u.trim().to_string();
        } else if let Some(u) = line.strip_prefix("http ") {
            http = u.trim().to_string();
        }
    }
    SimProcess { child, ws, http }
}

fn live_config(sim: &SimProcess, name: &str) -> PathBuf {
    let cfg = tmp(name);
    std::fs::write(
        &cfg,
        format!(
            "[venue]\nws_url = \"{}\"\nrest_url = \"{}\"\n[engine]\nio_cpu = -1\ncore_cpu = -1\nidle = \"backoff\"\n[control]\nsocket = \"{}\"\n",
            sim.ws,
            sim.http,
            cfg.with_extension("sock").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn run_stops_cleanly_on_sigterm_with_the_summary() {
    let sim = venue_sim(&["--events", "1000000", "--pace", "rate:5000"]);
    let cfg = live_config(&sim, "run.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "--status-every",
            "0.5",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2_000));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("INFO tickline::status: status") && stderr.contains("connected=1"),
        "status line: {stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("the JSON summary");
    assert!(v["messages"].as_u64().unwrap() > 1_000, "{v}");
    assert_eq!(v["decode_errors"], 0);
    assert_eq!(v["book_syncs"], 1);
    assert_eq!(v["io"]["connects"], 1);
}

#[test]
fn record_writes_a_capture_that_replay_reads() {
    let sim = venue_sim(&["--events", "1000000", "--pace", "rate:5000"]);
    let cfg = live_config(&sim, "record.toml");
    let out_file = tmp("recorded.tlc");
    let out = tickline(&[
        "record",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
        "--duration",
        "1.5",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut args = vec![
        "replay",
        out_file.to_str().unwrap(),
        "--json",
        "--strategy",
        "none",
    ];
    args.extend(UNPINNED);
    let (v, _) = ok_json(&args);
    // Every recorded frame plus the REST snapshot record.
    assert_eq!(
        v["messages"].as_u64().unwrap(),
        live["messages"].as_u64().unwrap() + 1,
        "{v}"
    );
    assert_eq!(v["decode_errors"], 0);
    assert_eq!(
        v["book_syncs"], 1,
        "the recorded snapshot bridges the recorded diffs"
    );
    assert_eq!(v["book_gaps"], 0);
}

/// `--stream` reads the capture through the reader thread and does exactly what `--in-memory`
/// does: the same counters, also over repeated passes and with a torn last record.
#[test]
fn streamed_and_in_memory_replays_agree() {
    let tlc = tmp("stream.tlc");
    assert!(tickline(&[
        "gen-feed",
        "--out",
        tlc.to_str().unwrap(),
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--events",
        "6000",
        "--seed",
        "9",
    ])
    .status
    .success());
    let len = std::fs::metadata(&tlc).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&tlc).unwrap();
    f.set_len(len - 5).unwrap();
    let run = |mode: &str| {
        let mut args = vec![
            "replay",
            tlc.to_str().unwrap(),
            mode,
            "--progress",
            "--json",
            "--idle",
            "backoff",
            "--strategy",
            "ema_cross",
            "--repeat",
            "3",
        ];
        args.extend(UNPINNED);
        ok_json(&args)
    };
    let (memory, _) = run("--in-memory");
    let (streamed, stderr) = run("--stream");
    for key in [
        "messages",
        "events",
        "book_syncs",
        "book_gaps",
        "resync_requests",
        "orders_sent",
        "fills",
        "rejects",
        "decode_errors",
    ] {
        assert_eq!(streamed[key], memory[key], "{key}: {streamed} vs {memory}");
    }
    assert_eq!(streamed["messages"], 3 * 6_001, "{streamed}");
    assert_eq!(streamed["book_syncs"], 6);
    assert!(streamed["orders_sent"].as_u64().unwrap() > 0, "{streamed}");
    assert_eq!(
        streamed["allocations_during_run"].as_u64().map(|a| a < 20),
        Some(true)
    );
    assert!(stderr.contains("warning"), "the torn record: {stderr}");
    assert!(
        stderr.contains("% ") || stderr.contains("%)"),
        "progress: {stderr}"
    );
    assert!(stderr.contains("pass 3, done"), "progress: {stderr}");

    let e = err_text(&["replay", tlc.to_str().unwrap(), "--stream", "--in-memory"]);
    assert!(e.contains("--in-memory"), "{e}");
}
