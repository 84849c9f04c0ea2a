//! Classifying driver errors as transient or fatal, and retrying transient
//! ones with capped exponential backoff.
//!
//! This module knows server error codes; it knows nothing of migrations.

use std::future::Future;
use std::time::Duration;

use mongodb::error::{Error as DriverError, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, Role};

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

/// Capped exponential backoff for transient failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    /// Attempts so far.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(10))
    }
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first,
            max,
            attempts: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempts += 1;
        d
    }

    pub fn reset(&mut self) {
        *self = Backoff::new(Duration::from_millis(250), self.max);
    }
}

/// How long transient failures are retried before the migration gives up
/// and reports them (a restart or election takes seconds; an outage of
/// this length needs a person).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// One statement a write command (`insert`, `update`, `delete`) rejected.
#[derive(Debug)]
pub struct WriteError<'a> {
    /// The statement's position in the command.
    pub index: usize,
    pub code: i32,
    pub message: &'a str,
}

/// The statements a destination write command's reply rejected. A write
/// concern error is the whole command's, and transient: the statements may
/// be in, and the caller's idempotent batch is sent again.
pub fn write_errors<'a>(
    reply: &'a bson::Document,
    op: impl Fn() -> String,
) -> Result<Vec<WriteError<'a>>> {
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(Error::Mongo {
            role: Role::Destination,
            op: op(),
            message: crate::uri::redact_text(
                wce.get_str("errmsg").unwrap_or("write concern failed"),
            ),
            code: wce.get_i32("code").ok(),
            transient: true,
        });
    }
    let Ok(errors) = reply.get_array("writeErrors") else {
        return Ok(Vec::new());
    };
    Ok(errors
        .iter()
        .filter_map(bson::Bson::as_document)
        .map(|e| WriteError {
            index: e.get_i32("index").unwrap_or(0).max(0) as usize,
            code: e.get_i32("code").unwrap_or(0),
            message: e.get_str("errmsg").unwrap_or_default(),
        })
        .collect())
}

/// Runs `op` until it succeeds, fails for good, or transient failures have
/// lasted longer than [`GIVE_UP_AFTER`]. Cancellation returns `Interrupted`.
pub async fn with_retry<T, F, Fut>(what: &str, cancel: &CancellationToken, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::default();
    let started = tokio::time::Instant::now();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() < GIVE_UP_AFTER => {
                let delay = backoff.next_delay();
                tracing::warn!(what, error = %e, attempt = backoff.attempts, ?delay, "transient failure; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(Error::Interrupted),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
        assert_eq!(b.attempts, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_succeeds() {
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let out = with_retry("test", &cancel, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(Error::Mongo {
                        role: crate::Role::Source,
                        op: "read".into(),
                        message: "boom".into(),
                        code: Some(91),
                        transient: true,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.ok(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_are_not_retried() {
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let out: Result<()> = with_retry("test", &cancel, || {
            calls += 1;
            async { Err(Error::HistoryLost) }
        })
        .await;
        assert!(matches!(out, Err(Error::HistoryLost)));
        assert_eq!(calls, 1);
    }
}
