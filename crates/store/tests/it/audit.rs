//! The audit chain: append, verify (edit, deletion, insertion, truncation), export, and
//! concurrent appends from two pools.

use keybridge_store::{
    AuditEvent, AuditFilter, ChainBreak, ExportFormat, NewAuditEvent, Store, StoreOptions,
    Timestamp,
};
use keybridge_testkit::TestDatabase;
use serde_json::json;

async fn append_five(store: &Store) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for n in 1..=5 {
        out.push(
            store
                .audit()
                .append(
                    NewAuditEvent::new(format!("admin:{n}"), "user.invite")
                        .target(format!("user:{n}"))
                        .details(json!({"n": n, "via": "console"}))
                        .request(Some("192.0.2.1".into()), Some(format!("req-{n}"))),
                )
                .await
                .unwrap(),
        );
    }
    out
}

async fn exec(store: &Store, sql: &'static str) {
    sqlx::query(sql).execute(store.raw_pool()).await.unwrap();
}

async fn an_intact_chain_verifies(store: Store) {
    let empty = store.audit().verify().await.unwrap();
    assert!(empty.is_intact());
    assert_eq!(empty.events_checked, 0);
    let events = append_five(&store).await;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(events[0].prev_hash, keybridge_store::audit::GENESIS_HASH);
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let report = store.audit().verify().await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!((report.events_checked, report.head_seq), (5, 5));
    assert_eq!(report.head_hash, events[4].hash);

    let newest = store
        .audit()
        .list(&AuditFilter::default(), None, 2)
        .await
        .unwrap();
    assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 4]);
    assert_eq!(newest[0], events[4]);
    let older = store
        .audit()
        .list(&AuditFilter::default(), Some(4), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 3);
    let by_actor = AuditFilter {
        actor: Some("admin:2".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        store.audit().list(&by_actor, None, 10).await.unwrap(),
        vec![events[1].clone()]
    );
}

async fn an_edited_event_is_found(store: Store) {
    append_five(&store).await;
    exec(
        &store,
        "UPDATE audit_events SET actor = 'admin:mallory' WHERE seq = 3",
    )
    .await;
    let report = store.audit().verify().await.unwrap();
    assert_eq!(report.first_break, Some(ChainBreak::Edited { seq: 3 }));
    assert_eq!(
        report.first_break.unwrap().to_string(),
        "event 3 was edited: its content does not match its hash"
    );
}

async fn an_edited_and_rehashed_event_breaks_the_next_link(store: Store) {
    let events = append_five(&store).await;
    // Rewrite event 2 consistently (new details, recomputed hash): event 3 no longer links.
    let mut forged = events[1].clone();
    forged.details = "{\"n\":2,\"via\":\"api\"}".into();
    forged.hash = forged.compute_hash();
    sqlx::query("UPDATE audit_events SET details = $1, hash = $2 WHERE seq = 2")
        .bind(forged.details.clone())
        .bind(forged.hash.clone())
        .execute(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(
        store.audit().verify().await.unwrap().first_break,
        Some(ChainBreak::Relinked { seq: 3 })
    );
}

async fn a_deleted_event_is_found(store: Store) {
    append_five(&store).await;
    exec(&store, "DELETE FROM audit_events WHERE seq = 3").await;
    let report = store.audit().verify().await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::Deleted {
            first_missing: 3,
            last_missing: 3
        })
    );
    assert_eq!(report.events_checked, 3);
}

async fn a_truncated_log_is_found(store: Store) {
    append_five(&store).await;
    exec(&store, "DELETE FROM audit_events WHERE seq >= 4").await;
    let report = store.audit().verify().await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::Truncated {
            last_present: 3,
            head_seq: 5
        })
    );
    assert_eq!(
        report.first_break.unwrap().to_string(),
        "the log was truncated: events 4 to 5 are missing"
    );
    exec(&store, "DELETE FROM audit_events").await;
    assert_eq!(
        store.audit().verify().await.unwrap().first_break,
        Some(ChainBreak::Truncated {
            last_present: 0,
            head_seq: 5
        })
    );
}

async fn an_inserted_event_is_found(store: Store) {
    let events = append_five(&store).await;
    // Appended behind the log's back, correctly chained but without moving the head.
    let mut extra = events[4].clone();
    extra.seq = 6;
    extra.prev_hash = events[4].hash.clone();
    extra.hash = extra.compute_hash();
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, target, source_addr, request_id, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(extra.seq)
    .bind(extra.at.unix_millis())
    .bind(extra.actor.clone())
    .bind(extra.action.clone())
    .bind(extra.target.clone())
    .bind(extra.source_addr.clone())
    .bind(extra.request_id.clone())
    .bind(extra.details.clone())
    .bind(extra.prev_hash.clone())
    .bind(extra.hash.clone())
    .execute(store.raw_pool())
    .await
    .unwrap();
    assert_eq!(
        store.audit().verify().await.unwrap().first_break,
        Some(ChainBreak::AfterHead { seq: 6 })
    );
}

async fn exports_json_lines_and_csv(store: Store) {
    let events = append_five(&store).await;
    store
        .audit()
        .append(
            NewAuditEvent::new("system", "sync.finish").details(json!({"note": "a,b \"c\"\nd"})),
        )
        .await
        .unwrap();
    let mut jsonl = Vec::new();
    let n = store
        .audit()
        .export(&AuditFilter::default(), ExportFormat::JsonLines, &mut jsonl)
        .await
        .unwrap();
    assert_eq!(n, 6);
    let text = String::from_utf8(jsonl).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["actor"], "admin:1");
    assert_eq!(lines[0]["details"], json!({"n": 1, "via": "console"}));
    assert_eq!(lines[0]["hash"], events[0].hash.as_str());
    assert_eq!(lines[0]["request_id"], "req-1");
    assert!(lines[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[5]["target"], serde_json::Value::Null);

    let only = AuditFilter {
        action: Some("sync.finish".into()),
        ..AuditFilter::default()
    };
    let mut csv = Vec::new();
    assert_eq!(
        store
            .audit()
            .export(&only, ExportFormat::Csv, &mut csv)
            .await
            .unwrap(),
        1
    );
    let csv = String::from_utf8(csv).unwrap();
    let mut rows = csv.split("\r\n");
    assert_eq!(
        rows.next().unwrap(),
        "seq,at,actor,action,target,source_addr,request_id,details,prev_hash,hash"
    );
    let row = rows.next().unwrap();
    assert!(row.starts_with("6,"), "{row}");
    assert!(
        row.contains(",system,sync.finish,,,,\"{\"\"note\"\":\"\"a,b \\\"\"c\\\"\"\\nd\"\"}\","),
        "{row}"
    );
}

async fn two_pools_appending_at_once_keep_one_chain(db: TestDatabase) {
    let ring = crate::common::keyring();
    let a = Store::connect(db.url(), StoreOptions::new(ring.clone()).max_connections(4))
        .await
        .unwrap();
    let b = Store::connect(db.url(), StoreOptions::new(ring).max_connections(4))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .audit()
                    .append(
                        NewAuditEvent::new(format!("worker:{t}"), "tick").details(json!({"i": i})),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = a.audit().verify().await.unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!((report.events_checked, report.head_seq), (200, 200));
    a.close().await;
    b.close().await;
}

async fn an_event_in_a_rolled_back_transaction_leaves_no_trace(store: Store) {
    append_five(&store).await;
    let mut tx = store.begin().await.unwrap();
    tx.audit()
        .append(NewAuditEvent::new("admin:1", "user.delete"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.audit()
        .append(NewAuditEvent::new("admin:1", "user.delete"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let report = store.audit().verify().await.unwrap();
    assert!(report.is_intact());
    assert_eq!(report.head_seq, 6);
}

/// Verifying a log that is being written to: events appended while the walk runs are honest
/// appends, not events "inserted after the end of the log", and the chain is intact.
async fn verify_during_appends_reports_an_intact_chain(store: Store) {
    // More than one verification batch (1000 events), so the walk takes several queries.
    for n in 0..1200 {
        store
            .audit()
            .append(NewAuditEvent::new("system", "sync.run").details(json!({"n": n})))
            .await
            .unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut appended = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store
                    .audit()
                    .append(NewAuditEvent::new("system", "sync.run"))
                    .await
                    .unwrap();
                appended += 1;
                tokio::task::yield_now().await;
            }
            appended
        })
    };
    for _ in 0..5 {
        let report = store.audit().verify().await.unwrap();
        assert_eq!(report.first_break, None, "{report:?}");
        assert!(report.events_checked >= 1200);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(appender.await.unwrap() > 0, "appends ran during the checks");
    assert!(store.audit().verify().await.unwrap().is_intact());
}

async fn events_are_counted_per_day_and_action(store: Store) {
    append_five(&store).await; // five user.invite, today
    for action in ["device.pair", "device.pair", "sync.run"] {
        store
            .audit()
            .append(NewAuditEvent::new("system", action))
            .await
            .unwrap();
    }
    // Move two invites and one pairing to yesterday, and one invite far back.
    exec(
        &store,
        "UPDATE audit_events SET at = at - 86400000 WHERE seq IN (1, 2, 6)",
    )
    .await;
    exec(
        &store,
        "UPDATE audit_events SET at = at - 864000000 WHERE seq = 3",
    )
    .await;
    let now = Timestamp::now();
    let today = now.unix_millis() / 86_400_000 * 86_400_000;
    let from = Timestamp::from_unix_millis(today - 2 * 86_400_000);
    let counts = store
        .audit()
        .count_by_day(&["user.invite", "device.pair"], from)
        .await
        .unwrap();
    let got: Vec<(i64, &str, i64)> = counts
        .iter()
        .map(|c| (c.day.unix_millis(), c.action.as_str(), c.count))
        .collect();
    // At most two days apart: a run across midnight may put "yesterday" two days back.
    let yesterday = got[0].0;
    assert!(
        yesterday == today - 86_400_000 || yesterday == today - 2 * 86_400_000,
        "{got:?}"
    );
    assert_eq!(
        got,
        vec![
            (yesterday, "device.pair", 1),
            (yesterday, "user.invite", 2),
            (got[2].0, "device.pair", 1),
            (got[2].0, "user.invite", 2),
        ],
    );
    assert!(got[2].0 > yesterday);
    assert!(
        store
            .audit()
            .count_by_day(&[], from)
            .await
            .unwrap()
            .is_empty()
    );
}

crate::store_tests!(
    verify_during_appends_reports_an_intact_chain,
    an_intact_chain_verifies,
    an_edited_event_is_found,
    an_edited_and_rehashed_event_breaks_the_next_link,
    a_deleted_event_is_found,
    a_truncated_log_is_found,
    an_inserted_event_is_found,
    exports_json_lines_and_csv,
    an_event_in_a_rolled_back_transaction_leaves_no_trace,
    events_are_counted_per_day_and_action,
);

keybridge_testkit::both_databases! {
    concurrent_appends => two_pools_appending_at_once_keep_one_chain;
}
