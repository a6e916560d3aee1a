// The orphan-golden gate's verdict, apart from the files it reads so its own test can give it
// others: every golden must have been compared by some test of the run (each test notes the
// goldens it reads, test/support/golden.ts), or it is an orphan nothing checks any more.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface GoldenVerdict {
  ok: boolean;
  message: string;
}

function jsonFiles(root: string, dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? jsonFiles(root, join(dir, e.name))
      : e.name.endsWith('.json')
        ? [relative(root, join(dir, e.name)).replace(/\.json$/, '')]
        : [],
  );
}

/** Names (relative to `goldenDir`, without .json) the test processes noted in `usedDir`. */
export function notedGoldens(usedDir: string): Set<string> {
  const used = new Set<string>();
  if (!existsSync(usedDir)) return used;
  for (const f of readdirSync(usedDir)) {
    for (const line of readFileSync(join(usedDir, f), 'utf8').split('\n')) {
      if (line !== '') used.add(line);
    }
  }
  return used;
}

/** `used`: every golden some test compared, noted or known otherwise (the conformance cases). */
export function orphanGoldens(goldenDir: string, used: ReadonlySet<string>): GoldenVerdict {
  const all = jsonFiles(goldenDir);
  const orphans = all.filter((g) => !used.has(g)).sort();
  if (used.size === 0) {
    return {
      ok: false,
      message: 'check-goldens: no test recorded a golden: run the whole suite (npm test) first',
    };
  }
  if (orphans.length > 0) {
    return {
      ok: false,
      message: `check-goldens: ${String(orphans.length)} golden file(s) no test compares any more (delete them, or restore the test):\n${orphans.map((o) => `  test/golden/${o}.json`).join('\n')}`,
    };
  }
  return {
    ok: true,
    message: `check-goldens: ${String(all.length)} golden files, every one compared by a test`,
  };
}
