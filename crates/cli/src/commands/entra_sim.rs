//! `keybridge entra-sim`: runs the Entra emulator until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use keybridge_entra_sim::{EntraSim, SimConfig, ThrottleMode};

/// Arguments of `keybridge entra-sim`.
#[derive(Debug, Args)]
pub struct EntraSimArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Directory for the CA, keys, the app's certificate credential and the tenant snapshot.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Users generated in a new tenant (ignored when DIR already holds one).
    #[arg(long, default_value_t = 25, value_name = "N")]
    pub users: usize,
    /// Seed file (JSON: users, groups, grantedRoles) applied to a new tenant.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_ms: u64,
    /// Throttling: off, Graph's documented quotas, or strict (also the reports budget).
    #[arg(long, value_enum, default_value_t = Throttle::Off)]
    pub throttle: Throttle,
    /// FIDO MDS3 BLOB (JWS) for attestation checks; needs --mds-root.
    #[arg(long, value_name = "FILE", requires = "mds_root")]
    pub mds_blob: Option<PathBuf>,
    /// Root certificate (PEM or DER) the MDS BLOB must chain to.
    #[arg(long, value_name = "FILE", requires = "mds_blob")]
    pub mds_root: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (loopback addresses only).
    #[arg(long)]
    pub plain_http: bool,
    /// Accept each registration challenge once only. Entra's challenges are stateless and
    /// reusable until they expire, so this is off by default.
    #[arg(long)]
    pub single_use_challenges: bool,
    /// Print one JSON line with URLs and credentials when ready (otherwise a readable summary).
    #[arg(long)]
    pub json: bool,
}

/// Throttling modes on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Throttle {
    /// No throttling.
    Off,
    /// Graph's identity-and-access quotas (resource units per 10 s, writes per 150 s).
    Graph,
    /// Also the authentication-methods reports budget (5 requests per 10 s).
    Strict,
}

/// Runs `keybridge entra-sim`.
pub fn run(args: EntraSimArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: EntraSimArgs) -> anyhow::Result<ExitCode> {
    let mut config = SimConfig::new(args.data_dir);
    config.listen = args.listen;
    config.users = args.users;
    config.seed = args.seed;
    config.latency_ms = args.latency_ms;
    config.throttle = match args.throttle {
        Throttle::Off => ThrottleMode::Off,
        Throttle::Graph => ThrottleMode::Graph,
        Throttle::Strict => ThrottleMode::Strict,
    };
    config.mds_blob = args.mds_blob;
    config.mds_root = args.mds_root;
    config.plain_http = args.plain_http;
    config.single_use_challenges = args.single_use_challenges;
    let running = EntraSim::start(config)
        .await
        .context("entra-sim could not start")?;
    let info = running.info();
    if args.json {
        println!(
            "{}",
            serde_json::to_string(info).context("cannot print the start JSON")?
        );
    } else {
        println!(
            "entra-sim is running\n  authority:      {}\n  token endpoint: {}\n  graph:          {}\n  tenant:         {} ({})\n  client id:      {}\n  client secret:  {}\n  CA:             {}\n  control:        {}\nStop with Ctrl-C.",
            info.authority,
            info.token_endpoint,
            info.graph_url,
            info.tenant_id,
            info.tenant_domain,
            info.client_id,
            info.client_secret,
            info.ca_pem.display(),
            info.control_url
        );
    }
    super::wait_for_stop_signal().await?;
    running
        .shutdown()
        .await
        .context("entra-sim stopped but could not save its state")?;
    Ok(ExitCode::SUCCESS)
}
