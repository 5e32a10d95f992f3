//! The venue check of client order ids: on every connect of the order API, before any order is
//! sent, ask the venue which of our ids it already knows, and move numbering past them.
//!
//! Engine ids carry a start epoch ([`ClientOrderId`]: `tl-<epoch>-<seq>`), so two starts of the
//! engine never share an id while the journal is intact or the wall clock moves forward. What is
//! left is the case neither can see: a journal cut or moved aside **and** a start in the same
//! second as (or a clock set back behind) the run whose ids the venue holds. The venue's word
//! closes it:
//!
//! 1. [`start_number`] picks this start's first number: `(max(now, last journaled epoch + 1), 1)`.
//! 2. When the API connection opens, [`IdCheck::begin`] writes one `openOrders.status` and one
//!    `allOrders` (`limit` 1000, the venue's most recent orders) per symbol. Until every answer
//!    is in, the session refuses new orders ([`RejectReason::IdCheck`](engine::event::RejectReason::IdCheck), counted): a refused order
//!    was never sent.
//! 3. [`IdCheck::on_frame`] takes each answer. If the highest engine id found
//!    (`clientOrderId`, and `origClientOrderId` where the venue writes it) is at or beyond the
//!    next number the engine may use (this start's first number, or one past the highest id the
//!    session sent itself), numbering moves to the **next epoch after it**
//!    ([`Outcome::Raise`]): the session pushes an
//!    [`OrderIdFloor`](engine::event::OrderIdFloor) to the core (which raises its numbering),
//!    journals `NextClientId` at the floor, and refuses every order numbered below the floor that
//!    was already in the ring ([`IdCheck::admits`]).
//!
//! A venue that refuses the queries, or does not answer within [`CHECK_TIMEOUT`], ends the check
//! as failed (counted, reported): trading then rests on the epoch alone.
//!
//! Binance's shapes, as the simulator answers them too: `openOrders.status`
//! (`{"id":..,"method":"openOrders.status","params":{"symbol":..,"apiKey":..,"timestamp":..,
//! "signature":..}}`, result: an array of order objects, each with `clientOrderId`), and
//! `allOrders` (params `symbol`, optional `orderId`, `startTime`, `endTime`, `limit` default 500,
//! at most 1000; without `orderId` or times "most recent orders are returned"; the same order
//! objects, `status` NEW, FILLED, CANCELED, ...). See Binance's
//! `binance-spot-api-docs/web-socket-api.md` ("Current open orders", "Account order history").

use crate::binance::api::{OrderEncoder, Param};
use engine::event::ClientOrderId;
use engine::symbol::SymbolTable;
use serde_json::Value;
use std::time::Duration;

/// Orders asked for per symbol with `allOrders` (Binance's maximum).
pub const ALL_ORDERS_LIMIT: u64 = 1000;
/// A check not answered within this long ends as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The first engine number of a start at wall-clock second `now_unix_s`, given the journal's
/// [`next_client_id`](crate::orders::journal::Recovered::next_client_id) (1 for none): sequence 1 of
/// epoch `max(epoch of now, epoch of the highest number recorded + 1)`, and never below
/// `journal_next`.
pub fn start_number(now_unix_s: u64, journal_next: u64) -> u64 {
    let highest = journal_next.saturating_sub(1);
    let recorded = ClientOrderId::new(ClientOrderId::NS_ENGINE, highest).epoch();
    let epoch = ClientOrderId::epoch_of_unix(now_unix_s)
        .max(recorded.saturating_add(1))
        .min(ClientOrderId::EPOCH_MAX);
    ClientOrderId::engine_number(epoch, 1).max(journal_next)
}

/// [`start_number`] for shard `shard` of `shards` engines trading one account (the
/// `[orders] shard` and `shards` of a scale-out): the start epoch is moved up to the next one
/// that is `shard` modulo `shards`, so engines of different shards never number an order alike,
/// even when they start in the same second. (A life that runs out of sequence, 2^26 orders,
/// rolls into the next epoch, which another shard may be using: past that many orders in one
/// life, restart the engine.) `shards` 0 or 1: [`start_number`] unchanged.
pub fn shard_start_number(now_unix_s: u64, journal_next: u64, shard: u64, shards: u64) -> u64 {
    shard_aligned(start_number(now_unix_s, journal_next), shard, shards)
}

/// `n` if its epoch is `shard` modulo `shards` (or `shards` is 0 or 1), else the first number of
/// the next epoch that is.
pub fn shard_aligned(n: u64, shard: u64, shards: u64) -> u64 {
    if shards <= 1 {
        return n;
    }
    let epoch = ClientOrderId::new(ClientOrderId::NS_ENGINE, n).epoch();
    let up = (shard % shards + shards - epoch % shards) % shards;
    if up == 0 {
        return n;
    }
    let epoch = epoch.saturating_add(up);
    if epoch > ClientOrderId::EPOCH_MAX {
        return n;
    }
    ClientOrderId::engine_number(epoch, 1).max(n)
}

/// The first number of the epoch after the one holding `n` (or `n + 1` in the last epoch).
pub fn next_epoch_after(n: u64) -> u64 {
    let epoch = ClientOrderId::new(ClientOrderId::NS_ENGINE, n).epoch();
    if epoch >= ClientOrderId::EPOCH_MAX {
        return n.saturating_add(1);
    }
    ClientOrderId::engine_number(epoch + 1, 1)
}

/// What an answer did to the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not an answer to the check: handle the frame as usual.
    NotMine,
    /// An answer; more are awaited.
    Waiting,
    /// The check is done and numbering may go on as it is.
    Clear,
    /// The check is done and found engine ids at or beyond the next number: numbering must move
    /// to `floor` (the first number of the epoch after the highest id found).
    Raise {
        /// The lowest engine number that may be used from now on.
        floor: u64,
        /// The highest engine number the venue knows.
        found: u64,
    },
    /// The check is done but the venue refused a query (or answered 5xx): nothing is known.
    Failed {
        /// The venue's error code (0 when the reply carried none).
        code: i64,
    },
}

/// Counters of the venue check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdCheckCounters {
    /// Checks begun (one per connect).
    pub checks: u64,
    /// Checks that moved numbering.
    pub raised: u64,
    /// Checks that failed (refused, 5xx or timed out).
    pub failed: u64,
    /// Orders refused while a check was waiting.
    pub refused_waiting: u64,
    /// Orders refused because their id was below the floor.
    pub refused_below_floor: u64,
}

/// The venue check of one order session; see the [module docs](self).
#[derive(Debug, Default)]
pub struct IdCheck {
    /// Request ids of the queries not answered yet.
    pending: Vec<u64>,
    /// When the check began (session clock, ns).
    began_ns: u64,
    /// Highest engine number found at the venue in this check.
    found: u64,
    /// A query was refused.
    error: Option<i64>,
    /// The next engine number the engine may use, as far as the session knows.
    next: u64,
    /// Orders numbered below this are refused.
    floor: u64,
    /// A check has ended (answered, failed, timed out or cut by a disconnect) at least once.
    settled_once: bool,
    /// This engine's shard and the number of shards ([`shard_start_number`]): a raised floor
    /// stays in this shard's epochs.
    shard: (u64, u64),
    counters: IdCheckCounters,
}

impl IdCheck {
    /// A check that knows nothing yet: the next number is taken to be 1 until
    /// [`set_next`](Self::set_next) says more.
    pub fn new() -> IdCheck {
        IdCheck {
            next: 1,
            ..IdCheck::default()
        }
    }

    /// The engine's next number (this start's first, [`start_number`]); lower values are ignored.
    pub fn set_next(&mut self, next: u64) {
        self.next = self.next.max(next);
    }

    /// This engine is shard `shard` of `shards` on its account: a floor raised by the check is
    /// the next epoch of its own ([`shard_aligned`]).
    pub fn set_shard(&mut self, shard: u64, shards: u64) {
        self.shard = (shard, shards);
    }

    /// An order numbered `id` was sent: the engine's next number is past it.
    #[inline]
    pub fn sent(&mut self, id: ClientOrderId) {
        if id.namespace() == ClientOrderId::NS_ENGINE {
            self.next = self.next.max(id.number().saturating_add(1));
        }
    }

    /// The counters.
    pub fn counters(&self) -> &IdCheckCounters {
        &self.counters
    }

    /// The lowest engine number an order may carry (0 until a check raised it).
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// True while answers are awaited.
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// True while the first check of the process waits: market data is held back meanwhile
    /// (strategies should not see a market they cannot trade on yet). Later checks, after a
    /// reconnect, hold nothing but orders.
    pub fn holds_market_data(&self) -> bool {
        !self.settled_once && !self.pending.is_empty()
    }

    /// The connection opened: queues the check's queries (`openOrders.status` and `allOrders`
    /// for every symbol of `symbols`) into `out`, numbered by `request_id`. `now_ns` is the
    /// session's clock, `wall_ms` the requests' timestamp.
    pub fn begin(
        &mut self,
        encoder: &mut OrderEncoder,
        symbols: &SymbolTable,
        mut request_id: impl FnMut() -> u64,
        now_ns: u64,
        wall_ms: u64,
        out: &mut Vec<String>,
    ) {
        self.pending.clear();
        self.found = 0;
        self.error = None;
        self.began_ns = now_ns;
        self.counters.checks += 1;
        for (_, name) in symbols.iter() {
            let id = request_id();
            out.push(encoder.open_orders(id, Some(name), wall_ms).to_string());
            self.pending.push(id);
            let id = request_id();
            let params = [
                ("symbol", Param::Str(name)),
                ("limit", Param::Int(ALL_ORDERS_LIMIT)),
            ];
            match encoder.signed_request(id, "allOrders", &params, wall_ms) {
                Ok(text) => {
                    out.push(text.to_string());
                    self.pending.push(id);
                }
                // A symbol the encoder cannot write is not one we trade.
                Err(_) => continue,
            }
        }
    }

    /// The connection was lost: answers still awaited will not come (the next open begins again).
    pub fn abort(&mut self) {
        if !self.pending.is_empty() {
            self.settled_once = true;
        }
        self.pending.clear();
    }

    /// A frame on the API connection while the check waits: `NotMine` unless it answers one of
    /// the check's queries. Reads the frame with `serde_json` (a cold path, a few frames per
    /// connect).
    #[cold]
    pub fn on_frame(&mut self, payload: &[u8]) -> Outcome {
        if self.pending.is_empty() {
            return Outcome::NotMine;
        }
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            return Outcome::NotMine;
        };
        let Some(rid) = v.get("id").and_then(Value::as_u64) else {
            return Outcome::NotMine;
        };
        let Some(at) = self.pending.iter().position(|&p| p == rid) else {
            return Outcome::NotMine;
        };
        self.pending.swap_remove(at);
        let status = v.get("status").and_then(Value::as_u64).unwrap_or(0);
        match v.get("result").and_then(Value::as_array) {
            Some(orders) if status == 200 => {
                for o in orders {
                    for key in ["clientOrderId", "origClientOrderId"] {
                        let id = o.get(key).and_then(Value::as_str);
                        if let Some(id) = id.and_then(ClientOrderId::parse) {
                            if id.namespace() == ClientOrderId::NS_ENGINE {
                                self.found = self.found.max(id.number());
                            }
                        }
                    }
                }
            }
            _ => {
                let code = v
                    .get("error")
                    .and_then(|e| e.get("code"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                self.error.get_or_insert(code);
            }
        }
        if !self.pending.is_empty() {
            return Outcome::Waiting;
        }
        self.conclude()
    }

    /// Ends a check that has waited longer than [`CHECK_TIMEOUT`] as failed; `None` otherwise.
    pub fn timed_out(&mut self, now_ns: u64) -> Option<Outcome> {
        if self.pending.is_empty()
            || now_ns.saturating_sub(self.began_ns) < CHECK_TIMEOUT.as_nanos() as u64
        {
            return None;
        }
        self.pending.clear();
        self.error.get_or_insert(0);
        Some(self.conclude())
    }

    fn conclude(&mut self) -> Outcome {
        self.settled_once = true;
        // What was found counts even when another query failed.
        if self.found > 0 && self.found >= self.next {
            let floor = shard_aligned(next_epoch_after(self.found), self.shard.0, self.shard.1);
            self.floor = self.floor.max(floor);
            self.next = self.next.max(floor);
            self.counters.raised += 1;
            return Outcome::Raise {
                floor,
                found: self.found,
            };
        }
        if let Some(code) = self.error {
            self.counters.failed += 1;
            return Outcome::Failed { code };
        }
        Outcome::Clear
    }

    /// May an order numbered `id` be sent now? Refused (and counted) while the check waits, and
    /// for engine ids below the floor. Probe ids carry trade ids and always pass the floor.
    #[inline]
    pub fn admits(&mut self, id: ClientOrderId) -> bool {
        if !self.pending.is_empty() {
            self.counters.refused_waiting += 1;
            return false;
        }
        if id.namespace() == ClientOrderId::NS_ENGINE && id.number() < self.floor {
            self.counters.refused_below_floor += 1;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::api::Credentials;

    const DAY_2026: u64 = 1_767_225_600;

    fn encoder() -> OrderEncoder {
        let creds = Credentials::hmac("key", crate::binance::api::Secret::new(b"s".to_vec()))
            .expect("credentials");
        OrderEncoder::new(creds, 0)
    }

    fn cid(epoch: u64, seq: u64) -> ClientOrderId {
        ClientOrderId::new(
            ClientOrderId::NS_ENGINE,
            ClientOrderId::engine_number(epoch, seq),
        )
    }

    #[test]
    fn start_number_is_past_the_journal_and_at_least_now() {
        let now_epoch = ClientOrderId::epoch_of_unix(DAY_2026);
        // Empty journal: this second's epoch.
        assert_eq!(
            start_number(DAY_2026, 1),
            ClientOrderId::engine_number(now_epoch, 1)
        );
        // An old journal (tl-<n>, epoch 0): this second's epoch.
        assert_eq!(
            start_number(DAY_2026, 1294),
            ClientOrderId::engine_number(now_epoch, 1)
        );
        // A journal from the same second (or the future): the epoch after it.
        let last = cid(now_epoch, 40).number() + 1;
        assert_eq!(
            start_number(DAY_2026, last),
            ClientOrderId::engine_number(now_epoch + 1, 1)
        );
        // The NextClientId a start journals moves the next start on by one epoch too.
        let first = start_number(DAY_2026, 1);
        assert_eq!(
            start_number(DAY_2026, first),
            ClientOrderId::engine_number(now_epoch + 1, 1)
        );
        // A clock before 2024: still past the journal.
        assert!(start_number(0, 1) >= 1);
        assert_eq!(next_epoch_after(cid(5, 9).number()), cid(6, 1).number());
    }

    #[test]
    fn shards_starting_in_the_same_second_get_epochs_of_their_own() {
        let now_epoch = ClientOrderId::epoch_of_unix(DAY_2026);
        let firsts: Vec<u64> = (0..3)
            .map(|k| shard_start_number(DAY_2026, 1, k, 3))
            .collect();
        let epochs: Vec<u64> = firsts
            .iter()
            .map(|&n| ClientOrderId::new(ClientOrderId::NS_ENGINE, n).epoch())
            .collect();
        for (k, e) in epochs.iter().enumerate() {
            assert_eq!(e % 3, k as u64, "{epochs:?}");
            assert!((now_epoch..now_epoch + 3).contains(e), "{epochs:?}");
        }
        // A restart of shard 1 moves past its journal, to its next own epoch.
        let again = shard_start_number(DAY_2026, firsts[1] + 1, 1, 3);
        assert_eq!(
            ClientOrderId::new(ClientOrderId::NS_ENGINE, again).epoch(),
            epochs[1] + 3
        );
        // Alignment: the next epoch of the shard's residue, or `n` itself if it is in one.
        let aligned = shard_aligned(cid(9, 5).number(), 1, 3);
        assert_eq!(aligned, cid(10, 1).number());
        assert_eq!(
            shard_aligned(cid(10, 5).number(), 1, 3),
            cid(10, 5).number()
        );
        // One shard: the plain start number.
        assert_eq!(
            shard_start_number(DAY_2026, 1, 0, 1),
            start_number(DAY_2026, 1)
        );
    }

    fn reply(id: u64, ids: &[&str]) -> Vec<u8> {
        let orders: Vec<String> = ids
            .iter()
            .map(|c| {
                format!(
                    r#"{{"symbol":"BTCUSDT","orderId":1,"clientOrderId":"{c}","status":"FILLED"}}"#
                )
            })
            .collect();
        format!(
            r#"{{"id":{id},"status":200,"result":[{}]}}"#,
            orders.join(",")
        )
        .into_bytes()
    }

    fn begun(check: &mut IdCheck) -> Vec<u64> {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").expect("symbol");
        let mut enc = encoder();
        let mut out = Vec::new();
        let mut n = 100;
        check.begin(
            &mut enc,
            &symbols,
            || {
                n += 1;
                n
            },
            0,
            1,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(
            out[0].contains(r#""method":"openOrders.status""#),
            "{}",
            out[0]
        );
        assert!(out[1].contains(r#""method":"allOrders""#), "{}", out[1]);
        assert!(out[1].contains(r#""limit":1000"#), "{}", out[1]);
        vec![101, 102]
    }

    #[test]
    fn venue_ids_at_or_beyond_the_next_number_move_numbering_to_the_next_epoch() {
        let mut c = IdCheck::new();
        c.set_next(cid(50, 1).number());
        let ids = begun(&mut c);
        assert!(c.is_waiting() && c.holds_market_data());
        assert!(
            !c.admits(cid(50, 1)),
            "nothing is sent while the check waits"
        );
        assert_eq!(
            c.on_frame(br#"{"event":{"e":"executionReport"}}"#),
            Outcome::NotMine
        );
        assert_eq!(c.on_frame(&reply(ids[0], &[])), Outcome::Waiting);
        let found = cid(50, 7);
        let out = c.on_frame(&reply(
            ids[1],
            &["tl-3", "probe-99", &found.to_string(), "other"],
        ));
        assert_eq!(
            out,
            Outcome::Raise {
                floor: cid(51, 1).number(),
                found: found.number()
            }
        );
        assert!(!c.admits(cid(50, 8)), "numbered before the floor");
        assert!(c.admits(cid(51, 1)));
        assert!(c.admits(ClientOrderId::probe(3)));
        assert!(!c.holds_market_data());
        assert_eq!(c.counters().refused_waiting, 1);
        assert_eq!(c.counters().refused_below_floor, 1);
        // A later check (a reconnect) holds orders, never market data.
        begun(&mut c);
        assert!(c.is_waiting() && !c.holds_market_data());
    }

    #[test]
    fn a_shards_floor_raised_past_venue_ids_stays_in_its_own_epochs() {
        let mut c = IdCheck::new();
        c.set_shard(2, 3);
        c.set_next(cid(50, 1).number()); // 50 = 2 (mod 3)
        let ids = begun(&mut c);
        assert_eq!(c.on_frame(&reply(ids[0], &[])), Outcome::Waiting);
        let found = cid(50, 7);
        // Epoch 51 belongs to shard 0, 52 to shard 1: the floor is shard 2's next, 53.
        assert_eq!(
            c.on_frame(&reply(ids[1], &[&found.to_string()])),
            Outcome::Raise {
                floor: cid(53, 1).number(),
                found: found.number()
            }
        );
        assert!(!c.admits(cid(51, 1)) && c.admits(cid(53, 1)));
    }

    #[test]
    fn our_own_ids_at_the_venue_do_not_move_numbering() {
        let mut c = IdCheck::new();
        c.set_next(cid(50, 1).number());
        c.sent(cid(50, 1));
        c.sent(cid(50, 2));
        let ids = begun(&mut c);
        assert_eq!(c.on_frame(&reply(ids[1], &["tl-50-1"])), Outcome::Waiting);
        // Old ids (an earlier epoch, or the tl-<n> form) are below the next number.
        let old = cid(49, 3).to_string();
        assert_eq!(
            c.on_frame(&reply(ids[0], &["tl-50-2", "tl-1293", &old])),
            Outcome::Clear
        );
        assert!(c.admits(cid(50, 3)));
    }

    #[test]
    fn a_refused_or_unanswered_check_fails_and_lets_orders_through() {
        let mut c = IdCheck::new();
        let ids = begun(&mut c);
        let err = format!(
            r#"{{"id":{},"status":400,"error":{{"code":-1020,"msg":"no"}}}}"#,
            ids[0]
        );
        assert_eq!(c.on_frame(err.as_bytes()), Outcome::Waiting);
        assert_eq!(c.timed_out(1), None);
        assert_eq!(
            c.timed_out(CHECK_TIMEOUT.as_nanos() as u64),
            Some(Outcome::Failed { code: -1020 })
        );
        assert!(c.admits(cid(1, 1)));
        assert_eq!(c.counters().failed, 1);
    }
}
