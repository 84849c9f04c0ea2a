//! `mongoferry bench --impact`: what the copy does to an application on
//! the source, at each load level and in the adaptive mode. Figures, not a
//! timed test: it exits 0 whether or not the targets are met.
//!
//! On a 6.0 pair of local replica sets whose source runs with a reduced
//! WiredTiger cache (`--source-cache-mib`, passed to mongod as
//! `--wiredTigerEngineConfigString cache_size=...`, which overrides the
//! sandbox's 256 MiB; the cache actually configured is read back from
//! `serverStatus` and printed), it seeds `--impact-docs` documents of
//! `--doc-size` bytes, several times the cache, so that the copy's scan
//! evicts what the application reads.
//!
//! A foreground workload then runs on the source for the whole bench:
//! open loop at `--fg-rate` operations a second (90% point reads of a
//! random seeded `_id`, 10% updates of one field), on its own OS thread
//! with a current-thread runtime and a client of its own. Each operation
//! is sent at its scheduled time whatever the ones before it are doing,
//! and its latency runs from that scheduled time, so a stalled server
//! shows in the figures instead of slowing the workload down (no
//! coordinated omission).
//!
//! Phases, each `--warmup-seconds` then `--phase-seconds` measured: idle
//! (no migration), gentle, normal, full, adaptive (level full with
//! `--adaptive-limit-percent`, 50 by default) and idle again. A copy phase
//! runs a new in-process migration of a clean destination at that load
//! and cancels it at the end of the phase. When the copy ends before the
//! phase does, another fresh migration starts, so that the phase keeps
//! copying; then the copy's docs/s and the foreground's latency count only
//! the time a copy was actually in its copy phase, and the notes say how
//! many copies ran and what share of the window they covered. The engine's
//! own view (its `sourceImpact` read latency increase and, in the adaptive
//! mode, whether and why it throttled) is recorded beside it.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;
use mongoferry::sandbox::workload::mixed_id;
use mongoferry::sandbox::{MongodVersion, ReplicaSet, SandboxOptions};
use mongoferry::{LoadLevel, LoadSetting, Phase, State, SyncConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::lag::Percentiles;
use super::measure::{self, BENCH_DB, DOCS_COLL};
use super::{step, BenchArgs};
use crate::display::thousands;

/// The gentlest level keeps the foreground p99 within this of idle...
const TARGET_GENTLE_P99: f64 = 1.5;
/// ...the adaptive mode too...
const TARGET_ADAPTIVE_P99: f64 = 1.5;
/// ...while copying at least this share of full speed.
const TARGET_ADAPTIVE_SPEED: f64 = 0.5;
/// Idle again slower than idle by more than this: the box drifted.
const DRIFT_LIMIT: f64 = 1.3;
/// The sandbox's own cache, when none is asked for.
const SANDBOX_CACHE_MIB: u64 = 256;
/// How often a copy phase reads the migration's progress.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// The longest one foreground operation may take; it counts at that.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a cancelled migration may take to return.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// A new copy is not started for less than this much of a window.
const LEAST_ROUND: Duration = Duration::from_secs(3);
const MIB: f64 = 1024.0 * 1024.0;

/// The flags of `bench --impact`; `--doc-size` and `--json` are the
/// bench's own.
#[derive(clap::Args, Clone)]
pub struct ImpactArgs {
    /// Measure the copy's impact on a foreground workload on the source,
    /// at each load level and in the adaptive mode, instead of the
    /// throughput bench.
    #[arg(long)]
    pub impact: bool,
    /// With --impact: documents seeded into the source.
    #[arg(long, default_value_t = 600_000)]
    impact_docs: u64,
    /// With --impact: seconds each phase is measured, after its warm-up.
    #[arg(long, default_value_t = 30)]
    phase_seconds: u64,
    /// With --impact: seconds each phase runs before it is measured.
    #[arg(long, default_value_t = 5)]
    warmup_seconds: u64,
    /// With --impact: foreground operations a second (90% point reads,
    /// 10% updates), sent on a fixed schedule.
    #[arg(long, default_value_t = 200)]
    fg_rate: u32,
    /// With --impact: the source's WiredTiger cache, in MiB (0 leaves the
    /// sandbox's 256 MiB).
    #[arg(long, default_value_t = 128)]
    source_cache_mib: u64,
    /// With --impact: the adaptive phase's limit on the source's read
    /// latency increase, in percent.
    #[arg(long, default_value_t = 50.0)]
    adaptive_limit_percent: f64,
}

/// Gives the source `mongod` CPU 0 to itself and puts everything else of
/// the bench (the destination, this process's threads, the foreground's)
/// on CPU 1, so that the foreground's latency shows what the copy's reads
/// cost the source, not what this one machine's CPUs are shared by. Every
/// thread is pinned (`/proc/PID/task`); the threads they start inherit it.
#[cfg(target_os = "linux")]
fn pin(source: &ReplicaSet, destination: &ReplicaSet) -> Result<(), String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Err(format!("{cpus} CPU"));
    }
    let (Some(src), Some(dest)) = (source.pid(), destination.pid()) else {
        return Err("a mongod's process id is unknown".into());
    };
    pin_process(src, 0)?;
    pin_process(dest, 1)?;
    pin_process(std::process::id(), 1)
}

#[cfg(not(target_os = "linux"))]
fn pin(_: &ReplicaSet, _: &ReplicaSet) -> Result<(), String> {
    Err("only on Linux".into())
}

#[cfg(target_os = "linux")]
fn pin_process(pid: u32, cpu: usize) -> Result<(), String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
        // sched_setaffinity only read and write the set passed to them.
        let done = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if done != 0 {
            return Err(format!(
                "sched_setaffinity: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let a = &args.impact;
    anyhow::ensure!(a.impact_docs > 0, "--impact-docs must be at least 1");
    anyhow::ensure!(a.phase_seconds > 0, "--phase-seconds must be at least 1");
    anyhow::ensure!(a.fg_rate > 0, "--fg-rate must be at least 1");
    let adaptive = LoadSetting {
        level: LoadLevel::Full,
        max_source_latency_increase_percent: Some(a.adaptive_limit_percent),
        max_secondary_lag_seconds: None,
    };
    adaptive
        .validate()
        .map_err(|e| anyhow::anyhow!("--adaptive-limit-percent: {e}"))?;
    let started = Instant::now();

    step(&format!(
        "starting two local 6.0 replica sets (source cache {})",
        if a.source_cache_mib == 0 {
            format!("left at the sandbox's {SANDBOX_CACHE_MIB} MiB")
        } else {
            format!("{} MiB", a.source_cache_mib)
        }
    ));
    let source_options = SandboxOptions {
        version: MongodVersion::V6_0,
        extra_args: if a.source_cache_mib == 0 {
            Vec::new()
        } else {
            vec![
                "--wiredTigerEngineConfigString".into(),
                format!("cache_size={}M", a.source_cache_mib),
            ]
        },
        ..SandboxOptions::default()
    };
    let (source, destination) = tokio::try_join!(
        ReplicaSet::start_opts("source", source_options),
        ReplicaSet::start_opts("destination", SandboxOptions::default())
    )
    .map_err(|e| anyhow::anyhow!("{e} {}", e.remedy()))
    .context("could not start the local replica sets")?;
    let pinned = pin(&source, &destination);
    match &pinned {
        Ok(()) => step("pinned: the source mongod on CPU 0; the destination, Mongoferry and the foreground on CPU 1"),
        Err(why) => step(&format!("not pinned to CPUs ({why}): the figures include CPU contention on this machine")),
    }
    let src = measure::client(&source.uri()).await?;
    let dest = measure::client(&destination.uri()).await?;
    let result = bench(
        args,
        &source.uri(),
        &destination.uri(),
        &src,
        &dest,
        started,
    )
    .await;
    for c in [&src, &dest] {
        mongoferry::cluster::close_client(c).await;
    }
    drop((source, destination));
    let report = match result? {
        Ok(report) => report,
        Err(failure) => {
            eprintln!("error: {failure}");
            return Ok(ExitCode::from(1));
        }
    };
    report.print(args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The whole bench on the started pair: `Ok(Err(why))` when a migration
/// failed, so that the bench ends with exit code 1 rather than an error.
async fn bench(
    args: &BenchArgs,
    source_uri: &str,
    destination_uri: &str,
    src: &Client,
    dest: &Client,
    started: Instant,
) -> anyhow::Result<Result<Report, String>> {
    let a = &args.impact;
    let mut report = Report {
        mongodb_version: measure::server_version(src).await?,
        requested_cache_mib: (a.source_cache_mib > 0).then_some(a.source_cache_mib),
        source_cache_mib: cache_mib(src).await,
        docs: a.impact_docs,
        doc_size: args.doc_size,
        doc_bytes: 0,
        fg_rate: a.fg_rate,
        warmup_seconds: a.warmup_seconds,
        phase_seconds: a.phase_seconds,
        phases: Vec::new(),
        targets: Vec::new(),
        drift: None,
        total_seconds: 0.0,
    };
    step(&format!(
        "seeding {} documents of ~{} B into {BENCH_DB}.{DOCS_COLL}",
        thousands(a.impact_docs),
        args.doc_size
    ));
    let seed = measure::seed(src, a.impact_docs, args.doc_size).await?;
    report.doc_bytes = seed.bytes;
    step(&format!(
        "seeded {:.0} MiB in {:.1} s; the source's cache is {}",
        seed.bytes as f64 / MIB,
        seed.seconds,
        report.cache_words()
    ));

    let fg = Foreground::start(source_uri.to_string(), a.impact_docs, a.fg_rate)?;
    let phases = [
        ("idle", None),
        ("gentle", Some(LoadSetting::fixed(LoadLevel::Gentle))),
        ("normal", Some(LoadSetting::fixed(LoadLevel::Normal))),
        ("full", Some(LoadSetting::fixed(LoadLevel::Full))),
        (
            "adaptive",
            Some(LoadSetting {
                level: LoadLevel::Full,
                max_source_latency_increase_percent: Some(a.adaptive_limit_percent),
                max_secondary_lag_seconds: None,
            }),
        ),
        ("idle again", None),
    ];
    let uris = (source_uri, destination_uri);
    let mut failure = None;
    for (name, setting) in phases {
        measure::clean_destination(dest).await?;
        measure::settle(src, dest).await?;
        step(&format!(
            "{}: {} s warm-up, then {} s measured",
            name.to_uppercase(),
            a.warmup_seconds,
            a.phase_seconds
        ));
        let measured = match setting {
            None => idle_phase(a).await,
            Some(setting) => match copy_phase(a, uris, dest, setting).await? {
                Ok(m) => m,
                Err(e) => {
                    failure = Some(format!("the {name} phase's migration failed: {e}"));
                    break;
                }
            },
        };
        let figures = PhaseFigures::new(
            name,
            setting,
            &measured,
            &fg.samples(),
            &report.phases,
            a.phase_seconds,
        );
        step(&figures.summary());
        report.phases.push(figures);
    }
    let stopped = fg.stop();
    measure::clean_destination(dest).await?;
    if let Some(f) = failure {
        return Ok(Err(f));
    }
    stopped.context("the foreground workload failed")?;
    report.judge();
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(Ok(report))
}

/// The source's configured cache, read back, in MiB.
async fn cache_mib(src: &Client) -> Option<f64> {
    let status = src
        .database("admin")
        .run_command(doc! { "serverStatus": 1 })
        .await
        .ok()?;
    let bytes = status
        .get_document("wiredTiger")
        .ok()?
        .get_document("cache")
        .ok()?
        .get("maximum bytes configured")?;
    let bytes = match bytes {
        bson::Bson::Int64(n) => *n as f64,
        bson::Bson::Int32(n) => f64::from(*n),
        bson::Bson::Double(n) => *n,
        _ => return None,
    };
    Some(bytes / MIB)
}

/// What one phase measured, before it is turned into figures.
#[derive(Default)]
struct Measured {
    /// When the measured window opened and closed.
    window: Option<(Instant, Instant)>,
    /// For a copy phase: the stretches of the window when a copy was in
    /// its copy phase; the foreground counts only those.
    copying: Vec<(Instant, Instant)>,
    copy: Option<CopyTally>,
}

#[derive(Default)]
struct CopyTally {
    docs: u64,
    bytes: u64,
    /// Fresh migrations the phase started.
    rounds: u32,
    /// The last read latency increase the engine reported.
    engine_read_increase: Option<f64>,
    /// Progress readings in the window, and those that throttled.
    readings: u32,
    throttled: u32,
    /// Times the adaptive mode began to throttle.
    throttle_starts: u32,
    last_reason: Option<String>,
}

async fn idle_phase(a: &ImpactArgs) -> Measured {
    tokio::time::sleep(Duration::from_secs(a.warmup_seconds)).await;
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.phase_seconds)).await;
    Measured {
        window: Some((from, Instant::now())),
        ..Measured::default()
    }
}

/// A phase of copies at `setting`: fresh migrations one after the other
/// until the window closes, the last one cancelled. `Ok(Err(why))` when a
/// migration failed.
async fn copy_phase(
    a: &ImpactArgs,
    (source_uri, destination_uri): (&str, &str),
    dest: &Client,
    setting: LoadSetting,
) -> anyhow::Result<Result<Measured, String>> {
    let phase_start = Instant::now();
    let window_start = phase_start + Duration::from_secs(a.warmup_seconds);
    let window_end = window_start + Duration::from_secs(a.phase_seconds);
    let mut tally = CopyTally::default();
    let mut copying: Vec<(Instant, Instant)> = Vec::new();
    let mut throttling_before = false;
    // The last reading: the window closes there.
    let mut window_closed = window_end;
    while Instant::now() + LEAST_ROUND < window_end {
        if tally.rounds > 0 {
            step("  the copy ended before the phase did: another fresh one, into an empty destination");
            measure::clean_destination(dest).await?;
        }
        tally.rounds += 1;
        let running = match start(source_uri, destination_uri, setting).await {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("{e:#}"))),
        };
        // The last reading: when, the copy's totals then, and whether the
        // copy was in its copy phase.
        let mut last: Option<(Instant, u64, u64, bool)> = None;
        let mut copy_ended = false;
        loop {
            let now = Instant::now();
            if running.join.is_finished() {
                break;
            }
            let p = running.handle.progress();
            let c = &p.collection_copy;
            let is_copying = p.state == State::Running && p.phase == Phase::Copying;
            if now >= window_start {
                // The step from the last reading to this one counts when
                // it began in the window and the copy was copying then.
                if let Some((then, docs, bytes, true)) = last {
                    if then >= window_start {
                        tally.docs += c.copied_docs.saturating_sub(docs);
                        tally.bytes += c.estimated_copied_bytes.saturating_sub(bytes);
                        push_stretch(&mut copying, then, now);
                    }
                }
                if let Some(v) = p
                    .source_impact
                    .as_ref()
                    .and_then(|i| i.read_latency_increase_percent)
                {
                    tally.engine_read_increase = Some(v);
                }
                if let Some(load) = &p.load {
                    tally.readings += 1;
                    if load.throttling {
                        tally.throttled += 1;
                        if !throttling_before {
                            tally.throttle_starts += 1;
                        }
                    }
                    throttling_before = load.throttling;
                    if load.reason.is_some() {
                        tally.last_reason.clone_from(&load.reason);
                    }
                }
            }
            last = Some((now, c.copied_docs, c.estimated_copied_bytes, is_copying));
            window_closed = now;
            if matches!(p.phase, Phase::Applying | Phase::Committing | Phase::Done) {
                copy_ended = true;
                break;
            }
            if now >= window_end {
                break;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        // A run that returned by itself failed or ended; one that does
        // not stop would weigh on the next phase: either ends the bench.
        match running.stop().await {
            Ok(p) if p.state == State::Failed => {
                return Ok(Err(p
                    .error
                    .map_or_else(|| "it ended in FAILED".into(), |e| e.to_string())))
            }
            Ok(_) => {}
            Err(e) => return Ok(Err(e)),
        }
        if !copy_ended {
            break;
        }
    }
    Ok(Ok(Measured {
        window: Some((window_start, window_closed.max(window_start))),
        copying,
        copy: Some(tally),
    }))
}

/// Adds a stretch, merged with the previous one when they touch.
fn push_stretch(stretches: &mut Vec<(Instant, Instant)>, from: Instant, to: Instant) {
    if to <= from {
        return;
    }
    match stretches.last_mut() {
        Some((_, end)) if *end >= from => *end = (*end).max(to),
        _ => stretches.push((from, to)),
    }
}

use super::Launched as Running;

impl Running {
    /// Cancels the migration and waits for its run to return: its last
    /// progress, or why it failed (a cancelled run is not a failure).
    async fn stop(self) -> Result<mongoferry::Progress, String> {
        self.cancel.cancel();
        match tokio::time::timeout(STOP_LIMIT, self.join).await {
            Err(_) => Err(format!(
                "the migration did not stop within {} s",
                STOP_LIMIT.as_secs()
            )),
            Ok(Err(e)) => Err(format!("the migration task failed: {e}")),
            Ok(Ok(Ok(p))) => Ok(p),
            Ok(Ok(Err(mongoferry::Error::Interrupted))) => Ok(self.handle.progress()),
            Ok(Ok(Err(e))) => Err(format!("{e} {}", e.remedy())),
        }
    }
}

/// A fresh migration of the bench database at `setting`, into a
/// destination it empties first.
async fn start(
    source_uri: &str,
    destination_uri: &str,
    setting: LoadSetting,
) -> anyhow::Result<Running> {
    let mut config = SyncConfig::new(source_uri, destination_uri);
    config.include = vec![BENCH_DB.to_string()];
    config.fresh = true;
    config.drop_existing = true;
    // As in the throughput bench: a freshly seeded oplog spans seconds.
    config.copy_bytes_per_second = 1 << 30;
    config.load = Some(setting);
    super::launch(config).await
}

/// One foreground operation.
#[derive(Clone, Copy)]
struct Sample {
    /// When it was due to be sent.
    scheduled: Instant,
    /// From then until its reply (or [`OP_TIMEOUT`]), in ms.
    ms: f64,
    write: bool,
    ok: bool,
}

/// The open-loop foreground workload, on a thread of its own.
struct Foreground {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Foreground {
    fn start(uri: String, docs: u64, rate: u32) -> anyhow::Result<Foreground> {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), samples.clone());
        let thread = std::thread::Builder::new()
            .name("bench-foreground".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("the foreground runtime")?;
                runtime.block_on(foreground(uri, docs, rate, s, v))
            })
            .context("could not start the foreground's thread")?;
        Ok(Foreground {
            stop,
            samples,
            thread,
        })
    }

    /// Every operation completed so far.
    fn samples(&self) -> Vec<Sample> {
        // A panicked writer leaves whole samples behind.
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => anyhow::bail!("the foreground thread panicked"),
        }
    }
}

async fn foreground(
    uri: String,
    docs: u64,
    rate: u32,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> anyhow::Result<()> {
    let mut opts = ClientOptions::parse(&uri).await.context("parse the URI")?;
    opts.app_name = Some("mongoferry-bench-foreground".into());
    opts.max_pool_size = Some(64);
    opts.write_concern = Some(measure::w1());
    let client = Client::with_options(opts).context("the foreground client")?;
    let coll = client.database(BENCH_DB).collection::<Document>(DOCS_COLL);
    // Connect before the schedule starts.
    coll.find_one(doc! { "_id": mixed_id(0) })
        .await
        .context("the foreground's first read")?;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut rng = StdRng::seed_from_u64(16);
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    let mut i: u32 = 0;
    while !stop.load(Ordering::Acquire) {
        let due = start + period * i;
        i = i.wrapping_add(1);
        tokio::time::sleep_until(due).await;
        while tasks.try_join_next().is_some() {}
        let id = mixed_id(rng.gen_range(0..docs));
        let write = rng.gen_bool(0.1);
        let score = rng.gen_range(0.0..100.0);
        let (coll, samples) = (coll.clone(), samples.clone());
        tasks.spawn(async move {
            let filter = doc! { "_id": id };
            let op = async {
                if write {
                    coll.update_one(filter, doc! { "$set": { "score": score } })
                        .await
                        .map(drop)
                } else {
                    coll.find_one(filter).await.map(drop)
                }
            };
            let ok = matches!(tokio::time::timeout(OP_TIMEOUT, op).await, Ok(Ok(())));
            let sample = Sample {
                scheduled: due.into_std(),
                ms: due.elapsed().as_secs_f64() * 1000.0,
                write,
                ok,
            };
            samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sample);
        });
    }
    while tasks.join_next().await.is_some() {}
    mongoferry::cluster::close_client(&client).await;
    Ok(())
}

/// The foreground's figures over a phase.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ForegroundFigures {
    operations: usize,
    reads: usize,
    updates: usize,
    failed: usize,
    /// Operations sent a second over the time counted.
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// p99 against the first idle phase's.
    p99_over_idle: Option<f64>,
    /// Seconds of the window the figures cover (a copy phase's: while a
    /// copy was copying).
    seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CopyFigures {
    docs: u64,
    bytes: u64,
    /// Seconds of the window in which a copy was in its copy phase.
    copying_seconds: f64,
    docs_per_second: f64,
    mib_per_second: f64,
    /// Fresh migrations started in the phase.
    rounds: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Throttling {
    /// Share of the window's progress readings that throttled, in percent.
    percent_of_readings: f64,
    /// Times it began to throttle.
    times: u32,
    last_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct PhaseFigures {
    name: String,
    load: Option<LoadSetting>,
    window_seconds: f64,
    copy: Option<CopyFigures>,
    foreground: ForegroundFigures,
    /// The engine's last `sourceImpact.readLatencyIncreasePercent`.
    engine_read_increase_percent: Option<f64>,
    throttling: Option<Throttling>,
    notes: Vec<String>,
}

impl PhaseFigures {
    fn new(
        name: &str,
        load: Option<LoadSetting>,
        m: &Measured,
        samples: &[Sample],
        before: &[PhaseFigures],
        phase_seconds: u64,
    ) -> PhaseFigures {
        let (from, to) = m.window.unwrap_or_else(|| {
            let now = Instant::now();
            (now, now)
        });
        let window_seconds = to.duration_since(from).as_secs_f64();
        let counted: Vec<Sample> = samples
            .iter()
            .filter(|s| s.scheduled >= from && s.scheduled < to)
            .filter(|s| {
                m.copy.is_none()
                    || m.copying
                        .iter()
                        .any(|&(a, b)| s.scheduled >= a && s.scheduled < b)
            })
            .copied()
            .collect();
        let counted_seconds = if m.copy.is_some() {
            m.copying
                .iter()
                .map(|(a, b)| b.duration_since(*a).as_secs_f64())
                .sum()
        } else {
            window_seconds
        };
        let idle_p99 = before.first().map(|p| p.foreground.p99_ms);
        let latency = Percentiles::of(counted.iter().map(|s| s.ms).collect());
        let mut fg = ForegroundFigures {
            operations: counted.len(),
            reads: counted.iter().filter(|s| !s.write).count(),
            updates: counted.iter().filter(|s| s.write).count(),
            failed: counted.iter().filter(|s| !s.ok).count(),
            per_second: if counted_seconds > 0.0 {
                counted.len() as f64 / counted_seconds
            } else {
                0.0
            },
            p50_ms: latency.p50,
            p99_ms: latency.p99,
            max_ms: latency.max,
            p99_over_idle: None,
            seconds: counted_seconds,
        };
        fg.p99_over_idle = match idle_p99 {
            Some(idle) if idle > 0.0 => Some(fg.p99_ms / idle),
            Some(_) => None,
            None => Some(1.0),
        };
        let mut notes = Vec::new();
        if window_seconds < 0.95 * phase_seconds as f64 {
            notes.push(format!(
                "measured {window_seconds:.0} s of {phase_seconds}: the copy ended"
            ));
        }
        let copy = m.copy.as_ref().map(|t| {
            let per = |x: f64| {
                if counted_seconds > 0.0 {
                    x / counted_seconds
                } else {
                    0.0
                }
            };
            if t.rounds > 1 {
                notes.push(format!(
                    "{} fresh copies, copying {:.0}% of the window",
                    t.rounds,
                    100.0 * counted_seconds / window_seconds.max(f64::MIN_POSITIVE)
                ));
            } else if counted_seconds < 0.95 * window_seconds {
                notes.push(format!(
                    "copying {:.0}% of the window",
                    100.0 * counted_seconds / window_seconds.max(f64::MIN_POSITIVE)
                ));
            }
            CopyFigures {
                docs: t.docs,
                bytes: t.bytes,
                copying_seconds: counted_seconds,
                docs_per_second: per(t.docs as f64),
                mib_per_second: per(t.bytes as f64) / MIB,
                rounds: t.rounds,
            }
        });
        let throttling = m
            .copy
            .as_ref()
            .filter(|_| load.is_some_and(|l| l.adaptive()))
            .map(|t| {
                let percent = if t.readings > 0 {
                    100.0 * f64::from(t.throttled) / f64::from(t.readings)
                } else {
                    0.0
                };
                notes.push(format!(
                    "throttled {percent:.0}% of the window, {}",
                    match t.throttle_starts {
                        1 => "once".to_string(),
                        n => format!("{n} times"),
                    }
                ));
                Throttling {
                    percent_of_readings: percent,
                    times: t.throttle_starts,
                    last_reason: t.last_reason.clone(),
                }
            });
        if fg.failed > 0 {
            notes.push(format!("{} foreground operations failed", fg.failed));
        }
        PhaseFigures {
            name: name.to_string(),
            load,
            window_seconds,
            copy,
            foreground: fg,
            engine_read_increase_percent: m.copy.as_ref().and_then(|t| t.engine_read_increase),
            throttling,
            notes,
        }
    }

    /// One line for the progress stream.
    fn summary(&self) -> String {
        let copy = match &self.copy {
            Some(c) => format!(
                "copy {} docs/s, {:.1} MiB/s; ",
                thousands(c.docs_per_second as u64),
                c.mib_per_second
            ),
            None => String::new(),
        };
        format!(
            "{}: {copy}foreground p50 {:.2} ms, p99 {:.2} ms ({} ops)",
            self.name,
            self.foreground.p50_ms,
            self.foreground.p99_ms,
            thousands(self.foreground.operations as u64)
        )
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    name: String,
    value: Option<f64>,
    target: String,
    pass: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Drift {
    /// Idle again's p99 against idle's.
    ratio: f64,
    limit: f64,
    drifted: bool,
}

/// Everything the impact bench measured.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    mongodb_version: String,
    /// The cache asked for, and the cache the source reports, in MiB.
    requested_cache_mib: Option<u64>,
    source_cache_mib: Option<f64>,
    docs: u64,
    doc_size: usize,
    /// BSON bytes seeded.
    doc_bytes: u64,
    fg_rate: u32,
    warmup_seconds: u64,
    phase_seconds: u64,
    phases: Vec<PhaseFigures>,
    targets: Vec<Target>,
    drift: Option<Drift>,
    total_seconds: f64,
}

impl Report {
    fn phase(&self, name: &str) -> Option<&PhaseFigures> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Whether the cache is what was asked for, in words.
    fn cache_words(&self) -> String {
        match (self.requested_cache_mib, self.source_cache_mib) {
            (Some(asked), Some(got)) if (got - asked as f64).abs() < 1.0 => {
                format!("{got:.0} MiB (reduced from the sandbox's {SANDBOX_CACHE_MIB} MiB)")
            }
            (Some(asked), Some(got)) => format!(
                "{got:.0} MiB: NOT reduced to the {asked} MiB asked for, so the copy churns it less"
            ),
            (Some(asked), None) => {
                format!("unknown (asked for {asked} MiB; serverStatus did not say)")
            }
            (None, got) => format!(
                "{} (not reduced)",
                got.map_or("unknown".to_string(), |g| format!("{g:.0} MiB"))
            ),
        }
    }

    fn judge(&mut self) {
        let ratio = |p: Option<&PhaseFigures>| p.and_then(|p| p.foreground.p99_over_idle);
        let docs_per_second =
            |p: Option<&PhaseFigures>| p.and_then(|p| p.copy.as_ref()).map(|c| c.docs_per_second);
        let gentle = ratio(self.phase("gentle"));
        let adaptive = ratio(self.phase("adaptive"));
        let speed = match (
            docs_per_second(self.phase("adaptive")),
            docs_per_second(self.phase("full")),
        ) {
            (Some(a), Some(f)) if f > 0.0 => Some(a / f),
            _ => None,
        };
        let at_most = |name: &str, value: Option<f64>, limit: f64| Target {
            name: name.into(),
            value,
            target: format!("<= {limit}"),
            pass: value.is_some_and(|v| v <= limit),
        };
        self.targets = vec![
            at_most("gentle fg p99 / idle p99", gentle, TARGET_GENTLE_P99),
            at_most("adaptive fg p99 / idle p99", adaptive, TARGET_ADAPTIVE_P99),
            Target {
                name: "adaptive docs/s / full docs/s".into(),
                value: speed,
                target: format!(">= {TARGET_ADAPTIVE_SPEED}"),
                pass: speed.is_some_and(|s| s >= TARGET_ADAPTIVE_SPEED),
            },
        ];
        self.drift = match (self.phase("idle"), self.phase("idle again")) {
            (Some(a), Some(b)) if a.foreground.p99_ms > 0.0 => {
                let r = b.foreground.p99_ms / a.foreground.p99_ms;
                Some(Drift {
                    ratio: r,
                    limit: DRIFT_LIMIT,
                    drifted: r > DRIFT_LIMIT,
                })
            }
            _ => None,
        };
    }

    fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "mongoferry bench --impact: MongoDB {} (two local replica sets), {} docs of ~{} B ({:.0} MiB BSON)",
            self.mongodb_version,
            thousands(self.docs),
            self.doc_size,
            self.doc_bytes as f64 / MIB
        );
        let _ = writeln!(s, "source WiredTiger cache: {}", self.cache_words());
        let _ = writeln!(
            s,
            "foreground: open loop, {} ops/s (90% point reads of a random _id, 10% updates of one field), latency from each operation's scheduled send time",
            self.fg_rate
        );
        let _ = writeln!(
            s,
            "each phase: {} s warm-up, {} s measured; a copy phase counts only the time a copy was copying",
            self.warmup_seconds, self.phase_seconds
        );
        let _ = writeln!(s);
        let header = [
            "phase",
            "copy docs/s",
            "MiB/s",
            "fg p50 ms",
            "fg p99 ms",
            "p99/idle",
            "engine's read +%",
            "notes",
        ];
        let rows: Vec<[String; 8]> = self
            .phases
            .iter()
            .map(|p| {
                let dash = || "-".to_string();
                [
                    p.name.clone(),
                    p.copy
                        .as_ref()
                        .map_or_else(dash, |c| thousands(c.docs_per_second as u64)),
                    p.copy
                        .as_ref()
                        .map_or_else(dash, |c| format!("{:.1}", c.mib_per_second)),
                    format!("{:.2}", p.foreground.p50_ms),
                    format!("{:.2}", p.foreground.p99_ms),
                    p.foreground
                        .p99_over_idle
                        .map_or_else(dash, |r| format!("{r:.2}")),
                    p.engine_read_increase_percent
                        .map_or_else(dash, |v| format!("{v:+.0}")),
                    p.notes.join("; "),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(c.len());
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    l.push_str(" | ");
                }
                if i == 0 || i == cells.len() - 1 {
                    let _ = write!(l, "{c:<w$}", w = widths[i]);
                } else {
                    let _ = write!(l, "{c:>w$}", w = widths[i]);
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(s, "{}", line(&header.map(String::from)));
        let _ = writeln!(
            s,
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-|-")
        );
        for r in &rows {
            let _ = writeln!(s, "{}", line(r));
        }
        for p in &self.phases {
            if let Some(r) = p.throttling.as_ref().and_then(|t| t.last_reason.as_ref()) {
                let _ = writeln!(s, "{}: the engine's last reason: {r}", p.name);
            }
        }
        let _ = writeln!(
            s,
            "engine's read +%: the migration's own sourceImpact.readLatencyIncreasePercent at the end of the phase (its point reads' p99 against an idle baseline, which it takes before the copy reads only when a latency limit is set: '-' at fixed levels)"
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "targets:");
        for t in &self.targets {
            let _ = writeln!(
                s,
                "  {:<32} {:>6}  {:<7} {}",
                t.name,
                t.value.map_or("-".into(), |v| format!("{v:.2}")),
                t.target,
                if t.pass { "PASS" } else { "MISS" }
            );
        }
        match &self.drift {
            Some(d) => {
                let _ = writeln!(
                    s,
                    "  {:<32} {:>6}  {:<7} {}",
                    "idle again p99 / idle p99",
                    format!("{:.2}", d.ratio),
                    format!("<= {}", d.limit),
                    if d.drifted {
                        "BOX DRIFTED: the box was slower at the end than at the start; compare the ratios with care"
                    } else {
                        "steady"
                    }
                );
            }
            None => {
                let _ = writeln!(s, "  idle again p99 / idle p99: not measured");
            }
        }
        let _ = writeln!(s, "total: {:.0} s", self.total_seconds);
        s
    }

    /// The table on stdout; with `--json`, the table on stderr and the
    /// report as one JSON object on stdout.
    fn print(&self, json: bool) -> anyhow::Result<()> {
        let table = self.table();
        if json {
            eprint!("{table}");
            println!("{}", serde_json::to_string_pretty(self)?);
        } else {
            print!("{table}");
        }
        Ok(())
    }
}
