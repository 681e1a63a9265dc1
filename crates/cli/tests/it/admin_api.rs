//! `keybridge admin integrations | users | jobs | tokens | audit` driving the admin API of a
//! running sandbox (the server and entra-sim over HTTPS), as an operator runs them.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::cli::{stderr, stdout};
use crate::device_pairing::{Sandbox, start_sandbox, start_sandbox_with};

/// How the CLI reaches the sandbox's API: server, token and its CA, through the environment.
struct Api<'a> {
    sandbox: &'a Sandbox,
}

impl Api<'_> {
    fn ca(&self) -> PathBuf {
        self.sandbox.dir().join("keybridge/tls/ca.pem")
    }

    /// Runs `keybridge admin ARGS` with the sandbox's API in the environment.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], None)
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keybridge"));
        command.arg("admin").args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("KEYBRIDGE_") {
                command.env_remove(name);
            }
        }
        command
            .env("HOME", "/nonexistent-home")
            .env("KEYBRIDGE_API_URL", &self.sandbox.api)
            .env("KEYBRIDGE_API_TOKEN", &self.sandbox.token)
            .env("KEYBRIDGE_API_CA", self.ca());
        // An empty value removes the variable.
        for (name, value) in env {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "keybridge admin {args:?} failed:\n{}{}",
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// Runs a command with `--json`; its answer.
    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let text = self.ok(&with_json);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}:\n{text}"))
    }
}

/// The client secret of entra-sim's app registration, from the sandbox tenant's state.
fn sandbox_client_secret(sandbox: &Sandbox) -> String {
    let state: Value =
        serde_json::from_slice(&std::fs::read(sandbox.dir().join("entra-sim/state.json")).unwrap())
            .unwrap();
    state["app"]["secrets"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_emailed_when_smtp_is_configured() {
    let sink = keybridge_testkit::smtp::SmtpSink::start();
    let port = sink.port.to_string();
    let sandbox = start_sandbox_with(&[
        ("KEYBRIDGE_SMTP_HOST", "127.0.0.1"),
        ("KEYBRIDGE_SMTP_PORT", &port),
        ("KEYBRIDGE_SMTP_SECURITY", "none"),
        ("KEYBRIDGE_SMTP_FROM", "keybridge <keybridge@contoso.com>"),
    ]);
    let api = Api { sandbox: &sandbox };
    let user = sandbox.a_user().await;
    let user_id = user["id"].as_str().unwrap();
    let to = user["email"]
        .as_str()
        .or(user["username"].as_str())
        .unwrap()
        .to_owned();
    // The CLI says where the invitation went, and never prints the link.
    let said = api.ok(&["users", "invite", user_id]);
    assert!(
        said.starts_with(&format!("invitation e-mailed to {to}, valid until 20")),
        "{said}"
    );
    assert!(!said.contains("/invite/"), "{said}");
    let mails = sink.wait_for(1);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, vec![to]);
    assert!(mails[0].data.contains("/invite/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_users_jobs_and_audit_through_the_cli() {
    let sandbox = start_sandbox();
    let api = Api { sandbox: &sandbox };
    let user = sandbox.a_user().await;
    let user_id = user["id"].as_str().unwrap();
    let username = user["username"].as_str().unwrap();

    // Integrations: a table for people, the API's JSON for scripts.
    let table = api.ok(&["integrations", "list"]);
    assert!(table.lines().next().unwrap().starts_with("ID "), "{table}");
    assert!(table.contains("Sandbox Passkeys"), "{table}");
    let list = api.json(&["integrations", "list"]);
    let integration = list[0]["id"].as_str().unwrap().to_owned();
    let shown = api.ok(&["integrations", "show", &integration]);
    assert!(shown.contains("native login enabled  false"), "{shown}");

    // A second integration of the same tenant, its secret read from standard input.
    let secret = sandbox_client_secret(&sandbox);
    let tenant = list[0]["tenant_id"].as_str().unwrap();
    let client = list[0]["client_id"].as_str().unwrap();
    let output = api.run_with(
        &[
            "integrations",
            "create",
            "--name",
            "Second Passkeys",
            "--tenant-id",
            tenant,
            "--client-id",
            client,
            "--secret-file",
            "-",
            "--json",
        ],
        &[],
        Some(&format!("{secret}\n")),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let created: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(created["integration"]["name"], "Second Passkeys");
    assert_eq!(
        created["integration"]["credential"]["kind"],
        "client_secret"
    );
    let second = created["integration"]["id"].as_str().unwrap().to_owned();
    // The certificate of the same app registration replaces the secret.
    let sim = sandbox.dir().join("entra-sim");
    let rotated = api.ok(&[
        "integrations",
        "rotate-credential",
        &second,
        "--certificate",
        sim.join("client-cert.pem").to_str().unwrap(),
        "--private-key",
        sim.join("client-key.pem").to_str().unwrap(),
    ]);
    assert!(rotated.contains("certificate"), "{rotated}");
    let after = api.json(&["integrations", "show", &second]);
    assert_eq!(after["credential"]["kind"], "certificate");
    // Two integrations: the user list needs to be told which.
    let output = api.run(&["users", "list"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--integration"),
        "{}",
        stderr(&output)
    );
    let deleted = api.ok(&[
        "integrations",
        "delete",
        &second,
        "--confirm",
        "Second Passkeys",
    ]);
    assert!(deleted.contains("deleted"), "{deleted}");

    // Settings.
    let saved = api.ok(&[
        "integrations",
        "restrict-domains",
        &integration,
        "Contoso.com",
    ]);
    assert!(
        saved.contains("Restrict domains saved successfully"),
        "{saved}"
    );
    assert!(saved.contains("domains: contoso.com"), "{saved}");
    let preflight = api.ok(&["integrations", "preflight", &integration]);
    assert!(preflight.contains("method_enabled"), "{preflight}");
    let enabled = api.json(&["integrations", "native-login", &integration, "enable"]);
    assert_eq!(enabled["native_login_enabled"], true);
    let disabled = api.json(&["integrations", "native-login", &integration, "disable"]);
    assert_eq!(disabled["native_login_enabled"], false);
    let zip = sandbox.dir().join("client.zip");
    let wrote = api.ok(&[
        "integrations",
        "desktop-client",
        &integration,
        "--output",
        zip.to_str().unwrap(),
    ]);
    assert!(wrote.contains("install token"), "{wrote}");
    let bytes = std::fs::read(&zip).unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"), "not a zip");
    assert_eq!(
        std::fs::metadata(&zip).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never overwritten.
    let output = api.run(&[
        "integrations",
        "desktop-client",
        &integration,
        "--output",
        zip.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("never overwritten"),
        "{}",
        stderr(&output)
    );

    // A sync, waited for with its progress.
    let output = api.run(&["integrations", "sync", &integration, "--wait"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("directory_sync succeeded"),
        "{}",
        stderr(&output)
    );

    // Users: the tabs, search, pages.
    let page = api.json(&["users", "list", "--state", "pending", "--limit", "2"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next"].is_string());
    assert!(page["counts"]["pending"].as_i64().unwrap() >= 2);
    let all = api.json(&["users", "list", "--limit", "3", "--all"]);
    let total = page["counts"]["pending"].as_i64().unwrap()
        + page["counts"]["paired_with_keybridge"].as_i64().unwrap()
        + page["counts"]["paired_with_entra"].as_i64().unwrap();
    assert_eq!(all["items"].as_array().unwrap().len() as i64, total);
    let found = api.ok(&["users", "list", "--search", username]);
    assert!(found.contains(username), "{found}");
    assert!(found.starts_with("pending "), "{found}");
    let shown = api.ok(&["users", "show", user_id]);
    assert!(shown.contains(username), "{shown}");

    // No phone yet.
    assert_eq!(
        api.json(&["users", "phones", user_id]),
        serde_json::json!([])
    );
    // Entra's FIDO2 methods: none of them keybridge's; deleting an unknown one says it is gone.
    let methods = api.json(&["users", "methods", user_id]);
    let methods = methods.as_array().expect("a list");
    assert!(methods.iter().all(|m| m["ours"] == false), "{methods:?}");
    let output = api.run(&[
        "users",
        "delete-method",
        user_id,
        "--method",
        "AAAAAAAAAAAA",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("404 method_not_found"),
        "{}",
        stderr(&output)
    );
    if let Some(id) = methods.first().and_then(|m| m["id"].as_str()) {
        let output = api.run(&["users", "delete-method", user_id, "--method", id]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(String::from_utf8_lossy(&output.stdout).contains("from Microsoft Entra"));
        assert_eq!(
            api.json(&["users", "methods", user_id])
                .as_array()
                .map(Vec::len),
            Some(methods.len() - 1)
        );
    }
    let output = api.run(&[
        "users",
        "unpair",
        user_id,
        "--phone",
        "00000000-0000-4000-8000-000000000000",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("404 not_found"),
        "{}",
        stderr(&output)
    );
    let output = api.run(&[
        "workstations",
        "show",
        "00000000-0000-4000-8000-000000000000",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("404 not_found"),
        "{}",
        stderr(&output)
    );

    // An invitation prints its link on stdout.
    let link = api.ok(&["users", "invite", user_id]);
    let link = link.trim();
    assert!(
        link.starts_with("https://localhost:") && link.contains("/invite/"),
        "{link}"
    );
    let invites = api.ok(&["users", "invites", user_id]);
    assert!(invites.contains("open"), "{invites}");
    api.ok(&["users", "revoke-invite", user_id]);
    let invites = api.json(&["users", "invites", user_id]);
    assert_eq!(invites[0]["status"], "revoked");

    // Jobs.
    let jobs = api.json(&["jobs", "list", "--kind", "directory_sync"]);
    let job = jobs["items"][0]["id"].as_str().unwrap().to_owned();
    let shown = api.ok(&["jobs", "show", &job]);
    assert!(shown.contains("succeeded"), "{shown}");
    let output = api.run(&["jobs", "cancel", &job]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("job_state"), "{}", stderr(&output));

    // Tokens over the API.
    let output = api.run(&["tokens", "create", "--name", "desk", "--role", "auditor"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let new_token = stdout(&output).trim().to_owned();
    assert!(new_token.starts_with("kbt_"), "{new_token}");
    let tokens = api.json(&["tokens", "list"]);
    let desk = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "desk")
        .unwrap();
    let desk_id = desk["id"].as_str().unwrap().to_owned();
    let listed = api.run_with(
        &["integrations", "list"],
        &[("KEYBRIDGE_API_TOKEN", &new_token)],
        None,
    );
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    api.ok(&["tokens", "revoke", &desk_id]);
    let refused = api.run_with(
        &["integrations", "list"],
        &[("KEYBRIDGE_API_TOKEN", &new_token)],
        None,
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("401 invalid_token"),
        "{}",
        stderr(&refused)
    );

    // Audit over the API: the CLI's own actions are in it.
    let events = api.json(&["audit", "list", "--action", "user.invite"]);
    assert_eq!(events["items"][0]["target"], format!("user:{user_id}"));
    let table = api.ok(&["audit", "list", "--limit", "5"]);
    assert!(table.starts_with("SEQ"), "{table}");
    let csv = api.ok(&["audit", "export", "--format", "csv"]);
    assert!(csv.lines().count() > 5, "{csv}");
    assert!(csv.contains("integration.restrict_domains"), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_print_the_api_message_and_exit_2() {
    let sandbox = start_sandbox();
    let api = Api { sandbox: &sandbox };
    let integration = api.json(&["integrations", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A wrong token: the API's 401 message.
    let output = api.run_with(
        &["integrations", "list"],
        &[("KEYBRIDGE_API_TOKEN", "kbt_not-a-real-token")],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("the API token is not valid"), "{err}");
    assert!(err.contains("401 invalid_token; request id "), "{err}");
    assert!(stdout(&output).is_empty());

    // No token at all: said before anything is sent.
    let output = api.run_with(
        &["integrations", "list"],
        &[("KEYBRIDGE_API_TOKEN", "")],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no API token given"),
        "{}",
        stderr(&output)
    );

    // A helpdesk token may read but not change integration settings.
    let helpdesk = api.ok(&["tokens", "create", "--name", "desk", "--role", "helpdesk"]);
    let token_file = sandbox.dir().join("helpdesk.token");
    std::fs::write(&token_file, helpdesk.trim()).unwrap();
    let file = token_file.to_str().unwrap();
    let read = api.run(&["integrations", "list", "--token-file", file]);
    assert_eq!(read.status.code(), Some(0), "{}", stderr(&read));
    let output = api.run(&[
        "integrations",
        "native-login",
        &integration,
        "enable",
        "--token-file",
        file,
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("403 forbidden"), "{err}");
    assert!(err.contains("helpdesk"), "{err}");
    let shown = api.json(&["integrations", "show", &integration]);
    assert_eq!(shown["native_login_enabled"], false);

    // Bad input: the API's message naming the field, exit 2, nothing saved.
    let output = api.run(&[
        "integrations",
        "restrict-domains",
        &integration,
        "contoso.com",
        "https://fabrikam.com/login",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("domains"), "{err}");
    assert!(err.contains("422 invalid_input"), "{err}");
    assert!(err.contains("https://"), "{err}");
    let shown = api.json(&["integrations", "show", &integration]);
    assert_eq!(shown["restrict_domains"], serde_json::json!([]));
    let output = api.run_with(
        &[
            "integrations",
            "create",
            "--name",
            "Contoso",
            "--tenant-id",
            "contoso",
            "--client-id",
            "0b1c9a52-0000-4000-8000-000000000000",
            "--secret-file",
            "-",
        ],
        &[],
        Some("a-secret"),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("tenant_id"), "{}", stderr(&output));
    assert!(stderr(&output).contains("GUID"), "{}", stderr(&output));
    // Bad arguments are refused before anything is sent.
    let output = api.run(&["users", "list", "--state", "paired"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("paired_with_keybridge"),
        "{}",
        stderr(&output)
    );
    let output = api.run(&[
        "integrations",
        "create",
        "--name",
        "X",
        "--tenant-id",
        "t",
        "--client-id",
        "c",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--secret-file"),
        "{}",
        stderr(&output)
    );
    let output = api.run_with(
        &["jobs", "list"],
        &[("KEYBRIDGE_API_URL", "http://localhost:1")],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("HTTPS only"),
        "{}",
        stderr(&output)
    );
    let output = api.run(&["jobs", "show", "no-such-job"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("404 not_found"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_trusted_by_its_pin_or_ca_and_never_blindly() {
    let sandbox = start_sandbox();
    let api = Api { sandbox: &sandbox };
    let no_ca = [("KEYBRIDGE_API_CA", "")];

    // The right pin alone is enough.
    let output = api.run_with(&["jobs", "list", "--pin", &sandbox.tls_pin], &no_ca, None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // Another pin: refused, naming both keys, nothing sent.
    let mut wrong = sandbox.tls_pin.clone().into_bytes();
    let i = "sha256/".len();
    wrong[i] = if wrong[i] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    let output = api.run_with(
        &[
            "tokens", "create", "--name", "x", "--role", "admin", "--pin", &wrong,
        ],
        &no_ca,
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("presented the TLS key {}", sandbox.tls_pin)),
        "{err}"
    );
    assert!(err.contains(&format!("not the pinned {wrong}")), "{err}");
    let tokens = api.json(&["tokens", "list"]);
    assert!(tokens.as_array().unwrap().iter().all(|t| t["name"] != "x"));

    // No CA and no pin: the self-made certificate is not trusted, and the message says what to pass.
    let output = api.run_with(&["jobs", "list"], &no_ca, None);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("--ca-file") && err.contains("--pin"), "{err}");

    // Another CA: refused too.
    let other_ca = sandbox.dir().join("entra-sim/ca.pem");
    let output = api.run_with(
        &["jobs", "list"],
        &[("KEYBRIDGE_API_CA", other_ca.to_str().unwrap())],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not trusted"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_invitations_by_csv_through_the_cli() {
    let sandbox = start_sandbox();
    let api = Api { sandbox: &sandbox };
    sandbox.a_user().await;
    let list = api.json(&["users", "list", "--state", "pending", "--limit", "100"]);
    let names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["entra_status"] == "active"
                && u["username"].as_str().is_some_and(|n| !n.contains('#'))
        })
        .take(2)
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    let dir = tempfile::tempdir().unwrap();

    // A bad file is refused whole: exit 2, every bad line named, nothing queued.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("email\n{}\nnot-an-address\n", names[0])).unwrap();
    let output = api.run(&["users", "invite", "--csv", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("line 3"), "{}", stderr(&output));
    let jobs = api.json(&["jobs", "list", "--kind", "bulk_invite"]);
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(0), "{jobs}");

    // A good file: the job runs, the links land in a file only the owner can read.
    let good = dir.path().join("users.csv");
    std::fs::write(&good, format!("email\n{}\n{}\n", names[0], names[1])).unwrap();
    let links = dir.path().join("links.csv");
    let output = api.run(&[
        "users",
        "invite",
        "--csv",
        good.to_str().unwrap(),
        "--links-to",
        links.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("bulk invitation queued"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        std::fs::metadata(&links).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&links).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!(rows[0], "email,link,expires_at");
    for (row, name) in rows[1..].iter().zip(&names) {
        assert!(row.starts_with(&format!("{name},https://")), "{row}");
        assert!(row.contains("/invite/"), "{row}");
    }
}
