//! Tickline's binaries and their wiring: the config, the threads of a run and who owns what,
//! the one core runner that live and replay share, the metrics thread, runtime control, the run
//! summary (the venue simulator is the `venue-sim` crate).
//!
//! **Real-time contract.** One loop of this crate is on the hot path: the core thread's
//! ([`runtime::CoreRunner`]). It polls the `engine` core, ticks the metrics hand-off and
//! publishes a few counters; it allocates nothing, takes no lock, and reads the clock only as
//! the [`runtime::CoreTime`] of its run says (once per poll live, where that time also serves the
//! hand-off; in replay the feed thread's capture time, and the clock every 16th poll for the
//! hand-off). Live and replay differ by type parameters, not by dynamic dispatch. Everything
//! else here is start-up, side threads or the end of a run, and may allocate: reading the
//! config and the capture, building the core, the control socket, StatsD lines, the summary.
//!
//! **Threads and what each owns.**
//! - **main** (the caller): builds everything, starts the threads, waits (the status line, the
//!   kill switch, `--duration`), sets the stop flag, joins them in order and builds the
//!   [`runtime::RunReport`].
//! - **core** (`tickline-core`, pinned to `engine.core_cpu`): owns the `engine::core::Core`
//!   (books, strategies, risk, positions, histograms) and the core's end of every ring and
//!   channel; handed back to main when its inputs are finished.
//! - **I/O** (`tickline-io`, pinned to `engine.io_cpu`, live): owns every venue socket and the
//!   order session; the one producer of the core's market-data ring. In replay the **feed**
//!   thread (`tickline-feed`) takes its place: it reads the in-memory capture
//!   ([`pipeline::FrameArena`]), decodes and pushes.
//! - **REST** (`tickline-rest`, live): depth snapshots when the core asks for a resync.
//! - **recorder** (`tickline-recorder`, live with a capture file): drains the raw-frame rings
//!   to disk.
//! - **metrics** (`tickline-metrics`): turns the core's interval snapshots into StatsD
//!   datagrams.
//! - **log** (`tickline-log`): writes every thread's log lines to stderr ([`logging`]); no other
//!   thread writes to a file descriptor to log.
//! - **control** (`tickline-control`, and a `tickline-control-conn` thread per connection):
//!   runtime commands ([`control`]) to the core on a crossbeam channel, to the I/O thread on a
//!   bounded channel.
//! - **health** (`health`, live with `[health] listen`): answers liveness and readiness probes
//!   over HTTP ([`health`]) from the atomics the core and I/O threads publish.
//! - **shutdown-watchdog** (`tickline run`, after SIGTERM or Ctrl-C): ends the process if the
//!   graceful stop overruns `orders.shutdown_timeout_ms`.
//!
//! Every thread is spawned through [`threads`]: named, placed (the I/O and core threads on
//! their own CPUs, every other one on the housekeeping CPUs, never the core's; [`pin`] chooses
//! the CPUs from those the process is allowed) and counted (context switches and page faults,
//! read at each thread's start and end, listed in the run's summary).
//!
//! **Modules and how they fit.** `tickline run` calls [`live::run_live_with_signals`] (a
//! library caller, [`live::run_live`]); `tickline replay` calls [`pipeline::load_capture`] and
//! [`pipeline::replay_passes`]. Both run their core on [`runtime`] and end with a
//! [`runtime::RunReport`] that [`summary`] prints (text or JSON) and whose latency [`report`]
//! can write out as histogram files and a chart. [`config`] is the TOML config (and the control
//! endpoint and token it names); [`metrics`] the hand-off and the metrics thread; [`control`]
//! the control server and the `tickline ctl` client (the loopback venue simulator is the
//! `venue_sim` crate, which `tickline venue-sim` runs);
//! [`backtest`] the trading view of a replay (orders, fills, PnL chart, statistics) recorded off
//! the core; [`cli`] the `tickline` command line as a library ([`cli::main_with`]: the same CLI
//! for a trader's own strategies);
//! [`clock`] the one monotonic clock, [`pin`] CPU placement, [`threads`] the one way threads are
//! spawned (named, placed off the core's CPU, counted), [`hiccups`] the machine's own latency
//! floor, [`alloc`] the counting allocator that
//! checks the zero-allocation claim; [`shard_plan`] splits symbols across engine shards and
//! writes their Kubernetes overlays (`tickline shard-plan`). Imports run one way: `live` and
//! `pipeline` use `runtime`, `runtime` uses `config`, `metrics`, `clock`, `pin` and `alloc`,
//! never the reverse.
//!
//! A replay of a generated feed, as `tickline replay` runs a capture:
//!
//! ```
//! use engine::core::CoreConfig;
//! use engine::idle::IdleMode;
//! use engine::symbol::SymbolTable;
//! use venue_sim::gen::GenConfig;
//! use tools::config::Pace;
//! use tools::pipeline::{replay, FrameArena, ReplayOptions};
//!
//! let mut symbols = SymbolTable::new();
//! let gen = GenConfig {
//!     symbols: vec!["BTCUSDT".into()],
//!     events: 1_000,
//!     seed: 7,
//!     start_ns: 1,
//! };
//! let arena = FrameArena::generated(gen, &mut symbols)?;
//! let default_symbol = symbols.lookup(b"BTCUSDT").expect("interned");
//! let report = replay(
//!     &arena,
//!     ReplayOptions {
//!         symbols,
//!         default_symbol,
//!         strategy: None,
//!         custom_strategy: None,
//!         pace: Pace::Asap,
//!         io_cpu: None,
//!         core_cpu: None,
//!         idle: IdleMode::SpinYield { spins: 100 },
//!         ring_capacity: 4096,
//!         core: CoreConfig::default(),
//!         metrics: None,
//!     },
//! )?;
//! assert_eq!(report.frames, arena.len() as u64);
//! assert!(report.core.events > 0);
//! # anyhow::Ok(())
//! ```
#![deny(missing_docs)]

pub mod alloc;
pub mod backtest;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod convert;
pub mod health;
pub mod hiccups;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod pin;
pub mod pipeline;
pub mod replay_input;
pub mod report;
pub mod runtime;
pub mod shard_plan;
mod shutdown;
pub mod summary;
pub mod threads;
pub mod venues;
pub mod wasm;
