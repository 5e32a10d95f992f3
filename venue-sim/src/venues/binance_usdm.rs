//! Binance USD-M futures market data: the Binance simulator ([`crate::VenueSim`]) in its
//! futures flavour, started with [`start`].
//!
//! Futures' public market data is spot's protocol (combined streams `/stream?streams=..`,
//! `/ws`, live `SUBSCRIBE`/`UNSUBSCRIBE`, server pings) with futures' frames and REST paths, so
//! the simulator serves it with the same connection, TLS, pacing and fault machinery:
//!
//! - a **capture** of USD-M (the hftbacktest line format of `../shared/data/binance-usdm`, or
//!   `.tlc`) is served as recorded: `btcusdt@depth@0ms` diffs with `pu`, `bookTicker` with
//!   `e`/`E`/`T`, `trade` with `X`; the simulator's own book follows the diffs by `pu`
//!   continuity (each diff continues from its `pu`), so `GET /fapi/v1/depth` answers with
//!   `lastUpdateId` = the last published `u`;
//! - a **generated** feed ([`crate::gen`]) is rewritten into futures' layout by [`Futurize`]:
//!   `depthUpdate` gains `T` and `pu` (= `U - 1`, which is the previous diff's `u`: the
//!   generator's diffs are contiguous), `bookTicker` gains `e`, `E` and `T`, `trade` gains `X`
//!   and loses spot's `M`;
//! - **REST**: `GET /fapi/v1/depth?symbol=..&limit=..` (with `E` and `T`), `/fapi/v1/exchangeInfo`,
//!   `/fapi/v1/ping`, `/fapi/v1/time` (the spot paths stay served too).
//!
//! The order API stays spot's (the futures order API is out of scope).

use crate::{SimConfig, VenueSim};
use anyhow::Result;
use serde_json::Value;
use std::fmt::Write as _;

/// Starts a Binance USD-M futures simulator.
pub fn start(cfg: SimConfig) -> Result<VenueSim> {
    VenueSim::start_with(cfg, true)
}

/// Rewrites the generator's spot frames into futures' layout (see the module docs).
#[derive(Debug, Default)]
pub struct Futurize {
    out: Vec<u8>,
    /// The last exchange time seen (bookTickers of the generator carry none).
    last_ms: u64,
}

impl Futurize {
    /// The futures form of one combined spot frame; a frame it does not know is returned as
    /// it came.
    pub fn frame<'a>(&'a mut self, spot: &'a [u8]) -> &'a [u8] {
        match self.rewrite(spot) {
            Some(s) => {
                self.out.clear();
                self.out.extend_from_slice(s.as_bytes());
                &self.out
            }
            None => spot,
        }
    }

    fn rewrite(&mut self, spot: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(spot).ok()?;
        let stream = v.get("stream")?.as_str()?;
        let d = v.get("data")?;
        let s = d.get("s")?;
        let raw = |k: &str| d.get(k).map(Value::to_string);
        let mut data = String::with_capacity(spot.len() + 48);
        match d.get("e").and_then(Value::as_str) {
            Some("depthUpdate") => {
                let e = d.get("E")?.as_u64()?;
                self.last_ms = e;
                let first = d.get("U")?.as_u64()?;
                let _ = write!(
                    data,
                    "{{\"e\":\"depthUpdate\",\"E\":{e},\"T\":{e},\"s\":{s},\"U\":{first},\"u\":{},\"pu\":{},\"b\":{},\"a\":{}}}",
                    d.get("u")?,
                    first.checked_sub(1)?,
                    raw("b")?,
                    raw("a")?
                );
            }
            Some("trade") => {
                let e = d.get("E")?.as_u64()?;
                self.last_ms = e;
                let _ = write!(
                    data,
                    "{{\"e\":\"trade\",\"E\":{e},\"T\":{},\"s\":{s},\"t\":{},\"p\":{},\"q\":{},\"X\":\"MARKET\",\"m\":{}}}",
                    raw("T")?,
                    raw("t")?,
                    raw("p")?,
                    raw("q")?,
                    raw("m")?
                );
            }
            None if d.get("b").is_some_and(Value::is_string) => {
                let t = self.last_ms;
                let _ = write!(
                    data,
                    "{{\"e\":\"bookTicker\",\"u\":{},\"s\":{s},\"b\":{},\"B\":{},\"a\":{},\"A\":{},\"T\":{t},\"E\":{t}}}",
                    raw("u")?,
                    raw("b")?,
                    raw("B")?,
                    raw("a")?,
                    raw("A")?
                );
            }
            _ => return None,
        }
        Some(format!(
            "{{\"stream\":{},\"data\":{data}}}",
            feeds::venue::json_string(stream)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_frames_become_futures_frames() {
        let mut f = Futurize::default();
        let d = f.frame(br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":7,"s":"BTCUSDT","U":11,"u":14,"b":[["1.00000000","2.00000000"]],"a":[]}}"#);
        assert_eq!(
            std::str::from_utf8(d).unwrap(),
            r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":7,"T":7,"s":"BTCUSDT","U":11,"u":14,"pu":10,"b":[["1.00000000","2.00000000"]],"a":[]}}"#
        );
        let b = f.frame(br#"{"stream":"btcusdt@bookTicker","data":{"u":14,"s":"BTCUSDT","b":"1.0","B":"2.0","a":"1.1","A":"3.0"}}"#);
        assert_eq!(
            std::str::from_utf8(b).unwrap(),
            r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":14,"s":"BTCUSDT","b":"1.0","B":"2.0","a":"1.1","A":"3.0","T":7,"E":7}}"#
        );
        let t = f.frame(br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":8,"s":"BTCUSDT","t":3,"p":"1.0","q":"0.5","T":8,"m":true,"M":true}}"#);
        assert_eq!(
            std::str::from_utf8(t).unwrap(),
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":8,"T":8,"s":"BTCUSDT","t":3,"p":"1.0","q":"0.5","X":"MARKET","m":true}}"#
        );
        assert_eq!(f.frame(b"junk"), b"junk");
    }
}
