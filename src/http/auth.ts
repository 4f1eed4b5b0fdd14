import fp from 'fastify-plugin';
import { createHash, timingSafeEqual } from 'node:crypto';
import { Errors } from '../errors.js';
import { isOpenRoute } from './open-routes.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Which configured key authenticated the request ("key-0", ...); null without keys. */
    apiKeyId: string | null;
  }
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * With API_KEYS set, every route but the probes and the docs needs `Authorization: Bearer
 * <key>`. The check runs in onRequest, before any body is read, so an unauthenticated client
 * cannot make the service buffer an upload. Keys are compared as SHA-256 digests (equal
 * length, as timingSafeEqual requires) against every configured key without stopping at a
 * match, so the time taken says nothing about which key or how much of it matched.
 */
export const auth = fp<{ apiKeys: string[] }>(async (app, opts) => {
  app.decorateRequest('apiKeyId', null);
  if (opts.apiKeys.length === 0) return;
  const digests = opts.apiKeys.map(sha256);

  app.addHook('onRequest', async (request, reply) => {
    if (isOpenRoute(request)) return;
    const header = request.headers.authorization;
    const token = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    if (token === undefined) {
      reply.header('www-authenticate', 'Bearer realm="quantd"');
      throw new Errors.Unauthorized('this route needs an API key: send the header Authorization: Bearer <key>');
    }
    const presented = sha256(token);
    let match = -1;
    for (let i = 0; i < digests.length; i++) {
      if (timingSafeEqual(presented, digests[i]!)) match = i;
    }
    if (match < 0) {
      reply.header('www-authenticate', 'Bearer realm="quantd", error="invalid_token"');
      throw new Errors.Unauthorized('the API key in the Authorization header is not valid');
    }
    request.apiKeyId = `key-${match}`;
  });
});
