//! Coinbase Exchange's public WebSocket feed, as `wss://ws-feed.exchange.coinbase.com` serves
//! it (path `/`).
//!
//! - `{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2","matches",{"name":"ticker","product_ids":[..]}]}`
//!   (and `unsubscribe`) -> `{"type":"subscriptions","channels":[{"name":..,"product_ids":[..]},..]}`
//!   listing everything the connection is subscribed to afterwards; an unknown product or channel
//!   -> `{"type":"error","message":"Failed to subscribe","reason":..}` (nothing subscribed).
//! - `level2` (or `level2_batch`): a `snapshot` of the whole book on subscribe (and whenever a
//!   replayed capture's own snapshot replaces the book), then an
//!   `l2update` per change, `changes` as `[side, price, size]` with absolute sizes (`"0"`
//!   removes). Like the real channel it carries no sequence number (the decoder numbers them).
//! - `matches`: a `last_match` on subscribe, then a `match` per trade, `side` the maker's.
//! - `ticker`: one per trade (and one on subscribe once there was a trade), with the best bid
//!   and ask after it.
//! - `heartbeat`: `{"type":"heartbeat","sequence","last_trade_id","product_id","time"}` every
//!   second per product.
//!
//! Every product has one `sequence` that rises by one on each change of its book and each
//! trade, so `match`, `ticker` and `heartbeat` frames of a product are ordered by it (a
//! client that subscribes to `matches` alone sees it jump, as on the real feed).

use super::model::{fmt_dec, iso_time, Market, MdEvent, Side, SymState};
use super::{ConnInfo, Protocol, Reply, Topic, TopicKind};
use engine::venue::Venue;
use serde_json::Value;
use std::fmt::Write as _;

#[derive(Debug)]
pub(crate) struct Coinbase;

const CHANNELS: [(TopicKind, u16, &str); 5] = [
    (TopicKind::Book, 0, "level2"),
    (TopicKind::Book, 1, "level2_batch"),
    (TopicKind::Heartbeat, 0, "heartbeat"),
    (TopicKind::Ticker, 0, "ticker"),
    (TopicKind::Trades, 0, "matches"),
];

fn channel_of(name: &str) -> Option<(TopicKind, u16)> {
    CHANNELS.iter().find(|c| c.2 == name).map(|c| (c.0, c.1))
}

fn json(s: &str) -> String {
    feeds::venue::json_string(s)
}

fn order_id(kind: u8, sym: usize, id: u64) -> String {
    format!("{sym:08x}-0000-4000-8{kind:03x}-{id:012x}")
}

fn match_frame(s: &SymState, sym: usize, kind: &str) -> Option<String> {
    let t = s.last_trade?;
    Some(format!(
        "{{\"type\":\"{kind}\",\"trade_id\":{},\"maker_order_id\":\"{}\",\"taker_order_id\":\"{}\",\
         \"side\":\"{}\",\"size\":\"{}\",\"price\":\"{}\",\"product_id\":{},\"sequence\":{},\
         \"time\":\"{}\"}}",
        t.id,
        order_id(1, sym, t.id),
        order_id(2, sym, t.id),
        if t.taker_buy { "sell" } else { "buy" },
        fmt_dec(t.qty),
        fmt_dec(t.price),
        json(&s.name),
        t.seq,
        iso_time(t.exch_ms)
    ))
}

fn ticker_frame(s: &SymState) -> Option<String> {
    let t = s.last_trade?;
    let (bid, ask) = s.best();
    let (bp, bq) = bid.unwrap_or((0, 0));
    let (ap, aq) = ask.unwrap_or((0, 0));
    let price = fmt_dec(t.price);
    Some(format!(
        "{{\"type\":\"ticker\",\"sequence\":{},\"product_id\":{},\"price\":\"{price}\",\
         \"open_24h\":\"{price}\",\"volume_24h\":\"{}\",\"low_24h\":\"{price}\",\"high_24h\":\"{price}\",\
         \"volume_30d\":\"{}\",\"best_bid\":\"{}\",\"best_bid_size\":\"{}\",\"best_ask\":\"{}\",\
         \"best_ask_size\":\"{}\",\"side\":\"{}\",\"time\":\"{}\",\"trade_id\":{},\"last_size\":\"{}\"}}",
        t.seq,
        json(&s.name),
        fmt_dec(s.volume),
        fmt_dec(s.volume),
        fmt_dec(bp),
        fmt_dec(bq),
        fmt_dec(ap),
        fmt_dec(aq),
        if t.taker_buy { "buy" } else { "sell" },
        iso_time(t.exch_ms),
        t.id,
        fmt_dec(t.qty)
    ))
}

fn push_levels(out: &mut String, levels: impl Iterator<Item = (i64, i64)>) {
    out.push('[');
    for (i, (p, q)) in levels.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[\"{}\",\"{}\"]", fmt_dec(p), fmt_dec(q));
    }
    out.push(']');
}

fn snapshot_frame(s: &SymState) -> String {
    let mut f = format!(
        "{{\"type\":\"snapshot\",\"product_id\":{},\"bids\":",
        json(&s.name)
    );
    push_levels(&mut f, s.top_bids(usize::MAX));
    f.push_str(",\"asks\":");
    push_levels(&mut f, s.top_asks(usize::MAX));
    f.push('}');
    f
}

impl Coinbase {
    fn error(r: &mut Reply, reason: &str) {
        r.error = true;
        r.texts.push(format!(
            "{{\"type\":\"error\",\"message\":\"Failed to subscribe\",\"reason\":{}}}",
            json(reason)
        ));
    }

    /// The `subscriptions` message for `subs`.
    fn subscriptions(subs: &[Topic], market: &Market) -> String {
        let mut out = String::from("{\"type\":\"subscriptions\",\"channels\":[");
        let mut first = true;
        for (kind, variant, name) in CHANNELS {
            let ids: Vec<String> = subs
                .iter()
                .filter(|t| t.kind == kind && t.variant == variant)
                .filter_map(|t| market.syms.get(t.sym as usize))
                .map(|s| json(&s.name))
                .collect();
            if ids.is_empty() {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(
                out,
                "{{\"name\":\"{name}\",\"product_ids\":[{}]}}",
                ids.join(",")
            );
        }
        out.push_str("]}");
        out
    }
}

impl Protocol for Coinbase {
    fn venue(&self) -> Venue {
        Venue::Coinbase
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/"]
    }

    fn on_text(&self, text: &str, conn: &ConnInfo<'_>, market: &Market) -> Reply {
        let mut r = Reply::default();
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                Self::error(&mut r, "malformed JSON");
                return r;
            }
        };
        let subscribe = match v.get("type").and_then(Value::as_str) {
            Some("subscribe") => true,
            Some("unsubscribe") => false,
            _ => {
                Self::error(&mut r, "Type has to be either subscribe or unsubscribe");
                return r;
            }
        };
        let names = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let products = names(v.get("product_ids"));
        let mut wanted: Vec<Topic> = Vec::new();
        let Some(channels) = v.get("channels").and_then(Value::as_array) else {
            Self::error(&mut r, "channels must be an array");
            return r;
        };
        for c in channels {
            let (name, ids) = match c {
                Value::String(n) => (n.clone(), products.clone()),
                Value::Object(o) => {
                    let n = o.get("name").and_then(Value::as_str).unwrap_or("");
                    let mut ids = names(o.get("product_ids"));
                    if ids.is_empty() {
                        ids.clone_from(&products);
                    }
                    (n.to_string(), ids)
                }
                _ => (String::new(), Vec::new()),
            };
            let Some((kind, variant)) = channel_of(&name) else {
                Self::error(&mut r, &format!("{name} is not a valid channel"));
                return r;
            };
            if ids.is_empty() {
                Self::error(&mut r, &format!("No product ids provided for {name}"));
                return r;
            }
            for id in ids {
                let Some(sym) = market.find(&id) else {
                    Self::error(&mut r, &format!("{id} is not a valid product"));
                    return r;
                };
                let t = Topic::new(kind, sym, variant);
                if !wanted.contains(&t) {
                    wanted.push(t);
                }
            }
        }
        let mut after: Vec<Topic> = conn.subs.to_vec();
        for t in wanted {
            if subscribe {
                if !after.contains(&t) {
                    after.push(t);
                    r.add.push(t);
                }
            } else if after.contains(&t) {
                after.retain(|x| *x != t);
                r.remove.push(t);
            }
        }
        r.texts.push(Self::subscriptions(&after, market));
        r
    }

    fn publish(&self, ev: &MdEvent, market: &mut Market, out: &mut Vec<(Topic, String)>) {
        let sym = ev.sym();
        let Some(s) = market.syms.get_mut(sym) else {
            return;
        };
        match ev {
            MdEvent::Depth {
                changes, exch_ms, ..
            } => {
                s.seq += 1;
                let mut f = format!(
                    "{{\"type\":\"l2update\",\"product_id\":{},\"changes\":[",
                    json(&s.name)
                );
                for (i, (side, p, q)) in changes.iter().enumerate() {
                    if i > 0 {
                        f.push(',');
                    }
                    let side = if *side == Side::Bid { "buy" } else { "sell" };
                    let _ = write!(f, "[\"{side}\",\"{}\",\"{}\"]", fmt_dec(*p), fmt_dec(*q));
                }
                let _ = write!(f, "],\"time\":\"{}\"}}", iso_time(*exch_ms));
                out.push((Topic::new(TopicKind::Book, sym, 1), f.clone()));
                out.push((Topic::new(TopicKind::Book, sym, 0), f));
            }
            MdEvent::Trade { .. } => {
                s.seq += 1;
                let seq = s.seq;
                if let Some(t) = &mut s.last_trade {
                    t.seq = seq;
                }
                if let Some(f) = match_frame(s, sym, "match") {
                    out.push((Topic::new(TopicKind::Trades, sym, 0), f));
                }
                if let Some(f) = ticker_frame(s) {
                    out.push((Topic::new(TopicKind::Ticker, sym, 0), f));
                }
            }
            MdEvent::Snapshot { .. } => {
                let f = snapshot_frame(s);
                out.push((Topic::new(TopicKind::Book, sym, 1), f.clone()));
                out.push((Topic::new(TopicKind::Book, sym, 0), f));
            }
            MdEvent::Ticker { .. } => {}
        }
    }

    fn on_subscribe(&self, topic: Topic, _: &ConnInfo<'_>, market: &Market, out: &mut Vec<String>) {
        let sym = topic.sym as usize;
        let Some(s) = market.syms.get(sym) else {
            return;
        };
        match topic.kind {
            TopicKind::Book if s.has_book => out.push(snapshot_frame(s)),
            TopicKind::Trades => out.extend(match_frame(s, sym, "last_match")),
            TopicKind::Ticker => out.extend(ticker_frame(s)),
            _ => {}
        }
    }

    fn tick(&self, topic: Topic, market: &Market, out: &mut Vec<String>) {
        let Some(s) = market.syms.get(topic.sym as usize) else {
            return;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        out.push(format!(
            "{{\"type\":\"heartbeat\",\"last_trade_id\":{},\"product_id\":{},\"sequence\":{},\"time\":\"{}\"}}",
            s.last_trade.map_or(0, |t| t.id),
            json(&s.name),
            s.seq,
            iso_time(now_ms)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_list_everything_after_the_change() {
        let m = Market::new(&["BTC-USD".into(), "ETH-USD".into()]);
        let info = ConnInfo {
            conn_id: "c",
            path: "/",
            subs: &[],
        };
        let r = Coinbase.on_text(
            r#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2",{"name":"ticker","product_ids":["ETH-USD"]}]}"#,
            &info,
            &m,
        );
        assert!(!r.error);
        assert_eq!(r.add.len(), 2);
        assert_eq!(
            r.texts,
            [
                r#"{"type":"subscriptions","channels":[{"name":"level2","product_ids":["BTC-USD"]},{"name":"ticker","product_ids":["ETH-USD"]}]}"#
            ]
        );
        let subs = r.add.clone();
        let info = ConnInfo {
            conn_id: "c",
            path: "/",
            subs: &subs,
        };
        let r = Coinbase.on_text(
            r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2"]}"#,
            &info,
            &m,
        );
        assert_eq!(r.remove.len(), 1);
        assert!(r.texts[0].contains("ticker") && !r.texts[0].contains("level2"));
        let r = Coinbase.on_text(
            r#"{"type":"subscribe","product_ids":["DOGE-USD"],"channels":["level2"]}"#,
            &info,
            &m,
        );
        assert!(r.error && r.add.is_empty());
        assert!(r.texts[0].contains("DOGE-USD is not a valid product"));
    }
}
