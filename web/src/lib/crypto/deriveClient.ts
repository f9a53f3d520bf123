// Main-thread side of the derivation worker.
type Pending = { resolve: (v: Record<string, string>) => void; reject: (e: Error) => void };
let worker: Worker | null = null;
let seq = 0;
const pending = new Map<number, Pending>();

function getWorker(): Worker {
  if (!worker) {
    worker = new Worker(new URL('./derive.worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (ev) => {
      const { id, ok, error, ...rest } = ev.data;
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      if (ok) p.resolve(rest);
      else p.reject(new Error(error));
    };
    worker.onerror = (ev) => {
      pending.forEach((p) => p.reject(new Error(ev.message || 'derivation worker failed')));
      pending.clear();
      worker = null;
    };
  }
  return worker;
}

function call(msg: Record<string, unknown>): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const id = ++seq;
    pending.set(id, { resolve, reject });
    getWorker().postMessage({ id, ...msg });
  });
}

export function computeVerifier(p: { password: string; secretKey: string; email: string; salt: string }) {
  return call({ op: 'verifier', ...p }).then((r) => r.verifier);
}

export function computeProof(p: { password: string; secretKey: string; email: string; salt: string; a: string; B: string }) {
  return call({ op: 'proof', ...p }) as Promise<{ A: string; M1: string; M2: string }>;
}
