//! The Mongoferry desktop shell: builds the Tauri application (window,
//! plugins, IPC command table) and runs it. The shell is a thin adapter:
//! every migration decision lives in the `mongoferry` engine crate, and code
//! here must never copy, sync, verify or cut over data itself; it only
//! translates between the web view and the engine.

mod commands;

pub use commands::AppInfo;

/// Builds the Tauri app and runs its event loop until the last window closes.
///
/// # Errors
///
/// Returns the Tauri error if the app cannot start (for example no display,
/// or the web view fails to initialise) or its event loop fails.
pub fn run() -> Result<(), tauri::Error> {
    tracing::info!(version = mongoferry::VERSION, "starting Mongoferry desktop");
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![commands::app_info])
        .run(tauri::generate_context!())
}
