//! User strategies in a WebAssembly sandbox: a module written outside the engine (C,
//! AssemblyScript, Rust, hand-written WAT), deployed at run time, run in-process on the core
//! thread behind the engine's [`Strategy`](engine::strategy::Strategy) trait, so it is routed,
//! risk-checked, journaled and measured exactly like a native strategy.
//!
//! ```text
//!  ctl deploy / replay --strategy-wasm          core thread (per event, no allocation)
//!  ──────────────────────────────────           ─────────────────────────────────────────────
//!  WasmModule::compile   validate, compile,     WasmStrategy::on_trade ─▶ write context + record
//!                        check imports/exports                             at tl_buffer()
//!  WasmStrategy::deploy  instantiate, ABI       tl_on_event() under the fuel budget
//!                        version, tl_init         ├─ tl_submit/tl_cancel/… ─▶ checked ─▶ Ctx
//!        │                                        └─ trap / budget / non-zero: orders of the
//!        └── Command::StartTrading ────────────▶     callback discarded, fresh instance from
//!                                                    the last tl_save_state, restart counted
//! ```
//!
//! # The ABI (version 1)
//!
//! The contract is `strategies/wasm/include/tickline.h`: the host's numbers are in [`abi`] and a
//! test checks them against the header. In short: a module exports `memory`,
//! `tl_abi_version` (must return 1; a mismatch is refused at deploy, both versions named),
//! `tl_buffer` (a 4096-byte, 8-aligned area), `tl_init(params_len)` (parameters as `key=value\n`
//! lines at `tl_buffer()`) and `tl_on_event()`; optionally `tl_restore_area`/`tl_restore`. Before
//! each `tl_on_event` the host writes a 128-byte context block (event kind, clocks, position,
//! best bid/ask by native `sma_cross`'s rule, the symbol's filters, last trade price, flags) and
//! the event's record after it. The guest answers through six imports of module `tickline`:
//! `tl_submit`, `tl_cancel`, `tl_cancel_all`, `tl_set_timer`, `tl_save_state`, `tl_log`. It may
//! import nothing else: no WASI, so no files, sockets or clock beyond what the host passes in.
//!
//! # Checks
//!
//! Every host call's arguments are checked; a bad one is a counted refusal (by `TL_ERR_*` code,
//! in [`WasmStats::refusals`]), remembered as the last refusal, and returned as the negative
//! code, never a trap or a panic: an unknown side or order type, a quantity or price that is not
//! positive or is absurd (above [`abi::MAX_QTY`] / [`abi::MAX_PRICE`]), more orders in one
//! callback than the deployment allows, a cancel of an id the instance does not own, a timer in
//! the past, a `tl_save_state`/`tl_log` span outside linear memory or over its maximum.
//!
//! # Limits and supervision
//!
//! Per deployment ([`DeployConfig`]): fuel per callback (the CPU budget, [`module::DEFAULT_FUEL`];
//! fuel rather than epochs because it is deterministic, so replay stops a guest exactly where
//! live would, and needs no ticker thread), a linear-memory cap (`StoreLimits`, default 16 MiB;
//! growing past it traps), orders per callback (default 8), table elements, one instance and one
//! memory per store. A callback that runs out of fuel, traps (unreachable, division by zero,
//! out-of-bounds access, stack overflow, memory past the cap) or returns non-zero is stopped:
//! what it asked for is discarded (`Ctx::discard_intents_since`; its timers and saved state are
//! applied only when it completes), the stop is counted by kind ([`StopKind`]), and the instance
//! is replaced by a fresh one (`tl_init` with the same parameters, then `tl_restore` with the
//! last state a completed callback saved). Restarts follow the native supervisor's intensity
//! ([`engine::supervisor::RestartPolicy`]: more than `max_restarts` within `restart_window_ms`
//! halt the symbol and cancel its orders), reported through the same core counters
//! (`trader_restarts`, `symbol_halts`). Every other symbol trades on.
//!
//! # Cost
//!
//! Modules are compiled once, at deploy, off the core thread; the instance is created then too.
//! Per event the host writes about 200 bytes into guest memory and makes one call: no
//! allocation (a counting-allocator test proves it). A restart allocates (a new store), which is
//! the cold path. `benches/wasm.rs` measures the per-event cost against native code, fuel against
//! epoch metering, deploy time and memory per instance.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod abi;
mod guest;
mod idset;
pub mod module;
pub mod stats;
mod strategy;

pub use guest::{LOGS_PER_SECOND, MAX_OPEN_ORDERS, MAX_ORDERS_PER_CALLBACK, TIMERS_PER_CALLBACK};
pub use module::{shared_engine, DeployConfig, WasmModule};
pub use stats::{StopKind, WasmStats};
pub use strategy::WasmStrategy;

/// Reads `path`, compiles it and deploys it with `pairs` (the guest's parameters and the host's
/// `fuel`, `memory_mb`, `orders_per_callback`, `max_restarts`, `restart_window_ms`): what
/// `tickline replay --strategy-wasm` and the run config do.
pub fn load(path: &std::path::Path, pairs: &[(String, String)]) -> Result<WasmStrategy, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let cfg = DeployConfig::from_pairs(pairs).map_err(|e| format!("{name}: {e}"))?;
    WasmStrategy::deploy(WasmModule::compile(&name, &bytes)?, cfg)
}
