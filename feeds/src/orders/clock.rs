//! The wall clock of the order side, injected in one place.
//!
//! Request timestamps (ms) and journal time stamps (ns) are wall-clock time: the venue checks a
//! request's `timestamp` against its own clock, and the journal outlives the process (the
//! monotonic clock restarts with it). The session takes a [`WallClock`] at construction, as it
//! takes the monotonic `now`, so a test can drive both; [`system_wall_ns`] is the one place the
//! order side reads the system's wall clock.

/// A wall clock: nanoseconds since the Unix epoch.
pub type WallClock = fn() -> u64;

/// The system's wall clock, nanoseconds since the Unix epoch (0 for a clock before 1970).
pub fn system_wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
