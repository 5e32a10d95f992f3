//! Tickline's trading core.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]
pub mod book;
pub mod event;
pub mod fixed;
pub mod portfolio;
pub mod strategy;
pub mod symbol;
