//! The Mongoferry desktop shell: builds the Tauri application (window,
//! plugins, IPC command table, app state) and runs it. The shell is a thin
//! adapter: every migration decision lives in the `mongoferry` engine
//! crate, and code here must never copy, sync, verify or cut over data
//! itself; it only translates between the web view and the engine.
//!
//! # Layout
//! - [`commands`]: the `#[tauri::command]` functions and their IPC types.
//! - [`state`]: what lives between calls (running migration, sandbox).
//! - [`ops`]: stateless engine calls (connection test, scope tree).
//! - [`progress`]: throttled forwarding of engine events to a channel.
//! - [`profiles`]: saved connection profiles (secrets in the OS keyring).
//! - [`session`]: remembering the last migration for the resume offer.
//! - [`log`]: the process's logging, and each migration's log file.
//! - [`bindings`]: TypeScript declarations of the IPC types.

pub mod bindings;
pub mod commands;
pub mod error;
pub mod log;
pub mod ops;
pub mod profiles;
pub mod progress;
pub mod session;
pub mod state;

use tauri::Manager;

pub use commands::types::AppInfo;

/// Builds the Tauri app and runs its event loop until the last window closes.
///
/// # Errors
///
/// Returns the Tauri error if the app cannot start (for example no display,
/// or the web view fails to initialise) or its event loop fails.
pub fn run() -> Result<(), tauri::Error> {
    tracing::info!(version = mongoferry::VERSION, "starting Mongoferry desktop");
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .setup(|app| {
            let data_dir = app.path().app_data_dir()?;
            app.manage(state::AppState::new(session::SessionFile::new(&data_dir)));
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::test_connection,
            commands::scope_tree,
            commands::start_sync,
            commands::watch_migration,
            commands::pause_migration,
            commands::resume_migration,
            commands::set_load,
            commands::commit_migration,
            commands::reverse_migration,
            commands::find_resumable,
            commands::resume_remembered,
            commands::forget_remembered,
            commands::start_sandbox,
            commands::stop_sandbox_load,
            commands::mongod_offer,
            commands::install_mongod,
            commands::preflight_check,
            commands::run_verification,
            commands::cancel_verification,
            commands::document_pair,
            commands::export_verification,
            commands::list_profiles,
            commands::save_profile,
            commands::migration_log,
            commands::open_migration_log,
        ])
        .build(tauri::generate_context!())?;
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            // Stop at a safe point so the migration resumes cleanly next
            // time, and take the sandbox's mongod processes down with us.
            let state = handle.state::<state::AppState>();
            tauri::async_runtime::block_on(state.shutdown());
        }
    });
    Ok(())
}
