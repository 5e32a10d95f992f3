//! A strict, zero-allocation JSON pull scanner over bytes.
//!
//! [`Scanner`] walks one JSON text (RFC 8259) in place and hands out borrowed slices: strings come
//! back as [`JsonStr`] (the raw bytes between the quotes, escapes still in them) and numbers as
//! [`JsonNum`] (the raw digits). Nothing is copied and nothing is allocated; the caller drives the
//! walk with [`Scanner::begin_object`] / [`Scanner::next_key`], [`Scanner::begin_array`] /
//! [`Scanner::next_element`] and the scalar readers, and skips what it does not care about with
//! [`Scanner::skip_value`], which still validates every byte it passes.
//!
//! Strict means: no trailing commas, no comments, no single quotes, no leading zeros, no raw
//! control characters in strings, only the nine JSON escapes, `\u` surrogates properly paired,
//! nesting capped at [`MAX_DEPTH`], nothing but whitespace after the top-level value
//! ([`Scanner::finish`]) and UTF-8 everywhere. UTF-8 is checked cheaply: outside strings any byte
//! `>= 0x80` is already a syntax error, so only strings that contain such bytes are validated.
//!
//! It never panics, whatever the input: every error is a [`JsonError`] with the byte offset where
//! it was found.

use core::fmt;
use core::ops::Range;

/// Deepest nesting of objects and arrays the scanner accepts (Binance payloads need 4).
pub const MAX_DEPTH: u32 = 64;

/// What went wrong; see [`JsonError`] for where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JsonErrorKind {
    /// The input ended inside a value (or before one).
    Eof,
    /// A byte that cannot start or continue what was expected here.
    Unexpected(u8),
    /// A backslash escape JSON does not have, or a `\u` without four hex digits.
    InvalidEscape,
    /// A `\u` escape that is an unpaired UTF-16 surrogate.
    LoneSurrogate,
    /// A raw control character (U+0000 to U+001F) inside a string.
    ControlChar,
    /// A malformed number (leading zero, missing digits after `-`, `.` or the exponent).
    InvalidNumber,
    /// Bytes inside a string that are not UTF-8.
    InvalidUtf8,
    /// Objects and arrays nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something other than whitespace after the top-level value.
    TrailingData,
}

/// A JSON syntax error at a byte offset of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JsonError {
    /// What went wrong.
    pub kind: JsonErrorKind,
    /// Byte offset into the scanned input (the input's length for [`JsonErrorKind::Eof`]).
    pub offset: usize,
}

impl JsonError {
    #[cold]
    #[inline(never)]
    fn new(kind: JsonErrorKind, offset: usize) -> Self {
        JsonError { kind, offset }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match self.kind {
            JsonErrorKind::Eof => write!(f, "JSON truncated at byte {at}"),
            JsonErrorKind::Unexpected(b) => {
                write!(f, "unexpected byte 0x{b:02x} in JSON at byte {at}")
            }
            JsonErrorKind::InvalidEscape => write!(f, "invalid string escape at byte {at}"),
            JsonErrorKind::LoneSurrogate => {
                write!(f, "unpaired UTF-16 surrogate escape at byte {at}")
            }
            JsonErrorKind::ControlChar => write!(f, "raw control character in string at byte {at}"),
            JsonErrorKind::InvalidNumber => write!(f, "malformed number at byte {at}"),
            JsonErrorKind::InvalidUtf8 => write!(f, "invalid UTF-8 at byte {at}"),
            JsonErrorKind::TooDeep => {
                write!(f, "JSON nested deeper than {MAX_DEPTH} levels at byte {at}")
            }
            JsonErrorKind::TrailingData => write!(f, "trailing data after JSON value at byte {at}"),
        }
    }
}

impl std::error::Error for JsonError {}

/// The kind of the next value, from its first byte (see [`Scanner::peek`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// `{`
    Object,
    /// `[`
    Array,
    /// `"`
    String,
    /// `-` or a digit.
    Number,
    /// `t`
    True,
    /// `f`
    False,
    /// `n`
    Null,
}

/// A string as it appears in the input: the bytes between the quotes, escapes not yet decoded.
///
/// The bytes are valid UTF-8 and every escape in them is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonStr<'a> {
    raw: &'a [u8],
    offset: usize,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The bytes between the quotes, escapes included.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Offset of the first byte after the opening quote.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// True if the string contains at least one backslash escape.
    #[inline]
    pub fn has_escapes(&self) -> bool {
        self.escaped
    }

    /// The content when no escape needs decoding (the common case), else `None`.
    #[inline]
    pub fn unescaped(&self) -> Option<&'a [u8]> {
        (!self.escaped).then_some(self.raw)
    }

    /// Decodes the content into `buf` and returns the used part; `None` if it does not fit.
    pub fn decode_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        unescape(self.raw, buf)
    }
}

/// A number as it appears in the input, validated against the JSON grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonNum<'a> {
    raw: &'a [u8],
    offset: usize,
}

/// Why a [`JsonNum`] is not a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumError {
    /// Negative, fractional or with an exponent.
    NotUnsigned,
    /// More than `u64::MAX`.
    Overflow,
}

impl<'a> JsonNum<'a> {
    /// The number's bytes.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Offset of the number's first byte.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The value as an unsigned integer (plain digits only: no sign, fraction or exponent).
    #[inline]
    pub fn as_u64(&self) -> Result<u64, NumError> {
        parse_u64(self.raw)
    }
}

/// Parses plain ASCII digits as a `u64` (what a JSON integer id looks like).
#[inline(always)]
pub fn parse_u64(digits: &[u8]) -> Result<u64, NumError> {
    let n = digits.len();
    if (8..=16).contains(&n) {
        // Two SWAR words: the last eight digits, and the first n - 8 left-padded with zeros.
        let (Some(first), Some(last)) = (digits.first_chunk::<8>(), digits.last_chunk::<8>())
        else {
            return Err(NumError::NotUnsigned);
        };
        let lo = u64::from_le_bytes(*last);
        let shift = 8 * (16 - n) as u32; // 0..=56 for n in 9..=16; 64 (nothing) for n == 8
        let hi = if n == 8 {
            ZEROS
        } else {
            (u64::from_le_bytes(*first) << shift) | (ZEROS & ((1u64 << shift) - 1))
        };
        if !all_digits(lo) || !all_digits(hi) {
            return Err(NumError::NotUnsigned);
        }
        return Ok(eight_digits(hi) * 100_000_000 + eight_digits(lo));
    }
    parse_u64_slow(digits)
}

/// Eight ASCII zeros.
const ZEROS: u64 = 0x3030_3030_3030_3030;

#[inline(never)]
fn parse_u64_slow(digits: &[u8]) -> Result<u64, NumError> {
    if digits.is_empty() {
        return Err(NumError::NotUnsigned);
    }
    let mut acc: u64 = 0;
    let mut overflow = false;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(NumError::NotUnsigned);
        }
        match acc.checked_mul(10).and_then(|v| v.checked_add(d as u64)) {
            Some(v) => acc = v,
            None => overflow = true,
        }
    }
    if overflow {
        Err(NumError::Overflow)
    } else {
        Ok(acc)
    }
}

/// True if all eight byte lanes are ASCII digits.
#[inline(always)]
fn all_digits(w: u64) -> bool {
    let hi = w & 0xF0F0_F0F0_F0F0_F0F0;
    let carry = w.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0;
    (hi | (carry >> 4)) == 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits (first digit in the lowest lane).
#[inline(always)]
fn eight_digits(w: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let v = w.wrapping_sub(0x3030_3030_3030_3030);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    (v & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2))
        >> 32
}

/// End of a *plain* string body starting at `start` (just after the opening quote): the offset
/// of its closing quote, or `None` if the string is unterminated or contains an escape, a
/// control character or a non-ASCII byte before it. Such a body is always valid JSON; callers
/// use this for fast paths and fall back to [`Scanner`] otherwise.
#[inline(always)]
pub fn plain_string_end(buf: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while let Some(chunk) = buf.get(i..).and_then(|s| s.first_chunk::<8>()) {
        let m = string_specials(u64::from_le_bytes(*chunk));
        if m != 0 {
            i += (m.trailing_zeros() / 8) as usize;
            return (buf.get(i) == Some(&b'"')).then_some(i);
        }
        i += 8;
    }
    while let Some(&b) = buf.get(i) {
        if b == b'"' {
            return Some(i);
        }
        if b == b'\\' || !(0x20..0x80).contains(&b) {
            return None;
        }
        i += 1;
    }
    None
}

/// One value read by [`Scanner::value`]. Containers are entered, not skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// An object was opened; continue with [`Scanner::next_key`].
    Object,
    /// An array was opened; continue with [`Scanner::next_element`].
    Array,
    /// A string.
    Str(JsonStr<'a>),
    /// A number.
    Num(JsonNum<'a>),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// A pull scanner over one JSON text; see the [module docs](self).
///
/// Usage follows the shape of the document: `begin_object` then `next_key` until it returns
/// `None`, reading (or skipping) one value after each key; `begin_array` then `next_element`
/// until it returns `false`, reading one value after each `true`. Finish with
/// [`finish`](Self::finish) to reject trailing garbage.
#[derive(Clone, Debug)]
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
    /// The innermost open container has no member yet.
    first: bool,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte lane set where the lane may need attention inside a string: `"`, `\`, a
/// control character or a non-ASCII byte. The lowest set lane is exact.
#[inline(always)]
fn string_specials(w: u64) -> u64 {
    let q = w ^ (LO * b'"' as u64);
    let bs = w ^ (LO * b'\\' as u64);
    let zq = q.wrapping_sub(LO) & !q;
    let zb = bs.wrapping_sub(LO) & !bs;
    let ctl = w.wrapping_sub(LO * 0x20) & !w;
    (zq | zb | ctl | w) & HI
}

#[inline(always)]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner {
            buf,
            pos: 0,
            depth: 0,
            first: false,
        }
    }

    /// A scanner over `buf` positioned at `pos` (for re-reading a value found earlier; error
    /// offsets stay relative to `buf`).
    #[inline]
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Scanner {
            buf,
            pos: pos.min(buf.len()),
            depth: 0,
            first: false,
        }
    }

    /// Current byte offset.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The whole input.
    #[inline]
    pub fn input(&self) -> &'a [u8] {
        self.buf
    }

    /// Current nesting depth (open objects and arrays).
    #[inline]
    pub fn depth(&self) -> u32 {
        self.depth
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if !is_ws(b) {
                break;
            }
            self.pos += 1;
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline(always)]
    fn peek_byte(&mut self) -> Result<u8, JsonError> {
        match self.buf.get(self.pos) {
            Some(&b) if !is_ws(b) => Ok(b),
            _ => {
                self.skip_ws();
                match self.buf.get(self.pos) {
                    Some(&b) => Ok(b),
                    None => Err(self.eof()),
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn eof(&self) -> JsonError {
        JsonError::new(JsonErrorKind::Eof, self.buf.len())
    }

    #[cold]
    #[inline(never)]
    fn unexpected(&self, at: usize) -> JsonError {
        match self.buf.get(at) {
            Some(&b) => JsonError::new(JsonErrorKind::Unexpected(b), at),
            None => self.eof(),
        }
    }

    /// The kind of the next value (skipping whitespace), without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Result<ValueKind, JsonError> {
        let b = self.peek_byte()?;
        Ok(match b {
            b'{' => ValueKind::Object,
            b'[' => ValueKind::Array,
            b'"' => ValueKind::String,
            b'-' | b'0'..=b'9' => ValueKind::Number,
            b't' => ValueKind::True,
            b'f' => ValueKind::False,
            b'n' => ValueKind::Null,
            _ => return Err(self.unexpected(self.pos)),
        })
    }

    #[inline]
    fn enter(&mut self, open: u8) -> Result<(), JsonError> {
        let b = self.peek_byte()?;
        if b != open {
            return Err(self.unexpected(self.pos));
        }
        if self.depth >= MAX_DEPTH {
            return Err(JsonError::new(JsonErrorKind::TooDeep, self.pos));
        }
        self.depth += 1;
        self.pos += 1;
        self.first = true;
        Ok(())
    }

    /// Consumes `{`.
    #[inline]
    pub fn begin_object(&mut self) -> Result<(), JsonError> {
        self.enter(b'{')
    }

    /// Consumes `[`.
    #[inline]
    pub fn begin_array(&mut self) -> Result<(), JsonError> {
        self.enter(b'[')
    }

    /// Moves past the separator before the next member of the open container: returns `false`
    /// (having consumed `close`) at its end, `true` when a member follows.
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Result<bool, JsonError> {
        let mut b = self.peek_byte()?;
        if self.first {
            self.first = false;
        } else if b == b',' {
            self.pos += 1;
            b = self.peek_byte()?;
            if b == close {
                // Trailing comma.
                return Err(self.unexpected(self.pos));
            }
            return Ok(true);
        } else if b != close {
            return Err(self.unexpected(self.pos));
        }
        if b == close {
            self.pos += 1;
            self.depth = self.depth.saturating_sub(1);
            return Ok(false);
        }
        Ok(true)
    }

    /// In an object: the next key (with its `:` consumed), or `None` after the closing `}`.
    #[inline]
    pub fn next_key(&mut self) -> Result<Option<JsonStr<'a>>, JsonError> {
        if !self.next_member(b'}')? {
            return Ok(None);
        }
        if self.buf.get(self.pos) != Some(&b'"') {
            return Err(self.unexpected(self.pos));
        }
        let key = self.scan_string()?;
        if self.buf.get(self.pos) == Some(&b':') {
            self.pos += 1;
        } else {
            if self.peek_byte()? != b':' {
                return Err(self.unexpected(self.pos));
            }
            self.pos += 1;
        }
        Ok(Some(key))
    }

    /// In an array: `true` if another element follows, `false` after the closing `]`.
    #[inline]
    pub fn next_element(&mut self) -> Result<bool, JsonError> {
        self.next_member(b']')
    }

    /// Reads a string value.
    #[inline]
    pub fn string(&mut self) -> Result<JsonStr<'a>, JsonError> {
        if self.peek_byte()? != b'"' {
            return Err(self.unexpected(self.pos));
        }
        self.scan_string()
    }

    /// Reads a number value.
    #[inline]
    pub fn number(&mut self) -> Result<JsonNum<'a>, JsonError> {
        match self.peek_byte()? {
            b'-' | b'0'..=b'9' => self.scan_number(),
            _ => Err(self.unexpected(self.pos)),
        }
    }

    /// Reads `true` or `false`.
    #[inline]
    pub fn boolean(&mut self) -> Result<bool, JsonError> {
        match self.peek_byte()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => Err(self.unexpected(self.pos)),
        }
    }

    /// Reads `null`.
    #[inline]
    pub fn null(&mut self) -> Result<(), JsonError> {
        self.peek_byte()?;
        self.literal(b"null")
    }

    /// Reads the next value: scalars whole, containers only opened (see [`Value`]).
    #[inline]
    pub fn value(&mut self) -> Result<Value<'a>, JsonError> {
        Ok(match self.peek()? {
            ValueKind::Object => {
                self.begin_object()?;
                Value::Object
            }
            ValueKind::Array => {
                self.begin_array()?;
                Value::Array
            }
            ValueKind::String => Value::Str(self.scan_string()?),
            ValueKind::Number => Value::Num(self.scan_number()?),
            ValueKind::True => {
                self.literal(b"true")?;
                Value::Bool(true)
            }
            ValueKind::False => {
                self.literal(b"false")?;
                Value::Bool(false)
            }
            ValueKind::Null => {
                self.literal(b"null")?;
                Value::Null
            }
        })
    }

    /// Skips the next value, validating all of it, and returns its byte range.
    pub fn skip_value(&mut self) -> Result<Range<usize>, JsonError> {
        let kind = self.peek()?;
        let start = self.pos;
        match kind {
            ValueKind::Object => {
                self.begin_object()?;
                while self.next_key()?.is_some() {
                    self.skip_value()?;
                }
            }
            ValueKind::Array => {
                self.begin_array()?;
                while self.next_element()? {
                    self.skip_value()?;
                }
            }
            ValueKind::String => {
                self.scan_string()?;
            }
            ValueKind::Number => {
                self.scan_number()?;
            }
            ValueKind::True => self.literal(b"true")?,
            ValueKind::False => self.literal(b"false")?,
            ValueKind::Null => self.literal(b"null")?,
        }
        Ok(start..self.pos)
    }

    /// Succeeds only if nothing but whitespace is left and every container was closed.
    #[inline]
    pub fn finish(&mut self) -> Result<(), JsonError> {
        self.skip_ws();
        if self.pos < self.buf.len() {
            return Err(JsonError::new(JsonErrorKind::TrailingData, self.pos));
        }
        if self.depth != 0 {
            return Err(self.eof());
        }
        Ok(())
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<(), JsonError> {
        let end = self.pos + lit.len();
        if self.buf.get(self.pos..end) == Some(lit) {
            self.pos = end;
            return Ok(());
        }
        for (k, &want) in lit.iter().enumerate() {
            match self.buf.get(self.pos + k) {
                None => return Err(self.eof()),
                Some(&got) if got != want => return Err(self.unexpected(self.pos + k)),
                Some(_) => {}
            }
        }
        Err(self.unexpected(self.pos))
    }

    /// Scans a string whose opening quote is at `self.pos`.
    #[inline(always)]
    fn scan_string(&mut self) -> Result<JsonStr<'a>, JsonError> {
        let buf = self.buf;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let mut high = false;
        loop {
            // Eight bytes at a time while nothing needs attention.
            while let Some(chunk) = buf.get(i..).and_then(|s| s.first_chunk::<8>()) {
                let m = string_specials(u64::from_le_bytes(*chunk));
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match buf.get(i) {
                None => return Err(self.eof()),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i = self.scan_escape(i)?;
                }
                Some(&b) if b < 0x20 => {
                    return Err(JsonError::new(JsonErrorKind::ControlChar, i));
                }
                Some(&b) => {
                    high |= b >= 0x80;
                    i += 1;
                }
            }
        }
        let raw = buf.get(start..i).unwrap_or_default();
        if high {
            if let Err(e) = core::str::from_utf8(raw) {
                return Err(JsonError::new(
                    JsonErrorKind::InvalidUtf8,
                    start + e.valid_up_to(),
                ));
            }
        }
        self.pos = i + 1;
        Ok(JsonStr {
            raw,
            offset: start,
            escaped,
        })
    }

    /// Validates the escape whose backslash is at `i`; returns the offset after it.
    #[cold]
    fn scan_escape(&self, i: usize) -> Result<usize, JsonError> {
        match self.buf.get(i + 1) {
            None => Err(self.eof()),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
            Some(b'u') => {
                let cp = self.hex4(i + 2)?;
                if (0xDC00..0xE000).contains(&cp) {
                    return Err(JsonError::new(JsonErrorKind::LoneSurrogate, i));
                }
                if !(0xD800..0xDC00).contains(&cp) {
                    return Ok(i + 6);
                }
                match (self.buf.get(i + 6), self.buf.get(i + 7)) {
                    (Some(b'\\'), Some(b'u')) => {}
                    (None, _) | (Some(b'\\'), None) => return Err(self.eof()),
                    _ => return Err(JsonError::new(JsonErrorKind::LoneSurrogate, i)),
                }
                let lo = self.hex4(i + 8)?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return Err(JsonError::new(JsonErrorKind::LoneSurrogate, i));
                }
                Ok(i + 12)
            }
            Some(_) => Err(JsonError::new(JsonErrorKind::InvalidEscape, i + 1)),
        }
    }

    fn hex4(&self, at: usize) -> Result<u16, JsonError> {
        let mut v: u16 = 0;
        for k in 0..4 {
            let Some(&b) = self.buf.get(at + k) else {
                return Err(self.eof());
            };
            let Some(d) = hex_val(b) else {
                return Err(JsonError::new(JsonErrorKind::InvalidEscape, at + k));
            };
            v = (v << 4) | d as u16;
        }
        Ok(v)
    }

    /// Scans a number starting at `self.pos` (a `-` or a digit).
    #[inline(always)]
    fn scan_number(&mut self) -> Result<JsonNum<'a>, JsonError> {
        let buf = self.buf;
        let start = self.pos;
        let mut i = start;
        if buf.get(i) == Some(&b'-') {
            i += 1;
        }
        match buf.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                i += 1;
                while let Some(b'0'..=b'9') = buf.get(i) {
                    i += 1;
                }
            }
            Some(_) => return Err(JsonError::new(JsonErrorKind::InvalidNumber, i)),
            None => return Err(self.eof()),
        }
        if buf.get(i) == Some(&b'.') {
            i = self.digits(i + 1)?;
        }
        if let Some(b'e' | b'E') = buf.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = buf.get(i) {
                i += 1;
            }
            i = self.digits(i)?;
        }
        self.pos = i;
        Ok(JsonNum {
            raw: buf.get(start..i).unwrap_or_default(),
            offset: start,
        })
    }

    /// One or more digits from `i`; returns the offset after them.
    fn digits(&self, mut i: usize) -> Result<usize, JsonError> {
        match self.buf.get(i) {
            Some(b'0'..=b'9') => i += 1,
            Some(_) => return Err(JsonError::new(JsonErrorKind::InvalidNumber, i)),
            None => return Err(self.eof()),
        }
        while let Some(b'0'..=b'9') = self.buf.get(i) {
            i += 1;
        }
        Ok(i)
    }
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes the raw content of a validated JSON string (escapes included) into `out` as UTF-8.
///
/// Returns the used part of `out`, or `None` if it does not fit or `raw` holds an escape that is
/// not valid JSON (which a string from [`Scanner`] never does).
pub fn unescape<'b>(raw: &[u8], out: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut i = 0;
    let mut n = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            *out.get_mut(n)? = b;
            n += 1;
            i += 1;
            continue;
        }
        let c = *raw.get(i + 1)?;
        let simple = match c {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return None,
        };
        if let Some(s) = simple {
            *out.get_mut(n)? = s;
            n += 1;
            i += 2;
            continue;
        }
        let hi = hex4_of(raw.get(i + 2..i + 6)?)?;
        let (cp, used) = if (0xD800..0xDC00).contains(&hi) {
            if raw.get(i + 6..i + 8)? != b"\\u" {
                return None;
            }
            let lo = hex4_of(raw.get(i + 8..i + 12)?)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
        } else {
            (hi, 6)
        };
        let ch = char::from_u32(cp)?;
        let len = ch.len_utf8();
        ch.encode_utf8(out.get_mut(n..n + len)?);
        n += len;
        i += used;
    }
    out.get(..n)
}

fn hex4_of(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |v, &b| Some((v << 4) | hex_val(b)? as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validates a whole document by skipping it.
    fn validate(s: &[u8]) -> Result<(), JsonError> {
        let mut sc = Scanner::new(s);
        sc.skip_value()?;
        sc.finish()
    }

    fn kind_of(s: &[u8]) -> JsonErrorKind {
        validate(s).unwrap_err().kind
    }

    #[test]
    fn accepts_valid_documents() {
        for doc in [
            &b"{}"[..],
            b"[]",
            b" { \"a\" : [ 1 , -2.5e+3 , 0 , 0.0 , 1E9 , true , false , null , \"x\" ] } \n",
            b"\"\"",
            b"0",
            b"-0",
            b"123456789012345678901234567890",
            b"{\"\\u00e9\\n\\\"\\\\\\/\\b\\f\\r\\t\":\"\\ud83d\\ude00\"}",
            "{\"é\":\"日本\"}".as_bytes(),
            b"[[[[[[]]]]]]",
            b"{\"a\":{\"b\":{\"c\":[{}]}}}",
        ] {
            assert_eq!(validate(doc), Ok(()), "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn rejects_syntax_errors_with_offsets() {
        let e = validate(b"{\"a\":1,}").unwrap_err();
        assert_eq!(
            e,
            JsonError {
                kind: JsonErrorKind::Unexpected(b'}'),
                offset: 7
            }
        );
        let e = validate(b"[1,]").unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::Unexpected(b']'));
        assert_eq!(kind_of(b"[,1]"), JsonErrorKind::Unexpected(b','));
        assert_eq!(kind_of(b"{,}"), JsonErrorKind::Unexpected(b','));
        assert_eq!(kind_of(b"{\"a\" 1}"), JsonErrorKind::Unexpected(b'1'));
        assert_eq!(
            kind_of(b"{\"a\":1 \"b\":2}"),
            JsonErrorKind::Unexpected(b'"')
        );
        assert_eq!(kind_of(b"{a:1}"), JsonErrorKind::Unexpected(b'a'));
        assert_eq!(kind_of(b"['a']"), JsonErrorKind::Unexpected(b'\''));
        assert_eq!(kind_of(b"[1}"), JsonErrorKind::Unexpected(b'}'));
        assert_eq!(kind_of(b"{\"a\":1]"), JsonErrorKind::Unexpected(b']'));
        assert_eq!(kind_of(b"tru"), JsonErrorKind::Eof);
        assert_eq!(kind_of(b"trux"), JsonErrorKind::Unexpected(b'x'));
        assert_eq!(kind_of(b"nul"), JsonErrorKind::Eof);
        assert_eq!(kind_of(b"/* c */ 1"), JsonErrorKind::Unexpected(b'/'));
        assert_eq!(kind_of(b"NaN"), JsonErrorKind::Unexpected(b'N'));
    }

    #[test]
    fn numbers_follow_the_grammar() {
        for bad in [
            &b"01"[..],
            b"-",
            b"-a",
            b"1.",
            b"1.e3",
            b".5",
            b"1e",
            b"1e+",
            b"+1",
            b"--1",
            b"0x10",
        ] {
            assert!(validate(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(kind_of(b"01"), JsonErrorKind::TrailingData);
        assert_eq!(kind_of(b"1."), JsonErrorKind::Eof);
        assert_eq!(kind_of(b"[1.x]"), JsonErrorKind::InvalidNumber);
        assert_eq!(kind_of(b"[-x]"), JsonErrorKind::InvalidNumber);
        let mut sc = Scanner::new(b"18446744073709551615");
        assert_eq!(sc.number().unwrap().as_u64(), Ok(u64::MAX));
        let mut sc = Scanner::new(b"18446744073709551616");
        assert_eq!(sc.number().unwrap().as_u64(), Err(NumError::Overflow));
        let mut sc = Scanner::new(b"99999999999999999999999");
        assert_eq!(sc.number().unwrap().as_u64(), Err(NumError::Overflow));
        for not_unsigned in [&b"-1"[..], b"1.0", b"1e3", b"-0"] {
            let mut sc = Scanner::new(not_unsigned);
            assert_eq!(sc.number().unwrap().as_u64(), Err(NumError::NotUnsigned));
        }
        let mut sc = Scanner::new(b"0");
        assert_eq!(sc.number().unwrap().as_u64(), Ok(0));
    }

    #[test]
    fn parse_u64_matches_std_at_every_length() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 1..=20usize {
            for _ in 0..500 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = x.to_string();
                let s = &s[s.len().saturating_sub(len)..];
                assert_eq!(
                    parse_u64(s.as_bytes()),
                    Ok(s.parse::<u64>().unwrap()),
                    "{s}"
                );
            }
        }
        assert_eq!(parse_u64(b"0000000000000000001"), Ok(1));
        assert_eq!(
            parse_u64(b"9999999999999999999"),
            Ok(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_u64(b""), Err(NumError::NotUnsigned));
        // A non-digit anywhere, in the SWAR chunk or the tail.
        for bad in [
            &b"1234567/"[..],
            b"1234567:",
            b"12345678x",
            b"a2345678",
            b"1234 5678",
            b"123456789012345678\x80",
        ] {
            assert_eq!(parse_u64(bad), Err(NumError::NotUnsigned), "{bad:?}");
        }
    }

    #[test]
    fn plain_string_end_finds_only_plain_strings() {
        assert_eq!(plain_string_end(b"\"abc\"", 1), Some(4));
        assert_eq!(plain_string_end(b"61837.63000000\",\"q", 0), Some(14));
        assert_eq!(plain_string_end(b"\"", 0), Some(0));
        assert_eq!(plain_string_end(b"0123456789abcdef0123\"", 0), Some(20));
        assert_eq!(plain_string_end(b"abc", 0), None);
        assert_eq!(plain_string_end(b"0123456789abcdef", 0), None);
        assert_eq!(plain_string_end(b"a\\\"b\"", 0), None);
        assert_eq!(plain_string_end(b"caf\xc3\xa9\"", 0), None);
        assert_eq!(plain_string_end(b"0123456789\x01\"", 0), None);
        assert_eq!(plain_string_end(b"x", 5), None);
    }

    #[test]
    fn strings_are_strict() {
        assert_eq!(kind_of(b"\"a\x01b\""), JsonErrorKind::ControlChar);
        assert_eq!(kind_of(b"\"tab\there\""), JsonErrorKind::ControlChar);
        assert_eq!(kind_of(b"\"\\x\""), JsonErrorKind::InvalidEscape);
        assert_eq!(kind_of(b"\"\\u12G4\""), JsonErrorKind::InvalidEscape);
        assert_eq!(kind_of(b"\"\\ud800\""), JsonErrorKind::LoneSurrogate);
        assert_eq!(kind_of(b"\"\\ud800\\n\""), JsonErrorKind::LoneSurrogate);
        assert_eq!(kind_of(b"\"\\ud800\\u0041\""), JsonErrorKind::LoneSurrogate);
        assert_eq!(kind_of(b"\"\\udc00\""), JsonErrorKind::LoneSurrogate);
        assert_eq!(kind_of(b"\"abc"), JsonErrorKind::Eof);
        assert_eq!(kind_of(b"\"abc\\"), JsonErrorKind::Eof);
        assert_eq!(kind_of(b"\"\\u12"), JsonErrorKind::Eof);
        assert_eq!(kind_of(b"\"\\ud800\\"), JsonErrorKind::Eof);
    }

    #[test]
    fn invalid_utf8_is_a_typed_error_with_offset() {
        // Lone continuation byte inside a string.
        let e = validate(b"{\"a\":\"xy\x80z\"}").unwrap_err();
        assert_eq!(
            e,
            JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                offset: 8
            }
        );
        // Overlong encoding, surrogate code point, truncated sequence.
        assert_eq!(kind_of(b"\"\xc0\xaf\""), JsonErrorKind::InvalidUtf8);
        assert_eq!(kind_of(b"\"\xed\xa0\x80\""), JsonErrorKind::InvalidUtf8);
        assert_eq!(kind_of(b"\"\xe6\x97\""), JsonErrorKind::InvalidUtf8);
        // In a key, and far into a long string (past the 8-byte fast path).
        assert_eq!(kind_of(b"{\"k\xff\":1}"), JsonErrorKind::InvalidUtf8);
        let e = validate(b"\"0123456789abcdef\xfe\"").unwrap_err();
        assert_eq!(
            e,
            JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                offset: 17
            }
        );
        // Outside strings non-ASCII is a syntax error.
        assert_eq!(kind_of(b"[1,\xc3\xa9]"), JsonErrorKind::Unexpected(0xc3));
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert_eq!(validate(b"{} \r\n\t"), Ok(()));
        let e = validate(b"{}x").unwrap_err();
        assert_eq!(
            e,
            JsonError {
                kind: JsonErrorKind::TrailingData,
                offset: 2
            }
        );
        assert_eq!(kind_of(b"{}{}"), JsonErrorKind::TrailingData);
        assert_eq!(kind_of(b"1 2"), JsonErrorKind::TrailingData);
        assert_eq!(kind_of(b"{}\0"), JsonErrorKind::TrailingData);
    }

    #[test]
    fn empty_and_whitespace_only_inputs_are_truncated() {
        assert_eq!(
            validate(b""),
            Err(JsonError {
                kind: JsonErrorKind::Eof,
                offset: 0
            })
        );
        assert_eq!(
            validate(b"   "),
            Err(JsonError {
                kind: JsonErrorKind::Eof,
                offset: 3
            })
        );
    }

    #[test]
    fn depth_is_capped_without_recursion_blowup() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_DEPTH as usize),
            "]".repeat(MAX_DEPTH as usize)
        );
        assert_eq!(validate(ok.as_bytes()), Ok(()));
        let deep = "[".repeat(MAX_DEPTH as usize + 1);
        let e = validate(deep.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            JsonError {
                kind: JsonErrorKind::TooDeep,
                offset: MAX_DEPTH as usize
            }
        );
        let huge = "{\"a\":".repeat(1_000_000);
        assert_eq!(kind_of(huge.as_bytes()), JsonErrorKind::TooDeep);
    }

    #[test]
    fn truncation_at_every_offset_is_an_error_never_a_panic() {
        let doc = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true,"x":[1.5e-3,null,false,"\u00e9\ud83d\ude00"]}}"#;
        assert_eq!(validate(doc), Ok(()));
        for cut in 0..doc.len() {
            assert!(
                validate(&doc[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
    }

    #[test]
    fn pull_api_walks_an_object() {
        let doc = br#"{"e":"trade","n":-12.5,"ok":true,"z":null,"arr":[1,"two",{}],"esc":"a\"b"}"#;
        let mut sc = Scanner::new(doc);
        sc.begin_object().unwrap();
        assert_eq!(sc.depth(), 1);
        let k = sc.next_key().unwrap().unwrap();
        assert_eq!(k.raw(), b"e");
        assert_eq!(k.offset(), 2);
        let v = sc.string().unwrap();
        assert_eq!(v.unescaped(), Some(&b"trade"[..]));
        assert_eq!(sc.next_key().unwrap().unwrap().raw(), b"n");
        assert_eq!(sc.number().unwrap().raw(), b"-12.5");
        assert_eq!(sc.next_key().unwrap().unwrap().raw(), b"ok");
        assert!(sc.boolean().unwrap());
        assert_eq!(sc.next_key().unwrap().unwrap().raw(), b"z");
        sc.null().unwrap();
        assert_eq!(sc.next_key().unwrap().unwrap().raw(), b"arr");
        assert_eq!(sc.value().unwrap(), Value::Array);
        assert!(sc.next_element().unwrap());
        assert!(matches!(sc.value().unwrap(), Value::Num(n) if n.as_u64() == Ok(1)));
        assert!(sc.next_element().unwrap());
        assert!(matches!(sc.value().unwrap(), Value::Str(s) if s.raw() == b"two"));
        assert!(sc.next_element().unwrap());
        let r = sc.skip_value().unwrap();
        assert_eq!(&doc[r], b"{}");
        assert!(!sc.next_element().unwrap());
        assert_eq!(sc.next_key().unwrap().unwrap().raw(), b"esc");
        let s = sc.string().unwrap();
        assert!(s.has_escapes());
        assert_eq!(s.unescaped(), None);
        let mut buf = [0u8; 8];
        assert_eq!(s.decode_into(&mut buf), Some(&b"a\"b"[..]));
        assert_eq!(sc.next_key().unwrap(), None);
        assert_eq!(sc.depth(), 0);
        sc.finish().unwrap();
    }

    #[test]
    fn wrong_reader_for_the_value_is_an_error() {
        assert!(Scanner::new(b"1").string().is_err());
        assert!(Scanner::new(b"\"1\"").number().is_err());
        assert!(Scanner::new(b"null").boolean().is_err());
        assert!(Scanner::new(b"[]").begin_object().is_err());
        assert!(Scanner::new(b"{}").begin_array().is_err());
        let mut sc = Scanner::new(b"{}");
        sc.begin_object().unwrap();
        assert_eq!(sc.next_key().unwrap(), None);
        // An unfinished container is not a complete document.
        let mut sc = Scanner::new(b"[1");
        sc.begin_array().unwrap();
        assert!(sc.next_element().unwrap());
        sc.number().unwrap();
        assert_eq!(sc.finish().unwrap_err().kind, JsonErrorKind::Eof);
    }

    #[test]
    fn unescape_decodes_everything_json_allows() {
        let mut buf = [0u8; 32];
        let raw = br#"a\"\\\/\b\f\n\r\t\u0041\u00e9\u65e5\ud83d\ude00"#;
        let want = "a\"\\/\u{8}\u{c}\n\r\tAé日😀".as_bytes();
        assert_eq!(unescape(raw, &mut buf), Some(want));
        // Does not fit.
        assert_eq!(unescape(b"abcdef", &mut buf[..3]), None);
        assert_eq!(unescape(b"\\u00e9", &mut buf[..1]), None);
        // Garbage never panics.
        for bad in [
            &b"\\"[..],
            b"\\x",
            b"\\u12",
            b"\\ud800",
            b"\\ud800\\u0041",
            b"\\udc00",
        ] {
            assert_eq!(unescape(bad, &mut buf), None);
        }
    }

    #[test]
    fn every_single_byte_document_is_handled() {
        for b in 0..=255u8 {
            let doc = [b];
            let r = validate(&doc);
            assert_eq!(r.is_ok(), b.is_ascii_digit(), "byte {b:#x}");
        }
    }
}
