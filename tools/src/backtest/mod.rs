//! The backtest report: `tickline replay --report-dir DIR` with a strategy also writes the
//! trading view of the run beside the latency report:
//!
//! | file | what |
//! |---|---|
//! | `orders.csv` | one row per order the strategy submitted: when (exchange and receive time of the event that caused it), client id, side, type, price, quantity, final state, filled quantity, average fill price, fees |
//! | `fills.csv` | one row per fill: when, client id, side, type, price, quantity, fee, and the position, realised PnL and fees after it |
//! | `pnl.svg` | realised, unrealised and net PnL over capture (exchange) time; the position in a second panel below |
//! | `summary.json` | orders, fills, traded volume (base and quote), fees, PnL, max drawdown, round trips and their win rate, time in market |
//!
//! **Where the data comes from, off the core.** Each symbol's strategy runs inside a
//! [`tap::TapStrategy`] that copies the orders it submits, the updates it is told about and a
//! position mark (every 1/2000 of the replay's span, and at every fill) into an SPSC ring: a
//! fixed-size copy per record, no allocation, no lock on the core. The [`tap::Collector`] thread
//! (`tickline-backtest`) drains the rings into memory; when the run is over,
//! [`Backtest::from_collected`] joins the records into rows and [`stats`] computes the figures.
//! A full ring drops records and counts them (`records_dropped` in `summary.json`, and a warning):
//! a report with drops is incomplete and says so. PnL in `summary.json` is the run's own (the
//! core's positions, as `tickline replay --json` prints it), not recomputed.
//!
//! **`--repeat N`.** The report covers every pass: each row has a `pass` column (0-based), the
//! chart runs on through the passes (the position and PnL carry over from one pass to the next,
//! as in the run), and the statistics are over the whole run. Pass `k`'s exchange times are the
//! capture's moved `k x (capture span + 1 s)` later, as the replay moves them.
//!
//! **Times.** `exch_ns` is the newest exchange time the core had seen when the record was made:
//! the exchange time of the market event being handled (the event that caused the order or the
//! paper fill). `recv_ns` is the replay clock then: the capture's receive time of the frame the
//! core was handling (in an as-fast-as-possible replay too: the feed sends each frame's time
//! beside its events). The chart and the statistics use exchange time.
//!
//! Files: [`tap`] (the wrapper and the collector), [`csv`] (the two tables), [`stats`] (the
//! figures), [`chart`] (the SVG).

pub mod chart;
pub mod csv;
pub mod stats;
pub mod tap;

use crate::runtime::RunReport;
use anyhow::{Context, Result};
use engine::event::{ClientOrderId, OrderType, RejectReason, Side};
use engine::fixed::{Price, Qty, SCALE};
use engine::strategy::OrderUpdateKind;
use engine::symbol::SymbolTable;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tap::{Collected, PosSnap, TapKind};

/// Equity points the chart aims for over the whole run (the mark interval is the run's span over
/// this; fills add their own points).
pub const TARGET_POINTS: u64 = 2000;

/// One order, as `orders.csv` has it.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderRow {
    /// Pass of a repeated replay (0-based).
    pub pass: u32,
    /// Symbol index.
    pub symbol: usize,
    /// Client id.
    pub client_id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// Type and time in force.
    pub order_type: OrderType,
    /// Limit price (zero for market orders).
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Exchange time of the event that caused it, ns.
    pub exch_ns: u64,
    /// Replay clock when it was submitted, ns.
    pub recv_ns: u64,
    /// The last thing it was told.
    pub last: Option<OrderUpdateKind>,
    /// Still open after the last update.
    pub open: bool,
    /// Quantity filled.
    pub filled: Qty,
    /// Filled notional, 1e-8 quote units (for the average price).
    pub filled_notional: i128,
    /// Fees paid on its fills, 1e-8 quote units.
    pub fee: i128,
    /// Exchange time of its last update, ns (0: none).
    pub last_exch_ns: u64,
}

impl OrderRow {
    /// The final (or last known) state, as a word: `filled`, `canceled`, `rejected:<reason>`,
    /// `partially_filled`, `accepted`, `timed_out`, `new` (no answer at all).
    pub fn state(&self) -> String {
        match self.last {
            None => "new".into(),
            Some(OrderUpdateKind::Accepted) => "accepted".into(),
            Some(OrderUpdateKind::Filled { .. }) if self.open => "partially_filled".into(),
            Some(OrderUpdateKind::Filled { .. }) => "filled".into(),
            Some(OrderUpdateKind::Canceled) => "canceled".into(),
            Some(OrderUpdateKind::TimedOut) => "timed_out".into(),
            Some(OrderUpdateKind::Rejected(r)) => format!("rejected:{}", reject_code(r)),
        }
    }

    /// Average fill price (zero with no fill).
    pub fn avg_fill_price(&self) -> Price {
        if self.filled.0 <= 0 {
            return Price::ZERO;
        }
        Price((self.filled_notional * i128::from(SCALE) / i128::from(self.filled.0)) as i64)
    }
}

/// One fill, as `fills.csv` has it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FillRow {
    /// Pass of a repeated replay (0-based).
    pub pass: u32,
    /// Symbol index.
    pub symbol: usize,
    /// Exchange time of the event that caused it, ns.
    pub exch_ns: u64,
    /// Replay clock then, ns.
    pub recv_ns: u64,
    /// Client id.
    pub client_id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// The order's type (None if the order's submission was not recorded).
    pub order_type: Option<OrderType>,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Fee, 1e-8 quote units.
    pub fee: i64,
    /// The position after it.
    pub pos: PosSnap,
}

/// One point of the equity curve: every symbol's position at `t_ns`.
#[derive(Clone, Debug, PartialEq)]
pub struct EquityPoint {
    /// Exchange time, ns.
    pub t_ns: u64,
    /// Realised PnL before fees, all symbols, 1e-8 quote units.
    pub realized: i128,
    /// Unrealised PnL, all symbols.
    pub unrealized: i128,
    /// Fees, all symbols.
    pub fees: i128,
    /// Each symbol's position, 1e-8 base units.
    pub qty: Vec<i64>,
}

impl EquityPoint {
    /// Realised + unrealised - fees.
    pub fn net(&self) -> i128 {
        self.realized + self.unrealized - self.fees
    }
}

/// The trading view of a run: see the [module docs](self).
#[derive(Debug, Default)]
pub struct Backtest {
    /// Symbol names, by index.
    pub symbols: Vec<String>,
    /// Orders, in submission order (per symbol).
    pub orders: Vec<OrderRow>,
    /// Fills, in time order.
    pub fills: Vec<FillRow>,
    /// The equity curve, in time order.
    pub equity: Vec<EquityPoint>,
    /// Records the tap dropped (full ring): non-zero means the tables are incomplete.
    pub dropped: u64,
    /// Order updates whose order's submission was not recorded.
    pub orphan_updates: u64,
}

impl Backtest {
    /// Joins the collector's records into rows; `pass_len_ns` is how much later each pass of a
    /// repeated replay runs than the one before (0: one pass).
    pub fn from_collected(mut c: Collected, symbols: &SymbolTable, pass_len_ns: u64) -> Backtest {
        let names: Vec<String> = symbols.iter().map(|(_, n)| n.to_string()).collect();
        let n = names.len();
        // Each symbol's records are in order; across symbols, order them by exchange time
        // (a stable sort keeps each symbol's own order).
        c.records.sort_by_key(|r| r.exch_ns);
        let first = c
            .records
            .iter()
            .map(|r| r.exch_ns)
            .find(|&t| t > 0)
            .unwrap_or(0);
        let pass = |t: u64| -> u32 {
            match pass_len_ns {
                0 => 0,
                p => (t.saturating_sub(first) / p).min(u64::from(u32::MAX)) as u32,
            }
        };
        let mut out = Backtest {
            symbols: names,
            dropped: c.dropped,
            ..Backtest::default()
        };
        let mut index: HashMap<ClientOrderId, usize> = HashMap::new();
        let mut last = vec![PosSnap::default(); n];
        for r in &c.records {
            let sym = r.symbol.index();
            if sym >= n {
                continue;
            }
            last[sym] = r.pos;
            let point = match r.kind {
                TapKind::Submit(id, req) => {
                    index.insert(id, out.orders.len());
                    out.orders.push(OrderRow {
                        pass: pass(r.exch_ns),
                        symbol: sym,
                        client_id: id,
                        side: req.side,
                        order_type: req.order_type,
                        price: req.price,
                        qty: req.qty,
                        exch_ns: r.exch_ns,
                        recv_ns: r.recv_ns,
                        last: None,
                        open: true,
                        filled: Qty::ZERO,
                        filled_notional: 0,
                        fee: 0,
                        last_exch_ns: 0,
                    });
                    false
                }
                TapKind::Update(u) => {
                    let row = index.get(&u.client_id).and_then(|&i| out.orders.get_mut(i));
                    let order_type = row.as_ref().map(|o| o.order_type);
                    match row {
                        Some(o) => {
                            o.last = Some(u.kind);
                            o.open = !u.is_final();
                            o.last_exch_ns = r.exch_ns;
                            if let OrderUpdateKind::Filled { price, qty, fee } = u.kind {
                                o.filled = Qty(o.filled.0 + qty.0);
                                o.filled_notional +=
                                    i128::from(price.0) * i128::from(qty.0) / i128::from(SCALE);
                                o.fee += i128::from(fee);
                            }
                        }
                        None => out.orphan_updates += 1,
                    }
                    match u.kind {
                        OrderUpdateKind::Filled { price, qty, fee } => {
                            out.fills.push(FillRow {
                                pass: pass(r.exch_ns),
                                symbol: sym,
                                exch_ns: r.exch_ns,
                                recv_ns: r.recv_ns,
                                client_id: u.client_id,
                                side: u.side,
                                order_type,
                                price,
                                qty,
                                fee,
                                pos: r.pos,
                            });
                            true
                        }
                        _ => false,
                    }
                }
                TapKind::Mark => true,
            };
            if point {
                out.equity.push(EquityPoint {
                    t_ns: r.exch_ns,
                    realized: last.iter().map(|p| p.realized).sum(),
                    unrealized: last.iter().map(PosSnap::unrealized).sum(),
                    fees: last.iter().map(|p| p.fees).sum(),
                    qty: last.iter().map(|p| p.qty).collect(),
                });
            }
        }
        out
    }

    /// The fills as the statistics see them.
    pub fn fill_points(&self) -> Vec<stats::FillPoint> {
        self.fills
            .iter()
            .map(|f| stats::FillPoint {
                t_ns: f.exch_ns,
                symbol: f.symbol,
                qty_after: f.pos.qty,
                realized_after: f.pos.realized,
                fees_after: f.pos.fees,
            })
            .collect()
    }

    /// `summary.json`: the statistics, with the run's own PnL (`run`'s positions).
    pub fn summary(&self, run: &RunReport, strategy: &str, passes: u32) -> serde_json::Value {
        let fills = self.fill_points();
        let trips = stats::round_trips(&fills, self.symbols.len());
        let (start, end) = match (self.equity.first(), self.equity.last()) {
            (Some(a), Some(b)) => (a.t_ns, b.t_ns),
            _ => (0, 0),
        };
        let base: i128 = self.fills.iter().map(|f| i128::from(f.qty.0)).sum();
        let quote: i128 = self
            .fills
            .iter()
            .map(|f| i128::from(f.price.0) * i128::from(f.qty.0) / i128::from(SCALE))
            .sum();
        let fees: i128 = self.fills.iter().map(|f| i128::from(f.fee)).sum();
        let (realized, unrealized, run_fees, net) = run.pnl();
        let count = |word: &str| self.orders.iter().filter(|o| o.state() == word).count();
        json!({
            "strategy": strategy,
            "symbols": self.symbols,
            "passes": passes,
            "orders": self.orders.len(),
            "orders_filled": count("filled"),
            "orders_canceled": count("canceled"),
            "orders_rejected": self.orders.iter().filter(|o| o.state().starts_with("rejected")).count(),
            "orders_open": self.orders.iter().filter(|o| o.open).count(),
            "fills": self.fills.len(),
            "volume_base": money(base),
            "volume_quote": money(quote),
            "fees": money(fees),
            "pnl": {"realized": realized, "unrealized": unrealized, "fees": run_fees, "net": net},
            "max_drawdown": money(stats::max_drawdown(self.equity.iter().map(EquityPoint::net))),
            "round_trips": trips.closed,
            "round_trips_won": trips.wins,
            "win_rate": trips.win_rate(),
            "round_trip_open_at_end": trips.open,
            "time_in_market": stats::time_in_market(&fills, self.symbols.len(), start, end),
            "exch_start_ns": start,
            "exch_end_ns": end,
            "equity_points": self.equity.len(),
            "records_dropped": self.dropped,
            "orphan_updates": self.orphan_updates,
        })
    }

    /// Writes `orders.csv`, `fills.csv`, `pnl.svg` and `summary.json` into `dir` (created if
    /// missing); the paths written.
    pub fn write(
        &self,
        dir: &Path,
        run: &RunReport,
        strategy: &str,
        passes: u32,
    ) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = |name: &str| dir.join(name);
        let orders = path("orders.csv");
        csv::write_orders(&orders, self)?;
        let fills = path("fills.csv");
        csv::write_fills(&fills, self)?;
        let svg = path("pnl.svg");
        chart::write_pnl_svg(&svg, self, strategy)?;
        let summary = path("summary.json");
        let text = serde_json::to_string_pretty(&self.summary(run, strategy, passes))?;
        std::fs::write(&summary, text + "\n")
            .with_context(|| format!("writing {}", summary.display()))?;
        Ok(vec![orders, fills, svg, summary])
    }
}

/// 1e-8 units as a float.
pub fn money(units: i128) -> f64 {
    units as f64 / SCALE as f64
}

/// A rejection's reason as a short code.
pub fn reject_code(r: RejectReason) -> &'static str {
    match r {
        RejectReason::NoLiquidity => "no_liquidity",
        RejectReason::InvalidOrder => "invalid_order",
        RejectReason::TooManyOrders => "too_many_orders",
        RejectReason::Venue => "venue",
        RejectReason::QueueFull => "queue_full",
        RejectReason::Risk(d) => d.code(),
        RejectReason::Disconnected => "disconnected",
        RejectReason::Journal => "journal",
        RejectReason::NoUserStream => "no_user_stream",
        RejectReason::IdCheck => "id_check",
    }
}

/// Replays `arena` as [`crate::pipeline::replay_passes`] does, with every strategy tapped and a
/// collector thread recording them: the run's report (its allocation count leaving out the
/// collector's own, made off the core and the feed thread) and the trading view of the run.
pub fn replay(
    arena: &crate::pipeline::FrameArena,
    passes: u32,
    opts: crate::pipeline::ReplayOptions,
) -> Result<(RunReport, Backtest)> {
    let passes = passes.max(1);
    let span = arena.span_ns();
    let mark_every_ns = (span.saturating_mul(u64::from(passes)) / TARGET_POINTS).max(1_000_000);
    let pass_len_ns = if passes > 1 {
        span + crate::pipeline::PASS_GAP_NS
    } else {
        0
    };
    let symbols = opts.symbols.clone();
    let (mut taps, collector) = tap::Taps::new(symbols.len(), mark_every_ns);
    let collector = collector.spawn()?;
    let run =
        crate::pipeline::replay_passes_with(arena, passes, opts, &mut |id, s| taps.wrap(id, s));
    // The core (and with it every tap) is gone once the replay returns, so the collector ends;
    // on an error, drop the taps not installed so it ends too.
    drop(taps);
    let collected = crate::runtime::join(collector, "backtest collector")?;
    let mut run = run?;
    run.allocations = run
        .allocations
        .map(|a| a.saturating_sub(collected.allocations));
    Ok((
        run,
        Backtest::from_collected(collected, &symbols, pass_len_ns),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::event::OrderRequest;
    use engine::strategy::OrderUpdate;
    use engine::symbol::SymbolId;
    use tap::TapRecord;

    fn rec(t: u64, kind: TapKind, qty: i64, realized: i128, fees: i128) -> TapRecord {
        TapRecord {
            exch_ns: t,
            recv_ns: t + 1,
            symbol: SymbolId(0),
            kind,
            pos: PosSnap {
                qty,
                avg_price: Price(100 * SCALE),
                mark: Price(100 * SCALE),
                realized,
                fees,
            },
        }
    }

    fn update(id: ClientOrderId, kind: OrderUpdateKind, leaves: i64) -> TapKind {
        TapKind::Update(OrderUpdate {
            client_id: id,
            side: Side::Buy,
            price: Price(100 * SCALE),
            kind,
            leaves_qty: Qty(leaves),
            filled_qty: Qty(0),
        })
    }

    #[test]
    fn records_join_into_orders_fills_passes_and_an_equity_curve() {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let (a, b, c) = (ClientOrderId(1), ClientOrderId(2), ClientOrderId(3));
        let req = OrderRequest {
            side: Side::Buy,
            price: Price(100 * SCALE),
            qty: Qty(2 * SCALE),
            order_type: OrderType::LimitGtc,
        };
        let fill = |qty: i64, fee: i64| OrderUpdateKind::Filled {
            price: Price(100 * SCALE),
            qty: Qty(qty),
            fee,
        };
        let records = vec![
            rec(1_000, TapKind::Mark, 0, 0, 0),
            rec(1_000, TapKind::Submit(a, req), 0, 0, 0),
            rec(
                1_010,
                update(a, OrderUpdateKind::Accepted, 2 * SCALE),
                0,
                0,
                0,
            ),
            // Two partial fills of order a: the row sums them.
            rec(1_020, update(a, fill(SCALE, 10), SCALE), SCALE, 0, 10),
            rec(1_030, update(a, fill(SCALE, 10), 0), 2 * SCALE, 0, 20),
            rec(1_040, TapKind::Submit(b, req), 2 * SCALE, 0, 20),
            rec(
                1_050,
                update(b, OrderUpdateKind::Rejected(RejectReason::NoLiquidity), 0),
                2 * SCALE,
                0,
                20,
            ),
            // The second pass (pass length 1000 ns): order c stays open.
            rec(2_100, TapKind::Submit(c, req), 2 * SCALE, 0, 20),
            // An update of an order never seen (its submission dropped).
            rec(
                2_200,
                update(ClientOrderId(9), OrderUpdateKind::Canceled, 0),
                2 * SCALE,
                0,
                20,
            ),
        ];
        let collected = Collected {
            records,
            dropped: 0,
            allocations: 0,
        };
        let bt = Backtest::from_collected(collected, &symbols, 1_000);
        assert_eq!(bt.orders.len(), 3);
        let o = &bt.orders[0];
        assert_eq!(
            (o.state().as_str(), o.filled, o.fee),
            ("filled", Qty(2 * SCALE), 20)
        );
        assert_eq!(o.avg_fill_price(), Price(100 * SCALE));
        assert_eq!(
            (o.exch_ns, o.recv_ns, o.last_exch_ns),
            (1_000, 1_001, 1_030)
        );
        assert_eq!(bt.orders[1].state(), "rejected:no_liquidity");
        assert_eq!(
            (bt.orders[2].state().as_str(), bt.orders[2].pass),
            ("new", 1)
        );
        assert!(bt.orders[2].open);
        assert_eq!(bt.orphan_updates, 1);
        assert_eq!(bt.fills.len(), 2);
        assert_eq!(bt.fills[1].pos.qty, 2 * SCALE);
        assert_eq!(bt.fills[1].order_type, Some(OrderType::LimitGtc));
        // The curve: the mark and the two fills.
        assert_eq!(bt.equity.len(), 3);
        assert_eq!(bt.equity[2].net(), -20);
        assert_eq!(bt.equity[2].qty, vec![2 * SCALE]);
    }
}
