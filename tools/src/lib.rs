//! Tickline binaries: config, thread wiring, pinning.
