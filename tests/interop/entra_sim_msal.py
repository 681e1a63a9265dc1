"""Microsoft's client libraries against entra-sim.

Reads the start JSON of `keybridge entra-sim --json` from ENTRA_SIM_START_JSON, acquires app-only
Graph tokens with MSAL (client secret and certificate) and azure-identity (client secret and
certificate), trusting only entra-sim's CA, checks each token's RS256 signature against the JWKS
with `cryptography`, and prints one JSON line with the tokens.
"""

import base64
import json
import os
import sys

import msal
import requests
from azure.identity import CertificateCredential, ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

SCOPE = "https://graph.microsoft.com/.default"


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(token, jwks):
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    cert = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
    cert.public_key().verify(
        b64url_decode(signature_b64),
        f"{header_b64}.{payload_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return json.loads(b64url_decode(payload_b64))


def main():
    info = json.loads(os.environ["ENTRA_SIM_START_JSON"])
    ca = info["ca_pem"]
    session = requests.Session()
    # Only entra-sim's CA: ignore REQUESTS_CA_BUNDLE and friends, which requests would otherwise
    # let override session.verify.
    session.trust_env = False
    session.verify = ca
    with open(info["client_key_pem"], "rb") as f:
        key_pem = f.read()
    with open(info["client_cert_pem"], "rb") as f:
        cert_pem = f.read()
    cert = x509.load_pem_x509_certificate(cert_pem)
    thumbprint = cert.fingerprint(hashes.SHA1()).hex()

    results = {}
    app = msal.ConfidentialClientApplication(
        info["client_id"],
        authority=info["authority"],
        client_credential=info["client_secret"],
        instance_discovery=False,
        http_client=session,
    )
    r = app.acquire_token_for_client(scopes=[SCOPE])
    if "access_token" not in r:
        sys.exit(f"MSAL secret: {r}")
    results["msal_secret"] = r["access_token"]

    app = msal.ConfidentialClientApplication(
        info["client_id"],
        authority=info["authority"],
        client_credential={
            "private_key": key_pem.decode(),
            "thumbprint": thumbprint,
            "public_certificate": cert_pem.decode(),
        },
        instance_discovery=False,
        http_client=session,
    )
    r = app.acquire_token_for_client(scopes=[SCOPE])
    if "access_token" not in r:
        sys.exit(f"MSAL certificate: {r}")
    results["msal_certificate"] = r["access_token"]

    # A wrong secret must come back as MSAL sees Entra's errors.
    app = msal.ConfidentialClientApplication(
        info["client_id"],
        authority=info["authority"],
        client_credential="wrong",
        instance_discovery=False,
        http_client=session,
    )
    r = app.acquire_token_for_client(scopes=[SCOPE])
    if r.get("error") != "invalid_client" or 7000215 not in r.get("error_codes", []):
        sys.exit(f"MSAL wrong secret: {r}")

    authority_host = info["base_url"]
    credential = ClientSecretCredential(
        info["tenant_id"],
        info["client_id"],
        info["client_secret"],
        authority=authority_host,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    results["azure_identity_secret"] = credential.get_token(SCOPE).token

    pem_bundle = key_pem + b"\n" + cert_pem
    credential = CertificateCredential(
        info["tenant_id"],
        info["client_id"],
        certificate_data=pem_bundle,
        authority=authority_host,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    results["azure_identity_certificate"] = credential.get_token(SCOPE).token

    jwks = session.get(info["jwks_uri"]).json()
    for name in ("msal_secret", "msal_certificate", "azure_identity_secret", "azure_identity_certificate"):
        claims = verify(results[name], jwks)
        if claims["tid"] != info["tenant_id"] or claims["appid"] != info["client_id"]:
            sys.exit(f"{name}: unexpected claims {claims}")
    results["python_verified"] = True
    print(json.dumps(results))


if __name__ == "__main__":
    main()
