"""Checks a client assertion made by keybridge-graph with an independent implementation
(pyca/cryptography), against Microsoft's documented shape (certificate-credentials):
header alg PS256 + x5t#S256 (or RS256 + x5t), claims aud/iss/sub/jti/nbf/iat/exp, and the
RSA signature under the certificate's public key.

Input on stdin: {"jwt", "certificate_pem", "audience", "client_id"}. Prints "ok" or the
first failed check and exits non-zero.
"""
import base64
import hashlib
import json
import sys
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fail(message):
    print(message)
    sys.exit(1)


def main():
    request = json.load(sys.stdin)
    header_b64, claims_b64, signature_b64 = request["jwt"].split(".")
    header = json.loads(b64url_decode(header_b64))
    claims = json.loads(b64url_decode(claims_b64))
    signature = b64url_decode(signature_b64)
    certificate = x509.load_pem_x509_certificate(request["certificate_pem"].encode())
    der = certificate.public_bytes(serialization.Encoding.DER)

    if header.get("typ") != "JWT":
        fail(f"typ is {header.get('typ')!r}")
    if header.get("alg") == "PS256":
        if header.get("x5t#S256") != b64url(hashlib.sha256(der).digest()):
            fail("x5t#S256 is not the SHA-256 thumbprint of the certificate")
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    elif header.get("alg") == "RS256":
        if header.get("x5t") != b64url(hashlib.sha1(der).digest()):
            fail("x5t is not the SHA-1 thumbprint of the certificate")
        pad = padding.PKCS1v15()
    else:
        fail(f"alg is {header.get('alg')!r}")

    try:
        certificate.public_key().verify(
            signature, f"{header_b64}.{claims_b64}".encode(), pad, hashes.SHA256()
        )
    except Exception as error:  # InvalidSignature carries no message
        fail(f"signature does not verify: {type(error).__name__}")

    now = time.time()
    if claims.get("aud") != request["audience"]:
        fail(f"aud is {claims.get('aud')!r}")
    if claims.get("iss") != request["client_id"] or claims.get("sub") != request["client_id"]:
        fail("iss and sub must both be the client id")
    uuid.UUID(claims["jti"])
    if not (claims["nbf"] <= now + 5 and claims["iat"] <= now + 5):
        fail("nbf/iat in the future")
    if not (now < claims["exp"] <= claims["nbf"] + 600):
        fail("exp must be in the future and at most 10 minutes after nbf")
    print("ok")


main()
