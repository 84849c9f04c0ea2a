//! The log of a migration, one file per migration, for the front ends
//! (the CLI and the desktop app) to write: JSON lines (tracing-subscriber's
//! JSON format, one event a line) at the info level, in
//! `<data dir>/mongoferry/logs/<migration id>.log` unless the user chooses
//! another directory, appended to when the migration is resumed, so that
//! one file tells one migration's whole story whichever front end drove
//! it: the preflight report, the start, each phase, every warning and
//! retry, pause, resume, commit, the verification and the end.
//!
//! Beside the engine, like [`crate::sandbox`]: nothing in the engine opens
//! a log file; it only emits `tracing` events, with every connection
//! string redacted. This module decides only where the lines go. The
//! subscriber is the process's, set once at start ([`init`]), so the file
//! is switched to a migration's once its id is known
//! ([`crate::Migration::id`], after connecting, before the preflight check)
//! and off when the [`MigrationLog`] is dropped; until then the file layer
//! writes nowhere.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::{MakeWriter, OptionalWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The open migration log's writer and which [`MigrationLog`] opened it;
/// `None` while none is open.
static FILE: RwLock<Option<(u64, NonBlocking)>> = RwLock::new(None);

/// Numbers the logs opened, so that closing one leaves a newer one alone.
static OPENED: AtomicU64 = AtomicU64::new(0);

/// The file layer's writer: the open migration log, or nowhere.
struct CurrentFile;

impl<'a> MakeWriter<'a> for CurrentFile {
    type Writer = OptionalWriter<NonBlocking>;

    fn make_writer(&'a self) -> Self::Writer {
        // A poisoned lock only means a writer panicked mid-swap; the
        // value inside is still a whole `Option`.
        let file = FILE.read().unwrap_or_else(|e| e.into_inner());
        match file.as_ref() {
            Some((_, w)) => OptionalWriter::some(w.clone()),
            None => OptionalWriter::none(),
        }
    }
}

/// What a migration's log holds at least: the engine's story at info; the
/// sandbox (tests, the bench, the demo) and other crates only when they
/// warn. A front end adds its own target.
pub const FILE_FILTER: &str = "warn,mongoferry=info,mongoferry::sandbox=warn";

/// Sets up the process's subscriber: stderr through `stderr_filter`, with
/// colours when `ansi`, and the migration log through `file_filter` once
/// [`open`] has been called.
pub fn init(stderr_filter: EnvFilter, ansi: bool, file_filter: &str) {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter(stderr_filter);
    let file = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(CurrentFile)
        .with_filter(EnvFilter::new(file_filter));
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
}

/// Where migration logs go unless the user says otherwise: the platform's
/// data directory (`~/.local/share/mongoferry/logs` on Linux).
pub fn default_dir() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join("mongoferry").join("logs"))
}

/// A migration's open log. Events go to it until it is dropped (unless a
/// newer one has been opened since); dropping it writes out what is still
/// buffered.
pub struct MigrationLog {
    path: PathBuf,
    number: u64,
    // Dropped after `drop` has switched the writer off: flushes the lines
    // already sent.
    _guard: WorkerGuard,
}

impl MigrationLog {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MigrationLog {
    fn drop(&mut self) {
        let mut file = FILE.write().unwrap_or_else(|e| e.into_inner());
        if file.as_ref().is_some_and(|(n, _)| *n == self.number) {
            *file = None;
        }
    }
}

/// Opens (or appends to) `<dir>/<migration id>.log`, creating `dir`, and
/// sends the file layer's events to it from now on.
pub fn open(dir: &Path, migration_id: &str) -> std::io::Result<MigrationLog> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{migration_id}.log"));
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    // The log names hosts, users and namespaces: it is the user's alone.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path)?;
    // Not lossy: a burst of retries must not drop lines of the story.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("mongoferry-log")
        .finish(file);
    let number = OPENED.fetch_add(1, Ordering::Relaxed) + 1;
    *FILE.write().unwrap_or_else(|e| e.into_inner()) = Some((number, writer));
    Ok(MigrationLog {
        path,
        number,
        _guard: guard,
    })
}
