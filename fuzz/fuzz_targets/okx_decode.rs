//! Fuzz target `okx_decode`: the body is `tickline_fuzz::okx_decode` (fuzz/src/okx.rs), shared
//! with the stable regression test tests/fuzz_regressions.rs.
#![no_main]

// Counts allocations, so the body can assert that decoding allocates nothing.
#[global_allocator]
static ALLOC: tickline_fuzz::FuzzAlloc = tickline_fuzz::FuzzAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickline_fuzz::okx_decode(data));
