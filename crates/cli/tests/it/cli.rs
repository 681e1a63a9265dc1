use std::path::Path;
use std::process::{Command, Output};

fn keybridge(args: &[&str]) -> Output {
    keybridge_with_env(args, &[])
}

pub fn keybridge_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keybridge"));
    command.args(args);
    // A clean slate: no stray settings from the developer's shell.
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYBRIDGE_") {
            command.env_remove(name);
        }
    }
    command
        .env("HOME", "/nonexistent-home")
        .env_remove("XDG_DATA_HOME");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run keybridge")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let output = keybridge(&["--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    for command in [
        "serve",
        "sandbox",
        "entra-sim",
        "device",
        "workstation",
        "admin",
        "attestation",
        "config",
        "completions",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "--help does not list {command}:\n{help}"
        );
    }
    assert!(help.contains("Exit codes:"), "{help}");
}

#[test]
fn version_names_the_binary_and_the_crate_version() {
    let output = keybridge(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("keybridge {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn workstation_without_enrolment_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = keybridge(&[
        "workstation",
        "--state",
        dir.path().join("ws").to_str().unwrap(),
        "status",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("keybridge workstation enrol --config keybridge.json"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unknown_subcommand_is_a_usage_error() {
    let output = keybridge(&["serv"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("a similar subcommand exists: 'serve'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn completions_are_generated_for_common_shells() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = keybridge(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = stdout(&output);
        assert!(script.contains("keybridge"), "{shell}");
        assert!(
            script.contains("attestation"),
            "{shell} script lacks subcommands"
        );
    }
}

#[test]
fn config_check_accepts_the_defaults_without_a_file() {
    let output = keybridge(&["config", "check"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("configuration OK"), "{text}");
    assert!(
        text.contains("sqlite:///nonexistent-home/.local/share/keybridge/keybridge.db"),
        "{text}"
    );
}

#[test]
fn config_check_names_the_file_key_and_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keybridge.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"localhost\"\n[jobs]\nworkers = 0\n",
    )
    .unwrap();
    let output = keybridge(&["--config", file.to_str().unwrap(), "config", "check"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.contains(&format!(
            "{}: `server.listen` is \"localhost\"",
            file.display()
        )),
        "{errors}"
    );
    assert!(errors.contains("`jobs.workers` is 0"), "{errors}");
    assert!(errors.contains("2 problems found"), "{errors}");
}

#[test]
fn config_check_reports_a_missing_file() {
    let output = keybridge(&["--config", "/nonexistent/keybridge.toml", "config", "check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read the configuration file /nonexistent/keybridge.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn config_check_never_prints_the_secrets_key_and_warns_about_typos() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let output = keybridge_with_env(
        &["config", "check"],
        &[
            ("KEYBRIDGE_SECRETS_KEY", key),
            ("KEYBRIDGE_DATABSE_URL", "sqlite:///x.db"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stdout(&output).contains(key));
    assert!(!stderr(&output).contains(key));
    assert!(
        stderr(&output).contains("did you mean KEYBRIDGE_DATABASE_URL?"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn config_file_from_the_environment_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kb.toml");
    std::fs::write(&file, "data_dir = \"/srv/kb\"\n").unwrap();
    let output = keybridge_with_env(
        &["config", "check"],
        &[("KEYBRIDGE_CONFIG", file.to_str().unwrap())],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("/srv/kb/keybridge.db"));
    assert!(Path::new(&file).exists());
}
