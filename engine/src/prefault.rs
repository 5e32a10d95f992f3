//! Pre-faulting: touching memory the core will write later, once, at start-up.
//!
//! A `Vec::with_capacity` or a zeroed allocation is only address space until its pages are
//! first written; each first write on the hot path is a minor page fault (a trap into the kernel,
//! about a microsecond, more on a VM). [`Core::prefault`](crate::core::Core::prefault) runs these
//! helpers over every buffer the core owns before the clock starts, on the core's own thread, so
//! the run's page-fault counter shows the hot path's faults only. Safe code: spare capacity is
//! written as `MaybeUninit::zeroed()` (one write per page), which is never read.

use core::mem::MaybeUninit;

/// Bytes per page assumed (the smallest page on the machines we run on).
const PAGE: usize = 4096;

/// Writes one byte-range per page of `v`'s spare capacity (`len..capacity`), so those pages are
/// mapped. `v`'s contents and length are unchanged.
pub fn vec_spare<T>(v: &mut Vec<T>) {
    let size = core::mem::size_of::<T>();
    if size == 0 {
        return;
    }
    let spare = v.spare_capacity_mut();
    let step = (PAGE / size).max(1);
    let mut i = 0;
    while let Some(slot) = spare.get_mut(i) {
        *slot = MaybeUninit::zeroed();
        i += step;
    }
    if let Some(last) = spare.last_mut() {
        *last = MaybeUninit::zeroed();
    }
    std::hint::black_box(spare);
}

/// Writes one element per page of `v` back to itself, so pages of a zeroed allocation
/// (`vec![0; n]`, which the allocator may leave unmapped) are mapped. Contents unchanged.
pub fn slice_touch<T: Copy>(v: &mut [T]) {
    let size = core::mem::size_of::<T>();
    if size == 0 {
        return;
    }
    let step = (PAGE / size).max(1);
    let mut i = 0;
    while let Some(x) = v.get_mut(i) {
        // `black_box` hides that the value is unchanged, so the store is kept.
        *x = std::hint::black_box(*x);
        i += step;
    }
    if let Some(x) = v.last_mut() {
        *x = std::hint::black_box(*x);
    }
}

/// [`vec_spare`] for a binary heap (through its vector; the heap is unchanged).
pub fn heap_spare<T: Ord>(h: &mut std::collections::BinaryHeap<T>) {
    let mut v = core::mem::take(h).into_vec();
    vec_spare(&mut v);
    *h = std::collections::BinaryHeap::from(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_contents_and_capacity_alone() {
        let mut v: Vec<u64> = Vec::with_capacity(100_000);
        v.extend([1, 2, 3]);
        vec_spare(&mut v);
        assert_eq!(v, [1, 2, 3]);
        assert!(v.capacity() >= 100_000);
        let mut h = std::collections::BinaryHeap::with_capacity(5000);
        h.push(3u32);
        h.push(9);
        heap_spare(&mut h);
        assert!(h.capacity() >= 5000);
        assert_eq!(h.into_sorted_vec(), [3, 9]);
        let mut z: Vec<()> = Vec::with_capacity(4);
        vec_spare(&mut z);
        let mut e: Vec<u8> = Vec::new();
        vec_spare(&mut e);
        let mut t = vec![(7u64, 9u64); 10_000];
        slice_touch(&mut t);
        assert!(t.iter().all(|&x| x == (7, 9)));
        slice_touch(&mut e);
    }
}
