//! The venue's ledger: one JSON line per `order.place` request the venue accepted or refused,
//! and one per fill it reported, for tests that check what a trading engine recorded against
//! what the venue did (for instance across a kill and restart of the engine).
//!
//! ```text
//! {"type":"place","clientOrderId":"tl-5","orderId":12,"accepted":true}
//! {"type":"place","clientOrderId":"tl-5","orderId":13,"accepted":false}
//! {"type":"place","clientOrderId":"bad id","orderId":null,"accepted":false}
//! {"type":"fill","clientOrderId":"tl-5","orderId":12,"tradeId":1099511627776,"price":"61000.10000000","qty":"0.00100000"}
//! ```
//!
//! - `place`: `orderId` is the id the venue gave the order, also for an order the matching
//!   engine refused (its `REJECTED` execution report carries it); `null` for a request refused
//!   before it reached the matching engine (bad parameters, order API off), whose
//!   `clientOrderId` is then the `newClientOrderId` as sent, or `null` without one. An accepted
//!   order sent without a client id is logged with the id the venue gave it (`sim-<orderId>`).
//! - `fill`: one per `executionReport` with `x` = `TRADE`, whether or not it could be delivered;
//!   `tradeId` is its `t`, `price` and `qty` its `L` and `l`. A match of two client orders is
//!   two fills with one trade id. An order's `place` line comes before its fills.
//!
//! Lines are written under the venue's lock, in the order things happened, each with one
//! `write` call on an unbuffered file, so a reader sees whole lines while the simulator runs
//! and everything written so far once it has been killed. The file is created (truncated) when
//! the simulator starts. A write error stops the ledger (reported once on stderr).

use super::matching::{Exec, ExecType};
use super::wsapi::push_fixed8;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerEntry {
    /// An `order.place` request, accepted or refused.
    Place {
        /// The order's client id; `None` for a refused request that sent none.
        client_order_id: Option<String>,
        /// The venue's order id; `None` for a request refused before the matching engine.
        order_id: Option<u64>,
        /// The order was accepted.
        accepted: bool,
    },
    /// A fill the venue reported (an `executionReport` with `x` = `TRADE`).
    Fill {
        /// The order's client id.
        client_order_id: String,
        /// The venue's order id.
        order_id: u64,
        /// The trade id (`t`).
        trade_id: u64,
        /// The fill's price (`L`), eight decimals.
        price: String,
        /// The fill's quantity (`l`), eight decimals.
        qty: String,
    },
}

impl LedgerEntry {
    /// The entry as one JSON object (no newline), keys in the order shown in the module docs.
    pub fn to_json(&self) -> String {
        let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
        match self {
            LedgerEntry::Place {
                client_order_id,
                order_id,
                accepted,
            } => format!(
                "{{\"type\":\"place\",\"clientOrderId\":{},\"orderId\":{},\"accepted\":{accepted}}}",
                client_order_id.as_deref().map_or("null".into(), s),
                order_id.map_or("null".into(), |i| i.to_string()),
            ),
            LedgerEntry::Fill {
                client_order_id,
                order_id,
                trade_id,
                price,
                qty,
            } => format!(
                "{{\"type\":\"fill\",\"clientOrderId\":{},\"orderId\":{order_id},\
                 \"tradeId\":{trade_id},\"price\":{},\"qty\":{}}}",
                s(client_order_id),
                s(price),
                s(qty),
            ),
        }
    }

    /// Reads one line; `None` if it is not a ledger entry.
    pub fn parse(line: &str) -> Option<LedgerEntry> {
        let v: Value = serde_json::from_str(line).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let num = |k: &str| v.get(k).and_then(Value::as_u64);
        match v.get("type")?.as_str()? {
            "place" => Some(LedgerEntry::Place {
                client_order_id: text("clientOrderId"),
                order_id: num("orderId"),
                accepted: v.get("accepted")?.as_bool()?,
            }),
            "fill" => Some(LedgerEntry::Fill {
                client_order_id: text("clientOrderId")?,
                order_id: num("orderId")?,
                trade_id: num("tradeId")?,
                price: text("price")?,
                qty: text("qty")?,
            }),
            _ => None,
        }
    }
}

/// Reads a ledger file: every complete line, in order. A last line without its newline (cut
/// off mid-write) is left out; a complete line that is not an entry is an `InvalidData` error.
pub fn read_ledger(path: &Path) -> std::io::Result<Vec<LedgerEntry>> {
    let text = std::fs::read_to_string(path)?;
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            LedgerEntry::parse(l).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a ledger line: {l}", path.display()),
                )
            })
        })
        .collect()
}

/// The ledger's writer.
#[derive(Debug)]
pub(crate) struct Ledger {
    file: Option<File>,
    path: PathBuf,
    line: String,
}

impl Ledger {
    /// Creates (truncates) the file.
    pub(crate) fn create(path: &Path) -> std::io::Result<Ledger> {
        Ok(Ledger {
            file: Some(File::create(path)?),
            path: path.to_path_buf(),
            line: String::with_capacity(256),
        })
    }

    /// Writes one entry as one line.
    pub(crate) fn write(&mut self, e: &LedgerEntry) {
        let Some(f) = self.file.as_mut() else { return };
        self.line.clear();
        self.line.push_str(&e.to_json());
        self.line.push('\n');
        if let Err(err) = f.write_all(self.line.as_bytes()) {
            tracing::error!(
                target: "venue_sim",
                file = %self.path.display(),
                "writing the ledger failed ({err}); the ledger stops here"
            );
            self.file = None;
        }
    }

    /// An `order.place` request, accepted or refused.
    pub(crate) fn place(&mut self, client_id: Option<&str>, order_id: Option<u64>, accepted: bool) {
        self.write(&LedgerEntry::Place {
            client_order_id: client_id.map(str::to_string),
            order_id,
            accepted,
        });
    }

    /// The fills among `execs`.
    pub(crate) fn fills(&mut self, execs: &[Exec]) {
        for e in execs.iter().filter(|e| e.exec == ExecType::Trade) {
            let fixed = |units: i64| {
                let mut s = String::with_capacity(24);
                push_fixed8(&mut s, units);
                s
            };
            self.write(&LedgerEntry::Fill {
                client_order_id: e.order.client_id.as_str().to_string(),
                order_id: e.order.order_id,
                trade_id: e.trade_id.unwrap_or(0),
                price: fixed(e.last_price.0),
                qty: fixed(e.last_qty.0),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tickline-ledger-{}-{name}", std::process::id()))
    }

    #[test]
    fn lines_round_trip_in_the_documented_format() {
        let place = LedgerEntry::Place {
            client_order_id: Some("tl-5".into()),
            order_id: Some(12),
            accepted: true,
        };
        assert_eq!(
            place.to_json(),
            r#"{"type":"place","clientOrderId":"tl-5","orderId":12,"accepted":true}"#
        );
        let refused = LedgerEntry::Place {
            client_order_id: Some("a \"b\"".into()),
            order_id: None,
            accepted: false,
        };
        assert_eq!(
            refused.to_json(),
            r#"{"type":"place","clientOrderId":"a \"b\"","orderId":null,"accepted":false}"#
        );
        let fill = LedgerEntry::Fill {
            client_order_id: "tl-5".into(),
            order_id: 12,
            trade_id: 77,
            price: "61000.10000000".into(),
            qty: "0.00100000".into(),
        };
        assert_eq!(
            fill.to_json(),
            r#"{"type":"fill","clientOrderId":"tl-5","orderId":12,"tradeId":77,"price":"61000.10000000","qty":"0.00100000"}"#
        );
        for e in [&place, &refused, &fill] {
            assert_eq!(LedgerEntry::parse(&e.to_json()).as_ref(), Some(e));
        }
        let anon = LedgerEntry::Place {
            client_order_id: None,
            order_id: None,
            accepted: false,
        };
        assert_eq!(LedgerEntry::parse(&anon.to_json()), Some(anon));
        assert_eq!(LedgerEntry::parse(r#"{"type":"cancel"}"#), None);
        assert_eq!(LedgerEntry::parse("nope"), None);

        // Written and read back; a torn last line is left out, a bad complete line is an error.
        let path = tmp("round-trip");
        let mut l = Ledger::create(&path).unwrap();
        l.write(&place);
        l.place(Some("tl-6"), None, false);
        l.write(&fill);
        let got = read_ledger(&path).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((&got[0], &got[2]), (&place, &fill));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"type":"fill","clientOr"#).unwrap();
        assert_eq!(read_ledger(&path).unwrap().len(), 3);
        f.write_all(b"\n").unwrap();
        assert!(read_ledger(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
