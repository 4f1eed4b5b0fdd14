// Option forms drawn from /ui/options.json (JSON Schema of the routes' own zod schemas): an
// enum is a select, a list of an enum is a row of checkboxes, a flag a checkbox, a number a
// number field, anything else text as the query string takes it. Only values that differ
// from the API's default are sent, so the API's defaults stay the API's.

export interface Prop {
  type?: string;
  enum?: Array<string | number>;
  const?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  description?: string;
  items?: Prop;
  anyOf?: Prop[];
}

export interface Schema {
  properties: Record<string, Prop>;
}

export interface OptionForm {
  /** name → query text, for the options the user set away from the API's default. */
  values(): Record<string, string>;
  input(name: string): HTMLInputElement | HTMLSelectElement | undefined;
}

export interface FormSpec {
  prefix: string;
  hide?: string[];
  /** The page's own starting values where the API's default suits the page less. */
  initial?: Record<string, string>;
  /** Which fieldset a field goes in (by name); fields without one go in the first. */
  group?: (name: string, prop: Prop) => string | undefined;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const isFlag = (p: Prop) => typeof p.default === 'boolean' || (p.anyOf?.some((a) => a.type === 'boolean') ?? false);
const asText = (v: unknown) => (Array.isArray(v) ? v.join(',') : v === undefined || v === null ? '' : String(v));

export function renderForm(container: HTMLElement, schema: Schema, spec: FormSpec): OptionForm {
  container.replaceChildren();
  const readers = new Map<string, () => string | undefined>();
  const inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();
  const groups = new Map<string, HTMLElement>();
  const wraps = new Map<string, HTMLElement>();
  const groupFor = (title: string | undefined) => {
    const key = title ?? '';
    let g = groups.get(key);
    if (!g) {
      g = el('div', { class: 'fields' });
      if (title) {
        const fs = el('fieldset', { class: 'option-group', 'data-group': title });
        fs.append(el('legend', {}, title), g);
        container.append(fs);
      } else container.prepend(g);
      groups.set(key, g);
    }
    return g;
  };

  for (const [name, prop] of Object.entries(schema.properties)) {
    if (spec.hide?.includes(name)) continue;
    const id = `${spec.prefix}-${name}`;
    const wrap = el('div', { class: 'field' });
    const label = el('label', { for: id }, name);
    if (prop.description) wrap.title = prop.description;
    const initial = spec.initial?.[name] ?? asText(prop.default);
    const dflt = asText(prop.default);
    const differs = (v: string) => (v === '' || v === dflt ? undefined : v);

    if (prop.items?.enum) {
      // A list of choices: one checkbox each.
      const box = el('span', { class: 'choices', id, role: 'group', 'aria-label': name });
      const chosen = new Set(initial.split(',').filter((s) => s !== ''));
      const checks: HTMLInputElement[] = [];
      for (const v of prop.items.enum) {
        const cid = `${id}-${v}`;
        const c = el('input', { type: 'checkbox', id: cid, value: String(v), name });
        c.checked = chosen.has(String(v));
        checks.push(c);
        box.append(el('span', { class: 'choice' }));
        box.lastElementChild!.append(c, el('label', { for: cid }, String(v)));
      }
      readers.set(name, () => {
        const v = checks.filter((c) => c.checked).map((c) => c.value).join(',');
        return v === dflt ? undefined : v;
      });
      wrap.append(el('span', { class: 'label' }, name), box);
    } else if (prop.enum) {
      const select = el('select', { id, name });
      if (prop.default === undefined) select.append(el('option', { value: '' }, '(API default)'));
      for (const v of prop.enum) select.append(el('option', { value: String(v) }, String(v) + (String(v) === dflt ? ' (default)' : '')));
      select.value = initial;
      inputs.set(name, select);
      readers.set(name, () => differs(select.value));
      wrap.append(label, select);
    } else if (isFlag(prop) || prop.const !== undefined) {
      const c = el('input', { type: 'checkbox', id, name });
      c.checked = prop.const !== undefined ? initial === prop.const : initial === 'true';
      inputs.set(name, c);
      readers.set(name, () => (prop.const !== undefined ? (c.checked ? prop.const : undefined) : differs(String(c.checked))));
      label.textContent = prop.const !== undefined ? `${name}=${prop.const}` : name;
      wrap.classList.add('flag');
      wrap.append(c, label);
    } else if (prop.type === 'number' || prop.type === 'integer') {
      const n = el('input', { type: 'number', id, name, step: prop.type === 'integer' ? '1' : 'any' });
      const min = prop.minimum ?? prop.exclusiveMinimum;
      if (min !== undefined && Math.abs(min) < MAX_SAFE) n.min = String(min);
      if (prop.maximum !== undefined && prop.maximum < MAX_SAFE) n.max = String(prop.maximum);
      n.value = initial;
      if (prop.default === undefined) n.placeholder = 'API default';
      inputs.set(name, n);
      readers.set(name, () => differs(n.value.trim()));
      wrap.append(label, n);
    } else {
      const t = el('input', { type: 'text', id, name, placeholder: prop.type === 'object' ? 'name:size,…' : prop.type === 'array' ? 'comma-separated' : '' });
      t.value = initial;
      inputs.set(name, t);
      readers.set(name, () => differs(t.value.trim()));
      wrap.append(label, t);
      if (prop.type === 'array') wrap.classList.add('wide');
    }
    groupFor(spec.group?.(name, prop)).append(wrap);
    wraps.set(name, wrap);
  }
  return {
    values: () => {
      const out: Record<string, string> = {};
      for (const [name, read] of readers) {
        // A group the page hides (the static options under another format) is not sent.
        if (wraps.get(name)?.closest('fieldset[hidden]')) continue;
        const v = read();
        if (v !== undefined) out[name] = v;
      }
      return out;
    },
    input: (name) => inputs.get(name),
  };
}
