// One row of bench/results.json. `ratio` always compares value with baseline_value so that
// "better" is `better`: higher ratios for throughputs, lower for times, memory and latency.

export interface Row {
  name: string;
  value: number | null;
  unit: string;
  baseline_name: string | null;
  baseline_value: number | null;
  ratio: number | null;
  target_ratio: number | null;
  meets_target: boolean | null;
  /** How ratio is formed and read, e.g. "value / baseline, higher is better". */
  ratio_is: string;
  note?: string;
}

export interface RowInput {
  name: string;
  value: number | null;
  unit: string;
  baselineName: string | null;
  baselineValue: number | null;
  /** 'higher': meets when ratio >= target; 'lower': when ratio <= target. */
  better: 'higher' | 'lower';
  /** Ratio as baseline / value instead of value / baseline (for times, where the baseline is faster). */
  invert?: boolean;
  target: number | null;
  note?: string;
}

export function row(r: RowInput): Row {
  const measured = r.value !== null && r.baselineValue !== null && r.baselineValue !== 0 && r.value !== 0;
  const ratio = measured ? (r.invert ? r.baselineValue! / r.value! : r.value! / r.baselineValue!) : null;
  const meets = ratio === null || r.target === null ? null : r.better === 'higher' ? ratio >= r.target : ratio <= r.target;
  const out: Row = {
    name: r.name,
    value: r.value,
    unit: r.unit,
    baseline_name: r.baselineName,
    baseline_value: r.baselineValue,
    ratio,
    target_ratio: r.target,
    meets_target: meets,
    ratio_is: `${r.invert ? 'baseline / value' : 'value / baseline'}, ${r.better} is better`,
  };
  if (r.note) out.note = r.note;
  return out;
}

/** Extra figures a scenario prints and records beside its rows (bounds, variants). */
export interface Detail {
  name: string;
  value: number;
  unit: string;
}

export interface ScenarioResult {
  rows: Row[];
  details: Detail[];
}

export interface BenchOptions {
  quick: boolean;
  /** Timed repetitions after the warm-up (at least 5). */
  runs: number;
  log: (line: string) => void;
}
