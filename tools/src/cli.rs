//! The `tickline` command line as a library: [`main`] parses the arguments and runs `replay`,
//! `gen-feed`, `run`, `record`, `demo`, `venue-sim`, `ctl` and `report` (the binary's
//! `src/main.rs` only installs the counting allocator and calls it).
//!
//! **Your own strategies, the whole CLI.** A trader's own crate, depending on `tools`, `engine`
//! and `strategies` by path or git, gets every subcommand and flag for its strategies by calling
//! [`main_with`] with a [`strategies::Factory`]; `--strategy NAME` (and `[strategy] name`,
//! `tickline ctl start-trading --strategy NAME`) then finds them before the built-in ones. The
//! crate's binary is then:
//!
//! ```no_run
//! use engine::strategy::{ParamError, Params, Strategy};
//!
//! // Counts allocations, so the summary's "allocations during the run" is measured.
//! #[global_allocator]
//! static ALLOC: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;
//!
//! fn my_strategies(name: &str, params: Params) -> Option<Result<Box<dyn Strategy>, ParamError>> {
//!     match name {
//!         // "mine" => Some(MyStrategy::from_params(params).map(|s| Box::new(s) as Box<dyn Strategy>)),
//!         _ => None,
//!     }
//! }
//!
//! fn main() {
//!     tools::cli::main_with(my_strategies)
//! }
//! ```
//!
//! `examples/own-strategy/` in the repository is such a crate, built and replayed by the tests.

use crate::config::Config;
use crate::pipeline::{replay_passes, replay_stream, FrameArena, ReplayOptions};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use engine::symbol::SymbolTable;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "tickline",
    version,
    about = "Tickline: a low-latency trading engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log line format on stderr: `text`, or `json` (one object a line).
    #[arg(long, global = true, value_enum, default_value_t = crate::logging::LogFormat::Text)]
    log_format: crate::logging::LogFormat,
    /// Log filter, `RUST_LOG` syntax (`warn`, `info,tickline::io=debug`); default: `RUST_LOG`,
    /// else `info`.
    #[arg(long, global = true)]
    log_level: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay one or more captures through the feed thread, the ring and the core. Formats
    /// (detected by content): the line format `<recv_ns> <json>` (plain or gzip), .tlc, and
    /// cryptofeed's v1 text and v3 `.jsonl.zst`. Several captures are merged by receive time.
    /// Each connection's frames go to its venue's decoder (the venue of its URL, else
    /// --venue, else binance); `--json` adds per-venue counts under `venues`.
    Replay {
        /// Capture files (several: merged by receive time, equal times in the order given).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Venue of connections whose URL names none (a line capture's): binance,
        /// binance-usdm, coinbase, okx, bybit-spot, bybit-linear. One for every file, or one
        /// per file in order (comma-separated or repeated).
        #[arg(long = "venue", value_delimiter = ',')]
        venues: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
        /// Replay the capture this many times back to back, from the one copy in memory (or,
        /// streamed, reading the file again; several captures streamed cannot repeat: add
        /// --in-memory). Each
        /// pass after the first is a fresh session, as after a reconnect (the book is reset and
        /// synced again from that pass's snapshot), running `capture span + 1 s` after the one
        /// before on the replay clock and in the exchange timestamps; so every pass does the
        /// same work and a capture replayed N times allocates as little as one pass.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
        /// Stream the capture from disk through a reader thread (bounded memory, any size)
        /// instead of loading it first. Default: stream files larger than 64 MiB.
        #[arg(long, conflicts_with = "in_memory")]
        stream: bool,
        /// Load the whole capture into memory before the clock starts (the figures then
        /// measure no gzip and no disk). Default for files up to 64 MiB.
        #[arg(long)]
        in_memory: bool,
        /// Show the streaming reader's progress line on stderr even when it is not a terminal.
        #[arg(long)]
        progress: bool,
    },
    /// Convert any capture `replay` reads into a .tlc capture: connects (with their URLs, so
    /// each connection's venue is kept), subscriptions, frames, snapshots and REST responses,
    /// in the input's order. A line capture names no URL: with --venue, a connect record with
    /// that venue's WebSocket URL is written first.
    Convert {
        /// Input capture (any supported format).
        input: PathBuf,
        /// Output `.tlc` file (overwritten).
        output: PathBuf,
        /// The venue of an input that names none (a line capture).
        #[arg(long)]
        venue: Option<String>,
        /// The symbol of a line capture's REST snapshot (which names none).
        #[arg(long, default_value = "BTCUSDT")]
        symbol: String,
    },
    /// Write a deterministic synthetic Binance-format capture.
    GenFeed {
        /// Output: `.tlc` for Tickline's capture format, otherwise the line format (gzip if `.gz`;
        /// one symbol only, since a line capture's REST snapshot names no symbol).
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated symbols.
        #[arg(long, default_value = "BTCUSDT", value_delimiter = ',')]
        symbols: Vec<String>,
        /// Frames after the snapshots.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// PRNG seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the live engine on the venue in the config (`[venue]`, `[net]`) until Ctrl-C, SIGTERM
    /// or `--duration`, printing a status line; then the same summary as `replay`. It takes
    /// runtime commands (`tickline ctl`) on `[control] socket` (default `tickline.sock` here).
    /// SIGTERM and Ctrl-C stop it gracefully (`[orders] on_shutdown`); `[health] listen` serves
    /// liveness and readiness probes.
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Status line interval in seconds (0: none).
        #[arg(long, default_value_t = 1.0)]
        status_every: f64,
        /// Also record everything received to this .tlc capture.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Record the venue's feed (every frame with its receive time and connection, connects,
    /// disconnects, subscriptions and REST snapshots) to a .tlc capture; `tickline replay` reads it.
    Record {
        #[command(flatten)]
        run: RunArgs,
        /// Output capture (.tlc).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// The embedded default: start the venue simulator in-process on loopback with a generated
    /// Binance feed, and run the live engine against it over WebSocket (pinned I/O thread and
    /// core, REST snapshots, the naive strategy on the paper venue). Needs no network and no files.
    Demo {
        /// Frames the simulator publishes.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// PRNG seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Frames per second the simulator sends (0: as fast as the engine takes them).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Serve wss:// with a self-signed certificate the engine is told to trust.
        #[arg(long)]
        tls: bool,
        /// Skip the sockets: replay the generated feed from memory through the pipeline instead.
        #[arg(long)]
        replay: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// A loopback venue speaking Binance's market-data WebSocket and REST protocols, serving a
    /// capture or a generated feed, with fault injection.
    VenueSim(venue_sim::SimArgs),
    /// Control a running engine (`tickline run`) through its control socket: status, start and
    /// stop trading a symbol, change strategy parameters, halt, resume, kill. Exits non-zero
    /// when the engine refuses (the reason on stderr) or cannot be reached.
    Ctl(CtlArgs),
    /// The machine's own latency floor: a thread pinned to --cpu reads the clock in a busy loop
    /// for --duration seconds and reports the gaps between readings (p50, p99, p99.9, max, and
    /// how many were over 10 µs and 100 µs), like sysjitter or jHiccup.
    Hiccups {
        /// CPU to measure (-1: unpinned). Default: the core's default CPU, the second CPU the
        /// process is allowed.
        #[arg(long, allow_hyphen_values = true)]
        cpu: Option<i64>,
        /// Seconds to measure.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Regenerate the `.hgrm` files and the SVG chart from a `latency.hlog` (HdrHistogram V2 log).
    Report {
        /// The log (written by `--report-dir`, or any HdrHistogram V2 log with tags).
        file: PathBuf,
        /// Output directory (default: the log's directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Split symbols across engine shards (one pinned pod each), balanced by message rate from
    /// a capture, by a weights file, or evenly; write a Kustomize overlay per shard (its
    /// symbols, its share of the account's order rate, its CPUs and journal volume).
    ShardPlan(ShardPlanArgs),
}

#[derive(Args, Debug)]
struct ShardPlanArgs {
    /// Comma-separated symbols.
    #[arg(long, required = true, value_delimiter = ',')]
    symbols: Vec<String>,
    /// Number of shards.
    #[arg(long)]
    shards: usize,
    /// Weights: `SYMBOL weight` lines.
    #[arg(long, value_name = "FILE", conflicts_with = "capture")]
    weights: Option<PathBuf>,
    /// Weigh each symbol by its messages in this capture (line format or .tlc).
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Output directory (a `shard-<i>` overlay each, and a kustomization of them all).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The Kustomize base the overlays build on.
    #[arg(long, value_name = "DIR", default_value = "deploy/kubernetes/base")]
    base: PathBuf,
    /// The engine config each shard's starts from (default: `tickline.toml` in --base).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// CPUs per shard (whole CPUs; requests = limits).
    #[arg(long, default_value_t = 4)]
    cpus: u32,
    /// Memory per shard (requests = limits).
    #[arg(long, default_value = "1Gi")]
    memory: String,
    /// Size of each shard's journal volume.
    #[arg(long, default_value = "1Gi")]
    journal_size: String,
    /// The account's order rate across every shard, orders/s (default: the config's per-symbol
    /// `[risk] rate_per_sec` times the number of symbols).
    #[arg(long, value_name = "N")]
    account_rate_per_sec: Option<u64>,
    /// The account's burst across every shard, orders (default: `[risk] burst` times the
    /// number of symbols).
    #[arg(long, value_name = "N")]
    account_burst: Option<u64>,
}

#[derive(Args, Debug)]
struct CtlArgs {
    /// The engine's control socket (default: from --config, else `tickline.sock`).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The engine's loopback control port (`[control] tcp`), instead of a socket.
    #[arg(long, global = true, value_name = "ADDR")]
    tcp: Option<String>,
    /// The engine's config: its `[control]` section says where the socket is (and where the
    /// TCP token is).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The TCP control token's file (mode 0600). Default: `[control] token_file` of --config,
    /// else the environment variable TICKLINE_CONTROL_TOKEN. The Unix socket needs none.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the engine's reply as one JSON object (`{"ok":..}`) on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Wait this long for the reply, seconds.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "S")]
    timeout: f64,
    #[command(subcommand)]
    cmd: CtlCmd,
}

#[derive(Subcommand, Debug)]
enum CtlCmd {
    /// The status tree: engine, connections, symbols, each symbol's leader and its traders
    /// (state, position, PnL, restarts).
    Status,
    /// Start trading SYMBOL (one of `[venue] symbols` or of a `[[feeds]]` table's): subscribe its
    /// streams on its venue's connection, fetch its filters, build the strategy and hand it to
    /// the core.
    StartTrading {
        /// The symbol (`VENUE:NAME`, e.g. `okx:BTC-USDT`, where the name is on several venues).
        symbol: String,
        /// Strategy (default: the config's `[strategy]`, with its parameters).
        #[arg(long)]
        strategy: Option<String>,
        /// Traders (the strategy's `chunks` parameter).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        chunks: Option<u64>,
        /// Strategy parameter `KEY=VALUE` (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// Stop trading SYMBOL: cancel its open orders, stop its strategy, unsubscribe its streams
    /// (the position stays).
    StopTrading {
        /// The symbol.
        symbol: String,
    },
    /// Change the running strategy's parameters on SYMBOL, all or none.
    Set {
        /// The symbol.
        symbol: String,
        /// `KEY=VALUE` pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// Trading state HALTED: no new orders (cancels still go out).
    Halt,
    /// Trading state ACTIVE (lifts a halt or a kill).
    Resume,
    /// The kill switch: halt and cancel every open order.
    Kill,
    /// Deploy a WebAssembly strategy on SYMBOL: FILE.wasm is read here and sent, validated,
    /// compiled and started by the engine's control thread (never its core), then trades like
    /// `start-trading`. A symbol already trading is refused unless --replace (its orders are
    /// canceled, then the module swapped in). A bad module is refused with the reason; nothing
    /// changes.
    Deploy {
        /// The symbol.
        symbol: String,
        /// The module (a WebAssembly binary, at most 16 MiB).
        file: PathBuf,
        /// Guest parameter `KEY=VALUE`, handed to its tl_init (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Fuel per callback, the CPU budget (default 100000, about one unit per instruction).
        #[arg(long)]
        fuel: Option<u64>,
        /// Linear-memory cap, MiB (default 16).
        #[arg(long)]
        memory_mb: Option<u64>,
        /// Replace the symbol's running strategy (its orders canceled first).
        #[arg(long)]
        replace: bool,
    },
    /// Stop SYMBOL's WebAssembly strategy (as stop-trading: its orders canceled).
    Undeploy {
        /// The symbol.
        symbol: String,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// TOML config (see README); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Symbol of symbol-less frames (a line capture's REST snapshot). Default BTCUSDT.
    #[arg(long)]
    symbol: Option<String>,
    /// Strategy: naive, sma_cross, ema_cross, probe, or none (or one of your own crate's: `tools::cli::main_with`).
    #[arg(long)]
    strategy: Option<String>,
    /// Strategy parameter `key=value` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Run this WebAssembly module as the strategy (instead of --strategy); --param goes to
    /// its tl_init, and `fuel`, `memory_mb` set its limits.
    #[arg(long, value_name = "FILE.wasm")]
    strategy_wasm: Option<PathBuf>,
    /// asap, recorded, or xN (x10 = ten times faster than recorded).
    #[arg(long)]
    pace: Option<String>,
    /// CPU for the feed thread (-1: unpinned). Default: the first CPU the process is allowed.
    #[arg(long, allow_hyphen_values = true)]
    io_cpu: Option<i64>,
    /// CPU for the core thread (-1: unpinned). Default: the second CPU the process is allowed.
    #[arg(long, allow_hyphen_values = true)]
    core_cpu: Option<i64>,
    /// Core idle mode: spin, spin-yield, backoff. Default spin.
    #[arg(long)]
    idle: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Ship metrics to this StatsD daemon (UDP HOST:PORT) every second.
    #[arg(long, value_name = "HOST:PORT")]
    statsd: Option<String>,
    /// At the end, write per-stage `.hgrm` files, `latency.svg` and `latency.hlog` here.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
}

impl RunArgs {
    fn config(&self) -> Result<Config> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(s) = &self.symbol {
            cfg.replay.symbol = s.clone();
        }
        if let Some(s) = &self.strategy {
            cfg.strategy.name = s.clone();
        }
        if let Some(w) = &self.strategy_wasm {
            cfg.strategy.wasm = Some(w.display().to_string());
        }
        for kv in &self.params {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--param {kv:?}: expected KEY=VALUE"))?;
            cfg.strategy.params.insert(
                k.trim().to_string(),
                toml::Value::String(v.trim().to_string()),
            );
        }
        if let Some(p) = &self.pace {
            cfg.replay.pace = p.clone();
        }
        if let Some(c) = self.io_cpu {
            cfg.engine.io_cpu = Some(c);
        }
        if let Some(c) = self.core_cpu {
            cfg.engine.core_cpu = Some(c);
        }
        if let Some(i) = &self.idle {
            cfg.engine.idle = i.clone();
        }
        if let Some(a) = &self.statsd {
            cfg.metrics.statsd = Some(a.clone());
        }
        if let Some(d) = &self.report_dir {
            cfg.metrics.report_dir = Some(d.display().to_string());
        }
        // Check again with the overrides applied.
        cfg.validate().context("command-line options")?;
        Ok(cfg)
    }
}

/// Where `tickline replay` reads its frames: a capture loaded whole (and how many passes), or one
/// streamed from disk (its passes opened with it).
enum ReplaySource<'a> {
    Memory(&'a FrameArena, u32),
    Stream(crate::pipeline::StreamedCapture),
}

/// Replays `source` with the config's options on a run whose threads are placed off the core's
/// CPU, and prints the summary; with a strategy and `--report-dir`, writes the backtest report
/// too (in-memory replays only: its equity curve needs the capture's span before the run).
fn run_replay(
    source: ReplaySource<'_>,
    symbols: SymbolTable,
    cfg: &Config,
    json: bool,
) -> Result<()> {
    // The run's threads, placed off the core's CPU (this thread too: see `crate::threads`).
    let (run_threads, _entered) = enter_run(cfg, false);
    let opts = replay_options(symbols, cfg, run_threads.placement())?;
    let (arena, passes, dir) = match (source, &cfg.metrics.report_dir, opts.strategy.is_some()) {
        (ReplaySource::Memory(arena, passes), Some(dir), true) => (arena, passes, dir.as_str()),
        (ReplaySource::Stream(_), Some(_), true) => bail!(
            "the backtest report (--report-dir with a strategy) needs the capture in memory: add \
             --in-memory, or drop --report-dir for a streamed replay"
        ),
        (ReplaySource::Memory(arena, passes), _, _) => {
            let report = replay_passes(arena, passes, opts)?;
            return print_report(&report, cfg, json);
        }
        (ReplaySource::Stream(capture), _, _) => {
            let report = replay_stream(capture, opts)?;
            return print_report(&report, cfg, json);
        }
    };
    let (report, backtest) = crate::backtest::replay(arena, passes, opts)?;
    print_report(&report, cfg, json)?;
    let written = backtest
        .write(
            std::path::Path::new(dir),
            &report,
            &cfg.strategy.name,
            passes,
        )
        .with_context(|| format!("writing the backtest report to {dir}"))?;
    for p in written {
        tracing::info!(target: "tickline::report", "wrote {}", p.display());
    }
    if backtest.dropped > 0 {
        tracing::warn!(
            target: "tickline::report",
            "the backtest report is incomplete: {} records dropped (the collector fell behind)",
            backtest.dropped
        );
    }
    Ok(())
}

/// A venue name as `--venue` takes it.
fn parse_venue(s: &str) -> Result<engine::venue::Venue> {
    engine::venue::Venue::parse(s.trim())
        .with_context(|| format!("--venue {s:?}: expected one of {}", engine::venue::names()))
}

/// The replay's inputs: each file with its `--venue` (none, one for all, or one per file).
fn replay_inputs(
    files: &[PathBuf],
    venues: &[String],
) -> Result<Vec<crate::replay_input::CaptureInput>> {
    let venues = venues
        .iter()
        .map(|v| parse_venue(v))
        .collect::<Result<Vec<_>>>()?;
    if venues.len() > 1 && venues.len() != files.len() {
        bail!(
            "--venue: {} venues for {} captures (give one for all, or one per capture)",
            venues.len(),
            files.len()
        );
    }
    Ok(files
        .iter()
        .enumerate()
        .map(|(i, path)| crate::replay_input::CaptureInput {
            path: path.clone(),
            venue: venues.get(i).or(venues.first()).copied(),
        })
        .collect())
}

/// The replay's options from the config, with the run's CPU placement. The default symbol
/// (`--symbol`) is the one interned under that name (on the first venue that has it), else the
/// first symbol, else it is interned on Binance spot.
fn replay_options(
    mut symbols: SymbolTable,
    cfg: &Config,
    placement: &crate::pin::Placement,
) -> Result<ReplayOptions> {
    let named = symbols
        .iter()
        .find(|(_, n)| *n == cfg.replay.symbol)
        .or_else(|| symbols.iter().next())
        .map(|(id, _)| id);
    let default_symbol = match named {
        Some(id) => id,
        None => symbols
            .intern(&cfg.replay.symbol)
            .map_err(|e| anyhow::anyhow!("--symbol: {e}"))?,
    };
    let strategy =
        (cfg.strategy.name != "none").then(|| (cfg.strategy.name.clone(), cfg.strategy_params()));
    let core = cfg.core_config(symbols.len());
    Ok(ReplayOptions {
        symbols,
        default_symbol,
        strategy,
        custom_strategy: cfg.wasm_strategy()?,
        pace: cfg.pace()?,
        io_cpu: placement.io,
        core_cpu: placement.core,
        idle: cfg.idle_mode()?,
        ring_capacity: cfg.engine.ring_capacity,
        core,
        metrics: cfg.metrics_config(false),
    })
}

/// The `tickline` command line with `factory`'s strategies known by name before the built-in
/// ones (see the [module docs](self) and [`strategies::register`]); otherwise exactly [`main`].
pub fn main_with(factory: strategies::Factory) {
    if strategies::register(factory).is_err() {
        eprintln!("error: a strategy factory was already registered in this process");
        std::process::exit(1);
    }
    main()
}

/// The `tickline` command line: parses `std::env::args`, runs the subcommand, and on an error
/// prints it (`error: ...`) and exits with status 1.
pub fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let _log = crate::logging::init(&crate::logging::LogOptions {
        format: cli.log_format,
        level: cli.log_level,
    })?;
    match cli.cmd {
        Cmd::Replay {
            files,
            venues,
            run,
            repeat,
            stream,
            in_memory,
            progress,
        } => {
            let cfg = run.config()?;
            let inputs = replay_inputs(&files, &venues)?;
            let mut symbols = SymbolTable::new();
            let total: u64 = files
                .iter()
                .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
                .sum();
            let stream =
                stream || (!in_memory && total > crate::pipeline::IN_MEMORY_MAX_FILE_BYTES);
            let default = Some(cfg.replay.symbol.as_str());
            if stream {
                use std::io::IsTerminal;
                let progress = progress || std::io::stderr().is_terminal();
                let capture = crate::replay_input::open_streams(
                    &inputs,
                    repeat,
                    &mut symbols,
                    default,
                    progress,
                )?;
                run_replay(ReplaySource::Stream(capture), symbols, &cfg, run.json)
            } else {
                let arena = crate::replay_input::load_captures(&inputs, &mut symbols, default)?;
                run_replay(
                    ReplaySource::Memory(&arena, repeat),
                    symbols,
                    &cfg,
                    run.json,
                )
            }
        }
        Cmd::GenFeed {
            out,
            symbols,
            events,
            seed,
        } => gen_feed(out, symbols, events, seed),
        Cmd::Convert {
            input,
            output,
            venue,
            symbol,
        } => {
            let venue = venue.as_deref().map(parse_venue).transpose()?;
            let n = crate::convert::convert_with(&input, &output, venue, &symbol)?;
            eprintln!(
                "{}: {} records written ({} unreadable input records skipped)",
                output.display(),
                n.records,
                n.unreadable
            );
            Ok(())
        }
        Cmd::Run {
            run,
            duration,
            status_every,
            record,
        } => {
            let mut cfg = run.config()?;
            if cfg.control.enabled && cfg.control.tcp.is_none() && cfg.control.socket.is_none() {
                cfg.control.socket = Some(crate::config::DEFAULT_CONTROL_SOCKET.into());
            }
            let strategy = (cfg.strategy.name != "none")
                .then(|| (cfg.strategy.name.clone(), cfg.strategy_params()));
            live(cfg, strategy, record, duration, status_every, run.json)
        }
        Cmd::Record { run, out, duration } => {
            let mut cfg = run.config()?;
            // Recording never trades, whatever the config says, and records every symbol.
            cfg.orders.enabled = false;
            cfg.control.enabled = false;
            cfg.venue.trade = None;
            live(cfg, None, Some(out), duration, 1.0, run.json)
        }
        Cmd::Demo {
            events,
            seed,
            rate,
            tls,
            replay,
            run,
        } => {
            let cfg = run.config()?;
            let gen = venue_sim::gen::GenConfig {
                symbols: vec!["BTCUSDT".to_string(), "ETHUSDT".to_string()],
                events,
                seed,
                start_ns: 1_000_000_000,
            };
            if replay {
                demo_replay(gen, &cfg, run.json)
            } else {
                demo_live(gen, cfg, rate, tls, run.json)
            }
        }
        Cmd::Hiccups {
            cpu,
            duration,
            json,
        } => {
            let cpu = match cpu {
                Some(c) if !(-1..=4095).contains(&c) => {
                    anyhow::bail!("--cpu {c}: must be a CPU number, or -1 for unpinned")
                }
                Some(c) => Config::cpu(c),
                None => Config::default().placement().core,
            };
            let run = crate::hiccups::measure(cpu, seconds("--duration", duration)?)?;
            if json {
                println!("{}", run.to_json());
            } else {
                print!("{}", run.to_text());
            }
            Ok(())
        }
        Cmd::VenueSim(args) => venue_sim::run_cli(args),
        Cmd::Ctl(args) => ctl(args),
        Cmd::ShardPlan(args) => shard_plan(args),
        Cmd::Report { file, out } => {
            let dir = out.unwrap_or_else(|| {
                file.parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_else(|| PathBuf::from("."))
            });
            let written = crate::report::report_from_hlog(&file, &dir)
                .with_context(|| format!("reading {}", file.display()))?;
            for p in written {
                println!("{}", p.display());
            }
            Ok(())
        }
    }
}

/// `tickline shard-plan`: plan, print the table and any warnings, write the overlays.
fn shard_plan(a: ShardPlanArgs) -> Result<()> {
    use crate::shard_plan::{PlanOptions, WeightSource};
    let weights = match (a.weights, a.capture) {
        (Some(f), _) => WeightSource::File(f),
        (None, Some(c)) => WeightSource::Capture(c),
        (None, None) => WeightSource::Even,
    };
    let opts = PlanOptions {
        symbols: a.symbols,
        shards: a.shards,
        weights,
        config: a.config.unwrap_or_else(|| a.base.join("tickline.toml")),
        base: a.base,
        out: a.out,
        cpus: a.cpus,
        memory: a.memory,
        journal_size: a.journal_size,
        account_rate_per_sec: a.account_rate_per_sec,
        account_burst: a.account_burst,
    };
    let plan = crate::shard_plan::plan(&opts)?;
    for w in &plan.warnings {
        tracing::warn!(target: "tickline::shard_plan", "{w}");
    }
    print!("{}", crate::shard_plan::render(&plan));
    let written = crate::shard_plan::write(&opts, &plan)?;
    println!("wrote {} files under {}", written.len(), opts.out.display());
    Ok(())
}

/// `tickline ctl`: one request, its reply printed; an error reply is an error.
fn ctl(args: CtlArgs) -> Result<()> {
    use crate::control::{parse_kv, render_status, request_with_token, CtlRequest, Endpoint};
    let config = args.config.as_ref().map(|f| Config::load(f)).transpose()?;
    let endpoint = match (&args.socket, &args.tcp, &config) {
        (Some(_), Some(_), _) => anyhow::bail!("give --socket or --tcp, not both"),
        (Some(p), None, _) => Endpoint::Unix(p.clone()),
        (None, Some(a), _) => Endpoint::Tcp(crate::control::loopback_addr(a).context("--tcp")?),
        (None, None, Some(cfg)) => cfg.control.endpoint()?.with_context(|| {
            format!(
                "{}: [control] enabled = false: the engine serves no control socket",
                args.config
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            )
        })?,
        (None, None, None) => Endpoint::Unix(PathBuf::from(crate::config::DEFAULT_CONTROL_SOCKET)),
    };
    // TCP needs the token; the Unix socket's mode guards it, so none is sent there.
    let token = match &endpoint {
        Endpoint::Unix(_) => None,
        Endpoint::Tcp(addr) => {
            let t = match (&args.token_file, &config) {
                (Some(f), _) => Some(crate::control::Token::from_file(f)?),
                (None, Some(cfg)) => cfg.control.token()?,
                (None, None) => crate::control::Token::from_env()?,
            };
            Some(t.with_context(|| {
                format!(
                    "the control port {addr} needs a token: --token-file FILE, [control] token_file in --config, or the environment variable {}",
                    crate::control::TOKEN_ENV
                )
            })?)
        }
    };
    let kvs = |list: &[String]| -> Result<Vec<(String, String)>> {
        list.iter()
            .map(|kv| parse_kv(kv).map_err(anyhow::Error::msg))
            .collect()
    };
    let req = match &args.cmd {
        CtlCmd::Status => CtlRequest::Status,
        CtlCmd::StartTrading {
            symbol,
            strategy,
            chunks,
            params,
        } => CtlRequest::StartTrading {
            symbol: symbol.clone(),
            strategy: strategy.clone(),
            chunks: *chunks,
            params: kvs(params).context("--param")?,
        },
        CtlCmd::StopTrading { symbol } => CtlRequest::StopTrading {
            symbol: symbol.clone(),
        },
        CtlCmd::Set { symbol, params } => CtlRequest::Set {
            symbol: symbol.clone(),
            params: kvs(params)?,
        },
        CtlCmd::Halt => CtlRequest::Halt,
        CtlCmd::Resume => CtlRequest::Resume,
        CtlCmd::Kill => CtlRequest::Kill,
        CtlCmd::Deploy {
            symbol,
            file,
            params,
            fuel,
            memory_mb,
            replace,
        } => {
            let max = wasm_host::module::MAX_MODULE_BYTES as u64;
            let size = std::fs::metadata(file)
                .with_context(|| format!("{}", file.display()))?
                .len();
            if size > max {
                anyhow::bail!(
                    "{}: {size} bytes, more than the {max}-byte limit",
                    file.display()
                );
            }
            CtlRequest::Deploy(crate::control::DeployRequest {
                symbol: symbol.clone(),
                name: file.file_name().map_or_else(
                    || "module.wasm".into(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                wasm: std::fs::read(file).with_context(|| format!("{}", file.display()))?,
                params: kvs(params).context("--param")?,
                fuel: *fuel,
                memory_mb: *memory_mb,
                replace: *replace,
            })
        }
        CtlCmd::Undeploy { symbol } => CtlRequest::Undeploy {
            symbol: symbol.clone(),
        },
    };
    let timeout = seconds("--timeout", args.timeout)?;
    let deadline = std::time::Instant::now() + timeout;
    let reply = loop {
        let reply = request_with_token(&endpoint, &req, token.as_ref(), timeout)?;
        // Every slot busy (the reserved ones too): kill and halt try again until --timeout,
        // as a slot frees within seconds (LINE_DEADLINE).
        let busy = reply["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("too many control connections"));
        if busy
            && matches!(req, CtlRequest::Kill | CtlRequest::Halt)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        break reply;
    };
    if args.json {
        println!("{reply}");
    }
    if reply["ok"] != true {
        anyhow::bail!(
            "{}",
            reply["error"]
                .as_str()
                .unwrap_or("the engine refused (no reason given)")
        );
    }
    for w in reply["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
    if !args.json {
        match reply.get("status") {
            Some(status) => print!("{}", render_status(status)),
            None => println!("{}", reply["message"].as_str().unwrap_or("done")),
        }
    }
    Ok(())
}

fn demo_replay(gen: venue_sim::gen::GenConfig, cfg: &Config, json: bool) -> Result<()> {
    let mut symbols = SymbolTable::new();
    let names = gen.symbols.join(", ");
    let arena = FrameArena::generated(gen, &mut symbols)?;
    if !json {
        println!(
            "tickline demo --replay: {} generated Binance-format frames for {names} replayed from memory through the pinned pipeline, strategy {}\n",
            arena.len(),
            cfg.strategy.name
        );
    }
    run_replay(ReplaySource::Memory(&arena, 1), symbols, cfg, json)
}

fn demo_live(
    gen: venue_sim::gen::GenConfig,
    mut cfg: Config,
    rate: u64,
    tls: bool,
    json: bool,
) -> Result<()> {
    use venue_sim::{SimConfig, SimPace, SimSource, VenueSim};
    // Before the simulator starts, so its threads inherit the housekeeping CPUs.
    let (_run_threads, _entered) = enter_run(&cfg, true);
    let events = gen.events;
    let symbols = gen.symbols.clone();
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen),
        pace: if rate == 0 {
            SimPace::Asap
        } else {
            SimPace::Rate(rate)
        },
        tls,
        ..SimConfig::default()
    })
    .context("starting the venue simulator")?;
    cfg.venue.ws_url = sim.ws_url();
    cfg.venue.rest_url = sim.http_url();
    cfg.venue.ca_file = sim.cert_path().map(|p| p.display().to_string());
    cfg.venue.symbols = symbols;
    cfg.validate()?;
    if !json {
        println!(
            "tickline demo: venue simulator on {} (REST {}) publishing {events} generated Binance frames for {}; live engine with strategy {}\n",
            sim.ws_url(),
            sim.http_url(),
            cfg.venue.symbols.join(", "),
            cfg.strategy.name
        );
    }
    let strategy =
        (cfg.strategy.name != "none").then(|| (cfg.strategy.name.clone(), cfg.strategy_params()));
    let stop = stop_on_signals()?;
    let report = crate::live::run_live(crate::live::LiveOptions {
        cfg: cfg.clone(),
        strategy,
        custom_strategy: None,
        record: None,
        duration: Some(std::time::Duration::from_secs(600)),
        status_every: (!json).then_some(std::time::Duration::from_secs(1)),
        stop,
        done: Some(Box::new(move |t| t.frames >= events)),
    })?;
    print_report(&report, &cfg, json)
}

/// Prints a run's summary (one JSON object, or the table) and writes the latency report files
/// if the config asks for them.
fn print_report(report: &crate::runtime::RunReport, cfg: &Config, json: bool) -> Result<()> {
    if json {
        let mut v = report.to_json();
        v["strategy"] = cfg.strategy.name.clone().into();
        println!("{v}");
    } else {
        println!("strategy        {:>12}", cfg.strategy.name);
        print!("{}", report.to_text());
    }
    if let Some(dir) = &cfg.metrics.report_dir {
        let note = match (report.paced, report.io.is_some()) {
            (Some(f), _) => format!(
                "replay paced x{f}; figures measured from the intended send time (coordinated-omission corrected)"
            ),
            (None, true) => "live run; feed_latency compares our wall clock with the venue's (cross-clock)".to_string(),
            (None, false) => "replay as fast as possible; queue_wait includes the backlog".to_string(),
        };
        let written =
            crate::report::write_report_dir(std::path::Path::new(dir), &report.latency, &note)
                .with_context(|| format!("writing the latency report to {dir}"))?;
        for p in written {
            tracing::info!(target: "tickline::report", "wrote {}", p.display());
        }
    }
    Ok(())
}

/// Makes this thread the main thread of a run placed by the config (it moves to the
/// housekeeping CPUs, so threads spawned by libraries inherit them) and locks memory when
/// `engine.mlockall` says (unset: `lock_by_default`).
fn enter_run(
    cfg: &Config,
    lock_by_default: bool,
) -> (
    std::sync::Arc<crate::threads::RunThreads>,
    (crate::threads::Entered, crate::threads::Registered),
) {
    let run_threads = crate::threads::RunThreads::new(cfg.placement());
    let entered = run_threads.enter(true);
    // The log writer started before the config was read: it moves to the housekeeping CPUs too.
    crate::logging::place_writer(&run_threads.placement().housekeeping);
    if cfg.engine.mlockall.unwrap_or(lock_by_default) {
        run_threads.set_memory_lock(crate::threads::lock_memory());
    }
    (run_threads, entered)
}

/// A stop flag that Ctrl-C and SIGTERM set.
fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }
    Ok(stop)
}

fn seconds(what: &str, s: f64) -> Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("{what} {s}: not a duration in seconds"))
}

fn live(
    cfg: Config,
    strategy: Option<(String, engine::strategy::Params)>,
    record: Option<PathBuf>,
    duration: Option<f64>,
    status_every: f64,
    json: bool,
) -> Result<()> {
    let (_run_threads, _entered) = enter_run(&cfg, true);
    // SIGTERM and Ctrl-C: the graceful stop (`orders.on_shutdown`), not an immediate one.
    let term = stop_on_signals()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // SIGUSR1: the kill switch, served without any socket.
    let kill = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, kill.clone())
        .context("installing the SIGUSR1 (kill switch) handler")?;
    let opts = crate::live::LiveOptions {
        cfg: cfg.clone(),
        strategy,
        custom_strategy: cfg.wasm_strategy()?,
        record,
        duration: duration.map(|d| seconds("--duration", d)).transpose()?,
        status_every: (status_every > 0.0)
            .then(|| seconds("--status-every", status_every))
            .transpose()?,
        stop,
        done: None,
    };
    let report = crate::live::run_live_with_signals(opts, kill, term)?;
    print_report(&report, &cfg, json)
}

fn gen_feed(out: PathBuf, symbols: Vec<String>, events: u64, seed: u64) -> Result<()> {
    use std::io::Write;
    let cfg = venue_sim::gen::GenConfig {
        symbols,
        events,
        seed,
        start_ns: 1_000_000_000,
    };
    let file =
        std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let name = out.to_string_lossy();
    if name.ends_with(".tlc") {
        venue_sim::gen::write_tickline_capture(&cfg, &mut w).map_err(|e| anyhow::anyhow!("{e}"))?;
    } else if name.ends_with(".gz") {
        let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
        venue_sim::gen::write_line_capture(&cfg, &mut gz).map_err(|e| anyhow::anyhow!("{e}"))?;
        w = gz.finish().context("finishing gzip")?;
    } else {
        venue_sim::gen::write_line_capture(&cfg, &mut w).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    w.flush()
        .with_context(|| format!("writing {}", out.display()))?;
    tracing::info!(
        target: "tickline::gen_feed",
        "wrote {} ({} frames after snapshots, seed {seed})",
        out.display(),
        events
    );
    Ok(())
}
