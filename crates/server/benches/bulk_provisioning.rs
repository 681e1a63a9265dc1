//! Bulk passkey provisioning against entra-sim with Graph's quotas (`--throttle graph`) and
//! 100 ms of latency on every Graph request, the server and entra-sim in one process on a
//! temporary SQLite database.
//!
//! For each size N (`KB_BENCH_USERS`, default `1000,10000`):
//! 1. setup, throttling off: entra-sim's tenant is synced; N users get a phone (a device key
//!    the benchmark holds) and are Paired with keybridge; their groups are brought in step;
//! 2. baseline: a one-user-at-a-time loop over the server's own Graph client (the same client,
//!    limiter included) does for `KB_BENCH_BASELINE` other users (default 100) what the server
//!    does for one user: creationOptions, the phone's credential, `POST fido2Methods`, and the
//!    user's three group moves as single-member requests;
//! 3. ours: native login is enabled through the API; phones answer their inbox requests over
//!    `/device/v1` with keybridge's authenticator (in memory), as soon as the server asks;
//!    timed until every user is Paired with Entra, then until the group step is done;
//! 4. checks, throttling off: every user holds exactly one passkey in entra-sim (duplicates).
//!
//! The write-quota share is entra-sim's successful writes in the timed span over the quota
//! (3,000 writes per 150 s = 20/s) times the span. `KB_BENCH_WORKERS` sets `jobs.workers`
//! (default 4, the configuration's default). By default the Graph client paces as shipped:
//! lists of authentication methods to Graph's "reports" budget (5 per 10 s per app and
//! tenant), the other FIDO2 calls only after Graph answered one of them 429.
//! `KB_BENCH_AUTH_BUDGET=off` drops that budget altogether. Run with
//! `cargo bench -p keybridge-server --bench bulk_provisioning`.

#![allow(clippy::expect_used, missing_docs)]

#[path = "support/config.rs"]
mod bench_config;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keybridge_authenticator::{
    Approval, ApprovalRequest, AttestationPreference, Authenticator, CreationOptions, Declined,
    MakeCredentialSettings, MemoryStore, OriginPolicy,
};
use keybridge_core::{EntraStatus, UserState};
use keybridge_device_protocol::{
    Answer, IdentityKey, InboxPage, InboxRequest, RequestAnswer, RequestTarget, SignedHeaders,
    SignerKind,
};
use keybridge_entra_sim::{Counters, EntraSim, SimConfig, ThrottleMode};
use keybridge_graph::{Cloud, GraphClient, NewFido2Method, RateLimits};
use keybridge_server::{GraphSettings, Server, ServerOptions};
use keybridge_store::{
    JobFilter, JobState, KeyRing, NewPhone, Role, SecretKey, Store, StoreOptions, Timestamp,
    UserQuery,
};
use rand_core::OsRng;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

const WRITES_PER_SECOND: f64 = 3000.0 / 150.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("KB_BENCH_USERS")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for n in sizes {
        runtime.block_on(run(n));
    }
}

/// The successful writes (non-GET, 2xx; `$batch` items counted one by one) in `counters`.
fn writes(counters: &Counters) -> u64 {
    counters
        .requests
        .iter()
        .filter(|(endpoint, _)| {
            let method = endpoint
                .strip_prefix("$batch item ")
                .unwrap_or(endpoint)
                .split(' ')
                .next()
                .unwrap_or("");
            !matches!(method, "GET" | "$batch") && !endpoint.starts_with("POST /v1.0/$batch")
        })
        .flat_map(|(_, by_status)| by_status.iter())
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, n)| n)
        .sum()
}

fn post_fido2(counters: &Counters) -> u64 {
    counters
        .requests
        .iter()
        .filter(|(endpoint, _)| endpoint.starts_with("POST") && endpoint.ends_with("fido2Methods"))
        .flat_map(|(_, by_status)| by_status.get(&201))
        .sum()
}

fn delta(after: &Counters, before: &Counters, f: fn(&Counters) -> u64) -> u64 {
    f(after) - f(before)
}

/// A phone: its device key, its id at the server, and the authenticator that answers for it.
struct Phone {
    key: IdentityKey,
    device_id: uuid::Uuid,
    tenant_id: String,
}

/// What keybridge's phone app does with a request: a passkey from Graph's creationOptions
/// (a device-local attestation identity each time: a phone has its own).
fn make_passkey(tenant: &str, options_json: &str) -> serde_json::Value {
    let attestation =
        keybridge_authenticator::pki::generate_device_local(OffsetDateTime::now_utc())
            .expect("attestation identity");
    let options = CreationOptions::from_json(options_json).expect("creationOptions");
    let presence = |_: &ApprovalRequest<'_>| -> Result<Approval, Declined> {
        Ok(Approval {
            user_verified: true,
        })
    };
    let mut authenticator =
        Authenticator::new(MemoryStore::with_attestation(attestation), presence)
            .with_origin_policy(OriginPolicy::with_microsoft_related_origins());
    authenticator
        .make_credential(
            &options,
            "https://login.microsoft.com",
            &MakeCredentialSettings {
                attestation: AttestationPreference::Packed,
                tenant: Some(tenant.to_owned()),
            },
        )
        .expect("passkey")
        .to_json()
}

async fn signed(
    http: &reqwest::Client,
    base: &str,
    phone: &Phone,
    method: reqwest::Method,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let headers = SignedHeaders::sign(
        SignerKind::Device,
        phone.device_id,
        &phone.key,
        &RequestTarget {
            method: method.as_str(),
            path_and_query: path,
            body,
        },
        OffsetDateTime::now_utc(),
        &mut OsRng,
    )
    .expect("signed");
    let mut request = http
        .request(method, format!("{base}{path}"))
        .body(body.to_vec());
    for (name, value) in headers.to_header_pairs() {
        request = request.header(name, value);
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

/// Answers every waiting phone's inbox until `stop`: the users shown as waiting are found in
/// the store, their phones fetch the inbox and answer each provisioning request once.
async fn phone_farm(
    store: Store,
    http: reqwest::Client,
    base: String,
    integration_id: String,
    phones: Arc<std::collections::HashMap<String, Phone>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    let answered = Arc::new(std::sync::Mutex::new(HashSet::<uuid::Uuid>::new()));
    let limit = Arc::new(Semaphore::new(8));
    let mut sent = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut query = UserQuery::new(&integration_id, Some(UserState::PairedWithKeybridge));
        query.limit = 500;
        let mut waiting = Vec::new();
        loop {
            let page = store.users().list(&query).await.expect("users");
            for item in &page.items {
                if item
                    .user
                    .provisioning_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("Waiting"))
                {
                    waiting.push(item.user.id.clone());
                }
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for user_id in waiting {
            let Some(_) = phones.get(&user_id) else {
                continue;
            };
            let permit = limit.clone().acquire_owned().await.expect("permit");
            let (http, base, phones, answered) =
                (http.clone(), base.clone(), phones.clone(), answered.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let phone = &phones[&user_id];
                let (status, body) = signed(
                    &http,
                    &base,
                    phone,
                    reqwest::Method::GET,
                    "/device/v1/inbox?wait=0",
                    b"",
                )
                .await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let page: InboxPage = serde_json::from_slice(&body).expect("inbox");
                let mut count = 0u64;
                for item in page.requests {
                    let InboxRequest::ProvisionPasskey(request) = item.request else {
                        continue;
                    };
                    if !answered.lock().expect("lock").insert(request.request_id) {
                        continue;
                    }
                    let credential =
                        make_passkey(&phone.tenant_id, &request.creation_options.to_string());
                    let answer = serde_json::to_vec(&RequestAnswer::new(
                        request.request_id,
                        Answer::Credential { credential },
                    ))
                    .expect("JSON");
                    let path = format!("/device/v1/requests/{}", request.request_id);
                    let (status, body) =
                        signed(&http, &base, phone, reqwest::Method::POST, &path, &answer).await;
                    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
                    count += 1;
                }
                count
            });
        }
        while let Some(done) = tasks.join_next().await {
            sent += done.expect("phone task");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sent
}

/// Waits until no job is running or queued to run now (scheduled renewals are later).
async fn wait_for_jobs(store: &Store) {
    'wait: loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if store.jobs().counts().await.expect("counts").running > 0 {
            continue;
        }
        let filter = JobFilter {
            state: Some(JobState::Queued),
            ..JobFilter::default()
        };
        let now = Timestamp::now();
        let mut before: Option<String> = None;
        loop {
            let page = store
                .jobs()
                .list(&filter, before.as_deref(), 500)
                .await
                .expect("jobs");
            if page.iter().any(|job| job.available_at <= now) {
                continue 'wait;
            }
            match page.last() {
                Some(last) if page.len() == 500 => before = Some(last.id.clone()),
                _ => return,
            }
        }
    }
}

/// One user as the server would provision it, one request at a time.
async fn one_at_a_time(
    graph: &GraphClient,
    tenant: &str,
    user: &str,
    groups: &keybridge_store::IntegrationGroups,
) {
    let options = graph
        .fido2_creation_options(user, None)
        .await
        .expect("creationOptions");
    let credential = make_passkey(tenant, &serde_json::to_string(&options).expect("JSON"));
    let b64 = |pointer: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                credential
                    .pointer(pointer)
                    .and_then(|v| v.as_str())
                    .expect("field"),
            )
            .expect("base64url")
    };
    graph
        .create_fido2_method(
            user,
            &NewFido2Method {
                display_name: Some("keybridge - baseline".to_owned()),
                credential_id: b64("/rawId"),
                client_data_json: b64("/response/clientDataJSON"),
                attestation_object: b64("/response/attestationObject"),
                client_extension_results: credential
                    .get("clientExtensionResults")
                    .cloned()
                    .unwrap_or_default(),
                aaguid: uuid::Uuid::try_parse(keybridge_authenticator::AAGUID_STRING).ok(),
            },
        )
        .await
        .expect("registered");
    let one = [user.to_owned()];
    graph
        .add_group_members(groups.paired_entra.as_deref().expect("group"), &one)
        .await
        .expect("add");
    graph
        .remove_group_members(groups.paired_keybridge.as_deref().expect("group"), &one)
        .await
        .expect("remove");
    graph
        .remove_group_members(groups.not_enrolled.as_deref().expect("group"), &one)
        .await
        .expect("remove");
}

#[allow(clippy::too_many_lines)]
async fn run(n: usize) {
    let baseline_users: usize = env_or("KB_BENCH_BASELINE", 100);
    let workers: u32 = env_or("KB_BENCH_WORKERS", 4);
    let latency = Duration::from_millis(env_or("KB_BENCH_LATENCY_MS", 100));
    let auth_budget = std::env::var("KB_BENCH_AUTH_BUDGET").map_or(true, |v| v != "off");
    println!(
        "== {n} paired users, {workers} job workers, Graph latency {latency:?}, --throttle graph, reports budget (5 per 10 s) for /authentication/ calls: {}",
        if auth_budget {
            "as shipped (lists always, other FIDO2 calls after a 429)"
        } else {
            "off"
        }
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sim_config = SimConfig::new(dir.path().join("sim"));
    // Room for the baseline's users and the seeded edge cases (guests, disabled accounts).
    sim_config.users = (n + baseline_users) * 11 / 10 + 100;
    let sim = EntraSim::start(sim_config).await.expect("sim");
    let info = sim.info().clone();

    let url = format!("sqlite://{}?mode=rwc", dir.path().join("kb.db").display());
    let store = Store::connect(
        &url,
        StoreOptions::new(KeyRing::new(SecretKey::generate(), Vec::new())),
    )
    .await
    .expect("store");
    let mut config = bench_config::server_config(dir.path(), &url);
    config.jobs.workers = workers;
    config.jobs.max_attempts = 10;
    config.log.level = std::env::var("KB_BENCH_LOG").unwrap_or_else(|_| "error".to_owned());
    std::fs::create_dir_all(&config.data_dir).expect("dir");
    if std::env::var_os("KB_BENCH_LOG").is_some() {
        keybridge_server::logging::init(&config.log);
    }
    // entra-sim's endpoints and CA, for the server's Graph client and the duplicate check's.
    let sim_graph = GraphSettings {
        cloud: Cloud::custom(&info.base_url, &info.graph_url).expect("endpoints"),
        ca_bundle_pem: Some(std::fs::read_to_string(&info.ca_pem).expect("CA")),
        ..GraphSettings::default()
    };
    let options = ServerOptions {
        graph: GraphSettings {
            rate_limits: (!auth_budget).then(|| RateLimits {
                authentication_requests_per_10s: None,
                ..RateLimits::default()
            }),
            ..sim_graph.clone()
        },
        worker_poll_interval: Some(Duration::from_millis(20)),
        sync_interval: None,
        ..ServerOptions::default()
    };
    let server = Server::start(config, store.clone(), options)
        .await
        .expect("server");
    let base = server.base_url.clone();
    let (_, token) = keybridge_server::create_token_locally(&store, "bench", Role::Admin, None)
        .await
        .expect("token");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(server.ca_file.clone().expect("CA")).expect("CA"),
            )
            .expect("PEM"),
        )
        .build()
        .expect("client");
    let created: serde_json::Value = http
        .post(format!("{base}/api/v1/integrations"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "Bench", "tenant_id": info.tenant_id.to_string(),
            "client_id": info.client_id.to_string(), "client_secret": info.client_secret,
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let integration_id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_jobs(&store).await;

    // Setup: N users paired, each with a phone whose key the benchmark holds.
    let mut query = UserQuery::new(&integration_id, Some(UserState::Pending));
    query.limit = 500;
    let mut active = Vec::new();
    loop {
        let page = store.users().list(&query).await.expect("users");
        active.extend(
            page.items
                .into_iter()
                .map(|i| i.user)
                .filter(|u| u.entra_status == EntraStatus::Active),
        );
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert!(
        active.len() >= n + baseline_users,
        "{} active users",
        active.len()
    );
    let mut phones = std::collections::HashMap::new();
    for user in &active[..n] {
        let key = IdentityKey::generate(&mut OsRng);
        let phone = store
            .phones()
            .create(NewPhone {
                user_id: user.id.clone(),
                device_key: key.public_key().to_base64url(),
                name: "Bench phone".to_owned(),
                model: "Pixel 8".to_owned(),
                os: "Android 15".to_owned(),
            })
            .await
            .expect("phone");
        store
            .users()
            .set_state(&user.id, UserState::PairedWithKeybridge, false)
            .await
            .expect("paired");
        phones.insert(
            user.id.clone(),
            Phone {
                key,
                device_id: uuid::Uuid::try_parse(&phone.id).expect("uuid"),
                tenant_id: info.tenant_id.to_string(),
            },
        );
    }
    http.post(format!("{base}/api/v1/integrations/{integration_id}/sync"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sync");
    wait_for_jobs(&store).await;
    let integration = store
        .integrations()
        .get(&integration_id)
        .await
        .expect("integration");
    let graph = server
        .app()
        .graph()
        .for_integration(&integration)
        .expect("client");
    println!("setup done: {n} users paired with keybridge");

    // Quotas and latency on, fresh budgets.
    sim.set_latency(latency);
    sim.set_throttle(ThrottleMode::Graph);

    // Baseline: one user at a time over the same client.
    let before = sim.counters();
    let t0 = Instant::now();
    for user in &active[n..n + baseline_users] {
        one_at_a_time(
            &graph,
            &info.tenant_id.to_string(),
            &user.entra_object_id,
            &integration.groups,
        )
        .await;
    }
    let baseline_time = t0.elapsed();
    let after = sim.counters();
    let baseline_rate = baseline_users as f64 / baseline_time.as_secs_f64();
    let baseline_writes = delta(&after, &before, writes);
    println!(
        "baseline, one user at a time: {baseline_users} users in {:.1} s = {baseline_rate:.2} users/s; {baseline_writes} writes = {:.1} % of the write quota",
        baseline_time.as_secs_f64(),
        100.0 * baseline_writes as f64 / (baseline_time.as_secs_f64() * WRITES_PER_SECOND),
    );

    // Ours: native login on; the phones answer as soon as they are asked.
    sim.set_throttle(ThrottleMode::Graph);
    let before = sim.counters();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let phones = Arc::new(phones);
    let farm = tokio::spawn(phone_farm(
        store.clone(),
        http.clone(),
        base.clone(),
        integration_id.clone(),
        phones.clone(),
        stop.clone(),
    ));
    let t0 = Instant::now();
    let enabled = http
        .put(format!(
            "{base}/api/v1/integrations/{integration_id}/native-login"
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"enabled": true}))
        .send()
        .await
        .expect("enable");
    assert_eq!(enabled.status().as_u16(), 200);
    let mut last_print = Instant::now();
    loop {
        let counts = store
            .users()
            .count_by_state(&integration_id)
            .await
            .expect("counts");
        if counts.paired_with_entra >= i64::try_from(n).expect("n") {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(30) {
            println!(
                "  {:.0} s: {} of {n} paired with Entra",
                t0.elapsed().as_secs_f64(),
                counts.paired_with_entra
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registered = t0.elapsed();
    let at_registered = sim.counters();
    wait_for_jobs(&store).await;
    let with_groups = t0.elapsed();
    let after = sim.counters();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = farm.await.expect("farm");
    let ours_rate = n as f64 / registered.as_secs_f64();
    let writes_registered = delta(&at_registered, &before, writes);
    let writes_all = delta(&after, &before, writes);
    println!(
        "ours: {n} users Paired with Entra in {:.1} s = {ours_rate:.2} users/s ({:.1}x the baseline); {writes_registered} writes = {:.1} % of the write quota",
        registered.as_secs_f64(),
        ours_rate / baseline_rate,
        100.0 * writes_registered as f64 / (registered.as_secs_f64() * WRITES_PER_SECOND),
    );
    println!(
        "ours, group step included: {:.1} s, {writes_all} writes = {:.1} % of the write quota; 429 answers {}; phone answers {answers}",
        with_groups.as_secs_f64(),
        100.0 * writes_all as f64 / (with_groups.as_secs_f64() * WRITES_PER_SECOND),
        after.throttled - before.throttled,
    );

    // Duplicates: Entra's side, throttling off.
    sim.set_throttle(ThrottleMode::Off);
    sim.set_latency(Duration::ZERO);
    let posted = delta(&after, &before, post_fido2);
    // A client of its own without pacing: the server's paces lists of methods to the reports
    // budget (5 per 10 s), which would make this check take minutes per thousand users.
    let graph = keybridge_server::app::GraphFactory::new(GraphSettings {
        rate_limits: Some(RateLimits::unlimited()),
        ..sim_graph
    })
    .for_integration(&integration)
    .expect("client");
    let mut duplicates = 0usize;
    let mut missing = 0usize;
    for user in &active[..n] {
        let methods = graph
            .list_fido2_methods(&user.entra_object_id)
            .await
            .expect("methods");
        // Only keybridge's: seeded users may hold other vendors' security keys.
        let ours = methods
            .iter()
            .filter(|m| m.aa_guid.as_deref() == Some(keybridge_authenticator::AAGUID_STRING))
            .count();
        match ours {
            0 => missing += 1,
            1 => {}
            more => duplicates += more - 1,
        }
    }
    println!(
        "Entra's side: {posted} passkeys created for {n} users; duplicates {duplicates}; users without a passkey {missing}"
    );
    server.shutdown().await.expect("stop");
    sim.shutdown().await.expect("sim stop");
}
