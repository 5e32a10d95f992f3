//! Secrets never leak: `tickline run` trades live against the in-process venue simulator with
//! known fake credentials (an HMAC key and secret from the environment; an Ed25519 key from a
//! key file), with a journal, a recorder capture, StatsD pointed at a UDP socket this test
//! reads, and the control socket. Everything the engine produces is collected: its stdout and
//! stderr, the capture, the journal, every StatsD datagram, `tickline ctl status` (text and
//! `--json`), and the errors of broken configs and key files that contain the secret. None of
//! it may contain the API key or the secret (or the Ed25519 private key).
//!
//! The API key does go to the venue in every signed request, on the order connection; the
//! recorder does not record that connection, so the capture must not hold it either.
//!
//! Loopback only; every wait is bounded.

use std::net::UdpSocket;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use venue_sim::{SimAuth, SimConfig, SimKey, SimPace, SimSecret, SimSource, VenueSim};

const BIN: &str = env!("CARGO_BIN_EXE_tickline");

/// Upper bound of any single wait.
const T: Duration = Duration::from_secs(20);

/// The fake HMAC credentials: unique, greppable, never printed by this test.
const HMAC_KEY: &str = "tl-fake-key-5f3a9c1e7b2d40868e1f";
const HMAC_SECRET: &str = "tl-fake-secret-9d41e6b07c3a52f8a6c0";
/// The fake Ed25519 API key and its private key (PKCS#8 PEM of the seed
/// `8c3e51f0..a9b256`): the PEM's body is what must never be printed.
const ED_KEY: &str = "tl-fake-edkey-27c94b1d03e8f5a6";
const ED_PEM_BODY: &str = "MC4CAQAwBQYDK2VwBCIEIIw+UfCifZRrDl/IE9emIptPAePIel1rksDxTn04qbJW";
const ED_SEED_HEX: &str = "8c3e51f0a27d946b0e5fc813d7a6229b4f01e3c87a5d6b92c0f14e7d38a9b256";

/// Everything one source of output held, by name.
type Outputs = Vec<(String, Vec<u8>)>;

fn tmp_dir(name: &str) -> PathBuf {
    // Short: the control socket's path must stay under ~100 bytes.
    let d = std::env::temp_dir().join(format!("tl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `text` to a new file readable by its owner only (as key files must be).
fn private_file(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn sim() -> VenueSim {
    VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 1_000_000,
            seed: 5,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        // Strict, as Binance: the fake keys are the simulator's only accounts, so every
        // signature the engine makes with them is verified.
        auth: SimAuth::Strict(fake_keys()),
        ..SimConfig::default()
    })
    .expect("start the venue simulator")
}

/// The fake credentials as the simulator's known keys (HMAC secret; Ed25519 public key).
fn fake_keys() -> Vec<SimKey> {
    let seed: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&ED_SEED_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let seed: [u8; 32] = seed.try_into().unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    vec![
        SimKey {
            api_key: HMAC_KEY.into(),
            secret: SimSecret::Hmac(HMAC_SECRET.as_bytes().to_vec()),
            user_data_stream: true,
        },
        SimKey {
            api_key: ED_KEY.into(),
            secret: SimSecret::Ed25519(public),
            user_data_stream: true,
        },
    ]
}

/// A config trading live with `sma_cross` (an order every few trades) on the simulator.
/// `credentials`: the `[orders]` lines naming where the key comes from.
fn config(dir: &Path, sim: &VenueSim, statsd: &str, credentials: &str) -> PathBuf {
    let text = format!(
        r#"[engine]
io_cpu = -1
core_cpu = -1
idle = "backoff"

[venue]
ws_url = "{ws}"
rest_url = "{http}"
symbols = ["BTCUSDT"]

[strategy]
name = "sma_cross"
[strategy.params]
fast = 2
slow = 4
qty = "0.001"

[orders]
enabled = true
url = "{ws}/ws-api/v3"
{credentials}
journal = "{journal}"
fsync = "never"

[risk]
rate_per_sec = 10000
burst = 10000
max_position = "1000"
max_open_orders = 1000

[metrics]
statsd = "{statsd}"
interval_ms = 100

[control]
socket = "{socket}"
"#,
        ws = sim.ws_url(),
        http = sim.http_url(),
        journal = dir.join("orders.tlj").display(),
        socket = dir.join("ctl.sock").display(),
    );
    let path = dir.join("live.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Collects every datagram sent to a local UDP socket until dropped.
struct StatsdSink {
    addr: String,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatsdSink {
    fn start() -> StatsdSink {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, stop) = (got.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        got.lock().unwrap().push(buf[..n].to_vec());
                    }
                }
            })
        };
        StatsdSink {
            addr,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        // Whatever the engine sent before it exited has arrived on loopback by now; one more
        // read timeout drains the socket.
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

impl Drop for StatsdSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Kills the engine if a check fails before it stopped.
struct Engine(Option<Child>);

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .arg("--socket")
        .arg(dir.join("ctl.sock"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs the engine with `env` until the venue has placed `orders` of its orders and StatsD has
/// had a few intervals' datagrams, asks the control socket for its status, stops it with
/// SIGTERM, and returns everything it produced.
fn live_run(name: &str, credentials: &str, env: &[(&str, &str)], orders: u64) -> Outputs {
    let dir = tmp_dir(name);
    let venue = sim();
    let statsd = StatsdSink::start();
    let cfg = config(&dir, &venue, &statsd.addr, credentials);
    let capture = dir.join("capture.tlc");
    let (out, err) = (dir.join("engine.out"), dir.join("engine.err"));
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--json", "--status-every", "0.2", "--config"])
        .arg(&cfg)
        .arg("--record")
        .arg(&capture)
        .current_dir(&dir)
        .env_remove("TICKLINE_API_KEY")
        .env_remove("TICKLINE_API_SECRET")
        .env_remove("TICKLINE_ED25519_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut engine = Engine(Some(cmd.spawn().expect("spawn tickline run")));
    let log = || std::fs::read_to_string(&err).unwrap_or_default();
    let end = Instant::now() + T;
    loop {
        let placed = venue.stats().orders.placed;
        let child = engine.0.as_mut().unwrap();
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{name}: the engine exited ({st}) early:\n{}", log());
        }
        // The control socket is up once the engine trades.
        let datagrams = statsd.got.lock().unwrap().len();
        if placed >= orders && datagrams >= 5 && dir.join("ctl.sock").exists() {
            break;
        }
        assert!(
            Instant::now() < end,
            "{name}: {placed} orders placed, {datagrams} StatsD datagrams within {T:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = ctl(&dir, &["status"]);
    let status_json = ctl(&dir, &["status", "--json"]);
    assert!(status.status.success(), "{name}: ctl status failed");
    assert!(status_json.status.success(), "{name}: ctl status --json");
    serde_json::from_slice::<serde_json::Value>(&status_json.stdout)
        .expect("ctl status --json prints JSON");
    let mut child = engine.0.take().unwrap();
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let end = Instant::now() + T;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{name}: no exit within {T:?} of SIGTERM:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "{name}: exit {st}:\n{}", log());
    let datagrams = statsd.finish();
    assert!(!datagrams.is_empty(), "{name}: StatsD got nothing");
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut outputs: Outputs = vec![
        (format!("{name}: stdout"), read(&out)),
        (format!("{name}: stderr"), read(&err)),
        (format!("{name}: capture"), read(&capture)),
        (format!("{name}: journal"), read(&dir.join("orders.tlj"))),
        (format!("{name}: ctl status"), status.stdout),
        (format!("{name}: ctl status stderr"), status.stderr),
        (format!("{name}: ctl status --json"), status_json.stdout),
    ];
    for (i, d) in datagrams.into_iter().enumerate() {
        outputs.push((format!("{name}: StatsD datagram {i}"), d));
    }
    for (what, bytes) in &outputs[..5] {
        assert!(!bytes.is_empty(), "{what} is empty: nothing was checked");
    }
    let _ = std::fs::remove_dir_all(&dir);
    outputs
}

/// Runs `tickline run` on a config (or key file) that is refused; returns its output.
fn refused(name: &str, config_text: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Outputs {
    let dir = tmp_dir(name);
    for (file, text) in files {
        private_file(
            &dir.join(file),
            &text.replace("$DIR", &dir.display().to_string()),
        );
    }
    let cfg = dir.join("broken.toml");
    std::fs::write(
        &cfg,
        config_text.replace("$DIR", &dir.display().to_string()),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--duration", "5", "--config"])
        .arg(&cfg)
        .current_dir(&dir)
        .env_remove("TICKLINE_API_KEY")
        .env_remove("TICKLINE_API_SECRET")
        .env_remove("TICKLINE_ED25519_KEY_FILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v.replace("$DIR", &dir.display().to_string()));
    }
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "{name}: the broken config was accepted"
    );
    assert!(!out.stderr.is_empty(), "{name}: refused without a message");
    let _ = std::fs::remove_dir_all(&dir);
    vec![
        (format!("{name}: stdout"), out.stdout),
        (format!("{name}: stderr"), out.stderr),
    ]
}

/// The names of the outputs holding `needle`.
fn holding(outputs: &Outputs, needle: &str) -> Vec<String> {
    outputs
        .iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn fake_credentials_appear_in_no_output() {
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{ED_PEM_BODY}\n-----END PRIVATE KEY-----\n");
    let mut outputs = live_run(
        "sec-hmac",
        r#"credentials_env = "TICKLINE""#,
        &[
            ("TICKLINE_API_KEY", HMAC_KEY),
            ("TICKLINE_API_SECRET", HMAC_SECRET),
        ],
        20,
    );
    let ed_dir = tmp_dir("sec-edkey");
    private_file(&ed_dir.join("ed.pem"), &pem);
    private_file(
        &ed_dir.join("ed.key"),
        &format!(
            "api_key = {ED_KEY}\ned25519_key_file = {}\n",
            ed_dir.join("ed.pem").display()
        ),
    );
    outputs.extend(live_run(
        "sec-ed25519",
        &format!(
            "credentials_file = \"{}\"\nsession_logon = true",
            ed_dir.join("ed.key").display()
        ),
        &[],
        20,
    ));

    // Broken configs and key files that hold the secret: refused, and the message must not
    // quote it.
    let orders = "[venue]\nws_url = \"ws://127.0.0.1:9\"\nrest_url = \"http://127.0.0.1:9\"\nexchange_info = false\n[control]\nenabled = false\n[orders]\nenabled = true\nurl = \"ws://127.0.0.1:9/ws-api/v3\"\njournal = \"$DIR/o.tlj\"\n";
    outputs.extend(refused(
        "sec-unknown-key",
        &format!("{orders}api_secret = \"{HMAC_SECRET}\"\napi_key = \"{HMAC_KEY}\"\n"),
        &[],
        &[],
    ));
    outputs.extend(refused(
        "sec-toml-syntax",
        &format!("{orders}credentials_env = \"{HMAC_KEY}\" \"{HMAC_SECRET}\"\n"),
        &[],
        &[],
    ));
    outputs.extend(refused(
        "sec-bad-keyfile-line",
        &format!("{orders}credentials_file = \"$DIR/bad.key\"\n"),
        &[(
            "bad.key",
            &format!("api_key = {HMAC_KEY}\n{HMAC_SECRET}\napi_secret {HMAC_SECRET}\n"),
        )],
        &[],
    ));
    outputs.extend(refused(
        "sec-keyfile-duplicate",
        &format!("{orders}credentials_file = \"$DIR/dup.key\"\n"),
        &[(
            "dup.key",
            &format!(
                "api_key = {HMAC_KEY}\napi_secret = {HMAC_SECRET}\napi_secret = {HMAC_SECRET}x\n"
            ),
        )],
        &[],
    ));
    outputs.extend(refused(
        "sec-bad-pem",
        &format!("{orders}credentials_env = \"TICKLINE\"\n"),
        &[(
            "bad.pem",
            &format!("-----BEGIN PRIVATE KEY-----\n{HMAC_SECRET}\n-----END PRIVATE KEY-----\n"),
        )],
        &[
            ("TICKLINE_API_KEY", HMAC_KEY),
            ("TICKLINE_ED25519_KEY_FILE", "$DIR/bad.pem"),
        ],
    ));

    let mut leaks = Vec::new();
    for (what, needle) in [
        ("the HMAC API key", HMAC_KEY),
        ("the HMAC secret", HMAC_SECRET),
        // A fragment, for a message that would quote part of it.
        ("part of the HMAC secret", &HMAC_SECRET[..24]),
        ("the Ed25519 API key", ED_KEY),
        ("the Ed25519 private key (PEM)", ED_PEM_BODY),
        ("the Ed25519 private key (hex)", ED_SEED_HEX),
    ] {
        for name in holding(&outputs, needle) {
            leaks.push(format!("{what} in {name}"));
        }
    }
    // Not vacuous: the needles are long and the outputs were searched.
    let bytes: usize = outputs.iter().map(|(_, b)| b.len()).sum();
    println!(
        "secrets: {} outputs ({bytes} bytes) searched for 6 credentials and fragments: {} hits",
        outputs.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "leaked: {leaks:#?}");
}
