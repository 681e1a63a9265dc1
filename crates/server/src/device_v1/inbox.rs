//! The phone's inbox (long poll), its answers, and unpairing.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keybridge_device_protocol::{
    Answer, InboxItem, InboxPage, InboxRequest, ProtocolVersion, RequestAnswer,
};
use keybridge_store::{Channel, NewAuditEvent, StoreError, Timestamp};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::RequestMeta;
use crate::device_v1::auth::DeviceAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::services::provisioning;
use crate::services::unpair::{self, Unpairing};

/// The longest a poll is held.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// `?wait=N`.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds to hold the request when nothing is pending (0–30; default 30).
    pub wait: Option<u64>,
}

async fn open_items(app: &App, device_key: &str) -> ApiResult<Vec<InboxItem>> {
    let requests = app
        .store()
        .device_requests()
        .fetch_inbox(device_key, Timestamp::now())
        .await?;
    Ok(requests
        .into_iter()
        .filter_map(
            |request| match serde_json::from_value::<InboxItem>(request.payload) {
                Ok(item) => Some(item),
                Err(e) => {
                    tracing::error!(request_id = %request.id, error = %e, "an inbox request is not a protocol message; skipped");
                    None
                }
            },
        )
        .collect())
}

/// `GET /device/v1/inbox?wait=N`: the open requests of the signing device, at once when there
/// are some, else after the first one arrives or `wait` seconds.
pub async fn fetch(
    State(app): State<App>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    auth: DeviceAuth,
) -> ApiResult<Json<InboxPage>> {
    let wait = query.wait.unwrap_or(MAX_WAIT_SECONDS);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::invalid(
            "wait",
            format!("{wait} s is more than the longest poll, {MAX_WAIT_SECONDS} s"),
        ));
    }
    let device_key = auth.phone.device_key.clone();
    // Register before looking, so that a request created in between still wakes the poll.
    let watch = app.wakeups().watch(Channel::DeviceInbox, &device_key);
    let notified = watch.notify().notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let mut requests = open_items(&app, &device_key).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    while requests.is_empty() && wait > 0 {
        if tokio::time::timeout_at(deadline, notified.as_mut())
            .await
            .is_err()
        {
            break;
        }
        notified.set(watch.notify().notified());
        notified.as_mut().enable();
        requests = open_items(&app, &device_key).await?;
    }
    Ok(Json(InboxPage {
        v: ProtocolVersion,
        requests,
    }))
}

/// `POST /device/v1/requests/{id}`: the device's answer, kept once.
pub async fn answer(
    State(app): State<App>,
    Path(id): Path<String>,
    meta: RequestMeta,
    auth: DeviceAuth,
) -> ApiResult<StatusCode> {
    if auth.phone.unpairing_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "unpairing",
            "this phone is being unpaired: keybridge takes no more answers from it",
        ));
    }
    let answer: RequestAnswer = serde_json::from_slice(&auth.body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_answer",
            format!("the answer cannot be read: {e}"),
        )
    })?;
    let not_found = || ApiError::not_found(format!("no request {id} is waiting for this device"));
    let path_id = uuid::Uuid::try_parse(&id).map_err(|_| not_found())?;
    let stored = match app.store().device_requests().get(&id).await {
        Ok(request) if request.device_key == auth.phone.device_key => request,
        Ok(_) => return Err(not_found()),
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let item: InboxItem = serde_json::from_value(stored.payload.clone())
        .map_err(|e| ApiError::internal(format!("stored request {id} is unreadable: {e}")))?;
    answer.check_fits(path_id, &item.request).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "answer_does_not_fit",
            e.to_string(),
        )
    })?;
    let approved = matches!(
        answer.answer,
        Answer::Credential { .. } | Answer::Approved { .. }
    );
    let response = serde_json::to_value(&answer)
        .map_err(|e| ApiError::internal(format!("cannot keep the answer: {e}")))?;
    // One transaction with the registration job and the audit event: a crash in between would
    // leave an approved answer that nothing registers in Entra (the phone, told nothing, would
    // not send it again, since the request is no longer in its inbox).
    let mut tx = app.store().begin().await?;
    match tx
        .device_requests()
        .answer(
            &id,
            &auth.phone.device_key,
            approved,
            Some(&response),
            Timestamp::now(),
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::TokenRejected {
            reason: "was already answered",
            ..
        }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_answered",
                format!("request {id} was already answered"),
            ));
        }
        Err(StoreError::TokenRejected { reason, .. }) => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "expired",
                format!("request {id} {reason}: wait for a new one"),
            ));
        }
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(e.into()),
    }
    if matches!(item.request, InboxRequest::ProvisionPasskey(_)) {
        // Entra is slow work: the registration (or the recording of a refusal) is a job.
        tx.jobs()
            .enqueue(app.attempts(provisioning::register_passkey(&id)))
            .await?;
    }
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(format!("phone:{}", auth.phone.id), "device.request.answer")
                    .target(format!("user:{}", stored.user_id))
                    .details(serde_json::json!({
                        "request_id": id,
                        "approved": approved,
                    })),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to an unpairing that runs as a job.
#[derive(Debug, Serialize)]
pub struct UnpairQueued {
    /// The job deleting the phone's passkey from Entra and then the phone.
    pub job_id: String,
}

/// `DELETE /device/v1/device`: the phone unpairs itself. Without a passkey recorded it is
/// removed at once (204); with one, a job deletes the passkey from Entra first (202 with the
/// job). The user returns to Pending with "This user unpaired from keybridge." when it was
/// their last phone.
pub async fn unpair(
    State(app): State<App>,
    meta: RequestMeta,
    auth: DeviceAuth,
) -> ApiResult<Response> {
    let actor = format!("phone:{}", auth.phone.id);
    Ok(
        match unpair::request(&app, &auth.phone, &actor, &meta, false).await? {
            Unpairing::Done => StatusCode::NO_CONTENT.into_response(),
            Unpairing::Queued { job_id } => {
                (StatusCode::ACCEPTED, Json(UnpairQueued { job_id })).into_response()
            }
        },
    )
}
