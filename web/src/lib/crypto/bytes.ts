// Byte, hex and big-integer helpers shared by the SRP and 2SKD code.
// All hex is lowercase; big integers go on the wire unpadded big-endian.

export function hexToBytes(hex: string): Uint8Array {
  const clean = hex.trim().toLowerCase();
  if (!/^[0-9a-f]*$/.test(clean)) throw new Error('not a hex string');
  const h = clean.length % 2 ? '0' + clean : clean;
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, '0');
  return s;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) throw new Error('xor: length mismatch');
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** Unsigned big-endian bytes to a BigInt. */
export function bytesToBig(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + bytesToHex(b));
}

/** Unpadded big-endian bytes of n (at least one byte), like srptools' int_to_bytes. */
export function bigToBytes(n: bigint): Uint8Array {
  if (n < 0n) throw new Error('negative');
  return hexToBytes(n.toString(16));
}

/** Big-endian bytes of n left-padded with zeros to len bytes. */
export function bigToPadded(n: bigint, len: number): Uint8Array {
  const raw = bigToBytes(n);
  if (raw.length > len) throw new Error('value longer than pad length');
  const out = new Uint8Array(len);
  out.set(raw, len - raw.length);
  return out;
}

/** Unpadded lowercase hex of n, as on the wire. */
export function bigToHex(n: bigint): string {
  return bytesToHex(bigToBytes(n));
}

/** Drops leading zero bytes (keeps at least one), as when a digest went through an integer. */
export function stripLeadingZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.slice(i);
}

/** Compares without an early exit on the first difference. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  crypto.getRandomValues(out);
  return out;
}

/** A Uint8Array view WebCrypto accepts as BufferSource under strict lib typings. */
export function buf(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}
