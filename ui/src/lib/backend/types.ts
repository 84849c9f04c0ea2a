// Shapes of the values the Rust shell's commands return.
// Hand-written for now; once generated bindings land in $lib/bindings these
// become re-exports of the generated types.

/** Returned by the `app_info` command. */
export interface AppInfo {
  /** Version of the mongoferry engine the shell was built with. */
  version: string;
}
