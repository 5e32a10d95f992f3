//! Runtime control of a running engine (`tickline run`): a control socket served on its own
//! thread, and the client that `tickline ctl` uses.
//!
//! ```text
//!  tickline ctl ──Unix socket (0600) or loopback TCP──▶ control thread ──crossbeam: Request──▶ core
//!                                                         │  ▲                                 │
//!                                                         │  └──────── bounded(1): Reply ◀─────┘
//!                                                         ├──mpsc: IoCommand (SUBSCRIBE / UNSUBSCRIBE)──▶ I/O thread
//!                                                         └──REST: exchangeInfo (the symbol's filters)
//! ```
//!
//! Nothing here runs on the core or the I/O thread. The control thread accepts connections and
//! gives each a small reader thread (at most [`MAX_CONNECTIONS`] at once); commands are applied
//! one at a time, in arrival order, under one lock. Everything that allocates or blocks (parsing,
//! building the strategy, the REST call, subscribing) happens on these threads; the core only
//! swaps a prepared strategy in or out when it checks its control channel, about once a
//! millisecond ([`engine::control`]). The core's symbol table is fixed at start, so only symbols
//! of `[venue] symbols` can ever trade; `[venue] trade` says which of them trade (and are
//! subscribed) from the start.
//!
//! # Endpoint
//!
//! `[control] socket = "tickline.sock"` (the default of `tickline run`, in its working
//! directory): a Unix socket made with mode 0600 (bound in a private directory, then linked into
//! place, so no other user can ever connect), removed when the engine stops. At start-up an
//! existing socket on which an engine answers refuses the start; a stale one (nobody answers) is
//! removed; anything else at the path refuses the start. Or `[control] tcp = "127.0.0.1:7070"`:
//! a loopback TCP port (a non-loopback address is refused).
//!
//! # Authentication
//!
//! The Unix socket relies on its mode 0600: only the engine's user can connect, and no token is
//! asked. Any local user can reach a TCP port, so TCP control needs a token: `[control]
//! token_file` (a file of mode 0600, nothing looser; its text, trimmed, at least
//! [`MIN_TOKEN_LEN`] bytes) or else the environment variable [`TOKEN_ENV`]. An engine with
//! `tcp` and no token refuses to start. Every request on TCP carries it in a `token` field
//! (`tickline ctl` adds it), compared in constant time ([`Token::matches`]); a missing or wrong
//! token is answered with an error and the connection is closed. The token is never printed,
//! echoed or put in `status`.
//!
//! # Abuse limits
//!
//! - A line is at most [`MAX_LINE`] bytes (a longer one is refused before more is buffered) and
//!   must be complete within [`LINE_DEADLINE`] of its first byte; a connection that sends no
//!   request for [`IDLE_CLOSE`] is closed (on TCP, the first request must start within
//!   [`LINE_DEADLINE`] of connecting).
//! - The first line that is not a valid request (not JSON, an unknown command or field, a
//!   missing or wrong token, or anything that looks like HTTP: `POST / HTTP/1.1`, …) is
//!   answered with an error and closes the connection, so a browser or `curl` that reaches the
//!   port cannot smuggle a command in a request body.
//! - At most [`MAX_CONNECTIONS`] connections are served at once. Beyond them,
//!   [`PRIORITY_SLOTS`] more are accepted for one line each (within [`LINE_DEADLINE`] of
//!   connecting): a `kill` or `halt` is served, anything else refused. `kill` and `halt` go
//!   straight to the core, never waiting behind another connection's command. Further
//!   connections are refused at once. Refusals and timeouts are counted in `status`
//!   (`status.control`).
//! - The core takes at most 16 commands a millisecond from its bounded queue, so a flood of
//!   commands cannot delay its market work.
//! - Without any socket, `SIGUSR1` to `tickline run` is the kill switch (the same core command
//!   as `kill`).
//!
//! # Protocol
//!
//! One JSON object per line (UTF-8, `\n`-terminated, at most [`MAX_LINE`] bytes) in each
//! direction; a connection may send any number of requests and gets one reply line for each, in
//! order. A request names its command in `cmd`; unknown commands and unknown fields are refused,
//! naming them, and close the connection. An optional `id` (any JSON value) is echoed in the
//! reply. On TCP every request also carries the token: `{"cmd":"status","token":"…"}` (on the
//! Unix socket a `token` field is ignored). `kill` and `halt` are applied at once; the other
//! commands one at a time, in arrival order.
//!
//! | request | effect |
//! |---|---|
//! | `{"cmd":"status"}` | the status tree |
//! | `{"cmd":"start-trading","symbol":"ETHUSDT","strategy":"naive","chunks":3,"params":{"profit_interval":"0.002"}}` | subscribe the symbol's streams, fetch its filters, build the strategy (`strategy`, `chunks`, `params` optional), start it |
//! | `{"cmd":"stop-trading","symbol":"ETHUSDT"}` | cancel the symbol's open orders, stop its strategy, unsubscribe its streams |
//! | `{"cmd":"set","symbol":"ETHUSDT","params":{"profit_interval":"0.002"}}` | change strategy parameters, all or none |
//! | `{"cmd":"halt"}`, `{"cmd":"resume"}`, `{"cmd":"kill"}` | trading state HALTED / ACTIVE / kill switch |
//!
//! Parameter values may be strings, numbers or booleans (handed to the strategy as text).
//! Without `strategy`, `start-trading` uses the config's `[strategy]` with its
//! `[strategy.params]` under the request's `params`; with another strategy, only the request's
//! `params`. `chunks` is the strategy's `chunks` parameter.
//!
//! Replies:
//!
//! ```text
//! {"ok":true,"message":"ETHUSDT: trading `naive`; subscribed ethusdt@trade, ethusdt@bookTicker","warnings":[]}
//! {"ok":false,"error":"DOGEUSDT is not in venue.symbols (BTCUSDT, ETHUSDT): add it to [venue] symbols and restart the engine (its symbol table is fixed at start)"}
//! {"ok":true,"status":{"engine":{..},"connections":[{..,"symbols":[{..,"leader":{..,"traders":[..]}}]}]}}
//! ```
//!
//! A refused command changes nothing: `start-trading` builds the strategy before it subscribes
//! anything, and undoes its subscription if the core refuses. The core's answer is awaited for
//! `[control] reply_timeout_ms` (5 s); a timeout is reported as such (the command may still be
//! applied: check `status`).
//!
//! # Example
//!
//! ```no_run
//! use tools::control::{request, CtlRequest, Endpoint};
//! let reply = request(
//!     &Endpoint::Unix("tickline.sock".into()),
//!     &CtlRequest::Halt,
//!     std::time::Duration::from_secs(30),
//! )?;
//! assert_eq!(reply["ok"], true);
//! # anyhow::Ok(())
//! ```

use anyhow::{bail, Context, Result};
use engine::control::{Command, CoreStatus, LeaderStatus, Reply, Request, SymbolStatus};
use engine::strategy::{Params, SymbolRules};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::io::{IoCommand, IoShared, LinkState};
use feeds::rest::RestClient;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest request or reply line, bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// Control connections served at once; beyond them only `kill` and `halt` are served, on
/// [`PRIORITY_SLOTS`].
pub const MAX_CONNECTIONS: usize = 8;

/// Connections accepted beyond [`MAX_CONNECTIONS`] for one `kill` or `halt` each (anything else
/// is refused); more than that are refused at once.
pub const PRIORITY_SLOTS: usize = 2;

/// A request line must be complete this long after its first byte; on TCP the first request
/// must start this long after connecting, and on a reserved slot its one line must be complete
/// this long after connecting.
pub const LINE_DEADLINE: Duration = Duration::from_secs(2);

/// A connection that sends no request for this long is closed.
pub const IDLE_CLOSE: Duration = Duration::from_secs(30);

/// The environment variable that holds the TCP control token when `[control] token_file` is
/// not set (read by `tickline run` and by `tickline ctl`).
pub const TOKEN_ENV: &str = "TICKLINE_CONTROL_TOKEN";

/// Shortest accepted token, bytes (for example `openssl rand -hex 32` makes 64).
pub const MIN_TOKEN_LEN: usize = 16;

/// Longest accepted token file, bytes.
const MAX_TOKEN_FILE: u64 = 4096;

/// How often blocked control threads look at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Where the control socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// Parses `HOST:PORT` and insists on a loopback address (`127.0.0.1`, `[::1]`, or a name that
/// resolves to loopback only, such as `localhost`).
pub fn loopback_addr(s: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = match s.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        Err(_) => {
            if s.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                bail!("{s:?}: expected HOST:PORT, such as 127.0.0.1:7070");
            }
            s.to_socket_addrs()
                .with_context(|| format!("{s:?}: cannot resolve"))?
                .collect()
        }
    };
    match addrs.first() {
        Some(a) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*a),
        Some(_) => bail!(
            "{s:?}: not a loopback address; TCP control is served on 127.0.0.1 or [::1] only (its token would cross the network in clear)"
        ),
        None => bail!("{s:?}: resolves to no address"),
    }
}

/// Parses `KEY=VALUE` (both trimmed, the key non-empty).
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

/// The shared secret of TCP control. Its text is never printed: `Debug` shows `Token(..)`, it
/// has no `Display`, and no error message quotes it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from `text` (trimmed); `origin` names where it came from in errors.
    pub fn new(text: &str, origin: &str) -> Result<Token> {
        let t = text.trim();
        if t.is_empty() {
            bail!("{origin}: the control token is empty");
        }
        if t.len() < MIN_TOKEN_LEN {
            bail!(
                "{origin}: the control token is {} bytes; at least {MIN_TOKEN_LEN} (for example `openssl rand -hex 32`)",
                t.len()
            );
        }
        if t.chars().any(char::is_control) {
            bail!(
                "{origin}: the control token holds a control character (one line of text, please)"
            );
        }
        Ok(Token(t.to_string()))
    }

    /// Reads a token file, which must be a regular file of mode 0600 or stricter (no group or
    /// other bits): a looser one is refused, naming its mode.
    pub fn from_file(path: &Path) -> Result<Token> {
        let shown = format!("control.token_file {}", path.display());
        let file = std::fs::File::open(path).with_context(|| shown.clone())?;
        let meta = file.metadata().with_context(|| shown.clone())?;
        if !meta.is_file() {
            bail!("{shown}: not a regular file");
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            bail!(
                "{shown}: mode {mode:04o} lets other users read it; `chmod 600` it (the token guards the kill switch)"
            );
        }
        let mut bytes = Vec::new();
        file.take(MAX_TOKEN_FILE + 1)
            .read_to_end(&mut bytes)
            .with_context(|| shown.clone())?;
        if bytes.len() as u64 > MAX_TOKEN_FILE {
            bail!("{shown}: longer than {MAX_TOKEN_FILE} bytes; a token file holds one token");
        }
        let text =
            String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown}: not UTF-8 text"))?;
        Token::new(&text, &shown)
    }

    /// The token in the environment variable [`TOKEN_ENV`], if set.
    pub fn from_env() -> Result<Option<Token>> {
        match std::env::var(TOKEN_ENV) {
            Ok(v) => Token::new(&v, TOKEN_ENV).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV}: not UTF-8 text"),
        }
    }

    /// Whether `candidate` is this token, in time that depends on the token's length only (not
    /// on where the first differing byte is).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }
}

/// `secret == candidate`, looking at every byte of `secret` whatever differs: the time depends
/// on `secret.len()` only (the candidate's length is its sender's own knowledge).
pub fn constant_time_eq(secret: &[u8], candidate: &[u8]) -> bool {
    let mut diff = secret.len() ^ candidate.len();
    for (i, &s) in secret.iter().enumerate() {
        let c = candidate.get(i).copied().unwrap_or(!s);
        diff |= usize::from(std::hint::black_box(s ^ c));
    }
    std::hint::black_box(diff) == 0
}

/// Whether a request line looks like HTTP (a request line, or any line naming `HTTP/1.` or
/// HTTP/2's preface): such a connection is refused and closed.
pub fn looks_like_http(line: &[u8]) -> bool {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"OPTIONS ",
        b"DELETE ",
        b"CONNECT ",
        b"PATCH ",
        b"TRACE ",
        b"PRI * ",
    ];
    METHODS.iter().any(|m| line.starts_with(m))
        || line.windows(7).any(|w| w == b"HTTP/1.")
        || line.windows(6).any(|w| w == b"HTTP/2")
}

/// A control request, as `tickline ctl` sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlRequest {
    /// The status tree.
    Status,
    /// Start trading a symbol.
    StartTrading {
        /// The symbol (any case).
        symbol: String,
        /// The strategy (default: the config's).
        strategy: Option<String>,
        /// Its `chunks` parameter.
        chunks: Option<u64>,
        /// Further `key = value` parameters.
        params: Vec<(String, String)>,
    },
    /// Stop trading a symbol.
    StopTrading {
        /// The symbol.
        symbol: String,
    },
    /// Change a running strategy's parameters.
    Set {
        /// The symbol.
        symbol: String,
        /// `key = value` pairs.
        params: Vec<(String, String)>,
    },
    /// Trading state HALTED.
    Halt,
    /// Trading state ACTIVE.
    Resume,
    /// The kill switch.
    Kill,
}

/// The command names, as the protocol spells them.
pub const COMMANDS: &[&str] = &[
    "status",
    "start-trading",
    "stop-trading",
    "set",
    "halt",
    "resume",
    "kill",
];

fn params_json(params: &[(String, String)]) -> Value {
    Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

impl CtlRequest {
    /// The request as its JSON object.
    pub fn to_json(&self) -> Value {
        match self {
            CtlRequest::Status => json!({"cmd": "status"}),
            CtlRequest::StartTrading {
                symbol,
                strategy,
                chunks,
                params,
            } => {
                let mut m = Map::new();
                m.insert("cmd".into(), "start-trading".into());
                m.insert("symbol".into(), symbol.as_str().into());
                if let Some(s) = strategy {
                    m.insert("strategy".into(), s.as_str().into());
                }
                if let Some(c) = chunks {
                    m.insert("chunks".into(), (*c).into());
                }
                if !params.is_empty() {
                    m.insert("params".into(), params_json(params));
                }
                Value::Object(m)
            }
            CtlRequest::StopTrading { symbol } => {
                json!({"cmd": "stop-trading", "symbol": symbol})
            }
            CtlRequest::Set { symbol, params } => {
                json!({"cmd": "set", "symbol": symbol, "params": params_json(params)})
            }
            CtlRequest::Halt => json!({"cmd": "halt"}),
            CtlRequest::Resume => json!({"cmd": "resume"}),
            CtlRequest::Kill => json!({"cmd": "kill"}),
        }
    }

    /// Parses a request object; the error says what is wrong in words.
    pub fn from_json(v: &Value) -> Result<CtlRequest, String> {
        let Some(obj) = v.as_object() else {
            return Err("a request is a JSON object, such as {\"cmd\":\"status\"}".into());
        };
        let cmd = match obj.get("cmd") {
            Some(Value::String(c)) => c.as_str(),
            Some(_) => return Err("`cmd` must be a string".into()),
            None => return Err(format!("missing `cmd`: one of {}", COMMANDS.join(", "))),
        };
        let allowed: &[&str] = match cmd {
            "status" | "halt" | "resume" | "kill" => &[],
            "start-trading" => &["symbol", "strategy", "chunks", "params"],
            "stop-trading" => &["symbol"],
            "set" => &["symbol", "params"],
            other => {
                return Err(format!(
                    "unknown command `{other}`: expected one of {}",
                    COMMANDS.join(", ")
                ))
            }
        };
        for k in obj.keys() {
            if k != "cmd" && k != "id" && !allowed.contains(&k.as_str()) {
                return Err(if allowed.is_empty() {
                    format!("unknown field `{k}`: {cmd} takes none")
                } else {
                    format!(
                        "unknown field `{k}` for {cmd}: expected {}",
                        allowed.join(", ")
                    )
                });
            }
        }
        let symbol = || -> Result<String, String> {
            match obj.get("symbol") {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.to_ascii_uppercase()),
                Some(_) => Err(format!("{cmd}: `symbol` must be a non-empty string")),
                None => Err(format!("{cmd}: missing `symbol`")),
            }
        };
        let params = || -> Result<Vec<(String, String)>, String> {
            let Some(p) = obj.get("params") else {
                return Ok(Vec::new());
            };
            let Some(p) = p.as_object() else {
                return Err(format!(
                    "{cmd}: `params` must be an object of KEY: VALUE, such as {{\"chunks\": 3}}"
                ));
            };
            p.iter()
                .map(|(k, v)| {
                    if k.trim().is_empty() {
                        return Err(format!("{cmd}: a parameter with an empty name"));
                    }
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(format!(
                                "{cmd}: parameter `{k}`: a string, number or boolean"
                            ))
                        }
                    };
                    Ok((k.clone(), text))
                })
                .collect()
        };
        Ok(match cmd {
            "status" => CtlRequest::Status,
            "halt" => CtlRequest::Halt,
            "resume" => CtlRequest::Resume,
            "kill" => CtlRequest::Kill,
            "stop-trading" => CtlRequest::StopTrading { symbol: symbol()? },
            "set" => {
                let params = params()?;
                if params.is_empty() {
                    return Err("set: at least one parameter, KEY=VALUE".into());
                }
                CtlRequest::Set {
                    symbol: symbol()?,
                    params,
                }
            }
            _ => CtlRequest::StartTrading {
                symbol: symbol()?,
                strategy: match obj.get("strategy") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err("start-trading: `strategy` must be a string".into()),
                },
                chunks: match obj.get("chunks") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().filter(|&c| c > 0).ok_or_else(|| {
                        format!("start-trading: `chunks` = {v}: expected a positive integer")
                    })?),
                },
                params: params()?,
            },
        })
    }
}

/// Sends one request and returns the reply object (`{"ok":..}`), waiting at most `timeout`
/// for it. Connection failures name the endpoint and say what is likely wrong.
pub fn request(endpoint: &Endpoint, req: &CtlRequest, timeout: Duration) -> Result<Value> {
    request_with_token(endpoint, req, None, timeout)
}

/// [`request`] with the TCP control token (added to the request as its `token` field).
pub fn request_with_token(
    endpoint: &Endpoint,
    req: &CtlRequest,
    token: Option<&Token>,
    timeout: Duration,
) -> Result<Value> {
    let mut stream = connect(endpoint)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut v = req.to_json();
    if let (Some(t), Some(obj)) = (token, v.as_object_mut()) {
        obj.insert("token".into(), Value::String(t.0.clone()));
    }
    let mut line = v.to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .with_context(|| format!("sending to the control socket {endpoint}"))?;
    let mut lines = LineReader::default();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = lines.next_line().map_err(anyhow::Error::msg)? {
            return serde_json::from_slice(&l)
                .with_context(|| format!("a reply from {endpoint} that is not JSON"));
        }
        match lines.fill(&mut stream) {
            Ok(0) => {
                bail!("the engine closed the control connection ({endpoint}) without an answer")
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                if Instant::now() >= deadline {
                    bail!(
                        "no answer from the engine on {endpoint} within {:.1} s",
                        timeout.as_secs_f64()
                    );
                }
            }
            Err(e) => return Err(e).with_context(|| format!("reading from {endpoint}")),
        }
    }
}

fn connect(endpoint: &Endpoint) -> Result<Stream> {
    use std::io::ErrorKind;
    match endpoint {
        Endpoint::Unix(path) => match UnixStream::connect(path) {
            Ok(s) => Ok(Stream::Unix(s)),
            Err(e) => Err(match e.kind() {
                ErrorKind::NotFound => anyhow::anyhow!(
                    "no control socket at {}: is `tickline run` running (in that directory, with this [control] config)? Give the path with --socket, or --config the engine's config",
                    path.display()
                ),
                ErrorKind::ConnectionRefused => anyhow::anyhow!(
                    "nothing answers on the control socket {}: the engine that made it is gone (a stale socket; the next `tickline run` removes it)",
                    path.display()
                ),
                ErrorKind::PermissionDenied => anyhow::anyhow!(
                    "permission denied on the control socket {} (mode 0600: run as the engine's user)",
                    path.display()
                ),
                _ => anyhow::anyhow!("connecting to the control socket {}: {e}", path.display()),
            }),
        },
        Endpoint::Tcp(addr) => match TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => bail!(
                "no engine answers on control port {addr}: is `tickline run` running with [control] tcp = \"{addr}\"?"
            ),
            Err(e) => Err(e).with_context(|| format!("connecting to the control port {addr}")),
        },
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A connected control socket of either kind.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }

    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Tcp(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes; survives read timeouts
/// (what was read stays buffered).
#[derive(Default)]
struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    /// The next complete line (without its `\n`), if buffered; an error if a line is too long.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, String> {
        // A newline past MAX_LINE ends a line that is already too long.
        let scan = &self.buf[..self.buf.len().min(MAX_LINE + 1)];
        if let Some(i) = scan.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
        if self.buf.len() > MAX_LINE {
            return Err(format!("a line longer than {MAX_LINE} bytes"));
        }
        Ok(None)
    }

    fn fill(&mut self, r: &mut impl Read) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = r.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

/// Removes the socket file at exit, if it is still the one this engine made.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

enum Listener {
    Unix {
        listener: UnixListener,
        /// Removes the socket file when dropped.
        _file: SocketFile,
    },
    Tcp(TcpListener),
}

/// Counts of the control server, shown in `status` as `control`.
#[derive(Debug, Default)]
pub struct ControlStats {
    accepted: AtomicU64,
    open: AtomicUsize,
    refused_busy: AtomicU64,
    refused_auth: AtomicU64,
    refused_protocol: AtomicU64,
    timed_out: AtomicU64,
    priority_served: AtomicU64,
}

impl ControlStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts as the `control` object of the status tree.
    pub fn to_json(&self, endpoint: &str, auth: &str) -> Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "endpoint": endpoint,
            "auth": auth,
            "open": self.open.load(Ordering::Relaxed),
            "max_connections": MAX_CONNECTIONS,
            "accepted": n(&self.accepted),
            "refused_busy": n(&self.refused_busy),
            "refused_auth": n(&self.refused_auth),
            "refused_protocol": n(&self.refused_protocol),
            "timed_out": n(&self.timed_out),
            "priority_served": n(&self.priority_served),
        })
    }
}

/// A bound control socket, not yet served (bind it first thing, so a second engine on the same
/// socket stops before it touches the venue).
pub struct ControlServer {
    listener: Listener,
    endpoint: Endpoint,
    /// Required on every TCP request (always set for TCP).
    token: Option<Token>,
    stats: Arc<ControlStats>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What a connection's thread shares with the others.
struct ConnCtx {
    controller: Arc<Mutex<Controller>>,
    /// `kill` and `halt` go to the core through this, never waiting for the controller's lock.
    link: CoreLink,
    token: Option<Token>,
    stats: Arc<ControlStats>,
}

/// Which slot a connection holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    /// One of [`MAX_CONNECTIONS`]: any number of requests.
    Regular,
    /// Beyond them: one line, served only if it is `kill` or `halt`.
    Priority,
}

impl ControlServer {
    /// Binds `endpoint`: a Unix socket with mode 0600 (refused if an engine answers on the path,
    /// a stale socket removed), or a loopback TCP port, which needs `token` (refused without).
    /// A token given for a Unix socket is not used: its mode guards it.
    pub fn bind(endpoint: &Endpoint, token: Option<Token>) -> Result<ControlServer> {
        match endpoint {
            Endpoint::Unix(path) => {
                let (l, file) = bind_unix(path)?;
                l.set_nonblocking(true)?;
                Ok(ControlServer {
                    listener: Listener::Unix {
                        listener: l,
                        _file: file,
                    },
                    endpoint: endpoint.clone(),
                    token: None,
                    stats: Arc::default(),
                })
            }
            Endpoint::Tcp(addr) => {
                if !addr.ip().is_loopback() {
                    bail!("control.tcp {addr}: not a loopback address");
                }
                if token.is_none() {
                    bail!(
                        "control.tcp {addr}: TCP control needs a token (any local user can reach a TCP port): set [control] token_file = \"PATH\" (a file of mode 0600 holding it) or the environment variable {TOKEN_ENV}; or serve the Unix socket instead ([control] socket), which its mode 0600 guards"
                    );
                }
                let l = TcpListener::bind(addr).with_context(|| {
                    format!("control.tcp {addr}: cannot listen (another `tickline run` on it?)")
                })?;
                l.set_nonblocking(true)?;
                let local = l.local_addr()?;
                Ok(ControlServer {
                    listener: Listener::Tcp(l),
                    endpoint: Endpoint::Tcp(local),
                    token,
                    stats: Arc::default(),
                })
            }
        }
    }

    /// Where it listens (a TCP port 0 resolved to the port taken).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Serves `controller` on a thread named `tickline-control` until `stop` is set; the
    /// socket file is removed when the thread ends.
    pub fn spawn(self, controller: Controller, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("tickline-control".into())
            .spawn(move || self.serve(controller, &stop))
            .context("spawning the control thread")
    }

    fn accept(&self) -> std::io::Result<Stream> {
        match &self.listener {
            Listener::Unix { listener, .. } => listener.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
        }
    }

    fn serve(self, mut controller: Controller, stop: &Arc<AtomicBool>) {
        let auth = if self.token.is_some() {
            "token"
        } else {
            "unix socket mode 0600"
        };
        controller.stats = Some((self.stats.clone(), self.endpoint.to_string(), auth));
        let ctx = Arc::new(ConnCtx {
            link: controller.link(),
            controller: Arc::new(Mutex::new(controller)),
            token: self.token.clone(),
            stats: self.stats.clone(),
        });
        let priority_open = Arc::new(AtomicUsize::new(0));
        let mut handlers: Vec<JoinHandle<()>> = Vec::new();
        let mut next_housekeeping = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_housekeeping {
                next_housekeeping = Instant::now() + Duration::from_secs(1);
                // Never wait behind a command in progress: the next round will do.
                if let Ok(mut c) = ctx.controller.try_lock() {
                    c.housekeeping();
                }
            }
            match self.accept() {
                Ok(mut s) => {
                    handlers.retain(|h| !h.is_finished());
                    if s.set_nonblocking(false).is_err() {
                        continue;
                    }
                    ControlStats::bump(&self.stats.accepted);
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    let (slot, count) = if self.stats.open.load(Ordering::Relaxed) < MAX_CONNECTIONS
                    {
                        (Slot::Regular, &self.stats.open)
                    } else if priority_open.load(Ordering::Relaxed) < PRIORITY_SLOTS {
                        (Slot::Priority, &*priority_open)
                    } else {
                        ControlStats::bump(&self.stats.refused_busy);
                        let _ = write_reply(
                            &mut s,
                            &error_reply(&format!("too many control connections (at most {MAX_CONNECTIONS}, and {PRIORITY_SLOTS} more for kill and halt); send SIGUSR1 to the engine for the kill switch"), None),
                        );
                        continue;
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                    let (c, st, prio) = (ctx.clone(), stop.clone(), priority_open.clone());
                    let spawned = std::thread::Builder::new()
                        .name("tickline-control-conn".into())
                        .spawn(move || {
                            serve_connection(s, slot, &c, &st);
                            match slot {
                                Slot::Regular => c.stats.open.fetch_sub(1, Ordering::Relaxed),
                                Slot::Priority => prio.fetch_sub(1, Ordering::Relaxed),
                            };
                        });
                    match spawned {
                        Ok(h) => handlers.push(h),
                        Err(e) => {
                            count.fetch_sub(1, Ordering::Relaxed);
                            eprintln!("control: cannot serve a connection: {e}");
                        }
                    }
                }
                Err(e) if is_timeout(&e) => std::thread::sleep(STOP_CHECK / 2),
                Err(e) => {
                    eprintln!("control: accept failed: {e}");
                    std::thread::sleep(STOP_CHECK);
                }
            }
        }
        for h in handlers {
            let _ = h.join();
        }
        // Dropping `self` removes the socket file.
    }
}

static BIND_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Binds a Unix socket at `path` with mode 0600. The socket is made in a fresh 0700 directory
/// beside the path, set to 0600, then hard-linked into place, so it is never reachable with
/// looser permissions, and an existing file is never replaced.
fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile)> {
    use std::io::ErrorKind;
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => bail!(
            "control.socket {shown}: exists and is not a socket; move it away or set another [control] socket"
        ),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => bail!(
                "control.socket {shown}: a running engine answers on it (another `tickline run` in this directory?); stop it, or give this one another [control] socket"
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing the stale control socket {shown}"))?;
                eprintln!(
                    "control: removed the stale socket {shown} (left by an engine that did not stop cleanly)"
                );
            }
            Err(e) => bail!(
                "control.socket {shown}: exists, and checking whether an engine answers on it failed ({e}); remove it if none does"
            ),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => bail!("control.socket {shown}: {e}"),
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private = dir.join(format!(
        ".tl{}-{}",
        std::process::id(),
        BIND_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("control.socket {shown}: creating {}", private.display()))?;
    let tmp = private.join("s");
    let bound = (|| -> Result<UnixListener> {
        let l = UnixListener::bind(&tmp).map_err(|e| {
            anyhow::anyhow!(
                "control.socket {shown}: cannot bind ({e}); a Unix socket path must be shorter than about 100 bytes"
            )
        })?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("control.socket {shown}: setting mode 0600"))?;
        std::fs::hard_link(&tmp, path).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "control.socket {shown}: appeared while this engine started (another `tickline run`?)"
                )
            } else {
                anyhow::anyhow!("control.socket {shown}: {e}")
            }
        })?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    let l = bound?;
    let m = std::fs::symlink_metadata(path).with_context(|| format!("control.socket {shown}"))?;
    Ok((
        l,
        SocketFile {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

/// How often a connection's thread wakes to check its deadlines and the stop flag.
const READ_TICK: Duration = Duration::from_millis(100);

/// Serves one connection until it closes, breaks the protocol, misses a deadline, or the
/// engine stops. Every way out that is the client's fault is counted and, where the client can
/// still read, answered with the reason.
fn serve_connection(mut s: Stream, slot: Slot, ctx: &ConnCtx, stop: &AtomicBool) {
    if s.set_read_timeout(Some(READ_TICK)).is_err() {
        return;
    }
    let stats = &ctx.stats;
    let close = |s: &mut Stream, counter: &AtomicU64, why: &str, id: Option<Value>| {
        ControlStats::bump(counter);
        let _ = write_reply(s, &error_reply(&format!("{why}; connection closed"), id));
    };
    let mut lines = LineReader::default();
    let connected = Instant::now();
    // Since the last reply (or connecting): closes idle connections.
    let mut idle_since = connected;
    // When the first byte of the line being read arrived.
    let mut line_started: Option<Instant> = None;
    let mut served = 0u64;
    // Before its first request, a TCP or priority connection has LINE_DEADLINE to send one.
    let first_deadline = ctx.token.is_some() || slot == Slot::Priority;
    while !stop.load(Ordering::Relaxed) {
        let line = match lines.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => {
                let now = Instant::now();
                if line_started.is_some_and(|t| now.duration_since(t) >= LINE_DEADLINE) {
                    let why = format!(
                        "a request line must be complete (end with \\n) within {:.0} s of its first byte",
                        LINE_DEADLINE.as_secs_f64()
                    );
                    close(&mut s, &stats.timed_out, &why, None);
                    return;
                }
                let idle_limit = if served == 0 && first_deadline {
                    LINE_DEADLINE
                } else {
                    IDLE_CLOSE
                };
                // A line in progress has its own deadline (above); a reserved slot has one line's.
                let idle = line_started.is_none() && now.duration_since(idle_since) >= idle_limit;
                let reserved_over =
                    slot == Slot::Priority && now.duration_since(connected) >= LINE_DEADLINE;
                if idle || reserved_over {
                    let why = format!("no request within {:.0} s", idle_limit.as_secs_f64());
                    close(&mut s, &stats.timed_out, &why, None);
                    return;
                }
                match lines.fill(&mut s) {
                    Ok(0) => return,
                    Ok(_) => {
                        if line_started.is_none() {
                            line_started = Some(Instant::now());
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => return,
                }
                continue;
            }
            Err(why) => {
                close(&mut s, &stats.refused_protocol, &why, None);
                return;
            }
        };
        // What is left starts the next line; its clock starts now (and again after the reply,
        // so the time this request takes is not held against it).
        line_started = (!lines.buf.is_empty()).then(Instant::now);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if looks_like_http(&line) {
            close(
                &mut s,
                &stats.refused_protocol,
                "this is the tickline control protocol (one JSON object per line), not HTTP",
                None,
            );
            return;
        }
        let mut v = match serde_json::from_slice::<Value>(&line) {
            Ok(v) => v,
            Err(e) => {
                let why = format!("not a JSON request ({e})");
                close(&mut s, &stats.refused_protocol, &why, None);
                return;
            }
        };
        // The token is taken out before anything could quote the request.
        let presented = v.as_object_mut().and_then(|o| o.remove("token"));
        if let Some(token) = &ctx.token {
            let good = matches!(&presented, Some(Value::String(p)) if token.matches(p.as_bytes()));
            if !good {
                let why = if presented.is_some() {
                    "wrong control token"
                } else {
                    "this control port needs a token (the request's `token` field; `tickline ctl` sends it from --token-file, [control] token_file or TICKLINE_CONTROL_TOKEN)"
                };
                close(&mut s, &stats.refused_auth, why, None);
                return;
            }
        }
        drop(presented);
        let id = v.get("id").cloned();
        let req = match CtlRequest::from_json(&v) {
            Ok(r) => r,
            Err(why) => {
                close(&mut s, &stats.refused_protocol, &why, id);
                return;
            }
        };
        let urgent = matches!(req, CtlRequest::Kill | CtlRequest::Halt);
        if slot == Slot::Priority && !urgent {
            let why = format!(
                "too many control connections (at most {MAX_CONNECTIONS}); beyond them only kill and halt are served"
            );
            close(&mut s, &stats.refused_busy, &why, id);
            return;
        }
        let mut reply = if urgent {
            let command = if req == CtlRequest::Kill {
                Command::Kill
            } else {
                Command::Halt
            };
            ctx.link
                .simple(command)
                .unwrap_or_else(|why| error_reply(&why, None))
        } else {
            match ctx.controller.lock() {
                Ok(mut c) => c.handle(&req),
                Err(_) => error_reply("the control state is poisoned", None),
            }
        };
        if let (Some(id), Some(obj)) = (id, reply.as_object_mut()) {
            obj.insert("id".into(), id);
        }
        if write_reply(&mut s, &reply).is_err() {
            return;
        }
        served += 1;
        idle_since = Instant::now();
        line_started = (!lines.buf.is_empty()).then_some(idle_since);
        if slot == Slot::Priority {
            ControlStats::bump(&stats.priority_served);
            return;
        }
    }
}

fn write_reply(s: &mut Stream, reply: &Value) -> std::io::Result<()> {
    let mut text = reply.to_string();
    text.push('\n');
    s.write_all(text.as_bytes())?;
    s.flush()
}

fn error_reply(why: &str, id: Option<Value>) -> Value {
    let mut v = json!({"ok": false, "error": why});
    if let (Some(id), Some(obj)) = (id, v.as_object_mut()) {
        obj.insert("id".into(), id);
    }
    v
}

fn done_reply(message: String, warnings: Vec<String>) -> Value {
    json!({"ok": true, "message": message, "warnings": warnings})
}

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
    pub io: std::sync::mpsc::Sender<IoCommand>,
    /// The I/O thread's published state and counters per connection.
    pub shared: Arc<IoShared>,
    /// `(conn_id, url)` of each market-data connection, in `shared`'s slot order.
    pub feeds: Vec<(u32, String)>,
    /// The market-data connection that carries the subscriptions.
    pub feed_conn_id: u32,
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
    stats: Option<(Arc<ControlStats>, String, &'static str)>,
}

/// The way to the core: what `kill` and `halt` use without the controller's lock.
#[derive(Clone)]
struct CoreLink {
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
    fn simple(&self, command: Command) -> Result<Value, String> {
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
            .map(|(_, name)| cfg.venue.is_raw_feed() || cfg.venue.trading_at_start(name))
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

    fn link(&self) -> CoreLink {
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
                    let streams = self.cfg.venue.streams_of(&s.symbol);
                    if self
                        .io(IoCommand::Unsubscribe {
                            conn_id: self.cfg.feed_conn_id,
                            streams: streams.clone(),
                        })
                        .is_ok()
                    {
                        self.subscribed[i] = false;
                        eprintln!(
                            "control: {}: its last open order is gone; unsubscribed {}",
                            s.symbol,
                            streams.join(", ")
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
        };
        r.unwrap_or_else(|why| error_reply(&why, None))
    }

    fn symbol(&self, name: &str) -> Result<SymbolId, String> {
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

    fn simple(&self, command: Command) -> Result<Value, String> {
        self.link().simple(command)
    }

    fn io(&self, cmd: IoCommand) -> Result<(), String> {
        self.cfg
            .io
            .send(cmd)
            .map_err(|_| "the I/O thread has stopped".to_string())
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
        let mut warnings = Vec::new();
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
        // 2. The symbol's filters.
        let rules: Option<SymbolRules> = match &self.rest {
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
        let streams = self.cfg.venue.streams_of(&name);
        let subscribed_now = !self.subscribed[id.index()];
        self.unsubscribe_later[id.index()] = false;
        if subscribed_now {
            self.io(IoCommand::Subscribe {
                conn_id: self.cfg.feed_conn_id,
                streams: streams.clone(),
            })?;
            self.subscribed[id.index()] = true;
        }
        // 4. The core.
        let undo = |me: &mut Controller| {
            if subscribed_now {
                let _ = me.io(IoCommand::Unsubscribe {
                    conn_id: me.cfg.feed_conn_id,
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

    fn stop_trading(&mut self, symbol: &str) -> Result<Value, String> {
        let id = self.symbol(symbol)?;
        let name = self.cfg.symbols.name(id).unwrap_or(symbol).to_string();
        let mut message = match self.ask(Command::StopTrading { symbol: id })? {
            Reply::Done(m) => m,
            Reply::Refused(why) => return Err(why),
            Reply::Status(_) => return Err("the core answered with a status".into()),
        };
        let mut warnings = Vec::new();
        if self.subscribed[id.index()] && !self.cfg.venue.is_raw_feed() {
            // The cancels need answers first: the paper venue gives them on the symbol's next
            // market events, so its streams stay until no order is open.
            let deadline = Instant::now() + self.cfg.reply_timeout;
            let mut open = self.open_orders(id)?;
            while open > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                open = self.open_orders(id)?;
            }
            let streams = self.cfg.venue.streams_of(&name);
            if open == 0 {
                self.io(IoCommand::Unsubscribe {
                    conn_id: self.cfg.feed_conn_id,
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
        let symbols: Vec<Value> = core
            .symbols
            .iter()
            .map(|s| {
                let subscribed = self
                    .cfg
                    .symbols
                    .lookup(s.symbol.as_bytes())
                    .is_some_and(|id| self.subscribed[id.index()]);
                symbol_json(s, subscribed)
            })
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
                if *conn_id == self.cfg.feed_conn_id {
                    v["symbols"] = Value::Array(symbols.clone());
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

/// The order session's health (`null` when orders go to the paper venue): `degraded` while the
/// venue has refused the user data stream (issue #15).
fn order_session_json(cfg: &ControllerConfig) -> Value {
    if !cfg.live_orders {
        return Value::Null;
    }
    let stream = cfg.shared.user_stream();
    let state = match stream {
        feeds::orders::session::UserStream::Refused => "degraded",
        feeds::orders::session::UserStream::Active => "ok",
        _ => "waiting",
    };
    json!({
        "state": state,
        "user_stream": stream.as_str(),
        "user_stream_refused": cfg.shared.user_stream_refused(),
    })
}

fn symbol_json(s: &SymbolStatus, subscribed: bool) -> Value {
    let halted = s.leader.as_ref().and_then(|l| l.halted.clone());
    let state = match (s.trading, &halted) {
        (false, _) => "idle",
        (true, Some(_)) => "halted",
        (true, None) => "trading",
    };
    json!({
        "symbol": s.symbol,
        "state": state,
        "trading": s.trading,
        "subscribed": subscribed,
        "strategy": s.strategy,
        "book_synced": s.book_synced,
        "position": s.position,
        "avg_price": s.avg_price,
        "pnl": {"realized": s.realized, "unrealized": s.unrealized, "fees": s.fees},
        "open_orders": s.open_orders,
        "leader": s.leader.as_ref().map(leader_json),
    })
}

fn leader_json(l: &LeaderStatus) -> Value {
    json!({
        "strategy": l.strategy,
        "params": l.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<String, Value>>(),
        "restarts": {"recent": l.recent_restarts, "max": l.max_restarts, "window_ms": l.window_ms},
        "halted": l.halted,
        "cycles": l.cycles,
        "traders": l.traders.iter().map(|t| json!({
            "index": t.index,
            "state": t.state,
            "restarts": t.restarts,
            "last_panic": t.last_panic,
        })).collect::<Vec<_>>(),
    })
}

/// The status tree (the `status` object of a reply) as text, one line per node.
pub fn render_status(status: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let e = &status["engine"];
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "engine  pid {}  up {:.0}s  {}  orders to {}  events {}  orders {}  fills {}  trader restarts {}  symbol halts {}",
        num(&e["pid"]),
        e["uptime_s"].as_f64().unwrap_or(0.0),
        e["trading_state"].as_str().unwrap_or("?"),
        e["orders_to"].as_str().unwrap_or("?"),
        num(&e["events"]),
        num(&e["orders"]),
        num(&e["fills"]),
        num(&e["trader_restarts"]),
        num(&e["symbol_halts"]),
    );
    let o = &status["order_session"];
    if o.is_object() {
        let _ = writeln!(
            out,
            "order session  {}  user stream {}  refused {}",
            o["state"].as_str().unwrap_or("?"),
            o["user_stream"].as_str().unwrap_or("?"),
            num(&o["user_stream_refused"]),
        );
    }
    let empty = Vec::new();
    let conns = status["connections"].as_array().unwrap_or(&empty);
    for (ci, c) in conns.iter().enumerate() {
        let last_c = ci + 1 == conns.len();
        let (branch, pad) = if last_c {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let _ = writeln!(
            out,
            "{branch}conn {}  {}  {}  {}  frames {}  connects {}  reconnect attempts {}  decode errors {}",
            num(&c["conn_id"]),
            c["kind"].as_str().unwrap_or(""),
            c["state"].as_str().unwrap_or("?"),
            c["url"].as_str().unwrap_or(""),
            num(&c["frames"]),
            num(&c["connects"]),
            num(&c["reconnect_attempts"]),
            num(&c["decode_errors"]),
        );
        let syms = c["symbols"].as_array().unwrap_or(&empty);
        for (si, s) in syms.iter().enumerate() {
            let last_s = si + 1 == syms.len();
            let (branch, spad) = if last_s {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let state = s["state"].as_str().unwrap_or("?");
            let mut line = format!(
                "{pad}{branch}{}  {state}",
                s["symbol"].as_str().unwrap_or("?")
            );
            if let Some(st) = s["strategy"].as_str() {
                let _ = write!(line, "  {st}");
            }
            // An unsubscribed symbol's book is not fed: whether it synced once says nothing.
            let feed = match (s["subscribed"] == true, s["book_synced"] == true) {
                (false, _) => "unsubscribed",
                (true, true) => "book synced",
                (true, false) => "book not synced",
            };
            let _ = write!(
                line,
                "  {feed}  position {} @ {}  pnl realized {:.4} unrealized {:.4} fees {:.4}  open orders {}",
                s["position"].as_str().unwrap_or("0"),
                s["avg_price"].as_str().unwrap_or("0"),
                s["pnl"]["realized"].as_f64().unwrap_or(0.0),
                s["pnl"]["unrealized"].as_f64().unwrap_or(0.0),
                s["pnl"]["fees"].as_f64().unwrap_or(0.0),
                num(&s["open_orders"]),
            );
            let _ = writeln!(out, "{line}");
            let l = &s["leader"];
            if l.is_null() {
                continue;
            }
            let lpad = format!("{pad}{spad}");
            let params: Vec<String> = l["params"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            let mut line = format!(
                "{lpad}└─ leader {}  restarts {}/{} in {} ms  cycles {}",
                l["strategy"].as_str().unwrap_or("?"),
                num(&l["restarts"]["recent"]),
                num(&l["restarts"]["max"]),
                num(&l["restarts"]["window_ms"]),
                num(&l["cycles"]),
            );
            if let Some(h) = l["halted"].as_str() {
                let _ = write!(line, "  HALTED: {h}");
            }
            if !params.is_empty() {
                let _ = write!(line, "  {}", params.join(" "));
            }
            let _ = writeln!(out, "{line}");
            let traders = l["traders"].as_array().unwrap_or(&empty);
            for (ti, t) in traders.iter().enumerate() {
                let branch = if ti + 1 == traders.len() {
                    "└─ "
                } else {
                    "├─ "
                };
                let mut line = format!(
                    "{lpad}   {branch}trader {}  {}  restarts {}",
                    num(&t["index"]),
                    t["state"].as_str().unwrap_or("?"),
                    num(&t["restarts"]),
                );
                if let Some(p) = t["last_panic"].as_str() {
                    let _ = write!(line, "  last panic: {p}");
                }
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_are_named() {
        let reqs = [
            CtlRequest::Status,
            CtlRequest::StartTrading {
                symbol: "ETHUSDT".into(),
                strategy: Some("naive".into()),
                chunks: Some(3),
                params: vec![("profit_interval".into(), "0.002".into())],
            },
            CtlRequest::StopTrading {
                symbol: "ETHUSDT".into(),
            },
            CtlRequest::Set {
                symbol: "ETHUSDT".into(),
                params: vec![("budget".into(), "50".into())],
            },
            CtlRequest::Halt,
            CtlRequest::Resume,
            CtlRequest::Kill,
        ];
        for r in reqs {
            assert_eq!(CtlRequest::from_json(&r.to_json()), Ok(r));
        }
        let v = json!({"cmd":"start-trading","symbol":"ethusdt","params":{"chunks":2,"x":true}});
        assert_eq!(
            CtlRequest::from_json(&v),
            Ok(CtlRequest::StartTrading {
                symbol: "ETHUSDT".into(),
                strategy: None,
                chunks: None,
                params: vec![("chunks".into(), "2".into()), ("x".into(), "true".into())],
            })
        );
        for (v, needle) in [
            (json!({"cmd":"nosuch"}), "unknown command `nosuch`"),
            (json!({"cmd":"halt","symbol":"X"}), "unknown field `symbol`"),
            (json!({"cmd":"stop-trading"}), "missing `symbol`"),
            (json!({"cmd":"set","symbol":"X"}), "at least one"),
            (
                json!({"cmd":"start-trading","symbol":"X","chunks":0}),
                "chunks",
            ),
            (
                json!({"cmd":"start-trading","symbol":"X","qty":1}),
                "unknown field `qty`",
            ),
            (json!({"cmd":"set","symbol":"X","params":{"a":[1]}}), "`a`"),
            (json!(["status"]), "JSON object"),
            (json!({}), "missing `cmd`"),
        ] {
            let e = CtlRequest::from_json(&v).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
        assert_eq!(parse_kv(" a = 1 "), Ok(("a".into(), "1".into())));
        assert!(parse_kv("a").is_err() && parse_kv("=1").is_err());
    }

    #[test]
    fn only_loopback_tcp() {
        assert!(loopback_addr("127.0.0.1:7070").is_ok());
        assert!(loopback_addr("[::1]:7070").is_ok());
        assert!(loopback_addr("localhost:7070").is_ok());
        for bad in ["0.0.0.0:7070", "192.168.1.2:1", "127.0.0.1", "x"] {
            assert!(loopback_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_survive_partial_reads_and_long_lines_are_refused() {
        let mut r = LineReader::default();
        r.buf.extend_from_slice(b"{\"a\":1}\r\n{\"b\"");
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(r.next_line().unwrap(), None);
        r.buf.extend_from_slice(b":2}\n");
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"b\":2}");
        r.buf = vec![b'x'; MAX_LINE + 1];
        assert!(r.next_line().is_err());
        // A newline that comes too late does not make a long line acceptable.
        r.buf = vec![b'x'; MAX_LINE + 5];
        r.buf.push(b'\n');
        assert!(r.next_line().is_err());
        // A line of exactly MAX_LINE bytes is fine.
        r.buf = vec![b'x'; MAX_LINE];
        r.buf.push(b'\n');
        assert_eq!(r.next_line().unwrap().unwrap().len(), MAX_LINE);
    }

    #[test]
    fn tokens_compare_in_constant_time_and_are_never_shown() {
        assert!(constant_time_eq(b"abcdefgh", b"abcdefgh"));
        for other in [
            &b"abcdefgX"[..],
            b"Xbcdefgh",
            b"abcdefg",
            b"abcdefghi",
            b"",
            b"abcdefgh\0",
        ] {
            assert!(!constant_time_eq(b"abcdefgh", other), "{other:?}");
        }
        // Lengths 256 apart differ in the low byte by nothing: still unequal.
        assert!(!constant_time_eq(&[0u8; 256], &[0u8; 512]));
        let t = Token::new("  0123456789abcdef0123 \n", "test").unwrap();
        assert!(t.matches(b"0123456789abcdef0123"));
        assert!(!t.matches(b"0123456789abcdef012"));
        assert_eq!(format!("{t:?}"), "Token(..)");
        let e = format!("{:#}", Token::new("short", "test").unwrap_err());
        assert!(e.contains("at least 16") && !e.contains("short"), "{e}");
        assert!(Token::new(" \n", "test").is_err());
        assert!(Token::new("0123456789abcdef\u{7}x", "test").is_err());
    }

    #[test]
    fn token_files_must_be_0600() {
        let dir = std::env::temp_dir().join(format!("tl-ctl-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t");
        std::fs::write(&path, "secret-0123456789abcdef\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = format!("{:#}", Token::from_file(&path).unwrap_err());
            assert!(
                e.contains(&format!("{mode:04o}")) && e.contains("chmod 600"),
                "{e}"
            );
            assert!(!e.contains("secret-0123"), "{e}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(Token::from_file(&path)
                .unwrap()
                .matches(b"secret-0123456789abcdef"));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, vec![b'a'; 5000]).unwrap();
        assert!(format!("{:#}", Token::from_file(&path).unwrap_err()).contains("longer than"));
        assert!(Token::from_file(&dir.join("nosuch")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn http_is_recognised() {
        for l in [
            "GET / HTTP/1.1",
            "POST /x HTTP/1.0",
            "PUT / HTTP/1.1",
            "HEAD / HTTP/1.1",
            "OPTIONS * HTTP/1.1",
            "DELETE / HTTP/1.1",
            "CONNECT a:1 HTTP/1.1",
            "PATCH / HTTP/1.1",
            "PRI * HTTP/2.0",
            "Host: x HTTP/1.1",
            "GET /",
        ] {
            assert!(looks_like_http(l.as_bytes()), "{l}");
        }
        for l in [r#"{"cmd":"status"}"#, "not json", "GETTER"] {
            assert!(!looks_like_http(l.as_bytes()), "{l}");
        }
    }

    #[test]
    fn tcp_without_a_token_is_refused_at_bind() {
        let ep = Endpoint::Tcp("127.0.0.1:0".parse().unwrap());
        let e = format!("{:#}", ControlServer::bind(&ep, None).unwrap_err());
        assert!(e.contains("needs a token") && e.contains(TOKEN_ENV), "{e}");
        let t = Token::new("0123456789abcdef", "test").unwrap();
        assert!(ControlServer::bind(&ep, Some(t)).is_ok());
    }

    #[test]
    fn a_socket_is_0600_refuses_a_second_engine_and_is_removed() {
        let dir = std::env::temp_dir().join(format!("tl-ctl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.sock");
        let ep = Endpoint::Unix(path.clone());
        let a = ControlServer::bind(&ep, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = format!("{:#}", ControlServer::bind(&ep, None).unwrap_err());
        assert!(e.contains("answers"), "{e}");
        drop(a);
        assert!(!path.exists());
        // A stale socket (its listener gone without cleaning up) is replaced.
        let l = UnixListener::bind(&path).unwrap();
        drop(l);
        assert!(path.exists());
        let b = ControlServer::bind(&ep, None).unwrap();
        drop(b);
        assert!(!path.exists());
        // Not a socket: refused, and left alone.
        std::fs::write(&path, "x").unwrap();
        let e = format!("{:#}", ControlServer::bind(&ep, None).unwrap_err());
        assert!(e.contains("not a socket"), "{e}");
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
