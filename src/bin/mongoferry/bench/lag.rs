//! Lag under a steady write load, measured two ways while the migration
//! applies change events:
//!
//! - the engine's own `lagTimeSeconds`, sampled every 200 ms. It is the
//!   difference of two cluster times in whole seconds, so it reads 0 or 1
//!   where the truth is 0.3;
//! - end to end: a marker document `{_id: seq, sentUs}` is inserted on the
//!   source every 50 ms, and the destination is polled every 10 ms; a
//!   marker's lag runs from just before its insert was sent to the reply
//!   of the first poll that saw it on the destination. This includes the
//!   source's own write latency (markers use the default write concern,
//!   majority) and up to one poll of delay, so it errs high.
//!
//! The load is `workload::run` in parallel tasks, each on a collection of
//! its own, with `{w: 1}` so that a few tasks reach the rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::Client;
use mongoferry::sandbox::workload;
use mongoferry::scope::Namespace;
use mongoferry::{MigrationHandle, Phase};
use tokio_util::sync::CancellationToken;

use super::measure::BENCH_DB;
use super::BenchArgs;

/// Writes a second one load task is asked for; more tasks share a higher
/// rate, as one task waits for each write before the next.
const RATE_PER_TASK: u32 = 250;
/// Documents in each load collection before the load starts.
const LOAD_SEED: u64 = 200;
const MARKERS: &str = "markers";
const MARKER_EVERY: Duration = Duration::from_millis(50);
const POLL_EVERY: Duration = Duration::from_millis(10);
const ENGINE_SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// The start of the load left out of `engine_after_warmup`.
pub const ENGINE_WARMUP: Duration = Duration::from_secs(2);
/// How long the engine's lag may take to settle after the copy.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// How long markers may still arrive after the load stops.
const DRAIN: Duration = Duration::from_secs(30);

/// Percentiles of a set of samples, in seconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub samples: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<f64>) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        // Nearest rank.
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            samples: v.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: v[v.len() - 1],
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    pub seconds: f64,
    pub requested_writes_per_second: u32,
    /// Writes the load issued a second (updates and deletes of documents
    /// that are gone count too, though they change nothing).
    pub achieved_writes_per_second: f64,
    pub load_tasks: usize,
    pub writes: u64,
    /// Change events the engine applied a second, from the start of the
    /// load until the last marker arrived.
    pub events_applied_per_second: f64,
    /// End-to-end lag of the marker documents.
    pub marker: Percentiles,
    /// Markers that had not arrived `DRAIN` after the load stopped.
    pub markers_missing: u64,
    /// The engine's `lagTimeSeconds`.
    pub engine: Percentiles,
    /// The same, without the first `ENGINE_WARMUP` of the load: after an
    /// idle spell the engine reports the idle time as lag until its next
    /// once-a-second refresh after the first events are applied.
    pub engine_after_warmup: Percentiles,
    /// Seconds from the end of the copy until the engine's lag first read
    /// 1 s or less, before the load started.
    pub settle_seconds: f64,
    /// CPU and cache reads while the load ran and the markers drained.
    pub usage: Option<super::cpu::Usage>,
}

/// Load tasks for `rate` writes a second.
pub fn load_tasks(rate: u32) -> usize {
    (rate.div_ceil(RATE_PER_TASK) as usize).max(1)
}

fn load_ns(i: usize) -> Namespace {
    Namespace::new(BENCH_DB, format!("load{i}"))
}

/// Creates the load's collections and the markers' collection on the
/// source, before the migration starts, so that the lag phase creates
/// nothing.
pub async fn prepare_source(src: &Client, tasks: usize) -> anyhow::Result<()> {
    for i in 0..tasks {
        workload::seed(src, &load_ns(i), LOAD_SEED, 1024)
            .await
            .context("seed a load collection")?;
    }
    src.database(BENCH_DB)
        .create_collection(MARKERS)
        .await
        .context("create the markers collection")?;
    Ok(())
}

/// Runs the load for `--lag-seconds` and measures the lag. `None` when
/// `--lag-seconds` is 0.
pub async fn measure(
    src: &Client,
    load: &Client,
    dest: &Client,
    handle: &MigrationHandle,
    args: &BenchArgs,
    tasks: usize,
) -> anyhow::Result<Option<Lag>> {
    if args.lag_seconds == 0 {
        return Ok(None);
    }
    // Until its first refresh in the applying phase, the engine still
    // reports the copy's lag (seconds since the migration started): wait
    // for a steady state, so that the samples are of the load.
    let settle = Instant::now();
    while !(handle.progress().phase == Phase::Applying
        && handle.progress().lag_time_seconds.is_some_and(|l| l <= 1.0))
    {
        if settle.elapsed() > SETTLE_LIMIT {
            anyhow::bail!(
                "the migration did not reach a steady applying phase within {} s",
                SETTLE_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle_seconds = settle.elapsed().as_secs_f64();
    let before = super::cpu::Snapshot::take(src, dest).await?;
    let base = Instant::now();
    let stop = CancellationToken::new();
    let events_before = handle.progress().total_events_applied;
    super::step(&format!(
        "LAG: {} source writes/s ({tasks} tasks) for {} s, markers every {} ms",
        args.write_rate,
        args.lag_seconds,
        MARKER_EVERY.as_millis()
    ));

    let loads: Vec<_> = if args.write_rate == 0 {
        Vec::new()
    } else {
        let per_task = args.write_rate.div_ceil(tasks as u32);
        (0..tasks)
            .map(|i| {
                tokio::spawn(workload::run(
                    load.clone(),
                    vec![load_ns(i)],
                    LOAD_SEED,
                    Some(per_task),
                    i as u64 + 1,
                    stop.clone(),
                ))
            })
            .collect()
    };

    let sent = Arc::new(AtomicU64::new(0));
    let sending_done = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(send_markers(src.clone(), base, sent.clone(), stop.clone()));
    let poller = tokio::spawn(poll_markers(
        dest.clone(),
        base,
        sent.clone(),
        sending_done.clone(),
    ));
    let engine = {
        let (handle, stop) = (handle.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut every = tokio::time::interval(ENGINE_SAMPLE_EVERY);
            while !stop.is_cancelled() {
                every.tick().await;
                if let Some(l) = handle.progress().lag_time_seconds {
                    samples.push((base.elapsed(), l));
                }
            }
            samples
        })
    };

    tokio::time::sleep(Duration::from_secs(args.lag_seconds)).await;
    stop.cancel();
    let load_seconds = base.elapsed().as_secs_f64();
    let mut writes = 0u64;
    for l in loads {
        writes += l
            .await
            .context("a load task failed")?
            .context("the write load failed")?
            .total();
    }
    sender.await.context("the marker sender failed")??;
    sending_done.store(true, Ordering::SeqCst);
    super::step("LAG: load stopped; waiting for the last markers");
    let (arrivals, missing) = poller.await.context("the marker poller failed")??;
    let engine_samples = engine.await.context("the lag sampler failed")?;
    let usage = before.usage(src, dest).await?;
    let events = handle
        .progress()
        .total_events_applied
        .saturating_sub(events_before);
    Ok(Some(Lag {
        seconds: load_seconds,
        requested_writes_per_second: args.write_rate,
        achieved_writes_per_second: writes as f64 / load_seconds,
        load_tasks: if args.write_rate == 0 { 0 } else { tasks },
        writes,
        events_applied_per_second: events as f64 / base.elapsed().as_secs_f64(),
        marker: Percentiles::of(arrivals),
        markers_missing: missing,
        engine_after_warmup: Percentiles::of(
            engine_samples
                .iter()
                .filter(|(at, _)| *at >= ENGINE_WARMUP)
                .map(|(_, l)| *l)
                .collect(),
        ),
        engine: Percentiles::of(engine_samples.into_iter().map(|(_, l)| l).collect()),
        settle_seconds,
        usage: Some(usage),
    }))
}

fn micros(base: Instant) -> i64 {
    base.elapsed().as_micros() as i64
}

async fn send_markers(
    src: Client,
    base: Instant,
    sent: Arc<AtomicU64>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let coll = src.database(BENCH_DB).collection::<Document>(MARKERS);
    let mut every = tokio::time::interval(MARKER_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0i64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = every.tick() => {}
        }
        coll.insert_one(doc! { "_id": seq, "sentUs": micros(base) })
            .await
            .context("insert a marker")?;
        seq += 1;
        sent.store(seq as u64, Ordering::SeqCst);
    }
}

/// Returns each marker's lag in seconds, and how many never arrived.
async fn poll_markers(
    dest: Client,
    base: Instant,
    sent: Arc<AtomicU64>,
    sending_done: Arc<AtomicBool>,
) -> anyhow::Result<(Vec<f64>, u64)> {
    let coll = dest.database(BENCH_DB).collection::<Document>(MARKERS);
    let mut seen: Vec<bool> = Vec::new();
    let mut lags = Vec::new();
    let mut lowest_unseen = 0i64;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let found: Vec<Document> = coll
            .find(doc! { "_id": { "$gte": lowest_unseen } })
            .projection(doc! { "sentUs": 1 })
            .await
            .context("poll the markers")?
            .try_collect()
            .await
            .context("poll the markers")?;
        let now = micros(base);
        for d in found {
            let (Ok(id), Ok(sent_us)) = (d.get_i64("_id"), d.get_i64("sentUs")) else {
                continue;
            };
            let i = id.max(0) as usize;
            if seen.len() <= i {
                seen.resize(i + 1, false);
            }
            if !seen[i] {
                seen[i] = true;
                lags.push((now - sent_us) as f64 / 1e6);
            }
        }
        while seen.get(lowest_unseen as usize) == Some(&true) {
            lowest_unseen += 1;
        }
        let total = sent.load(Ordering::SeqCst);
        if sending_done.load(Ordering::SeqCst) {
            if lags.len() as u64 >= total {
                return Ok((lags, 0));
            }
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
            if Instant::now() > deadline {
                let missing = total.saturating_sub(lags.len() as u64);
                return Ok((lags, missing));
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
