//! Throwaway local MongoDB deployments: single-node replica sets of the
//! `mongod` that `scripts/install-mongod.sh` installs, plus a random write
//! load. Used by the integration tests, the benchmark and the GUI's
//! sandbox; never by a real migration.
//!
//! Every `mongod` started here dies with its [`ReplicaSet`] (on drop, on
//! panic, and through `PR_SET_PDEATHSIG` if the whole process dies).

pub mod workload;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bson::doc;
use mongodb::Client;

use crate::error::{Error, Result};

/// Where `scripts/install-mongod.sh` puts mongod, unless `MONGOD` says
/// otherwise.
pub fn mongod_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MONGOD") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("MONGOFERRY_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("mongoferry")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mongoferry")))
        .unwrap_or_else(|| PathBuf::from(".cache/mongoferry"));
    cache.join("mongod-6.0.5/mongod")
}

/// The mongod binary, or an error that says how to install it.
pub fn find_mongod() -> Result<PathBuf> {
    let p = mongod_path();
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::MongodMissing {
            path: p.display().to_string(),
        })
    }
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

/// A single-node replica set on 127.0.0.1 with its data in a temp dir.
pub struct ReplicaSet {
    pub name: String,
    pub port: u16,
    dir: tempfile::TempDir,
    mongod: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl ReplicaSet {
    /// Starts a replica set named `name` and waits until it is PRIMARY.
    pub async fn start(name: &str) -> Result<ReplicaSet> {
        ReplicaSet::start_with(name, &[]).await
    }

    pub async fn start_with(name: &str, extra_args: &[&str]) -> Result<ReplicaSet> {
        let mongod = find_mongod()?;
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
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
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
                "members": [{ "_id": 0, "host": format!("127.0.0.1:{}", rs.port) }],
            } })
            .await;
        if let Err(e) = init {
            return Err(Error::Sandbox {
                message: format!("replSetInitiate failed: {e}"),
            });
        }
        rs.wait_primary().await?;
        Ok(rs)
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
            .args(&self.extra_args)
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

    /// `mongodb://127.0.0.1:PORT/?replicaSet=NAME`
    pub fn uri(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?replicaSet={}",
            self.port, self.name
        )
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
                message: e.to_string(),
            })
    }

    async fn direct_client(&self) -> Result<Client> {
        Client::with_uri_str(format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=2000",
            self.port
        ))
        .await
        .map_err(|e| Error::Sandbox {
            message: e.to_string(),
        })
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let client = self.direct_client().await?;
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
            if let Ok(opts) = client
                .database("admin")
                .run_command(doc! { "getCmdLineOpts": 1 })
                .await
            {
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
            message: format!("mongod on port {} did not answer within 30 s", self.port),
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
    pub async fn start() -> Result<Pair> {
        let (source, destination) = tokio::try_join!(
            ReplicaSet::start("source"),
            ReplicaSet::start("destination")
        )?;
        Ok(Pair {
            source,
            destination,
        })
    }
}
