//! `mongoferry verify`: the command-line adapter over
//! [`mongoferry::verify`]. It parses arguments, shows progress on stderr,
//! prints a table per namespace (or the report as JSON) on stdout, and
//! maps the outcome to an exit code: 0 identical, 1 differences, 2 the
//! verification could not run, 130 interrupted.
//!
//! With `--report FILE` every difference is written to FILE as NDJSON as
//! it is found; the terminal shows only the first ones.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::HumanBytes;
use mongoferry::cluster::Cluster;
use mongoferry::progress::{VerificationState, VerificationStatus, VerifyPhase, VerifyProgress};
use mongoferry::verify::{
    self, DifferenceSink, LiveOptions, NdjsonSink, NullSink, Verifier, VerifyMode, VerifyOptions,
    VerifyReport,
};
use mongoferry::Scope;
use tokio_util::sync::CancellationToken;

use crate::args::ClusterArgs;
use crate::display::{could_not_run, thousands, Reading};

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    clusters: ClusterArgs,
    /// quick: namespaces, options, indexes, views and counts; full: also
    /// every document.
    #[arg(long, value_enum, default_value_t = ModeArg::Full)]
    mode: ModeArg,
    /// Report documents whose fields are in another order.
    #[arg(long)]
    strict_field_order: bool,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Write every difference to FILE as NDJSON (one JSON object a line).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Verify while a sync runs: documents that change are compared again
    /// until stable. Ends once the source's writes stop and the sync has
    /// caught up.
    #[arg(long)]
    live: bool,
    /// With --live: how long a document must stay unchanged before a
    /// difference in it is reported (longer than the sync's lag).
    #[arg(long, value_name = "SECONDS", default_value_t = LiveOptions::default().settle_seconds)]
    settle: f64,
    /// Accept what a running sync relaxes on the destination (non-unique
    /// indexes, held TTLs): auto does while the destination holds an
    /// uncommitted migration.
    #[arg(long, value_enum, default_value_t = RelaxArg::Auto)]
    sync_relaxations: RelaxArg,
    /// `_id` ranges compared at once.
    #[arg(long, default_value_t = VerifyOptions::default().concurrency)]
    concurrency: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Quick,
    Full,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RelaxArg {
    Auto,
    Allow,
    Deny,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    // Bad input fails before anything is touched.
    if let Err(e) = Scope::new(&args.clusters.include, &args.clusters.exclude) {
        return Ok(could_not_run(&e));
    }
    if args.concurrency == 0 || !args.settle.is_finite() || args.settle < 0.0 {
        eprintln!(
            "error: --concurrency must be at least 1 and --settle at least 0. Pass valid values."
        );
        return Ok(ExitCode::from(2));
    }
    let mut sink: Box<dyn DifferenceSink> = match &args.report {
        Some(path) => match NdjsonSink::create(path) {
            Ok(s) => Box::new(s),
            Err(e) => return Ok(could_not_run(&e)),
        },
        None => Box::new(NullSink),
    };
    let (src, dest) = match verify::connect(&args.clusters.source, &args.clusters.destination).await
    {
        Ok(c) => c,
        Err(e) => return Ok(could_not_run(&e)),
    };
    let options = VerifyOptions {
        mode: match args.mode {
            ModeArg::Quick => VerifyMode::Quick,
            ModeArg::Full => VerifyMode::Full,
        },
        strict_field_order: args.strict_field_order,
        include: args.clusters.include.clone(),
        exclude: args.clusters.exclude.clone(),
        concurrency: args.concurrency,
        allow_sync_relaxations: match args.sync_relaxations {
            RelaxArg::Auto => None,
            RelaxArg::Allow => Some(true),
            RelaxArg::Deny => Some(false),
        },
        live: args.live.then(|| LiveOptions {
            settle_seconds: args.settle,
            ..LiveOptions::default()
        }),
        ..VerifyOptions::default()
    };
    eprintln!(
        "Verifying the destination {} (MongoDB {}) against the source {} (MongoDB {}): {} mode{}.",
        dest.display_uri,
        dest.version,
        src.display_uri,
        src.version,
        options.mode,
        if args.live { ", live" } else { "" }
    );
    let clusters = (src.clone(), dest.clone());
    let code = verify(src, dest, options, sink.as_mut(), &args).await;
    tokio::join!(clusters.0.close(), clusters.1.close());
    code
}

/// Runs the verification and reports it; the exit code says how it ended.
async fn verify(
    src: Cluster,
    dest: Cluster,
    options: VerifyOptions,
    sink: &mut dyn DifferenceSink,
    args: &VerifyArgs,
) -> anyhow::Result<ExitCode> {
    let verifier = match Verifier::new(src, dest, options) {
        Ok(v) => v,
        Err(e) => return Ok(could_not_run(&e)),
    };
    let cancel = CancellationToken::new();
    tokio::spawn(crate::display::cancel_on_signal(
        cancel.clone(),
        "Stopping...",
    ));
    let display = tokio::spawn(show(verifier.watch_progress()));
    let result = verifier.run(sink, &cancel).await;
    display.abort();
    let _ = display.await;
    let report = match result {
        Ok(r) => r,
        Err(mongoferry::Error::Interrupted) => {
            eprintln!("Stopped before the verification finished; nothing was concluded.");
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Ok(could_not_run(&e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report, args.report.as_ref()));
    }
    Ok(if report.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn line(p: &VerifyProgress) -> String {
    let eta = p
        .eta_seconds
        .map(|e| format!("{e:.0} s"))
        .unwrap_or_else(|| "-".into());
    match p.phase {
        VerifyPhase::Starting | VerifyPhase::Metadata => {
            "comparing namespaces, options and indexes".to_string()
        }
        VerifyPhase::Documents => format!(
            "{} of ~{} documents ({} of ~{}), {:.0} docs/s, {} differences, {}/{} namespaces, ETA {eta}",
            thousands(p.compared_docs),
            thousands(p.estimated_total_docs),
            HumanBytes(p.compared_bytes),
            HumanBytes(p.estimated_total_bytes),
            p.docs_per_second,
            thousands(p.differences),
            p.namespaces_done,
            p.namespaces_total,
        ),
        VerifyPhase::Recheck => format!(
            "live: {} documents waiting to be compared again, {} differences confirmed",
            thousands(p.pending_rechecks),
            thousands(p.differences)
        ),
        VerifyPhase::Done => "done".to_string(),
    }
}

/// Progress on stderr until aborted: a bar on a terminal, a line every
/// few seconds otherwise.
async fn show(mut rx: tokio::sync::watch::Receiver<VerifyProgress>) {
    crate::display::show_progress(|| {
        let p = rx.borrow_and_update();
        Reading {
            done: p.compared_bytes,
            expected: p.estimated_total_bytes,
            line: line(&p),
        }
    })
    .await
}

/// The report for people: a table per namespace, the first differences,
/// and the verdict.
fn table(r: &VerifyReport, report_file: Option<&PathBuf>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let count = |v: Option<u64>| v.map(thousands).unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 7]> = r
        .namespaces
        .iter()
        .map(|n| {
            [
                n.namespace.clone(),
                n.kind.clone(),
                count(n.source_documents),
                count(n.destination_documents),
                thousands(n.documents_compared),
                thousands(n.differences),
                format!("{:.1} s", n.seconds),
            ]
        })
        .collect();
    let header = [
        "NAMESPACE",
        "KIND",
        "SOURCE DOCS",
        "DEST DOCS",
        "COMPARED",
        "DIFFERENCES",
        "TIME",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i < 2 {
                let _ = write!(line, "{c:<w$}  ");
            } else {
                let _ = write!(line, "{c:>w$}  ");
            }
        }
        line.trim_end().to_string()
    };
    let _ = writeln!(s, "{}", fmt_row(header.to_vec()));
    for row in &rows {
        let _ = writeln!(s, "{}", fmt_row(row.iter().map(|c| c.as_str()).collect()));
    }
    for n in r.namespaces.iter().filter(|n| n.note.is_some()) {
        let _ = writeln!(
            s,
            "  {}: {}",
            n.namespace,
            n.note.as_deref().unwrap_or_default()
        );
    }
    let _ = writeln!(s);
    if !r.samples.is_empty() {
        let _ = writeln!(
            s,
            "Differences (the first {} of {}):",
            r.samples.len(),
            thousands(r.differences)
        );
        for d in &r.samples {
            let what = match (d.id_text(), &d.index) {
                (Some(id), _) => format!(" _id {id}"),
                (None, Some(ix)) => format!(" index {ix}"),
                _ => String::new(),
            };
            let _ = writeln!(s, "  {}{what}  {}  {}", d.namespace, d.kind, d.detail);
            for f in d.fields.iter().take(5) {
                let values = match (&f.source, &f.destination) {
                    (Some(a), Some(b)) => format!(": {a} -> {b}"),
                    (Some(a), None) => format!(": {a} -> (absent)"),
                    (None, Some(b)) => format!(": (absent) -> {b}"),
                    (None, None) => String::new(),
                };
                let _ = writeln!(s, "      {} ({}){values}", f.path, f.change.as_str());
            }
        }
        let _ = writeln!(s);
    }
    let docs = format!(
        "{} documents ({}) compared in {:.1} s{}{}",
        thousands(r.documents_compared),
        HumanBytes(r.bytes_compared),
        r.seconds,
        if r.live {
            format!(", {} rechecks", thousands(r.rechecks))
        } else {
            String::new()
        },
        if r.expiring_skipped > 0 {
            format!(
                "; {} on one side only were left out because a TTL index may delete them before the verification ends",
                thousands(r.expiring_skipped)
            )
        } else {
            String::new()
        }
    );
    if r.identical {
        let _ = writeln!(
            s,
            "IDENTICAL: the destination equals the source ({} verification; {docs}).",
            r.mode
        );
    } else {
        let kinds: Vec<String> = r
            .differences_by_kind
            .iter()
            .map(|(k, n)| format!("{} {k}", thousands(*n)))
            .collect();
        let namespaces = r.namespaces.iter().filter(|n| n.differences > 0).count();
        let _ = writeln!(
            s,
            "DIFFERENT: {} differences in {namespaces} namespaces ({}; {docs}).",
            thousands(r.differences),
            kinds.join(", ")
        );
        match report_file {
            Some(f) => {
                let _ = writeln!(s, "Every difference is in {} (NDJSON).", f.display());
            }
            None if r.differences > r.samples.len() as u64 => {
                let _ = writeln!(s, "Pass --report FILE to write every difference as NDJSON.");
            }
            None => {}
        }
    }
    s
}

/// One line about the verification at commit, for `mongoferry sync`.
pub fn commit_line(v: &VerificationStatus) -> String {
    let mode = v.mode.map(|m| m.to_string()).unwrap_or_default();
    match (v.state, &v.report) {
        (VerificationState::Passed, Some(r)) => format!(
            "Verified at commit ({mode}): the destination equals the source; {} documents compared.",
            thousands(r.documents_compared)
        ),
        (VerificationState::Skipped, _) => {
            "The commit was not verified (--verify none).".to_string()
        }
        (VerificationState::Failed, Some(r)) => format!(
            "Verification at commit ({mode}) found {} differences.",
            thousands(r.differences)
        ),
        _ => format!("Verification at commit ({mode}) did not finish."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_how_many_expiring_documents_were_left_out() {
        let report = |expiring: u64| -> VerifyReport {
            serde_json::from_value(serde_json::json!({
                "mode": "full", "strictFieldOrder": false, "live": false,
                "syncRelaxationsAllowed": false, "source": "s", "destination": "d",
                "identical": true, "differences": 0, "differencesByKind": {},
                "documentsCompared": 1200, "bytesCompared": 4096, "rechecks": 0,
                "seconds": 1.5, "namespaces": [], "samples": [],
                "expiringSkipped": expiring,
            }))
            .expect("a report")
        };
        let shown = table(&report(3), None);
        assert!(shown.contains("IDENTICAL"), "{shown}");
        assert!(
            shown.contains("3 on one side only were left out because a TTL index"),
            "{shown}"
        );
        assert!(!table(&report(0), None).contains("TTL"));
    }
}
