;; minimal.wat: the smallest Tickline strategy (ABI version 1, strategies/wasm/include/tickline.h).
;; On the first trade it buys 0.001 once with an IOC at the best ask (the trade's price when the
;; context has no ask), then does nothing more. It takes no parameters.
;;
;; Build: wat2wasm minimal.wat -o minimal.wasm   (Debian: apt-get install wabt; build.sh does it)
;; Every number below is fixed point: 1e-8 units (0.001 BTC = 100000).

(module
  ;; The one host call used: tl_submit(side, order_type, price, qty) -> client id (> 0) or a
  ;; negative TL_ERR_* refusal. Every import must come from module "tickline".
  (import "tickline" "tl_submit" (func $tl_submit (param i32 i32 i64 i64) (result i64)))

  ;; One 64 KiB page of linear memory, exported as "memory" (the host writes into it).
  (memory (export "memory") 1)

  ;; 1 once the order is in.
  (global $done (mut i32) (i32.const 0))

  ;; The ABI version this module was written against (TL_ABI_VERSION).
  (func (export "tl_abi_version") (result i32)
    (i32.const 1))

  ;; Where the host writes the parameters and every event: a 4096-byte, 8-aligned area. Address
  ;; 1024 here; nothing else uses this page.
  (func (export "tl_buffer") (result i32)
    (i32.const 1024))

  ;; Called once per (re)start with the parameter text's length. This strategy has no
  ;; parameters, so any text is refused (non-zero): the deploy fails with the host naming it.
  (func (export "tl_init") (param $params_len i32) (result i32)
    (local.get $params_len))

  ;; Called once per event; the context block and the record are at tl_buffer() = 1024.
  (func (export "tl_on_event") (result i32)
    (local $price i64)
    (local $id i64)
    ;; Done already, or not a trade (the u32 kind at offset 0 is not TL_EV_TRADE = 1): return 0.
    (if (i32.or (global.get $done)
                (i32.ne (i32.load (i32.const 1024)) (i32.const 1)))
      (then (return (i32.const 0))))
    ;; The best ask from the context (i64 at offset 48), 0 when the host knows none ...
    (local.set $price (i64.load (i32.const 1072)))
    ;; ... in which case the trade's own price (i64 at offset 128 of the trade record).
    (if (i64.le_s (local.get $price) (i64.const 0))
      (then (local.set $price (i64.load (i32.const 1152)))))
    ;; Buy (side 0), IOC (type 1), at that price, 0.001 (100000 units).
    (local.set $id
      (call $tl_submit (i32.const 0) (i32.const 1) (local.get $price) (i64.const 100000)))
    ;; A client id (> 0) means the host took it: done. A refusal is tried again on the next trade.
    (global.set $done (i64.gt_s (local.get $id) (i64.const 0)))
    ;; 0: this callback went well.
    (i32.const 0))
)
