//! Recovery: replays every complete record of a journal into the state it describes
//! ([`Recovered`]): positions, open orders, trader states and the next client order id.

use super::format::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use engine::event::{ClientOrderId, OrderRequest};
use engine::fixed::Qty;
use engine::portfolio::Position;

/// An order that was intended and has no final state (fully filled, canceled or rejected).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredOrder {
    /// Our id.
    pub client_id: ClientOrderId,
    /// Instrument name.
    pub symbol: String,
    /// The order as intended.
    pub req: OrderRequest,
    /// Quantity filled so far (each fill counted once).
    pub filled: Qty,
    /// The venue's id, if it was acked.
    pub venue_order_id: Option<u64>,
    /// True once an ack was journaled (a fill without an ack leaves it false).
    pub acked: bool,
    /// The venue trade ids of its fills so far (each once), so reconciliation can tell which of
    /// the venue's trades for it the journal already holds.
    pub trade_ids: Vec<u64>,
    /// When the intent was written (writer's clock).
    pub ts_ns: u64,
}

impl RecoveredOrder {
    /// Quantity still open.
    pub fn leaves(&self) -> Qty {
        Qty(self.req.qty.0.saturating_sub(self.filled.0))
    }
}

/// The state rebuilt from a journal by [`recover`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The engine-namespace number to give the next order (see the module docs).
    pub next_client_id: u64,
    /// Orders without a final state, in the order they were intended.
    pub open_orders: Vec<RecoveredOrder>,
    /// Positions by symbol (sorted), from every distinct fill. The mark is market data and is
    /// not journaled: it is zero here.
    pub positions: Vec<(String, Position)>,
    /// Distinct fills applied.
    pub fills: usize,
    /// Fills seen again with a `(client id, trade id)` already applied: counted, not applied.
    pub duplicate_fills: usize,
    /// The latest state of each `(symbol, trader)`, sorted.
    pub trader_states: Vec<(String, u32, Vec<u8>)>,
    /// How the records end.
    pub tail: TailState,
    /// Complete, intact records replayed.
    pub records: usize,
    /// Byte offset where the replayed records end (where a torn or corrupt record starts).
    pub valid_len: u64,
    /// Intents for a client id already intended: counted, ignored (the first one stands).
    pub duplicate_intents: usize,
    /// Acks, fills, cancels and rejects for client ids never intended: counted, not applied.
    pub unknown_order_events: usize,
}

pub(super) struct OrderSlot {
    order: RecoveredOrder,
    closed: bool,
}

/// Applies records in journal order.
pub(super) struct Replay {
    orders: Vec<OrderSlot>,
    index: HashMap<ClientOrderId, usize>,
    positions: BTreeMap<String, Position>,
    seen_fills: HashSet<(ClientOrderId, u64)>,
    trader_states: BTreeMap<(String, u32), Vec<u8>>,
    next_client_id: u64,
    fills: usize,
    duplicate_fills: usize,
    duplicate_intents: usize,
    unknown_order_events: usize,
    records: usize,
}

impl Replay {
    fn new() -> Self {
        Replay {
            orders: Vec::new(),
            index: HashMap::new(),
            positions: BTreeMap::new(),
            seen_fills: HashSet::new(),
            trader_states: BTreeMap::new(),
            next_client_id: 1,
            fills: 0,
            duplicate_fills: 0,
            duplicate_intents: 0,
            unknown_order_events: 0,
            records: 0,
        }
    }

    fn slot(&mut self, id: ClientOrderId) -> Option<&mut OrderSlot> {
        match self.index.get(&id) {
            Some(&i) => self.orders.get_mut(i),
            None => {
                self.unknown_order_events += 1;
                None
            }
        }
    }

    fn apply(&mut self, rec: &JournalRecord<'_>) {
        self.records += 1;
        match *rec {
            JournalRecord::Intent {
                client_id,
                symbol,
                req,
                ts_ns,
            } => {
                if client_id.namespace() == ClientOrderId::NS_ENGINE {
                    self.next_client_id = self.next_client_id.max(client_id.number() + 1);
                }
                if self.index.contains_key(&client_id) {
                    self.duplicate_intents += 1;
                    return;
                }
                self.index.insert(client_id, self.orders.len());
                self.orders.push(OrderSlot {
                    order: RecoveredOrder {
                        client_id,
                        symbol: symbol.to_owned(),
                        req,
                        filled: Qty::ZERO,
                        venue_order_id: None,
                        acked: false,
                        trade_ids: Vec::new(),
                        ts_ns,
                    },
                    closed: false,
                });
            }
            JournalRecord::Ack {
                client_id,
                venue_order_id,
                ..
            } => {
                if let Some(s) = self.slot(client_id) {
                    s.order.acked = true;
                    s.order.venue_order_id = Some(venue_order_id);
                }
            }
            JournalRecord::Fill {
                client_id,
                trade_id,
                price,
                qty,
                fee,
                ..
            } => {
                let Some(&i) = self.index.get(&client_id) else {
                    self.unknown_order_events += 1;
                    return;
                };
                if !self.seen_fills.insert((client_id, trade_id)) {
                    self.duplicate_fills += 1;
                    return;
                }
                self.fills += 1;
                let s = &mut self.orders[i];
                s.order.trade_ids.push(trade_id);
                s.order.filled = Qty(s.order.filled.0.saturating_add(qty.0.max(0)));
                if s.order.filled.0 >= s.order.req.qty.0 {
                    s.closed = true;
                }
                let side = s.order.req.side;
                let pos = match self.positions.get_mut(s.order.symbol.as_str()) {
                    Some(p) => p,
                    None => self.positions.entry(s.order.symbol.clone()).or_default(),
                };
                pos.apply_fill(side, price, qty, fee);
            }
            JournalRecord::Canceled { client_id, .. }
            | JournalRecord::Rejected { client_id, .. } => {
                if let Some(s) = self.slot(client_id) {
                    s.closed = true;
                }
            }
            JournalRecord::TraderState {
                symbol,
                trader,
                state,
                ..
            } => {
                let slot = self
                    .trader_states
                    .entry((symbol.to_owned(), trader))
                    .or_default();
                slot.clear();
                slot.extend_from_slice(state);
            }
            JournalRecord::NextClientId { next } => {
                self.next_client_id = self.next_client_id.max(next);
            }
            JournalRecord::Position { symbol, position } => {
                self.positions.insert(symbol.to_owned(), position);
            }
            JournalRecord::OpenOrder {
                client_id,
                symbol,
                req,
                filled,
                venue_order_id,
                acked,
                trade_ids,
                ts_ns,
            } => {
                if client_id.namespace() == ClientOrderId::NS_ENGINE {
                    self.next_client_id = self.next_client_id.max(client_id.number() + 1);
                }
                if self.index.contains_key(&client_id) {
                    self.duplicate_intents += 1;
                    return;
                }
                let ids: Vec<u64> = trade_ids
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                    .collect();
                for &t in &ids {
                    self.seen_fills.insert((client_id, t));
                }
                self.index.insert(client_id, self.orders.len());
                self.orders.push(OrderSlot {
                    order: RecoveredOrder {
                        client_id,
                        symbol: symbol.to_owned(),
                        req,
                        filled,
                        venue_order_id,
                        acked,
                        trade_ids: ids,
                        ts_ns,
                    },
                    closed: false,
                });
            }
        }
    }

    fn finish(self, tail: TailState, valid_len: u64) -> Recovered {
        Recovered {
            next_client_id: self.next_client_id,
            open_orders: self
                .orders
                .into_iter()
                .filter(|s| !s.closed)
                .map(|s| s.order)
                .collect(),
            positions: self.positions.into_iter().collect(),
            fills: self.fills,
            duplicate_fills: self.duplicate_fills,
            trader_states: self
                .trader_states
                .into_iter()
                .map(|((sym, trader), state)| (sym, trader, state))
                .collect(),
            tail,
            records: self.records,
            valid_len,
            duplicate_intents: self.duplicate_intents,
            unknown_order_events: self.unknown_order_events,
        }
    }
}

/// Rebuilds the state from the journal at `path`: every complete, intact record is replayed in
/// order; how the records end is in [`Recovered::tail`]. The file is only read. A missing file,
/// a foreign file, another format version or a damaged header is an error.
pub fn recover(path: impl AsRef<Path>) -> Result<Recovered, JournalError> {
    let bytes = std::fs::read(path)?;
    recover_bytes(&bytes)
}

/// [`recover`] over a journal's bytes in memory.
pub fn recover_bytes(bytes: &[u8]) -> Result<Recovered, JournalError> {
    let mut r = JournalReader::new(bytes)?;
    let mut replay = Replay::new();
    for e in r.by_ref() {
        replay.apply(&e.record);
    }
    let tail = r.tail().unwrap_or(TailState::Clean);
    Ok(replay.finish(tail, r.offset()))
}
