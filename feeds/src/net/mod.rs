//! The client connection layer of the I/O threads: TCP, TLS (rustls) and WebSocket
//! (tungstenite) on non-blocking mio sockets, plus raw newline-delimited feeds.
//!
//! No locks, no async runtime, no threads: a [`Connection`] is a plain value owned by one I/O
//! thread and driven by that thread's `mio::Poll`.
//!
//! # Types
//! - [`Endpoint`]: a parsed `ws://`, `wss://`, `tcp://` or `tls://` URL.
//! - [`client_tls_config`] with [`TlsOptions`]: the rustls client configuration (webpki roots
//!   and/or a PEM CA file; verification is always on). Build it once, share the `Arc`.
//! - [`ConnOptions`]: frame, message and line limits, and the TLS configuration.
//! - [`Connection`]: one socket; [`Connection::handle_ready`] reports [`ConnEvent`]s to a
//!   callback; failures are one [`NetError`].
//!
//! # State machine
//! ```text
//!  connect()                 TCP up          TLS done (wss/tls)   101 received (ws/wss)
//!  ─────────▶ Connecting ──────────────▶ TlsHandshaking ──────▶ WsHandshaking ──────▶ Open
//!                 │  (ws/tcp skip TLS; tcp/tls skip the upgrade)                       │
//!                 │ connect fails: next resolved address, else Err(Connect)            │
//!                                                                                      ▼
//!   Closed ◀── Closed(ByPeer) after our close reply is out ◀── close frame ──┬── Closing
//!   Closed ◀── Closed(ByUs) when the peer answers our close() ◀──────────────┘
//!   Closed ◀── Closed(Eof) when the peer just hangs up;   any failure: Err, state Closed
//! ```
//! `Opened` is reported once, on entering `Open`. Sends made earlier are queued and written
//! first. A raw feed (`tcp://`, `tls://`) is `Open` as soon as TCP (and TLS) is up; each line
//! is one `Message` (without `\n` or `\r\n`; empty lines are skipped).
//!
//! # The edge-triggered contract
//! mio readiness is edge-triggered: an event fires when the socket *becomes* readable or
//! writable, and not again until it has returned `WouldBlock`. The socket is registered once
//! for `READABLE | WRITABLE`, and every [`Connection::handle_ready`] call therefore
//! - writes everything queued (our sends, automatic pongs, close replies, TLS records) until
//!   done or `WouldBlock`, and
//! - reads until `WouldBlock`, handing out every complete message; bytes that rustls already
//!   decrypted, or tungstenite already buffered (e.g. frames that arrived with the `101`
//!   response), are handed out before the socket is read again, so nothing waits for an event
//!   that will not come.
//!
//! Call it for every event with the connection's token (readable, writable, error or hang-up
//! alike; a spurious call is harmless). A send that meets `WouldBlock` stays queued and goes
//! out on the next writable event. One `handle_ready` call may report many messages: a burst
//! is drained in one go.
//!
//! # Layering on the non-blocking socket
//! One byte transport (`Transport`: the mio `TcpStream`, plus a boxed rustls
//! `ClientConnection` for TLS) implements `Read + Write` with non-blocking semantics: `read`
//! returns plaintext rustls holds, else pulls ciphertext with `read_tls` and decrypts, and says
//! `WouldBlock` only when both are dry; `write` hands plaintext to rustls and pushes records out
//! with `write_tls`. The TLS handshake is driven directly on it (SNI = the URL's host; an IP
//! literal is checked against the certificate's IP addresses). tungstenite's
//! `ClientHandshake` then runs on the transport, resuming from
//! `HandshakeError::Interrupted(MidHandshake)` on each event, and becomes a
//! `WebSocket<Transport>` (client role: frames we send are masked). Raw feeds put a line
//! framer on the same transport.
//!
//! # Limits (hostile input)
//! - A WebSocket frame whose header announces more than `min(max_frame_size,
//!   max_message_size)` bytes is refused before anything is buffered; a fragmented message is
//!   refused as soon as its fragments pass `max_message_size`. Both are [`NetError::Protocol`].
//! - Text frames (and close reasons) must be valid UTF-8, else `Protocol`.
//! - The upgrade response is bounded by tungstenite (64 KiB); anything but a valid `101` with
//!   the right `Sec-WebSocket-Accept` is [`NetError::WsHandshake`].
//! - A raw line longer than `max_line` is [`NetError::LineTooLong`] as soon as the limit is
//!   passed, without waiting for its newline; the line buffer never exceeds `max_line + 1`.
//! - Queued outgoing data is capped at 8 MiB per connection (rustls's own send buffer adds at
//!   most 64 KiB).
//!
//! # Buffers and allocation
//! Buffers are allocated at connect time and reused; a peer cannot make one outgrow the limits
//! above. Measured on the client thread with a per-thread counting allocator in
//! `tests/net_client.rs` (20,000 Binance trade frames of ~170 B, the first 2,000 as warm-up;
//! `cargo test --test net_client -- --nocapture allocations`):
//!
//! | path | allocations per received message |
//! |---|---|
//! | `ws://` | **0** (0 over ~15,000 messages) |
//! | `wss://`, one message per TLS record | **1.00** (rustls, see below) |
//! | `tcp://` | **0** |
//! | send, `ws://` | 1 per message sent |
//!
//! - `ws://`: tungstenite 0.30 splits each frame's payload off its `BytesMut` read buffer as a
//!   shared `Bytes` (a reference count, no copy); the message is dropped after the callback,
//!   so the buffer is unique again and is reclaimed in place. Exception: a *fragmented*
//!   message is reassembled by tungstenite into a fresh `Vec`/`String` (allocations per
//!   fragmented message; exchanges rarely fragment).
//! - `wss://` and `tls://`: rustls 0.23's buffered `ClientConnection` stores every decrypted
//!   TLS record's plaintext in a new `Vec`: one allocation per TLS *record* (per message when
//!   the server writes one message per record, as measured; fewer when it batches). Removing
//!   it means moving to rustls's unbuffered API (`UnbufferedClientConnection`).
//! - raw feeds: lines are slices of one buffer (it grows, doubling, only for a line longer
//!   than any before, up to `max_line + 1` bytes).
//! - sending a WebSocket message copies the text into a `Bytes` (1 allocation); raw sends
//!   append to a reused buffer.
//! - tungstenite zero-fills its read buffer's free space before each read call; the read
//!   chunk is therefore kept at 16 KiB (about 1 µs of `memset` per call, at least two calls
//!   per readiness event).
//!
//! `connect` resolves the host with the system resolver, which blocks unless the host is an IP
//! literal; [`Connection::connect_to`] takes addresses resolved elsewhere.
#![forbid(unsafe_code)]

mod conn;
mod endpoint;
mod error;
mod lines;
mod tls;

pub use conn::{CloseReason, ConnEvent, ConnOptions, ConnState, Connection};
pub use endpoint::{Endpoint, Scheme};
pub use error::NetError;
pub use tls::{client_tls_config, TlsOptions};

/// The mio this API is built on (`Registry`, `Token`, `Poll`): use it to stay version-matched.
pub use mio;
/// The rustls this API is built on (`ClientConfig`, and `rustls::pki_types`).
pub use rustls;
/// The tungstenite this API is built on.
pub use tungstenite;
