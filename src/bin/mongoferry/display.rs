//! Progress on the terminal: bars with ETAs on a TTY, one plain line every
//! few seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mongoferry::{MigrationHandle, Phase, Progress};

/// A byte-count bar with an ETA, the one style every long wait uses.
fn byte_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg}\n  [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Waits for SIGINT or SIGTERM, says `message` and cancels: long commands
/// then stop at a safe point.
pub async fn cancel_on_signal(cancel: tokio_util::sync::CancellationToken, message: &str) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("{message}");
    cancel.cancel();
}

/// A one-line error with its remedy, and the exit code for "could not
/// run" (bad input, an unreachable cluster).
pub fn could_not_run(e: &mongoferry::Error) -> std::process::ExitCode {
    eprintln!("error: {} {}", e, e.remedy());
    std::process::ExitCode::from(2)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string().into_bytes();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        h => h,
    };
    let mut groups = vec![&digits[..head]];
    groups.extend(digits[head..].chunks(3));
    groups
        .iter()
        .map(|g| String::from_utf8_lossy(g))
        .collect::<Vec<_>>()
        .join(",")
}

fn human_bytes(b: u64) -> String {
    indicatif::HumanBytes(b).to_string()
}

fn line(p: &Progress) -> String {
    let c = &p.collection_copy;
    let lag = p
        .lag_time_seconds
        .map(|l| format!("{l:.0} s"))
        .unwrap_or_else(|| "-".into());
    let eta = p
        .eta_seconds
        .map(|e| format!("{e:.0} s"))
        .unwrap_or_else(|| "-".into());
    match p.phase {
        Phase::Copying | Phase::Starting => format!(
            "{} copying: {} of ~{} ({} docs), {}/s, ETA {eta}",
            p.state,
            human_bytes(c.estimated_copied_bytes),
            human_bytes(c.estimated_total_bytes),
            c.copied_docs,
            human_bytes(c.bytes_per_second as u64),
        ),
        _ => format!(
            "{} {:?}: lag {lag}, {} events applied ({:.0}/s), canCommit {}{}",
            p.state,
            p.phase,
            p.total_events_applied,
            p.events_per_second,
            p.can_commit,
            if p.phase == Phase::Committing {
                format!(", ETA {eta}")
            } else {
                String::new()
            },
        ),
    }
}

/// Where a long wait stands.
pub struct Reading {
    /// Bytes done so far.
    pub done: u64,
    /// Bytes expected in all (an estimate: the bar grows if `done` passes it).
    pub expected: u64,
    /// What the wait is at, in a line.
    pub line: String,
}

/// Shows progress on stderr until aborted: a bar refreshed four times a
/// second on a terminal, a line every five seconds otherwise.
pub async fn show_progress(mut read: impl FnMut() -> Reading) {
    if std::io::stderr().is_terminal() {
        let bar = byte_bar();
        loop {
            let r = read();
            bar.set_length(r.expected.max(r.done));
            bar.set_position(r.done);
            bar.set_message(r.line);
            bar.tick();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            eprintln!("{}", read().line);
        }
    }
}

/// Shows a migration's progress until aborted.
pub async fn show(handle: MigrationHandle) {
    show_progress(|| {
        let p = handle.progress();
        Reading {
            done: p.collection_copy.estimated_copied_bytes,
            expected: p.collection_copy.estimated_total_bytes,
            line: line(&p),
        }
    })
    .await
}

pub fn summary(p: &Progress) {
    eprintln!(
        "COMMITTED: {} documents ({}) copied, {} change events applied{}.",
        p.collection_copy.copied_docs,
        human_bytes(p.collection_copy.estimated_copied_bytes),
        p.total_events_applied,
        if p.documents_failed > 0 {
            format!(
                ", {} documents failed (see __mongoferry.problems on the destination)",
                p.documents_failed
            )
        } else {
            String::new()
        }
    );
}
