//! Coinbase Exchange (`coinbase`): the public WebSocket market-data feed.
//!
//! | module | stage |
//! |---|---|
//! | [`adapter`] | the [`Adapter`](crate::venue::Adapter): `wss://ws-feed.exchange.coinbase.com`, `subscribe`/`unsubscribe` by channel, WebSocket pings, book sync from the socket's `snapshot` |
//! | [`market`] | feed messages (`snapshot`, `l2update`, `match`/`last_match`, `ticker`) to [`Event`](engine::event::Event)s, with the sequence rules |
//! | [`time`] | ISO-8601 UTC times to nanoseconds, without allocating |
//!
//! Streams are written `<channel>:<product>` (`level2:BTC-USD`, `matches:BTC-USD`,
//! `ticker:BTC-USD`); the adapter groups them into one subscribe frame per channel. Coinbase's
//! `level2` numbers nothing, so the decoder numbers each product's book messages itself and
//! the engine's book procedure applies unchanged; see [`market`] for the rules, including why
//! jumps in the `sequence` of `match` and `ticker` messages are not gaps while repeats are
//! dropped.

pub mod adapter;
pub mod market;
pub mod time;
