//! WebAssembly strategies in the `tickline` binary: a module named by `--strategy-wasm` or the
//! config's `[strategy] wasm` for replay and `run`, and the registry of deployed instances whose
//! counters the metrics thread ships (`wasm.<symbol>.*`). The host itself is the `wasm-host`
//! crate; `tickline ctl deploy` is in [`crate::control`].

use crate::runtime::StrategyFactory;
use anyhow::Result;
use std::path::Path;
use std::sync::{Arc, Mutex};
use wasm_host::{DeployConfig, WasmModule, WasmStats, WasmStrategy};

/// Deployed instances by symbol, for the metrics thread.
static REGISTRY: Mutex<Vec<(String, Arc<WasmStats>)>> = Mutex::new(Vec::new());

/// Notes `symbol`'s instance counters (replacing an earlier deployment's).
pub fn register(symbol: &str, stats: Arc<WasmStats>) {
    if let Ok(mut r) = REGISTRY.lock() {
        r.retain(|(s, _)| s != symbol);
        r.push((symbol.to_string(), stats));
    }
}

/// Forgets `symbol`'s instance.
pub fn unregister(symbol: &str) {
    if let Ok(mut r) = REGISTRY.lock() {
        r.retain(|(s, _)| s != symbol);
    }
}

/// The deployed instances, `(symbol, counters)`.
pub fn registered() -> Vec<(String, Arc<WasmStats>)> {
    REGISTRY.lock().map(|r| r.clone()).unwrap_or_default()
}

/// Compiles `path` once and deploys it once with `params` (the guest's `key = value` pairs and
/// the host's `fuel`, `memory_mb`, …), so a bad module or parameter fails here with its reason;
/// then a factory handing out that instance first and fresh instances of the same compiled
/// module after (one per symbol and replay pass).
pub fn factory(path: &Path, params: &[(String, String)]) -> Result<StrategyFactory> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("--strategy-wasm {}: {e}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let cfg = DeployConfig::from_pairs(params).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let module = WasmModule::compile(&name, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let first =
        WasmStrategy::deploy(module.clone(), cfg.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let first = Mutex::new(Some(first));
    Ok(StrategyFactory(Box::new(move || {
        let ready = first.lock().ok().and_then(|mut f| f.take());
        Box::new(
            ready.unwrap_or_else(|| WasmStrategy::deploy_or_halted(module.clone(), cfg.clone())),
        )
    })))
}

/// The metrics of every registered instance as StatsD lines under `prefix`: counters (deltas
/// since `prev`, which is updated) and gauges.
pub fn statsd_lines(prefix: &str, prev: &mut Vec<(String, [u64; 6])>, out: &mut Vec<String>) {
    use std::sync::atomic::Ordering::Relaxed;
    for (sym, s) in registered() {
        let now = [
            s.callbacks.load(Relaxed),
            s.stops_total(),
            s.restarts.load(Relaxed),
            s.refusals_total(),
            s.orders.load(Relaxed),
            s.fuel_total.load(Relaxed),
        ];
        let before = match prev.iter_mut().find(|p| p.0 == sym) {
            Some(p) => std::mem::replace(&mut p.1, now),
            None => {
                prev.push((sym.clone(), now));
                [0; 6]
            }
        };
        let names = [
            "callbacks",
            "traps",
            "restarts",
            "refusals",
            "orders",
            "fuel",
        ];
        for i in 0..names.len() {
            // A redeployment starts its counters again: never a negative delta.
            let d = now[i].saturating_sub(before[i]);
            out.push(format!("{prefix}wasm.{sym}.{}:{d}|c", names[i]));
        }
        out.push(format!(
            "{prefix}wasm.{sym}.memory_bytes:{}|g",
            s.memory_bytes.load(Relaxed)
        ));
        out.push(format!(
            "{prefix}wasm.{sym}.fuel_last:{}|g",
            s.fuel_last.load(Relaxed)
        ));
        out.push(format!(
            "{prefix}wasm.{sym}.halted:{}|g",
            s.halted.load(Relaxed)
        ));
    }
}
