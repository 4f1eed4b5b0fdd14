import fp from 'fastify-plugin';
import { Errors } from '../errors.js';
import { isProbe } from './open-routes.js';

/**
 * Owns `app.closing`. From the moment shutdown begins (server.ts sets it on the signal,
 * preClose for any other close) /readyz answers 503, a new request on a connection that
 * is still open gets a 503 in our error format, and every response closes its connection
 * so that keep-alive sockets do not hold the server open past the requests in flight.
 * Fastify's own closing reply (return503OnClosing) is turned off in favour of this one.
 */
export const shutdown = fp(async (app) => {
  app.decorate('closing', false);
  app.addHook('preClose', async () => {
    app.closing = true;
  });
  app.addHook('onRequest', async (request) => {
    if (!app.closing || isProbe(request)) return;
    throw Object.assign(new Errors.ShuttingDown('the service is shutting down and takes no new requests; retry on another instance'), { retryAfter: 1 });
  });
  app.addHook('onSend', async (_request, reply) => {
    if (app.closing) reply.header('connection', 'close');
  });
});
