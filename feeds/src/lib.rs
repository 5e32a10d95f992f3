//! Tickline's wire side: sockets, venue formats and captures, feeding the engine's rings.
//!
//! **Real-time contract.** Buffers are sized at start-up (the I/O loop's event buffer, the
//! recorder's byte ring, the rings themselves). After that a market frame is stamped, decoded
//! straight from the socket's bytes to fixed-point [`Event`]s (no `f64`, no JSON tree:
//! [`json::Scanner`] borrows) and pushed into the core's ring without allocating or locking. A
//! full ring (`OnFull::Drop`) or recorder is counted and made visible (a `Gap` event, a
//! counter), never grown. Connects, REST, notices and error text are cold and may
//! allocate. Bad input never panics: decoders return typed errors, and `unwrap`/`expect` are
//! denied outside tests.
//!
//! **Threads.** The I/O thread ([`io::IoLoop`]) owns every socket of its feeds and, with live
//! orders, the [`orders::session::OrderSession`] and its journal; it is the single producer of the
//! core's event ring. The REST thread ([`rest::run_snapshot_worker`]) fetches depth snapshots the
//! core asks for. The recorder's writer thread ([`recorder::run_writer`]) drains raw frames to a
//! capture file. Other threads see the I/O thread through [`io::IoShared`] (relaxed atomics) and
//! talk to it through [`io::IoCommandTx`] (a bounded queue). This crate spawns no thread itself;
//! the caller (`tools`) does, and hands in the clock.
//!
//! **Modules, by stage.**
//! - Connect: [`net`] (TCP, TLS, WebSocket on non-blocking mio sockets), [`io`] (the loop:
//!   links, reconnects, heartbeats, the frame path, counters).
//! - Venues: [`venue`] (the adapter model: [`venue::Adapter`], [`venue::MarketDecoder`],
//!   [`venue::AnyDecoder`]), one folder per venue.
//! - Decode: [`binance::market`] ([`binance::market::BinanceDecoder`]: market frames and REST
//!   snapshots to events) over [`json`]; `reference` (serde_json and simd-json decoders, feature
//!   `reference-decoders`, for benchmarks and differential tests).
//! - Orders: [`binance::api`] (credentials, signing, encoding, replies), [`orders::session`]
//!   (commands from the core to the wire and replies back), [`orders::journal`] (the
//!   write-ahead log and recovery), [`orders::idcheck`] (client ids the venue already knows).
//! - Side paths: [`rest`] (snapshots, `exchangeInfo`), [`recorder`] and [`capture`] (recording
//!   and reading captures). The synthetic feed generator is the `venue-sim` crate's.
//!
//! [`Event`]: engine::event::Event
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]
pub mod binance;
pub mod bybit;
pub mod capture;
pub mod coinbase;
mod framing;
pub mod io;
pub mod json;
pub mod net;
pub mod okx;
pub mod orders;
pub mod recorder;
#[cfg(feature = "reference-decoders")]
pub mod reference;
pub mod rest;
pub mod venue;
