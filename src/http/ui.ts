import type { FastifyPluginAsync } from 'fastify';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Errors } from '../errors.js';
import { uiOptions } from './ui-options.js';

/** The page's files, written by `npm run build` (scripts/build-ui.ts) beside dist/src. */
export const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));
export const UI_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

// Everything the page loads is its own: no CDN, no inline script (the charts set canvas
// sizes through the style property, which CSP does not govern).
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/**
 * GET /ui, the report page, and GET /ui/options.json, the option lists it draws its forms
 * from. Open like the probes (the page itself holds no data; the API calls it makes carry the
 * key the user types in).
 */
export const uiRoutes: FastifyPluginAsync = async (app) => {
  // Read once at start: a handful of small files, served from memory.
  const files = new Map<string, Buffer>();
  for (const name of Object.keys(UI_FILES)) {
    try {
      files.set(name, readFileSync(UI_DIR + name));
    } catch {
      // Not built: /ui says so instead of failing the start.
    }
  }
  const options = JSON.stringify(uiOptions());

  const serve = (name: string) => {
    const body = files.get(name);
    if (!body) throw new Errors.NotFound(`the report page's ${name} is not built: run npm run build`);
    return body;
  };
  const common = { 'x-content-type-options': 'nosniff', 'content-security-policy': CSP, 'cache-control': 'no-cache' };

  app.get('/ui', { schema: { hide: true } }, async (_request, reply) => reply.headers(common).type(UI_FILES['index.html']!).send(serve('index.html')));
  // Relative links typed by hand (http://host/ui/) land on the page too.
  app.get('/ui/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui', 302));
  app.get('/ui/options.json', { schema: { hide: true } }, async (_request, reply) => reply.headers(common).type('application/json; charset=utf-8').send(options));
  app.get<{ Params: { file: string } }>('/ui/:file', { schema: { hide: true } }, async (request, reply) => {
    const type = Object.hasOwn(UI_FILES, request.params.file) ? UI_FILES[request.params.file] : undefined;
    if (!type) throw new Errors.NotFound(`no file ${request.params.file.slice(0, 100)} in the report page; open /ui`);
    return reply.headers(common).type(type).send(serve(request.params.file));
  });
};
