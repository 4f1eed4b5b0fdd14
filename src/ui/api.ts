// Every call the page makes to the service: one place that adds the API key and turns an
// error reply into the API's own words ({statusCode, code, message}).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  /** As the page shows it: the status, the API's code and its message, unchanged. */
  describe(): string {
    return `${this.status > 0 ? this.status + ' ' : ''}${this.code}: ${this.message}`;
  }
}

const KEY_STORE = 'quantd.apiKey';
let keyInput: HTMLInputElement | undefined;

/** The key field: remembered for the browser tab only (sessionStorage), never in the URL. */
export function bindKeyInput(input: HTMLInputElement): void {
  keyInput = input;
  input.value = sessionStorage.getItem(KEY_STORE) ?? '';
  input.addEventListener('change', () => sessionStorage.setItem(KEY_STORE, input.value.trim()));
}

export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = keyInput?.value.trim();
  if (key) headers.set('authorization', `Bearer ${key}`);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `the service did not answer ${path.split('?')[0]}: ${(err as Error).message}`);
  }
  if (!res.ok) {
    let body: { code?: string; message?: string } | undefined;
    try {
      body = (await res.json()) as typeof body;
    } catch {
      body = undefined;
    }
    throw new ApiError(res.status, body?.code ?? `HTTP_${res.status}`, body?.message ?? res.statusText);
  }
  return res;
}

export async function apiJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await api(path, init)).json() as Promise<T>;
}

export interface ServerEvent {
  event: string;
  data: string;
}

/**
 * Server-sent events read with fetch rather than EventSource, which cannot send the
 * Authorization header. Yields each event until the server closes the stream.
 */
export async function* serverEvents(path: string, signal?: AbortSignal): AsyncGenerator<ServerEvent> {
  const res = await api(path, { headers: { accept: 'text/event-stream' }, signal });
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut: RegExpExecArray | null;
    while ((cut = /\r?\n\r?\n/.exec(buffer))) {
      const block = buffer.slice(0, cut.index);
      buffer = buffer.slice(cut.index + cut[0].length);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) continue; // keep-alive comment
        const m = /^([^:]*):? ?(.*)$/.exec(line);
        if (!m) continue;
        if (m[1] === 'event') event = m[2]!;
        else if (m[1] === 'data') data.push(m[2]!);
      }
      if (data.length) yield { event, data: data.join('\n') };
    }
  }
}

/** Query text from option values (lists are already comma-joined). */
export function query(values: Record<string, string>): string {
  const q = new URLSearchParams(values).toString();
  return q ? `?${q}` : '';
}

/** base64 → bytes, for the model the JSON reply carries. */
export function fromBase64(b64: string): Uint8Array<ArrayBuffer> {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
