// The Secret Key: 16 random bytes written as "A3-" + 27 base-30 digits
// (most significant first) grouped 6-6-6-6-3.
import { bytesToBig, bigToPadded, randomBytes } from './bytes';

export const ALPHABET = 'ABCDEFGHJKMNPQRTUVWXYZ23456789';
const DIGITS = 27;

export function formatSecretKey(key: Uint8Array): string {
  if (key.length !== 16) throw new Error('a Secret Key is 16 bytes');
  let n = bytesToBig(key);
  const digits: string[] = [];
  for (let i = 0; i < DIGITS; i++) {
    digits.push(ALPHABET[Number(n % 30n)]);
    n /= 30n;
  }
  const s = digits.reverse().join('');
  return `A3-${s.slice(0, 6)}-${s.slice(6, 12)}-${s.slice(12, 18)}-${s.slice(18, 24)}-${s.slice(24, 27)}`;
}

/**
 * Parses what a person typed or pasted: case, spaces and dashes are ignored and the
 * "A3" prefix is optional. Characters outside the alphabet (O, I, L, S, 0, 1) are
 * reported, not guessed.
 */
export function parseSecretKey(text: string): Uint8Array {
  let s = text.toUpperCase().replace(/[\s-]/g, '');
  if (s.startsWith('A3') && s.length === DIGITS + 2) s = s.slice(2);
  if (s.length !== DIGITS) throw new Error(`a Secret Key has ${DIGITS} characters after "A3-"`);
  let n = 0n;
  for (const ch of s) {
    const d = ALPHABET.indexOf(ch);
    if (d < 0) throw new Error(`"${ch}" is not a Secret Key character`);
    n = n * 30n + BigInt(d);
  }
  if (n >= 1n << 128n) throw new Error('not a valid Secret Key');
  return bigToPadded(n, 16);
}

export function generateSecretKey(): Uint8Array {
  return randomBytes(16);
}
