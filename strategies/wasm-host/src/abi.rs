//! The ABI's numbers, mirroring `strategies/wasm/include/tickline.h` (version 1) one for one: the
//! header is the definition users build against, these constants are what the host uses, and
//! the `header_matches` test reads the header and fails on any difference.

/// The ABI version this host speaks (`TL_ABI_VERSION`).
pub const ABI_VERSION: i32 = 1;
/// Bytes at `tl_buffer()` the host writes parameters and events into (`TL_BUFFER_SIZE`).
pub const BUFFER_SIZE: usize = 4096;
/// Most bytes a guest may hand to `tl_save_state` (`TL_STATE_MAX`).
pub const STATE_MAX: usize = 4096;
/// Longest `tl_log` line, bytes.
pub const LOG_MAX: usize = 256;

/// Event kinds (`TL_EV_*`), the u32 at [`OFF_KIND`].
pub mod ev {
    /// A trade.
    pub const TRADE: u32 = 1;
    /// An aggregated trade.
    pub const AGG_TRADE: u32 = 2;
    /// A bookTicker (best bid/ask).
    pub const BOOK_TICKER: u32 = 3;
    /// The synced L2 book changed.
    pub const BOOK: u32 = 4;
    /// An update on one of the instance's orders.
    pub const ORDER: u32 = 5;
    /// A timer fired.
    pub const TIMER: u32 = 6;
    /// The feed went down or came back.
    pub const CONNECTION: u32 = 7;
}

/// Context block offsets (`TL_OFF_*`).
pub const OFF_KIND: usize = 0;
/// Symbol index, u32.
pub const OFF_SYMBOL: usize = 4;
/// Engine clock, u64 ns.
pub const OFF_NOW_NS: usize = 8;
/// Exchange time, u64 ns.
pub const OFF_MARKET_NS: usize = 16;
/// Position, i64.
pub const OFF_POSITION: usize = 24;
/// Best bid price, i64.
pub const OFF_BID_PX: usize = 32;
/// Best bid quantity, i64.
pub const OFF_BID_QTY: usize = 40;
/// Best ask price, i64.
pub const OFF_ASK_PX: usize = 48;
/// Best ask quantity, i64.
pub const OFF_ASK_QTY: usize = 56;
/// Tick size, i64.
pub const OFF_TICK_SIZE: usize = 64;
/// Lot size, i64.
pub const OFF_LOT_SIZE: usize = 72;
/// Minimum notional, i64.
pub const OFF_MIN_NOTIONAL: usize = 80;
/// Last trade price, i64.
pub const OFF_LAST_PX: usize = 88;
/// Flags, u32.
pub const OFF_FLAGS: usize = 96;
/// Where the event record starts.
pub const OFF_RECORD: usize = 128;
/// Bytes of the context block and the largest record (`TL_ORD_FINAL` + 4).
pub const EVENT_BYTES: usize = 200;

/// A bookTicker has arrived (`TL_FLAG_BBO`).
pub const FLAG_BBO: u32 = 1;
/// The L2 book is synced (`TL_FLAG_BOOK_SYNCED`).
pub const FLAG_BOOK_SYNCED: u32 = 2;

/// Order update kinds (`TL_ORD_*`).
pub mod ord {
    /// Accepted.
    pub const ACCEPTED: u32 = 1;
    /// Rejected.
    pub const REJECTED: u32 = 2;
    /// (Partly) filled.
    pub const FILLED: u32 = 3;
    /// Canceled.
    pub const CANCELED: u32 = 4;
    /// No answer in time.
    pub const TIMED_OUT: u32 = 5;
}

/// Event record offsets (from `tl_buffer()`, like the header's).
pub mod rec {
    /// `TL_EV_TRADE`: price, i64.
    pub const TRADE_PRICE: usize = 128;
    /// Quantity, i64.
    pub const TRADE_QTY: usize = 136;
    /// Trade id, u64.
    pub const TRADE_ID: usize = 144;
    /// Buyer was maker, u32.
    pub const TRADE_BUYER_MAKER: usize = 152;
    /// `TL_EV_AGG_TRADE`: price, i64.
    pub const AGG_PRICE: usize = 128;
    /// Quantity, i64.
    pub const AGG_QTY: usize = 136;
    /// Aggregate id, u64.
    pub const AGG_ID: usize = 144;
    /// Buyer was maker, u32.
    pub const AGG_BUYER_MAKER: usize = 152;
    /// Trades aggregated, u32.
    pub const AGG_TRADE_COUNT: usize = 156;
    /// `TL_EV_BOOK_TICKER` / `TL_EV_BOOK`: best bid price, i64.
    pub const TOP_BID_PX: usize = 128;
    /// Best bid quantity, i64.
    pub const TOP_BID_QTY: usize = 136;
    /// Best ask price, i64.
    pub const TOP_ASK_PX: usize = 144;
    /// Best ask quantity, i64.
    pub const TOP_ASK_QTY: usize = 152;
    /// Update id, u64.
    pub const TOP_UPDATE_ID: usize = 160;
    /// `TL_EV_ORDER`: client id, u64.
    pub const ORD_CLIENT_ID: usize = 128;
    /// Update kind, u32.
    pub const ORD_KIND: usize = 136;
    /// Side, u32.
    pub const ORD_SIDE: usize = 140;
    /// Limit price, i64.
    pub const ORD_PRICE: usize = 144;
    /// Leaves quantity, i64.
    pub const ORD_LEAVES: usize = 152;
    /// Cumulative filled quantity, i64.
    pub const ORD_CUM_QTY: usize = 160;
    /// This fill's price, i64.
    pub const ORD_FILL_PX: usize = 168;
    /// This fill's quantity, i64.
    pub const ORD_FILL_QTY: usize = 176;
    /// This fill's fee, i64.
    pub const ORD_FEE: usize = 184;
    /// Reject reason, u32.
    pub const ORD_REJECT: usize = 192;
    /// Final, u32.
    pub const ORD_FINAL: usize = 196;
    /// `TL_EV_TIMER`: token, u64.
    pub const TIMER_TOKEN: usize = 128;
    /// `TL_EV_CONNECTION`: 1 up, 0 down, u32.
    pub const CONN_UP: usize = 128;
}

/// Reject reasons (`TL_REJ_*`).
pub mod rej {
    /// Anything else.
    pub const OTHER: u32 = 0;
    /// No liquidity.
    pub const NO_LIQUIDITY: u32 = 1;
    /// Invalid order.
    pub const INVALID: u32 = 2;
    /// Order table full.
    pub const TOO_MANY_ORDERS: u32 = 3;
    /// The venue refused it.
    pub const VENUE: u32 = 4;
    /// The ring to the I/O thread was full.
    pub const QUEUE_FULL: u32 = 5;
    /// Pre-trade risk refused it.
    pub const RISK: u32 = 6;
    /// The order session was down.
    pub const DISCONNECTED: u32 = 7;
}

/// `tl_submit` sides (`TL_SIDE_*`).
pub const SIDE_BUY: i32 = 0;
/// Sell.
pub const SIDE_SELL: i32 = 1;
/// `tl_submit` order types (`TL_GTC` .. `TL_MARKET`).
pub const GTC: i32 = 0;
/// Immediate or cancel.
pub const IOC: i32 = 1;
/// Fill or kill.
pub const FOK: i32 = 2;
/// Market.
pub const MARKET: i32 = 3;

/// Host refusals (`TL_ERR_*`), returned as negative numbers.
pub mod err {
    /// Side not `TL_SIDE_*`.
    pub const SIDE: i32 = -1;
    /// Order type not `TL_GTC..TL_MARKET`.
    pub const TYPE: i32 = -2;
    /// Zero, negative or absurd quantity.
    pub const QTY: i32 = -3;
    /// Zero or negative limit price, or absurd.
    pub const PRICE: i32 = -4;
    /// More orders this callback than the deployment allows.
    pub const ORDER_CAP: i32 = -5;
    /// The engine's per-event buffer is full.
    pub const FULL: i32 = -6;
    /// Cancel of an id this instance does not own.
    pub const UNKNOWN_ORDER: i32 = -7;
    /// A pointer/length outside linear memory or over a maximum.
    pub const BOUNDS: i32 = -8;
    /// The symbol is halted.
    pub const HALTED: i32 = -9;
    /// Timer queue full or time in the past.
    pub const TIMER: i32 = -10;
}

/// Largest quantity a guest may ask for, 1e-8 base units (1e9 whole units): anything above is
/// absurd and refused with `TL_ERR_QTY` before risk even sees it.
pub const MAX_QTY: i64 = 100_000_000_000_000_000;
/// Largest limit price, 1e-8 quote units (1e9 quote per unit): above is refused with
/// `TL_ERR_PRICE`.
pub const MAX_PRICE: i64 = 100_000_000_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `#define TL_NAME value` of the header, as (name, value).
    fn header_defines() -> Vec<(String, i64)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wasm/include/tickline.h");
        let text = std::fs::read_to_string(path).expect("tickline.h");
        text.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                if w.next()? != "#define" {
                    return None;
                }
                let name = w.next()?;
                let v = w.next()?.trim_end_matches('u');
                v.parse::<i64>().ok().map(|v| (name.to_string(), v))
            })
            .collect()
    }

    #[test]
    fn header_matches() {
        let ours: &[(&str, i64)] = &[
            ("TL_ABI_VERSION", ABI_VERSION as i64),
            ("TL_BUFFER_SIZE", BUFFER_SIZE as i64),
            ("TL_STATE_MAX", STATE_MAX as i64),
            ("TL_EV_TRADE", ev::TRADE as i64),
            ("TL_EV_AGG_TRADE", ev::AGG_TRADE as i64),
            ("TL_EV_BOOK_TICKER", ev::BOOK_TICKER as i64),
            ("TL_EV_BOOK", ev::BOOK as i64),
            ("TL_EV_ORDER", ev::ORDER as i64),
            ("TL_EV_TIMER", ev::TIMER as i64),
            ("TL_EV_CONNECTION", ev::CONNECTION as i64),
            ("TL_OFF_KIND", OFF_KIND as i64),
            ("TL_OFF_SYMBOL", OFF_SYMBOL as i64),
            ("TL_OFF_NOW_NS", OFF_NOW_NS as i64),
            ("TL_OFF_MARKET_NS", OFF_MARKET_NS as i64),
            ("TL_OFF_POSITION", OFF_POSITION as i64),
            ("TL_OFF_BID_PX", OFF_BID_PX as i64),
            ("TL_OFF_BID_QTY", OFF_BID_QTY as i64),
            ("TL_OFF_ASK_PX", OFF_ASK_PX as i64),
            ("TL_OFF_ASK_QTY", OFF_ASK_QTY as i64),
            ("TL_OFF_TICK_SIZE", OFF_TICK_SIZE as i64),
            ("TL_OFF_LOT_SIZE", OFF_LOT_SIZE as i64),
            ("TL_OFF_MIN_NOTIONAL", OFF_MIN_NOTIONAL as i64),
            ("TL_OFF_LAST_PX", OFF_LAST_PX as i64),
            ("TL_OFF_FLAGS", OFF_FLAGS as i64),
            ("TL_OFF_RECORD", OFF_RECORD as i64),
            ("TL_FLAG_BBO", FLAG_BBO as i64),
            ("TL_FLAG_BOOK_SYNCED", FLAG_BOOK_SYNCED as i64),
            ("TL_ORD_ACCEPTED", ord::ACCEPTED as i64),
            ("TL_ORD_REJECTED", ord::REJECTED as i64),
            ("TL_ORD_FILLED", ord::FILLED as i64),
            ("TL_ORD_CANCELED", ord::CANCELED as i64),
            ("TL_ORD_TIMED_OUT", ord::TIMED_OUT as i64),
            ("TL_REJ_OTHER", rej::OTHER as i64),
            ("TL_REJ_NO_LIQUIDITY", rej::NO_LIQUIDITY as i64),
            ("TL_REJ_INVALID", rej::INVALID as i64),
            ("TL_REJ_TOO_MANY_ORDERS", rej::TOO_MANY_ORDERS as i64),
            ("TL_REJ_VENUE", rej::VENUE as i64),
            ("TL_REJ_QUEUE_FULL", rej::QUEUE_FULL as i64),
            ("TL_REJ_RISK", rej::RISK as i64),
            ("TL_REJ_DISCONNECTED", rej::DISCONNECTED as i64),
            ("TL_SIDE_BUY", SIDE_BUY as i64),
            ("TL_SIDE_SELL", SIDE_SELL as i64),
            ("TL_GTC", GTC as i64),
            ("TL_IOC", IOC as i64),
            ("TL_FOK", FOK as i64),
            ("TL_MARKET", MARKET as i64),
            ("TL_ERR_SIDE", err::SIDE as i64),
            ("TL_ERR_TYPE", err::TYPE as i64),
            ("TL_ERR_QTY", err::QTY as i64),
            ("TL_ERR_PRICE", err::PRICE as i64),
            ("TL_ERR_ORDER_CAP", err::ORDER_CAP as i64),
            ("TL_ERR_FULL", err::FULL as i64),
            ("TL_ERR_UNKNOWN_ORDER", err::UNKNOWN_ORDER as i64),
            ("TL_ERR_BOUNDS", err::BOUNDS as i64),
            ("TL_ERR_HALTED", err::HALTED as i64),
            ("TL_ERR_TIMER", err::TIMER as i64),
            ("TL_TRADE_PRICE", rec::TRADE_PRICE as i64),
            ("TL_TRADE_QTY", rec::TRADE_QTY as i64),
            ("TL_TRADE_ID", rec::TRADE_ID as i64),
            ("TL_TRADE_BUYER_MAKER", rec::TRADE_BUYER_MAKER as i64),
            ("TL_AGG_PRICE", rec::AGG_PRICE as i64),
            ("TL_AGG_QTY", rec::AGG_QTY as i64),
            ("TL_AGG_ID", rec::AGG_ID as i64),
            ("TL_AGG_BUYER_MAKER", rec::AGG_BUYER_MAKER as i64),
            ("TL_AGG_TRADE_COUNT", rec::AGG_TRADE_COUNT as i64),
            ("TL_TOP_BID_PX", rec::TOP_BID_PX as i64),
            ("TL_TOP_BID_QTY", rec::TOP_BID_QTY as i64),
            ("TL_TOP_ASK_PX", rec::TOP_ASK_PX as i64),
            ("TL_TOP_ASK_QTY", rec::TOP_ASK_QTY as i64),
            ("TL_TOP_UPDATE_ID", rec::TOP_UPDATE_ID as i64),
            ("TL_ORD_CLIENT_ID", rec::ORD_CLIENT_ID as i64),
            ("TL_ORD_KIND", rec::ORD_KIND as i64),
            ("TL_ORD_SIDE", rec::ORD_SIDE as i64),
            ("TL_ORD_PRICE", rec::ORD_PRICE as i64),
            ("TL_ORD_LEAVES", rec::ORD_LEAVES as i64),
            ("TL_ORD_CUM_QTY", rec::ORD_CUM_QTY as i64),
            ("TL_ORD_FILL_PX", rec::ORD_FILL_PX as i64),
            ("TL_ORD_FILL_QTY", rec::ORD_FILL_QTY as i64),
            ("TL_ORD_FEE", rec::ORD_FEE as i64),
            ("TL_ORD_REJECT", rec::ORD_REJECT as i64),
            ("TL_ORD_FINAL", rec::ORD_FINAL as i64),
            ("TL_TIMER_TOKEN", rec::TIMER_TOKEN as i64),
            ("TL_CONN_UP", rec::CONN_UP as i64),
        ];
        let defs = header_defines();
        for (name, v) in ours {
            let h = defs.iter().find(|d| d.0 == *name).map(|d| d.1);
            assert_eq!(h, Some(*v), "{name}");
        }
        // Every numeric define of the header is known here.
        for (name, _) in &defs {
            assert!(
                ours.iter().any(|o| o.0 == name),
                "{name} in tickline.h is unknown to the host"
            );
        }
    }
}
