import { apiJson, fromBase64, query } from './api.js';
import { axisTitle, colourFor, draw } from './charts.js';
import { chartBox, el, facts, fmt, section, table } from './dom.js';
import { npyValues, sharedHistogram } from './npy.js';
import type { z } from 'zod';
import type { AnalyzeResponse } from '../http/schemas/analyze.js';
import type { QuantizeResponse } from '../http/schemas/quantize.js';

// The tensor view: POST /v1/quantize (with histogram_bins) and /v1/analyze on the dropped
// .npy, then /v1/dequantize on the quantize reply for the value distribution.

// The replies' types are the API's own (type-only imports: nothing of zod is bundled).
type QuantizeReply = z.infer<typeof QuantizeResponse>;
type AnalyzeReply = z.infer<typeof AnalyzeResponse>;
type AnalyzeRow = AnalyzeReply['rows'][number];

const DISTRIBUTION_BINS = 80;
/** Past this the page does not fetch the dequantized tensor for the value plot. */
const MAX_DISTRIBUTION_ELEMENTS = 16 * 1024 * 1024;
const NPY = { 'content-type': 'application/x-npy', accept: 'application/json' };

export async function runTensor(file: File, quantize: Record<string, string>, analyze: Record<string, string>, out: HTMLElement, showError: (where: string, e: unknown) => void): Promise<void> {
  const body = await file.arrayBuffer();
  out.replaceChildren();
  const q = apiJson<QuantizeReply>(`/v1/quantize${query(quantize)}`, { method: 'POST', headers: NPY, body });
  const a = apiJson<AnalyzeReply>(`/v1/analyze${query(analyze)}`, { method: 'POST', headers: NPY, body });
  const [qr, ar] = await Promise.allSettled([q, a]);
  if (qr.status === 'fulfilled') {
    const reply = qr.value;
    out.append(summary(file.name, reply));
    out.append(errorHistogram(reply));
    try {
      const n = reply.shape.reduce((a, b) => a * b, 1);
      out.append(
        n <= MAX_DISTRIBUTION_ELEMENTS
          ? await distribution(body, reply)
          : section('distribution', 'Original vs dequantized values', el('p', { class: 'note' }, `Not drawn above ${fmt(MAX_DISTRIBUTION_ELEMENTS)} elements (the dequantized copy would come back as ${fmt(n * 4)} bytes of JSON).`)),
      );
    } catch (e) {
      showError('value distribution', e);
    }
  } else showError('/v1/quantize', qr.reason);
  if (ar.status === 'fulfilled') out.append(...analyzeView(ar.value, analyze));
  else showError('/v1/analyze', ar.reason);
}

function summary(name: string, r: QuantizeReply): HTMLElement {
  const scales = Array.isArray(r.scale) ? (r.scale as unknown[]).flat(8).length : 1;
  return section(
    'tensor-summary',
    `Tensor ${name}`,
    facts('tensor-facts', [
      ['shape', `[${r.shape.join(', ')}]`],
      ['stored as', `${r.quantized.dtype} (${r.bits} bits, ${r.scheme})`],
      ['granularity', r.granularity + (r.granularity === 'per_group' ? `, group_size ${r.group_size}, axis ${r.axis}` : r.granularity === 'per_channel' ? `, axis ${r.axis}` : '')],
      ['calibration · method', `${r.calibration.method}${r.calibration.percentile !== null ? ` (${r.calibration.percentile})` : ''} · ${r.method}`],
      ['scales', scales],
      ['SNR (dB)', r.error.snr_db],
      ['max |error|', r.error.max_error],
      ['mean |error|', r.error.mean_error],
      ['MSE', r.error.mse],
      ['clipped', `${fmt(r.error.clipped)} (${(r.error.clipped_fraction * 100).toFixed(3)}%)`],
      ['size', `${fmt(r.size.original_bytes)} → ${fmt(r.size.quantized_bytes)} bytes (${r.size.compression_ratio.toFixed(2)}×)`],
      ...(r.methods ? Object.entries(r.methods).map(([m, snr]): [string, number | null] => [`SNR with ${m}`, snr]) : []),
    ]),
  );
}

function errorHistogram(r: QuantizeReply): HTMLElement {
  const h = r.error_histogram;
  if (!h) return section('error-histogram', 'Error histogram', el('p', { class: 'note' }, 'Set histogram_bins above 0 to see the errors.'));
  const w = (h.max - h.min) / h.bins;
  const labels = h.counts.map((_, i) => (h.min + (i + 0.5) * w).toPrecision(3));
  const { box, canvas } = chartBox('error-histogram-chart', 300);
  draw('errorHistogram', canvas, {
    type: 'bar',
    data: { labels, datasets: [{ label: 'elements per bin', data: h.counts, backgroundColor: '#0072B2', barPercentage: 1, categoryPercentage: 1 }] },
    options: {
      plugins: { legend: { display: false }, title: { display: true, text: `${h.bins} bins over [${fmt(h.min)}, ${fmt(h.max)}]` } },
      scales: { x: { title: axisTitle('error x̂ − x (dequantized − original), bin centre') }, y: { title: axisTitle('elements'), beginAtZero: true } },
    },
  });
  return section('error-histogram', 'Error histogram', box);
}

async function distribution(body: ArrayBuffer, r: QuantizeReply): Promise<HTMLElement> {
  const original = npyValues(body);
  const deq = await apiJson<{ data: string }>('/v1/dequantize', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(r) });
  const bytes = fromBase64(deq.data);
  const dequantized = new Float32Array(bytes.buffer, 0, bytes.byteLength >> 2);
  const h = sharedHistogram(original, dequantized, DISTRIBUTION_BINS);
  const labels = h.a.map((_, i) => ((h.edges[i]! + h.edges[i + 1]!) / 2).toPrecision(3));
  const { box, canvas } = chartBox('distribution-chart', 300);
  draw('distribution', canvas, {
    type: 'bar',
    data: {
      labels,
      datasets: [
        { label: 'original', data: h.a, backgroundColor: 'rgba(0, 114, 178, 0.55)', barPercentage: 1, categoryPercentage: 1, grouped: false },
        { label: 'dequantized', data: h.b, backgroundColor: 'rgba(213, 94, 0, 0.55)', barPercentage: 1, categoryPercentage: 1, grouped: false },
      ],
    },
    options: { scales: { x: { title: axisTitle('value, bin centre') }, y: { title: axisTitle('elements'), beginAtZero: true } } },
  });
  return section('distribution', 'Original vs dequantized values', box, el('p', { class: 'note' }, `${DISTRIBUTION_BINS} equal bins over the range of both; dequantized values fall on the quantization levels.`));
}

const rowKey = (r: AnalyzeRow) => `${r.scheme} · ${r.granularity} · ${r.calibration} · ${r.method}`;
const sameRow = (a: AnalyzeRow, b: AnalyzeRow | null) => b !== null && a.bits === b.bits && rowKey(a) === rowKey(b);

function analyzeView(r: AnalyzeReply, asked: Record<string, string>): HTMLElement[] {
  const keys = [...new Set(r.rows.map(rowKey))];
  const datasets: Array<Record<string, unknown>> = keys.map((k) => ({
    label: k,
    data: r.rows.filter((row) => rowKey(row) === k).sort((x, y) => x.bits - y.bits).map((row) => ({ x: row.bits, y: row.error.snr_db })),
    borderColor: colourFor(k, keys),
    backgroundColor: colourFor(k, keys),
    borderDash: keys.indexOf(k) >= 8 ? [6, 3] : [],
    showLine: true,
    pointRadius: 3,
  }));
  const rec = r.recommended;
  if (rec) {
    datasets.push({
      label: `recommended: ${rec.bits} bits, ${rowKey(rec)}`,
      data: [{ x: rec.bits, y: rec.error.snr_db }],
      pointStyle: 'star',
      pointRadius: 14,
      pointBorderWidth: 3,
      borderColor: '#D00000',
      backgroundColor: '#D00000',
      showLine: false,
    });
  }
  const target = asked.target_snr_db !== undefined ? Number(asked.target_snr_db) : undefined;
  const allBits = r.rows.map((row) => row.bits);
  if (target !== undefined && allBits.length) {
    datasets.push({ label: `target ${target} dB`, data: [{ x: Math.min(...allBits), y: target }, { x: Math.max(...allBits), y: target }], borderColor: '#777', borderDash: [2, 4], pointRadius: 0, showLine: true });
  }
  const { box, canvas } = chartBox('analyze-chart', 460);
  draw('analyze', canvas, {
    type: 'scatter',
    data: { datasets: datasets as never },
    options: {
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 18, font: { size: 11 } } } },
      scales: { x: { type: 'linear', title: axisTitle('bits'), ticks: { stepSize: 1 } }, y: { title: axisTitle('SNR (dB)') } },
    },
  });
  const recText = rec
    ? el('p', { id: 'recommendation', class: 'recommendation' }, `Recommended: ${rec.bits} bits, ${rowKey(rec)}: ${fmt(rec.error.snr_db)} dB, ${fmt(rec.size.quantized_bytes)} bytes.`)
    : el('p', { id: 'recommendation', class: 'note' }, target === undefined ? 'Give target_snr_db for a recommendation.' : `No setting reaches ${target} dB.`);
  const rows = [...r.rows].sort((x, y) => x.bits - y.bits || (y.error.snr_db ?? -Infinity) - (x.error.snr_db ?? -Infinity));
  const t = table(
    'analyze-table',
    ['bits', 'scheme', 'granularity', 'calibration', 'method', 'SNR (dB)', 'max |error|', 'bytes', 'ratio'],
    rows.map((row) => [row.bits, row.scheme, row.granularity, row.calibration, row.method, row.error.snr_db, row.error.max_error, row.size.quantized_bytes, row.size.compression_ratio]),
    (i): Record<string, string> => (sameRow(rows[i]!, rec) ? { class: 'recommended' } : {}),
  );
  return [section('analyze', 'SNR versus bits (/v1/analyze)', box, recText), section('analyze-rows', 'Every setting compared', el('div', { class: 'scroll' }, t))];
}

