#!/usr/bin/env python3
"""Independent checks of keybridge-authenticator's outputs.

Uses py_webauthn (webauthn 3.0.1), python-fido2 (2.2.1) and cryptography, none of which share
code with keybridge. Reads one JSON request on stdin, writes one JSON result on stdout, and
exits 1 with the reason on stderr when a check fails.

Commands (first argument):

  registration  {"credential": <PublicKeyCredential JSON>, "challenge": "<b64url>",
                 "origin": "...", "rp_id": "...", "root_pem": "<attestation root PEM>" | null,
                 "expect_fmt": "packed" | "none", "expect_x5c": bool}
      py_webauthn verify_registration_response with require_user_verification=True and the
      root as the only packed trust anchor; python-fido2 re-verifies the packed statement and
      the x5c chain to the root. Result: fmt, aaguid, flags, credential public key.

  assertion     {"credential": <assertion JSON>, "challenge": "<b64url>", "origin": "...",
                 "rp_id": "...", "public_key": "<b64url COSE key>", "sign_count": int}
      py_webauthn verify_authentication_response (UV required) and python-fido2's COSE
      signature check. Result: new sign count, flags.

  mds           {"blob": "<JWS>", "mds_root_pem": "...", "attestation_root_pem": "...",
                 "aaguid": "...", "registration": {"attestation_object": "<b64url>",
                 "client_data_json": "<b64url>"} | null}
      Checks the BLOB's x5c chain to the MDS root and its ES256 JWS signature (RFC 7515/7518:
      raw r||s) with cryptography, parses the payload with python-fido2's MDS3 schema, finds
      the AAGUID's entry, and, given a registration, verifies it with MdsAttestationVerifier.
"""

import base64
import datetime
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from fido2 import cbor
from fido2.attestation import AttestationType, PackedAttestation, verify_x509_chain
from fido2.cose import CoseKey
from fido2.mds3 import MdsAttestationVerifier, MetadataBlobPayload
from fido2.webauthn import AttestationObject, AuthenticatorData
from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.structs import AttestationFormat


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def enum_text(value):
    return getattr(value, "value", value)


def flags_of(auth_data):
    return {
        "up": auth_data.is_user_present(),
        "uv": auth_data.is_user_verified(),
        "be": auth_data.is_backup_eligible(),
        "bs": auth_data.is_backed_up(),
        "at": auth_data.is_attested(),
        "ed": auth_data.has_extension_data(),
    }


def registration(request):
    credential = request["credential"]
    roots = {}
    if request.get("root_pem"):
        roots = {AttestationFormat.PACKED: [request["root_pem"].encode()]}
    verified = verify_registration_response(
        credential=credential,
        expected_challenge=b64url_decode(request["challenge"]),
        expected_origin=request["origin"],
        expected_rp_id=request["rp_id"],
        require_user_verification=True,
        pem_root_certs_bytes_by_fmt=roots,
    )
    att_bytes = b64url_decode(credential["response"]["attestationObject"])
    cdj = b64url_decode(credential["response"]["clientDataJSON"])
    att = AttestationObject(att_bytes)
    auth_data = att.auth_data
    if att.fmt != request.get("expect_fmt", att.fmt):
        fail(f"fmt is {att.fmt}, expected {request['expect_fmt']}")

    attestation_type = None
    if att.fmt == "packed":
        result = PackedAttestation().verify(att.att_stmt, auth_data, hashlib.sha256(cdj).digest())
        attestation_type = result.attestation_type.name
        if request.get("expect_x5c"):
            if result.attestation_type != AttestationType.BASIC:
                fail(f"expected basic (x5c) attestation, got {result.attestation_type}")
            root_der = x509.load_pem_x509_certificate(request["root_pem"].encode()).public_bytes(Encoding.DER)
            verify_x509_chain(result.trust_path + [root_der])
        elif result.attestation_type != AttestationType.SELF:
            fail(f"expected self attestation, got {result.attestation_type}")

    extensions = auth_data.extensions or {}
    print(
        json.dumps(
            {
                "fmt": enum_text(verified.fmt),
                "aaguid": verified.aaguid,
                "user_verified": verified.user_verified,
                "credential_device_type": enum_text(verified.credential_device_type),
                "credential_backed_up": verified.credential_backed_up,
                "sign_count": verified.sign_count,
                "credential_id": b64url(verified.credential_id),
                "public_key": b64url(verified.credential_public_key),
                "flags": flags_of(auth_data),
                "attestation_type": attestation_type,
                "extensions": {str(k): v for k, v in extensions.items()},
                "fido2_aaguid": str(auth_data.credential_data.aaguid),
            }
        )
    )


def assertion(request):
    credential = request["credential"]
    public_key = b64url_decode(request["public_key"])
    verified = verify_authentication_response(
        credential=credential,
        expected_challenge=b64url_decode(request["challenge"]),
        expected_origin=request["origin"],
        expected_rp_id=request["rp_id"],
        credential_public_key=public_key,
        credential_current_sign_count=request["sign_count"],
        require_user_verification=True,
    )
    auth_bytes = b64url_decode(credential["response"]["authenticatorData"])
    cdj = b64url_decode(credential["response"]["clientDataJSON"])
    signature = b64url_decode(credential["response"]["signature"])
    CoseKey.parse(cbor.decode(public_key)).verify(auth_bytes + hashlib.sha256(cdj).digest(), signature)
    auth_data = AuthenticatorData(auth_bytes)
    print(
        json.dumps(
            {
                "new_sign_count": verified.new_sign_count,
                "user_verified": verified.user_verified,
                "credential_backed_up": verified.credential_backed_up,
                "flags": flags_of(auth_data),
                "user_handle": credential["response"].get("userHandle"),
            }
        )
    )


def mds(request):
    blob = request["blob"].strip()
    signing_input, signature_b64 = blob.rsplit(".", 1)
    header_b64, payload_b64 = signing_input.split(".")
    header = json.loads(b64url_decode(header_b64))
    payload = json.loads(b64url_decode(payload_b64))
    if header.get("alg") != "ES256":
        fail(f"BLOB alg is {header.get('alg')}, expected ES256")
    mds_root = x509.load_pem_x509_certificate(request["mds_root_pem"].encode())
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    now = datetime.datetime.now(datetime.timezone.utc)
    for child, parent in zip(chain, chain[1:] + [mds_root]):
        child.verify_directly_issued_by(parent)
        if not (child.not_valid_before_utc <= now <= child.not_valid_after_utc):
            fail(f"certificate {child.subject} is not valid now")
    # Also through python-fido2's chain check.
    verify_x509_chain([c.public_bytes(Encoding.DER) for c in chain] + [mds_root.public_bytes(Encoding.DER)])
    raw = b64url_decode(signature_b64)
    if len(raw) != 64:
        fail(f"ES256 JWS signature must be 64 bytes (r||s), got {len(raw)}")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    chain[0].public_key().verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))

    parsed = MetadataBlobPayload.from_dict(payload)
    entries = [e for e in parsed.entries if e.aaguid is not None and str(e.aaguid) == request["aaguid"]]
    if len(entries) != 1:
        fail(f"expected one entry for {request['aaguid']}, found {len(entries)}")
    entry = entries[0]
    statement = entry.metadata_statement
    root_der = x509.load_pem_x509_certificate(request["attestation_root_pem"].encode()).public_bytes(Encoding.DER)
    if list(statement.attestation_root_certificates) != [root_der]:
        fail("the metadata statement's attestationRootCertificates is not the attestation root")
    result = {
        "no": parsed.no,
        "next_update": parsed.next_update.isoformat(),
        "status": [r.status.value for r in entry.status_reports],
        "description": statement.description,
        "attestation_types": list(statement.attestation_types),
        "get_info": statement.authenticator_get_info,
        "signer_subject": chain[0].subject.rfc4514_string(),
    }
    registration_request = request.get("registration")
    if registration_request:
        att = AttestationObject(b64url_decode(registration_request["attestation_object"]))
        cdj = b64url_decode(registration_request["client_data_json"])
        verifier = MdsAttestationVerifier(parsed)
        found = verifier.find_entry(att, hashlib.sha256(cdj).digest())
        if found is None:
            fail("MdsAttestationVerifier found no trusted entry for the registration")
        result["registration_entry_aaguid"] = str(found.aaguid)
    print(json.dumps(result))


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("registration", "assertion", "mds"):
        fail("usage: authenticator_verify.py registration|assertion|mds < request.json")
    request = json.load(sys.stdin)
    try:
        {"registration": registration, "assertion": assertion, "mds": mds}[sys.argv[1]](request)
    except SystemExit:
        raise
    except Exception as error:  # report every verifier failure as a failed check
        fail(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
