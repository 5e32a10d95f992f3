//! Tickline's wire side.
pub mod binance;
pub mod capture;
pub mod gen;
pub mod json;
#[cfg(feature = "reference-decoders")]
pub mod reference;
