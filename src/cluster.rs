//! Connecting to a cluster and learning what it is: topology, version,
//! identity, and its current cluster time.
//!
//! Connection strings are parsed here and never stored or shown unredacted.
//! A `tlsAllowInvalidHostnames` connection, which the driver's rustls back
//! end cannot make, is made with the driver's certificate checks off and
//! each server's chain checked by [`crate::connection::tls`] first.

use std::time::Duration;

use bson::{doc, Bson, Document, Timestamp};
use mongodb::options::{ClientOptions, ReadConcern, WriteConcern};
use mongodb::Client;
use serde::Serialize;

use crate::connection::classify::{self, Context};
use crate::connection::tls::{self as conn_tls, TlsSettings, Verification};
use crate::connection::tls::{tls_warnings, ConnectionWarning};
use crate::error::{Error, MongoContext, Result, Role};
use crate::uri::{hosts_of, redact_uri};

/// The shape of a deployment.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Topology {
    Standalone,
    ReplicaSet { name: String },
    Sharded,
}

impl Topology {
    /// What a `hello` reply says the deployment is: `mongos` answers
    /// `msg: "isdbgrid"`, a replica set member names its set.
    pub fn from_hello(hello: &Document) -> Topology {
        if hello.get_str("msg") == Ok("isdbgrid") {
            Topology::Sharded
        } else if let Ok(name) = hello.get_str("setName") {
            Topology::ReplicaSet {
                name: name.to_string(),
            }
        } else {
            Topology::Standalone
        }
    }

    /// `standalone`, `replicaSet` or `sharded`: the `kind` it serializes with.
    pub fn kind(&self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::ReplicaSet { .. } => "replicaSet",
            Topology::Sharded => "sharded",
        }
    }
}

/// The `host:port` names a `hello` reply lists under `field` (`hosts`,
/// `passives`, `arbiters`).
pub(crate) fn hello_hosts<'a>(hello: &'a Document, field: &str) -> Vec<&'a str> {
    hello
        .get_array(field)
        .map(|a| a.iter().filter_map(|h| h.as_str()).collect())
        .unwrap_or_default()
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
    /// How the servers' TLS certificates are checked.
    pub tls: Verification,
    /// Unsafe or unusual settings of this connection, to show the user.
    pub warnings: Vec<ConnectionWarning>,
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

/// A connection string made ready for the driver. Its `Debug` shows the
/// hosts and the TLS settings only: the driver's options print a TLS key's
/// password.
#[derive(Clone)]
pub struct Prepared {
    pub options: ClientOptions,
    /// The TLS settings as the connection string asked for them.
    pub tls: TlsSettings,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("hosts", &self.options.hosts)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Prepared {
    /// The seed hosts as `host:port`.
    pub fn hosts(&self) -> Vec<String> {
        self.options
            .hosts
            .iter()
            .map(conn_tls::address_string)
            .collect()
    }

    /// The context failures are classified in.
    pub fn context<'a>(&'a self, role: Role, hosts: &'a str) -> Context<'a> {
        Context {
            role,
            hosts,
            tls: self.tls.enabled,
            client_certificate: self.tls.cert_key_file.is_some(),
            user: self
                .options
                .credential
                .as_ref()
                .and_then(|c| c.username.as_deref()),
        }
    }
}

/// Parses a connection string into driver options with the engine's
/// defaults, and its TLS settings. Fails with `InvalidUri` and a redacted
/// reason.
pub async fn prepare(role: Role, uri: &str) -> Result<Prepared> {
    let (driver_uri, allow_invalid_hostnames) = conn_tls::split_invalid_hostnames(uri);
    let mut opts = ClientOptions::parse(&driver_uri)
        .await
        .map_err(|e| match e.kind.as_ref() {
            mongodb::error::ErrorKind::DnsResolve { .. } => Error::DnsFailure {
                role,
                host: hosts_of(uri),
            },
            _ => Error::InvalidUri {
                role,
                reason: crate::driver_error::redacted_message(&e),
            },
        })?;
    if allow_invalid_hostnames && matches!(opts.tls, None | Some(mongodb::options::Tls::Disabled)) {
        return Err(Error::InvalidUri {
            role,
            reason: "tlsAllowInvalidHostnames needs TLS on".into(),
        });
    }
    let tls = TlsSettings::from_options(&opts, allow_invalid_hostnames);
    if let Some(mongodb::options::Tls::Enabled(t)) = opts.tls.as_mut() {
        if allow_invalid_hostnames {
            // The driver cannot skip only the name check; Mongoferry
            // checks the rest itself (see `verify_chains`).
            t.allow_invalid_certificates = Some(true);
        }
    }
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
    Ok(Prepared { options: opts, tls })
}

/// For a `tlsAllowInvalidHostnames` connection: checks every server's
/// certificate chain (issuer, signatures, dates), all but the name, with
/// Mongoferry's own handshake, since the driver checks nothing there.
pub async fn verify_chains(
    role: Role,
    hosts: &[mongodb::options::ServerAddress],
    tls: &TlsSettings,
) -> Result<()> {
    let timeout = Duration::from_secs(10);
    let probes =
        futures_util::future::join_all(hosts.iter().map(|h| conn_tls::probe(h, tls, timeout)))
            .await;
    for p in probes {
        if let Err(f) = p.outcome {
            // An unreachable member is the driver's business (it may be
            // down for maintenance); a certificate that fails is not.
            if matches!(
                f,
                conn_tls::ProbeFailure::Dns
                    | conn_tls::ProbeFailure::Refused
                    | conn_tls::ProbeFailure::Timeout
                    | conn_tls::ProbeFailure::Io(_)
            ) {
                tracing::debug!(host = %p.host, ?f, "member not reachable for the chain check");
                continue;
            }
            return Err(f.into_error(role, &p.host, p.certificate.as_ref()));
        }
    }
    Ok(())
}

/// `{w: "majority", j: true}`: what checkpoints and DDL are written with.
pub fn majority_journaled() -> WriteConcern {
    WriteConcern::builder()
        .w(mongodb::options::Acknowledgment::Majority)
        .journal(true)
        .build()
}

/// How long a closing client waits for its pending cleanups (cursors to
/// kill, sessions to end) before it stops without them.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Ends a client's sessions and stops its connection pools and monitors.
///
/// Without it, dropping the last handle leaves that work to a background
/// task; a process that exits right after races the task against the
/// runtime's shutdown, and the driver panics when it loses (its pool worker
/// is gone). Whoever created a client and is about to let the process end
/// closes it first. Pending cleanups get [`CLOSE_GRACE`], then are dropped:
/// the server reaps cursors and sessions left behind.
pub async fn close_client(client: &Client) {
    let started = std::time::Instant::now();
    let graceful = client.clone().shutdown();
    let timed_out = tokio::time::timeout(CLOSE_GRACE, graceful).await.is_err();
    if timed_out {
        client.clone().shutdown().immediate(true).await;
    }
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        timed_out,
        "client closed"
    );
}

impl Cluster {
    /// Closes this cluster's connections; see [`close_client`]. Every clone
    /// shares them, so none may be used afterwards.
    pub async fn close(&self) {
        close_client(&self.client).await;
    }

    /// Connects, checks the server answers, and learns its topology.
    pub async fn connect(role: Role, uri: &str) -> Result<Cluster> {
        let prepared = prepare(role, uri).await?;
        let hosts = hosts_of(uri);
        let verification = prepared.tls.verification();
        if verification == Verification::ChainOnly {
            verify_chains(role, &prepared.options.hosts, &prepared.tls).await?;
        }
        let warnings = tls_warnings(&prepared.tls, &prepared.hosts());
        for w in &warnings {
            tracing::warn!(%role, code = %w.code, "{}", w.message);
        }
        let client =
            Client::with_options(prepared.options.clone()).map_err(|e| Error::InvalidUri {
                role,
                reason: crate::driver_error::redacted_message(&e),
            })?;
        let admin = client.database("admin");
        let hello = match admin.run_command(doc! { "hello": 1 }).await {
            Ok(h) => h,
            Err(e) => {
                let err = classify::classify(&prepared.context(role, &hosts), "connect", &e);
                return Err(refine(role, &prepared, err).await);
            }
        };
        if verification == Verification::ChainOnly {
            // Members the seed list did not name are checked as well.
            let seeds = prepared.hosts();
            let others: Vec<mongodb::options::ServerAddress> = hello_hosts(&hello, "hosts")
                .into_iter()
                .filter(|h| !seeds.iter().any(|s| s == h))
                .filter_map(|h| mongodb::options::ServerAddress::parse(h).ok())
                .collect();
            verify_chains(role, &others, &prepared.tls).await?;
        }
        let topology = Topology::from_hello(&hello);
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
            tls: verification,
            warnings,
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

/// A connection failure the driver's error leaves vague (a server
/// selection timeout, a closed connection) is looked at once more: a
/// replica set name that does not match, or, with TLS, what Mongoferry's
/// own handshake finds.
pub(crate) async fn refine(role: Role, prepared: &Prepared, err: Error) -> Error {
    if !matches!(
        err,
        Error::ServerSelectionTimeout { .. } | Error::Unreachable { .. }
    ) {
        return err;
    }
    if let Some(m) = set_name_mismatch(role, prepared).await {
        return m;
    }
    if prepared.tls.enabled {
        let timeout = prepared
            .options
            .connect_timeout
            .unwrap_or(Duration::from_secs(10));
        for h in &prepared.options.hosts {
            let p = conn_tls::probe(h, &prepared.tls, timeout).await;
            if let Err(f) = p.outcome {
                return f.into_error(role, &p.host, p.certificate.as_ref());
            }
        }
    }
    err
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

/// After a server selection timeout with `replicaSet` given: asks the
/// first seed directly what its replica set is called. The driver drops
/// servers whose set name differs, so the timeout alone does not say so.
async fn set_name_mismatch(role: Role, prepared: &Prepared) -> Option<Error> {
    let expected = prepared.options.repl_set_name.clone()?;
    let mut opts: ClientOptions = prepared.options.clone();
    opts.hosts.truncate(1);
    opts.repl_set_name = None;
    opts.direct_connection = Some(true);
    // hello needs no login, and a bad password must not hide the answer.
    opts.credential = None;
    let client = Client::with_options(opts).ok()?;
    let hello = client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .ok()?;
    let actual = hello.get_str("setName").ok()?.to_string();
    (actual != expected).then_some(Error::ReplicaSetNameMismatch {
        role,
        expected,
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_is_read_from_hello_and_named_as_it_serializes() {
        let cases = [
            (
                doc! { "msg": "isdbgrid", "setName": "x" },
                Topology::Sharded,
            ),
            (
                doc! { "setName": "rs0", "hosts": ["a:1", "b:2"] },
                Topology::ReplicaSet { name: "rs0".into() },
            ),
            (doc! { "isWritablePrimary": true }, Topology::Standalone),
        ];
        for (hello, expected) in cases {
            let t = Topology::from_hello(&hello);
            assert_eq!(t, expected, "{hello}");
            let json = serde_json::to_value(&t).unwrap_or_default();
            assert_eq!(json["kind"], t.kind(), "{json}");
        }
        let hello = doc! { "hosts": ["a:1", 7, "b:2"] };
        assert_eq!(hello_hosts(&hello, "hosts"), vec!["a:1", "b:2"]);
        assert!(hello_hosts(&hello, "arbiters").is_empty());
    }
}
