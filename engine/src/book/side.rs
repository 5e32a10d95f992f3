//! One side of an [`OrderBook`](super::OrderBook): its levels sorted in small blocks, so an insert
//! or a removal anywhere in the side moves at most one block's levels plus a short index array.
//!
//! # Layout
//!
//! Storage order is worst first, best last (bids ascending, asks descending). The levels live in
//! a pool of `blocks` fixed-size blocks of [`B`] slots, one flat `Vec<Level>` allocated at
//! construction (block `b` is `pool[b * B..][..lens[b]]`). `order` lists the blocks in use in
//! storage order, `keys` holds each of them's last (best) price, and `free` the unused blocks.
//! A level is found by a search over `keys` (a few hundred bytes; it gallops back from the best
//! end, where most updates land) and a binary search inside its block.
//!
//! # Why the pool never runs out
//!
//! Invariant, after every public operation: every block in use is non-empty and **any two
//! adjacent blocks together hold more than `B` levels**. With `m` blocks the `floor(m / 2)`
//! disjoint adjacent pairs each hold at least `B + 1` of the side's `n` levels, so
//! `m <= 2 * floor(n / (B + 1)) + 1`; the pool has that many blocks for `n = cap`
//! ([`blocks_for`]). The operations keep it:
//!
//! * insert into a block with room: lengths only grow;
//! * insert into a full block: one level moves into a neighbour with room; only if both
//!   neighbours are full (or absent) does the block split into halves of `B / 2` and
//!   `B / 2 + 1` (together `B + 1`; each beside a full neighbour). The split happens with the
//!   side at `n <= cap` afterwards (a full side first drops its worst level), so the block count
//!   after it obeys the bound, and the free block it takes exists;
//! * removal: the emptied-out pair(s) around the block are merged (a pair holding `<= B`
//!   levels becomes one block; an empty block is freed). A merged block is at least as large as
//!   either part, so its pairs with its other neighbours still hold more than `B`;
//! * a snapshot is laid out in blocks of `3B/4` levels (any two of them hold `3B/2 > B`), the
//!   last two evened out (see [`Side::normalize`]).
//!
//! Nothing allocates after [`Side::new`]: `order`, `keys` and `free` never exceed the pool's
//! block count, which is their capacity.
use super::Level;
use crate::fixed::{Price, Qty};
use core::cmp::Ordering;

/// Levels per block: a 512-byte block, so an insert moves at most 31 levels (~16 on average).
pub(super) const B: usize = 32;

/// A snapshot's fill per block: room for later inserts, and any two blocks hold more than `B`.
const FILL: usize = B * 3 / 4;

/// Blocks needed for a side of at most `cap` levels (see the module docs).
pub(super) const fn blocks_for(cap: usize) -> usize {
    2 * (cap / (B + 1)) + 1
}

/// Storage order of a side: worst first, best last (bids ascending, asks descending).
#[inline(always)]
fn storage_cmp<const ASK: bool>(a: Price, b: Price) -> Ordering {
    if ASK {
        b.cmp(&a)
    } else {
        a.cmp(&b)
    }
}

/// One side of a book: at most `cap` levels, in storage order. See the module docs.
pub(super) struct Side<const ASK: bool> {
    /// `blocks * B` slots; block `b` is `pool[b * B..][..lens[b]]`.
    pool: Vec<Level>,
    /// Levels held by each block.
    lens: Vec<u32>,
    /// Blocks in use, in storage order.
    order: Vec<u32>,
    /// `keys[j]` is the last (best) price of block `order[j]`.
    keys: Vec<Price>,
    /// Blocks not in use.
    free: Vec<u32>,
    /// Levels held.
    len: usize,
    /// At most this many levels.
    cap: usize,
    /// `pool[..len]` holds a snapshot in arrival order; no block is in use yet.
    raw: bool,
    /// The block index of the last level located: a search starts there when that block's
    /// key is not below the price (a depth message lists its levels moving away from the
    /// touch, so the next one is usually in that block or a few below it).
    finger: usize,
}

impl<const ASK: bool> Side<ASK> {
    /// An empty side for at most `cap` levels; allocates everything it will ever use.
    pub(super) fn new(cap: usize) -> Self {
        let blocks = blocks_for(cap);
        let mut s = Side {
            pool: vec![
                Level {
                    price: Price(0),
                    qty: Qty(0),
                };
                blocks * B
            ],
            lens: vec![0; blocks],
            order: Vec::with_capacity(blocks),
            keys: Vec::with_capacity(blocks),
            free: Vec::with_capacity(blocks),
            len: 0,
            cap,
            raw: false,
            finger: 0,
        };
        s.clear();
        s
    }

    /// Empties the side and starts loading a snapshot (raw, in arrival order).
    pub(super) fn begin_load(&mut self) {
        self.clear();
        self.raw = true;
    }

    fn clear(&mut self) {
        self.order.clear();
        self.keys.clear();
        self.free.clear();
        // Taken from the back: block 0 first.
        self.free.extend((0..self.lens.len() as u32).rev());
        self.len = 0;
        self.raw = false;
    }

    /// Maps every page of the side's storage (see [`crate::prefault`]).
    pub(super) fn prefault(&mut self) {
        crate::prefault::slice_touch(&mut self.pool);
        crate::prefault::slice_touch(&mut self.lens);
        crate::prefault::vec_spare(&mut self.order);
        crate::prefault::vec_spare(&mut self.keys);
        crate::prefault::vec_spare(&mut self.free);
    }

    /// Levels held.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The best level (last in storage order). `None` while a snapshot loads raw.
    #[inline]
    pub(super) fn best(&self) -> Option<Level> {
        let &b = self.order.last()?;
        self.block(b as usize).last().copied()
    }

    /// The levels best first; empty unless `shown`.
    #[inline]
    pub(super) fn best_first(&self, shown: bool) -> impl Iterator<Item = Level> + '_ {
        let order: &[u32] = if shown { &self.order } else { &[] };
        order
            .iter()
            .rev()
            .flat_map(move |&b| self.block(b as usize).iter().rev().copied())
    }

    /// Block `b`'s levels.
    #[inline(always)]
    fn block(&self, b: usize) -> &[Level] {
        let n = self.lens.get(b).map_or(0, |&n| n as usize);
        self.pool.get(b * B..b * B + n).unwrap_or(&[])
    }

    /// Block `b`'s slots (all `B` of them) and its length.
    #[inline(always)]
    fn slots_mut(&mut self, b: usize) -> Option<(&mut [Level; B], &mut u32)> {
        let slots = self.pool.get_mut(b * B..b * B + B)?.try_into().ok()?;
        Some((slots, self.lens.get_mut(b)?))
    }

    /// Sets `keys[j]` to block `order[j]`'s last price.
    #[inline(always)]
    fn rekey(&mut self, j: usize) {
        let Some(&b) = self.order.get(j) else { return };
        if let Some(l) = self.block(b as usize).last() {
            let p = l.price;
            if let Some(k) = self.keys.get_mut(j) {
                *k = p;
            }
        }
    }

    /// Where `price` is or would go: `(j, Ok(i))` if block `order[j]` holds it at `i`,
    /// `(j, Err(i))` for the insertion point. `None` if the side holds no block.
    ///
    /// The block is the first whose key is not below `price`, found by galloping back (1, 2,
    /// 4, ... blocks) and a binary search over the last stride, from the best end of `keys`,
    /// or from the last block located ([`Side::finger`]) when `price` is not beyond it: most
    /// updates land near the touch, and a depth message's next level near its previous one,
    /// where this reads two or three keys instead of a binary search's log2(blocks) dependent
    /// reads.
    #[inline(always)]
    fn locate(&self, price: Price) -> Option<(usize, Result<usize, usize>)> {
        let last = self.order.len().checked_sub(1)?;
        let keys = self.keys.as_slice();
        let below = |k: Price| storage_cmp::<ASK>(k, price) == Ordering::Less;
        // keys[hi..] are all >= price; the answer lies in lo..=hi.
        let mut hi = match keys.get(self.finger) {
            Some(&k) if !below(k) => self.finger,
            _ => keys.len(),
        };
        let mut stride = 1;
        let lo = loop {
            let Some(k) = hi.checked_sub(stride) else {
                break 0;
            };
            if keys.get(k).is_some_and(|&p| below(p)) {
                break k + 1;
            }
            hi = k;
            stride *= 2;
        };
        let j = lo
            + keys
                .get(lo..hi)
                .map_or(0, |s| s.partition_point(|&p| below(p)));
        let j = j.min(last);
        let &b = self.order.get(j)?;
        let found = self
            .block(b as usize)
            .binary_search_by(|l| storage_cmp::<ASK>(l.price, price));
        Some((j, found))
    }

    /// Sets `price` to `qty` (`qty <= 0` removes it), keeping at most `cap` levels: a level that
    /// does not fit pushes out the worst, or is dropped if it is the worst; each counts in
    /// `truncated`.
    #[inline]
    pub(super) fn upsert(&mut self, price: Price, qty: Qty, truncated: &mut u64) {
        let found = self.locate(price);
        if let Some((j, _)) = found {
            self.finger = j;
        }
        match found {
            Some((j, Ok(i))) => {
                if qty.0 > 0 {
                    if let Some(&b) = self.order.get(j) {
                        if let Some(l) = self.pool.get_mut(b as usize * B + i) {
                            l.qty = qty;
                        }
                    }
                } else {
                    self.remove_at(j, i);
                }
            }
            Some((j, Err(i))) => {
                if qty.0 <= 0 {
                    // Removing an absent level: nothing to do.
                } else if self.len < self.cap {
                    self.insert_at(j, i, Level { price, qty });
                } else {
                    self.insert_into_full(j, i, Level { price, qty }, truncated);
                }
            }
            None => {
                if qty.0 <= 0 {
                } else if self.len < self.cap {
                    self.insert_first(Level { price, qty });
                } else {
                    *truncated += 1;
                }
            }
        }
    }

    /// A full side: the new level pushes out the worst, or is dropped if worse than all.
    #[cold]
    #[inline(never)]
    fn insert_into_full(&mut self, j: usize, i: usize, level: Level, truncated: &mut u64) {
        *truncated += 1;
        if (j, i) == (0, 0) {
            return;
        }
        self.remove_at(0, 0);
        match self.locate(level.price) {
            Some((j, Err(i))) => self.insert_at(j, i, level),
            Some((_, Ok(_))) => {}
            None => self.insert_first(level),
        }
    }

    /// The first level of an empty side.
    #[cold]
    #[inline(never)]
    fn insert_first(&mut self, level: Level) {
        let Some(b) = self.free.pop() else { return };
        if let Some((slots, n)) = self.slots_mut(b as usize) {
            slots[0] = level;
            *n = 1;
            self.order.push(b);
            self.keys.push(level.price);
            self.len += 1;
        }
    }

    /// Inserts `level` at index `i` of block `order[j]` (`i` may be its length).
    #[inline]
    fn insert_at(&mut self, j: usize, i: usize, level: Level) {
        let Some(&b) = self.order.get(j) else { return };
        let Some((slots, n)) = self.slots_mut(b as usize) else {
            return;
        };
        let len = *n as usize;
        if len < B {
            if i > len {
                return;
            }
            slots.copy_within(i..len, i + 1);
            slots[i] = level;
            *n += 1;
            self.len += 1;
            if i == len {
                if let Some(k) = self.keys.get_mut(j) {
                    *k = level.price;
                }
            }
            return;
        }
        self.insert_into_full_block(j, i, level);
    }

    /// Block `order[j]` is full: move a level into a neighbour with room, else split.
    #[inline(never)]
    fn insert_into_full_block(&mut self, j: usize, i: usize, level: Level) {
        let room = |s: &Self, j: Option<usize>| {
            j.and_then(|j| s.order.get(j))
                .and_then(|&b| s.lens.get(b as usize))
                .is_some_and(|&n| (n as usize) < B)
        };
        let Some(&b) = self.order.get(j) else { return };
        let b = b as usize;
        if i > B {
            return;
        }
        if let Some(&a) = j
            .checked_sub(1)
            .and_then(|l| self.order.get(l))
            .filter(|_| room(self, j.checked_sub(1)))
        {
            // The block's first level (or the new one, if it goes first) moves to the end of
            // the left neighbour.
            let a = a as usize;
            let moved = if i == 0 {
                level
            } else {
                let Some((slots, _)) = self.slots_mut(b) else {
                    return;
                };
                let first = slots[0];
                slots.copy_within(1..i, 0);
                slots[i - 1] = level;
                first
            };
            let Some((left, n)) = self.slots_mut(a) else {
                return;
            };
            if let Some(slot) = left.get_mut(*n as usize) {
                *slot = moved;
                *n += 1;
            }
            self.len += 1;
            self.rekey(j - 1);
            self.rekey(j);
        } else if let Some(&c) = self.order.get(j + 1).filter(|_| room(self, Some(j + 1))) {
            // The block's last level (or the new one, if it goes last) moves to the front of
            // the right neighbour.
            let c = c as usize;
            let moved = if i == B {
                level
            } else {
                let Some((slots, _)) = self.slots_mut(b) else {
                    return;
                };
                let last = slots[B - 1];
                slots.copy_within(i..B - 1, i + 1);
                slots[i] = level;
                last
            };
            let Some((right, n)) = self.slots_mut(c) else {
                return;
            };
            let rn = *n as usize;
            if rn < B {
                right.copy_within(0..rn, 1);
                right[0] = moved;
                *n += 1;
            }
            self.len += 1;
            self.rekey(j);
            self.rekey(j + 1);
        } else {
            self.split(j, i, level);
        }
    }

    /// Splits the full block `order[j]` in two and inserts `level` at its index `i`.
    #[cold]
    #[inline(never)]
    fn split(&mut self, j: usize, i: usize, level: Level) {
        const H: usize = B / 2;
        let Some(&b) = self.order.get(j) else { return };
        // The pool is sized so that a free block exists (see the module docs).
        debug_assert!(!self.free.is_empty(), "block pool exhausted");
        let Some(c) = self.free.pop() else { return };
        let (b, c) = (b as usize, c as usize);
        let (lo, hi) = if b < c { (b, c) } else { (c, b) };
        let (head, tail) = self.pool.split_at_mut(hi * B);
        let (Some(low), Some(high)) = (head.get_mut(lo * B..lo * B + B), tail.get_mut(..B)) else {
            return;
        };
        let (src, dst) = if b < c { (low, high) } else { (high, low) };
        dst[..B - H].copy_from_slice(&src[H..]);
        let (bn, cn) = if i <= H {
            src.copy_within(i..H, i + 1);
            src[i] = level;
            (H + 1, B - H)
        } else {
            let k = i - H;
            dst.copy_within(k..B - H, k + 1);
            dst[k] = level;
            (H, B - H + 1)
        };
        if let Some(n) = self.lens.get_mut(b) {
            *n = bn as u32;
        }
        if let Some(n) = self.lens.get_mut(c) {
            *n = cn as u32;
        }
        self.order.insert(j + 1, c as u32);
        self.keys.insert(j + 1, level.price);
        self.len += 1;
        self.rekey(j);
        self.rekey(j + 1);
    }

    /// Removes index `i` of block `order[j]` and merges around it.
    #[inline]
    fn remove_at(&mut self, j: usize, i: usize) {
        let Some(&b) = self.order.get(j) else { return };
        let Some((slots, n)) = self.slots_mut(b as usize) else {
            return;
        };
        let len = *n as usize;
        if i >= len {
            return;
        }
        slots.copy_within(i + 1..len, i);
        *n -= 1;
        self.len -= 1;
        if i + 1 == len {
            self.rekey(j);
        }
        self.rebalance(j);
    }

    /// After a removal from block `order[j]`: merges it with a neighbour when the two fit in one
    /// block, and frees it if it is empty and alone.
    #[inline]
    fn rebalance(&mut self, j: usize) {
        let fits = |s: &Self, j: usize| {
            let n = |j: usize| {
                s.order
                    .get(j)
                    .and_then(|&b| s.lens.get(b as usize))
                    .map(|&n| n as usize)
            };
            matches!((n(j), n(j + 1)), (Some(x), Some(y)) if x + y <= B)
        };
        let mut j = j;
        if j > 0 && fits(self, j - 1) {
            j -= 1;
            self.merge(j);
        }
        if fits(self, j) {
            self.merge(j);
        }
        let Some(&b) = self.order.get(j) else { return };
        if self.lens.get(b as usize) == Some(&0) {
            // Empty and without neighbours (else it would have merged).
            self.order.remove(j);
            self.keys.remove(j);
            self.free.push(b);
        }
    }

    /// Moves block `order[j + 1]`'s levels to the end of block `order[j]` and frees it.
    #[cold]
    #[inline(never)]
    fn merge(&mut self, j: usize) {
        let (Some(&b), Some(&c)) = (self.order.get(j), self.order.get(j + 1)) else {
            return;
        };
        let (b, c) = (b as usize, c as usize);
        let bn = self.lens.get(b).map_or(0, |&n| n as usize);
        let cn = self.lens.get(c).map_or(0, |&n| n as usize);
        if bn + cn > B {
            return;
        }
        self.pool.copy_within(c * B..c * B + cn, b * B + bn);
        if let Some(n) = self.lens.get_mut(b) {
            *n = (bn + cn) as u32;
        }
        self.order.remove(j + 1);
        self.keys.remove(j + 1);
        self.free.push(c as u32);
        self.rekey(j);
    }

    /// Adds a snapshot level. While raw, levels are appended in arrival order (Binance sends
    /// them best first, the reverse of storage order) and sorted once by [`Side::normalize`]; a
    /// side that fills up is sorted then and takes the rest by [`Side::upsert`], so truncation
    /// keeps the best levels.
    #[inline]
    pub(super) fn load(&mut self, level: Level, truncated: &mut u64) {
        if self.raw {
            if self.len < self.cap {
                if let Some(slot) = self.pool.get_mut(self.len) {
                    *slot = level;
                    self.len += 1;
                }
                return;
            }
            self.normalize();
        }
        self.upsert(level.price, level.qty, truncated);
    }

    /// Sorts a side loaded raw into storage order (in place, no allocation) and lays it out in
    /// blocks. Duplicate prices (a malformed snapshot) keep one of their levels.
    #[cold]
    pub(super) fn normalize(&mut self) {
        if !self.raw {
            return;
        }
        self.raw = false;
        let Some(raw) = self.pool.get_mut(..self.len) else {
            self.clear();
            return;
        };
        raw.sort_unstable_by(|a, b| storage_cmp::<ASK>(a.price, b.price));
        let mut n = 0;
        for r in 0..raw.len() {
            if n == 0 || raw[r].price != raw[n - 1].price {
                raw[n] = raw[r];
                n += 1;
            }
        }
        // Block sizes: FILL each; the last two evened out if the last is short, so any two
        // adjacent blocks hold more than B.
        let full = n / FILL;
        let rest = n % FILL;
        let (tail_a, tail_b, head) = match (full, rest) {
            (_, 0) => (0, 0, full),
            (0, r) => (r, 0, 0),
            (f, r) if FILL + r <= B => (FILL + r, 0, f - 1),
            (f, r) => ((FILL + r) / 2, FILL + r - (FILL + r) / 2, f - 1),
        };
        let blocks = head + usize::from(tail_a > 0) + usize::from(tail_b > 0);
        if blocks > self.lens.len() {
            self.clear();
            return;
        }
        // Block k takes sorted levels from `start`; moved last block first, each to its slot
        // at or after its source, so no source is overwritten before it is read.
        let size = |k: usize| match k.cmp(&head) {
            Ordering::Less => FILL,
            Ordering::Equal => tail_a,
            Ordering::Greater => tail_b,
        };
        let mut start = n;
        for k in (0..blocks).rev() {
            let len = size(k);
            start -= len;
            self.pool.copy_within(start..start + len, k * B);
            if let Some(l) = self.lens.get_mut(k) {
                *l = len as u32;
            }
        }
        self.order.clear();
        self.keys.clear();
        self.free.clear();
        for k in 0..blocks {
            self.order.push(k as u32);
            self.keys.push(Price(0));
            self.rekey(k);
        }
        self.free
            .extend((blocks as u32..self.lens.len() as u32).rev());
        self.len = n;
    }

    /// Storage addresses, to check nothing reallocates.
    #[cfg(test)]
    pub(super) fn ptrs(&self) -> [usize; 5] {
        [
            self.pool.as_ptr() as usize,
            self.lens.as_ptr() as usize,
            self.order.as_ptr() as usize,
            self.keys.as_ptr() as usize,
            self.free.as_ptr() as usize,
        ]
    }

    /// Blocks in use and in the pool.
    #[cfg(test)]
    pub(super) fn blocks(&self) -> (usize, usize) {
        (self.order.len(), self.lens.len())
    }

    /// Panics unless every invariant of the module docs holds.
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert!(!self.raw);
        let nb = self.lens.len();
        assert!(
            self.order.len() <= 2 * (self.len / (B + 1)) + 1,
            "too many blocks"
        );
        assert_eq!(self.order.len(), self.keys.len());
        assert_eq!(self.order.len() + self.free.len(), nb, "blocks leaked");
        let mut seen = vec![false; nb];
        for &b in self.order.iter().chain(&self.free) {
            assert!(
                !std::mem::replace(&mut seen[b as usize], true),
                "block twice"
            );
        }
        let mut total = 0;
        let mut prev: Option<Price> = None;
        for (j, &b) in self.order.iter().enumerate() {
            let lv = self.block(b as usize);
            assert!(!lv.is_empty(), "empty block in use");
            assert_eq!(self.keys[j], lv[lv.len() - 1].price, "key of block {j}");
            for l in lv {
                if let Some(p) = prev {
                    assert_eq!(storage_cmp::<ASK>(p, l.price), Ordering::Less, "order");
                }
                assert!(l.qty.0 > 0);
                prev = Some(l.price);
            }
            total += lv.len();
            if let Some(&c) = self.order.get(j + 1) {
                assert!(
                    lv.len() + self.block(c as usize).len() > B,
                    "pair {j} too small"
                );
            }
        }
        assert_eq!(total, self.len);
        assert!(self.len <= self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;
    use std::collections::BTreeMap;

    /// The obvious side: a `BTreeMap` keeping the best `cap` levels.
    struct Model {
        ask: bool,
        cap: usize,
        map: BTreeMap<Price, Qty>,
        truncated: u64,
    }

    impl Model {
        fn new(ask: bool, cap: usize) -> Self {
            Model {
                ask,
                cap,
                map: BTreeMap::new(),
                truncated: 0,
            }
        }

        fn set(&mut self, price: Price, qty: Qty) {
            if qty.0 <= 0 {
                self.map.remove(&price);
                return;
            }
            self.map.insert(price, qty);
            if self.map.len() > self.cap {
                self.truncated += 1;
                if self.ask {
                    self.map.pop_last();
                } else {
                    self.map.pop_first();
                }
            }
        }

        fn best_first(&self) -> Vec<Level> {
            let it = self.map.iter().map(|(&price, &qty)| Level { price, qty });
            if self.ask {
                it.collect()
            } else {
                it.rev().collect()
            }
        }
    }

    fn assert_same<const ASK: bool>(s: &Side<ASK>, m: &Model, what: &str) {
        s.check();
        let got: Vec<Level> = s.best_first(true).collect();
        assert_eq!(got, m.best_first(), "{what}");
        assert_eq!(s.best(), m.best_first().first().copied(), "{what}");
        assert_eq!(s.len(), m.map.len());
    }

    /// Random upserts over a price range about three sides deep, in phases that grow the side
    /// past its cap (truncation) and shrink it again (merges), with snapshot reloads between.
    fn random_ops<const ASK: bool>(cap: usize, seed: u64, ops: usize) {
        let mut rng = Rng(seed);
        let mut s = Side::<ASK>::new(cap);
        let ptrs = s.ptrs();
        let mut m = Model::new(ASK, cap);
        let mut truncated = 0u64;
        let range = 3 * cap as u64 + 8;
        let mut max_blocks = 0;
        for op in 0..ops {
            let phase = (op / 500) % 4;
            if op % 2000 == 1999 {
                // A snapshot of distinct prices in random order, some beyond the cap.
                let mut prices: Vec<i64> = (0..range as i64).collect();
                for i in (1..prices.len()).rev() {
                    prices.swap(i, rng.below(i as u64 + 1) as usize);
                }
                prices.truncate(rng.below(cap as u64 + cap as u64 / 2 + 2) as usize);
                s.begin_load();
                let before = m.truncated;
                m = Model::new(ASK, cap);
                m.truncated = before;
                for &p in &prices {
                    let l = Level {
                        price: Price(p),
                        qty: Qty(1 + rng.below(100) as i64),
                    };
                    s.load(l, &mut truncated);
                    m.set(l.price, l.qty);
                }
                s.normalize();
                assert_eq!(truncated, m.truncated, "snapshot at op {op}");
                assert_same(&s, &m, "after snapshot");
                continue;
            }
            let remove_pct = [15, 50, 75, 40][phase];
            let price = Price(rng.below(range) as i64);
            let qty = if rng.below(100) < remove_pct {
                Qty(0)
            } else {
                Qty(1 + rng.below(1000) as i64)
            };
            s.upsert(price, qty, &mut truncated);
            m.set(price, qty);
            assert_eq!(truncated, m.truncated, "truncation count at op {op}");
            if cap <= 200 || op % 64 == 0 {
                assert_same(&s, &m, &format!("cap {cap} op {op}"));
            }
            max_blocks = max_blocks.max(s.blocks().0);
        }
        assert_same(&s, &m, "end");
        assert_eq!(s.ptrs(), ptrs, "no reallocation");
        assert!(max_blocks <= blocks_for(cap));
        if cap > 0 {
            assert!(m.truncated > 0, "cap {cap}: truncation exercised");
        }
    }

    #[test]
    fn random_ops_match_a_btreemap_model() {
        for (k, &cap) in [0, 1, 2, 7, 31, 32, 33, 64, 65, 200, 1000]
            .iter()
            .enumerate()
        {
            let ops = if cap >= 1000 { 40_000 } else { 12_000 };
            random_ops::<false>(cap, 0xB10C_0000 + k as u64, ops);
            random_ops::<true>(cap, 0xA5C0_0000 + k as u64, ops);
        }
    }

    /// Fills a side with `prices` (qty 1), checking the invariants after every insert.
    fn fill<const ASK: bool>(s: &mut Side<ASK>, m: &mut Model, prices: impl Iterator<Item = i64>) {
        let mut t = 0;
        for p in prices {
            s.upsert(Price(p), Qty(1), &mut t);
            m.set(Price(p), Qty(1));
            s.check();
        }
    }

    fn remove<const ASK: bool>(
        s: &mut Side<ASK>,
        m: &mut Model,
        prices: impl Iterator<Item = i64>,
    ) {
        let mut t = 0;
        for p in prices {
            s.upsert(Price(p), Qty(0), &mut t);
            m.set(Price(p), Qty(0));
            s.check();
        }
    }

    /// Patterns that try to fragment the pool: every block left as small as the merge rule
    /// allows, then inserts forced into each of them; the block count must stay within the
    /// bound (the split would fail its pool-exhausted assertion otherwise).
    fn adversarial<const ASK: bool>(cap: usize) {
        let cap_i = cap as i64;
        let mut s = Side::<ASK>::new(cap);
        let mut m = Model::new(ASK, cap);
        let mut worst_blocks = 0;
        for round in 0..4 {
            // Ascending and descending fills split at either end of the side.
            let spread = 4 * cap_i;
            if round % 2 == 0 {
                fill(&mut s, &mut m, (0..cap_i).map(|p| p * 4));
            } else {
                fill(&mut s, &mut m, (0..cap_i).rev().map(|p| p * 4));
            }
            assert_same(&s, &m, "filled");
            assert_eq!(s.len(), cap);
            worst_blocks = worst_blocks.max(s.blocks().0);
            // Thin every block out: remove all but every `k`-th level.
            let k = [2, 3, 5, 17][round];
            remove(
                &mut s,
                &mut m,
                (0..cap_i).filter(|p| p % k != 0).map(|p| p * 4),
            );
            assert_same(&s, &m, "thinned");
            // Refill between the survivors, so every block grows and splits again.
            fill(&mut s, &mut m, (0..cap_i).map(|p| p * 4 + 2));
            fill(&mut s, &mut m, (0..cap_i).rev().map(|p| p * 4 + 1));
            assert_same(&s, &m, "refilled");
            assert_eq!(s.len(), cap, "full again");
            worst_blocks = worst_blocks.max(s.blocks().0);
            // Full side: better levels push out the worst, anywhere in the side.
            fill(&mut s, &mut m, (0..cap_i).map(|p| spread - p * 3 - 1));
            fill(&mut s, &mut m, (0..cap_i).map(|p| p * 7 + 3));
            assert_same(&s, &m, "truncating");
            worst_blocks = worst_blocks.max(s.blocks().0);
            // Empty it from the middle outwards.
            let all: Vec<i64> = m.map.keys().map(|p| p.0).collect();
            let mid = all.len() / 2;
            let (lo, hi) = all.split_at(mid);
            let order = hi.iter().zip(lo.iter().rev()).flat_map(|(a, b)| [*a, *b]);
            remove(
                &mut s,
                &mut m,
                order.chain(hi.get(lo.len()..).unwrap_or(&[]).iter().copied()),
            );
            assert_eq!(s.len(), 0, "emptied");
            assert_eq!(s.blocks().0, 0);
        }
        assert!(worst_blocks <= blocks_for(cap));
    }

    #[test]
    fn adversarial_patterns_never_exhaust_the_pool() {
        for cap in [1, 2, 7, 32, 33, 64, 100, 200, 1000, 5000] {
            adversarial::<false>(cap);
            adversarial::<true>(cap);
        }
    }

    /// The bound's arithmetic, and sides filled to their cap from the worst end (each new level
    /// goes first in the first block).
    #[test]
    fn front_inserts_up_to_the_cap_fit_the_pool() {
        assert_eq!(blocks_for(0), 1);
        assert_eq!(blocks_for(B), 1);
        assert_eq!(blocks_for(B + 1), 3);
        assert_eq!(blocks_for(5000), 2 * (5000 / 33) + 1);
        for cap in [B, B + 1, 2 * B + 2, 5000] {
            let mut s = Side::<false>::new(cap);
            let mut m = Model::new(false, cap);
            let n = cap as i64;
            fill(&mut s, &mut m, (0..n).map(|p| n * 2 - p));
            assert_same(&s, &m, "front inserts");
            let (used, pool) = s.blocks();
            assert!(used <= pool, "cap {cap}: {used} of {pool} blocks");
        }
    }

    #[test]
    fn a_snapshot_is_laid_out_in_blocks_any_two_of_which_hold_more_than_a_block() {
        let mut t = 0;
        for n in 0..(4 * B + 3) {
            let mut s = Side::<true>::new(5000);
            s.begin_load();
            // Best first (asks ascending), with a duplicate price every tenth level.
            for p in 0..n as i64 {
                let price = Price(p - i64::from(p % 10 == 9));
                s.load(Level { price, qty: Qty(1) }, &mut t);
            }
            s.normalize();
            s.check();
            let want = n - n / 10;
            assert_eq!(s.len(), want, "duplicates keep one");
            let got: Vec<i64> = s.best_first(true).map(|l| l.price.0).collect();
            assert!(got.windows(2).all(|w| w[0] < w[1]), "asks best first");
        }
        assert_eq!(t, 0);
    }
}
