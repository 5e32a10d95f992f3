//! Tickline's wire side.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]
pub mod binance;
pub mod binance_api;
pub mod capture;
mod framing;
pub mod idcheck;
pub mod io;
pub mod journal;
pub mod json;
pub mod net;
pub mod recorder;
#[cfg(feature = "reference-decoders")]
pub mod reference;
pub mod rest;
pub mod session;
