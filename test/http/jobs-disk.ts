import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What JOBS_MAX_BYTES counts, as on disk now under a jobs directory (the local store's, or a
 * replica's scratch): each job's in/ and out/ files (its uploads, spill file and results),
 * report.json aside. Files deleted while it looks are skipped.
 */
export function jobsOnDisk(root: string): { bytes: number; spills: number } {
  let bytes = 0;
  let spills = 0;
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name !== 'report.json') {
        try {
          bytes += statSync(path).size;
          if (e.name.endsWith('.spill')) spills++;
        } catch {
          // deleted between the listing and the stat
        }
      }
    }
  };
  let jobs: string[] = [];
  try {
    jobs = readdirSync(root);
  } catch {
    // not made yet
  }
  for (const job of jobs) for (const part of ['in', 'out']) walk(join(root, job, part));
  return { bytes, spills };
}

/** Samples jobsOnDisk every millisecond until stopped; the most it saw. */
export function sampleJobsOnDisk(root: string): { stop: () => { peak: number; samples: number } } {
  let peak = 0;
  let samples = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, jobsOnDisk(root).bytes);
    samples++;
  }, 1);
  return {
    stop: () => {
      clearInterval(timer);
      return { peak, samples };
    },
  };
}
