//! The app's memory of the last migration it started: which clusters and
//! which scope, so that reopening the app can find that migration on the
//! destination and offer to resume it.
//!
//! The file holds connection strings only when they carry no secret (no
//! password, no key password): it must never write a credential to disk.
//! A migration started with credentials in its connection strings is not
//! remembered, so the resume offer cannot appear for it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `last-migration.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedMigration {
    pub source_uri: String,
    pub destination_uri: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl RememberedMigration {
    /// Whether the connection strings can be written to disk: redaction
    /// leaves them unchanged only when they hold no secret.
    pub fn is_secret_free(&self) -> bool {
        [&self.source_uri, &self.destination_uri]
            .iter()
            .all(|u| mongoferry::uri::redact_uri(u) == **u)
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
            source_uri: source.into(),
            destination_uri: "mongodb://127.0.0.1:2/?replicaSet=d".into(),
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
        for entry in std::fs::read_dir(dir.path())? {
            let text = std::fs::read_to_string(entry?.path())?;
            assert!(!text.contains("hunter2"));
        }
        Ok(())
    }
}
