//! Connection profiles: a named connection's settings as fields (hosts,
//! authentication, TLS, replica set...), parsed from a connection string
//! and built back into one.
//!
//! Parsing splits the secrets off at once: the password, the client key's
//! password, an AWS session token and a proxy password go into [`Secrets`],
//! which has no `Serialize` and prints as `****`; the [`Profile`] only
//! records which secrets it has. A profile is safe to store, log and show;
//! [`Profile::to_uri`] with its secrets is the only way back to a full
//! connection string, and that string lives in memory only.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::uri::{decode, encode_option_value, encode_userinfo};

/// The authentication mechanisms the driver knows, by their URI names.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-1")]
    ScramSha1,
    /// X.509 client certificate; the user lives in `$external`.
    #[serde(rename = "MONGODB-X509")]
    X509,
    /// LDAP through SASL PLAIN.
    #[serde(rename = "PLAIN")]
    Plain,
    /// AWS IAM (needs the `aws-auth` build feature).
    #[serde(rename = "MONGODB-AWS")]
    Aws,
    /// OpenID Connect (workload identity: azure, gcp, k8s).
    #[serde(rename = "MONGODB-OIDC")]
    Oidc,
    /// Kerberos.
    #[serde(rename = "GSSAPI")]
    Gssapi,
}

impl AuthMechanism {
    pub const ALL: [AuthMechanism; 7] = [
        AuthMechanism::ScramSha256,
        AuthMechanism::ScramSha1,
        AuthMechanism::X509,
        AuthMechanism::Plain,
        AuthMechanism::Aws,
        AuthMechanism::Oidc,
        AuthMechanism::Gssapi,
    ];

    /// The name the connection string uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMechanism::ScramSha256 => "SCRAM-SHA-256",
            AuthMechanism::ScramSha1 => "SCRAM-SHA-1",
            AuthMechanism::X509 => "MONGODB-X509",
            AuthMechanism::Plain => "PLAIN",
            AuthMechanism::Aws => "MONGODB-AWS",
            AuthMechanism::Oidc => "MONGODB-OIDC",
            AuthMechanism::Gssapi => "GSSAPI",
        }
    }

    /// Whether this build of Mongoferry can authenticate with it: AWS IAM
    /// needs the `aws-auth` build feature, and Kerberos is not built in.
    pub fn built_in(&self) -> bool {
        match self {
            AuthMechanism::Aws => cfg!(feature = "aws-auth"),
            other => *other != AuthMechanism::Gssapi,
        }
    }

    pub fn parse(s: &str) -> Option<AuthMechanism> {
        AuthMechanism::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// Whether the connection string turns TLS on, off, or leaves it to the
/// scheme (`mongodb+srv://` means on).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum TlsMode {
    #[default]
    Default,
    On,
    Off,
}

/// A profile's TLS settings. The key password is a secret, kept apart.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsProfile {
    pub mode: TlsMode,
    /// PEM file of the CA(s) that signed the servers' certificates.
    pub ca_file: Option<String>,
    /// PEM file with the client certificate and its key.
    pub cert_key_file: Option<String>,
    /// Unsafe: accept a certificate issued for another host name.
    pub allow_invalid_hostnames: bool,
    /// Unsafe: accept any certificate at all.
    pub allow_invalid_certificates: bool,
}

/// A connection string option kept as written (a `key=value` pair that the
/// profile has no field for, such as `readPreference`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UriOption {
    pub key: String,
    pub value: String,
}

/// The kinds of secret a connection string can hold.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub enum SecretKind {
    /// The user's password (SCRAM, PLAIN; the secret access key for AWS).
    Password,
    /// `tlsCertificateKeyFilePassword`: the client key's passphrase.
    TlsKeyPassword,
    /// `AWS_SESSION_TOKEN` in `authMechanismProperties`.
    AwsSessionToken,
    /// `proxyPassword`.
    ProxyPassword,
}

impl SecretKind {
    pub const ALL: [SecretKind; 4] = [
        SecretKind::Password,
        SecretKind::TlsKeyPassword,
        SecretKind::AwsSessionToken,
        SecretKind::ProxyPassword,
    ];

    /// A stable identifier (the keyring entry's suffix).
    pub fn id(&self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::TlsKeyPassword => "tlsKeyPassword",
            SecretKind::AwsSessionToken => "awsSessionToken",
            SecretKind::ProxyPassword => "proxyPassword",
        }
    }

    /// For messages: "password", "TLS key password"...
    pub fn describe(&self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::TlsKeyPassword => "TLS key password",
            SecretKind::AwsSessionToken => "AWS session token",
            SecretKind::ProxyPassword => "proxy password",
        }
    }
}

/// A profile's secrets, in memory only. No `Serialize`; `Debug` shows
/// which secrets there are, never their values; zeroed when dropped.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<SecretKind, Zeroizing<String>>);

impl Secrets {
    pub fn get(&self, kind: SecretKind) -> Option<&str> {
        self.0.get(&kind).map(|s| s.as_str())
    }

    pub fn set(&mut self, kind: SecretKind, value: impl Into<String>) {
        self.0.insert(kind, Zeroizing::new(value.into()));
    }

    pub fn remove(&mut self, kind: SecretKind) {
        self.0.remove(&kind);
    }

    /// Which secrets are present, in a stable order.
    pub fn kinds(&self) -> Vec<SecretKind> {
        self.0.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for k in self.0.keys() {
            m.entry(&k.id(), &"****");
        }
        m.finish()
    }
}

/// A named connection, without its secrets.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub name: String,
    /// `mongodb+srv://`: `hosts` holds one DNS name whose SRV records list
    /// the servers.
    #[serde(default)]
    pub srv: bool,
    /// `host[:port]` as written.
    pub hosts: Vec<String>,
    /// The default database in the path (`/db`), if any.
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// `None`: the driver negotiates (SCRAM-SHA-256 or SCRAM-SHA-1).
    #[serde(default)]
    pub auth_mechanism: Option<AuthMechanism>,
    #[serde(default)]
    pub auth_source: Option<String>,
    /// `authMechanismProperties` other than secrets (SERVICE_NAME,
    /// ENVIRONMENT, TOKEN_RESOURCE...).
    #[serde(default)]
    pub auth_mechanism_properties: Vec<UriOption>,
    #[serde(default)]
    pub tls: TlsProfile,
    #[serde(default)]
    pub replica_set: Option<String>,
    #[serde(default)]
    pub direct_connection: Option<bool>,
    /// Shown in the server's logs; the engine sends `mongoferry` if unset.
    #[serde(default)]
    pub app_name: Option<String>,
    /// Every other option, in the order written.
    #[serde(default)]
    pub options: Vec<UriOption>,
    /// Which secrets this profile has in the keyring.
    #[serde(default)]
    pub secrets: Vec<SecretKind>,
}

/// Letters, digits, space, `.`, `_`, `-`; up to 64, starting with a letter
/// or digit. Profile names become keyring entry names and CLI arguments.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidProfile {
            reason: format!(
                "the name '{}' must be 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit",
                name.escape_debug()
            ),
        })
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidProfile {
        reason: reason.into(),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(format!("{key} must be true or false"))),
    }
}

impl Profile {
    /// Parses a connection string into a profile named `name` and its
    /// secrets. The string is checked by the driver's own parser too (no
    /// DNS look-up, so `mongodb+srv://` parses offline). Errors never
    /// quote the string.
    pub fn parse(name: &str, uri: &str) -> Result<(Profile, Secrets)> {
        validate_name(name)?;
        let uri = uri.trim();
        let (srv, rest) = if let Some(r) = uri.strip_prefix("mongodb+srv://") {
            (true, r)
        } else if let Some(r) = uri.strip_prefix("mongodb://") {
            (false, r)
        } else {
            return Err(invalid(
                "a connection string starts with mongodb:// or mongodb+srv://",
            ));
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        // The userinfo ends at the last '@' before the path, as the
        // driver reads it.
        let (userinfo, host_and_path) = match before_query.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, before_query),
        };
        let (host_list, path) = match host_and_path.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (host_and_path, None),
        };
        let mut secrets = Secrets::default();
        let mut profile = Profile {
            name: name.to_string(),
            srv,
            hosts: host_list
                .split(',')
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect(),
            database: path
                .filter(|p| !p.is_empty())
                .map(|p| decode(p).ok_or_else(|| invalid("the database name is not UTF-8")))
                .transpose()?,
            username: None,
            auth_mechanism: None,
            auth_source: None,
            auth_mechanism_properties: Vec::new(),
            tls: TlsProfile::default(),
            replica_set: None,
            direct_connection: None,
            app_name: None,
            options: Vec::new(),
            secrets: Vec::new(),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                profile.username =
                    Some(decode(user).ok_or_else(|| invalid("the user name is not UTF-8"))?);
            }
            if let Some(p) = password {
                secrets.set(
                    SecretKind::Password,
                    decode(p).ok_or_else(|| invalid("the password is not UTF-8"))?,
                );
            }
        }
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            // The text is not quoted: a stray password may be in it.
            let (key, raw) = pair
                .split_once('=')
                .ok_or_else(|| invalid("every option must be key=value"))?;
            let value =
                decode(raw).ok_or_else(|| invalid(format!("the value of {key} is not UTF-8")))?;
            profile.apply_option(key, value, &mut secrets)?;
        }
        profile.secrets = secrets.kinds();
        profile.validate()?;
        profile.check_with_driver(&secrets)?;
        Ok((profile, secrets))
    }

    fn apply_option(&mut self, key: &str, value: String, secrets: &mut Secrets) -> Result<()> {
        match key.to_ascii_lowercase().as_str() {
            "replicaset" => self.replica_set = Some(value),
            "directconnection" => self.direct_connection = Some(parse_bool(key, &value)?),
            "authsource" => self.auth_source = Some(value),
            "authmechanism" => {
                self.auth_mechanism = Some(AuthMechanism::parse(&value).ok_or_else(|| {
                    invalid(format!(
                        "'{}' is not an authentication mechanism",
                        value.escape_debug()
                    ))
                })?)
            }
            "authmechanismproperties" => {
                for prop in value.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = prop.split_once(':').ok_or_else(|| {
                        invalid(
                            "authMechanismProperties must be KEY:VALUE pairs separated by commas",
                        )
                    })?;
                    if crate::uri::SECRET_MECHANISM_PROPERTIES
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(k))
                    {
                        secrets.set(SecretKind::AwsSessionToken, v);
                    } else {
                        self.auth_mechanism_properties.push(UriOption {
                            key: k.to_string(),
                            value: v.to_string(),
                        });
                    }
                }
            }
            "tls" | "ssl" => {
                self.tls.mode = if parse_bool(key, &value)? {
                    TlsMode::On
                } else {
                    TlsMode::Off
                }
            }
            "tlscafile" | "sslcertificateauthorityfile" => self.tls.ca_file = Some(value),
            "tlscertificatekeyfile" | "sslpemkeyfile" => self.tls.cert_key_file = Some(value),
            "tlscertificatekeyfilepassword" | "sslpemkeypassword" => {
                secrets.set(SecretKind::TlsKeyPassword, value)
            }
            "tlsallowinvalidhostnames" | "sslallowinvalidhostnames" => {
                self.tls.allow_invalid_hostnames = parse_bool(key, &value)?
            }
            "tlsallowinvalidcertificates" | "sslallowinvalidcertificates" => {
                self.tls.allow_invalid_certificates = parse_bool(key, &value)?
            }
            "tlsinsecure" => {
                let v = parse_bool(key, &value)?;
                self.tls.allow_invalid_hostnames = v;
                self.tls.allow_invalid_certificates = v;
            }
            "appname" => self.app_name = Some(value),
            "proxypassword" => secrets.set(SecretKind::ProxyPassword, value),
            "password" => return Err(invalid(
                "a password goes in the userinfo (mongodb://user:password@host), not in an option",
            )),
            _ => self.options.push(UriOption {
                key: key.to_string(),
                value,
            }),
        }
        Ok(())
    }

    /// Checks what the fields alone can tell.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if self.hosts.is_empty() {
            return Err(invalid("a connection names at least one host"));
        }
        if self.srv && (self.hosts.len() != 1 || self.hosts[0].contains(':')) {
            return Err(invalid(
                "a mongodb+srv:// connection names exactly one host name, without a port",
            ));
        }
        if self.tls.mode == TlsMode::Off
            && (self.tls.ca_file.is_some()
                || self.tls.cert_key_file.is_some()
                || self.tls.allow_invalid_certificates
                || self.tls.allow_invalid_hostnames)
        {
            return Err(invalid("TLS files and options need TLS on"));
        }
        match self.auth_mechanism {
            Some(AuthMechanism::X509) => {
                if self.tls.cert_key_file.is_none() {
                    return Err(invalid(
                        "MONGODB-X509 authentication needs a client certificate (tlsCertificateKeyFile)",
                    ));
                }
                if self.secrets.contains(&SecretKind::Password) {
                    return Err(invalid("MONGODB-X509 authentication takes no password"));
                }
            }
            Some(
                m @ (AuthMechanism::Plain | AuthMechanism::ScramSha1 | AuthMechanism::ScramSha256),
            ) if self.username.is_none() => {
                return Err(invalid(format!(
                    "{} authentication needs a user name",
                    m.as_str()
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// The driver's own parser agrees (no DNS; placeholders stand in for
    /// secrets, so no secret reaches an error message).
    pub(crate) fn check_with_driver(&self, secrets: &Secrets) -> Result<()> {
        let mut placeholders = Secrets::default();
        for k in secrets.kinds() {
            placeholders.set(k, "placeholder");
        }
        // A mechanism this build lacks (AWS without the aws-auth feature,
        // Kerberos) still makes a valid profile; connecting with it says
        // what is missing.
        let uri = if self.auth_mechanism.is_some_and(|m| !m.built_in()) {
            let mut p = self.clone();
            p.auth_mechanism = None;
            p.auth_mechanism_properties.clear();
            placeholders.remove(SecretKind::AwsSessionToken);
            p.to_uri(&placeholders)
        } else {
            self.to_uri(&placeholders)
        };
        let (uri, _) = super::tls::split_invalid_hostnames(&uri);
        mongodb::options::ConnectionString::parse(&uri)
            .map(|_| ())
            .map_err(|e| invalid(crate::driver_error::redacted_message(&e)))
    }

    /// Whether connections made with this profile use TLS.
    pub fn tls_enabled(&self) -> bool {
        match self.tls.mode {
            TlsMode::On => true,
            TlsMode::Off => false,
            TlsMode::Default => {
                self.srv || self.tls.ca_file.is_some() || self.tls.cert_key_file.is_some()
            }
        }
    }

    /// Warnings about settings that weaken TLS.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.tls.allow_invalid_certificates {
            w.push("tlsAllowInvalidCertificates is on: any server certificate is accepted, so the connection can be intercepted.".to_string());
        }
        if self.tls.allow_invalid_hostnames {
            w.push("tlsAllowInvalidHostnames is on: a certificate issued for another host is accepted.".to_string());
        }
        w
    }

    /// The connection string, with the given secrets (typically those read
    /// from the keyring). Options come in a fixed order, then the other
    /// options as they were written.
    pub fn to_uri(&self, secrets: &Secrets) -> String {
        let mut s = String::from(if self.srv {
            "mongodb+srv://"
        } else {
            "mongodb://"
        });
        let password = secrets.get(SecretKind::Password);
        if self.username.is_some() || password.is_some() {
            s.push_str(&encode_userinfo(self.username.as_deref().unwrap_or("")));
            if let Some(p) = password {
                s.push(':');
                s.push_str(&encode_userinfo(p));
            }
            s.push('@');
        }
        s.push_str(&self.hosts.join(","));
        let mut opts: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: String| opts.push((k.to_string(), v));
        if let Some(v) = &self.replica_set {
            push("replicaSet", encode_option_value(v));
        }
        if let Some(v) = self.direct_connection {
            push("directConnection", v.to_string());
        }
        if let Some(v) = &self.auth_source {
            push("authSource", encode_option_value(v));
        }
        if let Some(m) = self.auth_mechanism {
            push("authMechanism", m.as_str().to_string());
        }
        let mut props: Vec<String> = self
            .auth_mechanism_properties
            .iter()
            .map(|p| {
                format!(
                    "{}:{}",
                    encode_option_value(&p.key),
                    encode_option_value(&p.value)
                )
            })
            .collect();
        if let Some(t) = secrets.get(SecretKind::AwsSessionToken) {
            props.push(format!("AWS_SESSION_TOKEN:{}", encode_option_value(t)));
        }
        if !props.is_empty() {
            push("authMechanismProperties", props.join(","));
        }
        match self.tls.mode {
            TlsMode::On => push("tls", "true".into()),
            TlsMode::Off => push("tls", "false".into()),
            TlsMode::Default => {}
        }
        if let Some(v) = &self.tls.ca_file {
            push("tlsCAFile", encode_option_value(v));
        }
        if let Some(v) = &self.tls.cert_key_file {
            push("tlsCertificateKeyFile", encode_option_value(v));
        }
        if let Some(v) = secrets.get(SecretKind::TlsKeyPassword) {
            push("tlsCertificateKeyFilePassword", encode_option_value(v));
        }
        if self.tls.allow_invalid_certificates {
            push("tlsAllowInvalidCertificates", "true".into());
        }
        if self.tls.allow_invalid_hostnames {
            push("tlsAllowInvalidHostnames", "true".into());
        }
        if let Some(v) = &self.app_name {
            push("appName", encode_option_value(v));
        }
        for o in &self.options {
            push(&o.key, encode_option_value(&o.value));
        }
        if let Some(v) = secrets.get(SecretKind::ProxyPassword) {
            push("proxyPassword", encode_option_value(v));
        }
        if self.database.is_some() || !opts.is_empty() {
            s.push('/');
        }
        if let Some(db) = &self.database {
            s.push_str(&encode_userinfo(db));
        }
        if !opts.is_empty() {
            s.push('?');
            let joined: Vec<String> = opts.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&joined.join("&"));
        }
        s
    }

    /// The connection string with `****` where each secret goes: safe to
    /// show.
    pub fn display_uri(&self) -> String {
        let mut shown = Secrets::default();
        for k in &self.secrets {
            shown.set(*k, "****");
        }
        // Encoding would turn the stars into %2A; they are put back as is.
        self.to_uri(&shown).replace("%2A%2A%2A%2A", "****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> (Profile, Secrets) {
        Profile::parse("test", uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    /// Strings already in the canonical form come back byte for byte.
    const CANONICAL: &[&str] = &[
        "mongodb://localhost",
        "mongodb://localhost:27017",
        "mongodb://db1:27017,db2:27018,db3:27019/?replicaSet=rs0",
        "mongodb://alice:s3cret@db1:27017/?replicaSet=rs0&authSource=admin",
        "mongodb://alice:p%40ss%3Aw%2Frd%25@db1/sales?authSource=admin",
        "mongodb://alice@db1/?authMechanism=SCRAM-SHA-1",
        "mongodb://alice:pw@db1/?authSource=admin&authMechanism=SCRAM-SHA-256",
        "mongodb://db1/?directConnection=true",
        "mongodb://db1/?authMechanism=MONGODB-X509&tls=true&tlsCAFile=/etc/ssl/ca.pem&tlsCertificateKeyFile=/etc/ssl/client.pem",
        "mongodb://db1/?tls=true&tlsCAFile=/tmp/a%20b/ca.pem&tlsCertificateKeyFile=/c.pem&tlsCertificateKeyFilePassword=k%26y",
        "mongodb://db1/?tls=true&tlsAllowInvalidCertificates=true",
        "mongodb://db1/?tls=true&tlsCAFile=/ca.pem&tlsAllowInvalidHostnames=true",
        "mongodb://db1/?tls=false",
        "mongodb://ldapuser:ldappw@db1/?authSource=$external&authMechanism=PLAIN",
        "mongodb://AKIAEXAMPLE:secretkey@db1/?authSource=$external&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok/en%2Bmore",
        "mongodb://db1/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s",
        "mongodb://db1/?appName=migrator",
        "mongodb://db1/?readPreference=secondaryPreferred&w=majority&retryWrites=false",
        "mongodb://db1/?replicaSet=rs0&readPreference=nearest&readPreferenceTags=dc:ny,rack:1&readPreferenceTags=",
        "mongodb://[::1]:27017,[fe80::1]:27018/?replicaSet=v6",
        "mongodb+srv://cluster0.example.net",
        "mongodb+srv://bob:hunter2@cluster0.example.net/app?retryWrites=true&w=majority",
        "mongodb+srv://cluster0.example.net/?authSource=admin&tls=false",
        "mongodb+srv://carol:pw@cluster0.example.net/?replicaSet=atlas-abc-shard-0&authSource=admin&appName=Cluster0",
    ];

    #[test]
    fn canonical_strings_round_trip_exactly() {
        for uri in CANONICAL {
            let (p, s) = parse(uri);
            assert_eq!(&p.to_uri(&s), uri);
            let json = serde_json::to_string(&p).expect("profile JSON");
            let back: Profile = serde_json::from_str(&json).expect("profile from JSON");
            assert_eq!(back, p);
            assert_eq!(&back.to_uri(&s), uri);
        }
    }

    /// Other spellings come back in canonical form, with the same meaning.
    #[test]
    fn other_spellings_round_trip_to_the_same_profile() {
        let cases = [
            ("mongodb://db1/", "mongodb://db1"),
            ("mongodb://db1/?ssl=true", "mongodb://db1/?tls=true"),
            (
                "mongodb://u:p@db1/?TLS=TRUE&TLSCAFILE=/ca.pem&replicaset=rs0",
                "mongodb://u:p@db1/?replicaSet=rs0&tls=true&tlsCAFile=/ca.pem",
            ),
            (
                "mongodb://db1/?tls=true&tlsInsecure=true",
                "mongodb://db1/?tls=true&tlsAllowInvalidCertificates=true&tlsAllowInvalidHostnames=true",
            ),
            (
                "mongodb://db1/?sslPEMKeyFile=/c.pem&sslPEMKeyPassword=x&ssl=true",
                "mongodb://db1/?tls=true&tlsCertificateKeyFile=/c.pem&tlsCertificateKeyFilePassword=x",
            ),
            (
                "mongodb://us%65r:pa%73s@db1/?authmechanism=scram-sha-256",
                "mongodb://user:pass@db1/?authMechanism=SCRAM-SHA-256",
            ),
        ];
        for (input, canonical) in cases {
            let (p, s) = parse(input);
            assert_eq!(p.to_uri(&s), canonical, "{input}");
            let (again, s2) = parse(canonical);
            assert_eq!(again, p, "{input}");
            assert_eq!(again.to_uri(&s2), canonical);
        }
    }

    #[test]
    fn secrets_are_split_off_at_parse_time() {
        let (p, s) = parse(
            "mongodb://alice:PW-one@db1/?tls=true&tlsCertificateKeyFile=/c.pem&tlsCertificateKeyFilePassword=KEY-two&authMechanismProperties=AWS_SESSION_TOKEN:TOKEN-three,SERVICE_NAME:mongodb",
        );
        assert_eq!(
            p.secrets,
            vec![
                SecretKind::Password,
                SecretKind::TlsKeyPassword,
                SecretKind::AwsSessionToken
            ]
        );
        assert_eq!(s.get(SecretKind::Password), Some("PW-one"));
        assert_eq!(s.get(SecretKind::TlsKeyPassword), Some("KEY-two"));
        assert_eq!(s.get(SecretKind::AwsSessionToken), Some("TOKEN-three"));
        let stored = serde_json::to_string(&p).expect("JSON");
        let shown = format!("{p:?} {s:?} {}", p.display_uri());
        for secret in ["PW-one", "KEY-two", "TOKEN-three"] {
            assert!(!stored.contains(secret), "{stored}");
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(
            p.display_uri(),
            "mongodb://alice:****@db1/?authMechanismProperties=SERVICE_NAME:mongodb,AWS_SESSION_TOKEN:****&tls=true&tlsCertificateKeyFile=/c.pem&tlsCertificateKeyFilePassword=****"
        );
        // Without its secrets the string still names everything else.
        assert_eq!(
            p.to_uri(&Secrets::default()),
            "mongodb://alice@db1/?authMechanismProperties=SERVICE_NAME:mongodb&tls=true&tlsCertificateKeyFile=/c.pem"
        );
    }

    #[test]
    fn bad_strings_are_refused_without_quoting_secrets() {
        for bad in [
            "http://db1",
            "mongodb://",
            "mongodb+srv://a.example.net,b.example.net",
            "mongodb+srv://a.example.net:27017",
            "mongodb://u:Sekret-9@db1/?authMechanism=NOPE",
            "mongodb://u:Sekret-9@db1/?tls=maybe",
            "mongodb://u:Sekret-9@db1/?tls=false&tlsCAFile=/ca.pem",
            "mongodb://u:Sekret-9@db1/?authMechanism=MONGODB-X509",
            "mongodb://u:Sekret-9@db1/?notAnOption=1",
            "mongodb://u:Sekret-9@db1/?password=x",
            "mongodb://u:Sekret-9@db1/?Sekret-9",
        ] {
            let e = Profile::parse("bad", bad).expect_err(bad);
            assert_eq!(e.code(), "invalid_profile", "{bad}: {e}");
            assert!(!e.to_string().contains("Sekret-9"), "{e}");
        }
        for name in ["", " x", "a/b", "x".repeat(65).as_str(), "é"] {
            assert!(Profile::parse(name, "mongodb://db1").is_err(), "{name:?}");
        }
    }

    #[test]
    fn tls_is_on_for_srv_and_when_files_are_given() {
        assert!(parse("mongodb+srv://c.example.net").0.tls_enabled());
        assert!(!parse("mongodb+srv://c.example.net/?tls=false")
            .0
            .tls_enabled());
        assert!(!parse("mongodb://db1").0.tls_enabled());
        assert!(parse("mongodb://db1/?tlsCAFile=/ca.pem").0.tls_enabled());
        let insecure = parse("mongodb://db1/?tlsInsecure=true").0;
        assert_eq!(insecure.warnings().len(), 2);
    }
}
