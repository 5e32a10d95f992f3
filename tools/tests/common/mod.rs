//! Helpers shared by the tools integration tests.

pub mod statsd_daemon;
