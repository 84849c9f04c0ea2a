//! Connections to clusters, as a user sets them up: saved profiles whose
//! secrets live only in the OS keyring, TLS (rustls, verified by default),
//! every authentication mechanism the driver supports, a test-connection
//! call, and failures classified into a sentence and a remedy.
//!
//! # Layout
//! - [`profile`]: a profile's fields, parsed from and built back into a
//!   connection string; secrets split off at parse time.
//! - [`secrets`]: the keyring (Secret Service, Keychain, Credential
//!   Manager, keyutils).
//! - [`store`]: profiles on disk, without secrets; resolving one into a
//!   connection string in memory.
//! - [`ping`]: test a connection and report what is there.
//! - [`tls`]: TLS settings, and Mongoferry's own handshake that reads the
//!   server's certificate.
//! - [`classify`]: why a connection failed.
//!
//! **Architecture Invariant:** the engine takes connection strings
//! ([`crate::SyncConfig`]); a profile becomes one only in memory, through
//! [`store::ProfileStore::resolve`], as a [`SecretUri`] that never prints
//! its secrets. Nothing here writes a secret anywhere but the keyring.

pub mod classify;
pub mod ping;
pub mod profile;
pub mod secrets;
pub mod store;
pub mod tls;

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use ping::{ping, PingOptions, PingReport};
pub use profile::{AuthMechanism, Profile, SecretKind, Secrets, TlsMode, TlsProfile};
pub use secrets::SecretStore;
pub use store::ProfileStore;

/// A full connection string, secrets included. `Debug` and `Display` show
/// it redacted; [`expose`](Self::expose) hands it to the engine.
#[derive(Clone)]
pub struct SecretUri(Zeroizing<String>);

impl SecretUri {
    pub fn new(uri: String) -> SecretUri {
        SecretUri(Zeroizing::new(uri))
    }

    /// The connection string itself, for the driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUri({})", crate::uri::redact_uri(&self.0))
    }
}

impl fmt::Display for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::uri::redact_uri(&self.0))
    }
}

/// Something about a connection that works but is unsafe or unusual.
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
pub fn tls_warnings(tls: &tls::TlsSettings, hosts: &[String]) -> Vec<ConnectionWarning> {
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
        let name = tls::host_name(h);
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
    fn secret_uris_print_redacted() {
        let u = SecretUri::new("mongodb://a:hunter2@h/?tlsCertificateKeyFilePassword=xyz".into());
        let shown = format!("{u} {u:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("xyz"),
            "{shown}"
        );
        assert!(u.expose().contains("hunter2"));
    }

    #[test]
    fn unsafe_tls_settings_are_flagged() {
        let mut s = tls::TlsSettings {
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
        let off = tls::TlsSettings::default();
        assert!(tls_warnings(&off, &local).is_empty());
        let remote = vec!["db1.example.net:27017".to_string()];
        assert_eq!(tls_warnings(&off, &remote)[0].code, "tls_off");
    }
}
