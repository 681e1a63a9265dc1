//! Timing-sensitive corners against a local HTTP mock: Retry-After, backoff after 5xx, a
//! connection dropped after a POST, token refresh single-flight and forced refresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keybridge_graph::{
    BatchRequest, ClientCredential, Cloud, GraphClient, GraphConfig, GraphError, NewFido2Method,
    RateLimits, RetryPolicy, odata::fido2_method_id,
};

use crate::mock::{Answer, MockServer, Seen};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const USER: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn client(server: &MockServer) -> GraphClient {
    let config = GraphConfig::new(
        TENANT,
        "client-1",
        ClientCredential::secret("secret-value").unwrap(),
    )
    .with_cloud(Cloud::custom(&server.base(), &format!("{}/v1.0", server.base())).unwrap())
    .with_rate_limits(RateLimits::unlimited())
    .with_retry(RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(10),
    })
    .with_request_timeout(Duration::from_secs(5));
    GraphClient::new(config).unwrap()
}

fn is_token(seen: &Seen) -> bool {
    seen.path().ends_with("/oauth2/v2.0/token")
}

fn user_json(id: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "userPrincipalName": format!("{id}@contoso.com"), "displayName": "Ana"})
}

#[tokio::test]
async fn retry_after_on_429_is_waited_out() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = {
        let calls = calls.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                return Answer::token("t1", 3599);
            }
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Answer::graph_error(429, "TooManyRequests", "Please retry again later.")
                    .with_header("Retry-After", "1")
            } else {
                Answer::json(200, user_json(USER))
            }
        })
        .await
    };
    let client = client(&server);
    let user = client.get_user(USER, &["id"]).await.unwrap();
    assert_eq!(user.id, USER);
    let graph: Vec<Seen> = server.seen().into_iter().filter(|s| !is_token(s)).collect();
    assert_eq!(graph.len(), 2);
    let gap = graph[1].at - graph[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before Retry-After"
    );
    assert_eq!(client.stats().throttled, 1);
    // Each attempt carries its own client-request-id.
    assert_ne!(
        graph[0].header("client-request-id"),
        graph[1].header("client-request-id")
    );
    assert!(uuid::Uuid::parse_str(graph[0].header("client-request-id").unwrap()).is_ok());
}

#[tokio::test]
async fn a_retry_after_too_long_comes_back_as_throttled() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t1", 3599);
        }
        Answer::graph_error(429, "TooManyRequests", "Please retry again later.")
            .with_header("Retry-After", "3600")
    })
    .await;
    let error = client(&server).get_user(USER, &[]).await.unwrap_err();
    let GraphError::Throttled {
        retry_after,
        detail,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(detail.ids.request_id.as_deref(), Some("mock-request"));
    assert!(error.to_string().contains("retry after 3600 s"), "{error}");
}

#[tokio::test]
async fn server_errors_on_reads_are_retried_with_backoff() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = {
        let calls = calls.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                return Answer::token("t1", 3599);
            }
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Answer::graph_error(503, "serviceNotAvailable", "busy"),
                1 => Answer::Drop,
                2 => Answer::graph_error(504, "gatewayTimeout", "slow"),
                _ => Answer::json(200, user_json(USER)),
            }
        })
        .await
    };
    let client = client(&server);
    assert_eq!(client.get_user(USER, &[]).await.unwrap().id, USER);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(client.stats().retries, 3);
}

#[tokio::test]
async fn retries_give_up_with_the_last_error() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t1", 3599);
        }
        Answer::graph_error(500, "generalException", "broken")
    })
    .await;
    let client = client(&server);
    let error = client.get_user(USER, &[]).await.unwrap_err();
    assert!(
        matches!(&error, GraphError::Service(d) if d.status == 500 && d.code == "generalException"),
        "{error:?}"
    );
    assert_eq!(server.count("GET", USER), 4, "max_attempts");
}

#[tokio::test]
async fn a_write_is_not_repeated_after_a_server_error() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t1", 3599);
        }
        Answer::graph_error(500, "generalException", "broken")
    })
    .await;
    let client = client(&server);
    let error = client
        .create_security_group("Acme (Eligible for Pairing)", None)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::Service(_)), "{error:?}");
    assert_eq!(server.count("POST", "/v1.0/groups"), 1);
}

#[tokio::test]
async fn many_concurrent_callers_share_one_token_fetch() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            std::thread::sleep(Duration::from_millis(200));
            return Answer::token("t1", 3599);
        }
        Answer::json(200, user_json(USER))
    })
    .await;
    let client = client(&server);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_user(USER, &[]).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(server.seen().iter().filter(|s| is_token(s)).count(), 1);
    assert_eq!(client.stats().token_fetches, 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_retried() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let server = {
        let tokens = tokens.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                let n = tokens.fetch_add(1, Ordering::SeqCst);
                return Answer::token(&format!("token-{n}"), 3599);
            }
            if seen.header("authorization") == Some("Bearer token-0") {
                Answer::graph_error(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token has expired or is not yet valid.",
                )
                .with_header("WWW-Authenticate", "Bearer realm=\"\"")
            } else {
                Answer::json(200, user_json(USER))
            }
        })
        .await
    };
    let client = client(&server);
    assert_eq!(client.get_user(USER, &[]).await.unwrap().id, USER);
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    // The new token is cached: no further fetch.
    client.get_user(USER, &[]).await.unwrap();
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_graph_keeps_refusing_is_unauthorized_after_one_refresh() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t", 3599);
        }
        Answer::graph_error(
            401,
            "InvalidAuthenticationToken",
            "CompactToken parsing failed with error code: 80049217",
        )
    })
    .await;
    let client = client(&server);
    let error = client.get_user(USER, &[]).await.unwrap_err();
    assert!(matches!(error, GraphError::Unauthorized(_)), "{error:?}");
    assert_eq!(server.seen().iter().filter(|s| is_token(s)).count(), 2);
}

#[tokio::test]
async fn token_endpoint_errors_say_what_to_fix() {
    let server = MockServer::start(|seen| {
        assert!(is_token(seen));
        let form = seen.form();
        assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
        assert!(form.contains(&("client_secret".into(), "secret-value".into())));
        assert!(form.contains(&("scope".into(), "https://graph.microsoft.com/.default".into())));
        Answer::json(401, serde_json::json!({
            "error":"invalid_client",
            "error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2026-05-01 10:00:00Z",
            "error_codes":[7000215],"trace_id":"trace-1","correlation_id":"corr-1"}))
    })
    .await;
    let error = client(&server).check_permissions().await.unwrap_err();
    let GraphError::Unauthorized(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.aadsts, Some(7000215));
    assert_eq!(failure.ids.request_id.as_deref(), Some("trace-1"));
    let text = error.to_string();
    assert!(
        text.contains("not its Secret ID") && text.contains("AADSTS7000215"),
        "{text}"
    );
    assert_eq!(
        server.seen().len(),
        1,
        "a refused credential is not retried"
    );
}

fn new_method(credential_id: &[u8]) -> NewFido2Method {
    NewFido2Method {
        display_name: Some("keybridge phone".into()),
        credential_id: credential_id.to_vec(),
        client_data_json: br#"{"type":"webauthn.create"}"#.to_vec(),
        attestation_object: vec![0xa3, 0x01],
        client_extension_results: serde_json::json!({}),
        aaguid: None,
    }
}

fn method_json(id: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "displayName": "keybridge phone", "createdDateTime": "2026-05-01T10:15:30Z",
        "aaGuid": "00000000-0000-0000-0000-000000000000", "attestationCertificates": [],
        "attestationLevel": "notAttested", "passkeyType": "deviceBound"})
}

#[tokio::test]
async fn a_dropped_connection_after_the_post_never_creates_a_second_passkey() {
    let credential_id = [7u8; 32];
    let method_id = fido2_method_id(&credential_id);
    let created = Arc::new(AtomicUsize::new(0));
    let server = {
        let created = created.clone();
        let method_id = method_id.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                return Answer::token("t", 3599);
            }
            match seen.method.as_str() {
                // The service registers the passkey, then the connection breaks before the answer.
                "POST" => {
                    created.fetch_add(1, Ordering::SeqCst);
                    Answer::Drop
                }
                "GET" => {
                    let value: Vec<_> = (0..created.load(Ordering::SeqCst))
                        .map(|_| method_json(&method_id))
                        .collect();
                    Answer::json(200, serde_json::json!({"value": value}))
                }
                _ => Answer::empty(405),
            }
        })
        .await
    };
    let client = client(&server);
    let method = client
        .create_fido2_method(USER, &new_method(&credential_id))
        .await
        .unwrap();
    assert_eq!(method.id, method_id);
    assert_eq!(created.load(Ordering::SeqCst), 1, "exactly one POST");
    let post = server
        .seen()
        .into_iter()
        .find(|s| s.method == "POST" && !is_token(s))
        .unwrap();
    let body = post.json();
    assert_eq!(body["displayName"], "keybridge phone");
    assert_eq!(
        body["publicKeyCredential"]["id"],
        "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"
    );
    assert_eq!(
        body["publicKeyCredential"]["response"]["clientDataJSON"],
        "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0"
    );
    assert_eq!(
        body["publicKeyCredential"]["clientExtensionResults"],
        serde_json::json!({})
    );
}

#[tokio::test]
async fn a_post_lost_before_processing_is_sent_again_once() {
    let credential_id = [9u8; 16];
    let method_id = fido2_method_id(&credential_id);
    let posts = Arc::new(AtomicUsize::new(0));
    let server = {
        let posts = posts.clone();
        let method_id = method_id.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                return Answer::token("t", 3599);
            }
            match seen.method.as_str() {
                // The first POST is lost before the service acts on it; the second succeeds.
                "POST" if posts.fetch_add(1, Ordering::SeqCst) == 0 => Answer::Drop,
                "POST" => Answer::json(201, method_json(&method_id)),
                "GET" => Answer::json(200, serde_json::json!({"value": []})),
                _ => Answer::empty(405),
            }
        })
        .await
    };
    let client = client(&server);
    let method = client
        .create_fido2_method(USER, &new_method(&credential_id))
        .await
        .unwrap();
    assert_eq!(method.id, method_id);
    assert_eq!(posts.load(Ordering::SeqCst), 2);
    let order: Vec<String> = server
        .seen()
        .iter()
        .filter(|s| !is_token(s))
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(
        order,
        ["POST", "GET", "POST"],
        "looked up before posting again"
    );
}

#[tokio::test]
async fn batch_items_throttled_are_resent_after_the_longest_retry_after() {
    let rounds = Arc::new(AtomicUsize::new(0));
    let server = {
        let rounds = rounds.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                return Answer::token("t", 3599);
            }
            let round = rounds.fetch_add(1, Ordering::SeqCst);
            let requests = seen.json()["requests"].as_array().unwrap().clone();
            let responses: Vec<_> = requests
                .iter()
                .map(|r| {
                    let id = r["id"].as_str().unwrap();
                    let n: usize = id.parse().unwrap();
                    if round == 0 && n.is_multiple_of(3) {
                        let wait = if n == 3 { "1" } else { "0" };
                        serde_json::json!({"id": id, "status": 429, "headers": {"Retry-After": wait},
                            "body": {"error": {"code": "TooManyRequests", "message": "Please retry again later."}}})
                    } else {
                        serde_json::json!({"id": id, "status": 200, "body": {"id": id}})
                    }
                })
                .collect();
            Answer::json(200, serde_json::json!({"responses": responses}))
        })
        .await
    };
    let client = client(&server);
    let requests: Vec<_> = (0..10)
        .map(|i| BatchRequest::new(i.to_string(), "GET", format!("/users/u{i}")))
        .collect();
    let answers = client.batch(requests).await.unwrap();
    assert_eq!(answers.len(), 10);
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let ids: Vec<&str> = answers.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    let batches: Vec<Seen> = server.seen().into_iter().filter(|s| !is_token(s)).collect();
    assert_eq!(batches.len(), 2);
    let resent: Vec<String> = batches[1].json()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(resent, ["0", "3", "6", "9"]);
    assert!(
        batches[1].at - batches[0].at >= Duration::from_millis(950),
        "waited for the longest Retry-After"
    );
    assert_eq!(client.stats().throttled, 4);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t", 3599);
        }
        Answer::json(200, serde_json::json!({"value": [], "@odata.nextLink": "https://evil.example/v1.0/users?$skiptoken=x"}))
    })
    .await;
    let client = client(&server);
    let mut pages = client.list_users(&["id"], 999).unwrap();
    let error = pages.next_page().await.unwrap_err();
    assert!(
        error.to_string().contains("instead of the Graph host"),
        "{error}"
    );
}

#[tokio::test]
async fn with_a_fake_clock_waits_are_recorded_not_slept() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = {
        let calls = calls.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                return Answer::token("t", 3599);
            }
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Answer::graph_error(429, "TooManyRequests", "later")
                    .with_header("Retry-After", "30"),
                1 | 2 => Answer::graph_error(503, "serviceNotAvailable", "busy"),
                _ => Answer::json(200, user_json(USER)),
            }
        })
        .await
    };
    let clock = Arc::new(keybridge_graph::FakeClock::new());
    let mut config = GraphConfig::new(
        TENANT,
        "client-1",
        ClientCredential::secret("secret-value").unwrap(),
    )
    .with_cloud(Cloud::custom(&server.base(), &server.base()).unwrap())
    .with_rate_limits(RateLimits::unlimited());
    config.retry.max_retry_after = Duration::from_secs(60);
    let max_ceiling = config.retry.ceiling(2);
    let client = GraphClient::with_clock(config, clock.clone()).unwrap();
    let started = std::time::Instant::now();
    client.get_user(USER, &[]).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no real 30 s wait"
    );
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3, "{sleeps:?}");
    assert_eq!(
        sleeps[0],
        Duration::from_secs(30),
        "the Retry-After, through the limiter's pause"
    );
    assert!(sleeps[1..].iter().all(|s| *s <= max_ceiling), "{sleeps:?}");
}

#[tokio::test]
async fn a_refused_ps256_assertion_falls_back_to_rs256_with_x5t() {
    use base64::Engine as _;
    let key = include_str!("../../src/testdata/rsa-pkcs8.pem");
    let key_pair = rcgen::KeyPair::from_pem_and_sign_algo(key, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["app.test".into()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(90);
    let certificate = params.self_signed(&key_pair).unwrap().pem();
    let server = MockServer::start(|seen| {
        if !is_token(seen) {
            return Answer::json(200, user_json(USER));
        }
        let form = seen.form();
        let assertion = &form.iter().find(|(k, _)| k == "client_assertion").unwrap().1;
        let header = assertion.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap(),
        )
        .unwrap();
        if header["alg"] == "RS256" && header["x5t"].is_string() {
            Answer::token("t", 3599)
        } else {
            Answer::json(401, serde_json::json!({"error":"invalid_client",
                "error_description":"AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.",
                "error_codes":[700027]}))
        }
    })
    .await;
    let credential = ClientCredential::certificate_pem(&format!("{certificate}{key}")).unwrap();
    let config = GraphConfig::new(TENANT, "client-1", credential)
        .with_cloud(Cloud::custom(&server.base(), &server.base()).unwrap())
        .with_rate_limits(RateLimits::unlimited());
    let client = GraphClient::new(config).unwrap();
    client.get_user(USER, &[]).await.unwrap();
    let token_requests: Vec<Seen> = server.seen().into_iter().filter(is_token).collect();
    assert_eq!(token_requests.len(), 2, "PS256 first, then RS256");
    let form = token_requests[0].form();
    assert!(form.contains(&(
        "client_assertion_type".into(),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()
    )));
    assert!(!form.iter().any(|(k, _)| k == "client_secret"));
}

#[tokio::test]
async fn when_method_ids_are_not_derived_from_the_credential_the_new_one_is_found_by_aaguid_and_time()
 {
    let aaguid = uuid::Uuid::parse_str("9c835346-796b-4c27-8898-d6032f515cc5").unwrap();
    let created = Arc::new(AtomicUsize::new(0));
    let server = {
        let created = created.clone();
        MockServer::start(move |seen| {
            if is_token(seen) {
                return Answer::token("t", 3599);
            }
            match seen.method.as_str() {
                "POST" => {
                    created.fetch_add(1, Ordering::SeqCst);
                    Answer::Drop
                }
                "GET" => {
                    let now = time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap();
                    let mut value = vec![serde_json::json!({"id": "11111111-1111-1111-1111-111111111111",
                        "displayName": "keybridge phone", "createdDateTime": "2020-01-01T00:00:00Z",
                        "aaGuid": aaguid.to_string()})];
                    if created.load(Ordering::SeqCst) > 0 {
                        value.push(serde_json::json!({"id": "22222222-2222-2222-2222-222222222222",
                            "displayName": "keybridge phone", "createdDateTime": now, "aaGuid": aaguid.to_string()}));
                    }
                    Answer::json(200, serde_json::json!({"value": value}))
                }
                _ => Answer::empty(405),
            }
        })
        .await
    };
    let mut method = new_method(&[5u8; 32]);
    method.aaguid = Some(aaguid);
    let found = client(&server)
        .create_fido2_method(USER, &method)
        .await
        .unwrap();
    assert_eq!(
        found.id, "22222222-2222-2222-2222-222222222222",
        "the new one, not the old one"
    );
    assert_eq!(created.load(Ordering::SeqCst), 1);
}

/// A 40 MiB body: more than any Graph answer this client asks for.
fn huge_json() -> String {
    format!(
        "{{\"id\":\"{USER}\",\"displayName\":\"{}\"}}",
        "A".repeat(40 << 20)
    )
}

#[tokio::test]
async fn an_oversized_graph_answer_is_refused_not_buffered() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t1", 3599);
        }
        Answer::Respond {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: huge_json(),
        }
    })
    .await;
    let client = client(&server);
    let error = client.get_user(USER, &["id"]).await.unwrap_err();
    assert!(
        matches!(&error, GraphError::UnexpectedResponse { detail, .. } if detail.contains("larger than")),
        "{error}"
    );
    // Not retried: the same request would bring the same answer.
    assert_eq!(server.count("GET", USER), 1);
}

#[tokio::test]
async fn an_oversized_token_answer_is_refused_not_buffered() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: huge_json(),
            };
        }
        Answer::json(200, user_json(USER))
    })
    .await;
    let client = client(&server);
    let error = client.get_user(USER, &["id"]).await.unwrap_err();
    assert!(
        matches!(&error, GraphError::UnexpectedResponse { detail, .. } if detail.contains("larger than")),
        "{error}"
    );
    assert_eq!(server.count("GET", USER), 0);
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_secret_stays_home() {
    let elsewhere = MockServer::start(|_| Answer::token("stolen", 3599)).await;
    let target = elsewhere.base();
    let server = MockServer::start(move |seen| {
        // 307 and 308 keep the method and the body: following one re-sends the client
        // secret (or the access token, to a same-host path) wherever it points.
        let location = format!("{target}{}", seen.target);
        Answer::empty(307).with_header("Location", &location)
    })
    .await;
    let client = client(&server);
    assert!(client.get_user(USER, &["id"]).await.is_err());
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}

#[tokio::test]
async fn a_batched_post_written_in_lower_case_is_not_resent_after_a_5xx() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t1", 3599);
        }
        Answer::json(
            200,
            serde_json::json!({"responses": [{"id": "1", "status": 503, "body": {"error": {"code": "serviceUnavailable", "message": "try later"}}}]}),
        )
    })
    .await;
    let client = client(&server);
    // The fields are public: a request may be built without `BatchRequest::new`.
    let request = BatchRequest {
        id: "1".to_owned(),
        method: "post".to_owned(),
        url: "/groups/g/members/$ref".to_owned(),
        headers: [("Content-Type".to_owned(), "application/json".to_owned())].into(),
        body: Some(
            serde_json::json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/u"}),
        ),
    };
    let answers = client.batch(vec![request]).await.unwrap();
    assert_eq!(answers[0].status, 503);
    // A 503 may come after the POST took effect: sending it again could add it twice.
    assert_eq!(server.count("POST", "$batch"), 1);
}

#[tokio::test]
async fn dot_segments_are_refused_not_dropped_from_the_path() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t1", 3599);
        }
        Answer::empty(204)
    })
    .await;
    let client = client(&server);
    // A URL drops "." and ".." segments: the DELETE would go to the user's whole fido2Methods
    // collection, or to another user's path.
    for (user, method) in [(USER, ".."), (USER, "."), ("..", "abc"), (".", "abc")] {
        let error = client.delete_fido2_method(user, method).await.unwrap_err();
        assert!(
            matches!(error, GraphError::InvalidArgument(_)),
            "{user} {method}: {error}"
        );
    }
    for user in ["..", "."] {
        let error = client.get_user(user, &["id"]).await.unwrap_err();
        assert!(
            matches!(error, GraphError::InvalidArgument(_)),
            "{user}: {error}"
        );
    }
    assert!(
        server.seen().iter().all(is_token),
        "{:?}",
        server
            .seen()
            .iter()
            .map(|s| s.target.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_next_link_back_to_the_same_page_is_refused_not_followed_forever() {
    let server = MockServer::start(|seen| {
        if is_token(seen) {
            return Answer::token("t1", 3599);
        }
        let host = seen.header("host").unwrap_or_default().to_owned();
        Answer::json(
            200,
            serde_json::json!({
                "value": [user_json(USER)],
                "@odata.nextLink": format!("http://{host}{}", seen.target),
            }),
        )
    })
    .await;
    let client = client(&server);
    let pages = client.list_users(&["id"], 10).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), pages.collect_all())
        .await
        .expect("paging ends");
    let error = outcome.unwrap_err();
    assert!(
        matches!(&error, GraphError::UnexpectedResponse { detail, .. } if detail.contains("same page")),
        "{error}"
    );
    assert_eq!(server.count("GET", "/users"), 1);
}
