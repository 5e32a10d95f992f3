//! OKX v5 public market data: `books`, `trades` and `tickers` on the adapter model
//! ([`Venue::Okx`](engine::venue::Venue::Okx), name `okx`).
//!
//! | module | stage |
//! |---|---|
//! | [`adapter`] | the [`Adapter`](crate::venue::Adapter) [`adapter::OKX`]: URL, `{"op":"subscribe",..}`, text `ping`, WebSocket snapshots |
//! | [`market`] | [`market::OkxDecoder`]: frames (and REST `books` bodies) to [`Event`](engine::event::Event)s |
//!
//! # Frames
//!
//! `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{..}]}`; the
//! symbol is `arg.instId` looked up with `lookup_on(Venue::Okx, ..)` (`BTC-USDT`,
//! `BTC-USD-SWAP`, `BTC-USD-220527`); a name not in the table is `Ignored(UnknownSymbol)`.
//!
//! | channel | data element | events |
//! |---|---|---|
//! | `books` (also `books-l2-tbt`, `books50-l2-tbt`: same messages) | `asks`, `bids` (levels `["px","sz","0","numOrders"]`: 2 to 4 strings, the first two used), `ts` (ms), `checksum` (signed 32-bit), `seqId`/`prevSeqId` when present; `action` `snapshot` or `update` | `snapshot`: one [`SnapshotLevel`](engine::event::SnapshotLevel) per level; `update`: one [`DepthLevel`](engine::event::DepthLevel) per level (bids first, `LAST` on the last, one `LAST\|EMPTY` event for none); then one [`BookChecksum`](engine::event::BookChecksum) if `checksum` is non-zero |
//! | `trades` | `tradeId` (numeric string), `px`, `sz`, `side`, `ts` | one [`Trade`](engine::event::Trade) per element; `buyer_maker = side == "sell"` (the taker sold) |
//! | `tickers` | `bidPx`, `bidSz`, `askPx`, `askSz`, `ts` | one [`BookTicker`](engine::event::BookTicker); `update_id` is `ts` in ms (OKX numbers no ticker; `ts` rises with the book). An empty price or size string (a side with no orders) reads as 0 |
//! | any other channel | | `Ignored(UnknownStream)` |
//! | `{"event":"subscribe"\|"unsubscribe"\|"error"\|..}` | | `Ignored(Response)` (errors are replies too, as on Binance) |
//! | the text `pong` | | `Ignored(Heartbeat)` |
//!
//! Strictness is Binance's ([`crate::binance::market`]): the whole frame is validated as JSON,
//! a known key twice is an error, prices and sizes must fit [`engine::fixed`] exactly, times
//! and ids are digit strings. No allocation, no panic, no `f64`.
//!
//! # Book ids: `seqId` / `prevSeqId`
//!
//! OKX's documentation of the `books` channel (as mirrored by the Nautilus and rust-okx API
//! docs, found with the `search` tool): `seqId` is the "Sequence ID of the current message",
//! `prevSeqId` the "Sequence ID of the last sent message. Only applicable to books,
//! books-l2-tbt, books50-l2-tbt"; a snapshot pushed on subscribing has `prevSeqId = -1`; the
//! `checksum` is the "CRC32 checksum of the top-25 bid/ask levels". The sync rules (issue
//! #14, OKX's current documentation): each update's `prevSeqId` equals the previous message's
//! `seqId`; from a REST snapshot, the first applied update has `prevSeqId <= seqId(snapshot) <
//! seqId`; `seqId == prevSeqId` means no change; `seqId < prevSeqId` is a sequence reset after
//! maintenance. The engine's one book procedure ([`engine::book`]) gets them as:
//!
//! * **update, `seqId > prevSeqId`**: `final_update_id = seqId`, `update_span = seqId -
//!   prevSeqId - 1` (saturated at `u32::MAX`), so `first_update_id() - 1 = prevSeqId`: the book's
//!   continuity check is exactly "`prevSeqId` = the last `seqId`", and its snapshot bridge
//!   `first <= S + 1 <= final` is exactly `prevSeqId <= S < seqId`.
//! * **snapshot** (WebSocket or REST): `last_update_id = seqId`.
//! * **`seqId == prevSeqId`** (no change): no level events (levels present would contradict it:
//!   [`DecodeError::BadRange`](crate::venue::DecodeError::BadRange) on `seqId`); a non-zero
//!   checksum still becomes a `BookChecksum` for `seqId`, which the book has applied.
//! * **`seqId < prevSeqId`** (reset): never accepted silently. The decoder emits a
//!   [`Gap`](engine::event::Gap) (`GapReason::Sequence`) for the instrument instead of the
//!   message's levels (the book marks itself stale and asks for a resync, i.e. a resubscribe
//!   that brings a new snapshot) and counts it ([`market::OkxDecoder::sequence_resets`]).
//!   Placing the levels would not work: `final < ` the last applied id reads to the book as a
//!   stale duplicate, and so would every message until the new ids passed the old ones.
//!
//! **Frames without `seqId`** (the 2022 capture in `../shared/data/cryptofeed/OKX.ws.1.0`,
//! from before OKX added the fields): the decoder numbers `books` messages per instrument
//! itself: a snapshot gets `n` (one more than the instrument's last number), the next update
//! `prev = n`, `final = n + 1`, and so on; a later snapshot continues the count. Continuity is
//! then guaranteed by construction, and what proves the book right is the checksum, which the
//! core verifies on every message that carries one (`engine::checksum`; a mismatch makes the
//! book stale, asks for a resync and counts in `BookStats::checksum_failures`). The count is
//! never reset, not even by [`MarketDecoder::reset`](crate::venue::MarketDecoder::reset), so
//! ids never repeat across connections. OKX has since been retiring the checksum (it reads 0
//! in production now; 0 means absent and produces no event) and the WebSocket snapshot, which
//! is why the `seqId` rules above are the primary ones.

pub mod adapter;
pub mod market;
