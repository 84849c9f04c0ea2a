//! `GET /metrics`: the migration's progress in the Prometheus text
//! exposition format (version 0.0.4), for a Prometheus on this machine.
//!
//! Every figure comes from one [`Progress`] snapshot taken at the scrape,
//! the same one `GET /api/v1/progress` returns; nothing is counted here.
//! Names carry the `mongoferry_` prefix and their unit (`_bytes`,
//! `_seconds`, `_ratio`, `_total` for counters), and stay stable: a
//! dashboard or an alert may rely on them. A figure the engine does not
//! know yet (the lag before the first change event, the source's health
//! before its first sample, a rate cap at the full level) is left out
//! rather than shown as 0.
//!
//! The engine does not count its retries, so there is no retry metric.

use mongoferry::progress::{Latency, SourceImpact};
use mongoferry::{EventSource, LoadStatus, Phase, Progress, State};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The answer's `Content-Type`: `text/plain; version=0.0.4; charset=utf-8`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

const STATES: [State; 7] = [
    State::Idle,
    State::Running,
    State::Paused,
    State::Committing,
    State::Committed,
    State::Reversing,
    State::Failed,
];

const PHASES: [Phase; 5] = [
    Phase::Starting,
    Phase::Copying,
    Phase::Applying,
    Phase::Committing,
    Phase::Done,
];

/// A phase as progress's JSON names it.
fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Starting => "starting",
        Phase::Copying => "copying",
        Phase::Applying => "applying",
        Phase::Committing => "committing",
        Phase::Done => "done",
    }
}

/// An event source as a label value.
fn event_source_name(source: EventSource) -> &'static str {
    match source {
        EventSource::ChangeStream => "change_stream",
        EventSource::Oplog => "oplog",
    }
}

/// The scrape's text for one progress snapshot.
pub fn render(progress: Progress) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("mongoferry");
    registry.register_collector(Box::new(Snapshot(progress)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One progress snapshot, encoded as it is at the scrape.
#[derive(Debug)]
struct Snapshot(Progress);

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let p = &self.0;
        let e = &mut e;
        info(
            e,
            "build",
            "The mongoferry version serving these metrics.",
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
        )?;
        // Known once the migration is set up: before, no series.
        if !p.migration_id.is_empty() {
            let mut migration = vec![("migration_id", p.migration_id.clone())];
            if let Some(source) = p.event_source {
                migration.push(("event_source", event_source_name(source).to_string()));
            }
            info(
                e,
                "migration",
                "The migration's id, and where the sync reads the source's changes from (change_stream or oplog) once that is known.",
                migration,
            )?;
        }
        gauge_family(
            e,
            "state",
            "1 for the migration's current state (IDLE, RUNNING, PAUSED, COMMITTING, COMMITTED, REVERSING, FAILED), 0 for the others.",
            STATES.map(|s| ([("state", s.as_str())], i64::from(s == p.state))),
        )?;
        gauge_family(
            e,
            "phase",
            "1 for what a running migration is doing now (starting, copying, applying, committing, done), 0 for the others.",
            PHASES.map(|ph| ([("phase", phase_name(ph))], i64::from(ph == p.phase))),
        )?;
        gauge(
            e,
            "can_commit",
            "1 when the migration can be committed now (copy done, lag small), else 0.",
            i64::from(p.can_commit),
        )?;
        gauge(
            e,
            "can_write",
            "1 when the application may write to the destination, else 0.",
            i64::from(p.can_write),
        )?;
        if let Some(lag) = p.lag_time_seconds {
            gauge(
                e,
                "lag_seconds",
                "Source cluster time minus the time of the last change event applied to the destination.",
                lag,
            )?;
        }
        counter(
            e,
            "events_applied",
            "Change events applied to the destination.",
            p.total_events_applied,
        )?;
        counter(
            e,
            "documents_failed",
            "Documents that could not be written to the destination; each is recorded in __mongoferry.problems.",
            p.documents_failed,
        )?;
        if let Some(eta) = p.eta_seconds {
            gauge(
                e,
                "eta_seconds",
                "Seconds until the current long step (the copy, the commit's catch-up) ends, at the current rate.",
                eta,
            )?;
        }
        copy(e, p)?;
        if let Some(load) = &p.load {
            load_metrics(e, load)?;
        }
        if let Some(impact) = &p.source_impact {
            source_impact(e, impact)?;
        }
        Ok(())
    }
}

/// The copy's totals and each collection's.
fn copy(e: &mut DescriptorEncoder, p: &Progress) -> std::fmt::Result {
    let c = &p.collection_copy;
    gauge(
        e,
        "copy_total_bytes",
        "Bytes of documents to copy, estimated from the source's collection statistics.",
        c.estimated_total_bytes,
    )?;
    gauge(
        e,
        "copy_copied_bytes",
        "Bytes of documents copied so far.",
        c.estimated_copied_bytes,
    )?;
    gauge(
        e,
        "copy_total_documents",
        "Documents to copy, estimated from the source's collection statistics.",
        c.estimated_total_docs,
    )?;
    gauge(
        e,
        "copy_copied_documents",
        "Documents copied so far.",
        c.copied_docs,
    )?;
    let per_collection = |pick: fn(&mongoferry::progress::CollectionProgress) -> u64| {
        c.collections
            .iter()
            .map(move |col| ([("namespace", col.namespace.as_str())], pick(col)))
    };
    gauge_family(
        e,
        "collection_copy_total_bytes",
        "Bytes of a collection's documents to copy, estimated from its statistics, by namespace.",
        per_collection(|c| c.estimated_total_bytes),
    )?;
    gauge_family(
        e,
        "collection_copy_copied_bytes",
        "Bytes of a collection's documents copied so far, by namespace.",
        per_collection(|c| c.copied_bytes),
    )?;
    gauge_family(
        e,
        "collection_copy_total_documents",
        "A collection's documents to copy, estimated from its statistics, by namespace.",
        per_collection(|c| c.estimated_total_docs),
    )?;
    gauge_family(
        e,
        "collection_copy_copied_documents",
        "A collection's documents copied so far, by namespace.",
        per_collection(|c| c.copied_docs),
    )?;
    gauge_family(
        e,
        "collection_copy_done",
        "1 when a collection's copy is finished, else 0, by namespace.",
        per_collection(|c| u64::from(c.done)),
    )
}

/// The load level the copy is held to, and what the adaptive mode does.
fn load_metrics(e: &mut DescriptorEncoder, load: &LoadStatus) -> std::fmt::Result {
    info(
        e,
        "load_level",
        "The load level the copy is held to: gentle, normal, full, or a rate such as 12.5 MiB/s.",
        vec![("level", load.setting.level.to_string())],
    )?;
    if let Some(cap) = load.bytes_per_second {
        gauge(
            e,
            "load_rate_cap_bytes_per_second",
            "The copy's read rate cap now, in bytes per second, after the adaptive mode's slowdowns; absent when the copy is not capped.",
            cap,
        )?;
    }
    gauge(
        e,
        "load_readers",
        "Ranges the copy may read at once now.",
        load.readers,
    )?;
    gauge(
        e,
        "load_throttling",
        "1 while the adaptive mode holds the copy below its level, else 0.",
        i64::from(load.throttling),
    )?;
    if let Some(pct) = load.setting.max_source_latency_increase_percent {
        gauge(
            e,
            "load_max_source_latency_increase_ratio",
            "The adaptive mode's limit on how much slower the source's reads may get than idle (0.2 is 20%).",
            pct / 100.0,
        )?;
    }
    if let Some(s) = load.setting.max_secondary_lag_seconds {
        gauge(
            e,
            "load_max_secondary_lag_seconds",
            "The adaptive mode's limit on how far a secondary of the source may fall behind its primary.",
            s,
        )?;
    }
    Ok(())
}

/// What the migration's reads do to the source, as measured on it.
fn source_impact(e: &mut DescriptorEncoder, s: &SourceImpact) -> std::fmt::Result {
    let quantiles = |l: Latency| {
        [(0.5, l.p50), (0.9, l.p90), (0.99, l.p99)].map(|(q, ms)| ([("quantile", q)], ms / 1000.0))
    };
    if let Some(l) = s.read_latency_ms {
        gauge_family(
            e,
            "source_read_latency_seconds",
            "Latency of a point read on the source's primary, timed by mongoferry several times a second over the last seconds, by quantile.",
            quantiles(l),
        )?;
    }
    if let Some(l) = s.idle_read_latency_ms {
        gauge_family(
            e,
            "source_idle_read_latency_seconds",
            "The same point reads' latency measured before the copy read anything, by quantile.",
            quantiles(l),
        )?;
    }
    let figures: [(&str, &str, Option<f64>); 9] = [
        (
            "source_read_latency_increase_ratio",
            "How much slower the source's reads are than idle, as the adaptive mode judges it (0.2 is 20%).",
            s.read_latency_increase_percent.map(|p| p / 100.0),
        ),
        (
            "source_write_latency_seconds",
            "Mean latency of the source's writes (all the applications') over the last seconds, as the server counts them.",
            s.write_latency_ms.map(|ms| ms / 1000.0),
        ),
        (
            "source_idle_write_latency_seconds",
            "Mean latency of the source's writes measured before the copy read anything.",
            s.idle_write_latency_ms.map(|ms| ms / 1000.0),
        ),
        (
            "source_queued_operations",
            "Operations on the source waiting for a lock or a storage ticket.",
            s.queued_operations.map(|n| n as f64),
        ),
        (
            "source_read_tickets_in_use",
            "The source's storage read tickets in use.",
            s.read_tickets_out.map(|n| n as f64),
        ),
        (
            "source_read_tickets_capacity",
            "The source's storage read tickets, in use or not.",
            s.read_tickets_total.map(|n| n as f64),
        ),
        (
            "source_cache_used_ratio",
            "How full the source's WiredTiger cache is, of its size (0.8 is 80%).",
            s.cache_used_percent.map(|p| p / 100.0),
        ),
        (
            "source_cache_dirty_ratio",
            "How much of the source's WiredTiger cache is dirty, of its size.",
            s.cache_dirty_percent.map(|p| p / 100.0),
        ),
        (
            "source_secondary_lag_seconds",
            "How far the source's furthest secondary is behind its primary.",
            s.secondary_lag_seconds,
        ),
    ];
    for (name, help, value) in figures {
        if let Some(v) = value {
            gauge(e, name, help, v)?;
        }
    }
    if let Some(headroom) = s.oplog_headroom_seconds {
        gauge(
            e,
            "source_oplog_headroom_seconds",
            "How long the source's oplog still keeps the migration's start.",
            headroom,
        )?;
    }
    Ok(())
}

fn gauge<N: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(m)
}

/// A counter; its name gets `_total`.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(m)
}

/// An info metric: its name gets `_info`, its one series the value 1.
fn info(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: Vec<(&'static str, String)>,
) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Info)?;
    Info::new(labels).encode(m)
}

/// A gauge with one series per label set.
fn gauge_family<L: EncodeLabelSet, N: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, N)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongoferry::progress::{CollectionCopy, CollectionProgress};
    use mongoferry::{LoadLevel, LoadSetting};
    use std::collections::BTreeMap;

    /// `name{labels}` to value, and the names with HELP and with TYPE.
    struct Parsed {
        samples: BTreeMap<String, f64>,
        help: Vec<String>,
        types: BTreeMap<String, String>,
    }

    fn parse(text: &str) -> Parsed {
        let mut parsed = Parsed {
            samples: BTreeMap::new(),
            help: vec![],
            types: BTreeMap::new(),
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("a HELP line has text");
                assert!(!help.is_empty(), "{line}");
                parsed.help.push(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("a TYPE line has a type");
                parsed.types.insert(name.to_string(), kind.to_string());
            } else {
                let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
                parsed.samples.insert(series.to_string(), value);
            }
        }
        parsed
    }

    fn family(series: &str) -> &str {
        series.split('{').next().unwrap_or(series)
    }

    fn full_progress() -> Progress {
        Progress {
            migration_id: "m-1".into(),
            state: State::Committed,
            phase: Phase::Done,
            can_commit: false,
            can_write: true,
            lag_time_seconds: Some(0.25),
            event_source: Some(EventSource::ChangeStream),
            total_events_applied: 1234,
            documents_failed: 2,
            eta_seconds: Some(0.0),
            collection_copy: CollectionCopy {
                estimated_total_bytes: 3000,
                estimated_copied_bytes: 3000,
                estimated_total_docs: 30,
                copied_docs: 30,
                collections: vec![
                    CollectionProgress {
                        namespace: "shop.orders".into(),
                        estimated_total_docs: 20,
                        estimated_total_bytes: 2000,
                        copied_docs: 20,
                        copied_bytes: 2000,
                        done: true,
                    },
                    CollectionProgress {
                        namespace: "odd.a\"b\\c".into(),
                        estimated_total_docs: 10,
                        estimated_total_bytes: 1000,
                        copied_docs: 10,
                        copied_bytes: 1000,
                        done: false,
                    },
                ],
                ..Default::default()
            },
            load: Some(Box::new(LoadStatus {
                setting: LoadSetting {
                    level: LoadLevel::MibPerSecond(12.5),
                    max_source_latency_increase_percent: Some(20.0),
                    max_secondary_lag_seconds: Some(10.0),
                },
                readers: 2,
                bytes_per_second: Some(5.0 * 1024.0 * 1024.0),
                throttling: true,
                reason: Some("a reason".into()),
            })),
            source_impact: Some(Box::new(SourceImpact {
                read_latency_ms: Some(Latency {
                    p50: 1.0,
                    p90: 2.0,
                    p99: 5.0,
                }),
                idle_read_latency_ms: Some(Latency {
                    p50: 0.5,
                    p90: 1.0,
                    p99: 2.0,
                }),
                read_latency_increase_percent: Some(100.0),
                write_latency_ms: Some(3.0),
                idle_write_latency_ms: Some(1.5),
                queued_operations: Some(4),
                read_tickets_out: Some(3),
                read_tickets_total: Some(128),
                cache_used_percent: Some(80.0),
                cache_dirty_percent: Some(5.0),
                secondary_lag_seconds: Some(1.0),
                lagging_member: Some("h:1".into()),
                oplog_headroom_seconds: Some(3600.0),
                not_measured: vec![],
            })),
            ..Default::default()
        }
    }

    #[test]
    fn every_figure_of_a_full_snapshot_is_a_described_sample() {
        let text = render(full_progress()).unwrap();
        let parsed = parse(&text);
        let s = |k: &str| {
            *parsed
                .samples
                .get(k)
                .unwrap_or_else(|| panic!("no {k} in:\n{text}"))
        };
        assert_eq!(s(r#"mongoferry_state{state="COMMITTED"}"#), 1.0);
        assert_eq!(s(r#"mongoferry_state{state="RUNNING"}"#), 0.0);
        assert_eq!(s(r#"mongoferry_phase{phase="done"}"#), 1.0);
        assert_eq!(
            s(r#"mongoferry_migration_info{migration_id="m-1",event_source="change_stream"}"#),
            1.0
        );
        assert_eq!(s("mongoferry_can_commit"), 0.0);
        assert_eq!(s("mongoferry_can_write"), 1.0);
        assert_eq!(s("mongoferry_lag_seconds"), 0.25);
        assert_eq!(s("mongoferry_events_applied_total"), 1234.0);
        assert_eq!(s("mongoferry_documents_failed_total"), 2.0);
        assert_eq!(s("mongoferry_copy_total_bytes"), 3000.0);
        assert_eq!(s("mongoferry_copy_copied_documents"), 30.0);
        assert_eq!(
            s(r#"mongoferry_collection_copy_copied_bytes{namespace="shop.orders"}"#),
            2000.0
        );
        // A namespace may hold a quote or a backslash: they are escaped.
        assert_eq!(
            s(r#"mongoferry_collection_copy_done{namespace="odd.a\"b\\c"}"#),
            0.0
        );
        assert_eq!(s(r#"mongoferry_load_level_info{level="12.5 MiB/s"}"#), 1.0);
        assert_eq!(
            s("mongoferry_load_rate_cap_bytes_per_second"),
            5.0 * 1024.0 * 1024.0
        );
        assert_eq!(s("mongoferry_load_throttling"), 1.0);
        assert_eq!(s("mongoferry_load_max_source_latency_increase_ratio"), 0.2);
        assert_eq!(
            s(r#"mongoferry_source_read_latency_seconds{quantile="0.99"}"#),
            0.005
        );
        assert_eq!(s("mongoferry_source_read_latency_increase_ratio"), 1.0);
        assert_eq!(s("mongoferry_source_write_latency_seconds"), 0.003);
        assert_eq!(s("mongoferry_source_queued_operations"), 4.0);
        assert_eq!(s("mongoferry_source_cache_used_ratio"), 0.8);
        assert_eq!(s("mongoferry_source_oplog_headroom_seconds"), 3600.0);
        // Every sample's family is described and typed; counters end in
        // _total and nothing else does.
        for series in parsed.samples.keys() {
            let name = family(series);
            assert!(name.starts_with("mongoferry_"), "{series}");
            assert!(parsed.help.iter().any(|h| h == name), "no HELP: {series}");
            let kind = parsed
                .types
                .get(name)
                .unwrap_or_else(|| panic!("no TYPE: {series}"));
            assert_eq!(kind == "counter", name.ends_with("_total"), "{series}");
        }
    }

    #[test]
    fn figures_not_known_yet_are_left_out() {
        let text = render(Progress::default()).unwrap();
        let parsed = parse(&text);
        assert_eq!(
            parsed.samples.get(r#"mongoferry_state{state="IDLE"}"#),
            Some(&1.0),
            "{text}"
        );
        for absent in [
            "mongoferry_lag_seconds",
            "mongoferry_eta_seconds",
            "mongoferry_load_",
            "mongoferry_source_",
            "mongoferry_migration_info",
        ] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
        assert_eq!(
            parsed.samples.get("mongoferry_events_applied_total"),
            Some(&0.0)
        );
    }
}
