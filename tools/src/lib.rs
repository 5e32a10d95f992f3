//! Tickline's binaries and their wiring: config, the monotonic clock, CPU pinning, the replay
//! pipeline, the run summary (the venue simulator is the `venue-sim` crate), runtime control (`tickline ctl`), and a counting allocator that
//! backs the zero-allocation claim.
#![deny(missing_docs)]

pub mod alloc;
pub mod clock;
pub mod config;
pub mod control;
pub mod live;
pub mod metrics;
pub mod pin;
pub mod pipeline;
pub mod report;
pub mod summary;
