//! The line format (`<recv_ns> <json>` per line, plain or gzip): a streaming reader and an
//! in-memory capture whose sizes are bounded by what the input can hold.

use super::{CaptureError, LineFault, Position, GZIP_MAGIC, MAX_LINE_LEN, READ_CHUNK};
use core::fmt;
use flate2::bufread::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

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
