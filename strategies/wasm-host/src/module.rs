//! Deploy-time work, off the core thread: the shared wasmtime engine, a module's validation and
//! compilation ([`WasmModule::compile`]), and the deployment's limits ([`DeployConfig`]).
//!
//! A module is refused, naming the reason, when it is too large, is not valid WebAssembly,
//! imports anything but the `tickline` host calls (WASI included: the import is named), lacks a
//! required export or has one of the wrong type. Its ABI version is checked when the first
//! instance starts ([`crate::WasmStrategy::deploy`]), both versions named on a mismatch.

use crate::abi;
use crate::guest::HostState;
use engine::strategy::{ParamError, Params};
use engine::supervisor::RestartPolicy;
use std::sync::{Arc, OnceLock};
use wasmtime::{Config, Engine, ExternType, InstancePre, Linker, Module, ValType};

/// Largest module accepted, bytes.
pub const MAX_MODULE_BYTES: usize = 16 * 1024 * 1024;

/// Default fuel per callback (about one unit per wasm instruction: tens of microseconds).
pub const DEFAULT_FUEL: u64 = 100_000;
/// Default linear-memory cap, MiB.
pub const DEFAULT_MEMORY_MB: u32 = 16;
/// Default cap on orders per callback.
pub const DEFAULT_ORDERS_PER_CALLBACK: u32 = 8;
/// Largest `--fuel`.
pub const MAX_FUEL: u64 = 1_000_000_000;
/// Largest `--memory-mb`.
pub const MAX_MEMORY_MB: u32 = 1024;

/// The imports a guest may have (module `tickline`): name, parameters, results.
const HOST_CALLS: &[(&str, &[ValType], &[ValType])] = &[
    (
        "tl_submit",
        &[ValType::I32, ValType::I32, ValType::I64, ValType::I64],
        &[ValType::I64],
    ),
    ("tl_cancel", &[ValType::I64], &[ValType::I32]),
    ("tl_cancel_all", &[], &[ValType::I32]),
    (
        "tl_set_timer",
        &[ValType::I64, ValType::I64],
        &[ValType::I32],
    ),
    (
        "tl_save_state",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
    ),
    ("tl_log", &[ValType::I32, ValType::I32], &[]),
];

/// The function exports a guest must have: name, parameters, results.
const REQUIRED_EXPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("tl_abi_version", &[], &[ValType::I32]),
    ("tl_buffer", &[], &[ValType::I32]),
    ("tl_init", &[ValType::I32], &[ValType::I32]),
    ("tl_on_event", &[], &[ValType::I32]),
];

/// Optional exports (restart from the last saved state).
const OPTIONAL_EXPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("tl_restore_area", &[ValType::I32], &[ValType::I32]),
    ("tl_restore", &[ValType::I32], &[ValType::I32]),
];

/// The process's wasmtime engine: Cranelift, fuel metering on, a 256 KiB wasm stack, nothing
/// else (no WASI, no threads, no GC proposals). Built once.
pub fn shared_engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut c = Config::new();
            c.consume_fuel(true);
            c.max_wasm_stack(256 * 1024);
            Engine::new(&c).map_err(|e| format!("cannot start the wasm engine: {e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Limits and parameters of one deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployConfig {
    /// Parameters handed to `tl_init` as `key=value` lines.
    pub params: Vec<(String, String)>,
    /// Fuel per callback (the CPU budget).
    pub fuel: u64,
    /// Fuel for instantiation, `tl_init` and `tl_restore` together.
    pub init_fuel: u64,
    /// Linear-memory cap, bytes.
    pub memory_bytes: usize,
    /// Orders per callback.
    pub orders_per_callback: u32,
    /// Table elements cap.
    pub table_elements: usize,
    /// Restart intensity (the same policy as native traders).
    pub policy: RestartPolicy,
    /// The channels the guest hears ([`engine::strategy::Strategy::channels`]); empty (the
    /// default): every kind of its symbol. Each event routed to the guest is a call into it, so a
    /// guest that reads only trades should be deployed with `channels=trade`.
    pub channels: Vec<String>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            params: Vec::new(),
            fuel: DEFAULT_FUEL,
            init_fuel: 100 * DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_MB as usize * 1024 * 1024,
            orders_per_callback: DEFAULT_ORDERS_PER_CALLBACK,
            table_elements: 10_000,
            policy: RestartPolicy::default(),
            channels: Vec::new(),
        }
    }
}

impl DeployConfig {
    /// A deployment from `key = value` pairs: the host's own keys (`fuel`, `memory_mb`,
    /// `orders_per_callback`, `max_restarts`, `restart_window_ms`, and `channels`, a
    /// comma-separated list of channel patterns such as `trade,bookTicker`) are taken out and
    /// checked; everything else is the guest's parameters, handed to `tl_init` as they are.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<DeployConfig, ParamError> {
        let mut d = DeployConfig::default();
        let host_keys = [
            "fuel",
            "memory_mb",
            "orders_per_callback",
            "max_restarts",
            "restart_window_ms",
            "channels",
        ];
        let (host, guest): (Vec<_>, Vec<_>) = pairs
            .iter()
            .cloned()
            .partition(|(k, _)| host_keys.contains(&k.as_str()));
        let mut p = Params::new(host);
        d.fuel = p.u64_in("fuel", DEFAULT_FUEL, 1_000, MAX_FUEL)?;
        d.init_fuel = d.fuel.saturating_mul(100);
        d.memory_bytes = p.u64_in(
            "memory_mb",
            DEFAULT_MEMORY_MB as u64,
            1,
            MAX_MEMORY_MB as u64,
        )? as usize
            * 1024
            * 1024;
        d.orders_per_callback = p.u64_in(
            "orders_per_callback",
            DEFAULT_ORDERS_PER_CALLBACK as u64,
            1,
            crate::guest::MAX_ORDERS_PER_CALLBACK as u64,
        )? as u32;
        d.policy = RestartPolicy::from_params(&mut p)?;
        d.channels = p.text("channels", Vec::new(), |s| {
            let list: Vec<String> = s.split(',').map(|c| c.trim().to_string()).collect();
            engine::route::parse_all(&list).map_err(|e| e.to_string())?;
            Ok(list)
        })?;
        p.finish()?;
        for (k, v) in &guest {
            if k.is_empty() || k.contains(['=', '\n']) || v.contains('\n') {
                return Err(ParamError::BadValue {
                    key: k.clone(),
                    why: "keys may not be empty or hold `=` or newlines, values no newlines".into(),
                });
            }
        }
        d.params = guest;
        if d.params_text().len() > abi::BUFFER_SIZE {
            return Err(ParamError::BadValue {
                key: "params".into(),
                why: format!("longer than {} bytes as key=value lines", abi::BUFFER_SIZE),
            });
        }
        Ok(d)
    }

    /// The parameters as `tl_init` reads them: `key=value\n` lines.
    pub fn params_text(&self) -> Vec<u8> {
        let mut t = Vec::new();
        for (k, v) in &self.params {
            t.extend_from_slice(k.as_bytes());
            t.push(b'=');
            t.extend_from_slice(v.as_bytes());
            t.push(b'\n');
        }
        t
    }
}

/// A validated, compiled module, ready to instantiate (cheap to clone: shared).
#[derive(Clone)]
pub struct WasmModule {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) has_restore: bool,
    pub(crate) bytes: usize,
}

impl std::fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmModule")
            .field("name", &self.inner.name)
            .field("bytes", &self.inner.bytes)
            .field("has_restore", &self.inner.has_restore)
            .finish_non_exhaustive()
    }
}

fn sig(params: &[ValType], results: &[ValType]) -> String {
    let l = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", l(params), l(results))
}

fn same(a: impl ExactSizeIterator<Item = ValType>, b: &[ValType]) -> bool {
    a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
}

impl WasmModule {
    /// Validates and compiles `bytes` (a binary module) named `name` (its file name, for
    /// status). Slow (milliseconds): never on the core thread.
    pub fn compile(name: &str, bytes: &[u8]) -> Result<WasmModule, String> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(format!(
                "{name}: {} bytes, more than the {MAX_MODULE_BYTES}-byte limit",
                bytes.len()
            ));
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(format!(
                "{name}: not a WebAssembly binary (no \\0asm header; compile .wat text with wat2wasm first)"
            ));
        }
        let engine = shared_engine()?;
        let module = Module::from_binary(engine, bytes)
            .map_err(|e| format!("{name}: invalid module: {e:#}"))?;
        for imp in module.imports() {
            let (m, n) = (imp.module(), imp.name());
            let allowed = HOST_CALLS.iter().find(|h| m == "tickline" && h.0 == n);
            let Some((_, params, results)) = allowed else {
                return Err(format!(
                    "{name}: imports `{m}::{n}`, which this host does not provide (a strategy may import only the `tickline` host calls: {}; no WASI)",
                    HOST_CALLS.iter().map(|h| h.0).collect::<Vec<_>>().join(", ")
                ));
            };
            match imp.ty() {
                ExternType::Func(f) if same(f.params(), params) && same(f.results(), results) => {}
                other => {
                    return Err(format!(
                        "{name}: imports `tickline::{n}` as {other:?}; the ABI's is a function {}",
                        sig(params, results)
                    ))
                }
            }
        }
        let export = |n: &str| module.exports().find(|e| e.name() == n).map(|e| e.ty());
        match export("memory") {
            Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
            Some(_) => {
                return Err(format!(
                    "{name}: export `memory` is not a 32-bit linear memory"
                ))
            }
            None => return Err(format!("{name}: missing export `memory`")),
        }
        let mut has_optional = 0;
        for (required, list) in [(true, REQUIRED_EXPORTS), (false, OPTIONAL_EXPORTS)] {
            for (n, params, results) in list {
                match export(n) {
                    Some(ExternType::Func(f))
                        if same(f.params(), params) && same(f.results(), results) =>
                    {
                        has_optional += usize::from(!required);
                    }
                    Some(_) => {
                        return Err(format!(
                            "{name}: export `{n}` must be a function {}",
                            sig(params, results)
                        ))
                    }
                    None if required => return Err(format!("{name}: missing export `{n}`")),
                    None => {}
                }
            }
        }
        if has_optional == 1 {
            return Err(format!(
                "{name}: exports only one of `tl_restore_area` and `tl_restore` (both or neither)"
            ));
        }
        let mut linker = Linker::new(engine);
        crate::guest::link(&mut linker).map_err(|e| format!("{name}: {e:#}"))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| format!("{name}: {e:#}"))?;
        Ok(WasmModule {
            inner: Arc::new(Inner {
                name: name.to_string(),
                pre,
                has_restore: has_optional == 2,
                bytes: bytes.len(),
            }),
        })
    }

    /// The name it was deployed under (its file name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Size of the binary, bytes.
    pub fn size(&self) -> usize {
        self.inner.bytes
    }

    /// True if it exports `tl_restore_area` and `tl_restore`.
    pub fn has_restore(&self) -> bool {
        self.inner.has_restore
    }
}
