//! End-to-end tests of the desktop wizard: the real app (built with the
//! `custom-protocol` feature, so it serves the built `ui/dist`) in a real
//! window, driven through tauri-driver and WebKitWebDriver with fantoccini,
//! against two real replica sets that the test starts and controls. The
//! first test's clusters have access control, so that its migration can
//! keep a way back: after Done it is reversed, and the reverse is
//! committed and validated too.
//!
//! Needs a display (run under `xvfb-run -a`, as `scripts/test.sh` does),
//! `tauri-driver` and `WebKitWebDriver`; each missing piece fails the test
//! with what to install. A PNG of every step goes to
//! `target/e2e-screenshots/`.

use mongoferry_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use mongodb::Client as MongoClient;
use mongoferry::sandbox::{workload, ReplicaSet};
use mongoferry::scope::Namespace;
use tokio_util::sync::CancellationToken;

/// tauri-driver's WebDriver port (its default).
const DRIVER_PORT: u16 = 4444;
/// The port tauri-driver starts WebKitWebDriver on (its default).
const NATIVE_DRIVER_PORT: u16 = 4445;

/// One app under tauri-driver at a time: they share the driver's port.
static DRIVER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn screenshots_dir() -> PathBuf {
    target_dir().join("e2e-screenshots")
}

/// A program on PATH (or in cargo's bin dir), or `None`.
fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

struct Tools {
    tauri_driver: PathBuf,
    webkit_driver: PathBuf,
}

/// Everything the test needs outside cargo; panics with what to install.
fn require_tools() -> Tools {
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    assert!(
        display,
        "no graphical display (DISPLAY is not set): install Xvfb with \
         `apt-get install xvfb xauth` and run the tests under `xvfb-run -a cargo test --workspace`, \
         as scripts/test.sh does"
    );
    let tauri_driver = find_program("tauri-driver").unwrap_or_else(|| {
        panic!(
            "tauri-driver is not installed: run `cargo install tauri-driver --version 2.0.6 --locked` \
             (scripts/setup-deps.sh does)"
        )
    });
    let webkit_driver = find_program("WebKitWebDriver").unwrap_or_else(|| {
        panic!(
            "WebKitWebDriver is not installed: run `apt-get install webkit2gtk-driver` \
             (scripts/setup-deps.sh does)"
        )
    });
    Tools {
        tauri_driver,
        webkit_driver,
    }
}

/// Builds the front end and the app that embeds it, once per test run.
fn app_binary() -> &'static Path {
    static APP: OnceLock<PathBuf> = OnceLock::new();
    APP.get_or_init(|| {
        let run = |what: &str, cmd: &mut Command| {
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
            assert!(
                out.status.success(),
                "{what} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ui = workspace().join("ui");
        assert!(
            ui.join("node_modules").is_dir(),
            "the front end's npm packages are missing: run `npm ci` in ui/ (scripts/setup-deps.sh does)"
        );
        // scripts/test.sh has just built it from this tree, and says so.
        if std::env::var_os("MONGOFERRY_UI_BUILT").is_none() {
            run(
                "npm run build (in ui/)",
                Command::new("npm").args(["run", "--silent", "build"]).current_dir(&ui),
            );
        }
        // The tests' own cargo has finished building by now and holds no
        // lock on the target directory. A test target in the selection
        // resolves features as `cargo test` does (with the dev-dependencies),
        // so that after scripts/run-tests.sh's build only the front end's
        // new assets are compiled in; a plain build of the app would build
        // every crate above tokio again.
        run(
            "cargo build --workspace --bin mongoferry-desktop --test e2e --features mongoferry-desktop/custom-protocol",
            support::clean_cargo_env(&mut Command::new(env!("CARGO")))
                .args([
                    "build",
                    "--workspace",
                    "--bin",
                    "mongoferry-desktop",
                    "--test",
                    "e2e",
                    "--features",
                    "mongoferry-desktop/custom-protocol",
                ])
                .current_dir(workspace()),
        );
        let bin = target_dir().join("debug/mongoferry-desktop");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// A running tauri-driver; killed when dropped.
struct Driver {
    child: Child,
    log: PathBuf,
}

impl Driver {
    async fn start(tools: &Tools, data_home: &Path, log_dir: &Path) -> Driver {
        Driver::start_with(tools, data_home, log_dir, &[]).await
    }

    /// Starts tauri-driver with extra environment for the app (such as a
    /// dark GTK theme, which the web view reports as
    /// `prefers-color-scheme: dark`).
    async fn start_with(
        tools: &Tools,
        data_home: &Path,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> Driver {
        let log = log_dir.join("tauri-driver.log");
        let file = std::fs::File::create(&log).expect("driver log file");
        for port in [DRIVER_PORT, NATIVE_DRIVER_PORT] {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} is taken, probably by a tauri-driver or WebKitWebDriver left over \
                 from an earlier run: stop it, then run the test again"
            );
        }
        let mut cmd = Command::new(&tools.tauri_driver);
        // Its own process group, so that dropping the driver also stops the
        // WebKitWebDriver and the app it started; and it dies with the test.
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            // SAFETY: prctl is async-signal-safe and only touches the child.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = cmd
            .arg("--port")
            .arg(DRIVER_PORT.to_string())
            .arg("--native-driver")
            .arg(&tools.webkit_driver)
            // The app keeps its remembered migration under XDG_DATA_HOME.
            .env("XDG_DATA_HOME", data_home)
            .env("RUST_LOG", "info,mongoferry=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("driver log file"))
            .stderr(file)
            .spawn()
            .expect("tauri-driver starts");
        let mut driver = Driver { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!(
                    "tauri-driver exited with {status} (is port {DRIVER_PORT} taken?):\n{}",
                    driver.log_text()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", DRIVER_PORT))
                .await
                .is_ok()
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "tauri-driver did not listen on port {DRIVER_PORT} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) on the process group this test created.
        unsafe {
            libc::kill(group, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (WebKitWebDriver, the app).
        // SAFETY: as above.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The app in its window, and helpers to drive it by `data-testid`.
struct App {
    client: Client,
    shots: PathBuf,
    prefix: String,
    count: usize,
}

fn testid(id: &str) -> String {
    format!("[data-testid='{id}']")
}

impl App {
    async fn launch(app: &Path, prefix: &str) -> App {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": app }),
        );
        caps.insert("browserName".into(), "wry".into());
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
            .await
            .expect("a WebDriver session with the app");
        // The smallest size the app supports: every step must work in it.
        if let Err(e) = client.set_window_size(1024, 700).await {
            eprintln!("could not resize the window to 1024x700: {e}");
        }
        let shots = screenshots_dir();
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        App {
            client,
            shots,
            prefix: prefix.to_string(),
            count: 0,
        }
    }

    async fn find(&self, id: &str, timeout: Duration) -> fantoccini::elements::Element {
        let css = testid(id);
        match self
            .client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(&css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                self.fail_shot(id).await;
                panic!("{id} did not appear within {timeout:?}: {e}")
            }
        }
    }

    /// Types into a field, replacing what it held.
    async fn type_into(&self, id: &str, text: &str) {
        let field = self.find(id, Duration::from_secs(20)).await;
        field.clear().await.expect("clear field");
        field.send_keys(text).await.expect("type");
    }

    /// Clicks a control once it is enabled.
    async fn click(&self, id: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let el = self.find(id, timeout).await;
            if el.is_enabled().await.unwrap_or(false) {
                el.click()
                    .await
                    .unwrap_or_else(|e| panic!("click {id}: {e}"));
                return;
            }
            if Instant::now() > deadline {
                self.fail_shot(id).await;
                panic!("{id} stayed disabled for {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Scrolls `id` to the middle of its step, for a screenshot of it.
    async fn show(&self, id: &str) {
        let element = self.find(id, Duration::from_secs(10)).await;
        let arg = serde_json::to_value(&element).expect("an element reference");
        self.client
            .execute(
                "arguments[0].scrollIntoView({ block: 'center' });",
                vec![arg],
            )
            .await
            .unwrap_or_else(|e| panic!("scroll {id} into view: {e}"));
        // Painted before the screenshot is taken.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    async fn text(&self, id: &str) -> String {
        self.find(id, Duration::from_secs(20))
            .await
            .text()
            .await
            .unwrap_or_default()
    }

    /// Waits until the text of `id` satisfies `f`.
    async fn wait_text(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let css = testid(id);
            if let Ok(el) = self.client.find(Locator::Css(&css)).await {
                if let Ok(text) = el.text().await {
                    if f(&text) {
                        return text;
                    }
                    if Instant::now() > deadline {
                        self.fail_shot(id).await;
                        panic!(
                            "timed out after {timeout:?} waiting for {what}; {id} reads {text:?}"
                        );
                    }
                }
            }
            if Instant::now() > deadline {
                self.fail_shot(id).await;
                panic!("timed out after {timeout:?} waiting for {what}; {id} is not shown");
            }
            self.fail_on_error().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// An error notice on screen ends the test with its text.
    async fn fail_on_error(&self) {
        if let Ok(el) = self.client.find(Locator::Css("[role='alert']")).await {
            let text = el.text().await.unwrap_or_default();
            self.fail_shot("error").await;
            panic!("the app shows an error: {text}");
        }
    }

    async fn shot(&mut self, name: &str) -> PathBuf {
        self.count += 1;
        let path = self
            .shots
            .join(format!("{}-{:02}-{name}.png", self.prefix, self.count));
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    async fn fail_shot(&self, what: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let path = self
                .shots
                .join(format!("{}-failed-{what}.png", self.prefix));
            let _ = std::fs::write(&path, png);
            eprintln!("screenshot of the failure: {}", path.display());
        }
    }

    /// Source and destination steps: type, test, go on.
    async fn connect_both(&mut self, source: &str, destination: &str) {
        for (side, uri) in [("source", source), ("destination", destination)] {
            self.type_into(&format!("{side}-uri"), uri).await;
            self.click(&format!("{side}-test"), Duration::from_secs(10))
                .await;
            let report = self
                .wait_text(
                    &format!("{side}-result"),
                    "the connection test",
                    Duration::from_secs(30),
                    |t| t.contains("Connected"),
                )
                .await;
            assert!(report.contains("replica set"), "{side}: {report}");
            self.shot(side).await;
            self.click("next", Duration::from_secs(5)).await;
        }
    }

    /// Compatibility step: the preflight check must find no blocker.
    async fn pass_compatibility(&mut self) {
        let summary = self
            .wait_text(
                "preflight-summary",
                "the compatibility check",
                Duration::from_secs(90),
                |t| !t.is_empty(),
            )
            .await;
        assert!(summary.contains("Nothing blocks"), "{summary}");
        self.shot("compatibility").await;
        self.click("next", Duration::from_secs(5)).await;
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

const SEEDED: &[(&str, &str, u64)] = &[
    ("shop", "customers", 6_000),
    ("shop", "orders", 9_000),
    ("crm", "contacts", 3_000),
];

/// A time-series collection beside them, with this many measurements: its
/// buckets are copied as they are stored and followed through the oplog,
/// which `auto` reads for it.
const READINGS: (&str, &str) = ("iot", "readings");
const READINGS_SEEDED: i64 = 2_000;

async fn seed(src: &MongoClient) -> Vec<Namespace> {
    let mut namespaces = Vec::new();
    for (db, coll, count) in SEEDED {
        let ns = Namespace::new(*db, *coll);
        workload::seed(src, &ns, *count, 700)
            .await
            .expect("seed the source");
        namespaces.push(ns);
    }
    let (db, coll) = READINGS;
    src.database(db)
        .run_command(bson::doc! {
            "create": coll,
            "timeseries": { "timeField": "t", "metaField": "sensor" },
        })
        .await
        .expect("create the time-series collection");
    insert_readings(src, 0, READINGS_SEEDED).await;
    namespaces
}

/// Inserts measurements `from..to` of twenty sensors, a second apart,
/// ending now.
async fn insert_readings(src: &MongoClient, from: i64, to: i64) {
    let now = bson::DateTime::now().timestamp_millis();
    let docs: Vec<bson::Document> = (from..to)
        .map(|n| {
            bson::doc! {
                "t": bson::DateTime::from_millis(now - (to - n) * 1_000),
                "sensor": n % 20,
                "value": n,
            }
        })
        .collect();
    let (db, coll) = READINGS;
    src.database(db)
        .collection::<bson::Document>(coll)
        .insert_many(docs)
        .await
        .expect("insert measurements");
}

/// New measurements, ten a batch, until `stop`; returns how many.
async fn readings_load(src: MongoClient, stop: CancellationToken) -> i64 {
    let mut next = READINGS_SEEDED;
    while !stop.is_cancelled() {
        insert_readings(&src, next, next + 10).await;
        next += 10;
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    next - READINGS_SEEDED
}

/// The applications' writes to `src`: inserts, updates, replaces and
/// deletes across `namespaces` (new documents numbered from `first_new`),
/// and new measurements, until the token is cancelled.
fn start_load(
    src: &MongoClient,
    namespaces: &[Namespace],
    first_new: u64,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<workload::WorkloadStats>,
) {
    let stop = CancellationToken::new();
    let writes = workload::run(
        src.clone(),
        namespaces.to_vec(),
        first_new,
        Some(150),
        42,
        stop.clone(),
    );
    let readings = readings_load(src.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let (stats, readings) = tokio::join!(writes, readings);
        assert!(readings > 0, "the time-series load ran");
        stats
    });
    let task =
        tokio::spawn(async move { task.await.expect("load task").expect("the write load runs") });
    (stop, task)
}

/// Document numbers of the seeded collections' first new documents.
fn first_new() -> u64 {
    SEEDED.iter().map(|s| s.2).max().unwrap_or(0)
}

/// Sync step: start (keeping a way back, if `reversible`), wait for the
/// copy to finish and events to flow.
async fn sync_until_copied(app: &mut App, reversible: bool) {
    // The event source and the load level, left at their defaults.
    app.find("load-choice-full", Duration::from_secs(10)).await;
    if reversible {
        app.click("reversible", Duration::from_secs(10)).await;
        app.show("reversible-costs").await;
    }
    app.shot("sync-choices").await;
    app.click("start-sync", Duration::from_secs(10)).await;
    app.wait_text(
        "state",
        "the migration to run",
        Duration::from_secs(60),
        |t| t == "RUNNING",
    )
    .await;
    app.shot("sync-started").await;
    // The load on the source, changed live from the Sync step's control:
    // gentle, as in business hours, then back to full, as at night, so
    // that the copy finishes at speed.
    app.click("load-level-gentle", Duration::from_secs(10))
        .await;
    app.wait_text(
        "load-level",
        "the gentle level",
        Duration::from_secs(20),
        |t| t == "gentle",
    )
    .await;
    let cap = app.text("load-cap").await;
    assert!(cap.contains("5 MiB/s"), "gentle reads at 5 MiB/s: {cap}");
    app.shot("sync-gentle").await;
    app.click("load-level-full", Duration::from_secs(10)).await;
    app.wait_text(
        "load-level",
        "the full level",
        Duration::from_secs(20),
        |t| t == "full",
    )
    .await;
    // Next is enabled once the copy is done.
    let next = app.find("next", Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !next.is_enabled().await.unwrap_or(false) {
        assert!(
            Instant::now() < deadline,
            "the copy did not finish within 180 s"
        );
        app.fail_on_error().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Let events flow for a while, so the charts have something to draw.
    tokio::time::sleep(Duration::from_secs(5)).await;
    app.shot("sync-dashboard").await;
    next.click().await.expect("click next");
}

/// Cutover step: writes are stopped (by the caller), commit, wait. A
/// migration that keeps a way back asks nothing: its commit blocks the
/// source's writes.
async fn cut_over(app: &mut App, reversible: bool) {
    if reversible {
        app.find("writes-blocked-note", Duration::from_secs(10))
            .await;
    } else {
        app.find("writes-stopped", Duration::from_secs(10))
            .await
            .click()
            .await
            .expect("tick 'writes stopped'");
    }
    let commit = app.find("commit", Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !commit.is_enabled().await.unwrap_or(false) {
        assert!(Instant::now() < deadline, "Commit never became enabled");
        app.fail_on_error().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let lag = app.text("lag").await;
    assert!(!lag.is_empty(), "the lag is shown");
    app.shot("cutover-ready").await;
    commit.click().await.expect("click commit");
    app.wait_text(
        "state",
        "the commit to finish",
        Duration::from_secs(180),
        |t| t == "COMMITTED",
    )
    .await;
    app.shot("committed").await;
}

/// Validate step: a full verification through the app finds no difference.
async fn validate(app: &mut App) {
    app.click("verify", Duration::from_secs(10)).await;
    let result = app
        .wait_text(
            "verify-result",
            "the full verification",
            Duration::from_secs(180),
            |t| !t.is_empty(),
        )
        .await;
    assert!(
        result.contains("identical to the source") && result.contains("Full verification"),
        "{result}"
    );
}

/// Two replica sets with access control (a root user each), as a
/// migration that keeps a way back needs: only an authenticated user with
/// `restore` writes past the old cluster's write block.
async fn guarded_clusters() -> (ReplicaSet, ReplicaSet, MongoClient, MongoClient) {
    let old =
        support::tls::replica_set("e2eold", None, Some(support::tls::root_auth("0ld-pw"))).await;
    let new =
        support::tls::replica_set("e2enew", None, Some(support::tls::root_auth("n3w-pw"))).await;
    let old_client = support::client(&old).await;
    let new_client = support::client(&new).await;
    (old, new, old_client, new_client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wizard_migrates_a_live_source_end_to_end() {
    let tools = require_tools();
    let app_bin = app_binary();
    let _one_at_a_time = DRIVER_LOCK.lock().await;
    let (old_rs, new_rs, src, dest) = guarded_clusters().await;
    let namespaces = seed(&src).await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let driver = Driver::start(&tools, scratch.path(), scratch.path()).await;
    let mut app = App::launch(app_bin, "flow").await;

    app.find("source-uri", Duration::from_secs(30)).await;
    app.shot("start").await;
    app.connect_both(&old_rs.uri(), &new_rs.uri()).await;
    app.pass_compatibility().await;

    let summary = app
        .wait_text(
            "scope-summary",
            "the scope tree",
            Duration::from_secs(60),
            |t| t.contains("4 collections"),
        )
        .await;
    assert!(
        summary.contains("(1 time-series)")
            && summary.contains("18,000 documents")
            && summary.contains("2,000 measurements"),
        "{summary}"
    );
    app.shot("scope").await;
    app.click("next", Duration::from_secs(5)).await;

    // The source stays live: writes go on through the copy and the sync.
    // The migration keeps a way back.
    let (stop_load, load) = start_load(&src, &namespaces, first_new());
    sync_until_copied(&mut app, true).await;
    app.shot("cutover").await;

    stop_load.cancel();
    let stats = load.await.expect("load task");
    assert!(stats.total() > 100, "the write load ran: {stats:?}");
    cut_over(&mut app, true).await;

    // Validate: a full verification through the app finds no difference.
    app.click("next", Duration::from_secs(10)).await;
    validate(&mut app).await;
    app.shot("validated").await;
    app.click("next", Duration::from_secs(10)).await;
    let done = app.text("summary").await;
    assert!(done.contains("Documents copied"), "{done}");
    let verdict = app.text("done-validation").await;
    assert!(verdict.contains("identical"), "{verdict}");
    app.shot("done").await;
    support::assert_same(&src, &dest).await;

    // The applications move to the new cluster and write there; then the
    // way back is taken: Reverse, after its confirmation.
    let (stop_load, load) = start_load(&dest, &namespaces, 50_000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.click("reverse", Duration::from_secs(10)).await;
    let confirm = app.text("reverse-confirm").await;
    assert!(
        confirm.contains("since the cutover is synced back")
            && confirm.contains("stays blocked to your applications"),
        "{confirm}"
    );
    app.shot("reverse-confirm").await;
    app.click("reverse-start", Duration::from_secs(10)).await;
    // REVERSING may be over before a look catches it; RUNNING the other
    // way is not.
    let state = app
        .wait_text(
            "state",
            "the reverse to start",
            Duration::from_secs(60),
            |t| t == "REVERSING" || t == "RUNNING",
        )
        .await;
    if state == "REVERSING" {
        let preparing = app.text("reversing").await;
        assert!(
            preparing.contains("Preparing the old cluster"),
            "{preparing}"
        );
        app.shot("reversing").await;
    }
    app.wait_text(
        "state",
        "the reverse to run",
        Duration::from_secs(60),
        |t| t == "RUNNING",
    )
    .await;
    // The status strip's direction, read as the DOM holds it: WebKit's
    // WebDriver reads no visible text in a span that may be cut short with
    // an ellipsis.
    let way = app
        .find("direction", Duration::from_secs(10))
        .await
        .prop("textContent")
        .await
        .expect("the direction's text")
        .unwrap_or_default();
    assert!(
        way.starts_with("Reverse: ") && way.ends_with(&old_rs.host()),
        "{way}"
    );
    // Watch the new cluster's writes flow back for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop_load.cancel();
    let stats = load.await.expect("load task");
    assert!(stats.total() > 100, "the new cluster's load ran: {stats:?}");
    let back = app
        .wait_text(
            "sync-back",
            "the reverse to catch up",
            Duration::from_secs(60),
            |t| t.contains("caught up"),
        )
        .await;
    assert!(back.contains("since the cutover"), "{back}");
    let applied = app.text("events-applied").await;
    assert!(
        applied != "0",
        "the reverse applied the new cluster's writes"
    );
    app.shot("reverse-dashboard").await;
    app.click("next", Duration::from_secs(30)).await;
    cut_over(&mut app, true).await;
    app.click("next", Duration::from_secs(10)).await;
    validate(&mut app).await;
    app.shot("reverse-validated").await;
    app.click("next", Duration::from_secs(10)).await;
    let done = app
        .wait_text(
            "done-title",
            "the reverse's Done step",
            Duration::from_secs(10),
            |t| t == "Reverse complete",
        )
        .await;
    assert_eq!(done, "Reverse complete");
    let verdict = app.text("done-validation").await;
    assert!(verdict.contains("identical"), "{verdict}");
    // The way back is itself reversible.
    app.find("reverse", Duration::from_secs(10)).await;
    app.shot("reverse-done").await;
    app.close().await;
    drop(driver);

    // The old cluster is current again, equal to the new one.
    support::assert_same(&dest, &src).await;
}

/// Pids of the app processes this test started: the app binary, running
/// with this test's own data directory.
fn our_app_processes(app: &Path, data_home: &Path) -> Vec<u32> {
    let marker = format!("XDG_DATA_HOME={}", data_home.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            exe.as_deref() == Some(app)
                && env.split(|b| *b == 0).any(|var| var == marker.as_bytes())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_mid_sync_offers_to_resume_and_resuming_finishes() {
    let tools = require_tools();
    let app_bin = app_binary();
    let _one_at_a_time = DRIVER_LOCK.lock().await;
    let (pair, src, dest) = support::clusters().await;
    let namespaces = seed(&src).await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let (stop_load, load) = start_load(&src, &namespaces, first_new());

    // First run: connect, start, and close the window while it syncs.
    let driver = Driver::start(&tools, scratch.path(), scratch.path()).await;
    let mut app = App::launch(app_bin, "resume").await;
    app.connect_both(&pair.source.uri(), &pair.destination.uri())
        .await;
    app.pass_compatibility().await;
    app.wait_text(
        "scope-summary",
        "the scope tree",
        Duration::from_secs(60),
        |t| t.contains("4 collections"),
    )
    .await;
    app.click("next", Duration::from_secs(5)).await;
    app.click("start-sync", Duration::from_secs(10)).await;
    app.wait_text(
        "state",
        "the migration to run",
        Duration::from_secs(60),
        |t| t == "RUNNING",
    )
    .await;
    let next = app.find("next", Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !next.is_enabled().await.unwrap_or(false) {
        assert!(
            Instant::now() < deadline,
            "the copy did not finish within 180 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    app.shot("syncing-before-close").await;
    app.close().await;
    drop(driver);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !our_app_processes(app_bin, scratch.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the app was still running 20 s after its window closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The source keeps changing while the app is closed.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Second run: the offer appears, and resuming carries the migration
    // through to a committed destination equal to the source. This run
    // uses a dark desktop theme, which the app follows.
    let driver = Driver::start_with(
        &tools,
        scratch.path(),
        scratch.path(),
        &[("GTK_THEME", "Adwaita:dark")],
    )
    .await;
    let mut app = App::launch(app_bin, "resume-reopened").await;
    let offer = app
        .wait_text(
            "resume-offer",
            "the resume offer",
            Duration::from_secs(60),
            |t| t.contains("stopped while"),
        )
        .await;
    assert!(offer.contains(&pair.destination.uri()), "{offer}");
    app.shot("resume-offer").await;
    app.click("resume", Duration::from_secs(5)).await;
    app.wait_text(
        "state",
        "the resumed migration to run",
        Duration::from_secs(60),
        |t| t == "RUNNING",
    )
    .await;
    // A killed predecessor's lease may hold the resumed run up to 17 s.
    app.click("next", Duration::from_secs(120)).await;
    stop_load.cancel();
    let stats = load.await.expect("load task");
    assert!(stats.total() > 100, "the write load ran: {stats:?}");
    cut_over(&mut app, false).await;
    app.close().await;
    drop(driver);

    support::assert_same(&src, &dest).await;
}
