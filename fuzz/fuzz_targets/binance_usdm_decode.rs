//! Fuzz target `binance_usdm_decode`: the body is `tickline_fuzz::binance_usdm_decode`
//! (fuzz/src/lib.rs), shared with the stable regression test tests/fuzz_regressions.rs.
#![no_main]

// Counts allocations, so the body can assert that decoding allocates nothing.
#[global_allocator]
static ALLOC: tickline_fuzz::FuzzAlloc = tickline_fuzz::FuzzAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickline_fuzz::binance_usdm_decode(data));
