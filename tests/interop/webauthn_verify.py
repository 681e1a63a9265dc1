#!/usr/bin/env python3
"""Independent WebAuthn verdicts for keybridge-webauthn's interop test.

Reads {"cases": [...]} as JSON on stdin and prints one JSON list with a verdict per case:

    {"name": ..., "webauthn": {"accepted": bool, "reason": str},
                  "fido2": null | {"accepted": bool, "reason": str}}

"webauthn" is py_webauthn's verify_registration_response / verify_authentication_response
(the whole ceremony). "fido2" is python-fido2's `packed` attestation statement check (the
certificate requirements of WebAuthn 8.2.1, the attestation signature and, when roots are
given, the x5c chain); it is null for cases that are not `packed` registrations.

Case fields (binary values are unpadded base64url):
  name, kind ("registration" | "assertion"), rp_id, origins (list), challenge,
  require_user_verification, root_certs (list of DER, may be empty),
  credential (the WebAuthn JSON: id, rawId, type, response{...}),
  credential_public_key and sign_count (assertions only).
"""

import base64
import hashlib
import json
import sys
import traceback

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

import webauthn
from webauthn.helpers.structs import AttestationFormat
from webauthn.helpers.cose import COSEAlgorithmIdentifier

from fido2.webauthn import AttestationObject
from fido2.attestation import PackedAttestation, verify_x509_chain
from fido2.cose import CoseKey
from fido2.utils import websafe_decode

SUPPORTED_ALGS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256]


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def der_to_pem(der):
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def verdict(accepted, reason=""):
    return {"accepted": accepted, "reason": reason}


def py_webauthn_registration(case):
    roots = [der_to_pem(b64decode(r)) for r in case.get("root_certs", [])]
    by_fmt = {AttestationFormat.PACKED: roots} if roots else None
    webauthn.verify_registration_response(
        credential=case["credential"],
        expected_challenge=b64decode(case["challenge"]),
        expected_rp_id=case["rp_id"],
        expected_origin=case["origins"],
        require_user_verification=case["require_user_verification"],
        supported_pub_key_algs=SUPPORTED_ALGS,
        pem_root_certs_bytes_by_fmt=by_fmt,
    )


def py_webauthn_assertion(case):
    webauthn.verify_authentication_response(
        credential=case["credential"],
        expected_challenge=b64decode(case["challenge"]),
        expected_rp_id=case["rp_id"],
        expected_origin=case["origins"],
        credential_public_key=b64decode(case["credential_public_key"]),
        credential_current_sign_count=case["sign_count"],
        require_user_verification=case["require_user_verification"],
    )


def fido2_packed(case):
    """None when the case is not a packed registration; raises when the statement is bad."""
    if case["kind"] != "registration":
        return None
    response = case["credential"]["response"]
    try:
        attestation_object = AttestationObject(b64decode(response["attestationObject"]))
    except Exception:  # not decodable: fido2 has no opinion on the packed statement
        return None
    if attestation_object.fmt != "packed":
        return None
    client_data_hash = hashlib.sha256(b64decode(response["clientDataJSON"])).digest()
    result = PackedAttestation().verify(
        attestation_object.att_stmt, attestation_object.auth_data, client_data_hash
    )
    roots = [b64decode(r) for r in case.get("root_certs", [])]
    if result.trust_path and roots:
        errors = []
        for root in roots:
            try:
                verify_x509_chain(result.trust_path + [root])
                return True
            except Exception as error:  # try the next root
                errors.append(repr(error))
        raise ValueError("chain does not verify to any root: " + "; ".join(errors))
    return True


def fido2_mds_blob(case):
    """The verification steps of fido2.mds3.parse_blob, without its strict payload schema."""
    blob = case["blob"].encode()
    message, signature_b64 = blob.rsplit(b".", 1)
    signature = websafe_decode(signature_b64)
    header, payload = (json.loads(websafe_decode(part)) for part in message.split(b"."))
    chain = [base64.b64decode(cert) for cert in header.get("x5c", [])]
    chain.append(b64decode(case["root"]))
    verify_x509_chain(chain)
    leaf = x509.load_der_x509_certificate(chain[0])
    key = CoseKey.for_name(header["alg"]).from_cryptography_key(leaf.public_key())
    if header["alg"] in ("ES256", "ES384", "ES512"):
        half = len(signature) // 2
        signature = encode_dss_signature(
            int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        )
    key.verify(message, signature)
    return payload["no"]


def run(check, case):
    try:
        outcome = check(case)
    except Exception as error:
        return verdict(False, f"{type(error).__name__}: {error}")
    if outcome is None:
        return None
    result = verdict(True)
    if not isinstance(outcome, bool):
        result["value"] = outcome
    return result


def main():
    cases = json.load(sys.stdin)["cases"]
    results = []
    for case in cases:
        if case["kind"] == "mds_blob":
            results.append({"name": case["name"], "webauthn": None, "fido2": run(fido2_mds_blob, case)})
            continue
        primary = py_webauthn_registration if case["kind"] == "registration" else py_webauthn_assertion
        results.append(
            {
                "name": case["name"],
                "webauthn": run(lambda c: primary(c) or True, case),
                "fido2": run(fido2_packed, case),
            }
        )
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(2)
