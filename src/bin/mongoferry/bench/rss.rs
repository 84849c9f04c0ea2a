//! The resident memory of this process, which hosts the engine, during
//! one phase.
//!
//! At the start of a phase the kernel's high-water mark (`VmHWM`) is reset
//! to the current RSS by writing `5` to `/proc/self/clear_refs` (Linux
//! 4.0+); at its end `VmHWM` is the true peak of the phase, with no
//! sampling gap. `VmRSS` is also sampled every 100 ms as a cross-check,
//! and is the figure used where the reset is not allowed. Either way the
//! figure is for the whole process: the engine plus the bench's small
//! harness, whose share is the baseline at the start of the phase.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rss {
    /// `VmHWM` after a reset at the start of the phase, or, when the reset
    /// failed, the largest sampled `VmRSS`.
    pub peak_bytes: u64,
    /// `VmRSS` at the start of the phase.
    pub baseline_bytes: u64,
    /// The largest `VmRSS` sampled every 100 ms.
    pub sampled_peak_bytes: u64,
    /// Whether `peak_bytes` is the reset high-water mark.
    pub hwm_reset: bool,
}

pub struct Sampler {
    baseline: u64,
    hwm_reset: bool,
    max: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl Sampler {
    pub fn start() -> Sampler {
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let baseline = status_bytes("VmRSS");
        let max = Arc::new(AtomicU64::new(baseline));
        let task = {
            let max = max.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(100));
                loop {
                    every.tick().await;
                    max.fetch_max(status_bytes("VmRSS"), Ordering::Relaxed);
                }
            })
        };
        Sampler {
            baseline,
            hwm_reset,
            max,
            task,
        }
    }

    pub fn finish(self) -> Rss {
        self.task.abort();
        let sampled = self.max.load(Ordering::Relaxed).max(status_bytes("VmRSS"));
        let peak = if self.hwm_reset {
            status_bytes("VmHWM").max(sampled)
        } else {
            sampled
        };
        Rss {
            peak_bytes: peak,
            baseline_bytes: self.baseline,
            sampled_peak_bytes: sampled,
            hwm_reset: self.hwm_reset,
        }
    }
}
