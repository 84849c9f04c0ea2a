//! Stateless operations behind the commands: a connection test, the
//! preflight check, the scope tree, reading one document per side, and
//! reading a load setting the web view sent. Each composes public engine calls (`Cluster::connect`,
//! `catalog::list_namespaces`, `copy::estimate`, `preflight::inventory`'s
//! time-series reads) into the shape the UI shows; none writes to a
//! cluster or decides anything about a migration.

use futures_util::{stream, StreamExt, TryStreamExt};
use mongoferry::catalog::{self, NsKind};
use mongoferry::cluster::Cluster;
use mongoferry::ping::{ping, PingOptions, PingReport};
use mongoferry::preflight::inventory::{self, TimeseriesFacts};
use mongoferry::{copy, preflight, ErrorInfo, LoadLevel, LoadSetting, Role, Scope};

use bson::{doc, Bson, Document};
use mongoferry::scope::Namespace;

use crate::commands::types::{
    CollectionNode, DatabaseNode, DocumentPair, DocumentRequest, PreflightRequest, ScopeRequest,
    ScopeTree, TestConnectionRequest, TimeseriesNode,
};
use crate::error::shell_error;
use crate::error::IntoInfo;
use crate::profiles::connection_uri;

/// Size queries run at once while building the scope tree.
const ESTIMATE_CONCURRENCY: usize = 8;

/// The engine's connection test: topology, version, user and roles, TLS
/// and the server's certificate. A failed test comes back as its
/// classified error, with the remedy.
pub async fn test_connection(request: TestConnectionRequest) -> Result<PingReport, ErrorInfo> {
    let uri = connection_uri(&request.uri, request.profile.as_deref()).await?;
    let report = ping(request.side.into(), &uri, &PingOptions::default()).await;
    if report.ok {
        return Ok(report);
    }
    Err(report.error.clone().unwrap_or_else(|| {
        shell_error(
            "connection_failed",
            "The connection test failed without saying why.",
            "Check the connection string, then test again.",
        )
    }))
}

/// The preflight check of the engine, read-only: blockers, warnings and
/// notes, each with its remedy.
pub async fn preflight(request: PreflightRequest) -> Result<preflight::Report, ErrorInfo> {
    let check = preflight::CheckRequest {
        include: request.include,
        exclude: request.exclude,
        event_source: request.event_source,
        reversible: request.reversible,
        ..preflight::CheckRequest::default()
    };
    let source = connection_uri(&request.source_uri, request.source_profile.as_deref()).await?;
    let destination = connection_uri(
        &request.destination_uri,
        request.destination_profile.as_deref(),
    )
    .await?;
    preflight::check(&source, &destination, check)
        .await
        .into_info()
}

pub async fn scope_tree(request: ScopeRequest) -> Result<ScopeTree, ErrorInfo> {
    let source_uri = connection_uri(&request.source_uri, request.source_profile.as_deref()).await?;
    let src = Cluster::connect(Role::Source, &source_uri)
        .await
        .into_info()?;
    let namespaces = catalog::list_namespaces(&src, &Scope::all())
        .await
        .into_info()?;
    let src = &src;
    // Sized in parallel, but collected in listing order (sorted by name).
    // A time-series collection is one node, sized by its buckets (which
    // the listing also names, as the migration copies them).
    let nodes: Vec<CollectionNode> = stream::iter(inventory::pair_buckets(namespaces))
        .map(|(n, _buckets)| async move {
            let (documents, bytes, timeseries) = match n.kind {
                NsKind::View => (0, 0, None),
                NsKind::Collection => {
                    let (documents, bytes) = copy::estimate(src, &n.ns).await?;
                    (documents, bytes, None)
                }
                NsKind::Timeseries => {
                    let sizes = inventory::buckets_sizes(src, &n.ns).await.map_err(|e| {
                        mongoferry::Error::mongo(
                            Role::Source,
                            format!("read the size of {}", n.ns),
                            e,
                        )
                    })?;
                    let (buckets, bytes) = (sizes.count, sizes.size);
                    let shape = TimeseriesFacts::from_options(&n.options);
                    let measurements = inventory::measure(
                        src,
                        &n.ns,
                        &shape.time_field,
                        Some(buckets),
                        inventory::COUNT_TIME_LIMIT,
                    )
                    .await;
                    let node = TimeseriesNode {
                        time_field: shape.time_field,
                        meta_field: shape.meta_field,
                        granularity: shape.granularity,
                        bucket_max_span_seconds: shape.bucket_max_span_seconds,
                        expire_after_seconds: shape.expire_after_seconds,
                        buckets,
                        measurements,
                    };
                    (buckets, bytes, Some(node))
                }
            };
            Ok::<_, mongoferry::Error>(CollectionNode {
                name: n.ns.coll.clone(),
                namespace: n.ns.to_string(),
                kind: n.kind,
                documents,
                bytes,
                timeseries,
            })
        })
        .buffered(ESTIMATE_CONCURRENCY)
        .try_collect()
        .await
        .into_info()?;
    let mut databases: Vec<DatabaseNode> = Vec::new();
    for node in nodes {
        let db = node
            .namespace
            .split_once('.')
            .map(|(db, _)| db.to_string())
            .unwrap_or_default();
        if databases.last().is_none_or(|d| d.name != db) {
            databases.push(DatabaseNode {
                name: db,
                collections: Vec::new(),
                documents: 0,
                bytes: 0,
            });
        }
        if let Some(d) = databases.last_mut() {
            d.documents += node.documents;
            d.bytes += node.bytes;
            d.collections.push(node);
        }
    }
    Ok(ScopeTree {
        documents: databases.iter().map(|d| d.documents).sum(),
        bytes: databases.iter().map(|d| d.bytes).sum(),
        databases,
    })
}

/// Reads one document by `_id` on both sides of a migration and renders
/// each as indented relaxed extended JSON. Read-only.
pub async fn document_pair(
    src: &Cluster,
    dest: &Cluster,
    request: &DocumentRequest,
) -> Result<DocumentPair, ErrorInfo> {
    let ns = Namespace::parse(&request.namespace).ok_or_else(|| {
        shell_error(
            "invalid_namespace",
            &format!("'{}' is not a database.collection name.", request.namespace),
            "Pick a difference from the table.",
        )
    })?;
    let id = Bson::try_from(request.id.clone()).map_err(|e| {
        shell_error(
            "invalid_id",
            &format!("The document's _id could not be read: {e}."),
            "Pick a difference from the table.",
        )
    })?;
    let (source, destination) =
        tokio::try_join!(find_pretty(src, &ns, &id), find_pretty(dest, &ns, &id))?;
    Ok(DocumentPair {
        source,
        destination,
    })
}

async fn find_pretty(
    cluster: &Cluster,
    ns: &Namespace,
    id: &Bson,
) -> Result<Option<String>, ErrorInfo> {
    let found = cluster
        .client
        .database(&ns.db)
        .collection::<Document>(&ns.coll)
        .find_one(doc! { "_id": id.clone() })
        .await
        .map_err(|e| {
            mongoferry::Error::mongo(cluster.role, format!("read a document of {ns}"), e).info()
        })?;
    Ok(found.map(|d| {
        let json = Bson::Document(d).into_relaxed_extjson();
        serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string())
    }))
}

/// Reads a load setting as the web view sent it, and has the engine judge
/// its limits.
///
/// Tauri refuses a request it cannot deserialize before the command runs,
/// with a message of its own and no code. The level is judged while it is
/// read (a copy rate out of bounds fails there), so the setting is read
/// here from plain JSON instead: a refused level then reaches the UI as
/// the engine's `invalid_load_level`, sentence and remedy, as every other
/// refusal does.
pub fn load_setting(request: &serde_json::Value) -> Result<LoadSetting, ErrorInfo> {
    let setting = serde_json::from_value::<LoadSetting>(request.clone()).map_err(|e| {
        let level = match request.get("level") {
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match level.map(|text| LoadLevel::parse(&text)) {
            Some(Err(refused)) => refused.info(),
            _ => shell_error(
                "invalid_load_setting",
                &format!("The app could not read the load setting: {e}."),
                "Choose the load level again; if this recurs, report it with the log.",
            ),
        }
    })?;
    // `set_load` validates too; a start does not, so judge it here once
    // for both.
    setting.validate().into_info()?;
    Ok(setting)
}

/// The load setting a start asks for: none keeps the stored level (or
/// starts at the default one).
pub fn load_choice(request: Option<&serde_json::Value>) -> Result<Option<LoadSetting>, ErrorInfo> {
    request.map(load_setting).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_load_setting_is_read_with_its_limits() -> Result<(), ErrorInfo> {
        let s = load_setting(&json!({
            "level": "gentle",
            "maxSourceLatencyIncreasePercent": 50,
            "maxSecondaryLagSeconds": null,
        }))?;
        assert_eq!(s.level, LoadLevel::Gentle);
        assert_eq!(s.max_source_latency_increase_percent, Some(50.0));
        assert_eq!(s.max_secondary_lag_seconds, None);
        let s = load_setting(&json!({ "level": 12.5 }))?;
        assert_eq!(s.level, LoadLevel::MibPerSecond(12.5));
        assert!(!s.adaptive());
        assert_eq!(load_choice(None)?, None);
        assert_eq!(
            load_choice(Some(&json!({ "level": "full" })))?,
            Some(LoadSetting::fixed(LoadLevel::Full))
        );
        Ok(())
    }

    #[test]
    fn a_refused_setting_comes_back_as_the_engines_error() {
        let code = |v: serde_json::Value| load_setting(&v).map(|_| ()).map_err(|e| e.code);
        // The level, refused as it is read: the engine's code and sentence.
        for level in [json!(0.1), json!(1e9), json!("fast"), json!("0")] {
            let e = load_setting(&json!({ "level": level })).err();
            let e = e.unwrap_or_else(|| panic!("{level} was accepted"));
            assert_eq!(e.code, "invalid_load_level", "{level}");
            assert!(e.message.ends_with('.'), "{}", e.message);
            assert!(!e.remedy.is_empty());
        }
        // Limits, refused by the engine's validation (a start relies on it).
        assert_eq!(
            code(json!({ "level": "full", "maxSourceLatencyIncreasePercent": 1 })),
            Err("invalid_load_limit".into())
        );
        assert_eq!(
            code(json!({ "level": "normal", "maxSecondaryLagSeconds": 0 })),
            Err("invalid_load_limit".into())
        );
        // Not a setting at all.
        assert_eq!(code(json!({})), Err("invalid_load_setting".into()));
        assert_eq!(code(json!("gentle")), Err("invalid_load_setting".into()));
    }
}
