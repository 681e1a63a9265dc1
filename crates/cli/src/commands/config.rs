//! `keybridge config`: check the configuration and list the settings.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use keybridge_config::{Config, SETTINGS, SecretKeySource, redact_url_password};

use super::EXIT_FOUND_PROBLEM;

/// `keybridge config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file and environment; print the effective settings.
    Check,
    /// List every setting with its environment variable and default.
    Settings,
}

/// Runs `keybridge config`.
pub fn run(command: ConfigCommand, file: Option<&Path>) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check => Ok(check(file)),
        ConfigCommand::Settings => {
            for setting in SETTINGS {
                println!("{}  (env {})", setting.key, setting.env);
                println!(
                    "    {}\n",
                    setting.doc.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(file: Option<&Path>) -> ExitCode {
    let env_names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    for (name, suggestion) in
        keybridge_config::unknown_env_vars(env_names.iter().map(String::as_str))
    {
        match suggestion {
            Some(known) => {
                eprintln!("warning: {name} is not a keybridge setting; did you mean {known}?")
            }
            None => eprintln!("warning: {name} is not a keybridge setting and is ignored"),
        }
    }
    match Config::load(file) {
        Ok(config) => {
            let origin = file.map_or_else(
                || "no configuration file; defaults and environment".to_string(),
                |f| f.display().to_string(),
            );
            println!("configuration OK ({origin})");
            println!("  data_dir                 {}", config.data_dir.display());
            println!(
                "  database.url             {}",
                redact_url_password(&config.database.url)
            );
            println!(
                "  database.max_connections {}",
                config.database.max_connections
            );
            match &config.secrets.current {
                SecretKeySource::Inline(_) => {
                    println!("  secrets.key              (set, not shown)")
                }
                SecretKeySource::File(path) => {
                    println!("  secrets.key_file         {}", path.display())
                }
            }
            println!("  server.listen            {}", config.server.listen);
            println!("  server.public_url        {}", config.server.public_url);
            println!("  entra                    {}", config.entra.cloud);
            println!(
                "  entra.fido2_pacing       {}",
                config.entra.fido2_pacing.as_str()
            );
            println!("  jobs.workers             {}", config.jobs.workers);
            println!("  log.format               {:?}", config.log.format);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!(
                "{} problem{} found; `keybridge config settings` lists every setting.",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::from(EXIT_FOUND_PROBLEM)
        }
    }
}
