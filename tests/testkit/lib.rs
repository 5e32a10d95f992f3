//! Helpers shared by Tickline's integration tests and benchmarks.
