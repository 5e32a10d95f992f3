//! Pre-trade risk: the cost of one `Risk::check`, passing and denied.
//!
//! `cargo bench --bench risk -- --warm-up-time 1 --measurement-time 3`
//!
//! - `risk/check_pass`: a BTCUSDT limit buy that passes every check (and takes a rate token; the
//!   hand-driven clock advances 1 µs a call, which at 1,000,000 orders/s refills one token a call).
//! - `risk/deny_rate_limited`: an order that passes every other check and is denied by the last
//!   one, the token bucket: the longest denial path (counts the denial, `#[cold]`).
//! - `risk/deny_max_order_qty`: denied by the first limit, the shortest denial path.

use criterion::{criterion_group, criterion_main, Criterion};
use engine::event::DenyReason;
use engine::event::{OrderRequest, OrderType, Side};
use engine::fixed::{Price, Qty};
use engine::risk::{Risk, RiskInputs, RiskLimits};
use engine::symbol::SymbolId;
use std::hint::black_box;

const SYMBOLS: usize = 8;

fn inputs() -> RiskInputs {
    RiskInputs {
        position: 150_000,    // long 0.0015
        open_buy_qty: 50_000, // 0.0005
        open_sell_qty: 100_000,
        open_orders: 3,
        last_trade: Some(Price(6_183_763_000_000)), // 61837.63
    }
}

fn order() -> OrderRequest {
    OrderRequest {
        side: Side::Buy,
        price: Price(6_183_000_000_000), // 61830.00
        qty: Qty(100_000),               // 0.001
        order_type: OrderType::LimitGtc,
    }
}

fn risk_check(c: &mut Criterion) {
    let sym = SymbolId(3);
    let inp = inputs();
    let req = order();
    let mut g = c.benchmark_group("risk");

    let mut risk = Risk::new(
        SYMBOLS,
        RiskLimits {
            rate_per_sec: 1_000_000,
            burst: 1_000,
            ..RiskLimits::default()
        },
    );
    let mut now = 1_000_000_000u64;
    g.bench_function("check_pass", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(risk.check(black_box(sym), black_box(&req), black_box(&inp), now))
        })
    });
    assert_eq!(risk.denials().total(), 0, "check_pass must never be denied");

    let mut risk = Risk::new(
        SYMBOLS,
        RiskLimits {
            burst: 0,
            ..RiskLimits::default()
        },
    );
    let mut now = 1_000_000_000u64;
    g.bench_function("deny_rate_limited", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(risk.check(black_box(sym), black_box(&req), black_box(&inp), now))
        })
    });
    assert_eq!(
        risk.denials().total(),
        risk.denials().get(DenyReason::RateLimited)
    );

    let mut risk = Risk::new(SYMBOLS, RiskLimits::default());
    let big = OrderRequest {
        qty: Qty::from_int(2),
        ..req
    };
    let mut now = 1_000_000_000u64;
    g.bench_function("deny_max_order_qty", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(risk.check(black_box(sym), black_box(&big), black_box(&inp), now))
        })
    });
    assert_eq!(
        risk.denials().total(),
        risk.denials().get(DenyReason::MaxOrderQty)
    );
    g.finish();
}

criterion_group!(benches, risk_check);
criterion_main!(benches);
