//! Redacting connection strings for display, and the percent-encoding
//! rules of their parts. Every URI that reaches a log, an error, a progress
//! event or the screen passes through [`redact_text`] first.
//!
//! This module never stores a URI and never logs one.

use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};
use regex::Regex;
use std::sync::OnceLock;

/// Query options whose value is a secret, lower-cased. Their values are
/// replaced by `****` wherever they appear, and connection profiles keep
/// them in the keyring, never in a file.
pub const SECRET_OPTIONS: &[&str] = &[
    "tlscertificatekeyfilepassword",
    "sslpemkeypassword",
    "proxypassword",
    "password",
];

/// Keys of `authMechanismProperties` whose value is a secret.
pub const SECRET_MECHANISM_PROPERTIES: &[&str] = &["AWS_SESSION_TOKEN"];

/// What RFC 3986 leaves unreserved; everything else is escaped in user
/// names and passwords.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Option values are escaped only where they would break the string: the
/// option separator `&`, `%`, `#`, `?`, `+`, spaces, quotes and the like.
/// `/`, `:`, `,` and `$` stay readable (file paths, `$external`, tag sets).
const OPTION_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']')
    .add(b';');

/// Percent-encodes a user name or password for the userinfo part.
pub fn encode_userinfo(s: &str) -> String {
    utf8_percent_encode(s, USERINFO).to_string()
}

/// Percent-encodes a query option's value (file paths, names).
pub fn encode_option_value(s: &str) -> String {
    utf8_percent_encode(s, OPTION_VALUE).to_string()
}

/// Decodes a percent-encoded URI component; `None` if it is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Replaces the password (and any secret-bearing query option) of a
/// MongoDB connection string with `****`. Text that is not a URI is
/// returned unchanged.
pub fn redact_uri(uri: &str) -> String {
    redact_text(uri)
}

/// Redacts every MongoDB URI embedded anywhere in `text`.
pub fn redact_text(text: &str) -> String {
    static USERINFO_RE: OnceLock<Regex> = OnceLock::new();
    static SECRET_OPTS: OnceLock<Regex> = OnceLock::new();
    static SECRET_PROPS: OnceLock<Regex> = OnceLock::new();
    let userinfo = USERINFO_RE.get_or_init(|| {
        // scheme://user:password@ — the password runs up to the last '@'
        // before the options, and may itself hold ':', '/' or a stray '@'.
        Regex::new(r"(mongodb(?:\+srv)?://[^:/@\s]*):[^\s?]*@").expect("static regex")
    });
    let secret_opts = SECRET_OPTS.get_or_init(|| {
        // authMechanismProperties may carry AWS_SESSION_TOKEN, so all of
        // it goes, as do the secret options in any letter case.
        let names = SECRET_OPTIONS.join("|");
        Regex::new(&format!(
            r#"(?i)((?:{names}|authMechanismProperties)=)[^&\s"']*"#
        ))
        .expect("static regex")
    });
    let secret_props = SECRET_PROPS.get_or_init(|| {
        // The same property outside a URI (a profile's properties shown
        // as text, a driver message).
        let names = SECRET_MECHANISM_PROPERTIES.join("|");
        Regex::new(&format!(r#"(?i)((?:{names})\s*[:=]\s*)[^,&\s"']*"#)).expect("static regex")
    });
    let s = userinfo.replace_all(text, "$1:****@");
    let s = secret_opts.replace_all(&s, "${1}****");
    secret_props.replace_all(&s, "${1}****").into_owned()
}

/// The host list of a connection string, for messages ("db1:27017,db2:27017").
pub fn hosts_of(uri: &str) -> String {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    // Options may hold an '@' of their own (in a password): not the hosts.
    let rest = rest.split('?').next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    rest.split(['/', '?']).next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_uri("mongodb://alice:s3cr:et@db1:27017,db2/?replicaSet=rs"),
            "mongodb://alice:****@db1:27017,db2/?replicaSet=rs"
        );
        assert_eq!(
            redact_uri("mongodb+srv://bob:pw@cluster0.example.net/app"),
            "mongodb+srv://bob:****@cluster0.example.net/app"
        );
        assert_eq!(
            redact_uri("mongodb://h/?tlsCertificateKeyFilePassword=hunter2&tls=true"),
            "mongodb://h/?tlsCertificateKeyFilePassword=****&tls=true"
        );
        assert_eq!(redact_uri("mongodb://h:27017"), "mongodb://h:27017");
        assert_eq!(
            redact_uri("mongodb://u:p@ss/w@h/?tls=true"),
            "mongodb://u:****@h/?tls=true"
        );
        assert_eq!(
            redact_uri("mongodb://h/?TLSCERTIFICATEKEYFILEPASSWORD=x&proxyPassword=y&sslPEMKeyPassword=z"),
            "mongodb://h/?TLSCERTIFICATEKEYFILEPASSWORD=****&proxyPassword=****&sslPEMKeyPassword=****"
        );
        assert_eq!(
            redact_uri("mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc"),
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=****"
        );
        assert_eq!(
            redact_text("properties AWS_SESSION_TOKEN:abc,OTHER:1"),
            "properties AWS_SESSION_TOKEN:****,OTHER:1"
        );
        assert_eq!(
            redact_text(r#"{"uri":"mongodb://a:b@h/?password=c"}"#),
            r#"{"uri":"mongodb://a:****@h/?password=****"}"#
        );
        assert_eq!(
            redact_text("failed to reach mongodb://u:p@h now"),
            "failed to reach mongodb://u:****@h now"
        );
    }

    #[test]
    fn components_are_encoded_and_decoded() {
        assert_eq!(encode_userinfo("p@ss:w/rd%"), "p%40ss%3Aw%2Frd%25");
        assert_eq!(encode_option_value("/tmp/a b&c.pem"), "/tmp/a%20b%26c.pem");
        assert_eq!(decode("p%40ss%3Aw%2Frd%25").as_deref(), Some("p@ss:w/rd%"));
    }

    #[test]
    fn hosts_are_extracted() {
        assert_eq!(hosts_of("mongodb://u:p@a:1,b:2/db?x=y"), "a:1,b:2");
        assert_eq!(hosts_of("mongodb://a"), "a");
    }
}
