//! Topology: a live sync needs a replica set or sharded source (a
//! standalone has no oplog, so no change stream), a destination that is a
//! replica set or sharded cluster, and two different clusters. Also says
//! what the destination's shape implies for sharded collections.
//!
//! Pure: the topology was learned when the clusters were connected.

use super::report::Finding;
use crate::cluster::{Cluster, Topology};

pub fn assess(src: &Cluster, dest: &Cluster) -> Vec<Finding> {
    decide(&src.topology, &dest.topology, src.identity == dest.identity)
}

pub fn decide(src: &Topology, dest: &Topology, same_identity: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if *src == Topology::Standalone {
        out.push(Finding::blocker(
            "source_standalone",
            "The source is a standalone server",
            "A standalone mongod keeps no oplog, so it has no change stream: Mongoferry could copy it once, but could not keep the destination in sync while the source is in use.",
            "Convert the source to a single-node replica set (restart mongod with --replSet NAME, then run rs.initiate()); its data stays in place.",
        ));
    }
    if *dest == Topology::Standalone {
        out.push(Finding::blocker(
            "destination_standalone",
            "The destination is a standalone server",
            "Mongoferry writes its checkpoints with majority write concern and keeps them on the destination, which needs a replica set or a sharded cluster.",
            "Convert the destination to a replica set (restart mongod with --replSet NAME, then run rs.initiate()), then check again.",
        ));
    }
    if same_identity {
        out.push(Finding::blocker(
            "same_cluster",
            "The source and the destination are the same cluster",
            "Both connection strings reach one deployment: migrating it onto itself would overwrite the data being read.",
            "Point the destination at a different cluster.",
        ));
    }
    match (src, dest) {
        (Topology::ReplicaSet { .. }, Topology::Sharded) => out.push(Finding::info(
            "destination_sharded",
            "The destination is sharded; the source is not",
            "Collections are created unsharded on the destination, each on its database's primary shard, so all the data lands on those shards first.",
            "Shard the large collections after the commit (sh.shardCollection), and check that the primary shards have room for the whole copy.",
        )),
        (Topology::Sharded, Topology::ReplicaSet { .. }) => out.push(Finding::warning(
            "source_sharded_destination_not",
            "The source is sharded; the destination is a single replica set",
            "Sharded collections arrive unsharded, and one replica set will hold the data of every source shard.",
            "Check that the destination has the disk, memory and write capacity of the whole source (see the space finding), or migrate into a sharded cluster.",
        )),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str) -> Topology {
        Topology::ReplicaSet { name: name.into() }
    }

    fn ids(f: &[Finding]) -> Vec<(&str, super::super::Severity)> {
        f.iter().map(|f| (f.id.as_str(), f.severity)).collect()
    }

    #[test]
    fn live_sync_needs_an_oplog_on_the_source_and_a_replica_set_on_the_destination() {
        use super::super::Severity::*;
        assert!(decide(&rs("a"), &rs("b"), false).is_empty());
        assert!(decide(&Topology::Sharded, &Topology::Sharded, false).is_empty());
        assert_eq!(
            ids(&decide(&Topology::Standalone, &rs("b"), false)),
            vec![("source_standalone", Blocker)]
        );
        assert_eq!(
            ids(&decide(&rs("a"), &Topology::Standalone, false)),
            vec![("destination_standalone", Blocker)]
        );
        assert_eq!(
            ids(&decide(&rs("a"), &rs("a"), true)),
            vec![("same_cluster", Blocker)]
        );
        assert_eq!(
            ids(&decide(&rs("a"), &Topology::Sharded, false)),
            vec![("destination_sharded", Info)]
        );
        assert_eq!(
            ids(&decide(&Topology::Sharded, &rs("b"), false)),
            vec![("source_sharded_destination_not", Warning)]
        );
    }
}
