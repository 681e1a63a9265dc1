//! Microsoft Graph v1.0 and beta, the subset keybridge uses (reference §2, §3, §4, §5).
//!
//! Graph's URLs do not fit a router well (`creationOptions(challengeTimeoutInMinutes=5)`,
//! `authenticationMethodConfigurations('Fido2')`, users by id or UPN), and `$batch` must run
//! inner requests through the same checks, so one dispatcher reads the path segment by segment.

pub(crate) mod directory;
pub(crate) mod methods;
pub(crate) mod query;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::AccessClaims;
use crate::sim::{Charge, Sim};

/// Content type of Graph's JSON answers.
pub(crate) const GRAPH_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// Most requests in one `$batch`.
pub(crate) const MAX_BATCH: usize = 20;

/// Graph API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    Beta,
}

impl Version {
    pub fn segment(self) -> &'static str {
        match self {
            Version::V1 => "v1.0",
            Version::Beta => "beta",
        }
    }
}

/// A Graph error (§2.2).
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Extra `innerError` members (e.g. for 429).
    pub inner: serde_json::Map<String, Value>,
    pub headers: Vec<(HeaderName, String)>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            inner: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
    pub fn directory_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }
    pub fn methods_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "accessDenied",
            "Request Authorization failed",
        )
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "methodNotAllowed",
            "The method is not supported for this URL.",
        )
    }
    pub fn unauthorized(message: &str) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        e.headers.push((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"".to_owned(),
        ));
        e
    }
    pub fn throttled(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Please retry again later.",
        );
        e.inner.insert("code".into(), json!("429"));
        e.inner.insert("status".into(), json!("429"));
        e.inner
            .insert("message".into(), json!("Please retry after"));
        e.headers
            .push((header::RETRY_AFTER, retry_after.to_string()));
        e
    }
    pub fn bad_body(detail: &str) -> Self {
        Self::bad_request(
            "BadRequest",
            format!(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format. {detail}"
            ),
        )
    }
}

/// One Graph request, from HTTP or from a `$batch`.
#[derive(Debug, Clone)]
pub(crate) struct GraphRequest {
    pub version: Version,
    pub method: Method,
    /// Path after the version, starting with `/`.
    pub path: String,
    pub raw_query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: String,
    pub client_request_id: Option<String>,
}

/// A Graph answer before it becomes HTTP (or a `$batch` item).
#[derive(Debug)]
pub(crate) struct GraphResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<Value>,
    /// `text/plain` body (`/users/$count`).
    pub text: Option<String>,
}

impl GraphResponse {
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body),
            text: None,
        }
    }
    pub fn ok(body: Value) -> Self {
        Self::json(StatusCode::OK, body)
    }
    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
            text: None,
        }
    }
}

fn innererror_date() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

impl GraphError {
    /// The error as a Graph answer with `innerError` carrying date and request ids.
    pub fn into_graph(self, request_id: &str, client_request_id: Option<&str>) -> GraphResponse {
        let mut inner = self.inner;
        inner.insert("date".into(), json!(innererror_date()));
        inner.insert("request-id".into(), json!(request_id));
        inner.insert(
            "client-request-id".into(),
            json!(client_request_id.unwrap_or(request_id)),
        );
        GraphResponse {
            status: self.status,
            headers: self.headers,
            body: Some(
                json!({"error": {"code": self.code, "message": self.message, "innerError": inner}}),
            ),
            text: None,
        }
    }
}

/// The caller, from a verified access token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub claims: AccessClaims,
}

impl Caller {
    /// Whether the token carries any of these roles.
    pub fn has_any(&self, roles: &[&str]) -> bool {
        self.claims
            .roles
            .as_ref()
            .is_some_and(|granted| granted.iter().any(|g| roles.iter().any(|r| g == r)))
    }
    /// Whether this is a user (delegated) token.
    pub fn is_user(&self) -> bool {
        self.claims.idtyp == "user"
    }
}

/// Verifies the `Authorization` header (§1.6, §2.2): signature, audience, lifetime, tenant.
pub(crate) fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<Caller, GraphError> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    // Graph accepts the bare token as well as `Bearer <token>` [O].
    let token = if raw.len() >= 7 && raw[..7].eq_ignore_ascii_case("bearer ") {
        raw[7..].trim()
    } else if raw.eq_ignore_ascii_case("bearer") {
        // "Bearer " with nothing after it (the trailing space does not survive HTTP).
        ""
    } else {
        raw
    };
    if token.is_empty() {
        return Err(GraphError::unauthorized("Access token is empty."));
    }
    if token.split('.').count() != 3 {
        return Err(GraphError::unauthorized(
            "CompactToken parsing failed with error code: 80049217",
        ));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<AccessClaims>(token, &sim.signing.decoding, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                GraphError::unauthorized("Access token validation failure. Invalid signature.")
            }
            _ => GraphError::unauthorized("CompactToken parsing failed with error code: 80049217"),
        })?;
    let claims = data.claims;
    let now = sim.now().unix_timestamp();
    if claims.exp < now || claims.nbf > now + 300 {
        return Err(GraphError::unauthorized(
            "Access token has expired or is not yet valid.",
        ));
    }
    if claims.aud != "https://graph.microsoft.com"
        && claims.aud != "00000003-0000-0000-c000-000000000000"
    {
        return Err(GraphError::unauthorized(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let tid = sim.read().tenant_id.to_string();
    if claims.tid != tid {
        return Err(GraphError::unauthorized(
            "Access token validation failure. Invalid issuer.",
        ));
    }
    Ok(Caller { claims })
}

/// Role sets that satisfy each kind of call (least privileged first).
pub(crate) mod roles {
    pub const USERS_READ: &[&str] = &[
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ];
    pub const DIRECTORY_READ: &[&str] = &["Directory.Read.All", "Directory.ReadWrite.All"];
    pub const GROUPS_READ: &[&str] = &[
        "GroupMember.Read.All",
        "Group.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ];
    pub const GROUPS_CREATE: &[&str] = &[
        "Group.Create",
        "Group.ReadWrite.All",
        "Directory.ReadWrite.All",
    ];
    pub const GROUPS_WRITE: &[&str] = &["Group.ReadWrite.All", "Directory.ReadWrite.All"];
    pub const MEMBERS_WRITE: &[&str] = &[
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.ReadWrite.All",
    ];
    pub const METHODS_READ: &[&str] = &[
        "UserAuthenticationMethod.Read.All",
        "UserAuthenticationMethod.ReadWrite.All",
    ];
    pub const FIDO2_READ: &[&str] = &[
        "UserAuthMethod-Passkey.Read.All",
        "UserAuthMethod-Passkey.ReadWrite.All",
        "UserAuthenticationMethod.Read.All",
        "UserAuthenticationMethod.ReadWrite.All",
    ];
    pub const FIDO2_WRITE: &[&str] = &[
        "UserAuthMethod-Passkey.ReadWrite.All",
        "UserAuthenticationMethod.ReadWrite.All",
    ];
    pub const POLICY_READ: &[&str] = &[
        "Policy.Read.AuthenticationMethod",
        "Policy.ReadWrite.AuthenticationMethod",
    ];
    pub const POLICY_WRITE: &[&str] = &["Policy.ReadWrite.AuthenticationMethod"];
}

/// Splits a Graph path into decoded segments.
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// A coarse name for the endpoint, used for counters and throttling cost.
pub(crate) fn endpoint_label(method: &Method, version: Version, path: &str) -> String {
    let segs = segments(path);
    let mut label = String::new();
    for (i, seg) in segs.iter().enumerate() {
        label.push('/');
        let generic = match (segs.first().map(String::as_str), i) {
            (Some("users"), 1) if seg != "delta" && seg != "$count" && seg != "delta()" => true,
            (Some("groups"), 1) => true,
            (Some("groups"), 3) if seg != "$ref" && seg != "microsoft.graph.user" => true,
            (Some("users"), 4) if !seg.starts_with("creationOptions") => true,
            _ => false,
        };
        if generic {
            label.push_str("{id}");
        } else if seg.starts_with("creationOptions") {
            label.push_str("creationOptions");
        } else {
            label.push_str(seg);
        }
    }
    format!("{method} /{}{label}", version.segment())
}

/// Resource-unit cost of a request (§2.5).
fn cost(method: &Method, segs: &[String], options: &query::Options) -> (u64, bool, bool) {
    let write = *method != Method::GET;
    let report = segs.get(2).is_some_and(|s| s == "authentication");
    if write {
        return (1, true, report);
    }
    let base: i64 = match (segs.first().map(String::as_str), segs.len()) {
        (Some("users"), 1) => 2,
        (Some("groups"), 3) if segs[2] == "members" => 3,
        (Some("directoryObjects"), _) => 5,
        _ => 1,
    };
    let mut c = base;
    if options.select.is_some() {
        c -= 1;
    }
    if options.expand.is_some() {
        c += 1;
    }
    if options
        .top
        .as_deref()
        .and_then(|t| t.parse::<u32>().ok())
        .is_some_and(|t| t < 20)
    {
        c -= 1;
    }
    (u64::try_from(c.max(1)).unwrap_or(1), false, report)
}

/// Handles one Graph request: authentication, throttling, then the endpoint.
pub(crate) async fn handle(sim: &Arc<Sim>, request: GraphRequest) -> GraphResponse {
    let request_id = request.request_id.clone();
    let client_request_id = request.client_request_id.clone();
    let mut response = match handle_inner(sim, request).await {
        Ok(r) => r,
        Err(e) => e.into_graph(&request_id, client_request_id.as_deref()),
    };
    response
        .headers
        .push((HeaderName::from_static("request-id"), request_id.clone()));
    response.headers.push((
        HeaderName::from_static("client-request-id"),
        client_request_id.unwrap_or_else(|| request_id.clone()),
    ));
    response
}

async fn handle_inner(sim: &Arc<Sim>, request: GraphRequest) -> Result<GraphResponse, GraphError> {
    let caller = authenticate(sim, &request.headers)?;
    let segs = segments(&request.path);
    let options = query::Options::parse(request.raw_query.as_deref());
    let (ru, write, report) = cost(&request.method, &segs, &options);
    let is_batch = segs.first().is_some_and(|s| s == "$batch");
    let mut extra_headers = Vec::new();
    if !is_batch {
        let user_count = sim.read().users.len();
        let charge = sim
            .traffic
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .charge(ru, write, report, user_count);
        extra_headers.push((
            HeaderName::from_static("x-ms-resource-unit"),
            ru.to_string(),
        ));
        match charge {
            Charge::Allowed { limit_percentage } => {
                if let Some(p) = limit_percentage {
                    extra_headers.push((
                        HeaderName::from_static("x-ms-throttle-limit-percentage"),
                        format!("{:.1}", p.min(1.8)),
                    ));
                }
            }
            Charge::Throttled {
                retry_after,
                information,
            } => {
                let (tid, app) = {
                    let t = sim.read();
                    (t.tenant_id, t.app.client_id)
                };
                let mut e = GraphError::throttled(retry_after);
                e.headers.extend(extra_headers);
                e.headers.push((
                    HeaderName::from_static("x-ms-throttle-scope"),
                    format!(
                        "Tenant_Application/{}/{app}/{tid}",
                        if write { "ReadWrite" } else { "Read" }
                    ),
                ));
                e.headers.push((
                    HeaderName::from_static("x-ms-throttle-information"),
                    information.to_owned(),
                ));
                return Err(e);
            }
        }
    }
    let mut response = route(sim, &request, &caller, &segs, &options).await?;
    response.headers.extend(extra_headers);
    Ok(response)
}

async fn route(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    segs: &[String],
    options: &query::Options,
) -> Result<GraphResponse, GraphError> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = &req.method;
    match s.as_slice() {
        ["$batch"] => {
            if *m != Method::POST {
                return Err(GraphError::method_not_allowed());
            }
            batch(sim, req).await
        }
        ["me", ..] => Err(GraphError::bad_request(
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )),
        ["users"] => match *m {
            Method::GET => directory::list_users(sim, req, caller, options),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["users", "$count"] => directory::count_users(sim, req, caller, options),
        ["users", "delta" | "delta()" | "microsoft.graph.delta()"] => {
            directory::delta(sim, req, caller, options)
        }
        ["users", uid] => match *m {
            Method::GET => directory::get_user(sim, req, caller, uid, options),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["users", uid, "authentication", "methods"] => match *m {
            Method::GET => methods::list_methods(sim, req, caller, uid),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["users", uid, "authentication", "fido2Methods"] => match *m {
            Method::GET => methods::list_fido2(sim, req, caller, uid),
            Method::POST => methods::register_fido2(sim, req, caller, uid),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["users", uid, "authentication", "fido2Methods", op]
            if op.starts_with("creationOptions") =>
        {
            match *m {
                Method::GET => methods::creation_options(sim, req, caller, uid, op, options),
                _ => Err(GraphError::method_not_allowed()),
            }
        }
        ["users", uid, "authentication", "fido2Methods", method_id] => match *m {
            Method::GET => methods::get_fido2(sim, req, caller, uid, method_id),
            Method::DELETE => methods::delete_fido2(sim, caller, uid, method_id),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["directoryObjects", "getByIds" | "microsoft.graph.getByIds"] => match *m {
            Method::POST => directory::get_by_ids(sim, req, caller),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["groups"] => match *m {
            Method::GET => directory::list_groups(sim, req, caller, options),
            Method::POST => directory::create_group(sim, req, caller),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["groups", gid] => match *m {
            Method::GET => directory::get_group(sim, req, caller, gid, options),
            Method::PATCH => directory::patch_group(sim, req, caller, gid),
            Method::DELETE => directory::delete_group(sim, caller, gid),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["groups", gid, "members"] | ["groups", gid, "members", "microsoft.graph.user"] => match *m
        {
            Method::GET => directory::list_members(sim, req, caller, gid, options),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["groups", gid, "members", "$ref"] => match *m {
            Method::POST => directory::add_member(sim, req, caller, gid),
            _ => Err(GraphError::method_not_allowed()),
        },
        ["groups", gid, "members", member, "$ref"] => match *m {
            Method::DELETE => directory::remove_member(sim, caller, gid, member),
            _ => Err(GraphError::method_not_allowed()),
        },
        [
            "policies",
            "authenticationMethodsPolicy",
            "authenticationMethodConfigurations",
            which,
        ] if is_fido2_config(which) => methods::fido2_policy(sim, req, caller),
        ["policies", "authenticationMethodsPolicy", config]
            if config
                .strip_prefix("authenticationMethodConfigurations(")
                .is_some_and(|rest| is_fido2_config(&format!("({rest}"))) =>
        {
            methods::fido2_policy(sim, req, caller)
        }
        [] => Err(GraphError::bad_request(
            "BadRequest",
            "Invalid request: the URL names no resource.",
        )),
        [first, ..] => Err(GraphError::bad_request(
            "BadRequest",
            format!(
                "Resource not found for the segment '{}'.",
                unknown_segment(&s, first)
            ),
        )),
    }
}

fn is_fido2_config(which: &str) -> bool {
    let inner = which
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim_matches('\'');
    inner.eq_ignore_ascii_case("fido2")
}

/// The first segment Graph would not recognise.
fn unknown_segment<'a>(s: &[&'a str], first: &'a str) -> &'a str {
    const KNOWN_ROOTS: &[&str] = &["users", "groups", "directoryObjects", "policies", "$batch"];
    if !KNOWN_ROOTS.contains(&first) {
        return first;
    }
    s.iter()
        .skip(1)
        .find(|seg| {
            !matches!(
                **seg,
                "authentication"
                    | "methods"
                    | "fido2Methods"
                    | "members"
                    | "$ref"
                    | "authenticationMethodsPolicy"
                    | "authenticationMethodConfigurations"
            ) && Uuid::parse_str(seg).is_err()
                && !seg.contains('@')
        })
        .copied()
        .unwrap_or(first)
}

/// Parses a JSON body, refusing a wrong content type or bad JSON the way Graph does.
pub(crate) fn json_body(req: &GraphRequest) -> Result<Value, GraphError> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !req.body.is_empty()
        && !content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Err(GraphError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BadRequest",
            format!(
                "A supported MIME type could not be found that matches the content type of the response. None of the supported type(s) 'application/json' matches the content type '{content_type}'."
            ),
        ));
    }
    if req.body.is_empty() {
        return Err(GraphError::bad_body("The request body is empty."));
    }
    serde_json::from_slice(&req.body).map_err(|e| GraphError::bad_body(&e.to_string()))
}

/// The base URL of a version, e.g. `https://localhost:1234/v1.0`.
pub(crate) fn base(sim: &Sim, version: Version) -> String {
    format!("{}/{}", sim.base_url, version.segment())
}

/// `POST /$batch` (§2.4).
async fn batch(sim: &Arc<Sim>, req: &GraphRequest) -> Result<GraphResponse, GraphError> {
    let body = json_body(req)?;
    let Some(items) = body.get("requests").and_then(Value::as_array) else {
        return Err(GraphError::bad_request(
            "BadRequest",
            "Invalid batch payload format: the body has no 'requests' array.",
        ));
    };
    if items.len() > MAX_BATCH {
        return Err(GraphError::bad_request(
            "BadRequest",
            format!(
                "Maximum number of requests in a batch is {MAX_BATCH}; this batch has {}.",
                items.len()
            ),
        ));
    }
    if items.is_empty() {
        return Err(GraphError::bad_request(
            "BadRequest",
            "Invalid batch payload format: the batch contains no requests.",
        ));
    }
    struct Item {
        id: String,
        method: Method,
        url: String,
        headers: HeaderMap,
        body: Option<Value>,
        depends_on: Vec<String>,
    }
    let mut parsed: Vec<Item> = Vec::new();
    for raw in items {
        let id = match raw.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    "Invalid batch payload format: every request needs an 'id'.",
                ));
            }
        };
        if parsed.iter().any(|p| p.id.eq_ignore_ascii_case(&id)) {
            return Err(GraphError::bad_request(
                "BadRequest",
                format!("Batch request ids must be unique; '{id}' appears twice."),
            ));
        }
        let method = raw
            .get("method")
            .and_then(Value::as_str)
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(|| {
                GraphError::bad_request(
                    "BadRequest",
                    format!("Invalid batch payload format: request '{id}' has no valid 'method'."),
                )
            })?;
        let url = raw
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                GraphError::bad_request(
                    "BadRequest",
                    format!("Invalid batch payload format: request '{id}' has no 'url'."),
                )
            })?
            .to_owned();
        let mut headers = HeaderMap::new();
        if let Some(h) = raw.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    v.as_str().map(HeaderValue::from_str),
                ) {
                    headers.insert(name, value);
                }
            }
        }
        let body = raw.get("body").cloned();
        if body.is_some() && !headers.contains_key(header::CONTENT_TYPE) {
            return Err(GraphError::bad_request(
                "BadRequest",
                format!("Write request id : {id} does not contain Content-Type header or body."),
            ));
        }
        let depends_on: Vec<String> = raw
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for dep in &depends_on {
            if !parsed.iter().any(|p| p.id.eq_ignore_ascii_case(dep)) {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    format!(
                        "Request '{id}' depends on '{dep}', which is not an earlier request of the batch."
                    ),
                ));
            }
        }
        parsed.push(Item {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        });
    }

    let mut statuses: Vec<(String, u16)> = Vec::new();
    let mut responses = Vec::new();
    for item in parsed {
        let failed_dependency = item.depends_on.iter().any(|dep| {
            statuses
                .iter()
                .any(|(id, status)| id.eq_ignore_ascii_case(dep) && *status >= 400)
        });
        let request_id = Uuid::new_v4().to_string();
        let answer = if failed_dependency {
            GraphError::new(
                StatusCode::FAILED_DEPENDENCY,
                "BadRequest",
                "Request failed because of a failed dependency.",
            )
            .into_graph(&request_id, req.client_request_id.as_deref())
        } else {
            run_batch_item(
                sim,
                req,
                &item.method,
                &item.url,
                item.headers,
                item.body,
                request_id,
            )
            .await
        };
        statuses.push((item.id.clone(), answer.status.as_u16()));
        let mut headers = serde_json::Map::new();
        for (name, value) in &answer.headers {
            if name == header::RETRY_AFTER
                || name == header::LOCATION
                || name.as_str().starts_with("x-ms-")
            {
                headers.insert(canonical_header(name.as_str()), json!(value));
            }
        }
        if answer.body.is_some() {
            headers.insert("Content-Type".into(), json!(GRAPH_JSON));
        } else if answer.text.is_some() {
            headers.insert("Content-Type".into(), json!("text/plain"));
        }
        let mut entry =
            json!({"id": item.id, "status": answer.status.as_u16(), "headers": headers});
        if let Some(body) = answer.body {
            entry["body"] = body;
        } else if let Some(text) = answer.text {
            entry["body"] = json!(text);
        }
        responses.push(entry);
    }
    Ok(GraphResponse::ok(json!({"responses": responses})))
}

fn canonical_header(name: &str) -> String {
    match name {
        "retry-after" => "Retry-After".to_owned(),
        "location" => "Location".to_owned(),
        other => other.to_owned(),
    }
}

async fn run_batch_item(
    sim: &Arc<Sim>,
    outer: &GraphRequest,
    method: &Method,
    url: &str,
    mut headers: HeaderMap,
    body: Option<Value>,
    request_id: String,
) -> GraphResponse {
    let client_request_id = outer.client_request_id.clone();
    let bad = |message: String| {
        GraphError::bad_request("BadRequest", message)
            .into_graph(&request_id, client_request_id.as_deref())
    };
    // Inner URLs are relative to the batch's version; an absolute URL is refused like Graph does.
    if url.starts_with("http://") || url.starts_with("https://") {
        return bad(format!(
            "Invalid request URL '{url}': batch request URLs must be relative."
        ));
    }
    let relative = if url.starts_with('/') {
        url.to_owned()
    } else {
        format!("/{url}")
    };
    let (path, raw_query) = match relative.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (relative, None),
    };
    if let Some(auth) = outer.headers.get(header::AUTHORIZATION) {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    let body_bytes = match &body {
        None => Bytes::new(),
        Some(Value::String(s)) => Bytes::from(s.clone().into_bytes()),
        Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    };
    let inner = GraphRequest {
        version: outer.version,
        method: method.clone(),
        path: path.clone(),
        raw_query,
        headers,
        body: body_bytes,
        request_id: request_id.clone(),
        client_request_id: client_request_id.clone(),
    };
    // Inner requests get the fault rules too (each is throttled alone in Graph).
    let full_path = format!("/{}{}", outer.version.segment(), path);
    let label = endpoint_label(method, outer.version, &path);
    let decision = sim.traffic.decide(method.as_str(), &full_path);
    if decision.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(decision.delay_ms)).await;
    }
    let answer = match decision.outcome {
        Some(crate::sim::FaultOutcome::Throttle { retry_after }) => {
            GraphError::throttled(retry_after).into_graph(&request_id, client_request_id.as_deref())
        }
        Some(crate::sim::FaultOutcome::Error {
            status,
            retry_after,
        }) => {
            fault_error(status, retry_after).into_graph(&request_id, client_request_id.as_deref())
        }
        Some(crate::sim::FaultOutcome::Drop) => {
            lost_item_answer(&request_id, client_request_id.as_deref())
        }
        Some(crate::sim::FaultOutcome::DropAfter) => {
            // An item has no connection of its own: it is handled, and its answer is lost as a
            // gateway timeout would lose it.
            drop(Box::pin(handle(sim, inner)).await);
            lost_item_answer(&request_id, client_request_id.as_deref())
        }
        None => Box::pin(handle(sim, inner)).await,
    };
    sim.traffic
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .record(&format!("$batch item {label}"), answer.status.as_u16());
    answer
}

/// A `$batch` item whose connection-level fault has no connection to drop.
fn lost_item_answer(request_id: &str, client_request_id: Option<&str>) -> GraphResponse {
    GraphError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "GatewayTimeout",
        "The request timed out.",
    )
    .into_graph(request_id, client_request_id)
}

/// The Graph error an injected server fault answers with.
pub(crate) fn fault_error(status: u16, retry_after: Option<u64>) -> GraphError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (code, message) = match status.as_u16() {
        503 => (
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        504 => ("GatewayTimeout", "The request timed out."),
        502 => ("BadGateway", "The gateway received an invalid response."),
        _ => ("generalException", "An unexpected error occurred."),
    };
    let mut e = GraphError::new(status, code, message);
    if let Some(seconds) = retry_after {
        e.headers.push((header::RETRY_AFTER, seconds.to_string()));
    }
    e
}

/// Turns a Graph answer into HTTP with Graph's headers.
pub(crate) fn to_http(response: GraphResponse) -> Response {
    let mut http = match (response.body, response.text) {
        (Some(body), _) => {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let mut r = (response.status, bytes).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(GRAPH_JSON));
            r
        }
        (None, Some(text)) => {
            let mut r = (response.status, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain;charset=utf-8"),
            );
            r
        }
        (None, None) => response.status.into_response(),
    };
    let headers = http.headers_mut();
    for (name, value) in response.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(name, v);
        }
    }
    headers.insert("OData-Version", HeaderValue::from_static("4.0"));
    headers.insert(
        "x-ms-ags-diagnostic",
        HeaderValue::from_static(
            r#"{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"entra-sim"}}"#,
        ),
    );
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    http
}

/// The axum handler for everything under `/v1.0` and `/beta`.
pub(crate) async fn http_entry(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let full = uri.path();
    let (version, rest) = if let Some(rest) = full.strip_prefix("/v1.0") {
        (Version::V1, rest)
    } else if let Some(rest) = full.strip_prefix("/beta") {
        (Version::Beta, rest)
    } else {
        (Version::V1, full)
    };
    let client_request_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = GraphRequest {
        version,
        method,
        path: rest.to_owned(),
        raw_query: uri.query().map(str::to_owned),
        headers,
        body,
        request_id: Uuid::new_v4().to_string(),
        client_request_id,
    };
    to_http(handle(&sim, request).await)
}
