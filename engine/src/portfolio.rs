//! Positions and PnL per symbol, in exact fixed point.
//!
//! Quantities are signed 1e-8 base units (long > 0). Money is `i128` in 1e-8 quote units, so no
//! sum of fills can overflow or round. Realised PnL follows average-cost accounting: a fill that
//! grows a position moves the average entry price; a fill that shrinks it realises
//! `(fill price - average) x closed quantity`; a fill through zero closes, then opens the rest at
//! the fill price.

use crate::event::Side;
use crate::fixed::{Price, Qty, SCALE};

/// One symbol's position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Signed quantity, 1e-8 base units.
    pub qty: i64,
    /// Average entry price of the open quantity (zero when flat).
    pub avg_price: Price,
    /// Realised PnL before fees, 1e-8 quote units.
    pub realized: i128,
    /// Fees paid (negative for rebates), 1e-8 quote units.
    pub fees: i128,
    /// Last price seen, for unrealised PnL.
    pub mark: Price,
    /// Number of fills applied.
    pub fills: u64,
    /// Traded notional, 1e-8 quote units.
    pub volume: i128,
}

impl Position {
    /// Applies one fill of our order.
    pub fn apply_fill(&mut self, side: Side, price: Price, qty: Qty, fee: i64) {
        let q = qty.0 as i128;
        if q <= 0 {
            return;
        }
        let signed = q * side.sign() as i128;
        let pos = self.qty as i128;
        self.fills += 1;
        self.fees += fee as i128;
        self.volume += price.0 as i128 * q / SCALE as i128;
        if pos == 0 || (pos > 0) == (signed > 0) {
            let total = pos.abs() + q;
            let avg = (self.avg_price.0 as i128 * pos.abs() + price.0 as i128 * q) / total;
            self.avg_price = Price(avg as i64);
            self.qty = (pos + signed) as i64;
            return;
        }
        let closed = q.min(pos.abs());
        let direction = pos.signum();
        self.realized +=
            (price.0 as i128 - self.avg_price.0 as i128) * closed * direction / SCALE as i128;
        let new_pos = pos + signed;
        self.qty = new_pos as i64;
        if new_pos == 0 {
            self.avg_price = Price::ZERO;
        } else if new_pos.signum() != direction {
            self.avg_price = price;
        }
    }

    /// Marks the position to `price` (the last trade).
    #[inline]
    pub fn mark_to(&mut self, price: Price) {
        self.mark = price;
    }

    /// Unrealised PnL at the mark, 1e-8 quote units.
    pub fn unrealized(&self) -> i128 {
        if self.qty == 0 || self.mark.0 == 0 {
            return 0;
        }
        (self.mark.0 as i128 - self.avg_price.0 as i128) * self.qty as i128 / SCALE as i128
    }

    /// Realised + unrealised - fees, 1e-8 quote units.
    pub fn net_pnl(&self) -> i128 {
        self.realized + self.unrealized() - self.fees
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap()
    }
    fn q(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn round_trip_realises_exactly() {
        let mut p = Position::default();
        p.apply_fill(Side::Buy, px("100"), q("1"), 10_000_000);
        p.apply_fill(Side::Buy, px("110"), q("1"), 0);
        assert_eq!(p.avg_price, px("105"));
        p.mark_to(px("120"));
        assert_eq!(p.unrealized(), 30 * SCALE as i128);
        p.apply_fill(Side::Sell, px("120"), q("2"), 0);
        assert_eq!(p.qty, 0);
        assert_eq!(p.realized, 30 * SCALE as i128);
        assert_eq!(p.fees, 10_000_000);
        assert_eq!(p.net_pnl(), 30 * SCALE as i128 - 10_000_000);
        assert_eq!(p.fills, 3);
    }

    #[test]
    fn flipping_through_zero_opens_at_fill_price() {
        let mut p = Position::default();
        p.apply_fill(Side::Buy, px("100"), q("1"), 0);
        p.apply_fill(Side::Sell, px("90"), q("3"), 0);
        assert_eq!(p.realized, -10 * SCALE as i128);
        assert_eq!(p.qty, -2 * SCALE);
        assert_eq!(p.avg_price, px("90"));
        p.mark_to(px("80"));
        assert_eq!(p.unrealized(), 20 * SCALE as i128);
    }

    #[test]
    fn partial_close_keeps_average() {
        let mut p = Position::default();
        p.apply_fill(Side::Sell, px("50"), q("2"), 0);
        p.apply_fill(Side::Buy, px("40"), q("0.5"), 0);
        assert_eq!(p.avg_price, px("50"));
        assert_eq!(p.realized, 5 * SCALE as i128);
        assert_eq!(p.qty, -150_000_000);
    }
}
