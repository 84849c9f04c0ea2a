//! `mongoferry check`: the preflight compatibility check from the command
//! line. The engine (`mongoferry::preflight`) does the work; this file
//! parses arguments, prints the report as a table or as JSON, and maps it
//! to an exit code: 0 no blockers, 1 blockers, 2 the check could not run.

use std::io::Write;
use std::process::ExitCode;

use crate::args::ClusterArgs;

use mongoferry::preflight::{
    self, human_bytes, human_duration, CheckRequest, Finding, Report, Severity,
};

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    clusters: ClusterArgs,
    /// In-scope namespaces on the destination will be dropped.
    #[arg(long)]
    drop_existing: bool,
    /// A migration stored on the destination will be discarded.
    #[arg(long)]
    fresh: bool,
    /// The commit will block the source's writes.
    #[arg(long)]
    block_source_writes: bool,
    /// The migration will keep a way back (sync --reversible): check what
    /// its reverse needs of both clusters.
    #[arg(long)]
    reversible: bool,
    /// Copy throughput to assume, in MiB/s, when weighing the copy against
    /// the source's oplog window.
    #[arg(long, value_name = "MIB_PER_S", default_value = DEFAULT_THROUGHPUT, value_parser = throughput)]
    copy_throughput: u64,
    /// Where the sync will read the source's changes from: auto, change-stream, oplog.
    #[arg(long, value_enum, default_value_t = crate::args::EventSourceArg::Auto)]
    event_source: crate::args::EventSourceArg,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `--copy-throughput`'s default, in MiB/s: the engine's assumption.
pub const DEFAULT_THROUGHPUT: &str = "20";

/// Parses `--copy-throughput` (MiB/s, a positive number) into bytes/s.
pub fn throughput(s: &str) -> Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(((v * 1024.0 * 1024.0) as u64).max(1)),
        _ => Err("it must be a positive number of MiB/s, such as 20 or 0.5".to_string()),
    }
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let request = CheckRequest {
        include: args.clusters.include,
        exclude: args.clusters.exclude,
        drop_existing: args.drop_existing,
        fresh: args.fresh,
        block_source_writes: args.block_source_writes,
        reversible: args.reversible,
        copy_bytes_per_second: args.copy_throughput,
        event_source: args.event_source.into(),
        ..CheckRequest::default()
    };
    let report =
        match preflight::check(&args.clusters.source, &args.clusters.destination, request).await {
            Ok(r) => r,
            Err(e) => {
                if args.json {
                    out(&serde_json::to_string_pretty(
                        &serde_json::json!({ "error": e.info() }),
                    )?);
                }
                return Ok(crate::display::could_not_run(&e));
            }
        };
    if args.json {
        out(&serde_json::to_string_pretty(&report)?);
    } else {
        out(&table(&report));
    }
    Ok(if report.has_blockers() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a
/// panic, and the exit code still tells the outcome.
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end_matches('\n'));
    let _ = stdout.flush();
}

/// The report for people: both sides, the totals, then the findings
/// grouped by severity, blockers first.
fn table(r: &Report) -> String {
    let mut out = String::new();
    let side = |s: &preflight::ServerSummary| {
        let shape = match (&s.topology[..], &s.replica_set) {
            ("replicaSet", Some(name)) => format!("replica set {name}"),
            ("sharded", _) => "sharded cluster".to_string(),
            (other, _) => other.to_string(),
        };
        let fcv = s
            .feature_compatibility_version
            .as_deref()
            .map(|f| format!(", FCV {f}"))
            .unwrap_or_default();
        format!("{} (MongoDB {}, {shape}{fcv})", s.uri, s.version)
    };
    let t = &r.totals;
    out.push_str(&format!("Source       {}\n", side(&r.source)));
    out.push_str(&format!("Destination  {}\n", side(&r.destination)));
    out.push_str(&format!(
        "In scope     {} databases, {} collections, {} views, {} documents, {} of data, {} of indexes\n",
        t.databases,
        t.collections,
        t.views,
        t.documents,
        human_bytes(t.data_bytes),
        human_bytes(t.index_bytes)
    ));
    out.push_str(&format!(
        "Copy         about {} at {}/s{}\n",
        human_duration(r.estimated_copy_seconds),
        human_bytes(r.copy_bytes_per_second),
        r.oplog_window_seconds
            .map(|w| format!("; the source's oplog keeps about {}", human_duration(w)))
            .unwrap_or_default()
    ));
    for (severity, heading, mark) in [
        (Severity::Blocker, "BLOCKERS", "x"),
        (Severity::Warning, "WARNINGS", "!"),
        (Severity::Info, "INFO", "i"),
    ] {
        let found: Vec<&Finding> = r.of(severity).collect();
        if found.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{heading} ({})\n", found.len()));
        for f in found {
            let ns = f
                .namespace
                .as_deref()
                .map(|n| format!("  [{n}]"))
                .unwrap_or_default();
            out.push_str(&format!("  {mark} {}{ns}\n", f.title));
            out.push_str(&format!("      {}\n", f.detail));
            out.push_str(&format!("      Fix: {}\n", f.remedy));
            out.push_str(&format!("      ({})\n", f.id));
        }
    }
    let blockers = r.blockers().count();
    let warnings = r.warnings().count();
    out.push_str(&format!(
        "\n{} Checked in {}.\n",
        match (blockers, warnings) {
            (0, 0) => "Ready: nothing stands in the way of the migration.".to_string(),
            (0, w) => format!("Ready, with {w} warning{} to read first.", plural(w)),
            (b, _) => format!(
                "Not ready: {b} blocker{} must be fixed before the migration can start.",
                plural(b)
            ),
        },
        if r.elapsed_ms < 1000 {
            format!("{} ms", r.elapsed_ms)
        } else {
            format!("{:.1} s", r.elapsed_ms as f64 / 1000.0)
        }
    ));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
