//! A connected control socket of either kind (Unix or TCP) and the bounded line reader both
//! sides use.

use super::{MAX_DEPLOY_LINE, MAX_LINE};
use anyhow::Result;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub(super) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A connected control socket of either kind.
pub(super) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub(super) fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub(super) fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }

    pub(super) fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
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

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes ([`MAX_DEPLOY_LINE`] for a
/// line that starts `{"cmd":"deploy"`: it carries a module); survives read timeouts (what was
/// read stays buffered).
#[derive(Default)]
pub(super) struct LineReader {
    pub(super) buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
}

impl LineReader {
    /// The longest line the buffered one may become.
    fn limit(&self) -> usize {
        if self.buf.starts_with(br#"{"cmd":"deploy""#) {
            MAX_DEPLOY_LINE
        } else {
            MAX_LINE
        }
    }

    /// The next complete line (without its `\n`), if buffered; an error if a line is too long.
    pub(super) fn next_line(&mut self) -> Result<Option<Vec<u8>>, String> {
        let limit = self.limit();
        // A newline past the limit ends a line that is already too long.
        let end = self.buf.len().min(limit + 1);
        let from = self.scanned.min(end);
        if let Some(i) = self.buf[from..end].iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=from + i).collect();
            self.scanned = 0;
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
        self.scanned = end;
        if self.buf.len() > limit {
            return Err(format!("a line longer than {limit} bytes"));
        }
        Ok(None)
    }

    pub(super) fn fill(&mut self, r: &mut impl Read) -> std::io::Result<usize> {
        let mut chunk = [0u8; 65536];
        let n = r.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}
