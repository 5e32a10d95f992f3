//! Topic routing through the core: strategies hear exactly the channels they declare.

use engine::core::{Clock, Core, CoreConfig};
use engine::event::{BookTicker, Event, EventKind, Trade};
use engine::fixed::{Price, Qty, SCALE};
use engine::ring::{event_ring, OnFull};
use engine::strategy::{Ctx, Strategy};
use engine::symbol::{SymbolId, SymbolTable};
use std::sync::{Arc, Mutex};

struct Zero;
impl Clock for Zero {
    fn now_ns(&self) -> u64 {
        0
    }
}

type Heard = Arc<Mutex<Vec<(String, SymbolId, SymbolId, u64)>>>;

/// Logs `(callback, own symbol, event symbol, trade id or price)` for every callback.
struct Listener {
    channels: Vec<String>,
    heard: Heard,
}

impl Strategy for Listener {
    fn name(&self) -> &'static str {
        "listener"
    }
    fn channels(&self) -> Vec<String> {
        self.channels.clone()
    }
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        // The market view is the event symbol's: its last trade is this one.
        assert_eq!(ctx.last_trade().map(|l| l.trade_id), Some(t.trade_id));
        self.heard.lock().unwrap().push((
            "trade".into(),
            ctx.symbol(),
            ctx.event_symbol(),
            t.trade_id,
        ));
    }
    fn on_book_ticker(&mut self, ctx: &mut Ctx<'_>, b: &BookTicker) {
        self.heard.lock().unwrap().push((
            "bookTicker".into(),
            ctx.symbol(),
            ctx.event_symbol(),
            b.bid_px.0 as u64,
        ));
    }
}

fn trade(sym: SymbolId, id: u64) -> Event {
    Event::new(
        id,
        sym,
        EventKind::Trade(Trade {
            exch_ns: 0,
            trade_id: id,
            price: Price(100 * SCALE),
            qty: Qty(SCALE),
            buyer_maker: false,
        }),
    )
}

fn ticker(sym: SymbolId, bid: i64) -> Event {
    Event::new(
        1,
        sym,
        EventKind::BookTicker(BookTicker {
            update_id: 1,
            bid_px: Price(bid),
            bid_qty: Qty(SCALE),
            ask_px: Price(bid + 1),
            ask_qty: Qty(SCALE),
        }),
    )
}

#[test]
fn wildcard_channels_route_exactly_the_matching_events() {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let eth = symbols.intern("ETHUSDT").unwrap();
    let bnb = symbols.intern("BNBUSDT").unwrap();
    let mut core = Core::new(&symbols, CoreConfig::default(), Zero);
    let (mut tx, rx) = event_ring(1024, OnFull::Block);
    core.add_input(rx);
    let heard = |channels: &[&str]| -> (Heard, Box<dyn Strategy>) {
        let h: Heard = Arc::default();
        let s = Listener {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            heard: h.clone(),
        };
        (h, Box::new(s))
    };
    let (h_btc, s) = heard(&[]); // the default: everything of BTCUSDT
    core.set_strategy(btc, s).unwrap();
    let (h_eth, s) = heard(&["trade.binance.BTCUSDT", "bookTicker.*.*"]);
    core.set_strategy(eth, s).unwrap();
    let (h_bnb, s) = heard(&["*.binance.ethusdt"]);
    core.set_strategy(bnb, s).unwrap();
    // A malformed channel installs nothing and says why.
    let (_, bad) = heard(&["trades.binance.BTCUSDT"]);
    let e = core.set_strategy(bnb, bad).unwrap_err();
    assert!(e.to_string().contains("trades.binance.BTCUSDT"), "{e}");

    for ev in [
        trade(btc, 1),
        trade(eth, 2),
        trade(bnb, 3),
        ticker(btc, 10),
        ticker(eth, 20),
        ticker(bnb, 30),
    ] {
        tx.push(ev).unwrap();
    }
    core.poll(1);
    let got = |h: &Heard| h.lock().unwrap().clone();
    let e = |kind: &str, own, ev, n| (kind.to_string(), own, ev, n);
    assert_eq!(
        got(&h_btc),
        vec![e("trade", btc, btc, 1), e("bookTicker", btc, btc, 10)]
    );
    assert_eq!(
        got(&h_eth),
        vec![
            e("trade", eth, btc, 1),
            e("bookTicker", eth, btc, 10),
            e("bookTicker", eth, eth, 20),
            e("bookTicker", eth, bnb, 30),
        ]
    );
    // The failed install left BNBUSDT's listener in place.
    assert_eq!(
        got(&h_bnb),
        vec![e("trade", bnb, eth, 2), e("bookTicker", bnb, eth, 20)]
    );
}
