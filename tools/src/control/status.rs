//! The status tree as JSON pieces and as the text `tickline ctl status` prints.

use super::controller::ControllerConfig;
use engine::status::{LeaderStatus, SymbolStatus};
use serde_json::{json, Map, Value};

/// The order session's health (`null` when orders go to the paper venue): `degraded` while the
/// venue has refused the user data stream (issue #15).
pub(super) fn order_session_json(cfg: &ControllerConfig) -> Value {
    if !cfg.live_orders {
        return Value::Null;
    }
    let stream = cfg.shared.user_stream();
    let state = match stream {
        feeds::orders::session::UserStream::Refused => "degraded",
        feeds::orders::session::UserStream::Active => "ok",
        _ => "waiting",
    };
    json!({
        "state": state,
        "user_stream": stream.as_str(),
        "user_stream_refused": cfg.shared.user_stream_refused(),
    })
}

pub(super) fn symbol_json(s: &SymbolStatus, subscribed: bool) -> Value {
    let halted = s.leader.as_ref().and_then(|l| l.halted.clone());
    let state = match (s.trading, &halted) {
        (false, _) => "idle",
        (true, Some(_)) => "halted",
        (true, None) => "trading",
    };
    json!({
        "symbol": s.symbol,
        "state": state,
        "trading": s.trading,
        "subscribed": subscribed,
        "strategy": s.strategy,
        "book_synced": s.book_synced,
        "position": s.position,
        "avg_price": s.avg_price,
        "pnl": {"realized": s.realized, "unrealized": s.unrealized, "fees": s.fees},
        "open_orders": s.open_orders,
        "leader": s.leader.as_ref().map(leader_json),
    })
}

fn leader_json(l: &LeaderStatus) -> Value {
    json!({
        "strategy": l.strategy,
        "params": l.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<String, Value>>(),
        "restarts": {"recent": l.recent_restarts, "max": l.max_restarts, "window_ms": l.window_ms},
        "halted": l.halted,
        "cycles": l.cycles,
        "traders": l.traders.iter().map(|t| json!({
            "index": t.index,
            "state": t.state,
            "restarts": t.restarts,
            "last_panic": t.last_panic,
        })).collect::<Vec<_>>(),
    })
}

/// The status tree (the `status` object of a reply) as text, one line per node.
pub fn render_status(status: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let e = &status["engine"];
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "engine  pid {}  up {:.0}s  {}  orders to {}  events {}  orders {}  fills {}  trader restarts {}  symbol halts {}",
        num(&e["pid"]),
        e["uptime_s"].as_f64().unwrap_or(0.0),
        e["trading_state"].as_str().unwrap_or("?"),
        e["orders_to"].as_str().unwrap_or("?"),
        num(&e["events"]),
        num(&e["orders"]),
        num(&e["fills"]),
        num(&e["trader_restarts"]),
        num(&e["symbol_halts"]),
    );
    let o = &status["order_session"];
    if o.is_object() {
        let _ = writeln!(
            out,
            "order session  {}  user stream {}  refused {}",
            o["state"].as_str().unwrap_or("?"),
            o["user_stream"].as_str().unwrap_or("?"),
            num(&o["user_stream_refused"]),
        );
    }
    let empty = Vec::new();
    let conns = status["connections"].as_array().unwrap_or(&empty);
    for (ci, c) in conns.iter().enumerate() {
        let last_c = ci + 1 == conns.len();
        let (branch, pad) = if last_c {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let _ = writeln!(
            out,
            "{branch}conn {}  {}  {}  {}  frames {}  connects {}  reconnect attempts {}  decode errors {}",
            num(&c["conn_id"]),
            c["kind"].as_str().unwrap_or(""),
            c["state"].as_str().unwrap_or("?"),
            c["url"].as_str().unwrap_or(""),
            num(&c["frames"]),
            num(&c["connects"]),
            num(&c["reconnect_attempts"]),
            num(&c["decode_errors"]),
        );
        let syms = c["symbols"].as_array().unwrap_or(&empty);
        for (si, s) in syms.iter().enumerate() {
            let last_s = si + 1 == syms.len();
            let (branch, spad) = if last_s {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let state = s["state"].as_str().unwrap_or("?");
            let mut line = format!(
                "{pad}{branch}{}  {state}",
                s["symbol"].as_str().unwrap_or("?")
            );
            if let Some(st) = s["strategy"].as_str() {
                let _ = write!(line, "  {st}");
            }
            // An unsubscribed symbol's book is not fed: whether it synced once says nothing.
            let feed = match (s["subscribed"] == true, s["book_synced"] == true) {
                (false, _) => "unsubscribed",
                (true, true) => "book synced",
                (true, false) => "book not synced",
            };
            let _ = write!(
                line,
                "  {feed}  position {} @ {}  pnl realized {:.4} unrealized {:.4} fees {:.4}  open orders {}",
                s["position"].as_str().unwrap_or("0"),
                s["avg_price"].as_str().unwrap_or("0"),
                s["pnl"]["realized"].as_f64().unwrap_or(0.0),
                s["pnl"]["unrealized"].as_f64().unwrap_or(0.0),
                s["pnl"]["fees"].as_f64().unwrap_or(0.0),
                num(&s["open_orders"]),
            );
            let _ = writeln!(out, "{line}");
            let l = &s["leader"];
            if l.is_null() {
                continue;
            }
            let lpad = format!("{pad}{spad}");
            let params: Vec<String> = l["params"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            let mut line = format!(
                "{lpad}└─ leader {}  restarts {}/{} in {} ms  cycles {}",
                l["strategy"].as_str().unwrap_or("?"),
                num(&l["restarts"]["recent"]),
                num(&l["restarts"]["max"]),
                num(&l["restarts"]["window_ms"]),
                num(&l["cycles"]),
            );
            if let Some(h) = l["halted"].as_str() {
                let _ = write!(line, "  HALTED: {h}");
            }
            if !params.is_empty() {
                let _ = write!(line, "  {}", params.join(" "));
            }
            let _ = writeln!(out, "{line}");
            let traders = l["traders"].as_array().unwrap_or(&empty);
            for (ti, t) in traders.iter().enumerate() {
                let branch = if ti + 1 == traders.len() {
                    "└─ "
                } else {
                    "├─ "
                };
                let mut line = format!(
                    "{lpad}   {branch}trader {}  {}  restarts {}",
                    num(&t["index"]),
                    t["state"].as_str().unwrap_or("?"),
                    num(&t["restarts"]),
                );
                if let Some(p) = t["last_panic"].as_str() {
                    let _ = write!(line, "  last panic: {p}");
                }
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}
