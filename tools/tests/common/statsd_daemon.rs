//! The reference StatsD daemon (etsy/statsd, the npm package `statsd`, on Node.js) for the tests:
//! installed once into `target/statsd-daemon` with `npm install --prefix` (never globally; the
//! optional syslog and proxy dependencies left out), started on free loopback ports and killed
//! when dropped. Without `node` or `npm`, [`statsd_daemon`] says so plainly and the caller skips.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The reference daemon, pinned.
pub const STATSD_VERSION: &str = "0.9.0";
/// Upper bound for the daemon to start and for any admin answer.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// Upper bound for the one-time `npm install`.
pub const INSTALL_PATIENCE: Duration = Duration::from_secs(300);

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

pub fn runs(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `cmd` to completion within `limit`, killing it past that.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> bool {
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `stats.js` of the pinned daemon, installing it on first use; `None` (with a NOTICE) without
/// Node.js. Tests in this binary take turns; another process installing at the same time is
/// harmless: each installs into its own directory and renames it into place.
pub fn statsd_daemon() -> Option<PathBuf> {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !runs("node") || !runs("npm") {
        eprintln!("NOTICE: node or npm is not installed; the StatsD end-to-end test was skipped");
        return None;
    }
    let dir = target_dir().join("statsd-daemon");
    let stats_js = dir.join("node_modules/statsd/stats.js");
    let marker = dir.join(format!(".statsd-{STATSD_VERSION}-installed"));
    if marker.exists() && stats_js.exists() {
        return Some(stats_js);
    }
    let staging = target_dir().join(format!("statsd-daemon.installing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    let spec = format!("statsd@{STATSD_VERSION}");
    let ok = run_bounded(
        Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&staging)
            .args([
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--omit=optional",
                "--loglevel=error",
                &spec,
            ])
            .stdin(Stdio::null()),
        INSTALL_PATIENCE,
    );
    assert!(
        ok && staging.join("node_modules/statsd/stats.js").exists(),
        "npm install {spec} into {} failed (the npm registry must be reachable)",
        staging.display()
    );
    let manifest = std::fs::read_to_string(staging.join("node_modules/statsd/package.json"))
        .unwrap_or_default();
    assert!(
        manifest.contains(&format!("\"version\": \"{STATSD_VERSION}\"")),
        "installed statsd is not {STATSD_VERSION}"
    );
    std::fs::write(
        staging.join(format!(".statsd-{STATSD_VERSION}-installed")),
        &spec,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::rename(&staging, &dir).is_err() {
        // Another process put its copy in place first: use that one.
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(
        marker.exists() && stats_js.exists(),
        "no daemon at {}",
        dir.display()
    );
    Some(stats_js)
}

/// The running daemon; killed when dropped (also when the test panics).
pub struct Daemon {
    child: Child,
    /// The daemon's StatsD (UDP) port.
    pub udp_port: u16,
    /// Its admin (TCP) port.
    pub mgmt_port: u16,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("statsd.log")).unwrap_or_default();
            eprintln!("--- statsd daemon output ---\n{log}\n---");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts the daemon on free loopback ports and waits for its admin port. A free port taken by
/// someone else in between makes the daemon exit: then it tries again with new ones.
pub fn start_daemon(stats_js: &Path) -> Daemon {
    start_daemon_with(
        stats_js,
        "  flushInterval: 3600000,\n  backends: [],\n  deleteIdleStats: false,\n  dumpMessages: false,\n  debug: false\n",
    )
}

/// Like [`start_daemon`], with `tail` (the config's entries after the ports, each ending in a
/// newline) instead of the default no-backend, hour-long-flush settings.
pub fn start_daemon_with(stats_js: &Path, tail: &str) -> Daemon {
    for attempt in 0..3 {
        let dir =
            std::env::temp_dir().join(format!("tickline-statsd-{}-{attempt}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (udp_port, mgmt_port) = (free_udp_port(), free_tcp_port());
        let config = format!(
            "{{\n  address: \"127.0.0.1\",\n  port: {udp_port},\n  mgmt_address: \"127.0.0.1\",\n  \
             mgmt_port: {mgmt_port},\n{tail}}}\n"
        );
        let config_path = dir.join("config.js");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("statsd.log")).unwrap();
        let child = Command::new("node")
            .arg(stats_js)
            .arg(&config_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start node");
        let mut d = Daemon {
            child,
            udp_port,
            mgmt_port,
            dir,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if TcpStream::connect(("127.0.0.1", mgmt_port)).is_ok() {
                return d;
            }
            if d.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(d.dir.join("statsd.log")).unwrap_or_default();
        eprintln!("statsd did not come up (attempt {attempt}): {log}");
    }
    panic!("the StatsD daemon did not start");
}

impl Daemon {
    /// One admin command's answer (up to its `END`).
    pub fn admin(&self, cmd: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.mgmt_port)).expect("admin connect");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut text = Vec::new();
        let mut buf = [0u8; 65_536];
        while !String::from_utf8_lossy(&text).contains("END\n") {
            assert!(Instant::now() < deadline, "no END after {cmd:?}: {text:?}");
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("admin read: {e}"),
            }
        }
        String::from_utf8(text).unwrap()
    }

    /// The numeric entries of a `counters` or `gauges` answer (Node's `util.inspect` of an
    /// object: `{ 'a.b': 1, c: -0.5 }`, one entry a line when long).
    pub fn numbers(&self, cmd: &str) -> HashMap<String, f64> {
        let text = self.admin(cmd);
        let body = text.split("END").next().unwrap_or("");
        body.split([',', '\n'])
            .filter_map(|entry| {
                let entry = entry.trim().trim_start_matches('{').trim_end_matches('}');
                let (k, v) = entry.rsplit_once(':')?;
                let k = k.trim().trim_matches('\'').trim_matches('"');
                let v: f64 = v.trim().parse().ok()?;
                Some((k.to_string(), v))
            })
            .collect()
    }
}
