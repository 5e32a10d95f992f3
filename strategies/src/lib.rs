//! Tickline's strategies, built by name from `key = value` parameters.
//!
//! Every strategy here implements [`engine::strategy::Strategy`] for one symbol. Everything a
//! strategy needs (trader slots, ring buffers) is allocated when it is built; after that no
//! callback allocates, and every price and quantity decision is made in 1e-8 fixed point
//! (`i64`, `i128` for products), never in `f64`. Order sizes and prices follow the symbol's
//! [`SymbolRules`](engine::strategy::SymbolRules) as the context reports them at the time.
//!
//! [`build`] makes a strategy from its name (one of [`NAMES`]) and its [`Params`]. Each value is
//! read with a typed getter and range-checked (a bad value fails with its key), then
//! [`Params::finish`] makes any parameter nobody read an error, so a misspelt key never silently
//! turns into a default. Ratios are decimals (`0.001` is 0.1 %); quantities are base-asset units;
//! `budget` is quote-asset units.
//!
//! # `naive`: the trading cycle of the Elixir/OTP "naive" bot ([`naive`])
//!
//! `chunks` traders per symbol, each cycling on its own: when idle, it answers the next trade with
//! a GTC limit buy a little under the trade price, sized to its share of the budget; once the buy
//! is fully filled it places a GTC limit sell for what it bought at the buy price plus the profit
//! interval; once that sell is fully filled the cycle is complete and the trader starts afresh.
//! A rejected or canceled buy sends the trader back to idle (selling whatever part did fill); a
//! canceled sell is placed again at once, a rejected one on the next trade.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `chunks` | `1` | traders per symbol, `1..=64`; they split the budget evenly |
//! | `budget` | `100` | quote currency spent per buy across all traders (positive) |
//! | `buy_down_interval` | `0` | buy at trade price x (1 - this), in `[0, 1)` |
//! | `profit_interval` | `0.001` | sell at buy price x (1 + this), in `(-1, 1]` (the seed used `-0.0012` for quick testing) |
//!
//! # `sma_cross`: moving-average crossover ([`sma_cross`])
//!
//! Simple moving averages of the last `fast` and `slow` trade prices (one ring buffer, running
//! `i128` sums). When the fast average crosses above the slow one the strategy wants to be long
//! `qty` and buys with an IOC limit at the best ask; when it crosses below it wants to be flat and
//! sells what it holds with an IOC limit at the best bid. The best ask/bid is the bookTicker's if
//! one arrived, else the synced L2 book's, else the last trade price. One order at a time; while
//! the position differs from the target, the next trade sends the next IOC.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `fast` | `20` | fast window, trades, `1..=99_999`, less than `slow` |
//! | `slow` | `100` | slow window, trades, `2..=100_000` |
//! | `qty` | `0.001` | long position size, base units (positive) |
//!
//! # `ema_cross`: exponential-moving-average crossover ([`ema_cross`])
//!
//! The textbook EMA cross other engines ship as their first example (NautilusTrader's `EMACross`,
//! `nautilus_trader/examples/strategies/ema_cross.py`): a fast and a slow exponential moving
//! average (`alpha = 2 / (period + 1)`, seeded by the first input, initialised after `period`
//! inputs, as NautilusTrader's `ExponentialMovingAverage`), fed by every bookTicker mid and every
//! trade price. Every cross sends a market order of `qty`: a buy when the fast average crosses
//! above the slow one, a sell when it crosses below. Fixed point (`i128`, `alpha` a 2^32 fraction),
//! no division per input.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `fast` | `10` | fast period, inputs, `1..=999_999`, less than `slow` |
//! | `slow` | `40` | slow period, inputs, `2..=1_000_000` |
//! | `qty` | `0.001` | order size, base units (positive; rounded down to the lot size) |
//!
//! # `probe`: latency probe ([`probe`])
//!
//! Answers every trade with exactly one IOC limit buy whose client id is
//! `probe-<trade id>` ([`ClientOrderId::probe`](engine::event::ClientOrderId::probe)), priced far
//! from the market so it does not fill; the round trip trade -> order is what is measured.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `offset_bps` | `-1000` | price = trade price x (1 + this / 10 000), rounded down to tick; whole bps in `-9999..=10000` |
//! | `qty` | `0.0001` | order quantity, base units (positive) |
//!
//! # `xvenue_spread`: the spread between two venues' books ([`xvenue_spread`])
//!
//! Listens to both legs' books (`book.*.BTC*` by default), reads both through
//! [`Ctx::market`](engine::strategy::Ctx::market) whichever changed, and trades its home leg when
//! the spread (basis points of the home mid over the other leg's) leaves its moving average by
//! `threshold_bps`: long `qty` when the home leg is cheap, flat when it is rich.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `other` | `binance-usdm:BTCUSDT` | the reference leg, `<venue>:<symbol>` |
//! | `listen` | `book.*.BTC*` | channels heard, comma-separated |
//! | `window` | `1000` | EMA period of the spread, book updates |
//! | `threshold_bps` | `2` | signal distance from the average, basis points |
//! | `qty` | `0.001` | long position size, base units |
//!
//! # `chaos`: fault injection for supervision drills ([`chaos`])
//!
//! Places no orders. `chunks` traders count trades; every `panic_every`-th trade of the symbol,
//! trader `panic_trader` panics, so its restart (and, past `max_restarts` within
//! `restart_window_ms`, the symbol's halt) can be watched in `tickline ctl status`.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `chunks` | `2` | traders, `1..=64` |
//! | `panic_every` | `0` | a panic every this many trades (0: never) |
//! | `panic_trader` | `0` | which trader panics, below `chunks` |
//!
//! `naive` and `chaos` also take the supervisor's `max_restarts` (default 3) and
//! `restart_window_ms` (default 5000).
//!
//! # Example
//!
//! ```
//! use engine::strategy::{ParamError, Params};
//!
//! let s = strategies::build("naive", Params::new([("chunks", "4"), ("profit_interval", "-0.0012")]))?;
//! assert_eq!(s.name(), "naive");
//! assert_eq!(
//!     strategies::build("naive", Params::new([("chunkz", "4")])).err(),
//!     Some(ParamError::Unknown("chunkz".into()))
//! );
//! # Ok::<(), ParamError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chaos;
pub mod ema_cross;
pub mod naive;
pub mod probe;
pub mod sma_cross;
pub mod xvenue_spread;

#[cfg(test)]
mod testutil;

use engine::fixed::{Price, Qty, SCALE};
use engine::strategy::{ParamError, Params, Strategy};

/// The strategies [`build`] knows, by name.
pub const NAMES: &[&str] = &[
    naive::NAME,
    sma_cross::NAME,
    ema_cross::NAME,
    probe::NAME,
    chaos::NAME,
    xvenue_spread::NAME,
];

/// A strategy builder from outside this crate (a trader's own crate): given a name and its
/// parameters, `None` if the name is not one of its strategies, else the strategy or why the
/// parameters were refused.
pub type Factory = fn(&str, Params) -> Option<Result<Box<dyn Strategy>, ParamError>>;

/// The one [`Factory`] [`register`] installed, asked by [`build`] before the built-in names.
static EXTRA: std::sync::OnceLock<Factory> = std::sync::OnceLock::new();

/// Installs `factory` for the rest of the process: from now on [`build`] asks it first, so every
/// place that builds a strategy by name (the config check, a replay's or a live run's start,
/// `tickline ctl start-trading`) knows its strategies. Once per process: a second call changes
/// nothing and returns the factory it was given back.
///
/// Process-wide rather than threaded through: strategies are built by name on three threads
/// (config validation on main, the run's start, the control thread), each far from the others,
/// and the registry never changes once set. Reading it is one atomic load, at start-up and on
/// control commands, never per event.
pub fn register(factory: Factory) -> Result<(), Factory> {
    EXTRA.set(factory)
}

/// Builds the strategy called `name` from `params`: a [`register`]ed factory's if it knows the
/// name, else one of [`NAMES`].
///
/// Fails with [`ParamError::UnknownStrategy`] for a name not in [`NAMES`], with
/// [`ParamError::BadValue`] (naming the key) for a value that does not parse or is out of range,
/// and with [`ParamError::Unknown`] for a parameter the strategy does not take.
pub fn build(name: &str, mut params: Params) -> Result<Box<dyn Strategy>, ParamError> {
    if let Some(built) = EXTRA.get().and_then(|f| f(name, params.clone())) {
        return built;
    }
    let strategy: Box<dyn Strategy> = match name {
        naive::NAME => {
            let cfg = naive::NaiveConfig::from_params(&mut params)?;
            let policy = engine::supervisor::RestartPolicy::from_params(&mut params)?;
            Box::new(naive::Naive::with_policy(cfg, policy))
        }
        sma_cross::NAME => Box::new(sma_cross::SmaCross::new(
            sma_cross::SmaCrossConfig::from_params(&mut params)?,
        )),
        ema_cross::NAME => Box::new(ema_cross::EmaCross::new(
            ema_cross::EmaCrossConfig::from_params(&mut params)?,
        )),
        probe::NAME => Box::new(probe::Probe::new(probe::ProbeConfig::from_params(
            &mut params,
        )?)),
        chaos::NAME => {
            let cfg = chaos::ChaosConfig::from_params(&mut params)?;
            let policy = engine::supervisor::RestartPolicy::from_params(&mut params)?;
            chaos::build(cfg, policy)
        }
        xvenue_spread::NAME => Box::new(xvenue_spread::XvenueSpread::new(
            xvenue_spread::XvenueSpreadConfig::from_params(&mut params)?,
        )),
        _ => return Err(ParamError::UnknownStrategy(name.to_string())),
    };
    params.finish()?;
    Ok(strategy)
}

/// A [`ParamError::BadValue`] for `key`.
/// For a crossover strategy's `set_params` (`sma_cross`, `ema_cross`): refuses `fast` and `slow`
/// by name (`fixed` says why they cannot change while trading), and returns `params` merged over
/// the current `fast`, `slow` and `qty`, to be checked like at start-up. All or none.
pub(crate) fn crossover_update(
    params: &Params,
    current: [(&str, String); 3],
    fixed: &str,
) -> Result<Params, ParamError> {
    for key in ["fast", "slow"] {
        if params.keys().any(|k| k == key) {
            return Err(bad_value(key, fixed.to_string()));
        }
    }
    Ok(Params::new(current).merged(params))
}

pub(crate) fn bad_value(key: &str, why: String) -> ParamError {
    ParamError::BadValue {
        key: key.to_string(),
        why,
    }
}

/// Formats 1e-8 fixed-point units as a decimal, for error messages.
pub(crate) fn decimal(units: i64) -> String {
    Price(units).to_string()
}

/// `price x (1 + ratio)` (`ratio` in 1e-8 units), rounded down to a multiple of `tick`.
///
/// `None` if the result is not positive or does not fit.
pub(crate) fn scale_price(price: Price, ratio: i64, tick: Price) -> Option<Price> {
    let scaled = (price.0 as i128 * (SCALE as i128 + ratio as i128)).div_euclid(SCALE as i128);
    let p = Price(i64::try_from(scaled).ok()?).floor_to(tick);
    (p.0 > 0).then_some(p)
}

/// `qty` rounded down to a multiple of `lot` (unchanged if `lot` is not positive).
pub(crate) fn floor_qty(qty: Qty, lot: Qty) -> Qty {
    if lot.0 <= 0 {
        return qty;
    }
    Qty(qty.0.div_euclid(lot.0) * lot.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_all_build_with_defaults() {
        for &name in NAMES {
            let s = build(name, Params::default()).unwrap();
            assert_eq!(s.name(), name);
        }
    }

    #[test]
    fn unknown_strategy_is_refused() {
        assert_eq!(
            build("martingale", Params::default()).err(),
            Some(ParamError::UnknownStrategy("martingale".into()))
        );
        // Names are exact.
        assert!(matches!(
            build("Naive", Params::default()),
            Err(ParamError::UnknownStrategy(_))
        ));
    }

    #[test]
    fn unknown_parameter_fails_with_its_name() {
        for &name in NAMES {
            let err = build(name, Params::new([("no_such_knob", "1")])).err();
            assert_eq!(
                err,
                Some(ParamError::Unknown("no_such_knob".into())),
                "{name}"
            );
        }
        // A parameter of another strategy is unknown here.
        assert_eq!(
            build("probe", Params::new([("chunks", "2")])).err(),
            Some(ParamError::Unknown("chunks".into()))
        );
    }

    #[test]
    fn runtime_parameters_are_checked_and_applied_all_or_none() {
        for &name in NAMES {
            let mut s = build(name, Params::default()).unwrap();
            // An unknown key is refused by name, with a good one beside it: nothing changes.
            let good = match name {
                "naive" => ("budget", "50"),
                "sma_cross" | "ema_cross" | "probe" => ("qty", "0.002"),
                "chaos" => ("panic_every", "7"),
                "xvenue_spread" => ("qty", "0.002"),
                other => panic!("no runtime parameter listed for {other}"),
            };
            let e = s
                .set_params(&Params::new([good, ("no_such_knob", "1")]))
                .unwrap_err();
            assert_eq!(e, ParamError::Unknown("no_such_knob".into()), "{name}");
            // A bad value is refused with its key.
            let e = s.set_params(&Params::new([(good.0, "-1")])).unwrap_err();
            assert!(
                matches!(&e, ParamError::BadValue { key, .. } if key == good.0),
                "{name}: {e}"
            );
            if let Some(l) = s.leader_status().filter(|_| name == "naive") {
                let budget = l.params.iter().find(|p| p.0 == "budget").unwrap();
                assert_eq!(budget.1, "100.00000000", "nothing changed");
            }
            // A good one is applied and reported.
            let what = s.set_params(&Params::new([good])).unwrap();
            assert!(what.contains(good.0), "{name}: {what}");
        }
        // What may not change while trading says so, by name.
        let mut n = build("naive", Params::default()).unwrap();
        let e = n.set_params(&Params::new([("chunks", "4")])).unwrap_err();
        assert!(e.to_string().contains("chunks"), "{e}");
        let params = n.leader_status().unwrap().params;
        assert!(
            params.contains(&("budget".into(), "100.00000000".into())),
            "{params:?}"
        );
        let mut m = build("sma_cross", Params::default()).unwrap();
        let e = m.set_params(&Params::new([("slow", "50")])).unwrap_err();
        assert!(e.to_string().contains("slow"), "{e}");
    }

    #[test]
    fn price_and_qty_rounding() {
        let tick = Price(1_000_000);
        // 61837.63 x 1.001 = 61899.46763 -> 61899.46
        assert_eq!(
            scale_price(Price(6_183_763_000_000), 100_000, tick),
            Some(Price(6_189_946_000_000))
        );
        // 61837.63 x 0.9988 = 61763.424844 -> 61763.42
        assert_eq!(
            scale_price(Price(6_183_763_000_000), -120_000, tick),
            Some(Price(6_176_342_000_000))
        );
        assert_eq!(scale_price(Price(100), -SCALE, tick), None);
        assert_eq!(scale_price(Price(i64::MAX), SCALE, tick), None);
        assert_eq!(floor_qty(Qty(161_714), Qty(1_000)), Qty(161_000));
        assert_eq!(floor_qty(Qty(999), Qty(1_000)), Qty(0));
        assert_eq!(floor_qty(Qty(999), Qty(0)), Qty(999));
    }
}
