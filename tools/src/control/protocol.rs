//! The control protocol's requests (`CtlRequest`, one JSON object a line) and reply builders.

use anyhow::Result;
use serde_json::{json, Map, Value};

/// Parses `KEY=VALUE` (both trimmed, the key non-empty).
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

/// Whether a request line looks like HTTP (a request line, or any line naming `HTTP/1.` or
/// HTTP/2's preface): such a connection is refused and closed.
pub fn looks_like_http(line: &[u8]) -> bool {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"OPTIONS ",
        b"DELETE ",
        b"CONNECT ",
        b"PATCH ",
        b"TRACE ",
        b"PRI * ",
    ];
    METHODS.iter().any(|m| line.starts_with(m))
        || line.windows(7).any(|w| w == b"HTTP/1.")
        || line.windows(6).any(|w| w == b"HTTP/2")
}

/// A control request, as `tickline ctl` sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlRequest {
    /// The status tree.
    Status,
    /// Start trading a symbol.
    StartTrading {
        /// The symbol (any case).
        symbol: String,
        /// The strategy (default: the config's).
        strategy: Option<String>,
        /// Its `chunks` parameter.
        chunks: Option<u64>,
        /// Further `key = value` parameters.
        params: Vec<(String, String)>,
    },
    /// Stop trading a symbol.
    StopTrading {
        /// The symbol.
        symbol: String,
    },
    /// Change a running strategy's parameters.
    Set {
        /// The symbol.
        symbol: String,
        /// `key = value` pairs.
        params: Vec<(String, String)>,
    },
    /// Trading state HALTED.
    Halt,
    /// Trading state ACTIVE.
    Resume,
    /// The kill switch.
    Kill,
    /// Deploy a WebAssembly strategy on a symbol.
    Deploy(DeployRequest),
    /// Stop a symbol's WebAssembly strategy.
    Undeploy {
        /// The symbol.
        symbol: String,
    },
}

/// `deploy`: the module travels in the request (base64 in the JSON line), so `ctl` works from
/// another host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployRequest {
    /// The symbol.
    pub symbol: String,
    /// The module's name (its file name), for status.
    pub name: String,
    /// The module (a WebAssembly binary).
    pub wasm: Vec<u8>,
    /// The guest's `key = value` parameters (and the host's `fuel`, `memory_mb`, …).
    pub params: Vec<(String, String)>,
    /// Fuel per callback.
    pub fuel: Option<u64>,
    /// Linear-memory cap, MiB.
    pub memory_mb: Option<u64>,
    /// Replace a strategy already trading the symbol (its orders are canceled first).
    pub replace: bool,
}

/// The command names, as the protocol spells them.
pub const COMMANDS: &[&str] = &[
    "status",
    "start-trading",
    "stop-trading",
    "set",
    "halt",
    "resume",
    "kill",
    "deploy",
    "undeploy",
];

fn params_json(params: &[(String, String)]) -> Value {
    Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

impl CtlRequest {
    /// The request as its JSON object.
    pub fn to_json(&self) -> Value {
        match self {
            CtlRequest::Status => json!({"cmd": "status"}),
            CtlRequest::StartTrading {
                symbol,
                strategy,
                chunks,
                params,
            } => {
                let mut m = Map::new();
                m.insert("cmd".into(), "start-trading".into());
                m.insert("symbol".into(), symbol.as_str().into());
                if let Some(s) = strategy {
                    m.insert("strategy".into(), s.as_str().into());
                }
                if let Some(c) = chunks {
                    m.insert("chunks".into(), (*c).into());
                }
                if !params.is_empty() {
                    m.insert("params".into(), params_json(params));
                }
                Value::Object(m)
            }
            CtlRequest::StopTrading { symbol } => {
                json!({"cmd": "stop-trading", "symbol": symbol})
            }
            CtlRequest::Set { symbol, params } => {
                json!({"cmd": "set", "symbol": symbol, "params": params_json(params)})
            }
            CtlRequest::Halt => json!({"cmd": "halt"}),
            CtlRequest::Resume => json!({"cmd": "resume"}),
            CtlRequest::Kill => json!({"cmd": "kill"}),
            CtlRequest::Deploy(d) => {
                use base64::Engine as _;
                let mut m = Map::new();
                // `cmd` first: the line reader allows a deploy line its larger limit by its start.
                m.insert("cmd".into(), "deploy".into());
                m.insert("symbol".into(), d.symbol.as_str().into());
                m.insert("name".into(), d.name.as_str().into());
                if !d.params.is_empty() {
                    m.insert("params".into(), params_json(&d.params));
                }
                if let Some(f) = d.fuel {
                    m.insert("fuel".into(), f.into());
                }
                if let Some(mb) = d.memory_mb {
                    m.insert("memory_mb".into(), mb.into());
                }
                if d.replace {
                    m.insert("replace".into(), true.into());
                }
                let b64 = base64::engine::general_purpose::STANDARD.encode(&d.wasm);
                m.insert("wasm".into(), b64.into());
                Value::Object(m)
            }
            CtlRequest::Undeploy { symbol } => json!({"cmd": "undeploy", "symbol": symbol}),
        }
    }

    /// Parses a request object; the error says what is wrong in words.
    pub fn from_json(v: &Value) -> Result<CtlRequest, String> {
        let Some(obj) = v.as_object() else {
            return Err("a request is a JSON object, such as {\"cmd\":\"status\"}".into());
        };
        let cmd = match obj.get("cmd") {
            Some(Value::String(c)) => c.as_str(),
            Some(_) => return Err("`cmd` must be a string".into()),
            None => return Err(format!("missing `cmd`: one of {}", COMMANDS.join(", "))),
        };
        let allowed: &[&str] = match cmd {
            "status" | "halt" | "resume" | "kill" => &[],
            "start-trading" => &["symbol", "strategy", "chunks", "params"],
            "stop-trading" => &["symbol"],
            "set" => &["symbol", "params"],
            "deploy" => &[
                "symbol",
                "name",
                "wasm",
                "params",
                "fuel",
                "memory_mb",
                "replace",
            ],
            "undeploy" => &["symbol"],
            other => {
                return Err(format!(
                    "unknown command `{other}`: expected one of {}",
                    COMMANDS.join(", ")
                ))
            }
        };
        for k in obj.keys() {
            if k != "cmd" && k != "id" && !allowed.contains(&k.as_str()) {
                return Err(if allowed.is_empty() {
                    format!("unknown field `{k}`: {cmd} takes none")
                } else {
                    format!(
                        "unknown field `{k}` for {cmd}: expected {}",
                        allowed.join(", ")
                    )
                });
            }
        }
        let symbol = || -> Result<String, String> {
            match obj.get("symbol") {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.to_ascii_uppercase()),
                Some(_) => Err(format!("{cmd}: `symbol` must be a non-empty string")),
                None => Err(format!("{cmd}: missing `symbol`")),
            }
        };
        let params = || -> Result<Vec<(String, String)>, String> {
            let Some(p) = obj.get("params") else {
                return Ok(Vec::new());
            };
            let Some(p) = p.as_object() else {
                return Err(format!(
                    "{cmd}: `params` must be an object of KEY: VALUE, such as {{\"chunks\": 3}}"
                ));
            };
            p.iter()
                .map(|(k, v)| {
                    if k.trim().is_empty() {
                        return Err(format!("{cmd}: a parameter with an empty name"));
                    }
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(format!(
                                "{cmd}: parameter `{k}`: a string, number or boolean"
                            ))
                        }
                    };
                    Ok((k.clone(), text))
                })
                .collect()
        };
        Ok(match cmd {
            "status" => CtlRequest::Status,
            "halt" => CtlRequest::Halt,
            "resume" => CtlRequest::Resume,
            "kill" => CtlRequest::Kill,
            "stop-trading" => CtlRequest::StopTrading { symbol: symbol()? },
            "undeploy" => CtlRequest::Undeploy { symbol: symbol()? },
            "deploy" => {
                use base64::Engine as _;
                let wasm =
                    match obj.get("wasm") {
                        Some(Value::String(b)) => base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .map_err(|e| format!("deploy: `wasm` is not base64: {e}"))?,
                        Some(_) => return Err("deploy: `wasm` must be a base64 string".into()),
                        None => return Err("deploy: missing `wasm` (the module, base64)".into()),
                    };
                let num = |k: &str| -> Result<Option<u64>, String> {
                    match obj.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                            format!("deploy: `{k}` = {v}: expected an unsigned integer")
                        }),
                    }
                };
                CtlRequest::Deploy(DeployRequest {
                    symbol: symbol()?,
                    name: match obj.get("name") {
                        None | Some(Value::Null) => "module.wasm".into(),
                        Some(Value::String(n)) if !n.is_empty() && n.len() <= 256 => n.clone(),
                        Some(_) => {
                            return Err("deploy: `name` must be a string of 1 to 256 bytes".into())
                        }
                    },
                    wasm,
                    params: params()?,
                    fuel: num("fuel")?,
                    memory_mb: num("memory_mb")?,
                    replace: match obj.get("replace") {
                        None | Some(Value::Null) => false,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => return Err("deploy: `replace` must be true or false".into()),
                    },
                })
            }
            "set" => {
                let params = params()?;
                if params.is_empty() {
                    return Err("set: at least one parameter, KEY=VALUE".into());
                }
                CtlRequest::Set {
                    symbol: symbol()?,
                    params,
                }
            }
            _ => CtlRequest::StartTrading {
                symbol: symbol()?,
                strategy: match obj.get("strategy") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err("start-trading: `strategy` must be a string".into()),
                },
                chunks: match obj.get("chunks") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().filter(|&c| c > 0).ok_or_else(|| {
                        format!("start-trading: `chunks` = {v}: expected a positive integer")
                    })?),
                },
                params: params()?,
            },
        })
    }
}

pub(super) fn error_reply(why: &str, id: Option<Value>) -> Value {
    let mut v = json!({"ok": false, "error": why});
    if let (Some(id), Some(obj)) = (id, v.as_object_mut()) {
        obj.insert("id".into(), id);
    }
    v
}

pub(super) fn done_reply(message: String, warnings: Vec<String>) -> Value {
    json!({"ok": true, "message": message, "warnings": warnings})
}
