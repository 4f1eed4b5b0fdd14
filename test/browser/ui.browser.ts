import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { startServer, type ServerProcess } from '../http/server-process.js';

// The report page in a real browser (Debian's chromium, driven by playwright-core): the
// service runs as its own process on 127.0.0.1, with an API key, and every figure the page
// draws is checked against the API's JSON for the same request. With SCREENSHOTS_DIR set
// (npm run screenshots), one PNG per view is written there.

// The callbacks given to page.evaluate run in the page, where these exist (this program is
// compiled without the DOM library).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare class MutationObserver {
  constructor(callback: () => void);
  observe(target: unknown, options: Record<string, unknown>): void;
}
/* eslint-enable @typescript-eslint/no-explicit-any */
type HTMLProgressElement = { value: number };

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const KEY = 'browser-test-key-0123456789abcdef';
const CORPUS = new URL('../../../test/fixtures/models/corpus/', import.meta.url).pathname;
const MODEL = CORPUS + 'transformer-op17.onnx';
const STATIC_MODEL = CORPUS + 'resnet-op13.onnx';
const SHOTS = process.env.SCREENSHOTS_DIR;
const TIMEOUT = 120_000;

const work = mkdtempSync(join(tmpdir(), 'quantd-browser-'));
let server: ServerProcess;
let browser: Browser;
let page: Page;
let base: string;

/** A seeded [64, 256] tensor: normal values with a few large ones, as weights have. */
function tensorFile(): { path: string; values: Float32Array } {
  let s = 12345;
  const uniform = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) + 0.5) / 2 ** 32;
  const values = new Float32Array(64 * 256);
  for (let i = 0; i < values.length; i++) values[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()) * (i % 997 === 0 ? 6 : 1);
  const path = join(work, 'weight.npy');
  writeFileSync(path, encodeNpy(values, '<f4', [64, 256]));
  return { path, values };
}

async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${KEY}`);
  return fetch(base + path, { ...init, headers });
}

async function apiJson<T = Record<string, unknown>>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await apiFetch(path, init);
  assert.equal(res.status, 200, `${path}: ${res.status} ${await res.clone().text()}`);
  return res.json() as Promise<T>;
}

/** Clicks Run and waits for the page to finish; an error shown on the page fails the test. */
async function runOnPage(expect: 'done' | 'error' = 'done'): Promise<void> {
  await page.click('#run');
  await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', undefined, { timeout: TIMEOUT });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== expect) assert.fail(`the page ended '${state}': ${await page.textContent('#errors')}`);
}

async function shot(name: string, scrollTo?: string): Promise<void> {
  if (!SHOTS) return;
  if (scrollTo) await page.evaluate((sel) => document.querySelector(sel)!.scrollIntoView({ block: 'start' }), scrollTo);
  else await page.evaluate(() => window.scrollTo(0, 0));
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `ui-${name}.png`) });
}

/** The data of one of the page's charts (window.quantdCharts), as plain JSON. */
function chartData(id: string): Promise<{ labels: string[]; datasets: Array<{ label: string; data: unknown[]; backgroundColor: unknown }> }> {
  return page.evaluate((chartId) => {
    const c = (window as unknown as { quantdCharts: Record<string, { data: unknown }> }).quantdCharts[chartId];
    if (!c) throw new Error(`no chart ${chartId}`);
    return JSON.parse(JSON.stringify(c.data));
  }, id);
}

const modelForm = (file: string, options: Record<string, string>) => {
  const body = new FormData();
  for (const [k, v] of Object.entries(options)) body.append(k, v);
  body.append('model', new Blob([readFileSync(file)]), file.split('/').pop()!);
  return body;
};

before(async () => {
  server = await startServer({ API_KEYS: KEY, WORKERS: '2', JOBS_DIR: join(work, 'jobs') }, true);
  base = `http://127.0.0.1:${server.port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(`${base}/ui`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  await page.fill('#api-key', KEY);
  await page.dispatchEvent('#api-key', 'change');
});

after(async () => {
  await browser?.close();
  // The service was started to outlive the before hook; stop it by its PID.
  if (server && server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  rmSync(work, { recursive: true, force: true });
});

test('the page loads without a key and a call without one shows the API\'s 401 as the API words it', { timeout: TIMEOUT }, async () => {
  const fresh = await browser.newPage();
  await fresh.goto(`${base}/ui`);
  await fresh.waitForFunction(() => document.body.dataset.state === 'ready');
  const { path } = tensorFile();
  await fresh.setInputFiles('#file', path);
  await fresh.click('#run');
  await fresh.waitForFunction(() => document.body.dataset.state === 'error', undefined, { timeout: TIMEOUT });
  const res = await fetch(`${base}/v1/quantize`, { method: 'POST', headers: { 'content-type': 'application/x-npy' }, body: readFileSync(path) });
  const body = (await res.json()) as { code: string; message: string };
  assert.equal(res.status, 401);
  const shown = (await fresh.textContent('#errors')) ?? '';
  assert.ok(shown.includes(`401 ${body.code}: ${body.message}`), shown);
  await fresh.close();
});

test('tensor view: error histogram, value distribution and the analyze plot match the API', { timeout: TIMEOUT }, async () => {
  const { path, values } = tensorFile();
  await page.setInputFiles('#file', path);
  await page.selectOption('#quantize-bits', { index: 0 }).catch(() => undefined);
  await page.fill('#quantize-bits', '4');
  await page.selectOption('#quantize-granularity', 'per_channel');
  await runOnPage();

  const npy = readFileSync(path);
  const q = await apiJson<{ error_histogram: { bins: number; counts: number[] }; error: { snr_db: number } }>('/v1/quantize?bits=4&granularity=per_channel&histogram_bins=64', {
    method: 'POST',
    headers: { 'content-type': 'application/x-npy' },
    body: npy,
  });
  const hist = await chartData('errorHistogram');
  assert.equal(hist.labels.length, q.error_histogram.bins);
  assert.equal(hist.labels.length, 64);
  assert.deepEqual(hist.datasets[0]!.data, q.error_histogram.counts);
  const facts = (await page.textContent('#tensor-facts')) ?? '';
  assert.ok(facts.includes(q.error.snr_db.toFixed(2)), `the summary shows the API's SNR ${q.error.snr_db}: ${facts}`);

  // Both distributions count every element; the dequantized one sits on at most 16 levels per channel.
  const dist = await chartData('distribution');
  const sum = (a: unknown[]) => (a as number[]).reduce((x, y) => x + y, 0);
  assert.equal(sum(dist.datasets[0]!.data), values.length);
  assert.equal(sum(dist.datasets[1]!.data), values.length);
  assert.notDeepEqual(dist.datasets[0]!.data, dist.datasets[1]!.data);
  // And they are the histograms of the input and of what /v1/dequantize returns, over 80 bins spanning both.
  const deq = await apiJson<{ data: string }>('/v1/dequantize', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(q) });
  const raw = Buffer.from(deq.data, 'base64');
  const dequantized = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of [...values, ...dequantized]) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const counts = (arr: Float32Array) => {
    const c = new Array<number>(80).fill(0);
    for (const v of arr) c[Math.min(79, Math.floor((v - lo) / ((hi - lo) / 80)))]!++;
    return c;
  };
  assert.deepEqual(dist.datasets[0]!.data, counts(values));
  assert.deepEqual(dist.datasets[1]!.data, counts(dequantized));

  const a = await apiJson<{ rows: unknown[]; recommended: { bits: number; scheme: string; granularity: string; calibration: string; method: string; error: { snr_db: number } } | null }>('/v1/analyze?target_snr_db=30', {
    method: 'POST',
    headers: { 'content-type': 'application/x-npy' },
    body: npy,
  });
  assert.ok(a.recommended, 'the API recommends a setting at 30 dB');
  const plot = await chartData('analyze');
  const rec = plot.datasets.find((d) => d.label.startsWith('recommended'))!;
  assert.deepEqual(rec.data, [{ x: a.recommended.bits, y: a.recommended.error.snr_db }]);
  assert.ok(rec.label.includes(`${a.recommended.scheme} · ${a.recommended.granularity} · ${a.recommended.calibration} · ${a.recommended.method}`), rec.label);
  const points = plot.datasets.filter((d) => !d.label.startsWith('recommended') && !d.label.startsWith('target')).reduce((n, d) => n + d.data.length, 0);
  assert.equal(points, a.rows.length, 'one point per analyze row');
  assert.equal(await page.locator('#analyze-table tbody tr').count(), a.rows.length);
  assert.equal(await page.locator('#analyze-table tr.recommended').count(), 1);
  await shot('tensor', '#tensor-summary');
  await shot('analyze', '#analyze');
});

test('a bad option shows the API\'s 400 word for word', { timeout: TIMEOUT }, async () => {
  await page.fill('#quantize-bits', '17');
  await runOnPage('error');
  const res = await apiFetch('/v1/quantize?bits=17&granularity=per_channel&histogram_bins=64', { method: 'POST', headers: { 'content-type': 'application/x-npy' }, body: readFileSync(join(work, 'weight.npy')) });
  const body = (await res.json()) as { code: string; message: string };
  assert.equal(res.status, 400);
  const shown = (await page.textContent('#errors')) ?? '';
  assert.ok(shown.includes(`400 ${body.code}: ${body.message}`), shown);
  await page.fill('#quantize-bits', '8');
});

test('model view: bars per tensor worst first, exclude one with the table button, re-run, download the model the API returns', { timeout: TIMEOUT }, async () => {
  await page.setInputFiles('#file', MODEL);
  await page.selectOption('#model-bits', '4');
  // Validation on our own token ids (the model's input `tokens`, int64 [sequence, batch]).
  const ids = encodeNpy(BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 7) % 64)), '<i8', [16, 1]);
  const inputsPath = join(work, 'inputs.npz');
  writeFileSync(inputsPath, encodeNpz([{ name: 'tokens.npy', data: ids }]));
  await page.setInputFiles('#inputs-file', inputsPath);
  await runOnPage();
  const inputsRow = page.locator('#validation-inputs tbody tr', { hasText: 'tokens' });
  assert.match((await inputsRow.textContent()) ?? '', /yours \(inputs \.npz\)/, 'validation ran on the inputs .npz the page sent');
  const report = await apiJson<{ tensors: Array<{ name: string; format: string; snr_db: number }>; skipped: Array<{ name: string; reason: string }> }>('/v1/models/quantize', {
    method: 'POST',
    headers: { accept: 'application/json' },
    body: modelForm(MODEL, { bits: '4' }),
  });
  const bars = await chartData('snrBars');
  assert.deepEqual(bars.labels, report.tensors.map((t) => t.name), 'one bar per quantized tensor, in the report\'s (worst first) order');
  assert.deepEqual(bars.datasets[0]!.data, report.tensors.map((t) => t.snr_db));
  const colours = bars.datasets[0]!.backgroundColor as string[];
  const formats = report.tensors.map((t) => t.format);
  for (let i = 0; i < formats.length; i++) {
    for (let j = 0; j < formats.length; j++) assert.equal(colours[i] === colours[j], formats[i] === formats[j], `bar colours follow formats (${formats[i]}, ${formats[j]})`);
  }
  assert.equal(await page.locator('#skipped-table tbody tr').count(), report.skipped.length);
  assert.ok(await page.locator('#validation-status').textContent());
  await shot('model', '#model-summary');

  const worst = report.tensors[0]!.name;
  await page.click(`button.exclude[data-tensor="${worst}"]`);
  assert.equal(await page.inputValue('#model-exclude'), worst);
  await runOnPage();
  const after = await chartData('snrBars');
  assert.ok(!after.labels.includes(worst), 'the excluded tensor has no bar');
  assert.equal(after.labels.length, report.tensors.length - 1);
  const skippedRow = page.locator('#skipped-table tbody tr', { hasText: worst });
  assert.equal(await skippedRow.count(), 1);
  assert.match((await skippedRow.textContent()) ?? '', /exclu/i);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const got = readFileSync(await download.path());
  const res = await apiFetch('/v1/models/quantize', { method: 'POST', body: modelForm(MODEL, { bits: '4', exclude: worst }) });
  assert.equal(res.status, 200);
  const expected = Buffer.from(await res.arrayBuffer());
  assert.ok(got.equals(expected), `the download (${got.length} bytes) is the model the API returns (${expected.length} bytes)`);
  assert.match(download.suggestedFilename(), /\.onnx$/);
  await page.fill('#model-exclude', '');
  await page.setInputFiles('#inputs-file', []);
});

test('static model view: per-activation SNR bars and outputs from the report', { timeout: TIMEOUT }, async () => {
  await page.setInputFiles('#file', STATIC_MODEL);
  await page.selectOption('#model-bits', '8');
  await page.selectOption('#model-format', 'static');
  assert.ok(await page.isVisible('#model-calibration_data'), 'the static options show for format=static');
  await page.check('#model-calibration_data');
  await page.fill('#model-calibration_samples', '8');
  await runOnPage();
  const report = await apiJson<{ static: { activations: Array<{ name: string; snr_db: number | null }>; outputs: unknown[] } }>('/v1/models/quantize', {
    method: 'POST',
    headers: { accept: 'application/json' },
    body: modelForm(STATIC_MODEL, { format: 'static', calibration_data: 'random', calibration_samples: '8', measure_latency: 'false' }),
  });
  const bars = await chartData('activationBars');
  assert.deepEqual(bars.labels, report.static.activations.map((a) => a.name));
  assert.equal(await page.locator('#static-outputs tbody tr').count(), report.static.outputs.length);
  assert.equal(await page.locator('#latency-table tbody tr').count() > 0, true, 'the speedup table is shown');
  await shot('static', '#static');
  await page.uncheck('#model-calibration_data');
  await page.selectOption('#model-format', 'auto');
  assert.ok(!(await page.isVisible('#model-calibration_data')), 'and hide again for other formats');
});

test('a job: the progress bar follows the SSE stream to 100% and the report and result are the job\'s', { timeout: TIMEOUT }, async () => {
  await page.setInputFiles('#file', MODEL);
  await page.selectOption('#model-bits', '4');
  await page.check('#as-job');
  // Every value the bar takes, in order.
  await page.evaluate(() => {
    const bar = document.getElementById('job-progress') as HTMLProgressElement;
    const seen: number[] = [];
    (window as unknown as { progressSeen: number[] }).progressSeen = seen;
    new MutationObserver(() => seen.push(bar.value)).observe(bar, { attributes: true, attributeFilter: ['value'] });
  });
  await runOnPage();
  const seen = await page.evaluate(() => (window as unknown as { progressSeen: number[] }).progressSeen);
  // The job takes a few hundred ms at least (onnxruntime runs the float model first): the stream shows it on its way.
  assert.ok(seen.some((v) => v > 0 && v < 100), `the bar showed the job under way: ${seen.join(', ')}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, `the bar never goes back: ${seen.join(', ')}`);
  assert.equal(await page.evaluate(() => (document.getElementById('job-progress') as HTMLProgressElement).value), 100);
  const label = (await page.textContent('#job-progress-label')) ?? '';
  assert.match(label, /succeeded/);
  const jobId = /job ([0-9a-f]{8})/.exec(label)![1]!;
  const bars = await chartData('snrBars');
  const direct = await apiJson<{ tensors: Array<{ name: string }> }>('/v1/models/quantize', { method: 'POST', headers: { accept: 'application/json' }, body: modelForm(MODEL, { bits: '4' }) });
  assert.deepEqual(bars.labels, direct.tensors.map((t) => t.name));
  await shot('job', '#job');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const got = readFileSync(await download.path());
  const res = await apiFetch('/v1/models/quantize', { method: 'POST', body: modelForm(MODEL, { bits: '4' }) });
  assert.ok(got.equals(Buffer.from(await res.arrayBuffer())), `job ${jobId}'s result is the model the synchronous route returns`);
  await page.uncheck('#as-job');
});
