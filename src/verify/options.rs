//! What to verify and how: the mode, the namespaces, the live settings.

use serde::{Deserialize, Serialize};

use super::report::VerifyMode;

/// Settings of a verification that runs while the source still changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveOptions {
    /// How long after its last change a document is compared again, and
    /// how often a differing one is.
    pub recheck_interval_seconds: f64,
    /// A difference is reported only once the document has not changed on
    /// either side for this long: longer than the sync's lag, so that a
    /// write the sync has not applied yet is not reported.
    pub settle_seconds: f64,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            recheck_interval_seconds: 1.0,
            settle_seconds: 10.0,
        }
    }
}

/// What to verify and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VerifyOptions {
    pub mode: VerifyMode,
    /// Report documents whose fields are in another order (by default a
    /// document is a map and field order does not count).
    pub strict_field_order: bool,
    /// Namespaces to verify, as `mongoferry sync` takes them.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// `_id` ranges compared at once.
    pub concurrency: usize,
    /// Accept what a running sync relaxes on the destination (unique
    /// indexes built non-unique, TTLs held at 2^31-1 s, capped collections
    /// in another natural order). `None`: accept them while the
    /// destination holds a migration that is not committed yet.
    pub allow_sync_relaxations: Option<bool>,
    /// Run while the source still changes, rechecking what changes.
    pub live: Option<LiveOptions>,
    /// Target size of one `_id` range.
    pub partition_bytes: u64,
    /// Bytes per batch handed from a reader to the comparison.
    pub batch_bytes: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            mode: VerifyMode::Full,
            strict_field_order: false,
            include: Vec::new(),
            exclude: Vec::new(),
            concurrency: 4,
            allow_sync_relaxations: None,
            live: None,
            partition_bytes: 64 * 1024 * 1024,
            batch_bytes: 2 * 1024 * 1024,
        }
    }
}
