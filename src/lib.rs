//! Mongoferry's migration engine: live migration of a MongoDB deployment
//! to another, with change-stream sync, resume and cutover.
//!
//! # Layout
//! - [`migration`]: the state machine and its control handle (start here).
//! - [`copy`]: planning record-id or `_id` ranges and copying them as raw BSON.
//! - [`apply`]: the change stream and applying events; [`events`] parses
//!   and batches them.
//! - [`catalog`]: namespaces, options and indexes on either side.
//! - [`checkpoint`]: the durable state in the destination's `__mongoferry`.
//! - [`cluster`]: connecting and learning a deployment's shape.
//! - [`connection`]: profiles (secrets in the OS keyring), TLS, testing a
//!   connection, classifying why one failed.
//! - [`scope`]: include/exclude patterns.
//! - [`preflight`]: the compatibility check run before anything is
//!   written: findings (blockers, warnings, infos) with their fixes.
//! - [`progress`]: states, the progress snapshot, events, rates.
//! - [`sharding`]: shard keys and pre-splitting on sharded destinations.
//! - [`retry`]: transient-error classification and backoff.
//! - [`sandbox`]: throwaway local `mongod` replica sets and a write load,
//!   for tests, the benchmark and the demo.
//! - [`uri`]: redacting connection strings.
//!
//! **Architecture Invariant:** this library never imports tauri, axum or
//! clap. The CLI (`src/bin/mongoferry`) and the desktop shell
//! (`src-tauri/`) are thin adapters over [`migration::MigrationHandle`].

pub mod apply;
pub mod catalog;
pub mod checkpoint;
pub mod cluster;
pub mod connection;
pub mod copy;
pub mod error;
pub mod events;
pub mod migration;
pub mod preflight;
pub mod progress;
pub mod retry;
pub mod sandbox;
pub mod scope;
pub mod sharding;
pub mod uri;

pub use error::{Error, ErrorInfo, Result, Role};
pub use migration::{CommitRequest, Migration, MigrationHandle, SyncConfig, Tuning};
pub use progress::{Event, Phase, Progress, State};
pub use scope::{Namespace, Scope};

/// The engine's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
