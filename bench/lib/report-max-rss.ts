// Loaded with `node --import` into a process a bench spawns: prints its peak RSS (all threads) on exit.
process.on('exit', () => process.stderr.write(`\nquantd-bench-maxrss-kib ${process.resourceUsage().maxRSS}\n`));
