//! What a driver error says: the server's error code, whether the same
//! operation may succeed if tried again, and its message with any secret
//! masked.
//!
//! This module knows server error codes and the driver's error kinds; it
//! knows nothing of migrations, nor of the engine's own [`crate::Error`],
//! which is built from what it reads here.

use mongodb::error::{Error as DriverError, ErrorKind};

pub const DUPLICATE_KEY: i32 = 11000;
pub const NAMESPACE_NOT_FOUND: i32 = 26;
pub const NAMESPACE_EXISTS: i32 = 48;
pub const KEY_NOT_FOUND: i32 = 211;
pub const UNAUTHORIZED: i32 = 13;
pub const AUTHENTICATION_FAILED: i32 = 18;
pub const INDEX_NOT_FOUND: i32 = 27;
pub const INDEX_OPTIONS_CONFLICT: i32 = 85;
pub const INDEX_KEY_SPECS_CONFLICT: i32 = 86;
pub const CHANGE_STREAM_HISTORY_LOST: i32 = 286;
pub const OPLOG_QUERY_MIN_TS_MISSING: i32 = 326;
/// A tailable cursor of a capped collection (the oplog) fell behind its
/// truncation.
pub const CAPPED_POSITION_LOST: i32 = 136;

/// Codes after which the same operation, tried again later, may succeed:
/// network trouble, elections, shutdowns and restarts.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
    63,    // StaleShardVersion
    150,   // StaleEpoch
    13388, // StaleConfig
    234,   // RetryChangeStream
    133,   // FailedToSatisfyReadPreference
    43,    // CursorNotFound: the server restarted under an open cursor
    175,   // QueryPlanKilled
    237,   // CursorKilled
];

/// The server's error code, for command, write and write-concern errors.
/// Write-error codes that fail a statement only while the cluster changes
/// hands; the whole (idempotent) batch is retried.
pub const TRANSIENT_WRITE_CODES: &[i32] = &[91, 189, 10107, 11600, 11602, 13435, 13436];

/// Write-error codes that refuse a statement for what the server is, not
/// for what the document is: no statement of the batch can succeed, so
/// the whole write fails (and is not recorded against one document).
pub const SERVER_REFUSAL_WRITE_CODES: &[i32] = &[
    13,    // Unauthorized
    371,   // UserWritesBlocked
    14031, // OutOfDiskSpace
];

pub fn server_code(err: &DriverError) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(e) => Some(e.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(e)) => Some(e.code),
        ErrorKind::InsertMany(e) => e.write_concern_error.as_ref().map(|w| w.code).or_else(|| {
            e.write_errors
                .as_ref()
                .and_then(|w| w.first())
                .map(|w| w.code)
        }),
        _ => None,
    }
}

/// [`message`], with any connection-string secret in it masked: what an
/// error or a finding may show.
pub fn redacted_message(err: &DriverError) -> String {
    crate::uri::redact_text(&message(err))
}

/// The error's own message, without the driver's Debug decoration.
pub fn message(err: &DriverError) -> String {
    match err.kind.as_ref() {
        ErrorKind::Command(e) => format!("{} ({})", e.message, e.code_name),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(e)) => e.message.clone(),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(e)) => e.message.clone(),
        ErrorKind::InsertMany(e) => match (&e.write_concern_error, &e.write_errors) {
            (Some(w), _) => w.message.clone(),
            (None, Some(w)) if !w.is_empty() => {
                format!(
                    "{} of the documents failed, the first with: {}",
                    w.len(),
                    w[0].message
                )
            }
            _ => "the insert failed".to_string(),
        },
        ErrorKind::Io(e) => e.to_string(),
        ErrorKind::ServerSelection { message, .. } => server_selection_summary(message),
        ErrorKind::Authentication { message, .. } => message.trim_end_matches('.').to_string(),
        _ => err.kind.to_string(),
    }
    .trim_end_matches('.')
    .to_string()
}

/// The driver's server-selection error lists its whole view of the
/// topology; the user needs the reason in a few words.
fn server_selection_summary(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    let reason = if m.contains("connection refused") {
        "the connection was refused"
    } else if m.contains("failed to lookup address")
        || m.contains("name or service not known")
        || m.contains("dns")
    {
        "the host name could not be resolved"
    } else if m.contains("certificate") || m.contains("tls") || m.contains("handshake") {
        "the TLS handshake failed"
    } else if m.contains("timed out") || m.contains("timeout") {
        "no server answered in time"
    } else if m.contains("replica set name") || m.contains("setname") {
        "the replica set name does not match"
    } else {
        "no suitable server answered"
    };
    reason.to_string()
}

/// Whether the same operation may succeed if tried again later.
pub fn is_transient(err: &DriverError) -> bool {
    if err.contains_label("RetryableWriteError")
        || err.contains_label("ResumableChangeStreamError")
        || err.contains_label("TransientTransactionError")
    {
        return true;
    }
    match err.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. } => true,
        _ => server_code(err).is_some_and(|c| TRANSIENT_CODES.contains(&c)),
    }
}

/// Whether a driver error is the server refusing for lack of privileges.
pub fn is_unauthorized(e: &DriverError) -> bool {
    matches!(server_code(e), Some(UNAUTHORIZED | AUTHENTICATION_FAILED))
}
