//! "Download desktop client" (issue 6, lifecycle 3): a zip with the workstation client and
//! its `keybridge.json`, which carries everything a workstation needs to join: the server's
//! URL and TLS pin, the integration, an expiring install token that is good only for
//! registering workstations of this integration, and the support e-mail.

use std::io::Write as _;
use std::time::Duration;

use axum::http::StatusCode;
use keybridge_store::NewAuditEvent;
use serde::Serialize;

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};

/// Days an install token works by default.
pub const DEFAULT_INSTALL_TOKEN_DAYS: u32 = 30;
/// The longest an install token may work.
pub const MAX_INSTALL_TOKEN_DAYS: u32 = 365;
/// Version of the `keybridge.json` format.
pub const CONFIG_FORMAT_VERSION: u32 = 1;
/// Name of the program inside the zip.
pub const CLIENT_FILE: &str = "keybridge";
/// Name of the configuration inside the zip.
pub const CONFIG_FILE: &str = "keybridge.json";

/// `keybridge.json`.
#[derive(Debug, Serialize)]
pub struct WorkstationConfig {
    /// Format version ([`CONFIG_FORMAT_VERSION`]).
    pub version: u32,
    /// Version of the keybridge server that made it.
    pub keybridge_version: &'static str,
    /// `server.public_url`.
    pub server_url: String,
    /// The integration the workstation joins.
    pub integration_id: String,
    /// Its application name.
    pub integration_name: String,
    /// `sha256/<base64>` of the server's public key: the workstation trusts only this key.
    pub tls_pin: String,
    /// Single-purpose token to register workstations (`kbi_…`).
    pub install_token: String,
    /// When the install token stops working (RFC 3339).
    pub install_token_expires_at: String,
    /// Shown by the client when something goes wrong.
    pub support_email: Option<String>,
}

/// The download: the file name and the zip bytes.
pub struct DesktopClient {
    /// `keybridge-<internal id>.zip`.
    pub file_name: String,
    /// The zip.
    pub bytes: Vec<u8>,
}

/// Issues an install token and builds the zip.
pub async fn build(
    app: &App,
    integration_id: &str,
    days: Option<u32>,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<DesktopClient> {
    let days = match days {
        None => DEFAULT_INSTALL_TOKEN_DAYS,
        Some(d) if (1..=MAX_INSTALL_TOKEN_DAYS).contains(&d) => d,
        Some(d) => {
            return Err(ApiError::invalid(
                "expires_in_days",
                format!("{d} is outside 1..={MAX_INSTALL_TOKEN_DAYS}"),
            ));
        }
    };
    let integration = app.store().integrations().get(integration_id).await?;
    let binary_path = app.desktop_client().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "client_unavailable",
            "this server has no workstation client to offer: it is only available when the \
             server runs as `keybridge serve`",
        )
    })?;
    let binary = tokio::fs::read(binary_path).await.map_err(|e| {
        ApiError::internal(format!(
            "cannot read the workstation client {}: {e}",
            binary_path.display()
        ))
    })?;

    let mut tx = app.store().begin().await?;
    let (token, secret) = tx
        .install_tokens()
        .create(
            &integration.id,
            actor,
            Duration::from_secs(u64::from(days) * 86_400),
        )
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "integration.desktop_client.download")
                    .target(format!("integration:{}", integration.id))
                    .details(serde_json::json!({
                        "install_token_id": token.id,
                        "expires_at": token.expires_at.to_rfc3339(),
                    })),
            ),
        )
        .await?;
    tx.commit().await?;

    let config = WorkstationConfig {
        version: CONFIG_FORMAT_VERSION,
        keybridge_version: env!("CARGO_PKG_VERSION"),
        server_url: app.config().server.public_url.to_string(),
        integration_id: integration.id.clone(),
        integration_name: integration.name.clone(),
        tls_pin: app.tls_pin().to_owned(),
        install_token: secret,
        install_token_expires_at: token.expires_at.to_rfc3339(),
        support_email: integration.support_email.clone(),
    };
    let json = serde_json::to_vec_pretty(&config)
        .map_err(|e| ApiError::internal(format!("keybridge.json: {e}")))?;
    let bytes = tokio::task::spawn_blocking(move || zip_files(&binary, &json))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(DesktopClient {
        file_name: format!("keybridge-{}.zip", integration.internal_id),
        bytes,
    })
}

fn zip_files(binary: &[u8], json: &[u8]) -> Result<Vec<u8>, String> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer
        .start_file(CLIENT_FILE, deflated.unix_permissions(0o755))
        .map_err(|e| e.to_string())?;
    writer.write_all(binary).map_err(|e| e.to_string())?;
    // The install token is a secret: readable by its owner only once unpacked.
    writer
        .start_file(CONFIG_FILE, deflated.unix_permissions(0o600))
        .map_err(|e| e.to_string())?;
    writer.write_all(json).map_err(|e| e.to_string())?;
    let cursor = writer.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}
