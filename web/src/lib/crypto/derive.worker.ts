// Runs the slow part of sign-in off the main thread: 2SKD (650,000 PBKDF2 rounds) and
// the SRP big-number work. Messages: {id, op: 'proof'|'verifier', ...} → {id, ok, ...}.
import { bigToHex, bytesToBig, hexToBytes, bytesToHex } from './bytes';
import { clientProof, verifier } from './srp';
import { deriveX } from './twoskd';

type Req =
  | { id: number; op: 'verifier'; password: string; secretKey: string; email: string; salt: string; iterations?: number }
  | {
      id: number;
      op: 'proof';
      password: string;
      secretKey: string;
      email: string;
      salt: string;
      a: string;
      B: string;
      iterations?: number;
    };

self.onmessage = async (ev: MessageEvent<Req>) => {
  const m = ev.data;
  try {
    const x = await deriveX(m.password, hexToBytes(m.secretKey), m.email, hexToBytes(m.salt), m.iterations);
    if (m.op === 'verifier') {
      (self as unknown as Worker).postMessage({ id: m.id, ok: true, verifier: bigToHex(verifier(x)) });
    } else {
      const p = await clientProof({
        identity: m.email.trim().toLowerCase(),
        salt: hexToBytes(m.salt),
        x,
        a: bytesToBig(hexToBytes(m.a)),
        B: bytesToBig(hexToBytes(m.B)),
      });
      (self as unknown as Worker).postMessage({ id: m.id, ok: true, A: bigToHex(p.A), M1: bytesToHex(p.M1), M2: bytesToHex(p.M2) });
    }
  } catch (e) {
    (self as unknown as Worker).postMessage({ id: m.id, ok: false, error: (e as Error).message });
  }
};
