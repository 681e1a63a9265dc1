//! The identity platform: metadata, JWKS, token endpoint and its AADSTS errors.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde_json::{Value, json};

use crate::common::{Harness, start};

async fn token_request(h: &Harness, form: &[(&str, String)]) -> (u16, Value) {
    let response = h
        .http
        .post(&h.sim.info().token_endpoint)
        .header("client-request-id", "0f0e0d0c-0b0a-4908-8706-050403020100")
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn assert_aadsts(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    assert!(description.contains("\r\nCorrelation ID: 0f0e0d0c-0b0a-4908-8706-050403020100"));
    assert!(description.contains("\r\nTimestamp: "), "{description}");
    assert_eq!(
        body["correlation_id"],
        "0f0e0d0c-0b0a-4908-8706-050403020100"
    );
    assert!(uuid::Uuid::parse_str(body["trace_id"].as_str().expect("trace")).is_ok());
    let ts = body["timestamp"].as_str().expect("timestamp");
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
}

fn base_form(h: &Harness) -> Vec<(&'static str, String)> {
    let info = h.sim.info();
    vec![
        ("client_id", info.client_id.to_string()),
        ("scope", "https://graph.microsoft.com/.default".to_owned()),
        ("grant_type", "client_credentials".to_owned()),
    ]
}

#[tokio::test]
async fn openid_configuration_by_id_and_domain() {
    let h = start(3).await;
    let info = h.sim.info();
    for tenant in [
        info.tenant_id.to_string(),
        info.tenant_domain.clone(),
        "contoso.com".to_owned(),
    ] {
        let url = format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            info.base_url
        );
        let doc: Value = h
            .http
            .get(url)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            doc["token_endpoint"], info.token_endpoint,
            "always the GUID form"
        );
        assert_eq!(doc["issuer"], format!("{}/v2.0", info.authority));
        assert!(
            doc["authorization_endpoint"]
                .as_str()
                .expect("authz")
                .ends_with("/oauth2/v2.0/authorize")
        );
        assert_eq!(doc["jwks_uri"], info.jwks_uri);
    }
    let response = h
        .http
        .get(format!(
            "{}/fabrikam.example/v2.0/.well-known/openid-configuration",
            info.base_url
        ))
        .header("client-request-id", "0f0e0d0c-0b0a-4908-8706-050403020100")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_aadsts(&body, "invalid_tenant", 90002);
}

#[tokio::test]
async fn secret_token_has_the_documented_claims_and_verifies_against_the_jwks() {
    let h = start(3).await;
    let info = h.sim.info();
    let mut form = base_form(&h);
    form.push(("client_secret", info.client_secret.clone()));
    let (status, body) = token_request(&h, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().expect("token");

    let jwks: JwkSet = h
        .http
        .get(&info.jwks_uri)
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, Algorithm::RS256);
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("key in JWKS");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    validation.set_issuer(&[format!("https://sts.windows.net/{}/", info.tenant_id)]);
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_jwk(jwk).expect("jwk"),
        &validation,
    )
    .expect("token verifies against the published key")
    .claims;
    assert_eq!(claims["tid"], info.tenant_id.to_string());
    assert_eq!(claims["appid"], info.client_id.to_string());
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["ver"], "1.0");
    assert!(claims.get("scp").is_none());
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(roles.contains(&"User.ReadWrite.All"));
    assert!(roles.contains(&"UserAuthenticationMethod.ReadWrite.All"));
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 3599);
}

#[tokio::test]
async fn http_basic_works_and_roles_follow_the_grants() {
    let h = start(3).await;
    let info = h.sim.info();
    let (status, _) = h
        .control(reqwest::Method::PUT, "/roles", Some(json!({"roles": []})))
        .await;
    assert_eq!(status, 200);
    let response = h
        .http
        .post(&info.token_endpoint)
        .basic_auth(info.client_id.to_string(), Some(&info.client_secret))
        .form(&[
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let token = body["access_token"].as_str().expect("token");
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .expect("claims")
        .claims;
    assert!(
        claims.get("roles").is_none(),
        "no roles claim when nothing is granted: {claims}"
    );
}

#[tokio::test]
async fn token_errors_are_shaped_like_aadsts() {
    let h = start(3).await;
    let info = h.sim.info();

    let mut wrong = base_form(&h);
    wrong.push(("client_secret", "not-the-secret".to_owned()));
    let (status, body) = token_request(&h, &wrong).await;
    assert_eq!(status, 401);
    assert_aadsts(&body, "invalid_client", 7000215);

    let (status, body) = token_request(&h, &base_form(&h)).await;
    assert_eq!(status, 401);
    assert_aadsts(&body, "invalid_client", 7000216);

    let mut no_grant = base_form(&h);
    no_grant.retain(|(k, _)| *k != "grant_type");
    let (status, body) = token_request(&h, &no_grant).await;
    assert_eq!(status, 400);
    assert_aadsts(&body, "invalid_request", 900144);

    let mut other_grant = base_form(&h);
    other_grant[2].1 = "password".to_owned();
    let (status, body) = token_request(&h, &other_grant).await;
    assert_eq!(status, 400);
    assert_aadsts(&body, "unsupported_grant_type", 70003);

    let mut unknown_app = base_form(&h);
    unknown_app[0].1 = uuid::Uuid::new_v4().to_string();
    unknown_app.push(("client_secret", info.client_secret.clone()));
    let (status, body) = token_request(&h, &unknown_app).await;
    assert_eq!(status, 400);
    assert_aadsts(&body, "unauthorized_client", 700016);

    let mut scope = base_form(&h);
    scope[1].1 = "https://graph.microsoft.com/User.Read.All".to_owned();
    scope.push(("client_secret", info.client_secret.clone()));
    let (status, body) = token_request(&h, &scope).await;
    assert_eq!(status, 400);
    assert_aadsts(&body, "invalid_scope", 1002012);

    // An expired secret: added through the control API with an end date in the past.
    let (status, secret) = h
        .control(
            reqwest::Method::POST,
            "/app/secrets",
            Some(json!({"endDateTime": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 201);
    let mut expired = base_form(&h);
    expired.push((
        "client_secret",
        secret["secretText"].as_str().expect("secret").to_owned(),
    ));
    let (status, body) = token_request(&h, &expired).await;
    assert_eq!(status, 401);
    assert_aadsts(&body, "invalid_client", 7000222);
}

struct Assertion {
    alg: Algorithm,
    sha256_thumbprint: bool,
    iss: String,
    aud: String,
    exp_offset: i64,
    jti: String,
}

fn client_assertion(h: &Harness, a: &Assertion) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let info = h.sim.info();
    let cert_pem = std::fs::read_to_string(&info.client_cert_pem).expect("cert");
    let der = pem_der(&cert_pem);
    let mut header = Header::new(a.alg);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if a.sha256_thumbprint {
        header.x5t_s256 = Some(b64.encode(sha2::Sha256::digest(&der)));
    } else {
        header.x5t = Some(b64.encode(sha1::Sha1::digest(&der)));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "aud": a.aud, "iss": a.iss, "sub": a.iss, "jti": a.jti,
        "nbf": now, "iat": now, "exp": now + a.exp_offset,
    });
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&info.client_key_pem).expect("key"))
        .expect("rsa key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("pem body")
}

fn assertion_form(h: &Harness, assertion: String) -> Vec<(&'static str, String)> {
    let mut form = base_form(h);
    form.push((
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
    ));
    form.push(("client_assertion", assertion));
    form
}

#[tokio::test]
async fn certificate_assertions_rs256_and_ps256() {
    let h = start(3).await;
    let info = h.sim.info();
    let good = |alg, sha256| Assertion {
        alg,
        sha256_thumbprint: sha256,
        iss: info.client_id.to_string(),
        aud: info.token_endpoint.clone(),
        exp_offset: 600,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    for (alg, sha256) in [
        (Algorithm::RS256, false),
        (Algorithm::PS256, true),
        (Algorithm::RS256, true),
    ] {
        let (status, body) = token_request(
            &h,
            &assertion_form(&h, client_assertion(&h, &good(alg, sha256))),
        )
        .await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(
            body["access_token"].as_str().expect("t"),
        )
        .expect("claims")
        .claims;
        assert_eq!(claims["appidacr"], "2");
    }
    // The domain form of the audience is accepted too.
    let mut by_domain = good(Algorithm::PS256, true);
    by_domain.aud = format!("{}/{}/oauth2/v2.0/token", info.base_url, info.tenant_domain);
    let (status, _) =
        token_request(&h, &assertion_form(&h, client_assertion(&h, &by_domain))).await;
    assert_eq!(status, 200);

    // Replay of the same jti.
    let once = good(Algorithm::PS256, true);
    let jwt = client_assertion(&h, &once);
    assert_eq!(
        token_request(&h, &assertion_form(&h, jwt.clone())).await.0,
        200
    );
    let (status, body) = token_request(&h, &assertion_form(&h, jwt)).await;
    assert_eq!(status, 401);
    assert_aadsts(&body, "invalid_client", 700027);

    let mut wrong_iss = good(Algorithm::RS256, false);
    wrong_iss.iss = uuid::Uuid::new_v4().to_string();
    let (status, body) =
        token_request(&h, &assertion_form(&h, client_assertion(&h, &wrong_iss))).await;
    assert_eq!(status, 401);
    assert_aadsts(&body, "invalid_client", 700021);

    let mut expired = good(Algorithm::RS256, false);
    expired.exp_offset = -3600;
    let (status, body) =
        token_request(&h, &assertion_form(&h, client_assertion(&h, &expired))).await;
    assert_eq!(status, 401);
    assert_aadsts(&body, "invalid_client", 700024);

    let mut wrong_aud = good(Algorithm::RS256, false);
    wrong_aud.aud = "https://login.microsoftonline.com/common/oauth2/v2.0/token".to_owned();
    let (status, body) =
        token_request(&h, &assertion_form(&h, client_assertion(&h, &wrong_aud))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");

    // A tampered signature.
    // (A middle character: the last one of a base64url signature carries unused bits.)
    let jwt = client_assertion(&h, &good(Algorithm::RS256, false));
    let at = jwt.rfind('.').expect("signature") + 20;
    let flipped = if &jwt[at..=at] == "A" { "B" } else { "A" };
    let jwt = format!("{}{flipped}{}", &jwt[..at], &jwt[at + 1..]);
    let (status, body) = token_request(&h, &assertion_form(&h, jwt)).await;
    assert_eq!(status, 401);
    assert_aadsts(&body, "invalid_client", 700027);

    let (status, body) = token_request(&h, &assertion_form(&h, "not-a-jwt".to_owned())).await;
    assert_eq!(status, 400);
    assert_aadsts(&body, "invalid_request", 50027);
}

/// Signs `claims` with the registered client certificate's key (RS256, SHA-1 thumbprint).
fn sign_claims(h: &Harness, claims: &Value) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let info = h.sim.info();
    let cert_pem = std::fs::read_to_string(&info.client_cert_pem).expect("cert");
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha1::Sha1::digest(pem_der(&cert_pem))),
    );
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&info.client_key_pem).expect("key"))
        .expect("rsa key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

#[tokio::test]
async fn assertions_with_extreme_times_are_judged_not_crashed_on() {
    let h = start(1).await;
    let info = h.sim.info();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let client = info.client_id.to_string();
    let assertion = |exp: Value, nbf: Value| {
        sign_claims(
            &h,
            &json!({
                "aud": info.token_endpoint, "iss": client, "sub": client,
                "jti": uuid::Uuid::new_v4().to_string(), "exp": exp, "nbf": nbf,
            }),
        )
    };
    let send = |jwt: String| {
        let h = &h;
        async move {
            let response = h
                .http
                .post(&h.sim.info().token_endpoint)
                .header("client-request-id", "0f0e0d0c-0b0a-4908-8706-050403020100")
                .form(&assertion_form(h, jwt))
                .send()
                .await
                .expect("the token endpoint answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body)
        }
    };
    // No maximum lifetime is enforced (entra.md §1.3): a far expiry or an old nbf is valid.
    let far_future = assertion(json!(1e300), json!(now));
    let (status, body) = send(far_future.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(assertion(json!(now + 600), json!(-1e300))).await;
    assert_eq!(status, 200, "{body}");
    // Its jti is remembered: a replay is refused (and the replay cache survives its expiry).
    let (status, body) = send(far_future).await;
    assert_eq!(status, 401, "{body}");
    assert_aadsts(&body, "invalid_client", 700027);
    // Expired long ago, or valid only far in the future.
    for (exp, nbf) in [(json!(-1e300), json!(now)), (json!(1e300), json!(1e300))] {
        let (status, body) = send(assertion(exp.clone(), nbf.clone())).await;
        assert_eq!(status, 401, "exp {exp}, nbf {nbf}: {body}");
        assert_aadsts(&body, "invalid_client", 700024);
    }
}
