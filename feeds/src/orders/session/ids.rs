//! The session's side of the venue check of client ids ([`crate::orders::idcheck`]).

use super::wall_ms;
use super::OrderSession;
use crate::orders::idcheck::IdCheckCounters;
use crate::orders::idcheck::Outcome;
use crate::orders::journal::JournalRecord;
use engine::event::ClientOrderId;
use engine::event::EventKind;
use engine::event::OrderIdFloor;
/// The venue check of client ids ([`crate::orders::idcheck`]): the session's side of it.
impl OrderSession {
    /// The engine's first number of this start ([`crate::orders::idcheck::start_number`]): venue ids
    /// below it are old and need no action.
    pub fn set_next_client_number(&mut self, next: u64) {
        self.ids.set_next(next);
    }

    /// This engine is shard `shard` of `shards` trading one account (`[orders] shard`): a floor
    /// the venue check raises stays in this shard's epochs
    /// ([`crate::orders::idcheck::shard_aligned`]).
    pub fn set_client_id_shard(&mut self, shard: u64, shards: u64) {
        self.ids.set_shard(shard, shards);
    }

    /// The venue check's counters.
    pub fn id_check(&self) -> &IdCheckCounters {
        self.ids.counters()
    }

    /// True while the first venue check of client ids waits for its answers: the I/O loop holds
    /// market data back until then, as it does until the order API's first connection attempt
    /// has an outcome.
    #[inline]
    pub fn holds_market_data(&self) -> bool {
        self.ids.holds_market_data()
    }

    /// The lowest engine number the session sends (0 until a check raised it).
    pub fn client_number_floor(&self) -> u64 {
        self.ids.floor()
    }

    /// Queues the check's queries (called when the connection opens, after the other requests).
    #[cold]
    pub(super) fn begin_id_check(&mut self) {
        let next = &mut self.next_request_id;
        let now = (self.now)();
        self.ids.begin(
            &mut self.encoder,
            &self.symbols,
            || {
                let id = *next;
                *next += 1;
                id
            },
            now,
            wall_ms(self.wall),
            &mut self.queued,
        );
    }

    /// True when `payload` answered the check (and was handled).
    #[cold]
    pub(super) fn id_check_frame(&mut self, payload: &[u8]) -> bool {
        match self.ids.on_frame(payload) {
            Outcome::NotMine => false,
            o => {
                self.id_check_done(o);
                true
            }
        }
    }

    #[cold]
    pub(super) fn id_check_done(&mut self, o: Outcome) {
        match o {
            Outcome::NotMine | Outcome::Waiting | Outcome::Clear => {}
            Outcome::Raise { floor, found } => {
                self.counters.id_floor_raises += 1;
                let at = |n| ClientOrderId::new(ClientOrderId::NS_ENGINE, n);
                self.notices.push(format!(
                    "order API: the venue knows client id {} at or beyond the next one (journal cut, moved aside or shared, or the clock went back); numbering moves to {}",
                    at(found),
                    at(floor)
                ));
                self.journal(&JournalRecord::NextClientId { next: floor });
                self.push(
                    engine::symbol::SymbolId::ALL,
                    EventKind::OrderIdFloor(OrderIdFloor { next: floor }),
                );
            }
            Outcome::Failed { code } => {
                self.counters.id_check_failures += 1;
                self.notices.push(format!(
                "order API: the venue did not list its orders (code {code}); client ids rest on the start epoch alone on this connection"
                ))
            }
        }
    }
}
