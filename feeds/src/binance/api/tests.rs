//! Unit tests of the codec's private parts (params, number writers, key tables, readers).

use super::credentials::*;
use super::encode::*;
use super::reply::*;
use super::*;
use crate::json::Scanner;
use engine::fixed::Price;

fn hmac_creds() -> Credentials {
    Credentials::hmac("abcd1234", Secret::new("s3cr3t-value")).unwrap()
}

#[test]
fn binance_api_params_sort_in_byte_order() {
    let mut p = Params::new();
    for k in [
        "type",
        "timestamp",
        "timeInForce",
        "apiKey",
        "newOrderRespType",
        "newClientOrderId",
    ] {
        assert!(p.push(k, V::Int(1)));
    }
    let keys: Vec<&str> = p.sorted().iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "apiKey",
            "newClientOrderId",
            "newOrderRespType",
            "timeInForce",
            "timestamp",
            "type"
        ]
    );
    let mut full = Params::new();
    for _ in 0..MAX_PARAMS {
        assert!(full.push("a", V::Int(0)));
    }
    assert!(!full.push("b", V::Int(0)));
}

#[test]
fn binance_api_report_key_table_is_consistent() {
    for (i, k) in REPORT_KEYS.iter().enumerate() {
        assert_eq!(report_key(k.as_bytes()), Some(i));
    }
    assert_eq!(report_key(b"S"), None);
    assert_eq!(report_key(b"Cs"), None);
}

#[test]
fn binance_api_number_writers_match_display() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut vals = vec![
        0,
        1,
        9,
        10,
        99_999_999,
        100_000_000,
        u64::MAX,
        i64::MAX as u64,
    ];
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        vals.push(x >> (x % 64));
    }
    for v in vals {
        let mut s = String::new();
        push_u64(&mut s, v);
        assert_eq!(s, v.to_string());
        for u in [v as i64, (v as i64).wrapping_neg(), i64::MIN, i64::MAX, 0] {
            let mut s = String::new();
            push_fixed(&mut s, u);
            assert_eq!(s, Price(u).to_string());
        }
    }
}

#[test]
fn binance_api_quote_asset_rule() {
    assert!(is_quote_asset("BTCUSDT", b"USDT"));
    assert!(!is_quote_asset("BTCUSDT", b"BTC"));
    assert!(!is_quote_asset("BTCUSDT", b"BNB"));
    assert!(is_quote_asset("ETHBTC", b"BTC"));
    assert!(!is_quote_asset("TUSDT", b"T"), "T/USDT: T is the base");
    assert!(is_quote_asset("TUSDT", b"USDT"));
    assert!(!is_quote_asset("USDT", b"USDT"));
    assert!(!is_quote_asset("BTCUSDT", b""));
}

#[test]
fn binance_api_symbols_and_keys_cannot_break_out_of_json() {
    let mut enc = OrderEncoder::new(
        Credentials::Hmac {
            api_key: "ke\"y&=1".into(),
            secret: Secret::new("x"),
        },
        0,
    );
    assert_eq!(enc.api_key(), "key1");
    let json = enc
        .open_orders(1, Some("btc\"usdt\\\u{e9}-x"), 5)
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["params"]["symbol"], "BTCUSDTX");
    assert_eq!(v["params"]["apiKey"], "key1");
}

#[test]
fn binance_api_signer_of_and_sign_agree() {
    let creds = hmac_creds();
    let sig = creds.sign("a=1&b=2");
    assert_eq!(sig.len(), 64);
    assert!(sig
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let mut enc = OrderEncoder::new(creds, 0);
    let json = enc
        .signed_request(1, "x.y", &[("a", Param::Int(1))], 2)
        .unwrap()
        .to_string();
    assert_eq!(enc.payload(), "a=1&apiKey=abcd1234&timestamp=2");
    assert!(json.ends_with(&format!(
        ",\"signature\":\"{}\"}}}}",
        hmac_creds().sign("a=1&apiKey=abcd1234&timestamp=2")
    )));
}

#[test]
fn binance_api_i64_reader() {
    let b = br#"[-1,0,9223372036854775807,-9223372036854775808,9223372036854775808,1.5]"#;
    let mut sc = Scanner::new(b);
    sc.begin_array().unwrap();
    let mut got = Vec::new();
    while sc.next_element().unwrap() {
        let r = sc.skip_value().unwrap();
        got.push(i64_at(b, r.start, "t"));
    }
    assert_eq!(got[0], Ok(-1));
    assert_eq!(got[1], Ok(0));
    assert_eq!(got[2], Ok(i64::MAX));
    assert_eq!(got[3], Ok(i64::MIN));
    assert_eq!(got[4], Err(ApiError::IntOverflow { field: "t" }));
    assert_eq!(got[5], Err(ApiError::WrongType { field: "t" }));
}
