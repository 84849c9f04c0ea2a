//! `GET /metrics` of a running `mongoferry sync`, scraped as Prometheus
//! would, and the shell completions and man pages the CLI generates.

use mongoferry_test_support as support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mongoferry::Namespace;
use reqwest::Method;
use serde_json::json;

use support::*;

/// One sample: its family's name, its labels and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed: the samples and the families with HELP and TYPE.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    help: BTreeSet<String>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of the one sample of `name` whose labels include `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.samples.iter().filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let first = found.next()?;
        assert!(found.next().is_none(), "two samples of {name} {labels:?}");
        Some(first.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape: {self:#?}"))
    }

    /// The states whose series is 1.
    fn current_states(&self) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| s.name == "mongoferry_state" && s.value == 1.0)
            .filter_map(|s| s.labels.get("state").cloned())
            .collect()
    }
}

/// Reads the text exposition format strictly: every line is a HELP, a
/// TYPE or a sample whose value is a number; fails the test otherwise.
fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape {
        samples: vec![],
        help: BTreeSet::new(),
        types: BTreeMap::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(!help.trim().is_empty(), "a HELP without text: {line}");
            scrape.help.insert(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("a TYPE line names a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            scrape.types.insert(name.to_string(), kind.to_string());
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            scrape.samples.push(sample(line));
        }
    }
    scrape
}

/// `name{k="v",...} value`, with the format's escapes in label values.
fn sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("a sample without a value: {line}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("a value that is not a number: {line}"));
    let (name, mut rest) = match series.split_once('{') {
        Some((name, rest)) => (name, rest),
        None => (series, "}"),
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "a bad metric name: {line}"
    );
    let mut labels = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches(',');
        if rest == "}" {
            break;
        }
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("a bad label: {line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("a bad escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("an unterminated label value: {line}"),
            }
        };
        labels.insert(key.to_string(), value);
        rest = &after[end + 1..];
    }
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Scrapes `/metrics`, checking what every scrape must hold: a 200 in the
/// text format, and every sample a number of a family with HELP and TYPE.
async fn scrape(port: u16) -> Option<Scrape> {
    let (status, content_type, text) = api_text(port, "/metrics").await?;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let scrape = parse(&text);
    assert!(!scrape.samples.is_empty(), "{text}");
    for s in &scrape.samples {
        assert!(s.name.starts_with("mongoferry_"), "{s:?}");
        assert!(s.value.is_finite(), "{s:?}");
        assert!(scrape.help.contains(&s.name), "no HELP for {s:?}:\n{text}");
        let kind = scrape
            .types
            .get(&s.name)
            .unwrap_or_else(|| panic!("no TYPE for {s:?}:\n{text}"));
        assert_eq!(kind == "counter", s.name.ends_with("_total"), "{s:?}");
    }
    Some(scrape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_follow_a_cli_sync_from_running_to_commit() {
    let (pair, src, _dest) = clusters().await;
    let namespaces = [
        Namespace::new("shop", "orders"),
        Namespace::new("shop", "customers"),
        Namespace::new("logs", "events"),
    ];
    seed_all(
        &src,
        &[
            (namespaces[0].clone(), 20_000, 300),
            (namespaces[1].clone(), 5_000, 200),
            (namespaces[2].clone(), 8_000, 100),
        ],
    )
    .await;
    let port = api_port();
    let mut sync = CliProcess::sync_pair(&pair, port, &["--load", "normal", "--linger", "3"]);
    wait_api(
        &mut sync,
        port,
        "the sync to run",
        Duration::from_secs(60),
        |p| p["state"] == "RUNNING",
    )
    .await;

    let running = scrape(port).await.expect("/metrics answers");
    assert_eq!(running.current_states(), ["RUNNING"], "{running:#?}");
    for state in ["IDLE", "PAUSED", "COMMITTING", "COMMITTED", "FAILED"] {
        assert_eq!(running.value("mongoferry_state", &[("state", state)]), 0.0);
    }
    assert_eq!(
        running.value(
            "mongoferry_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // A foreign Host (DNS rebinding) or a page's Origin is refused here as
    // on every other endpoint, in the API's JSON shape; so is a POST.
    let rebound = [("Host", "attacker.example:27182")];
    let (code, reply) = api_raw(port, Method::GET, "/metrics", &rebound, "").await;
    assert_eq!(
        (code, &reply["error"]),
        (403, &json!("forbidden")),
        "{reply}"
    );
    let page = [("Origin", "http://attacker.example")];
    let (code, reply) = api_raw(port, Method::GET, "/metrics", &page, "").await;
    assert_eq!(
        (code, &reply["error"]),
        (403, &json!("forbidden")),
        "{reply}"
    );
    let (code, reply) = api_raw(port, Method::POST, "/metrics", &[], "").await;
    assert_eq!(
        (code, &reply["error"]),
        (405, &json!("method_not_allowed")),
        "{reply}"
    );

    wait_api(
        &mut sync,
        port,
        "canCommit",
        Duration::from_secs(120),
        |p| p["canCommit"] == true,
    )
    .await;
    // The scrape reads the same snapshot progress does: between two
    // readings of progress, it lies between them.
    let before = api_progress(port).await.expect("progress");
    let ready = scrape(port).await.expect("/metrics answers");
    let after = api_progress(port).await.expect("progress");
    let events = ready.value("mongoferry_events_applied_total", &[]);
    assert!(
        before["totalEventsApplied"].as_f64().unwrap_or(f64::MAX) <= events
            && events <= after["totalEventsApplied"].as_f64().unwrap_or(0.0),
        "{before:#}\n{events}\n{after:#}"
    );
    assert_eq!(ready.current_states(), ["RUNNING"], "{ready:#?}");
    assert_eq!(ready.value("mongoferry_can_commit", &[]), 1.0);
    assert!(ready.value("mongoferry_lag_seconds", &[]) >= 0.0);
    assert_eq!(ready.value("mongoferry_documents_failed_total", &[]), 0.0);
    assert!(ready.value("mongoferry_load_rate_cap_bytes_per_second", &[]) > 0.0);
    assert_eq!(ready.value("mongoferry_load_throttling", &[]), 0.0);
    assert_eq!(
        ready.value("mongoferry_load_level_info", &[("level", "normal")]),
        1.0
    );
    let id = before["migrationId"].as_str().unwrap_or_default();
    assert!(!id.is_empty(), "{before:#}");
    assert_eq!(
        ready.value("mongoferry_migration_info", &[("migration_id", id)]),
        1.0
    );
    let total = ready.value("mongoferry_copy_total_bytes", &[]);
    let copied = ready.value("mongoferry_copy_copied_bytes", &[]);
    assert!(total > 0.0 && copied >= total, "copied {copied} of {total}");
    assert!(ready.value("mongoferry_copy_copied_documents", &[]) >= 33_000.0);
    for ns in &namespaces {
        let ns = ns.to_string();
        let labels = [("namespace", ns.as_str())];
        let total = ready.value("mongoferry_collection_copy_total_bytes", &labels);
        let copied = ready.value("mongoferry_collection_copy_copied_bytes", &labels);
        assert!(total > 0.0 && copied >= total, "{ns}: {copied} of {total}");
        assert!(ready.value("mongoferry_collection_copy_copied_documents", &labels) > 0.0);
        assert_eq!(ready.value("mongoferry_collection_copy_done", &labels), 1.0);
    }
    // The source's health, as the sampler reads it once a second.
    assert!(
        ready
            .get("mongoferry_source_cache_used_ratio", &[])
            .is_some()
            || ready
                .get("mongoferry_source_queued_operations", &[])
                .is_some(),
        "no figure of the source's health: {ready:#?}"
    );

    // Commit, then scrape until the sync exits: the state goes on from
    // RUNNING to COMMITTED, which --linger keeps on show for 3 s.
    let out = run_cli(
        &["commit", "--port", &port.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut seen: Vec<String> = vec![];
    let start = Instant::now();
    while sync.try_status().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the sync did not exit after commit; stderr:\n{}",
            sync.stderr()
        );
        // A scrape that finds the API gone, or half an answer as the
        // process exits, ends the loop.
        let Some((200, _, text)) = api_text(port, "/metrics").await else {
            break;
        };
        for state in parse(&text).current_states() {
            if seen.last() != Some(&state) {
                seen.push(state);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = sync.wait_exit(Duration::from_secs(120)).await;
    assert!(status.success(), "stderr:\n{}", sync.stderr());
    assert!(
        seen.iter()
            .all(|s| ["RUNNING", "COMMITTING", "COMMITTED"].contains(&s.as_str())),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("COMMITTED"),
        "the last scrape sees COMMITTED: {seen:?}"
    );
}

/// Each subcommand, as `mongoferry --help` lists them.
const SUBCOMMANDS: [&str; 12] = [
    "sync",
    "progress",
    "pause",
    "resume",
    "commit",
    "throttle",
    "bench",
    "verify",
    "profile",
    "ping",
    "check",
    "completions",
];

#[tokio::test]
async fn completions_cover_every_subcommand_in_bash_zsh_and_fish() {
    let out = run_cli(&["completions", "bash"], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("_mongoferry()"), "{}", out.stdout);
    assert!(
        out.stdout.contains("complete -F _mongoferry"),
        "{}",
        out.stdout
    );
    for sub in SUBCOMMANDS {
        assert!(out.stdout.contains(sub), "bash: no {sub}");
    }
    assert!(out.stdout.contains("--source"), "bash: sync's options");

    for (shell, marker) in [
        ("zsh", "#compdef mongoferry"),
        ("fish", "complete -c mongoferry"),
    ] {
        let out = run_cli(&["completions", shell], Duration::from_secs(30)).await;
        assert_eq!(out.code, Some(0), "{shell}: {out:?}");
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        for sub in SUBCOMMANDS {
            assert!(out.stdout.contains(sub), "{shell}: no {sub}");
        }
    }

    // The help says how to install them; an unknown shell is refused.
    let out = run_cli(&["completions", "--help"], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    for text in ["bash", "zsh", "fish", "bash-completion/completions"] {
        assert!(out.stdout.contains(text), "no {text}: {}", out.stdout);
    }
    let out = run_cli(&["completions", "tcsh"], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[tokio::test]
async fn man_writes_a_page_for_the_command_and_each_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let man1 = dir.path().join("man1");
    let man1_s = man1.to_string_lossy().to_string();
    let out = run_cli(&["man", &man1_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    // It prints each page it wrote, the main one first.
    let written: Vec<&str> = out.stdout.lines().collect();
    assert!(
        written
            .first()
            .is_some_and(|p| p.ends_with("/mongoferry.1")),
        "{out:?}"
    );
    for page in &written {
        assert!(std::path::Path::new(page).is_file(), "{page}");
    }
    for sub in SUBCOMMANDS {
        let page = man1.join(format!("mongoferry-{sub}.1"));
        assert!(page.is_file(), "no {}: {written:?}", page.display());
    }
    // `man` is for packagers: hidden from --help and from the pages.
    assert!(!man1.join("mongoferry-man.1").exists());
    let help = run_cli(&["--help"], Duration::from_secs(30)).await;
    assert!(
        !help
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("man ")),
        "{}",
        help.stdout
    );

    let main = std::fs::read_to_string(man1.join("mongoferry.1")).expect("mongoferry.1");
    assert!(main.contains("\n.TH MONGOFERRY 1 "), "{main}");
    assert!(main.contains(".SH SUBCOMMANDS"), "{main}");
    let sync = std::fs::read_to_string(man1.join("mongoferry-sync.1")).expect("mongoferry-sync.1");
    let version = env!("CARGO_PKG_VERSION");
    let title = sync
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_default();
    assert!(title.starts_with(".TH MONGOFERRY-SYNC 1 "), "{title}");
    assert!(
        title.contains(&format!("\"mongoferry {version}\"")),
        "{title}"
    );
    for option in ["source", "destination", "include", "load", "port"] {
        assert!(
            sync.contains(&format!("\\-\\-{option}")),
            "no --{option} in:\n{sync}"
        );
    }

    // man(1) reads it (scripts/setup-deps.sh installs man-db).
    let rendered = std::process::Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(man1.join("mongoferry-sync.1"))
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .output()
        .expect("man(1) is missing: run scripts/setup-deps.sh (apt-get install man-db)");
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success(), "{rendered:?}");
    assert!(text.contains("SYNOPSIS"), "{text}");
    assert!(text.contains("--include"), "{text}");

    // A directory that cannot be made is one sentence with the remedy.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("write a file");
    let bad = file.join("man1").to_string_lossy().to_string();
    let out = run_cli(&["man", &bad], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .trim_end()
            .ends_with("Give a directory you can write to."),
        "{out:?}"
    );
}
