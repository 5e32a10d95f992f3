//! The control thread: binds the socket (0600 Unix, or loopback TCP with a token), accepts
//! connections within the limits of the [module docs](super), and serves each on its own reader
//! thread.

use super::controller::{Controller, CoreLink};
use super::protocol::{error_reply, looks_like_http, CtlRequest};
use super::transport::{is_timeout, LineReader, Stream};
use super::{IDLE_CLOSE, LINE_DEADLINE, MAX_CONNECTIONS, PRIORITY_SLOTS, STOP_CHECK};
use crate::config::{Endpoint, Token, TOKEN_ENV};
use anyhow::{bail, Context, Result};
use engine::control::Command;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
        crate::threads::spawn_housekeeping("tickline-control", move || {
            self.serve(controller, &stop)
        })
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
                    let spawned =
                        crate::threads::spawn_housekeeping("tickline-control-conn", move || {
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
                            tracing::warn!(target: "tickline::control", "cannot serve a connection: {e}");
                        }
                    }
                }
                Err(e) if is_timeout(&e) => std::thread::sleep(STOP_CHECK / 2),
                Err(e) => {
                    tracing::warn!(target: "tickline::control", "accept failed: {e}");
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
                tracing::warn!(
                    target: "tickline::control",
                    socket = %shown,
                    "removed the stale socket (left by an engine that did not stop cleanly)"
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
