import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { floatModel } from './onnx-model.js';
import { send } from './lib/http-client.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { MiB } from './lib/tensors.js';

// Memory of the synchronous model path: the 400 MiB float model of onnx-model.ts (25 MatMul
// layers of 2048 x 2048; 6 with --quick) through POST /v1/models/quantize, int8 per channel,
// with validation, on a fresh server. Validation runs in the worker's onnxruntime host (a
// child process of the server): the float model is staged to /dev/shm and its reference
// session stays alive in the host while the worker quantizes. Sampled every 20 ms: the
// server's RSS, its host processes' RSS and the bytes staged in /dev/shm (tmpfs: memory, but
// in no process's RSS); after the request, each process's own peak (VmHWM).

const SHM = '/dev/shm';

function field(pid: number, name: string): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
    return line ? Number(line.split(/\s+/)[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Child processes of pid (the onnxruntime hosts its workers forked). */
function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (text) out.push(...text.split(' ').map(Number));
    }
  } catch {
    // The process is gone.
  }
  return out;
}

function stagedDirs(): string[] {
  try {
    return readdirSync(SHM).filter((n) => n.startsWith('quantd-ort-'));
  } catch {
    return [];
  }
}

/** Bytes in staging directories that were not there before the run (other processes' are left out). */
function stagedBytes(before: ReadonlySet<string>): number {
  let total = 0;
  for (const d of stagedDirs()) {
    if (before.has(d)) continue;
    try {
      for (const f of readdirSync(join(SHM, d))) total += statSync(join(SHM, d, f)).size;
    } catch {
      // Removed while we looked.
    }
  }
  return total;
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const layers = o.quick ? 6 : 25;
  const bytes = Buffer.from(floatModel(layers, 2048));
  const mib = bytes.length / MiB;
  const server = await startServer();
  const before = new Set(stagedDirs());
  let peakSum = 0;
  let peakShm = 0;
  let peakHost = 0;
  const hosts = new Set<number>();
  const sample = () => {
    const kids = children(server.pid);
    for (const k of kids) hosts.add(k);
    const host = kids.reduce((s, k) => s + field(k, 'VmRSS'), 0);
    const shm = stagedBytes(before);
    peakHost = Math.max(peakHost, host);
    peakShm = Math.max(peakShm, shm);
    peakSum = Math.max(peakSum, field(server.pid, 'VmRSS') + host + shm);
  };
  try {
    const idle = server.rss();
    const timer = setInterval(sample, 20);
    let r;
    try {
      r = await send(server.port, 'POST', '/v1/models/quantize?bits=8&granularity=per_channel&measure_latency=false', bytes, { 'content-type': 'application/octet-stream', accept: 'application/json' }, true);
    } finally {
      clearInterval(timer);
    }
    sample();
    if (r.status !== 200) {
      return { rows: [row({ name: 'mem.model_400mib_request', value: null, unit: 'MiB', baselineName: null, baselineValue: null, better: 'lower', target: null, note: `not measured: POST /v1/models/quantize answered ${r.status}` })], details: [] };
    }
    const validation = (JSON.parse(r.body!.toString()) as { validation: { status: string } }).validation.status;
    const serverPeak = server.peakRss();
    const hostPeak = [...hosts].reduce((s, k) => s + field(k, 'VmHWM'), 0);
    const details: Detail[] = [
      { name: 'RSS of the idle server before the request', value: idle / MiB, unit: 'MiB' },
      { name: "peak RSS of the server process (VmHWM: event loop, workers' heaps, the upload, the quantized copy)", value: serverPeak / MiB, unit: 'MiB' },
      { name: `peak RSS of the onnxruntime host (VmHWM; ${hosts.size} process(es): the float model's session for validation)`, value: hostPeak / MiB, unit: 'MiB' },
      { name: 'peak of the hosts RSS, sampled', value: peakHost / MiB, unit: 'MiB' },
      { name: 'peak bytes staged in /dev/shm (the float model, then the quantized one)', value: peakShm / MiB, unit: 'MiB' },
      { name: 'sum of the VmHWMs + the staged peak (an upper bound: the peaks need not coincide)', value: (serverPeak + hostPeak + peakShm) / MiB, unit: 'MiB' },
      { name: 'whole request', value: r.ms, unit: 'ms' },
    ];
    return {
      rows: [
        row({
          name: 'mem.model_400mib_request',
          value: peakSum / MiB,
          unit: 'MiB',
          baselineName: 'model size',
          baselineValue: mib,
          better: 'lower',
          target: null,
          note: `peak of server RSS + host RSS + staged /dev/shm bytes, sampled every 20 ms, during one ${mib.toFixed(0)} MiB model request (int8 per channel, validation ${validation}, fresh server, 1 request); ratio = peak / model size`,
        }),
      ],
      details,
    };
  } finally {
    await server.stop();
  }
}
