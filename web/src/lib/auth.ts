// Sign-in, enrolment and re-enrolment flows over the API (the math is in ./crypto).
import { ApiError, post } from '../api/client';
import type { EnrolRequest, LegacyLoginReply, LegacyLoginRequest, Me, PasswordChangeRequest, SrpInitReply, SrpInitRequest, SrpVerifyReply, SrpVerifyRequest } from '../api/types';
import { bigToHex, bytesToHex, randomBytes } from './crypto/bytes';
import { computeProof, computeVerifier } from './crypto/deriveClient';
import { g, modPow, N, randomEphemeral, verifyServerProof } from './crypto/srp';
import { hexToBytes } from './crypto/bytes';
import { saveSecretKey } from './keystore';

export const normEmail = (e: string) => e.trim().toLowerCase();

/** SRP-6a sign-in. Resolves to the signed-in user once the server's M2 checks out. */
export async function srpLogin(email: string, password: string, secretKey: Uint8Array): Promise<Me> {
  const identity = normEmail(email);
  const a = randomEphemeral();
  const A = modPow(g, a, N);
  const init = await post<SrpInitReply>('/auth/srp/init', { email: identity, a: bigToHex(A) } satisfies SrpInitRequest, { noAuthRetry: true });
  const proof = await computeProof({
    password,
    secretKey: bytesToHex(secretKey),
    email: identity,
    salt: init.salt,
    a: bigToHex(a),
    B: init.b,
  });
  const reply = await post<SrpVerifyReply>('/auth/srp/verify', { session_id: init.session_id, m1: proof.M1 } satisfies SrpVerifyRequest, { noAuthRetry: true });
  if (!verifyServerProof(hexToBytes(proof.M2), reply.m2)) {
    // The server did not prove it knows the verifier: do not trust this session.
    await post('/auth/logout', undefined, { noAuthRetry: true }).catch(() => undefined);
    throw new ApiError(401, { code: 'server_proof_invalid', message: 'The server failed to prove its identity (M2 mismatch)' });
  }
  await saveSecretKey(identity, secretKey).catch(() => undefined);
  return reply.user;
}

export type LegacyOutcome = { kind: 'enrol'; ticket: string } | { kind: 'srp_required' };

/** Password sign-in for accounts that have not enrolled yet (admin-created or bootstrap). */
export async function legacyLogin(email: string, password: string): Promise<LegacyOutcome> {
  try {
    const r = await post<LegacyLoginReply>('/auth/login', { email: normEmail(email), password } satisfies LegacyLoginRequest, { noAuthRetry: true });
    if (r.status === 'enrolment_required' && typeof r.enrolment_ticket === 'string') return { kind: 'enrol', ticket: r.enrolment_ticket };
    throw new ApiError(500, { code: 'unexpected', message: `Unexpected sign-in reply: ${String(r.status)}` });
  } catch (e) {
    if (e instanceof ApiError && e.status === 409 && (e.code === 'srp_required' || !e.code)) return { kind: 'srp_required' };
    throw e;
  }
}

async function newVerifier(email: string, password: string, secretKey: Uint8Array) {
  const salt = bytesToHex(randomBytes(32));
  const verifier = await computeVerifier({ password, secretKey: bytesToHex(secretKey), email: normEmail(email), salt });
  return { salt, verifier };
}

/** Stores the salt and verifier for a new Secret Key and password, then remembers the key. */
export async function enrol(ticket: string, email: string, password: string, secretKey: Uint8Array) {
  const { salt, verifier } = await newVerifier(email, password, secretKey);
  await post('/auth/srp/enrol', { enrolment_ticket: ticket, salt, verifier } satisfies EnrolRequest, { noAuthRetry: true });
  await saveSecretKey(normEmail(email), secretKey);
}

/** Re-enrols the signed-in user with a new password (and optionally a new Secret Key). */
export async function changePassword(email: string, password: string, secretKey: Uint8Array) {
  const { salt, verifier } = await newVerifier(email, password, secretKey);
  await post('/auth/password', { salt, verifier } satisfies PasswordChangeRequest);
  await saveSecretKey(normEmail(email), secretKey);
}

export async function logout() {
  await post('/auth/logout', undefined, { noAuthRetry: true }).catch(() => undefined);
}
