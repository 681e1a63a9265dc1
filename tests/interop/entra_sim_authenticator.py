"""A software FIDO2 authenticator for entra-sim's tests, written on `cryptography` and `cbor2`
only (no keybridge code), so that entra-sim is checked against an independent producer.

Reads one JSON request on stdin, prints one JSON answer:
- {"op": "create", "options": <creationOptions publicKey>, "fmt": "none"|"packed-self"|"packed-x5c",
   "alg": -7|-257, "flags": {"be": bool, "bs": bool, "uv": bool, "up": bool},
   "origin": "...", "rpId": "...", "aaguid": "<uuid>", "attestation": {"cert_pem", "key_pem"}?}
  -> {"credential": <PublicKeyCredential JSON>, "key_pem": "...", "credential_id": "<b64url>"}
- {"op": "get", "challenge": "...", "rpId": "...", "origin": "...", "key_pem": "...",
   "alg": -7|-257, "credential_id": "...", "counter": int, "flags": {...}}
  -> {"credential": <PublicKeyCredential JSON>}
"""

import base64
import hashlib
import json
import os
import struct
import sys
import uuid

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def flags_byte(flags, at=False):
    value = 0
    if flags.get("up", True):
        value |= 0x01
    if flags.get("uv", True):
        value |= 0x04
    if flags.get("be", False):
        value |= 0x08
    if flags.get("bs", False):
        value |= 0x10
    if at:
        value |= 0x40
    return value


def cose_key(public_key, alg):
    if alg == -7:
        numbers = public_key.public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
    numbers = public_key.public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return cbor2.dumps({1: 3, 3: -257, -1: n, -2: e})


def sign(private_key, alg, data):
    if alg == -7:
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def client_data(kind, challenge, origin):
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
        separators=(",", ":"),
    ).encode()


def create(request):
    options = request["options"]
    alg = request.get("alg", -7)
    if alg == -7:
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    credential_id = os.urandom(request.get("credential_id_length", 32))
    aaguid = uuid.UUID(request.get("aaguid", "00000000-0000-0000-0000-000000000000")).bytes
    rp_id = request.get("rpId", options["rp"]["id"])
    auth_data = (
        hashlib.sha256(rp_id.encode()).digest()
        + bytes([flags_byte(request.get("flags", {}), at=True)])
        + struct.pack(">I", 0)
        + aaguid
        + struct.pack(">H", len(credential_id))
        + credential_id
        + cose_key(key.public_key(), alg)
    )
    cdj = client_data(request.get("type", "webauthn.create"), options["challenge"], request.get("origin", "https://login.microsoft.com"))
    to_sign = auth_data + hashlib.sha256(cdj).digest()
    fmt = request.get("fmt", "packed-self")
    if fmt == "none":
        attestation = {"fmt": "none", "attStmt": {}, "authData": auth_data}
    elif fmt == "packed-self":
        attestation = {"fmt": "packed", "attStmt": {"alg": alg, "sig": sign(key, alg, to_sign)}, "authData": auth_data}
    else:
        att = request["attestation"]
        att_key = serialization.load_pem_private_key(att["key_pem"].encode(), None)
        chain = [x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER) for pem in att["chain_pem"]]
        attestation = {
            "fmt": "packed",
            "attStmt": {"alg": -7, "sig": att_key.sign(to_sign, ec.ECDSA(hashes.SHA256())), "x5c": chain},
            "authData": auth_data,
        }
    credential = {
        "id": b64url(credential_id),
        "rawId": b64url(credential_id),
        "type": "public-key",
        "response": {"clientDataJSON": b64url(cdj), "attestationObject": b64url(cbor2.dumps(attestation))},
        "clientExtensionResults": {"credProtect": 1, "hmac-secret": True},
    }
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return {"credential": credential, "key_pem": key_pem, "credential_id": b64url(credential_id)}


def get(request):
    key = serialization.load_pem_private_key(request["key_pem"].encode(), None)
    alg = request.get("alg", -7)
    auth_data = (
        hashlib.sha256(request["rpId"].encode()).digest()
        + bytes([flags_byte(request.get("flags", {}))])
        + struct.pack(">I", request["counter"])
    )
    cdj = client_data("webauthn.get", request["challenge"], request.get("origin", "https://login.microsoftonline.com"))
    signature = sign(key, alg, auth_data + hashlib.sha256(cdj).digest())
    return {
        "credential": {
            "id": request["credential_id"],
            "rawId": request["credential_id"],
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(cdj),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
            "clientExtensionResults": {},
        }
    }


def main():
    request = json.load(sys.stdin)
    answer = create(request) if request["op"] == "create" else get(request)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
