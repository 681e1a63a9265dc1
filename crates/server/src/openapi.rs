//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, kept by hand next to the
//! routes. One document describes every HTTP endpoint of the server, tagged by who calls it:
//! `health` (probes), `admin` (`/api/v1`, API tokens), `device` (`/device/v1`, the phone's
//! signed requests) and `invite` (`/invite`, the Device Manager page's invitation link).
//!
//! Two tests keep it true: one walks the router's own routing table and fails when a route of
//! these areas is not documented (so a new endpoint cannot be forgotten), and the integration
//! tests call every documented operation and fail when one is not routed.

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
    ("post", "/api/v1/integrations/{id}/invites/bulk"),
    ("get", "/api/v1/jobs/{id}/invite-results"),
    ("get", "/api/v1/jobs/{id}/invite-links"),
    ("get", "/api/v1/users/{id}/phones"),
    ("get", "/api/v1/users/{id}/fido2-methods"),
    ("delete", "/api/v1/users/{id}/fido2-methods/{method_id}"),
    ("get", "/api/v1/workstations/{id}"),
    ("delete", "/api/v1/workstations/{id}"),
    ("get", "/api/v1/workstations/{id}/recovery-pin"),
    ("post", "/device/v1/pair"),
    ("get", "/device/v1/inbox"),
    ("post", "/device/v1/requests/{id}"),
    ("delete", "/device/v1/device"),
    ("post", "/device/v1/workstations"),
    ("get", "/device/v1/workstations"),
    ("delete", "/device/v1/workstations/{id}"),
    ("post", "/device/v1/workstations/{id}/recovery-pin"),
    ("get", "/invite/{token}/pairing"),
    ("get", "/invite/{token}"),
    ("get", "/invite/{token}/code"),
    ("get", "/invite/{token}/status"),
];

/// The path prefixes whose every route must be in the document.
pub const DOCUMENTED_AREAS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/",
    "/device/v1/",
    "/invite/",
];

/// The tag of a documented path.
fn tag(path: &str) -> &'static str {
    if path.starts_with("/api/v1/") {
        "admin"
    } else if path.starts_with("/device/v1/") {
        "device"
    } else if path.starts_with("/invite/") {
        "invite"
    } else {
        "health"
    }
}

/// An operation of the phone's protocol: signed (or, for enrolment, proven) by the device.
fn device_op(summary: &str, body: Option<&str>, ok: (&str, Option<&str>)) -> Value {
    let mut operation = op(summary, None, body, ok);
    operation["security"] = json!([{"deviceSignature": []}]);
    operation["description"] = Value::from(
        "A signed request: KB-Device-Id, KB-Timestamp, KB-Nonce and KB-Signature headers (docs/device-protocol.md §2).",
    );
    operation
}

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
    let mut inbox = device_op(
        "The phone's inbox: requests waiting for it (long poll up to `wait` seconds)",
        None,
        ("200", Some("InboxPage")),
    );
    inbox["parameters"] = json!([{"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 30}}]);
    let mut paths = json!({
        "/healthz": {"get": op("The process is up", None, None, ("200", Some("Health")))},
        "/readyz": {"get": op("The database is reachable and migrated", None, None, ("200", Some("Health")))},
        "/metrics": {"get": {"summary": "Prometheus text exposition", "description": "Role: any (no token when `server.public_metrics` is on).", "security": [{"bearer": []}, {}], "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}, "401": {"description": "no valid API token"}}}},
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
        "/api/v1/users/{id}/fido2-methods": {
            "get": op("Every FIDO2 method Microsoft Entra holds for the user, read now through Graph; keybridge's own passkeys have ours = true", Some("any role"), None, ("200", None)),
        },
        "/api/v1/users/{id}/fido2-methods/{method_id}": {
            "delete": op("Delete one of the user's FIDO2 methods from Entra (read again first: 404 method_not_found when already gone). Another vendor's key is deleted now (200, outcome deleted, audited user.fido2_method.delete); keybridge's own passkey is unpaired through its phone's unpair job instead (202, outcome unpairing)", Some("admin"), None, ("200", None)),
        },
        "/api/v1/users/{id}/phones/{phone_id}": {
            "delete": op("Unpair one of the user's phones: a job deletes its passkey from Entra, then the phone; the user's last phone gone, the user is Pending with \"This user unpaired from keybridge.\"", Some("admin or helpdesk"), None, ("202", Some("SyncQueued"))),
        },
    });
    // The phone's and the Device Manager page's endpoints (a second object: one json! of
    // everything goes past the macro's recursion limit).
    let public_paths = json!({
        "/device/v1/pair": {"post": {
            "summary": "Enrol a phone: the pairing proof (from the QR payload's secret or the short code) and the device key's signature",
            "description": "No token or signature header: the body carries the proof and the device key's signature (docs/device-protocol.md §1.3).",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EnrolmentRequest"}}}},
            "responses": {
                "201": {"description": "enrolled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EnrolmentResponse"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}}}},
        "/device/v1/inbox": {"get": inbox},
        "/device/v1/requests/{id}": {"post": device_op("Answer a request: the credential or assertion, or a refusal with its reason", Some("RequestAnswer"), ("204", None))},
        "/device/v1/device": {"delete": device_op("Unpair this phone", None, ("204", None))},
        "/device/v1/workstations": {
            "post": device_op("Pair a workstation with this phone's accounts (docs/workstation.md)", Some("DeviceMessage"), ("201", Some("DeviceMessage"))),
            "get": device_op("The workstations paired with this phone", None, ("200", Some("DeviceMessage"))),
        },
        "/device/v1/workstations/{id}": {"delete": device_op("Unpair a workstation from this phone", None, ("204", None))},
        "/device/v1/workstations/{id}/recovery-pin": {"post": device_op("Escrow the workstation's recovery PIN (8-12 digits, sealed at rest)", Some("DeviceMessage"), ("204", None))},
        "/invite/{token}": {"get": {
            "summary": "The Device Manager page (HTML): the QR code, the short code and the enrolment's progress; a page saying what to do for a link that cannot pair",
            "description": "The invitation link is the credential (no API token). Served with a strict Content-Security-Policy.",
            "responses": {"200": {"description": "the page", "content": {"text/html": {}}},
                          "default": {"description": "a page explaining the refusal (4xx)", "content": {"text/html": {}}}}}},
        "/invite/{token}/code": {"get": {
            "summary": "A new pairing session as an HTML fragment (QR code as inline SVG, short code, countdown), for the page's renewal",
            "responses": {"200": {"description": "the fragment", "content": {"text/html": {}}},
                          "default": {"description": "a fragment explaining the refusal (4xx)", "content": {"text/html": {}}}}}},
        "/invite/{token}/status": {"get": {
            "summary": "Where the enrolment of the link's user stands (also for a used link)",
            "responses": {
                "200": {"description": "the status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EnrolmentStatus"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}}}},
        "/invite/{token}/pairing": {"get": {
            "summary": "Open a pairing session for the invitation: the QR payload and the short code (valid 60 s; each call renews)",
            "description": "The invitation link is the credential (no API token).",
            "responses": {
                "200": {"description": "a pairing session", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PairingSession"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}}}}
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
    let bulk_paths = json!({
        "/api/v1/integrations/{id}/invites/bulk": {"post": {
            "summary": "Invite the members of an Entra group or the users of a CSV file, as a job with progress",
            "description": "Role: admin or helpdesk. Send {\"group\": \"<Entra group object id>\"} as application/json, or a CSV file as text/csv (header with an email or upn column; checked whole: a bad file is refused with 422 and every bad line in `details`, and nothing is invited). Query `expires_in_hours` (1-720, default 24).",
            "security": [{"bearer": []}],
            "parameters": [{"name": "expires_in_hours", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 720}}],
            "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BulkInviteGroup"}},
                "text/csv": {"schema": {"type": "string"}}}},
            "responses": {
                "202": {"description": "queued", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkInviteQueued"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}}}},
        "/api/v1/jobs/{id}/invite-results": {"get": op("A bulk invitation job's result per user: invited, or failed with the reason (never the links)", Some("any"), None, ("200", Some("BulkInviteResults")))},
        "/api/v1/jobs/{id}/invite-links": {"get": {
            "summary": "The links a bulk invitation job made, as CSV (email,link,expires_at); every download is audited",
            "description": "Role: admin.", "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "the links", "content": {"text/csv": {"schema": {"type": "string"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}}}},
    });
    if let (Some(map), Some(bulk)) = (paths.as_object_mut(), bulk_paths.as_object()) {
        map.extend(bulk.clone());
    }
    if let (Some(map), Some(public)) = (paths.as_object_mut(), public_paths.as_object()) {
        map.extend(public.clone());
    }
    let token =
        json!([{"name": "token", "in": "path", "required": true, "schema": {"type": "string"}}]);
    if let Some(map) = paths.as_object_mut() {
        for (path, item) in map.iter_mut() {
            if path.contains("{id}") {
                item["parameters"] = id.clone();
            }
            for second in ["phone_id", "method_id"] {
                if path.contains(&format!("{{{second}}}"))
                    && let Some(parameters) = item["parameters"].as_array_mut()
                {
                    parameters.push(json!({"name": second, "in": "path", "required": true, "schema": {"type": "string"}}));
                }
            }
            if path.contains("{token}") {
                item["parameters"] = token.clone();
            }
            if let Some(operations) = item.as_object_mut() {
                for (method, operation) in operations.iter_mut() {
                    if method != "parameters" {
                        operation["tags"] = json!([tag(path)]);
                    }
                }
            }
        }
    }
    let string = json!({"type": "string"});
    let opt_string = json!({"type": ["string", "null"]});
    let b64url = json!({"type": "string", "description": "unpadded base64url"});
    let device_schemas = json!({
        "EnrolmentRequest": {"type": "object", "required": ["v", "pairing", "server", "device_public_key", "device", "proof", "signature"],
            "description": "docs/device-protocol.md §1.3",
            "properties": {"v": {"const": 1}, "pairing": {"type": "object", "description": "{\"id\": the QR payload's pairing id} or {\"code\": the short code}"},
                "server": string, "device_public_key": b64url, "device": {"$ref": "#/components/schemas/DeviceInfo"},
                "proof": b64url, "signature": b64url}},
        "DeviceInfo": {"type": "object", "properties": {"model": string, "os": string, "name": string}},
        "EnrolmentResponse": {"type": "object", "description": "docs/device-protocol.md §1.3",
            "properties": {"v": {"const": 1}, "device_id": {"type": "string", "format": "uuid"},
                "account": {"type": "object"}, "integration_id": string, "tls_pin": b64url}},
        "InboxPage": {"type": "object", "description": "docs/device-protocol.md §3.1",
            "properties": {"v": {"const": 1}, "requests": {"type": "array", "items": {"type": "object",
                "description": "a provisioning or sign-in request, with its type, request_id, account and WebAuthn options"}}}},
        "RequestAnswer": {"type": "object", "required": ["v", "request_id", "answer"], "description": "docs/device-protocol.md §3.4",
            "properties": {"v": {"const": 1}, "request_id": {"type": "string", "format": "uuid"},
                "answer": {"type": "object", "description": "the attestation or assertion, or a refusal with its reason"}}},
        "DeviceMessage": {"type": "object", "description": "a message of the device protocol: PairWorkstation / PairedWorkstation, WorkstationsOfPhone, RecoveryPinEscrow (docs/device-protocol.md §6, docs/workstation.md)"},
        "EnrolmentStatus": {"type": "object", "properties": {"status": string, "message": string, "final_state": {"type": "boolean"}}},
        "PairingSession": {"type": "object", "properties": {"pairing_id": {"type": "string", "format": "uuid"},
            "qr_payload": {"type": "string", "description": "keybridge:pair?v=1&u=…&id=…&s=…&p=…&exp=…"},
            "short_code": string, "expires_at": string, "upn": string}},
    });
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
            "link": {"type": "string", "description": "only when delivery is shown"}, "delivery": {"enum": ["shown", "emailed"]},
            "sent_to": {"type": "string", "description": "the address the link was e-mailed to"}}},
        "InviteList": {"type": "array", "items": {"type": "object", "properties": {"id": string, "created_by": string,
            "created_at": string, "expires_at": string, "used_at": opt_string, "revoked_at": opt_string,
            "status": {"enum": ["open", "used", "revoked", "expired"]}}}},
        "BulkInviteGroup": {"type": "object", "required": ["group"], "additionalProperties": false, "properties": {
            "group": {"type": "string", "format": "uuid"}, "expires_in_hours": {"type": "integer", "minimum": 1, "maximum": 720}}},
        "BulkInviteQueued": {"type": "object", "properties": {"job_id": string, "users": {"type": "integer", "description": "users listed by the CSV file"}}},
        "BulkInviteResults": {"type": "array", "items": {"type": "object", "properties": {"address": string,
            "position": {"type": "integer"}, "user_id": opt_string, "outcome": {"enum": ["invited", "failed"]},
            "reason": opt_string, "invite_id": opt_string, "expires_at": opt_string}}},
        "UserPage": {"type": "object", "properties": {
            "counts": {"type": "object", "properties": {"pending": {"type": "integer"}, "paired_with_keybridge": {"type": "integer"}, "paired_with_entra": {"type": "integer"}}},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}, "next": opt_string,
            "status_check_job_id": string}},
    });
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {"title": "keybridge server API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Every HTTP endpoint of keybridge serve. See docs/api.md for authentication, the error envelope and examples, and docs/device-protocol.md for the phone's protocol."},
        "tags": [
            {"name": "health", "description": "Probes and metrics, without authentication."},
            {"name": "admin", "description": "The admin API under /api/v1, with an API token (Bearer)."},
            {"name": "device", "description": "The phone's protocol under /device/v1: requests signed by the device key (docs/device-protocol.md)."},
            {"name": "invite", "description": "The Device Manager page's calls: the invitation link is the credential."},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (kbt_...)."},
                "deviceSignature": {"type": "apiKey", "in": "header", "name": "KB-Signature",
                    "description": "The device key's signature of the canonical request, with KB-Device-Id, KB-Timestamp and KB-Nonce (docs/device-protocol.md §2)."},
            },
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
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        for more in [&user_schemas, &device_schemas] {
            if let Some(more) = more.as_object() {
                schemas.extend(more.clone());
            }
        }
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
    use super::{DOCUMENTED_AREAS, OPERATIONS};

    /// The `(method, path)` pairs of the router's routing table, read from its `Debug` form
    /// (axum has no other way to list routes): each route id's path, and the methods of its
    /// method router (the `Allow` header it builds).
    fn routed(router: &axum::Router<crate::app::App>) -> Vec<(String, String)> {
        let debug = format!("{router:?}");
        // Only the routes: the fallback router numbers its own routes.
        let table = debug
            .split_once("fallback_router:")
            .map_or(debug.as_str(), |(routes, _)| routes);
        let mut paths = std::collections::BTreeMap::new();
        let mut methods = std::collections::BTreeMap::new();
        let mut rest = table;
        while let Some(start) = rest.find("RouteId(") {
            rest = &rest[start + "RouteId(".len()..];
            let Some((id, after)) = rest.split_once("): ") else {
                break;
            };
            let Ok(id) = id.parse::<u32>() else {
                continue;
            };
            if let Some(path) = after.strip_prefix('"') {
                let path = path.split('"').next().unwrap_or_default();
                paths.insert(id, path.to_owned());
            } else if after.starts_with("MethodRouter(") {
                let allow = after
                    .split_once("allow_header: Bytes(b\"")
                    .and_then(|(_, a)| a.split_once('"'))
                    .map(|(a, _)| a.to_owned())
                    .unwrap_or_default();
                methods.insert(id, allow);
            } else {
                methods.insert(id, String::new());
            }
        }
        let mut found = Vec::new();
        for (id, path) in paths {
            if path.contains("__private__axum") {
                continue;
            }
            let allow = methods.get(&id).cloned().unwrap_or_default();
            assert!(
                !allow.is_empty(),
                "the route {path} has no method list: document it and extend this walk"
            );
            for method in allow.split(',') {
                // axum answers HEAD for every GET.
                if method != "HEAD" {
                    found.push((method.to_lowercase(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_route_is_documented() {
        let all = routed(&crate::router::routes());
        // A walk that finds nothing would pass for the wrong reason.
        assert!(all.len() >= OPERATIONS.len() - 1, "{all:?}");
        let mut routed: Vec<(String, String)> = all
            .into_iter()
            .filter(|(_, path)| DOCUMENTED_AREAS.iter().any(|a| path.starts_with(a)))
            .collect();
        routed.sort();
        let mut documented: Vec<(String, String)> = OPERATIONS
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        documented.sort();
        let missing: Vec<_> = routed.iter().filter(|r| !documented.contains(r)).collect();
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document (add them to OPERATIONS and document()): {missing:?}"
        );
        let unrouted: Vec<_> = documented.iter().filter(|d| !routed.contains(d)).collect();
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn the_walk_sees_a_route_added_to_the_table() {
        use axum::routing::get;
        let router = crate::router::routes().route(
            "/api/v1/not-documented/{id}",
            get(|| async {}).delete(|| async {}),
        );
        let all = routed(&router);
        for method in ["get", "delete"] {
            assert!(
                all.contains(&(method.to_owned(), "/api/v1/not-documented/{id}".to_owned())),
                "{all:?}"
            );
        }
        assert!(all.contains(&("post".to_owned(), "/device/v1/pair".to_owned())));
    }
}
