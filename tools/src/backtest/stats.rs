//! The report's statistics, from the fills and the equity curve: max drawdown, round trips and
//! their win rate, time in market.
//!
//! Definitions (the README's "Backtest report" repeats them):
//! - **Max drawdown**: the largest fall of net PnL (realised + unrealised - fees) from its
//!   highest point so far to a later low, over the equity curve's points (a point at every fill
//!   and one every sampling interval); quote units, never negative. The curve starts at 0.
//! - **Round trip**: per symbol, from the fill that takes the position off flat to the fill that
//!   brings it back to flat. A fill through zero (long to short in one fill) ends one round trip
//!   and starts the next. Its PnL is the realised PnL minus the fees of its fills; it is a win
//!   when that is above zero. A round trip still open at the end is not counted.
//! - **Time in market**: the share of the capture's time (first to last point of the curve, in
//!   exchange time) during which some symbol's position was not zero.

/// A fill as the statistics see it: when, which symbol, and the position after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillPoint {
    /// Exchange time, ns.
    pub t_ns: u64,
    /// Symbol index.
    pub symbol: usize,
    /// Position after the fill, 1e-8 base units.
    pub qty_after: i64,
    /// Realised PnL after the fill (cumulative, before fees), 1e-8 quote units.
    pub realized_after: i128,
    /// Fees after the fill (cumulative), 1e-8 quote units.
    pub fees_after: i128,
}

/// Round trips and how many were won.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundTrips {
    /// Round trips closed.
    pub closed: u64,
    /// Closed with PnL above zero.
    pub wins: u64,
    /// A round trip is still open at the end.
    pub open: bool,
}

impl RoundTrips {
    /// Wins over closed round trips; `None` with none closed.
    pub fn win_rate(&self) -> Option<f64> {
        (self.closed > 0).then(|| self.wins as f64 / self.closed as f64)
    }
}

/// The largest peak-to-trough fall of `net` (a curve starting from 0), never negative.
pub fn max_drawdown(net: impl IntoIterator<Item = i128>) -> i128 {
    let (mut peak, mut worst) = (0i128, 0i128);
    for v in net {
        peak = peak.max(v);
        worst = worst.max(peak - v);
    }
    worst
}

/// The round trips of `fills` (in time order per symbol; symbols may interleave), for `symbols`
/// symbols: see the [module docs](self).
pub fn round_trips(fills: &[FillPoint], symbols: usize) -> RoundTrips {
    // Per symbol: (position, realised - fees) before the next fill, and the baseline of the
    // open round trip (realised - fees when it started).
    let mut qty = vec![0i64; symbols];
    let mut net = vec![0i128; symbols];
    let mut start: Vec<Option<i128>> = vec![None; symbols];
    let mut out = RoundTrips::default();
    for f in fills {
        let Some(q) = qty.get_mut(f.symbol) else {
            continue;
        };
        let before = (*q, net[f.symbol]);
        let after_net = f.realized_after - f.fees_after;
        let through_zero = before.0 != 0 && f.qty_after != 0 && (before.0 > 0) != (f.qty_after > 0);
        if before.0 == 0 && f.qty_after != 0 {
            // Off flat: the fill's fee belongs to the new round trip.
            start[f.symbol] = Some(before.1);
        } else if before.0 != 0 && (f.qty_after == 0 || through_zero) {
            if let Some(s) = start[f.symbol].take() {
                out.closed += 1;
                if after_net - s > 0 {
                    out.wins += 1;
                }
            }
            if through_zero {
                start[f.symbol] = Some(after_net);
            }
        }
        *q = f.qty_after;
        net[f.symbol] = after_net;
    }
    out.open = start.iter().any(Option::is_some);
    out
}

/// The share of `[start_ns, end_ns]` during which some symbol's position, as `fills` change it
/// (in time order), was not zero; 0 for an empty span.
pub fn time_in_market(fills: &[FillPoint], symbols: usize, start_ns: u64, end_ns: u64) -> f64 {
    if end_ns <= start_ns {
        return 0.0;
    }
    let mut qty = vec![0i64; symbols];
    let mut open = 0usize;
    let mut since = start_ns;
    let mut inside = 0u64;
    for f in fills {
        let t = f.t_ns.clamp(start_ns, end_ns);
        let Some(q) = qty.get_mut(f.symbol) else {
            continue;
        };
        if open > 0 {
            inside += t.saturating_sub(since);
        }
        since = t;
        match (*q != 0, f.qty_after != 0) {
            (false, true) => open += 1,
            (true, false) => open -= 1,
            _ => {}
        }
        *q = f.qty_after;
    }
    if open > 0 {
        inside += end_ns.saturating_sub(since);
    }
    inside as f64 / (end_ns - start_ns) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fill on symbol 0 at `t` leaving `qty`, `realized` and `fees` (whole units here).
    fn fill(t: u64, qty: i64, realized: i128, fees: i128) -> FillPoint {
        FillPoint {
            t_ns: t,
            symbol: 0,
            qty_after: qty,
            realized_after: realized,
            fees_after: fees,
        }
    }

    #[test]
    fn max_drawdown_is_the_worst_fall_from_a_running_peak() {
        assert_eq!(max_drawdown([]), 0);
        assert_eq!(max_drawdown([1, 2, 3]), 0, "never falls");
        // Peak 10, trough 4 (fall 6); later peak 12, trough 9 (fall 3).
        assert_eq!(max_drawdown([5, 10, 7, 4, 8, 12, 9]), 6);
        // From the start at 0 straight down.
        assert_eq!(max_drawdown([-3, -1, -7, -2]), 7);
    }

    #[test]
    fn round_trips_run_flat_to_flat_and_count_fees() {
        let fills = [
            // 1: buy 2, sell 1, sell 1: +5 realised, fees 1 -> +4, a win.
            fill(1, 2, 0, 0),
            fill(2, 1, 3, 0),
            fill(3, 0, 5, 1),
            // 2: buy 1, sell 1 for +1 realised but fees 2 -> -1, a loss.
            fill(4, 1, 5, 2),
            fill(5, 0, 6, 3),
            // 3: buy 1, then sell 2 through zero: +2 realised -> +2, a win; 4 opens short.
            fill(6, 1, 6, 3),
            fill(7, -1, 8, 3),
            // 4: buy back for -3: a loss.
            fill(8, 0, 5, 3),
            // 5: still open.
            fill(9, 1, 5, 3),
        ];
        let r = round_trips(&fills, 1);
        assert_eq!(
            r,
            RoundTrips {
                closed: 4,
                wins: 2,
                open: true
            }
        );
        assert_eq!(r.win_rate(), Some(0.5));
        assert_eq!(round_trips(&[], 1).win_rate(), None);
    }

    #[test]
    fn time_in_market_is_the_share_with_a_position() {
        // Span 0..100: long 10..30, short 50..60, long 90..end.
        let fills = [
            fill(10, 1, 0, 0),
            fill(30, 0, 0, 0),
            fill(50, -1, 0, 0),
            fill(55, -2, 0, 0),
            fill(60, 0, 0, 0),
            fill(90, 1, 0, 0),
        ];
        let share = time_in_market(&fills, 1, 0, 100);
        assert!((share - 0.40).abs() < 1e-12, "{share}");
        assert_eq!(time_in_market(&[], 1, 0, 100), 0.0);
        assert_eq!(time_in_market(&fills, 1, 5, 5), 0.0);
        // Two symbols overlapping count once.
        let mut two = fills.to_vec();
        two.insert(
            1,
            FillPoint {
                symbol: 1,
                ..fill(20, 1, 0, 0)
            },
        );
        two.insert(
            3,
            FillPoint {
                symbol: 1,
                ..fill(40, 0, 0, 0)
            },
        );
        let share = time_in_market(&two, 2, 0, 100);
        assert!((share - 0.50).abs() < 1e-12, "{share}");
    }
}
