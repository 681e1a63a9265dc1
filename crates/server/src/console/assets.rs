//! The console's CSS and JS, embedded in the binary and served under a name that carries a
//! hash of their content (`/console/static/console-<hash>.css`), so that they can be cached
//! for a year and a new release is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ConsoleError;

const CSS: &str = include_str!("../../static/console.css");
const JS: &str = include_str!("../../static/console.js");

/// One embedded file and the name it is served under.
#[derive(Debug)]
pub struct Asset {
    /// `console-<hash>.css`.
    pub name: String,
    /// The content.
    pub body: &'static str,
    /// Its media type.
    pub content_type: &'static str,
}

fn asset(stem: &str, extension: &str, body: &'static str, content_type: &'static str) -> Asset {
    let hash = hex_prefix(&Sha256::digest(body.as_bytes()));
    Asset {
        name: format!("{stem}-{hash}.{extension}"),
        body,
        content_type,
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

static STYLESHEET: LazyLock<Asset> =
    LazyLock::new(|| asset("console", "css", CSS, "text/css; charset=utf-8"));
static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| asset("console", "js", JS, "text/javascript; charset=utf-8"));

/// The stylesheet's URL.
pub fn css_url() -> String {
    format!("/console/static/{}", STYLESHEET.name)
}

/// The script's URL.
pub fn js_url() -> String {
    format!("/console/static/{}", SCRIPT.name)
}

/// `GET /console/static/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let found = [&*STYLESHEET, &*SCRIPT]
        .into_iter()
        .find(|asset| asset.name == name);
    let Some(asset) = found else {
        return ConsoleError::NotFound.into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
