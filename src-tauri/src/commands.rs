//! IPC commands the web view may call through `invoke` (the front end's only
//! caller is `ui/src/lib/backend/`). Each command is a thin, typed adapter
//! over the engine: it must never implement migration logic, block the main
//! thread, or panic on input from the web view.

use serde::Serialize;

/// Static facts about the running app, returned by [`app_info`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    /// Version of the `mongoferry` engine this shell was built with.
    pub version: &'static str,
}

/// `app_info`: reports the engine version.
#[tauri::command]
pub fn app_info() -> AppInfo {
    AppInfo {
        version: mongoferry::VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_info_serializes_engine_version() -> Result<(), serde_json::Error> {
        let value = serde_json::to_value(app_info())?;
        assert_eq!(value, serde_json::json!({ "version": mongoferry::VERSION }));
        Ok(())
    }
}
