//! Bybit v5 public market data, spot and linear: everything venue-specific.
//!
//! | module | stage | direction |
//! |---|---|---|
//! | [`adapter`] | the [`Adapter`](crate::venue::Adapter)s [`BYBIT_SPOT`](adapter::BYBIT_SPOT) and [`BYBIT_LINEAR`](adapter::BYBIT_LINEAR): URLs, `subscribe` requests (split per Bybit's limits), the `{"op":"ping"}` heartbeat, WebSocket book snapshots | out |
//! | [`market`] | [`BybitDecoder`](market::BybitDecoder): `orderbook.N`, `publicTrade`, `tickers` frames to [`Event`](engine::event::Event)s, with the book's sequence rule (`u` = previous `u` + 1, a snapshot replaces the book) | in |
//!
//! Bybit's spot and linear markets use the same instrument names (`BTCUSDT`), so they are two
//! venues ([`Venue::BybitSpot`](engine::venue::Venue::BybitSpot) `bybit-spot` and
//! [`Venue::BybitLinear`](engine::venue::Venue::BybitLinear) `bybit-linear`) on two
//! connections, each with its own decoder of the one type.

pub mod adapter;
pub mod market;
