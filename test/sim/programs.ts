// How the simulator runs the project's two programs as child processes: the built ones in
// dist/ when they are at least as new as every source file under function/ (CI builds
// before it runs the scenarios), else the TypeScript sources through tsx (a fresh clone).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Program {
  /** Arguments after `node`. */
  args: string[];
  /** 'dist' or 'tsx', reported by the runner and the demo. */
  how: 'dist' | 'tsx';
  /** Path shown to people, relative to the repository. */
  shown: string;
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      newest = Math.max(newest, statSync(p).mtimeMs);
    }
  }
  return newest;
}

let sourcesMtime: number | undefined;

/** `function/main.ts` (the Function) or `function/fetch/main.ts` (the fetch program). */
export function program(which: 'function' | 'fetch'): Program {
  const rel = which === 'function' ? 'function/main' : 'function/fetch/main';
  const built = join(ROOT, 'dist', `${rel}.js`);
  sourcesMtime ??= newestSource(join(ROOT, 'function'));
  if (process.env['MODELCACHE_SIM_PROGRAMS'] !== 'tsx' && existsSync(built)) {
    if (statSync(built).mtimeMs >= sourcesMtime) {
      return { args: [built], how: 'dist', shown: `dist/${rel}.js` };
    }
  }
  return {
    args: ['--import', 'tsx', join(ROOT, `${rel}.ts`)],
    how: 'tsx',
    shown: `${rel}.ts (tsx)`,
  };
}
