#!/usr/bin/env python3
"""Independent checks of what keybridge's server hands out, with Python's `cryptography` and
standard library, sharing no code with the Rust crate. Usage: server_verify.py COMMAND, a JSON
object on stdin, a JSON object on stdout. Commands:

  spki-pin   "sha256/" + base64 of SHA-256 of a PEM or DER certificate's SubjectPublicKeyInfo
             (RFC 7469); input {"certificate_pem"} or {"certificate_der_b64"}
  read-zip   list a zip (the desktop-client download): names, Unix modes and contents
             (base64), after checking every CRC; input {"zip_b64"}
"""

import base64
import hashlib
import io
import json
import sys
import zipfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def spki_pin(request):
    if "certificate_pem" in request:
        certificate = x509.load_pem_x509_certificate(request["certificate_pem"].encode())
    else:
        certificate = x509.load_der_x509_certificate(base64.b64decode(request["certificate_der_b64"]))
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"pin": "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()}


def read_zip(request):
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(request["zip_b64"])))
    bad = archive.testzip()
    entries = {}
    for info in archive.infolist():
        entries[info.filename] = {
            "mode": (info.external_attr >> 16) & 0o777,
            "content_b64": base64.b64encode(archive.read(info)).decode(),
            "compressed": info.compress_type == zipfile.ZIP_DEFLATED,
        }
    return {"crc_ok": bad is None, "entries": entries}


COMMANDS = {"spki-pin": spki_pin, "read-zip": read_zip}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: server_verify.py " + "|".join(COMMANDS))
    json.dump(COMMANDS[sys.argv[1]](json.load(sys.stdin)), sys.stdout)
