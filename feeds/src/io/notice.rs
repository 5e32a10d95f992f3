//! [`IoNotice`]: what the I/O thread has to say, raised on it (off the frame path).

use core::fmt;
use std::time::Duration;

/// Decode errors reported through [`IoNotice::DecodeError`] per connection; later ones are only
/// counted.
pub const DECODE_ERROR_NOTICES: u64 = 5;
/// Error replies of the venue reported through [`IoNotice::VenueError`] per connection.
pub const ERROR_RESPONSE_NOTICES: u64 = 20;

/// Something worth logging, raised on the I/O thread (off the frame path).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoNotice {
    /// A connection opened (its `ConnectionUp` is in the ring, its subscription sent): request
    /// snapshots now.
    Connected {
        /// Which connection.
        conn_id: u32,
    },
    /// An open connection was lost, or closed at stop (`reason` "stopped").
    Disconnected {
        /// Which connection.
        conn_id: u32,
        /// What happened, in words.
        reason: String,
    },
    /// An attempt failed before the connection opened (refused, TLS, handshake, timeout).
    ConnectFailed {
        /// Which connection.
        conn_id: u32,
        /// The error's message.
        error: String,
    },
    /// The next attempt is scheduled.
    Reconnecting {
        /// Which connection.
        conn_id: u32,
        /// Consecutive attempt number (1 for the first retry since the connection was healthy).
        attempt: u32,
        /// Delay before it.
        delay: Duration,
    },
    /// The connection is given up: a bad URL, or `max_attempts` consecutive failures.
    GaveUp {
        /// Which connection.
        conn_id: u32,
        /// Why.
        reason: String,
    },
    /// The venue answered a request with an error, e.g. refused a subscription (only the first
    /// [`ERROR_RESPONSE_NOTICES`] per connection).
    VenueError {
        /// Which connection.
        conn_id: u32,
        /// The reply (its first 512 bytes).
        message: String,
    },
    /// A frame could not be decoded (only the first [`DECODE_ERROR_NOTICES`] per connection).
    DecodeError {
        /// Which connection.
        conn_id: u32,
        /// The error and the frame's first bytes.
        error: String,
        /// Decode errors on this connection so far.
        count: u64,
    },
    /// Something the order session reports (refusals, reconciliation, journal trouble).
    OrderSession {
        /// The API connection.
        conn_id: u32,
        /// What happened.
        message: String,
    },
    /// An [`IoCommand`](crate::io::IoCommand) could not be applied.
    CommandRejected {
        /// The connection it named.
        conn_id: u32,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for IoNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoNotice::Connected { conn_id } => write!(f, "conn {conn_id}: connected"),
            IoNotice::Disconnected { conn_id, reason } => {
                write!(f, "conn {conn_id}: disconnected: {reason}")
            }
            IoNotice::ConnectFailed { conn_id, error } => {
                write!(f, "conn {conn_id}: connect failed: {error}")
            }
            IoNotice::Reconnecting {
                conn_id,
                attempt,
                delay,
            } => write!(
                f,
                "conn {conn_id}: reconnect attempt {attempt} in {} ms",
                delay.as_millis()
            ),
            IoNotice::GaveUp { conn_id, reason } => write!(f, "conn {conn_id}: gave up: {reason}"),
            IoNotice::DecodeError {
                conn_id,
                error,
                count,
            } => write!(f, "conn {conn_id}: decode error #{count}: {error}"),
            IoNotice::OrderSession { conn_id, message } => {
                write!(f, "conn {conn_id}: orders: {message}")
            }
            IoNotice::CommandRejected { conn_id, reason } => {
                write!(f, "conn {conn_id}: command rejected: {reason}")
            }
            IoNotice::VenueError { conn_id, message } => {
                write!(
                    f,
                    "conn {conn_id}: the venue answered with an error: {message}"
                )
            }
        }
    }
}
