//! # keybridge-server
//!
//! keybridge's HTTPS server: the admin API under `/api/v1` (with its OpenAPI document),
//! `/healthz`, `/readyz` and `/metrics`, admin API tokens, integrations (connecting an Entra
//! tenant, pre-flight checks of its FIDO2 policy, login settings) and the job workers that do
//! the slow Graph work (directory sync). `keybridge serve` and the tests run it through
//! [`Server::start`].
//!
//! ## What it must not do
//! It holds no SQL (every query is `keybridge-store`'s) and no domain rules of its own (names,
//! ids, domains and user states are `keybridge-core`'s); it speaks to Entra only through
//! `keybridge-graph`. Handlers are thin: extract, parse into core types, call a service or a
//! repository, return a typed body. Slow Graph work becomes a job.
//!
//! ## Main types
//! - [`Server::start`] with a [`keybridge_config::Config`], a connected
//!   [`keybridge_store::Store`] and [`ServerOptions`] → [`RunningServer`] (`addr`, `base_url`,
//!   `tls_pin`, [`RunningServer::shutdown`]).
//! - [`App`]: the state handlers reach through `State<App>`: store, configuration,
//!   [`GraphFactory`] (one cached Graph client per integration), metrics handle.
//! - [`ApiError`] / [`ApiResult`]: the one error type and its JSON envelope
//!   (`{"error":{"code","message","field"?,"details"?,"request_id"}}`).
//! - [`auth::AdminAuth`]: the bearer-token extractor with a role requirement.
//! - [`TlsMaterial`]: the configured or self-made certificate and its pin.
//! - [`create_token_locally`]: the first admin token, made directly in the database.
//!
//! ## Areas
//! `router.rs` merges the area routers: [`health`] and [`api_v1`] (tokens, integrations,
//! users, jobs) and [`device_v1`] (the phone's `/device/v1` and the invitation's pairing
//! session) and [`console`] (the admin web console under `/console`, see `docs/console.md`).
//! `workstation_v1` joins the same way.

pub mod api_v1;
pub mod app;
pub mod auth;
pub mod console;
pub mod device_manager;
pub mod device_v1;
pub mod error;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod server;
pub mod services;
pub mod tls;
pub mod wakeups;
pub mod workstation_v1;

pub use api_v1::tokens::{BootstrapError, create_token_locally, parse_role};
pub use app::{App, GraphFactory, GraphSettings};
pub use error::{ApiError, ApiResult};
pub use server::{RunningServer, Server, ServerError, ServerOptions};
pub use tls::{TlsError, TlsMaterial};
