//! The order side, venue-neutral in shape: the session that sends the core's orders and reads
//! what the venue answers, the journal that makes them survive a restart, and the venue check
//! of client order ids.
//!
//! | module | holds | runs on |
//! |---|---|---|
//! | [`session`] | [`OrderSession`](session::OrderSession): commands from the core to signed requests, replies and execution reports back to events, reconciliation after a restart | the I/O thread that owns the API connection |
//! | [`journal`] | the write-ahead log of intents, acks and fills, and its recovery | written by the session, read at start-up |
//! | [`idcheck`] | the venue check of client order ids on every connect | driven by the session |
//! | [`clock`] | [`WallClock`](clock::WallClock), the wall clock injected into the session | read once per use, in one place |
//!
//! The session encodes and parses through the venue's codec ([`crate::binance::api`]) and
//! journals through [`journal`]; `journal` and `idcheck` do not know the session.

pub mod clock;
pub mod idcheck;
pub mod journal;
pub mod session;
