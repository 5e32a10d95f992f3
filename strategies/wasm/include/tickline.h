/*
 * tickline.h: the Tickline WebAssembly strategy ABI, version 1.
 *
 * A strategy is a wasm32 module with no WASI and no imports beyond the "tickline" host calls
 * below. One instance runs per symbol on the engine's core thread; the host calls it once per
 * event and checks everything it hands back. Fixed point everywhere: prices and quantities are
 * signed 64-bit integers in units of 1e-8 (1 BTC = 100000000), notionals in 1e-8 quote units,
 * times in nanoseconds. All records are little-endian with the offsets given here.
 *
 * Guest exports (required):
 *   memory                              the linear memory
 *   int32_t tl_abi_version(void)        must return TL_ABI_VERSION (a mismatch is refused at
 *                                       deploy, naming both versions)
 *   int32_t tl_buffer(void)             address of a TL_BUFFER_SIZE-byte, 8-aligned area, the same
 *                                       for the instance's whole life; the host writes the
 *                                       parameters and every event record there
 *   int32_t tl_init(int32_t params_len) called once per (re)start: the parameters are at
 *                                       tl_buffer() as UTF-8 "key=value\n" lines (params_len
 *                                       bytes, at most TL_BUFFER_SIZE); 0 = ok, anything else
 *                                       refuses the deployment (a restart: counts as a failure)
 *   int32_t tl_on_event(void)           one event: the context block and the record are at
 *                                       tl_buffer(); 0 = ok, anything else is a guest error
 *                                       (the callback's orders are discarded, the instance is
 *                                       restarted like a trapped one)
 * Guest exports (optional, for restart from the last good state):
 *   int32_t tl_restore_area(int32_t len)  an address with room for len bytes, or 0 to refuse
 *   int32_t tl_restore(int32_t len)       the state last given to tl_save_state is there; 0 = ok
 *
 * Host imports (module "tickline"); every argument is checked, a refusal is counted and logged
 * by the host and returned as a negative TL_ERR_* code, never a trap:
 *   int64_t tl_submit(int32_t side, int32_t order_type, int64_t price, int64_t qty)
 *           a new order on the instance's symbol: its client id (> 0), or TL_ERR_*
 *   int32_t tl_cancel(int64_t client_id)     0 or TL_ERR_*
 *   int32_t tl_cancel_all(void)              0 or TL_ERR_*
 *   int32_t tl_set_timer(int64_t at_ns, int64_t token)   a TL_EV_TIMER event at or after at_ns
 *           (engine clock, the context's now_ns); 0 or TL_ERR_*
 *   int32_t tl_save_state(int32_t ptr, int32_t len)      the host copies len bytes (at most
 *           TL_STATE_MAX) as the instance's last good state; after a trap it restarts the
 *           instance (tl_init with the same parameters) and hands them back via tl_restore;
 *           0 or TL_ERR_*
 *   void    tl_log(int32_t ptr, int32_t len)  one UTF-8 line (at most 256 bytes), rate-limited
 */
#ifndef TICKLINE_H
#define TICKLINE_H

#include <stdint.h>

#define TL_ABI_VERSION 1
#define TL_BUFFER_SIZE 4096
#define TL_STATE_MAX 4096

/* Event kinds: the u32 at TL_OFF_KIND. */
#define TL_EV_TRADE 1
#define TL_EV_AGG_TRADE 2
#define TL_EV_BOOK_TICKER 3
#define TL_EV_BOOK 4        /* the L2 book changed (a depth update applied or a snapshot) */
#define TL_EV_ORDER 5       /* an update on one of this instance's orders */
#define TL_EV_TIMER 6
#define TL_EV_CONNECTION 7

/* Context block, written before every tl_on_event (offsets from tl_buffer()). */
#define TL_OFF_KIND 0            /* u32  TL_EV_* */
#define TL_OFF_SYMBOL 4          /* u32  the engine's symbol index (informative) */
#define TL_OFF_NOW_NS 8          /* u64  engine clock when the event is dispatched */
#define TL_OFF_MARKET_NS 16      /* u64  exchange time of the event (0 if none) */
#define TL_OFF_POSITION 24       /* i64  the symbol's position, base units 1e-8 */
#define TL_OFF_BID_PX 32         /* i64  best bid: bookTicker's if one arrived, else the synced L2 book's, else 0 */
#define TL_OFF_BID_QTY 40        /* i64 */
#define TL_OFF_ASK_PX 48         /* i64  best ask, same rule */
#define TL_OFF_ASK_QTY 56        /* i64 */
#define TL_OFF_TICK_SIZE 64      /* i64  price step (0: none) */
#define TL_OFF_LOT_SIZE 72       /* i64  quantity step (0: none) */
#define TL_OFF_MIN_NOTIONAL 80   /* i64  smallest price*qty/1e8 the venue takes, 1e-8 quote */
#define TL_OFF_LAST_PX 88        /* i64  last trade price (0: no trade yet) */
#define TL_OFF_FLAGS 96          /* u32  TL_FLAG_* */
/* 100..128 reserved (zero) */

#define TL_FLAG_BBO 1u           /* a bookTicker has arrived */
#define TL_FLAG_BOOK_SYNCED 2u   /* the L2 book is synced */

/* The event record starts at TL_OFF_RECORD; its layout depends on the kind. */
#define TL_OFF_RECORD 128

/* TL_EV_TRADE */
#define TL_TRADE_PRICE 128       /* i64 */
#define TL_TRADE_QTY 136         /* i64 */
#define TL_TRADE_ID 144          /* u64 */
#define TL_TRADE_BUYER_MAKER 152 /* u32  0 or 1 */

/* TL_EV_AGG_TRADE */
#define TL_AGG_PRICE 128         /* i64 */
#define TL_AGG_QTY 136           /* i64 */
#define TL_AGG_ID 144            /* u64 */
#define TL_AGG_BUYER_MAKER 152   /* u32 */
#define TL_AGG_TRADE_COUNT 156   /* u32 */

/* TL_EV_BOOK_TICKER and TL_EV_BOOK (top of the synced book; 0 where a side is empty) */
#define TL_TOP_BID_PX 128        /* i64 */
#define TL_TOP_BID_QTY 136       /* i64 */
#define TL_TOP_ASK_PX 144        /* i64 */
#define TL_TOP_ASK_QTY 152       /* i64 */
#define TL_TOP_UPDATE_ID 160     /* u64  bookTicker update id / book's last update id */

/* TL_EV_ORDER */
#define TL_ORD_CLIENT_ID 128     /* u64  as returned by tl_submit */
#define TL_ORD_KIND 136          /* u32  TL_ORD_* */
#define TL_ORD_SIDE 140          /* u32  TL_SIDE_* */
#define TL_ORD_PRICE 144         /* i64  the order's limit price */
#define TL_ORD_LEAVES 152        /* i64  quantity still open */
#define TL_ORD_CUM_QTY 160       /* i64  cumulative filled quantity */
#define TL_ORD_FILL_PX 168       /* i64  this fill's price (TL_ORD_FILLED kind only) */
#define TL_ORD_FILL_QTY 176      /* i64  this fill's quantity */
#define TL_ORD_FEE 184           /* i64  this fill's fee, 1e-8 quote */
#define TL_ORD_REJECT 192        /* u32  TL_REJ_* (TL_ORD_REJECTED kind only) */
#define TL_ORD_FINAL 196         /* u32  1 when the order is done (no more updates) */

#define TL_ORD_ACCEPTED 1
#define TL_ORD_REJECTED 2
#define TL_ORD_FILLED 3
#define TL_ORD_CANCELED 4
#define TL_ORD_TIMED_OUT 5

#define TL_REJ_OTHER 0
#define TL_REJ_NO_LIQUIDITY 1
#define TL_REJ_INVALID 2
#define TL_REJ_TOO_MANY_ORDERS 3
#define TL_REJ_VENUE 4
#define TL_REJ_QUEUE_FULL 5
#define TL_REJ_RISK 6
#define TL_REJ_DISCONNECTED 7

/* TL_EV_TIMER */
#define TL_TIMER_TOKEN 128       /* u64 */

/* TL_EV_CONNECTION */
#define TL_CONN_UP 128           /* u32  1 up, 0 down */

/* tl_submit arguments */
#define TL_SIDE_BUY 0
#define TL_SIDE_SELL 1
#define TL_GTC 0
#define TL_IOC 1
#define TL_FOK 2
#define TL_MARKET 3

/* Host refusals (negative returns). */
#define TL_ERR_SIDE -1           /* side not TL_SIDE_* */
#define TL_ERR_TYPE -2           /* order type not TL_GTC..TL_MARKET */
#define TL_ERR_QTY -3            /* zero, negative or absurd quantity */
#define TL_ERR_PRICE -4          /* zero or negative limit price, or absurd */
#define TL_ERR_ORDER_CAP -5      /* more orders this callback than the deployment allows */
#define TL_ERR_FULL -6           /* the engine's per-event buffer is full */
#define TL_ERR_UNKNOWN_ORDER -7  /* cancel of an id this instance does not own */
#define TL_ERR_BOUNDS -8         /* a pointer/length outside linear memory or over a maximum */
#define TL_ERR_HALTED -9         /* the symbol is halted */
#define TL_ERR_TIMER -10         /* timer queue full or time in the past */

#if defined(__wasm__)
#define TL_IMPORT(name) __attribute__((import_module("tickline"), import_name(#name)))
#define TL_EXPORT(name) __attribute__((export_name(#name)))
TL_IMPORT(tl_submit) int64_t tl_submit(int32_t side, int32_t order_type, int64_t price, int64_t qty);
TL_IMPORT(tl_cancel) int32_t tl_cancel(int64_t client_id);
TL_IMPORT(tl_cancel_all) int32_t tl_cancel_all(void);
TL_IMPORT(tl_set_timer) int32_t tl_set_timer(int64_t at_ns, int64_t token);
TL_IMPORT(tl_save_state) int32_t tl_save_state(int32_t ptr, int32_t len);
TL_IMPORT(tl_log) void tl_log(int32_t ptr, int32_t len);
#endif

#endif /* TICKLINE_H */
