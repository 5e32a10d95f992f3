/*
 * probe.c: the native latency probe (strategies/src/probe.rs) as a wasm strategy in C: one IOC
 * buy per trade, priced at the trade price scaled by offset_bps and rounded down to the tick
 * (default -1000 bps: 10 % under the market, so it expires unfilled).
 *
 * Parameters: offset_bps (whole basis points, -9999..=10000, default -1000; read as a decimal
 * like native, so "25.0" is 25 and "1.5" is refused), qty (default 0.0001).
 *
 * One difference from native: the host numbers a wasm strategy's orders itself, so the client id
 * is the engine's (tl-<epoch>-<seq>), not probe-<trade id>; the venue simulator cannot pair these
 * orders with their trades for its round-trip figures. Order counts are the same as native.
 *
 * State for restarts: the two counters, saved every SAVE_EVERY trades.
 */
#include "tickline_sdk.h"

#define MIN_OFFSET_BPS (-9999)
#define MAX_OFFSET_BPS 10000
#define SAVE_EVERY 1024
#define STATE_MAGIC 0x31425250u /* "PRB1" */

typedef struct {
    uint32_t magic;
    uint32_t pad;
    uint64_t sent;    /* orders the host took */
    uint64_t refused; /* orders it refused (TL_ERR_*) */
} probe_state;

static int64_t offset_bps;
static int64_t qty;
static probe_state st;
static probe_state restore_area;
static uint32_t since_save;

TL_EXPORT(tl_init) int32_t tl_init(int32_t params_len) {
    tl_params p;
    int64_t offset;
    if (tl_params_parse(&p, (const char *)tl_buf, (uint32_t)params_len) != 0 ||
        tl_param_fixed(&p, "offset_bps", -1000 * TL_SCALE, &offset) != 0) {
        return 1;
    }
    if (offset % TL_SCALE != 0) {
        tl_msg m = {{0}, 0};
        tl_msg_str(&m, "offset_bps: must be a whole number of basis points (got ");
        tl_msg_fixed(&m, offset);
        tl_msg_str(&m, ")");
        tl_msg_send(&m);
        return 1;
    }
    offset /= TL_SCALE;
    if (offset < MIN_OFFSET_BPS || offset > MAX_OFFSET_BPS) {
        tl_msg m = {{0}, 0};
        tl_msg_str(&m, "offset_bps: must be in -9999..=10000 (got ");
        tl_msg_i64(&m, offset);
        tl_msg_str(&m, ")");
        tl_msg_send(&m);
        return 1;
    }
    if (tl_param_fixed(&p, "qty", 10000, &qty) != 0) {
        return 1;
    }
    if (qty <= 0) {
        tl_msg m = {{0}, 0};
        tl_msg_str(&m, "qty: must be positive (got ");
        tl_msg_fixed(&m, qty);
        tl_msg_str(&m, ")");
        tl_msg_send(&m);
        return 1;
    }
    if (tl_params_finish(&p) != 0) {
        return 1;
    }
    offset_bps = offset;
    st = (probe_state){STATE_MAGIC, 0, 0, 0};
    since_save = 0;
    return 0;
}

TL_EXPORT(tl_on_event) int32_t tl_on_event(void) {
    if (tl_u32(TL_OFF_KIND) != TL_EV_TRADE) {
        return 0;
    }
    int64_t price = tl_offset_bps(tl_i64(TL_TRADE_PRICE), offset_bps, tl_i64(TL_OFF_TICK_SIZE));
    if (tl_submit(TL_SIDE_BUY, TL_IOC, price, qty) > 0) {
        st.sent++;
    } else {
        st.refused++;
    }
    if (++since_save >= SAVE_EVERY) {
        tl_save_state((int32_t)(uintptr_t)&st, sizeof st);
        since_save = 0;
    }
    return 0;
}

TL_EXPORT(tl_restore_area) int32_t tl_restore_area(int32_t len) {
    return len == (int32_t)sizeof restore_area ? (int32_t)(uintptr_t)&restore_area : 0;
}

TL_EXPORT(tl_restore) int32_t tl_restore(int32_t len) {
    if (len != (int32_t)sizeof restore_area || restore_area.magic != STATE_MAGIC) {
        return 1;
    }
    st = restore_area;
    return 0;
}
