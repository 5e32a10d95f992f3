//! Binance spot WebSocket API: signed order requests, their replies, and `executionReport` events.
//!
//! The WebSocket API (`wss://ws-api.binance.com:443/ws-api/v3`) takes one JSON request per text
//! frame, `{"id":7,"method":"order.place","params":{..}}`, and answers each with
//! `{"id":7,"status":200,"result":{..}}` or `{"id":7,"status":400,"error":{"code":-2010,"msg":".."}}`.
//! This module is the codec only (sans-IO, like the rest of the wire side's decoders): the I/O
//! thread owns the socket, passes in the time, and writes out the text the encoder hands back.
//!
//! # Parts
//!
//! | module | stage | I/O |
//! |---|---|---|
//! | [`credentials`] | API key and secret: the key file, the environment, redaction | reads files and the environment |
//! | [`sign`] | HMAC-SHA256 / Ed25519 signatures of the sorted params | none |
//! | [`encode`] | [`OrderEncoder`]: requests into reused buffers | none |
//! | [`reply`] | replies and `executionReport` events to engine events | none |
//! | [`error`] | [`ApiError`], shared by all four | none |
//!
//! `credentials` depends on nothing else here; `sign` on `credentials`; `encode` on both;
//! `reply` only on `error`. Everything public is re-exported here.
//!
//! # Cost
//!
//! The encoder reuses two `String`s (the JSON and the signed payload, 512 bytes reserved at
//! start-up): after warm-up, encoding and signing an order allocates nothing (checked with a
//! counting allocator in `tests/binance_api.rs`). [`parse_execution_report`] allocates nothing
//! either; [`parse_reply`] allocates only for an error message and for the open-order list;
//! [`parse_order_status`] only for the symbol's name and an error message; [`parse_my_trades`]
//! for the list and two short strings per trade (reconciliation is not on the order path).
//!
//! Rough costs per call on the project's 2-vCPU machine (shared, noisy), release build, from a
//! timing loop (`cargo test --release --test binance_api timings -- --ignored --nocapture`, the
//! range over six runs, 2026-11-22): a LIMIT `order.place` encoded and HMAC-signed 0.51–0.66 µs,
//! Ed25519-signed 13–15 µs, unsigned in an authenticated session 0.22–0.42 µs (typically
//! 0.23); an `executionReport` TRADE (459 bytes) 0.51–0.58 µs; an `order.place` reply (510
//! bytes) 0.61–0.75 µs. With Ed25519 keys, `session.logon` takes the signature off the order
//! path.

pub mod credentials;
pub mod encode;
pub mod error;
pub mod reply;
pub mod sign;
#[cfg(test)]
mod tests;

/// The Ed25519 crate of [`Credentials::Ed25519`] (for `SigningKey`, `VerifyingKey`, PKCS#8).
pub use ed25519_dalek;

pub use credentials::{Credentials, Secret};
pub use encode::{OrderEncoder, Param};
pub use error::{ApiError, VenueError};
pub use reply::{
    execution_report_of, my_trades_of, order_status_of, parse_execution_report, parse_my_trades,
    parse_order_status, parse_place_result, parse_reply, place_result_of, read_envelope, reply_of,
    trade_fill, ApiReply, Envelope, OpenOrder, OrderStatus, OrderStatusReply, PlaceResult,
    TradesReply, VenueTrade,
};
