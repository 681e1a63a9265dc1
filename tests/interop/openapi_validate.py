#!/usr/bin/env python3
"""Validates an OpenAPI document with openapi-spec-validator (an implementation independent of
keybridge). Usage: openapi_validate.py < document.json. Prints the OpenAPI version and the number
of operations on success; exits 1 with every error found otherwise."""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator


def main():
    document = json.load(sys.stdin)
    validator = OpenAPIV31SpecValidator(document)
    try:
        errors = list(validator.iter_errors())
    except Exception as error:  # e.g. a $ref to nowhere stops the walk
        print(f"cannot walk the document: {error}", file=sys.stderr)
        sys.exit(1)
    if errors:
        for error in errors:
            path = "/".join(str(p) for p in error.absolute_path)
            print(f"{path}: {error.message}", file=sys.stderr)
        sys.exit(1)
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    operations = sum(
        1 for item in document.get("paths", {}).values() for key in item if key in methods
    )
    json.dump({"openapi": document["openapi"], "operations": operations}, sys.stdout)


if __name__ == "__main__":
    main()
