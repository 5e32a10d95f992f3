//! The simulator's TLS identity: a self-signed certificate for `localhost` and `127.0.0.1`,
//! made at start-up with rcgen, served with rustls (ring provider).

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls_pki_types::PrivateKeyDer;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A server config and where its certificate's PEM was written.
#[derive(Debug)]
pub(crate) struct TlsIdentity {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) cert_path: PathBuf,
    /// The PEM is a temporary file the simulator removes when it stops.
    pub(crate) cert_is_temp: bool,
}

/// Makes the certificate and writes its PEM to `cert_out`, or to a fresh file in the temporary
/// directory.
pub(crate) fn make_identity(cert_out: Option<&Path>) -> Result<TlsIdentity> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .context("generating the self-signed certificate")?;
    let pem = ck.cert.pem();
    let (cert_path, cert_is_temp) = match cert_out {
        Some(p) => (p.to_path_buf(), false),
        None => {
            static N: AtomicU64 = AtomicU64::new(0);
            let name = format!(
                "tickline-venue-sim-{}-{}.pem",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            (std::env::temp_dir().join(name), true)
        }
    };
    std::fs::write(&cert_path, pem.as_bytes())
        .with_context(|| format!("writing the certificate to {}", cert_path.display()))?;
    let cert_der = ck.cert.der().clone();
    let key = PrivateKeyDer::from(ck.signing_key);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)
        .context("TLS server certificate")?;
    Ok(TlsIdentity {
        config: Arc::new(config),
        cert_path,
        cert_is_temp,
    })
}
