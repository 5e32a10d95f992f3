//! Binance's live subscription requests: `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
//! `SET_PROPERTY` and `GET_PROPERTY`, answered the way the venue answers them.
//!
//! Responses are written by hand so their key order is Binance's (`{"result":null,"id":1}`),
//! not serde_json's sorted one.

use super::streams::{valid_stream_name, MAX_STREAMS_PER_CONNECTION};
use serde_json::Value;

/// A connection's subscription state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SubState {
    /// Subscribed stream names, in subscription order, no duplicates.
    pub(crate) subs: Vec<String>,
    /// Combined payloads (`{"stream":..,"data":..}`) or bare ones.
    pub(crate) combined: bool,
}

/// What a request did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Streams added.
    pub(crate) added: usize,
    /// Streams removed.
    pub(crate) removed: usize,
    /// The request was refused (an error object was answered).
    pub(crate) error: bool,
}

impl Outcome {
    /// True when the subscription set changed.
    pub(crate) fn changed(&self) -> bool {
        self.added > 0 || self.removed > 0
    }
}

const METHODS: &str =
    "expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`";

/// Handles one text message from a client; returns the response text and what changed.
pub(crate) fn handle(state: &mut SubState, text: &[u8]) -> (String, Outcome) {
    let mut out = Outcome::default();
    let mut fail = |code: i64, msg: &str, id: Option<&str>| {
        out.error = true;
        error_text(code, msg, id)
    };
    let v: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => return (fail(3, &format!("Invalid JSON: {e}"), None), out),
    };
    let Some(obj) = v.as_object() else {
        return (
            fail(2, "Invalid request: expected a JSON object", None),
            out,
        );
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "method" | "params" | "id") {
            return (
                fail(2, &format!("Invalid request: unknown field `{k}`"), None),
                out,
            );
        }
    }
    let id = match obj.get("id") {
        Some(id @ Value::Null) => id.to_string(),
        Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => id.to_string(),
        Some(id @ Value::String(s))
            if s.len() <= 36 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            id.to_string()
        }
        _ => {
            return (
                fail(
                    2,
                    "Invalid request: request ID must be an unsigned integer",
                    None,
                ),
                out,
            )
        }
    };
    let id = Some(id.as_str());
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return (fail(2, "Invalid request: method must be a string", id), out),
        None => return (fail(2, "Invalid request: missing field `method`", id), out),
    };
    let params = obj.get("params");
    let resp = match method {
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            let names = match stream_params(params) {
                Ok(n) => n,
                Err(msg) => return (fail(2, &msg, id), out),
            };
            if method == "SUBSCRIBE" {
                let new: Vec<&str> = {
                    let mut new: Vec<&str> = Vec::new();
                    for n in &names {
                        if !state.subs.iter().any(|s| s == n) && !new.contains(n) {
                            new.push(n);
                        }
                    }
                    new
                };
                if state.subs.len() + new.len() > MAX_STREAMS_PER_CONNECTION {
                    return (
                        fail(
                            2,
                            &format!(
                                "Invalid request: a connection can listen to at most \
                                 {MAX_STREAMS_PER_CONNECTION} streams"
                            ),
                            id,
                        ),
                        out,
                    );
                }
                out.added = new.len();
                state.subs.extend(new.into_iter().map(str::to_string));
            } else {
                let before = state.subs.len();
                state.subs.retain(|s| !names.contains(&s.as_str()));
                out.removed = before - state.subs.len();
            }
            result_text("null", id)
        }
        "LIST_SUBSCRIPTIONS" => {
            let list = serde_json::to_string(&state.subs).unwrap_or_else(|_| "[]".into());
            result_text(&list, id)
        }
        "SET_PROPERTY" => {
            let p = params.and_then(Value::as_array);
            match p.map(|p| p.as_slice()) {
                Some([Value::String(name), value]) if name == "combined" => match value {
                    Value::Bool(b) => {
                        state.combined = *b;
                        result_text("null", id)
                    }
                    _ => return (fail(1, "Invalid value type: expected Boolean", id), out),
                },
                Some([Value::String(_), _]) => return (fail(0, "Unknown property", id), out),
                Some([_, _]) => {
                    return (
                        fail(2, "Invalid request: property name must be a string", id),
                        out,
                    )
                }
                _ => {
                    return (
                        fail(2, "Invalid request: property name must be a string", id),
                        out,
                    )
                }
            }
        }
        "GET_PROPERTY" => {
            let p = params.and_then(Value::as_array);
            match p.map(|p| p.as_slice()) {
                Some([Value::String(name)]) if name == "combined" => {
                    result_text(if state.combined { "true" } else { "false" }, id)
                }
                Some([Value::String(_)]) => return (fail(0, "Unknown property", id), out),
                _ => {
                    return (
                        fail(2, "Invalid request: property name must be a string", id),
                        out,
                    )
                }
            }
        }
        other => {
            let other = other.replace('`', "'");
            return (
                fail(
                    2,
                    &format!("Invalid request: unknown variant `{other}`, {METHODS}"),
                    id,
                ),
                out,
            );
        }
    };
    (resp, out)
}

/// The stream names of a `SUBSCRIBE`/`UNSUBSCRIBE`, or the error message.
fn stream_params(params: Option<&Value>) -> Result<Vec<&str>, String> {
    let Some(arr) = params.and_then(Value::as_array) else {
        return Err("Invalid request: params must be an array of stream names".into());
    };
    let mut names = Vec::with_capacity(arr.len());
    for p in arr {
        let Some(s) = p.as_str() else {
            return Err("Invalid request: stream names must be strings".into());
        };
        if !valid_stream_name(s) {
            let s = s.replace('`', "'");
            return Err(format!("Invalid request: invalid stream name `{s}`"));
        }
        names.push(s);
    }
    Ok(names)
}

fn result_text(result: &str, id: Option<&str>) -> String {
    format!("{{\"result\":{result},\"id\":{}}}", id.unwrap_or("null"))
}

fn error_text(code: i64, msg: &str, id: Option<&str>) -> String {
    let msg = serde_json::to_string(msg).unwrap_or_else(|_| "\"\"".into());
    match id {
        Some(id) => format!("{{\"code\":{code},\"msg\":{msg},\"id\":{id}}}"),
        None => format!("{{\"code\":{code},\"msg\":{msg}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut SubState, req: &str) -> (Value, Outcome) {
        let (text, o) = handle(state, req.as_bytes());
        (serde_json::from_str(&text).unwrap(), o)
    }

    #[test]
    fn subscribe_list_unsubscribe() {
        let mut st = SubState::default();
        let (text, o) = handle(
            &mut st,
            br#"{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth","btcusdt@trade"],"id":1}"#,
        );
        assert_eq!(text, r#"{"result":null,"id":1}"#);
        assert_eq!(o.added, 2);
        let (v, _) = run(&mut st, r#"{"method":"LIST_SUBSCRIPTIONS","id":"abc"}"#);
        assert_eq!(
            v,
            serde_json::json!({"result":["btcusdt@trade","btcusdt@depth"],"id":"abc"})
        );
        let (v, o) = run(
            &mut st,
            r#"{"method":"UNSUBSCRIBE","params":["btcusdt@depth"],"id":2}"#,
        );
        assert_eq!(v["result"], Value::Null);
        assert_eq!(o.removed, 1);
        assert_eq!(st.subs, ["btcusdt@trade"]);
    }

    #[test]
    fn properties() {
        let mut st = SubState::default();
        let (v, _) = run(
            &mut st,
            r#"{"method":"SET_PROPERTY","params":["combined",true],"id":5}"#,
        );
        assert_eq!(v["result"], Value::Null);
        assert!(st.combined);
        let (text, _) = handle(
            &mut st,
            br#"{"method":"GET_PROPERTY","params":["combined"],"id":2}"#,
        );
        assert_eq!(text, r#"{"result":true,"id":2}"#);
        let (v, o) = run(
            &mut st,
            r#"{"method":"SET_PROPERTY","params":["combined",1],"id":5}"#,
        );
        assert_eq!(v["code"], 1);
        assert!(o.error);
        let (v, _) = run(
            &mut st,
            r#"{"method":"GET_PROPERTY","params":["other"],"id":5}"#,
        );
        assert_eq!(v["code"], 0);
    }

    #[test]
    fn errors() {
        let mut st = SubState::default();
        for (req, code) in [
            ("not json", 3),
            ("[1]", 2),
            (r#"{"method":"FOO","id":1}"#, 2),
            (r#"{"params":[],"id":1}"#, 2),
            (
                r#"{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":1}"#,
                2,
            ),
            (r#"{"method":"SUBSCRIBE","params":"x","id":1}"#, 2),
            (r#"{"method":"SUBSCRIBE","params":[],"id":1.5}"#, 2),
            (r#"{"method":"SUBSCRIBE","params":[],"id":1,"x":2}"#, 2),
        ] {
            let (v, o) = run(&mut st, req);
            assert_eq!(v["code"], code, "{req}: {v}");
            assert!(v["msg"].is_string());
            assert!(o.error && !o.changed());
        }
        let (v, _) = run(&mut st, r#"{"method":"FOO","id":7}"#);
        assert_eq!(v["id"], 7);
        assert!(v["msg"].as_str().unwrap().contains("unknown variant `FOO`"));
        assert!(st.subs.is_empty());
    }

    #[test]
    fn stream_limit() {
        let mut st = SubState::default();
        let names: Vec<String> = (0..=MAX_STREAMS_PER_CONNECTION)
            .map(|i| format!("s{i}@trade"))
            .collect();
        let req = serde_json::json!({"method":"SUBSCRIBE","params":names,"id":1}).to_string();
        let (v, o) = run(&mut st, &req);
        assert_eq!(v["code"], 2);
        assert_eq!(o.added, 0);
    }
}
