//! The CLI's logging: what `MONGOFERRY_LOG` asks for on stderr, and the
//! log of the migration a `sync` drives, one file per migration.
//!
//! The migration's log is JSON lines (tracing-subscriber's JSON format,
//! one event a line) at the info level, named by the migration's id
//! ([`mongoferry::Migration::id`]) and appended to when the migration is
//! resumed, so that one file tells the whole story of one migration: the
//! preflight report, the start, each phase, every warning and retry, pause,
//! resume, commit, the verification and the end. The engine redacts every
//! connection string it logs; this file decides only where the lines go.
//! The subscriber is the process's, set once at start, so the file is
//! switched on once the id is known (after connecting, before the
//! preflight check) and off when the sync ends; until then the file layer
//! writes nowhere.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::{MakeWriter, OptionalWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What the migration's log holds: the engine's story at info, the
/// sandbox (tests, the bench, the demo) and other crates only when they
/// warn.
const FILE_FILTER: &str = "warn,mongoferry=info,mongoferry::sandbox=warn";

/// The open migration log's writer; `None` while no sync has opened one.
static FILE: RwLock<Option<NonBlocking>> = RwLock::new(None);

/// The file layer's writer: the open migration log, or nowhere.
struct CurrentFile;

impl<'a> MakeWriter<'a> for CurrentFile {
    type Writer = OptionalWriter<NonBlocking>;

    fn make_writer(&'a self) -> Self::Writer {
        // A poisoned lock only means a writer panicked mid-swap; the
        // value inside is still a whole `Option`.
        let file = FILE.read().unwrap_or_else(|e| e.into_inner());
        match file.as_ref() {
            Some(w) => OptionalWriter::some(w.clone()),
            None => OptionalWriter::none(),
        }
    }
}

/// Sets up the process's subscriber: stderr at `MONGOFERRY_LOG` (default
/// `warn`), and the migration log once [`open`] has been called.
pub fn init() {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(
            EnvFilter::try_from_env("MONGOFERRY_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        );
    let file = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(CurrentFile)
        .with_filter(EnvFilter::new(FILE_FILTER));
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
}

/// Where migration logs go without `--log-dir`: the platform's data
/// directory (`~/.local/share/mongoferry/logs` on Linux).
pub fn default_dir() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join("mongoferry").join("logs"))
}

/// The log directory to use, created if missing. Called before connecting,
/// so that an unusable directory stops the sync before it touches either
/// cluster.
pub fn prepare_dir(chosen: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match chosen.or_else(default_dir) {
        Some(dir) => dir,
        None => anyhow::bail!(
            "This machine has no data directory for the migration's log (HOME is not set). Pass --log-dir with a writable directory."
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        anyhow::anyhow!(
            "The log directory {} could not be created: {e}. Pass --log-dir with a writable directory.",
            dir.display()
        )
    })?;
    Ok(dir)
}

/// A migration's open log. Events go to it until it is dropped, which
/// writes out what is still buffered.
pub struct MigrationLog {
    path: PathBuf,
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
        FILE.write().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Opens (or appends to) `<dir>/<migration id>.log` and sends the file
/// layer's events to it from now on.
pub fn open(dir: &Path, migration_id: &str) -> anyhow::Result<MigrationLog> {
    let path = dir.join(format!("{migration_id}.log"));
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    // The log names hosts, users and namespaces: it is the user's alone.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(|e| {
        anyhow::anyhow!(
            "The migration's log {} could not be opened: {e}. Pass --log-dir with a writable directory.",
            path.display()
        )
    })?;
    // Not lossy: a burst of retries must not drop lines of the story.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("mongoferry-log")
        .finish(file);
    *FILE.write().unwrap_or_else(|e| e.into_inner()) = Some(writer);
    Ok(MigrationLog {
        path,
        _guard: guard,
    })
}
