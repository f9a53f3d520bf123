import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { useNavigate, useSearch } from '@tanstack/react-router';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError } from '../api/client';
import { EmergencyKit } from '../components/EmergencyKit';
import { Button, Field, Input, InlineError } from '../components/ui';
import { enrol, legacyLogin, normEmail, srpLogin } from '../lib/auth';
import { formatSecretKey, generateSecretKey, parseSecretKey } from '../lib/crypto/secretKey';
import { loadSecretKey } from '../lib/keystore';
import { isValidEmail } from '../lib/format';
import { currentTheme, applyTheme } from '../lib/theme';

type Step = { kind: 'signin' } | { kind: 'enrol'; ticket: string; key: Uint8Array; enrolled?: string };

export default function LoginPage() {
  const search = useSearch({ from: '/login' });
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [step, setStep] = useState<Step>({ kind: 'signin' });
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [keyText, setKeyText] = useState('');
  const [storedKey, setStoredKey] = useState<Uint8Array | null>(null);
  const [askKey, setAskKey] = useState(false);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [fieldErr, setFieldErr] = useState<Record<string, string>>({});
  const [newPw, setNewPw] = useState('');
  const [newPw2, setNewPw2] = useState('');
  const [saved, setSaved] = useState(false);

  useEffect(() => applyTheme(currentTheme()), []);
  useEffect(() => {
    let live = true;
    const t = setTimeout(async () => {
      const k = isValidEmail(email) ? await loadSecretKey(email) : null;
      if (live) setStoredKey(k);
    }, 200);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [email]);

  const finish = async (me: unknown) => {
    qc.setQueryData(['me'], me);
    await qc.invalidateQueries();
    navigate({ to: search.redirect ?? '/', replace: true });
  };

  const signIn = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const errs: Record<string, string> = {};
    if (!isValidEmail(email)) errs.email = 'Enter the email address of your account.';
    if (!password) errs.password = 'Enter your password.';
    // Look the key up again: the debounced lookup may not have finished (fast typing, autofill).
    let key: Uint8Array | null = askKey ? null : (storedKey ?? (isValidEmail(email) ? await loadSecretKey(email) : null));
    if (keyText.trim()) {
      try {
        key = parseSecretKey(keyText);
      } catch (err) {
        errs.key = (err as Error).message;
      }
    } else if (askKey && !storedKey) {
      errs.key = 'Enter the Secret Key from your Emergency Kit.';
    }
    setFieldErr(errs);
    if (Object.keys(errs).length) return;
    try {
      if (key) {
        setBusy('Deriving keys and signing in…');
        await finish(await srpLogin(email, password, key));
        return;
      }
      setBusy('Signing in…');
      const r = await legacyLogin(email, password);
      if (r.kind === 'srp_required') {
        setAskKey(true);
        setError(new Error('This account is protected by a Secret Key. Enter it from your Emergency Kit (needed once per browser).'));
      } else {
        setStep({ kind: 'enrol', ticket: r.ticket, key: generateSecretKey() });
        setNewPw('');
        setNewPw2('');
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        setAskKey(true);
        setError(new Error(key ? 'Wrong email, password or Secret Key.' : 'Wrong email or password.'));
      } else setError(err);
    } finally {
      setBusy(null);
    }
  };

  const keyString = useMemo(() => (step.kind === 'enrol' ? formatSecretKey(step.key) : ''), [step]);

  const doEnrol = async (e: FormEvent) => {
    e.preventDefault();
    if (step.kind !== 'enrol') return;
    const errs: Record<string, string> = {};
    if (newPw.length < 12) errs.newPw = 'Use at least 12 characters.';
    if (newPw !== newPw2) errs.newPw2 = 'The passwords differ.';
    if (!saved) errs.saved = 'Confirm you have saved your Emergency Kit.';
    setFieldErr(errs);
    if (Object.keys(errs).length) return;
    setError(null);
    try {
      // The ticket is single-use: once enrolment succeeded, a retry (say after a 429) only signs in.
      if (step.enrolled !== newPw) {
        if (step.enrolled) throw new Error('You already set a password for this Secret Key; enter that one.');
        setBusy('Creating your verifier…');
        await enrol(step.ticket, email, newPw, step.key);
        setStep({ ...step, enrolled: newPw });
      }
      setBusy('Signing in…');
      await finish(await srpLogin(email, newPw, step.key));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  return (
    <div className="flex min-h-full items-start justify-center bg-slate-100 px-4 py-12 dark:bg-slate-950">
      <div className="w-full max-w-md">
        <div className="no-print mb-6 flex items-center justify-center gap-2">
          <img src="/favicon.svg" alt="" className="h-8 w-8" />
          <span className="text-xl font-semibold tracking-tight">drover</span>
        </div>
        <div className="rounded-xl border border-slate-200 bg-white p-6 shadow-sm dark:border-slate-800 dark:bg-slate-900">
          {search.expired && step.kind === 'signin' && (
            <p role="status" className="mb-4 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-800 dark:bg-amber-500/10 dark:text-amber-200">
              Your session expired. Sign in again to continue where you left off.
            </p>
          )}
          {step.kind === 'signin' ? (
            <form onSubmit={signIn} noValidate className="space-y-4" aria-label="Sign in">
              <h1 className="text-lg font-semibold">Sign in</h1>
              <Field label="Email" error={fieldErr.email}>
                <Input name="email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
              </Field>
              <Field label="Password" error={fieldErr.password}>
                <Input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
              </Field>
              {storedKey && !askKey ? (
                <p className="text-xs text-slate-500">
                  This browser knows the Secret Key for {normEmail(email)}.{' '}
                  <button type="button" className="text-teal-700 underline dark:text-teal-300" onClick={() => setAskKey(true)}>
                    Use a different one
                  </button>
                </p>
              ) : (
                <Field
                  label="Secret Key"
                  error={fieldErr.key}
                  hint={askKey ? 'From your Emergency Kit; this browser will remember it.' : 'Leave empty if you are signing in for the first time with a password from your administrator.'}
                >
                  <Input
                    name="secretKey"
                    autoComplete="off"
                    spellCheck={false}
                    placeholder="A3-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XXX"
                    className="font-mono"
                    value={keyText}
                    onChange={(e) => setKeyText(e.target.value)}
                  />
                </Field>
              )}
              <InlineError error={error} />
              <Button type="submit" variant="primary" className="w-full" busy={!!busy}>
                {busy ?? 'Sign in'}
              </Button>
            </form>
          ) : (
            <form onSubmit={doEnrol} noValidate className="space-y-4" aria-label="Set up your account">
              <h1 className="no-print text-lg font-semibold">Set up your account</h1>
              <p className="no-print text-sm text-slate-600 dark:text-slate-400">
                Choose your own password. drover signs you in with SRP: neither your password nor your Secret Key ever leaves this browser.
              </p>
              <EmergencyKit email={normEmail(email)} secretKey={keyString} />
              <div className="no-print space-y-4">
                <Field label="New password" error={fieldErr.newPw}>
                  <Input name="newPassword" type="password" autoComplete="new-password" value={newPw} onChange={(e) => setNewPw(e.target.value)} />
                </Field>
                <Field label="Repeat the new password" error={fieldErr.newPw2}>
                  <Input name="newPassword2" type="password" autoComplete="new-password" value={newPw2} onChange={(e) => setNewPw2(e.target.value)} />
                </Field>
                <label className="flex items-start gap-2 text-sm">
                  <input type="checkbox" name="saved" checked={saved} onChange={(e) => setSaved(e.target.checked)} className="mt-0.5" />
                  <span>I have printed or saved my Emergency Kit.</span>
                </label>
                {fieldErr.saved && <p className="text-xs text-red-600">{fieldErr.saved}</p>}
                <InlineError error={error} />
                <div className="flex gap-2">
                  <Button type="button" onClick={() => setStep({ kind: 'signin' })} disabled={!!busy || !!step.enrolled}>
                    Back
                  </Button>
                  <Button type="submit" variant="primary" className="flex-1" busy={!!busy}>
                    {busy ?? 'Finish and sign in'}
                  </Button>
                </div>
              </div>
            </form>
          )}
        </div>
      </div>
    </div>
  );
}
