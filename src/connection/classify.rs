//! Classifying why a connection failed: the driver's error (often a server
//! selection timeout that lists every server's own failure) becomes one
//! [`Error`] variant with a plain sentence and a remedy: DNS, refused,
//! timeout, the TLS failures, authentication, authorization, a replica set
//! name that does not match, or a server selection timeout.
//!
//! It only reads errors; it never connects, and the text it keeps is
//! redacted.

use mongodb::error::{Error as DriverError, ErrorKind};

use super::tls::ProbeFailure;
use crate::driver_error::{AUTHENTICATION_FAILED, UNAUTHORIZED};
use crate::error::{Error, Role};
use crate::uri::redact_text;

/// What a failure is classified against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub role: Role,
    /// The host list, for messages.
    pub hosts: &'a str,
    /// Whether the connection uses TLS.
    pub tls: bool,
    /// Whether a client certificate was configured.
    pub client_certificate: bool,
    /// The user the connection logs in as, for "not authorized" messages.
    pub user: Option<&'a str>,
}

/// The classified error for a failure to connect or to run a command.
/// `action` says what was being done ("read the server's status").
pub fn classify(ctx: &Context<'_>, action: &str, err: &DriverError) -> Error {
    let role = ctx.role;
    let detail = crate::driver_error::redacted_message(err);
    match err.kind.as_ref() {
        ErrorKind::Authentication { .. } => Error::AuthenticationFailed { role, detail },
        ErrorKind::Command(c) if c.code == AUTHENTICATION_FAILED => {
            Error::AuthenticationFailed { role, detail }
        }
        ErrorKind::Command(c) if c.code == UNAUTHORIZED => Error::NotAuthorized {
            role,
            user: ctx.user.unwrap_or("(not authenticated)").to_string(),
            action: action.to_string(),
        },
        ErrorKind::InvalidArgument { .. } => Error::InvalidUri {
            role,
            reason: detail,
        },
        ErrorKind::InvalidTlsConfig { message, .. } => Error::TlsConfigInvalid {
            role,
            detail: redact_text(message.trim_end_matches('.')),
        },
        ErrorKind::DnsResolve { .. } => Error::DnsFailure {
            role,
            host: ctx.hosts.to_string(),
        },
        ErrorKind::ServerSelection { message, .. } => {
            from_text(ctx, message).unwrap_or_else(|| Error::ServerSelectionTimeout {
                role,
                hosts: ctx.hosts.to_string(),
                detail,
            })
        }
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            from_text(ctx, &err.kind.to_string()).unwrap_or(Error::Unreachable {
                role,
                hosts: ctx.hosts.to_string(),
                detail,
            })
        }
        _ => Error::mongo(role, action, err.clone()),
    }
}

/// Reads the per-server failure out of a driver message (a server
/// selection timeout embeds each server's last error as text). What the
/// text names is a [`ProbeFailure`], worded by the same constructor as a
/// failure of Mongoferry's own handshake.
pub fn from_text(ctx: &Context<'_>, message: &str) -> Option<Error> {
    let role = ctx.role;
    let m = message.to_ascii_lowercase();
    let host = failing_host(message).unwrap_or_else(|| ctx.hosts.to_string());
    let has = |needle: &str| m.contains(&needle.to_ascii_lowercase());
    // rustls spells some failures as Debug names, others as sentences.
    let failure = if has("UnknownIssuer") || has("BadSignature") {
        ProbeFailure::UntrustedCa
    } else if has("NotValidForName") || has("certificate not valid for name") {
        ProbeFailure::HostnameMismatch
    } else if has("invalid peer certificate: Expired")
        || has("certificate expired")
        || has("NotValidYet")
        || has("certificate not valid yet")
    {
        ProbeFailure::Expired
    } else if has("CertificateRequired")
        || (ctx.client_certificate && (has("alert: UnknownCA") || has("alert: BadCertificate")))
    {
        ProbeFailure::ClientCertificateRequired
    } else if has("failed to lookup address")
        || has("name or service not known")
        || has("no such host")
        || has("nodename nor servname")
        || has("DNS resolution")
    {
        ProbeFailure::Dns
    } else if has("connection refused") {
        ProbeFailure::Refused
    } else if !ctx.tls
        && (has("connection reset") || has("unexpected end of file") || has("early eof"))
    {
        // Not a handshake failure: the server closed a plain connection.
        return Some(Error::TlsRequired { role, host });
    } else if ctx.tls
        && (has("InvalidContentType") || has("corrupt message") || has("InvalidMessage"))
    {
        ProbeFailure::NotTls
    } else if has("timed out") || has("deadline has elapsed") {
        ProbeFailure::Timeout
    } else {
        return None;
    };
    // The text carries no certificate to describe.
    Some(failure.into_error(role, &host, None))
}

/// The first `Address: host:port` in a topology description.
fn failing_host(message: &str) -> Option<String> {
    let start = message.find("Address: ")? + "Address: ".len();
    let rest = &message[start..];
    let end = rest.find([',', ' ', '}'])?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            role: Role::Source,
            hosts: "db1:27017",
            tls: true,
            client_certificate: false,
            user: Some("alice"),
        }
    }

    fn selection(server_error: &str) -> String {
        format!(
            "Server selection timeout: No available servers. Topology: {{ Type: ReplicaSetNoPrimary, Set Name: rs0, Servers: [ {{ Address: db2:27018, Type: Unknown, Error: Kind: I/O error: {server_error}, labels: {{}} }} ] }}"
        )
    }

    #[test]
    fn server_selection_messages_are_classified() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", "tls_untrusted_ca"),
            (
                "invalid peer certificate: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)",
                "tls_hostname_mismatch",
            ),
            ("invalid peer certificate: NotValidForName", "tls_hostname_mismatch"),
            (
                "invalid peer certificate: certificate expired: verification time 1700000000 (UNIX), but certificate is not valid after 1577836800 (122163200 seconds ago)",
                "tls_certificate_expired",
            ),
            ("received fatal alert: CertificateRequired", "tls_client_certificate_required"),
            (
                "failed to lookup address information: Name or service not known",
                "dns_failure",
            ),
            ("Connection refused (os error 111)", "connection_refused"),
            ("connection timed out", "connect_timeout"),
        ];
        for (text, code) in cases {
            let e = from_text(&ctx(), &selection(text)).expect(text);
            assert_eq!(e.code(), code, "{text}");
            assert!(e.to_string().contains("db2"), "{e}");
        }
        assert!(from_text(&ctx(), &selection("something else entirely")).is_none());
    }

    #[test]
    fn a_reset_without_tls_suggests_tls() {
        let c = Context {
            tls: false,
            ..ctx()
        };
        let e = from_text(&c, &selection("Connection reset by peer (os error 104)")).unwrap();
        assert_eq!(e.code(), "tls_required");
    }

    #[test]
    fn host_names_are_stripped_of_ports() {
        use super::super::tls::host_name as host_only;
        assert_eq!(host_only("db1:27017"), "db1");
        assert_eq!(host_only("[::1]:27017"), "::1");
        assert_eq!(host_only("db1"), "db1");
    }
}
