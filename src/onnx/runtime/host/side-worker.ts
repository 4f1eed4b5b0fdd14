import { parentPort } from 'node:worker_threads';
import type { InferenceSession } from 'onnxruntime-node';
import { loadOrt } from '../ort.js';
import type { SideReply, SideRequest, SideTensor } from './side-run.js';

// The onnxruntime host's second thread (side-run.ts): creates one session, runs it on the
// feeds it is sent, and sends the outputs back. onnxruntime creates a session synchronously
// on the calling thread, so this is how the host builds two sessions at once.

function plain(outputs: InferenceSession.ReturnType): Record<string, SideTensor> {
  const out: Record<string, SideTensor> = {};
  for (const [name, t] of Object.entries(outputs)) {
    if ('data' in t) out[name] = { type: t.type, dims: [...t.dims], data: t.data as SideTensor['data'] };
  }
  return out;
}

parentPort!.on('message', (req: SideRequest) => {
  void (async (): Promise<SideReply> => {
    try {
      const ort = await loadOrt();
      if (req.path === undefined) return { id: req.id, ok: true, outputs: {} };
      const session = await ort.InferenceSession.create(req.path, req.options);
      try {
        const feeds = Object.fromEntries(Object.entries(req.feeds).map(([k, t]) => [k, new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
        return { id: req.id, ok: true, outputs: plain(await session.run(feeds)) };
      } finally {
        await session.release();
      }
    } catch (err) {
      return { id: req.id, ok: false, message: err instanceof Error ? err.message : String(err) };
    }
  })().then((reply) => parentPort!.postMessage(reply));
});
