import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeNpz } from '../../src/codecs/npz.js';
import { parseNpyArrayHeader } from '../../src/codecs/npy.js';
import { readSafetensorsHeader, type SafetensorsHeader } from '../../src/codecs/safetensors.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { dataTypeName } from '../../src/onnx/proto/model.js';

// Readers for what the README's examples print and write, for the checks in examples.ts.

const LIMITS = { maxElements: 1 << 28, maxDims: 16 };

/**
 * The top-level JSON objects in `text`, in order (curl prints replies back to back, with no
 * newline); text between them and brace runs that are not JSON (a Python dict's repr) are skipped.
 */
export function jsonObjects(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"' && depth > 0) inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && depth > 0 && --depth === 0) {
      try {
        out.push(JSON.parse(text.slice(start, i + 1)) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
  }
  return out;
}

export function onlyJson<T = Record<string, unknown>>(text: string): T {
  return JSON.parse(text) as T;
}

export interface ModelFile {
  ops: string[];
  /** Initializer name → ONNX data type name ('float', 'int4', ...). */
  initializers: Map<string, string>;
  externalTensors: number;
  inputs: string[];
}

export function readModel(dir: string, file: string): ModelFile {
  const m = decodeModel(readFileSync(join(dir, file)));
  return {
    ops: m.graph.nodes.map((n) => n.opType),
    initializers: new Map(m.graph.initializers.map((t) => [t.name, dataTypeName(t.dataType)])),
    externalTensors: m.graph.initializers.filter((t) => t.dataLocation === 1).length,
    inputs: m.graph.inputs.map((v) => v.name),
  };
}

export interface NpzArrays {
  /** Member name without `.npy` → its dtype and shape; `report.json` parsed. */
  arrays: Map<string, { dtype: string; shape: number[] }>;
  report: Record<string, unknown> | undefined;
}

export function readNpz(path: string): NpzArrays {
  const arrays = new Map<string, { dtype: string; shape: number[] }>();
  let report: Record<string, unknown> | undefined;
  for (const e of decodeNpz(readFileSync(path))) {
    if (e.name === 'report.json') report = JSON.parse(Buffer.from(e.data).toString('utf8')) as Record<string, unknown>;
    else if (e.name.endsWith('.npy')) {
      const h = parseNpyArrayHeader(e.data, LIMITS);
      arrays.set(e.name.slice(0, -4), { dtype: h.dtype, shape: h.shape });
    }
  }
  return { arrays, report };
}

export function readSafetensors(path: string): SafetensorsHeader & { byName: Map<string, { dtype: string; shape: number[] }> } {
  const h = readSafetensorsHeader(readFileSync(path));
  return { ...h, byName: new Map(h.tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape }])) };
}

/** The numbers in `text` after `label` (e.g. "'output_snr_db': 24.1"). */
export function numberAfter(text: string, label: string): number {
  const at = text.indexOf(label);
  if (at < 0) throw new Error(`no ${label} in ${text.slice(0, 500)}`);
  const m = /-?\d+(\.\d+)?(e[-+]?\d+)?/i.exec(text.slice(at + label.length));
  if (!m) throw new Error(`no number after ${label}`);
  return Number(m[0]);
}
