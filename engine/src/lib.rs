//! Tickline's trading core.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]
pub mod book;
pub mod core;
pub mod event;
pub mod fixed;
pub mod idle;
pub mod latency;
pub mod paper;
pub mod portfolio;
pub mod ring;
pub mod strategy;
pub mod symbol;
