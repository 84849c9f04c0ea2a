//! Stateless operations behind the commands: a connection test and the
//! scope tree. Each composes public engine calls (`Cluster::connect`,
//! `catalog::list_namespaces`, `copy::estimate`) into the shape the UI
//! shows; none writes to a cluster or decides anything about a migration.

use futures_util::{stream, StreamExt, TryStreamExt};
use mongoferry::catalog::{self, NsKind};
use mongoferry::cluster::Cluster;
use mongoferry::{copy, ErrorInfo, Role, Scope};

use crate::commands::types::{
    CollectionNode, ConnectionReport, DatabaseNode, ScopeTree, TestConnectionRequest,
};
use crate::error::IntoInfo;

/// Size queries run at once while building the scope tree.
const ESTIMATE_CONCURRENCY: usize = 8;

pub async fn test_connection(
    request: TestConnectionRequest,
) -> Result<ConnectionReport, ErrorInfo> {
    let cluster = Cluster::connect(request.side.into(), &request.uri)
        .await
        .into_info()?;
    Ok(ConnectionReport {
        side: request.side,
        display_uri: cluster.display_uri.clone(),
        hosts: cluster.hosts.clone(),
        topology: cluster.topology.clone(),
        version: cluster.version.clone(),
    })
}

pub async fn scope_tree(source_uri: &str) -> Result<ScopeTree, ErrorInfo> {
    let src = Cluster::connect(Role::Source, source_uri)
        .await
        .into_info()?;
    let namespaces = catalog::list_namespaces(&src, &Scope::all())
        .await
        .into_info()?;
    let src = &src;
    // Sized in parallel, but collected in listing order (sorted by name).
    let nodes: Vec<CollectionNode> = stream::iter(namespaces)
        .map(|n| async move {
            let (documents, bytes) = match n.kind {
                NsKind::View => (0, 0),
                _ => copy::estimate(src, &n.ns).await?,
            };
            Ok::<_, mongoferry::Error>(CollectionNode {
                name: n.ns.coll.clone(),
                namespace: n.ns.to_string(),
                kind: n.kind,
                documents,
                bytes,
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
