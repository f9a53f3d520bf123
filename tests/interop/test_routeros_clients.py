"""Interop: the drover-sim binary against two independent Python RouterOS clients
(librouteros and RouterOS-api) over API-SSL, including a CA-verified connection.

The binary is taken from $DROVER_SIM_BIN, else $CARGO_TARGET_DIR/debug/drover-sim, else
target/debug/drover-sim under the repository root; it is built with cargo when missing.
"""

import json
import os
import random
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path

import librouteros
import pytest
import routeros_api
from librouteros.exceptions import TrapError
from librouteros.login import plain, token
from librouteros.query import Key
from routeros_api.exceptions import RouterOsApiCommunicationError
from routeros_api.query import IsEqualQuery, OrQuery

REPO = Path(__file__).resolve().parents[2]
USER = "admin"
PASSWORD = "interop-secret"
# Device order follows --models: 0 RB5009 (wired), 1 hAP ax^3 (wifi), 2 CHR (no health).
MODELS = "RB5009UG+S+,hAP ax^3,CHR"


def sim_binary() -> Path:
    if os.environ.get("DROVER_SIM_BIN"):
        return Path(os.environ["DROVER_SIM_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    path = target / "debug" / "drover-sim"
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "-p", "routeros-sim", "--bin", "drover-sim"],
            cwd=REPO,
            check=True,
        )
    return path


class Sim:
    def __init__(self, proc, ready, ca_path):
        self.proc = proc
        self.ready = ready
        self.ca_path = ca_path
        self.control = "http://" + ready["control"]
        self.devices = self.get("/devices")

    def host(self, i: int) -> str:
        return self.devices[i]["address"]

    def get(self, path):
        with urllib.request.urlopen(self.control + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(
            self.control + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


def read_line_with_timeout(stream, seconds):
    box = []
    t = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    t.start()
    t.join(seconds)
    return box[0] if box else ""


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    binary = sim_binary()
    tmp = tmp_path_factory.mktemp("sim")
    ca_path = tmp / "ca.pem"
    for _attempt in range(5):
        base = f"127.{random.randint(64, 250)}.{random.randint(0, 255)}.1"
        proc = subprocess.Popen(
            [
                str(binary),
                "--devices", "3",
                "--base", base,
                "--models", MODELS,
                "--password", PASSWORD,
                "--seed", "7",
                "--ca-out", str(ca_path),
                "--ready-file", str(tmp / "ready.json"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = read_line_with_timeout(proc.stdout, 60)
        if line:
            ready = json.loads(line)
            assert ready["ready"] is True
            assert ready["first"] == base
            assert json.loads((tmp / "ready.json").read_text()) == ready
            s = Sim(proc, ready, ca_path)
            yield s
            proc.terminate()
            proc.wait(timeout=10)
            return
        proc.kill()
        proc.wait()
    pytest.fail("drover-sim did not get ready")


def insecure_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def verified_ctx(ca_path):
    ctx = ssl.create_default_context(cafile=str(ca_path))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def lr_connect(sim, i, ctx=None, **kw):
    ctx = ctx or insecure_ctx()
    return librouteros.connect(
        sim.host(i), USER, PASSWORD, port=8729, ssl_wrapper=ctx.wrap_socket, **kw
    )


def ra_pool(sim, i, plaintext_login, ctx=None):
    if ctx is None:
        return routeros_api.RouterOsApiPool(
            sim.host(i),
            username=USER,
            password=PASSWORD,
            port=8729,
            use_ssl=True,
            ssl_verify=False,
            ssl_verify_hostname=False,
            plaintext_login=plaintext_login,
        )
    return routeros_api.RouterOsApiPool(
        sim.host(i),
        username=USER,
        password=PASSWORD,
        port=8729,
        plaintext_login=plaintext_login,
        ssl_context=ctx,
    )


# ---------------------------------------------------------------- librouteros


def test_librouteros_plain_login_and_resource_print(sim):
    api = lr_connect(sim, 0, login_method=plain)
    rows = list(api("/system/resource/print"))
    assert len(rows) == 1
    row = rows[0]
    assert row["board-name"] == "RB5009UG+S+"
    assert row["version"] == "7.18.2 (stable)"
    assert row["total-memory"] > row["free-memory"] > 0
    assert row["uptime"].endswith("s")
    api.close()


def test_librouteros_token_login(sim):
    api = lr_connect(sim, 1, login_method=token)
    rows = list(api("/system/identity/print"))
    assert rows == [{"name": "sim-1"}]
    api.close()


def test_librouteros_wrong_password_is_a_trap(sim):
    ctx = insecure_ctx()
    with pytest.raises(TrapError) as e:
        librouteros.connect(sim.host(0), USER, "nope", port=8729, ssl_wrapper=ctx.wrap_socket)
    assert "invalid user name or password" in str(e.value)


def test_librouteros_proplist_and_query(sim):
    api = lr_connect(sim, 0)
    rows = list(api.rawCmd("/interface/print", "=.proplist=name,rx-byte,running", "?type=ether"))
    assert [r["name"] for r in rows] == ["ether1", "ether2", "ether3", "ether4", "ether5"]
    assert all(set(r) == {"name", "rx-byte", "running"} for r in rows)
    assert [r["running"] for r in rows].count(False) == 1
    name, kind = Key("name"), Key("type")
    found = list(api.path("interface").select(name).where(kind == "vlan"))
    assert found == [{"name": "vlan10"}]
    # A row with none of the listed properties is a bare !re (which librouteros drops).
    assert list(api.rawCmd("/system/resource/print", "=.proplist=nothing-here")) == []
    counted = list(api.rawCmd("/interface/print", "=count-only=", "?type=ether"))
    assert counted == [{"ret": 5}]
    api.close()


def test_librouteros_add_set_remove(sim):
    api = lr_connect(sim, 0)
    addresses = api.path("ip", "address")
    new_id = addresses.add(address="10.77.0.1/24", interface="ether3", comment="lr")
    assert new_id.startswith("*")
    addresses.update(**{".id": new_id, "comment": "lr-changed"})
    mine = [r for r in addresses if r[".id"] == new_id]
    assert mine[0]["comment"] == "lr-changed"
    assert mine[0]["network"] == "10.77.0.0"
    addresses.remove(new_id)
    assert not [r for r in addresses if r[".id"] == new_id]
    with pytest.raises(TrapError) as e:
        addresses.remove(new_id)
    assert "no such item" in str(e.value)
    api.close()


def test_librouteros_trap_on_bad_command(sim):
    api = lr_connect(sim, 0)
    with pytest.raises(TrapError) as e:
        list(api("/no/such/menu/print"))
    assert "no such command prefix" in str(e.value)
    # The connection is still usable after the trap.
    assert list(api("/system/identity/print"))[0]["name"] == "sim-0"
    api.close()


def test_librouteros_empty_reply_on_chr_health(sim):
    api = lr_connect(sim, 2)
    assert list(api("/system/health/print")) == []
    assert list(api("/system/routerboard/print")) == [{"routerboard": False}]
    api.close()


def test_librouteros_ca_verified(sim):
    api = lr_connect(sim, 1, ctx=verified_ctx(sim.ca_path))
    assert list(api("/system/resource/print"))[0]["board-name"] == "hAP ax^3"
    api.close()


def test_librouteros_rejects_a_foreign_ca(sim, tmp_path):
    # The system trust store does not know the simulator CA.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    with pytest.raises(ssl.SSLError):
        librouteros.connect(sim.host(0), USER, PASSWORD, port=8729, ssl_wrapper=ctx.wrap_socket)


# ---------------------------------------------------------------- RouterOS-api


def test_routeros_api_token_login_and_tagged_get(sim):
    pool = ra_pool(sim, 0, plaintext_login=False)
    api = pool.get_api()
    ether = api.get_resource("/interface").get(type="ether")
    assert [r["name"] for r in ether] == ["ether1", "ether2", "ether3", "ether4", "ether5"]
    pool.disconnect()


def test_routeros_api_plaintext_login_on_a_legacy_device(sim):
    # A legacy device answers the modern login with a challenge; the client completes it.
    assert sim.post("/legacy_login", {"target": {"index": 1}, "on": True})["affected"] == 1
    try:
        pool = ra_pool(sim, 1, plaintext_login=True)
        api = pool.get_api()
        rows = api.get_resource("/system/resource").get()
        assert rows[0]["board-name"] == "hAP ax^3"
        pool.disconnect()
    finally:
        sim.post("/legacy_login", {"target": {"index": 1}, "on": False})


def test_routeros_api_proplist_and_query_chain(sim):
    pool = ra_pool(sim, 0, plaintext_login=True)
    api = pool.get_api()
    binary = api.get_binary_resource("/")
    rows = binary.call("system/resource/print", {".proplist": b"free-hdd-space,total-hdd-space"})
    assert [set(r) for r in rows] == [{"free-hdd-space", "total-hdd-space"}]
    iface = api.get_resource("/interface")
    either = iface.call(
        "print",
        {".proplist": "name"},
        queries={},
        additional_queries=(
            OrQuery(IsEqualQuery("type", "vlan"), IsEqualQuery("type", "wg")),
        ),
    )
    assert sorted(r["name"] for r in either) == ["vlan10", "wg0"]
    pool.disconnect()


def test_routeros_api_add_set_remove(sim):
    pool = ra_pool(sim, 0, plaintext_login=True)
    api = pool.get_api()
    sched = api.get_resource("/system/scheduler")
    sched.add(name="interop-job", interval="1h", on_event="/log info hi")
    rows = sched.get(name="interop-job")
    assert len(rows) == 1 and rows[0]["interval"] == "1h"
    job_id = rows[0]["id"]
    sched.set(id=job_id, interval="30m")
    assert sched.get(name="interop-job")[0]["interval"] == "30m"
    sched.remove(id=job_id)
    assert sched.get(name="interop-job") == []
    pool.disconnect()


def test_routeros_api_trap_on_bad_command(sim):
    pool = ra_pool(sim, 0, plaintext_login=True)
    api = pool.get_api()
    with pytest.raises(RouterOsApiCommunicationError) as e:
        api.get_resource("/interface").call("frobnicate")
    assert "no such command" in str(e.value)
    assert api.get_resource("/system/identity").get()[0]["name"] == "sim-0"
    pool.disconnect()


def test_routeros_api_empty_reply_with_a_tag(sim):
    pool = ra_pool(sim, 2, plaintext_login=True)
    api = pool.get_api()
    assert api.get_resource("/system/health").get() == []
    pool.disconnect()


def test_routeros_api_ca_verified(sim):
    pool = ra_pool(sim, 1, plaintext_login=True, ctx=verified_ctx(sim.ca_path))
    api = pool.get_api()
    assert api.get_resource("/system/routerboard").get()[0]["model"]
    pool.disconnect()


# ---------------------------------------------------------------- control API


def test_control_api_counts_polls(sim):
    before = sim.get(f"/stats?device={sim.host(0)}")["polls_served"]
    api = lr_connect(sim, 0)
    list(api("/system/resource/print"))
    api.close()
    after = sim.get(f"/stats?device={sim.host(0)}")
    assert after["polls_served"] == before + 1
    assert len(after["recent_polls_unix_ms"]) >= 1
    assert sim.get("/health")["devices"] == 3
    with urllib.request.urlopen(sim.control + "/ca.pem", timeout=10) as r:
        assert r.read().decode() == sim.ca_path.read_text()
