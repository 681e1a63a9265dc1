//! The console's User Management page at 100,000 users, on SQLite and PostgreSQL: the time
//! of one page request through the running server (HTTPS on loopback, keep-alive, a signed-in
//! session), so an upper bound on the server's time. Prints p50 and p99 per page shape.
//!
//! `cargo bench -p keybridge-server --bench console_users`
//! Environment: `KEYBRIDGE_BENCH_USERS` (default 100000), `KEYBRIDGE_BENCH_SAMPLES` (requests
//! per shape, default 300).

#![allow(clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use keybridge_core::UserState;
use keybridge_store::{Role, UserQuery};
use keybridge_testkit::{Backend, TestDatabase};
use support::{Bench, env_number, percentile_ms};

fn main() {
    let users = env_number("KEYBRIDGE_BENCH_USERS", 100_000);
    let samples = env_number("KEYBRIDGE_BENCH_SAMPLES", 300).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("console User Management: {users} users, 50 per page, {samples} requests per shape");
    println!("| backend    | page                                | p50 ms | p99 ms |");
    println!("|------------|-------------------------------------|--------|--------|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend);
        runtime.block_on(run(backend, &db, users, samples));
    }
}

async fn run(backend: Backend, db: &TestDatabase, users: usize, samples: usize) {
    let bench = Bench::start(db.url(), users).await;
    let (store, integration, http) = (&bench.store, &bench.integration, &bench.http);
    let admin = store
        .admins()
        .create("bench", "Bench admin", Role::Admin)
        .await
        .expect("admin");
    let (_, session) = store
        .admins()
        .create_session(
            &admin.id,
            Duration::from_secs(3600),
            Duration::from_secs(7200),
            None,
            None,
        )
        .await
        .expect("session");
    let cookie = format!("__Host-kb_session={session}");

    // A cursor in the middle of the Pending tab, as "Next page" links carry it.
    let mut deep = UserQuery::new(integration, Some(UserState::Pending));
    deep.limit = 500;
    for _ in 0..((users / 3) / 500).max(1) {
        match store.users().list(&deep).await.expect("walk").next {
            Some(next) => deep.after = Some(next),
            None => break,
        }
    }
    let middle = deep.after.map(|c| c.to_string()).unwrap_or_default();
    let base = format!(
        "{}/console/users?integration={integration}",
        bench.server.base_url
    );
    let first_ids: Vec<String> = {
        let mut q = UserQuery::new(integration, Some(UserState::Pending));
        q.limit = 50;
        store
            .users()
            .list(&q)
            .await
            .expect("page")
            .items
            .into_iter()
            .map(|i| i.user.id)
            .collect()
    };
    let shapes = [
        ("Pending, first page", format!("{base}&state=pending")),
        (
            "Pending, page in the middle",
            format!("{base}&state=pending&after={middle}"),
        ),
        (
            "Paired with Entra, first page",
            format!("{base}&state=paired_with_entra"),
        ),
        (
            "search (substring of e-mail)",
            format!("{base}&state=pending&search=last12345"),
        ),
        (
            "live refresh of 50 rows (JSON)",
            format!(
                "{}/console/users/live?integration={integration}&ids={}",
                bench.server.base_url,
                first_ids.join(",")
            ),
        ),
    ];
    for (name, url) in shapes {
        let mut times = Vec::with_capacity(samples);
        for n in 0..samples + 10 {
            let started = Instant::now();
            let response = http
                .get(&url)
                .header("cookie", &cookie)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 200, "{name}");
            let body = response.text().await.expect("body");
            let elapsed = started.elapsed();
            assert!(body.len() > 100, "{name}: {body}");
            // The first requests warm the connection and caches.
            if n >= 10 {
                times.push(elapsed);
            }
        }
        times.sort();
        println!(
            "| {:<10} | {:<35} | {:>6.2} | {:>6.2} |",
            format!("{backend:?}"),
            name,
            percentile_ms(&times, 0.5),
            percentile_ms(&times, 0.99)
        );
    }
    bench.stop().await;
}
