//! The desktop shell's state between IPC calls: the running migration's
//! control handle, the local sandbox, and the file that remembers the last
//! migration for the resume offer.
//!
//! Every operation here is a short call into the engine; the long work
//! (`Migration::run`, the sandbox's write load) runs on tokio tasks that
//! this state owns. Nothing here may decide how data is copied, synced,
//! verified or committed: that is the engine's job.

use std::time::Duration;

use mongoferry::checkpoint::{MigrationDoc, Store, StoredPhase};
use mongoferry::cluster::Cluster;
use mongoferry::sandbox::{workload, Pair};
use mongoferry::scope::Namespace;
use mongoferry::{
    CommitRequest, ErrorInfo, Event, EventSourceChoice, LoadSetting, LoadStatus, Migration,
    MigrationHandle, Progress, Role, State, SyncConfig,
};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use std::path::{Path, PathBuf};

use mongoferry::verify::{Difference, DifferenceSink, Verifier, VerifyMode, VerifyOptions};
use mongoferry::VerifyProgress;

use crate::commands::types::{
    DocumentPair, DocumentRequest, ResumableMigration, SandboxInfo, StartSyncRequest, SyncStarted,
    VerificationOutcome,
};
use crate::error::{shell_error, IntoInfo};
use crate::log::MigrationLog;
use crate::profiles::connection_uri;
use crate::progress::{self, Sink};
use crate::session::{Endpoint, RememberedMigration, SessionFile};

/// The running (or finished) migration of this window.
struct Running {
    /// The migration's own connections and scope: verification and the
    /// document view read the same clusters, and no connection string
    /// (secrets included) is kept once connected.
    clusters: Clusters,
    handle: MigrationHandle,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    forwarder: Option<JoinHandle<()>>,
    /// The migration's log, open from before its preflight check; `None`
    /// when it could not be opened (the migration runs without one).
    log: Option<MigrationLog>,
}

/// The two clusters of a migration's live direction, connected, and its
/// scope.
#[derive(Clone)]
struct Clusters {
    source: Cluster,
    destination: Cluster,
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Clusters {
    /// The other direction, as a reverse runs: the destination becomes
    /// the source.
    fn swap(&mut self) {
        std::mem::swap(&mut self.source, &mut self.destination);
        self.source.role = Role::Source;
        self.destination.role = Role::Destination;
    }
}

/// Two local replica sets with sample data and a light write load.
struct Sandbox {
    pair: Pair,
    load: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Sandbox {
    async fn stop_load(&mut self) {
        if let Some((stop, task)) = self.load.take() {
            stop.cancel();
            let _ = task.await;
        }
    }
}

/// The sandbox's sample data: (database, collection, documents).
const SANDBOX_DATA: &[(&str, &str, u64)] = &[
    ("shop", "customers", 20_000),
    ("shop", "orders", 30_000),
    ("shop", "products", 2_000),
    ("crm", "contacts", 8_000),
    ("crm", "notes", 5_000),
];
/// Writes a second on the sandbox's source: enough to see events flow and
/// lag move, little enough for a laptop.
const SANDBOX_WRITES_PER_SECOND: u32 = 40;

/// Differences kept in memory for the table and the exported report;
/// the report itself counts them all.
pub const MAX_KEPT_DIFFERENCES: usize = 1000;

/// Whether the live direction runs back: the engine reports as its source
/// the cluster this window gave as the destination. The window always
/// gives the clusters in the order the migration started (the wizard's
/// source first, and a resume the remembered ones in the same order), and
/// the engine names them `mongoferry::CLUSTER_NAMES` in that order. The UI
/// reads the same names (`ui/src/lib/state/direction.ts`).
pub fn runs_back(progress: &Progress) -> bool {
    progress
        .direction_mapping
        .as_ref()
        .is_some_and(|m| m.source_name() == mongoferry::CLUSTER_NAMES[1])
}

/// The verification of this window: the one running, and the last result.
#[derive(Default)]
struct Verification {
    cancel: Option<CancellationToken>,
    last: Option<VerificationOutcome>,
}

#[derive(Default)]
struct Inner {
    migration: Option<Running>,
    sandbox: Option<Sandbox>,
    verification: Verification,
}

/// Keeps the first differences a verification reports.
struct KeepFirst {
    kept: Vec<Difference>,
}

impl DifferenceSink for KeepFirst {
    fn record(&mut self, difference: &Difference) -> mongoferry::Result<()> {
        if self.kept.len() < MAX_KEPT_DIFFERENCES {
            self.kept.push(difference.clone());
        }
        Ok(())
    }
}

/// Held by Tauri (`app.manage`) and handed to every command.
pub struct AppState {
    inner: Mutex<Inner>,
    session: SessionFile,
    /// Where each migration's log goes; `None` on a machine with no data
    /// directory, where migrations run without one.
    log_dir: Option<PathBuf>,
}

/// What an exported verification report holds: the outcome, and the
/// migration's log (where it is, and its events), so that the report and
/// the story travel together.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportedReport<'a> {
    #[serde(flatten)]
    outcome: &'a VerificationOutcome,
    log_path: Option<String>,
    /// The log's events, one JSON object each (a line that is not JSON is
    /// kept as its text); empty when there is no log or it cannot be read.
    log: Vec<serde_json::Value>,
}

/// The lines of a JSON-lines log, each as the value it holds.
async fn log_events(path: Option<&Path>) -> Vec<serde_json::Value> {
    let Some(path) = path else {
        return Vec::new();
    };
    match tokio::fs::read_to_string(path).await {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|_| serde_json::Value::String(l.to_string()))
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, log = %path.display(), "the log could not be read for the report");
            Vec::new()
        }
    }
}

impl AppState {
    pub fn new(session: SessionFile) -> AppState {
        AppState {
            inner: Mutex::new(Inner::default()),
            session,
            log_dir: crate::log::default_dir(),
        }
    }

    /// The same state, with migration logs in `dir` (tests keep theirs
    /// in a scratch folder).
    pub fn with_log_dir(mut self, dir: PathBuf) -> AppState {
        self.log_dir = Some(dir);
        self
    }

    /// Opens the log of the migration `id`. A log that cannot be opened
    /// does not stop the migration: it is said on stderr, and the UI's
    /// "Open the log" says there is none.
    fn open_log(&self, id: &str) -> Option<MigrationLog> {
        let dir = self.log_dir.as_deref()?;
        match crate::log::open(dir, id) {
            Ok(log) => Some(log),
            Err(error) => {
                tracing::warn!(%error, dir = %dir.display(), "the migration's log could not be opened; it runs without one");
                None
            }
        }
    }

    /// The path of this window's migration's log, if it has one.
    pub async fn log_path(&self) -> Option<PathBuf> {
        let inner = self.inner.lock().await;
        let running = inner.migration.as_ref()?;
        running.log.as_ref().map(|l| l.path().to_path_buf())
    }

    /// Connects, runs the engine's read-only checks, then runs the
    /// migration on a task. Errors before the run starts come back here;
    /// later ones arrive as `Event::Error` through [`AppState::watch`].
    pub async fn start_sync(
        &self,
        mut request: StartSyncRequest,
    ) -> Result<SyncStarted, ErrorInfo> {
        request.source_uri =
            connection_uri(&request.source_uri, request.source_profile.as_deref()).await?;
        request.destination_uri = connection_uri(
            &request.destination_uri,
            request.destination_profile.as_deref(),
        )
        .await?;
        self.start_resolved(request).await
    }

    /// [`start_sync`](Self::start_sync) of connection strings that hold
    /// their secrets already.
    async fn start_resolved(&self, request: StartSyncRequest) -> Result<SyncStarted, ErrorInfo> {
        // Not held across the connection attempts below, which may take
        // seconds: progress and sandbox calls must not wait for them.
        self.ensure_idle().await?;
        let mut config = SyncConfig::new(&request.source_uri, &request.destination_uri);
        config.include = request.include.clone();
        config.exclude = request.exclude.clone();
        config.drop_existing = request.drop_existing;
        config.event_source = request.event_source;
        config.load = crate::ops::load_choice(request.load.as_ref())?;
        config.reversible = request.reversible;
        let cancel = CancellationToken::new();
        let migration = Migration::connect(config, cancel.clone())
            .await
            .into_info()?;
        // Before the preflight check, so the log holds the whole story.
        let log = self.open_log(migration.id());
        // The live direction's store: `connect` has found which way the
        // stored migration runs now.
        let resumed = Store::new(migration.destination())
            .load()
            .await
            .into_info()?
            .is_some();
        migration.check().await.into_info()?;
        let clusters = Clusters {
            source: migration.source().clone(),
            destination: migration.destination().clone(),
            include: request.include.clone(),
            exclude: request.exclude.clone(),
        };
        let mut inner = self.inner.lock().await;
        if let Some(running) = &inner.migration {
            if !running.task.is_finished() {
                return Err(busy(&running.handle));
            }
        }
        // Remembered only once this one is sure to run.
        let endpoints = (
            Endpoint::choose(&request.source_uri, request.source_profile.as_deref()),
            Endpoint::choose(
                &request.destination_uri,
                request.destination_profile.as_deref(),
            ),
        );
        let saved = match endpoints {
            (Some(source), Some(destination)) => self.session.save(&RememberedMigration {
                source,
                destination,
                include: request.include,
                exclude: request.exclude,
            }),
            // Typed-in credentials cannot be kept: forget the older one too.
            _ => self.session.forget().map(|()| false),
        };
        let remembered = saved.unwrap_or_else(|error| {
            tracing::warn!(%error, "could not remember the migration for a later resume");
            false
        });
        let handle = migration.handle();
        let task = tokio::spawn(async move {
            match migration.run().await {
                Ok(p) => tracing::info!(state = %p.state, "migration finished"),
                // The engine has already published the error to observers.
                Err(e) => tracing::warn!(error = %e, "migration stopped"),
            }
        });
        if let Some(old) = inner.migration.take() {
            old.stop_forwarding();
        }
        inner.migration = Some(Running {
            clusters,
            handle,
            cancel,
            task,
            forwarder: None,
            log,
        });
        Ok(SyncStarted {
            resumed,
            remembered,
        })
    }

    /// Sends the migration's progress and events to `sink` (replacing an
    /// earlier observer, such as the page before a reload) and returns the
    /// current snapshot.
    pub async fn watch(&self, sink: impl Sink<Event>) -> Result<Progress, ErrorInfo> {
        let mut inner = self.inner.lock().await;
        let running = inner.migration.as_mut().ok_or_else(no_migration)?;
        if let Some(old) = running.forwarder.take() {
            old.abort();
        }
        let interval = Duration::from_secs(1) / progress::MAX_UPDATES_PER_SECOND;
        running.forwarder = Some(tokio::spawn(progress::forward(
            running.handle.watch_progress(),
            running.handle.subscribe(),
            sink,
            interval,
        )));
        Ok(running.handle.progress())
    }

    pub async fn progress(&self) -> Result<Progress, ErrorInfo> {
        Ok(self.handle().await?.progress())
    }

    pub async fn pause(&self) -> Result<Progress, ErrorInfo> {
        let handle = self.handle().await?;
        handle.pause().into_info()?;
        Ok(handle.progress())
    }

    pub async fn resume(&self) -> Result<Progress, ErrorInfo> {
        let handle = self.handle().await?;
        handle.resume().into_info()?;
        Ok(handle.progress())
    }

    /// Holds the running migration's copy to another load level (and
    /// adaptive limits) from now on, and answers what it is held to.
    pub async fn set_load(&self, setting: LoadSetting) -> Result<LoadStatus, ErrorInfo> {
        let handle = self.handle().await?;
        handle.set_load(setting).await.into_info()
    }

    pub async fn commit(&self, request: CommitRequest) -> Result<Progress, ErrorInfo> {
        let handle = self.handle().await?;
        handle.commit(request).into_info()?;
        Ok(handle.progress())
    }

    /// Starts syncing the committed reversible migration back (the engine
    /// refuses any other). From then on the live direction's source is
    /// the cluster this window migrated to, so verification and the
    /// document view read the two clusters the other way round as well.
    pub async fn reverse(&self) -> Result<Progress, ErrorInfo> {
        // Held across the call, so two calls cannot both turn the
        // clusters: the engine answers a second one, while REVERSING, Ok.
        let mut inner = self.inner.lock().await;
        let running = inner.migration.as_mut().ok_or_else(no_migration)?;
        let turning = running.handle.progress().state == State::Committed;
        running.handle.reverse().into_info()?;
        if turning {
            running.clusters.swap();
        }
        Ok(running.handle.progress())
    }

    async fn ensure_idle(&self) -> Result<(), ErrorInfo> {
        let inner = self.inner.lock().await;
        match &inner.migration {
            Some(running) if !running.task.is_finished() => Err(busy(&running.handle)),
            _ => Ok(()),
        }
    }

    async fn handle(&self) -> Result<MigrationHandle, ErrorInfo> {
        self.running(|r| r.handle.clone()).await
    }

    async fn clusters(&self) -> Result<Clusters, ErrorInfo> {
        self.running(|r| r.clusters.clone()).await
    }

    /// What `of` reads from this window's migration, or the error that
    /// there is none.
    async fn running<T>(&self, of: impl FnOnce(&Running) -> T) -> Result<T, ErrorInfo> {
        let inner = self.inner.lock().await;
        inner.migration.as_ref().map(of).ok_or_else(no_migration)
    }

    /// Verifies the destination of this window's migration against its
    /// source with the engine's verifier, sending its progress to `sink`
    /// (throttled). Returns when it has finished.
    pub async fn verify(
        &self,
        mode: VerifyMode,
        sink: impl Sink<VerifyProgress>,
    ) -> Result<VerificationOutcome, ErrorInfo> {
        let (clusters, cancel) = {
            let mut inner = self.inner.lock().await;
            let running = inner.migration.as_ref().ok_or_else(no_migration)?;
            let clusters = running.clusters.clone();
            if inner
                .verification
                .cancel
                .as_ref()
                .is_some_and(|c| !c.is_cancelled())
            {
                return Err(shell_error(
                    "verification_running",
                    "A verification is already running.",
                    "Wait for it to finish, or cancel it first.",
                ));
            }
            let cancel = CancellationToken::new();
            inner.verification.cancel = Some(cancel.clone());
            (clusters, cancel)
        };
        let result = async {
            let options = VerifyOptions {
                mode,
                include: clusters.include,
                exclude: clusters.exclude,
                ..VerifyOptions::default()
            };
            let verifier =
                Verifier::new(clusters.source, clusters.destination, options).into_info()?;
            let interval = Duration::from_secs(1) / progress::MAX_UPDATES_PER_SECOND;
            let forwarder = tokio::spawn(progress::forward_latest(
                verifier.watch_progress(),
                sink,
                interval,
            ));
            let mut kept = KeepFirst { kept: Vec::new() };
            let report = verifier.run(&mut kept, &cancel).await;
            // The forwarder sends the final snapshot once the verifier,
            // and with it the progress channel, is gone.
            drop(verifier);
            let _ = tokio::time::timeout(Duration::from_secs(2), forwarder).await;
            let report = report.into_info()?;
            Ok(VerificationOutcome {
                truncated: report.differences > kept.kept.len() as u64,
                differences: kept.kept,
                report,
            })
        }
        .await;
        let mut inner = self.inner.lock().await;
        inner.verification.cancel = None;
        if let Ok(outcome) = &result {
            inner.verification.last = Some(outcome.clone());
        }
        result
    }

    pub async fn cancel_verification(&self) {
        if let Some(cancel) = &self.inner.lock().await.verification.cancel {
            cancel.cancel();
        }
    }

    /// Both sides' copies of one document, for a side-by-side view.
    pub async fn documents(&self, request: DocumentRequest) -> Result<DocumentPair, ErrorInfo> {
        let clusters = self.clusters().await?;
        crate::ops::document_pair(&clusters.source, &clusters.destination, &request).await
    }

    /// Writes the last verification's report and differences as JSON.
    pub async fn export_verification(&self, path: &Path) -> Result<(), ErrorInfo> {
        let outcome = self
            .inner
            .lock()
            .await
            .verification
            .last
            .clone()
            .ok_or_else(|| {
                shell_error(
                    "no_verification",
                    "There is no verification result to export yet.",
                    "Run a verification first.",
                )
            })?;
        let log_path = self.log_path().await;
        let report = ExportedReport {
            outcome: &outcome,
            log_path: log_path.as_ref().map(|p| p.display().to_string()),
            log: log_events(log_path.as_deref()).await,
        };
        let json = serde_json::to_vec_pretty(&report).map_err(|e| {
            shell_error(
                "internal",
                &format!("The report could not be encoded: {e}."),
                "Report this with the log.",
            )
        })?;
        tokio::fs::write(path, json).await.map_err(|e| {
            mongoferry::Error::ReportFailed {
                path: path.display().to_string(),
                message: e.to_string(),
            }
            .info()
        })
    }

    /// The remembered migration, if it is still to be resumed: unfinished
    /// on its destination, or committed with a way back, so that Reverse
    /// is still to be offered (or its reverse, unfinished or committed in
    /// turn). Any failure to reach a cluster means "nothing to offer"
    /// (logged), never an error dialog at start-up.
    pub async fn find_resumable(&self) -> Option<ResumableMigration> {
        {
            let inner = self.inner.lock().await;
            if inner.migration.is_some() {
                return None;
            }
        }
        let remembered = self.session.load()?;
        let destination_uri = match resolve(&remembered.destination).await {
            Ok(uri) => uri,
            Err(e) => {
                tracing::info!(code = %e.code, "the remembered destination's profile cannot be read; no resume offer");
                return None;
            }
        };
        let dest = match Cluster::connect(Role::Destination, &destination_uri).await {
            Ok(dest) => dest,
            Err(e) => {
                tracing::info!(error = %e, "the remembered destination cannot be reached; no resume offer");
                return None;
            }
        };
        let stored = match Store::new(&dest).load().await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => {
                tracing::info!(error = %e, "the remembered destination's migration cannot be read");
                return None;
            }
        };
        // Once reversed, the live direction may run from the destination,
        // its state on the source: the engine finds which way it runs, as
        // a resume will.
        let (live, back) = if stored.phase == StoredPhase::Committed && stored.reversed {
            live_direction(&remembered, &destination_uri).await?
        } else {
            (stored, false)
        };
        let (phase, back) = match live.phase {
            StoredPhase::Copying => ("copying", back),
            StoredPhase::Applying => ("syncing", back),
            StoredPhase::Committing => ("committing", back),
            StoredPhase::Committed if !live.reversible => return None,
            // Its reverse was asked for but is not stored yet: resuming
            // starts it, the other way.
            StoredPhase::Committed if live.reversed => ("syncing", !back),
            StoredPhase::Committed => ("committed", back),
        };
        Some(ResumableMigration {
            migration_id: live.migration_id,
            phase: phase.into(),
            reversed: back,
            source: match &remembered.source {
                Endpoint::Uri(u) => mongoferry::uri::redact_uri(u),
                Endpoint::Profile(p) => format!("profile {p}"),
            },
            destination: dest.display_uri.clone(),
            include: live.include,
            exclude: live.exclude,
            started_at: live.created_at.timestamp_millis() as f64,
        })
    }

    /// Resumes the remembered migration where its checkpoint stands.
    pub async fn resume_remembered(&self) -> Result<SyncStarted, ErrorInfo> {
        let remembered = self.session.load().ok_or_else(|| {
            shell_error(
                "nothing_to_resume",
                "There is no earlier migration to resume.",
                "Start a new migration from the Source step.",
            )
        })?;
        let profile = |e: &Endpoint| match e {
            Endpoint::Profile(p) => Some(p.clone()),
            Endpoint::Uri(_) => None,
        };
        let request = StartSyncRequest {
            source_uri: resolve(&remembered.source).await?,
            destination_uri: resolve(&remembered.destination).await?,
            source_profile: profile(&remembered.source),
            destination_profile: profile(&remembered.destination),
            include: remembered.include,
            exclude: remembered.exclude,
            drop_existing: false,
            // Not remembered: `auto` picks the source for the server, and
            // the engine resumes from whichever position was saved last.
            event_source: EventSourceChoice::Auto,
            // None: the engine resumes at the level stored with the
            // migration, which a live change has kept up to date.
            load: None,
            // The engine keeps the stored migration's way back, if it has
            // one; its progress says so (`reversible`).
            reversible: false,
        };
        self.start_resolved(request).await
    }

    /// Stops offering to resume the remembered migration. Its state stays
    /// on the destination.
    pub fn forget_remembered(&self) -> Result<(), ErrorInfo> {
        self.session.forget().map_err(|e| {
            shell_error(
                "io_failed",
                &format!("The app could not forget the earlier migration: {e}."),
                "Check that the app's data directory is writable.",
            )
        })
    }

    /// Starts two local replica sets, seeds the source and starts a light
    /// write load on it. A second call returns the running sandbox.
    pub async fn start_sandbox(&self) -> Result<SandboxInfo, ErrorInfo> {
        let mut inner = self.inner.lock().await;
        if let Some(s) = &inner.sandbox {
            return Ok(sandbox_info(s));
        }
        let pair = Pair::start().await.into_info()?;
        let client = pair.source.client().await.into_info()?;
        let namespaces: Vec<Namespace> = SANDBOX_DATA
            .iter()
            .map(|(db, coll, _)| Namespace::new(*db, *coll))
            .collect();
        for ((_, _, count), ns) in SANDBOX_DATA.iter().zip(&namespaces) {
            workload::seed(&client, ns, *count, 600).await.into_info()?;
        }
        let first_new = SANDBOX_DATA.iter().map(|d| d.2).max().unwrap_or(0);
        let stop = CancellationToken::new();
        let load = tokio::spawn(run_load(client, namespaces, first_new, stop.clone()));
        let sandbox = Sandbox {
            pair,
            load: Some((stop, load)),
        };
        let info = sandbox_info(&sandbox);
        inner.sandbox = Some(sandbox);
        Ok(info)
    }

    /// Stops the sandbox's write load (the "stop application writes" step
    /// of a cutover), keeping its clusters.
    pub async fn stop_sandbox_load(&self) -> Result<SandboxInfo, ErrorInfo> {
        let mut inner = self.inner.lock().await;
        let sandbox = inner.sandbox.as_mut().ok_or_else(|| {
            shell_error(
                "no_sandbox",
                "No local sandbox is running.",
                "Choose \"Try it with a local sandbox\" on the Source step first.",
            )
        })?;
        sandbox.stop_load().await;
        Ok(sandbox_info(sandbox))
    }

    /// Stops everything this window runs: the migration at a safe point
    /// (its checkpoint saved, so it can be resumed), then the sandbox.
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        if let Some(running) = inner.migration.take() {
            running.cancel.cancel();
            running.stop_forwarding();
            if tokio::time::timeout(Duration::from_secs(10), running.task)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the migration did not stop within 10 s; its last checkpoint stands"
                );
            }
        }
        if let Some(mut sandbox) = inner.sandbox.take() {
            sandbox.stop_load().await;
            for rs in [&mut sandbox.pair.source, &mut sandbox.pair.destination] {
                if let Err(e) = rs.stop().await {
                    tracing::warn!(error = %e, "a sandbox mongod did not stop cleanly");
                }
            }
        }
    }
}

impl Running {
    fn stop_forwarding(&self) {
        if let Some(f) = &self.forwarder {
            f.abort();
        }
    }
}

async fn run_load(
    client: mongodb::Client,
    namespaces: Vec<Namespace>,
    first_new: u64,
    stop: CancellationToken,
) {
    let seed = 0x5eed;
    match workload::run(
        client,
        namespaces,
        first_new,
        Some(SANDBOX_WRITES_PER_SECOND),
        seed,
        stop,
    )
    .await
    {
        Ok(stats) => tracing::info!(writes = stats.total(), "sandbox write load stopped"),
        Err(e) => tracing::warn!(error = %e, "sandbox write load failed"),
    }
}

fn sandbox_info(s: &Sandbox) -> SandboxInfo {
    SandboxInfo {
        source_uri: s.pair.source.uri(),
        destination_uri: s.pair.destination.uri(),
        documents: SANDBOX_DATA.iter().map(|d| d.2).sum(),
        collections: SANDBOX_DATA
            .iter()
            .map(|(db, coll, _)| format!("{db}.{coll}"))
            .collect(),
        write_load_running: s.load.is_some(),
        writes_per_second: SANDBOX_WRITES_PER_SECOND,
    }
}

/// The connection string of a remembered endpoint (from the keyring for a
/// profile).
async fn resolve(endpoint: &Endpoint) -> Result<String, ErrorInfo> {
    match endpoint {
        Endpoint::Uri(u) => Ok(u.clone()),
        Endpoint::Profile(name) => crate::profiles::resolve(name.clone()).await,
    }
}

/// The remembered migration's live direction, as the engine finds it when
/// it connects (nothing runs, nothing is written): the state stored on its
/// destination, and whether it runs back. `None` (logged) when a cluster
/// cannot be reached or read.
async fn live_direction(
    remembered: &RememberedMigration,
    destination_uri: &str,
) -> Option<(MigrationDoc, bool)> {
    let source_uri = match resolve(&remembered.source).await {
        Ok(uri) => uri,
        Err(e) => {
            tracing::info!(code = %e.code, "the remembered source's profile cannot be read; no resume offer");
            return None;
        }
    };
    let mut config = SyncConfig::new(source_uri, destination_uri);
    config.include = remembered.include.clone();
    config.exclude = remembered.exclude.clone();
    let migration = match Migration::connect(config, CancellationToken::new()).await {
        Ok(m) => m,
        Err(e) => {
            tracing::info!(error = %e, "the remembered clusters cannot be reached; no resume offer");
            return None;
        }
    };
    let back = runs_back(&migration.handle().progress());
    let stored = Store::new(migration.destination()).load().await;
    // Closed, not dropped: a dropped client ends its sessions in the
    // background.
    tokio::join!(migration.source().close(), migration.destination().close());
    match stored {
        Ok(Some(m)) => Some((m, back)),
        Ok(None) => None,
        Err(e) => {
            tracing::info!(error = %e, "the live direction's migration cannot be read");
            None
        }
    }
}

fn busy(handle: &MigrationHandle) -> ErrorInfo {
    mongoferry::Error::InvalidState {
        action: "start another migration".into(),
        state: handle.progress().state.to_string(),
    }
    .info()
}

fn no_migration() -> ErrorInfo {
    shell_error(
        "no_migration",
        "No migration is running in this window.",
        "Start one from the Sync step, or resume the earlier one from the start screen.",
    )
}
