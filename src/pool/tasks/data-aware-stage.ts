import { performance } from 'node:perf_hooks';
import type { CalibrationSamples } from '../../onnx/activations/calibration-data.js';
import { DEFAULT_HESSIAN_MAX_BYTES, quantizeDataAware, type DataAwareReport } from '../../onnx/activations/quantize-data-aware.js';
import { Errors } from '../../errors.js';
import type { ExternalDataFiles } from '../../onnx/runtime/collect.js';
import type { ModelProgress } from '../../onnx/weights/quantize-model.js';
import { isDataAware } from '../../onnx/weights/options.js';
import type { CancelFlag } from '../cancel.js';
import type { FloatRuns } from '../../onnx/activations/float-runs.js';
import type { TaskLimits } from '../messages.js';
import type { Prepared, Quantized } from './model-pipeline.js';

// method=imatrix|gptq|awq inside the model pipeline: the calibration samples' statistics,
// the fitted weights, and the `data_aware` report section (held-back output figures).

export interface DataAwareStageHooks {
  cancel?: CancelFlag | undefined;
  /** Where the onnxruntime runs on the user's model happen (the onnxruntime host, host-runs.ts). */
  runs?: FloatRuns | undefined;
  externalData?: ExternalDataFiles | undefined;
  onCalibrating?: ((done: number, total: number) => void) | undefined;
  onProgress?: ((p: ModelProgress) => void) | undefined;
}

export interface DataAwareQuantized extends Quantized {
  dataAware: DataAwareReport;
}

export function isDataAwareTask(p: Pick<Prepared, 'options'>): boolean {
  return isDataAware(p.options.method);
}

export async function dataAwareStage(p: Prepared, samples: CalibrationSamples, limits: TaskLimits, hooks: DataAwareStageHooks): Promise<DataAwareQuantized> {
  const method = p.options.method;
  if (!isDataAware(method)) throw new Error(`dataAwareStage: method ${method} is data-free`);
  const t0 = performance.now();
  const heldBack = p.options.held_back;
  if (heldBack !== undefined && heldBack >= samples.count) {
    throw new Errors.Calibration(`held_back=${heldBack} leaves no sample to calibrate on: the calibration data has ${samples.count} sample(s)`);
  }
  const { result, report } = await quantizeDataAware(
    p.input,
    samples,
    { method, weights: p.opts, heldBack, maxHessianBytes: limits.hessianMaxBytes ?? DEFAULT_HESSIAN_MAX_BYTES },
    { external: p.external, ...hooks },
  );
  // Gathering the statistics (with GPTQ's fits and AWQ's search, done batch by batch as they arrive) is the calibrate stage.
  return { ...p, result, quantizeMs: performance.now() - t0 - report.calibration_ms, calibrateMs: report.calibration_ms, dataAware: report };
}

export function isDataAwareResult(q: Quantized): q is DataAwareQuantized {
  return 'dataAware' in q;
}
