//! A throwaway PKI for the TLS tests, generated with rcgen: a CA, a second
//! CA that signed nothing the servers present, server certificates (valid,
//! for the wrong host, expired), and client certificates (plain, and with
//! an encrypted PKCS#8 key), all as PEM files in a temp dir.
//!
//! Nothing here talks to a server; `replica_set` hands the files to the
//! sandbox.

use std::path::PathBuf;

use mongoferry::sandbox::{ReplicaSet, SandboxAuth, SandboxOptions, SandboxTls};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The client certificate's subject as MongoDB spells it (RFC 2253): the
/// user name of its MONGODB-X509 user in `$external`.
pub const CLIENT_SUBJECT: &str = "CN=ferry-client,OU=clients,O=Mongoferry Tests";

/// The password of `client-encrypted.pem`'s key.
pub const KEY_PASSWORD: &str = "k3y-Pa55:phrase";

pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA that signed every certificate below.
    pub ca: PathBuf,
    /// A CA that signed none of them.
    pub other_ca: PathBuf,
    /// Server certificate and key for 127.0.0.1 (an IP SAN only, so that
    /// `localhost` is a hostname mismatch).
    pub server: PathBuf,
    /// Server certificate and key for `db.invalid` only.
    pub server_wrong_host: PathBuf,
    /// Client certificate and key, subject [`CLIENT_SUBJECT`].
    pub client: PathBuf,
    /// The same client certificate with its key encrypted under
    /// [`KEY_PASSWORD`].
    pub client_encrypted: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn dn(cn: &str, ou: &str) -> DistinguishedName {
    // Pushed in this order, the subject reads CN=..,OU=..,O=.. in RFC 2253,
    // which lists the RDNs last to first.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Mongoferry Tests");
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca(cn: &str) -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name = dn(cn, "ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signed CA");
    (Issuer::new(params, key), cert.pem())
}

/// A leaf certificate signed by `issuer`, valid from 2020 until 2099 or
/// for `lifetime` from now; returns (certificate PEM, key).
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    subject: DistinguishedName,
    sans: &[&str],
    lifetime: Option<std::time::Duration>,
) -> (String, KeyPair) {
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("leaf params");
    params.distinguished_name = subject;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // mongod presents its certificate as a client too (to itself), so
    // server certificates carry both purposes.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = match lifetime {
        Some(d) => {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a clock after 1970");
            rcgen::date_time_ymd(1970, 1, 1) + since_epoch + d
        }
        None => rcgen::date_time_ymd(2099, 12, 31),
    };
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key)
}

/// `key`'s PKCS#8 encrypted under `password` (PBKDF2-SHA256, AES-256-CBC),
/// as an `ENCRYPTED PRIVATE KEY` PEM.
fn encrypted_key_pem(key: &KeyPair, password: &str) -> String {
    use rand::RngCore;
    let der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).expect("PKCS#8 key");
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    rand::thread_rng().fill_bytes(&mut iv);
    let params =
        pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(10_000, &salt, iv)
            .expect("PBES2 parameters");
    let doc = info
        .encrypt_with_params(params, password)
        .expect("encrypt the key");
    doc.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .expect("PEM")
        .to_string()
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("mongoferry-pki-")
            .tempdir()
            .expect("temp dir");
        let write = |name: &str, pem: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).expect("write PEM");
            p
        };
        let (issuer, ca_pem) = ca("Mongoferry Test CA");
        let (_, other_pem) = ca("Some Other CA");
        let server_pem = |sans: &[&str]| {
            let (cert, key) = leaf(&issuer, dn("ferry-server", "servers"), sans, None);
            format!("{cert}{}", key.serialize_pem())
        };
        let (client_cert, client_key) = leaf(&issuer, dn("ferry-client", "clients"), &[], None);
        Pki {
            ca: write("ca.pem", &ca_pem),
            other_ca: write("other-ca.pem", &other_pem),
            server: write("server.pem", &server_pem(&["127.0.0.1"])),
            server_wrong_host: write("server-wrong-host.pem", &server_pem(&["db.invalid"])),
            client: write(
                "client.pem",
                &format!("{client_cert}{}", client_key.serialize_pem()),
            ),
            client_encrypted: write(
                "client-encrypted.pem",
                &format!(
                    "{client_cert}{}",
                    encrypted_key_pem(&client_key, KEY_PASSWORD)
                ),
            ),
            issuer,
            dir,
        }
    }

    /// A server certificate for 127.0.0.1 that expires `lifetime` from now
    /// (mongod refuses to start with an expired one, but keeps serving one
    /// that expires while it runs).
    pub fn server_expiring_in(&self, lifetime: std::time::Duration) -> PathBuf {
        let (cert, key) = leaf(
            &self.issuer,
            dn("ferry-server", "servers"),
            &["127.0.0.1"],
            Some(lifetime),
        );
        let p = self.dir.path().join("server-expiring.pem");
        std::fs::write(&p, format!("{cert}{}", key.serialize_pem())).expect("write PEM");
        p
    }

    /// Sandbox TLS settings: `server` as the server's certificate, the
    /// test CA, and (for mutual TLS) the client certificate for the
    /// sandbox's own use.
    pub fn sandbox_tls(&self, server: &std::path::Path, mutual: bool) -> SandboxTls {
        SandboxTls {
            ca_file: self.ca.clone(),
            server_cert_key_file: server.to_path_buf(),
            require_client_certificate: mutual,
            client_cert_key_file: mutual.then(|| self.client.clone()),
        }
    }
}

/// Starts a replica set with the given TLS and auth settings; fails (never
/// skips) when mongod is missing.
pub async fn replica_set(
    name: &str,
    tls: Option<SandboxTls>,
    auth: Option<SandboxAuth>,
) -> ReplicaSet {
    let options = SandboxOptions {
        tls,
        auth,
        ..SandboxOptions::default()
    };
    match ReplicaSet::start_opts(name, options).await {
        Ok(rs) => rs,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

/// The root user the auth-enabled sandboxes are created with.
pub fn root_auth(password: &str) -> SandboxAuth {
    SandboxAuth {
        user: "root".to_string(),
        password: password.to_string(),
    }
}

/// Runs `mongoferry <args>` to completion with extra environment variables
/// (such as `MONGOFERRY_CONFIG_DIR`) and, optionally, text on its standard
/// input; killed after `timeout`.
pub async fn run_cli_env(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
    timeout: std::time::Duration,
) -> super::CliOutput {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(super::mongoferry_bin());
    cmd.args(args)
        .env_remove("MONGOFERRY_SOURCE")
        .env_remove("MONGOFERRY_DESTINATION")
        .env_remove("MONGOFERRY_LOG")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn mongoferry");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "mongoferry {:?} did not exit within {timeout:?}",
                args.first()
            )
        })
        .expect("wait for mongoferry");
    super::CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
