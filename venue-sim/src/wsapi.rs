//! Binance spot's WebSocket API, the part the simulator speaks: request envelopes, the
//! parameters of `order.place`, `order.cancel`, `openOrders.status`, `order.status`,
//! `allOrders` and `myTrades`, and the replies and `executionReport` events written the way the venue writes
//! them (by hand, so keys keep Binance's order).
//!
//! Requests are `{"id":..,"method":"order.place","params":{..}}` (a `v3/` prefix on the method
//! is accepted); replies `{"id":..,"status":200,"result":{..}}` or
//! `{"id":..,"status":400,"error":{"code":-1102,"msg":".."}}`; events
//! `{"event":{"e":"executionReport",..}}`. `apiKey`, `signature` and `timestamp` must be present
//! and well-formed here; keys, signatures and the `recvWindow` are verified by
//! [`super::auth`] (strict, the default).

use super::history::{TradeFilter, TradeRecord};
use super::matching::{ClientId, Exec, ExecType, OrdType, Order, Status, Tif, MAX_CLIENT_ID};
use engine::event::Side;
use engine::fixed::{parse_fixed, FixedError, Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::Write as _;

/// The path of the dedicated order-API endpoint, as on Binance (`wss://ws-api.binance.com/ws-api/v3`).
pub(crate) const API_PATH: &str = "/ws-api/v3";

/// Largest `recvWindow` Binance accepts, ms.
const MAX_RECV_WINDOW: u64 = 60_000;
/// `myTrades`: trades returned without a `limit`.
pub(crate) const TRADES_DEFAULT_LIMIT: usize = 500;
/// `myTrades`: the largest `limit`.
pub(crate) const TRADES_MAX_LIMIT: usize = 1000;
/// `myTrades`: the longest time range, ms (24 hours).
const TRADES_MAX_RANGE_MS: u64 = 24 * 60 * 60 * 1000;

/// Parameters of `order.place` the simulator does not implement; a request using one is refused.
const UNSUPPORTED: [&str; 8] = [
    "quoteOrderQty",
    "stopPrice",
    "trailingDelta",
    "icebergQty",
    "pegPriceType",
    "pegOffsetValue",
    "pegOffsetType",
    "cancelRestrictions",
];

/// An error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP-like status of the reply.
    pub(crate) status: u16,
    /// Binance's error code.
    pub(crate) code: i64,
    /// Its message.
    pub(crate) msg: String,
}

impl ApiError {
    /// A `400` error.
    pub(crate) fn new(code: i64, msg: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code,
            msg: msg.into(),
        }
    }

    fn mandatory(name: &str) -> ApiError {
        ApiError::new(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }

    fn illegal(name: &str, range: &str) -> ApiError {
        ApiError::new(
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is '{range}'."),
        )
    }

    fn not_required(name: &str) -> ApiError {
        ApiError::new(-1106, format!("Parameter '{name}' sent when not required."))
    }
}

/// The methods answered here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `order.place`.
    Place,
    /// `order.cancel`.
    Cancel,
    /// `openOrders.status`.
    OpenOrders,
    /// `order.status`.
    OrderStatus,
    /// `myTrades`.
    MyTrades,
    /// `allOrders`: the account's orders on one symbol, open and finished.
    AllOrders,
    /// `ping` (API path only).
    Ping,
    /// `time` (API path only).
    Time,
    /// `userDataStream.subscribe`: needs an authenticated session (strict).
    UserStreamSubscribe,
    /// `userDataStream.subscribe.signature`: signed, any session.
    UserStreamSubscribeSignature,
    /// `userDataStream.unsubscribe`: accepted.
    UserStreamUnsubscribe,
    /// `session.logon`: later requests on the connection may leave out `apiKey` and `signature`.
    Logon,
    /// `session.logout`: they may not any more.
    Logout,
}

impl Method {
    /// The method of a name; `api_path`: also the general ones (`ping`, `time`).
    fn of(name: &str, api_path: bool) -> Option<Method> {
        let name = name.strip_prefix("v3/").unwrap_or(name);
        Some(match name {
            "order.place" => Method::Place,
            "order.cancel" => Method::Cancel,
            "openOrders.status" => Method::OpenOrders,
            "order.status" => Method::OrderStatus,
            "myTrades" => Method::MyTrades,
            "allOrders" => Method::AllOrders,
            "userDataStream.subscribe" => Method::UserStreamSubscribe,
            "userDataStream.subscribe.signature" => Method::UserStreamSubscribeSignature,
            "userDataStream.unsubscribe" => Method::UserStreamUnsubscribe,
            "session.logon" => Method::Logon,
            "session.logout" => Method::Logout,
            "ping" if api_path => Method::Ping,
            "time" if api_path => Method::Time,
            _ => return None,
        })
    }
}

/// An order-API request whose envelope is valid.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Envelope {
    /// The request id as JSON text, echoed in the reply.
    pub(crate) id: String,
    /// The method.
    pub(crate) method: Method,
    /// The parameters (empty when none were sent).
    pub(crate) params: Map<String, Value>,
}

/// What a client message is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Classified {
    /// Not an order-API request: the market-data protocol handles it (`SUBSCRIBE` and the rest).
    NotApi,
    /// An order-API request that cannot be read: answer this error.
    Bad {
        /// The request id as JSON text (`null` when unknown).
        id: String,
        /// The error.
        err: ApiError,
    },
    /// A request.
    Request(Envelope),
}

/// Sorts out one client message. On the API path everything is an API request; elsewhere only
/// messages whose method is an order-API method are.
pub(crate) fn classify(text: &[u8], api_path: bool) -> Classified {
    let bad = |id: &str, err| {
        if api_path {
            Classified::Bad {
                id: id.to_string(),
                err,
            }
        } else {
            Classified::NotApi
        }
    };
    let v: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(_) => return bad("null", ApiError::new(-1135, "Invalid JSON Request")),
    };
    let Value::Object(mut obj) = v else {
        return bad("null", ApiError::new(-1135, "Invalid JSON Request"));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => "null".to_string(),
        Some(v @ Value::Number(n)) if n.is_i64() || n.is_u64() => v.to_string(),
        Some(v @ Value::String(s)) if s.len() <= 64 => v.to_string(),
        Some(_) => {
            return bad(
                "null",
                ApiError::illegal("id", "integer, string of at most 64 characters, or null"),
            )
        }
    };
    let method = match obj.get("method") {
        Some(Value::String(m)) => match Method::of(m, api_path) {
            Some(m) => m,
            None => {
                return bad(
                    &id,
                    ApiError::new(
                        -1020,
                        format!("Unsupported method '{}'.", m.replace('\'', "")),
                    ),
                )
            }
        },
        _ => return bad(&id, ApiError::mandatory("method")),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Classified::Bad {
                id,
                err: ApiError::new(-1130, "Data sent for parameter 'params' is not valid."),
            }
        }
    };
    Classified::Request(Envelope { id, method, params })
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// A parameter as text: strings as they are, numbers as written; empty and `null` as absent.
fn text<'a>(p: &'a Map<String, Value>, name: &str) -> Result<Option<Cow<'a, str>>, ApiError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(Cow::Borrowed(s))),
        Some(Value::Number(n)) => Ok(Some(Cow::Owned(n.to_string()))),
        Some(_) => Err(ApiError::illegal(name, "a string or a number")),
    }
}

fn required<'a>(p: &'a Map<String, Value>, name: &str) -> Result<Cow<'a, str>, ApiError> {
    text(p, name)?.ok_or_else(|| ApiError::mandatory(name))
}

/// A positive decimal of at most 8 fractional digits.
fn decimal(name: &str, s: &str) -> Result<i64, ApiError> {
    const RANGE: &str = "^([0-9]{1,20})(\\.[0-9]{1,20})?$";
    match parse_fixed(s.as_bytes()) {
        Ok(v) if v >= 0 && !s.starts_with('-') => Ok(v),
        Ok(_) => Err(ApiError::illegal(name, RANGE)),
        Err(FixedError::TooPrecise) => Err(ApiError::new(
            -1111,
            format!("Parameter '{name}' has too much precision."),
        )),
        Err(FixedError::Overflow) => Err(ApiError::new(
            -1108,
            format!("Parameter '{name}' overflowed."),
        )),
        Err(_) => Err(ApiError::illegal(name, RANGE)),
    }
}

fn unsigned(name: &str, s: &str) -> Result<u64, ApiError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::illegal(name, "^[0-9]{1,20}$"));
    }
    s.parse()
        .map_err(|_| ApiError::new(-1108, format!("Parameter '{name}' overflowed.")))
}

fn client_id(name: &str, s: &str) -> Result<ClientId, ApiError> {
    ClientId::new(s).ok_or_else(|| ApiError::illegal(name, "^[\\.A-Z\\:/a-z0-9_-]{1,36}$"))
}

fn symbol(p: &Map<String, Value>, symbols: &SymbolTable) -> Result<SymbolId, ApiError> {
    let s = required(p, "symbol")?;
    symbols
        .lookup(s.as_bytes())
        .ok_or_else(|| ApiError::new(-1121, "Invalid symbol."))
}

/// `apiKey`, `signature` and `timestamp` present (any signature is accepted), `recvWindow`
/// in range. Returns the API key.
fn auth(p: &Map<String, Value>) -> Result<String, ApiError> {
    let key = required(p, "apiKey")?;
    if key.len() > 128 {
        return Err(ApiError::new(-2014, "API-key format invalid."));
    }
    required(p, "signature")?;
    unsigned("timestamp", &required(p, "timestamp")?)?;
    if let Some(w) = text(p, "recvWindow")? {
        let whole = w.split('.').next().unwrap_or("");
        if unsigned("recvWindow", whole)? > MAX_RECV_WINDOW {
            return Err(ApiError::new(
                -1102,
                format!("'recvWindow' contains unexpected value. Cannot be greater than '{MAX_RECV_WINDOW}'."),
            ));
        }
    }
    Ok(key.into_owned())
}

impl Method {
    /// True for the methods that carry `apiKey`, `timestamp` and `signature` (unless the
    /// session is authenticated).
    pub(crate) fn signed(self) -> bool {
        !matches!(
            self,
            Method::Ping
                | Method::Time
                | Method::UserStreamSubscribe
                | Method::UserStreamUnsubscribe
                | Method::Logout
        )
    }
}

/// Checks `userDataStream.subscribe.signature`'s parameters (`apiKey`, `signature`,
/// `timestamp`); returns the key.
pub(crate) fn parse_subscribe_signature(p: &Map<String, Value>) -> Result<String, ApiError> {
    auth(p)
}

/// Checks `session.logon`'s parameters (`apiKey`, `signature`, `timestamp`); returns the key.
pub(crate) fn parse_logon(p: &Map<String, Value>) -> Result<String, ApiError> {
    auth(p)
}

/// The result of `session.logon` (`api_key` given) and `session.logout`, as Binance writes it.
pub(crate) fn session_result(api_key: Option<&str>, connected_ms: u64, now_ms: u64) -> String {
    let (key, since) = match api_key {
        Some(k) => (
            serde_json::to_string(k).unwrap_or_else(|_| "null".into()),
            now_ms.to_string(),
        ),
        None => ("null".to_string(), "null".to_string()),
    };
    format!(
        "{{\"apiKey\":{key},\"authorizedSince\":{since},\"connectedSince\":{connected_ms},\"returnRateLimits\":false,\"serverTime\":{now_ms},\"userDataStream\":false}}"
    )
}

/// Which reply `order.place` gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RespType {
    /// Ids and time only.
    Ack,
    /// The order's state.
    Result,
    /// The state and the fills.
    Full,
}

/// A valid `order.place`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlaceReq {
    pub(crate) symbol: SymbolId,
    pub(crate) side: Side,
    pub(crate) ord_type: OrdType,
    pub(crate) tif: Tif,
    pub(crate) price: Price,
    pub(crate) qty: Qty,
    pub(crate) client_id: Option<ClientId>,
    pub(crate) resp: RespType,
    pub(crate) api_key: String,
}

/// Checks the parameters of `order.place`.
pub(crate) fn parse_place(
    p: &Map<String, Value>,
    symbols: &SymbolTable,
) -> Result<PlaceReq, ApiError> {
    let symbol = symbol(p, symbols)?;
    let side = match &*required(p, "side")? {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(ApiError::new(-1117, "Invalid side.")),
    };
    let ord_type = match &*required(p, "type")? {
        "LIMIT" => OrdType::Limit,
        "LIMIT_MAKER" => OrdType::LimitMaker,
        "MARKET" => OrdType::Market,
        _ => {
            return Err(ApiError::new(
                -1116,
                "Invalid orderType. (The simulator supports LIMIT, LIMIT_MAKER and MARKET.)",
            ))
        }
    };
    for name in UNSUPPORTED {
        if text(p, name)?.is_some() {
            return Err(ApiError::new(
                -1020,
                format!("This operation is not supported: parameter '{name}'."),
            ));
        }
    }
    let tif_text = text(p, "timeInForce")?;
    let tif = match (ord_type, tif_text.as_deref()) {
        (OrdType::Limit, None) => return Err(ApiError::mandatory("timeInForce")),
        (OrdType::Limit, Some("GTC")) => Tif::Gtc,
        (OrdType::Limit, Some("IOC")) => Tif::Ioc,
        (OrdType::Limit, Some("FOK")) => Tif::Fok,
        (OrdType::Limit, Some(_)) => return Err(ApiError::new(-1115, "Invalid timeInForce.")),
        (_, Some(_)) => return Err(ApiError::not_required("timeInForce")),
        (_, None) => Tif::Gtc,
    };
    let qty = match text(p, "quantity")? {
        Some(q) => Qty(decimal("quantity", &q)?),
        None if ord_type == OrdType::Market => {
            return Err(ApiError::new(
                -1102,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
            ))
        }
        None => return Err(ApiError::mandatory("quantity")),
    };
    let price = match (ord_type, text(p, "price")?) {
        (OrdType::Market, Some(_)) => return Err(ApiError::not_required("price")),
        (OrdType::Market, None) => Price::ZERO,
        (_, Some(s)) => Price(decimal("price", &s)?),
        (_, None) => return Err(ApiError::mandatory("price")),
    };
    // The price filter exchangeInfo publishes: a limit price on the tick. (The lot step is not
    // enforced: the generated feed's quantities are finer, and tests trade against them.)
    if ord_type != OrdType::Market
        && (price <= Price::ZERO || price.0 % super::rest::TICK_UNITS != 0)
    {
        return Err(ApiError::new(-1013, "Filter failure: PRICE_FILTER"));
    }
    if qty <= Qty::ZERO {
        return Err(ApiError::new(-1013, "Filter failure: LOT_SIZE"));
    }
    let client_id = match p.get("newClientOrderId") {
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ApiError::new(-1118, "New client order ID was empty."))
        }
        _ => match text(p, "newClientOrderId")? {
            Some(s) => Some(client_id("newClientOrderId", &s)?),
            None => None,
        },
    };
    let resp = match text(p, "newOrderRespType")?.as_deref() {
        None | Some("FULL") => RespType::Full,
        Some("RESULT") => RespType::Result,
        Some("ACK") => RespType::Ack,
        Some(_) => return Err(ApiError::illegal("newOrderRespType", "ACK, RESULT, FULL")),
    };
    let api_key = auth(p)?;
    Ok(PlaceReq {
        symbol,
        side,
        ord_type,
        tif,
        price,
        qty,
        client_id,
        resp,
        api_key,
    })
}

/// A valid `order.cancel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CancelReq {
    pub(crate) symbol: SymbolId,
    pub(crate) order_id: Option<u64>,
    pub(crate) orig_client_id: Option<ClientId>,
    pub(crate) new_client_id: Option<ClientId>,
    pub(crate) api_key: String,
}

/// `orderId` and/or `origClientOrderId` (at least one), as `order.cancel` and `order.status`
/// name an order.
fn order_ref(p: &Map<String, Value>) -> Result<(Option<u64>, Option<ClientId>), ApiError> {
    let order_id = match text(p, "orderId")? {
        Some(s) => Some(unsigned("orderId", &s)?),
        None => None,
    };
    let orig_client_id = match text(p, "origClientOrderId")? {
        Some(s) => Some(client_id("origClientOrderId", &s)?),
        None => None,
    };
    if order_id.is_none() && orig_client_id.is_none() {
        return Err(ApiError::new(
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        ));
    }
    Ok((order_id, orig_client_id))
}

/// Checks the parameters of `order.cancel`.
pub(crate) fn parse_cancel(
    p: &Map<String, Value>,
    symbols: &SymbolTable,
) -> Result<CancelReq, ApiError> {
    let symbol = symbol(p, symbols)?;
    let (order_id, orig_client_id) = order_ref(p)?;
    let new_client_id = match text(p, "newClientOrderId")? {
        Some(s) => Some(client_id("newClientOrderId", &s)?),
        None => None,
    };
    if text(p, "cancelRestrictions")?.is_some() {
        return Err(ApiError::new(
            -1020,
            "This operation is not supported: parameter 'cancelRestrictions'.",
        ));
    }
    let api_key = auth(p)?;
    Ok(CancelReq {
        symbol,
        order_id,
        orig_client_id,
        new_client_id,
        api_key,
    })
}

/// A valid `openOrders.status`: the symbol, if one was named.
pub(crate) fn parse_open_orders(
    p: &Map<String, Value>,
    symbols: &SymbolTable,
) -> Result<(Option<SymbolId>, String), ApiError> {
    let symbol = match text(p, "symbol")? {
        Some(s) => Some(
            symbols
                .lookup(s.as_bytes())
                .ok_or_else(|| ApiError::new(-1121, "Invalid symbol."))?,
        ),
        None => None,
    };
    Ok((symbol, auth(p)?))
}

/// A valid `order.status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusReq {
    pub(crate) symbol: SymbolId,
    pub(crate) order_id: Option<u64>,
    pub(crate) orig_client_id: Option<ClientId>,
    pub(crate) api_key: String,
}

/// Checks the parameters of `order.status`: `symbol`, `orderId` and/or `origClientOrderId`
/// (with both, the order found by id must carry that client id), and the authentication ones.
pub(crate) fn parse_order_status(
    p: &Map<String, Value>,
    symbols: &SymbolTable,
) -> Result<StatusReq, ApiError> {
    let symbol = symbol(p, symbols)?;
    let (order_id, orig_client_id) = order_ref(p)?;
    let api_key = auth(p)?;
    Ok(StatusReq {
        symbol,
        order_id,
        orig_client_id,
        api_key,
    })
}

/// A valid `allOrders`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AllOrdersReq {
    pub(crate) symbol: SymbolId,
    /// Orders with an id at or above this one, oldest first (else the most recent).
    pub(crate) from_order_id: Option<u64>,
    /// Orders created in `[start, end]`, ms.
    pub(crate) start_ms: Option<u64>,
    pub(crate) end_ms: Option<u64>,
    pub(crate) limit: usize,
    pub(crate) api_key: String,
}

/// Checks the parameters of `allOrders`: `symbol`, optional `orderId` (orders with an id at or
/// above it, oldest first; without it the most recent ones), `startTime` and `endTime` (at most
/// 24 hours apart) and `limit` (default 500, at most 1000), and the authentication ones, as
/// Binance documents them.
pub(crate) fn parse_all_orders(
    p: &Map<String, Value>,
    symbols: &SymbolTable,
) -> Result<AllOrdersReq, ApiError> {
    let symbol = symbol(p, symbols)?;
    let opt = |name: &str| -> Result<Option<u64>, ApiError> {
        match text(p, name)? {
            Some(s) => Ok(Some(unsigned(name, &s)?)),
            None => Ok(None),
        }
    };
    let from_order_id = opt("orderId")?;
    let start_ms = opt("startTime")?;
    let end_ms = opt("endTime")?;
    let limit = match opt("limit")? {
        None => TRADES_DEFAULT_LIMIT,
        Some(n) if (1..=TRADES_MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::new(
                -1130,
                "Data sent for parameter 'limit' is not valid.",
            ))
        }
    };
    if let (Some(s), Some(e)) = (start_ms, end_ms) {
        if e.saturating_sub(s) > TRADES_MAX_RANGE_MS {
            return Err(ApiError::new(
                -1127,
                "More than 24 hours between startTime and endTime.",
            ));
        }
    }
    let api_key = auth(p)?;
    Ok(AllOrdersReq {
        symbol,
        from_order_id,
        start_ms,
        end_ms,
        limit,
        api_key,
    })
}

/// A valid `myTrades`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TradesReq {
    pub(crate) symbol: SymbolId,
    pub(crate) filter: TradeFilter,
    pub(crate) api_key: String,
}

/// Checks the parameters of `myTrades`: `symbol`, optional `orderId`, `startTime`, `endTime`,
/// `fromId` and `limit` (default 500, at most 1000), and the authentication ones. As Binance
/// documents, `fromId` and `orderId` do not go with a time range, and a range is at most 24
/// hours: one end given alone stands for the 24 hours after (`startTime`) or before it.
pub(crate) fn parse_my_trades(
    p: &Map<String, Value>,
    symbols: &SymbolTable,
) -> Result<TradesReq, ApiError> {
    let symbol = symbol(p, symbols)?;
    let opt = |name: &str| -> Result<Option<u64>, ApiError> {
        match text(p, name)? {
            Some(s) => Ok(Some(unsigned(name, &s)?)),
            None => Ok(None),
        }
    };
    let order_id = opt("orderId")?;
    let start = opt("startTime")?;
    let end = opt("endTime")?;
    let from_id = opt("fromId")?;
    let limit = match opt("limit")? {
        None => TRADES_DEFAULT_LIMIT,
        Some(n) if (1..=TRADES_MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::new(
                -1130,
                "Data sent for parameter 'limit' is not valid.",
            ))
        }
    };
    let timed = start.is_some() || end.is_some();
    if timed && (from_id.is_some() || order_id.is_some()) {
        return Err(ApiError::new(
            -1128,
            "Combination of optional parameters invalid.",
        ));
    }
    let (start_ms, end_ms) = match (start, end) {
        (Some(s), Some(e)) if e.saturating_sub(s) > TRADES_MAX_RANGE_MS => {
            return Err(ApiError::new(
                -1127,
                "More than 24 hours between startTime and endTime.",
            ))
        }
        (Some(s), None) => (Some(s), Some(s.saturating_add(TRADES_MAX_RANGE_MS))),
        (None, Some(e)) => (Some(e.saturating_sub(TRADES_MAX_RANGE_MS)), Some(e)),
        (s, e) => (s, e),
    };
    let api_key = auth(p)?;
    Ok(TradesReq {
        symbol,
        filter: TradeFilter {
            order_id,
            start_ms,
            end_ms,
            from_id,
            limit,
        },
        api_key,
    })
}

// ---------------------------------------------------------------------------------------------
// Replies and events

/// Base and quote asset of a symbol: the longest known quote suffix, else half and half (as
/// `exchangeInfo` names them).
pub(crate) fn split_assets(symbol: &str) -> (&str, &str) {
    const QUOTES: [&str; 12] = [
        "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY",
    ];
    for q in QUOTES {
        if let Some(base) = symbol.strip_suffix(q) {
            if !base.is_empty() {
                return (base, q);
            }
        }
    }
    symbol.split_at(symbol.len() / 2)
}

/// A symbol's names, for replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) symbol: String,
    pub(crate) base: String,
    pub(crate) quote: String,
}

impl Names {
    pub(crate) fn of(symbol: &str) -> Names {
        let (b, q) = split_assets(symbol);
        Names {
            symbol: symbol.to_string(),
            base: b.to_string(),
            quote: q.to_string(),
        }
    }

    /// The asset a fill's commission is charged in (the one received).
    pub(crate) fn fee_asset(&self, side: Side) -> &str {
        match side {
            Side::Buy => &self.base,
            Side::Sell => &self.quote,
        }
    }
}

/// 1e-8 units with eight decimals, as Binance writes prices and quantities.
pub(crate) fn push_fixed8(out: &mut String, units: i64) {
    if units < 0 {
        out.push('-');
    }
    let u = units.unsigned_abs();
    let _ = write!(out, "{}.{:08}", u / 100_000_000, u % 100_000_000);
}

/// A string that needs no escaping (symbols, assets and client ids: their characters are
/// restricted).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    out.push_str(s);
    out.push('"');
}

fn push_field_fixed(out: &mut String, key: &str, units: i64) {
    let _ = write!(out, ",\"{key}\":\"");
    push_fixed8(out, units);
    out.push('"');
}

/// `{"id":..,"status":200,"result":<result>}`.
pub(crate) fn ok_reply(id: &str, result: &str) -> String {
    format!("{{\"id\":{id},\"status\":200,\"result\":{result}}}")
}

/// `{"id":..,"status":400,"error":{"code":..,"msg":".."}}`.
pub(crate) fn err_reply(id: &str, e: &ApiError) -> String {
    let msg = serde_json::to_string(&e.msg).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"id\":{id},\"status\":{},\"error\":{{\"code\":{},\"msg\":{msg}}}}}",
        e.status, e.code
    )
}

pub(crate) fn side_str(s: Side) -> &'static str {
    match s {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

fn type_str(t: OrdType) -> &'static str {
    match t {
        OrdType::Limit => "LIMIT",
        OrdType::LimitMaker => "LIMIT_MAKER",
        OrdType::Market => "MARKET",
    }
}

fn tif_str(o: &Order) -> &'static str {
    match (o.ord_type, o.tif) {
        (OrdType::Limit, Tif::Ioc) => "IOC",
        (OrdType::Limit, Tif::Fok) => "FOK",
        _ => "GTC",
    }
}

pub(crate) fn status_str(s: Status) -> &'static str {
    match s {
        Status::New => "NEW",
        Status::PartiallyFilled => "PARTIALLY_FILLED",
        Status::Filled => "FILLED",
        Status::Canceled => "CANCELED",
        Status::Expired => "EXPIRED",
        Status::Rejected => "REJECTED",
    }
}

fn exec_str(x: ExecType) -> &'static str {
    match x {
        ExecType::New => "NEW",
        ExecType::Trade => "TRADE",
        ExecType::Canceled => "CANCELED",
        ExecType::Expired => "EXPIRED",
        ExecType::Rejected => "REJECTED",
    }
}

fn reject_str(r: Option<super::matching::Reject>) -> &'static str {
    use super::matching::Reject;
    match r {
        None => "NONE",
        Some(Reject::DuplicateId) => "DUPLICATE_ORDER",
        Some(Reject::NoLiquidity) => "NO_LIQUIDITY",
        Some(Reject::TooManyOrders) => "MAX_NUM_ORDERS",
        Some(Reject::WouldTake) => "ORDER_WOULD_IMMEDIATELY_MATCH",
    }
}

/// The error a refused order gets (code -2010, as the matching engine answers).
pub(crate) fn reject_error(r: super::matching::Reject) -> ApiError {
    use super::matching::Reject;
    let msg = match r {
        Reject::DuplicateId => "Duplicate order sent.",
        Reject::NoLiquidity => "Market order rejected: no liquidity on the other side of the book.",
        Reject::TooManyOrders => "Filter failure: MAX_NUM_ORDERS",
        Reject::WouldTake => "Order would immediately match and take.",
    };
    ApiError::new(-2010, msg)
}

/// The order's common fields, from `price` to `side` (RESULT and status replies).
fn push_order_state(out: &mut String, o: &Order) {
    push_field_fixed(out, "price", o.price.0);
    push_field_fixed(out, "origQty", o.qty.0);
    push_field_fixed(out, "executedQty", o.filled.0);
    push_field_fixed(out, "origQuoteOrderQty", 0);
    push_field_fixed(out, "cummulativeQuoteQty", o.quote);
    let _ = write!(
        out,
        ",\"status\":\"{}\",\"timeInForce\":\"{}\",\"type\":\"{}\",\"side\":\"{}\"",
        status_str(o.status),
        tif_str(o),
        type_str(o.ord_type),
        side_str(o.side)
    );
}

/// The `result` of `order.place`: `o` is the order's final state, `fills` its trades.
pub(crate) fn place_result<'a>(
    names: &Names,
    o: &Order,
    resp: RespType,
    fills: impl Iterator<Item = &'a Exec>,
    transact_ms: u64,
) -> String {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "{{\"symbol\":\"{}\",\"orderId\":{},\"orderListId\":-1,\"clientOrderId\":",
        names.symbol, o.order_id
    );
    push_str(&mut out, o.client_id.as_str());
    let _ = write!(out, ",\"transactTime\":{transact_ms}");
    if resp != RespType::Ack {
        push_order_state(&mut out, o);
        let _ = write!(out, ",\"workingTime\":{transact_ms}");
        if resp == RespType::Full {
            out.push_str(",\"fills\":[");
            for (i, f) in fills.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                out.push_str("\"price\":\"");
                push_fixed8(&mut out, f.last_price.0);
                out.push_str("\",\"qty\":\"");
                push_fixed8(&mut out, f.last_qty.0);
                out.push_str("\",\"commission\":\"");
                push_fixed8(&mut out, f.commission);
                let _ = write!(
                    out,
                    "\",\"commissionAsset\":\"{}\",\"tradeId\":{}}}",
                    names.fee_asset(o.side),
                    f.trade_id.unwrap_or(0)
                );
            }
            out.push(']');
        }
        out.push_str(",\"selfTradePreventionMode\":\"NONE\"");
    }
    out.push('}');
    out
}

/// The `result` of `order.cancel`.
pub(crate) fn cancel_result(names: &Names, o: &Order, cancel_id: &ClientId, t_ms: u64) -> String {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "{{\"symbol\":\"{}\",\"origClientOrderId\":",
        names.symbol
    );
    push_str(&mut out, o.client_id.as_str());
    let _ = write!(
        out,
        ",\"orderId\":{},\"orderListId\":-1,\"clientOrderId\":",
        o.order_id
    );
    push_str(&mut out, cancel_id.as_str());
    let _ = write!(out, ",\"transactTime\":{t_ms}");
    push_order_state(&mut out, o);
    out.push_str(",\"selfTradePreventionMode\":\"NONE\"}");
    out
}

/// One order as `order.status` reports it, keys in Binance's documented order (each entry of
/// `openOrders.status` is the same). Every order type the simulator takes works as soon as it
/// is accepted: `isWorking` is true and `workingTime` is `time`.
pub(crate) fn push_order_status(out: &mut String, names: &Names, o: &Order) {
    let _ = write!(
        out,
        "{{\"symbol\":\"{}\",\"orderId\":{},\"orderListId\":-1,\"clientOrderId\":",
        names.symbol, o.order_id
    );
    push_str(out, o.client_id.as_str());
    push_field_fixed(out, "price", o.price.0);
    push_field_fixed(out, "origQty", o.qty.0);
    push_field_fixed(out, "executedQty", o.filled.0);
    push_field_fixed(out, "cummulativeQuoteQty", o.quote);
    let _ = write!(
        out,
        ",\"status\":\"{}\",\"timeInForce\":\"{}\",\"type\":\"{}\",\"side\":\"{}\"",
        status_str(o.status),
        tif_str(o),
        type_str(o.ord_type),
        side_str(o.side)
    );
    push_field_fixed(out, "stopPrice", 0);
    push_field_fixed(out, "icebergQty", 0);
    let _ = write!(
        out,
        ",\"time\":{},\"updateTime\":{},\"isWorking\":true,\"workingTime\":{}",
        o.created_ms, o.updated_ms, o.created_ms
    );
    push_field_fixed(out, "origQuoteOrderQty", 0);
    out.push_str(",\"selfTradePreventionMode\":\"NONE\"}");
}

/// One fill as `myTrades` reports it, keys in Binance's documented order. `id` is the trade id
/// the fill's execution report carried in `t`; `commission` and `commissionAsset` are its `n`
/// and `N`.
pub(crate) fn push_my_trade(out: &mut String, names: &Names, t: &TradeRecord) {
    let _ = write!(
        out,
        "{{\"symbol\":\"{}\",\"id\":{},\"orderId\":{},\"orderListId\":-1",
        names.symbol, t.trade_id, t.order_id
    );
    push_field_fixed(out, "price", t.price.0);
    push_field_fixed(out, "qty", t.qty.0);
    push_field_fixed(out, "quoteQty", t.quote);
    push_field_fixed(out, "commission", t.commission);
    let _ = write!(
        out,
        ",\"commissionAsset\":\"{}\",\"time\":{},\"isBuyer\":{},\"isMaker\":{},\
         \"isBestMatch\":true}}",
        names.fee_asset(t.side),
        t.time_ms,
        t.side == Side::Buy,
        t.maker
    );
}

/// `{"event":{"e":"executionReport",..}}` for one execution.
pub(crate) fn execution_report(names: &Names, e: &Exec) -> String {
    let o = &e.order;
    let mut out = String::with_capacity(640);
    let _ = write!(
        out,
        "{{\"event\":{{\"e\":\"executionReport\",\"E\":{},\"s\":\"{}\",\"c\":",
        e.time_ms, names.symbol
    );
    match &e.cancel_id {
        Some(c) => push_str(&mut out, c.as_str()),
        None => push_str(&mut out, o.client_id.as_str()),
    }
    let _ = write!(
        out,
        ",\"S\":\"{}\",\"o\":\"{}\",\"f\":\"{}\"",
        side_str(o.side),
        type_str(o.ord_type),
        tif_str(o)
    );
    push_field_fixed(&mut out, "q", o.qty.0);
    push_field_fixed(&mut out, "p", o.price.0);
    push_field_fixed(&mut out, "P", 0);
    push_field_fixed(&mut out, "F", 0);
    out.push_str(",\"g\":-1,\"C\":");
    match &e.cancel_id {
        Some(_) => push_str(&mut out, o.client_id.as_str()),
        None => push_str(&mut out, ""),
    }
    let _ = write!(
        out,
        ",\"x\":\"{}\",\"X\":\"{}\",\"r\":\"{}\",\"i\":{}",
        exec_str(e.exec),
        status_str(o.status),
        reject_str(e.reject),
        o.order_id
    );
    push_field_fixed(&mut out, "l", e.last_qty.0);
    push_field_fixed(&mut out, "z", o.filled.0);
    push_field_fixed(&mut out, "L", e.last_price.0);
    if e.exec == ExecType::Trade {
        push_field_fixed(&mut out, "n", e.commission);
        let _ = write!(out, ",\"N\":\"{}\"", names.fee_asset(o.side));
    } else {
        out.push_str(",\"n\":\"0\",\"N\":null");
    }
    let working = o.is_working() && e.exec != ExecType::Rejected;
    let _ = write!(
        out,
        ",\"T\":{},\"t\":{},\"I\":{},\"w\":{},\"m\":{},\"M\":false,\"O\":{}",
        e.time_ms,
        e.trade_id.map_or(-1, |t| t as i64),
        o.order_id,
        working,
        e.maker,
        o.created_ms
    );
    push_field_fixed(&mut out, "Z", o.quote);
    push_field_fixed(&mut out, "Y", e.last_quote);
    push_field_fixed(&mut out, "Q", 0);
    if working {
        let _ = write!(out, ",\"W\":{}", o.created_ms);
    }
    out.push_str(",\"V\":\"NONE\"}}");
    out
}

/// The client id the simulator gives an order or cancel sent without one.
pub(crate) fn generated_id(prefix: &str, n: u64) -> ClientId {
    let s = format!("{prefix}{n}");
    debug_assert!(s.len() <= MAX_CLIENT_ID);
    ClientId::new(&s).expect("generated ids are short and use valid characters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{FeedDepth, MatchBook, NoFeed};
    use engine::book::Level;
    use engine::event::BookSide;

    fn symbols() -> SymbolTable {
        let mut t = SymbolTable::new();
        t.intern("BTCUSDT").unwrap();
        t
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn place(extra: Value) -> Result<PlaceReq, ApiError> {
        let mut p = params(serde_json::json!({
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "price": "100.5", "quantity": "0.01", "apiKey": "k", "signature": "s",
            "timestamp": 1_700_000_000_000u64
        }));
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                p.remove(k);
            } else {
                p.insert(k.clone(), v.clone());
            }
        }
        parse_place(&p, &symbols())
    }

    fn code(r: Result<PlaceReq, ApiError>) -> i64 {
        r.unwrap_err().code
    }

    #[test]
    fn envelopes() {
        let r = classify(
            br#"{"id":7,"method":"order.place","params":{"a":1}}"#,
            false,
        );
        let Classified::Request(e) = r else {
            panic!("{r:?}")
        };
        assert_eq!((e.id.as_str(), e.method), ("7", Method::Place));
        assert_eq!(e.params["a"], 1);
        let r = classify(br#"{"id":"x-1","method":"v3/order.cancel"}"#, false);
        assert!(matches!(
            r,
            Classified::Request(Envelope {
                method: Method::Cancel,
                ..
            })
        ));
        // Market-data paths leave everything else to the stream protocol.
        assert_eq!(classify(b"not json", false), Classified::NotApi);
        assert_eq!(
            classify(br#"{"method":"SUBSCRIBE","id":1}"#, false),
            Classified::NotApi
        );
        assert_eq!(
            classify(br#"{"method":"ping","id":1}"#, false),
            Classified::NotApi
        );
        // The API path answers everything.
        let bad = |t: &[u8]| match classify(t, true) {
            Classified::Bad { id, err } => (id, err.code),
            r => panic!("{r:?}"),
        };
        assert_eq!(bad(b"not json"), ("null".into(), -1135));
        assert_eq!(bad(b"[1]"), ("null".into(), -1135));
        assert_eq!(
            bad(br#"{"id":3,"method":"SUBSCRIBE"}"#),
            ("3".into(), -1020)
        );
        assert_eq!(bad(br#"{"id":3}"#), ("3".into(), -1102));
        assert_eq!(
            bad(br#"{"id":[1],"method":"ping"}"#),
            ("null".into(), -1100)
        );
        assert_eq!(
            bad(br#"{"id":"a","method":"order.place","params":[1]}"#),
            ("\"a\"".into(), -1130)
        );
        assert!(matches!(
            classify(br#"{"id":null,"method":"time"}"#, true),
            Classified::Request(Envelope {
                method: Method::Time,
                ..
            })
        ));
    }

    #[test]
    fn place_parameters() {
        let ok = place(serde_json::json!({})).unwrap();
        assert_eq!(ok.price, Price(10_050_000_000));
        assert_eq!(
            (ok.tif, ok.resp, ok.client_id),
            (Tif::Gtc, RespType::Full, None)
        );
        let m = place(
            serde_json::json!({"type":"MARKET","timeInForce":null,"price":null,
            "newClientOrderId":"probe-42","newOrderRespType":"ACK","quantity":1}),
        )
        .unwrap();
        assert_eq!((m.ord_type, m.qty), (OrdType::Market, Qty(100_000_000)));
        assert_eq!(m.client_id.unwrap().as_str(), "probe-42");
        assert_eq!(m.resp, RespType::Ack);
        for (extra, c) in [
            (serde_json::json!({"symbol":null}), -1102),
            (serde_json::json!({"symbol":"NOPE"}), -1121),
            (serde_json::json!({"side":"UP"}), -1117),
            (serde_json::json!({"type":"STOP_LOSS"}), -1116),
            (serde_json::json!({"timeInForce":null}), -1102),
            (serde_json::json!({"timeInForce":"GTX"}), -1115),
            (serde_json::json!({"type":"MARKET"}), -1106),
            (
                serde_json::json!({"type":"MARKET","timeInForce":null}),
                -1106,
            ),
            (serde_json::json!({"price":null}), -1102),
            (serde_json::json!({"price":"1e5"}), -1100),
            (serde_json::json!({"price":"-1"}), -1100),
            (serde_json::json!({"price":"0.000000001"}), -1111),
            (serde_json::json!({"price":"0"}), -1013),
            (serde_json::json!({"quantity":"0"}), -1013),
            (serde_json::json!({"quantity":null}), -1102),
            (serde_json::json!({"quantity":true}), -1100),
            (serde_json::json!({"newClientOrderId":"has space"}), -1100),
            (serde_json::json!({"newClientOrderId":""}), -1118),
            (serde_json::json!({"newOrderRespType":"ALL"}), -1100),
            (serde_json::json!({"icebergQty":"1"}), -1020),
            (serde_json::json!({"apiKey":null}), -1102),
            (serde_json::json!({"signature":null}), -1102),
            (serde_json::json!({"timestamp":null}), -1102),
            (serde_json::json!({"timestamp":"soon"}), -1100),
            (serde_json::json!({"recvWindow":70000}), -1102),
        ] {
            assert_eq!(code(place(extra.clone())), c, "{extra}");
        }
        assert!(place(serde_json::json!({"recvWindow":"5000.5"})).is_ok());
    }

    #[test]
    fn cancel_and_open_orders_parameters() {
        let s = symbols();
        let p = params(
            serde_json::json!({"symbol":"BTCUSDT","orderId":12,"apiKey":"k",
            "signature":"s","timestamp":1}),
        );
        let c = parse_cancel(&p, &s).unwrap();
        assert_eq!((c.order_id, c.orig_client_id), (Some(12), None));
        let p = params(
            serde_json::json!({"symbol":"BTCUSDT","apiKey":"k","signature":"s",
            "timestamp":1}),
        );
        assert_eq!(parse_cancel(&p, &s).unwrap_err().code, -1102);
        let p = params(serde_json::json!({"apiKey":"k","signature":"s","timestamp":1}));
        assert_eq!(parse_open_orders(&p, &s).unwrap(), (None, "k".to_string()));
        let p = params(
            serde_json::json!({"symbol":"X","apiKey":"k","signature":"s",
            "timestamp":1}),
        );
        assert_eq!(parse_open_orders(&p, &s).unwrap_err().code, -1121);
    }

    /// `params` plus the authentication ones.
    fn signed(v: Value) -> Map<String, Value> {
        let mut p = params(v);
        for (k, v) in [
            ("apiKey", serde_json::json!("k")),
            ("signature", serde_json::json!("s")),
            ("timestamp", serde_json::json!(1)),
        ] {
            p.entry(k).or_insert(v);
        }
        p.retain(|_, v| !v.is_null());
        p
    }

    #[test]
    fn order_status_parameters() {
        let s = symbols();
        let r = parse_order_status(
            &signed(serde_json::json!({"symbol":"BTCUSDT","orderId":12})),
            &s,
        )
        .unwrap();
        assert_eq!(
            (r.order_id, r.orig_client_id, r.api_key.as_str()),
            (Some(12), None, "k")
        );
        let r = parse_order_status(
            &signed(
                serde_json::json!({"symbol":"BTCUSDT","orderId":"7","origClientOrderId":"tl-1"}),
            ),
            &s,
        )
        .unwrap();
        assert_eq!(
            (r.order_id, r.orig_client_id),
            (Some(7), ClientId::new("tl-1"))
        );
        for (p, code) in [
            (serde_json::json!({"orderId":1}), -1102),
            (serde_json::json!({"symbol":"NOPE","orderId":1}), -1121),
            (serde_json::json!({"symbol":"BTCUSDT"}), -1102),
            (serde_json::json!({"symbol":"BTCUSDT","orderId":"x"}), -1100),
            (
                serde_json::json!({"symbol":"BTCUSDT","origClientOrderId":"a b"}),
                -1100,
            ),
            (
                serde_json::json!({"symbol":"BTCUSDT","orderId":1,"apiKey":null}),
                -1102,
            ),
            (
                serde_json::json!({"symbol":"BTCUSDT","orderId":1,"signature":null}),
                -1102,
            ),
            (
                serde_json::json!({"symbol":"BTCUSDT","orderId":1,"recvWindow":60001}),
                -1102,
            ),
        ] {
            assert_eq!(
                parse_order_status(&signed(p.clone()), &s).unwrap_err().code,
                code,
                "{p}"
            );
        }
    }

    #[test]
    fn all_orders_parameters() {
        let syms = symbols();
        let ok = parse_all_orders(
            &signed(serde_json::json!({"symbol":"BTCUSDT","limit":1000})),
            &syms,
        )
        .unwrap();
        assert_eq!((ok.limit, ok.from_order_id), (1000, None));
        let ok = parse_all_orders(
            &signed(serde_json::json!({"symbol":"BTCUSDT","orderId":7})),
            &syms,
        )
        .unwrap();
        assert_eq!((ok.limit, ok.from_order_id), (500, Some(7)));
        let code = |v| parse_all_orders(&signed(v), &syms).unwrap_err().code;
        assert_eq!(code(serde_json::json!({})), -1102);
        assert_eq!(
            code(serde_json::json!({"symbol":"BTCUSDT","limit":1001})),
            -1130
        );
        assert_eq!(
            code(serde_json::json!({"symbol":"BTCUSDT","startTime":0,"endTime":86_400_001})),
            -1127
        );
    }

    #[test]
    fn my_trades_parameters() {
        let s = symbols();
        let f = |v: Value| parse_my_trades(&signed(v), &s).map(|r| r.filter);
        let d = f(serde_json::json!({"symbol":"BTCUSDT"})).unwrap();
        assert_eq!(
            d,
            TradeFilter {
                limit: 500,
                ..TradeFilter::default()
            }
        );
        let d =
            f(serde_json::json!({"symbol":"BTCUSDT","orderId":3,"fromId":9,"limit":1000})).unwrap();
        assert_eq!(
            (d.order_id, d.from_id, d.limit, d.start_ms),
            (Some(3), Some(9), 1000, None)
        );
        let day = 86_400_000u64;
        let d = f(serde_json::json!({"symbol":"BTCUSDT","startTime":5,"endTime":5 + day})).unwrap();
        assert_eq!((d.start_ms, d.end_ms), (Some(5), Some(5 + day)));
        // One end alone stands for the 24 hours after or before it.
        let d = f(serde_json::json!({"symbol":"BTCUSDT","startTime":5})).unwrap();
        assert_eq!((d.start_ms, d.end_ms), (Some(5), Some(5 + day)));
        let d = f(serde_json::json!({"symbol":"BTCUSDT","endTime":2 * day})).unwrap();
        assert_eq!((d.start_ms, d.end_ms), (Some(day), Some(2 * day)));
        for (p, code) in [
            (serde_json::json!({}), -1102),
            (serde_json::json!({"symbol":"NOPE"}), -1121),
            (serde_json::json!({"symbol":"BTCUSDT","limit":0}), -1130),
            (serde_json::json!({"symbol":"BTCUSDT","limit":1001}), -1130),
            (serde_json::json!({"symbol":"BTCUSDT","limit":"ten"}), -1100),
            (serde_json::json!({"symbol":"BTCUSDT","fromId":-1}), -1100),
            (
                serde_json::json!({"symbol":"BTCUSDT","fromId":1,"startTime":1}),
                -1128,
            ),
            (
                serde_json::json!({"symbol":"BTCUSDT","orderId":1,"endTime":1}),
                -1128,
            ),
            (
                serde_json::json!({"symbol":"BTCUSDT","startTime":1,"endTime":2 + day}),
                -1127,
            ),
            (
                serde_json::json!({"symbol":"BTCUSDT","timestamp":null}),
                -1102,
            ),
        ] {
            assert_eq!(f(p.clone()).unwrap_err().code, code, "{p}");
        }
    }

    /// The top-level keys of a flat JSON object, in order.
    fn keys(json: &str) -> Vec<&str> {
        let parts: Vec<&str> = json.split("\":").collect();
        parts[..parts.len() - 1]
            .iter()
            .map(|s| s.rsplit('"').next().unwrap())
            .collect()
    }

    #[test]
    fn status_and_trade_entries_keep_binance_key_order() {
        let names = Names::of("BTCUSDT");
        let mut o = Order::new(
            12,
            1,
            0,
            ClientId::new("tl-5").unwrap(),
            Side::Sell,
            OrdType::Limit,
            Tif::Gtc,
            Price(6_100_010_000_000),
            Qty(100_000),
        );
        o.status = Status::Filled;
        o.filled = Qty(100_000);
        o.quote = 6_100_010;
        o.created_ms = 1_700_000_000_000;
        o.updated_ms = 1_700_000_000_005;
        let mut s = String::new();
        push_order_status(&mut s, &names, &o);
        assert_eq!(
            keys(&s),
            [
                "symbol",
                "orderId",
                "orderListId",
                "clientOrderId",
                "price",
                "origQty",
                "executedQty",
                "cummulativeQuoteQty",
                "status",
                "timeInForce",
                "type",
                "side",
                "stopPrice",
                "icebergQty",
                "time",
                "updateTime",
                "isWorking",
                "workingTime",
                "origQuoteOrderQty",
                "selfTradePreventionMode"
            ]
        );
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["price"], "61000.10000000");
        assert_eq!(v["cummulativeQuoteQty"], "0.06100010");
        assert_eq!(
            (v["time"].as_u64(), v["updateTime"].as_u64()),
            (Some(1_700_000_000_000), Some(1_700_000_000_005))
        );
        assert_eq!(
            (v["status"].as_str(), v["isWorking"].as_bool()),
            (Some("FILLED"), Some(true))
        );

        let t = TradeRecord {
            sym: 0,
            account: 0,
            trade_id: 77,
            order_id: 12,
            side: Side::Sell,
            price: Price(6_100_010_000_000),
            qty: Qty(100_000),
            quote: 6_100_010,
            commission: 6_100,
            maker: true,
            time_ms: 1_700_000_000_005,
        };
        let mut s = String::new();
        push_my_trade(&mut s, &names, &t);
        assert_eq!(
            keys(&s),
            [
                "symbol",
                "id",
                "orderId",
                "orderListId",
                "price",
                "qty",
                "quoteQty",
                "commission",
                "commissionAsset",
                "time",
                "isBuyer",
                "isMaker",
                "isBestMatch"
            ]
        );
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"symbol":"BTCUSDT","id":77,"orderId":12,"orderListId":-1,
                "price":"61000.10000000","qty":"0.00100000","quoteQty":"0.06100010",
                "commission":"0.00006100","commissionAsset":"USDT","time":1_700_000_000_005u64,
                "isBuyer":false,"isMaker":true,"isBestMatch":true})
        );
    }

    struct OneAsk;
    impl FeedDepth for OneAsk {
        fn levels(&self, side: BookSide) -> impl Iterator<Item = Level> + '_ {
            let l = Level {
                price: Price(10_000_000_000),
                qty: Qty(100_000_000),
            };
            std::iter::once(l).filter(move |_| side == BookSide::Ask)
        }
    }

    #[test]
    fn replies_and_reports_are_binance_shaped() {
        let names = Names::of("BTCUSDT");
        assert_eq!((names.base.as_str(), names.quote.as_str()), ("BTC", "USDT"));
        let mut b = MatchBook::new(8);
        let mut out = Vec::new();
        let o = Order::new(
            5,
            1,
            0,
            ClientId::new("tl-1").unwrap(),
            Side::Buy,
            OrdType::Limit,
            Tif::Ioc,
            Price(10_000_000_000),
            Qty(200_000_000),
        );
        b.place(&OneAsk, o, 1_700_000_000_123, &mut out).unwrap();
        let last = out.last().unwrap().order;
        let r = place_result(
            &names,
            &last,
            RespType::Full,
            out.iter().filter(|e| e.exec == ExecType::Trade),
            9,
        );
        let v: Value = serde_json::from_str(&ok_reply("\"a\"", &r)).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["status"], 200);
        let res = &v["result"];
        assert_eq!(res["status"], "EXPIRED");
        assert_eq!(res["executedQty"], "1.00000000");
        assert_eq!(res["cummulativeQuoteQty"], "100.00000000");
        assert_eq!(res["timeInForce"], "IOC");
        assert_eq!(res["fills"][0]["commissionAsset"], "BTC");
        assert_eq!(res["fills"][0]["commission"], "0.00100000");
        assert!(res["fills"][0]["tradeId"].as_u64().unwrap() >= 1 << 40);
        let keys: Vec<&str> = r
            .split("\":")
            .map(|s| s.rsplit('"').next().unwrap())
            .collect();
        assert_eq!(&keys[..3], ["symbol", "orderId", "orderListId"]);
        let ack = place_result(&names, &last, RespType::Ack, std::iter::empty(), 9);
        let ack: Value = serde_json::from_str(&ack).unwrap();
        assert!(ack.get("status").is_none() && ack["clientOrderId"] == "tl-1");

        let reports: Vec<Value> = out
            .iter()
            .map(|e| serde_json::from_str(&execution_report(&names, e)).unwrap())
            .collect();
        let ev = |i: usize| &reports[i]["event"];
        assert_eq!(ev(0)["e"], "executionReport");
        assert_eq!(
            (ev(0)["x"].as_str(), ev(0)["X"].as_str()),
            (Some("NEW"), Some("NEW"))
        );
        assert_eq!(ev(0)["N"], Value::Null);
        assert_eq!(ev(1)["x"], "TRADE");
        assert_eq!(ev(1)["l"], "1.00000000");
        assert_eq!(ev(1)["L"], "100.00000000");
        assert_eq!(ev(1)["n"], "0.00100000");
        assert_eq!(ev(1)["N"], "BTC");
        assert_eq!(ev(1)["m"], false);
        assert_eq!(ev(1)["E"], 1_700_000_000_123u64);
        assert!(ev(1)["t"].as_u64().unwrap() >= 1 << 40);
        assert_eq!(
            (ev(2)["x"].as_str(), ev(2)["z"].as_str()),
            (Some("EXPIRED"), Some("1.00000000"))
        );
        assert_eq!(ev(2)["t"], -1);
        assert_eq!(ev(2)["w"], false);

        // A refused market order and a cancel.
        out.clear();
        let m = Order::new(
            6,
            1,
            0,
            ClientId::new("tl-2").unwrap(),
            Side::Sell,
            OrdType::Market,
            Tif::Gtc,
            Price::ZERO,
            Qty(1),
        );
        let r = b.place(&NoFeed, m, 1, &mut out).unwrap_err();
        let rep: Value = serde_json::from_str(&execution_report(&names, &out[0])).unwrap();
        assert_eq!(rep["event"]["X"], "REJECTED");
        assert_eq!(rep["event"]["r"], "NO_LIQUIDITY");
        let e: Value = serde_json::from_str(&err_reply("4", &reject_error(r))).unwrap();
        assert_eq!(
            (e["status"].as_u64(), e["error"]["code"].as_i64()),
            (Some(400), Some(-2010))
        );
        out.clear();
        let g = Order::new(
            7,
            1,
            0,
            ClientId::new("tl-3").unwrap(),
            Side::Sell,
            OrdType::Limit,
            Tif::Gtc,
            Price(20_000_000_000),
            Qty(1),
        );
        b.place(&NoFeed, g, 1, &mut out).unwrap();
        let newc = generated_id("cxl-", 7);
        let c = b.cancel(0, Some(7), None, newc, 2, &mut out).unwrap();
        let cr: Value = serde_json::from_str(&cancel_result(&names, &c, &newc, 2)).unwrap();
        assert_eq!(cr["origClientOrderId"], "tl-3");
        assert_eq!(cr["clientOrderId"], "cxl-7");
        assert_eq!(cr["status"], "CANCELED");
        let rep: Value =
            serde_json::from_str(&execution_report(&names, out.last().unwrap())).unwrap();
        assert_eq!(
            (rep["event"]["c"].as_str(), rep["event"]["C"].as_str()),
            (Some("cxl-7"), Some("tl-3"))
        );
        let mut s = String::new();
        push_order_status(&mut s, &names, &g);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            (v["isWorking"].as_bool(), v["type"].as_str()),
            (Some(true), Some("LIMIT"))
        );
    }
}
