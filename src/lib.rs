//! Mongoferry's migration engine: live migration of a MongoDB deployment
//! to another, with change-stream sync, resume and cutover.
//!
//! # Layout
//! The modules stand on floors: each imports only from its own floor and
//! those below, and none imports another in a loop (`tests/tidy.rs`
//! enforces both against the table in `ARCHITECTURE.md`). Bottom up:
//!
//! 0. Words, plain data with no I/O: [`uri`] (redacting connection
//!    strings), [`driver_error`] (what a driver error says), [`error`],
//!    and what the engine reports: [`progress`], [`preflight::report`],
//!    [`verify::report`]; [`load`] (the load levels and what they allow).
//! 1. Rules: [`scope`] (include/exclude patterns), [`retry`] (backoff),
//!    [`events`] (parsing and collapsing change events), [`throttle`]
//!    (holding the copy to a load level, changed live),
//!    [`impact::figures`] (the source's health from what it reports) and
//!    [`impact::control`] (the adaptive mode's controller).
//! 2. [`connection`]: profiles (secrets in the OS keyring), TLS, why a
//!    connection failed.
//! 3. [`cluster`] (a connected deployment, its topology and clock) and
//!    [`ping`] (testing a connection).
//! 4. On a cluster: [`catalog`] (namespaces, options, indexes),
//!    [`checkpoint`] (the durable state in `__mongoferry`), [`oplog`]
//!    (reading a replica set's oplog), [`sharding`].
//! 5. A running migration: [`tracker`] (progress, rates, events) and
//!    [`context`] (what its tasks share, the pause gate, the controls).
//! 6. The work: [`copy`], [`apply`], [`verify`], and [`impact`] (watching
//!    the source's health, adapting the copy to it).
//! 7. [`preflight`]: the compatibility check, run before anything is
//!    written.
//! 8. [`migration`]: the state machine and its control handle (start
//!    here).
//! 9. Beside the engine: [`sandbox`], throwaway local `mongod` replica
//!    sets and a write load for tests, the benchmark and the demo; and
//!    [`logfile`], the per-migration log file both front ends write.
//!
//! **Architecture Invariant:** this library never imports tauri, axum or
//! clap. The CLI (`src/bin/mongoferry`) and the desktop shell
//! (`src-tauri/`) are thin adapters over [`migration::MigrationHandle`].

// In floor order, bottom up.
pub mod driver_error;
pub mod error;
pub mod load;
pub mod progress;
pub mod uri;

pub mod events;
pub mod retry;
pub mod scope;
pub mod throttle;

pub mod connection;

pub mod cluster;
pub mod ping;

pub mod catalog;
pub mod checkpoint;
pub mod oplog;
pub mod sharding;

pub mod context;
pub mod tracker;

pub mod apply;
pub mod copy;
pub mod impact;
pub mod verify;

pub mod preflight;

pub mod migration;

pub mod logfile;
pub mod sandbox;

pub use context::{CommitRequest, CommitVerify, EventSourceChoice, Tuning};
pub use error::{Error, ErrorInfo, Result, Role};
pub use load::{LoadLevel, LoadSetting, LoadStatus};
pub use migration::{Migration, MigrationHandle, SyncConfig};
pub use progress::{
    DirectionMapping, Event, EventSource, Phase, Progress, State, VerificationState,
    VerifyProgress, CLUSTER_NAMES,
};
pub use scope::{Namespace, Scope};

/// The engine's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
