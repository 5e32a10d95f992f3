//! Request builders: [`OrderEncoder`] writes signed WebSocket API requests into reused buffers
//! (sans-IO: the caller passes the time and writes the text out).
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
//! eight fractional digits ([`Price`](engine::fixed::Price)'s `Display`), the client order id as its wire form
//! ([`ClientOrderId`]'s `Display`, `tl-17`). `recvWindow` is omitted when the encoder was made
//! with `0` (the venue then applies its default of 5000 ms; it refuses values above 60000).
//! `newOrderRespType=FULL` makes the reply carry the order's status, `executedQty` and its fills
//! so far (Binance documents `ACK`, `RESULT` and `FULL` for the WebSocket API's `order.place`,
//! `FULL` being the default for LIMIT and MARKET orders); [`parse_place_result`](super::parse_place_result) reads them, so
//! an IOC, FOK or market order is settled by its reply even when no `executionReport` comes.
//! The same fills also arrive in `executionReport` events, keyed by the same trade id.

use super::credentials::{plain_byte, Credentials, MaskedKey};
use super::error::ApiError;
use super::sign::Signer;
use core::fmt::{self, Write as _};
use engine::event::{ClientOrderId, OrderCommand, OrderRequest, OrderType, Side};
use engine::symbol::SymbolTable;

/// Most params one signed request may carry, the automatic ones included.
pub(super) const MAX_PARAMS: usize = 24;
/// Largest `limit` a `myTrades` request may ask for.
const MAX_TRADES_LIMIT: u32 = 1000;

/// Appends the decimal digits of `n` (what `write!("{n}")` does, without the formatting
/// machinery: this is on the order path).
#[inline]
pub(super) fn push_u64(s: &mut String, mut n: u64) {
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

/// Appends 1e-8 `units` with all eight decimals, exactly as [`Price`](engine::fixed::Price)'s `Display` does.
#[inline]
pub(super) fn push_fixed(s: &mut String, units: i64) {
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
pub(super) enum V<'a> {
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
pub(super) struct Params<'a> {
    items: [(&'a str, V<'a>); MAX_PARAMS],
    len: usize,
}

impl<'a> Params<'a> {
    pub(super) fn new() -> Self {
        Params {
            items: [("", V::Int(0)); MAX_PARAMS],
            len: 0,
        }
    }

    pub(super) fn push(&mut self, key: &'a str, v: V<'a>) -> bool {
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
    pub(super) fn sorted(&mut self) -> &[(&'a str, V<'a>)] {
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
    /// current report, open or not. Read the reply with [`parse_order_status`](super::parse_order_status).
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
    /// [`parse_my_trades`](super::parse_my_trades).
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
