//! How the shell's failures cross IPC: always as the engine's
//! [`ErrorInfo`] (`{code, message, remedy}`), so the UI shows a sentence and
//! a remedy and matches on codes, never on text or Debug output.
//!
//! Errors of the engine convert with `Error::info()`; the few the shell
//! raises itself (no migration running, no sandbox) are built here with
//! their own stable codes. Nothing here may put a secret in a message.

use mongoferry::ErrorInfo;

/// An error raised by the shell itself.
pub fn shell_error(code: &str, message: &str, remedy: &str) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        message: message.into(),
        remedy: remedy.into(),
    }
}

/// `Result<T, mongoferry::Error>` → `Result<T, ErrorInfo>`.
pub trait IntoInfo<T> {
    fn into_info(self) -> Result<T, ErrorInfo>;
}

impl<T> IntoInfo<T> for mongoferry::Result<T> {
    fn into_info(self) -> Result<T, ErrorInfo> {
        self.map_err(|e| e.info())
    }
}
