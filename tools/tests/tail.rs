//! Where the tail comes from, as a user sees it: `tickline hiccups`, and the threads and the
//! machine's hiccups in the `replay` and `demo` summaries.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn ok_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args(args)
        .output()
        .expect("run tickline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tickline {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickline-tail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn allowed_cpus() -> usize {
    tools::pin::process_cpus().len()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn assert_ordered(h: &Value) {
    assert!(u(h, "count") > 0, "{h}");
    assert!(u(h, "p50") <= u(h, "p99"), "{h}");
    assert!(u(h, "p99") <= u(h, "p999"), "{h}");
    assert!(u(h, "p999") <= u(h, "max"), "{h}");
    assert!(u(h, "over_100us") <= u(h, "over_10us"), "{h}");
    // The time-weighted view: ordered, never above the longest gap (a gap's remaining delays
    // are at most its length), and one sample per quantum of measured time.
    let d = &h["delay"];
    assert_eq!(u(d, "quantum_ns"), 1_000, "{h}");
    assert!(u(d, "p50") <= u(d, "p99"), "{h}");
    assert!(u(d, "p99") <= u(d, "p999"), "{h}");
    assert!(u(d, "p999") <= u(d, "max"), "{h}");
    assert!(u(d, "max") <= u(h, "max"), "{h}");
    if u(h, "measured_ns") >= 1_000 {
        assert!(u(d, "max") > 0, "{h}");
    }
}

/// Every thread but the core is kept off the core's CPU (with two CPUs or more), and the core
/// is listed with its counters.
fn assert_threads_off_core(v: &Value, expect: &[&str]) {
    let threads = v["threads"].as_array().expect("threads list");
    let names: Vec<&str> = threads.iter().filter_map(|t| t["name"].as_str()).collect();
    for want in expect {
        assert!(names.contains(want), "{want} not in {names:?}");
    }
    let core = threads
        .iter()
        .find(|t| t["role"] == "core")
        .expect("the core thread is listed");
    for k in ["voluntary_switches", "involuntary_switches", "minor_faults"] {
        assert!(core[k].is_u64(), "{core}");
    }
    if allowed_cpus() < 2 {
        eprintln!("NOTICE: one CPU allowed; the placement check is skipped");
        return;
    }
    assert_eq!(v["pinned"]["core"], true, "{}", v["pinned"]);
    let core_cpus = core["cpus"].as_array().unwrap();
    assert_eq!(core_cpus.len(), 1, "{core}");
    let core_cpu = &core_cpus[0];
    for t in threads.iter().filter(|t| t["role"] != "core") {
        let cpus = t["cpus"].as_array().unwrap();
        assert!(!cpus.is_empty(), "{t}");
        assert!(
            !cpus.contains(core_cpu),
            "{t} may run on the core's CPU {core_cpu}"
        );
    }
}

#[test]
fn hiccups_prints_ordered_percentiles() {
    let v = ok_json(&["hiccups", "--cpu", "-1", "--duration", "0.2", "--json"]);
    assert_ordered(&v);
    assert_eq!(v["pinned"], false);
    let v = ok_json(&["hiccups", "--duration", "0.1", "--json"]);
    assert_ordered(&v);
    let out = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args(["hiccups", "--cpu", "-1", "--duration", "0.05"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("p99.9") && text.contains("over 100 µs"),
        "{text}"
    );
}

#[test]
fn hiccups_refuses_a_bad_cpu() {
    let out = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args(["hiccups", "--cpu", "99999", "--duration", "0.01"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cpu 99999"));
}

#[test]
fn replay_summary_lists_threads_off_the_core_and_the_machine_hiccups() {
    let cap = tmp("gen.tlc");
    let out = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args([
            "gen-feed",
            "--out",
            cap.to_str().unwrap(),
            "--events",
            "20000",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Paced (slowly enough for a debug build's feed to wait between frames), so the core polls
    // empty between frames and measures the machine's gaps.
    let v = ok_json(&[
        "replay",
        cap.to_str().unwrap(),
        "--pace",
        "x100",
        "--strategy",
        "probe",
        "--idle",
        "spin",
        "--statsd",
        "127.0.0.1:9",
        "--json",
    ]);
    assert_ordered(&v["machine_hiccups"]);
    // The feed spins until each frame is due, and measures its own CPU's gaps meanwhile.
    assert_ordered(&v["feed_hiccups"]);
    assert_threads_off_core(
        &v,
        &["main", "tickline-feed", "tickline-core", "tickline-metrics"],
    );
    assert!(v["page_faults"]["minor"].is_u64(), "{}", v["page_faults"]);
    assert_eq!(v["memory_locked"], Value::Null);
    // As fast as possible, the feed never waits: nothing measured on its CPU.
    let asap = ok_json(&["replay", cap.to_str().unwrap(), "--json"]);
    assert_eq!(
        asap["feed_hiccups"],
        Value::Null,
        "{}",
        asap["feed_hiccups"]
    );
    let _ = std::fs::remove_dir_all(cap.parent().unwrap());
}

#[test]
fn demo_keeps_the_simulator_and_side_threads_off_the_core() {
    let v = ok_json(&["demo", "--events", "5000", "--idle", "backoff", "--json"]);
    assert!(u(&v, "messages") >= 5000, "{}", v["messages"]);
    assert_threads_off_core(
        &v,
        &[
            "main",
            "tickline-io",
            "tickline-rest",
            "tickline-core",
            "tickline-metrics",
        ],
    );
    // The simulator's threads are not spawned by the run: listed as `other`.
    let threads = v["threads"].as_array().unwrap();
    assert!(threads.iter().any(|t| t["role"] == "other"), "{threads:?}");
    assert!(v["memory_locked"].is_boolean(), "{}", v["memory_locked"]);
}
