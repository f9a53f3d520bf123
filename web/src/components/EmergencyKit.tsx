// The Emergency Kit: a printable sheet with the sign-in address, the email and the
// Secret Key (never the password). Built in the browser; nothing is sent anywhere.
import { Button } from './ui';

export function EmergencyKit({ email, secretKey }: { email: string; secretKey: string }) {
  const url = window.location.origin + '/login';
  const date = new Date().toISOString().slice(0, 10);
  const download = () => {
    const text = `drover Emergency Kit\n\nSign-in address: ${url}\nEmail: ${email}\nSecret Key: ${secretKey}\nCreated: ${date}\n\nPassword: ______________________ (write it here by hand, or keep it in a password manager)\n\nKeep this kit somewhere safe. A new browser asks for the Secret Key once; without it and your password the account cannot be signed in to.\n`;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    a.download = `drover-emergency-kit-${email}.txt`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  return (
    <div className="space-y-3">
      <div id="emergency-kit" className="rounded-lg border-2 border-dashed border-teal-600 p-4 print:border-black">
        <p className="text-xs font-semibold uppercase tracking-wide text-teal-700 dark:text-teal-300">drover Emergency Kit</p>
        <dl className="mt-3 grid grid-cols-[8rem_minmax(0,1fr)] gap-y-2 text-sm">
          <dt className="text-slate-500">Sign-in address</dt>
          <dd className="break-all font-mono">{url}</dd>
          <dt className="text-slate-500">Email</dt>
          <dd className="break-all font-mono">{email}</dd>
          <dt className="text-slate-500">Secret Key</dt>
          <dd className="break-words font-mono text-[15px] font-semibold" data-testid="secret-key">
            {secretKey}
          </dd>
          <dt className="text-slate-500">Created</dt>
          <dd>{date}</dd>
          <dt className="text-slate-500">Password</dt>
          <dd className="border-b border-slate-400 pb-3" />
        </dl>
        <p className="mt-3 text-xs text-slate-500">
          Keep this kit somewhere safe. Your password and this Secret Key together sign you in; drover never sees either, so nobody can
          recover them for you.
        </p>
      </div>
      <div className="no-print flex gap-2">
        <Button type="button" onClick={() => window.print()}>
          Print or save as PDF
        </Button>
        <Button type="button" onClick={download}>
          Download as text
        </Button>
      </div>
    </div>
  );
}
