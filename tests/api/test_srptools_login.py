"""Interop over HTTP: Python `srptools` logs in to a running drover node.

srptools computes x = H(s | H(I ":" P)) itself and enrols the verifier; drover only ever sees
salt and verifier, so a successful login proves the server's k, u, S, K, M1 and M2 follow the
RFC 5054 / srptools layout byte for byte, through the real HTTP API."""

from conftest import call, login_with_srptools


def test_srptools_logs_in_and_accepts_the_servers_proof(admin):
    for _ in range(5):
        status, body, session = login_with_srptools(admin["email"], admin["password"])
        assert status == 200, body
        # srptools checks M2 itself.
        assert session.verify_proof(body["m2"]), "srptools rejects the server's M2"
        status, _, me = call("GET", "/api/auth/me", token=body["access_token"])
        assert status == 200 and me["email"] == admin["email"]


def test_wrong_password_is_refused_without_telling_why(admin):
    status, body, _ = login_with_srptools(admin["email"], admin["password"] + "x")
    assert status == 401
    assert body["code"] == "invalid_credentials"
    assert set(body) == {"code", "message", "request_id"}


def test_unknown_accounts_get_a_challenge_too():
    status, body, _ = login_with_srptools("nobody-here@example.com", "whatever")
    assert status == 401 and body["code"] == "invalid_credentials"


def test_spec_is_served_and_names_every_route(admin):
    status, _, spec = call("GET", "/api/openapi.json")
    assert status == 200
    assert "/api/auth/srp/init" in spec["paths"]
    assert "/api/tenants/{tenant_id}/devices" in spec["paths"]
