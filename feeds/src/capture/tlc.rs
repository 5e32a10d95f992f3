//! The Tickline format (`.tlc`): record kinds, the file header, the record codec, the writer
//! and the readers (streaming, tolerant of a torn tail, and in memory).

use super::{
    CaptureError, Position, FORMAT_VERSION, HEADER_CRC_AT, HEADER_FIXED, HEADER_LEN, MAGIC,
    MAX_PAYLOAD, READ_CHUNK, RECORD_HEADER_LEN,
};
use crate::framing::{header_crc, le_u16, le_u32, le_u64};
use core::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

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
    /// A REST response of an imported capture: `<URL> <body>` (code 7). The URL tells whose
    /// snapshot it is ([`crate::venue::rest_snapshot_symbol`]).
    Rest,
    /// Capture metadata, JSON (code 8): a cryptofeed v3 header line.
    Meta,
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
            7 => RecordKind::Rest,
            8 => RecordKind::Meta,
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
            RecordKind::Rest => 7,
            RecordKind::Meta => 8,
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

    /// For a [`RecordKind::Rest`] record, its `(URL, body)`; `None` for other kinds or a
    /// payload without the separating space.
    pub fn rest(&self) -> Option<(&'a [u8], &'a [u8])> {
        match self.kind {
            RecordKind::Rest => split_snapshot_payload(self.payload),
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

    /// Appends a [`RecordKind::Rest`] record `<url> <body>` without concatenating first.
    pub fn append_rest(
        &mut self,
        recv_ns: u64,
        conn_id: u32,
        url: &[u8],
        body: &[u8],
    ) -> Result<(), CaptureError> {
        if url.is_empty() || url.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(CaptureError::BadSnapshotSymbol);
        }
        self.append_parts(recv_ns, conn_id, RecordKind::Rest, &[url, b" ", body])
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
