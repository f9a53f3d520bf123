import { useState, type FormEvent } from 'react';
import { useMe } from '../api/hooks';
import { EmergencyKit } from '../components/EmergencyKit';
import { Button, Card, Field, Input, InlineError, PageHeader } from '../components/ui';
import { changePassword } from '../lib/auth';
import { formatSecretKey, generateSecretKey, parseSecretKey } from '../lib/crypto/secretKey';
import { forgetSecretKey, loadSecretKey } from '../lib/keystore';
import { roleLabel } from '../lib/roles';

export default function AccountPage() {
  const me = useMe().data!;
  const [pw, setPw] = useState('');
  const [pw2, setPw2] = useState('');
  const [newKey, setNewKey] = useState(false);
  const [keyText, setKeyText] = useState('');
  const [errs, setErrs] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const [kit, setKit] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const er: Record<string, string> = {};
    if (pw.length < 12) er.pw = 'Use at least 12 characters.';
    if (pw !== pw2) er.pw2 = 'The passwords differ.';
    let key: Uint8Array | null = null;
    if (newKey) key = generateSecretKey();
    else if (keyText.trim()) {
      try {
        key = parseSecretKey(keyText);
      } catch (x) {
        er.key = (x as Error).message;
      }
    } else key = await loadSecretKey(me.email);
    if (!key && !er.key) er.key = 'This browser does not know your Secret Key: enter it, or create a new one.';
    setErrs(er);
    if (Object.keys(er).length || !key) return;
    setBusy(true);
    setError(null);
    try {
      await changePassword(me.email, pw, key);
      setDone('Password changed. Other sessions were signed out.');
      if (newKey) setKit(formatSecretKey(key));
      setPw('');
      setPw2('');
    } catch (x) {
      setError(x);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="mx-auto max-w-2xl space-y-4">
      <PageHeader title="Account" subtitle={`${me.email} · ${roleLabel[me.role]}`} />
      <Card title="Change password">
        <form onSubmit={submit} noValidate className="space-y-3">
          <Field label="New password" error={errs.pw}><Input type="password" autoComplete="new-password" value={pw} onChange={(e) => setPw(e.target.value)} /></Field>
          <Field label="Repeat" error={errs.pw2}><Input type="password" autoComplete="new-password" value={pw2} onChange={(e) => setPw2(e.target.value)} /></Field>
          <label className="flex items-center gap-2 text-sm"><input type="checkbox" checked={newKey} onChange={(e) => setNewKey(e.target.checked)} /> Also create a new Secret Key (you get a new Emergency Kit)</label>
          {!newKey && <Field label="Secret Key (only if this browser does not know it)" error={errs.key}><Input className="font-mono" value={keyText} onChange={(e) => setKeyText(e.target.value)} placeholder="A3-…" /></Field>}
          <InlineError error={error} />
          {done && <p role="status" className="text-sm text-emerald-700 dark:text-emerald-300">{done}</p>}
          <Button type="submit" variant="primary" busy={busy}>Change password</Button>
        </form>
      </Card>
      {kit && <Card title="Your new Emergency Kit"><EmergencyKit email={me.email} secretKey={kit} /></Card>}
      <Card title="This browser">
        <p className="text-sm text-slate-600 dark:text-slate-400">This browser remembers your Secret Key so you only type your password. Forget it on a shared computer.</p>
        <Button className="mt-3" onClick={() => forgetSecretKey(me.email).then(() => setDone('This browser no longer remembers your Secret Key.'))}>Forget my Secret Key here</Button>
      </Card>
    </div>
  );
}
