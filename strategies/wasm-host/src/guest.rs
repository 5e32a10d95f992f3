//! One live instance: its store (with the limits), its exports, and the host calls it may make.
//!
//! The host calls reach the engine's [`Ctx`] of the running callback through [`HostState::ctx`],
//! set just before the guest is entered and cleared when it returns. Every argument is checked
//! here; a refusal is counted (by `TL_ERR_*` code), remembered as the last refusal, and returned
//! to the guest as a negative number, never a trap.

use crate::abi::{self, err};
use crate::stats::{StopKind, WasmStats};
use engine::event::{ClientOrderId, OrderRequest, OrderType, Side};
use engine::fixed::{Price, Qty};
use engine::strategy::{Ctx, CtxError, Intent};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use wasmtime::{Caller, Linker, Memory, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc};

/// Highest `orders_per_callback` a deployment may set.
pub const MAX_ORDERS_PER_CALLBACK: usize = 64;
/// Open orders an instance may own at once (a submit beyond it is refused with `TL_ERR_FULL`):
/// more than the core's largest order table, so the core's own limit is the one that bites.
pub const MAX_OPEN_ORDERS: usize = crate::idset::CAPACITY;
/// Timers a callback may set.
pub const TIMERS_PER_CALLBACK: usize = 8;
/// `tl_log` lines kept per second of engine time (more are dropped and counted).
pub const LOGS_PER_SECOND: u32 = 10;

/// What a store holds besides the instance: limits, the callback's context, the instance's
/// open orders and its state buffers. Carried over from a stopped instance to its replacement.
pub struct HostState {
    limits: StoreLimits,
    /// Address of the running callback's `Ctx` (0 outside a callback).
    ctx: usize,
    now_ns: u64,
    orders_this_call: u32,
    order_cap: u32,
    /// Open orders the instance owns.
    owned: crate::idset::IdSet,
    /// Timers asked for in this callback, set when it completes.
    timers: [(u64, u64); TIMERS_PER_CALLBACK],
    timers_len: usize,
    /// `tl_save_state` of this callback (kept as the last good state when it completes).
    pending_state: Box<[u8]>,
    pending_len: Option<usize>,
    /// The last `tl_log` line.
    pub(crate) log: Box<[u8]>,
    pub(crate) log_len: usize,
    log_window_start: u64,
    log_window_count: u32,
    /// The last refusal, in words.
    pub(crate) last_refusal: Option<&'static str>,
    pub(crate) stats: Arc<WasmStats>,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("order_cap", &self.order_cap)
            .field("last_refusal", &self.last_refusal)
            .finish_non_exhaustive()
    }
}

impl HostState {
    /// Fresh state for a deployment (every buffer allocated now).
    pub(crate) fn new(cfg: &crate::DeployConfig, stats: Arc<WasmStats>) -> HostState {
        HostState {
            limits: limits(cfg),
            ctx: 0,
            now_ns: 0,
            orders_this_call: 0,
            order_cap: cfg.orders_per_callback,
            owned: crate::idset::IdSet::new(),
            timers: [(0, 0); TIMERS_PER_CALLBACK],
            timers_len: 0,
            pending_state: vec![0; abi::STATE_MAX].into_boxed_slice(),
            pending_len: None,
            log: vec![0; abi::LOG_MAX].into_boxed_slice(),
            log_len: 0,
            log_window_start: 0,
            log_window_count: 0,
            last_refusal: None,
            stats,
        }
    }

    /// Counts and remembers a refusal; returns its code.
    #[cold]
    fn refuse(&mut self, code: i32, why: &'static str) -> i32 {
        let i = (-code - 1) as usize;
        if let Some(c) = self.stats.refusals.get(i) {
            WasmStats::bump(c);
        }
        self.last_refusal = Some(why);
        code
    }

    /// True if the instance owns open order `id`.
    pub(crate) fn owns(&self, id: u64) -> bool {
        self.owned.contains(id)
    }

    /// Forgets order `id` (done, or never sent).
    pub(crate) fn forget(&mut self, id: u64) {
        self.owned.remove(id);
    }

    /// Takes the state saved by the callback that just completed.
    pub(crate) fn take_pending_state(&mut self) -> Option<&[u8]> {
        let n = self.pending_len.take()?;
        self.pending_state.get(..n)
    }

    /// The last `tl_log` line.
    pub(crate) fn last_log(&self) -> Option<String> {
        (self.log_len > 0).then(|| String::from_utf8_lossy(&self.log[..self.log_len]).into_owned())
    }
}

fn limits(cfg: &crate::DeployConfig) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(cfg.memory_bytes)
        .table_elements(cfg.table_elements)
        .instances(1)
        .tables(4)
        .memories(1)
        .trap_on_grow_failure(true)
        .build()
}

/// Runs `f` with the callback's context; `None` outside a callback (a host call from the
/// module's start function or `tl_init`).
#[inline]
fn with_ctx<R>(st: &mut HostState, f: impl FnOnce(&mut HostState, &mut Ctx<'_>) -> R) -> Option<R> {
    if st.ctx == 0 {
        return None;
    }
    // SAFETY: `ctx` is the address of the `Ctx` the core lent to the callback now running: set by
    // `Guest::call` from a live `&mut Ctx` just before it enters the guest and cleared right after
    // the guest returns (or traps), on this same thread. Host calls only run inside that window,
    // while `Guest::call` does not touch its `&mut Ctx`, so this is the only reference in use.
    // The lifetime is erased only for the duration of `f`; nothing borrowed from it escapes.
    let ctx = unsafe { &mut *(st.ctx as *mut Ctx<'static>) };
    Some(f(st, ctx))
}

fn side_of(s: i32) -> Option<Side> {
    match s {
        abi::SIDE_BUY => Some(Side::Buy),
        abi::SIDE_SELL => Some(Side::Sell),
        _ => None,
    }
}

fn type_of(t: i32) -> Option<OrderType> {
    match t {
        abi::GTC => Some(OrderType::LimitGtc),
        abi::IOC => Some(OrderType::LimitIoc),
        abi::FOK => Some(OrderType::LimitFok),
        abi::MARKET => Some(OrderType::Market),
        _ => None,
    }
}

fn submit(st: &mut HostState, side: i32, ty: i32, price: i64, qty: i64) -> i64 {
    let Some(side) = side_of(side) else {
        return st.refuse(
            err::SIDE,
            "tl_submit: side is not TL_SIDE_BUY or TL_SIDE_SELL",
        ) as i64;
    };
    let Some(order_type) = type_of(ty) else {
        return st.refuse(err::TYPE, "tl_submit: order type is not TL_GTC..TL_MARKET") as i64;
    };
    if qty <= 0 || qty > abi::MAX_QTY {
        return st.refuse(err::QTY, "tl_submit: quantity zero, negative or absurd") as i64;
    }
    // A market order's price is ignored (0 or any sane value); a limit needs a positive one.
    let lowest = i64::from(order_type != OrderType::Market);
    let bad_price = !(lowest..=abi::MAX_PRICE).contains(&price);
    if bad_price {
        return st.refuse(err::PRICE, "tl_submit: price zero, negative or absurd") as i64;
    }
    if st.orders_this_call >= st.order_cap {
        return st.refuse(
            err::ORDER_CAP,
            "tl_submit: over the orders-per-callback cap",
        ) as i64;
    }
    if st.owned.len() >= MAX_OPEN_ORDERS {
        return st.refuse(err::FULL, "tl_submit: too many open orders") as i64;
    }
    let req = OrderRequest {
        side,
        price: Price(price),
        qty: Qty(qty),
        order_type,
    };
    let r = with_ctx(st, |_, ctx| ctx.submit(req));
    match r {
        Some(Ok(id)) => {
            st.orders_this_call += 1;
            st.owned.insert(id.0);
            WasmStats::bump(&st.stats.orders);
            id.0 as i64
        }
        Some(Err(CtxError::InvalidOrder)) => st.refuse(
            err::QTY,
            "tl_submit: the engine refused the order as invalid",
        ) as i64,
        Some(Err(_)) => st.refuse(err::FULL, "tl_submit: the engine's order buffer is full") as i64,
        None => st.refuse(err::HALTED, "tl_submit: no orders outside tl_on_event") as i64,
    }
}

fn cancel(st: &mut HostState, id: i64) -> i32 {
    if id <= 0 || !st.owns(id as u64) {
        return st.refuse(
            err::UNKNOWN_ORDER,
            "tl_cancel: not an open order of this instance",
        );
    }
    match with_ctx(st, |_, ctx| ctx.cancel(ClientOrderId(id as u64))) {
        Some(Ok(())) => 0,
        Some(Err(_)) => st.refuse(err::FULL, "tl_cancel: the engine's order buffer is full"),
        None => st.refuse(err::HALTED, "tl_cancel: no cancels outside tl_on_event"),
    }
}

fn cancel_all(st: &mut HostState) -> i32 {
    match with_ctx(st, |_, ctx| ctx.cancel_all()) {
        Some(Ok(())) => 0,
        Some(Err(_)) => st.refuse(
            err::FULL,
            "tl_cancel_all: the engine's order buffer is full",
        ),
        None => st.refuse(err::HALTED, "tl_cancel_all: no cancels outside tl_on_event"),
    }
}

fn set_timer(st: &mut HostState, at_ns: i64, token: i64) -> i32 {
    if st.ctx == 0 {
        return st.refuse(err::HALTED, "tl_set_timer: no timers outside tl_on_event");
    }
    if at_ns < 0 || (at_ns as u64) < st.now_ns {
        return st.refuse(err::TIMER, "tl_set_timer: time in the past");
    }
    if st.timers_len >= TIMERS_PER_CALLBACK {
        return st.refuse(err::TIMER, "tl_set_timer: too many timers in one callback");
    }
    st.timers[st.timers_len] = (at_ns as u64, token as u64);
    st.timers_len += 1;
    0
}

/// `ptr..ptr+len` within `mem` and `len <= max`, as a range.
fn span(mem_len: usize, ptr: i32, len: i32, max: usize) -> Option<std::ops::Range<usize>> {
    let (p, l) = (usize::try_from(ptr).ok()?, usize::try_from(len).ok()?);
    let end = p.checked_add(l)?;
    (l <= max && end <= mem_len).then_some(p..end)
}

fn save_state(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> i32 {
    let Some(mem) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return caller
            .data_mut()
            .refuse(err::BOUNDS, "tl_save_state: no memory");
    };
    let (data, st) = mem.data_and_store_mut(&mut caller);
    let Some(r) = span(data.len(), ptr, len, abi::STATE_MAX) else {
        return st.refuse(
            err::BOUNDS,
            "tl_save_state: pointer/length outside memory or over TL_STATE_MAX",
        );
    };
    let n = r.len();
    st.pending_state[..n].copy_from_slice(&data[r]);
    st.pending_len = Some(n);
    0
}

fn log(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) {
    let Some(mem) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return;
    };
    let (data, st) = mem.data_and_store_mut(&mut caller);
    let Some(r) = span(data.len(), ptr, len, abi::LOG_MAX) else {
        st.refuse(
            err::BOUNDS,
            "tl_log: pointer/length outside memory or over 256 bytes",
        );
        return;
    };
    if st.now_ns.saturating_sub(st.log_window_start) >= 1_000_000_000 {
        st.log_window_start = st.now_ns;
        st.log_window_count = 0;
    }
    if st.log_window_count >= LOGS_PER_SECOND {
        WasmStats::bump(&st.stats.logs_dropped);
        return;
    }
    st.log_window_count += 1;
    let n = r.len();
    st.log[..n].copy_from_slice(&data[r]);
    st.log_len = n;
    WasmStats::bump(&st.stats.logs);
}

/// Adds the `tickline` host calls to `linker`.
pub(crate) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let m = "tickline";
    linker.func_wrap(
        m,
        "tl_submit",
        |mut c: Caller<'_, HostState>, side: i32, ty: i32, price: i64, qty: i64| {
            submit(c.data_mut(), side, ty, price, qty)
        },
    )?;
    linker.func_wrap(m, "tl_cancel", |mut c: Caller<'_, HostState>, id: i64| {
        cancel(c.data_mut(), id)
    })?;
    linker.func_wrap(m, "tl_cancel_all", |mut c: Caller<'_, HostState>| {
        cancel_all(c.data_mut())
    })?;
    linker.func_wrap(
        m,
        "tl_set_timer",
        |mut c: Caller<'_, HostState>, at: i64, token: i64| set_timer(c.data_mut(), at, token),
    )?;
    linker.func_wrap(m, "tl_save_state", save_state)?;
    linker.func_wrap(m, "tl_log", log)?;
    Ok(())
}

/// Why a call into the guest failed: the kind and the trap's words.
pub(crate) type Stop = (StopKind, String);

fn classify(e: wasmtime::Error) -> Stop {
    let kind = match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => StopKind::Fuel,
        Some(Trap::UnreachableCodeReached) => StopKind::Unreachable,
        Some(Trap::IntegerDivisionByZero | Trap::IntegerOverflow) => StopKind::DivByZero,
        Some(Trap::MemoryOutOfBounds | Trap::TableOutOfBounds | Trap::HeapMisaligned) => {
            StopKind::OutOfBounds
        }
        Some(Trap::StackOverflow) => StopKind::Stack,
        Some(_) => StopKind::OtherTrap,
        None => {
            let text = format!("{e:#}");
            if text.contains("forcing") && text.contains("grow") {
                StopKind::Memory
            } else {
                StopKind::OtherTrap
            }
        }
    };
    (kind, format!("{e:#}"))
}

/// A started instance.
pub(crate) struct Guest {
    pub(crate) store: Store<HostState>,
    memory: Memory,
    on_event: TypedFunc<(), i32>,
    /// Offset of the instance's `tl_buffer()`.
    buf: usize,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("buf", &self.buf)
            .finish_non_exhaustive()
    }
}

impl Guest {
    /// Instantiates `module` with `state`, checks its ABI version and buffer, calls `tl_init`
    /// with `params`, then `tl_restore` with `saved` if given and exported. Fuel for all of it:
    /// `init_fuel`. On failure the state comes back with the reason.
    pub(crate) fn start(
        module: &crate::WasmModule,
        state: HostState,
        params: &[u8],
        saved: Option<&[u8]>,
        init_fuel: u64,
    ) -> Result<Guest, Box<(HostState, Stop)>> {
        let engine = module.inner.pre.module().engine();
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        match Self::boot(module, &mut store, params, saved, init_fuel) {
            Ok((memory, on_event, buf)) => {
                let bytes = memory.data_size(&store) as u64;
                store.data().stats.memory_bytes.store(bytes, Relaxed);
                Ok(Guest {
                    store,
                    memory,
                    on_event,
                    buf,
                })
            }
            Err(e) => Err(Box::new((store.into_data(), e))),
        }
    }

    fn boot(
        module: &crate::WasmModule,
        store: &mut Store<HostState>,
        params: &[u8],
        saved: Option<&[u8]>,
        init_fuel: u64,
    ) -> Result<(Memory, TypedFunc<(), i32>, usize), Stop> {
        let bad = |why: String| (StopKind::BadReturn, why);
        store.set_fuel(init_fuel).map_err(classify)?;
        let inst = module
            .inner
            .pre
            .instantiate(&mut *store)
            .map_err(classify)?;
        let memory = inst
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| bad("missing export `memory`".into()))?;
        let f = |store: &mut Store<HostState>, n: &str| {
            inst.get_typed_func::<(), i32>(&mut *store, n)
                .map_err(classify)
        };
        let version = f(store, "tl_abi_version")?
            .call(&mut *store, ())
            .map_err(classify)?;
        if version != abi::ABI_VERSION {
            return Err(bad(format!(
                "ABI version mismatch: the module speaks version {version}, this host version {}",
                abi::ABI_VERSION
            )));
        }
        let buf = f(store, "tl_buffer")?
            .call(&mut *store, ())
            .map_err(classify)?;
        let mem_len = memory.data_size(&*store);
        let Some(range) = span(mem_len, buf, abi::BUFFER_SIZE as i32, abi::BUFFER_SIZE) else {
            return Err(bad(format!(
                "tl_buffer() = {buf}: {} bytes there do not fit in its {mem_len}-byte memory",
                abi::BUFFER_SIZE
            )));
        };
        if range.start % 8 != 0 {
            return Err(bad(format!("tl_buffer() = {buf} is not 8-aligned")));
        }
        memory.data_mut(&mut *store)[range.start..range.start + params.len()]
            .copy_from_slice(params);
        let init = inst
            .get_typed_func::<i32, i32>(&mut *store, "tl_init")
            .map_err(classify)?;
        let r = init
            .call(&mut *store, params.len() as i32)
            .map_err(classify)?;
        if r != 0 {
            return Err(bad(format!("tl_init returned {r}")));
        }
        if let (Some(saved), true) = (saved, module.has_restore()) {
            let area = inst
                .get_typed_func::<i32, i32>(&mut *store, "tl_restore_area")
                .map_err(classify)?;
            let restore = inst
                .get_typed_func::<i32, i32>(&mut *store, "tl_restore")
                .map_err(classify)?;
            let len = saved.len() as i32;
            let ptr = area.call(&mut *store, len).map_err(classify)?;
            if ptr != 0 {
                let mem_len = memory.data_size(&*store);
                let Some(r) = span(mem_len, ptr, len, abi::STATE_MAX) else {
                    return Err(bad(format!(
                        "tl_restore_area({len}) = {ptr}: outside its {mem_len}-byte memory"
                    )));
                };
                memory.data_mut(&mut *store)[r].copy_from_slice(saved);
                let r = restore.call(&mut *store, len).map_err(classify)?;
                if r != 0 {
                    return Err(bad(format!("tl_restore returned {r}")));
                }
            }
        }
        // Whatever the start-up saved is the first good state.
        let on_event = f(store, "tl_on_event")?;
        Ok((memory, on_event, range.start))
    }

    /// The event area at `tl_buffer()` (checked to fit at start; memory never shrinks).
    #[inline]
    pub(crate) fn event_area(&mut self) -> &mut [u8] {
        let buf = self.buf;
        let data = self.memory.data_mut(&mut self.store);
        data.get_mut(buf..buf + abi::EVENT_BYTES)
            .unwrap_or_default()
    }

    /// One `tl_on_event` with `fuel`, the host calls reaching `ctx`. Timers the callback asked
    /// for are set only if it completes; orders it placed are the caller's to keep or discard.
    #[inline]
    pub(crate) fn call(&mut self, ctx: &mut Ctx<'_>, fuel: u64) -> (u64, Result<(), Stop>) {
        {
            let st = self.store.data_mut();
            st.ctx = ctx as *mut Ctx<'_> as usize;
            st.now_ns = ctx.now_ns();
            st.orders_this_call = 0;
            st.timers_len = 0;
            st.pending_len = None;
        }
        let _ = self.store.set_fuel(fuel);
        let r = self.on_event.call(&mut self.store, ());
        let left = self.store.get_fuel().unwrap_or(0);
        self.store.data_mut().ctx = 0;
        let used = fuel.saturating_sub(left);
        let r = match r {
            Ok(0) => {
                let st = self.store.data_mut();
                for i in 0..st.timers_len {
                    let (at, token) = st.timers[i];
                    if ctx.set_timer(at, token).is_err() {
                        st.refuse(err::TIMER, "tl_set_timer: the engine's timer queue is full");
                    }
                }
                Ok(())
            }
            Ok(n) => Err((StopKind::BadReturn, format!("tl_on_event returned {n}"))),
            Err(e) => Err(classify(e)),
        };
        (used, r)
    }

    /// Forgets the orders placed since intent `mark` (their callback failed: never sent).
    pub(crate) fn forget_since(&mut self, ctx: &Ctx<'_>, mark: usize) {
        let st = self.store.data_mut();
        for i in ctx.intents_since(mark) {
            if let Intent::New(id, _) = i {
                st.forget(id.0);
            }
        }
        st.pending_len = None;
    }

    /// Linear memory now, bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }
}
