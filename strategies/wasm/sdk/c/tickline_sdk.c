/*
 * tickline_sdk.c: the C SDK's code (see tickline_sdk.h). It also defines the two exports every
 * strategy needs and that never change: tl_abi_version and tl_buffer. A strategy file adds
 * tl_init and tl_on_event (and, to survive a restart with its state, tl_restore_area and
 * tl_restore).
 */
#include "tickline_sdk.h"

uint8_t tl_buf[TL_BUFFER_SIZE] __attribute__((aligned(8)));

TL_EXPORT(tl_abi_version) int32_t tl_abi_version(void) {
    return TL_ABI_VERSION;
}

TL_EXPORT(tl_buffer) int32_t tl_buffer(void) {
    return (int32_t)(uintptr_t)tl_buf;
}

/* ---- libc pieces the compiler may call ------------------------------------------------------ */
/* Built with -mbulk-memory (build.sh), these are single memory.copy / memory.fill instructions. */

void *memcpy(void *dst, const void *src, size_t n) {
    return __builtin_memcpy(dst, src, n);
}

void *memmove(void *dst, const void *src, size_t n) {
    return __builtin_memmove(dst, src, n);
}

void *memset(void *dst, int c, size_t n) {
    return __builtin_memset(dst, c, n);
}

static uint32_t tl_strlen(const char *s) {
    uint32_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

/* ---- arithmetic ----------------------------------------------------------------------------- */

int64_t tl_offset_bps(int64_t price, int64_t bps, int64_t tick) {
    uint64_t m = (uint64_t)(10000 + bps);
    /* |price| without overflowing at INT64_MIN. */
    uint64_t mag = price < 0 ? (uint64_t)0 - (uint64_t)price : (uint64_t)price;
    uint64_t a = mag / 10000, b = mag % 10000;
    /* mag*m/10000 = a*m + b*m/10000 exactly; past 2^63 it is clamped anyway. */
    uint64_t r = (m != 0 && a > (uint64_t)TL_I64_MAX / m) ? (uint64_t)TL_I64_MAX + 1
                                                          : a * m + b * m / 10000;
    int64_t scaled;
    if (price >= 0) {
        scaled = r > (uint64_t)TL_I64_MAX ? TL_I64_MAX : (int64_t)r;
    } else {
        scaled = r >= (uint64_t)TL_I64_MAX + 1 ? TL_I64_MIN : -(int64_t)r;
    }
    return tl_floor_to(scaled, tick);
}

/* ---- parameters ----------------------------------------------------------------------------- */

static int tl_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void tl_trim(const char **s, uint32_t *n) {
    while (*n && tl_is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && tl_is_space((*s)[*n - 1])) {
        (*n)--;
    }
}

static int tl_eq(const char *a, uint32_t an, const char *b, uint32_t bn) {
    if (an != bn) {
        return 0;
    }
    for (uint32_t i = 0; i < an; i++) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

int tl_params_parse(tl_params *p, const char *text, uint32_t len) {
    p->count = 0;
    uint32_t i = 0;
    while (i < len) {
        uint32_t start = i;
        while (i < len && text[i] != '\n') {
            i++;
        }
        const char *line = text + start;
        uint32_t n = i - start;
        i++; /* past the newline */
        tl_trim(&line, &n);
        if (n == 0) {
            continue;
        }
        uint32_t eq = 0;
        while (eq < n && line[eq] != '=') {
            eq++;
        }
        if (eq == n) {
            tl_msg m = {{0}, 0};
            tl_msg_str(&m, "parameter line without '=': ");
            tl_msg_bytes(&m, line, n);
            tl_msg_send(&m);
            return -1;
        }
        const char *key = line, *val = line + eq + 1;
        uint32_t key_len = eq, val_len = n - eq - 1;
        tl_trim(&key, &key_len);
        tl_trim(&val, &val_len);
        tl_param *slot = 0;
        for (uint32_t k = 0; k < p->count; k++) {
            if (tl_eq(p->items[k].key, p->items[k].key_len, key, key_len)) {
                slot = &p->items[k]; /* a later line for the same key wins */
            }
        }
        if (!slot) {
            if (p->count == TL_PARAMS_MAX) {
                tl_log_str("too many parameters");
                return -1;
            }
            slot = &p->items[p->count++];
        }
        slot->key = key;
        slot->key_len = key_len;
        slot->val = val;
        slot->val_len = val_len;
        slot->used = 0;
    }
    return 0;
}

static tl_param *tl_param_take(tl_params *p, const char *key) {
    uint32_t n = tl_strlen(key);
    for (uint32_t k = 0; k < p->count; k++) {
        if (tl_eq(p->items[k].key, p->items[k].key_len, key, n)) {
            p->items[k].used = 1;
            return &p->items[k];
        }
    }
    return 0;
}

static void tl_param_bad(const tl_param *it, const char *why) {
    tl_msg m = {{0}, 0};
    tl_msg_bytes(&m, it->key, it->key_len);
    tl_msg_str(&m, ": ");
    tl_msg_str(&m, why);
    tl_msg_str(&m, " (got \"");
    tl_msg_bytes(&m, it->val, it->val_len);
    tl_msg_str(&m, "\")");
    tl_msg_send(&m);
}

int tl_parse_fixed(const char *s, uint32_t len, int64_t *out) {
    static const int64_t pow10[9] = {1,      10,      100,      1000,     10000,
                                     100000, 1000000, 10000000, 100000000};
    uint32_t i = 0;
    int neg = len > 0 && s[0] == '-';
    if (neg) {
        i = 1;
    }
    /* Accumulate as a negative number so that INT64_MIN units stay representable. */
    int64_t acc = 0;
    uint32_t whole = 0;
    for (; i < len && s[i] != '.'; i++, whole++) {
        int64_t d = s[i] - '0';
        if (d < 0 || d > 9) {
            return -1;
        }
        /* acc*10 - d >= INT64_MIN  <=>  acc >= (INT64_MIN + d) / 10 (C division rounds up here). */
        if (acc < (TL_I64_MIN + d) / 10) {
            return -1;
        }
        acc = acc * 10 - d;
    }
    if (whole == 0) {
        return -1; /* empty, "-", ".5" */
    }
    uint32_t frac = 0;
    if (i < len) {
        i++; /* the '.' */
        if (i == len) {
            return -1; /* "5." */
        }
        for (; i < len; i++) {
            int64_t d = s[i] - '0';
            if (d < 0 || d > 9) {
                return -1;
            }
            if (frac < 8) {
                if (acc < (TL_I64_MIN + d) / 10) {
                    return -1;
                }
                acc = acc * 10 - d;
                frac++;
            } else if (d != 0) {
                return -1; /* finer than 1e-8 */
            }
        }
    }
    int64_t p = pow10[8 - frac];
    if (acc < TL_I64_MIN / p) {
        return -1;
    }
    acc *= p;
    if (neg) {
        *out = acc;
    } else {
        if (acc == TL_I64_MIN) {
            return -1;
        }
        *out = -acc;
    }
    return 0;
}

int tl_param_fixed(tl_params *p, const char *key, int64_t dflt, int64_t *out) {
    tl_param *it = tl_param_take(p, key);
    if (!it) {
        *out = dflt;
        return 0;
    }
    if (tl_parse_fixed(it->val, it->val_len, out) != 0) {
        tl_param_bad(it, "not a decimal with at most 8 places");
        return -1;
    }
    return 0;
}

int tl_param_u64_in(tl_params *p, const char *key, uint64_t dflt, uint64_t min, uint64_t max,
                    uint64_t *out) {
    tl_param *it = tl_param_take(p, key);
    if (!it) {
        *out = dflt;
        return 0;
    }
    const char *s = it->val;
    uint32_t n = it->val_len, i = 0;
    if (n > 0 && s[0] == '+') {
        i = 1; /* Rust's u64::from_str takes a leading '+' */
    }
    if (i == n) {
        tl_param_bad(it, "not an unsigned integer");
        return -1;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (d > 9 || v > (~0ULL - d) / 10) {
            tl_param_bad(it, "not an unsigned integer");
            return -1;
        }
        v = v * 10 + d;
    }
    if (v < min || v > max) {
        tl_msg m = {{0}, 0};
        tl_msg_bytes(&m, it->key, it->key_len);
        tl_msg_str(&m, ": must be in ");
        tl_msg_i64(&m, (int64_t)min);
        tl_msg_str(&m, "..=");
        tl_msg_i64(&m, (int64_t)max);
        tl_msg_str(&m, " (got \"");
        tl_msg_bytes(&m, it->val, it->val_len);
        tl_msg_str(&m, "\")");
        tl_msg_send(&m);
        return -1;
    }
    *out = v;
    return 0;
}

int tl_params_finish(const tl_params *p) {
    for (uint32_t k = 0; k < p->count; k++) {
        if (!p->items[k].used) {
            tl_msg m = {{0}, 0};
            tl_msg_str(&m, "unknown parameter ");
            tl_msg_bytes(&m, p->items[k].key, p->items[k].key_len);
            tl_msg_send(&m);
            return -1;
        }
    }
    return 0;
}

/* ---- memory --------------------------------------------------------------------------------- */

extern uint8_t __heap_base;
static uintptr_t tl_heap_top;

void tl_alloc_reset(void) {
    tl_heap_top = ((uintptr_t)&__heap_base + 7) & ~(uintptr_t)7;
}

void *tl_alloc(uint32_t n) {
    if (tl_heap_top == 0) {
        tl_alloc_reset();
    }
    uintptr_t start = tl_heap_top;
    uintptr_t end = (start + n + 7) & ~(uintptr_t)7;
    if (end < start) {
        return 0;
    }
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have) {
        uintptr_t pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (uintptr_t)-1) {
            return 0;
        }
    }
    tl_heap_top = end;
    memset((void *)start, 0, n);
    return (void *)start;
}

/* ---- messages ------------------------------------------------------------------------------- */

void tl_msg_bytes(tl_msg *m, const char *s, uint32_t n) {
    for (uint32_t i = 0; i < n && m->len < sizeof m->text; i++) {
        m->text[m->len++] = s[i];
    }
}

void tl_msg_str(tl_msg *m, const char *s) {
    tl_msg_bytes(m, s, tl_strlen(s));
}

void tl_msg_i64(tl_msg *m, int64_t v) {
    char digits[20];
    uint32_t n = 0;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    if (v < 0) {
        tl_msg_bytes(m, "-", 1);
    }
    while (n) {
        tl_msg_bytes(m, &digits[--n], 1);
    }
}

void tl_msg_fixed(tl_msg *m, int64_t units) {
    uint64_t mag = units < 0 ? (uint64_t)0 - (uint64_t)units : (uint64_t)units;
    if (units < 0) {
        tl_msg_bytes(m, "-", 1);
    }
    tl_msg_i64(m, (int64_t)(mag / TL_SCALE));
    uint64_t frac = mag % TL_SCALE;
    if (frac) {
        char d[8];
        for (int i = 7; i >= 0; i--) {
            d[i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        uint32_t n = 8;
        while (d[n - 1] == '0') {
            n--;
        }
        tl_msg_bytes(m, ".", 1);
        tl_msg_bytes(m, d, n);
    }
}

void tl_msg_send(const tl_msg *m) {
    tl_log((int32_t)(uintptr_t)m->text, (int32_t)m->len);
}

void tl_log_str(const char *s) {
    tl_log((int32_t)(uintptr_t)s, (int32_t)tl_strlen(s));
}
