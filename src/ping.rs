//! Testing a connection: one call that reports whether the cluster answers,
//! its topology (replica set name and members, sharded, standalone), server
//! version and feature compatibility version, who the connection is
//! authenticated as and with which roles, TLS in use with the server
//! certificate's subject and expiry, and the round-trip time; or, when it
//! fails, the classified reason with a remedy.
//!
//! It reads only; it never writes to the cluster, and its report carries
//! the connection string redacted.

use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongodb::Client;
use serde::{Deserialize, Serialize};

use crate::cluster::{hello_hosts, prepare, Prepared, Topology};
use crate::connection::classify::{self, Context};
use crate::connection::tls::{
    self, tls_warnings, ConnectionWarning, PeerCertificate, Verification,
};
use crate::error::{Error, ErrorInfo, Role};
use crate::uri::{hosts_of, redact_uri};

/// How long a ping may wait.
#[derive(Debug, Clone)]
pub struct PingOptions {
    /// For each of connecting, the TLS handshake and server selection.
    pub timeout: Duration,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            timeout: Duration::from_secs(10),
        }
    }
}

/// A replica set member as the cluster reports it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub host: String,
    /// `PRIMARY`, `SECONDARY`, `ARBITER`... (`None` when the user may not
    /// read the replica set status).
    pub state: Option<String>,
}

/// What kind of deployment answered.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TopologyInfo {
    /// `standalone`, `replicaSet` or `sharded`.
    pub kind: String,
    pub set_name: Option<String>,
    pub primary: Option<String>,
    pub members: Vec<Member>,
}

/// TLS as the connection uses it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsReport {
    pub enabled: bool,
    /// How much of the server's certificate is checked.
    pub verification: Verification,
    /// The certificate the server presented (read by Mongoferry's own
    /// handshake with the first server that answered).
    pub peer_certificate: Option<PeerCertificate>,
    /// The server whose certificate that is.
    pub peer: Option<String>,
}

/// Who the connection is logged in as.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthReport {
    /// `user@db`
    pub users: Vec<String>,
    /// `role@db`
    pub roles: Vec<String>,
}

/// The outcome of testing a connection.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PingReport {
    pub role: Role,
    /// Whether everything below could be read.
    pub ok: bool,
    /// The connection string, redacted.
    pub uri: String,
    /// Whether a server answered at all (false for DNS, refused, timeout).
    pub reachable: bool,
    pub round_trip_ms: Option<f64>,
    pub topology: Option<TopologyInfo>,
    pub server_version: Option<String>,
    pub feature_compatibility_version: Option<String>,
    pub authentication: Option<AuthReport>,
    pub tls: TlsReport,
    /// Whether a setting makes the connection unsafe (see `warnings`).
    pub insecure: bool,
    pub warnings: Vec<ConnectionWarning>,
    pub error: Option<ErrorInfo>,
}

impl PingReport {
    fn new(role: Role, uri: &str) -> PingReport {
        PingReport {
            role,
            ok: false,
            uri: redact_uri(uri),
            reachable: false,
            round_trip_ms: None,
            topology: None,
            server_version: None,
            feature_compatibility_version: None,
            authentication: None,
            tls: TlsReport {
                enabled: false,
                verification: Verification::Off,
                peer_certificate: None,
                peer: None,
            },
            insecure: false,
            warnings: Vec::new(),
            error: None,
        }
    }

    fn fail(mut self, e: Error) -> PingReport {
        tracing::debug!(code = e.code(), "ping failed: {e}");
        self.ok = false;
        self.error = Some(e.info());
        self
    }
}

/// Whether an error means that no server answered.
fn unreachable_error(e: &Error) -> bool {
    matches!(
        e,
        Error::DnsFailure { .. }
            | Error::ConnectionRefused { .. }
            | Error::ConnectTimeout { .. }
            | Error::Unreachable { .. }
            | Error::ServerSelectionTimeout { .. }
    )
}

/// Tests the connection `uri` for `role`. Always returns a report; a
/// failure is in its `error`, classified.
pub async fn ping(role: Role, uri: &str, options: &PingOptions) -> PingReport {
    let mut report = PingReport::new(role, uri);
    let mut prepared = match prepare(role, uri).await {
        Ok(p) => p,
        Err(e) => return report.fail(e),
    };
    prepared.options.server_selection_timeout = Some(options.timeout);
    prepared.options.connect_timeout = Some(options.timeout);
    prepared.options.max_pool_size = Some(2);
    let hosts = hosts_of(uri);
    let seeds = prepared.hosts();
    report.tls.enabled = prepared.tls.enabled;
    report.tls.verification = prepared.tls.verification();
    report.warnings = tls_warnings(&prepared.tls, &seeds);
    report.insecure = report.warnings.iter().any(|w| w.unsafe_setting);

    if prepared.tls.enabled {
        if let Err(e) = tls_handshakes(role, &prepared, options.timeout, &mut report).await {
            report.reachable = !unreachable_error(&e);
            return report.fail(e);
        }
    }

    let ctx = prepared.context(role, &hosts);
    let client = match Client::with_options(prepared.options.clone()) {
        Ok(c) => c,
        Err(e) => return report.fail(classify::classify(&ctx, "connect", &e)),
    };
    let report = interrogate(&prepared, ctx, &client, report).await;
    crate::cluster::close_client(&client).await;
    report
}

/// The questions a ping asks over a connected `client`.
async fn interrogate(
    prepared: &Prepared,
    ctx: Context<'_>,
    client: &Client,
    mut report: PingReport,
) -> PingReport {
    let admin = client.database("admin");
    let hello = match admin.run_command(doc! { "hello": 1 }).await {
        Ok(h) => h,
        Err(e) => {
            let err =
                crate::cluster::refine(ctx.role, prepared, classify::classify(&ctx, "connect", &e))
                    .await;
            report.reachable = !unreachable_error(&err);
            return report.fail(err);
        }
    };
    report.reachable = true;
    report.round_trip_ms = Some(round_trip(client).await);

    // Who we are first: it names the user in a "not authorized" error.
    let status = admin
        .run_command(doc! { "connectionStatus": 1 })
        .await
        .map_err(|e| classify::classify(&ctx, "report who it is logged in as", &e));
    let auth = match status {
        Ok(s) => auth_report(&s),
        Err(e) => return report.fail(e),
    };
    let user = auth.users.first().cloned();
    let ctx = Context {
        user: user.as_deref().or(ctx.user),
        ..ctx
    };
    report.authentication = Some(auth);

    report.topology = Some(topology(client, &hello).await);
    match admin.run_command(doc! { "buildInfo": 1 }).await {
        Ok(b) => report.server_version = b.get_str("version").ok().map(str::to_string),
        Err(e) => {
            return report.fail(classify::classify(
                &ctx,
                "report its version (buildInfo)",
                &e,
            ))
        }
    }
    match admin
        .run_command(doc! { "getParameter": 1, "featureCompatibilityVersion": 1 })
        .await
    {
        Ok(r) => {
            report.feature_compatibility_version = r
                .get_document("featureCompatibilityVersion")
                .ok()
                .and_then(|f| f.get_str("version").ok())
                .map(str::to_string)
        }
        Err(e) => {
            return report.fail(classify::classify(
                &ctx,
                "read the feature compatibility version (getParameter, granted by clusterMonitor)",
                &e,
            ))
        }
    }
    report.ok = true;
    report
}

/// Mongoferry's own handshake with each seed host: the certificate of the
/// first that answers goes in the report; if none answers, the first
/// failure is the error.
async fn tls_handshakes(
    role: Role,
    prepared: &Prepared,
    timeout: Duration,
    report: &mut PingReport,
) -> Result<(), Error> {
    let probes = futures_util::future::join_all(
        prepared
            .options
            .hosts
            .iter()
            .map(|h| tls::probe(h, &prepared.tls, timeout)),
    )
    .await;
    let mut first_failure = None;
    for p in probes {
        match p.outcome {
            Ok(()) => {
                if report.tls.peer_certificate.is_none() {
                    report.tls.peer_certificate = p.certificate;
                    report.tls.peer = Some(p.host);
                }
            }
            Err(f) => {
                if first_failure.is_none() {
                    first_failure = Some(f.into_error(role, &p.host, p.certificate.as_ref()));
                }
            }
        }
    }
    match (report.tls.peer_certificate.is_some(), first_failure) {
        (false, Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The smallest of three `ping` round trips on a warm connection, in ms.
async fn round_trip(client: &Client) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        if client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .is_ok()
        {
            best = best.min(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    if best == f64::MAX {
        0.0
    } else {
        (best * 1000.0).round() / 1000.0
    }
}

fn auth_report(status: &Document) -> AuthReport {
    let info = status.get_document("authInfo").ok();
    let list = |field: &str, name: &str| -> Vec<String> {
        info.and_then(|i| i.get_array(field).ok())
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_document())
                    .map(|u| {
                        format!(
                            "{}@{}",
                            u.get_str(name).unwrap_or("?"),
                            u.get_str("db").unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    AuthReport {
        users: list("authenticatedUsers", "user"),
        roles: list("authenticatedUserRoles", "role"),
    }
}

async fn topology(client: &Client, hello: &Document) -> TopologyInfo {
    let shape = Topology::from_hello(hello);
    let kind = shape.kind().to_string();
    let Topology::ReplicaSet { name: set_name } = shape else {
        return TopologyInfo {
            kind,
            set_name: None,
            primary: None,
            members: Vec::new(),
        };
    };
    let primary = hello.get_str("primary").ok().map(str::to_string);
    // replSetGetStatus needs clusterMonitor; without it, hello's lists
    // still name the members, if not their states.
    let members = match client
        .database("admin")
        .run_command(doc! { "replSetGetStatus": 1 })
        .await
    {
        Ok(status) => status
            .get_array("members")
            .map(|m| {
                m.iter()
                    .filter_map(|m| m.as_document())
                    .map(|m| Member {
                        host: m.get_str("name").unwrap_or("?").to_string(),
                        state: m.get_str("stateStr").ok().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            tracing::debug!(
                "replSetGetStatus refused ({}); listing members from hello",
                crate::driver_error::message(&e)
            );
            let mut members = Vec::new();
            for (field, state) in [
                ("hosts", None),
                ("passives", Some("PASSIVE")),
                ("arbiters", Some("ARBITER")),
            ] {
                for h in hello_hosts(hello, field) {
                    let state = if primary.as_deref() == Some(h) {
                        Some("PRIMARY".to_string())
                    } else {
                        state.map(str::to_string)
                    };
                    members.push(Member {
                        host: h.to_string(),
                        state,
                    });
                }
            }
            members
        }
    };
    TopologyInfo {
        kind,
        set_name: Some(set_name),
        primary,
        members,
    }
}
