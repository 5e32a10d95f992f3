//! Reply parsers: WebSocket API replies, reconciliation replies (`order.status`, `myTrades`) and
//! `executionReport` events, read without copying the frame (sans-IO).
//!
//! # Replies ([`parse_reply`])
//!
//! The whole frame is validated as JSON ([`crate::json`]); keys may come in any order. What the
//! reply is follows from its shape, since a reply does not repeat its method:
//!
//! | frame | [`ApiReply`] |
//! |---|---|
//! | `error` object | `Rejected` (a [`VenueError`]: status, code, message) |
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
//! # One read of the envelope ([`read_envelope`])
//!
//! A caller that knows what it asked (the order session) reads a frame's [`Envelope`] once: it
//! validates the whole frame and gives the request id, the status, and where `result`, `error`
//! or the event object start. The caller then picks exactly one parser by what it sent under
//! that id, and that parser reads only its part: [`reply_of`] (what [`parse_reply`] classifies),
//! [`order_status_of`], [`my_trades_of`], [`place_result_of`], [`execution_report_of`]. The
//! `parse_*` functions are the same parsers behind their own envelope read, for callers with a
//! bare frame. None allocates beyond what the `parse_*` function it stands for allocates.
//!
//! # Reconciling after a restart
//!
//! A restarted engine asks the venue what became of the orders its journal left open, and which
//! fills it missed:
//!
//! | request | reply parser | gives |
//! |---|---|---|
//! | [`OrderEncoder::order_status`](super::OrderEncoder::order_status) | [`parse_order_status`] | [`OrderStatusReply::Found`]: the order's report ([`OpenOrder`]: symbol, ids, side, price, `origQty`, `executedQty`, status) |
//! | [`OrderEncoder::my_trades`](super::OrderEncoder::my_trades) | [`parse_my_trades`] | [`TradesReply::Trades`]: the account's trades ([`VenueTrade`]) on one symbol, oldest first |
//!
//! A failed request comes back as `Ok(..::Error { request_id, error })`, the same [`VenueError`]
//! as in [`ApiReply::Rejected`]: `order.status` of an order the venue does not know answers
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

use super::error::{ApiError, VenueError};
use crate::json::{self, JsonStr, NumError, Scanner, ValueKind};
use engine::event::{
    ClientOrderId, Event, EventKind, Fill, OrderAck, OrderCanceled, OrderReject, RejectReason, Side,
};
use engine::fixed::{parse_fixed, Price, Qty};
use engine::symbol::SymbolTable;

/// Longest error message kept from a venue reply, in characters.
const MAX_MSG_CHARS: usize = 256;

// ---------------------------------------------------------------------------------------------
// Reading JSON: collect the wanted keys of one object, then read their values.

/// Walks the object at the scanner (validating all of it) and returns where the value of each
/// of `keys` starts; a repeated wanted key is an error.
pub(super) fn collect<const N: usize>(
    sc: &mut Scanner<'_>,
    keys: &[&'static str; N],
) -> Result<[Option<usize>; N], ApiError> {
    collect_by(sc, keys, |k| keys.iter().position(|w| w.as_bytes() == k))
}

/// [`collect`] with a faster key lookup: `index(key)` is the key's position in `keys`.
#[inline]
pub(super) fn collect_by<const N: usize>(
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
pub(super) fn escaped_key(
    k: &JsonStr<'_>,
    index: &impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    let mut buf = [0u8; 32];
    index(k.decode_into(&mut buf)?)
}

/// A value's scanner; the frame was validated already, so a read error means a wrong type.
#[inline]
pub(super) fn at<'a>(buf: &'a [u8], pos: usize) -> Scanner<'a> {
    Scanner::at(buf, pos)
}

pub(super) fn need(pos: Option<usize>, field: &'static str) -> Result<usize, ApiError> {
    pos.ok_or(ApiError::MissingField(field))
}

pub(super) fn kind_at(buf: &[u8], pos: usize) -> Option<ValueKind> {
    at(buf, pos).peek().ok()
}

pub(super) fn u64_at(buf: &[u8], pos: usize, field: &'static str) -> Result<u64, ApiError> {
    let n = at(buf, pos)
        .number()
        .map_err(|_| ApiError::WrongType { field })?;
    n.as_u64().map_err(|e| match e {
        NumError::NotUnsigned => ApiError::WrongType { field },
        NumError::Overflow => ApiError::IntOverflow { field },
    })
}

pub(super) fn i64_at(buf: &[u8], pos: usize, field: &'static str) -> Result<i64, ApiError> {
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

pub(super) fn str_at<'a>(
    buf: &'a [u8],
    pos: usize,
    field: &'static str,
) -> Result<JsonStr<'a>, ApiError> {
    at(buf, pos)
        .string()
        .map_err(|_| ApiError::WrongType { field })
}

/// The content of `s`, decoded into `scratch` only if it has escapes.
pub(super) fn text<'a: 'b, 'b>(
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

pub(super) fn decimal_at(buf: &[u8], pos: usize, field: &'static str) -> Result<i64, ApiError> {
    let s = str_at(buf, pos, field)?;
    let mut scratch = [0u8; 64];
    let t = text(s, &mut scratch, field)?;
    parse_fixed(t).map_err(|err| ApiError::BadDecimal { field, err })
}

pub(super) fn client_id_at(
    buf: &[u8],
    pos: usize,
    field: &'static str,
) -> Result<ClientOrderId, ApiError> {
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
        /// What the venue said.
        error: VenueError,
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
    reply_of(text, &read_envelope(text)?)
}

/// A WebSocket API frame's envelope, read once by [`read_envelope`]: which request it answers
/// and where its parts start, so that exactly one parser reads the rest ([`reply_of`],
/// [`order_status_of`], [`my_trades_of`], [`execution_report_of`], [`place_result_of`]), chosen
/// by the caller, who knows what it asked under that id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// `id`, when an unsigned integer.
    pub request_id: Option<u64>,
    /// `status`; `None` for an event (then [`Envelope::event`] is set).
    pub status: Option<u16>,
    /// Where the `result` value starts.
    pub result: Option<usize>,
    /// Where the `error` value starts.
    pub error: Option<usize>,
    /// For an event without `status`: where the event object starts (the `event` object, or the
    /// frame itself for a bare `{"e":..}`).
    pub event: Option<usize>,
}

/// Validates the whole frame as JSON and reads its envelope: `id`, `status`, `result`, `error`,
/// and for an event (no `status`, an `event` or `e` key) where the event object is. A frame
/// with neither `status` nor an event is `Err(MissingField("status"))`. Never panics, never
/// allocates.
pub fn read_envelope(text: &[u8]) -> Result<Envelope, ApiError> {
    const KEYS: [&str; 6] = ["id", "status", "result", "error", "event", "e"];
    let mut sc = Scanner::new(text);
    let [id, status, result, error, event, e] = collect(&mut sc, &KEYS)?;
    sc.finish()?;
    let Some(status) = status else {
        let event = match (e, event) {
            (Some(_), _) => text.iter().position(|b| !b.is_ascii_whitespace()),
            (None, Some(p)) => Some(p),
            (None, None) => return Err(ApiError::MissingField("status")),
        };
        return Ok(Envelope {
            request_id: None,
            status: None,
            result,
            error,
            event,
        });
    };
    let status = u64_at(text, status, "status")?;
    let status = u16::try_from(status).map_err(|_| ApiError::IntOverflow { field: "status" })?;
    let request_id = match id {
        Some(p) if kind_at(text, p) == Some(ValueKind::Number) => u64_at(text, p, "id").ok(),
        _ => None,
    };
    Ok(Envelope {
        request_id,
        status: Some(status),
        result,
        error,
        event: None,
    })
}

/// Classifies a reply by its shape (see the [module docs](self)), from its envelope.
pub fn reply_of(text: &[u8], env: &Envelope) -> Result<ApiReply, ApiError> {
    let Some(status) = env.status else {
        return Ok(ApiReply::Event);
    };
    let (request_id, result) = (env.request_id, env.result);
    if let Some(err) = env.error {
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
pub(super) fn rejected(
    text: &[u8],
    err: usize,
    request_id: Option<u64>,
    status: u16,
) -> Result<ApiReply, ApiError> {
    Ok(ApiReply::Rejected {
        request_id,
        error: venue_error(text, err, status)?,
    })
}

/// The [`VenueError`] of the `error` object at `err`, with the reply's `status`.
#[cold]
pub(super) fn venue_error(text: &[u8], err: usize, status: u16) -> Result<VenueError, ApiError> {
    let [code, msg] = collect(&mut at(text, err), &["code", "msg"])?;
    let code = i64_at(text, need(code, "code")?, "code")?;
    let msg = match msg {
        Some(p) => clean_msg(str_at(text, p, "msg")?),
        None => String::new(),
    };
    Ok(VenueError { status, code, msg })
}

/// The venue's message, decoded, control characters replaced by spaces, capped.
pub(super) fn clean_msg(s: JsonStr<'_>) -> String {
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

pub(super) fn order_result(
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
    place_result_at(text, need(result, "result")?, symbol_name, client_id, fills)
}

/// [`parse_place_result`] from the reply's envelope (the frame is not read again).
pub fn place_result_of(
    text: &[u8],
    env: &Envelope,
    symbol_name: &str,
    client_id: ClientOrderId,
    fills: &mut Vec<Fill>,
) -> Result<PlaceResult, ApiError> {
    place_result_at(
        text,
        need(env.result, "result")?,
        symbol_name,
        client_id,
        fills,
    )
}

fn place_result_at(
    text: &[u8],
    result: usize,
    symbol_name: &str,
    client_id: ClientOrderId,
    fills: &mut Vec<Fill>,
) -> Result<PlaceResult, ApiError> {
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

pub(super) fn status_at(
    text: &[u8],
    pos: usize,
    field: &'static str,
) -> Result<OrderStatus, ApiError> {
    let s = str_at(text, pos, field)?;
    let mut scratch = [0u8; 64];
    Ok(OrderStatus::parse(self::text(s, &mut scratch, field)?))
}

pub(super) fn side_at(text: &[u8], pos: usize, field: &'static str) -> Result<Side, ApiError> {
    let s = str_at(text, pos, field)?;
    let mut scratch = [0u8; 64];
    match self::text(s, &mut scratch, field)? {
        b"BUY" => Ok(Side::Buy),
        b"SELL" => Ok(Side::Sell),
        _ => Err(ApiError::WrongType { field }),
    }
}

pub(super) fn open_order(sc: &mut Scanner<'_>) -> Result<OpenOrder, ApiError> {
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

/// The reply to [`OrderEncoder::order_status`](super::OrderEncoder::order_status), read by [`parse_order_status`].
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
        /// What the venue said.
        error: VenueError,
    },
}

/// The reply to [`OrderEncoder::my_trades`](super::OrderEncoder::my_trades), read by [`parse_my_trades`].
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
        /// What the venue said.
        error: VenueError,
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

/// The `result` value, which must be of `kind`, and the request id a success needs.
fn result_of(text: &[u8], env: &Envelope, kind: ValueKind) -> Result<(u64, usize), ApiError> {
    let result = need(env.result, "result")?;
    if kind_at(text, result) != Some(kind) {
        return Err(ApiError::WrongType { field: "result" });
    }
    let request_id = env.request_id.ok_or(ApiError::WrongType { field: "id" })?;
    Ok((request_id, result))
}

/// Reads the reply to an `order.status` request ([`OrderEncoder::order_status`](super::OrderEncoder::order_status)); see the
/// [module docs](self). An `error` reply is `Ok(OrderStatusReply::Error {..})`; a frame that is
/// not a well-formed reply (a `result` that is not an object, a missing or malformed field of
/// the order) is an [`ApiError`] naming the field. Never panics.
pub fn parse_order_status(text: &[u8]) -> Result<OrderStatusReply, ApiError> {
    order_status_of(text, &read_envelope(text)?)
}

/// [`parse_order_status`] from the reply's envelope (the frame is not read again).
pub fn order_status_of(text: &[u8], env: &Envelope) -> Result<OrderStatusReply, ApiError> {
    let status = env.status.ok_or(ApiError::MissingField("status"))?;
    if let Some(err) = env.error {
        return Ok(OrderStatusReply::Error {
            request_id: env.request_id,
            error: venue_error(text, err, status)?,
        });
    }
    let (request_id, result) = result_of(text, env, ValueKind::Object)?;
    let order = open_order(&mut at(text, result))?;
    Ok(OrderStatusReply::Found { request_id, order })
}

/// Reads the reply to a `myTrades` request ([`OrderEncoder::my_trades`](super::OrderEncoder::my_trades)); see the
/// [module docs](self). An `error` reply is `Ok(TradesReply::Error {..})`; a frame that is not a
/// well-formed reply (a `result` that is not an array, a missing or malformed field of a trade)
/// is an [`ApiError`] naming the field. Never panics.
pub fn parse_my_trades(text: &[u8]) -> Result<TradesReply, ApiError> {
    my_trades_of(text, &read_envelope(text)?)
}

/// [`parse_my_trades`] from the reply's envelope (the frame is not read again).
pub fn my_trades_of(text: &[u8], env: &Envelope) -> Result<TradesReply, ApiError> {
    let status = env.status.ok_or(ApiError::MissingField("status"))?;
    if let Some(err) = env.error {
        return Ok(TradesReply::Error {
            request_id: env.request_id,
            error: venue_error(text, err, status)?,
        });
    }
    let (request_id, result) = result_of(text, env, ValueKind::Array)?;
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

pub(super) fn venue_trade(sc: &mut Scanner<'_>) -> Result<VenueTrade, ApiError> {
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
pub(super) fn owned_text(buf: &[u8], pos: usize, field: &'static str) -> Result<String, ApiError> {
    let mut scratch = [0u8; 64];
    let t = text_of(buf, pos, field, &mut scratch)?;
    Ok(String::from_utf8_lossy(t).into_owned())
}

pub(super) fn bool_at(buf: &[u8], pos: usize, field: &'static str) -> Result<bool, ApiError> {
    at(buf, pos)
        .boolean()
        .map_err(|_| ApiError::WrongType { field })
}

// ---------------------------------------------------------------------------------------------
// Execution reports.

/// The `executionReport` keys read (in the order [`report_key`] numbers them), and the two
/// envelope keys that wrap one.
pub(super) const REPORT_KEYS: [&str; 16] = [
    "e", "s", "c", "C", "x", "X", "i", "q", "z", "l", "L", "n", "N", "t", "event", "data",
];

/// The position of `k` in [`REPORT_KEYS`], by a `match` rather than a scan (a report has over
/// thirty keys).
#[inline]
pub(super) fn report_key(k: &[u8]) -> Option<usize> {
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
pub(super) fn is_quote_asset(symbol: &str, asset: &[u8]) -> bool {
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
    report_from(text, f, symbols, recv_ns, out)
}

/// [`parse_execution_report`] from the frame's envelope (an event: `{"event":{..}}` or a bare
/// report): only the report object's keys are read, the frame is not validated again.
pub fn execution_report_of(
    text: &[u8],
    env: &Envelope,
    symbols: &SymbolTable,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<usize, ApiError> {
    let pos = env.event.ok_or(ApiError::MissingField("e"))?;
    if kind_at(text, pos) != Some(ValueKind::Object) {
        return Err(ApiError::NotAnObject);
    }
    let f = collect_by(&mut at(text, pos), &REPORT_KEYS, report_key)?;
    report_from(text, f, symbols, recv_ns, out)
}

/// The order event of an `executionReport` whose keys are at `f`.
#[inline]
fn report_from(
    text: &[u8],
    f: [Option<usize>; 16],
    symbols: &SymbolTable,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<usize, ApiError> {
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

pub(super) fn text_of<'a: 'b, 'b>(
    buf: &'a [u8],
    pos: usize,
    field: &'static str,
    scratch: &'b mut [u8; 64],
) -> Result<&'b [u8], ApiError> {
    text(str_at(buf, pos, field)?, scratch, field)
}

/// `x` of an `executionReport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExecType {
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
