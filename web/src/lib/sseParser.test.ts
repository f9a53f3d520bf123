import { describe, expect, it } from 'vitest';
import { SseParser, backoffDelay } from './sseParser';

describe('SseParser', () => {
  it('parses events split across chunks, comments and ids', () => {
    const p = new SseParser();
    expect(p.push(': heartbeat\n\nevent: device_status\nid: 41\nda')).toEqual([]);
    expect(p.comments).toBe(1);
    const out = p.push('ta: {"device_id":"d1"}\n\n');
    expect(out).toEqual([{ event: 'device_status', data: '{"device_id":"d1"}', id: '41' }]);
    expect(p.lastEventId).toBe('41');
  });
  it('handles CRLF, multi-line data and the default event name', () => {
    const p = new SseParser();
    const out = p.push('data: a\r\ndata: b\r\n\r\ndata:c\r');
    expect(out).toEqual([{ event: 'message', data: 'a\nb', id: undefined }]);
    expect(p.push('\n\n')).toEqual([{ event: 'message', data: 'c', id: undefined }]);
  });
  it('keeps the last id for later events and ignores empty data blocks', () => {
    const p = new SseParser();
    const out = p.push('id: 7\nevent: x\n\nevent: metrics\ndata: {}\n\nretry: 500\n');
    expect(out).toEqual([{ event: 'metrics', data: '{}', id: '7' }]);
    expect(p.retry).toBe(500);
  });
});

describe('backoffDelay', () => {
  it('doubles from 1 s and caps at 30 s', () => {
    const max = () => 1;
    expect(backoffDelay(0, max)).toBe(1000);
    expect(backoffDelay(1, max)).toBe(2000);
    expect(backoffDelay(3, max)).toBe(8000);
    expect(backoffDelay(10, max)).toBe(30000);
    expect(backoffDelay(10, () => 0)).toBe(15000);
  });
});
