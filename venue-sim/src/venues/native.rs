//! A venue's own capture (cryptofeed's formats, read by `feeds::capture`) as [`MdEvent`]s, so
//! [`super::MdSim`] replays real OKX, Coinbase and Bybit data through its protocol.
//!
//! The frames are read with serde_json (a simulator's source, not a hot path) and re-rendered
//! by the venue's protocol: the books, trades and tops are the capture's; the ids are the
//! simulator's (OKX `seqId` and checksum, Bybit `u`/`seq`, Coinbase `sequence`), numbered over
//! what it serves, so a client that subscribes mid-capture still gets a snapshot its updates
//! chain from.
//!
//! | venue | read from the capture |
//! |---|---|
//! | OKX | `books` `snapshot` (replaces the book) and `update`, `trades`, `tickers` |
//! | Coinbase | `snapshot`, `l2update`, `match` (not `last_match`: it repeats a trade), `ticker` |
//! | Bybit | `orderbook.N` `snapshot`/`delta`, `publicTrade`, `tickers`, only from the connections whose URL is the venue's category (`/v5/public/spot` for spot, `/linear` for linear) |

use super::model::{parse_dec, Level, MdEvent, Side};
use engine::venue::Venue;
use serde_json::Value;
use std::collections::HashMap;

/// Reads one venue's frames into events.
#[derive(Debug)]
pub(crate) struct NativeTranslator {
    venue: Venue,
    names: Vec<String>,
    /// Bybit: whether each connection is the venue's category.
    conns: HashMap<u32, bool>,
}

/// A frame that is the venue's but cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unreadable;

fn levels(v: &Value) -> Result<Vec<Level>, Unreadable> {
    let Some(a) = v.as_array() else {
        return Ok(Vec::new());
    };
    a.iter()
        .map(|l| {
            let px = l.get(0).and_then(Value::as_str).and_then(parse_dec);
            let q = l.get(1).and_then(Value::as_str).and_then(parse_dec);
            px.zip(q).ok_or(Unreadable)
        })
        .collect()
}

fn changes(bids: &Value, asks: &Value) -> Result<Vec<(Side, i64, i64)>, Unreadable> {
    let mut out: Vec<(Side, i64, i64)> = Vec::new();
    out.extend(levels(bids)?.into_iter().map(|(p, q)| (Side::Bid, p, q)));
    out.extend(levels(asks)?.into_iter().map(|(p, q)| (Side::Ask, p, q)));
    Ok(out)
}

fn num_str(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

impl NativeTranslator {
    /// A translator of `venue`'s frames for the instruments `names` (as the venue spells them).
    pub(crate) fn new(venue: Venue, names: &[String]) -> NativeTranslator {
        NativeTranslator {
            venue,
            names: names.to_vec(),
            conns: HashMap::new(),
        }
    }

    /// Whether `venue` replays captures of its own format with this module.
    pub(crate) fn serves(venue: Venue) -> bool {
        matches!(
            venue,
            Venue::Okx | Venue::Coinbase | Venue::BybitSpot | Venue::BybitLinear
        )
    }

    /// A connection to `url` opened as `conn`.
    pub(crate) fn connect(&mut self, conn: u32, url: &[u8]) {
        let url = String::from_utf8_lossy(url);
        let ours = match self.venue {
            Venue::BybitSpot => url.contains("/spot"),
            Venue::BybitLinear => url.contains("/linear"),
            _ => true,
        };
        self.conns.insert(conn, ours);
    }

    /// Whether frames on connection `conn` are the venue's (Bybit: its category's).
    pub(crate) fn is_ours(&self, conn: u32) -> bool {
        self.conns.get(&conn).copied().unwrap_or(true)
    }

    fn sym(&self, name: Option<&str>) -> Option<usize> {
        let name = name?;
        self.names.iter().position(|n| n == name)
    }

    /// The instrument a frame is about, as the venue names it (for scanning a capture).
    pub(crate) fn instrument(venue: Venue, frame: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(frame).ok()?;
        let name = match venue {
            Venue::Okx => v.get("arg")?.get("instId")?.as_str()?,
            Venue::Coinbase => v.get("product_id")?.as_str()?,
            _ => v.get("topic")?.as_str()?.rsplit('.').next()?,
        };
        Some(name.to_string())
    }

    /// The events of one received frame on connection `conn` (none for acks, other channels
    /// and, on Bybit, the other category's connections).
    pub(crate) fn frame(
        &mut self,
        conn: u32,
        recv_ns: u64,
        frame: &[u8],
        out: &mut Vec<MdEvent>,
    ) -> Result<(), Unreadable> {
        if !self.is_ours(conn) {
            return Ok(());
        }
        let Ok(v) = serde_json::from_slice::<Value>(frame) else {
            return Err(Unreadable);
        };
        let recv_ms = recv_ns / 1_000_000;
        match self.venue {
            Venue::Okx => self.okx(&v, recv_ms, out),
            Venue::Coinbase => self.coinbase(&v, recv_ms, out),
            _ => self.bybit(&v, recv_ms, out),
        }
    }

    fn okx(&self, v: &Value, recv_ms: u64, out: &mut Vec<MdEvent>) -> Result<(), Unreadable> {
        let Some(arg) = v.get("arg") else {
            return Ok(());
        };
        let Some(sym) = self.sym(arg.get("instId").and_then(Value::as_str)) else {
            return Ok(());
        };
        let Some(data) = v.get("data").and_then(Value::as_array) else {
            return Ok(()); // a subscription ack
        };
        for d in data {
            let exch_ms = d.get("ts").and_then(num_str).unwrap_or(recv_ms);
            match arg.get("channel").and_then(Value::as_str) {
                Some("books") => {
                    if v.get("action").and_then(Value::as_str) == Some("snapshot") {
                        out.push(MdEvent::Snapshot {
                            sym,
                            bids: levels(&d["bids"])?,
                            asks: levels(&d["asks"])?,
                        });
                    } else {
                        out.push(MdEvent::Depth {
                            sym,
                            exch_ms,
                            changes: changes(&d["bids"], &d["asks"])?,
                        });
                    }
                }
                Some("trades") => {
                    let px = d.get("px").and_then(Value::as_str).and_then(parse_dec);
                    let sz = d.get("sz").and_then(Value::as_str).and_then(parse_dec);
                    let (Some(price), Some(qty)) = (px, sz) else {
                        return Err(Unreadable);
                    };
                    out.push(MdEvent::Trade {
                        sym,
                        exch_ms,
                        price,
                        qty,
                        taker_buy: d.get("side").and_then(Value::as_str) == Some("buy"),
                    });
                }
                Some("tickers") => out.push(MdEvent::Ticker { sym, exch_ms }),
                _ => {}
            }
        }
        Ok(())
    }

    fn coinbase(&self, v: &Value, recv_ms: u64, out: &mut Vec<MdEvent>) -> Result<(), Unreadable> {
        let Some(sym) = self.sym(v.get("product_id").and_then(Value::as_str)) else {
            return Ok(());
        };
        match v.get("type").and_then(Value::as_str) {
            Some("snapshot") => out.push(MdEvent::Snapshot {
                sym,
                bids: levels(&v["bids"])?,
                asks: levels(&v["asks"])?,
            }),
            Some("l2update") => {
                let mut ch = Vec::new();
                for c in v
                    .get("changes")
                    .and_then(Value::as_array)
                    .ok_or(Unreadable)?
                {
                    let side = match c.get(0).and_then(Value::as_str) {
                        Some("buy") => Side::Bid,
                        Some("sell") => Side::Ask,
                        _ => return Err(Unreadable),
                    };
                    let px = c.get(1).and_then(Value::as_str).and_then(parse_dec);
                    let q = c.get(2).and_then(Value::as_str).and_then(parse_dec);
                    let (Some(px), Some(q)) = (px, q) else {
                        return Err(Unreadable);
                    };
                    ch.push((side, px, q));
                }
                out.push(MdEvent::Depth {
                    sym,
                    exch_ms: recv_ms,
                    changes: ch,
                });
            }
            Some("match") => {
                let px = v.get("price").and_then(Value::as_str).and_then(parse_dec);
                let sz = v.get("size").and_then(Value::as_str).and_then(parse_dec);
                let (Some(price), Some(qty)) = (px, sz) else {
                    return Err(Unreadable);
                };
                out.push(MdEvent::Trade {
                    sym,
                    exch_ms: recv_ms,
                    price,
                    qty,
                    // `side` is the maker's.
                    taker_buy: v.get("side").and_then(Value::as_str) == Some("sell"),
                });
            }
            Some("ticker") => out.push(MdEvent::Ticker {
                sym,
                exch_ms: recv_ms,
            }),
            _ => {}
        }
        Ok(())
    }

    fn bybit(&self, v: &Value, recv_ms: u64, out: &mut Vec<MdEvent>) -> Result<(), Unreadable> {
        let Some(topic) = v.get("topic").and_then(Value::as_str) else {
            return Ok(()); // an ack or a pong
        };
        let Some(sym) = self.sym(topic.rsplit('.').next()) else {
            return Ok(());
        };
        let exch_ms = v.get("ts").and_then(Value::as_u64).unwrap_or(recv_ms);
        let d = &v["data"];
        if topic.starts_with("orderbook.") {
            if v.get("type").and_then(Value::as_str) == Some("snapshot") {
                out.push(MdEvent::Snapshot {
                    sym,
                    bids: levels(&d["b"])?,
                    asks: levels(&d["a"])?,
                });
            } else {
                out.push(MdEvent::Depth {
                    sym,
                    exch_ms,
                    changes: changes(&d["b"], &d["a"])?,
                });
            }
        } else if topic.starts_with("publicTrade.") {
            for t in d.as_array().ok_or(Unreadable)? {
                let px = t.get("p").and_then(Value::as_str).and_then(parse_dec);
                let sz = t.get("v").and_then(Value::as_str).and_then(parse_dec);
                let (Some(price), Some(qty)) = (px, sz) else {
                    return Err(Unreadable);
                };
                out.push(MdEvent::Trade {
                    sym,
                    exch_ms: t.get("T").and_then(Value::as_u64).unwrap_or(exch_ms),
                    price,
                    qty,
                    taker_buy: t.get("S").and_then(Value::as_str) == Some("Buy"),
                });
            }
        } else if topic.starts_with("tickers.") {
            out.push(MdEvent::Ticker { sym, exch_ms });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_venues_frames() {
        let mut t = NativeTranslator::new(Venue::Okx, &["BTC-USDT".into()]);
        let mut out = Vec::new();
        t.frame(
            1,
            0,
            br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["30243.5","1.2112","0","4"]],"bids":[],"ts":"1652459225464","checksum":1}]}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            [MdEvent::Depth {
                sym: 0,
                exch_ms: 1_652_459_225_464,
                changes: vec![(Side::Ask, 3_024_350_000_000, 121_120_000)]
            }]
        );
        let mut t = NativeTranslator::new(Venue::Coinbase, &["SKL-BTC".into()]);
        out.clear();
        t.frame(
            1,
            5_000_000,
            br#"{"type":"match","trade_id":280232,"side":"sell","size":"985","price":"0.00001305","product_id":"SKL-BTC","sequence":177100030}"#,
            &mut out,
        )
        .unwrap();
        assert!(matches!(
            out[0],
            MdEvent::Trade {
                taker_buy: true,
                exch_ms: 5,
                ..
            }
        ));
        let mut t = NativeTranslator::new(Venue::BybitSpot, &["BTCUSDT".into()]);
        t.connect(2, b"wss://stream.bybit.com/v5/public/linear");
        out.clear();
        let f = br#"{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1","0"]],"a":[],"u":2,"seq":3}}"#;
        t.frame(2, 0, f, &mut out).unwrap();
        assert!(out.is_empty(), "a linear connection is not spot's");
        t.frame(3, 0, f, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(t.frame(3, 0, b"{", &mut out), Err(Unreadable));
    }
}
