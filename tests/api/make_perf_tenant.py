"""Creates a tenant with N devices through the real API (bulk add, 500 at a time) for the
browser performance check, and prints its id. The devices point at closed loopback ports, so
they stay offline without any traffic leaving the machine.

Env: DROVER_API_URL, PERF_ADMIN_EMAIL, PERF_ADMIN_PASSWORD (a not-yet-enrolled super_admin),
PERF_ROWS (default 10000)."""

import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(__file__))
from conftest import call, enrol_with_srptools, login_with_srptools  # noqa: E402

if __name__ == "__main__":
    email = os.environ["PERF_ADMIN_EMAIL"]
    rows = int(os.environ.get("PERF_ROWS", "10000"))
    password = "perf-" + secrets.token_hex(8)
    enrol_with_srptools(email, os.environ["PERF_ADMIN_PASSWORD"], password)
    status, body, _ = login_with_srptools(email, password)
    assert status == 200, body
    token = body["access_token"]
    status, _, tenant = call(
        "POST", "/api/tenants", {"name": f"perf-{secrets.token_hex(3)}", "default_poll_interval_s": 86400}, token
    )
    assert status == 200, tenant
    made = 0
    while made < rows:
        batch = [
            {"name": f"perf-{i:06d}", "address": f"127.254.{i // 250}.{i % 250 + 1}", "api_port": 9}
            for i in range(made, min(made + 500, rows))
        ]
        status, _, body = call(
            "POST",
            f"/api/tenants/{tenant['id']}/devices/bulk",
            {"username": "perf", "password": "perf", "tls_mode": "plain", "devices": batch},
            token,
        )
        assert status == 200, body
        made += len(batch)
    print(tenant["id"])
