//! Sharding: a sharded source's shard keys (`config.collections`), what
//! happens to them on the destination, and the balancer of each sharded
//! side (`balancerStatus`).
//!
//! Written from MongoDB's documentation: `config.collections` holds one
//! document per sharded collection (`_id` the namespace, `key`, `unique`,
//! `noBalance`; `unsplittable: true` marks an unsharded collection that
//! 8.0 tracks there, and `dropped: true` a dropped one before 5.0), and
//! `balancerStatus` answers `{mode: "full" | "off", inBalancerRound}` on a
//! mongos. No mongos can be started in this project's test environment,
//! so the reads are untested here and the decisions are unit-tested.

use bson::{doc, Document};
use futures_util::TryStreamExt;

use super::report::{list, Finding};
use crate::cluster::{Cluster, Topology};
use crate::driver_error::redacted_message as reason;
use crate::scope::{Namespace, Scope};

#[derive(Debug, Clone, PartialEq)]
pub struct ShardedColl {
    pub ns: String,
    pub key: Document,
    pub unique: bool,
    /// Whether the balancer may move this collection's chunks.
    pub balanced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balancer {
    /// "full" (running) or "off".
    pub mode: String,
}

impl Balancer {
    pub fn running(&self) -> bool {
        self.mode != "off"
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    /// In-scope sharded collections of a sharded source.
    pub source_keys: Option<Result<Vec<ShardedColl>, String>>,
    pub source_balancer: Option<Result<Balancer, String>>,
    pub destination_balancer: Option<Result<Balancer, String>>,
}

pub async fn gather(src: &Cluster, dest: &Cluster, scope: &Scope) -> Facts {
    let keys = async {
        if !src.is_sharded() {
            return None;
        }
        Some(shard_keys(src, scope).await)
    };
    let (source_keys, source_balancer, destination_balancer) =
        tokio::join!(keys, balancer(src), balancer(dest));
    Facts {
        source_keys,
        source_balancer,
        destination_balancer,
    }
}

async fn shard_keys(src: &Cluster, scope: &Scope) -> Result<Vec<ShardedColl>, String> {
    let docs: Vec<Document> = src
        .client
        .database("config")
        .collection::<Document>("collections")
        .find(doc! {})
        .await
        .map_err(|e| reason(&e))?
        .try_collect()
        .await
        .map_err(|e| reason(&e))?;
    Ok(parse_collections(&docs, scope))
}

/// The in-scope sharded collections described by `config.collections`.
pub fn parse_collections(docs: &[Document], scope: &Scope) -> Vec<ShardedColl> {
    let mut out: Vec<ShardedColl> = docs
        .iter()
        .filter(|d| !d.get_bool("dropped").unwrap_or(false))
        .filter(|d| !d.get_bool("unsplittable").unwrap_or(false))
        .filter_map(|d| {
            let ns = d.get_str("_id").ok()?;
            if !scope.contains(&Namespace::parse(ns)?) {
                return None;
            }
            Some(ShardedColl {
                ns: ns.to_string(),
                key: d.get_document("key").ok()?.clone(),
                unique: d.get_bool("unique").unwrap_or(false),
                balanced: !d.get_bool("noBalance").unwrap_or(false),
            })
        })
        .collect();
    out.sort_by(|a, b| a.ns.cmp(&b.ns));
    out
}

async fn balancer(c: &Cluster) -> Option<Result<Balancer, String>> {
    if !c.is_sharded() {
        return None;
    }
    Some(
        c.client
            .database("admin")
            .run_command(doc! { "balancerStatus": 1 })
            .await
            .map(|r| Balancer {
                mode: r.get_str("mode").unwrap_or("full").to_string(),
            })
            .map_err(|e| reason(&e)),
    )
}

pub fn assess(f: &Facts, dest: &Topology) -> Vec<Finding> {
    let mut out = Vec::new();
    let dest_sharded = *dest == Topology::Sharded;
    let mut sharded: Vec<ShardedColl> = Vec::new();
    match &f.source_keys {
        Some(Ok(keys)) => sharded = keys.clone(),
        Some(Err(e)) => out.push(Finding::warning(
            "sharding_unreadable",
            "The source's shard keys could not be read",
            format!("Reading config.collections failed: {e}. {}", if dest_sharded {
                "The migration needs them to shard the destination's collections like the source's."
            } else {
                "The collections will arrive unsharded either way."
            }),
            "Grant the source user the clusterMonitor role, then check again.",
        )),
        None => {}
    }
    if !sharded.is_empty() {
        let keys: Vec<String> = sharded
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.ns,
                    c.key,
                    if c.unique { " (unique)" } else { "" }
                )
            })
            .collect();
        out.push(Finding::info(
            "shard_keys",
            format!("{} in scope", super::report::count(sharded.len(), "sharded collection")),
            format!(
                "Shard keys: {}. {}",
                list(&keys, 10),
                if dest_sharded {
                    "On the destination each is sharded with the same key and pre-split at the source's chunk bounds before the copy writes to it."
                } else {
                    "The destination is not sharded, so they arrive as unsharded collections."
                }
            ),
            if dest_sharded {
                "Nothing to do."
            } else {
                "Shard them on the destination after the commit if it becomes a sharded cluster."
            },
        ));
    }
    if let Some(Ok(b)) = &f.source_balancer {
        let moving: Vec<String> = sharded
            .iter()
            .filter(|c| c.balanced)
            .map(|c| c.ns.clone())
            .collect();
        if b.running() && (!moving.is_empty() || f.source_keys.is_none()) {
            out.push(Finding::warning(
                "source_balancer_running",
                "The source's balancer is running",
                format!(
                    "Chunk migrations during the copy add load, and move the chunk bounds the destination is pre-split at{}.",
                    if moving.is_empty() { String::new() } else { format!(" (balanced collections in scope: {})", list(&moving, 5)) }
                ),
                "Stop it for the migration with sh.stopBalancer() (or balancerStop) and wait for the current round to end; restart it after the commit.",
            ));
        }
    }
    if let Some(Ok(b)) = &f.destination_balancer {
        if b.running() {
            out.push(Finding::warning(
                "destination_balancer_running",
                "The destination's balancer is running",
                "It would move the pre-split chunks while the copy fills them, competing with the copy for every shard's disk and network.",
                "Stop it with sh.stopBalancer() on the destination during the migration and restart it after the commit.",
            ));
        }
    }
    for (side, b) in [
        ("source", &f.source_balancer),
        ("destination", &f.destination_balancer),
    ] {
        if let Some(Err(e)) = b {
            out.push(Finding::info(
                "sharding_unreadable",
                format!("The {side}'s balancer state could not be read"),
                format!("balancerStatus failed: {e}."),
                format!("Check it with sh.getBalancerState() on the {side}; stop it during the migration."),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Severity::{self, *};
    use super::*;

    fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.id.as_str(), f.severity)).collect()
    }

    fn rs() -> Topology {
        Topology::ReplicaSet { name: "d".into() }
    }

    fn config_collections() -> Vec<Document> {
        vec![
            doc! { "_id": "shop.orders", "key": { "customer": 1, "_id": 1 }, "unique": false },
            doc! { "_id": "shop.users", "key": { "_id": "hashed" }, "unique": false, "noBalance": true },
            doc! { "_id": "shop.old", "key": { "_id": 1 }, "dropped": true },
            doc! { "_id": "shop.tracked", "key": { "_id": 1 }, "unsplittable": true },
            doc! { "_id": "config.system.sessions", "key": { "_id": 1 } },
            doc! { "_id": "crm.leads", "key": { "email": 1 }, "unique": true },
        ]
    }

    #[test]
    fn shard_keys_come_from_config_collections_within_scope() {
        let parsed = parse_collections(
            &config_collections(),
            &Scope::new(&["shop"], &[] as &[&str]).unwrap(),
        );
        let names: Vec<&str> = parsed.iter().map(|c| c.ns.as_str()).collect();
        assert_eq!(names, vec!["shop.orders", "shop.users"]);
        assert!(parsed[0].balanced && !parsed[1].balanced);
        let all = parse_collections(&config_collections(), &Scope::all());
        assert!(all.iter().any(|c| c.ns == "crm.leads" && c.unique));
        assert!(!all.iter().any(|c| c.ns.starts_with("config.")));
    }

    #[test]
    fn sharded_to_sharded_keeps_keys_and_wants_balancers_stopped() {
        let keys = parse_collections(&config_collections(), &Scope::all());
        let running = Balancer {
            mode: "full".into(),
        };
        let f = Facts {
            source_keys: Some(Ok(keys.clone())),
            source_balancer: Some(Ok(running.clone())),
            destination_balancer: Some(Ok(running)),
        };
        let out = assess(&f, &Topology::Sharded);
        assert_eq!(
            ids(&out),
            vec![
                ("shard_keys", Info),
                ("source_balancer_running", Warning),
                ("destination_balancer_running", Warning)
            ]
        );
        assert!(out[0].detail.contains("pre-split"), "{}", out[0].detail);
        assert!(
            out[0]
                .detail
                .contains("crm.leads { \"email\": 1 } (unique)"),
            "{}",
            out[0].detail
        );
        assert!(
            out[1].detail.contains("crm.leads, shop.orders"),
            "{}",
            out[1].detail
        );
        assert!(
            !out[1].detail.contains("shop.users"),
            "noBalance collections do not move"
        );

        let off = Balancer { mode: "off".into() };
        let f = Facts {
            source_keys: Some(Ok(keys)),
            source_balancer: Some(Ok(off.clone())),
            destination_balancer: Some(Ok(off)),
        };
        assert_eq!(
            ids(&assess(&f, &Topology::Sharded)),
            vec![("shard_keys", Info)]
        );
    }

    #[test]
    fn sharded_to_replica_set_says_collections_arrive_unsharded() {
        let f = Facts {
            source_keys: Some(Ok(parse_collections(&config_collections(), &Scope::all()))),
            source_balancer: Some(Ok(Balancer { mode: "off".into() })),
            destination_balancer: None,
        };
        let out = assess(&f, &rs());
        assert_eq!(ids(&out), vec![("shard_keys", Info)]);
        assert!(
            out[0].detail.contains("arrive as unsharded"),
            "{}",
            out[0].detail
        );
    }

    #[test]
    fn unreadable_sharding_metadata_is_reported() {
        let f = Facts {
            source_keys: Some(Err("not authorized on config".into())),
            source_balancer: Some(Err("not authorized".into())),
            destination_balancer: None,
        };
        let out = assess(&f, &Topology::Sharded);
        assert_eq!(
            ids(&out),
            vec![
                ("sharding_unreadable", Warning),
                ("sharding_unreadable", Info)
            ]
        );
        assert!(
            out[0].detail.contains("shard the destination"),
            "{}",
            out[0].detail
        );
        // Replica sets on both sides: nothing to say.
        assert!(assess(&Facts::default(), &rs()).is_empty());
    }
}
