//! `mongoferry serve --cluster0 URI --cluster1 URI`: mongosync's start,
//! for its runbooks. It serves the control API with no migration yet
//! (progress IDLE) until `POST /api/v1/start` names the source and the
//! destination among the two clusters; the migration then runs exactly as
//! `sync` runs one (the same check, log, progress and signals), and the
//! process keeps serving after it ends, until Ctrl-C or SIGTERM.
//!
//! Glue only: the request is read by `api::start`, the migration is the
//! engine's, and the run is `sync`'s own code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use mongoferry::connection::ProfileStore;
use mongoferry::{MigrationHandle, State, SyncConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::start::ClusterName;
use crate::api::{self, StartRequest};
use crate::{display, log, Checked, LogDirArg};

#[derive(Args)]
pub struct ServeArgs {
    /// The first cluster's connection string, as mongosync's --cluster0
    /// (or MONGOFERRY_CLUSTER0); a start request names it "cluster0".
    #[arg(long, value_name = "URI")]
    cluster0: Option<String>,
    /// A saved profile to use as cluster0, instead of --cluster0.
    #[arg(long, value_name = "NAME", conflicts_with = "cluster0")]
    cluster0_profile: Option<String>,
    /// The second cluster's connection string (or MONGOFERRY_CLUSTER1); a
    /// start request names it "cluster1".
    #[arg(long, value_name = "URI")]
    cluster1: Option<String>,
    /// A saved profile to use as cluster1, instead of --cluster1.
    #[arg(long, value_name = "NAME", conflicts_with = "cluster1")]
    cluster1_profile: Option<String>,
    /// Port of the local control API on 127.0.0.1.
    #[arg(long, default_value_t = 27182)]
    port: u16,
    #[command(flatten)]
    log: LogDirArg,
}

/// How an interrupted migration of `serve` resumes.
const RESUME: &str = "Start 'mongoferry serve' again and send the same start request to resume.";

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Bind first, as `sync` does: a second server on the same port fails
    // before anything else.
    let listener = api::bind(args.port).await?;
    let cluster0 = uri(ClusterName::Cluster0, args.cluster0, args.cluster0_profile).await?;
    let cluster1 = uri(ClusterName::Cluster1, args.cluster1, args.cluster1_profile).await?;
    let log_dir = log::prepare_dir(args.log.log_dir)?;
    let cancel = CancellationToken::new();
    eprintln!(
        "Control API on http://127.0.0.1:{}/api/v1, with no migration yet between cluster0 {} and cluster1 {}. Start one with POST /api/v1/start, such as {{\"source\": \"cluster0\", \"destination\": \"cluster1\"}}.",
        args.port,
        mongoferry::uri::redact_uri(&cluster0),
        mongoferry::uri::redact_uri(&cluster1),
    );
    let server = Arc::new(Server {
        clusters: [cluster0, cluster1],
        log_dir,
        port: args.port,
        cancel: cancel.clone(),
        run: Mutex::new(None),
    });
    let starter = server.clone();
    tokio::spawn(api::serve_idle(
        listener,
        Arc::new(move |request| {
            let server = starter.clone();
            Box::pin(async move { server.start(request).await })
        }),
    ));
    // SIGINT or SIGTERM: a running migration stops at a safe point with
    // its checkpoint saved, as under `sync`.
    tokio::spawn(display::cancel_on_signal(
        cancel.clone(),
        "Stopping (a running migration stops at a safe point)...",
    ));
    cancel.cancelled().await;
    let run = server
        .run
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Ok(match run {
        Some(run) => run.await.unwrap_or(ExitCode::from(1)),
        None => ExitCode::SUCCESS,
    })
}

/// One side's connection string: the profile named, else the string
/// given, else the environment's `MONGOFERRY_CLUSTER0` or `1`.
async fn uri(
    cluster: ClusterName,
    given: Option<String>,
    profile: Option<String>,
) -> anyhow::Result<String> {
    let env = match cluster {
        ClusterName::Cluster0 => "MONGOFERRY_CLUSTER0",
        ClusterName::Cluster1 => "MONGOFERRY_CLUSTER1",
    };
    if let Some(name) = profile {
        // The keyring talks D-Bus synchronously.
        let resolved =
            tokio::task::spawn_blocking(move || ProfileStore::open_default()?.resolve(&name))
                .await?;
        return resolved
            .map(|r| r.uri.expose().to_string())
            .map_err(|e| anyhow::anyhow!("--{cluster}-profile: {} {}", e, e.remedy()));
    }
    given
        .or_else(|| std::env::var(env).ok().filter(|u| !u.is_empty()))
        .ok_or_else(|| {
            anyhow::anyhow!("give {cluster} as --{cluster} URI, --{cluster}-profile NAME or {env}.")
        })
}

/// What a start request needs: the two clusters, and where the migration
/// it starts runs.
struct Server {
    clusters: [String; 2],
    log_dir: PathBuf,
    port: u16,
    cancel: CancellationToken,
    /// The migration's run, once one has started; `run` waits for it to
    /// stop at a safe point before the process ends.
    run: Mutex<Option<JoinHandle<ExitCode>>>,
}

impl Server {
    fn uri(&self, cluster: ClusterName) -> String {
        match cluster {
            ClusterName::Cluster0 => self.clusters[0].clone(),
            ClusterName::Cluster1 => self.clusters[1].clone(),
        }
    }

    /// Starts the migration a start request asks for as `sync` would
    /// (connect, log, check), and answers once it runs. The API lets one
    /// start through at a time, and none after one has succeeded.
    async fn start(&self, request: StartRequest) -> anyhow::Result<MigrationHandle> {
        let mut config = SyncConfig::new(self.uri(request.source), self.uri(request.destination));
        config.include = request.include;
        config.exclude = request.exclude;
        config.block_source_writes = request.block_source_writes;
        config.reversible = request.reversible;
        config.cluster_names = [request.source.as_str(), request.destination.as_str()];
        eprintln!(
            "Starting a migration from {} to {}.",
            request.source, request.destination
        );
        let checked =
            match Checked::prepare(config, &self.log_dir, self.port, self.cancel.clone()).await {
                Ok(c) => c,
                Err(e) => {
                    match e.downcast_ref::<mongoferry::Error>() {
                        Some(e) => eprintln!("The start was refused: {} {}", e, e.remedy()),
                        None => eprintln!("The start was refused: {e:#}"),
                    }
                    return Err(e);
                }
            };
        let handle = checked.handle();
        {
            // Under the lock `run` takes the run from once cancelled: a run
            // is either stored before, and waited for, or never begun.
            let mut run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
            if self.cancel.is_cancelled() {
                anyhow::bail!(
                    "Mongoferry is stopping, so the migration was not started. Start 'mongoferry serve' again, then the migration."
                );
            }
            let cancel = self.cancel.clone();
            *run = Some(tokio::spawn(checked.run(cancel, 0, RESUME)));
        }
        // Answer once the run has begun, so that the progress a runbook
        // reads next is no longer IDLE.
        let mut progress = handle.watch_progress();
        let begun = progress.wait_for(|p| p.state != State::Idle);
        let _ = tokio::time::timeout(Duration::from_secs(5), begun).await;
        Ok(handle)
    }
}
