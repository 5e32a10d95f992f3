// probe.ts: the native latency probe (strategies/src/probe.rs) as a wasm strategy in
// AssemblyScript: one IOC buy per trade at the trade price scaled by offset_bps, rounded down to
// the tick (default -1000 bps: 10 % under the market, so it expires unfilled).
//
// Parameters: offset_bps (whole basis points, -9999..=10000, default -1000; read as a decimal
// like native, so "25.0" is 25 and "1.5" is refused), qty (default 0.0001).
//
// One difference from native: the host numbers a wasm strategy's orders, so the client id is
// the engine's (tl-<epoch>-<seq>), not probe-<trade id>, and the venue simulator cannot pair
// the order with its trade for round-trip figures. Order counts are the same as native.
//
// State for restarts: the two counters, saved every SAVE_EVERY trades.

import {
  EV_TRADE, IOC, OFF_KIND, OFF_TICK_SIZE, SCALE, SIDE_BUY, TRADE_PRICE, msgFixed, msgI64,
  msgReset, msgSend, msgStr, offsetBps, paramFixed, paramI64, paramsFinish, paramsParse,
  readI64, readU32, tl_save_state, tl_submit,
} from "../../sdk/assemblyscript/tickline";

export { tl_abi_version, tl_buffer } from "../../sdk/assemblyscript/tickline";

const MIN_OFFSET_BPS: i64 = -9_999;
const MAX_OFFSET_BPS: i64 = 10_000;
const SAVE_EVERY: u32 = 1024;
const STATE_MAGIC: u32 = 0x31425250; // "PRB1"

/** The saved state: magic, padding, orders the host took, orders it refused. */
const STATE: usize = memory.data(24, 8);
const RESTORE_AREA: usize = memory.data(24, 8);

let offset: i64 = -1000;
let qty: i64 = 10_000;
let sinceSave: u32 = 0;

export function tl_init(paramsLen: i32): i32 {
  if (!paramsParse(paramsLen)) return 1;
  if (!paramFixed("offset_bps", -1000 * SCALE)) return 1;
  const units = paramI64;
  if (units % SCALE != 0) {
    msgReset();
    msgStr("offset_bps: must be a whole number of basis points (got ");
    msgFixed(units);
    msgStr(")");
    msgSend();
    return 1;
  }
  const bps = units / SCALE;
  if (bps < MIN_OFFSET_BPS || bps > MAX_OFFSET_BPS) {
    msgReset();
    msgStr("offset_bps: must be in -9999..=10000 (got ");
    msgI64(bps);
    msgStr(")");
    msgSend();
    return 1;
  }
  if (!paramFixed("qty", 10_000)) return 1;
  if (paramI64 <= 0) {
    msgReset();
    msgStr("qty: must be positive (got ");
    msgFixed(paramI64);
    msgStr(")");
    msgSend();
    return 1;
  }
  const q = paramI64;
  if (!paramsFinish()) return 1;
  offset = bps;
  qty = q;
  store<u32>(STATE, STATE_MAGIC);
  store<u64>(STATE, 0, 8);
  store<u64>(STATE, 0, 16);
  sinceSave = 0;
  return 0;
}

export function tl_on_event(): i32 {
  if (readU32(OFF_KIND) != EV_TRADE) return 0;
  const price = offsetBps(readI64(TRADE_PRICE), offset, readI64(OFF_TICK_SIZE));
  if (tl_submit(SIDE_BUY, IOC, price, qty) > 0) {
    store<u64>(STATE, load<u64>(STATE, 8) + 1, 8);
  } else {
    store<u64>(STATE, load<u64>(STATE, 16) + 1, 16);
  }
  if (++sinceSave >= SAVE_EVERY) {
    tl_save_state(<i32>STATE, 24);
    sinceSave = 0;
  }
  return 0;
}

export function tl_restore_area(len: i32): i32 {
  return len == 24 ? <i32>RESTORE_AREA : 0;
}

export function tl_restore(len: i32): i32 {
  if (len != 24 || load<u32>(RESTORE_AREA) != STATE_MAGIC) return 1;
  memory.copy(STATE, RESTORE_AREA, 24);
  return 0;
}
