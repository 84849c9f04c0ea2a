//! A saved profile's secrets never go to the web view: it holds the
//! redacted string, and the shell puts the secrets back from the real OS
//! keyring only while a request names the profile and the string is
//! unchanged. Needs a keyring (scripts/test.sh provides one); fails, never
//! skips, without one.

use mongoferry::connection::SecretStore;
use mongoferry_desktop::profiles;

#[tokio::test]
async fn a_profile_resolves_only_from_its_own_redacted_string() {
    if let Err(e) = SecretStore::platform().check() {
        panic!(
            "No usable OS keyring: {e} Run the tests through scripts/test.sh, which starts a Secret Service session."
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // The store reads its directory from the environment; this test is
    // the only one in its binary.
    std::env::set_var("MONGOFERRY_CONFIG_DIR", dir.path());
    let name = format!("shell-{}", std::process::id());
    let full = "mongodb://alice:s3cr%3At@db1:27017/?replicaSet=rs&authSource=admin";

    let saved = profiles::save(
        serde_json::from_value(serde_json::json!({
            "name": name, "uri": full, "replace": true, "profile": null,
        }))
        .expect("request"),
    )
    .await
    .expect("save");
    assert!(!saved.display_uri.contains("s3cr"), "{}", saved.display_uri);
    assert!(saved.display_uri.contains("****"), "{}", saved.display_uri);

    // The form's string, unchanged: the profile's own, with its password.
    let resolved = profiles::connection_uri(&saved.display_uri, Some(&name))
        .await
        .expect("resolve");
    assert!(resolved.contains("alice:s3cr%3At@db1"), "{resolved}");
    // Edited in the form: the user's own string, as typed.
    let edited = saved.display_uri.replace("db1", "db2");
    assert_eq!(
        profiles::connection_uri(&edited, Some(&name))
            .await
            .expect("edited"),
        edited
    );
    // Naming no profile: as typed.
    assert_eq!(
        profiles::connection_uri(&saved.display_uri, None)
            .await
            .expect("none"),
        saved.display_uri
    );
    // An unknown profile is an error with a remedy, not a guess.
    let unknown = profiles::connection_uri(&saved.display_uri, Some("no-such-profile"))
        .await
        .expect_err("unknown profile");
    assert!(!unknown.remedy.is_empty());

    // Saving the redacted string under a new name keeps the password.
    let copy = format!("{name}-copy");
    profiles::save(
        serde_json::from_value(serde_json::json!({
            "name": copy, "uri": saved.display_uri, "replace": true, "profile": name,
        }))
        .expect("request"),
    )
    .await
    .expect("save copy");
    let copied = profiles::resolve(copy.clone()).await.expect("resolve copy");
    assert!(copied.contains("alice:s3cr%3At@db1"), "{copied}");

    let store = mongoferry::connection::ProfileStore::open_default().expect("store");
    for n in [&name, &copy] {
        store.remove(n).expect("remove");
    }
}
