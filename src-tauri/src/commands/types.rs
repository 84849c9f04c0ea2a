//! The request and response types of the IPC commands, as the web view
//! sees them. Each derives `ts_rs::TS`; `crate::bindings` writes their
//! TypeScript declarations into `ui/src/lib/bindings/`. Types only: no
//! behaviour lives here.

use mongoferry::catalog::NsKind;
use mongoferry::preflight::inventory::Measurements;
use mongoferry::EventSourceChoice;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Static facts about the running app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// Version of the `mongoferry` engine this shell was built with.
    pub version: String,
}

/// Which side of the migration a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Destination,
}

impl From<Side> for mongoferry::Role {
    fn from(side: Side) -> Self {
        match side {
            Side::Source => mongoferry::Role::Source,
            Side::Destination => mongoferry::Role::Destination,
        }
    }
}

#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TestConnectionRequest {
    pub side: Side,
    pub uri: String,
    /// The saved profile the connection string was picked from, if any.
    /// The web view holds only a profile's redacted string; the shell
    /// puts the secrets back from the keyring while the string is
    /// unchanged (see `profiles::connection_uri`).
    #[serde(default)]
    pub profile: Option<String>,
}

/// One collection (or view, or time-series collection) of the source,
/// for the scope tree. A time-series collection's buckets
/// (`system.buckets.<name>`) are not a node of their own: they are in its.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CollectionNode {
    pub name: String,
    /// `db.collection`.
    pub namespace: String,
    pub kind: NsKind,
    /// Documents the copy moves: a time-series collection's buckets.
    pub documents: u64,
    /// Uncompressed data size (a time-series collection's buckets').
    pub bytes: u64,
    /// What a time-series collection holds; `null` for other kinds.
    pub timeseries: Option<TimeseriesNode>,
}

/// A time-series collection's shape and contents.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TimeseriesNode {
    pub time_field: String,
    pub meta_field: Option<String>,
    /// `seconds`, `minutes` or `hours`; `null` with custom bucketing.
    pub granularity: Option<String>,
    pub bucket_max_span_seconds: Option<u64>,
    pub expire_after_seconds: Option<u64>,
    /// Documents of its buckets collection (the node's `documents`).
    pub buckets: u64,
    /// Exact, estimated (and why) or unknown (and why).
    pub measurements: Measurements,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseNode {
    pub name: String,
    pub collections: Vec<CollectionNode>,
    pub documents: u64,
    pub bytes: u64,
}

/// The source's databases and collections with their sizes.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ScopeTree {
    pub databases: Vec<DatabaseNode>,
    pub documents: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRequest {
    pub source_uri: String,
    /// The saved profile `source_uri` was picked from, if any.
    #[serde(default)]
    pub source_profile: Option<String>,
}

/// What to migrate, from where to where.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct StartSyncRequest {
    pub source_uri: String,
    pub destination_uri: String,
    /// Namespace patterns (`db`, `db.coll`, `*` wildcards); empty means all.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Drop in-scope namespaces that already exist on the destination.
    pub drop_existing: bool,
    /// Where the sync reads the source's changes from (`auto` when absent).
    #[serde(default)]
    pub event_source: EventSourceChoice,
    /// The saved profiles the connection strings came from, if any: where
    /// their secrets are (see `profiles::connection_uri`), and what the app
    /// remembers for a resume when a string holds a password.
    #[serde(default)]
    pub source_profile: Option<String>,
    #[serde(default)]
    pub destination_profile: Option<String>,
    /// How hard the copy may read the source; `null` resumes a stored
    /// migration at its stored level and starts a new one at `full`.
    // Plain JSON, read by `ops::load_setting`, so that a refused level
    // reaches the UI as the engine's error rather than as a failed call.
    #[serde(default)]
    #[ts(as = "Option<mongoferry::LoadSetting>")]
    pub load: Option<serde_json::Value>,
    /// Keep a way back (`--reversible`): the commit blocks the source's
    /// user writes and keeps them blocked, and the committed migration can
    /// then be reversed (`reverse_migration`). `false` when absent.
    #[serde(default)]
    pub reversible: bool,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SyncStarted {
    /// The destination already held this migration, which carries on.
    pub resumed: bool,
    /// The app will offer to resume this migration when it reopens (false
    /// when a connection string holds a password and came from no saved
    /// profile: a password is never stored outside the keyring).
    pub remembered: bool,
}

/// A migration of the remembered clusters still to be resumed: unfinished,
/// or committed with a way back, whose Reverse is still to be offered.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ResumableMigration {
    /// The live direction's migration (a reverse has its own id).
    pub migration_id: String,
    /// "copying", "syncing", "committing", or "committed": committed with
    /// a way back, and waiting for a reverse.
    pub phase: String,
    /// The live direction runs back, from `destination` to `source`: a
    /// reverse, whose state is stored on `source`.
    pub reversed: bool,
    /// The remembered clusters, in the order the migration started (the
    /// destination's connection string redacted, the source's too or the
    /// name of its profile).
    pub source: String,
    pub destination: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// When the live direction's migration started (a reverse's, when the
    /// reverse began), in milliseconds since the Unix epoch.
    pub started_at: f64,
}

/// The local sandbox: two replica sets on this machine.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SandboxInfo {
    pub source_uri: String,
    pub destination_uri: String,
    /// The seeded collections, as `db.collection`.
    pub collections: Vec<String>,
    /// Documents seeded before the write load started.
    pub documents: u64,
    pub write_load_running: bool,
    pub writes_per_second: u32,
}

/// The clusters and scope a compatibility check looks at.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PreflightRequest {
    pub source_uri: String,
    pub destination_uri: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// The event source the sync will read, whose needs the check weighs
    /// (`auto` when absent).
    #[serde(default)]
    pub event_source: EventSourceChoice,
    /// The saved profiles the connection strings were picked from, if any.
    #[serde(default)]
    pub source_profile: Option<String>,
    #[serde(default)]
    pub destination_profile: Option<String>,
    /// The migration will keep a way back, whose needs (MongoDB 6.0,
    /// access control, the restore role) the check weighs too. `false`
    /// when absent.
    #[serde(default)]
    pub reversible: bool,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    pub mode: mongoferry::verify::VerifyMode,
}

/// A finished verification: the engine's report, and the differences it
/// found (the first [`crate::state::MAX_KEPT_DIFFERENCES`] of them).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct VerificationOutcome {
    pub report: mongoferry::verify::VerifyReport,
    pub differences: Vec<mongoferry::verify::Difference>,
    /// More differences were found than are listed.
    pub truncated: bool,
}

/// One document, to show both sides of a difference.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DocumentRequest {
    pub namespace: String,
    /// The `_id` as canonical extended JSON, as a difference reports it.
    pub id: serde_json::Value,
}

/// The document on each side, as indented relaxed extended JSON; `null`
/// where that side has no such document.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DocumentPair {
    pub source: Option<String>,
    pub destination: Option<String>,
}

/// Where to write the last verification's report.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ExportRequest {
    pub path: String,
}

/// A saved connection profile as the UI lists it: its secrets stay in the
/// OS keyring and show as `****`.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSummary {
    pub name: String,
    pub display_uri: String,
}

/// Saves a connection string as a profile; its secrets go to the keyring.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SaveProfileRequest {
    pub name: String,
    pub uri: String,
    /// Replace a profile of the same name.
    pub replace: bool,
    /// The saved profile the connection string was picked from, if any.
    /// The web view holds only a profile's redacted string; the shell
    /// puts the secrets back from the keyring while the string is
    /// unchanged (see `profiles::connection_uri`).
    #[serde(default)]
    pub profile: Option<String>,
}
