// 2SKD: x for SRP from the password and the Secret Key (WebCrypto only).
//   stretchedSalt = HKDF(ikm = salt, salt = lowercase email, info "srp")
//   P   = PBKDF2-HMAC-SHA256(password, stretchedSalt, iterations)
//   SKd = HKDF(ikm = Secret Key, salt = lowercase email, info "auk")
//   x   = HKDF(ikm = P xor SKd, salt = empty, info "srp-x")
import { buf, bytesToBig, utf8, xor } from './bytes';

export const ITERATIONS = 650_000;

export async function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string, length = 32): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', buf(ikm), 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: buf(salt), info: buf(utf8(info)) },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

export async function pbkdf2(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', buf(utf8(password)), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: buf(salt), iterations },
    key,
    256,
  );
  return new Uint8Array(bits);
}

export interface TwoSkdParts {
  stretchedSalt: Uint8Array;
  p: Uint8Array;
  skd: Uint8Array;
  stretched: Uint8Array;
  x: Uint8Array;
}

export async function deriveParts(
  password: string,
  secretKey: Uint8Array,
  email: string,
  salt: Uint8Array,
  iterations = ITERATIONS,
): Promise<TwoSkdParts> {
  const em = utf8(email.toLowerCase());
  const stretchedSalt = await hkdf(salt, em, 'srp');
  const p = await pbkdf2(password, stretchedSalt, iterations);
  const skd = await hkdf(secretKey, em, 'auk');
  const stretched = xor(p, skd);
  const x = await hkdf(stretched, new Uint8Array(0), 'srp-x');
  return { stretchedSalt, p, skd, stretched, x };
}

export async function deriveX(
  password: string,
  secretKey: Uint8Array,
  email: string,
  salt: Uint8Array,
  iterations = ITERATIONS,
): Promise<bigint> {
  return bytesToBig((await deriveParts(password, secretKey, email, salt, iterations)).x);
}
