//! The I/O thread: one `mio::Poll` over every feed connection, frames decoded straight into the
//! core's ring, reconnects with backoff, heartbeats and idle detection.
//!
//! **The loop.** [`IoLoop::run`] owns every socket of its feeds and runs on one (pinned)
//! thread. Each iteration it applies queued [`IoCommand`]s, runs each link's timers (connect,
//! heartbeat, idle and connect timeouts), publishes its counters to [`IoShared`] (at most every
//! millisecond), sends the order session's commands, then waits in `poll` at most
//! [`MAX_POLL_WAIT`] (less when a deadline is nearer; never with [`IoConfig::spin`]) and drains
//! every readiness until `WouldBlock` (edge-triggered). At stop every connection is closed
//! politely, bounded by [`IoConfig::close_timeout`], and an [`IoReport`] is returned.
//!
//! **What allocates.** After start-up the frame path allocates nothing: a frame is stamped once (`recv_ns = now()`), optionally copied into the
//! recorder's byte ring ([`crate::recorder`]), decoded by its venue's decoder (one
//! [`AnyDecoder`](crate::venue::AnyDecoder) per venue, picked by an array index and one
//! `match`, no virtual call; a [`BinanceDecoder`] for Binance spot) into one reused
//! `Vec<Event>`, and pushed with [`EventTx::push_all`]. The ring's
//! [`OnFull::Drop`](engine::ring::OnFull::Drop) policy counts what a slow core costs and follows
//! it with a `Gap` event; the socket is always drained. Cold paths (connects, notices, error
//! text, commands) may allocate.
//!
//! **Venues.** Each [`FeedSpec`] names its venue; the venue's
//! [`Adapter`](crate::venue::Adapter) writes the subscription frames (after every connect, and
//! for [`IoCommand`]s) and says the heartbeat (a WebSocket ping, or a text ping such as OKX's
//! `ping`, whose text `pong` the decoder ignores as a heartbeat and the loop counts as one).
//! The loop, its reconnects and its recording know nothing else of a venue.
//!
//! **Which thread sees what.** The loop takes no lock and runs no async runtime. Other threads
//! see its progress only through [`IoShared`] (relaxed atomics) and the [`IoNotice`] callback
//! (called on the I/O thread, off the frame path); they talk to it only through the bounded
//! [`command_channel`] and, for orders, the order session's rings.
//!
//! **Modules.** `run` (the [`IoLoop`] builder and the loop), `link` (one connection's state
//! machine and the token codec that routes readiness to it: see [`LinkState`]), `frame` (the
//! frame path: stamp, record, decode, push), `counters` ([`IoCounter`], [`IoCounters`]: the
//! counter list, written once), `shared` ([`IoShared`]), `command` ([`IoCommand`] and its
//! queue), `config`, `backoff`, `notice`, `report`.
//!
//! ```no_run
//! use engine::ring::{event_ring, OnFull};
//! use engine::symbol::SymbolTable;
//! use feeds::binance::market::BinanceDecoder;
//! use feeds::io::{FeedSpec, IoConfig, IoLoop, IoShared};
//! use std::sync::atomic::AtomicBool;
//!
//! # fn now() -> u64 { 0 } // the engine's clock: tools::clock::MonoClock::now
//! let mut symbols = SymbolTable::new();
//! symbols.intern("BTCUSDT").unwrap();
//! let (tx, _core_rx) = event_ring(65_536, OnFull::Drop); // the consumer goes to the core
//! let cfg = IoConfig {
//!     feeds: vec![FeedSpec {
//!         conn_id: 1,
//!         url: "wss://stream.binance.com:9443/stream".into(),
//!         subscribe: vec!["btcusdt@trade".into(), "btcusdt@depth@100ms".into()],
//!         venue: engine::venue::Venue::Binance,
//!     }],
//!     ..IoConfig::default()
//! };
//! let shared = IoShared::new(cfg.feeds.len()); // read by a status thread
//! let stop = AtomicBool::new(false); // set by a signal handler
//! let decoder = BinanceDecoder::new(symbols);
//! let report = IoLoop::new(cfg, decoder, tx, now).run(&shared, &stop, &mut |n| eprintln!("{n}"));
//! println!("{:?}", report.totals);
//! ```
//!
//! [`BinanceDecoder`]: crate::binance::market::BinanceDecoder
//! [`EventTx::push_all`]: engine::ring::EventTx::push_all

mod backoff;
mod command;
mod config;
mod counters;
mod frame;
mod link;
mod notice;
mod report;
mod run;
mod shared;

pub use backoff::{Backoff, SplitMix64};
pub use command::{
    command_channel, IoCommand, IoCommandError, IoCommandRx, IoCommandTx, COMMAND_QUEUE,
};
pub use config::{FeedSpec, IoConfig, ReconnectPolicy};
pub use counters::{IoCounter, IoCounters};
pub use link::{AdapterOf, LinkState};
pub use notice::{IoNotice, DECODE_ERROR_NOTICES, ERROR_RESPONSE_NOTICES};
pub use report::{ConnReport, IoEnd, IoReport, SessionReport};
pub use run::{IoLoop, MAX_POLL_WAIT};
pub use shared::IoShared;
