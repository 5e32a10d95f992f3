// sma_cross.ts: the native sma_cross (strategies/src/sma_cross.rs) as a wasm strategy in
// AssemblyScript. Same parameters, defaults and decisions, so a replay gives the same orders,
// fills and PnL (tests/wasm_equivalence.rs checks it on the real capture).
//
// Parameters: fast (trades, default 20, 1..=99999), slow (default 100, 2..=100000, > fast),
// qty (long position size, default 0.001).
//
// The last `slow` trade prices sit in a ring allocated at tl_init; the sums of the last `fast`
// and `slow` prices are running 128-bit totals and the averages are compared without dividing
// (fast_sum*slow against slow_sum*fast). Signals start once the slow window is full; the first
// non-zero difference only sets the regime, then a change of sign is a cross (a tie keeps the
// regime). Above: target qty long; below: flat. One IOC at a time towards the target, a buy at
// the best ask or a sell at the best bid (the trade's price when the context has none), rounded
// down to the tick; under one lot apart counts as reached; under the minimum notional drops the
// target until the next cross; an expired IOC is retried on the next trade.
//
// State for restarts: the state block (with the ring behind it when both fit TL_STATE_MAX) is
// saved after every callback that changed position, target or order, and every SAVE_EVERY
// trades otherwise; restored without the ring, the windows refill from the next trades.

import {
  EV_ORDER, EV_TRADE, IOC, OFF_ASK_PX, OFF_BID_PX, OFF_KIND, OFF_LOT_SIZE, OFF_MIN_NOTIONAL,
  OFF_TICK_SIZE, ORD_CLIENT_ID, ORD_FILLED, ORD_FILL_QTY, ORD_FINAL, ORD_KIND, ORD_SIDE,
  SIDE_BUY, SIDE_SELL, TL_STATE_MAX, TRADE_PRICE, I64_MAX, I64_MIN, floorTo, i128Add,
  i128MulCmp, i128Sub, logStr, msgFixed, msgI64, msgReset, msgSend, msgStr, notionalAtLeast,
  paramFixed, paramI64, paramU64, paramU64In, paramsFinish, paramsParse, readI64, readU32,
  readU64, tl_save_state, tl_submit,
} from "../../sdk/assemblyscript/tickline";

export { tl_abi_version, tl_buffer } from "../../sdk/assemblyscript/tickline";

const MAX_WINDOW: u64 = 100_000;
const SAVE_EVERY: u32 = 64;
const STATE_MAGIC: u32 = 0x31414d53; // "SMA1"

const FAST_ABOVE: i64 = 1;
const FAST_BELOW: i64 = -1;

/** Everything the strategy knows, in linear memory; the ring of `slow` prices follows it. */
@unmanaged
class SmaState {
  magic: u32;
  ringSaved: u32; // in a saved copy: slow when the ring follows, 0 when it did not fit
  fast: u64;
  slow: u64;
  qty: i64;
  head: u64;
  count: u64;
  fastSumLo: u64;
  fastSumHi: i64;
  slowSumLo: u64;
  slowSumHi: i64;
  regime: i64;
  target: i64; // wanted position, 0 or qty
  held: i64; // position from this strategy's own fills
  inFlight: i64; // client id of the order in flight, 0 for none
  crossesAbove: u64;
  crossesBelow: u64;
  orders: u64;
  skipped: u64;
  submitFailed: u64;
}

const STATE_SIZE: u32 = <u32>offsetof<SmaState>();
const FAST_SUM: usize = offsetof<SmaState>("fastSumLo");
const SLOW_SUM: usize = offsetof<SmaState>("slowSumLo");

let st: SmaState = changetype<SmaState>(0);
let ring: usize = 0;
let dirty = false;
let sinceSave: u32 = 0;
const RESTORE_AREA: usize = memory.data(TL_STATE_MAX, 8);

function stPtr(): usize {
  return changetype<usize>(st);
}

function save(): void {
  let len = STATE_SIZE + <u32>st.slow * 8;
  if (len <= <u32>TL_STATE_MAX) {
    st.ringSaved = <u32>st.slow;
  } else {
    st.ringSaved = 0;
    len = STATE_SIZE;
  }
  tl_save_state(<i32>stPtr(), <i32>len);
  dirty = false;
  sinceSave = 0;
}

export function tl_init(paramsLen: i32): i32 {
  if (!paramsParse(paramsLen)) return 1;
  if (!paramU64In("fast", 20, 1, MAX_WINDOW - 1)) return 1;
  const fast = paramU64;
  if (!paramU64In("slow", 100, 2, MAX_WINDOW)) return 1;
  const slow = paramU64;
  if (fast >= slow) {
    msgReset();
    msgStr("fast: must be less than slow (");
    msgI64(<i64>slow);
    msgStr(") (got ");
    msgI64(<i64>fast);
    msgStr(")");
    msgSend();
    return 1;
  }
  if (!paramFixed("qty", 100_000)) return 1;
  const qty = paramI64;
  if (qty <= 0) {
    msgReset();
    msgStr("qty: must be positive (got ");
    msgFixed(qty);
    msgStr(")");
    msgSend();
    return 1;
  }
  if (!paramsFinish()) return 1;
  heap.reset(); // a restart re-runs tl_init: give back what the last run took
  const size = <usize>STATE_SIZE + <usize>slow * 8;
  const p = heap.alloc(size);
  memory.fill(p, 0, size);
  st = changetype<SmaState>(p);
  ring = p + <usize>STATE_SIZE;
  st.magic = STATE_MAGIC;
  st.fast = fast;
  st.slow = slow;
  st.qty = qty;
  dirty = false;
  sinceSave = 0;
  return 0;
}

const NO_CROSS: i32 = 0;
const CROSS_ABOVE: i32 = 1;
const CROSS_BELOW: i32 = 2;

/** Adds one price to the windows; returns the cross it caused. */
function pushPrice(price: i64): i32 {
  const fast = st.fast, slow = st.slow;
  if (st.count >= fast) {
    i128Sub(stPtr() + FAST_SUM, load<i64>(ring + <usize>((st.head + slow - fast) % slow) * 8));
  }
  if (st.count >= slow) {
    i128Sub(stPtr() + SLOW_SUM, load<i64>(ring + <usize>st.head * 8));
  } else {
    st.count++;
  }
  store<i64>(ring + <usize>st.head * 8, price);
  st.head = st.head + 1 == slow ? 0 : st.head + 1;
  i128Add(stPtr() + FAST_SUM, price);
  i128Add(stPtr() + SLOW_SUM, price);
  if (st.count < slow) return NO_CROSS;
  const c = <i64>i128MulCmp(stPtr() + FAST_SUM, slow, stPtr() + SLOW_SUM, fast);
  if (c == 0) return NO_CROSS;
  const before = st.regime;
  st.regime = c;
  if (before == FAST_BELOW && c == FAST_ABOVE) return CROSS_ABOVE;
  if (before == FAST_ABOVE && c == FAST_BELOW) return CROSS_BELOW;
  return NO_CROSS;
}

/** Sends the next order towards the target, if none is in flight. */
function reconcile(tradePrice: i64): void {
  if (st.inFlight != 0 || st.held == st.target) return;
  const buy = st.target > st.held;
  const want = buy ? st.target - st.held : st.held - st.target;
  const qty = floorTo(want, readI64(OFF_LOT_SIZE));
  if (qty <= 0) return; // less than a lot apart: as close as the venue allows
  const best = readI64(buy ? OFF_ASK_PX : OFF_BID_PX);
  const price = floorTo(best > 0 ? best : tradePrice, readI64(OFF_TICK_SIZE));
  if (price <= 0 || !notionalAtLeast(price, qty, readI64(OFF_MIN_NOTIONAL))) {
    st.skipped++;
    st.target = st.held;
    dirty = true;
    return;
  }
  const id = tl_submit(buy ? SIDE_BUY : SIDE_SELL, IOC, price, qty);
  if (id > 0) {
    st.inFlight = id;
    st.orders++;
    dirty = true;
  } else {
    st.submitFailed++;
  }
}

function onOrder(): void {
  if (st.inFlight == 0 || readU64(ORD_CLIENT_ID) != <u64>st.inFlight) return;
  if (readU32(ORD_KIND) == ORD_FILLED) {
    const qty = readI64(ORD_FILL_QTY);
    // saturating qty * side sign, then a saturating add, as native
    const signed: i64 = readU32(ORD_SIDE) == <u32>SIDE_BUY ? qty : qty == I64_MIN ? I64_MAX : -qty;
    const sum = st.held + signed;
    const overflow = ((st.held ^ sum) & (signed ^ sum)) < 0;
    st.held = overflow ? (signed < 0 ? I64_MIN : I64_MAX) : sum;
    dirty = true;
  }
  if (readU32(ORD_FINAL) != 0) {
    st.inFlight = 0;
    dirty = true;
  }
}

export function tl_on_event(): i32 {
  const kind = readU32(OFF_KIND);
  if (kind == EV_TRADE) {
    const price = readI64(TRADE_PRICE);
    const cross = pushPrice(price);
    if (cross == CROSS_ABOVE) {
      st.crossesAbove++;
      st.target = st.qty;
      dirty = true;
    } else if (cross == CROSS_BELOW) {
      st.crossesBelow++;
      st.target = 0;
      dirty = true;
    }
    reconcile(price);
    sinceSave++;
  } else if (kind == EV_ORDER) {
    onOrder();
  } else {
    return 0;
  }
  if (dirty || sinceSave >= SAVE_EVERY) save();
  return 0;
}

export function tl_restore_area(len: i32): i32 {
  return len >= 0 && len <= TL_STATE_MAX ? <i32>RESTORE_AREA : 0;
}

export function tl_restore(len: i32): i32 {
  const s = changetype<SmaState>(RESTORE_AREA);
  if (
    len < <i32>STATE_SIZE || len > TL_STATE_MAX || s.magic != STATE_MAGIC ||
    s.fast != st.fast || s.slow != st.slow || s.regime < -1 || s.regime > 1 ||
    s.head >= s.slow || s.count > s.slow
  ) {
    logStr("sma_cross: saved state does not match these parameters; starting fresh");
    return 1;
  }
  const withRing = <u64>s.ringSaved == s.slow && <u64>len == <u64>STATE_SIZE + s.slow * 8;
  if (!withRing && (s.ringSaved != 0 || len != <i32>STATE_SIZE)) {
    logStr("sma_cross: saved state has the wrong length; starting fresh");
    return 1;
  }
  const qty = st.qty; // the parameters given now
  memory.copy(stPtr(), RESTORE_AREA, withRing ? <usize>len : <usize>STATE_SIZE);
  st.qty = qty;
  if (!withRing) {
    // The windows refill from the next trades; position, order and regime carry on.
    st.head = 0;
    st.count = 0;
    st.fastSumLo = 0;
    st.fastSumHi = 0;
    st.slowSumLo = 0;
    st.slowSumHi = 0;
  }
  return 0;
}
