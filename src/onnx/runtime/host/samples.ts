import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomSamplesOf, samplesFromReader, sliceSamples, type CalibrationSamples } from '../../activations/calibration-data.js';
import type { SampleSpec } from './protocol.js';

// Calibration samples handed to the onnxruntime host. Random samples travel as their seed
// (the host makes the same N(0, 1) data). The user's arrays are written once per request to
// a file in the request's staging directory (tmpfs when it has room) and the worker's copy
// can go; the host reads one sample's bytes at a time with positioned reads, so it never
// holds more than the sample it runs.

const ALIGN = 8;

function writeAll(fd: number, bytes: Uint8Array, at: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 2 ** 30), at + done);
}

/** The arrays of `samples` written to `dir` (once; `file` names it), or undefined for random samples. */
export function writeSamples(arrays: readonly ArrayBufferView[], perSample: readonly number[], dir: string): { path: string; columns: { offset: number; sampleBytes: number }[] } {
  const path = join(dir, 'samples.bin');
  const fd = openSync(path, 'w');
  try {
    let at = 0;
    const columns = arrays.map((a, k) => {
      at = Math.ceil(at / ALIGN) * ALIGN;
      const offset = at;
      writeAll(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
      at += a.byteLength;
      return { offset, sampleBytes: perSample[k]! };
    });
    return { path, columns };
  } finally {
    closeSync(fd);
  }
}

/** What the host needs to make `samples` again; `staged` writes the arrays (called once per set of arrays). */
export function sampleSpec(samples: CalibrationSamples, staged: (arrays: readonly ArrayBufferView[]) => SampleSpec['data']): SampleSpec {
  const o = samples.origin;
  if (!o) throw new Error('these calibration samples cannot be handed to the onnxruntime host (they were not made from arrays or a seed)');
  const data = o.data.kind === 'random' ? o.data : staged(o.data.arrays);
  return { count: samples.count, first: o.first, source: samples.source, inputs: samples.inputs.map((i) => ({ ...i, dims: [...i.dims] })), data };
}

export interface OpenSamples {
  samples: CalibrationSamples;
  close(): void;
}

/** The host's side: the samples a spec describes. */
export function openSamples(spec: SampleSpec): OpenSamples {
  const d = spec.data;
  if (d.kind === 'random') return { samples: sliceSamples(randomSamplesOf(spec.inputs, spec.first + spec.count, d.seed), spec.first, spec.count), close: () => {} };
  const fd = openSync(d.path, 'r');
  const read = (k: number, index: number) => {
    const c = d.columns[k]!;
    const buf = new ArrayBuffer(c.sampleBytes);
    const view = new Uint8Array(buf);
    for (let done = 0; done < view.length; ) {
      const n = readSync(fd, view, done, view.length - done, c.offset + (spec.first + index) * c.sampleBytes + done);
      if (n === 0) throw new Error(`the staged calibration samples end early (input ${k}, sample ${spec.first + index})`);
      done += n;
    }
    return buf;
  };
  return { samples: samplesFromReader(spec.inputs, spec.count, spec.source, read), close: () => closeSync(fd) };
}
