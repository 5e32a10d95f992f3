// guest_check.mjs: the example modules alone, under a tiny stand-in host written in JavaScript
// (node's WebAssembly), replaying the scenarios of the native unit tests in
// strategies/src/sma_cross.rs and probe.rs. The real host (wasmtime in the engine) is tested by
// tests/wasm_equivalence.rs; this checks the guests' own logic and parameter parsing, byte for
// byte against the ABI, for every language built.
//
// Usage: node strategies/wasm/test/guest_check.mjs DIR   (DIR: build.sh's output, target/wasm)
// Prints one line per check; exits 1 on the first failure.
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
let checks = 0;

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}
function eq(got, want, what) {
  checks++;
  const g = JSON.stringify(got, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  const w = JSON.stringify(want, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  if (g !== w) fail(`${what}: got ${g}, want ${w}`);
}

const SCALE = 100000000n;
// "61837.63" -> 1e-8 units, for test inputs only.
function fx(s) {
  const neg = s.startsWith("-");
  const [w, f = ""] = (neg ? s.slice(1) : s).split(".");
  const v = BigInt(w) * SCALE + BigInt((f + "00000000").slice(0, 8));
  return neg ? -v : v;
}

// A stand-in host: one instance, BTCUSDT's rules (tick 0.01, lot 0.00001, min notional 5).
class Host {
  constructor(file, params) {
    this.orders = []; // {id, side, type, price, qty}
    this.logs = [];
    this.saved = null;
    this.nextId = 1n;
    this.refuse = false;
    const imports = {
      tickline: {
        tl_submit: (side, type, price, qty) => {
          if (this.refuse) return -6n;
          const id = this.nextId++;
          this.orders.push({ id, side, type, price, qty });
          return id;
        },
        tl_cancel: () => 0,
        tl_cancel_all: () => 0,
        tl_set_timer: () => 0,
        tl_save_state: (ptr, len) => {
          this.saved = new Uint8Array(this.mem().buffer, ptr, len).slice();
          return 0;
        },
        tl_log: (ptr, len) => {
          this.logs.push(Buffer.from(new Uint8Array(this.mem().buffer, ptr, len)).toString());
        },
      },
    };
    const mod = new WebAssembly.Module(fs.readFileSync(file));
    this.inst = new WebAssembly.Instance(mod, imports);
    this.x = this.inst.exports;
    eq(this.x.tl_abi_version(), 1, `${file}: abi version`);
    this.buf = this.x.tl_buffer();
    this.bid = 0n;
    this.ask = 0n;
    this.rc = this.init(params);
  }
  mem() {
    return this.inst.exports.memory;
  }
  view() {
    return new DataView(this.mem().buffer, this.buf, 4096);
  }
  init(params) {
    const text = Buffer.from(params);
    new Uint8Array(this.mem().buffer, this.buf, text.length).set(text);
    return this.x.tl_init(text.length);
  }
  context(kind) {
    const v = this.view();
    new Uint8Array(this.mem().buffer, this.buf, 256).fill(0);
    v.setUint32(0, kind, true);
    v.setBigInt64(32, this.bid, true);
    v.setBigInt64(48, this.ask, true);
    v.setBigInt64(64, 1000000n, true); // tick 0.01
    v.setBigInt64(72, 1000n, true); // lot 0.00001
    v.setBigInt64(80, 5n * SCALE, true); // min notional 5
    return v;
  }
  trade(id, price) {
    const before = this.orders.length;
    const v = this.context(1);
    v.setBigInt64(128, fx(price), true);
    v.setBigInt64(136, fx("0.01"), true);
    v.setBigUint64(144, BigInt(id), true);
    eq(this.x.tl_on_event(), 0, "tl_on_event");
    return this.orders.slice(before);
  }
  order(o, kind, fillQty, final) {
    const before = this.orders.length;
    const v = this.context(5);
    v.setBigUint64(128, o.id, true);
    v.setUint32(136, kind, true);
    v.setUint32(140, o.side, true);
    v.setBigInt64(144, o.price, true);
    v.setBigInt64(176, fillQty, true);
    v.setBigInt64(168, o.price, true);
    v.setUint32(196, final ? 1 : 0, true);
    eq(this.x.tl_on_event(), 0, "tl_on_event (order)");
    return this.orders.slice(before);
  }
}

const FILLED = 3,
  CANCELED = 4;
const UP = ["100", "100", "100", "100", "99", "102"];
const small = "fast=2\nslow=4\nqty=0.1\n";

function smaCross(file) {
  // goes_long_at_the_ask_then_flat_at_the_bid
  let h = new Host(file, small);
  eq(h.rc, 0, "init");
  h.bid = fx("101.5");
  h.ask = fx("101.6");
  UP.slice(0, 5).forEach((p, i) => eq(h.trade(i, p).length, 0, `warm-up trade ${i}`));
  let [buy] = h.trade(5, UP[5]);
  eq([buy.side, buy.type, buy.price, buy.qty], [0, 1, fx("101.6"), fx("0.1")], "buy at the ask");
  eq(h.order(buy, 1, 0n, false).length, 0, "accepted");
  eq(h.order(buy, FILLED, fx("0.1"), true).length, 0, "filled");
  eq(h.trade(6, "100").length, 0, "still above: nothing");
  let [sell] = h.trade(7, "100.5");
  eq([sell.side, sell.type, sell.price, sell.qty], [1, 1, fx("101.5"), fx("0.1")], "sell at the bid");
  h.order(sell, FILLED, fx("0.1"), true);
  eq(h.orders.length, 2, "two orders");

  // without_a_bbo_the_last_trade_price_is_used
  h = new Host(file, small);
  UP.slice(0, 5).forEach((p, i) => h.trade(i, p));
  [buy] = h.trade(5, UP[5]);
  eq(buy.price, fx("102"), "no bbo: trade price");

  // one_order_in_flight_and_the_target_is_chased_on_trades
  h = new Host(file, small);
  UP.slice(0, 5).forEach((p, i) => h.trade(i, p));
  [buy] = h.trade(5, UP[5]);
  eq(h.trade(6, "100").length, 0, "in flight: no second order");
  eq(h.trade(7, "100.5").length, 0, "cross below while in flight");
  eq(h.order(buy, FILLED, fx("0.06"), false).length, 0, "partial fill sends nothing");
  eq(h.order(buy, CANCELED, 0n, true).length, 0, "expiry sends nothing");
  [sell] = h.trade(8, "100");
  eq([sell.side, sell.price, sell.qty], [1, fx("100"), fx("0.06")], "sells back what is held");
  h.order(sell, FILLED, fx("0.01"), false);
  h.order(sell, CANCELED, 0n, true);
  eq(h.trade(9, "99").length, 0, "0.05 x 99 < 5: dropped");
  eq(h.trade(10, "99").length, 0, "and not retried");

  // an_expired_ioc_is_retried_on_the_next_trade
  h = new Host(file, small);
  UP.slice(0, 5).forEach((p, i) => h.trade(i, p));
  [buy] = h.trade(5, UP[5]);
  h.order(buy, CANCELED, 0n, true);
  const [again] = h.trade(6, "103");
  eq([again.side, again.price, again.qty], [0, fx("103"), fx("0.1")], "retried at the new price");

  // below_min_notional_is_not_placed
  h = new Host(file, "fast=2\nslow=4\nqty=0.01\n");
  UP.forEach((p, i) => eq(h.trade(i, p).length, 0, "0.01 x 102 < 5"));
  eq(h.trade(9, "100").length, 0, "dropped until the next cross");

  // a refused submit is retried on the next trade (native: submit_failed, in_flight stays none)
  h = new Host(file, small);
  UP.slice(0, 5).forEach((p, i) => h.trade(i, p));
  h.refuse = true;
  eq(h.trade(5, UP[5]).length, 0, "refused");
  h.refuse = false;
  eq(h.trade(6, "103").length, 1, "retried");

  // restart from the saved state: a fresh instance restored mid-position carries on
  h = new Host(file, small);
  UP.slice(0, 5).forEach((p, i) => h.trade(i, p));
  [buy] = h.trade(5, UP[5]);
  h.order(buy, FILLED, fx("0.1"), true);
  const r = new Host(file, small);
  const area = r.x.tl_restore_area(h.saved.length);
  eq(area > 0, true, "restore area");
  new Uint8Array(r.mem().buffer, area, h.saved.length).set(h.saved);
  eq(r.x.tl_restore(h.saved.length), 0, "restored");
  eq(r.trade(6, "100").length, 0, "restored: still above, held, nothing to do");
  [sell] = r.trade(7, "100.5");
  eq([sell.side, sell.qty], [1, fx("0.1")], "restored: the cross below sells what was held");
  const other = new Host(file, "fast=3\nslow=4\nqty=0.1\n");
  const a2 = other.x.tl_restore_area(h.saved.length);
  new Uint8Array(other.mem().buffer, a2, h.saved.length).set(h.saved);
  eq(other.x.tl_restore(h.saved.length) !== 0, true, "state of other windows refused");

  // parameters, as SmaCrossConfig::from_params
  eq(new Host(file, "").rc, 0, "defaults");
  eq(new Host(file, " fast = 5 \nslow=6\nqty=0.5\n").rc, 0, "trimmed");
  eq(new Host(file, "fast=+5\nslow=6").rc, 0, "u64 takes a leading +");
  eq(new Host(file, "qty=0.100000000").rc, 0, "trailing zeros past 8 places");
  for (const [p, key] of [
    ["fast=100", "fast"],
    ["fast=10\nslow=5", "fast"],
    ["fast=0", "fast"],
    ["slow=1", "slow"],
    ["slow=100001", "slow"],
    ["slow=-5", "slow"],
    ["qty=0", "qty"],
    ["qty=abc", "qty"],
    ["qty=.5", "qty"],
    ["qty=5.", "qty"],
    ["qty=1e3", "qty"],
    ["qty=0.000000001", "qty"],
    ["qty=92233720368.54775808", "qty"],
    ["fsat=5", "fsat"],
    ["novalue", "novalue"],
  ]) {
    const bad = new Host(file, p + "\n");
    eq(bad.rc !== 0, true, `${p} refused`);
    eq(bad.logs.length === 1 && bad.logs[0].includes(key), true, `${p}: the log names ${key}: ${bad.logs}`);
  }
  eq(new Host(file, "qty=92233720368.54775807").rc, 0, "i64::MAX units");
  eq(new Host(file, "qty=1\nqty=0").rc !== 0, true, "the last value of a repeated key wins");
}

function probe(file) {
  // one_ioc_buy_per_trade: 61837.63 x 0.9 = 55653.867 -> 55653.86
  let h = new Host(file, "");
  eq(h.rc, 0, "init");
  for (const id of [3735683259, 3735683260, 7]) {
    const [o] = h.trade(id, "61837.63");
    eq([o.side, o.type, o.price, o.qty], [0, 1, fx("55653.86"), fx("0.0001")], "probe order");
  }
  // offset_and_qty_are_configurable
  h = new Host(file, "offset_bps=25\nqty=0.002\n");
  const [o] = h.trade(1, "100");
  eq([o.price, o.qty], [fx("100.25"), fx("0.002")], "offset 25 bps");
  eq(new Host(file, "offset_bps=-9999").rc, 0, "-9999");
  eq(new Host(file, "offset_bps=25.0").rc, 0, "25.0 is whole");
  for (const p of ["offset_bps=-10000", "offset_bps=10001", "offset_bps=1.5", "offset_bps=x", "qty=0", "qty=-1", "qty=0.000000001", "offset=5"]) {
    eq(new Host(file, p).rc !== 0, true, `${p} refused`);
  }
  // a refusal is counted, not fatal; every trade is answered
  h = new Host(file, "");
  h.refuse = true;
  eq(h.trade(1, "100").length, 0, "refused");
  h.refuse = false;
  eq(h.trade(2, "100").length, 1, "next trade answered");
  // extreme prices clamp like Price::offset_bps (i128, clamped to i64), then the tick
  h = new Host(file, "offset_bps=10000");
  eq(h.trade(3, "92233720368.54775807")[0].price, fx("92233720368.54"), "clamped at i64::MAX, floored to tick");
}

function minimal(file) {
  const h = new Host(file, "");
  eq(h.rc, 0, "init");
  h.ask = fx("61837.64");
  const [o] = h.trade(1, "61837.63");
  eq([o.side, o.type, o.price, o.qty], [0, 1, fx("61837.64"), fx("0.001")], "one buy at the ask");
  eq(h.trade(2, "61837.63").length, 0, "only once");
  eq(new Host(file, "qty=1").rc !== 0, true, "parameters refused");
}

let modules = 0;
for (const [name, run] of [
  ["sma_cross_c.wasm", smaCross],
  ["sma_cross_as.wasm", smaCross],
  ["probe_c.wasm", probe],
  ["probe_as.wasm", probe],
  ["minimal.wasm", minimal],
]) {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) {
    console.log(`NOTICE: ${file} not built: skipped`);
    continue;
  }
  const before = checks;
  run(file);
  modules++;
  console.log(`ok ${name}: ${checks - before} checks`);
}
console.log(`guest_check: ${modules} modules, ${checks} checks passed`);
