//! Bybit v5 public market data, as `wss://stream.bybit.com/v5/public/spot` and
//! `/v5/public/linear` serve it (both paths are served; the path decides the `tickers` format
//! and the acks' wording, as on Bybit).
//!
//! - `{"op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT"],"req_id":"1"}`
//!   (and `unsubscribe`) -> one `{"success":true,"ret_msg":"","conn_id":..,"req_id":"1","op":"subscribe"}`
//!   (spot says `"ret_msg":"subscribe"`); an unknown topic or instrument, or one subscribed
//!   already, makes it `"success":false` with `"ret_msg":"error:handler not found,topic:.."`
//!   or `"error:already subscribed,topic:.."` (the valid topics of the request still count).
//! - `orderbook.{50,200,500}.{symbol}`: a `snapshot` of the top N levels on subscribe (and
//!   whenever a replayed capture's own snapshot replaces the book), then
//!   `delta`s; `data.u` rises by exactly 1 per message and `data.seq` (the cross sequence) rises
//!   too, shared with the trades. A delta carries every change of the book, also those beyond
//!   the top N (harmless to a client: they never reach its top N).
//! - `publicTrade.{symbol}`: `{"T","s","S":"Buy"|"Sell","v","p","L","i","BT":false,"seq"}`, `S`
//!   the taker's side.
//! - `tickers.{symbol}`: linear, a `snapshot` on subscribe then `delta`s with `bid1Price`,
//!   `bid1Size`, `ask1Price`, `ask1Size` on every top-of-book change and `cs`; spot, a
//!   `snapshot` with `lastPrice` on every trade.
//! - Heartbeat: `{"op":"ping","req_id":..}` -> `{"success":true,"ret_msg":"pong",..,"op":"ping"}`.

use super::model::{fmt_dec, Market, MdEvent, Side, SymState};
use super::{ConnInfo, Protocol, Reply, Topic, TopicKind};
use engine::venue::Venue;
use serde_json::Value;
use std::fmt::Write as _;

const DEPTHS: [u16; 3] = [50, 200, 500];
/// Ticker topic variants: the linear and the spot format.
const LINEAR: u16 = 0;
const SPOT: u16 = 1;

#[derive(Debug)]
pub(crate) struct Bybit {
    pub(crate) venue: Venue,
}

fn json(s: &str) -> String {
    feeds::venue::json_string(s)
}

fn topic_name(t: Topic, s: &SymState) -> String {
    match t.kind {
        TopicKind::Book => format!("orderbook.{}.{}", t.variant, s.name),
        TopicKind::Trades => format!("publicTrade.{}", s.name),
        TopicKind::Ticker | TopicKind::Heartbeat => format!("tickers.{}", s.name),
    }
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

fn book_frame(
    t: Topic,
    s: &SymState,
    kind: &str,
    bids: impl Iterator<Item = (i64, i64)>,
    asks: impl Iterator<Item = (i64, i64)>,
) -> String {
    let mut f = format!(
        "{{\"topic\":\"{}\",\"type\":\"{kind}\",\"ts\":{},\"data\":{{\"s\":{},\"b\":",
        topic_name(t, s),
        s.exch_ms,
        json(&s.name)
    );
    push_levels(&mut f, bids);
    f.push_str(",\"a\":");
    push_levels(&mut f, asks);
    let _ = write!(
        f,
        ",\"u\":{},\"seq\":{}}},\"cts\":{}}}",
        s.book_id, s.seq, s.exch_ms
    );
    f
}

fn linear_ticker(t: Topic, s: &SymState, kind: &str) -> Option<String> {
    let (Some((bp, bq)), Some((ap, aq))) = s.best() else {
        return None;
    };
    let last = s.last_trade.map_or(String::new(), |t| {
        format!(",\"lastPrice\":\"{}\"", fmt_dec(t.price))
    });
    Some(format!(
        "{{\"topic\":\"{}\",\"type\":\"{kind}\",\"data\":{{\"symbol\":{},\"bid1Price\":\"{}\",\
         \"bid1Size\":\"{}\",\"ask1Price\":\"{}\",\"ask1Size\":\"{}\"{last}}},\"cs\":{},\"ts\":{}}}",
        topic_name(t, s),
        json(&s.name),
        fmt_dec(bp),
        fmt_dec(bq),
        fmt_dec(ap),
        fmt_dec(aq),
        s.seq,
        s.exch_ms
    ))
}

fn spot_ticker(t: Topic, s: &SymState) -> Option<String> {
    let last = fmt_dec(s.last_trade?.price);
    Some(format!(
        "{{\"topic\":\"{}\",\"ts\":{},\"type\":\"snapshot\",\"cs\":{},\"data\":{{\"symbol\":{},\
         \"lastPrice\":\"{last}\",\"highPrice24h\":\"{last}\",\"lowPrice24h\":\"{last}\",\
         \"prevPrice24h\":\"{last}\",\"volume24h\":\"{}\",\"turnover24h\":\"0\",\
         \"price24hPcnt\":\"0\",\"usdIndexPrice\":\"{last}\"}}}}",
        topic_name(t, s),
        s.exch_ms,
        s.seq,
        json(&s.name),
        fmt_dec(s.volume)
    ))
}

impl Bybit {
    /// The topic a name stands for, with the ticker format of the connection's path.
    fn parse_topic(name: &str, spot: bool, market: &Market) -> Option<Topic> {
        let mut parts = name.split('.');
        let kind = parts.next()?;
        let (kind, variant) = match kind {
            "orderbook" => {
                let depth: u16 = parts.next()?.parse().ok()?;
                if !DEPTHS.contains(&depth) || (spot && depth == 500) {
                    return None;
                }
                (TopicKind::Book, depth)
            }
            "publicTrade" => (TopicKind::Trades, 0),
            "tickers" => (TopicKind::Ticker, if spot { SPOT } else { LINEAR }),
            _ => return None,
        };
        let sym = market.find(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Topic::new(kind, sym, variant))
    }
}

impl Protocol for Bybit {
    fn venue(&self) -> Venue {
        self.venue
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/v5/public/spot", "/v5/public/linear"]
    }

    fn on_text(&self, text: &str, conn: &ConnInfo<'_>, market: &Market) -> Reply {
        let mut r = Reply::default();
        let spot = conn.path.ends_with("/spot");
        let cid = conn.conn_id;
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let op = v.get("op").and_then(Value::as_str).unwrap_or("");
        // The request's `req_id`, echoed; without one, linear answers `""` and spot leaves it
        // out (as the real capture shows).
        let req_id = match v.get("req_id") {
            Some(Value::String(s)) => format!(",\"req_id\":{}", json(s)),
            Some(Value::Number(n)) => format!(",\"req_id\":{}", json(&n.to_string())),
            _ if spot => String::new(),
            _ => ",\"req_id\":\"\"".into(),
        };
        let answer = |ok: bool, msg: &str, op: &str| {
            format!(
                "{{\"success\":{ok},\"ret_msg\":{},\"conn_id\":\"{cid}\"{req_id},\"op\":\"{op}\"}}",
                json(msg)
            )
        };
        match op {
            "ping" => {
                r.heartbeat = true;
                r.texts.push(answer(true, "pong", "ping"));
                return r;
            }
            "subscribe" | "unsubscribe" => {}
            _ => {
                r.error = true;
                r.texts
                    .push(answer(false, &format!("error:unknown op {op:?}"), op));
                return r;
            }
        }
        let subscribe = op == "subscribe";
        let args: Vec<&str> = v
            .get("args")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut failed: Option<String> = None;
        if args.is_empty() {
            failed = Some("error:args is empty".into());
        }
        for name in args {
            match Self::parse_topic(name, spot, market) {
                None => {
                    failed.get_or_insert(format!("error:handler not found,topic:{name}"));
                }
                Some(t) if subscribe => {
                    if conn.subs.contains(&t) || r.add.contains(&t) {
                        failed.get_or_insert(format!("error:already subscribed,topic:{name}"));
                    } else {
                        r.add.push(t);
                    }
                }
                Some(t) => {
                    if conn.subs.contains(&t) && !r.remove.contains(&t) {
                        r.remove.push(t);
                    }
                }
            }
        }
        match failed {
            Some(msg) => {
                r.error = true;
                r.texts.push(answer(false, &msg, op));
            }
            None => {
                let msg = if spot { op } else { "" };
                r.texts.push(answer(true, msg, op));
            }
        }
        r
    }

    fn publish(&self, ev: &MdEvent, market: &mut Market, out: &mut Vec<(Topic, String)>) {
        let sym = ev.sym();
        let Some(s) = market.syms.get_mut(sym) else {
            return;
        };
        match ev {
            MdEvent::Depth { changes, .. } => {
                s.book_id += 1;
                s.seq += 1 + s.book_id % 5;
                for depth in DEPTHS {
                    let t = Topic::new(TopicKind::Book, sym, depth);
                    let pick = |side| {
                        changes
                            .iter()
                            .filter(move |c| c.0 == side)
                            .map(|c| (c.1, c.2))
                    };
                    out.push((
                        t,
                        book_frame(t, s, "delta", pick(Side::Bid), pick(Side::Ask)),
                    ));
                }
            }
            MdEvent::Trade {
                price,
                qty,
                taker_buy,
                exch_ms,
                ..
            } => {
                s.seq += 1;
                let t = Topic::new(TopicKind::Trades, sym, 0);
                let id = format!("{:08x}-0000-5000-8000-{:012x}", sym, s.trades);
                let f = format!(
                    "{{\"topic\":\"{}\",\"type\":\"snapshot\",\"ts\":{exch_ms},\"data\":[{{\"T\":{exch_ms},\
                     \"s\":{},\"S\":\"{}\",\"v\":\"{}\",\"p\":\"{}\",\"L\":\"ZeroPlusTick\",\"i\":\"{id}\",\
                     \"BT\":false,\"seq\":{}}}]}}",
                    topic_name(t, s),
                    json(&s.name),
                    if *taker_buy { "Buy" } else { "Sell" },
                    fmt_dec(*qty),
                    fmt_dec(*price),
                    s.seq
                );
                out.push((t, f));
                let t = Topic::new(TopicKind::Ticker, sym, SPOT);
                if let Some(f) = spot_ticker(t, s) {
                    out.push((t, f));
                }
            }
            MdEvent::Ticker { .. } => {
                let t = Topic::new(TopicKind::Ticker, sym, LINEAR);
                if let Some(f) = linear_ticker(t, s, "delta") {
                    out.push((t, f));
                }
            }
            MdEvent::Snapshot { .. } => {
                s.book_id += 1;
                s.seq += 1;
                for depth in DEPTHS {
                    let t = Topic::new(TopicKind::Book, sym, depth);
                    let n = usize::from(depth);
                    out.push((
                        t,
                        book_frame(t, s, "snapshot", s.top_bids(n), s.top_asks(n)),
                    ));
                }
            }
        }
    }

    fn on_subscribe(&self, t: Topic, _: &ConnInfo<'_>, market: &Market, out: &mut Vec<String>) {
        let Some(s) = market.syms.get(t.sym as usize) else {
            return;
        };
        if !s.has_book {
            return;
        }
        match (t.kind, t.variant) {
            (TopicKind::Book, depth) => {
                let n = usize::from(depth);
                out.push(book_frame(t, s, "snapshot", s.top_bids(n), s.top_asks(n)));
            }
            (TopicKind::Ticker, LINEAR) => out.extend(linear_ticker(t, s, "snapshot")),
            (TopicKind::Ticker, _) => out.extend(spot_ticker(t, s)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_pings_and_bad_topics() {
        let m = Market::new(&["BTCUSDT".into()]);
        let b = Bybit {
            venue: Venue::BybitSpot,
        };
        let info = ConnInfo {
            conn_id: "x",
            path: "/v5/public/linear",
            subs: &[],
        };
        let r = b.on_text(
            r#"{"op":"subscribe","args":["orderbook.50.BTCUSDT","tickers.BTCUSDT"],"req_id":"7"}"#,
            &info,
            &m,
        );
        assert_eq!(
            r.texts,
            [r#"{"success":true,"ret_msg":"","conn_id":"x","req_id":"7","op":"subscribe"}"#]
        );
        assert_eq!(
            r.add,
            [
                Topic::new(TopicKind::Book, 0, 50),
                Topic::new(TopicKind::Ticker, 0, LINEAR)
            ]
        );
        let r = b.on_text(r#"{"op":"ping","req_id":"p"}"#, &info, &m);
        assert!(r.heartbeat && r.texts[0].contains(r#""ret_msg":"pong""#));
        let r = b.on_text(
            r#"{"op":"subscribe","args":["orderbook.7.BTCUSDT"]}"#,
            &info,
            &m,
        );
        assert!(r.error && r.texts[0].contains("handler not found,topic:orderbook.7.BTCUSDT"));
        let spot = ConnInfo {
            conn_id: "x",
            path: "/v5/public/spot",
            subs: &[],
        };
        let r = b.on_text(
            r#"{"op":"subscribe","args":["orderbook.500.BTCUSDT"]}"#,
            &spot,
            &m,
        );
        assert!(r.error, "spot has no 500-level book");
    }
}
