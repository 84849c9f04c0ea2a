//! The TypeScript declarations of every type that crosses IPC, generated
//! from the Rust types with ts-rs into `ui/src/lib/bindings/`.
//!
//! The files are committed; the test below fails when they are stale, and
//! `UPDATE_BINDINGS=1 cargo test -p mongoferry-desktop bindings` rewrites
//! them. This module must only list types, never define them.

use std::path::Path;

use ts_rs::{Config, ExportError, TS};

use crate::commands::types;

/// Writes the declarations of every IPC type (and the types they use)
/// into `dir`, one file per type.
pub fn export(dir: &Path) -> Result<(), ExportError> {
    // Counts and sizes are u64 in Rust but plain JSON numbers on the wire
    // (serde_json writes them as numbers), so `number`, not `bigint`.
    let cfg = Config::new().with_large_int("number").with_out_dir(dir);
    // Engine types: progress, events, errors, commit options.
    mongoferry::Event::export_all(&cfg)?;
    mongoferry::Progress::export_all(&cfg)?;
    mongoferry::ErrorInfo::export_all(&cfg)?;
    mongoferry::CommitRequest::export_all(&cfg)?;
    // The event source a sync and a preflight check are asked for.
    mongoferry::EventSourceChoice::export_all(&cfg)?;
    // The load a sync is started with and changed to live (`set_load`'s
    // request and answer), and what its reads do to the source.
    mongoferry::LoadSetting::export_all(&cfg)?;
    mongoferry::LoadStatus::export_all(&cfg)?;
    mongoferry::progress::SourceImpact::export_all(&cfg)?;
    // The shell's own requests and responses.
    types::AppInfo::export_all(&cfg)?;
    types::TestConnectionRequest::export_all(&cfg)?;
    mongoferry::ping::PingReport::export_all(&cfg)?;
    mongoferry::preflight::Report::export_all(&cfg)?;
    mongoferry::VerifyProgress::export_all(&cfg)?;
    types::ScopeRequest::export_all(&cfg)?;
    types::ScopeTree::export_all(&cfg)?;
    types::StartSyncRequest::export_all(&cfg)?;
    types::SyncStarted::export_all(&cfg)?;
    types::ResumableMigration::export_all(&cfg)?;
    types::SandboxInfo::export_all(&cfg)?;
    mongoferry::sandbox::install::InstallOffer::export_all(&cfg)?;
    mongoferry::sandbox::install::InstallProgress::export_all(&cfg)?;
    types::PreflightRequest::export_all(&cfg)?;
    types::VerifyRequest::export_all(&cfg)?;
    types::VerificationOutcome::export_all(&cfg)?;
    types::DocumentRequest::export_all(&cfg)?;
    types::DocumentPair::export_all(&cfg)?;
    types::ExportRequest::export_all(&cfg)?;
    types::ProfileSummary::export_all(&cfg)?;
    types::SaveProfileRequest::export_all(&cfg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;

    /// Every `.ts` file under `dir`, by path relative to it (ts-rs puts
    /// the types of other crates in subfolders, such as `serde_json/`).
    fn ts_files(dir: &Path) -> BTreeMap<PathBuf, String> {
        let mut files = BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "ts") {
                    let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                    files.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
                }
            }
        }
        files
    }

    #[test]
    fn bindings_are_up_to_date() -> Result<(), Box<dyn std::error::Error>> {
        let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings");
        let fresh = tempfile::tempdir()?;
        export(fresh.path())?;
        let generated = ts_files(fresh.path());
        assert!(
            generated.contains_key(Path::new("Progress.ts")),
            "nothing was generated"
        );
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            for name in ts_files(&committed).keys() {
                std::fs::remove_file(committed.join(name))?;
            }
            for (name, text) in &generated {
                let path = committed.join(name);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(path, text)?;
            }
            return Ok(());
        }
        assert!(
            generated == ts_files(&committed),
            "ui/src/lib/bindings is stale: the Rust IPC types changed. Regenerate it with \
             `UPDATE_BINDINGS=1 cargo test -p mongoferry-desktop bindings` and commit the result."
        );
        Ok(())
    }
}
