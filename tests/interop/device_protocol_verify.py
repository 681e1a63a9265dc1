#!/usr/bin/env python3
"""Independent checks of keybridge's device protocol (docs/device-protocol.md).

Written from the protocol document with Python's `cryptography`, `hmac` and `urllib`, sharing no
code with the Rust crate. Usage: device_protocol_verify.py COMMAND, a JSON object on stdin, a
JSON object on stdout. Commands:

  verify-request   rebuild the canonical request string, verify the ECDSA P-256 signature and,
                   when `private_key_hex` is given, sign it deterministically (RFC 6979)
  sign-request     sign a canonical request string with a random nonce k (cryptography's default)
  verify-enrolment recompute the pairing key and HMAC proof, verify the device signature
  verify-binding   rebuild the sign-in binding message and verify the workstation's signature
  spki-pin         SHA-256 of a certificate's SubjectPublicKeyInfo
  parse-payload    read a pairing URI with urllib
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.parse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)


def b64url_decode(text):
    if "=" in text or "+" in text or "/" in text:
        raise ValueError(f"not unpadded base64url: {text!r}")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_key(text):
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(text))


def verify_raw(key, message, signature_text):
    raw = b64url_decode(signature_text)
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def raw_signature(der):
    r, s = decode_dss_signature(der)
    return b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def canonical_request(req):
    body = b64url_decode(req["body"])
    return "\n".join(
        [
            "keybridge-request-v1",
            req["kind"],
            req["signer_id"],
            req["method"],
            req["path_and_query"],
            str(req["timestamp"]),
            req["nonce"],
            b64url(hashlib.sha256(body).digest()),
        ]
    )


def verify_request(req):
    canonical = canonical_request(req)
    out = {
        "canonical": canonical,
        "valid": verify_raw(public_key(req["public_key"]), canonical.encode(), req["signature"]),
    }
    if "private_key_hex" in req:
        key = ec.derive_private_key(int(req["private_key_hex"], 16), ec.SECP256R1())
        der = key.sign(canonical.encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        out["deterministic_signature"] = raw_signature(der)
        out["public_key"] = b64url(
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
    return out


def sign_request(req):
    key = ec.derive_private_key(int(req["private_key_hex"], 16), ec.SECP256R1())
    canonical = canonical_request(req)
    der = key.sign(canonical.encode(), ec.ECDSA(hashes.SHA256()))
    return {"canonical": canonical, "signature": raw_signature(der)}


def verify_enrolment(req):
    if "secret" in req:
        pairing_key = hashlib.sha256(
            b"keybridge-pairing-secret-v1\n" + b64url_decode(req["secret"])
        ).digest()
    else:
        pairing_key = hashlib.sha256(b"keybridge-pairing-code-v1\n" + req["code"].encode()).digest()
    enrolment = req["enrolment"]
    pairing = enrolment["pairing"]
    reference = f"id:{pairing['id']}" if "id" in pairing else f"code:{pairing['code']}"
    device = enrolment["device"]
    message = "\n".join(
        [
            "keybridge-enrol-v1",
            f"pairing={reference}",
            f"server={enrolment['server']}",
            f"device_key={enrolment['device_public_key']}",
            f"name={device['name']}",
            f"model={device['model']}",
            f"os={device['os']}",
        ]
    ).encode()
    expected_proof = hmac.new(pairing_key, message, hashlib.sha256).digest()
    confirm = hashlib.sha256(b"keybridge-enrol-confirm-v1\n" + message).digest()
    digits = f"{int.from_bytes(confirm[:4], 'big') % 1_000_000:06d}"
    return {
        "confirmation_code": f"{digits[:3]} {digits[3:]}",
        "proof_valid": hmac.compare_digest(expected_proof, b64url_decode(enrolment["proof"])),
        "signature_valid": verify_raw(
            public_key(enrolment["device_public_key"]), message, enrolment["signature"]
        ),
    }


def verify_binding(req):
    binding = req["binding"]
    challenge = b64url_decode(req["challenge"])
    digest = b64url(hashlib.sha256(challenge).digest())
    message = "\n".join(
        [
            "keybridge-sign-in-binding-v1",
            f"request_id={binding['request_id']}",
            f"workstation_id={binding['workstation_id']}",
            f"rp_id={binding['rp_id']}",
            f"account={binding['upn'].lower()}",
            f"challenge_sha256={digest}",
            f"issued_at={binding['issued_at']}",
        ]
    )
    return {
        "challenge_matches": digest == binding["challenge_sha256"],
        "valid": verify_raw(public_key(req["public_key"]), message.encode(), binding["signature"]),
    }


def spki_pin(req):
    cert = x509.load_der_x509_certificate(b64url_decode(req["certificate"]))
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(spki).digest()
    return {
        "pin": b64url(digest),
        "rfc7469": "sha256/" + base64.b64encode(digest).decode(),
    }


def parse_payload(req):
    uri = req["uri"]
    scheme, _, rest = uri.partition(":")
    path, _, query = rest.partition("?")
    fields = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=True)
    return {
        "scheme": scheme,
        "path": path,
        "fields": {key: values[0] for key, values in fields.items()},
        "secret_bytes": len(b64url_decode(fields["s"][0])),
    }


COMMANDS = {
    "verify-request": verify_request,
    "sign-request": sign_request,
    "verify-enrolment": verify_enrolment,
    "verify-binding": verify_binding,
    "spki-pin": spki_pin,
    "parse-payload": parse_payload,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(COMMANDS)} < request.json")
    json.dump(COMMANDS[sys.argv[1]](json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    main()
