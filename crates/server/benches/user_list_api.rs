//! The user list API at 100,000 users, on SQLite and PostgreSQL: `GET
//! /api/v1/integrations/{id}/users` over HTTPS on loopback (keep-alive), timed at the client,
//! against the store's own list query in the same run (the handler's main query; the handler
//! also reads the tab counts and queues the Entra status check of the page). A second table
//! times, in the same run, the steps this version changed against the queries they replaced:
//! the tab counts (a `COUNT(*)` per request before) and SQLite's search (a scan before).
//!
//! `cargo bench -p keybridge-server --bench user_list_api`
//! Environment: `KB_BENCH_USERS` (default 100000), `KB_BENCH_SAMPLES` (requests per shape,
//! default 200), `KEYBRIDGE_TEST_DATABASE_URL` (else the testkit's throwaway PostgreSQL).

#![allow(clippy::expect_used, missing_docs)]

mod support;

use std::time::Instant;

use keybridge_core::UserState;
use keybridge_store::{Role, UserQuery, UserSort};
use keybridge_testkit::{Backend, TestDatabase};
use support::{Bench, env_number, percentile_ms};

/// A query shape: its name, the API's query parameters, the store's query.
type Shape = (&'static str, Vec<(&'static str, String)>, UserQuery);

fn main() {
    let users = env_number("KB_BENCH_USERS", 100_000);
    let samples = env_number("KB_BENCH_SAMPLES", 200).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("user list API: {users} users, 50 per page, {samples} requests per shape");
    println!(
        "| backend | query | store list p50 / p99 ms | API request p50 / p99 ms | API p99 / store p99 |"
    );
    println!("|---|---|---|---|---|");
    let mut before_after = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend);
        before_after.extend(runtime.block_on(run(backend, db.url(), users, samples)));
    }
    println!();
    println!("| backend | step of the request | now p50 / p99 ms | before p50 / p99 ms |");
    println!("|---|---|---|---|");
    for row in before_after {
        println!("{row}");
    }
}

/// Times `now` and `before` interleaved, `samples` times each; returns a table row.
async fn compare<N, B, FN, FB>(
    backend: Backend,
    step: &str,
    samples: usize,
    mut now: FN,
    mut before: FB,
) -> String
where
    FN: FnMut() -> N,
    FB: FnMut() -> B,
    N: std::future::Future<Output = ()>,
    B: std::future::Future<Output = ()>,
{
    let (mut now_times, mut before_times) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let started = Instant::now();
        now().await;
        now_times.push(started.elapsed());
        let started = Instant::now();
        before().await;
        before_times.push(started.elapsed());
    }
    now_times.sort();
    before_times.sort();
    format!(
        "| {backend:?} | {step} | {:.2} / {:.2} | {:.2} / {:.2} |",
        percentile_ms(&now_times, 0.5),
        percentile_ms(&now_times, 0.99),
        percentile_ms(&before_times, 0.5),
        percentile_ms(&before_times, 0.99),
    )
}

/// The parts of the request this version changed, against what they were before, in the same
/// run: the tab counts (kept by triggers, before a `COUNT(*)` per request) and, on SQLite, the
/// search (the trigram index, before a scan of the integration's users with the LIKE).
async fn before_and_after(
    backend: Backend,
    store: &keybridge_store::Store,
    integration: &str,
    samples: usize,
) -> Vec<String> {
    let mut rows = vec![
        compare(
            backend,
            "tab counts",
            samples,
            || async {
                store
                    .users()
                    .count_by_state(integration)
                    .await
                    .expect("counts");
            },
            || async {
                sqlx::query(
                    "SELECT state, COUNT(*) AS n FROM users WHERE integration_id = $1 \
                     GROUP BY state",
                )
                .bind(integration)
                .fetch_all(store.raw_pool())
                .await
                .expect("count");
            },
        )
        .await,
    ];
    if backend == Backend::Sqlite {
        let mut search = UserQuery::new(integration, None);
        search.search = Some("last12345".into());
        rows.push(
            compare(
                backend,
                "search (part of an e-mail), 50 rows",
                samples,
                || async {
                    store.users().list(&search).await.expect("list");
                },
                || async {
                    sqlx::query(
                        "SELECT u.id, (SELECT COUNT(*) FROM phones p WHERE p.user_id = u.id) \
                         FROM users u WHERE u.integration_id = $1 \
                         AND u.search_text LIKE '%last12345%' ESCAPE '\\' \
                         ORDER BY u.upn, u.id LIMIT 51",
                    )
                    .bind(integration)
                    .fetch_all(store.raw_pool())
                    .await
                    .expect("scan");
                },
            )
            .await,
        );
    }
    rows
}

#[allow(clippy::too_many_lines)]
async fn run(backend: Backend, url: &str, users: usize, samples: usize) -> Vec<String> {
    let bench = Bench::start(url, users).await;
    let (store, integration, http) = (&bench.store, &bench.integration, &bench.http);
    let (_, token) = keybridge_server::create_token_locally(store, "bench", Role::Admin, None)
        .await
        .expect("token");
    let base = format!(
        "{}/api/v1/integrations/{integration}/users",
        bench.server.base_url
    );

    // A cursor in the middle of the Pending tab, from the API itself.
    let mut after = None::<String>;
    for _ in 0..((users / 3) / 500).max(1) {
        let mut request = http
            .get(&base)
            .bearer_auth(&token)
            .query(&[("state", "pending"), ("limit", "500")]);
        if let Some(cursor) = &after {
            request = request.query(&[("after", cursor)]);
        }
        let page: serde_json::Value = request
            .send()
            .await
            .expect("walk")
            .json()
            .await
            .expect("json");
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let middle = after.expect("a cursor in the middle");
    let mut store_middle = UserQuery::new(integration, Some(UserState::Pending));
    store_middle.after = Some(middle.parse().expect("cursor"));

    let first = UserQuery::new(integration, Some(UserState::Pending));
    let mut by_name_desc = first.clone();
    by_name_desc.sort = UserSort::DisplayName;
    by_name_desc.descending = true;
    let mut all_by_activity = UserQuery::new(integration, None);
    all_by_activity.sort = UserSort::LastActive;
    let mut search = UserQuery::new(integration, None);
    search.search = Some("last12345".into());
    let shapes: Vec<Shape> = vec![
        (
            "Pending, first page, by username",
            vec![("state", "pending".into())],
            first,
        ),
        (
            "Pending, page in the middle",
            vec![("state", "pending".into()), ("after", middle)],
            store_middle,
        ),
        (
            "Pending, by name descending",
            vec![
                ("state", "pending".into()),
                ("sort", "name".into()),
                ("order", "desc".into()),
            ],
            by_name_desc,
        ),
        (
            "all states, by last active",
            vec![("sort", "last_active".into())],
            all_by_activity,
        ),
        (
            "search (part of an e-mail)",
            vec![("search", "last12345".into())],
            search,
        ),
    ];
    for (name, params, query) in shapes {
        // Interleaved, so that both sides see the same machine load.
        let mut store_times = Vec::with_capacity(samples);
        let mut api_times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let page = store.users().list(&query).await.expect("list");
            store_times.push(started.elapsed());
            assert!(!page.items.is_empty());
            let started = Instant::now();
            let response = http
                .get(&base)
                .bearer_auth(&token)
                .query(&params)
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status().as_u16(), 200);
            let body = response.bytes().await.expect("body");
            api_times.push(started.elapsed());
            assert!(body.len() > 100);
        }
        store_times.sort();
        api_times.sort();
        println!(
            "| {backend:?} | {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1}x |",
            percentile_ms(&store_times, 0.5),
            percentile_ms(&store_times, 0.99),
            percentile_ms(&api_times, 0.5),
            percentile_ms(&api_times, 0.99),
            percentile_ms(&api_times, 0.99) / percentile_ms(&store_times, 0.99),
        );
    }
    let rows = before_and_after(backend, store, integration, samples).await;
    bench.stop().await;
    rows
}
