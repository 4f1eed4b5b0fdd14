import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import request from 'supertest';
import { gemmMlp } from '../onnx/models.js';
import { testApp } from './helpers.js';

// A job whose options the synchronous endpoint refuses is refused the same way (400, same
// code and message) when it is posted, not accepted with 202 to fail later; nothing of it
// is left in the store.

const app = await testApp();
const server = () => request(app.server);
const OCTET = 'application/octet-stream';

type Reply = { status: number; body: { code?: string; message?: string } };
const reply = (r: request.Response): Reply => ({ status: r.status, body: { code: r.body.code, message: r.body.message } });

async function storeIsEmpty(): Promise<void> {
  assert.deepEqual(await app.jobs.store.list(), []);
  assert.equal(await app.jobs.store.usage(), 0);
  assert.deepEqual(readdirSync(app.config.jobsDir).filter((f) => !f.startsWith('.')), []);
}

async function raw(path: string, query: string, body: Uint8Array): Promise<Reply> {
  return reply(await server().post(`${path}${query}`).set('content-type', OCTET).send(Buffer.from(body)));
}

async function multipart(path: string, body: Uint8Array, fields: Record<string, string>): Promise<Reply> {
  // The fields after the model part: they are known only once the model has been stored.
  let req = server().post(path).attach('model', Buffer.from(body), 'model.onnx');
  for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
  return reply(await req);
}

describe('job requests with conflicting options', () => {
  const cases: Array<[string, string, Uint8Array, string]> = [
    ['a codebook format with a fitted method', '?format=nf4&method=lsq', gemmMlp(17).bytes, 'QUANT_ERR_OPTION'],
    ['format=dynamic with 4 bits', '?format=dynamic&bits=4', gemmMlp(17).bytes, 'QUANT_ERR_OPTION'],
    ['format=qdq with 4 bits on an opset-13 model (known only from the model)', '?format=qdq&bits=4', gemmMlp(13).bytes, 'QUANT_ERR_OPTION'],
    ['fp8 on an opset-17 model', '?format=fp8e4m3', gemmMlp(17).bytes, 'QUANT_ERR_OPTION'],
    ['format=static without calibration data', '?format=static', gemmMlp(17).bytes, 'QUANT_ERR_CALIBRATION'],
  ];
  for (const [what, query, body, code] of cases) {
    it(`answers the synchronous endpoint's 400 for ${what} (raw body)`, async () => {
      const sync = await raw('/v1/models/quantize', query, body);
      assert.equal(sync.status, 400);
      assert.equal(sync.body.code, code);
      assert.deepEqual(await raw('/v1/jobs', query, body), sync);
      await storeIsEmpty();
    });
  }

  it("answers the synchronous endpoint's 400 for conflicting multipart fields sent after the model", async () => {
    for (const [fields, code] of [
      [{ format: 'matmulnbits', granularity: 'per_channel' }, 'QUANT_ERR_OPTION'],
      [{ format: 'qdq', bits: '4' }, 'QUANT_ERR_OPTION'],
      [{ format: 'static' }, 'QUANT_ERR_CALIBRATION'],
    ] as const) {
      const body = gemmMlp(13).bytes;
      const sync = await multipart('/v1/models/quantize', body, fields);
      assert.equal(sync.status, 400, JSON.stringify(sync));
      assert.equal(sync.body.code, code);
      assert.deepEqual(await multipart('/v1/jobs', body, fields), sync);
      await storeIsEmpty();
    }
  });

  it('still accepts options that fit the model, and a model the scan cannot read goes to the job as before', async () => {
    const ok = await server().post('/v1/jobs?format=qdq&bits=4').set('content-type', OCTET).send(Buffer.from(gemmMlp(21).bytes));
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    const junk = await server().post('/v1/jobs?format=qdq&bits=4').set('content-type', OCTET).send(Buffer.from('not a model'));
    assert.equal(junk.status, 202, JSON.stringify(junk.body));
  });
});
