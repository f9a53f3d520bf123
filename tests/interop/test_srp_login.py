"""Interop: Python `srptools` 2.0.0 as the SRP-6a client against drover's Rust server.

The server is drover-auth's example `srp_server_stdio` (line-delimited JSON on stdin/stdout),
built with cargo into $CARGO_TARGET_DIR (default: target/ under the repository root). srptools
makes the verifier from its own x = H(s | H(I ":" P)); the Rust server only ever sees the
salt and verifier, as in production (where x comes from the 2SKD derivation instead: a few
handshakes below use that x, computed in plain Python).
"""

import hashlib
import hmac
import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest
from srptools import SRPClientSession, SRPContext
from srptools.constants import HASH_SHA_256, PRIME_2048, PRIME_2048_GEN

REPO = Path(__file__).resolve().parents[2]
HANDSHAKES = 60


def server_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    # always ask cargo: a no-op when up to date, and never a stale binary
    subprocess.run(
        ["cargo", "build", "-q", "-p", "drover-auth", "--example", "srp_server_stdio"],
        cwd=REPO,
        check=True,
    )
    return target / "debug" / "examples" / "srp_server_stdio"


class Server:
    def __init__(self, proc):
        self.proc = proc

    def call(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "server closed its output"
        return json.loads(line)


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [str(server_binary())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield Server(proc)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def context(identity, password):
    return SRPContext(
        identity,
        password,
        prime=PRIME_2048,
        generator=PRIME_2048_GEN,
        hash_func=HASH_SHA_256,
        bits_salt=256,
    )


class FixedXContext(SRPContext):
    """srptools with drover's x (from 2SKD) instead of H(s | H(I:P))."""

    def __init__(self, identity, x):
        super().__init__(identity, "unused", prime=PRIME_2048, generator=PRIME_2048_GEN,
                         hash_func=HASH_SHA_256)
        self._x = x

    def get_common_password_hash(self, salt):
        return self._x


def handshake(server, ctx, identity, salt_hex, verifier_hex):
    init = server.call(op="init", identity=identity, salt=salt_hex, verifier=verifier_hex)
    assert init["ok"], init
    client = SRPClientSession(ctx)
    _key, m1, expected_m2 = client.process(init["B"], salt_hex)
    reply = server.call(op="verify", session=init["session"], A=client.public, M1=m1)
    return client, init, reply, m1


def test_srptools_client_logs_in(server):
    accepted = 0
    for i in range(HANDSHAKES):
        identity = f"user{i}-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(12 + i % 7)
        ctx = context(identity, password)
        _, verifier, salt = ctx.get_user_data_triplet(binary=True)
        client, _init, reply, _ = handshake(server, context(identity, password), identity,
                                            salt.hex(), verifier.hex())
        assert reply["ok"], (i, reply)
        assert client.verify_proof(reply["M2"]), i
        accepted += 1
    assert accepted == HANDSHAKES


def test_wrong_password_is_rejected(server):
    identity = "mallory@example.com"
    _, verifier, salt = context(identity, "right password").get_user_data_triplet(binary=True)
    _, _, reply, _ = handshake(server, context(identity, "wrong password"), identity,
                               salt.hex(), verifier.hex())
    assert not reply["ok"]
    assert "proof" in reply["error"]


def test_session_is_single_use(server):
    identity = "replay@example.com"
    _, verifier, salt = context(identity, "pw").get_user_data_triplet(binary=True)
    init = server.call(op="init", identity=identity, salt=salt.hex(), verifier=verifier.hex())
    client = SRPClientSession(context(identity, "pw"))
    _, m1, _ = client.process(init["B"], salt.hex())
    first = server.call(op="verify", session=init["session"], A=client.public, M1=m1)
    second = server.call(op="verify", session=init["session"], A=client.public, M1=m1)
    assert first["ok"] and not second["ok"]


def test_zero_and_n_as_a_are_rejected(server):
    identity = "zero@example.com"
    _, verifier, salt = context(identity, "pw").get_user_data_triplet(binary=True)
    for a in ["00", PRIME_2048.replace("\n", "").lower()]:
        init = server.call(op="init", identity=identity, salt=salt.hex(), verifier=verifier.hex())
        reply = server.call(op="verify", session=init["session"], A=a, M1="00" * 32)
        assert not reply["ok"], a


# ---- drover's own x: 2SKD in plain Python (docs/auth.md), a few handshakes

def hkdf(ikm, salt, info, length=32):
    prk = hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


def two_skd_x(password, secret_key, email, salt, iterations):
    em = email.lower().encode()
    p = hashlib.pbkdf2_hmac("sha256", password.encode(), hkdf(salt, em, b"srp"), iterations, 32)
    skd = hkdf(secret_key, em, b"auk")
    return hkdf(bytes(a ^ b for a, b in zip(p, skd)), b"", b"srp-x")


def test_two_skd_x_logs_in(server):
    for i in range(5):
        email = f"Person{i}@Example.COM"
        identity = email.lower()
        salt = secrets.token_bytes(32)
        x = int.from_bytes(two_skd_x("pässwörd", secrets.token_bytes(16), email, salt, 1000), "big")
        ctx = FixedXContext(identity, x)
        verifier = ctx.get_common_password_verifier(x)
        v_hex = verifier.to_bytes((verifier.bit_length() + 7) // 8, "big").hex()
        client, _, reply, _ = handshake(server, FixedXContext(identity, x), identity,
                                        salt.hex(), v_hex)
        assert reply["ok"], reply
        assert client.verify_proof(reply["M2"])


def test_fake_challenge_looks_real(server):
    a = server.call(op="fake", email="Nobody@Example.com")
    b = server.call(op="fake", email="nobody@example.com")
    assert a == b
    assert len(bytes.fromhex(a["salt"])) == 32
    big_b = int(a["B"], 16)
    assert 0 < big_b < int(PRIME_2048.replace("\n", ""), 16)
