// The control plane's processes: each in its own process group with its log in one file, so a
// failing scenario leaves every component's log behind and a restart is one call.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProcSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export class Proc {
  child: ChildProcess | undefined;
  readonly log: string;
  private exits = 0;

  constructor(
    readonly spec: ProcSpec,
    logDir: string,
  ) {
    this.log = join(logDir, `${spec.name}.log`);
  }

  start(): void {
    // Appending: a restarted component's log follows its previous life in the same file.
    const fd = openSync(this.log, 'a');
    const child = spawn(this.spec.command, this.spec.args, {
      cwd: this.spec.cwd,
      env: { ...process.env, ...this.spec.env },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    child.on('exit', () => {
      this.exits++;
    });
    this.child = child;
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** SIGTERM to the process group this component leads, SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined || !this.running) return;
    const exited = new Promise<void>((r) => {
      child.once('exit', () => {
        r();
      });
    });
    signalGroup(child.pid, 'SIGTERM');
    const killed = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!killed) {
      signalGroup(child.pid, 'SIGKILL');
      await exited;
    }
  }

  /** SIGKILL, no grace: a crash. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined || !this.running) return;
    const exited = new Promise<void>((r) => {
      child.once('exit', () => {
        r();
      });
    });
    signalGroup(child.pid, 'SIGKILL');
    await exited;
  }

  logSize(): number {
    try {
      return statSync(this.log).size;
    } catch {
      return 0;
    }
  }

  /** The log from byte `from` on. */
  logSince(from: number): string {
    try {
      return readFileSync(this.log).subarray(from).toString('utf8');
    } catch {
      return '';
    }
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
  everyMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: last error ${last.message}` : '';
      throw new Error(
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}`,
      );
    }
    await sleep(everyMs);
  }
}
