//! Throwaway local MongoDB deployments: single-node replica sets of the
//! `mongod` that `scripts/install-mongod.sh` installs, plus a random write
//! load. Used by the integration tests, the benchmark and the GUI's
//! sandbox; never by a real migration.
//!
//! Every `mongod` started here dies with its [`ReplicaSet`] (on drop, on
//! panic, and through `PR_SET_PDEATHSIG` if the whole process dies).
//!
//! A replica set may require TLS ([`SandboxTls`]: the caller brings the CA
//! and certificate files) and authentication ([`SandboxAuth`]: a keyFile,
//! and a root user created through the localhost exception before any other
//! client can connect). The sandbox's own administrative client trusts the
//! mongod it spawned without checking its certificate, so tests are free to
//! give servers deliberately wrong certificates.

pub mod install;
pub mod workload;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bson::doc;
use mongodb::options::{ClientOptions, Credential, Tls, TlsOptions};
use mongodb::Client;

use crate::error::{Error, Result};

/// A MongoDB server version the sandbox can start: 6.0 for the sandbox, the
/// demo and most tests; 4.4 and 5.0 as the older sources a migration reads
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MongodVersion {
    V4_4,
    V5_0,
    #[default]
    V6_0,
}

impl MongodVersion {
    pub const ALL: [MongodVersion; 3] = [
        MongodVersion::V4_4,
        MongodVersion::V5_0,
        MongodVersion::V6_0,
    ];

    /// `4.4`, `5.0`, `6.0`: what `scripts/install-mongod.sh` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            MongodVersion::V4_4 => "4.4",
            MongodVersion::V5_0 => "5.0",
            MongodVersion::V6_0 => "6.0",
        }
    }

    pub fn parse(s: &str) -> Option<MongodVersion> {
        MongodVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The variable that overrides where this version's binary is.
    pub fn env_var(self) -> &'static str {
        match self {
            MongodVersion::V4_4 => "MONGOD_44",
            MongodVersion::V5_0 => "MONGOD_50",
            MongodVersion::V6_0 => "MONGOD",
        }
    }

    /// Where `scripts/install-mongod.sh` puts it, in its cache. The older
    /// ones are a wrapper that gives the binary its OpenSSL 1.1.
    fn cached(self) -> &'static str {
        match self {
            MongodVersion::V4_4 => "mongod-4.4.2/run-mongod",
            MongodVersion::V5_0 => "mongod-5.0.4/run-mongod",
            MongodVersion::V6_0 => "mongod-6.0.5/mongod",
        }
    }
}

impl std::fmt::Display for MongodVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where `scripts/install-mongod.sh` puts mongod 6.0, unless `MONGOD` says
/// otherwise.
pub fn mongod_path() -> PathBuf {
    mongod_path_for(MongodVersion::V6_0)
}

/// Where `scripts/install-mongod.sh VERSION` puts that mongod, unless its
/// variable (`MONGOD`, `MONGOD_50`, `MONGOD_44`) says otherwise.
pub fn mongod_path_for(version: MongodVersion) -> PathBuf {
    if let Some(p) = std::env::var_os(version.env_var()) {
        return PathBuf::from(p);
    }
    cache_dir().join(version.cached())
}

/// The cache the install script and [`install`] share:
/// `MONGOFERRY_CACHE`, or `mongoferry` in the XDG cache directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("MONGOFERRY_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("mongoferry")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mongoferry")))
        .unwrap_or_else(|| PathBuf::from(".cache/mongoferry"))
}

/// The mongod 6.0 binary, or an error that says how to get one.
pub fn find_mongod() -> Result<PathBuf> {
    find_mongod_for(MongodVersion::V6_0)
}

/// The mongod binary of `version`, or an error that says how to get one.
/// Its variable wins when set; then the cache; then, for 6.0, a `mongod`
/// on the `PATH` that is 6.0 or newer (an installed MongoDB server).
pub fn find_mongod_for(version: MongodVersion) -> Result<PathBuf> {
    let p = mongod_path_for(version);
    if p.is_file() {
        return Ok(p);
    }
    let set = std::env::var_os(version.env_var()).is_some();
    if !set && version == MongodVersion::V6_0 {
        if let Some(found) = on_path("mongod").filter(|m| runs_at_least(m, 6)) {
            return Ok(found);
        }
    }
    Err(Error::MongodMissing {
        path: p.display().to_string(),
        version: version.as_str().to_string(),
        env_var: version.env_var().to_string(),
    })
}

/// The first executable `name` on the `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether `mongod --version` runs and reports `major` or newer.
fn runs_at_least(mongod: &Path, major: u32) -> bool {
    let Ok(out) = Command::new(mongod).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && server_major(&text).is_some_and(|m| m >= major)
}

/// The major version in `mongod --version`'s "db version v7.0.2".
fn server_major(version_output: &str) -> Option<u32> {
    let rest = version_output.split("db version v").nth(1)?;
    rest.split('.').next()?.trim().parse().ok()
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Sandbox {
            message: format!("no free port: {e}"),
        })
}

/// TLS for a sandbox mongod: `--tlsMode requireTLS` with these files.
#[derive(Debug, Clone)]
pub struct SandboxTls {
    /// PEM of the CA that signed the server's certificate; mongod also
    /// checks client certificates against it.
    pub ca_file: PathBuf,
    /// PEM holding the server's certificate and its unencrypted key.
    pub server_cert_key_file: PathBuf,
    /// Mutual TLS: refuse clients that present no certificate. Otherwise
    /// mongod runs with `--tlsAllowConnectionsWithoutCertificates`.
    pub require_client_certificate: bool,
    /// The certificate and key the sandbox itself presents (needed when
    /// `require_client_certificate` is set).
    pub client_cert_key_file: Option<PathBuf>,
}

/// Access control for a sandbox replica set: `--keyFile` (which implies
/// `--auth`) and one user with the `root` role in `admin`.
#[derive(Clone)]
pub struct SandboxAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SandboxAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxAuth")
            .field("user", &self.user)
            .field("password", &"****")
            .finish()
    }
}

/// How to start a sandbox replica set. The default is what
/// [`ReplicaSet::start`] does: no TLS, no authentication.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Which mongod to run.
    pub version: MongodVersion,
    /// Extra mongod flags.
    pub extra_args: Vec<String>,
    pub tls: Option<SandboxTls>,
    pub auth: Option<SandboxAuth>,
}

/// A single-node replica set on 127.0.0.1 with its data in a temp dir.
pub struct ReplicaSet {
    pub name: String,
    pub port: u16,
    dir: tempfile::TempDir,
    mongod: PathBuf,
    options: SandboxOptions,
    /// Whether the root user exists yet, so the sandbox's own client must
    /// authenticate (the localhost exception has closed).
    user_created: bool,
    child: Option<Child>,
}

impl ReplicaSet {
    /// Starts a replica set named `name` and waits until it is PRIMARY.
    pub async fn start(name: &str) -> Result<ReplicaSet> {
        ReplicaSet::start_with(name, &[]).await
    }

    pub async fn start_with(name: &str, extra_args: &[&str]) -> Result<ReplicaSet> {
        ReplicaSet::start_opts(
            name,
            SandboxOptions {
                extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
                ..SandboxOptions::default()
            },
        )
        .await
    }

    /// Starts a replica set with TLS and/or authentication, waits until it
    /// is PRIMARY and, with authentication, until its root user exists.
    pub async fn start_opts(name: &str, options: SandboxOptions) -> Result<ReplicaSet> {
        let mongod = find_mongod_for(options.version)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("mongoferry-{name}-"))
            .tempdir()
            .map_err(|e| Error::Sandbox {
                message: format!("no temp dir: {e}"),
            })?;
        let mut rs = ReplicaSet {
            name: name.to_string(),
            port: free_port()?,
            dir,
            mongod,
            options,
            user_created: false,
            child: None,
        };
        if rs.options.auth.is_some() {
            rs.write_key_file()?;
        }
        // A port found free can be taken by another mongod (a parallel
        // test) before ours binds it: then ours exits, or the other one
        // answers our ping. Either way, try again on another port.
        let mut attempts = 0;
        loop {
            attempts += 1;
            rs.spawn()?;
            match rs.wait_ready().await {
                Ok(()) => break,
                Err(e) if attempts < 5 => {
                    tracing::debug!(error = %e, port = rs.port, "mongod did not come up; retrying on another port");
                    rs.kill();
                    rs.port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
        let client = rs.direct_client().await?;
        let init = client
            .database("admin")
            .run_command(doc! { "replSetInitiate": {
                "_id": &rs.name,
                "members": [{ "_id": 0, "host": rs.host() }],
            } })
            .await;
        if let Err(e) = init {
            return Err(Error::Sandbox {
                message: format!("replSetInitiate failed: {e}"),
            });
        }
        rs.wait_primary().await?;
        if let Some(auth) = rs.options.auth.clone() {
            // The localhost exception lets this first user be created
            // without credentials; it closes as soon as the user exists.
            client
                .database("admin")
                .run_command(doc! {
                    "createUser": &auth.user,
                    "pwd": &auth.password,
                    "roles": [{ "role": "root", "db": "admin" }],
                })
                .await
                .map_err(|e| Error::Sandbox {
                    message: format!("creating the root user failed: {e}"),
                })?;
            rs.user_created = true;
        }
        Ok(rs)
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("keyfile")
    }

    /// A random keyFile that only its owner may read, as mongod demands.
    fn write_key_file(&self) -> Result<()> {
        use rand::Rng;
        let key: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(64)
            .map(char::from)
            .collect();
        let path = self.key_file();
        std::fs::write(&path, key).map_err(|e| Error::Sandbox {
            message: format!("cannot write the keyFile: {e}"),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).map_err(
                |e| Error::Sandbox {
                    message: format!("cannot restrict the keyFile: {e}"),
                },
            )?;
        }
        Ok(())
    }

    /// The mongod flags for TLS and authentication.
    fn security_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(tls) = &self.options.tls {
            args.extend([
                "--tlsMode".to_string(),
                "requireTLS".to_string(),
                "--tlsCertificateKeyFile".to_string(),
                tls.server_cert_key_file.display().to_string(),
                "--tlsCAFile".to_string(),
                tls.ca_file.display().to_string(),
            ]);
            if !tls.require_client_certificate {
                args.push("--tlsAllowConnectionsWithoutCertificates".to_string());
            }
        }
        if self.options.auth.is_some() {
            args.push("--keyFile".to_string());
            args.push(self.key_file().display().to_string());
        }
        args
    }

    fn spawn(&mut self) -> Result<()> {
        let db = self.dir.path().join("db");
        std::fs::create_dir_all(&db).map_err(|e| Error::Sandbox {
            message: e.to_string(),
        })?;
        let log = self.dir.path().join("mongod.log");
        let mut cmd = Command::new(&self.mongod);
        cmd.arg("--replSet")
            .arg(&self.name)
            .arg("--bind_ip")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dbpath")
            .arg(&db)
            .arg("--logpath")
            .arg(&log)
            .arg("--wiredTigerCacheSizeGB")
            .arg("0.25")
            .arg("--setParameter")
            .arg("diagnosticDataCollectionEnabled=false")
            .args(self.security_args())
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| Error::Sandbox {
            message: format!("{} did not start: {e}", self.mongod.display()),
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// The running `mongod`'s process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `mongodb://127.0.0.1:PORT/?replicaSet=NAME`, plus the root user's
    /// credentials (`authSource=admin`) when the set requires
    /// authentication, and `tls=true` with the CA (and the sandbox's client
    /// certificate) when it requires TLS: a URI that connects as root.
    pub fn uri(&self) -> String {
        let userinfo = match &self.options.auth {
            Some(a) => format!(
                "{}:{}@",
                crate::uri::encode_userinfo(&a.user),
                crate::uri::encode_userinfo(&a.password)
            ),
            None => String::new(),
        };
        self.uri_with(&userinfo, self.options.auth.is_some())
    }

    /// `mongodb://127.0.0.1:PORT/?replicaSet=NAME` with the TLS options of
    /// [`uri`](Self::uri) but no credentials, for tests that log in as
    /// someone else.
    pub fn uri_without_credentials(&self) -> String {
        self.uri_with("", false)
    }

    fn uri_with(&self, userinfo: &str, auth_source: bool) -> String {
        let mut uri = format!(
            "mongodb://{userinfo}{}/?replicaSet={}",
            self.host(),
            self.name
        );
        if auth_source {
            uri.push_str("&authSource=admin");
        }
        uri.push_str(&self.tls_query());
        uri
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn tls_query(&self) -> String {
        let Some(tls) = &self.options.tls else {
            return String::new();
        };
        let mut q = format!(
            "&tls=true&tlsCAFile={}",
            crate::uri::encode_option_value(&tls.ca_file.display().to_string())
        );
        if let Some(cert) = &tls.client_cert_key_file {
            q.push_str(&format!(
                "&tlsCertificateKeyFile={}",
                crate::uri::encode_option_value(&cert.display().to_string())
            ));
        }
        q
    }

    pub fn dbpath(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mongod.log")
    }

    pub async fn client(&self) -> Result<Client> {
        Client::with_uri_str(self.uri())
            .await
            .map_err(|e| Error::Sandbox {
                message: crate::uri::redact_text(&e.to_string()),
            })
    }

    /// A client of this one mongod, whatever the replica set's state.
    async fn direct_client(&self) -> Result<Client> {
        let sandbox_err = |e: mongodb::error::Error| Error::Sandbox {
            message: crate::uri::redact_text(&e.to_string()),
        };
        let mut opts = ClientOptions::parse(format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=2000",
            self.port
        ))
        .await
        .map_err(sandbox_err)?;
        if let Some(tls) = &self.options.tls {
            // The sandbox talks to the mongod it has just spawned on the
            // loopback interface (and checks its dbPath before trusting
            // it), so it need not verify the certificate; that lets tests
            // hand servers deliberately wrong certificates.
            opts.tls = Some(Tls::Enabled(
                TlsOptions::builder()
                    .allow_invalid_certificates(true)
                    .ca_file_path(tls.ca_file.clone())
                    .cert_key_file_path(tls.client_cert_key_file.clone())
                    .build(),
            ));
        }
        if let (Some(auth), true) = (&self.options.auth, self.user_created) {
            opts.credential = Some(
                Credential::builder()
                    .username(auth.user.clone())
                    .password(auth.password.clone())
                    .source("admin".to_string())
                    .build(),
            );
        }
        Client::with_options(opts).map_err(sandbox_err)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let client = self.direct_client().await?;
        let mut last_error = String::new();
        for _ in 0..300 {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                    return Err(Error::Sandbox {
                        message: format!("mongod exited with {status}: {tail}"),
                    });
                }
            }
            // Whoever answers must be our mongod, not another one that
            // took the port first.
            let answer = client
                .database("admin")
                .run_command(doc! { "getCmdLineOpts": 1 })
                .await;
            if let Err(e) = &answer {
                // Before its first user exists, an auth-enabled mongod
                // answers but refuses getCmdLineOpts. It is ours if our
                // own log says that it is listening on this port: two
                // processes cannot both bind it.
                if crate::driver_error::server_code(e) == Some(crate::driver_error::UNAUTHORIZED)
                    && self.log_says_listening()
                {
                    return Ok(());
                }
                last_error = crate::driver_error::redacted_message(e);
            }
            if let Ok(opts) = answer {
                let theirs = opts
                    .get_document("parsed")
                    .and_then(|p| p.get_document("storage"))
                    .and_then(|s| s.get_str("dbPath"))
                    .unwrap_or_default();
                if Path::new(theirs) == self.dbpath() {
                    return Ok(());
                }
                return Err(Error::Sandbox {
                    message: format!("port {} is taken by another mongod", self.port),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Sandbox {
            message: format!(
                "mongod on port {} did not answer within 30 s (last error: {last_error})",
                self.port
            ),
        })
    }

    /// Whether our mongod's log reports it listening on our port.
    fn log_says_listening(&self) -> bool {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines().any(|l| {
            l.contains("\"Waiting for connections\"")
                && l.contains(&format!("\"port\":{}", self.port))
        })
    }

    async fn wait_primary(&self) -> Result<()> {
        let client = self.direct_client().await?;
        for _ in 0..300 {
            if let Ok(h) = client
                .database("admin")
                .run_command(doc! { "hello": 1 })
                .await
            {
                if h.get_bool("isWritablePrimary").unwrap_or(false) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Sandbox {
            message: format!(
                "mongod on port {} did not become PRIMARY within 30 s",
                self.port
            ),
        })
    }

    /// Shuts mongod down cleanly and waits for it to exit.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let waited = tokio::task::spawn_blocking(move || child.wait())
                .await
                .map_err(|e| Error::Sandbox {
                    message: e.to_string(),
                })?;
            waited.map_err(|e| Error::Sandbox {
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Starts mongod again on the same port and data, and waits for PRIMARY.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.spawn()?;
        self.wait_ready().await?;
        self.wait_primary().await
    }
}

impl ReplicaSet {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes the child get SIGKILL when this process dies, however it dies.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// The two replica sets of a sandbox migration.
pub struct Pair {
    pub source: ReplicaSet,
    pub destination: ReplicaSet,
}

impl Pair {
    /// Two replica sets of mongod 6.0.
    pub async fn start() -> Result<Pair> {
        Pair::start_versions(MongodVersion::V6_0, MongodVersion::V6_0).await
    }

    /// A source of one version and a destination of another, started at
    /// once.
    pub async fn start_versions(source: MongodVersion, destination: MongodVersion) -> Result<Pair> {
        let options = |version| SandboxOptions {
            version,
            ..SandboxOptions::default()
        };
        let (source, destination) = tokio::try_join!(
            ReplicaSet::start_opts("source", options(source)),
            ReplicaSet::start_opts("destination", options(destination))
        )?;
        Ok(Pair {
            source,
            destination,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::server_major;

    #[test]
    fn reads_the_major_version_mongod_reports() {
        let out = "db version v7.0.2\nBuild Info: {\n    \"version\": \"7.0.2\"\n}\n";
        assert_eq!(server_major(out), Some(7));
        assert_eq!(server_major("db version v4.4.2\n"), Some(4));
        assert_eq!(
            server_major("mongod: error while loading shared libraries"),
            None
        );
    }
}
