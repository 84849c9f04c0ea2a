//! Build script of the desktop shell: runs `tauri_build`, which reads
//! `tauri.conf.json` and `capabilities/`, checks them and generates the code
//! `tauri::generate_context!` embeds. It must never build the front end or
//! touch the engine crate: the Tauri CLI's `beforeBuildCommand` builds `ui/`.

/// The app's IPC commands. Listing them makes Tauri generate one
/// `allow-<command>` permission each, so `capabilities/default.json` must
/// name every command the web view may call: none is allowed by default.
const COMMANDS: &[&str] = &[
    "app_info",
    "test_connection",
    "scope_tree",
    "start_sync",
    "watch_migration",
    "migration_progress",
    "pause_migration",
    "resume_migration",
    "commit_migration",
    "find_resumable",
    "resume_remembered",
    "forget_remembered",
    "start_sandbox",
    "stop_sandbox_load",
    "sandbox_info",
    "preflight_check",
    "run_verification",
    "cancel_verification",
    "document_pair",
    "export_verification",
    "list_profiles",
    "save_profile",
];

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .unwrap_or_else(|e| panic!("tauri-build failed: {e:#}"));
}
