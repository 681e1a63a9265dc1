//! Signed requests: every call a paired phone (or workstation) makes after enrolment.
//!
//! Four headers carry the signature:
//!
//! | header | value |
//! |---|---|
//! | `KB-Device-Id` (phones) / `KB-Workstation-Id` (workstations) | the signer's UUID |
//! | `KB-Timestamp` | Unix seconds when the request was signed |
//! | `KB-Nonce` | 16 random bytes, unpadded base64url (22 characters), never reused |
//! | `KB-Signature` | ECDSA P-256 SHA-256 of the canonical string, unpadded base64url of `r \|\| s` |
//!
//! The canonical string ([`canonical_request`]) is 8 lines joined by `\n`, no trailing newline:
//!
//! ```text
//! keybridge-request-v1
//! device                                  (or workstation)
//! <signer id, hyphenated lower-case UUID>
//! <method, upper case>
//! <path and query exactly as sent in the request line>
//! <timestamp>
//! <nonce>
//! <SHA-256 of the body bytes, unpadded base64url>
//! ```
//!
//! The server verifies in this order ([`RequestVerifier`]): headers well formed → signer known
//! (the server's lookup; [`RequestAuthError::UnknownSigner`] otherwise) → timestamp within
//! the skew window (±300 s by default) → signature → nonce not seen before ([`ReplayCache`]).
//! Only requests with a valid signature reach the replay cache, so nobody can fill it without
//! a registered key.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::encoding::{b64url, display_safe, from_b64url_exact};
use crate::keys::{IdentityKey, IdentityPublicKey, KeyError, Signature};

/// Header naming a phone.
pub const DEVICE_ID_HEADER: &str = "KB-Device-Id";
/// Header naming a workstation.
pub const WORKSTATION_ID_HEADER: &str = "KB-Workstation-Id";
/// Header with the Unix time of signing.
pub const TIMESTAMP_HEADER: &str = "KB-Timestamp";
/// Header with the request's nonce.
pub const NONCE_HEADER: &str = "KB-Nonce";
/// Header with the signature.
pub const SIGNATURE_HEADER: &str = "KB-Signature";

/// The default clock-skew window: a request is accepted up to 300 s before or after the
/// server's clock.
pub const DEFAULT_MAX_SKEW: Duration = Duration::seconds(300);

/// Who signs: a phone or a workstation. The kind is part of the canonical string, so a
/// signature made for one API is never valid on the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignerKind {
    /// A phone (`/device/v1`), id in `KB-Device-Id`.
    Device,
    /// A workstation (`/workstation/v1`), id in `KB-Workstation-Id`.
    Workstation,
}

impl SignerKind {
    /// The header that carries this signer's id.
    pub fn id_header(self) -> &'static str {
        match self {
            SignerKind::Device => DEVICE_ID_HEADER,
            SignerKind::Workstation => WORKSTATION_ID_HEADER,
        }
    }

    fn label(self) -> &'static str {
        match self {
            SignerKind::Device => "device",
            SignerKind::Workstation => "workstation",
        }
    }
}

/// Why a signed request was refused. Every variant but [`RequestAuthError::ReplayCache`] is
/// the caller's fault and answers 401 ([`RequestAuthError::http_status`]).
#[derive(Debug, thiserror::Error)]
pub enum RequestAuthError {
    /// A signature header is absent.
    #[error("the request is not signed: header {header} is missing")]
    MissingHeader {
        /// The header's name.
        header: &'static str,
    },
    /// A signature header cannot be read.
    #[error("header {header} is malformed: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The method or path cannot be put in a canonical string.
    #[error("the request line cannot be signed: {reason}")]
    BadRequestTarget {
        /// What is wrong.
        reason: String,
    },
    /// The signer id names no registered (or no active) phone or workstation.
    #[error(
        "unknown {kind}: {id} is not registered with this server (it was unpaired or revoked); pair again"
    )]
    UnknownSigner {
        /// `device` or `workstation`.
        kind: &'static str,
        /// The id given.
        id: Uuid,
    },
    /// The timestamp is outside the skew window.
    #[error(
        "stale request: signed at {timestamp} (Unix seconds) but the server's clock reads {now}, more than {max_skew_seconds} s apart; check the device's clock"
    )]
    StaleTimestamp {
        /// The request's timestamp.
        timestamp: i64,
        /// The server's clock.
        now: i64,
        /// The window.
        max_skew_seconds: i64,
    },
    /// The signature does not verify with the signer's key.
    #[error(
        "bad signature: the request was altered, or signed by another key than the registered one"
    )]
    BadSignature,
    /// The nonce was already used by this signer.
    #[error("replayed request: this nonce was already used; each request needs a fresh nonce")]
    ReplayedNonce,
    /// The replay cache could not be consulted (a server fault, not the caller's).
    #[error("the replay cache is unavailable: {0}")]
    ReplayCache(#[from] ReplayCacheError),
}

impl RequestAuthError {
    /// The HTTP status to answer: 401 for the caller's faults, 503 when the replay cache
    /// failed (the request may be retried).
    pub fn http_status(&self) -> u16 {
        match self {
            RequestAuthError::ReplayCache(_) => 503,
            _ => 401,
        }
    }

    /// A stable machine-readable code for the error body (`{"error":{"code":...}}`), so the
    /// client can react: `stale_timestamp` → check the clock, `unknown_device` → pair again.
    pub fn code(&self) -> &'static str {
        match self {
            RequestAuthError::MissingHeader { .. } => "unsigned_request",
            RequestAuthError::MalformedHeader { .. } => "malformed_signature_header",
            RequestAuthError::BadRequestTarget { .. } => "bad_request_target",
            RequestAuthError::UnknownSigner { .. } => "unknown_device",
            RequestAuthError::StaleTimestamp { .. } => "stale_timestamp",
            RequestAuthError::BadSignature => "bad_signature",
            RequestAuthError::ReplayedNonce => "replayed_nonce",
            RequestAuthError::ReplayCache(_) => "replay_cache_unavailable",
        }
    }
}

/// A request's nonce: 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce([u8; 16]);

impl Nonce {
    /// A fresh random nonce.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Nonce {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Nonce(bytes)
    }

    /// A nonce from its bytes (for test vectors).
    pub fn from_bytes(bytes: [u8; 16]) -> Nonce {
        Nonce(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The header form: unpadded base64url.
    pub fn to_base64url(&self) -> String {
        b64url(&self.0)
    }

    /// Reads the header form.
    pub fn parse(text: &str) -> Option<Nonce> {
        from_b64url_exact::<16>(text).map(Nonce)
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.to_base64url())
    }
}

fn check_method(method: &str) -> Result<(), RequestAuthError> {
    if !method.is_empty() && method.len() <= 16 && method.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(RequestAuthError::BadRequestTarget {
            reason: format!(
                "method {:?} is not an upper-case HTTP method",
                display_safe(method, 20)
            ),
        })
    }
}

fn check_path(path_and_query: &str) -> Result<(), RequestAuthError> {
    let visible_ascii = path_and_query.bytes().all(|b| b.is_ascii_graphic());
    if path_and_query.starts_with('/') && visible_ascii && !path_and_query.contains('#') {
        Ok(())
    } else {
        Err(RequestAuthError::BadRequestTarget {
            reason: format!(
                "path {:?} must start with / and hold only visible ASCII (percent-encode the rest), no fragment",
                display_safe(path_and_query, 80)
            ),
        })
    }
}

/// The SHA-256 of a body, as it appears in the canonical string.
pub fn body_digest(body: &[u8]) -> String {
    b64url(&Sha256::digest(body))
}

/// What a signature covers, apart from the signer's key.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    /// The HTTP method, upper case (`GET`, `POST`, `DELETE`).
    pub method: &'a str,
    /// Path and query exactly as in the request line, e.g. `/device/v1/inbox?wait=30`. With a
    /// server under a base path, include it (see `ServerUrl::base_path`).
    pub path_and_query: &'a str,
    /// The body bytes exactly as sent (empty for GET and DELETE).
    pub body: &'a [u8],
}

/// The canonical string a request signature covers (see the module documentation).
pub fn canonical_request(
    kind: SignerKind,
    signer_id: Uuid,
    target: &RequestTarget<'_>,
    timestamp: i64,
    nonce: &Nonce,
) -> Result<String, RequestAuthError> {
    check_method(target.method)?;
    check_path(target.path_and_query)?;
    Ok(format!(
        "keybridge-request-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        kind.label(),
        signer_id.hyphenated(),
        target.method,
        target.path_and_query,
        timestamp,
        nonce.to_base64url(),
        body_digest(target.body),
    ))
}

/// The four signature headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Phone or workstation.
    pub kind: SignerKind,
    /// The signer's id.
    pub signer_id: Uuid,
    /// Unix seconds.
    pub timestamp: i64,
    /// The nonce.
    pub nonce: Nonce,
    /// The signature of the canonical string.
    pub signature: Signature,
}

impl SignedHeaders {
    /// Signs a request on the client with a fresh nonce.
    pub fn sign(
        kind: SignerKind,
        signer_id: Uuid,
        key: &IdentityKey,
        target: &RequestTarget<'_>,
        now: OffsetDateTime,
        rng: &mut impl CryptoRngCore,
    ) -> Result<SignedHeaders, RequestAuthError> {
        SignedHeaders::sign_with_nonce(
            kind,
            signer_id,
            key,
            target,
            now.unix_timestamp(),
            Nonce::generate(rng),
        )
    }

    /// Signs with a given timestamp and nonce (test vectors; never reuse a nonce).
    pub fn sign_with_nonce(
        kind: SignerKind,
        signer_id: Uuid,
        key: &IdentityKey,
        target: &RequestTarget<'_>,
        timestamp: i64,
        nonce: Nonce,
    ) -> Result<SignedHeaders, RequestAuthError> {
        let canonical = canonical_request(kind, signer_id, target, timestamp, &nonce)?;
        Ok(SignedHeaders {
            kind,
            signer_id,
            timestamp,
            nonce,
            signature: key.sign(canonical.as_bytes()),
        })
    }

    /// The headers to add to the HTTP request, as (name, value) pairs.
    pub fn to_header_pairs(&self) -> [(&'static str, String); 4] {
        [
            (
                self.kind.id_header(),
                self.signer_id.hyphenated().to_string(),
            ),
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (NONCE_HEADER, self.nonce.to_base64url()),
            (SIGNATURE_HEADER, self.signature.to_base64url()),
        ]
    }

    /// Reads the headers on the server. `header` looks a header up by name
    /// (case-insensitively, as HTTP does) and gives its value when it is present and valid
    /// UTF-8/ASCII.
    pub fn from_headers<'h>(
        kind: SignerKind,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> Result<SignedHeaders, RequestAuthError> {
        let get = |name: &'static str| {
            header(name)
                .map(str::trim)
                .ok_or(RequestAuthError::MissingHeader { header: name })
        };
        let malformed = |header: &'static str, reason: &str| RequestAuthError::MalformedHeader {
            header,
            reason: reason.to_owned(),
        };
        let id_header = kind.id_header();
        let signer_id = Uuid::try_parse(get(id_header)?)
            .map_err(|_| malformed(id_header, "expected a UUID"))?;
        let timestamp_text = get(TIMESTAMP_HEADER)?;
        let timestamp = timestamp_text
            .parse::<i64>()
            .ok()
            .filter(|_| {
                !timestamp_text.is_empty()
                    && timestamp_text.len() <= 12
                    && timestamp_text.bytes().all(|b| b.is_ascii_digit())
            })
            .ok_or_else(|| malformed(TIMESTAMP_HEADER, "expected Unix seconds (digits only)"))?;
        let nonce = Nonce::parse(get(NONCE_HEADER)?).ok_or_else(|| {
            malformed(
                NONCE_HEADER,
                "expected 16 bytes as unpadded base64url (22 characters)",
            )
        })?;
        let signature = Signature::parse(get(SIGNATURE_HEADER)?).map_err(|error| match error {
            KeyError::BadSignature { .. } => malformed(
                SIGNATURE_HEADER,
                "expected an ECDSA P-256 signature: 64 bytes r || s as unpadded base64url",
            ),
            other => malformed(SIGNATURE_HEADER, &other.to_string()),
        })?;
        Ok(SignedHeaders {
            kind,
            signer_id,
            timestamp,
            nonce,
            signature,
        })
    }
}

/// Checks signed requests on the server.
#[derive(Debug, Clone, Copy)]
pub struct RequestVerifier {
    max_skew: Duration,
}

impl Default for RequestVerifier {
    fn default() -> Self {
        RequestVerifier {
            max_skew: DEFAULT_MAX_SKEW,
        }
    }
}

impl RequestVerifier {
    /// A verifier with another skew window (at least 1 s).
    pub fn with_max_skew(max_skew: Duration) -> RequestVerifier {
        RequestVerifier {
            max_skew: max_skew.max(Duration::SECOND),
        }
    }

    /// The skew window.
    pub fn max_skew(&self) -> Duration {
        self.max_skew
    }

    /// Checks the timestamp and the signature with the signer's registered key. The request is
    /// not authenticated yet: call [`SignatureVerified::check_replay`] next.
    pub fn verify_signature(
        &self,
        headers: &SignedHeaders,
        signer_key: &IdentityPublicKey,
        target: &RequestTarget<'_>,
        now: OffsetDateTime,
    ) -> Result<SignatureVerified, RequestAuthError> {
        let now_seconds = now.unix_timestamp();
        let max_skew_seconds = self.max_skew.whole_seconds();
        if headers.timestamp.abs_diff(now_seconds) > max_skew_seconds.unsigned_abs() {
            return Err(RequestAuthError::StaleTimestamp {
                timestamp: headers.timestamp,
                now: now_seconds,
                max_skew_seconds,
            });
        }
        let canonical = canonical_request(
            headers.kind,
            headers.signer_id,
            target,
            headers.timestamp,
            &headers.nonce,
        )?;
        if !signer_key.verify(canonical.as_bytes(), &headers.signature) {
            return Err(RequestAuthError::BadSignature);
        }
        Ok(SignatureVerified {
            kind: headers.kind,
            signer_id: headers.signer_id,
            nonce: headers.nonce,
            checked_at: now,
            // After this instant the timestamp check alone refuses the request.
            remember_until: OffsetDateTime::from_unix_timestamp(headers.timestamp)
                .unwrap_or(now)
                .saturating_add(self.max_skew),
        })
    }
}

/// A request whose signature and timestamp are good; its nonce is not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the nonce must still be checked with check_replay"]
pub struct SignatureVerified {
    kind: SignerKind,
    signer_id: Uuid,
    nonce: Nonce,
    checked_at: OffsetDateTime,
    remember_until: OffsetDateTime,
}

impl SignatureVerified {
    /// Records the nonce; a nonce seen before refuses the request.
    pub async fn check_replay(
        self,
        cache: &impl ReplayCache,
    ) -> Result<AuthenticatedSigner, RequestAuthError> {
        let entry = NonceEntry {
            kind: self.kind,
            signer_id: self.signer_id,
            nonce: self.nonce,
            seen_at: self.checked_at,
            remember_until: self.remember_until,
        };
        match cache.remember(&entry).await? {
            Freshness::Fresh => Ok(AuthenticatedSigner {
                kind: self.kind,
                signer_id: self.signer_id,
            }),
            Freshness::Replayed => Err(RequestAuthError::ReplayedNonce),
        }
    }
}

/// The result of a fully checked request: who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedSigner {
    /// Phone or workstation.
    pub kind: SignerKind,
    /// Its id.
    pub signer_id: Uuid,
}

/// One nonce to remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceEntry {
    /// Phone or workstation.
    pub kind: SignerKind,
    /// The signer (nonces are unique per signer).
    pub signer_id: Uuid,
    /// The nonce.
    pub nonce: Nonce,
    /// The `now` the request was verified at (the cache's clock, so tests can set it).
    pub seen_at: OffsetDateTime,
    /// When the entry may be forgotten: the request's timestamp plus the skew window.
    pub remember_until: OffsetDateTime,
}

impl NonceEntry {
    /// A text key for a database table's unique column: `device:<uuid>:<nonce>`.
    pub fn storage_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.kind.label(),
            self.signer_id.hyphenated(),
            self.nonce.to_base64url()
        )
    }
}

/// Whether a nonce was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// First use: the request may proceed.
    Fresh,
    /// Seen before: refuse.
    Replayed,
}

/// A failure of the replay cache's storage.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplayCacheError(pub Box<dyn std::error::Error + Send + Sync>);

/// Remembers nonces until their requests are too old to pass the timestamp check.
///
/// The server implements it on its store, e.g. `INSERT INTO request_nonces (key, expires_at)
/// VALUES ($1, $2) ON CONFLICT DO NOTHING` → one row inserted = [`Freshness::Fresh`], zero =
/// [`Freshness::Replayed`], with a periodic `DELETE ... WHERE expires_at < now`. The insert
/// must be atomic, so that two instances on one database cannot both accept one nonce.
pub trait ReplayCache {
    /// Records `entry` and says whether it was new.
    fn remember(
        &self,
        entry: &NonceEntry,
    ) -> impl Future<Output = Result<Freshness, ReplayCacheError>> + Send;
}

/// An in-process [`ReplayCache`] for tests and a single server instance. Expired entries are
/// dropped as new ones arrive.
#[derive(Debug, Default)]
pub struct MemoryReplayCache {
    entries: Mutex<MemoryEntries>,
}

#[derive(Debug, Default)]
struct MemoryEntries {
    by_key: HashMap<(SignerKind, Uuid, Nonce), OffsetDateTime>,
    next_sweep: Option<OffsetDateTime>,
}

impl MemoryReplayCache {
    /// An empty cache.
    pub fn new() -> MemoryReplayCache {
        MemoryReplayCache::default()
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `entry` (synchronous form of [`ReplayCache::remember`]), sweeping entries
    /// that expired before `entry.seen_at`.
    pub fn remember_now(&self, entry: &NonceEntry) -> Freshness {
        let now = entry.seen_at;
        let mut entries = self.lock();
        if entries.next_sweep.is_none_or(|at| now >= at) {
            entries.by_key.retain(|_, until| *until >= now);
            entries.next_sweep = Some(now + Duration::seconds(30));
        }
        let key = (entry.kind, entry.signer_id, entry.nonce);
        match entries.by_key.get(&key) {
            Some(until) if *until >= now => Freshness::Replayed,
            _ => {
                entries.by_key.insert(key, entry.remember_until);
                Freshness::Fresh
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryEntries> {
        // A panic while holding the lock leaves the map consistent (each step is one call).
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ReplayCache for MemoryReplayCache {
    fn remember(
        &self,
        entry: &NonceEntry,
    ) -> impl Future<Output = Result<Freshness, ReplayCacheError>> + Send {
        std::future::ready(Ok(self.remember_now(entry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use std::task::{Context, Poll, Waker};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 14:00:00 UTC);

    /// Runs a future that is ready at once (the in-memory cache's).
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the in-memory cache answers at once"),
        }
    }

    fn target(body: &[u8]) -> RequestTarget<'_> {
        RequestTarget {
            method: "POST",
            path_and_query: "/device/v1/requests/0190c3d4-0000-7000-8000-000000000001",
            body,
        }
    }

    fn signed(key: &IdentityKey, id: Uuid, timestamp: i64, body: &[u8]) -> SignedHeaders {
        SignedHeaders::sign_with_nonce(
            SignerKind::Device,
            id,
            key,
            &target(body),
            timestamp,
            Nonce::generate(&mut OsRng),
        )
        .expect("signs")
    }

    fn roundtrip(headers: &SignedHeaders) -> SignedHeaders {
        let pairs = headers.to_header_pairs();
        SignedHeaders::from_headers(headers.kind, |name| {
            pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
        .expect("parses")
    }

    #[test]
    fn headers_round_trip() {
        let key = IdentityKey::generate(&mut OsRng);
        let headers = signed(&key, Uuid::from_u128(1), NOW.unix_timestamp(), b"{}");
        assert_eq!(roundtrip(&headers), headers);
    }

    #[test]
    fn a_good_request_passes_once() {
        let key = IdentityKey::generate(&mut OsRng);
        let id = Uuid::from_u128(1);
        let headers = roundtrip(&signed(&key, id, NOW.unix_timestamp() - 299, b"{}"));
        let verifier = RequestVerifier::default();
        let cache = MemoryReplayCache::new();
        let checked = verifier
            .verify_signature(&headers, &key.public_key(), &target(b"{}"), NOW)
            .expect("signature is good");
        let who = ready(checked.clone().check_replay(&cache)).expect("fresh");
        assert_eq!(who.signer_id, id);
        assert!(matches!(
            ready(checked.check_replay(&cache)),
            Err(RequestAuthError::ReplayedNonce)
        ));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let key = IdentityKey::generate(&mut OsRng);
        let verifier = RequestVerifier::default();
        for offset in [-301, 301] {
            let headers = signed(&key, Uuid::from_u128(1), NOW.unix_timestamp() + offset, b"");
            let err = verifier
                .verify_signature(&headers, &key.public_key(), &target(b""), NOW)
                .expect_err("outside the window");
            assert!(
                matches!(err, RequestAuthError::StaleTimestamp { .. }),
                "{err}"
            );
            assert_eq!(err.http_status(), 401);
        }
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = IdentityKey::generate(&mut OsRng);
        let id = Uuid::from_u128(1);
        let headers = signed(&key, id, NOW.unix_timestamp(), b"{\"a\":1}");
        let verifier = RequestVerifier::default();
        let check = |headers: &SignedHeaders, target: RequestTarget<'_>| {
            verifier.verify_signature(headers, &key.public_key(), &target, NOW)
        };
        let body = b"{\"a\":1}".as_slice();
        assert!(check(&headers, target(body)).is_ok());
        assert!(matches!(
            check(&headers, target(b"{\"a\":2}")),
            Err(RequestAuthError::BadSignature)
        ));
        let other_path = RequestTarget {
            path_and_query: "/device/v1/requests/0190c3d4-0000-7000-8000-000000000002",
            ..target(body)
        };
        assert!(matches!(
            check(&headers, other_path),
            Err(RequestAuthError::BadSignature)
        ));
        let other_method = RequestTarget {
            method: "DELETE",
            ..target(body)
        };
        assert!(matches!(
            check(&headers, other_method),
            Err(RequestAuthError::BadSignature)
        ));
        let mut other_id = headers.clone();
        other_id.signer_id = Uuid::from_u128(2);
        assert!(matches!(
            check(&other_id, target(body)),
            Err(RequestAuthError::BadSignature)
        ));
        let mut other_nonce = headers.clone();
        other_nonce.nonce = Nonce::generate(&mut OsRng);
        assert!(matches!(
            check(&other_nonce, target(body)),
            Err(RequestAuthError::BadSignature)
        ));
        let mut as_workstation = headers.clone();
        as_workstation.kind = SignerKind::Workstation;
        assert!(matches!(
            check(&as_workstation, target(body)),
            Err(RequestAuthError::BadSignature)
        ));
        let other_key = IdentityKey::generate(&mut OsRng);
        assert!(matches!(
            verifier.verify_signature(&headers, &other_key.public_key(), &target(body), NOW),
            Err(RequestAuthError::BadSignature)
        ));
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let key = IdentityKey::generate(&mut OsRng);
        let headers = signed(&key, Uuid::from_u128(1), NOW.unix_timestamp(), b"");
        let pairs = headers.to_header_pairs();
        for (skip, _) in &pairs {
            let err = SignedHeaders::from_headers(SignerKind::Device, |name| {
                pairs
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name) && n != skip)
                    .map(|(_, v)| v.as_str())
            })
            .expect_err("missing");
            assert!(
                matches!(err, RequestAuthError::MissingHeader { header } if header == *skip),
                "{err}"
            );
        }
        for (bad_header, bad_value) in [
            (DEVICE_ID_HEADER, "device-7"),
            (TIMESTAMP_HEADER, "-5"),
            (TIMESTAMP_HEADER, "1e9"),
            (NONCE_HEADER, "c2hvcnQ"),
            (SIGNATURE_HEADER, "AAAA"),
        ] {
            let err = SignedHeaders::from_headers(SignerKind::Device, |name| {
                if name.eq_ignore_ascii_case(bad_header) {
                    Some(bad_value)
                } else {
                    pairs
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                }
            })
            .expect_err("malformed");
            assert!(
                matches!(err, RequestAuthError::MalformedHeader { header, .. } if header == bad_header),
                "{bad_header}: {err}"
            );
        }
        // A workstation request needs KB-Workstation-Id, not KB-Device-Id.
        let err = SignedHeaders::from_headers(SignerKind::Workstation, |name| {
            pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
        .expect_err("wrong id header");
        assert!(matches!(
            err,
            RequestAuthError::MissingHeader {
                header: WORKSTATION_ID_HEADER
            }
        ));
    }

    #[test]
    fn request_targets_that_cannot_be_canonical_are_refused() {
        let nonce = Nonce::from_bytes([0; 16]);
        for (method, path) in [
            ("get", "/x"),
            ("POST", "x"),
            ("POST", "/a b"),
            ("POST", "/a\nb"),
            ("POST", "/a#f"),
            ("", "/x"),
        ] {
            let target = RequestTarget {
                method,
                path_and_query: path,
                body: b"",
            };
            assert!(matches!(
                canonical_request(SignerKind::Device, Uuid::nil(), &target, 0, &nonce),
                Err(RequestAuthError::BadRequestTarget { .. })
            ));
        }
    }

    #[test]
    fn unknown_signer_and_cache_errors_have_their_status() {
        let unknown = RequestAuthError::UnknownSigner {
            kind: "device",
            id: Uuid::nil(),
        };
        assert_eq!(unknown.http_status(), 401);
        assert_eq!(unknown.code(), "unknown_device");
        assert!(unknown.to_string().contains("pair again"));
        let cache = RequestAuthError::from(ReplayCacheError("database is locked".into()));
        assert_eq!(cache.http_status(), 503);
    }

    #[test]
    fn memory_cache_forgets_expired_nonces_only() {
        let cache = MemoryReplayCache::new();
        let entry = |nonce: u8, seen_at: OffsetDateTime| NonceEntry {
            kind: SignerKind::Device,
            signer_id: Uuid::from_u128(1),
            nonce: Nonce::from_bytes([nonce; 16]),
            seen_at,
            remember_until: NOW + Duration::seconds(300),
        };
        assert_eq!(cache.remember_now(&entry(1, NOW)), Freshness::Fresh);
        assert_eq!(
            cache.remember_now(&entry(1, NOW + Duration::seconds(300))),
            Freshness::Replayed
        );
        let other_signer = NonceEntry {
            signer_id: Uuid::from_u128(2),
            ..entry(1, NOW)
        };
        assert_eq!(cache.remember_now(&other_signer), Freshness::Fresh);
        assert_eq!(cache.len(), 2);
        let later = NOW + Duration::seconds(400);
        let fresh_later = NonceEntry {
            remember_until: later + Duration::seconds(300),
            ..entry(2, later)
        };
        assert_eq!(cache.remember_now(&fresh_later), Freshness::Fresh);
        assert_eq!(cache.len(), 1, "expired entries were swept");
        assert_eq!(
            entry(1, NOW).storage_key(),
            "device:00000000-0000-0000-0000-000000000001:AQEBAQEBAQEBAQEBAQEBAQ"
        );
    }
}
