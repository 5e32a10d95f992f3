// tickline.ts: the AssemblyScript SDK for Tickline wasm strategies, ABI version 1
// (strategies/wasm/include/tickline.h is the reference; every constant here has the same name
// without the TL_ prefix folded away, and the same value).
//
// Build a strategy with the compiler version pinned in package.json beside this file:
//   asc your_strategy.ts --runtime stub --use abort=<path>/tickline/tlAbort -O3 -o out.wasm
// (strategies/wasm/build.sh does it and checks the module imports nothing but "tickline").
// `--use abort=...tlAbort` replaces AssemblyScript's `env.abort` import by a trap: the host
// refuses any import outside "tickline". Use `--runtime stub` (a bump allocator that never
// frees; `heap.reset()` in tl_init gives everything back on a restart). Don't use Math.random
// (it imports `env.seed`) or `trace`.
//
// Your entry file re-exports tl_abi_version and tl_buffer from here and adds tl_init and
// tl_on_event (and tl_restore_area / tl_restore to restart from a saved state):
//   export { tl_abi_version, tl_buffer } from "<path>/tickline";
//
// What it gives you: the ABI constants and host calls; readers for the context block and the
// event record (readI64(OFF_ASK_PX)); exact fixed-point helpers (floorTo, notionalAtLeast
// without 128-bit integers, offsetBps, a 128-bit accumulator in linear memory); the
// "key=value\n" parameters parsed exactly like the engine's Params; log lines without strings
// that allocate.

// ---- the ABI ---------------------------------------------------------------------------------

export const TL_ABI_VERSION: i32 = 1;
export const TL_BUFFER_SIZE: i32 = 4096;
export const TL_STATE_MAX: i32 = 4096;

// Event kinds (the u32 at OFF_KIND).
export const EV_TRADE: u32 = 1;
export const EV_AGG_TRADE: u32 = 2;
export const EV_BOOK_TICKER: u32 = 3;
export const EV_BOOK: u32 = 4;
export const EV_ORDER: u32 = 5;
export const EV_TIMER: u32 = 6;
export const EV_CONNECTION: u32 = 7;

// Context block, written before every tl_on_event (offsets from tl_buffer()).
export const OFF_KIND: u32 = 0; // u32
export const OFF_SYMBOL: u32 = 4; // u32
export const OFF_NOW_NS: u32 = 8; // u64
export const OFF_MARKET_NS: u32 = 16; // u64
export const OFF_POSITION: u32 = 24; // i64
export const OFF_BID_PX: u32 = 32; // i64: bookTicker's, else the synced book's, else 0
export const OFF_BID_QTY: u32 = 40; // i64
export const OFF_ASK_PX: u32 = 48; // i64: same rule
export const OFF_ASK_QTY: u32 = 56; // i64
export const OFF_TICK_SIZE: u32 = 64; // i64 (0: none)
export const OFF_LOT_SIZE: u32 = 72; // i64 (0: none)
export const OFF_MIN_NOTIONAL: u32 = 80; // i64
export const OFF_LAST_PX: u32 = 88; // i64 (0: no trade yet)
export const OFF_FLAGS: u32 = 96; // u32
export const FLAG_BBO: u32 = 1;
export const FLAG_BOOK_SYNCED: u32 = 2;
export const OFF_RECORD: u32 = 128;

// EV_TRADE
export const TRADE_PRICE: u32 = 128; // i64
export const TRADE_QTY: u32 = 136; // i64
export const TRADE_ID: u32 = 144; // u64
export const TRADE_BUYER_MAKER: u32 = 152; // u32

// EV_AGG_TRADE
export const AGG_PRICE: u32 = 128;
export const AGG_QTY: u32 = 136;
export const AGG_ID: u32 = 144;
export const AGG_BUYER_MAKER: u32 = 152;
export const AGG_TRADE_COUNT: u32 = 156;

// EV_BOOK_TICKER and EV_BOOK
export const TOP_BID_PX: u32 = 128;
export const TOP_BID_QTY: u32 = 136;
export const TOP_ASK_PX: u32 = 144;
export const TOP_ASK_QTY: u32 = 152;
export const TOP_UPDATE_ID: u32 = 160;

// EV_ORDER
export const ORD_CLIENT_ID: u32 = 128; // u64
export const ORD_KIND: u32 = 136; // u32 ORD_*
export const ORD_SIDE: u32 = 140; // u32 SIDE_*
export const ORD_PRICE: u32 = 144; // i64
export const ORD_LEAVES: u32 = 152; // i64
export const ORD_CUM_QTY: u32 = 160; // i64 cumulative filled quantity
export const ORD_FILL_PX: u32 = 168; // i64
export const ORD_FILL_QTY: u32 = 176; // i64
export const ORD_FEE: u32 = 184; // i64
export const ORD_REJECT: u32 = 192; // u32 REJ_*
export const ORD_FINAL: u32 = 196; // u32 1 when done

export const ORD_ACCEPTED: u32 = 1;
export const ORD_REJECTED: u32 = 2;
export const ORD_FILLED: u32 = 3;
export const ORD_CANCELED: u32 = 4;
export const ORD_TIMED_OUT: u32 = 5;

// EV_TIMER, EV_CONNECTION
export const TIMER_TOKEN: u32 = 128; // u64
export const CONN_UP: u32 = 128; // u32

// tl_submit arguments
export const SIDE_BUY: i32 = 0;
export const SIDE_SELL: i32 = 1;
export const GTC: i32 = 0;
export const IOC: i32 = 1;
export const FOK: i32 = 2;
export const MARKET: i32 = 3;

// Host refusals (negative returns).
export const ERR_SIDE: i32 = -1;
export const ERR_TYPE: i32 = -2;
export const ERR_QTY: i32 = -3;
export const ERR_PRICE: i32 = -4;
export const ERR_ORDER_CAP: i32 = -5;
export const ERR_FULL: i32 = -6;
export const ERR_UNKNOWN_ORDER: i32 = -7;
export const ERR_BOUNDS: i32 = -8;
export const ERR_HALTED: i32 = -9;
export const ERR_TIMER: i32 = -10;

// Host calls.
// @ts-ignore: decorator
@external("tickline", "tl_submit")
export declare function tl_submit(side: i32, orderType: i32, price: i64, qty: i64): i64;
// @ts-ignore: decorator
@external("tickline", "tl_cancel")
export declare function tl_cancel(clientId: i64): i32;
// @ts-ignore: decorator
@external("tickline", "tl_cancel_all")
export declare function tl_cancel_all(): i32;
// @ts-ignore: decorator
@external("tickline", "tl_set_timer")
export declare function tl_set_timer(atNs: i64, token: i64): i32;
// @ts-ignore: decorator
@external("tickline", "tl_save_state")
export declare function tl_save_state(ptr: i32, len: i32): i32;
// @ts-ignore: decorator
@external("tickline", "tl_log")
export declare function tl_log(ptr: i32, len: i32): void;

// The area the host writes parameters and events into (8-aligned, fixed for the instance's life).
export const BUF: usize = memory.data(TL_BUFFER_SIZE, 8);

export function tl_abi_version(): i32 {
  return TL_ABI_VERSION;
}

export function tl_buffer(): i32 {
  return <i32>BUF;
}

/** AssemblyScript's abort (failed assertion, bounds check), routed here by `--use abort=`: a
 *  trap, which the host counts and restarts the instance from its last saved state. */
export function tlAbort(message: string | null, file: string | null, line: u32, column: u32): void {
  unreachable();
}

// ---- reading records ---------------------------------------------------------------------------

// @ts-ignore: decorator
@inline export function readI64(off: u32): i64 {
  return load<i64>(BUF + off);
}
// @ts-ignore: decorator
@inline export function readU64(off: u32): u64 {
  return load<u64>(BUF + off);
}
// @ts-ignore: decorator
@inline export function readU32(off: u32): u32 {
  return load<u32>(BUF + off);
}

// ---- fixed point -------------------------------------------------------------------------------

export const SCALE: i64 = 100_000_000; // 1e8 units per whole
export const I64_MIN: i64 = i64.MIN_VALUE;
export const I64_MAX: i64 = i64.MAX_VALUE;

/** a rounded down to a multiple of step (Rust's div_euclid * step); a unchanged if step <= 0. */
export function floorTo(a: i64, step: i64): i64 {
  if (step <= 0) return a;
  let q = a / step;
  if (a % step < 0) q -= 1;
  return q * step;
}

// The full product of two u64, in two globals (AssemblyScript has no 128-bit integer).
export let wideHi: u64 = 0;
export let wideLo: u64 = 0;

export function mulU64(a: u64, b: u64): void {
  const m: u64 = 0xffffffff;
  const a0 = a & m, a1 = a >> 32, b0 = b & m, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & m) + (p10 & m);
  wideLo = (p00 & m) | (mid << 32);
  wideHi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/** Whether qty at price reaches the venue minimum: the engine's
 *  Notional::of(price, qty) >= min_notional, exact. price and qty must be positive. */
export function notionalAtLeast(price: i64, qty: i64, minNotional: i64): bool {
  if (minNotional <= 0) return true;
  // floor(p*q / 1e8) >= m  <=>  p*q >= m*1e8 for whole m > 0.
  mulU64(<u64>price, <u64>qty);
  const hi = wideHi, lo = wideLo;
  mulU64(<u64>minNotional, <u64>SCALE);
  return hi > wideHi || (hi == wideHi && lo >= wideLo);
}

/** price * (10000 + bps) / 10000 truncated toward zero and clamped, then rounded down to tick:
 *  the engine's Price::offset_bps. bps in -10000..=10000. */
export function offsetBps(price: i64, bps: i64, tick: i64): i64 {
  const m = <u64>(10000 + bps);
  const mag: u64 = price < 0 ? <u64>0 - <u64>price : <u64>price;
  const a = mag / 10000, b = mag % 10000;
  const r: u64 =
    m != 0 && a > <u64>I64_MAX / m ? <u64>I64_MAX + 1 : a * m + (b * m) / 10000;
  let scaled: i64;
  if (price >= 0) {
    scaled = r > <u64>I64_MAX ? I64_MAX : <i64>r;
  } else {
    scaled = r >= <u64>I64_MAX + 1 ? I64_MIN : -<i64>r;
  }
  return floorTo(scaled, tick);
}

// A signed 128-bit integer in linear memory at ptr: lo (u64) at ptr, hi (i64) at ptr + 8.

export function i128Add(ptr: usize, x: i64): void {
  const lo = load<u64>(ptr);
  const nlo = lo + <u64>x;
  store<u64>(ptr + 8, load<u64>(ptr + 8) + (x < 0 ? <u64>-1 : 0) + (nlo < lo ? 1 : 0));
  store<u64>(ptr, nlo);
}

export function i128Sub(ptr: usize, x: i64): void {
  const lo = load<u64>(ptr);
  const nlo = lo - <u64>x;
  store<u64>(ptr + 8, load<u64>(ptr + 8) - (x < 0 ? <u64>-1 : 0) - (lo < <u64>x ? 1 : 0));
  store<u64>(ptr, nlo);
}

/** The sign (-1, 0, 1) of a*ma - b*mb for 128-bit a and b in memory (exact while both products
 *  stay within 127 bits). */
export function i128MulCmp(a: usize, ma: u64, b: usize, mb: u64): i32 {
  mulU64(load<u64>(a), ma);
  const alo = wideLo;
  const ahi = <i64>(wideHi + load<u64>(a + 8) * ma);
  mulU64(load<u64>(b), mb);
  const blo = wideLo;
  const bhi = <i64>(wideHi + load<u64>(b + 8) * mb);
  if (ahi != bhi) return ahi < bhi ? -1 : 1;
  if (alo != blo) return alo < blo ? -1 : 1;
  return 0;
}

// ---- parameters --------------------------------------------------------------------------------
//
// paramsParse(len) splits the "key=value\n" text at BUF (keys and values trimmed of ASCII white
// space like the engine's Params; a later line for the same key wins, as with repeated --param).
// Each getter marks its key read and leaves the value in paramI64 / paramU64; paramsFinish
// refuses the first key no getter read. Failures are logged and return false.

const PARAMS_MAX: i32 = 32;
const PARAM_SIZE: i32 = 20; // keyPtr, keyLen, valPtr, valLen, used (u32 each)
const PARAMS: usize = memory.data(PARAMS_MAX * PARAM_SIZE, 4);
let paramCount: i32 = 0;
export let paramI64: i64 = 0;
export let paramU64: u64 = 0;

function isSpace(c: u32): bool {
  return c == 32 || (c >= 9 && c <= 13);
}

function bytesEq(a: usize, an: u32, b: usize, bn: u32): bool {
  if (an != bn) return false;
  for (let i: u32 = 0; i < an; i++) {
    if (load<u8>(a + i) != load<u8>(b + i)) return false;
  }
  return true;
}

function bytesEqStr(a: usize, an: u32, s: string): bool {
  if (<i32>an != s.length) return false;
  for (let i: u32 = 0; i < an; i++) {
    if (<i32>load<u8>(a + i) != s.charCodeAt(i)) return false;
  }
  return true;
}

export function paramsParse(len: i32): bool {
  paramCount = 0;
  let i: usize = BUF;
  const end: usize = BUF + <usize>len;
  while (i < end) {
    let start = i;
    while (i < end && load<u8>(i) != 10) i++;
    let lineEnd = i;
    i++;
    while (start < lineEnd && isSpace(load<u8>(start))) start++;
    while (lineEnd > start && isSpace(load<u8>(lineEnd - 1))) lineEnd--;
    if (start == lineEnd) continue;
    let eq = start;
    while (eq < lineEnd && load<u8>(eq) != 61) eq++;
    if (eq == lineEnd) {
      msgReset();
      msgStr("parameter line without '=': ");
      msgBytes(start, <u32>(lineEnd - start));
      msgSend();
      return false;
    }
    let k0 = start, k1 = eq, v0 = eq + 1, v1 = lineEnd;
    while (k1 > k0 && isSpace(load<u8>(k1 - 1))) k1--;
    while (v0 < v1 && isSpace(load<u8>(v0))) v0++;
    let slot: usize = 0;
    for (let n = 0; n < paramCount; n++) {
      const p = PARAMS + <usize>(n * PARAM_SIZE);
      if (bytesEq(load<u32>(p), load<u32>(p + 4), k0, <u32>(k1 - k0))) slot = p;
    }
    if (slot == 0) {
      if (paramCount == PARAMS_MAX) {
        msgReset();
        msgStr("too many parameters");
        msgSend();
        return false;
      }
      slot = PARAMS + <usize>(paramCount * PARAM_SIZE);
      paramCount++;
    }
    store<u32>(slot, <u32>k0);
    store<u32>(slot + 4, <u32>(k1 - k0));
    store<u32>(slot + 8, <u32>v0);
    store<u32>(slot + 12, <u32>(v1 - v0));
    store<u32>(slot + 16, 0);
  }
  return true;
}

function paramTake(key: string): usize {
  for (let n = 0; n < paramCount; n++) {
    const p = PARAMS + <usize>(n * PARAM_SIZE);
    if (bytesEqStr(load<u32>(p), load<u32>(p + 4), key)) {
      store<u32>(p + 16, 1);
      return p;
    }
  }
  return 0;
}

function paramBad(p: usize, why: string): void {
  msgReset();
  msgBytes(load<u32>(p), load<u32>(p + 4));
  msgStr(": ");
  msgStr(why);
  msgStr(" (got \"");
  msgBytes(load<u32>(p + 8), load<u32>(p + 12));
  msgStr("\")");
  msgSend();
}

/** Parses -?digits(.digits)? into 1e-8 units (engine::fixed::parse_fixed): extra decimals must
 *  be zeros, the value must fit 64 bits. The value goes to paramI64. */
export function parseFixed(s: usize, len: u32): bool {
  let i: u32 = 0;
  const neg = len > 0 && load<u8>(s) == 45;
  if (neg) i = 1;
  // Accumulated as a negative number so that i64::MIN units stay representable.
  let acc: i64 = 0;
  let whole: u32 = 0;
  for (; i < len && load<u8>(s + i) != 46; i++, whole++) {
    const d = <i64>load<u8>(s + i) - 48;
    if (d < 0 || d > 9) return false;
    if (acc < (I64_MIN + d) / 10) return false;
    acc = acc * 10 - d;
  }
  if (whole == 0) return false;
  let frac: i32 = 0;
  if (i < len) {
    i++;
    if (i == len) return false;
    for (; i < len; i++) {
      const d = <i64>load<u8>(s + i) - 48;
      if (d < 0 || d > 9) return false;
      if (frac < 8) {
        if (acc < (I64_MIN + d) / 10) return false;
        acc = acc * 10 - d;
        frac++;
      } else if (d != 0) {
        return false;
      }
    }
  }
  let p: i64 = 1;
  for (let k = frac; k < 8; k++) p *= 10;
  if (acc < I64_MIN / p) return false;
  acc *= p;
  if (neg) {
    paramI64 = acc;
  } else {
    if (acc == I64_MIN) return false;
    paramI64 = -acc;
  }
  return true;
}

/** A decimal parameter as 1e-8 fixed point (Params::fixed), dflt when absent: paramI64. */
export function paramFixed(key: string, dflt: i64): bool {
  const p = paramTake(key);
  if (p == 0) {
    paramI64 = dflt;
    return true;
  }
  if (!parseFixed(load<u32>(p + 8), load<u32>(p + 12))) {
    paramBad(p, "not a decimal with at most 8 places");
    return false;
  }
  return true;
}

/** An unsigned integer parameter in min..=max (Rust's u64::from_str, then the range): paramU64. */
export function paramU64In(key: string, dflt: u64, min: u64, max: u64): bool {
  const p = paramTake(key);
  if (p == 0) {
    paramU64 = dflt;
    return true;
  }
  const s: usize = load<u32>(p + 8);
  const n: u32 = load<u32>(p + 12);
  let i: u32 = 0;
  if (n > 0 && load<u8>(s) == 43) i = 1; // a leading '+', as Rust takes it
  if (i == n) {
    paramBad(p, "not an unsigned integer");
    return false;
  }
  let v: u64 = 0;
  for (; i < n; i++) {
    const d = <u64>load<u8>(s + i) - 48;
    if (d > 9 || v > (u64.MAX_VALUE - d) / 10) {
      paramBad(p, "not an unsigned integer");
      return false;
    }
    v = v * 10 + d;
  }
  if (v < min || v > max) {
    msgReset();
    msgBytes(load<u32>(p), load<u32>(p + 4));
    msgStr(": must be in ");
    msgI64(<i64>min);
    msgStr("..=");
    msgI64(<i64>max);
    msgStr(" (got \"");
    msgBytes(s, n);
    msgStr("\")");
    msgSend();
    return false;
  }
  paramU64 = v;
  return true;
}

/** false (logged) naming the first parameter no getter asked for. */
export function paramsFinish(): bool {
  for (let n = 0; n < paramCount; n++) {
    const p = PARAMS + <usize>(n * PARAM_SIZE);
    if (load<u32>(p + 16) == 0) {
      msgReset();
      msgStr("unknown parameter ");
      msgBytes(load<u32>(p), load<u32>(p + 4));
      msgSend();
      return false;
    }
  }
  return true;
}

// ---- log lines (ASCII, at most 256 bytes, built without allocating) -----------------------------

const MSG: usize = memory.data(256, 8);
let msgLen: u32 = 0;

export function msgReset(): void {
  msgLen = 0;
}

export function msgBytes(ptr: usize, n: u32): void {
  for (let i: u32 = 0; i < n && msgLen < 256; i++) {
    store<u8>(MSG + msgLen, load<u8>(ptr + i));
    msgLen++;
  }
}

export function msgStr(s: string): void {
  for (let i = 0; i < s.length && msgLen < 256; i++) {
    store<u8>(MSG + msgLen, <u8>s.charCodeAt(i));
    msgLen++;
  }
}

const DIGITS: usize = memory.data(24, 8);

function msgDigits(mag: u64): void {
  let n: u32 = 0;
  do {
    store<u8>(DIGITS + n, <u8>(48 + mag % 10));
    mag /= 10;
    n++;
  } while (mag != 0);
  while (n > 0) {
    n--;
    msgBytes(DIGITS + n, 1);
  }
}

export function msgI64(v: i64): void {
  if (v < 0) msgStr("-");
  msgDigits(v < 0 ? <u64>0 - <u64>v : <u64>v);
}

/** 1e-8 units as a decimal: 100000 -> "0.001". */
export function msgFixed(units: i64): void {
  const mag: u64 = units < 0 ? <u64>0 - <u64>units : <u64>units;
  if (units < 0) msgStr("-");
  msgDigits(mag / <u64>SCALE);
  let frac = mag % <u64>SCALE;
  if (frac != 0) {
    for (let i = 7; i >= 0; i--) {
      store<u8>(DIGITS + <usize>i, <u8>(48 + frac % 10));
      frac /= 10;
    }
    let n: u32 = 8;
    while (load<u8>(DIGITS + n - 1) == 48) n--;
    msgStr(".");
    msgBytes(DIGITS, n);
  }
}

export function msgSend(): void {
  tl_log(<i32>MSG, <i32>msgLen);
}

export function logStr(s: string): void {
  msgReset();
  msgStr(s);
  msgSend();
}
