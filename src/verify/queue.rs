//! The live verification's recheck queue: the documents that changed or
//! were found different and are not settled yet, when each is due for
//! another comparison, and the bound on how many it holds
//! ([`MAX_QUEUED`]; past it a collection is rescanned instead).
//!
//! It knows nothing of servers: the readers of the change streams and
//! oplogs and the comparisons that feed and drain it are in
//! [`super::recheck`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bson::{Bson, Timestamp};

use super::diff::value_key;
use super::options::LiveOptions;
use super::report::Difference;
use crate::error::{Error, Result};
use crate::scope::Namespace;

/// Documents rechecked per round, at most.
pub const RECHECK_BATCH: usize = 5_000;

/// Documents the queue holds at most, about 200 bytes each.
pub const MAX_QUEUED: usize = 200_000;

#[derive(Debug)]
struct Entry {
    ns: Namespace,
    id: Bson,
    /// Bumped by every change event; a recheck whose generation is stale
    /// says nothing about the document's current state.
    generation: u64,
    last_change: Instant,
    last_check: Option<Instant>,
}

/// What reports one side's changes to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// The side's change stream: every collection's documents but buckets.
    ChangeStream = 0,
    /// The side's oplog, tailed for the writes to time-series buckets
    /// that change streams do not report; only when the scope holds some.
    Oplog = 1,
}

#[derive(Default)]
struct State {
    entries: HashMap<(String, Vec<u8>), Entry>,
    rescans: BTreeSet<Namespace>,
    /// How far each feed of each side has read (`[feed][side]`); `None`
    /// for a feed that does not run.
    seen: [[Option<Timestamp>; 2]; 2],
    failed: Option<Error>,
}

/// The recheck queue of one live verification.
pub struct Rechecks {
    state: Mutex<State>,
    pub(super) interval: Duration,
    settle: Duration,
    capacity: usize,
}

/// One document due for a recheck.
#[derive(Debug, Clone)]
pub struct Due {
    pub ns: Namespace,
    pub id: Bson,
    key: Vec<u8>,
    generation: u64,
}

impl Rechecks {
    pub fn new(live: &LiveOptions) -> Rechecks {
        Rechecks::with_capacity(live, MAX_QUEUED)
    }

    fn with_capacity(live: &LiveOptions, capacity: usize) -> Rechecks {
        Rechecks {
            state: Mutex::new(State::default()),
            interval: Duration::from_secs_f64(live.recheck_interval_seconds.max(0.01)),
            settle: Duration::from_secs_f64(live.settle_seconds.max(0.0)),
            capacity: capacity.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A change event touched this document. With the queue full, a
    /// document not in it already queues its collection for a rescan.
    pub fn changed(&self, ns: &Namespace, id: &Bson) {
        let now = Instant::now();
        let mut st = self.state();
        let key = (ns.to_string(), value_key(id));
        if st.entries.len() >= self.capacity && !st.entries.contains_key(&key) {
            st.rescans.insert(ns.clone());
            return;
        }
        let e = st.entries.entry(key).or_insert_with(|| Entry {
            ns: ns.clone(),
            id: id.clone(),
            generation: 0,
            last_change: now,
            last_check: None,
        });
        e.generation += 1;
        e.last_change = now;
    }

    /// A comparison found this document different: compare it again.
    ///
    /// With the queue full this fails: a rescan, as [`Rechecks::changed`]
    /// falls back on, would find the same differences and queue them again,
    /// and so many differences mean the sync is far behind (still copying,
    /// or lagging), which a verification cannot settle.
    pub fn suspect(&self, ns: &Namespace, id: &Bson) -> Result<()> {
        let now = Instant::now();
        let mut st = self.state();
        let key = (ns.to_string(), value_key(id));
        if st.entries.len() >= self.capacity && !st.entries.contains_key(&key) {
            return Err(Error::TooManyLiveDifferences {
                limit: self.capacity,
            });
        }
        st.entries.entry(key).or_insert_with(|| Entry {
            ns: ns.clone(),
            id: id.clone(),
            generation: 0,
            last_change: now,
            last_check: Some(now),
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Documents quiet for the interval and not checked within it.
    pub fn due(&self, now: Instant) -> Vec<Due> {
        let st = self.state();
        st.entries
            .iter()
            .filter(|(_, e)| {
                now.duration_since(e.last_change) >= self.interval
                    && e.last_check
                        .is_none_or(|c| now.duration_since(c) >= self.interval)
            })
            .take(RECHECK_BATCH)
            .map(|((_, key), e)| Due {
                ns: e.ns.clone(),
                id: e.id.clone(),
                key: key.clone(),
                generation: e.generation,
            })
            .collect()
    }

    /// Records a recheck's outcome; returns the difference once it is
    /// confirmed (stable for the settle time).
    pub fn resolve(
        &self,
        due: &Due,
        outcome: Option<Difference>,
        now: Instant,
    ) -> Option<Difference> {
        let mut st = self.state();
        let k = (due.ns.to_string(), due.key.clone());
        let e = st.entries.get_mut(&k)?;
        if e.generation != due.generation {
            // It changed while being compared: look again later.
            e.last_check = Some(now);
            return None;
        }
        match outcome {
            None => {
                st.entries.remove(&k);
                None
            }
            Some(d) if now.duration_since(e.last_change) >= self.settle => {
                st.entries.remove(&k);
                Some(d)
            }
            Some(_) => {
                e.last_check = Some(now);
                None
            }
        }
    }

    pub fn rescan(&self, ns: Namespace) {
        self.state().rescans.insert(ns);
    }

    pub fn take_rescans(&self) -> Vec<Namespace> {
        std::mem::take(&mut self.state().rescans)
            .into_iter()
            .collect()
    }

    /// `feed` of `side` has read everything up to `t`.
    pub(super) fn note_seen(&self, feed: Feed, side: usize, t: Timestamp) {
        let mut st = self.state();
        let seen = &mut st.seen[feed as usize][side];
        if seen.is_none_or(|s| (t.time, t.increment) > (s.time, s.increment)) {
            *seen = Some(t);
        }
    }

    /// How far `feed` of `side` has read; `None` when it does not run.
    pub(super) fn seen(&self, feed: Feed, side: usize) -> Option<Timestamp> {
        self.state().seen[feed as usize][side]
    }

    pub(super) fn fail(&self, e: Error) {
        self.state().failed.get_or_insert(e);
    }

    pub(super) fn failure(&self) -> Option<Error> {
        self.state().failed.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::DifferenceKind;

    fn live(interval: f64, settle: f64) -> LiveOptions {
        LiveOptions {
            recheck_interval_seconds: interval,
            settle_seconds: settle,
        }
    }

    fn diff() -> Difference {
        Difference::namespace_level(
            &Namespace::new("a", "b"),
            DifferenceKind::Different,
            "x".into(),
        )
    }

    #[test]
    fn a_document_is_rechecked_once_quiet_and_leaves_when_equal() {
        let r = Rechecks::new(&live(1.0, 10.0));
        let ns = Namespace::new("a", "b");
        let t0 = Instant::now();
        r.changed(&ns, &Bson::Int32(1));
        r.changed(&ns, &Bson::Int64(1)); // the same document
        assert_eq!(r.len(), 1);
        assert!(r.due(t0).is_empty(), "not quiet yet");
        let due = r.due(t0 + Duration::from_secs(2));
        assert_eq!(due.len(), 1);
        assert_eq!(r.resolve(&due[0], None, t0 + Duration::from_secs(2)), None);
        assert!(r.is_empty());
    }

    #[test]
    fn a_difference_is_confirmed_only_after_the_settle_time() {
        let r = Rechecks::new(&live(1.0, 5.0));
        let ns = Namespace::new("a", "b");
        r.changed(&ns, &Bson::Int32(1));
        let t0 = Instant::now();
        let due = r.due(t0 + Duration::from_secs(1));
        assert_eq!(
            r.resolve(&due[0], Some(diff()), t0 + Duration::from_secs(1)),
            None
        );
        assert_eq!(r.len(), 1);
        // Checked a second ago: not due again yet.
        assert!(r.due(t0 + Duration::from_millis(1500)).is_empty());
        let due = r.due(t0 + Duration::from_secs(6));
        assert!(r
            .resolve(&due[0], Some(diff()), t0 + Duration::from_secs(6))
            .is_some());
        assert!(r.is_empty());
    }

    #[test]
    fn a_change_during_a_recheck_keeps_the_document_queued() {
        let r = Rechecks::new(&live(0.0, 0.0));
        let ns = Namespace::new("a", "b");
        r.suspect(&ns, &Bson::String("k".into())).unwrap();
        let due = r.due(Instant::now() + Duration::from_secs(1));
        r.changed(&ns, &Bson::String("k".into()));
        assert_eq!(r.resolve(&due[0], None, Instant::now()), None);
        assert_eq!(r.len(), 1, "the stale recheck must not clear it");
    }

    #[test]
    fn a_full_queue_rescans_the_collection_of_a_new_document_instead() {
        let r = Rechecks::with_capacity(&live(0.0, 0.0), 2);
        let (a, b) = (Namespace::new("a", "b"), Namespace::new("a", "c"));
        r.changed(&a, &Bson::Int32(1));
        r.changed(&a, &Bson::Int32(2));
        r.changed(&a, &Bson::Int32(1)); // already queued: still tracked
        assert!(r.take_rescans().is_empty());
        r.changed(&b, &Bson::Int32(3));
        assert_eq!(r.len(), 2, "the queue does not grow past its capacity");
        assert_eq!(r.take_rescans(), vec![b]);
    }

    #[test]
    fn each_feed_of_each_side_keeps_how_far_it_has_read() {
        let r = Rechecks::new(&live(0.0, 0.0));
        let t = |time| Timestamp { time, increment: 1 };
        r.note_seen(Feed::ChangeStream, 0, t(5));
        r.note_seen(Feed::ChangeStream, 0, t(4)); // never backwards
        r.note_seen(Feed::Oplog, 1, t(7));
        assert_eq!(r.seen(Feed::ChangeStream, 0), Some(t(5)));
        assert_eq!(r.seen(Feed::ChangeStream, 1), None);
        // A feed that does not run has read nothing.
        assert_eq!(r.seen(Feed::Oplog, 0), None);
        assert_eq!(r.seen(Feed::Oplog, 1), Some(t(7)));
    }

    #[test]
    fn a_difference_past_a_full_queue_ends_the_verification() {
        let r = Rechecks::with_capacity(&live(0.0, 0.0), 2);
        let ns = Namespace::new("a", "b");
        r.suspect(&ns, &Bson::Int32(1)).unwrap();
        r.changed(&ns, &Bson::Int32(2));
        // Already queued: found different again, it is still tracked.
        r.suspect(&ns, &Bson::Int32(2)).unwrap();
        let err = r.suspect(&ns, &Bson::Int32(3)).unwrap_err();
        assert_eq!(err.code(), "too_many_live_differences");
        assert_eq!(r.len(), 2);
        assert!(r.take_rescans().is_empty(), "a rescan would find it again");
    }
}
