import type { CancelFlag } from '../../pool/cancel.js';
import { encodeModelBytes } from '../proto/encode.js';
import type { OnnxModel } from '../proto/model.js';
import { measureActivationErrors } from '../runtime/activation-error.js';
import type { ExternalDataFiles } from '../runtime/collect.js';
import { compareOnSamples, type HeldBackOutput } from '../runtime/held-back.js';
import { calibrateActivations } from './calibrate.js';
import type { CalibrationSamples } from './calibration-data.js';
import { forEachStatsBatch } from './weight-stats.js';

// The onnxruntime runs that static quantization and the data-aware methods make on the
// user's model, behind one interface so they can run where a crash cannot take the service
// down: `inProcess` runs them in this thread (library use and unit tests); the model pipeline
// passes host-runs.ts, which runs the same functions in the onnxruntime host process.

/**
 * A run lost (its onnxruntime process crashed, or onnxruntime failed in it: host-runs.ts)
 * where only a measurement is lost with it: the held-back comparison of the data-aware
 * methods and static quantization's measurements, which come after the quantized model is
 * made. The caller reports that it did not run, as validation does, instead of failing the
 * request.
 */
export class MeasurementLost extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'MeasurementLost';
  }
}

/** Whether a held-back comparison ran, as the reports give it. */
export type Comparison = { status: 'ok' } | { status: 'error'; reason: string };

export interface HeldBackOptions {
  cancel?: CancelFlag | undefined;
  externalData?: ExternalDataFiles | undefined;
}

export interface FloatRuns {
  calibrate: typeof calibrateActivations;
  /** The fallback's measurements (activation-error.ts); MeasurementLost as for heldBack. */
  activationErrors: typeof measureActivationErrors;
  statsBatches: typeof forEachStatsBatch;
  /** The float and the quantized model's outputs on the held-back samples (held-back.ts); MeasurementLost when the run died with its process. */
  heldBack(float: OnnxModel, quantized: OnnxModel, samples: CalibrationSamples, o: HeldBackOptions): Promise<HeldBackOutput[]>;
}

export const inProcess: FloatRuns = {
  calibrate: calibrateActivations,
  activationErrors: measureActivationErrors,
  statsBatches: forEachStatsBatch,
  heldBack: (float, quantized, samples, o) =>
    compareOnSamples({ bytes: encodeModelBytes(float), externalData: o.externalData }, { bytes: encodeModelBytes(quantized), externalData: o.externalData }, samples, { cancel: o.cancel }),
};
