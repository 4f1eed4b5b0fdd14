import { rmSync } from 'node:fs';
import { isQuantError } from '../../../errors.js';
import { fusedOps } from '../fused-ops.js';
import { loadOrt } from '../ort.js';
import { measureLatency } from '../latency.js';
import { compareRun, referenceRun, type Reference } from '../validate.js';
import { activationErrorsOp, calibrateOp, heldBackOp, statsBatchOp } from './calibration-ops.js';
import type { HostReply, HostRequest, HostValue } from './protocol.js';
import { runBeside, warmSide } from './side-run.js';

// The onnxruntime host: a child process that creates every session for an uploaded model.
// onnxruntime-node can take the whole process down on a model it mishandles (a SIGSEGV in
// InferenceSession.create, seen with 'all' optimization on an fp16 transformer), so that
// happens here, where a crash costs one request's validation instead of the service.
// Requests are served one at a time, in order: the worker that owns this host waits anyway.
// Static calibration and the data-aware statistics run here too (calibration-ops.ts).

const references = new Map<number, Reference>();
// onnxruntime is loaded at once, on both threads: the host is started before the model it
// gets first is staged (isolated.ts), so this happens while that file is written.
void loadOrt().catch(() => {});
warmSide();
let nextRef = 1;

async function handle(req: HostRequest): Promise<HostValue> {
  const progress = (done: number, total: number) => reply({ id: req.id, progress: [done, total] });
  switch (req.op) {
    case 'reference': {
      const r = await referenceRun({ path: req.model }, req.opts);
      if ('status' in r) return r;
      const ref = nextRef++;
      references.set(ref, r);
      return { ref, threads: r.threads };
    }
    case 'compare': {
      const r = references.get(req.ref);
      if (!r) throw new Error(`no reference run ${req.ref} in this onnxruntime host`);
      return compareRun(r, { path: req.model }, undefined, req.atOnce ? runBeside : undefined);
    }
    case 'release':
      references.delete(req.ref);
      return null;
    case 'latency':
      return measureLatency({ path: req.original }, { path: req.quantized }, req.opts);
    case 'fusedOps':
      return fusedOps({ path: req.model });
    case 'calibrate':
      return calibrateOp(req, progress);
    case 'activationErrors':
      return activationErrorsOp(req);
    case 'statsBatch':
      return statsBatchOp(req, progress);
    case 'heldBack':
      return heldBackOp(req);
    case 'ping':
      return null;
  }
}

function reply(msg: HostReply): void {
  // A parent gone mid-request (its worker replaced, the CLI exiting) closes the channel: with
  // a callback the failed send is not an unhandled 'error' (EPIPE) on process, and the
  // 'disconnect' handler below cleans up and exits.
  if (process.connected) process.send!(msg, undefined, undefined, () => {});
}

let queue: Promise<void> = Promise.resolve();
/** Staging directories of requests received and not yet finished. */
const staged = new Set<string>();

function remove(dirs: readonly string[]): void {
  for (const d of dirs) {
    rmSync(d, { recursive: true, force: true });
    staged.delete(d);
  }
}

process.on('message', (req: HostRequest) => {
  const dirs = req.cleanup ?? [];
  for (const d of [...dirs, ...(req.holds ?? [])]) staged.add(d);
  queue = queue.then(async () => {
    try {
      reply({ id: req.id, ok: true, value: await handle(req) });
    } catch (err) {
      const message = (err instanceof Error ? err.message : String(err)).slice(0, 1000);
      reply({ id: req.id, ok: false, message, code: isQuantError(err) ? err.code : undefined });
    } finally {
      remove(dirs);
    }
  });
});

// The worker that started this host is gone (finished, replaced, or the service stopped).
process.on('disconnect', () => {
  remove([...staged]);
  process.exit(0);
});
