//! The one error type of the connection layer, and the mapping from the libraries' errors.

use std::fmt;
use std::io;

use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};

/// Why a connection failed. Every variant is fatal for the connection: the caller drops it and
/// reconnects. Messages name the peer and what to do where there is something to do.
#[derive(Debug)]
pub enum NetError {
    /// The URL could not be parsed (the message quotes it and says why).
    Url(String),
    /// Name resolution failed.
    Resolve {
        /// The host that did not resolve.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The TCP connection could not be established (the error names the address).
    Connect(io::Error),
    /// TLS failed: configuration, handshake (including an untrusted or mismatched certificate,
    /// with rustls's reason), or a TLS error after the handshake.
    Tls(String),
    /// The WebSocket upgrade failed: not a `101 Switching Protocols`, a malformed response, a
    /// wrong `Sec-WebSocket-Accept`, or the server hung up mid-handshake.
    WsHandshake(String),
    /// The peer broke the WebSocket protocol: bad frame, invalid UTF-8 in a text frame, a frame
    /// or message over the configured limit, data after close, ...
    Protocol(String),
    /// A raw feed sent a line longer than `max_line` bytes (newline excluded).
    LineTooLong {
        /// The configured limit.
        max: usize,
    },
    /// Socket I/O failed after the connection was established.
    Io(io::Error),
    /// The connection is closed (or closing) and cannot take this call.
    Closed,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Url(msg) => write!(f, "invalid feed URL {msg}"),
            NetError::Resolve { host, source } => {
                write!(f, "cannot resolve host {host:?}: {source}")
            }
            NetError::Connect(e) => write!(f, "TCP connect failed: {e}"),
            NetError::Tls(msg) | NetError::WsHandshake(msg) | NetError::Protocol(msg) => {
                f.write_str(msg)
            }
            NetError::LineTooLong { max } => write!(
                f,
                "raw feed sent a line longer than {max} bytes without a newline (raise max_line if \
                 the feed really sends lines this long)"
            ),
            NetError::Io(e) => write!(f, "socket I/O failed: {e}"),
            NetError::Closed => f.write_str("connection is closed"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Resolve { source, .. } => Some(source),
            NetError::Connect(e) | NetError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Which step a failure happened in, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    TlsHandshake,
    WsHandshake,
    Open,
}

/// The rustls error carried inside an `io::Error` by [`super::tls::Transport`], if any.
pub(crate) fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Maps an I/O error of the transport (which may carry a rustls error) to a `NetError`.
pub(crate) fn from_io(e: io::Error, phase: Phase, peer: &str) -> NetError {
    if let Some(tls) = rustls_error(&e) {
        return match phase {
            Phase::TlsHandshake => {
                NetError::Tls(format!("TLS handshake with {peer} failed: {tls}"))
            }
            _ => NetError::Tls(format!("TLS error on the connection to {peer}: {tls}")),
        };
    }
    match phase {
        Phase::TlsHandshake if e.kind() == io::ErrorKind::UnexpectedEof => NetError::Tls(format!(
            "TLS handshake with {peer} failed: the server closed the connection (is it a TLS \
             port?)"
        )),
        _ => NetError::Io(io::Error::new(e.kind(), format!("{peer}: {e}"))),
    }
}

/// Maps a tungstenite error (other than `WouldBlock`, which callers handle first).
pub(crate) fn from_ws(e: WsError, phase: Phase, peer: &str) -> NetError {
    match e {
        WsError::Io(io) => from_io(io, phase, peer),
        WsError::ConnectionClosed | WsError::AlreadyClosed => NetError::Closed,
        WsError::WriteBufferFull(_) => send_backlog_full(peer),
        WsError::Protocol(ProtocolError::HandshakeIncomplete) => NetError::WsHandshake(format!(
            "WebSocket handshake with {peer} failed: the server closed the connection before \
             answering the upgrade request"
        )),
        WsError::Http(resp) => {
            let status = resp.status();
            NetError::WsHandshake(format!(
                "WebSocket handshake with {peer} failed: the server answered HTTP {status} \
                 instead of 101 Switching Protocols (check the URL path and query)"
            ))
        }
        other if phase != Phase::Open => NetError::WsHandshake(format!(
            "WebSocket handshake with {peer} failed: {}",
            describe(&other)
        )),
        other => NetError::Protocol(format!(
            "WebSocket protocol error from {peer}: {}",
            describe(&other)
        )),
    }
}

/// More than [`super::conn::MAX_SEND_BACKLOG`] bytes queued for a peer that does not read.
pub(crate) fn send_backlog_full(peer: &str) -> NetError {
    NetError::Io(io::Error::other(format!(
        "{peer}: over {} MiB of sends queued: the peer is not reading",
        super::conn::MAX_SEND_BACKLOG >> 20
    )))
}

fn describe(e: &WsError) -> String {
    match e {
        WsError::Utf8(_) => "a text frame (or close reason) is not valid UTF-8".to_string(),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => format!(
            "a frame or message of {size} bytes exceeds the limit of {max_size} bytes \
             (max_frame_size / max_message_size)"
        ),
        WsError::AttackAttempt => {
            "the handshake response is oversized or arrives in too many tiny pieces".to_string()
        }
        WsError::Protocol(ProtocolError::HttparseError(e)) => {
            format!("the response is not valid HTTP ({e})")
        }
        WsError::Protocol(p) => p.to_string(),
        other => other.to_string(),
    }
}
