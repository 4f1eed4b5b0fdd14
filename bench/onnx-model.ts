import { graph, model, node, valueInfo, floatTensor } from '../src/onnx/graph/build.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { DataType } from '../src/onnx/proto/model.js';
import { send } from './lib/http-client.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { MiB } from './lib/tensors.js';

// A float model of MatMul layers (25 x 2048 x 2048 = 105M weights, ~400 MiB; 6 layers with
// --quick) quantized to int8 per channel through POST /v1/models/quantize on loopback, with
// the service's default validation. The row is the quantization time the service reports
// (report.summary.quantize_ms of the JSON reply); the whole request time is in the note.
export function floatModel(layers: number, side: number): Uint8Array {
  let seed = 1;
  const initializers = [];
  const nodes = [];
  for (let l = 0; l < layers; l++) {
    const w = new Float32Array(side * side);
    for (let i = 0; i < w.length; i++) w[i] = ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.04;
    initializers.push(floatTensor(`W${l}`, [side, side], w));
    nodes.push(node('MatMul', [l === 0 ? 'x' : `h${l - 1}`, `W${l}`], [l === layers - 1 ? 'y' : `h${l}`], { name: `mm${l}` }));
  }
  const g = graph({ nodes, initializers, inputs: [valueInfo('x', DataType.float32, [1, side])], outputs: [valueInfo('y', DataType.float32, [1, side])] });
  return encodeModelBytes(model(g));
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const layers = o.quick ? 6 : 25;
  const bytes = Buffer.from(floatModel(layers, 2048));
  const mib = bytes.length / MiB;
  const server = await startServer();
  try {
    const r = await send(server.port, 'POST', '/v1/models/quantize?bits=8&granularity=per_channel&measure_latency=false', bytes, { 'content-type': 'application/octet-stream', accept: 'application/json' }, true);
    if (r.status !== 200 || !r.body) {
      return {
        rows: [row({ name: 'onnx.int8_400mb', value: null, unit: 's', baselineName: null, baselineValue: null, better: 'lower', target: null, note: `not measured: POST /v1/models/quantize answered ${r.status}` })],
        details: [],
      };
    }
    const { summary } = JSON.parse(r.body.toString()) as {
      summary: { quantize_ms?: number; timings_ms?: { decode: number; quantize: number; encode: number; validation: number } };
    };
    const quantizeS = (summary.quantize_ms ?? NaN) / 1000;
    const totalS = r.ms / 1000;
    const t = summary.timings_ms;
    const share = (ms: number) => `${((100 * ms) / r.ms).toFixed(0)}%`;
    const breakdown = t
      ? `decode ${share(t.decode)}, quantize ${share(t.quantize)}, encode ${share(t.encode)}, validation ${share(t.validation)}, the rest (upload, reply, queueing) ${share(r.ms - t.decode - t.quantize - t.encode - t.validation)}`
      : `quantize share ${((100 * quantizeS) / totalS).toFixed(0)}%`;
    // The same upload without validation: what the rest of the request costs.
    const bare = await send(server.port, 'POST', '/v1/models/quantize?bits=8&granularity=per_channel&measure_latency=false&validate=false', bytes, { 'content-type': 'application/octet-stream', accept: 'application/json' }, true);
    const bareS = bare.status === 200 ? bare.ms / 1000 : null;
    return {
      rows: [
        row({
          name: 'onnx.int8_400mb_request',
          value: totalS,
          unit: 's',
          baselineName: 'target: 2.5 s',
          baselineValue: 2.5,
          better: 'lower',
          target: 1,
          note: `the whole request with validation (upload, quantization, validation in the onnxruntime host, the JSON reply with the model), first model request of a fresh server`,
        }),
        row({
          name: 'onnx.int8_400mb_request_no_validation',
          value: bareS,
          unit: 's',
          baselineName: 'target: 1.2 s',
          baselineValue: 1.2,
          better: 'lower',
          target: 1,
          note: bareS === null ? `not measured: answered ${bare.status}` : 'the same upload with validate=false, right after',
        }),
        row({
          name: 'onnx.int8_400mb',
          value: quantizeS,
          unit: 's',
          baselineName: 'target: 2 s of quantization',
          baselineValue: 2,
          better: 'lower',
          target: 1,
          note: `${mib.toFixed(0)} MiB float model, ${layers} MatMul layers of 2048 x 2048, int8 per channel; whole request ${totalS.toFixed(2)} s on loopback: ${breakdown}`,
        }),
      ],
      details: [
        { name: 'whole request (model upload to reply)', value: r.ms, unit: 'ms' },
        ...(t ? Object.entries(t).map(([stage, ms]) => ({ name: `stage: ${stage}`, value: ms, unit: 'ms' })) : []),
      ],
    };
  } finally {
    await server.stop();
  }
}
