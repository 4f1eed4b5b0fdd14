import type { FastifyRequest } from 'fastify';
import { arenaOf, reuseArena, tensorBytes, type WasmMemory } from '../core/kernels/runtime.js';

// Kernel arenas that finished requests gave back, for the next big tensor bodies. An arena is
// shared memory: V8 frees it only after both this thread and the worker that used it have
// collected their handles on it, which can take many requests; meanwhile every new body
// touched fresh pages, so RSS climbed by a body per request in flight and stayed there.
// Reusing arenas bounds that to what is in use plus what is kept here.

const finished = new WeakSet<FastifyRequest>();

export class ArenaPool {
  readonly #idle: WasmMemory[] = [];
  #idleBytes = 0;

  /** @param maxIdleBytes bytes of idle arenas kept (ARENA_CACHE_BYTES): their pages stay resident, like a malloc cache. */
  constructor(readonly maxIdleBytes: number) {}

  /** Bytes for a tensor body: an idle arena's when one fits, else a new arena's or a plain buffer's. */
  bytesFor(bytes: number): Uint8Array {
    for (let i = 0; i < this.#idle.length; i++) {
      const reused = reuseArena(this.#idle[i]!, bytes);
      if (reused) {
        this.#idleBytes -= this.#idle[i]!.buffer.byteLength;
        this.#idle.splice(i, 1);
        return reused;
      }
    }
    return tensorBytes(bytes);
  }

  /**
   * Takes back the arena of a request whose worker task finished (markFinished); one whose
   * task was stopped (deadline, client gone, error) may still be touched by the worker that
   * ran it, so it is left to the garbage collector.
   */
  release(request: FastifyRequest): void {
    if (!finished.has(request) || !Buffer.isBuffer(request.body)) return;
    const arena = arenaOf(request.body);
    if (!arena || this.#idle.includes(arena)) return;
    const size = arena.buffer.byteLength;
    // The oldest go first when the idle bytes would pass the bound.
    while (this.#idle.length > 0 && this.#idleBytes + size > this.maxIdleBytes) this.#idleBytes -= this.#idle.pop()!.buffer.byteLength;
    if (size > this.maxIdleBytes) return;
    this.#idle.unshift(arena);
    this.#idleBytes += size;
  }

  get idleBytes(): number {
    return this.#idleBytes;
  }
}

/** The request's worker task returned: the worker no longer touches its body. */
export function markFinished(request: FastifyRequest): void {
  finished.add(request);
}
