import assert from 'node:assert/strict';
import { until } from './topology.js';

// A small HTTP client for the scale tests: what a user does with curl, over fetch.

export interface Job {
  id: string;
  status: string;
  progress: { fraction: number; phase: string };
  error?: { code: string; message: string };
}

const OCTET = { 'content-type': 'application/octet-stream' };

export async function submit(base: string, query: string, body: Buffer): Promise<string> {
  const res = await fetch(`${base}/v1/jobs${query}`, { method: 'POST', headers: OCTET, body });
  const json = (await res.json()) as { id: string; status: string };
  assert.equal(res.status, 202, JSON.stringify(json));
  return json.id;
}

export async function status(base: string, id: string): Promise<Job | undefined> {
  const res = await fetch(`${base}/v1/jobs/${id}`);
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200);
  return (await res.json()) as Job;
}

export async function settle(base: string, id: string, timeoutMs = 120_000): Promise<Job> {
  return until(
    `job ${id} to end`,
    async () => {
      const j = await status(base, id);
      return j && (j.status === 'succeeded' || j.status === 'failed') ? j : undefined;
    },
    timeoutMs,
    200,
  );
}

export async function result(base: string, id: string): Promise<Buffer> {
  const res = await fetch(`${base}/v1/jobs/${id}/result`);
  assert.equal(res.status, 200, await res.clone().text());
  return Buffer.from(await res.arrayBuffer());
}

/** What the synchronous endpoint returns: byte-identical to the local job store's result (test/http/jobs.test.ts). */
export async function syncResult(base: string, query: string, body: Buffer): Promise<Buffer> {
  const res = await fetch(`${base}/v1/models/quantize${query}`, { method: 'POST', headers: OCTET, body });
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

export interface SseEvent {
  event: string;
  job: Job;
}

/** Reads a job's event stream to its end. */
export async function events(base: string, id: string): Promise<SseEvent[]> {
  const res = await fetch(`${base}/v1/jobs/${id}/events`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((b) => b.startsWith('event:'))
    .map((b) => ({ event: /^event: (\w+)/.exec(b)![1]!, job: JSON.parse(/\ndata: (.*)$/.exec(b)![1]!) as Job }));
}

/** The value of one Prometheus sample in a replica's /metrics (0 when absent). */
export async function metric(base: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(',') : [];
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return 0;
}
