//! `keybridge admin` against a real SQLite database, as an operator runs it.

use std::path::Path;

use keybridge_store::{
    IntegrationCredential, KeyRing, NewAuditEvent, NewIntegration, SecretString, Store,
    StoreOptions,
};

use crate::cli::{keybridge_with_env, stderr, stdout};

fn env_for(data_dir: &Path) -> Vec<(&'static str, String)> {
    vec![("KEYBRIDGE_DATA_DIR", data_dir.display().to_string())]
}

fn run(args: &[&str], env: &[(&'static str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    keybridge_with_env(args, &env)
}

async fn open(data_dir: &Path, current: &Path, previous: &[&Path]) -> Store {
    let current = keybridge_store::read_key_file(current).unwrap();
    let previous = previous
        .iter()
        .map(|p| keybridge_store::read_key_file(p).unwrap())
        .collect();
    let url = format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("keybridge.db").display()
    );
    Store::connect(&url, StoreOptions::new(KeyRing::new(current, previous)))
        .await
        .unwrap()
}

#[tokio::test]
async fn audit_verify_passes_on_an_intact_log_and_exits_1_after_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = env_for(&data);
    // First start: creates the data dir, the key file and the database.
    let output = run(&["admin", "db", "status"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("schema version"),
        "{}",
        stdout(&output)
    );

    let store = open(&data, &data.join("secrets.key"), &[]).await;
    for n in 0..5 {
        store
            .audit()
            .append(
                NewAuditEvent::new("admin@contoso.com", "user_invited").target(format!("user-{n}")),
            )
            .await
            .unwrap();
    }
    let output = run(&["admin", "audit", "verify"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("audit log intact: 5 events"),
        "{}",
        stdout(&output)
    );

    // Someone with database access rewrites who did it.
    sqlx::query("UPDATE audit_events SET actor = 'intern@contoso.com' WHERE seq = 3")
        .execute(store.raw_pool())
        .await
        .unwrap();
    store.close().await;
    let output = run(&["admin", "audit", "verify"], &env);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).contains("TAMPERED"), "{}", stdout(&output));
    assert!(stdout(&output).contains('3'), "{}", stdout(&output));
}

#[tokio::test]
async fn audit_export_writes_csv_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = env_for(&data);
    assert!(run(&["admin", "db", "status"], &env).status.success());
    let store = open(&data, &data.join("secrets.key"), &[]).await;
    store
        .audit()
        .append(NewAuditEvent::new("admin@contoso.com", "integration_created").target("Contoso"))
        .await
        .unwrap();
    store
        .audit()
        .append(NewAuditEvent::new("sync", "user_discovered").target("alice@contoso.com"))
        .await
        .unwrap();
    store.close().await;

    let output = run(
        &["admin", "audit", "export", "--local", "--format", "json"],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["action"], "integration_created");

    let csv = dir.path().join("audit.csv");
    let output = run(
        &[
            "admin",
            "audit",
            "export",
            "--local",
            "--format",
            "csv",
            "--action",
            "user_discovered",
            "--output",
            csv.to_str().unwrap(),
        ],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].starts_with("seq,at,actor,action"));
    assert!(rows[1].contains("alice@contoso.com"));
}

#[tokio::test]
async fn secrets_key_rotation_moves_every_secret_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old_key = data.join("secrets.key");
    let new_key = dir.path().join("secrets-2026.key");
    let env = env_for(&data);
    assert!(run(&["admin", "db", "status"], &env).status.success());

    let store = open(&data, &old_key, &[]).await;
    store
        .integrations()
        .create(NewIntegration {
            name: "Contoso Passkeys".into(),
            internal_id: "ContosoPasskeys".into(),
            tenant_id: "6f1c1c6e-8c49-4a43-9d3f-2a1b8f7b9d10".into(),
            client_id: "0b7e4c8a-2f55-4c1e-9a3b-5d6e7f809112".into(),
            credential: IntegrationCredential::ClientSecret(SecretString::new("s3cr3t~value")),
            support_email: None,
        })
        .await
        .unwrap();
    store.close().await;

    let output = run(
        &["admin", "secrets", "new-key", new_key.to_str().unwrap()],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !stdout(&output).contains(
            &std::fs::read_to_string(&new_key)
                .unwrap()
                .trim()
                .to_string()
        )
    );

    // The new key is current; the old one is still accepted while rotating.
    let mut rotating = env.clone();
    rotating.push(("KEYBRIDGE_SECRETS_KEY_FILE", new_key.display().to_string()));
    rotating.push((
        "KEYBRIDGE_SECRETS_PREVIOUS_KEY_FILES",
        old_key.display().to_string(),
    ));
    let output = run(&["admin", "secrets", "rotate"], &rotating);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("re-encrypted 1 secrets"),
        "{}",
        stdout(&output)
    );
    let output = run(&["admin", "secrets", "status"], &rotating);
    let status = stdout(&output);
    let new_id = keybridge_store::read_key_file(&new_key)
        .unwrap()
        .id()
        .to_string();
    assert!(
        status.contains(&format!("key {new_id} (current): 1 secrets")),
        "{status}"
    );

    // The old key can go: the secret opens under the new key alone.
    let store = open(&data, &new_key, &[]).await;
    let integrations = store.integrations().list().await.unwrap();
    match &integrations[0].credential {
        IntegrationCredential::ClientSecret(secret) => assert_eq!(secret.expose(), "s3cr3t~value"),
        other => panic!("unexpected credential {other:?}"),
    }
    store.close().await;
}

#[test]
fn an_unreachable_database_is_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = keybridge_with_env(
        &["admin", "db", "status"],
        &[
            ("KEYBRIDGE_DATA_DIR", dir.path().to_str().unwrap()),
            (
                "KEYBRIDGE_DATABASE_URL",
                "postgres://kb:hunter2@127.0.0.1:1/keybridge",
            ),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(
        errors.starts_with("error: cannot connect to the database at"),
        "{errors}"
    );
    assert!(!errors.contains("hunter2"), "{errors}");
    assert!(!errors.contains("panicked"), "{errors}");
}

#[test]
fn an_invalid_configuration_stops_admin_commands_with_every_problem() {
    let output = keybridge_with_env(
        &["admin", "audit", "verify"],
        &[
            ("KEYBRIDGE_DATABASE_URL", "mysql://x"),
            ("KEYBRIDGE_JOBS_WORKERS", "0"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(
        errors.contains("the configuration is not valid"),
        "{errors}"
    );
    assert!(errors.contains("database.url"), "{errors}");
    assert!(errors.contains("jobs.workers"), "{errors}");
}

#[tokio::test]
async fn login_link_makes_a_console_account_and_a_one_time_link() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = env_for(&data);
    let output = run(
        &[
            "admin",
            "login-link",
            "--username",
            "carol",
            "--role",
            "helpdesk",
        ],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let link = stdout(&output).trim().to_owned();
    assert!(
        link.starts_with("https://localhost:8443/console/enrol/"),
        "{link}"
    );
    assert!(
        stderr(&output).contains("new console account \"carol\" (role helpdesk)"),
        "{}",
        stderr(&output)
    );

    // A second link for the same account keeps its role and says so.
    let output = run(&["admin", "login-link", "--username", "carol"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_ne!(stdout(&output).trim(), link);
    assert!(
        stderr(&output).contains("keeps its role helpdesk"),
        "{}",
        stderr(&output)
    );

    let store = open(&data, &data.join("secrets.key"), &[]).await;
    let carol = store
        .admins()
        .find_by_username("carol")
        .await
        .unwrap()
        .expect("account");
    assert_eq!(carol.role, keybridge_store::Role::Helpdesk);
    store.close().await;

    let output = run(&["admin", "login-link", "--role", "owner"], &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--role"), "{}", stderr(&output));
}
