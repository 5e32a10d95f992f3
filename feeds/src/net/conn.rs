//! [`Connection`]: one feed socket driven by readiness events.

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::{ClientConfig, ClientConnection};
use tungstenite::client::IntoClientRequest;
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

use super::error::{from_io, from_ws, send_backlog_full, Phase};
use super::lines::{Drained, LineBuffer};
use super::tls::{client_session, client_tls_config, Transport};
use super::{Endpoint, NetError, TlsOptions};

/// Bytes tungstenite reads from the transport per call. tungstenite zero-fills this much of its
/// read buffer before every read, so it is a cost per read call (two per readiness event at
/// least): 16 KiB keeps that near a microsecond while a burst still costs one syscall per 16 KiB
/// (one TLS record's worth of plaintext).
const WS_READ_CHUNK: usize = 16 * 1024;

/// Outgoing bytes a connection may hold while the peer does not read; beyond it a send fails.
pub(crate) const MAX_SEND_BACKLOG: usize = 8 << 20;

/// Limits and TLS settings of a connection.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// Largest WebSocket frame payload accepted (default 1 MiB). Checked on the frame header,
    /// before anything is buffered.
    pub max_frame_size: usize,
    /// Largest WebSocket message accepted, after reassembling fragments (default 4 MiB).
    pub max_message_size: usize,
    /// Largest line of a raw `tcp://`/`tls://` feed, newline excluded (default 1 MiB).
    pub max_line: usize,
    /// TLS client configuration for `wss://` and `tls://`; `None` builds one with the webpki
    /// roots at connect time (build it once with [`client_tls_config`] instead).
    pub tls: Option<Arc<ClientConfig>>,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            max_frame_size: 1 << 20,
            max_message_size: 4 << 20,
            max_line: 1 << 20,
            tls: None,
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// TCP connect in progress.
    Connecting,
    /// TLS handshake in progress.
    TlsHandshaking,
    /// WebSocket upgrade (HTTP request / `101` response) in progress.
    WsHandshaking,
    /// Messages flow both ways.
    Open,
    /// A close handshake is under way (ours or the peer's).
    Closing,
    /// Closed cleanly (after [`ConnEvent::Closed`]) or failed.
    Closed,
}

/// What [`Connection::handle_ready`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEvent<'a> {
    /// Handshakes done: sends go straight out now. Emitted once.
    Opened,
    /// One complete message: a WebSocket text or binary message, or one line of a raw feed
    /// (without its newline). The slice is valid only during the callback.
    Message {
        /// The message bytes (valid UTF-8 when `binary` is false on a WebSocket).
        payload: &'a [u8],
        /// A WebSocket binary message (always false on raw feeds).
        binary: bool,
    },
    /// A WebSocket pong arrived (the answer to [`Connection::send_ping`], or unsolicited).
    Pong,
    /// The connection closed cleanly; nothing follows. Emitted at most once.
    Closed(CloseReason),
}

/// Who closed the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer sent a WebSocket close frame (code 1005 when it carried none); our reply is sent.
    ByPeer {
        /// The close code the peer sent.
        code: u16,
    },
    /// We called [`Connection::close`] and the peer completed the close.
    ByUs,
    /// The peer closed the TCP (or TLS) connection without a close frame, at a message
    /// boundary as far as we can tell (a raw feed ending mid-line is an error instead).
    Eof,
}

/// The socket in whichever shape the current state needs.
// One per connection, and `Ws` is the hot variant: boxing it would add a pointer chase per read.
#[allow(clippy::large_enum_variant)]
enum Io {
    /// Connecting, TLS handshaking, or a raw feed.
    Stream(Transport),
    /// WebSocket upgrade in progress (tungstenite owns the transport meanwhile).
    Handshake(Box<MidHandshake<ClientHandshake<Transport>>>),
    /// Open (or closing) WebSocket.
    Ws(WebSocket<Transport>),
    /// Between states, or after a failure.
    Gone,
}

impl Io {
    fn sock(&mut self) -> Option<&mut TcpStream> {
        match self {
            Io::Stream(t) => Some(&mut t.sock),
            Io::Handshake(m) => Some(&mut m.get_mut().get_mut().sock),
            Io::Ws(ws) => Some(&mut ws.get_mut().sock),
            Io::Gone => None,
        }
    }
}

/// Close progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    No,
    /// We asked; a raw feed's write side is shut once `shut` is true.
    ByUs {
        shut: bool,
    },
    /// The peer sent a close frame; our reply is queued.
    ByPeer {
        code: u16,
    },
}

/// One client connection to a feed: TCP, optionally TLS, optionally WebSocket, on a
/// non-blocking mio socket. See the [module docs](super) for the state machine and the
/// edge-triggered contract.
pub struct Connection {
    state: ConnState,
    io: Io,
    websocket: bool,
    /// `host:port`, for messages.
    peer: String,
    /// Request URL of the WebSocket upgrade.
    ws_url: String,
    ws_config: WebSocketConfig,
    /// TLS session, created at connect time and moved into the transport once TCP is up.
    tls_session: Option<Box<ClientConnection>>,
    addrs: Vec<SocketAddr>,
    /// Index of the address being tried.
    addr_idx: usize,
    token: Token,
    /// WebSocket messages sent before the connection opened.
    pending: Vec<Message>,
    /// Raw feeds: outgoing bytes not yet taken by the transport, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// Raw feeds: the line framer.
    lines: Option<LineBuffer>,
    max_line: usize,
    closing: Closing,
    failed: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("state", &self.state)
            .field("websocket", &self.websocket)
            .field("tls", &(self.tls_session.is_some() || self.has_tls()))
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Resolves `ep` (a blocking DNS lookup unless the host is an IP literal; see
    /// [`Endpoint::resolve`]), starts a non-blocking connect to the first address and registers
    /// the socket for `READABLE | WRITABLE` with `token`. Further addresses are tried in turn if
    /// a connect fails. TCP_NODELAY is set once connected.
    pub fn connect(
        ep: &Endpoint,
        opts: &ConnOptions,
        registry: &Registry,
        token: Token,
    ) -> Result<Connection, NetError> {
        let addrs = ep.resolve()?;
        Self::connect_to(ep, &addrs, opts, registry, token)
    }

    /// As [`connect`](Self::connect), to addresses resolved by the caller (never blocks). `ep`
    /// still supplies the TLS server name, the `Host` header and the request path.
    pub fn connect_to(
        ep: &Endpoint,
        addrs: &[SocketAddr],
        opts: &ConnOptions,
        registry: &Registry,
        token: Token,
    ) -> Result<Connection, NetError> {
        if addrs.is_empty() {
            return Err(NetError::Resolve {
                host: ep.host.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses to connect to"),
            });
        }
        let tls_session = if ep.is_tls() {
            let config = match &opts.tls {
                Some(c) => c.clone(),
                None => client_tls_config(&TlsOptions::default())?,
            };
            Some(Box::new(client_session(config, &ep.host)?))
        } else {
            None
        };
        let frame_limit = opts.max_frame_size.min(opts.max_message_size);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_CHUNK)
            .write_buffer_size(0)
            .max_write_buffer_size(MAX_SEND_BACKLOG)
            .max_frame_size(Some(frame_limit))
            .max_message_size(Some(opts.max_message_size));
        let (sock, addr_idx) = start_connect(addrs, 0, registry, token)?;
        Ok(Connection {
            state: ConnState::Connecting,
            io: Io::Stream(Transport { sock, tls: None }),
            websocket: ep.is_websocket(),
            peer: ep.authority(),
            ws_url: ep.ws_url(),
            ws_config,
            tls_session,
            addrs: addrs.to_vec(),
            addr_idx,
            token,
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            lines: None,
            max_line: opts.max_line,
            closing: Closing::No,
            failed: false,
        })
    }

    /// Drives the connection after a readiness event for its token (or at any other time:
    /// spurious calls are harmless). Reads and writes until the socket would block, as
    /// edge-triggered readiness requires, advancing connect → TLS handshake → WebSocket upgrade
    /// → open, and calls `f` with [`ConnEvent::Opened`] once, then every complete message,
    /// [`ConnEvent::Pong`] for pongs, and [`ConnEvent::Closed`] at the end of a clean close.
    /// Pings are answered automatically, and a peer's close frame is answered before `Closed`.
    ///
    /// `Err` means the connection failed: drop it (after [`deregister`](Self::deregister)) and
    /// reconnect. Calls after `Closed` do nothing; calls after an error return
    /// [`NetError::Closed`].
    pub fn handle_ready(
        &mut self,
        registry: &Registry,
        f: &mut dyn FnMut(ConnEvent<'_>),
    ) -> Result<(), NetError> {
        let r = self.drive(registry, f);
        if r.is_err() {
            self.fail();
        }
        r
    }

    fn drive(
        &mut self,
        registry: &Registry,
        f: &mut dyn FnMut(ConnEvent<'_>),
    ) -> Result<(), NetError> {
        loop {
            match self.state {
                ConnState::Connecting => {
                    if !self.poll_connect(registry)? {
                        return Ok(());
                    }
                    match self.tls_session.take() {
                        Some(session) => {
                            if let Io::Stream(t) = &mut self.io {
                                t.tls = Some(session);
                            }
                            self.state = ConnState::TlsHandshaking;
                        }
                        None => self.transport_ready(f)?,
                    }
                }
                ConnState::TlsHandshaking => {
                    let Io::Stream(t) = &mut self.io else {
                        return Err(NetError::Closed);
                    };
                    match t.tls_handshake() {
                        Ok(true) => self.transport_ready(f)?,
                        Ok(false) => return Ok(()),
                        Err(e) => return Err(from_io(e, Phase::TlsHandshake, &self.peer)),
                    }
                }
                ConnState::WsHandshaking => {
                    let Io::Handshake(mid) = mem::replace(&mut self.io, Io::Gone) else {
                        return Err(NetError::Closed);
                    };
                    match mid.handshake() {
                        Ok((ws, _response)) => {
                            self.io = Io::Ws(ws);
                            self.opened(f)?;
                        }
                        Err(HandshakeError::Interrupted(mid)) => {
                            self.io = Io::Handshake(Box::new(mid));
                            return Ok(());
                        }
                        Err(HandshakeError::Failure(e)) => {
                            return Err(from_ws(e, Phase::WsHandshake, &self.peer))
                        }
                    }
                }
                ConnState::Open | ConnState::Closing => {
                    let closed = if self.websocket {
                        self.drive_ws(f)?
                    } else {
                        self.drive_raw(f)?
                    };
                    if let Some(reason) = closed {
                        self.state = ConnState::Closed;
                        f(ConnEvent::Closed(reason));
                    }
                    return Ok(());
                }
                ConnState::Closed => {
                    return if self.failed {
                        Err(NetError::Closed)
                    } else {
                        Ok(())
                    };
                }
            }
        }
    }

    /// `Ok(true)` once the TCP connect has completed; tries the next address on failure.
    fn poll_connect(&mut self, registry: &Registry) -> Result<bool, NetError> {
        let Io::Stream(t) = &mut self.io else {
            return Err(NetError::Closed);
        };
        let failure = match t.sock.take_error() {
            Ok(Some(e)) | Err(e) => e,
            Ok(None) => match t.sock.peer_addr() {
                Ok(_) => {
                    t.sock.set_nodelay(true).map_err(NetError::Connect)?;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
                Err(e) => e,
            },
        };
        let _ = registry.deregister(&mut t.sock);
        let failed_addr = self.addrs.get(self.addr_idx).copied();
        if self.addr_idx + 1 < self.addrs.len() {
            let (sock, idx) = start_connect(&self.addrs, self.addr_idx + 1, registry, self.token)?;
            t.sock = sock;
            self.addr_idx = idx;
            return Ok(false);
        }
        let shown = failed_addr.map_or_else(|| self.peer.clone(), |a| a.to_string());
        Err(NetError::Connect(io::Error::new(
            failure.kind(),
            format!("{shown}: {failure}"),
        )))
    }

    /// TCP (and TLS) up: start the WebSocket upgrade, or open a raw feed.
    fn transport_ready(&mut self, f: &mut dyn FnMut(ConnEvent<'_>)) -> Result<(), NetError> {
        if !self.websocket {
            self.lines = Some(LineBuffer::new(self.max_line));
            return self.opened(f);
        }
        let Io::Stream(transport) = mem::replace(&mut self.io, Io::Gone) else {
            return Err(NetError::Closed);
        };
        let request = self
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| from_ws(e, Phase::WsHandshake, &self.peer))?;
        let mid = ClientHandshake::start(transport, request, Some(self.ws_config))
            .map_err(|e| from_ws(e, Phase::WsHandshake, &self.peer))?;
        self.io = Io::Handshake(Box::new(mid));
        self.state = ConnState::WsHandshaking;
        Ok(())
    }

    /// Handshakes done: queue what was sent early, report `Opened`.
    fn opened(&mut self, f: &mut dyn FnMut(ConnEvent<'_>)) -> Result<(), NetError> {
        self.state = ConnState::Open;
        if let Io::Ws(ws) = &mut self.io {
            for msg in self.pending.drain(..) {
                match ws.write(msg) {
                    Ok(()) => {}
                    Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(from_ws(e, Phase::Open, &self.peer)),
                }
            }
            self.pending = Vec::new();
        }
        f(ConnEvent::Opened);
        Ok(())
    }

    /// Reads every available WebSocket message, then flushes. `Some` once closed.
    fn drive_ws(
        &mut self,
        f: &mut dyn FnMut(ConnEvent<'_>),
    ) -> Result<Option<CloseReason>, NetError> {
        let Io::Ws(ws) = &mut self.io else {
            return Err(NetError::Closed);
        };
        let ended = |closing: Closing| match closing {
            Closing::ByPeer { code } => CloseReason::ByPeer { code },
            Closing::ByUs { .. } | Closing::No => CloseReason::Eof,
        };
        while !matches!(self.closing, Closing::ByPeer { .. }) {
            match ws.read() {
                Ok(Message::Text(text)) => f(ConnEvent::Message {
                    payload: text.as_bytes(),
                    binary: false,
                }),
                Ok(Message::Binary(data)) => f(ConnEvent::Message {
                    payload: &data,
                    binary: true,
                }),
                Ok(Message::Pong(_)) => f(ConnEvent::Pong),
                Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => {}
                Ok(Message::Close(frame)) => {
                    if let Closing::ByUs { .. } = self.closing {
                        return Ok(Some(CloseReason::ByUs));
                    }
                    let code = frame.map_or(1005, |c| u16::from(c.code));
                    self.closing = Closing::ByPeer { code };
                    self.state = ConnState::Closing;
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(WsError::ConnectionClosed)
                | Err(WsError::AlreadyClosed)
                | Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    return Ok(Some(ended(self.closing)));
                }
                Err(e) => return Err(from_ws(e, Phase::Open, &self.peer)),
            }
        }
        // Our sends, automatic pongs, the close reply.
        match ws.flush() {
            Ok(()) => match self.closing {
                Closing::ByPeer { code } => Ok(Some(CloseReason::ByPeer { code })),
                _ => Ok(None),
            },
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => {
                Ok(Some(ended(self.closing)))
            }
            Err(e) => Err(from_ws(e, Phase::Open, &self.peer)),
        }
    }

    /// Flushes, then reads every available line of a raw feed. `Some` once closed.
    fn drive_raw(
        &mut self,
        f: &mut dyn FnMut(ConnEvent<'_>),
    ) -> Result<Option<CloseReason>, NetError> {
        self.flush_raw()?;
        let Io::Stream(t) = &mut self.io else {
            return Err(NetError::Closed);
        };
        if let Closing::ByUs { shut: false } = self.closing {
            if self.out_pos == self.out.len() {
                t.shutdown_write();
                self.closing = Closing::ByUs { shut: true };
            }
        }
        let lines = self
            .lines
            .get_or_insert_with(|| LineBuffer::new(self.max_line));
        let drained = lines.drain(t, &mut |line| {
            f(ConnEvent::Message {
                payload: line,
                binary: false,
            })
        });
        let by_us = matches!(self.closing, Closing::ByUs { .. });
        match drained {
            Ok(Drained::WouldBlock) => Ok(None),
            Ok(Drained::Eof) => Ok(Some(if by_us {
                CloseReason::ByUs
            } else {
                CloseReason::Eof
            })),
            Ok(Drained::EofMidLine(_)) if by_us => Ok(Some(CloseReason::ByUs)),
            Ok(Drained::EofMidLine(n)) => Err(NetError::Protocol(format!(
                "{} closed the connection in the middle of a line ({n} bytes without a newline \
                 dropped)",
                self.peer
            ))),
            Err(e) => Err(e.into_net(self.max_line, |io| from_io(io, Phase::Open, &self.peer))),
        }
    }

    /// Raw feeds: hands queued bytes to the transport until done or it would block.
    fn flush_raw(&mut self) -> Result<(), NetError> {
        let Io::Stream(t) = &mut self.io else {
            return Err(NetError::Closed);
        };
        let io_err = |e: io::Error| from_io(e, Phase::Open, &self.peer);
        while self.out_pos < self.out.len() {
            match io::Write::write(t, &self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        match io::Write::flush(t) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(io_err(e)),
            _ => Ok(()),
        }
    }

    /// Sends a message: a masked WebSocket text frame, or `text` plus `\n` on a raw feed (where
    /// `text` must not contain a newline). It is written at once as far as the socket takes
    /// it; the rest stays queued and goes out on the next [`handle_ready`](Self::handle_ready)
    /// (a `WouldBlock` is not an error). Sends before [`ConnEvent::Opened`] are queued and go
    /// out right after the handshakes, before `Opened` is reported.
    ///
    /// Fails with [`NetError::Closed`] once closing; with [`NetError::Protocol`] for a raw
    /// message containing `\n` (refused, the connection is unaffected); with [`NetError::Io`]
    /// when over 8 MiB would be queued (the peer is not reading: the connection is failed).
    /// Costs one allocation per WebSocket message (the text is copied into tungstenite's
    /// `Bytes`), none on a raw feed once its buffer has grown.
    pub fn send_text(&mut self, text: &str) -> Result<(), NetError> {
        self.check_sendable()?;
        if self.websocket {
            return self.send_ws(Message::Text(Utf8Bytes::from(text)));
        }
        if text.contains('\n') {
            return Err(NetError::Protocol(format!(
                "cannot send to raw feed {}: the message contains a newline (the connection is \
                 unaffected)",
                self.peer
            )));
        }
        if self.out.len() - self.out_pos + text.len() + 1 > MAX_SEND_BACKLOG {
            self.fail();
            return Err(send_backlog_full(&self.peer));
        }
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'\n');
        if self.state == ConnState::Open {
            let r = self.flush_raw();
            if r.is_err() {
                self.fail();
            }
            return r;
        }
        Ok(())
    }

    /// Sends a WebSocket ping (payload of at most 125 bytes, else an error that leaves the
    /// connection unaffected); its pong arrives as
    /// [`ConnEvent::Pong`]. Queued like [`send_text`](Self::send_text). Raw feeds have no
    /// transport-level ping: there this does nothing and returns `Ok` (their heartbeat, if any,
    /// is an application message).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), NetError> {
        self.check_sendable()?;
        if !self.websocket {
            return Ok(());
        }
        if payload.len() > 125 {
            return Err(NetError::Protocol(format!(
                "ping payload of {} bytes: WebSocket control frames carry at most 125",
                payload.len()
            )));
        }
        self.send_ws(Message::Ping(Bytes::copy_from_slice(payload)))
    }

    fn check_sendable(&self) -> Result<(), NetError> {
        match self.state {
            ConnState::Closing | ConnState::Closed => Err(NetError::Closed),
            _ => Ok(()),
        }
    }

    fn send_ws(&mut self, msg: Message) -> Result<(), NetError> {
        let Io::Ws(ws) = &mut self.io else {
            self.pending.push(msg);
            return Ok(());
        };
        let r = ws.write(msg).and_then(|()| ws.flush());
        match r {
            Ok(()) => Ok(()),
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                let e = from_ws(e, Phase::Open, &self.peer);
                self.fail();
                Err(e)
            }
        }
    }

    /// Starts a clean close: a WebSocket close frame (code 1000), or on a raw feed TLS
    /// `close_notify` and a TCP write shutdown once queued sends are out. Keep calling
    /// [`handle_ready`](Self::handle_ready): messages may still arrive, then
    /// `Closed(CloseReason::ByUs)`. Before the connection opened there is nothing to hand-shake:
    /// the socket is shut down and the state is `Closed` at once, with no event. Calling it
    /// again does nothing.
    pub fn close(&mut self) -> Result<(), NetError> {
        match self.state {
            ConnState::Closing | ConnState::Closed => Ok(()),
            ConnState::Connecting | ConnState::TlsHandshaking | ConnState::WsHandshaking => {
                if let Some(sock) = self.io.sock() {
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                }
                self.state = ConnState::Closed;
                Ok(())
            }
            ConnState::Open => {
                self.state = ConnState::Closing;
                self.closing = Closing::ByUs { shut: false };
                match &mut self.io {
                    Io::Ws(ws) => {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: Utf8Bytes::from_static(""),
                        };
                        match ws.close(Some(frame)) {
                            Ok(()) => Ok(()),
                            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                            Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => Ok(()),
                            Err(e) => {
                                let e = from_ws(e, Phase::Open, &self.peer);
                                self.fail();
                                Err(e)
                            }
                        }
                    }
                    Io::Stream(_) => {
                        let r = self.flush_raw();
                        if let (Ok(()), Io::Stream(t)) = (&r, &mut self.io) {
                            if self.out_pos == self.out.len() {
                                t.shutdown_write();
                                self.closing = Closing::ByUs { shut: true };
                            }
                        }
                        if r.is_err() {
                            self.fail();
                        }
                        r
                    }
                    Io::Handshake(_) | Io::Gone => Ok(()),
                }
            }
        }
    }

    /// Where the connection is.
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// `host:port` of the peer, as used in error messages.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The address being connected to (or connected), once known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.addrs.get(self.addr_idx).copied()
    }

    /// Removes the socket from `registry` (errors ignored: the socket is being dropped anyway).
    /// Call it before dropping the connection.
    pub fn deregister(&mut self, registry: &Registry) {
        if let Some(sock) = self.io.sock() {
            let _ = registry.deregister(sock);
        }
    }

    fn has_tls(&self) -> bool {
        match &self.io {
            Io::Stream(t) => t.tls.is_some(),
            Io::Handshake(m) => m.get_ref().get_ref().tls.is_some(),
            Io::Ws(ws) => ws.get_ref().tls.is_some(),
            Io::Gone => false,
        }
    }

    fn fail(&mut self) {
        self.state = ConnState::Closed;
        self.failed = true;
    }
}

/// Starts a non-blocking connect to `addrs[from..]` in turn until one starts, and registers it.
fn start_connect(
    addrs: &[SocketAddr],
    from: usize,
    registry: &Registry,
    token: Token,
) -> Result<(TcpStream, usize), NetError> {
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate().skip(from) {
        match TcpStream::connect(*addr) {
            Ok(mut sock) => {
                registry
                    .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| {
                        NetError::Io(io::Error::new(
                            e.kind(),
                            format!("registering the socket for {addr}: {e}"),
                        ))
                    })?;
                return Ok((sock, i));
            }
            Err(e) => last = Some(io::Error::new(e.kind(), format!("{addr}: {e}"))),
        }
    }
    Err(NetError::Connect(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no address to connect to")
    })))
}
