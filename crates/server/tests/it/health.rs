//! Health, readiness, metrics, request ids, TLS and shutdown.

use std::time::Duration;

use keybridge_server::{Server, openapi};
use keybridge_testkit::Backend;
use reqwest::Method;

use crate::support::{self, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_and_request_ids() {
    let h = support::start(Backend::Sqlite).await;

    let response = h.http.get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(response.status(), 200);
    let generated = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a request id is generated");
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert_eq!(
        response.json::<serde_json::Value>().await.expect("json")["status"],
        "ok"
    );

    let response = h.http.get(h.url("/readyz")).send().await.expect("readyz");
    assert_eq!(response.status(), 200);

    // A caller's request id is kept, echoed, and written into error envelopes.
    let response = h
        .http
        .get(h.url("/no/such/thing"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("404");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["request_id"], "trace-me-123");
    assert_eq!(body["error"]["code"], "not_found");

    let response = h
        .http
        .put(h.url("/api/v1/tokens"))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .expect("405");
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_error(405, &body, 405, "method_not_allowed", None);

    // Without a token /metrics is refused (it is not public by default); any role reads it.
    let response = h.http.get(h.url("/metrics")).send().await.expect("metrics");
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "missing_token");
    let response = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth("kbt_not-a-real-token")
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 401);
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let healthz_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("keybridge_http_requests_total{")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request count for /healthz in:\n{metrics}"));
    let count: f64 = healthz_line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count");
    assert!(count >= 1.0, "{healthz_line}");
    assert!(
        metrics.contains("keybridge_http_request_duration_seconds_bucket"),
        "latency histogram missing:\n{metrics}"
    );
    assert!(
        metrics.contains("keybridge_jobs{state=\"queued\"}"),
        "job counts missing:\n{metrics}"
    );

    // The database goes away: not ready, while the process stays healthy.
    h.store.close().await;
    let response = h.http.get(h.url("/readyz")).send().await.expect("readyz");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["reason"], "the database is not reachable");
    let response = h.http.get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(response.status(), 200);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_for_an_independent_validator() {
    let h = support::start(Backend::Sqlite).await;
    let (status, document) = h.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    // The script is found beside this test's own sources (the testkit's compiled-in root can
    // be another checkout's when a target directory is shared).
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/openapi_validate.py");
    let mut child = std::process::Command::new(keybridge_testkit::interop::python())
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the validator starts");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        document.to_string().as_bytes(),
    )
    .expect("document written");
    let output = child.wait_with_output().expect("the validator ran");
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("report");
    assert_eq!(report["openapi"], "3.1.0");
    assert_eq!(report["operations"], openapi::OPERATIONS.len());
    // Each area is tagged for its callers.
    assert_eq!(
        document["paths"]["/device/v1/inbox"]["get"]["tags"][0],
        "device"
    );
    assert_eq!(
        document["paths"]["/invite/{token}/pairing"]["get"]["tags"][0],
        "invite"
    );
    assert_eq!(document["paths"]["/api/v1/jobs"]["get"]["tags"][0], "admin");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let h = support::start(Backend::Sqlite).await;
    let (status, document) = h.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    for (method, path) in openapi::OPERATIONS {
        let concrete = path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{token}", "kbv_unknown");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        // Without a token: /api/v1 operations and /metrics answer 401, the open ones 200 — never the
        // fallback's 404 or a 405. The phone's and the invitation's endpoints refuse the
        // missing signature or unknown link with their own codes.
        let mut request = h.http.request(method.clone(), h.url(&concrete));
        if method == Method::POST {
            request = request.json(&serde_json::json!({}));
        }
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        if path.starts_with("/device/v1/") || path.starts_with("/invite/") {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                (400..500).contains(&status)
                    && !["not_found", "method_not_allowed"].contains(&code.as_str()),
                "{method} {path}: {status} {body}"
            );
        } else if (path.starts_with("/api/v1/") && *path != "/api/v1/openapi.json")
            || *path == "/metrics"
        {
            assert_eq!(status, 401, "{method} {path}");
            assert!(
                response.headers().contains_key("www-authenticate"),
                "{method} {path}"
            );
        } else {
            assert_eq!(status, 200, "{method} {path}");
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_and_pin_survive_a_restart_and_shutdown_is_clean() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = keybridge_testkit::TestDatabase::sqlite();
    let config = support::config(dir.path(), db.url());
    let store = support::connect_store(db.url()).await;

    let first = Server::start(config.clone(), store.clone(), Default::default())
        .await
        .expect("first start");
    let ca = first.ca_file.clone().expect("self-made");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("CA")).expect("PEM"),
        )
        .tls_info(true)
        .build()
        .expect("client");
    let response = http
        .get(format!("{}/healthz", first.base_url))
        .send()
        .await
        .expect("served");
    let served = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec();
    assert_eq!(
        keybridge_server::tls::pin_of_der(&served).expect("pin"),
        first.tls_pin,
        "the pin is the served certificate's"
    );
    assert!(first.tls_pin.starts_with("sha256/"), "{}", first.tls_pin);
    // Python's cryptography computes the same pin from the served certificate.
    let served_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&served)
    };
    let python = crate::interop::run(
        "spki-pin",
        &serde_json::json!({"certificate_der_b64": served_b64}),
    );
    assert_eq!(python["pin"], first.tls_pin.as_str());
    let first_pin = first.tls_pin.clone();
    let first_addr = first.addr;

    let stopped = tokio::time::timeout(Duration::from_secs(10), first.shutdown()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "shutdown: {stopped:?}");
    let after = http
        .get(format!("https://{first_addr}/healthz"))
        .send()
        .await;
    assert!(after.is_err(), "still serving after shutdown");

    let second = Server::start(config, store.clone(), Default::default())
        .await
        .expect("second start");
    assert_eq!(
        second.tls_pin, first_pin,
        "the self-made certificate is reused"
    );
    let response = http
        .get(format!("{}/readyz", second.base_url))
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 200, "the same CA still verifies");
    second.shutdown().await.expect("clean shutdown");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_and_bad_json_are_refused_with_the_envelope() {
    let h = support::start(Backend::Sqlite).await;
    let (status, body) = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "x", "role": "admin", "rol": "typo"})),
        )
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("body"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rol")),
        "{body}"
    );
    let response = h
        .http
        .post(h.url("/api/v1/tokens"))
        .bearer_auth(&h.admin_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_running_job() {
    let h = support::start(Backend::Sqlite).await;
    let (status, created) = h
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(h.integration_body("Contoso")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let first = h
        .wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(first["state"], "succeeded");

    h.sim.set_latency(Duration::from_millis(200));
    let (status, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let job_id = queued["job_id"].as_str().expect("job").to_owned();
    let mut running = false;
    for _ in 0..200 {
        if h.store
            .jobs()
            .get(&job_id)
            .await
            .expect("job")
            .state
            .as_str()
            == "running"
        {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(running, "the sync started");
    let store = h.store.clone();
    h.server.shutdown().await.expect("clean shutdown");
    let job = store.jobs().get(&job_id).await.expect("job");
    assert_eq!(
        job.state.as_str(),
        "succeeded",
        "the running job finished before shutdown returned: {job:?}"
    );
    h.sim.shutdown().await.expect("sim stops");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_certificate_is_served_and_pinned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");

    let db = keybridge_testkit::TestDatabase::sqlite();
    let store = support::connect_store(db.url()).await;
    let mut config = support::config(dir.path(), db.url());
    config.server.tls_cert = Some(cert_path.clone());
    config.server.tls_key = Some(key_path.clone());
    let server = Server::start(config.clone(), store.clone(), Default::default())
        .await
        .expect("starts");
    assert!(server.ca_file.is_none(), "nothing self-made");
    assert!(
        !dir.path().join("tls").exists(),
        "no self-made files written"
    );
    let spki = pem::parse(key.public_key_pem()).expect("SPKI");
    let expected = {
        use base64::Engine as _;
        use sha2::Digest as _;
        format!(
            "sha256/{}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki.contents()))
        )
    };
    assert_eq!(server.tls_pin, expected);
    let http = support::http_client(&[&cert_path]);
    let response = http
        .get(format!("{}/healthz", server.base_url))
        .send()
        .await
        .expect("served with the configured certificate");
    assert_eq!(response.status(), 200);
    server.shutdown().await.expect("stops");

    // A key that is not the certificate's is refused at start, naming the problem.
    let other = rcgen::KeyPair::generate().expect("key");
    std::fs::write(&key_path, other.serialize_pem()).expect("write key");
    let error = Server::start(config, store.clone(), Default::default())
        .await
        .expect_err("refused");
    assert!(
        matches!(error, keybridge_server::ServerError::TlsConfig(_)),
        "{error}"
    );
    store.close().await;
}
