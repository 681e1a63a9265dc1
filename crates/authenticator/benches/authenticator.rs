//! Medians of makeCredential, getAssertion and key store opening.
//!
//! Run: `cargo bench -p keybridge-authenticator --bench authenticator`
//! (set `KEYBRIDGE_BENCH_DIR` to put the store on a particular file system; default: the
//! system temp dir). Figures are recorded in `BENCHMARK-NOTES.md`.

// A benchmark stops at the first failure, like a test.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use keybridge_authenticator::pki::{OrganisationSettings, generate_organisation};
use keybridge_authenticator::{
    Approval, ApprovalRequest, Authenticator, CreationOptions, CredentialStore, Declined,
    FileStore, KdfParams, MakeCredentialSettings, MemoryStore, RequestOptions, b64url,
};

type Approver = fn(&ApprovalRequest<'_>) -> Result<Approval, Declined>;

fn verified(_: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
    Ok(Approval {
        user_verified: true,
    })
}

const ORIGIN: &str = "https://login.microsoft.com";

fn creation_options(n: usize) -> CreationOptions {
    let user_id = b64url(format!("user-{n:040}").as_bytes());
    CreationOptions::from_json(&format!(
        r#"{{"publicKey":{{"rp":{{"id":"login.microsoft.com","name":"Microsoft"}},
        "user":{{"id":"{user_id}","name":"user{n}@contoso.com","displayName":"User {n}"}},
        "challenge":"{challenge}","pubKeyCredParams":[{{"type":"public-key","alg":-7}}],
        "authenticatorSelection":{{"userVerification":"required"}},"attestation":"direct",
        "extensions":{{"hmacCreateSecret":true,"credentialProtectionPolicy":"userVerificationOptional"}}}}}}"#,
        challenge = b64url(&[7u8; 48])
    ))
    .expect("options")
}

fn request_options(credential_id: &[u8]) -> RequestOptions {
    RequestOptions::from_json(&format!(
        r#"{{"publicKey":{{"challenge":"{}","rpId":"login.microsoft.com","userVerification":"required",
        "allowCredentials":[{{"type":"public-key","id":"{}"}}]}}}}"#,
        b64url(&[9u8; 32]),
        b64url(credential_id)
    ))
    .expect("options")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(name: &str, samples: Vec<Duration>) {
    let count = samples.len();
    let median = median(samples);
    println!(
        "{name:<58} median {:>10.3} ms  (n = {count})",
        median.as_secs_f64() * 1000.0
    );
}

fn main() {
    let identity = || {
        generate_organisation(&OrganisationSettings {
            organisation: "Bench".into(),
            country: "US".into(),
            now: time::OffsetDateTime::now_utc(),
        })
        .expect("material")
        .into_identity()
    };

    // In memory: the authenticator's own work (crypto, CBOR, JSON).
    let mut phone = Authenticator::new(
        MemoryStore::with_attestation(identity()),
        verified as Approver,
    );
    let settings = MakeCredentialSettings::default();
    let samples = (0..500)
        .map(|n| {
            let options = creation_options(n);
            let start = Instant::now();
            let created = phone
                .make_credential(&options, ORIGIN, &settings)
                .expect("created");
            let _json = created.to_json().to_string();
            start.elapsed()
        })
        .collect();
    report("make-credential, packed x5c, memory store", samples);
    let id = phone.store().credentials()[0].credential_id.clone();
    let request = request_options(&id);
    let samples = (0..2000)
        .map(|_| {
            let start = Instant::now();
            let assertion = phone.get_assertion(&request, ORIGIN, None).expect("signed");
            let _json = assertion.to_json().to_string();
            start.elapsed()
        })
        .collect();
    report("get-assertion, memory store", samples);

    // On disk: the same plus encryption and the durable atomic write of the whole store.
    let base = std::env::var_os("KEYBRIDGE_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let temp = tempfile::tempdir_in(base).expect("tempdir");
    let dir = temp.path().join("device");
    let store =
        FileStore::create(&dir, "493817", Some(identity()), KdfParams::default()).expect("store");
    let mut phone = Authenticator::new(store, verified as Approver);
    let samples = (0..100)
        .map(|n| {
            let options = creation_options(n);
            let start = Instant::now();
            phone
                .make_credential(&options, ORIGIN, &settings)
                .expect("created");
            start.elapsed()
        })
        .collect();
    report(
        "make-credential, file store (1..100 accounts, fsync)",
        samples,
    );
    let id = phone.store().credentials()[0].credential_id.clone();
    let request = request_options(&id);
    let samples = (0..300)
        .map(|_| {
            let start = Instant::now();
            phone.get_assertion(&request, ORIGIN, None).expect("signed");
            start.elapsed()
        })
        .collect();
    report(
        "get-assertion, file store with 100 accounts (fsync)",
        samples,
    );
    drop(phone);

    let samples = (0..7)
        .map(|_| {
            let start = Instant::now();
            let store = FileStore::open(&dir, "493817").expect("opens");
            assert_eq!(store.credentials().len(), 100);
            start.elapsed()
        })
        .collect();
    report("store open, 100 accounts, Argon2id 64 MiB t=3 p=1", samples);

    // The same store contents under cheap KDF parameters isolate read + decrypt + parse.
    let cheap_dir = temp.path().join("cheap");
    let store = FileStore::create(
        &cheap_dir,
        "493817",
        Some(identity()),
        KdfParams::insecure_for_tests(),
    )
    .expect("store");
    let mut phone = Authenticator::new(store, verified as Approver);
    for n in 0..100 {
        phone
            .make_credential(&creation_options(n), ORIGIN, &settings)
            .expect("created");
    }
    drop(phone);
    let samples = (0..50)
        .map(|_| {
            let start = Instant::now();
            let store = FileStore::open(&cheap_dir, "493817").expect("opens");
            assert_eq!(store.credentials().len(), 100);
            start.elapsed()
        })
        .collect();
    report(
        "store open, 100 accounts, without the Argon2id cost",
        samples,
    );
}
