//! The CLI's logging: what `MONGOFERRY_LOG` asks for on stderr, and the
//! log of the migration a `sync` drives ([`mongoferry::logfile`]), in the
//! directory `--log-dir` chooses.

use std::path::{Path, PathBuf};

use mongoferry::logfile::{self, MigrationLog};
use tracing_subscriber::EnvFilter;

/// Sets up the process's subscriber: stderr at `MONGOFERRY_LOG` (default
/// `warn`), and the migration log once [`open`] has been called.
pub fn init() {
    logfile::init(
        EnvFilter::try_from_env("MONGOFERRY_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        logfile::FILE_FILTER,
    );
}

/// The log directory to use, created if missing. Called before connecting,
/// so that an unusable directory stops the sync before it touches either
/// cluster.
pub fn prepare_dir(chosen: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match chosen.or_else(logfile::default_dir) {
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

/// Opens (or appends to) the migration's log in `dir`.
pub fn open(dir: &Path, migration_id: &str) -> anyhow::Result<MigrationLog> {
    logfile::open(dir, migration_id).map_err(|e| {
        anyhow::anyhow!(
            "The migration's log in {} could not be opened: {e}. Pass --log-dir with a writable directory.",
            dir.display()
        )
    })
}
