import type { IntParams, Range } from '../calibrate.js';
import { hqqGroup } from './hqq.js';
import { lsqGroup } from './lsq.js';
import type { GroupParams, Weights } from './stored.js';

// How each group's scale and zero point are chosen once calibration has given its range.
// The data-aware methods (imatrix, GPTQ, AWQ) join this list with calibration data; the
// importance weights of imatrix are the `weights` argument lsq already takes.

export const METHODS = ['rtn', 'lsq', 'hqq'] as const;
export type QuantMethod = (typeof METHODS)[number];

export type { GroupParams, Weights } from './stored.js';

/** The parameters of one group under a method other than rtn (rtn is paramsFromRange itself). */
export function refineGroup(method: Exclude<QuantMethod, 'rtn'>, x: Float32Array, range: Range, p: IntParams, weights?: Weights): GroupParams {
  switch (method) {
    case 'lsq':
      return lsqGroup(x, range, p, weights);
    case 'hqq':
      return hqqGroup(x, range, p);
  }
}
