//! Tickline's wire side.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]
pub mod binance;
pub mod capture;
mod framing;
pub mod gen;
pub mod io;
pub mod json;
pub mod net;
pub mod orders;
pub mod recorder;
#[cfg(feature = "reference-decoders")]
pub mod reference;
pub mod rest;
