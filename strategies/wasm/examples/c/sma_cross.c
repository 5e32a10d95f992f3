/*
 * sma_cross.c: the native sma_cross (strategies/src/sma_cross.rs) as a wasm strategy in C. Same
 * parameters, defaults and decisions, so a replay gives the same orders, fills and PnL
 * (tests/wasm_equivalence.rs checks it on the real capture).
 *
 * Parameters: fast (trades, default 20, 1..=99999), slow (default 100, 2..=100000, > fast),
 * qty (long position size, default 0.001).
 *
 * The last `slow` trade prices sit in a ring buffer allocated at tl_init; the sums of the last
 * `fast` and `slow` prices are running 128-bit totals, and the averages are compared without
 * dividing: fast_sum*slow against slow_sum*fast. Signals start once the slow window is full; the
 * first non-zero difference only sets the regime, after that a change of sign is a cross (a tie
 * keeps the regime). Crossing above sets the target to qty long, crossing below to flat.
 *
 * Orders: one at a time. On each trade, with no order in flight and the position (own fills)
 * off target, one IOC goes out: a buy at the best ask or a sell at the best bid (the host's
 * context gives the bookTicker's, else the synced book's, else 0: then the trade's price),
 * rounded down to the tick. A difference under one lot counts as reached; one whose notional is
 * under the venue minimum is dropped until the next cross. An IOC that expires is retried on the
 * next trade.
 *
 * State for restarts: the state block (and the ring right behind it, when the two fit in
 * TL_STATE_MAX) goes to tl_save_state after every callback that changed the position side of the
 * state, and every SAVE_EVERY trades otherwise. A restore without the ring (slow too large to
 * save) keeps position, target, order and regime and refills the windows from the next trades.
 */
#include "tickline_sdk.h"

#define MAX_WINDOW 100000
#define SAVE_EVERY 64
#define STATE_MAGIC 0x31414d53u /* "SMA1" */

enum { UNKNOWN = 0, FAST_ABOVE = 1, FAST_BELOW = -1 };
enum { NO_CROSS = 0, CROSS_ABOVE = 1, CROSS_BELOW = 2 };

/* Everything the strategy knows; the ring of `slow` prices follows it in memory. */
typedef struct {
    uint32_t magic;
    uint32_t ring_saved; /* in a saved copy: slow when the ring follows, 0 when it did not fit */
    uint64_t fast, slow;
    int64_t qty;
    uint64_t head, count;
    tl_i128 fast_sum, slow_sum;
    int64_t regime;
    int64_t target;    /* wanted position, 0 or qty */
    int64_t held;      /* position from this strategy's own fills */
    int64_t in_flight; /* client id of the order in flight, 0 for none */
    uint64_t crosses_above, crosses_below, orders, skipped, submit_failed;
} sma_state;

static sma_state *st;
static int64_t *ring;
static int dirty;
static uint32_t since_save;
static uint64_t restore_area[TL_STATE_MAX / 8];

static uint32_t full_len(void) {
    return (uint32_t)(sizeof(sma_state) + st->slow * 8);
}

static void save(void) {
    uint32_t len = full_len();
    if (len <= TL_STATE_MAX) {
        st->ring_saved = (uint32_t)st->slow;
    } else {
        st->ring_saved = 0;
        len = sizeof(sma_state);
    }
    tl_save_state((int32_t)(uintptr_t)st, (int32_t)len);
    dirty = 0;
    since_save = 0;
}

TL_EXPORT(tl_init) int32_t tl_init(int32_t params_len) {
    tl_params p;
    uint64_t fast, slow;
    int64_t qty;
    if (tl_params_parse(&p, (const char *)tl_buf, (uint32_t)params_len) != 0 ||
        tl_param_u64_in(&p, "fast", 20, 1, MAX_WINDOW - 1, &fast) != 0 ||
        tl_param_u64_in(&p, "slow", 100, 2, MAX_WINDOW, &slow) != 0) {
        return 1;
    }
    if (fast >= slow) {
        tl_msg m = {{0}, 0};
        tl_msg_str(&m, "fast: must be less than slow (");
        tl_msg_i64(&m, (int64_t)slow);
        tl_msg_str(&m, ") (got ");
        tl_msg_i64(&m, (int64_t)fast);
        tl_msg_str(&m, ")");
        tl_msg_send(&m);
        return 1;
    }
    if (tl_param_fixed(&p, "qty", 100000, &qty) != 0) {
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
    tl_alloc_reset();
    st = tl_alloc((uint32_t)(sizeof(sma_state) + slow * 8));
    if (!st) {
        tl_log_str("sma_cross: no memory for the price ring");
        return 1;
    }
    ring = (int64_t *)(st + 1);
    st->magic = STATE_MAGIC;
    st->fast = fast;
    st->slow = slow;
    st->qty = qty;
    dirty = 0;
    since_save = 0;
    return 0;
}

/* Adds one price to the windows; returns the cross it caused. */
static int push_price(int64_t price) {
    uint64_t fast = st->fast, slow = st->slow;
    if (st->count >= fast) {
        st->fast_sum = tl_i128_sub(st->fast_sum, ring[(st->head + slow - fast) % slow]);
    }
    if (st->count >= slow) {
        st->slow_sum = tl_i128_sub(st->slow_sum, ring[st->head]);
    } else {
        st->count++;
    }
    ring[st->head] = price;
    st->head = st->head + 1 == slow ? 0 : st->head + 1;
    st->fast_sum = tl_i128_add(st->fast_sum, price);
    st->slow_sum = tl_i128_add(st->slow_sum, price);
    if (st->count < slow) {
        return NO_CROSS;
    }
    int c = tl_i128_cmp(tl_i128_mul_u64(st->fast_sum, slow), tl_i128_mul_u64(st->slow_sum, fast));
    if (c == 0) {
        return NO_CROSS;
    }
    int64_t before = st->regime;
    st->regime = c;
    if (before == FAST_BELOW && c == FAST_ABOVE) {
        return CROSS_ABOVE;
    }
    if (before == FAST_ABOVE && c == FAST_BELOW) {
        return CROSS_BELOW;
    }
    return NO_CROSS;
}

/* Sends the next order towards the target, if none is in flight. */
static void reconcile(int64_t trade_price) {
    if (st->in_flight != 0 || st->held == st->target) {
        return;
    }
    int buy = st->target > st->held;
    int64_t want = buy ? st->target - st->held : st->held - st->target;
    int64_t qty = tl_floor_to(want, tl_i64(TL_OFF_LOT_SIZE));
    if (qty <= 0) {
        return; /* less than a lot apart: as close as the venue allows */
    }
    int64_t best = tl_i64(buy ? TL_OFF_ASK_PX : TL_OFF_BID_PX);
    int64_t price = tl_floor_to(best > 0 ? best : trade_price, tl_i64(TL_OFF_TICK_SIZE));
    if (price <= 0 || !tl_notional_at_least(price, qty, tl_i64(TL_OFF_MIN_NOTIONAL))) {
        st->skipped++;
        st->target = st->held;
        dirty = 1;
        return;
    }
    int64_t id = tl_submit(buy ? TL_SIDE_BUY : TL_SIDE_SELL, TL_IOC, price, qty);
    if (id > 0) {
        st->in_flight = id;
        st->orders++;
        dirty = 1;
    } else {
        st->submit_failed++;
    }
}

static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b < 0 ? TL_I64_MIN : TL_I64_MAX;
    }
    return r;
}

static void on_order(void) {
    if (st->in_flight == 0 || tl_u64(TL_ORD_CLIENT_ID) != (uint64_t)st->in_flight) {
        return;
    }
    if (tl_u32(TL_ORD_KIND) == TL_ORD_FILLED) {
        int64_t qty = tl_i64(TL_ORD_FILL_QTY);
        int64_t signed_qty;
        if (tl_u32(TL_ORD_SIDE) == TL_SIDE_BUY) {
            signed_qty = qty;
        } else {
            signed_qty = qty == TL_I64_MIN ? TL_I64_MAX : -qty; /* saturating, as native */
        }
        st->held = sat_add(st->held, signed_qty);
        dirty = 1;
    }
    if (tl_u32(TL_ORD_FINAL) != 0) {
        st->in_flight = 0;
        dirty = 1;
    }
}

TL_EXPORT(tl_on_event) int32_t tl_on_event(void) {
    switch (tl_u32(TL_OFF_KIND)) {
    case TL_EV_TRADE: {
        int64_t price = tl_i64(TL_TRADE_PRICE);
        switch (push_price(price)) {
        case CROSS_ABOVE:
            st->crosses_above++;
            st->target = st->qty;
            dirty = 1;
            break;
        case CROSS_BELOW:
            st->crosses_below++;
            st->target = 0;
            dirty = 1;
            break;
        default:
            break;
        }
        reconcile(price);
        since_save++;
        break;
    }
    case TL_EV_ORDER:
        on_order();
        break;
    default:
        return 0;
    }
    if (dirty || since_save >= SAVE_EVERY) {
        save();
    }
    return 0;
}

TL_EXPORT(tl_restore_area) int32_t tl_restore_area(int32_t len) {
    if (len < 0 || (uint32_t)len > sizeof restore_area) {
        return 0;
    }
    return (int32_t)(uintptr_t)restore_area;
}

TL_EXPORT(tl_restore) int32_t tl_restore(int32_t len) {
    const sma_state *s = (const sma_state *)restore_area;
    if (len < (int32_t)sizeof(sma_state) || (uint32_t)len > sizeof restore_area ||
        s->magic != STATE_MAGIC || s->fast != st->fast || s->slow != st->slow ||
        s->regime < -1 || s->regime > 1 || s->head >= s->slow || s->count > s->slow) {
        tl_log_str("sma_cross: saved state does not match these parameters; starting fresh");
        return 1;
    }
    int with_ring = s->ring_saved == s->slow && (uint32_t)len == sizeof(sma_state) + s->slow * 8;
    if (!with_ring && (s->ring_saved != 0 || (uint32_t)len != sizeof(sma_state))) {
        tl_log_str("sma_cross: saved state has the wrong length; starting fresh");
        return 1;
    }
    int64_t qty = st->qty; /* the parameters given now */
    memcpy(st, s, with_ring ? (uint32_t)len : sizeof(sma_state));
    st->qty = qty;
    if (!with_ring) {
        /* The windows refill from the next trades; position, order and regime carry on. */
        st->head = 0;
        st->count = 0;
        st->fast_sum = (tl_i128){0, 0};
        st->slow_sum = (tl_i128){0, 0};
    }
    return 0;
}
