// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise (CI logs,
// pipes), where a line is printed when the phase changes and at every tenth of the work.

export interface ProgressUpdate {
  phase: string;
  /** 0..1 within the phase, when known. */
  fraction?: number | undefined;
  detail?: string | undefined;
}

const WIDTH = 30;

export class Progress {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #phase = '';
  #tenth = -1;
  #drawn = false;
  readonly #t0 = Date.now();

  constructor(out: NodeJS.WriteStream = process.stderr, tty = out.isTTY === true) {
    this.#out = out;
    this.#tty = tty;
  }

  update(u: ProgressUpdate): void {
    const secs = ((Date.now() - this.#t0) / 1000).toFixed(1);
    if (this.#tty) {
      const f = Math.max(0, Math.min(1, u.fraction ?? 0));
      const filled = Math.round(f * WIDTH);
      const bar = u.fraction === undefined ? ' '.repeat(WIDTH) : '#'.repeat(filled) + '.'.repeat(WIDTH - filled);
      const pct = u.fraction === undefined ? '    ' : `${Math.round(f * 100)}%`.padStart(4);
      const line = `[${bar}] ${pct} ${u.phase}${u.detail ? ` ${u.detail}` : ''} ${secs}s`;
      const cols = this.#out.columns || 80;
      this.#out.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length + 8))}`);
      this.#drawn = true;
      return;
    }
    const tenth = u.fraction === undefined ? -1 : Math.floor(u.fraction * 10);
    if (u.phase === this.#phase && tenth === this.#tenth) return;
    this.#phase = u.phase;
    this.#tenth = tenth;
    const pct = u.fraction === undefined ? '' : ` ${Math.round(u.fraction * 100)}%`;
    this.#out.write(`quantd: ${u.phase}${pct}${u.detail ? ` ${u.detail}` : ''} (${secs}s)\n`);
  }

  /** Ends the bar's line so what follows starts on a fresh one. */
  done(): void {
    if (this.#tty && this.#drawn) this.#out.write('\n');
    this.#drawn = false;
  }
}
