//! A connection's TLS settings, and Mongoferry's own TLS handshake with a
//! server: it reads the server's certificate (subject, issuer, expiry,
//! names) and says precisely why a handshake fails. The driver exposes
//! neither, so this handshake runs beside the driver's connections, with
//! the same CA, client certificate and key.
//!
//! It also carries `tlsAllowInvalidHostnames`, which the driver's rustls
//! back end does not offer: such a connection is handed to the driver with
//! certificate checks off, and this module checks each server's chain
//! against the CA (all but the host name) before the engine uses it.
//!
//! This module never logs or returns the key password, and never turns
//! verification off unless the connection string asked for it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mongodb::options::{ClientOptions, ServerAddress, Tls};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::{ResolvesClientCert, WebPkiServerVerifier},
    crypto::ring as provider,
    pki_types::{
        pem::PemObject, CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime,
    },
    sign::CertifiedKey,
    CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use crate::error::{Error, Role};

/// The TLS part of a connection, as the engine uses it.
#[derive(Clone, Default)]
pub struct TlsSettings {
    pub enabled: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_key_file: Option<PathBuf>,
    pub key_password: Option<Zeroizing<Vec<u8>>>,
    pub allow_invalid_certificates: bool,
    pub allow_invalid_hostnames: bool,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("enabled", &self.enabled)
            .field("ca_file", &self.ca_file)
            .field("cert_key_file", &self.cert_key_file)
            .field("key_password", &self.key_password.as_ref().map(|_| "****"))
            .field(
                "allow_invalid_certificates",
                &self.allow_invalid_certificates,
            )
            .field("allow_invalid_hostnames", &self.allow_invalid_hostnames)
            .finish()
    }
}

impl TlsSettings {
    /// Reads the driver's parsed options; `allow_invalid_hostnames` comes
    /// from the connection string separately (see [`split_invalid_hostnames`]).
    pub fn from_options(opts: &ClientOptions, allow_invalid_hostnames: bool) -> TlsSettings {
        match &opts.tls {
            Some(Tls::Enabled(t)) => TlsSettings {
                enabled: true,
                ca_file: t.ca_file_path.clone(),
                cert_key_file: t.cert_key_file_path.clone(),
                key_password: t
                    .tls_certificate_key_file_password
                    .clone()
                    .map(Zeroizing::new),
                allow_invalid_certificates: t.allow_invalid_certificates.unwrap_or(false),
                allow_invalid_hostnames,
            },
            _ => TlsSettings::default(),
        }
    }

    /// How much of the server's certificate is checked.
    pub fn verification(&self) -> Verification {
        if !self.enabled {
            Verification::Off
        } else if self.allow_invalid_certificates {
            Verification::None
        } else if self.allow_invalid_hostnames {
            Verification::ChainOnly
        } else {
            Verification::Full
        }
    }
}

/// How a server's certificate is checked.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Verification {
    /// No TLS at all.
    Off,
    /// The chain up to a trusted CA, the dates and the host name.
    Full,
    /// Everything but the host name (`tlsAllowInvalidHostnames`).
    ChainOnly,
    /// Nothing (`tlsAllowInvalidCertificates` or `tlsInsecure`).
    None,
}

/// Removes `tlsAllowInvalidHostnames` from a connection string (the
/// driver's rustls back end rejects it) and says whether it was true.
/// Everything else, including its secrets, is passed on untouched.
pub fn split_invalid_hostnames(uri: &str) -> (String, bool) {
    let Some((base, query)) = uri.split_once('?') else {
        return (uri.to_string(), false);
    };
    let mut allow = false;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.eq_ignore_ascii_case("tlsAllowInvalidHostnames") {
            allow = value.eq_ignore_ascii_case("true");
        } else if !pair.is_empty() {
            kept.push(pair);
        }
    }
    if kept.is_empty() {
        (base.to_string(), allow)
    } else {
        (format!("{base}?{}", kept.join("&")), allow)
    }
}

/// What the server's certificate says.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeerCertificate {
    /// The subject as MongoDB spells it (RFC 2253, last RDN first).
    pub subject: String,
    pub issuer: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Whole days until `not_after`; negative once it has passed.
    pub expires_in_days: i64,
    /// The DNS names and IP addresses the certificate is valid for.
    pub names: Vec<String>,
}

/// Why Mongoferry's handshake with a server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    Dns,
    Refused,
    Timeout,
    Io(String),
    UntrustedCa,
    HostnameMismatch,
    Expired,
    ClientCertificateRequired,
    /// The server answered in plain text, or closed the connection.
    NotTls,
    Handshake(String),
    Config(String),
}

impl ProbeFailure {
    /// The classified error for a failure at `host`.
    pub fn into_error(self, role: Role, host: &str, cert: Option<&PeerCertificate>) -> Error {
        let host = host.to_string();
        match self {
            ProbeFailure::Dns => Error::DnsFailure {
                role,
                host: host_name(&host),
            },
            ProbeFailure::Refused => Error::ConnectionRefused { role, hosts: host },
            ProbeFailure::Timeout => Error::ConnectTimeout { role, hosts: host },
            ProbeFailure::Io(detail) => Error::Unreachable {
                role,
                hosts: host,
                detail,
            },
            ProbeFailure::UntrustedCa => Error::TlsUntrustedCa {
                role,
                host,
                detail: cert
                    .map(|c| format!(" (it was issued by {})", c.issuer))
                    .unwrap_or_default(),
            },
            ProbeFailure::HostnameMismatch => Error::TlsHostnameMismatch {
                role,
                host: host_name(&host),
                detail: cert
                    .filter(|c| !c.names.is_empty())
                    .map(|c| format!(" (it names {})", c.names.join(", ")))
                    .unwrap_or_default(),
            },
            ProbeFailure::Expired => Error::TlsCertificateExpired {
                role,
                host,
                detail: cert
                    .map(|c| format!(" (valid from {} until {})", c.not_before, c.not_after))
                    .unwrap_or_default(),
            },
            ProbeFailure::ClientCertificateRequired => {
                Error::TlsClientCertificateRequired { role, host }
            }
            ProbeFailure::NotTls => Error::TlsHandshakeFailed {
                role,
                host,
                detail: "the server did not answer in TLS; check that it has TLS enabled".into(),
            },
            ProbeFailure::Handshake(detail) => Error::TlsHandshakeFailed { role, host, detail },
            ProbeFailure::Config(detail) => Error::TlsConfigInvalid { role, detail },
        }
    }
}

/// `host` of `host:port`, `[v6]:port` or `host`.
pub(crate) fn host_name(host_port: &str) -> String {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => host_port.to_string(),
    }
}

/// One handshake's outcome.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `host:port`
    pub host: String,
    /// The certificate the server presented, if it got that far.
    pub certificate: Option<PeerCertificate>,
    pub outcome: Result<(), ProbeFailure>,
}

/// `host:port` of a driver address.
pub fn address_string(addr: &ServerAddress) -> String {
    match addr {
        ServerAddress::Tcp { host, port } => {
            let port = port.unwrap_or(27017);
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        other => other.to_string(),
    }
}

/// Connects to `addr`, does a TLS handshake checked as `settings` say,
/// sends one `hello` and reads the reply header (TLS 1.3 servers reject a
/// missing client certificate only after the handshake, on first read).
pub async fn probe(addr: &ServerAddress, settings: &TlsSettings, timeout: Duration) -> Probe {
    let host = address_string(addr);
    let seen = Arc::new(Mutex::new(None));
    let outcome = match tokio::time::timeout(timeout, handshake(addr, settings, seen.clone())).await
    {
        Ok(r) => r,
        Err(_) => Err(ProbeFailure::Timeout),
    };
    let certificate = seen
        .lock()
        .ok()
        .and_then(|g| g.as_ref().and_then(|der: &Vec<u8>| describe(der)));
    tracing::debug!(%host, ?outcome, "TLS probe");
    Probe {
        host,
        certificate,
        outcome,
    }
}

async fn handshake(
    addr: &ServerAddress,
    settings: &TlsSettings,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
) -> Result<(), ProbeFailure> {
    let requested = Arc::new(AtomicBool::new(false));
    let (host, port) = match addr {
        ServerAddress::Tcp { host, port } => (host.clone(), port.unwrap_or(27017)),
        other => {
            return Err(ProbeFailure::Config(format!(
                "{other} is not a TCP address"
            )))
        }
    };
    let config = client_config(settings, seen, requested.clone())?;
    let name = ServerName::try_from(host.clone())
        .map_err(|e| ProbeFailure::Config(format!("{host} is not a valid server name: {e}")))?;
    let tcp = match tokio::net::lookup_host((host.as_str(), port)).await {
        Err(_) => return Err(ProbeFailure::Dns),
        Ok(addrs) => {
            let mut last = ProbeFailure::Dns;
            let mut stream = None;
            for a in addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        last = ProbeFailure::Refused
                    }
                    Err(e) => last = ProbeFailure::Io(e.to_string()),
                }
            }
            stream.ok_or(last)?
        }
    };
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| io_failure(&e, settings))?;
    tls.write_all(&hello_message())
        .await
        .map_err(|e| io_failure(&e, settings))?;
    let mut header = [0u8; 16];
    match tls.read_exact(&mut header).await {
        Ok(_) => Ok(()),
        // mongod (OpenSSL, TLS 1.3) closes without an alert when it
        // rejects the client's certificate, or the lack of one; the
        // server's request for a certificate tells that case apart.
        Err(e)
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                && requested.load(Ordering::SeqCst) =>
        {
            Err(ProbeFailure::ClientCertificateRequired)
        }
        Err(e) => Err(io_failure(&e, settings)),
    }
}

/// An OP_MSG `{hello: 1, $db: "admin"}`.
fn hello_message() -> Vec<u8> {
    let body = bson::to_vec(&bson::doc! { "hello": 1, "$db": "admin" }).unwrap_or_default();
    let len = 16 + 4 + 1 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as i32).to_le_bytes());
    msg.extend_from_slice(&1i32.to_le_bytes()); // requestID
    msg.extend_from_slice(&0i32.to_le_bytes()); // responseTo
    msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
    msg.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    msg.push(0); // section kind 0: the body
    msg.extend_from_slice(&body);
    msg
}

fn io_failure(e: &std::io::Error, settings: &TlsSettings) -> ProbeFailure {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return tls_failure(tls, settings);
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
            ProbeFailure::NotTls
        }
        std::io::ErrorKind::InvalidData => ProbeFailure::NotTls,
        _ => ProbeFailure::Io(e.to_string()),
    }
}

fn tls_failure(e: &rustls::Error, settings: &TlsSettings) -> ProbeFailure {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                ProbeFailure::UntrustedCa
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                ProbeFailure::HostnameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => ProbeFailure::Expired,
            other => ProbeFailure::Handshake(format!("the certificate is not valid ({other:?})")),
        },
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            ProbeFailure::ClientCertificateRequired
        }
        rustls::Error::AlertReceived(A::BadCertificate | A::UnknownCA | A::CertificateUnknown)
            if settings.cert_key_file.is_some() =>
        {
            ProbeFailure::ClientCertificateRequired
        }
        rustls::Error::AlertReceived(A::HandshakeFailure | A::BadCertificate)
            if settings.cert_key_file.is_none() =>
        {
            ProbeFailure::ClientCertificateRequired
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            ProbeFailure::NotTls
        }
        other => ProbeFailure::Handshake(other.to_string()),
    }
}

fn client_config(
    settings: &TlsSettings,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    requested: Arc<AtomicBool>,
) -> Result<rustls::ClientConfig, ProbeFailure> {
    let provider = Arc::new(provider::default_provider());
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ProbeFailure::Config(format!("the CA file {}: {e}", path.display())))?
                .filter_map(|c| c.ok());
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ProbeFailure::Config(format!(
                    "the CA file {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ProbeFailure::Config(e.to_string()))?;
    let verifier = Arc::new(Recorder {
        inner,
        verification: settings.verification(),
        seen,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeFailure::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let key = match &settings.cert_key_file {
        Some(path) => {
            let (certs, key) =
                client_identity(path, settings.key_password.as_ref().map(|p| p.as_slice()))?;
            let certified = CertifiedKey::from_der(certs, key, &provider)
                .map_err(|e| ProbeFailure::Config(format!("the client certificate: {e}")))?;
            Some(Arc::new(certified))
        }
        None => None,
    };
    Ok(builder.with_client_cert_resolver(Arc::new(ClientCert { key, requested })))
}

/// Presents the client certificate, if there is one, and notes that the
/// server asked for one.
#[derive(Debug)]
struct ClientCert {
    key: Option<Arc<CertifiedKey>>,
    requested: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::SeqCst);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The client certificate chain and key from one PEM file, decrypting an
/// `ENCRYPTED PRIVATE KEY` with `password`.
fn client_identity(
    path: &Path,
    password: Option<&[u8]>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ProbeFailure> {
    let shown = path.display();
    let pem_bytes = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| ProbeFailure::Config(format!("cannot read {shown}: {e}")))?,
    );
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem_bytes)
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(ProbeFailure::Config(format!(
            "{shown} holds no certificate"
        )));
    }
    let key = match password {
        Some(password) => {
            let sections = pem::parse_many(&pem_bytes[..])
                .map_err(|e| ProbeFailure::Config(format!("{shown} is not PEM: {e}")))?;
            let encrypted = sections
                .iter()
                .find(|p| p.tag() == "ENCRYPTED PRIVATE KEY")
                .ok_or_else(|| {
                    ProbeFailure::Config(format!(
                        "{shown} holds no encrypted private key, yet a key password was given"
                    ))
                })?;
            let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(encrypted.contents())
                .map_err(|e| ProbeFailure::Config(format!("the key in {shown}: {e}")))?;
            let der = info.decrypt(password).map_err(|_| {
                ProbeFailure::Config(format!(
                    "the key in {shown} could not be decrypted; is the key password right?"
                ))
            })?;
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()))
        }
        None => PrivateKeyDer::from_pem_slice(&pem_bytes).map_err(|e| {
            ProbeFailure::Config(format!(
                "no usable private key in {shown} ({e}); if it is encrypted, give its password"
            ))
        })?,
    };
    Ok((certs, key))
}

/// A verifier that records the server's certificate, then checks it as
/// much as the connection asks (see [`Verification`]).
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    verification: Verification,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(end_entity.as_ref().to_vec());
        }
        match self.verification {
            Verification::None | Verification::Off => Ok(ServerCertVerified::assertion()),
            Verification::Full => {
                self.inner
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            // webpki checks the chain (and dates) before the name, so a
            // name error means everything else passed.
            Verification::ChainOnly => match self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            },
        }
    }

    // The handshake's signatures are always checked, whatever the
    // verification: by the inner verifier, with the provider's algorithms.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Subject, issuer, validity and names of a DER certificate.
pub fn describe(der: &[u8]) -> Option<PeerCertificate> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        names.push(std::net::Ipv4Addr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        names.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(PeerCertificate {
        subject: rfc2253(cert.subject()),
        issuer: rfc2253(cert.issuer()),
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        expires_in_days: (not_after - now).div_euclid(86_400),
        names,
    })
}

pub(crate) fn rfc3339(unix_seconds: i64) -> String {
    bson::DateTime::from_millis(unix_seconds.saturating_mul(1000))
        .try_to_rfc3339_string()
        .unwrap_or_else(|_| unix_seconds.to_string())
}

/// A distinguished name as MongoDB writes it (the form of an X.509 user's
/// name in `$external`): RDNs last to first, joined by commas.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    name.iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = attr.as_str().unwrap_or("?");
                    let escaped: String = value
                        .chars()
                        .flat_map(|c| {
                            let esc = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';');
                            esc.then_some('\\').into_iter().chain(std::iter::once(c))
                        })
                        .collect();
                    format!("{key}={escaped}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Something about a connection that works but is unsafe or unusual.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionWarning {
    /// Stable: `tls_invalid_certificates_allowed`,
    /// `tls_invalid_hostnames_allowed`, `tls_off`.
    pub code: String,
    pub message: String,
    /// Whether the setting weakens the connection's security.
    pub unsafe_setting: bool,
}

/// The warnings that a connection's TLS settings deserve. `hosts` are the
/// seed hosts; TLS off is only worth a warning beyond the loopback
/// interface.
pub fn tls_warnings(tls: &TlsSettings, hosts: &[String]) -> Vec<ConnectionWarning> {
    let mut w = Vec::new();
    if tls.enabled && tls.allow_invalid_certificates {
        w.push(ConnectionWarning {
            code: "tls_invalid_certificates_allowed".into(),
            message: "UNSAFE: invalid TLS certificates are allowed (tlsAllowInvalidCertificates or tlsInsecure), so the server's identity is not checked and the connection can be intercepted.".into(),
            unsafe_setting: true,
        });
    }
    if tls.enabled && tls.allow_invalid_hostnames {
        w.push(ConnectionWarning {
            code: "tls_invalid_hostnames_allowed".into(),
            message: "UNSAFE: invalid host names are allowed (tlsAllowInvalidHostnames), so any certificate from the trusted CA is accepted for this server.".into(),
            unsafe_setting: true,
        });
    }
    let loopback = |h: &String| {
        let name = host_name(h);
        name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    };
    if !tls.enabled && !hosts.iter().all(loopback) {
        w.push(ConnectionWarning {
            code: "tls_off".into(),
            message: "TLS is off: data and credentials cross the network unencrypted.".into(),
            unsafe_setting: true,
        });
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_hostnames_option_is_split_off() {
        assert_eq!(
            split_invalid_hostnames("mongodb://h/?tls=true&tlsAllowInvalidHostnames=true&x=1"),
            ("mongodb://h/?tls=true&x=1".to_string(), true)
        );
        assert_eq!(
            split_invalid_hostnames("mongodb://h/?TLSALLOWINVALIDHOSTNAMES=false"),
            ("mongodb://h/".to_string(), false)
        );
        assert_eq!(
            split_invalid_hostnames("mongodb://u:p@h/db"),
            ("mongodb://u:p@h/db".to_string(), false)
        );
    }

    #[test]
    fn host_names_are_taken_from_addresses() {
        assert_eq!(host_name("db1.example.net:27017"), "db1.example.net");
        assert_eq!(host_name("[::1]:27017"), "::1");
        assert_eq!(host_name("db1"), "db1");
    }

    #[test]
    fn verification_follows_the_settings() {
        let mut s = TlsSettings {
            enabled: true,
            ..TlsSettings::default()
        };
        assert_eq!(s.verification(), Verification::Full);
        s.allow_invalid_hostnames = true;
        assert_eq!(s.verification(), Verification::ChainOnly);
        s.allow_invalid_certificates = true;
        assert_eq!(s.verification(), Verification::None);
        assert_eq!(TlsSettings::default().verification(), Verification::Off);
        s.key_password = Some(Zeroizing::new(b"hunter2".to_vec()));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn unsafe_tls_settings_are_flagged() {
        let mut s = TlsSettings {
            enabled: true,
            ..Default::default()
        };
        let local = vec!["127.0.0.1:27017".to_string()];
        assert!(tls_warnings(&s, &local).is_empty());
        s.allow_invalid_hostnames = true;
        let w = tls_warnings(&s, &local);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].code, "tls_invalid_hostnames_allowed");
        assert!(w[0].unsafe_setting && w[0].message.starts_with("UNSAFE"));
        s.allow_invalid_certificates = true;
        assert_eq!(tls_warnings(&s, &local).len(), 2);
        let off = TlsSettings::default();
        assert!(tls_warnings(&off, &local).is_empty());
        let remote = vec!["db1.example.net:27017".to_string()];
        assert_eq!(tls_warnings(&off, &remote)[0].code, "tls_off");
    }
}
