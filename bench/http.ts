import { sendOk, send } from './lib/http-client.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { percentile, timeMedian } from './lib/stats.js';
import { gaussian, MiB, npyBody } from './lib/tensors.js';

// End to end on loopback: a float32 .npy quantized to int8 (.npz and JSON replies) against
// the same server echoing the same body, and /healthz latency while four such requests run.
export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const mib = o.quick ? 16 : 64;
  const n = (mib * MiB) / 4;
  const body = npyBody(gaussian(n, 3), [n]);
  const npy = { 'content-type': 'application/x-npy' };
  const server = await startServer();
  try {
    const { port } = server;
    const echo = await timeMedian(() => sendOk(port, 'POST', '/bench/echo', body, npy), o.runs);
    const npz = await timeMedian(() => sendOk(port, 'POST', '/v1/quantize?bits=8', body, { ...npy, accept: 'application/x-npz' }), o.runs);
    const json = await timeMedian(() => sendOk(port, 'POST', '/v1/quantize?bits=8', body, npy), o.runs);

    const healthz = async (until: () => boolean, max: number) => {
      const ms: number[] = [];
      while (!until() && ms.length < max) ms.push((await send(port, 'GET', '/healthz')).ms);
      return ms;
    };
    const idle = await healthz(() => false, 200);
    let done = false;
    const load = Promise.all(
      Array.from({ length: 4 }, () => sendOk(port, 'POST', '/v1/quantize?bits=8', body, { ...npy, accept: 'application/x-npz' })),
    ).finally(() => {
      done = true;
    });
    const loaded = await healthz(() => done, 100_000);
    await load;
    const p99 = percentile(loaded, 99);
    // The two timed requests again on a server started without SERVER_NODE_FLAGS, to show
    // what the flag does for them in the same run.
    const plain = await startServer({}, []);
    let plainEcho = NaN;
    let plainNpz = NaN;
    try {
      plainEcho = await timeMedian(() => sendOk(plain.port, 'POST', '/bench/echo', body, npy), o.runs);
      plainNpz = await timeMedian(() => sendOk(plain.port, 'POST', '/v1/quantize?bits=8', body, { ...npy, accept: 'application/x-npz' }), o.runs);
    } finally {
      await plain.stop();
    }
    const note = `${mib} MiB float32 .npy, bits=8 per tensor, loopback`;
    return {
      rows: [
        row({ name: 'http.int8_npz_vs_echo', value: npz, unit: 'ms', baselineName: 'echo of the same body', baselineValue: echo, better: 'higher', invert: true, target: 1.2, note: `${note}, Accept: application/x-npz` }),
        row({ name: 'http.int8_json_vs_echo', value: json, unit: 'ms', baselineName: 'echo of the same body', baselineValue: echo, better: 'higher', invert: true, target: 1.0, note: `${note}, JSON reply (base64)` }),
        row({
          name: 'http.healthz_p99_ms',
          value: p99,
          unit: 'ms',
          baselineName: 'target',
          baselineValue: 20,
          better: 'lower',
          target: 1,
          note: `${loaded.length} probes while four ${mib} MiB quantizations ran (idle p99 ${percentile(idle, 99).toFixed(2)} ms); ratio = p99 / 20 ms`,
        }),
      ],
      details: [
        { name: 'healthz p50 under load', value: percentile(loaded, 50), unit: 'ms' },
        { name: 'healthz max under load', value: Math.max(...loaded), unit: 'ms' },
        { name: 'echo, server without SERVER_NODE_FLAGS', value: plainEcho, unit: 'ms' },
        { name: '.npz quantize, server without SERVER_NODE_FLAGS', value: plainNpz, unit: 'ms' },
      ],
    };
  } finally {
    await server.stop();
  }
}
