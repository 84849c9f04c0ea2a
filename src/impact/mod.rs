//! Watches what the migration's reads do to the source, and, in the
//! adaptive mode, holds the copy to what the source can bear.
//!
//! Once a second it reads the source primary's `serverStatus` (write
//! latency, queued operations, read tickets, cache), every five seconds
//! `replSetGetStatus` (the secondaries' lag), and all the time it times
//! point reads of one document, twenty a second, from a thread and a
//! connection of its own so that the copy's own work cannot delay them.
//! The figures go to progress as `sourceImpact`.
//!
//! "Idle" is the source before the copy reads it: the point reads timed
//! while no range is being read. The adaptive mode needs it, so when it
//! has none it holds the copy (see [`crate::throttle`]) until it has, at
//! most [`BASELINE_LONGEST`]. Mongoferry never writes to the source, so
//! its write latency is the applications' alone, a signal our reads cannot
//! blur.
//!
//! What it cannot read it leaves out, and says why in `notMeasured`: a
//! user without `clusterMonitor` still migrates.

pub mod control;
pub mod figures;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::options::{ReadConcern, ReadPreference, SelectionCriteria};
use tokio::sync::mpsc;

use crate::catalog::{self, NsKind};
use crate::cluster::{Cluster, Topology};
use crate::context::Ctx;
use crate::driver_error::{is_unauthorized, redacted_message};
use crate::error::Role;
use crate::load::{LoadSetting, LoadStatus};
use crate::preflight::report::human_duration;
use crate::progress::{Phase, Progress, SourceImpact};
use control::{Change, Controller, Reading};
use figures::Status;

/// The window the figures are taken over.
const WINDOW: Duration = Duration::from_secs(10);
/// Point reads a second.
const CANARY_EVERY: Duration = Duration::from_millis(50);
/// The window the point reads are judged over: 400 of them, enough for a
/// p99 that is not just the slowest one.
const READ_WINDOW: Duration = Duration::from_secs(20);
/// Idle point reads the adaptive mode's baseline needs (ten seconds of
/// them, so that its p99 is the second slowest read, not one spike), and
/// the longest the adaptive mode holds the copy to get them.
const BASELINE_SAMPLES: usize = 200;
const BASELINE_LONGEST: Duration = Duration::from_secs(20);
/// Idle point reads that make a baseline good enough to show: before a
/// copy with no adaptive limit, or when a hold ran out of time.
const FEWEST_SAMPLES: usize = 40;
/// How long a hold lasts before the source counts as idle: the replies
/// under way when it began have arrived.
const HOLD_SETTLE: Duration = Duration::from_secs(2);
/// How often the adaptive mode measures the source idle again.
const REPROBE_EVERY: Duration = Duration::from_secs(15 * 60);
/// Writes an interval needs before its mean latency means something.
const MIN_WRITES: f64 = 20.0;
/// How long the copy runs before its rate is weighed against the oplog.
const RATE_SETTLES: Duration = Duration::from_secs(30);
/// How often the oplog's window is measured again.
const OPLOG_EVERY: Duration = Duration::from_secs(300);
/// The least time between two warnings that the copy is being slowed.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What the canary thread sends.
enum Canary {
    /// A point read took this many milliseconds.
    Took(f64),
    /// It cannot time reads, and why.
    Cannot(String),
}

/// Stops the canary thread when the sampler ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs for as long as the migration does.
pub(crate) async fn run(ctx: Arc<Ctx>, source_uri: String) {
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let (tx, mut canary) = mpsc::unbounded_channel();
    match canary_target(&ctx.src, &ctx.scope).await {
        Ok(Some(target)) => spawn_canary(source_uri, target, tx, stop),
        Ok(None) => {
            let _ = tx.send(Canary::Cannot(
                "read latency: there is no document in scope to time reads on".into(),
            ));
        }
        Err(why) => {
            let _ = tx.send(Canary::Cannot(format!("read latency: {why}")));
        }
    }
    let mut sampler = Sampler::new(ctx);
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        sampler.take(&mut canary).await;
    }
}

/// The collection and `_id`s the canary reads.
struct Target {
    db: String,
    coll: String,
    ids: Vec<Bson>,
}

/// `_id`s the canary reads, sampled at random across the collection: an
/// application's reads land all over it, and pages the copy's scan pushes
/// out of the cache must cost the canary what they cost them. A few ids
/// read over and over would stay cached and see nothing.
const SAMPLED_IDS: i32 = 1_000;

/// A random sample of a collection's `_id`s.
async fn sample_ids(
    coll: &mongodb::Collection<Document>,
) -> std::result::Result<Vec<Bson>, String> {
    let cursor = coll
        .aggregate(vec![
            doc! { "$sample": { "size": SAMPLED_IDS } },
            doc! { "$project": { "_id": 1 } },
        ])
        .await
        .map_err(|e| redacted_message(&e))?;
    Ok(cursor
        .try_collect::<Vec<Document>>()
        .await
        .map_err(|e| redacted_message(&e))?
        .into_iter()
        .filter_map(|d| d.get("_id").cloned())
        .collect())
}

/// The first collection in scope that has documents, with a sample of
/// their `_id`s.
async fn canary_target(
    src: &Cluster,
    scope: &crate::scope::Scope,
) -> std::result::Result<Option<Target>, String> {
    let namespaces = catalog::list_namespaces(src, scope)
        .await
        .map_err(|e| e.to_string())?;
    for n in namespaces
        .iter()
        .filter(|n| n.kind == NsKind::Collection)
        .take(8)
    {
        let coll = src
            .client
            .database(&n.ns.db)
            .collection::<Document>(&n.ns.coll);
        let ids = sample_ids(&coll).await?;
        if !ids.is_empty() {
            return Ok(Some(Target {
                db: n.ns.db.clone(),
                coll: n.ns.coll.clone(),
                ids,
            }));
        }
    }
    Ok(None)
}

/// Times point reads from a thread and a connection of its own.
fn spawn_canary(
    uri: String,
    target: Target,
    tx: mpsc::UnboundedSender<Canary>,
    stop: Arc<AtomicBool>,
) {
    let spawned = std::thread::Builder::new()
        .name("mongoferry-canary".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Canary::Cannot(format!("read latency: {e}")));
                    return;
                }
            };
            runtime.block_on(canary(uri, target, tx, stop));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the read-latency probe did not start");
    }
}

async fn canary(
    uri: String,
    target: Target,
    tx: mpsc::UnboundedSender<Canary>,
    stop: Arc<AtomicBool>,
) {
    let cluster = match Cluster::connect(Role::Source, &uri).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Canary::Cannot(format!("read latency: {e}")));
            return;
        }
    };
    let coll = cluster
        .client
        .database(&target.db)
        .collection::<Document>(&target.coll);
    let mut every = tokio::time::interval(CANARY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ids = target.ids;
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        every.tick().await;
        if i == ids.len() {
            // A new sample after each pass, where the collection still
            // has documents.
            i = 0;
            if let Ok(fresh) = sample_ids(&coll).await {
                if !fresh.is_empty() {
                    ids = fresh;
                }
            }
        }
        let Some(id) = ids.get(i) else {
            break;
        };
        i += 1;
        let started = Instant::now();
        let read = coll
            .find_one(doc! { "_id": id.clone() })
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .read_concern(ReadConcern::local())
            .await;
        let sent = match read {
            Ok(_) => tx.send(Canary::Took(started.elapsed().as_secs_f64() * 1000.0)),
            // A failover or a blip: the next read tells.
            Err(e) => {
                tracing::debug!(error = %redacted_message(&e), "point read failed");
                Ok(())
            }
        };
        if sent.is_err() {
            break;
        }
    }
    cluster.close().await;
}

/// The sampler's memory between two seconds.
struct Sampler {
    ctx: Arc<Ctx>,
    started: Instant,
    /// Point reads of the last window, with when they arrived.
    reads: VecDeque<(Instant, f64)>,
    /// Point reads taken while the copy read nothing, until the baseline
    /// is complete.
    idle_reads: Vec<f64>,
    idle_read: Option<crate::progress::Latency>,
    /// `serverStatus` of the last window, and the idle interval's ends.
    statuses: VecDeque<(Instant, Status)>,
    idle_from: Option<Status>,
    idle_write: Option<f64>,
    lag: Option<(f64, String)>,
    queued_streak: u32,
    not_measured: Vec<String>,
    canary_gone: Option<String>,
    controller: Controller,
    setting: Option<LoadSetting>,
    ticks: u64,
    last_warning: Option<Instant>,
    /// Since when the sampler holds the copy to measure the source idle.
    probe: Option<Instant>,
    /// When the baseline was last measured, and its first p99.
    last_baseline: Option<Instant>,
    first_idle: Option<f64>,
    /// The oplog's window in seconds and when it was last measured.
    oplog_window: Option<(Instant, f64)>,
    /// The setting under which the oplog warning was last given.
    oplog_warned: Option<LoadSetting>,
    /// The setting under which the sync's lag warning was last given.
    sync_warned: Option<LoadSetting>,
    /// When the copy was first seen moving.
    copy_since: Option<Instant>,
}

impl Sampler {
    fn new(ctx: Arc<Ctx>) -> Sampler {
        Sampler {
            ctx,
            started: Instant::now(),
            reads: VecDeque::new(),
            idle_reads: Vec::new(),
            idle_read: None,
            statuses: VecDeque::new(),
            idle_from: None,
            idle_write: None,
            lag: None,
            queued_streak: 0,
            not_measured: Vec::new(),
            canary_gone: None,
            controller: Controller::default(),
            setting: None,
            ticks: 0,
            last_warning: None,
            probe: None,
            last_baseline: None,
            first_idle: None,
            oplog_window: None,
            oplog_warned: None,
            sync_warned: None,
            copy_since: None,
        }
    }

    /// One second's sampling, judging and reporting.
    async fn take(&mut self, canary: &mut mpsc::UnboundedReceiver<Canary>) {
        self.ticks += 1;
        let now = Instant::now();
        // Idle: no range reads, or a hold the ranges have settled into.
        let settled = self
            .probe
            .is_some_and(|since| since.elapsed() >= HOLD_SETTLE);
        let baselining = settled || (self.idle_read.is_none() && self.ctx.limiter.active() == 0);
        let mut not_measured = Vec::new();
        while let Ok(m) = canary.try_recv() {
            match m {
                Canary::Took(ms) => {
                    self.reads.push_back((now, ms));
                    if baselining {
                        self.idle_reads.push(ms);
                    }
                }
                Canary::Cannot(why) => self.canary_gone = Some(why),
            }
        }
        if !baselining {
            // The copy began before the baseline was complete: start over.
            self.idle_reads.clear();
            self.idle_from = None;
        }
        while self
            .reads
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > READ_WINDOW)
        {
            self.reads.pop_front();
        }
        if let Some(why) = &self.canary_gone {
            not_measured.push(why.clone());
        }

        let status = self.server_status().await;
        match &status {
            Ok(s) => {
                if baselining && self.idle_from.is_none() {
                    self.idle_from = Some(s.clone());
                }
                // The adaptive mode judges against the baseline, and takes
                // a full one; a baseline only shown takes a shorter one.
                let adaptive = self.ctx.control.borrow().load.is_some_and(|l| l.adaptive());
                let needed = if adaptive {
                    BASELINE_SAMPLES
                } else {
                    FEWEST_SAMPLES
                };
                // A hold out of time keeps what it has if that is enough.
                let out_of_time = self
                    .probe
                    .is_some_and(|since| since.elapsed() >= BASELINE_LONGEST);
                let have = self.idle_reads.len();
                if have >= needed || (out_of_time && have >= FEWEST_SAMPLES) {
                    self.baseline_done(s);
                }
                self.statuses.push_back((now, s.clone()));
                while self
                    .statuses
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
                {
                    self.statuses.pop_front();
                }
                self.queued_streak = match s.queued {
                    Some(q) if q > 0 => self.queued_streak + 1,
                    _ => 0,
                };
            }
            Err(why) => not_measured.push(why.clone()),
        }
        if self.ticks % 5 == 1 {
            let lag = self.replica_lag().await;
            self.not_measured
                .retain(|w| !w.starts_with("secondary lag"));
            match lag {
                Ok(lag) => self.lag = lag,
                Err(why) => {
                    self.lag = None;
                    self.not_measured.push(why);
                }
            }
        }
        not_measured.extend(self.not_measured.iter().cloned());

        let mut impact = self.figures(status.ok(), not_measured);
        impact.oplog_headroom_seconds = self.oplog_headroom().await;
        // One look at progress for every judgement of this second.
        let p = self.ctx.tracker.snapshot();
        self.adapt(&impact, &p);
        self.weigh_oplog(&impact, &p);
        self.weigh_sync(&p);
        self.ctx.tracker.set_impact(impact);
    }

    /// Takes the idle reads (and writes) gathered as the new baseline, and
    /// ends the hold that gathered them, if any.
    fn baseline_done(&mut self, status: &Status) {
        let Some(read) = figures::percentiles(&self.idle_reads) else {
            return;
        };
        if let Some(write) = self
            .idle_from
            .as_ref()
            .and_then(|from| figures::write_latency_ms(from, status, MIN_WRITES))
        {
            self.idle_write = Some(write);
        }
        match self.first_idle {
            None => self.first_idle = Some(read.p99),
            Some(first) if read.p99 > 2.0 * first => self.ctx.tracker.warn(format!(
                "The source got slower on its own: idle, its reads now take {:.2} ms (p99), against {first:.2} ms when the migration started; the adaptive mode compares against the new figure.",
                read.p99
            )),
            Some(_) => {}
        }
        tracing::info!(p99_ms = read.p99, "idle read latency measured");
        self.idle_read = Some(read);
        self.idle_reads.clear();
        self.idle_from = None;
        self.last_baseline = Some(Instant::now());
        if self.probe.take().is_some() {
            self.ctx.limiter.hold(false);
        }
    }

    /// How long the oplog still keeps the migration's start, in seconds:
    /// its window (measured every 5 minutes) less the start's age.
    async fn oplog_headroom(&mut self) -> Option<f64> {
        if !matches!(self.ctx.src.topology, Topology::ReplicaSet { .. }) {
            return None;
        }
        // Both kept by the tracker: the start from the stored migration,
        // the source's time from the once-a-second tick.
        let (start_at, now) = self.ctx.tracker.start_and_source_time();
        let (start_at, now) = (start_at?, now?);
        let stale = self
            .oplog_window
            .is_none_or(|(at, _)| at.elapsed() >= OPLOG_EVERY);
        if stale {
            let facts = crate::oplog::gather(&self.ctx.src).await;
            self.oplog_window = crate::oplog::window_seconds(&facts).map(|w| (Instant::now(), w));
        }
        let (_, window) = self.oplog_window?;
        let age = f64::from(now.time.saturating_sub(start_at.time));
        Some((window - age).max(0.0))
    }

    /// Warns, once per setting, when the rest of the copy at its current
    /// rate would outlast what the oplog keeps of the migration's start.
    fn weigh_oplog(&mut self, impact: &SourceImpact, p: &Progress) {
        let Some(headroom) = impact.oplog_headroom_seconds else {
            return;
        };
        if p.phase != Phase::Copying || p.state != crate::progress::State::Running {
            return;
        }
        let copy = &p.collection_copy;
        // The copy's rate is a 10 s mean: judge it once it has run longer.
        if copy.estimated_copied_bytes == 0 {
            return;
        }
        let since = *self.copy_since.get_or_insert_with(Instant::now);
        if since.elapsed() < RATE_SETTLES {
            return;
        }
        let left = copy
            .estimated_total_bytes
            .saturating_sub(copy.estimated_copied_bytes) as f64;
        let cap = self
            .ctx
            .limiter
            .limits()
            .bytes_per_second
            .unwrap_or(f64::INFINITY);
        let rate = copy.bytes_per_second.min(cap);
        if rate <= 0.0 {
            return;
        }
        let current = p.load.as_ref().map(|l| l.setting).unwrap_or_default();
        let setting = Some(current);
        let Some(needed) = figures::oplog_needs(left, rate, headroom) else {
            return;
        };
        if self.oplog_warned == setting {
            return;
        }
        self.oplog_warned = setting;
        let level = current.level;
        let mib = |b: f64| b / (1024.0 * 1024.0);
        self.ctx.tracker.warn(format!(
            "At level {level} the copy reads {:.1} MiB/s and needs about {} more, but the source's oplog keeps the migration's start for only about {}: raise the level to at least {:.0} MiB/s (mongoferry throttle {:.0}), or make the source's oplog larger (replSetResizeOplog).",
            mib(rate),
            human_duration(left / rate),
            human_duration(headroom),
            mib(needed).ceil(),
            mib(needed).ceil(),
        ));
    }

    /// Warns, once per setting, when the sync falls behind while the load
    /// level caps its reads of the source: the level may be the cause.
    fn weigh_sync(&mut self, p: &Progress) {
        let behind = p.lag_time_seconds.unwrap_or(0.0);
        let limit = 3.0 * self.ctx.tuning.max_commit_lag.as_secs_f64();
        let Some(cap) = self.ctx.limiter.limits().bytes_per_second else {
            return;
        };
        if p.phase != Phase::Applying
            || p.state != crate::progress::State::Running
            || behind <= limit
        {
            return;
        }
        let setting = Some(p.load.as_ref().map(|l| l.setting).unwrap_or_default());
        if self.sync_warned == setting {
            return;
        }
        self.sync_warned = setting;
        self.ctx.tracker.warn(format!(
            "The sync is {behind:.0} s behind the source while the load level caps its reads of the source at {:.1} MiB/s: if the source can take more, raise the level (mongoferry throttle full) so that it catches up.",
            cap / (1024.0 * 1024.0)
        ));
    }

    async fn server_status(&self) -> std::result::Result<Status, String> {
        let command = doc! {
            "serverStatus": 1,
            "repl": 0, "locks": 0, "tcmalloc": 0, "metrics": 0,
            "transportSecurity": 0, "storageEngine": 0,
        };
        match self
            .ctx
            .src
            .client
            .database("admin")
            .run_command(command)
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .await
        {
            Ok(d) => Ok(Status::parse(&d)),
            Err(e) => Err(not_measured("latency, queues, tickets and cache", &e)),
        }
    }

    async fn replica_lag(&self) -> std::result::Result<Option<(f64, String)>, String> {
        if !matches!(self.ctx.src.topology, Topology::ReplicaSet { .. }) {
            return Ok(None);
        }
        match self
            .ctx
            .src
            .client
            .database("admin")
            .run_command(doc! { "replSetGetStatus": 1 })
            .await
        {
            Ok(d) => Ok(figures::secondary_lag(&d)),
            Err(e) => Err(not_measured("secondary lag", &e)),
        }
    }

    fn figures(&self, status: Option<Status>, not_measured: Vec<String>) -> SourceImpact {
        let reads: Vec<f64> = self.reads.iter().map(|(_, ms)| *ms).collect();
        let read = (reads.len() >= 20)
            .then(|| figures::percentiles(&reads))
            .flatten();
        let write = match (self.statuses.front(), self.statuses.back()) {
            (Some((_, a)), Some((_, b))) => figures::write_latency_ms(a, b, MIN_WRITES),
            _ => None,
        };
        let (cache_used, cache_dirty) = status
            .as_ref()
            .map(Status::cache_percent)
            .unwrap_or_default();
        let mut not_measured = not_measured;
        if self.ctx.src.is_sharded() {
            not_measured.push(
                "tickets, cache and secondary lag: each shard has its own, out of reach through mongos".into(),
            );
        }
        if self.idle_read.is_none() && self.canary_gone.is_none() && self.ctx.limiter.active() > 0 {
            not_measured.push(
                "idle read latency: the copy was already reading when the migration started; give a latency limit to measure it".into(),
            );
        }
        SourceImpact {
            read_latency_ms: read,
            idle_read_latency_ms: self.idle_read,
            read_latency_increase_percent: match (read, self.idle_read) {
                (Some(now), Some(idle)) => figures::increase_percent(now.p99, idle.p99),
                _ => None,
            },
            write_latency_ms: write,
            idle_write_latency_ms: self.idle_write,
            queued_operations: status.as_ref().and_then(|s| s.queued),
            read_tickets_out: status.as_ref().and_then(|s| s.read_tickets_out),
            read_tickets_total: status.as_ref().and_then(|s| s.read_tickets_total),
            cache_used_percent: cache_used,
            cache_dirty_percent: cache_dirty,
            secondary_lag_seconds: self.lag.as_ref().map(|l| l.0),
            lagging_member: self.lag.as_ref().map(|l| l.1.clone()),
            oplog_headroom_seconds: None,
            not_measured,
        }
    }

    /// The adaptive mode: holds the copy for a baseline, then lets the
    /// controller move its rate.
    fn adapt(&mut self, impact: &SourceImpact, p: &Progress) {
        let setting = self.ctx.control.borrow().load;
        let Some(setting) = setting else {
            return;
        };
        // A new setting, or the same one given again (which put the copy
        // back at its level): start over from the level.
        let throttling = p.load.as_ref().is_some_and(|l| l.throttling);
        let at_level = !throttling;
        if self.setting != Some(setting) || (at_level && self.controller.throttling()) {
            self.setting = Some(setting);
            self.controller.reset();
        }
        let copying = p.phase == Phase::Copying;
        if self.probing(setting, copying) {
            return;
        }
        if !copying {
            return;
        }
        let reading = Reading {
            read_p99: impact.read_latency_ms.map(|l| l.p99),
            idle_read_p99: impact.idle_read_latency_ms.map(|l| l.p99),
            write_mean: impact.write_latency_ms,
            idle_write_mean: impact.idle_write_latency_ms,
            secondary_lag: self.lag.clone(),
            queued_streak: self.queued_streak,
            queued: impact.queued_operations.unwrap_or(0),
            cache_dirty_percent: impact.cache_dirty_percent,
            copy_rate: p.collection_copy.bytes_per_second,
        };
        let level = setting.level.limits(self.ctx.tuning.copy_concurrency);
        let now = self.started.elapsed().as_secs_f64();
        if let Some(change) = self.controller.step(now, &setting, level, &reading) {
            self.apply(setting, change, throttling);
        }
    }

    /// Holds the copy while the adaptive mode measures the source idle:
    /// when it has no baseline, and every [`REPROBE_EVERY`], since the
    /// applications' own load drifts over a day. Says whether it holds.
    fn probing(&mut self, setting: LoadSetting, copying: bool) -> bool {
        let due = setting.adaptive()
            && copying
            && self.canary_gone.is_none()
            && self
                .last_baseline
                .is_none_or(|at| at.elapsed() >= REPROBE_EVERY);
        match self.probe {
            Some(since) if due && since.elapsed() < BASELINE_LONGEST => true,
            Some(_) => {
                // Done (the baseline ends it), given up, or no longer wanted.
                self.probe = None;
                self.ctx.limiter.hold(false);
                if due {
                    // Try again after a while rather than hold the copy on.
                    self.last_baseline = Some(Instant::now());
                    tracing::info!("the source's idle latency could not be measured in time");
                }
                false
            }
            None if due => {
                tracing::info!("holding the copy to measure the source idle");
                self.idle_reads.clear();
                self.idle_from = None;
                self.probe = Some(Instant::now());
                self.ctx.limiter.hold(true);
                true
            }
            None => false,
        }
    }

    /// Retunes the copy; `was` says whether it was being throttled.
    fn apply(&mut self, setting: LoadSetting, change: Change, was: bool) {
        self.ctx.limiter.set(change.limits);
        tracing::info!(reason = %change.reason, "adaptive load");
        let mut status = LoadStatus::new(setting, change.limits);
        status.throttling = change.throttling;
        status.reason = Some(change.reason.clone());
        self.ctx.tracker.set_load(status);
        let news = was != change.throttling;
        let quiet = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if news && (quiet || !change.throttling) {
            self.last_warning = Some(Instant::now());
            self.ctx.tracker.warn(change.reason);
        }
    }
}

/// Why a figure is missing, in a phrase: the privilege it needs when that
/// is the cause.
fn not_measured(what: &str, e: &mongodb::error::Error) -> String {
    if is_unauthorized(e) {
        format!("{what}: the source user needs the clusterMonitor role to read them")
    } else {
        format!("{what}: {}", redacted_message(e))
    }
}
