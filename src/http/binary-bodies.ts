import fp from 'fastify-plugin';
import { Errors } from '../errors.js';
import { releaseBody } from './arena-pool.js';
import { tensorBodyParser } from './tensor-body.js';
import { NPY, NPZ, OCTET } from './tensor-source.js';

const BINARY = [NPY, OCTET, NPZ];

/**
 * Binary bodies (NPY, NPZ, raw bytes) are read as Buffers, within BODY_LIMIT unless a route sets
 * its own limit. They are parsed for every route, so each route says which it takes in its
 * schema's `consumes`; any other route refuses them with a 415 before reading the body
 * (a Buffer where a handler expects JSON would otherwise reach it unvalidated).
 */
export const binaryBodies = fp<{ bodyLimit: number }>(async (app, opts) => {
  // Fastify parses text/plain by default; no route reads text, so it is a 415 like any other type.
  app.removeContentTypeParser('text/plain');
  for (const type of BINARY) {
    app.addContentTypeParser(type, { bodyLimit: opts.bodyLimit }, tensorBodyParser(opts.bodyLimit));
  }
  app.addHook('onResponse', async (request) => releaseBody(request));
  app.addHook('preParsing', async (request, _reply, payload) => {
    const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
    if (type === undefined || !BINARY.includes(type) || request.routeOptions.url === undefined) return payload;
    const consumes = request.routeOptions.schema?.consumes ?? ['application/json'];
    if (!consumes.includes(type)) {
      throw new Errors.UnsupportedMediaType(`${request.routeOptions.url} does not take ${type}; it takes ${consumes.join(', ')}`);
    }
    return payload;
  });
});
