//! How the simulator's order API authenticates requests: as Binance does by default
//! ([`SimAuth::Strict`]), or not at all ([`SimAuth::Lenient`], for tests that speak the raw
//! protocol with made-up signatures).
//!
//! Strict, a signed request (every method but `ping`, `time`, `userDataStream.subscribe`,
//! `userDataStream.unsubscribe` and `session.logout`) is checked the way Binance's "SIGNED
//! request security" documents it, with the simulator's own code (never `feeds::binance::api`,
//! so an engine codec bug cannot hide behind the same bug here):
//!
//! 1. `apiKey` must be one of the simulator's keys: else `-2015 Invalid API-key, IP, or
//!    permissions for action.`;
//! 2. `timestamp` must not be more than 1000 ms ahead of the server's clock (`-1021 Timestamp
//!    for this request was 1000ms ahead of the server's time.`) nor older than `recvWindow`
//!    (default 5000 ms, at most 60000; `-1021 Timestamp for this request is outside of the
//!    recvWindow.`);
//! 3. `signature` must sign the payload: every other param sorted by name, `name=value` joined
//!    with `&` (strings as sent, numbers as written): HMAC-SHA256 in hex for an HMAC key,
//!    Ed25519 in base64 for an Ed25519 key; else `-1022 Signature for this request is not
//!    valid.`
//!
//! On a connection whose `session.logon` was accepted, a request without `apiKey` and
//! `signature` is the session's (no check). Strict, `userDataStream.subscribe` needs such a
//! session (Binance: "This method requires an authenticated WebSocket connection using Ed25519
//! keys"), else `-1002 You are not authorized to execute this request.`; and execution reports go
//! only to connections that subscribed the order's account (`userDataStream.subscribe` or the
//! signed `userDataStream.subscribe.signature`).

use super::wsapi::ApiError;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Largest `recvWindow` Binance accepts, ms.
const MAX_RECV_WINDOW: u64 = 60_000;
/// `recvWindow` when none is sent, ms.
const DEFAULT_RECV_WINDOW: u64 = 5_000;
/// How far ahead of the server's clock a `timestamp` may be, ms.
const AHEAD_MS: u64 = 1_000;

/// The built-in HMAC key (the one `tests/testkit` writes): API key.
pub const TEST_HMAC_API_KEY: &str = "simulatorKey0123456789";
/// The built-in HMAC key's secret.
pub const TEST_HMAC_SECRET: &str = "simulatorSecret0123456789";
/// The built-in Ed25519 key: API key.
pub const TEST_ED25519_API_KEY: &str = "edSessionKey0123456";
/// The built-in Ed25519 key's private seed (its public half is what the simulator holds).
pub const TEST_ED25519_SEED: [u8; 32] = [7; 32];

/// What a key verifies signatures with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimSecret {
    /// An HMAC-SHA256 secret.
    Hmac(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
}

/// An API key the simulator knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimKey {
    /// The API key (`apiKey`).
    pub api_key: String,
    /// How its signatures are checked.
    pub secret: SimSecret,
    /// The key may subscribe its account's user data stream (strict; a key without the
    /// permission is refused with `-2015`, the way Binance refuses a key lacking a permission).
    pub user_data_stream: bool,
}

/// How the order API authenticates. Strict, as Binance documents it: `apiKey` must be a known
/// key (`-2015`), `timestamp` within `recvWindow` (default 5000 ms) and at most 1000 ms ahead
/// (`-1021`), `signature` the HMAC-SHA256 (hex) or Ed25519 (base64) signature of the other params
/// sorted by name (`-1022`); `userDataStream.subscribe` needs an accepted `session.logon`
/// (`-1002`), and execution reports go only to connections that subscribed the account's user
/// data stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimAuth {
    /// As Binance: known keys, verified signatures and timestamps, a user data stream
    /// subscription before any execution report.
    Strict(Vec<SimKey>),
    /// The escape hatch for raw-protocol tests that send made-up signatures: `apiKey`,
    /// `signature` and `timestamp` need only be present and well-formed, any key is an account,
    /// `userDataStream.subscribe` is accepted without a logon, and execution reports go to the
    /// connection that placed the order whether or not it subscribed.
    Lenient,
}

impl Default for SimAuth {
    /// Strict, with the two built-in test keys ([`SimKey::test_keys`]).
    fn default() -> Self {
        SimAuth::Strict(SimKey::test_keys())
    }
}

impl SimKey {
    /// The built-in keys: [`TEST_HMAC_API_KEY`] (HMAC, [`TEST_HMAC_SECRET`]) and
    /// [`TEST_ED25519_API_KEY`] (Ed25519, the public key of [`TEST_ED25519_SEED`]).
    pub fn test_keys() -> Vec<SimKey> {
        let public = ed25519_dalek::SigningKey::from_bytes(&TEST_ED25519_SEED)
            .verifying_key()
            .to_bytes();
        vec![
            SimKey {
                api_key: TEST_HMAC_API_KEY.into(),
                secret: SimSecret::Hmac(TEST_HMAC_SECRET.as_bytes().to_vec()),
                user_data_stream: true,
            },
            SimKey {
                api_key: TEST_ED25519_API_KEY.into(),
                secret: SimSecret::Ed25519(public),
                user_data_stream: true,
            },
        ]
    }
}

impl SimAuth {
    /// True for [`SimAuth::Strict`].
    pub fn is_strict(&self) -> bool {
        matches!(self, SimAuth::Strict(_))
    }

    /// Strict: may `api_key` subscribe its user data stream? (`-2015` if not.) Lenient: yes.
    pub(crate) fn may_stream(&self, api_key: &str) -> Result<(), ApiError> {
        match self {
            SimAuth::Strict(keys)
                if !keys
                    .iter()
                    .any(|k| k.api_key == api_key && k.user_data_stream) =>
            {
                Err(ApiError {
                    status: 401,
                    code: -2015,
                    msg: "Invalid API-key, IP, or permissions for action.".into(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks a signed request's `apiKey`, `timestamp`/`recvWindow` and `signature` at server
    /// time `now_ms` (strict only; lenient accepts anything here, the parameter checks of each
    /// method still apply).
    pub(crate) fn verify(&self, p: &Map<String, Value>, now_ms: u64) -> Result<(), ApiError> {
        let SimAuth::Strict(keys) = self else {
            return Ok(());
        };
        let key = param(p, "apiKey")?.ok_or_else(|| mandatory("apiKey"))?;
        let Some(k) = keys.iter().find(|k| k.api_key == key) else {
            return Err(ApiError {
                status: 401,
                code: -2015,
                msg: "Invalid API-key, IP, or permissions for action.".into(),
            });
        };
        let window = match param(p, "recvWindow")? {
            None => DEFAULT_RECV_WINDOW,
            Some(w) => {
                let whole = w.split('.').next().unwrap_or("");
                match whole.parse::<u64>() {
                    Ok(v) if v <= MAX_RECV_WINDOW => v,
                    _ => return Err(ApiError::new(
                        -1102,
                        format!("'recvWindow' contains unexpected value. Cannot be greater than '{MAX_RECV_WINDOW}'."),
                    )),
                }
            }
        };
        let ts: u64 = param(p, "timestamp")?
            .ok_or_else(|| mandatory("timestamp"))?
            .parse()
            .map_err(|_| mandatory("timestamp"))?;
        if ts > now_ms + AHEAD_MS {
            return Err(ApiError::new(
                -1021,
                "Timestamp for this request was 1000ms ahead of the server's time.",
            ));
        }
        if now_ms.saturating_sub(ts) > window {
            return Err(ApiError::new(
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ));
        }
        let sig = param(p, "signature")?.ok_or_else(|| mandatory("signature"))?;
        let payload = payload(p)?;
        let ok = match &k.secret {
            SimSecret::Hmac(secret) => hmac_hex(secret, payload.as_bytes())
                .is_some_and(|want| want.eq_ignore_ascii_case(&sig)),
            SimSecret::Ed25519(public) => ed25519_ok(public, payload.as_bytes(), &sig),
        };
        if !ok {
            return Err(ApiError::new(
                -1022,
                "Signature for this request is not valid.",
            ));
        }
        Ok(())
    }
}

fn mandatory(name: &str) -> ApiError {
    ApiError::new(
        -1102,
        format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

/// A parameter as the text it is signed as: a string as sent, a number as written.
fn param(p: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::new(
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is 'a string or a number'."),
        )),
    }
}

/// `name=value&...` over every param but `signature`, sorted by name (byte order).
fn payload(p: &Map<String, Value>) -> Result<String, ApiError> {
    let mut names: Vec<&String> = p.keys().filter(|k| *k != "signature").collect();
    names.sort();
    let mut out = String::with_capacity(256);
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        if let Some(v) = param(p, name)? {
            out.push_str(&v);
        }
    }
    Ok(out)
}

fn hmac_hex(secret: &[u8], payload: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(payload);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    Some(hex)
}

fn ed25519_ok(public: &[u8; 32], payload: &[u8], sig_b64: &str) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(sig_b64) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(&raw) else {
        return false;
    };
    key.verify_strict(payload, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn hmac_signatures_timestamps_and_keys_are_checked() {
        let auth = SimAuth::default();
        let mut p = params(serde_json::json!({
            "apiKey": TEST_HMAC_API_KEY, "recvWindow": 5000, "timestamp": NOW - 10,
        }));
        let sig = hmac_hex(
            TEST_HMAC_SECRET.as_bytes(),
            format!(
                "apiKey={TEST_HMAC_API_KEY}&recvWindow=5000&timestamp={}",
                NOW - 10
            )
            .as_bytes(),
        )
        .unwrap();
        p.insert("signature".into(), sig.clone().into());
        assert_eq!(auth.verify(&p, NOW), Ok(()));
        assert!(SimAuth::Lenient.verify(&Map::new(), NOW).is_ok());
        let code = |p: &Map<String, Value>, now| auth.verify(p, now).unwrap_err().code;
        assert_eq!(code(&p, NOW + 6_000), -1021); // too old for the window
        assert_eq!(code(&p, NOW - 2_000), -1021); // ahead of the server
        let mut bad = p.clone();
        bad.insert("signature".into(), "00".repeat(32).into());
        assert_eq!(code(&bad, NOW), -1022);
        let mut other = p.clone();
        other.insert("apiKey".into(), "someoneElse".into());
        assert_eq!(code(&other, NOW), -2015);
        let mut tampered = p.clone();
        tampered.insert("recvWindow".into(), 6000.into());
        assert_eq!(code(&tampered, NOW), -1022);
    }

    #[test]
    fn ed25519_signatures_are_checked() {
        let auth = SimAuth::default();
        let key = ed25519_dalek::SigningKey::from_bytes(&TEST_ED25519_SEED);
        let payload = format!("apiKey={TEST_ED25519_API_KEY}&timestamp={NOW}");
        let sig = base64::engine::general_purpose::STANDARD
            .encode(key.sign(payload.as_bytes()).to_bytes());
        let mut p = params(serde_json::json!({"apiKey": TEST_ED25519_API_KEY, "timestamp": NOW}));
        p.insert("signature".into(), sig.into());
        assert_eq!(auth.verify(&p, NOW), Ok(()));
        p.insert("timestamp".into(), (NOW - 1).into());
        assert_eq!(auth.verify(&p, NOW).unwrap_err().code, -1022);
    }
}
