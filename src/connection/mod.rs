//! Connections to clusters, as a user sets them up: saved profiles whose
//! secrets live only in the OS keyring, TLS (rustls, verified by default),
//! every authentication mechanism the driver supports, a test-connection
//! call, and failures classified into a sentence and a remedy.
//!
//! # Layout
//! - [`profile`]: a profile's fields, parsed from and built back into a
//!   connection string; secrets split off at parse time.
//! - [`secrets`]: the keyring (Secret Service, Keychain, Credential
//!   Manager, keyutils).
//! - [`store`]: profiles on disk, without secrets; resolving one into a
//!   connection string in memory.
//! - [`tls`]: TLS settings, and Mongoferry's own handshake that reads the
//!   server's certificate.
//! - [`classify`]: why a connection failed.
//!
//! Testing a connection ([`crate::ping`]) connects through
//! [`crate::cluster`], which uses this module: it lives a floor above.
//!
//! **Architecture Invariant:** the engine takes connection strings
//! ([`crate::SyncConfig`]); a profile becomes one only in memory, through
//! [`store::ProfileStore::resolve`], as a [`SecretUri`] that never prints
//! its secrets. Nothing here writes a secret anywhere but the keyring.

pub mod classify;
pub mod profile;
pub mod secrets;
pub mod store;
pub mod tls;

pub use profile::{AuthMechanism, Profile, SecretKind, Secrets, TlsMode, TlsProfile};
pub use secrets::SecretStore;
pub use store::{ProfileStore, SecretUri};
pub use tls::{tls_warnings, ConnectionWarning};
