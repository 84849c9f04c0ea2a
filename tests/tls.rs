//! TLS on real mongod 6.0.5, with certificates generated in the test: a
//! TLS-only replica set (`--tlsMode requireTLS`), an expired server
//! certificate, mutual TLS and X.509 authentication. Each failure must be
//! classified (a stable code, a sentence and a remedy) through the engine's
//! `ping`, `Cluster::connect` and the `mongoferry ping` command, and every
//! setting that weakens TLS must be flagged as unsafe.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::doc;
use mongoferry::cluster::Cluster;
use mongoferry::connection::tls::Verification;
use mongoferry::ping::{ping, PingOptions, PingReport};
use mongoferry::uri::{encode_option_value, redact_uri};
use mongoferry::Role;
use support::tls::*;

fn options() -> PingOptions {
    PingOptions {
        timeout: Duration::from_secs(5),
    }
}

fn path(p: &std::path::Path) -> String {
    encode_option_value(&p.display().to_string())
}

/// Pings `uri` and checks that it fails with `code`.
async fn ping_fails(uri: &str, code: &str) -> PingReport {
    let r = ping(Role::Source, uri, &options()).await;
    assert!(!r.ok, "{} should fail: {r:#?}", redact_uri(uri));
    let e = r.error.clone().expect("a failed ping carries its error");
    assert_eq!(e.code, code, "{}: {e:#?}", redact_uri(uri));
    assert!(!e.message.is_empty() && !e.remedy.is_empty());
    r
}

/// Connects the engine to `uri` and checks that it fails with `code`.
async fn connect_fails(uri: &str, code: &str) {
    match Cluster::connect(Role::Source, uri).await {
        Ok(_) => panic!("{} should not connect", redact_uri(uri)),
        Err(e) => assert_eq!(e.code(), code, "{}: {e}", redact_uri(uri)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_replica_set_is_verified_and_each_failure_is_classified() {
    let pki = Pki::new();
    let rs = replica_set("tlsonly", Some(pki.sandbox_tls(&pki.server, false)), None).await;
    let port = rs.port;
    let ca = path(&pki.ca);
    let fast = "serverSelectionTimeoutMS=3000";

    // With the CA: everything is reported.
    let good = format!("mongodb://127.0.0.1:{port}/?replicaSet=tlsonly&tls=true&tlsCAFile={ca}");
    let r = ping(Role::Source, &good, &options()).await;
    assert!(r.ok, "{r:#?}");
    assert!(r.reachable);
    assert!(r.round_trip_ms.is_some_and(|ms| ms > 0.0), "{r:#?}");
    let t = r.topology.as_ref().expect("topology");
    assert_eq!(t.kind, "replicaSet");
    assert_eq!(t.set_name.as_deref(), Some("tlsonly"));
    assert_eq!(t.members.len(), 1);
    assert_eq!(t.members[0].host, format!("127.0.0.1:{port}"));
    assert_eq!(t.members[0].state.as_deref(), Some("PRIMARY"));
    assert_eq!(r.server_version.as_deref(), Some("6.0.5"));
    assert_eq!(r.feature_compatibility_version.as_deref(), Some("6.0"));
    assert!(r.tls.enabled);
    assert_eq!(r.tls.verification, Verification::Full);
    let cert = r
        .tls
        .peer_certificate
        .as_ref()
        .expect("the server's certificate");
    assert_eq!(
        cert.subject,
        "CN=ferry-server,OU=servers,O=Mongoferry Tests"
    );
    assert_eq!(
        cert.issuer,
        "CN=Mongoferry Test CA,OU=ca,O=Mongoferry Tests"
    );
    assert_eq!(cert.not_after, "2099-12-31T00:00:00Z");
    assert!(cert.expires_in_days > 365, "{cert:?}");
    assert_eq!(cert.names, ["127.0.0.1"]);
    assert!(!r.insecure && r.warnings.is_empty(), "{r:#?}");
    let c = Cluster::connect(Role::Source, &good)
        .await
        .expect("the engine connects");
    assert_eq!(c.tls, Verification::Full);
    assert!(c.warnings.is_empty());

    // Without a CA (the public roots), with another CA, with a host name
    // the certificate does not list, and without TLS at all.
    let no_ca = format!("mongodb://127.0.0.1:{port}/?replicaSet=tlsonly&tls=true&{fast}");
    let r = ping_fails(&no_ca, "tls_untrusted_ca").await;
    assert!(
        r.reachable,
        "the server answered; its certificate was refused"
    );
    assert!(
        r.error.unwrap().message.contains("Mongoferry Test CA"),
        "the message names the issuer"
    );
    connect_fails(&no_ca, "tls_untrusted_ca").await;

    let wrong_ca = format!(
        "mongodb://127.0.0.1:{port}/?replicaSet=tlsonly&tls=true&tlsCAFile={}&{fast}",
        path(&pki.other_ca)
    );
    ping_fails(&wrong_ca, "tls_untrusted_ca").await;
    connect_fails(&wrong_ca, "tls_untrusted_ca").await;

    let mismatch =
        format!("mongodb://localhost:{port}/?directConnection=true&tls=true&tlsCAFile={ca}&{fast}");
    let r = ping_fails(&mismatch, "tls_hostname_mismatch").await;
    let msg = r.error.unwrap().message;
    assert!(
        msg.contains("localhost") && msg.contains("127.0.0.1"),
        "{msg}"
    );
    connect_fails(&mismatch, "tls_hostname_mismatch").await;

    let plain = format!("mongodb://127.0.0.1:{port}/?replicaSet=tlsonly&{fast}");
    ping_fails(&plain, "tls_required").await;
    connect_fails(&plain, "tls_required").await;

    // Allowing invalid host names connects, says so, and still checks
    // that the CA signed the certificate.
    let lax = format!("{mismatch}&tlsAllowInvalidHostnames=true");
    let r = ping(Role::Source, &lax, &options()).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.tls.verification, Verification::ChainOnly);
    assert!(r.insecure);
    assert_eq!(r.warnings.len(), 1, "{r:#?}");
    assert_eq!(r.warnings[0].code, "tls_invalid_hostnames_allowed");
    assert!(r.warnings[0].unsafe_setting && r.warnings[0].message.starts_with("UNSAFE"));
    let c = Cluster::connect(Role::Source, &lax)
        .await
        .expect("the engine connects");
    assert_eq!(c.tls, Verification::ChainOnly);
    assert_eq!(c.warnings[0].code, "tls_invalid_hostnames_allowed");
    let lax_wrong_ca = format!(
        "mongodb://localhost:{port}/?directConnection=true&tls=true&tlsCAFile={}&tlsAllowInvalidHostnames=true&{fast}",
        path(&pki.other_ca)
    );
    ping_fails(&lax_wrong_ca, "tls_untrusted_ca").await;
    connect_fails(&lax_wrong_ca, "tls_untrusted_ca").await;

    // Allowing invalid certificates connects even without the CA, flagged.
    let insecure = format!("{no_ca}&tlsAllowInvalidCertificates=true");
    let r = ping(Role::Source, &insecure, &options()).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.tls.verification, Verification::None);
    assert!(r.insecure);
    assert_eq!(r.warnings[0].code, "tls_invalid_certificates_allowed");
    assert!(
        r.tls.peer_certificate.is_some(),
        "the certificate is still read"
    );

    // The CLI flags the same, for people and as JSON.
    let t = Duration::from_secs(60);
    let out = run_cli_env(&["ping", "--source", &lax, "--json"], &[], None, t).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["source"]["ok"], true);
    assert_eq!(v["source"]["insecure"], true);
    assert_eq!(v["source"]["tls"]["verification"], "chainOnly");
    assert_eq!(
        v["source"]["warnings"][0]["code"],
        "tls_invalid_hostnames_allowed"
    );
    assert_eq!(
        v["source"]["tls"]["peerCertificate"]["subject"],
        "CN=ferry-server,OU=servers,O=Mongoferry Tests"
    );
    let out = run_cli_env(&["ping", "--source", &lax], &[], None, t).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("WARNING: UNSAFE"), "{}", out.stdout);
    assert!(
        out.stdout.contains("host name NOT checked"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("CN=ferry-server"), "{}", out.stdout);
    assert!(out.stdout.contains("2099-12-31"), "{}", out.stdout);
    let out = run_cli_env(&["ping", "--source", &wrong_ca], &[], None, t).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("not signed by a certificate authority this connection trusts"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_that_expires_is_classified() {
    let pki = Pki::new();
    // Long enough for a TLS replica set to start and elect on a slow box.
    let lifetime = Duration::from_secs(45);
    let cert = pki.server_expiring_in(lifetime);
    let expires = std::time::Instant::now() + lifetime;
    let rs = replica_set("expiring", Some(pki.sandbox_tls(&cert, false)), None).await;
    let uri = format!(
        "mongodb://127.0.0.1:{}/?replicaSet=expiring&tls=true&tlsCAFile={}&serverSelectionTimeoutMS=3000",
        rs.port,
        path(&pki.ca)
    );
    let r = ping(Role::Source, &uri, &options()).await;
    assert!(
        r.ok,
        "the certificate is valid for a few more seconds: {r:#?}"
    );
    let days = r.tls.peer_certificate.expect("certificate").expires_in_days;
    assert_eq!(days, 0, "it expires today");
    tokio::time::sleep_until((expires + Duration::from_secs(2)).into()).await;
    let r = ping_fails(&uri, "tls_certificate_expired").await;
    let msg = r.error.unwrap().message;
    assert!(
        msg.contains("valid from 2020-01-01"),
        "the message gives the dates: {msg}"
    );
    connect_fails(&uri, "tls_certificate_expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_x509_authentication() {
    let pki = Pki::new();
    let rs = replica_set(
        "mtls",
        Some(pki.sandbox_tls(&pki.server, true)),
        Some(root_auth("R00t-mtls-pw")),
    )
    .await;
    // An X.509 user: its name is the client certificate's subject.
    rs.client()
        .await
        .expect("root client")
        .database("$external")
        .run_command(doc! {
            "createUser": CLIENT_SUBJECT,
            "roles": [
                { "role": "clusterMonitor", "db": "admin" },
                { "role": "readAnyDatabase", "db": "admin" },
            ],
        })
        .await
        .expect("create the X.509 user");
    let base = format!(
        "mongodb://127.0.0.1:{}/?replicaSet=mtls&tls=true&tlsCAFile={}&serverSelectionTimeoutMS=3000",
        rs.port,
        path(&pki.ca)
    );

    // No client certificate: refused, and the reason is named.
    let r = ping_fails(&base, "tls_client_certificate_required").await;
    assert!(r.reachable);
    connect_fails(&base, "tls_client_certificate_required").await;

    // Mutual TLS with a password login.
    let root = format!(
        "mongodb://root:R00t-mtls-pw@127.0.0.1:{}/?replicaSet=mtls&authSource=admin&tls=true&tlsCAFile={}&tlsCertificateKeyFile={}",
        rs.port,
        path(&pki.ca),
        path(&pki.client)
    );
    let r = ping(Role::Source, &root, &options()).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.authentication.unwrap().users, ["root@admin"]);

    // X.509 authentication: the certificate is the login.
    let x509 = format!(
        "{base}&authMechanism=MONGODB-X509&tlsCertificateKeyFile={}",
        path(&pki.client)
    );
    let r = ping(Role::Source, &x509, &options()).await;
    assert!(r.ok, "{r:#?}");
    let auth = r.authentication.expect("authenticated");
    assert_eq!(auth.users, [format!("{CLIENT_SUBJECT}@$external")]);
    assert!(
        auth.roles.contains(&"clusterMonitor@admin".to_string()),
        "{auth:?}"
    );
    let c = Cluster::connect(Role::Source, &x509)
        .await
        .expect("the engine connects with X.509");
    assert!(c.warnings.is_empty());

    // The same certificate with its key encrypted: the key password opens it.
    let encrypted = format!(
        "{base}&authMechanism=MONGODB-X509&tlsCertificateKeyFile={}&tlsCertificateKeyFilePassword={}",
        path(&pki.client_encrypted),
        encode_option_value(KEY_PASSWORD)
    );
    let r = ping(Role::Source, &encrypted, &options()).await;
    assert!(r.ok, "{r:#?}");
    assert!(
        !r.uri.contains(KEY_PASSWORD),
        "the report's URI is redacted"
    );
    Cluster::connect(Role::Source, &encrypted)
        .await
        .expect("the engine connects with an encrypted key");

    // A wrong key password is a configuration error that does not repeat it.
    let wrong_key = encrypted.replace(&encode_option_value(KEY_PASSWORD), "Wr0ng-Key-Pass");
    let r = ping_fails(&wrong_key, "tls_config_invalid").await;
    let shown = serde_json::to_string(&r).expect("JSON");
    assert!(!shown.contains("Wr0ng-Key-Pass"), "{shown}");
    let out = run_cli_env(
        &["ping", "--source", &wrong_key],
        &[],
        None,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(!out.all().contains("Wr0ng-Key-Pass"), "{out:?}");
    assert!(out.stdout.contains("key password"), "{}", out.stdout);
}
