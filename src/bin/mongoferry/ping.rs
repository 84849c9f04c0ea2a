//! `mongoferry ping`: tests the source and/or destination connection and
//! prints what `mongoferry::ping` found, for a person or as
//! JSON (`--json`). Exit code 0 when every connection tested is fine, 1
//! when one failed, 2 on bad input.
//!
//! Only the redacted connection string is ever printed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mongoferry::ping::{ping, PingOptions, PingReport};
use mongoferry::Role;

#[derive(Args)]
pub struct PingArgs {
    /// Source connection string (or MONGOFERRY_SOURCE).
    #[arg(long)]
    source: Option<String>,
    /// Destination connection string (or MONGOFERRY_DESTINATION).
    #[arg(long)]
    destination: Option<String>,
    /// A saved profile to test as the source.
    #[arg(long, value_name = "NAME", conflicts_with = "source")]
    source_profile: Option<String>,
    /// A saved profile to test as the destination.
    #[arg(long, value_name = "NAME", conflicts_with = "destination")]
    destination_profile: Option<String>,
    /// Print the result as JSON: {"source": {...}, "destination": {...}}.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each step (connect, TLS, server selection).
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

pub async fn run(args: PingArgs) -> anyhow::Result<ExitCode> {
    let mut targets = Vec::new();
    let from_env = |role| std::env::var_os(super::profile::uri_env(role)).is_some();
    if args.source.is_some() || args.source_profile.is_some() || from_env(Role::Source) {
        targets.push((
            Role::Source,
            super::profile::resolve_uri(Role::Source, args.source, args.source_profile).await?,
        ));
    }
    if args.destination.is_some()
        || args.destination_profile.is_some()
        || from_env(Role::Destination)
    {
        targets.push((
            Role::Destination,
            super::profile::resolve_uri(
                Role::Destination,
                args.destination,
                args.destination_profile,
            )
            .await?,
        ));
    }
    if targets.is_empty() {
        anyhow::bail!(
            "nothing to test: give --source or --source-profile, and/or --destination or --destination-profile."
        );
    }
    let options = PingOptions {
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let mut reports = Vec::new();
    for (role, uri) in &targets {
        reports.push(ping(*role, uri, &options).await);
    }
    if args.json {
        let mut out = serde_json::Map::new();
        for r in &reports {
            out.insert(r.role.to_string(), serde_json::to_value(r)?);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &reports {
            print_human(r);
        }
    }
    Ok(if reports.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_human(r: &PingReport) {
    let title = match r.role {
        Role::Source => "Source",
        Role::Destination => "Destination",
    };
    println!("{title} {}", r.uri);
    let row = |k: &str, v: String| println!("  {k:<15}{v}");
    match (r.reachable, r.round_trip_ms) {
        (true, Some(ms)) => row("reachable", format!("yes, round trip {ms:.2} ms")),
        (true, None) => row("reachable", "yes".into()),
        (false, _) => row("reachable", "no".into()),
    }
    if let Some(t) = &r.topology {
        let members: Vec<String> = t
            .members
            .iter()
            .map(|m| match &m.state {
                Some(s) => format!("{} ({s})", m.host),
                None => m.host.clone(),
            })
            .collect();
        let shape = match (t.kind.as_str(), &t.set_name) {
            ("replicaSet", Some(n)) => format!("replica set '{n}': {}", members.join(", ")),
            ("sharded", _) => "sharded cluster (mongos)".to_string(),
            _ => "standalone server".to_string(),
        };
        row("topology", shape);
    }
    if let Some(v) = &r.server_version {
        let fcv = r
            .feature_compatibility_version
            .as_deref()
            .map(|f| format!(", feature compatibility {f}"))
            .unwrap_or_default();
        row("version", format!("MongoDB {v}{fcv}"));
    }
    if let Some(a) = &r.authentication {
        if a.users.is_empty() {
            row("authenticated", "no (no credentials given)".into());
        } else {
            row(
                "authenticated",
                format!("{} (roles: {})", a.users.join(", "), a.roles.join(", ")),
            );
        }
    }
    let tls = if r.tls.enabled {
        let check = match r.tls.verification {
            mongoferry::connection::tls::Verification::Full => "certificate verified",
            mongoferry::connection::tls::Verification::ChainOnly => {
                "certificate chain verified, host name NOT checked"
            }
            _ => "certificate NOT verified",
        };
        format!("on, {check}")
    } else {
        "off".to_string()
    };
    row("TLS", tls);
    if let Some(c) = &r.tls.peer_certificate {
        row("certificate", c.subject.clone());
        row("issued by", c.issuer.clone());
        row(
            "expires",
            format!("{} (in {} days)", c.not_after, c.expires_in_days),
        );
    }
    for w in &r.warnings {
        println!("  WARNING: {}", w.message);
    }
    match &r.error {
        Some(e) => println!("  error: {} {}", e.message, e.remedy),
        None => println!("  ok"),
    }
}
