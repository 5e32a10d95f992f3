//! The backtest report `tickline replay --report-dir` writes: its tables agree with its summary,
//! its summary with the run's own (`--json`), and its chart is well-formed SVG.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `../shared/data/<rel>` beside the workspace (or under `TICKLINE_SHARED_DATA`), if present.
fn shared_data(rel: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("TICKLINE_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    let p = dir.join(rel);
    if !p.exists() {
        eprintln!(
            "NOTICE: ../shared/data/{rel} is not present on this machine; this check was skipped"
        );
    }
    p.exists().then_some(p)
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickline-backtest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs tickline with `args` plus `--json` and the report directory; the run's JSON summary.
fn run_json(args: &[&str], dir: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args(args)
        .args([
            "--json",
            "--io-cpu",
            "-1",
            "--core-cpu",
            "-1",
            "--idle",
            "backoff",
        ])
        .arg("--report-dir")
        .arg(dir)
        .output()
        .expect("run tickline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tickline {args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// A CSV file's header and rows, split on commas.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("a header")
        .split(',')
        .map(String::from)
        .collect::<Vec<_>>();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{}: {r:?}", path.display());
    }
    (header, rows)
}

fn column<'a>(header: &[String], rows: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows.iter().map(|r| r[i].as_str()).collect()
}

/// Checks every file of the report in `dir` against the run's `run` summary; the report's
/// summary.
fn check_report(dir: &Path, run: &Value, strategy: &str) -> Value {
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
            .expect("summary.json parses");
    assert_eq!(summary["strategy"], strategy);
    assert_eq!(summary["records_dropped"], 0, "{summary}");
    assert_eq!(summary["orphan_updates"], 0, "{summary}");
    // The tables have as many rows as the summary counts, and the run agrees.
    let (oh, orders) = csv(&dir.join("orders.csv"));
    let (fh, fills) = csv(&dir.join("fills.csv"));
    assert_eq!(orders.len() as u64, summary["orders"].as_u64().unwrap());
    assert_eq!(fills.len() as u64, summary["fills"].as_u64().unwrap());
    assert_eq!(
        summary["orders"].as_u64().unwrap(),
        run["orders_sent"].as_u64().unwrap() + run["orders_denied"].as_u64().unwrap(),
        "{summary}\n{run}"
    );
    assert_eq!(summary["fills"], run["fills"]);
    assert_eq!(
        summary["orders_canceled"].as_u64().unwrap(),
        column(&oh, &orders, "state")
            .iter()
            .filter(|s| **s == "canceled")
            .count() as u64
    );
    // PnL is the run's own.
    for k in ["realized", "unrealized", "fees", "net"] {
        assert_eq!(summary["pnl"][k], run["pnl"][k], "pnl.{k}");
    }
    // The fees of the fills add up to the run's.
    let fees: f64 = column(&fh, &fills, "fee")
        .iter()
        .map(|f| f.parse::<f64>().unwrap())
        .sum();
    assert!((fees - run["pnl"]["fees"].as_f64().unwrap()).abs() < 1e-6);
    // Every fill's order is in orders.csv, and times run forwards.
    let ids = column(&oh, &orders, "client_id");
    for id in column(&fh, &fills, "client_id") {
        assert!(ids.contains(&id), "fill of unknown order {id}");
    }
    let times: Vec<u64> = column(&fh, &fills, "exch_ns")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(times.iter().all(|&t| t > 0));
    // The statistics are in range.
    let share = summary["time_in_market"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{summary}");
    assert!(summary["max_drawdown"].as_f64().unwrap() >= 0.0);
    if let Some(w) = summary["win_rate"].as_f64() {
        assert!((0.0..=1.0).contains(&w));
        assert!(summary["round_trips"].as_u64().unwrap() > 0);
    }
    // The chart is well-formed SVG with its lines and labels.
    let svg = std::fs::read_to_string(dir.join("pnl.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("pnl.svg parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let lines = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline")
        .count();
    assert!(lines >= 4, "three PnL lines and a position line: {lines}");
    let text: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    for label in ["realised", "unrealised", "net", "position"] {
        assert!(text.contains(label), "{label} missing from the chart");
    }
    summary
}

#[test]
fn a_generated_feed_gets_a_consistent_report() {
    // No files needed: the demo's generated feed, replayed.
    let dir = fresh_dir("demo");
    let run = run_json(
        &[
            "demo",
            "--replay",
            "--events",
            "20000",
            "--strategy",
            "naive",
        ],
        &dir,
    );
    let summary = check_report(&dir, &run, "naive");
    assert!(summary["orders"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(
        run["allocations_during_run"], 0,
        "the collector's are not the run's"
    );
    // Without a strategy there is no trading view, only the latency report.
    let dir = fresh_dir("none");
    run_json(
        &["demo", "--replay", "--events", "2000", "--strategy", "none"],
        &dir,
    );
    assert!(dir.join("latency.svg").exists());
    assert!(!dir.join("orders.csv").exists());
}

#[test]
fn the_real_capture_gets_a_consistent_report_for_each_strategy() {
    let Some(capture) = shared_data("binance-spot/btcusdt_20240808.gz") else {
        return;
    };
    let capture = capture.to_str().unwrap();
    for strategy in ["sma_cross", "naive"] {
        let dir = fresh_dir(strategy);
        let run = run_json(&["replay", capture, "--strategy", strategy], &dir);
        let summary = check_report(&dir, &run, strategy);
        assert!(summary["fills"].as_u64().unwrap() > 0, "{summary}");
        assert_eq!(summary["passes"], 1);
        assert_eq!(run["allocations_during_run"], 0);
    }
}

#[test]
fn a_repeated_replay_reports_every_pass() {
    let Some(capture) = shared_data("binance-spot/btcusdt_20240808.gz") else {
        return;
    };
    let dir = fresh_dir("repeat");
    let run = run_json(
        &[
            "replay",
            capture.to_str().unwrap(),
            "--strategy",
            "sma_cross",
            "--repeat",
            "2",
        ],
        &dir,
    );
    let summary = check_report(&dir, &run, "sma_cross");
    assert_eq!(summary["passes"], 2);
    let (fh, fills) = csv(&dir.join("fills.csv"));
    let passes = column(&fh, &fills, "pass");
    let times: Vec<u64> = column(&fh, &fills, "exch_ns")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(passes.iter().all(|p| *p == "0" || *p == "1"), "{passes:?}");
    // Both passes traded (the strategy's state carries over, so not necessarily alike), and the
    // pass column splits the fills where the exchange time jumps to the next pass (the capture
    // moved on by its span and a second).
    let split = passes
        .iter()
        .position(|p| *p == "1")
        .expect("fills in pass 1");
    assert!(split > 0, "fills in pass 0");
    assert!(passes[split..].iter().all(|p| *p == "1"));
    assert!(times[split] - times[split - 1] > 1_000_000_000);
}
