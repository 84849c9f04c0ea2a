//! What a preflight check is asked: the migration as it would be started,
//! and the figures the check assumes when none is given.

use serde::{Deserialize, Serialize};

use crate::context::EventSourceChoice;

/// What the copy is assumed to move per second when no figure is given:
/// a conservative rate for two clusters on a network (the machine this
/// project is measured on copies several times faster between local sets).
pub const DEFAULT_COPY_BYTES_PER_SECOND: u64 = 20 * 1024 * 1024;

/// Documents sampled per collection for the field-name checks.
pub const DEFAULT_SAMPLE_SIZE: u32 = 1000;

/// What to check: the migration as it would be started.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CheckRequest {
    /// `--include` patterns; empty means every user namespace.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// In-scope namespaces that exist on the destination will be dropped.
    #[serde(default)]
    pub drop_existing: bool,
    /// A migration stored on the destination will be discarded.
    #[serde(default)]
    pub fresh: bool,
    /// The commit will block writes on the source (`setUserWriteBlockMode`).
    #[serde(default)]
    pub block_source_writes: bool,
    /// The migration keeps a way back (`--reversible`): its commit blocks
    /// the source, and its reverse writes to it.
    #[serde(default)]
    pub reversible: bool,
    /// The copy throughput to assume when estimating the copy's duration.
    #[serde(default = "default_throughput")]
    pub copy_bytes_per_second: u64,
    /// Bytes that must stay free on the destination's disk after the copy;
    /// by default a tenth of the disk.
    #[serde(default)]
    pub keep_free_bytes: Option<u64>,
    /// Where the sync will read the source's changes from.
    #[serde(default)]
    pub event_source: EventSourceChoice,
    /// Documents sampled per collection for the field-name checks.
    #[serde(default = "default_sample_size")]
    pub sample_size: u32,
}

fn default_throughput() -> u64 {
    DEFAULT_COPY_BYTES_PER_SECOND
}

fn default_sample_size() -> u32 {
    DEFAULT_SAMPLE_SIZE
}

impl Default for CheckRequest {
    fn default() -> Self {
        CheckRequest {
            include: Vec::new(),
            exclude: Vec::new(),
            drop_existing: false,
            fresh: false,
            block_source_writes: false,
            reversible: false,
            copy_bytes_per_second: DEFAULT_COPY_BYTES_PER_SECOND,
            keep_free_bytes: None,
            sample_size: DEFAULT_SAMPLE_SIZE,
            event_source: EventSourceChoice::Auto,
        }
    }
}
