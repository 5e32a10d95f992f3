//! What every venue's market decoder shares: the [`MarketDecoder`] trait, its result
//! ([`Decoded`], [`IgnoreReason`]), its error ([`DecodeError`]) and its counters
//! ([`DecodeStats`]).
//!
//! A decoder is a sans-IO codec: the I/O thread (or a replay) hands it one received frame and
//! its receive time, and it appends zero or more fixed-size [`Event`]s to the caller's `Vec`
//! (sized once, never grown on the hot path) or says why not. A frame that fails adds nothing.
//! No decoder allocates, panics or evaluates an `f64` on a market frame.

use crate::json::{self, JsonError, JsonErrorKind};
use core::fmt;
use engine::event::Event;
use engine::fixed::{parse_fixed, FixedError};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// A venue's market-data decoder.
///
/// Implementations keep what their venue's book-sync rules need between frames (the last
/// sequence number per instrument, where a venue's ids have to be translated into the book's
/// `(first, final)` update ids: see [`engine::event::DepthLevel`]), and nothing else.
pub trait MarketDecoder {
    /// The venue whose frames this decodes; its symbols are looked up on this venue.
    fn venue(&self) -> Venue;

    /// Decodes one received WebSocket frame (or one line of a capture), appending its events.
    fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError>;

    /// Decodes a REST depth snapshot body for `symbol`, appending
    /// [`SnapshotLevel`](engine::event::SnapshotLevel) events. Venues whose books start from a
    /// WebSocket snapshot may refuse every body ([`DecodeError::NotAnObject`] or a missing
    /// field).
    fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError>;

    /// The counters so far.
    fn stats(&self) -> &DecodeStats;

    /// The symbols this decoder looks names up in.
    fn symbols(&self) -> &SymbolTable;

    /// Forgets per-connection state (the last sequence number per instrument) after a
    /// disconnect, so the next frames start a fresh chain instead of reporting a false gap.
    fn reset(&mut self) {}
}

/// Counters kept by a market decoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames (and snapshot bodies) passed in.
    pub messages: u64,
    /// Events appended.
    pub events: u64,
    /// Calls that returned an error.
    pub decode_errors: u64,
    /// Calls that returned [`Decoded::Ignored`], whatever the reason.
    pub ignored: u64,
    /// Of `ignored`, those for a symbol not in the table.
    pub unknown_symbol: u64,
}

impl DecodeStats {
    /// Counts one decode call's result `r`; for anything but events, drops what the call
    /// appended to `out` past `len0`, so a frame that fails or is ignored adds nothing.
    #[inline]
    pub fn account(&mut self, r: &Result<Decoded, DecodeError>, out: &mut Vec<Event>, len0: usize) {
        self.messages += 1;
        match r {
            Ok(Decoded::Events(n)) => self.events += *n as u64,
            Ok(Decoded::Ignored(why)) => {
                self.ignored += 1;
                if *why == IgnoreReason::UnknownSymbol {
                    self.unknown_symbol += 1;
                }
                out.truncate(len0);
            }
            Err(_) => {
                self.decode_errors += 1;
                out.truncate(len0);
            }
        }
    }
}

/// Why a well-formed frame produced no events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// A stream or event type this decoder does not handle (kline, ticker, ...).
    UnknownStream,
    /// The message is for a symbol that is not in the table.
    UnknownSymbol,
    /// A reply to a request (`{"result":null,"id":1}`, OKX's `{"event":"subscribe",..}`) or an
    /// error reply (`{"code":..}`, `{"event":"error",..}`).
    Response,
    /// A heartbeat: OKX's text `pong`, Bybit's `{"op":"pong"}` reply, Coinbase's `heartbeat`.
    Heartbeat,
    /// A message already delivered, or older than one delivered: its sequence number is not
    /// above the last one of its instrument and channel (Coinbase `match`/`ticker`).
    Duplicate,
}

/// What one call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decoded {
    /// This many events were appended.
    Events(usize),
    /// Nothing was appended, for this reason.
    Ignored(IgnoreReason),
}

/// Why a frame could not be decoded. Nothing is allocated to report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON: a syntax error at this byte offset.
    Syntax {
        /// Byte offset in the frame.
        offset: usize,
        /// What was wrong.
        kind: JsonErrorKind,
    },
    /// The frame ended inside a value (a cut-off frame, or an empty one).
    Truncated {
        /// Byte offset in the frame (its length).
        offset: usize,
    },
    /// A string holds bytes that are not UTF-8.
    InvalidUtf8 {
        /// Byte offset in the frame of the first bad byte.
        offset: usize,
    },
    /// Objects and arrays nested deeper than [`crate::json::MAX_DEPTH`].
    TooDeep {
        /// Byte offset in the frame.
        offset: usize,
    },
    /// The frame is valid JSON but not an object or array.
    NotAnObject,
    /// A field the message kind needs is absent.
    MissingField(&'static str),
    /// A known key appears twice in one object.
    DuplicateField(&'static str),
    /// A field has the wrong JSON type (a number where a string belongs, a fraction where an
    /// integer belongs, a level that is not a pair of strings, ...).
    WrongType {
        /// The field (for depth levels: the side's key).
        field: &'static str,
    },
    /// A price or quantity string that is not a fixed-point decimal in range.
    BadDecimal {
        /// The field (for depth levels: the side's key).
        field: &'static str,
        /// Why.
        err: FixedError,
    },
    /// An integer above `u64::MAX`, or a millisecond time too large for nanoseconds.
    IntOverflow {
        /// The field.
        field: &'static str,
    },
    /// Two ids contradict each other: Binance's `U > u`, `u - U > u32::MAX` or `f > l`, a
    /// venue's previous sequence id above its sequence id.
    BadRange {
        /// The field that is out of line (`U` or `l`).
        field: &'static str,
    },
    /// A string field with escapes too long to decode on the stack (never sent by a venue).
    StringTooLong {
        /// The field.
        field: &'static str,
    },
    /// A snapshot without a symbol: no stream name and no default symbol set.
    MissingSymbol,
    /// A frame of 4 GiB or more.
    FrameTooLarge,
}

impl From<JsonError> for DecodeError {
    #[cold]
    fn from(e: JsonError) -> Self {
        match e.kind {
            JsonErrorKind::Eof => DecodeError::Truncated { offset: e.offset },
            JsonErrorKind::InvalidUtf8 => DecodeError::InvalidUtf8 { offset: e.offset },
            JsonErrorKind::TooDeep => DecodeError::TooDeep { offset: e.offset },
            kind => DecodeError::Syntax {
                offset: e.offset,
                kind,
            },
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Syntax { offset, kind } => {
                write!(f, "{}", JsonError { kind, offset })
            }
            DecodeError::Truncated { offset } => write!(f, "frame truncated at byte {offset}"),
            DecodeError::InvalidUtf8 { offset } => write!(f, "invalid UTF-8 at byte {offset}"),
            DecodeError::TooDeep { offset } => {
                write!(f, "JSON nested too deep at byte {offset}")
            }
            DecodeError::NotAnObject => f.write_str("frame is not a JSON object"),
            DecodeError::MissingField(k) => write!(f, "missing field `{k}`"),
            DecodeError::DuplicateField(k) => write!(f, "duplicate field `{k}`"),
            DecodeError::WrongType { field } => write!(f, "field `{field}` has the wrong type"),
            DecodeError::BadDecimal { field, err } => write!(f, "field `{field}`: {err}"),
            DecodeError::IntOverflow { field } => write!(f, "field `{field}` is out of range"),
            DecodeError::BadRange { field } => {
                write!(f, "field `{field}` contradicts its counterpart")
            }
            DecodeError::StringTooLong { field } => {
                write!(f, "escaped string in field `{field}` is too long")
            }
            DecodeError::MissingSymbol => {
                f.write_str("snapshot without a symbol (no stream name, no default symbol)")
            }
            DecodeError::FrameTooLarge => f.write_str("frame of 4 GiB or more"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Longest escaped string a decoder decodes on the stack; longer is
/// [`DecodeError::StringTooLong`] (no venue sends escapes in the fields decoders read).
pub(crate) const ESC_BUF: usize = 256;

/// Runs `op` on the decoded content of an escaped string field (on the stack, no allocation).
#[cold]
pub(crate) fn with_unescaped<R>(
    raw: &[u8],
    field: &'static str,
    op: impl FnOnce(&[u8]) -> R,
) -> Result<R, DecodeError> {
    let mut tmp = [0u8; ESC_BUF];
    let s = json::unescape(raw, &mut tmp).ok_or(DecodeError::StringTooLong { field })?;
    Ok(op(s))
}

/// A decimal string as 1e-8 fixed point, or `field`'s [`DecodeError::BadDecimal`].
#[inline(always)]
pub(crate) fn fixed_of(bytes: &[u8], field: &'static str) -> Result<i64, DecodeError> {
    parse_fixed(bytes).map_err(|err| DecodeError::BadDecimal { field, err })
}
