//! TLS for every listener of a process and for its calls to other FileGrid servers.
//!
//! The listeners' certificate chain and key (`tls_cert`, `tls_key`) and the CA client
//! certificates must chain to (`tls_client_ca`) are read at start, where any problem stops the
//! process with an error naming the setting. Afterwards a task polls the files' metadata every
//! [`RELOAD_EVERY`]: when they change they are read again and, if valid, used for every new
//! handshake; a bad new file is logged and the old certificate kept. Connections already open
//! keep the certificate they were opened with.
//!
//! Outgoing calls ([`Outgoing`]) trust `tls_ca` (the system's roots without it) and present the
//! process's own certificate as client certificate, so one certificate per process (with both
//! the server and client usages) is enough for a grid that requires mutual TLS. `tls_ca` is
//! watched like the certificate ([`ReloadingRoots`]): a new, valid file is trusted by every
//! connection opened afterwards. The crypto provider is `ring` everywhere.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{SecurityConfig, TlsFiles};

/// How often the certificate files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Why TLS could not be set up; each names the setting whose file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("setting `{setting}`: cannot read {}: {source}", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("setting `{setting}`: {}: {message}", path.display())]
    Invalid {
        setting: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider of every TLS configuration FileGrid builds: `ring`'s, with the
/// AES-128-GCM suites first. They are as safe as AES-256-GCM for TLS (AES-128-GCM is TLS
/// 1.3's mandatory suite) and take less CPU per byte, which counts when every replica hop of
/// a write is a TLS connection. Servers choose by this order, not the client's.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: within each rank the default order stays.
    provider.cipher_suites.sort_by_key(suite_rank);
    Arc::new(provider)
}

fn suite_rank(suite: &rustls::SupportedCipherSuite) -> u8 {
    use rustls::CipherSuite as C;
    match suite.suite() {
        C::TLS13_AES_128_GCM_SHA256 => 0,
        C::TLS13_AES_256_GCM_SHA384 | C::TLS13_CHACHA20_POLY1305_SHA256 => 1,
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 2,
        _ => 3,
    }
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(setting: &'static str, path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        setting,
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The PEM certificates of `path` (at least one).
pub fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(setting, path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(setting, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The certificates of `path` as a root store.
pub fn read_roots(setting: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(setting, path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(setting, path, format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Reads a certificate chain and its key, and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs("tls_cert", cert)?;
    let key_pem = read("tls_key", key)?;
    // The error of a key that does not parse says nothing of its content.
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid("tls_key", key, format!("no usable PEM private key ({e})")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| invalid("tls_key", key, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(invalid(
                "tls_key",
                key,
                format!("is not the key of {}", cert.display()),
            ))
        }
        Err(e) => Err(invalid("tls_cert", cert, format!("bad certificate: {e}"))),
    }
}

/// The certificate this process serves and presents; swapped when its files change.
pub struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("chain_len", &self.current.load().cert.len())
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// A certificate read once from `cert` and `key` (the CLI's client certificate).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(load_certified_key(cert, key)?),
        }))
    }

    /// The leaf certificate now in use (DER).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for ReloadingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// What identifies a version of a file: its size, modification time and inode.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Option<(u64, SystemTime, u64)>);

fn stamp(path: Option<&Path>) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(path.and_then(|p| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.len(), m.modified().ok()?, m.ino()))
    }))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamps([Stamp; 3]);

impl Stamps {
    fn of(files: &TlsFiles) -> Self {
        Self([
            stamp(Some(&files.cert)),
            stamp(Some(&files.key)),
            stamp(files.client_ca.as_deref()),
        ])
    }
}

#[derive(Debug)]
struct ReloadState {
    /// The files as they were when last loaded.
    loaded: Stamps,
    /// The files as they were when loading last failed (to log each bad version once).
    failed: Option<Stamps>,
}

/// The TLS side of every listener of a process.
pub struct ServerTls {
    files: TlsFiles,
    cert: Arc<ReloadingCert>,
    config: ArcSwap<ServerConfig>,
    state: Mutex<ReloadState>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.files.cert)
            .field("client_ca", &self.files.client_ca)
            .finish_non_exhaustive()
    }
}

/// What a check of the certificate files found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// The files changed but are not usable; the previous certificate stays.
    Failed(String),
}

fn server_config(
    cert: Arc<ReloadingCert>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(path) => {
            let roots = read_roots("tls_client_ca", path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| invalid("tls_client_ca", path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // The suite order of `provider`, whatever the client prefers.
    config.ignore_client_order = true;
    Ok(config)
}

impl ServerTls {
    /// Reads the files; fails naming the setting whose file is unreadable or invalid.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, TlsError> {
        let loaded = Stamps::of(files);
        let certified = load_certified_key(&files.cert, &files.key)?;
        let cert = Arc::new(ReloadingCert {
            current: ArcSwap::from_pointee(certified),
        });
        let config = server_config(cert.clone(), files.client_ca.as_deref())?;
        tracing::info!(cert = %files.cert.display(), client_ca = ?files.client_ca,
            "TLS on for every listener");
        Ok(Arc::new(Self {
            files: files.clone(),
            cert,
            config: ArcSwap::from_pointee(config),
            state: Mutex::new(ReloadState {
                loaded,
                failed: None,
            }),
        }))
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// The certificate served (also presented by this process's outgoing calls).
    pub fn cert(&self) -> Arc<ReloadingCert> {
        self.cert.clone()
    }

    /// Reads the files again if they changed since they were last loaded.
    pub fn reload_if_changed(&self) -> Reload {
        let now = Stamps::of(&self.files);
        let Ok(mut state) = self.state.lock() else {
            return Reload::Unchanged;
        };
        if now == state.loaded {
            return Reload::Unchanged;
        }
        let result = load_certified_key(&self.files.cert, &self.files.key).and_then(|ck| {
            let ca_changed = now.0[2] != state.loaded.0[2];
            let config = if ca_changed {
                Some(server_config(
                    self.cert.clone(),
                    self.files.client_ca.as_deref(),
                )?)
            } else {
                None
            };
            Ok((ck, config))
        });
        match result {
            Ok((ck, config)) => {
                self.cert.current.store(Arc::new(ck));
                if let Some(config) = config {
                    self.config.store(Arc::new(config));
                }
                state.loaded = now;
                state.failed = None;
                tracing::info!(cert = %self.files.cert.display(), "reloaded TLS certificate");
                Reload::Reloaded
            }
            Err(e) => {
                // Retried every check (a rotation may be half written); logged once per version.
                if state.failed.as_ref() != Some(&now) {
                    tracing::warn!(error = %e, "new TLS files are not usable; keeping the current certificate");
                    state.failed = Some(now);
                }
                Reload::Failed(e.to_string())
            }
        }
    }

    /// Checks the files every `every` for as long as `self` lives.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tls) = weak.upgrade() else { return };
                // Reading small files; blocking the runtime thread briefly is fine.
                tls.reload_if_changed();
            }
        });
    }
}

/// How this process calls other FileGrid servers: the TLS client configuration (trusting
/// `tls_ca`, presenting the process's certificate) and whether its peers speak TLS.
#[derive(Clone)]
pub struct Outgoing {
    config: Option<Arc<ClientConfig>>,
    https: bool,
    /// The CAs of `tls_ca` the configuration verifies servers with, when set.
    roots: Option<Arc<ReloadingRoots>>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("tls", &self.config.is_some())
            .field("https", &self.https)
            .finish()
    }
}

impl Default for Outgoing {
    fn default() -> Self {
        Self::plain()
    }
}

impl Outgoing {
    /// Plain HTTP, no TLS configuration of our own.
    pub fn plain() -> Self {
        Self {
            config: None,
            https: false,
            roots: None,
        }
    }

    /// Trusts `ca` (the system's roots when `None`) and presents `identity` when a server asks
    /// for a client certificate. `https` says whether chunk calls use TLS.
    pub fn new(
        ca: Option<&Path>,
        identity: Option<Arc<dyn ResolvesClientCert>>,
        https: bool,
    ) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let (builder, roots) = match ca {
            Some(path) => {
                let roots = ReloadingRoots::load(path)?;
                let builder = builder
                    .dangerous()
                    .with_custom_certificate_verifier(roots.clone());
                (builder, Some(roots))
            }
            None => (builder.with_root_certificates(system_roots()), None),
        };
        let config = match identity {
            Some(id) => builder.with_client_cert_resolver(id),
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            config: Some(Arc::new(config)),
            https,
            roots,
        })
    }

    /// The reloadable CAs of `tls_ca`, when it is set.
    pub fn roots(&self) -> Option<&Arc<ReloadingRoots>> {
        self.roots.as_ref()
    }

    /// The outgoing side of a process with `security` whose listeners use `server`.
    pub fn for_process(
        security: &SecurityConfig,
        server: Option<&ServerTls>,
    ) -> Result<Self, TlsError> {
        let identity = server.map(|s| s.cert() as Arc<dyn ResolvesClientCert>);
        Self::new(security.tls_ca.as_deref(), identity, server.is_some())
    }

    /// Whether this process's chunk calls (to cluster servers of the same grid) use TLS:
    /// a grid turns TLS on for its heads and cluster servers together.
    pub fn https(&self) -> bool {
        self.https
    }

    /// `https` or `http` as `tls` says.
    pub fn scheme(tls: bool) -> &'static str {
        if tls { "https" } else { "http" }
    }

    /// `builder` set up to call FileGrid servers with this configuration.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        match &self.config {
            Some(c) => builder.use_preconfigured_tls(ClientConfig::clone(c)),
            None => builder,
        }
    }

    /// A connector for raw TLS connections (the monitor's health checks).
    pub fn connector(&self) -> TlsConnector {
        match &self.config {
            Some(c) => TlsConnector::from(c.clone()),
            None => TlsConnector::from(Arc::new(
                ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map(|b| {
                        b.with_root_certificates(system_roots())
                            .with_no_client_auth()
                    })
                    .unwrap_or_else(|_| {
                        // ring supports the default protocol versions; never reached.
                        ClientConfig::builder()
                            .with_root_certificates(RootCertStore::empty())
                            .with_no_client_auth()
                    }),
            )),
        }
    }
}

/// The system's CA certificates; those that cannot be read are logged and left out.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "cannot read a system CA certificate");
    }
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    roots
}

/// Starts TLS for the process as `security` says: loads the listeners' files (and starts
/// reloading them) and builds the outgoing configuration.
pub fn for_process(
    security: &SecurityConfig,
) -> Result<(Option<Arc<ServerTls>>, Outgoing), TlsError> {
    let server = match &security.tls {
        Some(files) => {
            let tls = ServerTls::load(files)?;
            tls.spawn_reloader(RELOAD_EVERY);
            Some(tls)
        }
        None => None,
    };
    let outgoing = if server.is_some() || security.tls_ca.is_some() {
        Outgoing::for_process(security, server.as_deref())?
    } else {
        Outgoing::plain()
    };
    if let Some(roots) = outgoing.roots() {
        roots.spawn_reloader(RELOAD_EVERY);
    }
    Ok((server, outgoing))
}

/// Verifies the certificates of servers this process calls against the CAs of `tls_ca`,
/// reading the file again when it changes (size, modification time or inode): a valid new
/// file is used for every handshake from then on, an unusable one is logged once and the
/// previous CAs kept. Connections already open are not affected.
pub struct ReloadingRoots {
    path: PathBuf,
    verifier: ArcSwap<WebPkiServerVerifier>,
    state: Mutex<(Stamp, Option<Stamp>)>,
}

impl std::fmt::Debug for ReloadingRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingRoots")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn server_verifier(path: &Path) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let roots = read_roots("tls_ca", path)?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| invalid("tls_ca", path, e.to_string()))
}

impl ReloadingRoots {
    /// Reads `path`; fails naming `tls_ca` when it is unreadable or holds no usable CA.
    pub fn load(path: &Path) -> Result<Arc<Self>, TlsError> {
        let loaded = stamp(Some(path));
        let verifier = server_verifier(path)?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            verifier: ArcSwap::new(verifier),
            state: Mutex::new((loaded, None)),
        }))
    }

    /// Reads the file again if it changed since it was last loaded.
    pub fn reload_if_changed(&self) -> Reload {
        let now = stamp(Some(&self.path));
        let Ok(mut state) = self.state.lock() else {
            return Reload::Unchanged;
        };
        if now == state.0 {
            return Reload::Unchanged;
        }
        match server_verifier(&self.path) {
            Ok(verifier) => {
                self.verifier.store(verifier);
                *state = (now, None);
                tracing::info!(tls_ca = %self.path.display(), "reloaded the CA certificates of tls_ca");
                Reload::Reloaded
            }
            Err(e) => {
                if state.1.as_ref() != Some(&now) {
                    tracing::warn!(error = %e, "the new tls_ca file is not usable; keeping the current CA certificates");
                    state.1 = Some(now);
                }
                Reload::Failed(e.to_string())
            }
        }
    }

    /// Checks the file every `every` for as long as `self` lives.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(roots) = weak.upgrade() else { return };
                roots.reload_if_changed();
            }
        });
    }
}

impl ServerCertVerifier for ReloadingRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier.load().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier
            .load()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier
            .load()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.load().supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, data: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn bad_files_name_their_setting() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("a");
        let (_, other_key) = self_signed("b");
        let cert_p = write(dir.path(), "cert.pem", &cert);
        let key_p = write(dir.path(), "key.pem", &key);
        let junk = write(dir.path(), "junk.pem", "not pem");
        let other = write(dir.path(), "other.pem", &other_key);
        let missing = dir.path().join("missing.pem");
        assert!(load_certified_key(&cert_p, &key_p).is_ok());
        let err = |c: &Path, k: &Path| load_certified_key(c, k).err().unwrap().to_string();
        assert!(
            err(&missing, &key_p).starts_with("setting `tls_cert`: cannot read"),
            "{}",
            err(&missing, &key_p)
        );
        assert!(err(&junk, &key_p).starts_with("setting `tls_cert`:"));
        assert!(err(&cert_p, &junk).starts_with("setting `tls_key`:"));
        let mismatch = err(&cert_p, &other);
        assert!(mismatch.contains("is not the key of"), "{mismatch}");
        // The key's content never shows in an error.
        assert!(!mismatch.contains("PRIVATE KEY"));
    }

    #[test]
    fn reload_keeps_the_old_certificate_when_the_new_one_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("a");
        let files = TlsFiles {
            cert: write(dir.path(), "cert.pem", &cert),
            key: write(dir.path(), "key.pem", &key),
            client_ca: None,
        };
        let tls = ServerTls::load(&files).unwrap();
        let first = tls.cert().leaf().unwrap();
        assert_eq!(tls.reload_if_changed(), Reload::Unchanged);
        // A certificate without its key: refused, the old pair stays.
        let (cert2, key2) = self_signed("b");
        write(dir.path(), "cert.pem.new", &cert2);
        std::fs::rename(dir.path().join("cert.pem.new"), &files.cert).unwrap();
        assert!(matches!(tls.reload_if_changed(), Reload::Failed(_)));
        assert_eq!(tls.cert().leaf().unwrap(), first);
        // Then the key arrives.
        write(dir.path(), "key.pem.new", &key2);
        std::fs::rename(dir.path().join("key.pem.new"), &files.key).unwrap();
        assert_eq!(tls.reload_if_changed(), Reload::Reloaded);
        assert_ne!(tls.cert().leaf().unwrap(), first);
        assert_eq!(tls.reload_if_changed(), Reload::Unchanged);
    }

    #[test]
    fn servers_prefer_aes_128_gcm_whatever_the_client_prefers() {
        use rustls::CipherSuite as C;
        let suites: Vec<C> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites[0], C::TLS13_AES_128_GCM_SHA256);
        assert!(suites.contains(&C::TLS13_AES_256_GCM_SHA384));
        // TLS 1.3 suites before TLS 1.2 ones.
        let first_12 = suites
            .iter()
            .position(|s| !format!("{s:?}").starts_with("TLS13_"))
            .unwrap();
        assert!(
            suites[first_12..]
                .iter()
                .all(|s| !format!("{s:?}").starts_with("TLS13_"))
        );

        // A client preferring AES-256-GCM (rustls' default order) gets AES-128-GCM.
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("localhost");
        let cert_p = write(dir.path(), "cert.pem", &cert);
        let files = TlsFiles {
            cert: cert_p.clone(),
            key: write(dir.path(), "key.pem", &key),
            client_ca: None,
        };
        let server = ServerTls::load(&files).unwrap();
        let mut server = rustls::ServerConnection::new(server.config.load_full()).unwrap();
        let client_config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(read_roots("tls_ca", &cert_p).unwrap())
                .with_no_client_auth();
        let mut client = rustls::ClientConnection::new(
            Arc::new(client_config),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut buf = Vec::new();
        for _ in 0..20 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            buf.clear();
            client.write_tls(&mut buf).unwrap();
            if !buf.is_empty() {
                server.read_tls(&mut buf.as_slice()).unwrap();
                server.process_new_packets().unwrap();
            }
            buf.clear();
            server.write_tls(&mut buf).unwrap();
            if !buf.is_empty() {
                client.read_tls(&mut buf.as_slice()).unwrap();
                client.process_new_packets().unwrap();
            }
        }
        assert_eq!(
            client.negotiated_cipher_suite().map(|s| s.suite()),
            Some(C::TLS13_AES_128_GCM_SHA256)
        );
    }

    #[test]
    fn tls_ca_is_read_again_when_it_changes_and_a_bad_file_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_a, _) = self_signed("a.example");
        let (ca_b, _) = self_signed("b.example");
        let path = write(dir.path(), "ca.pem", &ca_a);
        let roots = ReloadingRoots::load(&path).unwrap();
        let der = |pem: &str| {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .next()
                .unwrap()
                .unwrap()
        };
        let verifies = |pem: &str, name: &str| {
            roots
                .verify_server_cert(
                    &der(pem),
                    &[],
                    &ServerName::try_from(name.to_string()).unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .is_ok()
        };
        // A self-signed certificate trusted as its own CA verifies for its name.
        assert!(verifies(&ca_a, "a.example"));
        assert!(!verifies(&ca_b, "b.example"));
        assert_eq!(roots.reload_if_changed(), Reload::Unchanged);
        // Both CAs, by a rename: B is trusted from now on, A still.
        write(dir.path(), "ca.new", &format!("{ca_a}{ca_b}"));
        std::fs::rename(dir.path().join("ca.new"), &path).unwrap();
        assert_eq!(roots.reload_if_changed(), Reload::Reloaded);
        assert!(verifies(&ca_b, "b.example"));
        assert!(verifies(&ca_a, "a.example"));
        // A file that holds no certificate is refused; the CAs in use stay.
        write(dir.path(), "ca.new", "not pem");
        std::fs::rename(dir.path().join("ca.new"), &path).unwrap();
        assert!(matches!(roots.reload_if_changed(), Reload::Failed(_)));
        assert!(verifies(&ca_b, "b.example"));
        // B alone: A is no longer trusted.
        write(dir.path(), "ca.new", &ca_b);
        std::fs::rename(dir.path().join("ca.new"), &path).unwrap();
        assert_eq!(roots.reload_if_changed(), Reload::Reloaded);
        assert!(!verifies(&ca_a, "a.example"));
        assert!(verifies(&ca_b, "b.example"));
    }
}
