import { HostCrashed, ortHost, type OrtHost } from './host/client.js';
import type { ReferenceOptions, ReferenceReply } from './host/protocol.js';
import { stageModel, type StagedModel } from './host/stage.js';
import type { FusedOpsReport } from './fused-ops.js';
import type { LatencyOptions, LatencyReport } from './latency.js';
import { message, type ModelBytes, type ValidationReport } from './validate.js';

// Validation, latency and fused-op counts for uploaded models, run in the onnxruntime host
// process (host/child.ts) instead of this thread: a model that crashes onnxruntime costs its
// own report, never the service. Same reports as validate.ts / latency.ts / fused-ops.ts,
// plus what a crash means for each.

/** A reference run kept in the host; release() when done with it. */
export interface HostReference {
  readonly ref: number;
  readonly host: OrtHost;
  readonly threads: number;
}

export type ReferenceFailure = Extract<ValidationReport, { status: 'skipped' | 'error' }>;

function crashed(err: unknown, what: string): string | undefined {
  if (!(err instanceof HostCrashed)) return undefined;
  return `onnxruntime crashed (${err.signal ?? `exit code ${err.exitCode}`}) ${what}; it ran in a separate process, so only this validation is lost`;
}

/**
 * Stages the models as files, sends what `ask` builds from their paths, and turns a crash
 * of the host (or models that cannot be staged) into `onCrash(reason)`; the staged files
 * go once the host has answered.
 */
async function inHost<T>(models: ModelBytes[], what: string, ask: (paths: string[], cleanup: string[]) => Promise<unknown>, onCrash: (reason: string) => T): Promise<T> {
  const staged: StagedModel[] = [];
  try {
    try {
      for (const m of models) staged.push(stageModel(m));
    } catch (err) {
      // No room for the files, or an external data name that is not a plain relative path.
      return onCrash(`could not hand the model to onnxruntime: ${message(err)}`);
    }
    // The host removes them too: this thread may be terminated before its finally runs.
    const cleanup = staged.flatMap((s) => (s.dir ? [s.dir] : []));
    return (await ask(staged.map((s) => s.path), cleanup)) as T;
  } catch (err) {
    const why = crashed(err, what);
    if (why) return onCrash(why);
    throw err;
  } finally {
    for (const s of staged) s.dispose();
  }
}

/** `cancelled` is polled while the host works; a cancelled task's host is stopped. */
export async function referenceRunIsolated(original: ModelBytes, opts: ReferenceOptions = {}, cancelled?: () => boolean): Promise<HostReference | ReferenceFailure> {
  const host = ortHost();
  // A fresh host boots while the float model is written out for it (hundreds of MiB).
  host.warm();
  const r = await inHost<ReferenceReply | ReferenceFailure>(
    [original],
    'loading or running the original model',
    ([model], cleanup) => host.request({ op: 'reference', model: model!, opts }, cancelled, cleanup),
    (reason) => ({ status: 'error', reason }),
  );
  return 'status' in r ? r : { ref: r.ref, host, threads: r.threads };
}

export function releaseReference(ref: HostReference): void {
  // A host that crashed or was stopped holds nothing any more.
  ref.host.request({ op: 'release', ref: ref.ref }).catch(() => {});
}

/**
 * `atOnce`: the quantized model's two sessions are created at once on two of the host's
 * threads (about half the time, both sessions' memory together): for models held in memory
 * anyway, not for a job's many-GiB model.
 */
export function compareRunIsolated(ref: HostReference, quantized: ModelBytes, cancelled?: () => boolean, atOnce = false): Promise<ValidationReport> {
  return inHost<ValidationReport>(
    [quantized],
    'loading or running the quantized model',
    ([model], cleanup) => ref.host.request({ op: 'compare', ref: ref.ref, model: model!, atOnce }, cancelled, cleanup),
    (reason) => ({ status: 'error', reason }),
  );
}

export function measureLatencyIsolated(original: ModelBytes, quantized: ModelBytes, opts: LatencyOptions = {}): Promise<LatencyReport> {
  const { checkpoint, ...rest } = opts;
  checkpoint?.();
  return inHost<LatencyReport>(
    [original, quantized],
    'loading or running one of the models for the latency measurement',
    ([a, b], cleanup) => ortHost().request({ op: 'latency', original: a!, quantized: b!, opts: rest }, cancelledBy(checkpoint), cleanup),
    (reason) => ({ status: 'skipped', reason }),
  );
}

export function fusedOpsIsolated(model: ModelBytes): Promise<FusedOpsReport> {
  return inHost<FusedOpsReport>(
    [model],
    "optimizing the quantized model to count onnxruntime's fused operators",
    ([m], cleanup) => ortHost().request({ op: 'fusedOps', model: m! }, undefined, cleanup),
    (reason) => ({ status: 'skipped', reason }),
  );
}

/** A checkpoint that throws when cancelled, as a predicate the host client can poll. */
export function cancelledBy(checkpoint: (() => void) | undefined): (() => boolean) | undefined {
  if (!checkpoint) return undefined;
  return () => {
    try {
      checkpoint();
      return false;
    } catch {
      return true;
    }
  };
}
