//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, kept by hand next to the
//! routes. The integration tests call every operation it lists and fail when one is not
//! routed, so the document cannot promise an endpoint that does not exist.

use serde_json::{Value, json};

/// Every documented operation: (method, path as in the document).
pub const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/integrations"),
    ("post", "/api/v1/integrations"),
    ("get", "/api/v1/integrations/{id}"),
    ("patch", "/api/v1/integrations/{id}"),
    ("delete", "/api/v1/integrations/{id}"),
    ("post", "/api/v1/integrations/{id}/credential"),
    ("put", "/api/v1/integrations/{id}/native-login"),
    ("put", "/api/v1/integrations/{id}/restrict-domains"),
    ("post", "/api/v1/integrations/{id}/preflight"),
    ("post", "/api/v1/integrations/{id}/sync"),
    ("get", "/api/v1/jobs/{id}"),
    ("get", "/api/v1/jobs"),
    ("post", "/api/v1/jobs/{id}/retry"),
    ("post", "/api/v1/jobs/{id}/cancel"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/audit/export"),
    ("get", "/api/v1/integrations/{id}/desktop-client"),
    ("get", "/api/v1/integrations/{id}/users"),
    ("get", "/api/v1/users/{id}"),
    ("delete", "/api/v1/users/{id}"),
    ("post", "/api/v1/users/{id}/invites"),
    ("get", "/api/v1/users/{id}/invites"),
    ("delete", "/api/v1/users/{id}/invites"),
    ("delete", "/api/v1/users/{id}/phones/{phone_id}"),
    ("get", "/api/v1/users/{id}/phones"),
    ("get", "/api/v1/workstations/{id}"),
    ("delete", "/api/v1/workstations/{id}"),
    ("get", "/api/v1/workstations/{id}/recovery-pin"),
];

fn op(summary: &str, role: Option<&str>, body: Option<&str>, ok: (&str, Option<&str>)) -> Value {
    let mut operation = json!({
        "summary": summary,
        "responses": {
            ok.0: match ok.1 {
                Some(schema) => json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}),
                None => json!({"description": "success"}),
            },
            "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}},
        }
    });
    if let Some(role) = role {
        operation["security"] = json!([{"bearer": []}]);
        operation["description"] = Value::from(format!("Role: {role}."));
    }
    if let Some(body) = body {
        operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
    }
    operation
}

/// The document.
pub fn document() -> Value {
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut users_list = op(
        "The user list: tab counts, search, sort, keyset pagination",
        Some("any"),
        None,
        ("200", Some("UserPage")),
    );
    users_list["parameters"] = json!([
        {"name": "state", "in": "query", "schema": {"enum": ["pending", "paired_with_keybridge", "paired_with_entra"]}},
        {"name": "search", "in": "query", "schema": {"type": "string"}},
        {"name": "sort", "in": "query", "schema": {"enum": ["username", "name", "last_active"]}},
        {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
        {"name": "after", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    ]);
    let mut paths = json!({
        "/healthz": {"get": op("The process is up", None, None, ("200", Some("Health")))},
        "/readyz": {"get": op("The database is reachable and migrated", None, None, ("200", Some("Health")))},
        "/metrics": {"get": {"summary": "Prometheus text exposition", "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}}}},
        "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        "/api/v1/tokens": {
            "get": op("List API tokens (never their secrets)", Some("admin"), None, ("200", Some("TokenList"))),
            "post": op("Create an API token; the token text is in the answer only", Some("admin"), Some("CreateToken"), ("201", Some("CreatedToken"))),
        },
        "/api/v1/tokens/{id}": {"delete": op("Revoke an API token", Some("admin"), None, ("204", None))},
        "/api/v1/integrations": {
            "get": op("List integrations (never their secrets)", Some("any"), None, ("200", Some("IntegrationList"))),
            "post": op("Connect a tenant: token, permission self-test, pre-flight checks, groups, first sync", Some("admin"), Some("CreateIntegration"), ("201", Some("CreatedIntegration"))),
        },
        "/api/v1/integrations/{id}": {
            "get": op("One integration", Some("any"), None, ("200", Some("Integration"))),
            "patch": op("Change the support e-mail; name, tenant_id and client_id cannot change", Some("admin"), Some("PatchIntegration"), ("200", Some("Integration"))),
            "delete": op("Delete the integration with its users and devices", Some("admin"), None, ("204", None)),
        },
        "/api/v1/integrations/{id}/credential": {"post": op("Rotate the credential (verified with a token first)", Some("admin"), Some("Credential"), ("200", Some("Integration")))},
        "/api/v1/integrations/{id}/native-login": {"put": op("Enable or disable the native Entra login experience", Some("admin"), Some("NativeLogin"), ("200", Some("NativeLoginResult")))},
        "/api/v1/integrations/{id}/restrict-domains": {"put": op("Save the restrict-domains list", Some("admin"), Some("RestrictDomains"), ("200", Some("RestrictDomainsSaved")))},
        "/api/v1/integrations/{id}/preflight": {"post": op("Run the pre-flight checks of the tenant's FIDO2 policy again", Some("admin"), None, ("200", Some("Preflight")))},
        "/api/v1/integrations/{id}/sync": {"post": op("Queue a directory sync", Some("admin"), None, ("202", Some("SyncQueued")))},
        "/api/v1/integrations/{id}/desktop-client": {"get": {"summary": "Download desktop client: a zip with the workstation client and keybridge.json (server URL, integration, TLS pin, an expiring install token, support e-mail)",
            "description": "Role: admin.", "security": [{"bearer": []}],
            "parameters": [{"name": "expires_in_days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 365}}],
            "responses": {"200": {"description": "the zip", "content": {"application/zip": {}}},
                          "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}}}},
        "/api/v1/jobs": {"get": op("Jobs, newest first (filters: state, kind; keyset: before, limit)", Some("any"), None, ("200", Some("JobPage")))},
        "/api/v1/jobs/{id}/retry": {"post": op("Queue a dead or cancelled job again", Some("admin"), None, ("200", Some("Job")))},
        "/api/v1/jobs/{id}/cancel": {"post": op("Cancel a queued or running job", Some("admin"), None, ("200", Some("Job")))},
        "/api/v1/audit": {"get": op("Audit events, newest first (filters: action, actor, from, to; keyset: before, limit)", Some("any"), None, ("200", Some("AuditPage")))},
        "/api/v1/audit/export": {"get": {"summary": "Export audit events, oldest first, as JSON lines or CSV (format=json|csv; filters as the list)",
            "description": "Role: any.", "security": [{"bearer": []}],
            "responses": {"200": {"description": "the export", "content": {"application/jsonl": {}, "text/csv": {}}}}}},
        "/api/v1/jobs/{id}": {"get": op("A job's state and progress", Some("any"), None, ("200", Some("Job")))},
        "/api/v1/integrations/{id}/users": {"get": users_list},
        "/api/v1/users/{id}": {
            "get": op("One user", Some("any"), None, ("200", Some("User"))),
            "delete": op("Delete the user (irreversible): keybridge's Entra passkeys, group memberships, phones", Some("admin or helpdesk"), Some("DeleteUser"), ("202", Some("SyncQueued"))),
        },
        "/api/v1/users/{id}/invites": {
            "post": op("Invite the user: a single-use, expiring link to the Device Manager page", Some("admin or helpdesk"), Some("Invite"), ("201", Some("Invited"))),
            "get": op("The user's invitations (never their links)", Some("any"), None, ("200", Some("InviteList"))),
            "delete": op("Revoke the user's open invitation", Some("admin or helpdesk"), None, ("204", None)),
        },
        "/api/v1/users/{id}/phones/{phone_id}": {
            "delete": op("Unpair one of the user's phones: a job deletes its passkey from Entra, then the phone; the user's last phone gone, the user is Pending with \"This user unpaired from keybridge.\"", Some("admin or helpdesk"), None, ("202", Some("SyncQueued"))),
        },
    });
    // A second literal: one `json!` this large exceeds the macro's recursion limit.
    let workstation_paths = json!({
        "/api/v1/users/{id}/phones": {
            "get": op("The user's phones, each with its workstations and a warning when the phone holds several accounts", Some("any"), None, ("200", Some("PhoneList"))),
        },
        "/api/v1/workstations/{id}": {
            "get": op("One workstation", Some("any"), None, ("200", Some("Workstation"))),
            "delete": op("Revoke the workstation: it can no longer sign in", Some("admin or helpdesk"), None, ("204", None)),
        },
        "/api/v1/workstations/{id}/recovery-pin": {
            "get": {
                "summary": "Reveal a user's escrowed recovery PIN for the workstation (audited)",
                "description": "Role: admin. Query: user_id (required).",
                "security": [{"bearer": []}],
                "parameters": [{"name": "user_id", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RecoveryPin"}}}},
                    "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}},
                },
            },
        },
    });
    if let (Some(map), Some(more)) = (paths.as_object_mut(), workstation_paths.as_object()) {
        map.extend(more.clone());
    }
    if let Some(map) = paths.as_object_mut() {
        for (path, item) in map.iter_mut() {
            if path.contains("{id}") {
                item["parameters"] = id.clone();
            }
            if path.contains("{phone_id}")
                && let Some(parameters) = item["parameters"].as_array_mut()
            {
                parameters.push(json!({"name": "phone_id", "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
    }
    let string = json!({"type": "string"});
    let opt_string = json!({"type": ["string", "null"]});
    let user_schemas = json!({
        "User": {"type": "object", "properties": {"id": string, "integration_id": string, "entra_object_id": string,
            "email": opt_string, "username": string, "name": string,
            "state": {"enum": ["pending", "paired_with_keybridge", "paired_with_entra"]},
            "entra_status": {"enum": ["active", "disabled", "not_found"]}, "warning": opt_string,
            "device_count": {"type": "integer"}, "last_active": opt_string, "provisioning_error": opt_string}},
        "DeleteUser": {"type": "object", "required": ["confirm"], "additionalProperties": false, "properties": {"confirm": {"type": "string", "description": "the user's username"}}},
        "JobPage": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}, "next": opt_string}},
        "AuditPage": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
            "seq": {"type": "integer"}, "at": string, "actor": string, "action": string, "target": opt_string,
            "source_addr": opt_string, "request_id": opt_string, "details": {}, "hash": string}}}, "next": {"type": ["integer", "null"]}}},
        "Workstation": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string", "enum": ["active", "revoked"]},
            "created_at": {"type": "string"}, "paired_at": {"type": ["string", "null"]}, "revoked_at": {"type": ["string", "null"]},
            "last_seen_at": {"type": ["string", "null"]}, "phone_ids": {"type": "array", "items": {"type": "string"}}}},
        "Phone": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "model": {"type": "string"}, "os": {"type": "string"},
            "created_at": {"type": "string"}, "last_seen_at": {"type": ["string", "null"]},
            "other_accounts_on_device": {"type": "array", "items": {"type": "string"}}, "warning": {"type": ["string", "null"]},
            "workstations": {"type": "array", "items": {"$ref": "#/components/schemas/Workstation"}}}},
        "PhoneList": {"type": "array", "items": {"$ref": "#/components/schemas/Phone"}},
        "RecoveryPin": {"type": "object", "properties": {"workstation_id": {"type": "string"}, "user_id": {"type": "string"}, "pin": {"type": "string"}}},
        "Invite": {"type": "object", "additionalProperties": false, "properties": {"expires_in_hours": {"type": "integer", "minimum": 1, "maximum": 720}}},
        "Invited": {"type": "object", "properties": {
            "invite": {"type": "object", "properties": {"id": string, "user_id": string, "expires_at": string}},
            "link": string, "delivery": {"enum": ["shown"]}}},
        "InviteList": {"type": "array", "items": {"type": "object", "properties": {"id": string, "created_by": string,
            "created_at": string, "expires_at": string, "used_at": opt_string, "revoked_at": opt_string,
            "status": {"enum": ["open", "used", "revoked", "expired"]}}}},
        "UserPage": {"type": "object", "properties": {
            "counts": {"type": "object", "properties": {"pending": {"type": "integer"}, "paired_with_keybridge": {"type": "integer"}, "paired_with_entra": {"type": "integer"}}},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}, "next": opt_string,
            "status_check_job_id": string}},
    });
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {"title": "keybridge admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "See docs/api.md for authentication, the error envelope and examples."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token (kbt_...)."}},
            "schemas": {
                "ErrorEnvelope": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message", "request_id"],
                    "properties": {"code": string, "message": string, "field": string, "request_id": string,
                        "details": {"type": "array", "items": {"type": "object", "properties": {"field": string, "message": string}}}}}}},
                "Health": {"type": "object", "properties": {"status": {"enum": ["ok", "unavailable"]}, "reason": string}},
                "CreateToken": {"type": "object", "required": ["name", "role"], "additionalProperties": false, "properties": {
                    "name": string, "role": {"enum": ["admin", "helpdesk", "auditor"]}, "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650}}},
                "Token": {"type": "object", "properties": {"id": string, "name": string, "prefix": string, "role": string, "created_by": string,
                    "created_at": string, "expires_at": opt_string, "revoked_at": opt_string, "last_used_at": opt_string}},
                "TokenList": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}},
                "CreatedToken": {"type": "object", "properties": {"token": string, "api_token": {"$ref": "#/components/schemas/Token"}}},
                "Credential": {"type": "object", "additionalProperties": false, "description": "client_secret, or certificate_pem with private_key_pem",
                    "properties": {"client_secret": string, "certificate_pem": string, "private_key_pem": string}},
                "CreateIntegration": {"type": "object", "required": ["name", "tenant_id", "client_id"], "additionalProperties": false, "properties": {
                    "name": {"type": "string", "description": "letters, digits, spaces, hyphens, underscores; at most 23 characters without spaces"},
                    "tenant_id": {"type": "string", "format": "uuid"}, "client_id": {"type": "string", "format": "uuid"},
                    "client_secret": string, "certificate_pem": string, "private_key_pem": string, "support_email": string}},
                "PatchIntegration": {"type": "object", "additionalProperties": false, "properties": {
                    "support_email": string, "name": string, "tenant_id": string, "client_id": string}},
                "Integration": {"type": "object", "properties": {
                    "id": string, "name": string, "internal_id": string, "tenant_id": string, "client_id": string,
                    "credential": {"type": "object", "properties": {"kind": {"enum": ["client_secret", "certificate"]},
                        "certificate_subject": string, "certificate_not_after": string, "certificate_thumbprint": string}},
                    "native_login_enabled": {"type": "boolean"}, "restrict_domains": {"type": "array", "items": string},
                    "support_email": opt_string,
                    "groups": {"type": "object", "properties": {"eligible_for_pairing": opt_string, "paired_with_keybridge": opt_string,
                        "paired_with_entra": opt_string, "not_yet_enrolled": opt_string}},
                    "last_sync_at": opt_string, "created_at": string, "updated_at": string}},
                "IntegrationList": {"type": "array", "items": {"$ref": "#/components/schemas/Integration"}},
                "PreflightCheck": {"type": "object", "properties": {"check": string, "status": {"enum": ["ok", "warning", "blocking"]},
                    "message": string, "fix": string}},
                "Preflight": {"type": "object", "properties": {"preflight": {"type": "array", "items": {"$ref": "#/components/schemas/PreflightCheck"}}}},
                "CreatedIntegration": {"type": "object", "properties": {
                    "integration": {"$ref": "#/components/schemas/Integration"},
                    "permissions": {"type": "object", "properties": {"granted": {"type": "array", "items": string},
                        "missing_optional": {"type": "array", "items": string}, "known": {"type": "boolean"}}},
                    "preflight": {"type": "array", "items": {"$ref": "#/components/schemas/PreflightCheck"}},
                    "sync_job_id": string}},
                "NativeLogin": {"type": "object", "required": ["enabled"], "additionalProperties": false, "properties": {"enabled": {"type": "boolean"}}},
                "NativeLoginResult": {"type": "object", "properties": {"native_login_enabled": {"type": "boolean"}, "provisioning_job_id": string, "message": string}},
                "RestrictDomains": {"type": "object", "required": ["domains"], "additionalProperties": false, "properties": {"domains": {"type": "array", "items": string}}},
                "RestrictDomainsSaved": {"type": "object", "properties": {"message": {"const": "Restrict domains saved successfully"}, "domains": {"type": "array", "items": string}}},
                "SyncQueued": {"type": "object", "properties": {"job_id": string}},
                "Job": {"type": "object", "properties": {"id": string, "kind": string, "state": {"enum": ["queued", "running", "succeeded", "dead", "cancelled"]},
                    "attempts": {"type": "integer"}, "max_attempts": {"type": "integer"}, "progress_done": {"type": "integer"},
                    "progress_failed": {"type": "integer"}, "progress_total": {"type": "integer"}, "last_error": opt_string,
                    "created_at": string, "finished_at": opt_string}},
            }
        }
    });
    if let (Some(schemas), Some(users)) = (
        document["components"]["schemas"].as_object_mut(),
        user_schemas.as_object(),
    ) {
        schemas.extend(users.clone());
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_list_matches_the_document() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter(|k| *k != "parameters")
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut listed: Vec<(String, String)> = OPERATIONS
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        listed.sort();
        assert_eq!(documented, listed);
    }
}

#[cfg(test)]
mod route_tests {
    use super::OPERATIONS;

    /// The `(method, path)` pairs registered with `.route(...)` in a router source file.
    fn routes_in(source: &str, prefix: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find(".route(") {
            rest = &rest[start + ".route(".len()..];
            // The call runs to the parenthesis that closes `.route(`.
            let mut depth = 1usize;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[..end];
            let path = call.split('"').nth(1).unwrap_or_default();
            for method in ["get", "post", "put", "patch", "delete"] {
                let bare = format!("{method}(");
                let chained = format!(".{method}(");
                let listed = call
                    .split_once(',')
                    .map(|(_, handlers)| handlers.trim_start())
                    .is_some_and(|h| h.starts_with(&bare) || h.contains(&chained));
                if listed {
                    found.push((method.to_owned(), format!("{prefix}{path}")));
                }
            }
        }
        found
    }

    #[test]
    fn every_route_is_documented() {
        let mut routed = Vec::new();
        routed.extend(routes_in(include_str!("health.rs"), ""));
        for source in [
            include_str!("api_v1/mod.rs"),
            include_str!("api_v1/tokens.rs"),
            include_str!("api_v1/integrations.rs"),
            include_str!("api_v1/jobs.rs"),
            include_str!("api_v1/users.rs"),
            include_str!("api_v1/audit.rs"),
            include_str!("api_v1/workstations.rs"),
        ] {
            routed.extend(routes_in(source, "/api/v1"));
        }
        routed.sort();
        let mut documented: Vec<(String, String)> = OPERATIONS
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        documented.sort();
        assert_eq!(routed, documented);
    }
}
