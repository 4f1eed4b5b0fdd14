import { mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { threadId } from 'node:worker_threads';
import type { ModelBytes } from '../validate.js';

// An in-memory model becomes files for the onnxruntime host: the model and its external
// data files side by side, where onnxruntime's load from a path finds them. tmpfs
// (/dev/shm) when it has room, so the hand-over is a memory copy and no disk write;
// else the system's temporary directory (a container's /dev/shm is often 64 MiB).

export interface StagedModel {
  path: string;
  /** The staging directory, when the model was written out for the host (not a file it already was). */
  dir?: string | undefined;
  dispose(): void;
}

const SHM = '/dev/shm';

function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
}

/** The directory for `bytes` of staged files: tmpfs with a quarter to spare, else tmpdir(). */
export function stagingDir(bytes: number): string {
  const configured = process.env.ORT_STAGING_DIR;
  if (configured) return configured;
  return freeBytes(SHM) > bytes * 1.25 ? SHM : tmpdir();
}

const PREFIX = 'quantd-ort-';
/** Staged files this old are a dead process's (a staged model lives for one request). */
const STALE_MS = 3_600_000;
let swept = false;

/**
 * Staged files are removed once the host has answered; a process killed in between (a
 * crash, SIGKILL) leaves them, in tmpfs, i.e. in memory. The first staging of each process
 * removes such leftovers from both places they can be.
 */
function sweepStale(): void {
  if (swept) return;
  swept = true;
  const now = Date.now();
  removeStaged(PREFIX, (path) => now - statSync(path).mtimeMs > STALE_MS);
}

/** Every place a staging directory can be. */
function stagingPlaces(): Set<string> {
  return new Set([SHM, tmpdir(), process.env.ORT_STAGING_DIR].filter((d): d is string => !!d));
}

function removeStaged(prefix: string, when: (path: string) => boolean = () => true): void {
  for (const dir of stagingPlaces()) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.startsWith(prefix));
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        if (when(join(dir, n))) rmSync(join(dir, n), { recursive: true, force: true });
      } catch {
        // Another process removed it first, or it is not ours to remove.
      }
    }
  }
}

/** Staging directories are named after the process and thread that made them (the owner). */
function ownerPrefix(pid: number, thread: number): string {
  return `${PREFIX}${pid}.${thread}-`;
}

/**
 * Removes what a worker thread of this process staged, once the thread is gone. A thread
 * terminated (the pool closing or replacing it) while a request of its own was still on its
 * way to the host never runs the finally that removes the files, and the host never heard of
 * them: the service closed right after a cancelled model request left the float model in
 * /dev/shm until the next process's hour-old sweep.
 */
export function removeStagedByThread(thread: number): void {
  removeStaged(ownerPrefix(process.pid, thread));
}

export function stageModel(model: ModelBytes): StagedModel {
  if ('path' in model) return { path: model.path, dispose: () => {} };
  return stageFiles(model.bytes, model.externalData ?? []);
}

/** A new staging directory with room for `bytes` (removed by its owner, or as stale). */
export function newStagingDir(bytes: number): string {
  sweepStale();
  return mkdtempSync(join(stagingDir(bytes), ownerPrefix(process.pid, threadId)));
}

/** The model and its external data files in a new staging directory, with room for `more` bytes besides. */
export function stageFiles(bytes: Uint8Array, files: readonly { path: string; data: Uint8Array }[], more = 0): StagedModel & { dir: string } {
  const dir = newStagingDir(bytes.length + files.reduce((s, f) => s + f.data.length, 0) + more);
  const dispose = () => rmSync(dir, { recursive: true, force: true });
  try {
    const taken = new Set<string>();
    for (const f of files) {
      // External data names come from the upload: never a path out of the staging directory.
      const rel = normalize(f.path);
      if (isAbsolute(rel) || rel === '.' || rel.startsWith('..')) throw new Error(`external data location '${f.path}' is not a path inside the model's directory`);
      taken.add(rel);
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), f.data);
    }
    let name = 'model.onnx';
    for (let i = 1; taken.has(name); i++) name = `model-${i}.onnx`;
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return { path, dir, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}
