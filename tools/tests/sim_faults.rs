//! The simulator's faults on demand (`VenueSim::inject`), as a plain WebSocket client sees
//! them, each counted once. Loopback only; every read has a timeout.

use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};
use venue_sim::{FaultKind, Faults, SimConfig, SimPace, SimSource, VenueSim};

/// Upper bound of any single wait.
const T: Duration = Duration::from_secs(10);

/// A new connection once the earlier ones are gone (an injected fault goes to whichever
/// market-data connection takes it first), with its first trade frame read.
fn connect(sim: &VenueSim) -> WebSocket<TcpStream> {
    let end = Instant::now() + T;
    while sim.stats().connections_open > 0 {
        assert!(
            Instant::now() < end,
            "an earlier connection is still open: {:?}",
            sim.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let sock = TcpStream::connect_timeout(&sim.ws_addr(), T).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let url = format!("{}/stream?streams=btcusdt@trade", sim.ws_url());
    let cfg = WebSocketConfig::default()
        .max_frame_size(Some(64 << 10))
        .max_message_size(Some(64 << 10));
    let (mut ws, _) = tungstenite::client::client_with_config(url, sock, Some(cfg)).unwrap();
    // Subscribed and served: the first trade frame has come.
    assert!(matches!(ws.read().unwrap(), Message::Text(_)));
    ws
}

/// Reads past the data frames until something else: a non-data message or an error.
fn past_data(ws: &mut WebSocket<TcpStream>) -> Result<Message, tungstenite::Error> {
    let end = Instant::now() + T;
    loop {
        assert!(Instant::now() < end, "only data frames for {T:?}");
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str().contains("\"btcusdt@trade\"") => {}
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            other => return other,
        }
    }
}

#[test]
fn injected_faults_reach_the_client_as_their_kind_and_are_counted_once() {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 1_000_000,
            seed: 3,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        faults: Faults {
            oversized_bytes: 100_000,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap();

    // A clean close: a close frame with 1000, then the connection ends.
    let mut ws = connect(&sim);
    sim.inject(FaultKind::Close);
    match past_data(&mut ws) {
        Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("close: {other:?}"),
    }
    // A reset: the next read fails with ECONNRESET, no close frame, no EOF.
    let mut ws = connect(&sim);
    sim.inject(FaultKind::Reset);
    match past_data(&mut ws) {
        Err(tungstenite::Error::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}")
        }
        other => panic!("reset: {other:?}"),
    }
    // A hang-up and a torn frame: EOF without a close frame (the torn frame's half is dropped
    // by the WebSocket layer, never delivered).
    for kind in [FaultKind::Hangup, FaultKind::Torn] {
        let mut ws = connect(&sim);
        sim.inject(kind);
        match past_data(&mut ws) {
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => {}
            other => panic!("{kind:?}: {other:?}"),
        }
    }
    // Garbage: one text frame that is not JSON; the connection stays up.
    let mut ws = connect(&sim);
    sim.inject(FaultKind::Garbage);
    match past_data(&mut ws) {
        Ok(Message::Text(t)) => {
            assert!(serde_json::from_str::<serde_json::Value>(t.as_str()).is_err())
        }
        other => panic!("garbage: {other:?}"),
    }
    drop(ws);
    // Invalid UTF-8 and an oversized frame: errors of their kind at the client.
    let mut ws = connect(&sim);
    sim.inject(FaultKind::InvalidUtf8);
    match past_data(&mut ws) {
        Err(tungstenite::Error::Utf8(_)) => {}
        other => panic!("invalid UTF-8: {other:?}"),
    }
    drop(ws); // the client hangs up, as a client that met a protocol error does
    let mut ws = connect(&sim);
    sim.inject(FaultKind::Oversized);
    match past_data(&mut ws) {
        Err(tungstenite::Error::Capacity(_)) => {}
        other => panic!("oversized: {other:?}"),
    }
    drop(ws);
    // A stall: nothing more, not even an answer to a ping; the socket stays open.
    let mut ws = connect(&sim);
    sim.inject(FaultKind::Stall);
    let end = Instant::now() + T;
    while sim.stats().faults.stalls == 0 {
        assert!(Instant::now() < end, "the stall was not taken");
        std::thread::sleep(Duration::from_millis(5));
    }
    ws.send(Message::Ping(Vec::new().into())).unwrap();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    loop {
        match ws.read() {
            Ok(Message::Text(_)) => {} // sent before the stall was taken
            Err(tungstenite::Error::Io(e)) => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{e}"
                );
                break;
            }
            other => panic!("stall: {other:?} {:?}", sim.stats()),
        }
    }

    let f = sim.stats().faults;
    assert_eq!(
        (
            f.closes,
            f.resets,
            f.drops,
            f.torn_frames,
            f.garbage_frames,
            f.invalid_utf8_frames,
            f.oversized_frames,
            f.stalls
        ),
        (1, 1, 1, 1, 1, 1, 1, 1),
        "{f:?}"
    );
}
