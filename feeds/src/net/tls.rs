//! TLS configuration, and the byte transport (plain TCP or rustls over TCP) that the WebSocket
//! and line codecs read from and write to.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::NetError;

/// Where the trust anchors for server certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust (every `CERTIFICATE` block in it).
    pub ca_file: Option<PathBuf>,
    /// Trust the Mozilla root store bundled by `webpki-roots` too (default: on).
    pub webpki_roots: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            ca_file: None,
            webpki_roots: true,
        }
    }
}

/// Builds a rustls client configuration (ring provider, TLS 1.2 and 1.3, no client
/// certificate). The CA file's certificates are added to the webpki roots, or used instead of
/// them when `webpki_roots` is false. Certificate verification is always on.
///
/// Build it once at start-up and share the `Arc` between connections: building reads the CA
/// file and copies the root store.
pub fn client_tls_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, NetError> {
    let mut roots = RootCertStore::empty();
    if opts.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = &opts.ca_file {
        let shown = path.display();
        let iter = CertificateDer::pem_file_iter(path)
            .map_err(|e| NetError::Tls(format!("cannot read CA file {shown}: {e}")))?;
        let mut found = 0usize;
        for (i, cert) in iter.enumerate() {
            let cert = cert.map_err(|e| {
                NetError::Tls(format!(
                    "CA file {shown}: certificate #{} is not valid PEM: {e}",
                    i + 1
                ))
            })?;
            roots.add(cert).map_err(|e| {
                NetError::Tls(format!(
                    "CA file {shown}: certificate #{} rejected: {e}",
                    i + 1
                ))
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(NetError::Tls(format!(
                "CA file {shown} holds no -----BEGIN CERTIFICATE----- block"
            )));
        }
    }
    if roots.is_empty() {
        return Err(NetError::Tls(
            "no trust anchors: webpki_roots is off and no CA file was given".to_string(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls(format!("TLS configuration failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A rustls client session for `host` (SNI for names; IP literals are verified against the
/// certificate's IP addresses and send no SNI).
pub(crate) fn client_session(
    config: Arc<ClientConfig>,
    host: &str,
) -> Result<ClientConnection, NetError> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| NetError::Tls(format!("{host:?} is not a valid TLS server name: {e}")))?;
    ClientConnection::new(config, name)
        .map_err(|e| NetError::Tls(format!("cannot start a TLS session with {host}: {e}")))
}

/// The socket, with or without TLS, as a non-blocking `Read + Write`.
///
/// - `read` hands out decrypted bytes rustls already holds before it touches the socket, and
///   returns `WouldBlock` only when rustls holds none and the socket is drained, so a codec
///   reading until `WouldBlock` honours the edge-triggered contract. A TLS error comes back as
///   an `io::Error` of kind `InvalidData` wrapping the `rustls::Error` (see
///   [`super::error::rustls_error`]). A TCP EOF without `close_notify` reads as a plain EOF
///   (`Ok(0)`): many servers never send it, and both codecs frame their own data.
/// - `write` hands plaintext to rustls (bounded by rustls's 64 KiB buffer limit) and pushes
///   records to the socket until it would block; `flush` returns `WouldBlock` while records
///   remain unsent. Neither ever returns `Ok(0)` for a non-empty buffer.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) sock: TcpStream,
    pub(crate) tls: Option<Box<ClientConnection>>,
}

impl Transport {
    /// Drives the TLS handshake as far as the socket allows. `Ok(true)` once it is complete.
    pub(crate) fn tls_handshake(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        loop {
            match write_records(tls, &mut self.sock) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !tls.is_handshaking() {
                return Ok(true);
            }
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => process(tls, &mut self.sock)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends TLS `close_notify` (best effort) and shuts the write side of the socket.
    pub(crate) fn shutdown_write(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = write_records(tls, &mut self.sock);
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

/// Writes queued TLS records until done (`Ok`) or the socket would block (`Err(WouldBlock)`).
fn write_records(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Decrypts what `read_tls` buffered. On a TLS error, sends rustls's alert (best effort) and
/// returns the error wrapped in an `io::Error`.
fn process(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    match tls.process_new_packets() {
        Ok(_) => {
            if tls.wants_write() {
                // Key updates, or the client's Finished: send now, or with the next write.
                match write_records(tls, sock) {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        }
        Err(e) => {
            let _ = write_records(tls, sock);
            Err(io::Error::new(io::ErrorKind::InvalidData, e))
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.sock.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut self.sock) {
                // TCP EOF: rustls now reports close_notify (Ok(0)) or an unclean EOF.
                Ok(0) => {}
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            process(tls, &mut self.sock)?;
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(tls) = self.tls.as_deref_mut() else {
            return match self.sock.write(buf) {
                Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                r => r,
            };
        };
        let mut n = tls.writer().write(buf)?;
        let flushed = write_records(tls, &mut self.sock);
        if n == 0 {
            // rustls's send buffer was full: retry once after pushing records out.
            flushed?;
            n = tls.writer().write(buf)?;
            let _ = write_records(tls, &mut self.sock);
        } else if let Err(e) = flushed {
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.tls.as_deref_mut() {
            Some(tls) => write_records(tls, &mut self.sock),
            None => Ok(()),
        }
    }
}
