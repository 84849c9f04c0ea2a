//! Redacting connection strings for display. Every URI that reaches a log,
//! an error, a progress event or the screen passes through here first.

use regex::Regex;
use std::sync::OnceLock;

/// Replaces the password (and any secret-bearing query option) of a
/// MongoDB connection string with `****`. Text that is not a URI is
/// returned unchanged.
pub fn redact_uri(uri: &str) -> String {
    redact_text(uri)
}

/// Redacts every MongoDB URI embedded anywhere in `text`.
pub fn redact_text(text: &str) -> String {
    static USERINFO: OnceLock<Regex> = OnceLock::new();
    static SECRET_OPTS: OnceLock<Regex> = OnceLock::new();
    let userinfo = USERINFO.get_or_init(|| {
        // scheme://user:password@ — the password runs up to the last '@'
        // before the host list, and may itself contain ':'.
        Regex::new(r"(mongodb(?:\+srv)?://[^:/@\s]*):[^@\s]*@").expect("static regex")
    });
    let secret_opts = SECRET_OPTS.get_or_init(|| {
        Regex::new(r"(?i)((?:tlsCertificateKeyFilePassword|sslPEMKeyPassword|authMechanismProperties|password)=)[^&\s]*")
            .expect("static regex")
    });
    let s = userinfo.replace_all(text, "$1:****@");
    secret_opts.replace_all(&s, "${1}****").into_owned()
}

/// The host list of a connection string, for messages ("db1:27017,db2:27017").
pub fn hosts_of(uri: &str) -> String {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
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
            redact_text("failed to reach mongodb://u:p@h now"),
            "failed to reach mongodb://u:****@h now"
        );
    }

    #[test]
    fn hosts_are_extracted() {
        assert_eq!(hosts_of("mongodb://u:p@a:1,b:2/db?x=y"), "a:1,b:2");
        assert_eq!(hosts_of("mongodb://a"), "a");
    }
}
