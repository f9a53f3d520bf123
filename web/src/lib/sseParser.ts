// An incremental text/event-stream parser (the WHATWG rules that matter here:
// fields event/data/id/retry, comments, CRLF/LF/CR line ends, dispatch on a blank line).

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  lastEventId: string | undefined;
  retry: number | undefined;
  /** Counts comment lines (the server's heartbeat). */
  comments = 0;

  push(chunk: string): SseMessage[] {
    this.buf += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line, out);
    }
    return out;
  }

  private line(line: string, out: SseMessage[]) {
    if (line === '') {
      if (this.id !== undefined) this.lastEventId = this.id;
      if (this.data.length) {
        out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.lastEventId });
      }
      this.event = '';
      this.data = [];
      this.id = undefined;
      return;
    }
    if (line.startsWith(':')) {
      this.comments++;
      return;
    }
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/** Backoff with full jitter: 1 s, 2 s, 4 s … capped at 30 s. */
export function backoffDelay(attempt: number, random = Math.random, base = 1000, cap = 30000): number {
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
