//! Capture formats: the hftbacktest line format and cryptofeed's formats we read, and Tickline's
//! own framed format (`.tlc`).
//!
//! The formats live in `line` (the line format, plain or gzip), `cryptofeed` (cryptofeed's v1
//! text and v3 JSONL envelopes, plain or zstd: see [`CryptofeedReader`]), `tlc` (the `.tlc`
//! codec, writer and readers) and `replay` (every format behind one reader); this module holds
//! their shared limits, positions and errors, and re-exports their types.
//!
//! # Line format (read only)
//!
//! One received frame a line: `<recv_ns> <raw JSON>\n`, plain text or gzip (detected by the gzip
//! magic `1f 8b`, decoded with [`MultiGzDecoder`](flate2::bufread::MultiGzDecoder) so concatenated members are read too). `\r\n` is
//! tolerated, empty lines are skipped, and a malformed line (no space, a non-numeric receive time,
//! nothing after the space) is reported as [`CaptureError::BadLine`] with its 1-based line number
//! without ending the stream: the caller counts it and calls `next` again.
//!
//! - [`LineReader`] streams from any [`Read`](std::io::Read) with one reused line buffer (no allocation per line
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
//! | 7 | [`RecordKind::Rest`] | `<URL> <REST body>`: the request URL (no spaces), one space, then the response body verbatim (an imported capture's REST responses; the URL says whose snapshot it is) |
//! | 8 | [`RecordKind::Meta`] | capture metadata as JSON (an imported cryptofeed v3 header line) |
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
//! [`CaptureFormat::detect`] tells the formats apart by their first bytes, never by the file
//! extension (`.tlc` magic; zstd magic `28 b5 2f fd` or a `{"t":` first line: cryptofeed v3; a
//! first line shaped `<secs>.<frac>: ` or `<url> <-> <secs>`: cryptofeed v1; anything else: the
//! line format); [`ReplayReader`] (streaming) and [`LoadedCapture`] (in memory) read any of
//! them, and [`CaptureStream`] reads any on a reader thread of its own, ahead into a bounded
//! set of recycled chunks (a replay of a capture larger than memory).
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
//! - **zstd window** (cryptofeed v3): the decoder reserves the window a frame header claims, so
//!   a claim over [`MAX_ZSTD_WINDOW`] is refused (an I/O error), not allocated; the frame's
//!   content-size field is never used to reserve anything; and since zstd, unlike deflate, can
//!   expand without practical bound, a stream expanding past [`MAX_ZSTD_RATIO`] is refused as a
//!   decompression bomb (so buffers grow at most in proportion to the input).

use core::fmt;
use std::io;

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
    /// A cryptofeed v1 line of no known shape (neither `<ts>: `, `<url> <-> `, `<url> <- ` nor
    /// `<url> -> `).
    Unrecognised,
    /// A cryptofeed v3 envelope that is not what the format says: what is wrong.
    Envelope(&'static str),
}

impl fmt::Display for LineFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFault::NoSpace => "no space between receive time and payload",
            LineFault::BadTimestamp => {
                "receive time is not a u64 of decimal digits (cryptofeed: decimal seconds)"
            }
            LineFault::EmptyPayload => "empty payload",
            LineFault::Unrecognised => {
                "not a cryptofeed line (`<ts>: `, `<url> <-> `, `<- ` or `-> `)"
            }
            LineFault::Envelope(what) => return write!(f, "bad cryptofeed envelope: {what}"),
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
    /// A snapshot symbol (or a REST record's URL) that is empty or contains whitespace; nothing
    /// was written.
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
                f.write_str("snapshot symbol (or REST URL) must be non-empty and contain no whitespace")
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

mod cryptofeed;
mod line;
mod merge;
mod replay;
mod route;
mod stream;
mod tlc;

pub use cryptofeed::*;
pub use line::*;
pub use merge::*;
pub use replay::*;
pub use route::*;
pub use stream::*;
pub use tlc::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{le_u16, le_u32, le_u64};
    use std::io::{Cursor, Read, Write};

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
