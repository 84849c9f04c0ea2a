//! Progress on the terminal: bars with ETAs on a TTY, one plain line every
//! few seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mongoferry::{MigrationHandle, Phase, Progress};

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

/// Shows progress until aborted.
pub async fn show(handle: MigrationHandle) {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg}\n  [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        loop {
            let p = handle.progress();
            bar.set_length(
                p.collection_copy
                    .estimated_total_bytes
                    .max(p.collection_copy.estimated_copied_bytes),
            );
            bar.set_position(p.collection_copy.estimated_copied_bytes);
            bar.set_message(line(&p));
            bar.tick();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            eprintln!("{}", line(&handle.progress()));
        }
    }
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
