// The SRP and 2SKD client against the shared vectors that drover-auth also checks
// (api/auth/testdata/srp_vectors.json, generated with srptools), byte for byte.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bigToHex, bytesToHex, hexToBytes, bytesToBig } from './bytes';
import { clientProof, computeK, modPow, N, g, verifier, verifyServerProof } from './srp';
import { formatSecretKey, parseSecretKey, ALPHABET } from './secretKey';
import { deriveParts } from './twoskd';

const path =
  process.env.SRP_VECTORS ??
  fileURLToPath(new URL('../../../../api/auth/testdata/srp_vectors.json', import.meta.url));
const V = JSON.parse(readFileSync(path, 'utf8'));

describe('group', () => {
  it('N, g and k match', async () => {
    expect(bigToHex(N)).toBe(V.group.N);
    expect(bigToHex(g)).toBe(V.group.g);
    expect(V.group.hash).toBe('SHA-256');
    expect(bigToHex(await computeK())).toBe(V.group.k);
  });
});

describe('secret key text form', () => {
  it('uses the shared alphabet', () => expect(ALPHABET).toBe(V.secret_key_alphabet));
  for (const c of V.secret_keys) {
    it(`${c.bytes} <-> ${c.text}`, () => {
      expect(formatSecretKey(hexToBytes(c.bytes))).toBe(c.text);
      expect(bytesToHex(parseSecretKey(c.text))).toBe(c.bytes);
      expect(bytesToHex(parseSecretKey(c.text.toLowerCase().replace(/-/g, ' ')))).toBe(c.bytes);
    });
  }
  it('rejects characters outside the alphabet and wrong lengths', () => {
    expect(() => parseSecretKey('A3-OOOOOO-AAAAAA-AAAAAA-AAAAAA-AAA')).toThrow();
    expect(() => parseSecretKey('A3-AAAAAA')).toThrow();
    expect(() => parseSecretKey('A3-ZZZZZZ-ZZZZZZ-ZZZZZZ-ZZZZZZ-ZZZ'.replace(/Z/g, '9'))).toThrow();
  });
});

describe('2SKD', () => {
  for (const c of V.two_skd) {
    it(`${c.name} (${c.iterations} iterations)`, async () => {
      const key = parseSecretKey(c.secret_key);
      expect(bytesToHex(key)).toBe(c.secret_key_bytes);
      const parts = await deriveParts(c.password, key, c.email, hexToBytes(c.salt), c.iterations);
      expect(bytesToHex(parts.stretchedSalt)).toBe(c.stretched_salt);
      expect(bytesToHex(parts.p)).toBe(c.p);
      expect(bytesToHex(parts.skd)).toBe(c.skd);
      expect(bytesToHex(parts.stretched)).toBe(c.stretched);
      expect(bytesToHex(parts.x)).toBe(c.x);
      expect(bigToHex(verifier(bytesToBig(parts.x)))).toBe(c.v);
    });
  }
});

describe('SRP-6a', () => {
  for (const c of V.srp) {
    it(c.name, async () => {
      const x = BigInt('0x' + c.x);
      const a = BigInt('0x' + c.a);
      const b = BigInt('0x' + c.b);
      const v = verifier(x);
      expect(bigToHex(v)).toBe(c.v);
      // The server side, only to check B is what the vectors say.
      const k = await computeK();
      const B = (k * v + modPow(g, b, N)) % N;
      expect(bigToHex(B)).toBe(c.B);
      const p = await clientProof({ identity: c.identity, salt: hexToBytes(c.salt), x, a, B: BigInt('0x' + c.B) });
      expect(bigToHex(p.A)).toBe(c.A);
      expect(bigToHex(p.u)).toBe(c.u);
      expect(bigToHex(p.S)).toBe(c.S);
      expect(bytesToHex(p.K)).toBe(c.K);
      expect(bytesToHex(p.M1)).toBe(c.M1);
      expect(bytesToHex(p.M2)).toBe(c.M2);
      expect(verifyServerProof(p.M2, c.M2)).toBe(true);
      expect(verifyServerProof(p.M2, c.M1)).toBe(false);
    });
  }
  it('a 2skd-sourced case uses the 2SKD x', () => {
    const c = V.srp.find((s: { x_source: { kind: string } }) => s.x_source.kind === '2skd');
    const src = V.two_skd.find((s: { name: string }) => s.name === c.x_source.case);
    expect(c.x).toBe(src.x.replace(/^(00)+/, ''));
  });
  it('refuses B = 0 mod N', async () => {
    await expect(clientProof({ identity: 'a@b.c', salt: new Uint8Array(32), x: 5n, a: 7n, B: N })).rejects.toThrow();
  });
});
