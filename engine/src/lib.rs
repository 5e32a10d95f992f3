//! Tickline's trading core.
pub mod book;
pub mod event;
pub mod fixed;
pub mod portfolio;
pub mod strategy;
pub mod symbol;
