//! User list at 100,000 users: time of one page through the store (keyset pagination), on
//! SQLite and PostgreSQL. Prints p50 and p99 per query shape.
//!
//! `cargo bench -p keybridge-store --bench user_list`
//! Environment: `KEYBRIDGE_BENCH_USERS` (default 100000), `KEYBRIDGE_BENCH_SAMPLES` (page
//! requests per shape, default 300), `KEYBRIDGE_TEST_DATABASE_URL`.

// A benchmark binary: any failure should stop it loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use keybridge_core::UserState;
use keybridge_store::{
    DirectoryUser, KeyRing, NewIntegration, SecretKey, SecretString, Store, StoreOptions,
    UserQuery, UserSort,
};
use keybridge_testkit::{Backend, TestDatabase};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn seed(store: &Store, users: usize) -> String {
    let integration = store
        .integrations()
        .create(NewIntegration {
            name: "Bench".into(),
            internal_id: "Bench".into(),
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "8a7b6c5d-1111-2222-3333-444455556666".into(),
            credential: keybridge_store::IntegrationCredential::ClientSecret(SecretString::new(
                "s",
            )),
            support_email: None,
        })
        .await
        .expect("integration")
        .id;
    let all: Vec<DirectoryUser> = (0..users)
        .map(|n| DirectoryUser {
            entra_object_id: format!("obj-{n:08}"),
            upn: format!("user{n:07}@contoso.example"),
            email: Some(format!("first.last{n}@contoso.example")),
            display_name: format!("Person {:07}", (n * 7919) % users),
            account_enabled: true,
        })
        .collect();
    let started = Instant::now();
    for chunk in all.chunks(2000) {
        store
            .users()
            .upsert_from_directory(&integration, chunk)
            .await
            .expect("upsert");
    }
    println!(
        "upsert of {users} directory users (batches of 2,000): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    // A third of the users paired, a tenth registered in Entra.
    for n in (0..users).step_by(3) {
        let user = store
            .users()
            .find_by_object_id(&integration, &format!("obj-{n:08}"))
            .await
            .expect("find")
            .expect("user");
        let state = if n % 10 == 0 {
            UserState::PairedWithEntra
        } else {
            UserState::PairedWithKeybridge
        };
        store
            .users()
            .set_state(&user.id, state, false)
            .await
            .expect("state");
    }
    integration
}

async fn time_shape(store: &Store, samples: usize, query: &UserQuery) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let page = store.users().list(query).await.expect("list");
        times.push(started.elapsed());
        assert!(!page.items.is_empty());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn main() {
    let users = env_number("KEYBRIDGE_BENCH_USERS", 100_000);
    let samples = env_number("KEYBRIDGE_BENCH_SAMPLES", 300).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("user list: {users} users, 50 per page, {samples} requests per shape");
    println!("| backend    | query                              | p50 ms | p99 ms |");
    println!("|------------|------------------------------------|--------|--------|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend);
        runtime.block_on(async {
            let store = Store::connect(
                db.url(),
                StoreOptions::new(KeyRing::new(SecretKey::generate(), vec![])),
            )
            .await
            .expect("connect");
            let seeding = Instant::now();
            let integration = seed(&store, users).await;
            eprintln!(
                "{backend:?}: seeded {users} users in {:?}",
                seeding.elapsed()
            );
            // Steady state: what autovacuum / a periodic ANALYZE would have done by now (sets
            // PostgreSQL's visibility map so that counts can use index-only scans).
            let maintenance = match store.dialect() {
                keybridge_store::Dialect::Sqlite => "ANALYZE",
                keybridge_store::Dialect::Postgres => "VACUUM ANALYZE users",
            };
            sqlx::query(maintenance)
                .execute(store.raw_pool())
                .await
                .expect("maintenance");

            let first = UserQuery::new(&integration, Some(UserState::Pending));
            // A cursor deep into the tab: walk to the middle once.
            let mut deep = first.clone();
            deep.limit = 500;
            for _ in 0..((users / 3) / 500).max(1) {
                let page = store.users().list(&deep).await.expect("walk");
                match page.next {
                    Some(next) => deep.after = Some(next),
                    None => break,
                }
            }
            deep.limit = 50;
            let mut by_name_desc = first.clone();
            by_name_desc.sort = UserSort::DisplayName;
            by_name_desc.descending = true;
            let mut all_by_activity = UserQuery::new(&integration, None);
            all_by_activity.sort = UserSort::LastActive;
            let mut search = UserQuery::new(&integration, None);
            search.search = Some("last12345".into());
            let shapes = [
                ("Pending, first page, by UPN", first.clone()),
                ("Pending, page in the middle", deep),
                ("Pending, by name descending", by_name_desc),
                ("all states, by last active", all_by_activity),
                ("search (substring of e-mail)", search),
            ];
            for (name, query) in shapes {
                let (p50, p99) = time_shape(&store, samples, &query).await;
                println!(
                    "| {:<10} | {:<34} | {:>6.2} | {:>6.2} |",
                    format!("{backend:?}"),
                    name,
                    p50.as_secs_f64() * 1000.0,
                    p99.as_secs_f64() * 1000.0
                );
            }
            let mut times = Vec::new();
            let mut counts = None;
            for _ in 0..samples.min(50) {
                let started = Instant::now();
                counts = Some(
                    store
                        .users()
                        .count_by_state(&integration)
                        .await
                        .expect("counts"),
                );
                times.push(started.elapsed());
            }
            times.sort();
            let counts = counts.expect("at least one sample");
            println!(
                "| {:<10} | {:<34} | {:>6.2} | {:>6.2} |",
                format!("{backend:?}"),
                format!(
                    "counts by state ({}/{}/{})",
                    counts.pending, counts.paired_with_keybridge, counts.paired_with_entra
                ),
                percentile(&times, 0.5).as_secs_f64() * 1000.0,
                percentile(&times, 0.99).as_secs_f64() * 1000.0
            );
            store.close().await;
        });
    }
}
