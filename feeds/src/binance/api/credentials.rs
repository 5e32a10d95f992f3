//! Binance API credentials: the key file and the environment (file and environment I/O, kept
//! out of the sans-IO codec in [`super::encode`] and [`super::reply`]), and the secret types.
//!
//! # Credentials and the key file
//!
//! [`Credentials::from_env`] reads `<PREFIX>_API_KEY` plus either `<PREFIX>_API_SECRET` (HMAC) or
//! `<PREFIX>_ED25519_KEY_FILE` (a PEM PKCS#8 private key, unencrypted). [`Credentials::from_file`]
//! reads a key file of `key = value` lines:
//!
//! ```text
//! # Tickline Binance credentials (chmod 600)
//! api_key = vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A
//! api_secret = <HMAC secret key>
//! # or, for an Ed25519 API key: the private key's PEM file, relative to this file's directory
//! # ed25519_key_file = binance-ed25519.pem
//! ```
//!
//! Blank lines and lines starting with `#` are ignored; whitespace around keys and values is
//! trimmed; an unknown or repeated key, a missing `api_key`, or both or neither of `api_secret`
//! and `ed25519_key_file` is an error naming the line number (never the line's content). Key files
//! and PEM files readable or writable by group or other (`mode & 0o077 != 0`) are refused.
//!
//! Secrets never reach a log: [`Secret`] and [`Credentials`] print `<redacted>` (the API key is
//! shown as its first four characters), no [`ApiError`] carries file content or a secret, and the
//! encoded requests contain the API key and the signature only. File and secret buffers are
//! overwritten when dropped (best effort: without `unsafe` or a zeroize crate the compiler is only
//! asked, through [`std::hint::black_box`], not to elide the writes).

use super::error::ApiError;
use core::fmt;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::SigningKey;
use std::io::Read as _;
use std::path::Path;

/// Largest key file or PEM file read (they are a few hundred bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Secrets and errors.

/// Secret key bytes (an HMAC secret). Prints as `<redacted>`, is never cloned, and is
/// overwritten when dropped (best effort, see the [module docs](self)).
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    /// Wraps `bytes` (for example `String::into_bytes` of the secret, which moves, not copies).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites `bytes` with zeros; `black_box` keeps the compiler from dropping the dead store.
pub(super) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&*bytes);
}

/// A byte buffer holding secret material (a key file's text), wiped when dropped.
pub(super) struct Wiped(pub(super) Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials.

/// An API key and what signs for it.
pub enum Credentials {
    /// An HMAC-SHA256 key: signatures are lowercase hex.
    Hmac {
        /// The API key (sent with each request).
        api_key: String,
        /// The secret key.
        secret: Secret,
    },
    /// An Ed25519 key: signatures are base64; the only type `session.logon` accepts.
    Ed25519 {
        /// The API key Binance issued for the registered public key.
        api_key: String,
        /// The private key (its `Debug` prints the public half only; zeroed on drop).
        key: SigningKey,
    },
}

/// The first four characters of an API key, for logs.
pub(super) struct MaskedKey<'a>(pub(super) &'a str);

impl fmt::Display for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.0.chars().take(4).collect();
        write!(f, "{head}… ({} chars)", self.0.chars().count())
    }
}

impl fmt::Debug for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Hmac { api_key, .. } => f
                .debug_struct("Credentials::Hmac")
                .field("api_key", &MaskedKey(api_key))
                .field("secret", &format_args!("<redacted>"))
                .finish(),
            Credentials::Ed25519 { api_key, key } => f
                .debug_struct("Credentials::Ed25519")
                .field("api_key", &MaskedKey(api_key))
                .field("public_key", &Hex(key.verifying_key().as_bytes()))
                .field("key", &format_args!("<redacted>"))
                .finish(),
        }
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Hmac { api_key, .. } => {
                write!(
                    f,
                    "HMAC-SHA256 API key {} (secret <redacted>)",
                    MaskedKey(api_key)
                )
            }
            Credentials::Ed25519 { api_key, key } => write!(
                f,
                "Ed25519 API key {} (public key {:?}, private key <redacted>)",
                MaskedKey(api_key),
                Hex(key.verifying_key().as_bytes())
            ),
        }
    }
}

/// Lowercase hex of bytes.
pub(super) struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A byte that may appear in an API key or a param value as sent: printable ASCII other than
/// space, quote, backslash, `&`, `=` and `%` (nothing that JSON or the signed query string would
/// need to escape).
#[inline]
pub(super) fn plain_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'&' | b'=' | b'%')
}

pub(super) fn check_api_key(api_key: &str) -> Result<(), ApiError> {
    if api_key.is_empty() || !api_key.bytes().all(plain_byte) {
        return Err(ApiError::BadApiKey);
    }
    Ok(())
}

/// Opens a file that holds secrets: it must be a regular file without group or other
/// permissions (checked on the open handle, so a swap after the check does not matter).
pub(super) fn read_private_file(path: &Path) -> Result<Wiped, ApiError> {
    let io = |e: std::io::Error| ApiError::Io {
        path: path.to_path_buf(),
        kind: e.kind(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ApiError::KeyFile {
            path: path.to_path_buf(),
            line: 0,
            problem: "not a regular file",
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(ApiError::InsecurePermissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    let mut buf = Wiped(Vec::with_capacity(
        meta.len().min(MAX_KEY_FILE) as usize + 1,
    ));
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut buf.0)
        .map_err(io)?;
    if buf.0.len() as u64 > MAX_KEY_FILE {
        return Err(ApiError::KeyFile {
            path: path.to_path_buf(),
            line: 0,
            problem: "file larger than 64 KiB",
        });
    }
    Ok(buf)
}

/// Loads the PEM file at `path`, which `named_by` names (an open error does not show the path).
pub(super) fn load_ed25519_pem(
    path: &Path,
    named_by: impl FnOnce() -> String,
) -> Result<SigningKey, ApiError> {
    let bytes = match read_private_file(path) {
        Ok(b) => b,
        Err(ApiError::Io { kind, .. }) => {
            return Err(ApiError::PemUnreadable {
                named_by: named_by(),
                kind,
            })
        }
        Err(e) => return Err(e),
    };
    let bad = || ApiError::BadEd25519Key {
        path: path.to_path_buf(),
    };
    let text = core::str::from_utf8(&bytes.0).map_err(|_| bad())?;
    SigningKey::from_pkcs8_pem(text).map_err(|_| bad())
}

impl Credentials {
    /// HMAC credentials, checked (non-empty secret, a plausible API key).
    pub fn hmac(api_key: impl Into<String>, secret: Secret) -> Result<Credentials, ApiError> {
        let api_key = api_key.into();
        check_api_key(&api_key)?;
        if secret.is_empty() {
            return Err(ApiError::EmptySecret);
        }
        Ok(Credentials::Hmac { api_key, secret })
    }

    /// Ed25519 credentials, checked (a plausible API key).
    pub fn ed25519(api_key: impl Into<String>, key: SigningKey) -> Result<Credentials, ApiError> {
        let api_key = api_key.into();
        check_api_key(&api_key)?;
        Ok(Credentials::Ed25519 { api_key, key })
    }

    /// Reads `<prefix>_API_KEY` and either `<prefix>_API_SECRET` (HMAC) or
    /// `<prefix>_ED25519_KEY_FILE` (path of an unencrypted PKCS#8 PEM private key, which must not
    /// be readable by group or other). With prefix `TICKLINE`: `TICKLINE_API_KEY`, ...
    pub fn from_env(prefix: &str) -> Result<Credentials, ApiError> {
        let var = |name: &str| std::env::var(format!("{prefix}_{name}")).ok();
        let key_var = format!("{prefix}_API_KEY");
        let api_key = var("API_KEY").ok_or(ApiError::MissingEnv { var: key_var })?;
        match (var("API_SECRET"), var("ED25519_KEY_FILE")) {
            (Some(_), Some(_)) => Err(ApiError::AmbiguousEnv {
                prefix: prefix.to_string(),
            }),
            (Some(secret), None) => Credentials::hmac(api_key, Secret::new(secret.into_bytes())),
            (None, Some(file)) => Credentials::ed25519(
                api_key,
                load_ed25519_pem(Path::new(&file), || format!("{prefix}_ED25519_KEY_FILE"))?,
            ),
            (None, None) => Err(ApiError::MissingEnv {
                var: format!("{prefix}_API_SECRET (or {prefix}_ED25519_KEY_FILE)"),
            }),
        }
    }

    /// Reads a key file (format in the [module docs](self)); refuses one that group or other may
    /// read or write.
    pub fn from_file(path: &Path) -> Result<Credentials, ApiError> {
        let text = read_private_file(path)?;
        let err = |line: usize, problem: &'static str| ApiError::KeyFile {
            path: path.to_path_buf(),
            line,
            problem,
        };
        let text = core::str::from_utf8(&text.0).map_err(|_| err(0, "not UTF-8"))?;
        let mut api_key: Option<&str> = None;
        let mut secret: Option<&str> = None;
        let mut pem: Option<(usize, &str)> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(err(n + 1, "expected `key = value`"));
            };
            let (k, v) = (k.trim(), v.trim());
            if v.is_empty() {
                return Err(err(n + 1, "empty value"));
            }
            let repeated = match k {
                "api_key" => api_key.replace(v).is_some(),
                "api_secret" => secret.replace(v).is_some(),
                "ed25519_key_file" => pem.replace((n + 1, v)).is_some(),
                _ => {
                    return Err(err(
                        n + 1,
                        "unknown key (expected api_key, api_secret or ed25519_key_file)",
                    ))
                }
            };
            if repeated {
                return Err(err(n + 1, "key given twice"));
            }
        }
        let api_key = api_key.ok_or_else(|| err(0, "no api_key"))?;
        match (secret, pem) {
            (Some(s), None) => Credentials::hmac(api_key, Secret::new(s.as_bytes())),
            (None, Some((line, p))) => {
                let p = Path::new(p);
                let p = match path.parent() {
                    Some(dir) if p.is_relative() => dir.join(p),
                    _ => p.to_path_buf(),
                };
                let named_by = || format!("line {line} of {}", path.display());
                Credentials::ed25519(api_key, load_ed25519_pem(&p, named_by)?)
            }
            (Some(_), Some(_)) => Err(err(0, "both api_secret and ed25519_key_file: keep one")),
            (None, None) => Err(err(0, "neither api_secret nor ed25519_key_file")),
        }
    }

    /// The API key.
    pub fn api_key(&self) -> &str {
        match self {
            Credentials::Hmac { api_key, .. } | Credentials::Ed25519 { api_key, .. } => api_key,
        }
    }
}
