#!/usr/bin/env python3
"""Generate api/auth/testdata/srp_vectors.json: the shared SRP-6a and 2SKD test vectors.

Run from the repository root with a Python that has `srptools==2.0.0`
(tests/interop/requirements.txt):

    python3 api/auth/testdata/make_vectors.py > api/auth/testdata/srp_vectors.json

Every SRP value is computed twice, by srptools 2.0.0 itself and by the plain formulas
below (docs/auth.md), and the script refuses to write anything if they differ. The 2SKD
values use only hashlib/hmac. All inputs are derived from fixed labels, so the output is
reproducible byte for byte.
"""

import hashlib
import hmac
import json
import sys

from srptools import SRPClientSession, SRPContext, SRPServerSession
from srptools.constants import HASH_SHA_256, PRIME_2048, PRIME_2048_GEN

N = int(PRIME_2048, 16)
G = int(PRIME_2048_GEN, 16)
N_LEN = (N.bit_length() + 7) // 8  # 256
ALPHABET = "ABCDEFGHJKMNPQRTUVWXYZ23456789"
REAL_ITERATIONS = 650_000


# ---------------------------------------------------------------- helpers


def h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def ib(n: int) -> bytes:
    """Unpadded big-endian bytes of n (at least one byte), as srptools' int_to_bytes."""
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def pad(n: int) -> bytes:
    return n.to_bytes(N_LEN, "big")


def strip(b: bytes) -> bytes:
    """A digest as srptools feeds it on when it went through an int: leading zeros dropped."""
    return ib(int.from_bytes(b, "big"))


def fixed(label: str, n: int = 32) -> bytes:
    """Deterministic 'random' bytes from a label."""
    out = b""
    i = 0
    while len(out) < n:
        out += h(f"drover-auth-vectors/{label}/{i}".encode())
        i += 1
    return out[:n]


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    prk = hmac.new(salt if salt else b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


def secret_key_string(key: bytes) -> str:
    n = int.from_bytes(key, "big")
    digits = []
    for _ in range(27):
        n, r = divmod(n, 30)
        digits.append(ALPHABET[r])
    assert n == 0
    s = "".join(reversed(digits))
    return "A3-" + "-".join([s[0:6], s[6:12], s[12:18], s[18:24], s[24:27]])


def two_skd(password: str, secret_key: bytes, email: str, salt: bytes, iterations: int) -> dict:
    em = email.lower().encode()
    stretched_salt = hkdf(salt, em, b"srp")
    p = hashlib.pbkdf2_hmac("sha256", password.encode(), stretched_salt, iterations, 32)
    skd = hkdf(secret_key, em, b"auk")
    stretched = bytes(a ^ b for a, b in zip(p, skd))
    x = hkdf(stretched, b"", b"srp-x")
    v = pow(G, int.from_bytes(x, "big"), N)
    return {
        "stretched_salt": stretched_salt.hex(),
        "p": p.hex(),
        "skd": skd.hex(),
        "stretched": stretched.hex(),
        "x": x.hex(),
        "v": ib(v).hex(),
    }


# ---------------------------------------------------------------- SRP


class FixedXContext(SRPContext):
    """srptools context whose x is given (drover's x comes from 2SKD, not H(s | H(I:P)))."""

    def __init__(self, identity: str, x: int):
        super().__init__(identity, "unused", prime=PRIME_2048, generator=PRIME_2048_GEN,
                         hash_func=HASH_SHA_256)
        self._fixed_x = x

    def get_common_password_hash(self, salt):
        return self._fixed_x


def srptools_x(identity: str, password: str, salt: bytes) -> int:
    ctx = SRPContext(identity, password, prime=PRIME_2048, generator=PRIME_2048_GEN,
                     hash_func=HASH_SHA_256)
    return ctx.get_common_password_hash(salt)


def plain_srp(identity: str, salt: bytes, x: int, a: int, b: int) -> dict:
    k = int.from_bytes(h(ib(N), pad(G)), "big")
    v = pow(G, x, N)
    A = pow(G, a, N)
    B = (k * v + pow(G, b, N)) % N
    u = int.from_bytes(h(pad(A), pad(B)), "big")
    assert A % N != 0 and B % N != 0 and u != 0
    s_server = pow(A * pow(v, u, N), b, N)
    s_client = pow((B - k * v) % N, a + u * x, N)
    assert s_server == s_client
    K = h(ib(s_server))
    hn, hg = int.from_bytes(h(ib(N)), "big"), int.from_bytes(h(ib(G)), "big")
    m1 = h(ib(hn ^ hg), strip(h(identity.encode())), salt, ib(A), ib(B), K)
    m2 = h(ib(A), m1, K)
    return {
        "k": ib(k).hex(), "x": ib(x).hex(), "v": ib(v).hex(), "A": ib(A).hex(),
        "B": ib(B).hex(), "u": ib(u).hex(), "S": ib(s_server).hex(), "K": K.hex(),
        "M1": m1.hex(), "M2": m2.hex(),
    }


def srptools_srp(identity: str, salt: bytes, x: int, a: int, b: int) -> dict:
    ctx = FixedXContext(identity, x)
    v = ctx.get_common_password_verifier(x)
    client = SRPClientSession(ctx, private=a)
    server = SRPServerSession(ctx, password_verifier=v, private=b)
    s_key, s_m1, s_m2 = server.process(client.public, salt.hex())
    c_key, c_m1, c_m2 = client.process(server.public, salt.hex())
    assert (s_key, s_m1, s_m2) == (c_key, c_m1, c_m2)
    assert server.verify_proof(c_m1) and client.verify_proof(s_m2)
    return {"v": ib(v).hex(), "A": client.public, "B": server.public, "K": s_key,
            "M1": s_m1, "M2": s_m2}


def srp_case(name: str, note: str, identity: str, salt: bytes, x: int, a: int, b: int,
             x_source: dict) -> dict:
    plain = plain_srp(identity, salt, x, a, b)
    tools = srptools_srp(identity, salt, x, a, b)
    for key, value in tools.items():
        if plain[key] != value:
            sys.exit(f"{name}: {key} differs: plain {plain[key]} srptools {value}")
    case = {"name": name, "note": note, "identity": identity, "salt": salt.hex(),
            "x_source": x_source, "a": ib(a).hex(), "b": ib(b).hex()}
    case.update(plain)
    return case


def search(label: str, pred) -> int:
    """The first counter whose fixed 256-bit value satisfies pred."""
    for i in range(100_000):
        val = int.from_bytes(fixed(f"{label}/{i}"), "big")
        if pred(val):
            return val
    sys.exit(f"search {label} found nothing")


def main() -> None:
    k = int.from_bytes(h(ib(N), pad(G)), "big")

    # -------- 2SKD
    skd_cases = []
    skd_inputs = [
        ("real-iterations", "correct horse battery staple", fixed("skd1/key", 16),
         "Alice@Example.COM", fixed("skd1/salt"), REAL_ITERATIONS),
        ("unicode-password", "pässwörd ✓ 密码", fixed("skd2/key", 16), "bob@example.org",
         fixed("skd2/salt"), 1000),
        ("empty-password", "", fixed("skd3/key", 16), "carol@example.net",
         fixed("skd3/salt"), 1000),
        ("zero-key", "hunter2", bytes(16), "dave@example.com", fixed("skd4/salt"), 1000),
        ("max-key", "hunter2", b"\xff" * 16, "dave@example.com", fixed("skd4/salt"), 1000),
    ]
    for name, password, key, email, salt, iterations in skd_inputs:
        case = {"name": name, "password": password, "secret_key": secret_key_string(key),
                "secret_key_bytes": key.hex(), "email": email, "salt": salt.hex(),
                "iterations": iterations}
        case.update(two_skd(password, key, email, salt, iterations))
        skd_cases.append(case)

    # -------- Secret Key text form
    sk_cases = [{"bytes": key.hex(), "text": secret_key_string(key)}
                for key in [bytes(16), b"\xff" * 16, bytes(15) + b"\x01",
                            fixed("sk/1", 16), fixed("sk/2", 16), fixed("sk/3", 16)]]

    # -------- SRP
    srp = []
    salt1 = fixed("srp1/salt")
    srp.append(srp_case(
        "srptools-x", "x = srptools' own H(s | H(I:P)); the plain RFC 5054 reference case",
        "alice@example.com", salt1, srptools_x("alice@example.com", "password123", salt1),
        int.from_bytes(fixed("srp1/a"), "big"), int.from_bytes(fixed("srp1/b"), "big"),
        {"kind": "srptools", "password": "password123"}))

    skd = skd_cases[1]
    salt2 = bytes.fromhex(skd["salt"])
    srp.append(srp_case(
        "2skd-x", "x from the 2SKD case 'unicode-password' (identity = lowercase email)",
        skd["email"].lower(), salt2, int(skd["x"], 16),
        int.from_bytes(fixed("srp2/a"), "big"), int.from_bytes(fixed("srp2/b"), "big"),
        {"kind": "2skd", "case": skd["name"]}))

    # identity whose SHA-256 starts with a zero byte: srptools drops it inside M1
    i = 0
    while h(f"user{i}@example.com".encode())[0] != 0:
        i += 1
    ident = f"user{i}@example.com"
    salt3 = fixed("srp3/salt")
    srp.append(srp_case(
        "short-H(I)", "H(I) starts with 0x00: srptools hashes it as an integer, so M1 carries "
        "H(I) with leading zero bytes removed", ident, salt3,
        srptools_x(ident, "pw", salt3), int.from_bytes(fixed("srp3/a"), "big"),
        int.from_bytes(fixed("srp3/b"), "big"), {"kind": "srptools", "password": "pw"}))

    # A shorter than N: u pads it, M1 and M2 do not
    salt4 = fixed("srp4/salt")
    x4 = srptools_x("eve@example.com", "pw4", salt4)
    a4 = search("srp4/a", lambda a: pow(G, a, N) < 1 << (8 * (N_LEN - 1)))
    srp.append(srp_case(
        "short-A", "A has a leading zero byte when padded: PAD(A) in u, unpadded A in M1/M2",
        "eve@example.com", salt4, x4, a4, int.from_bytes(fixed("srp4/b"), "big"),
        {"kind": "srptools", "password": "pw4"}))

    # B shorter than N
    v4 = pow(G, x4, N)
    b5 = search("srp5/b", lambda b: (k * v4 + pow(G, b, N)) % N < 1 << (8 * (N_LEN - 1)))
    srp.append(srp_case(
        "short-B", "B has a leading zero byte when padded: PAD(B) in u, unpadded B in M1",
        "eve@example.com", salt4, x4, int.from_bytes(fixed("srp5/a"), "big"), b5,
        {"kind": "srptools", "password": "pw4"}))

    # S shorter than N: K = H(S) of the unpadded S
    a6 = int.from_bytes(fixed("srp6/a"), "big")
    A6 = pow(G, a6, N)

    def short_s(b: int) -> bool:
        B = (k * v4 + pow(G, b, N)) % N
        u = int.from_bytes(h(pad(A6), pad(B)), "big")
        return pow(A6 * pow(v4, u, N), b, N) < 1 << (8 * (N_LEN - 1))

    b6 = search("srp6/b", short_s)
    srp.append(srp_case(
        "short-S", "S has a leading zero byte when padded: K = H(S) of the unpadded S",
        "eve@example.com", salt4, x4, a6, b6, {"kind": "srptools", "password": "pw4"}))

    out = {
        "about": "drover SRP-6a and 2SKD shared test vectors; generated by make_vectors.py "
                 "with srptools 2.0.0 (cross-checked against plain formulas); see README.md "
                 "and docs/auth.md",
        "group": {"N": ib(N).hex(), "g": ib(G).hex(), "hash": "SHA-256", "k": ib(k).hex()},
        "secret_key_alphabet": ALPHABET,
        "secret_keys": sk_cases,
        "two_skd": skd_cases,
        "srp": srp,
    }
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
