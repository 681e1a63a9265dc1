use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

fn resolve_text(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
    let mut raw = RawConfig::from_toml(text).map_err(|message| {
        vec![ConfigError::File {
            path: "test.toml".into(),
            message,
        }]
    })?;
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    raw.apply_env(|name| env.get(name).cloned())?;
    raw.resolve(Path::new("/var/lib/keybridge"))
}

fn messages(errors: Vec<ConfigError>) -> Vec<String> {
    errors.into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn no_file_and_no_environment_gives_sqlite_in_the_data_dir() {
    let config = resolve_text("", &[]).unwrap();
    assert_eq!(config.data_dir, Path::new("/var/lib/keybridge"));
    assert_eq!(
        config.database.url,
        "sqlite:///var/lib/keybridge/keybridge.db?mode=rwc"
    );
    assert_eq!(
        config.secrets.current,
        SecretKeySource::File("/var/lib/keybridge/secrets.key".into())
    );
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(config.server.public_url.as_str(), "https://localhost:8443/");
    assert_eq!(config.jobs.workers, 4);
    assert_eq!(config.log.format, LogFormat::Pretty);
}

#[test]
fn environment_wins_over_the_file() {
    let config = resolve_text(
        "[database]\nurl = \"sqlite:///tmp/a.db\"\n[jobs]\nworkers = 2\n",
        &[
            (
                "KEYBRIDGE_DATABASE_URL",
                "postgres://kb@db.internal/keybridge",
            ),
            ("KEYBRIDGE_LOG_FORMAT", "json"),
        ],
    )
    .unwrap();
    assert_eq!(config.database.url, "postgres://kb@db.internal/keybridge");
    assert_eq!(config.jobs.workers, 2);
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn an_unknown_key_is_named_with_its_section() {
    let errors = messages(resolve_text("[database]\nurll = \"x\"\n", &[]).unwrap_err());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("database"), "{}", errors[0]);
    assert!(errors[0].contains("unknown field `urll`"), "{}", errors[0]);
    assert!(
        errors[0].contains("expected `url` or `max_connections`"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("line 2"), "{}", errors[0]);
}

#[test]
fn a_wrong_type_names_the_key_and_the_line() {
    let errors = messages(resolve_text("[jobs]\n\nworkers = \"four\"\n", &[]).unwrap_err());
    assert!(errors[0].contains("jobs.workers"), "{}", errors[0]);
    assert!(errors[0].contains("line 3"), "{}", errors[0]);
}

#[test]
fn every_bad_value_is_reported_at_once_with_its_source() {
    let errors = messages(
        resolve_text(
            "[database]\nurl = \"mysql://x\"\n[server]\nlisten = \"8443\"\n",
            &[("KEYBRIDGE_JOBS_WORKERS", "0")],
        )
        .unwrap_err(),
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`database.url` starts with \"mysql\""))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`server.listen` is \"8443\""))
    );
    assert!(errors.iter().any(|e| {
        e.starts_with("environment variable KEYBRIDGE_JOBS_WORKERS: `jobs.workers` is 0")
    }));
}

#[test]
fn a_malformed_environment_number_names_the_variable() {
    let errors = messages(resolve_text("", &[("KEYBRIDGE_JOBS_LEASE_SECONDS", "1m")]).unwrap_err());
    assert_eq!(
        errors,
        vec![
            "environment variable KEYBRIDGE_JOBS_LEASE_SECONDS: `jobs.lease_seconds` is \"1m\": expected a whole number"
        ]
    );
}

#[test]
fn the_secrets_key_must_be_32_bytes_of_base64_and_is_never_printed() {
    let errors = messages(resolve_text("", &[("KEYBRIDGE_SECRETS_KEY", "c2hvcnQ=")]).unwrap_err());
    assert!(errors[0].contains("decodes to 5 bytes"), "{}", errors[0]);
    assert!(!errors[0].contains("c2hvcnQ"));

    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let config = resolve_text("", &[("KEYBRIDGE_SECRETS_KEY", key)]).unwrap();
    assert_eq!(
        config.secrets.current,
        SecretKeySource::Inline((0..32).collect())
    );
    assert!(!format!("{config:?}").contains(key));
}

#[test]
fn key_and_key_file_together_are_refused() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let errors = messages(
        resolve_text(
            &format!("[secrets]\nkey = \"{key}\"\nkey_file = \"/k\"\n"),
            &[],
        )
        .unwrap_err(),
    );
    assert!(errors[0].contains("both set"), "{}", errors[0]);
}

#[test]
fn plain_http_public_url_is_refused_except_on_loopback() {
    let errors = messages(
        resolve_text("[server]\npublic_url = \"http://kb.example.com\"\n", &[]).unwrap_err(),
    );
    assert!(errors[0].contains("use https://"), "{}", errors[0]);
    let config = resolve_text("[server]\npublic_url = \"http://localhost:8080\"\n", &[]).unwrap();
    assert_eq!(config.server.public_url.as_str(), "http://localhost:8080/");
}

#[test]
fn tls_cert_without_key_is_refused() {
    let errors = messages(resolve_text("[server]\ntls_cert = \"/c.pem\"\n", &[]).unwrap_err());
    assert!(
        errors[0].contains("without `server.tls_key`"),
        "{}",
        errors[0]
    );
}

#[test]
fn database_password_is_redacted_in_errors_and_debug() {
    let errors = messages(
        resolve_text("[database]\nurl = \"postgres://kb:hunter2@/x\"\n", &[]).unwrap_err(),
    );
    assert!(!errors[0].contains("hunter2"), "{}", errors[0]);
    let config = resolve_text("[database]\nurl = \"postgres://kb:hunter2@db/x\"\n", &[]).unwrap();
    let debug = format!("{:?}", config.database);
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("***"), "{debug}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keybridge.toml");
    std::fs::write(&path, "[jobs]\nworkers = 0\n").unwrap();
    let mut raw = RawConfig::from_file(&path).unwrap();
    raw.apply_env(|_| None).unwrap();
    let errors = messages(raw.resolve(dir.path()).unwrap_err());
    assert_eq!(
        errors,
        vec![format!(
            "{}: `jobs.workers` is 0: expected a number from 1 to 256",
            path.display()
        )]
    );
    let missing = RawConfig::from_file(&dir.path().join("nope.toml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("cannot read the configuration file")
    );
}

#[test]
fn unknown_environment_variables_get_a_suggestion() {
    let unknown = unknown_env_vars([
        "KEYBRIDGE_DATABSE_URL",
        "KEYBRIDGE_DATABASE_URL",
        "KEYBRIDGE_DEVICE_PIN",
        "KEYBRIDGE_SOMETHING_ELSE_ENTIRELY",
        "PATH",
    ]);
    assert_eq!(
        unknown,
        vec![
            (
                "KEYBRIDGE_DATABSE_URL".to_string(),
                Some("KEYBRIDGE_DATABASE_URL")
            ),
            ("KEYBRIDGE_SOMETHING_ELSE_ENTIRELY".to_string(), None),
        ]
    );
}

#[test]
fn every_setting_round_trips_through_its_environment_variable() {
    // Each setting's env var must land on its own key: a typo in the table would
    // silently set another field.
    let values: &[(&str, &str)] = &[
        ("data_dir", "/srv/kb"),
        ("database.url", "sqlite:///srv/kb/x.db"),
        ("database.max_connections", "7"),
        (
            "secrets.key",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("secrets.key_file", "/srv/kb/k"),
        ("secrets.previous_key_files", "/a:/b"),
        ("server.listen", "0.0.0.0:9443"),
        ("server.public_url", "https://kb.example.com/"),
        ("server.tls_cert", "/c.pem"),
        ("server.tls_key", "/k.pem"),
        ("server.public_metrics", "true"),
        ("entra.cloud", "china"),
        ("entra.authority_url", "https://localhost:9000"),
        ("entra.graph_url", "https://localhost:9000/v1.0"),
        ("entra.ca_file", "/srv/kb/ca.pem"),
        ("entra.authentication_requests_per_10s", "50"),
        ("entra.fido2_pacing", "reports-budget"),
        ("jobs.workers", "3"),
        ("jobs.max_attempts", "5"),
        ("jobs.lease_seconds", "30"),
        ("console.session_idle_minutes", "15"),
        ("console.session_max_hours", "8"),
        ("log.format", "json"),
        ("log.level", "debug"),
        ("smtp.host", "mail.example.com"),
        ("smtp.port", "2525"),
        ("smtp.security", "tls"),
        ("smtp.username", "kb"),
        ("smtp.password_file", "/srv/kb/smtp.pass"),
        ("smtp.password", "s3cret"),
        ("smtp.from", "keybridge@example.com"),
        ("smtp.reply_to", "help@example.com"),
        ("smtp.ca_file", "/srv/kb/smtp-ca.pem"),
    ];
    assert_eq!(values.len(), SETTINGS.len());
    for setting in SETTINGS {
        let (_, value) = values.iter().find(|(k, _)| *k == setting.key).unwrap();
        let mut raw = RawConfig::default();
        raw.apply_env(|name| (name == setting.env).then(|| value.to_string()))
            .unwrap();
        assert!(
            (setting.is_set)(&raw),
            "{} did not set its key",
            setting.env
        );
        let others_set = SETTINGS
            .iter()
            .filter(|s| s.key != setting.key && (s.is_set)(&raw))
            .count();
        assert_eq!(others_set, 0, "{} set another key too", setting.env);
        assert_eq!(
            raw.sources.get(setting.key),
            Some(&Source::Env(setting.env))
        );
    }
}

#[test]
fn redaction_handles_urls_that_do_not_parse() {
    assert_eq!(
        redact_url_password("postgres://kb:p@ss:w@rd@db:5432/x?sslmode=require"),
        "postgres://kb:***@db:5432/x?sslmode=require"
    );
    assert_eq!(
        redact_url_password("postgres://kb@db/x"),
        "postgres://kb@db/x"
    );
    assert_eq!(
        redact_url_password("sqlite:///a:b@c/x.db"),
        "sqlite:///a:b@c/x.db"
    );
    assert_eq!(redact_url_password("not a url"), "not a url");
}

#[test]
fn docs_list_every_setting_with_its_variable() {
    // docs/configuration.md is what admins read; it must not fall behind the code.
    let docs = include_str!("../../../docs/configuration.md");
    for setting in SETTINGS {
        let row = format!("| `{}` | `{}` |", setting.key, setting.env);
        assert!(
            docs.contains(&row),
            "docs/configuration.md lacks the row {row}"
        );
    }
    for var in OTHER_ENV_VARS {
        assert!(
            docs.contains(var),
            "docs/configuration.md does not mention {var}"
        );
    }
}

#[test]
fn entra_defaults_to_the_global_cloud_and_takes_custom_endpoints() {
    let config = resolve_text("", &[]).unwrap();
    assert_eq!(config.entra.cloud, EntraCloud::Global);
    let config = resolve_text("[entra]\ncloud = \"us_government\"\n", &[]).unwrap();
    assert_eq!(config.entra.cloud, EntraCloud::UsGovernment);
    let config = resolve_text(
        "",
        &[
            ("KEYBRIDGE_ENTRA_AUTHORITY_URL", "https://localhost:9443"),
            ("KEYBRIDGE_ENTRA_GRAPH_URL", "https://localhost:9443/v1.0"),
            ("KEYBRIDGE_ENTRA_CA_FILE", "/tmp/sim/ca.pem"),
        ],
    )
    .unwrap();
    match &config.entra.cloud {
        EntraCloud::Custom {
            authority_url,
            graph_url,
        } => {
            assert_eq!(authority_url.as_str(), "https://localhost:9443/");
            assert_eq!(graph_url.as_str(), "https://localhost:9443/v1.0");
        }
        other => panic!("expected custom endpoints, got {other:?}"),
    }
    assert_eq!(
        config.entra.ca_file.as_deref(),
        Some(Path::new("/tmp/sim/ca.pem"))
    );
}

#[test]
fn metrics_need_a_token_unless_made_public() {
    assert!(!resolve_text("", &[]).unwrap().server.public_metrics);
    let config = resolve_text("[server]\npublic_metrics = true\n", &[]).unwrap();
    assert!(config.server.public_metrics);
    let config = resolve_text(
        "[server]\npublic_metrics = true\n",
        &[("KEYBRIDGE_SERVER_PUBLIC_METRICS", "false")],
    )
    .unwrap();
    assert!(!config.server.public_metrics, "env wins");
    let errors =
        messages(resolve_text("", &[("KEYBRIDGE_SERVER_PUBLIC_METRICS", "yes")]).unwrap_err());
    assert!(
        errors[0].contains("KEYBRIDGE_SERVER_PUBLIC_METRICS")
            && errors[0].contains("expected true or false"),
        "{}",
        errors[0]
    );
    let errors = messages(resolve_text("[server]\npublic_metrics = \"yes\"\n", &[]).unwrap_err());
    assert!(errors[0].contains("public_metrics"), "{}", errors[0]);
}

#[test]
fn fido2_pacing_is_auto_unless_set_and_a_wrong_value_is_named() {
    assert_eq!(
        resolve_text("", &[]).unwrap().entra.fido2_pacing,
        Fido2Pacing::Auto
    );
    let config = resolve_text("[entra]\nfido2_pacing = \"reports-budget\"\n", &[]).unwrap();
    assert_eq!(config.entra.fido2_pacing, Fido2Pacing::ReportsBudget);
    let config = resolve_text(
        "[entra]\nfido2_pacing = \"reports-budget\"\n",
        &[("KEYBRIDGE_ENTRA_FIDO2_PACING", "auto")],
    )
    .unwrap();
    assert_eq!(config.entra.fido2_pacing, Fido2Pacing::Auto, "env wins");
    let errors =
        messages(resolve_text("", &[("KEYBRIDGE_ENTRA_FIDO2_PACING", "off")]).unwrap_err());
    assert!(
        errors[0].contains("`entra.fido2_pacing` is \"off\": expected auto or reports-budget"),
        "{}",
        errors[0]
    );
    let errors = messages(resolve_text("[entra]\nfido2_pacing = \"never\"\n", &[]).unwrap_err());
    assert!(
        errors[0].contains("fido2_pacing") && errors[0].contains("reports-budget"),
        "{}",
        errors[0]
    );
}

#[test]
fn entra_endpoint_mistakes_are_named() {
    let errors = messages(resolve_text("[entra]\ncloud = \"germany\"\n", &[]).unwrap_err());
    assert!(
        errors[0].contains("`entra.cloud` is \"germany\""),
        "{}",
        errors[0]
    );
    let errors = messages(
        resolve_text("[entra]\nauthority_url = \"https://localhost:9443\"\n", &[]).unwrap_err(),
    );
    assert!(
        errors[0].contains("`entra.graph_url` is missing"),
        "{}",
        errors[0]
    );
    let errors = messages(
        resolve_text(
            "[entra]\nauthority_url = \"http://login.example.com\"\ngraph_url = \"https://g.example.com/v1.0\"\n",
            &[],
        )
        .unwrap_err(),
    );
    assert!(
        errors[0].contains("only reached over https://"),
        "{}",
        errors[0]
    );
}

#[test]
fn console_session_timeouts_default_and_are_checked() {
    let config = resolve_text("", &[]).unwrap();
    assert_eq!(config.console.session_idle, Duration::from_secs(30 * 60));
    assert_eq!(config.console.session_max, Duration::from_secs(12 * 3600));
    let config = resolve_text(
        "[console]\nsession_idle_minutes = 5\nsession_max_hours = 2\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.console.session_idle, Duration::from_secs(5 * 60));
    assert_eq!(config.console.session_max, Duration::from_secs(2 * 3600));
    let errors = messages(
        resolve_text(
            "[console]\nsession_idle_minutes = 0\n",
            &[("KEYBRIDGE_CONSOLE_SESSION_MAX_HOURS", "500")],
        )
        .unwrap_err(),
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.contains(
            "`console.session_idle_minutes` is 0: expected a number of minutes from 1 to 1440"
        )),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains(
            "`console.session_max_hours` is 500: expected a number of hours from 1 to 168"
        )),
        "{errors:#?}"
    );
}

#[test]
fn smtp_is_off_by_default_and_takes_its_defaults_when_on() {
    assert_eq!(resolve_text("", &[]).unwrap().smtp, None);
    let config = resolve_text(
        "[smtp]\nhost = \"mail.example.com\"\nfrom = \"keybridge <kb@example.com>\"\n",
        &[],
    )
    .unwrap();
    let smtp = config.smtp.unwrap();
    assert_eq!(smtp.host, "mail.example.com");
    assert_eq!(smtp.port, 587);
    assert_eq!(smtp.security, SmtpSecurity::StartTls);
    assert_eq!(smtp.username, None);
    let tls = resolve_text(
        "[smtp]\nhost = \"mail.example.com\"\nsecurity = \"tls\"\nfrom = \"kb@example.com\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(tls.smtp.unwrap().port, 465);
}

#[test]
fn plain_smtp_is_refused_except_to_a_loopback_relay() {
    let errors = messages(
        resolve_text(
            "[smtp]\nhost = \"mail.example.com\"\nsecurity = \"none\"\nfrom = \"kb@example.com\"\n",
            &[],
        )
        .unwrap_err(),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`smtp.security` is \"none\" for the host \"mail.example.com\"")
            && errors[0].contains("use starttls or tls"),
        "{errors:?}"
    );
    let local = resolve_text(
        "[smtp]\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\nfrom = \"kb@example.com\"\n",
        &[],
    )
    .unwrap();
    let smtp = local.smtp.unwrap();
    assert_eq!((smtp.security, smtp.port), (SmtpSecurity::None, 2525));
}

#[test]
fn smtp_mistakes_are_each_named_by_key() {
    let errors = messages(
        resolve_text(
            "[smtp]\nhost = \"mail.example.com\"\nsecurity = \"ssl\"\nusername = \"kb\"\nfrom = \"keybridge\"\nreply_to = \"help@@example.com\"\n",
            &[],
        )
        .unwrap_err(),
    );
    for key in [
        "`smtp.security` is \"ssl\"",
        "`smtp.username` is set without a password",
        "`smtp.from` is \"keybridge\"",
        "`smtp.reply_to` is \"help@@example.com\"",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(key)),
            "{key} missing in {errors:?}"
        );
    }
    let missing = messages(resolve_text("[smtp]\nfrom = \"kb@example.com\"\n", &[]).unwrap_err());
    assert!(missing[0].contains("`smtp.host` is missing"), "{missing:?}");
    let no_from = messages(resolve_text("[smtp]\nhost = \"mail.example.com\"\n", &[]).unwrap_err());
    assert!(no_from[0].contains("`smtp.from` is missing"), "{no_from:?}");
}

#[test]
fn the_smtp_password_comes_from_the_environment_or_a_file_and_is_never_printed() {
    let in_file = RawConfig::from_toml("[smtp]\npassword = \"hunter2\"\n").unwrap_err();
    assert!(in_file.contains("unknown field `password`"), "{in_file}");
    let config = resolve_text(
        "[smtp]\nhost = \"mail.example.com\"\nusername = \"kb\"\nfrom = \"kb@example.com\"\n",
        &[("KEYBRIDGE_SMTP_PASSWORD", "hunter2")],
    )
    .unwrap();
    assert_eq!(
        config.smtp.as_ref().unwrap().password,
        Some(SmtpPassword::Inline("hunter2".into()))
    );
    assert!(!format!("{config:?}").contains("hunter2"));
    let both = messages(
        resolve_text(
            "[smtp]\nhost = \"mail.example.com\"\nusername = \"kb\"\npassword_file = \"/p\"\nfrom = \"kb@example.com\"\n",
            &[("KEYBRIDGE_SMTP_PASSWORD", "hunter2")],
        )
        .unwrap_err(),
    );
    assert!(both[0].contains("are both set"), "{both:?}");
    assert!(!both.concat().contains("hunter2"));
}

#[test]
fn the_graph_authentication_budget_defaults_to_the_client_and_is_bounded() {
    let config = resolve_text("", &[]).unwrap();
    assert_eq!(config.entra.authentication_requests_per_10s, None);
    let off = resolve_text("[entra]\nauthentication_requests_per_10s = 0\n", &[]).unwrap();
    assert_eq!(off.entra.authentication_requests_per_10s, Some(0));
    let errors = messages(
        resolve_text("[entra]\nauthentication_requests_per_10s = 5000\n", &[]).unwrap_err(),
    );
    assert!(
        errors[0].contains("`entra.authentication_requests_per_10s` is 5000"),
        "{errors:?}"
    );
}
