//! The bench's figures, its targets, and how they are printed: a table for
//! people, and one JSON object with `--json`.

use std::fmt::Write as _;

use mongoferry::progress::EventSource;
use mongoferry::sandbox::MongodVersion;
use serde_json::json;

use super::cpu::Usage;
use super::lag::Lag;
use super::measure::{Figure, Verify};
use super::rss::Rss;
use super::BenchArgs;

const TARGET_COPY_TO_CEILING: f64 = 0.80;
const AIM_COPY_TO_CEILING: f64 = 0.90;
const TARGET_COPY_TO_NAIVE: f64 = 1.50;
const TARGET_RSS_BYTES: u64 = 300_000_000;
const TARGET_P99_LAG_SECONDS: f64 = 2.0;
/// Full verification reads both sides at least as fast as the copy writes.
const TARGET_VERIFY_TO_COPY: f64 = 1.0;

/// An older source is within 20% of a 6.0 source's: its copy reaches at
/// least 0.8 of the 6.0 source's docs/s...
const TARGET_OLD_COPY_RATIO: f64 = 0.80;
/// ...and its lag p99 is at most 1.25 = 1 / 0.8 times the 6.0 source's
/// (the same 20%, read the other way up because less lag is better)...
const TARGET_OLD_LAG_RATIO: f64 = 1.25;
/// ...or at most this much above it. Tiny lags make the ratio meaningless:
/// the end-to-end lag includes each marker's own majority write on the
/// source and up to one 10 ms poll, and its p99 over a 20 s load (400
/// markers, one every 50 ms) is the 4th-worst marker, so one scheduling
/// hiccup of three busy processes on two cores moves it by tens of
/// milliseconds. With a 6.0 lag of 0.04 s, a 4.4 lag of 0.06 s would be
/// 1.5x and fail on noise alone. A fixed slack of 0.1 s is above that
/// noise and far below anything a user notices, and unlike "both under
/// the absolute target" it still fails an older source whose lag goes from
/// 0.05 s to 1.9 s. Above 0.4 s the ratio is the stricter rule.
const OLD_LAG_SLACK_SECONDS: f64 = 0.10;
/// The ceiling writes only to the destination, 6.0 in both runs, so its
/// figures differ between the two runs only as much as the box's speed
/// drifted; beyond this ratio either way the comparison is flagged.
const DRIFT_LIMIT: f64 = 1.25;

/// Everything one run measured.
pub struct Report {
    pub docs: u64,
    pub doc_size: usize,
    pub batch_docs: usize,
    pub batch_kib: usize,
    pub read_batch_docs: u32,
    pub partition_mib: u64,
    pub ceiling_concurrency: usize,
    pub ceiling_batch: usize,
    pub verify_concurrency: usize,
    /// `--source-version`.
    pub source_version: MongodVersion,
    /// `buildInfo.version` of the source and of the destination.
    pub mongodb_version: String,
    pub destination_version: String,
    /// Where the migration read the source's changes from.
    pub event_source: Option<EventSource>,
    /// BSON bytes of the `--docs` documents.
    pub doc_bytes: u64,
    pub seed: Option<Figure>,
    /// The engine's copy for each copy concurrency; the first is the one
    /// whose memory and lag were measured.
    pub copies: Vec<(usize, Figure)>,
    /// Later rounds of the first copy concurrency's copy (`--rounds`).
    pub copy_rounds: Vec<Figure>,
    pub rss: Option<Rss>,
    /// The full verification after the copy, and what it found.
    pub verification: Option<(Figure, mongoferry::verify::VerifyReport)>,
    pub verify_rss: Option<Rss>,
    pub lag_rss: Option<Rss>,
    pub lag: Option<Lag>,
    pub events_applied: u64,
    pub verify: Option<Verify>,
    /// One figure a round.
    pub ceilings: Vec<Figure>,
    pub naives: Vec<Figure>,
    pub total_seconds: f64,
    /// The same measurements on a 6.0 source, when the source was older.
    pub reference: Option<Box<Report>>,
}

/// One figure of an older source against a 6.0 source's.
struct Versus {
    name: &'static str,
    old: f64,
    new: f64,
    /// `old / new`; `None` when the 6.0 figure is 0.
    ratio: Option<f64>,
    target: String,
    pass: bool,
}

struct Target {
    name: &'static str,
    value: f64,
    target: String,
    pass: bool,
}

impl Report {
    pub fn new(args: &BenchArgs) -> Report {
        Report {
            docs: args.docs,
            doc_size: args.doc_size,
            batch_docs: args.batch_docs,
            batch_kib: args.batch_kib,
            read_batch_docs: args.read_batch_docs,
            partition_mib: args.partition_mib,
            ceiling_concurrency: args.ceiling_concurrency,
            ceiling_batch: args.ceiling_batch,
            verify_concurrency: args.verify_concurrency,
            source_version: args.source_version,
            mongodb_version: String::new(),
            destination_version: String::new(),
            event_source: None,
            doc_bytes: 0,
            seed: None,
            copies: Vec::new(),
            copy_rounds: Vec::new(),
            rss: None,
            verification: None,
            verify_rss: None,
            lag_rss: None,
            lag: None,
            events_applied: 0,
            verify: None,
            ceilings: Vec::new(),
            naives: Vec::new(),
            total_seconds: 0.0,
            reference: None,
        }
    }

    /// Why this run's migration did not copy the source exactly, if it
    /// did not.
    pub fn failure(&self) -> Option<String> {
        let on = format!(
            "(source {} {})",
            self.source_version,
            self.event_source.map(|e| e.as_str()).unwrap_or("")
        );
        if !self.verification.as_ref().is_some_and(|(_, r)| r.identical) {
            Some(format!(
                "the full verification after the copy found differences {on}"
            ))
        } else if !self.verify.as_ref().is_some_and(|v| v.ok()) {
            Some(format!(
                "the destination does not match the source after the commit {on}"
            ))
        } else {
            None
        }
    }

    /// This run's copy docs/s and lag p99 against the 6.0 source's, when
    /// there was one.
    fn versus(&self) -> Vec<Versus> {
        let Some(r) = self.reference.as_deref() else {
            return Vec::new();
        };
        let mut v = Vec::new();
        if let (Some(old), Some(new)) = (self.copy(), r.copy()) {
            let (old, new) = (old.docs_per_second(), new.docs_per_second());
            let ratio = (new > 0.0).then(|| old / new);
            v.push(Versus {
                name: "copy docs/s",
                old,
                new,
                ratio,
                target: format!(">= {TARGET_OLD_COPY_RATIO:.2}x"),
                pass: ratio.is_some_and(|r| r >= TARGET_OLD_COPY_RATIO),
            });
        }
        if let (Some(old), Some(new)) = (&self.lag, &r.lag) {
            // Only lags of every marker compare: a marker that never
            // arrived has no lag, and would flatter the run it is missing
            // from.
            let complete = |l: &Lag| l.marker.samples > 0 && l.markers_missing == 0;
            let (o, n) = (old.marker.p99, new.marker.p99);
            v.push(Versus {
                name: "lag p99 (end to end)",
                old: o,
                new: n,
                ratio: (n > 0.0).then(|| o / n),
                target: format!(
                    "<= {TARGET_OLD_LAG_RATIO:.2}x or <= +{OLD_LAG_SLACK_SECONDS:.2} s"
                ),
                pass: complete(old) && complete(new) && old_lag_within(o, n),
            });
        }
        v
    }

    /// The ceiling of this run over the 6.0 source's run's: 1 but for the
    /// box's drift between the two runs.
    fn drift(&self) -> Option<f64> {
        let (old, new) = (self.ceiling()?, self.reference.as_deref()?.ceiling()?);
        (new.docs_per_second() > 0.0).then(|| old.docs_per_second() / new.docs_per_second())
    }

    /// `4.4.2 source (oplog)`.
    fn source_label(&self) -> String {
        match self.event_source {
            Some(e) => format!("{} source ({e})", self.mongodb_version),
            None => format!("{} source", self.mongodb_version),
        }
    }

    /// Every round of the first copy concurrency's copy.
    fn copy_all(&self) -> Vec<&Figure> {
        self.copies
            .first()
            .map(|(_, f)| f)
            .into_iter()
            .chain(&self.copy_rounds)
            .collect()
    }

    /// The fastest round of the copy, the ceiling and the naive copy: on a
    /// box shared with other work, the least disturbed.
    fn copy(&self) -> Option<&Figure> {
        best(self.copy_all())
    }

    fn ceiling(&self) -> Option<&Figure> {
        best(self.ceilings.iter().collect())
    }

    fn naive(&self) -> Option<&Figure> {
        best(self.naives.iter().collect())
    }

    fn ratio(&self, other: Option<&Figure>) -> Option<f64> {
        let (c, o) = (self.copy()?, other?);
        (o.docs_per_second() > 0.0).then(|| c.docs_per_second() / o.docs_per_second())
    }

    /// The full verification's docs/s over the copy's (first round's
    /// migration, the one it verified).
    fn verify_ratio(&self) -> Option<f64> {
        let (v, _) = self.verification.as_ref()?;
        let (_, c) = self.copies.first()?;
        (c.docs_per_second() > 0.0).then(|| v.docs_per_second() / c.docs_per_second())
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        if let Some(r) = self.verify_ratio() {
            let identical = self
                .verification
                .as_ref()
                .is_some_and(|(_, rep)| rep.identical);
            t.push(Target {
                name: "verify/copy",
                value: r,
                target: format!(">= {TARGET_VERIFY_TO_COPY:.2}, identical"),
                pass: r >= TARGET_VERIFY_TO_COPY && identical,
            });
        }
        if let Some(r) = self.ratio(self.ceiling()) {
            t.push(Target {
                name: "copy/ceiling",
                value: r,
                target: format!(">= {TARGET_COPY_TO_CEILING:.2} (aim {AIM_COPY_TO_CEILING:.2})"),
                pass: r >= TARGET_COPY_TO_CEILING,
            });
        }
        if let Some(r) = self.ratio(self.naive()) {
            t.push(Target {
                name: "copy/naive",
                value: r,
                target: format!(">= {TARGET_COPY_TO_NAIVE:.2}"),
                pass: r >= TARGET_COPY_TO_NAIVE,
            });
        }
        if let Some(rss) = &self.rss {
            t.push(Target {
                name: "peak RSS during copy",
                value: rss.peak_bytes as f64,
                target: format!("< {} MB", TARGET_RSS_BYTES / 1_000_000),
                pass: rss.peak_bytes < TARGET_RSS_BYTES,
            });
        }
        if let Some(lag) = &self.lag {
            t.push(Target {
                name: "lag p99 (end to end)",
                value: lag.marker.p99,
                target: format!("< {TARGET_P99_LAG_SECONDS:.0} s"),
                pass: lag.marker.samples > 0
                    && lag.markers_missing == 0
                    && lag.marker.p99 < TARGET_P99_LAG_SECONDS,
            });
            t.push(Target {
                name: "lag p99 (engine)",
                value: lag.engine.p99,
                target: format!("< {TARGET_P99_LAG_SECONDS:.0} s"),
                pass: lag.engine.samples > 0 && lag.engine.p99 < TARGET_P99_LAG_SECONDS,
            });
        }
        t
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        let mut table = self.table();
        if let Some(r) = &self.reference {
            let _ = writeln!(
                table,
                "\n--- The same measurements on a 6.0 source, for comparison (run after the one above, on a new pair of servers; its RSS figures include what the first run left in this process's heap) ---"
            );
            table.push_str(&r.table());
            table.push_str(&self.comparison());
        }
        if json {
            eprint!("{table}");
            println!("{}", serde_json::to_string_pretty(&self.json())?);
        } else {
            print!("{table}");
        }
        Ok(())
    }

    /// The older source's figures against the 6.0 source's.
    fn comparison(&self) -> String {
        let mut s = String::new();
        let Some(r) = self.reference.as_deref() else {
            return s;
        };
        let (old, new) = (self.source_label(), r.source_label());
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{} against a {}, both to a 6.0 destination, same flags, in this run:",
            old, new
        );
        // Columns as wide as the longer of the two sources' names.
        let w = old.len().max(new.len()) + 3;
        let _ = writeln!(s, "{:<24}{old:>w$}{new:>w$}{:>8}   target", "", "ratio");
        let versus = self.versus();
        for v in &versus {
            let show = |x: f64| match v.name {
                "copy docs/s" => thousands(x as u64),
                _ => format!("{x:.3} s"),
            };
            let _ = writeln!(
                s,
                "{:<24}{:>w$}{:>w$}{:>8}   {:<28}{}",
                v.name,
                show(v.old),
                show(v.new),
                v.ratio.map(|r| format!("{r:.2}")).unwrap_or("-".into()),
                v.target,
                if v.pass { "PASS" } else { "FAIL" }
            );
        }
        if self.lag.is_none() {
            let _ = writeln!(s, "lag p99: not measured (--lag-seconds 0)");
        }
        if let Some(d) = self.drift() {
            let _ = writeln!(
                s,
                "{:<24}{:>w$}{:>w$}{:>8}   box drift check, not a target (the 6.0 destination alone: 1.00 on a steady box){}",
                "ceiling docs/s",
                thousands(self.ceiling().map_or(0.0, |f| f.docs_per_second()) as u64),
                thousands(r.ceiling().map_or(0.0, |f| f.docs_per_second()) as u64),
                format!("{d:.2}"),
                if drifted(d) { " DRIFTED" } else { "" }
            );
            if drifted(d) {
                let _ = writeln!(
                    s,
                    "warning: the destination's insert ceiling differs by over {:.0}% between the two runs: the box (or the destination) was not as fast in both, and the ratios above may be skewed by as much. Run again, with --rounds, on a quiet box.",
                    (DRIFT_LIMIT - 1.0) * 100.0
                );
            }
        }
        // The compared phases that shared the box with other work, in
        // either run: a FAIL (or a PASS) there may be the other work's.
        let shared: Vec<String> = [(self, &old), (r, &new)]
            .iter()
            .flat_map(|(run, label)| {
                run.shared_phases()
                    .into_iter()
                    .filter(|p| p == "copy" || p == "lag")
                    .map(move |p| format!("{p} ({label})"))
            })
            .collect();
        if !shared.is_empty() {
            let _ = writeln!(
                s,
                "warning: other processes took over 10% of the cores during: {}; the ratios above are skewed by it.",
                shared.join(", ")
            );
        }
        let pass = !versus.is_empty() && versus.iter().all(|v| v.pass);
        let _ = writeln!(
            s,
            "within 20% of a 6.0 source's ({}): {}",
            versus.iter().map(|v| v.name).collect::<Vec<_>>().join(", "),
            if pass { "PASS" } else { "FAIL" }
        );
        s
    }

    fn table(&self) -> String {
        let mut s = String::new();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let avg = self.doc_bytes.checked_div(self.docs).unwrap_or(0);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "mongoferry bench: {} docs of ~{} B ({:.1} MB), MongoDB {} -> {} destination, {} CPUs, {:.0} s in all",
            thousands(self.docs),
            thousands(avg),
            self.doc_bytes as f64 / 1e6,
            self.source_label(),
            self.destination_version,
            cpus,
            self.total_seconds
        );
        let _ = writeln!(
            s,
            "Figures vary from run to run by up to ~1.7x on one box: compare the ratios, which come from one run. MB = 10^6 bytes."
        );
        let _ = writeln!(
            s,
            "CPU of other processes is shown per phase: when it is high, the box was shared and the ratios are unreliable too."
        );
        let _ = writeln!(s);
        if let Some(f) = &self.seed {
            let _ = writeln!(s, "{}", row("seeding", f, ""));
        }
        for (i, (c, f)) in self.copies.iter().enumerate() {
            let f = match (i, self.copy()) {
                (0, Some(best)) => best,
                _ => f,
            };
            let mut note = format!(
                "copy_concurrency {c}, batch {} docs/{} KiB, read batch {}, ranges {} (<= {} MiB each)",
                thousands(self.batch_docs as u64),
                thousands(self.batch_kib as u64),
                thousands(self.read_batch_docs as u64),
                f.ranges.unwrap_or(0),
                self.partition_mib
            );
            if let Some(d) = f.data_seconds {
                let _ = write!(note, "; all docs written at {d:.1} s");
            }
            if i == 0 {
                note.push_str(&rounds_note(&self.copy_all()));
            }
            let name = if i == 0 { "copy" } else { "copy (tuning)" };
            let _ = writeln!(s, "{}", row(name, f, &note));
            usage_line(&mut s, f, self.doc_bytes);
        }
        if let Some((f, rep)) = &self.verification {
            let note = format!(
                "full: every document read on both sides and compared, {} ranges at once; {}{}",
                self.verify_concurrency,
                if rep.identical {
                    "identical".to_string()
                } else {
                    format!("{} DIFFERENCES", thousands(rep.differences))
                },
                self.verify_rss
                    .map(|r| format!(
                        "; peak RSS {:.0} MB (the phase started at {:.0} MB)",
                        r.peak_bytes as f64 / 1e6,
                        r.baseline_bytes as f64 / 1e6
                    ))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "{}", row("verify", f, &note));
            usage_line(&mut s, f, self.doc_bytes);
        }
        if let Some(f) = self.ceiling() {
            let note = format!(
                "{} tasks x unordered insertMany of {} pre-built docs{}",
                self.ceiling_concurrency,
                thousands(self.ceiling_batch as u64),
                rounds_note(&self.ceilings.iter().collect::<Vec<_>>())
            );
            let _ = writeln!(s, "{}", row("ceiling", f, &note));
            usage_line(&mut s, f, self.doc_bytes);
        }
        if let Some(f) = self.naive() {
            let note = format!(
                "1 cursor, insertMany of 1,000, sequential{}",
                rounds_note(&self.naives.iter().collect::<Vec<_>>())
            );
            let _ = writeln!(s, "{}", row("naive", f, &note));
            usage_line(&mut s, f, self.doc_bytes);
        }
        let _ = writeln!(s);
        for t in self.targets() {
            let value = match t.name {
                "peak RSS during copy" => format!("{:.0} MB", t.value / 1e6),
                n if n.starts_with("lag") => format!("{:.2} s", t.value),
                _ => format!("{:.2}", t.value),
            };
            let _ = writeln!(
                s,
                "{:<24}{:>10}   target {:<22}{}",
                t.name,
                value,
                t.target,
                if t.pass { "PASS" } else { "MISS" }
            );
        }
        if let Some(rss) = &self.rss {
            let _ = writeln!(
                s,
                "  RSS: {}; phase started at {:.0} MB; largest 100 ms sample {:.0} MB",
                if rss.hwm_reset {
                    "VmHWM of this process (engine + bench), reset at the start of the copy"
                } else {
                    "largest VmRSS sampled every 100 ms (VmHWM could not be reset)"
                },
                rss.baseline_bytes as f64 / 1e6,
                rss.sampled_peak_bytes as f64 / 1e6
            );
        }
        if let Some(lag) = &self.lag {
            let _ = writeln!(
                s,
                "  lag end to end: p50 {:.3} s, p99 {:.3} s, max {:.3} s over {} markers (every 50 ms, insert on the source to seen on the destination, 10 ms polls){}",
                lag.marker.p50,
                lag.marker.p99,
                lag.marker.max,
                lag.marker.samples,
                if lag.markers_missing > 0 {
                    format!(", {} NEVER ARRIVED", lag.markers_missing)
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                s,
                "  lag engine:     p50 {:.0} s, p99 {:.0} s, max {:.0} s over {} samples every 200 ms (lagTimeSeconds, whole seconds, refreshed once a second)",
                lag.engine.p50, lag.engine.p99, lag.engine.max, lag.engine.samples
            );
            let w = &lag.engine_after_warmup;
            let _ = writeln!(
                s,
                "  lag engine without the load's first {} s: p50 {:.0} s, p99 {:.0} s, max {:.0} s over {} samples (leaves out any lag carried over from the quiet time before the load)",
                super::lag::ENGINE_WARMUP.as_secs(),
                w.p50,
                w.p99,
                w.max,
                w.samples
            );
            let _ = writeln!(
                s,
                "  write load: {} writes/s achieved of {} requested ({} tasks with w:1, {:.0} s); engine applied {} events/s",
                thousands(lag.achieved_writes_per_second as u64),
                thousands(lag.requested_writes_per_second as u64),
                lag.load_tasks,
                lag.seconds,
                thousands(lag.events_applied_per_second as u64)
            );
            if let Some(u) = &lag.usage {
                let _ = writeln!(
                    s,
                    "  while loaded: {}; engine lag settled {:.1} s after the copy, before the load",
                    cpu_summary(u),
                    lag.settle_seconds
                );
            }
            if let Some(rss) = &self.lag_rss {
                let _ = writeln!(
                    s,
                    "  peak RSS while applying: {:.0} MB",
                    rss.peak_bytes as f64 / 1e6
                );
            }
        } else {
            let _ = writeln!(s, "lag: not measured (--lag-seconds 0)");
        }
        if let Some(v) = &self.verify {
            let _ = writeln!(
                s,
                "{:<24}source {} docs, destination {} docs, dbHash {}   {}",
                "verify after commit",
                thousands(v.source_docs),
                thousands(v.destination_docs),
                if v.hash_match { "equal" } else { "DIFFERENT" },
                if v.ok() { "OK" } else { "FAILED" }
            );
            for m in v.count_mismatches.iter().chain(&v.hash_mismatches) {
                let _ = writeln!(s, "  differs: {m}");
            }
        }
        let shared = self.shared_phases();
        if !shared.is_empty() {
            let _ = writeln!(
                s,
                "warning: other processes took over 10% of the cores during: {}. Those figures, and ratios built on them, are skewed; run again on a quiet box.",
                shared.join(", ")
            );
        }
        s
    }

    /// The phases during which other processes took a share of the box.
    fn shared_phases(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: String, f: Option<&Figure>| {
            if f.and_then(|f| f.usage).is_some_and(|u| u.shared()) {
                out.push(name);
            }
        };
        check("copy".into(), self.copy());
        for (c, f) in self.copies.iter().skip(1) {
            check(format!("copy (copy_concurrency {c})"), Some(f));
        }
        check("verify".into(), self.verification.as_ref().map(|(f, _)| f));
        check("ceiling".into(), self.ceiling());
        check("naive".into(), self.naive());
        if self
            .lag
            .as_ref()
            .and_then(|l| l.usage)
            .is_some_and(|u| u.shared())
        {
            out.push("lag".into());
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let figure = |f: &Figure| {
            json!({
                "docs": f.docs,
                "bytes": f.bytes,
                "seconds": f.seconds,
                "dataSeconds": f.data_seconds,
                "ranges": f.ranges,
                "docsPerSecond": f.docs_per_second(),
                "mbPerSecond": f.mb_per_second(),
                "usage": f.usage,
            })
        };
        let mb_ratio = |o: Option<&Figure>| {
            let (c, o) = (self.copy()?, o?);
            (o.mb_per_second() > 0.0).then(|| c.mb_per_second() / o.mb_per_second())
        };
        json!({
            "docs": self.docs,
            "docSize": self.doc_size,
            "docBytes": self.doc_bytes,
            "sourceVersion": self.source_version.as_str(),
            "mongodbVersion": self.mongodb_version,
            "destinationVersion": self.destination_version,
            "eventSource": self.event_source,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "seed": self.seed.as_ref().map(figure),
            "copy": self.copy().map(figure),
            "copyRounds": self.copy_all().into_iter().map(figure).collect::<Vec<_>>(),
            "copies": self.copies.iter().map(|(c, f)| json!({
                "copyConcurrency": c,
                "batchDocs": self.batch_docs,
                "batchKib": self.batch_kib,
                "readBatchDocs": self.read_batch_docs,
                "partitionMib": self.partition_mib,
                "figure": figure(f),
            })).collect::<Vec<_>>(),
            "ceiling": self.ceiling().map(|f| json!({
                "concurrency": self.ceiling_concurrency,
                "batch": self.ceiling_batch,
                "figure": figure(f),
            })),
            "ceilingRounds": self.ceilings.iter().map(figure).collect::<Vec<_>>(),
            "naive": self.naive().map(figure),
            "naiveRounds": self.naives.iter().map(figure).collect::<Vec<_>>(),
            "ratios": {
                "copyToCeiling": self.ratio(self.ceiling()),
                "copyToNaive": self.ratio(self.naive()),
                "copyToCeilingMb": mb_ratio(self.ceiling()),
                "copyToNaiveMb": mb_ratio(self.naive()),
                "verifyToCopy": self.verify_ratio(),
            },
            "verification": self.verification.as_ref().map(|(f, r)| json!({
                "concurrency": self.verify_concurrency,
                "figure": figure(f),
                "identical": r.identical,
                "differences": r.differences,
                "rss": self.verify_rss,
            })),
            "rssDuringCopy": self.rss,
            "rssWhileApplying": self.lag_rss,
            "lag": self.lag,
            "eventsAppliedTotal": self.events_applied,
            "verify": self.verify,
            "targets": self.targets().iter().map(|t| json!({
                "name": t.name,
                "value": t.value,
                "target": t.target,
                "pass": t.pass,
            })).collect::<Vec<_>>(),
            "sharedBoxPhases": self.shared_phases(),
            "totalSeconds": self.total_seconds,
            "against60": self.reference.as_deref().map(|r| {
                let versus = self.versus();
                json!({
                    "reference": r.json(),
                    "figures": versus.iter().map(|v| json!({
                        "name": v.name,
                        "old": v.old,
                        "new": v.new,
                        "ratio": v.ratio,
                        "target": v.target,
                        "pass": v.pass,
                    })).collect::<Vec<_>>(),
                    "ceilingDrift": self.drift(),
                    "pass": !versus.is_empty() && versus.iter().all(|v| v.pass),
                })
            }),
        })
    }
}

/// Whether an older source's lag p99 `old` is within 20% of a 6.0
/// source's `new` (see [`OLD_LAG_SLACK_SECONDS`] for tiny lags).
fn old_lag_within(old: f64, new: f64) -> bool {
    old <= TARGET_OLD_LAG_RATIO * new || old - new <= OLD_LAG_SLACK_SECONDS
}

/// Whether the box's speed changed too much between two runs.
fn drifted(ratio: f64) -> bool {
    !(1.0 / DRIFT_LIMIT..=DRIFT_LIMIT).contains(&ratio)
}

/// The fastest figure.
fn best(figures: Vec<&Figure>) -> Option<&Figure> {
    figures
        .into_iter()
        .max_by(|a, b| a.docs_per_second().total_cmp(&b.docs_per_second()))
}

/// `; best of 3 rounds: 1, 2, 3 docs/s` when there were several rounds.
fn rounds_note(figures: &[&Figure]) -> String {
    if figures.len() < 2 {
        return String::new();
    }
    let each: Vec<String> = figures
        .iter()
        .map(|f| thousands(f.docs_per_second() as u64))
        .collect();
    format!(
        "; best of {} rounds: {} docs/s",
        figures.len(),
        each.join(", ")
    )
}

fn row(name: &str, f: &Figure, note: &str) -> String {
    format!(
        "{:<14}{:>10} docs/s {:>8.1} MB/s {:>8.1} s   {}",
        name,
        thousands(f.docs_per_second() as u64),
        f.mb_per_second(),
        f.seconds,
        note
    )
}

/// Where a phase's time went, under its row.
fn usage_line(s: &mut String, f: &Figure, data_bytes: u64) {
    let Some(u) = &f.usage else { return };
    let amplification = if data_bytes > 0 {
        format!(
            " ({:.1}x the data)",
            u.source_cache_read_bytes as f64 / data_bytes as f64
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{:<14}{}; read into cache: source {:.0} MB{amplification}, destination {:.0} MB",
        "",
        cpu_summary(u),
        u.source_cache_read_bytes as f64 / 1e6,
        u.destination_cache_read_bytes as f64 / 1e6,
    );
}

/// `1234567` as `1,234,567`.
/// Where the CPU went during a phase, and whether the box was shared.
fn cpu_summary(u: &Usage) -> String {
    format!(
        "cpu s: source {:.1}, destination {:.1}, bench {:.1} ({:.0}% of the cores), other processes {:.1} ({:.0}%{})",
        u.source_cpu_seconds,
        u.destination_cpu_seconds,
        u.bench_cpu_seconds,
        u.busy() * 100.0,
        u.other_cpu_seconds,
        u.other() * 100.0,
        if u.shared() { ", SHARED BOX" } else { "" },
    )
}

use crate::display::thousands;

#[cfg(test)]
mod tests {
    use super::super::lag::Percentiles;
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn older_source_lag_rule() {
        // The ratio decides above 0.4 s...
        assert!(old_lag_within(1.25, 1.0));
        assert!(!old_lag_within(1.30, 1.0));
        // ...and the 0.1 s slack below it, where the ratio is noise...
        assert!(old_lag_within(0.06, 0.04));
        assert!(old_lag_within(0.35, 0.25));
        assert!(!old_lag_within(0.40, 0.25));
        // ...but both being under the 2 s target is not enough.
        assert!(!old_lag_within(1.9, 0.05));
        assert!(old_lag_within(0.0, 0.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p99, p.max, p.samples), (50.0, 99.0, 100.0, 100));
        let one = Percentiles::of(vec![0.3]);
        assert_eq!((one.p50, one.p99), (0.3, 0.3));
        assert_eq!(Percentiles::of(Vec::new()).samples, 0);
    }
}
