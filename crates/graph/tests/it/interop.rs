//! Client assertions checked by an independent implementation (Python, pyca/cryptography):
//! `tests/interop/graph_assertion_verify.py`.

use keybridge_graph::{AssertionAlgorithm, CertificateCredential};
use keybridge_testkit::interop;

fn verify(request: serde_json::Value) -> (bool, String) {
    let output = interop::run_script(
        "graph_assertion_verify.py",
        &[],
        request.to_string().as_bytes(),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text.trim().to_owned())
}

fn credential() -> (CertificateCredential, String) {
    let key = include_str!("../../src/testdata/rsa-pkcs1.pem");
    let key_pkcs8 = include_str!("../../src/testdata/rsa-pkcs8.pem");
    let key_pair =
        rcgen::KeyPair::from_pem_and_sign_algo(key_pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["keybridge.test".into()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(90);
    let certificate = params.self_signed(&key_pair).unwrap().pem();
    (
        CertificateCredential::from_pem(&format!("{key}{certificate}")).unwrap(),
        certificate,
    )
}

#[test]
fn ps256_and_rs256_assertions_verify_in_pyca_cryptography() {
    let (credential, certificate_pem) = credential();
    let audience = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
    for algorithm in [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256] {
        let jwt = credential
            .client_assertion(
                "6731de76-14a6-49ae-97bc-6eba6914391e",
                audience,
                algorithm,
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let request = serde_json::json!({"jwt": jwt, "certificate_pem": certificate_pem, "audience": audience,
            "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e"});
        let (ok, text) = verify(request.clone());
        assert!(ok, "{algorithm:?}: {text}");
        assert_eq!(text, "ok");
        // The check can fail: a changed signature does not verify.
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        let flipped = if parts[2].starts_with('A') { "B" } else { "A" };
        parts[2].replace_range(..1, flipped);
        let mut tampered = request;
        tampered["jwt"] = serde_json::Value::from(parts.join("."));
        let (ok, text) = verify(tampered);
        assert!(
            !ok && text.contains("signature does not verify"),
            "{algorithm:?}: {text}"
        );
    }
}
