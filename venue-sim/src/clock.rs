//! The send-time stamp: raw `CLOCK_MONOTONIC` in nanoseconds.
//!
//! The same clock the engine reads (`tools::clock::MonoClock`): its values are shared by every
//! process on the machine, so a stamp taken here before a write can be joined with the engine's
//! receive stamp, in process or not.

/// Now, ns (vDSO, no syscall on Linux).
#[inline]
pub(crate) fn mono_now() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
