//! The migration state machine and its control surface.
//!
//! [`Migration::run`] drives one migration from wherever its checkpoint
//! stands (nothing, copying, applying, committing) to COMMITTED.
//! [`MigrationHandle`] is the transport-neutral control surface that the
//! CLI, the HTTP API and the desktop shell all use: progress, events,
//! pause, resume, commit. No adapter holds migration logic.

use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Document, Timestamp};
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::catalog;
use crate::catalog::NsKind;
use crate::checkpoint::{MigrationDoc, NamespaceDoc, Store, StoredPhase};
use crate::cluster::{Cluster, Topology};
pub use crate::context::{CommitRequest, CommitVerify, EventSourceChoice, Tuning};
use crate::context::{Control, Ctx, SourceFacts};
use crate::error::{Error, MongoContext, Result, Role};
use crate::load::{LoadSetting, LoadStatus};
use crate::progress::{
    DirectionMapping, Event, Phase, Progress, State, VerificationState, VerificationStatus,
};
use crate::scope::Scope;
use crate::throttle::Limiter;
use crate::tracker::Tracker;
use crate::verify::{NullSink, Verifier, VerifyMode, VerifyOptions};
use crate::{apply, copy, retry};

/// What to migrate, from where to where. Its `Debug` redacts the URIs.
#[derive(Clone)]
pub struct SyncConfig {
    pub source_uri: String,
    pub destination_uri: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Discard a migration stored on the destination (and the namespaces
    /// it created) and start over.
    pub fresh: bool,
    /// Drop in-scope namespaces that already exist on the destination.
    pub drop_existing: bool,
    /// The commit will block the source's writes: the preflight check
    /// makes sure the source allows it.
    pub block_source_writes: bool,
    /// The copy throughput the preflight check assumes when it weighs the
    /// copy's duration against the source's oplog window.
    pub copy_bytes_per_second: u64,
    /// Where the sync reads the source's changes from.
    pub event_source: EventSourceChoice,
    /// How hard the copy may read the source; changed live with
    /// [`MigrationHandle::set_load`]. `None` resumes a stored migration
    /// at the setting it was last given, and starts a new one at the
    /// default level.
    pub load: Option<LoadSetting>,
    /// Keep a way back: the commit blocks the source's user writes and
    /// leaves them blocked, records where the destination's changes start,
    /// and the run then waits, COMMITTED, for [`MigrationHandle::reverse`].
    pub reversible: bool,
    /// What progress's `directionMapping` calls the source and the
    /// destination given here: `cluster0` and `cluster1` unless `serve`
    /// was asked to start from its `cluster1`.
    pub cluster_names: [&'static str; 2],
    pub tuning: Tuning,
}

impl std::fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConfig")
            .field("source_uri", &crate::uri::redact_uri(&self.source_uri))
            .field(
                "destination_uri",
                &crate::uri::redact_uri(&self.destination_uri),
            )
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("fresh", &self.fresh)
            .field("drop_existing", &self.drop_existing)
            .field("block_source_writes", &self.block_source_writes)
            .field("copy_bytes_per_second", &self.copy_bytes_per_second)
            .field("event_source", &self.event_source)
            .field("load", &self.load)
            .field("reversible", &self.reversible)
            .field("cluster_names", &self.cluster_names)
            .field("tuning", &self.tuning)
            .finish()
    }
}

impl SyncConfig {
    pub fn new(source_uri: impl Into<String>, destination_uri: impl Into<String>) -> SyncConfig {
        SyncConfig {
            source_uri: source_uri.into(),
            destination_uri: destination_uri.into(),
            include: Vec::new(),
            exclude: Vec::new(),
            fresh: false,
            drop_existing: false,
            block_source_writes: false,
            copy_bytes_per_second: crate::preflight::DEFAULT_COPY_BYTES_PER_SECOND,
            event_source: EventSourceChoice::Auto,
            load: None,
            reversible: false,
            cluster_names: crate::progress::CLUSTER_NAMES,
            tuning: Tuning::default(),
        }
    }
}

/// `auto` verifies every document of migrations up to this size.
pub const AUTO_FULL_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// A migration, connected and ready to run.
pub struct Migration {
    /// The live direction: the clusters as given, or swapped when the
    /// stored migration has been reversed.
    ctx: Arc<Ctx>,
    /// The migration's id, known before anything runs (see [`Migration::id`]).
    id: String,
    control: Arc<watch::Sender<Control>>,
    config: SyncConfig,
    /// The live direction's source and destination connection strings.
    uris: (String, String),
    /// Set once [`Migration::check`] has passed, so `run` need not repeat it.
    checked: std::sync::atomic::AtomicBool,
    /// Whether the stored migration keeps a way back; its handles read it.
    reversible: Arc<std::sync::atomic::AtomicBool>,
    /// The live direction's store, where its handles keep the load level.
    store: Arc<std::sync::Mutex<Store>>,
}

/// Controls and observes a running migration. Cheap to clone.
#[derive(Clone)]
pub struct MigrationHandle {
    control: Arc<watch::Sender<Control>>,
    tracker: Tracker,
    /// The live direction's store: the other cluster's once reversed.
    store: Arc<std::sync::Mutex<Store>>,
    limiter: Arc<Limiter>,
    /// The engine's own range concurrency, what `full` allows.
    max_readers: usize,
    /// Whether the stored migration keeps a way back.
    reversible: Arc<std::sync::atomic::AtomicBool>,
}

impl MigrationHandle {
    pub fn progress(&self) -> Progress {
        self.tracker.snapshot()
    }

    /// The latest progress, updated in place.
    pub fn watch_progress(&self) -> watch::Receiver<Progress> {
        self.tracker.watch()
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tracker.subscribe()
    }

    /// Holds the copy to `setting` from now on: the rate from the next
    /// reply each range reads, the count of ranges as they finish. The
    /// setting is stored with the migration before it is answered, so a
    /// migration resumed after a crash keeps it. A setting with limits
    /// turns the adaptive mode on, which retunes the copy within a second.
    pub async fn set_load(&self, setting: LoadSetting) -> Result<LoadStatus> {
        setting.validate()?;
        let state = self.tracker.snapshot().state;
        if matches!(state, State::Committed | State::Failed) {
            return Err(Error::InvalidState {
                action: "change the load level".into(),
                state: state.to_string(),
            });
        }
        // Before the migration's state exists, `prepare` stores it.
        if state != State::Idle {
            let store = self
                .store
                .lock()
                .map(|s| s.clone())
                .map_err(|_| Error::Other("the migration's store is unavailable".into()))?;
            store.save_load(&setting).await?;
        }
        self.control.send_modify(|c| c.load = Some(setting));
        let status = apply_load(&self.tracker, &self.limiter, self.max_readers, setting);
        tracing::info!(level = %setting.level, adaptive = setting.adaptive(), "load level");
        Ok(status)
    }

    pub fn pause(&self) -> Result<()> {
        let state = self.tracker.snapshot().state;
        if state != State::Running || self.control.borrow().commit.is_some() {
            return Err(Error::InvalidState {
                action: "pause".into(),
                state: state.to_string(),
            });
        }
        self.control.send_modify(|c| c.paused = true);
        self.tracker.set_state(State::Paused);
        tracing::info!("pause: the migration holds at its next safe point");
        Ok(())
    }

    pub fn resume(&self) -> Result<()> {
        let state = self.tracker.snapshot().state;
        if state != State::Paused {
            return Err(Error::InvalidState {
                action: "resume".into(),
                state: state.to_string(),
            });
        }
        self.control.send_modify(|c| c.paused = false);
        self.tracker.set_state(State::Running);
        tracing::info!("resume: the migration goes on");
        Ok(())
    }

    /// Starts syncing a committed reversible migration back: from the
    /// commit's exact point, the new cluster's changes flow to the old
    /// one. The state goes REVERSING, then RUNNING in the other direction,
    /// with the same progress, pause, resume and commit.
    pub fn reverse(&self) -> Result<()> {
        let p = self.tracker.snapshot();
        match p.state {
            State::Reversing => return Ok(()),
            State::Committed => {}
            other => {
                return Err(Error::InvalidState {
                    action: "reverse".into(),
                    state: other.to_string(),
                })
            }
        }
        if !self.reversible.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::NotReversible {
                reason: "it was started without a way back (--reversible), so its commit left the source open to writes and recorded no point to sync back from".into(),
            });
        }
        tracing::info!("reverse requested");
        self.control.send_modify(|c| c.reverse = true);
        self.tracker.set_state(State::Reversing);
        Ok(())
    }

    /// Starts the commit. The user must have stopped writes to the source,
    /// or ask for them to be blocked. Fails unless `canCommit`.
    pub fn commit(&self, request: CommitRequest) -> Result<()> {
        let p = self.tracker.snapshot();
        match p.state {
            // A commit resumed after a restart (or one asked twice) takes
            // the latest request's verification; the rest is under way.
            State::Committing => {
                tracing::info!(verify = ?request.verify, "commit asked again; it is under way");
                self.control.send_modify(|c| match c.commit.as_mut() {
                    Some(r) => r.verify = request.verify,
                    None => c.commit = Some(request),
                });
                return Ok(());
            }
            State::Committed => return Ok(()),
            State::Running => {}
            other => {
                return Err(Error::InvalidState {
                    action: "commit".into(),
                    state: other.to_string(),
                })
            }
        }
        if !p.can_commit {
            let reason = match (p.phase, p.lag_time_seconds) {
                (Phase::Applying, Some(lag)) => {
                    format!("the destination is {lag:.0} s behind the source")
                }
                (Phase::Applying, None) => "the lag is not measured yet".to_string(),
                _ => "the initial copy is not finished".to_string(),
            };
            return Err(Error::NotReadyToCommit { reason });
        }
        tracing::info!(
            block_source_writes = request.block_source_writes,
            verify = ?request.verify,
            "commit requested"
        );
        self.control.send_modify(|c| c.commit = Some(request));
        self.tracker.set_state(State::Committing);
        Ok(())
    }
}

/// Whether the scope holds a time-series collection on the source, which
/// `auto` follows through the oplog. Listed only where it decides something.
async fn holds_timeseries(src: &Cluster, scope: &Scope) -> Result<bool> {
    if src.is_sharded() {
        return Ok(false);
    }
    let namespaces = crate::catalog::list_namespaces(src, scope).await?;
    Ok(namespaces.iter().any(|n| n.kind == NsKind::Timeseries))
}

/// The id of the migration a run will drive, and whether it keeps a way
/// back: the stored one's, unless `fresh` is to discard it, else a new id
/// and the config's choice. A store that cannot be read yet gives a new
/// id: `prepare` meets the same failure and reports it.
async fn known_id(store: &Store, config: &SyncConfig) -> (String, bool) {
    if !config.fresh {
        match store.load().await {
            Ok(Some(m)) => return (m.migration_id, m.reversible),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "the stored migration is not readable"),
        }
    }
    (uuid::Uuid::new_v4().to_string(), config.reversible)
}

/// The end of a run's story, for the log: how it ended, and why.
fn log_end(id: &str, result: std::result::Result<(), &Error>) {
    match result {
        Ok(()) => tracing::info!(migration = %id, outcome = "COMMITTED", "migration ended"),
        Err(Error::Interrupted) => tracing::info!(
            migration = %id,
            outcome = "interrupted",
            detail = "stopped at a safe point with its checkpoint saved",
            "migration ended"
        ),
        // The caller reports the error to the user; this is for the log.
        Err(e) => tracing::info!(
            migration = %id,
            outcome = "FAILED",
            code = e.code(),
            error = %e,
            remedy = %e.remedy(),
            "migration ended"
        ),
    }
}

/// Whether a migration may run between these clusters at all.
fn admit(src: &Cluster, dest: &Cluster) -> Result<()> {
    if src.topology == Topology::Standalone {
        return Err(Error::SourceStandalone);
    }
    if dest.topology == Topology::Standalone {
        return Err(Error::NotReplicaSet {
            role: Role::Destination,
        });
    }
    if src.identity == dest.identity {
        return Err(Error::SameCluster);
    }
    Ok(())
}

/// A namespace as a reverse mirrors it: already there on both sides.
fn mirrored(n: &catalog::SourceNamespace) -> NamespaceDoc {
    NamespaceDoc {
        ns: n.ns.to_string(),
        kind: n.kind,
        uuid: n.uuid.clone(),
        capped: n.is_capped(),
        estimated_docs: 0,
        estimated_bytes: 0,
        copied: true,
    }
}

/// The clusters with their roles swapped: `dest` becomes the source.
fn swap_roles(src: Cluster, dest: Cluster) -> (Cluster, Cluster) {
    let (mut s, mut d) = (dest, src);
    s.role = Role::Source;
    d.role = Role::Destination;
    (s, d)
}

/// Whether the migration stored on `dest` has been reversed and its
/// reverse, stored on `src`, is the live direction: of a later generation
/// and reversing that very migration. Anything unreadable is no reverse.
async fn reversed_direction(src: &Cluster, dest: &Cluster) -> bool {
    let (dest_store, src_store) = (Store::new(dest), Store::new(src));
    let (on_dest, on_src) = tokio::join!(dest_store.load(), src_store.load());
    match (on_dest, on_src) {
        (Ok(Some(d)), Ok(Some(s))) => {
            s.reverse_of.as_deref() == Some(d.migration_id.as_str()) && s.generation > d.generation
        }
        _ => false,
    }
}

/// Waits for a reverse to be asked for; false when the run is cancelled
/// first.
async fn wait_for_reverse(ctx: &Ctx) -> bool {
    let mut control = ctx.control.clone();
    loop {
        if control.borrow_and_update().reverse {
            return true;
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return false,
            changed = control.changed() => if changed.is_err() { return false },
        }
    }
}

/// Waits (up to one lease term) for a killed predecessor's lease to
/// expire; a live holder keeps renewing it and this fails.
async fn take_lease(ctx: &Ctx, owner: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + LEASE_TTL + Duration::from_secs(2);
    let mut warned = false;
    loop {
        if ctx.store.acquire_lease(owner, LEASE_TTL).await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::LeaseHeld);
        }
        if !warned {
            ctx.tracker.warn(format!(
                "Another Mongoferry process held this destination's migration; waiting up to {} s for its lease to expire.",
                LEASE_TTL.as_secs()
            ));
            warned = true;
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

impl Migration {
    /// Connects to both clusters and checks they can be migrated between.
    /// Writes nothing.
    pub async fn connect(config: SyncConfig, cancel: CancellationToken) -> Result<Migration> {
        let scope = Scope::new(&config.include, &config.exclude)?;
        if let Some(load) = &config.load {
            load.validate()?;
        }
        let (src, dest) = match tokio::join!(
            Cluster::connect(Role::Source, &config.source_uri),
            Cluster::connect(Role::Destination, &config.destination_uri),
        ) {
            (Ok(src), Ok(dest)) => (src, dest),
            // A client dropped unclosed ends its sessions in the
            // background, which races the runtime's shutdown at exit.
            (Ok(one), Err(e)) | (Err(e), Ok(one)) => {
                one.close().await;
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
        };
        // A reversed migration runs the other way: its live direction is
        // the one whose state is of the later generation.
        let swapped = reversed_direction(&src, &dest).await;
        let (src, dest) = if swapped {
            tracing::info!("the stored migration was reversed: syncing from the destination given to the source given");
            swap_roles(src, dest)
        } else {
            (src, dest)
        };
        let uris = if swapped {
            (config.destination_uri.clone(), config.source_uri.clone())
        } else {
            (config.source_uri.clone(), config.destination_uri.clone())
        };
        let admitted = match admit(&src, &dest) {
            Ok(()) => holds_timeseries(&src, &scope).await,
            Err(e) => Err(e),
        };
        let timeseries = match admitted {
            Ok(t) => t,
            Err(e) => {
                tokio::join!(src.close(), dest.close());
                return Err(e);
            }
        };
        let (control_tx, control_rx) = watch::channel(Control::default());
        let store = Store::new(&dest);
        let (id, reversible) = known_id(&store, &config).await;
        let event_source = config
            .event_source
            .resolve(&SourceFacts::of(&src, timeseries));
        let tracker = Tracker::new();
        tracker.set_event_source(event_source);
        tracker.set_migration(&id, reversible);
        let [given_source, given_destination] = config.cluster_names;
        let (source_name, destination_name) = if swapped {
            (given_destination, given_source)
        } else {
            (given_source, given_destination)
        };
        tracker.set_direction(DirectionMapping::new(
            (source_name, &src.hosts),
            (destination_name, &dest.hosts),
        ));
        let ctx = Arc::new(Ctx {
            src,
            dest,
            scope,
            store,
            tuning: config.tuning.clone(),
            event_source,
            cancel,
            tracker,
            control: control_rx,
            limiter: Arc::new(Limiter::new(
                config
                    .load
                    .unwrap_or_default()
                    .level
                    .limits(config.tuning.copy_concurrency),
            )),
        });
        let store = Arc::new(std::sync::Mutex::new(ctx.store.clone()));
        Ok(Migration {
            ctx,
            id,
            control: Arc::new(control_tx),
            uris,
            reversible: Arc::new(std::sync::atomic::AtomicBool::new(config.reversible)),
            config,
            checked: std::sync::atomic::AtomicBool::new(false),
            store,
        })
    }

    pub fn handle(&self) -> MigrationHandle {
        MigrationHandle {
            control: self.control.clone(),
            tracker: self.ctx.tracker.clone(),
            store: self.store.clone(),
            limiter: self.ctx.limiter.clone(),
            max_readers: self.ctx.tuning.copy_concurrency,
            reversible: self.reversible.clone(),
        }
    }

    /// The migration's id: the stored migration's when this run resumes
    /// it, else the one a new migration will be stored with. It is known
    /// from [`Migration::connect`] on, before the preflight check runs, so
    /// that a front end can name what it keeps of the run (its log) after
    /// the migration from the first event on.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn source(&self) -> &Cluster {
        &self.ctx.src
    }

    pub fn destination(&self) -> &Cluster {
        &self.ctx.dest
    }

    /// Where the sync reads the source's changes from.
    pub fn event_source(&self) -> crate::progress::EventSource {
        self.ctx.event_source
    }

    /// Runs the migration to COMMITTED. On cancellation it stops at a safe
    /// point with its checkpoint saved and returns `Interrupted`. A
    /// reversible migration then waits, COMMITTED, for a reverse (which
    /// runs to its own COMMITTED, and so on) until it is cancelled, and
    /// returns the last COMMITTED progress.
    pub async fn run(self) -> Result<Progress> {
        let mut ctx = self.ctx.clone();
        ctx.tracker.set_state(State::Running);
        let owner = uuid::Uuid::new_v4().to_string();
        // Read-only checks first: bad input must leave the destination untouched.
        let already = self.checked.load(std::sync::atomic::Ordering::Relaxed);
        let checks = if already {
            Ok(())
        } else {
            self.preflight().await.map(|_| ())
        };
        let checked = match checks {
            Ok(()) => take_lease(&ctx, &owner).await,
            Err(e) => Err(e),
        };
        let mut source_uri = self.uris.0.clone();
        let result = match checked {
            Ok(()) => loop {
                let ticker = tokio::spawn(tick(ctx.clone()));
                let sampler = tokio::spawn(crate::impact::run(ctx.clone(), source_uri.clone()));
                let step = tokio::select! {
                    r = self.drive(&ctx, &owner) => r,
                    e = hold_lease(ctx.clone(), owner.clone()) => Err(e),
                };
                ticker.abort();
                sampler.abort();
                if let Err(e) = ctx.store.release_lease(&owner).await {
                    tracing::warn!(error = %e, "lease not released; it expires by itself");
                }
                match step {
                    // The reverse holds its own lease, on its own store.
                    Ok(Some(next)) => {
                        ctx = next;
                        source_uri = if source_uri == self.uris.0 {
                            self.uris.1.clone()
                        } else {
                            self.uris.0.clone()
                        };
                        if let Ok(mut store) = self.store.lock() {
                            *store = ctx.store.clone();
                        }
                        ctx.tracker.set_state(State::Running);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            },
            Err(e) => Err(e),
        };
        log_end(&self.id, result.as_ref().map(|_| ()));
        if let Err(e) = &result {
            if !matches!(e, Error::Interrupted) {
                ctx.tracker.fail(e);
            }
        }
        ctx.tracker.publish();
        result.map(|_| ctx.tracker.snapshot())
    }

    /// Drives one direction to COMMITTED; for a reversible migration, then
    /// waits for a reverse and returns the reverse's context, its state
    /// stored and its lease taken. `None` when the run is over.
    async fn drive(&self, ctx: &Arc<Ctx>, owner: &str) -> Result<Option<Arc<Ctx>>> {
        let mut m = self.prepare(ctx).await?;
        ctx.tracker.set_start(&m);
        if m.phase != StoredPhase::Committed {
            self.sync(ctx, &mut m).await?;
        }
        if m.reversible && !m.reversed {
            // A reverse's destination was blocked since the commit before;
            // from now on the applications write to it.
            catalog::set_user_writes(&ctx.dest, true).await?;
        }
        ctx.tracker.committed();
        if !m.reversible {
            return Ok(None);
        }
        if !m.reversed {
            tracing::info!("committed; the migration can be reversed");
            if !wait_for_reverse(ctx).await {
                return Ok(None);
            }
        }
        self.begin_reverse(ctx, &mut m, owner).await.map(Some)
    }

    /// Copies (unless done), syncs and commits one direction.
    async fn sync(&self, ctx: &Arc<Ctx>, m: &mut MigrationDoc) -> Result<()> {
        if m.phase == StoredPhase::Copying {
            ctx.tracker.set_phase(Phase::Copying);
            wait_majority_visible(ctx, m.start_at).await?;
            if !m.planned {
                copy::plan(ctx, m).await?;
            }
            tokio::select! {
                r = copy::run(ctx) => r?,
                e = oplog_guard(ctx.clone(), m.start_at) => return Err(e),
            }
            m.phase = StoredPhase::Applying;
            ctx.store.save(m).await?;
            tracing::info!("copy finished; applying change events");
        }
        if m.phase == StoredPhase::Committing {
            ctx.tracker.set_state(State::Committing);
            if let Some(t) = m.commit_target {
                ctx.tracker.committing(t);
            }
        } else {
            ctx.tracker.set_phase(Phase::Applying);
        }
        apply::run(ctx, m).await?;
        finalize(ctx).await?;
        verify_at_commit(ctx).await?;
        if m.reversible {
            // Every write of the commit is made and no application writes
            // to the destination yet: its changes from here on are what a
            // reverse carries back, and its collections' UUIDs now are what
            // those changes name.
            m.handoff = Some(ctx.dest.cluster_time().await?);
            let namespaces: Vec<NamespaceDoc> = catalog::list_namespaces(&ctx.dest, &ctx.scope)
                .await?
                .iter()
                .map(mirrored)
                .collect();
            ctx.store.save_handoff(&namespaces).await?;
        }
        m.phase = StoredPhase::Committed;
        ctx.store.save(m).await?;
        tracing::info!(handoff = ?m.handoff, "committed");
        Ok(())
    }

    /// Starts (or resumes) the reverse of the committed `m`: the other
    /// cluster becomes the destination, its unique and TTL indexes are
    /// relaxed as a destination's are, and its state records where the
    /// sync starts: `m`'s handoff, on this destination. No copy: the two
    /// sides were equal at the handoff.
    async fn begin_reverse(
        &self,
        ctx: &Arc<Ctx>,
        m: &mut MigrationDoc,
        owner: &str,
    ) -> Result<Arc<Ctx>> {
        ctx.tracker.set_state(State::Reversing);
        let handoff = m.handoff.ok_or_else(|| Error::NotReversible {
            reason: "its commit recorded no point to sync back from".into(),
        })?;
        self.control.send_modify(|c| {
            c.reverse = false;
            c.commit = None;
            c.paused = false;
        });
        let (src, dest) = swap_roles(ctx.src.clone(), ctx.dest.clone());
        let timeseries = holds_timeseries(&src, &ctx.scope).await?;
        let event_source = self
            .config
            .event_source
            .resolve(&SourceFacts::of(&src, timeseries));
        ctx.tracker.set_event_source(event_source);
        let store = Store::new(&dest);
        let next = Arc::new(Ctx {
            src,
            dest,
            scope: ctx.scope.clone(),
            store,
            tuning: ctx.tuning.clone(),
            event_source,
            cancel: ctx.cancel.clone(),
            tracker: ctx.tracker.clone(),
            control: ctx.control.clone(),
            limiter: ctx.limiter.clone(),
        });
        take_lease(&next, owner).await?;
        let stored = next.store.load().await?;
        let resumed = stored
            .as_ref()
            .is_some_and(|r| r.reverse_of.as_deref() == Some(m.migration_id.as_str()));
        if !resumed {
            if let Some(oldest) = crate::oplog::oldest_entry(&next.src).await {
                if (oldest.time, oldest.increment) > (handoff.time, handoff.increment) {
                    return Err(Error::HistoryLost);
                }
            }
            // An earlier direction's state, kept on this cluster when it
            // was the destination, is done with.
            next.store.clear_except_lease().await?;
            for n in catalog::list_namespaces(&next.dest, &next.scope).await? {
                catalog::relax_for_sync(&next.dest, &n).await?;
            }
            // The collections as they were at the handoff: one created or
            // dropped since is the reverse's first events.
            for n in ctx.store.handoff_namespaces().await? {
                next.store.put_namespace(&n).await?;
            }
            let r = MigrationDoc {
                migration_id: uuid::Uuid::new_v4().to_string(),
                phase: StoredPhase::Applying,
                planned: true,
                reversible: true,
                generation: m.generation + 1,
                reverse_of: Some(m.migration_id.clone()),
                ..Store::new_migration(
                    handoff,
                    next.scope.include_patterns(),
                    next.scope.exclude_patterns(),
                    next.src.identity.clone(),
                )
            };
            let load = self.control.borrow().load;
            if let Some(load) = load {
                next.store.save_load(&load).await?;
            }
            next.store.save(&r).await?;
            tracing::info!(migration = %r.migration_id, reverses = %m.migration_id, ?handoff, "reverse started");
        }
        if !m.reversed {
            m.reversed = true;
            ctx.store.save(m).await?;
        }
        ctx.tracker.reversed();
        Ok(next)
    }

    /// Runs the preflight check, writing nothing: the report of
    /// everything that would make this migration fail or lose data, and
    /// what deserves attention. Fails with `PreflightBlocked` (the report
    /// inside) when it holds a blocker; a stored migration must match, a
    /// new one needs an empty destination and collections the engine can
    /// migrate. Front ends show the warnings of the report it returns.
    pub async fn check(&self) -> Result<crate::preflight::Report> {
        let result = self.preflight().await;
        // A refused check ends this run before it starts: the log says so
        // here, since `run` will not be called.
        if let Err(e) = &result {
            log_end(&self.id, Err(e));
        }
        result
    }

    /// The check itself, and its story for the log: the servers, every
    /// finding of the report and whether it passed. `run` calls it
    /// directly and logs how the run ended itself.
    async fn preflight(&self) -> Result<crate::preflight::Report> {
        let (src, dest) = (&self.ctx.src, &self.ctx.dest);
        tracing::info!(
            migration = %self.id,
            source = %src.display_uri,
            source_version = %src.version,
            destination = %dest.display_uri,
            destination_version = %dest.version,
            include = ?self.config.include,
            exclude = ?self.config.exclude,
            event_source = %self.ctx.event_source,
            "preflight check"
        );
        let report = self.check_inner().await?;
        // The whole report, for the log: what the user was shown.
        for f in &report.findings {
            tracing::info!(
                id = %f.id,
                severity = %f.severity,
                namespace = f.namespace.as_deref(),
                title = %f.title,
                "preflight finding"
            );
        }
        let blockers = report.blockers().count();
        tracing::info!(
            findings = report.findings.len(),
            blockers,
            passed = blockers == 0,
            "preflight report"
        );
        if report.has_blockers() {
            return Err(report.into());
        }
        self.checked
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(report)
    }

    async fn check_inner(&self) -> Result<crate::preflight::Report> {
        let request = crate::preflight::CheckRequest {
            include: self.config.include.clone(),
            exclude: self.config.exclude.clone(),
            drop_existing: self.config.drop_existing,
            fresh: self.config.fresh,
            block_source_writes: self.config.block_source_writes,
            reversible: self.config.reversible
                || self.reversible.load(std::sync::atomic::Ordering::Relaxed),
            copy_bytes_per_second: self.assumed_copy_rate(),
            event_source: self.config.event_source,
            ..crate::preflight::CheckRequest::default()
        };
        crate::preflight::run(&self.ctx.src, &self.ctx.dest, &request).await
    }

    /// The copy rate the oplog check assumes: the one given, or the load
    /// level's cap when that is lower (a gentle copy takes longer).
    fn assumed_copy_rate(&self) -> u64 {
        let given = self.config.copy_bytes_per_second;
        let level = self.control.borrow().load.or(self.config.load);
        let cap = level
            .and_then(|l| {
                l.level
                    .limits(self.ctx.tuning.copy_concurrency)
                    .bytes_per_second
            })
            .map_or(u64::MAX, |b| b as u64);
        given.min(cap)
    }

    fn check_stored(&self, ctx: &Ctx, m: &MigrationDoc) -> Result<()> {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        if sorted(&m.include) != sorted(&ctx.scope.include_patterns())
            || sorted(&m.exclude) != sorted(&ctx.scope.exclude_patterns())
        {
            return Err(Error::ScopeMismatch {
                stored_include: m.include.clone(),
                stored_exclude: m.exclude.clone(),
            });
        }
        if m.source_identity != ctx.src.identity {
            return Err(Error::SourceMismatch {
                stored: m.source_identity.clone(),
            });
        }
        Ok(())
    }

    /// Loads or creates the stored migration, checking it matches.
    async fn prepare(&self, ctx: &Arc<Ctx>) -> Result<MigrationDoc> {
        let mut existing = ctx.store.load().await?;
        if self.config.fresh && existing.is_some() {
            discard(ctx).await?;
            // The lease went with the state database: take it again.
            existing = None;
        }
        if let Some(mut m) = existing {
            self.check_stored(ctx, &m)?;
            if m.generation == 0 && m.migration_id != self.id {
                // Another process replaced the stored migration since
                // `connect` read it: this run resumes that one.
                tracing::warn!(
                    migration = %m.migration_id,
                    expected = %self.id,
                    "the stored migration changed since this run connected"
                );
            }
            tracing::info!(migration = %m.migration_id, phase = ?m.phase, "resuming");
            if self.config.reversible && !m.reversible {
                if m.phase == StoredPhase::Committed {
                    return Err(Error::NotReversible {
                        reason: "it was committed without a way back (--reversible), so the source was left open to writes and no point to sync back from was recorded".into(),
                    });
                }
                // Its commit is still ahead: it can keep a way back.
                m.reversible = true;
                ctx.store.save(&m).await?;
            }
            self.reversible
                .store(m.reversible, std::sync::atomic::Ordering::Relaxed);
            self.settle_load(ctx).await?;
            return Ok(m);
        }
        let existing_ns = catalog::list_namespaces(&ctx.dest, &ctx.scope).await?;
        if let Some(first) = existing_ns.first() {
            if !self.config.drop_existing {
                return Err(Error::DestinationNotEmpty {
                    ns: first.ns.to_string(),
                });
            }
            for n in &existing_ns {
                catalog::drop_namespace(&ctx.dest, &n.ns).await?;
            }
        }
        let start_at = ctx.src.cluster_time().await?;
        let m = MigrationDoc {
            migration_id: self.id.clone(),
            reversible: self.config.reversible,
            ..Store::new_migration(
                start_at,
                ctx.scope.include_patterns(),
                ctx.scope.exclude_patterns(),
                ctx.src.identity.clone(),
            )
        };
        ctx.store.save(&m).await?;
        self.settle_load(ctx).await?;
        tracing::info!(migration = %m.migration_id, ?start_at, reversible = m.reversible, "started");
        Ok(m)
    }

    /// Decides the load setting a starting or resuming run holds to: one
    /// asked for since it began, else the one it was started with, else
    /// the stored one, else the default; and stores it.
    async fn settle_load(&self, ctx: &Ctx) -> Result<()> {
        let asked = self.control.borrow().load.or(self.config.load);
        let setting = match asked {
            Some(s) => {
                ctx.store.save_load(&s).await?;
                s
            }
            None => ctx.store.load_setting().await?.unwrap_or_default(),
        };
        self.control.send_modify(|c| c.load = Some(setting));
        tracing::info!(level = %setting.level, adaptive = setting.adaptive(), "load level at start");
        apply_load(
            &ctx.tracker,
            &ctx.limiter,
            ctx.tuning.copy_concurrency,
            setting,
        );
        Ok(())
    }
}

/// Holds the limiter to a setting's level and reports it. The adaptive
/// mode starts from the level and moves below it (see [`crate::impact`]).
fn apply_load(
    tracker: &Tracker,
    limiter: &Limiter,
    max_readers: usize,
    setting: LoadSetting,
) -> LoadStatus {
    let limits = setting.level.limits(max_readers);
    limiter.set(limits);
    let status = LoadStatus::new(setting, limits);
    tracker.set_load(status.clone());
    status
}

/// How long a lease lasts without renewal.
const LEASE_TTL: Duration = Duration::from_secs(15);

/// Renews the lease until it is lost; returns the error that ends the run.
async fn hold_lease(ctx: Arc<Ctx>, owner: String) -> Error {
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(LEASE_TTL / 4).await;
        match ctx.store.acquire_lease(&owner, LEASE_TTL).await {
            Ok(true) => failing_since = None,
            Ok(false) => return Error::LeaseHeld,
            // The destination is briefly away (restart, election): the
            // apply loop is retrying too. Give up only past the lease term,
            // when another process could have taken over.
            Err(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                tracing::warn!(error = %e, "lease renewal failed");
                if since.elapsed() > retry::GIVE_UP_AFTER {
                    return e;
                }
            }
        }
    }
}

/// Fails the copy as soon as its start time falls off the source's oplog:
/// the events it needs to replay are gone, and copying on is wasted time.
async fn oplog_guard(ctx: Arc<Ctx>, start_at: Timestamp) -> Error {
    loop {
        tokio::time::sleep(Duration::from_secs(15)).await;
        if let Some(oldest) = crate::oplog::oldest_entry(&ctx.src).await {
            if (oldest.time, oldest.increment) > (start_at.time, start_at.increment) {
                return Error::HistoryLost;
            }
        }
    }
}

/// Drops what an earlier migration created on the destination, then its
/// state.
async fn discard(ctx: &Ctx) -> Result<()> {
    for n in ctx.store.all_namespaces().await? {
        catalog::drop_namespace(&ctx.dest, &n.namespace()).await?;
    }
    ctx.store.drop_all().await
}

/// Waits until the source's majority-committed snapshot includes
/// `start_at`, so that the copy's majority reads see every write the change
/// stream will not replay.
async fn wait_majority_visible(ctx: &Ctx, start_at: Timestamp) -> Result<()> {
    let mut session = ctx
        .src
        .client
        .start_session()
        .causal_consistency(true)
        .await
        .ctx(Role::Source, "start a session")?;
    session.advance_operation_time(start_at);
    ctx.src
        .client
        .database(crate::scope::METADATA_DB)
        .collection::<Document>("visibility")
        .find_one(doc! {})
        .session(&mut session)
        .await
        .ctx(Role::Source, "wait for the majority snapshot")?;
    Ok(())
}

/// Commit's last step, with the source no longer changing: restore unique
/// and TTL indexes, and re-copy capped collections in natural order.
async fn finalize(ctx: &Arc<Ctx>) -> Result<()> {
    let namespaces: Vec<NamespaceDoc> = ctx
        .store
        .all_namespaces()
        .await?
        .into_iter()
        .filter(|n| n.kind == NsKind::Collection)
        .collect();
    stream::iter(namespaces)
        .map(|n| {
            let ctx = ctx.clone();
            async move {
                let ns = n.namespace();
                if n.capped {
                    recopy_capped(&ctx, &ns).await?;
                }
                catalog::finalize_indexes(&ctx.src, &ctx.dest, &ns).await
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Commit's last check, with the source quiet and every relaxation
/// restored: the destination must equal the source, strictly. A failure
/// leaves the migration COMMITTING (a restart repeats the commit's last
/// steps and this check) and is shown in progress with its report.
async fn verify_at_commit(ctx: &Arc<Ctx>) -> Result<()> {
    let request = ctx.control.borrow().commit.clone().unwrap_or_default();
    let mode = match request.verify {
        CommitVerify::None => {
            ctx.tracker.set_verification(VerificationStatus {
                state: VerificationState::Skipped,
                mode: None,
                progress: Default::default(),
                report: None,
            });
            ctx.tracker
                .warn("The commit was not verified, as requested (verify: none).".into());
            return Ok(());
        }
        CommitVerify::Quick => VerifyMode::Quick,
        CommitVerify::Full => VerifyMode::Full,
        CommitVerify::Auto => {
            let bytes: u64 = ctx
                .store
                .all_namespaces()
                .await?
                .iter()
                .map(|n| n.estimated_bytes)
                .sum();
            if bytes <= AUTO_FULL_MAX_BYTES {
                VerifyMode::Full
            } else {
                VerifyMode::Quick
            }
        }
    };
    let options = VerifyOptions {
        mode,
        include: ctx.scope.include_patterns(),
        exclude: ctx.scope.exclude_patterns(),
        allow_sync_relaxations: Some(false),
        ..VerifyOptions::default()
    };
    tracing::info!(%mode, "commit: verifying the destination");
    let verifier = Verifier::new(ctx.src.clone(), ctx.dest.clone(), options)?;
    ctx.tracker.set_verification(VerificationStatus {
        state: VerificationState::Running,
        mode: Some(mode),
        progress: Default::default(),
        report: None,
    });
    let mut rx = verifier.watch_progress();
    let forward = {
        let tracker = ctx.tracker.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let p = rx.borrow_and_update().clone();
                tracker.verification_progress(p);
            }
        })
    };
    let result = verifier.run(&mut NullSink, &ctx.cancel).await;
    forward.abort();
    let report = result?;
    let progress = verifier.watch_progress().borrow().clone();
    let passed = report.identical;
    let differing: Vec<String> = report
        .namespaces
        .iter()
        .filter(|n| n.differences > 0)
        .map(|n| n.namespace.clone())
        .collect();
    ctx.tracker.set_verification(VerificationStatus {
        state: if passed {
            VerificationState::Passed
        } else {
            VerificationState::Failed
        },
        mode: Some(mode),
        progress,
        report: Some(report.clone()),
    });
    if passed {
        tracing::info!(
            documents = report.documents_compared,
            "commit: the destination equals the source"
        );
        return Ok(());
    }
    tracing::info!(
        differences = report.differences,
        documents = report.documents_compared,
        namespaces = ?differing,
        "commit: the destination differs from the source"
    );
    let mut namespaces = differing
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if differing.len() > 3 {
        namespaces.push_str(&format!(" and {} more", differing.len() - 3));
    }
    Err(Error::VerificationFailed {
        differences: report.differences,
        namespaces,
    })
}

/// A capped collection's replayed inserts can land after documents the
/// source has already aged out, so at commit it is copied again, whole and
/// in insertion order. Capped collections are bounded, so this is quick.
async fn recopy_capped(ctx: &Arc<Ctx>, ns: &crate::scope::Namespace) -> Result<()> {
    let Some(src_ns) = catalog::find_namespace(&ctx.src, ns).await? else {
        return Ok(());
    };
    catalog::drop_namespace(&ctx.dest, ns).await?;
    catalog::create_namespace(&ctx.dest, ns, &src_ns.options).await?;
    copy::copy_whole(ctx, ns, src_ns.uuid.as_ref()).await?;
    let specs = catalog::list_indexes(&ctx.src, ns).await?;
    catalog::create_indexes(&ctx.dest, ns, &specs).await
}

/// Measures lag and rates once a second and publishes progress.
async fn tick(ctx: Arc<Ctx>) {
    let mut every = tokio::time::interval(Duration::from_millis(1000));
    loop {
        every.tick().await;
        if let Ok(t) = ctx.src.cluster_time().await {
            ctx.tracker.set_source_time(t);
        }
        ctx.tracker
            .refresh(ctx.tuning.max_commit_lag, ctx.tuning.stall_warning);
        ctx.tracker.publish();
    }
}
