//! Applies control commands: builds strategies, subscribes streams, asks the core, and answers
//! `status` (one command at a time under one lock; `kill` and `halt` bypass it).

use super::protocol::{done_reply, error_reply, CtlRequest};
use super::server::ControlStats;
use super::status::{order_session_json, symbol_json};
use super::STOP_CHECK;
use anyhow::Result;
use engine::control::{Command, Reply, Request};
use engine::status::CoreStatus;
use engine::strategy::{Params, SymbolRules};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::io::{IoCommand, IoCommandTx, IoShared, LinkState};
use feeds::rest::RestClient;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the control thread needs from the live engine.
pub struct ControllerConfig {
    /// The core's symbol table (fixed at start).
    pub symbols: SymbolTable,
    /// The venue section (streams per symbol, `trade`, exchangeInfo, REST URL).
    pub venue: crate::config::VenueSection,
    /// The strategy `start-trading` uses without `--strategy`, with the config's parameters.
    pub default_strategy: Option<(String, Params)>,
    /// Commands for the core (checked about once a millisecond by `Core::poll`).
    pub core: crossbeam_channel::Sender<Request>,
    /// Subscription changes for the I/O thread.
    pub io: IoCommandTx,
    /// The I/O thread's published state and counters per connection.
    pub shared: Arc<IoShared>,
    /// `(conn_id, url)` of each market-data connection, in `shared`'s slot order.
    pub feeds: Vec<(u32, String)>,
    /// The `[venue]` market-data connection (its symbols are listed under it in `status`).
    pub feed_conn_id: u32,
    /// Per symbol (by [`SymbolId`] index): the connection of its venue that carries its
    /// streams, and those streams ([`crate::venues::FeedPlan::symbol_feeds`]).
    pub symbol_feeds: Vec<crate::venues::SymbolFeed>,
    /// Whether orders go to the venue (`true`) or the paper venue.
    pub live_orders: bool,
    /// How long to wait for the core's answer.
    pub reply_timeout: Duration,
    /// The engine is stopping: stop waiting for the core.
    pub stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for ControllerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerConfig")
            .field("symbols", &self.symbols)
            .field("feeds", &self.feeds)
            .finish_non_exhaustive()
    }
}

/// Applies control requests: validates them, prepares everything off the core (strategy,
/// filters, subscriptions), hands the core its command and turns its answer into a reply.
pub struct Controller {
    cfg: ControllerConfig,
    rest: Option<RestClient>,
    /// Streams of the symbol are subscribed (by the start-up connection or by this controller).
    subscribed: Vec<bool>,
    /// Stopped symbols whose streams stay subscribed until their last open order is gone (the
    /// paper venue answers a cancel on the symbol's next market event).
    unsubscribe_later: Vec<bool>,
    started: Instant,
    /// The server's counts, endpoint and kind of authentication, for `status`.
    pub(super) stats: Option<(Arc<ControlStats>, String, &'static str)>,
}

/// The way to the core: what `kill` and `halt` use without the controller's lock.
#[derive(Clone)]
pub(super) struct CoreLink {
    core: crossbeam_channel::Sender<Request>,
    reply_timeout: Duration,
    stop: Arc<AtomicBool>,
}

impl CoreLink {
    /// Sends `command` to the core and waits for its answer.
    fn ask(&self, command: Command) -> Result<Reply, String> {
        if self.stop.load(Ordering::Relaxed) {
            return Err("the engine is stopping".into());
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let timeout = self.reply_timeout;
        self.core
            .send_timeout(Request { command, reply: tx }, timeout)
            .map_err(|e| match e {
                crossbeam_channel::SendTimeoutError::Timeout(_) => format!(
                    "the core's control queue stayed full for {:.1} s; nothing was sent",
                    timeout.as_secs_f64()
                ),
                crossbeam_channel::SendTimeoutError::Disconnected(_) => {
                    "the core has stopped".to_string()
                }
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(STOP_CHECK) {
                Ok(r) => return Ok(r),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err("the core dropped the command without an answer".into())
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(
                            "the engine is stopping; the command may not have been applied".into(),
                        );
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "no answer from the core within {:.1} s (control.reply_timeout_ms); the command may still be applied: check `tickline ctl status`",
                            timeout.as_secs_f64()
                        ));
                    }
                }
            }
        }
    }

    /// A command whose answer is a message (halt, resume, kill, set) as its reply object.
    pub(super) fn simple(&self, command: Command) -> Result<Value, String> {
        match self.ask(command)? {
            Reply::Done(m) => Ok(done_reply(m, Vec::new())),
            Reply::Refused(why) => Err(why),
            Reply::Status(_) => Err("the core answered with a status".into()),
        }
    }
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("cfg", &self.cfg)
            .field("subscribed", &self.subscribed)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller for the engine described by `cfg`.
    pub fn new(cfg: ControllerConfig) -> Controller {
        let subscribed = cfg
            .symbols
            .iter()
            .map(|(id, _)| cfg.symbol_feeds.get(id.index()).is_some_and(|f| f.at_start))
            .collect();
        let rest = cfg
            .venue
            .exchange_info
            .then(|| RestClient::new(&cfg.venue.rest_url, Duration::from_secs(5)));
        let n = cfg.symbols.len();
        Controller {
            cfg,
            rest,
            subscribed,
            unsubscribe_later: vec![false; n],
            started: Instant::now(),
            stats: None,
        }
    }

    pub(super) fn link(&self) -> CoreLink {
        CoreLink {
            core: self.cfg.core.clone(),
            reply_timeout: self.cfg.reply_timeout,
            stop: self.cfg.stop.clone(),
        }
    }

    /// Unsubscribes stopped symbols whose last open order has gone (called by the control thread
    /// about once a second; asks the core only while such a symbol waits).
    pub fn housekeeping(&mut self) {
        if !self.unsubscribe_later.contains(&true) {
            return;
        }
        let Ok(Reply::Status(core)) = self.ask(Command::Status) else {
            return;
        };
        for (i, s) in core.symbols.iter().enumerate() {
            if i < self.unsubscribe_later.len() && self.unsubscribe_later[i] {
                if s.trading {
                    self.unsubscribe_later[i] = false;
                } else if s.open_orders == 0 {
                    self.unsubscribe_later[i] = false;
                    let (conn_id, streams) = self.streams_of(SymbolId(i as u32));
                    if self
                        .io(IoCommand::Unsubscribe {
                            conn_id,
                            streams: streams.clone(),
                        })
                        .is_ok()
                    {
                        self.subscribed[i] = false;
                        tracing::info!(
                            target: "tickline::control",
                            symbol = %s.symbol,
                            streams = %streams.join(", "),
                            "its last open order is gone; unsubscribed"
                        );
                    }
                }
            }
        }
    }

    /// Open orders of `id`, from the core.
    fn open_orders(&self, id: SymbolId) -> Result<usize, String> {
        match self.ask(Command::Status)? {
            Reply::Status(core) => Ok(core.symbols.get(id.index()).map_or(0, |s| s.open_orders)),
            Reply::Done(m) | Reply::Refused(m) => Err(m),
        }
    }

    /// Applies one request and returns its reply object.
    pub fn handle(&mut self, req: &CtlRequest) -> Value {
        let r = match req {
            CtlRequest::Status => self.status(),
            CtlRequest::StartTrading {
                symbol,
                strategy,
                chunks,
                params,
            } => self.start_trading(symbol, strategy.as_deref(), *chunks, params),
            CtlRequest::StopTrading { symbol } => self.stop_trading(symbol),
            CtlRequest::Set { symbol, params } => self.set(symbol, params),
            CtlRequest::Halt => self.simple(Command::Halt),
            CtlRequest::Resume => self.simple(Command::Resume),
            CtlRequest::Kill => self.simple(Command::Kill),
            CtlRequest::Deploy(d) => self.deploy(d),
            CtlRequest::Undeploy { symbol } => self.undeploy(symbol),
        };
        r.unwrap_or_else(|why| error_reply(&why, None))
    }

    /// The connection of `id`'s venue that carries its streams, and those streams.
    fn streams_of(&self, id: SymbolId) -> (u32, Vec<String>) {
        match self.cfg.symbol_feeds.get(id.index()) {
            Some(f) => (f.conn_id, f.streams.clone()),
            None => (self.cfg.feed_conn_id, Vec::new()),
        }
    }

    fn symbol(&self, name: &str) -> Result<SymbolId, String> {
        if name.contains(':')
            || self
                .cfg
                .symbols
                .iter_venues()
                .any(|(_, v, _)| v != engine::venue::Venue::Binance)
        {
            return crate::venues::resolve(&self.cfg.symbols, name);
        }
        self.cfg.symbols.lookup(name.as_bytes()).ok_or_else(|| {
            let known: Vec<&str> = self.cfg.symbols.iter().map(|(_, n)| n).collect();
            format!(
                "{} is not in venue.symbols ({}): add it to [venue] symbols in the config and restart the engine (the core's symbol table is fixed at start, so nothing allocates per event)",
                name.to_ascii_uppercase(),
                known.join(", ")
            )
        })
    }

    /// Sends `command` to the core and waits for its answer.
    fn ask(&self, command: Command) -> Result<Reply, String> {
        self.link().ask(command)
    }

    pub(super) fn simple(&self, command: Command) -> Result<Value, String> {
        self.link().simple(command)
    }

    fn io(&self, cmd: IoCommand) -> Result<(), String> {
        self.cfg.io.send(cmd).map_err(|e| e.to_string())
    }

    fn start_trading(
        &mut self,
        symbol: &str,
        strategy: Option<&str>,
        chunks: Option<u64>,
        params: &[(String, String)],
    ) -> Result<Value, String> {
        let id = self.symbol(symbol)?;
        let name = self.cfg.symbols.name(id).unwrap_or(symbol).to_string();
        let warnings = Vec::new();
        // 1. The strategy, whole, before anything changes.
        let (strategy_name, base) = match (strategy, &self.cfg.default_strategy) {
            (Some(s), Some((d, p))) if s == d => (s.to_string(), p.clone()),
            (Some(s), _) => (s.to_string(), Params::default()),
            (None, Some((d, p))) => (d.clone(), p.clone()),
            (None, None) => {
                return Err(format!(
                    "start-trading {name}: no strategy given and this engine has no default one (the config says [strategy] name = \"none\"): pass --strategy NAME ({})",
                    strategies::NAMES.join(", ")
                ))
            }
        };
        let mut extra: Vec<(String, String)> = params.to_vec();
        if let Some(c) = chunks {
            extra.retain(|(k, _)| k != "chunks");
            extra.push(("chunks".into(), c.to_string()));
        }
        let all = base.merged(&Params::new(extra));
        let built = strategies::build(&strategy_name, all).map_err(|e| {
            format!("start-trading {name}: strategy `{strategy_name}`: {e}; nothing changed")
        })?;
        self.install(id, &name, built, warnings)
    }

    /// Steps 2 to 4 of `start-trading` (and `deploy`): the symbol's filters, its streams, and
    /// the built strategy handed to the core (the subscription undone if the core refuses).
    fn install(
        &mut self,
        id: SymbolId,
        name: &str,
        built: Box<dyn engine::strategy::Strategy>,
        mut warnings: Vec<String>,
    ) -> Result<Value, String> {
        let name = name.to_string();
        // 2. The symbol's filters.
        // exchangeInfo is Binance spot's: other venues' symbols keep their rules.
        let binance = self.cfg.symbols.venue(id) == Some(engine::venue::Venue::Binance);
        let rules: Option<SymbolRules> = match &self.rest {
            _ if !binance => None,
            None => None,
            Some(rest) => match rest.exchange_info(&[name.as_str()]) {
                Ok(info) => {
                    let found = info
                        .into_iter()
                        .find(|i| i.symbol.eq_ignore_ascii_case(&name))
                        .map(|i| i.rules);
                    if found.is_none() {
                        warnings.push(format!(
                            "exchangeInfo has no {name}; keeping its current filters (from start-up, or the defaults: tick 0.01, lot 0.00001, min notional 5)"
                        ));
                    }
                    found
                }
                Err(e) => {
                    warnings.push(format!(
                        "exchangeInfo failed ({e}); keeping {name}'s current filters (from start-up, or the defaults: tick 0.01, lot 0.00001, min notional 5)"
                    ));
                    None
                }
            },
        };
        // 3. Its streams, unless already subscribed (an undo then removes only what this did).
        let (conn_id, streams) = self.streams_of(id);
        let subscribed_now = !self.subscribed[id.index()];
        self.unsubscribe_later[id.index()] = false;
        if subscribed_now {
            self.io(IoCommand::Subscribe {
                conn_id,
                streams: streams.clone(),
            })?;
            self.subscribed[id.index()] = true;
        }
        // 4. The core.
        let undo = |me: &mut Controller| {
            if subscribed_now {
                let _ = me.io(IoCommand::Unsubscribe {
                    conn_id,
                    streams: streams.clone(),
                });
                me.subscribed[id.index()] = false;
            }
        };
        let reply = self.ask(Command::StartTrading {
            symbol: id,
            strategy: built,
            rules,
        });
        match reply {
            Ok(Reply::Done(m)) => {
                let mut message = m;
                if subscribed_now {
                    message.push_str(&format!("; subscribed {}", streams.join(", ")));
                }
                Ok(done_reply(message, warnings))
            }
            Ok(Reply::Refused(why)) => {
                undo(self);
                Err(why)
            }
            Ok(Reply::Status(_)) => {
                undo(self);
                Err("the core answered with a status".into())
            }
            // No answer: the core may still apply it, so the subscription stays.
            Err(why) => Err(why),
        }
    }

    /// `deploy`: validate, compile and start the module here (never on the core), then trade it
    /// like `start-trading`; on a trading symbol only with `replace` (its strategy is stopped
    /// first, its orders canceled). A refusal changes nothing.
    fn deploy(&mut self, d: &super::protocol::DeployRequest) -> Result<Value, String> {
        let id = self.symbol(&d.symbol)?;
        let name = self.cfg.symbols.name(id).unwrap_or(&d.symbol).to_string();
        let refuse = |why: String| format!("deploy {name}: {why}; nothing changed");
        let mut pairs = d.params.clone();
        for (k, v) in [("fuel", d.fuel), ("memory_mb", d.memory_mb)] {
            if let Some(v) = v {
                pairs.retain(|(key, _)| key != k);
                pairs.push((k.to_string(), v.to_string()));
            }
        }
        let cfg = wasm_host::DeployConfig::from_pairs(&pairs).map_err(|e| refuse(e.to_string()))?;
        let started = Instant::now();
        let module = wasm_host::WasmModule::compile(&d.name, &d.wasm).map_err(refuse)?;
        let compiled = started.elapsed();
        let strategy = wasm_host::WasmStrategy::deploy(module, cfg).map_err(refuse)?;
        let ready = started.elapsed();
        let current = match self.ask(Command::Status)? {
            Reply::Status(core) => core
                .symbols
                .get(id.index())
                .and_then(|s| s.strategy.clone()),
            Reply::Done(m) | Reply::Refused(m) => return Err(m),
        };
        let mut replaced = None;
        if let Some(old) = current {
            if !d.replace {
                return Err(refuse(format!(
                    "{name} already trades `{old}`: pass --replace to cancel its orders and swap the module in"
                )));
            }
            replaced = match self.ask(Command::StopTrading { symbol: id })? {
                Reply::Done(m) => Some(m),
                Reply::Refused(why) => return Err(refuse(why)),
                Reply::Status(_) => return Err("the core answered with a status".into()),
            };
        }
        let stats = strategy.stats();
        let (fuel, mem) = (strategy.config().fuel, strategy.config().memory_bytes >> 20);
        let bytes = d.wasm.len();
        let mut reply = self.install(id, &name, Box::new(strategy), Vec::new())?;
        crate::wasm::register(&name, stats);
        let mut what = format!(
            "; module {} ({bytes} bytes) validated and compiled in {:.1} ms, started in {:.1} ms; fuel {fuel} per callback, memory cap {mem} MiB",
            d.name,
            compiled.as_secs_f64() * 1e3,
            (ready - compiled).as_secs_f64() * 1e3,
        );
        if let Some(r) = replaced {
            what.push_str(&format!("; replaced: {r}"));
        }
        if let Some(m) = reply["message"].as_str() {
            reply["message"] = Value::String(format!("{m}{what}"));
        }
        Ok(reply)
    }

    /// `undeploy`: `stop-trading` for a symbol whose strategy is a WebAssembly one.
    fn undeploy(&mut self, symbol: &str) -> Result<Value, String> {
        let id = self.symbol(symbol)?;
        let name = self.cfg.symbols.name(id).unwrap_or(symbol).to_string();
        let current = match self.ask(Command::Status)? {
            Reply::Status(core) => core
                .symbols
                .get(id.index())
                .and_then(|s| s.strategy.clone()),
            Reply::Done(m) | Reply::Refused(m) => return Err(m),
        };
        match current.as_deref() {
            Some("wasm") => {}
            Some(other) => {
                return Err(format!(
                    "undeploy {name}: it trades the native `{other}`, not a wasm module: use stop-trading"
                ))
            }
            None => return Err(format!("undeploy {name}: {name} is not trading")),
        }
        self.stop_trading(symbol)
    }

    fn stop_trading(&mut self, symbol: &str) -> Result<Value, String> {
        let id = self.symbol(symbol)?;
        let name = self.cfg.symbols.name(id).unwrap_or(symbol).to_string();
        let mut message = match self.ask(Command::StopTrading { symbol: id })? {
            Reply::Done(m) => {
                crate::wasm::unregister(&name);
                m
            }
            Reply::Refused(why) => return Err(why),
            Reply::Status(_) => return Err("the core answered with a status".into()),
        };
        let mut warnings = Vec::new();
        let raw = self.cfg.symbol_feeds.get(id.index()).is_some_and(|f| f.raw);
        if self.subscribed[id.index()] && !raw {
            // The cancels need answers first: the paper venue gives them on the symbol's next
            // market events, so its streams stay until no order is open.
            let deadline = Instant::now() + self.cfg.reply_timeout;
            let mut open = self.open_orders(id)?;
            while open > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                open = self.open_orders(id)?;
            }
            let (conn_id, streams) = self.streams_of(id);
            if open == 0 {
                self.io(IoCommand::Unsubscribe {
                    conn_id,
                    streams: streams.clone(),
                })?;
                self.subscribed[id.index()] = false;
                message.push_str(&format!("; unsubscribed {}", streams.join(", ")));
            } else {
                self.unsubscribe_later[id.index()] = true;
                warnings.push(format!(
                    "{name}: {open} order(s) still open after {:.1} s; its streams stay subscribed until they are gone, then are unsubscribed",
                    self.cfg.reply_timeout.as_secs_f64()
                ));
            }
        }
        Ok(done_reply(message, warnings))
    }

    fn set(&mut self, symbol: &str, params: &[(String, String)]) -> Result<Value, String> {
        let id = self.symbol(symbol)?;
        if params.is_empty() {
            return Err("set: at least one KEY=VALUE".into());
        }
        self.simple(Command::Set {
            symbol: id,
            params: Params::new(params.iter().cloned()),
        })
    }

    fn status(&self) -> Result<Value, String> {
        let core = match self.ask(Command::Status)? {
            Reply::Status(s) => s,
            Reply::Done(m) | Reply::Refused(m) => return Err(m),
        };
        let mut tree = self.status_tree(&core);
        if let Some((stats, endpoint, auth)) = &self.stats {
            tree["control"] = stats.to_json(endpoint, auth);
        }
        Ok(json!({"ok": true, "status": tree}))
    }

    fn status_tree(&self, core: &CoreStatus) -> Value {
        // The core lists its symbols in id order.
        let symbols: Vec<Value> = core
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| symbol_json(s, self.subscribed.get(i).copied().unwrap_or(false)))
            .collect();
        let connections: Vec<Value> = self
            .cfg
            .feeds
            .iter()
            .enumerate()
            .map(|(i, (conn_id, url))| {
                let c = self.cfg.shared.counters(i).unwrap_or_default();
                let state = match self.cfg.shared.state(i) {
                    Some(LinkState::Waiting) => "waiting",
                    Some(LinkState::Connecting) => "connecting",
                    Some(LinkState::Open) => "open",
                    Some(LinkState::Dead) | None => "dead",
                };
                let mut v = json!({
                    "conn_id": conn_id,
                    "kind": "market data",
                    "url": url.split('?').next().unwrap_or(url),
                    "state": state,
                    "frames": c.frames,
                    "events": c.events,
                    "decode_errors": c.decode_errors,
                    "connects": c.connects,
                    "disconnects": c.disconnects,
                    "reconnect_attempts": c.reconnect_attempts,
                });
                // Each symbol under the connection of its venue that carries it.
                let mine: Vec<Value> = symbols
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| {
                        self.cfg
                            .symbol_feeds
                            .get(*i)
                            .map_or(*conn_id == self.cfg.feed_conn_id, |f| f.conn_id == *conn_id)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                if !mine.is_empty() || *conn_id == self.cfg.feed_conn_id {
                    v["symbols"] = Value::Array(mine);
                }
                v
            })
            .collect();
        json!({
            "engine": {
                "pid": std::process::id(),
                "uptime_s": self.started.elapsed().as_secs_f64(),
                "trading_state": core.trading_state,
                "orders_to": if self.cfg.live_orders { "venue" } else { "paper" },
                "events": core.events,
                "orders": core.orders,
                "fills": core.fills,
                "trader_restarts": core.trader_restarts,
                "symbol_halts": core.symbol_halts,
                "ring_dropped": self.cfg.shared.ring_dropped(),
            },
            "order_session": order_session_json(&self.cfg),
            "connections": connections,
        })
    }
}
