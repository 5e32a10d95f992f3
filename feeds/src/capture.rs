//! Capture formats: the hftbacktest line format we read, and Tickline's own framed format (`.tlc`).
//!
//! # Line format (read only)
//!
//! One received frame a line: `<recv_ns> <raw JSON>\n`, plain text or gzip (detected by the gzip
//! magic `1f 8b`, decoded with [`MultiGzDecoder`] so concatenated members are read too). `\r\n` is
//! tolerated, empty lines are skipped, and a malformed line (no space, a non-numeric receive time,
//! nothing after the space) is reported as [`CaptureError::BadLine`] with its 1-based line number
//! without ending the stream: the caller counts it and calls `next` again.
//!
//! - [`LineReader`] streams from any [`Read`] with one reused line buffer (no allocation per line
//!   once the buffer has grown to the longest line).
//! - [`LineCapture`] holds a whole (decompressed) capture in memory and iterates over borrowed
//!   records, so a replay can load first and then run with no I/O at all.
//!
//! # Tickline format (`.tlc`)
//!
//! A fixed header, then append-only framed records. Every integer is **little-endian**.
//!
//! File header (32 bytes in version 1):
//!
//! | offset | size | field | notes |
//! |---:|---:|---|---|
//! | 0 | 8 | magic | `89 54 4C 43 0D 0A 1A 0A` (`\x89TLC\r\n\x1a\n`): non-ASCII first byte, so never confused with a line capture or gzip; mangled line endings are detected |
//! | 8 | 2 | format version | `u16`, currently [`FORMAT_VERSION`] = 1. Readers refuse other versions ([`CaptureError::UnsupportedVersion`]) |
//! | 10 | 2 | header length | `u16`, bytes from the start of the file to the first record; at least 32. Fields 0..12 keep their place in every version |
//! | 12 | 4 | flags | `u32`, none defined in version 1 (written 0, unknown bits ignored) |
//! | 16 | 8 | creation time | `u64`, nanoseconds since the Unix epoch (wall clock) |
//! | 24 | 4 | reserved | written 0 |
//! | 28 | 4 | header CRC32 | `crc32fast` over every header byte except these four |
//!
//! Record (24-byte record header, then the payload):
//!
//! | offset | size | field | notes |
//! |---:|---:|---|---|
//! | 0 | 4 | payload length | `u32`, at most [`MAX_PAYLOAD`] (16 MiB); larger is [`CaptureError::Corrupt`] |
//! | 4 | 4 | CRC32 | `crc32fast` over bytes 0..4 and 8..24 of the record header, then the payload |
//! | 8 | 8 | recv_ns | `u64`, receive time as stamped by the I/O thread |
//! | 16 | 4 | connection id | `u32`, which connection the frame came from (the writer's numbering) |
//! | 20 | 1 | kind | [`RecordKind`] code |
//! | 21 | 3 | reserved | written 0; covered by the CRC; ignored by readers |
//! | 24 | len | payload | raw bytes, meaning set by the kind |
//!
//! Record kinds and their payloads:
//!
//! | code | kind | payload |
//! |---:|---|---|
//! | 1 | [`RecordKind::TextFrame`] | a WebSocket text frame's bytes, as received |
//! | 2 | [`RecordKind::BinaryFrame`] | a WebSocket binary frame's bytes, as received |
//! | 3 | [`RecordKind::Connect`] | the URL connected to (UTF-8) |
//! | 4 | [`RecordKind::Disconnect`] | a reason in text (may be empty) |
//! | 5 | [`RecordKind::Subscribe`] | the subscribe request as sent |
//! | 6 | [`RecordKind::Snapshot`] | `<SYMBOL> <REST JSON body>`: the symbol (no spaces), one space, then the REST response body verbatim (Binance's REST depth body carries no symbol) |
//! | other | [`RecordKind::Other`] | unknown to this version; readers pass it through |
//!
//! A record is written with two `write_all` calls (header, payload); wrap the writer in a
//! `BufWriter` for small frames. Readers never trust a record until its CRC matches, so a file can
//! be read while it is written: a record not yet complete is [`ReadOutcome::Incomplete`], and
//! calling [`CaptureReader::next`] again after more bytes arrive continues from the same place.
//! A corrupted length of at most 16 MiB is indistinguishable from a torn record until the bytes
//! it claims are present (then the CRC catches it). [`CaptureReader`] never skips past
//! corruption: after [`CaptureError::Corrupt`] the same error is returned again (there is no
//! resynchronisation); [`ReplayReader`] reports it once and ends.
//!
//! [`CaptureFormat::detect`] tells the two formats apart by their first bytes, never by the file
//! extension; [`ReplayReader`] (streaming) and [`LoadedCapture`] (in memory) read either.
//!
//! # Sizes read from a file are claims, never capacities
//!
//! A capture may be corrupt or hostile, so no size it states is allocated on its word:
//!
//! - **gzip trailer (ISIZE)**: [`LineCapture::from_bytes`] reserves the claimed size only up to
//!   what the input could possibly decompress to ([`MAX_DEFLATE_RATIO`] times its length) and
//!   at most [`MAX_GZIP_RESERVATION`]; past that the buffer grows with the data actually
//!   decompressed. A trailer that does not match its data is [`CaptureError::BadGzip`]. (A
//!   45-byte file claiming 3.8 GB reserves 46 KB and fails with that error.)
//! - **`.tlc` record length**: at most [`MAX_PAYLOAD`], else [`CaptureError::Corrupt`]. In memory
//!   it is checked against the bytes remaining before anything is read
//!   ([`CaptureError::Truncated`] if the file ends first); [`CaptureReader`] grows its buffer only
//!   as bytes arrive (doubling, to at most twice what the source delivered), so a length
//!   claiming 16 MiB in a file that holds 20 more bytes costs nothing beyond the 64 KiB read
//!   buffer.
//! - **`.tlc` header length**: a `u16`, at least [`HEADER_LEN`]; read the same way.
//! - **Lines**: read with a reused buffer capped at [`MAX_LINE_LEN`], which grows only with the
//!   bytes of the line.

use crate::framing::{header_crc, le_u16, le_u32, le_u64};
use core::fmt;
use flate2::bufread::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

/// The `.tlc` magic: `\x89TLC\r\n\x1a\n`.
pub const MAGIC: [u8; 8] = [0x89, b'T', b'L', b'C', b'\r', b'\n', 0x1a, b'\n'];
/// The `.tlc` format version this module writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of a version-1 file header.
pub const HEADER_LEN: usize = 32;
/// Length of a record header (before the payload).
pub const RECORD_HEADER_LEN: usize = 24;
/// Largest payload a record may carry: 16 MiB.
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Longest line the line readers accept (a payload of [`MAX_PAYLOAD`] plus the timestamp).
pub const MAX_LINE_LEN: usize = MAX_PAYLOAD + 32;
/// The gzip magic bytes.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Bytes of the header before the part that may grow: magic, version, header length.
const HEADER_FIXED: usize = 12;
const HEADER_CRC_AT: usize = 28;
const READ_CHUNK: usize = 64 << 10;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Where in a capture something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// A 1-based line number (line format).
    Line(u64),
    /// A byte offset from the start of the file (`.tlc`).
    Offset(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Offset(o) => write!(f, "byte offset {o}"),
        }
    }
}

/// What is wrong with a malformed line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFault {
    /// No space separating the receive time from the payload.
    NoSpace,
    /// The receive time is empty, not all digits, or does not fit in a `u64`.
    BadTimestamp,
    /// Nothing after the space.
    EmptyPayload,
}

impl fmt::Display for LineFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFault::NoSpace => "no space between receive time and payload",
            LineFault::BadTimestamp => "receive time is not a u64 of decimal digits",
            LineFault::EmptyPayload => "empty payload",
        })
    }
}

/// Everything that can go wrong reading or writing a capture.
#[derive(Debug)]
pub enum CaptureError {
    /// An I/O error; `at` says where in the capture when reading.
    Io {
        /// Line or byte offset being read, if known.
        at: Option<Position>,
        /// The underlying error.
        source: io::Error,
    },
    /// A malformed line in a line capture; reading may continue with the next line.
    BadLine {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        fault: LineFault,
    },
    /// A line longer than [`MAX_LINE_LEN`]; the rest of it is skipped and reading may continue.
    LineTooLong {
        /// 1-based line number.
        line: u64,
    },
    /// The file does not start with the `.tlc` magic.
    BadMagic,
    /// A `.tlc` file of a format version this build cannot read.
    UnsupportedVersion(u16),
    /// A CRC mismatch or an impossible length at this byte offset (the start of the header or
    /// record concerned).
    Corrupt {
        /// Byte offset of the record (0 for the file header).
        offset: u64,
    },
    /// The capture ends inside a record (or the header) and no more bytes can come (in-memory
    /// captures and [`ReplayReader`]; a live [`CaptureReader`] says [`ReadOutcome::Incomplete`]).
    Truncated {
        /// Byte offset of the incomplete record.
        offset: u64,
        /// Bytes of it present.
        have: usize,
        /// Bytes it needs (a lower bound while its header is incomplete).
        need: usize,
    },
    /// A payload larger than [`MAX_PAYLOAD`] was offered to the writer; nothing was written.
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A snapshot symbol that is empty or contains whitespace; nothing was written.
    BadSnapshotSymbol,
    /// A gzip capture read into memory that does not decompress: corrupt deflate data, or a
    /// member trailer (CRC32, ISIZE) that does not match what its data decompresses to.
    BadGzip {
        /// Length of the gzip file.
        compressed: u64,
        /// The size the last member's trailer claims (mod 2^32).
        claimed: u32,
        /// Bytes decompressed before the error.
        decompressed: u64,
        /// The decompressor's error.
        source: io::Error,
    },
}

impl CaptureError {
    /// True when the reader that returned this error can go on to the next record (a malformed
    /// or over-long line). Every other error ends reading: [`LineReader`] and [`ReplayReader`]
    /// return `Ok(None)` after reporting one; [`CaptureReader`] returns it again.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            CaptureError::BadLine { .. } | CaptureError::LineTooLong { .. }
        )
    }

    fn read(at: Position, source: io::Error) -> Self {
        CaptureError::Io {
            at: Some(at),
            source,
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io { at: Some(at), source } => write!(f, "I/O error at {at}: {source}"),
            CaptureError::Io { at: None, source } => write!(f, "I/O error: {source}"),
            CaptureError::BadLine { line, fault } => write!(f, "malformed line {line}: {fault}"),
            CaptureError::LineTooLong { line } => {
                write!(f, "line {line} is longer than {MAX_LINE_LEN} bytes; skipped")
            }
            CaptureError::BadMagic => f.write_str("not a Tickline capture (bad magic)"),
            CaptureError::UnsupportedVersion(v) => write!(
                f,
                "Tickline capture format version {v} is not supported (this build reads {FORMAT_VERSION})"
            ),
            CaptureError::Corrupt { offset } => write!(
                f,
                "corrupt capture at byte offset {offset} (CRC mismatch or impossible length)"
            ),
            CaptureError::Truncated { offset, have, need } => write!(
                f,
                "capture ends inside the record at byte offset {offset} ({have} of {need} bytes)"
            ),
            CaptureError::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the {max}-byte limit")
            }
            CaptureError::BadSnapshotSymbol => {
                f.write_str("snapshot symbol must be non-empty and contain no whitespace")
            }
            CaptureError::BadGzip {
                compressed,
                claimed,
                decompressed,
                source,
            } => write!(
                f,
                "corrupt gzip capture ({compressed} bytes; its trailer claims {claimed} bytes \
                 uncompressed, {decompressed} decompressed before the error): {source}"
            ),
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Io { source, .. } => Some(source),
            // Its message already ends with the decompressor's, so a chain would say it twice.
            _ => None,
        }
    }
}

impl From<io::Error> for CaptureError {
    fn from(source: io::Error) -> Self {
        CaptureError::Io { at: None, source }
    }
}

// ---------------------------------------------------------------------------------------------
// Line format
// ---------------------------------------------------------------------------------------------

/// One line of a line capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRecord<'a> {
    /// Receive time, nanoseconds, as recorded.
    pub recv_ns: u64,
    /// The raw JSON (without the line ending).
    pub payload: &'a [u8],
    /// 1-based line number.
    pub line: u64,
}

/// Parses one line (without its `\n`). `Ok(None)` for an empty line.
fn parse_line(mut line: &[u8], line_no: u64) -> Result<Option<LineRecord<'_>>, CaptureError> {
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if line.is_empty() {
        return Ok(None);
    }
    let bad = |fault| CaptureError::BadLine {
        line: line_no,
        fault,
    };
    let sp = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(bad(LineFault::NoSpace))?;
    let recv_ns = parse_u64(&line[..sp]).ok_or(bad(LineFault::BadTimestamp))?;
    let payload = &line[sp + 1..];
    if payload.is_empty() {
        return Err(bad(LineFault::EmptyPayload));
    }
    Ok(Some(LineRecord {
        recv_ns,
        payload,
        line: line_no,
    }))
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// Plain or gzip source behind one `BufRead`.
enum LineSource<R: Read> {
    Plain(BufReader<R>),
    Gzip(BufReader<MultiGzDecoder<BufReader<R>>>),
}

impl<R: Read> Read for LineSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            LineSource::Plain(r) => r.read(buf),
            LineSource::Gzip(r) => r.read(buf),
        }
    }
}

impl<R: Read> BufRead for LineSource<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            LineSource::Plain(r) => r.fill_buf(),
            LineSource::Gzip(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            LineSource::Plain(r) => r.consume(amt),
            LineSource::Gzip(r) => r.consume(amt),
        }
    }
}

/// Streams a line capture (plain or gzip) one line at a time, reusing one buffer.
///
/// ```no_run
/// # fn main() -> Result<(), feeds::capture::CaptureError> {
/// let mut r = feeds::capture::LineReader::open("btcusdt_20240808.gz")?;
/// let (mut ok, mut bad) = (0u64, 0u64);
/// loop {
///     match r.next() {
///         Ok(Some(rec)) => { ok += 1; let _ = (rec.recv_ns, rec.payload); }
///         Ok(None) => break,
///         Err(feeds::capture::CaptureError::BadLine { .. }) => bad += 1,
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok(()) }
/// ```
pub struct LineReader<R: Read> {
    src: LineSource<R>,
    buf: Vec<u8>,
    line: u64,
    gzip: bool,
    /// The previous line was too long; discard up to the next `\n` first.
    skipping: bool,
    /// A read failed (say, corrupt gzip): the stream has ended.
    failed: bool,
}

impl<R: Read> fmt::Debug for LineReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("line", &self.line)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl LineReader<File> {
    /// Opens a line capture file (plain or gzip).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::new(File::open(path)?)
    }
}

impl<R: Read> LineReader<R> {
    /// Wraps a reader, detecting gzip from its first bytes.
    pub fn new(inner: R) -> Result<Self, CaptureError> {
        let mut plain = BufReader::with_capacity(READ_CHUNK, inner);
        let gzip = plain
            .fill_buf()
            .map_err(|e| CaptureError::read(Position::Line(1), e))?
            .starts_with(&GZIP_MAGIC);
        let src = if gzip {
            LineSource::Gzip(BufReader::with_capacity(
                READ_CHUNK,
                MultiGzDecoder::new(plain),
            ))
        } else {
            LineSource::Plain(plain)
        };
        Ok(Self {
            src,
            buf: Vec::with_capacity(4096),
            line: 0,
            gzip,
            skipping: false,
            failed: false,
        })
    }

    /// True when the source is gzip.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// 1-based number of the last line read (0 before the first).
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// The next non-empty line. `Ok(None)` at the end; a malformed line is an error naming its
    /// line number, and the following call continues with the next line. After an I/O error
    /// (for example corrupt gzip data) the stream has ended: later calls return `Ok(None)`.
    #[allow(clippy::should_implement_trait)] // lending: the record borrows the reader's buffer
    pub fn next(&mut self) -> Result<Option<LineRecord<'_>>, CaptureError> {
        if self.failed {
            return Ok(None);
        }
        if self.skipping {
            if let Err(e) = self.src.skip_until(b'\n') {
                self.failed = true;
                return Err(CaptureError::read(Position::Line(self.line), e));
            }
            self.skipping = false;
        }
        loop {
            self.buf.clear();
            let n = match (&mut self.src)
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
            if end == 0 || (end == 1 && self.buf[0] == b'\r') {
                continue;
            }
            return parse_line(&self.buf[..end], self.line);
        }
    }
}

/// The most a deflate stream can expand: 1032 output bytes per input byte (RFC 1951's longest
/// match, 258 bytes, coded in at most two bits, and a little header). No gzip file can
/// decompress to more than this many times its own length (a handful of bytes aside).
pub const MAX_DEFLATE_RATIO: usize = 1032;
/// The most [`LineCapture::from_bytes`] reserves ahead of decompression (64 MiB): past it the
/// buffer grows as real data decompresses.
pub const MAX_GZIP_RESERVATION: usize = 64 << 20;

/// The size the last gzip member's trailer claims (ISIZE: its uncompressed length mod 2^32);
/// 0 for input shorter than a trailer.
fn gzip_trailer_size(bytes: &[u8]) -> u32 {
    match bytes.get(bytes.len().saturating_sub(4)..) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// How many bytes to reserve before decompressing `compressed` bytes of gzip whose trailer
/// claims `claimed`: the claim (exact for a one-member file, so one allocation), but never more
/// than the input can produce ([`MAX_DEFLATE_RATIO`] times its length) nor more than
/// [`MAX_GZIP_RESERVATION`]. A trailer that lies costs at most that much, never 4 GiB; the
/// buffer still grows to whatever the data really decompresses to.
pub fn gzip_reservation(compressed: usize, claimed: u32) -> usize {
    (claimed as usize)
        .min(compressed.saturating_mul(MAX_DEFLATE_RATIO))
        .min(MAX_GZIP_RESERVATION)
}

/// A whole line capture in memory (decompressed), for replay and benchmarks with no I/O.
#[derive(Clone, Default)]
pub struct LineCapture {
    data: Vec<u8>,
}

impl fmt::Debug for LineCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineCapture")
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl LineCapture {
    /// Takes the bytes of a capture file, decompressing them if they are gzip.
    ///
    /// The gzip trailer's size field (ISIZE) is a claim made by the file, so it is only a hint:
    /// see [`gzip_reservation`]. A trailer that does not match the data (CRC32 or size) is
    /// [`CaptureError::BadGzip`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, CaptureError> {
        if !bytes.starts_with(&GZIP_MAGIC) {
            return Ok(Self { data: bytes });
        }
        let claimed = gzip_trailer_size(&bytes);
        let mut data = Vec::with_capacity(gzip_reservation(bytes.len(), claimed));
        if let Err(source) = MultiGzDecoder::new(&bytes[..]).read_to_end(&mut data) {
            return Err(CaptureError::BadGzip {
                compressed: bytes.len() as u64,
                claimed,
                decompressed: data.len() as u64,
                source,
            });
        }
        Ok(Self { data })
    }

    /// Reads a capture file into memory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::from_bytes(std::fs::read(path)?)
    }

    /// The decompressed text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Iterates over the lines: `Ok` records, and an `Err` for each malformed line (the iteration
    /// goes on after it). Empty lines are skipped.
    pub fn iter(&self) -> LineIter<'_> {
        LineIter {
            rest: &self.data,
            line: 0,
        }
    }

    /// Same as [`LineCapture::iter`].
    pub fn records(&self) -> LineIter<'_> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a LineCapture {
    type Item = Result<LineRecord<'a>, CaptureError>;
    type IntoIter = LineIter<'a>;
    fn into_iter(self) -> LineIter<'a> {
        self.iter()
    }
}

/// Borrowing iterator over a [`LineCapture`].
#[derive(Clone, Debug)]
pub struct LineIter<'a> {
    rest: &'a [u8],
    line: u64,
}

impl<'a> Iterator for LineIter<'a> {
    type Item = Result<LineRecord<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[self.rest.len()..]),
            };
            self.rest = rest;
            self.line += 1;
            match parse_line(line, self.line) {
                Ok(None) => continue,
                Ok(Some(r)) => return Some(Ok(r)),
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Tickline format: kinds, header, record codec
// ---------------------------------------------------------------------------------------------

/// What a `.tlc` record holds; see the module docs for each payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A WebSocket text frame (code 1).
    TextFrame,
    /// A WebSocket binary frame (code 2).
    BinaryFrame,
    /// A connection was opened; payload is the URL (code 3).
    Connect,
    /// A connection closed; payload is a reason, possibly empty (code 4).
    Disconnect,
    /// A subscribe request as sent (code 5).
    Subscribe,
    /// A REST snapshot: `<SYMBOL> <REST JSON body>` (code 6).
    Snapshot,
    /// A code this version does not know, kept for forward compatibility. Only produced for
    /// codes without a named kind; writing `Other(1)` writes code 1, which reads back as
    /// [`RecordKind::TextFrame`].
    Other(u8),
}

impl RecordKind {
    /// Decodes a kind code.
    pub const fn from_u8(code: u8) -> Self {
        match code {
            1 => RecordKind::TextFrame,
            2 => RecordKind::BinaryFrame,
            3 => RecordKind::Connect,
            4 => RecordKind::Disconnect,
            5 => RecordKind::Subscribe,
            6 => RecordKind::Snapshot,
            c => RecordKind::Other(c),
        }
    }

    /// The kind's code on disk.
    pub const fn as_u8(self) -> u8 {
        match self {
            RecordKind::TextFrame => 1,
            RecordKind::BinaryFrame => 2,
            RecordKind::Connect => 3,
            RecordKind::Disconnect => 4,
            RecordKind::Subscribe => 5,
            RecordKind::Snapshot => 6,
            RecordKind::Other(c) => c,
        }
    }
}

/// The decoded `.tlc` file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureHeader {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u16,
    /// Bytes before the first record.
    pub header_len: u16,
    /// Flags (none defined in version 1).
    pub flags: u32,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
}

impl CaptureHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&self.version.to_le_bytes());
        h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        h[12..16].copy_from_slice(&self.flags.to_le_bytes());
        h[16..24].copy_from_slice(&self.created_ns.to_le_bytes());
        let crc = header_crc(&h, HEADER_CRC_AT);
        h[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

/// Result of looking at the start of a buffer for a header or record.
enum Peek<T> {
    /// Complete: the value and the bytes it spans.
    Done(T, usize),
    /// At least this many bytes are needed.
    Need(usize),
}

/// Decodes a file header from the start of `b`.
fn peek_header(b: &[u8]) -> Result<Peek<CaptureHeader>, CaptureError> {
    let m = b.len().min(MAGIC.len());
    if b[..m] != MAGIC[..m] {
        return Err(CaptureError::BadMagic);
    }
    if b.len() < HEADER_FIXED {
        return Ok(Peek::Need(HEADER_LEN));
    }
    let version = le_u16(b, 8);
    if version != FORMAT_VERSION {
        return Err(CaptureError::UnsupportedVersion(version));
    }
    let header_len = le_u16(b, 10);
    if (header_len as usize) < HEADER_LEN {
        return Err(CaptureError::Corrupt { offset: 0 });
    }
    let hl = header_len as usize;
    if b.len() < hl {
        return Ok(Peek::Need(hl));
    }
    let h = &b[..hl];
    if le_u32(h, HEADER_CRC_AT) != header_crc(h, HEADER_CRC_AT) {
        return Err(CaptureError::Corrupt { offset: 0 });
    }
    Ok(Peek::Done(
        CaptureHeader {
            version,
            header_len,
            flags: le_u32(h, 12),
            created_ns: le_u64(h, 16),
        },
        hl,
    ))
}

/// One `.tlc` record, borrowing its payload from the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record in the file.
    pub offset: u64,
    /// Receive time, nanoseconds.
    pub recv_ns: u64,
    /// Connection id.
    pub conn_id: u32,
    /// What the payload is.
    pub kind: RecordKind,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// For a [`RecordKind::Snapshot`] record, its `(symbol, REST body)`; `None` for other kinds or
    /// a payload without the separating space.
    pub fn snapshot(&self) -> Option<(&'a [u8], &'a [u8])> {
        match self.kind {
            RecordKind::Snapshot => split_snapshot_payload(self.payload),
            _ => None,
        }
    }
}

/// Splits a snapshot payload `<SYMBOL> <body>` at its first space.
pub fn split_snapshot_payload(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = payload.iter().position(|&b| b == b' ')?;
    Some((&payload[..sp], &payload[sp + 1..]))
}

/// Decodes the record at the start of `b` (at file offset `offset`), checking length and CRC.
fn peek_record(b: &[u8], offset: u64) -> Result<Peek<Record<'_>>, CaptureError> {
    if b.len() < RECORD_HEADER_LEN {
        return Ok(Peek::Need(RECORD_HEADER_LEN));
    }
    let len = le_u32(b, 0) as usize;
    if len > MAX_PAYLOAD {
        return Err(CaptureError::Corrupt { offset });
    }
    let total = RECORD_HEADER_LEN + len;
    if b.len() < total {
        return Ok(Peek::Need(total));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[0..4]);
    crc.update(&b[8..total]);
    if crc.finalize() != le_u32(b, 4) {
        return Err(CaptureError::Corrupt { offset });
    }
    Ok(Peek::Done(
        Record {
            offset,
            recv_ns: le_u64(b, 8),
            conn_id: le_u32(b, 16),
            kind: RecordKind::from_u8(b[20]),
            payload: &b[RECORD_HEADER_LEN..total],
        },
        total,
    ))
}

fn record_header(len: usize, recv_ns: u64, conn_id: u32, kind: RecordKind) -> [u8; 24] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[8..16].copy_from_slice(&recv_ns.to_le_bytes());
    h[16..20].copy_from_slice(&conn_id.to_le_bytes());
    h[20] = kind.as_u8();
    h
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// Appends records to a `.tlc` capture.
///
/// After an error from the underlying writer a partial record may have been written; a reader
/// sees it as a torn last record. Discard the writer then.
pub struct CaptureWriter<W: Write> {
    inner: W,
    records: u64,
    bytes: u64,
}

impl<W: Write> fmt::Debug for CaptureWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("records", &self.records)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the header (creation time now, by the wall clock) and returns the writer.
    pub fn new(inner: W) -> Result<Self, CaptureError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::with_header(inner, now, 0)
    }

    /// Writes a header with the given creation time and flags (for reproducible files).
    pub fn with_header(mut inner: W, created_ns: u64, flags: u32) -> Result<Self, CaptureError> {
        let h = CaptureHeader {
            version: FORMAT_VERSION,
            header_len: HEADER_LEN as u16,
            flags,
            created_ns,
        };
        inner.write_all(&h.encode())?;
        Ok(Self {
            inner,
            records: 0,
            bytes: HEADER_LEN as u64,
        })
    }

    /// Appends one record. A payload over [`MAX_PAYLOAD`] is refused and nothing is written.
    pub fn append(
        &mut self,
        recv_ns: u64,
        conn_id: u32,
        kind: RecordKind,
        payload: &[u8],
    ) -> Result<(), CaptureError> {
        self.append_parts(recv_ns, conn_id, kind, &[payload])
    }

    /// Appends a [`RecordKind::Snapshot`] record `<symbol> <body>` without concatenating first.
    pub fn append_snapshot(
        &mut self,
        recv_ns: u64,
        conn_id: u32,
        symbol: &[u8],
        body: &[u8],
    ) -> Result<(), CaptureError> {
        if symbol.is_empty() || symbol.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(CaptureError::BadSnapshotSymbol);
        }
        self.append_parts(
            recv_ns,
            conn_id,
            RecordKind::Snapshot,
            &[symbol, b" ", body],
        )
    }

    fn append_parts(
        &mut self,
        recv_ns: u64,
        conn_id: u32,
        kind: RecordKind,
        parts: &[&[u8]],
    ) -> Result<(), CaptureError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_PAYLOAD {
            return Err(CaptureError::PayloadTooLarge {
                len,
                max: MAX_PAYLOAD,
            });
        }
        let mut h = record_header(len, recv_ns, conn_id, kind);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[0..4]);
        crc.update(&h[8..24]);
        for p in parts {
            crc.update(p);
        }
        h[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        self.inner.write_all(&h)?;
        for p in parts {
            self.inner.write_all(p)?;
        }
        self.records += 1;
        self.bytes += (RECORD_HEADER_LEN + len) as u64;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.inner.flush()?;
        Ok(())
    }

    /// Records appended so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying writer, mutably (writing to it directly corrupts the capture).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Unwraps the writer (not flushed).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming reader
// ---------------------------------------------------------------------------------------------

/// What [`CaptureReader::next`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome<'a> {
    /// A complete record whose CRC matched.
    Record(Record<'a>),
    /// The source is exhausted at a clean record boundary.
    End,
    /// The source ends inside the header or a record: a torn last record, or a writer still
    /// writing. Call `next` again after more bytes arrive.
    Incomplete {
        /// Bytes of the record (or header) present.
        have: usize,
        /// Bytes needed; a lower bound while the record header itself is incomplete.
        need: usize,
    },
}

/// Reads a `.tlc` capture incrementally from any [`Read`], also while it is being written.
///
/// One buffer is reused (it grows only to the largest record seen), so steady-state reading
/// allocates nothing. A source that returns `WouldBlock` is treated like one at its end.
pub struct CaptureReader<R: Read> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    header: Option<CaptureHeader>,
}

impl<R: Read> fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("offset", &self.offset)
            .field("buffered", &(self.end - self.start))
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl CaptureReader<File> {
    /// Opens a `.tlc` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::new(File::open(path)?)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Wraps a source and reads the header if it is there already: a wrong magic or version is
    /// an error now; a header not yet (completely) written is read by a later `next`.
    pub fn new(src: R) -> Result<Self, CaptureError> {
        let mut r = Self {
            src,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            offset: 0,
            header: None,
        };
        r.try_header()?;
        Ok(r)
    }

    /// The file header, once read.
    pub fn header(&self) -> Option<&CaptureHeader> {
        self.header.as_ref()
    }

    /// File offset of the next record to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Tries to make `need` bytes available from `start`; false if the source ran dry first.
    ///
    /// `need` comes from the file (a record's length), so it is never taken as a capacity: the
    /// buffer grows (doubling, up to `need`) only when it is full of bytes actually read, so it
    /// stays within twice the bytes the source really delivered (and at least [`READ_CHUNK`]).
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        if self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need {
            if self.end == self.buf.len() {
                let grown = self.buf.len().saturating_mul(2).clamp(1, need);
                self.buf.resize(grown, 0);
            }
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    let at = self.offset + (self.end - self.start) as u64;
                    return Err(CaptureError::read(Position::Offset(at), e));
                }
            }
        }
        Ok(true)
    }

    /// Reads the header if it is complete. `Ok(Some((have, need)))` while it is not.
    fn try_header(&mut self) -> Result<Option<(usize, usize)>, CaptureError> {
        let mut need = HEADER_FIXED;
        loop {
            let full = self.fill(need)?;
            match peek_header(&self.buf[self.start..self.end])? {
                Peek::Done(h, len) => {
                    self.header = Some(h);
                    self.start += len;
                    self.offset += len as u64;
                    return Ok(None);
                }
                Peek::Need(n) if full && n > need => need = n,
                Peek::Need(n) => return Ok(Some((self.end - self.start, n))),
            }
        }
    }

    /// The next record, or where reading stopped. See [`ReadOutcome`].
    #[allow(clippy::should_implement_trait)] // lending: the record borrows the reader's buffer
    pub fn next(&mut self) -> Result<ReadOutcome<'_>, CaptureError> {
        if self.header.is_none() {
            if let Some((have, need)) = self.try_header()? {
                return Ok(ReadOutcome::Incomplete { have, need });
            }
        }
        if !self.fill(RECORD_HEADER_LEN)? {
            let have = self.end - self.start;
            return Ok(if have == 0 {
                ReadOutcome::End
            } else {
                ReadOutcome::Incomplete {
                    have,
                    need: RECORD_HEADER_LEN,
                }
            });
        }
        let len = le_u32(&self.buf, self.start) as usize;
        if len > MAX_PAYLOAD {
            return Err(CaptureError::Corrupt {
                offset: self.offset,
            });
        }
        let total = RECORD_HEADER_LEN + len;
        if !self.fill(total)? {
            return Ok(ReadOutcome::Incomplete {
                have: self.end - self.start,
                need: total,
            });
        }
        let at = self.start;
        let offset = self.offset;
        self.start += total;
        self.offset += total as u64;
        match peek_record(&self.buf[at..at + total], offset) {
            Ok(Peek::Done(rec, _)) => Ok(ReadOutcome::Record(rec)),
            Ok(Peek::Need(_)) => Err(CaptureError::Corrupt { offset }), // unreachable: filled
            Err(e) => {
                // Stay on the bad record: the same error comes back on the next call.
                self.start = at;
                self.offset = offset;
                Err(e)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory `.tlc`
// ---------------------------------------------------------------------------------------------

/// A whole `.tlc` capture in memory, for replay and benchmarks with no I/O.
#[derive(Clone)]
pub struct TicklineCapture {
    data: Vec<u8>,
    header: CaptureHeader,
}

impl fmt::Debug for TicklineCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicklineCapture")
            .field("bytes", &self.data.len())
            .field("header", &self.header)
            .finish()
    }
}

impl TicklineCapture {
    /// Takes the bytes of a `.tlc` file and checks its header.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, CaptureError> {
        match peek_header(&data)? {
            Peek::Done(header, _) => Ok(Self { data, header }),
            Peek::Need(need) => Err(CaptureError::Truncated {
                offset: 0,
                have: data.len(),
                need,
            }),
        }
    }

    /// Reads a `.tlc` file into memory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::from_bytes(std::fs::read(path)?)
    }

    /// The file header.
    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// The raw file bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Iterates over the records. A corrupt record or a torn tail ends the iteration with one
    /// `Err` ([`CaptureError::Corrupt`] or [`CaptureError::Truncated`]).
    pub fn iter(&self) -> RecordIter<'_> {
        let start = self.header.header_len as usize;
        RecordIter {
            data: &self.data,
            pos: start,
            done: false,
        }
    }
}

impl<'a> IntoIterator for &'a TicklineCapture {
    type Item = Result<Record<'a>, CaptureError>;
    type IntoIter = RecordIter<'a>;
    fn into_iter(self) -> RecordIter<'a> {
        self.iter()
    }
}

/// Borrowing iterator over a [`TicklineCapture`].
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        let offset = self.pos as u64;
        match peek_record(rest, offset) {
            Ok(Peek::Done(rec, len)) => {
                self.pos += len;
                Some(Ok(rec))
            }
            Ok(Peek::Need(need)) => {
                self.done = true;
                Some(Err(CaptureError::Truncated {
                    offset,
                    have: rest.len(),
                    need,
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Either format
// ---------------------------------------------------------------------------------------------

/// Which capture format a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// `<recv_ns> <json>` lines, plain or gzip.
    Line,
    /// Tickline's framed format.
    Tickline,
}

impl CaptureFormat {
    /// Detects the format from a file's first bytes (never its extension).
    pub fn detect(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let mut f = File::open(path)?;
        let mut head = [0u8; MAGIC.len()];
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureError::read(Position::Offset(n as u64), e)),
            }
        }
        Ok(Self::detect_bytes(&head[..n]))
    }

    /// Detects the format from the first bytes of a capture (at least 8 for certainty).
    pub fn detect_bytes(head: &[u8]) -> Self {
        if head.starts_with(&MAGIC) {
            CaptureFormat::Tickline
        } else {
            CaptureFormat::Line
        }
    }
}

/// A record from either format, as replay sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayRecord<'a> {
    /// Receive time, nanoseconds.
    pub recv_ns: u64,
    /// Connection id (0 for line captures).
    pub conn_id: u32,
    /// The kind. In a line capture a line whose JSON starts with `{"lastUpdateId"` is a
    /// [`RecordKind::Snapshot`] and every other line a [`RecordKind::TextFrame`].
    pub kind: RecordKind,
    /// For a `.tlc` snapshot, its symbol; `None` otherwise (a line capture's REST snapshot belongs
    /// to the file's one symbol).
    pub symbol: Option<&'a [u8]>,
    /// The venue's bytes: for snapshots the REST body alone (symbol split off).
    pub payload: &'a [u8],
}

const LINE_SNAPSHOT_PREFIX: &[u8] = b"{\"lastUpdateId\"";

impl<'a> ReplayRecord<'a> {
    fn from_line(r: LineRecord<'a>) -> Self {
        let kind = if r.payload.starts_with(LINE_SNAPSHOT_PREFIX) {
            RecordKind::Snapshot
        } else {
            RecordKind::TextFrame
        };
        Self {
            recv_ns: r.recv_ns,
            conn_id: 0,
            kind,
            symbol: None,
            payload: r.payload,
        }
    }

    fn from_record(r: Record<'a>) -> Self {
        let (symbol, payload) = match r.snapshot() {
            Some((s, body)) => (Some(s), body),
            None => (None, r.payload),
        };
        Self {
            recv_ns: r.recv_ns,
            conn_id: r.conn_id,
            kind: r.kind,
            symbol,
            payload,
        }
    }
}

enum ReplayInner {
    Line(Box<LineReader<File>>),
    Tickline(CaptureReader<File>),
}

/// Streams a finished capture of either format for replay.
///
/// `Ok(None)` at the end. A malformed line is an error and reading may continue; in a `.tlc`, a
/// torn last record is reported once as [`CaptureError::Truncated`] after every complete record.
/// After any error that is not [recoverable](CaptureError::is_recoverable) the reader has ended
/// and returns `Ok(None)`, so a loop that counts errors and calls `next` again always finishes.
pub struct ReplayReader {
    inner: ReplayInner,
    done: bool,
}

impl fmt::Debug for ReplayReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayReader")
            .field("format", &self.format())
            .finish_non_exhaustive()
    }
}

impl ReplayReader {
    /// Opens a capture, detecting its format by magic.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        let inner = match CaptureFormat::detect(path)? {
            CaptureFormat::Line => ReplayInner::Line(Box::new(LineReader::open(path)?)),
            CaptureFormat::Tickline => ReplayInner::Tickline(CaptureReader::open(path)?),
        };
        Ok(Self { inner, done: false })
    }

    /// The detected format.
    pub fn format(&self) -> CaptureFormat {
        match self.inner {
            ReplayInner::Line(_) => CaptureFormat::Line,
            ReplayInner::Tickline(_) => CaptureFormat::Tickline,
        }
    }

    /// The next record.
    #[allow(clippy::should_implement_trait)] // lending: the record borrows the reader's buffer
    pub fn next(&mut self) -> Result<Option<ReplayRecord<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let res = match &mut self.inner {
            ReplayInner::Line(r) => r.next().map(|o| o.map(ReplayRecord::from_line)),
            ReplayInner::Tickline(r) => {
                let offset = r.offset();
                match r.next() {
                    Ok(ReadOutcome::Record(rec)) => Ok(Some(ReplayRecord::from_record(rec))),
                    Ok(ReadOutcome::End) => Ok(None),
                    Ok(ReadOutcome::Incomplete { have, need }) => {
                        Err(CaptureError::Truncated { offset, have, need })
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if matches!(&res, Err(e) if !e.is_recoverable()) {
            self.done = true;
        }
        res
    }
}

/// A capture of either format loaded into memory.
#[derive(Clone, Debug)]
pub enum LoadedCapture {
    /// A line capture.
    Line(LineCapture),
    /// A `.tlc` capture.
    Tickline(TicklineCapture),
}

impl LoadedCapture {
    /// Reads a file of either format into memory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::from_bytes(std::fs::read(path)?)
    }

    /// Takes the bytes of a capture of either format.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, CaptureError> {
        Ok(match CaptureFormat::detect_bytes(&bytes) {
            CaptureFormat::Line => LoadedCapture::Line(LineCapture::from_bytes(bytes)?),
            CaptureFormat::Tickline => LoadedCapture::Tickline(TicklineCapture::from_bytes(bytes)?),
        })
    }

    /// The format.
    pub fn format(&self) -> CaptureFormat {
        match self {
            LoadedCapture::Line(_) => CaptureFormat::Line,
            LoadedCapture::Tickline(_) => CaptureFormat::Tickline,
        }
    }

    /// Iterates over the records as replay sees them (errors as in [`LineCapture::iter`] and
    /// [`TicklineCapture::iter`]).
    pub fn records(&self) -> ReplayIter<'_> {
        match self {
            LoadedCapture::Line(c) => ReplayIter::Line(c.iter()),
            LoadedCapture::Tickline(c) => ReplayIter::Tickline(c.iter()),
        }
    }
}

/// Borrowing iterator over a [`LoadedCapture`].
#[derive(Clone, Debug)]
pub enum ReplayIter<'a> {
    /// Over a line capture.
    Line(LineIter<'a>),
    /// Over a `.tlc` capture.
    Tickline(RecordIter<'a>),
}

impl<'a> Iterator for ReplayIter<'a> {
    type Item = Result<ReplayRecord<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ReplayIter::Line(it) => it.next().map(|r| r.map(ReplayRecord::from_line)),
            ReplayIter::Tickline(it) => it.next().map(|r| r.map(ReplayRecord::from_record)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tlc(records: &[(u64, u32, RecordKind, &[u8])]) -> Vec<u8> {
        let mut w = CaptureWriter::with_header(Vec::new(), 42, 0).unwrap();
        for &(ns, conn, kind, p) in records {
            w.append(ns, conn, kind, p).unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn kind_codes_round_trip() {
        for code in 0..=255u8 {
            assert_eq!(RecordKind::from_u8(code).as_u8(), code);
        }
        assert_eq!(RecordKind::from_u8(6), RecordKind::Snapshot);
        assert_eq!(RecordKind::from_u8(200), RecordKind::Other(200));
    }

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = tlc(&[]);
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(le_u16(&bytes, 8), 1);
        assert_eq!(le_u16(&bytes, 10), 32);
        assert_eq!(le_u32(&bytes, 12), 0);
        assert_eq!(le_u64(&bytes, 16), 42);
        assert_eq!(le_u32(&bytes, 28), crc32fast::hash(&bytes[..28]));
    }

    #[test]
    fn record_layout_is_as_documented() {
        let bytes = tlc(&[(7, 9, RecordKind::Subscribe, b"hello")]);
        let r = &bytes[HEADER_LEN..];
        assert_eq!(r.len(), 24 + 5);
        assert_eq!(le_u32(r, 0), 5);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&r[0..4]);
        crc.update(&r[8..]);
        assert_eq!(le_u32(r, 4), crc.finalize());
        assert_eq!(le_u64(r, 8), 7);
        assert_eq!(le_u32(r, 16), 9);
        assert_eq!(r[20], 5);
        assert_eq!(&r[21..24], &[0, 0, 0]);
        assert_eq!(&r[24..], b"hello");
    }

    #[test]
    fn writer_and_reader_round_trip() {
        let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
        w.append(10, 1, RecordKind::TextFrame, b"{\"a\":1}")
            .unwrap();
        w.append(11, 1, RecordKind::Disconnect, b"").unwrap();
        w.append_snapshot(12, 0, b"BTCUSDT", b"{\"lastUpdateId\":1}")
            .unwrap();
        assert_eq!(w.records(), 3);
        let bytes = w.into_inner();
        let mut r = CaptureReader::new(Cursor::new(bytes.clone())).unwrap();
        assert_eq!(r.header().map(|h| h.created_ns), Some(1));
        match r.next().unwrap() {
            ReadOutcome::Record(rec) => {
                assert_eq!(
                    (rec.recv_ns, rec.conn_id, rec.kind),
                    (10, 1, RecordKind::TextFrame)
                );
                assert_eq!(rec.payload, b"{\"a\":1}");
                assert_eq!(rec.offset, HEADER_LEN as u64);
            }
            o => panic!("{o:?}"),
        }
        match r.next().unwrap() {
            ReadOutcome::Record(rec) => assert_eq!(rec.payload, b""),
            o => panic!("{o:?}"),
        }
        match r.next().unwrap() {
            ReadOutcome::Record(rec) => {
                let (sym, body) = rec.snapshot().unwrap();
                assert_eq!(sym, b"BTCUSDT");
                assert_eq!(body, b"{\"lastUpdateId\":1}");
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(r.next().unwrap(), ReadOutcome::End);
        assert_eq!(r.next().unwrap(), ReadOutcome::End);
        // The in-memory form agrees.
        let mem = TicklineCapture::from_bytes(bytes).unwrap();
        let recs: Vec<_> = mem.iter().map(|r| r.unwrap().recv_ns).collect();
        assert_eq!(recs, [10, 11, 12]);
    }

    #[test]
    fn writer_refuses_oversized_payloads_and_bad_symbols() {
        let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert!(matches!(
            w.append(1, 1, RecordKind::BinaryFrame, &big),
            Err(CaptureError::PayloadTooLarge { len, max }) if len == MAX_PAYLOAD + 1 && max == MAX_PAYLOAD
        ));
        assert!(matches!(
            w.append_snapshot(1, 1, b"BTC USDT", b"{}"),
            Err(CaptureError::BadSnapshotSymbol)
        ));
        assert!(matches!(
            w.append_snapshot(1, 1, b"", b"{}"),
            Err(CaptureError::BadSnapshotSymbol)
        ));
        assert_eq!(w.records(), 0);
        assert_eq!(w.get_ref().len(), HEADER_LEN);
        // Exactly the maximum is fine.
        w.append(1, 1, RecordKind::BinaryFrame, &big[..MAX_PAYLOAD])
            .unwrap();
        let bytes = w.into_inner();
        let mem = TicklineCapture::from_bytes(bytes).unwrap();
        assert_eq!(
            mem.iter().next().unwrap().unwrap().payload.len(),
            MAX_PAYLOAD
        );
    }

    /// Hands out one byte per read, and `WouldBlock` every other call.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        block: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.block = !self.block;
            if self.block {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.pos == self.data.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.data[self.pos];
            self.pos += 1;
            Ok(1)
        }
    }

    #[test]
    fn reader_survives_short_reads_and_would_block() {
        let bytes = tlc(&[
            (1, 1, RecordKind::TextFrame, b"abc"),
            (2, 1, RecordKind::Connect, b"wss://x"),
        ]);
        let mut r = CaptureReader::new(Trickle {
            data: bytes,
            pos: 0,
            block: false,
        })
        .unwrap();
        let mut got = Vec::new();
        for _ in 0..10_000 {
            match r.next().unwrap() {
                ReadOutcome::Record(rec) => got.push(rec.recv_ns),
                ReadOutcome::Incomplete { have, need } => assert!(have < need),
                ReadOutcome::End => {
                    if got.len() == 2 {
                        break;
                    }
                }
            }
        }
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn corrupt_record_is_reported_and_sticks() {
        let mut bytes = tlc(&[
            (1, 1, RecordKind::TextFrame, b"first"),
            (2, 1, RecordKind::TextFrame, b"second"),
        ]);
        let second = HEADER_LEN + 24 + 5;
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let mut r = CaptureReader::new(Cursor::new(bytes)).unwrap();
        assert!(matches!(r.next(), Ok(ReadOutcome::Record(_))));
        for _ in 0..2 {
            match r.next() {
                Err(CaptureError::Corrupt { offset }) => assert_eq!(offset, second as u64),
                o => panic!("{o:?}"),
            }
        }
    }

    #[test]
    fn impossible_length_is_corrupt() {
        let mut bytes = tlc(&[(1, 1, RecordKind::TextFrame, b"x")]);
        bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        let mut r = CaptureReader::new(Cursor::new(bytes.clone())).unwrap();
        assert!(matches!(
            r.next(),
            Err(CaptureError::Corrupt { offset }) if offset == HEADER_LEN as u64
        ));
        let mem = TicklineCapture::from_bytes(bytes).unwrap();
        assert!(matches!(
            mem.iter().next(),
            Some(Err(CaptureError::Corrupt { .. }))
        ));
    }

    #[test]
    fn header_errors() {
        let good = tlc(&[]);
        let mut bad_magic = good.clone();
        bad_magic[1] = b'X';
        assert!(matches!(
            CaptureReader::new(Cursor::new(bad_magic)),
            Err(CaptureError::BadMagic)
        ));
        // Even three bytes are enough to see it is not ours.
        assert!(matches!(
            CaptureReader::new(Cursor::new(b"123".to_vec())),
            Err(CaptureError::BadMagic)
        ));
        let mut v2 = good.clone();
        v2[8] = 2;
        assert!(matches!(
            CaptureReader::new(Cursor::new(v2)),
            Err(CaptureError::UnsupportedVersion(2))
        ));
        let mut bad_crc = good.clone();
        bad_crc[17] ^= 1;
        assert!(matches!(
            CaptureReader::new(Cursor::new(bad_crc)),
            Err(CaptureError::Corrupt { offset: 0 })
        ));
        let mut short_len = good.clone();
        short_len[10] = 16;
        assert!(matches!(
            TicklineCapture::from_bytes(short_len),
            Err(CaptureError::Corrupt { offset: 0 })
        ));
        // A partial header is incomplete, not an error.
        let mut r = CaptureReader::new(Cursor::new(good[..20].to_vec())).unwrap();
        assert!(r.header().is_none());
        assert_eq!(
            r.next().unwrap(),
            ReadOutcome::Incomplete { have: 20, need: 32 }
        );
        assert!(matches!(
            TicklineCapture::from_bytes(good[..5].to_vec()),
            Err(CaptureError::Truncated {
                offset: 0,
                have: 5,
                ..
            })
        ));
    }

    #[test]
    fn lines_parse_and_tolerate_crlf_and_blank_lines() {
        let text = b"1 {\"a\":1}\r\n\n\r\n2 {\"b\":2}\nnospace\nx1 {}\n3 \n18446744073709551616 {}\n4 last";
        let mut r = LineReader::new(&text[..]).unwrap();
        assert!(!r.is_gzip());
        let rec = r.next().unwrap().unwrap();
        assert_eq!(
            (rec.recv_ns, rec.payload, rec.line),
            (1, &b"{\"a\":1}"[..], 1)
        );
        let rec = r.next().unwrap().unwrap();
        assert_eq!(
            (rec.recv_ns, rec.payload, rec.line),
            (2, &b"{\"b\":2}"[..], 4)
        );
        let faults: Vec<_> = (0..4)
            .map(|_| match r.next() {
                Err(CaptureError::BadLine { line, fault }) => (line, fault),
                o => panic!("{o:?}"),
            })
            .collect();
        assert_eq!(
            faults,
            [
                (5, LineFault::NoSpace),
                (6, LineFault::BadTimestamp),
                (7, LineFault::EmptyPayload),
                (8, LineFault::BadTimestamp),
            ]
        );
        let rec = r.next().unwrap().unwrap();
        assert_eq!((rec.recv_ns, rec.payload, rec.line), (4, &b"last"[..], 9));
        assert!(r.next().unwrap().is_none());
        assert!(r.next().unwrap().is_none());

        // The in-memory iterator gives the same sequence.
        let mem = LineCapture::from_bytes(text.to_vec()).unwrap();
        let seq: Vec<_> = mem
            .iter()
            .map(|r| r.map(|r| (r.recv_ns, r.line)).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(seq.len(), 7);
        assert_eq!(seq[0], Ok((1, 1)));
        assert_eq!(seq[6], Ok((4, 9)));
        assert_eq!(
            seq[2],
            Err("malformed line 5: no space between receive time and payload".to_string())
        );
    }

    #[test]
    fn gzip_lines_including_multiple_members() {
        use flate2::write::GzEncoder;
        let mut gz = Vec::new();
        for part in [&b"1 {\"a\":1}\n2 {\"b\""[..], &b":2}\n3 {}\n"[..]] {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            gz.extend_from_slice(&e.finish().unwrap());
        }
        let mut r = LineReader::new(&gz[..]).unwrap();
        assert!(r.is_gzip());
        let mut got = Vec::new();
        while let Some(rec) = r.next().unwrap() {
            got.push((rec.recv_ns, rec.payload.to_vec()));
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], (2, b"{\"b\":2}".to_vec()));
        let mem = LineCapture::from_bytes(gz).unwrap();
        assert_eq!(mem.iter().count(), 3);
        assert_eq!(mem.as_bytes(), b"1 {\"a\":1}\n2 {\"b\":2}\n3 {}\n");
    }

    #[test]
    fn corrupt_gzip_is_one_io_error_then_the_end() {
        use flate2::write::GzEncoder;
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..20_000 {
            writeln!(e, "{i} {{\"n\":{i}}}").unwrap();
        }
        let mut gz = e.finish().unwrap();
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz[mid + 1] ^= 0xff;
        let mut r = LineReader::new(&gz[..]).unwrap();
        let mut ok = 0u64;
        let err = loop {
            match r.next() {
                Ok(Some(_)) => ok += 1,
                Ok(None) => panic!("corruption not noticed after {ok} lines"),
                Err(e) if e.is_recoverable() => {} // garbled text before the CRC catches it
                Err(e) => break e,
            }
        };
        assert!(!err.is_recoverable());
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
        assert!(r.next().unwrap().is_none());
        assert!(r.next().unwrap().is_none());
        assert!(LineCapture::from_bytes(gz).is_err());
    }

    #[test]
    fn overlong_line_is_skipped() {
        let mut text = b"1 {}\n2 ".to_vec();
        text.resize(text.len() + MAX_LINE_LEN, b'x');
        text.extend_from_slice(b"\n3 {}\n");
        let mut r = LineReader::new(&text[..]).unwrap();
        assert_eq!(r.next().unwrap().unwrap().recv_ns, 1);
        assert!(matches!(
            r.next(),
            Err(CaptureError::LineTooLong { line: 2 })
        ));
        let rec = r.next().unwrap().unwrap();
        assert_eq!((rec.recv_ns, rec.line), (3, 3));
        assert!(r.next().unwrap().is_none());
    }

    #[test]
    fn format_detection_and_loaded_captures() {
        assert_eq!(CaptureFormat::detect_bytes(&MAGIC), CaptureFormat::Tickline);
        assert_eq!(
            CaptureFormat::detect_bytes(b"1723161253937085768 {"),
            CaptureFormat::Line
        );
        assert_eq!(
            CaptureFormat::detect_bytes(&GZIP_MAGIC),
            CaptureFormat::Line
        );
        assert_eq!(CaptureFormat::detect_bytes(b""), CaptureFormat::Line);

        let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
        w.append_snapshot(5, 0, b"ETHUSDT", b"{\"lastUpdateId\":9}")
            .unwrap();
        w.append(6, 1, RecordKind::TextFrame, b"{}").unwrap();
        let loaded = LoadedCapture::from_bytes(w.into_inner()).unwrap();
        assert_eq!(loaded.format(), CaptureFormat::Tickline);
        let recs: Vec<_> = loaded.records().map(|r| r.unwrap()).collect();
        assert_eq!(recs[0].symbol, Some(&b"ETHUSDT"[..]));
        assert_eq!(recs[0].payload, b"{\"lastUpdateId\":9}");
        assert_eq!(recs[0].kind, RecordKind::Snapshot);
        assert_eq!(recs[1].kind, RecordKind::TextFrame);

        let loaded = LoadedCapture::from_bytes(b"5 {\"lastUpdateId\":9}\n6 {}\n".to_vec()).unwrap();
        assert_eq!(loaded.format(), CaptureFormat::Line);
        let recs: Vec<_> = loaded.records().map(|r| r.unwrap()).collect();
        assert_eq!(recs[0].kind, RecordKind::Snapshot);
        assert_eq!(recs[0].symbol, None);
        assert_eq!(recs[1].kind, RecordKind::TextFrame);
    }

    #[test]
    fn errors_display_their_context() {
        let e = CaptureError::Corrupt { offset: 77 };
        assert!(e.to_string().contains("77"));
        let e = CaptureError::BadLine {
            line: 12,
            fault: LineFault::BadTimestamp,
        };
        assert!(e.to_string().contains("line 12"));
        let e = CaptureError::read(Position::Line(3), io::ErrorKind::InvalidData.into());
        assert!(e.to_string().contains("line 3"));
        assert!(std::error::Error::source(&e).is_some());
    }
}
