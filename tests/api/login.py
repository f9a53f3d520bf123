"""Enrols the bootstrap admin of a running drover node with srptools and prints
`{"password": ..., "token": ...}` as JSON (for schemathesis and the other tests)."""

import json
import secrets
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from conftest import enrol_with_srptools, login_with_srptools  # noqa: E402

if __name__ == "__main__":
    import os

    email = os.environ["DROVER_API_ADMIN_EMAIL"]
    new_password = "srptools-" + secrets.token_hex(8)
    enrol_with_srptools(email, os.environ["DROVER_API_ADMIN_PASSWORD"], new_password)
    status, body, _ = login_with_srptools(email, new_password)
    if status != 200:
        sys.exit(f"login failed: {status} {body}")
    print(json.dumps({"password": new_password, "token": body["access_token"]}))
