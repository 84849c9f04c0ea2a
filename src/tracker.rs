//! The progress tracker of a running migration: it keeps the progress
//! snapshot, measures rates, lag and ETAs, and publishes every event
//! (progress, state changes, warnings, errors) to the engine's observers.
//!
//! The copy and the apply path report what they did here; the state
//! machine reports its states. It reads no server: the once-a-second tick
//! that hands it the source's cluster time lives in the state machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::Timestamp;
use tokio::sync::{broadcast, watch};

use crate::catalog::NsKind;
use crate::checkpoint::{MigrationDoc, NamespaceDoc, PartitionDoc};
use crate::error::Error;
use crate::progress::{
    CollectionProgress, DirectionMapping, Event, EventSource, Phase, Progress, RateMeter, State,
    VerificationStatus, VerifyProgress,
};

fn secs_between(later: Timestamp, earlier: Timestamp) -> f64 {
    (later.time as f64 - earlier.time as f64).max(0.0)
}

/// How far back rates (bytes and events a second) look.
const RATE_WINDOW: Duration = Duration::from_secs(10);

struct Meters {
    copy_bytes: RateMeter,
    events: RateMeter,
    applied_ms: RateMeter,
    start_at: Option<Timestamp>,
    applied: Option<Timestamp>,
    source_time: Option<Timestamp>,
    commit_target: Option<Timestamp>,
    ns_index: HashMap<String, usize>,
    /// Copy ranges not yet done.
    ranges_left: usize,
    stall: Stall,
}

impl Meters {
    fn new() -> Meters {
        Meters {
            copy_bytes: RateMeter::new(RATE_WINDOW),
            events: RateMeter::new(RATE_WINDOW),
            applied_ms: RateMeter::new(RATE_WINDOW),
            start_at: None,
            applied: None,
            source_time: None,
            commit_target: None,
            ns_index: HashMap::new(),
            ranges_left: 0,
            stall: Stall::default(),
        }
    }
}

/// Notices a copy that has stopped moving: a destination that no longer
/// takes writes (a full disk, `fsyncLock`) or a source that no longer
/// answers makes the copy wait without an error, which the user must hear
/// about.
#[derive(Debug, Default)]
struct Stall {
    /// When the copied bytes last changed (or the watch began), and to what.
    since: Option<(Instant, u64)>,
    warned: bool,
}

/// What [`Stall::observe`] has to say.
#[derive(Debug, PartialEq)]
enum StallNews {
    /// Nothing copied for this long.
    Stalled(Duration),
    /// Moving again after a stall that was reported, which lasted this long.
    Moving(Duration),
}

impl Stall {
    /// Takes the copied bytes at `now`; `copying` says whether ranges are
    /// being copied and not paused (only then is standing still news).
    fn observe(
        &mut self,
        now: Instant,
        copying: bool,
        bytes: u64,
        limit: Duration,
    ) -> Option<StallNews> {
        if !copying {
            self.since = None;
            self.warned = false;
            return None;
        }
        match self.since {
            Some((at, before)) if before == bytes => {
                let still = now.saturating_duration_since(at);
                if !self.warned && still >= limit {
                    self.warned = true;
                    return Some(StallNews::Stalled(still));
                }
                None
            }
            Some((at, _)) => {
                self.since = Some((now, bytes));
                if std::mem::take(&mut self.warned) {
                    return Some(StallNews::Moving(now.saturating_duration_since(at)));
                }
                None
            }
            None => {
                self.since = Some((now, bytes));
                None
            }
        }
    }
}

struct TrackerInner {
    progress: watch::Sender<Progress>,
    events: broadcast::Sender<Event>,
    meters: Mutex<Meters>,
}

/// Keeps the progress snapshot and publishes events.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<TrackerInner>,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        let (progress, _) = watch::channel(Progress::default());
        let (events, _) = broadcast::channel(1024);
        Tracker {
            inner: Arc::new(TrackerInner {
                progress,
                events,
                meters: Mutex::new(Meters::new()),
            }),
        }
    }

    fn meters(&self) -> std::sync::MutexGuard<'_, Meters> {
        // A panic while holding the lock leaves plain counters behind; go on.
        self.inner.meters.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Progress {
        self.inner.progress.borrow().clone()
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        self.inner.progress.send_modify(f);
    }

    /// The latest progress, updated in place.
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub fn publish(&self) {
        let _ = self.inner.events.send(Event::Progress(self.snapshot()));
    }

    pub fn set_state(&self, to: State) {
        let mut from = to;
        self.update(|p| {
            from = p.state;
            p.state = to;
            p.can_write = to == State::Committed;
            if to != State::Running {
                p.can_commit = false;
            }
        });
        if from != to {
            tracing::info!(%from, %to, "state");
            let _ = self.inner.events.send(Event::StateChanged { from, to });
        }
    }

    pub(crate) fn set_event_source(&self, source: EventSource) {
        self.update(|p| p.event_source = Some(source));
    }

    pub(crate) fn set_load(&self, status: crate::load::LoadStatus) {
        self.update(|p| p.load = Some(Box::new(status)));
    }

    pub(crate) fn set_impact(&self, impact: crate::progress::SourceImpact) {
        self.update(|p| p.source_impact = Some(Box::new(impact)));
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        let mut from = phase;
        self.update(|p| {
            from = p.phase;
            p.phase = phase;
        });
        if from != phase {
            tracing::info!(from = ?from, to = ?phase, "phase");
        }
    }

    pub(crate) fn set_start(&self, m: &MigrationDoc) {
        let mut meters = self.meters();
        meters.start_at = Some(m.start_at);
        meters.applied = m.applied_time();
        meters.commit_target = m.commit_target;
        drop(meters);
        self.set_migration(&m.migration_id, m.reversible);
    }

    /// Which migration this is, and whether it keeps a way back.
    pub(crate) fn set_migration(&self, id: &str, reversible: bool) {
        self.update(|p| {
            p.migration_id = id.to_string();
            p.reversible = reversible;
        });
    }

    pub(crate) fn set_direction(&self, mapping: DirectionMapping) {
        self.update(|p| p.direction_mapping = Some(Box::new(mapping)));
    }

    pub(crate) fn set_source_time(&self, t: Timestamp) {
        self.meters().source_time = Some(t);
    }

    /// The migration's start and the source's latest cluster time, once
    /// known.
    pub(crate) fn start_and_source_time(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        let m = self.meters();
        (m.start_at, m.source_time)
    }

    pub(crate) fn init_collections(
        &self,
        namespaces: &[NamespaceDoc],
        partitions: &[PartitionDoc],
    ) {
        let mut done: HashMap<&str, (u64, u64)> = HashMap::new();
        for p in partitions.iter().filter(|p| p.done) {
            let e = done.entry(p.ns.as_str()).or_default();
            e.0 += p.docs;
            e.1 += p.bytes;
        }
        let collections: Vec<CollectionProgress> = namespaces
            .iter()
            .filter(|n| n.kind == NsKind::Collection)
            .map(|n| {
                let (docs, bytes) = done.get(n.ns.as_str()).copied().unwrap_or_default();
                CollectionProgress {
                    namespace: n.ns.clone(),
                    estimated_total_docs: n.estimated_docs,
                    estimated_total_bytes: n.estimated_bytes,
                    copied_docs: docs,
                    copied_bytes: bytes,
                    done: n.copied,
                }
            })
            .collect();
        self.meters().ranges_left = partitions.iter().filter(|p| !p.done).count();
        // Positions in the progress list, so per-batch updates find theirs.
        self.meters().ns_index = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.namespace.clone(), i))
            .collect();
        self.update(|p| {
            let c = &mut p.collection_copy;
            c.estimated_total_bytes = collections.iter().map(|c| c.estimated_total_bytes).sum();
            c.estimated_total_docs = collections.iter().map(|c| c.estimated_total_docs).sum();
            c.estimated_copied_bytes = collections.iter().map(|c| c.copied_bytes).sum();
            c.copied_docs = collections.iter().map(|c| c.copied_docs).sum();
            c.collections = collections;
        });
    }

    pub(crate) fn add_copied(&self, ns: &str, docs: u64, bytes: u64) {
        let idx = self.meters().ns_index.get(ns).copied();
        self.update(|p| {
            let c = &mut p.collection_copy;
            c.copied_docs += docs;
            c.estimated_copied_bytes += bytes;
            if let Some(col) = idx.and_then(|i| c.collections.get_mut(i)) {
                col.copied_docs += docs;
                col.copied_bytes += bytes;
            }
        });
    }

    /// One copy range is done.
    pub(crate) fn range_done(&self) {
        let mut m = self.meters();
        m.ranges_left = m.ranges_left.saturating_sub(1);
    }

    pub(crate) fn collection_done(&self, ns: &str) {
        tracing::info!(%ns, "collection copied and indexed");
        let idx = self.meters().ns_index.get(ns).copied();
        self.update(|p| {
            if let Some(col) = idx.and_then(|i| p.collection_copy.collections.get_mut(i)) {
                col.done = true;
            }
        });
    }

    pub(crate) fn add_failed(&self, n: u64) {
        self.update(|p| p.documents_failed += n);
    }

    pub(crate) fn applied(&self, events: u64, at: Option<Timestamp>) {
        if let Some(t) = at {
            let mut m = self.meters();
            m.applied = Some(t);
            // An idle stream has applied everything the source had when the
            // lag was last measured: without this, the first batch after a
            // quiet spell would count the whole quiet spell as lag.
            if events == 0 {
                if let Some(s) = m.source_time {
                    if (s.time, s.increment) > (t.time, t.increment) {
                        m.applied = Some(s);
                    }
                }
            }
        }
        self.update(|p| p.total_events_applied += events);
    }

    pub(crate) fn committing(&self, target: Timestamp) {
        self.meters().commit_target = Some(target);
        self.set_state(State::Committing);
        self.set_phase(Phase::Committing);
    }

    pub(crate) fn committed(&self) {
        self.set_phase(Phase::Done);
        self.set_state(State::Committed);
        self.update(|p| {
            p.lag_time_seconds = Some(0.0);
            p.eta_seconds = Some(0.0);
        });
    }

    /// A reverse begins: the commit's figures belong to the direction
    /// before; its own events, lag, commit and verification are ahead, and
    /// it copies nothing. The figures count per direction, as a resumed
    /// reverse counts them too.
    pub(crate) fn reversed(&self) {
        {
            // The clocks go on until the reverse's own start is set; every
            // other meter starts afresh.
            let mut m = self.meters();
            *m = Meters {
                start_at: m.start_at,
                source_time: m.source_time,
                ..Meters::new()
            };
        }
        self.update(|p| {
            p.verification = None;
            p.lag_time_seconds = None;
            p.eta_seconds = None;
            p.can_commit = false;
            p.total_events_applied = 0;
            p.events_per_second = 0.0;
            p.documents_failed = 0;
            p.collection_copy = Default::default();
            p.direction_mapping = p.direction_mapping.as_ref().map(|d| Box::new(d.reversed()));
        });
        self.set_phase(Phase::Applying);
    }

    pub(crate) fn set_verification(&self, v: VerificationStatus) {
        self.update(|p| p.verification = Some(Box::new(v)));
        self.publish();
    }

    pub(crate) fn verification_progress(&self, vp: VerifyProgress) {
        self.update(|p| {
            if let Some(v) = p.verification.as_mut() {
                v.progress = vp.clone();
            }
        });
        let _ = self.inner.events.send(Event::Verify(vp));
    }

    pub fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.update(|p| {
            p.warnings.push(message.clone());
            if p.warnings.len() > 20 {
                p.warnings.remove(0);
            }
        });
        let _ = self.inner.events.send(Event::Warning { message });
    }

    pub(crate) fn fail(&self, e: &Error) {
        let info = e.info();
        self.update(|p| p.error = Some(info.clone()));
        self.set_state(State::Failed);
        let _ = self.inner.events.send(Event::Error(info));
    }

    /// Recomputes rates, lag, ETA and canCommit.
    pub(crate) fn refresh(&self, max_lag: Duration, stall_limit: Duration) {
        let now = Instant::now();
        let p = self.snapshot();
        let mut m = self.meters();
        let copying = p.phase == Phase::Copying && p.state == State::Running && m.ranges_left > 0;
        let ranges_left = m.ranges_left;
        let stall = m.stall.observe(
            now,
            copying,
            p.collection_copy.estimated_copied_bytes,
            stall_limit,
        );
        m.copy_bytes
            .record(now, p.collection_copy.estimated_copied_bytes);
        m.events.record(now, p.total_events_applied);
        let reference = match p.phase {
            Phase::Applying | Phase::Committing => m.applied.or(m.start_at),
            _ => m.start_at,
        };
        if let Some(a) = reference {
            m.applied_ms.record(now, a.time as u64 * 1000);
        }
        let lag = match (m.source_time, reference) {
            (Some(s), Some(a)) if p.phase != Phase::Done => Some(secs_between(s, a)),
            _ => p.lag_time_seconds,
        };
        // No total yet (the copy is still being planned) is not a total
        // of zero: there is no ETA until the plan says what to copy.
        let copy_eta = (p.collection_copy.estimated_total_bytes > 0)
            .then(|| {
                m.copy_bytes.eta(
                    p.collection_copy.estimated_copied_bytes,
                    p.collection_copy.estimated_total_bytes,
                )
            })
            .flatten();
        let eta = match p.phase {
            Phase::Copying => copy_eta,
            Phase::Committing => match (m.commit_target, reference) {
                (Some(t), Some(a)) => m.applied_ms.eta(a.time as u64 * 1000, t.time as u64 * 1000),
                _ => None,
            },
            Phase::Done => Some(0.0),
            _ => None,
        };
        let bytes_per_second = m.copy_bytes.per_second();
        let events_per_second = m.events.per_second();
        drop(m);
        match stall {
            Some(StallNews::Stalled(still)) => self.warn(format!(
                "Nothing has been copied for {} s while {ranges_left} ranges remain: the destination may not be taking writes (a full disk, or writes locked with fsyncLock) or the source may not be answering. Check both servers' free space and logs; the copy goes on by itself once they recover.",
                still.as_secs()
            )),
            Some(StallNews::Moving(after)) => self.warn(format!(
                "The copy is moving again, after {} s without progress.",
                after.as_secs()
            )),
            None => {}
        }
        self.update(|p| {
            p.lag_time_seconds = lag;
            p.eta_seconds = eta;
            p.collection_copy.eta_seconds = copy_eta;
            p.collection_copy.bytes_per_second = bytes_per_second;
            p.events_per_second = events_per_second;
            p.can_commit = p.state == State::Running
                && p.phase == Phase::Applying
                && lag.is_some_and(|l| l <= max_lag.as_secs_f64());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_that_stands_still_is_reported_once_then_its_recovery() {
        let limit = Duration::from_secs(60);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut stall = Stall::default();
        assert_eq!(stall.observe(at(0), true, 100, limit), None);
        assert_eq!(stall.observe(at(30), true, 100, limit), None);
        assert_eq!(
            stall.observe(at(61), true, 100, limit),
            Some(StallNews::Stalled(Duration::from_secs(61)))
        );
        // Said once.
        assert_eq!(stall.observe(at(90), true, 100, limit), None);
        assert_eq!(
            stall.observe(at(95), true, 200, limit),
            Some(StallNews::Moving(Duration::from_secs(95)))
        );
        // Moving: no news, and a new watch starts from the last change.
        assert_eq!(stall.observe(at(100), true, 300, limit), None);
        assert_eq!(stall.observe(at(150), true, 300, limit), None);
        // A pause (or no range left) is no stall, however long.
        assert_eq!(stall.observe(at(300), false, 300, limit), None);
        assert_eq!(stall.observe(at(301), true, 300, limit), None);
        assert_eq!(stall.observe(at(340), true, 300, limit), None);
        assert!(matches!(
            stall.observe(at(362), true, 300, limit),
            Some(StallNews::Stalled(_))
        ));
    }
}
