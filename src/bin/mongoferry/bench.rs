//! `mongoferry bench`: a measurement, not a timed test.
//!
//! On two local replica sets it starts itself (`sandbox::Pair`), it seeds
//! the source with `--docs` documents of about `--doc-size` bytes of mixed
//! shapes and `_id` types, then measures, all in one run so that the
//! ratios compare like with like (the box varies by up to ~1.7x from run
//! to run; compare ratios from one run, never figures from two):
//!
//! 1. MONGOFERRY: a real [`Migration`] of the bench database into an empty
//!    destination, timed from `run()` until the copy phase ends; the peak
//!    RSS of this process (which hosts the engine) during that copy.
//!    It runs first so that no other phase inflates the process's memory.
//! 2. VERIFY: with the copy done and the sync idle, a full verification
//!    ([`mongoferry::verify`]) of the copied database: every document read
//!    on both sides and compared. Its docs/s stand beside the copy's: the
//!    target is to read at least as fast as the copy writes.
//! 3. LAG: with that migration applying change events, a steady write load
//!    on the source for `--lag-seconds`, measured two ways: the engine's
//!    `lagTimeSeconds` (1 s resolution) and end-to-end marker documents
//!    timed from their insert on the source to their arrival on the
//!    destination. Then commit, and verify the destination against the
//!    source (document counts and `dbHash`).
//! 4. CEILING: the same documents, pre-built in memory, written into an
//!    empty destination collection by parallel unordered `insertMany`
//!    tasks with the same Rust driver.
//! 5. NAIVE: one cursor over the source, `insertMany` of 1,000 at a time,
//!    sequentially.
//!
//! With `--rounds N` the copy, the ceiling and the naive copy are measured
//! N times, interleaved, and the ratios use each one's fastest round. Each
//! phase also reports the CPU seconds of both `mongod`s, of this process
//! and of every other process on the box, and the bytes the source read
//! into its cache: a phase that shared the box with other work is flagged.
//!
//! With `--source-version 4.4` or `5.0` the source is a replica set of
//! that version (the destination stays 6.0) and the migration reads its
//! oplog (`--event-source auto`). Then every measurement above runs once
//! more, on a fresh pair of a 6.0 source and a 6.0 destination with the
//! event source left to `auto`, after the first pair has stopped (two
//! cores hold one pair at a time), and the bench prints the older
//! source's copy docs/s and end-to-end lag p99 beside the 6.0 source's,
//! their ratios, and whether they are within 20% of the 6.0 source's.
//!
//! With `--impact` it measures something else instead: what the copy does
//! to a foreground workload on the source, at each load level and in the
//! adaptive mode (see [`impact`]).
//!
//! It exits 0 when the measurement completed, whether or not the targets
//! were met, and 1 when the migration failed, the full verification found
//! a difference, or the destination does not match the source after the
//! commit (in either run).

mod cpu;
mod impact;
mod lag;
mod measure;
mod report;
mod rss;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use mongodb::Client;
use mongoferry::sandbox::{MongodVersion, Pair};
use mongoferry::scope::Namespace;
use mongoferry::verify::{self, NullSink, VerifyMode, VerifyOptions, VerifyReport};
use mongoferry::{CommitRequest, CommitVerify, Migration, Phase, Progress, SyncConfig, Tuning};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::measure::{Figure, BENCH_DB, DOCS_COLL};
use self::report::Report;
use crate::args::EventSourceArg;
use crate::display::thousands;

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// Documents in the benchmark collection.
    #[arg(long, default_value_t = 1_000_000)]
    docs: u64,
    /// Approximate size of each document, in bytes.
    #[arg(long, default_value_t = 1024)]
    doc_size: usize,
    /// Source writes per second during the lag measurement.
    #[arg(long, default_value_t = 5000)]
    write_rate: u32,
    /// How long the write load runs while lag is measured (0 skips the
    /// load; the migration is still committed and verified).
    #[arg(long, default_value_t = 20)]
    lag_seconds: u64,
    /// Also print every figure as one JSON object on stdout (the table
    /// then goes to stderr).
    #[arg(long)]
    json: bool,
    /// Ranges the engine copies at once. A comma-separated list measures
    /// each value's copy in this run; the first one is the migration whose
    /// memory and lag are measured.
    #[arg(long, value_delimiter = ',', default_values_t = [Tuning::default().copy_concurrency])]
    copy_concurrency: Vec<usize>,
    /// Documents per insert batch in the engine's copy.
    #[arg(long, default_value_t = Tuning::default().batch_docs)]
    batch_docs: usize,
    /// Bytes per insert batch in the engine's copy, in KiB.
    #[arg(long, default_value_t = Tuning::default().batch_bytes / 1024)]
    batch_kib: usize,
    /// Documents per cursor batch when the engine reads a range.
    #[arg(long, default_value_t = Tuning::default().read_batch_docs)]
    read_batch_docs: u32,
    /// Target size of one `_id` range in the engine's copy, in MiB.
    #[arg(long, default_value_t = Tuning::default().partition_bytes / (1024 * 1024))]
    partition_mib: u64,
    /// Rounds of the copy, ceiling and naive measurements; the ratios use
    /// each one's fastest round. The memory and lag figures come from the
    /// first round's migration.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Parallel insertMany tasks of the ceiling measurement.
    #[arg(long, default_value_t = 4)]
    ceiling_concurrency: usize,
    /// Documents per insertMany of the ceiling measurement.
    #[arg(long, default_value_t = 1000)]
    ceiling_batch: usize,
    /// `_id` ranges the full verification compares at once.
    #[arg(long, default_value_t = VerifyOptions::default().concurrency)]
    verify_concurrency: usize,
    /// Server version of the source replica set (the destination is 6.0).
    /// Below 6.0 every measurement also runs on a 6.0 source in this run,
    /// and the copy's docs/s and the lag's p99 are compared with it.
    #[arg(long, value_name = "VERSION", default_value = "6.0", value_parser = source_version())]
    source_version: MongodVersion,
    /// Where the migration reads the source's changes from. The 6.0
    /// source of the comparison always uses auto (change streams).
    #[arg(long, value_enum, default_value_t = EventSourceArg::Auto)]
    event_source: EventSourceArg,
    /// `--impact` and its flags: the copy's impact on the source instead.
    #[command(flatten)]
    impact: impact::ImpactArgs,
}

/// `--source-version`: one of the versions the sandbox starts.
fn source_version() -> impl TypedValueParser<Value = MongodVersion> {
    PossibleValuesParser::new(MongodVersion::ALL.map(MongodVersion::as_str))
        .map(|s| MongodVersion::parse(&s).expect("one of the possible values"))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.impact.impact {
        return impact::run(&args).await;
    }
    anyhow::ensure!(args.docs > 0, "--docs must be at least 1");
    anyhow::ensure!(
        !args.copy_concurrency.is_empty() && args.copy_concurrency.iter().all(|&c| c > 0),
        "--copy-concurrency must be at least 1"
    );
    anyhow::ensure!(
        args.ceiling_concurrency > 0 && args.ceiling_batch > 0 && args.batch_docs > 0,
        "--ceiling-concurrency, --ceiling-batch and --batch-docs must be at least 1"
    );
    let Some(mut report) = bench_on(&args).await? else {
        return Ok(ExitCode::from(1));
    };
    if args.source_version != MongodVersion::V6_0 {
        // The same measurements, with the same flags, on a 6.0 source
        // read the way a migration from 6.0 reads it by default.
        let reference = BenchArgs {
            source_version: MongodVersion::V6_0,
            event_source: EventSourceArg::Auto,
            ..args.clone()
        };
        step(&format!(
            "the {} source's run is done; now the same measurements on a 6.0 source, for comparison",
            args.source_version
        ));
        match bench_on(&reference).await? {
            Some(r) => report.reference = Some(Box::new(r)),
            None => {
                report.print(args.json)?;
                eprintln!("error: the run on the 6.0 source failed, so there is no comparison");
                return Ok(ExitCode::from(1));
            }
        }
    }
    report.print(args.json)?;
    let runs = std::iter::once(&report).chain(report.reference.as_deref());
    let failures: Vec<String> = runs.filter_map(Report::failure).collect();
    for f in &failures {
        eprintln!("error: {f}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every phase of the bench on a new pair of replica sets: a source of
/// `--source-version` and a 6.0 destination, stopped before it returns.
/// `None` when a migration failed (reported on stderr).
async fn bench_on(args: &BenchArgs) -> anyhow::Result<Option<Report>> {
    let started = Instant::now();
    step(&format!(
        "starting two local replica sets (source {}, destination 6.0)",
        args.source_version
    ));
    let pair = Pair::start_versions(args.source_version, MongodVersion::V6_0)
        .await
        .map_err(|e| anyhow::anyhow!("{e} {}", e.remedy()))
        .context("could not start the local replica sets")?;
    let src = measure::client(&pair.source.uri()).await?;
    let dest = measure::client(&pair.destination.uri()).await?;
    let load = measure::load_client(&pair.source.uri()).await?;
    let result = bench(args, &pair, [&src, &dest, &load], started).await;
    // Before the replica sets stop and the process exits.
    for c in [&src, &dest, &load] {
        mongoferry::cluster::close_client(c).await;
    }
    result
}

/// Every phase of the bench, on the replica sets `pair` and clients of its
/// source, its destination and the source's write load.
async fn bench(
    args: &BenchArgs,
    pair: &Pair,
    [src, dest, load]: [&Client; 3],
    started: Instant,
) -> anyhow::Result<Option<Report>> {
    let mut report = Report::new(args);
    report.mongodb_version = measure::server_version(src).await?;
    report.destination_version = measure::server_version(dest).await?;

    // The write load of the lag phase goes to collections of its own, so
    // that the benchmark collection holds exactly --docs documents for
    // every copy.
    let load_tasks = lag::load_tasks(args.write_rate);
    step(&format!(
        "seeding {} documents of ~{} B into {BENCH_DB}.{DOCS_COLL}",
        thousands(args.docs),
        args.doc_size
    ));
    let seed = measure::seed(src, args.docs, args.doc_size).await?;
    lag::prepare_source(src, load_tasks).await?;
    report.seed = Some(seed);
    report.doc_bytes = seed.bytes;
    step(&format!(
        "seeded in {:.1} s ({} docs/s, {:.1} MB/s)",
        seed.seconds,
        thousands(seed.docs_per_second() as u64),
        seed.mb_per_second()
    ));

    let phases = Phases { src, dest };

    // 1. Mongoferry's copy, first: nothing else has grown the heap yet.
    let primary = args.copy_concurrency[0];
    let copied = phases
        .measure(Destination::AsLeft, &copy_title(primary), "copy", async {
            let rss = rss::Sampler::start();
            let copied = copy(pair, args, primary).await?;
            report.rss = Some(rss.finish());
            Ok(copied)
        })
        .await?;
    let Some(Copied {
        figure,
        mut migration,
    }) = copied
    else {
        return Ok(None);
    };
    report.event_source = migration.handle.progress().event_source;
    report.copies.push((primary, figure));

    // 2. A full verification of what was copied, while the sync is idle.
    let title = "VERIFY: full verification of the copied database, both sides read in parallel";
    let verified = phases
        .measure(Destination::AsLeft, title, "verify", async {
            let rss = rss::Sampler::start();
            let verified = verify_copy(pair, args).await;
            report.verify_rss = Some(rss.finish());
            Ok(reported(verified, "the full verification could not run"))
        })
        .await?;
    let Some((verification, outcome)) = verified else {
        return Ok(None);
    };
    if !outcome.identical {
        step(&format!(
            "VERIFY found {} differences, the first: {:?}",
            outcome.differences,
            outcome.samples.first().map(|d| &d.detail)
        ));
    }
    report.verification = Some((verification, outcome));

    // 3. Lag under a steady write load, then commit and verify.
    let handle = migration.handle.clone();
    let lag_rss = rss::Sampler::start();
    let lag = lag::measure(src, load, dest, &handle, args, load_tasks).await?;
    report.lag_rss = Some(lag_rss.finish());
    report.lag = lag;
    step("committing");
    match commit(&mut migration).await {
        Ok(p) => report.events_applied = p.total_events_applied,
        Err(e) => {
            eprintln!("error: the commit failed: {e:#}");
            return Ok(None);
        }
    }
    let verify = measure::verify(src, dest).await?;
    step(&format!(
        "verified: source {} docs, destination {} docs, dbHash {}",
        thousands(verify.source_docs),
        thousands(verify.destination_docs),
        if verify.hash_match {
            "match"
        } else {
            "MISMATCH"
        }
    ));
    report.verify = Some(verify);

    // Further copy-concurrency values, for tuning, in the same run.
    for &c in &args.copy_concurrency[1..] {
        match copy_again(&phases, pair, args, c).await? {
            Some(copy) => report.copies.push((c, copy)),
            None => return Ok(None),
        }
    }

    // 4. The destination's insert ceiling and 5. the naive copy, in rounds
    // with the copy again, so that a burst of other work on the box skews
    // one round rather than the ratios.
    measure::clean_destination(dest).await?;
    step(&format!(
        "CEILING: building {} documents in memory",
        thousands(args.docs)
    ));
    let docs = Arc::new(measure::build_docs(args.docs, args.doc_size).await?);
    for round in 0..args.rounds.max(1) {
        if round > 0 {
            match copy_again(&phases, pair, args, primary).await? {
                Some(copy) => report.copy_rounds.push(copy),
                None => return Ok(None),
            }
        }
        let title = format!(
            "CEILING: {} parallel unordered insertMany of {} docs",
            args.ceiling_concurrency, args.ceiling_batch
        );
        let ceiling = measure::ceiling(
            dest,
            docs.clone(),
            args.ceiling_concurrency,
            args.ceiling_batch,
        );
        let ceiling = phases
            .measure(Destination::Clean, &title, "ceiling", ceiling)
            .await?;
        report.ceilings.push(ceiling);

        let title = "NAIVE: one cursor, insertMany of 1,000 at a time";
        let naive = measure::naive(src, dest);
        let naive = phases
            .measure(Destination::Clean, title, "naive", naive)
            .await?;
        report.naives.push(naive);
    }
    drop(docs);
    measure::clean_destination(dest).await?;

    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(Some(report))
}

/// A full verification of the bench database, timed; the sync that
/// copied it is idle meanwhile, so its relaxations are accepted.
async fn verify_copy(pair: &Pair, args: &BenchArgs) -> anyhow::Result<(Figure, VerifyReport)> {
    let (src, dest) = verify::connect(&pair.source.uri(), &pair.destination.uri())
        .await
        .map_err(|e| anyhow::anyhow!("{e} {}", e.remedy()))?;
    let options = VerifyOptions {
        mode: VerifyMode::Full,
        include: vec![BENCH_DB.to_string()],
        concurrency: args.verify_concurrency.max(1),
        allow_sync_relaxations: Some(true),
        ..VerifyOptions::default()
    };
    let started = Instant::now();
    let report = verify::run(
        &src,
        &dest,
        &options,
        &mut NullSink,
        &CancellationToken::new(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e} {}", e.remedy()))?;
    let figure = Figure {
        docs: report.documents_compared,
        bytes: report.bytes_compared,
        seconds: started.elapsed().as_secs_f64(),
        data_seconds: None,
        ranges: None,
        usage: None,
    };
    Ok((figure, report))
}

/// Another copy by the engine into a clean destination, for tuning or a
/// later round; the migration is stopped once its copy is done. `None`
/// when the migration failed (reported on stderr).
async fn copy_again(
    phases: &Phases<'_>,
    pair: &Pair,
    args: &BenchArgs,
    copy_concurrency: usize,
) -> anyhow::Result<Option<Figure>> {
    let title = copy_title(copy_concurrency);
    let measurement = copy(pair, args, copy_concurrency);
    let Some(copied) = phases
        .measure(Destination::Clean, &title, "copy", measurement)
        .await?
    else {
        return Ok(None);
    };
    copied.migration.cancel.cancel();
    let _ = copied.migration.join.await;
    Ok(Some(copied.figure))
}

fn copy_title(copy_concurrency: usize) -> String {
    format!("MONGOFERRY: copy with copy_concurrency {copy_concurrency}")
}

/// A progress line on stderr.
fn step(message: &str) {
    eprintln!("[bench] {message}");
}

/// The two clusters every phase measures, and what each phase does around
/// its measurement.
struct Phases<'a> {
    src: &'a Client,
    dest: &'a Client,
}

/// What a phase finds on the destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Destination {
    /// What the previous phase left there.
    AsLeft,
    /// Nothing that any phase wrote.
    Clean,
}

impl Phases<'_> {
    /// Runs one measured phase: cleans the destination if asked, then
    /// checkpoints both sides, so that no earlier phase's writes weigh on
    /// this one; says `title`; runs `measurement` between two readings of
    /// the CPU and cache counters; and gives the figure it made, if any,
    /// that usage, and announces it as `name`.
    async fn measure<T: Measured>(
        &self,
        destination: Destination,
        title: &str,
        name: &str,
        measurement: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        if destination == Destination::Clean {
            measure::clean_destination(self.dest).await?;
        }
        measure::settle(self.src, self.dest).await?;
        step(title);
        let before = cpu::Snapshot::take(self.src, self.dest).await?;
        let mut measured = measurement.await?;
        if let Some(figure) = measured.figure() {
            figure.usage = Some(before.usage(self.src, self.dest).await?);
            announce(name, figure);
        }
        Ok(measured)
    }
}

/// What a phase measured: a figure, or nothing when its measurement failed
/// in a way the bench reports and exits 1 for.
trait Measured {
    fn figure(&mut self) -> Option<&mut Figure>;
}

impl Measured for Figure {
    fn figure(&mut self) -> Option<&mut Figure> {
        Some(self)
    }
}

impl Measured for (Figure, VerifyReport) {
    fn figure(&mut self) -> Option<&mut Figure> {
        Some(&mut self.0)
    }
}

impl Measured for Copied {
    fn figure(&mut self) -> Option<&mut Figure> {
        Some(&mut self.figure)
    }
}

impl<T: Measured> Measured for Option<T> {
    fn figure(&mut self) -> Option<&mut Figure> {
        self.as_mut().and_then(Measured::figure)
    }
}

/// The value of a measurement whose failure ends the bench with exit code
/// 1 rather than an error: `None`, the failure reported on stderr.
fn reported<T>(result: anyhow::Result<T>, what: &str) -> Option<T> {
    result.map_err(|e| eprintln!("error: {what}: {e:#}")).ok()
}

/// The engine's copy of the bench database: a new migration, run until
/// its copy ends. `None` when it failed during the copy (reported on stderr).
async fn copy(
    pair: &Pair,
    args: &BenchArgs,
    copy_concurrency: usize,
) -> anyhow::Result<Option<Copied>> {
    let mut migration = start_migration(pair, args, copy_concurrency).await?;
    let figure = wait_copy(&mut migration, args).await;
    Ok(reported(figure, "the migration failed during the copy")
        .map(|figure| Copied { figure, migration }))
}

/// A copy's figure, and the migration that made it, still running.
struct Copied {
    figure: Figure,
    migration: Running,
}

/// A migration running in its own task.
struct Running {
    handle: mongoferry::MigrationHandle,
    join: JoinHandle<mongoferry::Result<Progress>>,
    cancel: CancellationToken,
    copy_concurrency: usize,
}

async fn start_migration(
    pair: &Pair,
    args: &BenchArgs,
    copy_concurrency: usize,
) -> anyhow::Result<Running> {
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.include = vec![BENCH_DB.to_string()];
    config.fresh = true;
    config.drop_existing = true;
    // The source was just seeded, so its oplog spans seconds however large
    // it is; the bench's copy is local and measured, so tell the preflight
    // check it is fast rather than let it refuse on the default estimate.
    config.copy_bytes_per_second = 1 << 30;
    config.event_source = args.event_source.into();
    config.tuning.copy_concurrency = copy_concurrency;
    config.tuning.batch_docs = args.batch_docs;
    config.tuning.batch_bytes = args.batch_kib.max(1) * 1024;
    config.tuning.read_batch_docs = args.read_batch_docs.max(1);
    config.tuning.partition_bytes = args.partition_mib.max(1) * 1024 * 1024;
    let Launched {
        handle,
        join,
        cancel,
    } = launch(config).await?;
    Ok(Running {
        handle,
        join,
        cancel,
        copy_concurrency,
    })
}

/// A migration running in a task of its own.
struct Launched {
    handle: mongoferry::MigrationHandle,
    join: JoinHandle<mongoferry::Result<Progress>>,
    cancel: CancellationToken,
}

/// Connects `config`'s migration and runs it in a task of its own.
async fn launch(config: SyncConfig) -> anyhow::Result<Launched> {
    let cancel = CancellationToken::new();
    let migration = Migration::connect(config, cancel.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e} {}", e.remedy()))?;
    let handle = migration.handle();
    let join = tokio::spawn(migration.run());
    Ok(Launched {
        handle,
        join,
        cancel,
    })
}

/// Waits for the copy phase to end; times it from the start of `run()`.
async fn wait_copy(m: &mut Running, args: &BenchArgs) -> anyhow::Result<Figure> {
    let started = Instant::now();
    let mut rx = m.handle.watch_progress();
    let mut data_done: Option<f64> = None;
    let mut last_note = Instant::now();
    loop {
        let p = rx.borrow_and_update().clone();
        let c = &p.collection_copy;
        if p.phase == Phase::Copying
            && data_done.is_none()
            && c.estimated_total_docs > 0
            && c.copied_docs >= c.estimated_total_docs
        {
            data_done = Some(started.elapsed().as_secs_f64());
        }
        if matches!(p.phase, Phase::Applying | Phase::Committing | Phase::Done) {
            let seconds = started.elapsed().as_secs_f64();
            return Ok(Figure {
                docs: c.copied_docs,
                bytes: c.estimated_copied_bytes,
                seconds,
                data_seconds: data_done,
                ranges: Some(ranges_of(&p, args, m.copy_concurrency)),
                usage: None,
            });
        }
        if last_note.elapsed() > Duration::from_secs(5) && p.phase == Phase::Copying {
            last_note = Instant::now();
            step(&format!(
                "  {} of ~{} docs copied",
                thousands(c.copied_docs),
                thousands(c.estimated_total_docs)
            ));
        }
        tokio::select! {
            r = &mut m.join => {
                return Err(match r {
                    Ok(Ok(p)) => anyhow::anyhow!("the migration ended in state {} during the copy", p.state),
                    Ok(Err(e)) => anyhow::anyhow!("{e} {}", e.remedy()),
                    Err(e) => anyhow::anyhow!("the migration task failed: {e}"),
                });
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the migration stopped publishing progress");
                }
            }
            // A periodic wake-up for the progress note while the copy is
            // between batches.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// How many `_id` ranges the engine planned for the benchmark collection,
/// estimated the way the engine plans them (the count is not published).
fn ranges_of(p: &Progress, args: &BenchArgs, copy_concurrency: usize) -> u64 {
    let ns = Namespace::new(BENCH_DB, DOCS_COLL).to_string();
    p.collection_copy
        .collections
        .iter()
        .find(|c| c.namespace == ns)
        .map(|c| {
            mongoferry::copy::partition_count(
                c.estimated_total_bytes,
                args.partition_mib.max(1) * 1024 * 1024,
                copy_concurrency,
                Tuning::default().max_partitions,
            ) as u64
        })
        .unwrap_or(0)
}

/// One measured figure, on the progress stream.
fn announce(name: &str, f: &Figure) {
    step(&format!(
        "{name}: {} docs/s, {:.1} MB/s",
        thousands(f.docs_per_second() as u64),
        f.mb_per_second()
    ));
}

/// Commits once `canCommit`, and waits for COMMITTED.
async fn commit(m: &mut Running) -> anyhow::Result<Progress> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // The full verification was measured on its own after the copy:
        // the commit's quick checks suffice here and keep the commit short.
        let request = CommitRequest {
            verify: CommitVerify::Quick,
            ..Default::default()
        };
        match m.handle.commit(request) {
            Ok(()) => break,
            Err(e @ mongoferry::Error::NotReadyToCommit { .. }) => {
                if Instant::now() > deadline {
                    anyhow::bail!("not ready to commit after 120 s: {e}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => anyhow::bail!("{e} {}", e.remedy()),
        }
    }
    match tokio::time::timeout(Duration::from_secs(600), &mut m.join).await {
        Err(_) => anyhow::bail!("the commit did not finish within 600 s"),
        Ok(Err(e)) => anyhow::bail!("the migration task failed: {e}"),
        Ok(Ok(Err(e))) => anyhow::bail!("{e} {}", e.remedy()),
        Ok(Ok(Ok(p))) if p.state == mongoferry::State::Committed => Ok(p),
        Ok(Ok(Ok(p))) => anyhow::bail!("the migration ended in state {}", p.state),
    }
}
