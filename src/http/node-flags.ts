// V8 flags the server process is started with (package.json `start`, the Dockerfile's CMD,
// and the tests and benchmarks that start it as production does). They must be given on the
// command line: the main thread's heap is sized before any of our code runs.
//
// --initial-old-space-size: every upload arrives as Node's 64 KiB socket chunks, each a new
// buffer, and with V8's default (small) old-generation limit that garbage set off a full
// mark-compact every few MiB of upload: 21-24 per hundred 4 MiB requests, 35 for twelve
// 64 MiB ones. With 128 MiB: 2 and 5, the event loop's CPU per request down by a quarter
// (4 MiB) to a half (64 MiB), and no higher peak RSS (bench/README.md, "HTTP: the event loop").
export const SERVER_NODE_FLAGS = ['--initial-old-space-size=128'] as const;
