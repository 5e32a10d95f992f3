//! Every format behind one reader: which format a file is in, and the records a replay reads
//! from it.

use super::cryptofeed::{
    self, CryptofeedCapture, CryptofeedIter, CryptofeedReader, CryptofeedRecord, CryptofeedVersion,
};
use super::line::{LineCapture, LineIter, LineReader, LineRecord};
use super::tlc::{CaptureReader, ReadOutcome, Record, RecordIter, RecordKind, TicklineCapture};
use super::{CaptureError, Position, MAGIC};
use core::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

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
    /// cryptofeed's v1 text format (`<ts>: <json>`, `<url> <-> <ts>`, ...).
    CryptofeedV1,
    /// cryptofeed's v3 JSONL envelopes, zstd or plain.
    CryptofeedV3,
}

/// Bytes [`CaptureFormat::detect`] reads to decide: enough for a cryptofeed v1 first line's
/// URL and time.
pub const DETECT_BYTES: usize = 4096;

impl CaptureFormat {
    /// Detects the format from a file's first bytes (never its extension).
    pub fn detect(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let mut f = File::open(path)?;
        let mut head = [0u8; DETECT_BYTES];
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

    /// Detects the format from the first bytes of a capture (at least 8 for certainty, a few
    /// hundred for a cryptofeed v1 file whose first line is a long URL): the `.tlc` magic, then
    /// cryptofeed's shapes ([`cryptofeed::detect`]), else the line format (plain or gzip).
    pub fn detect_bytes(head: &[u8]) -> Self {
        if head.starts_with(&MAGIC) {
            return CaptureFormat::Tickline;
        }
        match cryptofeed::detect(head) {
            Some(CryptofeedVersion::V1) => CaptureFormat::CryptofeedV1,
            Some(CryptofeedVersion::V3) => CaptureFormat::CryptofeedV3,
            None => CaptureFormat::Line,
        }
    }

    /// True for the formats whose records name their connections' URLs (`.tlc` and
    /// cryptofeed); the line format names none.
    pub fn names_urls(self) -> bool {
        !matches!(self, CaptureFormat::Line)
    }
}

/// A record from either format, as replay sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayRecord<'a> {
    /// Receive time, nanoseconds.
    pub recv_ns: u64,
    /// Connection id (0 for line captures; cryptofeed: see [`CryptofeedReader`]).
    pub conn_id: u32,
    /// The kind. In a line capture a line whose JSON starts with `{"lastUpdateId"` is a
    /// [`RecordKind::Snapshot`] and every other line a [`RecordKind::TextFrame`]. A
    /// [`RecordKind::Connect`]'s payload is the URL.
    pub kind: RecordKind,
    /// For a `.tlc` snapshot, its symbol; for a [`RecordKind::Rest`] record, the request URL;
    /// `None` otherwise (a line capture's REST snapshot belongs to the file's one symbol).
    pub symbol: Option<&'a [u8]>,
    /// The venue's bytes: for snapshots and REST responses the body alone (symbol or URL split
    /// off).
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

    /// The request URL of a [`RecordKind::Rest`] record.
    pub fn url(&self) -> Option<&'a [u8]> {
        match self.kind {
            RecordKind::Rest => self.symbol,
            _ => None,
        }
    }

    fn from_cryptofeed(r: CryptofeedRecord<'a>) -> Self {
        Self {
            recv_ns: r.recv_ns,
            conn_id: r.conn_id,
            kind: r.kind,
            symbol: r.url,
            payload: r.payload,
        }
    }

    fn from_record(r: Record<'a>) -> Self {
        let (symbol, payload) = match r.snapshot().or_else(|| r.rest()) {
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

enum ReplayInner<R: Read> {
    Line(Box<LineReader<R>>),
    Tickline(CaptureReader<R>),
    Cryptofeed(Box<CryptofeedReader<R>>),
}

/// Streams a finished capture of either format for replay.
///
/// `Ok(None)` at the end. A malformed line is an error and reading may continue; in a `.tlc`, a
/// torn last record is reported once as [`CaptureError::Truncated`] after every complete record.
/// After any error that is not [recoverable](CaptureError::is_recoverable) the reader has ended
/// and returns `Ok(None)`, so a loop that counts errors and calls `next` again always finishes.
pub struct ReplayReader<R: Read = File> {
    inner: ReplayInner<R>,
    done: bool,
}

impl<R: Read> fmt::Debug for ReplayReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayReader")
            .field("format", &self.format())
            .finish_non_exhaustive()
    }
}

impl ReplayReader<File> {
    /// Opens a capture, detecting its format by magic.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        Self::with_source(CaptureFormat::detect(path)?, File::open(path)?)
    }
}

impl<R: Read> ReplayReader<R> {
    /// Reads a capture of a known format (see [`CaptureFormat::detect`]) from any source.
    pub fn with_source(format: CaptureFormat, src: R) -> Result<Self, CaptureError> {
        let inner = match format {
            CaptureFormat::Line => ReplayInner::Line(Box::new(LineReader::new(src)?)),
            CaptureFormat::Tickline => ReplayInner::Tickline(CaptureReader::new(src)?),
            CaptureFormat::CryptofeedV1 | CaptureFormat::CryptofeedV3 => {
                ReplayInner::Cryptofeed(Box::new(CryptofeedReader::new(src)?))
            }
        };
        Ok(Self { inner, done: false })
    }

    /// The detected format.
    pub fn format(&self) -> CaptureFormat {
        match &self.inner {
            ReplayInner::Line(_) => CaptureFormat::Line,
            ReplayInner::Tickline(_) => CaptureFormat::Tickline,
            ReplayInner::Cryptofeed(r) => match r.version() {
                CryptofeedVersion::V1 => CaptureFormat::CryptofeedV1,
                CryptofeedVersion::V3 => CaptureFormat::CryptofeedV3,
            },
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
            ReplayInner::Cryptofeed(r) => r.next().map(|o| o.map(ReplayRecord::from_cryptofeed)),
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
    /// A cryptofeed capture (v1 or v3), parsed.
    Cryptofeed(CryptofeedCapture),
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
            CaptureFormat::CryptofeedV1 | CaptureFormat::CryptofeedV3 => {
                LoadedCapture::Cryptofeed(CryptofeedCapture::from_bytes(&bytes)?)
            }
        })
    }

    /// The format.
    pub fn format(&self) -> CaptureFormat {
        match self {
            LoadedCapture::Line(_) => CaptureFormat::Line,
            LoadedCapture::Tickline(_) => CaptureFormat::Tickline,
            LoadedCapture::Cryptofeed(c) => match c.version() {
                CryptofeedVersion::V1 => CaptureFormat::CryptofeedV1,
                CryptofeedVersion::V3 => CaptureFormat::CryptofeedV3,
            },
        }
    }

    /// Iterates over the records as replay sees them (errors as in [`LineCapture::iter`] and
    /// [`TicklineCapture::iter`]).
    pub fn records(&self) -> ReplayIter<'_> {
        match self {
            LoadedCapture::Line(c) => ReplayIter::Line(c.iter()),
            LoadedCapture::Tickline(c) => ReplayIter::Tickline(c.iter()),
            LoadedCapture::Cryptofeed(c) => ReplayIter::Cryptofeed(c.iter()),
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
    /// Over a cryptofeed capture.
    Cryptofeed(CryptofeedIter<'a>),
}

impl<'a> Iterator for ReplayIter<'a> {
    type Item = Result<ReplayRecord<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ReplayIter::Line(it) => it.next().map(|r| r.map(ReplayRecord::from_line)),
            ReplayIter::Tickline(it) => it.next().map(|r| r.map(ReplayRecord::from_record)),
            ReplayIter::Cryptofeed(it) => it.next().map(|r| r.map(ReplayRecord::from_cryptofeed)),
        }
    }
}
