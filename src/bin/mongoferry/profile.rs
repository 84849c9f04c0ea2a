//! `mongoferry profile add|list|show|remove`: saved connection profiles,
//! and resolving `--source-profile` / `--destination-profile` into the
//! connection strings the engine takes.
//!
//! A thin adapter over `mongoferry::connection::store`. Secrets go to the
//! OS keyring; nothing here prints one (profiles are shown with `****`).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use mongoferry::connection::{Profile, ProfileStore};
use mongoferry::Role;
use serde_json::json;

#[derive(Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Save a connection string as a profile. Its secrets (password, key
    /// password, session token) go to the OS keyring, the rest to the
    /// config directory. Without URI, the string is read from standard
    /// input, which keeps the password out of `ps` and the shell history.
    Add {
        name: String,
        uri: Option<String>,
        /// Overwrite a profile of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// List the saved profiles.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a profile (secrets as ****).
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a profile and its secrets.
    Remove { name: String },
}

/// Runs a blocking profile-store call off the async runtime (the keyring
/// talks D-Bus synchronously).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce(ProfileStore) -> mongoferry::Result<T> + Send + 'static,
) -> anyhow::Result<mongoferry::Result<T>> {
    let store = match ProfileStore::open_default() {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    tokio::task::spawn_blocking(move || f(store))
        .await
        .context("the profile store task failed")
}

/// Prints an engine error and picks the exit code: 2 for bad input, 1
/// otherwise.
fn failed(e: &mongoferry::Error) -> ExitCode {
    eprintln!("error: {} {}", e, e.remedy());
    match e.code() {
        "invalid_profile" | "profile_not_found" | "profile_exists" => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

fn shown(p: &Profile) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("displayUri".into(), json!(p.display_uri()));
        o.insert("warnings".into(), json!(p.warnings()));
    }
    v
}

pub async fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ProfileCommand::Add { name, uri, replace } => {
            let uri = match uri {
                Some(u) => u,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("reading the connection string from standard input")?;
                    line.trim().to_string()
                }
            };
            match blocking(move |s| s.add_uri(&name, &uri, replace)).await? {
                Ok(p) => {
                    println!("Saved profile '{}': {}", p.name, p.display_uri());
                    if !p.secrets.is_empty() {
                        let kinds: Vec<&str> = p.secrets.iter().map(|k| k.describe()).collect();
                        println!("Stored in the OS keyring: {}.", kinds.join(", "));
                    }
                    for w in p.warnings() {
                        println!("WARNING (unsafe): {w}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(failed(&e)),
            }
        }
        ProfileCommand::List { json } => match blocking(|s| s.list()).await? {
            Ok(list) => {
                if json {
                    let v: Vec<serde_json::Value> = list.iter().map(shown).collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else if list.is_empty() {
                    println!("No profiles saved. Add one with 'mongoferry profile add NAME'.");
                } else {
                    for p in &list {
                        let unsafe_mark = if p.warnings().is_empty() {
                            ""
                        } else {
                            "  [UNSAFE TLS]"
                        };
                        println!("{}\t{}{unsafe_mark}", p.name, p.display_uri());
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(failed(&e)),
        },
        ProfileCommand::Show { name, json } => match blocking(move |s| s.get(&name)).await? {
            Ok(p) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&shown(&p))?);
                } else {
                    show_human(&p);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(failed(&e)),
        },
        ProfileCommand::Remove { name } => {
            let n = name.clone();
            match blocking(move |s| s.remove(&n)).await? {
                Ok(()) => {
                    println!("Removed profile '{name}' and its secrets.");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(failed(&e)),
            }
        }
    }
}

fn show_human(p: &Profile) {
    let or_none = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    println!("Profile        {}", p.name);
    println!("URI            {}", p.display_uri());
    println!(
        "Hosts          {}{}",
        p.hosts.join(", "),
        if p.srv { " (DNS SRV)" } else { "" }
    );
    println!("Replica set    {}", or_none(&p.replica_set));
    println!("User           {}", or_none(&p.username));
    println!(
        "Auth           {} (source {})",
        p.auth_mechanism
            .map(|m| m.as_str())
            .unwrap_or("default (SCRAM)"),
        or_none(&p.auth_source)
    );
    println!(
        "TLS            {}{}{}",
        if p.tls_enabled() { "on" } else { "off" },
        p.tls
            .ca_file
            .as_ref()
            .map(|c| format!(", CA {c}"))
            .unwrap_or_default(),
        p.tls
            .cert_key_file
            .as_ref()
            .map(|c| format!(", client certificate {c}"))
            .unwrap_or_default()
    );
    let kinds: Vec<&str> = p.secrets.iter().map(|k| k.describe()).collect();
    println!(
        "Secrets        {}",
        if kinds.is_empty() {
            "none".to_string()
        } else {
            format!("{} (in the OS keyring)", kinds.join(", "))
        }
    );
    for w in p.warnings() {
        println!("WARNING (unsafe): {w}");
    }
}

/// The environment variable that may hold a side's connection string.
pub fn uri_env(role: Role) -> &'static str {
    match role {
        Role::Source => "MONGOFERRY_SOURCE",
        Role::Destination => "MONGOFERRY_DESTINATION",
    }
}

/// The connection string for one side: `--source` / `--destination` as
/// given, or the named profile resolved through the keyring, or else
/// MONGOFERRY_SOURCE / MONGOFERRY_DESTINATION. (The variables are read
/// here, not by clap, so that a profile named on the command line wins
/// over a variable left in the environment.)
pub async fn resolve_uri(
    role: Role,
    uri: Option<String>,
    profile: Option<String>,
) -> anyhow::Result<String> {
    let uri = uri.or_else(|| std::env::var(uri_env(role)).ok().filter(|u| !u.is_empty()));
    match (uri, profile) {
        (_, Some(name)) => match blocking(move |s| s.resolve(&name)).await? {
            Ok(r) => Ok(r.uri.expose().to_string()),
            Err(e) => anyhow::bail!("{role} profile: {} {}", e, e.remedy()),
        },
        (Some(uri), None) => Ok(uri),
        (None, None) => anyhow::bail!(
            "give the {role} as --{role} URI, --{role}-profile NAME or {}.",
            uri_env(role)
        ),
    }
}
