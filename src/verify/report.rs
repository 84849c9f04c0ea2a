//! What a verification reports: each difference (its namespace, `_id` or
//! index, kind and the field paths that differ) and the report that sums
//! them up.
//!
//! Plain data, on the bottom floor: the migration's progress carries the
//! report of the verification at commit, so this module may import nothing
//! from the engine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How much a verification compares.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// Namespaces, options, indexes, views and counts.
    Quick,
    /// Everything quick compares, then every document.
    #[default]
    Full,
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyMode::Quick => "quick",
            VerifyMode::Full => "full",
        })
    }
}

/// What kind of difference was found.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// A document the source has and the destination lacks.
    MissingOnDestination,
    /// A document the destination has and the source lacks.
    ExtraOnDestination,
    /// A document whose values differ.
    Different,
    /// A document whose only differences are numeric types of the same
    /// value (int 5 against long 5).
    Type,
    /// A document whose only differences are the order of its fields
    /// (strict mode only).
    FieldOrder,
    /// A capped collection whose documents are in another natural order.
    DocumentOrder,
    MissingCollection,
    ExtraCollection,
    MissingView,
    ExtraView,
    /// A collection on one side is a view (or time-series) on the other.
    NamespaceType,
    /// Validator, collation, capped size, clustering and other options.
    CollectionOptions,
    /// A view's source collection, pipeline or collation.
    ViewDefinition,
    MissingIndex,
    ExtraIndex,
    /// An index of the same name with another key or options.
    IndexOptions,
    /// Document counts differ (quick mode).
    Count,
}

impl DifferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DifferenceKind::MissingOnDestination => "missing_on_destination",
            DifferenceKind::ExtraOnDestination => "extra_on_destination",
            DifferenceKind::Different => "different",
            DifferenceKind::Type => "type",
            DifferenceKind::FieldOrder => "field_order",
            DifferenceKind::DocumentOrder => "document_order",
            DifferenceKind::MissingCollection => "missing_collection",
            DifferenceKind::ExtraCollection => "extra_collection",
            DifferenceKind::MissingView => "missing_view",
            DifferenceKind::ExtraView => "extra_view",
            DifferenceKind::NamespaceType => "namespace_type",
            DifferenceKind::CollectionOptions => "collection_options",
            DifferenceKind::ViewDefinition => "view_definition",
            DifferenceKind::MissingIndex => "missing_index",
            DifferenceKind::ExtraIndex => "extra_index",
            DifferenceKind::IndexOptions => "index_options",
            DifferenceKind::Count => "count",
        }
    }
}

impl std::fmt::Display for DifferenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one field (or option) differs.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldChange {
    Value,
    /// Same number, another numeric type.
    Type,
    MissingOnDestination,
    ExtraOnDestination,
    /// The field is at another position (strict mode).
    Order,
}

impl FieldChange {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldChange::Value => "value",
            FieldChange::Type => "type",
            FieldChange::MissingOnDestination => "missing_on_destination",
            FieldChange::ExtraOnDestination => "extra_on_destination",
            FieldChange::Order => "order",
        }
    }
}

/// One differing field, with short previews of both values.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDifference {
    /// `a.b.c`, `arr.2.x`; for options, the option's path.
    pub path: String,
    pub change: FieldChange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// One difference between the source and the destination.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub namespace: String,
    pub kind: DifferenceKind,
    /// The document's `_id` as canonical extended JSON (which keeps its
    /// type); absent for namespace-level differences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    /// The index concerned, for index differences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The paths that differ: document fields (`a.b.c`, `arr.2.x`) or
    /// options (`validator.$jsonSchema.required`, `unique`).
    #[serde(default)]
    pub field_paths: Vec<String>,
    /// How each of them differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDifference>,
    /// One sentence for people.
    pub detail: String,
}

impl Difference {
    pub(crate) fn namespace_level(
        ns: &impl std::fmt::Display,
        kind: DifferenceKind,
        detail: String,
    ) -> Self {
        Difference {
            namespace: ns.to_string(),
            kind,
            id: None,
            index: None,
            field_paths: Vec::new(),
            fields: Vec::new(),
            detail,
        }
    }

    pub(crate) fn with_fields(mut self, fields: Vec<FieldDifference>) -> Self {
        self.field_paths = fields.iter().map(|f| f.path.clone()).collect();
        self.fields = fields;
        self
    }

    /// The `_id` as relaxed extended JSON, for display.
    pub fn id_text(&self) -> Option<String> {
        let id = self.id.as_ref()?;
        Some(match bson::Bson::try_from(id.clone()) {
            Ok(b) => b.into_relaxed_extjson().to_string(),
            Err(_) => id.to_string(),
        })
    }
}

/// The verification's findings for one namespace.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSummary {
    pub namespace: String,
    /// `collection`, `view` or `timeseries` (the source's, or the
    /// destination's when the source lacks it).
    pub kind: String,
    /// Documents counted on each side (quick), or read (full).
    pub source_documents: Option<u64>,
    pub destination_documents: Option<u64>,
    /// Source documents compared one by one with their counterpart.
    pub documents_compared: u64,
    pub bytes_compared: u64,
    pub differences: u64,
    /// Documents found on one side only that a TTL of the source may
    /// delete before the verification ends: not differences.
    #[serde(default)]
    pub expiring_skipped: u64,
    pub seconds: f64,
    /// Why documents were not compared one by one, where they were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The outcome of a verification.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub mode: VerifyMode,
    pub strict_field_order: bool,
    pub live: bool,
    /// Whether sync-time relaxations on the destination were accepted.
    pub sync_relaxations_allowed: bool,
    /// The connection strings, redacted.
    pub source: String,
    pub destination: String,
    pub identical: bool,
    pub differences: u64,
    pub differences_by_kind: BTreeMap<DifferenceKind, u64>,
    pub documents_compared: u64,
    pub bytes_compared: u64,
    /// Live: document comparisons repeated because the document changed
    /// or differed.
    pub rechecks: u64,
    /// Documents found on one side only that a TTL index (or a clustered
    /// or time-series collection's TTL) of the source may delete before
    /// the verification ends, and so not reported as differences: each
    /// side's TTL monitor deletes them on its own schedule. Full and live
    /// modes (quick mode leaves them out of its counts); a document
    /// rechecked live may count twice. Absent from reports written before
    /// it existed.
    #[serde(default)]
    pub expiring_skipped: u64,
    pub seconds: f64,
    pub namespaces: Vec<NamespaceSummary>,
    /// The first differences found (the sink receives them all).
    pub samples: Vec<Difference>,
}

/// How many differences a report keeps as samples.
pub const MAX_SAMPLES: usize = 20;
