//! Binance spot and USD-M futures: everything venue-specific, split by stage.
//!
//! | module | stage | direction |
//! |---|---|---|
//! | [`adapter`] | the [`Adapter`](crate::venue::Adapter): URLs, subscriptions, heartbeat, book sync | |
//! | [`market`] | market data: WebSocket frames and REST depth snapshots to [`Event`](engine::event::Event)s | in |
//! | [`usdm`] | USD-M futures market data: its [`Adapter`](crate::venue::Adapter) and what its frames add to [`market`] (`pu`) | in |
//! | [`api`] | the WebSocket API: credentials, signing, order requests, replies and `executionReport`s | out and in |
//!
//! Both are sans-IO codecs over [`crate::json`]: the I/O thread owns the sockets, passes the time
//! in and writes out what the encoders hand back. The order session ([`crate::orders`]) drives
//! [`api`]; the I/O loop drives [`market`]. A second venue gets a sibling folder of the same
//! shape.

pub mod adapter;
pub mod api;
pub mod market;
pub mod usdm;
