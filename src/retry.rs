//! Retrying transient failures with capped exponential backoff, and reading
//! the statements a write command rejected.
//!
//! Whether a failure is transient is the error's to say
//! ([`crate::Error::is_transient`], from [`crate::driver_error`]); this
//! module only decides how long to wait and when to give up. It knows
//! nothing of migrations.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, Role};

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

/// The statements a destination write command's reply rejected, each the
/// document's own problem. A write concern error is the whole command's,
/// and transient: the statements may be in, and the caller's idempotent
/// batch is sent again. So is a statement refused because the cluster is
/// changing hands; a statement refused for what the server is (writes
/// blocked, no privilege, no disk) fails the whole write for good.
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
    let errors: Vec<WriteError> = errors
        .iter()
        .filter_map(bson::Bson::as_document)
        .map(|e| WriteError {
            index: e.get_i32("index").unwrap_or(0).max(0) as usize,
            code: e.get_i32("code").unwrap_or(0),
            message: e.get_str("errmsg").unwrap_or_default(),
        })
        .collect();
    use crate::driver_error::{SERVER_REFUSAL_WRITE_CODES, TRANSIENT_WRITE_CODES};
    let whole = |code: i32| {
        TRANSIENT_WRITE_CODES.contains(&code) || SERVER_REFUSAL_WRITE_CODES.contains(&code)
    };
    if let Some(e) = errors.iter().find(|e| whole(e.code)) {
        return Err(Error::Mongo {
            role: Role::Destination,
            op: op(),
            message: crate::uri::redact_text(e.message),
            code: Some(e.code),
            transient: TRANSIENT_WRITE_CODES.contains(&e.code),
        });
    }
    Ok(errors)
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

    fn reply(codes: &[i32]) -> bson::Document {
        let errors: Vec<bson::Bson> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                bson::Bson::Document(
                    bson::doc! { "index": i as i32, "code": c, "errmsg": format!("code {c}") },
                )
            })
            .collect();
        bson::doc! { "ok": 1, "n": 0, "writeErrors": errors }
    }

    #[test]
    fn document_errors_are_the_documents() {
        let r = reply(&[11000, 121]);
        let errors = write_errors(&r, || "insert into a.b".into()).unwrap();
        let codes: Vec<i32> = errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, vec![11000, 121]);
        assert_eq!(errors[1].index, 1);
    }

    #[test]
    fn a_cluster_changing_hands_fails_the_batch_for_a_retry() {
        let r = reply(&[121, 11600]);
        let e = write_errors(&r, || "insert into a.b".into()).unwrap_err();
        assert!(e.is_transient(), "{e:?}");
    }

    #[test]
    fn a_server_refusal_fails_the_batch_for_good() {
        let r = reply(&[371]);
        let e = write_errors(&r, || "insert into a.b".into()).unwrap_err();
        assert!(!e.is_transient(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "The destination cluster failed to insert into a.b: code 371."
        );
    }
}
