import { Agent, get } from 'node:http';

// GET /healthz every few ms from a process of its own, so the latencies are the service's
// and not those of a client busy sending and checking the load. Reports when told to stop.

if (!process.send) throw new Error('run as a forked child');
const [port, everyMs] = [Number(process.argv[2]), Number(process.argv[3] ?? 20)];
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const latencies: number[] = [];
const failures: string[] = [];
let running = true;
process.on('message', () => (running = false));

while (running) {
  const t0 = performance.now();
  const failure = await new Promise<string | undefined>((resolve) => {
    get({ host: '127.0.0.1', port, path: '/healthz', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? undefined : `status ${res.statusCode}`));
    }).on('error', (err) => resolve(err.message));
  });
  if (failure) failures.push(failure);
  else latencies.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, everyMs));
}
agent.destroy();
const sorted = latencies.sort((a, b) => a - b);
const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
process.send({ samples: sorted.length, failures: failures.slice(0, 10), p50: at(50), p99: at(99), max: sorted.at(-1) ?? Number.NaN }, () => process.exit(0));
