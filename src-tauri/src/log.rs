//! The desktop app's logging: stderr (for a terminal that started the
//! app) at `RUST_LOG` (default `info`), and the log of the migration this
//! window drives ([`mongoferry::logfile`]), in the same place and form as
//! the CLI's, with the shell's own events beside the engine's.

use tracing_subscriber::EnvFilter;

pub use mongoferry::logfile::{default_dir, open, MigrationLog};

/// Sets up the process's subscriber; see the module's doc.
pub fn init() {
    mongoferry::logfile::init(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        &format!(
            "{},mongoferry_desktop=info",
            mongoferry::logfile::FILE_FILTER
        ),
    );
}
