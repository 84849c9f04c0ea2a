//! Progress on the terminal: bars with ETAs on a TTY, one plain line every
//! few seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mongoferry::progress::SourceImpact;
use mongoferry::{LoadStatus, MigrationHandle, Phase, Progress};

/// A byte-count bar with an ETA, the one style every long wait uses.
pub fn byte_bar() -> ProgressBar {
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

/// A rate in MiB/s to one decimal, without a trailing `.0`.
fn mib_per_second(bytes_per_second: f64) -> String {
    let mib = (bytes_per_second / (1024.0 * 1024.0) * 10.0).round() / 10.0;
    format!("{mib} MiB/s")
}

/// What the copy reads at now, such as `1 range at a time, at most 5 MiB/s`.
fn reads(status: &LoadStatus) -> String {
    let ranges = match status.readers {
        1 => "1 range".to_string(),
        n => format!("{n} ranges"),
    };
    match status.bytes_per_second {
        Some(b) => format!("{ranges} at a time, at most {}", mib_per_second(b)),
        None => format!("{ranges} at a time, with no rate cap"),
    }
}

/// A load status in two lines, for `mongoferry throttle`: the level and
/// what the copy may read now; the limits on the source's impact, and
/// why the copy is throttled if it is.
pub fn load_summary(status: &LoadStatus) -> String {
    let s = &status.setting;
    let first = format!("Load level {}: the copy reads {}.", s.level, reads(status));
    let mut limits = Vec::new();
    if let Some(p) = s.max_source_latency_increase_percent {
        limits.push(format!("the source's reads at most {p}% slower than idle"));
    }
    if let Some(secs) = s.max_secondary_lag_seconds {
        limits.push(format!("its secondaries at most {secs} s behind"));
    }
    let mut second = if limits.is_empty() {
        "No limit on the source's impact: the copy holds to the level alone.".to_string()
    } else {
        format!("Limits: {}.", limits.join("; "))
    };
    if status.throttling {
        let why = status
            .reason
            .as_deref()
            .unwrap_or("the source is under strain.");
        second.push_str(&format!(" Throttling now: {why}"));
    }
    format!("{first}\n{second}")
}

/// The load part of a progress line: the level, and while the adaptive
/// mode holds the copy below it, to what and why.
fn load_segment(status: &LoadStatus) -> String {
    let mut text = format!("load {}", status.setting.level);
    if status.setting.adaptive() {
        text.push_str(" (adaptive)");
    }
    if status.throttling {
        if let Some(b) = status.bytes_per_second {
            text.push_str(&format!(", throttled to {}", mib_per_second(b)));
        } else {
            text.push_str(", throttled");
        }
        if let Some(why) = &status.reason {
            text.push_str(&format!(": {}", why.trim_end_matches('.')));
        }
    }
    text
}

/// `90061` seconds as `1 d 1 h`, `3700` as `1 h 1 min`, `75` as `1 min 15 s`.
fn duration_words(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {sec} s")
    } else {
        format!("{sec} s")
    }
}

/// The source's health in one short line, leaving out what was not
/// measured; `None` when nothing was.
fn impact_line(i: &SourceImpact) -> Option<String> {
    let mut parts = Vec::new();
    let mut idle_and_increase = Vec::new();
    if let Some(idle) = i.idle_read_latency_ms {
        idle_and_increase.push(format!("idle {:.1} ms", idle.p99));
    }
    if let Some(pct) = i.read_latency_increase_percent {
        idle_and_increase.push(format!("{pct:+.0}%"));
    }
    let beside = if idle_and_increase.is_empty() {
        String::new()
    } else {
        format!(" ({})", idle_and_increase.join(", "))
    };
    match i.read_latency_ms {
        Some(l) => parts.push(format!("reads p99 {:.1} ms{beside}", l.p99)),
        None if !beside.is_empty() => parts.push(format!("reads{beside}")),
        None => {}
    }
    if let Some(w) = i.write_latency_ms {
        parts.push(format!("writes {w:.1} ms mean"));
    }
    if let Some(q) = i.queued_operations {
        parts.push(format!("{q} queued"));
    }
    match (i.cache_used_percent, i.cache_dirty_percent) {
        (Some(u), Some(d)) => parts.push(format!("cache {u:.0}% used, {d:.0}% dirty")),
        (Some(u), None) => parts.push(format!("cache {u:.0}% used")),
        (None, Some(d)) => parts.push(format!("cache {d:.0}% dirty")),
        (None, None) => {}
    }
    if let Some(lag) = i.secondary_lag_seconds {
        parts.push(format!("secondary lag {lag:.0} s"));
    }
    if let Some(h) = i.oplog_headroom_seconds {
        parts.push(format!("oplog headroom {}", duration_words(h)));
    }
    (!parts.is_empty()).then(|| format!("source: {}", parts.join(", ")))
}

/// What a migration is doing, in a line, and the source's health in a
/// second when it is measured.
fn line(p: &Progress) -> String {
    let mut text = progress_line(p);
    if let Some(load) = &p.load {
        text.push_str(&format!(", {}", load_segment(load)));
    }
    if let Some(impact) = p.source_impact.as_deref().and_then(impact_line) {
        text.push_str(&format!("\n  {impact}"));
    }
    text
}

fn progress_line(p: &Progress) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use mongoferry::progress::Latency;
    use mongoferry::{LoadLevel, LoadSetting};

    fn status(setting: LoadSetting) -> LoadStatus {
        LoadStatus::new(setting, setting.level.limits(4))
    }

    #[test]
    fn a_load_status_reads_in_two_lines() {
        let text = load_summary(&status(LoadSetting::fixed(LoadLevel::Gentle)));
        assert_eq!(
            text,
            "Load level gentle: the copy reads 1 range at a time, at most 5 MiB/s.\n\
             No limit on the source's impact: the copy holds to the level alone."
        );
        let mut s = status(LoadSetting {
            level: LoadLevel::Full,
            max_source_latency_increase_percent: Some(30.0),
            max_secondary_lag_seconds: Some(10.0),
        });
        let text = load_summary(&s);
        assert!(
            text.starts_with(
                "Load level full: the copy reads 4 ranges at a time, with no rate cap."
            ),
            "{text}"
        );
        assert!(text.ends_with("Limits: the source's reads at most 30% slower than idle; its secondaries at most 10 s behind."), "{text}");
        s.throttling = true;
        s.bytes_per_second = Some(2.5 * 1024.0 * 1024.0);
        s.reason = Some("Reads are 45% slower than idle.".into());
        assert!(load_summary(&s).ends_with("Throttling now: Reads are 45% slower than idle."));
        assert_eq!(
            load_segment(&s),
            "load full (adaptive), throttled to 2.5 MiB/s: Reads are 45% slower than idle"
        );
        assert_eq!(
            load_segment(&status(LoadSetting::fixed(LoadLevel::MibPerSecond(12.5)))),
            "load 12.5 MiB/s"
        );
    }

    #[test]
    fn the_impact_line_leaves_out_what_was_not_measured() {
        assert_eq!(impact_line(&SourceImpact::default()), None);
        let full = SourceImpact {
            read_latency_ms: Some(Latency {
                p50: 1.0,
                p90: 4.25,
                p99: 9.0,
            }),
            idle_read_latency_ms: Some(Latency {
                p50: 0.5,
                p90: 1.1,
                p99: 2.0,
            }),
            read_latency_increase_percent: Some(286.4),
            write_latency_ms: Some(0.8),
            queued_operations: Some(3),
            cache_used_percent: Some(45.2),
            cache_dirty_percent: Some(3.0),
            secondary_lag_seconds: Some(2.0),
            oplog_headroom_seconds: Some(5.0 * 3600.0 + 120.0),
            ..SourceImpact::default()
        };
        assert_eq!(
            impact_line(&full).unwrap(),
            "source: reads p99 9.0 ms (idle 2.0 ms, +286%), writes 0.8 ms mean, 3 queued, \
             cache 45% used, 3% dirty, secondary lag 2 s, oplog headroom 5 h 2 min"
        );
        let some = SourceImpact {
            cache_dirty_percent: Some(7.0),
            secondary_lag_seconds: Some(12.4),
            not_measured: vec!["reads: too few operations".into()],
            ..SourceImpact::default()
        };
        assert_eq!(
            impact_line(&some).unwrap(),
            "source: cache 7% dirty, secondary lag 12 s"
        );
        assert_eq!(duration_words(90_061.0), "1 d 1 h");
        assert_eq!(duration_words(75.0), "1 min 15 s");
        assert_eq!(duration_words(9.0), "9 s");
    }
}
