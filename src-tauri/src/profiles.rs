//! Saved connection profiles for the connection steps, through the
//! engine's `connection::ProfileStore` (profiles on disk without secrets,
//! secrets in the OS keyring). Keyring calls may block on D-Bus, so each
//! runs on tokio's blocking pool. Nothing here writes a secret anywhere but
//! the keyring, or logs one.

use mongoferry::connection::ProfileStore;
use mongoferry::ErrorInfo;

use crate::commands::types::{ProfileSummary, SaveProfileRequest};
use crate::error::{shell_error, IntoInfo};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce(ProfileStore) -> mongoferry::Result<T> + Send + 'static,
) -> Result<T, ErrorInfo> {
    tokio::task::spawn_blocking(move || f(ProfileStore::open_default()?))
        .await
        .map_err(|e| {
            shell_error(
                "internal",
                &format!("The profile store stopped unexpectedly: {e}."),
                "Try again; if it recurs, report it with the log.",
            )
        })?
        .into_info()
}

pub async fn list() -> Result<Vec<ProfileSummary>, ErrorInfo> {
    blocking(|store| {
        Ok(store
            .list()?
            .into_iter()
            .map(|p| ProfileSummary {
                display_uri: p.display_uri(),
                name: p.name,
            })
            .collect())
    })
    .await
}

pub async fn save(request: SaveProfileRequest) -> Result<ProfileSummary, ErrorInfo> {
    let uri = connection_uri(&request.uri, request.profile.as_deref()).await?;
    blocking(move |store| {
        let p = store.add_uri(&request.name, &uri, request.replace)?;
        Ok(ProfileSummary {
            display_uri: p.display_uri(),
            name: p.name,
        })
    })
    .await
}

/// The connection string a request means. The web view holds only a
/// saved profile's redacted string (`****` for its secrets), so while the
/// string is still exactly that, the profile's own string is used, its
/// secrets read from the keyring here; a string the user has edited since
/// is used as typed.
pub async fn connection_uri(uri: &str, profile: Option<&str>) -> Result<String, ErrorInfo> {
    let Some(name) = profile else {
        return Ok(uri.to_string());
    };
    let (name, shown) = (name.to_string(), uri.trim().to_string());
    blocking(move |store| {
        if store.get(&name)?.display_uri() == shown {
            Ok(store.resolve(&name)?.uri.expose().to_string())
        } else {
            Ok(shown)
        }
    })
    .await
}

/// A profile's full connection string, secrets from the keyring included,
/// for the shell's own connections: it never goes to the web view.
pub async fn resolve(name: String) -> Result<String, ErrorInfo> {
    blocking(move |store| Ok(store.resolve(&name)?.uri.expose().to_string())).await
}
