/*
 * tickline_sdk.h: small helpers for C strategies built against tickline.h (ABI version 1).
 *
 * Everything here is freestanding (no libc): build with
 *   clang --target=wasm32 -nostdlib -O2 -mbulk-memory \
 *     -I strategies/wasm/include -I strategies/wasm/sdk/c \
 *     -Wl,--no-entry -Wl,--allow-undefined -Wl,--strip-all \
 *     -o out.wasm your_strategy.c strategies/wasm/sdk/c/tickline_sdk.c
 * (strategies/wasm/build.sh does exactly that and checks that the module imports nothing but
 * "tickline" functions). The exports are the functions marked TL_EXPORT (export_name), plus
 * memory; --allow-undefined turns the TL_IMPORT declarations into "tickline" imports (any other
 * undefined symbol would become an "env" import, which the host refuses and build.sh reports).
 * -mbulk-memory makes memcpy/memset single memory.copy/memory.fill instructions.
 *
 * What it gives you:
 *   - reading the context block and the event record at their ABI offsets (tl_i64, tl_u32, ...);
 *   - exact fixed-point arithmetic without __int128 multiplication (which would need
 *     compiler-rt, absent on Debian): the minimum-notional check price*qty/1e8 >= min_notional,
 *     rounding down to the tick or the lot, a price offset in basis points, and a small signed
 *     128-bit accumulator for running sums;
 *   - the "key=value\n" parameter text parsed exactly like the engine's Params: decimals to
 *     1e-8 fixed point (engine::fixed::parse_fixed), unsigned integers in a range, unknown keys
 *     refused;
 *   - a bump allocator over linear memory (tl_alloc) for buffers sized by a parameter;
 *   - tl_logf-style messages without printf (tl_msg_*).
 */
#ifndef TICKLINE_SDK_H
#define TICKLINE_SDK_H

#include <stddef.h>
#include <stdint.h>

#include "tickline.h"

#define TL_I64_MIN (-9223372036854775807LL - 1)
#define TL_I64_MAX 9223372036854775807LL
#define TL_SCALE 100000000LL /* 1e8: fixed-point units per whole */

/* The TL_BUFFER_SIZE-byte area the host writes into (what tl_buffer() returns). */
extern uint8_t tl_buf[TL_BUFFER_SIZE];

/* ---- reading records ---------------------------------------------------------------------- */

static inline int64_t tl_i64(uint32_t off) {
    return *(const int64_t *)(tl_buf + off);
}
static inline uint64_t tl_u64(uint32_t off) {
    return *(const uint64_t *)(tl_buf + off);
}
static inline uint32_t tl_u32(uint32_t off) {
    return *(const uint32_t *)(tl_buf + off);
}

/* ---- fixed-point arithmetic ----------------------------------------------------------------- */

/* a rounded down to a multiple of step (Rust's div_euclid * step); a unchanged if step <= 0. */
static inline int64_t tl_floor_to(int64_t a, int64_t step) {
    if (step <= 0) {
        return a;
    }
    int64_t q = a / step;
    if (a % step < 0) {
        q -= 1;
    }
    return q * step;
}

/* The full 128-bit product of two unsigned 64-bit numbers (no compiler-rt needed). */
typedef struct {
    uint64_t hi;
    uint64_t lo;
} tl_u128;

static inline tl_u128 tl_mul_u64(uint64_t a, uint64_t b) {
    const uint64_t m = 0xffffffffULL;
    uint64_t a0 = a & m, a1 = a >> 32, b0 = b & m, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & m) + (p10 & m);
    tl_u128 r;
    r.lo = (p00 & m) | (mid << 32);
    r.hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    return r;
}

static inline int tl_u128_lt(tl_u128 a, tl_u128 b) {
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

/*
 * Whether an order of qty at price reaches the venue's minimum notional, exactly as the engine's
 * Notional::of(price, qty) >= min_notional (price*qty/1e8 computed in 128 bits). price and qty
 * must be positive (callers refuse anything else before asking).
 */
static inline int tl_notional_at_least(int64_t price, int64_t qty, int64_t min_notional) {
    if (min_notional <= 0) {
        return 1;
    }
    /* floor(p*q / 1e8) >= m  <=>  p*q >= m*1e8 for whole m > 0. */
    return !tl_u128_lt(tl_mul_u64((uint64_t)price, (uint64_t)qty),
                       tl_mul_u64((uint64_t)min_notional, (uint64_t)TL_SCALE));
}

/*
 * price * (10000 + bps) / 10000 truncated toward zero and clamped to 64 bits, then rounded down
 * to tick: the engine's Price::offset_bps. bps must be in -10000..=10000 (the probe's range).
 */
int64_t tl_offset_bps(int64_t price, int64_t bps, int64_t tick);

/* A signed 128-bit integer, two's complement, for running sums that may pass 64 bits. */
typedef struct {
    uint64_t lo;
    int64_t hi;
} tl_i128;

static inline tl_i128 tl_i128_add(tl_i128 a, int64_t x) {
    uint64_t lo = a.lo + (uint64_t)x;
    uint64_t hi = (uint64_t)a.hi + (x < 0 ? ~0ULL : 0) + (lo < a.lo ? 1 : 0);
    a.hi = (int64_t)hi;
    a.lo = lo;
    return a;
}

static inline tl_i128 tl_i128_sub(tl_i128 a, int64_t x) {
    uint64_t lo = a.lo - (uint64_t)x;
    uint64_t hi = (uint64_t)a.hi - (x < 0 ? ~0ULL : 0) - (a.lo < (uint64_t)x ? 1 : 0);
    a.hi = (int64_t)hi;
    a.lo = lo;
    return a;
}

/* a * m modulo 2^128: exact whenever the true product fits in 128 bits. */
static inline tl_i128 tl_i128_mul_u64(tl_i128 a, uint64_t m) {
    tl_u128 low = tl_mul_u64(a.lo, m);
    tl_i128 r;
    r.lo = low.lo;
    r.hi = (int64_t)(low.hi + (uint64_t)a.hi * m);
    return r;
}

/* -1, 0 or 1 as a - b is negative, zero or positive (no overflow while |a|, |b| < 2^126). */
static inline int tl_i128_cmp(tl_i128 a, tl_i128 b) {
    if (a.hi != b.hi) {
        return a.hi < b.hi ? -1 : 1;
    }
    if (a.lo != b.lo) {
        return a.lo < b.lo ? -1 : 1;
    }
    return 0;
}

/* ---- parameters ----------------------------------------------------------------------------- */

/*
 * The parameter text the host wrote at tl_buf for tl_init: "key=value\n" lines, keys and values
 * trimmed of ASCII white space like the engine's Params; a later line for the same key wins (the
 * CLI keeps the last --param). Each getter marks its key as read; tl_params_finish refuses the
 * first key no getter read, as Params::finish does. At most TL_PARAMS_MAX keys.
 */
#define TL_PARAMS_MAX 32

typedef struct {
    const char *key;
    uint32_t key_len;
    const char *val;
    uint32_t val_len;
    int used;
} tl_param;

typedef struct {
    tl_param items[TL_PARAMS_MAX];
    uint32_t count;
} tl_params;

/* Splits the text; 0, or -1 (and a tl_log line) for a line without '=' or too many keys. */
int tl_params_parse(tl_params *p, const char *text, uint32_t len);

/* A decimal as 1e-8 fixed point (engine::fixed::parse_fixed), default when absent. 0 or -1. */
int tl_param_fixed(tl_params *p, const char *key, int64_t dflt, int64_t *out);

/* An unsigned integer in min..=max (Rust's u64::from_str, then the range). 0 or -1. */
int tl_param_u64_in(tl_params *p, const char *key, uint64_t dflt, uint64_t min, uint64_t max,
                    uint64_t *out);

/* 0, or -1 naming the first key no getter asked for. */
int tl_params_finish(const tl_params *p);

/* 0 and *out set, or -1 for text that is not -?digits(.digits)? in 1e-8 units within 64 bits. */
int tl_parse_fixed(const char *s, uint32_t len, int64_t *out);

/* ---- memory --------------------------------------------------------------------------------- */

/* Frees everything tl_alloc gave out (call at the top of tl_init: a restart re-runs it). */
void tl_alloc_reset(void);

/* n bytes, 8-aligned, zeroed, growing linear memory as needed; 0 when memory cannot grow. */
void *tl_alloc(uint32_t n);

/* ---- messages for tl_log -------------------------------------------------------------------- */

/* A line of at most 256 bytes built piece by piece, then sent with tl_msg_send. */
typedef struct {
    char text[256];
    uint32_t len;
} tl_msg;

void tl_msg_str(tl_msg *m, const char *s);
void tl_msg_bytes(tl_msg *m, const char *s, uint32_t n);
void tl_msg_i64(tl_msg *m, int64_t v);
void tl_msg_fixed(tl_msg *m, int64_t units); /* as a decimal: 100000 -> "0.001" */
void tl_msg_send(const tl_msg *m);
void tl_log_str(const char *s);

/* The compiler may emit calls to these for struct copies and zeroing; tickline_sdk.c defines them
 * so the module imports nothing but "tickline" functions. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);

#endif /* TICKLINE_SDK_H */
