//! An asap replay's clock: the core's `now` (and its timers) follow the capture time of the
//! frame being handled, however far ahead the feed thread has decoded.

use engine::core::CoreConfig;
use engine::event::Trade;
use engine::idle::IdleMode;
use engine::strategy::{Ctx, Strategy};
use engine::symbol::SymbolTable;
use std::sync::{Arc, Mutex};
use tools::config::Pace;
use tools::pipeline::{replay, FrameArena, ReplayOptions};
use tools::runtime::StrategyFactory;
use venue_sim::gen::GenConfig;

/// `now - E` for every trade, ns.
type Lags = Arc<Mutex<Vec<i64>>>;

struct Lag(Lags);

impl Strategy for Lag {
    fn name(&self) -> &'static str {
        "lag"
    }

    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        let lag = ctx.now_ns() as i64 - t.exch_ns as i64;
        self.0.lock().unwrap().push(lag);
    }
}

/// The generator stamps each trade's `E` at its frame's receive time minus 1.5 ms, in whole
/// ms, so a strategy clocked at its frame's capture time sees `now - E` in [1.5 ms, 2.5 ms).
/// The ring holds the whole capture, so the feed is done decoding long before the core is: a
/// clock the feed advanced would put every trade's `now` near the capture's end, seconds on.
#[test]
fn every_trade_sees_its_own_frame_s_capture_time() {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let gen = GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events: 20_000,
        seed: 11,
        start_ns: 1_700_000_000_000_000_000,
    };
    let arena = FrameArena::generated(gen, &mut symbols).unwrap();
    let lags = Lags::default();
    let shared = lags.clone();
    let opts = ReplayOptions {
        symbols: symbols.clone(),
        default_symbol: btc,
        strategy: None,
        custom_strategy: Some(StrategyFactory(Box::new(move || {
            Box::new(Lag(shared.clone())) as Box<dyn Strategy>
        }))),
        pace: Pace::Asap,
        io_cpu: None,
        core_cpu: None,
        idle: IdleMode::SpinYield { spins: 100 },
        ring_capacity: 1 << 17,
        core: CoreConfig::default(),
        metrics: None,
    };
    let r = replay(&arena, opts).unwrap();
    assert_eq!(r.decode.decode_errors, 0);
    let lags = lags.lock().unwrap();
    assert!(lags.len() > 1_000, "{} trades", lags.len());
    assert_eq!(lags.len() as u64, r.core.trades);
    let (min, max) = (lags.iter().min().unwrap(), lags.iter().max().unwrap());
    assert!(
        *min >= 1_500_000 && *max < 2_500_000,
        "now - E from {min} to {max} ns"
    );
}
