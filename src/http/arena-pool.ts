import type { FastifyRequest } from 'fastify';
import { recycleArena } from '../core/kernels/arenas.js';
import { arenaOf } from '../core/kernels/runtime.js';

// A tensor body read into a kernel arena (tensor-body.ts) goes back to this thread's arena
// cache (core/kernels/arenas.ts) when its request is over, but only if the worker task that
// read it returned: one that was stopped (deadline, client gone, error) may still be touched
// by the worker that ran it, so it is left to the garbage collector.

const finished = new WeakSet<FastifyRequest>();

/** The request's worker task returned: the worker no longer touches its body. */
export function markFinished(request: FastifyRequest): void {
  finished.add(request);
}

/** At the end of a request (onResponse): its body's arena back to the cache, if it may go. */
export function releaseBody(request: FastifyRequest): void {
  if (!finished.has(request) || !Buffer.isBuffer(request.body)) return;
  const arena = arenaOf(request.body);
  if (arena) recycleArena(arena);
}
