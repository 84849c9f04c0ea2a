//! Saved connection profiles: one JSON file, `profiles.json`, in the
//! platform config directory (`MONGOFERRY_CONFIG_DIR` overrides it), with
//! the profiles' secrets in the OS keyring ([`SecretStore`]).
//!
//! The file never holds a secret: profiles record only which secrets they
//! have. Resolving a profile reads its secrets and builds the full
//! connection string in memory, for the engine, which takes connection
//! strings.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::profile::{Profile, Secrets};
use super::secrets::SecretStore;
use crate::error::{Error, Result};

const FILE: &str = "profiles.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ProfileFile {
    version: u32,
    profiles: Vec<Profile>,
}

/// The platform config directory for Mongoferry, or `MONGOFERRY_CONFIG_DIR`.
pub fn default_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("MONGOFERRY_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::config_dir()
        .map(|d| d.join("mongoferry"))
        .ok_or_else(|| Error::ProfileStore {
            path: "(no config directory)".into(),
            action: "located".into(),
            detail: "this platform reports no configuration directory; set MONGOFERRY_CONFIG_DIR"
                .into(),
        })
}

/// Saved profiles and their keyring.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    dir: PathBuf,
    secrets: SecretStore,
}

/// A profile made ready to connect: the profile, and its full connection
/// string (secrets included, in memory only).
#[derive(Debug)]
pub struct Resolved {
    pub profile: Profile,
    pub uri: SecretUri,
}

impl ProfileStore {
    pub fn new(dir: impl Into<PathBuf>, secrets: SecretStore) -> ProfileStore {
        ProfileStore {
            dir: dir.into(),
            secrets,
        }
    }

    /// The default directory and the keyring `MONGOFERRY_KEYRING` names.
    pub fn open_default() -> Result<ProfileStore> {
        Ok(ProfileStore::new(default_dir()?, SecretStore::from_env()?))
    }

    /// The profiles file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    fn store_error(&self, action: &str, detail: impl ToString) -> Error {
        Error::ProfileStore {
            path: self.path().display().to_string(),
            action: action.to_string(),
            detail: detail.to_string(),
        }
    }

    fn read(&self) -> Result<ProfileFile> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProfileFile {
                    version: FORMAT_VERSION,
                    profiles: Vec::new(),
                })
            }
            Err(e) => return Err(self.store_error("read", e)),
        };
        let file: ProfileFile =
            serde_json::from_str(&text).map_err(|e| self.store_error("read", e))?;
        if file.version > FORMAT_VERSION {
            return Err(self.store_error(
                "read",
                format!(
                    "the file is format {}, newer than this Mongoferry knows ({FORMAT_VERSION})",
                    file.version
                ),
            ));
        }
        Ok(file)
    }

    /// Writes the whole file through a temporary file and a rename, so a
    /// crash leaves the old file or the new one, never half of either.
    fn write(&self, mut file: ProfileFile) -> Result<()> {
        file.version = FORMAT_VERSION;
        file.profiles.sort_by(|a, b| a.name.cmp(&b.name));
        std::fs::create_dir_all(&self.dir).map_err(|e| self.store_error("written", e))?;
        let json = serde_json::to_vec_pretty(&file).map_err(|e| self.store_error("written", e))?;
        let tmp = self.dir.join(format!("{FILE}.{}.tmp", std::process::id()));
        write_private(&tmp, &json).map_err(|e| self.store_error("written", e))?;
        std::fs::rename(&tmp, self.path()).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.store_error("written", e)
        })
    }

    /// Every saved profile, by name.
    pub fn list(&self) -> Result<Vec<Profile>> {
        Ok(self.read()?.profiles)
    }

    pub fn get(&self, name: &str) -> Result<Profile> {
        self.read()?
            .profiles
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::ProfileNotFound {
                name: name.to_string(),
            })
    }

    /// Saves a profile and its secrets (the secrets first, so that a
    /// keyring failure leaves no profile pointing at missing secrets).
    /// Fails with `profile_exists` unless `replace`.
    pub fn save(&self, profile: &Profile, secrets: &Secrets, replace: bool) -> Result<()> {
        let mut profile = profile.clone();
        profile.secrets = secrets.kinds();
        // A profile may come from a form rather than a parsed string: the
        // driver's parser checks it too.
        profile.validate()?;
        profile.check_with_driver(secrets)?;
        let mut file = self.read()?;
        let existing = file.profiles.iter().position(|p| p.name == profile.name);
        if existing.is_some() && !replace {
            return Err(Error::ProfileExists { name: profile.name });
        }
        self.secrets.save(&profile.name, secrets)?;
        match existing {
            Some(i) => file.profiles[i] = profile.clone(),
            None => file.profiles.push(profile.clone()),
        }
        self.write(file)?;
        tracing::info!(profile = %profile.name, secrets = profile.secrets.len(), "profile saved");
        Ok(())
    }

    /// Parses `uri` into a profile named `name` and saves it.
    pub fn add_uri(&self, name: &str, uri: &str, replace: bool) -> Result<Profile> {
        let (profile, secrets) = Profile::parse(name, uri)?;
        self.save(&profile, &secrets, replace)?;
        self.get(name)
    }

    /// Removes a profile and its secrets.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut file = self.read()?;
        let before = file.profiles.len();
        file.profiles.retain(|p| p.name != name);
        if file.profiles.len() == before {
            return Err(Error::ProfileNotFound {
                name: name.to_string(),
            });
        }
        self.secrets.forget(name)?;
        self.write(file)
    }

    /// The profile and its secrets from the keyring.
    pub fn load(&self, name: &str) -> Result<(Profile, Secrets)> {
        let profile = self.get(name)?;
        let secrets = self.secrets.load(name, &profile.secrets)?;
        Ok((profile, secrets))
    }

    /// The profile's full connection string, built in memory.
    pub fn resolve(&self, name: &str) -> Result<Resolved> {
        let (profile, secrets) = self.load(name)?;
        let uri = SecretUri::new(profile.to_uri(&secrets));
        Ok(Resolved { profile, uri })
    }
}

/// Creates `path` readable by its owner only (the file holds no secret,
/// but it maps out the user's databases).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A full connection string, secrets included. `Debug` and `Display` show
/// it redacted; [`expose`](Self::expose) hands it to the engine.
#[derive(Clone)]
pub struct SecretUri(Zeroizing<String>);

impl SecretUri {
    pub fn new(uri: String) -> SecretUri {
        SecretUri(Zeroizing::new(uri))
    }

    /// The connection string itself, for the driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUri({})", crate::uri::redact_uri(&self.0))
    }
}

impl fmt::Display for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::uri::redact_uri(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::profile::SecretKind;

    fn store() -> (tempfile::TempDir, ProfileStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = ProfileStore::new(dir.path(), SecretStore::memory());
        (dir, s)
    }

    #[test]
    fn profiles_are_saved_listed_resolved_and_removed() {
        let (_dir, store) = store();
        assert!(store.list().expect("empty list").is_empty());
        let uri = "mongodb://alice:Pa55-word@db1:27017/?replicaSet=rs0&authSource=admin";
        let p = store.add_uri("prod", uri, false).expect("add");
        assert_eq!(p.secrets, vec![SecretKind::Password]);
        store
            .add_uri("dev", "mongodb://localhost", false)
            .expect("add dev");
        let names: Vec<String> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["dev", "prod"]);

        let file = std::fs::read_to_string(store.path()).expect("profiles file");
        assert!(!file.contains("Pa55-word"), "{file}");
        assert!(file.contains("alice"));

        assert_eq!(store.resolve("prod").expect("resolve").uri.expose(), uri);
        let e = store
            .add_uri("prod", "mongodb://other", false)
            .expect_err("exists");
        assert_eq!(e.code(), "profile_exists");
        store
            .add_uri("prod", "mongodb://other", true)
            .expect("replace");
        assert_eq!(
            store.resolve("prod").expect("resolve").uri.expose(),
            "mongodb://other"
        );
        assert!(store
            .secrets()
            .get("prod", SecretKind::Password)
            .expect("get")
            .is_none());

        store.remove("prod").expect("remove");
        assert_eq!(
            store.get("prod").expect_err("gone").code(),
            "profile_not_found"
        );
        assert_eq!(
            store.remove("prod").expect_err("gone").code(),
            "profile_not_found"
        );
    }

    #[test]
    fn a_missing_secret_is_reported() {
        let (_dir, store) = store();
        store
            .add_uri("x", "mongodb://u:p@h/?authSource=admin", false)
            .expect("add");
        store
            .secrets()
            .delete("x", SecretKind::Password)
            .expect("delete");
        let e = store.resolve("x").expect_err("no password");
        assert_eq!(e.code(), "secret_missing");
        assert!(e.to_string().contains("password"));
    }

    #[test]
    fn a_corrupt_or_newer_file_is_an_error() {
        let (dir, store) = store();
        std::fs::write(dir.path().join(FILE), "{not json").expect("write");
        assert_eq!(
            store.list().expect_err("corrupt").code(),
            "profile_store_failed"
        );
        std::fs::write(dir.path().join(FILE), r#"{"version": 99, "profiles": []}"#).expect("write");
        assert!(store
            .list()
            .expect_err("newer")
            .to_string()
            .contains("newer"));
    }

    #[test]
    fn secret_uris_print_redacted() {
        let u = SecretUri::new("mongodb://a:hunter2@h/?tlsCertificateKeyFilePassword=xyz".into());
        let shown = format!("{u} {u:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("xyz"),
            "{shown}"
        );
        assert!(u.expose().contains("hunter2"));
    }
}
