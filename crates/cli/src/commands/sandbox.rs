//! `keybridge sandbox`: a complete local installation in one command. entra-sim runs with a
//! seeded tenant, the server runs on SQLite against it, and the integration is connected
//! through the server's own API, as an admin would do it. Ctrl-C stops both.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use keybridge_config::{Config, SecretKeySource};
use keybridge_entra_sim::{EntraSim, SimConfig, StartInfo};
use keybridge_graph::Cloud;
use keybridge_server::{GraphSettings, Server, ServerOptions};
use keybridge_store::Role;

use super::{load_config, open_store, runtime, wait_for_stop_signal};

/// Arguments of `keybridge sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Directory for everything the sandbox keeps (the emulated tenant, the SQLite database,
    /// keys and certificates); reused on the next start. Default: `sandbox` in the data dir.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Users in the seeded tenant (used when the sandbox is created).
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub users: usize,
    /// Port of the keybridge server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
}

/// The application name the sandbox connects its tenant under.
const SANDBOX_APPLICATION: &str = "Sandbox Passkeys";

/// Runs `keybridge sandbox`.
pub fn run(args: SandboxArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let base = load_config(config_file)?;
    keybridge_server::logging::init(&base.log);
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| base.data_dir.join("sandbox"));
    let port = pick_port(args.port)?;
    let config = sandbox_config(base, &dir, port)?;
    runtime()?.block_on(async move {
        let mut sim_config = SimConfig::new(dir.join("entra-sim"));
        sim_config.users = args.users;
        let sim = EntraSim::start(sim_config)
            .await
            .context("entra-sim could not start")?;
        let info = sim.info().clone();

        let store = open_store(&config).await?;
        let options = ServerOptions {
            graph: GraphSettings {
                cloud: Cloud::custom(&info.base_url, &info.graph_url)?,
                ca_bundle_pem: Some(std::fs::read_to_string(&info.ca_pem).with_context(
                    || format!("cannot read entra-sim's CA {}", info.ca_pem.display()),
                )?),
                ..GraphSettings::default()
            },
            desktop_client_binary: std::env::current_exe().ok(),
            ..ServerOptions::default()
        };
        let public_url = config.server.public_url.clone();
        let bootstrap = keybridge_server::console::login::bootstrap_login_link(&store, &public_url)
            .await
            .context("making the console's first login link")?;
        let server = Server::start(config, store.clone(), options)
            .await
            .context("the keybridge server could not start")?;
        let (_, token) =
            keybridge_server::create_token_locally(&store, "sandbox", Role::Admin, Some(1))
                .await?;
        let connected = connect_integration(&server.base_url, server.ca_file.as_deref(), &token, &info)
            .await
            .context("connecting the sandbox tenant failed")?;

        println!("keybridge sandbox is running (Ctrl-C stops it)");
        println!();
        println!("  keybridge API     {public_url}api/v1   (OpenAPI: {public_url}api/v1/openapi.json)");
        println!("  admin API token   {token}   (admin role, valid 24 h, shown once)");
        if let Some(ca) = &server.ca_file {
            println!("  server CA         {}", ca.display());
        }
        println!("  TLS pin           {}", server.tls_pin);
        if let Some(link) = &bootstrap {
            println!("  console login     {}", link.url);
        }
        println!("  integration       {connected}");
        println!("  entra-sim         {}   (tenant {}, {})", info.base_url, info.tenant_id, info.tenant_domain);
        println!("  entra-sim CA      {}", info.ca_pem.display());
        println!("  data              {}", dir.display());
        println!();
        println!("Try:");
        if let Some(ca) = &server.ca_file {
            println!(
                "  curl --cacert {} -H 'Authorization: Bearer {token}' {public_url}api/v1/integrations",
                ca.display()
            );
        }
        if let Some(ca) = &server.ca_file {
            println!(
                "  KEYBRIDGE_API_TOKEN={token} keybridge admin users list --server {public_url} --ca-file {}",
                ca.display()
            );
        }
        match &bootstrap {
            Some(link) => println!(
                "The web console is at {public_url}console: open the console login link above in a \
                 browser with a passkey to register the first admin \"{}\".",
                link.admin.username
            ),
            None => println!("The web console is at {public_url}console."),
        }

        wait_for_stop_signal().await?;
        eprintln!("stopping the sandbox");
        server.shutdown().await.context("stopping the server")?;
        store.close().await;
        sim.shutdown().await.context("stopping entra-sim")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The configuration the sandbox runs with: the user's logging, everything else local.
fn sandbox_config(mut config: Config, dir: &Path, port: u16) -> anyhow::Result<Config> {
    let data_dir = dir.join("keybridge");
    config.database.url = format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("keybridge.db").display()
    );
    config.secrets.current = SecretKeySource::File(data_dir.join("secrets.key"));
    config.secrets.previous_key_files.clear();
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], port));
    config.server.public_url =
        url::Url::parse(&format!("https://localhost:{port}/")).context("the sandbox URL")?;
    config.server.tls_cert = None;
    config.server.tls_key = None;
    config.data_dir = data_dir;
    Ok(config)
}

/// The requested port, or a free one for 0.
fn pick_port(requested: u16) -> anyhow::Result<u16> {
    if requested != 0 {
        return Ok(requested);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Connects entra-sim's tenant through the server's API unless it is connected already;
/// returns a line describing the integration.
async fn connect_integration(
    base_url: &str,
    server_ca: Option<&Path>,
    token: &str,
    info: &StartInfo,
) -> anyhow::Result<String> {
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = server_ca {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let http = builder.build()?;
    let existing: serde_json::Value = http
        .get(format!("{base_url}/api/v1/integrations"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let listed = existing
        .as_array()
        .or_else(|| existing["items"].as_array())
        .cloned()
        .unwrap_or_default();
    if let Some(found) = listed.iter().find(|i| i["name"] == SANDBOX_APPLICATION) {
        return Ok(format!(
            "{SANDBOX_APPLICATION} ({}), connected earlier",
            found["id"].as_str().unwrap_or("?")
        ));
    }
    let answer = http
        .post(format!("{base_url}/api/v1/integrations"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "name": SANDBOX_APPLICATION,
            "tenant_id": info.tenant_id.to_string(),
            "client_id": info.client_id.to_string(),
            "client_secret": info.client_secret,
        }))
        .send()
        .await?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await?;
    if !status.is_success() {
        anyhow::bail!(
            "the server answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("(no message)")
        );
    }
    let id = body["integration"]["id"].as_str().unwrap_or("?");
    Ok(format!(
        "{SANDBOX_APPLICATION} ({id}), connected now; the first directory sync is queued"
    ))
}
