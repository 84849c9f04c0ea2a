//! The app's memory of the last migration it started: which clusters and
//! which scope, so that reopening the app can find that migration on the
//! destination and offer to resume it.
//!
//! The file holds a connection string only when it carries no secret (no
//! password, no key password); otherwise it holds the name of the saved
//! profile the string came from, whose secrets stay in the OS keyring. It
//! must never write a credential to disk: a migration whose credentials
//! were typed in rather than taken from a profile is not remembered.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How to reach one side again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "camelCase")]
pub enum Endpoint {
    /// A connection string without secrets.
    Uri(String),
    /// A saved profile, resolved through the keyring when needed.
    Profile(String),
}

impl Endpoint {
    /// The connection string itself where it holds no secret, else the
    /// profile it came from; `None` when neither can be kept.
    pub fn choose(uri: &str, profile: Option<&str>) -> Option<Endpoint> {
        if mongoferry::uri::redact_uri(uri) == uri {
            Some(Endpoint::Uri(uri.to_string()))
        } else {
            profile.map(|p| Endpoint::Profile(p.to_string()))
        }
    }
}

/// What `last-migration.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedMigration {
    pub source: Endpoint,
    pub destination: Endpoint,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl RememberedMigration {
    /// Whether the file can hold it: no endpoint is a connection string
    /// with a secret in it.
    pub fn is_secret_free(&self) -> bool {
        [&self.source, &self.destination].iter().all(|e| match e {
            Endpoint::Uri(u) => mongoferry::uri::redact_uri(u) == *u,
            Endpoint::Profile(_) => true,
        })
    }
}

/// The file in the app's data directory.
#[derive(Debug, Clone)]
pub struct SessionFile {
    path: PathBuf,
}

impl SessionFile {
    pub fn new(dir: &Path) -> SessionFile {
        SessionFile {
            path: dir.join("last-migration.json"),
        }
    }

    /// Remembers `m` if it holds no secret; forgets the previous one
    /// otherwise, so an offer never points at a migration it cannot resume.
    /// Returns whether it was remembered.
    pub fn save(&self, m: &RememberedMigration) -> std::io::Result<bool> {
        if !m.is_secret_free() {
            self.forget()?;
            return Ok(false);
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?;
        // Write then rename, so a crash never leaves half a file behind.
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(true)
    }

    /// The remembered migration; `None` when there is none or the file is
    /// unreadable (an unreadable file is logged and treated as absent).
    pub fn load(&self) -> Option<RememberedMigration> {
        let bytes = std::fs::read(&self.path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(m) => Some(m),
            Err(error) => {
                tracing::warn!(%error, path = %self.path.display(), "ignoring an unreadable last-migration file");
                None
            }
        }
    }

    pub fn forget(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(source: &str) -> RememberedMigration {
        RememberedMigration {
            source: Endpoint::Uri(source.into()),
            destination: Endpoint::Uri("mongodb://127.0.0.1:2/?replicaSet=d".into()),
            include: vec!["shop".into()],
            exclude: vec![],
        }
    }

    #[test]
    fn round_trips_and_forgets() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = SessionFile::new(dir.path());
        assert_eq!(file.load(), None);
        let m = migration("mongodb://127.0.0.1:1/?replicaSet=s");
        assert!(file.save(&m)?);
        assert_eq!(file.load(), Some(m));
        file.forget()?;
        assert_eq!(file.load(), None);
        file.forget()?;
        Ok(())
    }

    #[test]
    fn never_writes_a_password() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = SessionFile::new(dir.path());
        assert!(file.save(&migration("mongodb://127.0.0.1:1/?replicaSet=s"))?);
        let secret = migration("mongodb://alice:hunter2@db1:27017/?replicaSet=s");
        assert!(!file.save(&secret)?);
        assert_eq!(file.load(), None, "the older migration is forgotten too");
        // Credentials from a saved profile: the profile's name is kept.
        let uri = "mongodb://alice:hunter2@db1:27017/?replicaSet=s";
        let from_profile = RememberedMigration {
            source: Endpoint::choose(uri, Some("prod")).expect("kept by profile"),
            ..migration("mongodb://127.0.0.1:1/?replicaSet=s")
        };
        assert_eq!(from_profile.source, Endpoint::Profile("prod".into()));
        assert!(file.save(&from_profile)?);
        assert_eq!(file.load(), Some(from_profile));
        assert_eq!(Endpoint::choose(uri, None), None);
        for entry in std::fs::read_dir(dir.path())? {
            let text = std::fs::read_to_string(entry?.path())?;
            assert!(!text.contains("hunter2"));
        }
        Ok(())
    }
}
