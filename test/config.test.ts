import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { describeConfig, loadConfig } from '../src/config.js';

test('the reliability settings have the documented defaults', () => {
  const c = loadConfig({});
  assert.equal(c.bodyLimit, 256 * 2 ** 20);
  assert.equal(c.modelBodyLimit, 2 * 2 ** 30);
  assert.equal(c.maxQueue, 64);
  assert.equal(c.requestTimeoutMs, 120_000);
  assert.equal(c.shutdownTimeoutMs, 30_000);
  assert.equal(c.maxEventLoopDelayMs, 1000);
  assert.equal(c.maxHeapUsedBytes, Math.floor(getHeapStatistics().heap_size_limit * 0.9));
  assert.deepEqual(c.apiKeys, []);
  assert.equal(c.rateLimitMax, 0);
  assert.equal(c.maxJsonReplyBytes, 256 * 2 ** 20);
  assert.equal(c.calibrationMaxBytes, 2 ** 30);
  assert.equal(c.calibrationMaxSamples, 4096);
});

test('each setting is read from its environment variable; 0 turns the guards off', () => {
  const c = loadConfig({ MODEL_BODY_LIMIT: '1024', MAX_EVENT_LOOP_DELAY_MS: '0', MAX_HEAP_USED_BYTES: '0', RATE_LIMIT_MAX: '30', MAX_QUEUE: '0' });
  assert.equal(c.modelBodyLimit, 1024);
  assert.equal(c.maxEventLoopDelayMs, 0);
  assert.equal(c.maxHeapUsedBytes, 0);
  assert.equal(c.rateLimitMax, 30);
  assert.equal(c.maxQueue, 0);
});

test('a bad value names its variable', () => {
  for (const [name, value] of [['MODEL_BODY_LIMIT', '0'], ['RATE_LIMIT_MAX', '-1'], ['MAX_EVENT_LOOP_DELAY_MS', 'soon'], ['MAX_QUEUE', '1.5']]) {
    assert.throws(() => loadConfig({ [name!]: value }), new RegExp(`invalid configuration: ${name}:`), name);
  }
});

test('the startup summary counts API keys and never shows them', () => {
  const key = 'a-secret-key-that-is-long-enough';
  const summary = JSON.stringify(describeConfig(loadConfig({ API_KEYS: `${key},${key}-2` })));
  assert.ok(!summary.includes('secret'), summary);
  assert.match(summary, /"apiKeys":2/);
});
