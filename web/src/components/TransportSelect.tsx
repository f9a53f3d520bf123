import type { TlsMode } from '../api/types';
import { Select } from './ui';

/** RouterOS API transport: drover-api's tls_mode values and their usual ports. */
export function TransportSelect({ value, onChange }: { value: TlsMode; onChange: (tls: TlsMode, port: string) => void }) {
  return (
    <Select name="tls" value={value} onChange={(e) => onChange(e.target.value as TlsMode, e.target.value === 'plain' ? '8728' : '8729')}>
      <option value="verify">API-SSL, certificate verified</option>
      <option value="insecure">API-SSL, certificate not verified</option>
      <option value="plain">API, unencrypted (8728)</option>
    </Select>
  );
}
