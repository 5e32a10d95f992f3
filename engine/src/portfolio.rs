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
    /// Largest magnitude of a money field ([`realized`](Self::realized), [`fees`](Self::fees),
    /// [`volume`](Self::volume)) a sane position holds: 2^100 1e-8 quote units (about 1.3e22
    /// quote units). Recovery refuses a journaled position beyond it, so every sum below stays
    /// far from `i128`'s range.
    pub const MONEY_BOUND: i128 = 1 << 100;

    /// True when every field is in the range a position built from fills can reach: the money
    /// fields within [`MONEY_BOUND`](Self::MONEY_BOUND) (volume not negative), the quantity not
    /// `i64::MIN`, and the average price not negative (zero exactly when flat is not required:
    /// a flat position may keep a stale average). The journal checks this on recovery.
    pub fn is_sane(&self) -> bool {
        let money = |v: i128| (-Self::MONEY_BOUND..=Self::MONEY_BOUND).contains(&v);
        self.qty != i64::MIN
            && self.avg_price.0 >= 0
            && self.mark.0 >= 0
            && money(self.realized)
            && money(self.fees)
            && (0..=Self::MONEY_BOUND).contains(&self.volume)
    }

    /// Applies one fill of our order. The arithmetic saturates (a position restored from disk,
    /// or a hostile fill, can pin a field at its limit but never wrap or panic).
    pub fn apply_fill(&mut self, side: Side, price: Price, qty: Qty, fee: i64) {
        let q = qty.0 as i128;
        if q <= 0 {
            return;
        }
        let signed = q * side.sign() as i128;
        let pos = self.qty as i128;
        self.fills = self.fills.saturating_add(1);
        self.fees = self.fees.saturating_add(fee as i128);
        self.volume = self
            .volume
            .saturating_add(price.0 as i128 * q / SCALE as i128);
        if pos == 0 || (pos > 0) == (signed > 0) {
            let total = pos.abs() + q;
            let avg = (self.avg_price.0 as i128 * pos.abs() + price.0 as i128 * q) / total;
            self.avg_price = Price(clamp_i64(avg));
            self.qty = clamp_i64(pos + signed);
            return;
        }
        let closed = q.min(pos.abs());
        let direction = pos.signum();
        self.realized = self.realized.saturating_add(
            (price.0 as i128 - self.avg_price.0 as i128) * closed * direction / SCALE as i128,
        );
        let new_pos = pos + signed;
        self.qty = clamp_i64(new_pos);
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
        // |mark - avg| < 2^64 and |qty| <= 2^63: the product fits in i128.
        (self.mark.0 as i128 - self.avg_price.0 as i128) * self.qty as i128 / SCALE as i128
    }

    /// Realised + unrealised - fees, 1e-8 quote units (saturating).
    pub fn net_pnl(&self) -> i128 {
        self.realized
            .saturating_add(self.unrealized())
            .saturating_sub(self.fees)
    }
}

/// `v` clamped into `i64`.
fn clamp_i64(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
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

    #[test]
    fn hostile_values_saturate_instead_of_overflowing() {
        let mut p = Position {
            qty: i64::MAX,
            avg_price: Price(i64::MAX),
            realized: i128::MAX,
            fees: i128::MIN,
            mark: Price(1),
            fills: u64::MAX,
            volume: i128::MAX,
        };
        assert!(!p.is_sane());
        assert_eq!(p.net_pnl(), i128::MAX);
        p.apply_fill(Side::Buy, Price(i64::MAX), Qty(i64::MAX), i64::MAX);
        p.apply_fill(Side::Sell, Price(0), Qty(i64::MAX), i64::MIN);
        assert_eq!(p.fills, u64::MAX);
        let _ = p.net_pnl();
        assert!(Position::default().is_sane());
    }
}
