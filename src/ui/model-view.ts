import { axisTitle, colourFor, draw } from './charts.js';
import { bytes, chartBox, el, facts, fmt, section, table } from './dom.js';
import type { z } from 'zod';
import type { ModelReport as ModelReportSchema } from '../http/schemas/models.js';

// The model view: the report of POST /v1/models/quantize (Accept: application/json) or of a
// job's /report, drawn as the README's "Reading the report" describes it.

// The report's types are the API's own (type-only imports: nothing of zod is bundled).
export type ModelReport = z.infer<typeof ModelReportSchema>;
type StaticSection = NonNullable<ModelReport['static']>;

export interface ModelViewActions {
  exclude: (name: string) => void;
  download: { label: string; get: () => Promise<{ blob: Blob; filename: string }> };
}

export function renderModel(r: ModelReport, out: HTMLElement, actions: ModelViewActions): void {
  out.replaceChildren(summary(r, actions), snrBars(r), tensorTable(r, actions), skipped(r), validation(r), latency(r));
  if (r.static) out.append(...staticView(r.static));
}

function summary(r: ModelReport, actions: ModelViewActions): HTMLElement {
  const s = r.summary;
  const button = el('button', { id: 'download', type: 'button', class: 'primary' }, actions.download.label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const { blob, filename } = await actions.download.get();
      const a = el('a', { href: URL.createObjectURL(blob), download: filename });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    } finally {
      button.disabled = false;
    }
  });
  return section(
    'model-summary',
    'Model',
    facts('model-facts', [
      ['size', `${bytes(s.original_bytes)} → ${bytes(s.quantized_bytes)} (${s.compression_ratio.toFixed(2)}× smaller)`],
      ['weights', `${bytes(s.weights_original_bytes)} → ${bytes(s.weights_quantized_bytes)}, ${(s.weights_quantized_fraction * 100).toFixed(1)}% of float weight bytes quantized`],
      ['format asked · used', `${s.format} · ${Object.entries(s.formats).map(([f, n]) => `${f} ×${n}`).join(', ') || 'none'}`],
      ['bits · opset', `${s.bits} · ${s.opset ?? '—'}`],
      ['tensors', `${s.tensors_quantized} quantized, ${s.tensors_skipped} skipped`],
      ['worst tensor', s.worst_tensor ? `${s.worst_tensor.name} (${fmt(s.worst_tensor.snr_db)} dB)` : '—'],
      ['time (ms)', Object.entries(s.timings_ms).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')],
    ]),
    button,
  );
}

function snrBars(r: ModelReport): HTMLElement {
  const formats = [...new Set(r.tensors.map((t) => t.format))];
  const { box, canvas } = chartBox('snr-bars', Math.max(160, 22 * r.tensors.length + 70));
  draw('snrBars', canvas, {
    type: 'bar',
    data: {
      labels: r.tensors.map((t) => t.name),
      datasets: [{ label: 'SNR (dB)', data: r.tensors.map((t) => t.snr_db), backgroundColor: r.tensors.map((t) => colourFor(t.format, formats)) }],
    },
    options: {
      indexAxis: 'y',
      plugins: { legend: { display: false }, tooltip: { callbacks: { afterLabel: (c) => `${r.tensors[c.dataIndex]!.format}, ${r.tensors[c.dataIndex]!.bits} bits` } } },
      scales: { x: { title: axisTitle('SNR (dB), higher is better'), beginAtZero: true }, y: { title: axisTitle('weight (worst first)') } },
    },
  });
  const legend = el('p', { class: 'legend', id: 'format-legend' });
  for (const f of formats) legend.append(el('span', { class: 'swatch', 'data-colour': colourFor(f, formats) }), f, ' ');
  for (const s of legend.querySelectorAll<HTMLElement>('.swatch')) s.style.background = s.dataset.colour!;
  return section('snr', 'SNR per quantized weight, coloured by format', legend, box, el('p', { class: 'note' }, 'Exclude in the table keeps that weight in float; then Run again.'));
}

function tensorTable(r: ModelReport, actions: ModelViewActions): HTMLElement {
  const rows = r.tensors.map((t) => {
    const b = el('button', { type: 'button', class: 'exclude', 'data-tensor': t.name }, 'Exclude');
    b.addEventListener('click', () => actions.exclude(t.name));
    return [t.name, t.op_type, `[${t.shape.join('×')}]`, t.format, t.bits, t.granularity + (t.group_size ? ` g${t.group_size}` : ''), t.snr_db, t.max_error, bytes(t.original_bytes), bytes(t.quantized_bytes), t.note ?? '', b];
  });
  return section('tensors', 'Quantized weights', el('div', { class: 'scroll' }, table('tensor-table', ['name', 'op', 'shape', 'format', 'bits', 'granularity', 'SNR (dB)', 'max |error|', 'before', 'after', 'note', ''], rows)));
}

function skipped(r: ModelReport): HTMLElement {
  if (r.skipped.length === 0) return section('skipped', 'Weights left in float', el('p', { class: 'note' }, 'None.'));
  return section('skipped', `Weights left in float (${r.skipped.length})`, el('div', { class: 'scroll' }, table('skipped-table', ['name', 'reason'], r.skipped.map((s) => [s.name, s.reason]))));
}

function validation(r: ModelReport): HTMLElement {
  const v = r.validation;
  const parts: Array<Node | string> = [el('p', { id: 'validation-status', class: `status-${v.status}` }, `status: ${v.status}`)];
  if ('reason' in v) parts.push(el('p', {}, v.reason));
  if ('what_to_send' in v && v.what_to_send) parts.push(el('p', { class: 'note' }, `What to send: ${v.what_to_send}`));
  if (v.status !== 'ok' && v.status !== 'inconclusive') return section('validation', 'Validation per output (onnxruntime, original vs quantized)', ...parts);
  parts.push(table('validation-inputs', ['input', 'dtype', 'shape', 'values'], v.inputs.map((i) => [i.name, i.dtype, `[${i.shape.join('×')}]`, i.source === 'user' ? 'yours (inputs .npz)' : i.source])));
  for (const [title, run] of [['weights only', v.weights_only], ['onnxruntime defaults', v.default_optimization]] as const) {
    parts.push(
      el('h3', {}, `${title} (${run.session_options})`),
      table(
        title === 'weights only' ? 'validation-weights-only' : 'validation-default',
        ['output', 'cosine', 'SNR (dB)', 'max |error|', 'mean |error|'],
        run.outputs.map((o) => [o.name + (o.constant ? ' (constant)' : ''), o.cosine_similarity, o.snr_db, o.max_abs_error, o.mean_abs_error]),
      ),
    );
  }
  return section('validation', 'Validation per output (onnxruntime, original vs quantized)', ...parts);
}

function latency(r: ModelReport): HTMLElement {
  const l = r.latency;
  if (!l) return section('latency', 'Speed', el('p', { class: 'note' }, 'Not measured (measure_latency=false).'));
  if (l.status === 'skipped') return section('latency', 'Speed', el('p', {}, `Skipped: ${l.reason}`));
  return section(
    'latency',
    'Speed (onnxruntime, median of timed runs)',
    table(
      'latency-table',
      ['intra-op threads', 'original (ms)', 'quantized (ms)', 'speedup', 'runs'],
      l.rows.map((row) => [row.intra_op_threads === 0 ? 'default' : row.intra_op_threads, row.original_ms, row.quantized_ms, `${row.speedup.toFixed(2)}×`, `${row.original_runs} / ${row.quantized_runs}`]),
    ),
    el('p', { class: 'note' }, 'Speedup above 1× means the quantized model is faster. Weight-only formats are often slower on CPU: they save memory, not time.'),
  );
}

function staticView(s: StaticSection): HTMLElement[] {
  const { box, canvas } = chartBox('activation-bars', Math.max(160, 18 * s.activations.length + 70));
  draw('activationBars', canvas, {
    type: 'bar',
    data: { labels: s.activations.map((a) => a.name), datasets: [{ label: 'SNR (dB)', data: s.activations.map((a) => a.snr_db), backgroundColor: '#009E73' }] },
    options: {
      indexAxis: 'y',
      plugins: { legend: { display: false } },
      scales: { x: { title: axisTitle('SNR (dB) on held-back samples'), beginAtZero: true }, y: { title: axisTitle('activation (worst first)') } },
    },
  });
  const info = facts('static-facts', [
    ['activations', s.activation_type],
    ['calibration', `${s.calibration_data} data, ${s.calibration_samples} samples, ${s.held_back_samples} held back`],
    ['target met', s.target_met === null ? 'no target' : s.target_met ? 'yes' : 'no'],
    ['fused ops', s.fused_ops.status === 'ok' ? Object.entries(s.fused_ops.fused).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none' : `skipped: ${s.fused_ops.reason}`],
    ['still float', s.fused_ops.status === 'ok' ? Object.entries(s.fused_ops.float_compute).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none' : '—'],
  ]);
  const warnings = s.warnings.length ? el('ul', { class: 'warnings' }, ...s.warnings.map((w) => el('li', {}, w))) : '';
  const outputs = table('static-outputs', ['output', 'cosine (mean)', 'cosine (min)', 'SNR (dB)', 'top-1 agreement'], s.outputs.map((o) => [o.name, o.cosine_similarity, o.min_cosine_similarity, o.snr_db, o.top1_agreement]));
  const out: HTMLElement[] = [section('static', 'Static quantization: activations', info, warnings, el('h3', {}, 'Outputs on held-back samples (fused kernels)'), outputs, el('h3', {}, 'SNR per quantized activation'), box)];
  if (s.excluded.length) out.push(section('static-excluded', 'Returned to float by the fallback', table('static-excluded-table', ['node', 'op', 'tensor', 'SNR (dB)', 'reason'], s.excluded.map((e) => [e.node, e.op_type, e.tensor, e.snr_db, e.reason]))));
  return out;
}
