//! A test CA and per-process certificates made with rcgen, and TLS clients that trust it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, RootCertStore};

/// A CA in a directory, issuing certificates for `localhost` and `127.0.0.1` that serve and
/// authenticate clients.
pub struct GridTls {
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl GridTls {
    /// A new CA named `name` whose files go in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("CA params: {e}"));
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        let ca = dir.join("ca.pem");
        write_atomically(&ca, cert.pem().as_bytes());
        Self {
            dir: dir.to_path_buf(),
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues (or issues again, replacing the files atomically) `<name>.pem` and
    /// `<name>-key.pem`: a new key each time.
    pub fn issue(&self, name: &str) -> CertFiles {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap_or_else(|e| panic!("params: {e}"));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("certificate: {e}"));
        let files = self.files(name);
        // The key first: a reader that sees the new certificate finds its key.
        write_atomically(&files.key, key.serialize_pem().as_bytes());
        write_atomically(&files.cert, cert.pem().as_bytes());
        files
    }

    /// Where `issue(name)` writes.
    pub fn files(&self, name: &str) -> CertFiles {
        CertFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        }
    }

    /// The server flags of a process with `files`: TLS on, the CA trusted for outgoing calls,
    /// and with `mutual` client certificates required.
    pub fn server_args(&self, files: &CertFiles, mutual: bool) -> Vec<String> {
        let mut args = vec![
            "--tls-cert".into(),
            files.cert.display().to_string(),
            "--tls-key".into(),
            files.key.display().to_string(),
            "--tls-ca".into(),
            self.ca.display().to_string(),
        ];
        if mutual {
            args.push("--tls-client-ca".into());
            args.push(self.ca.display().to_string());
        }
        args
    }

    /// A client configuration trusting the CA, presenting `identity` if given.
    pub fn client_config(&self, identity: Option<&CertFiles>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap_or_else(|e| panic!("CA: {e}")) {
            roots
                .add(c.unwrap_or_else(|e| panic!("CA: {e}")))
                .unwrap_or_else(|e| panic!("CA: {e}"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("TLS versions: {e}"))
            .with_root_certificates(roots);
        let config = match identity {
            Some(id) => {
                let chain = CertificateDer::pem_file_iter(&id.cert)
                    .unwrap_or_else(|e| panic!("cert: {e}"))
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_else(|e| panic!("cert: {e}"));
                let key =
                    PrivateKeyDer::from_pem_file(&id.key).unwrap_or_else(|e| panic!("key: {e}"));
                builder
                    .with_client_auth_cert(chain, key)
                    .unwrap_or_else(|e| panic!("client certificate: {e}"))
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }

    /// Opens a TLS connection to `127.0.0.1:port` and answers the server's leaf certificate.
    pub fn peer_certificate(
        &self,
        port: u16,
        identity: Option<&CertFiles>,
    ) -> Result<CertificateDer<'static>, String> {
        let mut s = connect(&self.client_config(identity), port)?;
        // Completes the handshake.
        s.flush().map_err(|e| e.to_string())?;
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(|e| e.to_string())?;
        }
        s.conn
            .peer_certificates()
            .and_then(|c| c.first().cloned())
            .map(|c| c.into_owned())
            .ok_or_else(|| "no peer certificate".to_string())
    }
}

fn connect(
    config: &Arc<ClientConfig>,
    port: u16,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, String> {
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// A blocking HTTPS GET on loopback with the test admin credential; `None` unless 200.
pub fn https_get(config: &Arc<ClientConfig>, port: u16, path: &str) -> Option<String> {
    let mut s = connect(config, port).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        crate::auth::ADMIN.token()
    )
    .ok()?;
    let mut buf = Vec::new();
    // A server that closes without close_notify ends the read with an error after the body.
    let _ = s.read_to_end(&mut buf);
    let buf = String::from_utf8(buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(body.to_string())
}

/// Writes `path` through a temporary file and a rename, so readers see old or new whole.
pub fn write_atomically(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename {}: {e}", path.display()));
}
