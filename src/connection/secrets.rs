//! The secrets of connection profiles, in the OS keyring and nowhere else:
//! Secret Service (GNOME Keyring, KWallet) on Linux, the Keychain on macOS,
//! the Credential Manager on Windows, through the `keyring` crate. On Linux
//! the kernel's keyutils store is the alternative for machines without a
//! desktop session (`MONGOFERRY_KEYRING=keyutils`; it does not survive a
//! reboot).
//!
//! Entries are named service `mongoferry`, user `<profile>/<secret kind>`.
//! This module never logs, prints or returns a secret except through
//! [`SecretStore::get`] and [`SecretStore::load`].

use zeroize::Zeroizing;

use super::profile::{SecretKind, Secrets};
use crate::error::{Error, Result};

/// The keyring service name of Mongoferry's entries.
pub const SERVICE: &str = "mongoferry";

/// Which secure store holds the secrets.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The platform's keyring: Secret Service, Keychain, Credential Manager.
    Platform,
    /// The Linux kernel's key store (session and persistent keyrings).
    #[cfg(target_os = "linux")]
    Keyutils,
    /// An in-process map, for unit tests of the code around the keyring.
    #[cfg(test)]
    Memory(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>),
}

/// A handle on the store of profile secrets.
#[derive(Debug, Clone)]
pub struct SecretStore {
    backend: Backend,
    service: String,
}

fn keyring_error(e: keyring::Error) -> Error {
    Error::Keyring {
        detail: e.to_string().trim_end_matches('.').to_string(),
    }
}

impl SecretStore {
    /// The platform keyring.
    pub fn platform() -> SecretStore {
        SecretStore {
            backend: Backend::Platform,
            service: SERVICE.to_string(),
        }
    }

    /// The kernel keyutils store.
    #[cfg(target_os = "linux")]
    pub fn keyutils() -> SecretStore {
        SecretStore {
            backend: Backend::Keyutils,
            service: SERVICE.to_string(),
        }
    }

    #[cfg(test)]
    pub(crate) fn memory() -> SecretStore {
        SecretStore {
            backend: Backend::Memory(Default::default()),
            service: SERVICE.to_string(),
        }
    }

    /// The store `MONGOFERRY_KEYRING` names: `keyutils` (Linux), or the
    /// platform keyring when it is unset or `platform`.
    pub fn from_env() -> Result<SecretStore> {
        SecretStore::named(std::env::var("MONGOFERRY_KEYRING").ok().as_deref())
    }

    /// The store called `name` (`platform`, `keyutils`); `None` is the
    /// platform keyring.
    pub fn named(name: Option<&str>) -> Result<SecretStore> {
        match name {
            None | Some("") | Some("platform") => Ok(SecretStore::platform()),
            #[cfg(target_os = "linux")]
            Some("keyutils") => Ok(SecretStore::keyutils()),
            Some(other) => Err(Error::Keyring {
                detail: format!(
                    "MONGOFERRY_KEYRING is '{}', which names no keyring here (use 'platform'{})",
                    other.escape_debug(),
                    if cfg!(target_os = "linux") {
                        " or 'keyutils'"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }

    /// Uses another service name (tests keep their entries apart).
    pub fn with_service(mut self, service: &str) -> SecretStore {
        self.service = service.to_string();
        self
    }

    /// The keyring service name the entries are filed under.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// `platform` or `keyutils`, for messages.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Platform => "platform",
            #[cfg(target_os = "linux")]
            Backend::Keyutils => "keyutils",
            #[cfg(test)]
            Backend::Memory(_) => "memory",
        }
    }

    fn account(profile: &str, kind: SecretKind) -> String {
        format!("{profile}/{}", kind.id())
    }

    fn entry(&self, account: &str) -> Result<keyring::Entry> {
        match &self.backend {
            Backend::Platform => keyring::Entry::new(&self.service, account).map_err(keyring_error),
            #[cfg(target_os = "linux")]
            Backend::Keyutils => {
                let cred = keyring::keyutils::KeyutilsCredential::new_with_target(
                    None,
                    &self.service,
                    account,
                )
                .map_err(keyring_error)?;
                Ok(keyring::Entry::new_with_credential(Box::new(cred)))
            }
            #[cfg(test)]
            Backend::Memory(_) => unreachable!("the memory back end has no keyring entry"),
        }
    }

    /// Stores one secret.
    pub fn put(&self, profile: &str, kind: SecretKind, value: &str) -> Result<()> {
        let account = Self::account(profile, kind);
        #[cfg(test)]
        if let Backend::Memory(m) = &self.backend {
            m.lock()
                .map_err(|_| Error::Other("poisoned".into()))?
                .insert(format!("{}:{account}", self.service), value.to_string());
            return Ok(());
        }
        match self.entry(&account)?.set_password(value) {
            Ok(()) => {}
            // keyutils says "no entry" when the process has no session
            // keyring to add the key to.
            #[cfg(target_os = "linux")]
            Err(keyring::Error::NoEntry) if matches!(self.backend, Backend::Keyutils) => {
                return Err(Error::Keyring {
                    detail: "the kernel keyutils store has no session keyring for this process (start one with 'keyctl session -')".into(),
                })
            }
            Err(e) => return Err(keyring_error(e)),
        }
        tracing::debug!(
            profile,
            secret = kind.id(),
            backend = self.backend_name(),
            "secret stored"
        );
        Ok(())
    }

    /// Reads one secret; `None` if there is no such entry.
    pub fn get(&self, profile: &str, kind: SecretKind) -> Result<Option<Zeroizing<String>>> {
        let account = Self::account(profile, kind);
        #[cfg(test)]
        if let Backend::Memory(m) = &self.backend {
            return Ok(m
                .lock()
                .map_err(|_| Error::Other("poisoned".into()))?
                .get(&format!("{}:{account}", self.service))
                .map(|v| Zeroizing::new(v.clone())));
        }
        match self.entry(&account)?.get_password() {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(e)),
        }
    }

    /// Removes one secret; a missing entry is not an error.
    pub fn delete(&self, profile: &str, kind: SecretKind) -> Result<()> {
        let account = Self::account(profile, kind);
        #[cfg(test)]
        if let Backend::Memory(m) = &self.backend {
            m.lock()
                .map_err(|_| Error::Other("poisoned".into()))?
                .remove(&format!("{}:{account}", self.service));
            return Ok(());
        }
        match self.entry(&account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(e)),
        }
    }

    /// Stores every secret in `secrets` and removes the profile's other
    /// kinds, so the keyring holds exactly `secrets`.
    pub fn save(&self, profile: &str, secrets: &Secrets) -> Result<()> {
        for kind in SecretKind::ALL {
            match secrets.get(kind) {
                Some(v) => self.put(profile, kind, v)?,
                None => self.delete(profile, kind)?,
            }
        }
        Ok(())
    }

    /// Reads the secrets of the given kinds; a missing one is an error
    /// that says which.
    pub fn load(&self, profile: &str, kinds: &[SecretKind]) -> Result<Secrets> {
        let mut secrets = Secrets::default();
        for &kind in kinds {
            match self.get(profile, kind)? {
                Some(v) => secrets.set(kind, v.as_str()),
                None => {
                    return Err(Error::SecretMissing {
                        profile: profile.to_string(),
                        what: kind.describe().to_string(),
                    })
                }
            }
        }
        Ok(secrets)
    }

    /// Removes every secret of a profile.
    pub fn forget(&self, profile: &str) -> Result<()> {
        for kind in SecretKind::ALL {
            self.delete(profile, kind)?;
        }
        Ok(())
    }

    /// Writes, reads back and deletes a throwaway entry: fails with
    /// `keyring_unavailable` unless the store really works.
    pub fn check(&self) -> Result<()> {
        let probe = format!("__check-{}", uuid::Uuid::new_v4());
        let value = uuid::Uuid::new_v4().to_string();
        self.put(&probe, SecretKind::Password, &value)?;
        let back = self.get(&probe, SecretKind::Password);
        let deleted = self.delete(&probe, SecretKind::Password);
        match back? {
            Some(v) if *v == value => deleted,
            _ => Err(Error::Keyring {
                detail: format!(
                    "the {} keyring did not return what was stored in it",
                    self.backend_name()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_through_a_store() {
        let store = SecretStore::memory();
        let mut s = Secrets::default();
        s.set(SecretKind::Password, "pw");
        s.set(SecretKind::TlsKeyPassword, "kp");
        store.save("prod", &s).expect("save");
        let back = store
            .load("prod", &[SecretKind::Password, SecretKind::TlsKeyPassword])
            .expect("load");
        assert_eq!(back.get(SecretKind::Password), Some("pw"));
        assert_eq!(back.get(SecretKind::TlsKeyPassword), Some("kp"));
        // Saving fewer secrets removes the others.
        s.remove(SecretKind::TlsKeyPassword);
        store.save("prod", &s).expect("save again");
        let e = store
            .load("prod", &[SecretKind::TlsKeyPassword])
            .expect_err("the key password was removed");
        assert_eq!(e.code(), "secret_missing");
        store.forget("prod").expect("forget");
        assert!(store
            .get("prod", SecretKind::Password)
            .expect("get")
            .is_none());
        store.check().expect("the memory store works");
    }

    /// The keyring crate's mock stands in for a keyring that refuses
    /// access: the failure becomes `keyring_unavailable` with a remedy.
    #[test]
    fn keyring_failures_are_classified() {
        let cred = keyring::mock::MockCredential::default();
        let entry = keyring::Entry::new_with_credential(Box::new(cred));
        let mock: &keyring::mock::MockCredential = entry
            .get_credential()
            .downcast_ref()
            .expect("a mock credential");
        mock.set_error(keyring::Error::NoStorageAccess("locked collection".into()));
        let e = keyring_error(entry.get_password().expect_err("the mock fails"));
        assert_eq!(e.code(), "keyring_unavailable");
        assert!(e.to_string().contains("locked collection"), "{e}");
        assert!(e.remedy().contains("gnome-keyring-daemon"));
    }

    #[test]
    fn backends_are_chosen_by_name() {
        assert_eq!(
            SecretStore::named(None).expect("default").backend_name(),
            "platform"
        );
        assert_eq!(
            SecretStore::named(Some("platform"))
                .expect("platform")
                .backend_name(),
            "platform"
        );
        #[cfg(target_os = "linux")]
        assert_eq!(
            SecretStore::named(Some("keyutils"))
                .expect("keyutils")
                .backend_name(),
            "keyutils"
        );
        let e = SecretStore::named(Some("vault")).expect_err("no such keyring");
        assert_eq!(e.code(), "keyring_unavailable");
        assert_eq!(
            SecretStore::account("a b", SecretKind::Password),
            "a b/password"
        );
    }
}
