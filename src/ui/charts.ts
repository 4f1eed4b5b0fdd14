import Chart from 'chart.js/auto';
import type { ChartConfiguration } from 'chart.js';

// One Chart.js instance per plot id, replaced on each run. The live instances are also on
// window.quantdCharts, so the data a plot shows can be read back (the browser tests do).

const charts: Record<string, Chart> = {};
(window as unknown as { quantdCharts: typeof charts }).quantdCharts = charts;

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = 'system-ui, sans-serif';

export function draw(id: string, canvas: HTMLCanvasElement, config: ChartConfiguration): Chart {
  charts[id]?.destroy();
  const chart = new Chart(canvas, config);
  charts[id] = chart;
  return chart;
}

export function forget(id: string): void {
  charts[id]?.destroy();
  delete charts[id];
}

/** Colours for the formats and series, readable on white and told apart by people with common colour blindness (Okabe-Ito). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

export function colourFor(key: string, keys: string[]): string {
  const i = keys.indexOf(key);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length]!;
}

export function axisTitle(text: string) {
  return { display: true, text, font: { weight: 'bold' as const } };
}
