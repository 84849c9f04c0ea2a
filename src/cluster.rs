//! Connecting to a cluster and learning what it is: topology, version,
//! identity, and its current cluster time.
//!
//! Connection strings are parsed here and never stored or shown unredacted.

use std::time::Duration;

use bson::{doc, Bson, Document, Timestamp};
use mongodb::options::{ClientOptions, ReadConcern, WriteConcern};
use mongodb::Client;
use serde::Serialize;

use crate::error::{Error, MongoContext, Result, Role};
use crate::uri::{hosts_of, redact_text, redact_uri};

/// The shape of a deployment.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Topology {
    Standalone,
    ReplicaSet { name: String },
    Sharded,
}

/// A connected cluster: one side of a migration.
#[derive(Clone)]
pub struct Cluster {
    pub role: Role,
    pub client: Client,
    /// The connection string with secrets redacted, for display.
    pub display_uri: String,
    pub hosts: String,
    pub topology: Topology,
    pub version: String,
    /// A stable identifier of the deployment (replica set id or cluster id),
    /// used to notice that a resumed migration points at another cluster.
    pub identity: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("role", &self.role)
            .field("uri", &self.display_uri)
            .field("topology", &self.topology)
            .field("version", &self.version)
            .finish()
    }
}

/// Parses a connection string into driver options with the engine's
/// defaults. Fails with `InvalidUri` and a redacted reason.
pub async fn client_options(role: Role, uri: &str) -> Result<ClientOptions> {
    let mut opts = ClientOptions::parse(uri)
        .await
        .map_err(|e| Error::InvalidUri {
            role,
            reason: redact_text(&crate::retry::message(&e)),
        })?;
    opts.app_name
        .get_or_insert_with(|| "mongoferry".to_string());
    // Parallel readers and writers each hold a connection.
    opts.max_pool_size.get_or_insert(64);
    opts.server_selection_timeout
        .get_or_insert(Duration::from_secs(10));
    opts.connect_timeout.get_or_insert(Duration::from_secs(10));
    match role {
        // Never copy what a failover could roll back.
        Role::Source => {
            opts.read_concern.get_or_insert(ReadConcern::majority());
        }
        Role::Destination => {
            opts.write_concern.get_or_insert(majority_journaled());
        }
    }
    Ok(opts)
}

/// `{w: "majority", j: true}`: what checkpoints and DDL are written with.
pub fn majority_journaled() -> WriteConcern {
    WriteConcern::builder()
        .w(mongodb::options::Acknowledgment::Majority)
        .journal(true)
        .build()
}

impl Cluster {
    /// Connects, checks the server answers, and learns its topology.
    pub async fn connect(role: Role, uri: &str) -> Result<Cluster> {
        let opts = client_options(role, uri).await?;
        let client = Client::with_options(opts).map_err(|e| Error::InvalidUri {
            role,
            reason: redact_text(&crate::retry::message(&e)),
        })?;
        let hosts = hosts_of(uri);
        let admin = client.database("admin");
        let hello = admin
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| unreachable(role, &hosts, e))?;
        let topology = if hello.get_str("msg") == Ok("isdbgrid") {
            Topology::Sharded
        } else if let Ok(name) = hello.get_str("setName") {
            Topology::ReplicaSet {
                name: name.to_string(),
            }
        } else {
            Topology::Standalone
        };
        let build = admin
            .run_command(doc! { "buildInfo": 1 })
            .await
            .ctx(role, "report its version")?;
        let version = build.get_str("version").unwrap_or("unknown").to_string();
        let identity = identity(&client, &topology, &hosts).await;
        Ok(Cluster {
            role,
            client,
            display_uri: redact_uri(uri),
            hosts,
            topology,
            version,
            identity,
        })
    }

    /// The source's last operation time: every write acknowledged before
    /// this call is at or before it, and a change stream that has read up
    /// to it has seen them all. Falls back to `$clusterTime` where the
    /// server reports no `operationTime`.
    pub async fn cluster_time(&self) -> Result<Timestamp> {
        let reply = self
            .client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .ctx(self.role, "report its cluster time")?;
        reply
            .get_timestamp("operationTime")
            .ok()
            .or_else(|| {
                reply
                    .get_document("$clusterTime")
                    .ok()
                    .and_then(|c| c.get_timestamp("clusterTime").ok())
            })
            .ok_or(Error::NotReplicaSet { role: self.role })
    }

    pub fn is_sharded(&self) -> bool {
        self.topology == Topology::Sharded
    }
}

fn unreachable(role: Role, hosts: &str, e: mongodb::error::Error) -> Error {
    let detail = redact_text(&crate::retry::message(&e));
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Authentication { .. } => {
            Error::AuthenticationFailed { role, detail }
        }
        mongodb::error::ErrorKind::Command(c) if c.code == 18 => {
            Error::AuthenticationFailed { role, detail }
        }
        _ => Error::Unreachable {
            role,
            hosts: hosts.to_string(),
            detail,
        },
    }
}

async fn identity(client: &Client, topology: &Topology, hosts: &str) -> String {
    match topology {
        Topology::ReplicaSet { name } => {
            let id = client
                .database("admin")
                .run_command(doc! { "replSetGetConfig": 1 })
                .await
                .ok()
                .and_then(|r| {
                    r.get_document("config")
                        .ok()?
                        .get_document("settings")
                        .ok()?
                        .get_object_id("replicaSetId")
                        .ok()
                });
            match id {
                Some(id) => format!("replset:{name}:{id}"),
                None => format!("replset:{name}@{hosts}"),
            }
        }
        Topology::Sharded => {
            let id = client
                .database("config")
                .collection::<Document>("version")
                .find_one(doc! {})
                .await
                .ok()
                .flatten()
                .and_then(|d| match d.get("clusterId") {
                    Some(Bson::ObjectId(id)) => Some(id.to_hex()),
                    _ => None,
                });
            match id {
                Some(id) => format!("sharded:{id}"),
                None => format!("sharded@{hosts}"),
            }
        }
        Topology::Standalone => format!("standalone@{hosts}"),
    }
}
