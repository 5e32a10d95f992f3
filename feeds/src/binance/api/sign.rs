//! Signing requests: HMAC-SHA256 (lowercase hex) or Ed25519 (base64), prepared once per key.
//!
//! # Signing (Binance's "SIGNED request security")
//!
//! Every param except `signature` is sorted by name (byte order, which is what the documentation's
//! alphabetical order is: `timeInForce` before `timestamp`) and joined as `key=value&key=value`;
//! that payload is signed with HMAC-SHA256 and written as lowercase hex (HMAC keys), or with
//! Ed25519 and written as standard base64 with padding (Ed25519 keys). The test suite checks this
//! against the worked example of the documentation (`tests/binance_api.rs`).
//!
//! After a successful `session.logon` (Ed25519 keys only) the venue no longer needs `apiKey` and
//! `signature` on the connection: [`OrderEncoder::set_session_authenticated`](super::OrderEncoder::set_session_authenticated) drops both (and the
//! signing, about 13 µs per Ed25519 signature, see "Cost") until it is turned off again, which the
//! I/O thread must do on every reconnect.

use super::credentials::Credentials;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(super) type HmacSha256 = Hmac<Sha256>;

pub(super) const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

impl Credentials {
    /// Signs `payload` (a signed request's sorted `key=value&...` string): HMAC-SHA256 as
    /// lowercase hex, or Ed25519 as base64.
    pub fn sign(&self, payload: &str) -> String {
        let mut out = String::with_capacity(88);
        Signer::of(self).sign_into(payload.as_bytes(), &mut out);
        out
    }
}

/// What signs requests, prepared once: a keyed HMAC state is cloned per request rather than
/// re-deriving the key pads. `Hmac(None)` (a key HMAC refused, which HMAC-SHA256 never does)
/// fails closed: requests go out without a signature and the venue refuses them.
pub(super) enum Signer {
    Hmac(Option<Box<HmacSha256>>),
    Ed25519(Box<SigningKey>),
}

impl Signer {
    pub(super) fn of(creds: &Credentials) -> Signer {
        match creds {
            Credentials::Hmac { secret, .. } => Signer::Hmac(hmac_key(&secret.0)),
            Credentials::Ed25519 { key, .. } => Signer::Ed25519(Box::new(key.clone())),
        }
    }

    pub(super) fn into_signer(creds: Credentials) -> (String, Signer) {
        match creds {
            Credentials::Hmac { api_key, secret } => (api_key, Signer::Hmac(hmac_key(&secret.0))),
            Credentials::Ed25519 { api_key, key } => (api_key, Signer::Ed25519(Box::new(key))),
        }
    }

    /// Appends the signature of `payload` to `out`; allocates nothing once `out` has room.
    #[inline]
    pub(super) fn sign_into(&self, payload: &[u8], out: &mut String) {
        match self {
            Signer::Hmac(None) => {}
            Signer::Hmac(Some(mac)) => {
                let mut mac = (**mac).clone();
                mac.update(payload);
                for b in mac.finalize().into_bytes() {
                    for d in [b >> 4, b & 0xf] {
                        if let Some(&c) = HEX_DIGITS.get(d as usize) {
                            out.push(c as char);
                        }
                    }
                }
            }
            Signer::Ed25519(key) => {
                let sig = key.sign(payload).to_bytes();
                let mut buf = [0u8; 88];
                if let Ok(n) = base64::engine::general_purpose::STANDARD.encode_slice(sig, &mut buf)
                {
                    if let Some(Ok(s)) = buf.get(..n).map(core::str::from_utf8) {
                        out.push_str(s);
                    }
                }
            }
        }
    }
}

pub(super) fn hmac_key(secret: &[u8]) -> Option<Box<HmacSha256>> {
    // HMAC takes keys of any length: `new_from_slice` does not fail for it.
    HmacSha256::new_from_slice(secret).ok().map(Box::new)
}
