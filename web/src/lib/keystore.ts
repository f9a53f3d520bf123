// The Secret Key, remembered per (lowercase) email in this browser's IndexedDB, so a
// browser asks for it once. Stored as the 16 raw bytes; anyone with access to this
// browser profile can read it, which is the same trust as the profile's cookies.
const DB = 'drover';
const STORE = 'secret-keys';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const req = fn(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  } finally {
    db.close();
  }
}

export async function loadSecretKey(email: string): Promise<Uint8Array | null> {
  try {
    const v = await tx<unknown>('readonly', (s) => s.get(email.trim().toLowerCase()));
    return v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v) : null;
  } catch {
    return null;
  }
}

export async function saveSecretKey(email: string, key: Uint8Array): Promise<void> {
  await tx('readwrite', (s) => s.put(key, email.trim().toLowerCase()));
}

export async function forgetSecretKey(email: string): Promise<void> {
  await tx('readwrite', (s) => s.delete(email.trim().toLowerCase()));
}
