;; probe, by hand: native `probe` with its defaults (offset_bps = -1000, qty = 0.0001). Every trade
;; is answered with one IOC limit buy at the trade price x 0.9, rounded down to the tick, for
;; 0.0001 base units. The host's tests and benches compare it with the native strategy; the
;; guest SDKs' examples live in strategies/wasm/.
(module
  (import "tickline" "tl_submit" (func $submit (param i32 i32 i64 i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "tl_abi_version") (result i32) (i32.const 1))
  ;; tl_buffer() = 1024: kind at 1024, tick size at 1024 + 64, trade price at 1024 + 128
  (func (export "tl_buffer") (result i32) (i32.const 1024))
  (func (export "tl_init") (param i32) (result i32) (i32.const 0))
  (func (export "tl_on_event") (result i32)
    (local $px i64) (local $tick i64)
    ;; TL_EV_TRADE only
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 1)) (then (return (i32.const 0))))
    (local.set $px (i64.div_s (i64.mul (i64.load (i32.const 1152)) (i64.const 9)) (i64.const 10)))
    (local.set $tick (i64.load (i32.const 1088)))
    (if (i64.gt_s (local.get $tick) (i64.const 0))
      (then (local.set $px (i64.mul (i64.div_s (local.get $px) (local.get $tick)) (local.get $tick)))))
    ;; TL_SIDE_BUY, TL_IOC; a refusal (a price of 0) is the host's to count
    (drop (call $submit (i32.const 0) (i32.const 1) (local.get $px) (i64.const 10000)))
    (i32.const 0))
)
