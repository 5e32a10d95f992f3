//! Tickline's trading core, free of I/O.
//!
//! **Real-time contract.** Every buffer (books, rings, order tables, timer queue, histograms) is
//! sized when a [`core::Core`] is built. After that, handling an event allocates nothing, takes no
//! lock and makes no syscall; a full buffer is a counted, visible condition, never a reallocation.
//! This crate opens no socket, spawns no thread and reads no clock: time comes in as an argument
//! (`Core::poll(now)`) or through the [`core::Clock`] the caller injects, so every test of it is
//! deterministic.
//!
//! **Ownership.** The core thread owns the [`core::Core`] and everything in it. Each inbound ring
//! ([`ring::event_ring`]) has exactly one producer (an I/O or replay thread) and the core as its
//! one consumer.
//!
//! **Main types.**
//! - [`event::Event`]: the 64-byte `Copy` unit on the rings (trade, aggTrade, bookTicker,
//!   one depth level, one snapshot level, gap, connection up/down, order ack/reject/fill/cancel).
//! - [`fixed::Price`], [`fixed::Qty`]: integer 1e-8 units parsed straight from decimal strings.
//! - [`book::OrderBook`]: L2 book with Binance spot's documented snapshot + diff sync.
//! - [`checksum`]: venue book checksums (OKX's CRC32) recomputed over a book, no allocation.
//! - [`strategy::Strategy`] and [`strategy::Ctx`]: callbacks in, orders and timers out.
//! - [`paper::PaperExchange`]: fills against the following market data after a latency.
//! - [`portfolio::Position`]: position, average price, realised/unrealised PnL, fees.
//! - [`latency::StageLatency`]: fixed-bound HdrHistograms per pipeline stage.
//!
//! ```
//! use engine::core::{Clock, Core, CoreConfig};
//! use engine::event::{EventKind, Event, Trade};
//! use engine::fixed::{Price, Qty};
//! use engine::ring::{event_ring, OnFull};
//! use engine::symbol::SymbolTable;
//!
//! struct Fixed(u64);
//! impl Clock for Fixed {
//!     fn now_ns(&self) -> u64 {
//!         self.0
//!     }
//! }
//!
//! let mut symbols = SymbolTable::new();
//! let btc = symbols.intern("BTCUSDT").unwrap();
//! let mut core = Core::new(&symbols, CoreConfig::default(), Fixed(1_000));
//! let (mut tx, rx) = event_ring(1024, OnFull::Drop);
//! core.add_input(rx);
//! let trade = Trade {
//!     exch_ns: 1,
//!     trade_id: 7,
//!     price: Price::parse(b"61837.63").unwrap(),
//!     qty: Qty::parse(b"0.02").unwrap(),
//!     buyer_maker: true,
//! };
//! tx.push(Event::new(900, btc, EventKind::Trade(trade))).unwrap();
//! assert_eq!(core.poll(1_000), 1);
//! assert_eq!(core.counters().trades, 1);
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_code)]

pub mod book;
pub mod checksum;
pub mod control;
pub mod core;
pub mod event;
pub mod fixed;
pub mod idle;
pub mod latency;
pub mod metrics;
pub mod paper;
pub mod portfolio;
pub mod prefault;
pub mod ring;
pub mod risk;
pub mod route;
pub mod status;
pub mod strategy;
pub mod supervisor;
pub mod symbol;
#[cfg(test)]
mod test_rng;
pub mod venue;
