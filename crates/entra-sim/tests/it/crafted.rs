//! Crafted input (huge or negative numbers, bad UTF-8, unbalanced or deeply nested filters,
//! deep JSON, forged tokens, requests to the control API without its token): every request
//! gets an answer, never a 5xx, a dropped connection or a crashed emulator.

use serde_json::json;

use crate::common::start;

async fn send_raw(
    h: &crate::common::Harness,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> u16 {
    let mut request = h.http.request(method.clone(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(e) => panic!("{method} {}: no answer: {e:?}", &url[..url.len().min(150)]),
    }
}

#[tokio::test]
async fn crafted_input_gets_an_answer_never_a_5xx() {
    let h = start(3).await;
    let token = h.token().await;
    let base = h.sim.info().base_url.clone();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let parens = format!("{}id eq 'x'{}", "(".repeat(3_000), ")".repeat(3_000));
    let nots = format!("{}id eq 'x'", "not ".repeat(3_000));
    let gets = [
        "/v1.0/users?$top=99999999999999999999999999".to_owned(),
        "/v1.0/users?$top=-9223372036854775808".to_owned(),
        "/v1.0/users?$top=%FF".to_owned(),
        "/v1.0/users/%FF%FE".to_owned(),
        "/v1.0/users/%FF%FE/authentication/fido2Methods".to_owned(),
        "/v1.0/users/%00/authentication/methods".to_owned(),
        "/v1.0/groups/%FF".to_owned(),
        "/v1.0/users?$filter=".to_owned(),
        "/v1.0/users?$filter=startswith(".to_owned(),
        "/v1.0/users?$filter=displayName%20eq%20'".to_owned(),
        "/v1.0/users?$filter=id%20in%20(".to_owned(),
        "/v1.0/users?$filter=id%20in%20('a',".to_owned(),
        "/v1.0/users?$filter=%FF%FE".to_owned(),
        "/v1.0/users?$filter=startswith(displayName,'%C3')".to_owned(),
        "/v1.0/users?$filter=accountEnabled%20eq%20".to_owned(),
        "/v1.0/users?$filter=')".to_owned(),
        "/v1.0/users?$filter=not".to_owned(),
        "/v1.0/users?$filter=a%20and".to_owned(),
        format!("/v1.0/users?$filter={}", urlencode(&parens)),
        format!("/v1.0/users?$filter={}", urlencode(&nots)),
        "/v1.0/groups?$filter=displayName%20eq%20'".to_owned(),
        "/v1.0/groups?$filter=startswith(displayName,".to_owned(),
        "/v1.0/users?$skiptoken=%FF%FF".to_owned(),
        "/v1.0/users?$skiptoken=AAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "/v1.0/users?$skiptoken=-1".to_owned(),
        "/v1.0/users?$skiptoken=99999999999999999999".to_owned(),
        "/v1.0/users/delta?$deltatoken=%FF".to_owned(),
        "/v1.0/users/delta?$skiptoken=AAAA".to_owned(),
        "/v1.0/users/delta?$deltatoken=eyJ4IjoxfQ".to_owned(),
        "/v1.0/users/delta?$deltatoken=99999999999999999999".to_owned(),
        "/v1.0/users?$select=%FF,,,".to_owned(),
        "/v1.0/users?$count=true&$top=0".to_owned(),
        "/v1.0/users?$orderby=%FF".to_owned(),
        "/v1.0/users?$search=%22displayName:%22".to_owned(),
        "/v1.0/users?$search=%22".to_owned(),
        "/v1.0/users/$count".to_owned(),
        "/v1.0/groups/x/members?$top=1000000".to_owned(),
        "/v1.0/users/x/authentication/fido2Methods/creationOptions(challengeTimeoutInMinutes=99999999999999999999)".to_owned(),
        "/v1.0/users/x/authentication/fido2Methods/creationOptions(challengeTimeoutInMinutes=-5)".to_owned(),
        "/v1.0/users/x/authentication/fido2Methods/creationOptions(".to_owned(),
        "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations('%FF')".to_owned(),
        "/beta/%FF".to_owned(),
    ];
    let mut bad = Vec::new();
    for path in &gets {
        let status = send_raw(
            &h,
            reqwest::Method::GET,
            &format!("{base}{path}"),
            Some(&token),
            None,
        )
        .await;
        if status >= 500 {
            bad.push(format!("GET {path} -> {status}"));
        }
    }
    let uid = {
        let (_, _, body) = h.get("/v1.0/users?$top=1", &token).await;
        body["value"][0]["id"].as_str().expect("user").to_owned()
    };
    let posts: Vec<(String, Vec<u8>)> = vec![
        ("/v1.0/$batch".into(), deep.clone().into_bytes()),
        ("/v1.0/$batch".into(), deep_obj.clone().into_bytes()),
        ("/v1.0/$batch".into(), b"\xff\xfe".to_vec()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "GET", "url": "/users?$top=99999999999999999999"}]}).to_string().into_bytes()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "GET", "url": "%FF"}]}).to_string().into_bytes()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "GET", "url": "http://evil/x"}]}).to_string().into_bytes()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "GET", "url": "/$batch"}]}).to_string().into_bytes()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "POST", "url": "/$batch", "body": {"requests": [{"id":"1","method":"GET","url":"/users"}]}}]}).to_string().into_bytes()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["1"]}]}).to_string().into_bytes()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "ÿ", "url": "/users"}]}).to_string().into_bytes()),
        ("/v1.0/$batch".into(), json!({"requests": [{"id": "1", "method": "GET", "url": "/users", "headers": {"a\nb": "c\u{0}"}}]}).to_string().into_bytes()),
        ("/v1.0/groups".into(), deep.clone().into_bytes()),
        ("/v1.0/groups".into(), json!({"displayName": 5}).to_string().into_bytes()),
        ("/v1.0/groups".into(), json!({"displayName": "x", "mailNickname": "y", "securityEnabled": true, "mailEnabled": false, "members@odata.bind": ["%FF", "https://graph.microsoft.com/v1.0/directoryObjects/", 5]}).to_string().into_bytes()),
        ("/v1.0/groups/x/members/$ref".into(), json!({"@odata.id": "ÿ"}).to_string().into_bytes()),
        ("/v1.0/directoryObjects/getByIds".into(), json!({"ids": [5, null], "types": "x"}).to_string().into_bytes()),
        ("/v1.0/directoryObjects/getByIds".into(), deep_obj.clone().into_bytes()),
        (format!("/v1.0/users/{uid}/authentication/fido2Methods"), deep.clone().into_bytes()),
        (format!("/v1.0/users/{uid}/authentication/fido2Methods"), json!({"publicKeyCredential": {"id": "%%", "response": {"clientDataJSON": "////", "attestationObject": "AAAA"}}}).to_string().into_bytes()),
        (format!("/v1.0/users/{uid}/authentication/fido2Methods"), json!({"displayName": "k", "publicKeyCredential": {"id": "AAAA", "response": {"clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0", "attestationObject": "oA"}}}).to_string().into_bytes()),
    ];
    for (path, body) in posts {
        let status = send_raw(
            &h,
            reqwest::Method::POST,
            &format!("{base}{path}"),
            Some(&token),
            Some(body),
        )
        .await;
        if status >= 500 {
            bad.push(format!("POST {path} -> {status}"));
        }
    }
    let patch = send_raw(&h, reqwest::Method::PATCH, &format!("{base}/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/fido2"), Some(&token), Some(json!({"keyRestrictions": {"aaGuids": [5], "enforcementType": 7}}).to_string().into_bytes())).await;
    if patch >= 500 {
        bad.push(format!("PATCH policy -> {patch}"));
    }
    // Forged tokens.
    for forged in [
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20ifQ.",
        "a.b.c",
        "ÿ.ÿ.ÿ",
    ] {
        let s = send_raw(
            &h,
            reqwest::Method::GET,
            &format!("{base}/v1.0/users"),
            Some(forged),
            None,
        )
        .await;
        if s != 401 {
            bad.push(format!("forged token {forged} -> {s}"));
        }
    }
    // Control API without its token.
    let control = h.sim.info().control_url.clone();
    for (m, p) in [
        (reqwest::Method::GET, "/_control/state"),
        (reqwest::Method::PUT, "/_control/clock"),
        (reqwest::Method::GET, "/_control/%FF"),
        (reqwest::Method::DELETE, "/_control/faults"),
    ] {
        for t in [None, Some(""), Some("x"), Some(token.as_str())] {
            let s = send_raw(
                &h,
                m.clone(),
                &format!("{control}{p}"),
                t,
                Some(b"{}".to_vec()),
            )
            .await;
            if s != 401 && s != 404 && s != 405 {
                bad.push(format!("control {m} {p} {t:?} -> {s}"));
            }
        }
    }
    // Control API with crafted bodies.
    for (m, p, b) in [
        (
            reqwest::Method::PUT,
            "/_control/clock",
            json!({"now": "9999999-01-01T00:00:00Z"}),
        ),
        (
            reqwest::Method::PUT,
            "/_control/clock",
            json!({"offsetSeconds": 9.9e300}),
        ),
        (
            reqwest::Method::PUT,
            "/_control/clock",
            json!({"offset_secs": i64::MAX}),
        ),
        (
            reqwest::Method::PUT,
            "/_control/latency",
            json!({"ms": u64::MAX}),
        ),
        (
            reqwest::Method::PUT,
            "/_control/latency",
            json!({"millis": u64::MAX, "jitter_ms": u64::MAX}),
        ),
        (
            reqwest::Method::PUT,
            "/_control/throttle",
            json!({"mode": "x", "limit": -1}),
        ),
        (
            reqwest::Method::PUT,
            "/_control/faults",
            json!([{"status": 0}]),
        ),
        (
            reqwest::Method::PUT,
            "/_control/faults",
            json!({"rules": [{"status": 99999, "path": "(", "count": -1}]}),
        ),
        (
            reqwest::Method::PUT,
            "/_control/replication",
            json!({"delayMs": u64::MAX}),
        ),
        (
            reqwest::Method::POST,
            "/_control/users",
            json!({"userPrincipalName": "", "displayName": ""}),
        ),
        (
            reqwest::Method::POST,
            "/_control/app/secrets",
            json!({"expiresInDays": i64::MAX}),
        ),
    ] {
        let s = h.control(m.clone(), p, Some(b.clone())).await.0;
        if s >= 500 {
            bad.push(format!("control {m} {p} {b} -> {s}"));
        }
    }
    // Client assertions: alg none, HS256 keyed with the certificate, huge exp/nbf.
    let info = h.sim.info();
    let mut form = vec![
        ("client_id", info.client_id.to_string()),
        ("scope", "https://graph.microsoft.com/.default".to_owned()),
        ("grant_type", "client_credentials".to_owned()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
    ];
    form.push(("client_assertion", "eyJhbGciOiJub25lIn0.e30.".to_owned()));
    let r = h
        .http
        .post(&info.token_endpoint)
        .form(&form)
        .send()
        .await
        .expect("answer");
    if r.status() != 400 && r.status() != 401 {
        bad.push(format!("alg none -> {}", r.status()));
    }
    // The token endpoint and the sign-in ceremony with odd input.
    let tid = info.tenant_id.to_string();
    for (path, ctype, body) in [
        (format!("/{tid}/oauth2/v2.0/token"), "application/x-www-form-urlencoded", b"\xff\xfe=\xff&client_id=%FF".to_vec()),
        (format!("/{tid}/oauth2/v2.0/token"), "application/x-www-form-urlencoded", format!("client_id={}&client_secret=x&grant_type=client_credentials&scope=%FF", info.client_id).into_bytes()),
        (format!("/{tid}/oauth2/v2.0/token"), "application/x-www-form-urlencoded", format!("client_id={}&grant_type=client_credentials&scope=https://graph.microsoft.com/.default&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=eyJhbGciOiJSUzI1NiIsIng1dCI6IiUlIn0.e30.AAAA", info.client_id).into_bytes()),
        ("/%FF/oauth2/v2.0/token".to_owned(), "application/x-www-form-urlencoded", b"client_id=x".to_vec()),
        ("/%FF/v2.0/.well-known/openid-configuration".to_owned(), "application/json", Vec::new()),
        (format!("/{tid}/fido/signin/start"), "application/json", deep.clone().into_bytes()),
        (format!("/{tid}/fido/signin/start"), "application/json", b"\xff".to_vec()),
        (format!("/{tid}/fido/signin/start"), "application/json", json!({"userPrincipalName": "\u{0}%FF"}).to_string().into_bytes()),
        (format!("/{tid}/fido/signin/finish"), "application/json", json!({"challenge": "%%%", "credential": {"id": "AA", "response": {"authenticatorData": "AA", "clientDataJSON": "AA", "signature": "AA"}}}).to_string().into_bytes()),
        (format!("/{tid}/fido/signin/finish"), "application/json", deep_obj.clone().into_bytes()),
        ("/%FF/fido/signin/start".to_owned(), "application/json", b"{}".to_vec()),
    ] {
        let response = h.http.post(format!("{base}{path}")).header("content-type", ctype).body(body).send().await;
        match response {
            Ok(r) if r.status().as_u16() >= 500 => bad.push(format!("POST {path} -> {}", r.status())),
            Ok(_) => {}
            Err(e) => bad.push(format!("POST {path}: no answer: {e}")),
        }
    }
    for basic in ["Basic %%%", "Basic /w==", "Basic Og==", "basic "] {
        let r = h
            .http
            .post(&info.token_endpoint)
            .header("authorization", basic)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .expect("answer");
        if r.status().as_u16() >= 500 {
            bad.push(format!("basic {basic} -> {}", r.status()));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
