//! # keybridge-graph
//!
//! keybridge's client for the Microsoft identity platform and Microsoft Graph: the only way
//! the server talks to Entra ID. It fetches app-only tokens (client secret, or a certificate
//! with a PS256/RS256 client assertion), and offers the Graph calls keybridge needs: users
//! (paging, delta, get), groups and members (batched), authentication methods and FIDO2
//! passkeys (list, get, delete, creationOptions, create), the FIDO2 policy, `$batch`, and a
//! permission self-test. It paces itself to Graph's documented quotas, honours `Retry-After`,
//! retries transient failures with jittered backoff, and never creates a passkey twice.
//!
//! It must not know about keybridge's store, and it shares no code or types with
//! `keybridge-entra-sim`: the emulator is an independent reading of the same documentation
//! and serves as this crate's test double.
//!
//! Main types: [`GraphClient`] (built from a [`GraphConfig`]), [`ClientCredential`] /
//! [`CertificateCredential`], [`Cloud`], [`GraphError`], [`RateLimits`], [`RetryPolicy`],
//! [`Clock`].
//!
//! ```no_run
//! use keybridge_graph::{ClientCredential, GraphClient, GraphConfig, TenantSize, DEFAULT_USER_SELECT};
//!
//! # async fn demo(secret: String) -> Result<(), keybridge_graph::GraphError> {
//! let credential = ClientCredential::secret(secret)?;
//! let client = GraphClient::new(GraphConfig::new("contoso.onmicrosoft.com", "00000000-0000-0000-0000-000000000001", credential))?;
//! for line in client.check_permissions().await?.messages() {
//!     eprintln!("{line}");
//! }
//! client.set_tenant_size(TenantSize::Large);
//! let mut pages = client.list_users(DEFAULT_USER_SELECT, 999)?;
//! while let Some(users) = pages.next_page().await? {
//!     println!("{} users", users.len());
//! }
//! # Ok(()) }
//! ```
//!
//! Retries: reads, PATCH and DELETE are retried after 5xx, timeouts and broken connections
//! (exponential backoff, full jitter); every request is retried after a 429 once its
//! `Retry-After` has passed (the whole client pauses). A 401 `InvalidAuthenticationToken`
//! fetches a new token once. Creating a group or a passkey is never blindly repeated: the
//! client looks for the result first.

pub mod batch;
pub mod clock;
pub mod cloud;
pub mod credentials;
pub mod error;
pub mod groups;
pub mod limiter;
pub mod methods;
pub mod models;
pub mod odata;
pub mod permissions;
pub mod retry;
pub mod users;

mod client;
mod token;

pub use batch::{BatchRequest, BatchResponse};
pub use client::{ApiVersion, ClientStats, GraphClient, GraphConfig};
pub use clock::{Clock, FakeClock, SystemClock};
pub use cloud::{Cloud, CustomCloud};
pub use credentials::{
    AssertionAlgorithm, CertificateCredential, CertificateWarning, ClientCredential, ClientSecret,
    CredentialError,
};
pub use error::{AuthFailure, GraphError, RequestIds, ServiceError, TransportKind};
pub use groups::{MemberFailure, MembershipChange};
pub use limiter::{
    FIDO2_HOLD_FIRST, FIDO2_HOLD_MAX, Fido2Pacing, RateLimiter, RateLimits, RequestCost, TenantSize,
};
pub use models::*;
pub use permissions::{PermissionReport, RequiredPermission};
pub use retry::RetryPolicy;
pub use token::AccessToken;
pub use users::{DEFAULT_USER_SELECT, DeltaPage, DeltaStart, Pages, UserDelta};
