//! Runtime control of a running engine (`tickline run`): a control socket served on its own
//! thread, and the client that `tickline ctl` uses.
//!
//! ```text
//!  tickline ctl ──Unix socket (0600) or loopback TCP──▶ control thread ──crossbeam: Request──▶ core
//!                                                         │  ▲                                 │
//!                                                         │  └──────── bounded(1): Reply ◀─────┘
//!                                                         ├──bounded: IoCommand (SUBSCRIBE / UNSUBSCRIBE)──▶ I/O thread
//!                                                         └──REST: exchangeInfo (the symbol's filters)
//! ```
//!
//! Nothing here runs on the core or the I/O thread. The control thread accepts connections and
//! gives each a small reader thread (at most [`MAX_CONNECTIONS`] at once); commands are applied
//! one at a time, in arrival order, under one lock. Everything that allocates or blocks (parsing,
//! building the strategy, the REST call, subscribing) happens on these threads; the core only
//! swaps a prepared strategy in or out when it checks its control channel, about once a
//! millisecond ([`engine::control`]). The core's symbol table is fixed at start, so only symbols
//! of `[venue] symbols` can ever trade; `[venue] trade` says which of them trade (and are
//! subscribed) from the start.
//!
//! # Endpoint
//!
//! `[control] socket = "tickline.sock"` (the default of `tickline run`, in its working
//! directory): a Unix socket made with mode 0600 (bound in a private directory, then linked into
//! place, so no other user can ever connect), removed when the engine stops. At start-up an
//! existing socket on which an engine answers refuses the start; a stale one (nobody answers) is
//! removed; anything else at the path refuses the start. Or `[control] tcp = "127.0.0.1:7070"`:
//! a loopback TCP port (a non-loopback address is refused).
//!
//! # Authentication
//!
//! The Unix socket relies on its mode 0600: only the engine's user can connect, and no token is
//! asked. Any local user can reach a TCP port, so TCP control needs a token: `[control]
//! token_file` (a file of mode 0600, nothing looser; its text, trimmed, at least
//! [`MIN_TOKEN_LEN`] bytes) or else the environment variable [`TOKEN_ENV`]. An engine with
//! `tcp` and no token refuses to start. Every request on TCP carries it in a `token` field
//! (`tickline ctl` adds it), compared in constant time ([`Token::matches`]); a missing or wrong
//! token is answered with an error and the connection is closed. The token is never printed,
//! echoed or put in `status`.
//!
//! # Abuse limits
//!
//! - A line is at most [`MAX_LINE`] bytes (a longer one is refused before more is buffered) and
//!   must be complete within [`LINE_DEADLINE`] of its first byte; a connection that sends no
//!   request for [`IDLE_CLOSE`] is closed (on TCP, the first request must start within
//!   [`LINE_DEADLINE`] of connecting).
//! - The first line that is not a valid request (not JSON, an unknown command or field, a
//!   missing or wrong token, or anything that looks like HTTP: `POST / HTTP/1.1`, …) is
//!   answered with an error and closes the connection, so a browser or `curl` that reaches the
//!   port cannot smuggle a command in a request body.
//! - At most [`MAX_CONNECTIONS`] connections are served at once. Beyond them,
//!   [`PRIORITY_SLOTS`] more are accepted for one line each (within [`LINE_DEADLINE`] of
//!   connecting): a `kill` or `halt` is served, anything else refused. `kill` and `halt` go
//!   straight to the core, never waiting behind another connection's command. Further
//!   connections are refused at once. Refusals and timeouts are counted in `status`
//!   (`status.control`).
//! - The core takes at most 16 commands a millisecond from its bounded queue, so a flood of
//!   commands cannot delay its market work.
//! - Without any socket, `SIGUSR1` to `tickline run` is the kill switch (the same core command
//!   as `kill`).
//!
//! # Protocol
//!
//! One JSON object per line (UTF-8, `\n`-terminated, at most [`MAX_LINE`] bytes) in each
//! direction; a connection may send any number of requests and gets one reply line for each, in
//! order. A request names its command in `cmd`; unknown commands and unknown fields are refused,
//! naming them, and close the connection. An optional `id` (any JSON value) is echoed in the
//! reply. On TCP every request also carries the token: `{"cmd":"status","token":"…"}` (on the
//! Unix socket a `token` field is ignored). `kill` and `halt` are applied at once; the other
//! commands one at a time, in arrival order.
//!
//! | request | effect |
//! |---|---|
//! | `{"cmd":"status"}` | the status tree |
//! | `{"cmd":"start-trading","symbol":"ETHUSDT","strategy":"naive","chunks":3,"params":{"profit_interval":"0.002"}}` | subscribe the symbol's streams, fetch its filters, build the strategy (`strategy`, `chunks`, `params` optional), start it |
//! | `{"cmd":"stop-trading","symbol":"ETHUSDT"}` | cancel the symbol's open orders, stop its strategy, unsubscribe its streams |
//! | `{"cmd":"set","symbol":"ETHUSDT","params":{"profit_interval":"0.002"}}` | change strategy parameters, all or none |
//! | `{"cmd":"halt"}`, `{"cmd":"resume"}`, `{"cmd":"kill"}` | trading state HALTED / ACTIVE / kill switch |
//!
//! Parameter values may be strings, numbers or booleans (handed to the strategy as text).
//! Without `strategy`, `start-trading` uses the config's `[strategy]` with its
//! `[strategy.params]` under the request's `params`; with another strategy, only the request's
//! `params`. `chunks` is the strategy's `chunks` parameter.
//!
//! Replies:
//!
//! ```text
//! {"ok":true,"message":"ETHUSDT: trading `naive`; subscribed ethusdt@trade, ethusdt@bookTicker","warnings":[]}
//! {"ok":false,"error":"DOGEUSDT is not in venue.symbols (BTCUSDT, ETHUSDT): add it to [venue] symbols and restart the engine (its symbol table is fixed at start)"}
//! {"ok":true,"status":{"engine":{..},"connections":[{..,"symbols":[{..,"leader":{..,"traders":[..]}}]}]}}
//! ```
//!
//! A refused command changes nothing: `start-trading` builds the strategy before it subscribes
//! anything, and undoes its subscription if the core refuses. The core's answer is awaited for
//! `[control] reply_timeout_ms` (5 s); a timeout is reported as such (the command may still be
//! applied: check `status`).
//!
//! # Modules
//!
//! `protocol` (the requests and reply builders), `transport` (a Unix or TCP stream and the
//! bounded line reader), `client` (one request, one reply: `tickline ctl`), `server` (the
//! control thread: binding, limits, one reader thread per connection), `controller` (applies
//! commands, talks to the core and the I/O thread) and `status` (the status tree as JSON and
//! text). The limits above are this module's constants.
//!
//! # Example
//!
//! ```no_run
//! use tools::control::{request, CtlRequest, Endpoint};
//! let reply = request(
//!     &Endpoint::Unix("tickline.sock".into()),
//!     &CtlRequest::Halt,
//!     std::time::Duration::from_secs(30),
//! )?;
//! assert_eq!(reply["ok"], true);
//! # anyhow::Ok(())
//! ```

mod client;
mod controller;
mod protocol;
mod server;
mod status;
mod transport;

pub use crate::config::{
    constant_time_eq, loopback_addr, Endpoint, Token, MIN_TOKEN_LEN, TOKEN_ENV,
};
use std::time::Duration;

pub use client::{request, request_with_token};
pub use controller::{Controller, ControllerConfig};
pub use protocol::{looks_like_http, parse_kv, CtlRequest, DeployRequest, COMMANDS};
pub use server::{ControlServer, ControlStats};
pub use status::render_status;

/// Longest request or reply line, bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// Longest `deploy` request line, bytes: a module of at most
/// [`wasm_host::module::MAX_MODULE_BYTES`] in base64, and its parameters.
pub const MAX_DEPLOY_LINE: usize = wasm_host::module::MAX_MODULE_BYTES / 3 * 4 + 64 * 1024;

/// Control connections served at once; beyond them only `kill` and `halt` are served, on
/// [`PRIORITY_SLOTS`].
pub const MAX_CONNECTIONS: usize = 8;

/// Connections accepted beyond [`MAX_CONNECTIONS`] for one `kill` or `halt` each (anything else
/// is refused); more than that are refused at once.
pub const PRIORITY_SLOTS: usize = 2;

/// A request line must be complete this long after its first byte; on TCP the first request
/// must start this long after connecting, and on a reserved slot its one line must be complete
/// this long after connecting.
pub const LINE_DEADLINE: Duration = Duration::from_secs(2);

/// A connection that sends no request for this long is closed.
pub const IDLE_CLOSE: Duration = Duration::from_secs(30);

/// How often blocked control threads look at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;
    use super::{protocol::*, transport::*};
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;

    #[test]
    fn requests_round_trip_and_bad_ones_are_named() {
        let reqs = [
            CtlRequest::Status,
            CtlRequest::StartTrading {
                symbol: "ETHUSDT".into(),
                strategy: Some("naive".into()),
                chunks: Some(3),
                params: vec![("profit_interval".into(), "0.002".into())],
            },
            CtlRequest::StopTrading {
                symbol: "ETHUSDT".into(),
            },
            CtlRequest::Set {
                symbol: "ETHUSDT".into(),
                params: vec![("budget".into(), "50".into())],
            },
            CtlRequest::Halt,
            CtlRequest::Resume,
            CtlRequest::Kill,
            CtlRequest::Deploy(DeployRequest {
                symbol: "ETHUSDT".into(),
                name: "sma.wasm".into(),
                wasm: b"\0asm\x01\0\0\0".to_vec(),
                params: vec![("fast".into(), "5".into())],
                fuel: Some(50_000),
                memory_mb: Some(4),
                replace: true,
            }),
            CtlRequest::Undeploy {
                symbol: "ETHUSDT".into(),
            },
        ];
        for r in reqs {
            assert_eq!(CtlRequest::from_json(&r.to_json()), Ok(r));
        }
        let v = json!({"cmd":"start-trading","symbol":"ethusdt","params":{"chunks":2,"x":true}});
        assert_eq!(
            CtlRequest::from_json(&v),
            Ok(CtlRequest::StartTrading {
                symbol: "ETHUSDT".into(),
                strategy: None,
                chunks: None,
                params: vec![("chunks".into(), "2".into()), ("x".into(), "true".into())],
            })
        );
        for (v, needle) in [
            (json!({"cmd":"nosuch"}), "unknown command `nosuch`"),
            (json!({"cmd":"halt","symbol":"X"}), "unknown field `symbol`"),
            (json!({"cmd":"stop-trading"}), "missing `symbol`"),
            (json!({"cmd":"set","symbol":"X"}), "at least one"),
            (
                json!({"cmd":"start-trading","symbol":"X","chunks":0}),
                "chunks",
            ),
            (
                json!({"cmd":"start-trading","symbol":"X","qty":1}),
                "unknown field `qty`",
            ),
            (json!({"cmd":"set","symbol":"X","params":{"a":[1]}}), "`a`"),
            (json!(["status"]), "JSON object"),
            (json!({}), "missing `cmd`"),
        ] {
            let e = CtlRequest::from_json(&v).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
        assert_eq!(parse_kv(" a = 1 "), Ok(("a".into(), "1".into())));
        assert!(parse_kv("a").is_err() && parse_kv("=1").is_err());
    }

    #[test]
    fn only_loopback_tcp() {
        assert!(loopback_addr("127.0.0.1:7070").is_ok());
        assert!(loopback_addr("[::1]:7070").is_ok());
        assert!(loopback_addr("localhost:7070").is_ok());
        for bad in ["0.0.0.0:7070", "192.168.1.2:1", "127.0.0.1", "x"] {
            assert!(loopback_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_survive_partial_reads_and_long_lines_are_refused() {
        let mut r = LineReader::default();
        r.buf.extend_from_slice(b"{\"a\":1}\r\n{\"b\"");
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(r.next_line().unwrap(), None);
        r.buf.extend_from_slice(b":2}\n");
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"b\":2}");
        r.buf = vec![b'x'; MAX_LINE + 1];
        assert!(r.next_line().is_err());
        // A newline that comes too late does not make a long line acceptable.
        let mut r = LineReader::default();
        r.buf = vec![b'x'; MAX_LINE + 5];
        r.buf.push(b'\n');
        assert!(r.next_line().is_err());
        // A line of exactly MAX_LINE bytes is fine.
        let mut r = LineReader::default();
        r.buf = vec![b'x'; MAX_LINE];
        r.buf.push(b'\n');
        assert_eq!(r.next_line().unwrap().unwrap().len(), MAX_LINE);
    }

    #[test]
    fn tokens_compare_in_constant_time_and_are_never_shown() {
        assert!(constant_time_eq(b"abcdefgh", b"abcdefgh"));
        for other in [
            &b"abcdefgX"[..],
            b"Xbcdefgh",
            b"abcdefg",
            b"abcdefghi",
            b"",
            b"abcdefgh\0",
        ] {
            assert!(!constant_time_eq(b"abcdefgh", other), "{other:?}");
        }
        // Lengths 256 apart differ in the low byte by nothing: still unequal.
        assert!(!constant_time_eq(&[0u8; 256], &[0u8; 512]));
        let t = Token::new("  0123456789abcdef0123 \n", "test").unwrap();
        assert!(t.matches(b"0123456789abcdef0123"));
        assert!(!t.matches(b"0123456789abcdef012"));
        assert_eq!(format!("{t:?}"), "Token(..)");
        let e = format!("{:#}", Token::new("short", "test").unwrap_err());
        assert!(e.contains("at least 16") && !e.contains("short"), "{e}");
        assert!(Token::new(" \n", "test").is_err());
        assert!(Token::new("0123456789abcdef\u{7}x", "test").is_err());
    }

    #[test]
    fn token_files_must_be_0600() {
        let dir = std::env::temp_dir().join(format!("tl-ctl-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t");
        std::fs::write(&path, "secret-0123456789abcdef\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = format!("{:#}", Token::from_file(&path).unwrap_err());
            assert!(
                e.contains(&format!("{mode:04o}")) && e.contains("chmod 600"),
                "{e}"
            );
            assert!(!e.contains("secret-0123"), "{e}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(Token::from_file(&path)
                .unwrap()
                .matches(b"secret-0123456789abcdef"));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, vec![b'a'; 5000]).unwrap();
        assert!(format!("{:#}", Token::from_file(&path).unwrap_err()).contains("longer than"));
        assert!(Token::from_file(&dir.join("nosuch")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn http_is_recognised() {
        for l in [
            "GET / HTTP/1.1",
            "POST /x HTTP/1.0",
            "PUT / HTTP/1.1",
            "HEAD / HTTP/1.1",
            "OPTIONS * HTTP/1.1",
            "DELETE / HTTP/1.1",
            "CONNECT a:1 HTTP/1.1",
            "PATCH / HTTP/1.1",
            "PRI * HTTP/2.0",
            "Host: x HTTP/1.1",
            "GET /",
        ] {
            assert!(looks_like_http(l.as_bytes()), "{l}");
        }
        for l in [r#"{"cmd":"status"}"#, "not json", "GETTER"] {
            assert!(!looks_like_http(l.as_bytes()), "{l}");
        }
    }

    #[test]
    fn tcp_without_a_token_is_refused_at_bind() {
        let ep = Endpoint::Tcp("127.0.0.1:0".parse().unwrap());
        let e = format!("{:#}", ControlServer::bind(&ep, None).unwrap_err());
        assert!(e.contains("needs a token") && e.contains(TOKEN_ENV), "{e}");
        let t = Token::new("0123456789abcdef", "test").unwrap();
        assert!(ControlServer::bind(&ep, Some(t)).is_ok());
    }

    #[test]
    fn a_socket_is_0600_refuses_a_second_engine_and_is_removed() {
        let dir = std::env::temp_dir().join(format!("tl-ctl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.sock");
        let ep = Endpoint::Unix(path.clone());
        let a = ControlServer::bind(&ep, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = format!("{:#}", ControlServer::bind(&ep, None).unwrap_err());
        assert!(e.contains("answers"), "{e}");
        drop(a);
        assert!(!path.exists());
        // A stale socket (its listener gone without cleaning up) is replaced.
        let l = UnixListener::bind(&path).unwrap();
        drop(l);
        assert!(path.exists());
        let b = ControlServer::bind(&ep, None).unwrap();
        drop(b);
        assert!(!path.exists());
        // Not a socket: refused, and left alone.
        std::fs::write(&path, "x").unwrap();
        let e = format!("{:#}", ControlServer::bind(&ep, None).unwrap_err());
        assert!(e.contains("not a socket"), "{e}");
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
