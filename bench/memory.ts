import { sendOk } from './lib/http-client.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { MiB } from './lib/tensors.js';

// Peak RSS of a fresh server process (VmHWM) serving one request whose body is a raw float32
// tensor of 256 MiB (64 MiB with --quick), per reply type.
export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const mib = o.quick ? 64 : 256;
  const n = (mib * MiB) / 4;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001) * (1 + (i % 7));
  const body = Buffer.from(x.buffer);
  const path = `/v1/quantize?bits=8&shape=${n}`;
  const peak = async (accept: string): Promise<{ peak: number; idle: number }> => {
    const server = await startServer();
    try {
      const idle = server.rss();
      await sendOk(server.port, 'POST', path, body, { 'content-type': 'application/octet-stream', accept });
      return { peak: server.peakRss(), idle };
    } finally {
      await server.stop();
    }
  };
  const npz = await peak('application/x-npz');
  const json = await peak('application/json');
  const details: Detail[] = [
    { name: 'RSS of the idle server before the request', value: npz.idle / MiB, unit: 'MiB' },
    { name: `peak RSS with the JSON reply (${mib} MiB body)`, value: json.peak / MiB, unit: 'MiB' },
  ];
  return {
    rows: [
      row({ name: 'mem.peak_rss_256mib', value: npz.peak / MiB, unit: 'MiB', baselineName: 'body size', baselineValue: mib, better: 'lower', target: 2.5, note: `one ${mib} MiB application/octet-stream body, Accept: application/x-npz, fresh server (VmHWM)` }),
    ],
    details,
  };
}
