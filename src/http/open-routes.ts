import type { FastifyRequest } from 'fastify';

// Probes, metrics, documentation and the report page (whose API calls carry the user's key): open to everyone (/metrics has its own METRICS_TOKEN),
// never rate limited or shed, so that orchestrators, scrapers and people can always see the
// service's state and how to call it.
const OPEN = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/ui', '/ui/', '/ui/options.json', '/ui/:file']);

export function isOpenRoute(request: FastifyRequest): boolean {
  const url = request.routeOptions.url;
  return url !== undefined && (OPEN.has(url) || url === '/docs' || url.startsWith('/docs/'));
}

/** Liveness and readiness answer for themselves, even under pressure or while shutting down. */
export function isProbe(request: FastifyRequest): boolean {
  const url = request.routeOptions.url;
  return url === '/healthz' || url === '/readyz';
}
