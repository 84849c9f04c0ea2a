//! What a preflight check found: findings (blocker, warning, info, each
//! with its fix), the totals in scope and the report that holds them, and
//! the words findings are written in.
//!
//! Plain data and text, on the bottom floor: an [`crate::Error`] carries a
//! report when blockers stop a migration, so this module may import
//! nothing from the engine.

use serde::{Deserialize, Serialize};

/// How serious a finding is.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The migration would fail or lose data: it will not start.
    Blocker,
    /// It will work, but something deserves attention first.
    Warning,
    /// How something will be handled; nothing to do.
    Info,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Blocker => "blocker",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// One thing the check found.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// A stable snake_case code (see the module docs).
    pub id: String,
    pub severity: Severity,
    /// `db.collection` when the finding concerns one namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// One line: what is wrong.
    pub title: String,
    /// Why it matters, with the figures found.
    pub detail: String,
    /// What to do about it.
    pub remedy: String,
}

impl Finding {
    pub fn new(
        severity: Severity,
        id: &str,
        title: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding {
            id: id.to_string(),
            severity,
            namespace: None,
            title: title.into(),
            detail: detail.into(),
            remedy: remedy.into(),
        }
    }

    pub fn blocker(
        id: &str,
        title: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding::new(Severity::Blocker, id, title, detail, remedy)
    }

    pub fn warning(
        id: &str,
        title: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding::new(Severity::Warning, id, title, detail, remedy)
    }

    pub fn info(
        id: &str,
        title: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding::new(Severity::Info, id, title, detail, remedy)
    }

    /// The same finding, about one namespace.
    pub fn on(mut self, ns: impl ToString) -> Finding {
        self.namespace = Some(ns.to_string());
        self
    }
}

/// What is in scope on the source, for ETAs.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub databases: u64,
    pub collections: u64,
    pub views: u64,
    pub documents: u64,
    /// Uncompressed size of the documents.
    pub data_bytes: u64,
    /// On-disk size of the documents (compressed).
    pub storage_bytes: u64,
    pub index_bytes: u64,
}

/// One side of the migration as the check saw it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServerSummary {
    /// The connection string, redacted.
    pub uri: String,
    pub version: String,
    /// The feature compatibility version, when it could be read.
    pub feature_compatibility_version: Option<String>,
    /// `standalone`, `replicaSet` or `sharded`.
    pub topology: String,
    pub replica_set: Option<String>,
}

/// The outcome of a check.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub source: ServerSummary,
    pub destination: ServerSummary,
    pub totals: Totals,
    /// Blockers first, then warnings, then infos.
    pub findings: Vec<Finding>,
    /// The throughput the copy estimate assumes.
    pub copy_bytes_per_second: u64,
    /// Data bytes in scope divided by that throughput.
    pub estimated_copy_seconds: f64,
    /// How far back the source's oplog reaches (projected to when it is
    /// full), when it could be read.
    pub oplog_window_seconds: Option<f64>,
    /// How long the check took.
    pub elapsed_ms: u64,
}

impl Report {
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> {
        self.of(Severity::Blocker)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.of(Severity::Warning)
    }

    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }

    pub fn has_blockers(&self) -> bool {
        self.blockers().next().is_some()
    }

    /// The findings with this id.
    pub fn find(&self, id: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.id == id).collect()
    }
}

/// The one-line sentence of an error that stops a migration on blockers.
pub fn blocked_message(report: &Report) -> String {
    let blockers: Vec<&Finding> = report.blockers().collect();
    let titles: Vec<String> = blockers
        .iter()
        .map(|f| f.title.trim_end_matches('.').to_string())
        .collect();
    match titles.as_slice() {
        [one] => format!("The migration cannot start: {one}."),
        // A sentence, not a dump: a thousand blockers name the first few.
        many if many.len() > 3 => format!(
            "The migration cannot start ({} blockers): {}; and {} more.",
            many.len(),
            many[..3].join("; "),
            many.len() - 3
        ),
        many => format!(
            "The migration cannot start ({} blockers): {}.",
            many.len(),
            many.join("; ")
        ),
    }
}

/// What to do about the blockers of a report, in one sentence.
pub fn blocked_remedy(report: &Report) -> String {
    let blockers: Vec<&Finding> = report.blockers().collect();
    match blockers.as_slice() {
        [one] => one.remedy.clone(),
        _ => "Fix each blocker ('mongoferry check' explains them one by one with their fixes), then start again.".to_string(),
    }
}

/// Bytes for people: "1.5 GiB".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Seconds for people: "45 s", "12 min", "3.5 h", "2.1 days".
pub fn human_duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 90.0 * 60.0 {
        format!("{:.0} min", secs / 60.0)
    } else if secs < 48.0 * 3600.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} days", secs / 86400.0)
    }
}

/// "1 collection", "3 collections".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "a, b, c and 4 more": a bounded list for a finding's detail.
pub fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!("{} and {} more", items[..max].join(", "), items.len() - max)
}
