//! `orders.csv` and `fills.csv`: one row per order and per fill, prices and quantities as exact
//! decimals, money in quote units (8 decimals), times in ns (exchange time: the venue's clock;
//! receive time: the replay clock, see the [module docs](super)).

use super::{Backtest, FillRow, OrderRow};
use anyhow::{Context, Result};
use engine::event::{OrderType, Side};
use std::io::Write;
use std::path::Path;

/// The header of `orders.csv`.
pub const ORDERS_HEADER: &str = "pass,symbol,exch_ns,recv_ns,client_id,side,type,price,qty,state,filled_qty,avg_fill_price,fee,last_exch_ns";

/// The header of `fills.csv`.
pub const FILLS_HEADER: &str = "pass,symbol,exch_ns,recv_ns,client_id,side,type,price,qty,fee,position_after,realized_after,fees_after";

fn side(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn order_type(t: OrderType) -> &'static str {
    match t {
        OrderType::LimitGtc => "limit_gtc",
        OrderType::LimitIoc => "limit_ioc",
        OrderType::LimitFok => "limit_fok",
        OrderType::Market => "market",
    }
}

/// 1e-8 units as an exact decimal with 8 places.
pub fn decimal(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let a = units.unsigned_abs();
    format!("{sign}{}.{:08}", a / 100_000_000, a % 100_000_000)
}

fn order_line(b: &Backtest, o: &OrderRow) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        o.pass,
        b.symbols.get(o.symbol).map_or("?", String::as_str),
        o.exch_ns,
        o.recv_ns,
        o.client_id,
        side(o.side),
        order_type(o.order_type),
        o.price,
        o.qty,
        o.state(),
        o.filled,
        o.avg_fill_price(),
        decimal(o.fee),
        o.last_exch_ns,
    )
}

fn fill_line(b: &Backtest, f: &FillRow) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{}",
        f.pass,
        b.symbols.get(f.symbol).map_or("?", String::as_str),
        f.exch_ns,
        f.recv_ns,
        f.client_id,
        side(f.side),
        f.order_type.map_or("unknown", order_type),
        f.price,
        f.qty,
        decimal(i128::from(f.fee)),
        decimal(i128::from(f.pos.qty)),
        decimal(f.pos.realized),
        decimal(f.pos.fees),
    )
}

fn write_lines(path: &Path, header: &str, lines: impl Iterator<Item = String>) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "{header}")?;
    for l in lines {
        writeln!(w, "{l}")?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes `orders.csv`.
pub fn write_orders(path: &Path, b: &Backtest) -> Result<()> {
    write_lines(
        path,
        ORDERS_HEADER,
        b.orders.iter().map(|o| order_line(b, o)),
    )
}

/// Writes `fills.csv`.
pub fn write_fills(path: &Path, b: &Backtest) -> Result<()> {
    write_lines(path, FILLS_HEADER, b.fills.iter().map(|f| fill_line(b, f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(0), "0.00000000");
        assert_eq!(decimal(123_456_789), "1.23456789");
        assert_eq!(decimal(-5), "-0.00000005");
        assert_eq!(decimal(-100_000_000), "-1.00000000");
    }
}
