import { ApiError, api, apiJson, bindKeyInput, fromBase64 } from './api.js';
import { renderForm, type OptionForm, type Schema } from './form.js';
import { runJob } from './job.js';
import { renderModel, type ModelReport } from './model-view.js';
import { runTensor } from './tensor-view.js';

// The report page: drop a tensor or a model, pick options (drawn from /ui/options.json), run,
// and read the plots. Models above JOB_THRESHOLD_BYTES go through the jobs API by default.

export const JOB_THRESHOLD_BYTES = 32 * 1024 * 1024;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const fileInput = $<HTMLInputElement>('file');
const calibrationInput = $<HTMLInputElement>('calibration-file');
const asJob = $<HTMLInputElement>('as-job');
const runButton = $<HTMLButtonElement>('run');
const status = $<HTMLElement>('status');
const errors = $<HTMLElement>('errors');
const results = $<HTMLElement>('results');
const progress = $<HTMLProgressElement>('job-progress');
const progressLabel = $<HTMLElement>('job-progress-label');

let kind: 'tensor' | 'model' | undefined;
let forms: { quantize?: OptionForm; analyze?: OptionForm; model?: OptionForm } = {};
let options: { quantize: Schema; analyze: Schema; model: Schema } | undefined;

function showError(where: string, e: unknown): void {
  const text = e instanceof ApiError ? e.describe() : (e as Error).message;
  errors.append(Object.assign(document.createElement('p'), { textContent: `${where}: ${text}` }));
  errors.hidden = false;
}

function clearErrors(): void {
  errors.replaceChildren();
  errors.hidden = true;
}

function kindOf(f: File): 'tensor' | 'model' | undefined {
  const n = f.name.toLowerCase();
  return n.endsWith('.npy') ? 'tensor' : n.endsWith('.onnx') ? 'model' : undefined;
}

function chooseFile(): void {
  clearErrors();
  const f = fileInput.files?.[0];
  kind = f ? kindOf(f) : undefined;
  $('tensor-options').hidden = kind !== 'tensor';
  $('model-options').hidden = kind !== 'model';
  runButton.disabled = !kind || !options;
  if (f && !kind) showError(f.name, new Error('drop a .npy tensor or an .onnx model'));
  if (kind === 'model' && f) asJob.checked = f.size > JOB_THRESHOLD_BYTES;
  $('file-name').textContent = f ? `${f.name} (${(f.size / 1024).toFixed(1)} KiB)` : 'no file chosen';
}

function excludeWeight(name: string): void {
  const input = forms.model?.input('exclude') as HTMLInputElement | undefined;
  if (!input) return;
  const list = input.value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (!list.includes(name)) list.push(name);
  input.value = list.join(',');
  status.textContent = `exclude is now ${input.value}: press Run to quantize again.`;
  input.scrollIntoView({ block: 'center' });
}

function modelBody(file: File, values: Record<string, string>): FormData {
  const body = new FormData();
  // Fields first, then the files, as a curl -F command would send them.
  for (const [k, v] of Object.entries(values)) body.append(k, v);
  body.append('model', file, file.name);
  const cal = calibrationInput.files?.[0];
  if (cal) body.append('calibration', cal, cal.name);
  const inputs = $<HTMLInputElement>('inputs-file').files?.[0];
  if (inputs) body.append('inputs', inputs, inputs.name);
  // External data: one part per file, named by its location (the file's own name).
  for (const f of $<HTMLInputElement>('external-files').files ?? []) body.append(f.name, f, f.name);
  return body;
}

async function runModel(file: File): Promise<void> {
  const values = forms.model!.values();
  const exclude = (name: string) => excludeWeight(name);
  if (asJob.checked) {
    $('job').hidden = false;
    progress.value = 0;
    const job = await runJob(modelBody(file, values), progress, progressLabel);
    renderModel(job.report, results, {
      exclude,
      download: {
        label: 'Download the quantized model',
        get: async () => {
          const res = await api(job.resultUrl);
          const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'model.quantized.onnx';
          return { blob: await res.blob(), filename: name };
        },
      },
    });
    return;
  }
  $('job').hidden = true;
  const reply = await apiJson<ModelReport & { model: { filename: string; data: string } }>('/v1/models/quantize', {
    method: 'POST',
    headers: { accept: 'application/json' },
    body: modelBody(file, values),
  });
  const model = fromBase64(reply.model.data);
  renderModel(reply, results, {
    exclude,
    download: { label: `Download ${reply.model.filename}`, get: async () => ({ blob: new Blob([model], { type: 'application/octet-stream' }), filename: reply.model.filename }) },
  });
}

async function run(): Promise<void> {
  const f = fileInput.files?.[0];
  if (!f || !kind) return;
  clearErrors();
  runButton.disabled = true;
  document.body.dataset.state = 'running';
  status.textContent = `running ${f.name}…`;
  const started = performance.now();
  try {
    if (kind === 'tensor') await runTensor(f, forms.quantize!.values(), forms.analyze!.values(), results, showError);
    else await runModel(f);
    status.textContent = `${f.name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (e) {
    status.textContent = `${f.name}: failed`;
    showError(kind === 'tensor' ? 'tensor' : asJob.checked ? '/v1/jobs' : '/v1/models/quantize', e);
  } finally {
    runButton.disabled = false;
    document.body.dataset.state = errors.hidden ? 'done' : 'error';
  }
}

async function start(): Promise<void> {
  bindKeyInput($<HTMLInputElement>('api-key'));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer?.files.length) {
      fileInput.files = e.dataTransfer.files;
      chooseFile();
    }
  });
  fileInput.addEventListener('change', chooseFile);
  runButton.addEventListener('click', () => void run());
  let schemas: { quantize: Schema; analyze: Schema; model: Schema };
  try {
    schemas = await apiJson('/ui/options.json');
  } catch (e) {
    showError('/ui/options.json', e);
    return;
  }
  options = schemas;
  const staticGroup = (_name: string, prop: { description?: string }) => (prop.description?.startsWith('format=static') ? 'format=static' : undefined);
  const model = renderForm($('model-form'), schemas.model, { prefix: 'model', group: staticGroup });
  forms = {
    quantize: renderForm($('quantize-form'), schemas.quantize, { prefix: 'quantize', hide: ['scale', 'zero_point', 'include_values'], initial: { histogram_bins: '64' } }),
    analyze: renderForm($('analyze-form'), schemas.analyze, { prefix: 'analyze', initial: { target_snr_db: '30' } }),
    model,
  };
  const format = model.input('format')!;
  const staticFields = () => {
    const fs = document.querySelector<HTMLElement>('#model-form [data-group="format=static"]');
    if (fs) fs.hidden = format.value !== 'static';
  };
  format.addEventListener('change', staticFields);
  staticFields();
  document.body.dataset.state = 'ready';
  chooseFile();
}

void start();
