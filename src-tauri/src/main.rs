//! Entry point of the Mongoferry desktop app. Owns only process start-up:
//! logging setup, handing control to [`mongoferry_desktop::run`], and turning
//! a failure into a logged error and a non-zero exit status. It must never
//! hold application or migration logic.

// Release builds on Windows must not open a console window next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::process::ExitCode;

fn main() -> ExitCode {
    mongoferry_desktop::log::init();
    log_panics();
    if !display_available() {
        tracing::error!("no graphical display: neither DISPLAY nor WAYLAND_DISPLAY is set");
        return ExitCode::FAILURE;
    }
    match mongoferry_desktop::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the desktop app failed");
            ExitCode::FAILURE
        }
    }
}

/// Some start-up failures inside the windowing libraries panic instead of
/// returning an error; record them in the log too, then keep the default
/// report (and its non-zero exit status).
fn log_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "the desktop app panicked");
        default_hook(info);
    }));
}

/// GTK cannot start without an X11 or Wayland display, and then panics deep
/// inside the event loop; check first so the error says what is wrong.
#[cfg(all(unix, not(target_os = "macos")))]
fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn display_available() -> bool {
    true
}
