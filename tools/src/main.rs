//! `tickline`: replay captures through the pinned pipeline, generate synthetic feeds, run the demo.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use engine::symbol::SymbolTable;
use std::path::PathBuf;
use tools::config::Config;
use tools::pipeline::{load_capture, replay, FrameArena, ReplayOptions};

#[global_allocator]
static ALLOC: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "tickline",
    version,
    about = "Tickline: a low-latency trading engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay a capture (line format `<recv_ns> <json>`, plain or gzip, or a .tlc capture)
    /// through the feed thread, the ring and the core.
    Replay {
        /// Capture file.
        file: PathBuf,
        #[command(flatten)]
        run: RunArgs,
        /// Replay the capture this many times back to back (the allocation check: a capture and
        /// the same capture doubled must allocate the same during the run). Each copy restarts
        /// the venue's sequence numbers, so expect one book gap per extra copy, resynced by that
        /// copy's snapshot.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
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
    /// or `--duration`, printing a status line; then the same summary as `replay`.
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
    VenueSim(tools::sim::SimArgs),
    /// Regenerate the `.hgrm` files and the SVG chart from a `latency.hlog` (HdrHistogram V2 log).
    Report {
        /// The log (written by `--report-dir`, or any HdrHistogram V2 log with tags).
        file: PathBuf,
        /// Output directory (default: the log's directory).
        #[arg(long)]
        out: Option<PathBuf>,
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
    /// Strategy: naive, sma_cross, probe, or none.
    #[arg(long)]
    strategy: Option<String>,
    /// Strategy parameter `key=value` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// asap, recorded, or xN (x10 = ten times faster than recorded).
    #[arg(long)]
    pace: Option<String>,
    /// CPU for the feed thread (-1: unpinned). Default 0.
    #[arg(long, allow_hyphen_values = true)]
    io_cpu: Option<i64>,
    /// CPU for the core thread (-1: unpinned). Default 1.
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
            cfg.engine.io_cpu = c;
        }
        if let Some(c) = self.core_cpu {
            cfg.engine.core_cpu = c;
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

fn run_replay(
    arena: &FrameArena,
    mut symbols: SymbolTable,
    cfg: &Config,
    json: bool,
) -> Result<()> {
    let default_symbol = symbols
        .intern(&cfg.replay.symbol)
        .map_err(|e| anyhow::anyhow!("--symbol: {e}"))?;
    let strategy =
        (cfg.strategy.name != "none").then(|| (cfg.strategy.name.clone(), cfg.strategy_params()));
    let opts = ReplayOptions {
        symbols,
        default_symbol,
        strategy,
        custom_strategy: None,
        pace: cfg.pace()?,
        io_cpu: Config::cpu(cfg.engine.io_cpu),
        core_cpu: Config::cpu(cfg.engine.core_cpu),
        idle: cfg.idle_mode()?,
        ring_capacity: cfg.engine.ring_capacity,
        core: cfg.core_config(),
        metrics: cfg.metrics_config(false),
    };
    let report = replay(arena, opts)?;
    print_report(&report, cfg, json)
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Replay { file, run, repeat } => {
            let cfg = run.config()?;
            let mut symbols = SymbolTable::new();
            let default_symbol = symbols
                .intern(&cfg.replay.symbol)
                .map_err(|e| anyhow::anyhow!("--symbol: {e}"))?;
            let mut arena = load_capture(&file, &mut symbols, default_symbol)?;
            if repeat > 1 {
                arena = arena.repeated(repeat as usize);
            }
            run_replay(&arena, symbols, &cfg, run.json)
        }
        Cmd::GenFeed {
            out,
            symbols,
            events,
            seed,
        } => gen_feed(out, symbols, events, seed),
        Cmd::Run {
            run,
            duration,
            status_every,
            record,
        } => {
            let cfg = run.config()?;
            let strategy = (cfg.strategy.name != "none")
                .then(|| (cfg.strategy.name.clone(), cfg.strategy_params()));
            live(cfg, strategy, record, duration, status_every, run.json)
        }
        Cmd::Record { run, out, duration } => {
            let mut cfg = run.config()?;
            // Recording never trades, whatever the config says.
            cfg.orders.enabled = false;
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
            let gen = feeds::gen::GenConfig {
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
        Cmd::VenueSim(args) => tools::sim::run_cli(args),
        Cmd::Report { file, out } => {
            let dir = out.unwrap_or_else(|| {
                file.parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_else(|| PathBuf::from("."))
            });
            let written = tools::report::report_from_hlog(&file, &dir)
                .with_context(|| format!("reading {}", file.display()))?;
            for p in written {
                println!("{}", p.display());
            }
            Ok(())
        }
    }
}

fn demo_replay(gen: feeds::gen::GenConfig, cfg: &Config, json: bool) -> Result<()> {
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
    run_replay(&arena, symbols, cfg, json)
}

fn demo_live(
    gen: feeds::gen::GenConfig,
    mut cfg: Config,
    rate: u64,
    tls: bool,
    json: bool,
) -> Result<()> {
    use tools::sim::{SimConfig, SimPace, SimSource, VenueSim};
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
    let report = tools::live::run_live(tools::live::LiveOptions {
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
fn print_report(report: &tools::pipeline::ReplayReport, cfg: &Config, json: bool) -> Result<()> {
    if json {
        println!("{}", report.to_json());
    } else {
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
            tools::report::write_report_dir(std::path::Path::new(dir), &report.latency, &note)
                .with_context(|| format!("writing the latency report to {dir}"))?;
        for p in written {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
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
    let stop = stop_on_signals()?;
    let report = tools::live::run_live(tools::live::LiveOptions {
        cfg: cfg.clone(),
        strategy,
        custom_strategy: None,
        record,
        duration: duration.map(|d| seconds("--duration", d)).transpose()?,
        status_every: (status_every > 0.0)
            .then(|| seconds("--status-every", status_every))
            .transpose()?,
        stop,
        done: None,
    })?;
    print_report(&report, &cfg, json)
}

fn gen_feed(out: PathBuf, symbols: Vec<String>, events: u64, seed: u64) -> Result<()> {
    use std::io::Write;
    let cfg = feeds::gen::GenConfig {
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
        feeds::gen::write_tickline_capture(&cfg, &mut w).map_err(|e| anyhow::anyhow!("{e}"))?;
    } else if name.ends_with(".gz") {
        let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
        feeds::gen::write_line_capture(&cfg, &mut gz).map_err(|e| anyhow::anyhow!("{e}"))?;
        w = gz.finish().context("finishing gzip")?;
    } else {
        feeds::gen::write_line_capture(&cfg, &mut w).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    w.flush()
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} ({} frames after snapshots, seed {seed})",
        out.display(),
        events
    );
    Ok(())
}
