//! The container image (`Dockerfile`, `.dockerignore`).
//!
//! Always: the Dockerfile's shape is checked (a multi-stage build whose last stage runs a
//! minimal base as a non-root user and copies in the binary and nothing else). Where a Docker
//! daemon answers (`docker info`), the image is built and `tickline demo` runs in it with a
//! read-only root filesystem; elsewhere that test says so in a NOTICE and returns.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Dockerfile's instructions (continuations joined, comments dropped) as (KEYWORD, rest).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (k, rest) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((k.to_ascii_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_ships_only_the_binary() {
    let text = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    let ins = instructions(&text);
    let froms: Vec<usize> = (0..ins.len()).filter(|&i| ins[i].0 == "FROM").collect();
    assert!(froms.len() >= 2, "a multi-stage build: {ins:?}");
    let build = &ins[froms[0]].1;
    assert!(
        build.starts_with("rust:") || build.contains("/rust:"),
        "built on a Rust image: {build}"
    );
    assert!(build.ends_with(" AS build"), "{build}");
    assert!(
        ins.iter().any(|(k, v)| k == "RUN"
            && v.contains("cargo build --release --locked -p tools --bin tickline")),
        "the binary is built with cargo, from the lock file"
    );
    let last = &ins[*froms.last().unwrap()..];
    let base = &last[0].1;
    assert!(
        base.contains("distroless") || base.contains("-slim"),
        "a minimal runtime base: {base}"
    );
    let copies: Vec<&String> = last
        .iter()
        .filter(|(k, _)| k == "COPY" || k == "ADD")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        copies,
        ["--from=build /out/tickline /usr/local/bin/tickline"],
        "the runtime stage copies the binary and nothing else"
    );
    assert!(
        !last.iter().any(|(k, _)| k == "RUN"),
        "nothing runs in the runtime stage (no shell there)"
    );
    let users: Vec<&String> = last
        .iter()
        .filter(|(k, _)| k == "USER")
        .map(|(_, v)| v)
        .collect();
    let user = users.last().expect("a USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "a numeric non-root user (runAsNonRoot checks it): {user}"
    );
    assert!(
        last.iter()
            .any(|(k, v)| k == "ENTRYPOINT" && v == r#"["/usr/local/bin/tickline"]"#),
        "the entrypoint is the binary"
    );

    let ignore = std::fs::read_to_string(workspace().join(".dockerignore")).unwrap();
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for must in [".git", "**/target", "fuzz"] {
        assert!(lines.contains(&must), ".dockerignore lacks {must}");
    }
}

/// Runs `cmd` to the end or kills it after `limit`; (success, stdout, stderr).
fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("tickline-container-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let res = (ok, read(&out), read(&err));
    let _ = std::fs::remove_dir_all(&dir);
    res
}

#[test]
fn image_builds_and_runs_the_demo_read_only() {
    let daemon = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !daemon {
        eprintln!(
            "NOTICE: no Docker daemon answers `docker info` here; the image build and the demo in it were skipped"
        );
        return;
    }
    let tag = format!("tickline-test:{}", std::process::id());
    let (ok, _, err) = run(
        Command::new("docker")
            .args(["build", "-t", &tag, "."])
            .current_dir(workspace()),
        Duration::from_secs(3600),
    );
    assert!(ok, "docker build failed:\n{err}");
    let (ok, out, err) = run(
        Command::new("docker").args([
            "run",
            "--rm",
            "--read-only",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            &tag,
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
        ]),
        Duration::from_secs(300),
    );
    if !ok {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        panic!("tickline demo in the image failed:\n{err}");
    }
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(report["io"]["frames"], 20000, "{report}");
    assert_eq!(report["decode_errors"], 0, "{report}");
    let (ok, out, _) = run(
        Command::new("docker").args(["run", "--rm", "--entrypoint", "id", &tag]),
        Duration::from_secs(60),
    );
    let (shell, _, _) = run(
        Command::new("docker").args(["run", "--rm", "--entrypoint", "/bin/sh", &tag, "-c", "true"]),
        Duration::from_secs(60),
    );
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", &tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        !ok,
        "the image has no `id` program, nothing but the binary: {out}"
    );
    assert!(!shell, "the image has no shell");
}
