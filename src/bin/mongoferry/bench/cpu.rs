//! Where a phase's time went: CPU seconds of the source `mongod`, the
//! destination `mongod` and this process (which hosts the engine), and
//! the bytes each `mongod`'s WiredTiger cache read from disk. On a small
//! box the three processes share the cores, and a copy that reads the
//! source in `_id` order re-reads pages that a natural-order scan reads
//! once; these figures show both.

use std::time::Instant;

use anyhow::Context;
use bson::{doc, Bson, Document};
use mongodb::Client;

/// The share of the cores other processes may take before a phase is
/// flagged as measured on a shared box.
const SHARED_BOX: f64 = 0.10;

/// The counters of one side.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    cpu_seconds: f64,
    cache_read_bytes: u64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    src: Side,
    dest: Side,
    bench_cpu_seconds: f64,
    system_cpu_seconds: f64,
}

/// What a phase used.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub seconds: f64,
    pub source_cpu_seconds: f64,
    pub destination_cpu_seconds: f64,
    pub bench_cpu_seconds: f64,
    /// CPU seconds of every other process on the box (other work on a
    /// shared box makes a phase's figures unreliable).
    pub other_cpu_seconds: f64,
    pub source_cache_read_bytes: u64,
    pub destination_cache_read_bytes: u64,
}

impl Usage {
    /// CPU seconds of all three over the cores' seconds.
    pub fn busy(&self) -> f64 {
        self.share(self.source_cpu_seconds + self.destination_cpu_seconds + self.bench_cpu_seconds)
    }

    /// Other processes' CPU seconds over the cores' seconds.
    pub fn other(&self) -> f64 {
        self.share(self.other_cpu_seconds)
    }

    /// Whether other processes took enough of the box to skew the phase.
    pub fn shared(&self) -> bool {
        self.other() > SHARED_BOX
    }

    fn share(&self, cpu_seconds: f64) -> f64 {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        if self.seconds > 0.0 {
            cpu_seconds / (cores * self.seconds)
        } else {
            0.0
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// CPU seconds spent by the whole box, idle and iowait excepted, from
/// `/proc/stat`.
fn system_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy as f64 / clock_ticks()
}

/// `utime + stime` of a process, in seconds, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces; fields are counted after its ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / clock_ticks()
}

use mongoferry::catalog::number;

async fn side(client: &Client) -> anyhow::Result<Side> {
    let status: Document = client
        .database("admin")
        .run_command(doc! { "serverStatus": 1 })
        .await
        .context("serverStatus")?;
    let pid = match status.get("pid") {
        Some(Bson::Int64(p)) => Some(*p as i32),
        Some(Bson::Int32(p)) => Some(*p),
        _ => None,
    };
    let cache_read_bytes = status
        .get_document("wiredTiger")
        .and_then(|w| w.get_document("cache"))
        .map(|c| number(c.get("bytes read into cache")))
        .unwrap_or(0);
    Ok(Side {
        cpu_seconds: pid.map(|p| cpu_seconds(&p.to_string())).unwrap_or(0.0),
        cache_read_bytes,
    })
}

impl Snapshot {
    pub async fn take(src: &Client, dest: &Client) -> anyhow::Result<Snapshot> {
        let (src, dest) = tokio::try_join!(side(src), side(dest))?;
        Ok(Snapshot {
            at: Instant::now(),
            src,
            dest,
            bench_cpu_seconds: cpu_seconds("self"),
            system_cpu_seconds: system_cpu_seconds(),
        })
    }

    /// What was used since `self`.
    pub async fn usage(&self, src: &Client, dest: &Client) -> anyhow::Result<Usage> {
        let now = Snapshot::take(src, dest).await?;
        let ours = (now.src.cpu_seconds - self.src.cpu_seconds)
            + (now.dest.cpu_seconds - self.dest.cpu_seconds)
            + (now.bench_cpu_seconds - self.bench_cpu_seconds);
        let system = now.system_cpu_seconds - self.system_cpu_seconds;
        Ok(Usage {
            other_cpu_seconds: (system - ours).max(0.0),
            seconds: now.at.duration_since(self.at).as_secs_f64(),
            source_cpu_seconds: now.src.cpu_seconds - self.src.cpu_seconds,
            destination_cpu_seconds: now.dest.cpu_seconds - self.dest.cpu_seconds,
            bench_cpu_seconds: now.bench_cpu_seconds - self.bench_cpu_seconds,
            source_cache_read_bytes: now
                .src
                .cache_read_bytes
                .saturating_sub(self.src.cache_read_bytes),
            destination_cache_read_bytes: now
                .dest
                .cache_read_bytes
                .saturating_sub(self.dest.cache_read_bytes),
        })
    }
}
