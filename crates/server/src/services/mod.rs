//! The work behind the handlers and jobs: each service takes parsed core types, talks to
//! Entra through `keybridge-graph` and to the database through `keybridge-store`, and returns
//! views.

pub mod bulk_invite_email;
pub mod bulk_invites;
pub mod desktop_client;
pub mod directory_sync;
pub mod facts;
pub mod group_lookup;
pub mod integrations;
pub mod invites;
pub mod method_delete;
pub mod preflight;
pub mod provisioning;
pub mod status_check;
pub mod unpair;
pub mod user_delete;
pub mod user_devices;

use keybridge_graph::GraphClient;
use keybridge_store::{Credential, Integration, JobContext, JobError};

use crate::app::App;
use crate::jobs::{graph_failure, store_failure};

/// The integration a job works on and a Graph client signed in as it, with failures as job
/// results (a vanished integration is permanent, a transient Graph failure is retried).
pub(crate) async fn job_integration(
    app: &App,
    ctx: &JobContext,
    integration_id: &str,
) -> Result<(Integration, GraphClient), JobError> {
    let integration = ctx
        .store()
        .integrations()
        .get(integration_id)
        .await
        .map_err(store_failure)?;
    let client = app
        .graph()
        .for_integration(&integration)
        .map_err(graph_failure)?;
    Ok((integration, client))
}

/// Whether Entra's FIDO2 method `method_id` is `credential`: the id Entra gave it, or
/// base64url(credential id) with at most one padding digit (how Entra names methods, so a
/// passkey whose registration answer was lost is recognised too).
pub(crate) fn is_method_of(credential: &Credential, method_id: &str) -> bool {
    credential.entra_method_id.as_deref() == Some(method_id)
        || method_id
            .strip_prefix(credential.credential_id.as_str())
            .is_some_and(|rest| rest.len() <= 1)
}
