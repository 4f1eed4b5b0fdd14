import { HostCrashed, ortHost, type OrtHost } from './host/client.js';
import type { ReferenceOptions, ReferenceReply } from './host/protocol.js';
import { stageModel } from './host/stage.js';
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

/** `cancelled` is polled while the host works; a cancelled task's host is stopped. */
export async function referenceRunIsolated(original: ModelBytes, opts: ReferenceOptions = {}, cancelled?: () => boolean): Promise<HostReference | ReferenceFailure> {
  const host = ortHost();
  let staged;
  try {
    staged = stageModel(original);
  } catch (err) {
    return { status: 'skipped', reason: `could not hand the model to onnxruntime: ${message(err)}` };
  }
  try {
    const r = (await host.request({ op: 'reference', model: staged.path, opts }, cancelled)) as ReferenceReply;
    return 'status' in r ? r : { ref: r.ref, host, threads: r.threads };
  } catch (err) {
    const why = crashed(err, 'loading or running the original model');
    if (why) return { status: 'error', reason: why };
    throw err;
  } finally {
    staged.dispose();
  }
}

export function releaseReference(ref: HostReference): void {
  // A host that crashed or was stopped holds nothing any more.
  ref.host.request({ op: 'release', ref: ref.ref }).catch(() => {});
}

export async function compareRunIsolated(ref: HostReference, quantized: ModelBytes, cancelled?: () => boolean): Promise<ValidationReport> {
  let staged;
  try {
    staged = stageModel(quantized);
  } catch (err) {
    return { status: 'error', reason: `could not hand the quantized model to onnxruntime: ${message(err)}` };
  }
  try {
    return (await ref.host.request({ op: 'compare', ref: ref.ref, model: staged.path }, cancelled)) as ValidationReport;
  } catch (err) {
    const why = crashed(err, 'loading or running the quantized model');
    if (why) return { status: 'error', reason: why };
    throw err;
  } finally {
    staged.dispose();
  }
}

export async function measureLatencyIsolated(original: ModelBytes, quantized: ModelBytes, opts: LatencyOptions = {}): Promise<LatencyReport> {
  const { checkpoint, ...rest } = opts;
  checkpoint?.();
  const a = stageModel(original);
  try {
    const b = stageModel(quantized);
    try {
      return (await ortHost().request({ op: 'latency', original: a.path, quantized: b.path, opts: rest }, cancelledBy(checkpoint))) as LatencyReport;
    } finally {
      b.dispose();
    }
  } catch (err) {
    const why = crashed(err, 'loading or running one of the models for the latency measurement');
    if (why) return { status: 'skipped', reason: why };
    throw err;
  } finally {
    a.dispose();
  }
}

export async function fusedOpsIsolated(model: ModelBytes): Promise<FusedOpsReport> {
  const staged = stageModel(model);
  try {
    return (await ortHost().request({ op: 'fusedOps', model: staged.path })) as FusedOpsReport;
  } catch (err) {
    const why = crashed(err, "optimizing the quantized model to count onnxruntime's fused operators");
    if (why) return { status: 'skipped', reason: why };
    throw err;
  } finally {
    staged.dispose();
  }
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
