//! The client side: one request to a running engine, one reply (what `tickline ctl` calls).

use super::protocol::CtlRequest;
use super::transport::{is_timeout, LineReader, Stream};
use crate::config::{Endpoint, Token};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

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
        obj.insert("token".into(), Value::String(t.secret().to_string()));
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
