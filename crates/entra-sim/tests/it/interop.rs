//! Microsoft's own client libraries (MSAL, azure-identity) against entra-sim.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;

use keybridge_testkit::interop::{python, script};

use crate::common::start;

#[tokio::test]
async fn msal_and_azure_identity_get_tokens_that_verify() {
    let h = start(3).await;
    let info = h.sim.info().clone();
    let script = script("entra_sim_msal.py");
    let start_json = serde_json::to_string(&info).expect("json");
    let output = tokio::process::Command::new(python())
        .arg(&script)
        .env("ENTRA_SIM_START_JSON", start_json)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value =
        serde_json::from_str(stdout.trim().lines().last().expect("a line")).expect("json result");
    let jwks: JwkSet = h
        .http
        .get(&info.jwks_uri)
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    for (name, acr) in [
        ("msal_secret", "1"),
        ("msal_certificate", "2"),
        ("azure_identity_secret", "1"),
        ("azure_identity_certificate", "2"),
    ] {
        let token = results[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing: {results}"));
        let kid = jsonwebtoken::decode_header(token)
            .expect("header")
            .kid
            .expect("kid");
        let key = DecodingKey::from_jwk(jwks.find(&kid).expect("kid in jwks")).expect("key");
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("verifies")
            .claims;
        assert_eq!(claims["appidacr"], acr, "{name}");
        assert_eq!(claims["tid"], info.tenant_id.to_string());
    }
    assert_eq!(
        results["python_verified"], true,
        "the script verified the tokens with `cryptography` too"
    );
}
