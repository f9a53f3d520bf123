"""Fixtures for the HTTP-level tests: the base URL of a running drover node (started by
deploy/lib/test-steps.sh `step_api`, or by hand) and login helpers built on Python's
`srptools` — an SRP-6a implementation independent of drover's."""

import json
import os
import secrets
import urllib.error
import urllib.request

import pytest
from srptools import SRPClientSession, SRPContext
from srptools.constants import HASH_SHA_256, PRIME_2048, PRIME_2048_GEN


def base_url():
    url = os.environ.get("DROVER_API_URL")
    if not url:
        pytest.skip("DROVER_API_URL is not set: these tests need a running drover node")
    return url.rstrip("/")


def call(method, path, body=None, token=None, headers=None):
    """One request; returns (status, headers, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base_url() + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, hdrs, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, hdrs, json.loads(text)
    except ValueError:
        return status, hdrs, text


def srptools_context(email, password):
    return SRPContext(
        email,
        password,
        prime=PRIME_2048,
        generator=PRIME_2048_GEN,
        hash_func=HASH_SHA_256,
        bits_salt=256,
    )


def enrol_with_srptools(email, temporary_password, new_password):
    """Legacy step, then enrol a verifier that srptools computed from its own x."""
    status, _, body = call("POST", "/api/auth/login", {"email": email, "password": temporary_password})
    assert status == 200, body
    ctx = srptools_context(email, new_password)
    _, verifier, salt = ctx.get_user_data_triplet()
    status, _, body = call(
        "POST",
        "/api/auth/srp/enrol",
        {"enrolment_ticket": body["enrolment_ticket"], "salt": salt, "verifier": verifier},
    )
    assert status == 204, body


def login_with_srptools(email, password):
    """The two SRP steps with srptools as the client; returns (status, body, session)."""
    session = SRPClientSession(srptools_context(email, password))
    status, _, init = call("POST", "/api/auth/srp/init", {"email": email, "a": session.public})
    assert status == 200, init
    _key, m1, _expected_m2 = session.process(init["b"], init["salt"])
    m1 = m1.decode() if isinstance(m1, bytes) else m1
    status, _, body = call("POST", "/api/auth/srp/verify", {"session_id": init["session_id"], "m1": m1})
    return status, body, session


@pytest.fixture(scope="session")
def admin():
    """The node's bootstrap super_admin, enrolled with srptools and logged in."""
    email = os.environ.get("DROVER_API_ADMIN_EMAIL")
    password = os.environ.get("DROVER_API_ADMIN_PASSWORD")
    if not email or not password:
        pytest.skip("DROVER_API_ADMIN_EMAIL / DROVER_API_ADMIN_PASSWORD not set")
    # Already enrolled (by tests/api/login.py) with this password, or enrol now.
    new_password = os.environ.get("DROVER_API_ADMIN_SRP_PASSWORD")
    if not new_password:
        new_password = "srptools-" + secrets.token_hex(8)
        enrol_with_srptools(email, password, new_password)
    status, body, _ = login_with_srptools(email, new_password)
    assert status == 200, body
    return {"email": email, "password": new_password, "token": body["access_token"]}
