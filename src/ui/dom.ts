// Small DOM helpers for the views: elements, tables and number formatting.

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

export type Cell = string | number | null | undefined | Node;

export function table(id: string, head: string[], rows: Cell[][], rowAttrs?: (i: number) => Record<string, string>): HTMLTableElement {
  const t = el('table', { id, class: 'report' });
  const tr = el('tr');
  for (const h of head) tr.append(el('th', { scope: 'col' }, h));
  t.append(el('thead', {}, tr));
  const body = el('tbody');
  rows.forEach((r, i) => {
    const row = el('tr', rowAttrs?.(i) ?? {});
    for (const c of r) row.append(el('td', typeof c === 'number' ? { class: 'num' } : {}, c instanceof Node ? c : fmt(c)));
    body.append(row);
  });
  t.append(body);
  return t;
}

export function fmt(v: Cell): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (typeof v !== 'number') return '';
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toFixed(a < 1 ? 4 : 2);
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function section(id: string, title: string, ...children: Array<Node | string>): HTMLElement {
  return el('section', { id, class: 'card' }, el('h2', {}, title), ...children);
}

export function chartBox(id: string, height: number): { box: HTMLElement; canvas: HTMLCanvasElement } {
  const canvas = el('canvas', { id: `${id}-canvas`, role: 'img' });
  const box = el('div', { class: 'chart', id });
  box.style.height = `${height}px`;
  box.append(canvas);
  return { box, canvas };
}

/** A definition list of label → value pairs. */
export function facts(id: string, pairs: Array<[string, Cell]>): HTMLElement {
  const dl = el('dl', { id, class: 'facts' });
  for (const [k, v] of pairs) dl.append(el('dt', {}, k), el('dd', {}, v instanceof Node ? v : fmt(v)));
  return dl;
}
