//! The Microsoft identity platform part (reference §1): OpenID configuration, JWKS and the
//! client-credentials token endpoint, with errors shaped as AADSTS responses.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::pki;
use crate::sim::Sim;

/// The client-assertion type for a signed JWT.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Graph's application id, accepted as a resource name in `scope`.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Allowed clock skew for client assertions (§1.3 \[I\]).
const SKEW_SECS: i64 = 300;

/// An AADSTS error answer (§1.5).
pub(crate) struct Aadsts {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub text: String,
}

impl Aadsts {
    fn new(status: StatusCode, error: &'static str, code: u32, text: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code,
            text: text.into(),
        }
    }

    /// Renders the error with trace id, correlation id (the caller's `client-request-id` when
    /// sent) and timestamp, as the real service does.
    pub fn into_response_with(self, correlation_id: Option<&str>) -> Response {
        let trace_id = Uuid::new_v4().to_string();
        let correlation = correlation_id
            .and_then(|c| Uuid::parse_str(c).ok())
            .map_or_else(|| Uuid::new_v4().to_string(), |c| c.to_string());
        let now = OffsetDateTime::now_utc();
        let timestamp = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}",
                self.code, self.text
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        no_store(response.headers_mut());
        if let Ok(value) = HeaderValue::from_str(&trace_id) {
            response.headers_mut().insert("x-ms-request-id", value);
        }
        response
    }
}

/// An injected transient failure of the identity platform \[I\]: AADSTS90033 "A transient error
/// has occurred", `temporarily_unavailable`, with `Retry-After` when given.
pub(crate) fn transient_error(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = Aadsts::new(
        status,
        "temporarily_unavailable",
        90033,
        "A transient error has occurred. Please try again.",
    )
    .into_response_with(None);
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn correlation(headers: &HeaderMap) -> Option<String> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn tenant_not_found(tenant: &str) -> Aadsts {
    Aadsts::new(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let tid = {
        let t = sim.read();
        if !t.is_tenant(&tenant) {
            return tenant_not_found(&tenant).into_response_with(correlation(&headers).as_deref());
        }
        t.tenant_id
    };
    let base = &sim.base_url;
    let host = base
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let body = json!({
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{tid}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        // [I] the real document names graph.microsoft.com; entra-sim serves Graph itself.
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    });
    axum::Json(body).into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys` (and `/discovery/keys`).
pub(crate) async fn jwks(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let tid = {
        let t = sim.read();
        if !t.is_tenant(&tenant) && !tenant.eq_ignore_ascii_case("common") {
            return tenant_not_found(&tenant).into_response_with(correlation(&headers).as_deref());
        }
        t.tenant_id
    };
    let key = &sim.signing;
    axum::Json(json!({"keys": [{
        "kty": "RSA",
        "use": "sig",
        "kid": key.kid,
        "x5t": key.kid,
        "n": key.modulus_b64url,
        "e": key.exponent_b64url,
        "x5c": [key.cert_b64],
        "issuer": format!("{}/{tid}/v2.0", sim.base_url),
    }]}))
    .into_response()
}

/// Claims of the access tokens entra-sim issues (§1.6).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appidacr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_displayname: Option<String>,
    pub oid: String,
    pub sub: String,
    pub idtyp: String,
    pub ver: String,
    pub uti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

/// Signs claims with the emulator's token key (header carries `x5t` and `kid`).
pub(crate) fn sign(sim: &Sim, claims: &AccessClaims) -> Option<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(sim.signing.kid.clone());
    header.kid = Some(sim.signing.kid.clone());
    jsonwebtoken::encode(&header, claims, &sim.signing.encoding).ok()
}

/// Body of a token request (form fields; unknown ones ignored).
#[derive(Debug, Default)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

fn missing(parameter: &str) -> Aadsts {
    Aadsts::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let correlation_id = correlation(&headers);
    match issue_token(&sim, &tenant, &headers, &body) {
        Ok(response) => response,
        Err(error) => error.into_response_with(correlation_id.as_deref()),
    }
}

fn issue_token(
    sim: &Sim,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Aadsts> {
    let (tid, app) = {
        let t = sim.read();
        if !t.is_tenant(tenant) {
            return Err(tenant_not_found(tenant));
        }
        (t.tenant_id, t.app.clone())
    };
    // Entra reads the body as a form whatever the content type says; a body that is not a form
    // simply has none of the required parameters.
    let form: TokenForm = parse_form(body);
    let basic = basic_credentials(headers);

    let grant_type = form
        .grant_type
        .as_deref()
        .ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(Aadsts::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = form
        .client_id
        .clone()
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .ok_or_else(|| missing("client_id"))?;
    if Uuid::parse_str(&client_id).ok() != Some(app.client_id) {
        return Err(Aadsts::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ));
    }
    let scope = form.scope.as_deref().ok_or_else(|| missing("scope"))?;
    let audience = graph_audience(scope)?;

    let credential_kind = if let Some(assertion) = form.client_assertion.as_deref() {
        if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(Aadsts::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed. The 'client_assertion_type' must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            ));
        }
        check_assertion(sim, tid, tenant, &app, &client_id, assertion)?;
        "2"
    } else {
        let secret = form
            .client_secret
            .clone()
            .or_else(|| basic.map(|(_, secret)| secret))
            .ok_or_else(|| {
                Aadsts::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000216,
                    "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
                )
            })?;
        check_secret(&app, &secret, sim.now())?;
        "1"
    };

    let now = sim.now().unix_timestamp();
    let roles = (!app.granted_roles.is_empty()).then(|| app.granted_roles.clone());
    let claims = AccessClaims {
        aud: audience.to_owned(),
        iss: format!("https://sts.windows.net/{tid}/"),
        iat: now,
        nbf: now,
        exp: now + sim.token_lifetime_secs,
        tid: tid.to_string(),
        appid: Some(app.client_id.to_string()),
        appidacr: Some(credential_kind.to_owned()),
        app_displayname: Some(app.display_name.clone()),
        oid: app.service_principal_id.to_string(),
        sub: app.service_principal_id.to_string(),
        idtyp: "app".to_owned(),
        ver: "1.0".to_owned(),
        uti: URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes()),
        roles,
        scp: None,
        upn: None,
        amr: None,
    };
    let token = sign(sim, &claims).ok_or_else(|| {
        Aadsts::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            50000,
            "There was an error issuing a token.",
        )
    })?;
    let mut response = axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": sim.token_lifetime_secs,
        "ext_expires_in": sim.token_lifetime_secs,
        "access_token": token,
    }))
    .into_response();
    no_store(response.headers_mut());
    if let Some(id) = headers.get("client-request-id") {
        response
            .headers_mut()
            .insert("client-request-id", id.clone());
    }
    Ok(response)
}

/// Parses a form body; fields that do not decode are treated as absent.
fn parse_form(body: &[u8]) -> TokenForm {
    let mut form = TokenForm::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let value = Some(value.into_owned());
        match key.as_ref() {
            "grant_type" => form.grant_type = value,
            "client_id" => form.client_id = value,
            "client_secret" => form.client_secret = value,
            "client_assertion_type" => form.client_assertion_type = value,
            "client_assertion" => form.client_assertion = value,
            "scope" => form.scope = value,
            _ => {}
        }
    }
    form
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// The access token audience for a client-credentials scope, or the AADSTS error.
fn graph_audience(scope: &str) -> Result<&'static str, Aadsts> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.len() != 1 {
        return Err(Aadsts::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        ));
    }
    let Some(resource) = scopes[0].strip_suffix("/.default") else {
        return Err(Aadsts::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    match resource.trim_end_matches('/') {
        "https://graph.microsoft.com" => Ok("https://graph.microsoft.com"),
        GRAPH_APP_ID => Ok(GRAPH_APP_ID),
        other => Err(Aadsts::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {other} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )),
    }
}

fn check_secret(
    app: &crate::model::AppRegistration,
    secret: &str,
    now: OffsetDateTime,
) -> Result<(), Aadsts> {
    let mut expired = false;
    for registered in &app.secrets {
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(registered.value.as_bytes(), secret.as_bytes()).into();
        if matches {
            if registered.end_date_time > now {
                return Ok(());
            }
            expired = true;
        }
    }
    if expired {
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                app.client_id
            ),
        ));
    }
    Err(Aadsts::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '".to_owned()
            + &app.client_id.to_string()
            + "'.",
    ))
}

fn malformed(detail: &str) -> Aadsts {
    Aadsts::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        50027,
        format!("JWT token is invalid or malformed. {detail}"),
    )
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    // MSAL Python sends fractional seconds; Entra accepts them [O].
    exp: Option<f64>,
    nbf: Option<f64>,
    jti: Option<String>,
}

/// Checks a client assertion (§1.3).
fn check_assertion(
    sim: &Sim,
    tid: Uuid,
    tenant: &str,
    app: &crate::model::AppRegistration,
    client_id: &str,
    assertion: &str,
) -> Result<(), Aadsts> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| malformed("The client assertion header cannot be decoded."))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(malformed(&format!(
            "The client assertion algorithm {:?} is not supported; use RS256 or PS256.",
            header.alg
        )));
    }
    let certificates: Vec<Vec<u8>> = app
        .certificates
        .iter()
        .filter_map(|c| STANDARD.decode(&c.der_base64).ok())
        .collect();
    let sent = header
        .x5t_s256
        .as_deref()
        .map(|t| ("x5t#S256", t))
        .or_else(|| header.x5t.as_deref().map(|t| ("x5t", t)));
    let Some((which, thumbprint)) = sent else {
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: 'none': the assertion header names no x5t or x5t#S256.]",
        ));
    };
    let certificate = certificates.iter().find(|der| {
        // Clients send x5t as base64url; some send the hex thumbprint or padded base64.
        let expected = if which == "x5t" {
            pki::thumbprint_sha1_b64url(der)
        } else {
            pki::thumbprint_sha256_b64url(der)
        };
        let sent = thumbprint
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_");
        expected == sent
    });
    let Some(certificate) = certificate else {
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                app.client_id
            ),
        ));
    };
    let now = sim.now();
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).map_err(|_| {
        Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - the registered certificate cannot be read.]",
        )
    })?;
    let validity = parsed.validity();
    if validity.not_before.to_datetime() > now || validity.not_after.to_datetime() < now {
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            1000502,
            "The provided client certificate is outside its validity period. Register a current certificate on the app.",
        ));
    }
    let (modulus, exponent) = pki::rsa_components(certificate).ok_or_else(|| {
        Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - the registered certificate has no RSA key.]",
        )
    })?;
    let key = DecodingKey::from_rsa_raw_components(&modulus, &exponent);
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Aadsts::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ),
            other => malformed(&format!(
                "The client assertion cannot be decoded ({other:?})."
            )),
        },
    )?;
    let claims = data.claims;
    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        // [I] code and wording for an issuer or subject that is not the client id.
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials.",
        ));
    }
    let audiences: Vec<String> = match &claims.aud {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let (initial_domain, verified_domain) = {
        let t = sim.read();
        (t.initial_domain.clone(), t.verified_domain.clone())
    };
    let accepted = [
        format!("{}/{tid}/oauth2/v2.0/token", sim.base_url),
        format!("{}/{tenant}/oauth2/v2.0/token", sim.base_url),
        format!("{}/{initial_domain}/oauth2/v2.0/token", sim.base_url),
        format!("{}/{verified_domain}/oauth2/v2.0/token", sim.base_url),
    ];
    if !audiences
        .iter()
        .any(|a| accepted.iter().any(|b| a.eq_ignore_ascii_case(b)))
    {
        // [I] code for an assertion addressed to another token endpoint.
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50013,
            format!(
                "Assertion failed signature validation. [Reason - The provided audience is not valid; expected '{}'.]",
                accepted[0]
            ),
        ));
    }
    let now_secs = now.unix_timestamp();
    #[allow(clippy::cast_possible_truncation)] // seconds since 1970 fit an i64
    let whole = |t: f64| t.floor() as i64;
    let exp = claims
        .exp
        .map(whole)
        .ok_or_else(|| malformed("The client assertion has no 'exp' claim."))?;
    let nbf = claims.nbf.map_or(now_secs, whole);
    // Saturating: `exp` and `nbf` are the client's numbers and may sit at the ends of i64.
    if exp.saturating_add(SKEW_SECS) < now_secs || nbf.saturating_sub(SKEW_SECS) > now_secs {
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {now_secs}, assertion valid from {nbf}, expiry time of assertion {exp}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials."
            ),
        ));
    }
    let jti = claims
        .jti
        .ok_or_else(|| malformed("The client assertion has no 'jti' claim."))?;
    let mut seen = sim
        .seen_assertion_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    seen.retain(|_, expiry| expiry.saturating_add(SKEW_SECS) >= now_secs);
    if seen.contains_key(&jti) {
        // [I] code and wording for a replayed assertion.
        return Err(Aadsts::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!(
                "Client assertion failed validation. [Reason - The assertion with jti '{jti}' has already been used; create a new assertion with a unique jti for each request.]"
            ),
        ));
    }
    seen.insert(jti, exp);
    Ok(())
}
