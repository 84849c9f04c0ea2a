//! Build script of the desktop shell: runs `tauri_build`, which reads
//! `tauri.conf.json` and `capabilities/`, checks them and generates the code
//! `tauri::generate_context!` embeds. It must never build the front end or
//! touch the engine crate: the Tauri CLI's `beforeBuildCommand` builds `ui/`.

fn main() {
    tauri_build::build();
}
