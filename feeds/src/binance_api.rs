//! Binance spot WebSocket API: signed order requests, their replies, and `executionReport` events.
//!
//! The WebSocket API (`wss://ws-api.binance.com:443/ws-api/v3`) takes one JSON request per text
//! frame, `{"id":7,"method":"order.place","params":{..}}`, and answers each with
//! `{"id":7,"status":200,"result":{..}}` or `{"id":7,"status":400,"error":{"code":-2010,"msg":".."}}`.
//! This module is the codec only (sans-IO, like the rest of the wire side's decoders): the I/O
//! thread owns the socket, passes in the time, and writes out the text the encoder hands back.
//!
//! # Requests ([`OrderEncoder`])
//!
//! | method | call | params (in the order they are signed) |
//! |---|---|---|
//! | `order.place` LIMIT | [`OrderEncoder::place`] | `apiKey`, `newClientOrderId`, `newOrderRespType=FULL`, `price`, `quantity`, `recvWindow`, `side`, `symbol`, `timeInForce` (`GTC`/`IOC`/`FOK`), `timestamp`, `type=LIMIT` |
//! | `order.place` MARKET | [`OrderEncoder::place`] | `apiKey`, `newClientOrderId`, `newOrderRespType=FULL`, `quantity`, `recvWindow`, `side`, `symbol`, `timestamp`, `type=MARKET` |
//! | `order.cancel` | [`OrderEncoder::cancel`] | `apiKey`, `origClientOrderId`, `recvWindow`, `symbol`, `timestamp` |
//! | `openOrders.status` | [`OrderEncoder::open_orders`] | `apiKey`, `recvWindow`, `symbol` (optional), `timestamp` |
//! | `order.status` | [`OrderEncoder::order_status`] | `apiKey`, `origClientOrderId`, `recvWindow`, `symbol`, `timestamp` |
//! | `myTrades` | [`OrderEncoder::my_trades`] | `apiKey`, `fromId` (optional), `limit` (optional), `orderId` (optional), `recvWindow`, `symbol`, `timestamp` |
//! | `session.logon` (Ed25519 only) | [`OrderEncoder::logon`] | `apiKey`, `recvWindow`, `timestamp` |
//! | `userDataStream.subscribe.signature` (any key) | [`OrderEncoder::user_stream_subscribe_signature`] | `apiKey`, `recvWindow`, `timestamp` (always signed) |
//! | `userDataStream.subscribe` (after `session.logon` only) | [`OrderEncoder::user_stream_subscribe`] | none, no `params` |
//! | anything else signed | [`OrderEncoder::signed_request`] | yours, plus `apiKey`, `recvWindow`, `timestamp` |
//!
//! `signature` comes last in `params`. Prices and quantities are written as decimal strings with
//! eight fractional digits ([`Price`]'s `Display`), the client order id as its wire form
//! ([`ClientOrderId`]'s `Display`, `tl-17`). `recvWindow` is omitted when the encoder was made
//! with `0` (the venue then applies its default of 5000 ms; it refuses values above 60000).
//! `newOrderRespType=FULL` makes the reply carry the order's status, `executedQty` and its fills
//! so far (Binance documents `ACK`, `RESULT` and `FULL` for the WebSocket API's `order.place`,
//! `FULL` being the default for LIMIT and MARKET orders); [`parse_place_result`] reads them, so
//! an IOC, FOK or market order is settled by its reply even when no `executionReport` comes.
//! The same fills also arrive in `executionReport` events, keyed by the same trade id.
//!
//! # Signing (Binance's "SIGNED request security")
//!
//! Every param except `signature` is sorted by name (byte order, which is what the documentation's
//! alphabetical order is: `timeInForce` before `timestamp`) and joined as `key=value&key=value`;
//! that payload is signed with HMAC-SHA256 and written as lowercase hex (HMAC keys), or with
//! Ed25519 and written as standard base64 with padding (Ed25519 keys). The test suite checks this
//! against the worked example of the documentation (`tests/binance_api.rs`).
//!
//! After a successful `session.logon` (Ed25519 keys only) the venue no longer needs `apiKey` and
//! `signature` on the connection: [`OrderEncoder::set_session_authenticated`] drops both (and the
//! signing, about 13 µs per Ed25519 signature, see "Cost") until it is turned off again, which the
//! I/O thread must do on every reconnect.
//!
//! # Credentials and the key file
//!
//! [`Credentials::from_env`] reads `<PREFIX>_API_KEY` plus either `<PREFIX>_API_SECRET` (HMAC) or
//! `<PREFIX>_ED25519_KEY_FILE` (a PEM PKCS#8 private key, unencrypted). [`Credentials::from_file`]
//! reads a key file of `key = value` lines:
//!
//! ```text
//! # Tickline Binance credentials (chmod 600)
//! api_key = vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A
//! api_secret = <HMAC secret key>
//! # or, for an Ed25519 API key: the private key's PEM file, relative to this file's directory
//! # ed25519_key_file = binance-ed25519.pem
//! ```
//!
//! Blank lines and lines starting with `#` are ignored; whitespace around keys and values is
//! trimmed; an unknown or repeated key, a missing `api_key`, or both or neither of `api_secret`
//! and `ed25519_key_file` is an error naming the line number (never the line's content). Key files
//! and PEM files readable or writable by group or other (`mode & 0o077 != 0`) are refused.
//!
//! Secrets never reach a log: [`Secret`] and [`Credentials`] print `<redacted>` (the API key is
//! shown as its first four characters), no [`ApiError`] carries file content or a secret, and the
//! encoded requests contain the API key and the signature only. File and secret buffers are
//! overwritten when dropped (best effort: without `unsafe` or a zeroize crate the compiler is only
//! asked, through [`std::hint::black_box`], not to elide the writes).
//!
//! # Replies ([`parse_reply`])
//!
//! The whole frame is validated as JSON ([`crate::json`]); keys may come in any order. What the
//! reply is follows from its shape, since a reply does not repeat its method:
//!
//! | frame | [`ApiReply`] |
//! |---|---|
//! | `error` object | `Rejected` (status, code, message) |
//! | `result` array | `OpenOrders` |
//! | `result` object with `orderId` and `origClientOrderId` | `Canceled` |
//! | `result` object with `orderId` and `clientOrderId` | `Placed` |
//! | any other `result` (`session.logon`, `{}`), or only a `status` | `Other` |
//! | `event` (a user data stream event on the API connection) or `e` | `Event`: pass it to [`parse_execution_report`] |
//!
//! A 5xx status means the outcome is unknown (the order may exist): query before retrying.
//!
//! `order.status` and `myTrades` replies have the shapes of `order.place` and `openOrders.status`
//! replies, so [`parse_reply`] cannot tell them apart: the caller, who knows which request id
//! was which, reads them with [`parse_order_status`] and [`parse_my_trades`] (below). Given one
//! anyway, [`parse_reply`] does not panic: a `myTrades` reply is an error
//! (`MissingField("side")`, a trade has no side) or, when empty, `OpenOrders` with no orders;
//! an `order.status` reply is `Placed` for an order of ours and `BadClientId` for another.
//!
//! # Reconciling after a restart
//!
//! A restarted engine asks the venue what became of the orders its journal left open, and which
//! fills it missed:
//!
//! | request | reply parser | gives |
//! |---|---|---|
//! | [`OrderEncoder::order_status`] | [`parse_order_status`] | [`OrderStatusReply::Found`]: the order's report ([`OpenOrder`]: symbol, ids, side, price, `origQty`, `executedQty`, status) |
//! | [`OrderEncoder::my_trades`] | [`parse_my_trades`] | [`TradesReply::Trades`]: the account's trades ([`VenueTrade`]) on one symbol, oldest first |
//!
//! A failed request comes back as `Ok(..::Error { request_id, status, code, msg })`, the same
//! fields as [`ApiReply::Rejected`]: `order.status` of an order the venue does not know answers
//! status 400, code `-2013` ("Order does not exist."). `Err(ApiError)` is kept for frames that
//! are not a well-formed reply; it names the field at fault.
//!
//! [`trade_fill`] turns a [`VenueTrade`] of our order into the [`Fill`] that the order's
//! `executionReport` gives (same trade id, price, quantity, and the fee rule below), so a fill
//! recovered through `myTrades` and one that arrives as a live event de-duplicate by trade id and
//! are equal. `myTrades` has no client order id: match trades to our orders by `orderId`, the
//! venue order id of the `order.place` reply, the `NEW` report or `order.status`.
//!
//! Order ids: `order.status` looks the order up by our id (`origClientOrderId`). The venue
//! documents that a cancel gives the canceled order the cancel's own id ("`newClientOrderId`
//! will replace `clientOrderId` of the canceled order"), so for an order we canceled the reply's
//! `clientOrderId` may not be ours ([`OpenOrder::client_id`] is then `None`), and the lookup may
//! answer `-2013`: fall back to `myTrades` by `orderId`.
//!
//! # Execution reports ([`parse_execution_report`])
//!
//! Takes an `executionReport` bare (`{"e":"executionReport",..}`), as a WebSocket API event
//! (`{"subscriptionId":0,"event":{..}}` or `{"event":{..}}`) or in a combined-stream envelope
//! (`{"stream":"..","data":{..}}`), and appends at most one event:
//!
//! | `x` (execution type) | event |
//! |---|---|
//! | `NEW` | [`OrderAck`] (`c`, venue order id `i`) |
//! | `TRADE` | [`Fill`]: trade id `t`, quantity `l`, price `L`, fee from `n`/`N` (below) |
//! | `CANCELED` | [`OrderCanceled`]: our id is `C` (the canceled order's id; `c` is then the cancel's own id), or `c` when `C` is empty; leaves `q - z` |
//! | `EXPIRED`, and `TRADE_PREVENTION` with status `X` `EXPIRED` or `EXPIRED_IN_MATCH` | [`OrderCanceled`]: `c`, leaves `q - z` |
//! | `REJECTED` | [`OrderReject`] with [`RejectReason::Venue`] |
//! | `REPLACED`, `AMENDMENT`, other `TRADE_PREVENTION` | nothing |
//!
//! Other event types (`outboundAccountPosition`, `balanceUpdate`, `listStatus`, ...), symbols
//! missing from the table, and client order ids that are not Tickline's (orders placed elsewhere
//! on the account) append nothing and return `Ok(0)`.
//!
//! **Fees.** [`Fill::fee`] is in quote units, so the commission `n` is recorded only when its
//! asset `N` is the symbol's quote asset: the symbol's name ends with `N` and does not also start
//! with it (`TUSDT` is T/USDT: a fee in `T` is the base asset, a fee in `USDT` the quote). A fee
//! in the base asset, in BNB or any other asset, and no fee (`N` null), are recorded as **0**:
//! such fees are not in the portfolio's PnL (and a base-asset fee also makes the received
//! quantity smaller than `l`).
//!
//! # Cost
//!
//! The encoder reuses two `String`s (the JSON and the signed payload, 512 bytes reserved at
//! start-up): after warm-up, encoding and signing an order allocates nothing (checked with a
//! counting allocator in `tests/binance_api.rs`). [`parse_execution_report`] allocates nothing
//! either; [`parse_reply`] allocates only for an error message and for the open-order list;
//! [`parse_order_status`] only for the symbol's name and an error message; [`parse_my_trades`]
//! for the list and two short strings per trade (reconciliation is not on the order path).
//!
//! Rough costs per call on the project's 2-vCPU machine (shared, noisy), release build, from a
//! timing loop (`cargo test --release --test binance_api timings -- --ignored --nocapture`, the
//! range over six runs, 2026-11-22): a LIMIT `order.place` encoded and HMAC-signed 0.51–0.66 µs,
//! Ed25519-signed 13–15 µs, unsigned in an authenticated session 0.22–0.42 µs (typically
//! 0.23); an `executionReport` TRADE (459 bytes) 0.51–0.58 µs; an `order.place` reply (510
//! bytes) 0.61–0.75 µs. With Ed25519 keys, `session.logon` takes the signature off the order
//! path.

use crate::json::{self, JsonError, JsonErrorKind, JsonStr, NumError, Scanner, ValueKind};
use base64::Engine as _;
use core::fmt::{self, Write as _};
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{Signer as _, SigningKey};
use engine::event::{
    ClientOrderId, Event, EventKind, Fill, OrderAck, OrderCanceled, OrderCommand, OrderReject,
    OrderRequest, OrderType, RejectReason, Side,
};
use engine::fixed::{parse_fixed, FixedError, Price, Qty};
use engine::symbol::SymbolTable;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The Ed25519 crate of [`Credentials::Ed25519`] (for `SigningKey`, `VerifyingKey`, PKCS#8).
pub use ed25519_dalek;

type HmacSha256 = Hmac<Sha256>;

/// Largest key file or PEM file read (they are a few hundred bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;
/// Longest error message kept from a venue reply, in characters.
const MAX_MSG_CHARS: usize = 256;
/// Most params one signed request may carry, the automatic ones included.
const MAX_PARAMS: usize = 24;
/// Largest `limit` a `myTrades` request may ask for.
const MAX_TRADES_LIMIT: u32 = 1000;

// ---------------------------------------------------------------------------------------------
// Secrets and errors.

/// Secret key bytes (an HMAC secret). Prints as `<redacted>`, is never cloned, and is
/// overwritten when dropped (best effort, see the [module docs](self)).
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps `bytes` (for example `String::into_bytes` of the secret, which moves, not copies).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites `bytes` with zeros; `black_box` keeps the compiler from dropping the dead store.
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&*bytes);
}

/// A byte buffer holding secret material (a key file's text), wiped when dropped.
struct Wiped(Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Why credentials could not be loaded, a request not built, or a venue message not read.
///
/// No variant carries a secret or any content of a key file: only paths, variable names, line
/// numbers and byte offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// An environment variable is missing (or not UTF-8).
    MissingEnv {
        /// The variable.
        var: String,
    },
    /// Both `<PREFIX>_API_SECRET` and `<PREFIX>_ED25519_KEY_FILE` are set.
    AmbiguousEnv {
        /// The prefix.
        prefix: String,
    },
    /// A key or PEM file could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        kind: std::io::ErrorKind,
    },
    /// The PEM file named by a key file line or an environment variable cannot be opened. The
    /// path itself is not reported: when someone pastes the key where its path belongs, the
    /// "path" is the secret.
    PemUnreadable {
        /// What named it (`TICKLINE_ED25519_KEY_FILE`, `line 3 of /etc/tickline/binance.conf`).
        named_by: String,
        /// What the OS said.
        kind: std::io::ErrorKind,
    },
    /// A key or PEM file is readable or writable by group or other.
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// A key file does not follow the format (see the [module docs](self)).
    KeyFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number, 0 for the file as a whole.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The API key is empty or has characters an API key cannot have.
    BadApiKey,
    /// The HMAC secret is empty.
    EmptySecret,
    /// A PEM file is not an unencrypted PKCS#8 Ed25519 private key.
    BadEd25519Key {
        /// The file.
        path: PathBuf,
    },
    /// The request needs another key type (`session.logon` takes Ed25519 keys only).
    UnsupportedKeyType {
        /// The request.
        what: &'static str,
    },
    /// A param of [`OrderEncoder::signed_request`] was refused.
    BadParam {
        /// The param's name as given (its value is never reported).
        key: String,
        /// Why.
        problem: &'static str,
    },
    /// Not JSON: a syntax error at this byte offset.
    Syntax {
        /// Byte offset in the frame.
        offset: usize,
        /// What was wrong.
        kind: JsonErrorKind,
    },
    /// The frame ended inside a value (cut off, or empty).
    Truncated {
        /// Byte offset (the frame's length).
        offset: usize,
    },
    /// The frame (or the part that must be one) is valid JSON but not an object.
    NotAnObject,
    /// A field the message needs is absent.
    MissingField(&'static str),
    /// A field appears twice in one object.
    DuplicateField(&'static str),
    /// A field has the wrong JSON type or an unknown value.
    WrongType {
        /// The field.
        field: &'static str,
    },
    /// A price or quantity string that is not a fixed-point decimal in range.
    BadDecimal {
        /// The field.
        field: &'static str,
        /// Why.
        err: FixedError,
    },
    /// A client order id of ours that does not parse.
    BadClientId {
        /// The field.
        field: &'static str,
    },
    /// An integer out of range.
    IntOverflow {
        /// The field.
        field: &'static str,
    },
    /// A string with escapes too long to decode on the stack (Binance never sends escapes).
    StringTooLong {
        /// The field.
        field: &'static str,
    },
}

impl From<JsonError> for ApiError {
    #[cold]
    fn from(e: JsonError) -> Self {
        match e.kind {
            JsonErrorKind::Eof => ApiError::Truncated { offset: e.offset },
            kind => ApiError::Syntax {
                offset: e.offset,
                kind,
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::MissingEnv { var } => {
                write!(f, "environment variable {var} is not set (or not UTF-8)")
            }
            ApiError::AmbiguousEnv { prefix } => write!(
                f,
                "both {prefix}_API_SECRET and {prefix}_ED25519_KEY_FILE are set: keep one"
            ),
            ApiError::Io { path, kind } => write!(f, "cannot read {}: {kind}", path.display()),
            ApiError::PemUnreadable { named_by, kind } => write!(
                f,
                "cannot open the Ed25519 PEM file named by {named_by}: {kind} (it must be the \
                 path of a PEM file, not the key itself)"
            ),
            ApiError::InsecurePermissions { path, mode } => write!(
                f,
                "{} has mode {mode:o}, so group or other may read it; refusing to use it \
                 (run `chmod 600 {}`)",
                path.display(),
                path.display()
            ),
            ApiError::KeyFile {
                path,
                line: 0,
                problem,
            } => write!(f, "key file {}: {problem}", path.display()),
            ApiError::KeyFile {
                path,
                line,
                problem,
            } => write!(f, "key file {} line {line}: {problem}", path.display()),
            ApiError::BadApiKey => f.write_str(
                "API key is empty or contains spaces, quotes, backslashes, '&', '=' or non-ASCII",
            ),
            ApiError::EmptySecret => f.write_str("API secret is empty"),
            ApiError::BadEd25519Key { path } => write!(
                f,
                "{} is not an unencrypted PKCS#8 Ed25519 private key in PEM form",
                path.display()
            ),
            ApiError::UnsupportedKeyType { what } => {
                write!(f, "{what} needs an Ed25519 API key")
            }
            ApiError::BadParam { key, problem } => write!(f, "param {key:?}: {problem}"),
            ApiError::Syntax { offset, kind } => write!(
                f,
                "{}",
                JsonError {
                    kind: *kind,
                    offset: *offset
                }
            ),
            ApiError::Truncated { offset } => write!(f, "message truncated at byte {offset}"),
            ApiError::NotAnObject => f.write_str("message is not a JSON object"),
            ApiError::MissingField(k) => write!(f, "missing field `{k}`"),
            ApiError::DuplicateField(k) => write!(f, "duplicate field `{k}`"),
            ApiError::WrongType { field } => {
                write!(f, "field `{field}` has the wrong type or value")
            }
            ApiError::BadDecimal { field, err } => write!(f, "field `{field}`: {err}"),
            ApiError::BadClientId { field } => {
                write!(f, "field `{field}` is not a Tickline client order id")
            }
            ApiError::IntOverflow { field } => write!(f, "field `{field}` is out of range"),
            ApiError::StringTooLong { field } => {
                write!(f, "escaped string in field `{field}` is too long")
            }
        }
    }
}

impl std::error::Error for ApiError {}

// ---------------------------------------------------------------------------------------------
// Credentials.

/// An API key and what signs for it.
pub enum Credentials {
    /// An HMAC-SHA256 key: signatures are lowercase hex.
    Hmac {
        /// The API key (sent with each request).
        api_key: String,
        /// The secret key.
        secret: Secret,
    },
    /// An Ed25519 key: signatures are base64; the only type `session.logon` accepts.
    Ed25519 {
        /// The API key Binance issued for the registered public key.
        api_key: String,
        /// The private key (its `Debug` prints the public half only; zeroed on drop).
        key: SigningKey,
    },
}

/// The first four characters of an API key, for logs.
struct MaskedKey<'a>(&'a str);

impl fmt::Display for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.0.chars().take(4).collect();
        write!(f, "{head}… ({} chars)", self.0.chars().count())
    }
}

impl fmt::Debug for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Hmac { api_key, .. } => f
                .debug_struct("Credentials::Hmac")
                .field("api_key", &MaskedKey(api_key))
                .field("secret", &format_args!("<redacted>"))
                .finish(),
            Credentials::Ed25519 { api_key, key } => f
                .debug_struct("Credentials::Ed25519")
                .field("api_key", &MaskedKey(api_key))
                .field("public_key", &Hex(key.verifying_key().as_bytes()))
                .field("key", &format_args!("<redacted>"))
                .finish(),
        }
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Hmac { api_key, .. } => {
                write!(
                    f,
                    "HMAC-SHA256 API key {} (secret <redacted>)",
                    MaskedKey(api_key)
                )
            }
            Credentials::Ed25519 { api_key, key } => write!(
                f,
                "Ed25519 API key {} (public key {:?}, private key <redacted>)",
                MaskedKey(api_key),
                Hex(key.verifying_key().as_bytes())
            ),
        }
    }
}

/// Lowercase hex of bytes.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A byte that may appear in an API key or a param value as sent: printable ASCII other than
/// space, quote, backslash, `&`, `=` and `%` (nothing that JSON or the signed query string would
/// need to escape).
#[inline]
fn plain_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'&' | b'=' | b'%')
}

fn check_api_key(api_key: &str) -> Result<(), ApiError> {
    if api_key.is_empty() || !api_key.bytes().all(plain_byte) {
        return Err(ApiError::BadApiKey);
    }
    Ok(())
}

/// Opens a file that holds secrets: it must be a regular file without group or other
/// permissions (checked on the open handle, so a swap after the check does not matter).
fn read_private_file(path: &Path) -> Result<Wiped, ApiError> {
    let io = |e: std::io::Error| ApiError::Io {
        path: path.to_path_buf(),
        kind: e.kind(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ApiError::KeyFile {
            path: path.to_path_buf(),
            line: 0,
            problem: "not a regular file",
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(ApiError::InsecurePermissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    let mut buf = Wiped(Vec::with_capacity(
        meta.len().min(MAX_KEY_FILE) as usize + 1,
    ));
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut buf.0)
        .map_err(io)?;
    if buf.0.len() as u64 > MAX_KEY_FILE {
        return Err(ApiError::KeyFile {
            path: path.to_path_buf(),
            line: 0,
            problem: "file larger than 64 KiB",
        });
    }
    Ok(buf)
}

/// Loads the PEM file at `path`, which `named_by` names (an open error does not show the path).
fn load_ed25519_pem(
    path: &Path,
    named_by: impl FnOnce() -> String,
) -> Result<SigningKey, ApiError> {
    let bytes = match read_private_file(path) {
        Ok(b) => b,
        Err(ApiError::Io { kind, .. }) => {
            return Err(ApiError::PemUnreadable {
                named_by: named_by(),
                kind,
            })
        }
        Err(e) => return Err(e),
    };
    let bad = || ApiError::BadEd25519Key {
        path: path.to_path_buf(),
    };
    let text = core::str::from_utf8(&bytes.0).map_err(|_| bad())?;
    SigningKey::from_pkcs8_pem(text).map_err(|_| bad())
}

impl Credentials {
    /// HMAC credentials, checked (non-empty secret, a plausible API key).
    pub fn hmac(api_key: impl Into<String>, secret: Secret) -> Result<Credentials, ApiError> {
        let api_key = api_key.into();
        check_api_key(&api_key)?;
        if secret.is_empty() {
            return Err(ApiError::EmptySecret);
        }
        Ok(Credentials::Hmac { api_key, secret })
    }

    /// Ed25519 credentials, checked (a plausible API key).
    pub fn ed25519(api_key: impl Into<String>, key: SigningKey) -> Result<Credentials, ApiError> {
        let api_key = api_key.into();
        check_api_key(&api_key)?;
        Ok(Credentials::Ed25519 { api_key, key })
    }

    /// Reads `<prefix>_API_KEY` and either `<prefix>_API_SECRET` (HMAC) or
    /// `<prefix>_ED25519_KEY_FILE` (path of an unencrypted PKCS#8 PEM private key, which must not
    /// be readable by group or other). With prefix `TICKLINE`: `TICKLINE_API_KEY`, ...
    pub fn from_env(prefix: &str) -> Result<Credentials, ApiError> {
        let var = |name: &str| std::env::var(format!("{prefix}_{name}")).ok();
        let key_var = format!("{prefix}_API_KEY");
        let api_key = var("API_KEY").ok_or(ApiError::MissingEnv { var: key_var })?;
        match (var("API_SECRET"), var("ED25519_KEY_FILE")) {
            (Some(_), Some(_)) => Err(ApiError::AmbiguousEnv {
                prefix: prefix.to_string(),
            }),
            (Some(secret), None) => Credentials::hmac(api_key, Secret::new(secret.into_bytes())),
            (None, Some(file)) => Credentials::ed25519(
                api_key,
                load_ed25519_pem(Path::new(&file), || format!("{prefix}_ED25519_KEY_FILE"))?,
            ),
            (None, None) => Err(ApiError::MissingEnv {
                var: format!("{prefix}_API_SECRET (or {prefix}_ED25519_KEY_FILE)"),
            }),
        }
    }

    /// Reads a key file (format in the [module docs](self)); refuses one that group or other may
    /// read or write.
    pub fn from_file(path: &Path) -> Result<Credentials, ApiError> {
        let text = read_private_file(path)?;
        let err = |line: usize, problem: &'static str| ApiError::KeyFile {
            path: path.to_path_buf(),
            line,
            problem,
        };
        let text = core::str::from_utf8(&text.0).map_err(|_| err(0, "not UTF-8"))?;
        let mut api_key: Option<&str> = None;
        let mut secret: Option<&str> = None;
        let mut pem: Option<(usize, &str)> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(err(n + 1, "expected `key = value`"));
            };
            let (k, v) = (k.trim(), v.trim());
            if v.is_empty() {
                return Err(err(n + 1, "empty value"));
            }
            let repeated = match k {
                "api_key" => api_key.replace(v).is_some(),
                "api_secret" => secret.replace(v).is_some(),
                "ed25519_key_file" => pem.replace((n + 1, v)).is_some(),
                _ => {
                    return Err(err(
                        n + 1,
                        "unknown key (expected api_key, api_secret or ed25519_key_file)",
                    ))
                }
            };
            if repeated {
                return Err(err(n + 1, "key given twice"));
            }
        }
        let api_key = api_key.ok_or_else(|| err(0, "no api_key"))?;
        match (secret, pem) {
            (Some(s), None) => Credentials::hmac(api_key, Secret::new(s.as_bytes())),
            (None, Some((line, p))) => {
                let p = Path::new(p);
                let p = match path.parent() {
                    Some(dir) if p.is_relative() => dir.join(p),
                    _ => p.to_path_buf(),
                };
                let named_by = || format!("line {line} of {}", path.display());
                Credentials::ed25519(api_key, load_ed25519_pem(&p, named_by)?)
            }
            (Some(_), Some(_)) => Err(err(0, "both api_secret and ed25519_key_file: keep one")),
            (None, None) => Err(err(0, "neither api_secret nor ed25519_key_file")),
        }
    }

    /// The API key.
    pub fn api_key(&self) -> &str {
        match self {
            Credentials::Hmac { api_key, .. } | Credentials::Ed25519 { api_key, .. } => api_key,
        }
    }

    /// Signs `payload` (a signed request's sorted `key=value&...` string): HMAC-SHA256 as
    /// lowercase hex, or Ed25519 as base64.
    pub fn sign(&self, payload: &str) -> String {
        let mut out = String::with_capacity(88);
        Signer::of(self).sign_into(payload.as_bytes(), &mut out);
        out
    }
}

/// What signs requests, prepared once: a keyed HMAC state is cloned per request rather than
/// re-deriving the key pads. `Hmac(None)` (a key HMAC refused, which HMAC-SHA256 never does)
/// fails closed: requests go out without a signature and the venue refuses them.
enum Signer {
    Hmac(Option<Box<HmacSha256>>),
    Ed25519(Box<SigningKey>),
}

impl Signer {
    fn of(creds: &Credentials) -> Signer {
        match creds {
            Credentials::Hmac { secret, .. } => Signer::Hmac(hmac_key(&secret.0)),
            Credentials::Ed25519 { key, .. } => Signer::Ed25519(Box::new(key.clone())),
        }
    }

    fn into_signer(creds: Credentials) -> (String, Signer) {
        match creds {
            Credentials::Hmac { api_key, secret } => (api_key, Signer::Hmac(hmac_key(&secret.0))),
            Credentials::Ed25519 { api_key, key } => (api_key, Signer::Ed25519(Box::new(key))),
        }
    }

    /// Appends the signature of `payload` to `out`; allocates nothing once `out` has room.
    #[inline]
    fn sign_into(&self, payload: &[u8], out: &mut String) {
        match self {
            Signer::Hmac(None) => {}
            Signer::Hmac(Some(mac)) => {
                let mut mac = (**mac).clone();
                mac.update(payload);
                for b in mac.finalize().into_bytes() {
                    for d in [b >> 4, b & 0xf] {
                        if let Some(&c) = HEX_DIGITS.get(d as usize) {
                            out.push(c as char);
                        }
                    }
                }
            }
            Signer::Ed25519(key) => {
                let sig = key.sign(payload).to_bytes();
                let mut buf = [0u8; 88];
                if let Ok(n) = base64::engine::general_purpose::STANDARD.encode_slice(sig, &mut buf)
                {
                    if let Some(Ok(s)) = buf.get(..n).map(core::str::from_utf8) {
                        out.push_str(s);
                    }
                }
            }
        }
    }
}

fn hmac_key(secret: &[u8]) -> Option<Box<HmacSha256>> {
    // HMAC takes keys of any length: `new_from_slice` does not fail for it.
    HmacSha256::new_from_slice(secret).ok().map(Box::new)
}

/// Appends the decimal digits of `n` (what `write!("{n}")` does, without the formatting
/// machinery: this is on the order path).
#[inline]
fn push_u64(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    if let Some(Ok(t)) = buf.get(i..).map(core::str::from_utf8) {
        s.push_str(t);
    }
}

/// Appends 1e-8 `units` with all eight decimals, exactly as [`Price`]'s `Display` does.
#[inline]
fn push_fixed(s: &mut String, units: i64) {
    if units < 0 {
        s.push('-');
    }
    let abs = units.unsigned_abs();
    let scale = engine::fixed::SCALE as u64;
    push_u64(s, abs / scale);
    s.push('.');
    let frac = abs % scale;
    let mut div = scale / 10;
    while div > 0 {
        s.push((b'0' + (frac / div % 10) as u8) as char);
        div /= 10;
    }
}

// ---------------------------------------------------------------------------------------------
// The encoder.

/// A param value of [`OrderEncoder::signed_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param<'a> {
    /// A string, sent as a JSON string (printable ASCII without space, `"`, `\`, `&`, `=`, `%`).
    Str(&'a str),
    /// An integer, sent as a JSON number.
    Int(u64),
}

/// A param value as the encoder writes it.
#[derive(Clone, Copy, Debug)]
enum V<'a> {
    /// Trusted or checked text.
    Str(&'a str),
    Int(u64),
    /// 1e-8 units, written with eight decimals.
    Fixed(i64),
    Cid(ClientOrderId),
    /// A symbol: only ASCII letters and digits are written, upper-cased.
    Sym(&'a str),
}

impl V<'_> {
    #[inline]
    fn quoted(&self) -> bool {
        !matches!(self, V::Int(_))
    }

    #[inline]
    fn write(&self, s: &mut String) {
        match *self {
            V::Str(v) => s.push_str(v),
            V::Int(n) => push_u64(s, n),
            V::Fixed(u) => push_fixed(s, u),
            // The engine's own rendering (`tl-17`), so the two never disagree; writing into a
            // String cannot fail.
            V::Cid(c) => {
                let _ = write!(s, "{c}");
            }
            V::Sym(v) => {
                for b in v.bytes().filter(u8::is_ascii_alphanumeric) {
                    s.push(b.to_ascii_uppercase() as char);
                }
            }
        }
    }
}

/// A fixed-capacity list of params on the stack.
struct Params<'a> {
    items: [(&'a str, V<'a>); MAX_PARAMS],
    len: usize,
}

impl<'a> Params<'a> {
    fn new() -> Self {
        Params {
            items: [("", V::Int(0)); MAX_PARAMS],
            len: 0,
        }
    }

    fn push(&mut self, key: &'a str, v: V<'a>) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = (key, v);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Sorted by name, as the payload must be (the typed requests push in order already, so
    /// this is usually a check).
    fn sorted(&mut self) -> &[(&'a str, V<'a>)] {
        let items = self.items.get_mut(..self.len).unwrap_or_default();
        if !items.is_sorted_by(|a, b| a.0 <= b.0) {
            items.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        items
    }
}

/// Builds signed WebSocket API requests into one reused buffer; see the [module docs](self).
pub struct OrderEncoder {
    api_key: String,
    signer: Signer,
    recv_window_ms: u32,
    session: bool,
    /// The last request's signature payload (`key=value&...`).
    payload: String,
    /// The last request's JSON text.
    out: String,
}

impl fmt::Debug for OrderEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderEncoder")
            .field("api_key", &MaskedKey(&self.api_key))
            .field(
                "signer",
                &match self.signer {
                    Signer::Hmac(_) => "HMAC-SHA256 <redacted>",
                    Signer::Ed25519(_) => "Ed25519 <redacted>",
                },
            )
            .field("recv_window_ms", &self.recv_window_ms)
            .field("session_authenticated", &self.session)
            .finish_non_exhaustive()
    }
}

impl OrderEncoder {
    /// An encoder signing with `creds`; `recv_window_ms` 0 leaves `recvWindow` out (the venue's
    /// default, 5000 ms, applies; the venue refuses more than 60000).
    ///
    /// Characters an API key cannot have are dropped from the key as sent (the venue then refuses
    /// it), so nothing can break out of the JSON; [`Credentials::hmac`] and friends check keys
    /// up front.
    pub fn new(creds: Credentials, recv_window_ms: u32) -> Self {
        let (mut api_key, signer) = Signer::into_signer(creds);
        api_key.retain(|c| c.is_ascii() && plain_byte(c as u8));
        OrderEncoder {
            api_key,
            signer,
            recv_window_ms,
            session: false,
            payload: String::with_capacity(512),
            out: String::with_capacity(512),
        }
    }

    /// The API key requests carry.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The signature payload of the last request (empty when it was not signed).
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// The last request's JSON text.
    pub fn last(&self) -> &str {
        &self.out
    }

    /// True while requests leave out `apiKey` and `signature` (after `session.logon`).
    pub fn session_authenticated(&self) -> bool {
        self.session
    }

    /// Call with `true` once the venue answered [`logon`](Self::logon) with status 200, and with
    /// `false` whenever the connection is replaced: while on, requests carry neither `apiKey` nor
    /// `signature` (the venue authenticates them by the session).
    pub fn set_session_authenticated(&mut self, on: bool) {
        self.session = on;
    }

    /// A param list holding `apiKey` (if `with_key`), `recvWindow` (unless 0) and `timestamp`.
    fn auth_params(
        api_key: &str,
        recv_window_ms: u32,
        with_key: bool,
        timestamp_ms: u64,
    ) -> Params<'_> {
        let mut p = Params::new();
        if with_key {
            p.push("apiKey", V::Str(api_key));
        }
        if recv_window_ms > 0 {
            p.push("recvWindow", V::Int(recv_window_ms as u64));
        }
        p.push("timestamp", V::Int(timestamp_ms));
        p
    }

    /// Writes `{"id":..,"method":..,"params":{..}}` with `params` (sorted) and, when `sign`, the
    /// signature of their payload.
    fn emit(
        out: &mut String,
        payload: &mut String,
        signer: &Signer,
        id: u64,
        method: &str,
        params: &[(&str, V<'_>)],
        sign: bool,
    ) {
        out.clear();
        payload.clear();
        out.push_str("{\"id\":");
        push_u64(out, id);
        out.push_str(",\"method\":\"");
        out.push_str(method);
        out.push_str("\",\"params\":{");
        for (i, (key, v)) in params.iter().enumerate() {
            if i > 0 {
                payload.push('&');
                out.push(',');
            }
            payload.push_str(key);
            payload.push('=');
            let start = payload.len();
            v.write(payload);
            let text = payload.get(start..).unwrap_or_default();
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            if v.quoted() {
                out.push('"');
                out.push_str(text);
                out.push('"');
            } else {
                out.push_str(text);
            }
        }
        if sign {
            if !params.is_empty() {
                out.push(',');
            }
            out.push_str("\"signature\":\"");
            signer.sign_into(payload.as_bytes(), out);
            out.push('"');
        } else {
            payload.clear();
        }
        out.push_str("}}");
    }

    /// `order.place` for `req` on `symbol` (a Binance symbol name such as `BTCUSDT`; bytes other
    /// than ASCII letters and digits are left out), with `newClientOrderId` = `client_id`.
    pub fn place(
        &mut self,
        id: u64,
        symbol: &str,
        client_id: ClientOrderId,
        req: &OrderRequest,
        timestamp_ms: u64,
    ) -> &str {
        let limit = match req.order_type {
            OrderType::LimitGtc => Some("GTC"),
            OrderType::LimitIoc => Some("IOC"),
            OrderType::LimitFok => Some("FOK"),
            OrderType::Market => None,
        };
        let with_key = !self.session;
        // Pushed in signing order (byte order of the names).
        let mut p = Params::new();
        if with_key {
            p.push("apiKey", V::Str(&self.api_key));
        }
        p.push("newClientOrderId", V::Cid(client_id));
        p.push("newOrderRespType", V::Str("FULL"));
        if limit.is_some() {
            p.push("price", V::Fixed(req.price.units()));
        }
        p.push("quantity", V::Fixed(req.qty.units()));
        if self.recv_window_ms > 0 {
            p.push("recvWindow", V::Int(self.recv_window_ms as u64));
        }
        p.push(
            "side",
            V::Str(match req.side {
                Side::Buy => "BUY",
                Side::Sell => "SELL",
            }),
        );
        p.push("symbol", V::Sym(symbol));
        if let Some(tif) = limit {
            p.push("timeInForce", V::Str(tif));
        }
        p.push("timestamp", V::Int(timestamp_ms));
        p.push(
            "type",
            V::Str(if limit.is_some() { "LIMIT" } else { "MARKET" }),
        );
        let sorted = p.sorted();
        Self::emit(
            &mut self.out,
            &mut self.payload,
            &self.signer,
            id,
            "order.place",
            sorted,
            with_key,
        );
        &self.out
    }

    /// `order.cancel` of our order `client_id` (by `origClientOrderId`) on `symbol`.
    pub fn cancel(
        &mut self,
        id: u64,
        symbol: &str,
        client_id: ClientOrderId,
        timestamp_ms: u64,
    ) -> &str {
        self.by_client_id(id, "order.cancel", symbol, client_id, timestamp_ms)
    }

    /// `order.status` of our order `client_id` (by `origClientOrderId`) on `symbol`: the order's
    /// current report, open or not. Read the reply with [`parse_order_status`].
    pub fn order_status(
        &mut self,
        id: u64,
        symbol: &str,
        client_id: ClientOrderId,
        timestamp_ms: u64,
    ) -> &str {
        self.by_client_id(id, "order.status", symbol, client_id, timestamp_ms)
    }

    /// `myTrades`: the account's trades on `symbol`, oldest first. `venue_order_id` keeps only
    /// the trades of that order (`orderId`); `from_id` starts at that trade id, inclusive
    /// (`fromId`; page on with the last trade id plus one); neither gives the most recent
    /// trades. `limit` 0 leaves `limit` out (the venue's default, 500); more than 1000 (the
    /// venue's maximum, it refuses more) is sent as 1000. Read the reply with
    /// [`parse_my_trades`].
    pub fn my_trades(
        &mut self,
        id: u64,
        symbol: &str,
        venue_order_id: Option<u64>,
        from_id: Option<u64>,
        limit: u32,
        timestamp_ms: u64,
    ) -> &str {
        let with_key = !self.session;
        // Pushed in signing order.
        let mut p = Params::new();
        if with_key {
            p.push("apiKey", V::Str(&self.api_key));
        }
        if let Some(from) = from_id {
            p.push("fromId", V::Int(from));
        }
        if limit > 0 {
            p.push("limit", V::Int(limit.min(MAX_TRADES_LIMIT) as u64));
        }
        if let Some(order) = venue_order_id {
            p.push("orderId", V::Int(order));
        }
        if self.recv_window_ms > 0 {
            p.push("recvWindow", V::Int(self.recv_window_ms as u64));
        }
        p.push("symbol", V::Sym(symbol));
        p.push("timestamp", V::Int(timestamp_ms));
        let sorted = p.sorted();
        Self::emit(
            &mut self.out,
            &mut self.payload,
            &self.signer,
            id,
            "myTrades",
            sorted,
            with_key,
        );
        &self.out
    }

    /// A request on one of our orders by `origClientOrderId` (`order.cancel`, `order.status`).
    fn by_client_id(
        &mut self,
        id: u64,
        method: &str,
        symbol: &str,
        client_id: ClientOrderId,
        timestamp_ms: u64,
    ) -> &str {
        let with_key = !self.session;
        // Pushed in signing order.
        let mut p = Params::new();
        if with_key {
            p.push("apiKey", V::Str(&self.api_key));
        }
        p.push("origClientOrderId", V::Cid(client_id));
        if self.recv_window_ms > 0 {
            p.push("recvWindow", V::Int(self.recv_window_ms as u64));
        }
        p.push("symbol", V::Sym(symbol));
        p.push("timestamp", V::Int(timestamp_ms));
        let sorted = p.sorted();
        Self::emit(
            &mut self.out,
            &mut self.payload,
            &self.signer,
            id,
            method,
            sorted,
            with_key,
        );
        &self.out
    }

    /// `openOrders.status` for `symbol`, or for every symbol (a heavier request) when `None`.
    pub fn open_orders(&mut self, id: u64, symbol: Option<&str>, timestamp_ms: u64) -> &str {
        let with_key = !self.session;
        let mut p = Self::auth_params(&self.api_key, self.recv_window_ms, with_key, timestamp_ms);
        if let Some(s) = symbol {
            p.push("symbol", V::Sym(s));
        }
        let sorted = p.sorted();
        Self::emit(
            &mut self.out,
            &mut self.payload,
            &self.signer,
            id,
            "openOrders.status",
            sorted,
            with_key,
        );
        &self.out
    }

    /// `session.logon`: always signed, whatever the session state. Ed25519 keys only.
    pub fn logon(&mut self, id: u64, timestamp_ms: u64) -> Result<&str, ApiError> {
        if !matches!(self.signer, Signer::Ed25519(_)) {
            return Err(ApiError::UnsupportedKeyType {
                what: "session.logon",
            });
        }
        let mut p = Self::auth_params(&self.api_key, self.recv_window_ms, true, timestamp_ms);
        let sorted = p.sorted();
        Self::emit(
            &mut self.out,
            &mut self.payload,
            &self.signer,
            id,
            "session.logon",
            sorted,
            true,
        );
        Ok(&self.out)
    }

    /// `userDataStream.subscribe.signature`: the user data stream of this key's account on this
    /// connection, for any key type and whether or not the session is authenticated; always
    /// signed (`apiKey`, `recvWindow` unless 0, `timestamp`, `signature`).
    ///
    /// Binance's WebSocket API documentation ("User Data Stream requests"): "In any session,
    /// authenticated or not, you can subscribe to events for one or more accounts for which you
    /// can provide an API Key signature, using `userDataStream.subscribe.signature`." Its
    /// parameters are `apiKey`, `timestamp`, `signature` and an optional `recvWindow` (at most
    /// 60000); the reply is `{"id":..,"status":200,"result":{"subscriptionId":0}}`, and the
    /// events then arrive as `{"subscriptionId":0,"event":{..}}`.
    pub fn user_stream_subscribe_signature(&mut self, id: u64, timestamp_ms: u64) -> &str {
        let mut p = Self::auth_params(&self.api_key, self.recv_window_ms, true, timestamp_ms);
        let sorted = p.sorted();
        Self::emit(
            &mut self.out,
            &mut self.payload,
            &self.signer,
            id,
            "userDataStream.subscribe.signature",
            sorted,
            true,
        );
        &self.out
    }

    /// `userDataStream.subscribe` (no params): only on a connection whose `session.logon` the
    /// venue accepted. Binance documents: "This method requires an authenticated WebSocket
    /// connection using Ed25519 keys. Please refer to `session.logon`." Request
    /// `{"id":..,"method":"userDataStream.subscribe"}`, reply `{"id":..,"status":200,"result":{..}}`.
    pub fn user_stream_subscribe(&mut self, id: u64) -> &str {
        self.out.clear();
        self.payload.clear();
        self.out.push_str("{\"id\":");
        push_u64(&mut self.out, id);
        self.out
            .push_str(",\"method\":\"userDataStream.subscribe\"}");
        &self.out
    }

    /// The order command the core sent, for the symbol names in `symbols`; `None` if its symbol
    /// is not in the table.
    pub fn encode_command(
        &mut self,
        id: u64,
        symbols: &SymbolTable,
        cmd: &OrderCommand,
        timestamp_ms: u64,
    ) -> Option<&str> {
        match *cmd {
            OrderCommand::New {
                client_id,
                symbol,
                req,
                ..
            } => {
                let name = symbols.name(symbol)?;
                Some(self.place(id, name, client_id, &req, timestamp_ms))
            }
            OrderCommand::Cancel { client_id, symbol } => {
                let name = symbols.name(symbol)?;
                Some(self.cancel(id, name, client_id, timestamp_ms))
            }
            // Not a request: the session journals it.
            OrderCommand::TraderState { .. } => None,
        }
    }

    /// Any signed request: `params` (any order; names of ASCII letters and digits, values as
    /// [`Param`] says) plus `apiKey` (unless the session is authenticated), `recvWindow` and
    /// `timestamp`, sorted and signed. `method` is the WebSocket API method (`order.status`).
    pub fn signed_request(
        &mut self,
        id: u64,
        method: &str,
        params: &[(&str, Param<'_>)],
        timestamp_ms: u64,
    ) -> Result<&str, ApiError> {
        let bad = |key: &str, problem: &'static str| ApiError::BadParam {
            key: key.to_string(),
            problem,
        };
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/'))
        {
            return Err(bad(
                method,
                "method name must be ASCII letters, digits, '.', '_', '/'",
            ));
        }
        let with_key = !self.session;
        let mut p = Self::auth_params(&self.api_key, self.recv_window_ms, with_key, timestamp_ms);
        for &(key, v) in params {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad(key, "name must be ASCII letters and digits"));
            }
            if matches!(key, "apiKey" | "recvWindow" | "timestamp" | "signature") {
                return Err(bad(key, "set by the encoder"));
            }
            let v =
                match v {
                    Param::Str(s) if !s.is_empty() && s.bytes().all(plain_byte) => V::Str(s),
                    Param::Str(_) => return Err(bad(
                        key,
                        "value must be printable ASCII without space, '\"', '\\', '&', '=', '%'",
                    )),
                    Param::Int(n) => V::Int(n),
                };
            if !p.push(key, v) {
                return Err(bad(key, "too many params"));
            }
        }
        let sorted = p.sorted();
        let dup = sorted.windows(2).find_map(|w| match w {
            [a, b] if a.0 == b.0 => Some(a.0),
            _ => None,
        });
        if let Some(dup) = dup {
            return Err(bad(dup, "given twice"));
        }
        Self::emit(
            &mut self.out,
            &mut self.payload,
            &self.signer,
            id,
            method,
            sorted,
            with_key,
        );
        Ok(&self.out)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading JSON: collect the wanted keys of one object, then read their values.

/// Walks the object at the scanner (validating all of it) and returns where the value of each
/// of `keys` starts; a repeated wanted key is an error.
fn collect<const N: usize>(
    sc: &mut Scanner<'_>,
    keys: &[&'static str; N],
) -> Result<[Option<usize>; N], ApiError> {
    collect_by(sc, keys, |k| keys.iter().position(|w| w.as_bytes() == k))
}

/// [`collect`] with a faster key lookup: `index(key)` is the key's position in `keys`.
#[inline]
fn collect_by<const N: usize>(
    sc: &mut Scanner<'_>,
    keys: &[&'static str; N],
    index: impl Fn(&[u8]) -> Option<usize>,
) -> Result<[Option<usize>; N], ApiError> {
    if sc.peek()? != ValueKind::Object {
        return Err(ApiError::NotAnObject);
    }
    sc.begin_object()?;
    let mut at = [None; N];
    while let Some(k) = sc.next_key()? {
        let idx = match k.unescaped() {
            Some(raw) => index(raw),
            None => escaped_key(&k, &index),
        };
        let range = sc.skip_value()?;
        if let Some(i) = idx {
            if let (Some(slot), Some(name)) = (at.get_mut(i), keys.get(i)) {
                if slot.replace(range.start).is_some() {
                    return Err(ApiError::DuplicateField(name));
                }
            }
        }
    }
    Ok(at)
}

#[cold]
fn escaped_key(k: &JsonStr<'_>, index: &impl Fn(&[u8]) -> Option<usize>) -> Option<usize> {
    let mut buf = [0u8; 32];
    index(k.decode_into(&mut buf)?)
}

/// A value's scanner; the frame was validated already, so a read error means a wrong type.
#[inline]
fn at<'a>(buf: &'a [u8], pos: usize) -> Scanner<'a> {
    Scanner::at(buf, pos)
}

fn need(pos: Option<usize>, field: &'static str) -> Result<usize, ApiError> {
    pos.ok_or(ApiError::MissingField(field))
}

fn kind_at(buf: &[u8], pos: usize) -> Option<ValueKind> {
    at(buf, pos).peek().ok()
}

fn u64_at(buf: &[u8], pos: usize, field: &'static str) -> Result<u64, ApiError> {
    let n = at(buf, pos)
        .number()
        .map_err(|_| ApiError::WrongType { field })?;
    n.as_u64().map_err(|e| match e {
        NumError::NotUnsigned => ApiError::WrongType { field },
        NumError::Overflow => ApiError::IntOverflow { field },
    })
}

fn i64_at(buf: &[u8], pos: usize, field: &'static str) -> Result<i64, ApiError> {
    let n = at(buf, pos)
        .number()
        .map_err(|_| ApiError::WrongType { field })?;
    let (neg, digits) = match n.raw().split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, n.raw()),
    };
    let v = json::parse_u64(digits).map_err(|e| match e {
        NumError::NotUnsigned => ApiError::WrongType { field },
        NumError::Overflow => ApiError::IntOverflow { field },
    })? as i128;
    i64::try_from(if neg { -v } else { v }).map_err(|_| ApiError::IntOverflow { field })
}

fn str_at<'a>(buf: &'a [u8], pos: usize, field: &'static str) -> Result<JsonStr<'a>, ApiError> {
    at(buf, pos)
        .string()
        .map_err(|_| ApiError::WrongType { field })
}

/// The content of `s`, decoded into `scratch` only if it has escapes.
fn text<'a: 'b, 'b>(
    s: JsonStr<'a>,
    scratch: &'b mut [u8; 64],
    field: &'static str,
) -> Result<&'b [u8], ApiError> {
    match s.unescaped() {
        Some(raw) => Ok(raw),
        None => s
            .decode_into(scratch)
            .ok_or(ApiError::StringTooLong { field }),
    }
}

fn decimal_at(buf: &[u8], pos: usize, field: &'static str) -> Result<i64, ApiError> {
    let s = str_at(buf, pos, field)?;
    let mut scratch = [0u8; 64];
    let t = text(s, &mut scratch, field)?;
    parse_fixed(t).map_err(|err| ApiError::BadDecimal { field, err })
}

fn client_id_at(buf: &[u8], pos: usize, field: &'static str) -> Result<ClientOrderId, ApiError> {
    let s = str_at(buf, pos, field)?;
    let mut scratch = [0u8; 64];
    let t = text(s, &mut scratch, field)?;
    core::str::from_utf8(t)
        .ok()
        .and_then(ClientOrderId::parse)
        .ok_or(ApiError::BadClientId { field })
}

// ---------------------------------------------------------------------------------------------
// Replies.

/// An order's status as the venue reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// `NEW`: accepted, resting.
    New,
    /// `PENDING_NEW`: accepted but not yet working (order lists).
    PendingNew,
    /// `PARTIALLY_FILLED`.
    PartiallyFilled,
    /// `FILLED`.
    Filled,
    /// `CANCELED` by us.
    Canceled,
    /// `PENDING_CANCEL` (unused by the venue today).
    PendingCancel,
    /// `REJECTED`.
    Rejected,
    /// `EXPIRED`: by its time in force (IOC, FOK, market) or by the venue.
    Expired,
    /// `EXPIRED_IN_MATCH`: expired by self-trade prevention.
    ExpiredInMatch,
    /// A status this version does not know.
    Unknown,
}

impl OrderStatus {
    /// From the wire name.
    pub fn parse(s: &[u8]) -> OrderStatus {
        match s {
            b"NEW" => OrderStatus::New,
            b"PENDING_NEW" => OrderStatus::PendingNew,
            b"PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
            b"FILLED" => OrderStatus::Filled,
            b"CANCELED" => OrderStatus::Canceled,
            b"PENDING_CANCEL" => OrderStatus::PendingCancel,
            b"REJECTED" => OrderStatus::Rejected,
            b"EXPIRED" => OrderStatus::Expired,
            b"EXPIRED_IN_MATCH" => OrderStatus::ExpiredInMatch,
            _ => OrderStatus::Unknown,
        }
    }

    /// The wire name (`"?"` for [`OrderStatus::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::PendingNew => "PENDING_NEW",
            OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Canceled => "CANCELED",
            OrderStatus::PendingCancel => "PENDING_CANCEL",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::ExpiredInMatch => "EXPIRED_IN_MATCH",
            OrderStatus::Unknown => "?",
        }
    }

    /// True when the order can no longer trade.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Rejected
                | OrderStatus::Expired
                | OrderStatus::ExpiredInMatch
        )
    }
}

/// One order's report: an entry of an `openOrders.status` reply, or the result of an
/// `order.status` reply ([`OrderStatusReply::Found`]), which the venue writes the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOrder {
    /// Symbol name as the venue wrote it.
    pub symbol: String,
    /// Our id, or `None` for an order placed outside Tickline.
    pub client_id: Option<ClientOrderId>,
    /// The venue's order id.
    pub venue_order_id: u64,
    /// Buy or sell.
    pub side: Side,
    /// Limit price (zero for market orders).
    pub price: Price,
    /// Ordered quantity.
    pub orig_qty: Qty,
    /// Quantity filled so far.
    pub executed_qty: Qty,
    /// Status.
    pub status: OrderStatus,
}

/// A WebSocket API reply, classified by its shape (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiReply {
    /// `order.place` succeeded.
    Placed {
        /// The request's `id`.
        request_id: u64,
        /// `clientOrderId`.
        client_id: ClientOrderId,
        /// `orderId`.
        venue_order_id: u64,
        /// `status`; `None` in `ACK` replies, which carry none.
        status: Option<OrderStatus>,
    },
    /// `order.cancel` succeeded.
    Canceled {
        /// The request's `id`.
        request_id: u64,
        /// `origClientOrderId`: the order that was canceled (its `clientOrderId` is now the
        /// cancel's own id).
        client_id: ClientOrderId,
        /// `orderId`.
        venue_order_id: u64,
        /// `status` (normally `CANCELED`).
        status: Option<OrderStatus>,
        /// `origQty - executedQty`, when both are given.
        leaves_qty: Option<Qty>,
    },
    /// The request failed (`error`).
    Rejected {
        /// The request's `id`; `None` when it was `null` (a session revoked by the venue) or not
        /// an unsigned integer.
        request_id: Option<u64>,
        /// HTTP-like status: 4xx our fault, 5xx unknown outcome (query before retrying).
        status: u16,
        /// Binance's error code (`-2010`, ...).
        code: i64,
        /// The venue's message (control characters replaced, at most 256 characters). It comes
        /// from the venue and never holds our secret.
        msg: String,
    },
    /// `openOrders.status` succeeded.
    OpenOrders {
        /// The request's `id`.
        request_id: u64,
        /// The orders.
        orders: Vec<OpenOrder>,
    },
    /// A user data stream event on the API connection: give it to [`parse_execution_report`].
    Event,
    /// Any other reply (`session.logon`, `{}` results, a bare status).
    Other {
        /// The request's `id`, if an unsigned integer.
        request_id: Option<u64>,
        /// Its status.
        status: u16,
    },
}

/// Reads one WebSocket API reply; see the [module docs](self). Never panics.
pub fn parse_reply(text: &[u8]) -> Result<ApiReply, ApiError> {
    const KEYS: [&str; 6] = ["id", "status", "result", "error", "event", "e"];
    let mut sc = Scanner::new(text);
    let [id, status, result, error, event, e] = collect(&mut sc, &KEYS)?;
    sc.finish()?;
    let Some(status) = status else {
        if event.is_some() || e.is_some() {
            return Ok(ApiReply::Event);
        }
        return Err(ApiError::MissingField("status"));
    };
    let status = u64_at(text, status, "status")?;
    let status = u16::try_from(status).map_err(|_| ApiError::IntOverflow { field: "status" })?;
    let request_id = match id {
        Some(p) if kind_at(text, p) == Some(ValueKind::Number) => u64_at(text, p, "id").ok(),
        _ => None,
    };
    if let Some(err) = error {
        return rejected(text, err, request_id, status);
    }
    let Some(result) = result else {
        return Ok(ApiReply::Other { request_id, status });
    };
    let rid = || request_id.ok_or(ApiError::WrongType { field: "id" });
    match kind_at(text, result) {
        Some(ValueKind::Array) => {
            let request_id = rid()?;
            let mut sc = at(text, result);
            sc.begin_array()?;
            let mut orders = Vec::new();
            while sc.next_element()? {
                orders.push(open_order(&mut sc)?);
            }
            Ok(ApiReply::OpenOrders { request_id, orders })
        }
        Some(ValueKind::Object) => order_result(text, result, request_id, status, rid),
        _ => Ok(ApiReply::Other { request_id, status }),
    }
}

#[cold]
fn rejected(
    text: &[u8],
    err: usize,
    request_id: Option<u64>,
    status: u16,
) -> Result<ApiReply, ApiError> {
    let (code, msg) = error_of(text, err)?;
    Ok(ApiReply::Rejected {
        request_id,
        status,
        code,
        msg,
    })
}

/// The `code` and the cleaned `msg` of the `error` object at `err`.
#[cold]
fn error_of(text: &[u8], err: usize) -> Result<(i64, String), ApiError> {
    let [code, msg] = collect(&mut at(text, err), &["code", "msg"])?;
    let code = i64_at(text, need(code, "code")?, "code")?;
    let msg = match msg {
        Some(p) => clean_msg(str_at(text, p, "msg")?),
        None => String::new(),
    };
    Ok((code, msg))
}

/// The venue's message, decoded, control characters replaced by spaces, capped.
fn clean_msg(s: JsonStr<'_>) -> String {
    let decoded;
    let bytes = match s.unescaped() {
        Some(raw) => raw,
        None => {
            let mut buf = vec![0u8; s.raw().len()];
            decoded = s.decode_into(&mut buf).map(<[u8]>::to_vec);
            decoded.as_deref().unwrap_or_default()
        }
    };
    String::from_utf8_lossy(bytes)
        .chars()
        .take(MAX_MSG_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn order_result(
    text: &[u8],
    pos: usize,
    request_id: Option<u64>,
    status: u16,
    rid: impl Fn() -> Result<u64, ApiError>,
) -> Result<ApiReply, ApiError> {
    const KEYS: [&str; 6] = [
        "orderId",
        "clientOrderId",
        "origClientOrderId",
        "status",
        "origQty",
        "executedQty",
    ];
    let [order_id, cid, orig_cid, st, orig_qty, exec_qty] = collect(&mut at(text, pos), &KEYS)?;
    let Some(order_id) = order_id else {
        return Ok(ApiReply::Other { request_id, status });
    };
    let venue_order_id = u64_at(text, order_id, "orderId")?;
    let order_status = match st {
        Some(p) => Some(status_at(text, p, "status")?),
        None => None,
    };
    if let Some(orig) = orig_cid {
        let leaves_qty = match (orig_qty, exec_qty) {
            (Some(o), Some(e)) => {
                let o = decimal_at(text, o, "origQty")?;
                let e = decimal_at(text, e, "executedQty")?;
                Some(Qty(o.saturating_sub(e).max(0)))
            }
            _ => None,
        };
        return Ok(ApiReply::Canceled {
            request_id: rid()?,
            client_id: client_id_at(text, orig, "origClientOrderId")?,
            venue_order_id,
            status: order_status,
            leaves_qty,
        });
    }
    Ok(ApiReply::Placed {
        request_id: rid()?,
        client_id: client_id_at(text, need(cid, "clientOrderId")?, "clientOrderId")?,
        venue_order_id,
        status: order_status,
    })
}

/// What a `RESULT` or `FULL` `order.place` reply says about the order ([`parse_place_result`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaceResult {
    /// `status`.
    pub status: OrderStatus,
    /// `origQty`.
    pub orig_qty: Qty,
    /// `executedQty`.
    pub executed_qty: Qty,
    /// The reply listed its fills (`FULL`): they are all of the order's fills so far, appended to
    /// the caller's list. False for `RESULT` (fills must come from elsewhere).
    pub full: bool,
}

/// Reads the order's state out of an `order.place` reply of type `RESULT` or `FULL` (the
/// `result` object), and appends each entry of a `FULL` reply's `fills` to `fills` as the
/// [`Fill`] of `client_id` on `symbol_name` (fee rule as for execution reports; the trade id is
/// `tradeId`, the one the fill's `executionReport` carries in `t`, so the two de-duplicate).
///
/// Binance's WebSocket API documentation (`order.place`, "Response: RESULT" and "FULL"): the
/// `result` holds `symbol`, `orderId`, `clientOrderId`, `transactTime`, `price`, `origQty`,
/// `executedQty`, `cummulativeQuoteQty`, `status`, `timeInForce`, `type`, `side`, ...; `FULL`
/// adds `"fills":[{"price":"..","qty":"..","commission":"..","commissionAsset":"..","tradeId":..}]`.
///
/// An `ACK` reply (no `status`) is `Err(MissingField("status"))`. Allocates nothing beyond the
/// growth of `fills` (reused by the caller). Never panics.
pub fn parse_place_result(
    text: &[u8],
    symbol_name: &str,
    client_id: ClientOrderId,
    fills: &mut Vec<Fill>,
) -> Result<PlaceResult, ApiError> {
    let mut sc = Scanner::new(text);
    let [result] = collect(&mut sc, &["result"])?;
    sc.finish()?;
    let result = need(result, "result")?;
    const KEYS: [&str; 4] = ["status", "origQty", "executedQty", "fills"];
    let [st, orig, exec, list] = collect(&mut at(text, result), &KEYS)?;
    let status = status_at(text, need(st, "status")?, "status")?;
    let orig_qty = Qty(decimal_at(text, need(orig, "origQty")?, "origQty")?);
    let executed_qty = Qty(decimal_at(text, need(exec, "executedQty")?, "executedQty")?);
    let full = list.is_some_and(|p| kind_at(text, p) == Some(ValueKind::Array));
    if let (true, Some(p)) = (full, list) {
        let mut sc = at(text, p);
        sc.begin_array()?;
        while sc.next_element()? {
            const FILL: [&str; 5] = ["price", "qty", "commission", "commissionAsset", "tradeId"];
            let [price, qty, fee, asset, trade] = collect(&mut sc, &FILL)?;
            let fee = match fee {
                Some(f) => decimal_at(text, f, "commission")?,
                None => 0,
            };
            let quote = match asset {
                Some(a) if kind_at(text, a) == Some(ValueKind::String) => {
                    let mut scratch = [0u8; 64];
                    let t = text_of(text, a, "commissionAsset", &mut scratch)?;
                    is_quote_asset(symbol_name, t)
                }
                _ => false,
            };
            fills.push(Fill {
                client_id,
                trade_id: u64_at(text, need(trade, "tradeId")?, "tradeId")?,
                price: Price(decimal_at(text, need(price, "price")?, "price")?),
                qty: Qty(decimal_at(text, need(qty, "qty")?, "qty")?),
                fee: if quote { fee } else { 0 },
            });
        }
    }
    Ok(PlaceResult {
        status,
        orig_qty,
        executed_qty,
        full,
    })
}

fn status_at(text: &[u8], pos: usize, field: &'static str) -> Result<OrderStatus, ApiError> {
    let s = str_at(text, pos, field)?;
    let mut scratch = [0u8; 64];
    Ok(OrderStatus::parse(self::text(s, &mut scratch, field)?))
}

fn side_at(text: &[u8], pos: usize, field: &'static str) -> Result<Side, ApiError> {
    let s = str_at(text, pos, field)?;
    let mut scratch = [0u8; 64];
    match self::text(s, &mut scratch, field)? {
        b"BUY" => Ok(Side::Buy),
        b"SELL" => Ok(Side::Sell),
        _ => Err(ApiError::WrongType { field }),
    }
}

fn open_order(sc: &mut Scanner<'_>) -> Result<OpenOrder, ApiError> {
    const KEYS: [&str; 8] = [
        "symbol",
        "orderId",
        "clientOrderId",
        "side",
        "price",
        "origQty",
        "executedQty",
        "status",
    ];
    let text = sc.input();
    let [sym, oid, cid, side, price, orig, exec, st] = collect(sc, &KEYS)?;
    let sym = str_at(text, need(sym, "symbol")?, "symbol")?;
    let mut scratch = [0u8; 64];
    let symbol = String::from_utf8_lossy(self::text(sym, &mut scratch, "symbol")?).into_owned();
    let client_id = match cid {
        Some(p) => client_id_at(text, p, "clientOrderId").ok(),
        None => None,
    };
    Ok(OpenOrder {
        symbol,
        client_id,
        venue_order_id: u64_at(text, need(oid, "orderId")?, "orderId")?,
        side: side_at(text, need(side, "side")?, "side")?,
        price: Price(match price {
            Some(p) => decimal_at(text, p, "price")?,
            None => 0,
        }),
        orig_qty: Qty(decimal_at(text, need(orig, "origQty")?, "origQty")?),
        executed_qty: Qty(decimal_at(text, need(exec, "executedQty")?, "executedQty")?),
        status: status_at(text, need(st, "status")?, "status")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Reconciliation: order.status and myTrades replies.

/// The reply to [`OrderEncoder::order_status`], read by [`parse_order_status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderStatusReply {
    /// The venue knows the order.
    Found {
        /// The request's `id`.
        request_id: u64,
        /// The order's report: `symbol`, `clientOrderId` (`None` when not one of ours, see the
        /// [module docs](self) on canceled orders), `orderId`, `side`, `price`, `origQty`,
        /// `executedQty`, `status`.
        order: OpenOrder,
    },
    /// The request failed (`error`); code `-2013` is "Order does not exist.".
    Error {
        /// The request's `id`; `None` when `null` or not an unsigned integer.
        request_id: Option<u64>,
        /// HTTP-like status: 4xx our fault (400 for `-2013`), 5xx unknown outcome.
        status: u16,
        /// Binance's error code.
        code: i64,
        /// The venue's message (control characters replaced, at most 256 characters).
        msg: String,
    },
}

/// The reply to [`OrderEncoder::my_trades`], read by [`parse_my_trades`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TradesReply {
    /// The trades, in the venue's order (oldest first); empty when there are none.
    Trades {
        /// The request's `id`.
        request_id: u64,
        /// The trades.
        trades: Vec<VenueTrade>,
    },
    /// The request failed (`error`).
    Error {
        /// The request's `id`; `None` when `null` or not an unsigned integer.
        request_id: Option<u64>,
        /// HTTP-like status: 4xx our fault, 5xx unknown outcome.
        status: u16,
        /// Binance's error code.
        code: i64,
        /// The venue's message (control characters replaced, at most 256 characters).
        msg: String,
    },
}

/// One trade of a `myTrades` reply: one fill of one of the account's orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueTrade {
    /// `symbol`, as the venue wrote it.
    pub symbol: String,
    /// `id`: the trade id, the one an `executionReport` carries as `t`.
    pub trade_id: u64,
    /// `orderId`: the venue's id of our order that traded.
    pub venue_order_id: u64,
    /// `price`.
    pub price: Price,
    /// `qty`: the quantity traded.
    pub qty: Qty,
    /// `commission`, in 1e-8 units of `commission_asset` (not necessarily the quote asset;
    /// see [`trade_fill`]).
    pub commission: i64,
    /// `commissionAsset` (`BNB`, `USDT`, ...); empty when the venue sent `null`.
    pub commission_asset: String,
    /// `isBuyer`: our order bought.
    pub is_buyer: bool,
    /// `isMaker`: our order was resting.
    pub is_maker: bool,
    /// `time`: when it traded, ms since the Unix epoch.
    pub time_ms: u64,
}

/// What [`parse_order_status`] and [`parse_my_trades`] read of a reply's envelope.
struct Envelope {
    request_id: Option<u64>,
    status: u16,
    result: Option<usize>,
    error: Option<usize>,
}

impl Envelope {
    /// Validates the frame and finds `id`, `status`, `result` and `error`.
    fn read(text: &[u8]) -> Result<Envelope, ApiError> {
        const KEYS: [&str; 4] = ["id", "status", "result", "error"];
        let mut sc = Scanner::new(text);
        let [id, status, result, error] = collect(&mut sc, &KEYS)?;
        sc.finish()?;
        let status = u64_at(text, need(status, "status")?, "status")?;
        let status =
            u16::try_from(status).map_err(|_| ApiError::IntOverflow { field: "status" })?;
        let request_id = match id {
            Some(p) if kind_at(text, p) == Some(ValueKind::Number) => u64_at(text, p, "id").ok(),
            _ => None,
        };
        Ok(Envelope {
            request_id,
            status,
            result,
            error,
        })
    }

    /// The `result` value, which must be of `kind`, and the request id a success needs.
    fn result(&self, text: &[u8], kind: ValueKind) -> Result<(u64, usize), ApiError> {
        let result = need(self.result, "result")?;
        if kind_at(text, result) != Some(kind) {
            return Err(ApiError::WrongType { field: "result" });
        }
        let request_id = self.request_id.ok_or(ApiError::WrongType { field: "id" })?;
        Ok((request_id, result))
    }
}

/// Reads the reply to an `order.status` request ([`OrderEncoder::order_status`]); see the
/// [module docs](self). An `error` reply is `Ok(OrderStatusReply::Error {..})`; a frame that is
/// not a well-formed reply (a `result` that is not an object, a missing or malformed field of
/// the order) is an [`ApiError`] naming the field. Never panics.
pub fn parse_order_status(text: &[u8]) -> Result<OrderStatusReply, ApiError> {
    let env = Envelope::read(text)?;
    if let Some(err) = env.error {
        let (code, msg) = error_of(text, err)?;
        return Ok(OrderStatusReply::Error {
            request_id: env.request_id,
            status: env.status,
            code,
            msg,
        });
    }
    let (request_id, result) = env.result(text, ValueKind::Object)?;
    let order = open_order(&mut at(text, result))?;
    Ok(OrderStatusReply::Found { request_id, order })
}

/// Reads the reply to a `myTrades` request ([`OrderEncoder::my_trades`]); see the
/// [module docs](self). An `error` reply is `Ok(TradesReply::Error {..})`; a frame that is not a
/// well-formed reply (a `result` that is not an array, a missing or malformed field of a trade)
/// is an [`ApiError`] naming the field. Never panics.
pub fn parse_my_trades(text: &[u8]) -> Result<TradesReply, ApiError> {
    let env = Envelope::read(text)?;
    if let Some(err) = env.error {
        let (code, msg) = error_of(text, err)?;
        return Ok(TradesReply::Error {
            request_id: env.request_id,
            status: env.status,
            code,
            msg,
        });
    }
    let (request_id, result) = env.result(text, ValueKind::Array)?;
    let mut sc = at(text, result);
    sc.begin_array()?;
    let mut trades = Vec::new();
    while sc.next_element()? {
        trades.push(venue_trade(&mut sc)?);
    }
    Ok(TradesReply::Trades { request_id, trades })
}

/// The [`Fill`] of our order `client_id` that trade `t` is, on the symbol named `symbol_name`
/// (the symbol table's name, `BTCUSDT`): equal to the one [`parse_execution_report`] gives for
/// the trade's `executionReport`. The commission counts as the fee only when
/// `commission_asset` is the symbol's quote asset, and is 0 otherwise (the rule of the
/// [module docs](self), "Fees").
pub fn trade_fill(t: &VenueTrade, client_id: ClientOrderId, symbol_name: &str) -> Fill {
    let fee = if is_quote_asset(symbol_name, t.commission_asset.as_bytes()) {
        t.commission
    } else {
        0
    };
    Fill {
        client_id,
        trade_id: t.trade_id,
        price: t.price,
        qty: t.qty,
        fee,
    }
}

fn venue_trade(sc: &mut Scanner<'_>) -> Result<VenueTrade, ApiError> {
    const KEYS: [&str; 10] = [
        "symbol",
        "id",
        "orderId",
        "price",
        "qty",
        "commission",
        "commissionAsset",
        "isBuyer",
        "isMaker",
        "time",
    ];
    let text = sc.input();
    let [sym, id, oid, price, qty, commission, asset, buyer, maker, time] = collect(sc, &KEYS)?;
    // Fields are read in the documented order, so an error names the first bad one.
    Ok(VenueTrade {
        symbol: owned_text(text, need(sym, "symbol")?, "symbol")?,
        trade_id: u64_at(text, need(id, "id")?, "id")?,
        venue_order_id: u64_at(text, need(oid, "orderId")?, "orderId")?,
        price: Price(decimal_at(text, need(price, "price")?, "price")?),
        qty: Qty(decimal_at(text, need(qty, "qty")?, "qty")?),
        commission: decimal_at(text, need(commission, "commission")?, "commission")?,
        commission_asset: match need(asset, "commissionAsset")? {
            p if kind_at(text, p) == Some(ValueKind::Null) => String::new(),
            p => owned_text(text, p, "commissionAsset")?,
        },
        is_buyer: bool_at(text, need(buyer, "isBuyer")?, "isBuyer")?,
        is_maker: bool_at(text, need(maker, "isMaker")?, "isMaker")?,
        time_ms: u64_at(text, need(time, "time")?, "time")?,
    })
}

/// A short string field (a symbol, an asset) as an owned `String`.
fn owned_text(buf: &[u8], pos: usize, field: &'static str) -> Result<String, ApiError> {
    let mut scratch = [0u8; 64];
    let t = text_of(buf, pos, field, &mut scratch)?;
    Ok(String::from_utf8_lossy(t).into_owned())
}

fn bool_at(buf: &[u8], pos: usize, field: &'static str) -> Result<bool, ApiError> {
    at(buf, pos)
        .boolean()
        .map_err(|_| ApiError::WrongType { field })
}

// ---------------------------------------------------------------------------------------------
// Execution reports.

/// The `executionReport` keys read (in the order [`report_key`] numbers them), and the two
/// envelope keys that wrap one.
const REPORT_KEYS: [&str; 16] = [
    "e", "s", "c", "C", "x", "X", "i", "q", "z", "l", "L", "n", "N", "t", "event", "data",
];

/// The position of `k` in [`REPORT_KEYS`], by a `match` rather than a scan (a report has over
/// thirty keys).
#[inline]
fn report_key(k: &[u8]) -> Option<usize> {
    Some(match k {
        b"e" => 0,
        b"s" => 1,
        b"c" => 2,
        b"C" => 3,
        b"x" => 4,
        b"X" => 5,
        b"i" => 6,
        b"q" => 7,
        b"z" => 8,
        b"l" => 9,
        b"L" => 10,
        b"n" => 11,
        b"N" => 12,
        b"t" => 13,
        b"event" => 14,
        b"data" => 15,
        _ => return None,
    })
}

/// True if `asset` is the quote asset of `symbol`: the name ends with it and does not also start
/// with it (ambiguous names count as "not the quote", so the fee is recorded as 0).
fn is_quote_asset(symbol: &str, asset: &[u8]) -> bool {
    let s = symbol.as_bytes();
    !asset.is_empty()
        && s.len() > asset.len()
        && s.get(s.len() - asset.len()..)
            .is_some_and(|t| t.eq_ignore_ascii_case(asset))
        && !s
            .get(..asset.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(asset))
}

/// Reads one user data stream frame and appends the order event of an `executionReport` (see
/// the [module docs](self)); returns how many events were appended (0 or 1). Never panics and
/// never allocates (beyond `out` growing).
pub fn parse_execution_report(
    text: &[u8],
    symbols: &SymbolTable,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<usize, ApiError> {
    let mut sc = Scanner::new(text);
    let mut f = collect_by(&mut sc, &REPORT_KEYS, report_key)?;
    sc.finish()?;
    if f[0].is_none() {
        // A wrapper: `{"event":{..}}`, `{"subscriptionId":0,"event":{..}}`,
        // `{"stream":..,"data":{..}}`.
        let inner = match (f[14], f[15]) {
            (Some(p), None) | (None, Some(p)) => p,
            (None, None) => return Err(ApiError::MissingField("e")),
            (Some(_), Some(_)) => return Err(ApiError::WrongType { field: "event" }),
        };
        if kind_at(text, inner) != Some(ValueKind::Object) {
            return Err(ApiError::NotAnObject);
        }
        f = collect_by(&mut at(text, inner), &REPORT_KEYS, report_key)?;
    }
    let [e, s, c, big_c, x, big_x, i, q, z, l, big_l, n, big_n, t, ..] = f;
    let mut scratch = [0u8; 64];
    if text_of(text, need(e, "e")?, "e", &mut scratch)? != b"executionReport" {
        return Ok(0);
    }
    let mut scratch = [0u8; 64];
    let sym = text_of(text, need(s, "s")?, "s", &mut scratch)?;
    let Some(symbol) = symbols.lookup(sym) else {
        return Ok(0);
    };
    let mut scratch = [0u8; 64];
    let exec_type = ExecType::parse(text_of(text, need(x, "x")?, "x", &mut scratch)?);
    // Our order: `C` names the canceled order on CANCELED (then `c` is the cancel's own id).
    let orig = big_c.filter(|&p| matches!(str_at(text, p, "C"), Ok(js) if !js.raw().is_empty()));
    let cid_pos = match (exec_type, orig) {
        (ExecType::Canceled, Some(p)) => (p, "C"),
        _ => (need(c, "c")?, "c"),
    };
    let mut scratch = [0u8; 64];
    let cid_text = text_of(text, cid_pos.0, cid_pos.1, &mut scratch)?;
    let Some(client_id) = core::str::from_utf8(cid_text)
        .ok()
        .and_then(ClientOrderId::parse)
    else {
        return Ok(0);
    };
    let leaves = || -> Result<Qty, ApiError> {
        let q = decimal_at(text, need(q, "q")?, "q")?;
        let z = decimal_at(text, need(z, "z")?, "z")?;
        Ok(Qty(q.saturating_sub(z).max(0)))
    };
    let kind = match exec_type {
        ExecType::New => EventKind::OrderAck(OrderAck {
            client_id,
            venue_order_id: u64_at(text, need(i, "i")?, "i")?,
        }),
        ExecType::Trade => {
            let trade_id = u64_at(text, need(t, "t")?, "t")?;
            let qty = Qty(decimal_at(text, need(l, "l")?, "l")?);
            let price = Price(decimal_at(text, need(big_l, "L")?, "L")?);
            let commission = decimal_at(text, need(n, "n")?, "n")?;
            let asset_pos = need(big_n, "N")?;
            let fee = match kind_at(text, asset_pos) {
                Some(ValueKind::Null) => 0,
                _ => {
                    let mut scratch = [0u8; 64];
                    let asset = text_of(text, asset_pos, "N", &mut scratch)?;
                    let name = symbols.name(symbol).unwrap_or_default();
                    if is_quote_asset(name, asset) {
                        commission
                    } else {
                        0
                    }
                }
            };
            EventKind::Fill(Fill {
                client_id,
                trade_id,
                price,
                qty,
                fee,
            })
        }
        ExecType::Canceled | ExecType::Expired => EventKind::OrderCanceled(OrderCanceled {
            client_id,
            leaves_qty: leaves()?,
        }),
        ExecType::TradePrevention => {
            let mut scratch = [0u8; 64];
            let st = OrderStatus::parse(text_of(text, need(big_x, "X")?, "X", &mut scratch)?);
            if st != OrderStatus::Expired && st != OrderStatus::ExpiredInMatch {
                return Ok(0);
            }
            EventKind::OrderCanceled(OrderCanceled {
                client_id,
                leaves_qty: leaves()?,
            })
        }
        ExecType::Rejected => EventKind::OrderReject(OrderReject {
            client_id,
            reason: RejectReason::Venue,
        }),
        ExecType::Other => return Ok(0),
    };
    out.push(Event::new(recv_ns, symbol, kind));
    Ok(1)
}

fn text_of<'a: 'b, 'b>(
    buf: &'a [u8],
    pos: usize,
    field: &'static str,
    scratch: &'b mut [u8; 64],
) -> Result<&'b [u8], ApiError> {
    text(str_at(buf, pos, field)?, scratch, field)
}

/// `x` of an `executionReport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExecType {
    New,
    Trade,
    Canceled,
    Expired,
    Rejected,
    TradePrevention,
    Other,
}

impl ExecType {
    fn parse(s: &[u8]) -> ExecType {
        match s {
            b"NEW" => ExecType::New,
            b"TRADE" => ExecType::Trade,
            b"CANCELED" => ExecType::Canceled,
            b"EXPIRED" => ExecType::Expired,
            b"REJECTED" => ExecType::Rejected,
            b"TRADE_PREVENTION" => ExecType::TradePrevention,
            _ => ExecType::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_creds() -> Credentials {
        Credentials::hmac("abcd1234", Secret::new("s3cr3t-value")).unwrap()
    }

    #[test]
    fn binance_api_params_sort_in_byte_order() {
        let mut p = Params::new();
        for k in [
            "type",
            "timestamp",
            "timeInForce",
            "apiKey",
            "newOrderRespType",
            "newClientOrderId",
        ] {
            assert!(p.push(k, V::Int(1)));
        }
        let keys: Vec<&str> = p.sorted().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "apiKey",
                "newClientOrderId",
                "newOrderRespType",
                "timeInForce",
                "timestamp",
                "type"
            ]
        );
        let mut full = Params::new();
        for _ in 0..MAX_PARAMS {
            assert!(full.push("a", V::Int(0)));
        }
        assert!(!full.push("b", V::Int(0)));
    }

    #[test]
    fn binance_api_report_key_table_is_consistent() {
        for (i, k) in REPORT_KEYS.iter().enumerate() {
            assert_eq!(report_key(k.as_bytes()), Some(i));
        }
        assert_eq!(report_key(b"S"), None);
        assert_eq!(report_key(b"Cs"), None);
    }

    #[test]
    fn binance_api_number_writers_match_display() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut vals = vec![
            0,
            1,
            9,
            10,
            99_999_999,
            100_000_000,
            u64::MAX,
            i64::MAX as u64,
        ];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            vals.push(x >> (x % 64));
        }
        for v in vals {
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
            for u in [v as i64, (v as i64).wrapping_neg(), i64::MIN, i64::MAX, 0] {
                let mut s = String::new();
                push_fixed(&mut s, u);
                assert_eq!(s, Price(u).to_string());
            }
        }
    }

    #[test]
    fn binance_api_quote_asset_rule() {
        assert!(is_quote_asset("BTCUSDT", b"USDT"));
        assert!(!is_quote_asset("BTCUSDT", b"BTC"));
        assert!(!is_quote_asset("BTCUSDT", b"BNB"));
        assert!(is_quote_asset("ETHBTC", b"BTC"));
        assert!(!is_quote_asset("TUSDT", b"T"), "T/USDT: T is the base");
        assert!(is_quote_asset("TUSDT", b"USDT"));
        assert!(!is_quote_asset("USDT", b"USDT"));
        assert!(!is_quote_asset("BTCUSDT", b""));
    }

    #[test]
    fn binance_api_symbols_and_keys_cannot_break_out_of_json() {
        let mut enc = OrderEncoder::new(
            Credentials::Hmac {
                api_key: "ke\"y&=1".into(),
                secret: Secret::new("x"),
            },
            0,
        );
        assert_eq!(enc.api_key(), "key1");
        let json = enc
            .open_orders(1, Some("btc\"usdt\\\u{e9}-x"), 5)
            .to_string();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["params"]["symbol"], "BTCUSDTX");
        assert_eq!(v["params"]["apiKey"], "key1");
    }

    #[test]
    fn binance_api_signer_of_and_sign_agree() {
        let creds = hmac_creds();
        let sig = creds.sign("a=1&b=2");
        assert_eq!(sig.len(), 64);
        assert!(sig
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let mut enc = OrderEncoder::new(creds, 0);
        let json = enc
            .signed_request(1, "x.y", &[("a", Param::Int(1))], 2)
            .unwrap()
            .to_string();
        assert_eq!(enc.payload(), "a=1&apiKey=abcd1234&timestamp=2");
        assert!(json.ends_with(&format!(
            ",\"signature\":\"{}\"}}}}",
            hmac_creds().sign("a=1&apiKey=abcd1234&timestamp=2")
        )));
    }

    #[test]
    fn binance_api_i64_reader() {
        let b = br#"[-1,0,9223372036854775807,-9223372036854775808,9223372036854775808,1.5]"#;
        let mut sc = Scanner::new(b);
        sc.begin_array().unwrap();
        let mut got = Vec::new();
        while sc.next_element().unwrap() {
            let r = sc.skip_value().unwrap();
            got.push(i64_at(b, r.start, "t"));
        }
        assert_eq!(got[0], Ok(-1));
        assert_eq!(got[1], Ok(0));
        assert_eq!(got[2], Ok(i64::MAX));
        assert_eq!(got[3], Ok(i64::MIN));
        assert_eq!(got[4], Err(ApiError::IntOverflow { field: "t" }));
        assert_eq!(got[5], Err(ApiError::WrongType { field: "t" }));
    }
}
