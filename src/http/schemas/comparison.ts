import { z } from 'zod';

// Whether a held-back comparison ran (the data-aware and the static report share it;
// src/onnx/activations/float-runs.ts `Comparison`).

export const Comparison = z.discriminatedUnion('status', [z.object({ status: z.literal('ok') }), z.object({ status: z.literal('error'), reason: z.string() })]);
