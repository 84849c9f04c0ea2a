//! Enforces a load level ([`crate::load`]) on the copy, and lets it change
//! while the copy runs.
//!
//! Two bounds: how many ranges read at once (a range takes a [`Reader`]
//! before it opens its cursor and keeps it to its end, so a lower count
//! bites as ranges finish, and no cursor is left waiting long enough to be
//! reaped), and how many bytes are read per second (each reply is charged
//! after it arrives, when its size is known, and the reader waits off the
//! debt before it asks for the next one, so a new rate bites at the next
//! reply). A new level forgives the debt run up under the old one, and
//! wakes whoever waits.
//!
//! A hold stops the copy's reads for a moment, at the next reply of each
//! range and before any new range, without pausing the migration: the
//! impact sampler holds it to measure the source idle.
//!
//! The crates made for rate limiting (`governor`, `leaky-bucket`) fix
//! their rate when they are built; this one is changed in place.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::load::Limits;

/// Shared by every range of a copy.
pub struct Limiter {
    limits: watch::Sender<Limits>,
    active: AtomicUsize,
    held: AtomicBool,
    released: Notify,
    /// When the bytes read so far are paid for at the current rate.
    paid_until: Mutex<Instant>,
}

/// A range's right to read; given back when dropped.
pub struct Reader<'a> {
    limiter: &'a Limiter,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.limiter.active.fetch_sub(1, Ordering::AcqRel);
        self.limiter.released.notify_waiters();
    }
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits: watch::Sender::new(limits),
            active: AtomicUsize::new(0),
            held: AtomicBool::new(false),
            released: Notify::new(),
            paid_until: Mutex::new(Instant::now()),
        }
    }

    pub fn limits(&self) -> Limits {
        *self.limits.borrow()
    }

    /// Changes the limits at once: waiting readers and debts are judged
    /// by the new ones.
    pub fn set(&self, limits: Limits) {
        *self.paid() = Instant::now();
        self.limits.send_replace(limits);
        self.released.notify_waiters();
    }

    /// Ranges reading now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Holds every read (true) or lets them go on (false).
    pub fn hold(&self, held: bool) {
        if self.held.swap(held, Ordering::AcqRel) && !held {
            *self.paid() = Instant::now();
            self.released.notify_waiters();
        }
    }

    pub fn held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Waits while the reads are held.
    async fn unheld(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !self.held() {
                return;
            }
            released.await;
        }
    }

    fn paid(&self) -> std::sync::MutexGuard<'_, Instant> {
        // A panic while holding it leaves a plain instant behind: usable.
        self.paid_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until fewer ranges read than the limits allow, then counts
    /// this one in.
    pub async fn reader(&self) -> Reader<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let allowed = self.limits().readers.max(1);
            let now = self.active.load(Ordering::Acquire);
            if !self.held()
                && now < allowed
                && self
                    .active
                    .compare_exchange(now, now + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Reader { limiter: self };
            }
            released.await;
        }
    }

    /// Charges `bytes` just read, and waits until the rate allows the next
    /// read. Returns at once without a rate cap.
    pub async fn charge(&self, bytes: u64) {
        self.unheld().await;
        let mut changed = self.limits.subscribe();
        let Some(rate) = self.limits().bytes_per_second.filter(|r| *r > 0.0) else {
            return;
        };
        let until = {
            let mut paid = self.paid();
            let now = Instant::now();
            // Idle time earns no credit: the debt starts now at the earliest.
            let from = (*paid).max(now);
            *paid = from + Duration::from_secs_f64(bytes as f64 / rate);
            *paid
        };
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            // A new level: its own debt (none yet) decides.
            _ = changed.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_hold_stops_new_ranges_and_the_next_reply_until_released() {
        let limiter = Arc::new(Limiter::new(limits(2, None)));
        limiter.hold(true);
        let waiting_reader = {
            let l = limiter.clone();
            tokio::spawn(async move {
                let _r = l.reader().await;
            })
        };
        let waiting_charge = {
            let l = limiter.clone();
            tokio::spawn(async move { l.charge(1).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!waiting_reader.is_finished() && !waiting_charge.is_finished());
        limiter.hold(false);
        tokio::time::timeout(Duration::from_millis(10), async {
            waiting_reader.await.unwrap();
            waiting_charge.await.unwrap();
        })
        .await
        .expect("both go on once released");
        assert_eq!(limiter.active(), 0);
    }

    const MIB: f64 = 1024.0 * 1024.0;

    fn limits(readers: usize, mib: Option<f64>) -> Limits {
        Limits {
            readers,
            bytes_per_second: mib.map(|m| m * MIB),
            reply_docs: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_paced_at_the_rate_and_a_new_rate_bites_at_once() {
        let limiter = Limiter::new(limits(1, Some(1.0)));
        let start = Instant::now();
        // 4 MiB at 1 MiB/s: 4 s.
        for _ in 0..4 {
            limiter.charge(MIB as u64).await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((3.9..4.1).contains(&took), "{took}");
        // Idle time earns no credit.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        limiter.charge(MIB as u64).await;
        assert!(start.elapsed() >= Duration::from_millis(990));
        // A charge waiting at the old rate is let go by a new one.
        let limiter = Arc::new(limiter);
        let waiting = {
            let l = limiter.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                l.charge(100 * MIB as u64).await;
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        limiter.set(limits(1, None));
        let waited = waiting.await.unwrap();
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        // No cap: no wait.
        let start = Instant::now();
        limiter.charge(1 << 40).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn readers_are_counted_and_more_are_let_in_when_the_level_rises() {
        let limiter = Arc::new(Limiter::new(limits(1, None)));
        let first = limiter.reader().await;
        let second = {
            let l = limiter.clone();
            tokio::spawn(async move {
                let _r = l.reader().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !second.is_finished(),
            "a second reader waits at one allowed"
        );
        limiter.set(limits(2, None));
        let let_in = second.await.unwrap();
        assert!(let_in.elapsed() < Duration::from_secs(1));
        // Given back when dropped, and lowering the count waits for that.
        limiter.set(limits(1, None));
        let third = {
            let l = limiter.clone();
            tokio::spawn(async move {
                let _r = l.reader().await;
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!third.is_finished());
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("let in once the first reader is done")
            .unwrap();
    }
}
