import { sendOk } from './lib/http-client.js';
import { row, type BenchOptions, type Detail, type Row, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { median } from './lib/stats.js';
import { gaussian, npyBody } from './lib/tensors.js';

// The data-free methods against rtn per tensor as a client sees it: POST /v1/quantize with the
// same [1024, 4096] float32 .npy (16 MiB) and an .npz reply, 4-bit in groups of 32 and 128 along
// the rows, both schemes, on a server with its default pool. bench/methods.ts times the core's
// quantize() alone; this adds what every request pays whatever the method (upload, parse, the
// worker hand-off, the error report, packing and sending the reply). The three methods'
// requests are interleaved, so the load of the shared machine falls on each alike.
export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const rows = o.quick ? 64 : 1024;
  const cols = 4096;
  const body = npyBody(gaussian(rows * cols, 21), [rows, cols]);
  const headers = { 'content-type': 'application/x-npy', accept: 'application/x-npz' };
  const runs = Math.max(o.runs, 5);
  const out: Row[] = [];
  const details: Detail[] = [];
  const server = await startServer();
  try {
    for (const scheme of ['asymmetric', 'symmetric'] as const) {
      for (const group of [32, 128]) {
        const path = (method: string) => `/v1/quantize?bits=4&scheme=${scheme}&granularity=per_group&axis=-1&group_size=${group}&method=${method}`;
        const ms: Record<'rtn' | 'lsq' | 'hqq', number[]> = { rtn: [], lsq: [], hqq: [] };
        for (const method of ['rtn', 'lsq', 'hqq'] as const) await sendOk(server.port, 'POST', path(method), body, headers);
        for (let i = 0; i < runs; i++) {
          for (const method of ['rtn', 'lsq', 'hqq'] as const) ms[method].push((await sendOk(server.port, 'POST', path(method), body, headers)).ms);
        }
        const rtn = median(ms.rtn);
        details.push({ name: `rtn ${scheme} g${group}: request time (median)`, value: rtn, unit: 'ms' });
        for (const method of ['lsq', 'hqq'] as const) {
          const suffix = `${scheme === 'symmetric' ? '_sym' : ''}${group === 128 ? '_g128' : ''}`;
          out.push(row({
            name: `method_http.${method}${suffix}`, value: median(ms[method]), unit: 'ms', baselineName: 'rtn request', baselineValue: rtn, better: 'lower', target: 3,
            note: `POST /v1/quantize [${rows}, ${cols}] float32 .npy → .npz, 4-bit ${scheme} g${group}; ratio = ${method} request / rtn request (wall, medians of ${runs} interleaved)`,
          }));
        }
      }
    }
  } finally {
    await server.stop();
  }
  return { rows: out, details };
}
