//! The open orders an instance owns: a fixed-size set of client ids (open addressing, linear
//! probing, backward-shift deletion), so checking a cancel or an order update is O(1) and
//! nothing allocates after deploy.

/// Slots (a power of two).
const SLOTS: usize = 16_384;
/// Most ids held (75 % load), above the core's largest order table (10 000).
pub const CAPACITY: usize = SLOTS / 4 * 3;

/// A set of non-zero ids.
pub(crate) struct IdSet {
    slots: Box<[u64]>,
    len: usize,
}

#[inline]
fn home(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
}

impl IdSet {
    pub(crate) fn new() -> IdSet {
        IdSet {
            slots: vec![0; SLOTS].into_boxed_slice(),
            len: 0,
        }
    }

    /// The slot holding `id`, or the empty slot where it would go.
    #[inline]
    fn find(&self, id: u64) -> usize {
        let mut i = home(id);
        loop {
            let s = self.slots[i];
            if s == id || s == 0 {
                return i;
            }
            i = (i + 1) & (SLOTS - 1);
        }
    }

    #[inline]
    pub(crate) fn contains(&self, id: u64) -> bool {
        id != 0 && self.slots[self.find(id)] == id
    }

    /// Adds `id`; false if the set is full (or `id` is 0).
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        if id == 0 {
            return false;
        }
        let i = self.find(id);
        if self.slots[i] == id {
            return true;
        }
        if self.len >= CAPACITY {
            return false;
        }
        self.slots[i] = id;
        self.len += 1;
        true
    }

    /// Removes `id` if present.
    pub(crate) fn remove(&mut self, id: u64) {
        if id == 0 {
            return;
        }
        let mut i = self.find(id);
        if self.slots[i] != id {
            return;
        }
        self.slots[i] = 0;
        self.len -= 1;
        // Shift back the entries after it whose home is not between the hole and them.
        let mut j = i;
        loop {
            j = (j + 1) & (SLOTS - 1);
            let s = self.slots[j];
            if s == 0 {
                return;
            }
            let k = home(s);
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = s;
                self.slots[j] = 0;
                i = j;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_finds_and_removes_like_a_hash_set() {
        let mut s = IdSet::new();
        let mut model = std::collections::HashSet::new();
        // A deterministic mix, including ids that collide and wrap around the table.
        let mut x = 12345u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % 20_000 + 1;
            if step % 3 == 0 {
                s.remove(id);
                model.remove(&id);
            } else if model.len() < CAPACITY {
                assert!(s.insert(id));
                model.insert(id);
            }
            assert_eq!(s.len(), model.len());
            let probe = (x >> 20) % 20_000 + 1;
            assert_eq!(s.contains(probe), model.contains(&probe), "step {step}");
        }
        for id in 1..=20_000 {
            assert_eq!(s.contains(id), model.contains(&id));
        }
        assert!(!s.contains(0) && !s.insert(0));
    }

    #[test]
    fn refuses_beyond_capacity() {
        let mut s = IdSet::new();
        for id in 1..=CAPACITY as u64 {
            assert!(s.insert(id));
        }
        assert!(!s.insert(CAPACITY as u64 + 1));
        assert!(s.insert(5), "already present");
        s.remove(5);
        assert!(s.insert(CAPACITY as u64 + 1));
    }
}
