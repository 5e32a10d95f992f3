//! cryptofeed's capture formats (read only): the v1 text format and the v3 JSONL envelopes,
//! plain or zstd.
//!
//! # v1 text (`*.0`)
//!
//! One line each, receive times in Unix seconds with a decimal fraction:
//!
//! | line | record |
//! |---|---|
//! | `<ts>: <raw JSON>` | [`RecordKind::TextFrame`] on the current connection |
//! | `<url> <-> <ts>` | [`RecordKind::Connect`] (payload the URL): a new connection, the current one from now on |
//! | `<url> <- <ts>: <json>` | [`RecordKind::Subscribe`] (payload the request) on the last connection to `<url>` |
//! | `<rest_url> -> <ts>: <json>` | [`RecordKind::Rest`] (URL and response body) on connection 0 |
//!
//! Connections are numbered 1, 2, ... in the order of their `<->` lines; frames before the
//! first connect belong to connection 0.
//!
//! # v3 JSONL (`*.jsonl.zst`, or plain)
//!
//! One JSON envelope a line: `{"t":..,"conn":..,"ts":..,"data":"<frame as a JSON string>",
//! "addr"|"url":..}`. `t` is `header` ([`RecordKind::Meta`], payload the whole line, on
//! connection 0), `connect` ([`RecordKind::Connect`], payload `addr` or `url`), `send`
//! ([`RecordKind::Subscribe`]), `recv` ([`RecordKind::TextFrame`]), `http` ([`RecordKind::Rest`],
//! with `url`) or `disconnect` ([`RecordKind::Disconnect`]). `data` is unescaped into the
//! frame's own bytes. `conn` names (`BYBIT.ws.2`) are numbered 1, 2, ... in order of first
//! appearance (at most [`MAX_CONNECTIONS`] of them).
//!
//! zstd is decoded by [`ruzstd`] (pure Rust: fuzz and sanitizer builds need no C), frame after
//! frame (concatenated frames are read too), with the window a frame may claim capped at
//! [`MAX_ZSTD_WINDOW`]: the decoder reserves the window up front, so a larger claim is refused
//! (an I/O error naming the line) rather than allocated; a stream that expands past
//! [`MAX_ZSTD_RATIO`] is refused the same way.
//!
//! # Times
//!
//! `1617566592.1065369` is parsed as decimal text into nanoseconds (`1617566592106536900`):
//! digits past the ninth decimal are dropped (truncated, never rounded through `f64`). A time
//! that is not `digits[.digits]` or does not fit a `u64` of nanoseconds is
//! [`LineFault::BadTimestamp`].
//!
//! # Errors
//!
//! As in the line format: a malformed line is [`CaptureError::BadLine`] with its 1-based line
//! number and the reader goes on with the next line; a line over [`MAX_LINE_LEN`] is
//! [`CaptureError::LineTooLong`] and skipped; a decompression or read error ends the stream
//! (later calls return `Ok(None)`). Nothing panics, and no size read from the file is allocated
//! on its word.

use super::tlc::RecordKind;
use super::{CaptureError, LineFault, Position, MAX_LINE_LEN, READ_CHUNK};
use crate::json::{Scanner, ValueKind};
use core::fmt;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// The zstd frame magic (`28 b5 2f fd`).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The largest zstd window a capture may claim (8 MiB: every standard compression level up
/// to 19 fits; `--ultra`/`--long` archives must be recompressed).
pub const MAX_ZSTD_WINDOW: u64 = 8 << 20;
/// The most a zstd capture may expand: 512 bytes out per byte in (real JSON captures expand
/// 10 to 30 times), after a first [`ZSTD_RATIO_SLACK`]. zstd can expand far more (a run-length
/// block of a few bytes writes 128 KiB), so without this a few hundred bytes could make the
/// reader hold a line of 16 MiB; past it the stream is refused as a decompression bomb.
pub const MAX_ZSTD_RATIO: u64 = 512;
/// Decompressed bytes allowed before [`MAX_ZSTD_RATIO`] applies (1 MiB).
pub const ZSTD_RATIO_SLACK: u64 = 1 << 20;
/// Distinct v3 connection names a capture may use.
pub const MAX_CONNECTIONS: usize = 1 << 16;

/// Which cryptofeed format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CryptofeedVersion {
    /// The v1 text format.
    V1,
    /// The v3 JSONL envelopes.
    V3,
}

/// One record of a cryptofeed capture, borrowing the reader's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CryptofeedRecord<'a> {
    /// Receive time, nanoseconds since the Unix epoch (0 for a v3 header).
    pub recv_ns: u64,
    /// Connection id (see the module docs for the numbering).
    pub conn_id: u32,
    /// What it is.
    pub kind: RecordKind,
    /// For [`RecordKind::Rest`], the request URL.
    pub url: Option<&'a [u8]>,
    /// The frame, request, response body or URL (for [`RecordKind::Connect`]).
    pub payload: &'a [u8],
    /// 1-based line number.
    pub line: u64,
}

// ---------------------------------------------------------------------------------------------
// Detection and times
// ---------------------------------------------------------------------------------------------

/// Which cryptofeed format `head` (a file's first bytes, a few hundred at least) is in, if
/// either: zstd magic or a first line starting `{"t":` is v3; a first line shaped
/// `<digits>[.<digits>]: ` or `<url> <->|<-|-> <digit>` is v1.
pub fn detect(head: &[u8]) -> Option<CryptofeedVersion> {
    if head.starts_with(&ZSTD_MAGIC) {
        return Some(CryptofeedVersion::V3);
    }
    let line = head
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty() && *l != b"\r")?;
    if line.starts_with(b"{\"t\":") {
        return Some(CryptofeedVersion::V3);
    }
    if line.first().is_some_and(u8::is_ascii_digit) {
        let colon = line.windows(2).position(|w| w == b": ")?;
        return parse_seconds(&line[..colon]).map(|_| CryptofeedVersion::V1);
    }
    let sp = line.iter().position(|&b| b == b' ')?;
    if !line[..sp].windows(3).any(|w| w == b"://") {
        return None;
    }
    let rest = &line[sp + 1..];
    let after = [&b"<-> "[..], b"<- ", b"-> "]
        .iter()
        .find_map(|a| rest.strip_prefix(*a))?;
    after
        .first()
        .is_some_and(u8::is_ascii_digit)
        .then_some(CryptofeedVersion::V1)
}

/// Unix seconds as decimal text (`1617566592.1065369`) to nanoseconds, exactly: no `f64`.
/// Digits past the ninth decimal are dropped. `None` unless `digits[.digits]` within `u64`.
pub fn parse_seconds(s: &[u8]) -> Option<u64> {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if int.is_empty() || frac.is_some_and(<[u8]>::is_empty) {
        return None;
    }
    let mut secs: u64 = 0;
    for &b in int {
        if !b.is_ascii_digit() {
            return None;
        }
        secs = secs.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let mut ns: u64 = 0;
    let mut scale: u64 = 100_000_000;
    for &b in frac.unwrap_or(&[]) {
        if !b.is_ascii_digit() {
            return None;
        }
        ns += u64::from(b - b'0') * scale;
        scale /= 10;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

// ---------------------------------------------------------------------------------------------
// zstd, frame after frame
// ---------------------------------------------------------------------------------------------

type Frame<R> = ruzstd::decoding::StreamingDecoder<Counted<R>, ruzstd::decoding::FrameDecoder>;

/// A source whose bytes read are counted (for the expansion guard).
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Concatenated zstd frames as one stream, refused past [`MAX_ZSTD_RATIO`].
struct MultiZstd<R: BufRead> {
    /// The current frame, or the source between frames.
    state: Option<Result<Frame<R>, Counted<R>>>,
    /// Bytes decompressed so far.
    out: u64,
}

impl<R: BufRead> MultiZstd<R> {
    fn new(src: R) -> Self {
        Self {
            state: Some(Err(Counted {
                inner: src,
                read: 0,
            })),
            out: 0,
        }
    }
}

fn zstd_error(e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for MultiZstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state.take() {
                None => return Ok(0),
                Some(Ok(mut frame)) => match frame.read(buf) {
                    Ok(0) => self.state = Some(Err(frame.into_inner())),
                    Ok(n) => {
                        self.out += n as u64;
                        let read = frame.get_ref().read;
                        if self.out > read.saturating_mul(MAX_ZSTD_RATIO) + ZSTD_RATIO_SLACK {
                            // state stays None: the stream has ended
                            return Err(zstd_error(format_args!(
                                "{} bytes from {read} expand more than {MAX_ZSTD_RATIO}:1 \
                                 (refused as a decompression bomb)",
                                self.out
                            )));
                        }
                        self.state = Some(Ok(frame));
                        return Ok(n);
                    }
                    Err(e) => return Err(e), // state stays None: the stream has ended
                },
                Some(Err(mut src)) => {
                    if src.inner.fill_buf()?.is_empty() {
                        return Ok(0);
                    }
                    match Frame::new_with_max_window_size(src, MAX_ZSTD_WINDOW) {
                        Ok(frame) => self.state = Some(Ok(frame)),
                        Err(e) => return Err(zstd_error(e)),
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------------------------

enum Source<R: Read> {
    Plain(BufReader<R>),
    Zstd(Box<BufReader<MultiZstd<BufReader<R>>>>),
}

impl<R: Read> Source<R> {
    fn as_bufread(&mut self) -> &mut dyn BufRead {
        match self {
            Source::Plain(r) => r,
            Source::Zstd(r) => &mut **r,
        }
    }
}

/// Streams a cryptofeed capture (v1 or v3, plain or zstd) one record at a time, reusing its
/// buffers.
pub struct CryptofeedReader<R: Read> {
    src: Source<R>,
    version: CryptofeedVersion,
    buf: Vec<u8>,
    /// The unescaped `data` of a v3 envelope.
    data: Vec<u8>,
    line: u64,
    skipping: bool,
    failed: bool,
    /// v1: the current connection; connections so far.
    current: u32,
    conns: u32,
    /// v1: the last connection to each URL; v3: each `conn` name's id.
    names: HashMap<Vec<u8>, u32>,
}

impl<R: Read> fmt::Debug for CryptofeedReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptofeedReader")
            .field("version", &self.version)
            .field("line", &self.line)
            .field("connections", &self.conns)
            .finish_non_exhaustive()
    }
}

impl CryptofeedReader<File> {
    /// Opens a cryptofeed capture file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::new(File::open(path)?)
    }
}

impl<R: Read> CryptofeedReader<R> {
    /// Wraps a reader, telling v1 from v3 and plain from zstd by the first bytes. A source that
    /// is neither format is read as v1, whose every line is then a [`CaptureError::BadLine`].
    pub fn new(inner: R) -> Result<Self, CaptureError> {
        let mut plain = BufReader::with_capacity(READ_CHUNK, inner);
        let head = plain
            .fill_buf()
            .map_err(|e| CaptureError::read(Position::Line(1), e))?;
        let zstd = head.starts_with(&ZSTD_MAGIC);
        let (src, version) = if zstd {
            let z = MultiZstd::new(plain);
            (
                Source::Zstd(Box::new(BufReader::with_capacity(READ_CHUNK, z))),
                CryptofeedVersion::V3,
            )
        } else {
            let v = detect(head).unwrap_or(CryptofeedVersion::V1);
            (Source::Plain(plain), v)
        };
        Ok(Self {
            src,
            version,
            buf: Vec::with_capacity(4096),
            data: Vec::new(),
            line: 0,
            skipping: false,
            failed: false,
            current: 0,
            conns: 0,
            names: HashMap::new(),
        })
    }

    /// The format.
    pub fn version(&self) -> CryptofeedVersion {
        self.version
    }

    /// True when the source is zstd.
    pub fn is_zstd(&self) -> bool {
        matches!(self.src, Source::Zstd(_))
    }

    /// 1-based number of the last line read.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// The next record. `Ok(None)` at the end; a malformed line is an error naming its line and
    /// the next call goes on; after an I/O or decompression error later calls return `Ok(None)`.
    #[allow(clippy::should_implement_trait)] // lending: the record borrows the reader's buffers
    pub fn next(&mut self) -> Result<Option<CryptofeedRecord<'_>>, CaptureError> {
        if self.failed {
            return Ok(None);
        }
        if self.skipping {
            if let Err(e) = self.src.as_bufread().skip_until(b'\n') {
                self.failed = true;
                return Err(CaptureError::read(Position::Line(self.line), e));
            }
            self.skipping = false;
        }
        loop {
            self.buf.clear();
            let n = match self
                .src
                .as_bufread()
                .take(MAX_LINE_LEN as u64 + 1)
                .read_until(b'\n', &mut self.buf)
            {
                Ok(n) => n,
                Err(e) => {
                    self.failed = true;
                    return Err(CaptureError::read(Position::Line(self.line + 1), e));
                }
            };
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let mut end = self.buf.len();
            if self.buf[end - 1] == b'\n' {
                end -= 1;
            } else if end > MAX_LINE_LEN {
                self.skipping = true;
                return Err(CaptureError::LineTooLong { line: self.line });
            }
            if end > 0 && self.buf[end - 1] == b'\r' {
                end -= 1;
            }
            if end == 0 {
                continue;
            }
            self.buf.truncate(end);
            let line = self.line;
            let bad = |fault| CaptureError::BadLine { line, fault };
            return match self.version {
                CryptofeedVersion::V1 => {
                    let p = parse_v1(&self.buf).map_err(bad)?;
                    let conn_id = match p.shape {
                        V1Shape::Frame => self.current,
                        V1Shape::Connect => {
                            self.conns = self.conns.saturating_add(1);
                            self.current = self.conns;
                            let url = &self.buf[p.url.clone()];
                            if let Some(id) = self.names.get_mut(url) {
                                *id = self.current;
                            } else if self.names.len() < MAX_CONNECTIONS {
                                self.names.insert(url.to_vec(), self.current);
                            }
                            self.current
                        }
                        V1Shape::Sent => self
                            .names
                            .get(&self.buf[p.url.clone()])
                            .copied()
                            .unwrap_or(self.current),
                        V1Shape::Rest => 0,
                    };
                    let url = &self.buf[p.url];
                    Ok(Some(CryptofeedRecord {
                        recv_ns: p.recv_ns,
                        conn_id,
                        kind: p.shape.kind(),
                        url: (p.shape == V1Shape::Rest).then_some(url),
                        payload: if p.shape == V1Shape::Connect {
                            url
                        } else {
                            &self.buf[p.payload]
                        },
                        line,
                    }))
                }
                CryptofeedVersion::V3 => {
                    let e = parse_v3(&self.buf, &mut self.data).map_err(bad)?;
                    let conn_id = match e.conn {
                        None => 0,
                        Some(name) => {
                            let name = &self.buf[name];
                            match self.names.get(name) {
                                Some(&id) => id,
                                None if self.names.len() < MAX_CONNECTIONS => {
                                    self.conns = self.conns.saturating_add(1);
                                    self.names.insert(name.to_vec(), self.conns);
                                    self.conns
                                }
                                None => {
                                    return Err(bad(LineFault::Envelope("too many connections")))
                                }
                            }
                        }
                    };
                    let payload: &[u8] = match e.payload {
                        V3Payload::Line => &self.buf,
                        V3Payload::Data => &self.data,
                        V3Payload::Addr => e.addr.clone().map_or(&[][..], |r| &self.buf[r]),
                    };
                    Ok(Some(CryptofeedRecord {
                        recv_ns: e.recv_ns,
                        conn_id,
                        kind: e.kind,
                        url: if e.kind == RecordKind::Rest {
                            e.addr.map(|r| &self.buf[r])
                        } else {
                            None
                        },
                        payload,
                        line,
                    }))
                }
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Line parsers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V1Shape {
    Frame,
    Connect,
    Sent,
    Rest,
}

impl V1Shape {
    fn kind(self) -> RecordKind {
        match self {
            V1Shape::Frame => RecordKind::TextFrame,
            V1Shape::Connect => RecordKind::Connect,
            V1Shape::Sent => RecordKind::Subscribe,
            V1Shape::Rest => RecordKind::Rest,
        }
    }
}

type Span = core::ops::Range<usize>;

struct V1Line {
    shape: V1Shape,
    recv_ns: u64,
    url: Span,
    payload: Span,
}

/// `<ts>: <payload>` starting at `at`: the time and the payload's span.
fn ts_colon_payload(line: &[u8], at: usize) -> Result<(u64, Span), LineFault> {
    let rest = &line[at..];
    let colon = rest
        .windows(2)
        .position(|w| w == b": ")
        .ok_or(LineFault::NoSpace)?;
    let recv_ns = parse_seconds(&rest[..colon]).ok_or(LineFault::BadTimestamp)?;
    let start = at + colon + 2;
    if start >= line.len() {
        return Err(LineFault::EmptyPayload);
    }
    Ok((recv_ns, start..line.len()))
}

fn parse_v1(line: &[u8]) -> Result<V1Line, LineFault> {
    if line[0].is_ascii_digit() {
        let (recv_ns, payload) = ts_colon_payload(line, 0)?;
        return Ok(V1Line {
            shape: V1Shape::Frame,
            recv_ns,
            url: 0..0,
            payload,
        });
    }
    let sp = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(LineFault::NoSpace)?;
    let rest = &line[sp + 1..];
    let url = 0..sp;
    if let Some(ts) = rest.strip_prefix(b"<-> ") {
        let recv_ns = parse_seconds(ts).ok_or(LineFault::BadTimestamp)?;
        return Ok(V1Line {
            shape: V1Shape::Connect,
            recv_ns,
            url,
            payload: 0..0,
        });
    }
    let (shape, skip) = if rest.starts_with(b"<- ") {
        (V1Shape::Sent, 3)
    } else if rest.starts_with(b"-> ") {
        (V1Shape::Rest, 3)
    } else {
        return Err(LineFault::Unrecognised);
    };
    let (recv_ns, payload) = ts_colon_payload(line, sp + 1 + skip)?;
    Ok(V1Line {
        shape,
        recv_ns,
        url,
        payload,
    })
}

enum V3Payload {
    /// The whole line (a header).
    Line,
    /// The unescaped `data`.
    Data,
    /// The `addr`/`url` field.
    Addr,
}

struct Envelope {
    kind: RecordKind,
    recv_ns: u64,
    conn: Option<Span>,
    addr: Option<Span>,
    payload: V3Payload,
}

fn parse_v3(line: &[u8], data: &mut Vec<u8>) -> Result<Envelope, LineFault> {
    let env = LineFault::Envelope;
    let mut s = Scanner::new(line);
    s.begin_object().map_err(|_| env("not a JSON object"))?;
    let (mut t, mut ts, mut conn, mut addr, mut data_raw) = (None, None, None, None, None);
    let span = |raw: &[u8]| {
        let start = raw.as_ptr() as usize - line.as_ptr() as usize;
        start..start + raw.len()
    };
    while let Some(key) = s.next_key().map_err(|_| env("not valid JSON"))? {
        match key.raw() {
            b"t" => t = Some(s.string().map_err(|_| env("`t` is not a string"))?.raw()),
            b"ts" => {
                let n = s.number().map_err(|_| LineFault::BadTimestamp)?;
                ts = Some(parse_seconds(n.raw()).ok_or(LineFault::BadTimestamp)?);
            }
            b"conn" => {
                let c = s.string().map_err(|_| env("`conn` is not a string"))?;
                conn = Some(span(c.raw()));
            }
            b"addr" | b"url" => {
                let a = s
                    .string()
                    .map_err(|_| env("`addr`/`url` is not a string"))?;
                if a.has_escapes() {
                    return Err(env("`addr`/`url` holds escapes"));
                }
                addr = Some(span(a.raw()));
            }
            b"data" => match s.peek().map_err(|_| env("not valid JSON"))? {
                ValueKind::String => {
                    data_raw = Some(s.string().map_err(|_| env("not valid JSON"))?)
                }
                ValueKind::Null => {
                    s.null().map_err(|_| env("not valid JSON"))?;
                }
                _ => return Err(env("`data` is not a string")),
            },
            _ => {
                s.skip_value().map_err(|_| env("not valid JSON"))?;
            }
        }
    }
    s.finish()
        .map_err(|_| env("trailing bytes after the envelope"))?;
    let t = t.ok_or(env("no `t`"))?;
    let (kind, payload) = match t {
        b"header" => (RecordKind::Meta, V3Payload::Line),
        b"connect" => (RecordKind::Connect, V3Payload::Addr),
        b"send" => (RecordKind::Subscribe, V3Payload::Data),
        b"recv" => (RecordKind::TextFrame, V3Payload::Data),
        b"http" => (RecordKind::Rest, V3Payload::Data),
        b"disconnect" => (RecordKind::Disconnect, V3Payload::Data),
        _ => return Err(env("unknown `t`")),
    };
    let recv_ns = match (kind, ts) {
        (_, Some(ts)) => ts,
        (RecordKind::Meta, None) => 0,
        _ => return Err(env("no `ts`")),
    };
    data.clear();
    match (&payload, data_raw) {
        (V3Payload::Data, Some(raw)) => {
            data.resize(raw.raw().len(), 0);
            let n = raw
                .decode_into(data)
                .ok_or(env("`data` holds a bad escape"))?
                .len();
            data.truncate(n);
        }
        (V3Payload::Data, None) if kind != RecordKind::Disconnect => return Err(env("no `data`")),
        _ => {}
    }
    if kind == RecordKind::Connect && addr.is_none() {
        return Err(env("connect without `addr`"));
    }
    if kind == RecordKind::Rest && addr.is_none() {
        return Err(env("http without `url`"));
    }
    if matches!(
        kind,
        RecordKind::TextFrame | RecordKind::Subscribe | RecordKind::Rest
    ) && data.is_empty()
    {
        return Err(LineFault::EmptyPayload);
    }
    Ok(Envelope {
        kind,
        recv_ns,
        conn,
        addr,
        payload,
    })
}

// ---------------------------------------------------------------------------------------------
// In memory
// ---------------------------------------------------------------------------------------------

/// An error kept by [`CryptofeedCapture`] for its iterator to report in its place.
#[derive(Clone, Debug)]
enum KeptError {
    BadLine {
        line: u64,
        fault: LineFault,
    },
    TooLong {
        line: u64,
    },
    Io {
        line: u64,
        kind: io::ErrorKind,
        msg: String,
    },
}

impl KeptError {
    fn keep(e: CaptureError) -> Self {
        match e {
            CaptureError::BadLine { line, fault } => KeptError::BadLine { line, fault },
            CaptureError::LineTooLong { line } => KeptError::TooLong { line },
            CaptureError::Io { at, source } => KeptError::Io {
                line: match at {
                    Some(Position::Line(l)) => l,
                    _ => 0,
                },
                kind: source.kind(),
                msg: source.to_string(),
            },
            other => KeptError::Io {
                line: 0,
                kind: io::ErrorKind::InvalidData,
                msg: other.to_string(),
            },
        }
    }

    fn error(&self) -> CaptureError {
        match self {
            KeptError::BadLine { line, fault } => CaptureError::BadLine {
                line: *line,
                fault: *fault,
            },
            KeptError::TooLong { line } => CaptureError::LineTooLong { line: *line },
            KeptError::Io { line, kind, msg } => {
                CaptureError::read(Position::Line(*line), io::Error::new(*kind, msg.clone()))
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Kept {
    Record {
        recv_ns: u64,
        conn_id: u32,
        kind: RecordKind,
        url: Option<Span>,
        payload: Span,
        line: u64,
    },
    Error(KeptError),
}

/// A whole cryptofeed capture in memory: every record parsed (and unescaped, decompressed)
/// once, kept in one buffer with an index, so iterating is borrowing only.
#[derive(Clone, Default)]
pub struct CryptofeedCapture {
    bytes: Vec<u8>,
    items: Vec<Kept>,
    version: Option<CryptofeedVersion>,
}

impl fmt::Debug for CryptofeedCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptofeedCapture")
            .field("version", &self.version)
            .field("bytes", &self.bytes.len())
            .field("items", &self.items.len())
            .finish()
    }
}

impl CryptofeedCapture {
    /// Parses a whole capture (v1 or v3, plain or zstd) read from `src`.
    pub fn from_reader(src: impl Read) -> Result<Self, CaptureError> {
        let mut r = CryptofeedReader::new(src)?;
        let mut me = Self {
            version: Some(r.version()),
            ..Self::default()
        };
        loop {
            match r.next() {
                Ok(Some(rec)) => {
                    let start = me.bytes.len();
                    me.bytes.extend_from_slice(rec.payload);
                    let payload = start..me.bytes.len();
                    let url = rec.url.map(|u| {
                        let s = me.bytes.len();
                        me.bytes.extend_from_slice(u);
                        s..me.bytes.len()
                    });
                    me.items.push(Kept::Record {
                        recv_ns: rec.recv_ns,
                        conn_id: rec.conn_id,
                        kind: rec.kind,
                        url,
                        payload,
                        line: rec.line,
                    });
                }
                Ok(None) => break,
                Err(e) => me.items.push(Kept::Error(KeptError::keep(e))),
            }
        }
        Ok(me)
    }

    /// Parses a capture held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CaptureError> {
        Self::from_reader(bytes)
    }

    /// Reads and parses a capture file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::from_reader(File::open(path)?)
    }

    /// The format.
    pub fn version(&self) -> CryptofeedVersion {
        self.version.unwrap_or(CryptofeedVersion::V1)
    }

    /// Records (and errors, in their place) in file order.
    pub fn iter(&self) -> CryptofeedIter<'_> {
        CryptofeedIter {
            capture: self,
            next: 0,
        }
    }
}

/// Borrowing iterator over a [`CryptofeedCapture`].
#[derive(Clone, Debug)]
pub struct CryptofeedIter<'a> {
    capture: &'a CryptofeedCapture,
    next: usize,
}

impl<'a> Iterator for CryptofeedIter<'a> {
    type Item = Result<CryptofeedRecord<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.capture.items.get(self.next)?;
        self.next += 1;
        let bytes = &self.capture.bytes;
        Some(match item {
            Kept::Record {
                recv_ns,
                conn_id,
                kind,
                url,
                payload,
                line,
            } => Ok(CryptofeedRecord {
                recv_ns: *recv_ns,
                conn_id: *conn_id,
                kind: *kind,
                url: url.clone().and_then(|u| bytes.get(u)),
                payload: bytes.get(payload.clone()).unwrap_or(&[]),
                line: *line,
            }),
            Kept::Error(e) => Err(e.error()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Owned = (u64, u32, RecordKind, Option<Vec<u8>>, Vec<u8>, u64);

    fn read_all(bytes: &[u8]) -> (Vec<Owned>, Vec<String>) {
        let mut r = CryptofeedReader::new(bytes).unwrap();
        let (mut recs, mut errs) = (Vec::new(), Vec::new());
        loop {
            match r.next() {
                Ok(Some(x)) => recs.push((
                    x.recv_ns,
                    x.conn_id,
                    x.kind,
                    x.url.map(<[u8]>::to_vec),
                    x.payload.to_vec(),
                    x.line,
                )),
                Ok(None) => break,
                Err(e) => errs.push(e.to_string()),
            }
        }
        // The in-memory form agrees.
        let mem = CryptofeedCapture::from_bytes(bytes).unwrap();
        let (mut mrecs, mut merrs) = (Vec::new(), Vec::new());
        for item in mem.iter() {
            match item {
                Ok(x) => mrecs.push((
                    x.recv_ns,
                    x.conn_id,
                    x.kind,
                    x.url.map(<[u8]>::to_vec),
                    x.payload.to_vec(),
                    x.line,
                )),
                Err(e) => merrs.push(e.to_string()),
            }
        }
        assert_eq!((&recs, &errs), (&mrecs, &merrs));
        (recs, errs)
    }

    #[test]
    fn seconds_parse_exactly() {
        assert_eq!(
            parse_seconds(b"1617566592.1065369"),
            Some(1_617_566_592_106_536_900)
        );
        assert_eq!(
            parse_seconds(b"1617566590.378895"),
            Some(1_617_566_590_378_895_000)
        );
        assert_eq!(parse_seconds(b"1.123456789999"), Some(1_123_456_789));
        assert_eq!(parse_seconds(b"42"), Some(42_000_000_000));
        assert_eq!(parse_seconds(b"0.000000001"), Some(1));
        for bad in [
            &b""[..],
            b".5",
            b"5.",
            b"1e9",
            b"-1.0",
            b"1.2.3",
            b"1 .2",
            b"18446744074.0",
        ] {
            assert_eq!(
                parse_seconds(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The largest representable second still parses; one more overflows.
        assert_eq!(parse_seconds(b"18446744073.709551615"), Some(u64::MAX));
        assert_eq!(parse_seconds(b"18446744073.709551616"), None);
    }

    #[test]
    fn detection_by_content() {
        use CryptofeedVersion::*;
        assert_eq!(detect(&ZSTD_MAGIC), Some(V3));
        assert_eq!(detect(b"{\"t\":\"header\"}\n"), Some(V3));
        assert_eq!(
            detect(b"wss://ws.okx.com:8443/ws/v5/public <-> 1652459224.53\n"),
            Some(V1)
        );
        assert_eq!(detect(b"https://x/depth?symbol=A -> 1.5: {}"), Some(V1));
        assert_eq!(detect(b"wss://x <- 1.5: {}"), Some(V1));
        assert_eq!(detect(b"\n1617566591.326123: {\"a\":1}"), Some(V1));
        // The hftbacktest line format and other text are not cryptofeed.
        assert_eq!(detect(b"1723161253937085768 {\"a\":1}"), None);
        // An integer time is seconds too, if it fits as nanoseconds.
        assert_eq!(detect(b"1723161253: {"), Some(V1));
        assert_eq!(detect(b"1723161253937085768: {"), None);
        assert_eq!(detect(b"hello world"), None);
        assert_eq!(detect(b"nothing://x <=> 1"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn v1_lines_become_records() {
        let text = b"wss://ws.okx.com:8443/ws/v5/public <-> 1652459224.5300605\n\
wss://ws.okx.com:8443/ws/v5/public <- 1652459225.2987883: {\"op\":\"subscribe\"}\n\
1652459225.5: {\"event\":\"subscribe\"}\r\n\
\n\
https://www.binance.com/api/v1/depth?symbol=DOTUSDT&limit=1000 -> 1617566592.1065369: {\"lastUpdateId\":1}\n\
wss://ws.okx.com:8443/ws/v5/public <-> 1652459226\n\
1652459227.25: {\"arg\":{}}";
        let (recs, errs) = read_all(text);
        assert!(errs.is_empty(), "{errs:?}");
        let url = b"wss://ws.okx.com:8443/ws/v5/public".to_vec();
        assert_eq!(
            recs,
            [
                (
                    1_652_459_224_530_060_500,
                    1,
                    RecordKind::Connect,
                    None,
                    url.clone(),
                    1
                ),
                (
                    1_652_459_225_298_788_300,
                    1,
                    RecordKind::Subscribe,
                    None,
                    b"{\"op\":\"subscribe\"}".to_vec(),
                    2
                ),
                (
                    1_652_459_225_500_000_000,
                    1,
                    RecordKind::TextFrame,
                    None,
                    b"{\"event\":\"subscribe\"}".to_vec(),
                    3
                ),
                (
                    1_617_566_592_106_536_900,
                    0,
                    RecordKind::Rest,
                    Some(
                        b"https://www.binance.com/api/v1/depth?symbol=DOTUSDT&limit=1000".to_vec()
                    ),
                    b"{\"lastUpdateId\":1}".to_vec(),
                    5
                ),
                (
                    1_652_459_226_000_000_000,
                    2,
                    RecordKind::Connect,
                    None,
                    url,
                    6
                ),
                (
                    1_652_459_227_250_000_000,
                    2,
                    RecordKind::TextFrame,
                    None,
                    b"{\"arg\":{}}".to_vec(),
                    7
                ),
            ]
        );
    }

    #[test]
    fn v1_bad_lines_are_counted_with_their_numbers() {
        let text = b"wss://x/ws <-> 1.0\n\
1.5 {\"no colon\"}\n\
abc: {}\n\
1.x: {}\n\
2.0: \n\
wss://x/ws <=> 3.0\n\
wss://x/ws <-> soon\n\
nospace\n\
99999999999999999999.0: {}\n\
4.0: {\"ok\":1}\n";
        let (recs, errs) = read_all(text);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].5, 10);
        assert_eq!(errs.len(), 8, "{errs:?}");
        for (e, line) in errs.iter().zip(2..) {
            assert!(e.contains(&format!("line {line}")), "{e}");
        }
    }

    fn envelope(t: &str, conn: &str, ts: &str, extra: &str) -> String {
        format!("{{\"t\":\"{t}\",\"conn\":\"{conn}\",\"ts\":{ts}{extra}}}\n")
    }

    fn v3_text() -> String {
        let mut s = String::from("{\"t\":\"header\",\"format\":2,\"exchange\":\"BYBIT\"}\n");
        s += &envelope("http", "B.http.1", "10.5", ",\"url\":\"https://api.bybit.com/v5/market/instruments-info?category=spot\",\"data\":\"{\\\"retCode\\\":0}\"");
        s += &envelope(
            "connect",
            "B.ws.2",
            "11.25",
            ",\"addr\":\"wss://stream.bybit.com/v5/public/linear\"",
        );
        s += &envelope("send", "B.ws.2", "12", ",\"addr\":\"wss://stream.bybit.com/v5/public/linear\",\"data\":\"{\\\"op\\\":\\\"subscribe\\\"}\"");
        s += &envelope(
            "recv",
            "B.ws.2",
            "13.000000001",
            ",\"data\":\"{\\\"topic\\\":\\\"a\\\\\\\"b\\\\u00e9\\\\ud83d\\\\ude00\\\"}\"",
        );
        s += &envelope(
            "connect",
            "B.ws.3",
            "11.5",
            ",\"addr\":\"wss://stream.bybit.com/v5/public/spot\"",
        );
        s += &envelope("recv", "B.ws.3", "14", ",\"data\":\"{}\"");
        s
    }

    #[test]
    fn v3_envelopes_become_records() {
        let text = v3_text();
        let (recs, errs) = read_all(text.as_bytes());
        assert!(errs.is_empty(), "{errs:?}");
        let kinds: Vec<_> = recs.iter().map(|r| (r.2, r.1, r.0)).collect();
        assert_eq!(
            kinds,
            [
                (RecordKind::Meta, 0, 0),
                (RecordKind::Rest, 1, 10_500_000_000),
                (RecordKind::Connect, 2, 11_250_000_000),
                (RecordKind::Subscribe, 2, 12_000_000_000),
                (RecordKind::TextFrame, 2, 13_000_000_001),
                (RecordKind::Connect, 3, 11_500_000_000),
                (RecordKind::TextFrame, 3, 14_000_000_000),
            ]
        );
        assert_eq!(recs[0].4, text.lines().next().unwrap().as_bytes());
        assert_eq!(
            recs[1].3.as_deref(),
            Some(&b"https://api.bybit.com/v5/market/instruments-info?category=spot"[..])
        );
        assert_eq!(recs[1].4, b"{\"retCode\":0}");
        assert_eq!(recs[2].4, b"wss://stream.bybit.com/v5/public/linear");
        assert_eq!(recs[3].4, b"{\"op\":\"subscribe\"}");
        // Escapes in the frame are undone: \" stays an escaped quote *inside* the frame's JSON.
        assert_eq!(
            std::str::from_utf8(&recs[4].4).unwrap(),
            "{\"topic\":\"a\\\"b\\u00e9\\ud83d\\ude00\"}"
        );
    }

    #[test]
    fn v3_zstd_single_and_concatenated_frames() {
        use ruzstd::encoding::{compress_to_vec, CompressionLevel};
        let text = v3_text();
        let (want, _) = read_all(text.as_bytes());
        let one = compress_to_vec(text.as_bytes(), CompressionLevel::Fastest);
        assert!(one.starts_with(&ZSTD_MAGIC));
        let mut r = CryptofeedReader::new(&one[..]).unwrap();
        assert!(r.is_zstd());
        assert_eq!(r.version(), CryptofeedVersion::V3);
        let (got, errs) = read_all(&one);
        assert!(errs.is_empty());
        assert_eq!(got, want);
        // Two frames, split mid-line.
        let cut = text.len() / 2;
        let mut two = compress_to_vec(&text.as_bytes()[..cut], CompressionLevel::Fastest);
        two.extend(compress_to_vec(
            &text.as_bytes()[cut..],
            CompressionLevel::Fastest,
        ));
        assert_eq!(read_all(&two).0, want);
        assert!(r.next().unwrap().is_some());
    }

    #[test]
    fn v3_hostile_input_is_counted_never_a_panic() {
        let lines = [
            "{\"t\":\"header\"}",
            "not json",
            "[1,2]",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":1.5}",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":1e9,\"data\":\"{}\"}",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":\"1.5\",\"data\":\"{}\"}",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":-1.5,\"data\":\"{}\"}",
            "{\"t\":\"warp\",\"conn\":\"c\",\"ts\":1.5,\"data\":\"{}\"}",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":1.5,\"data\":{}}",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":1.5,\"data\":\"\"}",
            "{\"t\":\"connect\",\"conn\":\"c\",\"ts\":1.5}",
            "{\"t\":\"http\",\"conn\":\"c\",\"ts\":1.5,\"data\":\"{}\"}",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":1.5,\"data\":\"{}\"} trailing",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":1.5,\"data\":\"\\x\"}",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":1.5,\"data\":\"{}\"",
            "{\"t\":\"recv\",\"conn\":\"c\",\"ts\":2.5,\"data\":\"{}\"}",
        ];
        let text = lines.join("\n");
        let (recs, errs) = read_all(text.as_bytes());
        assert_eq!(recs.len(), 2, "{errs:?}");
        assert_eq!(recs[0].2, RecordKind::Meta);
        assert_eq!((recs[1].0, recs[1].5), (2_500_000_000, 16));
        assert_eq!(errs.len(), 14);
        for (e, line) in errs.iter().zip(2..) {
            assert!(e.contains(&format!("line {line}:")), "{e}");
        }
    }

    #[test]
    fn truncated_and_corrupt_zstd_end_with_one_error() {
        use ruzstd::encoding::{compress_to_vec, CompressionLevel};
        let mut text = String::new();
        for i in 0..5_000 {
            text += &envelope(
                "recv",
                "c",
                &format!("{i}.5"),
                &format!(",\"data\":\"{{\\\"n\\\":{i}}}\""),
            );
        }
        let z = compress_to_vec(text.as_bytes(), CompressionLevel::Fastest);
        for cut in [5, z.len() / 3, z.len() - 1] {
            let mut r = CryptofeedReader::new(&z[..cut]).unwrap();
            let mut n = 0;
            let err = loop {
                match r.next() {
                    Ok(Some(_)) => n += 1,
                    Ok(None) => break None,
                    Err(e) if e.is_recoverable() => {}
                    Err(e) => break Some(e),
                }
            };
            let err = err.unwrap_or_else(|| panic!("cut at {cut}: no error after {n} records"));
            assert!(
                matches!(
                    err,
                    CaptureError::Io {
                        at: Some(Position::Line(_)),
                        ..
                    }
                ),
                "{err}"
            );
            assert!(n < 5_000);
            assert!(r.next().unwrap().is_none());
        }
        // Garbage after the magic, and a frame claiming a window larger than allowed.
        let mut bad = ZSTD_MAGIC.to_vec();
        bad.extend_from_slice(&[0xff; 16]);
        let (recs, errs) = read_all(&bad);
        assert!(recs.is_empty());
        assert_eq!(errs.len(), 1, "{errs:?}");
        // Frame header descriptor 0 (window descriptor follows), window descriptor 0xF8:
        // exponent 31 -> a 2 GiB window.
        let huge = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00];
        let (recs, errs) = read_all(&huge);
        assert!(recs.is_empty());
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn a_zstd_bomb_is_refused() {
        use ruzstd::encoding::{compress_to_vec, CompressionLevel};
        // 64 MiB of one byte compresses to a few KiB: far past 512:1.
        let text = vec![b'x'; 64 << 20];
        let z = compress_to_vec(&text[..], CompressionLevel::Fastest);
        assert!((z.len() as u64) * MAX_ZSTD_RATIO + ZSTD_RATIO_SLACK < text.len() as u64);
        let mut r = CryptofeedReader::new(&z[..]).unwrap();
        let err = loop {
            match r.next() {
                Ok(Some(_)) => panic!("a record from a bomb"),
                Ok(None) => panic!("no error"),
                Err(e) if e.is_recoverable() => {}
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("decompression bomb"), "{err}");
    }

    #[test]
    fn overlong_line_is_skipped() {
        let mut text = b"1.0: {}\n2.0: ".to_vec();
        text.resize(text.len() + MAX_LINE_LEN, b'x');
        text.extend_from_slice(b"\n3.0: {}\n");
        let mut r = CryptofeedReader::new(&text[..]).unwrap();
        assert_eq!(r.version(), CryptofeedVersion::V1);
        assert_eq!(r.next().unwrap().unwrap().recv_ns, 1_000_000_000);
        assert!(matches!(
            r.next(),
            Err(CaptureError::LineTooLong { line: 2 })
        ));
        let rec = r.next().unwrap().unwrap();
        assert_eq!((rec.recv_ns, rec.line), (3_000_000_000, 3));
        assert!(r.next().unwrap().is_none());
    }
}
