// SRP-6a client, byte-compatible with drover-auth (srptools layout, SHA-256,
// RFC 5054 2048-bit group, g = 2). Formulas: docs/auth.md and
// api/auth/testdata/README.md; checked against the shared vectors in srp.test.ts.
import {
  bigToBytes,
  bigToPadded,
  bytesToBig,
  bytesToHex,
  concat,
  constantTimeEqual,
  hexToBytes,
  randomBytes,
  stripLeadingZeros,
  utf8,
  buf,
} from './bytes';

export const N = BigInt(
  '0x' +
    'ac6bdb41324a9a9bf166de5e1389582faf72b6651987ee07fc3192943db56050a37329cbb4a099ed8193e0757767a13dd52312ab4b03310dcd7f48a9da04fd50e8083969edb767b0cf6095179a163ab3661a05fbd5faaae82918a9962f0b93b855f97993ec975eeaa80d740adbf4ff747359d041d5c33ea71d281e446b14773bca97b43a23fb801676bd207a436c6481f1d2b9078717461a5b9d32e688f87748544523b524b0d57d5ea77a2775d2ecfa032cfbdbf52fb3786160279004e57ae6af874e7303ce53299ccc041c7bc308d82a5698f3a8d0c38271ae35f8e9dbfbb694b5c803d89f7ae435de236d525f54759b65e372fcd68ef20fa7111f9e4aff73',
);
export const g = 2n;
export const N_LEN = 256;

export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf(concat(...parts))));
}

/** base^exp mod m with a fixed sequence of operations per exponent bit (Montgomery ladder). */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  if (m === 1n) return 0n;
  let r0 = 1n;
  let r1 = ((base % m) + m) % m;
  const bits = exp.toString(2);
  for (let i = 0; i < bits.length; i++) {
    if (bits.charCodeAt(i) === 49) {
      r0 = (r0 * r1) % m;
      r1 = (r1 * r1) % m;
    } else {
      r1 = (r0 * r1) % m;
      r0 = (r0 * r0) % m;
    }
  }
  return r0;
}

/** k = H(N ‖ PAD(g)) */
export async function computeK(): Promise<bigint> {
  return bytesToBig(await sha256(bigToBytes(N), bigToPadded(g, N_LEN)));
}

/** v = g^x mod N */
export function verifier(x: bigint): bigint {
  return modPow(g, x, N);
}

export interface ClientProof {
  A: bigint;
  u: bigint;
  S: bigint;
  K: Uint8Array;
  M1: Uint8Array;
  M2: Uint8Array;
}

/**
 * The client's side of one exchange: given x (from 2SKD), the private ephemeral a,
 * the server's B and the salt, computes S, K, M1 and the M2 the server must send back.
 */
export async function clientProof(params: {
  identity: string;
  salt: Uint8Array;
  x: bigint;
  a: bigint;
  B: bigint;
}): Promise<ClientProof> {
  const { identity, salt, x, a, B } = params;
  if (B % N === 0n) throw new Error('SRP: server public value is invalid');
  const A = modPow(g, a, N);
  if (A % N === 0n) throw new Error('SRP: client public value is invalid');
  const k = await computeK();
  const u = bytesToBig(await sha256(bigToPadded(A, N_LEN), bigToPadded(B, N_LEN)));
  if (u === 0n) throw new Error('SRP: scrambling parameter is zero');
  const base = (((B - ((k * modPow(g, x, N)) % N)) % N) + N) % N;
  const S = modPow(base, a + u * x, N);
  const K = await sha256(bigToBytes(S));
  const hN = bytesToBig(await sha256(bigToBytes(N)));
  const hg = bytesToBig(await sha256(bigToBytes(g)));
  const hI = stripLeadingZeros(await sha256(utf8(identity)));
  const M1 = await sha256(bigToBytes(hN ^ hg), hI, salt, bigToBytes(A), bigToBytes(B), K);
  const M2 = await sha256(bigToBytes(A), M1, K);
  return { A, u, S, K, M1, M2 };
}

/** A fresh 256-bit private ephemeral (never zero). */
export function randomEphemeral(): bigint {
  for (;;) {
    const a = bytesToBig(randomBytes(32));
    if (a !== 0n) return a;
  }
}

/** Checks the server's M2 in constant time. */
export function verifyServerProof(expected: Uint8Array, m2Hex: string): boolean {
  let got: Uint8Array;
  try {
    got = hexToBytes(m2Hex);
  } catch {
    return false;
  }
  return constantTimeEqual(expected, got);
}

export { bytesToHex };
