//! The observability stack in `deploy/observability` cannot rot: every series the Grafana
//! dashboard queries is one the engine emits, and every metric the engine emits is on the
//! dashboard (or named here as deliberately left off).
//!
//! - **Engine side.** A real `tickline demo` (simulator, sockets, core, paper venue) ships its
//!   metrics to a UDP socket of this test; the names and types of every StatsD line it sends are
//!   what the metrics thread produces.
//! - **Dashboard side.** Every Graphite target in `grafana/dashboards/tickline.json` (and the
//!   `$symbol` variable's query) is parsed for its series paths. The reference StatsD daemon's
//!   Graphite backend with `legacyNamespace` (our `statsd/udp.js`) writes a counter `X` as
//!   `stats_counts.X` (per flush) and `stats.X` (per second), and a gauge as `stats.gauges.X`;
//!   so each path names a type and an engine-side pattern, which must match at least one emitted
//!   name of that type.
//! - **Through the real daemon.** Where Node.js is installed, the pinned etsy/statsd daemon runs
//!   with our `statsd/udp.js` (only its ports, flush interval and Graphite host changed) and a
//!   Graphite plaintext-protocol listener of this test in carbon's place: every dashboard path
//!   must match a series the daemon actually writes to Graphite.
//! - **Files.** The compose file and the Grafana provisioning files parse as YAML, every
//!   bind-mounted source exists, and the data source uid, dashboard folder and mount paths agree.
//!   `docker compose config` checks the compose file too where the compose plugin is installed.

mod common;

use common::statsd_daemon::{run_bounded, start_daemon_with, statsd_daemon, PATIENCE};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Emitted metrics deliberately not on the dashboard, with the reason.
const NOT_ON_DASHBOARD: &[(&str, &str)] = &[(
    "tickline.latency.*.count",
    "sample counts per interval: a debugging aid, the rates panel shows the load",
)];

fn obs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Counter,
    Gauge,
}

/// Runs a short `tickline demo` shipping its metrics to `statsd` (UDP HOST:PORT).
fn run_demo(statsd: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args([
            "demo",
            "--events",
            "20000",
            "--io-cpu",
            "-1",
            "--core-cpu",
            "-1",
            "--statsd",
            statsd,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run tickline demo");
    assert!(
        out.status.success(),
        "tickline demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads StatsD datagrams from `sock` until `done` is set and the socket is quiet.
fn collect_datagrams(sock: UdpSocket, done: Arc<AtomicBool>) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + PATIENCE * 4;
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => lines.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            ),
            Err(_) if done.load(Ordering::Acquire) => break,
            Err(_) => assert!(Instant::now() < deadline, "demo ran too long"),
        }
    }
    lines
}

/// Runs the demo against a UDP socket of ours and returns the names and types it sent.
fn engine_metrics() -> BTreeMap<String, Kind> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = sock.local_addr().unwrap().to_string();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || collect_datagrams(sock, done))
    };
    run_demo(&target);
    done.store(true, Ordering::Release);
    let lines = reader.join().unwrap();
    let mut names = BTreeMap::new();
    for line in &lines {
        let (name, rest) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not a StatsD line: {line:?}"));
        let kind = match rest.rsplit_once('|').map(|(_, t)| t) {
            Some("c") => Kind::Counter,
            Some("g") => Kind::Gauge,
            other => panic!("unexpected StatsD type {other:?} in {line:?}"),
        };
        if let Some(before) = names.insert(name.to_string(), kind) {
            assert_eq!(before, kind, "{name} sent as two types");
        }
    }
    assert!(
        names.len() > 40,
        "the demo sent only {} metric names: {names:?}",
        names.len()
    );
    names
}

/// Every Graphite target of the dashboard, and the template variables' queries.
fn dashboard_targets() -> Vec<String> {
    let path = obs_dir().join("grafana/dashboards/tickline.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    let mut targets = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let target = t["target"].as_str().expect("a Graphite target string");
            targets.push(target.to_string());
        }
    }
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        targets.push(var["query"].as_str().expect("variable query").to_string());
    }
    assert!(targets.len() >= 20, "only {} targets", targets.len());
    targets
}

/// The series paths in a Graphite target expression: every token that starts with `stats`,
/// with `{a,b}` alternatives kept whole.
fn series_paths(target: &str) -> Vec<String> {
    let bytes: Vec<char> = target.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if at_word_start && target[target.char_indices().nth(i).unwrap().0..].starts_with("stats") {
            let mut depth = 0;
            let mut j = i;
            while j < bytes.len() {
                let c = bytes[j];
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth > 0 => {}
                    c if c.is_alphanumeric() || "._*$-".contains(c) => {}
                    _ => break,
                }
                j += 1;
            }
            paths.push(bytes[i..j].iter().collect());
            i = j;
        } else {
            i += 1;
        }
    }
    paths
}

/// The engine-side type and name pattern a Graphite path of the StatsD legacy namespace reads.
fn engine_side(path: &str) -> (Kind, String) {
    let path = path.replace("$symbol", "*");
    for (prefix, kind) in [
        ("stats_counts.", Kind::Counter),
        ("stats.gauges.", Kind::Gauge),
        ("stats.", Kind::Counter),
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            assert!(
                !rest.contains(['[', '?']),
                "{path}: only `*` and `{{a,b}}` globs are checked here"
            );
            return (kind, rest.to_string());
        }
    }
    panic!("{path} is not in StatsD's Graphite namespace");
}

/// Graphite glob match: nodes split on `.`, `*` within a node, `{a,b}` alternatives.
fn glob(pattern: &str, name: &str) -> bool {
    let p = split_nodes(pattern);
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len() && p.iter().zip(&n).all(|(p, n)| node_match(p, n))
}

fn split_nodes(pattern: &str) -> Vec<String> {
    let mut nodes = vec![String::new()];
    let mut depth = 0;
    for c in pattern.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            '.' if depth == 0 => {
                nodes.push(String::new());
                continue;
            }
            _ => {}
        }
        nodes.last_mut().unwrap().push(c);
    }
    nodes
}

fn node_match(p: &str, n: &str) -> bool {
    if let Some(open) = p.find('{') {
        let close = p[open..].find('}').expect("unbalanced {") + open;
        return p[open + 1..close]
            .split(',')
            .any(|alt| node_match(&format!("{}{alt}{}", &p[..open], &p[close + 1..]), n));
    }
    wildcard(p.as_bytes(), n.as_bytes())
}

fn wildcard(p: &[u8], n: &[u8]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some((b'*', rest)) => (0..=n.len()).any(|k| wildcard(rest, &n[k..])),
        Some((c, rest)) => n.first() == Some(c) && wildcard(rest, &n[1..]),
    }
}

#[test]
fn graphite_globs_match_as_graphite_does() {
    assert!(glob(
        "tickline.latency.*.p99",
        "tickline.latency.queue_wait.p99"
    ));
    assert!(!glob(
        "tickline.latency.*.p99",
        "tickline.latency.queue_wait.p999"
    ));
    assert!(!glob("tickline.*", "tickline.loop.polls"));
    assert!(glob(
        "tickline.pnl.*.{realized,unrealized}",
        "tickline.pnl.BTCUSDT.unrealized"
    ));
    assert!(!glob(
        "tickline.pnl.*.{realized,unrealized}",
        "tickline.pnl.BTCUSDT.net"
    ));
    assert_eq!(
        series_paths(
            "aliasByNode(stats.gauges.tickline.book.$symbol.{bid_levels,ask_levels}, 4, 5)"
        ),
        ["stats.gauges.tickline.book.$symbol.{bid_levels,ask_levels}"]
    );
    assert_eq!(
        series_paths("sumSeries(stats_counts.tickline.fills, stats.tickline.events)"),
        ["stats_counts.tickline.fills", "stats.tickline.events"]
    );
}

#[test]
fn the_dashboard_queries_only_what_the_engine_emits_and_shows_all_of_it() {
    let emitted = engine_metrics();
    let mut paths = BTreeSet::new();
    for t in dashboard_targets() {
        let found = series_paths(&t);
        assert!(!found.is_empty(), "no series path in target {t:?}");
        paths.extend(found);
    }
    let mut unknown = Vec::new();
    let mut patterns = Vec::new();
    for path in &paths {
        let (kind, pattern) = engine_side(path);
        let hits = emitted
            .iter()
            .filter(|(name, k)| **k == kind && glob(&pattern, name))
            .count();
        if hits == 0 {
            unknown.push(format!("{path} (a {kind:?} matching {pattern})"));
        }
        patterns.push(pattern);
    }
    assert!(
        unknown.is_empty(),
        "the dashboard queries series the engine never emits:\n  {}\nemitted: {:#?}",
        unknown.join("\n  "),
        emitted.keys().collect::<Vec<_>>()
    );
    let missing: Vec<&String> = emitted
        .keys()
        .filter(|name| !patterns.iter().any(|p| glob(p, name)))
        .filter(|name| !NOT_ON_DASHBOARD.iter().any(|(p, _)| glob(p, name)))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics the engine emits but the dashboard does not show (add a panel, or list them in \
         NOT_ON_DASHBOARD with a reason): {missing:?}"
    );
    eprintln!(
        "{} dashboard series paths checked against {} emitted metric names",
        paths.len(),
        emitted.len()
    );
}

/// Our `statsd/udp.js` with its ports, flush interval and Graphite host swapped for the test's;
/// every swap must find its original (so the shipped file is what runs).
fn test_config(graphite_port: u16) -> String {
    let shipped = std::fs::read_to_string(obs_dir().join("statsd/udp.js")).unwrap();
    let body = shipped
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let body = body.trim().trim_start_matches('{').trim_end_matches('}');
    let mut tail = String::new();
    let mut swapped = BTreeSet::new();
    for line in body.lines() {
        let key = line.trim().split(':').next().unwrap_or("").trim();
        let replaced = match key {
            // start_daemon_with writes these four itself.
            "port" | "address" | "mgmt_port" | "mgmt_address" => None,
            "flushInterval" => Some("  flushInterval: 500,".to_string()),
            "graphiteHost" => Some("  graphiteHost: \"127.0.0.1\",".to_string()),
            "graphitePort" => Some(format!("  graphitePort: {graphite_port},")),
            _ => Some(line.to_string()),
        };
        if matches!(
            key,
            "port"
                | "address"
                | "mgmt_port"
                | "mgmt_address"
                | "flushInterval"
                | "graphiteHost"
                | "graphitePort"
        ) {
            swapped.insert(key.to_string());
        }
        if let Some(l) = replaced {
            tail.push_str(&l);
            tail.push('\n');
        }
    }
    assert_eq!(
        swapped.len(),
        7,
        "statsd/udp.js lost one of its port/flush/Graphite settings: {swapped:?}"
    );
    assert!(
        tail.contains("legacyNamespace: true"),
        "the dashboard reads the legacy namespace"
    );
    tail
}

#[test]
fn the_reference_daemon_writes_the_series_the_dashboard_reads() {
    let Some(stats_js) = statsd_daemon() else {
        return;
    };
    // Carbon's plaintext protocol, `path value timestamp` lines over TCP.
    let carbon = TcpListener::bind("127.0.0.1:0").unwrap();
    let carbon_port = carbon.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    {
        let received = received.clone();
        std::thread::spawn(move || {
            for conn in carbon.incoming() {
                let Ok(conn) = conn else { break };
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { break };
                    if let Some(path) = line.split(' ').next() {
                        received.lock().unwrap().insert(path.to_string());
                    }
                }
            }
        });
    }
    let daemon = start_daemon_with(&stats_js, &test_config(carbon_port));
    run_demo(&format!("127.0.0.1:{}", daemon.udp_port));

    let paths: BTreeSet<String> = dashboard_targets()
        .iter()
        .flat_map(|t| series_paths(t))
        .map(|p| p.replace("$symbol", "*"))
        .collect();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = received.lock().unwrap().clone();
        let missing: Vec<&String> = paths
            .iter()
            .filter(|p| !got.iter().any(|g| glob(p, g)))
            .collect();
        if missing.is_empty() {
            eprintln!(
                "{} dashboard paths all found among {} Graphite series written by statsd",
                paths.len(),
                got.len()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "series the dashboard reads that statsd never wrote to Graphite: {missing:?}\n\
             written: {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn yaml(rel: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(obs_dir().join(rel)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

#[test]
fn compose_and_provisioning_files_are_valid_and_agree() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    for want in ["graphite", "grafana"] {
        assert!(
            services.contains_key(want),
            "docker-compose.yml has no {want} service"
        );
    }
    let mut mounts = BTreeMap::new();
    for (name, svc) in services {
        assert!(
            svc["image"].as_str().is_some_and(|i| i.contains(':')),
            "service {name:?} must pin its image tag"
        );
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let v = v.as_str().expect("short volume syntax");
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().expect("a target"));
            if let Some(rel) = src.strip_prefix("./") {
                assert!(
                    obs_dir().join(rel).exists(),
                    "{v}: {rel} is missing from deploy/observability"
                );
                mounts.insert(dst.to_string(), rel.to_string());
            }
        }
    }
    let graphite = &services["graphite"];
    let ports: Vec<&str> = graphite["ports"]
        .as_sequence()
        .expect("graphite ports")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        ports.iter().any(|p| p.ends_with("8125:8125/udp")),
        "StatsD must be published on UDP 8125: {ports:?}"
    );

    let datasources = yaml("grafana/provisioning/datasources/graphite.yml");
    let ds = &datasources["datasources"][0];
    assert_eq!(ds["type"].as_str(), Some("graphite"));
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(obs_dir().join("grafana/dashboards/tickline.json")).unwrap(),
    )
    .unwrap();
    for panel in dash["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"].as_str(),
            ds["uid"].as_str(),
            "panel {} uses another data source",
            panel["title"]
        );
    }
    let providers = yaml("grafana/provisioning/dashboards/tickline.yml");
    let folder = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    assert_eq!(
        mounts.get(folder).map(String::as_str),
        Some("grafana/dashboards"),
        "the provider reads {folder}, which must be the mounted dashboards folder ({mounts:?})"
    );
    assert_eq!(
        mounts.get("/etc/grafana/provisioning").map(String::as_str),
        Some("grafana/provisioning")
    );

    let compose_plugin = Command::new("docker")
        .args(["compose", "version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if compose_plugin {
        assert!(
            run_bounded(
                Command::new("docker")
                    .args(["compose", "-f"])
                    .arg(obs_dir().join("docker-compose.yml"))
                    .args(["config", "--quiet"]),
                PATIENCE
            ),
            "docker compose config refused docker-compose.yml"
        );
    } else {
        eprintln!(
            "NOTICE: the docker compose plugin is not installed; docker-compose.yml was checked \
             as YAML only"
        );
    }
}
