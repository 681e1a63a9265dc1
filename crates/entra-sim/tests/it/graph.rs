//! Graph conventions, users, groups, members, getByIds, delta, batch.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{graph_error, start};

#[tokio::test]
async fn conventions_and_bearer_checks() {
    let h = start(5).await;
    let token = h.token().await;
    let (status, headers, body) = h.get("/v1.0/users?$top=2", &token).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers["request-id"]
            .to_str()
            .is_ok_and(|v| uuid::Uuid::parse_str(v).is_ok())
    );
    assert!(headers.contains_key("client-request-id"));
    assert!(
        headers["x-ms-ags-diagnostic"]
            .to_str()
            .expect("diag")
            .contains("ServerInfo")
    );
    assert_eq!(
        headers["content-type"],
        "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
    );
    assert!(
        body["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("/v1.0/$metadata#users")
    );

    // The bare token works as well as "Bearer <token>".
    let response = h
        .http
        .get(format!("{}/users?$top=1", h.sim.info().graph_url))
        .header("Authorization", &token)
        .send()
        .await
        .expect("bare");
    assert_eq!(response.status(), 200);

    let (status, headers, body) = h.get("/v1.0/users", "").await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(graph_error(&body), "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], "Access token is empty.");

    let (status, _, body) = h.get("/v1.0/users", "abc.def").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .starts_with("CompactToken parsing failed")
    );

    // A token signed by someone else.
    let forged = {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("key");
        let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
            .expect("claims")
            .claims;
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).expect("pem"),
        )
        .expect("sign")
    };
    let (status, _, body) = h.get("/v1.0/users", &forged).await;
    assert_eq!(status, 401);
    assert_eq!(graph_error(&body), "InvalidAuthenticationToken");

    // Unknown paths and bad JSON: Graph-shaped 400, never a 500.
    let (status, _, body) = h.get("/v1.0/frobnicate", &token).await;
    assert_eq!(status, 400);
    assert_eq!(graph_error(&body), "BadRequest");
    assert_eq!(
        body["error"]["message"],
        "Resource not found for the segment 'frobnicate'."
    );
    let response = h
        .http
        .post(format!("{}/groups", h.sim.info().graph_url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("bad json");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(graph_error(&body), "BadRequest");
    let big = "x".repeat(5 * 1024 * 1024);
    let response = h
        .http
        .post(format!("{}/groups", h.sim.info().graph_url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("big body");
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn users_list_select_filter_top_count_and_paging() {
    let h = start(250).await;
    let token = h.token().await;
    let (status, _, body) = h
        .get("/v1.0/users?$select=id,userPrincipalName,displayName,mail,accountEnabled,userType&$top=999", &token)
        .await;
    assert_eq!(status, 200);
    let users = body["value"].as_array().expect("value");
    assert_eq!(users.len(), 250);
    assert!(body.get("@odata.nextLink").is_none());
    assert!(
        body["@odata.context"]
            .as_str()
            .expect("c")
            .ends_with("#users(id,userPrincipalName,displayName,mail,accountEnabled,userType)")
    );
    let first = users[0].as_object().expect("object");
    assert_eq!(first.len(), 6, "only the selected properties: {first:?}");
    assert!(users.iter().any(|u| u["accountEnabled"] == false));

    // Default projection: no accountEnabled.
    let (_, _, body) = h.get("/v1.0/users?$top=1", &token).await;
    assert!(body["value"][0].get("accountEnabled").is_none());
    assert!(body["value"][0].get("businessPhones").is_some());

    // $top 1000 is refused with Graph's words.
    let (status, _, body) = h.get("/v1.0/users?$top=1000", &token).await;
    assert_eq!(status, 400);
    graph_error(&body);
    assert_eq!(
        body["error"]["message"],
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );

    // Paging: follow nextLink verbatim until it ends.
    let mut seen = std::collections::HashSet::new();
    let mut next = Some(format!(
        "{}/users?$select=id&$top=100",
        h.sim.info().graph_url
    ));
    let mut pages = 0;
    while let Some(url) = next {
        let (status, _, body) = h.get(&url, &token).await;
        assert_eq!(status, 200, "{body}");
        for u in body["value"].as_array().expect("value") {
            assert!(
                seen.insert(u["id"].as_str().expect("id").to_owned()),
                "no duplicates"
            );
        }
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(
                link.contains("$skiptoken=") && link.contains("%24select=id")
                    || link.contains("$select=id"),
                "{link}"
            );
        }
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);

    // $filter: eq (case-insensitive), startswith, in, boolean.
    let (_, _, all) = h
        .get(
            "/v1.0/users?$select=id,userPrincipalName,displayName&$top=999",
            &token,
        )
        .await;
    let some = &all["value"][7];
    let upn = some["userPrincipalName"].as_str().expect("upn");
    let filter = format!("userPrincipalName eq '{}'", upn.to_uppercase());
    let url = format!(
        "{}/users?$filter={}",
        h.sim.info().graph_url,
        urlencode(&filter)
    );
    let (status, _, body) = h.get(&url, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().expect("v").len(), 1);
    assert_eq!(body["value"][0]["id"], some["id"]);
    let ids = format!(
        "id in ('{}','{}')",
        all["value"][1]["id"].as_str().expect("id"),
        all["value"][2]["id"].as_str().expect("id")
    );
    let (_, _, body) = h
        .get(
            &format!(
                "{}/users?$filter={}",
                h.sim.info().graph_url,
                urlencode(&ids)
            ),
            &token,
        )
        .await;
    assert_eq!(body["value"].as_array().expect("v").len(), 2);
    let (_, _, body) = h
        .get(
            &format!(
                "{}/users?$filter={}&$select=accountEnabled&$top=999",
                h.sim.info().graph_url,
                urlencode("accountEnabled eq false")
            ),
            &token,
        )
        .await;
    let disabled = body["value"].as_array().expect("v");
    assert!(!disabled.is_empty() && disabled.iter().all(|u| u["accountEnabled"] == false));
    let prefix = &some["displayName"].as_str().expect("dn")[..3];
    let (_, _, body) = h
        .get(
            &format!(
                "{}/users?$filter={}&$top=999",
                h.sim.info().graph_url,
                urlencode(&format!("startswith(displayName,'{prefix}')"))
            ),
            &token,
        )
        .await;
    assert!(
        body["value"]
            .as_array()
            .expect("v")
            .iter()
            .all(|u| u["displayName"].as_str().expect("dn").starts_with(prefix))
    );

    // endswith needs the advanced query mode.
    let endswith = format!(
        "{}/users?$filter={}",
        h.sim.info().graph_url,
        urlencode("endswith(mail,'@contoso.com')")
    );
    let (status, _, body) = h.get(&endswith, &token).await;
    assert_eq!(status, 400);
    assert_eq!(graph_error(&body), "Request_UnsupportedQuery");
    let response = h
        .http
        .get(format!("{endswith}&$count=true"))
        .bearer_auth(&token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("advanced");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body["@odata.count"].as_u64().expect("count") > 100);

    let response = h
        .http
        .get(format!("{}/users/$count", h.sim.info().graph_url))
        .bearer_auth(&token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("count");
    assert_eq!(response.text().await.expect("text"), "250");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn get_user_by_id_or_upn_and_permissions() {
    let h = start(20).await;
    let token = h.token().await;
    let (_, _, all) = h
        .get("/v1.0/users?$select=id,userPrincipalName", &token)
        .await;
    let id = all["value"][3]["id"].as_str().expect("id").to_owned();
    let upn = all["value"][3]["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_owned();
    let (status, _, by_id) = h.get(&format!("/v1.0/users/{id}"), &token).await;
    assert_eq!(status, 200);
    assert!(
        by_id["@odata.context"]
            .as_str()
            .expect("c")
            .ends_with("#users/$entity")
    );
    let (_, _, by_upn) = h
        .get(
            &format!("/v1.0/users/{upn}?$select=id,accountEnabled"),
            &token,
        )
        .await;
    assert_eq!(by_upn["id"], id.as_str());
    assert!(by_upn["accountEnabled"].is_boolean());
    let missing = uuid::Uuid::new_v4();
    let (status, _, body) = h.get(&format!("/v1.0/users/{missing}"), &token).await;
    assert_eq!(status, 404);
    assert_eq!(graph_error(&body), "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["message"],
        format!(
            "Resource '{missing}' does not exist or one of its queried reference-property objects are not present."
        )
    );
    let (status, _, body) = h
        .get(&format!("/v1.0/users/{id}?$select=shoeSize"), &token)
        .await;
    assert_eq!(status, 400);
    graph_error(&body);

    // Without User.* or Directory.* roles: 403 with the directory wording.
    h.control(
        Method::PUT,
        "/roles",
        Some(json!({"roles": ["UserAuthenticationMethod.Read.All"]})),
    )
    .await;
    let weak = h.token().await;
    let (status, _, body) = h.get("/v1.0/users", &weak).await;
    assert_eq!(status, 403);
    assert_eq!(graph_error(&body), "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    // Authentication methods are readable with that role; writing them is not.
    let (status, _, body) = h
        .get(&format!("/v1.0/users/{id}/authentication/methods"), &weak)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["value"][0]["@odata.type"],
        "#microsoft.graph.passwordAuthenticationMethod"
    );
    let (status, _, body) = h
        .get(
            &format!("/v1.0/users/{id}/authentication/fido2Methods/creationOptions"),
            &weak,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(graph_error(&body), "accessDenied");
    // The earlier token keeps its roles.
    assert_eq!(h.get("/v1.0/users", &token).await.0, 200);
}

#[tokio::test]
async fn groups_create_find_members_and_errors() {
    let h = start(30).await;
    let token = h.token().await;
    let (_, _, users) = h.get("/v1.0/users?$select=id&$top=30", &token).await;
    let user_ids: Vec<String> = users["value"]
        .as_array()
        .expect("v")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .collect();

    let (status, headers, group) = h
        .graph(
            Method::POST,
            "/v1.0/groups",
            &token,
            Some(json!({"displayName": "Acme (Client Paired with Entra)", "description": "keybridge", "mailEnabled": false,
                        "mailNickname": "acme-paired-entra", "securityEnabled": true, "groupTypes": []})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    assert!(headers.contains_key("location"));
    assert!(
        group["@odata.context"]
            .as_str()
            .expect("c")
            .ends_with("#groups/$entity")
    );
    assert!(
        group["securityIdentifier"]
            .as_str()
            .expect("sid")
            .starts_with("S-1-12-1-")
    );
    let gid = group["id"].as_str().expect("id").to_owned();

    let (status, _, body) = h
        .graph(Method::POST, "/v1.0/groups", &token, Some(json!({"displayName": "x", "mailEnabled": false, "mailNickname": "bad nick", "securityEnabled": true})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(graph_error(&body), "Request_BadRequest");
    assert_eq!(
        body["error"]["message"],
        "Invalid value specified for property 'mailNickname' of resource 'Group'."
    );

    let filter = urlencode("displayName eq 'Acme (Client Paired with Entra)'");
    let (_, _, found) = h
        .get(
            &format!(
                "{}/groups?$filter={filter}&$select=id,displayName",
                h.sim.info().graph_url
            ),
            &token,
        )
        .await;
    assert_eq!(found["value"].as_array().expect("v").len(), 1);
    assert_eq!(found["value"][0]["id"], gid.as_str());

    let reference = |id: &str| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    let (status, _, _) = h
        .graph(
            Method::POST,
            &format!("/v1.0/groups/{gid}/members/$ref"),
            &token,
            Some(reference(&user_ids[0])),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/groups/{gid}/members/$ref"),
            &token,
            Some(reference(&user_ids[0])),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(graph_error(&body), "Request_BadRequest");
    assert_eq!(
        body["error"]["message"],
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/groups/{gid}/members/$ref"),
            &token,
            Some(reference(&uuid::Uuid::new_v4().to_string())),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(graph_error(&body), "Request_ResourceNotFound");

    // PATCH members@odata.bind: up to 20, all or nothing.
    let bind: Vec<String> = user_ids[1..21]
        .iter()
        .map(|id| format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"))
        .collect();
    let (status, _, _) = h
        .graph(
            Method::PATCH,
            &format!("/v1.0/groups/{gid}"),
            &token,
            Some(json!({"members@odata.bind": bind})),
        )
        .await;
    assert_eq!(status, 204);
    let too_many: Vec<String> = user_ids[0..21]
        .iter()
        .map(|id| format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"))
        .collect();
    let (status, _, _) = h
        .graph(
            Method::PATCH,
            &format!("/v1.0/groups/{gid}"),
            &token,
            Some(json!({"members@odata.bind": too_many})),
        )
        .await;
    assert_eq!(status, 400);
    let with_existing = vec![
        format!("https://graph.microsoft.com/v1.0/users/{}", user_ids[25]),
        format!(
            "https://graph.microsoft.com/v1.0/directoryObjects/{}",
            user_ids[1]
        ),
    ];
    let (status, _, body) = h
        .graph(
            Method::PATCH,
            &format!("/v1.0/groups/{gid}"),
            &token,
            Some(json!({"members@odata.bind": with_existing})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("already exist")
    );

    let (status, _, members) = h
        .get(
            &format!("/v1.0/groups/{gid}/members?$select=id,userPrincipalName&$top=999"),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    let list = members["value"].as_array().expect("v");
    assert_eq!(
        list.len(),
        21,
        "user 25 was not added: the failed PATCH changed nothing"
    );
    assert!(
        list.iter()
            .all(|m| m["@odata.type"] == "#microsoft.graph.user")
    );
    let (_, _, page) = h
        .get(
            &format!("/v1.0/groups/{gid}/members/microsoft.graph.user?$select=id&$top=10"),
            &token,
        )
        .await;
    assert_eq!(page["value"].as_array().expect("v").len(), 10);
    assert!(page["@odata.nextLink"].is_string());

    let (status, _, _) = h
        .graph(
            Method::DELETE,
            &format!("/v1.0/groups/{gid}/members/{}/$ref", user_ids[0]),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, body) = h
        .graph(
            Method::DELETE,
            &format!("/v1.0/groups/{gid}/members/{}/$ref", user_ids[0]),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    graph_error(&body);

    // getByIds returns only what exists.
    let (status, _, body) = h
        .graph(
            Method::POST,
            "/v1.0/directoryObjects/getByIds",
            &token,
            Some(json!({"ids": [user_ids[0], uuid::Uuid::new_v4()], "types": ["user"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().expect("v").len(), 1);
    assert_eq!(body["value"][0]["@odata.type"], "#microsoft.graph.user");
}

#[tokio::test]
async fn delta_reports_changes_and_removals() {
    let h = start(120).await;
    let token = h.token().await;
    let mut url = format!(
        "{}/users/delta?$select=id,displayName,accountEnabled",
        h.sim.info().graph_url
    );
    let mut total = 0;
    let delta_link = loop {
        let (status, _, body) = h.get(&url, &token).await;
        assert_eq!(status, 200, "{body}");
        total += body["value"].as_array().expect("v").len();
        if let Some(next) = body["@odata.nextLink"].as_str() {
            url = next.to_owned();
        } else {
            break body["@odata.deltaLink"]
                .as_str()
                .expect("delta link")
                .to_owned();
        }
    };
    assert_eq!(total, 120);
    let (_, _, body) = h.get(&delta_link, &token).await;
    assert_eq!(
        body["value"].as_array().expect("v").len(),
        0,
        "nothing changed"
    );

    let (_, _, users) = h.get("/v1.0/users?$select=id&$top=3", &token).await;
    let ids: Vec<&str> = users["value"]
        .as_array()
        .expect("v")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        h.control(
            Method::PATCH,
            &format!("/users/{}", ids[0]),
            Some(json!({"accountEnabled": false}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        h.control(Method::DELETE, &format!("/users/{}", ids[1]), None)
            .await
            .0,
        204
    );
    assert_eq!(
        h.control(
            Method::DELETE,
            &format!("/users/{}?permanent=true", ids[2]),
            None
        )
        .await
        .0,
        204
    );
    let (_, _, body) = h.get(&delta_link, &token).await;
    let changes = body["value"].as_array().expect("v");
    assert_eq!(changes.len(), 3, "{body}");
    let by_id = |id: &str| {
        changes
            .iter()
            .find(|c| c["id"] == id)
            .expect("change")
            .clone()
    };
    assert_eq!(by_id(ids[0])["accountEnabled"], false);
    assert_eq!(by_id(ids[1])["@removed"]["reason"], "changed");
    assert_eq!(by_id(ids[2])["@removed"]["reason"], "deleted");
    assert!(body["@odata.deltaLink"].is_string());
    // The soft-deleted user is gone from GET.
    assert_eq!(
        h.get(&format!("/v1.0/users/{}", ids[1]), &token).await.0,
        404
    );
}

#[tokio::test]
async fn batch_runs_items_with_depends_on_and_424() {
    let h = start(10).await;
    let token = h.token().await;
    let (_, _, users) = h.get("/v1.0/users?$select=id&$top=2", &token).await;
    let uid = users["value"][0]["id"].as_str().expect("id").to_owned();
    let missing = uuid::Uuid::new_v4();
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{uid}?$select=id")},
        {"id": "2", "method": "GET", "url": format!("/users/{missing}")},
        {"id": "3", "method": "GET", "url": "/users?$top=1", "dependsOn": ["2"]},
        {"id": "4", "method": "POST", "url": "/groups", "headers": {"Content-Type": "application/json"},
         "body": {"displayName": "Batch group", "mailEnabled": false, "mailNickname": "batch-group", "securityEnabled": true}, "dependsOn": ["1"]},
    ]});
    let (status, _, body) = h
        .graph(Method::POST, "/v1.0/$batch", &token, Some(batch))
        .await;
    assert_eq!(status, 200, "{body}");
    let responses = body["responses"].as_array().expect("responses");
    let status_of = |id: &str| {
        responses.iter().find(|r| r["id"] == id).expect("item")["status"]
            .as_u64()
            .expect("status")
    };
    assert_eq!(status_of("1"), 200);
    assert_eq!(status_of("2"), 404);
    assert_eq!(status_of("3"), 424);
    assert_eq!(status_of("4"), 201);
    let item2 = responses.iter().find(|r| r["id"] == "2").expect("2");
    assert_eq!(item2["body"]["error"]["code"], "Request_ResourceNotFound");

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let (status, _, body) = h
        .graph(
            Method::POST,
            "/v1.0/$batch",
            &token,
            Some(json!({"requests": too_many})),
        )
        .await;
    assert_eq!(status, 400);
    graph_error(&body);
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/users"}]});
    assert_eq!(
        h.graph(Method::POST, "/v1.0/$batch", &token, Some(dup))
            .await
            .0,
        400
    );
    let no_type =
        json!({"requests": [{"id": "a", "method": "POST", "url": "/groups", "body": {}}]});
    assert_eq!(
        h.graph(Method::POST, "/v1.0/$batch", &token, Some(no_type))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn malformed_requests_never_get_a_server_error() {
    let h = start(10).await;
    let token = h.token().await;
    let long = "a".repeat(3000);
    let paths = [
        "/users?$filter=(".to_owned(),
        "/users?$filter='".to_owned(),
        "/users?$filter=not%20not".to_owned(),
        "/users?$filter=id%20in%20()".to_owned(),
        "/users?$filter=accountEnabled%20eq%20'x'".to_owned(),
        "/users?$filter=a%20eq%20b%20eq%20c".to_owned(),
        "/users?$top=-1".to_owned(),
        "/users?$top=99999999999999999999".to_owned(),
        "/users?$skiptoken=abc".to_owned(),
        format!("/users?$skiptoken={long}"),
        "/users/delta?$deltatoken=zzz".to_owned(),
        "/users/%ZZ".to_owned(),
        format!("/users/{long}"),
        "/groups/%00/members".to_owned(),
        "/groups/x/members/$ref".to_owned(),
        "/users/x/authentication/fido2Methods/creationOptions(".to_owned(),
        "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations('".to_owned(),
        "/users?$select=,,,".to_owned(),
        "/users?$count=maybe".to_owned(),
        "/$batch".to_owned(),
    ];
    let bodies = [
        None,
        Some("{"),
        Some("[]"),
        Some("null"),
        Some(r#"{"requests":[{"id":"1","method":"GET","url":"http://x"}]}"#),
        Some(r#"{"requests":"x"}"#),
        Some(r#"{"@odata.id":5}"#),
        Some(r#"{"members@odata.bind":["x","y"]}"#),
    ];
    let mut checked = 0;
    for path in &paths {
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE] {
            for body in bodies {
                let mut request = h
                    .http
                    .request(
                        method.clone(),
                        format!("{}/v1.0{path}", h.sim.info().base_url),
                    )
                    .bearer_auth(&token);
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body);
                }
                let response = request.send().await.expect("request");
                let status = response.status().as_u16();
                let text = response.text().await.expect("text");
                assert!(status < 500, "{method} {path} {body:?}: {status} {text}");
                if status != 204 {
                    let parsed: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|_| panic!("JSON for {method} {path}: {text}"));
                    if status >= 400 {
                        graph_error(&parsed);
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, paths.len() * 4 * bodies.len());
}
