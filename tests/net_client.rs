//! `feeds::net::Connection` against real loopback servers (127.0.0.1:0, no network): ws://,
//! wss:// (test CA from rcgen), raw tcp:// and tls:// feeds, hostile servers, and allocations
//! per received message. Every test is bounded: the client loop has a deadline, server sockets
//! have read/write timeouts, and the listener gives up if nobody connects.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use feeds::net::mio::{Events, Poll, Token};
use feeds::net::rustls;
use feeds::net::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use feeds::net::tungstenite::protocol::frame::coding::CloseCode;
use feeds::net::tungstenite::protocol::frame::CloseFrame;
use feeds::net::tungstenite::{self, Message, WebSocket};
use feeds::net::{
    client_tls_config, CloseReason, ConnEvent, ConnOptions, ConnState, Connection, Endpoint,
    NetError, TlsOptions,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

// ---------------------------------------------------------------------------------------------
// Allocation counting, per thread (tests run in parallel; server threads are not counted).

#[global_allocator]
static GLOBAL: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;

fn allocations() -> u64 {
    tools::alloc::thread_allocations()
}

// ---------------------------------------------------------------------------------------------
// Test PKI: a CA and a leaf signed by it.

const TIMEOUT: Duration = Duration::from_secs(20);

struct Pki {
    ca_file: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A fresh CA (written to a temp PEM file) and a server config whose leaf certificate is valid
/// for `names` (DNS names or IP addresses).
fn pki(names: &[&str]) -> Pki {
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tickline test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, names[0]);
    let leaf = leaf_params.signed_by(&leaf_key, &*ca).unwrap();

    let ca_file = std::env::temp_dir().join(format!(
        "tickline-net-client-{}-{}.pem",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    Pki {
        ca_file,
        server: Arc::new(server),
    }
}

/// Client options trusting only the test CA.
fn trusting(pki: &Pki) -> ConnOptions {
    let tls = client_tls_config(&TlsOptions {
        ca_file: Some(pki.ca_file.clone()),
        webpki_roots: false,
    })
    .unwrap();
    ConnOptions {
        tls: Some(tls),
        ..ConnOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Servers: one connection each, on a thread.

trait Rw: Read + Write + Send {}
impl<T: Read + Write + Send> Rw for T {}
type Stream = Box<dyn Rw>;

/// Accepts one connection on 127.0.0.1:0 (giving up after `TIMEOUT`) and runs `f` on it.
fn spawn_server<T: Send + 'static>(
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<Option<T>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let sock = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return None;
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(TIMEOUT)).unwrap();
        sock.set_write_timeout(Some(TIMEOUT)).unwrap();
        sock.set_nodelay(true).unwrap();
        Some(f(sock))
    });
    (addr, handle)
}

/// The accepted socket, wrapped in server-side TLS when `tls` is given.
fn wrap(sock: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) -> Stream {
    match tls {
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(cfg).unwrap();
            Box::new(rustls::StreamOwned::new(conn, sock))
        }
        None => Box::new(sock),
    }
}

/// A WebSocket server (tungstenite, blocking) running `f` after the upgrade. `None` if the
/// client never connected or the TLS/WebSocket handshake failed.
fn ws_server<T: Send + 'static>(
    tls: Option<Arc<rustls::ServerConfig>>,
    f: impl FnOnce(&mut WebSocket<Stream>) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<Option<T>>) {
    let (addr, h) = spawn_server(move |sock| {
        let mut ws = tungstenite::accept(wrap(sock, tls)).ok()?;
        Some(f(&mut ws))
    });
    (addr, thread::spawn(move || h.join().unwrap().flatten()))
}

/// A raw WebSocket frame as a server sends it (unmasked).
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![if fin { 0x80 | opcode } else { opcode }];
    let n = payload.len();
    if n < 126 {
        v.push(n as u8);
    } else if n <= 0xffff {
        v.push(126);
        v.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        v.push(127);
        v.extend_from_slice(&(n as u64).to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// Writes raw bytes under tungstenite (after the upgrade) and flushes.
fn write_raw(ws: &mut WebSocket<Stream>, bytes: &[u8]) {
    let s = ws.get_mut();
    let _ = s.write_all(bytes);
    let _ = s.flush();
}

/// Reads until the client's side of the connection goes away (or the read timeout).
fn drain_until_closed(ws: &mut WebSocket<Stream>) {
    while ws.read().is_ok() {}
}

// ---------------------------------------------------------------------------------------------
// The client side: a mio loop with a deadline.

const TOKEN: Token = Token(7);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Opened,
    Msg(Vec<u8>, bool),
    Pong,
    Closed(CloseReason),
}

impl Ev {
    fn of(e: ConnEvent<'_>) -> Ev {
        match e {
            ConnEvent::Opened => Ev::Opened,
            ConnEvent::Message { payload, binary } => Ev::Msg(payload.to_vec(), binary),
            ConnEvent::Pong => Ev::Pong,
            ConnEvent::Closed(r) => Ev::Closed(r),
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Ev::Msg(p, false) => std::str::from_utf8(p).ok(),
            _ => None,
        }
    }
}

struct Client {
    poll: Poll,
    events: Events,
    conn: Connection,
}

impl Client {
    fn connect(url: &str, opts: &ConnOptions) -> Client {
        let poll = Poll::new().unwrap();
        let ep = Endpoint::parse(url).unwrap();
        let conn = Connection::connect(&ep, opts, poll.registry(), TOKEN).unwrap();
        Client {
            poll,
            events: Events::with_capacity(64),
            conn,
        }
    }

    /// One poll (at most 20 ms) and `handle_ready` for our token.
    fn step(&mut self, sink: &mut dyn FnMut(ConnEvent<'_>)) -> Result<(), NetError> {
        match self
            .poll
            .poll(&mut self.events, Some(Duration::from_millis(20)))
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => panic!("poll: {e}"),
        }
        let ours = self.events.iter().any(|e| e.token() == TOKEN);
        if ours {
            self.conn.handle_ready(self.poll.registry(), sink)?;
        }
        Ok(())
    }

    /// Pumps until `stop` returns true for an event (the rest of that batch is kept), the
    /// connection fails (`Err`), or the deadline (panic).
    fn until(
        &mut self,
        mut stop: impl FnMut(&mut Connection, &Ev) -> bool,
    ) -> Result<Vec<Ev>, NetError> {
        let deadline = Instant::now() + TIMEOUT;
        let mut all = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "client timed out in state {:?} after {} events; last: {:?}",
                self.conn.state(),
                all.len(),
                all.last()
            );
            let mut batch = Vec::new();
            // Events delivered before a failure in the same call are still shown to `stop`.
            let r = self.step(&mut |e| batch.push(Ev::of(e)));
            let mut done = false;
            for e in batch {
                done |= stop(&mut self.conn, &e);
                all.push(e);
            }
            r?;
            if done {
                return Ok(all);
            }
        }
    }

    /// Pumps until `Closed` or an error.
    fn run_to_close(&mut self) -> Result<Vec<Ev>, NetError> {
        self.until(|_, e| matches!(e, Ev::Closed(_)))
    }

    fn until_opened(&mut self) -> Vec<Ev> {
        self.until(|_, e| *e == Ev::Opened).unwrap()
    }
}

/// Prints an error the way a user sees it (run with `--nocapture` to review the wording).
fn shown(err: NetError) -> NetError {
    eprintln!("error shown to the user: {err}");
    err
}

fn texts(evs: &[Ev]) -> Vec<&str> {
    evs.iter().filter_map(Ev::text).collect()
}

// ---------------------------------------------------------------------------------------------
// ws:// and wss:// sessions.

const SESSION_MESSAGES: usize = 10_000;

fn session_message(i: usize) -> String {
    // Lengths vary from 2-byte to 16-bit extended payload lengths.
    format!("{{\"seq\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 300))
}

/// Server side of a full session: 10,000 messages, expects the client's two texts, pings and
/// checks the pong, then closes with 1001 and waits for the client's reply.
fn session_server(ws: &mut WebSocket<Stream>) -> Result<(), String> {
    for i in 0..SESSION_MESSAGES {
        ws.write(Message::text(session_message(i)))
            .map_err(|e| e.to_string())?;
    }
    ws.flush().map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    while got.len() < 2 {
        match ws
            .read()
            .map_err(|e| format!("reading client texts: {e}"))?
        {
            Message::Text(t) => got.push(t.to_string()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    if got != ["queued before open", "sent after open"] {
        return Err(format!("client texts: {got:?}"));
    }
    ws.send(Message::Ping(b"srv-ping".to_vec().into()))
        .map_err(|e| e.to_string())?;
    loop {
        match ws.read().map_err(|e| format!("waiting for pong: {e}"))? {
            Message::Pong(p) if &p[..] == b"srv-ping" => break,
            Message::Pong(p) => return Err(format!("pong payload {p:?}")),
            _ => {}
        }
    }
    let bye = CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    };
    ws.close(Some(bye)).map_err(|e| e.to_string())?;
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("close handshake: {e}")),
        }
    }
}

fn full_session(url_scheme: &str, tls: Option<Arc<rustls::ServerConfig>>, opts: &ConnOptions) {
    let (addr, server) = ws_server(tls, session_server);
    let mut c = Client::connect(&format!("{url_scheme}://{addr}/stream?x=1"), opts);
    assert_eq!(c.conn.state(), ConnState::Connecting);
    // Sent before the connection is open: queued, written right after the upgrade.
    c.conn.send_text("queued before open").unwrap();
    let mut seen = 0usize;
    let mut pongs = 0usize;
    let evs = c
        .until(|conn, e| {
            match e {
                Ev::Opened => {
                    assert_eq!(conn.state(), ConnState::Open);
                    conn.send_text("sent after open").unwrap();
                    conn.send_ping(b"cli-ping").unwrap();
                }
                Ev::Msg(p, false) => {
                    let want = session_message(seen);
                    assert_eq!(std::str::from_utf8(p).unwrap(), want, "message {seen}");
                    seen += 1;
                }
                Ev::Pong => pongs += 1,
                Ev::Msg(_, true) => panic!("unexpected binary"),
                Ev::Closed(_) => {}
            }
            matches!(e, Ev::Closed(_))
        })
        .unwrap();
    assert_eq!(evs.first(), Some(&Ev::Opened));
    assert_eq!(evs.iter().filter(|e| **e == Ev::Opened).count(), 1);
    assert_eq!(seen, SESSION_MESSAGES, "all messages, in order, intact");
    assert_eq!(pongs, 1, "our ping was answered");
    assert_eq!(
        evs.last(),
        Some(&Ev::Closed(CloseReason::ByPeer { code: 1001 }))
    );
    assert_eq!(c.conn.state(), ConnState::Closed);
    // After Closed: nothing more, sends refused.
    c.step(&mut |e| panic!("event after Closed: {e:?}"))
        .unwrap();
    assert!(matches!(c.conn.send_text("late"), Err(NetError::Closed)));
    c.conn.deregister(c.poll.registry());
    server
        .join()
        .unwrap()
        .expect("handshake")
        .expect("server session");
}

#[test]
fn ws_session_10k_messages_in_order_send_ping_pong_and_peer_close() {
    full_session("ws", None, &ConnOptions::default());
}

#[test]
fn wss_session_with_trusted_test_ca() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    full_session("wss", Some(pki.server.clone()), &trusting(&pki));
}

#[test]
fn wss_ca_file_adds_to_webpki_roots() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let tls = client_tls_config(&TlsOptions {
        ca_file: Some(pki.ca_file.clone()),
        webpki_roots: true,
    })
    .unwrap();
    let (addr, server) = ws_server(Some(pki.server.clone()), |ws| {
        ws.send(Message::text("hi")).unwrap();
        drain_until_closed(ws);
    });
    let opts = ConnOptions {
        tls: Some(tls),
        ..ConnOptions::default()
    };
    let mut c = Client::connect(&format!("wss://{addr}/"), &opts);
    let evs = c.until(|_, e| e.text() == Some("hi")).unwrap();
    assert_eq!(evs[0], Ev::Opened);
    drop(c);
    let _ = server.join();
}

#[test]
fn wss_untrusted_certificate_is_a_tls_error_naming_the_problem() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let (addr, server) = ws_server(Some(pki.server.clone()), |_| ());
    // Default options: webpki roots only, which do not include the test CA.
    let mut c = Client::connect(&format!("wss://{addr}/"), &ConnOptions::default());
    let err = shown(c.run_to_close().unwrap_err());
    let msg = err.to_string();
    assert!(matches!(err, NetError::Tls(_)), "{err:?}");
    assert!(
        msg.contains(&format!("TLS handshake with {addr} failed")),
        "{msg}"
    );
    assert!(
        msg.contains("invalid peer certificate") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    assert_eq!(c.conn.state(), ConnState::Closed);
    assert!(matches!(
        c.step(&mut |_| {}),
        Ok(()) | Err(NetError::Closed)
    ));
    let _ = server.join();
}

#[test]
fn wss_certificate_for_another_host_is_a_tls_error() {
    let pki = pki(&["feed.other.example"]);
    let (addr, server) = ws_server(Some(pki.server.clone()), |_| ());
    let mut c = Client::connect(&format!("wss://{addr}/"), &trusting(&pki));
    let err = shown(c.run_to_close().unwrap_err());
    let msg = err.to_string();
    assert!(matches!(err, NetError::Tls(_)), "{err:?}");
    assert!(
        msg.contains("not valid for name") || msg.contains("NotValidForName"),
        "{msg}"
    );
    let _ = server.join();
}

#[test]
fn connection_can_move_to_an_io_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Connection>();
    assert_send::<NetError>();
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<NetError>();
}

#[test]
fn tls_config_errors_name_the_file() {
    let missing = std::env::temp_dir().join("tickline-no-such-ca.pem");
    let err = client_tls_config(&TlsOptions {
        ca_file: Some(missing.clone()),
        webpki_roots: true,
    })
    .unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let empty = std::env::temp_dir().join(format!("tickline-empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = client_tls_config(&TlsOptions {
        ca_file: Some(empty.clone()),
        webpki_roots: false,
    })
    .unwrap_err();
    let _ = std::fs::remove_file(&empty);
    assert!(
        matches!(err, NetError::Tls(_)) && err.to_string().contains("CERTIFICATE"),
        "{err}"
    );

    let err = client_tls_config(&TlsOptions {
        ca_file: None,
        webpki_roots: false,
    })
    .unwrap_err();
    assert!(err.to_string().contains("no trust anchors"), "{err}");
    assert!(client_tls_config(&TlsOptions::default()).is_ok());
}

#[test]
fn client_close_completes_the_handshake() {
    let (addr, server) = ws_server(None, |ws| {
        ws.send(Message::text("one")).unwrap();
        // tungstenite answers the client's close frame inside read().
        loop {
            match ws.read() {
                Ok(Message::Close(f)) => {
                    // The reply is queued by read(); flush sends it, then the server hangs up.
                    let _ = ws.flush();
                    break f.map(|f| u16::from(f.code));
                }
                Ok(_) => {}
                Err(e) => panic!("server: {e}"),
            }
        }
    });
    let mut c = Client::connect(&format!("ws://{addr}/"), &ConnOptions::default());
    c.until(|_, e| e.text() == Some("one")).unwrap();
    c.conn.close().unwrap();
    assert_eq!(c.conn.state(), ConnState::Closing);
    assert!(matches!(
        c.conn.send_text("after close"),
        Err(NetError::Closed)
    ));
    let evs = c.run_to_close().unwrap();
    assert_eq!(evs.last(), Some(&Ev::Closed(CloseReason::ByUs)));
    assert_eq!(server.join().unwrap(), Some(Some(1000)));
}

#[test]
fn binary_messages_and_fragmented_messages_are_reassembled() {
    let (addr, server) = ws_server(None, |ws| {
        let mut bytes = frame(true, 0x2, &[0, 1, 2, 255]);
        // Text in three fragments, with a ping between fragments (allowed by RFC 6455).
        bytes.extend(frame(false, 0x1, b"Hel"));
        bytes.extend(frame(false, 0x0, "lo, ".as_bytes()));
        bytes.extend(frame(true, 0x9, b"mid"));
        bytes.extend(frame(true, 0x0, "w\u{f6}rld".as_bytes()));
        // A multi-byte UTF-8 character split across fragments.
        let snow = "\u{2603}".as_bytes();
        bytes.extend(frame(false, 0x1, &snow[..1]));
        bytes.extend(frame(true, 0x0, &snow[1..]));
        // Binary in 200 one-byte fragments.
        bytes.extend(frame(false, 0x2, &[0]));
        for i in 1..200u8 {
            bytes.extend(frame(i == 199, 0x0, &[i]));
        }
        bytes.extend(frame(true, 0x1, b"end"));
        // Written one byte at a time: frames split across every possible segment boundary.
        for b in &bytes[..64] {
            write_raw(ws, std::slice::from_ref(b));
        }
        write_raw(ws, &bytes[64..]);
        let mut pong = None;
        while let Ok(m) = ws.read() {
            if let Message::Pong(p) = m {
                pong = Some(p.to_vec());
                break;
            }
        }
        pong
    });
    let mut c = Client::connect(&format!("ws://{addr}/"), &ConnOptions::default());
    let evs = c.until(|_, e| e.text() == Some("end")).unwrap();
    let msgs: Vec<&Ev> = evs.iter().filter(|e| matches!(e, Ev::Msg(..))).collect();
    let all_bytes: Vec<u8> = (0..200u8).collect();
    assert_eq!(
        msgs,
        vec![
            &Ev::Msg(vec![0, 1, 2, 255], true),
            &Ev::Msg("Hello, w\u{f6}rld".as_bytes().to_vec(), false),
            &Ev::Msg("\u{2603}".as_bytes().to_vec(), false),
            &Ev::Msg(all_bytes, true),
            &Ev::Msg(b"end".to_vec(), false),
        ]
    );
    assert_eq!(
        server.join().unwrap(),
        Some(Some(b"mid".to_vec())),
        "ping answered"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile servers.

/// Runs a WebSocket server that writes `bytes` raw after the upgrade, then waits for the
/// client to go away; returns the client's result.
fn after_upgrade_server_sends(bytes: Vec<u8>, opts: &ConnOptions) -> Result<Vec<Ev>, NetError> {
    let (addr, server) = ws_server(None, move |ws| {
        write_raw(ws, &bytes);
        drain_until_closed(ws);
    });
    let mut c = Client::connect(&format!("ws://{addr}/"), opts);
    let r = c.run_to_close();
    c.conn.deregister(c.poll.registry());
    drop(c);
    let _ = server.join();
    r
}

fn shown_after_upgrade(bytes: Vec<u8>, opts: &ConnOptions) -> Result<Vec<Ev>, NetError> {
    after_upgrade_server_sends(bytes, opts).map_err(shown)
}

#[test]
fn invalid_utf8_text_frame_is_a_protocol_error() {
    let mut bytes = frame(true, 0x1, b"ok");
    bytes.extend(frame(true, 0x1, &[b'a', 0xff, 0xfe]));
    let err = shown_after_upgrade(bytes, &ConnOptions::default()).unwrap_err();
    assert!(
        matches!(err, NetError::Protocol(_)) && err.to_string().contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_in_fragmented_text_is_a_protocol_error() {
    let mut bytes = frame(false, 0x1, b"abc");
    bytes.extend(frame(true, 0x0, &[0xc3, 0x28]));
    let err = shown_after_upgrade(bytes, &ConnOptions::default()).unwrap_err();
    assert!(matches!(err, NetError::Protocol(_)), "{err}");
}

#[test]
fn oversized_frame_or_message_is_a_protocol_error() {
    let small = ConnOptions {
        max_frame_size: 1000,
        max_message_size: 1500,
        ..ConnOptions::default()
    };
    // One frame over max_frame_size.
    let err = shown_after_upgrade(frame(true, 0x2, &[7; 1001]), &small).unwrap_err();
    assert!(
        matches!(err, NetError::Protocol(_)) && err.to_string().contains("1001"),
        "{err}"
    );
    // Fragments each within the frame limit, together over max_message_size.
    let mut bytes = frame(false, 0x2, &[1; 800]);
    bytes.extend(frame(true, 0x0, &[2; 800]));
    let err = shown_after_upgrade(bytes, &small).unwrap_err();
    assert!(matches!(err, NetError::Protocol(_)), "{err}");
    // A header announcing 2^62 bytes: refused from the header, nothing allocated for it.
    let huge = vec![0x82, 0x7f, 0x40, 0, 0, 0, 0, 0, 0, 0];
    let err = shown_after_upgrade(huge, &ConnOptions::default()).unwrap_err();
    assert!(matches!(err, NetError::Protocol(_)), "{err}");
    // Exactly at the limits is fine.
    let mut bytes = frame(false, 0x2, &[1; 1000]);
    bytes.extend(frame(true, 0x0, &[2; 500]));
    bytes.extend(frame(true, 0x8, &1000u16.to_be_bytes()));
    let evs = after_upgrade_server_sends(bytes, &small).unwrap();
    assert!(matches!(&evs[1], Ev::Msg(p, true) if p.len() == 1500));
}

#[test]
fn protocol_violations_are_errors() {
    let masked = vec![0x81, 0x82, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("reserved bits", vec![0xc1, 0x00]),
        ("unknown opcode", vec![0x83, 0x00]),
        ("continuation without start", frame(true, 0x0, b"x")),
        ("fragmented control", frame(false, 0x9, b"x")),
        ("control frame over 125", frame(true, 0x9, &[0; 126])),
        ("masked frame from server", masked),
        (
            "new message inside a fragmented one",
            [frame(false, 0x1, b"a"), frame(true, 0x1, b"b")].concat(),
        ),
        ("1-byte close payload", frame(true, 0x8, &[3])),
    ];
    for (what, bytes) in cases {
        let err = shown_after_upgrade(bytes, &ConnOptions::default()).unwrap_err();
        assert!(matches!(err, NetError::Protocol(_)), "{what}: {err:?}");
    }
}

/// A plain TCP server that reads the upgrade request, answers `response`, and closes.
fn bad_upgrade(response: &'static [u8]) -> NetError {
    let (addr, server) = spawn_server(move |mut sock| {
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = sock.write_all(response);
        String::from_utf8_lossy(&req).into_owned()
    });
    let mut c = Client::connect(&format!("ws://{addr}/feed?a=1"), &ConnOptions::default());
    let err = shown(c.run_to_close().unwrap_err());
    let req = server.join().unwrap().unwrap();
    assert!(req.starts_with("GET /feed?a=1 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("Host: {addr}\r\n")), "{req}");
    err
}

#[test]
fn garbage_instead_of_101_is_a_ws_handshake_error() {
    let err = bad_upgrade(b"\x16\x03\x01garbage that is not HTTP at all\r\n\r\n");
    assert!(matches!(err, NetError::WsHandshake(_)), "{err:?}");
    let err = bad_upgrade(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    assert!(
        matches!(err, NetError::WsHandshake(_)) && err.to_string().contains("404"),
        "{err}"
    );
    let err = bad_upgrade(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n",
    );
    assert!(matches!(err, NetError::WsHandshake(_)), "{err:?}");
    let err = bad_upgrade(b"HTTP/1.1 101 Switching");
    assert!(matches!(err, NetError::WsHandshake(_)), "{err:?}");
}

#[test]
fn server_closing_mid_frame_is_an_error_or_closed_never_a_panic() {
    for cut in [1usize, 2, 3, 4, 50] {
        let full = frame(true, 0x1, &[b'q'; 300]);
        let (addr, server) = ws_server(None, move |ws| {
            write_raw(ws, &full[..cut]);
        });
        let mut c = Client::connect(&format!("ws://{addr}/"), &ConnOptions::default());
        match c.run_to_close() {
            Ok(evs) => {
                assert_eq!(evs.last(), Some(&Ev::Closed(CloseReason::Eof)), "cut {cut}");
                assert!(!evs.iter().any(|e| matches!(e, Ev::Msg(..))), "cut {cut}");
            }
            Err(e) => assert!(!matches!(e, NetError::Closed), "cut {cut}: {e:?}"),
        }
        let _ = server.join();
    }
}

#[test]
fn random_bytes_after_upgrade_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..24 {
        let mut bytes = Vec::new();
        for _ in 0..(64 + round * 97) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        // Whatever happens, it is a clean result, an event stream, or an error: no panic, no hang.
        let _ = after_upgrade_server_sends(bytes, &ConnOptions::default());
    }
}

#[test]
fn connect_refused_is_a_connect_error_and_the_next_address_is_tried() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let poll = Poll::new().unwrap();
    let ep = Endpoint::parse(&format!("ws://{dead}/")).unwrap();
    let conn = Connection::connect_to(
        &ep,
        &[dead],
        &ConnOptions::default(),
        poll.registry(),
        TOKEN,
    )
    .unwrap();
    let mut c = Client {
        poll,
        events: Events::with_capacity(8),
        conn,
    };
    // A call before any event is harmless; loopback refuses at once, so it may already fail.
    let err = shown(
        match c
            .conn
            .handle_ready(c.poll.registry(), &mut |e| panic!("{e:?}"))
        {
            Err(e) => e,
            Ok(()) => c.run_to_close().unwrap_err(),
        },
    );
    assert!(matches!(err, NetError::Connect(_)), "{err:?}");
    assert!(err.to_string().contains(&dead.to_string()), "{err}");

    let (good, server) = ws_server(None, |ws| {
        ws.send(Message::text("via second address")).unwrap();
        drain_until_closed(ws);
    });
    let poll = Poll::new().unwrap();
    let conn = Connection::connect_to(
        &ep,
        &[dead, good],
        &ConnOptions::default(),
        poll.registry(),
        TOKEN,
    )
    .unwrap();
    let mut c = Client {
        poll,
        events: Events::with_capacity(8),
        conn,
    };
    c.until(|_, e| e.text() == Some("via second address"))
        .unwrap();
    assert_eq!(c.conn.remote_addr(), Some(good));
    drop(c);
    let _ = server.join();
}

// ---------------------------------------------------------------------------------------------
// Raw newline-delimited feeds.

fn raw_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{{\"e\":\"trade\",\"t\":{i},\"p\":\"{}.{:02}\"}}",
                60_000 + i,
                i % 100
            )
        })
        .collect()
}

/// Writes `lines` in odd chunk sizes (1, 2, 3, 5, ... 997 bytes), each its own segment.
fn write_in_odd_chunks(s: &mut dyn Write, lines: &[String]) {
    let all: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let sizes = [1usize, 2, 3, 5, 7, 11, 13, 17, 31, 64, 127, 255, 997];
    let mut at = 0;
    for (i, size) in sizes.iter().cycle().enumerate() {
        if at >= all.len() {
            break;
        }
        let end = (at + size).min(all.len());
        s.write_all(&all[at..end]).unwrap();
        s.flush().unwrap();
        at = end;
        if i % 50 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

fn raw_feed(scheme: &str, tls: Option<Arc<rustls::ServerConfig>>, opts: &ConnOptions) {
    let lines = raw_lines(3000);
    let expect = lines.clone();
    let (addr, server) = spawn_server(move |sock| {
        let mut s = wrap(sock, tls);
        write_in_odd_chunks(&mut s, &lines);
        // Then read the client's line.
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\n") {
            match s.read(&mut b) {
                Ok(1) => got.push(b[0]),
                _ => break,
            }
        }
        String::from_utf8(got).unwrap()
    });
    let mut c = Client::connect(&format!("{scheme}://{addr}"), opts);
    let mut n = 0usize;
    let evs = c
        .until(|conn, e| {
            if let Ev::Msg(p, binary) = e {
                assert!(!binary);
                assert_eq!(std::str::from_utf8(p).unwrap(), expect[n], "line {n}");
                n += 1;
                if n == expect.len() {
                    conn.send_text("{\"method\":\"SUBSCRIBE\"}").unwrap();
                }
            }
            matches!(e, Ev::Closed(_))
        })
        .unwrap();
    assert_eq!(evs[0], Ev::Opened);
    assert_eq!(n, expect.len());
    assert_eq!(evs.last(), Some(&Ev::Closed(CloseReason::Eof)));
    assert_eq!(
        server.join().unwrap().unwrap(),
        "{\"method\":\"SUBSCRIBE\"}\n"
    );
}

#[test]
fn raw_tcp_lines_split_across_odd_segments_arrive_whole() {
    raw_feed("tcp", None, &ConnOptions::default());
}

#[test]
fn raw_tls_lines_with_trusted_ca() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    raw_feed("tls", Some(pki.server.clone()), &trusting(&pki));
}

#[test]
fn raw_line_over_max_line_is_line_too_long() {
    let (addr, server) = spawn_server(|mut sock| {
        let _ = sock.write_all(b"{\"ok\":1}\n");
        let _ = sock.write_all(&[b'x'; 5000]);
        let mut b = [0u8; 16];
        let _ = sock.read(&mut b); // until the client hangs up
    });
    let opts = ConnOptions {
        max_line: 1024,
        ..ConnOptions::default()
    };
    let mut c = Client::connect(&format!("tcp://{addr}"), &opts);
    let mut got = Vec::new();
    let err = shown(
        c.until(|_, e| {
            got.push(e.clone());
            false
        })
        .unwrap_err(),
    );
    assert!(
        matches!(err, NetError::LineTooLong { max: 1024 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("1024"));
    assert_eq!(texts(&got), vec!["{\"ok\":1}"]);
    drop(c);
    let _ = server.join();
}

#[test]
fn raw_eof_mid_line_is_an_error_and_close_by_us_completes() {
    let (addr, server) = spawn_server(|mut sock| {
        let _ = sock.write_all(b"{\"a\":1}\n{\"b\":");
    });
    let mut c = Client::connect(&format!("tcp://{addr}"), &ConnOptions::default());
    let err = shown(c.run_to_close().unwrap_err());
    assert!(
        matches!(err, NetError::Protocol(_)) && err.to_string().contains("middle of a line"),
        "{err}"
    );
    let _ = server.join();

    let (addr, server) = spawn_server(|mut sock| {
        let _ = sock.write_all(b"{\"a\":1}\n");
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest); // EOF once the client shuts its write side
        let _ = sock.write_all(b"{\"late\":1}\n");
        rest
    });
    let mut c = Client::connect(&format!("tcp://{addr}"), &ConnOptions::default());
    c.until(|_, e| e.text() == Some("{\"a\":1}")).unwrap();
    c.conn.send_text("last words").unwrap();
    assert!(matches!(
        c.conn.send_text("two\nlines"),
        Err(NetError::Protocol(_))
    ));
    c.conn.send_ping(b"ignored on raw feeds").unwrap();
    c.conn.close().unwrap();
    let evs = c.run_to_close().unwrap();
    assert_eq!(
        texts(&evs),
        vec!["{\"late\":1}"],
        "messages still arrive while closing"
    );
    assert_eq!(evs.last(), Some(&Ev::Closed(CloseReason::ByUs)));
    assert_eq!(server.join().unwrap().unwrap(), b"last words\n");
}

// ---------------------------------------------------------------------------------------------
// Allocations per received message (client thread only).

/// A Binance trade frame, 126-ish bytes.
fn trade(i: usize) -> String {
    format!(
        "{{\"e\":\"trade\",\"E\":1723100000{i:03},\"s\":\"BTCUSDT\",\"t\":{i},\"p\":\"60000.{:02}\",\
         \"q\":\"0.00100000\",\"T\":1723100000000,\"m\":true,\"M\":true}}",
        i % 100
    )
}

/// Receives `total` messages and returns allocations per message over all but the first
/// `warm` of them (the window opens inside the callback, at message `warm`, however the
/// messages are batched into readiness events).
fn allocations_per_message(mut c: Client, total: usize, warm: usize) -> (f64, u64, usize) {
    let deadline = Instant::now() + TIMEOUT;
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut window_start: Option<u64> = None;
    while count < total {
        assert!(
            Instant::now() < deadline,
            "timed out after {count} messages"
        );
        c.poll
            .poll(&mut c.events, Some(Duration::from_millis(20)))
            .unwrap();
        if c.events.is_empty() {
            continue;
        }
        c.conn
            .handle_ready(c.poll.registry(), &mut |e| {
                if let ConnEvent::Message { payload, .. } = e {
                    count += 1;
                    bytes += payload.len();
                    if count == warm {
                        window_start = Some(allocations());
                    }
                }
            })
            .unwrap();
    }
    let spent = allocations() - window_start.expect("warm-up reached");
    assert!(bytes > 0);
    let measured = total - warm;
    (spent as f64 / measured as f64, spent, measured)
}

fn stream_trades(ws: &mut WebSocket<Stream>, n: usize) {
    for i in 0..n {
        // One write (and so one TLS record) per message, as exchanges send them.
        if ws.send(Message::text(trade(i))).is_err() {
            return;
        }
    }
    drain_until_closed(ws);
}

#[test]
fn ws_receive_allocations_per_message() {
    const N: usize = 20_000;
    let (addr, server) = ws_server(None, |ws| stream_trades(ws, N));
    let c = Client::connect(&format!("ws://{addr}/"), &ConnOptions::default());
    let (per_msg, spent, measured) = allocations_per_message(c, N, 2_000);
    println!(
        "ws:// receive: {spent} allocations over {measured} messages = {per_msg:.4} per message"
    );
    let _ = server.join();
    assert!(
        per_msg < 0.01,
        "ws:// receive allocates {per_msg:.4} times per message"
    );
}

#[test]
fn wss_receive_allocations_per_message() {
    const N: usize = 20_000;
    let pki = pki(&["127.0.0.1"]);
    let (addr, server) = ws_server(Some(pki.server.clone()), |ws| stream_trades(ws, N));
    let c = Client::connect(&format!("wss://{addr}/"), &trusting(&pki));
    let (per_msg, spent, measured) = allocations_per_message(c, N, 2_000);
    println!("wss:// receive: {spent} allocations over {measured} messages = {per_msg:.4} per message (one TLS record per message)");
    let _ = server.join();
    // rustls's buffered API stores each decrypted record in a new Vec: about one per record.
    assert!(
        per_msg <= 1.5,
        "wss:// receive allocates {per_msg:.4} times per message"
    );
}

#[test]
fn raw_receive_allocations_per_message() {
    const N: usize = 20_000;
    let (addr, server) = spawn_server(|mut sock| {
        for i in 0..N {
            if sock
                .write_all(format!("{}\n", trade(i)).as_bytes())
                .is_err()
            {
                return;
            }
        }
    });
    let c = Client::connect(&format!("tcp://{addr}"), &ConnOptions::default());
    let (per_msg, spent, measured) = allocations_per_message(c, N, 2_000);
    println!(
        "tcp:// receive: {spent} allocations over {measured} messages = {per_msg:.4} per message"
    );
    let _ = server.join();
    assert!(
        per_msg < 0.001,
        "tcp:// receive allocates {per_msg:.4} times per message"
    );
}

#[test]
fn ws_send_allocations_per_message() {
    const N: usize = 2_000;
    let (addr, server) = ws_server(None, |ws| {
        let mut n = 0;
        while n < N {
            match ws.read() {
                Ok(Message::Text(_)) => n += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        n
    });
    let mut c = Client::connect(&format!("ws://{addr}/"), &ConnOptions::default());
    c.until_opened();
    let text = trade(1);
    c.conn.send_text(&text).unwrap();
    let before = allocations();
    for _ in 1..N {
        c.conn.send_text(&text).unwrap();
    }
    let per_msg = (allocations() - before) as f64 / (N - 1) as f64;
    println!("ws:// send: {per_msg:.2} allocations per message");
    let deadline = Instant::now() + TIMEOUT;
    while !server.is_finished() && Instant::now() < deadline {
        c.step(&mut |_| {}).unwrap();
    }
    assert_eq!(server.join().unwrap(), Some(N));
    assert!(per_msg <= 4.0, "{per_msg}");
}
