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
