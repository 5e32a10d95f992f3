//! Binance spot WebSocket API codec (`feeds::binance_api`): signing against the documentation's
//! worked example, the exact fields of each request, replies, execution reports, secrets that
//! never leak, key files, hostile input, and no allocation per order after warm-up.
//!
//! The documented example is "SIGNED request example (HMAC)" of Binance's WebSocket API
//! documentation (<https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/request-security>,
//! also `web-socket-api.md` of <https://github.com/binance/binance-spot-api-docs>). The
//! documentation publishes no Ed25519 example with a fixed key and signature (its Ed25519
//! section is a Python sample with a placeholder key), so Ed25519 is checked against RFC 8032's
//! first test vector and by verifying our signatures with the public key.

use engine::event::{
    ClientOrderId, EventKind, Fill, MarketEvent, OrderAck, OrderCanceled, OrderCommand,
    OrderReject, OrderRequest, OrderType, RejectReason, Side,
};
use engine::fixed::{Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance_api::ed25519_dalek::pkcs8::EncodePrivateKey as _;
use feeds::binance_api::ed25519_dalek::{Signature, SigningKey, Verifier as _};
use feeds::binance_api::{
    parse_execution_report, parse_reply, ApiError, ApiReply, Credentials, OpenOrder, OrderEncoder,
    OrderStatus, Param, Secret,
};
use serde_json::{Map, Value};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use tools::alloc::{thread_allocations, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// The documentation's example key pair ("The example keys are provided here only for
// illustrative purposes").
const DOC_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const DOC_PAYLOAD: &str = "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT";
const DOC_SIGNATURE: &str = "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a";

fn doc_creds() -> Credentials {
    Credentials::hmac(DOC_API_KEY, Secret::new(DOC_SECRET)).unwrap()
}

fn ed_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn ed_creds() -> Credentials {
    Credentials::ed25519("edKEY123", ed_key()).unwrap()
}

fn cid(n: u64) -> ClientOrderId {
    ClientOrderId::new(ClientOrderId::NS_ENGINE, n)
}

fn px(s: &str) -> Price {
    Price::parse(s.as_bytes()).unwrap()
}

fn qty(s: &str) -> Qty {
    Qty::parse(s.as_bytes()).unwrap()
}

// ---- small helpers: base64 (the root package has no base64 dependency), JSON, temp files.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn b64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()) {
        let v = B64.iter().position(|&x| x == c).expect("base64 alphabet") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Parses a request and returns (id, method, params).
fn request(json: &str) -> (Value, String, Map<String, Value>) {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let obj = v.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{json}");
    let params = obj["params"].as_object().unwrap().clone();
    (
        obj["id"].clone(),
        obj["method"].as_str().unwrap().to_string(),
        params,
    )
}

/// The signature payload rebuilt from a request's params, as the documentation describes it:
/// all params but `signature`, sorted by name, `key=value` joined with `&`.
fn payload_of(params: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
    keys.sort();
    keys.iter()
        .map(|k| match &params[k.as_str()] {
            Value::String(s) => format!("{k}={s}"),
            Value::Number(n) => format!("{k}={n}"),
            other => panic!("unexpected param value {other}"),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn key_set(params: &Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = params.keys().map(String::as_str).collect();
    k.sort();
    k
}

fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
    v.sort();
    v
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "tickline-binance-api-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- signing against published facts.

#[test]
fn documented_hmac_example_signature_matches_exactly() {
    assert_eq!(doc_creds().sign(DOC_PAYLOAD), DOC_SIGNATURE);
}

#[test]
fn documented_hmac_example_rebuilt_through_the_encoder() {
    // The documentation's request, params in its (unsorted) order; the encoder adds apiKey,
    // recvWindow and timestamp, sorts, and signs.
    let mut enc = OrderEncoder::new(doc_creds(), 100);
    let json = enc
        .signed_request(
            1,
            "order.place",
            &[
                ("symbol", Param::Str("BTCUSDT")),
                ("side", Param::Str("SELL")),
                ("type", Param::Str("LIMIT")),
                ("timeInForce", Param::Str("GTC")),
                ("quantity", Param::Str("0.01000000")),
                ("price", Param::Str("52000.00")),
                ("newOrderRespType", Param::Str("ACK")),
            ],
            1645423376532,
        )
        .unwrap()
        .to_string();
    assert_eq!(enc.payload(), DOC_PAYLOAD);
    let (_, method, params) = request(&json);
    assert_eq!(method, "order.place");
    assert_eq!(params["signature"], DOC_SIGNATURE);
    // The documentation's final request, param for param.
    let doc: Value = serde_json::from_str(
        r#"{"symbol":"BTCUSDT","side":"SELL","type":"LIMIT","timeInForce":"GTC","quantity":"0.01000000","price":"52000.00","newOrderRespType":"ACK","recvWindow":100,"timestamp":1645423376532,"apiKey":"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A","signature":"cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"}"#,
    )
    .unwrap();
    assert_eq!(Value::Object(params), doc);
}

#[test]
fn ed25519_matches_rfc8032_and_verifies_with_the_public_key() {
    // RFC 8032 section 7.1, TEST 1 (empty message).
    let seed = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    assert_eq!(
        hex(key.verifying_key().as_bytes()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let creds = Credentials::ed25519("k", key).unwrap();
    let sig = creds.sign("");
    assert_eq!(sig.len(), 88, "base64 of 64 bytes, padded");
    assert_eq!(
        hex(&b64_decode(&sig)),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
         5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );

    // Our order requests: the signature verifies over the payload rebuilt from the JSON.
    let public = ed_key().verifying_key();
    let mut enc = OrderEncoder::new(ed_creds(), 5000);
    let req = OrderRequest {
        side: Side::Buy,
        price: px("61837.63"),
        qty: qty("0.0001"),
        order_type: OrderType::LimitIoc,
    };
    let json = enc
        .place(
            9,
            "BTCUSDT",
            ClientOrderId::probe(3735683259),
            &req,
            1_700_000_000_000,
        )
        .to_string();
    let (_, _, params) = request(&json);
    let payload = payload_of(&params);
    assert_eq!(payload, enc.payload());
    let sig_bytes = b64_decode(params["signature"].as_str().unwrap());
    let sig = Signature::from_slice(&sig_bytes).unwrap();
    public.verify(payload.as_bytes(), &sig).unwrap();
    assert!(public.verify(b"tampered", &sig).is_err());
    assert_eq!(
        b64_encode(&sig_bytes),
        params["signature"].as_str().unwrap()
    );
}

// ---- requests: exactly the documented fields, sorted and signed.

/// Checks the common shape of a signed request and returns its params.
fn check_signed(json: &str, id: u64, method: &str, enc: &OrderEncoder) -> Map<String, Value> {
    let (rid, m, params) = request(json);
    assert_eq!(rid, Value::from(id));
    assert_eq!(m, method);
    // Written in signed (sorted) order, signature last.
    let keys: Vec<&str> = params.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = keys.iter().copied().filter(|k| *k != "signature").collect();
    want.sort();
    want.push("signature");
    // serde_json's Map is sorted itself, so check the order on the text.
    let mut last = 0;
    for k in &want {
        let at = json.find(&format!("\"{k}\":")).unwrap();
        assert!(at >= last, "{k} out of order in {json}");
        last = at;
    }
    let payload = payload_of(&params);
    assert_eq!(payload, enc.payload());
    assert_eq!(
        params["signature"].as_str().unwrap(),
        doc_creds().sign(&payload),
        "signature over the sorted payload"
    );
    assert_eq!(params["apiKey"], DOC_API_KEY);
    params
}

#[test]
fn order_place_limit_gtc_ioc_fok_has_exactly_the_documented_fields() {
    let mut enc = OrderEncoder::new(doc_creds(), 5000);
    for (ot, tif) in [
        (OrderType::LimitGtc, "GTC"),
        (OrderType::LimitIoc, "IOC"),
        (OrderType::LimitFok, "FOK"),
    ] {
        let req = OrderRequest {
            side: Side::Sell,
            price: px("23416.1"),
            qty: qty("0.00847"),
            order_type: ot,
        };
        let json = enc
            .place(42, "BTCUSDT", cid(17), &req, 1660801715431)
            .to_string();
        let p = check_signed(&json, 42, "order.place", &enc);
        assert_eq!(
            key_set(&p),
            sorted(vec![
                "apiKey",
                "newClientOrderId",
                "newOrderRespType",
                "price",
                "quantity",
                "recvWindow",
                "side",
                "signature",
                "symbol",
                "timeInForce",
                "timestamp",
                "type",
            ])
        );
        assert_eq!(p["symbol"], "BTCUSDT");
        assert_eq!(p["side"], "SELL");
        assert_eq!(p["type"], "LIMIT");
        assert_eq!(p["timeInForce"], tif);
        assert_eq!(p["price"], "23416.10000000");
        assert_eq!(p["quantity"], "0.00847000");
        assert_eq!(p["newClientOrderId"], "tl-17");
        assert_eq!(p["newOrderRespType"], "RESULT");
        assert_eq!(p["recvWindow"], 5000);
        assert_eq!(p["timestamp"], 1660801715431u64);
        assert!(enc.payload().starts_with("apiKey="));
        assert!(enc.payload().contains("&timeInForce=".to_string().as_str()));
        assert!(
            enc.payload().find("timeInForce").unwrap() < enc.payload().find("timestamp").unwrap()
        );
    }
}

#[test]
fn order_place_market_has_no_price_or_time_in_force() {
    let mut enc = OrderEncoder::new(doc_creds(), 0);
    let req = OrderRequest {
        side: Side::Buy,
        price: px("99999"), // ignored for market orders
        qty: qty("1"),
        order_type: OrderType::Market,
    };
    let json = enc
        .place(7, "ethbtc", ClientOrderId::probe(5), &req, 1)
        .to_string();
    let p = check_signed(&json, 7, "order.place", &enc);
    assert_eq!(
        key_set(&p),
        sorted(vec![
            "apiKey",
            "newClientOrderId",
            "newOrderRespType",
            "quantity",
            "side",
            "signature",
            "symbol",
            "timestamp",
            "type",
        ]),
        "recvWindow 0 is left out"
    );
    assert_eq!(p["type"], "MARKET");
    assert_eq!(p["side"], "BUY");
    assert_eq!(p["symbol"], "ETHBTC");
    assert_eq!(p["quantity"], "1.00000000");
    assert_eq!(p["newClientOrderId"], "probe-5");
}

#[test]
fn order_cancel_and_open_orders_have_exactly_the_documented_fields() {
    let mut enc = OrderEncoder::new(doc_creds(), 100);
    let json = enc.cancel(3, "BTCUSDT", cid(17), 1660801715830).to_string();
    let p = check_signed(&json, 3, "order.cancel", &enc);
    assert_eq!(
        key_set(&p),
        sorted(vec![
            "apiKey",
            "origClientOrderId",
            "recvWindow",
            "signature",
            "symbol",
            "timestamp",
        ])
    );
    assert_eq!(p["origClientOrderId"], "tl-17");

    let json = enc
        .open_orders(4, Some("BTCUSDT"), 1660813156812)
        .to_string();
    let p = check_signed(&json, 4, "openOrders.status", &enc);
    assert_eq!(
        key_set(&p),
        sorted(vec![
            "apiKey",
            "recvWindow",
            "signature",
            "symbol",
            "timestamp"
        ])
    );
    let json = enc.open_orders(5, None, 1660813156812).to_string();
    let p = check_signed(&json, 5, "openOrders.status", &enc);
    assert_eq!(
        key_set(&p),
        sorted(vec!["apiKey", "recvWindow", "signature", "timestamp"])
    );

    // The core's commands go through the same encoder.
    let mut syms = SymbolTable::new();
    let btc = syms.intern("BTCUSDT").unwrap();
    let cmd = OrderCommand::Cancel {
        client_id: cid(17),
        symbol: btc,
    };
    let a = enc.encode_command(6, &syms, &cmd, 1).unwrap().to_string();
    assert_eq!(a, enc.cancel(6, "BTCUSDT", cid(17), 1));
    let unknown = OrderCommand::Cancel {
        client_id: cid(1),
        symbol: SymbolId(9),
    };
    assert!(enc.encode_command(7, &syms, &unknown, 1).is_none());
}

#[test]
fn session_logon_is_ed25519_only_and_session_mode_drops_key_and_signature() {
    let mut hmac = OrderEncoder::new(doc_creds(), 0);
    assert_eq!(
        hmac.logon(1, 2),
        Err(ApiError::UnsupportedKeyType {
            what: "session.logon"
        })
    );

    let public = ed_key().verifying_key();
    let mut enc = OrderEncoder::new(ed_creds(), 5000);
    let json = enc.logon(1, 1649729878532).unwrap().to_string();
    let (_, method, p) = request(&json);
    assert_eq!(method, "session.logon");
    assert_eq!(
        key_set(&p),
        sorted(vec!["apiKey", "recvWindow", "signature", "timestamp"])
    );
    assert_eq!(
        enc.payload(),
        "apiKey=edKEY123&recvWindow=5000&timestamp=1649729878532"
    );
    let sig = Signature::from_slice(&b64_decode(p["signature"].as_str().unwrap())).unwrap();
    public.verify(enc.payload().as_bytes(), &sig).unwrap();

    enc.set_session_authenticated(true);
    assert!(enc.session_authenticated());
    let req = OrderRequest {
        side: Side::Buy,
        price: px("1"),
        qty: qty("2"),
        order_type: OrderType::LimitGtc,
    };
    let json = enc.place(2, "BTCUSDT", cid(1), &req, 10).to_string();
    let (_, _, p) = request(&json);
    assert!(
        !p.contains_key("apiKey") && !p.contains_key("signature"),
        "{json}"
    );
    assert!(p.contains_key("timestamp") && p.contains_key("recvWindow"));
    assert_eq!(enc.payload(), "", "nothing signed");
    // Logon itself is always signed.
    let json = enc.logon(3, 11).unwrap().to_string();
    assert!(request(&json).2.contains_key("signature"));
    enc.set_session_authenticated(false);
    let json = enc.cancel(4, "BTCUSDT", cid(1), 12).to_string();
    assert!(request(&json).2.contains_key("signature"));
}

#[test]
fn signed_request_refuses_what_would_break_the_json_or_the_payload() {
    let mut enc = OrderEncoder::new(doc_creds(), 0);
    let bad: [(&str, &[(&str, Param)]); 7] = [
        ("order.status", &[("symbol", Param::Str("BTC\"USDT"))]),
        ("order.status", &[("symbol", Param::Str("BTC&x=1"))]),
        ("order.status", &[("symbol", Param::Str(""))]),
        ("order.status", &[("sym bol", Param::Str("X"))]),
        ("order.status", &[("timestamp", Param::Int(1))]),
        (
            "order.status",
            &[("a", Param::Int(1)), ("a", Param::Int(2))],
        ),
        ("order\"status", &[]),
    ];
    for (method, params) in bad {
        let r = enc.signed_request(1, method, params, 5);
        assert!(
            matches!(r, Err(ApiError::BadParam { .. })),
            "{method} {params:?}: {r:?}"
        );
    }
    let many: Vec<(String, Param)> = (0..30).map(|i| (format!("k{i}"), Param::Int(i))).collect();
    let many: Vec<(&str, Param)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert!(enc.signed_request(1, "x", &many, 5).is_err());
    // A good one: order.status by orderId.
    let json = enc
        .signed_request(
            8,
            "order.status",
            &[
                ("orderId", Param::Int(12569099453)),
                ("symbol", Param::Str("BTCUSDT")),
            ],
            1660801720951,
        )
        .unwrap()
        .to_string();
    check_signed(&json, 8, "order.status", &enc);
}

// ---- replies.

#[test]
fn replies_parse() {
    // order.place, RESULT type (the documentation's reply, with our client order id).
    let placed = br#"{"id":56,"status":200,"result":{"symbol":"BTCUSDT","orderId":12569099453,"orderListId":-1,"clientOrderId":"tl-17","transactTime":1660801715639,"price":"23416.10000000","origQty":"0.00847000","executedQty":"0.00000000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.00000000","status":"NEW","timeInForce":"GTC","type":"LIMIT","side":"SELL","workingTime":1660801715639,"selfTradePreventionMode":"NONE"},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50,"count":1}]}"#;
    assert_eq!(
        parse_reply(placed),
        Ok(ApiReply::Placed {
            request_id: 56,
            client_id: cid(17),
            venue_order_id: 12569099453,
            status: Some(OrderStatus::New),
        })
    );
    // ACK type: no status; keys in another order and pretty-printed.
    let ack = b"{ \"result\": {\"symbol\":\"BTCUSDT\",\"orderId\":1,\"orderListId\":-1,\"clientOrderId\":\"probe-9\",\"transactTime\":1}, \"status\": 200, \"id\": 57 }";
    assert_eq!(
        parse_reply(ack),
        Ok(ApiReply::Placed {
            request_id: 57,
            client_id: ClientOrderId::probe(9),
            venue_order_id: 1,
            status: None,
        })
    );
    // order.cancel: the canceled order is origClientOrderId; clientOrderId is the cancel's.
    let canceled = br#"{"id":58,"status":200,"result":{"symbol":"BTCUSDT","origClientOrderId":"tl-17","orderId":12569099453,"orderListId":-1,"clientOrderId":"91fe37ce9e69c90d6358c0","transactTime":1684804350068,"price":"23416.10000000","origQty":"0.00847000","executedQty":"0.00001000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.23416100","status":"CANCELED","timeInForce":"GTC","type":"LIMIT","side":"SELL","stopPrice":"0.00000000","trailingDelta":0,"icebergQty":"0.00000000","strategyId":37463720,"strategyType":1000000,"selfTradePreventionMode":"NONE"}}"#;
    assert_eq!(
        parse_reply(canceled),
        Ok(ApiReply::Canceled {
            request_id: 58,
            client_id: cid(17),
            venue_order_id: 12569099453,
            status: Some(OrderStatus::Canceled),
            leaves_qty: Some(qty("0.00846")),
        })
    );
    // openOrders.status: ours and one placed elsewhere.
    let open = br#"{"id":59,"status":200,"result":[{"symbol":"BTCUSDT","orderId":12569099453,"orderListId":-1,"clientOrderId":"tl-3","price":"23416.10000000","origQty":"0.00847000","executedQty":"0.00720000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"172.43931000","status":"PARTIALLY_FILLED","timeInForce":"GTC","type":"LIMIT","side":"SELL","stopPrice":"0.00000000","icebergQty":"0.00000000","time":1660801715639,"updateTime":1660801717945,"isWorking":true,"workingTime":1660801715639,"selfTradePreventionMode":"NONE"},{"symbol":"ETHBTC","orderId":2,"clientOrderId":"web_abc","price":"0.05","origQty":"1","executedQty":"0","status":"NEW","side":"BUY"}],"rateLimits":[]}"#;
    assert_eq!(
        parse_reply(open),
        Ok(ApiReply::OpenOrders {
            request_id: 59,
            orders: vec![
                OpenOrder {
                    symbol: "BTCUSDT".into(),
                    client_id: Some(cid(3)),
                    venue_order_id: 12569099453,
                    side: Side::Sell,
                    price: px("23416.1"),
                    orig_qty: qty("0.00847"),
                    executed_qty: qty("0.0072"),
                    status: OrderStatus::PartiallyFilled,
                },
                OpenOrder {
                    symbol: "ETHBTC".into(),
                    client_id: None,
                    venue_order_id: 2,
                    side: Side::Buy,
                    price: px("0.05"),
                    orig_qty: qty("1"),
                    executed_qty: Qty::ZERO,
                    status: OrderStatus::New,
                },
            ],
        })
    );
    assert_eq!(
        parse_reply(br#"{"id":60,"status":200,"result":[]}"#),
        Ok(ApiReply::OpenOrders {
            request_id: 60,
            orders: vec![]
        })
    );
    // The documentation's failed response.
    let err = br#"{"id":61,"status":400,"error":{"code":-2010,"msg":"Account has insufficient balance for requested action."},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50,"count":13}]}"#;
    assert_eq!(
        parse_reply(err),
        Ok(ApiReply::Rejected {
            request_id: Some(61),
            status: 400,
            code: -2010,
            msg: "Account has insufficient balance for requested action.".into(),
        })
    );
    // A revoked session: id null, 401; escapes and control characters in the message.
    let revoked = br#"{"id":null,"status":401,"error":{"code":-2015,"msg":"Invalid API-key,\nIP, or permissions \u0041 for action."}}"#;
    assert_eq!(
        parse_reply(revoked),
        Ok(ApiReply::Rejected {
            request_id: None,
            status: 401,
            code: -2015,
            msg: "Invalid API-key, IP, or permissions A for action.".into(),
        })
    );
    // A ban with extra data in the error.
    let ban = br#"{"id":"fc93a61a","status":418,"error":{"code":-1003,"msg":"Way too much request weight used","data":{"serverTime":1659142907531,"retryAfter":1659146400000}}}"#;
    assert!(matches!(
        parse_reply(ban),
        Ok(ApiReply::Rejected {
            request_id: None,
            status: 418,
            code: -1003,
            ..
        })
    ));
    // session.logon and ping: Other.
    let logon = br#"{"id":62,"status":200,"result":{"apiKey":"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A","authorizedSince":1649729878532,"connectedSince":1649729873021,"returnRateLimits":false,"serverTime":1649729878630,"userDataStream":false}}"#;
    assert_eq!(
        parse_reply(logon),
        Ok(ApiReply::Other {
            request_id: Some(62),
            status: 200
        })
    );
    assert_eq!(
        parse_reply(br#"{"id":63,"status":200,"result":{}}"#),
        Ok(ApiReply::Other {
            request_id: Some(63),
            status: 200
        })
    );
    // A user data stream event on the API connection.
    let ev = br#"{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1728972148778,"u":1728972148778,"B":[]}}"#;
    assert_eq!(parse_reply(ev), Ok(ApiReply::Event));
}

#[test]
fn hostile_replies_are_typed_errors_never_panics() {
    let cases: [(&[u8], ApiError); 14] = [
        (b"", ApiError::Truncated { offset: 0 }),
        (b"[]", ApiError::NotAnObject),
        (b"42", ApiError::NotAnObject),
        (br#"{"id":1}"#, ApiError::MissingField("status")),
        (br#"{"id":1,"status":"200"}"#, ApiError::WrongType { field: "status" }),
        (br#"{"id":1,"status":70000}"#, ApiError::IntOverflow { field: "status" }),
        (br#"{"id":1,"status":200,"status":200}"#, ApiError::DuplicateField("status")),
        (
            br#"{"id":1,"status":200,"result":{"orderId":"12","clientOrderId":"tl-1"}}"#,
            ApiError::WrongType { field: "orderId" },
        ),
        (
            br#"{"id":1,"status":200,"result":{"orderId":12}}"#,
            ApiError::MissingField("clientOrderId"),
        ),
        (
            br#"{"id":1,"status":200,"result":{"orderId":12,"clientOrderId":"x-1"}}"#,
            ApiError::BadClientId {
                field: "clientOrderId",
            },
        ),
        (
            br#"{"id":"a","status":200,"result":{"orderId":12,"clientOrderId":"tl-1"}}"#,
            ApiError::WrongType { field: "id" },
        ),
        (
            br#"{"id":1,"status":400,"error":{"code":"-2010","msg":"x"}}"#,
            ApiError::WrongType { field: "code" },
        ),
        (
            br#"{"id":1,"status":400,"error":{"msg":"x"}}"#,
            ApiError::MissingField("code"),
        ),
        (
            br#"{"id":1,"status":200,"result":[{"symbol":"X","orderId":1,"side":"BUY","origQty":"1e5","executedQty":"0","status":"NEW"}]}"#,
            ApiError::BadDecimal {
                field: "origQty",
                err: engine::fixed::FixedError::InvalidByte(1),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_reply(text),
            Err(want),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
    assert!(matches!(
        parse_reply(br#"{"id":1,"status":200} x"#),
        Err(ApiError::Syntax { .. })
    ));
    assert!(matches!(
        parse_reply(b"{\"id\":1,\"status\":200,\"error\":{\"code\":1,\"msg\":\"\xff\"}}"),
        Err(ApiError::Syntax { .. })
    ));

    // Every truncation of every sample is an error; random corruption never panics.
    let samples: [&[u8]; 4] = [
        br#"{"id":56,"status":200,"result":{"symbol":"BTCUSDT","orderId":12569099453,"clientOrderId":"tl-17","status":"NEW"}}"#,
        br#"{"id":58,"status":200,"result":{"origClientOrderId":"tl-17","orderId":1,"clientOrderId":"x","origQty":"1","executedQty":"0.5","status":"CANCELED"}}"#,
        br#"{"id":59,"status":200,"result":[{"symbol":"BTCUSDT","orderId":1,"clientOrderId":"tl-3","price":"1","origQty":"1","executedQty":"0","status":"NEW","side":"SELL"}]}"#,
        br#"{"id":61,"status":400,"error":{"code":-2010,"msg":"Account has insufficient balance."}}"#,
    ];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for s in samples {
        assert!(parse_reply(s).is_ok());
        for cut in 0..s.len() {
            assert!(
                parse_reply(&s[..cut]).is_err(),
                "prefix {cut} of {}",
                String::from_utf8_lossy(s)
            );
        }
        for _ in 0..5000 {
            let mut m = s.to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % m.len() as u64) as usize;
                let alphabet = b"{}[]\":,0123456789-.aeE\\ x\xff";
                m[i] = alphabet[(x >> 32) as usize % alphabet.len()];
            }
            let _ = parse_reply(&m);
        }
    }
}

// ---- execution reports.

fn symbols() -> SymbolTable {
    let mut t = SymbolTable::new();
    t.intern("BTCUSDT").unwrap();
    t.intern("TUSDT").unwrap();
    t
}

/// An executionReport in the documented layout with the given overrides.
fn report(fields: &[(&str, &str)]) -> String {
    let mut base: Vec<(&str, String)> = vec![
        ("e", "\"executionReport\"".into()),
        ("E", "1499405658658".into()),
        ("s", "\"BTCUSDT\"".into()),
        ("c", "\"tl-17\"".into()),
        ("S", "\"BUY\"".into()),
        ("o", "\"LIMIT\"".into()),
        ("f", "\"GTC\"".into()),
        ("q", "\"1.00000000\"".into()),
        ("p", "\"0.10264410\"".into()),
        ("P", "\"0.00000000\"".into()),
        ("F", "\"0.00000000\"".into()),
        ("g", "-1".into()),
        ("C", "\"\"".into()),
        ("x", "\"NEW\"".into()),
        ("X", "\"NEW\"".into()),
        ("r", "\"NONE\"".into()),
        ("i", "4293153".into()),
        ("l", "\"0.00000000\"".into()),
        ("z", "\"0.00000000\"".into()),
        ("L", "\"0.00000000\"".into()),
        ("n", "\"0\"".into()),
        ("N", "null".into()),
        ("T", "1499405658657".into()),
        ("t", "-1".into()),
        ("I", "8641984".into()),
        ("w", "true".into()),
        ("m", "false".into()),
        ("M", "false".into()),
        ("O", "1499405658657".into()),
        ("Z", "\"0.00000000\"".into()),
        ("Y", "\"0.00000000\"".into()),
        ("Q", "\"0.00000000\"".into()),
        ("W", "1499405658657".into()),
        ("V", "\"NONE\"".into()),
    ];
    for (k, v) in fields {
        match base.iter_mut().find(|(bk, _)| bk == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => base.push((k, v.to_string())),
        }
    }
    let body: Vec<String> = base.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

fn one(text: &str) -> Result<Vec<MarketEvent>, ApiError> {
    let mut out = Vec::new();
    let n = parse_execution_report(text.as_bytes(), &symbols(), 77, &mut out)?;
    assert_eq!(n, out.len());
    Ok(out)
}

fn kind_of(text: &str) -> EventKind {
    let evs = one(text).unwrap();
    assert_eq!(evs.len(), 1, "{text}");
    assert_eq!(evs[0].recv_ns, 77);
    evs[0].kind
}

#[test]
fn execution_report_new_is_an_ack() {
    let ev = one(&report(&[])).unwrap();
    assert_eq!(ev[0].symbol, SymbolId(0));
    assert_eq!(
        ev[0].kind,
        EventKind::OrderAck(OrderAck {
            client_id: cid(17),
            venue_order_id: 4293153
        })
    );
}

#[test]
fn execution_report_trades_are_fills_with_quote_fees_only() {
    // Partial fill, fee in USDT (the quote asset).
    let partial = report(&[
        ("x", "\"TRADE\""),
        ("X", "\"PARTIALLY_FILLED\""),
        ("l", "\"0.40000000\""),
        ("z", "\"0.40000000\""),
        ("L", "\"61837.63000000\""),
        ("n", "\"0.02473505\""),
        ("N", "\"USDT\""),
        ("t", "3735683259"),
        ("m", "true"),
    ]);
    assert_eq!(
        kind_of(&partial),
        EventKind::Fill(Fill {
            client_id: cid(17),
            trade_id: 3735683259,
            price: px("61837.63"),
            qty: qty("0.4"),
            fee: 2_473_505,
        })
    );
    // The rest fills, fee paid in BNB: recorded as 0.
    let full = report(&[
        ("x", "\"TRADE\""),
        ("X", "\"FILLED\""),
        ("l", "\"0.60000000\""),
        ("z", "\"1.00000000\""),
        ("L", "\"61837.64000000\""),
        ("n", "\"0.00012000\""),
        ("N", "\"BNB\""),
        ("t", "3735683260"),
    ]);
    assert_eq!(
        kind_of(&full),
        EventKind::Fill(Fill {
            client_id: cid(17),
            trade_id: 3735683260,
            price: px("61837.64"),
            qty: qty("0.6"),
            fee: 0,
        })
    );
    // Fee in the base asset: 0; on T/USDT a fee in T is base, in USDT quote.
    let base = report(&[
        ("x", "\"TRADE\""),
        ("n", "\"0.001\""),
        ("N", "\"BTC\""),
        ("t", "1"),
    ]);
    assert!(matches!(
        kind_of(&base),
        EventKind::Fill(Fill { fee: 0, .. })
    ));
    let t_base = report(&[
        ("s", "\"TUSDT\""),
        ("x", "\"TRADE\""),
        ("n", "\"0.5\""),
        ("N", "\"T\""),
        ("t", "1"),
    ]);
    assert!(matches!(
        kind_of(&t_base),
        EventKind::Fill(Fill { fee: 0, .. })
    ));
    let t_quote = report(&[
        ("s", "\"TUSDT\""),
        ("x", "\"TRADE\""),
        ("n", "\"0.5\""),
        ("N", "\"USDT\""),
        ("t", "1"),
    ]);
    assert!(matches!(
        kind_of(&t_quote),
        EventKind::Fill(Fill {
            fee: 50_000_000,
            ..
        })
    ));
    // No commission asset.
    let none = report(&[("x", "\"TRADE\""), ("t", "2")]);
    assert!(matches!(
        kind_of(&none),
        EventKind::Fill(Fill { fee: 0, .. })
    ));
    // A trade must carry its trade id.
    assert_eq!(
        one(&report(&[("x", "\"TRADE\"")])),
        Err(ApiError::WrongType { field: "t" })
    );
}

#[test]
fn execution_report_cancels_rejects_and_expiries() {
    // A cancel: `c` is the cancel request's id, `C` the canceled order.
    let canceled = report(&[
        ("x", "\"CANCELED\""),
        ("X", "\"CANCELED\""),
        ("c", "\"91fe37ce9e69c90d6358c0\""),
        ("C", "\"tl-17\""),
        ("z", "\"0.25000000\""),
    ]);
    assert_eq!(
        kind_of(&canceled),
        EventKind::OrderCanceled(OrderCanceled {
            client_id: cid(17),
            leaves_qty: qty("0.75"),
        })
    );
    let canceled_plain = report(&[("x", "\"CANCELED\""), ("X", "\"CANCELED\"")]);
    assert_eq!(
        kind_of(&canceled_plain),
        EventKind::OrderCanceled(OrderCanceled {
            client_id: cid(17),
            leaves_qty: qty("1"),
        })
    );
    let rejected = report(&[
        ("x", "\"REJECTED\""),
        ("X", "\"REJECTED\""),
        ("r", "\"-2010\""),
    ]);
    assert_eq!(
        kind_of(&rejected),
        EventKind::OrderReject(OrderReject {
            client_id: cid(17),
            reason: RejectReason::Venue
        })
    );
    // An IOC that partly filled, then expired.
    let expired = report(&[
        ("c", "\"probe-3735683259\""),
        ("f", "\"IOC\""),
        ("x", "\"EXPIRED\""),
        ("X", "\"EXPIRED\""),
        ("z", "\"0.30000000\""),
    ]);
    assert_eq!(
        kind_of(&expired),
        EventKind::OrderCanceled(OrderCanceled {
            client_id: ClientOrderId::probe(3735683259),
            leaves_qty: qty("0.7"),
        })
    );
    let stp = report(&[("x", "\"TRADE_PREVENTION\""), ("X", "\"EXPIRED\"")]);
    assert!(matches!(kind_of(&stp), EventKind::OrderCanceled(_)));
    let stp_decrement = report(&[("x", "\"TRADE_PREVENTION\""), ("X", "\"PARTIALLY_FILLED\"")]);
    assert!(one(&stp_decrement).unwrap().is_empty());
}

#[test]
fn execution_reports_in_every_envelope_and_what_is_ignored() {
    let r = report(&[]);
    for wrapped in [
        format!("{{\"subscriptionId\":0,\"event\":{r}}}"),
        format!("{{\"event\":{r}}}"),
        format!("{{\"stream\":\"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1\",\"data\":{r}}}"),
        format!(" {r} "),
    ] {
        assert!(matches!(kind_of(&wrapped), EventKind::OrderAck(_)), "{wrapped}");
    }
    // Ignored: other events, unknown symbols, orders that are not ours, other execution types.
    for text in [
        r#"{"e":"outboundAccountPosition","E":1564034571105,"u":1564034571073,"B":[{"a":"ETH","f":"10000.000000","l":"0.000000"}]}"#.to_string(),
        r#"{"subscriptionId":0,"event":{"e":"balanceUpdate","E":1573200697110,"a":"BTC","d":"100.00000000","T":1573200697068}}"#.to_string(),
        report(&[("s", "\"ETHBTC\"")]),
        report(&[("c", "\"web_mUvoqJxFIILMdfAW5iGSOW\"")]),
        report(&[("x", "\"REPLACED\"")]),
        report(&[("x", "\"AMENDMENT\"")]),
    ] {
        assert_eq!(one(&text), Ok(vec![]), "{text}");
    }
    // Errors, typed.
    let cases: [(String, ApiError); 8] = [
        (r#"{"x":1}"#.into(), ApiError::MissingField("e")),
        (r#"{"event":[1]}"#.into(), ApiError::NotAnObject),
        (
            report(&[("q", "1")]).replace("\"x\":\"NEW\"", "\"x\":\"CANCELED\""),
            ApiError::WrongType { field: "q" },
        ),
        (
            report(&[("x", "\"EXPIRED\""), ("z", "\"abc\"")]),
            ApiError::BadDecimal {
                field: "z",
                err: engine::fixed::FixedError::InvalidByte(0),
            },
        ),
        (
            report(&[("i", "\"4293153\"")]),
            ApiError::WrongType { field: "i" },
        ),
        (report(&[("i", "-5")]), ApiError::WrongType { field: "i" }),
        (report(&[("x", "null")]), ApiError::WrongType { field: "x" }),
        (
            format!("{{\"e\":\"executionReport\",{}", &report(&[])[1..]),
            ApiError::DuplicateField("e"),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(one(&text), Err(want), "{text}");
    }
    // Truncations are errors; corruption never panics and never appends half an event.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for r in [
        report(&[
            ("x", "\"TRADE\""),
            ("t", "5"),
            ("N", "\"USDT\""),
            ("n", "\"1\""),
        ]),
        report(&[("x", "\"CANCELED\""), ("C", "\"tl-3\"")]),
        format!("{{\"subscriptionId\":0,\"event\":{}}}", report(&[])),
    ] {
        for cut in 0..r.len() {
            let mut out = Vec::new();
            assert!(parse_execution_report(&r.as_bytes()[..cut], &symbols(), 0, &mut out).is_err());
            assert!(out.is_empty());
        }
        for _ in 0..3000 {
            let mut m = r.clone().into_bytes();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % m.len() as u64) as usize;
                let alphabet = b"{}[]\":,0123456789-.nul\\ \xc3";
                m[i] = alphabet[(x >> 32) as usize % alphabet.len()];
            }
            let mut out = Vec::new();
            match parse_execution_report(&m, &symbols(), 0, &mut out) {
                Ok(n) => assert_eq!(n, out.len()),
                Err(_) => assert!(out.is_empty()),
            }
        }
    }
}

// ---- secrets.

#[test]
fn the_secret_never_appears_in_debug_display_errors_or_messages() {
    let secret = DOC_SECRET;
    let creds = doc_creds();
    for s in [
        format!("{creds:?}"),
        format!("{creds}"),
        format!("{:?}", Secret::new(secret)),
        format!("{}", Secret::new(secret)),
    ] {
        assert!(!s.contains(secret), "{s}");
        assert!(!s.contains(DOC_API_KEY), "API key shown in full: {s}");
        assert!(s.contains("<redacted>"), "{s}");
    }
    let ed = ed_creds();
    let seed_hex = hex(&ed_key().to_bytes());
    for s in [format!("{ed:?}"), format!("{ed}")] {
        assert!(!s.contains(&seed_hex), "{s}");
        assert!(s.contains("<redacted>"), "{s}");
    }

    // Every encoded message: the API key and the signature, never the secret.
    let mut enc = OrderEncoder::new(doc_creds(), 5000);
    assert!(!format!("{enc:?}").contains(secret));
    let req = OrderRequest {
        side: Side::Buy,
        price: px("1"),
        qty: qty("1"),
        order_type: OrderType::LimitGtc,
    };
    let msgs = [
        enc.place(1, "BTCUSDT", cid(1), &req, 1).to_string(),
        enc.cancel(2, "BTCUSDT", cid(1), 1).to_string(),
        enc.open_orders(3, None, 1).to_string(),
        enc.signed_request(4, "order.status", &[("orderId", Param::Int(1))], 1)
            .unwrap()
            .to_string(),
    ];
    for m in &msgs {
        assert!(!m.contains(secret), "{m}");
        assert!(m.contains(DOC_API_KEY));
    }

    // Errors from key files that contain the secret in bad places.
    let dir = TempDir::new("leak");
    let files = [
        format!("api_key = K\n{secret}\n"),
        format!("api_key = K\n{secret} = 1\n"),
        format!("api_key = K\napi_secret = {secret}\napi_secret = {secret}\n"),
        format!("api_key = K\napi_secret = {secret}\ned25519_key_file = x.pem\n"),
        format!("api_key = K{secret}\"\napi_secret = {secret}\n"),
        format!("api_key = K\ned25519_key_file = {secret}\n"),
    ];
    for (i, text) in files.iter().enumerate() {
        let p = dir.write(&format!("k{i}"), text, 0o600);
        let e = Credentials::from_file(&p).unwrap_err();
        for s in [format!("{e}"), format!("{e:?}")] {
            assert!(!s.contains(secret), "file {i}: {s}");
        }
    }
    let p = dir.write(
        "open",
        &format!("api_key = K\napi_secret = {secret}\n"),
        0o644,
    );
    let e = Credentials::from_file(&p).unwrap_err();
    assert!(!format!("{e} {e:?}").contains(secret));
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = TempDir::new("mode");
    let text = format!("# test\n\napi_key = {DOC_API_KEY}\n  api_secret =  {DOC_SECRET}  \n");
    let open = dir.write("open.conf", &text, 0o644);
    let e = Credentials::from_file(&open).unwrap_err();
    assert_eq!(
        e,
        ApiError::InsecurePermissions {
            path: open.clone(),
            mode: 0o644
        }
    );
    assert!(e.to_string().contains("chmod 600"), "{e}");
    for mode in [0o640, 0o604, 0o620, 0o602, 0o610] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(matches!(
            Credentials::from_file(&open),
            Err(ApiError::InsecurePermissions { .. })
        ));
    }
    let private = dir.write("private.conf", &text, 0o600);
    let creds = Credentials::from_file(&private).unwrap();
    assert_eq!(creds.api_key(), DOC_API_KEY);
    assert_eq!(creds.sign(DOC_PAYLOAD), DOC_SIGNATURE, "secret read intact");
    let ro = dir.write("ro.conf", &text, 0o400);
    assert!(Credentials::from_file(&ro).is_ok());

    // Syntax errors name the line, not its content.
    for (text, line, problem) in [
        ("api_key = K\nnonsense\n", 2, "expected `key = value`"),
        (
            "api_key = K\nfoo = 1\n",
            2,
            "unknown key (expected api_key, api_secret or ed25519_key_file)",
        ),
        (
            "api_key = K\napi_key = L\napi_secret = s\n",
            2,
            "key given twice",
        ),
        ("api_key =\n", 1, "empty value"),
        ("api_secret = s\n", 0, "no api_key"),
        (
            "api_key = K\n",
            0,
            "neither api_secret nor ed25519_key_file",
        ),
    ] {
        let p = dir.write("bad.conf", text, 0o600);
        assert_eq!(
            Credentials::from_file(&p).map(|_| ()),
            Err(ApiError::KeyFile {
                path: p.clone(),
                line,
                problem
            }),
            "{text:?}"
        );
    }
    let p = dir.write("badkey.conf", "api_key = a\"b\napi_secret = s\n", 0o600);
    assert_eq!(
        Credentials::from_file(&p).map(|_| ()),
        Err(ApiError::BadApiKey)
    );
    assert!(matches!(
        Credentials::from_file(&dir.0.join("missing.conf")),
        Err(ApiError::Io {
            kind: std::io::ErrorKind::NotFound,
            ..
        })
    ));
}

#[test]
fn ed25519_key_files_and_environment() {
    let dir = TempDir::new("ed");
    let der = ed_key().to_pkcs8_der().unwrap();
    let body = b64_encode(der.as_bytes());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    dir.write("binance.pem", &pem, 0o600);
    let conf = dir.write(
        "tickline.conf",
        "api_key = edKEY123\ned25519_key_file = binance.pem\n",
        0o600,
    );
    let creds = Credentials::from_file(&conf).unwrap();
    match &creds {
        Credentials::Ed25519 { api_key, key } => {
            assert_eq!(api_key, "edKEY123");
            assert_eq!(key.to_bytes(), ed_key().to_bytes());
        }
        other => panic!("{other:?}"),
    }
    // RFC 8410 section 10.3's example private key.
    let rfc = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    let rfc_path = dir.write("rfc8410.pem", rfc, 0o600);
    let conf2 = dir.write(
        "rfc.conf",
        &format!("api_key = k\ned25519_key_file = {}\n", rfc_path.display()),
        0o600,
    );
    match Credentials::from_file(&conf2).unwrap() {
        Credentials::Ed25519 { key, .. } => assert_eq!(
            hex(&key.to_bytes()),
            "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842"
        ),
        other => panic!("{other:?}"),
    }
    // A missing PEM file is named by where it was configured, never by the "path" itself
    // (which is the key when someone pastes the key instead of its path).
    let pasted = dir.write(
        "pasted.conf",
        "api_key = k\ned25519_key_file = MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n",
        0o600,
    );
    let e = Credentials::from_file(&pasted).map(|_| ()).unwrap_err();
    assert_eq!(
        e,
        ApiError::PemUnreadable {
            named_by: format!("line 2 of {}", pasted.display()),
            kind: std::io::ErrorKind::NotFound
        }
    );
    assert!(!format!("{e} {e:?}").contains("MC4CAQAw"), "{e}");
    // The PEM file is held to the same permission rule; garbage is a clear error.
    let pem_open = dir.write("open.pem", &pem, 0o644);
    let garbage = dir.write(
        "garbage.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        0o600,
    );

    // Each test uses its own variable prefix, so parallel tests do not see each other's.
    std::env::set_var("TLTEST_ED_API_KEY", "edKEY123");
    std::env::set_var("TLTEST_ED_ED25519_KEY_FILE", dir.0.join("binance.pem"));
    let env = Credentials::from_env("TLTEST_ED").unwrap();
    assert!(matches!(env, Credentials::Ed25519 { .. }));
    std::env::set_var("TLTEST_ED_ED25519_KEY_FILE", &pem_open);
    assert!(matches!(
        Credentials::from_env("TLTEST_ED"),
        Err(ApiError::InsecurePermissions { .. })
    ));
    std::env::set_var("TLTEST_ED_ED25519_KEY_FILE", &garbage);
    assert_eq!(
        Credentials::from_env("TLTEST_ED").map(|_| ()),
        Err(ApiError::BadEd25519Key {
            path: garbage.clone()
        })
    );

    std::env::set_var("TLTEST_HM_API_KEY", DOC_API_KEY);
    std::env::set_var("TLTEST_HM_API_SECRET", DOC_SECRET);
    let hm = Credentials::from_env("TLTEST_HM").unwrap();
    assert_eq!(hm.sign(DOC_PAYLOAD), DOC_SIGNATURE);
    std::env::set_var("TLTEST_HM_ED25519_KEY_FILE", dir.0.join("binance.pem"));
    assert_eq!(
        Credentials::from_env("TLTEST_HM").map(|_| ()),
        Err(ApiError::AmbiguousEnv {
            prefix: "TLTEST_HM".into()
        })
    );
    assert_eq!(
        Credentials::from_env("TLTEST_NONE").map(|_| ()),
        Err(ApiError::MissingEnv {
            var: "TLTEST_NONE_API_KEY".into()
        })
    );
    std::env::set_var("TLTEST_NS_API_KEY", "k");
    assert!(matches!(
        Credentials::from_env("TLTEST_NS"),
        Err(ApiError::MissingEnv { .. })
    ));
}

// ---- cost.

#[test]
fn encoding_and_signing_allocate_nothing_after_warm_up() {
    let syms = symbols();
    let mut out = Vec::with_capacity(16);
    let trade = report(&[
        ("x", "\"TRADE\""),
        ("t", "5"),
        ("N", "\"USDT\""),
        ("n", "\"1\""),
    ]);
    for creds in [doc_creds(), ed_creds()] {
        let mut enc = OrderEncoder::new(creds, 5000);
        let req = OrderRequest {
            side: Side::Sell,
            price: px("92233720368.54775807"),
            qty: qty("92233720368.54775807"),
            order_type: OrderType::LimitFok,
        };
        let mut run = |enc: &mut OrderEncoder, i: u64| {
            let a = enc
                .place(
                    u64::MAX - i,
                    "BTCUSDT",
                    ClientOrderId::probe(u64::MAX),
                    &req,
                    u64::MAX,
                )
                .len();
            let b = enc.cancel(i, "BTCUSDT", cid(i), i).len();
            let c = enc.open_orders(i, Some("BTCUSDT"), i).len();
            out.clear();
            parse_execution_report(trade.as_bytes(), &syms, i, &mut out).unwrap();
            a + b + c
        };
        run(&mut enc, 0);
        let before = thread_allocations();
        let mut total = 0;
        for i in 0..200 {
            total += run(&mut enc, i);
        }
        assert!(total > 0);
        assert_eq!(
            thread_allocations() - before,
            0,
            "allocations after warm-up"
        );
    }
}

/// Rough per-call costs, for the module docs (a timing loop, not a criterion benchmark):
/// `cargo test --release --test binance_api timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn timings() {
    let syms = symbols();
    let trade = report(&[
        ("x", "\"TRADE\""),
        ("t", "5"),
        ("N", "\"USDT\""),
        ("n", "\"1\""),
    ]);
    let req = OrderRequest {
        side: Side::Sell,
        price: px("61837.63"),
        qty: qty("0.001"),
        order_type: OrderType::LimitIoc,
    };
    let n = 20_000u32;
    for (name, creds) in [("HMAC", doc_creds()), ("Ed25519", ed_creds())] {
        let mut enc = OrderEncoder::new(creds, 5000);
        for session in [false, true] {
            enc.set_session_authenticated(session);
            let t = std::time::Instant::now();
            for i in 0..n as u64 {
                std::hint::black_box(enc.place(i, "BTCUSDT", cid(i), &req, 1_700_000_000_000 + i));
            }
            let what = if session {
                "unsigned (session)"
            } else {
                "signed"
            };
            println!("{name} order.place {what}: {:?}", t.elapsed() / n);
        }
    }
    let mut out = Vec::with_capacity(4);
    let t = std::time::Instant::now();
    for i in 0..n * 10 {
        out.clear();
        parse_execution_report(trade.as_bytes(), &syms, i as u64, &mut out).unwrap();
    }
    println!(
        "executionReport TRADE ({} B): {:?}",
        trade.len(),
        t.elapsed() / (n * 10)
    );
    let placed = br#"{"id":56,"status":200,"result":{"symbol":"BTCUSDT","orderId":12569099453,"orderListId":-1,"clientOrderId":"tl-17","transactTime":1660801715639,"price":"23416.10000000","origQty":"0.00847000","executedQty":"0.00000000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.00000000","status":"NEW","timeInForce":"GTC","type":"LIMIT","side":"SELL","workingTime":1660801715639,"selfTradePreventionMode":"NONE"},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50,"count":1}]}"#;
    let t = std::time::Instant::now();
    for _ in 0..n * 10 {
        std::hint::black_box(parse_reply(std::hint::black_box(placed)).unwrap());
    }
    println!(
        "order.place reply ({} B): {:?}",
        placed.len(),
        t.elapsed() / (n * 10)
    );
}
