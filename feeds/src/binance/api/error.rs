//! The one error type of the Binance API codec: credentials that could not be loaded, a request
//! not built, or a venue message not read.

use crate::json::{JsonError, JsonErrorKind};
use core::fmt;
use engine::fixed::FixedError;
use std::path::PathBuf;

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
    /// A param of [`OrderEncoder::signed_request`](super::OrderEncoder::signed_request) was refused.
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

/// A request the venue refused: a reply's `status` and its `error` object. The one shape every
/// reply parser gives for a refusal ([`ApiReply::Rejected`](super::ApiReply::Rejected),
/// [`OrderStatusReply::Error`](super::OrderStatusReply::Error),
/// [`TradesReply::Error`](super::TradesReply::Error)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueError {
    /// HTTP-like status: 4xx our fault, 5xx unknown outcome (query before retrying).
    pub status: u16,
    /// Binance's error code (`-2010`, `-2013` "Order does not exist.", ...).
    pub code: i64,
    /// The venue's message (control characters replaced, at most 256 characters). It comes
    /// from the venue and never holds our secret.
    pub msg: String,
}
