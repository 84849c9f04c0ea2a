//! Connection profiles end to end: strings round-trip through profiles (the
//! driver's own parser agrees on the meaning), secrets stored and read back
//! through the real OS keyring (Secret Service) and the kernel keyutils
//! store, never written to the profile file, the `mongoferry profile`
//! commands, and a full `mongoferry sync` between two TLS-only,
//! auth-enabled replica sets driven by profiles, after which no test
//! password is found in the config directory, the logs or the state
//! database.
//!
//! The keyring tests need a Secret Service and a session keyring; they
//! fail, never skip, without them (scripts/test.sh provides both).

use mongoferry_test_support as support;

use std::path::Path;
use std::time::Duration;

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongoferry::connection::{Profile, ProfileStore, SecretKind, SecretStore};
use mongoferry::Namespace;
use support::tls::*;

const HOW_TO_GET_A_KEYRING: &str = "The keyring tests need a Secret Service: run them through scripts/test.sh, or as  dbus-run-session -- sh -c 'printf \"\\n\" | gnome-keyring-daemon --unlock --components=secrets; cargo test --test profile'  (Debian: apt-get install dbus gnome-keyring).";

/// The platform keyring, checked to work; panics with how to get one.
fn platform_keyring() -> SecretStore {
    let store = SecretStore::platform();
    if let Err(e) = store.check() {
        panic!("No usable OS keyring: {e} {HOW_TO_GET_A_KEYRING}");
    }
    store
}

/// Every file under `dir`, as text.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            let bytes = std::fs::read(&p).expect("read file");
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

fn assert_absent(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "a test secret leaked into {what}");
    }
}

#[test]
fn connection_strings_round_trip_through_profiles() {
    let uris = [
        "mongodb://localhost",
        "mongodb://db1.example.net:27017,db2.example.net:27018/?replicaSet=rs0",
        "mongodb://alice:s3cret@db1/?replicaSet=rs0&authSource=admin",
        "mongodb://alice:p%40ss%3Aw%2Frd%25@db1/sales?authSource=admin",
        "mongodb://alice:pw@db1/?authSource=admin&authMechanism=SCRAM-SHA-256",
        "mongodb://alice:pw@db1/?authMechanism=SCRAM-SHA-1",
        "mongodb://db1/?directConnection=true&appName=migrator",
        "mongodb://db1/?authMechanism=MONGODB-X509&tls=true&tlsCAFile=/etc/ssl/ca.pem&tlsCertificateKeyFile=/etc/ssl/client.pem&tlsCertificateKeyFilePassword=k%26y",
        "mongodb://db1/?tls=true&tlsAllowInvalidCertificates=true",
        "mongodb://db1/?tls=true&tlsCAFile=/ca.pem&tlsAllowInvalidHostnames=true",
        "mongodb://ldap:pw@db1/?authSource=$external&authMechanism=PLAIN",
        "mongodb://db1/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s",
        "mongodb://db1/?readPreference=secondaryPreferred&w=majority&retryWrites=false&maxPoolSize=20",
        "mongodb://[::1]:27017/?replicaSet=v6",
        "mongodb+srv://cluster0.example.net",
        "mongodb+srv://bob:hunter2@cluster0.example.net/app?retryWrites=true&w=majority",
        "mongodb+srv://carol:pw@cluster0.example.net/?authSource=admin&tls=false&appName=Cluster0",
        "mongodb+srv://x509@cluster0.example.net/?authMechanism=MONGODB-X509&tlsCertificateKeyFile=/home/me/client.pem",
    ];
    for uri in uris {
        let (profile, secrets) = Profile::parse("round-trip", uri).expect(uri);
        let built = profile.to_uri(&secrets);
        assert_eq!(built, uri);
        // The driver reads the same meaning from both (no DNS look-up:
        // mongodb+srv:// is only parsed).
        let (a, _) = mongoferry::connection::tls::split_invalid_hostnames(uri);
        let (b, _) = mongoferry::connection::tls::split_invalid_hostnames(&built);
        assert_eq!(
            mongodb::options::ConnectionString::parse(&a).expect("the driver parses it"),
            mongodb::options::ConnectionString::parse(&b).expect("the driver parses it"),
            "{uri}"
        );
        // Stored and read back, the profile builds the same string.
        let json = serde_json::to_string(&profile).expect("JSON");
        let back: Profile = serde_json::from_str(&json).expect("from JSON");
        assert_eq!(back.to_uri(&secrets), uri);
        for k in secrets.kinds() {
            let v = secrets.get(k).expect("secret");
            assert!(!json.contains(v), "the {k:?} is in the profile JSON");
        }
    }
}

#[test]
fn secrets_live_in_the_platform_keyring_and_never_in_the_profile_file() {
    let keyring =
        platform_keyring().with_service(&format!("mongoferry-test-{}", uuid::Uuid::new_v4()));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ProfileStore::new(dir.path(), keyring.clone());
    let pw = "Kr-Pa55word-1";
    let key_pw = "Kr-KeyPass-2";
    let token = "Kr-Token-3";
    let uri = format!(
        "mongodb://alice:{pw}@db1:27017,db2:27017/?replicaSet=rs0&authSource=admin&authMechanismProperties=AWS_SESSION_TOKEN:{token}&tls=true&tlsCAFile=/ca.pem&tlsCertificateKeyFile=/c.pem&tlsCertificateKeyFilePassword={key_pw}"
    );
    let saved = store.add_uri("prod", &uri, false).expect("save");
    assert_eq!(
        saved.secrets,
        [
            SecretKind::Password,
            SecretKind::TlsKeyPassword,
            SecretKind::AwsSessionToken
        ]
    );
    for (path, text) in files_under(dir.path()) {
        assert_absent(&path, &text, &[pw, key_pw, token]);
        assert!(text.contains("alice") && text.contains("/c.pem"), "{text}");
    }
    // In the keyring, as separate entries, readable by a fresh handle.
    let fresh = SecretStore::platform().with_service(keyring.service());
    assert_eq!(
        fresh
            .get("prod", SecretKind::Password)
            .expect("read")
            .as_deref()
            .map(|s| s.as_str()),
        Some(pw)
    );
    assert_eq!(
        fresh
            .get("prod", SecretKind::TlsKeyPassword)
            .expect("read")
            .as_deref()
            .map(|s| s.as_str()),
        Some(key_pw)
    );
    let resolved = store.resolve("prod").expect("resolve");
    assert_eq!(resolved.uri.expose(), uri);
    assert!(!format!("{resolved:?}").contains(pw));

    store.remove("prod").expect("remove");
    for kind in SecretKind::ALL {
        assert!(
            fresh.get("prod", kind).expect("read").is_none(),
            "{kind:?} left in the keyring"
        );
    }
}

#[test]
fn secrets_live_in_the_kernel_keyutils_store() {
    let store =
        SecretStore::keyutils().with_service(&format!("mongoferry-test-{}", uuid::Uuid::new_v4()));
    if let Err(e) = store.check() {
        panic!(
            "The kernel keyutils store is not usable: {e} Run the tests in a session keyring: keyctl session - cargo test --test profile (Debian: apt-get install keyutils); scripts/test.sh does."
        );
    }
    store
        .put("dev", SecretKind::Password, "Ku-Secret-4")
        .expect("put");
    assert_eq!(
        store
            .get("dev", SecretKind::Password)
            .expect("get")
            .as_deref()
            .map(|s| s.as_str()),
        Some("Ku-Secret-4")
    );
    store.forget("dev").expect("forget");
    assert!(store
        .get("dev", SecretKind::Password)
        .expect("get")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_commands_keep_secrets_in_the_keyring() {
    platform_keyring();
    let config = tempfile::tempdir().expect("config dir");
    let dir = config.path().display().to_string();
    let env = [("MONGOFERRY_CONFIG_DIR", dir.as_str())];
    let t = Duration::from_secs(60);
    let pw = "Cli-Pa55word-5";
    let name = format!("cli-{}", std::process::id());

    // From standard input, which keeps the password out of `ps`.
    let uri = format!("mongodb://bob:{pw}@db1:27017/?replicaSet=rs0&authSource=admin&tls=true&tlsCAFile=/ca.pem&tlsAllowInvalidHostnames=true");
    let out = run_cli_env(
        &["profile", "add", &name],
        &env,
        Some(&format!("{uri}\n")),
        t,
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("Stored in the OS keyring: password."),
        "{out:?}"
    );
    assert!(out.stdout.contains("WARNING (unsafe)"), "{out:?}");
    assert_absent("profile add's output", &out.all(), &[pw]);

    let out = run_cli_env(&["profile", "add", &name, "mongodb://x"], &env, None, t).await;
    assert_eq!(
        out.code,
        Some(2),
        "a second profile of the same name: {out:?}"
    );
    assert!(out.stderr.contains("already exists"), "{out:?}");

    let out = run_cli_env(&["profile", "list"], &env, None, t).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains(&name) && out.stdout.contains("bob:****@db1"),
        "{out:?}"
    );
    assert!(out.stdout.contains("[UNSAFE TLS]"), "{out:?}");

    let out = run_cli_env(&["profile", "show", &name, "--json"], &env, None, t).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["name"], name.as_str());
    assert_eq!(v["hosts"][0], "db1:27017");
    assert_eq!(v["replicaSet"], "rs0");
    assert_eq!(v["tls"]["caFile"], "/ca.pem");
    assert_eq!(v["tls"]["allowInvalidHostnames"], true);
    assert_eq!(v["secrets"][0], "password");
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .contains("tlsAllowInvalidHostnames"));
    let out = run_cli_env(&["profile", "show", &name], &env, None, t).await;
    assert!(
        out.stdout.contains("password (in the OS keyring)"),
        "{out:?}"
    );

    for (path, text) in files_under(config.path()) {
        assert_absent(&path, &text, &[pw]);
    }
    assert_eq!(
        SecretStore::platform()
            .get(&name, SecretKind::Password)
            .expect("keyring")
            .as_deref()
            .map(|s| s.as_str()),
        Some(pw)
    );

    let out = run_cli_env(&["profile", "remove", &name], &env, None, t).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(SecretStore::platform()
        .get(&name, SecretKind::Password)
        .expect("keyring")
        .is_none());
    let out = run_cli_env(&["profile", "show", &name], &env, None, t).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("No connection profile is named"),
        "{out:?}"
    );
}

async fn all_documents(c: &mongodb::Client, db: &str) -> String {
    let mut text = String::new();
    for coll in c
        .database(db)
        .list_collection_names()
        .await
        .expect("list collections")
    {
        let docs: Vec<Document> = c
            .database(db)
            .collection::<Document>(&coll)
            .find(doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("read");
        for d in docs {
            text.push_str(&d.to_string());
            text.push('\n');
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_between_tls_auth_replica_sets_from_profiles() {
    platform_keyring();
    let src_pw = "Src-R00t-Pw-6";
    let dst_pw = "Dst-R00t-Pw-7";
    let pki = Pki::new();
    // The source demands client certificates (mutual TLS); the
    // destination only TLS. Both need a login.
    let (source, destination) = tokio::join!(
        replica_set(
            "tlssrc",
            Some(pki.sandbox_tls(&pki.server, true)),
            Some(root_auth(src_pw))
        ),
        replica_set(
            "tlsdst",
            Some(pki.sandbox_tls(&pki.server, false)),
            Some(root_auth(dst_pw))
        ),
    );
    let src = source.client().await.expect("source client");
    let dest = destination.client().await.expect("destination client");
    support::seed_all(
        &src,
        &[
            (Namespace::new("shop", "orders"), 400, 300),
            (Namespace::new("app", "users"), 150, 120),
        ],
    )
    .await;
    src.database("shop")
        .run_command(
            doc! { "createIndexes": "orders", "indexes": [{ "key": { "n": 1 }, "name": "n_1" }] },
        )
        .await
        .expect("create an index");

    let config = tempfile::tempdir().expect("config dir");
    let dir = config.path().display().to_string();
    let env = [("MONGOFERRY_CONFIG_DIR", dir.as_str())];
    let t = Duration::from_secs(60);
    let enc = |p: &Path| mongoferry::uri::encode_option_value(&p.display().to_string());
    // The source's client key is encrypted: its password is a secret too.
    let src_uri = format!(
        "mongodb://root:{src_pw}@127.0.0.1:{}/?replicaSet=tlssrc&authSource=admin&tls=true&tlsCAFile={}&tlsCertificateKeyFile={}&tlsCertificateKeyFilePassword={}",
        source.port,
        enc(&pki.ca),
        enc(&pki.client_encrypted),
        mongoferry::uri::encode_option_value(KEY_PASSWORD)
    );
    let dst_uri = format!(
        "mongodb://root:{dst_pw}@127.0.0.1:{}/?replicaSet=tlsdst&authSource=admin&tls=true&tlsCAFile={}",
        destination.port,
        enc(&pki.ca)
    );
    let src_name = format!("src-{}", std::process::id());
    let dst_name = format!("dst-{}", std::process::id());
    for (name, uri) in [(&src_name, &src_uri), (&dst_name, &dst_uri)] {
        let out = run_cli_env(&["profile", "add", name], &env, Some(uri), t).await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let secrets = [src_pw, dst_pw, KEY_PASSWORD];

    // Both profiles test fine first.
    let out = run_cli_env(
        &[
            "ping",
            "--source-profile",
            &src_name,
            "--destination-profile",
            &dst_name,
            "--json",
        ],
        &env,
        None,
        t,
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["source"]["tls"]["verification"], "full");
    assert_eq!(v["destination"]["authentication"]["users"][0], "root@admin");
    assert_absent("ping's output", &out.all(), &secrets);

    let port = support::api_port().to_string();
    let log_env = [
        ("MONGOFERRY_CONFIG_DIR", dir.as_str()),
        ("MONGOFERRY_LOG", "debug"),
    ];
    let out = run_cli_env(
        &[
            "sync",
            "--source-profile",
            &src_name,
            "--destination-profile",
            &dst_name,
            "--port",
            &port,
            "--commit-when-ready",
        ],
        &log_env,
        None,
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(
        out.code,
        Some(0),
        "the sync commits: {}",
        mongoferry::uri::redact_text(&out.stderr)
    );
    support::assert_same(&src, &dest).await;

    // No test secret anywhere it could have been written.
    assert_absent("the sync's output and debug log", &out.all(), &secrets);
    for (path, text) in files_under(config.path()) {
        assert_absent(&path, &text, &secrets);
    }
    let state = all_documents(&dest, "__mongoferry").await;
    assert!(
        !state.is_empty(),
        "the migration's state is on the destination"
    );
    assert_absent("the __mongoferry state database", &state, &secrets);
    for rs in [&source, &destination] {
        let log = std::fs::read_to_string(rs.log_path()).expect("mongod log");
        assert_absent("a mongod log", &log, &secrets);
    }

    for name in [&src_name, &dst_name] {
        let out = run_cli_env(&["profile", "remove", name], &env, None, t).await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }
}
