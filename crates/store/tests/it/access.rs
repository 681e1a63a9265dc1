//! Invites, pairing sessions, admins, sessions and API tokens.

use std::time::Duration;

use keybridge_store::{
    ChallengePurpose, NewAdminPasskey, NewPairingSession, PairingKind, Role, Store, StoreError,
    Timestamp, hash_token,
};

use crate::common::{integration, users};

const DAY: Duration = Duration::from_secs(86_400);

fn rejected(err: &StoreError) -> &'static str {
    match err {
        StoreError::TokenRejected { reason, .. } => reason,
        other => panic!("expected TokenRejected, got {other:?}"),
    }
}

async fn invites_are_single_use_and_expire(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 1).await;
    let (invite, token) = store
        .invites()
        .create(&ids[0], "admin:1", DAY)
        .await
        .unwrap();
    assert_eq!(
        invite.expires_at.unix_millis() - invite.created_at.unix_millis(),
        86_400_000
    );
    let now = Timestamp::now();
    assert_eq!(
        store.invites().check(&token, now).await.unwrap().id,
        invite.id
    );
    let used = store.invites().consume(&token, now).await.unwrap();
    assert_eq!(used.used_at, Some(now));
    let err = store.invites().consume(&token, now).await.unwrap_err();
    assert_eq!(rejected(&err), "was already used");
    assert_eq!(err.to_string(), "the invite was already used");
    // `find` still shows a used invite as it is (the Device Manager page says what became of
    // the link), and knows nothing of a token never issued.
    let found = store.invites().find(&token).await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.used_at),
        (invite.id.as_str(), Some(now))
    );
    assert_eq!(store.invites().find("never-issued").await.unwrap(), None);

    let (_, short) = store
        .invites()
        .create(&ids[0], "admin:1", Duration::from_millis(1))
        .await
        .unwrap();
    let later = Timestamp::now().plus(Duration::from_secs(1));
    assert_eq!(
        rejected(&store.invites().consume(&short, later).await.unwrap_err()),
        "has expired"
    );

    let (revoked, revoked_token) = store
        .invites()
        .create(&ids[0], "admin:1", DAY)
        .await
        .unwrap();
    store.invites().revoke(&revoked.id, now).await.unwrap();
    assert_eq!(
        rejected(
            &store
                .invites()
                .consume(&revoked_token, now)
                .await
                .unwrap_err()
        ),
        "was revoked"
    );
    assert!(
        store
            .invites()
            .consume("forged", now)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        store.invites().list_for_user(&ids[0]).await.unwrap().len(),
        3
    );

    // Only the hash is stored.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invites WHERE token_hash = $1")
        .bind(hash_token(&token))
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let leaked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invites WHERE token_hash = $1")
        .bind(token.clone())
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(leaked, 0);
}

async fn pairing_sessions_complete_once_with_the_right_secret(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 1).await;
    let (session, secret) = store
        .pairing_sessions()
        .create(NewPairingSession {
            kind: PairingKind::Phone,
            user_id: Some(ids[0].clone()),
            invite_id: None,
            workstation_id: None,
            short_code: "K7QP2M".into(),
            ttl: Duration::from_secs(60),
        })
        .await
        .unwrap();
    let now = Timestamp::now();
    let found = store
        .pairing_sessions()
        .find_live_by_code("K7QP2M", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, session.id);
    assert!(
        store
            .pairing_sessions()
            .find_live_by_code("K7QP2M", now.plus(Duration::from_secs(61)))
            .await
            .unwrap()
            .is_none()
    );

    let err = store
        .pairing_sessions()
        .complete(&session.id, "wrong", None, now)
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "does not match");
    assert_eq!(
        store
            .pairing_sessions()
            .record_failed_attempt(&session.id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .pairing_sessions()
            .record_failed_attempt(&session.id)
            .await
            .unwrap(),
        2
    );

    let p = store
        .phones()
        .create(keybridge_store::NewPhone {
            user_id: ids[0].clone(),
            device_key: "k".into(),
            name: "n".into(),
            model: "m".into(),
            os: "o".into(),
        })
        .await
        .unwrap();
    let done = store
        .pairing_sessions()
        .complete(&session.id, &secret, Some(&p.id), now)
        .await
        .unwrap();
    assert_eq!(done.phone_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(done.failed_attempts, 2);
    let err = store
        .pairing_sessions()
        .complete(&session.id, &secret, Some(&p.id), now)
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "was already used");
    assert!(
        store
            .pairing_sessions()
            .find_live_by_code("K7QP2M", now)
            .await
            .unwrap()
            .is_none()
    );

    let late = now.plus(Duration::from_secs(120));
    let (s2, secret2) = store
        .pairing_sessions()
        .create(NewPairingSession {
            kind: PairingKind::Workstation,
            user_id: None,
            invite_id: None,
            workstation_id: None,
            short_code: "ABCDEF".into(),
            ttl: Duration::from_secs(60),
        })
        .await
        .unwrap();
    assert_eq!(
        rejected(
            &store
                .pairing_sessions()
                .complete(&s2.id, &secret2, None, late)
                .await
                .unwrap_err()
        ),
        "has expired"
    );
    assert_eq!(
        store.pairing_sessions().purge_expired(late).await.unwrap(),
        2
    );
    assert!(
        store
            .pairing_sessions()
            .get(&s2.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn admins_passkeys_links_and_sessions(store: Store) {
    assert_eq!(store.admins().count().await.unwrap(), 0);
    let link = store
        .admins()
        .create_login_link(None, Some(Role::Admin), DAY)
        .await
        .unwrap();
    let now = Timestamp::now();
    let used = store.admins().consume_login_link(&link, now).await.unwrap();
    assert_eq!((used.admin_id, used.role), (None, Some(Role::Admin)));
    assert_eq!(
        rejected(
            &store
                .admins()
                .consume_login_link(&link, now)
                .await
                .unwrap_err()
        ),
        "was already used"
    );
    assert!(matches!(
        store
            .admins()
            .create_login_link(None, None, DAY)
            .await
            .unwrap_err(),
        StoreError::Invalid { field: "role", .. }
    ));

    let admin = store
        .admins()
        .create("ada", "Ada Lovelace", Role::Admin)
        .await
        .unwrap();
    let err = store
        .admins()
        .create("ada", "Another", Role::Auditor)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                field: "username",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store
            .admins()
            .find_by_username("ada")
            .await
            .unwrap()
            .unwrap(),
        admin
    );

    let pk = store
        .admins()
        .add_passkey(NewAdminPasskey {
            admin_id: admin.id.clone(),
            credential_id: "cred-1".into(),
            public_key: vec![0xa5, 1, 2, 3],
            sign_count: 5,
            aaguid: "00000000-0000-0000-0000-000000000000".into(),
            name: "YubiKey".into(),
            backup_eligible: false,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .admins()
            .find_passkey("cred-1")
            .await
            .unwrap()
            .unwrap()
            .public_key,
        vec![0xa5, 1, 2, 3]
    );
    assert!(
        store
            .admins()
            .record_passkey_use(&pk.id, 6, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .admins()
            .record_passkey_use(&pk.id, 6, now)
            .await
            .unwrap(),
        "a counter that does not rise is refused"
    );
    assert!(
        !store
            .admins()
            .record_passkey_use(&pk.id, 2, now)
            .await
            .unwrap()
    );
    assert_eq!(
        store.admins().passkeys(&admin.id).await.unwrap()[0].sign_count,
        6
    );

    let (session, cookie) = store
        .admins()
        .create_session(
            &admin.id,
            Duration::from_secs(600),
            Duration::from_secs(3600),
            Some("192.0.2.7"),
            Some("Firefox"),
        )
        .await
        .unwrap();
    assert_eq!(session.role, Role::Admin);
    assert!(!session.csrf_token.is_empty());
    // The CSRF token is a secret of the session: Debug output (logs) must not carry it.
    let shown = format!("{session:?}");
    assert!(!shown.contains(&session.csrf_token), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    let now = Timestamp::now();
    assert_eq!(
        store
            .admins()
            .session(&cookie, now)
            .await
            .unwrap()
            .unwrap()
            .csrf_token,
        session.csrf_token
    );
    // Idle timeout.
    assert!(
        store
            .admins()
            .session(&cookie, now.plus(Duration::from_secs(601)))
            .await
            .unwrap()
            .is_none()
    );
    store
        .admins()
        .touch_session(
            &cookie,
            Duration::from_secs(600),
            now.plus(Duration::from_secs(500)),
        )
        .await
        .unwrap();
    assert!(
        store
            .admins()
            .session(&cookie, now.plus(Duration::from_secs(700)))
            .await
            .unwrap()
            .is_some()
    );
    // Absolute timeout wins over touches.
    store
        .admins()
        .touch_session(
            &cookie,
            Duration::from_secs(600),
            now.plus(Duration::from_secs(3500)),
        )
        .await
        .unwrap();
    assert!(
        store
            .admins()
            .session(&cookie, now.plus(Duration::from_secs(3601)))
            .await
            .unwrap()
            .is_none()
    );
    // Disabled admins lose their sessions; revoked sessions are gone.
    store
        .admins()
        .update(&admin.id, Role::Helpdesk, true)
        .await
        .unwrap();
    assert!(
        store
            .admins()
            .session(&cookie, now)
            .await
            .unwrap()
            .is_none()
    );
    store
        .admins()
        .update(&admin.id, Role::Helpdesk, false)
        .await
        .unwrap();
    assert_eq!(
        store
            .admins()
            .session(&cookie, now)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Helpdesk
    );
    store.admins().revoke_session(&cookie, now).await.unwrap();
    assert!(
        store
            .admins()
            .session(&cookie, now)
            .await
            .unwrap()
            .is_none()
    );
    let (_, c2) = store
        .admins()
        .create_session(&admin.id, DAY, DAY, None, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .admins()
            .revoke_all_sessions(&admin.id, now)
            .await
            .unwrap(),
        1
    );
    assert!(store.admins().session(&c2, now).await.unwrap().is_none());

    let second = store
        .admins()
        .create("grace", "Grace Hopper", Role::Auditor)
        .await
        .unwrap();
    let names: Vec<String> = store
        .admins()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, vec!["ada", "grace"]);
    assert_eq!(
        store.admins().get(&second.id).await.unwrap().role,
        Role::Auditor
    );
    let extra = store
        .admins()
        .add_passkey(NewAdminPasskey {
            admin_id: second.id.clone(),
            credential_id: "cred-2".into(),
            public_key: vec![1],
            sign_count: 0,
            aaguid: "a".into(),
            name: "Phone".into(),
            backup_eligible: false,
        })
        .await
        .unwrap();
    // Counter-less authenticators (always 0) are accepted.
    assert!(
        store
            .admins()
            .record_passkey_use(&extra.id, 0, now)
            .await
            .unwrap()
    );
    store.admins().delete_passkey(&extra.id).await.unwrap();
    assert!(
        store
            .admins()
            .find_passkey("cred-2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .admins()
            .delete_passkey(&extra.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = store
        .admins()
        .add_passkey(NewAdminPasskey {
            admin_id: second.id.clone(),
            credential_id: "cred-1".into(),
            public_key: vec![1],
            sign_count: 0,
            aaguid: "a".into(),
            name: "dup".into(),
            backup_eligible: false,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                field: "credential id",
                ..
            }
        ),
        "{err:?}"
    );

    store.admins().delete(&admin.id).await.unwrap();
    assert!(
        store
            .admins()
            .get(&admin.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .admins()
            .find_passkey("cred-1")
            .await
            .unwrap()
            .is_none()
    );
}

async fn api_tokens_are_hashed_expire_and_revoke(store: Store) {
    let (token, secret) = store
        .api_tokens()
        .create("ci", Role::Auditor, "admin:1", None)
        .await
        .unwrap();
    assert!(secret.starts_with("kbt_"));
    assert!(secret.starts_with(&token.prefix));
    let now = Timestamp::now();
    let authed = store
        .api_tokens()
        .authenticate(&secret, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (authed.id.as_str(), authed.role, authed.last_used_at),
        (token.id.as_str(), Role::Auditor, Some(now))
    );
    assert!(
        store
            .api_tokens()
            .authenticate("kbt_forged", now)
            .await
            .unwrap()
            .is_none()
    );

    let (_, expiring) = store
        .api_tokens()
        .create(
            "short",
            Role::Admin,
            "admin:1",
            Some(now.plus(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(
        store
            .api_tokens()
            .authenticate(&expiring, now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .api_tokens()
            .authenticate(&expiring, now.plus(Duration::from_secs(11)))
            .await
            .unwrap()
            .is_none()
    );

    store.api_tokens().revoke(&token.id, now).await.unwrap();
    assert!(
        store
            .api_tokens()
            .authenticate(&secret, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .api_tokens()
            .revoke(&token.id, now)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(store.api_tokens().list().await.unwrap().len(), 2);
    let plain: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1 OR prefix = $1")
            .bind(secret.clone())
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(plain, 0, "the token itself is never stored");
    assert!(matches!(
        store
            .api_tokens()
            .create(" ", Role::Admin, "a", None)
            .await
            .unwrap_err(),
        StoreError::Invalid { .. }
    ));
}

async fn pairing_sessions_keep_a_given_proof_key_and_complete_once(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 1).await;
    let new = |code: &str| NewPairingSession {
        kind: PairingKind::Phone,
        user_id: Some(ids[0].clone()),
        invite_id: None,
        workstation_id: None,
        short_code: code.into(),
        ttl: Duration::from_secs(60),
    };
    let session = store
        .pairing_sessions()
        .create_with_proof_key(new("K7QP2M"), "proof-key-1")
        .await
        .unwrap();
    assert_eq!(
        store
            .pairing_sessions()
            .proof_key(&session.id)
            .await
            .unwrap(),
        "proof-key-1"
    );
    let phone = store
        .phones()
        .create(keybridge_store::NewPhone {
            user_id: ids[0].clone(),
            device_key: "k".into(),
            name: "n".into(),
            model: "m".into(),
            os: "o".into(),
        })
        .await
        .unwrap();
    let now = Timestamp::now();
    let done = store
        .pairing_sessions()
        .complete_verified(&session.id, &phone.id, 5, now)
        .await
        .unwrap();
    assert_eq!(done.phone_id.as_deref(), Some(phone.id.as_str()));
    let err = store
        .pairing_sessions()
        .complete_verified(&session.id, &phone.id, 5, now)
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "was already used");

    // Expired, and locked after too many failures.
    let expired = store
        .pairing_sessions()
        .create_with_proof_key(new("ABCDEF"), "proof-key-2")
        .await
        .unwrap();
    let err = store
        .pairing_sessions()
        .complete_verified(&expired.id, &phone.id, 5, now.plus(Duration::from_secs(61)))
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "has expired");
    let locked = store
        .pairing_sessions()
        .create_with_proof_key(new("GHJKMN"), "proof-key-3")
        .await
        .unwrap();
    for _ in 0..2 {
        store
            .pairing_sessions()
            .record_failed_attempt(&locked.id)
            .await
            .unwrap();
    }
    let err = store
        .pairing_sessions()
        .complete_verified(&locked.id, &phone.id, 2, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "was closed after too many wrong attempts");
    assert!(
        store
            .pairing_sessions()
            .proof_key("no-such-id")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn invites_are_used_once_by_id(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 1).await;
    let (invite, token) = store
        .invites()
        .create(&ids[0], "admin:1", DAY)
        .await
        .unwrap();
    let now = Timestamp::now();
    let used = store
        .invites()
        .consume_by_id(&invite.id, now)
        .await
        .unwrap();
    assert!(used.used_at.is_some());
    let err = store
        .invites()
        .consume_by_id(&invite.id, now)
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "was already used");
    assert_eq!(
        rejected(&store.invites().check(&token, now).await.unwrap_err()),
        "was already used"
    );
    let (late, _) = store
        .invites()
        .create(&ids[0], "admin:1", DAY)
        .await
        .unwrap();
    let err = store
        .invites()
        .consume_by_id(&late.id, now.plus(DAY + Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "has expired");
    assert!(
        store
            .invites()
            .consume_by_id("nope", now)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn request_nonces_are_fresh_once_until_they_expire(store: Store) {
    let now = Timestamp::now();
    let until = now.plus(Duration::from_secs(300));
    let key = "device:6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b:AAAAAAAAAAAAAAAAAAAAAA";
    assert!(
        store
            .request_nonces()
            .remember(key, until, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .request_nonces()
            .remember(key, until, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .request_nonces()
            .remember("device:other:AAAAAAAAAAAAAAAAAAAAAA", until, now)
            .await
            .unwrap()
    );
    // Concurrent inserts of one key: exactly one is fresh.
    let racing = "workstation:1:BBBBBBBBBBBBBBBBBBBBBB";
    let (a, b) = tokio::join!(
        async {
            store
                .request_nonces()
                .remember(racing, until, now)
                .await
                .unwrap()
        },
        async {
            store
                .request_nonces()
                .remember(racing, until, now)
                .await
                .unwrap()
        },
    );
    assert!(
        a ^ b,
        "exactly one of two concurrent inserts is fresh ({a}, {b})"
    );
    // After its time the key is swept and may be used again (the timestamp check refuses
    // such an old request before the cache is asked).
    let later = until.plus(Duration::from_secs(1));
    assert!(
        store
            .request_nonces()
            .remember(key, later.plus(Duration::from_secs(300)), later)
            .await
            .unwrap()
    );
    assert_eq!(
        store.request_nonces().purge_expired(later).await.unwrap(),
        2
    );
}

async fn console_challenges_and_login_links_are_checked_then_used_once(store: Store) {
    let admin = store
        .admins()
        .create("eve", "Eve", Role::Auditor)
        .await
        .unwrap();
    assert_eq!(store.admins().passkey_count().await.unwrap(), 0);

    // A challenge is taken once, only for its purpose, and not after it expired.
    let handle = store
        .admins()
        .create_challenge(ChallengePurpose::Enrol, Some(&admin.id), "abc", DAY)
        .await
        .unwrap();
    let now = Timestamp::now();
    assert!(
        store
            .admins()
            .take_challenge(&handle, ChallengePurpose::Login, now)
            .await
            .unwrap()
            .is_none(),
        "a login cannot take an enrolment challenge"
    );
    let handle = store
        .admins()
        .create_challenge(ChallengePurpose::Enrol, Some(&admin.id), "abc", DAY)
        .await
        .unwrap();
    let taken = store
        .admins()
        .take_challenge(&handle, ChallengePurpose::Enrol, now)
        .await
        .unwrap()
        .expect("challenge");
    assert_eq!(taken.challenge, "abc");
    assert_eq!(taken.admin_id.as_deref(), Some(admin.id.as_str()));
    assert!(
        store
            .admins()
            .take_challenge(&handle, ChallengePurpose::Enrol, now)
            .await
            .unwrap()
            .is_none(),
        "taken twice"
    );
    let short = store
        .admins()
        .create_challenge(ChallengePurpose::Login, None, "xyz", Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        store
            .admins()
            .take_challenge(
                &short,
                ChallengePurpose::Login,
                now.plus(Duration::from_secs(5))
            )
            .await
            .unwrap()
            .is_none(),
        "expired"
    );

    // Checking a link does not use it; using it does; then checking says so.
    let token = store
        .admins()
        .create_login_link(Some(&admin.id), None, DAY)
        .await
        .unwrap();
    for _ in 0..2 {
        let link = store.admins().check_login_link(&token, now).await.unwrap();
        assert_eq!(link.admin_id.as_deref(), Some(admin.id.as_str()));
    }
    store
        .admins()
        .consume_login_link(&token, now)
        .await
        .unwrap();
    let err = store
        .admins()
        .check_login_link(&token, now)
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "was already used");
    let token = store
        .admins()
        .create_login_link(Some(&admin.id), None, DAY)
        .await
        .unwrap();
    let err = store
        .admins()
        .check_login_link(&token, now.plus(DAY * 2))
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "has expired");
    assert!(matches!(
        store.admins().check_login_link("nope", now).await,
        Err(StoreError::NotFound { .. })
    ));

    // Backup eligibility is kept with the passkey.
    store
        .admins()
        .add_passkey(NewAdminPasskey {
            admin_id: admin.id.clone(),
            credential_id: "cred-be".into(),
            public_key: vec![1],
            sign_count: 0,
            aaguid: "a".into(),
            name: "synced".into(),
            backup_eligible: true,
        })
        .await
        .unwrap();
    let passkey = store
        .admins()
        .find_passkey("cred-be")
        .await
        .unwrap()
        .expect("passkey");
    assert!(passkey.backup_eligible);
    assert_eq!(store.admins().passkey_count().await.unwrap(), 1);
}

crate::store_tests!(
    console_challenges_and_login_links_are_checked_then_used_once,
    pairing_sessions_keep_a_given_proof_key_and_complete_once,
    request_nonces_are_fresh_once_until_they_expire,
    invites_are_used_once_by_id,
    invites_are_single_use_and_expire,
    pairing_sessions_complete_once_with_the_right_secret,
    admins_passkeys_links_and_sessions,
    api_tokens_are_hashed_expire_and_revoke,
);
