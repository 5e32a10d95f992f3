//! `examples/own-strategy/`, a trader's own crate outside the workspace, built as a user builds
//! it and run through the whole CLI it gets from `tools::cli::main_with`.

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

/// The workspace's target directory: this test binary is `<target>/<profile>/deps/<name>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf()
}

/// Builds the example with its committed lock file into `<target>/own-strategy` and returns its
/// binary.
fn build_example() -> PathBuf {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/own-strategy/Cargo.toml");
    let target = target_dir().join("own-strategy");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building examples/own-strategy failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("debug").join("own-tickline")
}

#[test]
fn the_example_crate_builds_and_replays_its_own_strategy_through_the_cli() {
    let bin = build_example();
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .output()
            .expect("run own-tickline");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // The whole CLI is there: its help lists the subcommands.
    let (ok, help, _) = run(&["--help"]);
    assert!(ok);
    for cmd in ["replay", "run", "ctl", "demo", "venue-sim"] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
    // A bad parameter of the crate's own strategy is refused by its own check, by name.
    let (ok, _, err) = run(&[
        "demo",
        "--replay",
        "--events",
        "1000",
        "--strategy",
        "dip",
        "--param",
        "dorp=0.1",
    ]);
    assert!(!ok);
    assert!(err.contains("dorp"), "{err}");
    // The built-in strategies are still there.
    let (ok, out, err) = run(&[
        "demo",
        "--replay",
        "--events",
        "20000",
        "--strategy",
        "naive",
        "--json",
        "--io-cpu",
        "-1",
        "--core-cpu",
        "-1",
        "--idle",
        "backoff",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert!(v["orders_sent"].as_u64().unwrap() > 0, "{v}");

    let Some(capture) = shared_data("binance-spot/btcusdt_20240808.gz") else {
        return;
    };
    let capture = capture.to_str().expect("a UTF-8 path");
    let (ok, out, err) = run(&[
        "replay",
        capture,
        "--strategy",
        "dip",
        "--json",
        "--io-cpu",
        "-1",
        "--core-cpu",
        "-1",
        "--idle",
        "backoff",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    let orders = v["orders_sent"].as_u64().unwrap();
    assert!(orders > 0, "dip sent no order on the real capture: {v}");
    assert!(v["fills"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["decode_errors"], 0);
    assert_eq!(v["allocations_during_run"], 0, "{v}");
    assert_eq!(v["strategy"], "dip", "{v}");
    // The human summary names the strategy that ran.
    let (ok, text, err) = run(&[
        "replay",
        capture,
        "--strategy",
        "dip",
        "--io-cpu",
        "-1",
        "--core-cpu",
        "-1",
        "--idle",
        "backoff",
    ]);
    assert!(ok, "{err}");
    let named = text
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["strategy", "dip"]);
    assert!(named, "the summary does not name the strategy:\n{text}");
}
