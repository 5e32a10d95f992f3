//! The live engine: pinned I/O thread on the venue's sockets, the core on its own CPU, a REST
//! side thread for depth snapshots, and (when recording) a capture writer thread.
//!
//! ```text
//!  venue ─ws/wss/tcp─▶ I/O thread (io_cpu) ──ring: Event──▶ core (core_cpu)
//!                        │ raw frames                               │ resync requests (ring)
//!                        ▼                                          ▼
//!                    recorder ring ──▶ writer thread ◀── ring ── REST thread ──ring: snapshot levels──▶ core
//! ```
//!
//! With a control endpoint in the config (`[control]`; `tickline run` serves `tickline.sock` by
//! default), a control thread takes runtime commands ([`crate::control`]): it sends the core
//! `engine::control::Request`s on a crossbeam channel the core checks about once a millisecond,
//! and the I/O thread `IoCommand`s (subscribe, unsubscribe) on a bounded channel. Only the symbols
//! of `[venue] trade` (default: all of `[venue] symbols`) trade and are subscribed from the start;
//! the others are in the core's symbol table, idle until `tickline ctl start-trading`.
//!
//! `SIGUSR1` is the kill switch of `tickline run` ([`run_live_with_kill_switch`]): the same
//! `kill` command the control socket sends, always served, needing no connection.
//!
//! With `[health] listen`, a `health` thread answers liveness and readiness probes over HTTP
//! ([`crate::health`]) until the run stops.
//!
//! SIGTERM and Ctrl-C in `tickline run` ([`run_live_with_signals`]) stop gracefully: readiness
//! turns false at once; with live orders and `orders.on_shutdown = "cancel"` (the default) the
//! core is sent `kill` (halt, cancel every open order) and the stop waits until the core tracks
//! no open order; then the threads stop as below. The whole of it is bounded by
//! `orders.shutdown_timeout_ms`: cancels still unanswered then are left to the journal, and a
//! stop that has not ended by then exits the process with status 1. A second signal skips the
//! wait for cancels.
//!
//! Stopping (after the above, `--duration`, or the caller's flag): the I/O and REST threads
//! close their connections and drop their rings; the core drains what is left and ends; the
//! writer flushes the capture; the control thread closes its connections and removes its
//! socket file. The core runs on the runtime's one core runner ([`CoreRunner`], the same loop
//! as a replay's) on the monotonic clock ([`LiveTime`]); the run ends with the same
//! [`RunReport`] as a replay.

use crate::clock::MonoClock;
use crate::config::{Config, Endpoint};
use crate::control::{ControlServer, Controller, ControllerConfig};
use crate::health::{HealthServer, HealthSources};
use crate::runtime::{
    install_strategy, join, CoreEnd, CoreRunner, CoreStatus, CoreSummary, LiveTime, RunReport,
    StatusPublisher,
};
use crate::shutdown::GracefulStop;
use crate::threads::{register_current, spawn_housekeeping, Place};
use crate::venues::FeedPlan;
use anyhow::{bail, Context, Result};
use engine::control::Request;
use engine::core::{Core, CoreBuilder};
use engine::event::OrderCommand;
use engine::idle::IdleMode;
use engine::ring::{event_ring, EventTx, OnFull};
use engine::strategy::{Params, SymbolRules};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::api::{Credentials, OrderEncoder};
use feeds::binance::market::BinanceDecoder;
use feeds::capture::CaptureWriter;
use feeds::io::{
    command_channel, IoCommandRx, IoConfig, IoCounters, IoLoop, IoNotice, IoReport, IoShared,
    ReconnectPolicy, COMMAND_QUEUE,
};
use feeds::net::{client_tls_config, ConnOptions, TlsOptions};
use feeds::orders::journal::{recover, JournalLock, JournalRecord, JournalWriter, TailState};
use feeds::orders::session::{OrderSession, OrderWake, SessionConfig};
use feeds::recorder::{recorder, RecorderRx};
use feeds::rest::{
    run_snapshot_worker, RestClient, ResyncRoutes, SnapshotStats, SnapshotWake,
    SnapshotWorkerConfig,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::runtime::StrategyFactory;

/// An end condition over the I/O thread's running totals.
pub type DoneFn = Box<dyn Fn(&IoCounters) -> bool + Send>;

/// How to run the live engine.
pub struct LiveOptions {
    /// Venue, network, engine and paper settings.
    pub cfg: Config,
    /// Strategy to run on every symbol of `[venue] trade` (None: market data only); also what
    /// `tickline ctl start-trading` runs when it names none.
    pub strategy: Option<(String, Params)>,
    /// Instead of `strategy`: a strategy built by the caller, one instance per symbol of
    /// `[venue] trade`.
    pub custom_strategy: Option<StrategyFactory>,
    /// Record every frame, connection change and snapshot to this `.tlc` file.
    pub record: Option<PathBuf>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print a one-line status this often on stderr.
    pub status_every: Option<Duration>,
    /// Set to stop (signal handlers set it too).
    pub stop: Arc<AtomicBool>,
    /// Stop when this returns true for the I/O thread's running totals (checked every 50 ms);
    /// the demo uses it to end once everything its venue sent has arrived. The run also ends
    /// when the I/O thread gives up on every connection.
    pub done: Option<DoneFn>,
}

impl std::fmt::Debug for LiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveOptions")
            .field("strategy", &self.strategy)
            .field("record", &self.record)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

fn io_config(cfg: &Config, plan: &FeedPlan) -> Result<IoConfig> {
    let tls = if plan
        .feeds
        .iter()
        .any(|f| f.url.starts_with("wss://") || f.url.starts_with("tls://"))
    {
        let opts = TlsOptions {
            ca_file: cfg.venue.ca_file.as_ref().map(PathBuf::from),
            webpki_roots: true,
        };
        Some(client_tls_config(&opts).map_err(|e| anyhow::anyhow!("venue TLS set-up: {e}"))?)
    } else {
        None
    };
    let n = &cfg.net;
    Ok(IoConfig {
        feeds: plan.feeds.clone(),
        conn: ConnOptions {
            max_frame_size: n.max_frame_size,
            max_message_size: n.max_message_size,
            tls,
            ..ConnOptions::default()
        },
        reconnect: ReconnectPolicy {
            initial: Duration::from_millis(n.reconnect_initial_ms),
            max: Duration::from_millis(n.reconnect_max_ms),
            factor: n.reconnect_factor,
            jitter: n.reconnect_jitter,
            max_attempts: (n.reconnect_max_attempts > 0).then_some(n.reconnect_max_attempts),
        },
        idle_timeout: Duration::from_millis(n.idle_timeout_ms),
        heartbeat: Duration::from_millis(n.heartbeat_ms),
        connect_timeout: Duration::from_millis(n.connect_timeout_ms),
        spin: n.spin,
        ..IoConfig::default()
    })
}

/// Opens the order journal: takes its lock (a second engine on it is refused with the holder's
/// pid), compacts it if large, recovers what a previous run left (reporting a torn tail,
/// refusing a corrupt one) and reopens it for appending, the writer holding the lock.
fn open_journal(
    cfg: &Config,
) -> Result<(JournalWriter, Option<feeds::orders::journal::Recovered>)> {
    let path = PathBuf::from(&cfg.orders.journal);
    // First: nothing else may touch the journal (compaction included) while another engine
    // holds it.
    let lock = JournalLock::acquire(&path)
        .with_context(|| format!("locking the order journal {}", path.display()))?;
    let policy = crate::config::fsync_policy(&cfg.orders.fsync)?;
    let limit = cfg.orders.journal_compact_mb.saturating_mul(1 << 20);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    if limit > 0 && size > limit {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let archive = PathBuf::from(format!("{}.{secs}", path.display()));
        let c = feeds::orders::journal::compact(&path, Some(&archive))
            .with_context(|| format!("compacting the order journal {}", path.display()))?;
        tracing::info!(
            target: "tickline::journal",
            file = %path.display(),
            before = c.before,
            after = c.after,
            records = c.records,
            archive = %archive.display(),
            "compacted; the full history is in the archive"
        );
    }
    let rec = if path.exists() {
        let rec = recover(&path)
            .with_context(|| format!("recovering the order journal {}", path.display()))?;
        match rec.tail {
            TailState::Clean => {}
            TailState::Torn { offset, bytes } => tracing::warn!(
                target: "tickline::journal",
                file = %path.display(),
                offset,
                bytes,
                "torn record from the last run; it never completed, so that order was not sent; cutting it off"
            ),
            TailState::Corrupt { offset } => bail!(
                "journal {} is corrupt at byte {offset}: refusing to trade on it (records after the damage would be lost); move it aside and reconcile by hand",
                path.display()
            ),
        }
        Some(rec)
    } else {
        None
    };
    let mut w = JournalWriter::open(&path, policy)
        .with_context(|| format!("opening the order journal {}", path.display()))?;
    w.hold_lock(lock);
    Ok((w, rec))
}

/// Trader states recovered from the journal: `(symbol, trader, state)`.
type TraderStates = Vec<(String, u32, Vec<u8>)>;

/// The order session of a live run with `orders.enabled`, wired into `core`: credentials, the
/// journal (and what it recovered), the command and event rings, and the waker. Also returns
/// the traders' states the journal holds, to hand to the strategies once they are installed.
fn order_session(
    cfg: &Config,
    symbols: &SymbolTable,
    core: &mut Core<MonoClock>,
    (cmd_rx, wake): OrderRing,
) -> Result<(OrderSession, TraderStates)> {
    let o = &cfg.orders;
    let creds = match &o.credentials_file {
        Some(f) => Credentials::from_file(std::path::Path::new(f))
            .map_err(|e| anyhow::anyhow!("orders.credentials_file: {e}"))?,
        None => Credentials::from_env(&o.credentials_env)
            .map_err(|e| anyhow::anyhow!("orders.credentials_env: {e}"))?,
    };
    if o.session_logon && !matches!(creds, Credentials::Ed25519 { .. }) {
        bail!("orders.session_logon needs an Ed25519 key (the venue accepts session.logon with Ed25519 keys only); this key is HMAC");
    }
    let encoder = OrderEncoder::new(creds, o.recv_window_ms);
    let (mut journal, rec) = open_journal(cfg)?;
    // This start's epoch: past every id the journal recorded and at least this second (see
    // `ClientOrderId`); journaled and synced before any order, so the next start moves past it
    // even if nothing else of this run reaches the disk.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let journal_next = rec.as_ref().map_or(1, |r| r.next_client_id);
    let first_id =
        feeds::orders::idcheck::shard_start_number(now_s, journal_next, o.shard, o.shards);
    journal
        .append(&JournalRecord::NextClientId { next: first_id })
        .and_then(|()| journal.sync())
        .with_context(|| format!("journaling this start's client ids in {}", o.journal))?;
    core.set_next_order_number(first_id);
    let (ev_tx, ev_rx) = event_ring(16_384, OnFull::Block);
    core.add_input(ev_rx);
    let mut session = OrderSession::new(
        SessionConfig {
            conn_id: o.conn_id,
            url: o.url.clone(),
            spin_after_frame: Duration::from_micros(o.spin_after_frame_us),
            user_stream: true,
            require_user_stream: o.require_user_stream,
            session_logon: o.session_logon,
        },
        encoder,
        symbols.clone(),
        cmd_rx,
        ev_tx,
        Some(journal),
        wake,
        MonoClock::now,
        feeds::orders::clock::system_wall_ns,
    );
    session.set_next_client_number(first_id);
    session.set_client_id_shard(o.shard, o.shards);
    let first_id =
        engine::event::ClientOrderId::new(engine::event::ClientOrderId::NS_ENGINE, first_id);
    let mut traders = Vec::new();
    if let Some(rec) = rec {
        traders = rec.trader_states.clone();
        for (name, pos) in &rec.positions {
            match symbols.lookup(name.as_bytes()) {
                Some(id) => core.restore_position(id, *pos),
                None => tracing::warn!(
                    target: "tickline::journal",
                    symbol = %name,
                    qty = pos.qty as f64 / engine::fixed::SCALE as f64,
                    "a position on a symbol this run does not trade"
                ),
            }
        }
        for ord in &rec.open_orders {
            if let Some(id) = symbols.lookup(ord.symbol.as_bytes()) {
                if !core.restore_order(id, ord.client_id, ord.req, ord.filled, ord.acked) {
                    tracing::warn!(
                        target: "tickline::journal",
                        client_id = %ord.client_id,
                        "order table full; the order is reconciled but not tracked by the core"
                    );
                }
            }
        }
        session.restore(&rec.open_orders);
        tracing::info!(
            target: "tickline::journal",
            records = rec.records,
            fills = rec.fills,
            duplicate_fills = rec.duplicate_fills,
            next_client_id = %first_id,
            open_orders = rec.open_orders.len(),
            "recovered; open orders to reconcile with the venue"
        );
    } else {
        tracing::info!(target: "tickline::journal", file = %o.journal, next_client_id = %first_id, "new file");
    }
    Ok((session, traders))
}

/// Drains both recorder rings (I/O thread and REST thread) into one capture until both
/// producers are gone.
fn write_capture(path: &PathBuf, mut rings: Vec<RecorderRx>) -> Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = CaptureWriter::new(std::io::BufWriter::new(file))
        .with_context(|| format!("writing {}", path.display()))?;
    let mut written = 0u64;
    let mut last_flush = Instant::now();
    loop {
        let mut any = false;
        for rx in rings.iter_mut() {
            while let Some(r) = rx.pop() {
                w.append(r.recv_ns, r.conn_id, r.kind, r.payload)
                    .with_context(|| format!("writing {}", path.display()))?;
                written += 1;
                any = true;
            }
        }
        if last_flush.elapsed() >= Duration::from_millis(100) {
            w.flush()
                .with_context(|| format!("flushing {}", path.display()))?;
            last_flush = Instant::now();
        }
        if !any {
            if rings.iter_mut().all(|r| r.is_abandoned() && r.is_empty()) {
                break;
            }
            std::thread::sleep(feeds::recorder::IDLE_SLEEP);
        }
    }
    w.flush()
        .with_context(|| format!("flushing {}", path.display()))?;
    Ok(written)
}

/// Runs the live engine until stopped; returns the same summary as a replay.
pub fn run_live(opts: LiveOptions) -> Result<RunReport> {
    run_live_inner(opts, None, None)
}

/// [`run_live`] with a kill switch that needs no socket: whenever `kill` is set (by a
/// `SIGUSR1` handler, in `tickline run`), the core gets the control command `kill` (halt and
/// cancel every open order; `tickline ctl resume` lifts it), and the flag is cleared.
pub fn run_live_with_kill_switch(opts: LiveOptions, kill: Arc<AtomicBool>) -> Result<RunReport> {
    run_live_inner(opts, Some(kill), None)
}

/// [`run_live_with_kill_switch`], and a graceful stop when `term` is set (by the SIGTERM and
/// SIGINT handlers of `tickline run`): see the [module docs](self). Meant for a process's main
/// thread: a graceful stop that overruns `orders.shutdown_timeout_ms` ends the process.
pub fn run_live_with_signals(
    opts: LiveOptions,
    kill: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
) -> Result<RunReport> {
    run_live_inner(opts, Some(kill), Some(term))
}

/// The kill switch's command on its way to the core.
struct KillSwitch {
    flag: Arc<AtomicBool>,
    core: crossbeam_channel::Sender<engine::control::Request>,
    pending: Option<crossbeam_channel::Receiver<engine::control::Reply>>,
}

impl KillSwitch {
    /// Called by the main thread every 50 ms: sends `kill` when the flag is set (again on the
    /// next round if the core's queue is full), reports the core's answer.
    fn check(&mut self) {
        use engine::control::{Command, Reply, Request};
        if let Some(rx) = &self.pending {
            match rx.try_recv() {
                Ok(Reply::Done(m)) => {
                    tracing::warn!(target: "tickline::control", "kill switch (SIGUSR1): {m}")
                }
                Ok(Reply::Refused(m)) => {
                    tracing::error!(target: "tickline::control", "kill switch (SIGUSR1): refused: {m}")
                }
                Ok(Reply::Status(_)) => {}
                Err(crossbeam_channel::TryRecvError::Empty) => return,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    tracing::error!(target: "tickline::control", "kill switch (SIGUSR1): the core stopped before answering")
                }
            }
            self.pending = None;
        }
        if !self.flag.swap(false, Ordering::AcqRel) {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        match self.core.try_send(Request {
            command: Command::Kill,
            reply: tx,
        }) {
            Ok(()) => self.pending = Some(rx),
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                self.flag.store(true, Ordering::Release)
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                tracing::error!(target: "tickline::control", "kill switch (SIGUSR1): the core has stopped")
            }
        }
    }
}

/// The live run, stage by stage: control, symbols, core, order session, strategies, threads,
/// health, wait, finish.
fn run_live_inner(
    opts: LiveOptions,
    kill: Option<Arc<AtomicBool>>,
    term: Option<Arc<AtomicBool>>,
) -> Result<RunReport> {
    let cfg = &opts.cfg;
    let control = open_control(cfg)?;
    let health = open_health(cfg)?;
    // The run's threads: the caller's run (`tickline` makes one), or one placed by the config.
    let (run_threads, _entered) = match crate::threads::current() {
        Some(r) => (r, None),
        None => {
            let r = crate::threads::RunThreads::new(cfg.placement());
            let g = r.enter(false);
            (r, Some(g))
        }
    };
    let placement = run_threads.placement().clone();
    let plan = FeedPlan::new(cfg)?;
    let (symbols, rest, rules) = load_symbols(cfg, &plan)?;
    let mut io_cfg = io_config(cfg, &plan)?;
    let BuiltCore {
        mut core,
        ends,
        order_ring,
        core_requests,
    } = build_core(
        cfg,
        &plan,
        control.is_some() || kill.is_some() || term.is_some(),
    );
    let (session, trader_states) =
        load_keys_and_journal(cfg, &symbols, &mut core, &mut io_cfg, order_ring)?;
    install_strategies(&opts, &plan, &rules, &trader_states, &mut core)?;
    // Runtime control: subscription changes for the I/O thread.
    let (io_cmd_tx, io_cmd_rx) = command_channel(COMMAND_QUEUE);
    let kill_switch = match (kill, &core_requests) {
        (Some(flag), Some(core)) => Some(KillSwitch {
            flag,
            core: core.clone(),
            pending: None,
        }),
        _ => None,
    };
    let graceful = match (term, &core_requests) {
        (Some(term), Some(core)) => Some(GracefulStop {
            term,
            cancel: cfg.orders.enabled && cfg.orders.cancel_on_shutdown(),
            timeout: Duration::from_millis(cfg.orders.shutdown_timeout_ms),
            core: core.clone(),
        }),
        _ => None,
    };
    let feeds: Vec<(u32, String)> = io_cfg
        .feeds
        .iter()
        .map(|f| (f.conn_id, f.url.clone()))
        .collect();
    let shared = Arc::new(IoShared::new(io_cfg.feeds.len()));
    let status = Arc::new(CoreStatus::with_symbols(symbols.len()));
    let stopping = Arc::new(AtomicBool::new(false));
    let io_done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let start_ns = MonoClock::now();
    let idle = cfg.idle_mode()?;
    let io = spawn_io(
        &opts,
        io_cfg,
        &plan,
        plan.resync_routes(rest, io_cmd_tx.clone(), Duration::from_secs(10)),
        ends,
        session,
        io_cmd_rx,
        &shared,
        &io_done,
        placement.io,
    )?;
    let core_thread = spawn_core(cfg, core, &symbols, &shared, &status, idle, placement.core)?;
    let health_thread = match health {
        Some(server) => {
            let sources = HealthSources {
                status: status.clone(),
                shared: shared.clone(),
                feeds: feeds.iter().map(|f| f.0).collect(),
                symbols: symbols.iter().map(|(_, n)| n.to_string()).collect(),
                orders: cfg.orders.enabled.then_some(cfg.orders.require_user_stream),
                live_max_ns: cfg.health.live_max_ms * 1_000_000,
                stopping: stopping.clone(),
            };
            let stats = server.stats();
            Some((server.spawn(sources, opts.stop.clone())?, stats))
        }
        None => None,
    };
    let control_thread = match (control, core_requests) {
        (Some(server), Some(core_tx)) => {
            let controller = Controller::new(ControllerConfig {
                symbols: symbols.clone(),
                venue: cfg.venue.clone(),
                default_strategy: opts.strategy.clone(),
                core: core_tx,
                io: io_cmd_tx,
                shared: shared.clone(),
                feed_conn_id: crate::config::MARKET_CONN_ID,
                symbol_feeds: plan.symbol_feeds.clone(),
                feeds,
                live_orders: cfg.orders.enabled,
                reply_timeout: Duration::from_millis(cfg.control.reply_timeout_ms),
                stop: opts.stop.clone(),
            });
            Some(server.spawn(controller, opts.stop.clone())?)
        }
        _ => None,
    };
    let ends = Ends {
        kill_switch,
        graceful,
        stopping,
    };
    wait_for_stop(&opts, &shared, &status, &io_done, started, ends);
    let report = finish(&opts, &symbols, io, core_thread, control_thread, start_ns);
    if let Some((h, stats)) = health_thread {
        join(h, "health")?;
        tracing::info!(
            target: "tickline::health",
            "{} requests answered, {} refused",
            stats.requests.load(Ordering::Relaxed),
            stats.refused.load(Ordering::Relaxed)
        );
    }
    let mut report = report?;
    report.threads = run_threads.report();
    Ok(report)
}

/// Binds the health endpoint, if `[health] listen` names one.
fn open_health(cfg: &Config) -> Result<Option<HealthServer>> {
    let Some(addr) = cfg.health.addr()? else {
        return Ok(None);
    };
    let server = HealthServer::bind(addr)?;
    tracing::info!(
        target: "tickline::health",
        "listening on http://{} (/livez, /readyz)",
        server.local_addr()?
    );
    Ok(Some(server))
}

/// Checks the config and binds the control endpoint, if one is configured.
fn open_control(cfg: &Config) -> Result<Option<ControlServer>> {
    cfg.validate()?;
    for w in cfg
        .plaintext_warnings()
        .into_iter()
        .chain(crate::venues::plaintext_warnings(cfg))
    {
        tracing::warn!(target: "tickline::config", "{}", w.trim_start_matches("warning: "));
    }
    // First, so a second engine on the same control socket stops before it touches the venue.
    let Some(ep) = cfg.control.configured_endpoint()? else {
        return Ok(None);
    };
    // TCP needs a token (refused without); the Unix socket relies on its mode 0600.
    let token = match ep {
        Endpoint::Tcp(_) => cfg.control.token()?,
        Endpoint::Unix(_) => None,
    };
    let server = ControlServer::bind(&ep, token)?;
    tracing::info!(target: "tickline::control", "listening on {}", server.endpoint());
    Ok(Some(server))
}

/// The symbols of every feed (`plan`), and the trading rules of `[venue] symbols` fetched
/// from Binance's exchangeInfo over REST (the other venues' symbols keep the default rules).
fn load_symbols(
    cfg: &Config,
    plan: &FeedPlan,
) -> Result<(SymbolTable, RestClient, Vec<SymbolRules>)> {
    let symbols = plan.symbols.clone();
    let rest = RestClient::new(&cfg.venue.rest_url, Duration::from_secs(10));
    let mut rules: Vec<SymbolRules> = vec![SymbolRules::default(); symbols.len()];
    if cfg.venue.exchange_info && !plan.binance_symbols.is_empty() {
        let names: Vec<&str> = plan.binance_symbols.iter().map(|s| s.as_str()).collect();
        match rest.exchange_info(&names) {
            Ok(info) => {
                for i in info {
                    if let Some(id) = symbols.lookup(i.symbol.as_bytes()) {
                        rules[id.index()] = i.rules;
                    }
                }
            }
            Err(e) => tracing::warn!(
                target: "tickline::rest",
                error = %e,
                "exchangeInfo failed; using the default filters (tick 0.01, lot 0.00001, min notional 5); set venue.exchange_info = false to skip it"
            ),
        }
    }
    Ok((symbols, rest, rules))
}

/// The ends of the core's market-data rings that the I/O and REST threads hold.
struct FeedEnds {
    /// I/O thread → core: market events.
    io_tx: EventTx,
    /// REST thread → core: snapshot levels.
    snap_tx: EventTx,
    /// Core → REST thread: symbols to resync.
    resync_rx: rtrb::Consumer<SymbolId>,
    /// The core wakes the REST thread with it after each resync request.
    rest_wake: SnapshotWake,
}

/// The order session's ends of the core's order ring and its waker.
type OrderRing = (rtrb::Consumer<OrderCommand>, Arc<OrderWake>);

/// The core and the other ends of what it was built with.
struct BuiltCore {
    core: Core<MonoClock>,
    ends: FeedEnds,
    /// With `orders.enabled`: for the order session.
    order_ring: Option<OrderRing>,
    /// With a control endpoint or a kill switch: runtime commands for the core.
    core_requests: Option<crossbeam_channel::Sender<Request>>,
}

/// Builds the core with its market-data rings, depth feeds and wall-clock offset, its order ring
/// and waker (with `orders.enabled`) and its control channel (when `control` is wanted).
fn build_core(cfg: &Config, plan: &FeedPlan, control: bool) -> BuiltCore {
    let symbols = &plan.symbols;
    let (io_tx, io_rx) = event_ring(cfg.engine.ring_capacity, OnFull::Drop);
    let (snap_tx, snap_rx) = event_ring(16_384, OnFull::Block);
    let (resync_tx, resync_rx) = rtrb::RingBuffer::new(256);
    let mut core_cfg = cfg.core_config(symbols.len());
    core_cfg.depth_snapshots = plan.symbol_feeds.iter().any(|f| f.depth);
    let rest_wake = SnapshotWake::new();
    let w = rest_wake.clone();
    let mut builder = CoreBuilder::new(symbols, core_cfg, MonoClock)
        .resync_sink(resync_tx)
        .resync_notify(move || w.wake());
    let order_ring = if cfg.orders.enabled {
        let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(4096);
        let wake = OrderWake::new();
        let w = wake.clone();
        builder = builder.order_sink(cmd_tx).order_notify(move || w.notify());
        Some((cmd_rx, wake))
    } else {
        None
    };
    let core_requests = if control {
        let (tx, rx) = crossbeam_channel::bounded(16);
        builder = builder.control(rx);
        Some(tx)
    } else {
        None
    };
    let mut core = builder.build();
    // Symbols idle until `start-trading` are not subscribed: no depth for them yet; nor for
    // a symbol whose feed has no depth stream.
    for (id, _) in symbols.iter() {
        let fed = plan.feed_of(id).is_some_and(|f| f.depth && f.at_start);
        core.set_depth_feed(id, fed);
    }
    core.add_input(io_rx);
    core.add_input(snap_rx);
    // Wall clock = monotonic + offset, for the cross-clock feed latency (receive - venue time).
    let wall = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let wall_ns = wall.tv_sec as i64 * 1_000_000_000 + wall.tv_nsec as i64;
    core.set_wall_clock_offset(wall_ns - MonoClock::now() as i64);
    let ends = FeedEnds {
        io_tx,
        snap_tx,
        resync_rx,
        rest_wake,
    };
    BuiltCore {
        core,
        ends,
        order_ring,
        core_requests,
    }
}

/// With `orders.enabled`: the order API's TLS, the credentials and the journal, wired into the
/// core as an order session (see [`order_session`]); also the traders' states the journal holds.
fn load_keys_and_journal(
    cfg: &Config,
    symbols: &SymbolTable,
    core: &mut Core<MonoClock>,
    io_cfg: &mut IoConfig,
    order_ring: Option<OrderRing>,
) -> Result<(Option<OrderSession>, TraderStates)> {
    let Some(order_ring) = order_ring else {
        return Ok((None, Vec::new()));
    };
    if cfg.orders.url.starts_with("wss://") && io_cfg.conn.tls.is_none() {
        let opts = TlsOptions {
            ca_file: cfg.venue.ca_file.as_ref().map(PathBuf::from),
            webpki_roots: true,
        };
        io_cfg.conn.tls = Some(
            client_tls_config(&opts).map_err(|e| anyhow::anyhow!("order API TLS set-up: {e}"))?,
        );
    }
    let (session, traders) = order_session(cfg, symbols, core, order_ring)?;
    Ok((Some(session), traders))
}

/// Sets each symbol's rules, installs the strategy on the symbols trading from the start, and
/// resumes the supervised traders the journal recorded.
fn install_strategies(
    opts: &LiveOptions,
    plan: &FeedPlan,
    rules: &[SymbolRules],
    trader_states: &TraderStates,
    core: &mut Core<MonoClock>,
) -> Result<()> {
    let symbols = &plan.symbols;
    for (id, _) in symbols.iter() {
        core.set_rules(id, rules[id.index()]);
        if !plan.feed_of(id).is_some_and(|f| f.trading) {
            continue; // idle until `start-trading`
        }
        install_strategy(
            core,
            id,
            opts.custom_strategy.as_ref(),
            opts.strategy.as_ref(),
        )?;
    }
    // Supervised traders resume where the journal left them.
    if !trader_states.is_empty() {
        let mut restored = 0;
        for (name, trader, state) in trader_states {
            let ok = symbols
                .lookup(name.as_bytes())
                .is_some_and(|id| core.restore_trader(id, *trader as u16, state));
            restored += usize::from(ok);
        }
        tracing::info!(
            target: "tickline::journal",
            restored,
            total = trader_states.len(),
            "trader states restored (the others' symbols do not trade now, or their strategy changed)"
        );
    }
    Ok(())
}

/// The I/O side of a live run: its threads, to join at the end.
struct IoThreads {
    /// The I/O thread: its report and whether it got its CPU.
    io: JoinHandle<(IoReport, bool)>,
    /// The REST snapshot thread.
    rest: JoinHandle<SnapshotStats>,
    /// The capture writer, when recording.
    writer: Option<JoinHandle<Result<u64>>>,
}

/// Starts the capture writer (when recording), the I/O thread and the REST snapshot thread.
#[allow(clippy::too_many_arguments)] // one call site; the I/O side's inputs, spelled out
fn spawn_io(
    opts: &LiveOptions,
    io_cfg: IoConfig,
    plan: &FeedPlan,
    routes: ResyncRoutes,
    ends: FeedEnds,
    session: Option<OrderSession>,
    io_cmd_rx: IoCommandRx,
    shared: &Arc<IoShared>,
    io_done: &Arc<AtomicBool>,
    io_cpu: Option<usize>,
) -> Result<IoThreads> {
    let cfg = &opts.cfg;
    let FeedEnds {
        io_tx,
        snap_tx,
        resync_rx,
        rest_wake,
    } = ends;
    let (io_rec, snap_rec, rec_rings) = match &opts.record {
        Some(_) => {
            let (a_tx, a_rx) = recorder(64 << 20);
            let (b_tx, b_rx) = recorder(16 << 20);
            (Some(a_tx), Some(b_tx), vec![a_rx, b_rx])
        }
        None => (None, None, Vec::new()),
    };
    let symbols = &plan.symbols;
    let mut decoder = BinanceDecoder::new(symbols.clone());
    decoder.set_default_symbol(None);
    // One decoder per venue the feeds speak to (Binance spot's above, configured for live).
    let others: Vec<feeds::venue::AnyDecoder> = plan
        .venues()
        .into_iter()
        .filter(|&v| v != engine::venue::Venue::Binance)
        .filter_map(feeds::venue::adapter)
        .map(|a| a.decoder(symbols.clone()))
        .collect();
    let writer = match (&opts.record, rec_rings.is_empty()) {
        (Some(path), false) => {
            let path = path.clone();
            Some(
                spawn_housekeeping("tickline-recorder", move || write_capture(&path, rec_rings))
                    .context("spawning the recorder thread")?,
            )
        }
        _ => None,
    };
    let io = {
        let (shared, stop, io_done) = (shared.clone(), opts.stop.clone(), io_done.clone());
        crate::threads::spawn("tickline-io", None, move || {
            let registration = register_current("tickline-io", Place::Io(io_cpu));
            let pinned = registration.placed;
            let mut notice = |n: IoNotice| crate::logging::events::io_notice(&n);
            let r = others
                .into_iter()
                .fold(
                    IoLoop::new(io_cfg, decoder, io_tx, MonoClock::now),
                    |l, d| l.decoder(d),
                )
                .recorder(io_rec)
                .commands(io_cmd_rx)
                .session(session)
                .run(&shared, &stop, &mut notice);
            io_done.store(true, Ordering::Release);
            (r, pinned)
        })
        .context("spawning the I/O thread")?
    };
    let rest = {
        let stop = opts.stop.clone();
        let symbols = symbols.clone();
        let wcfg = SnapshotWorkerConfig {
            limit: cfg.venue.snapshot_limit,
            wake: Some(rest_wake),
            ..SnapshotWorkerConfig::default()
        };
        spawn_housekeeping("tickline-rest", move || {
            let mut report = |m: &str| tracing::warn!(target: "tickline::rest", "{m}");
            run_snapshot_worker(
                &routes,
                &wcfg,
                &symbols,
                resync_rx,
                snap_tx,
                snap_rec,
                &stop,
                MonoClock::now,
                &mut report,
            )
        })
        .context("spawning the REST thread")?
    };
    Ok(IoThreads { io, rest, writer })
}

/// Starts the metrics thread and the core thread (the one runner of [`crate::runtime`]).
fn spawn_core(
    cfg: &Config,
    core: Core<MonoClock>,
    symbols: &SymbolTable,
    shared: &Arc<IoShared>,
    status: &Arc<CoreStatus>,
    idle: IdleMode,
    core_cpu: Option<usize>,
) -> Result<JoinHandle<CoreEnd>> {
    let metrics = crate::metrics::start(
        cfg.metrics_config(true),
        &core,
        symbols,
        Some(shared.clone()),
    )
    .context("starting the metrics thread")?;
    CoreRunner {
        core,
        metrics,
        cpu: core_cpu,
        idle,
        time: LiveTime,
        publish: StatusPublisher::new(status.clone()),
        start: None,
    }
    .spawn()
}

/// How the main thread ends a run besides the stop flag: the kill switch, the graceful stop,
/// and the flag that tells the health endpoint the run is stopping.
struct Ends {
    kill_switch: Option<KillSwitch>,
    graceful: Option<GracefulStop>,
    stopping: Arc<AtomicBool>,
}

/// The main thread until the run ends (stop flag, a graceful stop's signal, `--duration`, the
/// I/O thread done, or the caller's end condition): the status line and the kill switch every
/// 50 ms; then sets the stop flag for every thread.
fn wait_for_stop(
    opts: &LiveOptions,
    shared: &IoShared,
    status: &CoreStatus,
    io_done: &AtomicBool,
    started: Instant,
    ends: Ends,
) {
    let Ends {
        mut kill_switch,
        graceful,
        stopping,
    } = ends;
    let stop = &opts.stop;
    let mut next_status = started + opts.status_every.unwrap_or(Duration::from_secs(3600));
    let mut last_frames = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(k) = kill_switch.as_mut() {
            k.check();
        }
        if let Some(g) = graceful.as_ref() {
            if g.term.swap(false, Ordering::AcqRel) {
                stopping.store(true, Ordering::Relaxed);
                g.run();
                break;
            }
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d)
            || io_done.load(Ordering::Acquire)
            || opts.done.as_ref().is_some_and(|f| f(&shared.totals()))
        {
            break;
        }
        if let Some(every) = opts.status_every {
            if Instant::now() >= next_status {
                let t = shared.totals();
                tracing::info!(
                    target: "tickline::status",
                    elapsed_s = started.elapsed().as_secs_f64(),
                    frames = t.frames,
                    frames_per_s = (t.frames - last_frames) as f64 / every.as_secs_f64(),
                    events = status.events.load(Ordering::Relaxed),
                    connected = (0..shared.len()).filter(|&i| shared.state(i) == Some(feeds::io::LinkState::Open)).count(),
                    reconnects = t.reconnect_attempts,
                    syncs = status.syncs.load(Ordering::Relaxed),
                    gaps = status.gaps.load(Ordering::Relaxed),
                    ring_drops = shared.ring_dropped(),
                    orders = status.orders.load(Ordering::Relaxed),
                    fills = status.fills.load(Ordering::Relaxed),
                    decode_errors = t.decode_errors,
                    "status"
                );
                last_frames = t.frames;
                next_status += every;
            }
        }
    }
    stopping.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
}

/// Joins every thread (I/O, REST, core, control, recorder, in that order) and builds the run's
/// report.
fn finish(
    opts: &LiveOptions,
    symbols: &SymbolTable,
    io: IoThreads,
    core_thread: JoinHandle<CoreEnd>,
    control_thread: Option<JoinHandle<()>>,
    start_ns: u64,
) -> Result<RunReport> {
    let (io_report, io_pinned) = join(io.io, "I/O")?;
    // The REST thread sleeps until a request or a retry is due: wake it to see the stop.
    io.rest.thread().unpark();
    let _snap = join(io.rest, "REST")?;
    let end = join(core_thread, "core")?;
    let (end_ns, core_pinned) = (end.end_ns, end.pinned);
    if let Some(c) = control_thread {
        join(c, "control")?;
    }
    if let Some(w) = io.writer {
        let n = join(w, "recorder")??;
        tracing::info!(
            target: "tickline::record",
            records = n,
            file = %opts.record.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "recorded"
        );
    }
    if let feeds::io::IoEnd::PollError(e) = &io_report.end {
        bail!("the I/O thread stopped: {e}");
    }
    let CoreSummary {
        core,
        mut latency,
        positions,
        machine_hiccups,
    } = end.finish(symbols, &io_report.decode_latency)?;
    if let Some(s) = &io_report.session {
        latency.record_hist(engine::latency::Stage::TickToWire, &s.tick_to_wire);
        if s.in_flight > 0 {
            tracing::warn!(
                target: "tickline::orders",
                in_flight = s.in_flight,
                "orders still in flight at stop; the journal has them, the next start settles them with the venue"
            );
        }
    }
    Ok(RunReport {
        session: io_report.session.as_ref().map(|s| s.counters),
        frames: io_report.totals.frames,
        decode: io_report.decode,
        ring: io_report.ring,
        core: *core.counters(),
        book: core.book_stats(),
        positions,
        latency,
        elapsed_ns: end_ns.saturating_sub(start_ns),
        feed_elapsed_ns: end_ns.saturating_sub(start_ns),
        allocations: None,
        pinned: (io_pinned, core_pinned),
        first_errors: Vec::new(),
        io: Some(io_report.totals),
        paced: None,
        threads: Default::default(),
        machine_hiccups,
        feed_hiccups: None,
        venues: Vec::new(),
    })
}
