//! Sharded clusters: reading a source collection's shard key and chunk
//! bounds, and sharding (and pre-splitting) the same collection on a
//! sharded destination before the copy writes into it.
//!
//! Written from MongoDB's documentation (`config.collections`,
//! `config.chunks`, `shardCollection`, `split`); the planning is pure and
//! unit-tested, the commands need a `mongos` this project cannot start.

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;

use crate::cluster::Cluster;
use crate::error::{MongoContext, Result, Role};
use crate::scope::Namespace;

/// How a source collection is sharded.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSpec {
    pub key: Document,
    pub unique: bool,
    /// The lower bounds of the source's chunks, in order.
    pub chunk_mins: Vec<Document>,
}

impl ShardSpec {
    pub fn is_hashed(&self) -> bool {
        self.key.values().any(|v| v.as_str() == Some("hashed"))
    }
}

/// The commands that shard `ns` on the destination like the source:
/// `shardCollection`, then one `split` per source chunk boundary (hashed
/// keys are pre-split by the server itself).
pub fn plan_commands(ns: &Namespace, spec: &ShardSpec) -> Vec<Document> {
    let mut cmds = vec![doc! {
        "shardCollection": ns.to_string(),
        "key": spec.key.clone(),
        "unique": spec.unique,
    }];
    if !spec.is_hashed() {
        for min in &spec.chunk_mins {
            // The first chunk starts at MinKey: not a split point.
            if min.values().all(|v| matches!(v, Bson::MinKey)) {
                continue;
            }
            cmds.push(doc! { "split": ns.to_string(), "middle": min.clone() });
        }
    }
    cmds
}

/// Reads the shard key and chunk bounds of a sharded source collection;
/// `None` when the source is not sharded or the collection is unsharded.
pub async fn source_spec(src: &Cluster, ns: &Namespace) -> Result<Option<ShardSpec>> {
    if !src.is_sharded() {
        return Ok(None);
    }
    let config = src.client.database("config");
    let Some(coll) = config
        .collection::<Document>("collections")
        .find_one(doc! { "_id": ns.to_string() })
        .await
        .ctx(Role::Source, "read config.collections")?
    else {
        return Ok(None);
    };
    if coll.get_bool("dropped").unwrap_or(false) {
        return Ok(None);
    }
    let key = coll.get_document("key").cloned().unwrap_or_default();
    let unique = coll.get_bool("unique").unwrap_or(false);
    // 5.0+ chunks are keyed by the collection's UUID; older ones by ns.
    let filter = match coll.get("uuid") {
        Some(uuid) => doc! { "uuid": uuid.clone() },
        None => doc! { "ns": ns.to_string() },
    };
    let chunk_mins: Vec<Document> = config
        .collection::<Document>("chunks")
        .find(filter)
        .sort(doc! { "min": 1 })
        .projection(doc! { "min": 1 })
        .await
        .ctx(Role::Source, "read config.chunks")?
        .try_collect::<Vec<Document>>()
        .await
        .ctx(Role::Source, "read config.chunks")?
        .into_iter()
        .filter_map(|c| c.get_document("min").ok().cloned())
        .collect();
    Ok(Some(ShardSpec {
        key,
        unique,
        chunk_mins,
    }))
}

/// Shards `ns` on a sharded destination with the source's key, before any
/// document is written to it. An unsharded source collection stays
/// unsharded.
pub async fn shard_like_source(src: &Cluster, dest: &Cluster, ns: &Namespace) -> Result<()> {
    let Some(spec) = source_spec(src, ns).await? else {
        return Ok(());
    };
    let admin = dest.client.database("admin");
    for cmd in plan_commands(ns, &spec) {
        admin
            .run_command(cmd)
            .await
            .ctx(Role::Destination, &format!("shard {ns}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_keys_are_presplit_at_source_boundaries() {
        let spec = ShardSpec {
            key: doc! { "region": 1, "id": 1 },
            unique: false,
            chunk_mins: vec![
                doc! { "region": Bson::MinKey, "id": Bson::MinKey },
                doc! { "region": "eu", "id": 100 },
                doc! { "region": "us", "id": Bson::MinKey },
            ],
        };
        let ns = Namespace::new("shop", "orders");
        let cmds = plan_commands(&ns, &spec);
        assert_eq!(cmds.len(), 3);
        assert_eq!(
            cmds[0],
            doc! { "shardCollection": "shop.orders", "key": { "region": 1, "id": 1 }, "unique": false }
        );
        assert_eq!(
            cmds[1],
            doc! { "split": "shop.orders", "middle": { "region": "eu", "id": 100 } }
        );
        assert_eq!(
            cmds[2]
                .get_document("middle")
                .unwrap()
                .get_str("region")
                .unwrap(),
            "us"
        );
    }

    #[test]
    fn hashed_keys_are_not_split_by_hand() {
        let spec = ShardSpec {
            key: doc! { "_id": "hashed" },
            unique: false,
            chunk_mins: vec![doc! { "_id": Bson::MinKey }, doc! { "_id": 0i64 }],
        };
        assert!(spec.is_hashed());
        assert_eq!(plan_commands(&Namespace::new("a", "b"), &spec).len(), 1);
    }
}
