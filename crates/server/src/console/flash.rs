//! One-shot messages shown on the next page ("Restrict domains saved successfully"): an
//! action sets the `__Host-kb_flash` cookie and redirects; the next rendered page shows the
//! message and clears the cookie ([`super::page::render`]).

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The flash cookie.
pub const FLASH_COOKIE: &str = "__Host-kb_flash";

/// What kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// Something was done.
    Success,
    /// Something needs attention.
    Error,
}

/// A message for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// Success or error.
    pub kind: FlashKind,
    /// The text (escaped when rendered).
    pub message: String,
}

impl Flash {
    /// A success message.
    pub fn success(message: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Success,
            message: message.into(),
        }
    }

    /// An error message.
    pub fn error(message: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Error,
            message: message.into(),
        }
    }

    /// `success` or `error`, for the template's CSS class.
    pub fn class(&self) -> &'static str {
        match self.kind {
            FlashKind::Success => "success",
            FlashKind::Error => "error",
        }
    }

    /// Redirects (303) to `to` with this message for the page there.
    pub fn redirect(self, to: &str) -> Response {
        let kind = match self.kind {
            FlashKind::Success => "s",
            FlashKind::Error => "e",
        };
        let value = format!(
            "{FLASH_COOKIE}={kind}.{}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=120",
            URL_SAFE_NO_PAD.encode(self.message.as_bytes())
        );
        let mut response = Redirect::to(to).into_response();
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    fn parse(value: &str) -> Option<Flash> {
        let (kind, text) = value.split_once('.')?;
        let kind = match kind {
            "s" => FlashKind::Success,
            "e" => FlashKind::Error,
            _ => return None,
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Flash {
            kind,
            message: String::from_utf8(bytes).ok()?,
        })
    }
}

/// The `Set-Cookie` value that clears the flash cookie.
pub const CLEAR_FLASH: &str =
    "__Host-kb_flash=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0";

/// The flash message this request carries, if any (extractor; never fails).
#[derive(Debug, Clone, Default)]
pub struct IncomingFlash(pub Option<Flash>);

impl<S: Send + Sync> FromRequestParts<S> for IncomingFlash {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(IncomingFlash(
            cookie(&parts.headers, FLASH_COOKIE).and_then(|v| Flash::parse(&v)),
        ))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_round_trips_through_its_cookie_value() {
        let response = Flash::error("Restrict domains: \"x\" is not a domain; <b>").redirect("/a");
        let set = response
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap();
        let value = set
            .strip_prefix("__Host-kb_flash=")
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert_eq!(
            Flash::parse(value),
            Some(Flash::error("Restrict domains: \"x\" is not a domain; <b>"))
        );
        assert_eq!(Flash::parse("x.abc"), None);
    }
}
