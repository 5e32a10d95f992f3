//! A deployed instance's counters, shared with the status tree and the metrics thread: plain
//! atomics the core thread stores into with relaxed ordering (no lock, no allocation), read by
//! anyone holding the [`Arc`](std::sync::Arc).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a callback was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// Ran out of its CPU budget (fuel).
    Fuel,
    /// Grew its memory (or a table) past the deployment's cap.
    Memory,
    /// Executed `unreachable`.
    Unreachable,
    /// Integer division by zero or overflow.
    DivByZero,
    /// A load or store outside its linear memory (or a table access out of range).
    OutOfBounds,
    /// Its call stack overflowed.
    Stack,
    /// Any other trap.
    OtherTrap,
    /// `tl_on_event` (or `tl_init`, `tl_restore`) returned non-zero.
    BadReturn,
}

impl StopKind {
    /// Every kind, in [`index`](Self::index) order.
    pub const ALL: [StopKind; 8] = [
        StopKind::Fuel,
        StopKind::Memory,
        StopKind::Unreachable,
        StopKind::DivByZero,
        StopKind::OutOfBounds,
        StopKind::Stack,
        StopKind::OtherTrap,
        StopKind::BadReturn,
    ];

    /// Its slot in [`WasmStats::stops`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in status and metrics (`wasm.<symbol>.traps.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            StopKind::Fuel => "fuel",
            StopKind::Memory => "memory",
            StopKind::Unreachable => "unreachable",
            StopKind::DivByZero => "div_by_zero",
            StopKind::OutOfBounds => "out_of_bounds",
            StopKind::Stack => "stack_overflow",
            StopKind::OtherTrap => "other_trap",
            StopKind::BadReturn => "bad_return",
        }
    }
}

/// Host refusals, by `TL_ERR_*` code (`-1..=-10`, slot `-code - 1`).
pub const REFUSAL_NAMES: [&str; 10] = [
    "side",
    "type",
    "qty",
    "price",
    "order_cap",
    "full",
    "unknown_order",
    "bounds",
    "halted",
    "timer",
];

/// One instance's counters (cumulative over restarts).
#[derive(Debug, Default)]
pub struct WasmStats {
    /// Callbacks run (`tl_on_event` calls).
    pub callbacks: AtomicU64,
    /// Fuel the last callback used.
    pub fuel_last: AtomicU64,
    /// Most fuel a callback used.
    pub fuel_max: AtomicU64,
    /// Fuel used by every callback.
    pub fuel_total: AtomicU64,
    /// The fuel budget per callback.
    pub fuel_budget: AtomicU64,
    /// Linear memory now, bytes.
    pub memory_bytes: AtomicU64,
    /// The memory cap, bytes.
    pub memory_cap: AtomicU64,
    /// Callbacks stopped, by [`StopKind`].
    pub stops: [AtomicU64; 8],
    /// Host refusals, by `TL_ERR_*` ([`REFUSAL_NAMES`]).
    pub refusals: [AtomicU64; 10],
    /// Orders the guest placed (accepted by the host and handed to the core).
    pub orders: AtomicU64,
    /// Instances restarted (after a stopped callback).
    pub restarts: AtomicU64,
    /// 1 once the supervisor halted the symbol.
    pub halted: AtomicU64,
    /// `tl_log` lines (kept: the last one is in the status tree).
    pub logs: AtomicU64,
    /// `tl_log` lines dropped by the rate limit.
    pub logs_dropped: AtomicU64,
}

impl WasmStats {
    /// Adds one to a counter.
    #[inline]
    pub(crate) fn bump(c: &AtomicU64) {
        c.store(c.load(Relaxed) + 1, Relaxed);
    }

    /// Callbacks stopped, every kind.
    pub fn stops_total(&self) -> u64 {
        self.stops.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Refusals, every kind.
    pub fn refusals_total(&self) -> u64 {
        self.refusals.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Callbacks stopped for `kind`.
    pub fn stops_of(&self, kind: StopKind) -> u64 {
        self.stops[kind.index()].load(Relaxed)
    }

    /// Refusals with code `code` (a `TL_ERR_*`, negative).
    pub fn refusals_of(&self, code: i32) -> u64 {
        let i = (-(code as i64) - 1) as usize;
        self.refusals.get(i).map_or(0, |c| c.load(Relaxed))
    }

    /// The counters as `(name, value)`, for status lines and metrics (`stops.<kind>`,
    /// `refusals.<code>` only where non-zero).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "callbacks {}, fuel last {} max {} of {}, memory {} KiB of {} KiB, orders {}, restarts {}",
            self.callbacks.load(Relaxed),
            self.fuel_last.load(Relaxed),
            self.fuel_max.load(Relaxed),
            self.fuel_budget.load(Relaxed),
            self.memory_bytes.load(Relaxed) / 1024,
            self.memory_cap.load(Relaxed) / 1024,
            self.orders.load(Relaxed),
            self.restarts.load(Relaxed),
        );
        let mut traps = Vec::new();
        for k in StopKind::ALL {
            let n = self.stops_of(k);
            if n > 0 {
                traps.push(format!("{}={n}", k.name()));
            }
        }
        s.push_str(&format!(
            ", traps {}",
            if traps.is_empty() {
                "none".to_string()
            } else {
                traps.join(" ")
            }
        ));
        let mut refused = Vec::new();
        for (i, name) in REFUSAL_NAMES.iter().enumerate() {
            let n = self.refusals[i].load(Relaxed);
            if n > 0 {
                refused.push(format!("{name}={n}"));
            }
        }
        if !refused.is_empty() {
            s.push_str(&format!(", refused {}", refused.join(" ")));
        }
        s
    }
}
