import { writeFileSync } from 'node:fs';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/http/app.js';
import { openapiText } from '../src/http/openapi.js';

// Regenerates openapi/openapi.json from the zod schemas (test/http/openapi.test.ts fails on drift).
const app = await buildApp({ config: { ...loadConfig({}), workers: 1 }, logger: false });
writeFileSync(new URL('../../openapi/openapi.json', import.meta.url), openapiText(app.swagger()));
await app.close();
