import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { readNpy } from '../../src/codecs/npy.js';
import { decodeNpz } from '../../src/codecs/npz.js';
import { entropyThreshold, mseThreshold, percentileThreshold } from '../../src/core/activation-thresholds.js';
import { sumSquaredError, paramsFromRange } from '../../src/core/calibrate.js';
import { AbsHistogram, SignedHistogram, type HistogramView } from '../../src/core/histogram.js';
import { intParamsOf } from '../../src/core/quantize.js';

// The streaming histograms and the threshold searches against the numpy re-implementation of
// onnxruntime's HistogramCollector (test/fixtures/activation-calibration/generate.py), fed the
// same samples one by one. Bins, counts, edges and extremes must be numpy's exactly.

const DIR = new URL('../../../test/fixtures/activation-calibration/', import.meta.url);

interface Case {
  method: 'percentile' | 'entropy';
  num_bins: number;
  percentile?: number;
  symmetric?: boolean;
  num_quantized_bins?: number;
  max_bins?: number;
  expected: {
    capped: boolean;
    lo: number;
    hi: number;
    bins: number;
    count_sum: number;
    count_moment: number;
    count_moment2: number;
    first_edge: number;
    last_edge: number;
    min: number;
    max: number;
  };
}
interface Expected {
  datasets: Record<string, { shape: [number, number]; cases: Case[]; mse: Record<string, { best_r: number; best_sse: number; minmax_sse: number }> }>;
}

const expected = JSON.parse(readFileSync(new URL('expected.json', DIR), 'utf8')) as Expected;
const arrays = new Map(
  decodeNpz(readFileSync(new URL('datasets.npz', DIR))).map((e) => [e.name.replace(/\.npy$/, ''), readNpy(e.data, { maxElements: 1 << 24, maxDims: 4 })] as const),
);

function samplesOf(name: string): Float32Array[] {
  const { data, header } = arrays.get(name)!;
  const [n, len] = header.shape as [number, number];
  return Array.from({ length: n }, (_, i) => data.subarray(i * len, (i + 1) * len));
}

function checksums(h: HistogramView) {
  let sum = 0;
  let moment = 0;
  let moment2 = 0;
  h.count.forEach((c, k) => {
    sum += c;
    moment += k * c;
    moment2 += k * k * c;
  });
  return { sum, moment, moment2 };
}

describe('activation histograms and thresholds match the numpy re-implementation of onnxruntime', () => {
  for (const [name, set] of Object.entries(expected.datasets)) {
    it(`${name}: every collector and threshold case`, () => {
      for (const c of set.cases) {
        const label = `${name} ${c.method} bins=${c.num_bins} p=${c.percentile} sym=${c.symmetric} max_bins=${c.max_bins}`;
        const maxBins = c.max_bins ?? Math.max(4 * c.num_bins, 4096);
        const absolute = c.method === 'percentile' && c.symmetric === true;
        const h = absolute ? new AbsHistogram(c.num_bins, maxBins) : new SignedHistogram(c.num_bins, maxBins);
        for (const s of samplesOf(name)) h.add(s);
        const e = c.expected;
        const sums = checksums(h);
        assert.equal(h.count.length, e.bins, `${label}: bins`);
        assert.deepEqual([sums.sum, sums.moment, sums.moment2], [e.count_sum, e.count_moment, e.count_moment2], `${label}: counts`);
        const edges = h.edges();
        assert.deepEqual([edges[0], edges[edges.length - 1], h.min, h.max], [e.first_edge, e.last_edge, e.min, e.max], `${label}: edges and extremes`);
        const r = c.method === 'percentile' ? percentileThreshold(h, c.percentile!, c.symmetric!) : entropyThreshold(h as SignedHistogram, c.num_quantized_bins!);
        assert.deepEqual([r.lo, r.hi], [e.lo, e.hi], `${label}: threshold`);
      }
    });
  }

  it('the fixtures exercise both onnxruntime\'s own growth and the service\'s bin bound', () => {
    const all = Object.values(expected.datasets).flatMap((d) => d.cases);
    assert.ok(all.filter((c) => c.expected.capped).length >= 5);
    assert.ok(all.filter((c) => !c.expected.capped && c.expected.bins > c.num_bins).length >= 10);
  });
});

describe('mse threshold on the histogram', () => {
  for (const [name, set] of Object.entries(expected.datasets)) {
    for (const [key, ref] of Object.entries(set.mse)) {
      it(`${name} ${key}: within 2% (or 1e-9 of the signal) of the best of a 1024-point exact search, and never worse than min-max`, () => {
        const [bits, scheme] = key.split('_') as [string, 'symmetric' | 'asymmetric'];
        const p = intParamsOf(Number(bits), scheme);
        const h = new SignedHistogram(2048);
        const samples = samplesOf(name);
        for (const s of samples) h.add(s);
        const r = mseThreshold(h, p);
        const flat = new Float32Array(samples.reduce((n, s) => n + s.length, 0));
        samples.reduce((at, s) => (flat.set(s, at), at + s.length), 0);
        const { scale, zeroPoint } = paramsFromRange(r, p);
        const got = sumSquaredError(flat, scale, zeroPoint, p.qMin, p.qMax);
        const energy = flat.reduce((a, v) => a + v * v, 0);
        assert.ok(got <= ref.best_sse * 1.02 + 1e-9 * energy, `${got} vs best ${ref.best_sse} (r=${ref.best_r})`);
        assert.ok(got <= ref.minmax_sse * (1 + 1e-9), `${got} vs min-max ${ref.minmax_sse}`);
      });
    }
  }
});

describe('histogram bounds and odd data', () => {
  it('stays within maxBins however the range grows, keeps every value, and 0 stays an edge', () => {
    const h = new SignedHistogram(128);
    const a = new AbsHistogram(128);
    let n = 0;
    for (let k = 0; k < 40; k++) {
      const x = Float32Array.from({ length: 50 }, (_, i) => ((i - 25) / 25) * 1e-6 * 10 ** (k / 3));
      h.add(x);
      a.add(x);
      n += x.length;
      assert.ok(h.bins <= 4096 && a.bins <= 4096, `${h.bins} ${a.bins}`);
    }
    assert.equal(h.count.reduce((p, c) => p + c, 0), n);
    assert.equal(a.count.reduce((p, c) => p + c, 0), n);
    const edges = h.edges();
    assert.equal(edges[h.bins / 2], 0);
  });

  it('leaves NaN and ±Infinity out of the bins; the extremes skip NaN only', () => {
    const h = new SignedHistogram(16);
    h.add(Float32Array.from([1, NaN, -2, Infinity, 0.5]));
    assert.equal(h.count.reduce((p, c) => p + c, 0), 3);
    assert.equal(h.min, -2);
    assert.equal(h.max, Infinity);
    assert.equal(h.threshold, 2);
  });
});
