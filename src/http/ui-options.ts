import { z } from 'zod';
import { AnalyzeOptions } from './schemas/analyze.js';
import { ModelOptions } from './schemas/models.js';
import { QuantizeOptions } from './schemas/quantize.js';

/**
 * What the report page offers, as JSON Schema built from the routes' own zod schemas (their
 * parsed form: enums, defaults and bounds as the route applies them), so a method or format
 * added to the API appears on the page without touching it.
 */
export function uiOptions() {
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'output', unrepresentable: 'any' });
  return { quantize: schema(QuantizeOptions), analyze: schema(AnalyzeOptions), model: schema(ModelOptions) };
}
